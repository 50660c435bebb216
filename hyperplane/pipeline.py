"""The data plane: a batch of packet records walked through the VPC, stage by stage.

Each stage runs on every packet that reached it (numpy index arrays, compiled kernels) and
records what it decided in ``Facts``; a trace is a rendering of those facts, never a second
evaluation. The walk, per packet:

  V2N NAT on the Hyperplane ENI (from a function)
  -> send from an ENI: SG egress (stateful) -> DNS resolver? -> route (LPM) -> NACL out
  -> target: local/eni: arrive at the ENI: NACL in -> SG ingress -> (Hyperplane ENI: V2N back)
             nat: NACL in at the NAT's subnet -> NAT gateway -> send again from the NAT's ENI
             igw: public IP mapping -> internet;  vpce: gateway endpoint;  pcx; blackhole; none
  From the internet: the internet gateway maps a public address to its ENI or NAT gateway.

Packets of one batch are independent here: the caller (``Network``) cuts a batch into runs in
which no packet depends on another's state at a different stage (see ``segments``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hyperplane.nat import ConnectionTable, Direction, NatStatus
from hyperplane.policy import EGRESS, INGRESS, INBOUND, OUTBOUND
from hyperplane.reasons import Reason
from hyperplane.records import ICMP, ICMP_ECHO_REQUEST, TCP, UDP
from hyperplane.vpc import CompiledVpc, EniKind, Target

MAX_HOPS = 8


class Origin(enum.IntEnum):
    ENI = 0  # sent by an ENI (origin index: the ENI)
    INTERNET = 1  # arrives from the internet at the internet gateway
    FUNCTION = 2  # from an execution environment through a Hyperplane ENI pool (index: pool)
    GATEWAY_ENDPOINT = 3  # from a service behind a gateway endpoint (index: endpoint)
    REPLY_TO_FUNCTION = 4  # a peer's answer to an execution environment (index: function number)


@dataclass
class Facts:
    """What each stage decided, for the rows that reached it: (stage, rows, columns)."""

    stages: list[tuple[str, np.ndarray, dict[str, np.ndarray]]] = field(default_factory=list)

    def add(self, stage: str, rows: np.ndarray, **columns) -> None:
        if len(rows):
            self.stages.append((stage, rows, {k: np.broadcast_to(v, rows.shape) if np.ndim(v) == 0 else v
                                              for k, v in columns.items()}))

    def of(self, row: int) -> list[tuple[str, dict]]:
        """The stages one packet went through, in order, with its values."""
        out = []
        for stage, rows, cols in self.stages:
            hit = np.flatnonzero(rows == row)
            if hit.size:
                k = hit[0]
                out.append((stage, {name: col[k].item() if hasattr(col[k], "item") else col[k]
                                    for name, col in cols.items()}))
        return out


@dataclass
class BatchResult:
    packets: np.ndarray  # PACKET rows after every translation
    reason: np.ndarray  # uint8 Reason per row
    location: np.ndarray  # int32 ENI index where it was delivered or stopped (-1: none)
    facts: Facts
    vpc: CompiledVpc | None = None  # the compiled VPC the indexes refer to

    @classmethod
    def concatenate(cls, parts: list[BatchResult], starts: list[int]) -> BatchResult:
        """One result from the results of consecutive runs starting at ``starts``."""
        facts = Facts([(stage, rows + start, cols) for part, start in zip(parts, starts)
                       for stage, rows, cols in part.facts.stages])
        return cls(np.concatenate([p.packets for p in parts]), np.concatenate([p.reason for p in parts]),
                   np.concatenate([p.location for p in parts]), facts, parts[-1].vpc)

    @property
    def disposition(self) -> np.ndarray:
        return _DISPOSITION[self.reason]

    @property
    def delivered(self) -> np.ndarray:
        return DELIVERED_BY_REASON[self.reason]


_DISPOSITION = np.zeros(256, np.uint8)
DELIVERED_BY_REASON = np.zeros(256, bool)  # Reason code -> counts as delivered
for _r in Reason:
    _DISPOSITION[_r] = _r.disposition
    DELIVERED_BY_REASON[_r] = _r.disposition.delivered

_V2N_FAILURE = {
    NatStatus.UNSOLICITED: Reason.V2N_UNSOLICITED_INBOUND,
    NatStatus.NO_CONNECTION: Reason.V2N_NO_CONNECTION,
    NatStatus.RST_NO_CONNECTION: Reason.V2N_NO_CONNECTION,
    NatStatus.UNSUPPORTED_PROTOCOL: Reason.V2N_UNSUPPORTED_PROTOCOL,
    NatStatus.ADDRESS_FULL: Reason.ENI_CAPACITY,
    NatStatus.PORTS_EXHAUSTED: Reason.ENI_CAPACITY,
}
_NAT_FAILURE = {
    NatStatus.UNSOLICITED: Reason.NAT_UNSOLICITED_INBOUND,
    NatStatus.NO_CONNECTION: Reason.NAT_NO_CONNECTION,
    NatStatus.RST_NO_CONNECTION: Reason.NAT_NO_CONNECTION_RST,
    NatStatus.UNSUPPORTED_PROTOCOL: Reason.NAT_UNSUPPORTED_PROTOCOL,
    NatStatus.ADDRESS_FULL: Reason.NAT_PORT_ALLOCATION_ERROR,
    NatStatus.PORTS_EXHAUSTED: Reason.NAT_PORT_ALLOCATION_ERROR,
}


def _failure_reasons(table: dict[NatStatus, Reason]) -> np.ndarray:
    out = np.zeros(32, np.uint8)
    for status, reason in table.items():
        out[status] = reason
    return out


_V2N_REASON = _failure_reasons(_V2N_FAILURE)
_NAT_REASON = _failure_reasons(_NAT_FAILURE)


class Pipeline:
    """Walks batches through one compiled VPC with its stateful parts."""

    def __init__(self, vpc: CompiledVpc, nat_tables: Sequence[ConnectionTable],
                 pools: Sequence[ConnectionTable], pool_of_eni: dict[int, int], conntrack,
                 refresh: Callable[[], Pipeline] | None = None, pool_vpc: Sequence[int] | None = None) -> None:
        self.vpc = vpc
        self.refresh = refresh  # the pipeline to walk on with once V2N may have added ENIs
        self.nat_tables = nat_tables  # one per NAT gateway, in vpc.nat_ids order
        self.pools = pools  # V2N tables, by pool index
        self.pool_vpc = np.asarray(pool_vpc if pool_vpc is not None else np.zeros(len(pools)), dtype=np.int32)
        # ENI index -> pool index of its Hyperplane ENI pool (-1: not a live Hyperplane ENI)
        self.pool_of_eni = np.full(len(vpc.enis), -1, np.int32)
        for eni, pool in pool_of_eni.items():
            self.pool_of_eni[eni] = pool
        self.conntrack = conntrack

    def run(self, packets: np.ndarray, origin: np.ndarray, origin_index: np.ndarray) -> BatchResult:
        walk = _Walk(self, packets)
        walk.start(np.asarray(origin), np.asarray(origin_index, dtype=np.int32))
        return BatchResult(walk.out, walk.reason, walk.location, walk.facts, walk.vpc)


def _keep(mask: np.ndarray | None, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays filtered by a mask (None: all rows, no copy)."""
    return arrays if mask is None else tuple(a[mask] for a in arrays)


