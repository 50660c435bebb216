"""The readers of a snapshot's rules: security group permissions, network ACL entries, route
tables and their routes' targets."""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from typing import Any, Mapping

from hyperplane.formats._snapshot_fields import (
    _GONE_STATES, _GWLB, _UNMODELLED_TARGET_KEYS, _Item, _suffix, _tag_name, _text,
)
from hyperplane.formats.snapshot_resources import _Resources
from hyperplane.model import (
    ALL_PORTS, ANY_IPV4, ICMP, IMPLICIT_DENY_RULE_NUMBER, PROTOCOL_ALL, NetworkAcl, NetworkAclEntry, Route, RouteTable,
    SecurityGroup, SecurityGroupRule, has_ports, route_target_kind, unmodelled_route_target,
)


class _Rules(_Resources):
    """Reads security groups, network ACLs and route tables."""

    # security groups -------------------------------------------------------------------------------

    def build_security_groups(self) -> dict[str, SecurityGroup]:
        out = {}
        for sg_id, item in self.sg_items.items():
            rules: dict[bool, list[SecurityGroupRule]] = {False: [], True: []}
            for egress, key in ((False, "IpPermissions"), (True, "IpPermissionsEgress")):
                for perm in self.sub(item, key, required=False):
                    rules[egress].extend(self.permission(perm, egress, item))
            out[sg_id] = SecurityGroup(sg_id, item.data["VpcId"], self.get(item, "GroupName", required=False, default=sg_id),
                                       tuple(rules[False]), tuple(rules[True]), _text(item.data.get("Description")))
        return out

    def permission(self, perm: _Item, egress: bool, group: _Item) -> list[SecurityGroupRule]:
        raw = perm.data.get("IpProtocol")
        if raw is None:
            self.fail(perm.file, perm.at("IpProtocol"), "required field 'IpProtocol' is missing")
        if str(raw).lower() in ("icmpv6", "58"):
            self.report.skip("security group rules (ICMPv6)")
            return []
        protocol = self.protocol(perm, "IpProtocol", raw)
        port_range, icmp_type, icmp_code = ALL_PORTS, -1, -1
        low = perm.data.get("FromPort")
        high = perm.data.get("ToPort")
        for key, value in (("FromPort", low), ("ToPort", high)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not -1 <= value <= 65535):
                self.fail(perm.file, perm.at(key), f"expected a port -1..65535, got {json.dumps(value)[:40]}")
        if has_ports(protocol) and low is not None and high is not None and low != -1:
            if low > high:
                self.fail(perm.file, perm.at("FromPort"), f"FromPort {low} is greater than ToPort {high}")
            port_range = (low, high)
        elif protocol == ICMP:
            icmp_type = low if isinstance(low, int) and low <= 255 else -1
            icmp_code = high if isinstance(high, int) and high <= 255 else -1
            if icmp_type == -1:
                icmp_code = -1
        def rule(peer: _Item, cidr: IPv4Network | None = None, prefix_list_id: str | None = None,
                 security_group_id: str | None = None) -> SecurityGroupRule:
            return SecurityGroupRule(egress, protocol, port_range, icmp_type, icmp_code, cidr, prefix_list_id,
                                     security_group_id, _text(peer.data.get("Description")))

        out = []
        for r in self.sub(perm, "IpRanges", required=False):
            cidr = self.cidr(r, "CidrIp")
            out.append(rule(r, cidr=cidr))
        ipv6 = perm.data.get("Ipv6Ranges")
        if isinstance(ipv6, list) and ipv6:
            self.report.skip("security group rules (IPv6 ranges)", len(ipv6))
        for r in self.sub(perm, "PrefixListIds", required=False):
            pl_id = self.get(r, "PrefixListId")
            if pl_id in self.skipped_ids:
                continue
            self.ref(r, "PrefixListId", self.prefix_lists, "prefix list")
            out.append(rule(r, prefix_list_id=pl_id))
        for r in self.sub(perm, "UserIdGroupPairs", required=False):
            peer = self.get(r, "GroupId")
            if peer not in self.sg_items:
                foreign = r.data.get("VpcPeeringConnectionId") or (
                    isinstance(r.data.get("UserId"), str) and isinstance(group.data.get("OwnerId"), str)
                    and r.data["UserId"] != group.data["OwnerId"])
                if foreign:
                    self.note(f"{group.data['GroupId']}: the rule naming {peer} (another account or a peer VPC) "
                              "is not emulated")
                    self.report.skip("security group rules (groups of other accounts / peer VPCs)")
                    continue
                self.ref(r, "GroupId", self.sg_items, "security group")
            out.append(rule(r, security_group_id=peer))
        return out

    # network ACLs ----------------------------------------------------------------------------------

    def build_network_acls(self) -> tuple[dict[str, NetworkAcl], dict[str, str], dict[str, str]]:
        out, of_subnet, default = {}, {}, {}
        for acl_id, item in self.acl_items.items():
            vpc_id = item.data["VpcId"]
            is_default = item.data.get("IsDefault") is True
            if is_default:
                default[vpc_id] = acl_id
            entries = []
            for entry in self.sub(item, "Entries", required=False):
                number = self.get(entry, "RuleNumber", int)
                if number == IMPLICIT_DENY_RULE_NUMBER:
                    continue  # the implicit deny, which the model adds itself
                if entry.data.get("CidrBlock") is None and entry.data.get("Ipv6CidrBlock") is not None:
                    self.report.skip("network ACL entries (IPv6)")
                    continue
                egress = self.get(entry, "Egress", bool)
                protocol = self.protocol(entry, "Protocol", self.get(entry, "Protocol", (str, int)))
                action = self.get(entry, "RuleAction").lower()
                if action not in ("allow", "deny"):
                    self.fail(entry.file, entry.at("RuleAction"), f"{action!r} is not allow or deny")
                port_range, icmp = ALL_PORTS, (-1, -1)
                if has_ports(protocol) and isinstance(entry.data.get("PortRange"), dict):
                    pr = self.sub(entry, "PortRange", 0)[0]
                    port_range = (self.get(pr, "From", int), self.get(pr, "To", int))
                elif protocol == ICMP and isinstance(entry.data.get("IcmpTypeCode"), dict):
                    tc = self.sub(entry, "IcmpTypeCode", 0)[0]
                    icmp = (self.get(tc, "Type", int, required=False, default=-1),
                            self.get(tc, "Code", int, required=False, default=-1))
                    if icmp[0] == -1:
                        icmp = (-1, -1)
                entries.append(NetworkAclEntry(number, egress, protocol, action, self.cidr(entry, "CidrBlock"),
                                               port_range, icmp[0], icmp[1]))
            for assoc in self.sub(item, "Associations", required=False):
                subnet_id = self.get(assoc, "SubnetId")
                if subnet_id in self.skipped_ids:
                    continue
                self.ref(assoc, "SubnetId", self.subnet_items, "subnet")
                of_subnet[subnet_id] = acl_id
            out[acl_id] = NetworkAcl(acl_id, vpc_id, tuple(entries), is_default, _tag_name(item.data))
        for vpc_id in self.vpc_items:
            if vpc_id not in default:
                acl_id = f"acl-{_suffix(vpc_id)}-default"
                self.note(f"{vpc_id}: no default network ACL in the snapshot; created {acl_id} allowing everything, as AWS does")
                allow_all = tuple(NetworkAclEntry(100, e, PROTOCOL_ALL, "allow", ANY_IPV4) for e in (False, True))
                out[acl_id] = NetworkAcl(acl_id, vpc_id, allow_all, True)
                default[vpc_id] = acl_id
        return out, of_subnet, default

    # route tables ----------------------------------------------------------------------------------

    def build_route_tables(self) -> tuple[dict[str, RouteTable], dict[str, str], dict[str, str]]:
        of_subnet, main = {}, {}
        for rtb_id, item in self.rtb_items.items():
            for assoc in self.sub(item, "Associations", required=False):
                state = assoc.data.get("AssociationState")
                if isinstance(state, dict) and state.get("State") not in (None, "associated", "associating"):
                    continue
                if assoc.data.get("Main") is True:
                    main[item.data["VpcId"]] = rtb_id
                elif assoc.data.get("SubnetId") is not None:
                    subnet_id = self.get(assoc, "SubnetId")
                    if subnet_id in self.skipped_ids:
                        continue
                    self.ref(assoc, "SubnetId", self.subnet_items, "subnet")
                    of_subnet[subnet_id] = rtb_id
                elif assoc.data.get("GatewayId") is not None:
                    self.report.skip("route table gateway associations (ingress routing)")
        out = {}
        for rtb_id, item in self.rtb_items.items():
            vpc_id = item.data["VpcId"]
            out[rtb_id] = RouteTable(rtb_id, vpc_id, self.routes(item, vpc_id), main.get(vpc_id) == rtb_id, _tag_name(item.data))
        for vpc_id, cidrs in self.vpc_cidrs.items():
            if vpc_id not in main:
                rtb_id = f"rtb-{_suffix(vpc_id)}-main"
                self.note(f"{vpc_id}: no main route table in the snapshot; created {rtb_id} with the local routes, as AWS does")
                out[rtb_id] = RouteTable(rtb_id, vpc_id, tuple(Route(c, "local") for c in cidrs), True)
                main[vpc_id] = rtb_id
        return out, of_subnet, main

    def routes(self, item: _Item, vpc_id: str) -> tuple[Route, ...]:
        cidrs = self.vpc_cidrs[vpc_id]
        routes: dict[Any, tuple[Route, bool]] = {}  # destination -> (route, propagated)
        for r in self.sub(item, "Routes", required=False):
            if r.data.get("DestinationCidrBlock") is None and r.data.get("DestinationPrefixListId") is None:
                if r.data.get("DestinationIpv6CidrBlock") is not None:
                    self.report.skip("routes (IPv6)")
                    continue
                self.fail(r.file, r.at("DestinationCidrBlock"), "required field 'DestinationCidrBlock' (or DestinationPrefixListId) is missing")
            if r.data.get("DestinationCidrBlock") is not None:
                destination: Any = self.cidr(r, "DestinationCidrBlock")
            else:
                destination = self.get(r, "DestinationPrefixListId")
                if destination in self.skipped_ids:
                    self.report.skip("routes (to IPv6 prefix lists)")
                    continue
                self.ref(r, "DestinationPrefixListId", self.prefix_lists, "prefix list")
            blackhole = r.data.get("State") == "blackhole"
            target, state = self.route_target(r, blackhole)
            if target == "local" and destination not in cidrs:
                self.note(f"{item.data['RouteTableId']}: local route {destination} is no associated CIDR of {vpc_id}; dropped")
                continue
            propagated = r.data.get("Origin") == "EnableVgwRoutePropagation"
            route = Route(destination, target, "blackhole" if blackhole else state)
            if destination in routes:
                if routes[destination][1] and not propagated:
                    routes[destination] = (route, propagated)  # a static route beats a propagated one
                continue
            routes[destination] = (route, propagated)
        out = [route for route, _p in routes.values()]
        for cidr in cidrs:
            if cidr not in routes:
                out.append(Route(cidr, "local"))
        return tuple(out)

    def route_target(self, r: _Item, blackhole: bool) -> tuple[str, str]:
        """(target, state) of a route; a target that was skipped makes the route a blackhole."""
        def existing(key: str, collection: Mapping[str, Any], what: str, value: str | None = None) -> tuple[str, str]:
            target = value if value is not None else self.get(r, key)
            if target in collection or blackhole:
                return target, "active"
            if target in self.skipped_ids:
                self.note(f"route {r.data.get('DestinationCidrBlock') or r.data.get('DestinationPrefixListId')} -> "
                          f"{target}: the target is {self.skipped_ids[target]}; the route is treated as a blackhole")
                return target, "blackhole"
            self.ref(r, key, collection, what, target)
            raise AssertionError

        data = r.data
        if data.get("NetworkInterfaceId") is not None:
            return existing("NetworkInterfaceId", self.enis, "network interface")
        if data.get("InstanceId") is not None:
            instance_id = self.get(r, "InstanceId")
            eni_id = self.instance_eni(instance_id)
            if eni_id is None:
                if blackhole:
                    return f"eni-of-{instance_id}", "blackhole"
                self.ref(r, "InstanceId", self.instance_items, "instance (with an ENI)", "" if instance_id in self.instance_items else instance_id)
            return existing("InstanceId", self.enis, "network interface", eni_id)
        if data.get("NatGatewayId") is not None:
            return existing("NatGatewayId", self.nats, "NAT gateway")
        if data.get("VpcPeeringConnectionId") is not None:
            return existing("VpcPeeringConnectionId", self.peerings, "peering connection")
        for key in _UNMODELLED_TARGET_KEYS:
            if data.get(key) is not None:
                target = self.get(r, key)
                if unmodelled_route_target(target) is None:
                    self.fail(r.file, r.at(key), f"{target!r} is not a {key[:-2]} id")
                return target, "active"
        gateway = data.get("GatewayId")
        if gateway is None:
            self.fail(r.file, r.path, "a route needs a target (GatewayId, NatGatewayId, NetworkInterfaceId, "
                                      "InstanceId, VpcPeeringConnectionId, TransitGatewayId, ...)")
        gateway = self.get(r, "GatewayId")
        kind = route_target_kind(gateway)
        if kind == "local":
            return "local", "active"
        if kind == "igw":
            return existing("GatewayId", self.igw_items, "internet gateway")
        if kind == "vpce":
            return existing("GatewayId", self.ep_gateway_ids(), "gateway or Gateway Load Balancer VPC endpoint")
        if unmodelled_route_target(gateway) is not None:
            return gateway, "active"
        self.fail(r.file, r.at("GatewayId"), f"unknown route target {gateway!r}")
        raise AssertionError

    def ep_gateway_ids(self) -> dict[str, _Item]:
        """Endpoints a route may target, by id (computed once): gateway and Gateway Load Balancer
        ones; other endpoint types, and endpoints that are gone, become skipped ids."""
        if self._gateway_endpoints is not None:
            return self._gateway_endpoints
        out: dict[str, _Item] = {}
        self._gateway_endpoints = out
        for item in self.items["VpcEndpoints"]:
            ep_id = item.data.get("VpcEndpointId")
            if not isinstance(ep_id, str):
                continue
            kind = str(item.data.get("VpcEndpointType", "")).lower()
            state = str(item.data.get("State", "available")).lower()
            if kind in ("gateway", _GWLB) and state not in _GONE_STATES:
                out[ep_id] = item
            elif kind not in ("gateway", "interface", _GWLB):
                self.skipped_ids.setdefault(ep_id, f"a {item.data.get('VpcEndpointType')} endpoint (not emulated)")
            elif state in _GONE_STATES:
                self.skipped_ids.setdefault(ep_id, f"an endpoint in state {state}")
        return out
