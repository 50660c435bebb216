"""What can be found without a question: `hyperplane lint`, every finding backed by a walk
(issue 11 §3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import hyperplane as hp
from hyperplane.commands.lint import lint as lint_command
from hyperplane.connectivity.lint import lint
from hyperplane.reasons import Reason

from aws_snapshots import snapshot as snapshot_folder

EXAMPLE = (Path(hp.__file__).parent / "examples" / "example.yaml").read_text()

# the example with its two mistakes fixed: acl-data lets the database's replies out (and the
# replies to its own calls in), and report runs in the private subnets, behind nat-a
FIXED = (EXAMPLE
         .replace("      - {rule_number: 110, protocol: tcp, ports: 443, cidr: 0.0.0.0/0, rule_action: allow}\n",
                  "      - {rule_number: 110, protocol: tcp, ports: 443, cidr: 0.0.0.0/0, rule_action: allow}\n"
                  "      - {rule_number: 120, protocol: tcp, ports: 1024-65535, cidr: 10.0.0.0/16, rule_action: allow}\n")
         .replace("      - {rule_number: 100, protocol: tcp, ports: 5432, cidr: 10.0.0.0/16, rule_action: allow}\n    egress:",
                  "      - {rule_number: 100, protocol: tcp, ports: 5432, cidr: 10.0.0.0/16, rule_action: allow}\n"
                  "      - {rule_number: 110, protocol: tcp, ports: 1024-65535, cidr: 0.0.0.0/0, rule_action: allow}\n"
                  "    egress:")
         .replace("      subnet_ids: [subnet-public-a]\n", "      subnet_ids: [subnet-private-a, subnet-private-b]\n"))

# a NAT gateway put in a private subnet (its subnet has only the local route), and a route
# left behind when the peering it used was deleted
NAT_IN_A_PRIVATE_SUBNET = """
account_id: "123456789012"
region: us-east-1
vpcs:
  - {id: vpc-a, cidr: 10.1.0.0/16}
subnets:
  - {id: subnet-app, vpc_id: vpc-a, cidr: 10.1.1.0/24, availability_zone: us-east-1a, route_table_id: rtb-app}
  - {id: subnet-nat, vpc_id: vpc-a, cidr: 10.1.2.0/24, availability_zone: us-east-1a}
route_tables:
  - id: rtb-app
    vpc_id: vpc-a
    routes:
      - {destination: 0.0.0.0/0, target: nat-1}
      - {destination: 172.16.0.0/16, target: pcx-0deleted, state: blackhole}
internet_gateways:
  - {id: igw-a, vpc_id: vpc-a}
nat_gateways:
  - id: nat-1
    subnet_id: subnet-nat
    connectivity_type: public
    private_ip: 10.1.2.10
    elastic_ips: [{allocation_id: eipalloc-1, public_ip: 203.0.113.50}]
security_groups:
  - {id: sg-fn, vpc_id: vpc-a, name: fn}
functions:
  - name: worker
    vpc_config: {subnet_ids: [subnet-app], security_group_ids: [sg-fn]}
