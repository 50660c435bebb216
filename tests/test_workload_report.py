"""``hyperplane load --example --report DIR``: the summary, the PNG plots and the one
self-contained HTML page, whose plotted series are the summary's numbers."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from hyperplane.commands.load import load

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def example_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    # the sample workload until 11:45, past its burst (the whole run reaches the NAT limit later)
    result = CliRunner().invoke(load, ["--example", "--duration", "15m", "--report", str(folder)])
    assert result.exit_code in (0, 1), result.output
    return folder, result.output


def test_the_report_folder_holds_the_summary_the_series_the_plots_and_the_page(example_report):
    folder, output = example_report
    names = {p.name for p in folder.iterdir()}
    assert names == {"summary.txt", "series.json", "report.html", "executions.png", "connections.png",
                     "enis.png", "nat_ports.png"}
    for png in folder.glob("*.png"):
        assert png.read_bytes().startswith(PNG) and png.stat().st_size > 10_000
    assert (folder / "summary.txt").read_text() in output


def test_the_page_is_self_contained_and_plots_the_summarys_numbers(example_report):
    folder, _ = example_report
    page = (folder / "report.html").read_text()
    assert len(re.findall(r'<img alt="[a-z_]+\.png" src="data:image/png;base64,', page)) == 4
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    data = json.loads(re.search(r'<script type="application/json" id="series">(.*?)</script>', page, re.S)[1])
    summary = (folder / "summary.txt").read_text()
    assert data["times"][0] == 0 and data["times"][-1] == 900

    def summary_number(pattern: str) -> float:
        return float(re.search(pattern, summary)[1].replace(",", ""))

    plots = data["plots"]
    executions = plots["executions.png"]["executions: orders"]
    assert max(executions) == summary_number(r"orders: peak ([\d,]+) concurrent executions")
    nat = plots["nat_ports.png"]["nat_destination_connections: nat-a 203.0.113.10 -> api.example.com"]
    assert max(nat) == summary_number(r"nat-a 203\.0\.113\.10 -> api\.example\.com: peak ([\d,]+)")
    for key, values in plots["connections.png"].items():
        if key.startswith("eni_connections: "):
            eni = key.split(": ")[1]
            assert max(values) == summary_number(rf"{eni} .*? peak +([\d,]+) connections")
    assert max(plots["connections.png"]["connections: open"]) == summary_number(r"peak ([\d,]+) open at once")
    series = json.loads((folder / "series.json").read_text())
    assert series["series"]["nat_destination_connections"]["nat-a 203.0.113.10 -> api.example.com"] == nat


def test_the_burst_shows_in_the_plotted_executions(example_report):
    folder, _ = example_report
    data = json.loads((folder / "series.json").read_text())
    times, executions = data["times"], data["series"]["executions"]["orders"]
    during = [e for t, e in zip(times, executions) if 305 <= t < 355]  # the burst: 11:35-11:36, +60/s
    before = [e for t, e in zip(times, executions) if 250 <= t < 295]
    assert min(during) - max(before) >= 60 * 0.4 - 1  # 60 invocations a second of 400 ms


def test_without_a_workload_or_with_both_the_command_says_so(tmp_path):
    result = CliRunner().invoke(load, [])
    assert result.exit_code == 2 and "give a WORKLOAD file or --example" in result.output
    bad = tmp_path / "w.yaml"
    bad.write_text("functions: [{function: orders, rate: fast}]\n")
    result = CliRunner().invoke(load, [str(bad)])
    assert result.exit_code == 2
    assert f"hyperplane: {bad}: functions[0].rate: must be a number >= 0, not 'fast'" in result.output


def test_the_sweep_from_the_command_line_names_the_largest_load_and_the_limit_past_it(tmp_path):
    workload = tmp_path / "burst.yaml"
    workload.write_text("duration: 10s\nfunctions:\n  - function: orders\n    concurrency: 10\n    duration: 60s\n"
                        "    connections:\n      - {to: 198.51.100.7:443, count: 1000, open_for: 60s}\n")
    result = CliRunner().invoke(load, [str(workload), "--sweep", "concurrency=10..100"])
    assert result.exit_code == 0, result.output
    assert "largest concurrency within every limit: 55" in result.stdout
    assert "NAT_PORT_ALLOCATION_ERROR" in result.stdout  # the first limit past it, and its report
    result = CliRunner().invoke(load, [str(workload), "--sweep", "concurrency=100"])
    assert result.exit_code == 2 and "--sweep: 'concurrency=100' is not VARIABLE=LOW..HIGH" in result.output
