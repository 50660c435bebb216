"""Replaying real captures (issue 16): connections picked up mid-stream, outputs in the
capture's addresses, verdict lines with the deciding hop, conversations counted, a replay
without functions taking the capture as taken inside the VPC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from scapy.all import IP, TCP, UDP, Ether, Raw, rdpcap, wrpcap

import hyperplane as hp
from hyperplane.cli import main
from hyperplane.dataplane.walk import Origin
from hyperplane.records import ACK, PSH, TCP as P_TCP, ip_str, packet
from hyperplane.tables.nat import STATE_NAMES, ConnectionTable, Direction, NatStatus, Timeouts
from hyperplane.scapy_adapter import to_record

T0 = 1_700_000_000.0
ORDERS = {"orders": "172.16.5.0/24"}
FUNCTION = "172.16.5.10"  # orders' execution environment, as the capture inside it saw itself
CACHE, WEB = "10.0.21.10", "93.184.216.34"
EXAMPLE = Path(hp.__file__).parent / "examples" / "example.yaml"


def tcp_session(client: str, server: str, sport: int, dport: int, t: float, request: bytes,
                answer: bytes) -> list:
    """A whole TCP session as tcpdump on the client shows it: handshake, a request, its answer,
    both FINs; sequence and acknowledgement numbers as a real stack sets them."""
    c, s = 1000, 5000
    steps = [(True, "S", b""), (False, "SA", b""), (True, "A", b""), (True, "PA", request),
             (False, "A", b""), (False, "PA", answer), (True, "A", b""), (True, "FA", b""),
             (False, "FA", b""), (True, "A", b"")]
    packets = []
    for k, (from_client, flags, data) in enumerate(steps):
        seq, ack = (c, s) if from_client else (s, c)
        src, dst, sp, dp = (client, server, sport, dport) if from_client else (server, client, dport, sport)
        p = Ether() / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq,
                                                 ack=ack if "A" in flags else 0)
        if data:
            p = p / Raw(data)
        p.time = t + k * 0.005
        packets.append(p)
        grow = len(data) + (1 if "S" in flags or "F" in flags else 0)
        if from_client:
            c += grow
        else:
            s += grow
    return packets


def interleaved(*sessions: list) -> list:
    return sorted((p for s in sessions for p in s), key=lambda p: float(p.time))


@pytest.fixture
def sessions() -> list[list]:
    """orders talking HTTP to the internet (through nat-a) and Redis to the cache."""
    return [tcp_session(FUNCTION, WEB, 41000, 80, T0, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            tcp_session(FUNCTION, CACHE, 41001, 6379, T0 + 0.002, b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n")]


@pytest.fixture
def full_capture(sessions) -> list:
    return interleaved(*sessions)


@pytest.fixture
def cut(sessions) -> list:
    """The capture as if tcpdump had been started just after both connections were opened."""
    return interleaved(*(s[3:] for s in sessions))


def verdicts_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def with_worker(tmp_path: Path) -> Path:
    """The example, plus an EC2 instance in a private subnet (behind nat-a), with a group that
    admits nothing and lets everything out."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["security_groups"].append({"id": "sg-worker", "vpc_id": "vpc-app", "name": "worker",
                                   "description": "batch worker"})
    doc["network_interfaces"].append({"id": "eni-worker", "subnet_id": "subnet-private-a", "private_ip": "10.0.10.30",
                                      "security_group_ids": ["sg-worker"], "kind": "instance",
                                      "instance_id": "i-0worker", "description": "batch worker"})
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


# -- mid-stream pickup ----------------------------------------------------------------------

