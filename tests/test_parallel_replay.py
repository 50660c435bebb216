"""Replay on several processes gives exactly what one process gives: the same verdict file, the
same output capture, the same flow-log files — on random VPCs (one NAT gateway per AZ or
shared, several functions over their subnets) and random conversations, with the Hyperplane ENI
connection limit reached on purpose in some (issue 15)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.all import IP, TCP, UDP, Ether, wrpcap

import hyperplane as hp
from hyperplane.errors import ReplayError
from hyperplane.formats.topology_reader import parse_topology
from hyperplane.functions import LambdaSettings

pytestmark = pytest.mark.slow  # heavy: -m 'not slow' skips it in a quick local loop; CI runs it

T0 = 1_700_000_000.0
ROLE = {"name": "fn-role", "permissions": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                                           "ec2:DeleteNetworkInterface"]}
# peers the functions talk to: the database (inside, no NAT gateway), two internet servers
# (through the NAT gateway of the function's subnet), an address where nothing is
PEERS = [("10.0.20.10", 5432), ("93.184.216.34", 443), ("198.51.100.7", 80), ("10.0.99.9", 80)]


def vpc(azs: int, shared_nat: bool, functions: list[list[int]]) -> dict:
    """One VPC: per AZ a public subnet with a NAT gateway and a private subnet routing to it
    (``shared_nat``: every private subnet to the first NAT gateway), a database subnet without
    a way out, and functions over the private subnets of ``functions[k]``."""
    doc: dict = {
        "account_id": "123456789012", "region": "us-east-1",
        "vpcs": [{"id": "vpc-app", "cidr": "10.0.0.0/16"}],
        "internet_gateways": [{"id": "igw-app", "vpc_id": "vpc-app"}],
        "subnets": [{"id": "subnet-data", "vpc_id": "vpc-app", "cidr": "10.0.20.0/24",
                     "availability_zone": "us-east-1a"}],
        "route_tables": [{"id": "rtb-public", "vpc_id": "vpc-app",
                          "routes": [{"destination": "0.0.0.0/0", "target": "igw-app"}]}],
        "nat_gateways": [],
        "security_groups": [
            {"id": "sg-app", "vpc_id": "vpc-app"},
            {"id": "sg-db", "vpc_id": "vpc-app",
             "ingress": [{"protocol": "tcp", "ports": 5432, "security_group_id": "sg-app"}]}],
        "network_interfaces": [{"id": "eni-db", "subnet_id": "subnet-data", "private_ip": "10.0.20.10",
                                "security_group_ids": ["sg-db"], "kind": "rds"}],
        "functions": [],
    }
    for k in range(azs):
        az = "abc"[k]
        doc["subnets"] += [
            {"id": f"subnet-public-{az}", "vpc_id": "vpc-app", "cidr": f"10.0.{k}.0/24",
             "availability_zone": f"us-east-1{az}", "route_table_id": "rtb-public"},
            {"id": f"subnet-private-{az}", "vpc_id": "vpc-app", "cidr": f"10.0.{10 + k}.0/24",
             "availability_zone": f"us-east-1{az}", "route_table_id": f"rtb-private-{az}"}]
        doc["nat_gateways"].append({
            "id": f"nat-{az}", "subnet_id": f"subnet-public-{az}", "connectivity_type": "public",
            "private_ip": f"10.0.{k}.10", "network_interface_id": f"eni-nat-{az}",
            "elastic_ips": [{"allocation_id": f"eipalloc-{az}", "public_ip": f"203.0.113.{10 + k}"}]})
        doc["route_tables"].append({"id": f"rtb-private-{az}", "vpc_id": "vpc-app", "routes": [
            {"destination": "0.0.0.0/0", "target": "nat-a" if shared_nat else f"nat-{az}"}]})
    for f, subnets in enumerate(functions):
        fn: dict = {"name": f"fn{f}", "role": ROLE}
        if subnets:
            fn["vpc_config"] = {"subnet_ids": [f"subnet-private-{'abc'[k]}" for k in subnets],
                                "security_group_ids": ["sg-app"]}
        doc["functions"].append(fn)
    return doc


def cidr(f: int) -> str:
    return f"172.16.{f}.0/24"


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file a replay wrote, gzip files by their content."""
    return {str(p.relative_to(folder)): gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def both(doc: dict, lambda_settings: LambdaSettings, capture: Path, tmp: Path, ready: bool = True):
    """The same capture replayed on one process and on two: (reports, files written)."""
    answers = []
    for workers in (1, 2):
        out = tmp / f"w{workers}"
        out.mkdir(exist_ok=True)
        net = hp.Network(parse_topology(doc), lambda_settings=lambda_settings, ready=ready)
        names = [f["name"] for f in doc["functions"]]
        report = net.replay(capture, functions={n: cidr(k) for k, n in enumerate(names)},
                            output=out / "out.pcap", verdicts=out / "verdicts.jsonl", flow_logs=out / "logs",
                            workers=workers)
        answers.append((report, outputs(out)))
    return answers


def assert_identical(answers) -> None:
    (one, files1), (two, files2) = answers
    assert files1.keys() == files2.keys()
    for name in files1:
        assert files1[name] == files2[name], name
    for attr in ("packets", "kinds", "reasons", "dispositions", "drops_by_rule", "written", "flow_log_records",
                 "hyperplane_enis"):
        assert getattr(one, attr) == getattr(two, attr), attr


@st.composite
def scenarios(draw):
    azs = draw(st.integers(1, 3))
    functions = [sorted(draw(st.sets(st.integers(0, azs - 1), max_size=azs))) for _ in range(draw(st.integers(2, 4)))]
    packets = []
    t = T0
    for _ in range(draw(st.integers(1, 40))):
        t += draw(st.sampled_from([0.0, 0.001, 0.5, 40.0, 130.0]))
        f = draw(st.integers(0, len(functions) - 1))
        env = cidr(f).replace("0/24", str(10 + draw(st.integers(0, 5))))
        dst, dport = draw(st.sampled_from(PEERS))
        sport = draw(st.integers(40000, 40005))
        tcp = draw(st.booleans())
        if draw(st.integers(0, 5)) == 0:  # a peer's packet to an environment before it sends (unsolicited)
            stray = cidr(f).replace("0/24", str(10 + draw(st.integers(0, 5))))
            p = Ether() / IP(src=dst, dst=stray) / TCP(sport=dport, dport=sport, flags="SA")
            p.time = t
            packets.append(p)
        p = Ether() / IP(src=env, dst=dst) / (TCP(sport=sport, dport=dport, flags=draw(st.sampled_from("SAF")))
                                              if tcp else UDP(sport=sport, dport=dport))
        p.time = t
        packets.append(p)
        if draw(st.booleans()):  # the peer answers
            answer = Ether() / IP(src=dst, dst=env) / (TCP(sport=dport, dport=sport, flags="SA") if tcp
                                                       else UDP(sport=dport, dport=sport))
            answer.time = t + draw(st.sampled_from([0.0, 0.01]))
            packets.append(answer)
    limited = draw(st.booleans())  # a pool's connection limit within reach of the capture
    lambda_settings = LambdaSettings(idle_reclaim_seconds=200.0, eni_creation_seconds=30.0,
                                     max_connections_per_eni=3 if limited else 65_000)
    return vpc(azs, draw(st.booleans()), functions), packets, lambda_settings, draw(st.booleans())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_two_workers_write_exactly_what_one_process_writes(scenario, tmp_path):
    doc, packets, lambda_settings, ready = scenario
    wrpcap(str(tmp_path / "in.pcap"), packets)
    assert_identical(both(doc, lambda_settings, tmp_path / "in.pcap", tmp_path, ready))


def conversations(envs: list[str], dsts: list[tuple[str, int]], start: float, count: int) -> list:
    """``count`` connections from each environment in turn: SYN and the peer's SYN-ACK."""
    packets = []
    for k in range(count):
        env = envs[k % len(envs)]
        dst, dport = dsts[k % len(dsts)]
        for src, d, sport, port, flags in ((env, dst, 41000 + k, dport, "S"), (dst, env, dport, 41000 + k, "SA")):
            p = Ether() / IP(src=src, dst=d) / TCP(sport=sport, dport=port, flags=flags)
            p.time = start + k * 0.01
            packets.append(p)
    return packets


def write_two_functions_capture(path) -> None:
    """20 conversations of fn0's environment 172.16.0.10 and 20 of fn1's 172.16.1.10 with an
    internet server, interleaved in time."""
    wrpcap(str(path), sorted(conversations(["172.16.0.10"], [("93.184.216.34", 443)], T0, 20)
                             + conversations(["172.16.1.10"], [("93.184.216.34", 443)], T0 + 0.005, 20),
                             key=lambda p: p.time))


def test_one_nat_gateway_per_az_cuts_the_capture_in_one_component_per_az(tmp_path):
    # fn0 in AZ a only, fn1 in AZ b only: their packets share nothing
    doc = vpc(2, False, [[0], [1]])
    write_two_functions_capture(tmp_path / "in.pcap")
    answers = both(doc, LambdaSettings(), tmp_path / "in.pcap", tmp_path)
    assert_identical(answers)
    info = answers[1][0].parallel
    assert sorted(name for name, _ in info.components) == ["subnet-private-a+nat-a", "subnet-private-b+nat-b"]
    assert info.merged == []
    assert "2 components on 2 workers" in answers[1][0].summary()


def test_a_shared_nat_gateway_makes_one_component_and_it_says_so(tmp_path):
    doc = vpc(2, True, [[0], [1]])  # both private subnets route to nat-a
    packets = sorted(conversations(["172.16.0.10"], [("93.184.216.34", 443)], T0, 10)
                     + conversations(["172.16.1.10"], [("93.184.216.34", 443)], T0 + 0.005, 10),
                     key=lambda p: p.time)
    wrpcap(str(tmp_path / "in.pcap"), packets)
    answers = both(doc, LambdaSettings(), tmp_path / "in.pcap", tmp_path)
    assert_identical(answers)
    assert [name for name, _ in answers[1][0].parallel.components] == [
        "subnet-private-a+subnet-private-b+nat-a"]
    assert "1 component: replayed in one process" in answers[1][0].summary()


def test_a_connection_limit_reached_in_one_component_replays_the_coupled_ones_again_together(tmp_path):
    # AWS: "Lambda ... creates additional network interfaces as needed" when a Hyperplane ENI
    # runs out of connections: the overflow ENI takes an address of the subnet and an ENI id,
    # and counts under the per-VPC limit — state the other components see.
    doc = vpc(3, False, [[0], [1], [2]])
    limit = LambdaSettings(max_connections_per_eni=5)
    early = conversations(["172.16.2.10"], [("10.0.20.10", 5432)], T0, 4)           # AZ c, before
    busy = conversations(["172.16.0.10", "172.16.0.11"], [("93.184.216.34", 443)], T0 + 1, 12)  # AZ a: over
    late = conversations(["172.16.1.10"], [("198.51.100.7", 80)], T0 + 1.005, 12)   # AZ b, meanwhile
    wrpcap(str(tmp_path / "in.pcap"), sorted(early + busy + late, key=lambda p: p.time))
    answers = both(doc, limit, tmp_path / "in.pcap", tmp_path)
    assert_identical(answers)
    report = answers[1][0]
    assert any(e["overflow"] for e in report.hyperplane_enis)
    info = report.parallel
    # the busy AZ and the one with packets after its overflow are replayed together; AZ c had
    # finished before the limit was reached and keeps its first result
    assert info.merged == ["subnet-private-a+nat-a", "subnet-private-b+nat-b"]
    assert "subnet-private-a" in info.merged_because
    assert "replayed again together" in report.summary()


def test_an_environment_first_seen_as_a_destination_is_bound_to_the_subnet_one_process_binds_it_to(tmp_path):
    # fn0 over both AZs: an environment's subnet follows from its number, and environments are
    # numbered in order of first appearance, a packet's source before its destination. Here
    # 172.16.0.11 first appears as the destination of an unsolicited answer, before the others
    # send: the partition must number it first too, or a packet of AZ a is put in AZ b's
    # component and its NAT gateway port differs from one process's.
    doc = vpc(2, False, [[0, 1]])
    packets = [Ether() / IP(src="93.184.216.34", dst="172.16.0.11") / TCP(sport=443, dport=40000, flags="SA")]
    packets += [Ether() / IP(src=f"172.16.0.{host}", dst="93.184.216.34") / TCP(sport=40001 + k, dport=443, flags="S")
                for k, host in enumerate([10, 12, 13, 14] * 5)]
    for k, p in enumerate(packets):
        p.time = T0 + k * 0.01
    wrpcap(str(tmp_path / "in.pcap"), packets)
    answers = both(doc, LambdaSettings(), tmp_path / "in.pcap", tmp_path)
    assert_identical(answers)
    assert len(answers[1][0].parallel.components) == 2


def test_workers_must_be_a_positive_whole_number(tmp_path):
    wrpcap(str(tmp_path / "in.pcap"), conversations(["172.16.5.10"], [("10.0.21.10", 6379)], T0, 1))
    with pytest.raises(ValueError, match="workers must be a whole number >= 1, not 0"):
        hp.Network.example().replay(tmp_path / "in.pcap", functions={"orders": "172.16.5.0/24"}, workers=0)


def test_a_broken_capture_is_the_same_clear_error_with_workers(tmp_path):
    broken = tmp_path / "broken.pcap"
    broken.write_bytes(b"not a capture at all, just text")
    errors = []
    for workers in (1, 2):
        with pytest.raises(hp.HyperplaneError) as caught:
            hp.Network.example().replay(broken, functions={"orders": "172.16.5.0/24"}, workers=workers)
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "broken.pcap" in errors[0]


def test_the_network_is_left_as_it_was_by_a_parallel_replay(tmp_path):
    # the workers replay copies: the clock and the tables of the network passed in do not move
    wrpcap(str(tmp_path / "in.pcap"), conversations(["172.16.0.10"], [("93.184.216.34", 443)], T0, 3)
           + conversations(["172.16.1.10"], [("93.184.216.34", 443)], T0 + 100, 3))
    net = hp.Network(parse_topology(vpc(2, False, [[0], [1]])), ready=True)
    report = net.replay(tmp_path / "in.pcap", functions={"fn0": cidr(0), "fn1": cidr(1)}, workers=2)
    assert len(report.parallel.components) == 2
    assert net.now == 0.0 and all(e.connections == 0 for e in net.hyperplane_enis)


def test_vpcs_with_overlapping_addresses_are_one_component(tmp_path):
    doc = vpc(2, False, [[0], [1]])
    doc["vpcs"].append({"id": "vpc-twin", "cidr": "10.0.0.0/16"})  # the same addresses again
    doc["subnets"].append({"id": "subnet-twin", "vpc_id": "vpc-twin", "cidr": "10.0.10.0/24",
                           "availability_zone": "us-east-1a"})
    wrpcap(str(tmp_path / "in.pcap"), sorted(
        conversations(["172.16.0.10"], [("93.184.216.34", 443)], T0, 5)
        + conversations(["172.16.1.10"], [("93.184.216.34", 443)], T0 + 0.005, 5), key=lambda p: p.time))
    answers = both(doc, LambdaSettings(), tmp_path / "in.pcap", tmp_path)
    assert_identical(answers)
    assert len(answers[1][0].parallel.components) == 1


@st.composite
def inside_captures(draw):
    """A capture taken inside the VPC (``inject="eni"``): instances in the private subnets and a
    public web server, the internet answering the NAT gateways' and the server's addresses."""
    azs = draw(st.integers(1, 3))
    doc = vpc(azs, draw(st.booleans()), [])
    doc["security_groups"].append({"id": "sg-web", "vpc_id": "vpc-app",
                                   "ingress": [{"protocol": "tcp", "ports": 443, "cidr": "0.0.0.0/0"}]})
    doc["network_interfaces"].append({"id": "eni-web", "subnet_id": "subnet-public-a", "private_ip": "10.0.0.20",
                                      "public_ip": "203.0.113.20", "security_group_ids": ["sg-web"],
                                      "kind": "instance", "instance_id": "i-web"})
    for k in range(azs):
        doc["network_interfaces"].append({"id": f"eni-app-{k}", "subnet_id": f"subnet-private-{'abc'[k]}",
                                          "private_ip": f"10.0.{10 + k}.100", "security_group_ids": ["sg-app"],
                                          "kind": "instance", "instance_id": f"i-app{k}"})
    inside = [f"10.0.{10 + k}.100" for k in range(azs)] + ["10.0.0.20", "10.0.20.10"]
    outside = ["93.184.216.34", "198.51.100.7"] + [f"203.0.113.{10 + k}" for k in range(azs)] + ["203.0.113.20"]
    packets = []
    t = T0
    for _ in range(draw(st.integers(1, 40))):
        t += draw(st.sampled_from([0.0, 0.001, 0.5, 40.0]))
        src = draw(st.sampled_from(inside + outside))
        dst = draw(st.sampled_from(inside + outside))
        sport, dport = draw(st.sampled_from([443, 5432, 1024, 40000])), draw(st.sampled_from([443, 5432, 1024, 40000]))
        layer4 = TCP(sport=sport, dport=dport, flags=draw(st.sampled_from(["S", "SA", "A", "F"]))) \
            if draw(st.booleans()) else UDP(sport=sport, dport=dport)
        p = Ether() / IP(src=src, dst=dst) / layer4
        p.time = t
        packets.append(p)
    return doc, packets


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=inside_captures())
def test_a_capture_taken_inside_the_vpc_gives_the_same_files_on_two_workers(scenario, tmp_path):
    doc, packets = scenario
    wrpcap(str(tmp_path / "in.pcap"), packets)
    answers = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        out.mkdir(exist_ok=True)
        net = hp.Network(parse_topology(doc), ready=True)
        report = net.replay(tmp_path / "in.pcap", inject="eni", output=out / "out.pcap",
                            verdicts=out / "verdicts.csv", flow_logs=out / "logs", workers=workers)
        answers.append((report, outputs(out)))
    assert_identical(answers)


