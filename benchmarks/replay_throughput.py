"""End-to-end replay throughput on the built-in example, against dpkt and a scapy loop.

    python benchmarks/replay_throughput.py [--packets 1000000] [--flows 20000] [--repeat 3] [--quick]

Generates a capture taken inside the function `orders` (addresses 172.16.5.0/24, 64 execution
environments): TCP conversations (SYN, SYN-ACK, ACK, data both ways, FINs) to the cache, the
database, S3 and internet hosts, and UDP DNS-like exchanges, interleaved in time. Then, in the same
run and on the same file: `hyperplane.replay` end to end (read, emulate, write the output pcap,
aggregate flow logs), dpkt parsing it, and scapy's PcapReader feeding the scripting API on a
prefix (each environment's packets sent from that environment, the peers' answers sent back
along their connections with ``Result.reply``), which must reach the replay's verdict on every
packet of it. Replay and dpkt (warmed first) each run ``--repeat`` times, alternating (a fresh
network each time), and the best run counts, since the machines are shared and noisy; both
count the same packets. The last line is one JSON object: packets, delivered, replay_pps,
dpkt_parse_pps, scapy_replay_pps, ratio_vs_dpkt, ratio_vs_scapy, and ``figures`` (the headline
figures, each with its baseline and ratio).
"""

from __future__ import annotations

import csv
import os
import tempfile

import dpkt
import numpy as np
from scapy.layers.inet import IP, TCP, UDP
from scapy.utils import PcapReader

import hyperplane as hp
from _common import best_of_fresh, emit, figure, ipv4_frames, options, pps, ratio, same_verdicts, timed, write_pcap
from hyperplane.reasons import Reason

FUNCTIONS = {"orders": "172.16.5.0/24"}  # the capture's addresses of the function's environments
DESTINATIONS = [(0x0A00150A, 6379), (0x0A00140A, 5432), (0x34D80801, 443), (0x5DB8D822, 443), (0x08080808, 53)]


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
    write_pcap(path, (t * 1e6).astype(np.int64), ipv4_frames(src, dst, sport, dport, proto, flags))


def parse_dpkt(path: str) -> int:
    n = 0
    with open(path, "rb") as fh:
        for _, buf in dpkt.pcap.Reader(fh):
            eth = dpkt.ethernet.Ethernet(buf)
            l4 = eth.data.data
            _ = (eth.data.src, eth.data.dst, l4.sport, l4.dport)
            n += 1
    return n


def replay_with_scapy(net: hp.Network, path: str, limit: int) -> list[int]:
    """The scripting API doing the replay's work on the first ``limit`` packets: each packet of an
    environment sent from that environment (numbered in the order their addresses appear, as
    the replay numbers them), each peer's answer sent back along its connection
    (``Result.reply``, which walks it from the peer). Returns the Reason of every packet."""
    orders = net.function("orders")
    environment: dict[str, int] = {}
    last: dict[tuple, hp.Result] = {}  # a connection -> the result of its environment's last packet
    reasons = []
    for pkt in PcapReader(path):
        ip = pkt[IP]
        l4 = ip.payload
        if ip.src.startswith("172.16.5."):
            result = orders.send(ip, environment=environment.setdefault(ip.src, len(environment)))
            last[(ip.src, l4.sport, ip.dst, l4.dport, ip.proto)] = result
        else:  # the ports are the connection's, as the peer sees it: Result.reply sets them
            answer = TCP(flags=int(l4.flags)) if TCP in ip else UDP() / bytes(l4.payload)
            result = last[(ip.dst, l4.dport, ip.src, l4.sport, ip.proto)].reply(answer)
        reasons.append(int(result.reason))
        if len(reasons) == limit:
            break
    return reasons


def replay_reasons(capture: str, tmp: str, limit: int) -> list[int]:
    """The Reason of each of the first ``limit`` packets, as hyperplane.replay decides them."""
    path = os.path.join(tmp, "verdicts.csv")
    hp.replay(hp.Network.example(), capture, functions=FUNCTIONS, verdicts=path)
    with open(path) as fh:
        rows = csv.DictReader(fh)
        return [int(Reason[row["reason"]]) for _, row in zip(range(limit), rows)]


def main() -> None:
    args = options(__doc__, {"packets": 1_000_000, "flows": 20_000, "scapy_packets": 10_000}, repeat=3,
                   quick={"packets": 200_000, "flows": 5_000, "scapy_packets": 1_000, "repeat": 1})
    with tempfile.TemporaryDirectory() as tmp:
        capture = os.path.join(tmp, "in.pcap")
        write_capture(capture, conversations(args.packets, args.flows))
        parse_dpkt(capture)  # warm: the page cache, and dpkt's code
        t_dpkt, t_replay = float("inf"), float("inf")
        for k in range(args.repeat):  # dpkt and replay alternate, so that both see the same machine
            t, n_dpkt = timed(lambda: parse_dpkt(capture))
            t_dpkt = min(t_dpkt, t)
            net = hp.Network.example()
            t, report = timed(lambda: hp.replay(net, capture, functions=FUNCTIONS,
                                                output=os.path.join(tmp, "out.pcap"),
                                                flow_logs=os.path.join(tmp, f"logs{k}")))
            t_replay = min(t_replay, t)
        assert report.packets == n_dpkt == args.packets, (report.packets, n_dpkt, args.packets)
        # the scripting API on the first packets: the replay's verdicts, packet for packet
        m = min(args.scapy_packets, args.packets)
        expected = replay_reasons(capture, tmp, m)
        replay_with_scapy(hp.Network.example(), capture, min(m, 200))  # warm scapy's code paths
        t_scapy, _, reasons = best_of_fresh(hp.Network.example, lambda net: replay_with_scapy(net, capture, m), 1)
        same_verdicts("scapy PcapReader + scripting API", expected, reasons)
        n_scapy = len(reasons)
    replay_pps, dpkt_pps, scapy_pps = pps(report.packets, t_replay), pps(n_dpkt, t_dpkt), pps(n_scapy, t_scapy)
    emit({
        "packets": report.packets, "delivered": report.delivered,
        "replay_pps": round(replay_pps), "dpkt_parse_pps": round(dpkt_pps), "scapy_replay_pps": round(scapy_pps),
        "ratio_vs_dpkt": round(ratio(replay_pps, dpkt_pps), 2),
        "ratio_vs_scapy": round(ratio(replay_pps, scapy_pps), 1),
    }, [
        figure(f"replay end to end, {report.packets:,} packets", replay_pps / 1e6, "M packets/s",
               "dpkt parse-only, same file", dpkt_pps / 1e6),
        figure(f"replay end to end, {report.packets:,} packets", replay_pps / 1e6, "M packets/s",
               "scapy PcapReader + scripting API, same verdicts", scapy_pps / 1e6),
    ])


if __name__ == "__main__":
    main()
