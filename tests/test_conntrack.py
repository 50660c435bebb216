"""Scenarios for security group connection tracking (SPEC §3), and a differential test against a
plain-Python reference model.

The tracker answers "is this packet part of a flow the security group already allowed?" for a
batch of rows. Defaults come from AWS (EC2 user guide, security group connection tracking):
TCP established 432,000 s, UDP 30 s or 180 s once it is a stream, other protocols 600 s; TCP
opening 60 s, closing 120 s and ICMP 60 s are chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings, strategies as st

from hyperplane._core._conntrack import ConntrackCore
from hyperplane.tables.conntrack import (FIN_A, FIN_B, SEEN_A, SEEN_B, ConnectionTracker,
                                  ConnectionTrackingConfiguration, TrackResult)
from hyperplane.records import (ACK, FIN, ICMP, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, PSH, RST,
                                SYN, TCP, UDP, ip, packet, packets)
from nat_reference import exact_deadline, reported_deadline

LAMBDA = "10.0.1.50"  # a Hyperplane ENI's address
DB = "10.0.2.10"
OTHER_HOST = "10.0.2.11"
GRE = 47
ENI_LAMBDA, ENI_DB, ENI_OTHER = 0, 1, 2


#### the reference model ######################################################################

@dataclass
class RefFlow:
    bits: int
    expires: float


class ReferenceTracker:
    """The semantics of ``_conntrack.pyx``'s theory of operation, written for reading: a dict of
    flows keyed by (eni, proto, endpoint A, endpoint B), lazy expiry on lookup.

    ``mutant`` switches on one deliberate bug, to show that the differential test notices it.
    """

    def __init__(self, config: ConnectionTrackingConfiguration, mutant: str | None = None) -> None:
        self.config = config
        self.mutant = mutant
        self.flows: dict[tuple, RefFlow] = {}
        self.now = -math.inf

    def timeout(self, proto: int, bits: int) -> float:
        c = self.config
        if proto == TCP:
            if bits & (FIN_A | FIN_B):
                return c.tcp_closing
            return c.tcp_established if bits & 3 == 3 else c.tcp_opening
        if proto == UDP:
            return c.udp_stream if bits & 3 == 3 else c.udp
        return c.icmp if proto == ICMP else c.other

    def key(self, eni: int, row) -> tuple[tuple, int] | None:
        """(key, side) of a row, or None when the row is not tracked (ICMP other than echo)."""
        t, src, dst, sport, dport, length, proto, flags = row
        if self.mutant == "orientation":  # keyed by the packet's own direction
            return (eni, proto, src, sport, dst, dport), 0
        if self.mutant == "no_eni":
            eni = 0
        if proto in (TCP, UDP):  # endpoints ordered as (ip, port) pairs
            side = 0 if (src, sport) <= (dst, dport) else 1
            lo, hi = ((src, sport), (dst, dport))[::1 if side == 0 else -1]
            return (eni, proto, lo[0], lo[1], hi[0], hi[1]), side
        if proto == ICMP:  # addresses ordered, the echo identifier in port A
            if flags == ICMP_ECHO_REQUEST:
                ident = sport
            elif flags == ICMP_ECHO_REPLY:
                ident = dport
            else:
                return None
        else:  # other protocols: addresses only
            ident = 0
        side = 0 if src <= dst else 1
        return (eni, proto, min(src, dst), ident, max(src, dst), 0), side

    def check(self, eni, rows, rules) -> tuple[list[int], list[int]]:
        verdicts: list[tuple[int, int]] = []  # (allowed, tracked) per row
        for e, row, rule in zip(eni, rows, rules):
            t = row[0] if row[0] >= self.now else self.now
            self.now = t
            if e == -1:
                verdicts.append((1, 0))
                continue
            found = self.key(e, row)
            if found is None:
                verdicts.append((int(bool(rule)), 0))
                continue
            key, side = found
            proto, flags = row[6], row[7]
            tcp = proto == TCP
            flow = self.flows.get(key)
            if flow is not None and flow.expires <= t:
                del self.flows[key]
                flow = None
            if (flow is not None and tcp and flags & (SYN | ACK | RST | FIN) == SYN
                    and flow.bits & (FIN_A | FIN_B) == FIN_A | FIN_B):
                del self.flows[key]  # a new connection on the tuple of a closed one
                flow = None
            seen, fin = (SEEN_A, FIN_A) if side == 0 else (SEEN_B, FIN_B)
            if flow is not None:
                verdicts.append((1, 1))
                if tcp and flags & RST and self.mutant != "rst_kept":
                    del self.flows[key]
                else:
                    flow.bits |= seen | (fin if tcp and flags & FIN else 0)
                    if self.mutant != "no_refresh":
                        flow.expires = deadline(t, self.timeout(proto, flow.bits))
            elif rule:
                verdicts.append((1, 0))
                if not (tcp and flags & RST):
                    bits = seen | (fin if tcp and flags & FIN else 0)
                    self.flows[key] = RefFlow(bits, deadline(t, self.timeout(proto, bits)))
            else:
                verdicts.append((0, 0))
        return [a for a, _ in verdicts], [t for _, t in verdicts]

    def forget(self, eni: int) -> None:
        self.flows = {k: f for k, f in self.flows.items() if k[0] != eni}

    def expire(self, now: float) -> None:
        self.now = now if now >= self.now else self.now
        self.flows = {k: f for k, f in self.flows.items() if f.expires > self.now}

    def listing(self) -> list[tuple]:
        return sorted(k + (f.bits, f.expires) for k, f in self.flows.items())


def deadline(t: float, timeout: float) -> float:
    """The deadline a flow last seen at ``t`` reports: the first double at or after t + timeout
    (computed exactly), so that ``now < deadline`` is exactly ``now < t + timeout``."""
    return reported_deadline(exact_deadline(t, timeout))


def listing(tracker: ConnectionTracker) -> list[tuple]:
    return sorted(tuple(r) for r in tracker.flows().tolist())


#### helpers ##################################################################################

def batch(*rows: np.ndarray) -> np.ndarray:
    return np.concatenate(rows)


def one(tracker: ConnectionTracker, eni: int, rec: np.ndarray, rule: bool) -> tuple[int, int]:
    r = tracker.check(np.array([eni], dtype=np.int32), rec, np.array([rule]))
    return int(r.allowed[0]), int(r.tracked[0])


class Conversation:
    """A client and a server talking through one ENI's security group."""

    def __init__(self, tracker: ConnectionTracker, eni: int, client: str = LAMBDA, server: str = DB,
                 cport: int = 40000, sport: int = 5432, proto: int = TCP) -> None:
        self.tracker, self.eni, self.proto = tracker, eni, proto
        self.client, self.server, self.cport, self.sport = client, server, cport, sport

    def request(self, t: float, rule: bool, flags: int = ACK) -> tuple[int, int]:
        return one(self.tracker, self.eni,
                   packet(self.client, self.server, self.cport, self.sport, self.proto, flags, t), rule)

    def reply(self, t: float, rule: bool, flags: int = ACK) -> tuple[int, int]:
        return one(self.tracker, self.eni,
                   packet(self.server, self.client, self.sport, self.cport, self.proto, flags, t), rule)


