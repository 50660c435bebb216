"""VPC peering: a packet routed to a peering connection walks into the peer VPC (issue 16).

When both VPCs of a ``pcx-…`` are in the network, the packet goes on in the peer: the NACL of the
subnet it arrives in, the receiver's security groups, delivery; replies come back the same way.
A connection carries only traffic to the peer VPC's CIDR blocks, and only while it is active;
only a peer VPC absent from the network is where a packet exits. Batfish's own flows on the
``test-vpc-peering`` snapshot (``AwsConfigurationVpcPeeringTest``) give the dispositions.
"""

from __future__ import annotations

import json
import shutil
from ipaddress import IPv4Address
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP

import hyperplane as hp

from aws_snapshots import snapshot


pytestmark = pytest.mark.filterwarnings("ignore::hyperplane.formats.snapshot_report.SnapshotWarning")

# test-vpc-peering: VPC A 10.10.0.0/16 peers with B and C, both 192.168.0.0/16; each has one
# instance whose group admits only SSH
INSTANCE_A, INSTANCE_B, INSTANCE_C = "i-06ba034d88c84ef07", "i-0b14080af811fda3d", "i-04a292ff83b3aa833"
IP_A, IP_B, IP_C = "10.10.10.157", "192.168.1.106", "192.168.2.229"
PCX_AB, PCX_AC = "pcx-0b89b559e3319d6cf", "pcx-0d5b836985ac8ca8c"
SG_A, SG_B = "sg-09606ce9642cac154", "sg-065c26b39e45ae384"


def syn(dst: str, port: int) -> IP:
    return IP(dst=dst) / TCP(sport=40000, dport=port, flags="S")


def stages(result) -> list[str]:
    return [h.stage for h in result.hops]


def hop(result, stage: str):
    return next(h for h in result.hops if h.stage == stage)


# -- Batfish's flows on its test-vpc-peering snapshot -------------------------------------------

@pytest.fixture(scope="module")
def peering_snapshot() -> hp.Network:
    return hp.Network.load(snapshot("test-vpc-peering"))


def test_batfish_a_to_b_is_refused_by_bs_group_on_port_80_and_admitted_on_22(peering_snapshot):
    # Batfish testFromAtoB: DENIED_IN, through instance A, subnet A, VPC A, VPC B, subnet B, instance B
    refused = peering_snapshot.send(syn(IP_B, 80), source=INSTANCE_A)
    assert refused.disposition == hp.Disposition.DENIED_IN and refused.reason == hp.Reason.SG_INGRESS_DENY
    assert stages(refused) == ["sg-egress", "route", "nacl-out", "peering", "nacl-in", "sg-ingress"]
    assert hop(refused, "peering").resource == PCX_AB and "vpc-00a31ce9d0c06675c (VPC B)" in hop(refused, "peering").detail
    assert hop(refused, "sg-ingress").resource == SG_B and hop(refused, "sg-ingress").decision == "deny"
    admitted = peering_snapshot.send(syn(IP_B, 22), source=INSTANCE_A)
    assert admitted.disposition == hp.Disposition.ACCEPTED and admitted.reason == hp.Reason.DELIVERED
    assert peering_snapshot.compiled.enis[admitted.location].ref.instance_id == INSTANCE_B


def test_batfish_b_to_a_is_refused_by_as_group_on_port_80(peering_snapshot):
    # Batfish testFromBtoA: DENIED_IN at instance A
    r = peering_snapshot.send(syn(IP_A, 80), source=INSTANCE_B)
    assert r.disposition == hp.Disposition.DENIED_IN and hop(r, "sg-ingress").resource == SG_A
    assert hop(r, "peering").resource == PCX_AB


