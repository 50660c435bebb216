"""The edges of a VPC as AWS documents them: what the internet gateway refuses, the Reachability
Analyzer explanation codes of each refusal, and the NAT gateway's RST for a connection it no
longer has.

Each scenario quotes the AWS documentation sentence it implements; the verdicts come from the
public API (``net.send``, ``fn.send``, ``net.process``, flow logs), the way a user reads them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import yaml
from scapy.layers.inet import ICMP, IP, TCP, UDP

import hyperplane as hp
from hyperplane.dataplane.flow_logs import FlowLogAggregator
from hyperplane.loaders import parse_topology
from hyperplane.records import PACKET, ip

TOPOLOGY = """
vpcs:
  - {id: vpc-edge, cidr: 10.0.0.0/16}
subnets:
  - {id: subnet-private, vpc_id: vpc-edge, cidr: 10.0.1.0/24, availability_zone: us-east-1a, route_table_id: rtb-private}
  - {id: subnet-public, vpc_id: vpc-edge, cidr: 10.0.2.0/24, availability_zone: us-east-1a, route_table_id: rtb-public}
route_tables:
  - {id: rtb-public, vpc_id: vpc-edge, routes: [{destination: 0.0.0.0/0, target: igw-edge}]}
  - id: rtb-private
    vpc_id: vpc-edge
    routes: [{destination: 0.0.0.0/0, target: nat-edge}, {destination: pl-s3, target: vpce-s3}]
internet_gateways: [{id: igw-edge, vpc_id: vpc-edge}]
nat_gateways:
  - {id: nat-edge, subnet_id: subnet-public, private_ip: 10.0.2.5, elastic_ips: [203.0.113.50]}
prefix_lists:
  - {id: pl-s3, name: com.amazonaws.us-east-1.s3, cidrs: [52.216.0.0/15]}
vpc_endpoints:
  - {id: vpce-s3, vpc_id: vpc-edge, type: gateway, service_name: com.amazonaws.us-east-1.s3, route_table_ids: [rtb-private]}
security_groups:
  - id: sg-open
    vpc_id: vpc-edge
    ingress: [{protocol: all, cidr: 0.0.0.0/0}]
network_interfaces:
  - {id: eni-app, subnet_id: subnet-private, private_ip: 10.0.1.10, security_group_ids: [sg-open], instance_id: i-app}
  - {id: eni-web, subnet_id: subnet-public, private_ip: 10.0.2.10, security_group_ids: [sg-open], public_ip: 203.0.113.40}
  - {id: eni-batch, subnet_id: subnet-private, private_ip: 10.0.1.11, security_group_ids: [sg-open], instance_id: i-batch}
