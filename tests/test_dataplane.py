"""The VPC data plane, told as stories: security groups, network ACLs, routes, gateways, traces.

SPEC §3 (filtering), §4 (routing), §5 (every verdict carries a reason) and the scripting part of
§6, through the public API only: a topology written in YAML, ``hp.Network``, scapy packets sent
with ``net.send`` / ``fn.send``, answers with ``r.reply``, volume with ``net.process``. Each test
checks the specific reason, disposition, the resources and rule numbers in the hops, and the
addresses after translation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import yaml
from scapy.layers.inet import ICMP, IP, TCP, UDP

import hyperplane as hp
from hyperplane.loaders import dump_topology, load_example_topology, parse_topology
from hyperplane.records import PACKET, SYN, ip

# Two subnets of one VPC with hosts that admit everything; each test adds what its story needs
# (a list item whose id matches a base item replaces it).
BASE = """
vpcs:
  - {id: vpc-dp, cidr: 10.0.0.0/16}
subnets:
  - {id: subnet-a, vpc_id: vpc-dp, cidr: 10.0.1.0/24, availability_zone: us-east-1a}
  - {id: subnet-b, vpc_id: vpc-dp, cidr: 10.0.2.0/24, availability_zone: us-east-1b}
security_groups:
  - id: sg-any
    vpc_id: vpc-dp
    ingress: [{protocol: all, cidr: 0.0.0.0/0}]
network_interfaces:
  - {id: eni-a1, subnet_id: subnet-a, private_ip: 10.0.1.10, security_group_ids: [sg-any], instance_id: i-0a1}
  - {id: eni-a2, subnet_id: subnet-a, private_ip: 10.0.1.20, security_group_ids: [sg-any], instance_id: i-0a2}
  - {id: eni-b1, subnet_id: subnet-b, private_ip: 10.0.2.10, security_group_ids: [sg-any], instance_id: i-0b1}
"""
A1, A2, B1 = "10.0.1.10", "10.0.1.20", "10.0.2.10"


def network(*extra: str, base: str = BASE, **kw: Any) -> hp.Network:
    """BASE with the YAML fragments ``extra`` merged in (items with the same id replaced)."""
    doc = yaml.safe_load(base)
    for text in extra:
        for key, value in yaml.safe_load(text).items():
            if not isinstance(value, list):
                doc[key] = value
                continue
            items = doc.setdefault(key, [])
            for item in value:
                same = [k for k, old in enumerate(items) if old.get("id", old.get("name")) ==
                        item.get("id", item.get("name"))]
                if same:
                    items[same[0]] = item
                else:
                    items.append(item)
    kw.setdefault("ready", True)
    return hp.Network(parse_topology(doc, file="test.yaml"), **kw)


def tcp(dst: str, dport: int, flags: str = "S", sport: int = 40000, src: str | None = None) -> Any:
    ip_layer = IP(dst=dst) if src is None else IP(src=src, dst=dst)
    return ip_layer / TCP(sport=sport, dport=dport, flags=flags)


def hops(r: hp.Result, stage: str) -> list[hp.Hop]:
    return [h for h in r.hops if h.stage == stage]


def hop(r: hp.Result, stage: str) -> hp.Hop:
    found = hops(r, stage)
    assert len(found) == 1, f"expected one {stage} hop in:\n{r}"
    return found[0]


# == §3 security groups ==========================================================================


def test_security_groups_on_an_eni_are_a_union_of_rules():
    net = network("""
security_groups:
  - {id: sg-web80, vpc_id: vpc-dp, ingress: [{protocol: tcp, ports: 80, cidr: 10.0.0.0/16}]}
  - {id: sg-tls443, vpc_id: vpc-dp, ingress: [{protocol: tcp, ports: 443, cidr: 10.0.0.0/16}]}
network_interfaces:
  - {id: eni-b1, subnet_id: subnet-b, private_ip: 10.0.2.10, security_group_ids: [sg-web80, sg-tls443]}
""")
    for port, group in ((80, "sg-web80"), (443, "sg-tls443")):
        r = net.send(tcp(B1, port), source="eni-a1")
        assert r.reason == hp.Reason.DELIVERED
        sg = hop(r, "sg-ingress")
        assert sg.resource == group and sg.detail == f"on eni-b1: rule 0: tcp/{port} from 10.0.0.0/16"

    r = net.send(tcp(B1, 22), source="eni-a1")
    assert r.reason == hp.Reason.SG_INGRESS_DENY
    sg = hop(r, "sg-ingress")
    assert sg.decision == "deny"
    assert sg.detail == "on eni-b1: no rule of sg-tls443, sg-web80 matches"


def test_security_group_rule_matches_protocol_and_port_range():
    net = network("""
security_groups:
  - id: sg-range
    vpc_id: vpc-dp
    ingress:
      - {protocol: tcp, ports: 8000-8080, cidr: 10.0.1.0/24}
      - {protocol: udp, ports: 53, cidr: 10.0.1.0/24}
network_interfaces:  # eni-a1 sends from another address below: its source/destination check is off
  - {id: eni-a1, subnet_id: subnet-a, private_ip: 10.0.1.10, security_group_ids: [sg-any], instance_id: i-0a1,
     source_dest_check: false}
  - {id: eni-b1, subnet_id: subnet-b, private_ip: 10.0.2.10, security_group_ids: [sg-range]}
""")
    def verdict(layer4):
        return net.send(IP(dst=B1) / layer4, source="eni-a1").reason

    assert verdict(TCP(dport=8000, flags="S")) == hp.Reason.DELIVERED
    assert verdict(TCP(dport=8080, flags="S")) == hp.Reason.DELIVERED
    assert verdict(TCP(dport=8081, flags="S")) == hp.Reason.SG_INGRESS_DENY
    assert verdict(TCP(dport=7999, flags="S")) == hp.Reason.SG_INGRESS_DENY
    assert verdict(UDP(dport=8000)) == hp.Reason.SG_INGRESS_DENY
    assert verdict(UDP(dport=53)) == hp.Reason.DELIVERED
    assert verdict(TCP(dport=53, flags="S")) == hp.Reason.SG_INGRESS_DENY
    # the peer CIDR counts too: subnet-b's own hosts are not in 10.0.1.0/24
    r = net.send(IP(dst=B1) / TCP(dport=8000, flags="S"), source="eni-a1")
    assert r.delivered
    assert net.send(IP(src="10.0.3.5", dst=B1) / TCP(dport=8000, flags="S"), source="eni-a1").reason \
        == hp.Reason.SG_INGRESS_DENY


def test_icmp_rule_with_a_code_matches_only_that_code():
    net = network("""
security_groups:
  - {id: sg-frag, vpc_id: vpc-dp, ingress: [{protocol: icmp, icmp_type: 3, icmp_code: 4, cidr: 0.0.0.0/0}]}
network_interfaces:
  - {id: eni-b1, subnet_id: subnet-b, private_ip: 10.0.2.10, security_group_ids: [sg-frag]}
""")
    # type 3 code 4: "fragmentation needed" (path MTU discovery), and nothing else of type 3
    assert net.send(IP(dst=B1) / ICMP(type=3, code=4), source="eni-a1").reason == hp.Reason.DELIVERED
    for code in (0, 1, 3):
        assert net.send(IP(dst=B1) / ICMP(type=3, code=code), source="eni-a1").reason == hp.Reason.SG_INGRESS_DENY


def test_all_protocol_rule_ignores_ports():
    net = network()  # sg-any: protocol all from 0.0.0.0/0
    for layer4 in (TCP(dport=1, flags="S"), TCP(dport=65535, flags="S"), UDP(dport=0), ICMP()):
        r = net.send(IP(dst=B1) / layer4, source="eni-a1")
        assert r.reason == hp.Reason.DELIVERED, layer4.summary()
        # TCP and UDP: the group's rules are open both ways, so AWS leaves the flow untracked
        untracked = "" if isinstance(layer4, ICMP) else " (untracked flow: open rules both ways)"
        assert hop(r, "sg-ingress").detail == "on eni-b1: rule 0: all from 0.0.0.0/0" + untracked
    gre = net.send(IP(dst=B1, proto=47) / b"tunnel", source="eni-a1")
    assert gre.reason == hp.Reason.DELIVERED


def test_icmp_rule_matches_its_type():
    net = hp.Network.example()  # sg-web: ICMP type 8 (echo request) from anywhere
    ping = net.send(IP(src="198.51.100.7", dst="203.0.113.20") / ICMP(type=8, id=7), source="internet")
    assert ping.reason == hp.Reason.DELIVERED
    assert hop(ping, "sg-ingress").resource == "sg-web"
    timestamp = net.send(IP(src="198.51.100.7", dst="203.0.113.20") / ICMP(type=13), source="internet")
    assert timestamp.reason == hp.Reason.SG_INGRESS_DENY


def test_icmp_rule_without_a_code_admits_every_code_of_its_type():
    net = network("""
