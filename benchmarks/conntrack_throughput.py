"""Throughput of security group connection tracking, against a plain-Python dict in the same run.

    python benchmarks/conntrack_throughput.py [--flows 100000] [--packets 1000000] [--repeat 5] [--quick]

The last line printed is one JSON object:
  check_mpps        rows of live flows (TCP ACKs, either direction, flows picked uniformly at
                    random among the live ones, 1,000 ENIs), in Mpps: lookup, orientation-free
                    key, state and deadline refresh
  setup_mpps        rows that open a flow (the rules allow them, nothing tracked yet)
  bytes_per_flow    table memory / live flows
  dict_mpps         the same tracked rows, all of them, through a Python dict keyed by the
                    canonical tuple, which must decide every row as the table did
  ratio_vs_python   check_mpps / dict_mpps
  figures           the headline figures, each with its baseline and ratio
"""

from __future__ import annotations

import numpy as np

from _common import best_of_fresh, best_rate, emit, figure, mpps, options, ratio, same_verdicts
from hyperplane.tables.conntrack import ConnectionTracker
from hyperplane.records import ACK, SYN, TCP, ip, packets


def dict_check(flows: dict, eni: list, batch: np.ndarray, timeout: float) -> list:
    """The baseline: the same decision per row with a dict of canonical tuples."""
    out = []
    for e, (t, src, dst, sport, dport, length, proto, flags) in zip(eni, batch.tolist()):
        a, b = (src, sport), (dst, dport)
        key = (e, proto) + ((a + b) if a <= b else (b + a))
        flow = flows.get(key)
        if flow is not None and flow[0] > t:
            flow[0] = t + timeout
            out.append((1, 1))
        else:
            out.append((0, 0))
    return out


def main() -> None:
    args = options(__doc__, {"flows": 100_000, "packets": 1_000_000, "enis": 1_000},
                   repeat=5, quick={"flows": 20_000, "packets": 200_000})
    n = args.flows
    rng = np.random.default_rng(42)

    # one SYN per flow: clients in a /16 talking to 100 servers on 10 ports, spread over ENIs
    syn = packets(n)
    syn["src_ip"] = ip("10.0.0.0") + rng.integers(0, 65536, n)
    syn["src_port"] = 1024 + np.arange(n) % 60_000
    syn["dst_ip"] = ip("10.1.0.1") + rng.integers(0, 100, n)
    syn["dst_port"] = 5000 + rng.integers(0, 10, n)
    syn["proto"] = TCP
    syn["flags"] = SYN
    syn["length"] = 60
    eni = rng.integers(0, args.enis, n).astype(np.int32)
    allow = np.ones(n, dtype=np.uint8)
    # a fresh table each time; the best run counts
    setup_s, tracker, opened = best_of_fresh(lambda: ConnectionTracker(capacity=n),
                                             lambda t: t.check(eni, syn, allow), args.repeat)
    setup_mpps = mpps(n, setup_s)
    assert opened.allowed.all() and not opened.tracked.any()
    live = tracker.live
    assert live == n, f"{n - live} duplicate tuples"

    # tracked rows: flows picked at random, half of them replies, rules deny everything
    pick = rng.integers(0, n, args.packets)
    rows = syn[pick]
    back = rng.random(args.packets) < 0.5
    rows["src_ip"], rows["dst_ip"] = (np.where(back, rows["dst_ip"], rows["src_ip"]),
                                      np.where(back, rows["src_ip"], rows["dst_ip"]))
    rows["src_port"], rows["dst_port"] = (np.where(back, rows["dst_port"], rows["src_port"]),
                                          np.where(back, rows["src_port"], rows["dst_port"]))
    rows["flags"] = ACK
    rows["time"] = 1.0 + np.arange(args.packets) / 1e6
    row_eni = eni[pick]
    deny = np.zeros(args.packets, dtype=np.uint8)
    result = tracker.check(row_eni, rows, deny)
    assert result.tracked.all(), "every row belongs to a live flow"
    check_mpps = best_rate(lambda: tracker.check(row_eni, rows, deny), args.packets, args.repeat)

    # baseline: a dict of the same flows, on all the same rows, deciding each as the table did
    flows = {}
    for e, (t, src, dst, sport, dport, length, proto, flags) in zip(eni.tolist(), syn.tolist()):
        a, b = (src, sport), (dst, dport)
        flows[(e, proto) + ((a + b) if a <= b else (b + a))] = [60.0]
    all_eni = row_eni.tolist()
    # the baseline's (allowed, tracked) per row against the table's, before either is timed
    same_verdicts("dict conntrack", list(zip(result.allowed.tolist(), result.tracked.tolist())),
                  dict_check(flows, all_eni, rows, 432_000.0))
    dict_mpps = best_rate(lambda: dict_check(flows, all_eni, rows, 432_000.0), args.packets, args.repeat)

    emit({
        "flows": live,
        "rows": args.packets,
        "check_mpps": round(check_mpps, 2),
        "setup_mpps": round(setup_mpps, 2),
        "bytes_per_flow": round(tracker.memory_bytes / live, 1),
        "dict_mpps": round(dict_mpps, 3),
        "ratio_vs_python": round(ratio(check_mpps, dict_mpps), 1),
    }, [
        figure(f"connection tracking, {args.packets:,} rows over {live:,} flows", check_mpps, "Mpps",
               "Python dict of canonical tuples, same rows", dict_mpps),
        figure("connection tracking, new flows", setup_mpps, "Mpps", "rows of live flows", check_mpps),
    ])


if __name__ == "__main__":
    main()
