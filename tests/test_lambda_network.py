"""Lambda functions on the wire: Hyperplane ENIs, V2N NAT and the lifecycle, seen through packets.

SPEC §2 told as stories through the public scripting API: a function sends scapy packets
(``fn.send``), hosts in the VPC answer (``r.reply``) or try to open connections of their own
(``net.send``), the virtual clock moves (``net.advance``), and each test checks the verdict, the
reason, the hops and the translated addresses. Volume scenarios (65,000 connections) use the
batch API ``net.process`` with numpy records.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import yaml
from scapy.layers.inet import ICMP, IP, TCP, UDP

import hyperplane as hp
from hyperplane.loaders import parse_topology
from hyperplane.model import VpcConfig
from hyperplane.records import PACKET, SYN, ip

DAY = 86400.0
DB = "10.1.20.10"
HOST = "10.1.20.20"

# A small account: a public subnet with a NAT gateway, two app subnets for functions, a data
# subnet with a database (admits the functions' group on 5432) and a host whose group admits
# everything from the VPC (so its packets get as far as a Hyperplane ENI's V2N NAT).
LAB = """
vpcs:
  - {id: vpc-lab, cidr: 10.1.0.0/16}
subnets:
  - {id: subnet-pub, vpc_id: vpc-lab, cidr: 10.1.0.0/24, availability_zone: us-east-1a, route_table_id: rtb-pub}
  - {id: subnet-app-a, vpc_id: vpc-lab, cidr: 10.1.10.0/24, availability_zone: us-east-1a, route_table_id: rtb-app}
  - {id: subnet-app-b, vpc_id: vpc-lab, cidr: 10.1.11.0/24, availability_zone: us-east-1b, route_table_id: rtb-app}
  - {id: subnet-data, vpc_id: vpc-lab, cidr: 10.1.20.0/24, availability_zone: us-east-1a}
route_tables:
  - {id: rtb-pub, vpc_id: vpc-lab, routes: [{destination: 0.0.0.0/0, target: igw-lab}]}
  - {id: rtb-app, vpc_id: vpc-lab, routes: [{destination: 0.0.0.0/0, target: nat-lab}]}
internet_gateways: [{id: igw-lab, vpc_id: vpc-lab}]
nat_gateways:
  - {id: nat-lab, subnet_id: subnet-pub, private_ip: 10.1.0.10, elastic_ips: [203.0.113.50]}
security_groups:
  - {id: sg-fn, vpc_id: vpc-lab}
  - {id: sg-other, vpc_id: vpc-lab}
  - id: sg-open
    vpc_id: vpc-lab
    ingress: [{protocol: all, cidr: 10.1.0.0/16}]
  - id: sg-db
    vpc_id: vpc-lab
    ingress: [{protocol: tcp, ports: 5432, security_group_id: sg-fn}]
network_interfaces:
  - {id: eni-db, subnet_id: subnet-data, private_ip: 10.1.20.10, security_group_ids: [sg-db]}
  - {id: eni-host, subnet_id: subnet-data, private_ip: 10.1.20.20, security_group_ids: [sg-open], instance_id: i-0host}
functions:
  - name: api
    vpc_config: {subnet_ids: [subnet-app-a], security_group_ids: [sg-fn]}
