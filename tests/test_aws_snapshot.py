"""Loading AWS describe-* snapshot folders: third-party snapshots read in place, flows checked
against what their JSON says, Lambda ENIs taken over, broken input named precisely, and our own
topologies written out as describe-* folders and loaded back to the same verdicts."""

from __future__ import annotations

import copy
import json
import random
import warnings
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

import hyperplane as hp
from hyperplane.errors import TopologyError
from hyperplane.loaders import load_example_topology
from hyperplane.formats.snapshot_reader import load_aws_snapshot, parse_aws_documents, read_aws_snapshot
from hyperplane.formats.snapshot_report import SnapshotWarning
from hyperplane.formats.snapshot_writer import write_describe_folder
from hyperplane.reasons import Reason

from aws_snapshots import SNAPSHOTS, snapshot

FOLDERS = ["hybrid-cloud", "test-nat-gateway", "test-public-private-subnet", "test-public-subnet",
           "test-subnet", "test-vpc-endpoint-gateway", "test-vpc-endpoint-interface", "test-vpc-peering"]

pytestmark = pytest.mark.filterwarnings("ignore::hyperplane.formats.snapshot_report.SnapshotWarning")


def load(name: str) -> hp.Network:
    return hp.Network.load(snapshot(name))


def syn(dst: str, port: int, src: str | None = None) -> IP:
    ip = IP(dst=dst) if src is None else IP(src=src, dst=dst)
    return ip / TCP(sport=40000, dport=port, flags="S")


def mentions(result, text: str) -> bool:
    return any(text in f"{h}" for h in result.hops)


# --------------------------------------------------------------------------------------------
# every third-party snapshot loads


@pytest.mark.parametrize("name", FOLDERS)
def test_every_third_party_snapshot_loads_as_a_valid_topology(name):
    topology, report = read_aws_snapshot(snapshot(name))
    topology.validate()
    assert topology.vpcs and topology.subnets and topology.network_interfaces
    assert report.loaded["vpcs"] == len(topology.vpcs)
    assert all(f.endswith(".json") for f in report.files)


