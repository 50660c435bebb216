"""The built-in example written as a Terraform state (`terraform show -json`, format 1.0) and
read back is the same network: the same verdicts, hop by hop, on the demo's scenarios and on
random flows, from functions, ENIs and the internet."""

from __future__ import annotations

import dataclasses

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import ICMP, IP, TCP, UDP

import hyperplane as hp
from hyperplane.formats.terraform_reader import read_terraform
from hyperplane.formats.terraform_writer import terraform_state_document, write_terraform_state
from hyperplane.formats.topology_reader import load_example_topology


@pytest.fixture(scope="module")
def state_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tf") / "terraform.tfstate.json"
    write_terraform_state(load_example_topology(), path)
    return str(path)


def test_the_written_state_is_terraform_show_json_of_a_state(state_file):
    document = json.loads(open(state_file).read())
    assert document["format_version"] == "1.0" and "values" in document and "planned_values" not in document
    types = {r["type"] for r in document["values"]["root_module"]["resources"]}
    assert {"aws_vpc", "aws_subnet", "aws_route_table", "aws_default_route_table", "aws_security_group",
            "aws_default_security_group", "aws_network_acl", "aws_default_network_acl", "aws_nat_gateway", "aws_eip",
            "aws_vpc_endpoint", "aws_instance", "aws_network_interface", "aws_lambda_function"} <= types
    assert hp.Network.load(state_file).topology.nat_gateways  # Network.load tells it apart by content


def test_the_state_reads_back_to_the_same_resources(state_file):
    example, back = load_example_topology(), read_terraform(state_file)
    for kind in ("vpcs", "subnets", "route_tables", "security_groups", "network_acls", "nat_gateways",
                 "prefix_lists", "vpc_endpoints", "network_interfaces", "vpc_peering_connections"):
        assert list(getattr(example, kind)) == list(getattr(back, kind)), kind
    # what carries the verdicts is equal; names become the Terraform addresses
    assert [r.routes for r in example.route_tables.values()] == [r.routes for r in back.route_tables.values()]
    assert [(g.ingress, g.egress) for g in example.security_groups.values()] == [
        (g.ingress, g.egress) for g in back.security_groups.values()]
    assert [a.entries for a in example.network_acls.values()] == [a.entries for a in back.network_acls.values()]
    assert [(e.private_ip, e.public_ip, e.security_group_ids) for e in example.network_interfaces.values()] == [
        (e.private_ip, e.public_ip, e.security_group_ids) for e in back.network_interfaces.values()]
    assert back.route_tables["rtb-public"].name == "aws_route_table.rtb_public"


SCENARIOS = [  # the demo's (hyperplane/demo.py), with the replies it sends
    ("orders", IP(dst="10.0.21.10") / TCP(dport=6379, flags="S"), TCP(flags="SA")),
    ("orders", IP(dst="10.0.20.10") / TCP(dport=5432, flags="S"), TCP(flags="SA")),
    ("orders", IP(dst="93.184.216.34") / TCP(dport=443, flags="S"), TCP(flags="SA")),
    ("orders", IP(dst="52.216.8.1") / TCP(dport=443, flags="S"), None),
    ("orders", IP(dst="10.0.10.50") / TCP(dport=443, flags="S"), TCP(flags="SA")),
    ("report", IP(dst="93.184.216.34") / TCP(dport=443, flags="S"), None),
    ("thumbnail", IP(dst="10.0.20.10") / TCP(dport=5432, flags="S"), None),
    ("thumbnail", IP(dst="93.184.216.34") / UDP(dport=53), None),
    ("internet", IP(src="198.51.100.7", dst="203.0.113.20") / ICMP(), ICMP(type=0)),
    ("eni-web", IP(src="10.0.0.20", dst="10.0.21.10") / TCP(sport=40000, dport=6379, flags="S"), None),
]


def trace(result: hp.Result) -> str:
    """The trace without resource names: the state names its resources by Terraform address
    (``aws_route_table.rtb_private (rtb-private)``), the topology file by id alone."""
    return str(dataclasses.replace(result, hops=[dataclasses.replace(h, name="") for h in result.hops]))


@pytest.mark.parametrize("source, packet, answer", SCENARIOS, ids=[f"{s}->{p[IP].dst}" for s, p, _ in SCENARIOS])
def test_the_demo_scenarios_give_the_same_verdicts_hop_by_hop(state_file, source, packet, answer):
    original, loaded = hp.Network.example(), hp.Network.load(state_file)
    first, second = original.send(packet, source=source), loaded.send(packet, source=source)
    assert trace(first) == trace(second)
    if answer is not None and first.delivered:
        assert trace(first.reply(answer)) == trace(second.reply(answer))


ADDRESSES = ["10.0.20.10", "10.0.21.10", "10.0.0.20", "10.0.10.50", "10.0.11.50", "10.0.0.10", "10.0.0.2",
             "10.0.30.7", "93.184.216.34", "52.216.8.1", "3.218.180.9", "203.0.113.20", "203.0.113.10", "8.8.8.8"]
SOURCES = ["orders", "report", "thumbnail", "eni-web", "eni-db", "eni-cache", "internet"]
SOURCE_IPS = {"eni-web": "10.0.0.20", "eni-db": "10.0.20.10", "eni-cache": "10.0.21.10", "internet": "198.51.100.7"}
flows = st.tuples(st.sampled_from(SOURCES), st.sampled_from(ADDRESSES), st.sampled_from(["tcp", "udp", "icmp"]),
                  st.sampled_from([22, 53, 443, 5432, 6379, 40000]), st.booleans())


@pytest.fixture(scope="module")
def networks(state_file):
    return hp.Network.example(), hp.Network.load(state_file)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(flows, min_size=1, max_size=6))
def test_random_flows_give_the_same_verdicts_and_replies(networks, batch):
    original, loaded = networks  # both see the same packets in the same order: same state too
    for source, dst, protocol, port, reply in batch:
        l4 = {"tcp": TCP(sport=41000, dport=port, flags="S"), "udp": UDP(sport=41000, dport=port),
              "icmp": ICMP()}[protocol]
        packet = (IP(src=SOURCE_IPS[source], dst=dst) if source in SOURCE_IPS else IP(dst=dst)) / l4
        first, second = original.send(packet, source=source), loaded.send(packet, source=source)
        assert trace(first) == trace(second)
        if reply and first.delivered and first.packet is not None:
            answer = {"tcp": TCP(flags="SA"), "udp": UDP(), "icmp": ICMP(type=0)}[protocol]
            assert trace(first.reply(answer)) == trace(second.reply(answer))
