"""Terraform documents a user writes: states and plans of every format version, the resource
types of a Lambda-in-VPC network, what Terraform itself does to security groups, and bad input
(one error naming the file, the resource address and attribute, and the problem)."""

from __future__ import annotations

import json

import pytest
from scapy.all import IP, TCP, UDP

import hyperplane as hp
from hyperplane.errors import TopologyError
from hyperplane.formats.aws_prefix_lists import managed_prefix_list_cidrs
from hyperplane.formats.terraform_reader import is_terraform_document, read_terraform, terraform_topology
from hyperplane.reasons import Reason


def _r(type_: str, name: str, values: dict, index=None, module: str = "", mode: str = "managed") -> dict:
    address = f"{module + '.' if module else ''}{'data.' if mode == 'data' else ''}{type_}.{name}"
    if index is not None:
        address += f"[{json.dumps(index)}]"
    out = {"address": address, "mode": mode, "type": type_, "name": name, "values": values}
    if index is not None:
        out["index"] = index
    return out


def state(*resources: dict, version: str = "1.0") -> dict:
    return {"format_version": version, "terraform_version": "1.5.7", "values": {"root_module": {"resources": list(resources)}}}


NETWORK = [
    _r("aws_vpc", "main", {"id": "vpc-0a1", "cidr_block": "10.8.0.0/16", "owner_id": "210987654321"}),
    _r("aws_subnet", "private", {"id": "subnet-0p1", "vpc_id": "vpc-0a1", "cidr_block": "10.8.1.0/24",
                                 "availability_zone": "eu-central-1a"}),
    _r("aws_subnet", "public", {"id": "subnet-0u1", "vpc_id": "vpc-0a1", "cidr_block": "10.8.0.0/24",
                                "availability_zone": "eu-central-1a"}),
    _r("aws_internet_gateway", "gw", {"id": "igw-0g1", "vpc_id": "vpc-0a1"}),
    _r("aws_eip", "nat", {"id": "eipalloc-0e1", "allocation_id": "eipalloc-0e1", "public_ip": "198.51.100.40"}),
    _r("aws_nat_gateway", "nat", {"id": "nat-0n1", "subnet_id": "subnet-0u1", "allocation_id": "eipalloc-0e1",
                                  "connectivity_type": "public"}),
    _r("aws_route_table", "public", {"id": "rtb-0pub", "vpc_id": "vpc-0a1", "route": [
        {"cidr_block": "0.0.0.0/0", "gateway_id": "igw-0g1", "nat_gateway_id": ""}]}),
    _r("aws_route_table", "private", {"id": "rtb-0prv", "vpc_id": "vpc-0a1", "route": []}),
    _r("aws_route", "private_nat", {"route_table_id": "rtb-0prv", "destination_cidr_block": "0.0.0.0/0",
                                    "nat_gateway_id": "nat-0n1"}),
    _r("aws_route_table_association", "private", {"subnet_id": "subnet-0p1", "route_table_id": "rtb-0prv"}),
    _r("aws_route_table_association", "public", {"subnet_id": "subnet-0u1", "route_table_id": "rtb-0pub"}),
    _r("aws_security_group", "fn", {"id": "sg-0fn", "vpc_id": "vpc-0a1", "name": "fn", "ingress": [], "egress": [
        {"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"], "self": False}]}),
    _r("aws_security_group", "cache", {"id": "sg-0cache", "vpc_id": "vpc-0a1", "name": "cache", "ingress": [], "egress": []}),
    _r("aws_vpc_security_group_ingress_rule", "redis", {"security_group_id": "sg-0cache", "ip_protocol": "tcp",
                                                        "from_port": 6379, "to_port": 6379,
                                                        "referenced_security_group_id": "sg-0fn"}),
    _r("aws_elasticache_subnet_group", "cache", {"name": "cache", "subnet_ids": ["subnet-0p1"]}),
    _r("aws_elasticache_cluster", "sessions", {"cluster_id": "sessions", "subnet_group_name": "cache",
                                               "security_group_ids": ["sg-0cache"], "num_cache_nodes": 1}),
    _r("aws_vpc_endpoint", "s3", {"id": "vpce-0s3", "vpc_id": "vpc-0a1", "service_name": "com.amazonaws.eu-central-1.s3",
                                  "vpc_endpoint_type": "Gateway", "route_table_ids": ["rtb-0prv"]}),
    _r("aws_lambda_function", "api", {"function_name": "api", "vpc_config": [
        {"subnet_ids": ["subnet-0p1"], "security_group_ids": ["sg-0fn"]}]}),
]