def test_network_load_of_a_folder_warns_once_about_what_is_not_emulated():
    folder = snapshot("test-public-private-subnet")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hp.Network.load(folder)
    ours = [w for w in caught if issubclass(w.category, SnapshotWarning)]
    assert len(ours) == 1
    assert "VpnGateways (VPN gateways): 1" in str(ours[0].message)
    assert "CustomerGateways (customer gateways): 1" in str(ours[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped (availability zones carry no behaviour)
        hp.Network.load(snapshot("test-public-subnet"))


def test_region_subfolders_and_skipped_kinds_are_counted_across_regions():
    topology, report = read_aws_snapshot(snapshot("hybrid-cloud"))
    assert report.regions == ["us-east-2", "us-west-2"]
    assert len(topology.vpcs) == 4  # two per region
    assert report.loaded["transit_gateways"] == 2 and report.loaded["transit_gateway_attachments"] == 6
    assert report.skipped["TransitGatewayAttachments (peering, state deleting)"] == 2  # seen from each side
    assert report.skipped["NetworkInterfaces (transit_gateway, no security group)"] == 4
    # AvailabilityZones are read now (zone ids for flow logs' az-id), neither ignored nor skipped
    assert not any(k.startswith("AvailabilityZones") for k in (*report.ignored, *report.skipped))
    assert "ServiceDetails (VPC endpoint services)" not in report.skipped
    assert topology.account_id == "554773406868"


# --------------------------------------------------------------------------------------------
# flows, each checked against the snapshot's JSON


def test_nat_gateway_private_instance_reaches_the_internet_with_the_nat_public_address():
    net = load("test-nat-gateway")
    # i-0a128d26e59be60f3 (10.1.1.98) is in "Subnet 1", whose table sends 0.0.0.0/0 to the NAT
    # gateway; the NAT lives in the public subnet whose table sends 0.0.0.0/0 to the IGW.
    r = net.send(syn("8.8.8.8", 80), source="i-0a128d26e59be60f3")
    assert r.delivered and r.reason == Reason.EXITED_TO_INTERNET
    assert r.packet.src == "3.135.127.225"  # NatGatewayAddresses[0].PublicIp
    assert mentions(r, "nat-07ab4846da51f4612") and mentions(r, "igw-071753b9c23d8a9b2")
    back = r.reply(TCP(flags="SA"))
    assert back.reason == Reason.DELIVERED and back.packet.dst == "10.1.1.98"


def test_nat_gateway_refuses_a_connection_from_the_internet():
    net = load("test-nat-gateway")
    r = net.send(syn("3.135.127.225", 80, src="8.8.8.8"), source="internet")
    assert not r.delivered and r.reason == Reason.NAT_UNSOLICITED_INBOUND


def test_nat_gateway_snapshot_jump_host_admits_ssh_and_ping_from_anywhere_but_not_http():
    net = load("test-nat-gateway")
    # Jump Host: public IP 18.216.129.140, group terraform-...02 allows tcp/22 and icmp type 8.
    assert net.send(syn("18.216.129.140", 22, src="198.51.100.7"), source="internet").reason == Reason.DELIVERED
    ping = net.send(IP(src="198.51.100.7", dst="18.216.129.140") / ICMP(type=8), source="internet")
    assert ping.reason == Reason.DELIVERED
    assert net.send(syn("18.216.129.140", 80, src="198.51.100.7"), source="internet").reason == Reason.SG_INGRESS_DENY


def test_nat_gateway_snapshot_subnet_without_explicit_table_uses_the_main_one():
    net = load("test-nat-gateway")
    # "Subnet 20" has no association: the main table rtb-0e169c4a1e0b27b55 has the local route only.
    assert net.topology.subnets["subnet-02ff259e663e9613e"].route_table_id == "rtb-0e169c4a1e0b27b55"
    r = net.send(syn("8.8.8.8", 80), source="i-0a73a1a6021c03ddb")
    assert r.reason == Reason.NO_ROUTE


def test_public_subnet_instance_is_reachable_on_ssh_only():
    net = load("test-public-subnet")
    # eni-00064850627e198ee: 10.0.0.91 <-> 18.216.80.133, launch-wizard-1 allows tcp/22 from 0.0.0.0/0
    assert net.send(syn("18.216.80.133", 22, src="203.0.113.9"), source="internet").reason == Reason.DELIVERED
    assert net.send(syn("18.216.80.133", 443, src="203.0.113.9"), source="internet").reason == Reason.SG_INGRESS_DENY
    out = net.send(syn("8.8.8.8", 443), source="i-06669a407b2ef3ae5")
    assert out.reason == Reason.EXITED_TO_INTERNET and out.packet.src == "18.216.80.133"


def test_single_subnet_instances_talk_ssh_and_have_no_way_out():
    net = load("test-subnet")
    # both instances: launch-wizard groups allowing tcp/22 only; the only table is local-only
    assert net.send(syn("10.10.1.228", 22), source="i-07519d6ba3f9497e4").reason == Reason.DELIVERED
    assert net.send(syn("10.10.1.228", 443), source="i-07519d6ba3f9497e4").reason == Reason.SG_INGRESS_DENY
    assert net.send(syn("8.8.8.8", 443), source="i-08ef86e76fceabd8d").reason == Reason.NO_ROUTE


def test_route_to_a_vpn_gateway_loads_and_stops_as_an_unmodelled_target():
    net = load("test-public-private-subnet")
    # the private instance's subnet uses the main table: 0.0.0.0/0 -> vgw-070087240d6fa2989
    r = net.send(syn("8.8.8.8", 443), source="i-099cf38911942421c")
    assert not r.delivered and r.reason == Reason.UNMODELLED_TARGET
    assert mentions(r, "vgw-070087240d6fa2989")
    pub = net.send(syn("8.8.8.8", 443), source="i-094a9e5b545a4fde4")
    assert pub.reason == Reason.EXITED_TO_INTERNET and pub.packet.src == "13.58.55.60"


def test_gateway_endpoint_carries_s3_traffic_from_the_private_subnet():
    net = load("test-vpc-endpoint-gateway")
    # private-web01 (10.1.101.36): table testing-noigw = local + pl-63a5400a -> vpce-0b7357542bb7b83ec
    s3 = net.send(syn("52.216.10.10", 443), source="i-01c6c0647fdccc89e")  # 52.216.0.0/15 is S3
    assert s3.reason == Reason.DELIVERED_TO_GATEWAY_ENDPOINT and mentions(s3, "vpce-0b7357542bb7b83ec")
    udp = net.send(IP(dst="52.216.10.10") / UDP(sport=40000, dport=53), source="i-01c6c0647fdccc89e")
    assert udp.reason == Reason.GATEWAY_ENDPOINT_PROTOCOL
    assert net.send(syn("8.8.8.8", 443), source="i-01c6c0647fdccc89e").reason == Reason.NO_ROUTE
    endpoint = net.topology.vpc_endpoints["vpce-0b7357542bb7b83ec"]
    assert endpoint.prefix_list_id == "pl-63a5400a"
    assert set(endpoint.route_table_ids) == {"rtb-04f71fc2caa8d94cf", "rtb-0efde4139784b75b0"}


def test_interface_endpoint_eni_admits_https_from_the_instance_and_nothing_else():
    net = load("test-vpc-endpoint-interface")
    endpoint = net.topology.vpc_endpoints["vpce-083c683a6be29b889"]
    assert endpoint.network_interface_ids == ("eni-0084b734451ba23ca",)
    assert "cloudtrail.us-east-1.amazonaws.com" in endpoint.dns_names
    eni = net.topology.network_interfaces["eni-0084b734451ba23ca"]
    assert eni.kind == "vpc_endpoint" and eni.managed_by == endpoint.id
    # testing_sg on the endpoint ENI allows tcp/443 and tcp/22 from 0.0.0.0/0, not tcp/80
    assert net.send(syn("10.1.101.97", 443), source="i-0a0fbd0cfa774970f").reason == Reason.DELIVERED
    assert net.send(syn("10.1.101.97", 80), source="i-0a0fbd0cfa774970f").reason == Reason.SG_INGRESS_DENY


def test_peering_routes_walk_into_the_peer_and_a_route_to_a_deleted_gateway_is_a_blackhole():
    net = load("test-vpc-peering")
    vpc_b = net.topology.vpcs["vpc-00a31ce9d0c06675c"]
    assert vpc_b.cidrs == (IPv4Network("192.168.0.0/16"),)  # 192.169.0.0/16 is disassociated
    # both VPCs of each connection are in the snapshot: the packet is delivered in the peer
    # (tests/test_peering.py has Batfish's flows on this snapshot)
    a_to_b = net.send(syn("192.168.1.106", 22), source="i-06ba034d88c84ef07")
    assert a_to_b.reason == Reason.DELIVERED and mentions(a_to_b, "pcx-0b89b559e3319d6cf")
    c_to_a = net.send(syn("10.10.10.157", 22), source="i-04a292ff83b3aa833")
    assert c_to_a.reason == Reason.DELIVERED and mentions(c_to_a, "pcx-0d5b836985ac8ca8c")
    # VPC B: 0.0.0.0/0 -> igw-0a2c9ae201b441bff, State blackhole (the gateway is gone)
    assert net.send(syn("8.8.8.8", 80), source="i-0b14080af811fda3d").reason == Reason.BLACKHOLE_ROUTE


def test_hybrid_cloud_transit_gateway_routes_cross_and_ssh_from_the_internet_works():
    net = load("hybrid-cloud")
    # vpc-2 (us-east-2) main table: 10.20.0.0/16 -> tgw-06b348adabd13452d, which the transit
    # gateway routes to vpc-1's attachment (tests/test_transit_gateway.py has the other flows)
    r = net.send(syn("10.20.1.207", 22), source="i-04cd3db5124a05ee6")
    assert r.reason == Reason.DELIVERED and mentions(r, "tgw-06b348adabd13452d")
    # vpc-1's instance 10.20.1.207 has public IP 13.59.144.125; launch-wizard-1 allows 22 and 3306
    for port in (22, 3306):
        assert net.send(syn("13.59.144.125", port, src="198.51.100.1"), source="internet").reason == Reason.DELIVERED
    assert net.send(syn("13.59.144.125", 80, src="198.51.100.1"), source="internet").reason == Reason.SG_INGRESS_DENY
    # us-west-2: vpc-3's instance 10.40.2.80 <-> 54.191.42.182
    assert net.send(syn("54.191.42.182", 22, src="198.51.100.1"), source="internet").reason == Reason.DELIVERED


# --------------------------------------------------------------------------------------------
# Lambda


def _documents(**extra) -> list[tuple[str, dict]]:
    """A tiny snapshot written here: one VPC, one private subnet, a group, an instance."""
    docs = {
        "Vpcs": [{"VpcId": "vpc-1", "CidrBlock": "10.9.0.0/16", "OwnerId": "111122223333"}],
        "Subnets": [{"SubnetId": "subnet-1", "VpcId": "vpc-1", "CidrBlock": "10.9.1.0/24", "AvailabilityZone": "eu-west-1a"}],
        "RouteTables": [{"RouteTableId": "rtb-1", "VpcId": "vpc-1", "Associations": [{"Main": True}],
                         "Routes": [{"DestinationCidrBlock": "10.9.0.0/16", "GatewayId": "local", "State": "active"}]}],
        "SecurityGroups": [
            {"GroupId": "sg-default", "GroupName": "default", "VpcId": "vpc-1", "IpPermissions": [],
             "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]},
            {"GroupId": "sg-fn", "GroupName": "fn", "VpcId": "vpc-1", "IpPermissions": [],
             "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]},
            {"GroupId": "sg-db", "GroupName": "db", "VpcId": "vpc-1", "IpPermissionsEgress": [],
             "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
                                "UserIdGroupPairs": [{"GroupId": "sg-fn"}]}]}],
        "NetworkAcls": [{"NetworkAclId": "acl-1", "VpcId": "vpc-1", "IsDefault": True, "Entries": [
            {"RuleNumber": 100, "Egress": e, "Protocol": "-1", "RuleAction": "allow", "CidrBlock": "0.0.0.0/0"}
            for e in (True, False)]}],
        "NetworkInterfaces": [
            {"NetworkInterfaceId": "eni-db", "SubnetId": "subnet-1", "PrivateIpAddress": "10.9.1.20",
             "InterfaceType": "interface", "Description": "RDSNetworkInterface", "Groups": [{"GroupId": "sg-db"}]},
            {"NetworkInterfaceId": "eni-0lambda0000000001", "SubnetId": "subnet-1", "PrivateIpAddress": "10.9.1.77",
             "InterfaceType": "lambda", "Description": "AWS Lambda VPC ENI-orders-1234",
             "Groups": [{"GroupId": "sg-fn"}]}],
    }
    docs.update(extra)
    return [(f"{k}.json", {k: v}) for k, v in docs.items()]


ORDERS = {"FunctionName": "orders", "Role": "arn:aws:iam::111122223333:role/orders",
          "FunctionArn": "arn:aws:lambda:eu-west-1:111122223333:function:orders", "Version": "$LATEST",
          "VpcConfig": {"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-fn"], "VpcId": "vpc-1"}}


def test_a_snapshot_function_is_active_on_its_existing_lambda_eni(tmp_path):
    for name, doc in _documents():
        (tmp_path / name).write_text(json.dumps(doc))
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "orders.json").write_text(json.dumps(ORDERS))  # get-function-configuration
    net = hp.Network.load(tmp_path)
    fn = net.function("orders")
    assert fn.state == "Active"
    assert [(e.id, e.private_ip) for e in fn.hyperplane_enis] == [("eni-0lambda0000000001", "10.9.1.77")]
    assert net.topology.function("orders").role.managed_policies == ("AWSLambdaVPCAccessExecutionRole",)
    assert net.topology.network_interfaces["eni-db"].kind == "rds"
    r = fn.send(IP(dst="10.9.1.20") / TCP(dport=5432, flags="S"))
    assert r.reason == Reason.DELIVERED and r.packet.src == "10.9.1.77"
    assert fn.send(IP(dst="10.9.1.20") / TCP(dport=22, flags="S")).reason == Reason.SG_INGRESS_DENY
    watched = hp.Network.load(tmp_path, ready=False)  # to watch the ENI being (re)created instead
    assert watched.function("orders").state == "Pending"


