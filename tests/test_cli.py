"""The command line as a new user meets it: names to ask about, one-line mistakes (issue 11 §5)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from hyperplane.cli import main


def test_list_names_the_functions_with_their_state_subnets_and_hyperplane_enis():
    done = CliRunner().invoke(main, ["list"])
    assert done.exit_code == 0
    orders = next(line for line in done.stdout.splitlines() if line.strip().startswith("orders"))
    assert "Active" in orders and "subnet-private-a, subnet-private-b" in orders and "10.0.10.4" in orders
    data = json.loads(CliRunner().invoke(main, ["list", "--format", "json"]).stdout)
    assert {e["id"] for e in data["network_interfaces"]} >= {"eni-db", "eni-cache", "eni-web"}
    assert {"id": "vpce-secretsmanager", "type": "interface", "service": "com.amazonaws.us-east-1.secretsmanager",
            "dns": "private DNS"} in data["vpc_endpoints"]


def test_snapshot_without_a_region_is_one_line_and_exit_2(monkeypatch, tmp_path):
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    done = CliRunner().invoke(main, ["snapshot", str(tmp_path / "out")])
    assert done.exit_code == 2 and done.stderr == (
        "hyperplane: no AWS region: give --region, or set one in the profile or AWS_DEFAULT_REGION\n")


def test_a_snapshot_warning_is_one_clean_line(tmp_path):
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "aws-snapshots" / "hybrid-cloud"
    if not folder.is_dir():
        import pytest
        pytest.skip(f"{folder} is absent (the shared fixtures)")
    done = CliRunner().invoke(main, ["list", "--topology", str(folder)])
    assert done.exit_code == 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hyperplane: warning: AWS snapshot") and "transit gateways" in lines[0]


def test_the_demo_ends_with_what_to_try_next():
    done = CliRunner().invoke(main, ["demo"])
    assert done.exit_code == 0
    tail = done.stdout.splitlines()[-6:]
    assert tail[0] == "== try next" and any("hyperplane trace --from orders --to db:5432" in line for line in tail)


def test_every_command_reads_infrastructure_as_code_with_region_and_parameters(tmp_path):
    from hyperplane.formats.cloudformation_writer import write_cloudformation
    from hyperplane.formats.topology_reader import load_example_topology

    template = tmp_path / "template.yaml"
    write_cloudformation(load_example_topology(), template)
    runner = CliRunner()
    # the database by the logical id the template gives it (its ENI's description)
    names = json.loads(runner.invoke(main, ["list", "--topology", str(template), "--format", "json"]).stdout)
    db = next(e for e in names["network_interfaces"] if e["address"] == "10.0.20.10")
    done = runner.invoke(main, ["trace", "--topology", str(template), "--region", "us-east-1",
                                "--from", "orders", "--to", f"{db['id']}:5432"])
    assert done.exit_code == 1 and "the reply (SYN-ACK) is denied out" in done.stdout
    bad = runner.invoke(main, ["list", "--topology", str(template), "--parameter", "NoEquals"])
    assert bad.exit_code == 2 and bad.stderr == "hyperplane: --parameter 'NoEquals' is not KEY=VALUE\n"


def test_replay_on_two_workers_writes_what_one_process_writes(tmp_path):
    from hyperplane.demo import write_demo_capture

    capture = tmp_path / "orders.pcap"
    write_demo_capture(capture)
    runner = CliRunner()
    outputs = []
    for workers in ("1", "2"):
        verdicts = tmp_path / f"verdicts-{workers}.jsonl"
        done = runner.invoke(main, ["replay", str(capture), "--function", "orders=172.16.5.0/24",
                                    "--verdicts", str(verdicts), "--workers", workers])
        assert done.exit_code == 0, done.output
        outputs.append(verdicts.read_bytes())
    assert outputs[0] == outputs[1]
    assert "component" in done.stdout  # how the capture was cut
