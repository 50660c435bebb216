"""The compiled label keys of a replay's verdicts (``hyperplane._core._verdicts``) against the plain
definition of what a verdict line's label depends on: where the packet ended, its reason,
whether it picked its connection up mid-stream, and its last hop (stage and the values that name
a resource or rule)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperplane._core import _verdicts, _walk
from hyperplane.records import ACK, FIN, PACKET, RST, SYN, TCP, UDP
from hyperplane.replay_verdicts import _KEPT
from hyperplane.tables.nat import NatStatus

V2N_OUT, NAT_OUT = _walk.STAGES.index("v2n_out"), _walk.STAGES.index("nat_out")
STAGES = [V2N_OUT, NAT_OUT, _walk.STAGES.index("v2n_in"), _walk.STAGES.index("sg_egress"),
          _walk.STAGES.index("route"), _walk.STAGES.index("nacl_in")]
STATUSES = [NatStatus.TRANSLATED, NatStatus.CREATED, NatStatus.NO_CONNECTION]

hop = st.tuples(st.sampled_from(STAGES), st.sampled_from(STATUSES), st.integers(-2, 3))
row = st.tuples(st.lists(hop, max_size=4), st.integers(-1, 2), st.sampled_from([1, 20, 30]),
                st.sampled_from([TCP, UDP]), st.sampled_from([ACK, SYN, SYN | ACK, FIN | ACK, RST, ACK | 0x08]))


def batch(rows):
    """A walked batch as the walker logs it: each row's hops in order, the packets as they left."""
    counts = [len(r[0]) for r in rows]
    first_hop = np.r_[0, np.cumsum(counts)].astype(np.int64)
    hops = np.zeros(int(first_hop[-1]), _walk.HOP)
    k = 0
    for i, (its_hops, *_) in enumerate(rows):
        for stage, status, value in its_hops:
            hops[k]["row"], hops[k]["stage"] = i, stage
            hops[k]["v"] = [value, status, value * 7, value + 1, -value, value * 3]
            k += 1
    packets = np.zeros(len(rows), PACKET)
    packets["proto"] = [r[3] for r in rows]
    packets["flags"] = [r[4] for r in rows]
    location = np.array([r[1] for r in rows], np.int32)
    reason = np.array([r[2] for r in rows], np.uint8)
    return hops, first_hop, packets, location, reason


def definition(hops, packets, location, reason, i):
    """A row's label key, from its definition: its location and reason; picked up when a V2N or
    NAT gateway hop of the row opened a connection (CREATED) for a TCP ACK without SYN, FIN or
    RST; the stage of its last hop (-1: none) and that hop's kept values (0 where not kept)."""
    mine = [h for h in hops if h["row"] == i]
    opened = any(h["stage"] in (V2N_OUT, NAT_OUT) and h["v"][1] == NatStatus.CREATED for h in mine)
    p = packets[i]
    picked = opened and p["proto"] == TCP and int(p["flags"]) & (SYN | ACK | FIN | RST) == ACK
    if not mine:
        return (int(location[i]), int(reason[i]), picked, -1, (0,) * 6)
    last = mine[-1]
    kept = tuple(int(v) if k else 0 for v, k in zip(last["v"], _KEPT[last["stage"]]))
    return (int(location[i]), int(reason[i]), picked, int(last["stage"]), kept)


@given(st.lists(st.lists(row, max_size=40), min_size=1, max_size=3))
def test_rows_share_a_label_key_exactly_when_their_labels_depend_on_the_same_values(batches):
    keys = _verdicts.LabelKeys(_KEPT.view(np.uint8))
    seen: list[tuple] = []  # every key so far, in order of first appearance (one table, several chunks)
    for rows in batches:
        hops, first_hop, packets, location, reason = batch(rows)
        codes = keys.codes(hops, first_hop, packets, location, reason)
        for i in range(len(rows)):
            expected = definition(hops, packets, location, reason, i)
            if expected not in seen:
                seen.append(expected)
            assert codes[i] == seen.index(expected)
            assert keys.key(int(codes[i])) == expected
    assert len(keys) == len(seen)


@given(st.lists(st.integers(0, 9), max_size=60))
def test_first_appearance_numbers_the_distinct_codes_in_the_order_they_first_appear(codes):
    distinct, inverse = _verdicts.first_appearance(np.array(codes, np.int32), 10)
    expected = list(dict.fromkeys(codes))
    assert distinct.tolist() == expected
    assert [expected[k] for k in inverse] == codes


