"""Scenarios for the connection tables of Hyperplane ENIs (V2N) and NAT gateways (issue 2).

Each test drives ``hyperplane.tables.nat.ConnectionTable`` with real packet sequences and checks what a
user can see: per-packet status, the translated fields, ``connections()`` and the counters. The
numbers come from SPEC §2 and §4: 65,000 connections per Hyperplane ENI address, ports
1024-65535 (64,512 of them), 55,000 per (NAT address, destination), idle timeouts 350/120/30/180 s.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hyperplane._core._nat import NatCore
from hyperplane.tables.nat import STATE_NAMES, ConnectionTable, Direction, NatResult, NatStatus, Timeouts
from hyperplane.records import (ACK, FIN, ICMP, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, PACKET, PSH, RST,
                                SYN, TCP, UDP, ip, ip_str, packet, packets)
from nat_reference import exact_deadline, reported_deadline

ENI = "10.0.1.200"
ENI_2 = "10.0.1.201"
NAT_IP = "10.0.0.10"
NAT_IP_2 = "10.0.0.11"
INSIDE = "10.0.1.5"
REMOTE = "93.184.216.34"
REMOTE_2 = "93.184.216.35"
GRE = 47
PORTS = 65535 - 1024 + 1  # Lambda's ephemeral range: 64,512 ports
TICK = 1e-3


def eni_table(**kw) -> ConnectionTable:
    return ConnectionTable.hyperplane_eni([ENI], **kw)


def gateway_table(**kw) -> ConnectionTable:
    return ConnectionTable.nat_gateway([NAT_IP], **kw)


class Flow:
    """One inside endpoint talking to one remote endpoint through a table.

    ``out``/``back`` send one packet from the inside / from the remote side, check that a
    translated packet has the right fields, and return its status.
    """

    def __init__(self, table: ConnectionTable, proto: int = TCP, sport: int = 40000,
                 remote: str = REMOTE, dport: int = 443, inside: str = INSIDE) -> None:
        self.table = table
        self.proto = proto
        self.inside, self.sport, self.remote, self.dport = inside, sport, remote, dport
        if proto == ICMP:  # the echo identifier rides in src_port outbound, dst_port inbound
            self.dport = 0
        self.x_ip: int | None = None
        self.x_port: int | None = None

    def out(self, flags: int = 0, t: float = 0.0) -> NatStatus:
        if self.proto == ICMP and flags == 0:
            flags = ICMP_ECHO_REQUEST
        r = self.table.process(packet(self.inside, self.remote, self.sport, self.dport, self.proto, flags, t),
                               Direction.OUT)
        status, row = NatStatus(r.status[0]), r.packets[0]
        if status.passed:
            assert (row["dst_ip"], row["dst_port"]) == (ip(self.remote), self.dport)
            assert ip_str(row["src_ip"]) in self.table.addresses
            self.x_ip, self.x_port = int(row["src_ip"]), int(row["src_port"])
        else:
            assert (row["src_ip"], row["src_port"]) == (ip(self.inside), self.sport)  # left as it was
        return status

    def back(self, flags: int = 0, t: float = 0.0) -> NatStatus:
        assert self.x_ip is not None, "no outbound packet was translated yet"
        rec = packet(self.remote, self.x_ip, self.dport, self.x_port, self.proto, flags, t)
        r = self.table.process(rec, Direction.IN)
        status, row = NatStatus(r.status[0]), r.packets[0]
        if status.passed:
            assert (row["dst_ip"], row["dst_port"]) == (ip(self.inside), self.sport)
            assert (row["src_ip"], row["src_port"]) == (ip(self.remote), self.dport)
        else:
            assert row == rec[0]
        return status

    @property
    def state(self) -> str | None:
        """The connection's state name, or None when the table holds no connection for the flow."""
        conns = self.table.connections()
        mine = conns[(conns["in_ip"] == ip(self.inside)) & (conns["in_port"] == self.sport)
                     & (conns["rem_ip"] == ip(self.remote)) & (conns["rem_port"] == self.dport)
                     & (conns["proto"] == self.proto)]
        assert len(mine) <= 1
        return STATE_NAMES[mine["state"][0]] if len(mine) else None


def opening_batch(n: int, destinations: list[str], proto: int = TCP, t: float = 0.0,
                  first: int = 0, dport: int = 443) -> np.ndarray:
    """n connection openings (SYN or first datagram) from distinct inside tuples, destinations in turn."""
    i = np.arange(first, first + n)
    batch = packets(n)
    batch["time"] = t
    batch["src_ip"] = ip("10.1.0.0") + i // 1000
    batch["src_port"] = 20000 + i % 1000
    batch["dst_ip"] = np.array([ip(d) for d in destinations], np.uint32)[i % len(destinations)]
    batch["dst_port"] = dport
    batch["proto"] = proto
    batch["flags"] = SYN if proto == TCP else 0
    return batch


def assert_translated_tuples_unique(table: ConnectionTable) -> None:
    conns = table.connections()
    translated = {(c["address"], c["x_port"], c["rem_ip"], c["rem_port"], c["proto"]) for c in conns}
    inside = {(c["in_ip"], c["in_port"], c["rem_ip"], c["rem_port"], c["proto"]) for c in conns}
    assert len(translated) == len(conns) == len(inside) == table.live


def stats_tuple(s) -> tuple[int, int, int, int, int, int]:
    return (s.live, s.peak, s.created, s.expired, s.closed, s.refused)


#### one way ####################################################################################


@pytest.mark.parametrize("make", [eni_table, gateway_table], ids=["eni", "gateway"])
@pytest.mark.parametrize("proto,flags", [(TCP, SYN), (TCP, ACK), (TCP, SYN | ACK), (UDP, 0)])
def test_connection_table_inbound_without_connection_is_unsolicited(make, proto, flags):
    table = make()
    address = table.addresses[0]
    r = table.process(packet(REMOTE, address, 443, 40000, proto, flags), Direction.IN)
    assert r.status.tolist() == [NatStatus.UNSOLICITED]
    assert r.packets[0]["dst_ip"] == ip(address)
    assert table.live == 0


def test_hyperplane_eni_inbound_syn_never_opens_a_connection():
    table = eni_table()
    for t, port in enumerate([40000, 40000, 1024, 65535]):
        r = table.process(packet(REMOTE, ENI, 443, port, TCP, SYN, float(t)), Direction.IN)
        assert r.status.tolist() == [NatStatus.UNSOLICITED]
    assert table.live == 0
    assert table.stats()[0].created == 0
    # ... and the SYN-ACK that would answer it goes nowhere either
    assert Flow(table).out(SYN | ACK, t=5.0) is NatStatus.NO_CONNECTION


@pytest.mark.parametrize("flags", [ACK, PSH | ACK, FIN | ACK, SYN | ACK, SYN | FIN, 0])
def test_hyperplane_eni_tcp_without_syn_is_no_connection(flags):
    table = eni_table()
    assert Flow(table).out(flags) is NatStatus.NO_CONNECTION
    assert table.live == 0


@pytest.mark.parametrize("flags", [ACK, PSH | ACK, FIN | ACK, SYN | ACK])
def test_nat_gateway_tcp_without_syn_is_rst_no_connection(flags):
    table = gateway_table()
    assert Flow(table).out(flags) is NatStatus.RST_NO_CONNECTION
    assert table.live == 0


def test_nat_gateway_tcp_of_expired_connection_gets_rst_status():
    table = gateway_table()
    flow = Flow(table)
    assert flow.out(SYN) is NatStatus.CREATED
    assert flow.back(SYN | ACK) is NatStatus.TRANSLATED
    assert flow.out(ACK, t=350.0) is NatStatus.RST_NO_CONNECTION