def test_list_functions_output_with_versions_and_a_function_outside_any_vpc():
    listing = [ORDERS, dict(ORDERS, Version="1", FunctionArn=ORDERS["FunctionArn"] + ":1"),
               {"FunctionName": "thumbs", "Role": "arn:aws:iam::111122223333:role/t", "Version": "$LATEST",
                "VpcConfig": {"SubnetIds": [], "SecurityGroupIds": [], "VpcId": ""}}]
    topology, _ = parse_aws_documents(_documents(Functions=listing))
    orders = topology.function("orders")
    assert [v.version for v in orders.versions] == ["1"] and orders.versions[0].vpc_config == orders.vpc_config
    assert topology.function("thumbs").vpc_config is None
    assert topology.region == "eu-west-1" and topology.account_id == "111122223333"


def test_unrecognised_keys_and_pagination_tokens_are_reported_not_fatal():
    docs = _documents() + [("x.json", {"Widgets": [1, 2, 3], "NextToken": "abc"})]
    _, report = parse_aws_documents(docs)
    assert report.skipped == {"Widgets (unrecognised key)": 3}


def _rich_documents() -> dict[str, dict]:
    """_documents() plus one of most things a describe output can hold."""
    docs = dict(_documents())
    docs["RouteTables.json"]["RouteTables"][0]["Routes"] += [
        {"DestinationCidrBlock": "172.16.0.0/12", "TransitGatewayId": "tgw-1", "State": "active"},
        {"DestinationCidrBlock": "192.168.0.0/16", "InstanceId": "i-fw", "State": "active"},
        {"DestinationIpv6CidrBlock": "::/0", "EgressOnlyInternetGatewayId": "eigw-1", "State": "active"},
        {"DestinationCidrBlock": "10.8.0.0/16", "VpcPeeringConnectionId": "pcx-1", "State": "active"},
        {"DestinationCidrBlock": "100.64.0.0/10", "GatewayId": "vpce-gwlb", "State": "active"},
        {"DestinationPrefixListId": "pl-office", "NatGatewayId": "nat-gone", "State": "blackhole"},
        {"DestinationCidrBlock": "203.0.113.0/24", "GatewayId": "vgw-1", "Origin": "EnableVgwRoutePropagation"},
    ]
    docs["ManagedPrefixLists.json"] = {"ManagedPrefixLists": [
        {"PrefixListId": "pl-office", "PrefixListName": "office", "AddressFamily": "IPv4",
         "Entries": [{"Cidr": "198.51.100.0/24"}, {"Cidr": "192.0.2.0/24"}]},
        {"PrefixListId": "pl-v6", "PrefixListName": "v6", "AddressFamily": "IPv6"}]}
    docs["VpcEndpoints.json"] = {"VpcEndpoints": [{"VpcEndpointId": "vpce-gwlb", "VpcEndpointType": "GatewayLoadBalancer",
                                                   "VpcId": "vpc-1", "ServiceName": "com.example.fw", "State": "available"}]}
    docs["VpcPeeringConnections.json"] = {"VpcPeeringConnections": [
        {"VpcPeeringConnectionId": "pcx-1", "Status": {"Code": "active"},
         "RequesterVpcInfo": {"VpcId": "vpc-1", "CidrBlock": "10.9.0.0/16"},
         "AccepterVpcInfo": {"VpcId": "vpc-other-account", "CidrBlockSet": [{"CidrBlock": "10.8.0.0/16"}]}},
        {"VpcPeeringConnectionId": "pcx-old", "Status": {"Code": "deleted"},
         "RequesterVpcInfo": {"VpcId": "vpc-1"}, "AccepterVpcInfo": {"VpcId": "vpc-2"}}]}
    docs["Reservations.json"] = {"Reservations": [{"Instances": [{"InstanceId": "i-fw", "NetworkInterfaces": [
        {"NetworkInterfaceId": "eni-fw", "SubnetId": "subnet-1", "PrivateIpAddress": "10.9.1.30", "SourceDestCheck": False,
         "PrivateIpAddresses": [{"Primary": True, "PrivateIpAddress": "10.9.1.30"}, {"PrivateIpAddress": "10.9.1.31"}],
         "Groups": [{"GroupId": "sg-fn"}], "Attachment": {"DeviceIndex": 0}}]}]}]}
    docs["Addresses.json"] = {"Addresses": [
        {"PublicIp": "54.1.2.3", "AllocationId": "eipalloc-1", "InstanceId": "i-fw", "PrivateIpAddress": "10.9.1.30"},
        {"PublicIp": "54.1.2.4", "AllocationId": "eipalloc-2"}]}
    docs["SecurityGroups.json"]["SecurityGroups"].append({
        "GroupId": "sg-x", "GroupName": "x", "VpcId": "vpc-1", "OwnerId": "111122223333", "IpPermissionsEgress": [],
        "IpPermissions": [
            {"IpProtocol": "6", "FromPort": 22, "ToPort": 22, "PrefixListIds": [{"PrefixListId": "pl-office"}],
             "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
            {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-peer", "UserId": "999988887777",
                                                       "VpcPeeringConnectionId": "pcx-1"}]},
            {"IpProtocol": "50", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]})
    docs["NetworkAcls.json"]["NetworkAcls"].append({"NetworkAclId": "acl-2", "VpcId": "vpc-1", "Entries": [
        {"RuleNumber": 10, "Egress": False, "Protocol": "6", "RuleAction": "allow", "CidrBlock": "0.0.0.0/0",
         "PortRange": {"From": 443, "To": 443}},
        {"RuleNumber": 20, "Egress": False, "Protocol": "1", "RuleAction": "deny", "CidrBlock": "0.0.0.0/0",
         "IcmpTypeCode": {"Type": 8, "Code": -1}},
        {"RuleNumber": 30, "Egress": False, "Protocol": "-1", "RuleAction": "allow", "Ipv6CidrBlock": "::/0"},
        {"RuleNumber": 32767, "Egress": False, "Protocol": "-1", "RuleAction": "deny", "CidrBlock": "0.0.0.0/0"}]})
    docs["NatGateways.json"] = {"NatGateways": [{"NatGatewayId": "nat-1", "SubnetId": "subnet-1", "State": "available",
                                                 "NatGatewayAddresses": [{"AllocationId": "eipalloc-9", "PrivateIp": "10.9.1.9",
                                                                          "PublicIp": "54.9.9.9", "NetworkInterfaceId": "eni-nat"}]}]}
    docs["Functions.json"] = {"Functions": [ORDERS]}
    return docs