def test_a_capture_cut_after_its_handshakes_delivers_its_connections_and_counts_them_picked_up(
        cut, tmp_path):
    # Linux conntrack, whose loose mode the pickup follows (nf_conntrack-sysctl documentation,
    # nf_conntrack_tcp_loose): "If it is set to zero, we disable picking up already established
    # connections."
    assert [p[TCP].flags for p in cut[:2]] == ["PA", "PA"] and len(cut) == 14  # no SYN left
    wrpcap(str(tmp_path / "cut.pcap"), cut)
    report = hp.Network.example().replay(tmp_path / "cut.pcap", functions=ORDERS, verdicts=tmp_path / "v.jsonl",
                                         output=tmp_path / "out.pcap")
    lines = verdicts_of(tmp_path / "v.jsonl")
    # every packet of both connections, the request, the answer and the teardown, gets through
    assert [v["reason"] for v in lines] == [
        "EXITED_TO_INTERNET" if v["capture_dst"] == WEB else "DELIVERED" if v["capture_dst"] == CACHE
        else "DELIVERED_TO_FUNCTION" for v in lines]
    assert report.delivered == report.written == 14
    assert report.conversations == {"established": 2, "unanswered": 0, "failed": 0}
    assert report.picked_up == 2
    # the first packet of each connection picked it up (at V2N, and at nat-a for the internet)
    assert [v["index"] for v in lines if v["picked_up"]] == [0, 1]
    assert "conversations: 2, 2 established (2 picked up mid-stream)" in report.summary()


def test_pickup_lasts_the_capture_first_idle_timeout_then_an_unknown_ack_is_a_dead_connection(tmp_path):
    # a connection open when the capture began and still alive sends within its idle timeout
    # (350 s established, V2N and NAT gateway alike): an unknown ACK after that belongs to a
    # connection that idled out. AWS (NAT gateway troubleshooting): "When a connection times out,
    # a NAT gateway returns an RST packet to any resources behind the NAT gateway that attempt to
    # continue the connection"; and V2N opens connections only from a SYN
    def ack(sport: int, t: float):
        p = Ether() / IP(src=FUNCTION, dst=CACHE) / TCP(sport=sport, dport=6379, flags="A")
        p.time = T0 + t
        return p

    wrpcap(str(tmp_path / "late.pcap"), [ack(41000, 0.0), ack(41000, 349.0), ack(41001, 349.5), ack(41002, 351.0)])
    hp.Network.example().replay(tmp_path / "late.pcap", functions=ORDERS, verdicts=tmp_path / "v.jsonl")
    lines = verdicts_of(tmp_path / "v.jsonl")
    assert [v["reason"] for v in lines] == ["DELIVERED"] * 3 + ["V2N_NO_CONNECTION"]
    assert [v["picked_up"] for v in lines] == [True, False, True, False]  # 41002 came after the window


def test_the_same_cut_capture_without_pickup_is_refused_as_fn_send_refuses_it(cut, tmp_path):
    wrpcap(str(tmp_path / "cut.pcap"), cut)
    report = hp.Network.example().replay(tmp_path / "cut.pcap", functions=ORDERS, pickup=False)
    assert report.delivered == 0 and report.picked_up == 0
    assert report.conversations == {"established": 0, "unanswered": 0, "failed": 2}
    assert report.failed_at["V2N_NO_CONNECTION " + hp.Network.example().pool_names()[0]] == 2
    # fn.send opens a TCP connection only with a SYN: its ACK is refused, pickup or not
    r = hp.Network.example().function("orders").send(IP(dst=CACHE) / TCP(sport=41001, dport=6379, flags="A"))
    assert r.reason == hp.Reason.V2N_NO_CONNECTION


def test_the_whole_capture_replays_alike_with_or_without_pickup(full_capture, tmp_path):
    # a capture that holds the handshakes has nothing to pick up: both modes give one answer
    wrpcap(str(tmp_path / "full.pcap"), full_capture)
    answers = []
    for pickup in (True, False):
        report = hp.Network.example().replay(tmp_path / "full.pcap", functions=ORDERS, pickup=pickup,
                                             verdicts=tmp_path / f"v{pickup}.jsonl")
        answers.append([(v["reason"], v["src"], v["dst"]) for v in verdicts_of(tmp_path / f"v{pickup}.jsonl")])
        assert report.delivered == 20 and report.picked_up == 0
        assert report.conversations == {"established": 2, "unanswered": 0, "failed": 0}
    assert answers[0] == answers[1]