def test_hyperplane_eni_udp_opens_on_first_outbound_datagram():
    table = eni_table()
    flow = Flow(table, UDP, dport=53, remote="8.8.8.8")
    assert flow.out() is NatStatus.CREATED
    assert flow.x_ip == ip(ENI) and 1024 <= flow.x_port <= 65535
    assert flow.state == "udp"
    assert flow.out(t=1.0) is NatStatus.TRANSLATED
    assert flow.back(t=1.5) is NatStatus.TRANSLATED
    assert flow.state == "udp-replied"
    assert table.live == 1


def test_hyperplane_eni_keeps_the_translated_port_for_the_whole_connection():
    table = eni_table()
    flow = Flow(table)
    flow.out(SYN)
    first = flow.x_port
    for t, (direction, flags) in enumerate([("in", SYN | ACK), ("out", ACK), ("out", PSH | ACK),
                                            ("in", PSH | ACK)]):
        status = flow.out(flags, t) if direction == "out" else flow.back(flags, t)
        assert status is NatStatus.TRANSLATED
        assert flow.x_port == first


def test_nat_gateway_icmp_echo_translates_identifier_and_maps_reply_back():
    table = gateway_table()
    flow = Flow(table, ICMP, sport=0x1234, remote="1.1.1.1")
    assert flow.out(ICMP_ECHO_REQUEST) is NatStatus.CREATED
    assert flow.x_ip == ip(NAT_IP)
    assert flow.state == "icmp"
    # the reply carries the translated identifier in dst_port and comes back with the original one
    r = table.process(packet("1.1.1.1", NAT_IP, 0, flow.x_port, ICMP, ICMP_ECHO_REPLY, 1.0), Direction.IN)
    assert r.status.tolist() == [NatStatus.TRANSLATED]
    assert (r.packets[0]["dst_ip"], r.packets[0]["dst_port"]) == (ip(INSIDE), 0x1234)
    # an echo request from outside does not match, even on the translated identifier
    r = table.process(packet("1.1.1.1", NAT_IP, 0, flow.x_port, ICMP, ICMP_ECHO_REQUEST, 2.0), Direction.IN)
    assert r.status.tolist() == [NatStatus.UNSOLICITED]


def test_nat_gateway_icmp_other_than_echo_request_opens_nothing():
    table = gateway_table()
    flow = Flow(table, ICMP, sport=7, remote="1.1.1.1")
    assert flow.out(3) is NatStatus.NO_CONNECTION  # destination unreachable
    assert flow.out(11) is NatStatus.NO_CONNECTION  # time exceeded
    assert table.live == 0


@pytest.mark.parametrize("direction", [Direction.OUT, Direction.IN])
def test_hyperplane_eni_icmp_is_unsupported_protocol(direction):
    table = eni_table()
    rec = (packet(INSIDE, "1.1.1.1", 7, 0, ICMP, ICMP_ECHO_REQUEST) if direction is Direction.OUT
           else packet("1.1.1.1", ENI, 0, 7, ICMP, ICMP_ECHO_REPLY))
    r = table.process(rec, direction)
    assert r.status.tolist() == [NatStatus.UNSUPPORTED_PROTOCOL]
    assert r.packets[0] == rec[0]
    assert table.live == 0


@pytest.mark.parametrize("make", [eni_table, gateway_table], ids=["eni", "gateway"])
@pytest.mark.parametrize("direction", [Direction.OUT, Direction.IN])
def test_connection_table_gre_is_unsupported_protocol(make, direction):
    table = make()
    rec = (packet(INSIDE, REMOTE, 0, 0, GRE) if direction is Direction.OUT
           else packet(REMOTE, table.addresses[0], 0, 0, GRE))
    r = table.process(rec, direction)
    assert r.status.tolist() == [NatStatus.UNSUPPORTED_PROTOCOL]
    assert table.live == 0
    assert table.status_counts() == {NatStatus.UNSUPPORTED_PROTOCOL: 1}


#### the TCP state machine ######################################################################

# How to bring a fresh flow into each state, with real packets.
INTO_STATE = {
    "tcp-opening": [("out", SYN)],
    "tcp-established": [("out", SYN), ("in", SYN | ACK), ("out", ACK)],
    "tcp-fin-out": [("out", SYN), ("in", SYN | ACK), ("out", FIN | ACK)],
    "tcp-fin-in": [("out", SYN), ("in", SYN | ACK), ("in", FIN | ACK)],
    "tcp-closed": [("out", SYN), ("in", SYN | ACK), ("out", FIN | ACK), ("in", FIN | ACK)],
}

# Packets that make each event of TCP_NEXT (several where the direction or flags vary).
EVENT_PACKETS = {
    "other": [("out", ACK), ("in", ACK), ("out", PSH | ACK), ("in", SYN), ("out", SYN | ACK), ("in", 0)],
    "syn_out": [("out", SYN)],
    "synack_in": [("in", SYN | ACK)],
    "fin_out": [("out", FIN | ACK), ("out", FIN)],
    "fin_in": [("in", FIN | ACK), ("in", FIN)],
    "rst": [("out", RST), ("out", RST | ACK), ("in", RST), ("in", RST | ACK)],
}

# (state, event) -> next state; "kill" = translated then closed, "reopen" = a new connection.
TCP_NEXT = {
    ("tcp-opening", "other"): "tcp-opening",
    ("tcp-opening", "syn_out"): "tcp-opening",
    ("tcp-opening", "synack_in"): "tcp-established",
    ("tcp-opening", "fin_out"): "tcp-fin-out",
    ("tcp-opening", "fin_in"): "tcp-fin-in",
    ("tcp-opening", "rst"): "kill",
    ("tcp-established", "other"): "tcp-established",
    ("tcp-established", "syn_out"): "tcp-established",
    ("tcp-established", "synack_in"): "tcp-established",
    ("tcp-established", "fin_out"): "tcp-fin-out",
    ("tcp-established", "fin_in"): "tcp-fin-in",
    ("tcp-established", "rst"): "kill",
    ("tcp-fin-out", "other"): "tcp-fin-out",
    ("tcp-fin-out", "syn_out"): "tcp-fin-out",
    ("tcp-fin-out", "synack_in"): "tcp-fin-out",
    ("tcp-fin-out", "fin_out"): "tcp-fin-out",
    ("tcp-fin-out", "fin_in"): "tcp-closed",
    ("tcp-fin-out", "rst"): "kill",
    ("tcp-fin-in", "other"): "tcp-fin-in",
    ("tcp-fin-in", "syn_out"): "tcp-fin-in",
    ("tcp-fin-in", "synack_in"): "tcp-fin-in",
    ("tcp-fin-in", "fin_out"): "tcp-closed",
    ("tcp-fin-in", "fin_in"): "tcp-fin-in",
    ("tcp-fin-in", "rst"): "kill",
    ("tcp-closed", "other"): "tcp-closed",
    ("tcp-closed", "syn_out"): "reopen",
    ("tcp-closed", "synack_in"): "tcp-closed",
    ("tcp-closed", "fin_out"): "tcp-closed",
    ("tcp-closed", "fin_in"): "tcp-closed",
    ("tcp-closed", "rst"): "kill",
}
assert len(TCP_NEXT) == len(INTO_STATE) * len(EVENT_PACKETS)

TRANSITIONS = [(state, event, direction, flags)
               for (state, event) in TCP_NEXT
               for direction, flags in EVENT_PACKETS[event]]


def drive(flow: Flow, steps, t: float = 0.0) -> None:
    for direction, flags in steps:
        status = flow.out(flags, t) if direction == "out" else flow.back(flags, t)
        assert status in (NatStatus.CREATED, NatStatus.TRANSLATED), (direction, flags, status)


@pytest.mark.parametrize("make", [eni_table, gateway_table], ids=["eni", "gateway"])
@pytest.mark.parametrize("state,event,direction,flags", TRANSITIONS,
                         ids=[f"{s}-{e}-{d}-{f:#04x}" for s, e, d, f in TRANSITIONS])
