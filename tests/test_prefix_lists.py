"""AWS-managed prefix lists: the S3 and DynamoDB ranges AWS publishes (ip-ranges.json), filled
in for lists and gateway endpoints an input leaves without entries; a list's own entries win."""

from __future__ import annotations

import json
from ipaddress import IPv4Network

import pytest
from scapy.all import IP, TCP

import hyperplane as hp
from hyperplane.errors import TopologyError
from hyperplane.formats import aws_prefix_lists
from hyperplane.formats.aws_prefix_lists import DATA_FILE, data_date, managed_prefix_list_cidrs, refresh
from hyperplane.formats.topology_reader import parse_topology
from hyperplane.reasons import Reason


def test_the_shipped_data_comes_from_aws_ip_ranges_with_its_date():
    data = json.loads(DATA_FILE.read_text())
    assert data["source"] == "https://ip-ranges.amazonaws.com/ip-ranges.json"
    assert data["createDate"] == data_date() and data["syncToken"].isdigit()
    assert set(data["services"]) == {"s3", "dynamodb"}
    assert len(data["services"]["s3"]) > 20 and len(data["services"]["dynamodb"]) > 20  # every commercial region
    # the ranges of the example's S3 list (a few real ones) are among us-east-1's published ranges
    s3 = managed_prefix_list_cidrs("com.amazonaws.us-east-1.s3")
    assert {IPv4Network(c) for c in ("52.216.0.0/15", "54.231.0.0/16", "3.5.0.0/19", "16.182.0.0/16")} <= set(s3)
    assert IPv4Network("52.94.0.0/22") in managed_prefix_list_cidrs("com.amazonaws.us-east-1.dynamodb")
    assert managed_prefix_list_cidrs("com.amazonaws.us-east-1.sqs") is None  # not a gateway-endpoint service
    assert managed_prefix_list_cidrs("com.amazonaws.mars-north-1.s3") is None


def _network(**extra) -> dict:
    return {
        "region": "eu-west-1",
        "vpcs": [{"id": "vpc-a", "cidr": "10.0.0.0/16"}],
        "subnets": [{"id": "subnet-a", "vpc_id": "vpc-a", "cidr": "10.0.1.0/24", "availability_zone": "eu-west-1a",
                     "route_table_id": "rtb-a"}],
        "route_tables": [{"id": "rtb-a", "vpc_id": "vpc-a"}],
        "security_groups": [{"id": "sg-a", "vpc_id": "vpc-a"}],
        "functions": [{"name": "fn", "vpc_config": {"subnet_ids": ["subnet-a"], "security_group_ids": ["sg-a"]}}],
        **extra,
    }


def _dynamodb_host(region: str = "eu-west-1") -> str:
    return str(next(managed_prefix_list_cidrs(f"com.amazonaws.{region}.dynamodb")[0].hosts()))


def test_a_gateway_endpoint_without_a_prefix_list_gets_the_services_published_ranges():
    topology = parse_topology(_network(vpc_endpoints=[{
        "id": "vpce-ddb", "vpc_id": "vpc-a", "type": "gateway", "service_name": "com.amazonaws.eu-west-1.dynamodb",
        "route_table_ids": ["rtb-a"]}]))
    endpoint = topology.vpc_endpoints["vpce-ddb"]
    listed = topology.prefix_lists[endpoint.prefix_list_id]
    assert listed.name == "com.amazonaws.eu-west-1.dynamodb" and listed.id.startswith("pl-")
    assert listed.cidrs == managed_prefix_list_cidrs("com.amazonaws.eu-west-1.dynamodb")
    net = hp.Network(topology, ready=True)
    result = net.function("fn").send(IP(dst=_dynamodb_host()) / TCP(dport=443, flags="S"))
    assert result.reason is Reason.DELIVERED_TO_GATEWAY_ENDPOINT, str(result)


def test_a_named_list_without_cidrs_is_filled_and_one_with_cidrs_is_used_as_written():
    name = "com.amazonaws.eu-west-1.s3"
    filled = parse_topology(_network(prefix_lists=[{"id": "pl-6da54004", "name": name}]))
    assert filled.prefix_lists["pl-6da54004"].cidrs == managed_prefix_list_cidrs(name)
    override = parse_topology(_network(prefix_lists=[{"id": "pl-6da54004", "name": name, "cidrs": ["52.218.0.0/17"]}]))
    assert override.prefix_lists["pl-6da54004"].cidrs == (IPv4Network("52.218.0.0/17"),)


def test_a_list_without_cidrs_that_aws_does_not_manage_is_an_error():
    with pytest.raises(TopologyError) as caught:
        parse_topology(_network(prefix_lists=[{"id": "pl-office", "name": "office"}]), file="net.yaml")
    assert str(caught.value) == ("net.yaml: prefix_lists[0].cidrs: missing required key 'cidrs' ('office' is not "
                                 "an AWS-managed list of S3 or DynamoDB whose ranges are known)")


def test_refresh_rewrites_the_data_from_a_newer_ip_ranges_json(tmp_path, capsys):
    source = tmp_path / "ip-ranges.json"
    source.write_text(json.dumps({"syncToken": "1800000000", "createDate": "2027-01-15-10-00-00", "prefixes": [
        {"ip_prefix": "52.95.0.0/20", "region": "eu-west-1", "service": "S3", "network_border_group": "eu-west-1"},
        {"ip_prefix": "52.94.5.0/24", "region": "eu-west-1", "service": "DYNAMODB", "network_border_group": "eu-west-1"},
        {"ip_prefix": "52.94.5.0/24", "region": "eu-west-1", "service": "AMAZON", "network_border_group": "eu-west-1"},
        {"ip_prefix": "3.5.0.0/19", "region": "GLOBAL", "service": "S3", "network_border_group": "GLOBAL"},
    ], "ipv6_prefixes": []}))
    output = tmp_path / "data.json"
    assert aws_prefix_lists.main(["--refresh", str(source), "--output", str(output)]) == 0
    assert "createDate 2027-01-15-10-00-00" in capsys.readouterr().out
    assert data_date(output) == "2027-01-15-10-00-00"
    assert managed_prefix_list_cidrs("com.amazonaws.eu-west-1.s3", output) == (IPv4Network("52.95.0.0/20"),)
    assert managed_prefix_list_cidrs("com.amazonaws.eu-west-1.dynamodb", output) == (IPv4Network("52.94.5.0/24"),)
    assert refresh(source, output)["services"]["s3"] == {"eu-west-1": ["52.95.0.0/20"]}
