"""What can be found without a question (``hyperplane lint``): the mistakes people make with
Lambda networking, each found by a walk.

The topology only says which questions are worth asking; every verdict is the walker's, and
every finding carries the connection that shows it (its ``evidence``, printed as a trace):

- ``function-in-public-subnet``: a function's way to the internet is an internet gateway,
  which drops its packets: a Hyperplane ENI never has a public IP. Asked: each function
  subnet -> ``internet:443``.
- ``nat-gateway-without-internet``: a function's way to the internet is a NAT gateway whose
  own subnet has no route to an internet gateway (or no route out at all). Same question.
- ``nacl-denies-reply``: a NACL admits the request of a connection a security group allows,
  and not its reply (NACLs are stateless). Asked: for every inbound security-group rule, each
  source it admits (the functions and ENIs of a referenced group, the functions, ENIs and
  internet inside a CIDR) -> each ENI of that group on the rule's first port; and each
  function subnet -> ``internet:443``.
- ``blackhole-route``: a route whose target is gone drops what it matches. Asked: a source
  in a subnet of that route table (a function bound to it, else an ENI) -> an address of the
  route's destination. A table no source sends through is not reported: nothing walks it.
- ``peering-route-not-carried``: a route to a peering connection that the connection does not
  carry: it carries only traffic to the peer VPC's CIDR blocks (never on to the peer's gateways
  or its other peerings), and nothing while it is not active. Asked: a source in a subnet of
  that route table -> an address of the route's destination outside the peer's blocks (any of
  its addresses, for a connection that is not active).
- ``endpoint-without-private-dns``: an interface endpoint without private DNS is not where the
  service's name leads: the SDK resolves it to the service's public addresses. Asked: each
  function of the endpoint's VPC -> ``internet:443`` (where those calls go instead).

A security group referenced but absent is not a lint finding: the topology readers refuse it
(:class:`~hyperplane.errors.TopologyError` naming the file and place), and the walker has no
network to walk without it.

The walks run on the network given (``connect``'s connections stay in its tables).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from hyperplane.connectivity.connection import REPLY, ConnectionResult, connect
from hyperplane.connectivity.names import INTERNET_ADDRESS, INTERNET_SOURCE_ADDRESS
from hyperplane.model import ICMP, TCP, UDP, Topology
from hyperplane.reasons import Reason

__all__ = ["Finding", "KINDS", "lint"]

#: every kind of finding, and what it means
KINDS = {
    "function-in-public-subnet": "the function's internet route is an internet gateway: a Hyperplane ENI has no "
                                 "public IP, so the gateway drops its packets (use a NAT gateway)",
    "nat-gateway-without-internet": "the function's internet route is a NAT gateway whose own subnet has no "
                                    "route to an internet gateway",
    "nacl-denies-reply": "a NACL admits the request of a connection a security group allows, but not its reply "
                         "(NACLs are stateless)",
    "blackhole-route": "a route whose target is gone drops what it matches",
    "peering-route-not-carried": "a route to a peering connection for what it does not carry: addresses outside "
                                 "the peer VPC's CIDR blocks, or anything while it is not active",
    "endpoint-without-private-dns": "an interface endpoint without private DNS: the service's name resolves to its "
                                    "public addresses, not to the endpoint",
}
_PROBE = "internet:443"  # where a function's internet traffic is asked to go
_PROTOCOL = {TCP: "tcp", UDP: "udp", ICMP: "icmp"}
_NACL_STAGES = ("nacl-in", "nacl-out")


@dataclass(frozen=True)
class Finding:
    """One finding: its ``kind`` (:data:`KINDS`), the ``resource`` to fix, what it is about
    (``subject``), one sentence (``message``) and the walk that shows it (``evidence``)."""

    kind: str
    resource: str
    subject: str
    message: str
    evidence: ConnectionResult

    def __str__(self) -> str:
        return f"{self.kind}: {self.resource}: {self.message}\n{self.evidence}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "resource": self.resource, "subject": self.subject, "message": self.message,
                "trace": str(self.evidence), "evidence": self.evidence.to_dict()}


def lint(network: Any) -> list[Finding]:
    """Every finding of the network (see the module docstring), in a stable order."""
    found: dict[tuple[str, str, str], Finding] = {}
    for finding in (*_internet(network), *_security_group_rules(network), *_blackholes(network),
                    *_peering_routes(network), *_endpoints(network)):
        found.setdefault((finding.kind, finding.resource, finding.subject), finding)
    return list(found.values())


def _vpc_functions(topology: Topology) -> Iterator[Any]:
    return (f for f in topology.functions.values() if f.vpc_config is not None)


def _failing(result: ConnectionResult) -> ConnectionResult | None:
    """The first subnet's connection (or the connection) that does not connect."""
    return next((one for one in result.subnets or [result] if not one.connected), None)


