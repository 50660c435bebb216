"""What happened to one packet: the verdict, the hops, the packet as delivered.

A trace is rendered from the facts the pipeline stages recorded for the packet's row; nothing
is evaluated a second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from hyperplane.model.values import IMPLICIT_DENY_RULE_NUMBER
from hyperplane.tables.nat import NatStatus
from hyperplane.reasons import Disposition, Reason
from hyperplane.records import ip_str
from hyperplane.dataplane.compiled_vpc import CompiledVpc, Target

if TYPE_CHECKING:
    from scapy.packet import Packet

    from hyperplane.dataplane.walk import BatchResult


class Replier(Protocol):
    """What sends a result's answer back along its connection (a ``Network``)."""

    def reply_to(self, result: Result, layer4: Packet) -> Result: ...


@dataclass(frozen=True)
class Hop:
    """One step of the path: which resource, what it decided, and by which rule."""

    resource: str  # an AWS id (eni-…, sg-…, acl-…, rtb-…, nat-…, igw-…) or "function:NAME"
    stage: str  # sg-egress, route, nacl-out, nacl-in, sg-ingress, v2n, nat-gateway, igw, ...
    decision: str  # "allow", "deny", "translate", "route", "drop"
    detail: str  # the rule, route or translation, in words
    name: str = ""  # the resource's name where its id does not say it (a template's logical id)

    def __str__(self) -> str:
        shown = f"{self.name} ({self.resource})" if self.name else self.resource
        return f"{self.stage:<12} {shown:<22} {self.decision:<9} {self.detail}"

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "resource": self.resource, "name": self.name, "decision": self.decision,
                "detail": self.detail}


