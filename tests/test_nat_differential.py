"""The compiled connection table agrees with the plain-Python reference model, packet for packet.

Hypothesis draws small tables (few ports, few addresses, short timeouts) so that every corner is
reached often: exhaustion, overflow addresses that are pending, expiry between packets, RST and
FIN handling, reopened tuples, ICMP on gateways, unsupported protocols, unsolicited replies.

The packet mix is shaped so that rare paths are common: "talk" packets follow a live connection
with protocol-shaped flags (whole handshakes and FIN exchanges happen on one tuple), "open"
packets pile fresh connections onto one destination (port draws exhaust their random probes),
bursts without time steps let connections accumulate, a few packets arrive out of order, and a
second run steps around the timer wheel's 1024 s lap. Live connections, with their state and
deadline, are compared after every chunk. Checked by hand to fail on mutants of the reference
(FIN_OUT + fin_in -> FIN_OUT instead of CLOSED; PROBES 8 -> 7; deadlines ``<=`` -> ``<``).
"""

import numpy as np
from hypothesis import given, settings, strategies as st

from hyperplane.nat import ConnectionTable, Timeouts
from hyperplane.records import packets
from nat_reference import ReferenceNat

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
    core = ConnectionTable(
        gateway=sc["gateway"], addresses=addresses, ports=sc["ports"],
        max_connections_per_address=sc["max_per_address"],
        max_connections_per_destination=sc["per_destination"], timeouts=sc["timeouts"], seed=sc["seed"],
        on_full=grower(sc["grow"]) if sc["use_grow"] else None)
    ref = ReferenceNat(gateway=sc["gateway"], ports=sc["ports"], max_per_address=sc["max_per_address"],
                       per_destination=sc["per_destination"], timeouts=sc["timeouts"], seed=sc["seed"])
    for a in addresses:
        ref.add_address(a)
    ref_grow = grower(sc["grow"]) if sc["use_grow"] else None

    # Build the batch while running the reference, so that replies can address live connections.
    n = len(sc["packets"])
    batch = packets(n)
    direction = np.zeros(n, np.uint8)
    expected = []
    ref_live = []  # the reference's live connections (with state and deadline) after each row
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
        expected.append(ref.process_one(batch[i], int(direction[i]), ref_grow))
        ref_live.append(ref.live_connections())

    results, core_live, pos = [], [], 0
    for size in sc["chunks"] * (n // sum(sc["chunks"]) + 1):
        if pos >= n:
            break
        results.append(core.process(batch[pos:pos + size], direction[pos:pos + size]))
        pos += size
        # states are compared at every chunk's end, not only at the end: a connection whose state
        # went wrong might otherwise expire before anything shows it
        core_live.append((min(pos, n) - 1,
                          {c for c in map(tuple, core.connections().tolist()) if c[-1] > core.now}))
    status = np.concatenate([r.status for r in results])
    out = np.concatenate([r.packets for r in results])

    for i, (want_status, want_fields) in enumerate(expected):
        got = (int(out[i]["src_ip"]), int(out[i]["src_port"]), int(out[i]["dst_ip"]), int(out[i]["dst_port"]))
        assert (int(status[i]), got) == (int(want_status), want_fields), f"row {i}: {batch[i]}"

    for row, live_after in core_live:
        assert live_after == ref_live[row], f"live connections after row {row}"

    core.expire(t)
    ref.expire(t)
    got_stats = [(s.live, s.peak, s.created, s.expired, s.closed, s.refused) for s in core.stats()]
    want_stats = [(s.live, s.peak, s.created, s.expired, s.closed, s.refused) for s in ref.stats]
    assert got_stats == want_stats
    assert {tuple(c.item()) for c in core.connections()} == ref.live_connections()
