"""The values resources hold and AWS's numbers: protocols, port ranges, quotas, managed
policies, route target kinds, reserved addresses, and the helpers that parse and name them."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType
from typing import Mapping

# --------------------------------------------------------------------------------------------
# constants (numbers from the Amazon VPC and AWS Lambda documentation)

PROTOCOL_ALL = -1
ICMP = 1
TCP = 6
UDP = 17
ALL_PORTS: tuple[int, int] = (0, 65535)
ANY_IPV4 = IPv4Network("0.0.0.0/0")

#: The ``*`` rule that ends every NACL direction: deny everything.
IMPLICIT_DENY_RULE_NUMBER = 32767
MAX_NACL_RULE_NUMBER = 32766

MAX_SECURITY_GROUPS_PER_ENI = 5
MAX_SUBNETS_PER_FUNCTION = 16
#: A NAT gateway has at most 8 addresses (primary + 7 secondary; public: 8 EIPs).
MAX_NAT_GATEWAY_ADDRESSES = 8
VPC_MIN_PREFIX, VPC_MAX_PREFIX = 16, 28

#: What Lambda needs from the execution role to manage Hyperplane ENIs.
LAMBDA_VPC_PERMISSIONS: tuple[str, ...] = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
)

#: AWS managed policies a role may name instead of listing actions (their EC2/logs actions).
MANAGED_POLICIES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "AWSLambdaBasicExecutionRole": (
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
    ),
    "AWSLambdaVPCAccessExecutionRole": (
        "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
        "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    ),
    "AWSLambdaENIManagementAccess": (
        "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
    ),
    "AmazonEC2FullAccess": ("ec2:*",),
    "AdministratorAccess": ("*",),
})

#: ENI kinds that the model creates for other resources; a topology file cannot declare them.
MANAGED_ENI_KINDS = frozenset({"nat_gateway", "vpc_endpoint", "lambda"})

#: Route target kind by id prefix (``local`` is the literal target ``local``).
ROUTE_TARGET_KINDS: Mapping[str, str] = MappingProxyType({
    "igw-": "igw", "nat-": "nat", "vpce-": "vpce", "eni-": "eni", "pcx-": "pcx",
})

#: Route targets AWS has but the emulator does not model, by id prefix (what they are). A route
#: to one loads (AWS snapshots have them) with :attr:`Route.target_kind` ``unmodelled``; the
#: data plane stops there with the reason ``UNMODELLED_TARGET``, naming the route.
UNMODELLED_ROUTE_TARGETS: Mapping[str, str] = MappingProxyType({
    "tgw-": "transit gateway", "vgw-": "virtual private gateway", "eigw-": "egress-only internet gateway",
    "cagw-": "carrier gateway", "lgw-": "local gateway", "arn:aws:networkmanager:": "core network",
})

_PROTOCOL_NAMES = {"all": -1, "-1": -1, "icmp": ICMP, "tcp": TCP, "udp": UDP}
_PROTOCOL_LABELS = {-1: "all", ICMP: "icmp", TCP: "tcp", UDP: "udp"}


def parse_protocol(value: object) -> int:
    """Normalize a protocol (``-1``/``all``, ``tcp``, ``udp``, ``icmp`` or a number 0-255) to an int.

    Raises ``ValueError`` with a readable message for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a protocol")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in _PROTOCOL_NAMES:
            return _PROTOCOL_NAMES[text]
        if not re.fullmatch(r"-?[0-9]+", text):
            raise ValueError(f"{value!r} is not a protocol (use all/-1, tcp, udp, icmp or 0-255)")
        number = int(text)
    else:
        raise ValueError(f"{value!r} is not a protocol")
    if number != -1 and not 0 <= number <= 255:
        raise ValueError(f"{value!r} is not a protocol (use all/-1, tcp, udp, icmp or 0-255)")
    return number


def protocol_name(protocol: int) -> str:
    """The name a topology file uses for a protocol number (``tcp``, ``all``, or the number)."""
    return _PROTOCOL_LABELS.get(protocol, str(protocol))


def has_ports(protocol: int) -> bool:
    """Whether rules of this protocol carry a port range (TCP and UDP only)."""
    return protocol in (TCP, UDP)


def route_target_kind(target: str) -> str | None:
    """``local``, ``igw``, ``nat``, ``vpce``, ``eni`` or ``pcx`` for a route target; ``None`` if unknown."""
    if target == "local":
        return "local"
    for prefix, kind in ROUTE_TARGET_KINDS.items():
        if target.startswith(prefix) and len(target) > len(prefix):
            return kind
    return None


def unmodelled_route_target(target: str) -> str | None:
    """What a route target outside the emulation is (``transit gateway``, ...), or ``None``."""
    for prefix, what in UNMODELLED_ROUTE_TARGETS.items():
        if target.startswith(prefix) and len(target) > len(prefix):
            return what
    return None


def reserved_addresses(cidr: IPv4Network) -> tuple[IPv4Address, ...]:
    """The five addresses AWS reserves in a subnet: network, router, DNS, future use, last."""
    return (cidr[0], cidr[1], cidr[2], cidr[3], cidr[-1])
