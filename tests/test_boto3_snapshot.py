"""Collecting an account with boto3: a VPC built under moto, collected with the describe calls,
loaded (in memory and through a written snapshot folder) and exercised with packets."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from scapy.layers.inet import IP, TCP

import hyperplane as hp
from hyperplane.formats.boto3_collect import (
    EC2_CALLS, CollectError, collect_documents, from_boto3, read_boto3, write_snapshot,
)
from hyperplane.reasons import Reason

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

pytestmark = pytest.mark.filterwarnings("ignore::hyperplane.formats.snapshot_report.SnapshotWarning")

OFFICE = "198.51.100.0/24"


@pytest.fixture
def aws(monkeypatch):
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_SESSION_TOKEN", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    with moto.mock_aws():
        yield boto3.Session(region_name="us-east-1")


def build_account(session, *, nat: bool) -> dict:
    """A public and a private subnet, an IGW, a web instance with an Elastic IP, a Lambda
    function in the private subnet; optionally a NAT gateway for the private subnet."""
    ec2, iam, lam = session.client("ec2"), session.client("iam"), session.client("lambda")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    rt_public = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rt_public, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=rt_public, SubnetId=public)
    rt_private = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=rt_private, SubnetId=private)
    app = ec2.create_security_group(GroupName="app", Description="functions", VpcId=vpc)["GroupId"]
    web = ec2.create_security_group(GroupName="web", Description="web server", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": app}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": OFFICE}]},
    ])
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t2.micro",
                                 SubnetId=public, SecurityGroupIds=[web])["Instances"][0]
    web_eip = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=web_eip["AllocationId"], InstanceId=instance["InstanceId"])
    out = {"vpc": vpc, "public": public, "private": private, "instance": instance["InstanceId"],
           "instance_ip": instance["PrivateIpAddress"], "web_public_ip": web_eip["PublicIp"]}
    if nat:
        nat_eip = ec2.allocate_address(Domain="vpc")
        nat_id = ec2.create_nat_gateway(SubnetId=public, AllocationId=nat_eip["AllocationId"])["NatGateway"]["NatGatewayId"]
        ec2.create_route(RouteTableId=rt_private, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id)
        out |= {"nat": nat_id, "nat_public_ip": nat_eip["PublicIp"]}
    role = iam.create_role(RoleName="orders-role", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return 1\n")
    lam.create_function(FunctionName="orders", Runtime="python3.11", Role=role, Handler="index.handler",
                        Code={"ZipFile": code.getvalue()},
                        VpcConfig={"SubnetIds": [private], "SecurityGroupIds": [app]})
    return out


def test_from_boto3_collects_a_vpc_built_under_moto_and_carries_packets(aws):
    ids = build_account(aws, nat=False)
    net = hp.Network.from_boto3(aws)
    fn = net.function("orders")
    assert fn.state == "Active" and fn.hyperplane_enis[0].subnet_id == ids["private"]
    # the function's group is named by the web group's rule: 443 in, 22 not
    r = fn.send(IP(dst=ids["instance_ip"]) / TCP(dport=443, flags="S"))
    assert r.reason == Reason.DELIVERED and r.packet.src == fn.hyperplane_enis[0].private_ip
    assert r.reply(TCP(flags="SA")).reason == Reason.DELIVERED_TO_FUNCTION
    assert fn.send(IP(dst=ids["instance_ip"]) / TCP(dport=22, flags="S")).reason == Reason.SG_INGRESS_DENY
    # the private table has no default route (no NAT gateway in this account)
    assert fn.send(IP(dst="8.8.8.8") / TCP(dport=443, flags="S")).reason == Reason.NO_ROUTE
    # the Elastic IP maps to the instance; SSH only from the office
    office = net.send(IP(src="198.51.100.9", dst=ids["web_public_ip"]) / TCP(sport=5000, dport=22, flags="S"), "internet")
    assert office.reason == Reason.DELIVERED and office.packet.dst == ids["instance_ip"]
    other = net.send(IP(src="192.0.2.9", dst=ids["web_public_ip"]) / TCP(sport=5000, dport=22, flags="S"), "internet")
    assert other.reason == Reason.SG_INGRESS_DENY


def test_clients_can_be_given_as_a_mapping_and_every_describe_call_is_collected(aws):
    build_account(aws, nat=False)
    region, documents = collect_documents({"ec2": aws.client("ec2"), "lambda": aws.client("lambda")})
    assert region == "us-east-1"
    assert set(documents) == {f"{key}.json" for key, _ in EC2_CALLS} | {"Functions.json"}
    assert [f["FunctionName"] for f in documents["Functions.json"]["Functions"]] == ["orders"]
    topology, report = read_boto3({"ec2": aws.client("ec2")})  # no lambda client: no functions
    assert not topology.functions and len(topology.vpcs) == 2  # moto's default VPC and ours


# moto gives a NAT gateway a random 10.x address outside its subnet (AWS never does): loading
# such a snapshot is refused with a pointer to --repair, and the lenient load re-allocates it.


def _nat_route_works(net: hp.Network, ids: dict) -> None:
    nat = net.topology.nat_gateways[ids["nat"]]
    assert nat.public_ip is not None and nat.private_ip in net.topology.subnets[ids["public"]].cidr
    fn = net.function("orders")
    out = fn.send(IP(dst="8.8.8.8") / TCP(dport=443, flags="S"))
    assert out.reason == Reason.EXITED_TO_INTERNET and out.packet.src == ids["nat_public_ip"]
    assert out.reply(TCP(flags="SA")).reason == Reason.DELIVERED_TO_FUNCTION
    inbound = net.send(IP(src="8.8.8.8", dst=ids["nat_public_ip"]) / TCP(sport=443, dport=1234, flags="S"), "internet")
    assert inbound.reason == Reason.NAT_UNSOLICITED_INBOUND


def test_write_snapshot_with_repair_then_network_load_reaches_the_internet_through_the_nat_gateway(aws, tmp_path):
    ids = build_account(aws, nat=True)
    with pytest.warns(hp.errors.RepairWarning, match=f"NAT gateway {ids['nat']}"):
        written = write_snapshot(aws, tmp_path, repair=True)
    assert {p.name for p in written} >= {"Vpcs.json", "NatGateways.json", "Functions.json"}
    assert all(p.parent == tmp_path / "us-east-1" for p in written)
    _nat_route_works(hp.Network.load(tmp_path), ids)  # the repaired folder loads as it is


def test_from_boto3_refuses_moto_nat_address_naming_repair_and_repairs_it_when_asked(aws):
    ids = build_account(aws, nat=True)
    with pytest.raises(hp.errors.TopologyError, match="--repair") as caught:
        from_boto3(aws)
    assert caught.value.where == "NatGateways[0].NatGatewayAddresses[0].PrivateIp"
    with pytest.warns(hp.errors.RepairWarning) as warned:
        topology = from_boto3(aws, repair=True)
    assert [str(w.message).count(ids["nat"]) for w in warned if w.category is hp.errors.RepairWarning] == [1]
    _nat_route_works(hp.Network(topology, ready=True), ids)


def test_the_snapshot_command_against_moto_then_trace_needs_repair_and_says_so(aws, tmp_path):
    from click.testing import CliRunner

    from hyperplane.cli import main

    ids = build_account(aws, nat=True)
    runner = CliRunner()
    # as collected: written, but the folder does not load; the one line says what to do
    raw = runner.invoke(main, ["snapshot", str(tmp_path / "raw")])
    assert raw.exit_code == 2 and "wrote 16 files" in raw.stdout
    assert raw.stderr.count("\n") == 1 and "is not inside" in raw.stderr and "--repair" in raw.stderr
    trace = ["trace", "--topology", str(tmp_path / "raw"), "--from", "orders", "--to", "8.8.8.8:443"]
    refused = runner.invoke(main, trace)
    assert refused.exit_code == 2 and "--repair" in refused.stderr
    repaired = runner.invoke(main, [*trace, "--repair"])
    assert repaired.exit_code == 0, repaired.stderr
    lines = [line for line in repaired.stderr.splitlines() if line.startswith("hyperplane: warning: repaired:")]
    assert len(lines) == 1 and ids["nat"] in lines[0]
    assert f"-> {ids['nat_public_ip']}" in repaired.stdout  # out through the NAT gateway's Elastic IP
    # snapshot --repair writes a folder that loads without it
    fixed = runner.invoke(main, ["snapshot", "--repair", str(tmp_path / "fixed")])
    assert fixed.exit_code == 0 and fixed.stderr.count("hyperplane: warning: repaired:") == 1
    plain = runner.invoke(main, ["trace", "--topology", str(tmp_path / "fixed"), "--from", "orders", "--to", "8.8.8.8:443"])
    assert plain.exit_code == 0 and "repaired" not in plain.stderr
    # what the snapshot held and was not emulated: one clean line, not Python's warning format
    assert [line for line in plain.stderr.splitlines() if "warning" in line] == [
        line for line in plain.stderr.splitlines() if line.startswith("hyperplane: warning: AWS snapshot")]


def test_network_load_and_from_boto3_take_repair(aws, tmp_path):
    ids = build_account(aws, nat=True)
    write_snapshot(aws, tmp_path)
    with pytest.warns(hp.errors.RepairWarning):
        _nat_route_works(hp.Network.load(tmp_path, repair=True), ids)
    with pytest.warns(hp.errors.RepairWarning):
        _nat_route_works(hp.Network.from_boto3(aws, repair=True), ids)


class _Pages:
    """A stand-in EC2 client: describe_subnets comes in two pages; one call can fail."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.meta = type("Meta", (), {"region_name": "eu-west-1",
                                      "service_model": type("SM", (), {"service_name": "ec2"})()})()

    def can_paginate(self, method: str) -> bool:
        return method == "describe_subnets"

    def get_paginator(self, method: str):
        pages = [{"Subnets": [{"SubnetId": "subnet-1", "VpcId": "vpc-1", "CidrBlock": "10.1.1.0/24", "AvailabilityZone": "eu-west-1a"}],
                  "NextToken": "t"},
                 {"Subnets": [{"SubnetId": "subnet-2", "VpcId": "vpc-1", "CidrBlock": "10.1.2.0/24", "AvailabilityZone": "eu-west-1b"}]}]
        return type("P", (), {"paginate": lambda self, **kw: iter(pages)})()

    def __getattr__(self, method: str):
        def call(**kwargs):
            if method == self.fail:
                raise RuntimeError("UnauthorizedOperation: You are not authorized to perform this operation.")
            if method == "describe_vpcs":
                return {"Vpcs": [{"VpcId": "vpc-1", "CidrBlock": "10.1.0.0/16"}]}
            return {}
        return call


def test_paginated_calls_are_followed_to_the_last_page():
    topology, report = read_boto3(_Pages())
    assert list(topology.subnets) == ["subnet-1", "subnet-2"]
    assert any("no main route table" in n for n in report.notes)  # defaults created, as AWS has them


def test_a_failing_describe_call_is_named():
    with pytest.raises(CollectError, match="ec2.describe_route_tables failed: UnauthorizedOperation"):
        collect_documents(_Pages(fail="describe_route_tables"))
