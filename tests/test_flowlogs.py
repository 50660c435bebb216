"""VPC flow logs of the built-in example: records per ENI, parsed back from the sink files and
checked against the packets that were sent (AWS "Flow log records" semantics)."""

from __future__ import annotations

import functools
import gzip
import ipaddress
import re
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP as ScapyTCP

import hyperplane as hp
from hyperplane._core._records import RecordTable
from hyperplane.dataplane.flow_logs import FlowLogAggregator
from hyperplane.formats import flow_log_files as flowlogs
from hyperplane.formats.flow_log_files import (
    DEFAULT_FORMAT,
    FlowLogError,
    FlowLogFormat,
    FlowLogFormatError,
    read_cloudwatch,
    read_s3,
    write_cloudwatch,
    write_s3,
)
from hyperplane.dataplane.walk import Origin
from hyperplane.records import ACK, FIN, ICMP, PSH, RST, SYN, TCP, UDP, ip, ip_str, packet, packets
from hyperplane.dataplane.compiled_vpc import EniKind, Target

DB, CACHE, WEB = "10.0.20.10", "10.0.21.10", "10.0.0.20"
WIDE = FlowLogFormat(
    "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} "
    "${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${vpc-id} ${subnet-id} ${instance-id} "
    "${tcp-flags} ${type} ${pkt-srcaddr} ${pkt-dstaddr} ${region} ${az-id} ${pkt-src-aws-service} "
    "${pkt-dst-aws-service} ${flow-direction} ${traffic-path}")


class Lab:
    """The example network, the function `orders` and a flow log aggregator fed by batches."""

    def __init__(self, interval: int = 600) -> None:
        self.net = hp.Network.example()
        self.fn = self.net.function("orders")
        self.env = self.fn.environment_address(0)
        invocation = self.net.lambda_service.invoke("orders", self.env, now=self.net.now)
        self.net.compiled  # noqa: B018 -- compiles, so the pools are numbered
        self.pool = next(k for k, p in enumerate(self.net._pools) if p is invocation.pool)
        self.hp_eni = next(e for e in self.net.compiled.enis
                           if e.kind == EniKind.HYPERPLANE and e.ref.pool is invocation.pool)
        self.flow_logs = FlowLogAggregator(interval=interval)

    def run(self, rows: np.ndarray, origin: int, index: int = -1) -> hp.BatchResult:
        result = self.net.process(rows, origin, index)
        self.flow_logs.add(result, self.net.compiled)
        return result

    def from_function(self, dst: str, dport: int, sport: int = 40000, flags: int = SYN, time: float = 0.0,
                      proto: int = TCP, length: int = 60) -> hp.BatchResult:
        return self.run(packet(self.env, dst, sport, dport, proto, flags, time, length), Origin.FUNCTION, self.pool)

    def reply(self, sent: hp.BatchResult, flags: int, time: float, origin: int | None = None,
              eni: str | None = None, length: int = 60) -> hp.BatchResult:
        """The answer to the first row of ``sent``, from where it was delivered."""
        p = sent.packets[0]
        rec = packet(int(p["dst_ip"]), int(p["src_ip"]), int(p["dst_port"]), int(p["src_port"]),
                     int(p["proto"]), flags, time, length)
        if origin is None:
            origin, index = Origin.ENI, int(sent.location[0])
        else:
            index = self.net.compiled.eni_index[eni] if eni else -1
        return self.run(rec, origin, index)

    def lines(self, tmp_path, fmt: FlowLogFormat = WIDE) -> list[dict[str, str]]:
        """Every record, written as CloudWatch log streams and parsed back."""
        out = []
        for stream in write_cloudwatch(tmp_path / "cw", self.flow_logs.records(), fmt=fmt):
            out += read_cloudwatch(stream, fmt)
        return out


def only(lines, **match) -> dict[str, str]:
    """The one parsed record whose fields equal ``match`` (underscores for dashes)."""
    want = {k.replace("_", "-"): str(v) for k, v in match.items()}
    hits = [r for r in lines if all(r[k] == v for k, v in want.items())]
    assert len(hits) == 1, f"{len(hits)} records match {want}: {lines}"
    return hits[0]


# -- what each ENI sees ----------------------------------------------------------------------

def test_delivered_syn_is_accepted_at_the_hyperplane_eni_and_the_database_eni(tmp_path):
    lab = Lab()
    sent = lab.from_function(DB, 5432, time=12.5)
    assert sent.reason[0] == hp.Reason.DELIVERED
    wire = sent.packets[0]  # as the database sees it: from the Hyperplane ENI, translated port
    lines = lab.lines(tmp_path)
    assert len(lines) == 2
    out = only(lines, interface_id=lab.hp_eni.id)
    assert out["flow-direction"] == "egress" and out["action"] == "ACCEPT"
    assert out["srcaddr"] == ip_str(lab.hp_eni.ip) == ip_str(wire["src_ip"])
    assert (out["dstaddr"], out["dstport"], out["srcport"]) == (DB, "5432", str(wire["src_port"]))
    assert out["pkt-srcaddr"] == lab.env  # the execution environment, before V2N
    assert out["pkt-dstaddr"] == DB
    assert (out["traffic-path"], out["tcp-flags"], out["protocol"]) == ("1", "2", "6")
    assert (out["packets"], out["bytes"], out["start"], out["end"]) == ("1", "60", "12", "12")
    assert out["subnet-id"] == lab.hp_eni.ref.subnet_id and out["vpc-id"] == "vpc-app"
    assert out["instance-id"] == "-" and out["account-id"] == "123456789012" and out["version"] == "5"
    into = only(lines, interface_id="eni-db")
    assert into["flow-direction"] == "ingress" and into["action"] == "ACCEPT"
    assert (into["srcaddr"], into["srcport"], into["dstaddr"]) == (ip_str(wire["src_ip"]), str(wire["src_port"]), DB)
    assert into["pkt-srcaddr"] == into["srcaddr"] and into["pkt-dstaddr"] == DB
    assert into["traffic-path"] == "-" and into["subnet-id"] == "subnet-data-a"