security_groups:
  - {id: sg-unreach, vpc_id: vpc-dp, ingress: [{protocol: icmp, icmp_type: 3, cidr: 0.0.0.0/0}]}
network_interfaces:
  - {id: eni-b1, subnet_id: subnet-b, private_ip: 10.0.2.10, security_group_ids: [sg-unreach]}
""")
    for code in (0, 3, 4):
        assert net.send(IP(dst=B1) / ICMP(type=3, code=code), source="eni-a1").reason == hp.Reason.DELIVERED
    for other in (0, 8, 11):
        assert net.send(IP(dst=B1) / ICMP(type=other), source="eni-a1").reason == hp.Reason.SG_INGRESS_DENY


def test_security_group_reference_covers_secondary_private_ips():
    net = network("""
security_groups:
  - {id: sg-member, vpc_id: vpc-dp}
  - {id: sg-srv, vpc_id: vpc-dp, ingress: [{protocol: tcp, ports: 443, security_group_id: sg-member}]}
network_interfaces:
  - {id: eni-a1, subnet_id: subnet-a, private_ip: 10.0.1.10, secondary_private_ips: [10.0.1.11],
     security_group_ids: [sg-member], source_dest_check: false}  # it also sends from 10.0.1.12
  - {id: eni-b1, subnet_id: subnet-b, private_ip: 10.0.2.10, secondary_private_ips: [10.0.2.11],
     security_group_ids: [sg-srv]}
""")
    r = net.send(tcp("10.0.2.11", 443, src="10.0.1.11"), source="eni-a1")
    assert r.reason == hp.Reason.DELIVERED
    assert hop(r, "sg-ingress").detail == "on eni-b1: rule 0: tcp/443 from sg-member"
    back = r.reply(TCP(flags="SA"))
    assert back.reason == hp.Reason.DELIVERED and back.packet.src == "10.0.2.11"
    assert net.send(tcp("10.0.2.11", 443, src="10.0.1.12"), source="eni-a1").reason == hp.Reason.SG_INGRESS_DENY


def test_security_group_reference_matches_hyperplane_eni_private_ip():
    net = hp.Network.example()
    orders = net.function("orders")
    r = orders.send(IP(dst="10.0.20.10") / TCP(dport=5432, flags="S"), environment=0)
    assert r.reason == hp.Reason.DELIVERED
    assert r.packet.src in {e.private_ip for e in orders.hyperplane_enis}
    sg = hop(r, "sg-ingress")
    assert (sg.resource, sg.detail) == ("sg-db", "on eni-db: rule 0: tcp/5432 from sg-app")

    # the web server is not in sg-app: the same packet from it matches no rule
    web = net.send(IP(dst="10.0.20.10") / TCP(sport=40000, dport=5432, flags="S"), source="i-0web")
    assert web.reason == hp.Reason.SG_INGRESS_DENY
    assert hop(web, "sg-ingress").detail == "on eni-db: no rule of sg-db matches"


def test_security_group_reference_never_matches_public_ip():
    net = network("""
subnets:
  - {id: subnet-a, vpc_id: vpc-dp, cidr: 10.0.1.0/24, availability_zone: us-east-1a, route_table_id: rtb-public}
  - {id: subnet-b, vpc_id: vpc-dp, cidr: 10.0.2.0/24, availability_zone: us-east-1b, route_table_id: rtb-public}
route_tables:
  - {id: rtb-public, vpc_id: vpc-dp, routes: [{destination: 0.0.0.0/0, target: igw-dp}]}
internet_gateways: [{id: igw-dp, vpc_id: vpc-dp}]
security_groups:
  - {id: sg-member, vpc_id: vpc-dp}
  - {id: sg-target, vpc_id: vpc-dp, ingress: [{protocol: tcp, ports: 22, security_group_id: sg-member}]}
network_interfaces:
  - {id: eni-a1, subnet_id: subnet-a, private_ip: 10.0.1.10, security_group_ids: [sg-member], public_ip: 203.0.113.31}
  - {id: eni-b1, subnet_id: subnet-b, private_ip: 10.0.2.10, security_group_ids: [sg-target], public_ip: 203.0.113.32}
""")
    private = net.send(tcp(B1, 22), source="eni-a1")
    assert private.reason == hp.Reason.DELIVERED
    assert hop(private, "sg-ingress").detail == "on eni-b1: rule 0: tcp/22 from sg-member"

    # the member's public address, arriving from the internet, is not the member
    public = net.send(tcp("203.0.113.32", 22, src="203.0.113.31"), source="internet")
    assert public.reason == hp.Reason.SG_INGRESS_DENY
    assert hop(public, "igw-in").detail == "203.0.113.32 -> 10.0.2.10"


def test_reply_is_allowed_by_connection_tracking_whatever_the_rules_say():
    net = hp.Network.example()  # sg-cache has no outbound rule at all (egress: [])
    r = net.function("orders").send(IP(dst="10.0.21.10") / TCP(dport=6379, flags="S"))
    assert r.reason == hp.Reason.DELIVERED
    back = r.reply(TCP(flags="SA"))
    assert back.reason == hp.Reason.DELIVERED_TO_FUNCTION
    sg = hops(back, "sg-egress")[0]
    assert sg.resource == "sg-cache" and sg.decision == "allow"
    assert sg.detail == "on eni-cache: tracked connection (security groups are stateful)"


def test_server_without_egress_rules_cannot_open_connections():
    net = hp.Network.example()
    r = net.send(IP(dst="10.0.20.10") / TCP(sport=40000, dport=5432, flags="S"), source="eni-cache")
    assert r.reason == hp.Reason.SG_EGRESS_DENY
    assert r.disposition == hp.Disposition.DENIED_OUT
    assert r.explanation == "ENI_SG_RULES_MISMATCH"
    sg = hop(r, "sg-egress")
    assert (sg.resource, sg.decision) == ("sg-cache", "deny")
    assert sg.detail == "on eni-cache: no rule of sg-cache matches"
    assert [h.stage for h in r.hops] == ["sg-egress"]  # it never reached a route


def test_both_ends_are_checked():
    net = network("""
security_groups:
  - {id: sg-client, vpc_id: vpc-dp, egress: [{protocol: tcp, ports: 443, cidr: 0.0.0.0/0}]}
  - {id: sg-server, vpc_id: vpc-dp, ingress: [{protocol: tcp, ports: 80, cidr: 0.0.0.0/0}]}
network_interfaces:
  - {id: eni-a1, subnet_id: subnet-a, private_ip: 10.0.1.10, security_group_ids: [sg-client]}
  - {id: eni-b1, subnet_id: subnet-b, private_ip: 10.0.2.10, security_group_ids: [sg-server]}
""")
    out = net.send(tcp(B1, 80), source="eni-a1")  # the receiver would take it; the sender may not send it
    assert out.reason == hp.Reason.SG_EGRESS_DENY and out.disposition == hp.Disposition.DENIED_OUT
    assert hop(out, "sg-egress").resource == "sg-client"
    into = net.send(tcp(B1, 443), source="eni-a1")  # the sender may send it; the receiver refuses
    assert into.reason == hp.Reason.SG_INGRESS_DENY and into.disposition == hp.Disposition.DENIED_IN
    assert hop(into, "sg-egress").decision == "allow"
    assert hop(into, "sg-ingress").resource == "sg-server"


def test_default_security_group_admits_its_own_members():
    net = network("""
security_groups:
  - {id: sg-any, vpc_id: vpc-dp, egress: []}
network_interfaces:  # no security_group_ids: the VPC's default group
  - {id: eni-a1, subnet_id: subnet-a, private_ip: 10.0.1.10, source_dest_check: false}  # sends as a stranger too
  - {id: eni-b1, subnet_id: subnet-b, private_ip: 10.0.2.10}
""")
    member = net.send(tcp(B1, 22), source="eni-a1")  # both carry sg-dp-default
    assert member.reason == hp.Reason.DELIVERED
    assert hop(member, "sg-egress").detail == "on eni-a1: rule 0: all to 0.0.0.0/0"
    assert hop(member, "sg-ingress").detail == "on eni-b1: rule 0: all from sg-dp-default"
    outsider = net.send(tcp(B1, 22), source="i-0a2")
    assert outsider.reason == hp.Reason.SG_EGRESS_DENY  # sg-any has no outbound rule here
    stranger = net.send(tcp(B1, 22, src="10.0.1.99"), source="eni-a1")
    assert stranger.reason == hp.Reason.SG_INGRESS_DENY  # not a member's address


def test_security_group_rule_with_a_prefix_list_peer():
    net = network(ROUTED_A, route_table("{destination: 0.0.0.0/0, target: pcx-dp}"), """
