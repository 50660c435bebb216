"""Flow logs as AWS documents them: the ``az-id`` field of a record, from every input that knows a
subnet's Availability Zone id, and the kinds of traffic flow logs do not capture (AWS "Flow log
records", "Flow log limitations"), through ``send`` and through a replay's flow-log files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.utils import wrpcap

import hyperplane as hp
from hyperplane.dataplane.flow_logs import FlowLogAggregator
from hyperplane.errors import TopologyError
from hyperplane.formats.flow_log_files import FlowLogFormat, read_cloudwatch, read_s3
from hyperplane.formats.snapshot_reader import read_aws_snapshot
from hyperplane.formats.snapshot_writer import write_describe_folder
from hyperplane.formats.terraform_writer import write_terraform_state
from hyperplane.formats.topology_writer import dump_topology

from aws_snapshots import snapshot

SENDER = "eni-06347554b65539ff3"  # 192.168.2.229 in subnet-0af94b59d214ff20a (us-east-2b)
PEER = "10.10.10.157"              # the instance of the peered VPC, in us-east-2c
ZONED = FlowLogFormat("${version} ${interface-id} ${srcaddr} ${dstaddr} ${dstport} ${protocol} ${action} "
                      "${region} ${az-id} ${flow-direction}")


def records_of(net: hp.Network, *results: hp.Result) -> list:
    logs = FlowLogAggregator()
    for r in results:
        logs.add(r)
    return logs.records()


# -- az-id -----------------------------------------------------------------------------------
# AWS, "Flow log records" (available fields): "az-id: The ID of the Availability Zone that
# contains the network interface for which traffic is recorded."

def test_az_id_is_the_zone_id_of_the_interface_subnet_from_a_snapshot(tmp_path):
    net = hp.Network.load(snapshot("test-vpc-peering"))
    r = net.send(IP(dst=PEER) / TCP(dport=22, flags="S"), source=SENDER)
    (record,) = [x for x in records_of(net, r) if x.interface_id == SENDER]
    # Subnets.json gives the subnet "AvailabilityZone": "us-east-2b", "AvailabilityZoneId": "use2-az2"
    assert (record.region, record.az_id) == ("us-east-2", "use2-az2")
    logs = FlowLogAggregator()
    logs.add(r)
    files = logs.write(tmp_path, fmt=ZONED)
    (stream,) = [f for f in files["cloudwatch"] if f.name.startswith(SENDER)]
    (line,) = read_cloudwatch(stream, ZONED)
    assert line["az-id"] == "use2-az2" and line["flow-direction"] == "egress"
    (s3,) = files["s3"]
    assert [x["az-id"] for x in read_s3(s3) if x["interface-id"] == SENDER] == ["use2-az2"]


def _strip_zone_ids(folder: Path) -> None:
    for subnets in folder.rglob("Subnets.json"):
        doc = json.loads(subnets.read_text())
        for s in doc["Subnets"]:
            s.pop("AvailabilityZoneId", None)
        subnets.write_text(json.dumps(doc))


def test_a_subnet_without_its_zone_id_takes_it_from_the_snapshot_availability_zones(tmp_path):
    folder = tmp_path / "hybrid"
    shutil.copytree(snapshot("hybrid-cloud"), folder)
    _strip_zone_ids(folder)
    topology, report = read_aws_snapshot(folder)
    zones = {s.availability_zone: s.availability_zone_id for s in topology.subnets.values()}
    # each region folder's AvailabilityZones.json: us-east-2b is use2-az2, but us-west-2b is
    # usw2-az1 in this account -- a zone's letter says nothing about its id
    assert zones == {"us-east-2b": "use2-az2", "us-east-2c": "use2-az3", "us-west-2b": "usw2-az1"}
    assert not any(k.startswith("AvailabilityZones") for k in report.ignored)


def test_with_only_zone_names_known_az_id_is_a_dash(tmp_path):
    folder = tmp_path / "peering"
    shutil.copytree(snapshot("test-vpc-peering"), folder)
    _strip_zone_ids(folder)
    (folder / "aws_configs" / "AvailabilityZones.json").unlink()
    net = hp.Network.load(folder)
    assert {s.availability_zone_id for s in net.topology.subnets.values()} == {None}
    r = net.send(IP(dst=PEER) / TCP(dport=22, flags="S"), source=SENDER)
    logs = FlowLogAggregator()
    logs.add(r)
    (stream,) = [f for f in logs.write(tmp_path / "logs", fmt=ZONED)["cloudwatch"] if f.name.startswith(SENDER)]
    assert [x["az-id"] for x in read_cloudwatch(stream, ZONED)] == ["-"]


TOPOLOGY = """
account_id: "111122223333"
region: eu-west-1
vpcs:
  - {id: vpc-app, cidrs: [10.1.0.0/16]}
