"""Can a source connect to a destination: the whole exchange, both ways, leg by leg.

A connection is judged as it happens: TCP's SYN, SYN-ACK and ACK, then one data packet each
way; UDP's request and response; ICMP's echo and echo reply. Each leg is a real packet sent
through the emulated network (``send`` for requests, ``Result.reply`` for replies), so its
``Result`` and hops are the evidence; the first leg that is not delivered ends the exchange and
names where and why. Security groups are stateful and NACLs are not: the classic failure is a
reply denied by a NACL that admitted the request, and the answer then says what rule is missing.

The exchange runs on the network it is asked of, like any packets sent to it: its connections
stay in the tables as a real connection's would (a question that must leave the network
untouched, such as a reachability matrix, runs on a scratch copy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Packet

from hyperplane.connectivity.names import (
    INTERNET_SOURCE_ADDRESS,
    check_source,
    parse_destination,
    parse_protocol,
    resolve_destination,
)
from hyperplane.lambda_service.environments import subnet_for
from hyperplane.model import Topology
from hyperplane.reasons import Disposition
from hyperplane.trace import Hop, Result

__all__ = ["connect", "ConnectionResult", "Leg", "REQUEST", "REPLY", "EPHEMERAL_PORTS"]

REQUEST, REPLY = "request", "reply"
#: The ports a reply goes back to: a Hyperplane ENI's V2N source ports (SPEC §2), and the
#: ephemeral range AWS advises NACLs to allow for any client ("1024-65535").
EPHEMERAL_PORTS = (1024, 65535)

# each protocol's exchange: (leg name, direction, what the packet is)
_EXCHANGES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "tcp": (("SYN", REQUEST, "S"), ("SYN-ACK", REPLY, "SA"), ("ACK", REQUEST, "A"),
            ("data", REQUEST, "PA"), ("data reply", REPLY, "PA")),
    "udp": (("request", REQUEST, ""), ("response", REPLY, "")),
    "icmp": (("echo request", REQUEST, "8"), ("echo reply", REPLY, "0")),
}
_VERB = {Disposition.DENIED_OUT: "denied out", Disposition.DENIED_IN: "denied in",
         Disposition.NO_ROUTE: "not routed", Disposition.NULL_ROUTED: "dropped",
         Disposition.DELIVERED_TO_SUBNET: "lost"}


class Network(Protocol):
    """What a connection check uses of a ``hyperplane.Network``."""

    topology: Topology
    lambda_service: Any

    def function(self, name: str) -> Any: ...
    def send(self, pkt: Packet, source: str = "internet") -> Result: ...
    def ephemeral_port(self) -> int: ...


@dataclass(frozen=True)
class Leg:
    """One packet of the exchange: its name (``SYN``, ``SYN-ACK``, ...), its direction
    (``request``: from the source; ``reply``: back to it) and what happened to it."""

    name: str
    direction: str
    result: Result

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "direction": self.direction, "result": self.result.to_dict()}


@dataclass
class ConnectionResult:
    """The verdict of a whole exchange. ``bool(result)`` is "connected".

    ``legs``: the packets sent, in order, up to the first that failed (``failed``).
    ``resource``/``rule``: what decided a failure (the last hop that denied or dropped).
    ``subnets``: with ``subnets="all"``, one result per subnet of the function; this one is then
    the first that fails (or the first), and it is connected only if every subnet is.
    """

    source: str
    destination: str
    address: str
    protocol: str
    port: int | None
    subnet: str | None
    legs: list[Leg]
    subnets: list[ConnectionResult] = field(default_factory=list)

    @property
    def failed(self) -> Leg | None:
        return next((leg for leg in self.legs if not leg.result.delivered), None)

    @property
    def connected(self) -> bool:
        if self.subnets:
            return all(s.connected for s in self.subnets)
        return self.failed is None

    def __bool__(self) -> bool:
        return self.connected

    @property
    def failed_leg(self) -> str | None:
        """``request`` or ``reply``: the direction of the leg that failed (None if connected)."""
        worst = self._worst()
        return worst.failed.direction if worst.failed else None

    @property
    def deciding_hop(self) -> Hop | None:
        failed = self._worst().failed
        if failed is None:
            return None
        return next((h for h in reversed(failed.result.hops) if h.decision in ("deny", "drop")), None)

    @property
    def resource(self) -> str | None:
        hop = self.deciding_hop
        return hop.resource if hop else None

    @property
    def rule(self) -> str | None:
        hop = self.deciding_hop
        return _rule_text(hop) if hop else None

    @property
    def explanation(self) -> str:
        """``connected``, or ``fails: the reply (SYN-ACK) is denied out by acl-data (rule *: ...)``."""
        worst = self._worst()
        failed = worst.failed
        if failed is None:
            return "connected" + (f" from every subnet ({len(self.subnets)})" if self.subnets else "")
        where = f" from {worst.subnet}" if self.subnets else ""
        hop = worst.deciding_hop
        reason = failed.result.reason
        if hop is None or hop.stage == "end":
            return f"fails{where}: the {failed.direction} ({failed.name}): {reason.text}"
        verb = _VERB.get(reason.disposition, "stopped")
        return f"fails{where}: the {failed.direction} ({failed.name}) is {verb} by {hop.resource} ({_rule_text(hop)})"

    @property
    def advice(self) -> str | None:
        """What would fix a NACL failure (NACLs are stateless: a reply needs its own rule)."""
        worst = self._worst()
        failed, hop = worst.failed, worst.deciding_hop
        if failed is None or failed.result.packet is None or hop is None or hop.stage not in ("nacl-out", "nacl-in"):
            return None
        packet = failed.result.packet
        outbound = hop.stage == "nacl-out"
        peer = packet.dst if outbound else packet.src
        subnet = self._topology.subnet_of_ip(peer) if self._topology is not None and peer else None
        cidr = str(subnet.cidr) if subnet is not None else "0.0.0.0/0"
        if self.protocol == "icmp":
            ports = ""
        elif failed.direction == REPLY:
            ports = f" {EPHEMERAL_PORTS[0]}-{EPHEMERAL_PORTS[1]}"
        else:
            ports = f" {self.port}"
        rule = (f"{hop.resource} needs an {'outbound' if outbound else 'inbound'} rule allowing "
                f"{self.protocol}{ports} {'to' if outbound else 'from'} {cidr}")
        return f"NACLs are stateless: {rule}" if failed.direction == REPLY else rule

    _topology: Topology | None = field(default=None, repr=False, compare=False)

    def _worst(self) -> ConnectionResult:
        if not self.subnets:
            return self
        return next((s for s in self.subnets if not s.connected), self.subnets[0])

    def _title(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        shown = self.destination if self.destination == self.address else f"{self.destination} ({self.address})"
        return f"{self.source} -> {shown}{port}/{self.protocol}" + (f" from {self.subnet}" if self.subnet else "")

    def __str__(self) -> str:
        blocks = self.subnets or [self]
        lines: list[str] = []
        for one in blocks:
            lines.append(f"connection {one._title()}")
            for leg in one.legs:
                lines.append(f"-- {leg.name}" + (f" ({leg.direction})" if leg.name != leg.direction else ""))
                lines.append(str(leg.result))
            if self.subnets:
                lines.append(f"=> {one.explanation}")
        lines.append(self.explanation)
        if self.advice:
            lines.append(f"  {self.advice}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ConnectionResult {self._title()}: {self.explanation}>"

    def to_dict(self) -> dict[str, Any]:
        """The answer as plain data (the JSON of ``hyperplane trace --format json``; schema in
        docs/connectivity.md)."""
        return {
            "source": self.source, "destination": self.destination, "address": self.address,
            "protocol": self.protocol, "port": self.port, "subnet": self.subnet,
            "connected": self.connected, "failed_leg": self.failed_leg,
            "resource": self.resource, "rule": self.rule,
            "explanation": self.explanation, "advice": self.advice,
            "legs": [leg.to_dict() for leg in self.legs],
            "subnets": [s.to_dict() for s in self.subnets],
        }


def _rule_text(hop: Hop) -> str:
    """The rule part of a hop's detail, without the ENI or subnet it was evaluated on."""
    detail = hop.detail
    if detail.startswith(("on ", "subnet-", "from ")) and ": " in detail:
        detail = detail.split(": ", 1)[1]
    return detail.replace(" (no numbered rule matches: implicit deny)", ": implicit deny")


