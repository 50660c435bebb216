"""One truth: a capture replayed gives what sending its packets one by one gives, whatever the
chunk size — verdicts, output capture and flow logs; ``fn.send`` and replay agree on every
invocation outcome (issue 9, items 3-5 and 7)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.all import IP, TCP, UDP, Ether, rdpcap, wrpcap

import hyperplane as hp
from hyperplane.dataplane.flow_logs import FlowLogAggregator
from hyperplane.functions import LambdaSettings
from hyperplane.dataplane.inputs import function_rows
from hyperplane.dataplane.walk import Origin
from hyperplane.replay import pickup_window
from hyperplane.scapy_adapter import to_record

T0 = 1_700_000_000.0
# what the captures, taken inside the functions, show as their addresses
CIDRS = {"orders": "172.16.5.0/24", "report": "172.16.6.0/24", "thumbnail": "172.16.7.0/24"}
PEERS = [("10.0.20.10", 5432), ("10.0.21.10", 6379), ("93.184.216.34", 443), ("10.0.99.9", 80)]


def capture_address(function: str, k: int) -> str:
    return CIDRS[function].replace("0/24", str(10 + k))


def write(path: Path, packets: list) -> Path:
    wrpcap(str(path), packets)
    return path


def replayed(net: hp.Network, capture: Path, tmp_path: Path, tag: str, **options) -> tuple[list, list, list]:
    """(verdict lines, output packets as bytes and times, flow log records) of one replay."""
    verdicts, output, logs = tmp_path / f"{tag}.jsonl", tmp_path / f"{tag}.pcap", tmp_path / f"logs-{tag}"
    net.replay(capture, functions=CIDRS, verdicts=verdicts, output=output, flow_logs=logs, **options)
    lines = [json.loads(line) for line in verdicts.read_text().splitlines()]
    written = [(bytes(p), float(p.time)) for p in rdpcap(str(output))] if output.stat().st_size > 24 else []
    records = sorted((str(p.relative_to(logs)), gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes())
                     for p in logs.rglob("*") if p.is_file())
    return lines, written, records


def one_by_one(net: hp.Network, packets: list, pickup: bool = False) -> tuple[list[str], list[str]]:
    """Each packet sent on its own at its own time, as a test script would: (reasons, flow log
    lines of the sends). ``pickup``: a function's packet is walked alone as a batch of one with
    mid-stream pickup (``fn.send`` never picks up), during the replay's pickup window."""
    logs = FlowLogAggregator(interval=600)
    environments: dict[str, dict[str, int]] = {name: {} for name in CIDRS}
    reasons = []
    start = float(packets[0].time) - net.now  # a replay's first packet happens at the network's now
    pickup_until = net.now + pickup_window(net) if pickup else -np.inf
    for pkt in packets:
        net.advance(max(0.0, float(pkt.time) - start - net.now))
        ip = pkt[IP]
        sender = next((n for n, c in CIDRS.items() if ip.src.startswith(c[:-4])), None)
        receiver = next((n for n, c in CIDRS.items() if ip.dst.startswith(c[:-4])), None)
        if sender is not None:
            k = environments[sender].setdefault(ip.src, len(environments[sender]))
            sent = ip.copy()
            del sent.src
            if net.now < pickup_until:
                rec, _ = to_record(sent, net.now)
                rows = function_rows(net, rec, [sender], [k], np.zeros(1, np.intp), np.array([net.now]))
                if rows.verdict[0]:
                    reasons.append(hp.Reason(int(rows.verdict[0])).name)
                else:
                    res = net.process(rec, rows.origin, rows.index, pickup=True)
                    reasons.append(hp.Reason(int(res.reason[0])).name)
                    logs.add(res)
                continue
            r = net.function(sender).send(sent, environment=k)
            reasons.append(r.reason.name)
            if r.batch is not None:
                logs.add(r)
        else:  # a peer's answer to an execution environment
            k = environments[receiver].setdefault(ip.dst, len(environments[receiver]))
            answer = ip.copy()
            answer.dst = net.function(receiver).environment_address(k)
            rec, _ = to_record(answer, net.now)
            res = net.process(rec, Origin.REPLY_TO_FUNCTION, net.function_number(receiver))
            reasons.append(hp.Reason(int(res.reason[0])).name)
            logs.add(res)
    return reasons, [str(r) for r in logs.records()]


