"""Replay of many capture files on a Dask cluster gives exactly what one process gives for the
same packets: the same verdict file, output capture and flow-log files (issue 15, "on many
machines"). The captures are split over several files; the single-process replay reads one
file holding the same packets merged in time (ties: the earlier file first)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from scapy.all import wrpcap

import hyperplane as hp
from hyperplane.errors import ReplayError
from hyperplane.formats.topology_reader import parse_topology
from hyperplane.functions import LambdaSettings
from test_parallel_replay import T0, assert_identical, cidr, conversations, inside_captures, outputs, scenarios, vpc

distributed = pytest.importorskip("distributed")
from hyperplane.replay_parallel.on_dask import capture_files, replay_on_dask  # noqa: E402

pytestmark = pytest.mark.slow

STAGE_SECONDS = 60  # no stage of these small replays may take longer: a stuck cluster fails, never hangs


@pytest.fixture(scope="module")
def cluster():
    """Two workers of one thread each, in this process (quick to start; the tasks still get only
    what they are sent: the network is built in each from its recipe)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as c, \
            distributed.Client(c, timeout="30s") as client:
        yield client


def build(doc: dict, lambda_settings: LambdaSettings, ready: bool = True) -> hp.Network:
    return hp.Network(parse_topology(doc), lambda_settings=lambda_settings, ready=ready)


def split(packets: list, files: int, folder: Path) -> tuple[list[Path], Path]:
    """``packets`` (in time order) dealt to ``files`` capture files, each in time order, and the
    one file of all of them merged in time, ties by file (what a single replay of them reads)."""
    parts = [packets[k::files] for k in range(files)]
    paths = [folder / f"part-{k}.pcap" for k in range(files)]
    for path, part in zip(paths, parts):
        wrpcap(str(path), part)
    merged = sorted(((float(p.time), k, p) for k, part in enumerate(parts) for p in part), key=lambda e: e[:2])
    wrpcap(str(folder / "merged.pcap"), [p for _, _, p in merged])
    return paths, folder / "merged.pcap"


def three_ways(doc: dict, lambda_settings: LambdaSettings, packets: list, tmp: Path, client, files: int = 3,
               ready: bool = True):
    """The packets replayed by one process, by workers=2 and on the Dask cluster (split over
    ``files`` files): [(report, files written)] in that order."""
    paths, merged = split(packets, files, tmp)
    functions = {f["name"]: cidr(k) for k, f in enumerate(doc["functions"])}
    answers = []
    for way in ("one", "workers", "dask"):
        out = tmp / way
        out.mkdir(exist_ok=True)
        kept = dict(output=out / "out.pcap", verdicts=out / "verdicts.jsonl", flow_logs=out / "logs",
                    functions=functions)
        if way == "dask":
            report = replay_on_dask(partial(build, doc, lambda_settings, ready), paths, scheduler=client,
                                    shards=tmp / "shards", timeout=STAGE_SECONDS, **kept)
        else:
            report = build(doc, lambda_settings, ready).replay(merged, workers=2 if way == "workers" else 1, **kept)
        answers.append((report, outputs(out)))
    return answers


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_a_dask_cluster_writes_exactly_what_one_process_and_two_workers_write(scenario, tmp_path_factory, cluster):
    doc, packets, lambda_settings, ready = scenario
    tmp = tmp_path_factory.mktemp("dask")
    one, workers, dask = three_ways(doc, lambda_settings, sorted(packets, key=lambda p: p.time), tmp, cluster,
                                    ready=ready)
    assert_identical([one, workers])
    assert_identical([one, dask])
    assert list((tmp / "shards").iterdir()) == []  # the replay's shards removed, the folder given kept


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=inside_captures())
def test_a_capture_taken_inside_the_vpc_split_over_files_gives_the_same_files_on_dask(scenario, tmp_path_factory,
                                                                                      cluster):
    doc, packets = scenario
    tmp = tmp_path_factory.mktemp("inside")
    paths, merged = split(sorted(packets, key=lambda p: p.time), 2, tmp)
    answers = []
    for way in ("one", "dask"):
        out = tmp / way
        out.mkdir()
        kept = dict(inject="eni", output=out / "out.pcap", verdicts=out / "verdicts.csv", flow_logs=out / "logs")
        if way == "dask":
            report = replay_on_dask(partial(build, doc, LambdaSettings()), paths, scheduler=cluster,
                                    timeout=STAGE_SECONDS, **kept)
        else:
            report = build(doc, LambdaSettings()).replay(merged, **kept)
        answers.append((report, outputs(out)))
    assert_identical(answers)


def test_a_limit_reached_across_components_on_dask_replays_them_together_and_says_which(tmp_path, cluster):
    # AWS: "Lambda ... creates additional network interfaces as needed" when a Hyperplane ENI
    # runs out of connections: the overflow ENI takes an address of the subnet and an ENI id,
    # and counts under the per-VPC limit — state the other components see.
    doc = vpc(3, False, [[0], [1], [2]])
    early = conversations(["172.16.2.10"], [("10.0.20.10", 5432)], T0, 4)           # AZ c, before
    busy = conversations(["172.16.0.10", "172.16.0.11"], [("93.184.216.34", 443)], T0 + 1, 12)  # AZ a: over
    late = conversations(["172.16.1.10"], [("198.51.100.7", 80)], T0 + 1.005, 12)   # AZ b, meanwhile
    answers = three_ways(doc, LambdaSettings(max_connections_per_eni=5), sorted(early + busy + late,
                                                                                key=lambda p: p.time),
                         tmp_path, cluster)
    assert_identical([answers[0], answers[2]])
    report = answers[2][0]
    assert any(e["overflow"] for e in report.hyperplane_enis)
    info = report.parallel
    assert info.engine == "dask"
    assert sorted(name for name, _ in info.components) == [
        "subnet-private-a+nat-a", "subnet-private-b+nat-b", "subnet-private-c+nat-c"]
    assert info.merged == ["subnet-private-a+nat-a", "subnet-private-b+nat-b"]
    assert "subnet-private-a" in info.merged_because
    assert "3 components on 2 Dask tasks" in report.summary() and "replayed again together" in report.summary()


