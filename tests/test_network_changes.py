"""Changing a running network's configuration: open connections survive, new ones follow the rules."""

import dataclasses

from scapy.layers.inet import IP, TCP

import hyperplane as hp
from hyperplane.reasons import Reason


def test_removing_sg_rule_keeps_open_connection_but_refuses_new_ones():
    net = hp.Network.example()
    orders = net.function("orders")
    opened = orders.send(IP(dst="10.0.21.10") / TCP(sport=41000, dport=6379, flags="S"))
    assert opened.reason == Reason.DELIVERED
    assert opened.reply(TCP(flags="SA")).reason == Reason.DELIVERED_TO_FUNCTION

    # the cache's group loses its only inbound rule
    cache = net.topology.security_groups["sg-cache"]
    net.apply(net.topology.replace(dataclasses.replace(cache, ingress=())))

    ack = orders.send(IP(dst="10.0.21.10") / TCP(sport=41000, dport=6379, flags="A"))
    assert ack.reason == Reason.DELIVERED  # tracked: the connection stays until it idles out
    assert any(h.stage == "sg-ingress" and "tracked" in h.detail for h in ack.hops)
    fresh = orders.send(IP(dst="10.0.21.10") / TCP(sport=41001, dport=6379, flags="S"))
    assert fresh.reason == Reason.SG_INGRESS_DENY


def test_adding_a_blackhole_route_stops_new_packets_and_keeps_nat_state():
    net = hp.Network.example()
    orders = net.function("orders")
    out = orders.send(IP(dst="93.184.216.34") / TCP(sport=42000, dport=443, flags="S"))
    assert out.reason == Reason.EXITED_TO_INTERNET
    private = net.topology.route_tables["rtb-private"]
    routes = tuple(dataclasses.replace(r, state="blackhole") if str(r.destination) == "0.0.0.0/0" else r
                   for r in private.routes)
    net.apply(net.topology.replace(dataclasses.replace(private, routes=routes)))
    assert orders.send(IP(dst="93.184.216.34") / TCP(sport=42001, dport=443, flags="S")).reason == \
        Reason.BLACKHOLE_ROUTE
    # the NAT gateway still holds the first connection: its reply still finds the way back
    assert out.reply(TCP(flags="SA")).reason == Reason.DELIVERED_TO_FUNCTION
