"""Capture files in and out: a streaming pcap/pcapng reader and a pcap writer.

Why its own reader: replay must turn millions of frames into packet records per second, so the
per-packet work runs compiled (``_pcap.pyx``) over bounded buffers; this module keeps the file,
the rare header blocks and the error messages.

Reading (:func:`read_capture`) yields :class:`CaptureChunk` objects in file order. Every packet
record in the file becomes exactly one row, with a :class:`PacketKind` telling whether the
emulator can take it (``EMULATED``: IPv4, unfragmented or first fragment, any IP protocol) or
why not (IPv6, ARP, other ethertypes, later fragments, cut short by the snap length, malformed
IPv4). Rows that are not ``EMULATED`` still carry ``time`` and ``length`` (bytes from the L3
header on the wire; the IPv6 total length for IPv6); IPv4 fragments and malformed-but-readable
IPv4 headers also carry addresses and protocol.

Formats: classic pcap (micro- and nanosecond magic, either byte order) and pcapng (sections in
either byte order, several interfaces with their own link type, ``if_tsresol`` and
``if_tsoffset``; EPB, SPB and the obsolete PB carry packets; other blocks are skipped and
counted). Link types: Ethernet with 802.1Q/802.1ad tags (1), Linux cooked SLL (113) and SLL2
(276), raw IP where the version nibble decides (12, 14, 101, 228, 229), BSD loopback (0, 108).
An SPB has no timestamp: its rows have time 0 (plus ``if_tsoffset``).

Limits and bad input: a packet may hold at most 262,144 captured bytes (``MAX_RECORD_BYTES``,
libpcap's own maximum snap length) and a pcapng block at most 16 MiB; anything larger, a wrong
magic, a short file header, an unknown link type, a pcapng block whose trailing length differs
from its leading one, a packet for an undescribed interface, or a packet time beyond the 64-bit
nanosecond clock (pcapng units times ``if_tsresol`` past 2262) raises :class:`CaptureError`
naming the file and byte offset. A file that ends inside a record (the last one, necessarily) is
a partial read: the complete records are returned, a ``warnings.warn`` names the offset and
``reader.truncated_bytes`` counts what was left; ``strict=True`` raises instead.

Writing (:class:`CaptureWriter`, :func:`write_capture`) produces little-endian classic pcap or
pcapng (a ``.pcapng`` path), micro- or nanosecond, from chunks plus translated records: each
selected frame keeps its bytes and link layer, the record's addresses, ports and ICMP echo
identifier are written into it and the IPv4, TCP, UDP and ICMP checksums are updated
incrementally (RFC 1624). A UDP checksum of 0 (none) stays 0. pcapng keeps every input interface
(one IDB per input interface and link type). A pcap has one link type: frames of another are
re-framed behind a synthesized header (Ethernet or Linux SLL/SLL2 without addresses, BSD
loopback, none for raw IP) when their L3 packet survives whole (IPv4 and IPv6 always), and
otherwise refused with a :class:`CaptureError` naming the input file and the interface block.
Timestamps a pcap cannot hold (before 1970, after 2106) are refused the same way. ICMP error
messages keep their embedded (quoted) header as captured.

A streaming replay::

    reader = read_capture("in.pcap")
    with CaptureWriter("out.pcap", reader.output_linktype, reader.nanosecond) as out:
        for chunk in reader:
            emulate = chunk.kind == PacketKind.EMULATED
            translated, delivered = ...  # the pipeline, on chunk.records[emulate]
            out.write(chunk, translated, delivered)   # PACKET rows, bool mask, both len(chunk)
    reader.counts   # packets by PacketKind
"""

from __future__ import annotations

import enum
import io
import os
import struct
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from hyperplane.errors import HyperplaneError

from . import _pcap
from .records import PACKET

__all__ = [
    "CaptureError",
    "PacketKind",
    "Interface",
    "CaptureChunk",
    "CaptureReader",
    "CaptureWriter",
    "read_capture",
    "load_capture",
    "write_capture",
    "MAX_RECORD_BYTES",
    "LINKTYPE_NULL",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "LINKTYPE_LOOP",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL2",
]

MAX_RECORD_BYTES: int = _pcap.MAX_RECORD_BYTES
MAX_BLOCK_BYTES: int = _pcap.MAX_BLOCK_BYTES
DEFAULT_BUFFER_BYTES = 16 << 20

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
SUPPORTED_LINKTYPES = frozenset(_pcap.LINKTYPES)

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}
_SHB = 0x0A0D0D0A
_IDB = 1


class CaptureError(HyperplaneError):
    """A capture file that cannot be read: which file, at which byte, and what is wrong.

    ``str(error)`` reads ``in.pcap: byte 1234: record length 4000000 exceeds the 262144-byte
    limit``. ``offset`` is ``None`` when the problem is not at a place in the file (cannot open).
    """

    def __init__(self, file: str, offset: int | None, problem: str) -> None:
        self.file = file
        self.offset = offset
        self.problem = problem
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"byte {self.offset}: " if self.offset is not None else ""
        return f"{self.file}: {where}{self.problem}"

    def __reduce__(self):
        return (type(self), (self.file, self.offset, self.problem))