def test_batfish_unused_addresses_no_route_null_routed_and_delivered_to_subnet(peering_snapshot):
    # testFromAtoUnusedSubnet: A routes only B's and C's /24s, so 192.168.100.1 has no route
    assert peering_snapshot.send(syn("192.168.100.1", 22), source=INSTANCE_A).disposition == hp.Disposition.NO_ROUTE
    # testFromBtoUnusedSubnet: inside A's CIDR, in none of its subnets: null-routed in VPC A
    unused_subnet = peering_snapshot.send(syn("10.10.100.1", 22), source=INSTANCE_B)
    assert unused_subnet.disposition == hp.Disposition.NULL_ROUTED
    assert unused_subnet.reason == hp.Reason.NO_SUBNET_AT_ADDRESS and "peering" in stages(unused_subnet)
    # testFromBtoUnusedIp: in A's subnet, held by no ENI: delivered to the subnet
    unused_ip = peering_snapshot.send(syn("10.10.10.11", 22), source=INSTANCE_B)
    assert unused_ip.disposition == hp.Disposition.DELIVERED_TO_SUBNET and unused_ip.reason == hp.Reason.NO_ENI_AT_ADDRESS


def test_the_batfish_flows_as_one_batch_end_as_each_packet_sent_alone():
    # one truth: a batch (net.process) and single packets (net.send) give the same verdicts
    net = hp.Network.load(snapshot("test-vpc-peering"))
    flows = [(INSTANCE_A, IP_B, 80), (INSTANCE_A, IP_B, 22), (INSTANCE_B, IP_A, 80), (INSTANCE_A, "192.168.100.1", 22),
             (INSTANCE_B, "10.10.100.1", 22), (INSTANCE_B, "10.10.10.11", 22), (INSTANCE_A, IP_C, 22)]
    eni_of = {e.instance_id: e for e in net.topology.network_interfaces.values()}
    rec = np.zeros(len(flows), hp.PACKET)
    for k, (src, dst, port) in enumerate(flows):
        rec[k] = (0.0, int(IPv4Address(eni_of[src].private_ip)), int(IPv4Address(dst)), 41000 + k, port, 40, 6, 0x02)
    batch = net.process(rec, hp.Origin.ENI, [net.compiled.eni_index[eni_of[src].id] for src, _, _ in flows])
    alone = [hp.Network.load(snapshot("test-vpc-peering")).send(
        IP(dst=dst) / TCP(sport=41000 + k, dport=port, flags="S"), source=src).reason
        for k, (src, dst, port) in enumerate(flows)]
    assert [hp.Reason(int(r)) for r in batch.reason] == alone
    assert [r.disposition for r in alone] == [hp.Disposition.DENIED_IN, hp.Disposition.ACCEPTED, hp.Disposition.DENIED_IN,
                                              hp.Disposition.NO_ROUTE, hp.Disposition.NULL_ROUTED,
                                              hp.Disposition.DELIVERED_TO_SUBNET, hp.Disposition.ACCEPTED]


def test_flow_logs_record_the_walk_in_at_both_ends():
    # A's ENI logs the packets out over the peering (traffic-path 4: "Through an intra-region VPC
    # peering connection", flow log records), B's ENI logs them in: ACCEPT on 22, REJECT on 80
    from hyperplane.dataplane.flow_logs import FlowLogAggregator

    net = hp.Network.load(snapshot("test-vpc-peering"))
    eni_a = next(e for e in net.topology.network_interfaces.values() if e.instance_id == INSTANCE_A)
    eni_b = next(e for e in net.topology.network_interfaces.values() if e.instance_id == INSTANCE_B)
    rec = np.zeros(2, hp.PACKET)
    for k, port in enumerate((22, 80)):
        rec[k] = (1.0, int(IPv4Address(IP_A)), int(IPv4Address(IP_B)), 41000 + k, port, 60, 6, 0x02)
    logs = FlowLogAggregator()
    logs.add(net.process(rec, hp.Origin.ENI, net.compiled.eni_index[eni_a.id]), net.compiled)
    seen = {(r.interface_id, r.dstport): r for r in logs.records()}
    assert seen[(eni_a.id, 22)].action == seen[(eni_a.id, 80)].action == "ACCEPT"
    assert seen[(eni_a.id, 22)].traffic_path == 4 and seen[(eni_a.id, 22)].flow_direction == "egress"
    assert seen[(eni_b.id, 22)].action == "ACCEPT" and seen[(eni_b.id, 22)].flow_direction == "ingress"
    assert seen[(eni_b.id, 80)].action == "REJECT"
    assert seen[(eni_b.id, 22)].vpc_id == "vpc-00a31ce9d0c06675c"