def test_a_state_of_a_lambda_in_a_private_subnet_loads_and_connects():
    net = hp.Network(terraform_topology(state(*NETWORK), file="terraform.tfstate.json"), ready=True)
    t = net.topology
    assert t.region == "eu-central-1" and t.account_id == "210987654321"
    assert t.route_tables["rtb-0prv"].name == "aws_route_table.private"
    api = net.function("api")
    cache = next(e for e in t.network_interfaces.values() if e.kind == "elasticache")
    assert cache.description == "aws_elasticache_cluster.sessions node 1" and str(cache.private_ip) == "10.8.1.4"
    result = api.send(IP(dst=str(cache.private_ip)) / TCP(dport=6379, flags="S"))
    assert result.reason is Reason.DELIVERED, str(result)
    assert result.reply(TCP(flags="SA")).reason is Reason.DELIVERED_TO_FUNCTION
    # the cache admits only the function's group, on 6379
    assert api.send(IP(dst=str(cache.private_ip)) / TCP(dport=22, flags="S")).reason is Reason.SG_INGRESS_DENY
    out = api.send(IP(dst="93.184.216.34") / TCP(dport=443, flags="S"))
    assert out.reason is Reason.EXITED_TO_INTERNET and out.packet.src == "198.51.100.40", str(out)


def test_s3_goes_through_the_gateway_endpoint_with_the_ranges_aws_publishes_not_through_the_nat_gateway():
    # AWS: "A gateway endpoint ... uses a prefix list ... The prefix list ... contains the IP
    # address ranges of the service" (Gateway endpoints, Amazon VPC PrivateLink guide)
    net = hp.Network(terraform_topology(state(*NETWORK), file="terraform.tfstate.json"), ready=True)
    endpoint = net.topology.vpc_endpoints["vpce-0s3"]
    cidrs = net.topology.prefix_lists[endpoint.prefix_list_id].cidrs
    assert cidrs == managed_prefix_list_cidrs("com.amazonaws.eu-central-1.s3") and cidrs
    s3_address = str(next(cidrs[0].hosts()))
    result = net.function("api").send(IP(dst=s3_address) / TCP(dport=443, flags="S"))
    assert result.reason is Reason.DELIVERED_TO_GATEWAY_ENDPOINT, str(result)
    assert "nat-0n1" not in [h.resource for h in result.hops]


def test_terraform_removes_the_egress_allow_all_so_a_group_without_egress_sends_nothing():
    # AWS provider docs (aws_security_group): "When creating a new Security Group inside a VPC,
    # Terraform will remove this default rule, and require you specifically re-create it"
    resources = [dict(r, values=dict(r["values"], security_group_ids=["sg-0cache"], subnet_ids=["subnet-0p1"]))
                 if r["type"] == "aws_lambda_function" else r for r in NETWORK]
    resources[-1]["values"]["vpc_config"] = [{"subnet_ids": ["subnet-0p1"], "security_group_ids": ["sg-0cache"]}]
    net = hp.Network(terraform_topology(state(*resources), file="s.json"), ready=True)
    assert net.topology.security_groups["sg-0cache"].egress == ()
    result = net.function("api").send(IP(dst="93.184.216.34") / TCP(dport=443, flags="S"))
    assert result.reason is Reason.SG_EGRESS_DENY, str(result)


PLAN_CONFIG = {"root_module": {"module_calls": {"net": {"source": "./net", "module": {
    "resources": [
        {"address": "aws_vpc.this", "type": "aws_vpc", "name": "this", "expressions": {}},
        {"address": "aws_subnet.app", "type": "aws_subnet", "name": "app",
         "expressions": {"vpc_id": {"references": ["aws_vpc.this.id", "aws_vpc.this"]}},
         "for_each_expression": {"references": ["var.zones"]}},
        {"address": "aws_network_acl.app", "type": "aws_network_acl", "name": "app",
         "expressions": {"vpc_id": {"references": ["aws_vpc.this.id", "aws_vpc.this"]},
                         "subnet_ids": {"references": ['aws_subnet.app["a"].id', 'aws_subnet.app["a"]', "aws_subnet.app"]}}},
        {"address": "aws_network_acl_rule.in", "type": "aws_network_acl_rule", "name": "in",
         "expressions": {"network_acl_id": {"references": ["aws_network_acl.app.id", "aws_network_acl.app"]}}},
    ],
    "outputs": {"subnet_ids": {"expression": {"references": ["aws_subnet.app"]}}}}}},
    "resources": [{"address": "aws_network_interface.db", "type": "aws_network_interface", "name": "db",
                   "expressions": {"subnet_id": {"references": ["module.net.subnet_ids", "module.net"]}}}]}}