def replayed_twice(doc: dict, capture: Path, tmp: Path, functions: dict[str, str], prepare=None,
                   lambda_settings: LambdaSettings | None = None):
    """``capture`` replayed on one process and on two, ``prepare(net)`` run on each network first."""
    answers = []
    for workers in (1, 2):
        out = tmp / f"w{workers}"
        out.mkdir(exist_ok=True)
        net = hp.Network(parse_topology(doc), lambda_settings=lambda_settings or LambdaSettings(), ready=True)
        if prepare is not None:
            prepare(net)
        report = net.replay(capture, functions=functions, output=out / "out.pcap", verdicts=out / "verdicts.csv",
                            flow_logs=out / "logs", workers=workers)
        answers.append((report, outputs(out)))
    return answers


def test_a_function_whose_vpc_update_completes_during_the_capture_is_in_the_component_of_both_subnets(tmp_path):
    # AWS (Lambda developer guide, configuration-vpc): "During this time, Lambda connects function
    # invocations to the previous VPC. After the update is complete, new invocations start using
    # the new VPC". fn0 moves from AZ a to AZ b while the capture runs: its later connections share
    # nat-b's ports with fn1's, so the partition must not put fn0 in AZ a's component alone.
    doc = vpc(2, False, [[0], [1]])
    doc["security_groups"].append({"id": "sg-moved", "vpc_id": "vpc-app"})  # a new pool: the update waits for it
    packets = sorted(conversations(["172.16.0.10"], [("93.184.216.34", 443)], T0, 30)
                     + conversations(["172.16.1.10"], [("93.184.216.34", 443)], T0 + 0.005, 30), key=lambda p: p.time)
    for k, p in enumerate(packets):  # 60 s of traffic: the update (30 s of ENI creation) completes halfway
        p.time = T0 + k * 0.5
    wrpcap(str(tmp_path / "in.pcap"), packets)

    def update(net):
        net.update_function("fn0", vpc_config={"subnet_ids": ["subnet-private-b"],
                                               "security_group_ids": ["sg-moved"]})
        assert net.lambda_service.function("fn0").pending_vpc_config is not None

    answers = replayed_twice(doc, tmp_path / "in.pcap", tmp_path, {"fn0": cidr(0), "fn1": cidr(1)}, update,
                             LambdaSettings(eni_creation_seconds=30.0))
    assert_identical(answers)
    names = [name for name, _ in answers[1][0].parallel.components]
    assert not any("subnet-private-a" in n and "subnet-private-b" not in n for n in names), names