def test_a_capture_taken_in_vpc_a_replays_into_the_peer_with_its_flow_logs(tmp_path):
    # one truth: a replay of A's SSH and HTTP SYNs ends as the single packets do, and the flow
    # logs of the walk-in are written
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    capture = tmp_path / "a.pcap"
    frames = [Ether() / IP(src=IP_A, dst=IP_B) / TCP(sport=41000 + k, dport=port, flags="S") for k, port in
              enumerate((22, 80))]
    for k, frame in enumerate(frames):
        frame.time = 1.0 + k
    wrpcap(str(capture), frames)
    net = hp.Network.load(snapshot("test-vpc-peering"))
    report = net.replay(capture, inject="eni", flow_logs=tmp_path / "logs")
    assert report.reasons == {"DELIVERED": 1, "SG_INGRESS_DENY": 1}
    assert report.flow_log_records == 4  # out of A, into B, for each
    assert any((tmp_path / "logs").rglob("*"))


def test_overlapping_peers_b_and_c_are_told_apart_by_the_route(peering_snapshot):
    # Batfish: "B and C have the same block 192.168.0.0/16 (which helps test proper routing)";
    # A sends 192.168.1.0/24 to pcx A-B and 192.168.2.0/24 to pcx A-C
    to_c = peering_snapshot.send(syn(IP_C, 22), source=INSTANCE_A)
    assert to_c.reason == hp.Reason.DELIVERED and hop(to_c, "peering").resource == PCX_AC
    assert peering_snapshot.compiled.enis[to_c.location].ref.instance_id == INSTANCE_C
    # 192.168.2.229 routed to A-B would be in B, where no subnet holds it
    assert peering_snapshot.send(syn("192.168.1.229", 22), source=INSTANCE_A).reason == hp.Reason.NO_ENI_AT_ADDRESS


def test_ssh_connects_across_the_peering_both_ways_and_http_fails_at_the_syn(peering_snapshot):
    # "VPC peering creates a direct network route between the two VPCs using private IPv4
    # addresses or IPv6 addresses." (VPC Peering guide, VPC peering connections)
    ssh = peering_snapshot.connect(INSTANCE_A, IP_B, 22)
    assert ssh.connected
    syn_ack = ssh.legs[1].result
    assert syn_ack.reason == hp.Reason.DELIVERED and hop(syn_ack, "peering").resource == PCX_AB
    http = peering_snapshot.connect(INSTANCE_A, IP_B, 80)
    assert not http.connected and http.failed_leg == "request"
    assert http.failed.result.reason == hp.Reason.SG_INGRESS_DENY


# -- scenarios in our topology format -------------------------------------------------------------