def test_files_that_overlap_in_time_are_replayed_as_one_capture_merged_in_time(tmp_path, cluster):
    # two AZs' captures, rotated at different moments: each file holds a stretch of one AZ
    doc = vpc(2, False, [[0], [1]])
    a = conversations(["172.16.0.10"], [("93.184.216.34", 443)], T0, 30)
    b = conversations(["172.16.1.10"], [("93.184.216.34", 443)], T0 + 0.003, 30)
    files = [a[:20], a[20:], b[:35], b[35:]]
    paths = []
    for k, part in enumerate(files):
        paths.append(tmp_path / f"cap-{k}.pcap")
        wrpcap(str(paths[-1]), part)
    wrpcap(str(tmp_path / "merged.pcap"), sorted(a + b, key=lambda p: p.time))
    for way in ("one", "dask"):
        (tmp_path / way).mkdir()
    fns = {"fn0": cidr(0), "fn1": cidr(1)}
    one = build(doc, LambdaSettings()).replay(tmp_path / "merged.pcap", functions=fns,
                                              verdicts=tmp_path / "one" / "v.csv", output=tmp_path / "one" / "o.pcap")
    dask = replay_on_dask(partial(build, doc, LambdaSettings()), str(tmp_path / "cap-*.pcap"), functions=fns,
                          scheduler=cluster, verdicts=tmp_path / "dask" / "v.csv", output=tmp_path / "dask" / "o.pcap",
                          timeout=STAGE_SECONDS)
    assert outputs(tmp_path / "one") == outputs(tmp_path / "dask")
    assert one.packets == dask.packets == 120
    assert not list(tmp_path.glob(".hyperplane-shards-*"))  # the shards are gone


def test_a_glob_that_matches_nothing_names_the_pattern(tmp_path):
    with pytest.raises(ReplayError, match=r"captures/\*\.pcap: no capture file matches"):
        capture_files(str(tmp_path / "captures" / "*.pcap"))
    with pytest.raises(ReplayError, match="gone.pcap: no such capture file"):
        capture_files([tmp_path / "gone.pcap"])


def test_a_broken_capture_file_is_the_clear_error_of_a_single_replay(tmp_path, cluster):
    good, broken = tmp_path / "a.pcap", tmp_path / "b.pcap"
    wrpcap(str(good), conversations(["172.16.5.10"], [("10.0.21.10", 6379)], T0, 2))
    broken.write_bytes(b"not a capture at all, just text")
    with pytest.raises(hp.HyperplaneError) as single:
        hp.Network.example().replay(broken, functions={"orders": "172.16.5.0/24"})
    with pytest.raises(hp.HyperplaneError) as dask:
        replay_on_dask(hp.Network.example, [good, broken], functions={"orders": "172.16.5.0/24"},
                       scheduler=cluster, timeout=STAGE_SECONDS)
    assert str(dask.value) == str(single.value) and "b.pcap" in str(dask.value)


def test_hyperplane_replay_engine_dask_on_a_local_cluster(tmp_path):
    # the command line's own local cluster (worker processes), the topology file read by each
    from click.testing import CliRunner

    from hyperplane.cli import main

    doc = vpc(2, False, [[0], [1]])
    topology = tmp_path / "vpc.json"
    topology.write_text(__import__("json").dumps(doc))
    (tmp_path / "captures").mkdir()
    packets = sorted(conversations(["172.16.0.10"], [("93.184.216.34", 443)], T0, 6)
                     + conversations(["172.16.1.10"], [("93.184.216.34", 443)], T0 + 0.005, 6), key=lambda p: p.time)
    paths, merged = split(packets, 2, tmp_path / "captures")
    merged.rename(tmp_path / "merged.pcap")
    runner = CliRunner()
    common = ["--topology", str(topology), "--function", f"fn0={cidr(0)}", "--function", f"fn1={cidr(1)}"]
    one = runner.invoke(main, ["replay", str(tmp_path / "merged.pcap"), *common,
                               "--verdicts", str(tmp_path / "one.jsonl")])
    assert one.exit_code == 0, one.output
    dask = runner.invoke(main, ["replay", "--engine", "dask", str(tmp_path / "captures" / "*.pcap"), *common,
                                "--verdicts", str(tmp_path / "dask.jsonl")])
    assert dask.exit_code == 0, dask.output
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "dask.jsonl").read_bytes()
    assert "2 components on 2 Dask tasks" in dask.stdout
    wrong = runner.invoke(main, ["replay", str(tmp_path / "merged.pcap"), "--scheduler", "tcp://127.0.0.1:1"])
    assert wrong.exit_code == 2 and "--scheduler and --shards go with --engine dask" in wrong.output
    nothing = runner.invoke(main, ["replay", "--engine", "dask", str(tmp_path / "none" / "*.pcap")])
    pattern = tmp_path / "none" / "*.pcap"
    assert nothing.exit_code == 2 and nothing.stderr == f"hyperplane: {pattern}: no capture file matches\n"
    folder = runner.invoke(main, ["replay", str(tmp_path / "captures")])
    assert folder.exit_code == 2 and "is a directory" in folder.output
