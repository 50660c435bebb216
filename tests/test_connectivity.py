"""Can my function connect to X: whole exchanges, both ways, judged leg by leg (issue 11 §1)."""

from __future__ import annotations

import json

import pytest
from scapy.layers.inet import IP, UDP

import hyperplane as hp

TWO_SUBNETS = """
account_id: "123456789012"
region: us-east-1
vpcs:
  - {id: vpc-shop, cidr: 10.1.0.0/16}
subnets:
  - {id: subnet-a, vpc_id: vpc-shop, cidr: 10.1.1.0/24, availability_zone: us-east-1a, network_acl_id: acl-good}
  - {id: subnet-b, vpc_id: vpc-shop, cidr: 10.1.2.0/24, availability_zone: us-east-1b, network_acl_id: acl-bad}
  - {id: subnet-db, vpc_id: vpc-shop, cidr: 10.1.9.0/24, availability_zone: us-east-1a}
network_acls:
  - id: acl-good
    vpc_id: vpc-shop
    ingress: [{rule_number: 100, protocol: all, cidr: 0.0.0.0/0, rule_action: allow}]
    egress: [{rule_number: 100, protocol: all, cidr: 0.0.0.0/0, rule_action: allow}]
  # written by someone who thought of inbound as "connections others open": the database's
  # answers to the function's ports come IN and are denied
  - id: acl-bad
    vpc_id: vpc-shop
    ingress: [{rule_number: 100, protocol: tcp, ports: 443, cidr: 0.0.0.0/0, rule_action: allow}]
    egress: [{rule_number: 100, protocol: all, cidr: 0.0.0.0/0, rule_action: allow}]
security_groups:
  - {id: sg-fn, vpc_id: vpc-shop}
  - id: sg-db
    vpc_id: vpc-shop
    ingress: [{protocol: tcp, ports: 5432, security_group_id: sg-fn}]
network_interfaces:
  - {id: eni-db, subnet_id: subnet-db, private_ip: 10.1.9.10, security_group_ids: [sg-db], kind: rds}
functions:
  - name: checkout
    vpc_config: {subnet_ids: [subnet-a, subnet-b], security_group_ids: [sg-fn]}
"""


@pytest.fixture
def example() -> hp.Network:
    return hp.Network.example()


@pytest.fixture
def shop(tmp_path) -> hp.Network:
    path = tmp_path / "shop.yaml"
    path.write_text(TWO_SUBNETS)
    return hp.Network.load(path)


def test_the_demo_database_fails_because_acl_data_drops_the_syn_ack(example):
    # AWS: "Network ACLs are stateless, which means that responses to allowed inbound traffic
    # are subject to the rules for outbound traffic (and vice versa)."
    result = example.function("orders").connect("db:5432")
    assert not result and result.failed_leg == "reply"
    assert [leg.name for leg in result.legs] == ["SYN", "SYN-ACK"]  # the exchange stops at the failed leg
    assert result.resource == "acl-data" and result.rule == "rule *: implicit deny"
    assert result.explanation == "fails: the reply (SYN-ACK) is denied out by acl-data (rule *: implicit deny)"
    assert result.advice == ("NACLs are stateless: acl-data needs an outbound rule allowing tcp 1024-65535 "
                             "to 10.0.10.0/24")
    text = str(result)
    assert "-- SYN (request)" in text and "-- SYN-ACK (reply)" in text  # both directions, with their hops
    assert text.splitlines()[-2] == result.explanation


def test_the_cache_done_right_connects_with_the_whole_handshake_and_data_both_ways(example):
    result = example.connect("orders", "eni-cache", 6379)
    assert result and result.explanation == "connected" and result.failed_leg is None
    assert [(leg.name, leg.direction) for leg in result.legs] == [
        ("SYN", "request"), ("SYN-ACK", "reply"), ("ACK", "request"), ("data", "request"), ("data reply", "reply")]
    assert all(leg.result.delivered for leg in result.legs)
    # sg-cache has no outbound rule at all: the replies leave as a tracked connection
    assert "tracked connection" in result.legs[1].result.hops[0].detail