"""

FUNCTIONS = {
    "api": {"subnet_ids": ["subnet-app-a"], "security_group_ids": ["sg-fn"]},
    "worker": {"subnet_ids": ["subnet-app-a"], "security_group_ids": ["sg-fn"]},
    "batch": {"subnet_ids": ["subnet-app-a"], "security_group_ids": ["sg-other"]},
    "spread": {"subnet_ids": ["subnet-app-a", "subnet-app-b"], "security_group_ids": ["sg-fn"]},
    "open": {"subnet_ids": ["subnet-app-a"], "security_group_ids": ["sg-open"]},
    "plain": None,
}


def lab(*names: str, ready: bool = True, role: dict | None = None, **kw: Any) -> hp.Network:
    """The LAB account with the named functions (default: ``api``)."""
    doc = yaml.safe_load(LAB)
    doc["functions"] = []
    for name in names or ("api",):
        fn: dict[str, Any] = {"name": name}
        if FUNCTIONS[name] is not None:
            fn["vpc_config"] = FUNCTIONS[name]
        if role is not None:
            fn["role"] = role
        doc["functions"].append(fn)
    return hp.Network(parse_topology(doc, file="lab.yaml"), ready=ready, **kw)


def syn(dst: str = DB, dport: int = 5432, **tcp: Any) -> Any:
    return IP(dst=dst) / TCP(dport=dport, flags="S", **tcp)


def stages(r: hp.Result) -> list[str]:
    return [h.stage for h in r.hops]


def hop(r: hp.Result, stage: str) -> hp.Hop:
    found = [h for h in r.hops if h.stage == stage]
    assert found, f"no {stage} hop in:\n{r}"
    return found[0]


# -- functions with and without VpcConfig -------------------------------------------------------


def test_function_without_vpc_reaches_internet_but_not_vpc():
    net = hp.Network.example()
    thumbnail = net.function("thumbnail")

    out = thumbnail.send(IP(dst="93.184.216.34") / TCP(dport=443, flags="S"))
    assert out.delivered and out.reason == hp.Reason.EXITED_TO_INTERNET
    assert out.disposition == hp.Disposition.EXITS_NETWORK
    assert out.packet.src == "192.0.2.250"  # Lambda's own address, not a VPC one
    assert "v2n-out" not in stages(out)

    inside = thumbnail.send(IP(dst="10.0.20.10") / TCP(dport=5432, flags="S"))
    assert not inside.delivered
    assert inside.reason == hp.Reason.NO_VPC_ACCESS
    assert inside.disposition == hp.Disposition.NO_ROUTE
    assert inside.explanation == "NO_ROUTE_TO_DESTINATION"

    # the VPC's public face is the internet's: the web server's public IP is reachable
    web = thumbnail.send(IP(dst="203.0.113.20") / TCP(dport=443, flags="S"))
    assert web.reason == hp.Reason.DELIVERED
    assert web.packet.src == "192.0.2.250" and web.packet.dst == "10.0.0.20"
    assert hop(web, "igw-in").detail == "203.0.113.20 -> 10.0.0.20"


def test_vpc_function_leaves_from_its_hyperplane_eni_address_and_a_lambda_port():
    net = lab()
    api = net.function("api")
    (eni,) = api.hyperplane_enis
    assert eni.subnet_id == "subnet-app-a" and eni.security_group_ids == ("sg-fn",)

    for _ in range(20):
        r = api.send(syn())
        assert r.reason == hp.Reason.DELIVERED
        assert r.packet.src == eni.private_ip
        assert 1024 <= r.packet.sport <= 65535
        v2n = hop(r, "v2n-out")
        assert v2n.resource == eni.id and v2n.decision == "translate"
        assert v2n.detail.endswith(f"-> {eni.private_ip}:{r.packet.sport}")
    assert eni.connections == 20


def test_source_port_set_by_caller_is_kept_on_the_function_side():
    net = lab()
    api = net.function("api")
    env = api.environment_address(0)

    r = api.send(syn(sport=40000))
    assert hop(r, "v2n-out").detail.startswith(f"{env}:40000 -> ")
    back = r.reply(TCP(flags="SA"))
    assert back.reason == hp.Reason.DELIVERED_TO_FUNCTION
    assert (back.packet.dst, back.packet.dport) == (env, 40000)
    assert (back.packet.src, back.packet.sport) == (DB, 5432)


def test_functions_with_same_subnet_and_groups_share_one_hyperplane_eni():
    net = lab("api", "worker", "batch")
    api, worker, batch = (net.function(n) for n in ("api", "worker", "batch"))

    assert [e.id for e in api.hyperplane_enis] == [e.id for e in worker.hyperplane_enis]
    (shared,) = api.hyperplane_enis
    assert shared.functions == ["api", "worker"]
    (own,) = batch.hyperplane_enis
    assert own.id != shared.id and own.subnet_id == shared.subnet_id
    assert own.functions == ["batch"]
    assert len(net.hyperplane_enis) == 2

    a, w, b = api.send(syn()), worker.send(syn()), batch.send(syn())
    assert a.packet.src == w.packet.src == shared.private_ip
    assert a.packet.sport != w.packet.sport  # one port space for both functions
    assert b.packet.src == own.private_ip
    assert shared.connections == 2 and own.connections == 1
    # the database admits sg-fn only: the shared ENI's address matches, batch's does not
    assert a.reason == w.reason == hp.Reason.DELIVERED
    assert b.reason == hp.Reason.SG_INGRESS_DENY


def test_execution_environment_stays_bound_to_one_subnet():
    net = lab("spread")
    spread = net.function("spread")
    eni_of_subnet = {e.subnet_id: e for e in spread.hyperplane_enis}
    assert set(eni_of_subnet) == {"subnet-app-a", "subnet-app-b"}  # one ENI per subnet

    used = set()
    for k in range(12):
        env = spread.environment_address(k)
        # documented choice: crc32("name:environment address") over the config's subnets
        subnet = ["subnet-app-a", "subnet-app-b"][zlib.crc32(f"spread:{env}".encode()) % 2]
        for _ in range(2):
            r = spread.send(syn(), environment=k)
            assert r.packet.src == eni_of_subnet[subnet].private_ip
            assert hop(r, "invoke").detail == f"environment {env} bound to {subnet}"
        used.add(subnet)
    assert used == {"subnet-app-a", "subnet-app-b"}


# -- V2N NAT: one way, TCP and UDP only ----------------------------------------------------------


def test_vpc_host_cannot_open_connection_to_function():
    net = lab("open")
    (eni,) = net.function("open").hyperplane_enis  # sg-open admits everything from the VPC

    for layer4 in (TCP(sport=5000, dport=40000, flags="S"), UDP(sport=5000, dport=40000)):
        r = net.send(IP(dst=eni.private_ip) / layer4, source="i-0host")
        assert not r.delivered
        assert r.reason == hp.Reason.V2N_UNSOLICITED_INBOUND
        assert r.disposition == hp.Disposition.DENIED_IN
        assert hop(r, "sg-ingress").decision == "allow"  # the group let it in...
        v2n = hop(r, "v2n-in")  # ...the one-way translation did not
        assert (v2n.resource, v2n.decision) == (eni.id, "drop")
    assert eni.connections == 0


def test_reply_from_vpc_host_reaches_the_execution_environment():
    net = lab("open")
    fn = net.function("open")
    (eni,) = fn.hyperplane_enis

    r = fn.send(IP(dst=HOST) / TCP(sport=33000, dport=8080, flags="S"))
    assert r.reason == hp.Reason.DELIVERED and r.packet.src == eni.private_ip
    back = r.reply(TCP(flags="SA"))
    assert back.reason == hp.Reason.DELIVERED_TO_FUNCTION
    assert hop(back, "v2n-in").detail == f"{eni.private_ip}:{r.packet.sport} -> {fn.environment_address(0)}:33000"
    # the same address and port, opened from the host's side, is still refused for other peers
    stranger = net.send(IP(src=HOST, dst=eni.private_ip) / TCP(sport=8081, dport=r.packet.sport, flags="S"),
                        source="i-0host")
    assert stranger.reason == hp.Reason.V2N_UNSOLICITED_INBOUND


def test_tcp_non_syn_without_connection_is_refused_by_hyperplane_eni():
    net = lab()
    api = net.function("api")
    for flags in ("A", "PA", "FA"):
        r = api.send(IP(dst=DB) / TCP(dport=5432, flags=flags))
        assert r.reason == hp.Reason.V2N_NO_CONNECTION
        assert r.disposition == hp.Disposition.DENIED_IN
        assert hop(r, "v2n-out").decision == "drop"
        assert "sg-egress" not in stages(r)  # it never left the Hyperplane ENI
    assert api.hyperplane_enis[0].connections == 0
    assert api.send(syn()).reason == hp.Reason.DELIVERED


def test_udp_flow_is_opened_by_the_first_outbound_datagram():
    net = lab("open")
    fn = net.function("open")
    (eni,) = fn.hyperplane_enis

    r = fn.send(IP(dst=HOST) / UDP(sport=34000, dport=514))
    assert r.reason == hp.Reason.DELIVERED and eni.connections == 1
    port = r.packet.sport
    back = net.send(IP(src=HOST, dst=eni.private_ip) / UDP(sport=514, dport=port), source="i-0host")
    assert back.reason == hp.Reason.DELIVERED_TO_FUNCTION
    assert (back.packet.dst, back.packet.dport) == (fn.environment_address(0), 34000)


def test_icmp_from_function_is_dropped_with_its_own_reason():
    net = lab()
    api = net.function("api")
    for pkt in (IP(dst=DB) / ICMP(), IP(dst=DB, proto=47) / b"GRE payload"):
        r = api.send(pkt)
        assert not r.delivered
        assert r.reason == hp.Reason.V2N_UNSUPPORTED_PROTOCOL
        assert r.disposition == hp.Disposition.DENIED_IN
        assert hop(r, "v2n-out").decision == "drop"
    assert api.hyperplane_enis[0].connections == 0


def test_ipv6_and_fragments_get_clear_verdicts():
    from scapy.layers.inet6 import IPv6

    net = lab()
    api = net.function("api")
    v6 = api.send(IPv6(dst="2001:db8::1") / TCP(dport=443, flags="S"))
    assert v6.reason == hp.Reason.NOT_IPV4 and not v6.delivered
    assert v6.disposition == hp.Disposition.DENIED_IN

    fragment = api.send(IP(dst=DB, frag=185) / b"the rest of a datagram")
    assert fragment.reason == hp.Reason.IP_FRAGMENT and not fragment.delivered
    assert fragment.disposition == hp.Disposition.DENIED_IN

    from_internet = net.send(IPv6(dst="2001:db8::1") / UDP(dport=53), source="internet")
    assert from_internet.reason == hp.Reason.NOT_IPV4
    # a first fragment carries the TCP header: it is carried like any packet
    first = api.send(IP(dst=DB, flags="MF") / TCP(dport=5432, flags="S"))
    assert first.reason == hp.Reason.DELIVERED
    assert api.hyperplane_enis[0].connections == 1


# -- 65,000 connections per Hyperplane ENI, overflow ENIs ----------------------------------------


def syn_rows(source: str, n: int, dst: str = DB, dport: int = 5432, t: float = 0.0) -> np.ndarray:
    """``n`` SYNs from one execution environment, each from its own source port."""
    rows = np.zeros(n, dtype=PACKET)
    rows["time"] = t
    rows["src_ip"] = ip(source)
    rows["dst_ip"] = ip(dst)
    rows["src_port"] = 1 + np.arange(n) % 65535
    rows["dst_port"] = dport
    rows["proto"] = 6
    rows["flags"] = SYN
    rows["length"] = 40
    return rows


def test_65001st_connection_opens_second_hyperplane_eni():
    net = lab()  # `api` is the only VPC function: its pool is the batch API's pool 0
    api = net.function("api")
    (first,) = api.hyperplane_enis
    # two environments, so that 65,001 source ports exist; ports to one destination do not run
    # out first (64,512 per address): half go to the database, half to the host
    a = syn_rows(api.environment_address(0), 32500)
    b = syn_rows(api.environment_address(1), 32500, dst=HOST, dport=8080)
    res = net.process(np.concatenate([a, b]), hp.Origin.FUNCTION, 0)
    assert (res.reason == hp.Reason.DELIVERED).all()
    assert (res.packets["src_ip"] == first.private_ip_int).all()
    assert first.connections == 65_000 and len(api.hyperplane_enis) == 1

    last = net.process(syn_rows(api.environment_address(2), 1), hp.Origin.FUNCTION, 0)
    enis = api.hyperplane_enis
    assert len(enis) == 2
    second = enis[1]
    assert second.overflow and second.subnet_id == first.subnet_id
    assert second.security_group_ids == first.security_group_ids
    assert second.private_ip != first.private_ip
    assert int(last.packets["src_ip"][0]) == second.private_ip_int
    assert (first.connections, second.connections) == (65_000, 1)
    assert sorted(e.id for e in net.hyperplane_enis) == sorted(e.id for e in enis)

    # the next connection is carried by the second ENI end to end
    r = api.send(syn())
    assert r.reason == hp.Reason.DELIVERED and r.packet.src == second.private_ip
    assert hop(r, "v2n-out").resource == second.id


def test_connections_per_eni_is_configurable():
    net = lab(lambda_settings=hp.LambdaSettings(max_connections_per_eni=3))
    api = net.function("api")
    (first,) = api.hyperplane_enis
    first_syn = api.send(syn())
    for _ in range(2):
        assert api.send(syn()).packet.src == first.private_ip
    assert first_syn.packet.src == first.private_ip
    api.send(syn())  # the fourth connection: no room on the first ENI
    enis = api.hyperplane_enis
    assert len(enis) == 2 and enis[1].overflow
    assert [e.connections for e in enis] == [3, 1]
    r = api.send(syn())
    assert r.reason == hp.Reason.DELIVERED and r.packet.src == enis[1].private_ip
    assert first_syn.reply(TCP(flags="SA")).reason == hp.Reason.DELIVERED_TO_FUNCTION  # old ones stay


def test_overflow_eni_when_ports_to_one_destination_run_out():
    net = lab("open", lambda_settings=hp.LambdaSettings(ports=(1024, 1026)))
    fn = net.function("open")
    (first,) = fn.hyperplane_enis
    ports = {fn.send(IP(dst=HOST) / TCP(dport=8080, flags="S")).packet.sport for _ in range(3)}
    assert ports == {1024, 1025, 1026}  # Lambda's port range, here three ports wide
    other = fn.send(IP(dst=HOST) / TCP(dport=8081, flags="S"))  # another destination: ports left
    assert other.packet.src == first.private_ip and len(fn.hyperplane_enis) == 1

    fn.send(IP(dst=HOST) / TCP(dport=8080, flags="S"))  # a fourth connection to the same one
    enis = fn.hyperplane_enis
    assert len(enis) == 2 and enis[1].overflow
    assert enis[1].connections == 1


def test_overflow_eni_creation_delay_refuses_new_connections_until_ready():
    settings = hp.LambdaSettings(max_connections_per_eni=2, overflow_eni_creation_seconds=30)
    net = lab(lambda_settings=settings)
    api = net.function("api")
    assert [api.send(syn()).reason for _ in range(2)] == [hp.Reason.DELIVERED] * 2

    r = api.send(syn())
    assert r.reason == hp.Reason.ENI_CAPACITY and not r.delivered
    (pending,) = [e for e in api.hyperplane_enis if e.overflow]
    assert pending.status == "pending"
    net.advance(29)
    assert api.send(syn()).reason == hp.Reason.ENI_CAPACITY
    net.advance(1)
    r = api.send(syn())
    assert r.reason == hp.Reason.DELIVERED and r.packet.src == pending.private_ip


# -- connection timeouts ----------------------------------------------------------------------


def established(net: hp.Network, fn: str = "api", sport: int = 41000) -> hp.Result:
    """SYN, SYN-ACK, ACK between a function and the database; returns the SYN's result."""
    f = net.function(fn)
    r = f.send(syn(sport=sport))
    assert r.reply(TCP(flags="SA")).reason == hp.Reason.DELIVERED_TO_FUNCTION
    assert f.send(IP(dst=DB) / TCP(sport=sport, dport=5432, flags="A")).reason == hp.Reason.DELIVERED
    return r


