"""Capture files in and out: every packet gets a row, bad files get a clear error, and the
output capture carries the translated addresses with checksums that other tools accept."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import (
    ARP,
    GRE,
    ICMP,
    IP,
    LLC,
    TCP,
    UDP,
    CookedLinux,
    CookedLinuxV2,
    Dot1AD,
    Dot1Q,
    Ether,
    IPv6,
    PcapNgWriter,
    Raw,
    fragment,
    rdpcap,
    wrpcap,
)

import hyperplane as hp
from hyperplane._core import _pcap
from hyperplane.formats.capture import MAX_RECORD_BYTES, CaptureChunk, CaptureError, PacketKind
from hyperplane.formats.pcap_reader import load_capture, read_capture
from hyperplane.formats.pcap_writer import CaptureWriter, write_capture
from hyperplane.records import PACKET, ip, ip_str

K = PacketKind
T0 = 1_700_000_000


# -- builders ----------------------------------------------------------------------------------


def _write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _pcap_bytes(frames, order="<", nano=False, linktype=1, snaplen=65535) -> bytes:
    """A classic pcap by hand: ``frames`` are (sec, frac, data) or (sec, frac, data, orig)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, data, *orig in frames:
        out.append(struct.pack(order + "IIII", sec, frac, len(data), orig[0] if orig else len(data)))
        out.append(data)
    return b"".join(out)


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    blen = 12 + len(body)
    return struct.pack(order + "II", btype, blen) + body + struct.pack(order + "I", blen)