def test_a_published_version_in_another_subnet_is_partitioned_by_the_version_s_subnet(tmp_path):
    # AWS (PublishVersion): "Use versions to create a snapshot of your function code and
    # configuration that doesn't change." The capture is of fn0:1, frozen in AZ b while $LATEST
    # moved to AZ a: its packets share nat-b with fn1's, whatever $LATEST's subnet.
    doc = vpc(2, False, [[0], [1]])
    doc["functions"][0]["versions"] = [{"version": 1, "vpc_config": {
        "subnet_ids": ["subnet-private-b"], "security_group_ids": ["sg-app"]}}]
    wrpcap(str(tmp_path / "in.pcap"), sorted(
        conversations(["172.16.0.10", "172.16.0.11"], [("93.184.216.34", 443)], T0, 20)
        + conversations(["172.16.1.10"], [("93.184.216.34", 443)], T0 + 0.005, 20), key=lambda p: p.time))
    answers = replayed_twice(doc, tmp_path / "in.pcap", tmp_path, {"fn0:1": cidr(0), "fn1": cidr(1)})
    assert_identical(answers)
    assert [name for name, _ in answers[1][0].parallel.components] == ["subnet-private-b+nat-b"]


@pytest.mark.parametrize("output", ["out.pcap", "out.pcapng"])
def test_both_capture_formats_and_the_progress_are_those_of_one_process(tmp_path, output):
    # a pcap's records are cut from the workers' own files; a pcapng names its interfaces as
    # packets first use them, so the caller writes it: either way the same bytes
    doc = vpc(2, False, [[0], [1]])
    wrpcap(str(tmp_path / "in.pcap"), sorted(
        conversations(["172.16.0.10", "172.16.0.11"], [("93.184.216.34", 443), ("10.0.20.10", 5432)], T0, 30)
        + conversations(["172.16.1.10"], [("198.51.100.7", 80)], T0 + 0.005, 30), key=lambda p: p.time))
    files, seen = [], []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        out.mkdir()
        chunks: list[tuple[int, int]] = []
        report = hp.Network(parse_topology(doc), ready=True).replay(
            tmp_path / "in.pcap", functions={"fn0": cidr(0), "fn1": cidr(1)}, output=out / output,
            verdicts=out / "verdicts.jsonl", workers=workers, chunk_packets=16,
            progress=lambda chunk: chunks.append((chunk.index, len(chunk))))
        files.append(outputs(out))
        seen.append(chunks)
    assert len(report.parallel.components) == 2
    assert files[0] == files[1]
    assert seen[0] == seen[1] and sum(n for _, n in seen[0]) == report.packets == 120