def syn(src: str, dst: str, dport: int, sport: int, t: float, flags: str = "S"):
    p = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)
    p.time = t
    return p


# -- item 3: the Lambda clock moves with every packet, not once per chunk -------------------

def test_a_pending_function_becomes_active_in_the_middle_of_a_chunk(tmp_path):
    # AWS: "A function is in the Pending state while Lambda creates the resources" (60 s here),
    # so of 200 SYNs one second apart, the first 60 are refused and the others go through.
    packets = [syn(capture_address("orders", 0), "10.0.20.10", 5432, 40000 + k, T0 + k) for k in range(200)]
    capture = write(tmp_path / "in.pcap", packets)
    for chunk in (65536, 10, 1):
        lines, _, _ = replayed(hp.Network.example(ready=False), capture, tmp_path, f"c{chunk}",
                               chunk_packets=chunk)
        reasons = [v["reason"] for v in lines]
        assert reasons == ["FUNCTION_PENDING"] * 60 + ["DELIVERED"] * 140, chunk
    assert one_by_one(hp.Network.example(ready=False), packets)[0] == reasons


def test_an_idle_function_is_restored_at_its_first_packet_whatever_the_chunking(tmp_path):
    # idle for longer than the reclaim period: the first invocation fails and starts restoring
    settings_ = LambdaSettings(idle_reclaim_seconds=100.0, eni_creation_seconds=5.0)
    packets = [syn(capture_address("orders", 0), "93.184.216.34", 443, 40000 + k, T0 + t)
               for k, t in enumerate([0, 1, 150, 151, 152, 156, 157])]
    capture = write(tmp_path / "in.pcap", packets)
    expected = one_by_one(hp.Network.example(lambda_settings=settings_), packets)[0]
    assert expected == ["EXITED_TO_INTERNET"] * 2 + ["FUNCTION_INACTIVE", "FUNCTION_PENDING", "FUNCTION_PENDING",
                                                      "EXITED_TO_INTERNET", "EXITED_TO_INTERNET"]
    for chunk in (65536, 4, 2, 1):
        lines, _, _ = replayed(hp.Network.example(lambda_settings=settings_), capture, tmp_path, f"c{chunk}",
                               chunk_packets=chunk)
        assert [v["reason"] for v in lines] == expected, chunk


def test_an_overflow_eni_is_ready_at_the_time_of_the_packet_that_needed_it_whatever_the_chunking(tmp_path):
    # a Hyperplane ENI carries 20 connections here: the SYN that finds its pool's ENI full makes
    # Lambda add an overflow ENI, ready 0.45 s later; that SYN and those of the pool before then
    # are refused, later ones go through it. The ENI used to be created at the Lambda clock,
    # which a replay first moves to the last environment's invocation in the segment, so the
    # refusals depended on where chunks ended (found by the parallel-replay benchmark)
    settings_ = LambdaSettings(max_connections_per_eni=20, overflow_eni_creation_seconds=0.45)
    packets = [syn(capture_address("orders", k % 5), "10.0.20.10", 5432, 40000 + k, T0 + 0.1 * k) for k in range(80)]
    capture = write(tmp_path / "in.pcap", packets)
    expected = one_by_one(hp.Network.example(lambda_settings=settings_), packets)[0]
    assert set(expected) == {"DELIVERED", "ENI_CAPACITY"} and expected[:30] == ["DELIVERED"] * 30
    for chunk in (65536, 7, 3, 1):
        lines, _, _ = replayed(hp.Network.example(lambda_settings=settings_), capture, tmp_path, f"c{chunk}",
                               chunk_packets=chunk)
        assert [v["reason"] for v in lines] == expected, chunk


# -- item 5: verdicts are named against the compilation that walked them --------------------