def test_established_tcp_connection_idles_out_after_350_seconds():
    net = lab()
    r = established(net)
    net.advance(349)
    assert r.reply(TCP(flags="PA")).reason == hp.Reason.DELIVERED_TO_FUNCTION  # refreshes it
    net.advance(349)
    assert r.reply(TCP(flags="PA")).reason == hp.Reason.DELIVERED_TO_FUNCTION
    net.advance(351)
    late = r.reply(TCP(flags="PA"))
    assert late.reason == hp.Reason.V2N_UNSOLICITED_INBOUND
    assert net.function("api").hyperplane_enis[0].connections == 0


def test_opening_tcp_connection_idles_out_after_120_seconds():
    net = lab("open")  # sg-open admits the host by rule: only the V2N timeout is at play
    fn = net.function("open")
    early = fn.send(IP(dst=HOST) / TCP(sport=42000, dport=8080, flags="S"))
    late = fn.send(IP(dst=HOST) / TCP(sport=42001, dport=8080, flags="S"))
    net.advance(119)
    assert early.reply(TCP(flags="SA")).reason == hp.Reason.DELIVERED_TO_FUNCTION
    net.advance(2)  # `late` has now waited 121 s for its SYN-ACK
    assert late.reply(TCP(flags="SA")).reason == hp.Reason.V2N_UNSOLICITED_INBOUND