def test_a_peer_packet_before_the_functions_first_one_is_still_refused(tmp_path):
    # the translation stays one way: only the function's side picks a connection up
    answer = Ether() / IP(src=CACHE, dst=FUNCTION) / TCP(sport=6379, dport=41001, flags="PA")
    ack = Ether() / IP(src=FUNCTION, dst=CACHE) / TCP(sport=41001, dport=6379, flags="A")
    again = Ether() / IP(src=CACHE, dst=FUNCTION) / TCP(sport=6379, dport=41001, flags="PA")
    for k, p in enumerate((answer, ack, again)):
        p.time = T0 + k * 0.01
    wrpcap(str(tmp_path / "in.pcap"), [answer, ack, again])
    report = hp.Network.example().replay(tmp_path / "in.pcap", functions=ORDERS, verdicts=tmp_path / "v.jsonl")
    assert [v["reason"] for v in verdicts_of(tmp_path / "v.jsonl")] == [
        "V2N_UNSOLICITED_INBOUND", "DELIVERED", "DELIVERED_TO_FUNCTION"]
    # delivered both ways in the end: one conversation, established, picked up
    assert report.conversations == {"established": 1, "unanswered": 0, "failed": 0} and report.picked_up == 1


def test_security_groups_track_a_picked_up_connection_as_established(tmp_path):
    # sg-cache has no outbound rule: the cache's answer, 200 s after the function's data, leaves
    # only because the flow is tracked as the established connection it is (a half-open flow
    # lives 120 s, as long as V2N keeps an opening connection; an established one, 350 s at V2N)
    data = Ether() / IP(src=FUNCTION, dst=CACHE) / TCP(sport=41001, dport=6379, flags="PA")
    answer = Ether() / IP(src=CACHE, dst=FUNCTION) / TCP(sport=6379, dport=41001, flags="PA")
    data.time, answer.time = T0, T0 + 200
    wrpcap(str(tmp_path / "in.pcap"), [data, answer])
    report = hp.Network.example().replay(tmp_path / "in.pcap", functions=ORDERS, verdicts=tmp_path / "v.jsonl")
    assert report.reasons == {"DELIVERED": 1, "DELIVERED_TO_FUNCTION": 1}
    assert report.conversations["established"] == 1 and report.picked_up == 1


@pytest.mark.parametrize("flags", ["F", "FA", "R", "RA", "SA", ""])
def test_only_an_ack_without_syn_fin_or_rst_picks_a_connection_up(flags):
    # nf_conntrack's loose mode picks up from an ACK; a FIN, an RST or a stray SYN-ACK of an
    # unknown connection stays invalid
    net = hp.Network.example()
    rec, _ = to_record(IP(dst=CACHE) / TCP(sport=41001, dport=6379, flags=flags), net.now)
    res = net.process(rec, Origin.FUNCTION, net.pool_index("orders"), pickup=True)
    assert hp.Reason(int(res.reason[0])) == hp.Reason.V2N_NO_CONNECTION
    rec["flags"] = 0x18  # PSH+ACK: data of a connection opened before
    res = net.process(rec, Origin.FUNCTION, net.pool_index("orders"), pickup=True)
    assert hp.Reason(int(res.reason[0])) == hp.Reason.DELIVERED


@pytest.mark.parametrize("make, strict", [
    (lambda: ConnectionTable.hyperplane_eni(["10.0.10.4"]), NatStatus.NO_CONNECTION),
    (lambda: ConnectionTable.nat_gateway(["10.0.0.10"]), NatStatus.RST_NO_CONNECTION)], ids=["v2n", "nat-gateway"])