ALLOWED_NEW, TRACKED, DENIED = (1, 0), (1, 1), (0, 0)


#### scenarios ################################################################################

def test_reply_of_allowed_outbound_connection_passes_after_egress_rule_is_removed():
    tracker = ConnectionTracker()
    c = Conversation(tracker, ENI_LAMBDA)
    assert c.request(0.0, rule=True, flags=SYN) == ALLOWED_NEW  # egress rule allows the SYN
    # the egress rule is removed: the rules now deny everything, the connection goes on
    assert c.reply(0.1, rule=False, flags=SYN | ACK) == TRACKED
    assert c.request(0.2, rule=False, flags=ACK) == TRACKED
    assert c.request(3600.0, rule=False, flags=PSH | ACK) == TRACKED
    # a new connection (another source port) is judged by the rules alone
    assert Conversation(tracker, ENI_LAMBDA, cport=40001).request(3600.0, rule=False, flags=SYN) == DENIED


def test_an_untracked_flow_passes_on_its_rules_and_stores_nothing():
    # EC2 "Untracked connections": "The response traffic for an untracked flow is allowed based
    # on the inbound or outbound rule that permits the response traffic, not based on tracking
    # information." ... "An untracked flow of traffic is immediately interrupted if the rule
    # that enables the flow is removed or modified."
    tracker = ConnectionTracker()
    syn = packet(OTHER_HOST, DB, 50000, 22, flags=SYN)
    assert tracker.check(ENI_DB, syn, True, untracked=True).allowed.tolist() == [1]
    assert tracker.live == 0
    ack = packet(OTHER_HOST, DB, 50000, 22, flags=ACK, time=1.0)
    result = tracker.check(ENI_DB, ack, False, untracked=np.array([0], np.uint8))  # the rule is gone
    assert (result.allowed.tolist(), result.tracked.tolist()) == ([0], [0])
    # a flow that was tracked stays so, whatever the rules now say
    tracker.check(ENI_DB, packet(OTHER_HOST, DB, 50001, 22, flags=SYN, time=2.0), True)
    later = tracker.check(ENI_DB, packet(OTHER_HOST, DB, 50001, 22, flags=ACK, time=3.0), True, untracked=True)
    assert later.tracked.tolist() == [1]


def test_inbound_packet_of_flow_never_allowed_is_denied():
    tracker = ConnectionTracker()
    c = Conversation(tracker, ENI_DB, client=OTHER_HOST, server=DB)
    assert c.request(0.0, rule=False, flags=SYN) == DENIED
    assert c.reply(0.1, rule=False, flags=SYN | ACK) == DENIED
    assert tracker.live == 0


