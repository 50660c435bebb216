"""Security-group flows AWS does not track: open rules both ways, and what a rule change does to them.

EC2 user guide, "Security group connection tracking", *Untracked connections*: "If a security
group rule permits TCP or UDP flows for all traffic (0.0.0.0/0 or ::/0) and there is a
corresponding rule in the other direction that permits all response traffic (0.0.0.0/0 or ::/0)
for any port (0-65535), then that flow of traffic is not tracked, unless it is part of an
automatically tracked connection. The response traffic for an untracked flow is allowed based on
the inbound or outbound rule that permits the response traffic, not based on tracking
information."
"""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Network

import numpy as np
from scapy.layers.inet import ICMP, IP, TCP

import hyperplane as hp
from hyperplane.loaders import parse_topology
from hyperplane.reasons import Reason
from hyperplane.records import SYN, ip

CLIENT = "198.51.100.7"
WEB_PUBLIC = "54.0.0.10"


def _network(ingress: list[dict], egress: list[dict] | None = None, **extra) -> hp.Network:
    """eni-web (10.0.0.10, public 54.0.0.10) in a public subnet, its group sg-web with
    ``ingress`` and ``egress`` (None: a new group's default, all traffic to 0.0.0.0/0); eni-db
    (10.0.1.20) in a private subnet whose default route goes through nat-a."""
    web: dict = {"id": "sg-web", "vpc_id": "vpc-t", "ingress": ingress}
    if egress is not None:
        web["egress"] = egress
    document = {
        "vpcs": [{"id": "vpc-t", "cidrs": ["10.0.0.0/16"]}],
        "subnets": [{"id": "subnet-pub", "vpc_id": "vpc-t", "cidr": "10.0.0.0/24", "availability_zone": "us-east-1a",
                     "route_table_id": "rtb-pub"},
                    {"id": "subnet-priv", "vpc_id": "vpc-t", "cidr": "10.0.1.0/24", "availability_zone": "us-east-1a",
                     "route_table_id": "rtb-priv"}],
        "route_tables": [{"id": "rtb-pub", "vpc_id": "vpc-t", "routes": [{"destination": "0.0.0.0/0", "target": "igw-t"}]},
                         {"id": "rtb-priv", "vpc_id": "vpc-t", "routes": [{"destination": "0.0.0.0/0", "target": "nat-a"}]}],
        "internet_gateways": [{"id": "igw-t", "vpc_id": "vpc-t"}],
        "nat_gateways": [{"id": "nat-a", "subnet_id": "subnet-pub", "connectivity_type": "public",
                          "private_ip": "10.0.0.5", "network_interface_id": "eni-nat-a",
                          "elastic_ips": [{"allocation_id": "eipalloc-a", "public_ip": "54.0.0.5"}]}],
        "security_groups": [web, *extra.pop("security_groups", [])],
        "network_interfaces": [{"id": "eni-web", "subnet_id": "subnet-pub", "private_ip": "10.0.0.10",
                                "public_ip": WEB_PUBLIC, "security_group_ids": ["sg-web"]},
                               *extra.pop("network_interfaces", [])],
        **extra,
    }
    return hp.Network(parse_topology(document), ready=True)


def _without_inbound(net: hp.Network, group: str) -> None:
    sg = net.topology.security_groups[group]
    net.apply(net.topology.replace(dataclasses.replace(sg, ingress=())))


def _sg_hop(result, stage: str):
    return next(h for h in result.hops if h.stage == stage)