prefix_lists:
  - {id: pl-partners, name: partners, cidrs: [198.51.100.0/24, 192.0.2.128/25]}
security_groups:
  - {id: sg-partners-only, vpc_id: vpc-dp, egress: [{protocol: tcp, ports: 443, prefix_list_id: pl-partners}]}
network_interfaces:
  - {id: eni-a1, subnet_id: subnet-a, private_ip: 10.0.1.10, security_group_ids: [sg-partners-only]}
""")
    for dst in ("198.51.100.7", "192.0.2.200"):
        r = net.send(tcp(dst, 443), source="eni-a1")
        # out past the group; the peering then carries only its peer's CIDRs (172.16.0.0/12)
        assert r.reason == hp.Reason.PCX_ADDRESS_NOT_IN_PEER_VPC, dst
        assert hop(r, "sg-egress").detail == "on eni-a1: rule 0: tcp/443 to pl-partners"
    assert net.send(tcp("192.0.2.100", 443), source="eni-a1").reason == hp.Reason.SG_EGRESS_DENY


# == §3 network ACLs =============================================================================


def test_reply_blocked_when_nacl_lacks_ephemeral_ports():
    net = hp.Network.example()
    orders = net.function("orders")

    db = orders.send(IP(dst="10.0.20.10") / TCP(dport=5432, flags="S"))
    assert db.reason == hp.Reason.DELIVERED
    nacl_in = hop(db, "nacl-in")
    assert nacl_in.resource == "acl-data"
    assert nacl_in.detail == "subnet-data-a: rule 100: allow tcp/5432-5432 10.0.0.0/16"
    reply = db.reply(TCP(flags="SA"))
    assert not reply.delivered
    assert reply.reason == hp.Reason.NACL_OUT_DENY
    assert reply.disposition == hp.Disposition.DENIED_OUT
    assert reply.explanation == "SUBNET_ACL_RESTRICTION"
    nacl_out = hop(reply, "nacl-out")
    assert (nacl_out.resource, nacl_out.decision) == ("acl-data", "deny")
    assert nacl_out.detail == "subnet-data-a: rule * (no numbered rule matches: implicit deny)"

    # the cache subnet's NACL, written with the ephemeral ports, lets the reply out
    cache = orders.send(IP(dst="10.0.21.10") / TCP(dport=6379, flags="S")).reply(TCP(flags="SA"))
    assert cache.reason == hp.Reason.DELIVERED_TO_FUNCTION
    assert hops(cache, "nacl-out")[0].detail == "subnet-cache-a: rule 100: allow tcp/1024-65535 10.0.0.0/16"


STRICT_A = """
subnets:
  - {id: subnet-a, vpc_id: vpc-dp, cidr: 10.0.1.0/24, availability_zone: us-east-1a, network_acl_id: acl-strict}
network_acls:
  - id: acl-strict
    vpc_id: vpc-dp
    egress: [{rule_number: 100, protocol: all, cidr: 0.0.0.0/0, rule_action: allow}]
    ingress: [{rule_number: 100, protocol: tcp, ports: 22, cidr: 10.0.0.0/16, rule_action: allow}]
"""


def test_reply_blocked_by_nacl_inbound_of_the_client_subnet():
    net = network(STRICT_A)
    r = net.send(tcp(B1, 443), source="eni-a1")
    assert r.reason == hp.Reason.DELIVERED
    assert hop(r, "nacl-out").resource == "acl-strict"
    assert hop(r, "nacl-in").resource == "acl-dp-default"
    back = r.reply(TCP(flags="SA"))
    assert back.reason == hp.Reason.NACL_IN_DENY
    assert back.disposition == hp.Disposition.DENIED_IN
    nacl_in = hop(back, "nacl-in")
    assert (nacl_in.resource, nacl_in.decision) == ("acl-strict", "deny")
    assert nacl_in.detail == "subnet-a: rule * (no numbered rule matches: implicit deny)"

    fixed = network(STRICT_A, """
network_acls:
  - id: acl-strict
    vpc_id: vpc-dp
    egress: [{rule_number: 100, protocol: all, cidr: 0.0.0.0/0, rule_action: allow}]
    ingress:
      - {rule_number: 100, protocol: tcp, ports: 22, cidr: 10.0.0.0/16, rule_action: allow}
      - {rule_number: 110, protocol: tcp, ports: 1024-65535, cidr: 10.0.0.0/16, rule_action: allow}
""")
    back = fixed.send(tcp(B1, 443), source="eni-a1").reply(TCP(flags="SA"))
    assert back.reason == hp.Reason.DELIVERED
    assert hop(back, "nacl-in").detail == "subnet-a: rule 110: allow tcp/1024-65535 10.0.0.0/16"


def test_nacl_first_matching_rule_number_decides():
    net = network("""
subnets:
  - {id: subnet-b, vpc_id: vpc-dp, cidr: 10.0.2.0/24, availability_zone: us-east-1b, network_acl_id: acl-order}
network_acls:
  - id: acl-order
    vpc_id: vpc-dp
    egress: [{rule_number: 100, protocol: all, cidr: 0.0.0.0/0, rule_action: allow}]
    ingress:  # written out of order on purpose: the numbers decide, not the file
      - {rule_number: 200, protocol: all, cidr: 0.0.0.0/0, rule_action: allow}
      - {rule_number: 150, protocol: tcp, ports: 22, cidr: 10.0.1.10/32, rule_action: allow}
      - {rule_number: 100, protocol: tcp, ports: 22, cidr: 10.0.1.0/24, rule_action: deny}
""")
    ssh = net.send(tcp(B1, 22), source="eni-a1")
    assert ssh.reason == hp.Reason.NACL_IN_DENY
    assert hop(ssh, "nacl-in").detail == "subnet-b: rule 100: deny tcp/22-22 10.0.1.0/24"
    web = net.send(tcp(B1, 80), source="eni-a1")
    assert web.reason == hp.Reason.DELIVERED
    assert hop(web, "nacl-in").detail == "subnet-b: rule 200: allow all 0.0.0.0/0"


def test_custom_nacl_without_rules_denies_everything_and_default_allows_everything():
    net = network("""
subnets:
  - {id: subnet-b, vpc_id: vpc-dp, cidr: 10.0.2.0/24, availability_zone: us-east-1b, network_acl_id: acl-new}
network_acls:
  - {id: acl-new, vpc_id: vpc-dp}
""")
    into = net.send(tcp(B1, 80), source="eni-a1")
    assert into.reason == hp.Reason.NACL_IN_DENY
    assert hop(into, "nacl-out").detail == "subnet-a: rule 100: allow all 0.0.0.0/0"  # acl-dp-default
    assert hop(into, "nacl-in").resource == "acl-new"
    out = net.send(tcp(A1, 80), source="eni-b1")
    assert out.reason == hp.Reason.NACL_OUT_DENY and out.disposition == hp.Disposition.DENIED_OUT
    assert hop(out, "nacl-out").detail == "subnet-b: rule * (no numbered rule matches: implicit deny)"


def test_same_subnet_traffic_skips_nacl():
    net = network("""
subnets:
  - {id: subnet-a, vpc_id: vpc-dp, cidr: 10.0.1.0/24, availability_zone: us-east-1a, network_acl_id: acl-new}
network_acls:
  - {id: acl-new, vpc_id: vpc-dp}
""")
    r = net.send(tcp(A2, 80), source="eni-a1")
    assert r.reason == hp.Reason.DELIVERED
    assert not hops(r, "nacl-out") and not hops(r, "nacl-in")
    assert r.reply(TCP(flags="SA")).reason == hp.Reason.DELIVERED
    leaving = net.send(tcp(B1, 80), source="eni-a1")
    assert leaving.reason == hp.Reason.NACL_OUT_DENY
    assert hop(leaving, "nacl-out").resource == "acl-new"


# == §4 routing ==================================================================================

ROUTED_A = """
subnets:
  - {id: subnet-a, vpc_id: vpc-dp, cidr: 10.0.1.0/24, availability_zone: us-east-1a, route_table_id: rtb-a}
vpc_peering_connections:
  - {id: pcx-dp, vpc_id: vpc-dp, peer_vpc_id: vpc-peer, peer_cidrs: [172.16.0.0/12]}
