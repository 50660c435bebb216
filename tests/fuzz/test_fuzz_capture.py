"""Fuzzing the capture reader and writer (issue 9): truncations at every offset, field mutations
of pcap and pcapng headers and blocks, random byte flips.

A case is built from its number alone (a seeded ``random.Random``) over a few known-good
captures made with scapy and struct. The read check reads the whole capture twice (one chunk,
and one packet a chunk) and must either succeed, with every packet record of the file (found by
an independent framing walk below) given exactly one row and one kind, the same rows both
times, and the rows writable to pcapng and readable back; or raise ``CaptureError`` naming the
file and a byte offset inside it. Anything else is ``Unclear``. The replay check pushes mutated
captures through ``Network.example().replay(...)`` with output, verdicts and flow logs: one
verdict per packet, or a clear error.

Long run: ``pytest -m fuzz --fuzz-cases 20000 tests/fuzz/test_fuzz_capture.py``.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from harness import CORPUS, Unclear, corpus, run_cases
from scapy.all import ARP, ICMP, IP, TCP, UDP, CookedLinux, Dot1Q, Ether, IPv6, fragment

import hyperplane as hp
from hyperplane.formats.capture import CaptureError, PacketKind
from hyperplane.formats.pcap_reader import read_capture
from hyperplane.formats.pcap_writer import CaptureWriter

T0 = 1_700_000_000
KINDS = {int(k) for k in PacketKind}


# -- known-good captures, with the place and width of every header field -----------------------


@dataclass
class Seed:
    """A capture and its fields: (offset, size, byte order, name) for the mutator."""

    name: str
    data: bytearray = field(default_factory=bytearray)
    fields: list[tuple[int, int, str, str]] = field(default_factory=list)

    def put(self, order: str, *items: tuple[str, str, int]) -> None:
        for name, fmt, value in items:
            raw = struct.pack(order + fmt, value)
            self.fields.append((len(self.data), len(raw), order, name))
            self.data += raw

    def raw(self, data: bytes) -> None:
        self.data += data


def _frames() -> list[bytes]:
    tcp = IP(src="10.0.1.5", dst="52.94.1.1") / TCP(sport=40000, dport=443, flags="S")
    return [bytes(Ether() / tcp), bytes(Ether() / Dot1Q(vlan=5) / IP() / UDP(sport=53, dport=53)),
            bytes(Ether() / IPv6() / UDP()), bytes(Ether() / IP() / ICMP()), bytes(Ether() / ARP()),
            bytes(Ether() / fragment(IP(dst="10.0.0.1") / UDP() / (b"x" * 60), fragsize=32)[1])]


def _pcap_seed(name: str, order: str, nano: bool, linktype: int, frames: list[bytes]) -> Seed:
    s = Seed(name)
    s.put(order, ("magic", "I", 0xA1B23C4D if nano else 0xA1B2C3D4), ("major", "H", 2), ("minor", "H", 4),
          ("thiszone", "i", 0), ("sigfigs", "I", 0), ("snaplen", "I", 65535), ("linktype", "I", linktype))
    for k, f in enumerate(frames):
        s.put(order, ("ts_sec", "I", T0 + k), ("ts_frac", "I", k * 999), ("incl_len", "I", len(f)),
              ("orig_len", "I", len(f)))
        s.raw(f)
    return s


def _block(s: Seed, order: str, btype: int, put_body) -> None:
    """A pcapng block whose body ``put_body(seed)`` writes; lengths filled in afterwards."""
    start = len(s.data)
    s.put(order, ("block_type", "I", btype), ("block_length", "I", 0))
    put_body(s)
    s.raw(b"\0" * (-len(s.data) % 4))
    blen = len(s.data) - start + 4
    s.data[start + 4 : start + 8] = struct.pack(order + "I", blen)
    s.put(order, ("block_trailer", "I", blen))


def _opt(s: Seed, order: str, code: int, value: bytes, name: str) -> None:
    s.put(order, (name + "_code", "H", code), (name + "_length", "H", len(value)))
    if value:
        s.fields.append((len(s.data), len(value), order, name))
    s.raw(value + b"\0" * (-len(value) % 4))


def _shb(s: Seed, order: str) -> None:
    def body(s: Seed) -> None:
        s.put(order, ("byte_order_magic", "I", 0x1A2B3C4D), ("shb_major", "H", 1), ("shb_minor", "H", 0),
              ("section_length", "q", -1))
    _block(s, order, 0x0A0D0D0A, body)


def _idb(s: Seed, order: str, linktype: int, tsresol: int | None = None, tsoffset: int | None = None,
         name: str | None = None) -> None:
    def body(s: Seed) -> None:
        s.put(order, ("idb_linktype", "H", linktype), ("idb_reserved", "H", 0), ("idb_snaplen", "I", 0))
        if name is not None:
            _opt(s, order, 2, name.encode(), "if_name")
        if tsresol is not None:
            _opt(s, order, 9, bytes([tsresol]), "if_tsresol")
        if tsoffset is not None:
            _opt(s, order, 14, struct.pack(order + "q", tsoffset), "if_tsoffset")
        if name is not None or tsresol is not None or tsoffset is not None:
            _opt(s, order, 0, b"", "opt_endofopt")
    _block(s, order, 1, body)


def _epb(s: Seed, order: str, iface: int, ts: int, frame: bytes, obsolete: bool = False) -> None:
    def body(s: Seed) -> None:
        if obsolete:
            s.put(order, ("pb_interface", "H", iface), ("pb_drops", "H", 0))
        else:
            s.put(order, ("epb_interface", "I", iface))
        s.put(order, ("ts_high", "I", ts >> 32), ("ts_low", "I", ts & 0xFFFFFFFF),
              ("captured_length", "I", len(frame)), ("original_length", "I", len(frame)))
        s.raw(frame)
        if not obsolete:
            _opt(s, order, 1, b"fuzz", "epb_comment")
            _opt(s, order, 0, b"", "opt_endofopt")
    _block(s, order, 2 if obsolete else 6, body)


def _spb(s: Seed, order: str, frame: bytes) -> None:
    def body(s: Seed) -> None:
        s.put(order, ("spb_original_length", "I", len(frame)))
        s.raw(frame)
    _block(s, order, 3, body)


def _unknown(s: Seed, order: str, btype: int, size: int) -> None:
    _block(s, order, btype, lambda s: s.raw(bytes(range(size))))


def _pcapng_seed() -> Seed:
    f = _frames()
    sll = bytes(CookedLinux(proto=0x0800) / IP(src="10.0.1.6", dst="52.94.1.2") / TCP(sport=1, dport=2))
    raw = bytes(IP(src="10.0.1.7", dst="52.94.1.3") / UDP(sport=3, dport=4))
    s = Seed("pcapng")
    _shb(s, "<")
    _idb(s, "<", 1, tsresol=9, tsoffset=5, name="eth0")
    _idb(s, "<", 113, tsresol=0x80 | 10)
    _epb(s, "<", 0, T0 * 10**9, f[0])
    _unknown(s, "<", 4, 8)  # name resolution
    _epb(s, "<", 1, T0 << 10, sll)
    _spb(s, "<", f[1])
    _idb(s, "<", 101)  # described after the first packets
    _epb(s, "<", 2, T0 * 10**6, raw)
    _epb(s, "<", 0, T0 * 10**9 + 1, f[2], obsolete=True)
    _unknown(s, "<", 5, 12)  # interface statistics
    _shb(s, ">")  # a second section, in the other byte order
    _idb(s, ">", 276)
    _idb(s, ">", 1, tsresol=6)
    _epb(s, ">", 1, T0 * 10**6, f[3])
    _epb(s, ">", 0, T0 * 10**6, bytes.fromhex("0800000000000000000000000000000000000000") + raw)
    _unknown(s, ">", 0x00000BAD, 5)  # custom block
    _spb(s, ">", f[4])
    _epb(s, ">", 1, T0 * 10**6 + 7, f[5])
    return s


def _seeds() -> dict[str, list[Seed]]:
    f = _frames()
    raw = [bytes(IP(bytes(x)[14:])) if x[12:14] == b"\x08\x00" else bytes(IPv6()) for x in f]
    sll = [bytes(CookedLinux(proto=0x0800) / IP(x[14:])) for x in f if x[12:14] == b"\x08\x00"]
    return {
        "pcap_us": [_pcap_seed("pcap-us-ethernet", "<", False, 1, f),
                    _pcap_seed("pcap-us-sll-big-endian", ">", False, 113, sll)],
        "pcap_ns": [_pcap_seed("pcap-ns-raw", "<", True, 101, raw),
                    _pcap_seed("pcap-ns-ethernet-big-endian", ">", True, 1, f[:3])],
        "pcapng": [_pcapng_seed()],
    }


SEEDS = _seeds()


# -- mutations -----------------------------------------------------------------------------------


def _interesting(rng: random.Random, size: int, old: int) -> int:
    top = (1 << (8 * size)) - 1
    return rng.choice([0, 1, top, top >> 1, (top >> 1) + 1, old + 1, old - 1, old + 4, old - 4,
                       old ^ (1 << rng.randrange(8 * size)), rng.randrange(top + 1), old * 2,
                       1 << rng.randrange(8 * size), 12, 16, 20, 28, 32, 0x0A0D0D0A, 0x1A2B3C4D,
                       0x4D3C2B1A, 262144, 262145, 16 << 20]) & top


def make_case(fmt: str, i: int) -> bytes:
    """Case ``i`` of format ``fmt``: every fourth one a truncation that walks the offsets of the
    seeds in turn (so a long run covers every offset); the others field mutations and byte
    flips, sometimes truncated too."""
    seeds = SEEDS[fmt]
    if i % 4 == 0:
        total = sum(len(s.data) + 1 for s in seeds)
        # a stride of a prime larger than any seed: every offset once per `total` truncations,
        # and a short run already spread over the whole file
        k = (i // 4 * 7919) % total
        for s in seeds:
            if k <= len(s.data):
                return bytes(s.data[:k])
            k -= len(s.data) + 1
    rng = random.Random(f"{fmt}:{i}")
    seed = rng.choice(seeds)
    data = bytearray(seed.data)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        how = rng.random()
        if how < 0.65 and seed.fields:
            off, size, order, _ = rng.choice(seed.fields)
            old = int.from_bytes(data[off : off + size], "big" if order == ">" else "little")
            value = _interesting(rng, size, old)
            data[off : off + size] = value.to_bytes(size, "big" if order == ">" else "little")
        elif how < 0.9:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:  # a stretch of the file repeated or removed (blocks out of place, or thousands
            # of them: per-block work must stay linear)
            a = rng.randrange(len(data))
            b = min(len(data), a + 4 * rng.randint(1, 40))
            times = rng.choice([0, 2, 2, 3, rng.randint(1000, 5000)])
            data[a:b] = data[a:b] * times
    if rng.random() < 0.2:
        data = data[: rng.randrange(len(data) + 1)]
    return bytes(data)


# -- the independent framing walk: which records the file holds --------------------------------


def packet_records(data: bytes) -> tuple[list[tuple[int, int]], int] | None:
    """The packet records of a capture, found by framing alone (no checks): (offset, time in
    nanoseconds computed with Python's unbounded ints) each, and the bytes left after the last
    complete record or block; None if it is neither format."""
    if len(data) < 4:
        return None
    records = []
    if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = "<" if data[0] in (0xD4, 0x4D) else ">"
        unit = 1 if data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1000
        pos = 24
        while len(data) - pos >= 16:
            sec, frac, incl = struct.unpack_from(order + "III", data, pos)
            if pos + 16 + incl > len(data):
                break
            records.append((pos, sec * 10**9 + frac * unit))
            pos += 16 + incl
        return records, len(data) - pos
    pos, order = 0, "<"
    clocks: list[tuple[int, int, int]] = []  # per interface of the section: base, exponent, offset s
    while len(data) - pos >= 8:
        btype = struct.unpack_from("<I", data, pos)[0]
        if btype == 0x0A0D0D0A:
            if len(data) - pos < 12:
                break
            order = "<" if data[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            clocks = []
        else:
            btype = struct.unpack_from(order + "I", data, pos)[0]
        blen = struct.unpack_from(order + "I", data, pos + 4)[0]
        if blen < 12 or pos + blen > len(data):
            break
        if btype == 1 and blen >= 20:
            base, exp, offset, opt = 10, 6, 0, pos + 16
            while opt + 4 <= pos + blen - 4:
                code, olen = struct.unpack_from(order + "HH", data, opt)
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    raw = data[opt + 4]
                    base, exp = (2, raw & 0x7F) if raw & 0x80 else (10, raw)
                elif code == 14 and olen >= 8:
                    offset = struct.unpack_from(order + "q", data, opt + 4)[0]
                opt += 4 + olen + (-olen % 4)
            clocks.append((base, exp, offset))
        elif btype in (2, 6) and blen >= 32:
            iface = struct.unpack_from(order + ("I" if btype == 6 else "H"), data, pos + 8)[0]
            high, low = struct.unpack_from(order + "II", data, pos + 12)
            t = high << 32 | low
            base, exp, offset = clocks[iface] if iface < len(clocks) else (10, 6, 0)
            if base == 2:
                ns = (t >> exp) * 10**9 + (int(float(t & ((1 << exp) - 1)) * 1e9 / float(1 << exp)) if exp else 0)
            else:
                ns = t * 10 ** (9 - exp) if exp <= 9 else t // 10 ** (exp - 9)
            records.append((pos, ns + offset * 10**9))
        elif btype == 3:
            records.append((pos, (clocks[0][2] if clocks else 0) * 10**9))
        pos += blen
    return records, len(data) - pos


# -- the checks ----------------------------------------------------------------------------------


def _path(suffix: str) -> Path:
    # one file per child process (forked children have their own pid), rewritten per case
    folder = Path(tempfile.gettempdir()) / f"hyperplane-fuzz-capture-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    return folder / ("case" + suffix)


def _clear_error(err: CaptureError, name: str, size: int) -> str:
    if err.file != name or err.offset is None or not 0 <= err.offset <= size or not err.problem:
        raise Unclear(f"capture error without file and place: {err!r} ({err})")
    if "Traceback" in str(err) or len(str(err)) > 400:
        raise Unclear(f"capture error that does not read as one line: {err}")
    return "refused"


def _read_all(path: Path, chunk_packets: int) -> tuple[list, dict]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reader = read_capture(path, chunk_packets=chunk_packets)
        chunks = list(reader)
    for w in caught:
        text = str(w.message)
        if not text.startswith(f"{path.name}: byte ") or "partial read" not in text:
            raise Unclear(f"a warning that does not name file and place: {text}")
    facts = {"packets": reader.packets, "truncated": reader.truncated_bytes,
             "counts": dict(reader.counts), "warnings": len(caught)}
    return chunks, facts


def check_read(data: bytes) -> str:
    path = _path(".cap")
    path.write_bytes(data)
    outcomes = []
    for chunk_packets in (65536, 1):
        try:
            outcomes.append(("ok", *_read_all(path, chunk_packets)))
        except CaptureError as err:
            outcomes.append(("error", _clear_error(err, path.name, len(data)), str(err)))
    if [o[0] for o in outcomes] != [outcomes[0][0]] * 2:
        raise Unclear(f"reading by chunks of 65536 and of 1 packet disagree: {[o[-1] for o in outcomes]}")
    if outcomes[0][0] == "error":
        if outcomes[0][2] != outcomes[1][2]:
            raise Unclear(f"different errors by chunk size: {outcomes[0][2]} / {outcomes[1][2]}")
        return "refused"
    rows = []
    for _, chunks, facts in outcomes:
        offsets = np.concatenate([c.file_offset for c in chunks]) if chunks else np.zeros(0, np.int64)
        kinds = np.concatenate([c.kind for c in chunks]) if chunks else np.zeros(0, np.uint8)
        if len(offsets) != facts["packets"] or sum(facts["counts"].values()) != facts["packets"]:
            raise Unclear(f"rows {len(offsets)}, packets {facts['packets']}, counts {facts['counts']}")
        if not set(kinds.tolist()) <= KINDS:
            raise Unclear(f"a row without a known kind: {sorted(set(kinds.tolist()) - KINDS)}")
        for c in chunks:
            if len(c) and ((c.l3_offset > np.maximum(c.caplen, 0)).any() or (c.frame_offset < 0).any()
                           or (c.frame_offset + c.caplen > len(c.data)).any()):
                raise Unclear("a row whose frame lies outside its chunk")
        times = np.concatenate([c.ts_ns for c in chunks]) if chunks else np.zeros(0, np.int64)
        rows.append((offsets.tolist(), kinds.tolist(), facts["truncated"], times.tolist()))
    if rows[0] != rows[1]:
        raise Unclear("reading by chunks of 65536 and of 1 packet gave different rows")
    expected = packet_records(data)
    if expected is None or (rows[0][0], rows[0][2]) != ([o for o, _ in expected[0]], expected[1]):
        raise Unclear(f"rows at {rows[0][0]} (tail {rows[0][2]}) but the file's records are at {expected}")
    for (offset, want), got in zip(expected[0], rows[0][3]):
        # a time beyond int64 nanoseconds must have been refused, not wrapped (issue 9)
        if want != got:
            raise Unclear(f"record at byte {offset}: time {got} ns read, {want} ns in the file")
    _write_back(outcomes[1][1], path, len(data))
    return "accepted"


def _write_back(chunks: list, path: Path, size: int) -> None:
    """Every row read can be written to pcapng and read back as the same packets."""
    sink = io.BytesIO()
    try:
        with CaptureWriter(sink, nanosecond=True, format="pcapng") as w:
            for c in chunks:
                w.write(c)
    except CaptureError as err:
        _clear_error(err, path.name, size)
        return
    back = _path(".pcapng")
    back.write_bytes(sink.getvalue())
    again, facts = _read_all(back, 65536)
    want = [(int(k), int(t)) for c in chunks for k, t in zip(c.kind, c.ts_ns)]
    got = [(int(k), int(t)) for c in again for k, t in zip(c.kind, c.ts_ns)]
    if got != want or facts["truncated"]:
        raise Unclear(f"written back: {len(got)} rows of {len(want)} read, or other kinds/times")


def check_replay(data: bytes) -> str:
    suffix = ".pcapng" if data[:4] == b"\x0a\x0d\x0d\x0a" else ".pcap"
    path = _path(suffix)
    path.write_bytes(data)
    folder = path.parent
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = hp.Network.example().replay(
                path, functions={"orders": "172.16.5.0/24"}, output=folder / ("out" + suffix),
                verdicts=folder / "v.jsonl", flow_logs=folder / "logs", chunk_packets=3)
    except CaptureError as err:
        if err.file not in (path.name,) or err.offset is None:
            raise Unclear(f"replay error without file and place: {err}") from None
        return "refused"
    lines = [json.loads(line) for line in (folder / "v.jsonl").read_text().splitlines()]
    if [v["index"] for v in lines] != list(range(report.packets)) or sum(report.kinds.values()) != report.packets:
        raise Unclear(f"{len(lines)} verdicts for {report.packets} packets")
    if sum(report.reasons.values()) != report.packets:
        raise Unclear(f"{sum(report.reasons.values())} reasons for {report.packets} packets")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written = sum(len(c) for c in read_capture(folder / ("out" + suffix)))
    if written != report.written:
        raise Unclear(f"output holds {written} packets, the report says {report.written}")
    return "accepted"


# -- campaigns ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_capture_reader_fuzz_campaign(fmt, fuzz_cases):
    campaign = run_cases(f"capture-{fmt}", lambda i: make_case(fmt, i), check_read, fuzz_cases, timeout=20)
    print(campaign.line())
    campaign.assert_clean()


def _replay_seeds() -> list[Seed]:
    """The replay tests' three conversations from inside `orders`: as an Ethernet pcap, and as a
    pcapng whose Ethernet interface is described after the first packets on an SLL one."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))
    import test_replay as tr

    pkts = (tr.conversation("10.0.21.10", 6379, 40000, T0) + tr.conversation("10.0.20.10", 5432, 40001, T0 + 1)
            + tr.conversation("93.184.216.34", 443, 40002, T0 + 2))
    pcap = _pcap_seed("replay", "<", False, 1, [bytes(p) for p in pkts])
    ng = Seed("replay-ng")
    _shb(ng, "<")
    _idb(ng, "<", 113, tsresol=9)
    for k, p in enumerate(pkts):
        if k == 4:
            _idb(ng, "<", 1, tsresol=9)
        if k < 4:
            _epb(ng, "<", 0, int(p.time * 10**9), bytes(CookedLinux(proto=0x0800) / p[IP]))
        else:
            _epb(ng, "<", 1, int(p.time * 10**9), bytes(p))
    return [pcap, ng]


def test_capture_replay_fuzz_campaign(fuzz_cases):
    SEEDS["replay"] = _replay_seeds()  # the forked children inherit it
    cases = max(20, fuzz_cases // 10)
    campaign = run_cases("capture-replay", lambda i: make_case("replay", i), check_replay, cases, timeout=30)
    print(campaign.line())
    campaign.assert_clean()


def test_kept_capture_inputs_are_read_or_refused_clearly():
    kept = corpus("capture")
    assert len(kept) >= 2, f"the corpus of issue 9 is missing from {CORPUS / 'capture'}"
    campaign = run_cases("capture-corpus", lambda i: kept[i].read_bytes(), check_read, len(kept), timeout=20)
    print(campaign.line())
    campaign.assert_clean()
    replayed = run_cases("capture-corpus-replay", lambda i: kept[i].read_bytes(), check_replay, len(kept), timeout=30)
    print(replayed.line())
    replayed.assert_clean()