# VPC A (a function, 10.0.0.0/16) peers with VPC B (a database, 10.1.0.0/16); VPC B has an
# internet gateway; pcx-ac leads to a VPC C that is not in the network
TWO_VPCS = {
    "account_id": "123456789012", "region": "us-east-1",
    "vpcs": [{"id": "vpc-a", "cidr": "10.0.0.0/16"}, {"id": "vpc-b", "cidr": "10.1.0.0/16"}],
    "subnets": [
        {"id": "subnet-fn", "vpc_id": "vpc-a", "cidr": "10.0.1.0/24", "availability_zone": "us-east-1a",
         "route_table_id": "rtb-a"},
        {"id": "subnet-db", "vpc_id": "vpc-b", "cidr": "10.1.1.0/24", "availability_zone": "us-east-1a",
         "route_table_id": "rtb-b", "network_acl_id": "acl-db"},
    ],
    "internet_gateways": [{"id": "igw-b", "vpc_id": "vpc-b"}],
    "vpc_peering_connections": [
        {"id": "pcx-ab", "vpc_id": "vpc-a", "peer_vpc_id": "vpc-b"},
        {"id": "pcx-ac", "vpc_id": "vpc-a", "peer_vpc_id": "vpc-c", "peer_cidrs": ["10.2.0.0/16"]},
    ],
    "route_tables": [
        {"id": "rtb-a", "vpc_id": "vpc-a", "routes": [
            {"destination": "10.1.0.0/16", "target": "pcx-ab"},
            {"destination": "10.2.0.0/16", "target": "pcx-ac"},
            # "use the peer's internet gateway": what peering does not do
            {"destination": "0.0.0.0/0", "target": "pcx-ab"}]},
        {"id": "rtb-b", "vpc_id": "vpc-b", "routes": [
            {"destination": "10.0.0.0/16", "target": "pcx-ab"},
            {"destination": "0.0.0.0/0", "target": "igw-b"}]},
    ],
    "network_acls": [{
        "id": "acl-db", "vpc_id": "vpc-b",
        "ingress": [{"rule_number": 100, "protocol": "tcp", "ports": "5432", "cidr": "10.0.0.0/16", "rule_action": "allow"},
                    {"rule_number": 110, "protocol": "tcp", "ports": "6379", "cidr": "10.0.0.0/16", "rule_action": "allow"}],
        "egress": [{"rule_number": 100, "protocol": "tcp", "ports": "1024-65535", "cidr": "10.0.0.0/16",
                    "rule_action": "allow"}]}],
    "security_groups": [
        {"id": "sg-fn", "vpc_id": "vpc-a"},
        # the database admits the function's group, a group of the peer VPC; the cache only 10.9.0.0/16
        {"id": "sg-db", "vpc_id": "vpc-b", "ingress": [{"protocol": "tcp", "ports": "5432", "security_group_id": "sg-fn"}]},
        {"id": "sg-cache", "vpc_id": "vpc-b", "ingress": [{"protocol": "tcp", "ports": "6379", "cidr": "10.9.0.0/16"}]},
    ],
    "network_interfaces": [
        {"id": "eni-db", "subnet_id": "subnet-db", "private_ip": "10.1.1.10", "security_group_ids": ["sg-db"]},
        {"id": "eni-cache", "subnet_id": "subnet-db", "private_ip": "10.1.1.20", "security_group_ids": ["sg-cache"]},
    ],
    "functions": [{"name": "orders", "vpc_config": {"subnet_ids": ["subnet-fn"], "security_group_ids": ["sg-fn"]}}],
}


def network(tmp_path, document: dict) -> hp.Network:
    path = tmp_path / "topology.json"
    path.write_text(json.dumps(document))
    return hp.Network.load(path)


def changed(**edits) -> dict:
    """TWO_VPCS with top-level lists replaced."""
    return {**json.loads(json.dumps(TWO_VPCS)), **edits}


@pytest.fixture
def peered(tmp_path) -> hp.Network:
    return network(tmp_path, TWO_VPCS)


def test_a_function_connects_to_a_database_in_the_peer_vpc_through_its_nacl_and_group(peered):
    c = peered.function("orders").connect("10.1.1.10:5432")
    assert c.connected
    request = c.legs[0].result
    assert request.reason == hp.Reason.DELIVERED and peered.compiled.enis[request.location].id == "eni-db"
    assert stages(request) == ["invoke", "v2n-out", "sg-egress", "route", "nacl-out", "peering", "nacl-in", "sg-ingress"]
    assert hop(request, "nacl-in").resource == "acl-db"
    # the answer crosses back over the connection to the Hyperplane ENI, and V2N hands it back
    answer = c.legs[1].result
    assert answer.reason == hp.Reason.DELIVERED_TO_FUNCTION and hop(answer, "peering").resource == "pcx-ab"


def test_a_peer_group_referenced_by_a_rule_matches_the_private_addresses_of_its_enis(peered):
    # "You can update the inbound or outbound rules for your VPC security groups to reference
    # security groups for peered VPCs. Doing so allows traffic to flow to and from instances that
    # are associated with the referenced security group in the peered VPC." (VPC Peering guide)
    db = peered.function("orders").send(syn("10.1.1.10", 5432))
    assert db.reason == hp.Reason.DELIVERED
    assert "sg-fn" in hop(db, "sg-ingress").detail
    # the cache's group names only 10.9.0.0/16: its own NACL lets 6379 in, its group does not
    cache = peered.function("orders").send(syn("10.1.1.20", 6379))
    assert cache.reason == hp.Reason.SG_INGRESS_DENY and hop(cache, "sg-ingress").resource == "sg-cache"


