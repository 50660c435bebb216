"""Writing a Topology as the JSON of ``terraform show -json`` of a state (format 1.0).

Each resource becomes the Terraform resource a user would have written for it, with the values
the AWS provider records in its state (ids, addresses, inline rule and route blocks):
``aws_vpc`` (+ ``aws_vpc_ipv4_cidr_block_association``), ``aws_default_route_table`` /
``aws_route_table`` (+ ``aws_route_table_association``), ``aws_default_network_acl`` /
``aws_network_acl``, ``aws_default_security_group`` / ``aws_security_group`` (every rule
inline, the egress allow-all included: Terraform deletes AWS's own), ``aws_internet_gateway``,
``aws_eip`` + ``aws_nat_gateway``, ``aws_vpc_endpoint``, ``aws_vpc_peering_connection``,
``aws_instance`` (an ENI with an instance id) or ``aws_network_interface``, ``aws_lambda_function``.
AWS-managed prefix lists are ``data.aws_prefix_list`` and an interface endpoint's ENIs
``data.aws_network_interface`` (a state holds data sources too; the endpoint itself records
only their ids). ``read_terraform`` of the result gives the same network.

Not written: IAM roles (the reader gives every function the default role), published
function versions, ENI kinds other than instances (a plain ENI reads back as ``interface``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from hyperplane.model import NetworkAclEntry, SecurityGroupRule, Topology, has_ports

__all__ = ["terraform_state_document", "write_terraform_state"]

_PROVIDER = "registry.terraform.io/hashicorp/aws"
_TARGET_ATTRIBUTES = {"igw": "gateway_id", "vgw": "gateway_id", "nat": "nat_gateway_id", "eni": "network_interface_id",
                      "pcx": "vpc_peering_connection_id", "vpce": "vpc_endpoint_id", "tgw": "transit_gateway_id",
                      "eigw": "egress_only_gateway_id", "cagw": "carrier_gateway_id", "lgw": "local_gateway_id"}
_ENDPOINT_TYPES = {"gateway": "Gateway", "interface": "Interface", "gateway_load_balancer": "GatewayLoadBalancer"}


def _name(resource_id: str) -> str:
    """A Terraform resource name from an id (``subnet-private-a`` -> ``subnet_private_a``)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", resource_id).replace("-", "_")
    return name if name[:1].isalpha() or name[:1] == "_" else f"r_{name}"


def _protocol(protocol: int) -> str:
    return {-1: "-1", 6: "tcp", 17: "udp", 1: "icmp"}.get(protocol, str(protocol))


def _sg_block(rule: SecurityGroupRule, own: str) -> dict[str, Any]:
    low, high = rule.port_range if has_ports(rule.protocol) else (0, 0)
    if rule.protocol == 1:
        low, high = rule.icmp_type, rule.icmp_code
    return {"protocol": _protocol(rule.protocol), "from_port": low, "to_port": high,
            "cidr_blocks": [str(rule.cidr)] if rule.cidr is not None else [], "ipv6_cidr_blocks": [],
            "prefix_list_ids": [rule.prefix_list_id] if rule.prefix_list_id else [],
            "security_groups": [rule.security_group_id] if rule.security_group_id and rule.security_group_id != own else [],
            "self": rule.security_group_id == own, "description": rule.description}


def _acl_block(entry: NetworkAclEntry) -> dict[str, Any]:
    low, high = entry.port_range if has_ports(entry.protocol) else (0, 0)
    return {"rule_no": entry.rule_number, "action": entry.rule_action, "protocol": str(entry.protocol),
            "from_port": low, "to_port": high, "cidr_block": str(entry.cidr), "ipv6_cidr_block": "",
            "icmp_type": entry.icmp_type if entry.protocol == 1 else 0,
            "icmp_code": entry.icmp_code if entry.protocol == 1 else 0}