class PacketKind(enum.IntEnum):
    """Why a packet can (``EMULATED``) or cannot be pushed through the emulator."""

    EMULATED = _pcap.KIND_EMULATED    # IPv4, unfragmented or first fragment, any protocol
    IPV6 = _pcap.KIND_IPV6
    ARP = _pcap.KIND_ARP
    NON_IP = _pcap.KIND_NON_IP        # another ethertype (or 802.3 LLC)
    FRAGMENT = _pcap.KIND_FRAGMENT    # IPv4 fragment with a non-zero offset: no L4 header
    TRUNCATED = _pcap.KIND_TRUNCATED  # captured too short to read the L3/L4 header
    MALFORMED = _pcap.KIND_MALFORMED  # IPv4 link type/ethertype but bad version, IHL or length


@dataclass(frozen=True)
class Interface:
    """A capture interface: classic pcap has one, pcapng one per IDB."""

    linktype: int
    snaplen: int
    ts_resolution: float  # seconds per timestamp unit
    name: str | None = None
    ts_offset: int = 0    # seconds added to every timestamp (pcapng if_tsoffset)
    offset: int = 0       # where it is described in the file: its IDB (0: the pcap header)
    section: int = 0      # pcapng section number, from 0


@dataclass(eq=False)
class CaptureChunk:
    """Consecutive packets of a capture: records plus what a writer needs to rebuild frames.

    All arrays have one entry per packet, in file order; ``index`` is the position of the first
    row in the whole capture. ``data`` holds the frame bytes: frame ``i`` is
    ``data[frame_offset[i] : frame_offset[i] + caplen[i]]`` (see :meth:`frame`).
    """

    index: int
    records: np.ndarray        # PACKET
    kind: np.ndarray           # uint8, PacketKind
    ts_ns: np.ndarray          # int64, timestamp as integer nanoseconds since the epoch
    caplen: np.ndarray         # uint32, captured bytes
    wirelen: np.ndarray        # uint32, bytes on the wire
    l3_offset: np.ndarray      # uint16, where the L3 header starts in the frame (after VLAN tags)
    ethertype: np.ndarray      # uint16, L3 protocol (0x0800, 0x86DD, 0x0806, ...; 0 if unknown)
    linktype: np.ndarray       # uint16
    interface: np.ndarray      # uint16, interface number in the capture (IDBs of all sections
                               # counted in file order; the section's id for one section; 0 for pcap)
    file_offset: np.ndarray    # int64, where the packet's record (or block) starts in the file
    frame_offset: np.ndarray   # int64, where the frame starts in ``data``
    data: np.ndarray = field(repr=False)  # uint8
    # the capture's interfaces so far (``interfaces[interface[i]]``) and its file name, so that
    # a writer can describe them and name the place of what it cannot write
    interfaces: tuple[Interface, ...] = field(default=(), repr=False)
    source: str = ""

    def __len__(self) -> int:
        return len(self.records)

    def frame(self, i: int) -> bytes:
        """The captured bytes of packet ``i`` of this chunk (for scapy at the edge)."""
        start = int(self.frame_offset[i])
        return self.data[start : start + int(self.caplen[i])].tobytes()

    @property
    def emulated(self) -> np.ndarray:
        """Boolean mask of the rows the emulator takes."""
        return self.kind == PacketKind.EMULATED

    @classmethod
    def concatenate(cls, chunks: Iterable[CaptureChunk]) -> CaptureChunk:
        """One chunk from many (copies the frame bytes; meant for small captures and tests)."""
        chunks = list(chunks)
        if not chunks:
            return _empty_chunk()
        datas, offsets, base = [], [], 0
        for c in chunks:
            # compact each chunk's frames so unused buffer bytes are not copied
            lens = c.caplen.astype(np.int64)
            starts = np.concatenate(([0], np.cumsum(lens)[:-1])) if len(c) else lens
            parts = [c.data[o : o + n] for o, n in zip(c.frame_offset.tolist(), lens.tolist())]
            datas.append(np.concatenate(parts) if parts else np.empty(0, np.uint8))
            offsets.append(starts + base)
            base += int(lens.sum())
        cat = np.concatenate
        last = max(chunks, key=lambda c: len(c.interfaces))
        return cls(
            interfaces=last.interfaces,
            source=last.source,
            index=chunks[0].index,
            records=cat([c.records for c in chunks]),
            kind=cat([c.kind for c in chunks]),
            ts_ns=cat([c.ts_ns for c in chunks]),
            caplen=cat([c.caplen for c in chunks]),
            wirelen=cat([c.wirelen for c in chunks]),
            l3_offset=cat([c.l3_offset for c in chunks]),
            ethertype=cat([c.ethertype for c in chunks]),
            linktype=cat([c.linktype for c in chunks]),
            interface=cat([c.interface for c in chunks]),
            file_offset=cat([c.file_offset for c in chunks]),
            frame_offset=cat(offsets).astype(np.int64),
            data=cat(datas) if datas else np.empty(0, np.uint8),
        )


