"""Real `terraform show -json` plans written outside this project (../shared/fixtures/iac/tf-*,
read in place): each loads, and the connectivity its authors state holds.

The fixtures hold no instance or function, only the network: the probes that send packets
(ENIs, a Lambda function) are added to the parsed document by these tests, as a user's own
configuration would add them next to the module, wired by configuration references exactly as
Terraform writes them (`aws_subnet.private` + `count.index`).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pytest
from scapy.all import IP, TCP

import hyperplane as hp
from hyperplane.formats.snapshot_report import SnapshotWarning
from hyperplane.formats.terraform_reader import read_terraform, terraform_topology
from hyperplane.reasons import Reason

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "iac"
INTERNET_HOST = "93.184.216.34"


def _plan(folder: str) -> Path:
    path = FIXTURES / folder / "plan.out.json"
    if not path.is_file():
        pytest.skip(f"fixture {path} is absent (the shared IaC fixtures are read in place, never copied)")
    return path


def _add_to_module(document: dict, module: str, address: str, type_: str, instances: list[dict],
                   expressions: dict, count: int | None = None) -> dict:
    """Add a resource to child module ``module`` of a plan, planned values and configuration both."""
    document = copy.deepcopy(document)
    child = next(c for c in document["planned_values"]["root_module"]["child_modules"] if c["address"] == module)
    name = address.split(".")[1]
    for i, values in enumerate(instances):
        resource = {"address": f"{module}.{address}" + (f"[{i}]" if count is not None else ""), "mode": "managed",
                    "type": type_, "name": name, "values": values}
        if count is not None:
            resource["index"] = i
        child["resources"].append(resource)
    block = {"address": address, "mode": "managed", "type": type_, "name": name, "expressions": expressions}
    if count is not None:
        block["count_expression"] = {"constant_value": count}
    document["configuration"]["root_module"]["module_calls"][module.split(".")[1]]["module"]["resources"].append(block)
    return document


# -- tf-vpc-module-3nat: terraform-aws-modules/vpc, three AZs, a NAT gateway per AZ -----------


@pytest.fixture(scope="module")
def three_nat() -> dict:
    return json.loads(_plan("tf-vpc-module-3nat").read_text())


def test_the_vpc_module_plan_loads_with_its_wiring_through_configuration_references(three_nat):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        topology = read_terraform(_plan("tf-vpc-module-3nat"))
    assert topology.region == "eu-west-1"  # the provider's region
    by_name = {s.name: s for s in topology.subnets.values()}
    assert sorted(str(s.cidr) for s in topology.subnets.values()) == [
        "10.0.1.0/24", "10.0.101.0/24", "10.0.102.0/24", "10.0.103.0/24", "10.0.2.0/24", "10.0.3.0/24"]
    # every private subnet routes 0.0.0.0/0 to the NAT gateway of its own AZ (count index paired)
    for i, zone in enumerate("abc"):
        private = by_name[f"module.vpc.aws_subnet.private[{i}]"]
        public = by_name[f"module.vpc.aws_subnet.public[{i}]"]
        assert private.availability_zone == public.availability_zone == f"eu-west-1{zone}"
        default = [r for r in topology.route_tables[private.route_table_id].routes if str(r.destination) == "0.0.0.0/0"]
        nat = topology.nat_gateways[default[0].target]
        assert nat.name == f"module.vpc.aws_nat_gateway.this[{i}]" and nat.subnet_id == public.id
    # the public subnets share the public table, to the internet gateway
    public_tables = {by_name[f"module.vpc.aws_subnet.public[{i}]"].route_table_id for i in range(3)}
    assert len(public_tables) == 1
    assert [r.target_kind for r in topology.route_tables[public_tables.pop()].routes][0] == "igw"
    # the VPN gateway is in the plan but not emulated: reported once
    reported = [str(w.message) for w in caught if issubclass(w.category, SnapshotWarning)]
    assert reported == ["plan.out.json: not emulated (skipped): aws_vpn_gateway (VPN gateways): 1"]


def _private_probes(document: dict) -> dict:
    document = _add_to_module(
        document, "module.vpc", "aws_network_interface.probe", "aws_network_interface", [{}, {}, {}],
        {"subnet_id": {"references": ["aws_subnet.private", "count.index"]}}, count=3)
    return _add_to_module(
        document, "module.vpc", "aws_lambda_function.probe", "aws_lambda_function",
        [{"function_name": "probe", "vpc_config": [{}]}],
        {"vpc_config": [{"subnet_ids": {"references": ["aws_subnet.private"]},
                         "security_group_ids": {"references": ["aws_vpc.this[0].default_security_group_id",
                                                               "aws_vpc.this[0]", "aws_vpc.this"]}}]})


def test_instances_in_each_private_subnet_reach_the_internet_through_their_own_azs_nat_gateway(three_nat):
    # AWS: "Create a NAT gateway in each Availability Zone ... configure your routing to ensure
    # that resources use the NAT gateway in the same Availability Zone" (NAT gateways, best practice)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SnapshotWarning)
        net = hp.Network(terraform_topology(_private_probes(three_nat), file="plan.out.json"), ready=True)
    t = net.topology
    for i in range(3):
        eni = next(e for e in t.network_interfaces.values() if e.description == f"module.vpc.aws_network_interface.probe[{i}]")
        subnet = t.subnets[eni.subnet_id]
        assert subnet.name == f"module.vpc.aws_subnet.private[{i}]"
        nat = next(n for n in t.nat_gateways.values() if n.name == f"module.vpc.aws_nat_gateway.this[{i}]")
        result = net.send(IP(src=str(eni.private_ip), dst=INTERNET_HOST) / TCP(sport=40000, dport=443, flags="S"),
                          source=eni.id)
        assert result.reason is Reason.EXITED_TO_INTERNET, str(result)
        assert str(result.packet.src) == str(nat.address_pairs[0][1])  # the NAT gateway's Elastic IP
        assert nat.id in [h.resource for h in result.hops]
        reply = result.reply(TCP(flags="SA"))
        assert reply.delivered and reply.packet.dst == str(eni.private_ip), str(reply)


def test_a_function_in_the_private_subnets_reaches_the_internet_through_a_nat_gateway(three_nat):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SnapshotWarning)
        net = hp.Network(terraform_topology(_private_probes(three_nat), file="plan.out.json"), ready=True)
    fn = net.function("probe")
    assert fn.state == "Active"
    assert {net.topology.subnets[e.subnet_id].name for e in fn.hyperplane_enis} <= {
        f"module.vpc.aws_subnet.private[{i}]" for i in range(3)}
    result = fn.send(IP(dst=INTERNET_HOST) / TCP(dport=443, flags="S"))
    assert result.reason is Reason.EXITED_TO_INTERNET, str(result)
    assert any(h.resource.startswith("nat-") for h in result.hops)
    assert result.reply(TCP(flags="SA")).reason is Reason.DELIVERED_TO_FUNCTION


# -- tf-nacl-no-rules: a network ACL without rules on both subnets --------------------------


def test_a_network_acl_without_rules_denies_everything_in_its_subnets():
    # AWS: "Each custom network ACL starts out closed (permits no traffic) until you add a rule"
    # (Amazon VPC User Guide, custom network ACLs)
    document = json.loads(_plan("tf-nacl-no-rules").read_text())
    topology = terraform_topology(document, file="plan.out.json")
    acl = next(a for a in topology.network_acls.values() if a.name == "module.vpc_module.aws_network_acl.vpc_subnet_acl")
    assert [s.network_acl_id for s in topology.subnets.values()] == [acl.id, acl.id]  # both count instances
    assert [e.rule_number for e in acl.ingress] == [32767] and [e.rule_number for e in acl.egress] == [32767]

    probes = _add_to_module(document, "module.vpc_module", "aws_network_interface.probe", "aws_network_interface",
                            [{}, {}], {"subnet_id": {"references": ["aws_subnet.vpc_subnet", "count.index"]}}, count=2)
    net = hp.Network(terraform_topology(probes, file="plan.out.json"))
    a, b = (next(e for e in net.topology.network_interfaces.values()
                 if e.description == f"module.vpc_module.aws_network_interface.probe[{i}]") for i in range(2))
    result = net.send(IP(src=str(a.private_ip), dst=str(b.private_ip)) / TCP(sport=40000, dport=22, flags="S"), source=a.id)
    assert result.reason is Reason.NACL_OUT_DENY, str(result)
    assert not result.delivered