def test_closing_tcp_connection_idles_out_after_120_seconds():
    for wait, reason in ((119, hp.Reason.DELIVERED_TO_FUNCTION), (121, hp.Reason.V2N_UNSOLICITED_INBOUND)):
        net = lab("open")
        fn = net.function("open")
        r = fn.send(IP(dst=HOST) / TCP(sport=38000, dport=8080, flags="S"))
        assert r.reply(TCP(flags="SA")).delivered
        assert fn.send(IP(dst=HOST) / TCP(sport=38000, dport=8080, flags="A")).delivered
        assert fn.send(IP(dst=HOST) / TCP(sport=38000, dport=8080, flags="FA")).delivered
        assert r.reply(TCP(flags="FA")).delivered
        net.advance(wait)
        assert r.reply(TCP(flags="A")).reason == reason, wait  # the last ACK, late or not


def test_udp_flow_idles_out_after_30_seconds_or_180_once_replied():
    net = lab("open")
    fn = net.function("open")
    (eni,) = fn.hyperplane_enis
    one_way = fn.send(IP(dst=HOST) / UDP(sport=35000, dport=514))
    answered = fn.send(IP(dst=HOST) / UDP(sport=35001, dport=514))
    assert answered.reply(UDP()).reason == hp.Reason.DELIVERED_TO_FUNCTION

    net.advance(31)
    assert one_way.reply(UDP()).reason == hp.Reason.V2N_UNSOLICITED_INBOUND
    assert answered.reply(UDP()).reason == hp.Reason.DELIVERED_TO_FUNCTION
    net.advance(179)
    assert answered.reply(UDP()).reason == hp.Reason.DELIVERED_TO_FUNCTION
    net.advance(181)
    assert answered.reply(UDP()).reason == hp.Reason.V2N_UNSOLICITED_INBOUND
    assert eni.connections == 0


