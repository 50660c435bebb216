"""Replaying captures through the built-in example: verdicts, translated output, summary."""

import json

import pytest
from click.testing import CliRunner
from scapy.all import IP, TCP, UDP, Ether, IPv6, rdpcap, wrpcap

import hyperplane as hp
from hyperplane.cli import main
from hyperplane.formats.capture import CaptureError
from hyperplane.records import ip_str
from hyperplane.replay import replay

FUNCTION_ADDRESS = "172.16.5.10"  # what the capture, taken inside `orders`, shows as source
T0 = 1_700_000_000.0


def conversation(dst, dport, sport, t):
    """SYN out, SYN-ACK back, ACK out, as a capture inside the function shows them."""
    out = []
    for k, (src, dest, sp, dp, flags) in enumerate([
            (FUNCTION_ADDRESS, dst, sport, dport, "S"), (dst, FUNCTION_ADDRESS, dport, sport, "SA"),
            (FUNCTION_ADDRESS, dst, sport, dport, "A")]):
        p = Ether() / IP(src=src, dst=dest) / TCP(sport=sp, dport=dp, flags=flags)
        p.time = t + k * 0.01
        out.append(p)
    return out


@pytest.fixture
def capture(tmp_path):
    pkts = (conversation("10.0.21.10", 6379, 40000, T0) + conversation("10.0.20.10", 5432, 40001, T0 + 1)
            + conversation("93.184.216.34", 443, 40002, T0 + 2))
    ipv6 = Ether() / IPv6(dst="::1") / UDP()
    ipv6.time = T0 + 3
    path = tmp_path / "in.pcap"
    wrpcap(str(path), pkts + [ipv6])
    return path


