"""``hyperplane bench --quick`` runs every benchmark script and prints its figures; each script's
last line is one JSON object whose headline ``figures`` carry their baseline and ratio (the
figures themselves are measured, never asserted, here). The scripts stop on their own when a
baseline reaches other verdicts or a connection they time is not established."""

import json
import subprocess

from click.testing import CliRunner

from hyperplane.cli import main

SCRIPTS = ["nat_throughput.py", "policy_throughput.py", "conntrack_throughput.py", "pcap_read.py",
           "pipeline_throughput.py", "replay_throughput.py"]
# the keys a script's JSON line has always had (with the meanings of issue 14), and the new ones
KEYS = {
    "nat_throughput.py": {"established_mpps", "setup_mpps", "ratio_vs_python", "ceiling_mpps", "ratio_vs_ceiling",
                          "setup_grown_mpps", "bytes_per_connection", "bytes_per_connection_grown",
                          "established_into_buffer_mpps", "ratio_vs_ceiling_into_buffer"},
    "policy_throughput.py": {"route_mpps", "sg_mpps", "nacl_mpps", "sg_ratio_vs_python"},
    "conntrack_throughput.py": {"check_mpps", "setup_mpps", "ratio_vs_python"},
    "pcap_read.py": {"read_pps", "dpkt_parse_pps", "ratio_vs_dpkt"},
    "pipeline_throughput.py": {"pipeline_mpps", "ratio_vs_per_packet_python", "ratio_send_vs_scapy_build",
                               "verdict_only_mpps", "full_walk_mpps", "ratio_verdict_only_vs_full"},
    "replay_throughput.py": {"replay_pps", "dpkt_parse_pps", "scapy_replay_pps", "ratio_vs_dpkt"},
}
FIGURE = {"figure", "value", "unit", "baseline", "baseline_value", "ratio"}


def test_bench_quick_runs_every_benchmark_and_prints_its_figures(monkeypatch):
    printed: dict[str, dict] = {}
    run = subprocess.run

    def recording_run(cmd, *args, **kwargs):  # what each script printed, as the CLI read it
        done = run(cmd, *args, **kwargs)
        if done.returncode == 0:
            printed[cmd[1].rsplit("/", 1)[-1]] = json.loads(done.stdout.strip().splitlines()[-1])
        return done

    monkeypatch.setattr(subprocess, "run", recording_run)
    out = CliRunner().invoke(main, ["bench", "--quick"])
    assert out.exit_code == 0, out.output
    # one headline table: a row per figure, with its baseline and the ratio
    lines = out.output.splitlines()

    assert list(printed) == SCRIPTS
    for script, figures in printed.items():
        assert KEYS[script] <= set(figures), (script, KEYS[script] - set(figures))
        assert figures["figures"], script
        for f in figures["figures"]:
            assert set(f) == FIGURE, (script, f)
            assert any(line.strip().startswith(script.removesuffix(".py")) and f["figure"] in line and f["baseline"] in line
                       and line.rstrip().endswith(f"{f['ratio']:g}x") for line in lines), (script, f, out.output)
            assert f["value"] > 0 and isinstance(f["figure"], str) and f["unit"], (script, f)
            # every headline figure has a baseline measured in the same run, and is its ratio to it
            assert f["baseline"] and f["baseline_value"] > 0, (script, f)
            assert abs(f["ratio"] - f["value"] / f["baseline_value"]) <= 0.005 * f["ratio"], (script, f)
    nat = printed["nat_throughput.py"]
    assert abs(nat["ratio_vs_ceiling"] - nat["established_mpps"] / nat["ceiling_mpps"]) < 0.01
    assert nat["figures"][0]["baseline"].startswith("bare compiled table")
