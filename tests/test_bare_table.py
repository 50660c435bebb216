"""The bare 5-tuple table that benchmarks/nat_throughput.py measures the connection table against
(its ceiling): a lookup finds what was inserted, a miss misses, whatever the probing chains. A
ceiling that lost keys or matched wrong ones would be fast for the wrong reason."""

import subprocess
import sys

import numpy as np
import pytest

from hyperplane._core._bare_table import BareTable
from hyperplane.records import TCP, UDP, ip, packets


def tuples(n: int, seed: int = 1) -> np.ndarray:
    """``n`` distinct TCP 5-tuples: execution environments to a few services."""
    rng = np.random.default_rng(seed)
    rows = packets(n)
    rows["src_ip"] = ip("169.254.0.1") + np.arange(n) // 60_000
    rows["src_port"] = 1024 + np.arange(n) % 60_000
    rows["dst_ip"] = ip("10.0.20.1") + rng.integers(0, 100, n)
    rows["dst_port"] = 5000 + rng.integers(0, 10, n)
    rows["proto"] = TCP
    return rows


def test_every_inserted_connection_is_found_with_its_value_in_any_order():
    rows = tuples(100_003)  # not a multiple of the prefetch block
    values = (np.arange(len(rows)) * 7 % 65536).astype(np.uint16)
    table = BareTable(len(rows))
    assert table.insert(rows, values) == len(rows)
    assert len(table) == len(rows)
    order = np.random.default_rng(2).permutation(len(rows))
    assert (table.lookup(rows[order]) == values[order]).all()
    assert (table.lookup(rows[:5]) == values[:5]).all()  # a batch shorter than one block


def test_a_tuple_differing_in_any_one_field_misses():
    rows = tuples(1_000)
    table = BareTable(len(rows))
    table.insert(rows, np.ones(len(rows), np.uint16))
    for field, change in [("src_ip", 1 << 20), ("dst_ip", 1 << 20), ("src_port", 30_000), ("dst_port", 100)]:
        other = rows.copy()
        other[field] += change
        assert (table.lookup(other) == -1).all(), field
    udp = rows.copy()
    udp["proto"] = UDP
    assert (table.lookup(udp) == -1).all()
    # the reply direction is another key: the table is one-way, as the NAT's forward index
    back = rows.copy()
    back["src_ip"], back["dst_ip"] = rows["dst_ip"], rows["src_ip"]
    back["src_port"], back["dst_port"] = rows["dst_port"], rows["src_port"]
    assert (table.lookup(back) == -1).all()


def test_a_half_full_table_of_long_probe_chains_still_finds_and_misses_exactly():
    rows = tuples(8)
    table = BareTable(8)  # 16 slots: every key sits in a probing chain
    assert table.slots_allocated == 16 and table.memory_bytes == 16 * 16
    table.insert(rows, np.arange(8, dtype=np.uint16))
    assert table.lookup(rows).tolist() == list(range(8))
    assert table.lookup(rows[:0]).shape == (0,)
    strangers = tuples(2_000, seed=3)[1_000:]
    assert (table.lookup(strangers) == -1).all()


def test_inserting_a_key_again_replaces_its_value_and_adds_nothing():
    rows = tuples(100)
    table = BareTable(100)
    table.insert(rows, np.zeros(100, np.uint16))
    assert table.insert(rows[:10], np.full(10, 9, np.uint16)) == 0
    assert len(table) == 100
    assert table.lookup(rows[:12]).tolist() == [9] * 10 + [0, 0]


def test_the_table_refuses_to_fill_past_half_of_its_slots():
    table = BareTable(8)
    table.insert(tuples(8), np.zeros(8, np.uint16))
    with pytest.raises(ValueError, match="more than half of 16 slots"):
        table.insert(tuples(9, seed=4)[8:], np.zeros(1, np.uint16))
    with pytest.raises(ValueError, match="3 values for 2 rows"):
        table.insert(tuples(2), np.zeros(3, np.uint16))
    with pytest.raises(ValueError, match="capacity must be"):
        BareTable(0)


def test_the_stub_says_what_the_module_exports(tmp_path):
    pytest.importorskip("mypy.stubtest", reason="mypy is part of the test extras: pip install -e '.[test]'")
    config = tmp_path / "stubtest.ini"
    config.write_text("[mypy]\nignore_missing_imports = True\n[mypy-hyperplane.*]\nignore_errors = True\n"
                      "[mypy-hyperplane._core._bare_table]\nignore_errors = False\n")
    done = subprocess.run([sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", str(config),
                           "hyperplane._core._bare_table"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_lookup_into_a_given_array_finds_the_same_values():
    # the benchmark compares both tables writing into buffers they were handed (no fresh pages)
    rows = tuples(1000)
    values = (np.arange(1000) % 65536).astype(np.uint16)
    table = BareTable(1000)
    table.insert(rows, values)
    out = np.full(1000, 7, np.int32)
    assert table.lookup(rows, out) is out
    assert (out == values).all()
    with pytest.raises(ValueError, match="out must be an int32 array of 1000 values"):
        table.lookup(rows, np.zeros(999, np.int32))
