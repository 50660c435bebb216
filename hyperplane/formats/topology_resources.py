"""Building a Topology from a parsed topology document: every resource read, AWS's defaults
applied (main route table, default NACL and security group, local routes, endpoint ENIs,
addresses), then validated. The public entry is :func:`~hyperplane.formats.topology_reader.parse_topology`."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any, NoReturn

from hyperplane.errors import SubnetOutOfAddresses, TopologyError
from hyperplane.formats._iac import synthesized_id
from hyperplane.formats._source import REPAIR_HINT, warn_repair
from hyperplane.formats.aws_prefix_lists import managed_prefix_list_cidrs
from hyperplane.formats._topology_fields import (
    _ENDPOINT_KEYS, _GWLB, _PEER_KEYS, _RULE_KEYS, _TOP_LEVEL, _Reader, _join, _keyed,
    _service_dns_name, _suffix,
)
from hyperplane.model import (
    ANY_IPV4, MANAGED_ENI_KINDS, PROTOCOL_ALL, ElasticIp, ExecutionRole, FunctionVersion,
    InternetGateway, LambdaFunction, NatGateway, NetworkAcl, NetworkAclEntry, NetworkInterface,
    PrefixList, Route, RouteTable, SecurityGroup, SecurityGroupRule, Subnet, Topology, Vpc,
    VpcConfig, VpcEndpoint, VpcPeeringConnection, next_free_address, route_target_kind,
    unmodelled_route_target, validate_topology,
)
from hyperplane.formats.topology_transit import read_transit_gateways

#: The role a function gets when its entry names none (documented in docs/topology-format.md).
DEFAULT_ROLE_POLICIES = ("AWSLambdaVPCAccessExecutionRole",)


# --------------------------------------------------------------------------------------------
# document -> topology


class _Builder:
    """Turns a document into a Topology: parse every resource, apply defaults, allocate."""

    def __init__(self, document: Any, file: str | None, repair: bool = False) -> None:
        self.repair = repair
        self.r = _Reader(file)
        self.file = file
        self.doc = self.r.mapping(document, "", _TOP_LEVEL) if document is not None else {}
        self.where: dict[str, str] = {}
        self.ids: dict[str, str] = {}
        self.account_id = "123456789012"
        self.region = "us-east-1"

    def fail(self, where: str, problem: str) -> NoReturn:
        raise TopologyError(self.file, where, problem)

    def items(self, collection: str) -> list[tuple[str, Any]]:
        return [(f"{collection}[{i}]", item) for i, item in enumerate(self.r.sequence(self.doc.get(collection), collection))]

    def claim(self, resource_id: str, where: str, *, namespace: dict[str, str] | None = None) -> None:
        """Record a new id; two resources may not share one."""
        ids = self.ids if namespace is None else namespace
        if resource_id in ids:
            self.fail(_join(where, "id" if namespace is None else "name"), f"duplicate id {resource_id!r} (also {ids[resource_id]})")
        ids[resource_id] = where
        self.where.setdefault(resource_id, where)

    # -- whole document -------------------------------------------------------------------

    def build(self) -> Topology:
        r = self.r
        if "account_id" in self.doc:
            account = r.string(self.doc["account_id"], "account_id", allow_numbers=True)
            if isinstance(self.doc["account_id"], int):  # unquoted in YAML: leading zeros were lost
                account = account.zfill(12)
            if not (account.isascii() and account.isdigit() and len(account) == 12):
                self.fail("account_id", f"{self.doc['account_id']!r} is not a 12-digit AWS account id")
            self.account_id = account
        if "region" in self.doc:
            self.region = r.string(self.doc["region"], "region")

        vpcs = self.vpcs()
        route_tables = self.route_tables()
        security_groups = self.security_groups()
        network_acls = self.network_acls()
        subnets = self.subnets()
        igws = self.internet_gateways()
        prefix_lists = self.prefix_lists()
        peerings = self.peerings()
        nats = self.nat_gateways()
        endpoints = self.endpoints()
        enis = self.network_interfaces()
        functions = self.functions()
        tgws, tgw_attachments, tgw_route_tables = read_transit_gateways(self)

        # AWS defaults, per VPC: main route table, default NACL, default security group
        for vpc in vpcs.values():
            suffix = _suffix(vpc["id"])
            if vpc["main_route_table_id"] is None:
                rtb_id = f"rtb-{suffix}-main"
                self.claim(rtb_id, vpc["_where"])
                route_tables[rtb_id] = {"id": rtb_id, "vpc_id": vpc["id"], "routes": [], "name": ""}
                vpc["main_route_table_id"] = rtb_id
            if vpc["default_network_acl_id"] is None:
                acl_id = f"acl-{suffix}-default"
                self.claim(acl_id, vpc["_where"])
                everything = [NetworkAclEntry(100, egress, PROTOCOL_ALL, "allow", ANY_IPV4) for egress in (False, True)]
                network_acls[acl_id] = {"id": acl_id, "vpc_id": vpc["id"], "entries": everything, "name": ""}
                vpc["default_network_acl_id"] = acl_id
            if vpc["default_security_group_id"] is None:
                sg_id = f"sg-{suffix}-default"
                self.claim(sg_id, vpc["_where"])
                security_groups[sg_id] = {
                    "id": sg_id, "vpc_id": vpc["id"], "name": "default",
                    "description": "default VPC security group",
                    "ingress": [SecurityGroupRule(False, PROTOCOL_ALL, security_group_id=sg_id)],
                    "egress": None,
                }
                vpc["default_security_group_id"] = sg_id

        # a subnet without explicit associations uses the main table and the default NACL
        for subnet in subnets.values():
            owner = vpcs.get(subnet["vpc_id"])
            if owner is None:
                self.fail(_join(subnet["_where"], "vpc_id"), f"refers to VPC {subnet['vpc_id']!r}, which is not defined")
            subnet["route_table_id"] = subnet["route_table_id"] or owner["main_route_table_id"]
            subnet["network_acl_id"] = subnet["network_acl_id"] or owner["default_network_acl_id"]

        # a new group gets AWS's egress allow-all, unless the file says `egress: []`
        for sg in security_groups.values():
            if sg["egress"] is None:
                sg["egress"] = [SecurityGroupRule.allow_all_egress()]

        # gateway endpoints: the prefix-list route in each of their tables, and vice versa
        for ep in endpoints.values():
            if ep["endpoint_type"] != "gateway":
                continue
            if ep["prefix_list_id"] is None:
                match = [pl_id for pl_id, pl in prefix_lists.items() if pl.name == ep["service_name"]]
                published = managed_prefix_list_cidrs(ep["service_name"]) if not match else None
                if published is not None:  # AWS's own list of the service (aws_prefix_lists.py)
                    match = [synthesized_id("pl", ep["service_name"])]
                    self.claim(match[0], ep["_where"])
                    prefix_lists[match[0]] = PrefixList(match[0], ep["service_name"], published)
                if not match:
                    self.fail(ep["_where"], f"no prefix list named {ep['service_name']!r}: give prefix_list_id")
                ep["prefix_list_id"] = match[0]
            tables = list(ep["route_table_ids"])
            for rtb_id, rtb in route_tables.items():
                if any(route.target == ep["id"] for route in rtb["routes"]) and rtb_id not in tables:
                    tables.append(rtb_id)
            for i, rtb_id in enumerate(ep["route_table_ids"]):
                table = route_tables.get(rtb_id)
                if table is None:
                    self.fail(f"{ep['_where']}.route_table_ids[{i}]", f"refers to route table {rtb_id!r}, which is not defined")
                if not any(route.destination == ep["prefix_list_id"] for route in table["routes"]):
                    table["routes"].append(Route(ep["prefix_list_id"], ep["id"]))
            ep["route_table_ids"] = tuple(tables)

        # every route table has the local route of each of its VPC's CIDRs
        for rtb in route_tables.values():
            parent = vpcs.get(rtb["vpc_id"])
            if parent is None:
                continue  # reported by validation
            for cidr in parent["cidrs"]:
                if not any(route.destination == cidr for route in rtb["routes"]):
                    rtb["routes"].append(Route(cidr, "local"))

        # ENIs, endpoints without security groups get their VPC's default group
        subnet_vpc = {sid: s["vpc_id"] for sid, s in subnets.items()}
        default_sg = {vid: v["default_security_group_id"] for vid, v in vpcs.items()}
        for eni in enis.values():
            if eni["security_group_ids"] is None:
                eni["security_group_ids"] = self.default_group(eni["subnet_id"], eni["_where"], subnet_vpc, default_sg)
        for ep in endpoints.values():
            if ep["endpoint_type"] == "interface" and ep["security_group_ids"] is None:
                ep["security_group_ids"] = (default_sg[ep["vpc_id"]],) if ep["vpc_id"] in default_sg else ()

        self.allocate(subnets, nats, endpoints, enis)
        managed = self.managed_interfaces(nats, endpoints)

        topology = Topology(
            account_id=self.account_id,
            region=self.region,
            vpcs=_keyed([Vpc(v["id"], v["cidrs"], v["main_route_table_id"], v["default_network_acl_id"],
                      v["default_security_group_id"], v["name"]) for v in vpcs.values()]),
            subnets=_keyed([Subnet(s["id"], s["vpc_id"], s["cidr"], s["availability_zone"], s["route_table_id"],
                            s["network_acl_id"], s["name"], s["availability_zone_id"]) for s in subnets.values()]),
            route_tables=_keyed([RouteTable(t["id"], t["vpc_id"], tuple(t["routes"]),
                                     is_main=t["vpc_id"] in vpcs and vpcs[t["vpc_id"]]["main_route_table_id"] == t["id"],
                                     name=t["name"]) for t in route_tables.values()]),
            security_groups=_keyed([SecurityGroup(g["id"], g["vpc_id"], g["name"], tuple(g["ingress"]), tuple(g["egress"]),
                                           g["description"]) for g in security_groups.values()]),
            network_acls=_keyed([NetworkAcl(a["id"], a["vpc_id"], tuple(a["entries"]),
                                     is_default=a["vpc_id"] in vpcs and vpcs[a["vpc_id"]]["default_network_acl_id"] == a["id"],
                                     name=a["name"]) for a in network_acls.values()]),
            internet_gateways=igws,
            nat_gateways=_keyed([NatGateway(n["id"], n["subnet_id"], n["connectivity_type"], tuple(n["private_ips"]),
                                     n["elastic_ips"], n["network_interface_id"], n["name"]) for n in nats.values()]),
            prefix_lists=prefix_lists,
            vpc_endpoints=_keyed([self.endpoint(ep) for ep in endpoints.values()]),
            network_interfaces=_keyed([*managed, *(self.interface(e) for e in enis.values())]),
            vpc_peering_connections=peerings,
            functions=functions,
            transit_gateways=tgws, transit_gateway_attachments=tgw_attachments,
            transit_gateway_route_tables=tgw_route_tables,
        )
        validate_topology(topology, file=self.file, where=self.where)
        self.warn_repaired(nats)  # only once the topology loads: a repair is not half a load
        return topology

    def default_group(self, subnet_id: str, where: str, subnet_vpc: dict, default_sg: dict) -> tuple[str, ...]:
        if subnet_id not in subnet_vpc:
            self.fail(_join(where, "subnet_id"), f"refers to subnet {subnet_id!r}, which is not defined")
        return (default_sg[subnet_vpc[subnet_id]],)

    # -- per resource ---------------------------------------------------------------------

    def vpcs(self) -> dict[str, dict]:
        r, out = self.r, {}
        for where, item in self.items("vpcs"):
            item = r.mapping(item, where, ("id", "name", "cidr", "cidrs", "main_route_table_id",
                                           "default_network_acl_id", "default_security_group_id"), ("id",))
            vpc_id = r.identifier(item["id"], _join(where, "id"), "vpc-")
            self.claim(vpc_id, where)
            if ("cidr" in item) == ("cidrs" in item):
                self.fail(where, "give exactly one of 'cidr' or 'cidrs'")
            cidrs: tuple[IPv4Network, ...]
            if "cidr" in item:
                cidrs = (r.cidr(item["cidr"], _join(where, "cidr")),)
            else:
                cidrs = tuple(r.cidr(c, f"{where}.cidrs[{i}]") for i, c in enumerate(r.sequence(item["cidrs"], _join(where, "cidrs"))))
            key = "cidr" if "cidr" in item else "cidrs"
            for i, cidr in enumerate(cidrs):
                if not 16 <= cidr.prefixlen <= 28:
                    at = _join(where, key) if key == "cidr" else f"{where}.cidrs[{i}]"
                    self.fail(at, f"VPC CIDR {cidr} must be between /16 and /28")
            out[vpc_id] = {
                "_where": where, "id": vpc_id, "cidrs": cidrs, "name": r.text(item.get("name"), _join(where, "name")),
                **{k: (r.identifier(item[k], _join(where, k), p) if item.get(k) is not None else None)
                   for k, p in (("main_route_table_id", "rtb-"), ("default_network_acl_id", "acl-"),
                                ("default_security_group_id", "sg-"))},
            }
        return out

    def subnets(self) -> dict[str, dict]:
        r, out = self.r, {}
        for where, item in self.items("subnets"):
            item = r.mapping(item, where, ("id", "name", "vpc_id", "cidr", "availability_zone", "availability_zone_id",
                                           "route_table_id", "network_acl_id"), ("id", "vpc_id", "cidr", "availability_zone"))
            subnet_id = r.identifier(item["id"], _join(where, "id"), "subnet-")
            self.claim(subnet_id, where)
            out[subnet_id] = {
                "_where": where, "id": subnet_id,
                "vpc_id": r.identifier(item["vpc_id"], _join(where, "vpc_id"), "vpc-"),
                "cidr": r.cidr(item["cidr"], _join(where, "cidr")),
                "availability_zone": r.string(item["availability_zone"], _join(where, "availability_zone")),
                "route_table_id": r.identifier(item["route_table_id"], _join(where, "route_table_id"), "rtb-") if item.get("route_table_id") is not None else None,
                "network_acl_id": r.identifier(item["network_acl_id"], _join(where, "network_acl_id"), "acl-") if item.get("network_acl_id") is not None else None,
                "name": r.text(item.get("name"), _join(where, "name")),
                "availability_zone_id": r.string(item["availability_zone_id"], _join(where, "availability_zone_id"))
                if item.get("availability_zone_id") is not None else None,
            }
        return out

    def route_tables(self) -> dict[str, dict]:
        r, out = self.r, {}
        for where, item in self.items("route_tables"):
            item = r.mapping(item, where, ("id", "name", "vpc_id", "routes"), ("id", "vpc_id"))
            rtb_id = r.identifier(item["id"], _join(where, "id"), "rtb-")
            self.claim(rtb_id, where)
            routes = []
            for i, route in enumerate(r.sequence(item.get("routes"), _join(where, "routes"))):
                at = f"{where}.routes[{i}]"
                route = r.mapping(route, at, ("destination", "target", "state"), ("destination", "target"))
                destination = route["destination"]
                if isinstance(destination, str) and destination.strip().startswith("pl-"):
                    dest: IPv4Network | str = r.identifier(destination, _join(at, "destination"), "pl-")
                else:
                    dest = r.cidr(destination, _join(at, "destination"))
                target = r.string(route["target"], _join(at, "target"))
                if route_target_kind(target) is None and unmodelled_route_target(target) is None:
                    self.fail(_join(at, "target"), f"unknown route target {target!r} (use local, igw-, nat-, vpce-, "
                                                   "eni- or pcx-; tgw-, vgw-, eigw-, cagw-, lgw- load as unmodelled)")
                state = r.string(route.get("state", "active"), _join(at, "state"))
                if state not in ("active", "blackhole"):
                    self.fail(_join(at, "state"), f"{state!r} is not active or blackhole")
                routes.append(Route(dest, target, state))
            out[rtb_id] = {"_where": where, "id": rtb_id, "routes": routes,
                           "vpc_id": r.identifier(item["vpc_id"], _join(where, "vpc_id"), "vpc-"),
                           "name": r.text(item.get("name"), _join(where, "name"))}
        return out

    def security_groups(self) -> dict[str, dict]:
        r, out = self.r, {}
        for where, item in self.items("security_groups"):
            item = r.mapping(item, where, ("id", "name", "description", "vpc_id", "ingress", "egress"), ("id", "vpc_id"))
            sg_id = r.identifier(item["id"], _join(where, "id"), "sg-")
            self.claim(sg_id, where)
            rules: dict[str, list | None] = {}
            for direction in ("ingress", "egress"):
                if direction not in item:
                    rules[direction] = None  # ingress: none; egress: AWS's allow-all, applied later
                    continue
                at = _join(where, direction)
                rules[direction] = [self.sg_rule(rule, f"{at}[{i}]", direction == "egress")
                                    for i, rule in enumerate(r.sequence(item[direction], at))]
            out[sg_id] = {
                "_where": where, "id": sg_id, "vpc_id": r.identifier(item["vpc_id"], _join(where, "vpc_id"), "vpc-"),
                "name": r.text(item.get("name"), _join(where, "name")) or sg_id,
                "description": r.text(item.get("description"), _join(where, "description")),
                "ingress": rules["ingress"] or [], "egress": rules["egress"],
            }
        return out

    def sg_rule(self, node: Any, where: str, egress: bool) -> SecurityGroupRule:
        r = self.r
        item = r.mapping(node, where, (*_RULE_KEYS, *_PEER_KEYS, "description"), ("protocol",))
        protocol = r.protocol(item["protocol"], _join(where, "protocol"))
        port_range, icmp_type, icmp_code = r.ports_and_icmp(item, where, protocol)
        peers = [k for k in _PEER_KEYS if k in item]
        if len(peers) != 1:
            self.fail(where, "a rule needs exactly one peer: cidr, prefix_list_id or security_group_id")
        peer = peers[0]
        at = _join(where, peer)
        return SecurityGroupRule(
            egress=egress, protocol=protocol, port_range=port_range, icmp_type=icmp_type, icmp_code=icmp_code,
            cidr=r.cidr(item[peer], at) if peer == "cidr" else None,
            prefix_list_id=r.identifier(item[peer], at, "pl-") if peer == "prefix_list_id" else None,
            security_group_id=r.identifier(item[peer], at, "sg-") if peer == "security_group_id" else None,
            description=r.text(item.get("description"), _join(where, "description")),
        )

    def network_acls(self) -> dict[str, dict]:
        r, out = self.r, {}
        for where, item in self.items("network_acls"):
            item = r.mapping(item, where, ("id", "name", "vpc_id", "ingress", "egress"), ("id", "vpc_id"))
            acl_id = r.identifier(item["id"], _join(where, "id"), "acl-")
            self.claim(acl_id, where)
            entries = []
            for direction in ("ingress", "egress"):
                at = _join(where, direction)
                seen: dict[int, int] = {}
                for i, entry in enumerate(r.sequence(item.get(direction), at)):
                    e = self.acl_entry(entry, f"{at}[{i}]", direction == "egress")
                    if e.rule_number in seen:
                        self.fail(f"{at}[{i}].rule_number", f"rule number {e.rule_number} is used twice in {direction} (also {direction}[{seen[e.rule_number]}])")
                    seen[e.rule_number] = i
                    entries.append(e)
            out[acl_id] = {"_where": where, "id": acl_id, "entries": entries,
                           "vpc_id": r.identifier(item["vpc_id"], _join(where, "vpc_id"), "vpc-"),
                           "name": r.text(item.get("name"), _join(where, "name"))}
        return out

    def acl_entry(self, node: Any, where: str, egress: bool) -> NetworkAclEntry:
        r = self.r
        item = r.mapping(node, where, ("rule_number", *_RULE_KEYS, "cidr", "rule_action"),
                         ("rule_number", "protocol", "cidr", "rule_action"))
        number = r.integer(item["rule_number"], _join(where, "rule_number"), -(2**31), 2**31)
        if not 1 <= number <= 32766:
            self.fail(_join(where, "rule_number"), f"rule number {number} is not within 1-32766")
        protocol = r.protocol(item["protocol"], _join(where, "protocol"))
        port_range, icmp_type, icmp_code = r.ports_and_icmp(item, where, protocol)
        action = r.string(item["rule_action"], _join(where, "rule_action")).lower()
        if action not in ("allow", "deny"):
            self.fail(_join(where, "rule_action"), f"{item['rule_action']!r} is not allow or deny")
        return NetworkAclEntry(number, egress, protocol, action, r.cidr(item["cidr"], _join(where, "cidr")),
                               port_range, icmp_type, icmp_code)

    def internet_gateways(self) -> dict[str, InternetGateway]:
        r, out = self.r, {}
        for where, item in self.items("internet_gateways"):
            item = r.mapping(item, where, ("id", "name", "vpc_id"), ("id",))
            igw_id = r.identifier(item["id"], _join(where, "id"), "igw-")
            self.claim(igw_id, where)
            vpc_id = r.identifier(item["vpc_id"], _join(where, "vpc_id"), "vpc-") if item.get("vpc_id") is not None else None
            out[igw_id] = InternetGateway(igw_id, vpc_id, r.text(item.get("name"), _join(where, "name")))
        return out

    def prefix_lists(self) -> dict[str, PrefixList]:
        r, out = self.r, {}
        for where, item in self.items("prefix_lists"):
            item = r.mapping(item, where, ("id", "name", "cidrs"), ("id", "name"))
            pl_id = r.identifier(item["id"], _join(where, "id"), "pl-")
            self.claim(pl_id, where)
            at, name = _join(where, "cidrs"), r.string(item["name"], _join(where, "name"))
            if "cidrs" in item:
                cidrs = tuple(r.cidr(c, f"{at}[{i}]") for i, c in enumerate(r.sequence(item["cidrs"], at)))
            else:  # an AWS-managed list: the ranges AWS publishes (aws_prefix_lists.py)
                published = managed_prefix_list_cidrs(name)
                if published is None:
                    self.fail(at, f"missing required key 'cidrs' ({name!r} is not an AWS-managed list of S3 "
                                  "or DynamoDB whose ranges are known)")
                cidrs = published
            out[pl_id] = PrefixList(pl_id, name, cidrs)
        return out

    def peerings(self) -> dict[str, VpcPeeringConnection]:
        r, out = self.r, {}
        for where, item in self.items("vpc_peering_connections"):
            item = r.mapping(item, where, ("id", "name", "vpc_id", "peer_vpc_id", "peer_cidrs", "status"),
                             ("id", "vpc_id", "peer_vpc_id"))
            pcx_id = r.identifier(item["id"], _join(where, "id"), "pcx-")
            self.claim(pcx_id, where)
            at = _join(where, "peer_cidrs")
            out[pcx_id] = VpcPeeringConnection(
                pcx_id, r.identifier(item["vpc_id"], _join(where, "vpc_id"), "vpc-"),
                r.identifier(item["peer_vpc_id"], _join(where, "peer_vpc_id"), "vpc-"),
                tuple(r.cidr(c, f"{at}[{i}]") for i, c in enumerate(r.sequence(item.get("peer_cidrs"), at))),
                r.text(item.get("name"), _join(where, "name")),
                r.text(item.get("status", "active"), _join(where, "status")),
            )
        return out

    def nat_gateways(self) -> dict[str, dict]:
        r, out = self.r, {}
        for where, item in self.items("nat_gateways"):
            item = r.mapping(item, where, ("id", "name", "subnet_id", "connectivity_type", "private_ip",
                                           "secondary_private_ips", "elastic_ips", "network_interface_id"),
                             ("id", "subnet_id"))
            nat_id = r.identifier(item["id"], _join(where, "id"), "nat-")
            self.claim(nat_id, where)
            kind = r.string(item.get("connectivity_type", "public"), _join(where, "connectivity_type"))
            if kind not in ("public", "private"):
                self.fail(_join(where, "connectivity_type"), f"{kind!r} is not public or private")
            at = _join(where, "elastic_ips")
            eips = []
            for i, eip in enumerate(r.sequence(item.get("elastic_ips"), at)):
                if isinstance(eip, str):
                    eip = {"public_ip": eip}
                eip = r.mapping(eip, f"{at}[{i}]", ("allocation_id", "public_ip"), ("public_ip",))
                alloc = eip.get("allocation_id") or f"eipalloc-{_suffix(nat_id)}-{i}"
                eips.append(ElasticIp(r.identifier(alloc, f"{at}[{i}].allocation_id", "eipalloc-"),
                                      r.ip(eip["public_ip"], f"{at}[{i}].public_ip")))
            if kind == "public" and not eips:
                self.fail(at if "elastic_ips" in item else where, "a public NAT gateway needs at least one Elastic IP (elastic_ips)")
            if kind == "private" and eips:
                self.fail(at, "a private NAT gateway has no Elastic IP")
            if len(eips) > 8:
                self.fail(at, f"{len(eips)} Elastic IPs: a NAT gateway has at most 8 addresses")
            at2 = _join(where, "secondary_private_ips")
            secondary = [r.ip(ip, f"{at2}[{i}]") for i, ip in enumerate(r.sequence(item.get("secondary_private_ips"), at2))]
            if 1 + len(secondary) > 8:
                self.fail(at2, f"{1 + len(secondary)} private IPs: a NAT gateway has at most 8 addresses")
            eni_id = item.get("network_interface_id") or f"eni-nat-{_suffix(nat_id)}"
            eni_id = r.identifier(eni_id, _join(where, "network_interface_id"), "eni-")
            self.claim(eni_id, where)
            out[nat_id] = {
                "_where": where, "id": nat_id, "connectivity_type": kind, "elastic_ips": tuple(eips),
                "subnet_id": r.identifier(item["subnet_id"], _join(where, "subnet_id"), "subnet-"),
                "private_ips": [r.ip(item["private_ip"], _join(where, "private_ip")) if item.get("private_ip") is not None else None, *secondary],
                "network_interface_id": eni_id, "name": r.text(item.get("name"), _join(where, "name")),
            }
        return out

    def endpoints(self) -> dict[str, dict]:
        r, out = self.r, {}
        for where, item in self.items("vpc_endpoints"):
            item = r.mapping(item, where, ("id", "name", "vpc_id", "service_name", "type", "route_table_ids",
                                           "prefix_list_id", "subnet_ids", "security_group_ids",
                                           "private_dns_enabled", "dns_names", "network_interfaces"),
                             ("id", "vpc_id", "service_name", "type"))
            ep_id = r.identifier(item["id"], _join(where, "id"), "vpce-")
            self.claim(ep_id, where)
            kind = r.string(item["type"], _join(where, "type")).lower()
            if kind not in _ENDPOINT_KEYS:
                self.fail(_join(where, "type"), f"{item['type']!r} is not gateway, interface or gateway_load_balancer")
            for key in item:
                if key not in _ENDPOINT_KEYS[kind] and any(key in keys for keys in _ENDPOINT_KEYS.values()):
                    what = "a Gateway Load Balancer endpoint (only a route target)" if kind == _GWLB else f"a {kind} endpoint"
                    self.fail(_join(where, key), f"{key} does not apply to {what}")
            service = r.string(item["service_name"], _join(where, "service_name"))
            ep: dict[str, Any] = {"_where": where, "id": ep_id, "endpoint_type": kind, "service_name": service,
                                  "vpc_id": r.identifier(item["vpc_id"], _join(where, "vpc_id"), "vpc-"),
                                  "name": r.text(item.get("name"), _join(where, "name"))}
            # a Gateway Load Balancer endpoint is a route target only: the keys above are all it has
            if kind == "gateway":
                ep["route_table_ids"] = r.id_list(item.get("route_table_ids"), _join(where, "route_table_ids"), "rtb-")
                ep["prefix_list_id"] = (r.identifier(item["prefix_list_id"], _join(where, "prefix_list_id"), "pl-")
                                        if item.get("prefix_list_id") is not None else None)
            elif kind == "interface":
                ep["subnet_ids"] = r.id_list(item.get("subnet_ids"), _join(where, "subnet_ids"), "subnet-")
                ep["security_group_ids"] = (r.id_list(item["security_group_ids"], _join(where, "security_group_ids"), "sg-")
                                            if "security_group_ids" in item else None)
                dns = r.boolean(item.get("private_dns_enabled", True), _join(where, "private_dns_enabled"))
                ep["private_dns_enabled"] = dns
                at = _join(where, "dns_names")
                if "dns_names" in item:
                    ep["dns_names"] = tuple(r.string(n, f"{at}[{i}]") for i, n in enumerate(r.sequence(item["dns_names"], at)))
                else:
                    ep["dns_names"] = (_service_dns_name(service),) if dns else ()
                enis: list[dict[str, Any]] = []
                at = _join(where, "network_interfaces")
                for i, eni in enumerate(r.sequence(item.get("network_interfaces"), at)):
                    eni = r.mapping(eni, f"{at}[{i}]", ("id", "subnet_id", "private_ip"), ("subnet_id",))
                    subnet_id = r.identifier(eni["subnet_id"], f"{at}[{i}].subnet_id", "subnet-")
                    eni_id = r.identifier(eni.get("id") or f"eni-{_suffix(ep_id)}-{len(enis)}", f"{at}[{i}].id", "eni-")
                    self.claim(eni_id, f"{at}[{i}]")
                    ip = r.ip(eni["private_ip"], f"{at}[{i}].private_ip") if eni.get("private_ip") is not None else None
                    enis.append({"id": eni_id, "subnet_id": subnet_id, "private_ip": ip, "_where": f"{at}[{i}]"})
                declared = {e["subnet_id"] for e in enis}
                for subnet_id in ep["subnet_ids"]:
                    if subnet_id not in declared:  # AWS creates one ENI per subnet
                        eni_id = f"eni-{_suffix(ep_id)}-{len(enis)}"
                        self.claim(eni_id, where)
                        enis.append({"id": eni_id, "subnet_id": subnet_id, "private_ip": None, "_where": where})
                ep["network_interfaces"] = enis
            out[ep_id] = ep
        return out

    def network_interfaces(self) -> dict[str, dict]:
        r, out = self.r, {}
        for where, item in self.items("network_interfaces"):
            item = r.mapping(item, where, ("id", "subnet_id", "private_ip", "secondary_private_ips", "security_group_ids",
                                           "public_ip", "kind", "description", "instance_id", "source_dest_check"),
                             ("id", "subnet_id"))
            eni_id = r.identifier(item["id"], _join(where, "id"), "eni-")
            self.claim(eni_id, where)
            kind = r.string(item.get("kind", "instance"), _join(where, "kind"))
            if kind in MANAGED_ENI_KINDS:
                self.fail(_join(where, "kind"), f"kind {kind!r} is reserved for ENIs the model creates (declare the NAT gateway, endpoint or function instead)")
            at = _join(where, "secondary_private_ips")
            out[eni_id] = {
                "_where": where, "id": eni_id, "kind": kind,
                "subnet_id": r.identifier(item["subnet_id"], _join(where, "subnet_id"), "subnet-"),
                "private_ip": r.ip(item["private_ip"], _join(where, "private_ip")) if item.get("private_ip") is not None else None,
                "secondary_private_ips": tuple(r.ip(ip, f"{at}[{i}]") for i, ip in enumerate(r.sequence(item.get("secondary_private_ips"), at))),
                "security_group_ids": (r.id_list(item["security_group_ids"], _join(where, "security_group_ids"), "sg-")
                                       if "security_group_ids" in item else None),
                "public_ip": r.ip(item["public_ip"], _join(where, "public_ip")) if item.get("public_ip") is not None else None,
                "description": r.text(item.get("description"), _join(where, "description")),
                "instance_id": r.identifier(item["instance_id"], _join(where, "instance_id"), "i-") if item.get("instance_id") is not None else None,
                "source_dest_check": r.boolean(item.get("source_dest_check", True), _join(where, "source_dest_check")),
            }
        return out

    def functions(self) -> dict[str, LambdaFunction]:
        r, out = self.r, {}
        names: dict[str, str] = {}
        for where, item in self.items("functions"):
            item = r.mapping(item, where, ("name", "description", "role", "vpc_config", "versions"), ("name",))
            name = r.string(item["name"], _join(where, "name"))
            self.claim(name, where, namespace=names)
            role = self.role(item.get("role"), _join(where, "role"), name)
            vpc_config = self.vpc_config(item.get("vpc_config"), _join(where, "vpc_config"))
            versions = []
            at = _join(where, "versions")
            for i, version in enumerate(r.sequence(item.get("versions"), at)):
                version = r.mapping(version, f"{at}[{i}]", ("version", "vpc_config"), ("version",))
                number = r.string(version["version"], f"{at}[{i}].version", allow_numbers=True)
                config = (self.vpc_config(version["vpc_config"], f"{at}[{i}].vpc_config")
                          if "vpc_config" in version else vpc_config)
                versions.append(FunctionVersion(number, config))
            out[name] = LambdaFunction(name, role, vpc_config, tuple(versions),
                                       r.text(item.get("description"), _join(where, "description")))
        return out

    def role(self, node: Any, where: str, function: str) -> ExecutionRole:
        r = self.r
        if node is None:
            return ExecutionRole(f"arn:aws:iam::{self.account_id}:role/{function}-role",
                                 managed_policies=DEFAULT_ROLE_POLICIES)
        item = r.mapping(node, where, ("name", "arn", "permissions", "managed_policies"))
        if ("name" in item) == ("arn" in item):
            self.fail(where, "give exactly one of 'name' or 'arn'")
        if "arn" in item:
            arn = r.string(item["arn"], _join(where, "arn"))
            if not arn.startswith("arn:aws:iam::") or ":role/" not in arn:
                self.fail(_join(where, "arn"), f"{arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        else:
            arn = f"arn:aws:iam::{self.account_id}:role/{r.string(item['name'], _join(where, 'name'))}"
        at, at2 = _join(where, "permissions"), _join(where, "managed_policies")
        permissions = tuple(r.string(p, f"{at}[{i}]") for i, p in enumerate(r.sequence(item.get("permissions"), at)))
        for i, p in enumerate(permissions):
            if p != "*" and ":" not in p:
                self.fail(f"{at}[{i}]", f"{p!r} is not an IAM action like ec2:CreateNetworkInterface")
        policies = tuple(r.string(p, f"{at2}[{i}]") for i, p in enumerate(r.sequence(item.get("managed_policies"), at2)))
        return ExecutionRole(arn, permissions, policies)

    def vpc_config(self, node: Any, where: str) -> VpcConfig | None:
        r = self.r
        if node is None:
            return None
        item = r.mapping(node, where, ("subnet_ids", "security_group_ids"))
        subnets = r.id_list(item.get("subnet_ids"), _join(where, "subnet_ids"), "subnet-")
        groups = r.id_list(item.get("security_group_ids"), _join(where, "security_group_ids"), "sg-")
        if not subnets and not groups:
            return None  # AWS: empty lists detach the function from its VPC
        if not groups:
            self.fail(_join(where, "security_group_ids"), "a VpcConfig with subnets needs at least one security group")
        if len(subnets) > 16:
            self.fail(_join(where, "subnet_ids"), f"{len(subnets)} subnets: at most 16 per function")
        if len(groups) > 5:
            self.fail(_join(where, "security_group_ids"), f"{len(groups)} security groups: at most 5 per function")
        return VpcConfig(subnets, groups)

    # -- addresses and managed ENIs ---------------------------------------------------------

    def allocate(self, subnets: dict, nats: dict, endpoints: dict, enis: dict) -> None:
        """Give every NAT gateway, endpoint ENI and plain ENI without an address the lowest
        free one of its subnet, after every explicit address is known (declaration order)."""
        wanting: list[tuple[dict, str, int | None, str]] = []  # (holder, key, index, where)
        in_use: dict[str, set[IPv4Address]] = {}

        def note(subnet_id: str, ip: IPv4Address | None) -> None:
            if ip is not None:
                in_use.setdefault(subnet_id, set()).add(ip)

        for nat in nats.values():
            self.nat_outside_subnet(nat, subnets.get(nat["subnet_id"]))
            for i, ip in enumerate(nat["private_ips"]):
                note(nat["subnet_id"], ip)
            missing = len(nat["elastic_ips"]) - len(nat["private_ips"])
            nat["private_ips"].extend([None] * max(missing, 0))
            for i, ip in enumerate(nat["private_ips"]):
                if ip is None:
                    wanting.append((nat, nat["subnet_id"], i, nat["_where"]))
        for ep in endpoints.values():
            for eni in ep.get("network_interfaces", ()):
                note(eni["subnet_id"], eni["private_ip"])
                if eni["private_ip"] is None:
                    wanting.append((eni, eni["subnet_id"], None, eni["_where"]))
        for eni in enis.values():
            note(eni["subnet_id"], eni["private_ip"])
            for ip in eni["secondary_private_ips"]:
                note(eni["subnet_id"], ip)
            if eni["private_ip"] is None:
                wanting.append((eni, eni["subnet_id"], None, eni["_where"]))
        for holder, subnet_id, index, where in wanting:
            subnet = subnets.get(subnet_id)
            if subnet is None:
                self.fail(_join(where, "subnet_id"), f"refers to subnet {subnet_id!r}, which is not defined")
            used = in_use.setdefault(subnet_id, set())
            try:
                ip = next_free_address(subnet["cidr"], used, subnet_id=subnet_id)
            except SubnetOutOfAddresses as exc:
                self.fail(where, f"no address left for it: {exc}")
            used.add(ip)
            if index is None:
                holder["private_ip"] = ip
            else:
                holder["private_ips"][index] = ip

    def nat_outside_subnet(self, nat: dict, subnet: dict | None) -> None:
        """A NAT gateway address outside its subnet (moto writes such snapshots; AWS never
        does): refused with a hint, or with ``repair`` cleared for allocation, with a warning."""
        if subnet is None:
            return  # reported by allocation
        outside = [(i, ip) for i, ip in enumerate(nat["private_ips"]) if ip is not None and ip not in subnet["cidr"]]
        if not outside:
            return
        if not self.repair:
            i, ip = outside[0]
            at = _join(nat["_where"], "private_ip" if i == 0 else f"secondary_private_ips[{i - 1}]")
            self.fail(at, f"{ip} is not inside {nat['subnet_id']} ({subnet['cidr']}); {REPAIR_HINT}")
        for i, _ip in outside:
            nat["private_ips"][i] = None
        nat["_repaired"] = outside

    def warn_repaired(self, nats: dict) -> None:
        for nat in nats.values():
            if "_repaired" in nat:
                moved = ", ".join(f"{ip} -> {nat['private_ips'][i]}" for i, ip in nat["_repaired"])
                warn_repair(f"{self.file or 'topology'}: {nat['_where']}: NAT gateway {nat['id']} had an address "
                            f"outside its subnet {nat['subnet_id']}; re-allocated from the subnet: {moved}")

    def managed_interfaces(self, nats: dict, endpoints: dict) -> list[NetworkInterface]:
        out = []
        for nat in nats.values():
            out.append(NetworkInterface(
                nat["network_interface_id"], nat["subnet_id"], nat["private_ips"][0], (),
                tuple(nat["private_ips"][1:]), nat["elastic_ips"][0].public_ip if nat["elastic_ips"] else None,
                kind="nat_gateway", description=f"Interface for NAT Gateway {nat['id']}", managed_by=nat["id"],
            ))
            self.where[nat["network_interface_id"]] = nat["_where"]
        for ep in endpoints.values():
            for eni in ep.get("network_interfaces", ()):
                out.append(NetworkInterface(
                    eni["id"], eni["subnet_id"], eni["private_ip"], tuple(ep["security_group_ids"]),
                    kind="vpc_endpoint", description=f"VPC Endpoint Interface {ep['id']}", managed_by=ep["id"],
                ))
                self.where[eni["id"]] = eni["_where"]
        return out

    @staticmethod
    def endpoint(ep: dict) -> VpcEndpoint:
        if ep["endpoint_type"] == _GWLB:
            return VpcEndpoint(ep["id"], ep["vpc_id"], ep["service_name"], _GWLB, name=ep["name"])
        if ep["endpoint_type"] == "gateway":
            return VpcEndpoint(ep["id"], ep["vpc_id"], ep["service_name"], "gateway",
                               route_table_ids=ep["route_table_ids"], prefix_list_id=ep["prefix_list_id"], name=ep["name"])
        return VpcEndpoint(ep["id"], ep["vpc_id"], ep["service_name"], "interface",
                           subnet_ids=ep["subnet_ids"], security_group_ids=tuple(ep["security_group_ids"]),
                           private_dns_enabled=ep["private_dns_enabled"], dns_names=ep["dns_names"],
                           network_interface_ids=tuple(e["id"] for e in ep["network_interfaces"]), name=ep["name"])

    @staticmethod
    def interface(e: dict) -> NetworkInterface:
        return NetworkInterface(e["id"], e["subnet_id"], e["private_ip"], tuple(e["security_group_ids"]),
                                e["secondary_private_ips"], e["public_ip"], e["kind"], e["description"],
                                e["instance_id"], None, e["source_dest_check"])