internet_gateways: [{id: igw-dp, vpc_id: vpc-dp}]
"""


def route_table(*routes: str) -> str:
    return ("route_tables:\n  - id: rtb-a\n    vpc_id: vpc-dp\n    routes:\n"
            + "".join(f"      - {r}\n" for r in routes))


def test_longest_prefix_route_wins():
    net = network(ROUTED_A, route_table(
        "{destination: 0.0.0.0/0, target: igw-dp}",
        "{destination: 172.16.0.0/12, target: pcx-dp}",
        "{destination: 172.16.5.0/24, target: nat-gone, state: blackhole}"))
    cases = {
        "172.16.5.9": (hp.Reason.BLACKHOLE_ROUTE, "172.16.5.0/24"),
        "172.20.0.1": (hp.Reason.FORWARDED_TO_PEERING, "172.16.0.0/12 -> pcx-dp"),
        "8.8.8.8": (hp.Reason.NO_PUBLIC_IP, "0.0.0.0/0 -> igw-dp"),
    }
    for dst, (reason, route) in cases.items():
        r = net.send(tcp(dst, 443), source="eni-a1")
        assert r.reason == reason, dst
        rt = hop(r, "route")
        assert rt.resource == "rtb-a" and route in rt.detail, (dst, rt)
    assert net.send(tcp(B1, 443), source="eni-a1").reason == hp.Reason.DELIVERED  # local /16


def test_static_route_beats_prefix_list_at_equal_length():
    pl = """
prefix_lists:
  - {id: pl-s3, name: com.amazonaws.us-east-1.s3, cidrs: [52.216.0.0/15]}
vpc_endpoints:
  - {id: vpce-s3, vpc_id: vpc-dp, type: gateway, service_name: com.amazonaws.us-east-1.s3, route_table_ids: [rtb-a]}
"""
    net = network(ROUTED_A, pl, route_table("{destination: pl-s3, target: vpce-s3}",
                                            "{destination: 52.216.0.0/15, target: pcx-dp}"))
    r = net.send(tcp("52.216.8.1", 443), source="eni-a1")
    assert r.reason == hp.Reason.PCX_ADDRESS_NOT_IN_PEER_VPC  # routed there; not a peer address
    assert "52.216.0.0/15 -> pcx-dp" in hop(r, "route").detail

    # a longer prefix-list CIDR still beats a shorter static route
    net = network(ROUTED_A, pl, route_table("{destination: pl-s3, target: vpce-s3}",
                                            "{destination: 52.0.0.0/8, target: pcx-dp}"))
    r = net.send(tcp("52.216.8.1", 443), source="eni-a1")
    assert r.reason == hp.Reason.DELIVERED_TO_GATEWAY_ENDPOINT
    assert "pl-s3 -> vpce-s3" in hop(r, "route").detail
    assert net.send(tcp("52.1.2.3", 443), source="eni-a1").reason == hp.Reason.PCX_ADDRESS_NOT_IN_PEER_VPC


def test_blackhole_route_drops_with_null_routed():
    net = network(ROUTED_A, route_table("{destination: 0.0.0.0/0, target: nat-gone, state: blackhole}"))
    r = net.send(tcp("8.8.8.8", 443), source="eni-a1")
    assert not r.delivered
    assert r.reason == hp.Reason.BLACKHOLE_ROUTE
    assert r.disposition == hp.Disposition.NULL_ROUTED
    assert r.explanation == "BAD_STATE_ROUTE"
    assert "0.0.0.0/0 -> nat-gone" in hop(r, "route").detail


def test_removing_the_nat_gateway_turns_its_route_into_a_blackhole():
    before = network(ROUTED_A, """
subnets:
  - {id: subnet-b, vpc_id: vpc-dp, cidr: 10.0.2.0/24, availability_zone: us-east-1b, route_table_id: rtb-b}
route_tables:
  - {id: rtb-a, vpc_id: vpc-dp, routes: [{destination: 0.0.0.0/0, target: nat-b}]}
  - {id: rtb-b, vpc_id: vpc-dp, routes: [{destination: 0.0.0.0/0, target: igw-dp}]}
nat_gateways:
  - {id: nat-b, subnet_id: subnet-b, private_ip: 10.0.2.5, elastic_ips: [203.0.113.60]}
""")
    assert before.send(tcp("8.8.8.8", 443), source="eni-a1").reason == hp.Reason.EXITED_TO_INTERNET
    after = hp.Network(before.topology.replace(remove=["nat-b"]), ready=True)
    r = after.send(tcp("8.8.8.8", 443), source="eni-a1")
    assert r.reason == hp.Reason.BLACKHOLE_ROUTE and r.disposition == hp.Disposition.NULL_ROUTED


def test_no_route_disposition():
    net = network()  # the main route table: only the local route
    r = net.send(tcp("8.8.8.8", 443), source="eni-a1")
    assert not r.delivered
    assert r.reason == hp.Reason.NO_ROUTE
    assert r.disposition == hp.Disposition.NO_ROUTE
    assert r.explanation == "NO_ROUTE_TO_DESTINATION"
    rt = hop(r, "route")
    assert (rt.resource, rt.decision, rt.detail) == ("rtb-dp-main", "drop", "from subnet-a: no route matches")


def test_local_address_without_eni_is_delivered_to_subnet():
    net = network()
    r = net.send(tcp("10.0.2.99", 443), source="eni-a1")
    assert r.reason == hp.Reason.NO_ENI_AT_ADDRESS
    assert r.disposition == hp.Disposition.DELIVERED_TO_SUBNET
    assert not r.delivered
    assert "10.0.0.0/16 -> local" in hop(r, "route").detail


def test_every_vpc_cidr_has_a_local_route():
    net = network("""
vpcs:
  - {id: vpc-dp, cidrs: [10.0.0.0/16, 10.50.0.0/16]}
subnets:
  - {id: subnet-x, vpc_id: vpc-dp, cidr: 10.50.1.0/24, availability_zone: us-east-1a}
network_interfaces:
  - {id: eni-x1, subnet_id: subnet-x, private_ip: 10.50.1.10, security_group_ids: [sg-any]}
""")
    there = net.send(tcp("10.50.1.10", 443), source="eni-a1")
    assert there.reason == hp.Reason.DELIVERED
    assert "10.50.0.0/16 -> local" in hop(there, "route").detail
    back = net.send(tcp(A1, 443), source="eni-x1")
    assert back.reason == hp.Reason.DELIVERED
    assert "10.0.0.0/16 -> local" in hop(back, "route").detail


def test_route_more_specific_than_local_sends_a_subnet_through_an_appliance():
    net = network(ROUTED_A, route_table("{destination: 10.0.2.0/24, target: eni-fw}"), """
subnets:
  - {id: subnet-fw, vpc_id: vpc-dp, cidr: 10.0.9.0/24, availability_zone: us-east-1a}
network_interfaces:
  - {id: eni-fw, subnet_id: subnet-fw, private_ip: 10.0.9.10, security_group_ids: [sg-any], source_dest_check: false}
""")
    r = net.send(tcp(B1, 443), source="eni-a1")
    assert r.reason == hp.Reason.DELIVERED
    assert "10.0.2.0/24 -> eni-fw" in hop(r, "route").detail
    assert hop(r, "sg-ingress").detail.startswith("on eni-fw:")  # the appliance got it, not eni-b1
    assert r.packet.dst == B1
    # other local destinations still take the local route
    assert "10.0.0.0/16 -> local" in hop(net.send(tcp("10.0.9.10", 443), source="eni-a1"), "route").detail


PUBLIC_AND_PRIVATE = """
subnets:
  - {id: subnet-a, vpc_id: vpc-dp, cidr: 10.0.1.0/24, availability_zone: us-east-1a, route_table_id: rtb-private}
  - {id: subnet-b, vpc_id: vpc-dp, cidr: 10.0.2.0/24, availability_zone: us-east-1b, route_table_id: rtb-public}
route_tables:
  - {id: rtb-public, vpc_id: vpc-dp, routes: [{destination: 0.0.0.0/0, target: igw-dp}]}
  - {id: rtb-private, vpc_id: vpc-dp, routes: [{destination: 0.0.0.0/0, target: nat-dp}]}
internet_gateways: [{id: igw-dp, vpc_id: vpc-dp}]
nat_gateways:
  - {id: nat-dp, subnet_id: subnet-b, private_ip: 10.0.2.5, elastic_ips: [203.0.113.50]}
network_interfaces:
  - {id: eni-b1, subnet_id: subnet-b, private_ip: 10.0.2.10, security_group_ids: [sg-any], public_ip: 203.0.113.40}
  - {id: eni-b2, subnet_id: subnet-b, private_ip: 10.0.2.20, security_group_ids: [sg-any]}
