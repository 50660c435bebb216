"""The compiled connection table agrees with the plain-Python reference model, packet for packet.

Hypothesis draws small tables (few ports, few addresses, short timeouts) so that every corner is
reached often: exhaustion, overflow addresses that are pending, expiry between packets, RST and
FIN handling, reopened tuples, ICMP on gateways, unsupported protocols, unsolicited replies.

The packet mix is shaped so that rare paths are common: "talk" packets follow a live connection
with protocol-shaped flags (whole handshakes and FIN exchanges happen on one tuple), "open"
packets pile fresh connections onto one destination (port draws exhaust their random probes),
bursts without time steps let connections accumulate, a few packets arrive out of order, and a
second run steps around the timer wheel's 1024 s lap. Live connections, with their state and
deadline, are compared after every row.

The reference does not predict ports (tests/nat_reference.py): the table is driven one row at a
time, and each port it gives a new connection is checked against the documented limits and then
adopted by the model. The same batch is then run again on a fresh table in random chunks: it
must give the same rows, counters and connections (the batch kernel's blocks and resumptions
change nothing). Checked by hand to fail on mutants of the reference (FIN_OUT + fin_in -> FIN_OUT
instead of CLOSED; a 55,000-style per-destination limit off by one; the UDP timeout taken from
``udp_replied``; deadlines ``<=`` -> ``<``).
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hyperplane.tables.nat import HYPERPLANE_ENI_TIMEOUTS, NAT_GATEWAY_TIMEOUTS, STATE_NAMES, ConnectionTable, Timeouts
from hyperplane.records import packets
from nat_reference import (DOCUMENTED_ENI_TIMEOUTS, DOCUMENTED_GATEWAY_TIMEOUTS, EPHEMERAL_PORTS,
                           HYPERPLANE_ENI_MAX_CONNECTIONS, NAT_GATEWAY_MAX_PER_DESTINATION, InvalidChoice,
                           ReferenceNat)

pytestmark = pytest.mark.slow  # heavy: -m 'not slow' skips it in a quick local loop; CI runs it

FLAGS = [0x02, 0x02, 0x02, 0x12, 0x10, 0x11, 0x11, 0x04, 0x01, 0x18, 8, 0]
PROTOS = [6, 6, 17, 17, 1, 47]

# Protocol-shaped flags for "talk" packets, which follow a live connection in either direction:
# mostly what a real conversation sends (handshake, data, FIN both ways), an RST now and then, and
# an outbound SYN that reopens a closed tuple.
TALK_FLAGS = {
    (6, 0): [0x10, 0x18, 0x11, 0x10, 0x11, 0x02, 0x18, 0x01, 0x04, 0x12],
    (6, 1): [0x12, 0x10, 0x11, 0x18, 0x11, 0x12, 0x10, 0x01, 0x14, 0x02],
    (17, 0): [0] * 10,
    (17, 1): [0] * 10,
    (1, 0): [8, 8, 8, 8, 8, 8, 8, 8, 0, 3],
    (1, 1): [0, 0, 0, 0, 0, 0, 0, 0, 8, 3],
}


# time steps (0.5: deadlines met exactly; -0.5: a packet out of order, clamped to the clock)
STEPS = [0, 0, 0, 0.1, 0.4, 0.5, 1.0, 2.5, 7.0, -0.5]
BURST_STEPS = [0, 0, 0, 0, 0, 0, 0, 0, 0.1, 0.5]  # connections pile up before any expires
TIMEOUTS = [0.5, 1.0, 2.0, 5.0, 30.0, 30.0]
# The timer wheel has one bucket per second for 1024 s: steps and timeouts around and beyond a lap
LAP_STEPS = [0, 0, 0, 0.5, 1.0, 300.0, 1023.5, 1024.0, 1100.0, 2100.0, -1500.0]
LAP_TIMEOUTS = [0.5, 30.0, 1000.0, 1024.0, 1500.0, 3000.0, 5000.5]


# "talk" follows a live connection, so whole conversations happen on one tuple; "open" opens a
# fresh inside tuple to the busiest destination, so that its ports fill up
KINDS = ["out", "out", "open", "talk", "talk", "talk", "talk", "reply", "stray"]
FILL_KINDS = ["open", "open", "open", "open", "out", "talk", "talk", "reply"]


def packet_strategy(inside_ports: int, steps: list[float], kinds: list[str]):
    return st.tuples(
        st.sampled_from(steps),  # time step
        st.sampled_from(kinds),
        st.sampled_from(PROTOS),
        st.sampled_from(FLAGS),
        st.integers(0, 2),  # inside host / translating address
        # inside port: few tuples, or enough to fill a destination (sampled_from is uniform, where
        # integers() would favour 1)
        st.sampled_from(range(1, inside_ports + 1)),
        st.sampled_from([0, 0, 0, 1]),  # remote host
        st.sampled_from([1, 1, 2]),  # remote port
        st.integers(0, 7),  # port offset of a stray inbound packet
        st.integers(0, 15),  # which live connection a reply or talk packet follows
        st.booleans(),  # talk: from the remote side
        st.integers(0, 9),  # talk: which protocol-shaped flags
    )


@st.composite
def scenarios(draw, laps: bool = False):
    nports = draw(st.integers(1, 8))
    # 1-2 inside ports keep conversations on few tuples; 8-12 let "out" packets fill a destination
    inside_ports = draw(st.sampled_from([1, 2, 2, 8, 12]))
    # a third of the scenarios fill one destination: a burst of fresh connections, each allowed
    # every port, so that port draws run through all their random probes and into the linear scan
    fill = draw(st.integers(0, 2)) == 0
    steps = BURST_STEPS if fill else draw(st.sampled_from([STEPS, STEPS, BURST_STEPS]))
    if laps:
        steps = LAP_STEPS
    kinds = FILL_KINDS if fill else KINDS
    return dict(
        gateway=draw(st.booleans()),
        ports=(1000, 1000 + nports - 1),
        max_per_address=draw(st.sampled_from([None, 12] if fill else [None, None, 1, 2, 5, 12])),
        per_destination=nports if fill else draw(st.one_of(st.just(nports), st.integers(1, nports))),
        timeouts=Timeouts(*draw(st.lists(st.sampled_from(LAP_TIMEOUTS if laps else TIMEOUTS), min_size=5,
                                             max_size=5))),
        seed=draw(st.integers(0, 2**64 - 1)),
        n_addresses=draw(st.sampled_from([0, 1, 1, 1, 2, 3])),
        grow=draw(st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 0.5, 3.0])), max_size=5)),
        use_grow=draw(st.booleans()),
        # hypothesis keeps lists short unless told: draw the length first, so that long
        # conversations and full destinations are common
        packets=draw(st.integers(1, 250).flatmap(
            lambda n: st.lists(packet_strategy(inside_ports, steps, kinds), min_size=n, max_size=n))),
        chunks=draw(st.lists(st.integers(1, 40), min_size=1, max_size=10)),
    )


def grower(plan):
    """An on_full callback that follows a drawn plan: add an address (maybe pending) or decline."""
    steps = iter(plan)
    spare = iter(range(200, 260))

    def on_full(table, now, status):
        add, delay = next(steps, (False, 0.0))
        if add:
            table.add_address(next(spare), now + delay)
        return add

    return on_full


@settings(max_examples=500, deadline=None)
@given(scenarios())
def test_compiled_table_matches_reference_model(sc):
    check_against_reference(sc)


@settings(max_examples=80, deadline=None)
@given(scenarios(laps=True))
def test_compiled_table_matches_reference_model_across_timer_wheel_laps(sc):
    check_against_reference(sc)


def check_against_reference(sc):
    addresses = [100 + i for i in range(sc["n_addresses"])]

    def table():
        return ConnectionTable(
            gateway=sc["gateway"], addresses=addresses, ports=sc["ports"],
            max_connections_per_address=sc["max_per_address"],
            max_connections_per_destination=sc["per_destination"], timeouts=sc["timeouts"], seed=sc["seed"],
            on_full=grower(sc["grow"]) if sc["use_grow"] else None)

    core = table()
    ref = ReferenceNat(gateway=sc["gateway"], ports=sc["ports"], max_per_address=sc["max_per_address"],
                       per_destination=sc["per_destination"], timeouts=sc["timeouts"])
    for a in addresses:
        ref.add_address(a)
    ref_grow = grower(sc["grow"]) if sc["use_grow"] else None

    # Build the batch row by row, running the table and the model side by side, so that replies
    # can address live connections (whose ports only the table knows).
    n = len(sc["packets"])
    batch = packets(n)
    direction = np.zeros(n, np.uint8)
    rows = []  # the table's (status, translated fields) per row
    t = 0.0
    for i, (dt, kind, proto, flags, host, iport, rhost, rport, xoff, which, inbound, talk) in enumerate(
            sc["packets"]):
        t += dt
        live = sorted(ref.live_connections())
        if kind == "talk" and live:
            in_ip, in_port, rem_ip, rem_port, cproto, x_ip, x_port, _, _ = live[which % len(live)]
            flags = TALK_FLAGS[(cproto, int(inbound))][talk]
            if inbound:
                batch[i] = (t, rem_ip, x_ip, rem_port, x_port, 40, cproto, flags)
            else:
                batch[i] = (t, in_ip, rem_ip, in_port, rem_port, 40, cproto, flags)
            kind = "reply" if inbound else "out"
        elif kind == "reply" and live:
            in_ip, in_port, rem_ip, rem_port, cproto, x_ip, x_port, _, _ = live[which % len(live)]
            batch[i] = (t, rem_ip, x_ip, rem_port, x_port, 40, cproto, flags)
        elif kind == "open" or kind == "talk":  # (nothing live to talk on: open something instead)
            proto = [6, 17, 1][host] if sc["gateway"] else [6, 17, 17][host]
            batch[i] = (t, 3, 50, 100 + i, 1, 40, proto, {6: 0x02, 17: 0, 1: 8}[proto])
            kind = "out"
        elif kind != "out":
            batch[i] = (t, 50 + rhost, [100, 101, 200][host], rport, 1000 + xoff, 40, proto, flags)
        else:
            batch[i] = (t, 1 + host % 2, 50 + rhost, iport, rport, 40, proto, flags)
        direction[i] = kind != "out"
        r = core.process(batch[i:i + 1], direction[i:i + 1])
        got = (int(r.status[0]), fields_of(r.packets[0]))
        rows.append(got)
        want_status, want_fields = ref.process_one(
            batch[i], int(direction[i]), lambda: (got[1][0], got[1][1]), ref_grow)
        assert got == (int(want_status), want_fields), f"row {i}: {batch[i]}"
        assert live_in(core) == ref.live_connections(), (
            f"live connections after row {i}: {batch[i]}: table {sorted(live_in(core) - ref.live_connections())}, "
            f"model {sorted(ref.live_connections() - live_in(core))}")

    core.expire(t)
    ref.expire(t)
    assert stats_of(core) == [(s.live, s.peak, s.created, s.expired, s.closed, s.refused) for s in ref.stats]
    assert live_in(core) == ref.live_connections()

    # the same batch in chunks: the batch kernel must not depend on where a batch is cut
    again, pos, results = table(), 0, []
    for size in sc["chunks"] * (n // sum(sc["chunks"]) + 1):
        if pos >= n:
            break
        results.append(again.process(batch[pos:pos + size], direction[pos:pos + size]))
        pos += size
    status = np.concatenate([r.status for r in results])
    out = np.concatenate([r.packets for r in results])
    assert [(int(status[i]), fields_of(out[i])) for i in range(n)] == rows
    again.expire(t)
    assert stats_of(again) == stats_of(core)
    assert live_in(again) == live_in(core)


def fields_of(row) -> tuple[int, int, int, int]:
    return (int(row["src_ip"]), int(row["src_port"]), int(row["dst_ip"]), int(row["dst_port"]))


def stats_of(table) -> list[tuple[int, ...]]:
    return [(s.live, s.peak, s.created, s.expired, s.closed, s.refused) for s in table.stats()]


def live_in(table) -> set[tuple]:
    """The table's live connections, states by name (dead ones not reaped yet left out)."""
    return {(*c[:7], STATE_NAMES[c[7]], c[8]) for c in map(tuple, table.connections().tolist())
            if c[-1] > table.now}