"""


def network() -> hp.Network:
    return hp.Network(parse_topology(yaml.safe_load(TOPOLOGY), file="edges.yaml"), ready=True)


def tcp(dst: str, dport: int = 443, flags: str = "S", sport: int = 40000, src: str | None = None) -> Any:
    head = IP(dst=dst) if src is None else IP(src=src, dst=dst)
    return head / TCP(sport=sport, dport=dport, flags=flags)


def last(r: hp.Result) -> hp.Hop:
    return r.hops[-1]


# == the internet gateway ========================================================================

# "IGW_DESTINATION_ADDRESS_NOT_IN_RFC1918_EGRESS: Internet gateways reject outbound traffic with
# destination addresses in the private IP address range (see RFC1918)." (Reachability Analyzer
# explanation codes)
@pytest.mark.parametrize("destination", ["192.168.7.7", "172.20.0.9", "10.200.0.1"])
def test_internet_gateway_drops_traffic_to_a_private_address_outside_the_vpc(destination):
    net = network()
    r = net.send(tcp(destination), source="eni-web")  # 0.0.0.0/0 -> igw-edge; a public IP
    assert r.reason == hp.Reason.IGW_PRIVATE_DESTINATION and not r.delivered
    assert r.disposition == hp.Disposition.DENIED_OUT
    assert r.explanation == "IGW_DESTINATION_ADDRESS_NOT_IN_RFC1918_EGRESS"
    assert (last(r).stage, last(r).resource, last(r).decision) == ("igw-out", "igw-edge", "drop")
    assert "RFC 1918" in last(r).detail
    # the same destination through the NAT gateway: dropped where the gateway's traffic meets the IGW
    via_nat = net.send(tcp(destination), source="eni-app")
    assert via_nat.reason == hp.Reason.IGW_PRIVATE_DESTINATION
    assert [h.stage for h in via_nat.hops][-2:] == ["nacl-out", "igw-out"]
    assert net.compiled.enis[via_nat.location].id.startswith("eni-nat")  # the NAT gateway's ENI sent it


# "IGW_DESTINATION_ADDRESS_NOT_IN_RFC6598_EGRESS: Internet gateways reject outbound traffic with
# destination addresses in the shared IP address range (see RFC6598)."
def test_internet_gateway_drops_traffic_to_the_shared_address_space():
    r = network().send(tcp("100.64.3.4"), source="eni-web")
    assert r.reason == hp.Reason.IGW_SHARED_DESTINATION and r.disposition == hp.Disposition.DENIED_OUT
    assert r.explanation == "IGW_DESTINATION_ADDRESS_NOT_IN_RFC6598_EGRESS"
    # just outside 100.64.0.0/10 is the internet
    assert network().send(tcp("100.128.0.1"), source="eni-web").reason == hp.Reason.EXITED_TO_INTERNET


# "IGW_SOURCE_ADDRESS_NOT_IN_RFC1918_INGRESS: Internet gateways reject inbound traffic with source
# addresses in the private IP address range (see RFC1918)." and "..._RFC6598_INGRESS: ... in the
# shared IP address range (see RFC6598)."
@pytest.mark.parametrize("source, reason, code", [
    ("192.168.1.1", hp.Reason.IGW_PRIVATE_SOURCE, "IGW_SOURCE_ADDRESS_NOT_IN_RFC1918_INGRESS"),
    ("10.9.9.9", hp.Reason.IGW_PRIVATE_SOURCE, "IGW_SOURCE_ADDRESS_NOT_IN_RFC1918_INGRESS"),
    ("100.100.0.1", hp.Reason.IGW_SHARED_SOURCE, "IGW_SOURCE_ADDRESS_NOT_IN_RFC6598_INGRESS"),
])
def test_internet_gateway_drops_traffic_from_the_internet_with_a_private_source(source, reason, code):
    net = network()
    r = net.send(tcp("203.0.113.40", src=source), source="internet")  # eni-web's public IP
    assert r.reason == reason and r.disposition == hp.Disposition.DENIED_IN and r.explanation == code
    assert (last(r).stage, last(r).resource, last(r).decision) == ("igw-in", "igw-edge", "drop")
    assert "sg-ingress" not in [h.stage for h in r.hops]  # it never reached the ENI
    assert net.send(tcp("203.0.113.40", src="198.51.100.7"), source="internet").reason == hp.Reason.DELIVERED


# "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS: Internet gateways reject inbound traffic with a
# destination address that is not the public IP address of a network interface in the VPC with
# an available attachment."
def test_internet_gateway_refuses_traffic_to_a_private_address_or_an_unknown_public_one():
    net = network()
    private = net.send(tcp("10.0.2.10", src="198.51.100.7"), source="internet")  # eni-web's private IP
    assert private.reason == hp.Reason.IGW_PRIVATE_ADDRESS_FROM_INTERNET and not private.delivered
    assert private.explanation == "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS"
    assert private.explanation != "NO_ROUTE_TO_DESTINATION"
    assert (last(private).stage, last(private).decision) == ("igw-in", "drop")
    unknown = net.send(tcp("203.0.113.99", src="198.51.100.7"), source="internet")
    assert unknown.reason == hp.Reason.NOT_A_VPC_PUBLIC_ADDRESS
    assert unknown.explanation == "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS"


def test_a_packet_from_the_internet_without_a_source_comes_from_a_documented_internet_address():
    # whatever address this machine has (often a private one), "internet" means the internet
    r = network().send(IP(dst="203.0.113.40") / TCP(dport=443, flags="S"), source="internet")
    assert r.reason == hp.Reason.DELIVERED and r.packet.src == "192.0.2.1"


def test_the_batch_api_and_send_agree_on_internet_gateway_refusals():
    net = network()
    cases = [("198.51.100.7", "203.0.113.40"), ("192.168.0.1", "203.0.113.40"), ("100.64.0.1", "203.0.113.40"),
             ("198.51.100.7", "10.0.2.10"), ("198.51.100.7", "203.0.113.77")]
    rows = np.zeros(len(cases), PACKET)
    for k, (src, dst) in enumerate(cases):
        rows[k] = (0.0, ip(src), ip(dst), 41000 + k, 443, 40, 6, 0x02)
    batch = net.process(rows, hp.Origin.INTERNET)
    one_by_one = [network().send(tcp(dst, sport=41000 + k, src=src), source="internet").reason
                  for k, (src, dst) in enumerate(cases)]
    assert [hp.Reason(int(x)) for x in batch.reason] == one_by_one == [
        hp.Reason.DELIVERED, hp.Reason.IGW_PRIVATE_SOURCE, hp.Reason.IGW_SHARED_SOURCE,
        hp.Reason.IGW_PRIVATE_ADDRESS_FROM_INTERNET, hp.Reason.NOT_A_VPC_PUBLIC_ADDRESS]


# == unsupported protocols ========================================================================

# "VPCE_GATEWAY_PROTOCOL_RESTRICTION: VPC gateway endpoints accept only TCP or ICMP ECHO traffic,
# and emit only TCP or ICMP ECHO reply traffic."
def test_gateway_endpoint_refuses_udp_with_its_reachability_analyzer_code():
    net = network()
    assert net.send(tcp("52.216.8.1"), source="eni-app").reason == hp.Reason.DELIVERED_TO_GATEWAY_ENDPOINT
    udp = net.send(IP(dst="52.216.8.1") / UDP(sport=47001, dport=443), source="eni-app")
    assert udp.reason == hp.Reason.GATEWAY_ENDPOINT_PROTOCOL and not udp.delivered
    assert udp.explanation == "VPCE_GATEWAY_PROTOCOL_RESTRICTION"


# "PROTOCOL_RESTRICTION: This component only accepts traffic with specific protocols." — for a
# NAT gateway: "Ensure that your connection is using a TCP, UDP, or ICMP protocol only." (NAT
# gateway troubleshooting)
def test_nat_gateway_refuses_other_protocols_with_protocol_restriction():
    net = network()
    gre = net.send(IP(dst="8.8.8.8", proto=47) / b"tunnel", source="eni-app")
    assert gre.reason == hp.Reason.NAT_UNSUPPORTED_PROTOCOL and gre.explanation == "PROTOCOL_RESTRICTION"
    assert net.send(IP(dst="8.8.8.8") / ICMP(id=3), source="eni-app").reason == hp.Reason.EXITED_TO_INTERNET


# "ENI_SOURCE_DEST_CHECK_RESTRICTION: Network interfaces with source/destination check enabled
# reject inbound traffic if the destination address does not match one of its private IP
# addresses, and reject outbound traffic if the source address does not match one of their
# private IP addresses."
def test_source_destination_check_carries_its_reachability_analyzer_code():
    r = network().send(tcp("10.0.2.10", src="10.0.1.99"), source="eni-app")
    assert r.reason == hp.Reason.SOURCE_DEST_CHECK_OUT
    assert r.explanation == "ENI_SOURCE_DEST_CHECK_RESTRICTION"
    assert hp.Reason.SOURCE_DEST_CHECK_IN.explanation == "ENI_SOURCE_DEST_CHECK_RESTRICTION"


# == the NAT gateway's RST =======================================================================

# "When a connection times out, a NAT gateway returns an RST packet to any resources behind the
# NAT gateway that attempt to continue the connection (it does not send a FIN packet)." (Compare
# NAT gateways and NAT instances) and "If a connection that's using a NAT gateway is idle for 350
# seconds or more, the connection times out." (NAT gateway troubleshooting)
def expired_connection(net: hp.Network) -> hp.Result:
    """eni-app's connection to 8.8.4.4:443 through nat-edge, then 351 s of silence, then an ACK."""
    opened = net.send(tcp("8.8.4.4", sport=46000), source="eni-app")
    assert opened.reason == hp.Reason.EXITED_TO_INTERNET
    assert opened.reply(TCP(flags="SA")).reason == hp.Reason.DELIVERED
    net.advance(349)
    assert net.send(tcp("8.8.4.4", flags="A", sport=46000), source="eni-app").reason == hp.Reason.EXITED_TO_INTERNET
    net.advance(351)
    return net.send(tcp("8.8.4.4", flags="PA", sport=46000), source="eni-app")