def _opt(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _shb(order: str) -> bytes:
    return _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def _idb(order: str, linktype: int, snaplen=0, tsresol=None, tsoffset=None, name=None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += _opt(order, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += _opt(order, 14, struct.pack(order + "q", tsoffset))
    if name is not None:
        opts += _opt(order, 2, name.encode())
    if opts:
        opts += _opt(order, 0, b"")
    return _block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts)


def _epb(order: str, iface: int, ts: int, data: bytes, orig=None) -> bytes:
    head = struct.pack(order + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                       len(data) if orig is None else orig)
    return _block(order, 6, head + data)


def _spb(order: str, data: bytes, orig=None) -> bytes:
    return _block(order, 3, struct.pack(order + "I", len(data) if orig is None else orig) + data)


def _tcp(src="10.0.1.5", dst="52.94.1.1", sport=40000, dport=443, flags="S", payload=b""):
    return IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags) / payload


def _rows(path, **kw):
    reader, chunk = load_capture(path, **kw)
    return reader, chunk


def _checksums_valid(pkt) -> bool:
    """Recompute every checksum with scapy and compare with what the frame carries."""
    fresh = pkt.copy()
    for layer in (IP, TCP, UDP, ICMP):
        if layer in fresh and not (layer is UDP and fresh[UDP].chksum == 0):
            del fresh[layer].chksum
    fresh = fresh.__class__(bytes(fresh))
    return bytes(fresh) == bytes(pkt)


# -- the record layout -------------------------------------------------------------------------


def test_compiled_record_layout_matches_the_packet_dtype():
    layout = _pcap.record_layout()
    assert layout.pop("itemsize") == PACKET.itemsize
    assert layout == {name: PACKET.fields[name][1] for name in PACKET.names}


# -- classic pcap, Ethernet --------------------------------------------------------------------


def test_every_ethernet_packet_gets_one_row_with_its_kind(tmp_path):
    big = IP(src="10.0.1.9", dst="52.94.1.9") / UDP(sport=5000, dport=6000) / (b"z" * 2500)
    frags = fragment(big, fragsize=1000)
    frames = [
        Ether() / _tcp(flags="S"),
        Ether() / Dot1Q(vlan=12) / IP(src="10.0.1.6", dst="8.8.8.8") / UDP(sport=5353, dport=53),
        Ether(type=0x88A8) / Dot1AD(vlan=100) / Dot1Q(vlan=7) / _tcp(sport=40001, flags="SA"),
        Ether() / IPv6() / TCP(),
        Ether() / ARP(),
        Ether() / IP(src="10.0.1.7", dst="1.1.1.1") / ICMP(type=8, id=0x1234),
        Ether() / IP(src="1.1.1.1", dst="10.0.1.7") / ICMP(type=0, id=0x1234),
        Ether() / IP(src="10.0.1.7", dst="1.1.1.1") / ICMP(type=3, code=1) / IP() / UDP(),
        Ether() / IP(src="10.0.1.8", dst="10.9.9.9") / GRE() / IP() / TCP(),
        *[Ether() / f for f in frags],
        Ether(dst="01:80:c2:00:00:00") / LLC() / Raw(b"\x00" * 30),
        Ether(type=0x88CC) / Raw(b"lldp"),
    ]
    path = str(tmp_path / "mix.pcap")
    wrpcap(path, frames)
    reader, chunk = _rows(path)
    kinds = [K(k) for k in chunk.kind]
    assert kinds == [
        K.EMULATED, K.EMULATED, K.EMULATED, K.IPV6, K.ARP, K.EMULATED, K.EMULATED,
        K.EMULATED, K.EMULATED, K.EMULATED, K.FRAGMENT, K.FRAGMENT, K.NON_IP, K.NON_IP,
    ]
    assert reader.packets == len(frames) == len(chunk)
    assert reader.counts[K.EMULATED] == 8 and reader.counts[K.FRAGMENT] == 2
    assert sum(reader.counts.values()) == len(frames)
    r = chunk.records
    assert (ip_str(r["src_ip"][0]), ip_str(r["dst_ip"][0])) == ("10.0.1.5", "52.94.1.1")
    assert (r["src_port"][0], r["dst_port"][0], r["proto"][0], r["flags"][0]) == (40000, 443, 6, 0x02)
    assert r["length"][0] == 40
    assert (r["src_port"][1], r["dst_port"][1], r["proto"][1], r["flags"][1]) == (5353, 53, 17, 0)
    assert chunk.l3_offset[1] == 18 and chunk.l3_offset[2] == 22
    assert (r["src_port"][2], r["flags"][2]) == (40001, 0x12)
    # ICMP echo: the identifier plays the port (request: src_port, reply: dst_port)
    assert (r["src_port"][5], r["dst_port"][5], r["flags"][5]) == (0x1234, 0, 8)
    assert (r["src_port"][6], r["dst_port"][6], r["flags"][6]) == (0, 0x1234, 0)
    assert (r["src_port"][7], r["dst_port"][7], r["flags"][7]) == (0, 1, 3)  # unreachable: its code rides in dst_port
    assert r["proto"][8] == 47
    # the first fragment carries the ports, the later ones only addresses
    assert (r["src_port"][9], r["dst_port"][9]) == (5000, 6000)
    assert ip_str(r["src_ip"][10]) == "10.0.1.9" and r["src_port"][10] == 0
    assert r["length"][3] == 60 and r["proto"][3] == 6  # IPv6 total length, next header
    assert list(chunk.ethertype[:5]) == [0x0800, 0x0800, 0x0800, 0x86DD, 0x0806]


def test_record_times_and_lengths_follow_the_capture(tmp_path):
    frames = [Ether() / _tcp(payload=b"x" * n) for n in (0, 10, 1400)]
    for i, f in enumerate(frames):
        f.time = T0 + i + 0.25
    path = str(tmp_path / "t.pcap")
    wrpcap(path, frames)
    _, chunk = _rows(path)
    assert list(chunk.records["time"]) == pytest.approx([T0 + 0.25, T0 + 1.25, T0 + 2.25])
    assert list(chunk.ts_ns) == [(T0 + i) * 10**9 + 250_000_000 for i in range(3)]
    assert list(chunk.records["length"]) == [40, 50, 1440]
    assert list(chunk.caplen) == [54, 64, 1454]
    assert chunk.frame(2) == bytes(frames[2])


def test_snaplen_cut_frames_are_truncated_not_lost(tmp_path):
    frames = [
        (T0, 0, bytes(Ether() / _tcp())[:40]),  # TCP header cut before its checksum
        (T0, 1, bytes(Ether() / _tcp())[:14 + 10]),  # IPv4 header cut
        (T0, 2, bytes(Ether())[:10]),  # not even an Ethernet header
        (T0, 3, bytes(Ether() / _tcp())[:54], 1500),  # complete headers, payload cut
    ]
    path = _write(tmp_path, "cut.pcap", _pcap_bytes(frames))
    _, chunk = _rows(path)
    assert [K(k) for k in chunk.kind] == [K.TRUNCATED, K.TRUNCATED, K.TRUNCATED, K.EMULATED]
    assert chunk.wirelen[3] == 1500


def test_malformed_ipv4_headers_are_counted_as_malformed(tmp_path):
    good = bytes(Ether() / _tcp())
    bad_version = good[:14] + bytes([0x65]) + good[15:]
    bad_ihl = good[:14] + bytes([0x43]) + good[15:]
    path = _write(tmp_path, "bad.pcap", _pcap_bytes([(T0, 0, bad_version), (T0, 0, bad_ihl)]))
    reader, chunk = _rows(path)
    assert [K(k) for k in chunk.kind] == [K.MALFORMED, K.MALFORMED]
    assert reader.counts[K.MALFORMED] == 2


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_both_byte_orders_and_resolutions_read_the_same_packets(tmp_path, order, nano):
    data = bytes(Ether() / _tcp(sport=1111, dport=2222))
    frac = 123_456_789 if nano else 123_456
    path = _write(tmp_path, "o.pcap", _pcap_bytes([(T0, frac, data)] * 3, order=order, nano=nano))
    reader, chunk = _rows(path)
    assert reader.format == "pcap" and reader.byte_order == ("big" if order == ">" else "little")
    assert reader.nanosecond is nano
    assert reader.ts_resolution == (1e-9 if nano else 1e-6)
    assert reader.linktype == 1 and len(reader.interfaces) == 1
    assert list(chunk.records["src_port"]) == [1111] * 3
    assert chunk.ts_ns[0] == T0 * 10**9 + (frac if nano else frac * 1000)


# -- other link types --------------------------------------------------------------------------


def test_linux_cooked_captures_sll_and_sll2(tmp_path):
    sll = str(tmp_path / "sll.pcap")
    wrpcap(sll, [CookedLinux(proto=0x0800) / _tcp(), CookedLinux(proto=0x86DD) / IPv6(),
                 CookedLinux(proto=0x0806) / ARP()])
    reader, chunk = _rows(sll)
    assert reader.linktype == 113
    assert [K(k) for k in chunk.kind] == [K.EMULATED, K.IPV6, K.ARP]
    assert chunk.l3_offset[0] == 16 and chunk.records["dst_port"][0] == 443

    sll2 = str(tmp_path / "sll2.pcap")
    wrpcap(sll2, [CookedLinuxV2(proto=0x0800) / _tcp(dport=8443), CookedLinuxV2(proto=0x88CC)])
    reader, chunk = _rows(sll2)
    assert reader.linktype == 276
    assert [K(k) for k in chunk.kind] == [K.EMULATED, K.NON_IP]
    assert chunk.l3_offset[0] == 20 and chunk.records["dst_port"][0] == 8443


@pytest.mark.parametrize("linktype", [101, 12, 228])
def test_raw_ip_captures_let_the_version_nibble_decide(tmp_path, linktype):
    frames = [(T0, 0, bytes(_tcp(dport=25))), (T0, 0, bytes(IPv6() / UDP())), (T0, 0, b"")]
    path = _write(tmp_path, "raw.pcap", _pcap_bytes(frames, linktype=linktype))
    _, chunk = _rows(path)
    assert [K(k) for k in chunk.kind] == [K.EMULATED, K.IPV6, K.TRUNCATED]
    assert chunk.l3_offset[0] == 0 and chunk.records["dst_port"][0] == 25


# -- pcapng ------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_interfaces_keep_their_own_link_type_and_clock(tmp_path, order):
    eth = bytes(Ether() / _tcp(sport=1001))
    raw = bytes(_tcp(sport=1002))
    sll = bytes(CookedLinux(proto=0x0800) / _tcp(sport=1003))
    data = b"".join([
        _shb(order),
        _idb(order, 1, name="eth0"),                           # microseconds (default)
        _idb(order, 101, tsresol=9),                           # nanoseconds
        _idb(order, 113, tsresol=0x80 | 10, tsoffset=100),     # 2^-10 s, +100 s
        _block(order, 4, b"\x00" * 8),                          # name resolution: skipped
        _epb(order, 0, T0 * 10**6 + 5, eth),
        _epb(order, 1, T0 * 10**9 + 7, raw),
        _epb(order, 2, (T0 << 10) + 512, sll),
        _block(order, 0x00000BAD, b"custom"),                   # custom block: skipped
        _spb(order, eth),
        _block(order, 5, b"\x00" * 12),                         # statistics: skipped
    ])
    path = _write(tmp_path, "multi.pcapng", data)
    reader, chunk = _rows(path)
    assert reader.format == "pcapng"
    assert reader.linktypes == [1, 101, 113]
    assert reader.interfaces[0].name == "eth0"
    assert reader.nanosecond and reader.ts_resolution == 1e-9
    assert reader.output_linktype == 1
    assert reader.skipped_blocks == 3
    assert list(chunk.records["src_port"]) == [1001, 1002, 1003, 1001]
    assert list(chunk.interface) == [0, 1, 2, 0]
    assert list(chunk.linktype) == [1, 101, 113, 1]
    assert list(chunk.l3_offset) == [14, 0, 16, 14]
    assert list(chunk.ts_ns[:3]) == [
        T0 * 10**9 + 5000, T0 * 10**9 + 7, (T0 + 100) * 10**9 + 500_000_000
    ]
    assert chunk.ts_ns[3] == 0  # a simple packet block has no timestamp
    assert all(k == K.EMULATED for k in chunk.kind)


def test_pcapng_sections_may_switch_byte_order(tmp_path):
    eth = bytes(Ether() / _tcp(sport=7))
    data = (_shb("<") + _idb("<", 1) + _epb("<", 0, 1, eth)
            + _shb(">") + _idb(">", 228) + _epb(">", 0, 2, bytes(_tcp(sport=8))))
    reader, chunk = _rows(_write(tmp_path, "two.pcapng", data))
    assert reader.sections == 2
    assert list(chunk.records["src_port"]) == [7, 8]
    assert list(chunk.linktype) == [1, 228]


def test_pcapng_written_by_scapy_reads_like_pcap(tmp_path):
    frames = [Ether() / _tcp(sport=p) for p in range(1000, 1010)]
    path = str(tmp_path / "scapy.pcapng")
    with PcapNgWriter(path) as w:
        for f in frames:
            w.write(f)
    reader, chunk = _rows(path)
    assert reader.format == "pcapng" and reader.linktype == 1
    assert list(chunk.records["src_port"]) == list(range(1000, 1010))


# -- streaming ---------------------------------------------------------------------------------


def test_small_chunks_and_buffers_cover_every_packet_in_file_order(tmp_path):
    frames = [Ether() / _tcp(sport=10000 + i, payload=b"p" * (i % 700)) for i in range(600)]
    path = str(tmp_path / "many.pcap")
    wrpcap(path, frames)
    whole = load_capture(path)[1]
    reader = read_capture(path, chunk_packets=37, buffer_bytes=64 << 10)
    chunks = list(reader)
    assert len(chunks) > 600 // 37
    assert all(1 <= len(c) <= 37 for c in chunks)
    assert [c.index for c in chunks] == list(np.cumsum([0] + [len(c) for c in chunks[:-1]]))
    joined = CaptureChunk.concatenate(chunks)
    assert np.array_equal(joined.records, whole.records)
    assert list(joined.records["src_port"]) == list(range(10000, 10600))
    # frames stay valid after the reader moved on to later buffers
    assert chunks[0].frame(5) == bytes(frames[5])
    assert joined.frame(599) == bytes(frames[599])


def test_pcapng_streams_across_buffer_boundaries(tmp_path):
    eth = [bytes(Ether() / _tcp(sport=i, payload=b"q" * 900)) for i in range(300)]
    data = _shb("<") + _idb("<", 1) + b"".join(_epb("<", 0, i, f) for i, f in enumerate(eth))
    path = _write(tmp_path, "stream.pcapng", data)
    chunks = list(read_capture(path, chunk_packets=50, buffer_bytes=64 << 10))
    assert [int(p) for c in chunks for p in c.records["src_port"]] == list(range(300))


# -- bad input ---------------------------------------------------------------------------------


def test_wrong_magic_is_a_capture_error_at_byte_zero(tmp_path):
    path = _write(tmp_path, "notes.txt", b"hello world, not a capture at all")
    with pytest.raises(CaptureError) as err:
        read_capture(path)
    assert err.value.file == "notes.txt" and err.value.offset == 0
    assert "not a pcap or pcapng file" in str(err.value)


def test_empty_file_and_short_header_are_capture_errors(tmp_path):
    with pytest.raises(CaptureError, match="empty"):
        read_capture(_write(tmp_path, "empty.pcap", b""))
    with pytest.raises(CaptureError, match=r"short.pcap: byte 0: truncated pcap global header"):
        read_capture(_write(tmp_path, "short.pcap", _pcap_bytes([])[:20]))


def test_missing_file_is_a_capture_error():
    with pytest.raises(CaptureError, match="cannot open") as err:
        read_capture("/nonexistent/in.pcap")
    assert err.value.offset is None


def test_absurd_record_length_names_file_and_offset(tmp_path):
    good = bytes(Ether() / _tcp())
    data = _pcap_bytes([(T0, 0, good)]) + struct.pack("<IIII", T0, 0, 4_000_000, 4_000_000)
    path = _write(tmp_path, "in.pcap", data + b"\0" * 64)
    offset = 24 + 16 + len(good)
    with pytest.raises(CaptureError) as err:
        list(read_capture(path))
    assert err.value.offset == offset
    assert str(err.value) == (
        f"in.pcap: byte {offset}: record length 4000000 exceeds the {MAX_RECORD_BYTES}-byte limit"
    )


def test_unknown_link_type_is_a_capture_error(tmp_path):
    with pytest.raises(CaptureError, match="byte 20: unknown link type 147"):
        read_capture(_write(tmp_path, "usr.pcap", _pcap_bytes([], linktype=147)))
    ng = _shb("<") + _idb("<", 1) + _idb("<", 147)
    with pytest.raises(CaptureError, match="unknown link type 147"):
        read_capture(_write(tmp_path, "usr.pcapng", ng))


def test_pcapng_block_length_mismatch_is_a_capture_error(tmp_path):
    epb = bytearray(_epb("<", 0, 0, bytes(Ether() / _tcp())))
    epb[-4:] = struct.pack("<I", len(epb) + 4)
    head = _shb("<") + _idb("<", 1)
    path = _write(tmp_path, "mismatch.pcapng", head + bytes(epb))
    with pytest.raises(CaptureError, match="block length mismatch") as err:
        list(read_capture(path))
    assert err.value.offset == len(head)


def test_pcapng_interface_with_an_absurd_clock_is_a_capture_error(tmp_path):
    data = _shb("<") + _idb("<", 1, tsoffset=1 << 62)
    with pytest.raises(CaptureError, match="time offset"):
        read_capture(_write(tmp_path, "clock.pcapng", data))
    data = _shb("<") + _idb("<", 1, tsresol=40)
    with pytest.raises(CaptureError, match="time resolution"):
        read_capture(_write(tmp_path, "clock.pcapng", data))


def test_pcapng_packet_for_an_undescribed_interface_is_a_capture_error(tmp_path):
    data = _shb("<") + _idb("<", 1) + _epb("<", 3, 0, bytes(Ether() / _tcp()))
    with pytest.raises(CaptureError, match="interface 3"):
        list(read_capture(_write(tmp_path, "iface.pcapng", data)))


def test_truncated_last_record_is_a_partial_read_with_a_warning(tmp_path):
    frames = [(T0, i, bytes(Ether() / _tcp(sport=i))) for i in range(5)]
    data = _pcap_bytes(frames)
    cut = len(data) - 10
    path = _write(tmp_path, "cut.pcap", data[:cut])
    with pytest.warns(UserWarning, match=r"cut.pcap: byte \d+: file ends inside a record"):
        reader, chunk = load_capture(path)
    assert list(chunk.records["src_port"]) == [0, 1, 2, 3]
    assert reader.truncated_bytes == 16 + 54 - 10
    with pytest.raises(CaptureError, match="file ends inside a record"):
        list(read_capture(path, strict=True))


def test_truncated_record_header_at_the_end_is_a_partial_read(tmp_path):
    data = _pcap_bytes([(T0, 0, bytes(Ether() / _tcp()))]) + b"\x01\x02\x03"
    with pytest.warns(UserWarning, match="partial read"):
        reader, chunk = load_capture(_write(tmp_path, "tail.pcap", data))
    assert len(chunk) == 1 and reader.truncated_bytes == 3


def test_truncated_pcapng_block_is_a_partial_read(tmp_path):
    data = _shb("<") + _idb("<", 1) + _epb("<", 0, 0, bytes(Ether() / _tcp())) * 2
    with pytest.warns(UserWarning, match="partial read"):
        _, chunk = load_capture(_write(tmp_path, "cut.pcapng", data[:-7]))
    assert len(chunk) == 1


def _mutations():
    return st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=8)