def connect(network: Network, source: str, destination: str, port: int | None = None, protocol: str | None = None,
            *, subnet: str | None = None, subnets: str | Sequence[str] | None = None,
            environment: int | str | None = None, source_ip: str | None = None) -> ConnectionResult:
    """Judge the connection from ``source`` to ``destination`` (see the module docstring).

    ``destination`` may carry its port and protocol (``db:5432``, ``10.0.20.10:53/udp``);
    ``protocol`` defaults to tcp. ``subnet``: the function subnet the execution environment is
    bound to; ``subnets="all"`` (or a list): one check per subnet, every one must connect.
    ``environment``: an execution environment of a function source (number or address).
    ``source_ip``: the address an ``internet`` source sends from (default
    :data:`~hyperplane.connectivity.names.INTERNET_SOURCE_ADDRESS`).
    """
    topology = network.topology
    check_source(topology, source)
    name, given_port, given_proto = parse_destination(destination)
    proto = parse_protocol(protocol) if protocol is not None else (given_proto or "tcp")
    if port is not None and given_port is not None and port != given_port:
        raise ValueError(f"two ports for {destination!r}: {given_port} and {port}")
    port = port if port is not None else given_port
    if proto != "icmp" and port is None:
        raise ValueError(f"{destination!r}: give a port for {proto} (NAME:PORT or port=)")
    if proto == "icmp":
        port = None
    function = source.split(":")[0] if source.split(":")[0] in topology.functions else None
    if subnets is not None:
        config = topology.functions[function].vpc_config if function else None
        if config is None:
            raise ValueError(f"subnets= needs a function source with a VpcConfig, not {source!r}")
        chosen = list(config.subnet_ids) if subnets == "all" else list(subnets)
        results = [connect(network, source, name, port, proto, subnet=s) for s in chosen]
        if not results:
            raise ValueError("subnets= names no subnet")
        worst = next((r for r in results if not r.connected), results[0])
        return ConnectionResult(source, name, worst.address, proto, port, None, worst.legs, results, worst._topology)
    if source_ip is not None and source != "internet":
        raise ValueError(f"source_ip= is for an internet source; {source!r} sends from its own address")
    if subnet is not None:
        if function is None:
            raise ValueError(f"subnet= needs a function source, not {source!r}")
        subnet = _subnet_id(topology, subnet)
        environment = network.lambda_service.environment_in_subnet(function, subnet)
    vpc_id = _source_vpc(network, source, subnet)
    target = resolve_destination(network, name, vpc_id, from_internet=source == "internet")
    legs = _exchange(network, source, target.address, port, proto, environment, source_ip or INTERNET_SOURCE_ADDRESS)
    bound = subnet
    config = topology.functions[function].vpc_config if function is not None else None
    if function is not None and config is not None and bound is None and isinstance(legs[0].result.source, tuple):
        bound = subnet_for(function, legs[0].result.source[2], config)  # where environment 0 is bound
    return ConnectionResult(source, name, target.address, proto, port, bound, legs, [], topology)