def terraform_state_document(topology: Topology) -> dict[str, Any]:
    """The topology as the document ``terraform show -json`` prints for a state."""
    t = topology
    resources: list[dict[str, Any]] = []

    def add(type_: str, resource_id: str, values: dict[str, Any], mode: str = "managed") -> None:
        name = _name(resource_id)
        address = f"{'data.' if mode == 'data' else ''}{type_}.{name}"
        resources.append({"address": address, "mode": mode, "type": type_, "name": name, "provider_name": _PROVIDER,
                          "schema_version": 0, "values": values, "sensitive_values": {}})

    def tags(name: str) -> dict[str, str]:
        return {"Name": name} if name else {}

    for vpc in t.vpcs.values():
        add("aws_vpc", vpc.id, {"id": vpc.id, "cidr_block": str(vpc.cidrs[0]), "owner_id": t.account_id,
                                "arn": f"arn:aws:ec2:{t.region}:{t.account_id}:vpc/{vpc.id}",
                                "main_route_table_id": vpc.main_route_table_id,
                                "default_route_table_id": vpc.main_route_table_id,
                                "default_network_acl_id": vpc.default_network_acl_id,
                                "default_security_group_id": vpc.default_security_group_id, "tags": tags(vpc.name)})
        for n, cidr in enumerate(vpc.cidrs[1:], start=1):
            add("aws_vpc_ipv4_cidr_block_association", f"{vpc.id}-cidr-{n}",
                {"id": f"vpc-cidr-assoc-{_name(vpc.id)}-{n}", "vpc_id": vpc.id, "cidr_block": str(cidr)})
    for subnet in t.subnets.values():
        add("aws_subnet", subnet.id, {"id": subnet.id, "vpc_id": subnet.vpc_id, "cidr_block": str(subnet.cidr),
                                      "availability_zone": subnet.availability_zone, "map_public_ip_on_launch": False,
                                      "tags": tags(subnet.name)}
            | ({"availability_zone_id": subnet.availability_zone_id} if subnet.availability_zone_id else {}))
    for rtb in t.route_tables.values():
        routes = []
        for route in rtb.routes:
            if route.target == "local":
                continue
            block: dict[str, Any] = {attribute: "" for attribute in sorted(set(_TARGET_ATTRIBUTES.values()))}
            block.update(cidr_block=str(route.destination_cidr or ""), destination_prefix_list_id=route.destination_prefix_list_id or "",
                         ipv6_cidr_block="")
            block[_TARGET_ATTRIBUTES[route.target.split("-")[0]]] = route.target
            routes.append(block)
        values = {"id": rtb.id, "vpc_id": rtb.vpc_id, "route": routes, "tags": tags(rtb.name), "owner_id": t.account_id}
        if rtb.is_main:
            add("aws_default_route_table", rtb.id, dict(values, default_route_table_id=rtb.id))
        else:
            add("aws_route_table", rtb.id, values)
    main = {vpc.id: vpc.main_route_table_id for vpc in t.vpcs.values()}
    for subnet in t.subnets.values():
        if subnet.route_table_id != main.get(subnet.vpc_id):
            add("aws_route_table_association", f"{subnet.id}-rtb",
                {"id": f"rtbassoc-{_name(subnet.id)}", "subnet_id": subnet.id, "route_table_id": subnet.route_table_id,
                 "gateway_id": ""})
    for acl in t.network_acls.values():
        values = {"id": acl.id, "vpc_id": acl.vpc_id, "tags": tags(acl.name), "owner_id": t.account_id,
                  "subnet_ids": [s.id for s in t.subnets.values() if s.network_acl_id == acl.id],
                  "ingress": [_acl_block(e) for e in acl.ingress if e.rule_number != 32767],
                  "egress": [_acl_block(e) for e in acl.egress if e.rule_number != 32767]}
        if acl.is_default:
            add("aws_default_network_acl", acl.id, dict(values, default_network_acl_id=acl.id))
        else:
            add("aws_network_acl", acl.id, values)
    defaults = {vpc.default_security_group_id for vpc in t.vpcs.values()}
    for sg in t.security_groups.values():
        add("aws_default_security_group" if sg.id in defaults else "aws_security_group", sg.id,
            {"id": sg.id, "vpc_id": sg.vpc_id, "name": sg.name, "description": sg.description, "owner_id": t.account_id,
             "ingress": [_sg_block(r, sg.id) for r in sg.ingress], "egress": [_sg_block(r, sg.id) for r in sg.egress]})
    for igw in t.internet_gateways.values():
        add("aws_internet_gateway", igw.id, {"id": igw.id, "vpc_id": igw.vpc_id or "", "tags": tags(igw.name)})
    for pl in t.prefix_lists.values():
        add("aws_prefix_list", pl.id, {"id": pl.id, "prefix_list_id": pl.id, "name": pl.name,
                                       "cidr_blocks": [str(c) for c in pl.cidrs]}, mode="data")
    for nat in t.nat_gateways.values():
        pairs = nat.address_pairs
        for eip in nat.elastic_ips:
            add("aws_eip", eip.allocation_id, {"id": eip.allocation_id, "allocation_id": eip.allocation_id,
                                               "public_ip": str(eip.public_ip), "domain": "vpc",
                                               "network_interface": nat.network_interface_id})
        add("aws_nat_gateway", nat.id, {
            "id": nat.id, "subnet_id": nat.subnet_id, "connectivity_type": nat.connectivity_type,
            "allocation_id": nat.elastic_ips[0].allocation_id if nat.elastic_ips else None,
            "public_ip": str(pairs[0][1]) if pairs else "", "private_ip": str(nat.private_ips[0]),
            "network_interface_id": nat.network_interface_id,
            "secondary_allocation_ids": [eip.allocation_id for eip in nat.elastic_ips[1:]],
            "secondary_private_ip_addresses": [str(ip) for ip in nat.private_ips[1:]], "tags": tags(nat.name)})
    for ep in t.vpc_endpoints.values():
        enis = [e for e in t.network_interfaces.values() if e.managed_by == ep.id]
        add("aws_vpc_endpoint", ep.id, {
            "id": ep.id, "vpc_id": ep.vpc_id, "service_name": ep.service_name,
            "vpc_endpoint_type": _ENDPOINT_TYPES[ep.endpoint_type], "route_table_ids": list(ep.route_table_ids),
            "prefix_list_id": ep.prefix_list_id or "", "subnet_ids": list(ep.subnet_ids),
            "security_group_ids": list(ep.security_group_ids), "private_dns_enabled": ep.private_dns_enabled,
            "network_interface_ids": [e.id for e in enis], "tags": tags(ep.name)})
        for eni in enis:
            add("aws_network_interface", eni.id, {"id": eni.id, "subnet_id": eni.subnet_id,
                                                  "private_ip": str(eni.private_ip), "interface_type": "vpc_endpoint",
                                                  "security_groups": list(eni.security_group_ids)}, mode="data")
    for pcx in t.vpc_peering_connections.values():
        add("aws_vpc_peering_connection", pcx.id, {"id": pcx.id, "vpc_id": pcx.vpc_id, "peer_vpc_id": pcx.peer_vpc_id,
                                                    "tags": tags(pcx.name)})
    for eni in t.network_interfaces.values():
        if eni.managed_by or eni.kind in ("nat_gateway", "vpc_endpoint", "lambda"):
            continue
        common = {"subnet_id": eni.subnet_id, "private_ip": str(eni.private_ip),
                  "source_dest_check": eni.source_dest_check}
        if eni.instance_id:
            add("aws_instance", eni.instance_id, dict(common, id=eni.instance_id, primary_network_interface_id=eni.id,
                                                      vpc_security_group_ids=list(eni.security_group_ids),
                                                      secondary_private_ips=[str(ip) for ip in eni.secondary_private_ips],
                                                      public_ip=str(eni.public_ip) if eni.public_ip else "",
                                                      associate_public_ip_address=eni.public_ip is not None))
            continue
        ips = [str(eni.private_ip), *(str(ip) for ip in eni.secondary_private_ips)]
        add("aws_network_interface", eni.id, dict(common, id=eni.id, private_ips=ips, private_ip_list=ips,
                                                  security_groups=list(eni.security_group_ids),
                                                  description=eni.description))
        if eni.public_ip is not None:
            add("aws_eip", f"{eni.id}-eip", {"id": f"eipalloc-{_name(eni.id)}", "allocation_id": f"eipalloc-{_name(eni.id)}",
                                             "public_ip": str(eni.public_ip), "domain": "vpc", "network_interface": eni.id})
    for fn in t.functions.values():
        config = fn.vpc_config
        add("aws_lambda_function", fn.name, {
            "id": fn.name, "function_name": fn.name, "description": fn.description,
            "arn": f"arn:aws:lambda:{t.region}:{t.account_id}:function:{fn.name}",
            "vpc_config": [{"subnet_ids": list(config.subnet_ids), "security_group_ids": list(config.security_group_ids),
                            "vpc_id": t.vpc_of(config.subnet_ids[0]).id}] if config is not None else []})
    return {"format_version": "1.0", "terraform_version": "1.5.7", "values": {"root_module": {"resources": resources}}}


def write_terraform_state(topology: Topology, path: str | os.PathLike[str]) -> None:
    """Write ``terraform_state_document(topology)`` as JSON to ``path``."""
    Path(path).write_text(json.dumps(terraform_state_document(topology), indent=1) + "\n", encoding="utf-8")