# -- the way to the internet --------------------------------------------------------------------

def _internet(network: Any) -> Iterator[Finding]:
    topology: Topology = network.topology
    for function in _vpc_functions(topology):
        asked = connect(network, function.name, _PROBE, subnets="all")
        for one in asked.subnets:
            finding = _internet_finding(topology, function.name, one)
            if finding is not None:
                yield finding


def _internet_finding(topology: Topology, name: str, one: ConnectionResult) -> Finding | None:
    failed = one.failed
    if failed is None:
        return None
    hops, reason = failed.result.hops, failed.result.reason
    subject = f"{name} ({one.subnet})"
    if reason == Reason.NO_PUBLIC_IP:
        igw = one.resource or "the internet gateway"
        return Finding("function-in-public-subnet", name, subject,
                       f"{one.subnet} routes to the internet through {igw}, which drops the function's packets: "
                       "a Hyperplane ENI never has a public IP (put the function in private subnets that route "
                       "to a NAT gateway)", one)
    nat = next((h.resource for h in hops if h.stage.startswith("nat") and h.decision == "translate"), None)
    if nat is not None and reason == Reason.NO_ROUTE and failed.direction != REPLY:
        nat_subnet = topology.nat_gateways[nat].subnet_id if nat in topology.nat_gateways else "its subnet"
        return Finding("nat-gateway-without-internet", nat, subject,
                       f"{name} goes out through {nat}, but {nat_subnet} has no route to an internet gateway "
                       f"({one.resource}: no route matches): a public NAT gateway belongs in a public subnet", one)
    return _nacl_reply(one, f"{name} -> internet:443/tcp from {one.subnet}", "its security groups allow it")


# -- replies a NACL denies --------------------------------------------------------------------

def _nacl_reply(result: ConnectionResult, subject: str, why: str) -> Finding | None:
    """A finding when the request passed and a NACL denied the reply."""
    one = _failing(result)
    if one is None or one.failed_leg != REPLY:
        return None
    hop = one.deciding_hop
    if hop is None or hop.stage not in _NACL_STAGES:
        return None
    advice = f": {one.advice}" if one.advice else ""
    return Finding("nacl-denies-reply", hop.resource, subject,
                   f"{hop.resource} admits {subject} ({why}) but denies its reply{advice}", one)


def _security_group_rules(network: Any) -> Iterator[Finding]:
    topology: Topology = network.topology
    asked: set[tuple[str, str, str, int | None]] = set()
    for group in topology.security_groups.values():
        targets = [e for e in topology.enis_with_security_group(group.id) if e.kind != "nat_gateway"]
        for rule in group.ingress:
            for protocol, port in _asked_ports(topology, rule, targets):
                for target in targets:
                    for source, address in _sources(topology, rule, target):
                        key = (source, target.id, protocol, port)
                        if key in asked:
                            continue
                        asked.add(key)
                        destination = target.id + (f":{port}" if port is not None else "")
                        function = topology.functions.get(source)
                        result = connect(network, source, destination, protocol=protocol,
                                         subnets="all" if function is not None else None, source_ip=address)
                        shown = f"{source} -> {destination}/{protocol}"
                        finding = _nacl_reply(result, shown, f"{group.id} allows it")
                        if finding is not None:
                            yield finding


