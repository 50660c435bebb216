"""The built-in example written as a CloudFormation template (cloudformation_writer) and loaded
back gives the same verdicts as the example itself, on its scenarios and on random flows."""

import warnings

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.all import IP, TCP, UDP

import hyperplane as hp
from hyperplane.formats.cloudformation_writer import write_cloudformation
from hyperplane.formats.topology_reader import load_example_topology

#: Destinations by role, found in each network by what the role names (ids and the addresses
#: CloudFormation cannot fix differ between the two).
ROLES = {
    "db": lambda t: _eni(t, "RDS PostgreSQL orders-db"),
    "cache": lambda t: _eni(t, "ElastiCache Redis sessions"),
    "web": lambda t: _eni(t, "web server"),
    "secrets-endpoint": lambda t: min(str(e.private_ip) for e in t.network_interfaces.values() if e.kind == "vpc_endpoint"),
    "nat": lambda t: str(next(iter(t.nat_gateways.values())).private_ip),
    "dns": lambda t: str(next(iter(t.vpcs.values())).dns_resolver_ip),
    "internet": lambda t: "93.184.216.34",
    "s3": lambda t: "52.216.8.10",
    "dynamodb": lambda t: "52.94.0.5",
    "unused-private": lambda t: "10.0.10.200",
}
FUNCTIONS = ("orders", "report", "thumbnail")


def _eni(t, description):
    return next(str(e.private_ip) for e in t.network_interfaces.values() if e.description == description)


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    path = write_cloudformation(load_example_topology(), tmp_path_factory.mktemp("cfn") / "example.template.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the written template holds nothing that is not emulated
        back = hp.Network.load(path)
    return hp.Network.example(), back


def verdict(net, function, role, protocol, port):
    layer4 = TCP(dport=port, flags="S") if protocol == "tcp" else UDP(dport=port)
    r = net.function(function).send(IP(dst=ROLES[role](net.topology)) / layer4)
    reply = r.reply(TCP(flags="SA") if protocol == "tcp" else UDP()).reason.name if r.delivered else None
    return r.reason.name, reply


def test_the_template_names_every_resource_by_its_name_and_keeps_the_functions(networks):
    example, back = networks
    assert set(back.topology.functions) == set(example.topology.functions)
    assert sorted(s.name for s in back.topology.subnets.values()) == sorted(
        s.name.title().replace("-", "") for s in example.topology.subnets.values())


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("role,protocol,port", [
    ("db", "tcp", 5432), ("cache", "tcp", 6379), ("db", "tcp", 22), ("secrets-endpoint", "tcp", 443),
    ("internet", "tcp", 443), ("s3", "tcp", 443), ("dns", "udp", 53), ("web", "tcp", 443),
    ("dynamodb", "tcp", 443), ("unused-private", "tcp", 80), ("nat", "tcp", 443),
])
def test_the_example_scenarios_give_the_same_verdicts(networks, function, role, protocol, port):
    example, back = networks
    assert verdict(back, function, role, protocol, port) == verdict(example, function, role, protocol, port)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(function=st.sampled_from(FUNCTIONS), role=st.sampled_from(sorted(ROLES)),
       protocol=st.sampled_from(["tcp", "udp"]), port=st.integers(1, 65535))
def test_random_flows_give_the_same_verdicts(networks, function, role, protocol, port):
    example, back = networks
    assert verdict(back, function, role, protocol, port) == verdict(example, function, role, protocol, port)


@pytest.mark.parametrize("source", ["93.184.216.34", "198.51.100.7"])
@pytest.mark.parametrize("port", [443, 22, 80])
def test_the_web_server_answers_the_internet_the_same_through_its_elastic_ip(networks, source, port):
    example, back = networks

    def inbound(net):
        web = next(e for e in net.topology.network_interfaces.values() if e.description == "web server")
        r = net.send(IP(src=source, dst=str(web.public_ip)) / TCP(dport=port, flags="S"))
        return r.reason.name
    assert inbound(back) == inbound(example)
