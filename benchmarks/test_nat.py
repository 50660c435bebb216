"""pytest-benchmark suite for the connection table: ``pytest benchmarks/test_nat.py``.

The standalone ``nat_throughput.py`` prints the headline figures; these keep per-operation
timings comparable across commits (``--benchmark-autosave`` / ``--benchmark-compare``).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from hyperplane.tables.nat import ConnectionTable, Direction
from hyperplane.records import ACK, TCP, UDP, ip

sys.path.insert(0, str(Path(__file__).parent))  # pytest's importlib mode does not add this folder
from _common import environment_syns, replies_to  # noqa: E402
from nat_throughput import handshake  # noqa: E402

N = 200_000


def syns(n: int, proto: int = TCP) -> np.ndarray:
    return environment_syns(n, np.random.default_rng(7), proto)


def fresh_table() -> ConnectionTable:
    return ConnectionTable.hyperplane_eni([ip("10.0.10.50") + k for k in range(4)], capacity=N)


@pytest.mark.parametrize("proto", [TCP, UDP])
def test_open_connections(benchmark, proto):
    batch = syns(N, proto)
    result = benchmark.pedantic(lambda t: t.process(batch, Direction.OUT),
                                setup=lambda: ((fresh_table(),), {}), rounds=5)
    assert (result.status == 1).all()


def test_established_outbound(benchmark):
    table = fresh_table()
    batch = syns(N)
    handshake(table, batch, table.process(batch, Direction.OUT).packets)  # SYN, SYN-ACK, ACK: established
    est = batch[np.random.default_rng(1).integers(0, N, 1_000_000)]
    est["flags"] = ACK
    result = benchmark(table.process, est, Direction.OUT)
    assert (result.status == 0).all()


def test_replies_inbound(benchmark):
    table = fresh_table()
    batch = syns(N)
    back = replies_to(table.process(batch, Direction.OUT).packets, ACK)
    result = benchmark(table.process, back, Direction.IN)
    assert (result.status == 0).all()