def test_syn_ack_refused_by_acl_data_is_rejected_at_the_database_eni_on_its_way_out(tmp_path):
    lab = Lab()
    sent = lab.from_function(DB, 5432, time=1)
    answer = lab.reply(sent, SYN | ACK, time=2)
    assert answer.reason[0] == hp.Reason.NACL_OUT_DENY
    lines = lab.lines(tmp_path)
    rejected = only(lines, interface_id="eni-db", flow_direction="egress")
    assert rejected["action"] == "REJECT" and rejected["tcp-flags"] == "18"
    assert (rejected["srcaddr"], rejected["srcport"]) == (DB, "5432")
    assert (rejected["dstaddr"], rejected["dstport"]) == (ip_str(lab.hp_eni.ip), str(sent.packets[0]["src_port"]))
    # the SYN-ACK never left the data subnet: nothing at the Hyperplane ENI's ingress
    assert not [r for r in lines if r["interface-id"] == lab.hp_eni.id and r["flow-direction"] == "ingress"]
    assert only(lines, interface_id="eni-db", flow_direction="ingress")["action"] == "ACCEPT"


def test_nacl_in_refusal_is_rejected_at_the_eni_whose_subnet_refused_it(tmp_path):
    lab = Lab()
    assert lab.from_function(DB, 22).reason[0] == hp.Reason.NACL_IN_DENY  # acl-data admits 5432 only
    lines = lab.lines(tmp_path)
    assert only(lines, interface_id="eni-db")["action"] == "REJECT"
    assert only(lines, interface_id="eni-db")["flow-direction"] == "ingress"
    assert only(lines, interface_id=lab.hp_eni.id)["action"] == "ACCEPT"  # it did leave the function


def test_security_group_refusals_are_rejected_at_the_eni_that_refused(tmp_path):
    lab = Lab()
    refused = lab.run(packet("198.51.100.7", "203.0.113.20", 5555, 80, TCP, SYN, 3), Origin.INTERNET)
    assert refused.reason[0] == hp.Reason.SG_INGRESS_DENY  # sg-web admits 443 and office SSH only
    welcome = lab.run(packet("198.51.100.7", "203.0.113.20", 5556, 443, TCP, SYN, 4), Origin.INTERNET)
    assert welcome.reason[0] == hp.Reason.DELIVERED
    lines = lab.lines(tmp_path)
    no = only(lines, interface_id="eni-web", dstport=80)
    yes = only(lines, interface_id="eni-web", dstport=443)
    assert (no["action"], yes["action"]) == ("REJECT", "ACCEPT")
    assert no["dstaddr"] == WEB and no["pkt-dstaddr"] == WEB  # the private address, after the IGW
    assert no["srcaddr"] == "198.51.100.7" and no["instance-id"] == "i-0web"


def test_nat_gateway_eni_logs_its_own_address_and_the_packet_addresses(tmp_path):
    """AWS's "Traffic through a NAT gateway" example, with a function behind it."""
    lab = Lab()
    out = lab.from_function("8.8.8.8", 443, sport=40001, time=7)
    assert out.reason[0] == hp.Reason.EXITED_TO_INTERNET
    back = lab.reply(out, SYN | ACK, time=8, origin=Origin.INTERNET)
    assert back.reason[0] == hp.Reason.DELIVERED_TO_FUNCTION
    nat_ip, hp_ip = "10.0.0.10", ip_str(lab.hp_eni.ip)
    nat_port = str(out.packets[0]["src_port"])  # the NAT gateway's port (kept by the IGW)
    lines = lab.lines(tmp_path)
    nat = [r for r in lines if r["interface-id"] == "eni-nat-a"]
    assert len(nat) == 4
    assert all(r["instance-id"] == "-" and r["subnet-id"] == "subnet-public-a" for r in nat)
    # the function's packet arriving: addressed (dstaddr) to the NAT, really (pkt) to 8.8.8.8
    came = only(nat, flow_direction="ingress", srcaddr=hp_ip)
    assert (came["dstaddr"], came["pkt-srcaddr"], came["pkt-dstaddr"]) == (nat_ip, hp_ip, "8.8.8.8")
    # translated, leaving for the internet gateway
    left = only(nat, flow_direction="egress", dstaddr="8.8.8.8")
    assert (left["srcaddr"], left["pkt-srcaddr"], left["srcport"]) == (nat_ip, nat_ip, nat_port)
    assert left["traffic-path"] == "2"
    # the answer arriving from the internet (the IGW mapped the Elastic IP back)
    answer = only(nat, flow_direction="ingress", srcaddr="8.8.8.8")
    assert (answer["dstaddr"], answer["pkt-dstaddr"], answer["dstport"]) == (nat_ip, nat_ip, nat_port)
    # and leaving for the Hyperplane ENI: srcaddr is the NAT, pkt-srcaddr the real source
    onward = only(nat, flow_direction="egress", dstaddr=hp_ip)
    assert (onward["srcaddr"], onward["pkt-srcaddr"], onward["tcp-flags"]) == (nat_ip, "8.8.8.8", "18")
    # the Hyperplane ENI: pkt-dstaddr of the answer is the execution environment, after V2N
    home = only(lines, interface_id=lab.hp_eni.id, flow_direction="ingress")
    assert (home["srcaddr"], home["dstaddr"], home["pkt-dstaddr"]) == ("8.8.8.8", hp_ip, lab.env)


