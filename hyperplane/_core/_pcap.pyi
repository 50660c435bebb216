"""Type stubs for the compiled capture scanner (``_pcap.pyx``). Use ``hyperplane.pcap``."""

import numpy as np
import numpy.typing as npt

__test__: dict[str, str]  # added by Cython

KIND_EMULATED: int
KIND_IPV6: int
KIND_ARP: int
KIND_NON_IP: int
KIND_FRAGMENT: int
KIND_TRUNCATED: int
KIND_MALFORMED: int
STATUS_FULL: int
STATUS_NEED_DATA: int
STATUS_BLOCK: int
STATUS_RECORD_TOO_LONG: int
STATUS_BLOCK_LENGTH: int
STATUS_BLOCK_TRAILER: int
STATUS_BLOCK_TOO_LONG: int
STATUS_BAD_INTERFACE: int
STATUS_CAPLEN_BLOCK: int
STATUS_TIME_RANGE: int
MAX_RECORD_BYTES: int
MAX_BLOCK_BYTES: int
LINKTYPES: tuple[int, ...]

def record_layout() -> dict[str, int]: ...
def scan_pcap(
    buf: npt.NDArray[np.uint8],  # const uint8_t[::1]
    pos: int,
    end: int,
    base: int,  # file offset of buf[0]
    big: bool,
    nano: bool,
    linktype: int,
    rec_bytes: npt.NDArray[np.uint8],  # uint8_t[::1]: the PACKET rows viewed as bytes
    kind: npt.NDArray[np.uint8],
    ts_ns: npt.NDArray[np.int64],
    frame_offset: npt.NDArray[np.int64],
    file_offset: npt.NDArray[np.int64],
    caplen: npt.NDArray[np.uint32],
    wirelen: npt.NDArray[np.uint32],
    l3_offset: npt.NDArray[np.uint16],
    ethertype: npt.NDArray[np.uint16],
    linktype_col: npt.NDArray[np.uint16],
    interface: npt.NDArray[np.uint16],
    row: int,
) -> tuple[int, int, int, int, int]:  # status, pos, row, need, value
    ...
def scan_pcapng(
    buf: npt.NDArray[np.uint8],  # const uint8_t[::1]
    pos: int,
    end: int,
    base: int,
    big: bool,
    if_linktype: npt.NDArray[np.uint16],  # const uint16_t[::1]
    if_snaplen: npt.NDArray[np.uint32],
    if_mul: npt.NDArray[np.int64],
    if_div: npt.NDArray[np.int64],
    if_shift: npt.NDArray[np.int32],
    if_offset_ns: npt.NDArray[np.int64],
    rec_bytes: npt.NDArray[np.uint8],
    kind: npt.NDArray[np.uint8],
    ts_ns: npt.NDArray[np.int64],
    frame_offset: npt.NDArray[np.int64],
    file_offset: npt.NDArray[np.int64],
    caplen: npt.NDArray[np.uint32],
    wirelen: npt.NDArray[np.uint32],
    l3_offset: npt.NDArray[np.uint16],
    ethertype: npt.NDArray[np.uint16],
    linktype_col: npt.NDArray[np.uint16],
    interface: npt.NDArray[np.uint16],
    row: int,
    if_first: int = 0,  # capture-wide number of the section's interface 0
) -> tuple[int, int, int, int, int, int]:  # status, pos, row, need, value, skipped_blocks
    ...
def build_frames(
    data: npt.NDArray[np.uint8],  # const uint8_t[::1]
    frame_offset: npt.NDArray[np.int64],
    caplen: npt.NDArray[np.uint32],
    wirelen: npt.NDArray[np.uint32],
    l3_offset: npt.NDArray[np.uint16],
    linktype: npt.NDArray[np.uint16],
    ethertype: npt.NDArray[np.uint16],
    kind: npt.NDArray[np.uint8],
    ts_ns: npt.NDArray[np.int64],
    rec_bytes: npt.NDArray[np.uint8],  # translated PACKET rows viewed as bytes
    rows: npt.NDArray[np.int64],
    out: npt.NDArray[np.uint8],  # uint8_t[::1], written
    out_linktype: int,
    nanosecond: bool,
    epb_interface: npt.NDArray[np.uint32] | None = None,  # const uint32_t[::1]: pcapng output
) -> int: ...
def reframe_refused(
    linktype: npt.NDArray[np.uint16],  # const uint16_t[::1]
    ethertype: npt.NDArray[np.uint16],
    rows: npt.NDArray[np.int64],
    out_linktype: int,
) -> int: ...
