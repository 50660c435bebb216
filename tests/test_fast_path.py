"""The walker's fast path for the packets of flows it has walked before (``_walk.pyx``, "Flows
remembered"; switched by ``hyperplane.dataplane.walk.FAST_PATH``) changes nothing a user can see:
on random topologies and random sequences of batches (the same packets again, the answers of
their receivers, FIN and RST on their connections, idle gaps beyond every timeout, a rule
removed between two batches), every result is the same with and without it, hop log included,
and the stateful tables end the same (issue 14)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import hyperplane as hp
import hyperplane.dataplane.walk as walk
from hyperplane.dataplane.walk import BatchResult, Origin
from hyperplane.network import Network
from hyperplane.records import ACK, FIN, RST, SYN, TCP, ip, packets

from test_dataplane import A1, PUBLIC_AND_PRIVATE, network
from test_dataplane_differential import draw_case, records
from test_verdict_only import origins, tables


def process(net: Network, fast: bool, rows: np.ndarray, origin, index, **options) -> BatchResult:
    before = walk.FAST_PATH
    walk.FAST_PATH = fast
    try:
        return net.process(rows, origin, index, **options)
    finally:
        walk.FAST_PATH = before


def same_result(slow: BatchResult, fast: BatchResult) -> None:
    """Every verdict, translation, answer and hop of the two walks is the same."""
    assert fast.reason.tolist() == slow.reason.tolist()
    assert fast.location.tolist() == slow.location.tolist()
    assert fast.packets.tobytes() == slow.packets.tobytes()
    if slow.facts.recorded:
        assert fast.facts.first_hop.tolist() == slow.facts.first_hop.tolist()
        assert fast.facts.hops.tobytes() == slow.facts.hops.tobytes()
    assert sorted(fast.answers) == sorted(slow.answers)
    for row, answer in slow.answers.items():
        same_result(answer, fast.answers[row])


def replies(net: Network, result: BatchResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the receivers of the delivered rows send back: from the ENI that got each one, to
    its sender as delivered (addresses and ports swapped)."""
    rows = np.flatnonzero((result.reason == hp.Reason.DELIVERED) & (result.location >= 0))
    back = result.packets[rows].copy()
    back["src_ip"], back["dst_ip"] = result.packets["dst_ip"][rows], result.packets["src_ip"][rows]
    back["src_port"], back["dst_port"] = result.packets["dst_port"][rows], result.packets["src_port"][rows]
    back["flags"] = np.where(back["proto"] == TCP, SYN | ACK, back["flags"])
    return back, np.full(len(rows), Origin.ENI, np.int8), result.location[rows].astype(np.int32)


def without_a_rule(topology, which: int):
    """The topology with one security group rule or network ACL entry removed (``which``
    picks it), or as it is when it has none."""
    found = [(sg, side, k) for sg in topology.security_groups.values() for side in ("ingress", "egress")
             for k in range(len(getattr(sg, side)))]
    found += [(acl, "entries", k) for acl in topology.network_acls.values() for k in range(len(acl.entries))]
    if not found:
        return topology
    owner, side, k = found[which % len(found)]
    rules = getattr(owner, side)
    return topology.replace(dataclasses.replace(owner, **{side: rules[:k] + rules[k + 1:]}))


STEPS = ("again", "replies", "fin", "rst", "idle", "recompile", "verdict-only")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_path_walks_every_random_sequence_of_batches_as_the_full_walk(data) -> None:
    """Two copies of a random network (ENIs, the internet, a function's environments and the
    peers answering them, NAT gateways and their RSTs) walk the same sequence of batches, one
    with the fast path and one without: every batch gives the same result, hop by hop, and the
    tables (connections, tracked flows) end the same after each."""
    case = draw_case(data)
    slow_net, fast_net = case.net, Network(case.topology, ready=True)
    plan = records(case.plan)
    steps = data.draw(st.lists(st.sampled_from(STEPS), min_size=2, max_size=6), label="steps")
    now = 0.0
    last: BatchResult | None = None
    for step in ["first", *steps]:
        rows, origin, index = plan.copy(), *origins(slow_net, case.plan)
        hops = step != "verdict-only"
        if step == "replies" and last is not None:
            rows, origin, index = replies(slow_net, last)
        elif step in ("fin", "rst"):
            tcp = rows["proto"] == TCP
            rows["flags"][tcp] = (FIN | ACK) if step == "fin" else RST
        elif step == "idle":
            now += data.draw(st.sampled_from([30.0, 400.0, 7200.0, 500_000.0]), label="idle seconds")
        elif step == "recompile":
            which = data.draw(st.integers(0, 1000), label="rule removed")
            for net in (slow_net, fast_net):
                net.apply(without_a_rule(net.topology, which))
        elif step == "again" and data.draw(st.booleans(), label="acks"):
            tcp = rows["proto"] == TCP
            rows["flags"][tcp] = ACK
        rows["time"] = now
        slow = process(slow_net, False, rows, origin, index, hops=hops)
        fast = process(fast_net, True, rows, origin, index, hops=hops)
        same_result(slow, fast)
        assert tables(fast_net) == tables(slow_net)
        if hops:
            last = slow


