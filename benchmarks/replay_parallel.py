"""Parallel replay: captures of a VPC with one NAT gateway per AZ, replayed by one process and
by ``workers=2`` in the same run (their ratio), every output file checked identical:

- instances: a capture taken inside the VPC (``inject="eni"``) of an instance per AZ talking to
  the internet through its AZ's NAT gateway;
- functions: a capture taken inside two functions per AZ (``inject="function"``), to the
  internet through the NAT gateways and to a database, with flow logs.

Each is measured twice: wall-clock seconds, and CPU seconds on the critical path (the
caller's reading of the capture, the partition, the busiest worker, then the parent's merge and
the processes writing the flow-log files and the output capture beside it: the longest of them,
or all of them shared over the cores; one process: all of it), which is what an idle machine
would see. The one process already keeps more than one core busy (it walks the next chunk while
it writes the last): ``one_process_cores`` is its CPU seconds over its wall-clock seconds. The
machine's cores may be shared with other work: the wall-clock ratio is what this run saw. Last,
the walk on two threads (one Network each) against one thread: whether threads would serve as
well as processes."""

from __future__ import annotations

import gzip
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import best_of_each, emit, figure, ipv4_frames, options, ratio, timed, write_pcap

import hyperplane as hp
from hyperplane.formats.topology_reader import parse_topology
from hyperplane.records import ip
from hyperplane.replay import Engine
from hyperplane.replay_parallel.partition import partition

AZS = "abc"
ROLE = {"name": "fn-role", "permissions": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                                           "ec2:DeleteNetworkInterface"]}
# two functions per AZ, each in the private subnet of its AZ; internet servers through the
# AZ's NAT gateway, a database without a way out
SERVERS = ["93.184.216.34", "198.51.100.7", "203.0.113.200"]


def topology(azs: int) -> dict:
    doc: dict = {
        "account_id": "123456789012", "region": "us-east-1",
        "vpcs": [{"id": "vpc-app", "cidr": "10.0.0.0/16"}],
        "internet_gateways": [{"id": "igw-app", "vpc_id": "vpc-app"}],
        "subnets": [{"id": "subnet-data", "vpc_id": "vpc-app", "cidr": "10.0.20.0/24",
                     "availability_zone": "us-east-1a"}],
        "route_tables": [{"id": "rtb-public", "vpc_id": "vpc-app",
                          "routes": [{"destination": "0.0.0.0/0", "target": "igw-app"}]}],
        "nat_gateways": [], "functions": [],
        "security_groups": [{"id": "sg-app", "vpc_id": "vpc-app"}, {
            "id": "sg-db", "vpc_id": "vpc-app",
            "ingress": [{"protocol": "tcp", "ports": 5432, "security_group_id": "sg-app"}]}],
        "network_interfaces": [{"id": "eni-db", "subnet_id": "subnet-data", "private_ip": "10.0.20.10",
                                "security_group_ids": ["sg-db"], "kind": "rds"}],
    }
    for k, az in enumerate(AZS[:azs]):
        doc["subnets"] += [
            {"id": f"subnet-public-{az}", "vpc_id": "vpc-app", "cidr": f"10.0.{k}.0/24",
             "availability_zone": f"us-east-1{az}", "route_table_id": "rtb-public"},
            {"id": f"subnet-private-{az}", "vpc_id": "vpc-app", "cidr": f"10.0.{10 + k}.0/24",
             "availability_zone": f"us-east-1{az}", "route_table_id": f"rtb-private-{az}"}]
        doc["nat_gateways"].append({
            "id": f"nat-{az}", "subnet_id": f"subnet-public-{az}", "connectivity_type": "public",
            "private_ip": f"10.0.{k}.10", "network_interface_id": f"eni-nat-{az}",
            "elastic_ips": [{"allocation_id": f"eipalloc-{az}", "public_ip": f"203.0.113.{10 + k}"}]})
        doc["route_tables"].append({"id": f"rtb-private-{az}", "vpc_id": "vpc-app",
                                    "routes": [{"destination": "0.0.0.0/0", "target": f"nat-{az}"}]})
        for j in range(2):
            doc["functions"].append({"name": f"fn-{az}{j}", "role": ROLE, "vpc_config": {
                "subnet_ids": [f"subnet-private-{az}"], "security_group_ids": ["sg-app"]}})
    return doc


def functions(doc: dict) -> dict[str, str]:
    """Each function's capture addresses: 172.16.<k>.0/24."""
    return {f["name"]: f"172.16.{k}.0/24" for k, f in enumerate(doc["functions"])}


# distinct connections of the functions capture (its flows cycle through them): each AZ's
# Hyperplane ENI stays under its 65,000-connection limit, so no overflow ENI couples the AZs
CONNECTIONS = 40_000