def test_describe_fields_map_to_the_model_and_unemulated_parts_are_reported():
    topology, report = parse_aws_documents(_rich_documents().items())

    routes = {str(r.destination): (r.target, r.state) for r in topology.route_tables["rtb-1"].routes}
    assert routes["172.16.0.0/12"] == ("tgw-1", "active")
    assert routes["192.168.0.0/16"] == ("eni-fw", "active")  # InstanceId -> the instance's ENI
    assert routes["10.8.0.0/16"] == ("pcx-1", "active")
    assert routes["100.64.0.0/10"] == ("vpce-gwlb", "active")  # kept: an unemulated target
    assert routes["pl-office"] == ("nat-gone", "blackhole")
    assert routes["203.0.113.0/24"] == ("vgw-1", "active")
    fw = topology.network_interfaces["eni-fw"]
    assert (fw.instance_id, fw.public_ip, fw.secondary_private_ips, fw.source_dest_check) == (
        "i-fw", IPv4Address("54.1.2.3"), (IPv4Address("10.9.1.31"),), False)
    assert topology.prefix_lists["pl-office"].cidrs == (IPv4Network("198.51.100.0/24"), IPv4Network("192.0.2.0/24"))
    pcx = topology.vpc_peering_connections["pcx-1"]
    assert (pcx.vpc_id, pcx.peer_vpc_id, pcx.peer_cidrs) == ("vpc-1", "vpc-other-account", (IPv4Network("10.8.0.0/16"),))
    ssh, ping, esp = topology.security_groups["sg-x"].ingress
    assert (ssh.protocol, ssh.port_range, ssh.prefix_list_id) == (6, (22, 22), "pl-office")
    assert (ping.protocol, ping.icmp_type, ping.icmp_code) == (1, 8, -1)
    assert (esp.protocol, esp.port_range) == (50, (0, 65535))
    http, echo = topology.network_acls["acl-2"].entries
    assert (http.rule_number, http.port_range, http.rule_action) == (10, (443, 443), "allow")
    assert (echo.protocol, echo.icmp_type, echo.rule_action) == (1, 8, "deny")
    assert topology.network_acls["acl-2"].ingress[-1].is_implicit_deny
    assert report.skipped == {
        "ManagedPrefixLists (IPv6)": 1, "VpcPeeringConnections (deleted)": 1,
        "Addresses (Elastic IPs not associated)": 1, "security group rules (IPv6 ranges)": 1,
        "security group rules (groups of other accounts / peer VPCs)": 1, "network ACL entries (IPv6)": 1,
        "routes (IPv6)": 1, "VpcEndpoints (GatewayLoadBalancer)": 1}
    net = hp.Network(topology, ready=True)
    transit = net.send(syn("172.20.0.1", 443), source="eni-fw")
    assert transit.reason == Reason.UNMODELLED_TARGET and mentions(transit, "tgw-1")
    assert net.send(syn("100.64.0.3", 443), source="eni-fw").reason == Reason.UNMODELLED_TARGET
    assert net.send(syn("10.8.0.5", 443), source="eni-fw").reason == Reason.FORWARDED_TO_PEERING