def test_flows_are_per_eni():
    tracker = ConnectionTracker()
    assert Conversation(tracker, ENI_LAMBDA).request(0.0, rule=True, flags=SYN) == ALLOWED_NEW
    # the same 5-tuple at another ENI's security group is not tracked there
    assert Conversation(tracker, ENI_DB).reply(0.1, rule=False) == DENIED
    assert Conversation(tracker, ENI_LAMBDA).reply(0.1, rule=False) == TRACKED


def test_rows_of_one_batch_see_flows_opened_by_earlier_rows():
    tracker = ConnectionTracker()
    rows = batch(packet(LAMBDA, DB, 40000, 5432, TCP, SYN, 0.0),
                 packet(DB, LAMBDA, 5432, 40000, TCP, SYN | ACK, 0.1),
                 packet(LAMBDA, DB, 40000, 5432, TCP, RST, 0.2),
                 packet(DB, LAMBDA, 5432, 40000, TCP, ACK, 0.3))
    r = tracker.check(np.array([0, 0, 0, 0], dtype=np.int32), rows, np.array([1, 0, 0, 0], dtype=np.uint8))
    assert isinstance(r, TrackResult)
    assert r.allowed.tolist() == [1, 1, 1, 0]
    assert r.tracked.tolist() == [0, 1, 1, 0]


def test_udp_flow_without_reply_expires_after_30_s():
    tracker = ConnectionTracker()
    c = Conversation(tracker, ENI_LAMBDA, sport=53, proto=UDP)
    assert c.request(100.0, rule=True) == ALLOWED_NEW
    assert c.request(129.5, rule=False) == TRACKED  # one-way traffic refreshes the 30 s deadline
    assert c.reply(159.4, rule=False) == TRACKED
    c2 = Conversation(tracker, ENI_LAMBDA, cport=40001, sport=53, proto=UDP)
    assert c2.request(200.0, rule=True) == ALLOWED_NEW
    assert c2.reply(230.0, rule=False) == DENIED  # 30 s idle: gone (live while now < deadline)


def test_udp_flow_lives_180_s_once_replied():
    tracker = ConnectionTracker()
    c = Conversation(tracker, ENI_LAMBDA, sport=53, proto=UDP)
    assert c.request(0.0, rule=True) == ALLOWED_NEW
    assert c.reply(10.0, rule=False) == TRACKED  # now a stream
    # (times with an exact binary form: liveness is exactly now < last packet + timeout)
    assert c.request(189.5, rule=False) == TRACKED  # 179.5 s later
    assert c.reply(369.5, rule=False) == DENIED  # 180 s idle


def test_tcp_established_flow_lasts_5_days_idle_and_unanswered_syn_60_s():
    tracker = ConnectionTracker()
    c = Conversation(tracker, ENI_LAMBDA)
    assert c.request(0.0, rule=True, flags=SYN) == ALLOWED_NEW
    assert c.reply(1.0, rule=False, flags=SYN | ACK) == TRACKED
    assert c.request(1.0 + 431_999.0, rule=False) == TRACKED
    assert c.reply(1.0 + 431_999.0 + 432_000.0, rule=False) == DENIED
    lonely = Conversation(tracker, ENI_LAMBDA, cport=40001)
    assert lonely.request(0.0 + 1e6, rule=True, flags=SYN) == ALLOWED_NEW
    assert lonely.request(59.0 + 1e6, rule=False, flags=SYN) == TRACKED  # a SYN retry
    assert lonely.reply(119.0 + 1e6, rule=False, flags=SYN | ACK) == DENIED  # 60 s unanswered


def test_rst_ends_tcp_flow_at_once():
    tracker = ConnectionTracker()
    c = Conversation(tracker, ENI_LAMBDA)
    c.request(0.0, rule=True, flags=SYN)
    c.reply(0.1, rule=False, flags=SYN | ACK)
    assert c.reply(0.2, rule=False, flags=RST) == TRACKED  # the RST itself passes
    assert c.request(0.3, rule=False, flags=ACK) == DENIED
    assert tracker.live == 0
    assert tracker.counters() == {"created": 1, "expired": 0, "closed": 1}


def test_rst_allowed_by_rules_opens_nothing():
    tracker = ConnectionTracker()
    c = Conversation(tracker, ENI_LAMBDA)
    assert c.request(0.0, rule=True, flags=RST | ACK) == ALLOWED_NEW
    assert tracker.live == 0