"""


@pytest.fixture
def example() -> hp.Network:
    return hp.Network.example()


def load(tmp_path, text: str) -> hp.Network:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    return hp.Network.load(path)


def by_kind(findings, kind: str) -> dict[str, object]:
    return {f.subject: f for f in findings if f.kind == kind}


def test_the_example_has_report_in_a_public_subnet_shown_by_its_walk_to_the_internet(example):
    # AWS: "Connecting a function to a public subnet doesn't give it internet access or a
    # public IP address." (Lambda Developer Guide, internet access for VPC functions)
    found = by_kind(lint(example), "function-in-public-subnet")
    assert list(found) == ["report (subnet-public-a)"]
    finding = found["report (subnet-public-a)"]
    assert finding.resource == "report"
    evidence = finding.evidence
    assert evidence.failed.result.reason == Reason.NO_PUBLIC_IP
    assert (evidence.resource, evidence.subnet) == ("igw-main", "subnet-public-a")
    assert "igw-out      igw-main               drop      10.0.0.4 has no public IP" in str(finding)


def test_the_example_has_acl_data_denying_the_reply_of_orders_to_the_database(example):
    # AWS: "Network ACLs are stateless, which means that responses to allowed inbound traffic
    # are subject to the rules for outbound traffic (and vice versa)."
    found = by_kind(lint(example), "nacl-denies-reply")
    finding = found["orders -> eni-db:5432/tcp"]
    assert finding.resource == "acl-data"
    assert finding.message.endswith(
        "NACLs are stateless: acl-data needs an outbound rule allowing tcp 1024-65535 to 10.0.10.0/24")
    evidence = finding.evidence
    assert [leg.name for leg in evidence.legs] == ["SYN", "SYN-ACK"]
    assert evidence.legs[0].result.delivered and evidence.failed_leg == "reply"
    assert "nacl-out     acl-data               deny" in str(finding)


def test_a_clean_topology_has_no_findings_and_lint_exits_0(tmp_path):
    assert lint(load(tmp_path, FIXED)) == []
    result = CliRunner().invoke(lint_command, ["--topology", str(tmp_path / "topology.yaml")])
    assert (result.exit_code, result.stdout) == (0, "no findings\n")


def test_a_nat_gateway_in_a_subnet_without_an_internet_route_is_found_by_the_walk_through_it(tmp_path):
    # AWS: "Create a public NAT gateway in a public subnet" (a subnet whose route table sends
    # 0.0.0.0/0 to an internet gateway).
    (finding,) = by_kind(lint(load(tmp_path, NAT_IN_A_PRIVATE_SUBNET)), "nat-gateway-without-internet").values()
    assert (finding.resource, finding.subject) == ("nat-1", "worker (subnet-app)")
    stages = [(h.stage, h.resource, h.decision) for h in finding.evidence.legs[0].result.hops]
    assert ("nat-out", "nat-1", "translate") in stages
    assert stages[-1] == ("route", "rtb-a-main", "drop")


def test_a_blackhole_route_is_found_by_a_packet_it_drops(tmp_path):
    (finding,) = by_kind(lint(load(tmp_path, NAT_IN_A_PRIVATE_SUBNET)), "blackhole-route").values()
    assert (finding.resource, finding.subject) == ("rtb-app", "172.16.0.0/16 -> pcx-0deleted")
    assert finding.evidence.failed.result.reason == Reason.BLACKHOLE_ROUTE
    assert finding.evidence.address == "172.16.0.1"


def test_an_interface_endpoint_without_private_dns_shows_where_the_calls_go_instead(tmp_path):
    # AWS: "If you disable private DNS ... the default DNS hostname for the service resolves
    # to public IP addresses" (so calls leave through the NAT gateway, not the endpoint).
    net = load(tmp_path, EXAMPLE.replace("    private_dns_enabled: true\n", "    private_dns_enabled: false\n"))
    found = by_kind(lint(net), "endpoint-without-private-dns")
    assert sorted(found) == ["orders -> secretsmanager", "report -> secretsmanager"]
    orders, report = found["orders -> secretsmanager"], found["report -> secretsmanager"]
    assert orders.resource == "vpce-secretsmanager"
    assert "so orders's calls go out through nat-a, not through the endpoint" in orders.message
    assert any(h.resource == "nat-a" for h in orders.evidence.legs[0].result.hops)
    # report has no way to the internet at all: its calls to Secrets Manager fail
    assert "so report's calls fail: the request (SYN) is denied out by igw-main" in report.message


def test_the_command_exits_1_and_json_carries_every_finding_with_its_trace(example):
    result = CliRunner().invoke(lint_command, ["--format", "json"])
    assert result.exit_code == 1, result.output
    findings = json.loads(result.stdout)
    kinds = {(f["kind"], f["resource"], f["subject"]) for f in findings}
    assert ("function-in-public-subnet", "report", "report (subnet-public-a)") in kinds
    assert ("nacl-denies-reply", "acl-data", "orders -> eni-db:5432/tcp") in kinds
    for f in findings:
        assert f["trace"].startswith("connection ") and f["evidence"]["connected"] is False


def test_the_table_lists_each_finding_and_ignore_leaves_a_kind_out():
    result = CliRunner().invoke(lint_command, ["--ignore", "nacl-denies-reply"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "function-in-public-subnet  report  report (subnet-public-a)",
        "  subnet-public-a routes to the internet through igw-main, which drops the function's packets: a "
        "Hyperplane ENI never has a public IP (put the function in private subnets that route to a NAT gateway)",
        "1 finding (--trace shows the walk of each)",
    ]
    traced = CliRunner().invoke(lint_command, ["--ignore", "nacl-denies-reply", "--trace"])
    assert "  connection report -> internet (93.184.216.34):443/tcp from subnet-public-a" in traced.stdout


def test_a_bad_topology_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("vpcs:\n  - {id: vpc-a, cidr: 10.0.300.0/16}\n")
    result = CliRunner().invoke(lint_command, ["--topology", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("hyperplane: bad.yaml: vpcs[0].cidr: ") and result.stderr.count("\n") == 1


def snapshot(name: str) -> hp.Network:
    return hp.Network.load(snapshot_folder(name))


@pytest.mark.filterwarnings("ignore::hyperplane.formats.snapshot_report.SnapshotWarning")
def test_the_shared_peering_snapshot_has_a_default_route_to_a_deleted_internet_gateway():
    # describe-route-tables of the snapshot: "State": "blackhole" for 0.0.0.0/0 -> igw-0a2c9ae201b441bff
    findings = lint(snapshot("test-vpc-peering"))
    assert [(f.kind, f.resource, f.subject) for f in findings] == [
        ("blackhole-route", "rtb-017c36290c9baf017", "0.0.0.0/0 -> igw-0a2c9ae201b441bff")]
    evidence = findings[0].evidence
    assert (evidence.source, evidence.address) == ("eni-0024c0af5aa1387e5", "93.184.216.34")
    assert evidence.failed.result.reason == Reason.BLACKHOLE_ROUTE


@pytest.mark.filterwarnings("ignore::hyperplane.formats.snapshot_report.SnapshotWarning")
@pytest.mark.parametrize("name", ["hybrid-cloud", "test-nat-gateway", "test-public-private-subnet",
                                  "test-vpc-endpoint-gateway", "test-vpc-endpoint-interface"])
def test_the_other_shared_snapshots_have_no_findings(name):
    assert lint(snapshot(name)) == []
