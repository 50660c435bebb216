"""What can a source reach, on every port, and who reaches a destination (issue 11 §2)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import random
import warnings
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

import hyperplane as hp
from hyperplane.cli import main
from hyperplane.connectivity.exchanges import scratch_network
from hyperplane.connectivity.reachability import port_classes
from hyperplane.model.resources import NetworkAclEntry, SecurityGroupRule

from aws_snapshots import snapshot as snapshot_folder



@pytest.fixture(scope="module")
def example() -> hp.Network:
    return hp.Network.example()


@pytest.fixture(scope="module")
def orders(example) -> hp.Reachability:
    return example.reachability("orders")


def tiles(rows, low=0, high=65535) -> bool:
    """Whether the port ranges of ``rows`` cover low..high exactly once."""
    spans = sorted(r.ports for r in rows)
    return spans[0][0] == low and spans[-1][1] == high and all(a[1] + 1 == b[0] for a, b in zip(spans, spans[1:]))


def test_orders_reaches_the_cache_on_6379_and_the_database_fails_on_the_reply(orders):
    # AWS: "Network ACLs are stateless, which means that responses to allowed inbound traffic
    # are subject to the rules for outbound traffic (and vice versa)." acl-data lets the SYN in
    # on 5432 and has no outbound rule for Lambda's ports 1024-65535: the SYN-ACK dies.
    for subnet in ("subnet-private-a", "subnet-private-b"):
        [cache] = orders.find("eni-cache", 6379, subnet=subnet)
        assert cache.connected and cache.ports == (6379, 6379) and cache.address == "10.0.21.10"
        db = orders.find("eni-db", 5432, subnet=subnet, reply_port=40000)
        assert [(r.connected, r.failed_leg, r.leg, r.resource, r.rule) for r in db] == [
            (False, "reply", "SYN-ACK", "acl-data", "rule *: implicit deny")]
    assert not orders.connected("eni-db", 5432) and orders.connected("eni-cache", 6379)


def test_a_reply_to_the_one_port_acl_data_lets_out_connects_and_the_matrix_says_so(orders):
    # acl-data's outbound rule 100 allows tcp 5432 to 10.0.0.0/16: when V2N happens to give the
    # connection port 5432 on the Hyperplane ENI, the SYN-ACK leaves. The row says for which.
    rows = orders.find("eni-db", 5432, subnet="subnet-private-a")
    assert {(r.connected, r.reply_ports) for r in rows} == {
        (False, ((1024, 5431), (5433, 65535))), (True, ((5432, 5432),))}


def test_every_port_of_every_destination_has_exactly_one_verdict_per_subnet(orders, example):
    destinations = {r.destination for r in orders}
    assert destinations == {*example.topology.network_interfaces, "dns", "vpce-s3", "internet"}
    for subnet in ("subnet-private-a", "subnet-private-b"):
        for destination in destinations:
            for proto in ("tcp", "udp"):
                rows = [r for r in orders if (r.subnet, r.destination, r.protocol) == (subnet, destination, proto)
                        and r.reply_ports in (None, ((1024, 5431), (5433, 65535)), ((1024, 6378), (6380, 65535)))
                        or (r.subnet, r.destination, r.protocol, r.reply_ports) == (subnet, destination, proto, None)]
                assert tiles([r for r in rows if r.reply_ports is None or not r.connected]), (destination, proto)
            [echo] = [r for r in orders if (r.subnet, r.destination, r.protocol) == (subnet, destination, "icmp")]
            # a Hyperplane ENI carries only TCP and UDP
            assert not echo.connected and echo.reason == "V2N_UNSUPPORTED_PROTOCOL"


def test_neighbouring_ports_with_one_outcome_are_one_row(orders):
    db = [r for r in orders if r.destination == "eni-db" and r.protocol == "tcp" and r.subnet == "subnet-private-a"]
    assert [r.ports for r in db if r.failed_leg == "request"] == [(0, 5431), (5433, 65535)]
    [udp] = [r for r in orders if r.destination == "eni-db" and r.protocol == "udp" and r.subnet == "subnet-private-a"]
    assert udp.ports == (0, 65535) and udp.failed_leg == "request" and udp.resource == "acl-data"


def test_the_vpc_resolver_answers_on_53_only_and_endpoints_name_their_service(orders):
    assert orders.connected("dns", 53, "udp") and orders.connected("dns", 53, "tcp")
    assert not orders.connected("dns", 54, "udp") and not orders.connected("dns", 52, "tcp")
    [secrets] = orders.find("eni-vpce-secrets-a", 443, subnet="subnet-private-a")
    assert secrets.connected and secrets.service == "com.amazonaws.us-east-1.secretsmanager"
    [s3] = orders.find("vpce-s3", 443, subnet="subnet-private-a")
    assert s3.connected and s3.service == "com.amazonaws.us-east-1.s3"
    # "Gateway endpoints support only TCP" (and the emulator's ICMP echo): UDP stops there
    [s3_udp] = orders.find("vpce-s3", 53, "udp", subnet="subnet-private-a")
    assert not s3_udp.connected and s3_udp.reason == "GATEWAY_ENDPOINT_PROTOCOL"


def test_a_function_in_a_public_subnet_has_no_internet(example):
    # AWS: "Connecting a function to a public subnet doesn't give it internet access or a
    # public IP address."
    report = example.reachability("report", ["internet"])
    assert not report.connected("internet", 443) and {r.subnet for r in report} == {"subnet-public-a"}


def test_a_function_without_vpc_config_reaches_the_internet_and_nothing_private(example):
    thumbnail = example.reachability("thumbnail")
    assert thumbnail.connected("internet", 443) and thumbnail.connected("internet", 53, "udp")
    [db] = thumbnail.find("eni-db", 5432)
    assert not db.connected and db.reason == "NO_VPC_ACCESS" and db.ports == (0, 65535)
    # the web server's public address, from Lambda's own address on the internet
    [web] = thumbnail.find("eni-web", 443)
    assert web.connected and web.address == "203.0.113.20"
    assert all(r.subnet is None for r in thumbnail)


def test_from_the_internet_the_web_server_answers_https_and_ping_but_not_ssh(example):
    internet = example.reachability("internet")
    assert internet.connected("eni-web", 443) and internet.connected("eni-web", None, "icmp")
    [ssh] = internet.find("eni-web", 22)  # SSH only from the office, 198.51.100.0/24
    assert not ssh.connected and ssh.resource == "sg-web"
    assert "internet" not in {r.destination for r in internet}


def test_who_reaches_the_cache_on_6379(example):
    who = example.reachability(to="eni-cache")
    assert {(r.source, r.subnet) for r in who.find("eni-cache", 6379) if r.connected} == {
        ("orders", "subnet-private-a"), ("orders", "subnet-private-b"), ("report", "subnet-public-a")}
    [web] = who.find("eni-cache", 6379, source="eni-web")  # sg-cache admits sg-app only
    assert not web.connected and web.resource == "sg-cache"
    assert "eni-cache" not in {r.source for r in who}
    assert {r.destination for r in who} == {"eni-cache"}


def test_the_question_leaves_the_network_as_it_was(example):
    net = hp.Network.example()
    net.function("orders").connect("cache:6379")  # a live connection, before the question
    before = [(e.id, e.connections) for e in net.hyperplane_enis], net.now, net.lambda_service.generation
    net.reachability("orders")
    net.reachability(to="eni-db")
    assert ([(e.id, e.connections) for e in net.hyperplane_enis], net.now, net.lambda_service.generation) == before


def test_the_question_is_about_the_configuration_not_the_lifecycle():
    cold = hp.Network.example(ready=False)  # functions Pending, their ENIs being created
    assert cold.function("orders").state == "Pending"
    assert cold.reachability("orders", ["cache"]).connected("eni-cache", 6379)
    assert cold.function("orders").state == "Pending"


def test_rows_as_json_and_csv_carry_the_documented_fields(orders):
    data = json.loads(json.dumps(orders.to_dict()))
    [row] = [r for r in data if r["destination"] == "eni-cache" and r["ports"] == [6379, 6379]
             and r["subnet"] == "subnet-private-a"]
    assert row == {"source": "orders", "subnet": "subnet-private-a", "destination": "eni-cache",
                   "address": "10.0.21.10", "service": None, "protocol": "tcp", "ports": [6379, 6379],
                   "reply_ports": None, "connected": True, "failed_leg": None, "leg": None,
                   "resource": None, "rule": None, "reason": None}
    table = list(csv.DictReader(io.StringIO(orders.to_csv())))
    assert len(table) == len(orders) and table[0].keys() == row.keys()
    assert {r["ports"] for r in table if r["destination"] == "eni-db"} >= {"0-5431", "5432-5432", "5433-65535"}


def test_the_table_reads_row_by_row(example):
    text = str(example.reachability("orders", ["db"]))
    assert text.splitlines()[0].split() == ["source", "destination", "address", "proto", "ports", "verdict",
                                            "decided", "by"]
    assert ("orders (subnet-private-a)  eni-db       10.0.20.10  tcp    5432        "
            "fails: reply (SYN-ACK) to reply port 1024-5431,5433-65535  acl-data (rule *: implicit deny)") in text


def test_bad_questions_are_one_clear_error(example):
    with pytest.raises(ValueError, match="did you mean 'orders'"):
        example.reachability("ordrs")
    with pytest.raises(ValueError, match="did you mean"):
        example.reachability("orders", ["eni-dbb"])
    with pytest.raises(ValueError, match="not both"):
        example.reachability("orders", to="eni-db")


def test_port_classes_cut_where_a_rule_starts_or_stops(example):
    tcp = port_classes(example.topology, "tcp")
    for port in (22, 53, 443, 5432, 6379, 1024):
        assert any(c[0] == port for c in tcp), port
    assert tcp[0][0] == 0 and tcp[-1][1] == 65535 and all(a[1] + 1 == b[0] for a, b in zip(tcp, tcp[1:]))
    assert port_classes(example.topology, "udp") == [(0, 52), (53, 53), (54, 65535)]


# -- the command --------------------------------------------------------------------------


def test_reach_prints_json_rows_a_script_can_read():
    result = CliRunner().invoke(main, ["reach", "orders", "--to", "db", "--to", "cache", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert {r["destination"] for r in rows} == {"eni-db", "eni-cache"}
    assert any(r["destination"] == "eni-cache" and r["ports"] == [6379, 6379] and r["connected"] for r in rows)


def test_reach_reverse_lists_who_connects_and_csv_has_a_header():
    result = CliRunner().invoke(main, ["reach", "eni-cache", "--reverse", "--connected", "--format", "csv"])
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader(io.StringIO(result.output)))
    assert {(r["source"], r["ports"]) for r in table} == {("orders", "6379-6379"), ("report", "6379-6379")}


def test_reach_with_a_bad_name_is_one_line_and_exit_2():
    result = CliRunner().invoke(main, ["reach", "ordrs"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["hyperplane: unknown source 'ordrs'; did you mean 'orders'?"]


# -- the shared AWS snapshots -------------------------------------------------------------


def snapshot(name: str) -> hp.Network:
    folder = snapshot_folder(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hp.Network.load(folder, repair=True)


def test_snapshot_jump_host_is_reached_from_the_internet_on_ssh_and_ping_only():
    net = snapshot("test-nat-gateway")
    internet = net.reachability("internet", ["eni-068fb5a0a9a57f23c"])
    assert [(r.protocol, r.ports) for r in internet if r.connected] == [("tcp", (22, 22)), ("icmp", None)]


def test_snapshot_private_instance_reaches_the_internet_through_its_nat_gateway_on_every_port():
    net = snapshot("test-nat-gateway")
    out = net.reachability("i-0a128d26e59be60f3", ["internet"])
    assert [(r.protocol, r.ports, r.connected) for r in out] == [
        ("tcp", (0, 65535), True), ("udp", (0, 65535), True), ("icmp", None, True)]


def test_snapshot_interface_endpoint_is_reached_on_what_its_group_admits_and_names_its_service():
    net = snapshot("test-vpc-endpoint-interface")
    rows = net.reachability("i-0a0fbd0cfa774970f", ["eni-0084b734451ba23ca"])
    # testing_sg: tcp 22 and 443, udp 33434-33534 (traceroute), ICMP echo, from 0.0.0.0/0
    assert [(r.protocol, r.ports) for r in rows if r.connected] == [
        ("tcp", (22, 22)), ("tcp", (443, 443)), ("udp", (33434, 33534)), ("icmp", None)]
    [http] = rows.find("10.1.101.97", 80)
    assert not http.connected and http.reason == "SG_INGRESS_DENY"
    assert {r.service for r in rows} == {"com.amazonaws.us-east-1.cloudtrail"}


# -- exactness ----------------------------------------------------------------------------


def connect_verdict(net: hp.Network, source: str, row, port: int | None, reply_port: int):
    """``connect`` on a fresh copy of ``net``, the source's port being ``reply_port`` (for a
    function, V2N picks its own: read back from the walk): its verdict and the reply port."""
    fresh = scratch_network(net)
    fresh.ephemeral_port = lambda: reply_port  # type: ignore[method-assign]
    result = fresh.connect(source, row.address, port, row.protocol, subnet=row.subnet)
    batch = result.legs[0].result.batch
    used = next((f["to_port"] for stage, f in batch.facts.of(0) if stage == "v2n_out"), reply_port) \
        if batch is not None else reply_port
    return (result.connected, result.failed_leg, result.resource, result.rule), used


ACLS = ("acl-data", "acl-cache", "acl-app-default")
GROUPS = ("sg-db", "sg-cache", "sg-web", "sg-endpoints", "sg-app")
CIDRS = ("10.0.0.0/16", "10.0.10.0/23", "10.0.20.0/24", "0.0.0.0/0")


@st.composite
def rule_edits(draw):
    """A few rules added to the example's NACLs and security groups."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        proto = draw(st.sampled_from([6, 17]))
        low = draw(st.integers(0, 65535))
        high = draw(st.integers(low, min(65535, low + draw(st.sampled_from([0, 10, 3000, 65535])))))
        cidr = IPv4Network(draw(st.sampled_from(CIDRS)))
        if draw(st.booleans()):
            edits.append(("acl", draw(st.sampled_from(ACLS)), NetworkAclEntry(
                draw(st.integers(1, 32766)), draw(st.booleans()), proto, draw(st.sampled_from(["allow", "deny"])),
                cidr, (low, high))))
        else:
            egress = draw(st.booleans())
            edits.append(("sg", draw(st.sampled_from(GROUPS)), SecurityGroupRule(egress, proto, (low, high), cidr=cidr)))
    return edits


