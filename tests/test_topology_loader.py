"""Scenario tests for the topology layer: the file format, AWS defaults, validation errors,
round trips, lookups and the subnet address allocator."""

from __future__ import annotations

import copy
import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers import inet as scapy

import hyperplane as hp
from hyperplane.errors import HyperplaneError, SubnetOutOfAddresses, TopologyError, UnknownResource
from hyperplane.loaders import (
    EXAMPLE_TOPOLOGY, dump_topology, load_example_topology, load_topology, parse_topology, topology_document,
)
from hyperplane.model import (
    ALL_PORTS, ICMP, PROTOCOL_ALL, TCP, UDP, ExecutionRole, Route, SecurityGroupRule,
    Subnet, Topology, next_free_address, parse_protocol,
)

ANY = IPv4Network("0.0.0.0/0")

BASE: dict[str, Any] = {
    "account_id": "123456789012",
    "region": "eu-west-1",
    "vpcs": [{"id": "vpc-1", "cidr": "10.0.0.0/16"}],
    "subnets": [
        {"id": "subnet-a", "vpc_id": "vpc-1", "cidr": "10.0.0.0/24", "availability_zone": "eu-west-1a", "route_table_id": "rtb-public"},
        {"id": "subnet-b", "vpc_id": "vpc-1", "cidr": "10.0.1.0/24", "availability_zone": "eu-west-1b"},
        {"id": "subnet-c", "vpc_id": "vpc-1", "cidr": "10.0.2.0/24", "availability_zone": "eu-west-1a", "network_acl_id": "acl-1"},
    ],
    "route_tables": [{"id": "rtb-public", "vpc_id": "vpc-1", "routes": [{"destination": "0.0.0.0/0", "target": "igw-1"}]}],
    "internet_gateways": [{"id": "igw-1", "vpc_id": "vpc-1"}],
    "security_groups": [{"id": "sg-1", "vpc_id": "vpc-1", "ingress": [{"protocol": "tcp", "ports": 443, "security_group_id": "sg-1"}]}],
    "network_acls": [{"id": "acl-1", "vpc_id": "vpc-1",
                      "ingress": [{"rule_number": 100, "protocol": "tcp", "ports": 5432, "cidr": "10.0.0.0/16", "rule_action": "allow"}]}],
    "nat_gateways": [{"id": "nat-1", "subnet_id": "subnet-a", "elastic_ips": [{"public_ip": "198.51.100.1"}]}],
    "network_interfaces": [{"id": "eni-1", "subnet_id": "subnet-c", "private_ip": "10.0.2.10", "security_group_ids": ["sg-1"], "kind": "rds"}],
    "functions": [{"name": "f", "vpc_config": {"subnet_ids": ["subnet-b"], "security_group_ids": ["sg-1"]}}],
}


def write(tmp_path: Path, doc: Any, name: str = "example.yaml") -> Path:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(doc))
    else:
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def load(tmp_path: Path, change: Callable[[dict], Any] | None = None, name: str = "example.yaml") -> Topology:
    doc = copy.deepcopy(BASE)
    if change is not None:
        change(doc)
    return load_topology(write(tmp_path, doc, name))


def error(tmp_path: Path, change: Callable[[dict], Any]) -> TopologyError:
    with pytest.raises(TopologyError) as caught:
        load(tmp_path, change)
    return caught.value


# -- the example -------------------------------------------------------------------------------


def test_example_loads_and_tells_the_classic_story():
    t = load_example_topology()
    assert t.account_id == "123456789012" and t.region == "us-east-1"
    assert [str(s.cidr) for s in t.subnets.values()][:4] == ["10.0.0.0/24", "10.0.1.0/24", "10.0.10.0/24", "10.0.11.0/24"]
    assert {s.availability_zone for s in t.subnets.values()} == {"us-east-1a", "us-east-1b"}
    public, private = t.route_table_of("subnet-public-a"), t.route_table_of("subnet-private-b")
    assert Route(ANY, "igw-main") in public.routes and Route(ANY, "nat-a") in private.routes
    assert Route("pl-63a5400a", "vpce-s3") in public.routes and Route("pl-63a5400a", "vpce-s3") in private.routes
    assert IPv4Network("52.216.0.0/15") in t.prefix_lists["pl-63a5400a"].cidrs
    nat = t.nat_gateways["nat-a"]
    assert nat.is_public and nat.subnet_id == "subnet-public-a" and nat.public_ip == IPv4Address("203.0.113.10")
    assert t.eni_by_ip("10.0.0.10").managed_by == "nat-a"
    secrets = t.vpc_endpoints["vpce-secretsmanager"]
    assert secrets.is_interface and secrets.private_dns_enabled
    assert secrets.dns_names == ("secretsmanager.us-east-1.amazonaws.com",)
    assert {t.network_interfaces[e].subnet_id for e in secrets.network_interface_ids} == {"subnet-private-a", "subnet-private-b"}
    assert t.eni_by_ip("10.0.20.10").kind == "rds"
    assert t.eni_by_public_ip("203.0.113.20").id == "eni-web" == t.eni_of_instance("i-0web").id
    orders, report, thumbnail = t.function("orders"), t.function("report"), t.function("thumbnail")
    assert orders.vpc_config.subnet_ids == ("subnet-private-a", "subnet-private-b")
    assert orders.vpc_config.security_group_ids == ("sg-app",) and orders.role.missing() == ()
    assert report.vpc_config.subnet_ids == ("subnet-public-a",) and report.role.missing() == ()
    assert thumbnail.vpc_config is None
    assert t.vpc_of("orders").id == "vpc-app"


def test_example_database_admits_app_group_but_its_nacl_forgets_ephemeral_ports():
    t = load_example_topology()
    db_rules = t.security_groups["sg-db"].ingress
    assert [(r.protocol, r.port_range, r.security_group_id) for r in db_rules] == [(TCP, (5432, 5432), "sg-app")]
    data = t.network_acl_of("subnet-data-a")
    assert not any(e.allows and e.port_range[0] <= 1024 and e.port_range[1] >= 65535 for e in data.egress)
    assert data.egress[-1].label == "*" and not data.egress[-1].allows
    cache = t.network_acl_of("subnet-cache-a")
    assert any(e.allows and e.port_range == (1024, 65535) for e in cache.egress)
    assert t.security_groups["sg-cache"].egress == ()  # `egress: []` written on purpose


def test_example_file_is_shipped_in_the_package():
    assert EXAMPLE_TOPOLOGY.name == "example.yaml" and EXAMPLE_TOPOLOGY.parent.parent.name == "hyperplane"


# -- validation: each names file, place and problem ----------------------------------------------


def test_invalid_subnet_cidr_names_file_place_and_problem(tmp_path):
    def change(doc):
        doc["subnets"][2]["cidr"] = "10.0.300.0/24"
    err = error(tmp_path, change)
    assert (err.file, err.where) == ("example.yaml", "subnets[2].cidr")
    assert str(err) == "example.yaml: subnets[2].cidr: '10.0.300.0/24' is not a valid IPv4 CIDR"
    assert isinstance(err, HyperplaneError)


