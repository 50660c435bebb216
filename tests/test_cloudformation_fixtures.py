"""Real CloudFormation, SAM and CDK templates written outside this project
(../shared/fixtures/iac, read in place): each loads, and the connectivity its authors state holds.

The stated intent of each file is quoted from its SOURCE.md above its test.
"""

import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from scapy.all import IP, TCP

import hyperplane as hp
from hyperplane.formats.snapshot_report import SnapshotWarning
from hyperplane.model import ExecutionRole, LambdaFunction, VpcConfig
from hyperplane.reasons import Reason

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "iac"


def fixture(folder: str, name: str) -> Path:
    path = FIXTURES / folder / name
    if not path.is_file():
        pytest.skip(f"the third-party fixture {folder}/{name} is not here (../shared/fixtures/iac)")
    return path


def load(folder: str, name: str) -> hp.Network:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these holds anything that is not emulated
        return hp.Network.load(fixture(folder, name))


def named(resources, name):
    found = [r for r in resources.values() if r.name == name]
    assert len(found) == 1, f"no single resource named {name}"
    return found[0]


def passes(result, stage, resource):
    return any(h.stage == stage and h.resource == resource for h in result.hops)


def test_sam_elasticache_functions_reach_the_cache_and_the_internet_through_the_nat_gateway():
    # "Example of caching with ElastiCache and accessing it with AWS Lambda." / "you'll keep your
    # cache instances in a VPC ... this requires you to also put your Lambda functions into the
    # same VPC in order to let them access the cache."
    net = load("sam-elasticache-nat", "cfn.yml")
    t = net.topology
    cache = [e for e in t.network_interfaces.values() if e.kind == "elasticache"]
    assert len(cache) == 1 and cache[0].security_group_ids == (named(t.security_groups, "CacheSecurityGroup").id,)
    fn = net.function("ElastiCacheLambdaFunction")  # the SAM function, expanded by the SAM translator

    r = fn.send(IP(dst=str(cache[0].private_ip)) / TCP(dport=6379, flags="S"))
    assert r.reason == Reason.DELIVERED
    assert r.reply(TCP(flags="SA")).reason == Reason.DELIVERED_TO_FUNCTION
    # the cache's group admits the function's group on 6379 only: not another port, and not a
    # function of another group in the same subnets
    assert fn.send(IP(dst=str(cache[0].private_ip)) / TCP(dport=22, flags="S")).reason == Reason.SG_INGRESS_DENY
    vpc = next(iter(t.vpcs.values()))
    other = LambdaFunction("other", ExecutionRole("arn:aws:iam::123456789012:role/other",
                                                  managed_policies=("AWSLambdaVPCAccessExecutionRole",)),
                           VpcConfig(t.function("ElastiCacheLambdaFunction").vpc_config.subnet_ids,
                                     (vpc.default_security_group_id,)))
    stranger = hp.Network(t.replace(other), ready=True).function("other")
    assert stranger.send(IP(dst=str(cache[0].private_ip)) / TCP(dport=6379, flags="S")).reason == Reason.SG_INGRESS_DENY

    out = fn.send(IP(dst="93.184.216.34") / TCP(dport=443, flags="S"))
    assert out.reason == Reason.EXITED_TO_INTERNET
    assert passes(out, "nat-out", named(t.nat_gateways, "NatGateway").id)
    assert out.reply(TCP(flags="SA")).reason == Reason.DELIVERED_TO_FUNCTION


