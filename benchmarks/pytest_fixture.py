"""What the pytest plugin's ``hyperplane_network`` fixture costs each test, against building the
network from its file every time.

The fixture parses a topology once per session and builds a fresh ``Network`` of it per test.
Measured on the built-in example, best of ``--repeat`` runs:

- ``fixture_ms``: ``Network(topology, ready=True)`` from the parsed topology (what each test pays
  before it asks anything); baseline ``Network.example()`` (parse, validate and build);
- ``first_connect_ms``: that fresh network's first question (``connect("orders", "db:5432")``,
  which compiles the VPC), fixture included; baseline the same on ``Network.example()``.

Every connection asked is checked to end as the example's does (the reply denied by acl-data).

    python benchmarks/pytest_fixture.py [--repeat N] [--quick]
"""

from __future__ import annotations

from _common import best_of, emit, figure, options
from hyperplane.formats.topology_reader import load_example_topology
from hyperplane.network import Network


def first_question(net: Network) -> Network:
    result = net.connect("orders", "db:5432")
    if result.connected or result.failed_leg != "reply" or result.resource != "acl-data":
        raise SystemExit(f"the example answered otherwise: {result.explanation}")
    return net


def main() -> None:
    args = options(__doc__, {}, repeat=20, quick={"repeat": 3})
    topology = load_example_topology()
    first_question(Network(topology, ready=True))  # imports and first compilation out of the way
    fixture, _ = best_of(lambda: Network(topology, ready=True), args.repeat)
    parsed, _ = best_of(Network.example, args.repeat)
    asked, _ = best_of(lambda: first_question(Network(topology, ready=True)), args.repeat)
    asked_parsed, _ = best_of(lambda: first_question(Network.example()), args.repeat)
    ms = 1000.0
    emit({"fixture_ms": fixture * ms, "example_ms": parsed * ms, "first_connect_ms": asked * ms,
          "example_first_connect_ms": asked_parsed * ms},
         [figure("fixture (cached topology, fresh Network)", fixture * ms, "ms",
                 "Network.example() (parse + build)", parsed * ms),
          figure("fixture + first connect", asked * ms, "ms", "Network.example() + first connect", asked_parsed * ms)])


if __name__ == "__main__":
    main()
