"""Changing Lambda functions on a live network: ``net.update_function``, ``net.publish_version``,
``net.delete_function`` (SPEC §2, issue 16).

Each test is a story on one account with two VPCs: ``mover`` starts in ``subnet-old`` of
``vpc-old`` and is moved, frozen in a version, taken out of its VPC or deleted, while packets
(``fn.send``), batches (``net.process``) and questions (``net.connect``, ``net.reachability``)
check what the function can reach at each moment, and ``net.topology`` / ``net.functions`` /
``net.hyperplane_enis`` say what the account holds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scapy.all import Ether, wrpcap
from scapy.layers.inet import IP, TCP

import hyperplane as hp
from hyperplane.errors import UnknownResource
from hyperplane.lambda_service import LambdaError, ResourceConflict
from hyperplane.loaders import parse_topology
from hyperplane.model import FunctionVersion, VpcConfig
from hyperplane.records import PACKET, SYN, ip

OLD = VpcConfig(("subnet-old",), ("sg-old",))
NEW = VpcConfig(("subnet-new",), ("sg-new",))
OLD_WEB, NEW_WEB, INTERNET = "10.1.0.10", "10.2.0.10", "93.184.216.34"
LAMBDA_OWN_ADDRESS = "192.0.2.250"  # where a function without VpcConfig leaves from


def account(*functions: dict) -> hp.Network:
    """Two VPCs, a web server in each (port 80 open to its own VPC), no way out to the internet;
    ``mover`` in vpc-old unless other functions are given."""
    vpc_old = {"subnet_ids": ["subnet-old"], "security_group_ids": ["sg-old"]}
    doc = {
        "vpcs": [{"id": "vpc-old", "cidr": "10.1.0.0/16"}, {"id": "vpc-new", "cidr": "10.2.0.0/16"}],
        "subnets": [
            {"id": "subnet-old", "vpc_id": "vpc-old", "cidr": "10.1.0.0/24", "availability_zone": "us-east-1a"},
            {"id": "subnet-new", "vpc_id": "vpc-new", "cidr": "10.2.0.0/24", "availability_zone": "us-east-1a"}],
        "security_groups": [
            {"id": "sg-old", "vpc_id": "vpc-old", "ingress": [{"protocol": "tcp", "ports": 80, "cidr": "10.1.0.0/16"}]},
            {"id": "sg-new", "vpc_id": "vpc-new", "ingress": [{"protocol": "tcp", "ports": 80, "cidr": "10.2.0.0/16"}]},
            {"id": "sg-other", "vpc_id": "vpc-old"}],
        "network_interfaces": [
            {"id": "eni-old-web", "subnet_id": "subnet-old", "private_ip": OLD_WEB, "security_group_ids": ["sg-old"]},
            {"id": "eni-new-web", "subnet_id": "subnet-new", "private_ip": NEW_WEB, "security_group_ids": ["sg-new"]}],
        "functions": list(functions) or [{"name": "mover", "vpc_config": vpc_old}],
    }
    return hp.Network(parse_topology(doc, file="two-vpcs.yaml"), ready=True)


def web(dst: str) -> IP:
    return IP(dst=dst) / TCP(dport=80, flags="S")


def v2n(r: hp.Result) -> hp.Hop:
    found = [h for h in r.hops if h.stage == "v2n-out"]
    assert found, f"no v2n-out hop in:\n{r}"
    return found[0]


def write_capture(path, rows) -> None:
    """A capture of TCP packets (offset seconds, src, dst, sport, dport, flags); the function's
    side is 172.16.5.10, as a capture taken inside the function would have it."""
    packets = []
    for t, src, dst, sport, dport, flags in rows:
        p = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)
        p.time = 1_700_000_000 + t
        packets.append(p)
    wrpcap(str(path), packets)


def verdicts_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_moving_a_function_to_another_subnet_keeps_the_old_eni_until_the_new_one_is_ready():
    # AWS (UpdateFunctionConfiguration): "When you update a function, Lambda provisions an
    # instance of the function and its supporting resources. If your function connects to a
    # VPC, this process can take a minute. During this time, you can't modify the function,
    # but you can still invoke it."
    net = account()
    mover = net.function("mover")
    (old,) = mover.hyperplane_enis

    net.update_function("mover", vpc_config={"subnet_ids": ["subnet-new"], "security_group_ids": ["sg-new"]})
    assert (mover.state, mover.last_update_status) == ("Active", "InProgress")
    assert (mover.vpc_config, mover.pending_vpc_config) == (OLD, NEW)
    assert net.topology.functions["mover"].vpc_config == OLD  # what invocations use meanwhile
    with pytest.raises(ResourceConflict):  # "you can't modify the function"
        net.update_function("mover", vpc_config=None)

    net.advance(30)
    during = mover.send(web(OLD_WEB))  # invocations leave through the old ENI, into the old VPC
    assert during.reason == hp.Reason.DELIVERED and during.packet.src == old.private_ip
    assert v2n(during).resource == old.id
    assert mover.send(web(NEW_WEB)).reason == hp.Reason.NO_ROUTE
    assert net.connect("mover", OLD_WEB, 80) and not net.connect("mover", NEW_WEB, 80)

    net.advance(30)  # eni_creation_seconds after the update
    assert (mover.state, mover.last_update_status) == ("Active", "Successful")
    assert (mover.vpc_config, mover.pending_vpc_config) == (NEW, None)
    (new,) = mover.hyperplane_enis
    assert (new.subnet_id, new.security_group_ids, new.status) == ("subnet-new", ("sg-new",), "available")
    after = mover.send(web(NEW_WEB))
    assert after.reason == hp.Reason.DELIVERED and after.packet.src == new.private_ip
    assert v2n(after).resource == new.id
    gone = mover.send(web(OLD_WEB))  # the old VPC is out of reach from the function
    assert not gone.delivered and gone.reason == hp.Reason.NO_ROUTE
    assert net.topology.functions["mover"].vpc_config == NEW
    assert net.connect("mover", NEW_WEB, 80) and not net.connect("mover", OLD_WEB, 80)
    reach = net.reachability("mover")
    assert reach.connected(NEW_WEB, 80) and not reach.connected(OLD_WEB, 80)

    # the old ENI has no user left: deleted within 20 minutes
    assert (old.status, old.functions) == ("deleting", [])
    net.advance(20 * 60)
    assert old.status == "deleted" and [e.id for e in net.hyperplane_enis] == [new.id]


def test_a_batch_during_the_update_uses_the_old_eni_and_after_it_the_new_one():
    net = account()
    mover = net.function("mover")
    (old,) = mover.hyperplane_enis

    def batch(dst: str) -> hp.BatchResult:
        rows = np.zeros(3, dtype=PACKET)
        rows["time"] = net.now
        rows["src_ip"] = ip(mover.environment_address(0))
        rows["dst_ip"], rows["dst_port"], rows["proto"], rows["flags"], rows["length"] = ip(dst), 80, 6, SYN, 40
        rows["src_port"] = 41000 + np.arange(3)
        return net.process(rows, hp.Origin.FUNCTION, net.pool_index("mover"))

    net.update_function("mover", vpc_config=NEW)
    during = batch(OLD_WEB)
    assert (during.reason == hp.Reason.DELIVERED).all() and (during.packets["src_ip"] == old.private_ip_int).all()
    net.advance(60)
    (new,) = mover.hyperplane_enis
    after = batch(NEW_WEB)
    assert (after.reason == hp.Reason.DELIVERED).all() and (after.packets["src_ip"] == new.private_ip_int).all()
    assert (batch(OLD_WEB).reason == hp.Reason.NO_ROUTE).all()


def test_removing_the_vpc_config_gives_the_internet_and_takes_the_vpc_away():
    # AWS (ParallelCluster, Lambda VPC configuration): "An AWS Lambda function always runs in a
    # VPC owned by the Lambda service." AWS (AWS::Lambda::Function VpcConfig): once connected
    # to a VPC, "The function can only access resources and the internet through that VPC."
    net = account()
    mover = net.function("mover")
    (eni,) = mover.hyperplane_enis
    assert mover.send(web(INTERNET)).reason == hp.Reason.NO_ROUTE  # vpc-old has no way out

    net.update_function("mover", vpc_config={"SubnetIds": [], "SecurityGroupIds": []})  # AWS's way to detach
    assert (mover.state, mover.last_update_status, mover.vpc_config) == ("Active", "Successful", None)
    assert net.topology.functions["mover"].vpc_config is None
    out = mover.send(web(INTERNET))
    assert out.reason == hp.Reason.EXITED_TO_INTERNET and out.packet.src == LAMBDA_OWN_ADDRESS
    inside = mover.send(web(OLD_WEB))
    assert not inside.delivered and inside.reason == hp.Reason.NO_VPC_ACCESS
    assert not net.connect("mover", OLD_WEB, 80)
    assert mover.hyperplane_enis == []

    assert eni.status == "deleting"
    net.advance(20 * 60)
    assert eni.status == "deleted" and net.hyperplane_enis == []


def test_deleting_a_function_reclaims_only_the_enis_no_other_function_shares():
    # AWS (AWS::Lambda::Function VpcConfig): "When you delete a function, CloudFormation
    # monitors the state of its network interfaces and waits for Lambda to delete them before
    # proceeding."
    old = {"subnet_ids": ["subnet-old"], "security_group_ids": ["sg-old"]}
    net = account({"name": "mover", "vpc_config": old}, {"name": "sharer", "vpc_config": old},
                  {"name": "loner", "vpc_config": {"subnet_ids": ["subnet-old"], "security_group_ids": ["sg-other"]}})
    (shared,) = net.function("sharer").hyperplane_enis
    (lonely,) = net.function("loner").hyperplane_enis
    assert shared.functions == ["mover", "sharer"]

    net.delete_function("mover")
    assert shared.status == "available" and shared.functions == ["sharer"]
    assert net.function("sharer").send(web(OLD_WEB)).packet.src == shared.private_ip
    with pytest.raises(UnknownResource):
        net.function("mover")
    with pytest.raises(UnknownResource):
        net.update_function("mover", vpc_config=NEW)
    assert "mover" not in net.topology.functions and list(net.functions) == ["sharer", "loner"]

    net.delete_function("loner")
    assert (lonely.status, lonely.functions) == ("deleting", [])
    net.advance(20 * 60)
    assert lonely.status == "deleted"
    assert [e.id for e in net.hyperplane_enis] == [shared.id]
    probe = IP(dst=lonely.private_ip) / TCP(sport=80, dport=40000, flags="SA")
    assert net.send(probe, source="eni-old-web").reason == hp.Reason.NO_ENI_AT_ADDRESS


def test_a_published_version_keeps_its_vpc_config_when_latest_moves():
    # AWS (UpdateFunctionConfiguration): "These settings can vary between versions of a
    # function and are locked when you publish a version. You can't modify the configuration
    # of a published version, only the unpublished version."
    net = account()
    (old,) = net.function("mover").hyperplane_enis
    v1 = net.publish_version("mover")
    assert (v1.name, v1.version, v1.vpc_config) == ("mover:1", "1", OLD)
    assert net.topology.functions["mover"].versions == (FunctionVersion("1", OLD),)
    with pytest.raises(LambdaError):
        net.update_function("mover:1", vpc_config=NEW)

    net.update_function("mover", vpc_config=NEW)
    net.advance(60)
    latest = net.function("mover")
    (new,) = [e for e in latest.hyperplane_enis if e.subnet_id == "subnet-new"]
    assert latest.vpc_config == NEW and v1.vpc_config == OLD
    assert old.status == "available" and old.functions == ["mover:1"] and new.functions == ["mover"]
    assert [e.id for e in v1.hyperplane_enis] == [old.id]
    r = v1.send(web(OLD_WEB))
    assert r.reason == hp.Reason.DELIVERED and v2n(r).resource == old.id
    assert latest.send(web(OLD_WEB)).reason == hp.Reason.NO_ROUTE
    assert net.connect("mover:1", OLD_WEB, 80) and not net.connect("mover:1", NEW_WEB, 80)
    assert net.topology.functions["mover"].vpc_config == NEW
    assert net.topology.functions["mover"].versions == (FunctionVersion("1", OLD),)

    net.delete_function("mover:1")  # the last user of the old ENI
    assert v1.version not in net.function("mover").versions and old.status == "deleting"
    assert net.topology.functions["mover"].versions == ()
    with pytest.raises(UnknownResource):
        net.function("mover:1")


def test_an_update_lambda_cannot_set_up_fails_and_leaves_the_function_as_it_was():
    # AWS (API_FunctionConfiguration): LastUpdateStatus is "The status of the last update that
    # was performed on the function."
    net = account()
    mover = net.function("mover")
    (old,) = mover.hyperplane_enis
    net.update_function("mover", vpc_config=VpcConfig(("subnet-nope",), ("sg-new",)))
    assert (mover.state, mover.last_update_status, mover.last_update_status_reason_code) == (
        "Active", "Failed", "InvalidSubnet")
    assert "subnet-nope" in mover.last_update_status_reason
    assert mover.vpc_config == OLD and net.topology.functions["mover"].vpc_config == OLD
    assert mover.send(web(OLD_WEB)).packet.src == old.private_ip


def test_a_misspelt_vpc_config_is_an_error_not_a_detach():
    net = account()
    with pytest.raises(ValueError, match="unknown key 'subnets'"):
        net.update_function("mover", vpc_config={"subnets": ["subnet-new"], "security_group_ids": ["sg-new"]})
    with pytest.raises(ValueError, match="must be a list of ids"):
        net.update_function("mover", vpc_config={"subnet_ids": "subnet-new", "security_group_ids": ["sg-new"]})
    with pytest.raises(LambdaError):
        net.publish_version("mover:1")
    mover = net.function("mover")
    assert (mover.last_update_status, mover.vpc_config) == ("Successful", OLD)


def test_a_topology_applied_after_an_update_keeps_the_functions_as_they_run():
    net = account()
    before = net.topology
    net.update_function("mover", vpc_config=None)
    net.apply(before)  # a network change made from a copy taken before the update
    assert net.topology.functions["mover"].vpc_config is None
    assert net.function("mover").send(web(INTERNET)).reason == hp.Reason.EXITED_TO_INTERNET


def test_a_replay_spanning_the_update_switches_eni_when_the_update_completes(tmp_path):
    # the same update, judged by a capture replayed through it: each packet at its own time
    net = account()
    (old,) = net.function("mover").hyperplane_enis
    net.update_function("mover", vpc_config=NEW)  # at t=0: InProgress until t=60
    write_capture(tmp_path / "in.pcap", [(t, "172.16.5.10", dst, 40000 + k, 80, "S") for k, (t, dst) in enumerate(
        [(0, OLD_WEB), (30, OLD_WEB), (30, NEW_WEB), (90, OLD_WEB), (90, NEW_WEB)])])
    net.replay(tmp_path / "in.pcap", functions={"mover": "172.16.5.0/24"}, verdicts=tmp_path / "v.jsonl")
    verdicts = verdicts_of(tmp_path / "v.jsonl")
    assert [v["reason"] for v in verdicts] == ["DELIVERED", "DELIVERED", "NO_ROUTE", "NO_ROUTE", "DELIVERED"]
    (new,) = net.function("mover").hyperplane_enis
    assert [v["src"] for v in verdicts if v["reason"] == "DELIVERED"] == [old.private_ip, old.private_ip,
                                                                           new.private_ip]
    assert net.topology.functions["mover"].vpc_config == NEW


def test_diff_of_the_network_before_and_after_an_update_names_what_the_function_gained_and_lost():
    before, after = hp.Network.example(), hp.Network.example()
    # `report` sits in a public subnet (a Hyperplane ENI has no public IP: no internet); moved to
    # a private subnet with the app's group, it shares `orders`' ENI at once and goes out by NAT
    after.update_function("report", vpc_config={"subnet_ids": ["subnet-private-a"], "security_group_ids": ["sg-app"]})
    assert after.function("report").last_update_status == "Successful"
    changes = {(c.subnet, c.destination, c.protocol): (c.before, c.after) for c in hp.diff(before, after, ["report"])}
    gained = changes[("subnet-private-a", "internet", "tcp")]
    assert gained[0] is None and gained[1] is not None and gained[1].connected
    lost = changes[("subnet-public-a", "eni-db", "tcp")]
    assert lost[0] is not None and lost[0].connected and lost[1] is None


def test_a_connection_opened_before_the_update_completes_is_answered_through_the_old_eni_alike_in_send_and_replay(
        tmp_path):
    # opened through the old ENI at t=0, answered at t=70 (the update completed at t=60), then
    # the function's next packet of it at t=71: it leaves through the new ENI, which does not
    # know the connection. A replay of the same exchange says the same, packet for packet.
    net = account()
    mover = net.function("mover")
    (old,) = mover.hyperplane_enis
    net.update_function("mover", vpc_config=NEW)
    syn = mover.send(IP(dst=OLD_WEB) / TCP(sport=40000, dport=80, flags="S"))
    net.advance(70)
    synack = syn.reply(TCP(flags="SA"))
    net.advance(1)
    ack = mover.send(IP(dst=OLD_WEB) / TCP(sport=40000, dport=80, flags="A"))
    sent = [syn.reason, synack.reason, ack.reason]
    assert sent == [hp.Reason.DELIVERED, hp.Reason.DELIVERED_TO_FUNCTION, hp.Reason.V2N_NO_CONNECTION]
    assert [h.resource for h in synack.hops if h.stage == "v2n-in"] == [old.id]

    again = account()
    again.update_function("mover", vpc_config=NEW)
    write_capture(tmp_path / "in.pcap", [(0, "172.16.5.10", OLD_WEB, 40000, 80, "S"),
                                         (70, OLD_WEB, "172.16.5.10", 80, 40000, "SA"),
                                         (71, "172.16.5.10", OLD_WEB, 40000, 80, "A")])
    # pickup=False: fn.send opens TCP only by a SYN (a replay's mid-stream pickup would open it)
    again.replay(tmp_path / "in.pcap", functions={"mover": "172.16.5.0/24"}, verdicts=tmp_path / "v.jsonl",
                 pickup=False)
    replayed = [v["reason"] for v in verdicts_of(tmp_path / "v.jsonl")]
    assert replayed == [r.name for r in sent]


def test_a_replay_of_a_published_version_goes_through_its_own_eni_after_latest_moved(tmp_path):
    net = account()
    (old,) = net.function("mover").hyperplane_enis
    net.publish_version("mover")
    net.update_function("mover", vpc_config=NEW)
    net.advance(60)
    write_capture(tmp_path / "in.pcap", [(0, "172.16.5.10", OLD_WEB, 40000, 80, "S"),
                                         (1, OLD_WEB, "172.16.5.10", 80, 40000, "SA"),
                                         (2, "172.16.5.10", OLD_WEB, 40000, 80, "A")])
    net.replay(tmp_path / "in.pcap", functions={"mover:1": "172.16.5.0/24"}, verdicts=tmp_path / "v.jsonl")
    verdicts = verdicts_of(tmp_path / "v.jsonl")
    assert [v["reason"] for v in verdicts] == ["DELIVERED", "DELIVERED_TO_FUNCTION", "DELIVERED"]
    assert [v["src"] for v in verdicts][::2] == [old.private_ip, old.private_ip]