def _columns(n: int) -> dict[str, np.ndarray]:
    return {
        "records": np.empty(n, dtype=PACKET),
        "kind": np.empty(n, np.uint8),
        "ts_ns": np.empty(n, np.int64),
        "frame_offset": np.empty(n, np.int64),
        "file_offset": np.empty(n, np.int64),
        "caplen": np.empty(n, np.uint32),
        "wirelen": np.empty(n, np.uint32),
        "l3_offset": np.empty(n, np.uint16),
        "ethertype": np.empty(n, np.uint16),
        "linktype": np.empty(n, np.uint16),
        "interface": np.empty(n, np.uint16),
    }


def _empty_chunk(index: int = 0) -> CaptureChunk:
    columns: dict[str, Any] = _columns(0)
    return CaptureChunk(index=index, data=np.empty(0, np.uint8), **columns)


_SCAN_PROBLEMS = {
    _pcap.STATUS_RECORD_TOO_LONG: lambda v: (
        f"record length {v} exceeds the {MAX_RECORD_BYTES}-byte limit"
    ),
    _pcap.STATUS_BLOCK_LENGTH: lambda v: (
        f"block length {v} is invalid (a pcapng block is a multiple of 4, at least 12 bytes, "
        "and a packet block at least 32)"
    ),
    _pcap.STATUS_BLOCK_TRAILER: lambda v: (
        f"block length mismatch: the trailing length field reads {v}"
    ),
    _pcap.STATUS_BLOCK_TOO_LONG: lambda v: (
        f"block length {v} exceeds the {MAX_BLOCK_BYTES}-byte limit"
    ),
    _pcap.STATUS_BAD_INTERFACE: lambda v: f"packet for interface {v}, which no IDB described",
    _pcap.STATUS_CAPLEN_BLOCK: lambda v: f"captured length {v} overruns its block",
    _pcap.STATUS_TIME_RANGE: lambda v: (
        f"packet timestamp {v % (1 << 64)} (in its interface's units, plus its if_tsoffset) lies "
        "beyond the 64-bit nanosecond clock (years 1678 to 2262)"
    ),
}
MAX_INTERFACES = 65536  # interface numbers are 16-bit in the packet rows