"""


def test_internet_gateway_maps_private_and_public_addresses_one_to_one():
    net = network(PUBLIC_AND_PRIVATE)
    r = net.send(tcp("8.8.8.8", 443, sport=45000), source="eni-b1")
    assert r.reason == hp.Reason.EXITED_TO_INTERNET and r.delivered
    assert r.disposition == hp.Disposition.EXITS_NETWORK
    assert (r.packet.src, r.packet.sport) == ("203.0.113.40", 45000)  # 1:1, the port is kept
    assert hop(r, "igw-out").detail == "10.0.2.10 -> 203.0.113.40"
    back = r.reply(TCP(flags="SA"))
    assert back.reason == hp.Reason.DELIVERED
    assert (back.packet.dst, back.packet.dport) == (B1, 45000)

    no_ip = net.send(tcp("8.8.8.8", 443), source="eni-b2")
    assert no_ip.reason == hp.Reason.NO_PUBLIC_IP and no_ip.disposition == hp.Disposition.DENIED_OUT
    assert no_ip.explanation == "IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS"
    nowhere = net.send(tcp("203.0.113.99", 443, src="8.8.8.8"), source="internet")
    assert nowhere.reason == hp.Reason.NOT_A_VPC_PUBLIC_ADDRESS


def test_nat_gateway_translates_to_its_address_and_the_igw_maps_its_eip():
    net = network(PUBLIC_AND_PRIVATE)
    r = net.send(tcp("8.8.8.8", 443, sport=45000), source="eni-a1")
    assert r.reason == hp.Reason.EXITED_TO_INTERNET
    assert r.packet.src == "203.0.113.50" and 1024 <= r.packet.sport <= 65535
    assert [(h.stage, h.resource) for h in r.hops] == [
        ("sg-egress", "sg-any"), ("route", "rtb-private"), ("nacl-out", "acl-dp-default"),
        ("nacl-in", "acl-dp-default"), ("nat-out", "nat-dp"), ("route", "rtb-public"),
        ("nacl-out", "acl-dp-default"), ("igw-out", "igw-dp")]
    assert hop(r, "igw-out").detail == "10.0.2.5 -> 203.0.113.50"
    back = r.reply(TCP(flags="SA"))
    assert back.reason == hp.Reason.DELIVERED
    assert (back.packet.src, back.packet.sport) == ("8.8.8.8", 443)
    assert (back.packet.dst, back.packet.dport) == (A1, 45000)
    assert hop(back, "nat-in").resource == "nat-dp"


def test_reply_from_internet_blocked_by_nacl_of_the_nat_gateway_subnet():
    net = network(PUBLIC_AND_PRIVATE, """
subnets:
  - {id: subnet-b, vpc_id: vpc-dp, cidr: 10.0.2.0/24, availability_zone: us-east-1b,
     route_table_id: rtb-public, network_acl_id: acl-pub}
network_acls:
  - id: acl-pub
    vpc_id: vpc-dp
    egress: [{rule_number: 100, protocol: all, cidr: 0.0.0.0/0, rule_action: allow}]
    ingress: [{rule_number: 100, protocol: tcp, ports: 443, cidr: 10.0.0.0/16, rule_action: allow}]
""")
    r = net.send(tcp("8.8.8.8", 443), source="eni-a1")
    assert r.reason == hp.Reason.EXITED_TO_INTERNET
    assert hop(r, "nacl-in").detail == "subnet-b: rule 100: allow tcp/443-443 10.0.0.0/16"
    back = r.reply(TCP(flags="SA"))  # to the NAT's port, which rule 100 does not cover
    assert back.reason == hp.Reason.NACL_IN_DENY and back.disposition == hp.Disposition.DENIED_IN
    assert [h.stage for h in back.hops] == ["igw-in", "nacl-in"]
    assert hop(back, "nacl-in").resource == "acl-pub"


def test_nat_gateway_second_elastic_ip_takes_over_past_55000_connections():
    net = network(PUBLIC_AND_PRIVATE, """
nat_gateways:
  - {id: nat-dp, subnet_id: subnet-b, private_ip: 10.0.2.5, secondary_private_ips: [10.0.2.6],
     elastic_ips: [203.0.113.50, 203.0.113.51]}
""")
    n = 55_001
    rows = np.zeros(n, dtype=PACKET)
    rows["src_ip"], rows["dst_ip"] = ip(A1), ip("93.184.216.34")
    rows["src_port"] = 1024 + np.arange(n)
    rows["dst_port"], rows["proto"], rows["flags"], rows["length"] = 443, 6, SYN, 40
    res = net.process(rows, hp.Origin.ENI, net.compiled.eni_index["eni-a1"])
    assert (res.reason == hp.Reason.EXITED_TO_INTERNET).all()
    sources, counts = np.unique(res.packets["src_ip"], return_counts=True)
    assert dict(zip(sources.tolist(), counts.tolist())) == {ip("203.0.113.50"): 55_000, ip("203.0.113.51"): 1}
    last = res.packets[-1]
    back = net.send(IP(src="93.184.216.34", dst="203.0.113.51") / TCP(sport=443, dport=int(last["src_port"]),
                                                                         flags="SA"), source="internet")
    assert back.reason == hp.Reason.DELIVERED
    assert hop(back, "igw-in").detail == "203.0.113.51 -> 10.0.2.6"
    assert (back.packet.dst, back.packet.dport) == (A1, 1024 + n - 1)


def test_nat_gateway_refuses_connections_from_internet():
    net = network(PUBLIC_AND_PRIVATE)
    for layer4 in (TCP(sport=5555, dport=443, flags="S"), UDP(sport=5555, dport=53)):
        r = net.send(IP(src="198.51.100.7", dst="203.0.113.50") / layer4, source="internet")
        assert r.reason == hp.Reason.NAT_UNSOLICITED_INBOUND
        assert r.disposition == hp.Disposition.DENIED_IN
        assert hop(r, "nat-in").decision == "drop"


def test_nat_gateway_carries_tcp_udp_and_icmp_only():
    net = network(PUBLIC_AND_PRIVATE)
    assert net.send(IP(dst="8.8.8.8") / UDP(sport=5000, dport=53), source="eni-a1").reason \
        == hp.Reason.EXITED_TO_INTERNET
    ping = net.send(IP(dst="8.8.8.8") / ICMP(id=77), source="eni-a1")
    assert ping.reason == hp.Reason.EXITED_TO_INTERNET and ping.packet.src == "203.0.113.50"
    pong = ping.reply(ICMP(type=0))
    assert pong.reason == hp.Reason.DELIVERED
    assert pong.packet.dst == A1 and pong.packet[ICMP].id == 77
    gre = net.send(IP(dst="8.8.8.8", proto=47) / b"tunnel", source="eni-a1")
    assert gre.reason == hp.Reason.NAT_UNSUPPORTED_PROTOCOL
    assert gre.disposition == hp.Disposition.DENIED_IN
    assert hop(gre, "nat-out").decision == "drop"


def test_nat_gateway_answers_rst_after_350_seconds_idle():
    net = network(PUBLIC_AND_PRIVATE)
    r = net.send(tcp("8.8.4.4", 443, sport=46000), source="eni-a1")
    assert r.reply(TCP(flags="SA")).reason == hp.Reason.DELIVERED
    net.advance(349)
    assert net.send(tcp("8.8.4.4", 443, "A", sport=46000), source="eni-a1").reason == hp.Reason.EXITED_TO_INTERNET
    net.advance(351)
    late = net.send(tcp("8.8.4.4", 443, "A", sport=46000), source="eni-a1")
    assert late.reason == hp.Reason.NAT_NO_CONNECTION_RST
    assert late.disposition == hp.Disposition.DENIED_IN
    assert r.reply(TCP(flags="A")).reason == hp.Reason.NAT_UNSOLICITED_INBOUND


def test_nat_gateway_port_allocation_error_after_55000_connections():
    net = network(PUBLIC_AND_PRIVATE)
    n = 55_001
    rows = np.zeros(n, dtype=PACKET)
    rows["src_ip"], rows["dst_ip"] = ip(A1), ip("93.184.216.34")
    rows["src_port"] = 1024 + np.arange(n)
    rows["dst_port"], rows["proto"], rows["flags"], rows["length"] = 443, 6, SYN, 40
    res = net.process(rows, hp.Origin.ENI, net.compiled.eni_index["eni-a1"])
    assert (res.reason[:55_000] == hp.Reason.EXITED_TO_INTERNET).all()
    assert (res.packets["src_ip"][:55_000] == ip("203.0.113.50")).all()
    assert len(np.unique(res.packets["src_port"][:55_000])) == 55_000
    assert res.reason[-1] == hp.Reason.NAT_PORT_ALLOCATION_ERROR
    assert res.disposition[-1] == hp.Disposition.DENIED_IN and not res.delivered[-1]

    # the limit is per destination: another one still gets a port
    other = net.send(tcp("93.184.216.35", 443, sport=60000), source="eni-a1")
    assert other.reason == hp.Reason.EXITED_TO_INTERNET
    again = net.send(tcp("93.184.216.34", 443, sport=60000), source="eni-a1")
    assert again.reason == hp.Reason.NAT_PORT_ALLOCATION_ERROR
    assert hop(again, "nat-out").resource == "nat-dp"


def test_private_nat_gateway_cannot_use_internet_gateway():
    net = network(PUBLIC_AND_PRIVATE, ROUTED_A.split("internet_gateways")[0], """