def plan(version: str = "1.2") -> dict:
    unknown = {"id": True, "vpc_id": True, "subnet_ids": True, "network_acl_id": True, "subnet_id": True}
    child = [
        _r("aws_vpc", "this", {"cidr_block": "10.9.0.0/16"}, module="module.net"),
        _r("aws_subnet", "app", {"cidr_block": "10.9.1.0/24", "availability_zone": "us-west-2a"}, index="a", module="module.net"),
        _r("aws_subnet", "app", {"cidr_block": "10.9.2.0/24", "availability_zone": "us-west-2b"}, index="b", module="module.net"),
        _r("aws_network_acl", "app", {}, module="module.net"),
        _r("aws_network_acl_rule", "in", {"rule_number": 100, "egress": False, "protocol": "tcp", "rule_action": "allow",
                                          "cidr_block": "10.9.0.0/16", "from_port": 5432, "to_port": 5432},
           module="module.net"),
    ]
    root = [_r("aws_network_interface", "db", {"private_ip": "10.9.1.50"})]
    changes = [{"address": r["address"], "change": {"actions": ["create"], "after": r["values"], "after_unknown": unknown}}
               for r in child + root]
    return {"format_version": version, "terraform_version": "1.3.0", "configuration": PLAN_CONFIG,
            "planned_values": {"root_module": {"resources": root, "child_modules": [
                {"address": "module.net", "resources": child}]}}, "resource_changes": changes}


@pytest.mark.parametrize("version", ["0.1", "0.2", "1.0", "1.2"])
def test_a_plan_wires_unknown_ids_through_references_for_each_keys_and_module_outputs(version):
    topology = terraform_topology(plan(version), file="plan.json")
    by_name = {s.name: s for s in topology.subnets.values()}
    a, b = by_name['module.net.aws_subnet.app["a"]'], by_name['module.net.aws_subnet.app["b"]']
    acl = next(x for x in topology.network_acls.values() if x.name == "module.net.aws_network_acl.app")
    assert a.network_acl_id == acl.id and b.network_acl_id != acl.id  # the "a" instance only
    assert [(e.rule_number, e.port_range) for e in acl.ingress] == [(100, (5432, 5432)), (32767, (0, 65535))]
    db = next(e for e in topology.network_interfaces.values() if e.description == "aws_network_interface.db")
    assert db.subnet_id == a.id  # module.net.subnet_ids -> the first instance of aws_subnet.app
    assert topology.region == "us-west-2"
    assert terraform_topology(plan(version), file="plan.json") == topology  # same ids on every load


def test_terraform_documents_are_told_apart_by_content(tmp_path):
    path = tmp_path / "anything.json"
    path.write_text(json.dumps(state(*NETWORK)))
    assert is_terraform_document(json.loads(path.read_text()))
    assert not is_terraform_document({"vpcs": []}) and not is_terraform_document([])
    assert "vpc-0a1" in read_terraform(path).vpcs
    assert "vpc-0a1" in hp.Network.load(path).topology.vpcs


# -- bad input: one error, naming the file, the address, the attribute, the problem ------------


def _error(document: dict) -> str:
    with pytest.raises(TopologyError) as caught:
        terraform_topology(document, file="plan.json")
    return str(caught.value)


def _replace(name: str, **values) -> list[dict]:
    return [dict(r, values=dict(r["values"], **values)) if r["address"] == name else r for r in NETWORK]


