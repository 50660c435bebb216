"""``hyperplane demo``: the built-in example, end to end (no files needed)."""

from __future__ import annotations

from collections.abc import Callable

from scapy.layers.inet import ICMP, IP, TCP, UDP

from hyperplane.network import Network


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