def _asked_ports(topology: Topology, rule: Any, targets: list[Any]) -> list[tuple[str, int | None]]:
    """The (protocol, port) a rule is asked on: its first port; for a rule of every protocol or
    port, the first port of each inbound NACL entry of the targets' subnets that allows tcp."""
    if rule.protocol == ICMP:
        return [("icmp", None)]
    if rule.protocol in (TCP, UDP) and rule.port_range != (0, 65535):
        return [(_PROTOCOL[rule.protocol], rule.port_range[0])]
    protocol = _PROTOCOL.get(rule.protocol, "tcp")
    ports = sorted({e.port_range[0] for t in targets for e in topology.network_acl_of(t.subnet_id).entries
                    if not e.egress and e.rule_action == "allow" and e.protocol in (TCP, -1)
                    and e.port_range != (0, 65535)}) if protocol == "tcp" else []
    return [(protocol, p) for p in ports or [443 if protocol == "tcp" else 53]]


def _sources(topology: Topology, rule: Any, target: Any) -> Iterator[tuple[str, str | None]]:
    """Who a rule admits, as sources ``connect`` takes (with the internet's address, when the
    source is the internet): functions, one ENI per subnet, the internet."""
    vpc_id = topology.subnets[target.subnet_id].vpc_id
    if rule.security_group_id is not None:
        member = rule.security_group_id
        for f in _vpc_functions(topology):
            if member in f.vpc_config.security_group_ids and topology.subnets[f.vpc_config.subnet_ids[0]].vpc_id == vpc_id:
                yield f.name, None
        yield from _one_eni_per_subnet(topology, [e for e in topology.enis_with_security_group(member)], target)
        return
    if rule.cidr is None:
        return  # a prefix list: AWS services, not sources of this network
    cidr: IPv4Network = rule.cidr
    for f in _vpc_functions(topology):
        subnets = [topology.subnets[s] for s in f.vpc_config.subnet_ids]
        if subnets[0].vpc_id == vpc_id and any(s.cidr.overlaps(cidr) for s in subnets):
            yield f.name, None
    yield from _one_eni_per_subnet(topology, [e for e in topology.network_interfaces.values()
                                              if e.private_ip in cidr], target)
    vpc = topology.vpcs[vpc_id]
    if not any(cidr.subnet_of(block) for block in vpc.cidrs) and not cidr.is_private:
        address = INTERNET_SOURCE_ADDRESS if IPv4Address(INTERNET_SOURCE_ADDRESS) in cidr \
            else str(cidr.network_address if cidr.prefixlen == 32 else cidr.network_address + 1)
        yield "internet", address


def _one_eni_per_subnet(topology: Topology, enis: list[Any], target: Any) -> Iterator[tuple[str, None]]:
    """NACLs are per subnet: one ENI of each subnet stands for its subnet's sources."""
    seen: set[str] = set()
    for eni in enis:
        if eni.id == target.id or eni.kind == "nat_gateway" or eni.subnet_id in seen:
            continue
        if topology.subnets[eni.subnet_id].vpc_id != topology.subnets[target.subnet_id].vpc_id:
            continue
        seen.add(eni.subnet_id)
        yield eni.id, None


# -- blackhole routes ---------------------------------------------------------------------------

def _blackholes(network: Any) -> Iterator[Finding]:
    topology: Topology = network.topology
    for table in topology.route_tables.values():
        routes = [r for r in table.routes if r.is_blackhole]
        if not routes:
            continue
        subnets = {s.id for s in topology.subnets_using_route_table(table.id)}
        source = _source_in(topology, subnets)
        if source is None:
            continue
        name, subnet = source
        for route in routes:
            address = _address_in(topology, route.destination)
            if address is None:
                continue
            result = connect(network, name, f"{address}:443", subnet=subnet)
            failed = result.failed
            if failed is None or failed.result.reason != Reason.BLACKHOLE_ROUTE:
                continue  # a more specific route takes that address: the walk says where it goes
            yield Finding("blackhole-route", table.id, f"{route.destination} -> {route.target}",
                          f"the route {route.destination} -> {route.target} is a blackhole (its target is gone): "
                          f"{name}'s packets to {address} are dropped", result)


