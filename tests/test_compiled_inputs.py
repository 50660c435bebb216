"""Bad and edge-case input for the compiled modules: a clear TypeError/ValueError or a valid
answer, never a crash of compiled code, a hang or a silently wrong result.

- the walker (``hyperplane/_walk.pyx``), through ``Network.process`` and ``Walker`` itself;
- flow log records (``hyperplane/_records.pyx``): ``RecordTable.add`` / ``observe``;
- text output (``hyperplane/_text.pyx``): ``lines(columns, order)``.

Inputs that could kill the interpreter (an unchecked index in compiled code) run in a child
process, so a crash is a failed test rather than a dead test run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hyperplane as hp
from hyperplane._core._records import RecordTable
from hyperplane._core._text import ADDRESS, CONSTANT, INTEGER, WORDS, lines
from hyperplane._core._codes import Stage
from hyperplane._core._walk import HOP, PACKET_HOPS
from hyperplane.dataplane.walk import Origin
from hyperplane.records import ip, packets

KNOWN_REASONS = {int(r) for r in hp.Reason}

# hop stages (hyperplane/_walk.pxd)
SG_EGRESS, ROUTE, NACL_OUT, NAT_OUT, NAT_IN, NACL_IN, SG_INGRESS = 4, 5, 6, 8, 9, 10, 11
NO_STAGE = int(max(Stage)) + 1  # a code no walker stage has


def run_child(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (a segfault or hang there fails the test, not the run)."""
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              check=False, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the child hung for 30 s")


# ---------------------------------------------------------------------------------------------
# The walker, through Network.process
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab():
    """The example network with one execution environment of ``orders`` invoked."""
    net = hp.Network.example()
    env = net.function("orders").environment_address(0)
    walker = net._current_pipeline().walker

    class Lab:
        pass

    lab = Lab()
    lab.net, lab.env, lab.walker = net, env, walker
    lab.pool = net.pool_index("orders", env)
    lab.fn = net.function_number("orders")
    lab.n_functions = len(net.lambda_service.functions)
    return lab


def tcp_rows(n: int, src: str = "10.0.1.5", dst: str = "8.8.8.8") -> np.ndarray:
    rows = packets(n)
    rows["time"] = np.arange(n) * 0.001
    rows["src_ip"], rows["dst_ip"] = ip(src), ip(dst)
    rows["src_port"], rows["dst_port"] = 40000, 443
    rows["proto"], rows["flags"], rows["length"] = 6, 0x02, 60
    return rows


def assert_valid_verdicts(result, n: int, n_enis: int) -> None:
    assert len(result.reason) == n and len(result.packets) == n
    bad = [int(r) for r in result.reason if r == 0 or int(r) not in KNOWN_REASONS]
    assert not bad, f"rows without a known Reason: {bad[:10]}"
    assert ((result.location >= -1) & (result.location < n_enis)).all()


@pytest.mark.parametrize("origin", [5, -1, 127, -128])
def test_walk_refuses_an_origin_outside_the_enumeration_naming_the_row(lab, origin):
    origins = np.array([Origin.INTERNET] * 3 + [origin] + [Origin.INTERNET], np.int8)
    with pytest.raises(ValueError, match=rf"origin\[3\] = {origin} is not an Origin"):
        lab.net.process(tcp_rows(5), origins, -1)


def test_walk_refuses_an_origin_for_a_whole_batch_naming_its_first_row(lab):
    with pytest.raises(ValueError, match=r"origin\[0\] = 5 "):
        lab.net.process(tcp_rows(4), 5)


@pytest.mark.parametrize("origin, index, what", [
    (Origin.ENI, "n_enis", "an ENI index"),
    (Origin.ENI, -1, "an ENI index"),
    (Origin.FUNCTION, "n_pools", "a pool index"),
    (Origin.FUNCTION, -1, "a pool index"),
    (Origin.REPLY_TO_FUNCTION, "n_functions", "a function number"),
    (Origin.REPLY_TO_FUNCTION, -1, "a function number"),
    (Origin.GATEWAY_ENDPOINT, "n_endpoints", "an endpoint index"),
    (Origin.GATEWAY_ENDPOINT, -2, "an endpoint index"),
    (Origin.ENI, 2**31 - 1, "an ENI index"),
    (Origin.FUNCTION, -2**31, "a pool index"),
])
def test_walk_refuses_an_origin_index_out_of_range_for_its_origin_naming_the_row(lab, origin, index, what):
    if isinstance(index, str):
        index = lab.n_functions if index == "n_functions" else getattr(lab.walker, index)
    origins = [Origin.INTERNET, origin]
    with pytest.raises(ValueError, match=rf"origin_index\[1\] = {index} is not {what}"):
        lab.net.process(tcp_rows(2), origins, [-1, index])


def test_the_last_valid_index_of_every_origin_is_accepted(lab):
    w = lab.walker
    origins = [Origin.ENI, Origin.FUNCTION, Origin.REPLY_TO_FUNCTION, Origin.GATEWAY_ENDPOINT,
               Origin.GATEWAY_ENDPOINT, Origin.INTERNET]
    index = [w.n_enis - 1, w.n_pools - 1, lab.n_functions - 1, w.n_endpoints - 1, -1, 123456]
    res = lab.net.process(tcp_rows(6), origins, index)
    assert_valid_verdicts(res, 6, w.n_enis)


def test_a_gateway_endpoint_row_may_name_no_endpoint_and_internet_rows_ignore_their_index(lab):
    rows = tcp_rows(2, src="52.216.0.1", dst="10.0.10.5")
    res = lab.net.process(rows, [Origin.GATEWAY_ENDPOINT, Origin.INTERNET], [-1, -77])
    assert_valid_verdicts(res, 2, lab.walker.n_enis)