def test_bad_batches_are_refused_with_a_clear_error():
    keys = _verdicts.LabelKeys(_KEPT.view(np.uint8))
    hops, first_hop, packets, location, reason = batch([([(V2N_OUT, 1, 0)], 0, 1, TCP, ACK)])
    with pytest.raises(TypeError, match="HOP"):
        keys.codes(hops.view(np.uint8), first_hop, packets, location, reason)
    with pytest.raises(ValueError, match="one batch"):
        keys.codes(hops, first_hop, packets, location[:0], reason)
    with pytest.raises(ValueError, match="does not fit the hop log"):
        keys.codes(hops[:0], first_hop, packets, location, reason)
    hops["stage"] = len(_walk.STAGES)
    with pytest.raises(ValueError, match="hop 0 has stage"):
        keys.codes(hops, first_hop, packets, location, reason)
    with pytest.raises(IndexError, match="no label key 0"):
        keys.key(0)
    with pytest.raises(ValueError, match="code 3 .row 0. is not in 0..1"):
        _verdicts.first_appearance(np.array([3], np.int32), 2)


# -- conversations ------------------------------------------------------------------------------

endpoint = st.tuples(st.sampled_from([0x0A000001, 0x0A000002, 0xAC100505]), st.sampled_from([53, 443, 20000]))
packet = st.tuples(endpoint, endpoint, st.sampled_from([TCP, UDP]), st.booleans(), st.booleans(), st.booleans(),
                   st.integers(0, 5))


@given(st.lists(st.lists(packet, max_size=30), max_size=3))
def test_conversations_follow_both_directions_of_a_five_tuple_across_chunks(chunks):
    """A conversation is the two directions of a 5-tuple; each side is marked when one of its
    packets is delivered; its failure is that of its first refused packet; they are numbered in
    the order they first appear (the definition, on Python tuples)."""
    table = _verdicts.ConversationTable()
    expected: dict[tuple, dict] = {}  # a frozenset of the two endpoints and the protocol -> outcome
    for rows in chunks:
        packets = np.zeros(len(rows), PACKET)
        for i, ((sip, sport), (dip, dport), proto, *_) in enumerate(rows):
            packets[i]["src_ip"], packets[i]["src_port"], packets[i]["dst_ip"], packets[i]["dst_port"] = \
                sip, sport, dip, dport
            packets[i]["proto"] = proto
        counted = np.array([r[3] for r in rows], np.uint8)
        delivered = np.array([r[4] for r in rows], np.uint8)
        picked = np.array([r[5] for r in rows], np.uint8)
        failure = np.array([r[6] for r in rows], np.int32)
        failed_rows = []
        for i, (src, dst, proto, count, ok, pick, code) in enumerate(rows):
            if not count:
                continue
            c = expected.setdefault((min(src, dst), max(src, dst), proto),
                                    {"sides": set(), "picked": False, "failure": -1})
            if ok:
                c["sides"].add("A" if src < dst else "B")
            elif c["failure"] < 0:
                c["failure"] = code
                failed_rows.append(i)
            c["picked"] |= pick
        assert table.add(packets, counted, delivered, picked, failure).tolist() == failed_rows
    seen, failure = table.outcomes()
    assert len(table) == len(expected)
    for k, c in enumerate(expected.values()):
        assert bool(seen[k] & 1) == ("A" in c["sides"]) and bool(seen[k] & 2) == ("B" in c["sides"])
        assert bool(seen[k] & 4) == c["picked"] and failure[k] == c["failure"]


def test_a_refused_packet_needs_a_failure_code():
    packets = np.zeros(2, PACKET)
    one = np.ones(2, np.uint8)
    with pytest.raises(ValueError, match="row 1 was refused and has no failure code"):
        _verdicts.ConversationTable().add(packets, one, np.array([1, 0], np.uint8), one, np.array([0, -1], np.int32))
    with pytest.raises(ValueError, match="one value per packet"):
        _verdicts.ConversationTable().add(packets, one[:1], one, one, np.zeros(2, np.int32))


# -- the capture's own addresses ------------------------------------------------------------------

address = st.sampled_from([0xA9FE0001, 0xA9FE0A0B, 0xAC10050A, 0x0A000105, 0x08080808])


@given(st.lists(st.tuples(address, address, address, address), max_size=30))
def test_outputs_show_the_capture_address_wherever_the_walk_used_an_internal_one(rows):
    """The definition: in each of the source and destination fields, an address of the
    execution environments' network (169.254.0.0/16 here) is replaced by the capture's own
    address in that field; the others are the packet's as it left."""
    capture, out = np.zeros(len(rows), PACKET), np.zeros(len(rows), PACKET)
    for i, (cs, cd, os_, od) in enumerate(rows):
        capture[i]["src_ip"], capture[i]["dst_ip"], out[i]["src_ip"], out[i]["dst_ip"] = cs, cd, os_, od
    out["src_port"] = 7
    before = out.copy()
    shown = _verdicts.capture_addresses(capture, out, 0xA9FE0000, 0xFFFF0000)
    internal = lambda a: a >> 16 == 0xA9FE  # noqa: E731
    assert [(int(r["src_ip"]), int(r["dst_ip"])) for r in shown] == [
        (cs if internal(os_) else os_, cd if internal(od) else od) for cs, cd, os_, od in rows]
    assert (shown["src_port"] == 7).all() and (out == before).all()  # the walk's packets stay as they left
    if not any(internal(os_) or internal(od) for _, _, os_, od in rows):
        assert shown is out  # nothing to show otherwise: no copy
