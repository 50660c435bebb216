"""``hyperplane demo``: the built-in example, end to end (no files needed)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from hyperplane.formats.flow_log_files import read_cloudwatch
from hyperplane.formats.topology_reader import EXAMPLE_TOPOLOGY
from hyperplane.network import Network
from hyperplane.replay import replay

# (peer, port, protocol) the demo capture's conversations go to
_PEERS = [("10.0.21.10", 6379, "tcp"), ("10.0.20.10", 5432, "tcp"), ("93.184.216.34", 443, "tcp"),
          ("52.216.8.1", 443, "tcp"), ("10.0.0.2", 53, "udp")]
_TCP_EXCHANGE = [(True, "S"), (False, "SA"), (True, "A"), (True, "PA"), (False, "PA"), (True, "FA"),
                 (False, "FA"), (True, "A")]


def write_demo_capture(path: str | Path, conversations: int = 40, t0: float = 1_700_000_000.0) -> int:
    """A capture as if taken inside the function ``orders`` (four execution environments,
    172.16.5.10-13): TCP conversations to the cache, the database, the internet and S3, and DNS
    queries, interleaved in time. Returns the number of packets written."""
    packets = []
    for k in range(conversations):
        env, (peer, port, proto) = f"172.16.5.{10 + k % 4}", _PEERS[k % len(_PEERS)]
        sport = 40000 + k
        steps = _TCP_EXCHANGE if proto == "tcp" else [(True, None), (False, None)]
        for j, (outbound, flags) in enumerate(steps):
            src, dst, sp, dp = (env, peer, sport, port) if outbound else (peer, env, port, sport)
            l4 = TCP(sport=sp, dport=dp, flags=flags) if proto == "tcp" else UDP(sport=sp, dport=dp)
            p = Ether() / IP(src=src, dst=dst) / l4
            p.time = t0 + k * 0.05 + j * 0.002
            packets.append(p)
    packets.sort(key=lambda p: p.time)
    wrpcap(str(path), packets)
    return len(packets)


def run_demo(say: Callable[[str], None]) -> None:
    net = Network.example()
    say(f"{net}\n")
    orders = net.function("orders")
    say(f"function orders: {orders.state}, Hyperplane ENIs "
        + ", ".join(f"{e.id} {e.private_ip} ({e.subnet_id})" for e in orders.hyperplane_enis) + "\n")

    scenarios = [
        ("orders -> Redis cache (sg-cache admits sg-app; acl-cache allows the replies)",
         orders, IP(dst="10.0.21.10") / TCP(dport=6379, flags="S"), TCP(flags="SA")),
        ("orders -> PostgreSQL (sg-db admits sg-app, but acl-data forgets the ephemeral ports)",
         orders, IP(dst="10.0.20.10") / TCP(dport=5432, flags="S"), TCP(flags="SA")),
        ("orders -> internet through nat-a and the internet gateway",
         orders, IP(dst="93.184.216.34") / TCP(dport=443, flags="S"), TCP(flags="SA")),
        ("orders -> S3 through the gateway endpoint", orders,
         IP(dst="52.216.8.1") / TCP(dport=443, flags="S"), None),
        ("orders -> Secrets Manager interface endpoint", orders,
         IP(dst="10.0.10.50") / TCP(dport=443, flags="S"), TCP(flags="SA")),
        ("report (attached to a PUBLIC subnet) -> internet: no public IP on a Hyperplane ENI",
         net.function("report"), IP(dst="93.184.216.34") / TCP(dport=443, flags="S"), None),
        ("thumbnail (no VpcConfig) -> the database: not reachable", net.function("thumbnail"),
         IP(dst="10.0.20.10") / TCP(dport=5432, flags="S"), None),
        ("thumbnail (no VpcConfig) -> internet", net.function("thumbnail"),
         IP(dst="93.184.216.34") / UDP(dport=53), None),
    ]
    for title, fn, pkt, answer in scenarios:
        say(f"== {title}")
        r = fn.send(pkt)
        say(str(r))
        if answer is not None and r.delivered:
            say("-- and the reply:")
            say(str(r.reply(answer)))
        say("")

    say("== the web server tries to open a connection to report's Hyperplane ENI (nothing in the VPC can)")
    eni = net.function("report").hyperplane_enis[0]
    say(str(net.send(IP(dst=eni.private_ip) / TCP(dport=40000, flags="S"), source="eni-web")))
    say("")
    say("== ping the web server from the internet (sg-web allows ICMP echo)")
    say(str(net.send(IP(src="198.51.100.7", dst="203.0.113.20") / ICMP(), source="internet")))

    say("")
    say("== replay: a capture taken inside orders (--function orders=172.16.5.0/24)")
    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "orders.pcap"
        n = write_demo_capture(capture)
        report = replay(Network.example(), capture, functions={"orders": "172.16.5.0/24"},
                        output=Path(tmp) / "out.pcap", flow_logs=Path(tmp) / "flow-logs")
        say(f"{n} packets generated; summary:")
        say(report.summary())
        stream = sorted((Path(tmp) / "flow-logs" / "cloudwatch").glob("*/eni-db-all"))
        if stream:
            say(f"-- flow log records of eni-db ({stream[0].name}):")
            for record in read_cloudwatch(stream[0])[:6]:
                say("  " + " ".join(record.values()))

    say("")
    say("== every connection of the story, judged both ways (fn.connect, hyperplane trace)")
    for source, destination in [("orders", "cache:6379"), ("orders", "db:5432"), ("orders", "internet:443"),
                                ("orders", "vpce-s3:443"), ("orders", "dns:53/udp"), ("report", "internet:443"),
                                ("thumbnail", "internet:443"), ("thumbnail", "db:5432")]:
        result = net.connect(source, destination)
        say(f"  {source + ' -> ' + destination:<26} {result.explanation}")
        if result.advice:
            say(f"  {'':<26} {result.advice}")

    say("")
    say("== try next")
    say("  hyperplane trace --from orders --to db:5432      # both directions, every hop")
    say("  hyperplane trace --from orders --to db:5432 --all-subnets")
    say("  hyperplane list                                  # the names you can ask about")
    say(f"  the example's topology, to copy and edit: {EXAMPLE_TOPOLOGY}")
    say("  hyperplane trace --topology my-network.yaml --from orders --to db:5432")
