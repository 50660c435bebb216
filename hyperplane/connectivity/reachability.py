"""What a source can reach, exactly: every destination, protocol and port, classified by walks.

For a source (a function from each of its subnets, an ENI, an instance or the internet) the
answer covers every destination of the network (each ENI of every VPC, the VPC's DNS resolver,
gateway endpoints, interface endpoints through their ENIs, the internet), TCP, UDP and ICMP
echo, and every destination port 0-65535, in ranges that share one outcome.

**Exact, not sampled.** The rules that look at ports (security-group rules and NACL entries,
both directions; the VPC resolver on 53) match on the packet's destination port only
(``hyperplane.tables.policy``), and a connection's packets carry the port asked about as the
requests' destination port. So the cut points of every such rule split 0-65535 into classes in
which no rule can tell two ports apart; one representative of each class is walked — the whole
exchange, as :func:`~hyperplane.connectivity.connection.connect` walks it (TCP: SYN, SYN-ACK,
ACK, data each way; UDP: request and response; ICMP: echo and reply) — and its verdict is the
class's. Equal neighbouring classes are then merged. The replies' destination port is the
source's ephemeral port (V2N's pick in 1024-65535 for a function), as for ``connect``.

The walks go through the batch path (``Network.process``): one batch per leg for every
destination, port class and protocol of a source at once. An exchange whose next leg is not
a walk of the compiled walker (a function without VpcConfig, which only Lambda's own VPC
answers; an ENI's DNS query, which the resolver answers without a walk) is judged by
``connect`` itself, on the same scratch network.

**A clean network state.** The question is about the configuration, as AWS Reachability
Analyzer's is: the walks run on a scratch network built from the same topology, Lambda
settings and clock, with every function deployed (``ready=True``); the network asked is not
touched (no connection left in its tables, no ENI lifecycle advanced, its clock unmoved).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address
from typing import Any

import numpy as np
from scapy.layers.inet import TCP

from hyperplane.connectivity.connection import _EXCHANGES, REPLY, REQUEST, _rule_text, connect
from hyperplane.connectivity.names import INTERNET_SOURCE_ADDRESS, check_source, resolve_destination
from hyperplane.dataplane.inputs import function_rows
from hyperplane.dataplane.walk import BatchResult, Origin
from hyperplane.model import ICMP, TCP as TCP_NUMBER, UDP as UDP_NUMBER, Topology
from hyperplane.reasons import Reason
from hyperplane.records import PACKET
from hyperplane.trace import Hop, render_hops

__all__ = ["reachability", "matrix", "all_sources", "scratch_network", "Reachability", "ReachabilityRow",
           "port_classes", "DNS_PORT"]

DNS_PORT = 53  # the VPC resolver answers TCP and UDP on 53 (the walker's DNS stage)
_NUMBER = {"tcp": TCP_NUMBER, "udp": UDP_NUMBER, "icmp": ICMP}
_FLAGS = {what: int(TCP(flags=what).flags) for what in ("S", "SA", "A", "PA")}
_LENGTH = {"tcp": 40, "udp": 28, "icmp": 28}  # IP total length of a packet without payload
_SOURCE_PORT = 40000  # the source's port of every exchange (each has its own destination or port)
_WALKED_REPLIES = {Reason.DELIVERED: Origin.ENI, Reason.EXITED_TO_INTERNET: Origin.INTERNET,
                   Reason.DELIVERED_TO_GATEWAY_ENDPOINT: Origin.GATEWAY_ENDPOINT}


@dataclass(frozen=True)
class ReachabilityRow:
    """One destination, protocol and port range with one outcome.

    ``ports``: ``(from, to)`` inclusive (None for ICMP echo); ``failed_leg``: ``request`` or
    ``reply`` (None when connected); ``leg``: the packet that failed (``SYN``, ``SYN-ACK``, ...);
    ``resource``/``rule``: what decided (the hop that denied or dropped it); ``reason``: the
    failed leg's reason code; ``subnet``: the function subnet the exchange left from;
    ``service``: an endpoint's service name.
    """

    source: str
    subnet: str | None
    destination: str
    address: str
    service: str | None
    protocol: str
    ports: tuple[int, int] | None
    connected: bool
    failed_leg: str | None
    leg: str | None
    resource: str | None
    rule: str | None
    reason: str | None

    def covers(self, destination: str, protocol: str, port: int | None) -> bool:
        if destination not in (self.destination, self.address) or protocol != self.protocol:
            return False
        return self.ports is None or port is not None and self.ports[0] <= port <= self.ports[1]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ports"] = list(self.ports) if self.ports is not None else None
        return out


_COLUMNS = tuple(ReachabilityRow.__dataclass_fields__)


@dataclass
class Reachability:
    """The answer of :func:`reachability`: its ``rows``, and ``walks``, the number of packets
    walked to get them."""

    rows: list[ReachabilityRow]
    walks: int = 0

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def find(self, destination: str, port: int | None = None, protocol: str = "tcp", *,
             subnet: str | None = None, source: str | None = None) -> list[ReachabilityRow]:
        """The rows covering ``destination`` (its id or address) on ``port``/``protocol``:
        one per source subnet (and per source, for a reverse question)."""
        return [r for r in self.rows if r.covers(destination, protocol, port)
                and (subnet is None or r.subnet == subnet) and (source is None or r.source == source)]

    def connected(self, destination: str, port: int | None = None, protocol: str = "tcp") -> bool:
        """Whether every source subnet connects to ``destination`` on ``port``/``protocol``."""
        rows = self.find(destination, port, protocol)
        if not rows:
            raise ValueError(f"no row covers {destination} {port}/{protocol}")
        return all(r.connected for r in rows)

    def to_dict(self) -> list[dict[str, Any]]:
        """The rows as plain data (``hyperplane reach --format json``)."""
        return [r.to_dict() for r in self.rows]

    def to_rows(self) -> list[dict[str, Any]]:
        """The rows flattened for CSV: ``ports`` as ``from-to`` (empty for ICMP)."""
        out = []
        for r in self.rows:
            row = r.to_dict()
            row["ports"] = "" if r.ports is None else f"{r.ports[0]}-{r.ports[1]}"
            out.append(row)
        return out

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.to_rows())
        return buffer.getvalue()

    def __str__(self) -> str:
        header = ("source", "destination", "address", "proto", "ports", "verdict", "decided by")
        table = [header]
        for r in self.rows:
            source = r.source + (f" ({r.subnet})" if r.subnet else "")
            destination = r.destination + (f" ({r.service})" if r.service else "")
            ports = "echo" if r.ports is None else str(r.ports[0]) if r.ports[0] == r.ports[1] \
                else f"{r.ports[0]}-{r.ports[1]}"
            verdict = "connected" if r.connected else f"fails: {r.failed_leg} ({r.leg})"
            decided = f"{r.resource} ({r.rule})" if r.resource else (r.reason or "")
            table.append((source, destination, r.address, r.protocol, ports, verdict, decided))
        widths = [max(len(row[k]) for row in table) for k in range(len(header) - 1)]
        return "\n".join(("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1]).rstrip()
                         for row in table)

    def __repr__(self) -> str:
        return f"<Reachability {len(self.rows)} rows, {self.walks} walks>"


# -- the question -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    id: str
    address: str
    service: str | None


@dataclass
class _Case:
    """One exchange: a target, protocol and representative port; its legs so far."""

    target: _Target
    protocol: str
    ports: tuple[int, int] | None
    last: tuple[BatchResult, int] | None = None  # the last request's walk (batch, row)
    outcome: tuple[bool, str | None, str | None, str | None, str | None, str | None] | None = None
    fallback: bool = False
    any_port: bool = False  # judged before any walk, by the invocation: no rule saw the port


def scratch_network(network: Any) -> Any:
    """A network of the same configuration (topology, Lambda settings, clock), every function
    deployed, no connection open: what a reachability question runs on."""
    return type(network)(network.topology, lambda_settings=network.lambda_service.settings,
                         now=network.now, ready=True)


def port_classes(topology: Topology, protocol: str) -> list[tuple[int, int]]:
    """0-65535 (TCP or UDP) cut at every port boundary of every rule that can match ``protocol``
    (security groups and NACLs, both directions) and at the resolver's port: no rule tells two
    ports of a class apart. (ICMP has one class: the echo.)"""
    number = _NUMBER[protocol]
    cuts = {0, 65536, DNS_PORT, DNS_PORT + 1}
    rules: list[Any] = [r for g in topology.security_groups.values() for r in (*g.ingress, *g.egress)]
    rules += [e for acl in topology.network_acls.values() for e in acl.entries]
    for rule in rules:
        if rule.protocol == number:
            low, high = rule.port_range
            cuts.update((low, high + 1))
    edges = sorted(c for c in cuts if 0 <= c <= 65536)
    return [(a, b - 1) for a, b in zip(edges, edges[1:])]


def reachability(network: Any, source: str | None = None, destinations: Sequence[str] | None = None, *,
                 to: str | None = None) -> Reachability:
    """What ``source`` can reach (see the module docstring), or with ``to=``: who can connect
    to ``to`` (every function from each subnet, every other ENI, the internet), on which
    ports. ``destinations``: only these (names as ``connect`` takes them)."""
    if (source is None) == (to is None):
        raise ValueError("give a source, or to= for who reaches a destination (not both)")
    scratch = scratch_network(network)
    topology: Topology = scratch.topology
    classes = {p: port_classes(topology, p) for p in ("tcp", "udp")}
    rows: list[ReachabilityRow] = []
    walks = 0
    if to is not None:
        if destinations is not None:
            raise ValueError("to= names the destination: destinations= is for a source")
        target_eni = resolve_destination(scratch, to).resource
        sources = [*topology.functions, *(e for e in topology.network_interfaces if e != target_eni), "internet"]
        for s in sources:
            found, n = _source_rows(scratch, s, [to], classes)
            rows += found
            walks += n
    else:
        check_source(topology, source)  # type: ignore[arg-type]
        rows, walks = _source_rows(scratch, source, destinations, classes)  # type: ignore[arg-type]
    return Reachability(rows, walks)


def matrix(network: Any, sources: Sequence[str]) -> Reachability:
    """The reachability of each of ``sources`` (checked first), on one scratch network."""
    scratch = scratch_network(network)
    for source in sources:
        check_source(scratch.topology, source)
    classes = {p: port_classes(scratch.topology, p) for p in ("tcp", "udp")}
    rows: list[ReachabilityRow] = []
    walks = 0
    for source in sources:
        found, n = _source_rows(scratch, source, None, classes)
        rows += found
        walks += n
    return Reachability(rows, walks)


def all_sources(topology: Topology) -> list[str]:
    """Every source a network has: its functions, its ENIs, the internet."""
    return [*topology.functions, *topology.network_interfaces, "internet"]


def _source_rows(scratch: Any, source: str, destinations: Sequence[str] | None,
                 classes: dict[str, list[tuple[int, int]]]) -> tuple[list[ReachabilityRow], int]:
    topology: Topology = scratch.topology
    function = source.split(":")[0] if source.split(":")[0] in topology.functions else None
    config = topology.functions[function].vpc_config if function else None
    subnets: list[str | None] = list(config.subnet_ids) if config is not None else [None]
    rows: list[ReachabilityRow] = []
    walks = 0
    for subnet in subnets:
        vpc_id = _vpc_of(topology, source, subnet)
        targets = _targets(scratch, source, vpc_id, destinations)
        cases = [_Case(t, p, c) for t in targets for p in ("tcp", "udp", "icmp") for c in classes.get(p, [None])]
        walks += _judge(scratch, source, function, subnet, cases)
        rows += _merge(source, subnet, cases)
    return rows, walks


def _vpc_of(topology: Topology, source: str, subnet: str | None) -> str | None:
    if subnet is not None:
        return topology.subnets[subnet].vpc_id
    eni = topology.network_interfaces.get(source) or (topology.eni_of_instance(source) if source.startswith("i-") else None)
    return topology.subnets[eni.subnet_id].vpc_id if eni is not None else None


def _targets(scratch: Any, source: str, vpc_id: str | None, names: Sequence[str] | None) -> list[_Target]:
    topology: Topology = scratch.topology
    # the internet and a function without VpcConfig reach an ENI at its public address
    function = topology.functions.get(source.split(":")[0])
    from_internet = source == "internet" or function is not None and function.vpc_config is None
    service_of = {eni: e.service_name for e in topology.vpc_endpoints.values() for eni in e.network_interface_ids}
    service_of.update({e.id: e.service_name for e in topology.vpc_endpoints.values()})
    if names is None:
        own = topology.network_interfaces.get(source) or (topology.eni_of_instance(source) if source.startswith("i-") else None)
        names = [e for e in topology.network_interfaces if own is None or e != own.id]
        names += ["dns"] if vpc_id is not None else []
        names += [e.id for e in topology.vpc_endpoints.values() if e.endpoint_type == "gateway"]
        names += ["internet"]
    out: list[_Target] = []
    for name in names:
        try:
            d = resolve_destination(scratch, name, vpc_id, from_internet=from_internet)
        except ValueError:
            if name in topology.vpc_endpoints:  # a gateway endpoint without an address to send to
                continue
            raise
        ident = "dns" if name == "dns" else d.resource or name
        out.append(_Target(ident, d.address, service_of.get(ident)))
    return out


def _judge(scratch: Any, source: str, function: str | None, subnet: str | None, cases: list[_Case]) -> int:
    """Walk every case's exchange leg by leg, one batch per leg; returns the packets walked."""
    environment: int | None = None
    if subnet is not None:
        environment = scratch.lambda_service.environment_in_subnet(function, subnet)
    env_ip = scratch.lambda_service.environment_address(function, environment or 0) if function else None
    walks = 0
    for step in range(max(len(e) for e in _EXCHANGES.values())):
        live = [c for c in cases if c.outcome is None and not c.fallback and step < len(_EXCHANGES[c.protocol])]
        requests = [c for c in live if _EXCHANGES[c.protocol][step][1] == REQUEST]
        replies = [c for c in live if _EXCHANGES[c.protocol][step][1] == REPLY]
        if requests:
            walks += _requests(scratch, source, function, environment, step, requests)
        if replies:
            walks += _replies(scratch, function, env_ip, step, replies)
        for c in live:
            if c.outcome is None and not c.fallback and step == len(_EXCHANGES[c.protocol]) - 1:
                c.outcome = (True, None, None, None, None, None)
    judged: dict[tuple[str, str, int | None], Any] = {}
    for c in cases:
        if c.fallback:
            port = c.ports[0] if c.ports is not None else None
            key = (c.target.address, c.protocol, None if c.any_port else port)
            if key not in judged:
                try:
                    r = connect(scratch, source, c.target.address, port, c.protocol, subnet=subnet)
                except ValueError as exc:  # a reply the emulator cannot walk (from a peering)
                    assert c.last is not None
                    res, j = c.last
                    reply = next(name for name, direction, _ in _EXCHANGES[c.protocol] if direction == REPLY)
                    judged[key] = (False, REPLY, reply, None, str(exc), Reason(int(res.reason[j])).name)
                else:
                    walks += len(r.legs)
                    failed = r.failed
                    judged[key] = (r.connected, r.failed_leg, failed.name if failed else None, r.resource,
                                   r.rule, failed.result.reason.name if failed else None)
            c.outcome = judged[key]
    return walks


