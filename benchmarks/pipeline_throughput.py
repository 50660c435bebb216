"""Throughput of the whole pipeline through the built-in example topology.

    python benchmarks/pipeline_throughput.py [--packets 1000000] [--repeat 5] [--quick]

Traffic: the function `orders` (two Hyperplane ENIs, private subnets) talking to the Redis cache,
the database, S3 through the gateway endpoint and the internet through the NAT gateway, on
tens of thousands of open connections; the measured batch is established traffic (ACKs) of
those connections, in both directions. The last line is one JSON object:
  pipeline_mpps            packets/s through Network.process (V2N, SGs with tracking, routes,
                           NACLs, NAT gateway, IGW, endpoint), in millions
  replies_mpps             the answers, walked back (internet -> NAT -> Hyperplane ENI, cache -> ENI)
  per_packet_python_pps    the scripting API (scapy packet -> Function.send) on a prefix
  ratio_vs_per_packet_python  pipeline_mpps * 1e6 / per_packet_python_pps
"""

from __future__ import annotations

import numpy as np
from scapy.layers.inet import IP, TCP

import hyperplane as hp
from _common import best_of, emit, mpps, options, pps, ratio, replies_to
from hyperplane.dataplane.walk import Origin
from hyperplane.records import ACK, SYN, TCP as P_TCP, ip, packets

DESTINATIONS = [("10.0.21.10", 6379), ("10.0.20.10", 5432), ("52.216.8.1", 443), ("93.184.216.34", 443)]


def main() -> None:
    args = options(__doc__, {"packets": 1_000_000, "connections": 40_000, "python_packets": 2_000}, repeat=5,
                   quick={"packets": 200_000, "repeat": 3})
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
    origin_index = np.array(pools, np.int32)[env]
    opened = net.process(syn, Origin.FUNCTION, origin_index)

    pick = rng.integers(0, n, args.packets)
    est = syn[pick]
    est["flags"] = ACK
    t_out, _ = best_of(lambda: net.process(est, Origin.FUNCTION, origin_index[pick]), args.repeat)

    # replies: from the internet to the NAT's address, and from the cache, to the translated tuples
    sent = opened.packets[pick]
    ok = opened.delivered[pick]
    cache = ok & (dst[pick] == 0)
    inet = ok & (dst[pick] == 3)
    rows = np.concatenate([np.flatnonzero(cache), np.flatnonzero(inet)])
    back = replies_to(sent[rows], ACK)
    origin = np.where(np.arange(len(rows)) < cache.sum(), Origin.ENI, Origin.INTERNET).astype(np.int8)
    index = np.where(origin == Origin.ENI, net.compiled.eni_index["eni-cache"], -1).astype(np.int32)
    replies = net.process(back, origin, index)
    assert replies.delivered.all(), "every reply must reach its function"
    t_back, _ = best_of(lambda: net.process(back, origin, index), args.repeat)

    probe = [IP(dst=DESTINATIONS[k % 4][0]) / TCP(sport=30000 + k, dport=DESTINATIONS[k % 4][1], flags="A")
             for k in range(args.python_packets)]
    t_py, _ = best_of(lambda: [orders.send(p) for p in probe], 1)

    emit({
        "pipeline_mpps": round(mpps(args.packets, t_out), 2),
        "replies_mpps": round(mpps(len(back), t_back), 2),
        "per_packet_python_pps": round(pps(args.python_packets, t_py)),
        "ratio_vs_per_packet_python": round(ratio(pps(args.packets, t_out), pps(args.python_packets, t_py))),
    })


if __name__ == "__main__":
    main()