def test_nat_gateway_answers_a_packet_of_an_expired_connection_with_an_rst_walked_back_to_the_sender():
    net = network()
    late = expired_connection(net)
    assert late.reason == hp.Reason.NAT_NO_CONNECTION_RST and late.disposition == hp.Disposition.DENIED_IN
    rst = late.answer
    assert rst is not None, str(late)
    # the RST is a packet: from the peer's address to the sender's, walked from the NAT gateway's ENI
    assert rst.reason == hp.Reason.DELIVERED and net.compiled.enis[rst.location].id == "eni-app"
    assert (rst.packet.src, rst.packet[TCP].sport, rst.packet.dst, rst.packet[TCP].dport) == (
        "8.8.4.4", 443, "10.0.1.10", 46000)
    assert rst.packet[TCP].flags == "R"
    assert [(h.stage, h.resource) for h in rst.hops][:2] == [("nat-rst", "nat-edge"), ("route", "rtb-public")]
    assert rst.hops[-1].stage == "sg-ingress" and rst.hops[-1].decision == "allow"
    assert "answered with:" in str(late) and "nat-rst" in str(late)


def test_the_nat_gateways_rst_is_in_the_senders_flow_log():
    net = network()
    late = expired_connection(net)
    logs = FlowLogAggregator(interval=600)
    logs.add(late)
    at_app = [r for r in logs.records() if r.interface_id == "eni-app" and r.srcaddr == "8.8.4.4"]
    assert len(at_app) == 1 and at_app[0].action == "ACCEPT" and at_app[0].tcp_flags & 0x04
    assert (at_app[0].srcport, at_app[0].dstaddr, at_app[0].dstport) == (443, "10.0.1.10", 46000)
    nat_eni = net.compiled.enis[late.location].id
    sent = [r for r in logs.records() if r.interface_id == nat_eni and r.dstaddr == "10.0.1.10"]
    assert sent and all(r.tcp_flags & 0x04 for r in sent if r.srcaddr == "8.8.4.4")