route_tables:
  - {id: rtb-private, vpc_id: vpc-dp, routes: [{destination: 0.0.0.0/0, target: nat-quiet}]}
  - id: rtb-public
    vpc_id: vpc-dp
    routes: [{destination: 0.0.0.0/0, target: igw-dp}, {destination: 172.16.0.0/12, target: pcx-dp}]
subnets:
  - {id: subnet-a, vpc_id: vpc-dp, cidr: 10.0.1.0/24, availability_zone: us-east-1a, route_table_id: rtb-private}
nat_gateways:
  - {id: nat-quiet, subnet_id: subnet-b, connectivity_type: private, private_ip: 10.0.2.6}
""")
    r = net.send(tcp("8.8.8.8", 443), source="eni-a1")
    assert not r.delivered
    assert r.reason == hp.Reason.PRIVATE_NAT_TO_INTERNET
    assert r.explanation == "IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS"
    assert hop(r, "nat-out").resource == "nat-quiet"
    # elsewhere it translates to its private address
    peer = net.send(tcp("172.16.0.1", 443), source="eni-a1")
    assert peer.reason == hp.Reason.FORWARDED_TO_PEERING
    assert peer.packet.src == "10.0.2.6" and 1024 <= peer.packet.sport <= 65535


def test_routes_that_send_packets_between_two_nat_gateways_forever_end_in_a_routing_loop():
    net = network("""
route_tables:
  - {id: rtb-a, vpc_id: vpc-dp, routes: [{destination: 0.0.0.0/0, target: nat-x}]}
  - {id: rtb-b, vpc_id: vpc-dp, routes: [{destination: 0.0.0.0/0, target: nat-y}]}
subnets:
  - {id: subnet-a, vpc_id: vpc-dp, cidr: 10.0.1.0/24, availability_zone: us-east-1a, route_table_id: rtb-a}
  - {id: subnet-b, vpc_id: vpc-dp, cidr: 10.0.2.0/24, availability_zone: us-east-1b, route_table_id: rtb-b}
nat_gateways:
  - {id: nat-x, subnet_id: subnet-b, connectivity_type: private, private_ip: 10.0.2.6}
  - {id: nat-y, subnet_id: subnet-a, connectivity_type: private, private_ip: 10.0.1.6}
""")
    r = net.send(tcp("8.8.8.8", 443), source="eni-a1")
    assert r.reason == hp.Reason.ROUTING_LOOP and r.disposition == hp.Disposition.NULL_ROUTED
    translations = [h.resource for h in hops(r, "nat-out")]
    assert translations[:4] == ["nat-x", "nat-y", "nat-x", "nat-y"] and len(translations) == 8


def test_gateway_endpoint_accepts_tcp_only():
    net = hp.Network.example()  # rtb-public routes pl-63a5400a (S3) to vpce-s3
    r = net.send(IP(dst="52.216.8.1") / TCP(sport=47000, dport=443, flags="S"), source="i-0web")
    assert r.reason == hp.Reason.DELIVERED_TO_GATEWAY_ENDPOINT and r.delivered
    assert r.packet.src == "10.0.0.20"  # no translation on the way to a gateway endpoint
    assert "pl-63a5400a -> vpce-s3" in hop(r, "route").detail
    back = r.reply(TCP(flags="SA"))
    assert back.reason == hp.Reason.DELIVERED
    assert (back.packet.src, back.packet.dst, back.packet.dport) == ("52.216.8.1", "10.0.0.20", 47000)

    assert net.send(IP(dst="52.216.8.1") / ICMP(id=5), source="i-0web").reason \
        == hp.Reason.DELIVERED_TO_GATEWAY_ENDPOINT  # ICMP echo too
    udp = net.send(IP(dst="52.216.8.1") / UDP(sport=47001, dport=443), source="i-0web")
    assert udp.reason == hp.Reason.GATEWAY_ENDPOINT_PROTOCOL and not udp.delivered
    # only the prefix list's addresses: the rest of 52/8 takes the default route
    assert net.send(IP(dst="52.1.2.3") / UDP(sport=47001, dport=443), source="i-0web").reason \
        == hp.Reason.EXITED_TO_INTERNET


def test_interface_endpoint_security_group_applies():
    net = hp.Network.example()  # sg-endpoints admits sg-app on 443
    orders = net.function("orders")
    r = orders.send(IP(dst="10.0.10.50") / TCP(dport=443, flags="S"))
    assert r.reason == hp.Reason.DELIVERED
    sg = hop(r, "sg-ingress")
    assert (sg.resource, sg.detail) == ("sg-endpoints", "on eni-vpce-secrets-a: rule 0: tcp/443 from sg-app")
    assert r.reply(TCP(flags="SA")).reason == hp.Reason.DELIVERED_TO_FUNCTION

    http = orders.send(IP(dst="10.0.10.50") / TCP(dport=80, flags="S"))
    assert http.reason == hp.Reason.SG_INGRESS_DENY
    assert hop(http, "sg-ingress").detail == "on eni-vpce-secrets-a: no rule of sg-endpoints matches"
    web = net.send(IP(dst="10.0.11.50") / TCP(sport=40000, dport=443, flags="S"), source="i-0web")
    assert web.reason == hp.Reason.SG_INGRESS_DENY
    assert hop(web, "sg-ingress").detail.startswith("on eni-vpce-secrets-b:")


def test_dns_resolver_answers_at_vpc_base_plus_two():
    net = hp.Network.example()
    r = net.function("orders").send(IP(dst="10.0.0.2") / UDP(dport=53))
    assert r.reason == hp.Reason.DELIVERED_TO_DNS_RESOLVER and r.delivered
    assert r.disposition == hp.Disposition.ACCEPTED
    dns = hop(r, "dns")
    assert dns.resource == "AmazonProvidedDNS"
    assert not hops(r, "nacl-out") and not hops(r, "route")
    # a subnet's own base + 2 is reserved, not the resolver
    assert net.function("orders").send(IP(dst="10.0.10.2") / UDP(dport=53)).reason == hp.Reason.NO_ENI_AT_ADDRESS


def test_dns_resolver_is_in_the_primary_cidr_for_subnets_of_a_secondary_one():
    net = network("""
vpcs:
  - {id: vpc-dp, cidrs: [10.0.0.0/16, 10.50.0.0/16]}
subnets:
  - {id: subnet-x, vpc_id: vpc-dp, cidr: 10.50.1.0/24, availability_zone: us-east-1a}
network_interfaces:
  - {id: eni-x1, subnet_id: subnet-x, private_ip: 10.50.1.10, security_group_ids: [sg-any]}
