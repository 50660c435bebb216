"""Compiled route tables, security groups and network ACLs (hyperplane.tables.policy).

Scenarios first, then differential tests: random tables and packets evaluated by the plain
per-packet reference below (readable, no arrays) and by the compiled kernels must agree exactly.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperplane._core import _policy
from hyperplane.tables.policy import (
    EGRESS,
    IMPLICIT_DENY_RULE,
    INBOUND,
    INGRESS,
    OUTBOUND,
    CompiledNetworkAcls,
    CompiledRoutes,
    CompiledSecurityGroups,
    NetworkAclEntrySpec,
    NetworkAclSpec,
    PolicyError,
    RouteSpec,
    SecurityGroupRuleSpec,
    SecurityGroupSetSpec,
    icmp_port,
)
from hyperplane.records import ICMP, PACKET, TCP, UDP, ip, packet

ANYWHERE = "0.0.0.0/0"


def column(values, dtype):
    return np.array(values, dtype=dtype)


def lookup(routes: CompiledRoutes, table: int, dst: str) -> int:
    return int(routes.lookup(column([table], np.int32), column([ip(dst)], np.uint32))[0])


def sg_check(sgs, sg_set, direction, peer, proto, port) -> tuple[bool, int]:
    allowed, rule = sgs.evaluate(column([sg_set], np.int32), direction, column([ip(peer)], np.uint32),
                                 column([proto], np.uint8), column([port], np.uint16))
    return bool(allowed[0]), int(rule[0])


def nacl_check(nacls, acl, direction, address, proto, port) -> tuple[bool, int]:
    allowed, number = nacls.evaluate(column([acl], np.int32), direction,
                                     column([ip(address)], np.uint32), column([proto], np.uint8),
                                     column([port], np.uint16))
    return bool(allowed[0]), int(number[0])


def tcp(ports, *cidrs, **kw):
    lo, hi = ports if isinstance(ports, tuple) else (ports, ports)
    return SecurityGroupRuleSpec(TCP, lo, hi, cidrs, **kw)


def entry(number, proto, cidr, allow, ports=(-1, -1)):
    return NetworkAclEntrySpec(number, proto, cidr, allow, ports[0], ports[1])


####################################################################################################
# Route tables


@pytest.fixture
def private_table():
    # a private subnet's table: local, NAT default route, S3 gateway endpoint, a peering route
    return CompiledRoutes.compile([[
        RouteSpec.static("10.0.0.0/16", ref="local"),
        RouteSpec.static(ANYWHERE, ref="nat-1"),
        RouteSpec.from_prefix_list(["52.216.0.0/15", "3.5.0.0/19"], ref="vpce-s3"),
        RouteSpec.static("10.0.64.0/18", ref="eni-firewall"),
        RouteSpec.static("172.16.0.0/12", ref="pcx-1"),
    ]])


def test_longest_prefix_wins(private_table):
    assert private_table.route(0, lookup(private_table, 0, "10.0.70.1")).ref == "eni-firewall"
    assert private_table.route(0, lookup(private_table, 0, "10.0.1.1")).ref == "local"


def test_default_route_catches_everything_else(private_table):
    assert private_table.route(0, lookup(private_table, 0, "8.8.8.8")).ref == "nat-1"


def test_prefix_list_route_reaches_the_gateway_endpoint(private_table):
    decision = private_table.explain(0, "52.217.3.4")
    assert decision.route.ref == "vpce-s3"
    assert decision.cidr == ipaddress.IPv4Network("52.216.0.0/15")


def test_static_route_beats_prefix_list_route_of_equal_length():
    routes = CompiledRoutes.compile([[
        RouteSpec.from_prefix_list(["3.5.0.0/19"], ref="vpce-s3"),
        RouteSpec.static("3.5.0.0/19", ref="pcx-1"),
        RouteSpec.static(ANYWHERE, ref="igw"),
    ]])
    assert routes.explain(0, "3.5.1.1").route.ref == "pcx-1"


def test_longer_prefix_list_cidr_beats_shorter_static_route():
    routes = CompiledRoutes.compile([[
        RouteSpec.static("3.0.0.0/8", ref="pcx-1"),
        RouteSpec.from_prefix_list(["3.5.0.0/19"], ref="vpce-s3"),
    ]])
    assert routes.explain(0, "3.5.1.1").route.ref == "vpce-s3"
    assert routes.explain(0, "3.6.1.1").route.ref == "pcx-1"


def test_no_matching_route_gives_minus_one():
    routes = CompiledRoutes.compile([[RouteSpec.static("10.0.0.0/16")], []])
    assert lookup(routes, 0, "192.168.1.1") == -1
    assert lookup(routes, 1, "10.0.0.1") == -1  # an empty table routes nothing
    decision = routes.explain(0, "192.168.1.1")
    assert decision.route is None and decision.cidr is None


def test_each_packet_uses_its_own_route_table():
    routes = CompiledRoutes.compile([
        [RouteSpec.static("10.0.0.0/16", ref="local"), RouteSpec.static(ANYWHERE, ref="igw")],
        [RouteSpec.static("10.0.0.0/16", ref="local"), RouteSpec.static(ANYWHERE, ref="nat")],
    ])
    out = routes.lookup(column([0, 1, -1], np.int32), column([ip("1.1.1.1")] * 3, np.uint32))
    assert [routes.route(t, r) and routes.route(t, r).ref for t, r in zip((0, 1), out)] == ["igw", "nat"]
    assert out[2] == -1  # table -1: not applicable


def test_route_lookup_reads_destination_of_records(private_table):
    records = np.concatenate([packet("10.0.1.5", "10.0.70.1"), packet("10.0.70.1", "8.8.8.8")])
    out = private_table.lookup_records(records, column([0, 0], np.int32))
    assert [private_table.route(0, r).ref for r in out] == ["eni-firewall", "nat-1"]


####################################################################################################
# Security groups


@pytest.fixture
def database_sets():
    # set 0: an RDS ENI with two groups (app access, admin access); set 1: a fresh group
    app = [tcp(5432, "10.0.1.0/24", group=0, rule=0)]
    admin = [tcp(22, "10.0.9.7/32", group=1, rule=0),
             SecurityGroupRuleSpec(ICMP, 8, -1, [ANYWHERE], group=1, rule=1)]
    everything = [SecurityGroupRuleSpec(-1, cidrs=[ANYWHERE], group=0, rule=0)]
    return CompiledSecurityGroups.compile([
        SecurityGroupSetSpec(ingress=app + admin, egress=everything),
        SecurityGroupSetSpec(ingress=[], egress=everything),
    ])


def test_security_group_set_allows_what_any_of_its_groups_allows(database_sets):
    assert sg_check(database_sets, 0, INGRESS, "10.0.1.7", TCP, 5432) == (True, 0)
    assert sg_check(database_sets, 0, INGRESS, "10.0.9.7", TCP, 22) == (True, 1)
    assert database_sets.rule(0, INGRESS, 1).group == 1


def test_security_group_denies_when_no_rule_matches(database_sets):
    assert sg_check(database_sets, 0, INGRESS, "10.0.2.7", TCP, 5432) == (False, -1)
    assert sg_check(database_sets, 0, INGRESS, "10.0.1.7", TCP, 5433) == (False, -1)
    assert sg_check(database_sets, 0, INGRESS, "10.0.1.7", UDP, 5432) == (False, -1)
    assert sg_check(database_sets, 1, INGRESS, "10.0.1.7", TCP, 5432) == (False, -1)


def test_security_group_icmp_rule_matches_type_and_any_code(database_sets):
    assert sg_check(database_sets, 0, INGRESS, "1.2.3.4", ICMP, icmp_port(8, 0)) == (True, 2)
    assert sg_check(database_sets, 0, INGRESS, "1.2.3.4", ICMP, icmp_port(0, 0)) == (False, -1)


def test_security_group_icmp_rule_with_code_matches_only_that_code():
    sgs = CompiledSecurityGroups.compile([([SecurityGroupRuleSpec("icmp", 3, 4, [ANYWHERE])], [])])
    assert sg_check(sgs, 0, INGRESS, "1.2.3.4", ICMP, icmp_port(3, 4)) == (True, 0)
    assert sg_check(sgs, 0, INGRESS, "1.2.3.4", ICMP, icmp_port(3, 3)) == (False, -1)


def test_all_protocol_rule_ignores_ports(database_sets):
    for proto, port in ((TCP, 1), (UDP, 65535), (ICMP, icmp_port(3, 1)), (50, 0)):
        assert sg_check(database_sets, 0, EGRESS, "93.184.216.34", proto, port) == (True, 0)


def test_security_group_peer_matches_member_private_ips_only():
    # sg-app as a peer, expanded by the caller to the /32 private IPs of its members
    sgs = CompiledSecurityGroups.compile([([tcp(5432, "10.0.1.10/32", "10.0.2.20/32")], [])])
    assert sg_check(sgs, 0, INGRESS, "10.0.2.20", TCP, 5432) == (True, 0)
    assert sg_check(sgs, 0, INGRESS, "10.0.2.21", TCP, 5432) == (False, -1)
    assert sgs.explain(0, INGRESS, "10.0.2.20", TCP, 5432).cidr == ipaddress.IPv4Network("10.0.2.20/32")


def test_first_matching_rule_of_the_set_is_reported():
    sgs = CompiledSecurityGroups.compile([([tcp((0, 65535), "10.0.0.0/8"), tcp(443, ANYWHERE),
                                            tcp(443, "10.0.0.0/16")], [])])
    assert sg_check(sgs, 0, INGRESS, "10.0.0.1", TCP, 443) == (True, 0)
    assert sg_check(sgs, 0, INGRESS, "11.0.0.1", TCP, 443) == (True, 1)


def test_security_group_records_match_source_on_ingress_and_destination_on_egress():
    sgs = CompiledSecurityGroups.compile([([tcp(443, "10.0.1.0/24")], [tcp(443, "10.0.2.0/24")])])
    records = np.concatenate([packet("10.0.1.5", "10.0.2.5", 40000, 443)] * 2
                             + [packet("10.0.2.5", "10.0.1.5", 40000, 443)] * 2)
    allowed, rule = sgs.evaluate_records(records, column([0] * 4, np.int32),
                                         column([INGRESS, EGRESS, INGRESS, EGRESS], np.uint8))
    assert allowed.tolist() == [1, 1, 0, 0]
    assert rule.tolist() == [0, 0, -1, -1]


def test_security_group_records_read_icmp_type_from_flags():
    sgs = CompiledSecurityGroups.compile([([SecurityGroupRuleSpec(ICMP, 8, -1, [ANYWHERE])], [])])
    echo = packet("1.1.1.1", "10.0.0.5", 7, 0, proto=ICMP, flags=8)
    reply = packet("1.1.1.1", "10.0.0.5", 0, 7, proto=ICMP, flags=0)
    allowed, _ = sgs.evaluate_records(np.concatenate([echo, reply]), column([0, 0], np.int32), INGRESS)
    assert allowed.tolist() == [1, 0]


def test_packet_without_security_group_passes_unevaluated(database_sets):
    assert sg_check(database_sets, -1, INGRESS, "1.1.1.1", TCP, 1) == (True, -1)


def test_security_group_explain_names_the_rule(database_sets):
    decision = database_sets.explain(0, INGRESS, "10.0.1.7", TCP, 5432)
    assert decision.allowed and decision.rule.group == 0 and decision.rule.rule == 0
    assert decision.cidr == ipaddress.IPv4Network("10.0.1.0/24")
    denied = database_sets.explain(0, INGRESS, "10.0.3.7", TCP, 5432)
    assert not denied.allowed and denied.rule is None and denied.rule_index == -1


####################################################################################################
# Network ACLs


def test_nacl_first_match_by_rule_number_even_when_a_later_rule_allows():
    nacls = CompiledNetworkAcls.compile([NetworkAclSpec(inbound=[
        entry(200, -1, ANYWHERE, True),
        entry(100, TCP, "203.0.113.0/24", False, (0, 65535)),  # listed second, numbered first
    ])])
    assert nacl_check(nacls, 0, INBOUND, "203.0.113.9", TCP, 443) == (False, 100)
    assert nacl_check(nacls, 0, INBOUND, "203.0.113.9", UDP, 53) == (True, 200)
    assert nacl_check(nacls, 0, INBOUND, "198.51.100.1", TCP, 443) == (True, 200)


def test_nacl_implicit_deny_reports_rule_32767():
    nacls = CompiledNetworkAcls.compile([NetworkAclSpec(inbound=[entry(100, TCP, ANYWHERE, True, (443, 443))])])
    assert nacl_check(nacls, 0, INBOUND, "1.1.1.1", TCP, 80) == (False, IMPLICIT_DENY_RULE)
    assert nacl_check(nacls, 0, OUTBOUND, "1.1.1.1", TCP, 443) == (False, 32767)
    decision = nacls.explain(0, OUTBOUND, "1.1.1.1", TCP, 443)
    assert decision.entry is None and decision.rule_number == 32767 and not decision.allowed


def test_new_custom_nacl_denies_everything_and_default_allows_everything():
    default = NetworkAclSpec([entry(100, -1, ANYWHERE, True)], [entry(100, -1, ANYWHERE, True)])
    nacls = CompiledNetworkAcls.compile([NetworkAclSpec(), default])
    for direction in (INBOUND, OUTBOUND):
        assert nacl_check(nacls, 0, direction, "10.0.0.1", TCP, 443) == (False, 32767)
        assert nacl_check(nacls, 1, direction, "10.0.0.1", UDP, 53) == (True, 100)


def test_reply_to_ephemeral_port_denied_when_outbound_rules_lack_1024_65535():
    # a server subnet admits HTTPS but only lets port 443 out: its replies go to the client's
    # ephemeral port (Lambda's 1024-65535), which no outbound entry allows
    server = NetworkAclSpec(inbound=[entry(100, TCP, ANYWHERE, True, (443, 443))],
                            outbound=[entry(100, TCP, ANYWHERE, True, (443, 443))])
    fixed = NetworkAclSpec(inbound=server.inbound,
                           outbound=[entry(100, TCP, ANYWHERE, True, (1024, 65535))])
    nacls = CompiledNetworkAcls.compile([server, fixed])
    reply = packet("10.0.2.10", "10.0.1.200", 443, 40123)
    allowed, number = nacls.evaluate_records(np.concatenate([reply, reply]), column([0, 1], np.int32), OUTBOUND)
    assert allowed.tolist() == [0, 1]
    assert number.tolist() == [32767, 100]


def test_nacl_icmp_entry_matches_type_and_code():
    nacls = CompiledNetworkAcls.compile([NetworkAclSpec(inbound=[entry(10, ICMP, ANYWHERE, True, (3, 4))])])
    assert nacl_check(nacls, 0, INBOUND, "1.1.1.1", ICMP, icmp_port(3, 4)) == (True, 10)
    assert nacl_check(nacls, 0, INBOUND, "1.1.1.1", ICMP, icmp_port(3, 1)) == (False, 32767)


def test_nacl_not_crossed_passes_with_rule_minus_one():
    nacls = CompiledNetworkAcls.compile([NetworkAclSpec()])
    assert nacl_check(nacls, -1, INBOUND, "1.1.1.1", TCP, 443) == (True, -1)


def test_nacl_explain_returns_the_deciding_entry():
    deny = entry(90, -1, "10.9.0.0/16", False)
    nacls = CompiledNetworkAcls.compile([NetworkAclSpec(inbound=[entry(100, -1, ANYWHERE, True), deny])])
    decision = nacls.explain(0, INBOUND, "10.9.1.1", UDP, 53)
    assert decision.entry == deny and decision.rule_number == 90 and not decision.allowed
    assert nacls.entry(0, INBOUND, 90) == deny


####################################################################################################
# Bad input: clear errors naming the argument, never a crash


@pytest.fixture
def one_of_each():
    routes = CompiledRoutes.compile([[RouteSpec.static(ANYWHERE)]])
    sgs = CompiledSecurityGroups.compile([([tcp(443, ANYWHERE)], [])])
    nacls = CompiledNetworkAcls.compile([NetworkAclSpec()])
    return routes, sgs, nacls


def test_out_of_range_table_index_names_argument_and_position(one_of_each):
    routes, _, _ = one_of_each
    with pytest.raises(ValueError, match=r"table_idx\[1\] = 5 is out of range: 1 compiled"):
        routes.lookup(column([0, 5], np.int32), column([1, 2], np.uint32))
    with pytest.raises(ValueError, match=r"table_idx\[0\] = -2"):
        routes.lookup(column([-2], np.int32), column([1], np.uint32))


def test_wrong_dtype_names_argument(one_of_each):
    routes, sgs, _ = one_of_each
    with pytest.raises(ValueError, match="dst: expected dtype uint32, got int64"):
        routes.lookup(column([0], np.int32), column([1], np.int64))
    with pytest.raises(ValueError, match="port: expected dtype uint16"):
        sgs.evaluate(column([0], np.int32), 0, column([1], np.uint32), column([6], np.uint8),
                     column([443], np.int32))
    with pytest.raises(TypeError, match="peer: expected a numpy array"):
        sgs.evaluate(column([0], np.int32), 0, [1], column([6], np.uint8), column([443], np.uint16))


def test_mismatched_lengths_name_argument(one_of_each):
    _, sgs, nacls = one_of_each
    with pytest.raises(ValueError, match="proto: length 2 does not match the batch length 1"):
        sgs.evaluate(column([0], np.int32), 0, column([1], np.uint32), column([6, 6], np.uint8),
                     column([443], np.uint16))
    with pytest.raises(ValueError, match="direction: length 0"):
        nacls.evaluate(column([0], np.int32), column([], np.uint8), column([1], np.uint32),
                       column([6], np.uint8), column([443], np.uint16))


def test_bad_direction_is_rejected(one_of_each):
    _, sgs, nacls = one_of_each
    args = (column([1], np.uint32), column([6], np.uint8), column([443], np.uint16))
    with pytest.raises(ValueError, match="direction = 2"):
        sgs.evaluate(column([0], np.int32), 2, *args)
    with pytest.raises(ValueError, match=r"direction\[0\] = 7"):
        nacls.evaluate(column([0], np.int32), column([7], np.uint8), *args)
    with pytest.raises(ValueError, match=r"nacl\[0\] = 3 is out of range"):
        nacls.evaluate(column([3], np.int32), 0, *args)


def test_non_contiguous_column_is_rejected(one_of_each):
    routes, _, _ = one_of_each
    with pytest.raises(ValueError, match="dst: expected a C-contiguous array"):
        routes.lookup(column([0, 0], np.int32), column([1, 2, 3, 4], np.uint32)[::2])
    with pytest.raises(ValueError, match="dst: expected dtype uint32"):
        routes.lookup(column([0], np.int32), np.zeros(1, dtype=PACKET))


def test_empty_batch_gives_empty_results(one_of_each):
    routes, sgs, nacls = one_of_each
    assert routes.lookup(column([], np.int32), column([], np.uint32)).shape == (0,)
    allowed, rule = nacls.evaluate_records(np.zeros(0, dtype=PACKET), column([], np.int32), 0)
    assert allowed.shape == rule.shape == (0,)


def test_invalid_specs_name_the_place():
    with pytest.raises(PolicyError, match=r"route table 0, route 1, cidrs\[0\]: '10.0.0.1/16'"):
        CompiledRoutes.compile([[RouteSpec.static(ANYWHERE), RouteSpec.static("10.0.0.1/16")]])
    with pytest.raises(PolicyError, match=r"security group set 0, egress\[0\]: port range 80..22"):
        CompiledSecurityGroups.compile([([], [tcp((80, 22), ANYWHERE)])])
    with pytest.raises(PolicyError, match=r"network ACL 0, inbound\[1\]: rule number 100 already used"):
        CompiledNetworkAcls.compile([([entry(100, -1, ANYWHERE, True), entry(100, 6, ANYWHERE, False)], [])])
    with pytest.raises(PolicyError, match="rule number 32767 is outside 1..32766"):
        CompiledNetworkAcls.compile([([entry(32767, -1, ANYWHERE, True)], [])])
    with pytest.raises(PolicyError, match="unknown protocol 'sctp'"):
        CompiledSecurityGroups.compile([([SecurityGroupRuleSpec("sctp", cidrs=[ANYWHERE])], [])])


def test_hand_built_tables_are_validated_before_any_lookup():
    # the compiled classes trust nothing they did not check: garbage raises, never crashes
    with pytest.raises(ValueError, match="bounds: slice 0 does not start at 0"):
        _policy.RouteTables([0, 1], np.array([5], np.uint32), [0], [0])
    with pytest.raises(ValueError, match=r"winner\[0\] = 9 is outside"):
        _policy.RouteTables([0, 1], np.array([0], np.uint32), [9], [0])
    with pytest.raises(ValueError, match="offsets must run from 0"):
        _policy.SecurityGroupSets([0, 1, 5], [0, 0], [0, 0], [0, 1], [0], [-1], 0)


def test_cidrs_accept_strings_networks_and_integer_pairs():
    routes = CompiledRoutes.compile([[RouteSpec.static(ipaddress.IPv4Network("10.0.0.0/16")),
                                      RouteSpec.static((ip("10.0.1.0"), 24)),
                                      RouteSpec.static(" 10.0.1.128/25 ")]])
    assert [lookup(routes, 0, a) for a in ("10.0.0.1", "10.0.1.1", "10.0.1.200")] == [0, 1, 2]
    for bad in ("10.0.0.0/33", "10.0.0/8", "10.0.0.0", (ip("10.0.0.0"), 40), 42):
        with pytest.raises(PolicyError, match=r"route table 0, route 0, cidrs\[0\]"):
            CompiledRoutes.compile([[RouteSpec.static(bad)]])


def test_large_batch_mixing_sets_and_not_applicable_packets():
    # more packets than the kernels search in lockstep, with a ragged tail and -1 lanes
    sgs = CompiledSecurityGroups.compile([([tcp(443, "10.0.0.0/8")], []), ([tcp(22, ANYWHERE)], [])])
    n = 1003
    index = column([(-1, 0, 1)[i % 3] for i in range(n)], np.int32)
    peer = column([ip("10.1.2.3")] * n, np.uint32)
    port = column([(443, 22)[i % 2] for i in range(n)], np.uint16)
    allowed, rule = sgs.evaluate(index, INGRESS, peer, column([TCP] * n, np.uint8), port)
    want = [(True, -1) if s == -1 else ((True, 0) if (s, p) in ((0, 443), (1, 22)) else (False, -1))
            for s, p in zip(index.tolist(), port.tolist())]
    assert list(zip(allowed.astype(bool).tolist(), rule.tolist())) == want


####################################################################################################
# Differential tests: compiled kernels == the plain reference


def contains(cidr, address: int) -> bool:
    return ipaddress.IPv4Address(address) in ipaddress.IPv4Network(cidr)


def reference_route(routes: list[RouteSpec], dst: int) -> int:
    """Longest prefix; at equal length static over prefix list; then the first listed."""
    best, best_rank = -1, None
    for r, route in enumerate(routes):
        for cidr in route.cidrs:
            if contains(cidr, dst):
                rank = (ipaddress.IPv4Network(cidr).prefixlen, not route.prefix_list)
                if best_rank is None or rank > best_rank:
                    best, best_rank = r, rank
    return best


def rule_matches(protocol, from_port, to_port, cidrs, address, proto, port) -> bool:
    """AWS matching of one SG rule or NACL entry (ICMP ``port`` is type<<8 | code)."""
    if protocol != -1 and protocol != proto:
        return False
    if protocol in (TCP, UDP) and not (from_port == -1 and to_port == -1):
        if not from_port <= port <= to_port:
            return False
    if protocol == ICMP and from_port != -1:
        if port >> 8 != from_port or (to_port != -1 and port & 0xFF != to_port):
            return False
    return any(contains(cidr, address) for cidr in cidrs)


def reference_security_groups(rules: list[SecurityGroupRuleSpec] | None, peer, proto, port):
    if rules is None:  # no security group at this point: passes, no rule
        return True, -1
    for i, rule in enumerate(rules):
        if rule_matches(rule.protocol, rule.from_port, rule.to_port, rule.cidrs, peer, proto, port):
            return True, i
    return False, -1


def reference_network_acl(entries: list[NetworkAclEntrySpec] | None, address, proto, port):
    if entries is None:  # no network ACL crossed: passes, rule -1
        return True, -1
    for e in sorted(entries, key=lambda e: e.rule_number):
        if rule_matches(e.protocol, e.from_port, e.to_port, [e.cidr], address, proto, port):
            return e.allow, e.rule_number
    return False, IMPLICIT_DENY_RULE


# CIDRs cluster around a few bases so that they nest and overlap; addresses are drawn near them
BASES = [ip("10.0.0.0"), ip("10.0.1.0"), ip("10.1.0.0"), ip("52.216.0.0"), ip("0.0.0.0"),
         ip("255.255.255.255")]


@st.composite
def cidrs(draw):
    plen = draw(st.integers(0, 32))
    base = draw(st.sampled_from(BASES) | st.integers(0, 2**32 - 1))
    mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
    return str(ipaddress.IPv4Network((base & mask, plen)))


def addresses_near(networks: list[str]):
    edges = []
    for cidr in networks:
        net = ipaddress.IPv4Network(cidr)
        lo, hi = int(net.network_address), int(net.broadcast_address)
        edges += [lo, hi, max(lo - 1, 0), min(hi + 1, 2**32 - 1)]
    near = st.sampled_from(edges) if edges else st.nothing()
    return near | st.integers(0, 2**32 - 1) | st.sampled_from(BASES)


route_specs = st.one_of(
    st.builds(RouteSpec.static, cidrs()),
    st.builds(RouteSpec.from_prefix_list, st.lists(cidrs(), max_size=4)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables=st.lists(st.lists(route_specs, max_size=12), min_size=1, max_size=4), data=st.data())
def test_route_lookup_matches_reference(tables, data):
    routes = CompiledRoutes.compile(tables)
    networks = [c for t in tables for r in t for c in r.cidrs]
    packets = data.draw(st.lists(st.tuples(st.integers(-1, len(tables) - 1), addresses_near(networks)),
                                 min_size=1, max_size=60))
    got = routes.lookup(column([t for t, _ in packets], np.int32), column([a for _, a in packets], np.uint32))
    assert got.tolist() == [reference_route(tables[t], a) if t >= 0 else -1 for t, a in packets]
    records = np.zeros(len(packets), dtype=PACKET)
    records["dst_ip"] = [a for _, a in packets]
    assert routes.lookup_records(records, column([t for t, _ in packets], np.int32)).tolist() == got.tolist()
    t, a = max(packets)
    if t < 0:
        return
    decision = routes.explain(t, a)
    assert decision.route_index == reference_route(tables[t], a)
    if decision.cidr is not None:
        assert contains(decision.cidr, a) and str(decision.cidr) in decision.route.cidrs


PROTOCOLS = [-1, ICMP, TCP, UDP, 50]


@st.composite
def port_fields(draw, protocol):
    if protocol in (TCP, UDP):
        if draw(st.booleans()) and protocol == UDP:
            return -1, -1
        lo = draw(st.sampled_from([0, 22, 443, 1024, 65535]) | st.integers(0, 65535))
        return lo, draw(st.integers(lo, 65535) | st.just(lo))
    if protocol == ICMP:
        icmp_type = draw(st.sampled_from([-1, 0, 3, 8]))
        return icmp_type, -1 if icmp_type == -1 else draw(st.sampled_from([-1, 0, 4]))
    return -1, -1


@st.composite
def sg_rules(draw):
    protocol = draw(st.sampled_from(PROTOCOLS))
    lo, hi = draw(port_fields(protocol))
    return SecurityGroupRuleSpec(protocol, lo, hi, draw(st.lists(cidrs(), max_size=3)))


@st.composite
def nacl_entries(draw):
    numbers = draw(st.lists(st.integers(1, 32766), unique=True, max_size=10))
    out = []
    for number in numbers:
        protocol = draw(st.sampled_from(PROTOCOLS))
        lo, hi = draw(port_fields(protocol))
        out.append(NetworkAclEntrySpec(number, protocol, draw(cidrs()), draw(st.booleans()), lo, hi))
    return out


@st.composite
def packets_for(draw, count, networks, ports):
    proto = draw(st.sampled_from([TCP, UDP, ICMP, 50, 0]))
    if proto == ICMP:
        port = icmp_port(draw(st.sampled_from([0, 3, 8, 11])), draw(st.sampled_from([0, 1, 4])))
    else:
        port = draw(st.sampled_from(ports) | st.integers(0, 65535))
    index = draw(st.integers(0, count - 1) | st.just(-1))  # -1: stage not applicable
    return index, draw(st.integers(0, 1)), draw(addresses_near(networks)), proto, port


def columns(packets):
    index, direction, address, proto, port = zip(*packets)
    return (column(index, np.int32), column(direction, np.uint8), column(address, np.uint32),
            column(proto, np.uint8), column(port, np.uint16))


def as_records(packets) -> np.ndarray:
    """The same packets as PACKET records: the matched address on the side the direction reads."""
    records = np.zeros(len(packets), dtype=PACKET)
    for i, (_, direction, address, proto, port) in enumerate(packets):
        other = address ^ 0x5A5A5A5A
        src, dst = (address, other) if direction == 0 else (other, address)
        flags = port >> 8 if proto == ICMP else 0
        records[i] = (0.0, src, dst, 1234, 0 if proto == ICMP else port, 40, proto, flags)
    return records


def icmp_code_zero(packets):
    """Records carry no ICMP code: the records path sees code 0."""
    return [(i, d, a, p, port & 0xFF00 if p == ICMP else port) for i, d, a, p, port in packets]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sets=st.lists(st.tuples(st.lists(sg_rules(), max_size=8), st.lists(sg_rules(), max_size=8)),
                     min_size=1, max_size=3), data=st.data())
def test_security_group_evaluation_matches_reference(sets, data):
    sgs = CompiledSecurityGroups.compile(sets)
    rules = [r for pair in sets for side in pair for r in side]
    networks = [c for r in rules for c in r.cidrs]
    ports = [p for r in rules for p in (r.from_port, r.to_port) if p >= 0] or [0]
    packets = data.draw(st.lists(packets_for(len(sets), networks, ports), min_size=1, max_size=60))
    expected = [reference_security_groups(sets[s][d] if s >= 0 else None, a, p, port) for s, d, a, p, port in packets]

    allowed, rule = sgs.evaluate(*columns(packets))
    assert list(zip(allowed.astype(bool).tolist(), rule.tolist())) == expected

    coded = icmp_code_zero(packets)
    allowed, rule = sgs.evaluate_records(as_records(packets), column([p[0] for p in packets], np.int32),
                                         column([p[1] for p in packets], np.uint8))
    assert list(zip(allowed.astype(bool).tolist(), rule.tolist())) == [
        reference_security_groups(sets[s][d] if s >= 0 else None, a, p, port) for s, d, a, p, port in coded]

    for (s, d, a, p, port), want in zip(packets, expected):
        if s >= 0:
            decision = sgs.explain(s, d, a, p, port)
            assert (decision.allowed, decision.rule_index) == want
            break


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(acls=st.lists(st.tuples(nacl_entries(), nacl_entries()), min_size=1, max_size=3), data=st.data())
def test_network_acl_evaluation_matches_reference(acls, data):
    nacls = CompiledNetworkAcls.compile(acls)
    entries = [e for pair in acls for side in pair for e in side]
    ports = [p for e in entries for p in (e.from_port, e.to_port) if p >= 0] or [0]
    packets = data.draw(st.lists(packets_for(len(acls), [e.cidr for e in entries], ports),
                                 min_size=1, max_size=60))
    expected = [reference_network_acl(acls[n][d] if n >= 0 else None, a, p, port) for n, d, a, p, port in packets]

    allowed, number = nacls.evaluate(*columns(packets))
    assert list(zip(allowed.astype(bool).tolist(), number.tolist())) == expected

    allowed, number = nacls.evaluate_records(as_records(packets), column([p[0] for p in packets], np.int32),
                                             column([p[1] for p in packets], np.uint8))
    assert list(zip(allowed.astype(bool).tolist(), number.tolist())) == [
        reference_network_acl(acls[n][d] if n >= 0 else None, a, p, port) for n, d, a, p, port in icmp_code_zero(packets)]

    for (n, d, a, p, port), want in zip(packets, expected):
        if n >= 0:
            decision = nacls.explain(n, d, a, p, port)
            assert (decision.allowed, decision.rule_number) == want
            assert decision.entry is None or decision.entry.rule_number == decision.rule_number
            break


def _untracked(groups: CompiledSecurityGroups, direction: int, proto: int, sport: int, dport: int) -> int:
    rows = np.zeros(1, dtype=PACKET)
    rows[0] = (0.0, ip("198.51.100.7"), ip("10.0.0.10"), sport, dport, 40, proto, 0)
    return int(groups.untracked_records(rows, np.zeros(1, np.int32), direction)[0])


def test_open_rules_both_ways_leave_tcp_and_udp_flows_untracked_by_protocol_and_port():
    # EC2 "Untracked connections": "If a security group rule permits TCP or UDP flows for all
    # traffic (0.0.0.0/0 or ::/0) and there is a corresponding rule in the other direction that
    # permits all response traffic (0.0.0.0/0 or ::/0) for any port (0-65535), then that flow of
    # traffic is not tracked"
    groups = CompiledSecurityGroups.compile([SecurityGroupSetSpec(
        ingress=(SecurityGroupRuleSpec("tcp", 22, 22, (ANYWHERE,)),
                 SecurityGroupRuleSpec("tcp", 80, 80, ("203.0.113.0/24",)),
                 SecurityGroupRuleSpec("udp", 53, 53, (ANYWHERE,))),
        egress=(SecurityGroupRuleSpec("tcp", 0, 65535, (ANYWHERE,)),))])
    assert _untracked(groups, INGRESS, TCP, 50000, 22) == 1   # the SSH request
    assert _untracked(groups, EGRESS, TCP, 22, 50000) == 1    # ... and its answer
    assert _untracked(groups, INGRESS, TCP, 50000, 80) == 0   # a narrower rule: tracked
    assert _untracked(groups, INGRESS, UDP, 50000, 53) == 0   # no open UDP rule outbound
    assert _untracked(groups, EGRESS, TCP, 50000, 443) == 0   # an outbound request: no open inbound for all ports
    assert _untracked(groups, INGRESS, ICMP, 0, 0) == 0


def test_hand_built_untracked_tables_are_validated():
    with pytest.raises(ValueError, match="open_off, open_bounds and open_flag come together"):
        _policy.SecurityGroupSets([0, 1, 2], [0, 0], [0, 0], [0, 1], [0], [-1], 0, open_off=[0, 1, 2])
    with pytest.raises(ValueError, match="open_flag: values are 0 or 1"):
        _policy.SecurityGroupSets([0, 1, 2], [0, 0], [0, 0], [0, 1], [0], [-1], 0,
                                  open_off=[0, 1, 2], open_bounds=[0, 0], open_flag=[2, 0])
    with pytest.raises(ValueError, match="open_bounds: slice 1 does not start at 0"):
        _policy.SecurityGroupSets([0, 1, 2], [0, 0], [0, 0], [0, 1], [0], [-1], 0,
                                  open_off=[0, 1, 2], open_bounds=[0, 7], open_flag=[0, 0])