def test_gateway_endpoint_traffic_has_traffic_path_2_and_names_the_service(tmp_path):
    lab = Lab()
    assert lab.from_function("52.216.8.1", 443).reason[0] == hp.Reason.DELIVERED_TO_GATEWAY_ENDPOINT
    (line,) = lab.lines(tmp_path)
    assert (line["traffic-path"], line["pkt-dst-aws-service"], line["pkt-src-aws-service"]) == ("2", "S3", "-")
    assert line["region"] == "us-east-1" and line["az-id"] == "-"


def test_dns_queries_to_the_resolver_are_not_logged():
    lab = Lab()
    dns = lab.from_function("10.0.0.2", 53, proto=UDP, flags=0)  # the VPC base + 2
    assert dns.reason[0] == hp.Reason.DELIVERED_TO_DNS_RESOLVER
    assert lab.flow_logs.records() == []


def test_icmp_records_carry_ports_zero(tmp_path):
    lab = Lab()
    ping = packet("198.51.100.7", "203.0.113.20", 77, 0, ICMP, 8, 5, 84)
    assert lab.run(ping, Origin.INTERNET).reason[0] == hp.Reason.DELIVERED
    pong = packet(WEB, "198.51.100.7", 0, 77, ICMP, 0, 6, 84)
    assert lab.run(pong, Origin.ENI, lab.net.compiled.eni_index["eni-web"]).reason[0] == hp.Reason.EXITED_TO_INTERNET
    lines = lab.lines(tmp_path)
    assert {(r["flow-direction"], r["srcport"], r["dstport"], r["protocol"], r["tcp-flags"]) for r in lines} == {
        ("ingress", "0", "0", "1", "0"), ("egress", "0", "0", "1", "0")}


# -- aggregation -----------------------------------------------------------------------------

def test_tcp_flags_are_ored_over_the_window_and_ack_counts_only_with_syn(tmp_path):
    lab = Lab()
    syn = lab.from_function(CACHE, 6379, sport=41000, flags=SYN, time=1)
    lab.reply(syn, SYN | ACK, time=1.5)
    lab.from_function(CACHE, 6379, sport=41000, flags=ACK, time=2)
    lab.from_function(CACHE, 6379, sport=41000, flags=PSH | ACK, time=3)
    lab.reply(syn, PSH | ACK, time=3.5)
    lab.from_function(CACHE, 6379, sport=41000, flags=FIN | ACK, time=4)
    lab.reply(syn, FIN | ACK, time=4.5)
    lines = lab.lines(tmp_path)
    client = only(lines, interface_id=lab.hp_eni.id, flow_direction="egress")
    server = only(lines, interface_id="eni-cache", flow_direction="egress")
    assert (client["tcp-flags"], client["packets"], client["bytes"]) == ("3", "4", "240")  # SYN | FIN
    assert (client["start"], client["end"]) == ("1", "4")
    assert (server["tcp-flags"], server["packets"]) == ("19", "3")  # SYN-ACK | FIN
    assert only(lines, interface_id=lab.hp_eni.id, flow_direction="ingress")["tcp-flags"] == "19"
    lab2 = Lab()
    web = lab2.net.compiled.eni_index["eni-web"]
    for sport, flags in ((41001, ACK), (41002, RST | ACK), (41003, PSH | ACK | FIN)):
        lab2.run(packet(WEB, "198.51.100.7", sport, 443, TCP, flags, 1), Origin.ENI, web)
    got = {r["srcport"]: r["tcp-flags"] for r in lab2.lines(tmp_path / "2")}
    assert got == {"41001": "0", "41002": "4", "41003": "1"}  # ACK and PSH are not reported


@pytest.mark.parametrize("interval, records", [(60, 2), (600, 1)])
def test_a_flow_splits_into_windows_of_the_aggregation_interval(tmp_path, interval, records):
    lab = Lab(interval=interval)
    first = lab.from_function(CACHE, 6379, sport=42000, flags=SYN, time=50)
    lab.reply(first, SYN | ACK, time=50.2)
    lab.from_function(CACHE, 6379, sport=42000, flags=ACK, time=70.9)
    mine = [r for r in lab.lines(tmp_path) if r["interface-id"] == lab.hp_eni.id and r["flow-direction"] == "egress"]
    assert len(mine) == records
    assert sum(int(r["packets"]) for r in mine) == 2
    assert min(r["start"] for r in mine) == "50" and max(r["end"] for r in mine) == "70"
    if records == 2:
        assert [(r["start"], r["end"], r["tcp-flags"]) for r in mine] == [("50", "50", "2"), ("70", "70", "0")]


def test_batches_of_one_flow_merge_into_one_record_and_a_bad_interval_is_refused(tmp_path):
    lab = Lab()
    for k in range(5):
        lab.from_function(DB, 5432, sport=43000, flags=SYN if k == 0 else ACK, time=100 + k, length=100)
    assert len(lab.flow_logs) == 2  # Hyperplane ENI egress, database ingress
    line = only(lab.lines(tmp_path), interface_id="eni-db")
    assert (line["packets"], line["bytes"], line["start"], line["end"]) == ("5", "500", "100", "104")
    with pytest.raises(FlowLogError, match="interval"):
        FlowLogAggregator(interval=0)


