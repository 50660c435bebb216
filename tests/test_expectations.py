"""Expected connectivity written down and checked in one run: `hyperplane check` (issue 11 §3)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

import hyperplane as hp
from hyperplane.commands.check import check
from hyperplane.connectivity.expectations import check_expectations, read_expectations
from hyperplane.errors import ExpectationsError
from test_connectivity import TWO_SUBNETS  # checkout in two subnets, subnet-b's NACL denying the replies

# the shop's promises about the built-in example; line 4 is wrong: acl-data drops the
# database's replies, so orders does not connect to it
PROMISES = """\
# what the shop relies on
- orders -> cache:6379: connected
- orders -> internet:443/tcp: connected
- orders -> db:5432: connected
- thumbnail -> db:5432: blocked
- report -> internet:443: blocked on request
"""


@pytest.fixture
def promises(tmp_path):
    path = tmp_path / "promises.yaml"
    path.write_text(PROMISES)
    return path


def run(*args: str):
    return CliRunner().invoke(check, [str(a) for a in args], catch_exceptions=False)


def test_one_wrong_line_fails_the_check_naming_that_line_with_its_trace(promises):
    result = run(promises)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    failing = [ln for ln in lines if ln.startswith("FAIL")]
    assert failing == [f"FAIL {promises}:4: orders -> db:5432: expected connected, but fails from subnet-private-a: "
                       "the reply (SYN-ACK) is denied out by acl-data (rule *: implicit deny)"]
    assert sum(ln.startswith("ok ") for ln in lines) == 4
    # the mismatch comes with the trace of the connection: the SYN delivered, the SYN-ACK denied
    trace = result.stdout.split(f"{promises}:4: orders -> db:5432: connected\n", 1)[1]
    assert "-- SYN-ACK (reply)" in trace and "nacl-out     acl-data               deny" in trace
    assert "NACLs are stateless: acl-data needs an outbound rule allowing tcp 1024-65535" in trace
    assert lines[-1] == "4 of 5 expectations met, 1 not met"


def test_a_file_the_network_keeps_passes_and_exits_0(tmp_path):
    path = tmp_path / "kept.yaml"
    path.write_text(PROMISES.replace("orders -> db:5432: connected", "orders -> db:5432: blocked on reply"))
    result = run(path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "5 of 5 expectations met"


def test_the_junit_file_has_one_test_case_per_line_and_one_failure_with_the_trace(promises, tmp_path):
    junit = tmp_path / "check.xml"
    assert run(promises, "--junit", junit).exit_code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "1", "0")
    failed = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert [case.get("name") for case in failed] == ["line 4: orders -> db:5432: connected"]
    failure = failed[0].find("failure")
    assert failure is not None and failure.text is not None
    assert failure.get("message", "").startswith("expected connected, but fails from subnet-private-a")
    assert "SYN-ACK" in failure.text and "acl-data" in failure.text


def test_every_function_is_checked_from_each_of_its_subnets_unless_the_line_names_one(tmp_path):
    # AWS: "Lambda creates a Hyperplane ENI for each subnet in your function's VPC
    # configuration": an invocation may run in any of them.
    path = tmp_path / "subnets.yaml"
    path.write_text("- orders -> db:5432: blocked on reply\n"
                    "- orders -> db:5432: blocked on reply\n  from: private-b\n")
    report = check_expectations(hp.Network.example(), path)
    assert report, str(report)
    every, one = (o.result for o in report.outcomes)
    assert [s.subnet for s in every.subnets] == ["subnet-private-a", "subnet-private-b"]
    assert one.subnets == [] and one.subnet == "subnet-private-b"


@pytest.mark.parametrize("verdict, found", [
    ("connected", "fails from subnet-b: the reply (SYN-ACK) is denied in by acl-bad (rule *: implicit deny)"),
    ("blocked", "connects from subnet-a"),
])
def test_a_function_is_only_as_reachable_as_its_worst_subnet_and_as_closed_as_its_best(tmp_path, verdict, found):
    topology = tmp_path / "shop.yaml"
    topology.write_text(TWO_SUBNETS)
    path = tmp_path / "shop-promises.yaml"
    path.write_text(f"- checkout -> db:5432: {verdict}\n")
    result = run(path, "--topology", topology)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == f"FAIL {path}:1: checkout -> db:5432: expected {verdict}, but {found}"
    # the trace shown is the one of the subnet that contradicts the line
    subnet = found.split("from ")[1].split(":")[0]
    assert f"connection checkout -> db (10.1.9.10):5432/tcp from {subnet}\n" in result.stdout
    assert result.stdout.count("connection checkout -> db") == 1


def test_blocked_on_a_leg_is_a_mismatch_when_the_other_leg_fails(tmp_path):
    path = tmp_path / "leg.yaml"
    path.write_text("- orders -> db:5432: blocked on request\n")
    report = check_expectations(hp.Network.example(), path)
    assert not report
    assert report.mismatches[0].result.failed_leg == "reply"


def test_json_gives_every_answer(promises):
    result = run(promises, "--format", "json")
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer["met"] is False
    assert [(e["line"], e["met"]) for e in answer["expectations"]] == [
        (2, True), (3, True), (4, False), (5, True), (6, True)]
    assert answer["expectations"][2]["connection"]["failed_leg"] == "reply"


@pytest.mark.parametrize("text, line, problem", [
    ("- orders -> db:5432: connected\n- orders -> db:5432: maybe\n", 2,
     "'maybe' is not connected, blocked, blocked on request or blocked on reply"),
    ("- orders -> cache:6379: connected\n- ordrs -> db:5432: connected\n", 2,
     "unknown source 'ordrs'; did you mean 'orders'?"),
    ("- orders -> dbb:5432: connected\n", 1, "unknown destination 'dbb'; did you mean 'db'"),
    ("- orders -> : connected\n", 1, "'orders ->' is not 'SOURCE -> DESTINATION'"),
    ("- orders -> db:99999: connected\n", 1, "port 99999 is not in 0-65535"),
    ("- orders -> db:5432/tpc: connected\n", 1, "protocol 'tpc' is not tcp, udp or icmp; did you mean 'tcp'?"),
    ("- orders -> db:5432 connected\n", 1, "an expectation is 'SOURCE -> DESTINATION: connected|blocked', not"),
    ("- orders -> db:5432: connected\n  form: private-a\n", 2, "'form' is neither 'SOURCE -> DESTINATION' nor 'from'"),
    ("- internet -> web:443: connected\n  from: private-a\n", 1, "needs a function in a VPC as the source"),
    ("- orders -> db:5432: connected\n  from: private-z\n", 1, "unknown subnet 'private-z'"),
    ("orders -> db:5432: connected\n", 1, "the file must be a YAML list"),
    ("- [orders\n", 2, "invalid YAML"),
])
def test_a_bad_line_is_one_error_naming_the_file_the_line_and_the_problem(tmp_path, text, line, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = CliRunner().invoke(check, [str(path)])
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in result.output
    assert message.startswith(f"hyperplane: {path}: line {line}: ")
    assert problem in message
    with pytest.raises(ExpectationsError) as caught:
        check_expectations(hp.Network.example(), path)
    assert (caught.value.file, caught.value.line) == (str(path), line)


def test_an_empty_file_says_what_it_should_hold(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(ExpectationsError, match="the file has no expectation"):
        read_expectations(path)


def test_without_a_port_an_expectation_holds_for_every_port(tmp_path):
    # thumbnail has no VpcConfig: "functions that aren't connected to a VPC ... can't access
    # resources in a VPC" (AWS Lambda Developer Guide) -- on any port
    path = tmp_path / "every-port.yaml"
    path.write_text("- thumbnail -> db: blocked\n"
                    "- orders -> db/udp: blocked on request\n"
                    "- internet -> web: blocked\n")
    report = check_expectations(hp.Network.example(), path)
    assert [o.met for o in report.outcomes] == [True, True, False]
    assert report.outcomes[0].found == "blocked on every tcp port"
    # the web server is open on 443 (sg-web) to everyone: the line names the port, and the
    # trace is a connection on it
    (mismatch,) = report.mismatches
    assert mismatch.found == "connects on tcp 443"
    assert mismatch.counterexample is not None and mismatch.counterexample.port == 443
    assert mismatch.counterexample.connected