@pytest.mark.parametrize("batch", [
    tcp_rows(4).reshape(2, 2),
    list(tcp_rows(2)),
    np.zeros(3, np.float64),
    np.zeros(3, np.dtype([("time", "<f8"), ("src_ip", "<u4")])),
    tcp_rows(2).tobytes(),
    None,
], ids=["2-D", "list", "float64", "other-record", "bytes", "None"])
def test_walk_refuses_packets_that_are_not_a_one_dimensional_packet_array(lab, batch):
    with pytest.raises(TypeError, match="PACKET"):
        lab.net.process(batch, Origin.INTERNET)


def test_walk_refuses_a_two_dimensional_origin(lab):
    with pytest.raises(ValueError):
        lab.net.process(tcp_rows(3), np.ones((3, 1), np.int8))
    with pytest.raises(ValueError):
        lab.net.process(tcp_rows(3), Origin.INTERNET, np.zeros((3, 1), np.int32))


@pytest.mark.parametrize("origin, index", [([1, 1], -1), (Origin.INTERNET, [-1, -1])])
def test_walk_refuses_an_origin_of_another_length_than_the_batch_naming_it(lab, origin, index):
    with pytest.raises(ValueError, match=r"\borigin(_index)?\b.*\b[23]\b"):
        lab.net.process(tcp_rows(3), origin, index)


def test_a_non_numeric_origin_is_refused(lab):
    with pytest.raises((TypeError, ValueError)):
        lab.net.process(tcp_rows(2), "ENI", 0)


@pytest.mark.parametrize("origin", list(Origin) + [5, -1])
def test_an_empty_batch_gives_no_verdicts_whatever_its_origin(lab, origin):
    res = lab.net.process(packets(0), origin, 10**6)
    assert len(res.reason) == len(res.packets) == len(res.location) == 0


def test_a_strided_batch_is_walked_like_a_contiguous_one(lab):
    rows = tcp_rows(6, src="198.51.100.7", dst="203.0.113.20")
    strided = lab.net.process(rows[::2], Origin.INTERNET).reason.tolist()
    contiguous = lab.net.process(np.ascontiguousarray(rows[::2]), Origin.INTERNET).reason.tolist()
    assert strided == contiguous


@pytest.mark.parametrize("origin", [np.array([260, 260], np.int64), np.array([-255, -255], np.int64), 300],
                         ids=["int64-260", "int64-minus255", "python-300"])
def test_walk_refuses_an_origin_that_does_not_fit_the_enumeration_instead_of_wrapping_it(lab, origin):
    with pytest.raises(ValueError, match=r"origin\[0\]"):
        lab.net.process(tcp_rows(2), origin, 0)


@pytest.mark.parametrize("index", [np.array([2**32, 2**32], np.int64), 2**32], ids=["int64-array", "python-int"])
def test_walk_refuses_an_origin_index_that_does_not_fit_int32_instead_of_wrapping_it(lab, index):
    with pytest.raises(ValueError, match=r"origin_index\[0\]"):
        lab.net.process(tcp_rows(2), Origin.ENI, index)


@pytest.mark.parametrize("origin, index", [(Origin.ENI, 1.7), (0.5, 1), (Origin.ENI, np.array([1.7, 1.7]))])
def test_walk_refuses_fractional_origins_and_indexes(lab, origin, index):
    with pytest.raises(TypeError):
        lab.net.process(tcp_rows(2), origin, index)


@pytest.mark.parametrize("when", [np.nan, np.inf, 2e15], ids=["nan", "inf", "past-MAX_TIME"])
def test_walk_refuses_a_packet_time_that_is_not_a_number_of_seconds_naming_the_row(when):
    net = hp.Network.example()
    env = net.function("orders").environment_address(0)
    pool = net.pool_index("orders", env)
    rows = tcp_rows(2, src=env, dst="10.0.21.10")
    rows["dst_port"] = 6379
    rows["time"][1] = when
    with pytest.raises(ValueError, match=r"\[1\]"):
        net.process(rows, Origin.FUNCTION, pool)


def test_a_connection_opened_at_a_negative_time_is_answered_like_any_other():
    net = hp.Network.example()
    env = net.function("orders").environment_address(0)
    pool, fn = net.pool_index("orders", env), net.function_number("orders")
    rows = packets(2)
    rows[0] = (-5.0, ip(env), ip("10.0.21.10"), 41000, 6379, 60, 6, 0x02)
    rows[1] = (-4.9, ip("10.0.21.10"), ip(env), 6379, 41000, 60, 6, 0x12)
    res = net.process(rows, [Origin.FUNCTION, Origin.REPLY_TO_FUNCTION], [pool, fn])
    assert [hp.Reason(r).name for r in res.reason] == ["DELIVERED", "DELIVERED_TO_FUNCTION"]


ADDRESSES = ["10.0.0.10", "10.0.1.5", "10.0.10.5", "10.0.20.10", "10.0.21.10", "10.0.11.255", "203.0.113.10",
             "203.0.113.20", "8.8.8.8", "52.216.0.1", "93.184.216.34", "0.0.0.0", "255.255.255.255", "10.0.0.2"]