def test_a_picked_up_connection_is_established_at_once(make, strict):
    # as if its handshake had been seen: the established idle timeout (350 s), and the answer
    # from the remote side is translated back
    table = make()
    rows = packet("10.0.10.30", WEB, 50000, 443, P_TCP, PSH | ACK, 10.0)
    assert NatStatus(table.process(rows, Direction.OUT).status[0]) == strict
    out = table.process(rows, Direction.OUT, pickup=True)
    assert NatStatus(out.status[0]) == NatStatus.CREATED
    (connection,) = table.connections()
    assert STATE_NAMES[connection["state"]] == "tcp-established"
    assert connection["expires"] == pytest.approx(10.0 + Timeouts().tcp_established)
    answer = packet(WEB, ip_str(out.packets[0]["src_ip"]), 443, int(out.packets[0]["src_port"]), P_TCP, ACK, 10.1)
    back = table.process(answer, Direction.IN)
    assert NatStatus(back.status[0]) == NatStatus.TRANSLATED
    assert (ip_str(back.packets[0]["dst_ip"]), back.packets[0]["dst_port"]) == ("10.0.10.30", 50000)


def test_a_nat_gateway_picks_up_a_connection_of_an_instance_consistently(tmp_path):
    # taken inside the VPC: an instance behind nat-a in the middle of a download
    net = hp.Network.load(with_worker(tmp_path))
    data = Ether() / IP(src="10.0.10.30", dst=WEB) / TCP(sport=50000, dport=443, flags="A")
    answer = Ether() / IP(src=WEB, dst="203.0.113.10") / TCP(sport=443, dport=0, flags="PA")
    data.time = T0
    wrpcap(str(tmp_path / "first.pcap"), [data])
    net.replay(tmp_path / "first.pcap", inject="eni", verdicts=tmp_path / "v1.jsonl")
    first = verdicts_of(tmp_path / "v1.jsonl")[0]
    assert (first["reason"], first["decided_by"], first["picked_up"]) == ("EXITED_TO_INTERNET", "igw-main", True)
    assert first["src"] == "203.0.113.10"
    # the internet's answer, to the port nat-a gave, comes back to the instance
    answer[TCP].dport = first["sport"]
    answer.time = T0 + 0.01
    wrpcap(str(tmp_path / "second.pcap"), [answer])
    net.replay(tmp_path / "second.pcap", inject="eni", verdicts=tmp_path / "v2.jsonl")
    second = verdicts_of(tmp_path / "v2.jsonl")[0]
    assert (second["reason"], second["dst"], second["dport"]) == ("DELIVERED", "10.0.10.30", 50000)
    # without pickup the gateway has no connection for it: AWS's NAT gateway answers with an RST
    strict = hp.Network.load(with_worker(tmp_path))
    strict.replay(tmp_path / "first.pcap", inject="eni", verdicts=tmp_path / "v3.jsonl", pickup=False)
    assert verdicts_of(tmp_path / "v3.jsonl")[0]["reason"] == "NAT_NO_CONNECTION_RST"


def test_the_command_line_turns_pickup_off(cut, tmp_path):
    wrpcap(str(tmp_path / "cut.pcap"), cut)
    on = CliRunner().invoke(main, ["replay", str(tmp_path / "cut.pcap"), "--function", "orders=172.16.5.0/24"])
    off = CliRunner().invoke(main, ["replay", str(tmp_path / "cut.pcap"), "--function", "orders=172.16.5.0/24",
                                    "--no-pickup"])
    assert on.exit_code == off.exit_code == 0, on.output + off.output
    assert "14 packets, 14 delivered" in on.output and "2 established (2 picked up mid-stream)" in on.output
    assert "14 packets, 0 delivered" in off.output and "2 failed" in off.output


def test_picked_up_connections_replay_alike_on_several_processes(cut, tmp_path):
    wrpcap(str(tmp_path / "cut.pcap"), cut)
    results = []
    for workers in (1, 2):
        report = hp.Network.example().replay(tmp_path / "cut.pcap", functions=ORDERS, workers=workers,
                                             verdicts=tmp_path / f"v{workers}.jsonl")
        results.append(((tmp_path / f"v{workers}.jsonl").read_text(), report.conversations, report.picked_up))
    assert results[0] == results[1]


# -- the capture's addresses ----------------------------------------------------------------