def test_expired_connection_frees_its_port():
    net = lab("open", lambda_settings=hp.LambdaSettings(ports=(2000, 2000)))
    fn = net.function("open")
    first = fn.send(IP(dst=HOST) / UDP(sport=36000, dport=514))
    assert first.packet.sport == 2000
    net.advance(31)
    again = fn.send(IP(dst=HOST) / UDP(sport=36001, dport=514))
    assert again.reason == hp.Reason.DELIVERED
    assert (again.packet.src, again.packet.sport) == (first.packet.src, 2000)
    assert len(fn.hyperplane_enis) == 1  # the port was free again: no overflow ENI


# -- lifecycle on the virtual clock -----------------------------------------------------------


def test_function_pending_rejects_packets_until_eni_ready():
    net = lab(ready=False)
    api = net.function("api")
    assert (api.state, api.state_reason_code) == ("Pending", "Creating")
    (eni,) = api.hyperplane_enis
    assert eni.status == "pending"

    r = api.send(syn())
    assert r.reason == hp.Reason.FUNCTION_PENDING and not r.delivered
    assert r.disposition == hp.Disposition.DENIED_OUT
    assert eni.connections == 0
    net.advance(59)
    assert api.send(syn()).reason == hp.Reason.FUNCTION_PENDING
    net.advance(1)
    assert api.state == "Active" and api.last_update_status == "Successful"
    r = api.send(syn())
    assert r.reason == hp.Reason.DELIVERED and r.packet.src == eni.private_ip


def test_idle_function_inactive_then_restored():
    net = lab()
    api = net.function("api")
    assert api.send(syn()).delivered
    net.advance(14 * DAY)
    assert (api.state, api.state_reason_code) == ("Inactive", "Idle")
    assert api.hyperplane_enis == [] and net.hyperplane_enis == []

    r = api.send(syn())  # fails, and starts re-creating the ENI
    assert r.reason == hp.Reason.FUNCTION_INACTIVE and not r.delivered
    assert (api.state, api.state_reason_code) == ("Pending", "Restoring")
    assert api.send(syn()).reason == hp.Reason.FUNCTION_PENDING
    net.advance(60)
    assert api.state == "Active"
    r = api.send(syn())
    assert r.reason == hp.Reason.DELIVERED
    assert r.packet.src == api.hyperplane_enis[0].private_ip