def _subnet_id(topology: Topology, subnet: str) -> str:
    if subnet in topology.subnets:
        return subnet
    named = [s.id for s in topology.subnets.values() if s.name == subnet]
    if len(named) == 1:
        return named[0]
    raise ValueError(f"unknown subnet {subnet!r}")


def _source_vpc(network: Network, source: str, subnet: str | None) -> str | None:
    topology = network.topology
    if subnet is not None:
        return topology.subnets[subnet].vpc_id
    function = topology.functions.get(source.split(":")[0])
    if function is not None:
        return topology.subnets[function.vpc_config.subnet_ids[0]].vpc_id if function.vpc_config else None
    eni = topology.network_interfaces.get(source) or (topology.eni_of_instance(source) if source.startswith("i-") else None)
    return topology.subnets[eni.subnet_id].vpc_id if eni is not None else None


def _exchange(network: Network, source: str, address: str, port: int | None, proto: str,
              environment: int | str | None, internet_ip: str) -> list[Leg]:
    """Send the legs of one exchange until one is not delivered."""
    function = source.split(":")[0] if source.split(":")[0] in network.topology.functions else None
    sport = network.ephemeral_port()
    legs: list[Leg] = []
    last_request: Result | None = None
    for name, direction, what in _EXCHANGES[proto]:
        if direction == REQUEST:
            ip = IP(dst=address) if source != "internet" else IP(src=internet_ip, dst=address)
            l4: Packet
            if proto == "tcp":
                l4 = TCP(sport=sport, dport=port, flags=what)
            elif proto == "udp":
                l4 = UDP(sport=sport, dport=port)
            else:
                l4 = ICMP(type=int(what), id=sport)
            if function is not None:
                result = network.function(source).send(ip / l4, environment=environment)
                environment = result.source[2] if isinstance(result.source, tuple) else environment
            else:
                result = network.send(ip / l4, source=source)
            last_request = result
        else:
            assert last_request is not None  # every exchange starts with a request
            answer = TCP(flags=what) if proto == "tcp" else UDP() if proto == "udp" else ICMP(type=int(what))
            result = last_request.reply(answer)
        legs.append(Leg(name, direction, result))
        if not result.delivered:
            break
    return legs