def test_tcp_state_machine_follows_transition_table(make, state, event, direction, flags):
    table = make()
    flow = Flow(table)
    drive(flow, INTO_STATE[state])
    assert flow.state == state
    port_before = flow.x_port
    status = flow.out(flags, 1.0) if direction == "out" else flow.back(flags, 1.0)
    want = TCP_NEXT[(state, event)]
    s = table.stats()[0]
    if want == "kill":
        assert status is NatStatus.CLOSED  # translated (checked by Flow), then closed
        assert flow.state is None and table.live == 0
        assert (s.created, s.closed, s.expired) == (1, 1, 0)
    elif want == "reopen":
        assert status is NatStatus.CREATED
        assert flow.state == "tcp-opening"
        assert table.live == 1
        assert (s.created, s.closed, s.live) == (2, 1, 1)
    else:
        assert status is NatStatus.TRANSLATED
        assert flow.state == want
        assert flow.x_port == port_before
        assert (s.created, s.closed, s.live) == (1, 0, 1)


@pytest.mark.parametrize("make,refused_out", [(eni_table, NatStatus.NO_CONNECTION),
                                              (gateway_table, NatStatus.RST_NO_CONNECTION)],
                         ids=["eni", "gateway"])
@pytest.mark.parametrize("rst_from", ["out", "in"])
def test_tcp_rst_is_translated_then_closes_and_frees_the_port(make, refused_out, rst_from):
    # one port only: the port the RST frees is the one the next connection must get
    table = make(ports=(5000, 5000), max_connections_per_destination=1)
    flow = Flow(table)
    drive(flow, INTO_STATE["tcp-established"])
    status = flow.out(RST, 2.0) if rst_from == "out" else flow.back(RST | ACK, 2.0)
    assert status is NatStatus.CLOSED
    assert table.live == 0
    assert flow.out(ACK, 3.0) is refused_out
    assert flow.back(ACK, 3.0) is NatStatus.UNSOLICITED
    other = Flow(table, sport=40001)
    assert other.out(SYN, 4.0) is NatStatus.CREATED
    assert other.x_port == 5000


def test_tcp_fin_both_ways_closes_and_a_new_syn_opens_a_new_connection():
    table = eni_table()
    flow = Flow(table)
    drive(flow, INTO_STATE["tcp-established"])
    assert flow.out(FIN | ACK, 1.0) is NatStatus.TRANSLATED
    assert flow.back(FIN | ACK, 1.1) is NatStatus.TRANSLATED
    assert flow.state == "tcp-closed"
    assert flow.out(ACK, 1.2) is NatStatus.TRANSLATED  # the last ACK still passes
    assert flow.state == "tcp-closed"
    assert flow.out(SYN, 5.0) is NatStatus.CREATED
    assert flow.state == "tcp-opening"
    s = table.stats()[0]
    assert (s.live, s.created, s.closed) == (1, 2, 1)
    assert flow.back(SYN | ACK, 5.1) is NatStatus.TRANSLATED
    assert flow.state == "tcp-established"


#### idle timeouts ##############################################################################

# (table, how to reach the state, the state, its idle timeout, a packet that keeps the state)
TIMEOUT_CASES = [
    ("eni", TCP, INTO_STATE["tcp-opening"], "tcp-opening", 120.0, ("out", SYN)),
    ("eni", TCP, INTO_STATE["tcp-established"], "tcp-established", 350.0, ("out", ACK)),
    ("eni", TCP, INTO_STATE["tcp-fin-out"], "tcp-fin-out", 120.0, ("out", ACK)),
    ("eni", TCP, INTO_STATE["tcp-fin-in"], "tcp-fin-in", 120.0, ("in", ACK)),
    ("eni", TCP, INTO_STATE["tcp-closed"], "tcp-closed", 120.0, ("out", ACK)),
    ("eni", UDP, [("out", 0)], "udp", 30.0, ("out", 0)),
    ("eni", UDP, [("out", 0), ("in", 0)], "udp-replied", 180.0, ("out", 0)),
    ("gateway", TCP, INTO_STATE["tcp-opening"], "tcp-opening", 350.0, ("out", SYN)),
    ("gateway", TCP, INTO_STATE["tcp-established"], "tcp-established", 350.0, ("in", ACK)),
    ("gateway", TCP, INTO_STATE["tcp-closed"], "tcp-closed", 350.0, ("out", ACK)),
    ("gateway", UDP, [("out", 0)], "udp", 350.0, ("out", 0)),
    ("gateway", ICMP, [("out", ICMP_ECHO_REQUEST)], "icmp", 350.0, ("out", ICMP_ECHO_REQUEST)),
]


@pytest.mark.parametrize("kind,proto,steps,state,timeout,keep", TIMEOUT_CASES,
                         ids=[f"{c[0]}-{c[3]}" for c in TIMEOUT_CASES])
def test_connection_table_idle_timeout_per_state(kind, proto, steps, state, timeout, keep):
    table = eni_table() if kind == "eni" else gateway_table()
    flow = Flow(table, proto)
    drive(flow, steps, t=10.0)
    assert flow.state == state
    assert table.connections()["expires"][0] == 10.0 + timeout

    # one tick before the deadline the connection still translates (and its deadline moves on)
    t1 = 10.0 + timeout - TICK
    direction, flags = keep
    assert (flow.out(flags, t1) if direction == "out" else flow.back(flags, t1)) is NatStatus.TRANSLATED
    assert flow.state == state
    # live while now < t1 + timeout, exactly: the first double at or after that sum is dead
    deadline = reported_deadline(exact_deadline(t1, timeout))
    assert table.connections()["expires"][0] == deadline
    table.expire(deadline - TICK)
    assert table.live == 1

    # at the deadline it is gone: replies are unsolicited, its port is free
    assert flow.back(ACK if proto == TCP else 0, deadline) is NatStatus.UNSOLICITED
    assert flow.state is None
    assert table.live == 0
    assert stats_tuple(table.stats()[0]) == (0, 1, 1, 1, 0, 0)


def test_connection_table_deadline_moving_earlier_is_honoured():
    table = eni_table()
    flow = Flow(table)
    drive(flow, INTO_STATE["tcp-established"], t=0.0)  # deadline 350
    assert flow.out(FIN | ACK, 100.0) is NatStatus.TRANSLATED  # closing: deadline 220
    assert table.connections()["expires"].tolist() == [220.0]
    bystander = Flow(table, UDP, sport=5353, dport=53)
    assert bystander.out(t=219.0) is NatStatus.CREATED
    assert flow.state == "tcp-fin-out"
    # the clock passes 220 on other traffic only: the wheel must reap it at its new deadline
    assert bystander.out(t=222.5) is NatStatus.TRANSLATED
    assert table.live == 1 and flow.state is None
    assert flow.back(FIN | ACK, 223.0) is NatStatus.UNSOLICITED
    assert table.stats()[0].expired == 1


def test_connection_table_deadline_moving_earlier_within_current_second():
    table = eni_table(timeouts=Timeouts(tcp_established=350.0, tcp_transitory=0.25))
    flow = Flow(table)
    drive(flow, INTO_STATE["tcp-established"], t=0.0)
    assert flow.out(FIN | ACK, 7.5) is NatStatus.TRANSLATED  # deadline 7.75
    table.expire(7.7)
    assert table.live == 1
    table.expire(7.75)
    assert table.live == 0


def test_connection_table_reaps_idle_connections_as_the_clock_advances():
    table = eni_table()
    table.process(opening_batch(1000, [REMOTE], UDP), Direction.OUT)
    assert table.live == 1000
    # no expire() call: a later packet moves the clock and the timer wheel reaps on the way
    assert Flow(table, UDP, sport=1).out(t=45.0) is NatStatus.CREATED
    assert table.live == 1
    assert table.stats()[0].expired == 1000