def test_sending_counts_as_invocation_and_keeps_function_active():
    net = lab()
    api = net.function("api")
    for day in range(1, 5):
        net.advance(13 * DAY)
        assert api.send(syn()).delivered, f"idle reclaimed after {13 * day} days of regular use"
        assert net.lambda_service.function("api").last_invoked == net.now
    assert api.state == "Active"


def test_update_keeps_old_eni_until_active():
    doc = {
        "vpcs": [{"id": "vpc-old", "cidr": "10.1.0.0/16"}, {"id": "vpc-new", "cidr": "10.2.0.0/16"}],
        "subnets": [
            {"id": "subnet-old", "vpc_id": "vpc-old", "cidr": "10.1.0.0/24", "availability_zone": "us-east-1a"},
            {"id": "subnet-new", "vpc_id": "vpc-new", "cidr": "10.2.0.0/24", "availability_zone": "us-east-1a"}],
        "security_groups": [
            {"id": "sg-old", "vpc_id": "vpc-old", "ingress": [{"protocol": "tcp", "ports": 80, "cidr": "10.1.0.0/16"}]},
            {"id": "sg-new", "vpc_id": "vpc-new", "ingress": [{"protocol": "tcp", "ports": 80, "cidr": "10.2.0.0/16"}]}],
        "network_interfaces": [
            {"id": "eni-old-web", "subnet_id": "subnet-old", "private_ip": "10.1.0.10", "security_group_ids": ["sg-old"]},
            {"id": "eni-new-web", "subnet_id": "subnet-new", "private_ip": "10.2.0.10", "security_group_ids": ["sg-new"]}],
        "functions": [{"name": "mover", "vpc_config": {"subnet_ids": ["subnet-old"], "security_group_ids": ["sg-old"]}}],
    }
    net = hp.Network(parse_topology(doc), ready=True)
    mover = net.function("mover")
    (old,) = mover.hyperplane_enis
    old_web, new_web = IP(dst="10.1.0.10") / TCP(dport=80, flags="S"), IP(dst="10.2.0.10") / TCP(dport=80, flags="S")

    net.lambda_service.update_function_configuration("mover", VpcConfig(("subnet-new",), ("sg-new",)))
    assert (mover.state, mover.last_update_status) == ("Active", "InProgress")
    net.advance(30)
    r = mover.send(old_web)  # meanwhile invocations keep using the old ENI
    assert r.reason == hp.Reason.DELIVERED and r.packet.src == old.private_ip
    assert mover.send(new_web).reason == hp.Reason.NO_ROUTE

    net.advance(30)
    assert mover.last_update_status == "Successful"
    (new,) = mover.hyperplane_enis
    assert new.subnet_id == "subnet-new"
    r = mover.send(new_web)
    assert r.reason == hp.Reason.DELIVERED and r.packet.src == new.private_ip
    gone = mover.send(old_web)  # the old VPC is no longer reachable from the function
    assert not gone.delivered and gone.reason == hp.Reason.NO_ROUTE
    assert hop(gone, "route").resource == "rtb-new-main"


def test_failed_function_refuses_packets():
    role = {"name": "thin-role", "permissions": ["logs:CreateLogStream"]}
    net = lab(role=role)
    api = net.function("api")
    assert (api.state, api.state_reason_code) == ("Failed", "InsufficientRolePermissions")
    r = api.send(syn())
    assert r.reason == hp.Reason.FUNCTION_FAILED and not r.delivered
    assert net.hyperplane_enis == []


def test_unused_eni_deleted_within_20_minutes_stops_answering():
    net = lab("open")
    (eni,) = net.function("open").hyperplane_enis
    net.lambda_service.update_function_configuration("open", None)
    assert eni.status == "deleting"
    probe = IP(dst=eni.private_ip) / TCP(sport=5000, dport=40000, flags="S")
    assert net.send(probe, source="i-0host").reason == hp.Reason.V2N_UNSOLICITED_INBOUND

    net.advance(20 * 60)
    assert eni.status == "deleted" and net.hyperplane_enis == []
    r = net.send(probe, source="i-0host")
    assert r.reason == hp.Reason.NO_ENI_AT_ADDRESS
    assert r.disposition == hp.Disposition.DELIVERED_TO_SUBNET
    # and the function, no longer in a VPC, reaches the internet but not the VPC
    assert net.function("open").send(syn()).reason == hp.Reason.NO_VPC_ACCESS


# -- where a function's packets can go ----------------------------------------------------------