def test_the_peer_subnets_nacl_judges_the_packet_on_its_way_in(peered):
    r = peered.function("orders").send(syn("10.1.1.10", 22))  # acl-db admits 5432 and 6379 only
    assert r.reason == hp.Reason.NACL_IN_DENY and hop(r, "nacl-in").resource == "acl-db"


def test_a_peering_carries_nothing_but_traffic_to_the_peer_vpcs_cidr_blocks(peered):
    # VPC peering limitations, "Edge to edge routing through a gateway or private connection":
    # "If VPC A has a VPN connection to a corporate network, resources in VPC B can't use the
    # VPN connection to communicate with the corporate network." (VPC Peering guide); likewise
    # VPC B's internet gateway, to which rtb-a sends 0.0.0.0/0 over pcx-ab
    r = peered.function("orders").send(syn("8.8.8.8", 443))
    assert r.reason == hp.Reason.PCX_ADDRESS_NOT_IN_PEER_VPC and r.disposition == hp.Disposition.NO_ROUTE
    assert r.explanation == "PCX_REQUIRES_ADDRESS_IN_VPC_CIDR"
    assert hop(r, "peering").decision == "drop" and "CIDR" in hop(r, "peering").detail


def test_no_transitive_peering_through_a_vpc_in_the_middle(tmp_path):
    # "Amazon VPCs do not support transitive peering, meaning that you can't communicate two VPCs
    # that are not directly peered using a third VPC as transit." (AWS whitepaper, Amazon VPC
    # Connectivity Options: VPC peering). VPC A sends VPC C's CIDR over pcx-ab; B peers with C.
    doc = changed()
    doc["vpcs"].append({"id": "vpc-c", "cidr": "10.2.0.0/16"})
    doc["subnets"].append({"id": "subnet-c", "vpc_id": "vpc-c", "cidr": "10.2.1.0/24", "availability_zone": "us-east-1a"})
    doc["network_interfaces"].append({"id": "eni-c", "subnet_id": "subnet-c", "private_ip": "10.2.1.10",
                                      "security_group_ids": ["sg-c"]})
    doc["security_groups"].append({"id": "sg-c", "vpc_id": "vpc-c", "ingress": [{"protocol": "all", "cidr": "0.0.0.0/0"}]})
    doc["vpc_peering_connections"] = [{"id": "pcx-ab", "vpc_id": "vpc-a", "peer_vpc_id": "vpc-b"},
                                      {"id": "pcx-bc", "vpc_id": "vpc-b", "peer_vpc_id": "vpc-c"}]
    doc["route_tables"][0]["routes"] = [{"destination": "10.1.0.0/16", "target": "pcx-ab"},
                                        {"destination": "10.2.0.0/16", "target": "pcx-ab"}]
    doc["route_tables"][1]["routes"].append({"destination": "10.2.0.0/16", "target": "pcx-bc"})
    net = network(tmp_path, doc)
    r = net.function("orders").send(syn("10.2.1.10", 443))
    assert r.reason == hp.Reason.PCX_ADDRESS_NOT_IN_PEER_VPC and hop(r, "peering").resource == "pcx-ab"


def test_a_peering_connection_that_is_not_active_carries_nothing(tmp_path):
    # "To accept a request, the VPC peering connection must be in the pending-acceptance state,
    # and you must be the owner of the peer VPC." (EC2 API, AcceptVpcPeeringConnection): until
    # then it is no route between the VPCs
    doc = changed()
    doc["vpc_peering_connections"][0]["status"] = "pending-acceptance"
    net = network(tmp_path, doc)
    r = net.function("orders").send(syn("10.1.1.10", 5432))
    assert r.reason == hp.Reason.PCX_NOT_ACTIVE and r.disposition == hp.Disposition.NULL_ROUTED
    assert "pending-acceptance" in hop(r, "peering").detail
    assert not net.function("orders").connect("10.1.1.10:5432").connected


def test_an_unknown_peering_status_is_refused_with_its_place(tmp_path):
    doc = changed()
    doc["vpc_peering_connections"][0]["status"] = "accepted"
    where = r"topology.json: vpc_peering_connections\[0\].status: "
    with pytest.raises(hp.TopologyError, match=where + "unknown peering connection status 'accepted'"):
        network(tmp_path, doc)


