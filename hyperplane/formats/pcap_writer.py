"""Writing capture files: classic pcap or pcapng, from read chunks and translated records.

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
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np

from hyperplane._core import _pcap
from hyperplane.formats.capture import (
    _IDB,
    _SHB,
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    MAX_RECORD_BYTES,
    SUPPORTED_LINKTYPES,
    CaptureChunk,
    CaptureError,
    Interface,
)
from hyperplane.records import PACKET

__all__ = ["CaptureWriter", "write_capture"]

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
        self._out = np.empty(0, np.uint8)  # the frames of a write, built here, then written
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
        if len(self._out) < size:  # one buffer for every write: a chunk's frames fault no new pages in
            self._out = np.empty(max(size, 2 * len(self._out)), np.uint8)
        out = self._out
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
        self._out = np.empty(0, np.uint8)
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
