"""The topology compiled into flat arrays: ENIs, subnets, route tables, security groups, NACLs.

Compiled once per configuration change (a new Hyperplane ENI changes who carries a group, so it
recompiles too); the pipeline then only indexes arrays and calls the compiled policy kernels.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hyperplane import model
from hyperplane._core import _codes
from hyperplane.codes import Code
from hyperplane.tables.policy import (
    CompiledNetworkAcls,
    CompiledRoutes,
    CompiledSecurityGroups,
    NetworkAclEntrySpec,
    NetworkAclSpec,
    RouteSpec,
    SecurityGroupRuleSpec,
    SecurityGroupSetSpec,
)


class EniKind(Code):
    """What an ENI is (values: ``_codes.EniKind``)."""

    PLAIN = _codes.EniKind.ENI_PLAIN  # an instance, a database, a cache...
    INTERFACE_ENDPOINT = _codes.EniKind.ENI_INTERFACE_ENDPOINT
    NAT_GATEWAY = _codes.EniKind.ENI_NAT_GATEWAY
    HYPERPLANE = _codes.EniKind.ENI_HYPERPLANE


class Target(Code):
    """What a route sends to (route tables compiled to these codes; values: ``_codes.Target``)."""

    NONE = _codes.Target.T_NONE
    LOCAL = _codes.Target.T_LOCAL
    IGW = _codes.Target.T_IGW
    NAT = _codes.Target.T_NAT
    GATEWAY_ENDPOINT = _codes.Target.T_GATEWAY_ENDPOINT
    ENI = _codes.Target.T_ENI
    PEERING = _codes.Target.T_PEERING
    BLACKHOLE = _codes.Target.T_BLACKHOLE
    UNMODELLED = _codes.Target.T_UNMODELLED
    TGW = _codes.Target.T_TGW


@dataclass(frozen=True)
class Eni:
    """One row of the ENI table, with the model object (or Hyperplane ENI) behind it."""

    index: int
    id: str
    ip: int
    subnet: int
    sg_set: int  # -1: no security group (NAT gateway)
    kind: EniKind
    public_ip: int  # 0: none
    nat: int  # NAT gateway index for its ENI, else -1
    ref: Any


def _u32(ip: Any) -> int:
    return int(ipaddress.IPv4Address(ip))


class CompiledVpc:
    """Everything the pipeline asks per packet, as arrays indexed by ENI / subnet / route."""

    def __init__(self, topology: model.Topology, hyperplane_enis: Sequence[Any] = (),
                 numbering: dict[str, int] | None = None) -> None:
        """``numbering`` gives ENIs numbers that survive recompiles (for connection tracking)."""
        self.topology = topology
        numbering = {} if numbering is None else numbering
        t = topology
        self.subnet_ids = list(t.subnets)
        subnet_index = {sid: k for k, sid in enumerate(self.subnet_ids)}
        self.route_table_ids = list(t.route_tables)
        rt_index = {rid: k for k, rid in enumerate(self.route_table_ids)}
        self.nacl_ids = list(t.network_acls)
        nacl_index = {aid: k for k, aid in enumerate(self.nacl_ids)}
        self.nat_ids = list(t.nat_gateways)
        nat_index = {nid: k for k, nid in enumerate(self.nat_ids)}
        self.endpoint_ids = list(t.vpc_endpoints)
        self.vpc_ids = list(t.vpcs)
        self.endpoint_vpc = np.array([self.vpc_ids.index(t.vpc_endpoints[e].vpc_id) for e in self.endpoint_ids],
                                     dtype=np.int32)
        endpoint_index = {eid: k for k, eid in enumerate(self.endpoint_ids)}

        subnets = [t.subnets[s] for s in self.subnet_ids]
        self.subnet_route_table = np.array([rt_index[s.route_table_id] for s in subnets], dtype=np.int32)
        self.subnet_nacl = np.array([nacl_index[s.network_acl_id] for s in subnets], dtype=np.int32)
        self.subnet_dns = np.array([_u32(t.vpcs[s.vpc_id].dns_resolver_ip) for s in subnets], dtype=np.uint32)
        vpc_index = {vid: k for k, vid in enumerate(self.vpc_ids)}
        self.subnet_vpc = np.array([vpc_index[s.vpc_id] for s in subnets], dtype=np.int32)
        igw_of_vpc = {igw.vpc_id: igw.id for igw in t.internet_gateways.values() if igw.vpc_id}
        self.subnet_igw = [igw_of_vpc.get(s.vpc_id, "internet-gateway") for s in subnets]
        # (vpc, first address) of each subnet, sorted: subnets of one VPC never overlap
        ranges = sorted((vpc_index[s.vpc_id] << 32 | int(s.cidr.network_address),
                         vpc_index[s.vpc_id] << 32 | int(s.cidr.broadcast_address), k)
                        for k, s in enumerate(subnets))
        self._subnet_lo = np.array([a for a, _, _ in ranges], dtype=np.uint64)
        self._subnet_hi = np.array([b for _, b, _ in ranges], dtype=np.uint64)
        self._subnet_idx = np.array([k for _, _, k in ranges], dtype=np.int32)

        # -- ENIs: plain, endpoint and NAT gateway ENIs of the model, then Hyperplane ENIs ----
        members: dict[str, list[int]] = {}  # security group id -> private IPs carrying it
        sg_sets: dict[tuple[str, ...], int] = {}
        rows: list[Eni] = []
        addresses: list[tuple[int, int]] = []  # (ip, eni index), secondary IPs included

        def sg_set_of(groups: Iterable[str]) -> int:
            key = tuple(sorted(groups))
            return sg_sets.setdefault(key, len(sg_sets)) if key else -1

        def add(eni_id, ips, subnet_id, groups, kind, public_ip, nat, ref) -> None:
            k = len(rows)
            rows.append(Eni(k, eni_id, ips[0], subnet_index[subnet_id], sg_set_of(groups), kind,
                            public_ip, nat, ref))
            addresses.extend((ip, k) for ip in ips)
            for g in groups:
                members.setdefault(g, []).extend(ips)

        for eni in t.network_interfaces.values():
            if eni.kind == "lambda":  # Hyperplane ENIs come from the Lambda service below
                continue
            if eni.kind == "nat_gateway":
                kind, nat = EniKind.NAT_GATEWAY, nat_index.get(eni.managed_by or "", -1)
            elif eni.kind == "vpc_endpoint":
                kind, nat = EniKind.INTERFACE_ENDPOINT, -1
            else:
                kind, nat = EniKind.PLAIN, -1
            add(eni.id, [_u32(ip) for ip in eni.private_ips], eni.subnet_id,
                () if kind == EniKind.NAT_GATEWAY else eni.security_group_ids, kind,
                _u32(eni.public_ip) if eni.public_ip else 0, nat, eni)
        for hp in hyperplane_enis:
            add(hp.id, [_u32(hp.private_ip)], hp.subnet_id, hp.security_group_ids,
                EniKind.HYPERPLANE, 0, -1, hp)
        self.enis = rows
        self.eni_index = {e.id: e.index for e in rows}
        self.eni_ip = np.array([e.ip for e in rows], dtype=np.uint32)
        self.eni_subnet = np.array([e.subnet for e in rows], dtype=np.int32)
        self.eni_sg_set = np.array([e.sg_set for e in rows], dtype=np.int32)
        self.eni_kind = np.array([e.kind for e in rows], dtype=np.int8)
        self.eni_public_ip = np.array([e.public_ip for e in rows], dtype=np.uint32)
        self.eni_nat = np.array([e.nat for e in rows], dtype=np.int32)
        self.eni_key = np.array([numbering.setdefault(e.id, len(numbering)) for e in rows], dtype=np.int32)
        # source/destination check (on by default): the ENI only sends from, and is only routed
        # packets for, its own addresses; NAT gateways and Hyperplane ENIs translate, so never
        self.eni_source_dest_check = np.array(
            [e.kind in (EniKind.PLAIN, EniKind.INTERFACE_ENDPOINT) and e.ref.source_dest_check for e in rows],
            dtype=np.uint8)

        # private address -> ENI: keyed by (VPC, address), since VPCs may overlap
        self.eni_vpc = self.subnet_vpc[self.eni_subnet] if rows else np.zeros(0, np.int32)
        keyed = sorted((int(self.eni_vpc[k]) << 32 | a, k) for a, k in addresses)
        self._private_keys = np.array([key for key, _ in keyed], dtype=np.uint64)
        self._private_key_eni = np.array([k for _, k in keyed], dtype=np.int32)
        addresses.sort()
        self._private_ips = np.array([a for a, _ in addresses], dtype=np.uint32)
        self._private_eni = np.array([k for _, k in addresses], dtype=np.int32)
        public: list[tuple[int, int, int]] = []  # (public ip, eni, private ip it maps to)
        # the internet gateway maps public addresses only for a VPC it is attached to
        online = {igw.vpc_id for igw in t.internet_gateways.values() if igw.vpc_id}
        subnet_online = [s.vpc_id in online for s in subnets]
        for e in rows:
            if e.public_ip and subnet_online[e.subnet]:
                public.append((e.public_ip, e.index, e.ip))
        self.nat_private_to_public: dict[int, int] = {}
        for nid in self.nat_ids:
            gateway = t.nat_gateways[nid]
            gateway_eni = self.eni_index.get(gateway.network_interface_id or "", -1)
            for private, public_ip in gateway.address_pairs:
                if public_ip is not None and subnet_online[subnet_index[gateway.subnet_id]]:
                    public.append((_u32(public_ip), gateway_eni, _u32(private)))
                    self.nat_private_to_public[_u32(private)] = _u32(public_ip)
        by_private = sorted((q, p) for p, _, q in public)
        self._private_with_public = np.array([q for q, _ in by_private], dtype=np.uint32)
        self._public_of_private = np.array([p for _, p in by_private], dtype=np.uint32)
        public.sort()
        self._public_ips = np.array([p for p, _, _ in public], dtype=np.uint32)
        self._public_eni = np.array([e for _, e, _ in public], dtype=np.int32)
        self._public_private = np.array([q for _, _, q in public], dtype=np.uint32)
        self.nat_public = np.array([t.nat_gateways[n].is_public for n in self.nat_ids], dtype=bool)
        self.nat_eni = np.array([self.eni_index.get(t.nat_gateways[n].network_interface_id, -1)
                                 for n in self.nat_ids], dtype=np.int32)

        # -- security groups: one compiled set per distinct combination on an ENI ------------
        self.sg_set_groups = [key for key, _ in sorted(sg_sets.items(), key=lambda kv: kv[1])]

        def rule_specs(group_id: str, egress: bool) -> list[SecurityGroupRuleSpec]:
            out = []
            for k, r in enumerate(t.security_groups[group_id].rules(egress)):
                cidrs: tuple[Any, ...]
                if r.cidr is not None:
                    cidrs = (r.cidr,)
                elif r.prefix_list_id is not None:
                    cidrs = t.prefix_list_cidrs(r.prefix_list_id)
                else:
                    cidrs = tuple((ip, 32) for ip in members.get(r.security_group_id or "", ()))
                if r.protocol == model.ICMP:
                    lo, hi = r.icmp_type, r.icmp_code
                else:
                    lo, hi = r.port_range
                out.append(SecurityGroupRuleSpec(r.protocol, lo, hi, cidrs, ref=(group_id, egress, k, r)))
            return out

        self.security_groups = CompiledSecurityGroups.compile([
            SecurityGroupSetSpec(
                tuple(s for g in groups for s in rule_specs(g, False)),
                tuple(s for g in groups for s in rule_specs(g, True)),
                ref=groups)
            for groups in self.sg_set_groups])

        # -- network ACLs ---------------------------------------------------------------------
        def entry_spec(e: model.NetworkAclEntry) -> NetworkAclEntrySpec:
            lo, hi = (e.icmp_type, e.icmp_code) if e.protocol == model.ICMP else e.port_range
            return NetworkAclEntrySpec(e.rule_number, e.protocol, e.cidr, e.allows, lo, hi, ref=e)

        acls = [t.network_acls[a] for a in self.nacl_ids]
        self.network_acls = CompiledNetworkAcls.compile([
            NetworkAclSpec(
                tuple(entry_spec(e) for e in acl.rules(False) if not e.is_implicit_deny),
                tuple(entry_spec(e) for e in acl.rules(True) if not e.is_implicit_deny),
                ref=acl.id)
            for acl in acls])

        self._compile_transit_gateways(subnet_index, vpc_index)

        # -- route tables: LPM in the kernel, targets as codes + indexes here ---------------
        self._compile_peerings(vpc_index)
        self.route_target: list[np.ndarray] = []
        self.route_target_index: list[np.ndarray] = []
        tables = []
        for rid in self.route_table_ids:
            specs, kinds, indexes = [], [], []
            for route in t.route_tables[rid].routes:
                if route.is_prefix_list_route:
                    specs.append(RouteSpec.from_prefix_list(t.prefix_list_cidrs(str(route.destination)), ref=route))
                else:
                    specs.append(RouteSpec.static(route.destination, ref=route))
                target, index = self._target(route, nat_index, endpoint_index, t.route_tables[rid].vpc_id)
                kinds.append(target)
                indexes.append(index)
            tables.append(specs)
            self.route_target.append(np.array(kinds, dtype=np.int8))
            self.route_target_index.append(np.array(indexes, dtype=np.int32))
        self.routes = CompiledRoutes.compile(tables)
        # one flat array per table set: route (table, idx) -> code via offsets
        offsets = np.cumsum([0] + [len(k) for k in self.route_target])
        self._route_offset = offsets[:-1].astype(np.int64)
        self._target_flat = np.concatenate(self.route_target + [np.zeros(1, np.int8)])
        self._target_index_flat = np.concatenate(self.route_target_index + [np.zeros(1, np.int32)])

    def _compile_peerings(self, vpc_index: dict[str, int]) -> None:
        """Each peering connection seen from each of its sides (``2k``: from ``vpc_id`` to
        ``peer_vpc_id``, ``2k + 1``: back): the VPC it leads into (-1: not in the network),
        whether it is active, and the CIDR blocks of that VPC, the only destinations it carries."""
        t = self.topology
        self.peering_ids = list(t.vpc_peering_connections)
        peer_vpc: list[int] = []
        active: list[bool] = []
        ranges: list[tuple[int, int]] = []
        for k, pcx in enumerate(t.vpc_peering_connections.values()):
            for side, peer in enumerate((pcx.peer_vpc_id, pcx.vpc_id)):
                cidrs = t.vpcs[peer].cidrs if peer in t.vpcs else pcx.peer_cidrs
                peer_vpc.append(vpc_index.get(peer, -1))
                active.append(pcx.is_active)
                key = (2 * k + side) << 32
                spans = sorted((int(c.network_address), int(c.broadcast_address)) for c in cidrs)
                merged: list[list[int]] = []
                for lo, hi in spans:  # given peer_cidrs may overlap: one span each
                    if merged and lo <= merged[-1][1] + 1:
                        merged[-1][1] = max(merged[-1][1], hi)
                    else:
                        merged.append([lo, hi])
                ranges.extend((key | lo, key | hi) for lo, hi in merged)
        self.pcx_peer_vpc = np.array(peer_vpc, dtype=np.int32)
        self.pcx_active = np.array(active, dtype=np.uint8)
        self._pcx_lo = np.array([lo for lo, _ in ranges], dtype=np.uint64)
        self._pcx_hi = np.array([hi for _, hi in ranges], dtype=np.uint64)

    def _target(self, route: model.Route, nat_index: dict, endpoint_index: dict,
                vpc_id: str) -> tuple[Target, int]:
        if route.is_blackhole:
            return Target.BLACKHOLE, -1
        kind = route.target_kind
        if kind == "local":
            return Target.LOCAL, -1
        if kind == "igw":
            return Target.IGW, -1
        if kind == "nat":
            return Target.NAT, nat_index[route.target]
        if kind == "vpce":
            ep = self.topology.vpc_endpoints[route.target]
            return (Target.GATEWAY_ENDPOINT if ep.is_gateway else Target.UNMODELLED), endpoint_index[route.target]
        if kind == "eni":
            # "a route whose target is gone is a blackhole" (SPEC §4)
            index = self.eni_index.get(route.target, -1)
            return (Target.ENI, index) if index >= 0 else (Target.BLACKHOLE, -1)
        if kind == "pcx":
            # the side of the connection this route's VPC sends into (_compile_peerings)
            pcx = self.topology.vpc_peering_connections[route.target]
            return Target.PEERING, 2 * self.peering_ids.index(pcx.id) + (pcx.vpc_id != vpc_id)
        if route.target in self.topology.transit_gateways:
            # the transit gateway's attachment to this VPC (-1: the VPC is not attached)
            return Target.TGW, self.tgw_attachment_of.get((route.target, vpc_id), -1)
        return Target.UNMODELLED, -1

    def _compile_transit_gateways(self, subnet_index: dict[str, int], vpc_index: dict[str, int]) -> None:
        """Transit gateways as arrays (issue 16): per attachment its gateway, VPC, associated
        route table and subnets (one per Availability Zone, by AZ number ``subnet_az``); the
        transit gateway route tables as one more set of LPM tables, each route's target an
        attachment (-1: a blackhole). A VPC attachment propagates its VPC's CIDRs into the
        tables it propagates to; static routes win over propagated ones of the same prefix.
        A table that a VPN / Direct Connect attachment propagates to has routes this emulation
        cannot know (BGP): ``tgw_rtb_fallback`` names that attachment, where a packet no
        known route matches is taken to leave."""
        t = self.topology
        zones = {z: k for k, z in enumerate(dict.fromkeys(s.availability_zone for s in t.subnets.values()))}
        self.subnet_az = np.array([zones[t.subnets[s].availability_zone] for s in self.subnet_ids], dtype=np.int32)
        self.tgw_ids = list(t.transit_gateways)
        tgw_index = {g: k for k, g in enumerate(self.tgw_ids)}
        self.tgw_attachment_ids = list(t.transit_gateway_attachments)
        att_index = {a: k for k, a in enumerate(self.tgw_attachment_ids)}
        self.tgw_route_table_ids = list(t.transit_gateway_route_tables)
        rtb_index = {r: k for k, r in enumerate(self.tgw_route_table_ids)}
        atts = [t.transit_gateway_attachments[a] for a in self.tgw_attachment_ids]
        self.tgw_attachment_of = {(a.transit_gateway_id, a.resource_id): k for k, a in enumerate(atts)
                                  if a.resource_type == "vpc"}
        self.att_tgw = np.array([tgw_index[a.transit_gateway_id] for a in atts], dtype=np.int32)
        self.att_emulated = np.array([a.is_emulated for a in atts], dtype=np.uint8)
        self.att_vpc = np.array([vpc_index.get(a.resource_id, -1) if a.is_emulated else -1 for a in atts],
                                dtype=np.int32)
        self.att_rtb = np.array([rtb_index.get(a.route_table_id or "", -1) for a in atts], dtype=np.int32)
        counts = [len(a.subnet_ids) for a in atts]
        self.att_subnet_off = np.zeros(len(atts) + 1, np.int32)
        self.att_subnet_off[1:] = np.cumsum(counts, dtype=np.int64)
        self.att_subnets = np.array([subnet_index[s] for a in atts for s in a.subnet_ids], dtype=np.int32)
        tables, targets, fallback = [], [], []
        for rid in self.tgw_route_table_ids:
            rtb = t.transit_gateway_route_tables[rid]
            specs, route_att = [], []
            for route in rtb.routes:
                specs.append(RouteSpec.static(route.destination, ref=(rid, route)))
                route_att.append(att_index[route.attachment_id] if route.attachment_id is not None else -1)
            static = {r.destination for r in rtb.routes}
            seen: set = set()
            for att_id in rtb.propagations:
                att = t.transit_gateway_attachments[att_id]
                if not att.is_emulated or att.resource_id not in t.vpcs:
                    continue
                for cidr in t.vpcs[att.resource_id].cidrs:
                    # "A transit gateway doesn't support routing between VPCs with identical
                    # CIDRs": the later VPC's route is not propagated
                    if cidr in static or cidr in seen:
                        continue
                    seen.add(cidr)
                    specs.append(RouteSpec.static(cidr, ref=(rid, model.TransitGatewayRoute(cidr, att_id))))
                    route_att.append(att_index[att_id])
            tables.append(specs)
            targets.append(np.array(route_att, dtype=np.int32))
            fallback.append(next((att_index[a] for a in rtb.propagations
                                  if not t.transit_gateway_attachments[a].is_emulated), -1))
        self.tgw_routes = CompiledRoutes.compile(tables)
        self.tgw_route_offset = np.cumsum([0] + [len(x) for x in targets])[:-1].astype(np.int64)
        self.tgw_route_att = np.concatenate(targets + [np.zeros(1, np.int32)])
        self.tgw_rtb_fallback = np.array(fallback, dtype=np.int32)

    def tgw_route(self, table: int, route: int) -> tuple[str, model.TransitGatewayRoute | None]:
        """(transit gateway route table id, its route) behind a lookup's answer (route -1: None)."""
        spec = self.tgw_routes.route(table, route) if route >= 0 else None
        return self.tgw_route_table_ids[table], (spec.ref[1] if spec is not None else None)

    # -- lookups (vectorized) ------------------------------------------------------------------

    def eni_of_private_ip(self, ips: np.ndarray, vpc: np.ndarray | int | None = None) -> np.ndarray:
        """ENI index holding each address in VPC ``vpc`` (index; None: in any VPC) (-1: none)."""
        if vpc is None:
            return _lookup(self._private_ips, self._private_eni, ips)
        key = (np.asarray(vpc, dtype=np.uint64) << np.uint64(32)) | np.asarray(ips).astype(np.uint64)
        return _lookup(self._private_keys, self._private_key_eni, np.broadcast_to(key, np.shape(ips)))

    def public_ip_lookup(self, ips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ENI index, private address it maps to) for each public address (-1, 0: none)."""
        pos = np.searchsorted(self._public_ips, ips)
        pos = np.minimum(pos, max(len(self._public_ips) - 1, 0))
        if len(self._public_ips) == 0:
            return np.full(len(ips), -1, np.int32), np.zeros(len(ips), np.uint32)
        hit = self._public_ips[pos] == ips
        return (np.where(hit, self._public_eni[pos], -1).astype(np.int32),
                np.where(hit, self._public_private[pos], 0).astype(np.uint32))

    def subnet_of_ip(self, ips: np.ndarray, vpc: np.ndarray) -> np.ndarray:
        """The subnet (index) of each address within its VPC (-1: in no subnet)."""
        key = (vpc.astype(np.uint64) << np.uint64(32)) | ips.astype(np.uint64)
        if len(self._subnet_lo) == 0:
            return np.full(len(ips), -1, np.int32)
        pos = np.searchsorted(self._subnet_lo, key, side="right") - 1
        ok = (pos >= 0) & (key <= self._subnet_hi[np.maximum(pos, 0)])
        return np.where(ok, self._subnet_idx[np.maximum(pos, 0)], -1).astype(np.int32)

    def public_of_private_ip(self, ips: np.ndarray) -> np.ndarray:
        """The public address the internet gateway maps each private address to (0: none)."""
        return _lookup(self._private_with_public, self._public_of_private, ips, missing=0).astype(np.uint32)

    def route_targets(self, table: np.ndarray, route: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Target code, target index) for (table, route) pairs; route -1 gives Target.NONE."""
        flat = np.where(route >= 0, self._route_offset[table] + route, len(self._target_flat) - 1)
        kind = np.where(route >= 0, self._target_flat[flat], Target.NONE).astype(np.int8)
        return kind, np.where(route >= 0, self._target_index_flat[flat], -1).astype(np.int32)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray, missing: int = -1) -> np.ndarray:
    """values[k] where keys[k] == query (keys sorted), else ``missing``."""
    if len(keys) == 0:
        return np.full(len(query), missing, values.dtype)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[pos] == query, values[pos], missing).astype(values.dtype)