#### the model's checks of the table's choices can fail ###########################################


def one_address_model(**kw):
    args = dict(gateway=False, ports=(1000, 1003), max_per_address=None, per_destination=4,
                timeouts=Timeouts())
    args.update(kw)
    ref = ReferenceNat(**args)
    ref.add_address(100)
    return ref


def opening(t=0.0, sport=1):
    row = packets(1)[0]
    row["time"], row["src_ip"], row["dst_ip"], row["src_port"], row["dst_port"], row["proto"] = t, 3, 50, sport, 1, 17
    return row


@pytest.mark.parametrize("choice,problem", [
    ((100, 999), "outside"),  # below the table's port range
    ((100, 1004), "outside"),  # above it
    ((101, 1000), "first with room"),  # not the first address that has room
])
def test_reference_refuses_a_port_the_documents_do_not_allow(choice, problem):
    ref = one_address_model()
    with pytest.raises(InvalidChoice, match=problem):
        ref.process_one(opening(), 0, lambda: choice)


def test_reference_refuses_a_port_still_held_by_a_live_connection():
    ref = one_address_model()
    ref.process_one(opening(0.0, sport=1), 0, lambda: (100, 1000))
    with pytest.raises(InvalidChoice, match="still held"):
        ref.process_one(opening(29.0, sport=2), 0, lambda: (100, 1000))
    # once the first connection idled out (UDP: 30 s, SPEC §2) its port may be given again
    ref.process_one(opening(30.0, sport=3), 0, lambda: (100, 1000))


def test_reference_timeouts_are_the_documented_ones():
    # SPEC §2 / README: 350 s established, 120 s opening/closing, 30 s UDP, 180 s UDP with replies;
    # SPEC §4: a NAT gateway idles everything out after 350 s
    assert {k: getattr(HYPERPLANE_ENI_TIMEOUTS, k) for k in DOCUMENTED_ENI_TIMEOUTS} == DOCUMENTED_ENI_TIMEOUTS
    assert {k: getattr(NAT_GATEWAY_TIMEOUTS, k) for k in DOCUMENTED_GATEWAY_TIMEOUTS} == DOCUMENTED_GATEWAY_TIMEOUTS
    eni = ConnectionTable.hyperplane_eni([100])
    assert eni.max_connections_per_address == HYPERPLANE_ENI_MAX_CONNECTIONS and eni.ports == EPHEMERAL_PORTS
    nat = ConnectionTable.nat_gateway([100])
    assert nat.max_connections_per_destination == NAT_GATEWAY_MAX_PER_DESTINATION and nat.ports == EPHEMERAL_PORTS