def test_fin_both_ways_lingers_120_s_and_a_new_syn_is_judged_by_the_rules():
    tracker = ConnectionTracker()
    c = Conversation(tracker, ENI_LAMBDA)
    c.request(0.0, rule=True, flags=SYN)
    c.reply(0.1, rule=False, flags=SYN | ACK)
    assert c.request(10.0, rule=False, flags=FIN | ACK) == TRACKED
    assert c.reply(10.1, rule=False, flags=FIN | ACK) == TRACKED
    assert tracker.flows()["bits"].tolist() == [SEEN_A | SEEN_B | FIN_A | FIN_B]
    assert c.request(10.2, rule=False, flags=ACK) == TRACKED  # the last ACK
    assert c.request(20.0, rule=False, flags=SYN) == DENIED  # tuple reuse: rules decide
    c.request(30.0, rule=True, flags=SYN)
    c.reply(30.1, rule=False, flags=SYN | ACK)
    c.request(40.0, rule=False, flags=FIN | ACK)
    c.reply(40.0, rule=False, flags=FIN | ACK)
    assert c.reply(159.5, rule=False, flags=ACK) == TRACKED
    assert c.reply(279.5, rule=False, flags=ACK) == DENIED  # 120 s linger since the last packet


def test_forget_drops_every_flow_of_a_deleted_eni():
    tracker = ConnectionTracker()
    for port in range(100):
        Conversation(tracker, ENI_LAMBDA, cport=40000 + port).request(0.0, rule=True, flags=SYN)
    Conversation(tracker, ENI_DB).request(0.0, rule=True, flags=SYN)
    assert tracker.forget(ENI_LAMBDA) == 100
    assert tracker.live == 1
    assert Conversation(tracker, ENI_LAMBDA, cport=40007).reply(1.0, rule=False) == DENIED
    assert Conversation(tracker, ENI_DB).reply(1.0, rule=False) == TRACKED


def test_rows_without_a_security_group_pass_untracked_and_store_nothing():
    tracker = ConnectionTracker()
    rows = batch(packet(LAMBDA, DB, 40000, 5432, TCP, SYN, 0.0), packet(DB, LAMBDA, 5432, 40000, TCP, ACK, 0.1))
    r = tracker.check(np.array([-1, -1], dtype=np.int32), rows, np.array([False, False]))
    assert r.allowed.tolist() == [1, 1] and r.tracked.tolist() == [0, 0]
    assert tracker.live == 0


def test_one_eni_and_one_verdict_for_a_whole_batch():
    tracker = ConnectionTracker()
    rows = batch(packet(LAMBDA, DB, 40000, 5432, TCP, SYN, 0.0), packet(DB, LAMBDA, 5432, 40000, TCP, ACK, 0.1))
    r = tracker.check(ENI_DB, rows, True)
    assert r.allowed.tolist() == [1, 1] and r.tracked.tolist() == [0, 1]


def test_icmp_echo_reply_matches_its_request_by_identifier():
    tracker = ConnectionTracker()
    req = packet(LAMBDA, DB, 77, 0, ICMP, ICMP_ECHO_REQUEST, 0.0)
    assert one(tracker, ENI_LAMBDA, req, True) == ALLOWED_NEW
    assert one(tracker, ENI_LAMBDA, packet(DB, LAMBDA, 0, 77, ICMP, ICMP_ECHO_REPLY, 1.0), False) == TRACKED
    assert one(tracker, ENI_LAMBDA, packet(DB, LAMBDA, 0, 78, ICMP, ICMP_ECHO_REPLY, 1.0), False) == DENIED
    assert one(tracker, ENI_LAMBDA, packet(DB, LAMBDA, 0, 77, ICMP, ICMP_ECHO_REPLY, 61.0), False) == DENIED


def test_icmp_other_than_echo_is_judged_by_the_rules_alone():
    tracker = ConnectionTracker()
    unreachable = packet(DB, LAMBDA, 0, 0, ICMP, 3, 0.0)
    assert one(tracker, ENI_LAMBDA, unreachable, True) == ALLOWED_NEW
    assert one(tracker, ENI_LAMBDA, unreachable, False) == DENIED
    assert tracker.live == 0


def test_other_protocols_are_tracked_by_addresses_only_for_600_s():
    tracker = ConnectionTracker()
    assert one(tracker, ENI_LAMBDA, packet(LAMBDA, DB, 0, 0, GRE, 0, 0.0), True) == ALLOWED_NEW
    assert one(tracker, ENI_LAMBDA, packet(DB, LAMBDA, 9, 9, GRE, 0, 599.0), False) == TRACKED
    assert one(tracker, ENI_LAMBDA, packet(DB, LAMBDA, 0, 0, 50, 0, 599.0), False) == DENIED  # ESP
    assert one(tracker, ENI_LAMBDA, packet(DB, LAMBDA, 0, 0, GRE, 0, 1199.0), False) == DENIED


def test_time_is_clamped_to_never_go_back():
    tracker = ConnectionTracker(ConnectionTrackingConfiguration(udp=30.0))
    c = Conversation(tracker, ENI_LAMBDA, sport=53, proto=UDP)
    c.request(100.0, rule=True)
    assert c.request(50.0, rule=False) == TRACKED  # taken as t=100: refreshes to 130
    assert tracker.now == 100.0
    assert c.request(129.9, rule=False) == TRACKED
    assert c.request(float("nan"), rule=False) == TRACKED  # NaN takes the clock
    assert tracker.now == 129.9