def test_connection_table_expire_makes_live_and_counters_exact():
    table = eni_table()
    table.process(opening_batch(10, [REMOTE], UDP, t=0.0), Direction.OUT)
    table.process(opening_batch(5, [REMOTE], UDP, t=20.0, first=10), Direction.OUT)
    table.expire(30.0 - TICK)
    assert table.live == 15
    table.expire(30.0)
    assert table.live == 5
    assert stats_tuple(table.stats()[0]) == (5, 15, 15, 10, 0, 0)
    table.expire(10.0)  # the clock never goes back
    assert table.now == 30.0 and table.live == 5
    table.expire(50.0)
    assert table.live == 0
    assert stats_tuple(table.stats()[0]) == (0, 15, 15, 15, 0, 0)
    assert len(table.connections()) == 0


def test_connection_table_time_going_backwards_is_clamped():
    table = eni_table()
    flow = Flow(table, UDP)
    assert flow.out(t=100.0) is NatStatus.CREATED
    assert flow.out(t=50.0) is NatStatus.TRANSLATED  # an out-of-order packet counts as "now"
    assert table.connections()["expires"].tolist() == [130.0]


#### capacity ###################################################################################


def test_hyperplane_eni_address_fits_exactly_65000_connections():
    table = eni_table()
    r = table.process(opening_batch(65_001, [REMOTE, REMOTE_2]), Direction.OUT)
    assert (r.status[:65_000] == NatStatus.CREATED).all()
    assert r.status[65_000] == NatStatus.ADDRESS_FULL
    assert NatStatus(r.status[65_000]).is_capacity
    assert table.live == 65_000
    assert stats_tuple(table.stats()[0]) == (65_000, 65_000, 65_000, 0, 0, 1)
    assert_translated_tuples_unique(table)
    ports = r.packets["src_port"][:65_000]
    assert ports.min() >= 1024 and (r.packets["src_ip"][:65_000] == ip(ENI)).all()


def test_hyperplane_eni_on_full_adds_an_address_for_the_65001st_connection():
    calls = []

    def add_overflow_eni(table, now, status):
        calls.append((now, status))
        table.add_address(ENI_2)
        return True

    table = eni_table(on_full=add_overflow_eni)
    batch = opening_batch(65_002, [REMOTE, REMOTE_2], t=3.0)
    r = table.process(batch, Direction.OUT)
    assert calls == [(3.0, NatStatus.ADDRESS_FULL)]
    assert (r.status == NatStatus.CREATED).all()
    assert (r.packets["src_ip"][:65_000] == ip(ENI)).all()
    assert (r.packets["src_ip"][65_000:] == ip(ENI_2)).all()
    assert table.addresses == [ENI, ENI_2]
    assert [s.live for s in table.stats()] == [65_000, 2]
    assert sum(s.refused for s in table.stats()) == 0


def test_hyperplane_eni_on_full_declining_leaves_address_full():
    table = eni_table(max_connections_per_address=3, on_full=lambda table, now, status: False)
    r = table.process(opening_batch(5, [REMOTE]), Direction.OUT)
    assert r.status.tolist() == [1, 1, 1, NatStatus.ADDRESS_FULL, NatStatus.ADDRESS_FULL]
    assert table.stats()[0].refused == 2


def test_hyperplane_eni_destination_64513th_connection_is_ports_exhausted():
    calls = []
    table = eni_table(on_full=lambda table, now, status: calls.append(status) or False)
    r = table.process(opening_batch(PORTS + 1, [REMOTE]), Direction.OUT)
    assert (r.status[:PORTS] == NatStatus.CREATED).all()
    assert r.status[PORTS] == NatStatus.PORTS_EXHAUSTED
    assert calls == [NatStatus.PORTS_EXHAUSTED]  # the ENI manager is asked for an overflow ENI too
    assert sorted(r.packets["src_port"][:PORTS].tolist()) == list(range(1024, 65536))
    # another destination still fits on the same address
    assert Flow(table, remote=REMOTE_2).out(SYN) is NatStatus.CREATED


def test_nat_gateway_55000_per_destination_then_ports_exhausted_while_other_destination_succeeds():
    table = gateway_table()
    r = table.process(opening_batch(55_001, [REMOTE]), Direction.OUT)
    assert (r.status[:55_000] == NatStatus.CREATED).all()
    assert r.status[55_000] == NatStatus.PORTS_EXHAUSTED
    # the same destination IP on another port, or another protocol, is another destination
    assert Flow(table, remote=REMOTE, dport=80).out(SYN) is NatStatus.CREATED
    assert Flow(table, UDP, remote=REMOTE, dport=443).out() is NatStatus.CREATED
    assert Flow(table, remote=REMOTE_2).out(SYN) is NatStatus.CREATED
    assert Flow(table, sport=1, remote=REMOTE).out(SYN) is NatStatus.PORTS_EXHAUSTED
    assert table.live == 55_003
    assert table.stats()[0].refused == 2
    assert_translated_tuples_unique(table)


def test_nat_gateway_two_addresses_take_110000_to_one_destination():
    table = ConnectionTable.nat_gateway([NAT_IP, NAT_IP_2])
    r = table.process(opening_batch(110_001, [REMOTE]), Direction.OUT)
    assert (r.status[:110_000] == NatStatus.CREATED).all()
    assert r.status[110_000] == NatStatus.PORTS_EXHAUSTED
    assert [s.live for s in table.stats()] == [55_000, 55_000]
    assert [s.refused for s in table.stats()] == [1, 1]
    assert_translated_tuples_unique(table)


def test_nat_gateway_expiry_frees_ports_for_the_same_destination():
    table = gateway_table()
    table.process(opening_batch(55_000, [REMOTE], UDP, dport=53), Direction.OUT)
    late = opening_batch(1, [REMOTE], UDP, dport=53, first=55_000, t=350.0 - TICK)
    assert table.process(late, Direction.OUT).status.tolist() == [NatStatus.PORTS_EXHAUSTED]
    # at 350 s every one of them is idle past its deadline: the same destination takes new ones
    again = opening_batch(55_000, [REMOTE], UDP, dport=53, first=60_000, t=350.0)
    r = table.process(again, Direction.OUT)
    assert (r.status == NatStatus.CREATED).all()
    s = table.stats()[0]
    assert (s.live, s.created, s.expired, s.refused, s.peak) == (55_000, 110_000, 55_000, 1, 55_000)
    assert_translated_tuples_unique(table)


def test_hyperplane_eni_pending_overflow_address_is_not_used_before_active_from():
    calls = []
    table = eni_table(max_connections_per_address=2, on_full=lambda *a: calls.append(a) or True)
    table.add_address(ENI_2, active_from=10.0)
    r = table.process(opening_batch(3, [REMOTE], t=0.0), Direction.OUT)
    assert r.status.tolist() == [NatStatus.CREATED, NatStatus.CREATED, NatStatus.ADDRESS_FULL]
    assert calls == []  # an overflow ENI is already on its way: no second one is asked for
    r = table.process(opening_batch(1, [REMOTE], t=10.0 - TICK, first=3), Direction.OUT)
    assert r.status.tolist() == [NatStatus.ADDRESS_FULL]
    r = table.process(opening_batch(1, [REMOTE], t=10.0, first=4), Direction.OUT)
    assert r.status.tolist() == [NatStatus.CREATED]
    assert ip_str(r.packets["src_ip"][0]) == ENI_2
    # refusals count on the active address only
    assert [stats_tuple(s) for s in table.stats()] == [(2, 2, 2, 0, 0, 2), (1, 1, 1, 0, 0, 0)]