@st.composite
def odd_batches(draw, lab):
    """Rows with odd headers from every origin, with a valid index for each."""
    n = draw(st.integers(1, 40))
    addresses = [ip(a) for a in ADDRESSES] + [ip(lab.env)]
    address = st.one_of(st.sampled_from(addresses), st.integers(0, 2**32 - 1))
    port = st.one_of(st.sampled_from([0, 1, 53, 443, 5432, 6379, 1024, 65535]), st.integers(0, 65535))
    rows = packets(n)
    origin = np.zeros(n, np.int8)
    index = np.full(n, -1, np.int32)
    w = lab.walker
    for k in range(n):
        rows[k] = (draw(st.one_of(st.sampled_from([0.0, -1.0, 1e9, 1e15, -1e300]), st.floats(-1e6, 1e6))),
                   draw(address), draw(address), draw(port), draw(port),
                   draw(st.sampled_from([0, 20, 60, 1500, 65535])),
                   draw(st.sampled_from([0, 1, 6, 17, 47, 58, 255])), draw(st.integers(0, 255)))
        o = draw(st.sampled_from(list(Origin)))
        origin[k] = o
        index[k] = {Origin.ENI: draw(st.integers(0, w.n_enis - 1)), Origin.INTERNET: draw(st.integers(-5, 5)),
                    Origin.FUNCTION: draw(st.integers(0, w.n_pools - 1)),
                    Origin.GATEWAY_ENDPOINT: draw(st.integers(-1, w.n_endpoints - 1)),
                    Origin.REPLY_TO_FUNCTION: draw(st.integers(0, lab.n_functions - 1))}[o]
    return rows, origin, index


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_rows_of_every_origin_with_odd_headers_get_a_known_verdict(lab, data):
    rows, origin, index = data.draw(odd_batches(lab))
    res = lab.net.process(rows, origin, index)
    assert_valid_verdicts(res, len(rows), lab.net._current_pipeline().walker.n_enis)


@pytest.mark.parametrize("proto, flags, sport, dport", [
    (0, 0, 0, 0), (255, 255, 65535, 65535), (1, 8, 7, 0), (1, 0, 0, 7), (1, 3, 0, 4), (1, 255, 65535, 65535),
    (6, 0xFF, 0, 65535), (17, 0, 65535, 0), (17, 0, 53, 53), (6, 0x02, 53, 53),
])
def test_odd_protocols_ports_and_icmp_types_from_every_origin_get_a_known_verdict(lab, proto, flags, sport, dport):
    w = lab.walker
    origins = [Origin.ENI] * w.n_enis + [Origin.INTERNET, Origin.FUNCTION, Origin.GATEWAY_ENDPOINT,
                                         Origin.REPLY_TO_FUNCTION]
    index = list(range(w.n_enis)) + [-1, lab.pool, -1, lab.fn]
    for dst in ("10.0.0.2", "10.0.21.10", "203.0.113.20", "8.8.8.8", "52.216.0.1", lab.env):
        rows = packets(len(origins))
        rows[:] = (1.0, ip(lab.env), ip(dst), sport, dport, 28, proto, flags)
        assert_valid_verdicts(lab.net.process(rows, origins, index), len(rows), w.n_enis)


def test_a_very_large_batch_of_each_origin_gets_a_verdict_per_row_and_answers_find_their_connections():
    """100k connections from one execution environment (more than one Hyperplane ENI holds, more
    than the NAT gateway has ports for one destination), their answers, and the same rows from
    every other origin."""
    net = hp.Network.example()
    env = net.function("orders").environment_address(0)
    pool, fn = net.pool_index("orders", env), net.function_number("orders")
    n = 100_000
    rows = tcp_rows(n, src=env, dst="93.184.216.34")
    rows["time"] = np.arange(n) * 1e-5
    rows["src_port"] = 1024 + np.arange(n) % 60000
    rows["dst_port"] = 443 + np.arange(n) // 60000
    before = len(net.hyperplane_enis)
    out = net.process(rows, Origin.FUNCTION, pool)
    assert len(net.hyperplane_enis) > before  # the pool filled mid-batch: the walk stopped, grew it, resumed
    n_enis = net._current_pipeline().walker.n_enis
    assert_valid_verdicts(out, n, n_enis)
    assert set(out.reason.tolist()) <= {hp.Reason.EXITED_TO_INTERNET, hp.Reason.NAT_PORT_ALLOCATION_ERROR}
    answers = rows.copy()
    answers["src_ip"], answers["dst_ip"] = rows["dst_ip"], rows["src_ip"]
    answers["src_port"], answers["dst_port"] = rows["dst_port"], rows["src_port"]
    answers["flags"] = 0x12
    back = net.process(answers, Origin.REPLY_TO_FUNCTION, fn)
    assert_valid_verdicts(back, n, n_enis)
    left = out.reason == hp.Reason.EXITED_TO_INTERNET
    assert (back.reason[left] == hp.Reason.DELIVERED_TO_FUNCTION).all()
    assert (back.reason[~left] == hp.Reason.NAT_UNSOLICITED_INBOUND).all()
    for origin, index in [(Origin.INTERNET, -1), (Origin.ENI, n_enis - 1), (Origin.GATEWAY_ENDPOINT, -1)]:
        assert_valid_verdicts(net.process(answers, origin, index), n, n_enis)


# ---------------------------------------------------------------------------------------------
# The walker itself (Walker: check_origins, set_function_pools, walk)
# ---------------------------------------------------------------------------------------------


def test_check_origins_names_the_first_bad_row(lab):
    w = lab.walker
    origin = np.array([Origin.INTERNET, Origin.ENI, Origin.ENI, 9], np.int8)
    index = np.array([-1, 0, w.n_enis, 0], np.int32)
    with pytest.raises(ValueError, match=r"origin_index\[2\] = .* is not an ENI index"):
        w.check_origins(origin, index)
    assert w.check_origins(np.zeros(0, np.int8), np.zeros(0, np.int32)) is None


@pytest.mark.parametrize("origin, index, error", [
    (np.zeros(2, np.int64), np.zeros(2, np.int32), ValueError),
    (np.zeros(2, np.int8), np.zeros(2, np.int64), ValueError),
    ([0, 0], [0, 0], TypeError),
    (None, np.zeros(2, np.int32), TypeError),
    (np.zeros(4, np.int8)[::2], np.zeros(2, np.int32), ValueError),
])
def test_check_origins_refuses_arrays_of_the_wrong_type(lab, origin, index, error):
    with pytest.raises(error):
        lab.walker.check_origins(origin, index)


