"""``hyperplane demo``: the built-in example, end to end."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hyperplane.nat import ConnectionTable, Direction, NatStatus
from hyperplane.records import ACK, SYN, TCP, UDP, ip, ip_str, packet, packets


def run_demo(say: Callable[[str], None]) -> None:
    say("Hyperplane ENI 10.0.10.50 (subnet-private-a, sg-app): V2N NAT, one way")
    eni = ConnectionTable.hyperplane_eni(["10.0.10.50"])

    syn = packet("169.254.76.1", "10.0.20.5", 40000, 5432, TCP, SYN, time=0.0)
    out = eni.process(syn, Direction.OUT)
    p = out.packets[0]
    say(f"  function 169.254.76.1:40000 -> db 10.0.20.5:5432 SYN: {NatStatus(out.status[0]).name}, "
        f"leaves as {ip_str(p['src_ip'])}:{p['src_port']}")
    synack = packet("10.0.20.5", "10.0.10.50", 5432, int(p["src_port"]), TCP, SYN | ACK, time=0.001)
    back = eni.process(synack, Direction.IN)
    q = back.packets[0]
    say(f"  reply SYN-ACK: {NatStatus(back.status[0]).name}, delivered to {ip_str(q['dst_ip'])}:{q['dst_port']}")
    probe = packet("10.0.20.5", "10.0.10.50", 5432, 22, TCP, SYN, time=0.002)
    refused = eni.process(probe, Direction.IN)
    say(f"  a VPC host opening a connection to the ENI: {NatStatus(refused.status[0]).name} (one-way NAT)")

    say("\n65,000 connections per Hyperplane ENI: the 65,001st opens an overflow ENI")
    spare = iter(f"10.0.10.{n}" for n in range(51, 60))

    def add_overflow_eni(table: ConnectionTable, now: float, status: NatStatus) -> bool:
        address = next(spare)
        table.add_address(address, active_from=now)
        say(f"  t={now:.0f}s {status.name}: Lambda creates Hyperplane ENI {address}")
        return True

    pool = ConnectionTable.hyperplane_eni(["10.0.10.50"], on_full=add_overflow_eni)
    n = 70_000
    batch = packets(n)
    batch["time"] = 10.0
    batch["src_ip"] = ip("169.254.76.1") + np.arange(n) // 60_000
    batch["src_port"] = 1024 + np.arange(n) % 60_000
    batch["dst_ip"] = ip("10.0.20.5") + np.arange(n) % 2
    batch["dst_port"] = 5432
    batch["proto"] = UDP
    pool.process(batch, Direction.OUT)
    for s in pool.stats():
        say(f"  {s.address}: {s.live} live connections")