def test_the_merge_s_byte_splicing_joins_ranges_in_order_and_refuses_a_range_outside_its_file():
    import numpy as np

    from hyperplane._core._splice import splice

    a, b = np.frombuffer(b"line 0\nline 2\n", np.uint8), np.frombuffer(b"line 1\nline 3\n", np.uint8)
    out = np.empty(28, np.uint8)
    assert splice([a, b], [0, 1, 0, 1], [0, 0, 7, 7], [7, 7, 14, 14], out) == 28
    assert out.tobytes() == b"line 0\nline 1\nline 2\nline 3\n"
    with pytest.raises(IndexError, match="range 1: bytes 7:15 of a source of 14"):
        splice([a, b], [0, 1], [0, 7], [7, 15], out)
    with pytest.raises(IndexError, match="range 0: source 2 of 2"):
        splice([a, b], [2], [0], [1], out)
    with pytest.raises(ValueError, match="the ranges hold 28 bytes, out only 10"):
        splice([a, b], [0, 1], [0, 0], [14, 14], np.empty(10, np.uint8))


def test_the_workers_write_the_merged_files_in_parts_as_the_caller_would_join_them(tmp_path):
    # each worker writes a share of the merged file at its final offset: any cut into parts gives
    # the caller's whole join, header (the first worker's) included
    import numpy as np

    from hyperplane.replay_parallel import _join, _join_part

    texts = {0: [b"index\n", b"a0\n", b"a11\n", b"a222\n"], 1: [b"index\n", b"b0\n", b"b1\n"]}
    files = []
    for k, lines in texts.items():
        (tmp_path / f"w{k}").write_bytes(b"".join(lines))
        files.append(str(tmp_path / f"w{k}"))
    owner = np.array([0, 1, 1, 0, 0], np.int32)  # capture order: a0 b0 b1 a11 a222
    size = np.array([3, 3, 3, 4, 5], np.int64)
    _join(files, [size[owner == 0], size[owner == 1]], owner, tmp_path / "joined")
    assert (tmp_path / "joined").read_bytes() == b"index\na0\nb0\nb1\na11\na222\n"
    for parts in (1, 2, 3, 7):
        merged = tmp_path / f"merged-{parts}"
        merged.write_bytes(b"left over from an earlier, longer file" * 3)
        merged.write_bytes(b"")
        for part in reversed(range(parts)):  # in any order: each part at its own offset
            _join_part(str(merged), files, size, owner, part, parts)
        assert merged.read_bytes() == (tmp_path / "joined").read_bytes(), parts
    # an output capture where no packet was delivered: the header alone
    for k in (0, 1):
        (tmp_path / f"w{k}").write_bytes(b"index\n")
    for part in range(2):
        _join_part(str(merged), files, np.zeros(5, np.int64), owner, part, 2)
    assert merged.read_bytes() == b"index\n"