def test_check_origins_refuses_an_index_shorter_than_the_origins(lab):
    storage = np.zeros(8, np.int32)  # what lies past the short index: valid ENI 0s
    with pytest.raises(ValueError):
        lab.walker.check_origins(np.zeros(3, np.int8), storage[:1])


def test_set_function_pools_refuses_pools_the_walker_does_not_have(lab):
    w = lab.walker
    try:
        for bad in ([[0], [w.n_pools]], [[-1]]):
            with pytest.raises(ValueError, match="pool index is outside"):
                w.set_function_pools(bad)
        for bad in (None, [1, 2]):
            with pytest.raises(TypeError):
                w.set_function_pools(bad)
        w.set_function_pools([[], []])
        assert w.n_functions == 2
    finally:
        w.set_function_pools([])


def walk_args(walker_n: int, **changes):
    n = walker_n
    args = {"out": packets(n), "origin": np.full(n, Origin.INTERNET, np.int8), "index": np.zeros(n, np.int32),
            "reason": np.zeros(n, np.uint8), "location": np.zeros(n, np.int32), "first_hop": np.zeros(n, np.int64),
            "hops": np.zeros(200, HOP), "n_hops": 0, "begin": 0}
    args.update(changes)
    return list(args.values())


@pytest.mark.parametrize("change", [
    {"reason": np.zeros(1, np.uint8)}, {"first_hop": np.zeros(3, np.int64)}, {"begin": 3}, {"begin": -1},
    {"n_hops": 201}, {"n_hops": -1},
])
def test_walk_refuses_arrays_of_other_lengths_and_positions_outside_the_batch(lab, change):
    with pytest.raises(ValueError):
        lab.walker.walk(*walk_args(2, **change))


def test_walk_with_no_room_in_the_hop_log_stops_at_the_first_row_for_the_caller_to_grow_it(lab):
    row, stop, n_hops, _, _ = lab.walker.walk(*walk_args(2, hops=np.zeros(0, HOP)))
    assert (row, n_hops) == (0, 0) and stop == 2  # STOPS["log_full"]


@pytest.mark.parametrize("hops", [np.zeros(200 * HOP.itemsize, np.uint8), []], ids=["uint8", "list"])
def test_walk_refuses_a_hop_log_that_is_not_a_hop_array_naming_it(lab, hops):
    with pytest.raises((TypeError, ValueError), match="HOP|dtype"):
        lab.walker.walk(*walk_args(2, hops=hops))


@pytest.mark.parametrize("origin, index", [(2, 1_000_000), (0, 100_000_000), (3, 100_000_000), (9, 0)])
def test_walk_refuses_unchecked_origins_instead_of_crashing(origin, index):
    child = run_child(f"""
        import numpy as np, hyperplane as hp
        from hyperplane._core._walk import HOP
        from hyperplane.records import packets
        w = hp.Network.example()._current_pipeline().walker
        try:
            w.walk(packets(1), np.array([{origin}], np.int8), np.array([{index}], np.int32), np.zeros(1, np.uint8),
                   np.zeros(1, np.int32), np.zeros(1, np.int64), np.zeros(1000, HOP), 0, 0)
        except ValueError as e:
            print("refused:", e)
    """)
    assert child.returncode == 0, f"the child died with {child.returncode}: {child.stderr[-500:]}"
    assert "refused:" in child.stdout


# ---------------------------------------------------------------------------------------------
# Flow log records (RecordTable)
# ---------------------------------------------------------------------------------------------


def add_args(n: int, **changes):
    args = {"a": np.arange(n, dtype=np.uint64), "b": np.zeros(n, np.uint64), "c": np.zeros(n, np.uint64),
            "packets": None, "nbytes": np.ones(n, np.int64), "start": np.zeros(n), "end": np.zeros(n),
            "flags": np.zeros(n, np.uint8)}
    args.update(changes)
    return list(args.values())


@pytest.mark.parametrize("change, error", [
    ({"b": np.zeros(2, np.uint64)}, ValueError),
    ({"flags": np.zeros(4, np.uint8)}, ValueError),
    ({"end": np.zeros(0)}, ValueError),
    ({"packets": np.ones(2, np.int64)}, ValueError),
    ({"packets": np.ones(3, np.int32)}, ValueError),
    ({"packets": [1, 1, 1]}, TypeError),
    ({"a": np.arange(3, dtype=np.int64)}, ValueError),
    ({"start": np.zeros(3, np.float32)}, ValueError),
    ({"a": [0, 1, 2]}, TypeError),
    ({"a": None}, TypeError),
    ({"a": np.arange(6, dtype=np.uint64)[::2]}, ValueError),
    ({"a": np.zeros((3, 1), np.uint64)}, ValueError),
])
def test_add_refuses_columns_of_other_lengths_or_types_and_keeps_the_table(change, error):
    table = RecordTable()
    table.add(*add_args(3))
    with pytest.raises(error):
        table.add(*add_args(3, **change))
    assert len(table) == 3
    assert table.columns()["a"].tolist() == [0, 1, 2]


def test_an_empty_batch_adds_nothing():
    table = RecordTable()
    assert table.add(*add_args(0)) == 0
    assert table.add(*add_args(0, packets=np.zeros(0, np.int64))) == 0
    assert len(table) == 0 and all(len(v) == 0 for v in table.columns().values())