""")
    assert net.send(IP(dst="10.0.0.2") / UDP(sport=5000, dport=53), source="eni-x1").reason \
        == hp.Reason.DELIVERED_TO_DNS_RESOLVER
    # 10.50.0.2 is in the secondary CIDR but in no subnet: null-routed, as Batfish has it
    assert net.send(IP(dst="10.50.0.2") / UDP(sport=5000, dport=53), source="eni-x1").reason \
        == hp.Reason.NO_SUBNET_AT_ADDRESS


def test_route_more_specific_than_local_must_target_nat_or_eni_for_a_whole_subnet():
    from hyperplane.errors import TopologyError

    with pytest.raises(TopologyError, match="more specific than the local route.*not igw-dp"):
        network(ROUTED_A, route_table("{destination: 10.0.2.0/24, target: igw-dp}"))
    with pytest.raises(TopologyError, match="must match a whole subnet CIDR"):
        network(ROUTED_A, route_table("{destination: 10.0.2.0/25, target: eni-b1}"))


# == §5 every verdict carries a reason ==========================================================

# codes of docs.aws.amazon.com/vpc/latest/reachability/explanation-codes.html ("Path is not reachable")
REACHABILITY_ANALYZER_CODES = {
    "NO_ROUTE_TO_DESTINATION", "ENI_SG_RULES_MISMATCH", "SUBNET_ACL_RESTRICTION",
    "IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS", "BAD_STATE_ROUTE", "ENI_SOURCE_DEST_CHECK_RESTRICTION",
    "IGW_DESTINATION_ADDRESS_NOT_IN_RFC1918_EGRESS", "IGW_DESTINATION_ADDRESS_NOT_IN_RFC6598_EGRESS",
    "IGW_SOURCE_ADDRESS_NOT_IN_RFC1918_INGRESS", "IGW_SOURCE_ADDRESS_NOT_IN_RFC6598_INGRESS",
    "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS", "VPCE_GATEWAY_PROTOCOL_RESTRICTION", "PROTOCOL_RESTRICTION",
    "PCX_REQUIRES_ADDRESS_IN_VPC_CIDR", "BAD_STATE",
}


def test_every_reason_code_has_disposition_and_a_sentence():
    values = [r.value for r in hp.Reason]
    assert len(values) == len(set(values))
    for reason in hp.Reason:
        assert isinstance(reason.disposition, hp.Disposition), reason
        assert isinstance(reason.text, str) and reason.text, reason
        assert reason.explanation is None or reason.explanation in REACHABILITY_ANALYZER_CODES, reason
    delivered = {r for r in hp.Reason if r.disposition.delivered}
    assert delivered == {hp.Reason.DELIVERED, hp.Reason.DELIVERED_TO_FUNCTION,
                         hp.Reason.DELIVERED_TO_GATEWAY_ENDPOINT, hp.Reason.DELIVERED_TO_DNS_RESOLVER,
                         hp.Reason.EXITED_TO_INTERNET, hp.Reason.FORWARDED_TO_PEERING,
                         hp.Reason.DELIVERED_TO_LINK_LOCAL_SERVICE,
                         hp.Reason.TGW_NOT_EMULATED_ATTACHMENT}
    assert {d.name for d in hp.Disposition} == {"ACCEPTED", "DELIVERED_TO_SUBNET", "EXITS_NETWORK", "DENIED_OUT",
                                                "DENIED_IN", "NO_ROUTE", "NULL_ROUTED"}


def test_filters_leaving_the_sender_deny_out_and_all_others_deny_in():
    out = {hp.Reason.SG_EGRESS_DENY, hp.Reason.NACL_OUT_DENY}
    into = {hp.Reason.SG_INGRESS_DENY, hp.Reason.NACL_IN_DENY, hp.Reason.V2N_UNSOLICITED_INBOUND,
            hp.Reason.V2N_NO_CONNECTION, hp.Reason.V2N_UNSUPPORTED_PROTOCOL, hp.Reason.NAT_UNSOLICITED_INBOUND,
            hp.Reason.NAT_NO_CONNECTION, hp.Reason.NAT_NO_CONNECTION_RST, hp.Reason.NAT_UNSUPPORTED_PROTOCOL}
    assert {r.disposition for r in out} == {hp.Disposition.DENIED_OUT}
    assert {r.disposition for r in into} == {hp.Disposition.DENIED_IN}
    assert hp.Reason.NO_ROUTE.disposition == hp.Disposition.NO_ROUTE
    assert hp.Reason.BLACKHOLE_ROUTE.disposition == hp.Disposition.NULL_ROUTED
    assert hp.Reason.EXITED_TO_INTERNET.disposition == hp.Disposition.EXITS_NETWORK


def test_trace_names_nacl_rule_number_and_route():
    net = hp.Network.example()
    r = net.function("orders").send(IP(dst="10.0.21.10") / TCP(dport=6379, flags="S"), environment=0)
    (eni,) = [e for e in net.function("orders").hyperplane_enis if e.private_ip == r.packet.src]
    assert [(h.stage, h.resource, h.decision) for h in r.hops] == [
        ("invoke", "function:orders", "allow"),
        ("v2n-out", eni.id, "translate"),
        ("sg-egress", "sg-app", "allow"),
        ("route", "rtb-private", "route"),
        ("nacl-out", "acl-app-default", "allow"),
        ("nacl-in", "acl-cache", "allow"),
        ("sg-ingress", "sg-cache", "allow"),
    ]
    assert hop(r, "route").detail == f"from {eni.subnet_id}: 10.0.0.0/16 -> local"
    assert hop(r, "nacl-out").detail == f"{eni.subnet_id}: rule 100: allow all 0.0.0.0/0"
    assert hop(r, "nacl-in").detail == "subnet-cache-a: rule 100: allow tcp/6379-6379 10.0.0.0/16"
    assert hop(r, "sg-egress").detail == f"on {eni.id}: rule 0: all to 0.0.0.0/0"


def test_printed_result_reads_as_a_trace():
    net = hp.Network.example()
    r = net.function("orders").send(IP(dst="10.0.20.10") / TCP(dport=5432, flags="S")).reply(TCP(flags="SA"))
    text = str(r)
    lines = text.splitlines()
    assert lines[0] == ("DENIED_OUT (NACL_OUT_DENY): the subnet's network ACL denies it out "
                        "[SUBNET_ACL_RESTRICTION]")
    assert any("acl-data" in line and "rule *" in line and "deny" in line for line in lines)
    assert lines[-1].startswith("  packet: IP / TCP 10.0.20.10:postgresql > 10.0.")
    assert len(lines) == 1 + len(r.hops) + 1
    assert repr(r) == "<Result DENIED_OUT NACL_OUT_DENY>"


# == §6 the scripting interface ================================================================


def test_network_load_reads_yaml_and_json_topologies(tmp_path):
    example = load_example_topology()
    for name in ("net.yaml", "net.json"):
        dump_topology(example, tmp_path / name)
        net = hp.Network.load(tmp_path / name, ready=True)
        assert net.topology == example
        r = net.function("orders").send(IP(dst="10.0.20.10") / TCP(dport=5432, flags="S"))
        assert r.reason == hp.Reason.DELIVERED
    assert hp.Network.example().topology == example


def test_send_from_eni_instance_function_or_internet():
    net = hp.Network.example()
    by_eni = net.send(tcp("10.0.0.20", 443, sport=1111), source="eni-web")
    by_instance = net.send(tcp("10.0.0.20", 443, sport=1112), source="i-0web")
    assert by_eni.reason == by_instance.reason == hp.Reason.DELIVERED  # to itself, through its group
    assert by_eni.packet.src == by_instance.packet.src == "10.0.0.20"  # filled in from the ENI

    by_name = net.send(IP(dst="10.0.21.10") / TCP(dport=6379, flags="S"), source="orders")
    assert by_name.reason == hp.Reason.DELIVERED
    assert by_name.hops[0].resource == "function:orders"

    from_internet = net.send(tcp("203.0.113.20", 443, src="198.51.100.7"), source="internet")
    assert from_internet.reason == hp.Reason.DELIVERED and from_internet.packet.dst == "10.0.0.20"
    with pytest.raises(ValueError, match="eni-nope"):
        net.send(tcp("10.0.0.20", 443), source="eni-nope")


def test_reply_fills_reverse_addresses_and_ports():
    net = network()
    r = net.send(IP(dst=B1) / UDP(sport=5353, dport=53), source="eni-a1")
    back = r.reply(UDP())
    assert back.reason == hp.Reason.DELIVERED
    assert (back.packet.src, back.packet.sport, back.packet.dst, back.packet.dport) == (B1, 53, A1, 5353)
    assert back.hops[0].detail.startswith("on eni-b1:")  # sent by the receiver's ENI

    custom = r.reply(UDP(sport=5300))  # a field the caller sets is kept
    assert custom.packet.sport == 5300 and custom.packet.dport == 5353

    refused = net.send(tcp("8.8.8.8", 443), source="eni-a1")
    with pytest.raises(ValueError, match="not delivered"):
        refused.reply(TCP(flags="SA"))


def test_packet_after_translation_has_valid_checksums():
    net = hp.Network.example()
    orders = net.function("orders")
    results = [
        orders.send(IP(dst="93.184.216.34") / TCP(dport=443, flags="S") / b"hello"),  # V2N + NAT + IGW
        orders.send(IP(dst="10.0.0.2") / UDP(dport=53) / b"query"),  # V2N only
        net.send(IP(src="198.51.100.7", dst="203.0.113.20") / ICMP(id=9) / b"abc", source="internet"),
    ]
    results.append(results[0].reply(TCP(flags="SA") / b"world"))
    for r in results:
        assert r.delivered, str(r)
        wire = bytes(r.packet)
        again = IP(wire)
        assert again.src == r.packet.src and again.dst == r.packet.dst
        l4 = again.payload
        given = (again.chksum, l4.chksum)
        del again.chksum, l4.chksum
        recomputed = IP(bytes(again))
        assert given == (recomputed.chksum, recomputed.payload.chksum), r.packet.summary()


def test_batch_process_gives_the_same_verdicts_as_send():
    destinations = [("10.0.21.10", 6379), ("10.0.20.10", 5432), ("10.0.20.10", 22), ("93.184.216.34", 443),
                    ("52.216.8.1", 443), ("10.0.10.50", 443), ("10.0.0.2", 53), ("10.0.99.9", 80)]
    one_by_one = hp.Network.example()
    expected = [one_by_one.send(tcp(dst, port, sport=20000 + k), source="eni-web").reason
                for k, (dst, port) in enumerate(destinations)]

    batched = hp.Network.example()
    rows = np.zeros(len(destinations), dtype=PACKET)
    for k, (dst, port) in enumerate(destinations):
        rows[k] = (0.0, ip("10.0.0.20"), ip(dst), 20000 + k, port, 40, 6, SYN)
    res = batched.process(rows, hp.Origin.ENI, batched.compiled.eni_index["eni-web"])
    assert [hp.Reason(int(x)) for x in res.reason] == expected
    assert len(set(expected)) >= 4  # a varied batch, not one verdict eight times


def test_virtual_clock_only_moves_forward():
    net = hp.Network.example(now=100.0)
    assert net.now == 100.0
    assert net.advance(25) == 125.0 and net.now == 125.0
    with pytest.raises(ValueError):
        net.advance(-1)
    with pytest.raises(ValueError):
        net.advance(float("nan"))
    assert net.now == 125.0


def test_batch_sees_connections_opened_by_earlier_rows():
    net = network("""
