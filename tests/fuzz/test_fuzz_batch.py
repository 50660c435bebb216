"""Fuzzing the batch APIs: random PACKET batches into the connection tables and the whole VPC.

Each case is a random batch (random fields; times at the edges: 0, the smallest doubles, 2e13,
1e15 and just past it, NaN, +-inf, decreasing runs, equal runs) with random settings within the
accepted ranges (millisecond timeouts included), sent to one of:

- ``ConnectionTable.process`` (a Hyperplane ENI or a NAT gateway; random ports, limits, address
  counts, directions, sometimes an ``on_full`` that adds addresses);
- ``ConnectionTracker.check`` (random ENI indexes and rule verdicts);
- ``Network.process`` on ``Network.example()`` (random origins and origin indexes, V2N timeouts
  from ``LambdaSettings``).

A case must return one verdict per row (checked for sense: codes that exist, translations onto
the table's own addresses and ports), or raise a TypeError/ValueError that names the argument
and, for a bad row, the row. Hangs and crashes fail (tests/fuzz/harness.py runs every case in a
child with a time limit). Cases are JSON (NaN and infinities spelt as Python's json does), so a
failing one can be kept in tests/fuzz/corpus/batch/ and is replayed by
``test_kept_batch_cases_still_pass``.
"""

from __future__ import annotations

import json
import math
import random
import re
from typing import Any

import numpy as np
import pytest

from harness import Unclear, corpus, run_cases

CASE_TIMEOUT = 10.0  # seconds per case: generous (the largest takes well under 1 s); a hang never ends

# Times at the edges of what a table accepts (up to 1e15 s; earlier ones are clamped to its clock)
EDGE_TIMES = [0.0, 5e-324, 2.2250738585072014e-308, 1e-300, 1e-9, 0.001, 1.0, 1.7e9, 2.0 ** 44, 2e13,
              2.0 ** 49, math.nextafter(1e15, 0.0), 1e15, -math.inf, -0.0, -1.0, -1e15, -1e300]
# ... and past them: a batch with one of these must be refused, naming the row
BAD_TIMES = [math.nextafter(1e15, math.inf), 1e16, 1e300, math.inf, math.nan]
# Timeouts within the accepted ranges (NAT: >= 1 ms, finite; conntrack: > 0, finite).
NAT_TIMEOUTS = [0.001, 0.001, 0.0015, 0.125, 0.5, 1.0, 30.0, 350.0, 1023.5, 1024.0, 5000.0, 1e6, 1e12]
TRACK_TIMEOUTS = [5e-324, 1e-9, 0.001, 0.5, 30.0, 180.0, 432_000.0, 1e12, 1e300]
PROTOS = [6, 6, 6, 17, 17, 17, 1, 1, 47, 0, 50, 255]
FLAGS = [0x02, 0x02, 0x12, 0x10, 0x18, 0x11, 0x01, 0x04, 0x14, 0, 8, 3, 0xFF]


#### cases ######################################################################################


def make_times(rng: random.Random, n: int) -> list[float]:
    mode = rng.choice(["edge", "edge", "equal", "decreasing", "increasing", "random", "mixed"])
    if mode == "edge":
        return [rng.choice(EDGE_TIMES) for _ in range(n)]
    if mode == "equal":
        return [rng.choice(EDGE_TIMES)] * n
    if mode == "decreasing":
        start = rng.choice([1e15, 2e13, 1000.0, 1.7e9])
        return [start - k * rng.choice([0.0, 1e-3, 0.5, 7.0]) for k in range(n)]
    if mode == "increasing":
        start = rng.choice([0.0, 1.7e9, 2e13, 1e15 - 100.0])
        step = rng.choice([0.0, 5e-324, 1e-3, 0.125, 1.0, 1024.0])
        return [start + k * step for k in range(n)]
    if mode == "random":
        return [rng.uniform(0.0, 1e15) for _ in range(n)]
    return [rng.choice(EDGE_TIMES) if rng.random() < 0.2 else rng.uniform(0, 2e3) for _ in range(n)]