def test_a_result_without_its_batch_is_a_clear_error_and_one_with_it_is_logged():
    lab = Lab()
    result = lab.fn.send(IP(dst=DB) / ScapyTCP(dport=5432, flags="S"))
    if getattr(result, "batch", None) is None:
        with pytest.raises(FlowLogError, match="BatchResult"):
            FlowLogAggregator().add(result)
    batch = lab.net.process(packet(lab.env, DB, 44000, 5432, TCP, SYN, 1), Origin.FUNCTION, lab.pool)
    carrier = SimpleNamespace(batch=batch, vpc=lab.net.compiled)  # what a Result would carry
    agg = FlowLogAggregator()
    assert agg.add(carrier) == 2 and len(agg.records()) == 2
    anonymous = hp.BatchResult(batch.packets, batch.reason, batch.location, batch.facts)  # no .vpc
    with pytest.raises(FlowLogError, match="CompiledVpc"):
        agg.add(anonymous)
    batch.packets["time"][0] = -5.0  # not something the pipeline lets through: a doctored result
    with pytest.raises(FlowLogError, match=r"row 0: time -5\.0 \(with the offset\) is not"):
        agg.add(batch, lab.net.compiled)


# -- formats and sinks -----------------------------------------------------------------------

def test_default_format_is_version_2_in_aws_order():
    assert DEFAULT_FORMAT.fields == ("version", "account-id", "interface-id", "srcaddr", "dstaddr", "srcport",
                                     "dstport", "protocol", "packets", "bytes", "start", "end", "action",
                                     "log-status")
    assert DEFAULT_FORMAT.version == 2
    assert DEFAULT_FORMAT.spec.startswith("${version} ${account-id} ${interface-id}")


def test_custom_format_takes_the_highest_version_of_its_fields():
    assert FlowLogFormat("${srcaddr} ${dstaddr}").version == 2
    assert FlowLogFormat("${vpc-id} ${tcp-flags}").version == 3
    assert FlowLogFormat("${region} ${srcaddr}").version == 4
    assert FlowLogFormat("${flow-direction}").version == 5
    assert FlowLogFormat("${interface-id} ${ecs-task-id}").version == 7


def test_custom_format_with_an_unknown_field_names_the_field():
    typo = r"field 2: unknown field 'pkt-srcadr' \(did you mean 'pkt-srcaddr'\?\)"
    with pytest.raises(FlowLogFormatError, match=typo):
        FlowLogFormat("${srcaddr} ${pkt-srcadr}")
    with pytest.raises(FlowLogFormatError, match=r"token 1 'srcaddr': expected \$\{field\}"):
        FlowLogFormat("srcaddr ${dstaddr}")
    with pytest.raises(FlowLogFormatError, match="at least one field"):
        FlowLogFormat("")


def test_default_format_lines_match_aws_example_shape():
    lab = Lab()
    lab.from_function(DB, 5432, time=1418530010)
    for line in lab.flow_logs.records():
        text = DEFAULT_FORMAT.format(line)
        assert re.fullmatch(r"2 123456789012 eni-[0-9a-z-]+ (\d+\.){3}\d+ (\d+\.){3}\d+ \d+ \d+ 6 1 60 "
                            r"1418530010 1418530010 ACCEPT OK", text), text
        assert DEFAULT_FORMAT.lines([line]) == [text]


def test_cloudwatch_sink_writes_one_stream_per_eni(tmp_path):
    lab = Lab()
    lab.from_function(DB, 5432, time=1)
    lab.from_function("8.8.8.8", 443, time=2)
    streams = write_cloudwatch(tmp_path, lab.flow_logs.records(), log_group="vpc/app")
    names = sorted(p.name for p in streams)
    assert names == sorted(f"{e}-all" for e in {"eni-db", "eni-nat-a", lab.hp_eni.id})
    assert {p.parent for p in streams} == {tmp_path / "vpc" / "app"}
    hp_stream = next(p for p in streams if p.name.startswith(lab.hp_eni.id))
    lines = hp_stream.read_text().splitlines()
    assert len(lines) == 2 and all(line.split()[2] == lab.hp_eni.id for line in lines)
    assert [r["dstaddr"] for r in read_cloudwatch(hp_stream)] == [DB, "8.8.8.8"]  # in time order


def test_s3_sink_uses_aws_key_layout_and_a_gzip_header_line(tmp_path):
    lab = Lab()
    t0 = 1529511300  # 2018-06-20 16:15:00 UTC
    lab.from_function(DB, 5432, time=t0 + 1)  # delivered in the 16:20 file
    lab.from_function(DB, 5432, sport=40002, time=t0 + 301)  # in the 16:25 file
    fmt = FlowLogFormat("${version} ${interface-id} ${srcaddr} ${pkt-srcaddr} ${action} ${start}")
    files = write_s3(tmp_path, lab.flow_logs.records(), "123456789012", "us-east-1", "fl-1234abcd", fmt=fmt)
    keys = sorted(str(p.relative_to(tmp_path)) for p in files)
    assert len(keys) == 2
    pattern = (r"AWSLogs/123456789012/vpcflowlogs/us-east-1/2018/06/20/"
               r"123456789012_vpcflowlogs_us-east-1_fl-1234abcd_20180620T(\d{4})Z_([0-9a-f]{8})\.log\.gz")
    stamps = [re.fullmatch(pattern, k).group(1) for k in keys]
    assert stamps == ["1620", "1625"]
    raw = gzip.decompress(files[0].read_bytes()).decode().splitlines()
    assert raw[0] == "version interface-id srcaddr pkt-srcaddr action start"
    records = read_s3(files[0])
    assert len(records) == 2 and {r["version"] for r in records} == {"3"}
    assert {r["pkt-srcaddr"] for r in records} == {lab.env, ip_str(lab.hp_eni.ip)}
    assert {r["start"] for r in records} == {str(t0 + 1)}
    again = write_s3(tmp_path / "again", lab.flow_logs.records(), "123456789012", "us-east-1", "fl-1234abcd", fmt=fmt)
    assert [p.name for p in again] == [p.name for p in files]  # the hash is the content's