def test_hyperplane_eni_address_counters_in_a_scenario():
    table = eni_table(max_connections_per_address=2)
    table.add_address(ENI_2, active_from=100.0)
    dns = Flow(table, UDP, sport=5000, dport=53)
    web = Flow(table, TCP, sport=5001)
    late = Flow(table, UDP, sport=5002, dport=53)
    assert dns.out(t=0.0) is NatStatus.CREATED
    assert web.out(SYN, t=0.0) is NatStatus.CREATED
    assert late.out(t=0.0) is NatStatus.ADDRESS_FULL
    assert web.back(RST | ACK, t=1.0) is NatStatus.CLOSED
    assert late.out(t=2.0) is NatStatus.CREATED
    table.expire(40.0)
    assert table.live == 0
    assert stats_tuple(table.stats()[0]) == (0, 2, 3, 2, 1, 1)  # live peak created expired closed refused
    assert stats_tuple(table.stats()[1]) == (0, 0, 0, 0, 0, 0)
    assert table.stats()[1].active_from == 100.0
    assert table.status_counts() == {NatStatus.CREATED: 3, NatStatus.ADDRESS_FULL: 1,
                                     NatStatus.CLOSED: 1}


def test_connection_table_random_fill_never_shares_a_translated_tuple():
    rng = np.random.default_rng(7)
    table = ConnectionTable.hyperplane_eni([ENI, ENI_2, "10.0.1.202"], ports=(1024, 1279), seed=3,
                                           max_connections_per_address=6_000)
    n = 200_000
    batch = packets(n)
    batch["time"] = np.sort(rng.uniform(0, 100, n))
    batch["src_ip"] = ip("10.1.0.0") + rng.integers(0, 64, n)
    batch["src_port"] = rng.integers(1024, 2048, n)
    batch["dst_ip"] = ip("93.184.0.0") + rng.integers(0, 8, n)
    batch["dst_port"] = rng.choice([53, 443], n)
    batch["proto"] = rng.choice([TCP, UDP], n)
    batch["flags"] = np.where(batch["proto"] == TCP, rng.choice([SYN, SYN, SYN, ACK, RST], n), 0)
    r = table.process(batch, Direction.OUT)
    status = r.status
    assert {NatStatus.CREATED, NatStatus.TRANSLATED, NatStatus.CLOSED, NatStatus.PORTS_EXHAUSTED,
            NatStatus.ADDRESS_FULL} <= set(status.tolist())
    assert_translated_tuples_unique(table)
    conns = table.connections()
    assert conns["x_port"].min() >= 1024 and conns["x_port"].max() <= 1279
    # every passed packet went out on the translated tuple its live connection holds now, or held
    passed = np.isin(status, [NatStatus.CREATED, NatStatus.TRANSLATED, NatStatus.CLOSED])
    assert (np.isin(r.packets["src_ip"][passed], [ip(a) for a in table.addresses])).all()
    assert (r.packets["src_port"][passed] >= 1024).all() and (r.packets["src_port"][passed] <= 1279).all()
    table.expire(batch["time"][-1])
    s = table.stats()
    assert sum(x.live for x in s) == table.live == len(table.connections())
    assert sum(x.created for x in s) == sum(x.live + x.expired + x.closed for x in s)


#### read-only lookup (replay) ################################################################


def test_connection_table_lookup_translates_live_connections_and_changes_nothing():
    table = eni_table()
    flow = Flow(table)
    drive(flow, INTO_STATE["tcp-established"], t=0.0)
    before = (table.connections().tolist(), table.status_counts(), table.live, table.now)

    out, found = table.lookup(packet(INSIDE, REMOTE, 40000, 443, TCP, FIN | ACK, 5.0), Direction.OUT)
    assert found.tolist() == [True]
    assert (out[0]["src_ip"], out[0]["src_port"]) == (flow.x_ip, flow.x_port)
    out, found = table.lookup(packet(REMOTE, ENI, 443, flow.x_port, TCP, RST, 5.0), Direction.IN)
    assert found.tolist() == [True]
    assert (out[0]["dst_ip"], out[0]["dst_port"]) == (ip(INSIDE), 40000)
    # no connection: reported, row left as it was, and a SYN opens nothing
    strangers = np.concatenate([packet(INSIDE, REMOTE, 40001, 443, TCP, SYN, 5.0),
                                packet(INSIDE, REMOTE, 40000, 443, UDP, 0, 5.0)])
    out, found = table.lookup(strangers, Direction.OUT)
    assert found.tolist() == [False, False]
    assert (out == strangers).all()
    # the FIN was not counted, the RST closed nothing, no deadline moved
    assert (table.connections().tolist(), table.status_counts(), table.live, table.now) == before
    assert flow.state == "tcp-established"


def test_connection_table_lookup_empty_and_bad_input():
    table = eni_table()
    out, found = table.lookup(packets(0), Direction.OUT)
    assert len(out) == len(found) == 0
    with pytest.raises(TypeError, match="packets"):
        table.lookup(np.zeros(3), Direction.OUT)
    with pytest.raises(TypeError, match="packets"):
        table.lookup(packets(4).reshape(2, 2), Direction.OUT)
    with pytest.raises(ValueError):
        table.lookup(packets(1), 2)


def test_nat_core_lookup_none_and_wrong_buffers_are_refused(core):
    with pytest.raises(TypeError, match="packets"):
        core.lookup(None, 0, packets(1), np.zeros(1, np.uint8))
    with pytest.raises(TypeError, match="found"):
        core.lookup(packets(1), 0, packets(1), None)
    with pytest.raises(ValueError):
        core.lookup(packets(2), 0, packets(1), np.zeros(2, np.uint8))
    with pytest.raises(ValueError):
        core.lookup(packets(2), 0, packets(2), np.zeros(2, np.int64))
    with pytest.raises(OverflowError):
        core.lookup(packets(1), 256, packets(1), np.zeros(1, np.uint8))


#### churn ######################################################################################


def count_live(times: np.ndarray, timeout: float, now: float) -> int:
    """How many connections last seen at ``times`` are live at ``now`` (now < t + timeout, exactly)."""
    near = times + timeout
    # rounding to nearest is monotonic: only a sum that rounds to ``now`` itself is in doubt
    undecided = [t for t in times[near == now] if exact_deadline(float(t), timeout) > now]
    return int(np.count_nonzero(near > now)) + len(undecided)


def test_both_indexes_hold_one_entry_per_connection_through_growth_and_closing():
    table = eni_table(capacity=16)
    assert table.index_stats()["forward"].entries == 0
    opened = table.process(opening_batch(3000, [REMOTE, REMOTE_2]), Direction.OUT)
    assert table.live == 3000
    for name, index in table.index_stats().items():
        assert index.entries == 3000 and index.load <= 0.5, name
        assert 1.0 <= index.probe_mean <= index.probe_max < 64, name  # a well-spread hash keeps probes short
    # every other connection reset from outside: both of its entries go, the others still translate
    rst = opened.packets.copy()
    rst["src_ip"], rst["dst_ip"] = opened.packets["dst_ip"], opened.packets["src_ip"]
    rst["src_port"], rst["dst_port"] = opened.packets["dst_port"], opened.packets["src_port"]
    rst["flags"], rst["time"] = RST, 1.0
    table.process(rst[::2].copy(), Direction.IN)
    stats = table.index_stats()
    assert stats["forward"].entries == stats["reverse"].entries == table.live == 1500
    ack = rst[1::2].copy()
    ack["flags"] = ACK
    assert (table.process(ack, Direction.IN).status == NatStatus.TRANSLATED).all()
    table.expire(1000.0)
    assert table.index_stats()["reverse"].entries == table.live == 0