def capture(path: str, doc: dict, n: int, seed: int = 1) -> None:
    """``n`` packets: connections (SYN, the peer's SYN-ACK, ACK) from 20 environments of each
    function to the servers (over the NAT gateway) and the database, 10,000 packets a second;
    the flows cycle through ``CONNECTIONS`` distinct connections."""
    rng = np.random.default_rng(seed)
    flows = n // 3
    which = np.arange(flows) % CONNECTIONS
    fn = rng.integers(0, len(doc["functions"]), CONNECTIONS)[which]
    env = (np.uint32(172 << 24 | 16 << 16) | (fn.astype(np.uint32) << 8)
           | (10 + rng.integers(0, 20, CONNECTIONS)[which]))
    servers = np.array([ip(s) for s in SERVERS + ["10.0.20.10"]], np.uint32)
    peer = servers[rng.integers(0, len(servers), CONNECTIONS)[which]]
    dport = np.where(peer == servers[-1], 5432, 443).astype(np.uint16)
    sport = (1024 + which % 60_000).astype(np.uint16)
    src = np.stack([env, peer, env], 1).ravel()
    dst = np.stack([peer, env, peer], 1).ravel()
    sp = np.stack([sport, dport, sport], 1).ravel()
    dp = np.stack([dport, sport, dport], 1).ravel()
    flags = np.tile(np.array([0x02, 0x12, 0x10], np.uint8), flows)
    micros = 1_700_000_000_000_000 + np.arange(3 * flows, dtype=np.int64) * 100
    write_pcap(path, micros, ipv4_frames(src, dst, sp, dp, np.full(3 * flows, 6, np.uint8), flags))


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def with_instances(doc: dict) -> dict:
    """``doc`` with an EC2 instance in each private subnet (10.0.1x.100)."""
    doc = {**doc, "network_interfaces": list(doc["network_interfaces"])}
    for k, az in enumerate(AZS[:len(doc["nat_gateways"])]):
        doc["network_interfaces"].append({
            "id": f"eni-app-{az}", "subnet_id": f"subnet-private-{az}", "private_ip": f"10.0.{10 + k}.100",
            "security_group_ids": ["sg-app"], "kind": "instance", "instance_id": f"i-app{az}"})
    return doc


def instance_capture(path: str, doc: dict, n: int, seed: int = 2) -> None:
    """``n`` packets: SYNs of the instances to the servers, each answered (SYN-ACK) toward the
    NAT gateway of its AZ, 10,000 packets a second."""
    rng = np.random.default_rng(seed)
    flows, azs = n // 2, len(doc["nat_gateways"])
    az = rng.integers(0, azs, flows).astype(np.uint32)
    src = np.uint32(ip("10.0.10.100")) + (az << 8)
    nat = np.uint32(ip("203.0.113.10")) + az
    peer = np.array([ip(s) for s in SERVERS], np.uint32)[rng.integers(0, len(SERVERS), flows)]
    sport = (1024 + np.arange(flows) % 60_000).astype(np.uint16)
    https = np.full(flows, 443, np.uint16)
    write_pcap(path, 1_700_000_000_000_000 + np.arange(2 * flows, dtype=np.int64) * 100, ipv4_frames(
        np.stack([src, peer], 1).ravel(), np.stack([peer, nat], 1).ravel(), np.stack([sport, https], 1).ravel(),
        np.stack([https, sport], 1).ravel(), np.full(2 * flows, 6, np.uint8),
        np.tile(np.array([0x02, 0x12], np.uint8), flows)))