def test_replay_gives_every_packet_one_verdict_from_the_function_side(capture, tmp_path):
    net = hp.Network.example()
    report = replay(net, capture, functions={"orders": "172.16.5.0/24"}, verdicts=tmp_path / "v.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert [v["index"] for v in lines] == list(range(10))
    reasons = [v["reason"] for v in lines]
    assert reasons == ["DELIVERED", "DELIVERED_TO_FUNCTION", "DELIVERED",  # the cache: all good
                       "DELIVERED", "NACL_OUT_DENY", "DELIVERED",  # the database's SYN-ACK dies in acl-data
                       "EXITED_TO_INTERNET", "DELIVERED_TO_FUNCTION", "EXITED_TO_INTERNET",  # via nat-a
                       "NOT_IPV4"]
    assert report.packets == 10 and report.kinds["IPV6"] == 1
    assert report.drops_by_rule["acl-data nacl-out rule *"] == 1
    # the SYN-ACK from the internet was addressed to the NAT gateway's Elastic IP and came back
    assert lines[6]["src"] == "203.0.113.10"


def test_replay_output_holds_the_delivered_packets_translated(capture, tmp_path):
    net = hp.Network.example()
    report = replay(net, capture, functions={"orders": "172.16.5.0/24"}, output=tmp_path / "out.pcap")
    out = rdpcap(str(tmp_path / "out.pcap"))
    assert len(out) == report.written == report.delivered == 8
    first = out[0][IP]
    eni = net.function("orders").hyperplane_enis[0]
    assert first.src in (eni.private_ip, net.function("orders").hyperplane_enis[1].private_ip)
    assert first.dst == "10.0.21.10"
    # checksums rewritten: scapy's own recomputation agrees
    rebuilt = IP(bytes(first))
    del rebuilt.chksum, rebuilt[TCP].chksum
    assert IP(bytes(rebuilt)).chksum == first.chksum and IP(bytes(rebuilt))[TCP].chksum == first[TCP].chksum


def test_replay_counts_hyperplane_eni_connections(capture):
    net = hp.Network.example()
    report = replay(net, capture, functions={"orders": "172.16.5.0/24"})
    used = [e for e in report.hyperplane_enis if e["created"]]
    assert sum(e["created"] for e in used) == 3  # cache, database, internet


def test_replay_from_inside_the_vpc_starts_at_the_source_eni(tmp_path):
    p = Ether() / IP(src="10.0.0.20", dst="10.0.20.10") / TCP(sport=50000, dport=5432, flags="S")
    p.time = T0
    wrpcap(str(tmp_path / "vpc.pcap"), [p])
    net = hp.Network.example()
    replay(net, tmp_path / "vpc.pcap", inject="eni", verdicts=tmp_path / "v.jsonl")
    verdict = json.loads((tmp_path / "v.jsonl").read_text())
    # eni-web is not in sg-app: the database's group refuses it
    assert verdict["reason"] == "SG_INGRESS_DENY" and verdict["resource"] == "eni-db"


def test_replay_of_a_broken_capture_names_the_file(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    with pytest.raises(CaptureError, match="bad.pcap"):
        replay(hp.Network.example(), bad)


def test_replay_command_prints_a_summary_and_refuses_bad_arguments(capture, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["replay", str(capture), "--function", "orders=172.16.5.0/24",
                              "--output", str(tmp_path / "o.pcap")])
    assert ok.exit_code == 0, ok.output
    assert "10 packets, 8 delivered" in ok.output
    tables = ok.output.split("by reason")[1]
    assert "DELIVERED_TO_FUNCTION" in tables and "acl-data nacl-out rule *" in tables and "Hyperplane ENIs" in tables
    bad = runner.invoke(main, ["replay", str(capture), "--function", "orders"])
    assert bad.exit_code == 2


def test_replay_writes_flow_logs_with_capture_timestamps(capture, tmp_path):
    from hyperplane.formats.flow_log_files import read_cloudwatch

    report = replay(hp.Network.example(), capture, functions={"orders": "172.16.5.0/24"},
                    flow_logs=tmp_path / "logs")
    db = read_cloudwatch(tmp_path / "logs" / "cloudwatch" / "vpc-flow-logs" / "eni-db-all")
    actions = {(r["srcaddr"], r["action"]) for r in db}
    assert ("10.0.20.10", "REJECT") in actions  # the SYN-ACK, refused by acl-data on its way out
    assert all(int(T0) <= int(r["start"]) <= int(r["end"]) <= int(T0) + 3 for r in db)
    assert report.flow_log_records >= len(db)


def test_capture_addresses_sharing_their_low_bits_stay_different_environments(tmp_path):
    """Two capture addresses of one function that differ only in their high bits (172.16.5.10
    and 172.17.5.10 under --function orders=172.16.0.0/15) are two execution environments: each
    answer goes back to its own."""
    pkts = []
    for k, (src, sport) in enumerate([("172.16.5.10", 41000), ("172.17.5.10", 41000)]):
        for j, (a, b, sp, dp, flags) in enumerate([(src, "10.0.21.10", sport, 6379, "S"),
                                                   ("10.0.21.10", src, 6379, sport, "SA")]):
            p = Ether() / IP(src=a, dst=b) / TCP(sport=sp, dport=dp, flags=flags)
            p.time = T0 + k + j * 0.01
            pkts.append(p)
    wrpcap(str(tmp_path / "in.pcap"), pkts)
    net = hp.Network.example()
    replay(net, tmp_path / "in.pcap", functions={"orders": "172.16.0.0/15"}, verdicts=tmp_path / "v.jsonl",
           output=tmp_path / "out.pcap")
    verdicts = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert [v["reason"] for v in verdicts] == ["DELIVERED", "DELIVERED_TO_FUNCTION"] * 2
    # each answer reached its own environment (the V2N connections are the two environments')
    # and is shown toward its own capture address
    envs = [net.function("orders").environment_address(k) for k in range(2)]
    inside = {ip_str(c["in_ip"]) for e in net.function("orders").hyperplane_enis
              for c in e.pool.table.connections()}
    assert inside == set(envs)
    assert [verdicts[k]["dst"] for k in (1, 3)] == ["172.16.5.10", "172.17.5.10"]
    assert [p[IP].dst for p in rdpcap(str(tmp_path / "out.pcap"))][1::2] == ["172.16.5.10", "172.17.5.10"]


def test_dns_answers_from_the_vpc_resolver_reach_the_environment_that_asked(tmp_path):
    query = Ether() / IP(src=FUNCTION_ADDRESS, dst="10.0.0.2") / UDP(sport=45000, dport=53)
    answer = Ether() / IP(src="10.0.0.2", dst=FUNCTION_ADDRESS) / UDP(sport=53, dport=45000)
    query.time, answer.time = T0, T0 + 0.001
    wrpcap(str(tmp_path / "in.pcap"), [query, answer])
    net = hp.Network.example()
    report = replay(net, tmp_path / "in.pcap", functions={"orders": "172.16.5.0/24"},
                    verdicts=tmp_path / "v.jsonl")
    verdicts = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert [v["reason"] for v in verdicts] == ["DELIVERED_TO_DNS_RESOLVER", "DELIVERED_TO_FUNCTION"]
    assert (verdicts[1]["dst"], verdicts[1]["dport"]) == (FUNCTION_ADDRESS, 45000)  # as the capture shows it
    assert report.delivered == 2


def test_demo_tells_the_scenarios_then_replays_a_generated_capture():
    out = CliRunner().invoke(main, ["demo"])
    assert out.exit_code == 0, out.output
    assert "orders -> PostgreSQL" in out.output and "NACL_OUT_DENY" in out.output
    replayed = out.output.split("== replay:")[1]
    assert "by reason:" in replayed and "DELIVERED_TO_FUNCTION" in replayed and "Hyperplane ENIs:" in replayed
    assert "flow log records of eni-db" in replayed and " REJECT OK" in replayed  # acl-data's refusals


def test_csv_and_json_lines_verdict_files_say_the_same(capture, tmp_path):
    import csv

    for suffix in ("jsonl", "csv"):
        replay(hp.Network.example(), capture, functions={"orders": "172.16.5.0/24"}, verdicts=tmp_path / f"v.{suffix}")
    as_json = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    with open(tmp_path / "v.csv", newline="") as f:
        as_csv = list(csv.DictReader(f))
    assert len(as_json) == len(as_csv) == 10
    # the same values: JSON's numbers and booleans are the CSV's text read as JSON
    numbers = {"index", "time", "sport", "dport", "proto", "capture_sport", "capture_dport", "picked_up"}
    assert as_json == [{k: json.loads(v) if k in numbers else v for k, v in row.items()} for row in as_csv]
    assert as_json[0] == {"index": 0, "time": T0, "disposition": "ACCEPTED", "reason": "DELIVERED",
                          "resource": "eni-cache", "src": "10.0.10.4", "sport": as_json[0]["sport"],
                          "dst": "10.0.21.10", "dport": 6379, "proto": 6, "capture_src": FUNCTION_ADDRESS,
                          "capture_sport": 40000, "capture_dst": "10.0.21.10", "capture_dport": 6379,
                          "decided_at": "sg-ingress", "decided_by": "sg-cache", "rule": "rule 0: tcp/6379 from sg-app",
                          "picked_up": False}
    assert as_json[-1]["resource"] == "" and as_json[-1]["reason"] == "NOT_IPV4"


def test_network_replay_is_the_spec_entry_point(capture, tmp_path):
    net = hp.Network.example()
    report = net.replay(capture, functions={"orders": "172.16.5.0/24"}, output=tmp_path / "out.pcap",
                        flow_logs=tmp_path / "logs")
    assert isinstance(report, hp.ReplayReport) and report.packets == 10 and report.written == report.delivered
    assert report.flow_log_records > 0 and any((tmp_path / "logs" / "s3").rglob("*.log.gz"))


def test_the_walk_runs_one_chunk_ahead_of_the_writing_and_keeps_order_errors_and_stops():
    # Engine.replay walks chunk k+1 on a second thread while chunk k is written
    from hyperplane.replay import ahead

    assert list(ahead(iter(range(50)))) == list(range(50))

    def broken():
        yield 1
        raise CaptureError("cap.pcap", 24, "truncated record")

    got = []
    with pytest.raises(CaptureError, match="cap.pcap"):
        for item in ahead(broken()):
            got.append(item)
    assert got == [1]  # what came before the error was handed over first

    produced = []

    def endless():
        k = 0
        while True:
            produced.append(k)
            yield k
            k += 1

    stream = ahead(endless())
    assert next(stream) == 0
    stream.close()  # the consumer stops: so does the producer (joined), at most two items later
    assert len(produced) <= 3


def test_a_replay_with_a_chunk_ahead_gives_what_a_serial_one_gives(capture, tmp_path, monkeypatch):
    import sys

    engine = sys.modules["hyperplane.replay"]
    outputs = []
    for mode in ("ahead", "serial"):
        if mode == "serial":
            monkeypatch.setattr(engine, "ahead", lambda items: items)
        verdicts = tmp_path / f"{mode}.jsonl"
        report = replay(hp.Network.example(), capture, functions={"orders": "172.16.5.0/24"},
                        output=tmp_path / f"{mode}.pcap", verdicts=verdicts, chunk_packets=2)
        outputs.append((verdicts.read_text(), (tmp_path / f"{mode}.pcap").read_bytes(), report.summary()))
    assert outputs[0] == outputs[1]