def test_a_reply_delivered_to_the_function_goes_to_its_capture_address(full_capture, tmp_path):
    wrpcap(str(tmp_path / "full.pcap"), full_capture)
    net = hp.Network.example()
    net.replay(tmp_path / "full.pcap", functions=ORDERS, verdicts=tmp_path / "v.jsonl", output=tmp_path / "out.pcap")
    lines = verdicts_of(tmp_path / "v.jsonl")
    replies = [v for v in lines if v["reason"] == "DELIVERED_TO_FUNCTION"]
    assert len(replies) == 8 and {(v["dst"], v["capture_dst"]) for v in replies} == {(FUNCTION, FUNCTION)}
    environment = net.function("orders").environment_address(0)
    written = rdpcap(str(tmp_path / "out.pcap"))
    assert len(written) == 20
    assert environment not in {a for p in written for a in (p[IP].src, p[IP].dst)}
    assert {p[IP].dst for p in written if p[IP].src in (CACHE, WEB)} == {FUNCTION}


def test_a_packet_refused_before_the_hyperplane_eni_keeps_its_capture_source(tmp_path):
    # a cold function is Pending: its packets never get a Hyperplane ENI's address
    p = Ether() / IP(src=FUNCTION, dst=CACHE) / TCP(sport=41000, dport=6379, flags="S")
    p.time = T0
    wrpcap(str(tmp_path / "in.pcap"), [p])
    hp.Network.example(ready=False).replay(tmp_path / "in.pcap", functions=ORDERS, verdicts=tmp_path / "v.jsonl")
    line = verdicts_of(tmp_path / "v.jsonl")[0]
    assert (line["reason"], line["src"], line["sport"]) == ("FUNCTION_PENDING", FUNCTION, 41000)
    # Lambda decided, before any network: the function is what refused it
    assert (line["decided_at"], line["decided_by"]) == ("invoke", "function:orders")
    assert line["rule"] == hp.Reason.FUNCTION_PENDING.text


# -- the verdict file -----------------------------------------------------------------------

def test_each_verdict_has_the_capture_time_both_5_tuples_and_the_deciding_rule(tmp_path):
    syn = Ether() / IP(src=FUNCTION, dst="10.0.20.10") / TCP(sport=41000, dport=5432, flags="S")
    synack = Ether() / IP(src="10.0.20.10", dst=FUNCTION) / TCP(sport=5432, dport=41000, flags="SA")
    query = Ether() / IP(src=FUNCTION, dst="10.0.0.20") / TCP(sport=41002, dport=80, flags="S")
    syn.time, synack.time, query.time = T0 + 0.123456, T0 + 0.2, T0 + 0.3
    wrpcap(str(tmp_path / "in.pcap"), [syn, synack, query])
    hp.Network.example().replay(tmp_path / "in.pcap", functions=ORDERS, verdicts=tmp_path / "v.csv")
    hp.Network.example().replay(tmp_path / "in.pcap", functions=ORDERS, verdicts=tmp_path / "v.jsonl")
    first, second, third = verdicts_of(tmp_path / "v.jsonl")
    eni = hp.Network.example().function("orders").hyperplane_enis[0].private_ip
    assert first["time"] == pytest.approx(T0 + 0.123456, abs=1e-6)
    assert (first["capture_src"], first["capture_sport"], first["capture_dst"], first["capture_dport"]) == (
        FUNCTION, 41000, "10.0.20.10", 5432)
    assert (first["src"], first["dst"], first["dport"]) == (eni, "10.0.20.10", 5432) and first["sport"] >= 1024
    assert (first["decided_at"], first["decided_by"], first["rule"]) == (
        "sg-ingress", "sg-db", "rule 0: tcp/5432 from sg-app")
    # the database's answer dies in its subnet's NACL: rule * of acl-data
    assert (second["reason"], second["decided_at"], second["decided_by"]) == ("NACL_OUT_DENY", "nacl-out", "acl-data")
    assert second["rule"].startswith("rule *")
    # port 80 of the web server: sg-web admits 443 and SSH from the office only
    assert (third["reason"], third["decided_at"], third["decided_by"]) == ("SG_INGRESS_DENY", "sg-ingress", "sg-web")
    assert third["rule"] == "no rule of sg-web matches"
    csv_lines = (tmp_path / "v.csv").read_text().splitlines()
    assert csv_lines[0].split(",")[:2] == ["index", "time"]
    assert csv_lines[1].split(",")[1] == "1700000000.123456000"