class _Walk:
    """The state of one batch on its way through the VPC."""

    def __init__(self, pipeline: Pipeline, packets: np.ndarray) -> None:
        self.p = pipeline
        self.vpc = pipeline.vpc
        self.out = packets.copy()
        n = len(packets)
        self.reason = np.zeros(n, np.uint8)
        self.location = np.full(n, -1, np.int32)
        self.facts = Facts()
        self.senders: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, sending ENI)

    # -- bookkeeping -------------------------------------------------------------------------

    def finish(self, rows: np.ndarray, reason: Reason | np.ndarray, where: np.ndarray | int = -1) -> None:
        if len(rows):
            self.reason[rows] = reason
            self.location[rows] = where

    def _split(self, rows: np.ndarray, ok: np.ndarray, reason: Reason, where) -> np.ndarray | None:
        """Finish the rows where ``ok`` is false with ``reason``; the mask of the others (None:
        all of them)."""
        ok = ok.view(bool) if ok.dtype == np.uint8 else ok
        if ok.all():
            return None
        bad = ~ok
        self.finish(rows[bad], reason, where[bad] if isinstance(where, np.ndarray) else where)
        return ok

    # -- entry points ------------------------------------------------------------------------

    def start(self, origin: np.ndarray, index: np.ndarray) -> None:
        rows = np.flatnonzero(origin == Origin.ENI)
        if rows.size:
            self.senders.append((rows, index[rows]))
        rows = np.flatnonzero(origin == Origin.FUNCTION)
        translated = []
        for pool in np.unique(index[rows]):
            r = rows[index[rows] == pool]
            before = self.out[r].copy()
            res = self.p.pools[pool].process(self.out[r], Direction.OUT)
            self.facts.add("v2n_out", r, pool=pool, status=res.status, src_ip=before["src_ip"],
                           src_port=before["src_port"], to_ip=res.packets["src_ip"],
                           to_port=res.packets["src_port"])
            ok = res.status < 16
            self.out[r[ok]] = res.packets[ok]
            self.finish(r[~ok], _V2N_REASON[res.status[~ok]])
            translated.append((r[ok], pool))
        if translated and self.p.refresh is not None:
            # V2N may have opened an overflow Hyperplane ENI: walk on with it compiled in
            self.p = self.p.refresh()
            self.vpc = self.p.vpc
        vpc = self.vpc
        for r, pool in translated:
            eni = vpc.eni_of_private_ip(self.out["src_ip"][r], self.p.pool_vpc[pool])
            self.finish(r[eni < 0], Reason.ENI_CAPACITY)  # an address no ENI holds (cannot happen)
            self.senders.append((r[eni >= 0], eni[eni >= 0]))
        rows = np.flatnonzero(origin == Origin.INTERNET)
        if rows.size:
            eni, private = vpc.public_ip_lookup(self.out["dst_ip"][rows])
            self.facts.add("igw_in", rows, public_ip=self.out["dst_ip"][rows], private_ip=private, eni=eni)
            ok = self._split(rows, eni >= 0, Reason.NOT_A_VPC_PUBLIC_ADDRESS, -1)
            rows, eni, private = _keep(ok, rows, eni, private)
            self.out["dst_ip"][rows] = private
            self.arrive(rows, eni, np.full(len(rows), -1, np.int32))
        rows = np.flatnonzero(origin == Origin.GATEWAY_ENDPOINT)
        if rows.size:
            eni = vpc.eni_of_private_ip(self.out["dst_ip"][rows], vpc.endpoint_vpc[np.maximum(index[rows], 0)])
            self.facts.add("endpoint_in", rows, endpoint=index[rows], eni=eni)
            ok = self._split(rows, eni >= 0, Reason.NO_ENI_AT_ADDRESS, -1)
            rows, eni = _keep(ok, rows, eni)
            self.arrive(rows, eni, np.full(len(rows), -1, np.int32))
        for _ in range(MAX_HOPS):
            if not self.senders:
                break
            senders, self.senders = self.senders, []
            for rows, eni in senders:
                if rows.size:
                    self.send(rows, eni)
        for rows, eni in self.senders:  # still being sent on: the routes form a loop
            self.finish(rows, Reason.ROUTING_LOOP, eni)

    # -- stages ------------------------------------------------------------------------------

    def send(self, rows: np.ndarray, eni: np.ndarray) -> None:
        """A packet leaves an ENI: SG egress, DNS, route, NACL out, then its target."""
        vpc, out = self.vpc, self.out
        pk = out[rows]
        subnet = vpc.eni_subnet[eni]
        # the VPC DNS resolver: neither security groups nor NACLs filter it
        dns = ((pk["dst_ip"] == vpc.subnet_dns[subnet]) & (pk["dst_port"] == 53)
               & ((pk["proto"] == TCP) | (pk["proto"] == UDP)))
        if dns.any():
            self.facts.add("dns", rows[dns], subnet=subnet[dns])
            self.finish(rows[dns], Reason.DELIVERED_TO_DNS_RESOLVER, eni[dns])
            rows, eni, pk = _keep(~dns, rows, eni, pk)
        sg = vpc.eni_sg_set[eni]
        rule_ok, rule = vpc.security_groups.evaluate_records(pk, sg, EGRESS)
        allowed, tracked = self.p.conntrack.check(np.where(sg >= 0, vpc.eni_key[eni], -1).astype(np.int32), pk, rule_ok)
        self.facts.add("sg_egress", rows, eni=eni, sg_set=sg, allowed=allowed, rule=rule, tracked=tracked)
        ok = self._split(rows, allowed, Reason.SG_EGRESS_DENY, eni)
        rows, eni, pk = _keep(ok, rows, eni, pk)

        subnet = vpc.eni_subnet[eni]

        table = vpc.subnet_route_table[subnet]
        route = vpc.routes.lookup_records(pk, table)
        kind, target = vpc.route_targets(table, route)
        local = (kind == Target.LOCAL) | (kind == Target.ENI)
        dst_eni = np.where(kind == Target.LOCAL, vpc.eni_of_private_ip(pk["dst_ip"], vpc.subnet_vpc[subnet]),
                           np.where(kind == Target.ENI, target, -1)).astype(np.int32)
        self.facts.add("route", rows, eni=eni, subnet=subnet, table=table, route=route, target=kind,
                       target_index=target)

        # the NACL is crossed on the way to another subnet or out of the VPC; a packet with no
        # route (or a blackhole) never leaves
        to_subnet = np.where(kind == Target.ENI, vpc.eni_subnet[np.maximum(dst_eni, 0)],
                             vpc.subnet_of_ip(pk["dst_ip"], vpc.subnet_vpc[subnet]))
        stays = (kind == Target.NONE) | (kind == Target.BLACKHOLE) | (local & (to_subnet == subnet))
        nacl = np.where(stays, -1, vpc.subnet_nacl[subnet]).astype(np.int32)
        allowed, number = vpc.network_acls.evaluate_records(pk, nacl, OUTBOUND)
        self.facts.add("nacl_out", rows, subnet=subnet, nacl=nacl, allowed=allowed, rule_number=number)
        ok = self._split(rows, allowed, Reason.NACL_OUT_DENY, eni)
        rows, eni, subnet, kind, target, dst_eni, local, pk = _keep(
            ok, rows, eni, subnet, kind, target, dst_eni, local, pk)

        present = np.bincount(kind, minlength=len(Target))
        if present[Target.LOCAL] or present[Target.ENI]:
            missing = local & (dst_eni < 0)
            self.finish(rows[missing], Reason.NO_ENI_AT_ADDRESS, eni[missing])
            go = local & ~missing
            self.arrive(*_keep(go, rows, dst_eni, subnet))
        if present[Target.NAT]:
            nat = kind == Target.NAT
            self.enter_nat(rows[nat], target[nat], subnet[nat])
        if present[Target.IGW]:
            igw = kind == Target.IGW
            self.leave_by_igw(rows[igw], eni[igw])
        if present[Target.GATEWAY_ENDPOINT]:
            gwe = kind == Target.GATEWAY_ENDPOINT
            r, e, p = rows[gwe], eni[gwe], pk[gwe]
            carried = (p["proto"] == TCP) | ((p["proto"] == ICMP) & (p["flags"] == ICMP_ECHO_REQUEST))
            self.finish(r[carried], Reason.DELIVERED_TO_GATEWAY_ENDPOINT, e[carried])
            self.finish(r[~carried], Reason.GATEWAY_ENDPOINT_PROTOCOL, e[~carried])
        for code, reason in ((Target.PEERING, Reason.FORWARDED_TO_PEERING),
                             (Target.BLACKHOLE, Reason.BLACKHOLE_ROUTE),
                             (Target.NONE, Reason.NO_ROUTE),
                             (Target.UNMODELLED, Reason.UNMODELLED_TARGET)):
            if present[code]:
                m = kind == code
                self.finish(rows[m], reason, eni[m])

    def leave_by_igw(self, rows: np.ndarray, eni: np.ndarray) -> None:
        """The internet gateway maps the private source to its public IP (1:1), or drops it."""
        if not rows.size:
            return
        vpc, out = self.vpc, self.out
        public = vpc.public_of_private_ip(out["src_ip"][rows])
        self.facts.add("igw_out", rows, eni=eni, private_ip=out["src_ip"][rows], public_ip=public)
        has = public != 0
        # a private NAT gateway's own translated traffic (a public one's always has its EIP)
        nat = np.append(~vpc.nat_public, False)[vpc.eni_nat[eni]]  # eni_nat -1 reads the False
        self.finish(rows[~has & nat], Reason.PRIVATE_NAT_TO_INTERNET, eni[~has & nat])
        self.finish(rows[~has & ~nat], Reason.NO_PUBLIC_IP, eni[~has & ~nat])
        rows, eni = rows[has], eni[has]
        out["src_ip"][rows] = public[has]
        back, private = vpc.public_ip_lookup(out["dst_ip"][rows])
        hairpin = back >= 0  # to a public address of the VPC: the internet gateway turns it around
        self.finish(rows[~hairpin], Reason.EXITED_TO_INTERNET, eni[~hairpin])
        if hairpin.any():
            r = rows[hairpin]
            self.facts.add("igw_in", r, public_ip=out["dst_ip"][r], private_ip=private[hairpin], eni=back[hairpin])
            out["dst_ip"][r] = private[hairpin]
            self.arrive(r, back[hairpin], np.full(len(r), -1, np.int32))

    def enter_nat(self, rows: np.ndarray, nat: np.ndarray, from_subnet: np.ndarray) -> None:
        """A packet routed to a NAT gateway: NACL in at its subnet, then translation."""
        if not rows.size:
            return
        vpc = self.vpc
        eni = vpc.nat_eni[nat]
        rows, eni = self._nacl_in(rows, eni, from_subnet)
        nat = vpc.eni_nat[eni]
        for n in np.unique(nat):
            r = rows[nat == n]
            self._translate_at_nat(r, n, Direction.OUT, eni[nat == n])

    def _translate_at_nat(self, rows: np.ndarray, nat: int, direction: Direction, eni: np.ndarray) -> None:
        before = self.out[rows].copy()
        res = self.p.nat_tables[nat].process(before, direction)
        self.facts.add("nat_out" if direction == Direction.OUT else "nat_in", rows, nat=nat, status=res.status,
                       src_ip=before["src_ip"], src_port=before["src_port"], dst_ip=before["dst_ip"],
                       dst_port=before["dst_port"])
        ok = res.status < 16
        self.out[rows[ok]] = res.packets[ok]
        self.finish(rows[~ok], _NAT_REASON[res.status[~ok]], eni[~ok])
        self.senders.append((rows[ok], eni[ok]))  # the gateway sends it on from its own ENI

    def _nacl_in(self, rows: np.ndarray, eni: np.ndarray, from_subnet: np.ndarray):
        vpc = self.vpc
        subnet = vpc.eni_subnet[eni]
        nacl = np.where(from_subnet == subnet, -1, vpc.subnet_nacl[subnet]).astype(np.int32)
        allowed, number = vpc.network_acls.evaluate_records(self.out[rows], nacl, INBOUND)
        self.facts.add("nacl_in", rows, subnet=subnet, nacl=nacl, allowed=allowed, rule_number=number)
        ok = self._split(rows, allowed, Reason.NACL_IN_DENY, eni)
        return _keep(ok, rows, eni)

    def arrive(self, rows: np.ndarray, eni: np.ndarray, from_subnet: np.ndarray) -> None:
        """A packet reaches an ENI: NACL in, then by kind: SG ingress, V2N back, NAT gateway."""
        if not rows.size:
            return
        vpc = self.vpc
        rows, eni = self._nacl_in(rows, eni, from_subnet)
        kind = vpc.eni_kind[eni]
        at_nat = kind == EniKind.NAT_GATEWAY
        if at_nat.any():
            nat = vpc.eni_nat[eni[at_nat]]
            for n in np.unique(nat):
                self._translate_at_nat(rows[at_nat][nat == n], n, Direction.IN, eni[at_nat][nat == n])
            rows, eni, kind = rows[~at_nat], eni[~at_nat], kind[~at_nat]
        if not rows.size:
            return
        sg = vpc.eni_sg_set[eni]
        rule_ok, rule = vpc.security_groups.evaluate_records(self.out[rows], sg, INGRESS)
        allowed, tracked = self.p.conntrack.check(np.where(sg >= 0, vpc.eni_key[eni], -1).astype(np.int32), self.out[rows], rule_ok)
        self.facts.add("sg_ingress", rows, eni=eni, sg_set=sg, allowed=allowed, rule=rule, tracked=tracked)
        ok = self._split(rows, allowed, Reason.SG_INGRESS_DENY, eni)
        rows, eni, kind = _keep(ok, rows, eni, kind)
        hp = kind == EniKind.HYPERPLANE
        self.finish(rows[~hp], Reason.DELIVERED, eni[~hp])
        if hp.any():
            rows, eni = _keep(hp, rows, eni)
            pool = self.p.pool_of_eni[eni]
            self.finish(rows[pool < 0], Reason.V2N_UNSOLICITED_INBOUND, eni[pool < 0])
            for p in np.unique(pool[pool >= 0]):
                r, e = rows[pool == p], eni[pool == p]
                before = self.out[r].copy()
                res = self.p.pools[p].process(before, Direction.IN)
                self.facts.add("v2n_in", r, pool=p, status=res.status, dst_ip=before["dst_ip"],
                               dst_port=before["dst_port"], to_ip=res.packets["dst_ip"],
                               to_port=res.packets["dst_port"])
                ok = res.status < 16
                self.out[r[ok]] = res.packets[ok]
                self.finish(r[ok], Reason.DELIVERED_TO_FUNCTION, e[ok])
                self.finish(r[~ok], _V2N_REASON[res.status[~ok]], e[~ok])