def _records(cases: list[_Case], step: int, now: float) -> np.ndarray:
    rec = np.zeros(len(cases), PACKET)
    rec["time"] = now
    for k, c in enumerate(cases):
        what = _EXCHANGES[c.protocol][step][2]
        rec["proto"][k] = _NUMBER[c.protocol]
        rec["length"][k] = _LENGTH[c.protocol]
        rec["flags"][k] = int(what) if c.protocol == "icmp" else _FLAGS.get(what, 0)
    return rec


def _requests(scratch: Any, source: str, function: str | None, environment: int | None, step: int,
              cases: list[_Case]) -> int:
    rec = _records(cases, step, scratch.now)
    rec["dst_ip"] = [int(IPv4Address(c.target.address)) for c in cases]
    rec["src_port"] = _SOURCE_PORT
    rec["dst_port"] = [c.ports[0] if c.ports is not None else 0 for c in cases]
    n = len(cases)
    walk = np.ones(n, bool)
    if function is not None:
        rows = function_rows(scratch, rec, [function], [environment or 0], np.zeros(n, np.intp), rec["time"])
        origin, index = rows.origin, rows.index
        # decided before any walk, from the function's state and the destination address only
        # (a refused invocation; no VpcConfig): connect judges those, once per address
        walk = rows.verdict == 0
        for c in (c for c, w in zip(cases, walk) if not w):
            c.any_port = True
    elif source == "internet":
        rec["src_ip"] = int(IPv4Address(INTERNET_SOURCE_ADDRESS))
        origin, index = np.full(n, Origin.INTERNET, np.int8), np.full(n, -1, np.int32)
    else:
        eni = scratch.topology.network_interfaces.get(source) or scratch.topology.eni_of_instance(source)
        rec["src_ip"] = int(eni.private_ip)
        origin = np.full(n, Origin.ENI, np.int8)
        index = np.full(n, scratch.compiled.eni_index[eni.id], np.int32)
    for c in (c for c, w in zip(cases, walk) if not w):
        c.fallback = True
    chosen = np.flatnonzero(walk)
    if chosen.size == 0:
        return 0
    res = scratch.process(rec[chosen], origin[chosen], index[chosen])
    _settle([cases[k] for k in chosen], step, res, REQUEST)
    return int(chosen.size)