def test_ssh_open_to_all_with_the_default_egress_is_untracked_and_removing_the_rule_cuts_it_at_once():
    # AWS: "An untracked flow of traffic is immediately interrupted if the rule that enables the
    # flow is removed or modified. For example, if you have an open (0.0.0.0/0) outbound rule,
    # and you remove a rule that allows all (0.0.0.0/0) inbound SSH (TCP port 22) traffic to the
    # instance (or modify it such that the connection would no longer be permitted), your
    # existing SSH connections to the instance are immediately dropped."
    net = _network([{"protocol": "tcp", "ports": "22", "cidr": "0.0.0.0/0"}])
    syn = net.send(IP(src=CLIENT, dst=WEB_PUBLIC) / TCP(sport=50000, dport=22, flags="S"))
    assert syn.reason == Reason.DELIVERED
    assert "untracked flow" in _sg_hop(syn, "sg-ingress").detail
    answer = syn.reply(TCP(flags="SA"))
    assert answer.reason == Reason.EXITED_TO_INTERNET  # the open outbound rule lets it out
    assert "untracked flow" in _sg_hop(answer, "sg-egress").detail
    assert net._conntrack.live == 0  # nothing remembered on eni-web

    _without_inbound(net, "sg-web")
    ack = net.send(IP(src=CLIENT, dst=WEB_PUBLIC) / TCP(sport=50000, dport=22, flags="A"))
    assert ack.reason == Reason.SG_INGRESS_DENY


def test_narrowing_the_open_rule_so_that_it_no_longer_admits_the_client_cuts_the_flow_too():
    net = _network([{"protocol": "tcp", "ports": "22", "cidr": "0.0.0.0/0"}])
    assert net.send(IP(src=CLIENT, dst=WEB_PUBLIC) / TCP(sport=50001, dport=22, flags="S")).delivered
    sg = net.topology.security_groups["sg-web"]
    narrowed = dataclasses.replace(sg.ingress[0], cidr=IPv4Network("203.0.113.1/32"))
    net.apply(net.topology.replace(dataclasses.replace(sg, ingress=(narrowed,))))
    ack = net.send(IP(src=CLIENT, dst=WEB_PUBLIC) / TCP(sport=50001, dport=22, flags="A"))
    assert ack.reason == Reason.SG_INGRESS_DENY


def test_ssh_from_one_address_is_tracked_and_survives_the_rule_removal():
    # AWS: "On the other hand, if you have a narrower inbound rule that initially allows an SSH
    # connection (meaning that the connection was tracked), but change that rule to no longer
    # allow new connections from the address of the current SSH client, the existing SSH
    # connection is not interrupted because it is tracked."
    net = _network([{"protocol": "tcp", "ports": "22", "cidr": "203.0.113.1/32"}])
    syn = net.send(IP(src="203.0.113.1", dst=WEB_PUBLIC) / TCP(sport=50000, dport=22, flags="S"))
    assert syn.reason == Reason.DELIVERED
    assert "untracked" not in _sg_hop(syn, "sg-ingress").detail
    assert syn.reply(TCP(flags="SA")).reason == Reason.EXITED_TO_INTERNET

    _without_inbound(net, "sg-web")
    ack = net.send(IP(src="203.0.113.1", dst=WEB_PUBLIC) / TCP(sport=50000, dport=22, flags="A"))
    assert ack.reason == Reason.DELIVERED
    assert "tracked connection" in _sg_hop(ack, "sg-ingress").detail
    fresh = net.send(IP(src="203.0.113.1", dst=WEB_PUBLIC) / TCP(sport=50002, dport=22, flags="S"))
    assert fresh.reason == Reason.SG_INGRESS_DENY


def test_icmp_is_always_tracked():
    # AWS (the example of the same section): "ICMP traffic is always tracked."
    net = _network([{"protocol": "icmp", "cidr": "0.0.0.0/0"}])
    ping = net.send(IP(src=CLIENT, dst=WEB_PUBLIC) / ICMP(type=8, id=7, seq=1))
    assert ping.reason == Reason.DELIVERED
    assert "untracked" not in _sg_hop(ping, "sg-ingress").detail
    _without_inbound(net, "sg-web")
    again = net.send(IP(src=CLIENT, dst=WEB_PUBLIC) / ICMP(type=8, id=7, seq=2))
    assert again.reason == Reason.DELIVERED  # the echo flow is tracked: it stays
    assert "tracked connection" in _sg_hop(again, "sg-ingress").detail


