"""The topology file format's schema (the keys each part takes) and typed access to a parsed
document, where every failure is a TopologyError naming the file and the path."""

from __future__ import annotations

import difflib
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Iterable, NoReturn

from hyperplane.errors import TopologyError
from hyperplane.formats._source import ascii_int
from hyperplane.model import ALL_PORTS, ICMP, has_ports, parse_protocol, protocol_name

_TOP_LEVEL = (
    "account_id", "region", "vpcs", "subnets", "route_tables", "security_groups",
    "network_acls", "internet_gateways", "nat_gateways", "prefix_lists", "vpc_endpoints",
    "network_interfaces", "vpc_peering_connections", "functions", "transit_gateways",
)
_ID_PREFIX = {
    "vpcs": "vpc-", "subnets": "subnet-", "route_tables": "rtb-", "security_groups": "sg-",
    "network_acls": "acl-", "internet_gateways": "igw-", "nat_gateways": "nat-",
    "prefix_lists": "pl-", "vpc_endpoints": "vpce-", "network_interfaces": "eni-",
    "vpc_peering_connections": "pcx-", "transit_gateways": "tgw-",
}
_RULE_KEYS = ("protocol", "ports", "from_port", "to_port", "icmp_type", "icmp_code")
_PEER_KEYS = ("cidr", "prefix_list_id", "security_group_id")
_GWLB = "gateway_load_balancer"
#: The keys each endpoint type takes beyond id, name, vpc_id, service_name and type.
_ENDPOINT_KEYS: dict[str, tuple[str, ...]] = {
    "gateway": ("route_table_ids", "prefix_list_id"),
    "interface": ("subnet_ids", "security_group_ids", "private_dns_enabled", "dns_names", "network_interfaces"),
    _GWLB: (),  # a route target only: the appliances behind it are not emulated
}


# --------------------------------------------------------------------------------------------
# the document reader


