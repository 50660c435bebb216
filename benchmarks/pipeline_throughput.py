"""Throughput of the whole pipeline through the built-in example topology.

    python benchmarks/pipeline_throughput.py [--packets 1000000] [--repeat 5] [--quick]

Traffic: the function `orders` (two Hyperplane ENIs, private subnets) talking to the Redis cache,
S3 through the gateway endpoint and the internet through the NAT gateway (not to the database,
whose NACL drops the SYN-ACKs: the example's mistake), on
tens of thousands of connections, each opened through the walker as in reality first (SYN out,
the peer's SYN-ACK back to the environment, ACK out); the benchmark stops unless every V2N and
NAT gateway connection is then established and every tracked flow has seen both ends. The
measured batch is established traffic (ACKs) of those connections, in both directions. The last
line is one JSON object:
  pipeline_mpps            packets/s through Network.process (V2N, SGs with tracking, routes,
                           NACLs, NAT gateway, IGW, endpoint), in millions
  replies_mpps             the peers' answers, walked back to the environments
  fast_path_off_mpps       the same packets with the walker's fast path off (``FAST_PATH``: every
                           lookup of every packet done, no flow remembered), timed in turns with it
                           (ratio_fast_path: pipeline_mpps over it; verdict_only_fast_path_off_mpps
                           and ratio_verdict_only_fast_path the same verdict-only); the results
                           must be the same, hop log included
  verdict_only_mpps        the same established packets through Network.process(..., hops=False)
                           (no hop log), timed in turns with the full walk of them (its baseline:
                           full_walk_mpps, ratio_verdict_only_vs_full); every row must end with the
                           same reason, at the same ENI, translated alike
  per_packet_python_pps    the scripting API (Function.send of scapy packets) on the first
                           ``--python-packets`` of the same established packets, which must end
                           with the same reason, row for row, as in the batch
  ratio_vs_per_packet_python  pipeline_mpps * 1e6 / per_packet_python_pps
  scapy_build_pps          scapy building and serializing those packets (what a script pays
                           before any emulation), and ratio_send_vs_scapy_build: the scripting
                           API's cost per packet over scapy's
  import_ms, example_ms     what a test suite pays: ``import hyperplane`` in a fresh interpreter
                           (beyond the interpreter's own start), and one ``Network.example()``;
  network_ms               one Network of the example's topology once parsed, its data plane
                           compiled (what a fixture sharing the parsed topology pays)
  figures                  the headline figures, each with its baseline and ratio
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from scapy.layers.inet import IP, TCP

import hyperplane as hp
import hyperplane.dataplane.walk as walk
from _common import (best_of, best_of_each, emit, figure, mpps, options, pps, ratio, replies_to, same_verdicts,
                     timed)
from hyperplane.dataplane.walk import BatchResult, Origin
from hyperplane.formats.topology_reader import load_example_topology
from hyperplane.reasons import Reason
from hyperplane.records import ACK, SYN, TCP as P_TCP, ip, ip_str, packets
from hyperplane.tables.conntrack import SEEN_A, SEEN_B
from hyperplane.tables.nat import STATE_NAMES

# not the database: the example's acl-data drops its SYN-ACKs (the mistake the example shows),
# so no connection to it can be established
DESTINATIONS = [("10.0.21.10", 6379), ("52.216.8.1", 443), ("93.184.216.34", 443)]
ESTABLISHED = STATE_NAMES.index("tcp-established")


def all_delivered(what: str, result: BatchResult) -> None:
    if not result.delivered.all():
        k = int(np.flatnonzero(~result.delivered)[0])
        raise AssertionError(f"{what}: row {k} ended {Reason(int(result.reason[k])).name}")


def open_connections(net: hp.Network, syn: np.ndarray, pool: np.ndarray) -> BatchResult:
    """SYN out, the peers' SYN-ACKs back to the environments, ACK out, all through the walker;
    stops unless every connection is then established in every table it went through."""
    opened = net.process(syn, Origin.FUNCTION, pool)
    all_delivered("SYN", opened)
    synack = replies_to(syn, SYN | ACK)
    synack["time"] = 0.001
    all_delivered("SYN-ACK", net.process(synack, Origin.REPLY_TO_FUNCTION, net.function_number("orders")))
    ack = syn.copy()
    ack["flags"], ack["time"] = ACK, 0.002
    all_delivered("handshake ACK", net.process(ack, Origin.FUNCTION, pool))
    for table in [p.table for p in net._pools] + list(net._nat_tables):
        states = table.connections()["state"]
        assert (states == ESTABLISHED).all(), f"{int((states != ESTABLISHED).sum())} connections not established"
    bits = net._conntrack.flows()["bits"]
    assert len(bits) and ((bits & (SEEN_A | SEEN_B)) == (SEEN_A | SEEN_B)).all(), "a tracked flow saw one end only"
    return opened


def main() -> None:
    args = options(__doc__, {"packets": 1_000_000, "connections": 40_000, "python_packets": 2_000}, repeat=5,
                   quick={"packets": 200_000, "python_packets": 1_000, "repeat": 3})
    net = hp.Network.example()
    orders = net.function("orders")
    envs = [orders.environment_address(k) for k in range(4)]
    pools = []
    for env in envs:  # which pool (subnet) each environment is bound to
        inv = net.lambda_service.invoke("orders", env, now=net.now)
        net._current_pipeline()
        pools.append(next(k for k, p in enumerate(net._pools) if p is inv.pool))

    rng = np.random.default_rng(3)
    n = args.connections
    syn = packets(n)
    env = rng.integers(0, len(envs), n)
    dst = rng.integers(0, len(DESTINATIONS), n)
    syn["src_ip"] = np.array([ip(e) for e in envs], np.uint32)[env]
    syn["src_port"] = 20000 + np.arange(n) % 40000
    syn["dst_ip"] = np.array([ip(d) for d, _ in DESTINATIONS], np.uint32)[dst]
    syn["dst_port"] = np.array([p for _, p in DESTINATIONS], np.uint16)[dst]
    syn["proto"], syn["flags"], syn["length"] = P_TCP, SYN, 60
    pool = np.array(pools, np.int32)[env]
    open_connections(net, syn, pool)

    pick = rng.integers(0, n, args.packets)
    est = syn[pick]
    est["flags"], est["time"] = ACK, 1.0
    out = net.process(est, Origin.FUNCTION, pool[pick])
    all_delivered("established ACK", out)
    t_out, _ = best_of(lambda: net.process(est, Origin.FUNCTION, pool[pick]), args.repeat)

    # verdict-only: the same packets without the hop log, in turns with the full walk
    fast = net.process(est, Origin.FUNCTION, pool[pick], hops=False)
    same_verdicts("verdict-only walk", out.reason.tolist(), fast.reason.tolist())
    same_verdicts("verdict-only walk (where)", out.location.tolist(), fast.location.tolist())
    assert fast.packets.tobytes() == out.packets.tobytes(), "the verdict-only walk translated otherwise"
    t_full, t_fast = best_of_each([lambda: net.process(est, Origin.FUNCTION, pool[pick]),
                                   lambda: net.process(est, Origin.FUNCTION, pool[pick], hops=False)], args.repeat)

    # the fast path off: the same packets, every lookup done (the same results, hop by hop)
    def without_fast_path(hops: bool) -> BatchResult:
        walk.FAST_PATH = False
        try:
            return net.process(est, Origin.FUNCTION, pool[pick], hops=hops)
        finally:
            walk.FAST_PATH = True

    slow = without_fast_path(True)
    same_verdicts("fast path off", out.reason.tolist(), slow.reason.tolist())
    same_verdicts("fast path off (where)", out.location.tolist(), slow.location.tolist())
    assert slow.packets.tobytes() == out.packets.tobytes(), "the walk without its fast path translated otherwise"
    assert slow.facts.hops.tobytes() == out.facts.hops.tobytes(), "the walk without its fast path logged otherwise"
    t_on, t_off, t_fast_on, t_fast_off = best_of_each([
        lambda: net.process(est, Origin.FUNCTION, pool[pick]), lambda: without_fast_path(True),
        lambda: net.process(est, Origin.FUNCTION, pool[pick], hops=False), lambda: without_fast_path(False)],
        args.repeat)

    # the peers' answers as they arrive: to the translated tuples (the packets as delivered), the
    # cache's from its ENI, S3's from the gateway endpoint, the internet's at the internet gateway
    back = replies_to(out.packets, ACK)
    back["time"] = 1.0
    peer = dst[pick]
    origin = np.array([Origin.ENI, Origin.GATEWAY_ENDPOINT, Origin.INTERNET], np.int8)[peer]
    index = np.where(peer == 0, net.compiled.eni_index["eni-cache"], -1).astype(np.int32)
    replies = net.process(back, origin, index)
    all_delivered("reply", replies)
    assert (replies.reason == Reason.DELIVERED_TO_FUNCTION).all()
    t_back, _ = best_of(lambda: net.process(back, origin, index), args.repeat)

    # the scripting API: the first packets of the same established batch, one Function.send
    # each from the same environment; every one must end as the batch decided it
    m = min(args.python_packets, args.packets)
    rows = est[:m].tolist()
    env_of = {ip(e): e for e in envs}

    def build() -> list:
        return [IP(dst=ip_str(r[2])) / TCP(sport=r[3], dport=r[4], flags="A") for r in rows]

    probe = build()
    sources = [env_of[r[1]] for r in rows]

    def send_all() -> list:
        return [orders.send(p, environment=e) for p, e in zip(probe, sources)]

    same_verdicts("Function.send", out.reason[:m].tolist(), [int(r.reason) for r in send_all()])
    t_py, _ = best_of(send_all, max(1, args.repeat // 2))
    t_build, _ = best_of(lambda: [bytes(p) for p in build()], max(1, args.repeat // 2))

    def start(code: str) -> float:
        return timed(lambda: subprocess.run([sys.executable, "-c", code], check=True))[0]

    import_s = min(start("import hyperplane") - start("pass") for _ in range(3))
    example_s, _ = best_of(hp.Network.example, args.repeat)
    topology = load_example_topology()
    network_s, _ = best_of(lambda: hp.Network(topology, ready=True)._current_pipeline(), args.repeat)

    pipeline_pps, python_pps, build_pps = pps(args.packets, t_out), pps(m, t_py), pps(m, t_build)
    replies_mpps = mpps(len(back), t_back)
    full_mpps, fast_mpps = mpps(args.packets, t_full), mpps(args.packets, t_fast)
    on_mpps, off_mpps = mpps(args.packets, t_on), mpps(args.packets, t_off)
    fast_on_mpps, fast_off_mpps = mpps(args.packets, t_fast_on), mpps(args.packets, t_fast_off)
    emit({
        "pipeline_mpps": round(pipeline_pps / 1e6, 2),
        "replies_mpps": round(replies_mpps, 2),
        "per_packet_python_pps": round(python_pps),
        "ratio_vs_per_packet_python": round(ratio(pipeline_pps, python_pps)),
        "scapy_build_pps": round(build_pps),
        "ratio_send_vs_scapy_build": round(ratio(build_pps, python_pps), 2),
        "verdict_only_mpps": round(fast_mpps, 2),
        "full_walk_mpps": round(full_mpps, 2),
        "ratio_verdict_only_vs_full": round(ratio(fast_mpps, full_mpps), 2),
        "fast_path_on_mpps": round(on_mpps, 2),
        "fast_path_off_mpps": round(off_mpps, 2),
        "ratio_fast_path": round(ratio(on_mpps, off_mpps), 2),
        "verdict_only_fast_path_on_mpps": round(fast_on_mpps, 2),
        "verdict_only_fast_path_off_mpps": round(fast_off_mpps, 2),
        "ratio_verdict_only_fast_path": round(ratio(fast_on_mpps, fast_off_mpps), 2),
        "import_ms": round(import_s * 1e3, 1),
        "example_ms": round(example_s * 1e3, 1),
        "network_ms": round(network_s * 1e3, 1),
    }, [
        figure("data plane, net.process, established packets of the example", pipeline_pps / 1e6, "Mpps",
               "scripting API, Function.send per packet, same packets", python_pps / 1e6),
        figure("data plane, verdict-only net.process (hops=False), same packets", fast_mpps, "Mpps",
               "the full walk (hop log) of the same packets, in turns", full_mpps),
        figure("data plane, net.process with the walker's fast path, same packets", on_mpps, "Mpps",
               "the fast path off (every lookup done), in turns", off_mpps),
        figure("data plane, verdict-only with the fast path, same packets", fast_on_mpps, "Mpps",
               "verdict-only with the fast path off, in turns", fast_off_mpps),
        figure("data plane, replies walked back to the environments", replies_mpps, "Mpps",
               "established packets out", pipeline_pps / 1e6),
        figure("scripting API, Function.send of a scapy ACK", 1e6 / python_pps, "us/packet",
               "scapy building and serializing the same packet", 1e6 / build_pps),
    ])


if __name__ == "__main__":
    main()