def test_aggregator_writes_the_same_files_as_the_record_sinks(tmp_path):
    """``FlowLogAggregator.write`` formats in compiled code; it must write byte for byte what
    ``write_cloudwatch`` / ``write_s3`` write from ``records()``, for every field."""
    lab = Lab()
    t0 = 1529511300
    sent = lab.from_function(DB, 5432, time=t0 + 1)
    lab.reply(sent, SYN | ACK, t0 + 2)
    lab.from_function("8.8.8.8", 443, time=t0 + 3)  # through the NAT gateway
    lab.from_function("52.216.8.1", 443, time=t0 + 301)  # S3, through the gateway endpoint
    lab.from_function(CACHE, 6379, proto=UDP, time=t0 + 302)  # refused somewhere on the way
    lab.run(packet("198.51.100.9", "10.0.0.20", 5555, 22, TCP, SYN, t0 + 303), Origin.INTERNET)
    fmt = FlowLogFormat(list(flowlogs.FIELDS))
    files = lab.flow_logs.write(tmp_path / "fast", fmt, log_group="vpc/app", flow_log_id="fl-1234abcd")
    records = lab.flow_logs.records()
    assert len(records) >= 6
    slow_cw = write_cloudwatch(tmp_path / "slow" / "cloudwatch", records, "vpc/app", fmt)
    slow_s3 = write_s3(tmp_path / "slow" / "s3", records, lab.flow_logs.account_id, lab.flow_logs.region,
                       "fl-1234abcd", fmt)
    for fast, slow in ((files["cloudwatch"], slow_cw), (files["s3"], slow_s3)):
        assert [p.relative_to(tmp_path / "fast") for p in fast] == [p.relative_to(tmp_path / "slow") for p in slow]
        assert [p.read_bytes() for p in fast] == [p.read_bytes() for p in slow]


def test_reading_a_file_that_is_not_a_flow_log_names_it(tmp_path):
    bogus = tmp_path / "x.log.gz"
    bogus.write_bytes(b"not gzip")
    with pytest.raises(FlowLogError, match="x.log.gz: not a flow log file"):
        read_s3(bogus)


# -- the vectorized aggregation against a row-by-row reference -------------------------------

def unlogged_by_aws(vpc, eni: int, src: int, dst: int, proto: int, sport: int, dport: int) -> bool:
    """AWS "Flow log limitations": link-local addresses, the first four addresses of a subnet of
    the ENI's VPC, DHCP."""
    topo = vpc.topology
    vpc_id = topo.subnets[vpc.subnet_ids[vpc.enis[eni].subnet]].vpc_id
    reserved = {int(s.cidr.network_address) + k for s in topo.subnets.values() if s.vpc_id == vpc_id
                for k in range(4)}
    link_local = ipaddress.ip_network("169.254.0.0/16")
    return (any(ipaddress.ip_address(a) in link_local for a in (src, dst)) or src in reserved or dst in reserved
            or (proto == UDP and {sport, dport} == {67, 68}))