subnets:
  - {id: subnet-a, vpc_id: vpc-app, cidr: 10.1.1.0/24, availability_zone: eu-west-1a, availability_zone_id: euw1-az3}
  - {id: subnet-b, vpc_id: vpc-app, cidr: 10.1.2.0/24, availability_zone: eu-west-1b}
network_interfaces:
  - {id: eni-a, subnet_id: subnet-a, private_ip: 10.1.1.10}
  - {id: eni-b, subnet_id: subnet-b, private_ip: 10.1.2.10}
"""


def test_the_topology_format_carries_an_optional_zone_id(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(TOPOLOGY)
    net = hp.Network.load(path)
    r = net.send(IP(dst="10.1.2.10") / TCP(dport=443, flags="S"), source="eni-a")
    zone = {(x.interface_id, x.flow_direction): x.az_id for x in records_of(net, r)}
    assert zone == {("eni-a", "egress"): "euw1-az3", ("eni-b", "ingress"): None}  # None is written "-"
    # the writers keep it: our own format, a describe-* folder, terraform show -json
    again = tmp_path / "again.yaml"
    dump_topology(net.topology, again)
    assert hp.Network.load(again).topology.subnets["subnet-a"].availability_zone_id == "euw1-az3"
    write_describe_folder(net.topology, tmp_path / "snap")
    subnets = read_aws_snapshot(tmp_path / "snap")[0].subnets
    assert (subnets["subnet-a"].availability_zone_id, subnets["subnet-b"].availability_zone_id) == ("euw1-az3", None)
    write_terraform_state(net.topology, tmp_path / "tf.json")
    assert hp.Network.load(tmp_path / "tf.json").topology.subnets["subnet-a"].availability_zone_id == "euw1-az3"


def test_a_zone_id_that_is_not_one_names_the_subnet_and_field(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(TOPOLOGY.replace("euw1-az3", "eu-west-1a"))
    with pytest.raises(TopologyError, match=r"subnets\[0\]\.availability_zone_id.*'eu-west-1a' is not an "
                                            r"Availability Zone id"):
        hp.Network.load(path)


def test_cloudformation_and_terraform_read_the_zone_id_when_they_have_it(tmp_path):
    template = {"Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.2.0.0/16"}},
        "Named": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.2.1.0/24",
                                                             "AvailabilityZone": "us-east-1a"}},
        "ById": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.2.2.0/24",
                                                            "AvailabilityZoneId": "use1-az6"}}}}
    (tmp_path / "stack.json").write_text(json.dumps(template))
    subnets = {s.name: s for s in hp.Network.load(tmp_path / "stack.json").topology.subnets.values()}
    assert subnets["Named"].availability_zone_id is None  # a template's zone name: no id
    assert subnets["ById"].availability_zone_id == "use1-az6"


@pytest.mark.filterwarnings("ignore::hyperplane.formats.snapshot_report.SnapshotWarning")
def test_boto3_collects_the_zone_ids(monkeypatch, tmp_path):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    from hyperplane.formats.boto3_collect import write_snapshot
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    with moto.mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        made = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1b")["Subnet"]
        zone_id = made["AvailabilityZoneId"]
        assert hp.Network.from_boto3(ec2).topology.subnets[made["SubnetId"]].availability_zone_id == zone_id
        write_snapshot(ec2, tmp_path)
    # the written folder has describe-availability-zones too: without the subnet's own id the
    # zone name still finds it
    assert list(tmp_path.rglob("AvailabilityZones.json"))
    _strip_zone_ids(tmp_path)
    assert read_aws_snapshot(tmp_path)[0].subnets[made["SubnetId"]].availability_zone_id == zone_id


# -- what flow logs do not capture -----------------------------------------------------------
# AWS, "Flow log limitations": "Flow logs do not capture all IP traffic. The following types of
# traffic are not logged: Traffic generated by instances when they contact the Amazon DNS
# server. [...] Traffic generated by a Windows instance for Amazon Windows license activation.
# Traffic to and from 169.254.169.254 for instance metadata. Traffic to and from 169.254.169.123
# for the Amazon Time Sync Service. DHCP traffic. Mirrored traffic. Traffic to the reserved IP
# address for the default VPC router. Traffic between an endpoint network interface and a
# Network Load Balancer network interface."
# And on security groups: "Amazon security groups and network ACLs don't filter traffic to or
# from link-local addresses (169.254.0.0/16) or AWS reserved IPv4 addresses (these are the first
# four IPv4 addresses of the subnet, including the Amazon DNS server address for the VPC).
# Similarly, flow logs do not capture IP traffic to or from these addresses."

WEB, WEB_IP, ROUTER = "i-0web", "10.0.0.20", "10.0.0.1"  # the example's web server, its subnet's base + 1
UNLOGGED = [
    IP(dst="169.254.169.254") / TCP(dport=80, flags="S"),        # instance metadata
    IP(dst="169.254.169.123") / UDP(sport=40123, dport=123),     # Amazon Time Sync
    IP(dst="169.254.169.250") / TCP(dport=1688, flags="S"),      # Windows license activation (KMS)
    IP(dst="169.254.169.253") / UDP(sport=40053, dport=53),      # the Amazon DNS server
    IP(dst=ROUTER) / UDP(sport=68, dport=67),                    # a DHCP renewal to the router
    IP(dst=ROUTER) / ICMP(),                                     # the VPC router
    IP(dst="10.0.0.2") / UDP(sport=40054, dport=53),             # the VPC DNS resolver
]


def test_metadata_time_sync_license_activation_dhcp_router_and_dns_are_not_logged():
    net = hp.Network.example()
    logged = net.send(IP(dst="93.184.216.34") / TCP(dport=443, flags="S"), source=WEB)
    results = [net.send(p, source=WEB) for p in UNLOGGED]
    records = records_of(net, logged, *results)
    assert [(x.interface_id, x.dstaddr, x.dstport) for x in records] == [("eni-web", "93.184.216.34", 443)]
    assert records_of(net, *results) == []


def test_traffic_from_link_local_addresses_is_not_logged_either():
    net = hp.Network.example()
    # "to and from": the metadata service's answer, as the instance's interface receives it
    answer = net.send(IP(src="169.254.169.254", dst=WEB_IP) / TCP(sport=80, dport=40000, flags="SA"), source="eni-nat-a")
    assert records_of(net, answer) == []


def test_a_replay_writes_no_records_for_unlogged_traffic(tmp_path):
    net = hp.Network.example()
    capture = [p.copy() for p in UNLOGGED] + [IP(dst="93.184.216.34") / TCP(sport=41000, dport=443, flags="S")]
    for k, p in enumerate(capture):
        p.src, p.time = WEB_IP, 1_700_000_000 + k
    wrpcap(str(tmp_path / "web.pcap"), capture)
    report = net.replay(tmp_path / "web.pcap", inject="eni", flow_logs=tmp_path / "logs")
    assert report.packets == len(capture) and report.flow_log_records == 1
    streams = list((tmp_path / "logs" / "cloudwatch").rglob("*-all"))
    lines = [line for s in streams for line in read_cloudwatch(s)]
    assert [(x["interface-id"], x["dstaddr"], x["dstport"]) for x in lines] == [("eni-web", "93.184.216.34", "443")]
    s3 = list((tmp_path / "logs" / "s3").rglob("*.log.gz"))
    assert [x["dstaddr"] for f in s3 for x in read_s3(f)] == ["93.184.216.34"]


# -- what the walk does with link-local destinations -----------------------------------------
# AWS (security groups): "Amazon security groups and network ACLs don't filter traffic to or
# from link-local addresses (169.254.0.0/16) [...]". The instance metadata service, Amazon Time
# Sync, license activation and the Amazon DNS server answer at such addresses on the instance's
# host; the VPC router never forwards them.

def test_an_instance_reaches_its_metadata_service_whatever_its_groups_say():
    net = hp.Network.example()
    r = net.send(IP(dst="169.254.169.254") / TCP(dport=80, flags="S"), source=WEB)
    assert r.delivered and r.reason == hp.Reason.DELIVERED_TO_LINK_LOCAL_SERVICE
    assert r.disposition == hp.Disposition.ACCEPTED
    assert not any(h.stage in ("sg-egress", "route", "nacl-out") for h in r.hops)  # nothing filtered it
    c = net.connect(WEB, "169.254.169.254", 80)
    assert c and "instance metadata service" in str(c)
    assert net.connect(WEB, "169.254.169.123", 123, "udp")  # Amazon Time Sync


def test_other_link_local_addresses_and_functions_reach_nothing():
    net = hp.Network.example()
    # before, both left through a NAT gateway or the internet gateway as if on the internet
    r = net.send(IP(dst="169.254.7.7") / TCP(dport=80, flags="S"), source=WEB)
    assert not r.delivered and r.reason == hp.Reason.LINK_LOCAL_NOT_ROUTED
    assert r.disposition == hp.Disposition.NO_ROUTE
    # a function's Hyperplane ENI has no instance, and so no metadata service, behind it
    fn = net.function("orders")
    r = fn.send(IP(dst="169.254.169.254") / TCP(dport=80, flags="S"))
    assert not r.delivered and r.reason == hp.Reason.LINK_LOCAL_NOT_ROUTED
    assert not net.connect("orders", "169.254.169.254", 80)
