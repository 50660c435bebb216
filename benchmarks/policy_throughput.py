"""Throughput of the compiled policy kernels against a per-packet Python evaluation.

Tables of realistic size: 20 route tables of 50 routes (one of them a 12-CIDR prefix-list
route), 10 security-group sets of 5 groups x 20 rules per direction (some peers are expanded
security groups, i.e. lists of /32s), 10 network ACLs of 20 entries per direction.  1M packets
whose addresses fall half inside configured CIDRs, half anywhere; protocols mixed.

Prints one JSON line: Mpps per kernel (column API and PACKET-records API) and the ratio to the
plain Python baseline measured in the same run on the same packets, all of them, which must
decide every one as the kernel did (best of at most 3 runs: it is hundreds of times slower), and
``figures``: the headline figures, each with its baseline and ratio.

    python benchmarks/policy_throughput.py [--packets N] [--seed S] [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Sequence

import numpy as np

from _common import best_of, emit, figure, mpps, options, ratio, same_verdicts, timed
from hyperplane.tables.policy import (
    CompiledNetworkAcls,
    CompiledRoutes,
    CompiledSecurityGroups,
    NetworkAclEntrySpec,
    NetworkAclSpec,
    RouteSpec,
    SecurityGroupRuleSpec,
    SecurityGroupSetSpec,
    icmp_port,
)
from hyperplane.records import PACKET

PROTOS = [6] * 12 + [17] * 5 + [1] * 2 + [50]


def cidr_of(rng: random.Random, lengths=(8, 12, 16, 20, 24, 28, 32)) -> tuple[int, int]:
    plen = rng.choice(lengths)
    net = rng.getrandbits(32) & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF)
    return net, plen


def ports(rng: random.Random, proto: int) -> tuple[int, int]:
    if proto == 1:
        return rng.choice([(-1, -1), (8, -1), (0, 0), (3, 4)])
    if proto in (6, 17):
        lo = rng.choice([22, 53, 80, 443, 1024, 5432, rng.randrange(65536)])
        return lo, min(65535, lo + rng.choice([0, 0, 0, 10, 1000, 64511]))
    return -1, -1


def make_routes(rng):
    tables = []
    for _ in range(20):
        vpc = cidr_of(rng, (16,))
        routes = [RouteSpec.static(vpc), RouteSpec.static((0, 0))]
        routes.append(RouteSpec.from_prefix_list([cidr_of(rng, (15, 16, 17, 18, 19, 20)) for _ in range(12)]))
        while len(routes) < 50:
            routes.append(RouteSpec.static(cidr_of(rng, (8, 12, 16, 20, 24, 28, 32))))
        tables.append(routes)
    return tables


def make_rule(rng) -> SecurityGroupRuleSpec:
    proto = rng.choice([-1, 6, 6, 6, 6, 17, 17, 1, 50])
    lo, hi = ports(rng, proto)
    if rng.random() < 0.15:  # a security-group peer: its members' /32s
        cidrs = [(rng.getrandbits(32), 32) for _ in range(rng.randrange(1, 15))]
    else:
        cidrs = [cidr_of(rng, (0, 8, 16, 16, 24, 24, 32))]
    return SecurityGroupRuleSpec(proto, lo, hi, cidrs)


def make_sgs(rng):
    return [SecurityGroupSetSpec([make_rule(rng) for _ in range(100)], [make_rule(rng) for _ in range(100)])
            for _ in range(10)]


def make_nacls(rng):
    def entries():
        numbers = rng.sample(range(1, 32767), 20)
        out = []
        for number in numbers:
            proto = rng.choice([-1, 6, 6, 17, 1])
            lo, hi = ports(rng, proto)
            out.append(NetworkAclEntrySpec(number, proto, cidr_of(rng, (0, 8, 16, 24, 32)),
                                           rng.random() < 0.7, lo, hi))
        return out
    return [NetworkAclSpec(entries(), entries()) for _ in range(10)]


def addresses(rng: np.random.Generator, nets: list[tuple[int, int]], n: int) -> np.ndarray:
    """Half inside one of ``nets`` (random host), half uniform."""
    out = rng.integers(0, 1 << 32, n, dtype=np.uint64)
    pick = rng.integers(0, len(nets), n)
    base = np.array([net for net, _ in nets], dtype=np.uint64)[pick]
    size = (np.uint64(1) << (32 - np.array([p for _, p in nets], dtype=np.uint64)[pick]))
    inside = base + (rng.integers(0, 1 << 32, n, dtype=np.uint64) % size)
    half = rng.random(n) < 0.5
    out[half] = inside[half]
    return out.astype(np.uint32)


def packet_columns(rng: np.random.Generator, nets, n):
    proto = np.array(PROTOS, dtype=np.uint8)[rng.integers(0, len(PROTOS), n)]
    port = rng.choice(np.array([22, 53, 80, 443, 5432, 8080], dtype=np.uint16), n)
    eph = rng.random(n) < 0.4
    port[eph] = rng.integers(1024, 65536, eph.sum()).astype(np.uint16)
    icmp = proto == 1
    port[icmp] = np.array([icmp_port(8, 0), icmp_port(0, 0), icmp_port(3, 4)], dtype=np.uint16)[
        rng.integers(0, 3, icmp.sum())]
    return addresses(rng, nets, n), proto, port


# ---- per-packet Python baseline (plain ints, no numpy) -------------------------------------

def py_routes(tables):
    flat = []
    for routes in tables:
        entries = []
        for r, spec in enumerate(routes):
            for net, plen in spec.cidrs:
                mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
                entries.append((plen, not spec.prefix_list, -r, net, mask, r))
        entries.sort(reverse=True)
        flat.append(entries)

    def lookup(t, dst):
        for _, _, _, net, mask, r in flat[t]:
            if dst & mask == net:
                return r
        return -1
    return lookup


def rule_matches(proto, lo, hi, nets, p, port, ip) -> bool:
    if proto != -1 and proto != p:
        return False
    if proto in (6, 17) and not lo <= port <= hi:
        return False
    if proto == 1 and lo != -1 and (port >> 8 != lo or (hi != -1 and port & 0xFF != hi)):
        return False
    return any(ip & mask == net for net, mask in nets)


def masked(cidrs):
    return [(net, (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF) for net, plen in cidrs]


def py_sgs(sets):
    flat = [[[(r.protocol, r.from_port, r.to_port, masked(r.cidrs)) for r in rules]
             for rules in (s.ingress, s.egress)] for s in sets]

    def evaluate(s, d, ip, p, port):
        for i, (proto, lo, hi, nets) in enumerate(flat[s][d]):
            if rule_matches(proto, lo, hi, nets, p, port, ip):
                return True, i
        return False, -1
    return evaluate


def py_nacls(acls):
    flat = [[sorted((e.rule_number, e.protocol, e.from_port, e.to_port, masked([e.cidr]), e.allow)
                    for e in entries) for entries in (a.inbound, a.outbound)] for a in acls]

    def evaluate(a, d, ip, p, port):
        for number, proto, lo, hi, nets, allow in flat[a][d]:
            if rule_matches(proto, lo, hi, nets, p, port, ip):
                return allow, number
        return False, 32767
    return evaluate


# ---- measurement ---------------------------------------------------------------------------

def fill(records: np.ndarray, src: np.ndarray, dst: np.ndarray, proto: np.ndarray, port: np.ndarray) -> None:
    """The PACKET records the records API reads: the same packets as the columns."""
    records["src_ip"], records["dst_ip"], records["proto"], records["dst_port"] = src, dst, proto, port
    records["flags"] = np.where(proto == 1, port >> 8, 0)


def kernel_figures(kind: str, n: int, repeat: int, columns: Callable[[], object],
                   records: Callable[[], object], python: Callable[[], Sequence[object]],
                   verdicts: Callable[[], Sequence[object]]) -> dict[str, float]:
    """Mpps of one kernel (column and records API) and of the Python baseline, over the same ``n``
    rows; the baseline must decide every row as the kernel does."""
    t, _ = best_of(columns, repeat)
    t_rec, _ = best_of(records, repeat)
    t_py, expected = best_of(python, min(repeat, 3))
    same_verdicts(f"{kind}: the Python baseline", verdicts(), expected)
    rate, py_rate = mpps(n, t), mpps(n, t_py)
    return {f"{kind}_mpps": round(rate, 1), f"{kind}_records_mpps": round(mpps(n, t_rec), 1),
            f"{kind}_python_mpps": round(py_rate, 4), f"{kind}_ratio_vs_python": round(ratio(rate, py_rate), 1)}


def rule_figures(kind: str, kernel: CompiledSecurityGroups | CompiledNetworkAcls,
                 python: Callable[..., tuple[bool, int]], records: np.ndarray, index: np.ndarray,
                 direction: np.ndarray, address: np.ndarray, proto: np.ndarray, port: np.ndarray,
                 repeat: int) -> dict[str, float]:
    """``kernel_figures`` of security groups or network ACLs: (allowed, rule) per packet."""
    columns = (index, direction, address, proto, port)
    fill(records, address, address, proto, port)
    rows = [c.tolist() for c in columns]

    def verdicts() -> list[tuple[bool, int]]:
        allowed, rule = kernel.evaluate(*columns)
        return list(zip(allowed.astype(bool).tolist(), rule.tolist()))

    return kernel_figures(kind, len(index), repeat, lambda: kernel.evaluate(*columns),
                          lambda: kernel.evaluate_records(records, index, direction),
                          lambda: [python(*row) for row in zip(*rows)], verdicts)


def main() -> None:
    def seed(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--seed", type=int, default=7)

    args = options(__doc__, {"packets": 1_000_000}, repeat=5, quick={"packets": 200_000}, extra=seed)
    rng, nrng = random.Random(args.seed), np.random.default_rng(args.seed)
    n = args.packets
    result: dict[str, float | int] = {"packets": n}

    # routes
    tables = make_routes(rng)
    compile_s, routes = timed(lambda: CompiledRoutes.compile(tables))
    result["route_compile_ms"] = round(compile_s * 1e3, 1)
    nets = [c for t in tables for s in t for c in s.cidrs]
    table_idx = nrng.integers(0, len(tables), n).astype(np.int32)
    dst, proto, port = packet_columns(nrng, nets, n)
    records = np.zeros(n, dtype=PACKET)
    fill(records, dst, dst, proto, port)
    ref = py_routes(tables)
    ti, di = table_idx.tolist(), dst.tolist()
    result.update(kernel_figures(
        "route", n, args.repeat, lambda: routes.lookup(table_idx, dst),
        lambda: routes.lookup_records(records, table_idx), lambda: [ref(a, b) for a, b in zip(ti, di)],
        lambda: routes.lookup(table_idx, dst).tolist()))

    # security groups
    sets = make_sgs(rng)
    compile_s, sgs = timed(lambda: CompiledSecurityGroups.compile(sets))
    result["sg_compile_ms"] = round(compile_s * 1e3, 1)
    nets = [c for s in sets for r in s.ingress + s.egress for c in r.cidrs if c[1] > 0]
    sg_idx = nrng.integers(0, len(sets), n).astype(np.int32)
    direction = nrng.integers(0, 2, n).astype(np.uint8)
    peer, proto, port = packet_columns(nrng, nets, n)
    result.update(rule_figures("sg", sgs, py_sgs(sets), records, sg_idx, direction, peer, proto, port,
                               args.repeat))
    result["sg_allowed_share"] = round(float(sgs.evaluate(sg_idx, direction, peer, proto, port)[0].mean()), 3)

    # network ACLs
    acls = make_nacls(rng)
    compile_s, nacls = timed(lambda: CompiledNetworkAcls.compile(acls))
    result["nacl_compile_ms"] = round(compile_s * 1e3, 1)
    nets = [e.cidr for a in acls for e in a.inbound + a.outbound if e.cidr[1] > 0]
    nacl_idx = nrng.integers(0, len(acls), n).astype(np.int32)
    address, proto, port = packet_columns(nrng, nets, n)
    result.update(rule_figures("nacl", nacls, py_nacls(acls), records, nacl_idx, direction, address, proto, port,
                               args.repeat))

    emit(result, [figure(f"policy kernel: {name}, {n:,} packets", result[f"{kind}_mpps"], "Mpps",
                         "plain Python first match, same packets", result[f"{kind}_python_mpps"])
                  for kind, name in [("route", "routes"), ("sg", "security groups"), ("nacl", "network ACLs")]])


if __name__ == "__main__":
    main()