def _seed_captures() -> list[bytes]:
    frames = [Ether() / _tcp(sport=9), Ether() / Dot1Q() / IP() / UDP(), Ether() / IPv6(),
              Ether() / IP() / ICMP(), Ether() / ARP()]
    classic = _pcap_bytes([(T0, i, bytes(f)) for i, f in enumerate(frames)])
    ng = _shb("<") + _idb("<", 1, tsresol=9, tsoffset=5, name="a") + _idb("<", 113) + b"".join(
        _epb("<", 0, i, bytes(f)) for i, f in enumerate(frames)
    ) + _spb("<", bytes(frames[0])) + _epb("<", 1, 9, bytes(CookedLinux() / _tcp()))
    return [classic, ng]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(_seed_captures()), edits=_mutations(),
       cut=st.integers(0, 2000), tail=st.binary(max_size=64))
def test_mutated_captures_give_rows_or_a_capture_error(seed, edits, cut, tail):
    data = bytearray(seed)
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    data = bytes(data[: max(0, len(data) - cut)]) + tail
    fd, path = tempfile.mkstemp(suffix=".pcap")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                reader = read_capture(path, chunk_packets=3)
                chunks = list(reader)
            except CaptureError as err:
                assert err.file and err.problem
                return
        assert sum(len(c) for c in chunks) == reader.packets
        assert set(np.unique(np.concatenate([c.kind for c in chunks] or [[0]]))) <= set(K)
        # whatever was read can be written back without reading out of bounds, or is refused
        # (a time pcap cannot hold, a frame that cannot be re-framed) naming file and place
        for fmt in ("pcap", "pcapng"):
            sink = tempfile.TemporaryFile()
            with CaptureWriter(sink, linktype=1, format=fmt) as w:
                for c in chunks:
                    rec = c.records.copy()
                    rec["src_ip"] ^= 0x01010101
                    rec["src_port"] += 1
                    try:
                        w.write(c, rec)
                    except CaptureError as err:
                        assert err.file == os.path.basename(path) and err.offset is not None
                        break
    finally:
        os.unlink(path)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_give_rows_or_a_capture_error(blob):
    for head in (_pcap_bytes([]), _shb(">") + _idb(">", 1), b""):
        fd, path = tempfile.mkstemp()
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(head + blob)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    list(read_capture(path))
                except CaptureError:
                    pass
        finally:
            os.unlink(path)