def test_keys_that_differ_in_one_word_stay_apart_and_equal_keys_merge():
    table = RecordTable()
    one = np.array([1], np.uint64)
    zero = np.array([0], np.uint64)
    for a, b, c in [(one, zero, zero), (zero, one, zero), (zero, zero, one), (one, zero, zero)]:
        table.add(a, b, c, np.array([2], np.int64), np.array([10], np.int64), np.array([5.0]), np.array([6.0]),
                  np.array([0x02], np.uint8))
    cols = table.columns()
    assert len(table) == 3
    assert cols["packets"].tolist() == [4, 2, 2] and cols["bytes"].tolist() == [20, 10, 10]


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.lists(st.integers(0, 40_000), min_size=1, max_size=12),
       with_counts=st.booleans())
def test_growing_past_many_capacity_doublings_keeps_every_record(seed, batch, with_counts):
    """100k distinct keys (some differing in one word only) and repeats, in random batch sizes:
    the table (1024 records at first) doubles seven times and must agree with a dict."""
    rng = np.random.default_rng(seed)
    distinct = 100_000
    keys = np.empty((distinct, 3), np.uint64)
    keys[:, 0] = rng.integers(0, 8, distinct, dtype=np.uint64)  # near keys: hash collisions are likely
    keys[:, 1] = rng.integers(0, 2**64 - 1, distinct, dtype=np.uint64, endpoint=True)
    keys[:, 2] = rng.integers(0, 4, distinct, dtype=np.uint64)
    keys = np.unique(keys, axis=0)
    rng.shuffle(keys)
    pick = np.concatenate([np.arange(len(keys)), rng.integers(0, len(keys), 30_000)])  # every key, then repeats
    n = len(pick)
    a, b, c = (np.ascontiguousarray(keys[pick, j]) for j in range(3))
    counts = rng.integers(1, 5, n, dtype=np.int64) if with_counts else None
    nbytes = rng.integers(0, 10_000, n, dtype=np.int64)
    start = rng.uniform(0, 1000, n)
    end = start + rng.uniform(0, 10, n)
    flags = rng.integers(0, 256, n, dtype=np.uint8)

    table = RecordTable()
    # the drawn batch sizes over and over (empty batches included); all empty: one batch
    sizes = iter(batch * (n // sum(batch) + 1)) if sum(batch) else iter([n])
    done = 0
    while done < n:
        k = min(n, done + next(sizes))
        table.add(a[done:k], b[done:k], c[done:k], None if counts is None else counts[done:k], nbytes[done:k],
                  start[done:k], end[done:k], flags[done:k])
        done = k

    expected: dict = {}
    for i in range(n):
        key = (int(a[i]), int(b[i]), int(c[i]))
        p = 1 if counts is None else int(counts[i])
        if key in expected:
            r = expected[key]
            r[0] += p
            r[1] += int(nbytes[i])
            r[2], r[3], r[4] = min(r[2], start[i]), max(r[3], end[i]), r[4] | int(flags[i])
        else:
            expected[key] = [p, int(nbytes[i]), start[i], end[i], int(flags[i])]
    cols = table.columns()
    assert len(table) == len(expected) == len(keys)
    got_keys = list(zip(cols["a"].tolist(), cols["b"].tolist(), cols["c"].tolist()))
    assert got_keys == list(expected)  # insertion order, every key once
    assert cols["packets"].tolist() == [v[0] for v in expected.values()]
    assert cols["bytes"].tolist() == [v[1] for v in expected.values()]
    assert cols["start"].tolist() == [v[2] for v in expected.values()]
    assert cols["end"].tolist() == [v[3] for v in expected.values()]
    assert cols["flags"].tolist() == [v[4] for v in expected.values()]


def observe_args(**changes):
    """Two packets, each seen leaving ENI 0 (SG egress) and arriving at ENI 1 (SG ingress)."""
    hops = np.zeros(4, HOP)
    hops["row"] = [0, 0, 1, 1]
    hops["stage"] = [SG_EGRESS, SG_INGRESS, SG_EGRESS, SG_INGRESS]
    hops["v"][:, 0] = [0, 1, 0, 1]
    hops["v"][:, 2] = 1  # allowed
    rows = tcp_rows(2, src="10.0.1.5", dst="10.0.1.6")
    args = {"hops": hops, "first_hop": np.array([0, 2, 4], np.int64), "packets": rows,
            "location": np.array([1, 1], np.int32), "nat_eni": np.array([1], np.int32),
            "path_of_target": np.zeros(256, np.uint8), "eni_number": np.array([5, 6], np.int64),
            "eni_hyperplane": np.array([0, 1], np.uint8), "interval": 60.0, "time_offset": 0.0}
    args.update(changes)
    return args


def test_observe_a_well_formed_hop_log_gives_one_record_per_eni_and_direction():
    table = RecordTable()
    assert table.observe(**observe_args()) == 4
    cols = table.columns()
    assert len(table) == 2
    # each packet is walked back from where it ended: its ingress first
    assert (cols["b"] >> np.uint64(48)).tolist() == [6, 5]  # ENI numbers
    assert ((cols["a"] >> np.uint64(56)) & np.uint64(1)).tolist() == [0, 1]  # ingress, egress
    assert cols["packets"].tolist() == [2, 2]


def hop_log(stages, rows=(0, 0, 1, 1), v=None):
    hops = np.zeros(len(stages), HOP)
    hops["row"], hops["stage"] = rows, stages
    hops["v"][:, 2] = 1
    for (k, j), value in (v or {}).items():
        hops["v"][k, j] = value
    return hops


@pytest.mark.parametrize("change, message", [
    ({"first_hop": np.array([0, 2], np.int64)}, "one batch"),
    ({"first_hop": np.array([0, 2, 5], np.int64)}, "does not fit the hop log"),
    ({"first_hop": np.array([1, 2, 4], np.int64)}, "does not fit the hop log"),
    ({"first_hop": np.array([0, 3, 2], np.int64)}, r"row 1 has no valid"),
    ({"first_hop": np.array([0, -1, 4], np.int64)}, r"row 0 has no valid"),
    ({"location": np.array([0, 2], np.int32)}, r"row 1 has no valid location"),
    ({"location": np.array([0], np.int32)}, "one batch"),
    ({"path_of_target": np.zeros(255, np.uint8)}, "one batch"),
    ({"eni_hyperplane": np.array([0], np.uint8)}, "one batch"),
    ({"eni_number": np.zeros(0, np.int64), "eni_hyperplane": np.zeros(0, np.uint8)}, "row 0 has no valid location"),
    ({"interval": 0.0}, "interval"),
    ({"interval": -60.0}, "interval"),
    ({"interval": float("nan")}, "interval"),
    ({"hops": hop_log([SG_EGRESS, SG_INGRESS, SG_EGRESS, NO_STAGE])}, "hop 3 is not a hop of this batch"),
    ({"hops": hop_log([SG_EGRESS, SG_INGRESS, SG_EGRESS, 255])}, "hop 3 is not a hop of this batch"),
    ({"hops": hop_log([SG_EGRESS] * 4, rows=(0, 0, 1, 2))}, "hop 3 is not a hop of this batch"),
    ({"hops": hop_log([SG_EGRESS] * 4, rows=(0, 0, 1, -1))}, "hop 3 is not a hop of this batch"),
    ({"hops": hop_log([SG_EGRESS, SG_INGRESS, SG_EGRESS, SG_INGRESS], v={(3, 0): 2})}, "hop 3 names ENI 2"),
    ({"hops": hop_log([SG_EGRESS, SG_INGRESS, SG_EGRESS, SG_INGRESS], v={(2, 0): -1})}, "hop 2 names ENI -1"),
    ({"hops": hop_log([SG_EGRESS, NAT_OUT, SG_EGRESS, SG_INGRESS], v={(1, 0): 1})}, "hop 1 names NAT gateway 1"),
    ({"hops": hop_log([SG_EGRESS, NAT_IN, SG_EGRESS, SG_INGRESS], v={(1, 0): -1})}, "hop 1 names NAT gateway -1"),
    ({"hops": hop_log([SG_EGRESS, NAT_IN, SG_EGRESS, SG_INGRESS]), "nat_eni": np.array([2], np.int32)},
     "hop 1 names NAT gateway 0"),
    ({"hops": hop_log([SG_EGRESS, NAT_IN, SG_EGRESS, SG_INGRESS]), "nat_eni": np.array([-1], np.int32)},
     "hop 1 names NAT gateway 0"),
    ({"hops": hop_log([SG_EGRESS, NAT_IN, SG_EGRESS, SG_INGRESS]), "nat_eni": np.zeros(0, np.int32)},
     "hop 1 names NAT gateway 0"),
    ({"hops": np.zeros(0, HOP), "first_hop": np.array([3], np.int64), "packets": packets(0),
      "location": np.zeros(0, np.int32)}, "does not fit the hop log"),
    ({"hops": np.zeros(4, HOP), "first_hop": np.array([3], np.int64), "packets": packets(0),
      "location": np.zeros(0, np.int32)}, "hop 0 is not a hop of this batch"),
])
def test_observe_refuses_a_hop_log_that_does_not_describe_the_batch(change, message):
    table = RecordTable()
    with pytest.raises(ValueError, match=message):
        table.observe(**observe_args(**change))
    assert len(table) == 0


@pytest.mark.parametrize("change, error", [
    ({"first_hop": np.array([0, 2, 4], np.int32)}, ValueError),
    ({"packets": np.zeros(2)}, ValueError),
    ({"location": np.array([1, 1], np.int64)}, ValueError),
    ({"eni_number": np.array([5, 6], np.int32)}, ValueError),
    ({"hops": np.zeros(8, HOP)[::2]}, ValueError),
    ({"first_hop": None}, TypeError),
    ({"interval": "60"}, TypeError),
    ({"hops": np.zeros(4, HOP).view(np.uint8)[:-3]}, TypeError),
])
def test_observe_refuses_arrays_of_the_wrong_type(change, error):
    with pytest.raises(error):
        RecordTable().observe(**observe_args(**change))


def test_observe_an_empty_batch_observes_nothing():
    table = RecordTable()
    assert table.observe(**observe_args(hops=np.zeros(0, HOP), first_hop=np.array([0], np.int64), packets=packets(0),
                                        location=np.zeros(0, np.int32))) == 0
    assert len(table) == 0


def test_a_route_hop_naming_any_target_kind_reads_inside_the_path_table():
    hops = hop_log([SG_EGRESS, ROUTE, NACL_OUT, SG_INGRESS], rows=(0, 0, 0, 0), v={(1, 4): -1})
    args = observe_args(hops=hops, first_hop=np.array([0, 4], np.int64), packets=tcp_rows(1),
                        location=np.array([1], np.int32))
    assert RecordTable().observe(**args) == 2


@pytest.mark.parametrize("hops", [[1, 2], None], ids=["list", "None"])
def test_observe_refuses_a_hop_log_that_is_not_an_array_with_a_type_error(hops):
    with pytest.raises(TypeError, match="hops"):
        RecordTable().observe(**observe_args(hops=hops))


@pytest.mark.parametrize("offset", [float("nan"), float("inf"), float("-inf")])
def test_observe_refuses_a_time_offset_that_is_not_finite(offset):
    with pytest.raises(ValueError, match="time_offset"):
        RecordTable().observe(**observe_args(time_offset=offset))


@pytest.mark.parametrize("numbers", [[1, 65537], [0, 2**16], [1, -1]])
def test_observe_refuses_eni_numbers_that_do_not_fit_the_record_key(numbers):
    hops = hop_log([SG_INGRESS, SG_INGRESS], rows=(0, 0), v={(0, 0): 0, (1, 0): 1})
    args = observe_args(hops=hops, first_hop=np.array([0, 2], np.int64), packets=tcp_rows(1),
                        location=np.array([-1], np.int32), eni_number=np.array(numbers, np.int64))
    with pytest.raises(ValueError, match="ENI"):
        RecordTable().observe(**args)


def test_observe_survives_one_packet_with_thousands_of_hops():
    n_hops = 2000
    child = run_child(f"""
        import numpy as np
        from hyperplane._core._records import RecordTable
        from hyperplane._core._walk import HOP
        from hyperplane.records import packets
        n = {n_hops}
        hops = np.zeros(n, HOP)
        hops["stage"] = {NAT_OUT}
        hops["v"][:, 2] = np.arange(n)  # each NAT hop names another source: another record
        rows = packets(1)
        rows["proto"] = 6
        table = RecordTable()
        try:
            seen = table.observe(hops, np.array([0, n], np.int64), rows, np.array([-1], np.int32),
                                 np.array([0], np.int32), np.zeros(256, np.uint8), np.array([7], np.int64),
                                 np.array([0], np.uint8), 60.0, 0.0)
            assert len(table) == len(np.unique(table.columns()["a"])) == seen, (len(table), seen)
            print("observed", seen)
        except ValueError as e:
            print("refused:", e)
    """)
    assert child.returncode == 0, f"the child died with {child.returncode}: {child.stderr[-500:]}"
    assert "observed" in child.stdout or "refused:" in child.stdout


# ---------------------------------------------------------------------------------------------
# Text output (_text.lines)
# ---------------------------------------------------------------------------------------------


def I64(*values):
    return np.array(values, np.int64)


def text_of(columns, order):
    text, offsets = lines(columns, order)
    assert offsets[0] == 0 and offsets[-1] == len(text) and len(offsets) == len(order) + 1
    return text


def test_every_column_kind_on_one_line():
    text = text_of([(INTEGER, I64(1, -2, 3)), (ADDRESS, np.array([0, 0xFFFFFFFF, 0x0A000001], np.uint32)),
                    (WORDS, np.array([0, -1, 1], np.int32), [b"ACCEPT", b"REJECT"]), (CONSTANT, b"OK")], [0, 1, 2])
    assert text == b"1 0.0.0.0 ACCEPT OK\n- 255.255.255.255 - OK\n3 10.0.0.1 REJECT OK\n"


def test_the_extreme_integers_print_in_full_and_every_negative_prints_a_dash():
    text = text_of([(INTEGER, I64(2**63 - 1, -2**63, -1, 0))], [0, 1, 2, 3])
    assert text == b"9223372036854775807\n-\n-\n0\n"


def test_rows_print_in_the_order_asked_even_repeated():
    assert text_of([(INTEGER, I64(10, 20, 30))], [2, 0, 2, 2]) == b"30\n10\n30\n30\n"


@pytest.mark.parametrize("columns", [
    [(INTEGER, I64(1, 2, 3))],
    [(INTEGER, I64()), (WORDS, np.zeros(0, np.int32), []), (ADDRESS, I64()), (CONSTANT, b"x")],
    [],
])
def test_an_empty_order_gives_no_text(columns):
    text, offsets = lines(columns, [])
    assert text == b"" and offsets.tolist() == [0]


def test_a_table_of_constants_only_or_of_no_columns_prints_one_line_per_order_entry():
    assert text_of([(CONSTANT, b"x"), (CONSTANT, b"")], [0, 5]) == b"x \nx \n"
    assert text_of([], [0, 7, 9]) == b"\n\n\n"


@pytest.mark.parametrize("columns, order, message", [
    ([(INTEGER, I64(1, 2, 3))], [3], "column 0 has 3 rows; order asks for row 3"),
    ([(INTEGER, I64(1, 2, 3)), (ADDRESS, I64(1))], [0, 2], "column 1 has 1 rows"),
    ([(INTEGER, I64())], [0], "column 0 has 0 rows"),
    ([(INTEGER, I64(1, 2, 3))], [-1], "column 0 has 3 rows"),
    ([(INTEGER, I64(1, 2, 3))], np.array([2**64 - 1], np.uint64), "column 0 has 3 rows"),
    ([(WORDS, np.array([0, 1], np.int32), [b"a"])], [0], "column 0: a code outside its word table"),
    ([(WORDS, np.array([-2], np.int32), [b"a"])], [0], "column 0: a code outside its word table"),
    ([(WORDS, np.array([0], np.int32), [])], [0], "column 0: a code outside its word table"),
    ([(CONSTANT, b"x"), (7, I64(1))], [0], "column 1: unknown kind 7"),
])
def test_lines_refuses_codes_and_rows_that_are_not_there(columns, order, message):
    with pytest.raises(ValueError, match=message):
        lines(columns, order)


@pytest.mark.parametrize("columns, order", [
    ([("int", I64(1))], [0]),
    ([(None, I64(1))], [0]),
    ([5], [0]),
    (((INTEGER, I64(1)),), [0]),
    ([(WORDS, np.array([0], np.int32), ["a"])], [0]),
    ([(CONSTANT, "text")], [0]),
])
def test_lines_refuses_columns_of_the_wrong_type(columns, order):
    with pytest.raises(TypeError):
        lines(columns, order)


@pytest.mark.parametrize("columns, order", [
    ([(INTEGER, np.zeros((2, 2), np.int64))], [0]),
    ([(INTEGER, I64(1, 2))], [[0], [1]]),
])
def test_lines_refuses_shapes_it_cannot_print(columns, order):
    with pytest.raises(ValueError):
        lines(columns, order)


@pytest.mark.parametrize("columns, order", [
    ([(INTEGER, I64(1, 2))], ["a"]),
    ([(INTEGER, I64(1, 2))], [np.nan]),
    ([(INTEGER, [1.0, np.nan])], [0]),
])
def test_lines_refuses_values_that_are_not_integers(columns, order):
    with pytest.raises(TypeError, match="integers"):
        lines(columns, order)


def test_a_code_of_minus_one_prints_a_dash_even_with_an_empty_word_table():
    assert text_of([(WORDS, np.array([-1, -1], np.int32), [])], [1, 0]) == b"-\n-\n"


@pytest.mark.parametrize("column", ["(WORDS, np.array([0], np.int32))", "(CONSTANT,)", "(INTEGER,)", "()"])
def test_lines_refuses_a_column_tuple_missing_its_values_instead_of_crashing(column):
    child = run_child(f"""
        import numpy as np
        from hyperplane._core._text import lines, INTEGER, WORDS, CONSTANT
        try:
            lines([{column}], [0])
        except (ValueError, TypeError) as e:
            print("refused:", e)
    """)
    assert child.returncode == 0, f"the child died with {child.returncode}: {child.stderr[-500:]}"
    # (what lies past the tuple may happen to be an object that bytes() refuses: the error must
    # be about the column, not about whatever was read)
    assert "refused: column 0" in child.stdout, child.stdout


def test_lines_refuses_a_code_that_wraps_into_the_word_table():
    with pytest.raises(ValueError, match="outside its word table"):
        lines([(WORDS, np.array([2**32], np.int64), [b"a", b"b"])], [0])


@pytest.mark.parametrize("column", [(WORDS, np.array([0], np.int32), [3]), (CONSTANT, 3)], ids=["word", "constant"])
def test_lines_refuses_words_that_are_numbers(column):
    with pytest.raises(TypeError):
        lines([column], [0])


@pytest.mark.parametrize("column", [(ADDRESS, I64(2**32)), (ADDRESS, I64(-1)),
                                    (INTEGER, np.array([2**63], np.uint64))], ids=["2**32", "-1", "uint64"])
def test_lines_refuses_values_outside_the_column_kind(column):
    with pytest.raises(ValueError, match="column 0"):
        lines([column], [0])


@pytest.mark.parametrize("order, error, message", [([-1, 2], ValueError, "-1"), ([1.7], TypeError, None)])
def test_lines_names_the_bad_order_entry(order, error, message):
    with pytest.raises(error, match=message):
        lines([(INTEGER, I64(1, 2, 3))], order)


def plain_lines(columns, order):
    """The Python formatter ``lines`` must agree with."""
    out = []
    for k in order:
        fields = []
        for column in columns:
            kind = column[0]
            if kind == INTEGER:
                v = int(column[1][k])
                fields.append(b"-" if v < 0 else str(v).encode())
            elif kind == ADDRESS:
                fields.append(hp.records.ip_str(int(column[1][k])).encode())
            elif kind == WORDS:
                code = int(column[1][k])
                fields.append(b"-" if code < 0 else column[2][code])
            else:
                fields.append(column[1])
        out.append(b" ".join(fields) + b"\n")
    return out


@st.composite
def tables(draw):
    n = draw(st.integers(0, 30))
    columns = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from([INTEGER, ADDRESS, WORDS, CONSTANT]))
        if kind == INTEGER:
            values = draw(st.lists(st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(-3, 3),
                                             st.sampled_from([9, 10, 99, 100, 10**18])), min_size=n, max_size=n))
            columns.append((INTEGER, np.array(values, np.int64)))
        elif kind == ADDRESS:
            values = draw(st.lists(st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 2**32 - 1])),
                                   min_size=n, max_size=n))
            columns.append((ADDRESS, np.array(values, np.uint32)))
        elif kind == WORDS:
            words = draw(st.lists(st.binary(max_size=12), max_size=5))
            codes = draw(st.lists(st.integers(-1, len(words) - 1), min_size=n, max_size=n))
            columns.append((WORDS, np.array(codes, np.int32), words))
        else:
            columns.append((CONSTANT, draw(st.binary(max_size=20))))
    order = draw(st.lists(st.integers(0, n - 1), max_size=40)) if n else []
    return columns, order