def test_a_nat_gateway_never_answers_an_rst_with_an_rst():
    # RFC 793: "An incoming segment containing a RST is discarded." — it is dropped, unanswered
    net = network()
    r = net.send(tcp("8.8.4.4", flags="R", sport=46001), source="eni-app")
    assert r.reason == hp.Reason.NAT_NO_CONNECTION_RST and r.answer is None


def rows_of_a_connection_that_outlives_the_nat_gateway(net: hp.Network) -> np.ndarray:
    """SYNs that open connections, and later packets of them, two of which come after the NAT
    gateway forgot theirs (rows 2 and 5: 400 s and 799 s of silence)."""
    times = [0.0, 1.0, 400.0, 401.0, 402.0, 800.0, 801.0]
    ports = [46000, 46001, 46000, 46002, 46002, 46001, 46003]
    flags = [0x02, 0x02, 0x10, 0x02, 0x18, 0x10, 0x02]
    rows = np.zeros(len(times), PACKET)
    for k, (t, port, f) in enumerate(zip(times, ports, flags)):
        rows[k] = (t, ip("10.0.1.10"), ip("8.8.4.4"), port, 443, 40, 6, f)
    return rows


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_nat_gateway_rsts_are_the_same_whatever_the_batch_size(chunk):
    whole_net, chunked_net = network(), network()
    rows = rows_of_a_connection_that_outlives_the_nat_gateway(whole_net)
    eni = whole_net.compiled.eni_index["eni-app"]
    whole = whole_net.process(rows, hp.Origin.ENI, eni)
    whole_logs, chunked_logs = FlowLogAggregator(interval=60), FlowLogAggregator(interval=60)
    whole_logs.add(whole)
    reasons, answered = [], {}
    for start in range(0, len(rows), chunk):
        part = chunked_net.process(rows[start:start + chunk], hp.Origin.ENI, eni)
        chunked_logs.add(part)
        reasons += [hp.Reason(int(x)) for x in part.reason]
        answered.update({start + k: hp.Reason(int(a.reason[0])) for k, a in part.answers.items()})
    assert [hp.Reason(int(x)) for x in whole.reason] == reasons
    assert reasons.count(hp.Reason.NAT_NO_CONNECTION_RST) == 2  # rows 2 and 5
    assert {k: hp.Reason(int(a.reason[0])) for k, a in whole.answers.items()} == answered == {
        2: hp.Reason.DELIVERED, 5: hp.Reason.DELIVERED}
    assert whole_logs.records() == chunked_logs.records()
    rst_in = [r for r in whole_logs.records() if r.interface_id == "eni-app" and r.srcaddr == "8.8.4.4"]
    assert sorted(r.dstport for r in rst_in) == [46000, 46001]