def test_sam_memorydb_function_reaches_the_cluster_endpoint_and_only_on_its_port():
    # "Sample SAM Template which creates MemoryDB cluster along with the VPC, Subnets, Security
    # Groups and a Java Lambda function which can access the memory db cluster" / "The AWS Lambda
    # function uses the cluster endpoint to interact with the MemoryDB"
    with pytest.warns(SnapshotWarning) as caught:
        net = hp.Network.load(fixture("sam-memorydb", "template.yaml"))
    # its subnet CIDRs are written with host bits set (30.0.1.0/23): AWS keeps the network
    assert "30.0.1.0/23 has host bits set: AWS creates 30.0.0.0/23" in str(caught[0].message)
    t = net.topology
    nodes = [e for e in t.network_interfaces.values() if e.kind == "memorydb"]
    assert len(nodes) == 2 * 3  # NumShards 2 x (NumReplicasPerShard 2 + 1), spread over both subnets
    assert {e.subnet_id for e in nodes} == {named(t.subnets, "privateSubnetA").id, named(t.subnets, "privateSubnetB").id}
    fn = net.function("HelloWorldFunction")
    for node in nodes:
        r = fn.send(IP(dst=str(node.private_ip)) / TCP(dport=6379, flags="S"))
        assert r.reason == Reason.DELIVERED, r
        assert r.reply(TCP(flags="SA")).reason == Reason.DELIVERED_TO_FUNCTION
    assert fn.send(IP(dst=str(nodes[0].private_ip)) / TCP(dport=6380, flags="S")).reason == Reason.SG_INGRESS_DENY
    # no internet gateway and no NAT gateway in this VPC: the function cannot leave it
    assert not fn.send(IP(dst="93.184.216.34") / TCP(dport=443, flags="S")).delivered


def test_cdk_function_reaches_dynamodb_through_the_gateway_endpoint_and_the_internet_through_nat():
    # "When deployed in a VPC, the Lambda function will use ENIs in the VPC to access network
    # resources and a Gateway Endpoint will be created in the VPC for Amazon DynamoDB."
    net = load("cdk-ddb-nat-gwendpoint", "lamddb-deployFunctionWithExistingVpc.template.json")
    t = net.topology
    fn = net.function("testlambdadynamodbstackLambdaFunction5DDB3E8D")
    endpoint = named(t.vpc_endpoints, "VpcDDB49FBEC5F")
    dynamodb = t.prefix_lists[endpoint.prefix_list_id]
    assert dynamodb.name == "com.amazonaws.us-east-1.dynamodb" and dynamodb.cidrs
    r = fn.send(IP(dst=str(dynamodb.cidrs[0][10])) / TCP(dport=443, flags="S"))
    assert r.reason == Reason.DELIVERED_TO_GATEWAY_ENDPOINT
    assert any(h.stage == "route" and endpoint.id in h.detail for h in r.hops)

    out = fn.send(IP(dst="93.184.216.34") / TCP(dport=443, flags="S"))
    assert out.reason == Reason.EXITED_TO_INTERNET
    assert any(passes(out, "nat-out", n.id) for n in t.nat_gateways.values())
    assert out.reply(TCP(flags="SA")).reason == Reason.DELIVERED_TO_FUNCTION
    # the CDK's custom resource strips the VPC's default group of every rule
    default = t.security_groups[t.vpcs[named(t.vpcs, "Vpc8378EB38").id].default_security_group_id]
    assert default.ingress == () and default.egress == ()


def test_cfn_vpc_private_subnets_leave_through_the_nat_gateway_of_their_zone():
    # "Creates a VPC with Managed NAT, similar to the VPC Wizard ... (public and private subnets)"
    # The template has no function: one is placed in each private subnet to ask the question.
    net = load("cfn-vpc-nat-nacl-novpclambda", "VPC_With_Managed_NAT_And_Private_Subnet.yaml")
    t = net.topology
    assert [s.availability_zone for s in t.subnets.values()] == ["us-east-1a", "us-east-1b"] * 2  # !Select [n, !GetAZs ""]
    vpc = named(t.vpcs, "VPC")
    functions = [LambdaFunction(f"probe{n}", ExecutionRole("arn:aws:iam::123456789012:role/probe",
                                                           managed_policies=("AWSLambdaVPCAccessExecutionRole",)),
                                VpcConfig((named(t.subnets, f"PrivateSubnet{n}").id,), (vpc.default_security_group_id,)))
                 for n in (0, 1)]
    net = hp.Network(t.replace(*functions), ready=True)
    for n in (0, 1):
        out = net.function(f"probe{n}").send(IP(dst="93.184.216.34") / TCP(dport=443, flags="S"))
        assert out.reason == Reason.EXITED_TO_INTERNET
        assert passes(out, "nat-out", named(t.nat_gateways, f"NATGateway{n}").id)
        assert passes(out, "nacl-out", named(t.network_acls, "PublicNetworkAcl").id)  # the custom public NACL
        assert out.reply(TCP(flags="SA")).reason == Reason.DELIVERED_TO_FUNCTION
