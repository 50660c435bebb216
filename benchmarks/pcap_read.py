"""Reader throughput: hyperplane.pcap.read_capture against dpkt parsing the same file.

Generates a 1,000,000-packet Ethernet/IPv4 capture (TCP and UDP, tens of thousands of flows)
with a vectorised numpy byte builder, then times, in the same run and on the same file (warm in
the page cache): ``read_capture`` turning every frame into packet records, and dpkt's
parse-only loop (Ethernet -> IP -> TCP/UDP, reading the 5-tuple). Prints one JSON line:
``read_pps``, ``dpkt_parse_pps``, ``ratio_vs_dpkt``, and ``write_pps`` (CaptureWriter writing every
packet back with a new source address and port, checksums updated).

    python benchmarks/pcap_read.py [--packets N] [--dpkt-packets N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from hyperplane.pcap import CaptureWriter, read_capture

FRAME = 60  # Ethernet minimum frame without FCS: TCP (54 bytes) padded, UDP with 18 payload bytes


def _put16(a: np.ndarray, col: int, v: np.ndarray) -> None:
    a[:, col] = (v >> 8) & 0xFF
    a[:, col + 1] = v & 0xFF


def _put32(a: np.ndarray, col: int, v: np.ndarray) -> None:
    for k in range(4):
        a[:, col + k] = (v >> (24 - 8 * k)) & 0xFF


def build_capture(path: str, n: int, seed: int = 7) -> None:
    """A little-endian microsecond pcap of ``n`` TCP/UDP frames with valid IPv4 checksums."""
    rng = np.random.default_rng(seed)
    rec = np.zeros((n, 16 + FRAME), np.uint8)
    ts = 1_700_000_000_000_000 + np.arange(n, dtype=np.int64) * 1  # 1 us apart
    hdr = rec[:, :16].view("<u4")
    hdr[:, 0] = ts // 1_000_000
    hdr[:, 1] = ts % 1_000_000
    hdr[:, 2] = FRAME
    hdr[:, 3] = FRAME
    f = rec[:, 16:]
    f[:, 0:6] = [0x02, 0, 0, 0, 0, 1]
    f[:, 6:12] = [0x02, 0, 0, 0, 0, 2]
    f[:, 12:14] = [0x08, 0x00]
    udp = rng.random(n) < 0.3
    flows = rng.integers(0, 40_000, n)
    src = (10 << 24) | (1 << 8) | (flows % 200).astype(np.int64)            # 10.0.1.x
    dst = (52 << 24) | (94 << 16) | ((flows // 200) % 256).astype(np.int64)  # 52.94.x.0
    sport = 32768 + flows % 28000
    dport = np.where(udp, 53, 443)
    proto = np.where(udp, 17, 6)
    total = np.where(udp, 20 + 8 + 18, 20 + 20)
    ip = 14
    f[:, ip] = 0x45
    _put16(f, ip + 2, total)
    _put16(f, ip + 4, np.arange(n) & 0xFFFF)
    f[:, ip + 8] = 64
    f[:, ip + 9] = proto
    _put32(f, ip + 12, src)
    _put32(f, ip + 16, dst)
    words = f[:, ip : ip + 20].astype(np.uint32)
    s = (words[:, 0::2] << 8 | words[:, 1::2]).sum(axis=1)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    _put16(f, ip + 10, (~s) & 0xFFFF)
    l4 = ip + 20
    _put16(f, l4, sport)
    _put16(f, l4 + 2, dport)
    tcp = ~udp
    f[tcp, l4 + 12] = 0x50
    f[tcp, l4 + 13] = 0x10  # ACK
    f[tcp, l4 + 14] = 64240 >> 8  # window
    f[tcp, l4 + 15] = 64240 & 0xFF
    f[udp, l4 + 4] = 0
    f[udp, l4 + 5] = 8 + 18
    # L4 checksums are left 0: UDP "none", TCP unchecked by both readers
    with open(path, "wb") as out:
        out.write(np.array([0xA1B2C3D4, 0x00040002, 0, 0, 262144, 1], "<u4").tobytes())
        out.write(rec.tobytes())


def time_reader(path: str) -> tuple[float, int]:
    start = time.perf_counter()
    rows = 0
    for chunk in read_capture(path):
        rows += len(chunk)
    return time.perf_counter() - start, rows


def time_writer(path: str, out: str) -> tuple[float, int]:
    chunks = list(read_capture(path))
    translated = []
    for chunk in chunks:
        rec = chunk.records.copy()
        rec["src_ip"] = (100 << 24) | (64 << 16) | 7
        rec["src_port"] += 1
        translated.append(rec)
    start = time.perf_counter()
    with CaptureWriter(out, linktype=1) as writer:
        for chunk, rec in zip(chunks, translated):
            writer.write(chunk, rec)
    return time.perf_counter() - start, writer.packets_written


def time_dpkt(path: str, limit: int) -> tuple[float, int]:
    import dpkt

    start = time.perf_counter()
    rows = 0
    with open(path, "rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            l4 = ip.data
            _ = (ip.src, ip.dst, ip.p, l4.sport, l4.dport)
            rows += 1
            if rows >= limit:
                break
    return time.perf_counter() - start, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--dpkt-packets", type=int, default=None,
                    help="parse only this prefix with dpkt (default: the whole file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.pcap")
        build_capture(path, args.packets)
        time_reader(path)  # warm the page cache and the code
        best, rows = min(time_reader(path) for _ in range(5))
        assert rows == args.packets, rows
        write_s, written = min(time_writer(path, os.path.join(tmp, "out.pcap")) for _ in range(3))
        dpkt_s, dpkt_rows = time_dpkt(path, args.dpkt_packets or args.packets)
    read_pps = rows / best
    dpkt_pps = dpkt_rows / dpkt_s
    print(json.dumps({
        "packets": rows,
        "read_pps": round(read_pps),
        "dpkt_parse_pps": round(dpkt_pps),
        "ratio_vs_dpkt": round(read_pps / dpkt_pps, 1),
        "write_pps": round(written / write_s),
    }))


if __name__ == "__main__":
    main()