def edited(edits) -> hp.Network:
    topology = hp.Network.example().topology
    for kind, owner, rule in edits:
        if kind == "acl":
            acl = topology.network_acls[owner]
            taken = {e.rule_number for e in acl.entries if e.egress == rule.egress}
            if rule.rule_number in taken:
                continue
            topology = topology.replace(dataclasses.replace(acl, entries=acl.entries + (rule,)))
        else:
            group = topology.security_groups[owner]
            field = "egress" if rule.egress else "ingress"
            topology = topology.replace(dataclasses.replace(group, **{field: getattr(group, field) + (rule,)}))
    return hp.Network(topology, ready=True)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=rule_edits(), source=st.sampled_from(["orders", "eni-web", "eni-db", "internet"]),
       seed=st.integers(0, 2**32 - 1))
def test_the_matrix_verdict_is_connects_on_every_port(edits, source, seed):
    """For random rule edits of the example and random (source, destination, port, reply
    port), the row of the matrix says what ``connect`` finds: the port classes are exact."""
    net = edited(edits)
    matrix = net.reachability(source)
    rng = random.Random(seed)
    topology = net.topology
    # where a class that is not exact would show: the ports where a rule on the path (the
    # source's and the destination's groups and NACLs, and the edits) starts or stops matching
    fn = topology.functions.get(source)
    own = [topology.network_interfaces[source]] if source in topology.network_interfaces else []
    groups = set(fn.vpc_config.security_group_ids) if fn and fn.vpc_config else {g for e in own for g in e.security_group_ids}
    subnets = set(fn.vpc_config.subnet_ids) if fn and fn.vpc_config else {e.subnet_id for e in own}

    def edges(row) -> set[int]:
        eni = topology.network_interfaces.get(row.destination)
        gs = groups | set(eni.security_group_ids if eni else ())
        acls = {topology.subnets[s].network_acl_id for s in subnets | ({eni.subnet_id} if eni else set())}
        rules = [r for g in gs for r in (*topology.security_groups[g].ingress, *topology.security_groups[g].egress)]
        rules += [e for a in acls for e in topology.network_acls[a].entries] + [rule for _, _, rule in edits]
        return {p + d for r in rules for p in r.port_range for d in (-1, 0, 1)}

    def pick(row, low: int, high: int) -> int:
        near = sorted(p for p in edges(row) if low <= p <= high)
        return rng.choice(near) if near and rng.random() < 0.8 else rng.randint(low, high)

    # the internet through a NAT gateway: the gateway's own port pick is not enumerated
    rows = [r for r in matrix if not (r.destination == "internet" and "acl-app-default" in str(edits))]
    for row in rng.sample(rows, min(8, len(rows))):
        port = None if row.ports is None else pick(row, *row.ports)
        spans = row.reply_ports or ((1024, 65535),)
        got, used = connect_verdict(net, source, row, port, pick(row, *rng.choice(spans)))
        [want] = matrix.find(row.destination, port, row.protocol, subnet=row.subnet, reply_port=used)
        assert got == (want.connected, want.failed_leg, want.resource, want.rule), (row, port, used)