def test_only_as_reachable_as_its_worst_subnet(shop):
    # AWS may put an invocation in any of the function's subnets
    assert shop.connect("checkout", "db:5432", subnet="subnet-a")
    from_b = shop.connect("checkout", "db:5432", subnet="subnet-b")
    assert not from_b and from_b.resource == "acl-bad" and from_b.failed_leg == "reply"
    assert from_b.advice == "NACLs are stateless: acl-bad needs an inbound rule allowing tcp 1024-65535 from 10.1.9.0/24"
    every = shop.function("checkout").connect("db:5432", subnets="all")
    assert not every
    assert [(s.subnet, s.connected) for s in every.subnets] == [("subnet-a", True), ("subnet-b", False)]
    assert every.explanation.startswith("fails from subnet-b: the reply (SYN-ACK) is denied in by acl-bad")


def test_the_subnet_given_is_the_one_the_environment_is_bound_to(example):
    for subnet, bound in (("subnet-private-a", "subnet-private-a"), ("subnet-private-b", "subnet-private-b"),
                          ("private-b", "subnet-private-b")):  # an id or a Name tag
        result = example.connect("orders", "internet:443", subnet=subnet)
        assert result and result.subnet == bound
        assert result.legs[0].result.hops[0].detail.endswith(f"bound to {bound}")
    with pytest.raises(hp.HyperplaneError, match="not a subnet of orders"):
        example.connect("orders", "internet:443", subnet="subnet-public-a")


def test_nothing_in_the_vpc_opens_a_connection_to_a_function(example):
    result = example.connect("eni-web", "orders", 8080)
    assert not result and result.failed_leg == "request"


def test_a_function_without_vpc_config_reaches_the_internet_and_not_the_vpc(example):
    assert example.connect("thumbnail", "internet:443")
    assert not example.connect("thumbnail", "db:5432")


def test_a_function_in_a_public_subnet_has_no_internet(example):
    result = example.connect("report", "internet:443")
    assert not result and result.resource == "igw-main" and result.failed_leg == "request"


def test_dns_queries_are_answered_and_the_answer_reaches_the_function(example):
    assert example.connect("orders", "dns:53/udp")
    query = example.function("orders").send(IP(dst="10.0.0.2") / UDP(dport=53))
    answer = query.reply(UDP())
    assert answer.reason == hp.Reason.DELIVERED_TO_FUNCTION and answer.packet.dst == query.source[2]


def test_ping_from_the_internet_reaches_the_public_web_server_at_its_public_address(example):
    result = example.connect("internet", "eni-web", protocol="icmp")
    assert result and result.address == "203.0.113.20"
    assert [leg.name for leg in result.legs] == ["echo request", "echo reply"]


def test_ssh_is_open_to_the_office_only(example):
    assert not example.connect("internet", "eni-web:22")
    assert example.connect("internet", "eni-web:22", source_ip="198.51.100.7")


def test_mistakes_are_one_clear_error(example):
    with pytest.raises(ValueError, match="unknown destination 'dbb'; did you mean 'db'"):
        example.connect("orders", "dbb:5432")
    with pytest.raises(ValueError, match="unknown source 'ordres'; did you mean 'orders'"):
        example.connect("ordres", "db:5432")
    with pytest.raises(ValueError, match="'10.0.20.300' is not an IPv4 address"):
        example.connect("orders", "10.0.20.300:5432")
    with pytest.raises(ValueError, match="port 99999 is not in 0-65535"):
        example.connect("orders", "db:99999")
    with pytest.raises(ValueError, match="protocol 'tpc' is not tcp, udp or icmp; did you mean 'tcp'"):
        example.connect("orders", "db:5432/tpc")
    with pytest.raises(ValueError, match="give a port"):
        example.connect("orders", "db")


def test_the_answer_as_json_names_the_failed_leg_and_the_deciding_rule(example):
    data = json.loads(json.dumps(example.connect("orders", "db:5432").to_dict()))
    assert {k: data[k] for k in ("source", "destination", "address", "protocol", "port", "connected",
                                 "failed_leg", "resource", "rule")} == {
        "source": "orders", "destination": "db", "address": "10.0.20.10", "protocol": "tcp", "port": 5432,
        "connected": False, "failed_leg": "reply", "resource": "acl-data", "rule": "rule *: implicit deny"}
    syn_ack = data["legs"][1]["result"]
    assert syn_ack["reason"] == "NACL_OUT_DENY" and syn_ack["hops"][-1]["resource"] == "acl-data"