def reference(batch: hp.BatchResult, vpc, interval: int) -> dict[tuple, list]:
    """Flow log records computed row by row from ``Facts.of(row)``: walk each row's stages
    backwards from the delivered packet, undoing translations, and log each ENI crossing."""
    acc: dict[tuple, list] = {}
    eni_ip = {e.index: e.ip for e in vpc.enis}
    for row in range(len(batch.packets)):
        p = batch.packets[row]
        facts = batch.facts.of(row)
        env_src = next((f["src_ip"] for s, f in facts if s == "v2n_out"), 0)
        src, sport, dst, dport = int(p["src_ip"]), int(p["src_port"]), int(p["dst_ip"]), int(p["dst_port"])
        proto, t = int(p["proto"]), float(p["time"])
        egress_verdict, path, env_dst = "ACCEPT", 0, 0
        seen = []
        for stage, f in reversed(facts):
            if stage == "sg_ingress":
                seen.append((f["eni"], "ingress", "ACCEPT" if f["allowed"] else "REJECT", src, sport, dst, dport,
                             env_dst, 0))
            elif stage == "sg_egress":
                verdict = "ACCEPT" if f["allowed"] and egress_verdict == "ACCEPT" else "REJECT"
                if egress_verdict != "SKIP":
                    seen.append((f["eni"], "egress", verdict, src, sport, dst, dport, env_src,
                                 path if f["allowed"] else 0))
                egress_verdict, path = "ACCEPT", 0
            elif stage == "nacl_out":
                egress_verdict = "ACCEPT" if f["allowed"] else "REJECT"
            elif stage == "dns":
                egress_verdict = "SKIP"
            elif stage == "route":
                path = {Target.LOCAL: 1, Target.ENI: 1, Target.NAT: 1, Target.IGW: 2,
                        Target.GATEWAY_ENDPOINT: 2, Target.PEERING: 4}.get(f["target"], 0)
            elif stage == "nacl_in" and not f["allowed"]:
                seen.append((int(batch.location[row]), "ingress", "REJECT", src, sport, dst, dport, 0, 0))
            elif stage in ("nat_out", "nat_in"):
                src, sport, dst, dport = f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"]
                seen.append((int(vpc.nat_eni[f["nat"]]), "ingress", "ACCEPT", src, sport, dst, dport, 0, 0))
            elif stage == "v2n_in":
                env_dst = f["to_ip"] if f["status"] < 16 else 0
                dst, dport = f["dst_ip"], f["dst_port"]
            elif stage == "v2n_out":
                src, sport = f["src_ip"], f["src_port"]
            elif stage == "igw_out":
                src = f["private_ip"]
            elif stage == "igw_in":
                dst = f["public_ip"]
        for eni, direction, action, s, sp, d, dp, env, path_ in seen:
            if unlogged_by_aws(vpc, eni, s, d, proto, sp, dp):
                continue
            hyperplane = vpc.enis[eni].kind == EniKind.HYPERPLANE
            if proto not in (TCP, UDP):
                sp = dp = 0
            own = eni_ip[eni]
            if direction == "egress":
                addr = (own, d, env if hyperplane and env else s, d)
            else:
                addr = (s, own, s, env if hyperplane and env else d)
            key = (vpc.enis[eni].id, direction, action, *map(ip_str, addr), sp, dp, proto,
                   path_ if direction == "egress" and path_ else None, int(t // interval))
            flags = int(p["flags"])
            aws = (flags & (FIN | SYN | RST)) | (ACK if flags & SYN and flags & ACK else 0) if proto == TCP else 0
            a = acc.setdefault(key, [0, 0, t, t, 0])
            a[0] += 1
            a[1] += int(p["length"])
            a[2], a[3], a[4] = min(a[2], t), max(a[3], t), a[4] | aws
    return acc


def records_by_key(agg: FlowLogAggregator) -> dict[tuple, list]:
    out = {}
    for r in agg.records():
        key = (r.interface_id, r.flow_direction, r.action, r.srcaddr, r.dstaddr, r.pkt_srcaddr, r.pkt_dstaddr,
               r.srcport, r.dstport, r.protocol, r.traffic_path, r.start // agg.interval)
        assert key not in out, f"two records for {key}"
        out[key] = [r.packets, r.bytes, r.start, r.end, r.tcp_flags]
    return out


def mixed_traffic(lab: Lab, rng: np.random.Generator, n: int) -> list[tuple[np.ndarray, int, np.ndarray]]:
    """Batches of everything the example carries: function traffic to every kind of target,
    answers from the database, the cache and the internet, internet traffic to the web server."""
    targets = [(DB, 5432), (DB, 22), (CACHE, 6379), ("52.216.8.1", 443), ("8.8.8.8", 443),
               ("10.0.10.50", 443), ("10.0.0.2", 53), ("93.184.216.34", 80), ("169.254.169.254", 80),
               ("10.0.10.1", 67)]
    out = packets(n)
    k = rng.integers(0, len(targets), n)
    out["src_ip"] = ip(lab.env)
    out["dst_ip"] = np.array([ip(t) for t, _ in targets], np.uint32)[k]
    out["dst_port"] = np.array([p for _, p in targets], np.uint16)[k]
    out["src_port"] = rng.integers(40000, 40040, n)
    out["proto"] = np.where((out["dst_port"] == 53) | (out["dst_port"] == 67), UDP, TCP)
    flags = rng.choice([SYN, ACK, PSH | ACK, FIN | ACK, RST], n, p=[.5, .2, .1, .1, .1])
    out["flags"] = np.where(out["proto"] == TCP, flags, 0)
    out["length"] = rng.integers(40, 1500, n)
    out["time"] = np.sort(rng.uniform(0, 200, n))
    batches = [(out, Origin.FUNCTION, np.full(n, lab.pool, np.int32))]
    first = lab.net.process(out, Origin.FUNCTION, lab.pool)
    back = packets(n)
    back["src_ip"], back["dst_ip"] = first.packets["dst_ip"], first.packets["src_ip"]
    back["src_port"], back["dst_port"] = first.packets["dst_port"], first.packets["src_port"]
    back["proto"] = first.packets["proto"]
    back["flags"] = np.where(back["proto"] == TCP, rng.choice([SYN | ACK, ACK, FIN | ACK], n), 0)
    back["length"] = rng.integers(40, 1500, n)
    back["time"] = out["time"] + 0.01
    public = back["dst_ip"] >= ip("128.0.0.0")
    origin = np.where(public, Origin.INTERNET, Origin.ENI).astype(np.int8)
    index = np.where(public, -1, np.maximum(first.location, 0)).astype(np.int32)
    keep = first.delivered & (first.reason != hp.Reason.DELIVERED_TO_GATEWAY_ENDPOINT) & (
        first.reason != hp.Reason.DELIVERED_TO_DNS_RESOLVER)
    batches.append((back[keep], origin[keep], index[keep]))
    web = packets(n // 4)
    web["src_ip"] = rng.choice([ip("198.51.100.7"), ip("192.0.2.9")], len(web))
    web["dst_ip"] = ip("203.0.113.20")
    web["src_port"] = rng.integers(1024, 1030, len(web))
    web["dst_port"] = rng.choice([22, 80, 443], len(web))
    web["proto"], web["flags"], web["length"] = TCP, SYN, 60
    web["time"] = rng.uniform(0, 200, len(web))
    batches.append((web, Origin.INTERNET, np.full(len(web), -1, np.int32)))
    return batches


@pytest.mark.parametrize("seed", range(4))
def test_vectorized_records_equal_a_row_by_row_reference(seed):
    rng = np.random.default_rng(seed)
    lab = Lab(interval=60)
    expected: dict[tuple, list] = defaultdict(lambda: [0, 0, float("inf"), float("-inf"), 0])
    for rows, origin, index in mixed_traffic(lab, rng, 150):
        result = lab.run(rows, origin, index)
        for key, (n, b, s, e, f) in reference(result, lab.net.compiled, 60).items():
            acc = expected[key]
            acc[0] += n
            acc[1] += b
            acc[2], acc[3], acc[4] = min(acc[2], s), max(acc[3], e), acc[4] | f
    want = {k: [n, b, int(np.floor(s)), int(np.floor(e)), f] for k, (n, b, s, e, f) in expected.items()}
    got = records_by_key(lab.flow_logs)
    assert got == want
    assert {k[2] for k in got} == {"ACCEPT", "REJECT"}  # the traffic mix covers both


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 1500), st.floats(0, 1e6), st.integers(0, 255)),
                max_size=400),
       st.lists(st.integers(1, 50), min_size=1, max_size=8))