# -- writing -----------------------------------------------------------------------------------


def _translate(chunk: CaptureChunk) -> np.ndarray:
    """What a NAT does: a new source address and port for every emulated row."""
    out = chunk.records.copy()
    emu = chunk.emulated
    out["src_ip"][emu] = ip("100.64.7.9")
    tcp_udp = emu & np.isin(out["proto"], [6, 17])
    out["src_port"][tcp_udp] = 61000 + np.arange(int(tcp_udp.sum()))
    echo = emu & (out["proto"] == 1) & (out["flags"] == 8)
    out["src_port"][echo] = 0x4242
    return out


def test_written_frames_carry_translations_and_checksums_scapy_accepts(tmp_path):
    frames = [
        Ether() / _tcp(payload=b"hello"),
        Ether() / Dot1Q(vlan=3) / IP(src="10.0.1.5", dst="8.8.8.8") / UDP(sport=999, dport=53) / b"q",
        Ether() / IP(src="10.0.1.5", dst="8.8.8.8") / UDP(sport=998, dport=53, chksum=0) / b"q",
        Ether() / IP(src="10.0.1.5", dst="1.1.1.1") / ICMP(type=8, id=7, seq=1) / b"ping",
        Ether() / IPv6() / TCP(),
        Ether() / ARP(),
    ]
    frames = [Ether(bytes(f)) for f in frames]  # checksums filled in
    src = str(tmp_path / "in.pcap")
    wrpcap(src, frames)
    reader, chunk = load_capture(src)
    out = str(tmp_path / "out.pcap")
    with CaptureWriter(out, reader.output_linktype, reader.nanosecond) as w:
        assert w.write(chunk, _translate(chunk)) == 6
    back = rdpcap(out)
    assert len(back) == 6
    for pkt in back:
        assert _checksums_valid(pkt), pkt.summary()
    assert (back[0][IP].src, back[0][TCP].sport, back[0][TCP].dport) == ("100.64.7.9", 61000, 443)
    assert back[0][TCP].load == b"hello" and back[0][TCP].seq == frames[0][TCP].seq
    assert back[1][Dot1Q].vlan == 3 and back[1][UDP].sport == 61001
    assert back[2][UDP].chksum == 0 and back[2][UDP].sport == 61002
    assert back[3][ICMP].id == 0x4242 and back[3][IP].src == "100.64.7.9"
    assert bytes(back[4]) == bytes(frames[4]) and bytes(back[5]) == bytes(frames[5])
    assert [float(p.time) for p in back] == pytest.approx([float(f.time) for f in frames])