class CaptureReader:
    """A single pass over a capture file, as :class:`CaptureChunk` objects.

    Iterate it (once) for the chunks; the counters fill in as it goes. Use it as a context
    manager, or let the iteration run to its end, to close the file. Capture-level facts:
    ``format`` (``"pcap"``/``"pcapng"``), ``byte_order`` (of the first section), ``nanosecond``,
    ``ts_resolution`` (finest, seconds), ``interfaces`` (of the current section),
    ``all_interfaces`` (of every section so far, numbered as the rows' ``interface``),
    ``linktype`` (of the first interface), ``output_linktype`` (what a pcap writer should use to
    keep every frame's link layer if it can).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        chunk_packets: int = 65536,
        *,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        strict: bool = False,
    ) -> None:
        if chunk_packets < 1:
            raise ValueError("chunk_packets must be at least 1")
        self.path = os.fspath(path)
        self.name = os.path.basename(self.path) or self.path
        self.chunk_packets = int(chunk_packets)
        self.buffer_bytes = max(int(buffer_bytes), 64 << 10)
        self.strict = strict
        self.interfaces: list[Interface] = []
        self.all_interfaces: list[Interface] = []
        self._all_tuple: tuple[Interface, ...] = ()
        self._if_first = 0  # capture-wide number of the current section's interface 0
        self.sections = 0
        self.packets = 0
        self.skipped_blocks = 0
        self.truncated_bytes = 0
        self.counts: dict[PacketKind, int] = {k: 0 for k in PacketKind}
        self._kind_counts = np.zeros(256, np.int64)
        self._started = False
        self._big = False
        self._tsres: list[tuple[int, int]] = []
        self._if_cols = _InterfaceColumns()
        try:
            self._file: io.FileIO | None = open(self.path, "rb", buffering=0)
        except OSError as exc:
            raise CaptureError(self.name, None, f"cannot open: {exc.strerror or exc}") from exc
        try:
            self._buf = np.empty(self.buffer_bytes, np.uint8)
            self._base = 0  # file offset of _buf[0]
            self._fill = 0
            self._pos = 0
            self._eof = False
            self._read_more()
            self._open_header()
        except BaseException:
            self.close()
            raise

    # -- capture-level facts ------------------------------------------------------------------

    @property
    def linktype(self) -> int | None:
        return self.interfaces[0].linktype if self.interfaces else None

    @property
    def linktypes(self) -> list[int]:
        return [i.linktype for i in self.interfaces]

    @property
    def output_linktype(self) -> int:
        """The link type for an output file: the capture's own if all interfaces share one,
        else Ethernet (frames of other link types are then re-framed behind Ethernet)."""
        kinds = {i.linktype for i in self.all_interfaces}
        return kinds.pop() if len(kinds) == 1 else LINKTYPE_ETHERNET

    @property
    def ts_resolution(self) -> float:
        return min((i.ts_resolution for i in self.interfaces), default=1e-6)

    @property
    def nanosecond(self) -> bool:
        """True if timestamps are finer than a microsecond (write the output in nanoseconds)."""
        return self.ts_resolution < 1e-6

    @property
    def byte_order(self) -> str:
        return self._first_order

    # -- file plumbing --------------------------------------------------------------------------

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, offset: int | None, problem: str) -> CaptureError:
        return CaptureError(self.name, offset, problem)

    def _read_more(self, need: int = 0) -> bool:
        """Move the unread tail to a fresh buffer and fill it; False at end of file.

        A fresh buffer (not an in-place shift) because chunks already handed out keep views into
        the old one. ``need`` is the number of bytes the next record needs from ``_pos``.
        """
        if self._eof or self._file is None:
            return False
        tail = self._fill - self._pos
        size = max(self.buffer_bytes, need + 4096, tail + 4096)
        if self._pos > 0 or size > len(self._buf):
            buf = np.empty(size, np.uint8)
            buf[:tail] = self._buf[self._pos : self._fill]
            self._base += self._pos
            self._buf, self._pos, self._fill = buf, 0, tail
        view = self._buf.data
        before = self._fill
        while self._fill < len(self._buf):
            try:
                got = self._file.readinto(view[self._fill :])
            except OSError as exc:
                raise self._error(self._base + self._fill, f"read failed: {exc}") from exc
            if not got:
                self._eof = True
                break
            self._fill += got
        return self._fill > before

    def _ensure(self, n: int) -> bool:
        """At least ``n`` unread bytes in the buffer, reading more if needed."""
        while self._fill - self._pos < n:
            if not self._read_more(n):
                return False
        return True

    def _bytes(self, n: int) -> bytes:
        return self._buf[self._pos : self._pos + n].tobytes()

    # -- headers and rare blocks ----------------------------------------------------------------

    def _open_header(self) -> None:
        if self._fill == 0:
            raise self._error(0, "file is empty (no capture header)")
        if not self._ensure(4):
            raise self._error(0, f"truncated file header ({self._fill} bytes)")
        magic = self._bytes(4)
        if magic in _PCAP_MAGIC:
            self.format = "pcap"
            order, nano = _PCAP_MAGIC[magic]
            if not self._ensure(24):
                raise self._error(
                    0, f"truncated pcap global header ({self._fill} of 24 bytes)"
                )
            _, major, minor, _, _, snaplen, linktype = struct.unpack(order + "IHHiIII", self._bytes(24))
            self._big = order == ">"
            self._first_order = "big" if self._big else "little"
            self._nano = nano
            self.version = (major, minor)
            linktype &= 0xFFFF  # upper bits carry FCS information
            if linktype not in SUPPORTED_LINKTYPES:
                raise self._error(20, f"unknown link type {linktype}")
            self.interfaces = [Interface(linktype, snaplen, 1e-9 if nano else 1e-6)]
            self.all_interfaces = list(self.interfaces)
            self._all_tuple = tuple(self.all_interfaces)
            self._tsres = [(10, 9 if nano else 6)]
            self._linktype = linktype
            self._pos = 24
        elif struct.unpack("<I", magic)[0] == _SHB:
            self.format = "pcapng"
            if not self._handle_shb():
                raise self._error(0, f"truncated section header ({self._fill} bytes)")
            self._first_order = "big" if self._big else "little"
            # read the interfaces described before the first packet, so facts are known now. Each
            # turn consumes a whole block or stops: a block cut by the end of the file is left at
            # _pos for the scan, which reports the partial read (issue 9: an SHB cut short here
            # used to be retried forever)
            while self._ensure(8):
                btype = struct.unpack((">" if self._big else "<") + "I", self._bytes(4))[0]
                if btype == _SHB:
                    ok = self._handle_shb()
                elif btype == _IDB:
                    ok = self._handle_idb()
                else:
                    break
                if not ok:
                    break
        else:
            raise self._error(
                0, f"not a pcap or pcapng file (magic {magic.hex()})"
            )

    def _handle_shb(self) -> bool:
        """Parse the section header at ``_pos``; False if the file ends inside it."""
        start = self._base + self._pos
        if not self._ensure(12):
            return False
        bom = self._bytes(12)[8:12]
        if bom == b"\x4d\x3c\x2b\x1a":
            self._big = False
        elif bom == b"\x1a\x2b\x3c\x4d":
            self._big = True
        else:
            raise self._error(start + 8, f"section header with bad byte-order magic {bom.hex()}")
        order = ">" if self._big else "<"
        blen = struct.unpack(order + "I", self._bytes(8)[4:8])[0]
        if blen < 28 or blen % 4:
            raise self._error(start, f"section header block length {blen} is invalid")
        if blen > MAX_BLOCK_BYTES:
            raise self._error(start, f"block length {blen} exceeds the {MAX_BLOCK_BYTES}-byte limit")
        if not self._ensure(blen):
            return False
        block = self._bytes(blen)
        major, minor = struct.unpack(order + "HH", block[12:16])
        if self.sections == 0:
            self.version = (major, minor)
        if major != 1:
            raise self._error(start + 12, f"unsupported pcapng version {major}")
        trailer = struct.unpack(order + "I", block[-4:])[0]
        if trailer != blen:
            raise self._error(start, f"block length mismatch: {blen} at the start, {trailer} at the end")
        # a new section starts a new list of interfaces
        self.sections += 1
        self._if_first = len(self.all_interfaces)
        self.interfaces = []
        self._tsres = []
        self._if_cols = _InterfaceColumns()
        self._pos += blen
        return True

    def _handle_idb(self) -> bool:
        """Parse the interface description at ``_pos``; False if the file ends inside it."""
        start = self._base + self._pos
        order = ">" if self._big else "<"
        if not self._ensure(8):
            return False
        blen = struct.unpack(order + "I", self._bytes(8)[4:8])[0]
        if blen < 20 or blen % 4:
            raise self._error(start, f"interface description block length {blen} is invalid")
        if blen > MAX_BLOCK_BYTES:
            raise self._error(start, f"block length {blen} exceeds the {MAX_BLOCK_BYTES}-byte limit")
        if not self._ensure(blen):
            return False
        block = self._bytes(blen)
        trailer = struct.unpack(order + "I", block[-4:])[0]
        if trailer != blen:
            raise self._error(start, f"block length mismatch: {blen} at the start, {trailer} at the end")
        linktype, _, snaplen = struct.unpack(order + "HHI", block[8:16])
        if linktype not in SUPPORTED_LINKTYPES:
            raise self._error(start + 8, f"unknown link type {linktype}")
        tsres: tuple[int, int] = (10, 6)  # (base, exponent): microseconds by default
        ts_offset = 0
        name = None
        opt = 16
        end = blen - 4
        while opt + 4 <= end:
            code, olen = struct.unpack(order + "HH", block[opt : opt + 4])
            value = block[opt + 4 : opt + 4 + olen]
            if code == 0:
                break
            if opt + 4 + olen > end:
                raise self._error(start + opt, f"interface option {code} overruns its block")
            if code == 9 and olen >= 1:
                raw = value[0]
                tsres = (2, raw & 0x7F) if raw & 0x80 else (10, raw)
            elif code == 14 and olen >= 8:
                ts_offset = struct.unpack(order + "q", value[:8])[0]
            elif code == 2:
                name = value.decode("utf-8", "replace").rstrip("\0")
            opt += 4 + olen + (-olen % 4)
        base, exp = tsres
        if base == 10 and exp > 18 or base == 2 and exp > 63:
            raise self._error(start, f"interface time resolution {base}^-{exp} is not supported")
        if abs(ts_offset) > (1 << 62) // 10**9:
            raise self._error(start, f"interface time offset {ts_offset} s is out of range")
        if len(self.all_interfaces) >= MAX_INTERFACES:
            raise self._error(start, f"more than {MAX_INTERFACES} interfaces in the capture")
        itf = Interface(linktype, snaplen, float(base) ** -exp, name, ts_offset, start,
                        max(self.sections - 1, 0))
        self.interfaces.append(itf)
        self.all_interfaces.append(itf)
        self._tsres.append(tsres)
        self._if_cols.append(itf, base, exp)
        self._pos += blen
        return True

    # -- the scan ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[CaptureChunk]:
        if self._started:
            raise RuntimeError("a CaptureReader can be iterated only once")
        self._started = True
        try:
            yield from self._chunks()
        finally:
            self.close()

    def _scan(self, cols: dict[str, np.ndarray], row: int) -> tuple[int, int, int, int]:
        c = cols
        rec_bytes = c["records"].view(np.uint8)
        common = (
            rec_bytes, c["kind"], c["ts_ns"], c["frame_offset"], c["file_offset"],
            c["caplen"], c["wirelen"], c["l3_offset"], c["ethertype"], c["linktype"],
            c["interface"], row,
        )
        if self.format == "pcap":
            status, self._pos, row, need, value = _pcap.scan_pcap(
                self._buf, self._pos, self._fill, self._base, self._big, self._nano,
                self._linktype, *common
            )
        else:
            ic = self._if_cols.view
            status, self._pos, row, need, value, skipped = _pcap.scan_pcapng(
                self._buf, self._pos, self._fill, self._base, self._big,
                ic["linktype"], ic["snaplen"], ic["mul"], ic["div"], ic["shift"],
                ic["offset_ns"], *common, self._if_first
            )
            self.skipped_blocks += skipped
        return status, row, need, value

    def _chunks(self) -> Iterator[CaptureChunk]:
        while True:
            cols = _columns(self._rows_fit())
            data = self._buf
            row = 0
            done = False
            while True:
                status, row, need, value = self._scan(cols, row)
                if status == _pcap.STATUS_FULL:
                    break
                if status == _pcap.STATUS_BLOCK:
                    if row and not self._block_fits():
                        break  # hand out what we have before switching buffers
                    if self._bytes(4) == b"\x0a\x0d\x0d\x0a":
                        ok = self._handle_shb()
                    else:
                        ok = self._handle_idb()
                    if not ok:
                        self._truncated_tail()
                        done = True
                        break
                    if not row:
                        data = self._buf
                    continue
                if status == _pcap.STATUS_NEED_DATA:
                    if row:
                        break
                    if not self._read_more(need):
                        if self._fill > self._pos:
                            self._truncated_tail()
                        done = True
                        break
                    data = self._buf
                    if len(cols["kind"]) < self._rows_fit():
                        cols = _columns(self._rows_fit())
                    continue
                offset = self._base + self._pos
                raise self._error(offset, _SCAN_PROBLEMS[status](value))
            if row:
                yield self._make_chunk(cols, row, data)
            if done:
                return

    def _rows_fit(self) -> int:
        """Rows to allocate for the next chunk: ``chunk_packets``, unless the buffer cannot
        hold that many packets (a packet takes at least 16 bytes in either format)."""
        return max(1, min(self.chunk_packets, (self._fill - self._pos) // 16 + 1))

    def _block_fits(self) -> bool:
        """Whether the whole SHB/IDB at ``_pos`` is in the buffer (handled without reading)."""
        left = self._fill - self._pos
        if left < 12:
            return False
        head = self._bytes(12)
        if head[:4] == b"\x0a\x0d\x0d\x0a":
            order = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        else:
            order = ">" if self._big else "<"
        return left >= struct.unpack(order + "I", head[4:8])[0]

    def _truncated_tail(self) -> None:
        left = self._fill - self._pos
        offset = self._base + self._pos
        if self.strict:
            raise self._error(offset, f"file ends inside a record ({left} bytes left)")
        self.truncated_bytes += left
        self._pos = self._fill
        warnings.warn(
            f"{self.name}: byte {offset}: file ends inside a record; the last {left} bytes "
            "were ignored (partial read)",
            stacklevel=4,
        )

    def _make_chunk(self, cols: dict[str, np.ndarray], n: int, data: np.ndarray) -> CaptureChunk:
        cut = {k: v[:n] for k, v in cols.items()}
        if len(self._all_tuple) != len(self.all_interfaces):
            self._all_tuple = tuple(self.all_interfaces)
        chunk = CaptureChunk(index=self.packets, data=data, interfaces=self._all_tuple,
                             source=self.name, **cut)
        self.packets += n
        self._kind_counts += np.bincount(cut["kind"], minlength=256)
        for k in PacketKind:
            self.counts[k] = int(self._kind_counts[k])
        return chunk


class _InterfaceColumns:
    """Per-interface arrays the compiled scan reads: link type, snap length and the timestamp
    conversion to nanoseconds (``mul``/``div`` for 10^-n resolutions, ``shift`` for 2^-n).

    Grown by doubling, one row per IDB: a section of many interfaces costs linear time (it was
    rebuilt per IDB, quadratic: 8,000 IDBs took a minute)."""

    def __init__(self) -> None:
        self.n = 0
        self._store = self._allocate(4)
        self.view = self._cut()

    @staticmethod
    def _allocate(n: int) -> dict[str, np.ndarray]:
        return {
            "linktype": np.zeros(n, np.uint16),
            "snaplen": np.zeros(n, np.uint32),
            "mul": np.ones(n, np.int64),
            "div": np.ones(n, np.int64),
            "shift": np.full(n, -1, np.int32),
            "offset_ns": np.zeros(n, np.int64),
        }

    def _cut(self) -> dict[str, np.ndarray]:
        return {k: v[: self.n] for k, v in self._store.items()}

    def append(self, itf: Interface, base: int, exp: int) -> None:
        i = self.n
        if i == len(self._store["linktype"]):
            bigger = self._allocate(2 * i)
            for k, v in self._store.items():
                bigger[k][:i] = v
            self._store = bigger
        cols = self._store
        cols["linktype"][i] = itf.linktype
        cols["snaplen"][i] = itf.snaplen & 0xFFFFFFFF
        cols["offset_ns"][i] = itf.ts_offset * 1_000_000_000
        if base == 2:
            cols["shift"][i] = exp
        elif exp <= 9:
            cols["mul"][i] = 10 ** (9 - exp)
        else:
            cols["div"][i] = 10 ** (exp - 9)
        self.n += 1
        self.view = self._cut()


def read_capture(
    path: str | os.PathLike[str],
    chunk_packets: int = 65536,
    *,
    buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    strict: bool = False,
) -> CaptureReader:
    """Open a pcap or pcapng file for one streaming pass.

    Iterating the reader yields :class:`CaptureChunk` objects of at most ``chunk_packets`` rows
    (fewer at buffer boundaries), whose frames live in buffers of about ``buffer_bytes``; memory
    stays bounded however large the file is. Raises :class:`CaptureError` for files that are not
    readable captures (at open for header problems, during iteration for record problems).
    ``strict=True`` turns the partial read of a file cut inside its last record into an error.
    """
    return CaptureReader(path, chunk_packets, buffer_bytes=buffer_bytes, strict=strict)


def load_capture(path: str | os.PathLike[str], *, strict: bool = False) -> tuple[CaptureReader, CaptureChunk]:
    """Read a whole (small) capture into one chunk: the finished reader (facts, counters) and
    the chunk."""
    with read_capture(path, strict=strict) as reader:
        chunk = CaptureChunk.concatenate(reader)
    return reader, chunk


_LINK_HEADER = {LINKTYPE_ETHERNET: 14, LINKTYPE_LINUX_SLL: 16, LINKTYPE_LINUX_SLL2: 20,
                LINKTYPE_NULL: 4, LINKTYPE_LOOP: 4}  # synthesized by _pcap.put_link; raw IP: none
_PCAP_SECONDS = 1 << 32  # a pcap record's seconds field: 1970 to 2106
_PCAPNG_SUFFIXES = (".pcapng", ".ntar")


class CaptureWriter:
    """Streams the output capture, little-endian, micro- or nanosecond: classic pcap, or pcapng
    (``format="pcapng"``, or a path ending in ``.pcapng``).

    ``write(chunk, records, mask)`` appends the rows of ``chunk`` selected by ``mask`` (all if
    ``None``), each frame rewritten with the addresses and ports of the same row of ``records``
    (the chunk's own if ``None``) and its checksums updated.

    pcapng keeps every input interface: one IDB per input interface and link type (name and
    ``if_tsoffset`` kept), each packet on its own interface, frames byte for byte. A pcap has one
    link type (``linktype``): frames of another one are re-framed behind a synthesized header
    (Ethernet, Linux SLL/SLL2, BSD loopback or none for raw IP) when their L3 packet survives it
    whole (IPv4 and IPv6 always; other protocols only behind ethertype-carrying headers). A frame
    that would not survive, or a timestamp outside pcap's 1970-2106, raises
    :class:`CaptureError` naming the input file and the byte offset of the interface block (or
    packet), before anything of that chunk is written.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | BinaryIO,
        linktype: int = LINKTYPE_ETHERNET,
        nanosecond: bool = False,
        snaplen: int = MAX_RECORD_BYTES,
        *,
        format: str | None = None,
    ) -> None:
        if linktype not in SUPPORTED_LINKTYPES:
            raise ValueError(f"cannot write link type {linktype}")
        if format is None:
            named = os.fspath(path) if isinstance(path, (str, os.PathLike)) else ""
            format = "pcapng" if named.lower().endswith(_PCAPNG_SUFFIXES) else "pcap"
        if format not in ("pcap", "pcapng"):
            raise ValueError(f"format must be 'pcap' or 'pcapng', not {format!r}")
        self.format = format
        self.linktype = int(linktype)
        self.nanosecond = bool(nanosecond)
        self.packets_written = 0
        self._idb_of: dict[int, int] = {}         # input interface << 16 | link type -> IDB
        self._idb_clock: list[tuple[int, int]] = []  # each IDB's if_tsoffset and unit, in ns
        if isinstance(path, (str, os.PathLike)):
            self.path: str | None = os.fspath(path)
            self._file: BinaryIO | None = open(self.path, "wb")
            self._owns = True
        else:
            self.path = None
            self._file = path
            self._owns = False
        self.name = os.path.basename(self.path) if self.path else "output"
        if format == "pcapng":
            self._file.write(_ng_block(_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        else:
            magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
            self._file.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, self.linktype))

    def write(
        self,
        chunk: CaptureChunk,
        records: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> int:
        """Append the selected rows of ``chunk`` as frames; returns how many were written."""
        if self._file is None:
            raise ValueError("write to a closed CaptureWriter")
        n = len(chunk)
        if records is None:
            records = chunk.records
        if records.dtype != PACKET or len(records) != n:
            raise ValueError(f"records must be {n} rows of records.PACKET")
        if mask is None:
            rows = np.arange(n, dtype=np.int64)
        else:
            mask = np.asarray(mask)
            if mask.dtype == bool:
                if len(mask) != n:
                    raise ValueError(f"mask has {len(mask)} entries for {n} rows")
                rows = np.flatnonzero(mask).astype(np.int64)
            else:
                rows = mask.astype(np.int64, copy=False)
                if len(rows) and (rows.min() < 0 or rows.max() >= n):
                    raise IndexError(f"row outside the chunk of {n}")
        if len(rows) == 0:
            return 0
        rows = np.ascontiguousarray(rows)
        ts = chunk.ts_ns
        epb: np.ndarray | None = None
        units_given = self.nanosecond
        if self.format == "pcapng":
            # timestamps in each output IDB's own units, from its if_tsoffset
            epb, shift, unit = self._interfaces_of(chunk, rows)
            ts = chunk.ts_ns.copy()
            ts[rows] -= shift
            self._check_times(chunk, rows, ts[rows], None)
            ts[rows] //= unit
            units_given = True
        else:
            self._check_reframing(chunk, rows)
            self._check_times(chunk, rows, ts[rows], _PCAP_SECONDS * 1_000_000_000)
        size = int(chunk.caplen[rows].sum(dtype=np.int64)) + 40 * len(rows)
        out = np.empty(size, np.uint8)
        used = _pcap.build_frames(
            chunk.data, chunk.frame_offset, chunk.caplen, chunk.wirelen, chunk.l3_offset,
            chunk.linktype, chunk.ethertype, chunk.kind, ts,
            np.ascontiguousarray(records).view(np.uint8), rows, out,
            self.linktype, units_given, epb,
        )
        self._file.write(out.data[:used])
        self.packets_written += len(rows)
        return len(rows)

    def _where(self, chunk: CaptureChunk, i: int) -> tuple[str, int, str]:
        """Input file, offset of row ``i``'s interface block, and the interface's description."""
        k = int(chunk.interface[i])
        itf = chunk.interfaces[k] if k < len(chunk.interfaces) else None
        offset = itf.offset if itf is not None else int(chunk.file_offset[i])
        return chunk.source or self.name, offset, f"interface {k} (link type {chunk.linktype[i]})"

    def _check_reframing(self, chunk: CaptureChunk, rows: np.ndarray) -> None:
        i = _pcap.reframe_refused(chunk.linktype, chunk.ethertype, rows, self.linktype)
        if i < 0:
            # a longer synthesized header must not push a frame past what readers take
            grown = (chunk.linktype[rows] != self.linktype) & (
                chunk.caplen[rows].astype(np.int64) - chunk.l3_offset[rows]
                + _LINK_HEADER.get(self.linktype, 0) > MAX_RECORD_BYTES)
            if grown.any():
                i = int(rows[np.argmax(grown)])
                source, offset, what = self._where(chunk, i)
                raise CaptureError(
                    source, offset,
                    f"{what}: its packet at byte {int(chunk.file_offset[i])} re-framed as link type "
                    f"{self.linktype} would exceed {MAX_RECORD_BYTES} bytes; write a pcapng output",
                )
            return
        if i >= 0:
            source, offset, what = self._where(chunk, i)
            etype = int(chunk.ethertype[i])
            raise CaptureError(
                source, offset,
                f"{what} cannot be written to {self.name}, a pcap of link type {self.linktype}: "
                f"its packet at byte {int(chunk.file_offset[i])} (ethertype 0x{etype:04x}) would "
                "not survive re-framing; write a pcapng output to keep every interface",
            )

    def _check_times(self, chunk: CaptureChunk, rows: np.ndarray, ts: np.ndarray, top: int | None) -> None:
        bad = ts < 0 if top is None else (ts < 0) | (ts >= top)
        if bad.any():
            i = int(rows[np.argmax(bad)])
            t = int(chunk.ts_ns[i])
            span = "its interface's if_tsoffset" if top is None else "pcap's 1970-2106"
            raise CaptureError(
                chunk.source or self.name, int(chunk.file_offset[i]),
                f"packet time {t / 1e9:.9f} s (since 1970) lies outside {span}: it cannot be "
                f"written to {self.name}",
            )

    def _interfaces_of(
        self, chunk: CaptureChunk, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The output IDB of each row (writing the IDBs not written yet), the nanoseconds to
        take from its timestamp (the IDB's if_tsoffset) and the IDB's unit in nanoseconds."""
        keys = (chunk.interface[rows].astype(np.int64) << 16) | chunk.linktype[rows]
        unique, which = np.unique(keys, return_inverse=True)
        ids = np.empty(len(unique), np.uint32)
        shift = np.empty(len(unique), np.int64)
        unit = np.empty(len(unique), np.int64)
        for k, key in enumerate(unique.tolist()):
            if key not in self._idb_of:
                itf_no, linktype = key >> 16, key & 0xFFFF
                itf = chunk.interfaces[itf_no] if itf_no < len(chunk.interfaces) else None
                self._write_idb(linktype, itf)
                self._idb_of[key] = len(self._idb_clock) - 1
            ids[k] = self._idb_of[key]
            shift[k], unit[k] = self._idb_clock[ids[k]]
        return np.ascontiguousarray(ids[which]), shift[which], unit[which]

    def _write_idb(self, linktype: int, itf: Interface | None) -> None:
        assert self._file is not None
        opts = b""
        # nanoseconds if asked, or if the input interface was finer than microseconds
        nano = self.nanosecond or (itf is not None and itf.ts_resolution < 1e-6)
        if nano:
            opts += _ng_option(9, bytes([9]))
        offset = itf.ts_offset if itf is not None else 0
        if offset:
            opts += _ng_option(14, struct.pack("<q", offset))
        if itf is not None and itf.name:
            opts += _ng_option(2, itf.name.encode("utf-8")[:1024])
        if opts:
            opts += _ng_option(0, b"")
        self._file.write(_ng_block(_IDB, struct.pack("<HHI", linktype, 0, 0) + opts))
        self._idb_clock.append((offset * 1_000_000_000, 1 if nano else 1000))

    def close(self) -> None:
        if self._file is not None:
            if self._owns:
                self._file.close()
            else:
                self._file.flush()
            self._file = None

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ng_block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _ng_option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def write_capture(
    path: str | os.PathLike[str] | BinaryIO,
    items: Iterable[CaptureChunk | tuple[CaptureChunk, np.ndarray | None, np.ndarray | None]],
    *,
    linktype: int = LINKTYPE_ETHERNET,
    nanosecond: bool = False,
    format: str | None = None,
) -> int:
    """Write a whole output capture from chunks, or ``(chunk, records, mask)`` triples; returns
    the number of packets written (``format`` as for :class:`CaptureWriter`)."""
    with CaptureWriter(path, linktype, nanosecond, format=format) as writer:
        for item in items:
            if isinstance(item, CaptureChunk):
                writer.write(item)
            else:
                writer.write(*item)
        return writer.packets_written
