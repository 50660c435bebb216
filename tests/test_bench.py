"""``hyperplane bench --quick`` runs every benchmark script and prints its figures (the figures
themselves are measured, never asserted, here)."""

from click.testing import CliRunner

from hyperplane.cli import main

SCRIPTS = ["nat_throughput.py", "policy_throughput.py", "conntrack_throughput.py", "pcap_read.py",
           "pipeline_throughput.py", "replay_throughput.py"]


def test_bench_quick_runs_every_benchmark_and_prints_its_figures():
    out = CliRunner().invoke(main, ["bench", "--quick"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert [line.split(":")[0] for line in lines] == SCRIPTS
    assert "ratio_vs_per_packet_python=" in lines[4] and "replay_pps=" in lines[5] and "ratio_vs_dpkt=" in lines[5]