def test_without_the_open_outbound_rule_the_open_inbound_rule_is_tracked():
    # AWS: "If you remove the outbound rule for IPv4 traffic, all inbound and outbound IPv4
    # traffic is tracked, including traffic on port 80 (HTTP)."
    net = _network([{"protocol": "tcp", "ports": "80", "cidr": "0.0.0.0/0"}],
                   egress=[{"protocol": "tcp", "ports": "443", "cidr": "0.0.0.0/0"}])
    syn = net.send(IP(src=CLIENT, dst=WEB_PUBLIC) / TCP(sport=50000, dport=80, flags="S"))
    assert syn.reason == Reason.DELIVERED
    answer = syn.reply(TCP(flags="SA"))
    assert answer.reason == Reason.EXITED_TO_INTERNET  # only tracking lets it out (no rule to port 50000)
    assert "tracked connection" in _sg_hop(answer, "sg-egress").detail
    _without_inbound(net, "sg-web")
    assert net.send(IP(src=CLIENT, dst=WEB_PUBLIC) / TCP(sport=50000, dport=80, flags="A")).delivered


def test_all_ports_means_0_to_65535():
    # "for any port (0-65535)": an outbound rule for ports 1-65535 is not one
    net = _network([{"protocol": "tcp", "ports": "22", "cidr": "0.0.0.0/0"}],
                   egress=[{"protocol": "tcp", "ports": "1-65535", "cidr": "0.0.0.0/0"}])
    assert net.send(IP(src=CLIENT, dst=WEB_PUBLIC) / TCP(sport=50000, dport=22, flags="S")).delivered
    _without_inbound(net, "sg-web")
    assert net.send(IP(src=CLIENT, dst=WEB_PUBLIC) / TCP(sport=50000, dport=22, flags="A")).delivered
    # ... and a TCP rule for 0-65535 is
    net = _network([{"protocol": "tcp", "ports": "22", "cidr": "0.0.0.0/0"}],
                   egress=[{"protocol": "tcp", "ports": "0-65535", "cidr": "0.0.0.0/0"}])
    assert net.send(IP(src=CLIENT, dst=WEB_PUBLIC) / TCP(sport=50000, dport=22, flags="S")).delivered
    _without_inbound(net, "sg-web")
    assert net.send(IP(src=CLIENT, dst=WEB_PUBLIC) / TCP(sport=50000, dport=22, flags="A")).reason == \
        Reason.SG_INGRESS_DENY


def test_flows_through_a_nat_gateway_are_tracked():
    # AWS, "Automatically tracked connections": "Connections made through the following are
    # automatically tracked, even if the security group configuration does not otherwise require
    # tracking: ... NAT gateways ..."
    net = _network([{"protocol": "tcp", "ports": "22", "cidr": "0.0.0.0/0"}],
                   security_groups=[{"id": "sg-db", "vpc_id": "vpc-t",
                                     "ingress": [{"protocol": "all", "cidr": "0.0.0.0/0"}]}],
                   network_interfaces=[{"id": "eni-db", "subnet_id": "subnet-priv", "private_ip": "10.0.1.20",
                                        "security_group_ids": ["sg-db"]}])
    out = net.send(IP(dst="93.184.216.34") / TCP(sport=41000, dport=443, flags="S"), source="eni-db")
    assert out.reason == Reason.EXITED_TO_INTERNET
    assert "untracked" not in _sg_hop(out, "sg-egress").detail
    # the same open groups between two ENIs of the VPC leave the flow untracked
    local = net.send(IP(dst="10.0.0.10") / TCP(sport=41001, dport=22, flags="S"), source="eni-db")
    assert local.reason == Reason.DELIVERED
    assert "untracked flow" in _sg_hop(local, "sg-egress").detail
    assert "untracked flow" in _sg_hop(local, "sg-ingress").detail


def test_hyperplane_eni_flows_are_tracked_on_both_ends():
    # AWS, "Automatically tracked connections": "... AWS Lambda (Hyperplane elastic network
    # interfaces) ..."; SPEC §3: removing a rule does not cut a connection that is already open.
    net = _network([{"protocol": "tcp", "ports": "5432", "cidr": "0.0.0.0/0"}],
                   security_groups=[{"id": "sg-fn", "vpc_id": "vpc-t",
                                     "ingress": [{"protocol": "all", "cidr": "0.0.0.0/0"}]}],
                   functions=[{"name": "orders", "vpc_config": {"subnet_ids": ["subnet-priv"],
                                                                "security_group_ids": ["sg-fn"]}}])
    orders = net.function("orders")
    syn = orders.send(IP(dst="10.0.0.10") / TCP(sport=40000, dport=5432, flags="S"))
    assert syn.reason == Reason.DELIVERED
    assert "untracked" not in _sg_hop(syn, "sg-egress").detail  # on the Hyperplane ENI
    assert "untracked" not in _sg_hop(syn, "sg-ingress").detail  # on eni-web: its peer is one
    assert syn.reply(TCP(flags="SA")).reason == Reason.DELIVERED_TO_FUNCTION
    _without_inbound(net, "sg-web")
    ack = orders.send(IP(dst="10.0.0.10") / TCP(sport=40000, dport=5432, flags="A"))
    assert ack.reason == Reason.DELIVERED
    assert "tracked connection" in _sg_hop(ack, "sg-ingress").detail