def test_writer_keeps_untranslated_frames_byte_for_byte_and_honours_the_mask(tmp_path):
    frames = [Ether(bytes(Ether() / _tcp(sport=5000 + i))) for i in range(6)]
    src = str(tmp_path / "in.pcap")
    wrpcap(src, frames)
    _, chunk = load_capture(src)
    out = str(tmp_path / "out.pcap")
    mask = np.array([True, False, True, False, False, True])
    assert write_capture(out, [(chunk, None, mask)]) == 3
    assert [bytes(p) for p in rdpcap(out)] == [bytes(frames[i]) for i in (0, 2, 5)]


def test_fragments_get_new_addresses_and_the_first_one_new_ports(tmp_path):
    whole = IP(src="10.0.1.5", dst="52.94.1.1") / UDP(sport=4000, dport=5000) / (b"f" * 2400)
    frames = [Ether() / f for f in fragment(whole, fragsize=1000)]
    frames = [Ether(bytes(f)) for f in frames]
    src = str(tmp_path / "frag.pcap")
    wrpcap(src, frames)
    _, chunk = load_capture(src)
    rec = chunk.records.copy()
    rec["src_ip"] = ip("100.64.0.1")
    rec["src_port"][0] = 33333
    out = str(tmp_path / "out.pcap")
    write_capture(out, [(chunk, rec, None)])
    back = rdpcap(out)
    assert all(p[IP].src == "100.64.0.1" for p in back)
    for p in back:  # the IPv4 header checksum of every fragment is right
        hdr = IP(bytes(p[IP])[:20])
        fresh = hdr.copy()
        del fresh.chksum
        assert IP(bytes(fresh)).chksum == hdr.chksum
    # the reassembled datagram's UDP checksum (carried by the first fragment) is right
    payload = b"".join(bytes(p[IP].payload) for p in back)
    udp = UDP(payload)
    fresh = IP(src="100.64.0.1", dst="52.94.1.1") / UDP(sport=33333, dport=5000) / (b"f" * 2400)
    assert udp.sport == 33333 and udp.chksum == UDP(bytes(fresh[UDP])).chksum


def test_nanosecond_input_is_written_with_nanoseconds(tmp_path):
    data = bytes(Ether() / _tcp())
    src = _write(tmp_path, "ns.pcap", _pcap_bytes([(T0, 123_456_789, data)], nano=True))
    reader, chunk = load_capture(src)
    out = str(tmp_path / "out.pcap")
    write_capture(out, [chunk], nanosecond=reader.nanosecond)
    raw = open(out, "rb").read()
    assert raw[:4] == b"\x4d\x3c\xb2\xa1"
    _, again = load_capture(out)
    assert again.ts_ns[0] == T0 * 10**9 + 123_456_789


def test_other_link_types_are_reframed_behind_ethernet_sll_or_raw(tmp_path):
    data = (_shb("<") + _idb("<", 1) + _idb("<", 113) + _idb("<", 228)
            + _epb("<", 0, 1, bytes(Ether(bytes(Ether() / _tcp(sport=1)))))
            + _epb("<", 1, 2, bytes(CookedLinux(bytes(CookedLinux(proto=0x800) / _tcp(sport=2)))))
            + _epb("<", 2, 3, bytes(IP(bytes(_tcp(sport=3))))))
    reader, chunk = load_capture(_write(tmp_path, "mixed.pcapng", data))
    assert reader.output_linktype == 1
    eth_out = str(tmp_path / "eth.pcap")
    write_capture(eth_out, [(chunk, _translate(chunk), None)], linktype=reader.output_linktype)
    back = rdpcap(eth_out)
    assert [p[TCP].sport for p in back] == [61000, 61001, 61002]
    assert all(Ether in p and _checksums_valid(p) for p in back)
    raw_out = str(tmp_path / "raw.pcap")
    write_capture(raw_out, [chunk], linktype=228)
    again = load_capture(raw_out)[1]
    assert list(again.records["src_port"]) == [1, 2, 3] and list(again.l3_offset) == [0, 0, 0]
    sll_out = str(tmp_path / "sll.pcap")
    write_capture(sll_out, [chunk], linktype=113)
    sll = load_capture(sll_out)[1]
    assert list(sll.records["src_port"]) == [1, 2, 3] and list(sll.l3_offset) == [16, 16, 16]
    assert all(CookedLinux in p and p[TCP].sport == k + 1 for k, p in enumerate(rdpcap(sll_out)))


def test_writer_rejects_records_of_the_wrong_shape(tmp_path):
    src = str(tmp_path / "in.pcap")
    wrpcap(src, [Ether() / _tcp()] * 2)
    _, chunk = load_capture(src)
    with CaptureWriter(str(tmp_path / "o.pcap")) as w:
        with pytest.raises(ValueError, match="2 rows"):
            w.write(chunk, chunk.records[:1])
        with pytest.raises(IndexError):
            w.write(chunk, None, np.array([5]))


