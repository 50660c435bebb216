"""End-to-end replay throughput on the built-in example, against dpkt and a scapy loop.

    python benchmarks/replay_throughput.py [--packets 1000000] [--flows 20000]

Generates a capture taken inside the function `orders` (addresses 172.16.5.0/24, 64 execution
environments): TCP conversations (SYN, SYN-ACK, ACK, data both ways, FINs) to the cache, the
database, S3 and internet hosts, and UDP DNS-like exchanges, interleaved in time. Then, in the same
run and on the same file: `hyperplane.replay` end to end (read, emulate, write the output pcap,
aggregate flow logs), dpkt parsing it, and scapy's PcapReader feeding the scripting API on a
prefix. Replay and dpkt each run ``--repeat`` times (a fresh network each time) and the best
run counts, since the machines are shared and noisy. The last line is one JSON object: packets,
delivered, replay_pps, dpkt_parse_pps, scapy_replay_pps, ratio_vs_dpkt, ratio_vs_scapy.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

import hyperplane as hp

DESTINATIONS = [(0x0A00150A, 6379), (0x0A00140A, 5432), (0x34D80801, 443), (0x5DB8D822, 443), (0x08080808, 53)]
FRAME = 60


def _put16(a, col, v):
    a[:, col] = (v >> 8) & 0xFF
    a[:, col + 1] = v & 0xFF


def _put32(a, col, v):
    for k in range(4):
        a[:, col + k] = (v >> (24 - 8 * k)) & 0xFF


def conversations(n: int, flows: int, seed: int = 5):
    """Rows (time, src, dst, sport, dport, proto, flags), time-ordered, about n of them."""
    rng = np.random.default_rng(seed)
    per_flow = max(n // flows, 7)
    flow = np.repeat(np.arange(flows), per_flow)[:n]
    step = np.tile(np.arange(per_flow), flows)[:n]
    dest = rng.integers(0, len(DESTINATIONS), flows)[flow]
    udp = dest == 4
    env = (0xAC100500 + 10 + flow % 64).astype(np.int64)  # 172.16.5.10 + k
    peer = np.array([d for d, _ in DESTINATIONS], np.int64)[dest]
    peer = np.where(dest == 3, peer + (flow % 200), peer)  # many internet hosts
    port = np.array([p for _, p in DESTINATIONS], np.int64)[dest]
    eport = 20000 + flow % 40000
    # TCP: SYN out, SYN-ACK in, ACK out, then bursts of 3 each way, FIN-ACK out, FIN-ACK in
    inbound = np.where(step < 3, step == 1, (step // 3) % 2 == 1)
    last = per_flow - 1
    flags = np.full(n, 0x18, np.int64)
    flags[step == 0], flags[step == 1], flags[step == 2] = 0x02, 0x12, 0x10
    flags[step == last - 1], flags[step == last] = 0x11, 0x11
    inbound[step == last - 1], inbound[step == last] = False, True
    flags[udp] = 0
    start = rng.random(flows)[flow] * n / 2e5  # flows start over time
    t = 1_700_000_000 + start + step * 0.001
    src = np.where(inbound, peer, env)
    dst = np.where(inbound, env, peer)
    sport = np.where(inbound, port, eport)
    dport = np.where(inbound, eport, port)
    order = np.argsort(t, kind="stable")
    return [a[order] for a in (t, src, dst, sport, dport, np.where(udp, 17, 6), flags)]


def write_capture(path: str, rows) -> None:
    t, src, dst, sport, dport, proto, flags = rows
    n = len(t)
    rec = np.zeros((n, 16 + FRAME), np.uint8)
    ts = (t * 1e6).astype(np.int64)
    hdr = rec[:, :16].view("<u4")
    hdr[:, 0], hdr[:, 1], hdr[:, 2], hdr[:, 3] = ts // 1_000_000, ts % 1_000_000, FRAME, FRAME
    f = rec[:, 16:]
    f[:, 12:14] = [0x08, 0x00]
    ip = 14
    f[:, ip] = 0x45
    _put16(f, ip + 2, np.where(proto == 17, 46, 40))
    f[:, ip + 8] = 64
    f[:, ip + 9] = proto
    _put32(f, ip + 12, src)
    _put32(f, ip + 16, dst)
    words = f[:, ip:ip + 20].astype(np.uint32)
    s = (words[:, 0::2] << 8 | words[:, 1::2]).sum(axis=1)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    _put16(f, ip + 10, (~s) & 0xFFFF)
    _put16(f, ip + 20, sport)
    _put16(f, ip + 22, dport)
    tcp = proto == 6
    f[tcp, ip + 32] = 0x50
    f[tcp, ip + 33] = flags[tcp]
    f[~tcp, ip + 25] = 26
    with open(path, "wb") as out:
        out.write(np.array([0xA1B2C3D4, 0x00040002, 0, 0, 262144, 1], "<u4").tobytes())
        out.write(rec.tobytes())


def time_dpkt(path: str) -> tuple[float, int]:
    import dpkt

    start, n = time.perf_counter(), 0
    with open(path, "rb") as fh:
        for _, buf in dpkt.pcap.Reader(fh):
            eth = dpkt.ethernet.Ethernet(buf)
            l4 = eth.data.data
            _ = (eth.data.src, eth.data.dst, l4.sport, l4.dport)
            n += 1
    return time.perf_counter() - start, n


def time_scapy(path: str, limit: int) -> tuple[float, int]:
    from scapy.layers.inet import IP
    from scapy.utils import PcapReader

    net = hp.Network.example()
    orders = net.function("orders")
    start, n = time.perf_counter(), 0
    for pkt in PcapReader(path):
        ip = pkt[IP]
        if ip.src.startswith("172.16.5."):
            orders.send(ip)
        else:
            net.send(ip, source="internet")
        n += 1
        if n == limit:
            break
    return time.perf_counter() - start, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--flows", type=int, default=20_000)
    ap.add_argument("--scapy-packets", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        capture = os.path.join(tmp, "in.pcap")
        write_capture(capture, conversations(args.packets, args.flows))
        t_dpkt, t_replay = float("inf"), float("inf")
        for k in range(args.repeat):
            t, n = time_dpkt(capture)
            t_dpkt = min(t_dpkt, t)
            net = hp.Network.example()
            start = time.perf_counter()
            report = hp.replay(net, capture, functions={"orders": "172.16.5.0/24"},
                               output=os.path.join(tmp, "out.pcap"), flow_logs=os.path.join(tmp, f"logs{k}"))
            t_replay = min(t_replay, time.perf_counter() - start)
        t_scapy, n_scapy = time_scapy(capture, args.scapy_packets)
    replay_pps, dpkt_pps, scapy_pps = n / t_replay, n / t_dpkt, n_scapy / t_scapy
    print(json.dumps({
        "packets": n, "delivered": report.delivered,
        "replay_pps": round(replay_pps), "dpkt_parse_pps": round(dpkt_pps), "scapy_replay_pps": round(scapy_pps),
        "ratio_vs_dpkt": round(replay_pps / dpkt_pps, 2), "ratio_vs_scapy": round(replay_pps / scapy_pps, 1),
    }))


if __name__ == "__main__":
    main()