def _replies(scratch: Any, function: str | None, env_ip: str | None, step: int, cases: list[_Case]) -> int:
    rec = _records(cases, step, scratch.now)
    n = len(cases)
    origin = np.zeros(n, np.int8)
    index = np.full(n, -1, np.int32)
    walk = np.ones(n, bool)
    compiled = scratch.compiled
    for k, c in enumerate(cases):
        assert c.last is not None  # every exchange starts with a request
        res, j = c.last
        p = res.packets[j]
        reason = Reason(int(res.reason[j]))
        rec["src_ip"][k], rec["dst_ip"][k] = p["dst_ip"], p["src_ip"]
        if c.protocol == "icmp":
            rec["dst_port"][k] = p["src_port"]  # an echo reply carries the identifier as its port
        else:
            rec["src_port"][k], rec["dst_port"][k] = p["dst_port"], p["src_port"]
        if reason in _WALKED_REPLIES:  # as Network.reply_to answers them
            origin[k] = _WALKED_REPLIES[reason]
            if reason == Reason.DELIVERED:
                assert res.vpc is not None
                index[k] = compiled.eni_index[res.vpc.enis[int(res.location[j])].id]
            if reason == Reason.EXITED_TO_INTERNET and function is not None and \
                    scratch.topology.functions[function].vpc_config is None:
                walk[k] = False  # Lambda's own VPC answers, whatever the port: not a walk
                c.any_port = True
        elif reason == Reason.DELIVERED_TO_DNS_RESOLVER and function is not None:
            origin[k], index[k] = Origin.REPLY_TO_FUNCTION, scratch.function_number(function)
            rec["dst_ip"][k] = int(IPv4Address(env_ip))
            rec["dst_port"][k] = _SOURCE_PORT
        else:
            walk[k] = False
    for c in (c for c, w in zip(cases, walk) if not w):
        c.fallback = True
    chosen = np.flatnonzero(walk)
    if chosen.size == 0:
        return 0
    res = scratch.process(rec[chosen], origin[chosen], index[chosen])
    _settle([cases[k] for k in chosen], step, res, REPLY)
    return int(chosen.size)


