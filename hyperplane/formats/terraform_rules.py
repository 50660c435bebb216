"""Terraform's rule and route blocks as rules and routes of our topology format.

Security group rules (inline ``ingress``/``egress`` blocks, ``aws_security_group_rule``,
``aws_vpc_security_group_ingress_rule``/``egress_rule``), network ACL entries (inline blocks,
``aws_network_acl_rule``) and route blocks (inline ``route``, ``aws_route``) share their field
names across resource types; what differs is passed in. IPv6 rules and routes are not
emulated: they are counted in the load's report.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any, Callable

__all__ = ["PROTOCOLS", "ROUTE_TARGETS", "acl_entry", "protocol_of", "rule_fields"]

#: Terraform protocol spellings -> ours (numbers stay numbers; ``-1`` and ``all`` mean every protocol).
PROTOCOLS = {"-1": "all", "all": "all", "tcp": "tcp", "udp": "udp", "icmp": "icmp", "6": "tcp", "17": "udp", "1": "icmp"}

#: Route target attributes and the id prefixes each may name (``instance_id``: the instance's ENI).
ROUTE_TARGETS: dict[str, tuple[str, ...]] = {
    "gateway_id": ("igw", "vgw", "vpce"),
    "nat_gateway_id": ("nat",),
    "network_interface_id": ("eni",),
    "vpc_peering_connection_id": ("pcx",),
    "vpc_endpoint_id": ("vpce",),
    "transit_gateway_id": ("tgw",),
    "egress_only_gateway_id": ("eigw",),
    "carrier_gateway_id": ("cagw",),
    "local_gateway_id": ("lgw",),
    "instance_id": ("eni",),
}


def protocol_of(value: Any, fail: Callable[[str], Any]) -> str:
    text = str(value).strip().lower()
    if text in PROTOCOLS:
        return PROTOCOLS[text]
    if text.isascii() and text.isdigit() and 0 <= int(text) <= 255:
        return text
    return fail(f"{value!r} is not a protocol (-1/all, tcp, udp, icmp or a number 0-255)")


def rule_fields(protocol: str, from_port: Any, to_port: Any, icmp_type: Any = None, icmp_code: Any = None) -> dict:
    """Protocol, ports and ICMP fields of one rule in our format.

    Terraform writes an ICMP rule's type in ``from_port`` and its code in ``to_port`` (-1: any)
    for security groups; network ACL rules have ``icmp_type``/``icmp_code`` of their own.
    """
    out: dict[str, Any] = {"protocol": protocol}
    if protocol in ("tcp", "udp", "6", "17"):
        low = int(from_port) if from_port not in (None, "") else 0
        high = int(to_port) if to_port not in (None, "") else 65535
        if (low, high) != (0, 65535):
            out["ports"] = low if low == high else f"{low}-{high}"
    elif protocol in ("icmp", "1"):
        kind = icmp_type if icmp_type is not None else from_port
        code = icmp_code if icmp_type is not None else to_port
        if kind not in (None, "", -1, "-1"):
            out["icmp_type"] = int(kind)
            if code not in (None, "", -1, "-1"):
                out["icmp_code"] = int(code)
    return out


def acl_entry(block: dict, egress: bool, cidr: IPv4Network, protocol: str) -> dict:
    """A network ACL entry from an inline block or an ``aws_network_acl_rule``'s values."""
    number = block["rule_no"] if "rule_no" in block else block["rule_number"]  # checked by the caller
    action = block.get("action", block.get("rule_action"))
    entry = {"rule_number": int(number), "rule_action": str(action).lower(), "cidr": str(cidr)}
    entry.update(rule_fields(protocol, block.get("from_port"), block.get("to_port"),
                             block.get("icmp_type") if protocol in ("icmp", "1") else None,
                             block.get("icmp_code") if protocol in ("icmp", "1") else None))
    return entry
