"""Writing a Topology in our own topology file format (YAML or JSON, ``docs/topology-format.md``),
every default spelled out, so that loading the result gives an equal topology."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from hyperplane.model import NetworkAclEntry, SecurityGroupRule, Topology, VpcConfig, has_ports, protocol_name

__all__ = ["dump_topology", "topology_document"]


# --------------------------------------------------------------------------------------------
# topology -> document


def _ports(port_range: tuple[int, int]) -> int | str:
    low, high = port_range
    return low if low == high else f"{low}-{high}"


def _rule_fields(protocol: int, port_range: tuple[int, int], icmp_type: int, icmp_code: int) -> dict:
    out: dict[str, Any] = {"protocol": protocol_name(protocol)}
    if has_ports(protocol):
        out["ports"] = _ports(port_range)
    if icmp_type != -1:
        out["icmp_type"] = icmp_type
    if icmp_code != -1:
        out["icmp_code"] = icmp_code
    return out


def _named(out: dict, name: str) -> dict:
    if name:
        out["name"] = name
    return out


def _vpc_config_doc(config: VpcConfig | None) -> dict | None:
    if config is None:
        return None
    return {"subnet_ids": list(config.subnet_ids), "security_group_ids": list(config.security_group_ids)}


def topology_document(topology: Topology) -> dict:
    """The topology as a document of our format (plain dicts, lists, strings and ints), with
    every default written out; :func:`parse_topology` of it gives an equal topology."""
    t = topology
    doc: dict[str, Any] = {"account_id": t.account_id, "region": t.region}
    doc["vpcs"] = [
        _named({"id": v.id}, v.name) | {
            "cidrs": [str(c) for c in v.cidrs], "main_route_table_id": v.main_route_table_id,
            "default_network_acl_id": v.default_network_acl_id,
            "default_security_group_id": v.default_security_group_id,
        } for v in t.vpcs.values()
    ]
    doc["subnets"] = [
        _named({"id": s.id}, s.name) | {
            "vpc_id": s.vpc_id, "cidr": str(s.cidr), "availability_zone": s.availability_zone,
            "route_table_id": s.route_table_id, "network_acl_id": s.network_acl_id,
        } | ({"availability_zone_id": s.availability_zone_id} if s.availability_zone_id else {})
        for s in t.subnets.values()
    ]
    doc["route_tables"] = [
        _named({"id": rt.id}, rt.name) | {"vpc_id": rt.vpc_id, "routes": [
            {"destination": str(r.destination), "target": r.target} | ({"state": r.state} if r.state != "active" else {})
            for r in rt.routes
        ]} for rt in t.route_tables.values()
    ]

    def sg_rule(rule: SecurityGroupRule) -> dict:
        out = _rule_fields(rule.protocol, rule.port_range, rule.icmp_type, rule.icmp_code)
        if rule.cidr is not None:
            out["cidr"] = str(rule.cidr)
        elif rule.prefix_list_id is not None:
            out["prefix_list_id"] = rule.prefix_list_id
        else:
            out["security_group_id"] = rule.security_group_id
        if rule.description:
            out["description"] = rule.description
        return out

    doc["security_groups"] = [
        {"id": g.id, "vpc_id": g.vpc_id, "name": g.name}
        | ({"description": g.description} if g.description else {})
        | {"ingress": [sg_rule(r) for r in g.ingress], "egress": [sg_rule(r) for r in g.egress]}
        for g in t.security_groups.values()
    ]

    def acl_entry(e: NetworkAclEntry) -> dict:
        return ({"rule_number": e.rule_number} | _rule_fields(e.protocol, e.port_range, e.icmp_type, e.icmp_code)
                | {"cidr": str(e.cidr), "rule_action": e.rule_action})

    doc["network_acls"] = [
        _named({"id": a.id}, a.name) | {
            "vpc_id": a.vpc_id,
            "ingress": [acl_entry(e) for e in a.entries if not e.egress],
            "egress": [acl_entry(e) for e in a.entries if e.egress],
        } for a in t.network_acls.values()
    ]
    doc["internet_gateways"] = [_named({"id": g.id}, g.name) | {"vpc_id": g.vpc_id} for g in t.internet_gateways.values()]
    doc["nat_gateways"] = [
        _named({"id": n.id}, n.name) | {
            "subnet_id": n.subnet_id, "connectivity_type": n.connectivity_type,
            "private_ip": str(n.private_ip),
        } | ({"secondary_private_ips": [str(ip) for ip in n.private_ips[1:]]} if len(n.private_ips) > 1 else {})
        | ({"elastic_ips": [{"allocation_id": e.allocation_id, "public_ip": str(e.public_ip)} for e in n.elastic_ips]}
           if n.elastic_ips else {})
        | {"network_interface_id": n.network_interface_id}
        for n in t.nat_gateways.values()
    ]
    doc["prefix_lists"] = [{"id": p.id, "name": p.name, "cidrs": [str(c) for c in p.cidrs]} for p in t.prefix_lists.values()]
    endpoints = []
    for ep in t.vpc_endpoints.values():
        out = _named({"id": ep.id}, ep.name) | {"vpc_id": ep.vpc_id, "service_name": ep.service_name, "type": ep.endpoint_type}
        if ep.is_gateway:
            out |= {"prefix_list_id": ep.prefix_list_id, "route_table_ids": list(ep.route_table_ids)}
        elif ep.is_interface:  # a Gateway Load Balancer endpoint is a route target only: nothing more
            out |= {
                "subnet_ids": list(ep.subnet_ids), "security_group_ids": list(ep.security_group_ids),
                "private_dns_enabled": ep.private_dns_enabled, "dns_names": list(ep.dns_names),
                "network_interfaces": [
                    {"id": e.id, "subnet_id": e.subnet_id, "private_ip": str(e.private_ip)}
                    for e in (t.network_interfaces[i] for i in ep.network_interface_ids)
                ],
            }
        endpoints.append(out)
    doc["vpc_endpoints"] = endpoints
    enis = []
    for e in t.network_interfaces.values():
        if e.is_managed:
            continue  # written by their NAT gateway / endpoint; Lambda's are not topology
        out = {"id": e.id, "subnet_id": e.subnet_id, "private_ip": str(e.private_ip)}
        if e.secondary_private_ips:
            out["secondary_private_ips"] = [str(ip) for ip in e.secondary_private_ips]
        out["security_group_ids"] = list(e.security_group_ids)
        if e.public_ip is not None:
            out["public_ip"] = str(e.public_ip)
        out["kind"] = e.kind
        if e.description:
            out["description"] = e.description
        if e.instance_id is not None:
            out["instance_id"] = e.instance_id
        if not e.source_dest_check:
            out["source_dest_check"] = False
        enis.append(out)
    doc["network_interfaces"] = enis
    doc["vpc_peering_connections"] = [
        _named({"id": p.id}, p.name) | {"vpc_id": p.vpc_id, "peer_vpc_id": p.peer_vpc_id,
                                        "peer_cidrs": [str(c) for c in p.peer_cidrs]}
        | ({} if p.is_active else {"status": p.status})
        for p in t.vpc_peering_connections.values()
    ]
    functions = []
    for fn in t.functions.values():
        out = {"name": fn.name}
        if fn.description:
            out["description"] = fn.description
        out["role"] = {"arn": fn.role.arn, "permissions": list(fn.role.permissions),
                       "managed_policies": list(fn.role.managed_policies)}
        if fn.vpc_config is not None:
            out["vpc_config"] = _vpc_config_doc(fn.vpc_config)
        if fn.versions:
            out["versions"] = [{"version": v.version, "vpc_config": _vpc_config_doc(v.vpc_config)} for v in fn.versions]
        functions.append(out)
    doc["functions"] = functions
    doc["transit_gateways"] = [_transit_gateway_doc(t, g.id, g.name) for g in t.transit_gateways.values()]
    return {k: v for k, v in doc.items() if v != [] or k in ("account_id", "region")}


def _transit_gateway_doc(t: Topology, tgw_id: str, name: str) -> dict:
    """One transit gateway with its route tables and attachments, as the reader takes them."""
    tables = []
    for rtb in t.transit_gateway_route_tables.values():
        if rtb.transit_gateway_id != tgw_id:
            continue
        routes = [{"destination": str(r.destination)} | ({"blackhole": True} if r.is_blackhole
                                                          else {"attachment_id": r.attachment_id})
                  for r in rtb.routes]
        tables.append(_named({"id": rtb.id}, rtb.name) | {"routes": routes, "propagations": list(rtb.propagations)})
    attachments = []
    for a in t.transit_gateway_attachments.values():
        if a.transit_gateway_id != tgw_id:
            continue
        out = _named({"id": a.id}, a.name) | {"type": a.resource_type}
        out |= {"vpc_id": a.resource_id, "subnet_ids": list(a.subnet_ids)} if a.resource_type == "vpc" \
            else {"resource_id": a.resource_id}
        if a.route_table_id is not None:
            out["route_table_id"] = a.route_table_id
        attachments.append(out)
    return _named({"id": tgw_id}, name) | {"route_tables": tables, "attachments": attachments}


def dump_topology(topology: Topology, path: str | os.PathLike[str]) -> None:
    """Write ``topology`` to ``path`` in our format: JSON for ``.json``, else YAML.

    Every default is written out, so :func:`load_topology` of the file gives an equal topology.
    """
    path = Path(path)
    doc = topology_document(topology)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False), encoding="utf-8")