def test_a_peer_vpc_not_in_the_network_is_where_the_packet_exits_and_the_answer_comes_back(peered):
    r = peered.function("orders").send(syn("10.2.3.4", 443))
    assert r.reason == hp.Reason.FORWARDED_TO_PEERING and r.disposition == hp.Disposition.EXITS_NETWORK
    assert "not in the network" in hop(r, "peering").detail
    # the answer comes in over pcx-ac to the Hyperplane ENI and back to the function
    answer = r.reply(TCP(flags="SA"))
    assert answer.reason == hp.Reason.DELIVERED_TO_FUNCTION
    assert hop(answer, "peering").resource == "pcx-ac" and "in from the peer VPC" in hop(answer, "peering").detail
    assert peered.connect("orders", "10.2.3.4", 443).connected


def test_an_enis_answer_from_an_absent_peer_vpc_says_what_to_add(tmp_path):
    doc = changed()
    doc["network_interfaces"].append({"id": "eni-app", "subnet_id": "subnet-fn", "private_ip": "10.0.1.50",
                                      "security_group_ids": ["sg-fn"]})
    net = network(tmp_path, doc)
    out = net.send(syn("10.2.3.4", 443), source="eni-app")
    assert out.reason == hp.Reason.FORWARDED_TO_PEERING
    with pytest.raises(ValueError, match="10.2.3.4, in a peer VPC that is not in the network.*add that VPC"):
        out.reply(TCP(flags="SA"))


def test_reachability_from_the_function_covers_the_peer_vpcs_enis(peered):
    rows = peered.reachability("orders")
    assert rows.connected("eni-db", 5432)
    assert not rows.connected("eni-db", 22)  # acl-db
    assert not rows.connected("eni-cache", 6379)  # sg-cache


def test_lint_finds_a_peering_route_the_connection_does_not_carry(peered, tmp_path, peering_snapshot):
    from hyperplane.connectivity.lint import lint

    found = [f for f in lint(peered) if f.kind == "peering-route-not-carried"]
    assert [(f.resource, f.subject) for f in found] == [("rtb-a", "0.0.0.0/0 -> pcx-ab")]
    assert found[0].evidence.failed.result.reason == hp.Reason.PCX_ADDRESS_NOT_IN_PEER_VPC
    doc = changed()
    doc["vpc_peering_connections"][0]["status"] = "pending-acceptance"
    pending = {f.subject: f for f in lint(network(tmp_path, doc)) if f.kind == "peering-route-not-carried"}
    assert "pending-acceptance, not active" in pending["10.1.0.0/16 -> pcx-ab"].message
    # Batfish's snapshot routes only what each peer holds
    assert not [f for f in lint(peering_snapshot) if f.kind == "peering-route-not-carried"]


# -- addresses nobody holds ------------------------------------------------------------------------

def test_an_address_in_the_vpc_cidr_but_in_no_subnet_is_null_routed_one_in_a_subnet_is_delivered_to_it(peered):
    # as Batfish has it: the VPC router has no subnet for 10.0.200.9 (NULL_ROUTED); 10.0.1.200 is
    # in subnet-fn, where no ENI holds it (DELIVERED_TO_SUBNET, documented in the README)
    fn = peered.function("orders")
    null = fn.send(syn("10.0.200.9", 443))
    assert null.reason == hp.Reason.NO_SUBNET_AT_ADDRESS and null.disposition == hp.Disposition.NULL_ROUTED
    empty = fn.send(syn("10.0.1.200", 443))
    assert empty.reason == hp.Reason.NO_ENI_AT_ADDRESS and empty.disposition == hp.Disposition.DELIVERED_TO_SUBNET
    # the same across the peering, in VPC B
    assert fn.send(syn("10.1.77.7", 5432)).reason == hp.Reason.NO_SUBNET_AT_ADDRESS
    assert fn.send(syn("10.1.1.99", 5432)).reason == hp.Reason.NO_ENI_AT_ADDRESS


# -- snapshots: a rule naming the peer's group through the peering connection ---------------------