def make_rows(rng: random.Random, n: int, addresses: list[int]) -> list[list[Any]]:
    hosts = [rng.getrandbits(32) for _ in range(3)] + addresses
    rows: list[list[Any]] = []
    for t in make_times(rng, n):
        small = rng.random() < 0.8  # few endpoints, so that rows meet each other's connections
        src = rng.choice(hosts) if small else rng.getrandbits(32)
        dst = rng.choice(hosts) if small else rng.getrandbits(32)
        sport = rng.choice([0, 1, 53, 1024, 40000, 65535]) if small else rng.getrandbits(16)
        dport = rng.choice([0, 53, 443, 5432, 6379, 65535]) if small else rng.getrandbits(16)
        rows.append([t, src, dst, sport, dport, rng.getrandbits(16), rng.choice(PROTOS),
                     rng.choice(FLAGS) if small else rng.getrandbits(8)])
    if rows and rng.random() < 0.1:
        rows[rng.randrange(n)][0] = rng.choice(BAD_TIMES)
    return rows


def spoil(rng: random.Random, values: list[int], bad: list[int]) -> list[int]:
    """Now and then one row gets a value that is not allowed."""
    if values and rng.random() < 0.1:
        values[rng.randrange(len(values))] = rng.choice(bad)
    return values


def make_case(i: int) -> bytes:
    rng = random.Random(i)
    target = ["nat", "conntrack", "network"][i % 3]
    n = rng.choice([0, 1, 1, 2, 3, 5, 8, 16, 17, 33, 64, 64, 200]) if rng.random() < 0.95 else rng.randint(500, 3000)
    case: dict[str, Any] = {"target": target}
    if target == "nat":
        gateway = rng.random() < 0.4
        lo = rng.choice([1, 1024, 1024, 60000, 65535])
        hi = min(65535, lo + rng.choice([0, 1, 3, 64, 65535]))
        nports = hi - lo + 1
        addresses = [0x0A000A00 + k for k in range(rng.choice([1, 1, 2, 8] if gateway else [0, 1, 1, 2, 3]))]
        case.update(
            gateway=gateway, ports=[lo, hi], addresses=addresses,
            per_address=rng.choice([None, 1, 2, 65000]),
            per_destination=rng.choice([None, 1, nports, max(1, nports // 2)]),
            timeouts=[rng.choice(NAT_TIMEOUTS) for _ in range(5)], seed=rng.getrandbits(64),
            grow=rng.random() < 0.3,
            # one direction for all, one per row, or now and then a value that is not a direction
            direction=(rng.randint(0, 1) if rng.random() < 0.3 else
                       spoil(rng, [rng.randint(0, 1) for _ in range(n)], [2, 255])))
        case["rows"] = make_rows(rng, n, addresses)
    elif target == "conntrack":
        case.update(
            config=[rng.choice(TRACK_TIMEOUTS) for _ in range(7)],
            eni=(rng.randint(-1, 3) if rng.random() < 0.3 else
                 spoil(rng, [rng.choice([-1, 0, 0, 1, 2, 2**31 - 1]) for _ in range(n)], [-2, -2**31])),
            rule=[rng.random() < 0.5 for _ in range(n)])
        case["rows"] = make_rows(rng, n, [])
    else:
        case.update(
            timeouts=[rng.choice(NAT_TIMEOUTS) for _ in range(5)],
            origin=spoil(rng, [rng.choice([0, 1, 2, 2, 3, 4]) for _ in range(n)], [5, -1, 127]),
            # which valid index each row takes (the check knows the network), and now and then one
            # row with an index the network does not have
            pick=[rng.getrandbits(16) for _ in range(n)],
            raw_index=([rng.randrange(n), rng.choice([-2, 9, 100, 2**31 - 1, -2**31])]
                       if n and rng.random() < 0.1 else None),
            environments=rng.random() < 0.7)
        case["rows"] = make_rows(rng, n, [])
    return json.dumps(case).encode()


#### checks #####################################################################################


def to_packets(rows: list[list[Any]]) -> np.ndarray:
    from hyperplane.records import PACKET
    batch = np.zeros(len(rows), dtype=PACKET)
    for k, r in enumerate(rows):
        batch[k] = tuple(r)
    return batch


def first_bad_time(rows: list[list[Any]]) -> int | None:
    for k, r in enumerate(rows):
        if not r[0] <= 1e15:  # NaN too
            return k
    return None


def refusal(exc: Exception, names: list[str], row: int | None = None) -> str:
    """A clear refusal names one of the arguments it is about and, for a bad row, the row."""
    text = str(exc)
    if not isinstance(exc, (TypeError, ValueError)):
        raise Unclear(f"{type(exc).__name__}: {text}")
    if not any(name in text for name in names):
        raise Unclear(f"{type(exc).__name__} names none of {names}: {text}")
    if row is not None and not re.search(rf"\[{row}\]|row {row}\b", text):
        raise Unclear(f"{type(exc).__name__} does not name row {row}: {text}")
    return "refused"


def check_nat(case: dict[str, Any]) -> str:
    from hyperplane.tables.nat import ConnectionTable, NatStatus, Timeouts
    rows = case["rows"]
    batch = to_packets(rows)
    spare = iter(range(0x0A000B00, 0x0A000B00 + 300))

    def on_full(table, now, status):
        if table.gateway and len(table.addresses) >= 8:
            return False
        table.add_address(next(spare), now + 1.0)
        return True

    table = ConnectionTable(
        gateway=case["gateway"], addresses=case["addresses"], ports=tuple(case["ports"]),
        max_connections_per_address=case["per_address"], max_connections_per_destination=case["per_destination"],
        timeouts=Timeouts(*case["timeouts"]), seed=case["seed"], on_full=on_full if case["grow"] else None)
    direction = case["direction"]
    bad_direction = isinstance(direction, list) and any(d not in (0, 1) for d in direction)
    bad_row = first_bad_time(rows)
    try:
        r = table.process(batch, np.asarray(direction, dtype=np.int64))
    except (TypeError, ValueError) as exc:
        if bad_row is None and not bad_direction:
            raise Unclear(f"a good batch was refused: {type(exc).__name__}: {exc}") from None
        return refusal(exc, ["direction", "time"], bad_row if "time" in str(exc) else None)
    if bad_row is not None or bad_direction:
        raise Unclear(f"a bad batch was taken (time row {bad_row}, bad direction {bad_direction})")
    if len(r.status) != len(rows) or len(r.packets) != len(rows):
        raise Unclear(f"{len(r.status)} verdicts for {len(rows)} rows")
    codes = {int(s) for s in NatStatus}
    dirs = np.broadcast_to(np.asarray(direction), (len(rows),))
    lo, hi = case["ports"]
    own = {int(a) for a in map(lambda s: int.from_bytes(bytes(map(int, s.split("."))), "big"), table.addresses)}
    for k, s in enumerate(r.status.tolist()):
        if s not in codes:
            raise Unclear(f"row {k}: status {s} is no NatStatus")
        if NatStatus(s) in (NatStatus.CREATED, NatStatus.TRANSLATED) and dirs[k] == 0 and rows[k][6] != 1:
            if int(r.packets["src_ip"][k]) not in own or not lo <= int(r.packets["src_port"][k]) <= hi:
                raise Unclear(f"row {k}: translated onto {r.packets[k]}, not a table address and port")
    table.expire(table.now)
    stats = table.stats()
    if sum(s.live for s in stats) != table.live or any(s.created != s.live + s.expired + s.closed for s in stats):
        raise Unclear(f"counters disagree: {stats} live={table.live}")
    return "accepted"


def check_conntrack(case: dict[str, Any]) -> str:
    from hyperplane.tables.conntrack import ConnectionTracker, ConnectionTrackingConfiguration
    rows = case["rows"]
    tracker = ConnectionTracker(ConnectionTrackingConfiguration(*case["config"]))
    eni = case["eni"]
    bad_eni = None
    if isinstance(eni, list):
        bad_eni = next((k for k, e in enumerate(eni) if e < -1), None)
        eni = np.asarray(eni, dtype=np.int32)
    bad_time = next((k for k, r in enumerate(rows) if r[0] > 1e15), None)  # a NaN takes the clock
    try:
        r = tracker.check(eni, to_packets(rows), np.asarray(case["rule"], dtype=bool))
    except (TypeError, ValueError) as exc:
        text = str(exc)
        row = bad_eni if text.startswith("eni[") else bad_time if "time" in text else None
        if row is None:
            raise Unclear(f"a good batch was refused: {type(exc).__name__}: {exc}") from None
        return refusal(exc, ["eni", "time"], row)
    if bad_eni is not None or bad_time is not None:
        raise Unclear(f"a bad batch was taken (eni row {bad_eni}, time row {bad_time})")
    if len(r.allowed) != len(rows) or len(r.tracked) != len(rows):
        raise Unclear(f"{len(r.allowed)} verdicts for {len(rows)} rows")
    if not set(r.allowed.tolist()) <= {0, 1} or not set(r.tracked.tolist()) <= {0, 1}:
        raise Unclear("verdicts other than 0/1")
    if np.any(r.tracked > r.allowed):
        raise Unclear("a tracked row was not allowed")
    tracker.expire(tracker.now)
    return "accepted"


def check_network(case: dict[str, Any]) -> str:
    import hyperplane as hp
    from hyperplane.functions import LambdaSettings
    from hyperplane.tables.nat import Timeouts
    rows = case["rows"]
    net = hp.Network.example(lambda_settings=LambdaSettings(timeouts=Timeouts(*case["timeouts"])))
    batch = to_packets(rows)
    if case["environments"] and len(rows):
        # sources that are execution environments, so that FUNCTION rows open real connections
        env = int(hp.records.ip(net.function("orders").environment_address(0)))
        batch["src_ip"][::2] = env
    # the valid origin_index values of each origin on this network
    pools = sorted({net.pool_index(name) for name in net.lambda_service.functions
                    if net.function(name).hyperplane_enis})
    valid = {0: list(range(len(net.compiled.eni_index))), 1: [-1], 2: pools,
             3: [-1], 4: list(range(len(net.lambda_service.functions)))}
    origin = case["origin"]
    index = [valid[o][p % len(valid[o])] if valid.get(o) else -1 for o, p in zip(origin, case["pick"])]
    bad_index = None
    if case["raw_index"] is not None:
        k, value = case["raw_index"]
        index[k] = value
        bad_index = k if origin[k] in valid and value not in valid[origin[k]] and origin[k] != 1 else None
    bad_time = first_bad_time(rows)
    bad_origin = next((k for k, o in enumerate(origin) if not 0 <= o <= 4), None)
    try:
        r = net.process(batch, np.asarray(origin, dtype=np.int64), np.asarray(index, dtype=np.int64))
    except (TypeError, ValueError) as exc:
        text = str(exc)
        if bad_time is None and bad_origin is None and bad_index is None:
            raise Unclear(f"a good batch was refused: {type(exc).__name__}: {text}") from None
        row = (bad_origin if text.startswith("origin[") else bad_index if text.startswith("origin_index[")
               else bad_time if "time" in text else None)
        if row is None:
            raise Unclear(f"refused for something else than the bad row: {text}")
        return refusal(exc, ["origin", "origin_index", "time"], row)
    if bad_time is not None or bad_origin is not None or bad_index is not None:
        raise Unclear(f"a bad batch was taken (time row {bad_time}, origin row {bad_origin}, "
                      f"origin_index row {bad_index})")
    if len(r.reason) != len(rows) or len(r.packets) != len(rows) or len(r.location) != len(rows):
        raise Unclear(f"{len(r.reason)} verdicts for {len(rows)} rows")
    codes = {int(x) for x in hp.Reason}
    bad = [k for k, x in enumerate(r.reason.tolist()) if x not in codes]
    if bad:
        raise Unclear(f"row {bad[0]}: reason {int(r.reason[bad[0]])} is no Reason")
    return "accepted"


CHECKS = {"nat": check_nat, "conntrack": check_conntrack, "network": check_network}


def check_case(data: bytes) -> str:
    case = json.loads(data)
    return CHECKS[case["target"]](case)


#### campaigns ##################################################################################


def test_random_batches_get_one_verdict_per_row_or_a_clear_refusal(fuzz_cases):
    campaign = run_cases("batch", make_case, check_case, fuzz_cases, timeout=CASE_TIMEOUT)
    print(campaign.line())
    campaign.assert_clean()


@pytest.mark.parametrize("path", corpus("batch"), ids=lambda p: p.name)
def test_kept_batch_cases_still_pass(path):
    data = path.read_bytes()
    campaign = run_cases(f"batch-{path.stem}", lambda i: data, check_case, 1, timeout=CASE_TIMEOUT)
    print(campaign.line())
    campaign.assert_clean()