def test_function_in_public_subnet_cannot_reach_internet():
    net = hp.Network.example()
    report = net.function("report")
    (eni,) = report.hyperplane_enis
    assert eni.subnet_id == "subnet-public-a"

    r = report.send(IP(dst="93.184.216.34") / TCP(dport=443, flags="S"))
    assert not r.delivered
    assert r.reason == hp.Reason.NO_PUBLIC_IP
    assert r.disposition == hp.Disposition.DENIED_OUT
    assert r.explanation == "IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS"
    route = hop(r, "route")
    assert route.resource == "rtb-public" and "0.0.0.0/0 -> igw-main" in route.detail
    igw = hop(r, "igw-out")
    assert igw.decision == "drop" and igw.detail == f"{eni.private_ip} has no public IP"


def test_private_function_reaches_internet_through_nat_with_eip_as_source():
    net = hp.Network.example()
    orders = net.function("orders")
    r = orders.send(IP(dst="93.184.216.34") / TCP(sport=44000, dport=443, flags="S"), environment=0)
    assert r.delivered and r.reason == hp.Reason.EXITED_TO_INTERNET
    assert r.packet.src == "203.0.113.10"  # nat-a's Elastic IP
    assert 1024 <= r.packet.sport <= 65535
    assert [h.stage for h in r.hops] == ["invoke", "v2n-out", "sg-egress", "route", "nacl-out", "nacl-in",
                                        "nat-out", "route", "nacl-out", "igw-out"]
    assert hop(r, "nat-out").resource == "nat-a"
    routes = [h for h in r.hops if h.stage == "route"]
    assert routes[0].resource == "rtb-private" and "0.0.0.0/0 -> nat-a" in routes[0].detail
    assert routes[1].resource == "rtb-public" and "0.0.0.0/0 -> igw-main" in routes[1].detail
    assert hop(r, "igw-out").detail == "10.0.0.10 -> 203.0.113.10"

    back = r.reply(TCP(flags="SA"))
    assert back.reason == hp.Reason.DELIVERED_TO_FUNCTION
    assert (back.packet.src, back.packet.sport) == ("93.184.216.34", 443)
    assert (back.packet.dst, back.packet.dport) == (orders.environment_address(0), 44000)
    assert "nat-in" in stages(back) and "v2n-in" in stages(back)


def test_hyperplane_eni_listing_shows_connections_and_users():
    net = hp.Network.example()
    by_id = {e.id: e for e in net.hyperplane_enis}
    assert len(by_id) == 3
    orders = net.function("orders")
    for eni in orders.hyperplane_enis:
        assert by_id[eni.id] is eni
        assert eni.functions == ["orders", "orders:1"]
        assert eni.security_group_ids == ("sg-app",)
    (report_eni,) = net.function("report").hyperplane_enis
    assert report_eni.functions == ["report"]
    before = report_eni.connections
    net.function("report").send(IP(dst="10.0.21.10") / TCP(dport=6379, flags="S"))
    assert report_eni.connections == before + 1


def test_no_overflow_eni_beyond_the_eni_limit_per_vpc():
    settings = hp.LambdaSettings(max_connections_per_eni=2, max_enis_per_vpc=1)
    net = lab(lambda_settings=settings)
    api = net.function("api")
    assert [api.send(syn()).reason for _ in range(2)] == [hp.Reason.DELIVERED] * 2
    r = api.send(syn())
    assert r.reason == hp.Reason.ENI_CAPACITY and not r.delivered
    assert hop(r, "v2n-out").decision == "drop"
    assert len(api.hyperplane_enis) == 1
    assert "EniLimitExceeded" in api.hyperplane_enis[0].pool.overflow_refusal


def test_function_rst_closes_its_connection():
    net = lab("open")
    fn = net.function("open")
    (eni,) = fn.hyperplane_enis
    r = fn.send(IP(dst=HOST) / TCP(sport=43000, dport=8080, flags="S"))
    assert r.reply(TCP(flags="SA")).reason == hp.Reason.DELIVERED_TO_FUNCTION
    assert eni.connections == 1
    rst = fn.send(IP(dst=HOST) / TCP(sport=43000, dport=8080, flags="R"))
    assert rst.reason == hp.Reason.DELIVERED  # the RST itself is carried...
    assert eni.connections == 0  # ...and ends the connection
    assert r.reply(TCP(flags="A")).reason == hp.Reason.V2N_UNSOLICITED_INBOUND


def test_icmp_from_the_vpc_to_a_hyperplane_eni_is_dropped_with_its_own_reason():
    net = lab("open")
    (eni,) = net.function("open").hyperplane_enis
    r = net.send(IP(dst=eni.private_ip) / ICMP(type=3, code=3), source="i-0host")
    assert r.reason == hp.Reason.V2N_UNSUPPORTED_PROTOCOL
    assert r.disposition == hp.Disposition.DENIED_IN
    assert hop(r, "v2n-in").resource == eni.id