def test_expire_reaps_idle_flows_and_makes_live_exact():
    tracker = ConnectionTracker()
    Conversation(tracker, ENI_LAMBDA, sport=53, proto=UDP).request(0.0, rule=True)
    Conversation(tracker, ENI_LAMBDA).request(0.0, rule=True, flags=SYN)
    assert tracker.expire(30.0) == 1  # the UDP flow
    assert tracker.live == 1
    assert tracker.expire(10.0) == 0  # the clock does not go back
    assert tracker.now == 30.0
    assert tracker.counters()["expired"] == 1


def test_configured_timeouts_apply():
    tracker = ConnectionTracker(ConnectionTrackingConfiguration(tcp_established=350.0))
    c = Conversation(tracker, ENI_LAMBDA)
    c.request(0.0, rule=True, flags=SYN)
    c.reply(0.0, rule=False, flags=SYN | ACK)
    assert c.request(349.0, rule=False) == TRACKED
    assert c.request(699.0, rule=False) == DENIED


def test_table_grows_under_load_and_reuses_slots_of_dead_flows():
    tracker = ConnectionTracker(capacity=16)
    n = 5000
    rows = packets(n)
    rows["src_ip"], rows["dst_ip"] = ip(LAMBDA), ip(DB)
    rows["src_port"] = 1024 + np.arange(n)
    rows["dst_port"] = 53
    rows["proto"] = UDP
    r = tracker.check(ENI_LAMBDA, rows, True)
    assert r.allowed.all() and not r.tracked.any()
    assert tracker.live == n and tracker.capacity >= n
    cap = tracker.capacity
    replies = rows.copy()
    replies["src_ip"], replies["dst_ip"] = rows["dst_ip"], rows["src_ip"]
    replies["src_port"], replies["dst_port"] = rows["dst_port"], rows["src_port"]
    assert tracker.check(ENI_LAMBDA, replies, False).tracked.all()
    # many generations of short flows, each dead before the next: the slab does not grow
    for gen in range(1, 20):
        rows["time"] = gen * 1000.0
        rows["dst_port"] = 1000 + gen
        tracker.check(ENI_LAMBDA, rows, True)
    assert tracker.capacity == cap
    assert tracker.memory_bytes < 64 * cap
    tracker.expire(100_000.0)
    assert tracker.live == 0


def test_memory_is_given_back_when_flows_expire_or_their_eni_is_deleted():
    tracker = ConnectionTracker(capacity=16)
    rows = packets(20_000)
    rows["src_ip"], rows["dst_ip"] = ip(LAMBDA), ip(DB) + np.arange(20_000) // 1000
    rows["src_port"], rows["dst_port"] = 1024 + np.arange(20_000) % 1000, 53
    rows["proto"] = UDP
    tracker.check(np.arange(20_000, dtype=np.int32) % 2, rows, np.ones(20_000, np.uint8))
    big = tracker.memory_bytes
    assert tracker.forget(1) == 10_000
    assert tracker.memory_bytes == big  # half full: kept
    Conversation(tracker, ENI_DB, sport=53, proto=UDP).request(20.0, rule=True)
    tracker.expire(30.0)  # the 10,000 of ENI 0 idled out; one flow is left
    assert tracker.live == 1 and tracker.memory_bytes < big / 100
    assert Conversation(tracker, ENI_DB, sport=53, proto=UDP).reply(31.0, rule=False) == TRACKED


def test_the_flow_index_holds_one_entry_per_stored_flow_and_stays_at_most_half_full():
    tracker = ConnectionTracker(capacity=16)
    rows = packets(5000)
    rows["src_ip"], rows["dst_ip"] = ip(LAMBDA), ip(DB) + np.arange(5000) // 1000
    rows["src_port"], rows["dst_port"], rows["proto"] = 1024 + np.arange(5000) % 1000, 53, UDP
    empty = tracker.index_stats()
    assert (empty.entries, empty.probe_mean, empty.probe_max) == (0, 0.0, 0)
    tracker.check(np.arange(5000, dtype=np.int32) % 3, rows, np.ones(5000, np.uint8))
    full = tracker.index_stats()
    assert full.entries == tracker.live == 5000 and full.load <= 0.5 and full.buckets == 2 * tracker.capacity
    assert 1.0 <= full.probe_mean <= full.probe_max < 64  # a well-spread hash keeps probes short
    # flows removed one by one (an ENI deleted) leave no entry behind, and the rest still match
    forgotten = tracker.forget(1)
    assert tracker.index_stats().entries == tracker.live == 5000 - forgotten
    replies = rows.copy()
    replies["src_ip"], replies["dst_ip"] = rows["dst_ip"], rows["src_ip"]
    replies["src_port"], replies["dst_port"] = rows["dst_port"], rows["src_port"]
    enis = np.arange(5000, dtype=np.int32) % 3
    tracked = tracker.check(enis, replies, np.zeros(5000, np.uint8)).tracked
    assert (tracked == (enis != 1)).all()
    tracker.expire(1000.0)
    assert tracker.index_stats().entries == tracker.live == 0


