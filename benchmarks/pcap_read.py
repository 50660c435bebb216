"""Reader throughput: hyperplane.pcap.read_capture against dpkt parsing the same file.

Generates a 1,000,000-packet Ethernet/IPv4 capture (TCP and UDP, tens of thousands of flows)
with a vectorised numpy byte builder, then times, in the same run and on the same file (warm in
the page cache): ``read_capture`` turning every frame into packet records, and dpkt's
parse-only loop (Ethernet -> IP -> TCP/UDP, reading the 5-tuple) over the whole file too (best of
at most 3 runs after a warm-up: it is hundreds of times slower), both counting the same packets.
Prints one JSON line: ``read_pps``, ``dpkt_parse_pps``, ``ratio_vs_dpkt``, ``write_pps``
(CaptureWriter writing every packet back with a new source address and port, checksums updated)
and ``figures`` (the headline figures, each with its baseline and ratio). ``--dpkt-packets N``
makes a capture of N packets for both instead (the quick sizes of ``hyperplane bench``).

    python benchmarks/pcap_read.py [--packets N] [--dpkt-packets N] [--repeat N] [--quick]
"""

from __future__ import annotations

import os
import tempfile

import dpkt
import numpy as np

from _common import best_of, best_of_fresh, emit, figure, ipv4_frames, options, pps, ratio, write_pcap
from hyperplane.formats.capture import CaptureChunk
from hyperplane.formats.pcap_reader import read_capture
from hyperplane.formats.pcap_writer import CaptureWriter


def build_capture(path: str, n: int, seed: int = 7) -> None:
    """A little-endian microsecond pcap of ``n`` TCP/UDP frames with valid IPv4 checksums."""
    rng = np.random.default_rng(seed)
    udp = rng.random(n) < 0.3
    flows = rng.integers(0, 40_000, n)
    src = (10 << 24) | (1 << 8) | (flows % 200).astype(np.int64)            # 10.0.1.x
    dst = (52 << 24) | (94 << 16) | ((flows // 200) % 256).astype(np.int64)  # 52.94.x.0
    frames = ipv4_frames(src, dst, 32768 + flows % 28000, np.where(udp, 53, 443), np.where(udp, 17, 6),
                         0x10, ident=np.arange(n) & 0xFFFF, window=64240,  # TCP: ACKs
                         macs=(b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"))
    write_pcap(path, 1_700_000_000_000_000 + np.arange(n, dtype=np.int64), frames)  # 1 us apart


def count_rows(path: str) -> int:
    return sum(len(chunk) for chunk in read_capture(path))


def translated(path: str) -> list[tuple[CaptureChunk, np.ndarray]]:
    """Every chunk of the capture, with its records given a new source address and port."""
    out = []
    for chunk in read_capture(path):
        rec = chunk.records.copy()
        rec["src_ip"] = (100 << 24) | (64 << 16) | 7
        rec["src_port"] += 1
        out.append((chunk, rec))
    return out


def write_back(out: str, chunks: list[tuple[CaptureChunk, np.ndarray]]) -> int:
    with CaptureWriter(out, linktype=1) as writer:
        for chunk, rec in chunks:
            writer.write(chunk, rec)
    return writer.packets_written


def parse_dpkt(path: str, limit: int) -> int:
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
    return rows


def main() -> None:
    args = options(__doc__, {"packets": 1_000_000, "dpkt_packets": None}, repeat=5,
                   quick={"packets": 200_000},
                   notes={"dpkt_packets": "packets of the capture, when smaller than --packets (None: --packets)",
                          "repeat": "best of N reads (writes and dpkt: of at most 3)"})
    packets = min(args.packets, args.dpkt_packets or args.packets)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.pcap")
        build_capture(path, packets)
        count_rows(path)  # warm the page cache and the code
        best, rows = best_of(lambda: count_rows(path), args.repeat)
        assert rows == packets, rows
        write_s, _, written = best_of_fresh(lambda: translated(path),
                                            lambda chunks: write_back(os.path.join(tmp, "out.pcap"), chunks),
                                            min(args.repeat, 3))
        parse_dpkt(path, 1000)  # warm dpkt's code
        dpkt_s, dpkt_rows = best_of(lambda: parse_dpkt(path, packets), min(args.repeat, 3))
        assert dpkt_rows == rows, (dpkt_rows, rows)
    read_pps = pps(rows, best)
    dpkt_pps = pps(dpkt_rows, dpkt_s)
    emit({
        "packets": rows,
        "read_pps": round(read_pps),
        "dpkt_parse_pps": round(dpkt_pps),
        "ratio_vs_dpkt": round(ratio(read_pps, dpkt_pps), 1),
        "write_pps": round(pps(written, write_s)),
    }, [figure(f"pcap reader, {rows:,} packets", read_pps / 1e6, "M packets/s", "dpkt parse-only, same file",
               dpkt_pps / 1e6),
        figure("pcap writer, every packet translated", pps(written, write_s) / 1e6, "M packets/s",
               "the reader, same file", read_pps / 1e6)])

if __name__ == "__main__":
    main()