def test_a_worker_that_fails_stops_the_others_waiting_for_it_and_its_error_is_the_one_raised(tmp_path, monkeypatch):
    import hyperplane.replay_parallel as parallel

    doc = vpc(2, False, [[0], [1]])
    write_two_functions_capture(tmp_path / "in.pcap")
    place = parallel._Placing.place

    def failing(self, k, mine, result):
        if k == 1:
            raise OSError(28, "No space left on device")
        return place(self, k, mine, result)

    monkeypatch.setattr(parallel._Placing, "place", failing)
    net = hp.Network(parse_topology(doc), ready=True)
    with pytest.raises(OSError, match="No space left on device"):
        net.replay(tmp_path / "in.pcap", functions={"fn0": "172.16.0.0/24", "fn1": "172.16.1.0/24"},
                   verdicts=tmp_path / "v.csv", workers=2)


def test_a_worker_killed_ends_the_replay_with_a_clear_error_instead_of_waiting_for_it(tmp_path, monkeypatch):
    import os
    import signal

    import hyperplane.replay_parallel as parallel

    doc = vpc(2, False, [[0], [1]])
    write_two_functions_capture(tmp_path / "in.pcap")
    place = parallel._Placing.place

    def killed(self, k, mine, result):  # as the kernel's out-of-memory killer would
        if k == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return place(self, k, mine, result)

    monkeypatch.setattr(parallel._Placing, "place", killed)
    net = hp.Network(parse_topology(doc), ready=True)
    with pytest.raises(ReplayError, match="a replay worker ended without a result"):
        net.replay(tmp_path / "in.pcap", functions={"fn0": "172.16.0.0/24", "fn1": "172.16.1.0/24"},
                   output=tmp_path / "out.pcap", workers=2)


def test_capture_addresses_that_share_their_low_16_bits_are_told_apart_by_the_partition(tmp_path):
    # the partition finds addresses again by their low 16 bits: 172.16.5.10 and 172.17.5.10
    # share them but are two functions' environments, in two AZs
    doc = vpc(2, False, [[0], [1]])
    packets = sorted(conversations(["172.16.5.10"], [("93.184.216.34", 443)], T0, 20)
                     + conversations(["172.17.5.10"], [("93.184.216.34", 443)], T0 + 0.005, 20),
                     key=lambda p: p.time)
    wrpcap(str(tmp_path / "in.pcap"), packets)
    files = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        out.mkdir()
        report = hp.Network(parse_topology(doc), ready=True).replay(
            tmp_path / "in.pcap", functions={"fn0": "172.16.5.0/24", "fn1": "172.17.5.0/24"},
            verdicts=out / "v.csv", output=out / "out.pcap", flow_logs=out / "logs", workers=workers)
        files.append(outputs(out))
    assert files[0] == files[1]
    assert sorted(report.parallel.components) == [("subnet-private-a+nat-a", 40), ("subnet-private-b+nat-b", 40)]