security_groups:
  - {id: sg-client, vpc_id: vpc-dp}
network_interfaces:
  - {id: eni-a1, subnet_id: subnet-a, private_ip: 10.0.1.10, security_group_ids: [sg-client]}
""")  # sg-client: no inbound rule, so an answer gets in only as part of a tracked connection
    from hyperplane.records import ACK

    rows = np.zeros(4, dtype=PACKET)
    rows[0] = (0.0, ip(A1), ip(B1), 40000, 443, 40, 6, SYN)
    rows[1] = (0.0, ip(B1), ip(A1), 443, 40000, 40, 6, SYN | ACK)  # answers row 0
    rows[2] = (0.0, ip(A1), ip(B1), 40000, 443, 40, 6, ACK)
    rows[3] = (0.0, ip(B1), ip(A1), 443, 40001, 40, 6, SYN | ACK)  # answers nothing
    senders = [net.compiled.eni_index[e] for e in ("eni-a1", "eni-b1", "eni-a1", "eni-b1")]
    res = net.process(rows, hp.Origin.ENI, np.array(senders, dtype=np.int32))
    assert [hp.Reason(int(x)) for x in res.reason] == [
        hp.Reason.DELIVERED, hp.Reason.DELIVERED, hp.Reason.DELIVERED, hp.Reason.SG_INGRESS_DENY]


def test_framed_packets_are_accepted_and_answered_as_ip():
    from scapy.layers.l2 import Ether

    net = network()
    r = net.send(Ether() / IP(dst=B1) / TCP(sport=40000, dport=443, flags="S"), source="eni-a1")
    assert r.reason == hp.Reason.DELIVERED
    assert isinstance(r.packet, IP) and r.packet.dst == B1
    assert r.reply(TCP(flags="SA")).reason == hp.Reason.DELIVERED


DECIDED_BY = {  # reason -> the stages whose hop must say deny/drop
    hp.Reason.SG_EGRESS_DENY: {"sg-egress"}, hp.Reason.SG_INGRESS_DENY: {"sg-ingress"},
    hp.Reason.NACL_OUT_DENY: {"nacl-out"}, hp.Reason.NACL_IN_DENY: {"nacl-in"},
    hp.Reason.NO_PUBLIC_IP: {"igw-out"}, hp.Reason.PRIVATE_NAT_TO_INTERNET: {"igw-out"},
    hp.Reason.NOT_A_VPC_PUBLIC_ADDRESS: {"igw-in"}, hp.Reason.IGW_PRIVATE_ADDRESS_FROM_INTERNET: {"igw-in"},
    hp.Reason.IGW_PRIVATE_SOURCE: {"igw-in"}, hp.Reason.IGW_SHARED_SOURCE: {"igw-in"},
    hp.Reason.IGW_PRIVATE_DESTINATION: {"igw-out"}, hp.Reason.IGW_SHARED_DESTINATION: {"igw-out"},
    hp.Reason.V2N_UNSOLICITED_INBOUND: {"v2n-in"}, hp.Reason.V2N_NO_CONNECTION: {"v2n-out"},
    hp.Reason.V2N_UNSUPPORTED_PROTOCOL: {"v2n-out", "v2n-in"}, hp.Reason.ENI_CAPACITY: {"v2n-out"},
    hp.Reason.NAT_UNSOLICITED_INBOUND: {"nat-in"}, hp.Reason.NAT_NO_CONNECTION: {"nat-out"},
    hp.Reason.NAT_NO_CONNECTION_RST: {"nat-out"}, hp.Reason.NAT_UNSUPPORTED_PROTOCOL: {"nat-out"},
    hp.Reason.NAT_PORT_ALLOCATION_ERROR: {"nat-out"},
}


def test_the_hop_that_refused_a_packet_is_its_last_and_names_the_resource():
    net = hp.Network.example()
    sources = ["eni-web", "eni-db", "eni-cache", "eni-vpce-secrets-a", "orders", "report", "internet"]
    destinations = ["10.0.20.10", "10.0.21.10", "10.0.0.20", "10.0.10.50", "10.0.11.4", "93.184.216.34",
                    "52.216.8.1", "203.0.113.20", "203.0.113.10", "203.0.113.99"]
    layers = [lambda: TCP(sport=next(ports), dport=443, flags="S"),
              lambda: TCP(sport=next(ports), dport=5432, flags="S"),
              lambda: TCP(sport=next(ports), dport=6379, flags="A"), lambda: UDP(sport=next(ports), dport=53),
              lambda: ICMP(id=next(ports))]
    ports = iter(range(20000, 30000))
    checked = set()
    for source in sources:
        for dst in destinations:
            for layer in layers:
                head = IP(src="198.51.100.7", dst=dst) if source == "internet" else IP(dst=dst)
                r = net.send(head / layer(), source=source)
                refusals = [h for h in r.hops if h.decision in ("deny", "drop")]
                if r.delivered:
                    assert not refusals, str(r)
                    continue
                if r.reason not in DECIDED_BY:
                    continue
                checked.add(r.reason)
                last = r.hops[-1]
                assert last.decision in ("deny", "drop") and last.stage in DECIDED_BY[r.reason], str(r)
                if last.stage.startswith(("sg-", "nacl-")):
                    assert last.resource.startswith(("sg-", "acl-")), str(r)
    met = {r.name for r in checked}  # the sweep met many kinds of refusal
    assert met >= {"SG_EGRESS_DENY", "SG_INGRESS_DENY", "NACL_OUT_DENY", "NACL_IN_DENY", "NO_PUBLIC_IP",
                   "NOT_A_VPC_PUBLIC_ADDRESS", "NAT_UNSOLICITED_INBOUND", "V2N_UNSUPPORTED_PROTOCOL",
                   "IGW_PRIVATE_ADDRESS_FROM_INTERNET"}, met


def test_a_route_to_a_network_interface_that_is_gone_is_a_blackhole_before_any_nacl():
    # SPEC §4: "a route whose target is gone is a blackhole". A snapshot's route may name a
    # Hyperplane ENI left over from a function that no longer uses its (subnet, SG set) pair:
    # no pool takes it over, so nothing holds it in the data plane.
    import dataclasses
    import ipaddress

    from hyperplane.model import NetworkInterface, Route

    t = load_example_topology()
    leftover = NetworkInterface("eni-0leftover", "subnet-data-a", ipaddress.IPv4Address("10.0.20.99"),
                                ("sg-db",), kind="lambda")
    rtb = t.route_tables["rtb-private"]
    route = Route(ipaddress.IPv4Network("198.51.100.0/24"), "eni-0leftover")
    net = hp.Network(t.replace(leftover, dataclasses.replace(rtb, routes=rtb.routes + (route,))), ready=True)
    r = net.function("orders").send(IP(dst="198.51.100.7") / TCP(dport=443, flags="S"))
    assert r.reason == hp.Reason.BLACKHOLE_ROUTE and r.disposition == hp.Disposition.NULL_ROUTED
    assert [h.stage for h in r.hops if h.stage.startswith("nacl")] == []  # it never left the subnet