def test_tshark_reads_the_written_capture(tmp_path):
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark not installed: apt-get install -y tshark (DEBIAN_FRONTEND=noninteractive)")
    frames = [
        Ether() / _tcp(payload=b"GET / HTTP/1.1\r\n\r\n"),
        Ether() / Dot1Q(vlan=9) / IP(src="10.0.1.5", dst="8.8.8.8") / UDP(sport=999, dport=53) / b"q",
        Ether() / IP(src="10.0.1.5", dst="1.1.1.1") / ICMP(type=8, id=7),
    ]
    frames = [Ether(bytes(f)) for f in frames]
    src = str(tmp_path / "in.pcap")
    wrpcap(src, frames)
    reader, chunk = load_capture(src)
    out = str(tmp_path / "out.pcap")
    write_capture(out, [(chunk, _translate(chunk), None)], linktype=reader.output_linktype)
    fields = ["ip.src", "ip.checksum.status", "tcp.srcport", "tcp.checksum.status",
              "udp.srcport", "udp.checksum.status", "icmp.ident", "icmp.checksum.status"]
    cmd = [tshark, "-r", out, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
           "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=|"]
    for f in fields:
        cmd += ["-e", f]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = [line.split("|") for line in done.stdout.strip().splitlines()]
    assert len(rows) == 3
    good = "1"  # tshark's checksum status: 0 bad, 1 good, 2 unverified
    assert rows[0][0] == "100.64.7.9" and rows[0][2] == "61000"
    assert rows[0][1] == good and rows[0][3] == good
    assert rows[1][4] == "61001" and rows[1][5] == good
    assert rows[2][6].startswith("16962") or "0x4242" in rows[2][6]
    assert rows[2][7] == good


def test_captures_converted_by_wireshark_tools_read_the_same(tmp_path):
    editcap, mergecap = shutil.which("editcap"), shutil.which("mergecap")
    if editcap is None or mergecap is None:
        pytest.skip("editcap/mergecap not installed: apt-get install -y tshark")
    eth = [Ether() / _tcp(sport=2000 + i) for i in range(5)]
    for i, f in enumerate(eth):
        f.time = T0 + i * 0.001
    sll = [CookedLinux(proto=0x0800) / _tcp(sport=3000 + i) for i in range(3)]
    for i, f in enumerate(sll):
        f.time = T0 + 0.0005 + i * 0.001
    wrpcap(str(tmp_path / "eth.pcap"), eth)
    wrpcap(str(tmp_path / "sll.pcap"), sll)
    _, plain = load_capture(str(tmp_path / "eth.pcap"))
    for fmt in ("pcapng", "nsecpcap"):
        out = str(tmp_path / f"eth.{fmt}")
        subprocess.run([editcap, "-F", fmt, str(tmp_path / "eth.pcap"), out], check=True)
        reader, chunk = load_capture(out)
        assert np.array_equal(chunk.records, plain.records), fmt
        assert reader.nanosecond is (fmt == "nsecpcap")
    merged = str(tmp_path / "merged.pcapng")
    subprocess.run([mergecap, "-F", "pcapng", "-w", merged, str(tmp_path / "eth.pcap"),
                    str(tmp_path / "sll.pcap")], check=True)
    reader, chunk = load_capture(merged)
    assert sorted(reader.linktypes) == [1, 113]
    # mergecap interleaves by time: every packet once, in timestamp order
    assert list(chunk.records["src_port"]) == [2000, 3000, 2001, 3001, 2002, 3002, 2003, 2004]
    assert np.all(np.diff(chunk.ts_ns) > 0)


def test_blocks_and_records_larger_than_the_buffer_are_read_whole(tmp_path):
    ng = (_shb("<") + _idb("<", 1) + _epb("<", 0, 1, bytes(Ether() / _tcp(sport=1)))
          + _block("<", 0xBAD, b"x" * (3 << 20)) + _epb("<", 0, 2, bytes(Ether() / _tcp(sport=2))))
    reader = read_capture(_write(tmp_path, "big.pcapng", ng), buffer_bytes=64 << 10)
    assert [int(p) for c in reader for p in c.records["src_port"]] == [1, 2]
    assert reader.skipped_blocks == 1 and reader.version == (1, 0)
    classic = _pcap_bytes([(T0, 0, b"x" * MAX_RECORD_BYTES), (T0, 0, bytes(Ether() / _tcp()))])
    reader = read_capture(_write(tmp_path, "big.pcap", classic), buffer_bytes=64 << 10)
    assert [int(n) for c in reader for n in c.caplen] == [MAX_RECORD_BYTES, 54]
    assert reader.counts[K.NON_IP] == 1 and reader.counts[K.EMULATED] == 1


# -- issue 9: a reader that stops, writers for every valid capture, times that do not wrap -----


class _Hang(Exception):
    pass


def _within(seconds: int, fn):
    """Run ``fn`` and fail (instead of hanging the suite) if it has not returned in time."""

    def alarm(*_):
        raise _Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _bare_shb() -> bytes:
    return struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)


def test_pcapng_with_a_truncated_second_section_header_is_refused_not_hung(tmp_path):
    shb = _bare_shb()
    path = _write(tmp_path, "h.pcapng", shb + shb[:20])
    with pytest.warns(UserWarning, match=r"h.pcapng: byte 28: file ends inside a record"):
        reader = _within(5, lambda: read_capture(path))
        chunks = _within(5, lambda: list(reader))
    assert chunks == [] and reader.sections == 1 and reader.truncated_bytes == 20
    with pytest.raises(CaptureError, match=r"h.pcapng: byte 28: file ends inside a record"):
        _within(5, lambda: list(read_capture(path, strict=True)))