def test_verdicts_name_the_hyperplane_eni_of_their_own_time_when_enis_are_reclaimed_mid_chunk(tmp_path):
    # two bursts 15 days apart: in between, the 14-day idle reclaim deletes every Hyperplane ENI
    # and the next invocations create new ones; each verdict names the ENI that carried it
    packets = []
    for day in (0, 15):
        for n, name in enumerate(("orders", "report")):
            for k in range(3):
                t = T0 + day * 86400 + n + k * 0.1
                packets.append(syn(capture_address(name, 0), "10.0.21.10", 6379, 41000 + 10 * n + k, t))
    packets.append(syn(capture_address("orders", 0), "10.0.21.10", 6379, 42000, T0 + 15 * 86400 + 120))
    capture = write(tmp_path / "in.pcap", packets)
    results = []
    for chunk in (65536, 5, 1):
        lines, _, _ = replayed(hp.Network.example(), capture, tmp_path, f"c{chunk}", chunk_packets=chunk)
        results.append([(v["reason"], v["resource"], v["src"]) for v in lines])
    assert results[0] == results[1] == results[2]
    reasons = [r for r, _, _ in results[0]]
    assert reasons[:6] == ["DELIVERED"] * 6
    assert reasons[6:12] == ["FUNCTION_INACTIVE"] + ["FUNCTION_PENDING"] * 2 + ["FUNCTION_INACTIVE"] + ["FUNCTION_PENDING"] * 2
    assert reasons[-1] == "DELIVERED"  # restored 60 s later
    # every delivered SYN names the cache's ENI, in every compilation
    assert {resource for reason, resource, _ in results[0] if reason == "DELIVERED"} == {"eni-cache"}


# -- item 4: send and replay agree on every invocation outcome ------------------------------

@pytest.mark.parametrize("dst, dport", PEERS + [("192.0.2.10", 80)])
@pytest.mark.parametrize("function", ["orders", "report", "thumbnail"])
def test_send_and_replay_agree_for_every_function_and_destination(function, dst, dport, tmp_path):
    packets = [syn(capture_address(function, 0), dst, dport, 40000, T0),
               syn(capture_address(function, 1), dst, dport, 40001, T0 + 1)]
    capture = write(tmp_path / "in.pcap", packets)
    for ready in (True, False):
        sent = one_by_one(hp.Network.example(ready=ready), packets)[0]
        lines, _, _ = replayed(hp.Network.example(ready=ready), capture, tmp_path, f"r{ready}")
        assert [v["reason"] for v in lines] == sent
    if function == "thumbnail":  # no VpcConfig: private addresses are out of reach
        assert sent[0] == ("NO_VPC_ACCESS" if dst.startswith("10.") else "EXITED_TO_INTERNET")


def test_a_failed_function_is_refused_alike_by_send_and_replay(tmp_path):
    settings_ = LambdaSettings(max_enis_per_vpc=1)  # the second pool cannot be created
    packets = [syn(capture_address(name, 0), "10.0.21.10", 6379, 40000 + n, T0 + n)
               for n, name in enumerate(("orders", "report"))]
    capture = write(tmp_path / "in.pcap", packets)
    sent = one_by_one(hp.Network.example(lambda_settings=settings_), packets)[0]
    lines, _, _ = replayed(hp.Network.example(lambda_settings=settings_), capture, tmp_path, "f")
    assert [v["reason"] for v in lines] == sent
    assert "FUNCTION_FAILED" in sent


def test_a_function_without_vpc_config_leaves_from_lambdas_own_address_in_replay_too(tmp_path):
    packets = [syn(capture_address("thumbnail", 0), "93.184.216.34", 443, 40000, T0)]
    lines, written, _ = replayed(hp.Network.example(), write(tmp_path / "in.pcap", packets), tmp_path, "t")
    assert lines[0]["reason"] == "EXITED_TO_INTERNET" and lines[0]["src"] == hp.network.LAMBDA_SERVICE_PUBLIC_IP
    assert IP(written[0][0][14:]).src == hp.network.LAMBDA_SERVICE_PUBLIC_IP


# -- item 7: as many execution environments as the capture holds ----------------------------

