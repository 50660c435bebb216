"""A verdict-only walk (``Network.process(..., hops=False)``) decides every packet as the full
walk does: the same reasons, locations, translated packets and answers, and it leaves the
stateful tables (V2N and NAT gateway connections, tracked flows) as the full walk leaves them;
only the hop log is missing, and what needs it (traces, flow logs) says so (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import hyperplane as hp
from hyperplane.dataplane.walk import BatchResult, Origin
from hyperplane.errors import NoHopsError
from hyperplane.network import Network
from hyperplane._core._walk import HOP
from hyperplane.records import ACK, RST, SYN, TCP, ip, packets
from hyperplane.trace import row_hops

from test_dataplane import A1, PUBLIC_AND_PRIVATE, network
from test_dataplane_differential import FUNCTION, Environment, ToEnvironment, draw_case, records


def same_result(full: BatchResult, verdicts: BatchResult) -> None:
    assert verdicts.reason.tolist() == full.reason.tolist()
    assert verdicts.location.tolist() == full.location.tolist()
    assert verdicts.packets.tobytes() == full.packets.tobytes()
    assert sorted(verdicts.answers) == sorted(full.answers)
    for row, answer in full.answers.items():
        same_result(answer, verdicts.answers[row])


def tables(net: Network) -> tuple:
    """What the walks left in the stateful tables: every connection and tracked flow."""
    nat = [t.connections().tobytes() for t in [p.table for p in net._pools] + list(net._nat_tables)]
    return nat, net._conntrack.flows().tobytes()


def origins(net: Network, plan) -> tuple[np.ndarray, np.ndarray]:
    """The plan's origins on ``net`` (as the differential test's ``run`` gives them)."""
    index = net.compiled.eni_index
    out = []
    for o, _ in plan:
        if o is None:
            out.append((Origin.INTERNET, -1))
        elif isinstance(o, Environment):
            out.append((Origin.FUNCTION, net.pool_index(FUNCTION, o.k)))
        elif isinstance(o, ToEnvironment):
            out.append((Origin.REPLY_TO_FUNCTION, net.function_number(FUNCTION)))
        else:
            out.append((Origin.ENI, index[o]))
    return np.array([o for o, _ in out], np.int8), np.array([k for _, k in out], np.int32)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_verdict_only_walk_decides_every_random_batch_as_the_full_walk(data) -> None:
    """Random topologies and batches (those of the differential test: ENIs, the internet, a
    function's environments, peers answering it, a NAT gateway's RSTs), on two copies of the
    network: the batch walked with hops on one and without on the other, then walked again on
    the tables it left (tracked flows and connections now let more through), gives the same
    answer row for row, and leaves the same tables."""
    case = draw_case(data)
    twin = Network(case.topology, ready=True)
    for _ in range(2):
        full = case.net.process(records(case.plan), *origins(case.net, case.plan))
        fast = twin.process(records(case.plan), *origins(twin, case.plan), hops=False)
        same_result(full, fast)
        assert tables(twin) == tables(case.net)


def internet_connection(net: Network, hops: bool) -> BatchResult:
    """Instance eni-a1 of a private subnet opens a connection to a web server through the NAT
    gateway (SYN), then sends again (ACK) after 400 s of silence, both walked with or without
    hops; the second walk's result."""
    eni = net.compiled.eni_index["eni-a1"]
    rows = packets(1)
    rows["src_ip"], rows["dst_ip"], rows["src_port"], rows["dst_port"] = ip(A1), ip("8.8.4.4"), 46000, 443
    rows["proto"], rows["flags"], rows["length"], rows["time"] = TCP, SYN, 60, net.now
    assert net.process(rows, Origin.ENI, eni, hops=hops).reason[0] == hp.Reason.EXITED_TO_INTERNET
    rows["flags"] = ACK
    rows["time"] += 400.0
    return net.process(rows, Origin.ENI, eni, hops=hops)


def test_a_nat_gateways_rst_is_walked_verdict_only_as_in_the_full_walk():
    # "When a connection times out, a NAT gateway returns an RST packet to any resources behind
    # the NAT gateway that attempt to continue the connection (it does not send a FIN packet)."
    # (AWS, Compare NAT gateways and NAT instances)
    full = internet_connection(network(PUBLIC_AND_PRIVATE), hops=True)
    fast = internet_connection(network(PUBLIC_AND_PRIVATE), hops=False)
    assert hp.Reason(int(full.reason[0])) == hp.Reason.NAT_NO_CONNECTION_RST
    assert list(full.answers) == [0] and full.answers[0].packets["flags"][0] & RST
    same_result(full, fast)
    with pytest.raises(NoHopsError):
        fast.answers[0].facts.of(0)


def test_traces_and_flow_logs_of_a_verdict_only_batch_say_to_walk_with_hops():
    fast = internet_connection(network(PUBLIC_AND_PRIVATE), hops=False)
    for read in (lambda: fast.facts.of(0), lambda: fast.facts.hops, lambda: row_hops(fast, 0),
                 lambda: hp.FlowLogAggregator(interval=60).add(fast)):
        with pytest.raises(NoHopsError, match=r"verdict-only .*hops=True"):
            read()
    assert not fast.facts.recorded and internet_connection(network(PUBLIC_AND_PRIVATE), hops=True).facts.recorded


def test_the_walker_wants_first_hop_offsets_beside_a_hop_log():
    walker = hp.Network.example()._current_pipeline().walker
    n = 2
    out, origin, index = packets(n), np.full(n, Origin.INTERNET, np.int8), np.zeros(n, np.int32)
    reason, location = np.zeros(n, np.uint8), np.zeros(n, np.int32)
    with pytest.raises(TypeError, match="first_hop"):
        walker.walk(out, origin, index, reason, location, None, np.zeros(200, HOP), 0, 0)
    row, _, n_hops, _, _ = walker.walk(out, origin, index, reason, location, None, None, 0, 0)
    assert (row, n_hops) == (n, 0) and (reason != 0).all()
