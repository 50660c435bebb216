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
class's. Equal neighbouring classes are then merged.

The replies go to the source side's port: the port V2N picks on the Hyperplane ENI for a
function (``LambdaSettings.ports``, 1024-65535), the ephemeral port of an ENI or internet client
(1024-65535, the range AWS advises NACLs to allow). A NACL can tell those apart too (``acl-data``
of the example lets replies out to port 5432): so the same cut points split the source side's
range into reply classes, and each exchange is walked once per reply class — V2N restricted to
that class on its own scratch network, an ENI's or the internet's source port chosen in it. A
row holds for every reply port unless ``reply_ports`` says for which (the others have rows of
their own). A NAT gateway on the path picks its own port (1024-65535) as it does for
``connect``: that pick is not enumerated.

The walks go through the batch path (``Network.process``), one batch per leg for every
destination, port class and protocol of a source at once (``hyperplane.connectivity.exchanges``).

**A clean network state.** The question is about the configuration, as AWS Reachability
Analyzer's is: the walks run on scratch networks (one per source, and per reply class of a
function) built from the same topology, Lambda settings and clock, with every function deployed
(``ready=True``); the network asked is not touched (no connection left in its tables, no ENI
lifecycle advanced, its clock unmoved).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hyperplane.connectivity.connection import EPHEMERAL_PORTS
from hyperplane.connectivity.exchanges import NUMBER, Case, Outcome, Target, judge, scratch_network
from hyperplane.connectivity.names import check_source, resolve_destination
from hyperplane.model import Topology

__all__ = ["reachability", "matrix", "all_sources", "scratch_network", "Reachability", "ReachabilityRow",
           "port_classes", "DNS_PORT"]

DNS_PORT = 53  # the VPC resolver answers TCP and UDP on 53 (the walker's DNS stage)
Ports = tuple[int, int]