def test_hyperplane_eni_churn_of_millions_keeps_memory_flat():
    total, batch_rows, udp_timeout = 3_000_000, 100_000, 30.0
    rate = 50_000 / udp_timeout  # new connections per second: about 50,000 live at once
    times = np.arange(total) / rate
    table = eni_table(max_connections_per_address=None)
    footprint = []
    for first in range(0, total, batch_rows):
        i = np.arange(first, first + batch_rows)
        batch = packets(batch_rows)
        batch["time"] = times[i]
        batch["src_ip"] = ip("10.64.0.0") + i  # a new inside host for every connection
        batch["src_port"] = 40000
        batch["dst_ip"] = ip("93.184.0.0") + i % 16
        batch["dst_port"] = 53
        batch["proto"] = UDP
        r = table.process(batch, Direction.OUT)
        assert (r.status == NatStatus.CREATED).all()
        now = float(times[i[-1]])
        table.expire(now)
        assert table.live == count_live(times[: i[-1] + 1], udp_timeout, now)
        footprint.append(table.memory_bytes)
    s = table.stats()[0]
    assert s.created == total and s.created == s.live + s.expired
    assert 49_000 <= s.peak <= 51_000
    # after warm-up the footprint does not grow with the connections ever opened ...
    assert footprint[2:] == [footprint[2]] * (len(footprint) - 2)
    # ... and stays within a small multiple of what the peak of live connections needs
    assert footprint[-1] <= 200 * s.peak


#### bad input ##################################################################################


def table_kw(**changes):
    kw = dict(gateway=False, addresses=[ENI], max_connections_per_address=65_000,
              max_connections_per_destination=None, timeouts=Timeouts())
    kw.update(changes)
    return kw