def test_a_reference_to_a_resource_the_document_does_not_hold_is_named():
    assert _error(state(*_replace("aws_route.private_nat", route_table_id="rtb-0nope"))) == (
        "plan.json: aws_route.private_nat.route_table_id: 'rtb-0nope' names no resource of this document")
    document = plan()
    document["configuration"]["root_module"]["module_calls"]["net"]["module"]["resources"][3]["expressions"][
        "network_acl_id"] = {"references": ["aws_network_acl.gone.id", "aws_network_acl.gone"]}
    assert _error(document) == ("plan.json: module.net.aws_network_acl_rule.in.network_acl_id: "
                                "no acl resource of this document is named here")


def test_a_bad_cidr_is_named_with_its_address_and_attribute():
    message = _error(state(*_replace("aws_subnet.private", cidr_block="10.8.300.0/24")))
    assert message.startswith("plan.json: aws_subnet.private.cidr_block: '10.8.300.0/24' is not a valid IPv4 CIDR")
    # a check of the topology reader names the Terraform address too
    assert _error(state(*_replace("aws_subnet.private", cidr_block="10.99.1.0/24"))).startswith(
        "plan.json: aws_subnet.private (subnets[0].cidr): ")


def test_a_value_of_the_wrong_type_is_named():
    assert _error(state(*_replace("aws_security_group.fn", egress=[{"protocol": "tcpx", "from_port": 1, "to_port": 2}]))) == (
        "plan.json: aws_security_group.fn.egress[0].protocol: 'tcpx' is not a protocol (-1/all, tcp, udp, icmp or a number 0-255)")
    assert _error(state(*_replace("aws_subnet.private", cidr_block=["10.8.1.0/24"]))).startswith(
        "plan.json: aws_subnet.private.cidr_block: ['10.8.1.0/24'] is not a valid IPv4 CIDR")
    broken = state()
    broken["values"]["root_module"]["resources"] = {"aws_vpc.main": {}}
    assert _error(broken) == "plan.json: values.root_module.resources: expected an array, not an object"
    assert _error(state(_r("aws_vpc", "main", ["10.0.0.0/16"]))) == "plan.json: aws_vpc.main.values: expected an object, not an array"


def test_an_unsupported_format_version_is_refused():
    assert _error(state(*NETWORK, version="2.0")) == (
        "plan.json: format_version: format_version '2.0' is not supported (read: 0.1, 0.2 and 1.x)")
    assert _error({"vpcs": []}) == (
        "plan.json: not a terraform show -json document (no format_version with planned_values or values)")


def test_a_file_that_is_not_json_is_one_error_with_its_line(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text('{"format_version": "1.0",\n "values": {')
    with pytest.raises(TopologyError) as caught:
        read_terraform(path)
    assert caught.value.line == 2 and str(caught.value).startswith("plan.json: line 2, column")


def test_udp_to_the_cache_from_the_function_is_denied_by_its_group():
    net = hp.Network(terraform_topology(state(*NETWORK), file="s.json"), ready=True)
    cache = next(e for e in net.topology.network_interfaces.values() if e.kind == "elasticache")
    assert net.function("api").send(IP(dst=str(cache.private_ip)) / UDP(dport=6379)).reason is Reason.SG_INGRESS_DENY


def test_an_rds_instance_is_an_eni_in_its_subnet_group_admitting_only_its_groups():
    database = [
        _r("aws_security_group", "db", {"id": "sg-0db", "vpc_id": "vpc-0a1", "name": "db", "egress": [], "ingress": [
            {"protocol": "tcp", "from_port": 5432, "to_port": 5432, "security_groups": ["sg-0fn"], "self": False}]}),
        _r("aws_db_subnet_group", "db", {"id": "orders", "name": "orders", "subnet_ids": ["subnet-0p1", "subnet-0u1"]}),
        _r("aws_db_instance", "orders", {"identifier": "orders", "db_subnet_group_name": "orders",
                                         "vpc_security_group_ids": ["sg-0db"]}),
    ]
    net = hp.Network(terraform_topology(state(*NETWORK, *database), file="s.json"), ready=True)
    db = next(e for e in net.topology.network_interfaces.values() if e.kind == "rds")
    assert db.subnet_id == "subnet-0p1" and db.security_group_ids == ("sg-0db",)
    assert db.description == "aws_db_instance.orders"
    api = net.function("api")
    assert api.send(IP(dst=str(db.private_ip)) / TCP(dport=5432, flags="S")).reason is Reason.DELIVERED
    assert api.send(IP(dst=str(db.private_ip)) / TCP(dport=3306, flags="S")).reason is Reason.SG_INGRESS_DENY