@dataclass(frozen=True)
class ReachabilityRow:
    """One destination, protocol and port range with one outcome.

    ``ports``: ``(from, to)`` inclusive (None for ICMP echo); ``failed_leg``: ``request`` or
    ``reply`` (None when connected); ``leg``: the packet that failed (``SYN``, ``SYN-ACK``, ...);
    ``resource``/``rule``: what decided (the hop that denied or dropped it); ``reason``: the
    failed leg's reason code; ``subnet``: the function subnet the exchange left from;
    ``service``: an endpoint's service name; ``reply_ports``: the source side's ports (where the
    replies go) this row holds for, None for all of them.
    """

    source: str
    subnet: str | None
    destination: str
    address: str
    service: str | None
    protocol: str
    ports: tuple[int, int] | None
    reply_ports: tuple[Ports, ...] | None
    connected: bool
    failed_leg: str | None
    leg: str | None
    resource: str | None
    rule: str | None
    reason: str | None

    def covers(self, destination: str, protocol: str, port: int | None, reply_port: int | None = None) -> bool:
        if destination not in (self.destination, self.address) or protocol != self.protocol:
            return False
        if reply_port is not None and self.reply_ports is not None and \
                not any(a <= reply_port <= b for a, b in self.reply_ports):
            return False
        return self.ports is None or port is not None and self.ports[0] <= port <= self.ports[1]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ports"] = list(self.ports) if self.ports is not None else None
        out["reply_ports"] = [list(r) for r in self.reply_ports] if self.reply_ports is not None else None
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
             subnet: str | None = None, source: str | None = None,
             reply_port: int | None = None) -> list[ReachabilityRow]:
        """The rows covering ``destination`` (its id or address) on ``port``/``protocol``: one
        per source subnet (and per source, for a reverse question), and per reply class where
        the reply ports matter (``reply_port``: only the row of that source-side port)."""
        return [r for r in self.rows if r.covers(destination, protocol, port, reply_port)
                and (subnet is None or r.subnet == subnet) and (source is None or r.source == source)]

    def connected(self, destination: str, port: int | None = None, protocol: str = "tcp") -> bool:
        """Whether ``destination`` is connected on ``port``/``protocol`` from every source
        subnet, whatever port the source side picks."""
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
            row["reply_ports"] = "" if r.reply_ports is None else " ".join(f"{a}-{b}" for a, b in r.reply_ports)
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
            if r.reply_ports is not None:
                verdict += " to reply port " + ",".join(str(a) if a == b else f"{a}-{b}" for a, b in r.reply_ports)
            decided = f"{r.resource} ({r.rule})" if r.resource else (r.reason or "")
            table.append((source, destination, r.address, r.protocol, ports, verdict, decided))
        widths = [max(len(row[k]) for row in table) for k in range(len(header) - 1)]
        return "\n".join(("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1]).rstrip()
                         for row in table)

    def __repr__(self) -> str:
        return f"<Reachability {len(self.rows)} rows, {self.walks} walks>"


# -- the question -------------------------------------------------------------------------


def _cuts(topology: Topology, protocol: str) -> set[int]:
    """Where a rule that can match ``protocol`` starts or stops matching (security groups and
    NACLs, both directions), and the resolver's port."""
    number = NUMBER[protocol]
    cuts = {DNS_PORT, DNS_PORT + 1}
    rules: list[Any] = [r for g in topology.security_groups.values() for r in (*g.ingress, *g.egress)]
    rules += [e for acl in topology.network_acls.values() for e in acl.entries]
    for rule in rules:
        if rule.protocol == number:
            low, high = rule.port_range
            cuts.update((low, high + 1))
    return cuts


def port_classes(topology: Topology, protocols: str | Sequence[str], within: Ports = (0, 65535)) -> list[Ports]:
    """``within`` (TCP or UDP ports) cut at every port boundary of every rule that can match
    one of ``protocols`` and at the resolver's port: no rule tells two ports of a class apart.
    (ICMP has one class: the echo.)"""
    low, high = within
    cuts = {c for p in ([protocols] if isinstance(protocols, str) else protocols) for c in _cuts(topology, p)}
    edges = sorted({low, high + 1} | {c for c in cuts if low < c <= high})
    return [(a, b - 1) for a, b in zip(edges, edges[1:])]


def reachability(network: Any, source: str | None = None, destinations: Sequence[str] | None = None, *,
                 to: str | None = None) -> Reachability:
    """What ``source`` can reach (see the module docstring), or with ``to=``: who can connect
    to ``to`` (every function from each subnet, every other ENI, the internet), on which
    ports. ``destinations``: only these (names as ``connect`` takes them)."""
    if (source is None) == (to is None):
        raise ValueError("give a source, or to= for who reaches a destination (not both)")
    topology: Topology = network.topology
    if to is None:
        check_source(topology, source)  # type: ignore[arg-type]
        return _ask(network, [source], destinations)  # type: ignore[list-item]
    if destinations is not None:
        raise ValueError("to= names the destination: destinations= is for a source")
    target_eni = resolve_destination(network, to).resource
    return _ask(network, [s for s in all_sources(topology) if s != target_eni], [to])


def matrix(network: Any, sources: Sequence[str]) -> Reachability:
    """The reachability of each of ``sources`` (checked first) to every destination."""
    for source in sources:
        check_source(network.topology, source)
    return _ask(network, sources, None)


def all_sources(topology: Topology) -> list[str]:
    """Every source a network has: its functions, its ENIs, the internet."""
    return [*topology.functions, *topology.network_interfaces, "internet"]


def _ask(network: Any, sources: Sequence[str], destinations: Sequence[str] | None) -> Reachability:
    topology: Topology = network.topology
    classes: dict[str, list[Any]] = {"tcp": port_classes(topology, "tcp"), "udp": port_classes(topology, "udp"),
                                     "icmp": [(None, None)]}
    rows: list[ReachabilityRow] = []
    walks = 0
    for source in sources:
        function = topology.functions.get(source.split(":")[0])
        config = function.vpc_config if function else None
        subnets: list[str | None] = list(config.subnet_ids) if config is not None else [None]
        v2n = config is not None
        replies = port_classes(topology, ("tcp", "udp"),
                               network.lambda_service.settings.ports if v2n else EPHEMERAL_PORTS)
        # a scratch network of its own for each source: no source meets another's connections
        # (an ENI's request may be the very reverse of one another ENI opened); a function has one
        # per reply class (V2N restricted to it), an ENI or the internet chooses its own port
        scratches = [scratch_network(network, r) for r in replies] if v2n else [scratch_network(network)] * len(replies)
        for subnet in subnets:
            vpc_id = _vpc_of(topology, source, subnet)
            targets = _targets(scratches[0], source, vpc_id, destinations)
            by_class: list[list[Case]] = []
            judged: dict[tuple[Any, ...], Outcome] = {}
            for scratch, reply in zip(scratches, replies):
                cases = [Case(t, p, c[0]) for t in targets for p in ("tcp", "udp", "icmp") for c in classes[p]]
                walks += judge(scratch, source, function.name if function else None, subnet, cases, reply[0], judged)
                by_class.append(cases)
            rows += _rows(source, subnet, classes, by_class, replies)
    return Reachability(rows, walks)
def _vpc_of(topology: Topology, source: str, subnet: str | None) -> str | None:
    if subnet is not None:
        return topology.subnets[subnet].vpc_id
    eni = topology.network_interfaces.get(source) or (topology.eni_of_instance(source) if source.startswith("i-") else None)
    return topology.subnets[eni.subnet_id].vpc_id if eni is not None else None


def _targets(scratch: Any, source: str, vpc_id: str | None, names: Sequence[str] | None) -> list[Target]:
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
        names += ["internet"] if source != "internet" else []
    out: list[Target] = []
    for name in names:
        try:
            d = resolve_destination(scratch, name, vpc_id, from_internet=from_internet)
        except ValueError:
            if name in topology.vpc_endpoints:  # a gateway endpoint without an address to send to
                continue
            raise
        ident = "dns" if name == "dns" else d.resource or name
        out.append(Target(ident, d.address, service_of.get(ident)))
    return out


def _rows(source: str, subnet: str | None, classes: dict[str, list[Any]], by_class: list[list[Case]],
          replies: list[Ports]) -> list[ReachabilityRow]:
    """The outcomes of every port class under every reply class as rows: one per outcome of a
    port class (with the reply ports it holds for, when they are not all), neighbouring port
    classes with the same outcomes merged."""
    runs: list[tuple[Case, Any, list[tuple[Outcome, tuple[Ports, ...] | None]]]] = []
    for k, first in enumerate(by_class[0]):
        ports = next(c for c in classes[first.protocol] if c[0] == first.port)
        spans: dict[Outcome, list[Ports]] = {}
        for cases, reply in zip(by_class, replies):
            outcome = cases[k].outcome
            assert outcome is not None
            held = spans.setdefault(outcome, [])
            if held and held[-1][1] + 1 == reply[0]:
                held[-1] = (held[-1][0], reply[1])
            else:
                held.append(reply)
        found = [(o, None if len(spans) == 1 else tuple(r)) for o, r in spans.items()]
        last = runs[-1] if runs else None
        if (last is not None and last[0].target == first.target and last[0].protocol == first.protocol
                and last[1][0] is not None and last[1][1] + 1 == ports[0] and last[2] == found):
            runs[-1] = (last[0], (last[1][0], ports[1]), found)
        else:
            runs.append((first, ports, found))
    rows: list[ReachabilityRow] = []
    for case, ports, found in runs:
        for (connected, failed_leg, leg, resource, rule, reason), reply_ports in found:
            rows.append(ReachabilityRow(source, subnet, case.target.id, case.target.address, case.target.service,
                                        case.protocol, None if ports[0] is None else ports, reply_ports,
                                        connected, failed_leg, leg, resource, rule, reason))
    return rows