def test_a_tracker_in_use_by_another_thread_is_refused():
    import threading
    tracker = ConnectionTracker()
    n = 2_000_000
    rows = packets(n)
    rows["proto"], rows["src_port"] = UDP, np.arange(n) % 65536
    rows["src_ip"] = np.arange(n) // 65536
    eni, rule = np.zeros(n, np.int32), np.ones(n, np.uint8)
    errors: list[Exception] = []

    def other() -> None:
        try:
            tracker.check(eni, rows, rule)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=other) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # whichever threads overlapped were refused cleanly; the table is intact
    assert all("in use by another thread" in str(e) for e in errors)
    assert tracker.live == n


def test_read_only_arrays_are_accepted():
    tracker = ConnectionTracker()
    rows = packet(LAMBDA, DB, 40000, 5432, TCP, SYN, 0.0)
    eni = np.zeros(1, dtype=np.int32)
    rule = np.ones(1, dtype=np.uint8)
    for a in (rows, eni, rule):
        a.flags.writeable = False
    assert tracker.check(eni, rows, rule).allowed.tolist() == [1]


def test_empty_batch():
    r = ConnectionTracker().check(np.zeros(0, np.int32), packets(0), np.zeros(0, np.uint8))
    assert len(r.allowed) == 0 and len(r.tracked) == 0


#### bad input ################################################################################

def good_args(n: int = 3):
    return np.zeros(n, np.int32), packets(n), np.ones(n, np.uint8)


@pytest.mark.parametrize("which, value, error, words", [
    (0, np.zeros(3, np.int64), TypeError, "eni must be a numpy array of int32"),
    (0, [0, 0, 0], TypeError, "eni must be a numpy array of int32, not list"),
    (0, np.zeros(4, np.int32), ValueError, "eni has 4 rows for 3 packets"),
    (0, np.zeros(6, np.int32)[::2], ValueError, "eni must be C-contiguous"),
    (0, np.array([0, -2, 0], np.int32), ValueError, "eni[1] is -2"),
    (0, np.zeros((3, 1), np.int32), ValueError, "eni must be one-dimensional"),
    (0, 2**31, ValueError, "eni must be an ENI index"),
    (0, "eni-1", TypeError, "eni must be"),
    (1, np.zeros(3, np.float64), TypeError, "packets must be a numpy array of hyperplane.records.PACKET"),
    (1, packets(6)[::2], ValueError, "packets must be C-contiguous"),
    (2, np.ones(3, np.int32), TypeError, "rule_allowed must be a numpy array of uint8 or bool"),
    (2, np.ones(2, np.uint8), ValueError, "rule_allowed has 2 rows for 3 packets"),
    (2, np.ones(6, np.uint8)[::2], ValueError, "rule_allowed must be C-contiguous"),
])
def test_bad_batch_input_names_the_argument(which, value, error, words):
    args = list(good_args())
    args[which] = value
    tracker = ConnectionTracker()
    with pytest.raises(error, match=words.replace("[", r"\[").replace("(", r"\(")):
        tracker.check(*args)
    assert tracker.live == 0


def test_compiled_core_refuses_mismatched_lengths_without_crashing():
    core = ConntrackCore(60, 432000, 120, 30, 180, 60, 600)
    eni, rows, rule = good_args()
    out = np.empty(3, np.uint8)
    with pytest.raises(ValueError, match="eni has 2 rows"):
        core.check(eni[:2], rows, rule, out, out)
    with pytest.raises(ValueError, match="rule_allowed has 1 rows"):
        core.check(eni, rows, rule[:1], out, out)
    with pytest.raises(ValueError, match="allowed and tracked"):
        core.check(eni, rows, rule, out[:1], out)
    with pytest.raises(ValueError):  # wrong dtype: Cython's buffer check
        core.check(eni.astype(np.int64), rows, rule, out, out)


@pytest.mark.parametrize("kw, words", [
    (dict(udp=0), "udp timeout must be a positive number"),
    (dict(tcp_established=math.inf), "tcp_established timeout"),
    (dict(icmp="60"), "icmp timeout"),
    (dict(other=True), "other timeout"),
])
def test_bad_configuration_names_the_field(kw, words):
    with pytest.raises(ValueError, match=words):
        ConnectionTrackingConfiguration(**kw)


def test_bad_tracker_arguments():
    with pytest.raises(ValueError, match="capacity"):
        ConnectionTracker(capacity=0)
    with pytest.raises(TypeError, match="config must be"):
        ConnectionTracker({"udp": 30})
    with pytest.raises(ValueError, match="eni must be an ENI index in 0"):
        ConnectionTracker().forget(-1)
    with pytest.raises(TypeError, match="now must be a number"):
        ConnectionTracker().expire("soon")


#### differential test against the reference model ############################################