def established(net: Network, fast: bool, repeat: int) -> list[BatchResult]:
    """Instance eni-a1 of a private subnet opens a connection to a web server through the NAT
    gateway (SYN, the server's SYN-ACK, ACK), then sends ACKs: each a batch of its own, the
    last after the NAT gateway's idle timeout."""
    eni = net.compiled.eni_index["eni-a1"]
    row = packets(1)
    row["src_ip"], row["dst_ip"], row["src_port"], row["dst_port"] = ip(A1), ip("8.8.4.4"), 46000, 443
    row["proto"], row["flags"], row["length"], row["time"] = TCP, SYN, 60, net.now
    out = [process(net, fast, row, Origin.ENI, eni)]
    answer = out[0].packets.copy()
    answer["src_ip"], answer["dst_ip"] = out[0].packets["dst_ip"], out[0].packets["src_ip"]
    answer["src_port"], answer["dst_port"] = out[0].packets["dst_port"], out[0].packets["src_port"]
    answer["flags"] = SYN | ACK
    out.append(process(net, fast, answer, Origin.INTERNET, -1))
    row["flags"] = ACK
    for k in range(repeat):
        row["time"] += 1.0
        out.append(process(net, fast, row, Origin.ENI, eni))
    row["time"] += 400.0
    out.append(process(net, fast, row, Origin.ENI, eni))
    return out


def test_an_established_connection_through_a_nat_gateway_is_walked_alike_until_it_times_out():
    # "If a connection that's using a NAT gateway is idle for 350 seconds or more, the
    # connection times out." (AWS, NAT gateway basics); "When a connection times out, a NAT
    # gateway returns an RST packet to any resources behind the NAT gateway that attempt to
    # continue the connection (it does not send a FIN packet)." (AWS, Compare NAT gateways and
    # NAT instances)
    slow = established(network(PUBLIC_AND_PRIVATE), False, 3)
    fast = established(network(PUBLIC_AND_PRIVATE), True, 3)
    assert [hp.Reason(int(r.reason[0])) for r in fast] == (
        [hp.Reason.EXITED_TO_INTERNET, hp.Reason.DELIVERED] + [hp.Reason.EXITED_TO_INTERNET] * 3
        + [hp.Reason.NAT_NO_CONNECTION_RST])
    for a, b in zip(slow, fast):
        same_result(a, b)
    assert fast[-1].answers[0].packets["flags"][0] & RST


def test_the_fast_path_remembers_flows_and_forgets_them_on_a_recompile():
    """The ACKs of an established connection are remembered by the walker (one flow), and a
    recompile (a new walker) starts with an empty memory; the switch off leaves it unused."""
    net = network(PUBLIC_AND_PRIVATE)
    established(net, True, 3)
    walker = net._current_pipeline().walker
    assert walker.flow_stores >= 1
    stored = walker.flow_stores
    established(net, False, 3)
    assert net._current_pipeline().walker.flow_stores == stored  # off: neither read nor written
    net.apply(without_a_rule(net.topology, 0))
    assert net._current_pipeline().walker.flow_stores == 0


@pytest.mark.parametrize("fast", [False, True])
def test_a_route_changed_under_a_remembered_flow_applies_to_its_next_packet(fast):
    """A function's connection to the internet: its ACKs are remembered; once the private
    subnets' default route is a blackhole, the next ACK of the same connection goes nowhere."""
    from scapy.layers.inet import IP, TCP as TCP_LAYER

    net = hp.Network.example()
    orders = net.function("orders")
    walk.FAST_PATH = fast
    try:
        out = orders.send(IP(dst="93.184.216.34") / TCP_LAYER(sport=42000, dport=443, flags="S"), environment=0)
        assert out.reply(TCP_LAYER(flags="SA")).reason == hp.Reason.DELIVERED_TO_FUNCTION
        acks = [orders.send(IP(dst="93.184.216.34") / TCP_LAYER(sport=42000, dport=443, flags="A"), environment=0)
                for _ in range(3)]
        assert [a.reason for a in acks] == [hp.Reason.EXITED_TO_INTERNET] * 3
        private = net.topology.route_tables["rtb-private"]
        routes = tuple(dataclasses.replace(r, state="blackhole") if str(r.destination) == "0.0.0.0/0" else r
                       for r in private.routes)
        net.apply(net.topology.replace(dataclasses.replace(private, routes=routes)))
        again = orders.send(IP(dst="93.184.216.34") / TCP_LAYER(sport=42000, dport=443, flags="A"), environment=0)
    finally:
        walk.FAST_PATH = True
    assert again.reason == hp.Reason.BLACKHOLE_ROUTE