def test_a_snapshot_rule_naming_a_peer_vpcs_group_admits_that_groups_enis(tmp_path):
    # B's group admits A's group on 8080 (UserIdGroupPairs with the peering connection's id, as
    # describe-security-groups gives a rule that references a peer VPC's group)
    folder = tmp_path / "peering"
    shutil.copytree(snapshot("test-vpc-peering"), folder)
    groups_file = folder / "aws_configs" / "SecurityGroups.json"
    groups = json.loads(groups_file.read_text())
    [b] = [g for g in groups["SecurityGroups"] if g["GroupId"] == SG_B]
    b["IpPermissions"].append({"FromPort": 8080, "ToPort": 8080, "IpProtocol": "tcp", "IpRanges": [],
                               "Ipv6Ranges": [], "PrefixListIds": [],
                               "UserIdGroupPairs": [{"GroupId": SG_A, "UserId": "554773406868",
                                                     "VpcPeeringConnectionId": PCX_AB,
                                                     "PeeringStatus": "active"}]})
    groups_file.write_text(json.dumps(groups))
    net = hp.Network.load(folder)
    from_a = net.send(syn(IP_B, 8080), source=INSTANCE_A)
    assert from_a.reason == hp.Reason.DELIVERED and SG_A in hop(from_a, "sg-ingress").detail
    assert net.send(syn(IP_B, 8081), source=INSTANCE_A).reason == hp.Reason.SG_INGRESS_DENY  # that rule's port only


def split_by_account(tmp_path: Path, vpc_id: str, account: str) -> Path:
    """test-vpc-peering rewritten as two accounts' folders in one snapshot: ``vpc_id`` and all it
    holds go to ``account``'s folder (its OwnerId changed), the rest stay in the original one."""
    out = tmp_path / "accounts"
    source = snapshot("test-vpc-peering") / "aws_configs"
    for f in sorted(source.glob("*.json")):
        doc = json.loads(f.read_text())
        [(key, items)] = doc.items()

        def vpc_of(item: dict) -> str | None:
            if key == "Reservations":
                return item["Instances"][0].get("VpcId")
            return item.get("VpcId")

        moved = [i for i in items if vpc_of(i) == vpc_id]
        for item in moved:
            for owned in [item, *item.get("Instances", [])]:
                if "OwnerId" in owned:
                    owned["OwnerId"] = account
        kept = [i for i in items if vpc_of(i) != vpc_id]
        if key == "AvailabilityZones":  # the region's zones: in every account's folder
            kept = moved = items
        for folder, part in (("554773406868", kept), (account, moved)):
            if part:
                (out / folder / "us-east-2").mkdir(parents=True, exist_ok=True)
                (out / folder / "us-east-2" / f.name).write_text(json.dumps({key: part}))
    return out


def test_the_peer_vpc_in_another_accounts_folder_and_a_rule_naming_its_group_by_account(tmp_path):
    # "The peer VPC can be a VPC in your account, or a VPC in another AWS account. To reference a
    # security group that is in another AWS account but the same Region, include the account
    # number with the ID of the security group." (VPC Peering guide, peer security groups)
    folder = split_by_account(tmp_path, "vpc-00a31ce9d0c06675c", "210987654321")
    groups_file = folder / "210987654321" / "us-east-2" / "SecurityGroups.json"
    groups = json.loads(groups_file.read_text())
    [b] = [g for g in groups["SecurityGroups"] if g["GroupId"] == SG_B]
    b["IpPermissions"].append({"FromPort": 5432, "ToPort": 5432, "IpProtocol": "tcp", "IpRanges": [], "Ipv6Ranges": [],
                               "PrefixListIds": [], "UserIdGroupPairs": [{"GroupId": SG_A, "UserId": "554773406868",
                                                                          "VpcPeeringConnectionId": PCX_AB}]})
    groups_file.write_text(json.dumps(groups))
    net = hp.Network.load(folder)
    assert net.topology.vpcs["vpc-00a31ce9d0c06675c"].cidrs  # VPC B is in the network, from its own folder
    db = net.send(syn(IP_B, 5432), source=INSTANCE_A)
    assert db.reason == hp.Reason.DELIVERED and SG_A in hop(db, "sg-ingress").detail
    assert hop(db, "peering").resource == PCX_AB
    assert net.send(syn(IP_B, 80), source=INSTANCE_A).reason == hp.Reason.SG_INGRESS_DENY
    assert net.connect(INSTANCE_A, IP_B, 5432).connected
