"""The compiled connection table agrees with the plain-Python reference model, packet for packet.

Hypothesis draws small tables (few ports, few addresses, short timeouts) so that every corner is
reached often: exhaustion, overflow addresses that are pending, expiry between packets, RST and
FIN handling, reopened tuples, ICMP on gateways, unsupported protocols, unsolicited replies.
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


def packet_strategy(inside_ports: int):
    return st.tuples(
        st.sampled_from([0, 0, 0, 0.1, 0.4, 0.5, 1.0, 2.5, 7.0]),  # time step (0.5: exact deadlines)
        # "talk" follows a live connection, so whole conversations happen on one tuple
        st.sampled_from(["out", "out", "talk", "talk", "talk", "talk", "reply", "stray"]),
        st.sampled_from(PROTOS),
        st.sampled_from(FLAGS),
        st.integers(0, 2),  # inside host / translating address
        st.integers(1, inside_ports),  # inside port: few tuples, or enough to fill a destination
        st.sampled_from([0, 0, 0, 1]),  # remote host
        st.sampled_from([1, 1, 2]),  # remote port
        st.integers(0, 7),  # port offset of a stray inbound packet
        st.integers(0, 15),  # which live connection a reply or talk packet follows
        st.booleans(),  # talk: from the remote side
        st.integers(0, 9),  # talk: which protocol-shaped flags
    )


@st.composite
def scenarios(draw):
    nports = draw(st.integers(1, 8))
    # 1-2 inside ports keep conversations on few tuples; 8-12 fill a destination's ports, so port
    # draws run through all their random probes and into the linear scan
    inside_ports = draw(st.sampled_from([1, 2, 2, 8, 12]))
    return dict(
        gateway=draw(st.booleans()),
        ports=(1000, 1000 + nports - 1),
        max_per_address=draw(st.sampled_from([None, None, 1, 2, 5, 12])),
        per_destination=draw(st.integers(1, nports)),
        timeouts=Timeouts(*draw(st.lists(st.sampled_from([0.5, 1.0, 2.0, 5.0, 30.0]), min_size=5, max_size=5))),
        seed=draw(st.integers(0, 2**64 - 1)),
        n_addresses=draw(st.integers(0, 3)),
        grow=draw(st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 0.5, 3.0])), max_size=5)),
        use_grow=draw(st.booleans()),
        packets=draw(st.lists(packet_strategy(inside_ports), min_size=1, max_size=200)),
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


@settings(max_examples=1500, deadline=None)
@given(scenarios())
def test_compiled_table_matches_reference_model(sc):
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
        elif kind == "talk":  # nothing live to talk on: open something instead
            batch[i] = (t, 1 + host % 2, 50 + rhost, iport, rport, 40, proto, flags)
            kind = "out"
        elif kind != "out":
            batch[i] = (t, 50 + rhost, [100, 101, 200][host], rport, 1000 + xoff, 40, proto, flags)
        else:
            batch[i] = (t, 1 + host % 2, 50 + rhost, iport, rport, 40, proto, flags)
        direction[i] = kind != "out"
        expected.append(ref.process_one(batch[i], int(direction[i]), ref_grow))

    results, pos = [], 0
    for size in sc["chunks"] * (n // sum(sc["chunks"]) + 1):
        if pos >= n:
            break
        results.append(core.process(batch[pos:pos + size], direction[pos:pos + size]))
        pos += size
    status = np.concatenate([r.status for r in results])
    out = np.concatenate([r.packets for r in results])

    for i, (want_status, want_fields) in enumerate(expected):
        got = (int(out[i]["src_ip"]), int(out[i]["src_port"]), int(out[i]["dst_ip"]), int(out[i]["dst_port"]))
        assert (int(status[i]), got) == (int(want_status), want_fields), f"row {i}: {batch[i]}"

    core.expire(t)
    ref.expire(t)
    got_stats = [(s.live, s.peak, s.created, s.expired, s.closed, s.refused) for s in core.stats()]
    want_stats = [(s.live, s.peak, s.created, s.expired, s.closed, s.refused) for s in ref.stats]
    assert got_stats == want_stats
    assert {tuple(c.item()) for c in core.connections()} == ref.live_connections()