def test_the_batch_facts_say_which_flows_are_untracked():
    # one truth: a batch records the same decision as a single packet, in its sg facts
    net = _network([{"protocol": "tcp", "ports": "22", "cidr": "0.0.0.0/0"},
                    {"protocol": "tcp", "ports": "80", "cidr": "203.0.113.0/24"}])
    rows = np.zeros(2, dtype=hp.PACKET)
    rows[0] = (0.0, ip(CLIENT), ip(WEB_PUBLIC), 50000, 22, 40, 6, SYN)
    rows[1] = (0.0, ip("203.0.113.5"), ip(WEB_PUBLIC), 50001, 80, 40, 6, SYN)
    result = net.process(rows, hp.Origin.INTERNET, -1)
    facts = [dict(f) for row in range(2) for stage, f in result.facts.of(row) if stage == "sg_ingress"]
    assert [f["allowed"] for f in facts] == [1, 1]
    assert [f["untracked"] for f in facts] == [1, 0]


def test_the_compiled_groups_flag_only_tcp_and_udp_keys_of_open_rules():
    net = _network([{"protocol": "all", "cidr": "0.0.0.0/0"}])
    vpc = net.compiled
    s = vpc.eni_sg_set[vpc.eni_index["eni-web"]]
    rows = np.zeros(3, dtype=hp.PACKET)
    rows[0] = (0.0, 1, 2, 50000, 22, 40, 6, 2)    # TCP
    rows[1] = (0.0, 1, 2, 50000, 53, 40, 17, 0)   # UDP
    rows[2] = (0.0, 1, 2, 7, 0, 40, 1, 8)         # ICMP echo
    flags = vpc.security_groups.untracked_records(rows, np.full(3, s, np.int32), 0)
    assert flags.tolist() == [1, 1, 0]


def test_interface_endpoint_flows_are_tracked():
    # AWS, "Automatically tracked connections": "... AWS PrivateLink (interface VPC endpoints) ..."
    net = _network([{"protocol": "all", "cidr": "0.0.0.0/0"}],
                   security_groups=[{"id": "sg-vpce", "vpc_id": "vpc-t",
                                     "ingress": [{"protocol": "tcp", "ports": "443", "cidr": "0.0.0.0/0"}]}],
                   vpc_endpoints=[{"id": "vpce-sqs", "vpc_id": "vpc-t", "type": "interface",
                                   "service_name": "com.amazonaws.us-east-1.sqs", "subnet_ids": ["subnet-priv"],
                                   "security_group_ids": ["sg-vpce"],
                                   "network_interfaces": [{"id": "eni-vpce", "subnet_id": "subnet-priv",
                                                           "private_ip": "10.0.1.30"}]}])
    syn = net.send(IP(dst="10.0.1.30") / TCP(sport=43000, dport=443, flags="S"), source="eni-web")
    assert syn.reason == Reason.DELIVERED
    # on the endpoint's ENI, and on eni-web, whose own groups are open both ways: its peer is one
    assert "untracked" not in _sg_hop(syn, "sg-ingress").detail
    assert "untracked" not in _sg_hop(syn, "sg-egress").detail
    _without_inbound(net, "sg-vpce")
    ack = net.send(IP(dst="10.0.1.30") / TCP(sport=43000, dport=443, flags="A"), source="eni-web")
    assert ack.reason == Reason.DELIVERED
    assert "tracked connection" in _sg_hop(ack, "sg-ingress").detail