def test_function_security_groups_are_a_union_on_its_hyperplane_eni():
    doc = yaml.safe_load(LAB)
    doc["security_groups"] += [
        {"id": "sg-to-db", "vpc_id": "vpc-lab",
         "egress": [{"protocol": "tcp", "ports": 5432, "security_group_id": "sg-db"}]},
        {"id": "sg-to-host", "vpc_id": "vpc-lab",
         "egress": [{"protocol": "tcp", "ports": 8080, "cidr": "10.1.20.20/32"}]}]
    (sg_db,) = [g for g in doc["security_groups"] if g["id"] == "sg-db"]
    sg_db["ingress"] = [{"protocol": "tcp", "ports": 5432, "security_group_id": "sg-to-db"}]
    doc["functions"] = [{"name": "two", "vpc_config": {"subnet_ids": ["subnet-app-a"],
                                                      "security_group_ids": ["sg-to-db", "sg-to-host"]}}]
    net = hp.Network(parse_topology(doc), ready=True)
    two = net.function("two")
    (eni,) = two.hyperplane_enis
    assert eni.security_group_ids == ("sg-to-db", "sg-to-host")

    db = two.send(syn())
    assert db.reason == hp.Reason.DELIVERED
    assert hop(db, "sg-egress").resource == "sg-to-db"
    assert hop(db, "sg-egress").detail == f"on {eni.id}: rule 0: tcp/5432 to sg-db"
    host = two.send(IP(dst=HOST) / TCP(dport=8080, flags="S"))
    assert host.reason == hp.Reason.DELIVERED and hop(host, "sg-egress").resource == "sg-to-host"
    neither = two.send(IP(dst=HOST) / TCP(dport=5432, flags="S"))
    assert neither.reason == hp.Reason.SG_EGRESS_DENY
    assert neither.disposition == hp.Disposition.DENIED_OUT
    assert hop(neither, "sg-egress").detail == f"on {eni.id}: no rule of sg-to-db, sg-to-host matches"


def test_caller_source_address_is_replaced_by_the_execution_environment():
    net = lab()
    api = net.function("api")
    r = api.send(IP(src="192.0.2.99", dst=DB) / TCP(sport=40001, dport=5432, flags="S"), environment=3)
    env = api.environment_address(3)
    assert hop(r, "v2n-out").detail.startswith(f"{env}:40001 -> ")
    back = r.reply(TCP(flags="SA"))
    assert (back.packet.dst, back.packet.dport) == (env, 40001)


def test_packets_of_an_expired_connection_are_new_or_unsolicited():
    net = lab("open")
    fn = net.function("open")
    (eni,) = fn.hyperplane_enis
    fn.send(IP(dst=HOST) / UDP(sport=37000, dport=514))
    tcp = fn.send(IP(dst=HOST) / TCP(sport=37001, dport=8080, flags="S"))
    assert tcp.reply(TCP(flags="SA")).reason == hp.Reason.DELIVERED_TO_FUNCTION
    assert fn.send(IP(dst=HOST) / TCP(sport=37001, dport=8080, flags="A")).reason == hp.Reason.DELIVERED
    net.advance(351)
    assert eni.connections == 0
    # UDP: the next datagram simply opens a new flow
    again = fn.send(IP(dst=HOST) / UDP(sport=37000, dport=514))
    assert again.reason == hp.Reason.DELIVERED and hop(again, "v2n-out").decision == "translate"
    assert eni.connections == 1
    # TCP: a segment of the dead connection is no SYN, so it opens nothing
    late = fn.send(IP(dst=HOST) / TCP(sport=37001, dport=8080, flags="A"))
    assert late.reason == hp.Reason.V2N_NO_CONNECTION
    assert tcp.reply(TCP(flags="A")).reason == hp.Reason.V2N_UNSOLICITED_INBOUND


def test_new_function_on_an_existing_pair_sends_at_once():
    from hyperplane.model import ExecutionRole, LambdaFunction

    net = lab("api")
    (eni,) = net.function("api").hyperplane_enis
    role = ExecutionRole("arn:aws:iam::123456789012:role/late-role",
                         managed_policies=("AWSLambdaVPCAccessExecutionRole",))
    net.lambda_service.create_function(
        LambdaFunction("late", role, VpcConfig(("subnet-app-a",), ("sg-fn",))))
    late = net.function("late")
    assert late.state == "Active"  # the pair's ENI already exists: no Pending
    r = late.send(syn())
    assert r.reason == hp.Reason.DELIVERED and r.packet.src == eni.private_ip
    assert eni.functions == ["api", "late"]


def test_orphaned_eni_keeps_its_address_and_carries_nothing():
    net = lab("open")
    (eni,) = net.function("open").hyperplane_enis
    service = net.lambda_service
    service.update_function_configuration("open", None)
    service.delete_role(service.function("open").role)  # before Lambda could delete the ENI
    net.advance(20 * 60)
    assert eni.status == "orphaned"
    assert [e.id for e in net.hyperplane_enis] == [eni.id]  # still there, holding its address
    r = net.send(IP(dst=eni.private_ip) / TCP(sport=5000, dport=40000, flags="S"), source="i-0host")
    assert not r.delivered and r.reason == hp.Reason.V2N_UNSOLICITED_INBOUND