def _settle(cases: list[_Case], step: int, res: BatchResult, direction: str) -> None:
    """Record each walked leg: a request is the next reply's packet; a failure ends the case
    with its deciding hop, read from the walk's facts as a trace is."""
    assert res.vpc is not None
    delivered = res.delivered
    for j, c in enumerate(cases):
        if direction == REQUEST:
            c.last = (res, j)
        if delivered[j]:
            continue
        reason = Reason(int(res.reason[j]))
        hops = render_hops(res.vpc, res.facts.of(j), res.vpc.nat_ids)
        hop = next((h for h in reversed(hops) if h.decision in ("deny", "drop")), None)
        if hop is None:  # stopped without a deciding stage: where it ended, as a trace shows it
            where = res.vpc.enis[res.location[j]].id if res.location[j] >= 0 else "-"
            hop = Hop(where, "end", "drop", reason.text)
        c.outcome = (False, direction, _EXCHANGES[c.protocol][step][0], hop.resource, _rule_text(hop), reason.name)


def _merge(source: str, subnet: str | None, cases: list[_Case]) -> list[ReachabilityRow]:
    """Neighbouring port classes of one destination and protocol with one outcome, as one row."""
    rows: list[ReachabilityRow] = []
    for c in cases:
        assert c.outcome is not None
        connected, failed_leg, leg, resource, rule, reason = c.outcome
        last = rows[-1] if rows else None
        if (last is not None and c.ports is not None and last.ports is not None
                and last.destination == c.target.id and last.protocol == c.protocol
                and last.ports[1] + 1 == c.ports[0]
                and (last.connected, last.failed_leg, last.leg, last.resource, last.rule, last.reason) == c.outcome):
            rows[-1] = ReachabilityRow(**{**last.__dict__, "ports": (last.ports[0], c.ports[1])})
            continue
        rows.append(ReachabilityRow(source, subnet, c.target.id, c.target.address, c.target.service, c.protocol,
                                    c.ports, connected, failed_leg, leg, resource, rule, reason))
    return rows