@settings(max_examples=300, deadline=None)
@given(tables())
def test_lines_agree_with_a_plain_python_formatter(table):
    columns, order = table
    text, offsets = lines(columns, order)
    want = plain_lines(columns, order)
    assert text == b"".join(want)
    assert offsets.tolist() == np.cumsum([0] + [len(line) for line in want]).tolist()


def test_a_hop_log_at_any_alignment_records_the_same_hops():
    """Hops are streamed to memory where the log is 16-byte aligned, stored plainly elsewhere."""
    rows = tcp_rows(4, src="198.51.100.7", dst="203.0.113.20")

    def walk(hops):  # on a network of its own: the walk changes tracking state
        walker = hp.Network.example()._current_pipeline().walker
        _, _, n_hops, _, _ = walker.walk(*walk_args(4, out=rows.copy(), hops=hops))
        return hops[:n_hops].tobytes()

    size = PACKET_HOPS + 64  # the walk needs room for one longest walk before each packet
    aligned = np.zeros(size, HOP)
    shifted = np.frombuffer(bytearray(size * HOP.itemsize + 8), HOP, count=size, offset=8)
    assert aligned.ctypes.data % 16 == 0 and shifted.ctypes.data % 16 == 8
    assert walk(aligned) == walk(shifted) != b""