def test_a_capture_with_more_than_254_environments_of_one_function_replays(tmp_path):
    packets = [syn(f"172.16.{5 + k // 250}.{1 + k % 250}", "10.0.21.10", 6379, 40000, T0 + k * 0.001)
               for k in range(600)]
    capture = write(tmp_path / "in.pcap", packets)
    net = hp.Network.example()
    report = net.replay(capture, functions={"orders": "172.16.0.0/16"}, verdicts=tmp_path / "v.jsonl")
    assert report.reasons == {"DELIVERED": 600}


def test_more_environments_than_the_environment_network_holds_is_a_clear_error(tmp_path):
    packets = [syn(f"172.16.5.{1 + k}", "10.0.21.10", 6379, 40000, T0 + k * 0.001) for k in range(200)]
    capture = write(tmp_path / "in.pcap", packets)
    net = hp.Network.example(lambda_settings=LambdaSettings(execution_environment_network="169.254.0.0/22"))
    net.replay(capture, functions={"orders": "172.16.5.0/24"})  # 200 fit in orders' first /24
    more = write(tmp_path / "more.pcap", [syn(f"172.16.{6 + k // 250}.{1 + k % 250}", "10.0.21.10", 6379,
                                              40000, T0 + 1 + k * 0.001) for k in range(600)])
    with pytest.raises(hp.errors.ReplayError, match=r"more.pcap: packets #0-#599: capture address "
                                                     r"172.16.8.9 \(--function orders=172.16.0.0/16\): orders: "
                                                     r"no room for execution environment 508"):
        net.replay(more, functions={"orders": "172.16.0.0/16"})


# -- the property: chunking never changes an answer ------------------------------------------

@st.composite
def captures(draw):
    """Conversations of the three functions with the example's peers, with replies, over a
    span that crosses lifecycle events (creation, idle reclaim with a short period)."""
    packets = []
    t = T0
    for _ in range(draw(st.integers(1, 25))):
        t += draw(st.sampled_from([0.0, 0.001, 0.5, 3.0, 40.0, 130.0]))
        function = draw(st.sampled_from(sorted(CIDRS)))
        env = capture_address(function, draw(st.integers(0, 2)))
        dst, dport = draw(st.sampled_from(PEERS))
        sport = draw(st.integers(40000, 40003))
        if draw(st.booleans()):
            p = Ether() / IP(src=env, dst=dst) / TCP(sport=sport, dport=dport, flags=draw(st.sampled_from("SAF")))
        else:
            p = Ether() / IP(src=env, dst=dst) / UDP(sport=sport, dport=dport)
        p.time = t
        packets.append(p)
        if draw(st.booleans()):  # the peer answers
            layer4 = TCP(sport=dport, dport=sport, flags="SA") if TCP in p else UDP(sport=dport, dport=sport)
            answer = Ether() / IP(src=dst, dst=env) / layer4
            t += draw(st.sampled_from([0.0, 0.01]))
            answer.time = t
            packets.append(answer)
    return packets


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(packets=captures(), ready=st.booleans())
def test_replay_equals_sending_one_by_one_whatever_the_chunk_size(packets, ready, tmp_path):
    # fn.send opens TCP only by a SYN: the replay it equals is the one without mid-stream pickup
    lambda_settings = LambdaSettings(idle_reclaim_seconds=200.0, eni_creation_seconds=30.0)
    capture = write(tmp_path / "in.pcap", packets)
    expected, _ = one_by_one(hp.Network.example(ready=ready, lambda_settings=lambda_settings), packets)
    answers = []
    for chunk in (65536, 3, 1):
        net = hp.Network.example(ready=ready, lambda_settings=lambda_settings)
        lines, written, records = replayed(net, capture, tmp_path, f"c{chunk}", chunk_packets=chunk, pickup=False)
        assert [v["reason"] for v in lines] == expected, chunk
        answers.append((lines, written, records))
    assert answers[0] == answers[1] == answers[2]
    assert np.all([len(a[0]) == len(packets) for a in answers])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(packets=captures(), ready=st.booleans())
