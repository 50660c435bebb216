"""``fn.send`` is a batch of one: a scapy packet sent from a function gets the answer
``net.process`` gives the same packet as a PACKET row (verdict, where it ended, the translated
row, the trace, the NAT gateway's answer), and the packet a Result shows is the one as
delivered even when the script changes its own packet afterwards (the trace and the packet are
rendered when first read)."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert
from scapy.packet import Raw

import hyperplane as hp
from hyperplane.dataplane.walk import Origin
from hyperplane.records import PACKET, ip, ip_str
from hyperplane.trace import row_hops

# the example's cache, database, S3 (gateway endpoint), the internet, and an address in no subnet
PEERS = [("10.0.21.10", 6379), ("10.0.20.10", 5432), ("52.216.8.1", 443), ("93.184.216.34", 443),
         ("10.0.99.9", 80)]


@st.composite
def scripted_packets(draw) -> tuple:
    """What a test script builds: TCP, UDP or ICMP echo, with or without options and payload."""
    dst, port = draw(st.sampled_from(PEERS))
    options = [IPOption_Router_Alert()] if draw(st.integers(0, 5)) == 0 else []
    payload = draw(st.binary(max_size=24))
    kind = draw(st.sampled_from(["tcp", "tcp", "tcp", "tcp", "udp", "udp", "icmp"]))
    sport = draw(st.sampled_from([40000, 40001]))
    if kind == "tcp":
        flags = draw(st.sampled_from(["S", "S", "S", "A", "A", "PA", "FA", "R", "SA"]))
        tcp_options = draw(st.sampled_from([[], [], [("MSS", 1460)], [("NOP", None), ("WScale", 7)]]))
        l4 = TCP(sport=sport, dport=port, flags=flags, options=tcp_options)
    elif kind == "udp":
        l4 = UDP(sport=sport, dport=draw(st.sampled_from([port, 53])))
    else:
        l4 = ICMP(type=8, id=sport, seq=draw(st.integers(0, 9)))
    pkt = IP(dst=dst, options=options) / l4
    if payload:
        pkt = pkt / Raw(payload)
    return pkt, draw(st.integers(0, 2)), draw(st.sampled_from([0.0, 0.0, 1.0, 30.0]))


def row_of(pkt: IP, source: str, now: float) -> np.ndarray:
    """The PACKET row of a packet from ``source``, read off its serialized bytes."""
    wire = IP(bytes(pkt))
    rec = np.zeros(1, PACKET)
    rec["time"], rec["src_ip"], rec["dst_ip"] = now, ip(source), ip(wire.dst)
    rec["proto"], rec["length"] = wire.proto, len(bytes(pkt))
    l4 = wire.payload
    if isinstance(l4, TCP):
        rec["src_port"], rec["dst_port"], rec["flags"] = l4.sport, l4.dport, int(l4.flags)
    elif isinstance(l4, UDP):
        rec["src_port"], rec["dst_port"] = l4.sport, l4.dport
    else:  # an echo request: its identifier in the source port's place
        rec["flags"], rec["src_port"] = l4.type, l4.id
    return rec


@settings(max_examples=30, deadline=None)
@given(sent=st.lists(scripted_packets(), min_size=1, max_size=12))
def test_sending_scapy_packets_gives_what_processing_their_rows_gives(sent):
    by_send, by_batch = hp.Network.example(), hp.Network.example()
    orders = by_send.function("orders")
    for pkt, environment, wait in sent:
        by_send.advance(wait)
        by_batch.advance(wait)
        r = orders.send(pkt, environment=environment)
        source = by_batch.function("orders").environment_address(environment)
        row = row_of(pkt, source, by_batch.now)
        res = by_batch.process(row, Origin.FUNCTION, by_batch.pool_index("orders", environment))

        assert r.reason == hp.Reason(int(res.reason[0]))
        assert r.location == int(res.location[0])
        assert r.batch is not None
        assert r.batch.packets.tolist() == res.packets.tolist()  # the row, length included, as translated
        assert r.hops[1:] == row_hops(res, 0, by_batch.pool_names())  # after the invocation's hop
        assert r.hops[0].stage == "invoke"
        assert (r.answer is None) == (0 not in res.answers)
        if r.answer is not None:
            assert r.answer.reason == hp.Reason(int(res.answers[0].reason[0]))

        # the packet as delivered: the translated row's addresses and ports on the sent packet
        out, translated = r.packet, res.packets[0]
        assert out is not None
        assert (out.src, out.dst) == (ip_str(translated["src_ip"]), ip_str(translated["dst_ip"]))
        data = pkt[Raw].load if Raw in pkt else b""
        assert out.len == len(bytes(out)) == len(bytes(pkt))
        assert bytes(out).endswith(data) and out.proto == pkt.proto
        if isinstance(out.payload, (TCP, UDP)):
            assert (out.payload.sport, out.payload.dport) == (translated["src_port"], translated["dst_port"])
        assert IP(bytes(out)).chksum == out.chksum  # checksums recomputed for the new addresses


def test_a_result_shows_the_packet_as_sent_when_the_script_changes_its_packet_afterwards():
    net = hp.Network.example()
    orders = net.function("orders")
    pkt = IP(dst="93.184.216.34") / TCP(sport=40000, dport=443, flags="S") / Raw(b"hello")
    first = orders.send(pkt)
    pkt[TCP].flags = "R"
    pkt[TCP].dport = 80
    pkt[Raw].load = b"changed"
    second = orders.send(pkt)

    assert first.reason == hp.Reason.EXITED_TO_INTERNET
    sent = first.packet
    assert sent is not None
    assert sent.dst == "93.184.216.34"
    assert (sent[TCP].flags, sent[TCP].dport, sent[Raw].load) == ("S", 443, b"hello")
    assert first.batch is not None  # leaves from the NAT gateway's public address, not the environment's
    assert sent.src == ip_str(first.batch.packets[0]["src_ip"]) != orders.environment_address(0)
    assert second.packet is not None and second.packet[TCP].dport == 80
    assert str(first).count("\n") == len(first.hops) + 1  # the trace, then the packet


def test_a_result_copied_with_dataclasses_replace_keeps_its_trace_and_packet():
    net = hp.Network.example()
    r = net.function("orders").send(IP(dst="10.0.21.10") / TCP(sport=40000, dport=6379, flags="S"))
    unnamed = dataclasses.replace(r, hops=[dataclasses.replace(h, name="") for h in r.hops])
    assert unnamed.reason == r.reason == hp.Reason.DELIVERED
    assert [h.stage for h in unnamed.hops] == [h.stage for h in r.hops] and not any(h.name for h in unnamed.hops)
    assert unnamed.packet is not None and r.packet is not None and bytes(unnamed.packet) == bytes(r.packet)