# -- hyperplane trace -----------------------------------------------------------------------

def run(*args: str):
    from click.testing import CliRunner

    from hyperplane.cli import main

    return CliRunner().invoke(main, ["trace", *args])


def test_trace_judges_the_connection_and_exits_1_when_the_reply_dies():
    done = run("--from", "orders", "--to", "10.0.20.10:5432/tcp")
    assert done.exit_code == 1
    assert done.stdout.splitlines()[-2] == "fails: the reply (SYN-ACK) is denied out by acl-data (rule *: implicit deny)"
    assert run("--from", "orders", "--to", "cache:6379").exit_code == 0
    # the old single packet: the SYN alone is delivered
    assert run("--from", "orders", "--to", "10.0.20.10:5432/tcp", "--packet").exit_code == 0


def test_trace_from_every_subnet_as_json(tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text(TWO_SUBNETS)
    done = run("--topology", str(path), "--from", "checkout", "--to", "db:5432", "--all-subnets", "--format", "json")
    assert done.exit_code == 1
    data = json.loads(done.stdout)
    assert [(s["subnet"], s["connected"]) for s in data["subnets"]] == [("subnet-a", True), ("subnet-b", False)]
    assert data["resource"] == "acl-bad" and data["failed_leg"] == "reply"


def test_a_topology_file_starts_active_and_cold_shows_the_function_being_created(tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text(TWO_SUBNETS)
    assert run("--topology", str(path), "--from", "checkout", "--to", "db:5432", "--subnet", "subnet-a").exit_code == 0
    cold = run("--topology", str(path), "--from", "checkout", "--to", "db:5432", "--cold")
    assert cold.exit_code == 1 and "FUNCTION_PENDING" in cold.stdout


@pytest.mark.parametrize("args, message", [
    (["--to", "10.0.20.300:5432"], "'10.0.20.300' is not an IPv4 address"),
    (["--to", "db:99999"], "port 99999 is not in 0-65535"),
    (["--to", "db:5432", "--packet", "--sport", "70000"], "--sport 70000 is not in 0-65535"),
    (["--to", "db:5432/tpc"], "did you mean 'tcp'"),
    (["--to", "db:5432", "--src", "1.2.3.4"], "--src is for --from internet"),
    (["--to", "dbb:5432"], "did you mean 'db'"),
])
def test_trace_mistakes_are_one_line_and_exit_2(args, message):
    done = run("--from", "orders", *args)
    assert done.exit_code == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_hops_name_their_resources_by_aws_id(example):
    # a function's ICMP is not translated by its Hyperplane ENI: the hop names that ENI
    result = example.connect("orders", "eni-web", protocol="icmp", subnet="subnet-private-a")
    eni = next(e.id for e in example.function("orders").hyperplane_enis if e.subnet_id == "subnet-private-a")
    assert not result and result.resource == eni
    assert not any(h.resource.startswith("hyperplane-pool") for leg in result.legs for h in leg.result.hops)


def test_traces_of_a_template_name_each_resource_by_its_logical_id_too(tmp_path):
    from hyperplane.formats.cloudformation_writer import write_cloudformation
    from hyperplane.formats.topology_reader import load_example_topology

    template = tmp_path / "template.json"
    write_cloudformation(load_example_topology(), template)
    net = hp.Network.load(template)
    cache = next(e.id for e in net.topology.network_interfaces.values() if str(e.private_ip) == "10.0.21.10")
    syn = net.connect("orders", f"{cache}:6379").legs[0].result
    named = [h for h in syn.hops if h.name]
    assert named and all(h.name.lower() not in h.resource.lower() for h in named)
    assert all(f"{h.name} ({h.resource})" in str(syn) for h in named)
    # the example's own ids say their names already: nothing is added
    assert not any(h.name for h in hp.Network.example().connect("orders", "cache:6379").legs[0].result.hops)