class _Reader:
    """Typed access to a parsed document; every failure is a TopologyError with its path."""

    def __init__(self, file: str | None) -> None:
        self.file = file

    def fail(self, where: str, problem: str) -> NoReturn:
        raise TopologyError(self.file, where or "top level", problem)

    def mapping(self, node: Any, where: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(node, dict):
            self.fail(where, f"expected a mapping, got {_describe(node)}")
        for key in node:
            if not isinstance(key, str) or key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (expected one of: {', '.join(allowed)})"
                self.fail(_join(where, str(key)), f"unknown key {key!r}{hint}")
        for key in required:
            if key not in node:
                self.fail(where, f"missing required key {key!r}")
        return node

    def sequence(self, node: Any, where: str) -> list:
        if node is None:
            return []
        if not isinstance(node, list):
            self.fail(where, f"expected a list, got {_describe(node)}")
        return node

    def string(self, node: Any, where: str, *, allow_numbers: bool = False) -> str:
        if allow_numbers and isinstance(node, int) and not isinstance(node, bool):
            return str(node)
        if not isinstance(node, str) or not node.strip():
            self.fail(where, f"expected a non-empty string, got {_describe(node)}")
        return node.strip()

    def text(self, node: Any, where: str) -> str:
        """Free text (names, descriptions): may be empty."""
        if node is None:
            return ""
        if not isinstance(node, str):
            self.fail(where, f"expected a string, got {_describe(node)}")
        return node

    def identifier(self, node: Any, where: str, prefix: str) -> str:
        value = self.string(node, where)
        if not value.startswith(prefix) or len(value) == len(prefix) or any(c.isspace() for c in value):
            self.fail(where, f"{value!r} is not a valid id (expected {prefix}…)")
        return value

    def boolean(self, node: Any, where: str) -> bool:
        if not isinstance(node, bool):
            self.fail(where, f"expected true or false, got {_describe(node)}")
        return node

    def integer(self, node: Any, where: str, low: int, high: int) -> int:
        if isinstance(node, bool) or not isinstance(node, int):
            number = ascii_int(node) if isinstance(node, str) else None
            if number is None:
                self.fail(where, f"expected an integer (ASCII digits 0-9), got {_describe(node)}")
            node = number
        if not low <= node <= high:
            self.fail(where, f"{node} is not within {low}-{high}")
        return node

    def cidr(self, node: Any, where: str) -> IPv4Network:
        if not isinstance(node, str) or "/" not in node:
            self.fail(where, f"{node!r} is not a valid IPv4 CIDR")
        try:
            return IPv4Network(node.strip())
        except ValueError:
            try:
                loose = IPv4Network(node.strip(), strict=False)
            except ValueError:
                self.fail(where, f"{node!r} is not a valid IPv4 CIDR")
            self.fail(where, f"{node!r} is not a valid IPv4 CIDR (host bits set; did you mean {loose}?)")
        raise AssertionError  # unreachable

    def ip(self, node: Any, where: str) -> IPv4Address:
        try:
            return IPv4Address(node.strip() if isinstance(node, str) else "x")
        except ValueError:
            self.fail(where, f"{node!r} is not a valid IPv4 address")
        raise AssertionError  # unreachable

    def protocol(self, node: Any, where: str) -> int:
        if isinstance(node, str) and not node.isascii():  # parse_protocol's \d takes '٦' for 6
            self.fail(where, f"{_describe(node)} is not a protocol (use all/-1, tcp, udp, icmp or 0-255, ASCII digits)")
        try:
            return parse_protocol(node)
        except ValueError as exc:
            self.fail(where, str(exc))
        raise AssertionError  # unreachable

    def ports_and_icmp(self, item: dict, where: str, protocol: int) -> tuple[tuple[int, int], int, int]:
        """The ``(from, to)`` port range and ICMP type/code of a SG or NACL rule."""
        has_range = "from_port" in item or "to_port" in item
        if "ports" in item and has_range:
            self.fail(_join(where, "ports"), "give either ports or from_port/to_port, not both")
        port_range = ALL_PORTS
        if "ports" in item or has_range:
            if not has_ports(protocol):
                key = "ports" if "ports" in item else "from_port"
                hint = " (use icmp_type/icmp_code)" if protocol == ICMP else ""
                self.fail(_join(where, key), f"protocol {protocol_name(protocol)} has no ports{hint}")
            if "ports" in item:
                port_range = self.port_range(item["ports"], _join(where, "ports"))
            else:
                for key in ("from_port", "to_port"):
                    if key not in item:
                        self.fail(where, f"missing required key {key!r} (from_port and to_port go together)")
                low = self.integer(item["from_port"], _join(where, "from_port"), 0, 65535)
                high = self.integer(item["to_port"], _join(where, "to_port"), 0, 65535)
                if low > high:
                    self.fail(_join(where, "from_port"), f"from_port {low} is greater than to_port {high}")
                port_range = (low, high)
        icmp = [-1, -1]
        for i, key in enumerate(("icmp_type", "icmp_code")):
            if key in item:
                if protocol != ICMP:
                    self.fail(_join(where, key), f"{key} only applies to protocol icmp")
                icmp[i] = self.integer(item[key], _join(where, key), -1, 255)
        return port_range, icmp[0], icmp[1]

    def port_range(self, node: Any, where: str) -> tuple[int, int]:
        if isinstance(node, int) and not isinstance(node, bool):
            port = self.integer(node, where, 0, 65535)
            return (port, port)
        if isinstance(node, str):
            parts = node.replace(" ", "").split("-")
            numbers = [ascii_int(p) if p[:1] != "-" else None for p in parts] if len(parts) in (1, 2) else [None]
            if all(n is not None for n in numbers):
                low, high = numbers[0], numbers[-1]
                assert low is not None and high is not None
                if low <= high <= 65535:
                    return (low, high)
        self.fail(where, f"{_describe(node)} is not a port or a port range like 1024-65535 (ASCII digits 0-9)")
        raise AssertionError  # unreachable

    def id_list(self, node: Any, where: str, prefix: str) -> tuple[str, ...]:
        return tuple(self.identifier(v, f"{where}[{i}]", prefix) for i, v in enumerate(self.sequence(node, where)))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _describe(node: Any) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, bool):
        return str(node).lower()
    if isinstance(node, (dict, list)):
        return "a mapping" if isinstance(node, dict) else "a list"
    text = repr(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _keyed(resources: Iterable[Any]) -> dict[str, Any]:
    return {r.id: r for r in resources}


def _suffix(resource_id: str) -> str:
    return resource_id.split("-", 1)[1]


def _service_dns_name(service_name: str) -> str:
    """``com.amazonaws.us-east-1.secretsmanager`` -> ``secretsmanager.us-east-1.amazonaws.com``."""
    parts = service_name.split(".")
    if len(parts) >= 4 and parts[0] == "com" and parts[1] == "amazonaws":
        return f"{'.'.join(parts[3:])}.{parts[2]}.amazonaws.com"
    return service_name
