"""What a reachability matrix costs: its time and walks, against walking every port.

For each function of the built-in example (the shared AWS snapshots have no Lambda function:
there, each ENI and the internet) the whole matrix (``net.reachability(source)``: every
destination, TCP, UDP and ICMP, every port, both ways, each reply-port class) is timed (best of
``--repeat``) with the number of packets it walked. The naive baseline walks the whole exchange
for **every** port 0-65535, TCP and UDP, through the same batched walker (one case a port;
V2N picks the reply port as it likes), on a few destinations only (``--destinations`` per function of the example, one per source of a
snapshot; ``--quick``: one, and the snapshots' matrices without the baseline): the matrix restricted to the same destinations is timed beside it, and
every one of the baseline's verdicts is asserted equal to the matrix row covering its port
(and the reply port V2N gave it). Ratios: baseline time / matrix time on those destinations
(the baseline walks one subnet of a function and V2N's one pick of reply port; the matrix
every subnet and every reply class, and ICMP: the ratio is the conservative side).

Prints a table, then one JSON line (``figures``: the example's headline figures, each with its
baseline and ratio).

    python benchmarks/reachability.py [--repeat N] [--destinations N] [--quick]
"""

from __future__ import annotations

import warnings
from pathlib import Path
from _common import best_of, emit, figure, options, timed
import hyperplane as hp
from hyperplane.connectivity.exchanges import Case, judge, scratch_network
from hyperplane.connectivity.reachability import _targets, _vpc_of

SNAPSHOTS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "aws-snapshots"


CHUNK = 32768  # exchanges per scratch network: a Hyperplane ENI carries 65,000 connections


def naive(net: hp.Network, source: str, subnet: str | None, names: list[str]) -> tuple[list[Case], int]:
    """Every port of every one of ``names``, TCP and UDP, walked both ways (one case a port),
    a fresh scratch network for every CHUNK of them (no overflow ENI appears)."""
    function = source if source in net.topology.functions else None
    targets = _targets(scratch_network(net), source, _vpc_of(net.topology, source, subnet), names)
    cases = [Case(t, p, port) for t in targets for p in ("tcp", "udp") for port in range(65536)]
    walks = 0
    for k in range(0, len(cases), CHUNK):
        walks += judge(scratch_network(net), source, function, subnet, cases[k:k + CHUNK], 40000)
    return cases, walks


def reply_port(case: Case, function: bool) -> int:
    """The source-side port the exchange's replies went to: V2N's pick for a function."""
    assert case.last is not None
    res, j = case.last
    if function:
        picked = [f["to_port"] for stage, f in res.facts.of(j) if stage == "v2n_out"]
        if picked:
            return picked[0]
    return 40000


def check(matrix: hp.Reachability, cases: list[Case], subnet: str | None, function: bool) -> None:
    """Stop unless every port's verdict is the one of the matrix row covering it."""
    for c in cases:
        rows = matrix.find(c.target.id, c.port, c.protocol, subnet=subnet)
        if len(rows) > 1:
            rows = matrix.find(c.target.id, c.port, c.protocol, subnet=subnet, reply_port=reply_port(c, function))
        assert len(rows) == 1, (c.target.id, c.port, c.protocol, rows)
        row = rows[0]
        assert c.outcome == (row.connected, row.failed_leg, row.leg, row.resource, row.rule, row.reason), (
            f"port {c.port}/{c.protocol} to {c.target.id}: every-port walk {c.outcome}, matrix row {row}")


def measure(label: str, net: hp.Network, sources: list[str], n_destinations: int, repeat: int) -> list[dict]:
    """The matrix of each source, and (``n_destinations`` > 0) the every-port baseline beside
    the matrix on that many destinations."""
    out = []
    for source in sources:
        seconds, matrix = best_of(lambda: net.reachability(source), repeat)
        if n_destinations == 0:
            out.append({"network": label, "source": source, "destinations": len({r.destination for r in matrix}),
                        "rows": len(matrix), "matrix_seconds": seconds, "matrix_walks": matrix.walks})
            continue
        destinations = list(dict.fromkeys(r.destination for r in matrix))
        # the baseline's destinations: the ones whose rows say the most (most rows), then the internet
        busiest = sorted(destinations, key=lambda d: -sum(r.destination == d for r in matrix))
        chosen = busiest[:n_destinations]
        sub_seconds, sub = best_of(lambda: net.reachability(source, chosen), repeat)
        config = net.topology.functions[source].vpc_config if source in net.topology.functions else None
        subnet = config.subnet_ids[0] if config is not None else None
        naive_seconds, (cases, naive_walks) = timed(lambda: naive(net, source, subnet, chosen))
        check(sub, cases, subnet, config is not None)
        out.append({"network": label, "source": source, "destinations": len(destinations), "rows": len(matrix),
                    "matrix_seconds": seconds, "matrix_walks": matrix.walks,
                    "subset": chosen, "subset_seconds": sub_seconds, "subset_walks": sub.walks,
                    "naive_seconds": naive_seconds, "naive_walks": naive_walks,
                    "naive_subnets": 1, "ratio": naive_seconds / sub_seconds})
    return out


def main() -> None:
    args = options(__doc__, {"destinations": 2}, repeat=3, quick={"destinations": 1, "repeat": 1},
                   notes={"destinations": "destinations the every-port baseline walks, per source"})
    example = hp.Network.example()
    results = measure("example", example, list(example.topology.functions), args.destinations, args.repeat)
    if SNAPSHOTS.is_dir():
        for folder in sorted(p for p in SNAPSHOTS.iterdir() if p.is_dir()):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net = hp.Network.load(folder, repair=True)
            sources = [*net.topology.functions, *net.topology.network_interfaces, "internet"]
            results += measure(folder.name, net, sources, 0 if args.quick else 1, 1)
    print(f"{'network':<28} {'source':<22} {'dest':>4} {'rows':>5} {'matrix s':>9} {'walks':>7}  "
          f"{'subset s':>9} {'walks':>6}  {'every port s':>12} {'walks':>8} {'ratio':>7}")
    for r in results:
        line = (f"{r['network']:<28} {r['source']:<22} {r['destinations']:>4} {r['rows']:>5} {r['matrix_seconds']:>9.3f} "
                f"{r['matrix_walks']:>7}")
        if "naive_seconds" in r:
            line += (f"  {r['subset_seconds']:>9.3f} {r['subset_walks']:>6}  {r['naive_seconds']:>12.2f} "
                     f"{r['naive_walks']:>8} {r['ratio']:>6.0f}x")
        print(line)
    orders = next(r for r in results if r["source"] == "orders")
    largest = max((r for r in results if r["network"] != "example"), key=lambda r: r["matrix_seconds"], default=None)
    headline = [
        figure("orders: whole matrix (every destination, port, protocol, both subnets)", orders["matrix_seconds"], "s"),
        figure(f"orders: matrix on {len(orders['subset'])} destinations", orders["subset_seconds"], "s",
               "every port 0-65535 walked, tcp+udp, one subnet", orders["naive_seconds"]),
        figure("orders: walks of the matrix on those destinations", orders["subset_walks"], "packets",
               "walks of every port", orders["naive_walks"]),
    ]
    emit({"example_orders_matrix_seconds": orders["matrix_seconds"], "example_orders_walks": orders["matrix_walks"],
          "largest_snapshot_matrix_seconds": largest["matrix_seconds"] if largest else None,
          "largest_snapshot_source": f"{largest['network']}:{largest['source']}" if largest else None,
          "results": results}, headline)


if __name__ == "__main__":
    main()
