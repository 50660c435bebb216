"""What a capture holds, shared by its reader and its writer.

A capture is read as :class:`CaptureChunk` objects: consecutive packets as packet records
(``records.PACKET``) plus, per packet, its :class:`PacketKind`, timestamp, lengths, link layer and
interface, and the frame bytes a writer needs to rebuild it. :class:`Interface` is a capture
interface (classic pcap has one, pcapng one per IDB). The link types and limits are those both
directions know; :class:`CaptureError` names the file, the byte offset and the problem.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hyperplane._core import _pcap
from hyperplane.errors import HyperplaneError
from hyperplane.records import PACKET

__all__ = [
    "CaptureError",
    "PacketKind",
    "Interface",
    "CaptureChunk",
    "MAX_RECORD_BYTES",
    "MAX_BLOCK_BYTES",
    "LINKTYPE_NULL",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "LINKTYPE_LOOP",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL2",
    "SUPPORTED_LINKTYPES",
]

MAX_RECORD_BYTES: int = _pcap.MAX_RECORD_BYTES
MAX_BLOCK_BYTES: int = _pcap.MAX_BLOCK_BYTES

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
SUPPORTED_LINKTYPES = frozenset(_pcap.LINKTYPES)

# pcapng block types read and written here: section header, interface description
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


def answer_frame(chunk: CaptureChunk, row: int, answer: np.ndarray) -> CaptureChunk:
    """A one-frame chunk of the packet the network answered ``chunk``'s row ``row`` with (a NAT
    gateway's RST, ``answer``: its PACKET row as delivered): the row's link header (Ethernet
    addresses swapped: it goes the other way) before a TCP/IPv4 header built for it."""
    from scapy.layers.inet import IP, TCP

    rec = answer[0]
    l3 = bytes(IP(src=str(ipaddress.IPv4Address(int(rec["src_ip"]))),
                  dst=str(ipaddress.IPv4Address(int(rec["dst_ip"]))))
               / TCP(sport=int(rec["src_port"]), dport=int(rec["dst_port"]), flags=int(rec["flags"]), seq=0))
    link = bytearray(chunk.frame(row)[:int(chunk.l3_offset[row])])
    if int(chunk.linktype[row]) == 1 and len(link) >= 12:  # Ethernet: destination and source MACs
        link[0:6], link[6:12] = link[6:12], link[0:6]
    frame = np.frombuffer(bytes(link) + l3, np.uint8)

    def one(value: Any, dtype: Any) -> np.ndarray:
        return np.array([value], dtype)

    return CaptureChunk(
        index=chunk.index + row, records=answer.copy(), kind=one(PacketKind.EMULATED, np.uint8),
        ts_ns=chunk.ts_ns[row:row + 1].copy(), caplen=one(len(frame), np.uint32), wirelen=one(len(frame), np.uint32),
        l3_offset=chunk.l3_offset[row:row + 1].copy(), ethertype=one(0x0800, np.uint16),
        linktype=chunk.linktype[row:row + 1].copy(), interface=chunk.interface[row:row + 1].copy(),
        file_offset=chunk.file_offset[row:row + 1].copy(), frame_offset=one(0, np.int64), data=frame.copy(),
        interfaces=chunk.interfaces, source=chunk.source)