def compare(doc: dict, path: str, tmp: str, tag: str, repeat: int, **options) -> dict:
    """One process against workers=2 on one capture: wall and critical-path CPU seconds, the
    files compared."""
    reports: dict[int, hp.ReplayReport] = {}
    cpu: dict[int, float] = {}
    steps: dict[str, float] = {}  # the CPU seconds of each step of the fastest workers=2 run
    folders = {w: Path(tmp, f"{tag}{w}") for w in (1, 2)}

    def run(workers: int) -> None:
        folder = folders[workers]
        folder.mkdir(exist_ok=True)
        net = hp.Network(parse_topology(doc), ready=True)
        start = time.process_time()
        report = net.replay(path, output=folder / "out.pcap", verdicts=folder / "v.csv", workers=workers,
                            flow_logs=folder / "logs" if options.get("flow_logs") else None,
                            **{k: v for k, v in options.items() if k != "flow_logs"})
        spent = time.process_time() - start
        if workers > 1:  # the parent's own share is its merge; the rest ran in the children
            c = report.parallel.cpu_seconds
            # the flow-log files and the output capture are written by processes of their own
            # during the merge: the longest of them, or all of them shared over the cores
            beside = c.get("beside", []) + c.get("flow logs", [])
            tail = max([c["merge"], *beside, (c["merge"] + sum(beside)) / (os.cpu_count() or 1)])
            spent = c.get("read", 0.0) + c["partition"] + max(c["workers"]) + tail
            if spent < cpu.get(workers, float("inf")):
                steps.update({"read": c.get("read", 0.0), "partition": c["partition"],
                              "busiest_worker": max(c["workers"]), "merge": c["merge"],
                              "beside_merge": max(beside, default=0.0)})
        cpu[workers] = min(cpu.get(workers, float("inf")), spent)
        reports[workers] = report

    t_one, t_two = best_of_each([lambda: run(1), lambda: run(2)], repeat)
    assert files(folders[1]) == files(folders[2]), f"{tag}: workers=2 wrote other files than one process"
    return {"packets": reports[1].packets, "components": len(reports[2].parallel.components),
            "wall": (t_one, t_two), "cpu": (cpu[1], cpu[2]), "steps": steps}


def threads(doc: dict, path: str, repeat: int) -> tuple[float, float]:
    """Seconds of the walk on one thread, and of its two halves (the partition's groups) on two
    threads, one fresh Network each (a thread cannot copy a Network: each builds its own)."""
    scratch = Engine(hp.Network(parse_topology(doc), ready=True), path, functions(doc), "function", 600, 65536)
    plan = partition(scratch.net, scratch.fns, scratch.chunks(), "function")
    masks = [np.isin(plan.component, g) for g in plan.groups(2)]

    def engine() -> Engine:
        return Engine(hp.Network(parse_topology(doc), ready=True), path, functions(doc), "function", 600, 65536)

    def walk(e: Engine, mine: np.ndarray | None) -> None:
        for _ in e.walk(mine):
            pass

    def two() -> None:
        pool = [threading.Thread(target=walk, args=(e, m)) for e, m in zip(engines, masks)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()

    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        one, engines = engine(), [engine() for _ in masks]  # built untimed
        best[0] = min(best[0], timed(lambda: walk(one, None))[0])
        best[1] = min(best[1], timed(two)[0])
    return best[0], best[1]


def main() -> None:
    args = options(__doc__, {"packets": 600_000, "azs": 2}, repeat=3, quick={"packets": 60_000, "repeat": 1})
    doc = topology(min(args.azs, len(AZS)))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "instances.pcap")
        instance_capture(path, doc, args.packets)
        inst = compare(with_instances(doc), path, tmp, "instances", args.repeat, inject="eni")
        path = os.path.join(tmp, "functions.pcap")
        capture(path, doc, args.packets)
        fns = compare(doc, path, tmp, "functions", args.repeat, functions=functions(doc), flow_logs=True)
        t_thread, t_threads = threads(doc, path, args.repeat)
    cores = os.cpu_count()
    shared = f"{cores} cores shared with other work"
    out: dict = {"cores": cores, "identical": True}
    headline = []
    for tag, m in (("instances", inst), ("functions", fns)):
        n = m["packets"]
        (w1, w2), (c1, c2) = m["wall"], m["cpu"]
        out[tag] = {"packets": n, "components": m["components"], "wall_speedup": round(ratio(w1, w2), 2),
                    "cpu_critical_path_speedup": round(ratio(c1, c2), 2),
                    # the one process is not one core: it walks the next chunk on a second
                    # thread while it writes the last (``replay.ahead``)
                    "one_process_cores": round(c1 / w1, 2),
                    # where the time goes: one process's CPU seconds, and workers=2's by step
                    "cpu_seconds": {"one_process": round(c1, 3),
                                    **{k: round(v, 3) for k, v in m["steps"].items()}}}
        what = f"replay workers=2, {tag} ({n:,} packets, {m['components']} components), files identical"
        headline += [figure(f"{what}, wall clock ({shared})", n / w2 / 1e6, "M packets/s",
                            "one process, same capture, same run", n / w1 / 1e6),
                     figure(f"{what}, CPU on the critical path", n / c2 / 1e6, "M packets/CPU-s",
                            "one process, same capture, same run", n / c1 / 1e6)]
    out["threads_walk_speedup"] = round(ratio(t_thread, t_threads), 2)
    headline.append(figure(f"walk of the functions capture on 2 threads, one Network each ({shared})",
                           fns["packets"] / t_threads / 1e6, "M packets/s", "the same walk on one thread",
                           fns["packets"] / t_thread / 1e6))
    emit(out, headline)


if __name__ == "__main__":
    main()