@pytest.mark.parametrize("cut", range(1, 52))
def test_every_cut_of_a_header_block_before_the_first_packet_ends_the_read(tmp_path, cut):
    # SHB, IDB, SHB, IDB: a file cut anywhere in the blocks read at open stops too
    head = _shb("<") + _idb("<", 1) + _shb(">") + _idb(">", 1, tsresol=9)
    data = head[: len(head) - cut] if cut < len(head) else head[:8]
    path = _write(tmp_path, "cut.pcapng", data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader = _within(5, lambda: read_capture(path))
            assert _within(5, lambda: list(reader)) == []
        except CaptureError as err:
            assert err.offset is not None


def _mixed_link_capture(order: str = "<") -> bytes:
    """A valid pcapng: an SLL interface, a packet, then an Ethernet interface described after
    it, then a second section with raw IP."""
    sll = bytes(CookedLinux(proto=0x0800) / _tcp(sport=1001))
    eth = bytes(Ether() / _tcp(sport=1002))
    raw = bytes(_tcp(sport=1003))
    return (_shb(order) + _idb(order, 113, name="any") + _epb(order, 0, T0 * 10**6, sll)
            + _idb(order, 1, name="eth0", tsoffset=0) + _epb(order, 1, T0 * 10**6 + 1, eth)
            + _shb(order) + _idb(order, 101, tsresol=9) + _epb(order, 0, T0 * 10**9 + 2, raw))


def test_a_later_interface_of_another_link_type_is_kept_in_a_pcapng_output(tmp_path):
    path = _write(tmp_path, "mixed.pcapng", _mixed_link_capture())
    reader, chunk = load_capture(path)
    assert list(chunk.interface) == [0, 1, 2]  # numbered across the two sections
    assert [i.linktype for i in reader.all_interfaces] == [113, 1, 101]
    out = str(tmp_path / "out.pcapng")
    write_capture(out, [(chunk, _translate(chunk), None)])  # microseconds, but for interface 2
    back_reader, back = load_capture(out)
    assert [i.ts_resolution for i in back_reader.all_interfaces] == [1e-6, 1e-6, 1e-9]
    assert back_reader.format == "pcapng"
    assert [i.linktype for i in back_reader.all_interfaces] == [113, 1, 101]
    assert [i.name for i in back_reader.all_interfaces] == ["any", "eth0", None]
    assert list(back.interface) == [0, 1, 2] and list(back.ts_ns) == list(chunk.ts_ns)
    assert list(back.records["src_port"]) == [61000, 61001, 61002]
    assert all(_checksums_valid(p) for p in rdpcap(out))


def test_a_later_interface_of_another_link_type_is_reframed_in_a_pcap_output(tmp_path):
    path = _write(tmp_path, "mixed.pcapng", _mixed_link_capture(">"))
    reader = read_capture(path, chunk_packets=1)
    assert reader.output_linktype == 113  # all the reader knows before the first packet
    out = str(tmp_path / "out.pcap")
    with CaptureWriter(out, reader.output_linktype, reader.nanosecond) as w:
        for chunk in reader:
            w.write(chunk, _translate(chunk))  # one packet a chunk: each becomes port 61000
    back_reader, back = load_capture(out)
    assert back_reader.linktypes == [113] and list(back.l3_offset) == [16, 16, 16]
    assert list(back.records["src_port"]) == [61000] * 3
    # the output's microseconds were chosen at open, before the nanosecond section was known
    assert list(back.ts_ns) == [T0 * 10**9, T0 * 10**9 + 1000, T0 * 10**9]
    assert all(CookedLinux in p and _checksums_valid(p) for p in rdpcap(out))


def test_a_frame_that_cannot_be_reframed_is_refused_naming_its_interface_block(tmp_path):
    data = (_shb("<") + _idb("<", 101) + _epb("<", 0, 1, bytes(_tcp()))
            + _idb("<", 1) + _epb("<", 1, 2, bytes(Ether() / ARP())))
    path = _write(tmp_path, "arp.pcapng", data)
    _, chunk = load_capture(path)
    idb_offset = len(_shb("<")) + len(_idb("<", 101)) + len(_epb("<", 0, 1, bytes(_tcp())))
    out = str(tmp_path / "out.pcap")
    with pytest.raises(CaptureError, match=rf"arp.pcapng: byte {idb_offset}: interface 1 \(link type 1\) "
                                           r"cannot be written to out.pcap, a pcap of link type 101"):
        write_capture(out, [chunk], linktype=101)
    assert os.path.getsize(out) == 24  # refused before any frame of the chunk was written


def _replay_capture(path, order="<") -> None:
    """The replay tests' three conversations from inside `orders`, the first on an SLL interface,
    the second on an Ethernet one described after it, the third in a raw-IP section."""
    import test_replay as tr  # noqa: PLC0415 - tests/ is on the path (rootdir conftest)

    pkts = (tr.conversation("10.0.21.10", 6379, 40000, T0) + tr.conversation("10.0.20.10", 5432, 40001, T0 + 1)
            + tr.conversation("93.184.216.34", 443, 40002, T0 + 2))
    blocks = [_shb(order), _idb(order, 113)]
    for k, p in enumerate(pkts):
        ts = int(round(p.time * 10**6))
        l3 = bytes(p[IP])
        if k == 3:
            blocks.append(_idb(order, 1))
        if k == 6:
            blocks += [_shb(order), _idb(order, 101)]
        if k < 3:
            blocks.append(_epb(order, 0, ts, bytes(CookedLinux(proto=0x0800) / l3)))
        elif k < 6:
            blocks.append(_epb(order, 1, ts, bytes(p)))
        else:
            blocks.append(_epb(order, 0, ts, l3))
    path.write_bytes(b"".join(blocks))


@pytest.mark.parametrize("suffix", [".pcap", ".pcapng"])
def test_replay_of_a_pcapng_with_a_later_interface_writes_its_output(tmp_path, suffix):
    capture = tmp_path / "mixed.pcapng"
    _replay_capture(capture)
    net = hp.Network.example()
    out = tmp_path / ("out" + suffix)
    report = net.replay(capture, functions={"orders": "172.16.5.0/24"}, output=out,
                        flow_logs=tmp_path / "logs", chunk_packets=2)
    # all delivered but the database's SYN-ACK, which acl-data drops (as in test_replay.py)
    assert report.packets == 9 and report.written == report.delivered == 8
    back_reader, back = load_capture(out)
    assert len(back) == 8 and back_reader.format == suffix[1:]
    expect = [113] * 3 + [1] * 2 + [101] * 3 if suffix == ".pcapng" else [113] * 8
    assert list(back.linktype) == expect
    assert all(_checksums_valid(p) for p in rdpcap(str(out)))
    # the same conversations from a plain Ethernet pcap give the same translated packets
    plain = tmp_path / "plain.pcap"
    import test_replay as tr  # noqa: PLC0415

    wrpcap(str(plain), tr.conversation("10.0.21.10", 6379, 40000, T0) + tr.conversation(
        "10.0.20.10", 5432, 40001, T0 + 1) + tr.conversation("93.184.216.34", 443, 40002, T0 + 2))
    hp.Network.example().replay(plain, functions={"orders": "172.16.5.0/24"}, output=tmp_path / "plain_out.pcap")
    _, ref = load_capture(tmp_path / "plain_out.pcap")
    fields = ["src_ip", "dst_ip", "src_port", "dst_port", "proto"]
    assert back.records[fields].tolist() == ref.records[fields].tolist()


@pytest.mark.parametrize("tsresol, ts", [(0, 1 << 40), (0, 9_223_372_037), (0x80, 1 << 40),
                                         (0x81, 1 << 63), (0x80 | 30, (9_223_372_037 << 30)),
                                         (3, (9_223_372_037 * 1000))])
def test_pcapng_timestamps_beyond_the_nanosecond_clock_are_refused_not_wrapped(tmp_path, tsresol, ts):
    ts &= (1 << 64) - 1
    head = _shb("<") + _idb("<", 1, tsresol=tsresol) + _epb("<", 0, 5, bytes(Ether() / _tcp()))
    data = head + _epb("<", 0, ts, bytes(Ether() / _tcp()))
    path = _write(tmp_path, "far.pcapng", data)
    with pytest.raises(CaptureError, match=rf"far.pcapng: byte {len(head)}: packet timestamp {ts} .*"
                                           "beyond the 64-bit nanosecond clock"):
        list(read_capture(path))


@pytest.mark.parametrize("tsresol, ts, ns", [
    (0, 9_223_372_036, 9_223_372_036 * 10**9),               # the last whole second before 2262
    (0x80, 9_223_372_036, 9_223_372_036 * 10**9),
    (0x80 | 63, (1 << 64) - 1, 1_999_999_999),                # 2^-63 s: under two seconds
    (19 - 1, (1 << 64) - 1, ((1 << 64) - 1) // 10**9),        # 10^-18 s: 18 s
    (9, (1 << 63) - 1, (1 << 63) - 1),                        # int64's own last nanosecond
])
def test_pcapng_timestamps_at_the_edge_of_the_clock_read_exactly(tmp_path, tsresol, ts, ns):
    data = _shb("<") + _idb("<", 1, tsresol=tsresol) + _epb("<", 0, ts, bytes(Ether() / _tcp()))
    _, chunk = load_capture(_write(tmp_path, "edge.pcapng", data))
    assert abs(int(chunk.ts_ns[0]) - ns) <= (1 if tsresol == 0x80 | 63 else 0)


def test_pcapng_time_offset_that_pushes_a_packet_past_the_clock_is_refused(tmp_path):
    head = _shb("<") + _idb("<", 1, tsresol=9, tsoffset=(1 << 62) // 10**9)
    data = head + _epb("<", 0, (1 << 63) - 10**9, bytes(Ether() / _tcp()))
    with pytest.raises(CaptureError, match=rf"byte {len(head)}: packet timestamp"):
        list(read_capture(_write(tmp_path, "offset.pcapng", data)))


@pytest.mark.parametrize("nano", [False, True])
def test_pcap_record_times_at_the_end_of_the_32_bit_clock_do_not_wrap(tmp_path, nano):
    frac = 999_999_999 if nano else 999_999
    data = _pcap_bytes([(0xFFFFFFFF, frac, bytes(Ether() / _tcp())),
                        (0xFFFFFFFF, 0xFFFFFFFF, bytes(Ether() / _tcp()))], nano=nano)
    _, chunk = load_capture(_write(tmp_path, "late.pcap", data))
    unit = 1 if nano else 1000
    assert list(chunk.ts_ns) == [0xFFFFFFFF * 10**9 + frac * unit, 0xFFFFFFFF * 10**9 + 0xFFFFFFFF * unit]
    assert (chunk.ts_ns > 0).all()
    # the first is pcap's last second; the second, whose fraction runs past the second, cannot be
    # written back in a pcap (no wrap either): refused naming its record; pcapng holds it
    out = str(tmp_path / "late_out.pcap")
    second = 24 + 16 + len(Ether() / _tcp())
    with pytest.raises(CaptureError, match=rf"late.pcap: byte {second}: packet time .* outside pcap's 1970-2106"):
        write_capture(out, [chunk], nanosecond=nano)
    write_capture(str(tmp_path / "late_out.pcapng"), [chunk], nanosecond=True)
    assert list(load_capture(str(tmp_path / "late_out.pcapng"))[1].ts_ns) == list(chunk.ts_ns)


def test_a_frame_that_would_outgrow_the_record_limit_when_reframed_is_refused(tmp_path):
    small = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / b"x")
    big = small + b"\0" * (MAX_RECORD_BYTES - len(small))  # a captured frame of the full limit
    path = _write(tmp_path, "big.pcap", _pcap_bytes([(T0, 0, big)], linktype=101, snaplen=MAX_RECORD_BYTES))
    _, chunk = load_capture(path)
    with pytest.raises(CaptureError, match=r"big.pcap: byte 0: interface 0 \(link type 101\): its packet at "
                                           rf"byte 24 re-framed as link type 1 would exceed {MAX_RECORD_BYTES}"):
        write_capture(str(tmp_path / "out.pcap"), [chunk], linktype=1)
    write_capture(str(tmp_path / "out.pcapng"), [chunk])  # kept as it is
    assert load_capture(str(tmp_path / "out.pcapng"))[1].caplen[0] == MAX_RECORD_BYTES


def test_a_section_of_many_interfaces_is_read_in_linear_time_not_hung(tmp_path):
    # 30,000 IDBs (600 kB): the interface table was rebuilt per IDB, so this took ~15 minutes
    n = 30_000
    data = _shb("<") + _idb("<", 1) * n + _epb("<", n - 1, 0, bytes(Ether() / _tcp()))
    path = _write(tmp_path, "many.pcapng", data)
    reader, chunk = _within(30, lambda: load_capture(path))
    assert len(reader.all_interfaces) == n and list(chunk.interface) == [n - 1]
    with pytest.raises(CaptureError, match=rf"more.pcapng: byte {28 + 20 * 65536}: more than 65536 interfaces"):
        _within(30, lambda: list(read_capture(_write(tmp_path, "more.pcapng", _shb("<") + _idb("<", 1) * 65537))))