@pytest.mark.parametrize("changes,argument", [
    (dict(ports=(0, 100)), "ports"),
    (dict(ports=(2000, 1000)), "ports"),
    (dict(ports=(1024, 65536)), "ports"),
    (dict(ports=(1024.0, 65535)), "ports"),
    (dict(ports=(1, 2, 3)), "ports"),
    (dict(ports=5), "ports"),
    (dict(ports=None), "ports"),
    (dict(ports=(1024, 2047), max_connections_per_destination=1025), "max_connections_per_destination"),
    (dict(max_connections_per_destination=PORTS + 1), "max_connections_per_destination"),
    (dict(max_connections_per_destination=0), "max_connections_per_destination"),
    (dict(max_connections_per_address=-1), "max_connections_per_address"),
    (dict(max_connections_per_address=2.5), "max_connections_per_address"),
    (dict(max_connections_per_address=2**64), "max_connections_per_address"),
    (dict(timeouts=Timeouts(udp=-1.0)), "timeouts.udp"),
    (dict(timeouts=Timeouts(tcp_established=0.0)), "timeouts.tcp_established"),
    (dict(timeouts=Timeouts(tcp_transitory=math.nan)), "timeouts.tcp_transitory"),
    (dict(timeouts=Timeouts(udp_replied=math.inf)), "timeouts.udp_replied"),
    (dict(timeouts=Timeouts(icmp="60")), "timeouts.icmp"),
    (dict(timeouts=None), "timeouts"),
    (dict(seed=-1), "seed"),
    (dict(seed=2**64), "seed"),
    (dict(seed=1.5), "seed"),
    (dict(capacity=0), "capacity"),
    (dict(addresses=["10.0.1.300"]), "address"),
    (dict(addresses=["fe80::1"]), "address"),
    (dict(addresses=["not an address"]), "address"),
    (dict(addresses=[None]), "address"),
    (dict(addresses=[-1]), "address"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_connection_table_bad_configuration_names_the_argument(changes, argument):
    with pytest.raises((TypeError, ValueError), match=argument.replace(".", r"\.")):
        ConnectionTable(**table_kw(**changes))


def test_nat_gateway_more_than_eight_addresses_is_refused():
    with pytest.raises(ValueError, match="addresses"):
        ConnectionTable.nat_gateway([f"10.0.0.{i}" for i in range(1, 10)])
    with pytest.raises(ValueError, match="addresses"):
        ConnectionTable.nat_gateway([])


def test_nat_gateway_add_address_beyond_eight_is_refused():
    table = ConnectionTable.nat_gateway([f"10.0.0.{i}" for i in range(1, 9)])
    with pytest.raises(ValueError, match="address"):
        table.add_address("10.0.0.9")
    assert len(table.addresses) == 8


def test_connection_table_same_address_twice_is_refused():
    # two slots of one address would hand one translated tuple to two connections
    table = eni_table()
    with pytest.raises(ValueError, match="address"):
        table.add_address(ENI)
    assert table.addresses == [ENI]


def test_connection_table_address_limit_of_the_core_is_a_value_error():
    table = ConnectionTable.hyperplane_eni([ip("10.2.0.0") + k for k in range(254)])
    with pytest.raises(ValueError, match="address"):
        table.add_address("10.3.0.0")


def test_connection_table_nan_active_from_is_refused():
    table = eni_table()
    with pytest.raises(ValueError, match="active_from"):
        table.add_address(ENI_2, active_from=math.nan)


@pytest.mark.parametrize("bad", [
    [0] * 3,
    np.zeros(3, np.float64),
    np.zeros(3, PACKET.newbyteorder(">")),
    np.zeros(3, [("time", "<f8"), ("src_ip", "<u4")]),
    None,
    "packets",
], ids=["list", "float64", "big-endian", "other-record", "none", "str"])
def test_connection_table_packets_not_a_packet_array_is_type_error(bad):
    with pytest.raises(TypeError, match="packets"):
        eni_table().process(bad, Direction.OUT)


def test_connection_table_two_dimensional_packets_name_the_argument():
    with pytest.raises((TypeError, ValueError), match="packets"):
        eni_table().process(packets(4).reshape(2, 2), Direction.OUT)


def test_connection_table_sliced_and_strided_packets_work():
    batch = opening_batch(10, [REMOTE], UDP)
    direction = np.zeros(10, np.int64)
    table = eni_table()
    r = table.process(batch[::2], direction[::2])  # non-contiguous rows and directions
    assert (r.status == NatStatus.CREATED).all() and len(r) == 5
    assert (r.packets["src_ip"] == ip(ENI)).all()
    r = table.process(batch[1:4], direction[1:4])
    assert r.status.tolist() == [NatStatus.CREATED, NatStatus.TRANSLATED, NatStatus.CREATED]
    fortran = np.stack([batch, batch]).T[5:8:2, 0]  # rows 5 and 7 of a Fortran-ordered view
    r = table.process(fortran, Direction.OUT)
    assert r.status.tolist() == [NatStatus.CREATED, NatStatus.CREATED]
    readonly = batch[9:].copy()
    readonly.flags.writeable = False
    assert table.process(readonly, Direction.OUT).status.tolist() == [NatStatus.CREATED]
    assert table.live == 10


def test_connection_table_empty_batch_is_fine():
    r = eni_table().process(packets(0), Direction.OUT)
    assert len(r) == 0 and r.packets.dtype == PACKET


@pytest.mark.parametrize("direction,error", [
    (np.zeros(3, np.uint8), ValueError),
    ([0, 1, 0, 1, 0], ValueError),
    (2, ValueError),
    (-1, ValueError),
    (np.array([0, 1, 0, 7]), ValueError),
    (0.5, TypeError),
    (np.zeros(4, np.float32), TypeError),
    (np.zeros((4, 1), np.uint8), TypeError),
    (None, TypeError),
    ("out", TypeError),
], ids=["short", "long", "two", "minus-one", "seven", "float", "float-array", "2d", "none", "str"])
def test_connection_table_bad_direction_names_the_argument(direction, error):
    table = eni_table()
    with pytest.raises(error, match="direction"):
        table.process(opening_batch(4, [REMOTE], UDP), direction)
    assert table.live == 0


def test_connection_table_direction_accepts_enum_bool_and_per_row_values():
    table = eni_table()
    batch = opening_batch(2, [REMOTE], UDP)
    assert table.process(batch, Direction.OUT).status.tolist() == [1, 1]
    assert table.process(batch[:1], np.array([False])).status.tolist() == [0]
    mixed = np.concatenate([batch[:1], packet(REMOTE, ENI, 443, 1, UDP)])
    assert table.process(mixed, [Direction.OUT, Direction.IN]).status.tolist() == [0, NatStatus.UNSOLICITED]


def run_isolated(code: str) -> str:
    """Run code in a fresh interpreter, so that a hang or a crash of compiled code fails one test.

    The compiled loop runs without the GIL and cannot be interrupted: a bug that loops forever
    would otherwise stop the whole test run.
    """
    try:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("the interpreter hung (an endless loop in compiled code)")
    assert proc.returncode == 0, f"the interpreter died ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


PRELUDE = """
import math
from hyperplane.tables.nat import ConnectionTable, Timeouts
from hyperplane.records import packet, UDP
table = ConnectionTable.hyperplane_eni(["10.0.1.200"])
def send(t, sport=1):
    return int(table.process(packet("10.0.1.5", "1.1.1.1", sport, 53, UDP, 0, t), 0).status[0])
"""


@pytest.mark.parametrize("bad_time", ["math.nan", "math.inf", "1e19", "-math.inf"])
def test_connection_table_packet_time_must_be_finite(bad_time):
    out = run_isolated(PRELUDE + f"""
for k in range(3):
    send(0.0, k)
try:
    send({bad_time}, 10)
    print("accepted")
except ValueError as exc:
    print("refused:", exc)
table.expire(100.0)  # whatever happened, the clock still works afterwards
print("live", table.live)
""")
    if bad_time == "-math.inf":  # far past: clamped to the table's clock like any late packet
        assert "accepted" in out
    else:
        assert "refused:" in out and "time" in out.split("refused:")[1]
    assert "live 0" in out


@pytest.mark.parametrize("bad_now", ["math.nan", "math.inf"])
def test_connection_table_expire_needs_a_finite_time(bad_now):
    out = run_isolated(PRELUDE + f"""
for k in range(3):
    send(0.0, k)
try:
    table.expire({bad_now})
    print("accepted")
except ValueError as exc:
    print("refused:", exc)
table.expire(100.0)
print("live", table.live)
print("new", send(200.0, 10))  # a table whose clock went to infinity would hang here
""")
    assert "refused:" in out and "now" in out.split("refused:")[1]
    assert "live 0" in out and "new 1" in out


def test_connection_table_tiny_timeout_at_epoch_time_does_not_hang():
    # pcap timestamps are ~1.7e9 s: a 1 ns timeout vanishes in the float sum now + timeout
    out = run_isolated(PRELUDE + """
try:
    table = ConnectionTable.hyperplane_eni(["10.0.1.200"], timeouts=Timeouts(udp=1e-9))
except ValueError as exc:
    print("refused:", exc)
else:
    print("status", send(1.7e9))
    print("status", send(1.7e9 + 1.0))
print("done")
""")
    assert "done" in out
    assert "timeouts.udp" in out or "status 1\nstatus 1" in out


@pytest.mark.parametrize("t", [2e13, 1e15])
def test_millisecond_timeouts_at_far_future_times_return_and_keep_the_connection_for_its_instant(t):
    # Issue 9: from 2**44 s on, 1 ms is below half the spacing of doubles, so now + timeout == now;
    # the connection was killed while it was being opened and the batch loop never returned.
    out = run_isolated(f"""
import math
from hyperplane.tables.nat import ConnectionTable, Timeouts
from hyperplane.records import packet
t = {t!r}
table = ConnectionTable.hyperplane_eni(["10.0.10.4"], timeouts=Timeouts(*[0.001] * 5))
def send(time, direction, src, dst, sport, dport):
    r = table.process(packet(src, dst, sport, dport, proto=17, time=time), direction)
    return int(r.status[0]), int(r.packets["src_port"][0]), int(r.packets["dst_port"][0])
t0 = math.nextafter(t, 0)  # the double before t (1e15 is the latest time a table takes)
status, x_port, _ = send(t0, 0, "169.254.0.1", "8.8.8.8", 40000, 53)
print("opened", status, table.live)
print("expires", table.connections()["expires"][0] == t)
print("reply now", send(t0, 1, "8.8.8.8", "10.0.10.4", 53, x_port))
print("reply later", send(t, 1, "8.8.8.8", "10.0.10.4", 53, x_port)[0])
print("live", table.live)
""")
    # the packet's own instant is before t0 + 1 ms; the next representable time is after it
    assert out.splitlines() == ["opened 1 1", "expires True", f"reply now (0, 53, 40000)",
                                f"reply later {int(NatStatus.UNSOLICITED)}", "live 0"]


def test_a_deadline_equal_to_now_expires_the_connection_at_large_times():
    # 2**49 s: doubles are 1/8 s apart, and a 1/8 s timeout lands exactly on the next one
    out = run_isolated("""
from hyperplane.tables.nat import ConnectionTable, Timeouts
from hyperplane.records import packet
t = 2.0 ** 49
table = ConnectionTable.hyperplane_eni(["10.0.10.4"], timeouts=Timeouts(*[0.125] * 5))
r = table.process(packet("169.254.0.1", "8.8.8.8", 40000, 53, proto=17, time=t), 0)
x_port = int(r.packets["src_port"][0])
print(table.connections()["expires"][0] == t + 0.125)
r = table.process(packet("8.8.8.8", "10.0.10.4", 53, x_port, proto=17, time=t + 0.125), 1)
print(int(r.status[0]), table.live)
table.expire(t + 10.0)
print(table.live, [s.expired for s in table.stats()])
""")
    assert out.splitlines() == ["True", f"{int(NatStatus.UNSOLICITED)} 0", "0 [1]"]


@pytest.mark.parametrize("t", [2e13, 1e15])
def test_network_with_millisecond_v2n_timeouts_answers_at_far_future_times(t):
    # the same through the whole VPC: LambdaSettings(timeouts=...) reach the V2N tables
    out = run_isolated(f"""
import hyperplane as hp
from hyperplane.functions import LambdaSettings
from hyperplane.tables.nat import Timeouts
from hyperplane.dataplane.walk import Origin
from hyperplane.records import ip, packets
import math
t = {t!r}
net = hp.Network.example(lambda_settings=LambdaSettings(timeouts=Timeouts(*[0.001] * 5)))
env = net.function("orders").environment_address(0)
pool = net.pool_index("orders", env)
fn = net.function_number("orders")
rows = packets(3)
t0 = math.nextafter(t, 0)
rows[0] = (t0, ip(env), ip("10.0.21.10"), 41000, 6379, 60, 6, 0x02)
rows[1] = (t0, ip("10.0.21.10"), ip(env), 6379, 41000, 60, 6, 0x12)
rows[2] = (t, ip("10.0.21.10"), ip(env), 6379, 41000, 60, 6, 0x10)
res = net.process(rows, [Origin.FUNCTION, Origin.REPLY_TO_FUNCTION, Origin.REPLY_TO_FUNCTION], [pool, fn, fn])
print([hp.Reason(r).name for r in res.reason])
""")
    assert out.strip() == str(["DELIVERED", "DELIVERED_TO_FUNCTION", "V2N_UNSOLICITED_INBOUND"])


def test_connection_table_nan_time_does_not_stop_expiry():
    # whatever the facade decides about NaN, the compiled core must not lose its clock
    out = run_isolated("""
import math
import numpy as np
from hyperplane._core._nat import NatCore
from hyperplane.tables.nat import Timeouts
from hyperplane.records import packets, UDP
core = NatCore(False, 1024, 64512, 65000, 64512, Timeouts().by_state())
core.add_address(167772616, -math.inf)
batch = packets(3)
batch["src_port"] = [1, 2, 3]
batch["proto"] = UDP
batch["time"] = [0.0, math.nan, 1.0]
core.process(batch, np.zeros(1, np.uint8), np.empty_like(batch), np.empty(3, np.uint8))
core.expire(1000.0)
print("live", core.live)
""")
    assert "live 0" in out


def test_connection_table_timeout_longer_than_the_timer_wheel():
    table = eni_table(timeouts=Timeouts(tcp_established=5000.0))
    flow = Flow(table)
    drive(flow, INTO_STATE["tcp-established"], t=0.0)
    other = Flow(table, UDP, sport=1)
    for t in range(0, 5000, 25):  # traffic turns the one-second wheel round several times
        other.out(t=float(t))
    assert flow.state == "tcp-established"
    table.expire(5000.0 - TICK)
    assert flow.state == "tcp-established"
    assert flow.back(ACK, 5000.0) is NatStatus.UNSOLICITED
    assert flow.state is None


#### the compiled core refuses bad buffers without crashing ####################################


def core_args(n: int = 4):
    return [packets(n), np.zeros(n, np.uint8), packets(n), np.zeros(n, np.uint8)]


@pytest.fixture
def core():
    c = NatCore(False, 1024, PORTS, 65_000, PORTS, Timeouts().by_state())
    c.add_address(ip(ENI), -math.inf)
    return c


@pytest.mark.parametrize("position,name", list(enumerate(["packets", "direction", "out", "status"])))
def test_nat_core_process_none_is_type_error(core, position, name):
    args = core_args()
    args[position] = None
    with pytest.raises(TypeError, match=name):
        core.process(*args)


@pytest.mark.parametrize("position,bad", [
    (0, np.zeros(4, np.float64)),
    (0, np.zeros(4, np.uint8)),
    (0, np.zeros(4, PACKET.newbyteorder(">"))),
    (1, np.zeros(4, np.int64)),
    (1, np.zeros(4, np.float64)),
    (2, np.zeros(4, np.float64)),
    (3, np.zeros(4, np.int32)),
    (0, packets(8)[::2]),
    (2, packets(8)[::2]),
    (3, np.zeros(8, np.uint8)[::2]),
    (0, packets(4).reshape(2, 2)),
    (0, [0, 0, 0, 0]),
    (2, "out"),
])
def test_nat_core_process_wrong_buffers_are_refused(core, position, bad):
    args = core_args()
    args[position] = bad
    with pytest.raises((TypeError, ValueError)):
        core.process(*args)
    assert core.live == 0


def test_nat_core_process_read_only_output_is_refused(core):
    args = core_args()
    args[2].flags.writeable = False
    with pytest.raises(ValueError):
        core.process(*args)


@pytest.mark.parametrize("lengths,start,end", [
    ((4, 3, 4, 4), 0, -1),
    ((4, 4, 3, 4), 0, -1),
    ((4, 4, 4, 5), 0, -1),
    ((4, 4, 4, 4), 5, -1),
    ((4, 4, 4, 4), -1, -1),
    ((4, 4, 4, 4), 3, 2),
    ((4, 4, 4, 4), 0, 9),
])
def test_nat_core_process_mismatched_lengths_and_rows_are_value_errors(core, lengths, start, end):
    n_p, n_d, n_o, n_s = lengths
    with pytest.raises(ValueError):
        core.process(packets(n_p), np.zeros(n_d, np.uint8), packets(n_o), np.zeros(n_s, np.uint8), start, end)


def test_nat_core_process_single_direction_applies_to_every_row(core):
    batch = opening_batch(4, [REMOTE], UDP)
    out, status = np.empty_like(batch), np.zeros(4, np.uint8)
    assert core.process(batch, np.zeros(1, np.uint8), out, status) == 4
    assert status.tolist() == [NatStatus.CREATED] * 4
    assert core.live == 4


def test_nat_core_address_index_out_of_range_is_index_error(core):
    with pytest.raises(IndexError):
        core.address(1)
    with pytest.raises(IndexError):
        core.address_stats(-1)


def test_connection_table_lookup_judges_liveness_at_the_packets_time():
    table = ConnectionTable.hyperplane_eni([ENI])
    opened = table.process(packet("169.254.0.1", REMOTE, 40000, 53, UDP, time=0.0), Direction.OUT)
    reply = packet(REMOTE, ENI, 53, int(opened.packets[0]["src_port"]), UDP, time=10.0)
    assert table.lookup(reply, Direction.IN)[1][0]
    late = reply.copy()
    late["time"] = 31.0  # UDP without a reply idles out after 30 s
    assert not table.lookup(late, Direction.IN)[1][0]
    assert table.process(late, Direction.IN).status[0] == NatStatus.UNSOLICITED


@pytest.mark.parametrize("bad_time", [math.nan, 2e15])
def test_connection_table_batch_with_a_bad_time_names_its_row_and_opens_nothing(bad_time):
    table = eni_table()
    batch = packets(4)
    batch["src_ip"], batch["dst_ip"], batch["dst_port"], batch["proto"] = ip(INSIDE), ip(REMOTE), 53, UDP
    batch["src_port"] = [1000, 1001, 1002, 1003]
    batch["time"] = [0.0, 1.0, bad_time, 3.0]
    with pytest.raises(ValueError, match=r"packets\[2\]\.time must be a number of seconds up to 1e\+15, not "):
        table.process(batch, Direction.OUT)
    assert table.live == 0  # refused before any row was translated
    batch["time"][2] = 2.0
    batch.flags.writeable = False  # a read-only batch (a memory-mapped capture) is translated as well
    assert (table.process(batch, Direction.OUT).status == NatStatus.CREATED).all()
    assert table.live == 4


def test_connection_table_process_into_an_earlier_result_answers_as_a_fresh_one():
    # a caller streaming batches hands the last result back: same translations and statuses as
    # new arrays, written into that result, whatever it held before
    fresh, reused = eni_table(seed=7), eni_table(seed=7)
    opening = opening_batch(300, [REMOTE, REMOTE_2])
    buffer = eni_table().process(opening_batch(300, [REMOTE_2], UDP, first=5000), Direction.OUT)
    expected = fresh.process(opening, Direction.OUT)
    got = reused.process(opening, Direction.OUT, out=buffer)
    assert got is buffer
    assert (got.packets == expected.packets).all() and (got.status == expected.status).all()
    acks = opening.copy()
    acks["flags"], acks["time"] = ACK, 1.0
    expected = fresh.process(acks, Direction.OUT)
    got = reused.process(acks, Direction.OUT, out=got)
    assert (got.packets == expected.packets).all() and got.status.tolist() == expected.status.tolist()


def _stale_result(n: int) -> object:
    return eni_table().process(opening_batch(n, [REMOTE], UDP), Direction.OUT)


@pytest.mark.parametrize("make_out,error,words", [
    (lambda batch: (batch.copy(), np.zeros(len(batch), np.uint8)), TypeError, "out must be a NatResult"),
    (lambda batch: _stale_result(len(batch) + 1), ValueError, "out.packets has shape (5,)"),
    (lambda batch: NatResult(batch.copy(), np.zeros(len(batch), np.int64)), TypeError, "out.status must be a numpy array of uint8"),
    (lambda batch: NatResult(batch.copy()[::-1], np.zeros(len(batch), np.uint8)), ValueError, "out.packets must be a writable contiguous"),
    (lambda batch: NatResult(batch, np.zeros(len(batch), np.uint8)), ValueError, "must not overlap the packets"),
])
def test_connection_table_process_bad_out_names_the_problem_and_opens_nothing(make_out, error, words):
    table = eni_table()
    batch = opening_batch(4, [REMOTE])
    with pytest.raises(error) as caught:
        table.process(batch, Direction.OUT, out=make_out(batch))
    assert words in str(caught.value)
    assert table.live == 0