def test_record_table_merges_exactly_like_a_dict(rows, cuts):
    """The compiled record table against a dict: keys that share most bits (so that they land
    in the same index slots) never merge, and batches split anywhere give the same records."""
    keys = [(np.uint64(k % 7) << np.uint64(48), np.uint64(k % 5), np.uint64(k // 35)) for k, _, _, _ in rows]
    reference: dict[tuple, list] = {}
    for key, (_, size, t, flags) in zip(keys, rows):
        rec = reference.setdefault(tuple(int(x) for x in key), [0, 0, t, t, 0])
        rec[0] += 1
        rec[1] += size
        rec[2], rec[3], rec[4] = min(rec[2], t), max(rec[3], t), rec[4] | flags
    table = RecordTable()
    start = 0
    for cut in cuts * 50:
        part = slice(start, min(len(rows), start + cut))
        a, b, c = (np.array([k[w] for k in keys[part]], np.uint64) for w in range(3))
        t = np.array([r[2] for r in rows[part]], np.float64)
        table.add(a, b, c, None, np.array([r[1] for r in rows[part]], np.int64), t, t,
                  np.array([r[3] for r in rows[part]], np.uint8))
        start = part.stop
        if start >= len(rows):
            break
    got = table.columns()
    assert len(table) == len(reference)
    assert list(zip(got["a"].tolist(), got["b"].tolist(), got["c"].tolist())) == list(reference)  # first seen
    assert [list(v) for v in zip(got["packets"].tolist(), got["bytes"].tolist(), got["start"].tolist(),
                                 got["end"].tolist(), got["flags"].tolist())] == list(reference.values())


def test_records_do_not_depend_on_how_traffic_is_cut_into_batches():
    rng = np.random.default_rng(9)
    whole = Lab(interval=60)
    batches = mixed_traffic(whole, rng, 300)
    for rows, origin, index in batches:
        whole.run(rows, origin, index)
    rng = np.random.default_rng(9)
    split = Lab(interval=60)
    for rows, origin, index in mixed_traffic(split, rng, 300):
        for k in range(len(rows)):  # row by row: each packet its own batch
            one = slice(k, k + 1)
            split.run(rows[one], origin[one] if np.ndim(origin) else origin, index[one] if np.ndim(index) else index)
    assert records_by_key(split.flow_logs) == records_by_key(whole.flow_logs)
    assert len(whole.flow_logs) > 20


def test_write_puts_both_layouts_under_one_folder(tmp_path):
    lab = Lab()
    lab.from_function(DB, 5432, time=1529511301)
    files = lab.flow_logs.write(tmp_path, fmt=WIDE)
    assert sorted(p.name for p in files["cloudwatch"]) == sorted([f"{lab.hp_eni.id}-all", "eni-db-all"])
    assert all(p.is_relative_to(tmp_path / "cloudwatch" / "vpc-flow-logs") for p in files["cloudwatch"])
    (s3,) = files["s3"]
    assert s3.is_relative_to(tmp_path / "s3" / "AWSLogs" / "123456789012" / "vpcflowlogs" / "us-east-1")
    assert len(read_s3(s3)) == 2 and read_s3(s3)[0]["version"] == "5"


def test_reading_a_line_of_another_format_names_the_file_and_line(tmp_path):
    lab = Lab()
    lab.from_function(DB, 5432, time=1)
    (stream, _) = sorted(write_cloudwatch(tmp_path, lab.flow_logs.records(), fmt=WIDE))
    with pytest.raises(FlowLogError, match=r"-all: line 1: expected 14 fields, got 27"):
        read_cloudwatch(stream)  # written in the wide format, read in the default one


@functools.cache
def sample_records() -> tuple:
    lab = Lab()
    out = lab.from_function("8.8.8.8", 443, time=7)
    lab.reply(out, SYN | ACK, time=8, origin=Origin.INTERNET)
    lab.from_function("52.216.8.1", 443, time=9)
    return tuple(lab.flow_logs.records())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(sorted(flowlogs.FIELDS)), min_size=1, max_size=12))
def test_any_custom_format_writes_every_field_as_aws_text(fields):
    fmt = FlowLogFormat(" ".join(f"${{{f}}}" for f in fields))
    assert fmt.version == max(flowlogs.FIELDS[f] for f in fields)
    for record, line in zip(sample_records(), fmt.lines(sample_records())):
        assert line == fmt.format(record)
        for name, text in zip(fields, line.split(" ")):
            value = fmt.version if name == "version" else record.get(name)
            assert text == ("-" if value is None else str(value))


def test_a_time_offset_turns_virtual_times_into_capture_times():
    lab = Lab()
    lab.flow_logs = FlowLogAggregator(interval=60, time_offset=1529511290.0)  # a capture's first stamp
    lab.from_function(DB, 5432, time=5)
    lab.from_function(DB, 5432, sport=40003, time=15)  # 16:15:05 UTC: the next 60-s window
    starts = sorted({r.start for r in lab.flow_logs.records()})
    assert starts == [1529511295, 1529511305]
    assert len(lab.flow_logs) == 4
    with pytest.raises(FlowLogError, match="time_offset"):
        FlowLogAggregator(time_offset=float("inf"))


# -- a long replay writes its records as their windows close ------------------------------------

def _long_capture(path, out_of_order: bool):
    """Conversations of `orders` with the cache over 40 minutes (several 60 s and 600 s
    windows, and delivery periods), optionally with one packet 700 s out of time order."""
    from scapy.all import Ether, wrpcap

    packets = []
    t0 = 1_700_000_000.0
    for k in range(40):
        t = t0 + 61.0 * k
        for dt, (src, dst, sport, dport, flags) in zip((0.0, 0.01, 0.02), [
                ("172.16.5.10", "10.0.21.10", 40000 + k, 6379, "S"), ("10.0.21.10", "172.16.5.10", 6379, 40000 + k, "SA"),
                ("172.16.5.10", "10.0.21.10", 40000 + k, 6379, "A")]):
            p = Ether() / IP(src=src, dst=dst) / ScapyTCP(sport=sport, dport=dport, flags=flags)
            p.time = t + dt
            packets.append(p)
    if out_of_order:  # a SYN stamped 20 minutes back, in the first windows: a late record there
        late = Ether() / IP(src="172.16.5.10", dst="10.0.21.10") / ScapyTCP(sport=39999, dport=6379, flags="S")
        late.time = t0 + 0.5
        packets.insert(len(packets) // 2, late)
    wrpcap(str(path), packets)
    return path


def _files(folder):
    return sorted((str(p.relative_to(folder)), gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes())
                  for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("interval", [60, 600])
@pytest.mark.parametrize("out_of_order", [False, True])
def test_a_replay_writes_flow_logs_as_windows_close_and_the_files_are_those_of_one_write(tmp_path, interval,
                                                                                          out_of_order):
    # a replay of days of traffic must not hold every record until the end: it flushes the records
    # of closed windows after each chunk, and the files are byte for byte those of one write at the
    # end (one chunk), also when a packet comes out of time order (it still joins its window)
    capture = _long_capture(tmp_path / "in.pcap", out_of_order)
    written = []
    for chunk in (65536, 7, 1):
        folder = tmp_path / f"logs-{chunk}"
        report = hp.Network.example().replay(capture, functions={"orders": "172.16.5.0/24"}, flow_logs=folder,
                                             flow_log_interval=interval, chunk_packets=chunk)
        written.append((_files(folder), report.flow_log_records))
    assert written[0] == written[1] == written[2]
    files, records = written[0]
    s3 = [body for name, body in files if name.startswith("s3/")]
    assert len(s3) >= 8  # 40 minutes: a file per 5-minute delivery period
    assert records == sum(body.count(b"\n") - 1 for body in s3)  # each record once, under its header line
    # the first connection at the Hyperplane ENI and the cache, both ways; the late SYN, out
    first = [line for body in s3 for line in body.splitlines() if b" 1700000000 1700000000 " in line]
    assert len(first) == 4 + 2 * out_of_order


def test_a_streamed_aggregator_says_its_records_are_in_the_files(tmp_path):
    net = hp.Network.example()
    logs = FlowLogAggregator()
    logs.add(net.function("orders").send(IP(dst="10.0.20.10") / ScapyTCP(dport=5432, flags="S")))
    logs.stream(tmp_path / "logs")
    assert logs.flush(net.now) == 0 and len(logs.records()) == 2  # its window is still open
    assert logs.flush(net.now + 600) == 2  # closed: written and forgotten, still counted
    assert len(logs) == 2
    with pytest.raises(FlowLogError, match="read them from the files"):
        logs.records()
    files = logs.write(tmp_path / "logs")
    assert sum(p.read_text().count("\n") for p in files["cloudwatch"]) == 2
    with pytest.raises(FlowLogError, match="stream"):
        FlowLogAggregator().flush(100.0)


def test_a_streamed_aggregator_that_cannot_write_says_where(tmp_path):
    """Flushed records are written on the stream's writer thread while the caller goes on; a
    write that failed there is raised to the caller, naming the file, by the next flush or by
    write, and write still ends the stream."""
    net = hp.Network.example()
    logs = FlowLogAggregator()
    logs.add(net.function("orders").send(IP(dst="10.0.20.10") / ScapyTCP(dport=5432, flags="S")))
    logs.stream(tmp_path / "logs")
    (tmp_path / "logs" / "cloudwatch" / "vpc-flow-logs").rmdir()
    (tmp_path / "logs" / "cloudwatch" / "vpc-flow-logs").write_text("not a folder")
    logs.flush(net.now + 600)
    with pytest.raises(FlowLogError, match="vpc-flow-logs: cannot create the log group folder"):
        logs.write(tmp_path / "logs")
    files = logs.write(tmp_path / "again")  # the stream ended: the aggregator writes elsewhere as before
    assert files["cloudwatch"] == [] and files["s3"] == []  # its records went to the first stream