# -- conversations --------------------------------------------------------------------------

def test_a_denied_syn_whose_syn_ack_gets_out_is_one_failed_conversation(tmp_path):
    # taken inside the VPC: a worker opens port 80 of the web server, whose group admits only
    # 443 and SSH from the office; the server's SYN-ACK still leaves it and the worker's group
    # lets it in (its SYN is a tracked flow there)
    net = hp.Network.load(with_worker(tmp_path))
    syn = Ether() / IP(src="10.0.10.30", dst="10.0.0.20") / TCP(sport=50000, dport=80, flags="S")
    synack = Ether() / IP(src="10.0.0.20", dst="10.0.10.30") / TCP(sport=80, dport=50000, flags="SA")
    syn.time, synack.time = T0, T0 + 0.001
    wrpcap(str(tmp_path / "in.pcap"), [syn, synack])
    report = net.replay(tmp_path / "in.pcap", inject="eni")
    assert report.reasons == {"SG_INGRESS_DENY": 1, "DELIVERED": 1}  # by packets: half of it "delivered"
    assert report.conversations == {"established": 0, "unanswered": 0, "failed": 1}
    assert report.failed_at == {"SG_INGRESS_DENY sg-web": 1}
    assert "failed at SG_INGRESS_DENY sg-web" in report.summary()


def test_an_unanswered_conversation_is_neither_established_nor_failed(tmp_path):
    query = Ether() / IP(src=FUNCTION, dst=WEB) / UDP(sport=41003, dport=123)
    query.time = T0
    wrpcap(str(tmp_path / "in.pcap"), [query])
    report = hp.Network.example().replay(tmp_path / "in.pcap", functions=ORDERS)
    assert report.reasons == {"EXITED_TO_INTERNET": 1}
    assert report.conversations == {"established": 0, "unanswered": 1, "failed": 0}


def test_a_conversation_retried_after_a_refusal_counts_as_established(tmp_path):
    # the first SYN finds the function Pending (60 s); the retry a minute later goes through
    packets = []
    for k, (t, src, dst, sp, dp, flags) in enumerate([
            (0, FUNCTION, CACHE, 41000, 6379, "S"), (61, FUNCTION, CACHE, 41000, 6379, "S"),
            (61.01, CACHE, FUNCTION, 6379, 41000, "SA")]):
        p = Ether() / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags)
        p.time = T0 + t
        packets.append(p)
    wrpcap(str(tmp_path / "in.pcap"), packets)
    report = hp.Network.example(ready=False).replay(tmp_path / "in.pcap", functions=ORDERS)
    assert report.reasons == {"FUNCTION_PENDING": 1, "DELIVERED": 1, "DELIVERED_TO_FUNCTION": 1}
    assert report.conversations == {"established": 1, "unanswered": 0, "failed": 0}


# -- without functions ----------------------------------------------------------------------

def test_a_replay_without_functions_says_it_takes_the_capture_as_taken_inside_the_vpc(tmp_path):
    p = Ether() / IP(src="10.0.0.20", dst=CACHE) / TCP(sport=50000, dport=6379, flags="S")
    p.time = T0
    wrpcap(str(tmp_path / "in.pcap"), [p])
    report = hp.Network.example().replay(tmp_path / "in.pcap")
    assert report.notes and "(--inject eni)" in report.notes[0]
    assert report.summary().splitlines()[0] == report.notes[0]
    assert report.reasons == {"SG_INGRESS_DENY": 1}  # started at eni-web, as --inject eni does
    out = CliRunner().invoke(main, ["replay", str(tmp_path / "in.pcap")])
    assert out.exit_code == 0 and "taken inside the VPC (--inject eni)" in out.output
    given = CliRunner().invoke(main, ["replay", str(tmp_path / "in.pcap"), "--inject", "eni"])
    assert "--inject eni)" not in given.output  # asked for: nothing to say
