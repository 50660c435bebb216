"""What a change breaks or opens: differential reachability between two networks, and the
``hyperplane diff`` gate (issue 11 §3)."""

from __future__ import annotations

import dataclasses
import json
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from click.testing import CliRunner

import hyperplane as hp
from hyperplane.cli import main
from hyperplane.connectivity import diff
from hyperplane.model.resources import NetworkAclEntry

EXAMPLE = Path(hp.__file__).parent / "examples" / "example.yaml"
# the fix of the demo's mistake: "NACLs are stateless: acl-data needs an outbound rule allowing
# tcp 1024-65535" (Lambda's V2N ports) back to the VPC
FIX = "      - {rule_number: 120, protocol: tcp, ports: 1024-65535, cidr: 10.0.0.0/16, rule_action: allow}\n"
ANCHOR = "      - {rule_number: 110, protocol: tcp, ports: 443, cidr: 0.0.0.0/0, rule_action: allow}\n"


def with_acl_rule(net: hp.Network, acl_id: str, entry: NetworkAclEntry) -> hp.Network:
    acl = net.topology.network_acls[acl_id]
    return hp.Network(net.topology.replace(dataclasses.replace(acl, entries=acl.entries + (entry,))), ready=True)


@pytest.fixture(scope="module")
def before() -> hp.Network:
    return hp.Network.example()


@pytest.fixture(scope="module")
def fixed(before) -> hp.Network:
    return with_acl_rule(before, "acl-data", NetworkAclEntry(120, True, 6, "allow", IPv4Network("10.0.0.0/16"),
                                                             (1024, 65535)))


def test_the_nacl_fix_opens_exactly_the_database_connections_of_the_app_group(before, fixed):
    changes = diff(before, fixed)
    # orders (both subnets) and report carry sg-app, the group sg-db admits: their PostgreSQL
    # connections open, nothing else changes
    assert [(c.source, c.subnet, c.destination, c.protocol, c.ports) for c in changes] == [
        ("orders", "subnet-private-a", "eni-db", "tcp", (5432, 5432)),
        ("orders", "subnet-private-b", "eni-db", "tcp", (5432, 5432)),
        ("report", "subnet-public-a", "eni-db", "tcp", (5432, 5432))]
    for c in changes:
        assert c.opened
        assert (c.before.failed_leg, c.before.leg, c.before.resource, c.before.rule) == (
            "reply", "SYN-ACK", "acl-data", "rule *: implicit deny")
        assert c.after.connected
        # it had connected already when V2N gave the connection port 5432 (acl-data's rule 100)
        assert c.reply_ports == ((1024, 5431), (5433, 65535))


def test_sources_narrow_the_question(before, fixed):
    changes = diff(before, fixed, sources=["orders"])
    assert [(c.source, c.subnet) for c in changes] == [("orders", "subnet-private-a"), ("orders", "subnet-private-b")]


def test_a_rule_that_denies_the_replies_closes_the_cache(before):
    # a deny numbered before acl-cache's allow: the cache's answers to the functions die
    broken = with_acl_rule(before, "acl-cache", NetworkAclEntry(90, True, 6, "deny", IPv4Network("10.0.10.0/23"),
                                                                (0, 65535)))
    changes = diff(before, broken, sources=["orders", "report"])
    assert [(c.subnet, c.destination, c.ports, c.opened) for c in changes] == [
        ("subnet-private-a", "eni-cache", (6379, 6379), False),
        ("subnet-private-b", "eni-cache", (6379, 6379), False)]
    assert all((c.after.failed_leg, c.after.resource, c.after.rule) == ("reply", "acl-cache", "rule 90: deny tcp/0-65535 10.0.10.0/23")
               for c in changes), [c.after for c in changes]
    assert "- orders from subnet-private-a -> eni-cache 6379/tcp" in str(changes)


def test_the_same_configuration_changes_nothing(before):
    changes = diff(before, hp.Network.example(ready=False))  # the lifecycle is not the configuration
    assert not changes and str(changes) == "no connection changes"


def test_changes_as_json(before, fixed):
    [first, *_] = json.loads(json.dumps(diff(before, fixed, sources=["orders"]).to_dict()))
    assert first == {
        "source": "orders", "subnet": "subnet-private-a", "destination": "eni-db", "protocol": "tcp",
        "ports": [5432, 5432], "reply_ports": [[1024, 5431], [5433, 65535]], "change": "opened",
        "before": {"address": "10.0.20.10", "connected": False, "failed_leg": "reply", "leg": "SYN-ACK",
                   "resource": "acl-data", "rule": "rule *: implicit deny", "reason": "NACL_OUT_DENY"},
        "after": {"address": "10.0.20.10", "connected": True, "failed_leg": None, "leg": None,
                  "resource": None, "rule": None, "reason": None}}


def test_an_unknown_source_is_a_clear_error(before, fixed):
    with pytest.raises(ValueError, match="unknown source 'ordrs'"):
        diff(before, fixed, sources=["ordrs"])


# -- the command: a gate for a pull request -----------------------------------------------


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    text = EXAMPLE.read_text()
    assert ANCHOR in text
    old, new = tmp_path / "before.yaml", tmp_path / "after.yaml"
    old.write_text(text)
    new.write_text(text.replace(ANCHOR, ANCHOR + FIX))
    return old, new


def test_diff_exits_1_and_shows_the_deciding_hop_before_and_after(files):
    result = CliRunner().invoke(main, ["diff", str(files[0]), str(files[1]), "--from", "orders"])
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[:4] == [
        "2 connections changed",
        "+ orders from subnet-private-a -> eni-db 5432/tcp (reply port 1024-5431,5433-65535)",
        "    before: fails: reply (SYN-ACK) at acl-data (rule *: implicit deny)",
        "    after:  connected"]


def test_diff_exits_0_when_nothing_changed(files):
    result = CliRunner().invoke(main, ["diff", str(files[0]), str(files[0]), "--from", "orders", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == []


def test_diff_json_lists_every_change(files):
    result = CliRunner().invoke(main, ["diff", str(files[0]), str(files[1]), "--format", "json"])
    assert result.exit_code == 1
    assert {(c["source"], c["destination"], c["change"]) for c in json.loads(result.output)} == {
        ("orders", "eni-db", "opened"), ("report", "eni-db", "opened")}


def test_diff_of_a_broken_file_is_one_line_and_exit_2(files, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(files[1].read_text().replace("cidr: 10.0.20.0/24", "cidr: 10.0.20.0/99"))
    result = CliRunner().invoke(main, ["diff", str(files[0]), str(bad)])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("hyperplane: ")


def test_diff_reads_describe_folders_like_topology_files():
    folder = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "aws-snapshots" / "test-nat-gateway"
    if not folder.is_dir():
        pytest.skip(f"third-party AWS snapshot {folder} is absent (it lives beside the project, in "
                    "../shared/fixtures/aws-snapshots; a fresh clone does not have it)")
    result = CliRunner().invoke(main, ["diff", str(folder), str(folder), "--from", "internet"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "no connection changes"


def test_diff_parameter_must_be_key_value(files):
    result = CliRunner().invoke(main, ["diff", str(files[0]), str(files[1]), "--parameter", "Env"])
    assert result.exit_code == 2
    assert result.output.strip() == "hyperplane: --parameter 'Env' is not KEY=VALUE"