def _peering_routes(network: Any) -> Iterator[Finding]:
    topology: Topology = network.topology
    for table in topology.route_tables.values():
        routes = [r for r in table.routes if r.target_kind == "pcx" and not r.is_blackhole
                  and r.target in topology.vpc_peering_connections and not isinstance(r.destination, str)]
        source = _source_in(topology, {s.id for s in topology.subnets_using_route_table(table.id)}) if routes else None
        if source is None:
            continue
        name, subnet = source
        for route in routes:
            pcx = topology.vpc_peering_connections[route.target]
            other = pcx.peer_vpc_id if pcx.vpc_id == table.vpc_id else pcx.vpc_id
            blocks = topology.vpcs[other].cidrs if other in topology.vpcs else pcx.peer_cidrs
            destination = route.destination
            assert isinstance(destination, IPv4Network)
            candidates = [_address_in(topology, destination)]
            if destination.prefixlen < 31:
                candidates.append(str(destination.broadcast_address - 1))
            outside = [a for a in candidates if a is not None and not any(IPv4Address(a) in b for b in blocks)]
            address = outside[0] if outside else candidates[0] if not pcx.is_active else None
            if address is None:
                continue  # every address of the route is the peer's: the connection carries it
            result = connect(network, name, f"{address}:443", subnet=subnet)
            failed = result.failed
            if failed is None or failed.result.reason not in (Reason.PCX_ADDRESS_NOT_IN_PEER_VPC,
                                                              Reason.PCX_NOT_ACTIVE):
                continue  # a more specific route takes that address: the walk says where it goes
            why = (f"{pcx.id} is {pcx.status}, not active" if failed.result.reason == Reason.PCX_NOT_ACTIVE
                   else f"{address} is outside {other}'s CIDR blocks")
            yield Finding("peering-route-not-carried", table.id, f"{route.destination} -> {route.target}",
                          f"the route {route.destination} -> {route.target} sends what the connection does not "
                          f"carry ({why}): {name}'s packets to {address} are dropped", result)


def _source_in(topology: Topology, subnets: set[str]) -> tuple[str, str | None] | None:
    """A function bound to one of ``subnets`` (and that subnet), else an ENI in one."""
    for f in _vpc_functions(topology):
        mine = [s for s in f.vpc_config.subnet_ids if s in subnets]
        if mine:
            return f.name, mine[0]
    eni = next((e for e in topology.network_interfaces.values()
                if e.subnet_id in subnets and e.kind != "nat_gateway"), None)
    return (eni.id, None) if eni is not None else None


def _address_in(topology: Topology, destination: IPv4Network | str) -> str | None:
    """An address the route matches: the internet's (``internet`` of ``connect``) when the route
    covers it (a default route), else the first host of its CIDR (or prefix list)."""
    if isinstance(destination, str):  # a prefix list
        cidrs = topology.prefix_list_cidrs(destination) if destination in topology.prefix_lists else ()
        if not cidrs:
            return None
        destination = cidrs[0]
    if IPv4Address(INTERNET_ADDRESS) in destination:
        return INTERNET_ADDRESS
    return str(destination.network_address + (1 if destination.prefixlen < 32 else 0))


# -- interface endpoints without private DNS ---------------------------------------------------

def _endpoints(network: Any) -> Iterator[Finding]:
    topology: Topology = network.topology
    for endpoint in topology.vpc_endpoints.values():
        if endpoint.endpoint_type != "interface" or endpoint.private_dns_enabled:
            continue
        for f in _vpc_functions(topology):
            if topology.subnets[f.vpc_config.subnet_ids[0]].vpc_id != endpoint.vpc_id:
                continue
            result = connect(network, f.name, _PROBE, subnets="all")
            one = _failing(result) or result.subnets[0]
            service = endpoint.service_name.rsplit(".", 1)[-1]
            yield Finding("endpoint-without-private-dns", endpoint.id, f"{f.name} -> {service}",
                          f"{endpoint.id} ({endpoint.service_name}) has private DNS off: the service's name "
                          f"resolves to its public addresses, so {f.name}'s calls {_where(one)}, not through "
                          f"the endpoint (enable private DNS, or call the endpoint's own DNS name)", one)


def _where(one: ConnectionResult) -> str:
    """Where a connection to the internet went: out through a NAT or internet gateway, or not."""
    if not one.connected:
        return one.explanation.replace("fails", "fail", 1)
    hops = one.legs[0].result.hops
    gateway = next((h.resource for h in hops if h.stage.startswith("nat") and h.decision == "translate"), None)
    gateway = gateway or next((h.resource for h in hops if h.stage.startswith("igw")), None)
    return f"go out through {gateway}" if gateway else "go to the internet"