@pytest.mark.parametrize("chunk_packets", [1, 2, 65536])
def test_a_replayed_capture_shows_the_nat_gateways_rst_in_its_output_and_flow_logs(tmp_path, chunk_packets):
    from scapy.all import Ether, rdpcap, wrpcap

    capture = tmp_path / "app.pcap"
    syn = Ether() / IP(src="10.0.1.10", dst="8.8.4.4") / TCP(sport=46000, dport=443, flags="S")
    late = Ether() / IP(src="10.0.1.10", dst="8.8.4.4") / TCP(sport=46000, dport=443, flags="PA") / b"GET /"
    after = Ether() / IP(src="10.0.1.10", dst="8.8.4.4") / TCP(sport=46001, dport=443, flags="S")
    for pkt, t in [(syn, 0.0), (late, 400.0), (after, 401.0)]:
        pkt.time = 1_700_000_000.0 + t
    wrpcap(str(capture), [syn, late, after])
    output, logs = tmp_path / "out.pcap", tmp_path / "logs"
    # mid-stream pickup (a replay's default) lasts the capture's first 350 s: the ACK at 400 s
    # belongs to a connection that idled out, not to one open before the capture began
    report = network().replay(capture, inject="eni", output=output, flow_logs=logs, chunk_packets=chunk_packets)
    assert report.reasons["NAT_NO_CONNECTION_RST"] == 1
    written = rdpcap(str(output))
    # the SYNs as they left (the NAT gateway's Elastic IP), and between them the RST walked back
    assert [(p[IP].src, p[IP].dst, str(p[TCP].flags)) for p in written] == [
        ("203.0.113.50", "8.8.4.4", "S"), ("8.8.4.4", "10.0.1.10", "R"), ("203.0.113.50", "8.8.4.4", "S")]
    assert (written[1][TCP].sport, written[1][TCP].dport) == (443, 46000)
    assert float(written[1].time) == 1_700_000_400.0
    assert written[1][Ether].dst == late[Ether].src  # it goes the other way
    lines = "\n".join(p.read_text() for p in logs.rglob("*") if p.is_file() and p.suffix != ".gz")
    assert " eni-app 8.8.4.4 10.0.1.10 443 46000 6 " in lines


def test_a_parallel_replay_writes_the_nat_gateways_rst_where_one_process_does(tmp_path):
    from scapy.all import Ether, rdpcap, wrpcap

    packets = []
    # two instances behind the NAT gateway (one component: they share it), one with a public IP
    for k, source in enumerate(["10.0.1.10", "10.0.1.11", "10.0.2.10"]):
        for t, flags in [(0.0, "S"), (400.0, "PA")]:
            p = Ether() / IP(src=source, dst=f"8.8.{4 + k}.4") / TCP(sport=46000, dport=443, flags=flags)
            p.time = 1_700_000_000.0 + t + k
            packets.append(p)
    packets.sort(key=lambda p: float(p.time))
    capture = tmp_path / "two.pcap"
    wrpcap(str(capture), packets)
    files = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}.pcap"
        report = network().replay(capture, inject="eni", output=out, workers=workers)
        files[workers] = out.read_bytes()
    assert len(report.parallel.groups) == 2  # it did run on two workers
    assert report.reasons["NAT_NO_CONNECTION_RST"] == 2
    assert files[1] == files[2]
    rsts = [p for p in rdpcap(str(tmp_path / "out2.pcap")) if p[TCP].flags == "R"]
    assert sorted(p[IP].dst for p in rsts) == ["10.0.1.10", "10.0.1.11"]
