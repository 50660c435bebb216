"""Load tests of the modelled system: simulated seconds per wall second, against a plain-Python
event loop doing the same counting.

    python benchmarks/load_model.py [--executions 1000] [--connections 10] [--seconds 3600] [--repeat 1] [--quick]

The workload: ``--executions`` concurrent executions of `orders` on the built-in example, each
environment running 10 s invocations back to back for ``--seconds`` of virtual time and keeping
``--connections`` pooled connections (reused by every invocation, as an SDK client outside the
handler does) to 10 internet destinations through nat-a. ``hp.load_test`` walks every packet
(SYN, SYN-ACK, ACK; a request and its answer at each use) through the compiled engine; the
baseline is a heapq event loop over the same invocations that only counts: connections opened,
uses, idle cuts (350 s), refusals at 55,000 per NAT address and destination and 65,000 per
Hyperplane ENI. Both must count the same. The last line is one JSON object with ``figures``.
"""

from __future__ import annotations

import heapq
import zlib

import hyperplane as hp
from _common import best_of_fresh, emit, figure, options, ratio, timed
from hyperplane.workload import Workload, load_test

DURATION = 10.0  # seconds an invocation lasts
STEP = 10.0  # the load test's batches
DESTINATIONS = 10
GOLDEN = 0.6180339887498949  # the load test's stagger of first invocations


def workload(executions: int, connections: int, seconds: int) -> Workload:
    return Workload.from_dict({"duration": seconds, "step": STEP, "sample": 60, "functions": [{
        "function": "orders", "concurrency": executions, "duration": DURATION, "connections": [
            {"to": "internet:443", "destinations": DESTINATIONS, "count": connections, "reuse": True,
             "name": "api"}]}]})


def event_loop(executions: int, connections: int, seconds: int, addresses: list[str]) -> dict[str, int]:
    """The same invocations and pooled connections, counted in plain Python (``addresses``:
    the environments', which bind each to a subnet, docs/lambda.md)."""
    subnets = ("subnet-private-a", "subnet-private-b")
    eni_of = [subnets[zlib.crc32(f"orders:{a}".encode()) % 2] for a in addresses]  # each one's ENI
    events = [((k * GOLDEN) % 1.0 * min(DURATION, STEP), k) for k in range(executions)]
    heapq.heapify(events)
    last_use: dict[tuple[int, int], float] = {}  # (environment, connection) -> time
    per_destination: dict[int, int] = {}
    per_eni: dict[str, int] = {}
    counts = {"invocations": 0, "opened": 0, "uses": 0, "cut": 0, "refused": 0}
    next_destination = 0
    destination_of: dict[tuple[int, int], int] = {}
    while events:
        t, k = heapq.heappop(events)
        if t >= seconds:
            continue
        counts["invocations"] += 1
        heapq.heappush(events, (t + DURATION, k))
        for c in range(connections):
            key = (k, c)
            seen = last_use.get(key)
            if seen is not None and t - seen < 350.0:
                counts["uses"] += 1
                last_use[key] = t
                continue
            if seen is not None:  # idle past the timeouts: cut, opened again
                counts["cut"] += 1
            if key not in destination_of:
                destination_of[key] = next_destination
                next_destination = (next_destination + 1) % DESTINATIONS
            d = destination_of[key]
            if per_destination.get(d, 0) >= 55_000 or per_eni.get(eni_of[k], 0) >= 65_000:
                counts["refused"] += 1
                continue
            if seen is None:
                per_destination[d] = per_destination.get(d, 0) + 1
                per_eni[eni_of[k]] = per_eni.get(eni_of[k], 0) + 1
            counts["opened"] += 1
            last_use[key] = t
    counts["peak_per_destination"] = max(per_destination.values(), default=0)
    return counts


def main() -> None:
    args = options(__doc__, {"executions": 1000, "connections": 10, "seconds": 3600}, repeat=1,
                   quick={"executions": 200, "seconds": 600})
    w = workload(args.executions, args.connections, args.seconds)
    t_model, _, report = best_of_fresh(hp.Network.example, lambda net: load_test(net, w), args.repeat)
    orders = hp.Network.example().function("orders")
    addresses = [orders.environment_address(k) for k in range(args.executions)]
    t_loop, counts = timed(lambda: event_loop(args.executions, args.connections, args.seconds, addresses))
    ours = {"invocations": report.invocations["orders"], "opened": report.opened, "cut": sum(report.cut.values()),
            "refused": sum(report.refused.values()),
            "peak_per_destination": int(report.peak("nat_destination_connections"))}
    theirs = {k: counts[k] for k in ours}
    if ours != theirs:
        raise AssertionError(f"the load test counted {ours}, the event loop {theirs}")
    model_rate, loop_rate = args.seconds / t_model, args.seconds / t_loop
    label = f"load test, {args.executions:,} executions x {args.connections} connections, {args.seconds:,} s"
    emit({"executions": args.executions, "connections": args.connections, "seconds": args.seconds,
          "packets": report.packets, "counts": ours, "load_test_seconds": round(t_model, 3),
          "event_loop_seconds": round(t_loop, 3), "simulated_seconds_per_second": round(model_rate, 1),
          "packets_per_second": round(report.packets / t_model),
          "ratio_vs_event_loop": round(ratio(model_rate, loop_rate), 3)},
         [figure(label, model_rate, "simulated s/s", "plain-Python event loop, same counts", loop_rate)])


if __name__ == "__main__":
    main()