HOSTS = [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")]
TCP_FLAGS = [SYN, SYN, SYN | ACK, ACK, ACK, PSH | ACK, FIN | ACK, FIN | ACK, FIN, RST, RST | ACK]
# time steps: exact deadlines (30, 60, 120, 180, 600 with short configured timeouts), jumps, and
# a step back (clamped)
STEPS = [0.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.5, 5.0, 9.0, 20.0, -1.0]
SHORT = ConnectionTrackingConfiguration(tcp_established=9.0, udp_stream=5.0, udp=2.0, other=4.0,
                                        tcp_opening=3.0, tcp_closing=2.0, icmp=3.0)


@st.composite
def rows_strategy(draw):
    """A batch: conversations among three hosts on a few ports, either direction, several ENIs."""
    n = draw(st.integers(1, 24))
    out = []
    for _ in range(n):
        proto = draw(st.sampled_from([TCP, TCP, TCP, UDP, UDP, ICMP, GRE]))
        a, b = draw(st.sampled_from(HOSTS)), draw(st.sampled_from(HOSTS))
        pa, pb = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2]))
        if proto == TCP:
            flags = draw(st.sampled_from(TCP_FLAGS))
        elif proto == ICMP:
            flags = draw(st.sampled_from([ICMP_ECHO_REQUEST, ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, 3]))
            pa, pb = (pa, 0) if flags == ICMP_ECHO_REQUEST else (0, pb) if flags == ICMP_ECHO_REPLY else (pa, pb)
        else:
            flags = 0
        out.append(dict(eni=draw(st.sampled_from([-1, 0, 0, 1, 7])), step=draw(st.sampled_from(STEPS)),
                        src=a, dst=b, sport=pa, dport=pb, proto=proto, flags=flags,
                        rule=draw(st.sampled_from([True, False, False]))))
    return out


op_strategy = st.one_of(
    rows_strategy().map(lambda rows: ("check", rows)),
    rows_strategy().map(lambda rows: ("check", rows)),
    rows_strategy().map(lambda rows: ("check", rows)),
    st.sampled_from([0, 1, 7]).map(lambda e: ("forget", e)),
    st.sampled_from([0.0, 1.0, 3.0, 10.0]).map(lambda dt: ("expire", dt)),
)
scenario_strategy = st.tuples(st.sampled_from([SHORT, ConnectionTrackingConfiguration()]),
                              st.lists(op_strategy, min_size=1, max_size=8))


def first_difference(scenario, mutant: str | None = None) -> str | None:
    """Run a scenario through the compiled tracker and the reference; describe the first
    disagreement, or None."""
    config, ops = scenario
    tracker = ConnectionTracker(config, capacity=1)  # 16 slots: growth and sweeps happen
    ref = ReferenceTracker(config, mutant)
    clock = 0.0
    for k, (kind, arg) in enumerate(ops):
        if kind == "check":
            recs = packets(len(arg))
            for i, r in enumerate(arg):
                clock += r["step"]
                recs[i] = (clock, r["src"], r["dst"], r["sport"], r["dport"], 40, r["proto"], r["flags"])
            eni = np.array([r["eni"] for r in arg], dtype=np.int32)
            rule = np.array([r["rule"] for r in arg])
            got = tracker.check(eni, recs, rule)
            want = ref.check(eni.tolist(), recs.tolist(), rule.tolist())
            if (got.allowed.tolist(), got.tracked.tolist()) != want:
                return f"op {k}: {(got.allowed.tolist(), got.tracked.tolist())} != {want}"
        elif kind == "forget":
            tracker.forget(arg)
            ref.forget(arg)
        else:
            clock += arg
            tracker.expire(clock)
            ref.expire(clock)
            if listing(tracker) != ref.listing():
                return f"op {k}: flows differ after expire"
    tracker.expire(clock)
    ref.expire(clock)
    if listing(tracker) != ref.listing():
        return "flows differ at the end"
    return None


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario_strategy)
def test_compiled_tracker_agrees_with_reference_model(scenario):
    assert first_difference(scenario) is None


@pytest.mark.parametrize("mutant", ["orientation", "no_refresh", "rst_kept", "no_eni"])
def test_differential_test_catches_a_broken_reference(mutant):
    """The differential test has teeth: each deliberate bug in the reference is found."""
    found = find(scenario_strategy, lambda s: first_difference(s, mutant) is not None,
                 settings=settings(max_examples=2000, deadline=None, database=None,
                                   phases=[Phase.generate]))  # no shrinking: finding is the point
    assert first_difference(found, mutant) is not None


