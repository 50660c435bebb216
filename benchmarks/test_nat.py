"""pytest-benchmark suite for the connection table: ``pytest benchmarks/test_nat.py``.

The standalone ``nat_throughput.py`` prints the headline figures; these keep per-operation
timings comparable across commits (``--benchmark-autosave`` / ``--benchmark-compare``).
"""

import numpy as np
import pytest

from hyperplane.nat import ConnectionTable, Direction
from hyperplane.records import ACK, SYN, TCP, UDP, ip, packets

N = 200_000


def syns(n: int, proto: int = TCP) -> np.ndarray:
    rng = np.random.default_rng(7)
    batch = packets(n)
    batch["src_ip"] = ip("169.254.0.1") + np.arange(n) // 60_000
    batch["src_port"] = 1024 + np.arange(n) % 60_000
    batch["dst_ip"] = ip("10.0.20.1") + rng.integers(0, 100, n)
    batch["dst_port"] = 5000 + rng.integers(0, 10, n)
    batch["proto"] = proto
    batch["flags"] = SYN if proto == TCP else 0
    return batch


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
    table.process(batch, Direction.OUT)
    est = batch[np.random.default_rng(1).integers(0, N, 1_000_000)]
    est["flags"] = ACK
    result = benchmark(table.process, est, Direction.OUT)
    assert (result.status == 0).all()


def test_replies_inbound(benchmark):
    table = fresh_table()
    batch = syns(N)
    sent = table.process(batch, Direction.OUT).packets
    back = packets(N)
    back["src_ip"], back["dst_ip"] = sent["dst_ip"], sent["src_ip"]
    back["src_port"], back["dst_port"] = sent["dst_port"], sent["src_port"]
    back["proto"], back["flags"] = TCP, ACK
    result = benchmark(table.process, back, Direction.IN)
    assert (result.status == 0).all()
