"""A batch gives the verdicts that sending its rows one by one would give.

The pipeline walks each packet through the whole VPC before the next one, so a reply in the same
batch as its request finds the state the request left. These tests drive conversations (both
directions, state-changing flags) through a small VPC and compare one batch against row-by-row
processing.
"""

import numpy as np
import yaml
from hypothesis import given, settings, strategies as st

import hyperplane as hp
from hyperplane.loaders import parse_topology
from hyperplane.dataplane.walk import Origin
from hyperplane.records import packets

# Servers that answer only because security groups are stateful (no egress rule at all), so a
# reply processed before its request's ingress would be refused.
TOPOLOGY = """
vpcs: [{id: vpc-a, cidr: 10.1.0.0/16}]
subnets:
  - {id: subnet-a, vpc_id: vpc-a, cidr: 10.1.1.0/24, availability_zone: us-east-1a, route_table_id: rtb-a}
  - {id: subnet-b, vpc_id: vpc-a, cidr: 10.1.2.0/24, availability_zone: us-east-1b, route_table_id: rtb-a}
route_tables: [{id: rtb-a, vpc_id: vpc-a, routes: [{destination: 0.0.0.0/0, target: igw-a}]}]
internet_gateways: [{id: igw-a, vpc_id: vpc-a}]
security_groups:
  - {id: sg-server, vpc_id: vpc-a, name: server, egress: [],
     ingress: [{protocol: tcp, ports: 443, cidr: 0.0.0.0/0}, {protocol: udp, ports: 53, cidr: 0.0.0.0/0}]}
  - {id: sg-client, vpc_id: vpc-a, name: client}
network_interfaces:
  - {id: eni-web, subnet_id: subnet-a, private_ip: 10.1.1.10, security_group_ids: [sg-server], public_ip: 203.0.113.20}
  - {id: eni-dns, subnet_id: subnet-b, private_ip: 10.1.2.10, security_group_ids: [sg-server]}
  - {id: eni-client, subnet_id: subnet-b, private_ip: 10.1.2.20, security_group_ids: [sg-client]}
"""
# (source, address, port)
ENDPOINTS = [("eni-web", "10.1.1.10", 443), ("eni-dns", "10.1.2.10", 53),
             ("eni-client", "10.1.2.20", 40000), ("internet", "198.51.100.7", 40001)]
PUBLIC_WEB = "203.0.113.20"


def network():
    return hp.Network(parse_topology(yaml.safe_load(TOPOLOGY)), ready=True)


FLAGS = [0x02, 0x12, 0x10, 0x18, 0x11, 0x04]


def ip(s):
    a, b, c, d = map(int, s.split("."))
    return a << 24 | b << 16 | c << 8 | d


def build(net, steps):
    """Rows of conversations: (pair, direction, flags, proto, dt)."""
    rows = packets(len(steps))
    origin = np.zeros(len(steps), np.int8)
    index = np.full(len(steps), -1, np.int32)
    t = 0.0
    for k, (a, b, backwards, flags, udp, dt) in enumerate(steps):
        t += dt
        (sa, ia, pa), (sb, ib, pb) = ENDPOINTS[a], ENDPOINTS[b]
        if backwards:
            (sa, ia, pa), (sb, ib, pb) = (sb, ib, pb), (sa, ia, pa)
        dst = PUBLIC_WEB if sa == "internet" and sb == "eni-web" else ib
        udp = udp or "eni-dns" in (sa, sb)
        rows[k] = (t, ip(ia), ip(dst), pa, pb, 40, 17 if udp else 6, 0 if udp else flags)
        if sa == "internet":
            origin[k] = Origin.INTERNET
        else:
            origin[k], index[k] = Origin.ENI, net.compiled.eni_index[sa]
    return rows, origin, index


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.booleans(), st.sampled_from(FLAGS),
                          st.booleans(), st.sampled_from([0.0, 0.0, 0.5, 40.0])),
                min_size=1, max_size=40))
def test_a_batch_agrees_with_row_by_row_processing(steps):
    steps = [s for s in steps if s[0] != s[1]]
    if not steps:
        return
    batch_net, single_net = network(), network()
    rows, origin, index = build(batch_net, steps)
    together = batch_net.process(rows, origin, index)
    one_by_one = [single_net.process(rows[k:k + 1], origin[k:k + 1], index[k:k + 1]) for k in range(len(rows))]
    assert together.reason.tolist() == [int(r.reason[0]) for r in one_by_one]
    assert (together.packets == np.concatenate([r.packets for r in one_by_one])).all()


def test_answers_addressed_to_the_execution_environment_find_their_connection_in_the_same_batch():
    """``Origin.REPLY_TO_FUNCTION``: a peer's answer written as the function sees it (to the
    environment's own address and port) is matched to the connection its request opened -- in
    the same batch -- and walked back from the peer: the cache answers from inside the VPC, the
    internet host through the NAT gateway's public address."""
    net = hp.Network.example()
    env = net.function("orders").environment_address(0)
    pool = net.pool_index("orders", env)
    fn = net.function_number("orders")
    steps = [  # (source, destination, sport, dport, flags, origin, origin index)
        (env, "10.0.21.10", 41000, 6379, 0x02, Origin.FUNCTION, pool),  # SYN to the cache
        ("10.0.21.10", env, 6379, 41000, 0x12, Origin.REPLY_TO_FUNCTION, fn),  # its SYN-ACK
        (env, "93.184.216.34", 41001, 443, 0x02, Origin.FUNCTION, pool),  # SYN to the internet
        ("93.184.216.34", env, 443, 41001, 0x12, Origin.REPLY_TO_FUNCTION, fn),  # its SYN-ACK
        ("93.184.216.34", env, 443, 41999, 0x12, Origin.REPLY_TO_FUNCTION, fn),  # answers nothing
    ]
    rows = packets(len(steps))
    for k, (src, dst, sport, dport, flags, _, _) in enumerate(steps):
        rows[k] = (k * 0.001, ip(src), ip(dst), sport, dport, 60, 6, flags)
    res = net.process(rows, [s[5] for s in steps], [s[6] for s in steps])
    assert [hp.Reason(r).name for r in res.reason] == [
        "DELIVERED", "DELIVERED_TO_FUNCTION", "EXITED_TO_INTERNET", "DELIVERED_TO_FUNCTION",
        "V2N_UNSOLICITED_INBOUND"]
    for answer in (1, 3):  # back at the environment, on its own port
        assert (res.packets["dst_ip"][answer], res.packets["dst_port"][answer]) == (ip(env), steps[answer][3])
    stages = [stage for stage, _ in res.facts.of(3)]
    assert stages[:3] == ["igw_in", "nacl_in", "nat_in"] and stages[-1] == "v2n_in"
