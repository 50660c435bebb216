"""The rules a topology must obey, checked by :func:`validate_topology` (the loaders call it
once AWS's defaults are applied): each broken rule is a TopologyError naming the path."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Mapping, NoReturn

from hyperplane.errors import TopologyError
from hyperplane.model.resources import PEERING_STATUSES, Vpc, Subnet, Route, VpcConfig
from hyperplane.model.topology import Topology
from hyperplane.model.values import (
    ICMP, ALL_PORTS, MAX_NACL_RULE_NUMBER, MAX_SECURITY_GROUPS_PER_ENI, MAX_SUBNETS_PER_FUNCTION,
    MAX_NAT_GATEWAY_ADDRESSES, MANAGED_POLICIES, protocol_name, has_ports, route_target_kind,
    unmodelled_route_target, VPC_MIN_PREFIX, VPC_MAX_PREFIX,
)

_KIND_LABEL = {
    "vpcs": "VPC", "subnets": "subnet", "route_tables": "route table",
    "security_groups": "security group", "network_acls": "network ACL",
    "internet_gateways": "internet gateway", "nat_gateways": "NAT gateway",
    "prefix_lists": "prefix list", "vpc_endpoints": "VPC endpoint",
    "network_interfaces": "network interface", "vpc_peering_connections": "peering connection",
    "functions": "function", "transit_gateways": "transit gateway",
    "transit_gateway_attachments": "transit gateway attachment",
    "transit_gateway_route_tables": "transit gateway route table",
}
#: The targets a route more specific than its VPC's local route may have (AWS's "middlebox" routing).
_MIDDLEBOX_TARGETS = "a NAT gateway, an ENI or a Gateway Load Balancer endpoint"

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# a zone id: region code, then a zone (use1-az1), a Local Zone (usw2-lax1-az1) or Wavelength part
AZ_ID = re.compile(r"[a-z]+[0-9]+(-[a-z0-9]+)+")


def _is_private_ip(ip: IPv4Address) -> bool:
    return any(ip in net for net in _RFC1918)


_RFC1918 = (IPv4Network("10.0.0.0/8"), IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16"))


class _Checker:
    """Walks a topology, raising the first problem as a TopologyError with a document path."""

    def __init__(self, topology: Topology, file: str | None, where: Mapping[str, str] | None):
        self.t = topology
        self.file = file
        self.where = dict(where or {})

    def path(self, collection: str, key: str) -> str:
        return self.where.get(key) or f"{collection}[{key}]"

    def fail(self, where: str, problem: str) -> NoReturn:
        raise TopologyError(self.file, where, problem)

    def ref(self, where: str, collection: str, ref: str | None) -> Any:
        """The resource ``ref`` names in ``collection``, or a dangling-reference error."""
        found = getattr(self.t, collection).get(ref) if ref is not None else None
        if found is None:
            self.fail(where, f"refers to {_KIND_LABEL[collection]} {ref!r}, which is not defined")
        return found

    def one_subnet_per_az(self, base: str, subnet_ids: tuple[str, ...], vpc_id: str) -> None:
        """The subnets of an endpoint or a transit gateway attachment: in its VPC, one per AZ."""
        zones: dict[str, str] = {}
        for i, subnet_id in enumerate(subnet_ids):
            subnet = self.ref(f"{base}.subnet_ids[{i}]", "subnets", subnet_id)
            self.same_vpc(f"{base}.subnet_ids[{i}]", f"subnet {subnet_id}", subnet.vpc_id, vpc_id)
            if subnet.availability_zone in zones:
                self.fail(f"{base}.subnet_ids[{i}]", f"{subnet_id} and {zones[subnet.availability_zone]} are both in "
                          f"{subnet.availability_zone}: one subnet per Availability Zone")
            zones[subnet.availability_zone] = subnet_id

    def same_vpc(self, where: str, what: str, vpc_id: str, expected_vpc: str) -> None:
        if vpc_id != expected_vpc:
            self.fail(where, f"{what} is in {vpc_id}, not in {expected_vpc}")

    # -- per kind -------------------------------------------------------------------------

    def run(self) -> None:
        self.vpcs()
        self.subnets()
        self.prefix_lists()
        self.security_groups()
        self.network_acls()
        self.internet_gateways()
        self.peering()
        self.nat_gateways()
        self.endpoints()
        self.route_tables()
        self.network_interfaces()
        self.functions()
        self.transit_gateways()

    def vpcs(self) -> None:
        for vpc in self.t.vpcs.values():
            base = self.path("vpcs", vpc.id)
            if not vpc.cidrs:
                self.fail(f"{base}.cidrs", "a VPC needs at least one CIDR")
            for i, cidr in enumerate(vpc.cidrs):
                if not VPC_MIN_PREFIX <= cidr.prefixlen <= VPC_MAX_PREFIX:
                    self.fail(f"{base}.cidrs[{i}]", f"VPC CIDR {cidr} must be between /16 and /28")
                for j in range(i):
                    if cidr.overlaps(vpc.cidrs[j]):
                        self.fail(f"{base}.cidrs[{i}]", f"{cidr} overlaps the VPC's CIDR {vpc.cidrs[j]}")
            rtb = self.ref(f"{base}.main_route_table_id", "route_tables", vpc.main_route_table_id)
            self.same_vpc(f"{base}.main_route_table_id", f"route table {rtb.id}", rtb.vpc_id, vpc.id)
            acl = self.ref(f"{base}.default_network_acl_id", "network_acls", vpc.default_network_acl_id)
            self.same_vpc(f"{base}.default_network_acl_id", f"network ACL {acl.id}", acl.vpc_id, vpc.id)
            sg = self.ref(f"{base}.default_security_group_id", "security_groups", vpc.default_security_group_id)
            self.same_vpc(f"{base}.default_security_group_id", f"security group {sg.id}", sg.vpc_id, vpc.id)
        for rtb in self.t.route_tables.values():
            owner = self.t.vpcs.get(rtb.vpc_id)
            is_main = owner is not None and owner.main_route_table_id == rtb.id
            if rtb.is_main != is_main:
                self.fail(self.path("route_tables", rtb.id), "is_main disagrees with the VPC's main_route_table_id")
        for acl in self.t.network_acls.values():
            owner = self.t.vpcs.get(acl.vpc_id)
            is_default = owner is not None and owner.default_network_acl_id == acl.id
            if acl.is_default != is_default:
                self.fail(self.path("network_acls", acl.id), "is_default disagrees with the VPC's default_network_acl_id")

    def subnets(self) -> None:
        seen: dict[str, list[Subnet]] = {}
        for subnet in self.t.subnets.values():
            base = self.path("subnets", subnet.id)
            vpc = self.ref(f"{base}.vpc_id", "vpcs", subnet.vpc_id)
            if not VPC_MIN_PREFIX <= subnet.cidr.prefixlen <= VPC_MAX_PREFIX:
                self.fail(f"{base}.cidr", f"subnet CIDR {subnet.cidr} must be between /16 and /28")
            if not any(subnet.cidr.subnet_of(c) for c in vpc.cidrs):
                cidrs = ", ".join(str(c) for c in vpc.cidrs)
                self.fail(f"{base}.cidr", f"{subnet.cidr} is not inside {vpc.id} ({cidrs})")
            for other in seen.get(vpc.id, []):
                if subnet.cidr.overlaps(other.cidr):
                    self.fail(f"{base}.cidr", f"{subnet.cidr} overlaps {other.id} ({other.cidr})")
            seen.setdefault(vpc.id, []).append(subnet)
            rtb = self.ref(f"{base}.route_table_id", "route_tables", subnet.route_table_id)
            self.same_vpc(f"{base}.route_table_id", f"route table {rtb.id}", rtb.vpc_id, vpc.id)
            acl = self.ref(f"{base}.network_acl_id", "network_acls", subnet.network_acl_id)
            self.same_vpc(f"{base}.network_acl_id", f"network ACL {acl.id}", acl.vpc_id, vpc.id)
            if not subnet.availability_zone:
                self.fail(f"{base}.availability_zone", "a subnet needs an availability zone")
            if subnet.availability_zone_id is not None and not AZ_ID.fullmatch(subnet.availability_zone_id):
                self.fail(f"{base}.availability_zone_id", f"{subnet.availability_zone_id!r} is not an Availability "
                          "Zone id (like use1-az1)")

    def prefix_lists(self) -> None:
        for pl in self.t.prefix_lists.values():
            base = self.path("prefix_lists", pl.id)
            if len(set(pl.cidrs)) != len(pl.cidrs):
                self.fail(f"{base}.cidrs", "lists the same CIDR twice")

    def _ports(self, where: str, protocol: int, port_range: tuple[int, int], icmp: tuple[int, int]) -> None:
        low, high = port_range
        if not (0 <= low <= high <= 65535):
            self.fail(where, f"port range {low}-{high} is not within 0-65535 (from <= to)")
        if not has_ports(protocol) and port_range != ALL_PORTS:
            self.fail(where, f"protocol {protocol_name(protocol)} has no ports")
        if protocol != ICMP and icmp != (-1, -1):
            self.fail(where, "icmp_type/icmp_code only apply to protocol icmp")
        if not (-1 <= icmp[0] <= 255 and -1 <= icmp[1] <= 255):
            self.fail(where, f"ICMP type/code {icmp} must be -1 (any) or 0-255")

    def security_groups(self) -> None:
        for sg in self.t.security_groups.values():
            base = self.path("security_groups", sg.id)
            self.ref(f"{base}.vpc_id", "vpcs", sg.vpc_id)
            for direction, rules in (("ingress", sg.ingress), ("egress", sg.egress)):
                for i, rule in enumerate(rules):
                    where = f"{base}.{direction}[{i}]"
                    if rule.egress != (direction == "egress"):
                        self.fail(where, f"rule direction disagrees with the {direction} list")
                    self._ports(where, rule.protocol, rule.port_range, (rule.icmp_type, rule.icmp_code))
                    if rule.prefix_list_id is not None:
                        self.ref(f"{where}.prefix_list_id", "prefix_lists", rule.prefix_list_id)
                    if rule.security_group_id is not None:
                        self.ref(f"{where}.security_group_id", "security_groups", rule.security_group_id)

    def network_acls(self) -> None:
        for acl in self.t.network_acls.values():
            base = self.path("network_acls", acl.id)
            self.ref(f"{base}.vpc_id", "vpcs", acl.vpc_id)
            index = {False: 0, True: 0}
            seen: dict[tuple[bool, int], int] = {}
            for entry in acl.entries:
                direction = "egress" if entry.egress else "ingress"
                where = f"{base}.{direction}[{index[entry.egress]}]"
                index[entry.egress] += 1
                if not 1 <= entry.rule_number <= MAX_NACL_RULE_NUMBER:
                    self.fail(f"{where}.rule_number", f"rule number {entry.rule_number} is not within 1-32766")
                key = (entry.egress, entry.rule_number)
                if key in seen:
                    self.fail(f"{where}.rule_number",
                              f"rule number {entry.rule_number} is used twice in {direction} "
                              f"(also {direction}[{seen[key]}])")
                seen[key] = index[entry.egress] - 1
                if entry.rule_action not in ("allow", "deny"):
                    self.fail(f"{where}.rule_action", f"{entry.rule_action!r} is not allow or deny")
                self._ports(where, entry.protocol, entry.port_range, (entry.icmp_type, entry.icmp_code))

    def internet_gateways(self) -> None:
        attached: dict[str, str] = {}
        for igw in self.t.internet_gateways.values():
            base = self.path("internet_gateways", igw.id)
            if igw.vpc_id is None:
                continue
            self.ref(f"{base}.vpc_id", "vpcs", igw.vpc_id)
            if igw.vpc_id in attached:
                self.fail(f"{base}.vpc_id", f"{igw.vpc_id} already has internet gateway {attached[igw.vpc_id]} (one per VPC)")
            attached[igw.vpc_id] = igw.id

    def peering(self) -> None:
        for pcx in self.t.vpc_peering_connections.values():
            base = self.path("vpc_peering_connections", pcx.id)
            self.ref(f"{base}.vpc_id", "vpcs", pcx.vpc_id)
            if pcx.peer_vpc_id not in self.t.vpcs and not pcx.peer_cidrs:
                self.fail(f"{base}.peer_cidrs", f"peer VPC {pcx.peer_vpc_id} is not in the topology: give its peer_cidrs")
            if pcx.status not in PEERING_STATUSES:
                self.fail(f"{base}.status", f"unknown peering connection status {pcx.status!r} "
                                            f"(one of {', '.join(PEERING_STATUSES)})")

    def transit_gateways(self) -> None:
        for att in self.t.transit_gateway_attachments.values():
            base = self.path("transit_gateway_attachments", att.id)
            self.ref(f"{base}.transit_gateway_id", "transit_gateways", att.transit_gateway_id)
            if att.route_table_id is not None:
                rtb = self.ref(f"{base}.route_table_id", "transit_gateway_route_tables", att.route_table_id)
                if rtb.transit_gateway_id != att.transit_gateway_id:
                    self.fail(f"{base}.route_table_id", f"{rtb.id} is a route table of {rtb.transit_gateway_id}, "
                              f"not of {att.transit_gateway_id}")
            if att.resource_type != "vpc":
                if att.subnet_ids:
                    self.fail(f"{base}.subnet_ids", f"a {att.resource_type} attachment has no subnets")
                continue
            self.ref(f"{base}.resource_id", "vpcs", att.resource_id)
            if not att.subnet_ids:
                self.fail(f"{base}.subnet_ids", "a VPC attachment needs a subnet in at least one Availability Zone")
            self.one_subnet_per_az(base, att.subnet_ids, att.resource_id)
            for other in self.t.transit_gateway_attachments.values():
                if (other.id != att.id and other.resource_type == "vpc" and other.resource_id == att.resource_id
                        and other.transit_gateway_id == att.transit_gateway_id):
                    self.fail(f"{base}.resource_id", f"{att.resource_id} is already attached to "
                              f"{att.transit_gateway_id} by {other.id}")
        for rtb in self.t.transit_gateway_route_tables.values():
            base = self.path("transit_gateway_route_tables", rtb.id)
            self.ref(f"{base}.transit_gateway_id", "transit_gateways", rtb.transit_gateway_id)
            for j, route in enumerate(rtb.routes):
                if route.attachment_id is None:
                    continue
                att = self.ref(f"{base}.routes[{j}].attachment_id", "transit_gateway_attachments", route.attachment_id)
                if att.transit_gateway_id != rtb.transit_gateway_id:
                    self.fail(f"{base}.routes[{j}].attachment_id", f"{att.id} is an attachment of "
                              f"{att.transit_gateway_id}, not of {rtb.transit_gateway_id}")
            for j, att_id in enumerate(rtb.propagations):
                att = self.ref(f"{base}.propagations[{j}]", "transit_gateway_attachments", att_id)
                if att.transit_gateway_id != rtb.transit_gateway_id:
                    self.fail(f"{base}.propagations[{j}]", f"{att.id} is an attachment of "
                              f"{att.transit_gateway_id}, not of {rtb.transit_gateway_id}")

    def nat_gateways(self) -> None:
        for nat in self.t.nat_gateways.values():
            base = self.path("nat_gateways", nat.id)
            subnet = self.ref(f"{base}.subnet_id", "subnets", nat.subnet_id)
            if nat.connectivity_type not in ("public", "private"):
                self.fail(f"{base}.connectivity_type", f"{nat.connectivity_type!r} is not public or private")
            if nat.is_public and not nat.elastic_ips:
                self.fail(f"{base}.elastic_ips", "a public NAT gateway needs at least one Elastic IP")
            if not nat.is_public and nat.elastic_ips:
                self.fail(f"{base}.elastic_ips", "a private NAT gateway has no Elastic IP")
            if len(nat.elastic_ips) > MAX_NAT_GATEWAY_ADDRESSES:
                self.fail(f"{base}.elastic_ips", f"{len(nat.elastic_ips)} Elastic IPs: a NAT gateway has at most {MAX_NAT_GATEWAY_ADDRESSES} addresses")
            if not 1 <= len(nat.private_ips) <= MAX_NAT_GATEWAY_ADDRESSES:
                self.fail(f"{base}.secondary_private_ips", f"{len(nat.private_ips)} private IPs: a NAT gateway has 1 to {MAX_NAT_GATEWAY_ADDRESSES} addresses")
            if nat.is_public and len(nat.private_ips) != len(nat.elastic_ips):
                self.fail(f"{base}.secondary_private_ips", "a public NAT gateway pairs each Elastic IP with one private IP")
            eni = self.ref(f"{base}.network_interface_id", "network_interfaces", nat.network_interface_id)
            if eni.kind != "nat_gateway" or eni.managed_by != nat.id or eni.subnet_id != subnet.id \
                    or eni.private_ips != nat.private_ips:
                self.fail(f"{base}.network_interface_id", f"{eni.id} is not this NAT gateway's interface")

    def endpoints(self) -> None:
        for ep in self.t.vpc_endpoints.values():
            base = self.path("vpc_endpoints", ep.id)
            self.ref(f"{base}.vpc_id", "vpcs", ep.vpc_id)
            if ep.endpoint_type == "gateway":
                if ep.subnet_ids or ep.security_group_ids or ep.network_interface_ids or ep.dns_names:
                    self.fail(base, "a gateway endpoint has no subnets, security groups, ENIs or DNS names")
                self.ref(f"{base}.prefix_list_id", "prefix_lists", ep.prefix_list_id)
                for i, rtb_id in enumerate(ep.route_table_ids):
                    rtb = self.ref(f"{base}.route_table_ids[{i}]", "route_tables", rtb_id)
                    self.same_vpc(f"{base}.route_table_ids[{i}]", f"route table {rtb_id}", rtb.vpc_id, ep.vpc_id)
                    if not any(r.target == ep.id and r.destination == ep.prefix_list_id for r in rtb.routes):
                        self.fail(f"{base}.route_table_ids[{i}]", f"route table {rtb_id} has no route {ep.prefix_list_id} -> {ep.id}")
            elif ep.endpoint_type == "interface":
                if ep.route_table_ids or ep.prefix_list_id:
                    self.fail(base, "an interface endpoint has no route tables or prefix list")
                if not ep.subnet_ids:
                    self.fail(f"{base}.subnet_ids", "an interface endpoint needs at least one subnet")
                self.one_subnet_per_az(base, ep.subnet_ids, ep.vpc_id)
                self._group_list(f"{base}.security_group_ids", ep.security_group_ids, ep.vpc_id, "an endpoint")
                covered = []
                for i, eni_id in enumerate(ep.network_interface_ids):
                    eni = self.ref(f"{base}.network_interfaces[{i}]", "network_interfaces", eni_id)
                    if eni.kind != "vpc_endpoint" or eni.managed_by != ep.id:
                        self.fail(f"{base}.network_interfaces[{i}]", f"{eni_id} is not this endpoint's interface")
                    if eni.subnet_id not in ep.subnet_ids:
                        self.fail(f"{base}.network_interfaces[{i}].subnet_id", f"{eni.subnet_id} is not one of the endpoint's subnets")
                    if eni.security_group_ids != ep.security_group_ids:
                        self.fail(f"{base}.network_interfaces[{i}]", f"{eni_id} does not carry the endpoint's security groups")
                    covered.append(eni.subnet_id)
                if sorted(covered) != sorted(ep.subnet_ids):
                    self.fail(f"{base}.network_interfaces", "an interface endpoint has exactly one ENI per subnet")
            elif ep.endpoint_type == "gateway_load_balancer":
                if (ep.route_table_ids or ep.prefix_list_id or ep.subnet_ids or ep.security_group_ids
                        or ep.network_interface_ids or ep.dns_names or ep.private_dns_enabled):
                    self.fail(base, "a Gateway Load Balancer endpoint is only a route target: it has no route tables, "
                                    "prefix list, subnets, security groups, ENIs or DNS names")
            else:
                self.fail(f"{base}.type", f"{ep.endpoint_type!r} is not gateway, interface or gateway_load_balancer")

    def _group_list(self, where: str, group_ids: tuple[str, ...], vpc_id: str, owner: str,
                    minimum: int = 1) -> None:
        if len(group_ids) < minimum:
            self.fail(where, f"{owner} needs at least {minimum} security group")
        if len(group_ids) > MAX_SECURITY_GROUPS_PER_ENI:
            self.fail(where, f"{len(group_ids)} security groups: at most {MAX_SECURITY_GROUPS_PER_ENI} per {owner.split()[-1]}")
        if len(set(group_ids)) != len(group_ids):
            self.fail(where, "lists the same security group twice")
        for i, sg_id in enumerate(group_ids):
            sg = self.ref(f"{where}[{i}]", "security_groups", sg_id)
            self.same_vpc(f"{where}[{i}]", f"security group {sg_id}", sg.vpc_id, vpc_id)

    def route_tables(self) -> None:
        for rtb in self.t.route_tables.values():
            base = self.path("route_tables", rtb.id)
            vpc = self.ref(f"{base}.vpc_id", "vpcs", rtb.vpc_id)
            subnet_cidrs = {s.cidr for s in self.t.subnets_in(vpc.id)}
            destinations: dict[object, int] = {}
            local: set[IPv4Network] = set()
            for i, route in enumerate(rtb.routes):
                where = f"{base}.routes[{i}]"
                if route.destination in destinations:
                    self.fail(f"{where}.destination", f"destination {route.destination} appears twice (also routes[{destinations[route.destination]}])")
                destinations[route.destination] = i
                if route.state not in ("active", "blackhole"):
                    self.fail(f"{where}.state", f"{route.state!r} is not active or blackhole")
                kind = route.target_kind if unmodelled_route_target(route.target) else route_target_kind(route.target)
                if kind is None:
                    self.fail(f"{where}.target", f"unknown route target {route.target!r} (use local, igw-, nat-, vpce-, eni- or pcx-)")
                cidr = route.destination_cidr
                prefix_list = None
                if cidr is None:
                    prefix_list = self.ref(f"{where}.destination", "prefix_lists", route.destination_prefix_list_id)
                if kind == "local":
                    if cidr is None or cidr not in vpc.cidrs:
                        self.fail(f"{where}.destination", f"a local route must be one of the VPC's CIDRs, not {route.destination}")
                    local.add(cidr)
                    continue
                if prefix_list is not None:
                    # A prefix list stands for its CIDRs: one inside the VPC makes the route more
                    # specific than the local route, under the same target rule as a CIDR route.
                    inside = next((c for c in prefix_list.cidrs if any(c.subnet_of(v) for v in vpc.cidrs)), None)
                    if inside is not None and not self._middlebox_target(route, kind):
                        self.fail(f"{where}.target", f"a route more specific than the local route ({prefix_list.id} holds {inside}) may only target {_MIDDLEBOX_TARGETS}, not {route.target}")
                if cidr is not None and any(cidr.subnet_of(c) for c in vpc.cidrs):
                    if not self._middlebox_target(route, kind):
                        self.fail(f"{where}.target", f"a route more specific than the local route ({cidr}) may only target {_MIDDLEBOX_TARGETS}, not {route.target}")
                    if cidr not in subnet_cidrs:
                        self.fail(f"{where}.destination", f"a route more specific than the local route must match a whole subnet CIDR; {cidr} is no subnet of {vpc.id}")
                if route.is_blackhole:
                    continue  # its target is gone, by definition
                self._route_target(where, route, kind, vpc)
            for cidr in vpc.cidrs:
                if cidr not in local:
                    self.fail(f"{base}.routes", f"the local route for the VPC CIDR {cidr} is missing")

    def _middlebox_target(self, route: Route, kind: str) -> bool:
        """Whether ``route`` may be more specific than the local route: AWS allows that only
        towards a NAT gateway, an ENI or a Gateway Load Balancer endpoint (a blackhole route
        to an endpoint that is gone may have been one)."""
        if kind in ("nat", "eni"):
            return True
        if kind != "vpce":
            return False
        ep = self.t.vpc_endpoints.get(route.target)
        return ep.is_gateway_load_balancer if ep is not None else route.is_blackhole

    def _route_target(self, where: str, route: Route, kind: str, vpc: Vpc) -> None:
        target = route.target
        at = f"{where}.target"
        if kind == "igw":
            igw = self.ref(at, "internet_gateways", target)
            if igw.vpc_id != vpc.id:
                self.fail(at, f"internet gateway {target} is not attached to {vpc.id}")
        elif kind == "nat":
            nat = self.ref(at, "nat_gateways", target)
            self.same_vpc(at, f"NAT gateway {target}", self.t.subnets[nat.subnet_id].vpc_id, vpc.id)
        elif kind == "eni":
            eni = self.ref(at, "network_interfaces", target)
            self.same_vpc(at, f"network interface {target}", self.t.subnets[eni.subnet_id].vpc_id, vpc.id)
        elif kind == "pcx":
            pcx = self.ref(at, "vpc_peering_connections", target)
            if vpc.id not in (pcx.vpc_id, pcx.peer_vpc_id):
                self.fail(at, f"peering connection {target} does not involve {vpc.id}")
        elif kind == "vpce":
            ep = self.ref(at, "vpc_endpoints", target)
            self.same_vpc(at, f"VPC endpoint {target}", ep.vpc_id, vpc.id)
            if ep.is_gateway_load_balancer:
                return  # any destination; the data plane stops there (not emulated)
            if not ep.is_gateway:
                self.fail(at, f"{target} is an interface endpoint; only gateway and Gateway Load Balancer endpoints are route targets")
            if route.destination != ep.prefix_list_id:
                self.fail(f"{where}.destination", f"a route to gateway endpoint {target} must have its prefix list {ep.prefix_list_id} as destination")

    def network_interfaces(self) -> None:
        by_address: dict[tuple[str, IPv4Address], str] = {}
        public: dict[IPv4Address, str] = {}
        for eni in self.t.network_interfaces.values():
            base = self.path("network_interfaces", eni.id)
            subnet = self.ref(f"{base}.subnet_id", "subnets", eni.subnet_id)
            for j, ip in enumerate(eni.private_ips):
                at = f"{base}.private_ip" if j == 0 else f"{base}.secondary_private_ips[{j - 1}]"
                if ip not in subnet.cidr:
                    self.fail(at, f"{ip} is not inside {subnet.id} ({subnet.cidr})")
                if subnet.is_reserved(ip):
                    self.fail(at, f"{ip} is one of the five addresses AWS reserves in {subnet.id} ({subnet.cidr})")
                key = (subnet.vpc_id, ip)
                if key in by_address:
                    self.fail(at, f"{ip} is already used by {by_address[key]}")
                by_address[key] = eni.id
            if eni.public_ip is not None:
                if _is_private_ip(eni.public_ip):
                    self.fail(f"{base}.public_ip", f"{eni.public_ip} is a private (RFC 1918) address")
                if eni.public_ip in public:
                    self.fail(f"{base}.public_ip", f"{eni.public_ip} is already used by {public[eni.public_ip]}")
                public[eni.public_ip] = eni.id
            if eni.kind == "nat_gateway":
                if eni.security_group_ids:
                    self.fail(f"{base}.security_group_ids", "a NAT gateway's interface has no security groups")
            else:
                self._group_list(f"{base}.security_group_ids", eni.security_group_ids, subnet.vpc_id, "an ENI")
            if eni.managed_by is not None and eni.managed_by not in self.t:
                self.fail(base, f"managed by {eni.managed_by!r}, which is not defined")
        for nat in self.t.nat_gateways.values():
            for i, eip in enumerate(nat.elastic_ips):
                owner = public.get(eip.public_ip)
                if owner is not None and owner != nat.network_interface_id:
                    self.fail(f"{self.path('nat_gateways', nat.id)}.elastic_ips[{i}].public_ip",
                              f"{eip.public_ip} is already used by {owner}")
                public[eip.public_ip] = nat.network_interface_id

    def functions(self) -> None:
        for fn in self.t.functions.values():
            base = self.path("functions", fn.name)
            if not _FUNCTION_NAME.match(fn.name):
                self.fail(f"{base}.name", f"{fn.name!r} is not a valid function name (1-64 of A-Za-z0-9_-)")
            for policy in fn.role.managed_policies:
                if policy not in MANAGED_POLICIES:
                    self.fail(f"{base}.role.managed_policies", f"unknown managed policy {policy!r} (known: {', '.join(MANAGED_POLICIES)})")
            if fn.vpc_config is not None:
                self._vpc_config(f"{base}.vpc_config", fn.vpc_config)
            versions: dict[str, int] = {}
            for i, version in enumerate(fn.versions):
                at = f"{base}.versions[{i}]"
                if not (version.version.isascii() and version.version.isdigit()) or not version.version.lstrip("0"):
                    self.fail(f"{at}.version", f"{version.version!r} is not a version number (1, 2, ...)")
                if version.version in versions:
                    self.fail(f"{at}.version", f"version {version.version} is published twice")
                versions[version.version] = i
                if version.vpc_config is not None:
                    self._vpc_config(f"{at}.vpc_config", version.vpc_config)

    def _vpc_config(self, where: str, config: VpcConfig) -> None:
        if not config.subnet_ids:
            self.fail(f"{where}.subnet_ids", "a VpcConfig needs at least one subnet")
        if len(config.subnet_ids) > MAX_SUBNETS_PER_FUNCTION:
            self.fail(f"{where}.subnet_ids", f"{len(config.subnet_ids)} subnets: at most {MAX_SUBNETS_PER_FUNCTION} per function")
        if len(set(config.subnet_ids)) != len(config.subnet_ids):
            self.fail(f"{where}.subnet_ids", "lists the same subnet twice")
        vpc_id = None
        for i, subnet_id in enumerate(config.subnet_ids):
            subnet = self.ref(f"{where}.subnet_ids[{i}]", "subnets", subnet_id)
            if vpc_id is None:
                vpc_id = subnet.vpc_id
            self.same_vpc(f"{where}.subnet_ids[{i}]", f"subnet {subnet_id}", subnet.vpc_id, vpc_id)
        assert vpc_id is not None
        self._group_list(f"{where}.security_group_ids", config.security_group_ids, vpc_id, "a function")


def validate_topology(
    topology: Topology,
    *,
    file: str | None = None,
    where: Mapping[str, str] | None = None,
) -> None:
    """Check every rule a topology must obey; raise the first broken one as a TopologyError.

    ``where`` maps a resource id (function name) to its path in the source document, e.g.
    ``{"subnet-a": "subnets[2]"}``, so errors point into the file; without it, errors say
    ``subnets[subnet-a]``. Checked: CIDR sizes and containment, overlapping subnets, dangling
    references of every kind, NACL rule numbers (range, duplicates per direction), route
    targets (kind, existence, VPC, local-route specificity), one internet gateway per VPC, NAT
    gateway addresses, endpoint shapes, ENI addresses (inside the subnet, not reserved, not
    duplicated), security group counts (1-5) and VPC, function VpcConfig limits (16 subnets,
    5 groups, one VPC).
    """
    _Checker(topology, file, where).run()


Topology._checker = validate_topology