# --------------------------------------------------------------------------------------------
# broken input: file, JSON path, problem


_JUNK = [None, 5, -1, "", "x", "10.0.0.0/8", "999.1.1.1", 70000, True, [], {}, [1], {"a": 1}, "eni-nope", "sg-nope"]


def _places(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _places(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _places(value, (*path, i))


def _gwlb_documents() -> list[tuple[str, dict]]:
    """_documents() plus an instance, a second subnet and an inspection appliance's Gateway Load
    Balancer endpoint that both the default route and the second subnet's route lead to."""
    docs = dict(_documents())
    docs["Subnets.json"]["Subnets"].append(
        {"SubnetId": "subnet-2", "VpcId": "vpc-1", "CidrBlock": "10.9.2.0/24", "AvailabilityZone": "eu-west-1a"})
    docs["RouteTables.json"]["RouteTables"][0]["Routes"] += [
        {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "vpce-0gwlb", "State": "active"},
        {"DestinationCidrBlock": "10.9.2.0/24", "GatewayId": "vpce-0gwlb", "State": "active"}]
    docs["VpcEndpoints.json"] = {"VpcEndpoints": [{
        "VpcEndpointId": "vpce-0gwlb", "VpcEndpointType": "GatewayLoadBalancer", "VpcId": "vpc-1",
        "ServiceName": "com.amazonaws.vpce.eu-west-1.vpce-svc-0firewall", "State": "available",
        "SubnetIds": ["subnet-1"], "NetworkInterfaceIds": ["eni-gwlbe"], "RouteTableIds": [], "Groups": []}]}
    docs["NetworkInterfaces.json"]["NetworkInterfaces"].append(  # AWS gives it no security group
        {"NetworkInterfaceId": "eni-gwlbe", "SubnetId": "subnet-1", "PrivateIpAddress": "10.9.1.40",
         "InterfaceType": "gateway_load_balancer_endpoint", "Groups": []})
    docs["Reservations.json"] = {"Reservations": [{"Instances": [{"InstanceId": "i-app", "NetworkInterfaces": [
        {"NetworkInterfaceId": "eni-app", "SubnetId": "subnet-1", "PrivateIpAddress": "10.9.1.30",
         "Groups": [{"GroupId": "sg-fn"}], "Attachment": {"DeviceIndex": 0}}]}]}]}
    return list(docs.items())


def test_route_to_gateway_load_balancer_endpoint_ends_unmodelled_not_blackholed(tmp_path):
    folder = _write(tmp_path, _gwlb_documents())
    net = hp.Network.load(folder)
    endpoint = net.topology.vpc_endpoints["vpce-0gwlb"]
    assert endpoint.endpoint_type == "gateway_load_balancer" and not endpoint.is_gateway
    out = net.send(syn("203.0.113.9", 443), source="eni-app")
    assert out.reason == hp.Reason.UNMODELLED_TARGET and mentions(out, "vpce-0gwlb")
    # AWS lets a subnet's route be more specific than local towards such an endpoint
    east_west = net.send(syn("10.9.2.15", 443), source="eni-app")
    assert east_west.reason == hp.Reason.UNMODELLED_TARGET and mentions(east_west, "vpce-0gwlb")


def test_gateway_load_balancer_endpoint_is_still_reported_as_not_emulated(tmp_path):
    _, report = read_aws_snapshot(_write(tmp_path, _gwlb_documents()))
    assert report.skipped["VpcEndpoints (GatewayLoadBalancer)"] == 1
    assert "not emulated" in report.summary() and "VpcEndpoints (GatewayLoadBalancer): 1" in report.summary()
    assert not any("vpce-0gwlb" in note and "blackhole" in note for note in report.notes)


def test_deleted_gateway_load_balancer_endpoint_blackholes_its_routes(tmp_path):
    docs = dict(_gwlb_documents())
    docs["VpcEndpoints.json"]["VpcEndpoints"][0]["State"] = "deleted"
    net = hp.Network.load(_write(tmp_path, list(docs.items())))
    assert "vpce-0gwlb" not in net.topology.vpc_endpoints
    assert net.send(syn("203.0.113.9", 443), source="eni-app").reason == hp.Reason.BLACKHOLE_ROUTE


def test_gateway_load_balancer_endpoint_written_as_describe_folder_loads_back(tmp_path):
    original, _ = read_aws_snapshot(_write(tmp_path, _gwlb_documents()))
    write_describe_folder(original, tmp_path / "again")
    loaded, _ = read_aws_snapshot(tmp_path / "again")
    assert loaded.vpc_endpoints == original.vpc_endpoints
    assert loaded.route_tables["rtb-1"].routes == original.route_tables["rtb-1"].routes


def test_damaged_documents_give_a_topology_error_or_a_topology_never_a_crash():
    rng = random.Random(5)
    base = _rich_documents()
    for _ in range(400):
        docs = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(sorted(docs))
            places = list(_places(docs[name]))[1:]
            if not places:
                continue
            path = rng.choice(places)
            parent = docs[name]
            for key in path[:-1]:
                parent = parent[key]
            if isinstance(parent, dict) and rng.random() < 0.3:
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(rng.choice(_JUNK))
        try:
            parse_aws_documents(docs.items())
        except TopologyError as err:
            assert err.file in docs and err.problem


def _write(folder: Path, docs: list[tuple[str, dict]]) -> Path:
    for name, doc in docs:
        (folder / name).write_text(json.dumps(doc, indent=1))
    return folder


def _error(folder: Path) -> TopologyError:
    with pytest.raises(TopologyError) as info:
        load_aws_snapshot(folder)
    return info.value


def test_invalid_json_names_the_file_line_and_column(tmp_path):
    _write(tmp_path, _documents())
    (tmp_path / "us-east-1").mkdir()
    (tmp_path / "us-east-1" / "Broken.json").write_text('{"Subnets": [\n  {"SubnetId": }\n]}')
    err = _error(tmp_path)
    assert err.file == "us-east-1/Broken.json" and err.where == "line 2, column 16"
    assert "invalid JSON" in err.problem


def test_missing_subnet_cidr_names_the_json_path(tmp_path):
    docs = dict(_documents())
    docs["Subnets.json"]["Subnets"].append({"SubnetId": "subnet-2", "VpcId": "vpc-1", "AvailabilityZone": "eu-west-1a"})
    err = _error(_write(tmp_path, list(docs.items())))
    assert (err.file, err.where) == ("Subnets.json", "Subnets[1].CidrBlock")
    assert "required field 'CidrBlock' is missing" in str(err)


def test_a_subnet_in_an_undefined_vpc_is_a_dangling_reference(tmp_path):
    docs = dict(_documents())
    docs["Subnets.json"]["Subnets"][0]["VpcId"] = "vpc-nope"
    err = _error(_write(tmp_path, list(docs.items())))
    assert (err.file, err.where) == ("Subnets.json", "Subnets[0].VpcId")
    assert "vpc-nope" in err.problem and "no file defines" in err.problem


def test_a_route_to_an_undefined_nat_gateway_names_the_route(tmp_path):
    docs = dict(_documents())
    docs["RouteTables.json"]["RouteTables"][0]["Routes"].append(
        {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-gone", "State": "active"})
    err = _error(_write(tmp_path, list(docs.items())))
    assert (err.file, err.where) == ("RouteTables.json", "RouteTables[0].Routes[1].NatGatewayId")
    assert "nat-gone" in err.problem


def test_a_function_in_an_undefined_subnet_names_the_vpc_config_entry(tmp_path):
    bad = dict(ORDERS, VpcConfig={"SubnetIds": ["subnet-1", "subnet-x"], "SecurityGroupIds": ["sg-fn"]})
    err = _error(_write(tmp_path, _documents(Functions=[bad])))
    assert (err.file, err.where) == ("Functions.json", "Functions[0].VpcConfig.SubnetIds[1]")


def test_wrong_types_and_non_object_documents_are_named(tmp_path):
    docs = dict(_documents())
    docs["Vpcs.json"]["Vpcs"][0]["CidrBlock"] = 10
    err = _error(_write(tmp_path, list(docs.items())))
    assert (err.file, err.where) == ("Vpcs.json", "Vpcs[0].CidrBlock") and "expected a non-empty string" in err.problem
    other = tmp_path / "other"
    other.mkdir()
    (other / "list.json").write_text("[1, 2]")
    err = _error(other)
    assert err.file == "list.json" and "top-level key" in err.problem


def test_an_invalid_address_found_by_the_validator_still_names_the_file(tmp_path):
    docs = dict(_documents())
    docs["NetworkInterfaces.json"]["NetworkInterfaces"][0]["PrivateIpAddress"] = "10.9.2.20"  # not in subnet-1
    err = _error(_write(tmp_path, list(docs.items())))
    assert err.file == "NetworkInterfaces.json" and err.where.startswith("NetworkInterfaces[0]")
    assert "is not inside subnet-1" in err.problem


def test_a_missing_folder_or_an_empty_one_is_an_error(tmp_path):
    assert "no such folder" in str(_error(tmp_path / "nope"))
    assert "no JSON file" in str(_error(tmp_path))


# --------------------------------------------------------------------------------------------
# round trip: our own format -> describe-* folder -> same verdicts

PACKETS = [
    ("orders", IP(dst="8.8.8.8") / TCP(dport=443, flags="S")),
    ("orders", IP(dst="10.0.20.10") / TCP(dport=5432, flags="S")),
    ("orders", IP(dst="10.0.21.10") / TCP(dport=6379, flags="S")),
    ("orders", IP(dst="10.0.10.50") / TCP(dport=443, flags="S")),
    ("orders", IP(dst="52.216.1.1") / TCP(dport=443, flags="S")),
    ("orders", IP(dst="8.8.8.8") / ICMP()),
    ("report", IP(dst="8.8.8.8") / TCP(dport=443, flags="S")),
    ("thumbnail", IP(dst="8.8.8.8") / TCP(dport=443, flags="S")),
    ("thumbnail", IP(dst="10.0.20.10") / TCP(dport=5432, flags="S")),
    ("internet", IP(src="198.51.100.7", dst="203.0.113.20") / TCP(sport=5000, dport=443, flags="S")),
    ("internet", IP(src="198.51.100.7", dst="203.0.113.20") / TCP(sport=5000, dport=22, flags="S")),
    ("internet", IP(src="192.0.2.7", dst="203.0.113.20") / TCP(sport=5000, dport=22, flags="S")),
    ("internet", IP(src="192.0.2.7", dst="203.0.113.10") / TCP(sport=5000, dport=80, flags="S")),
    ("eni-web", IP(dst="10.0.20.10") / TCP(sport=5000, dport=5432, flags="S")),
    ("eni-web", IP(dst="1.1.1.1") / UDP(sport=5000, dport=53)),
]


def verdicts(net: hp.Network) -> list[tuple[str, str | None]]:
    out = []
    for source, pkt in PACKETS:
        r = net.send(pkt.copy(), source=source)
        out.append((r.reason.name, r.packet.src if r.packet is not None else None))
        if r.reason == Reason.DELIVERED and TCP in pkt:  # and the answer (stateless NACLs decide it)
            out.append(("reply", r.reply(TCP(flags="SA")).reason.name))
    return out


def test_example_written_as_describe_folder_loads_back_to_the_same_verdicts(tmp_path):
    original = load_example_topology()
    write_describe_folder(original, tmp_path)
    assert (tmp_path / "us-east-1" / "Vpcs.json").is_file()
    loaded, report = read_aws_snapshot(tmp_path)
    assert report.skipped == {}
    for name in ("vpcs", "subnets", "route_tables", "security_groups", "network_acls", "internet_gateways",
                 "nat_gateways", "prefix_lists", "vpc_endpoints", "vpc_peering_connections"):
        assert dict(getattr(loaded, name)) == dict(getattr(original, name)), name
    assert set(loaded.network_interfaces) == set(original.network_interfaces)
    assert verdicts(hp.Network(loaded, ready=True)) == verdicts(hp.Network(original, ready=True))


def test_a_running_networks_hyperplane_enis_are_written_and_taken_over_again(tmp_path):
    net = hp.Network.example()
    before = sorted((e.id, e.subnet_id, e.private_ip) for e in net.hyperplane_enis)
    write_describe_folder(net.topology, tmp_path, hyperplane_enis=net.hyperplane_enis)
    again = hp.Network.load(tmp_path)
    assert sorted((e.id, e.subnet_id, e.private_ip) for e in again.hyperplane_enis) == before
    assert {again.function(n).state for n in ("orders", "report", "thumbnail")} == {"Active"}


# --------------------------------------------------------------------------------------------
# issue 9: numbers in describe-* files, encodings, NAT gateway addresses outside their subnet


def _example_documents() -> dict[str, dict]:
    from hyperplane.formats.snapshot_writer import describe_documents
    return describe_documents(load_example_topology())


def _parse_example(change=None, *, repair: bool = False):
    docs = _example_documents()
    if change is not None:
        change(docs)
    return parse_aws_documents(docs.items(), source="snap", repair=repair)


@pytest.mark.parametrize("change, file, where", [
    (lambda d: d["NetworkAcls.json"]["NetworkAcls"][0]["Entries"][0].__setitem__("Protocol", "٦"),
     "NetworkAcls.json", "NetworkAcls[0].Entries[0].Protocol"),
    (lambda d: d["SecurityGroups.json"]["SecurityGroups"][0]["IpPermissionsEgress"][0].__setitem__("IpProtocol", "١٧"),
     "SecurityGroups.json", "SecurityGroups[0].IpPermissionsEgress[0].IpProtocol"),
    (lambda d: d["Functions.json"]["Functions"].append(d["Functions.json"]["Functions"][0] | {"Version": "²"}),
     "Functions.json", "Functions[4].Version"),
])
def test_a_protocol_or_a_version_in_non_ascii_digits_is_refused_with_its_json_path(change, file, where):
    # Version '²' passed isdigit() and broke int() while sorting versions (a ValueError traceback)
    with pytest.raises(TopologyError) as caught:
        _parse_example(change)
    assert (caught.value.file, caught.value.where) == (file, where) and "ASCII digits" in caught.value.problem


@pytest.mark.parametrize("data, where, problem", [
    (b'{"Vpcs": [{"VpcId": "vpc-\xff"}]}', "line 1, column 26", "invalid UTF-8: byte 0xff"),
    (b'{"Vpcs": [\n {"VpcId": "vpc-1", "VpcId": "vpc-2"}]}', "line 2, column 2", "'VpcId' appears twice"),
    (b'{"Vpcs": [\x01]}', "line 1, column 11", "invalid JSON"),
])
def test_a_broken_describe_file_gives_file_line_and_column_on_one_line(tmp_path, data, where, problem):
    (tmp_path / "Vpcs.json").write_bytes(data)
    with pytest.raises(TopologyError) as caught:
        read_aws_snapshot(tmp_path)
    e = caught.value
    assert (e.file, e.where) == ("Vpcs.json", where) and problem in e.problem and "\n" not in str(e)


def test_a_describe_file_with_a_byte_order_mark_loads(tmp_path):
    docs = _example_documents()
    for name, doc in docs.items():
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + json.dumps(doc).encode())
    assert read_aws_snapshot(tmp_path)[0].nat_gateways.keys() == {"nat-a"}


def _moto_nat(docs: dict[str, dict]) -> None:
    """What moto writes: the NAT gateway's address is a random 10.x outside its subnet."""
    docs["NatGateways.json"]["NatGateways"][0]["NatGatewayAddresses"][0]["PrivateIp"] = "10.107.155.74"


def test_a_nat_gateway_address_outside_its_subnet_is_refused_and_the_error_names_repair():
    with pytest.raises(TopologyError) as caught:
        _parse_example(_moto_nat)
    e = caught.value
    assert (e.file, e.where) == ("NatGateways.json", "NatGateways[0].NatGatewayAddresses[0].PrivateIp")
    assert "10.107.155.74 is not inside subnet-public-a (10.0.0.0/24)" in e.problem and "--repair" in e.problem


def test_repair_reallocates_a_nat_gateway_address_from_its_subnet_and_warns_once_naming_it():
    with pytest.warns(hp.errors.RepairWarning) as caught:
        topology, report = _parse_example(_moto_nat, repair=True)
    assert len(caught) == 1 and "NAT gateway nat-a" in str(caught[0].message)
    new = topology.nat_gateways["nat-a"].private_ip
    assert new in topology.subnets["subnet-public-a"].cidr
    assert new not in {e.private_ip for e in topology.network_interfaces.values() if e.kind != "nat_gateway"}
    assert report.readdressed == {"nat-a": {"10.107.155.74": str(new)}} and len(report.repairs) == 1
    fn = hp.Network(topology, ready=True).function("orders")
    out = fn.send(IP(dst="8.8.8.8") / TCP(dport=443, flags="S"))
    assert out.reason == Reason.EXITED_TO_INTERNET and out.packet.src == "203.0.113.10"