def test_a_replay_with_mid_stream_pickup_gives_one_answer_whatever_the_chunk_size(packets, ready, tmp_path):
    # the same captures replayed as replay does by default (ACKs pick up their connections):
    # verdicts, output capture, flow logs and the counts of the report agree for every chunk size,
    # and each packet's verdict is the one walking it alone, in order, with pickup gives
    lambda_settings = LambdaSettings(idle_reclaim_seconds=200.0, eni_creation_seconds=30.0)
    capture = write(tmp_path / "in.pcap", packets)
    expected, _ = one_by_one(hp.Network.example(ready=ready, lambda_settings=lambda_settings), packets, pickup=True)
    answers = []
    for chunk in (65536, 3, 1):
        net = hp.Network.example(ready=ready, lambda_settings=lambda_settings)
        lines, written, records = replayed(net, capture, tmp_path, f"c{chunk}", chunk_packets=chunk)
        assert [v["reason"] for v in lines] == expected, chunk
        net = hp.Network.example(ready=ready, lambda_settings=lambda_settings)
        report = net.replay(capture, functions=CIDRS, chunk_packets=chunk)  # the report's counts
        answers.append((lines, written, records))
        counts = (report.reasons, report.conversations, report.picked_up, report.failed_at)
        if chunk == 65536:
            first_counts = counts
        assert counts == first_counts, chunk
    assert answers[0] == answers[1] == answers[2]
    picked = [v["index"] for v in answers[0][0] if v["picked_up"]]
    for k in picked:  # only an ACK without SYN, FIN or RST picks a connection up
        assert packets[k][TCP].flags == "A", k


def test_a_capture_that_begins_mid_stream_replays_alike_whatever_the_chunk_size(tmp_path):
    # three environments of orders in the middle of their conversations with the cache, the
    # database and the internet (no SYN in the capture): picked up in every chunking alike
    packets, t = [], T0
    for k in range(3):
        for dst, dport in PEERS[:3]:
            for sent in range(2):
                t += 0.01
                packets.append(syn(capture_address("orders", k), dst, dport, 41000 + k, t, flags="PA"))
                t += 0.01
                answer = Ether() / IP(src=dst, dst=capture_address("orders", k)) / TCP(
                    sport=dport, dport=41000 + k, flags="PA")
                answer.time = t
                packets.append(answer)
    capture = write(tmp_path / "in.pcap", packets)
    answers = []
    for chunk in (65536, 7, 1):
        net = hp.Network.example()
        lines, written, records = replayed(net, capture, tmp_path, f"c{chunk}", chunk_packets=chunk)
        report = hp.Network.example().replay(capture, functions=CIDRS, chunk_packets=chunk)
        answers.append((lines, written, records, report.conversations, report.picked_up))
    assert answers[0] == answers[1] == answers[2]
    lines, _, _, conversations, picked_up = answers[0]
    # the cache and the internet answer; the database's answers die in acl-data (rule *): nine
    # connections picked up, six of them established
    assert conversations == {"established": 6, "unanswered": 0, "failed": 3} and picked_up == 6
    assert [v["index"] for v in lines if v["picked_up"]] == [12 * k + 4 * j for k in range(3) for j in range(3)]


def test_environments_are_numbered_in_order_of_first_appearance_replies_included(tmp_path):
    # an answer to an address never seen sending comes first: that address is environment 0
    packets = [syn("10.0.21.10", capture_address("orders", 1), 40000, 6379, T0, flags="SA"),
               syn(capture_address("orders", 0), "10.0.21.10", 6379, 40001, T0 + 1)]
    capture = write(tmp_path / "in.pcap", packets)
    expected = one_by_one(hp.Network.example(), packets)[0]
    net = hp.Network.example()
    lines, _, _ = replayed(net, capture, tmp_path, "r")
    assert [v["reason"] for v in lines] == expected == ["V2N_UNSOLICITED_INBOUND", "DELIVERED"]
    # the verdict speaks the capture's address; the SYN's connection is environment 1's
    assert lines[0]["dst"] == capture_address("orders", 1)
    connections = [c for e in net.function("orders").hyperplane_enis for c in e.pool.table.connections()]
    assert [hp.records.ip_str(c["in_ip"]) for c in connections] == [net.function("orders").environment_address(1)]
