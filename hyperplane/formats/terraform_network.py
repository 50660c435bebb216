"""Terraform's network resources as our topology's: VPCs, subnets, route tables and routes,
gateways, endpoints, peerings, prefix lists, security groups and network ACLs.

Terraform's own semantics, applied here (the AWS provider's documentation):

- ``aws_security_group``: "When creating a new Security Group inside a VPC, Terraform will
  remove this default rule [egress allow-all], and require you specifically re-create it if
  you desire that rule": a group has exactly the rules written (``egress: []`` otherwise);
- ``aws_default_security_group``, ``aws_default_network_acl``, ``aws_default_route_table``:
  Terraform removes every rule / route of the adopted default and puts what is written;
- an inline block list (``ingress``, ``route``) that a plan marks unknown but the configuration
  does not write is empty (it is computed from the separate rule / route resources).
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from hyperplane.formats.terraform_document import Instance
from hyperplane.formats.terraform_resources import Translator, synthesized_id
from hyperplane.formats.terraform_rules import ROUTE_TARGETS, acl_entry, protocol_of, rule_fields

__all__ = ["read_network"]

_ALLOW_ALL = [{"rule_number": 100, "protocol": "all", "cidr": "0.0.0.0/0", "rule_action": "allow"}]


def read_network(t: Translator) -> None:
    _vpcs(t)
    _prefix_lists(t)
    _subnets(t)
    _route_tables(t)
    _gateways(t)
    _endpoints(t)
    _security_groups(t)
    _network_acls(t)
    _routes(t)
    _peerings(t)


def _blocks(t: Translator, inst: Instance, name: str) -> list[dict]:
    value = t.tf.known(inst, name)
    if isinstance(value, dict):  # a single nested block written as an object
        value = [value]
    if not isinstance(value, list):
        return []
    return [b if isinstance(b, dict) else t.fail(inst, (name, i), "expected an object") for i, b in enumerate(value)]


def _vpcs(t: Translator) -> None:
    tf = t.tf
    for vpc in tf.of_type("aws_vpc"):
        cidr = tf.known(vpc, "cidr_block")
        if cidr is None:
            t.fail(vpc, ("cidr_block",), "the VPC's CIDR is unknown (an IPAM pool allocation is not read)")
        item = t.add("vpcs", vpc, {"id": vpc.id, "cidrs": [str(t.cidr(vpc, ("cidr_block",), cidr))]})
        vpc.extra["item"] = item
    for assoc in tf.of_type("aws_vpc_ipv4_cidr_block_association"):
        vpc_id = t.vpc_of(assoc)
        cidr = tf.known(assoc, "cidr_block")
        if cidr is None:
            t.fail(assoc, ("cidr_block",), "the CIDR is unknown (an IPAM pool allocation is not read)")
        t.by_id[vpc_id]["cidrs"].append(str(t.cidr(assoc, ("cidr_block",), cidr)))
    # the defaults a VPC has: adopted by aws_default_* (below), or AWS's own, declared only when
    # the document gives them real ids other resources may name
    for vpc in tf.of_type("aws_vpc"):
        suffix = vpc.id[len("vpc-"):]
        item = vpc.extra["item"]
        if vpc.extra["main_route_table_id"] != f"rtb-{suffix}-main":
            item["main_route_table_id"] = vpc.extra["main_route_table_id"]
        if vpc.extra["default_network_acl_id"] != f"acl-{suffix}-default":
            item["default_network_acl_id"] = vpc.extra["default_network_acl_id"]
        if vpc.extra["default_security_group_id"] != f"sg-{suffix}-default":
            item["default_security_group_id"] = vpc.extra["default_security_group_id"]
    for main in tf.of_type("aws_main_route_table_association"):
        vpc_id = t.vpc_of(main)
        t.by_id[vpc_id]["main_route_table_id"] = t.id_of(main, ("route_table_id",), ("rtb",))


def _default_of(t: Translator, inst: Instance, attribute: str, vpc_attribute: str, prefix: str) -> tuple[str, str]:
    """(id, VPC id) of an ``aws_default_*`` resource: the VPC default its attribute names."""
    tf = t.tf
    refs, _ = tf.references(inst, attribute)
    for ref in refs:
        if ref.target.type == "aws_vpc":
            return ref.target.extra[vpc_attribute], ref.target.id
    known = tf.known(inst, attribute) or tf.known(inst, "id")
    for vpc in tf.of_type("aws_vpc"):
        if known in (vpc.extra[vpc_attribute], vpc.extra.get("main_route_table_id")) or tf.known(inst, "vpc_id") == vpc.id:
            return (known if isinstance(known, str) and known.startswith(prefix + "-") else vpc.extra[vpc_attribute]), vpc.id
    return t.fail(inst, (attribute,), "names the default of no VPC of this document")


def _declare_defaults(t: Translator, key: str) -> None:
    """AWS's defaults of VPCs whose real ids the document gives, when no aws_default_* adopts them
    (a state names them; a plan's VPC gets the topology reader's own defaults)."""
    for vpc in t.tf.of_type("aws_vpc"):
        given = vpc.extra["item"].get(key)
        if not given or given in t.by_id:
            continue
        if key == "main_route_table_id":
            t.add("route_tables", vpc, {"id": given, "vpc_id": vpc.id, "routes": []})
        elif key == "default_network_acl_id":
            t.add("network_acls", vpc, {"id": given, "vpc_id": vpc.id, "ingress": list(_ALLOW_ALL), "egress": list(_ALLOW_ALL)})
        else:  # AWS's default group: all from itself in, all out
            t.add("security_groups", vpc, {"id": given, "vpc_id": vpc.id, "name": "default",
                                           "ingress": [{"protocol": "all", "security_group_id": given}]})


def _prefix_lists(t: Translator) -> None:
    tf = t.tf
    for inst in tf.instances:
        if inst.type not in ("aws_prefix_list", "aws_ec2_managed_prefix_list") or not inst.id:
            continue
        name = t.string(inst, "name") or inst.address
        item: dict[str, Any] = {"id": inst.id, "name": name}
        cidrs = tf.known(inst, "cidr_blocks")
        if cidrs is None and tf.known(inst, "entries") is not None:
            cidrs = [e.get("cidr") for e in tf.known(inst, "entries") or () if isinstance(e, dict)]
        if cidrs is None and tf.known(inst, "entry") is not None:
            cidrs = [e.get("cidr") for e in _blocks(t, inst, "entry")]
        if isinstance(cidrs, list):
            item["cidrs"] = [str(t.cidr(inst, ("cidr_blocks", i), c)) for i, c in enumerate(cidrs)]
        elif inst.mode == "managed":
            item["cidrs"] = []
        t.add("prefix_lists", inst, item)
    for entry in tf.of_type("aws_ec2_managed_prefix_list_entry"):
        pl_id = t.id_of(entry, ("prefix_list_id",), ("pl",))
        t.by_id[pl_id].setdefault("cidrs", []).append(str(t.cidr(entry, ("cidr",), tf.known(entry, "cidr"))))


def _subnets(t: Translator) -> None:
    tf = t.tf
    for subnet in tf.of_type("aws_subnet"):
        cidr = tf.known(subnet, "cidr_block")
        if cidr is None:
            t.fail(subnet, ("cidr_block",), "the subnet's CIDR is unknown until apply (cidrsubnet of an unknown value?)")
        zone = tf.known(subnet, "availability_zone")
        zone_id = tf.known(subnet, "availability_zone_id")  # in applied state; a plan may not know it
        t.add("subnets", subnet, {"id": subnet.id, "vpc_id": t.vpc_of(subnet),
                                  "cidr": str(t.cidr(subnet, ("cidr_block",), cidr)),
                                  "availability_zone": zone if isinstance(zone, str) and zone else t.zone}
              | ({"availability_zone_id": zone_id} if isinstance(zone_id, str) and zone_id else {}))
        subnet.extra["public"] = bool(tf.known(subnet, "map_public_ip_on_launch"))


def _route_tables(t: Translator) -> None:
    tf = t.tf
    for table in tf.of_type("aws_route_table", "aws_default_route_table"):
        if table.type == "aws_default_route_table":
            rtb_id, vpc_id = _default_of(t, table, "default_route_table_id", "main_route_table_id", "rtb")
            table.id = rtb_id
            t.ids.add(rtb_id)
            t.by_id[vpc_id]["main_route_table_id"] = rtb_id
        else:
            vpc_id = t.vpc_of(table)
        item = t.add("route_tables", table, {"id": table.id, "vpc_id": vpc_id, "routes": []})
        table.extra["routes"] = [(("route", i), block) for i, block in enumerate(_blocks(t, table, "route"))]
        del item  # routes are added by _routes, once every target has its id
    _declare_defaults(t, "main_route_table_id")
    for assoc in tf.of_type("aws_route_table_association"):
        if not t.tf.is_set(assoc, "subnet_id"):
            t.tf.report.add("aws_route_table_association with a gateway (edge associations)")
            continue
        subnet = t.id_of(assoc, ("subnet_id",), ("subnet",))
        t.by_id[subnet]["route_table_id"] = t.id_of(assoc, ("route_table_id",), ("rtb",))


def _gateways(t: Translator) -> None:
    tf = t.tf
    for igw in tf.of_type("aws_internet_gateway"):
        vpc = t.vpc_of(igw) if tf.is_set(igw, "vpc_id") else None
        t.add("internet_gateways", igw, {"id": igw.id, "vpc_id": vpc})
    for attach in tf.of_type("aws_internet_gateway_attachment"):
        igw_id = t.id_of(attach, ("internet_gateway_id",), ("igw",))
        t.by_id[igw_id]["vpc_id"] = t.vpc_of(attach)
    eips = list(tf.of_type("aws_eip"))
    for nat in tf.of_type("aws_nat_gateway"):
        kind = t.string(nat, "connectivity_type") or "public"
        item: dict[str, Any] = {"id": nat.id, "subnet_id": t.id_of(nat, ("subnet_id",), ("subnet",)),
                                "connectivity_type": kind}
        private_ip = t.string(nat, "private_ip")
        if private_ip:
            item["private_ip"] = private_ip
        eni = t.string(nat, "network_interface_id")
        if eni:
            item["network_interface_id"] = eni
        if kind == "public":
            def same_index() -> str | None:  # terraform-aws-modules: allocation_id = local.nat_gateway_ips[i]
                match = [e for e in eips if e.module == nat.module and e.index == nat.index]
                return match[0].id if len(match) == 1 else (eips[0].id if len(eips) == 1 else None)
            allocation = t.id_of(nat, ("allocation_id",), ("eipalloc",), fallback=same_index)
            eip = next((e for e in eips if e.id == allocation), None)
            public = t.string(nat, "public_ip") or (tf.known(eip, "public_ip") if eip is not None else None)
            item["elastic_ips"] = [{"allocation_id": allocation, "public_ip": t.public_ip(public)}]
            if eip is not None:
                eip.extra["used"] = True
        t.add("nat_gateways", nat, item)


def _endpoints(t: Translator) -> None:
    tf = t.tf
    kinds = {"gateway": "gateway", "interface": "interface", "gatewayloadbalancer": "gateway_load_balancer"}
    for ep in tf.of_type("aws_vpc_endpoint"):
        service = t.string(ep, "service_name")
        if not service:
            t.fail(ep, ("service_name",), "the service name is unknown until apply")
        kind = kinds.get((t.string(ep, "vpc_endpoint_type") or "Gateway").lower())
        if kind is None:
            t.fail(ep, ("vpc_endpoint_type",), f"{tf.known(ep, 'vpc_endpoint_type')!r} is not Gateway, Interface or GatewayLoadBalancer")
        item: dict[str, Any] = {"id": ep.id, "vpc_id": t.vpc_of(ep), "service_name": service, "type": kind}
        if kind == "gateway":
            pl_id = ep.extra["prefix_list_id"]
            if pl_id is None:  # the service's AWS-managed list, by name, or a new one of its name
                named = [p["id"] for p in t.doc["prefix_lists"] if p.get("name") == service]
                pl_id = named[0] if named else synthesized_id("pl", str(service))
            if pl_id not in t.by_id:
                t.add("prefix_lists", ep, {"id": pl_id, "name": service})
            ep.extra["prefix_list_id"] = item["prefix_list_id"] = pl_id
            item["route_table_ids"] = t.ids_of(ep, ("route_table_ids",), ("rtb",))
        elif kind == "interface":
            item["subnet_ids"] = t.ids_of(ep, ("subnet_ids",), ("subnet",))
            groups = t.ids_of(ep, ("security_group_ids",), ("sg",))
            if groups:
                item["security_group_ids"] = groups
            dns = tf.known(ep, "private_dns_enabled")
            item["private_dns_enabled"] = bool(dns) if dns is not None else False
            # the endpoint records only its ENIs' ids; a data.aws_network_interface gives their addresses
            data = {d.values.get("id"): d for d in tf.instances if d.mode == "data" and d.type == "aws_network_interface"}
            enis = [data[i] for i in tf.known(ep, "network_interface_ids") or () if i in data]
            if enis:
                item["network_interfaces"] = [{"id": d.values["id"], "subnet_id": d.values.get("subnet_id"),
                                               "private_ip": d.values.get("private_ip")} for d in enis]
        t.add("vpc_endpoints", ep, item)
    for assoc in tf.of_type("aws_vpc_endpoint_route_table_association", "aws_vpc_endpoint_subnet_association",
                            "aws_vpc_endpoint_security_group_association"):
        ep_id = t.id_of(assoc, ("vpc_endpoint_id",), ("vpce",))
        attribute, key, prefix = {
            "aws_vpc_endpoint_route_table_association": ("route_table_id", "route_table_ids", "rtb"),
            "aws_vpc_endpoint_subnet_association": ("subnet_id", "subnet_ids", "subnet"),
            "aws_vpc_endpoint_security_group_association": ("security_group_id", "security_group_ids", "sg"),
        }[assoc.type]
        values = t.by_id[ep_id].setdefault(key, [])
        found = t.id_of(assoc, (attribute,), (prefix,))
        if found not in values:
            values.append(found)


def _security_groups(t: Translator) -> None:
    tf = t.tf
    for sg in tf.of_type("aws_security_group", "aws_default_security_group"):
        if sg.type == "aws_default_security_group":
            vpc_id = t.vpc_of(sg)
            vpc = next(v for v in tf.of_type("aws_vpc") if v.id == vpc_id)
            sg.id = vpc.extra["default_security_group_id"]
            t.ids.add(sg.id)
            t.by_id[vpc_id]["default_security_group_id"] = sg.id
            name = "default"
        else:
            vpc_id, name = t.vpc_of(sg), t.string(sg, "name") or sg.address
        item = t.add("security_groups", sg, {"id": sg.id, "vpc_id": vpc_id, "name": name,
                                             "description": t.string(sg, "description") or "",
                                             "ingress": [], "egress": []})
        item["name"] = name
        for direction in ("ingress", "egress"):
            for i, block in enumerate(_blocks(t, sg, direction)):
                _sg_rules(t, sg, (direction, i), block, item[direction], sg.id)
    _declare_defaults(t, "default_security_group_id")
    for rule in tf.of_type("aws_security_group_rule"):
        direction = str(t.string(rule, "type"))
        if direction not in ("ingress", "egress"):
            t.fail(rule, ("type",), f"{direction!r} is not ingress or egress")
        sg_id = t.id_of(rule, ("security_group_id",), ("sg",))
        _sg_rules(t, rule, (), rule.values, t.by_id[sg_id][direction], sg_id)
    for rule in tf.of_type("aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule"):
        sg_id = t.id_of(rule, ("security_group_id",), ("sg",))
        block = dict(rule.values, protocol=rule.values.get("ip_protocol"),
                     cidr_blocks=[rule.values["cidr_ipv4"]] if rule.values.get("cidr_ipv4") else [],
                     ipv6_cidr_blocks=[rule.values["cidr_ipv6"]] if rule.values.get("cidr_ipv6") else [],
                     prefix_list_ids=[], security_groups=[])
        direction = "ingress" if rule.type.endswith("ingress_rule") else "egress"
        _sg_rules(t, rule, (), block, t.by_id[sg_id][direction], sg_id,
                  peers={"prefix_list_id": ("pl",), "referenced_security_group_id": ("sg",)})


def _sg_rules(t: Translator, inst: Instance, path: tuple, block: dict, out: list, own: str,
              peers: dict[str, tuple[str, ...]] | None = None) -> None:
    """One Terraform rule block as one rule of ours per peer (a CIDR, a prefix list, a group)."""
    protocol = protocol_of(block.get("protocol"), lambda problem: t.fail(inst, (*path, "protocol"), problem))
    fields = rule_fields(protocol, block.get("from_port"), block.get("to_port"))
    if block.get("description"):
        fields["description"] = str(block["description"])
    for i, cidr in enumerate(block.get("cidr_blocks") or ()):
        out.append(dict(fields, cidr=str(t.cidr(inst, (*path, "cidr_blocks", i), cidr))))
    if block.get("ipv6_cidr_blocks"):
        t.tf.report.add("IPv6 security group rules", len(block["ipv6_cidr_blocks"]))
    groups: list[str] = []
    for attribute, prefixes in (peers or {"prefix_list_ids": ("pl",), "security_groups": ("sg",),
                                          "source_security_group_id": ("sg",)}).items():
        if t.tf.is_set(inst, *path, attribute):
            for peer in t.ids_of(inst, (*path, attribute), prefixes):
                key = "prefix_list_id" if peer.startswith("pl-") else "security_group_id"
                if peer.startswith("sg-"):
                    groups.append(peer)
                out.append(dict(fields, **{key: peer}))
    if block.get("self") and own not in groups:
        out.append(dict(fields, security_group_id=own))


def _network_acls(t: Translator) -> None:
    tf = t.tf
    for acl in tf.of_type("aws_network_acl", "aws_default_network_acl"):
        if acl.type == "aws_default_network_acl":
            acl.id, vpc_id = _default_of(t, acl, "default_network_acl_id", "default_network_acl_id", "acl")
            t.ids.add(acl.id)
            t.by_id[vpc_id]["default_network_acl_id"] = acl.id
        else:
            vpc_id = t.vpc_of(acl)
        item = t.add("network_acls", acl, {"id": acl.id, "vpc_id": vpc_id, "ingress": [], "egress": []})
        for direction in ("ingress", "egress"):
            for i, block in enumerate(_blocks(t, acl, direction)):
                _acl_entry(t, acl, (direction, i), block, direction == "egress", item[direction])
        if tf.is_set(acl, "subnet_ids"):
            for subnet in t.ids_of(acl, ("subnet_ids",), ("subnet",)):
                t.by_id[subnet]["network_acl_id"] = acl.id
    _declare_defaults(t, "default_network_acl_id")
    for rule in tf.of_type("aws_network_acl_rule"):
        acl_id = t.id_of(rule, ("network_acl_id",), ("acl",))
        egress = bool(tf.known(rule, "egress"))
        _acl_entry(t, rule, (), rule.values, egress, t.by_id[acl_id]["egress" if egress else "ingress"])
    for assoc in tf.of_type("aws_network_acl_association"):
        subnet = t.id_of(assoc, ("subnet_id",), ("subnet",))
        t.by_id[subnet]["network_acl_id"] = t.id_of(assoc, ("network_acl_id",), ("acl",))


def _acl_entry(t: Translator, inst: Instance, path: tuple, block: dict, egress: bool, out: list) -> None:
    if not block.get("cidr_block"):
        t.tf.report.add("IPv6 network ACL rules")
        return
    protocol = protocol_of(block.get("protocol"), lambda problem: t.fail(inst, (*path, "protocol"), problem))
    cidr = t.cidr(inst, (*path, "cidr_block"), block["cidr_block"])
    key = "rule_no" if path else "rule_number"
    if not isinstance(block.get(key), int) or isinstance(block.get(key), bool):
        t.fail(inst, (*path, key), f"expected a rule number, not {block.get(key)!r}")
    out.append(acl_entry(block, egress, cidr, protocol))


def _routes(t: Translator) -> None:
    tf = t.tf
    routes: list[tuple[Instance, tuple, dict, str]] = []
    for table in tf.of_type("aws_route_table", "aws_default_route_table"):
        routes.extend((table, path, block, table.id) for path, block in table.extra["routes"])
    for route in tf.of_type("aws_route"):
        routes.append((route, (), route.values, t.id_of(route, ("route_table_id",), ("rtb",))))
    for inst, path, block, rtb_id in routes:
        inline = bool(path)
        cidr_key = "cidr_block" if inline else "destination_cidr_block"
        if block.get(cidr_key):
            destination = str(t.cidr(inst, (*path, cidr_key), block[cidr_key]))
        elif tf.is_set(inst, *path, "destination_prefix_list_id"):
            destination = t.id_of(inst, (*path, "destination_prefix_list_id"), ("pl",))
        else:
            tf.report.add("IPv6 routes")
            continue
        target = None
        for attribute, prefixes in ROUTE_TARGETS.items():
            if tf.is_set(inst, *path, attribute):
                if block.get(attribute) == "local":
                    break
                target = t.id_of(inst, (*path, attribute), prefixes)
                break
        else:
            if tf.is_set(inst, *path, "core_network_arn"):
                tf.report.add("routes to a Cloud WAN core network")
                continue
            t.fail(inst, path, "a route without a target")
        if target is None:
            continue  # the local route: the topology reader adds it
        rtb = t.by_id[rtb_id]
        t.sub_item(f"route_tables[{t.doc['route_tables'].index(rtb)}].routes[{len(rtb['routes'])}]", inst)
        rtb["routes"].append({"destination": destination, "target": target})


def _peerings(t: Translator) -> None:
    tf = t.tf
    for pcx in tf.of_type("aws_vpc_peering_connection"):
        peer = t.string(pcx, "peer_vpc_id")
        refs, _ = tf.references(pcx, "peer_vpc_id")
        peer = next((r.target.id for r in refs if r.target.type == "aws_vpc"), peer)
        if not peer:
            t.fail(pcx, ("peer_vpc_id",), "the peer VPC is unknown")
        item: dict[str, Any] = {"id": pcx.id, "vpc_id": t.vpc_of(pcx), "peer_vpc_id": peer}
        if peer not in t.by_id:  # the peer's CIDRs are the destinations routed to the peering
            item["peer_cidrs"] = sorted({r["destination"] for table in t.doc["route_tables"] for r in table["routes"]
                                         if r["target"] == pcx.id and not r["destination"].startswith("pl-")},
                                        key=IPv4Network)
        t.add("vpc_peering_connections", pcx, item)