def random_traffic(seed: int, n: int = 3000) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """Many conversations at once (hundreds of flows, so the index has long probe runs), in both
    directions, with RSTs, FINs, tuple reuse, several ENIs and time jumps."""
    rng = np.random.default_rng(seed)
    n_conv = int(np.exp(rng.uniform(np.log(8), np.log(600))))  # small tables wrap their probes often
    protos = rng.choice([TCP, TCP, TCP, UDP, UDP, ICMP, GRE], n_conv)
    a_ip = ip("10.0.0.0") + rng.integers(0, 40, n_conv)
    b_ip = ip("10.0.1.0") + rng.integers(0, 40, n_conv)
    a_port = rng.integers(1, 30, n_conv)
    b_port = rng.integers(1, 5, n_conv)
    conv = rng.integers(0, n_conv, n)
    back = rng.random(n) < 0.5
    recs = packets(n)
    recs["time"] = np.cumsum(rng.choice([0.0, 0.0, 0.01, 0.3, 1.0, 2.5, -1.0], n))
    recs["src_ip"] = np.where(back, b_ip[conv], a_ip[conv])
    recs["dst_ip"] = np.where(back, a_ip[conv], b_ip[conv])
    recs["src_port"] = np.where(back, b_port[conv], a_port[conv])
    recs["dst_port"] = np.where(back, a_port[conv], b_port[conv])
    recs["proto"] = protos[conv]
    tcp_flags = rng.choice(TCP_FLAGS, n)
    icmp_type = np.where(back, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST)
    icmp_type[rng.random(n) < 0.1] = 3
    recs["flags"] = np.where(recs["proto"] == TCP, tcp_flags, np.where(recs["proto"] == ICMP, icmp_type, 0))
    icmp = recs["proto"] == ICMP
    ident = a_port[conv]
    recs["src_port"][icmp] = np.where(back, 0, ident)[icmp]
    recs["dst_port"][icmp] = np.where(back, ident, 0)[icmp]
    eni = rng.choice(np.array([-1, 0, 1, 2, 3], dtype=np.int32), n, p=[0.05, 0.4, 0.3, 0.15, 0.1])
    rule = rng.random(n) < 0.3
    cuts = np.sort(rng.integers(0, n, int(rng.integers(1, 12))))
    return list(cuts), eni, recs, rule


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_compiled_tracker_agrees_with_reference_model_on_busy_traffic(seed):
    cuts, eni, recs, rule = random_traffic(seed)
    tracker = ConnectionTracker(SHORT, capacity=1)
    ref = ReferenceTracker(SHORT)
    start = 0
    for k, stop in enumerate(cuts + [len(recs)]):
        got = tracker.check(eni[start:stop], recs[start:stop], rule[start:stop])
        want = ref.check(eni[start:stop].tolist(), recs[start:stop].tolist(), rule[start:stop].tolist())
        assert (got.allowed.tolist(), got.tracked.tolist()) == want, f"batch {k}"
        start = stop
        if k % 3 == 1:
            tracker.forget(k % 4)
            ref.forget(k % 4)
        if k % 4 == 2:
            now = tracker.now + 1.0
            tracker.expire(now)
            ref.expire(now)
            assert listing(tracker) == ref.listing()
    tracker.expire(tracker.now)
    ref.expire(ref.now)
    assert listing(tracker) == ref.listing()
    assert tracker.counters()["created"] > 20


def test_a_timeout_below_the_clock_resolution_keeps_the_flow_for_its_own_instant():
    # at 2**44 s and later doubles are 2 ms or more apart: a 1 ms UDP timeout rounded to nearest
    # vanished (t + timeout == t), so the flow was dead as it opened and a reply in the same
    # instant was denied; deadlines are rounded up, so liveness is exactly now < t + timeout
    t = 2e13
    tracker = ConnectionTracker(ConnectionTrackingConfiguration(udp=0.001, udp_stream=0.001))
    c = Conversation(tracker, ENI_LAMBDA, sport=53, proto=UDP)
    assert c.request(t, rule=True) == ALLOWED_NEW
    assert tracker.flows()["expires"][0] == math.nextafter(t, math.inf)
    assert c.reply(t, rule=False) == TRACKED
    assert c.reply(math.nextafter(t, math.inf), rule=False) == DENIED
    assert tracker.expire(t + 1.0) == 0 and tracker.live == 0  # the late reply reaped it


@pytest.mark.parametrize("late", [math.inf, 1e16, math.nextafter(1e15, math.inf)])
def test_a_row_stamped_after_1e15_is_refused_naming_it_and_the_clock_stays(late):
    # an infinite clock never comes back: every flow opened afterwards would be dead at once
    tracker = ConnectionTracker()
    rows = batch(packet(LAMBDA, DB, 40000, 53, UDP, 0, 10.0), packet(LAMBDA, DB, 40001, 53, UDP, 0, late))
    with pytest.raises(ValueError, match=r"packets\[1\]\.time"):
        tracker.check(ENI_LAMBDA, rows, True)
    with pytest.raises(ValueError, match="now must be"):
        tracker.expire(late)
    assert tracker.now == -math.inf and tracker.live == 0
    assert one(tracker, ENI_LAMBDA, packet(LAMBDA, DB, 40000, 53, UDP, 0, 1e15), True) == ALLOWED_NEW