@dataclass
class Result:
    """The answer to ``send``: verdict, reason, hops and the packet after every translation."""

    network: Replier
    reason: Reason
    hops: list[Hop]
    packet: Packet | None  # scapy IP packet as delivered (or where it stopped)
    source: Any  # what sent it (for reply)
    location: int  # ENI index where it ended (-1: none)
    batch: BatchResult | None = field(default=None, repr=False)  # the stages' facts (flow logs)
    vpc: CompiledVpc | None = field(default=None, repr=False)
    # what the network sent back in answer, walked as a packet of its own (a NAT gateway's RST
    # for a connection it no longer has), or None
    answer: Result | None = field(default=None, repr=False)

    @property
    def disposition(self) -> Disposition:
        return self.reason.disposition

    @property
    def delivered(self) -> bool:
        return self.reason.disposition.delivered

    @property
    def explanation(self) -> str | None:
        """The Reachability Analyzer explanation code for the same cause, if it has one."""
        return self.reason.explanation

    def reply(self, layer4: Packet) -> Result:
        """Send the answer back along the same connection (addresses and ports reversed)."""
        return self.network.reply_to(self, layer4)

    def __str__(self) -> str:
        lines = [f"{self.disposition.name} ({self.reason.name}): {self.reason.text}"]
        if self.explanation:
            lines[0] += f" [{self.explanation}]"
        lines += [f"  {h}" for h in self.hops]
        if self.packet is not None:
            lines.append(f"  packet: {self.packet.summary()}")
        if self.answer is not None:
            lines.append("  answered with:")
            lines += ["    " + line for line in str(self.answer).splitlines()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The answer as plain data (stable keys, documented in docs/connectivity.md)."""
        p = self.packet
        l4 = p.payload if p is not None else None
        return {
            "disposition": self.disposition.name, "reason": self.reason.name, "delivered": self.delivered,
            "text": self.reason.text, "explanation": self.explanation,
            "hops": [h.to_dict() for h in self.hops],
            "packet": None if p is None else {
                "src": p.src, "dst": p.dst, "protocol": {1: "icmp", 6: "tcp", 17: "udp"}.get(p.proto, p.proto),
                "sport": getattr(l4, "sport", None), "dport": getattr(l4, "dport", None)},
        }

    def __repr__(self) -> str:
        return f"<Result {self.disposition.name} {self.reason.name}>"


class DeferredResult(Result):
    """A walked packet's Result whose ``hops`` and ``packet`` are rendered when first read, from
    the facts and the translated row the walk left (kept in ``batch``): the same answer as
    rendering them at once, without its cost for a script that reads only the verdict."""

    _hops: list[Hop]
    _packet: Packet | None
    _render_hops: Callable[[], list[Hop]]
    _render_packet: Callable[[], Packet | None]

    @classmethod
    def when_read(cls, network: Replier, reason: Reason, hops: Callable[[], list[Hop]],
                  packet: Callable[[], Packet | None], source: Any, location: int, **kw: Any) -> DeferredResult:
        """A Result whose hops and packet ``hops()`` and ``packet()`` render when first read (the
        constructor takes them rendered, as ``Result``'s does, for ``dataclasses.replace``)."""
        result = cls(network, reason, _UNREAD, _UNREAD, source, location, **kw)
        result._render_hops, result._render_packet = hops, packet
        return result

    @property  # type: ignore[override]
    def hops(self) -> list[Hop]:
        if self._hops is _UNREAD:
            self._hops = self._render_hops()
        return self._hops

    @hops.setter
    def hops(self, hops: list[Hop]) -> None:
        self._hops = hops

    @property  # type: ignore[override]
    def packet(self) -> Packet | None:
        if self._packet is _UNREAD:
            self._packet = self._render_packet()
        return self._packet

    @packet.setter
    def packet(self, packet: Packet | None) -> None:
        self._packet = packet


_UNREAD: Any = object()  # a DeferredResult's hops or packet not rendered yet


def _sg_detail(vpc: CompiledVpc, f: dict, direction: int) -> tuple[str, str, str]:
    groups = vpc.sg_set_groups[f["sg_set"]]
    if f["tracked"]:
        return ",".join(groups), "allow", "tracked connection (security groups are stateful)"
    if f["allowed"]:
        spec = vpc.security_groups.rule(f["sg_set"], direction, f["rule"])
        assert spec is not None  # the walker names only rules of the set
        group, _, k, rule = spec.ref
        untracked = " (untracked flow: open rules both ways)" if f["untracked"] else ""
        return group, "allow", f"rule {k}: {_sg_rule_text(rule)}{untracked}"
    return ",".join(groups), "deny", "no rule of " + ", ".join(groups) + " matches"


def _sg_rule_text(rule) -> str:
    proto = {-1: "all", 1: "icmp", 6: "tcp", 17: "udp"}.get(rule.protocol, str(rule.protocol))
    ports = ""
    if rule.protocol in (6, 17):
        lo, hi = rule.port_range
        ports = f"/{lo}" if lo == hi else f"/{lo}-{hi}"
    return f"{proto}{ports} {'to' if rule.egress else 'from'} {rule.peer}"


def _nacl_detail(vpc: CompiledVpc, f: dict, direction: int) -> str:
    number = f["rule_number"]
    if number == IMPLICIT_DENY_RULE_NUMBER:
        return "rule * (no numbered rule matches: implicit deny)"
    entry = vpc.network_acls.entry(f["nacl"], direction, number)
    assert entry is not None  # the walker names only entries of the ACL
    e = entry.ref
    proto = {-1: "all", 1: "icmp", 6: "tcp", 17: "udp"}.get(e.protocol, str(e.protocol))
    ports = f"/{e.port_range[0]}-{e.port_range[1]}" if e.protocol in (6, 17) else ""
    return f"rule {number}: {e.rule_action} {proto}{ports} {e.cidr}"


def render_hops(vpc: CompiledVpc, facts: list[tuple[str, dict]], nat_ids: list[str],
                pool_names: Sequence[str] = ()) -> list[Hop]:
    """Turn the facts of one row into hops; ``pool_names``: what to call each Hyperplane ENI
    pool (its first ENI's id)."""
    hops = []

    def eni_at(address: int) -> str:
        k = int(vpc.eni_of_private_ip(np.array([address], np.uint32))[0])
        return vpc.enis[k].id if k >= 0 else "hyperplane-eni"

    for stage, f in facts:
        if stage == "v2n_out":
            ok = NatStatus(f["status"])
            detail = (f"{ip_str(f['src_ip'])}:{f['src_port']} -> {ip_str(f['to_ip'])}:{f['to_port']}"
                      if ok.passed else ok.name)
            pool = pool_names[f["pool"]] if 0 <= f["pool"] < len(pool_names) else f"hyperplane-pool-{f['pool']}"
            hops.append(Hop(eni_at(f["to_ip"]) if ok.passed else pool, "v2n-out",
                            "translate" if ok.passed else "drop", detail))
        elif stage == "v2n_in":
            ok = NatStatus(f["status"])
            detail = (f"{ip_str(f['dst_ip'])}:{f['dst_port']} -> {ip_str(f['to_ip'])}:{f['to_port']}"
                      if ok.passed else ok.name)
            hops.append(Hop(eni_at(f["dst_ip"]), "v2n-in", "translate" if ok.passed else "drop",
                            detail))
        elif stage in ("sg_egress", "sg_ingress"):
            if f["sg_set"] < 0:
                continue
            direction = 1 if stage == "sg_egress" else 0
            resource, decision, detail = _sg_detail(vpc, f, direction)
            hops.append(Hop(resource, stage.replace("_", "-"), decision,
                            f"on {vpc.enis[f['eni']].id}: {detail}"))
        elif stage == "route":
            table = vpc.route_table_ids[f["table"]]
            spec = vpc.routes.route(f["table"], f["route"]) if f["route"] >= 0 else None
            detail = str(spec.ref) if spec is not None else "no route matches"
            hops.append(Hop(table, "route", "route" if spec is not None else "drop",
                            f"from {vpc.subnet_ids[f['subnet']]}: {detail}"))
        elif stage in ("nacl_out", "nacl_in"):
            if f["nacl"] < 0:
                continue
            direction = 1 if stage == "nacl_out" else 0
            hops.append(Hop(vpc.nacl_ids[f["nacl"]], stage.replace("_", "-"),
                            "allow" if f["allowed"] else "deny",
                            f"{vpc.subnet_ids[f['subnet']]}: {_nacl_detail(vpc, f, direction)}"))
        elif stage in ("nat_out", "nat_in"):
            ok = NatStatus(f["status"])
            side = "source" if stage == "nat_out" else "destination"
            hops.append(Hop(nat_ids[f["nat"]], stage.replace("_", "-"), "translate" if ok.passed else "drop",
                            f"{side} translated ({ok.name})" if ok.passed else ok.name))
        elif stage == "igw_out":
            igw = vpc.subnet_igw[vpc.enis[f["eni"]].subnet]
            if f["refused"]:  # not an internet address (RFC 1918 / 6598)
                hops.append(Hop(igw, "igw-out", "drop", Reason(f["refused"]).text.split(": ", 1)[-1]))
                continue
            if f["public_ip"]:
                detail = f"{ip_str(f['private_ip'])} -> {ip_str(f['public_ip'])}"
            else:
                detail = f"{ip_str(f['private_ip'])} has no public IP"
            hops.append(Hop(igw, "igw-out", "translate" if f["public_ip"] else "drop", detail))
        elif stage == "igw_in":
            if f["refused"]:  # the gateway of the VPC whose public address it named, if any
                igw = vpc.subnet_igw[vpc.enis[f["eni"]].subnet] if f["eni"] >= 0 else "internet"
                hops.append(Hop(igw, "igw-in", "drop", Reason(f["refused"]).text.split(": ", 1)[-1]))
                continue
            detail = (f"{ip_str(f['public_ip'])} -> {ip_str(f['private_ip'])}" if f["eni"] >= 0
                      else f"{ip_str(f['public_ip'])} belongs to nothing in the VPC")
            igw = vpc.subnet_igw[vpc.enis[f["eni"]].subnet] if f["eni"] >= 0 else "internet"  # no VPC owns it
            hops.append(Hop(igw, "igw-in", "translate" if f["eni"] >= 0 else "drop", detail))
        elif stage == "dns":
            hops.append(Hop("AmazonProvidedDNS", "dns", "answer", vpc.subnet_ids[f["subnet"]]))
        elif stage == "peering":
            hops.append(_peering_hop(vpc, f))
        elif stage == "tgw_in":
            hops.append(_tgw_in_hop(vpc, f))
        elif stage == "tgw_out":
            att = vpc.tgw_attachment_ids[f["attachment"]]
            table = vpc.route_table_ids[f["table"]]
            spec = vpc.routes.route(f["table"], f["route"]) if f["route"] >= 0 else None
            hops.append(Hop(att, "tgw-out", "route" if spec is not None else "drop",
                            f"into {vpc.subnet_ids[f['subnet']]}, {table}: "
                            f"{spec.ref if spec is not None else 'no route matches'}"))
        elif stage == "endpoint_in":
            endpoint = vpc.endpoint_ids[f["endpoint"]] if f["endpoint"] >= 0 else "gateway-endpoint"
            hops.append(Hop(endpoint, "endpoint-in", "route", "from the service"))
    return [_named(vpc.topology, h) for h in hops]


def _peering_hop(vpc: CompiledVpc, f: dict) -> Hop:
    pcx = vpc.peering_ids[f["pcx"]]
    peer = vpc.vpc_ids[f["peer_vpc"]] if f["peer_vpc"] >= 0 else None
    if f["from_peer"]:
        return Hop(pcx, "peering", "route", "in from the peer VPC, which is not in the network")
    if not f["active"]:
        status = vpc.topology.vpc_peering_connections[pcx].status
        return Hop(pcx, "peering", "drop", f"the connection is {status}, not active")
    if not f["in_peer_cidr"]:
        return Hop(pcx, "peering", "drop", "the destination is not in the peer VPC's CIDR blocks")
    if peer is None:
        return Hop(pcx, "peering", "route", "out to the peer VPC, which is not in the network")
    name = vpc.topology.vpcs[peer].name
    return Hop(pcx, "peering", "route", f"into {peer}" + (f" ({name})" if name else ""))


def _tgw_in_hop(vpc: CompiledVpc, f: dict) -> Hop:
    """A transit gateway's routing: which gateway, by which attachment, which route table and
    route, to which attachment."""
    if f["attachment"] < 0:
        return Hop("transit-gateway", "tgw", "drop", "the sender's VPC has no attachment to the transit gateway")
    att = vpc.tgw_attachment_ids[f["attachment"]]
    tgw = vpc.tgw_ids[f["tgw"]]
    if f["subnet"] < 0:
        return Hop(tgw, "tgw", "drop", f"{att} has no subnet in the sender's Availability Zone")
    if f["table"] < 0:
        return Hop(tgw, "tgw", "drop", f"from {att}: associated with no route table")
    table, route = vpc.tgw_route(f["table"], f["route"])
    if route is None:
        fallback = int(vpc.tgw_rtb_fallback[f["table"]])
        if fallback >= 0:  # a VPN / Direct Connect attachment propagates routes not emulated (BGP)
            return Hop(tgw, "tgw", "exit", f"from {att}, {table}: no known route; "
                       f"{vpc.tgw_attachment_ids[fallback]} propagates routes (BGP) that are not emulated")
        return Hop(tgw, "tgw", "drop", f"from {att}, {table}: no route matches")
    target = route.attachment_id
    if target is not None and not vpc.att_emulated[vpc.tgw_attachment_ids.index(target)]:
        return Hop(tgw, "tgw", "exit", f"from {att}, {table}: {route} (not emulated beyond it)")
    return Hop(tgw, "tgw", "drop" if route.is_blackhole else "route", f"from {att}, {table}: {route}")


def _named(topology: Any, hop: Hop) -> Hop:
    """The hop with its resource's name (``Name`` tag, logical id; an ENI's one-word
    description) when the id does not already say it: ``PrivateSubnetA (subnet-0a1b…)`` for a
    template's synthesized ids, nothing more for ``acl-data`` named ``data``."""
    resource = topology.get(hop.resource) if hop.resource in topology else None
    name = getattr(resource, "name", "") or ""
    if not name and " " not in (getattr(resource, "description", "") or " "):
        name = resource.description  # type: ignore[union-attr]
    if not name or name.lower() in hop.resource.lower():
        return hop
    return Hop(hop.resource, hop.stage, hop.decision, hop.detail, name)


def row_hops(res: BatchResult, row: int, pool_names: Sequence[str] = (), first: Sequence[Hop] = ()) -> list[Hop]:
    """The hops of one walked row as a trace shows them (after ``first``), ending with where the
    packet stopped when no stage decided its fate."""
    assert res.vpc is not None  # a pipeline's results carry its compilation
    reason = Reason(int(res.reason[row]))
    hops = list(first) + render_hops(res.vpc, res.facts.of(row), res.vpc.nat_ids, pool_names)
    if not reason.disposition.delivered and (not hops or hops[-1].decision not in ("deny", "drop")):
        where = res.vpc.enis[res.location[row]].id if res.location[row] >= 0 else "-"
        hops.append(Hop(where, "end", "drop", reason.text))
    return hops


def target_name(code: int) -> str:
    return Target(code).name.lower()
