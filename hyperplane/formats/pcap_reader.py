"""Reading capture files: a streaming pcap/pcapng reader.

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
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from collections.abc import Iterator

import numpy as np

from hyperplane._core import _pcap
from hyperplane.formats.capture import (
    _IDB,
    _SHB,
    LINKTYPE_ETHERNET,
    MAX_BLOCK_BYTES,
    MAX_RECORD_BYTES,
    SUPPORTED_LINKTYPES,
    CaptureChunk,
    CaptureError,
    Interface,
    PacketKind,
    _columns,
)

__all__ = ["CaptureReader", "read_capture", "load_capture", "DEFAULT_BUFFER_BYTES", "MAX_INTERFACES"]

DEFAULT_BUFFER_BYTES = 16 << 20

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}


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