def test_error_knows_the_line_of_the_place_it_names(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(
        "vpcs:\n"
        "  - id: vpc-1\n"
        "    cidr: 10.0.0.0/16\n"
        "subnets:\n"
        "  - id: subnet-a\n"
        "    vpc_id: vpc-1\n"
        "    availability_zone: az1\n"
        "    cidr: 10.1.0.0/24\n"
    )
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    assert (caught.value.where, caught.value.line) == ("subnets[0].cidr", 8)


def test_cidr_with_host_bits_suggests_the_network(tmp_path):
    err = error(tmp_path, lambda d: d["subnets"][0].update(cidr="10.0.0.5/24"))
    assert err.where == "subnets[0].cidr" and "did you mean 10.0.0.0/24" in err.problem


#: An inspection appliance's Gateway Load Balancer endpoint: a route target, nothing more.
GWLB_ENDPOINT = {"id": "vpce-gwlb", "vpc_id": "vpc-1", "type": "gateway_load_balancer", "name": "inspection",
                 "service_name": "com.amazonaws.vpce.eu-west-1.vpce-svc-0firewall"}


def _many(n: int, template: str) -> list[str]:
    return [template.format(i) for i in range(n)]


CASES: list[tuple[str, Callable[[dict], Any], str, str]] = [
    ("vpc_cidr_larger_than_16", lambda d: d["vpcs"][0].update(cidr="10.0.0.0/8"), "vpcs[0].cidr", "between /16 and /28"),
    ("subnet_outside_its_vpc", lambda d: d["subnets"][1].update(cidr="10.1.1.0/24"), "subnets[1].cidr", "is not inside vpc-1"),
    ("overlapping_subnets", lambda d: d["subnets"][2].update(cidr="10.0.1.128/25"), "subnets[2].cidr", "overlaps subnet-b"),
    ("dangling_route_table", lambda d: d["subnets"][0].update(route_table_id="rtb-nope"), "subnets[0].route_table_id",
     "refers to route table 'rtb-nope', which is not defined"),
    ("dangling_group_in_rule", lambda d: d["security_groups"][0]["ingress"][0].update(security_group_id="sg-nope"),
     "security_groups[0].ingress[0].security_group_id", "refers to security group 'sg-nope'"),
    ("dangling_nat_target", lambda d: d["route_tables"][0]["routes"].append({"destination": "192.168.0.0/16", "target": "nat-nope"}),
     "route_tables[0].routes[1].target", "refers to NAT gateway 'nat-nope'"),
    ("dangling_function_subnet", lambda d: d["functions"][0]["vpc_config"].update(subnet_ids=["subnet-b", "subnet-zz"]),
     "functions[0].vpc_config.subnet_ids[1]", "refers to subnet 'subnet-zz'"),
    ("dangling_eni_group", lambda d: d["network_interfaces"][0].update(security_group_ids=["sg-gone"]),
     "network_interfaces[0].security_group_ids[0]", "refers to security group 'sg-gone'"),
    ("dangling_prefix_list_route", lambda d: d["route_tables"][0]["routes"].append({"destination": "pl-123", "target": "igw-1"}),
     "route_tables[0].routes[1].destination", "refers to prefix list 'pl-123'"),
    ("dangling_vpc_of_subnet", lambda d: d["subnets"][1].update(vpc_id="vpc-9"), "subnets[1].vpc_id", "refers to VPC 'vpc-9'"),
    ("duplicate_id", lambda d: d["subnets"].append(dict(d["subnets"][0], cidr="10.0.9.0/24")), "subnets[3].id",
     "duplicate id 'subnet-a' (also subnets[0])"),
    ("duplicate_id_across_kinds_of_same_prefix", lambda d: d["network_interfaces"].append(dict(d["network_interfaces"][0], private_ip="10.0.2.11")),
     "network_interfaces[1].id", "duplicate id 'eni-1'"),
    ("duplicate_function_name", lambda d: d["functions"].append({"name": "f"}), "functions[1].name", "duplicate id 'f'"),
    ("duplicate_nacl_rule_number", lambda d: d["network_acls"][0]["ingress"].append(
        {"rule_number": 100, "protocol": "all", "cidr": "0.0.0.0/0", "rule_action": "deny"}),
     "network_acls[0].ingress[1].rule_number", "rule number 100 is used twice in ingress (also ingress[0])"),
    ("nacl_rule_number_zero", lambda d: d["network_acls"][0]["ingress"][0].update(rule_number=0),
     "network_acls[0].ingress[0].rule_number", "not within 1-32766"),
    ("nacl_rule_number_32767_is_the_implicit_deny", lambda d: d["network_acls"][0]["ingress"][0].update(rule_number=32767),
     "network_acls[0].ingress[0].rule_number", "not within 1-32766"),
    ("nacl_action_not_allow_or_deny", lambda d: d["network_acls"][0]["ingress"][0].update(rule_action="permit"),
     "network_acls[0].ingress[0].rule_action", "is not allow or deny"),
    ("six_groups_on_an_eni", lambda d: (d["security_groups"].extend({"id": f"sg-x{i}", "vpc_id": "vpc-1"} for i in range(6)),
                                        d["network_interfaces"][0].update(security_group_ids=_many(6, "sg-x{}"))),
     "network_interfaces[0].security_group_ids", "6 security groups: at most 5 per ENI"),
    ("six_groups_on_a_function", lambda d: (d["security_groups"].extend({"id": f"sg-x{i}", "vpc_id": "vpc-1"} for i in range(6)),
                                            d["functions"][0]["vpc_config"].update(security_group_ids=_many(6, "sg-x{}"))),
     "functions[0].vpc_config.security_group_ids", "6 security groups: at most 5 per function"),
    ("seventeen_subnets_on_a_function", lambda d: d["functions"][0]["vpc_config"].update(subnet_ids=_many(17, "subnet-n{}")),
     "functions[0].vpc_config.subnet_ids", "17 subnets: at most 16 per function"),
    ("function_subnets_in_two_vpcs", lambda d: (d["vpcs"].append({"id": "vpc-2", "cidr": "10.9.0.0/16"}),
                                                d["subnets"].append({"id": "subnet-z", "vpc_id": "vpc-2", "cidr": "10.9.0.0/24", "availability_zone": "eu-west-1a"}),
                                                d["functions"][0]["vpc_config"].update(subnet_ids=["subnet-b", "subnet-z"])),
     "functions[0].vpc_config.subnet_ids[1]", "subnet subnet-z is in vpc-2, not in vpc-1"),
    ("unknown_route_target_kind", lambda d: d["route_tables"][0]["routes"].append({"destination": "172.16.0.0/12", "target": "xyz-1"}),
     "route_tables[0].routes[1].target", "unknown route target 'xyz-1'"),
    ("route_more_specific_than_local_to_igw", lambda d: d["route_tables"][0]["routes"].append({"destination": "10.0.2.0/24", "target": "igw-1"}),
     "route_tables[0].routes[1].target", "more specific than the local route"),
    ("route_more_specific_than_local_not_a_whole_subnet", lambda d: d["route_tables"][0]["routes"].append({"destination": "10.0.2.0/25", "target": "eni-1"}),
     "route_tables[0].routes[1].destination", "must match a whole subnet CIDR"),
    ("duplicate_route_destination", lambda d: d["route_tables"][0]["routes"].append({"destination": "0.0.0.0/0", "target": "nat-1"}),
     "route_tables[0].routes[1].destination", "appears twice"),
    ("route_to_igw_of_another_vpc", lambda d: (d["vpcs"].append({"id": "vpc-2", "cidr": "10.9.0.0/16"}),
                                               d["internet_gateways"][0].update(vpc_id="vpc-2")),
     "route_tables[0].routes[0].target", "internet gateway igw-1 is not attached to vpc-1"),
    ("two_internet_gateways_on_a_vpc", lambda d: d["internet_gateways"].append({"id": "igw-2", "vpc_id": "vpc-1"}),
     "internet_gateways[1].vpc_id", "already has internet gateway igw-1"),
    ("public_nat_gateway_without_eip", lambda d: d["nat_gateways"][0].pop("elastic_ips"), "nat_gateways[0]",
     "a public NAT gateway needs at least one Elastic IP"),
    ("private_nat_gateway_with_eip", lambda d: d["nat_gateways"][0].update(connectivity_type="private"), "nat_gateways[0].elastic_ips",
     "a private NAT gateway has no Elastic IP"),
    ("nine_nat_addresses", lambda d: d["nat_gateways"][0].update(elastic_ips=_many(9, "198.51.100.{}")), "nat_gateways[0].elastic_ips",
     "at most 8 addresses"),
    ("eni_address_outside_its_subnet", lambda d: d["network_interfaces"][0].update(private_ip="10.0.3.10"),
     "network_interfaces[0].private_ip", "10.0.3.10 is not inside subnet-c (10.0.2.0/24)"),
    ("eni_address_is_the_dns_address", lambda d: d["network_interfaces"][0].update(private_ip="10.0.2.2"),
     "network_interfaces[0].private_ip", "one of the five addresses AWS reserves"),
    ("eni_address_is_the_last_address", lambda d: d["network_interfaces"][0].update(private_ip="10.0.2.255"),
     "network_interfaces[0].private_ip", "one of the five addresses AWS reserves"),
    ("eni_address_duplicated", lambda d: d["network_interfaces"].append({"id": "eni-2", "subnet_id": "subnet-c", "private_ip": "10.0.2.10"}),
     "network_interfaces[1].private_ip", "10.0.2.10 is already used by eni-1"),
    ("eni_takes_the_nat_gateway_address", lambda d: (d["nat_gateways"][0].update(private_ip="10.0.0.9"),
                                                     d["network_interfaces"].append({"id": "eni-2", "subnet_id": "subnet-a", "private_ip": "10.0.0.9"})),
     "network_interfaces[1].private_ip", "10.0.0.9 is already used by eni-nat-1"),
    ("eni_declares_a_managed_kind", lambda d: d["network_interfaces"][0].update(kind="lambda"), "network_interfaces[0].kind",
     "reserved for ENIs the model creates"),
    ("typo_in_a_subnet_key", lambda d: d["subnets"][1].update(availabilty_zone="x"), "subnets[1].availabilty_zone",
     "unknown key 'availabilty_zone' (did you mean 'availability_zone'?)"),
    ("typo_in_a_rule_key", lambda d: d["security_groups"][0]["ingress"][0].update(port=22), "security_groups[0].ingress[0].port",
     "unknown key 'port' (did you mean 'ports'?)"),
    ("typo_at_top_level", lambda d: d.update(subnet=[]), "subnet", "did you mean 'subnets'?"),
    ("missing_required_key", lambda d: d["subnets"][1].pop("availability_zone"), "subnets[1]", "missing required key 'availability_zone'"),
    ("rule_without_a_peer", lambda d: d["security_groups"][0]["ingress"][0].pop("security_group_id"), "security_groups[0].ingress[0]",
     "exactly one peer"),
    ("ports_on_an_icmp_rule", lambda d: d["security_groups"][0]["ingress"][0].update(protocol="icmp"),
     "security_groups[0].ingress[0].ports", "protocol icmp has no ports (use icmp_type/icmp_code)"),
    ("unknown_protocol_name", lambda d: d["security_groups"][0]["ingress"][0].update(protocol="sctp"),
     "security_groups[0].ingress[0].protocol", "'sctp' is not a protocol"),
    ("port_range_backwards", lambda d: d["security_groups"][0]["ingress"][0].update(ports="2000-1000"),
     "security_groups[0].ingress[0].ports", "is not a port or a port range"),
    ("wrong_id_prefix", lambda d: d["vpcs"][0].update(id="vcp-1"), "vpcs[0].id", "'vcp-1' is not a valid id (expected vpc-…)"),
    ("vpc_config_without_groups", lambda d: d["functions"][0]["vpc_config"].update(security_group_ids=[]),
     "functions[0].vpc_config.security_group_ids", "needs at least one security group"),
    ("interface_endpoint_two_subnets_in_one_az", lambda d: d.update(vpc_endpoints=[{
        "id": "vpce-1", "vpc_id": "vpc-1", "type": "interface", "service_name": "com.amazonaws.eu-west-1.sqs",
        "subnet_ids": ["subnet-a", "subnet-c"]}]),
     "vpc_endpoints[0].subnet_ids[1]", "one subnet per Availability Zone"),
    ("route_to_an_interface_endpoint", lambda d: (d.update(vpc_endpoints=[{
        "id": "vpce-1", "vpc_id": "vpc-1", "type": "interface", "service_name": "com.amazonaws.eu-west-1.sqs", "subnet_ids": ["subnet-a"]}]),
        d["route_tables"][0]["routes"].append({"destination": "172.16.0.0/12", "target": "vpce-1"})),
     "route_tables[0].routes[1].target", "is an interface endpoint; only gateway and Gateway Load Balancer endpoints are route targets"),
    ("interface_key_on_a_gateway_load_balancer_endpoint", lambda d: d.update(vpc_endpoints=[dict(GWLB_ENDPOINT, subnet_ids=["subnet-a"])]),
     "vpc_endpoints[0].subnet_ids", "subnet_ids does not apply to a Gateway Load Balancer endpoint"),
    ("gateway_key_on_a_gateway_load_balancer_endpoint", lambda d: d.update(vpc_endpoints=[dict(GWLB_ENDPOINT, route_table_ids=["rtb-public"])]),
     "vpc_endpoints[0].route_table_ids", "route_table_ids does not apply to a Gateway Load Balancer endpoint"),
    ("unknown_endpoint_type", lambda d: d.update(vpc_endpoints=[dict(GWLB_ENDPOINT, type="gwlb")]),
     "vpc_endpoints[0].type", "'gwlb' is not gateway, interface or gateway_load_balancer"),
    ("unknown_managed_policy", lambda d: d["functions"][0].update(role={"name": "r", "managed_policies": ["AdministratorAccessz"]}),
     "functions[0].role.managed_policies", "unknown managed policy"),
    ("bad_account_id", lambda d: d.update(account_id="12345"), "account_id", "12-digit"),
]


@pytest.mark.parametrize("change, where, problem", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_topology_is_refused_naming_file_place_and_problem(tmp_path, change, where, problem):
    err = error(tmp_path, change)
    assert err.file == "example.yaml"
    assert err.where == where, str(err)
    assert problem in err.problem, str(err)
    assert str(err) == f"example.yaml: {where}: {err.problem}"


def _prefix_list_route(target: str, cidrs: list[str]) -> Callable[[dict], Any]:
    """A change adding prefix list ``pl-inside`` (``cidrs``) and a route from rtb-public to ``target``."""
    def change(d: dict) -> None:
        d["prefix_lists"] = [{"id": "pl-inside", "name": "inspection", "cidrs": cidrs}]
        d["route_tables"][0]["routes"].append({"destination": "pl-inside", "target": target})
    return change


def test_prefix_list_route_inside_vpc_to_igw_is_rejected(tmp_path):
    # 10.0.2.0/24 is subnet-c: sending it to the internet gateway would bypass the local route.
    err = error(tmp_path, _prefix_list_route("igw-1", ["192.0.2.0/24", "10.0.2.0/24"]))
    assert err.file == "example.yaml" and err.where == "route_tables[0].routes[1].target"
    assert err.problem == ("a route more specific than the local route (pl-inside holds 10.0.2.0/24) "
                           "may only target a NAT gateway, an ENI or a Gateway Load Balancer endpoint, not igw-1")


def test_prefix_list_holding_the_whole_vpc_cidr_counts_as_inside_like_a_cidr_route(tmp_path):
    err = error(tmp_path, _prefix_list_route("igw-1", ["10.0.0.0/16"]))
    assert "more specific than the local route (pl-inside holds 10.0.0.0/16)" in err.problem


@pytest.mark.parametrize("target", ["nat-1", "eni-1"])
def test_prefix_list_route_inside_vpc_to_nat_gateway_or_eni_is_allowed(tmp_path, target):
    t = load(tmp_path, _prefix_list_route(target, ["10.0.1.0/24"]))
    assert Route("pl-inside", target) in t.route_tables["rtb-public"].routes


def test_prefix_list_route_outside_vpc_to_igw_is_allowed(tmp_path):
    t = load(tmp_path, _prefix_list_route("igw-1", ["192.0.2.0/24", "10.1.0.0/16"]))
    assert Route("pl-inside", "igw-1") in t.route_tables["rtb-public"].routes


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("vpcs:\n  - id: vpc-1\n    cidr: [10.0.0.0/16\n")
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    assert caught.value.file == "broken.yaml" and caught.value.where.startswith("line ")
    assert "invalid YAML" in caught.value.problem


def test_key_written_twice_is_refused_not_silently_overwritten(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("vpcs:\n  - id: vpc-1\n    cidr: 10.0.0.0/16\n    cidr: 10.1.0.0/16\n")
    with pytest.raises(TopologyError, match="'cidr' appears twice") as caught:
        load_topology(path)
    assert caught.value.where == "line 4, column 5"


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"vpcs": [}')
    with pytest.raises(TopologyError, match="invalid JSON") as caught:
        load_topology(path)
    assert caught.value.where == "line 1, column 11"


def test_missing_file_and_unknown_extension_are_topology_errors(tmp_path):
    with pytest.raises(TopologyError, match="no such file"):
        load_topology(tmp_path / "nope.yaml")
    (tmp_path / "t.toml").write_text("")
    with pytest.raises(TopologyError, match=r"\.yaml, \.yml or \.json"):
        load_topology(tmp_path / "t.toml")


def test_document_that_is_not_a_mapping_is_refused(tmp_path):
    with pytest.raises(TopologyError, match="expected a mapping"):
        load_topology(write(tmp_path, ["vpc-1"]))


def test_an_error_leaves_nothing_half_loaded(tmp_path):
    path = write(tmp_path, dict(copy.deepcopy(BASE), functions=[{"name": "f", "vpc_config": {"subnet_ids": ["subnet-q"], "security_group_ids": ["sg-1"]}}]))
    result = None
    with pytest.raises(TopologyError):
        result = load_topology(path)
    assert result is None


# -- formats and round trips ---------------------------------------------------------------------


def test_json_and_yaml_files_of_the_same_document_load_equal(tmp_path):
    assert load(tmp_path, name="t.json") == load(tmp_path, name="t.yaml") == load(tmp_path, name="t.yml")


def test_example_round_trips_through_yaml_and_json(tmp_path):
    t = load_example_topology()
    for name in ("again.yaml", "again.json"):
        dump_topology(t, tmp_path / name)
        assert load_topology(tmp_path / name) == t


def test_round_trip_keeps_blackholes_versions_peering_and_secondary_addresses(tmp_path):
    def change(d):
        d["route_tables"][0]["routes"].append({"destination": "192.168.0.0/16", "target": "nat-gone", "state": "blackhole"})
        d["route_tables"][0]["routes"].append({"destination": "172.16.0.0/16", "target": "pcx-1"})
        d["vpc_peering_connections"] = [{"id": "pcx-1", "vpc_id": "vpc-1", "peer_vpc_id": "vpc-other", "peer_cidrs": ["172.16.0.0/16"]}]
        d["network_interfaces"][0].update(secondary_private_ips=["10.0.2.11"], source_dest_check=False, instance_id="i-1")
        d["nat_gateways"].append({"id": "nat-2", "subnet_id": "subnet-b", "connectivity_type": "private", "secondary_private_ips": ["10.0.1.77"]})
        d["functions"][0]["versions"] = [{"version": 1}, {"version": "2", "vpc_config": None}]
        d["security_groups"][0]["egress"] = [{"protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "cidr": "0.0.0.0/0"}]
    t = load(tmp_path, change)
    assert t.route_tables["rtb-public"].routes[1].is_blackhole
    assert t.functions["f"].versions[0].vpc_config == t.functions["f"].vpc_config
    assert t.functions["f"].versions[1].vpc_config is None
    assert t.eni_by_ip("10.0.2.11").id == "eni-1"
    for name in ("rt.yaml", "rt.json"):
        dump_topology(t, tmp_path / name)
        assert load_topology(tmp_path / name) == t
    assert parse_topology(topology_document(t)) == t


# -- AWS defaults ------------------------------------------------------------------------------


def test_vpc_without_main_route_table_gets_one_with_the_local_route(tmp_path):
    t = load(tmp_path)
    vpc = t.vpcs["vpc-1"]
    main = t.route_tables[vpc.main_route_table_id]
    assert main.is_main and main.routes == (Route(IPv4Network("10.0.0.0/16"), "local"),)
    assert t.route_table_of("subnet-b") is main and t.route_table_of("subnet-a").id == "rtb-public"


def test_every_route_table_gets_a_local_route_per_vpc_cidr(tmp_path):
    t = load(tmp_path, lambda d: d["vpcs"][0].update(cidr=None, cidrs=["10.0.0.0/16", "100.64.0.0/20"]) or d["vpcs"][0].pop("cidr"))
    for rtb in t.route_tables.values():
        assert {r.destination for r in rtb.local_routes} == {IPv4Network("10.0.0.0/16"), IPv4Network("100.64.0.0/20")}


def test_default_nacl_allows_everything_both_ways_then_denies(tmp_path):
    t = load(tmp_path)
    acl = t.network_acl_of("subnet-a")
    assert acl.is_default and t.network_acl_of("subnet-c").id == "acl-1"
    for egress in (False, True):
        rules = acl.rules(egress)
        assert [(e.label, e.rule_action, e.protocol, e.cidr) for e in rules] == [("100", "allow", PROTOCOL_ALL, ANY), ("*", "deny", PROTOCOL_ALL, ANY)]


def test_custom_nacl_without_rules_denies_everything(tmp_path):
    t = load(tmp_path, lambda d: d["network_acls"].append({"id": "acl-empty", "vpc_id": "vpc-1"}))
    acl = t.network_acls["acl-empty"]
    assert not acl.is_default
    assert [e.label for e in acl.ingress] == ["*"] and [e.label for e in acl.egress] == ["*"]


def test_default_security_group_admits_itself_and_allows_all_egress(tmp_path):
    t = load(tmp_path)
    sg = t.security_groups[t.vpcs["vpc-1"].default_security_group_id]
    assert sg.name == "default"
    assert sg.ingress == (SecurityGroupRule(False, PROTOCOL_ALL, security_group_id=sg.id),)
    assert sg.egress == (SecurityGroupRule.allow_all_egress(),)


def test_new_group_gets_egress_allow_all_unless_file_says_empty(tmp_path):
    t = load(tmp_path, lambda d: d["security_groups"].append({"id": "sg-quiet", "vpc_id": "vpc-1", "egress": []}))
    assert t.security_groups["sg-1"].egress == (SecurityGroupRule(True, PROTOCOL_ALL, cidr=ANY),)
    assert t.security_groups["sg-quiet"].egress == () and t.security_groups["sg-quiet"].ingress == ()


def test_declared_default_resources_are_used_as_written(tmp_path):
    def change(d):
        d["vpcs"][0].update(main_route_table_id="rtb-public", default_network_acl_id="acl-1", default_security_group_id="sg-1")
    t = load(tmp_path, change)
    assert t.route_table_of("subnet-b").id == "rtb-public" and t.route_tables["rtb-public"].is_main
    assert t.network_acl_of("subnet-a").id == "acl-1" and t.network_acls["acl-1"].is_default
    assert set(t.route_tables) == {"rtb-public"} and set(t.security_groups) == {"sg-1"}


def test_eni_without_groups_gets_the_default_group_and_a_free_address(tmp_path):
    t = load(tmp_path, lambda d: d["network_interfaces"].append({"id": "eni-2", "subnet_id": "subnet-c"}))
    eni = t.network_interfaces["eni-2"]
    assert eni.security_group_ids == (t.vpcs["vpc-1"].default_security_group_id,)
    assert eni.private_ip == IPv4Address("10.0.2.4")  # .0-.3 reserved


def test_nat_gateway_gets_an_address_and_an_eni_carrying_its_eip(tmp_path):
    t = load(tmp_path)
    nat = t.nat_gateways["nat-1"]
    assert nat.private_ip == IPv4Address("10.0.0.4") and nat.address_pairs == ((IPv4Address("10.0.0.4"), IPv4Address("198.51.100.1")),)
    eni = t.network_interfaces[nat.network_interface_id]
    assert (eni.kind, eni.security_group_ids, eni.public_ip) == ("nat_gateway", (), IPv4Address("198.51.100.1"))
    assert t.eni_by_public_ip("198.51.100.1") is eni and t.vpc_of("nat-1").id == "vpc-1"


def test_interface_endpoint_gets_one_eni_per_subnet_default_group_and_dns_name(tmp_path):
    t = load(tmp_path, lambda d: d.update(vpc_endpoints=[{
        "id": "vpce-sqs", "vpc_id": "vpc-1", "type": "interface", "service_name": "com.amazonaws.eu-west-1.sqs",
        "subnet_ids": ["subnet-a", "subnet-b"]}]))
    ep = t.vpc_endpoints["vpce-sqs"]
    assert ep.private_dns_enabled and ep.dns_names == ("sqs.eu-west-1.amazonaws.com",)
    assert ep.security_group_ids == (t.vpcs["vpc-1"].default_security_group_id,)
    enis = [t.network_interfaces[i] for i in ep.network_interface_ids]
    assert [e.subnet_id for e in enis] == ["subnet-a", "subnet-b"]
    assert all(e.kind == "vpc_endpoint" and e.security_group_ids == ep.security_group_ids for e in enis)
    assert enis[0].private_ip != t.nat_gateways["nat-1"].private_ip


def test_gateway_endpoint_adds_its_prefix_list_route_and_finds_its_prefix_list_by_name(tmp_path):
    def change(d):
        d["prefix_lists"] = [{"id": "pl-s3", "name": "com.amazonaws.eu-west-1.s3", "cidrs": ["52.218.0.0/17"]}]
        d["vpc_endpoints"] = [{"id": "vpce-s3", "vpc_id": "vpc-1", "type": "gateway", "service_name": "com.amazonaws.eu-west-1.s3",
                               "route_table_ids": ["rtb-public"]}]
    t = load(tmp_path, change)
    assert t.vpc_endpoints["vpce-s3"].prefix_list_id == "pl-s3"
    assert Route("pl-s3", "vpce-s3") in t.route_tables["rtb-public"].routes
    assert t.prefix_lists["pl-s3"].contains(IPv4Address("52.218.1.1"))


def _inspected(d: dict) -> None:
    """rtb-public (subnet-a) sends TEST-NET-1 and subnet-c (a route more specific than local)
    through the Gateway Load Balancer endpoint; eni-app in subnet-a sends."""
    d["vpc_endpoints"] = [dict(GWLB_ENDPOINT)]
    d["route_tables"][0]["routes"] += [{"destination": "192.0.2.0/24", "target": "vpce-gwlb"},
                                       {"destination": "10.0.2.0/24", "target": "vpce-gwlb"}]
    d["network_interfaces"].append({"id": "eni-app", "subnet_id": "subnet-a", "security_group_ids": ["sg-1"]})


def test_gateway_load_balancer_endpoint_loads_as_a_route_target_only(tmp_path):
    t = load(tmp_path, _inspected)
    ep = t.vpc_endpoints["vpce-gwlb"]
    assert ep.is_gateway_load_balancer and not ep.is_gateway and not ep.is_interface
    assert ep.name == "inspection" and ep.service_name == "com.amazonaws.vpce.eu-west-1.vpce-svc-0firewall"
    assert (ep.route_table_ids, ep.prefix_list_id, ep.subnet_ids, ep.network_interface_ids) == ((), None, (), ())
    assert not any(e.managed_by == "vpce-gwlb" for e in t.network_interfaces.values())
    assert Route(IPv4Network("10.0.2.0/24"), "vpce-gwlb") in t.route_tables["rtb-public"].routes


@pytest.mark.parametrize("dst", ["192.0.2.10", "10.0.2.10"], ids=["outside_the_vpc", "more_specific_than_local"])
def test_packet_routed_to_a_gateway_load_balancer_endpoint_ends_unmodelled(tmp_path, dst):
    net = hp.Network(load(tmp_path, _inspected), ready=True)
    out = net.send(scapy.IP(dst=dst) / scapy.TCP(sport=40000, dport=443, flags="S"), source="eni-app")
    assert out.reason == hp.Reason.UNMODELLED_TARGET
    assert any("vpce-gwlb" in f"{hop}" for hop in out.hops)


def test_gateway_load_balancer_endpoint_round_trips_with_only_its_own_keys(tmp_path):
    t = load(tmp_path, _inspected)
    assert topology_document(t)["vpc_endpoints"] == [GWLB_ENDPOINT | {"name": "inspection"}]
    assert list(topology_document(t)["vpc_endpoints"][0]) == ["id", "name", "vpc_id", "service_name", "type"]
    for name in ("gwlb.yaml", "gwlb.json"):
        dump_topology(t, tmp_path / name)
        assert load_topology(tmp_path / name) == t


def test_function_without_role_gets_the_vpc_access_role(tmp_path):
    fn = load(tmp_path).function("f")
    assert fn.role.arn == "arn:aws:iam::123456789012:role/f-role"
    assert fn.role.managed_policies == ("AWSLambdaVPCAccessExecutionRole",) and fn.role.missing() == ()


def test_role_permissions_honour_wildcards_and_report_what_is_missing():
    role = ExecutionRole("arn:aws:iam::123456789012:role/r", permissions=("ec2:Describe*", "logs:*"))
    assert role.allows("ec2:DescribeNetworkInterfaces") and role.allows("EC2:describesubnets")
    assert role.missing() == ("ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface")
    assert ExecutionRole("arn:aws:iam::1:role/x", permissions=("*",)).missing() == ()


def test_empty_vpc_config_means_no_vpc(tmp_path):
    t = load(tmp_path, lambda d: d["functions"][0].update(vpc_config={"subnet_ids": [], "security_group_ids": []}))
    assert not t.function("f").is_vpc_attached


def test_protocols_and_ports_are_normalized_to_ints(tmp_path):
    def change(d):
        d["security_groups"][0]["ingress"] += [
            {"protocol": "udp", "ports": "1024-65535", "cidr": "10.0.0.0/8"},
            {"protocol": 6, "from_port": 80, "to_port": 81, "prefix_list_id": "pl-x"},
            {"protocol": "-1", "cidr": "0.0.0.0/0"},
            {"protocol": "tcp", "cidr": "0.0.0.0/0"},
        ]
        d["prefix_lists"] = [{"id": "pl-x", "name": "x", "cidrs": []}]
    rules = load(tmp_path, change).security_groups["sg-1"].ingress
    assert [(r.protocol, r.port_range, r.peer_kind) for r in rules] == [
        (TCP, (443, 443), "security_group"), (UDP, (1024, 65535), "cidr"), (TCP, (80, 81), "prefix_list"),
        (PROTOCOL_ALL, ALL_PORTS, "cidr"), (TCP, ALL_PORTS, "cidr")]
    assert [parse_protocol(p) for p in ("all", "ICMP", "17", -1, 50)] == [PROTOCOL_ALL, ICMP, UDP, PROTOCOL_ALL, 50]


# -- lookups -----------------------------------------------------------------------------------


def test_lookups_by_id_and_address(tmp_path):
    t = load(tmp_path)
    assert t.get("subnet-c").cidr == IPv4Network("10.0.2.0/24") and t.get("f").name == "f"
    assert t.subnet_of_ip("10.0.2.99").id == "subnet-c" and t.subnet_of_ip("10.0.200.1") is None
    assert t.eni_by_ip(IPv4Address("10.0.2.10")).id == "eni-1" and t.eni_by_ip("10.0.2.11") is None
    assert t.vpc_of("eni-1").id == t.vpc_of("subnet-a").id == t.vpc_of("f").id == "vpc-1"
    assert [e.id for e in t.enis_with_security_group("sg-1")] == ["eni-1"]
    assert t.private_ips_with_security_group("sg-1") == (IPv4Address("10.0.2.10"),)
    assert t.internet_gateway_of("vpc-1").id == "igw-1"
    assert [s.id for s in t.subnets_using_route_table("rtb-public")] == ["subnet-a"]
    assert t.vpcs["vpc-1"].dns_resolver_ip == IPv4Address("10.0.0.2")
    with pytest.raises(UnknownResource, match="subnet-zz"):
        t.get("subnet-zz")
    with pytest.raises(HyperplaneError):
        t.function("nope")


def test_replace_derives_a_new_topology_and_validate_checks_it(tmp_path):
    t = load(tmp_path)
    sg = t.security_groups["sg-1"]
    quiet = t.replace(type(sg)(sg.id, sg.vpc_id, sg.name, (), sg.egress))
    assert quiet.security_groups["sg-1"].ingress == () and t.security_groups["sg-1"].ingress != ()
    assert quiet.validate() is quiet
    broken = t.replace(remove=["sg-1"])
    with pytest.raises(TopologyError) as caught:
        broken.validate(file="live")
    assert str(caught.value) == "live: network_interfaces[eni-1].security_group_ids[0]: refers to security group 'sg-1', which is not defined"


def test_removing_a_nat_gateway_takes_its_eni_and_blackholes_its_routes(tmp_path):
    t = load(tmp_path, lambda d: d["route_tables"].append(
        {"id": "rtb-private", "vpc_id": "vpc-1", "routes": [{"destination": "0.0.0.0/0", "target": "nat-1"}]}))
    eni_id = t.nat_gateways["nat-1"].network_interface_id
    after = t.replace(remove=["nat-1"]).validate()
    assert "nat-1" not in after and eni_id not in after.network_interfaces
    assert after.route_tables["rtb-private"].routes[0] == Route(ANY, "nat-1", "blackhole")
    assert after.route_tables["rtb-public"] == t.route_tables["rtb-public"]


def test_topology_resources_are_immutable(tmp_path):
    t = load(tmp_path)
    with pytest.raises(TypeError):
        t.subnets["subnet-x"] = t.subnets["subnet-a"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        t.subnets["subnet-a"].cidr = IPv4Network("10.0.5.0/24")  # type: ignore[misc]


# -- subnet address allocator ------------------------------------------------------------------


def test_allocator_skips_the_five_reserved_addresses():
    subnet = Subnet("subnet-s", "vpc-1", IPv4Network("10.0.5.0/28"), "az", "rtb-1", "acl-1")
    assert subnet.reserved_addresses == tuple(IPv4Address(f"10.0.5.{i}") for i in (0, 1, 2, 3, 15))
    assert subnet.usable_address_count == 11
    assert next_free_address(subnet, set()) == IPv4Address("10.0.5.4")
    assert next_free_address(subnet, {IPv4Address("10.0.5.4"), IPv4Address("10.0.5.5")}) == IPv4Address("10.0.5.6")


def test_allocator_reports_exhaustion_of_a_slash_28():
    subnet = Subnet("subnet-s", "vpc-1", IPv4Network("10.0.5.0/28"), "az", "rtb-1", "acl-1")
    used: set[IPv4Address] = set()
    for _ in range(11):
        used.add(next_free_address(subnet, used))
    assert used == set(subnet.usable_addresses())
    with pytest.raises(SubnetOutOfAddresses) as caught:
        next_free_address(subnet, used)
    assert caught.value.subnet_id == "subnet-s" and "no free IP address" in str(caught.value)
    assert isinstance(caught.value, HyperplaneError)


def test_topology_allocator_counts_enis_and_addresses_held_elsewhere(tmp_path):
    t = load(tmp_path)
    assert t.addresses_in_use("subnet-c") == {IPv4Address("10.0.2.10")}
    assert t.allocate_address("subnet-c") == IPv4Address("10.0.2.4")
    assert t.allocate_address("subnet-c", also_in_use=[IPv4Address("10.0.2.4")]) == IPv4Address("10.0.2.5")


def test_loader_reports_a_subnet_too_small_for_its_enis(tmp_path):
    def change(d):
        d["subnets"][2]["cidr"] = "10.0.2.0/28"
        d["network_interfaces"] = [{"id": f"eni-{i}", "subnet_id": "subnet-c"} for i in range(12)]
    err = error(tmp_path, change)
    assert err.where == "network_interfaces[11]" and "no free IP address left" in err.problem


@settings(max_examples=50, deadline=None)
@given(prefix=st.integers(min_value=24, max_value=28), taken=st.sets(st.integers(min_value=0, max_value=255), max_size=40))
def test_allocated_address_is_never_reserved_nor_taken(prefix, taken):
    cidr = IPv4Network(f"10.1.0.0/{prefix}")
    in_use = {cidr[i % cidr.num_addresses] for i in taken}
    subnet = Subnet("subnet-h", "vpc-1", cidr, "az", "rtb-1", "acl-1")
    free = [a for a in subnet.usable_addresses() if a not in in_use]
    if not free:
        with pytest.raises(SubnetOutOfAddresses):
            next_free_address(subnet, in_use)
        return
    address = next_free_address(subnet, in_use)
    assert address == free[0] and not subnet.is_reserved(address) and address not in in_use


# -- randomized round trip ---------------------------------------------------------------------

_PROTOCOLS = ["all", "tcp", "udp", "icmp", 50]


@st.composite
def rules(draw, groups: list[str], with_number: bool = False):
    protocol = draw(st.sampled_from(_PROTOCOLS))
    rule: dict[str, Any] = {"protocol": protocol}
    if protocol in ("tcp", "udp") and draw(st.booleans()):
        low = draw(st.integers(0, 65535))
        high = draw(st.integers(low, 65535))
        rule["ports"] = low if low == high else f"{low}-{high}"
    if protocol == "icmp" and draw(st.booleans()):
        rule["icmp_type"] = draw(st.integers(0, 40))
        rule["icmp_code"] = draw(st.integers(-1, 15))
    prefix = draw(st.integers(0, 32))
    address = IPv4Address(draw(st.integers(0, 2**32 - 1)))
    peer = draw(st.sampled_from(["cidr", "pl", "sg"] if not with_number else ["cidr"]))
    if peer == "cidr":
        rule["cidr"] = str(IPv4Network((address, prefix), strict=False))
    elif peer == "pl":
        rule["prefix_list_id"] = "pl-s3"
    else:
        rule["security_group_id"] = draw(st.sampled_from(groups))
    return rule


@st.composite
def documents(draw):
    octets = draw(st.lists(st.integers(0, 255), min_size=1, max_size=6, unique=True))
    subnets = [{"id": f"subnet-{o}", "vpc_id": "vpc-r", "cidr": f"10.0.{o}.0/24",
                "availability_zone": draw(st.sampled_from(["eu-west-1a", "eu-west-1b"]))} for o in octets]
    groups = [f"sg-{i}" for i in range(draw(st.integers(1, 4)))]
    security_groups = []
    for g in groups:
        sg: dict[str, Any] = {"id": g, "vpc_id": "vpc-r", "ingress": draw(st.lists(rules(groups), max_size=4))}
        if draw(st.booleans()):
            sg["egress"] = draw(st.lists(rules(groups), max_size=3))
        security_groups.append(sg)
    acls = []
    for i in range(draw(st.integers(0, 2))):
        acl: dict[str, Any] = {"id": f"acl-{i}", "vpc_id": "vpc-r"}
        for direction in ("ingress", "egress"):
            numbers = draw(st.lists(st.integers(1, 32766), max_size=4, unique=True))
            acl[direction] = [dict(draw(rules(groups, with_number=True)), rule_number=n,
                                   rule_action=draw(st.sampled_from(["allow", "deny"]))) for n in numbers]
        acls.append(acl)
    for subnet in subnets:
        if acls and draw(st.booleans()):
            subnet["network_acl_id"] = draw(st.sampled_from([a["id"] for a in acls]))
    subnet_ids = [s["id"] for s in subnets]
    enis = [{"id": f"eni-{i}", "subnet_id": draw(st.sampled_from(subnet_ids)),
             "security_group_ids": draw(st.lists(st.sampled_from(groups), min_size=1, max_size=4, unique=True))}
            for i in range(draw(st.integers(0, 4)))]
    functions = []
    for i in range(draw(st.integers(0, 3))):
        fn: dict[str, Any] = {"name": f"fn{i}"}
        if draw(st.booleans()):
            fn["vpc_config"] = {"subnet_ids": draw(st.lists(st.sampled_from(subnet_ids), min_size=1, unique=True)),
                                "security_group_ids": draw(st.lists(st.sampled_from(groups), min_size=1, unique=True))}
        if draw(st.booleans()):
            fn["versions"] = [{"version": 1}]
        functions.append(fn)
    return {
        "account_id": "210987654321", "region": "eu-west-1",
        "vpcs": [{"id": "vpc-r", "cidr": "10.0.0.0/16"}],
        "subnets": subnets,
        "prefix_lists": [{"id": "pl-s3", "name": "com.amazonaws.eu-west-1.s3", "cidrs": ["52.218.0.0/17"]}],
        "security_groups": security_groups, "network_acls": acls,
        "network_interfaces": enis, "functions": functions,
    }


@settings(max_examples=60, deadline=None)
@given(doc=documents())
def test_random_topologies_round_trip_through_both_formats(doc):
    import tempfile
    topology = parse_topology(doc, file="random.yaml")
    assert parse_topology(topology_document(topology)) == topology
    with tempfile.TemporaryDirectory() as folder:
        for name in ("t.yaml", "t.json"):
            dump_topology(topology, Path(folder) / name)
            assert load_topology(Path(folder) / name) == topology
        assert load_topology(write(Path(folder), doc, "src.json")) == load_topology(write(Path(folder), doc, "src.yaml")) == topology


# -- hostile documents -------------------------------------------------------------------------


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


_JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=12),
    st.sampled_from(["10.0.0.0/33", "-1", "tcp", "sg-1", "subnet-a", "1-2-3", "0.0.0.0/0", "pl-", "nat-1"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_corrupted_document_loads_or_raises_a_topology_error(data):
    doc = copy.deepcopy(BASE)
    doc["vpc_endpoints"] = [
        {"id": "vpce-i", "vpc_id": "vpc-1", "type": "interface", "service_name": "com.amazonaws.eu-west-1.sqs", "subnet_ids": ["subnet-a"],
         "network_interfaces": [{"subnet_id": "subnet-a", "private_ip": "10.0.0.50"}]},
    ]
    doc["functions"][0]["role"] = {"name": "r", "permissions": ["ec2:*"]}
    doc["functions"][0]["versions"] = [{"version": 1}]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)[1:]))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = data.draw(_JUNK)
    try:
        topology = parse_topology(doc, file="junk.yaml")
    except TopologyError as exc:
        assert exc.file == "junk.yaml" and exc.problem
    else:
        assert parse_topology(topology_document(topology)) == topology


# -- issue 9: numbers are ASCII digits; syntax errors have a line and a column -----------------


def test_a_port_written_in_superscript_two_is_refused_with_its_place_not_a_traceback(tmp_path):
    # '²'.isdigit() is True and int('²') raises: this was a ValueError from deep inside
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(BASE), sort_keys=False).replace("ports: 443", "ports: ²"))
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    e = caught.value
    assert (e.file, e.where) == ("t.yaml", "security_groups[0].ingress[0].ports") and "ASCII digits" in e.problem
    assert e.line is not None


def test_a_rule_number_in_arabic_indic_digits_is_refused_not_read_as_100(tmp_path):
    def change(doc):
        doc["network_acls"][0]["ingress"][0]["rule_number"] = "١٠٠"
    e = error(tmp_path, change)
    assert e.where == "network_acls[0].ingress[0].rule_number"
    assert "expected an integer (ASCII digits 0-9)" in e.problem and "'١٠٠'" in e.problem


@pytest.mark.parametrize("field, value, where", [
    ("ports", "١٠٢٤-٦٥٥٣٥", "security_groups[0].ingress[0].ports"),
    ("ports", "1024-６５５３５", "security_groups[0].ingress[0].ports"),  # fullwidth digits
    ("protocol", "٦", "security_groups[0].ingress[0].protocol"),  # the model's \d read it as 6 (tcp)
    ("from_port", "٢٢", "security_groups[0].ingress[0].from_port"),
])
def test_non_ascii_digits_in_rule_numbers_are_refused_where_they_stand(tmp_path, field, value, where):
    def change(doc):
        rule = doc["security_groups"][0]["ingress"][0]
        if field == "from_port":
            del rule["ports"]
            rule |= {"from_port": value, "to_port": 22}
        else:
            rule[field] = value
    e = error(tmp_path, change)
    assert e.where == where and "ASCII" in e.problem


def test_an_account_id_or_a_version_in_other_digits_is_refused(tmp_path):
    e = error(tmp_path, lambda doc: doc.__setitem__("account_id", "١٢٣٤٥٦٧٨٩٠١٢"))
    assert e.where == "account_id" and "12-digit" in e.problem
    e = error(tmp_path, lambda doc: doc["functions"][0].__setitem__("versions", [{"version": "²"}]))
    assert e.where == "functions[0].versions[0].version" and "not a version number" in e.problem


def _broken(tmp_path: Path, name: str, data: bytes) -> TopologyError:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    return caught.value


EXAMPLE_TEXT = EXAMPLE_TOPOLOGY.read_text(encoding="utf-8")


def test_a_control_character_in_yaml_gives_line_and_column_on_one_line(tmp_path):
    # PyYAML's ReaderError has no mark: the error had where == "", line None and two lines
    lines = EXAMPLE_TEXT.splitlines(keepends=True)
    row = next(i for i, line in enumerate(lines) if line.startswith("vpcs:"))
    lines[row] = "vpcs:\x07\n"
    e = _broken(tmp_path, "bell.yaml", "".join(lines).encode())
    assert (e.where, e.line, e.column) == (f"line {row + 1}, column 6", row + 1, 6)
    assert "U+0007" in e.problem and "\n" not in str(e)


SYNTAX = [
    ("tab.yaml", b"vpcs:\n\t- id: vpc-1\n", 2, 1, "cannot start any token"),
    ("indent.yaml", b"vpcs:\n  - id: vpc-1\n     cidr: 10.0.0.0/16\n", 3, 10, "mapping values are not allowed"),
    ("quote.yaml", b"vpcs:\n  - id: 'vpc-1\n", 3, 1, "while scanning a quoted scalar that starts at line 2, column 9"),
    ("utf8.yaml", b"vpcs:\n  - id: vpc-\xff1\n", 2, 13, "invalid UTF-8: byte 0xff"),
    ("utf8.json", b'{"vpcs": [\n  {"id": "vpc-\xc3"}]}', 2, 15, "invalid UTF-8: byte 0xc3"),
    ("syntax.json", b'{"vpcs": [\n  {"id": "vpc-1",}]}', 2, 18, "invalid JSON"),
    ("twice.json", b'{"vpcs": [\n  {"id": "vpc-1", "id": "vpc-2"}]}', 2, 3, "'id' appears twice"),
    ("key.yaml", b"vpcs:\n  - {[a]: b}\n", 2, 6, "a mapping key must be a plain value"),
    ("date.yaml", b"vpcs:\n  - id: 2020-02-30\n", 2, 9, "invalid YAML value '2020-02-30'"),
    ("deep.yaml", b"vpcs: " + b"[" * 300 + b"]" * 300 + b"\n", 1, 207, "nesting deeper than 200 levels"),
    ("deep.json", b'{"vpcs": ' + b"[" * 300 + b"]" * 300 + b"}", 1, 209, "nesting deeper than 200 levels"),
    ("digits.json", b'{"account_id": ' + b"1" * 5000 + b"}", 1, 16, "too many digits"),
]


@pytest.mark.parametrize("name, data, line, column, problem", SYNTAX, ids=[s[0] for s in SYNTAX])
def test_every_syntax_error_gives_file_line_column_and_one_line(tmp_path, name, data, line, column, problem):
    e = _broken(tmp_path, name, data)
    assert (e.file, e.where, e.line, e.column) == (name, f"line {line}, column {column}", line, column)
    assert problem in e.problem and "\n" not in str(e)


@pytest.mark.parametrize("name", ["bom.yaml", "bom.json"])
def test_a_byte_order_mark_written_by_an_editor_is_ignored(tmp_path, name):
    doc = copy.deepcopy(BASE)
    text = json.dumps(doc) if name.endswith(".json") else yaml.safe_dump(doc, sort_keys=False)
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_topology(path) == load(tmp_path)


# -- issue 9: a NAT gateway address outside its subnet; repair=True -------------------------------


def _nat_outside(doc: dict) -> None:
    doc["nat_gateways"][0]["private_ip"] = "10.107.155.74"  # moto's kind of address: not in subnet-a


def test_a_nat_gateway_address_outside_its_subnet_is_refused_and_the_error_names_repair(tmp_path):
    e = error(tmp_path, _nat_outside)
    assert e.where == "nat_gateways[0].private_ip"
    assert "10.107.155.74 is not inside subnet-a (10.0.0.0/24)" in e.problem and "--repair" in e.problem


def test_repair_reallocates_the_nat_gateway_address_from_its_subnet_and_warns_once_naming_it(tmp_path):
    doc = copy.deepcopy(BASE)
    _nat_outside(doc)
    path = write(tmp_path, doc)
    with pytest.warns(hp.errors.RepairWarning) as caught:
        topology = load_topology(path, repair=True)
    assert len(caught) == 1 and "nat-1" in str(caught[0].message) and "10.107.155.74 -> 10.0.0.4" in str(caught[0].message)
    nat = topology.nat_gateways["nat-1"]
    assert nat.private_ips == (IPv4Address("10.0.0.4"),)  # the lowest free address of subnet-a
    assert topology.network_interfaces[nat.network_interface_id].private_ip == IPv4Address("10.0.0.4")
    out = hp.Network(topology).send(scapy.IP(src="10.0.1.9", dst="8.8.8.8") / scapy.TCP(dport=443, flags="S"),
                                    source="internet")  # any packet: the network works
    assert out is not None
