"""The topology: AWS networking resources as plain, validated, immutable dataclasses.

Everything here is data, never packet logic: the data plane (policy compilation, routing,
NAT) reads these objects. Conventions, so that consumers never re-parse anything:

* CIDRs are :class:`ipaddress.IPv4Network`, addresses :class:`ipaddress.IPv4Address`;
* protocols are ints: ``-1`` (all), ``1`` (ICMP), ``6`` (TCP), ``17`` (UDP), or any other IP
  protocol number 0-255;
* port ranges are ``(from_port, to_port)`` int tuples, inclusive; a rule whose protocol has no
  ports (all, ICMP, others) carries :data:`ALL_PORTS`;
* ICMP matches use ``icmp_type`` / ``icmp_code``, ``-1`` meaning any;
* collections inside a resource are tuples, in the order the topology file declared them;
* :class:`Topology` holds one read-only mapping per resource kind, keyed by id (functions by
  name), in declaration order. To change a topology, derive a new one with
  :meth:`Topology.replace`; the lookup indexes are rebuilt for the new object.

AWS defaults (main route table, default NACL and security group, local routes, ...) are applied
by the loaders (:mod:`hyperplane.loaders`), which then call :func:`validate_topology`.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field, fields
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType
from typing import Any, Container, Iterable, Iterator, Mapping, NoReturn

from hyperplane.errors import SubnetOutOfAddresses, TopologyError, UnknownResource

__all__ = [
    "PROTOCOL_ALL", "ICMP", "TCP", "UDP", "ALL_PORTS", "ANY_IPV4", "IMPLICIT_DENY_RULE_NUMBER",
    "MAX_SECURITY_GROUPS_PER_ENI", "MAX_SUBNETS_PER_FUNCTION", "MAX_NAT_GATEWAY_ADDRESSES",
    "LAMBDA_VPC_PERMISSIONS", "MANAGED_POLICIES", "MANAGED_ENI_KINDS", "ROUTE_TARGET_KINDS",
    "UNMODELLED_ROUTE_TARGETS", "unmodelled_route_target",
    "Vpc", "Subnet", "Route", "RouteTable", "SecurityGroupRule", "SecurityGroup",
    "NetworkAclEntry", "NetworkAcl", "InternetGateway", "ElasticIp", "NatGateway", "PrefixList",
    "VpcEndpoint", "NetworkInterface", "VpcPeeringConnection", "ExecutionRole", "VpcConfig",
    "FunctionVersion", "LambdaFunction", "Topology",
    "parse_protocol", "protocol_name", "route_target_kind", "reserved_addresses",
    "next_free_address", "validate_topology",
]

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
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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


def next_free_address(
    subnet: "Subnet | IPv4Network",
    in_use: Container[IPv4Address],
    *,
    subnet_id: str | None = None,
) -> IPv4Address:
    """The lowest address of ``subnet`` that is neither reserved nor in ``in_use``.

    Raises :class:`~hyperplane.errors.SubnetOutOfAddresses` when none is left (the Lambda layer
    maps it to ``SubnetOutOfIPAddresses``). Deterministic: always the lowest free address.
    """
    if isinstance(subnet, Subnet):
        subnet_id = subnet_id or subnet.id
        cidr = subnet.cidr
    else:
        cidr = subnet
    first = int(cidr.network_address) + 4  # network, router, DNS, future use
    last = int(cidr.broadcast_address) - 1  # the last address is reserved too
    for value in range(first, last + 1):
        address = IPv4Address(value)
        if address not in in_use:
            return address
    raise SubnetOutOfAddresses(subnet_id, cidr)


def _frozen_map(value: Mapping[str, Any] | Iterable[Any] | None, key: str = "id") -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if isinstance(value, Mapping):
        return MappingProxyType(dict(value))
    return MappingProxyType({getattr(item, key): item for item in value})


# --------------------------------------------------------------------------------------------
# resources


@dataclass(frozen=True)
class Vpc:
    """A VPC: its CIDRs (the first is the primary) and the resources AWS creates with it.

    Attributes:
        id: ``vpc-…``.
        cidrs: IPv4 CIDRs, each /16 to /28, not overlapping each other.
        main_route_table_id: the route table used by subnets without an explicit association.
        default_network_acl_id: the NACL used by subnets without an explicit association.
        default_security_group_id: the group named ``default``.
        name: the ``Name`` tag, if any.
    """

    id: str
    cidrs: tuple[IPv4Network, ...]
    main_route_table_id: str
    default_network_acl_id: str
    default_security_group_id: str
    name: str = ""

    @property
    def primary_cidr(self) -> IPv4Network:
        return self.cidrs[0]

    @property
    def dns_resolver_ip(self) -> IPv4Address:
        """The Amazon DNS server: the primary CIDR's base address plus two."""
        return self.cidrs[0][2]

    def contains(self, ip: IPv4Address) -> bool:
        """Whether ``ip`` lies in one of the VPC's CIDRs."""
        return any(ip in cidr for cidr in self.cidrs)


@dataclass(frozen=True)
class Subnet:
    """A subnet: a CIDR of its VPC in one AZ, with exactly one route table and one NACL.

    Attributes:
        id: ``subnet-…``.
        vpc_id: the VPC.
        cidr: inside one of the VPC's CIDRs, /16 to /28.
        availability_zone: e.g. ``us-east-1a``.
        route_table_id: the effective route table (the explicit association, else the main one).
        network_acl_id: the effective NACL (the explicit association, else the default one).
        name: the ``Name`` tag, if any.
    """

    id: str
    vpc_id: str
    cidr: IPv4Network
    availability_zone: str
    route_table_id: str
    network_acl_id: str
    name: str = ""

    @property
    def reserved_addresses(self) -> tuple[IPv4Address, ...]:
        """Network address, VPC router (+1), DNS (+2), future use (+3), and the last address."""
        return reserved_addresses(self.cidr)

    @property
    def router_address(self) -> IPv4Address:
        return self.cidr[1]

    @property
    def usable_address_count(self) -> int:
        """How many addresses ENIs can take: the size minus the five reserved ones."""
        return self.cidr.num_addresses - 5

    def contains(self, ip: IPv4Address) -> bool:
        return ip in self.cidr

    def is_reserved(self, ip: IPv4Address) -> bool:
        """Whether ``ip`` is one of the five addresses AWS keeps for itself."""
        return ip in self.reserved_addresses

    def usable_addresses(self) -> Iterator[IPv4Address]:
        """Every address an ENI may take, ascending."""
        for value in range(int(self.cidr.network_address) + 4, int(self.cidr.broadcast_address)):
            yield IPv4Address(value)


@dataclass(frozen=True)
class Route:
    """One route: a destination (CIDR or prefix list ``pl-…``) sent to a target.

    Attributes:
        destination: an :class:`~ipaddress.IPv4Network`, or a prefix list id ``pl-…``.
        target: ``local`` or the id of an ``igw-``, ``nat-``, ``vpce-``, ``eni-`` or ``pcx-``.
        state: ``active``, or ``blackhole`` when the target is gone (such a route drops).
    """

    destination: IPv4Network | str
    target: str
    state: str = "active"

    @property
    def destination_cidr(self) -> IPv4Network | None:
        return self.destination if isinstance(self.destination, IPv4Network) else None

    @property
    def destination_prefix_list_id(self) -> str | None:
        return self.destination if isinstance(self.destination, str) else None

    @property
    def is_prefix_list_route(self) -> bool:
        return isinstance(self.destination, str)

    @property
    def target_kind(self) -> str:
        """``local``, ``igw``, ``nat``, ``vpce``, ``eni``, ``pcx``, or ``unmodelled``
        (:data:`UNMODELLED_ROUTE_TARGETS`: a transit gateway, VPN gateway, ...)."""
        kind = route_target_kind(self.target)
        if kind is None and unmodelled_route_target(self.target) is not None:
            return "unmodelled"
        return kind or "unknown"

    @property
    def is_blackhole(self) -> bool:
        return self.state == "blackhole"

    def __str__(self) -> str:
        suffix = " (blackhole)" if self.is_blackhole else ""
        return f"{self.destination} -> {self.target}{suffix}"


@dataclass(frozen=True)
class RouteTable:
    """A route table: its routes (local ones included) and whether it is its VPC's main table.

    Attributes:
        id: ``rtb-…``.  vpc_id: the VPC.
        routes: every route, declared ones first, then any ``local`` route AWS adds.
        is_main: whether subnets without an explicit association use it.
        name: the ``Name`` tag, if any.
    Which subnets use the table: :meth:`Topology.subnets_using_route_table`.
    """

    id: str
    vpc_id: str
    routes: tuple[Route, ...]
    is_main: bool = False
    name: str = ""

    @property
    def local_routes(self) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.target == "local")


@dataclass(frozen=True)
class SecurityGroupRule:
    """One allow rule of a security group.

    Attributes:
        egress: ``False`` for an inbound rule, ``True`` for an outbound rule.
        protocol: ``-1`` (all), ``1``, ``6``, ``17`` or another protocol number.
        port_range: ``(from, to)`` inclusive for TCP/UDP; :data:`ALL_PORTS` otherwise (ignored).
        icmp_type, icmp_code: for ICMP rules; ``-1`` = any.
        cidr / prefix_list_id / security_group_id: the peer; exactly one is set. A group peer
            matches the *private* IPs of the ENIs carrying that group, never public IPs.
        description: free text.
    """

    egress: bool
    protocol: int
    port_range: tuple[int, int] = ALL_PORTS
    icmp_type: int = -1
    icmp_code: int = -1
    cidr: IPv4Network | None = None
    prefix_list_id: str | None = None
    security_group_id: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        peers = [p for p in (self.cidr, self.prefix_list_id, self.security_group_id) if p is not None]
        if len(peers) != 1:
            raise ValueError("a security group rule needs exactly one peer (cidr, prefix list or group)")

    @property
    def peer(self) -> IPv4Network | str:
        """The CIDR, prefix list id or security group id this rule names."""
        return self.cidr if self.cidr is not None else (self.prefix_list_id or self.security_group_id)  # type: ignore[return-value]

    @property
    def peer_kind(self) -> str:
        """``cidr``, ``prefix_list`` or ``security_group``."""
        if self.cidr is not None:
            return "cidr"
        return "prefix_list" if self.prefix_list_id is not None else "security_group"

    @classmethod
    def allow_all_egress(cls) -> "SecurityGroupRule":
        """The outbound rule AWS puts in every new group: all traffic to 0.0.0.0/0."""
        return cls(egress=True, protocol=PROTOCOL_ALL, cidr=ANY_IPV4)


@dataclass(frozen=True)
class SecurityGroup:
    """A security group: allow-only, stateful rules.

    Attributes:
        id: ``sg-…``.  vpc_id: the VPC.  name: the group name (``default`` for the default group).
        description: free text.
        ingress, egress: the rules, in declaration order.
    """

    id: str
    vpc_id: str
    name: str
    ingress: tuple[SecurityGroupRule, ...] = ()
    egress: tuple[SecurityGroupRule, ...] = ()
    description: str = ""

    def rules(self, egress: bool) -> tuple[SecurityGroupRule, ...]:
        return self.egress if egress else self.ingress


@dataclass(frozen=True)
class NetworkAclEntry:
    """One numbered NACL rule.

    Attributes:
        rule_number: 1-32766 (32767 is the implicit ``*`` deny).
        egress: ``False`` inbound, ``True`` outbound.
        protocol, port_range, icmp_type, icmp_code: as in :class:`SecurityGroupRule`.
        rule_action: ``allow`` or ``deny``.
        cidr: the peer network (source when inbound, destination when outbound).
    """

    rule_number: int
    egress: bool
    protocol: int
    rule_action: str
    cidr: IPv4Network
    port_range: tuple[int, int] = ALL_PORTS
    icmp_type: int = -1
    icmp_code: int = -1

    @property
    def allows(self) -> bool:
        return self.rule_action == "allow"

    @property
    def is_implicit_deny(self) -> bool:
        return self.rule_number == IMPLICIT_DENY_RULE_NUMBER

    @property
    def label(self) -> str:
        """``100`` or ``*`` (the implicit deny), as the console shows rule numbers."""
        return "*" if self.is_implicit_deny else str(self.rule_number)


@dataclass(frozen=True)
class NetworkAcl:
    """A network ACL: numbered, stateless rules per direction, then an implicit deny.

    Attributes:
        id: ``acl-…``.  vpc_id: the VPC.  is_default: whether it is its VPC's default NACL.
        entries: the declared rules of both directions, in declaration order.
        name: the ``Name`` tag, if any.
    Use :attr:`ingress` / :attr:`egress` for evaluation order.
    """

    id: str
    vpc_id: str
    entries: tuple[NetworkAclEntry, ...] = ()
    is_default: bool = False
    name: str = ""

    def rules(self, egress: bool) -> tuple[NetworkAclEntry, ...]:
        """The rules of one direction in evaluation order, ending with the implicit ``*`` deny."""
        declared = sorted((e for e in self.entries if e.egress == egress), key=lambda e: e.rule_number)
        deny = NetworkAclEntry(IMPLICIT_DENY_RULE_NUMBER, egress, PROTOCOL_ALL, "deny", ANY_IPV4)
        return (*declared, deny)

    @property
    def ingress(self) -> tuple[NetworkAclEntry, ...]:
        """Inbound rules, ascending, ending with the implicit deny."""
        return self.rules(False)

    @property
    def egress(self) -> tuple[NetworkAclEntry, ...]:
        """Outbound rules, ascending, ending with the implicit deny."""
        return self.rules(True)


@dataclass(frozen=True)
class InternetGateway:
    """An internet gateway, attached to at most one VPC (``vpc_id`` ``None`` = detached)."""

    id: str
    vpc_id: str | None
    name: str = ""


@dataclass(frozen=True)
class ElasticIp:
    """An Elastic IP: allocation id ``eipalloc-…`` and its public address."""

    allocation_id: str
    public_ip: IPv4Address


@dataclass(frozen=True)
class NatGateway:
    """A NAT gateway in a subnet.

    Attributes:
        id: ``nat-…``.  subnet_id: where it lives (a public one, for a public NAT gateway).
        connectivity_type: ``public`` (with Elastic IPs) or ``private`` (no EIP).
        private_ips: its private addresses, primary first (1 to 8).
        elastic_ips: for a public gateway, one per private address, paired by position.
        network_interface_id: its ENI (kind ``nat_gateway``, in ``Topology.network_interfaces``).
        name: the ``Name`` tag, if any.
    """

    id: str
    subnet_id: str
    connectivity_type: str
    private_ips: tuple[IPv4Address, ...]
    elastic_ips: tuple[ElasticIp, ...] = ()
    network_interface_id: str = ""
    name: str = ""

    @property
    def is_public(self) -> bool:
        return self.connectivity_type == "public"

    @property
    def private_ip(self) -> IPv4Address:
        """The primary private address."""
        return self.private_ips[0]

    @property
    def public_ips(self) -> tuple[IPv4Address, ...]:
        return tuple(e.public_ip for e in self.elastic_ips)

    @property
    def public_ip(self) -> IPv4Address | None:
        """The primary Elastic IP, or ``None`` for a private NAT gateway."""
        return self.elastic_ips[0].public_ip if self.elastic_ips else None

    @property
    def address_pairs(self) -> tuple[tuple[IPv4Address, IPv4Address | None], ...]:
        """``(private_ip, public_ip or None)`` per NAT address: what it translates to."""
        return tuple(
            (ip, self.elastic_ips[i].public_ip if i < len(self.elastic_ips) else None)
            for i, ip in enumerate(self.private_ips)
        )


@dataclass(frozen=True)
class PrefixList:
    """A prefix list ``pl-…``: a named set of CIDRs (AWS-managed ones name a service)."""

    id: str
    name: str
    cidrs: tuple[IPv4Network, ...]

    def contains(self, ip: IPv4Address) -> bool:
        return any(ip in cidr for cidr in self.cidrs)


@dataclass(frozen=True)
class VpcEndpoint:
    """A VPC endpoint, of type ``gateway``, ``interface`` or ``gateway_load_balancer``.

    A Gateway Load Balancer endpoint is kept only as a route target: what it does (send the
    packet to appliances behind a load balancer) is not emulated, so a route to it ends with
    ``UNMODELLED_TARGET``, like a route to a transit gateway.  It carries no other attribute.

    Attributes:
        id: ``vpce-…``.  vpc_id: the VPC.  service_name: e.g. ``com.amazonaws.us-east-1.s3``.
        endpoint_type: ``gateway`` (reached by a prefix-list route), ``interface`` (ENIs) or
            ``gateway_load_balancer`` (a route target that is not emulated).
        route_table_ids: gateway: route tables holding the ``prefix list -> vpce`` route.
        prefix_list_id: gateway: the service's prefix list.
        subnet_ids: interface: one subnet per AZ, each with one endpoint ENI.
        security_group_ids: interface: the groups on its ENIs.
        private_dns_enabled: interface: whether ``dns_names`` resolve to the ENIs in the VPC.
        dns_names: interface: the service's private DNS names.
        network_interface_ids: interface: its ENIs (kind ``vpc_endpoint``).
        name: the ``Name`` tag, if any.
    """

    id: str
    vpc_id: str
    service_name: str
    endpoint_type: str
    route_table_ids: tuple[str, ...] = ()
    prefix_list_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    private_dns_enabled: bool = False
    dns_names: tuple[str, ...] = ()
    network_interface_ids: tuple[str, ...] = ()
    name: str = ""

    @property
    def is_gateway(self) -> bool:
        return self.endpoint_type == "gateway"

    @property
    def is_interface(self) -> bool:
        return self.endpoint_type == "interface"

    @property
    def is_gateway_load_balancer(self) -> bool:
        return self.endpoint_type == "gateway_load_balancer"


@dataclass(frozen=True)
class NetworkInterface:
    """An ENI: a private address in a subnet, with security groups.

    Plain ENIs stand for EC2 instances, RDS databases, caches; the model also creates ENIs for
    NAT gateways (kind ``nat_gateway``, no security groups) and interface endpoints (kind
    ``vpc_endpoint``), so that every address in a VPC has an ENI.

    Attributes:
        id: ``eni-…``.  subnet_id: the subnet.
        private_ip: the primary private address; ``secondary_private_ips``: more of them.
        security_group_ids: 1 to 5 groups (none for a NAT gateway's ENI).
        public_ip: a public IPv4 or Elastic IP mapped 1:1 by the internet gateway, or ``None``.
        kind: what it stands for: ``instance``, ``rds``, ``elasticache``, ... or a managed kind
            (:data:`MANAGED_ENI_KINDS`).
        description: free text.  instance_id: the EC2 instance, if any.
        managed_by: the NAT gateway / endpoint id owning a managed ENI.
        source_dest_check: ``False`` lets it forward traffic (an ``eni-…`` route target).
    """

    id: str
    subnet_id: str
    private_ip: IPv4Address
    security_group_ids: tuple[str, ...] = ()
    secondary_private_ips: tuple[IPv4Address, ...] = ()
    public_ip: IPv4Address | None = None
    kind: str = "instance"
    description: str = ""
    instance_id: str | None = None
    managed_by: str | None = None
    source_dest_check: bool = True

    @property
    def private_ips(self) -> tuple[IPv4Address, ...]:
        """The primary then the secondary private addresses."""
        return (self.private_ip, *self.secondary_private_ips)

    @property
    def is_managed(self) -> bool:
        return self.kind in MANAGED_ENI_KINDS


@dataclass(frozen=True)
class VpcPeeringConnection:
    """A peering connection ``pcx-…`` between ``vpc_id`` and ``peer_vpc_id``.

    ``peer_cidrs`` are the peer VPC's CIDRs (needed when the peer VPC is not in the topology).
    """

    id: str
    vpc_id: str
    peer_vpc_id: str
    peer_cidrs: tuple[IPv4Network, ...] = ()
    name: str = ""


@dataclass(frozen=True)
class ExecutionRole:
    """A Lambda execution role and the IAM actions it grants.

    Attributes:
        arn: ``arn:aws:iam::<account>:role/<name>``.
        permissions: actions granted by inline statements (wildcards allowed: ``ec2:*``).
        managed_policies: AWS managed policies attached, by name (see :data:`MANAGED_POLICIES`).
    """

    arn: str
    permissions: tuple[str, ...] = ()
    managed_policies: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @property
    def granted_actions(self) -> tuple[str, ...]:
        """Every action pattern the role grants, inline and from its managed policies."""
        actions = list(self.permissions)
        for policy in self.managed_policies:
            actions.extend(MANAGED_POLICIES.get(policy, ()))
        return tuple(dict.fromkeys(actions))

    def allows(self, action: str) -> bool:
        """Whether the role grants ``action`` (IAM actions are case-insensitive; ``*`` wildcards)."""
        action = action.lower()
        return any(fnmatch.fnmatchcase(action, pattern.lower()) for pattern in self.granted_actions)

    def missing(self, actions: Iterable[str] = LAMBDA_VPC_PERMISSIONS) -> tuple[str, ...]:
        """The actions of ``actions`` the role does not grant (default: Lambda's VPC needs)."""
        return tuple(a for a in actions if not self.allows(a))


@dataclass(frozen=True)
class VpcConfig:
    """A function's ``VpcConfig``: up to 16 subnets and up to 5 security groups, one VPC."""

    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]

    @property
    def security_group_set(self) -> frozenset[str]:
        """The group set that, with a subnet, identifies a Hyperplane ENI."""
        return frozenset(self.security_group_ids)


@dataclass(frozen=True)
class FunctionVersion:
    """A published version: its number and the ``VpcConfig`` it was published with."""

    version: str
    vpc_config: VpcConfig | None = None


@dataclass(frozen=True)
class LambdaFunction:
    """A Lambda function (``$LATEST``) with its role, VPC config and published versions.

    Attributes:
        name: 1-64 of ``A-Za-z0-9_-``.  role: the :class:`ExecutionRole`.
        vpc_config: ``None`` = not attached to a VPC (runs in the Lambda service VPC only).
        versions: published versions, each keeping its own VPC config.
        description: free text.
    """

    name: str
    role: ExecutionRole
    vpc_config: VpcConfig | None = None
    versions: tuple[FunctionVersion, ...] = ()
    description: str = ""

    @property
    def is_vpc_attached(self) -> bool:
        return self.vpc_config is not None


# --------------------------------------------------------------------------------------------
# the topology

_COLLECTIONS = (
    ("vpcs", Vpc),
    ("subnets", Subnet),
    ("route_tables", RouteTable),
    ("security_groups", SecurityGroup),
    ("network_acls", NetworkAcl),
    ("internet_gateways", InternetGateway),
    ("nat_gateways", NatGateway),
    ("prefix_lists", PrefixList),
    ("vpc_endpoints", VpcEndpoint),
    ("network_interfaces", NetworkInterface),
    ("vpc_peering_connections", VpcPeeringConnection),
    ("functions", LambdaFunction),
)
_COLLECTION_OF_TYPE = {cls: name for name, cls in _COLLECTIONS}
_KIND_LABEL = {
    "vpcs": "VPC", "subnets": "subnet", "route_tables": "route table",
    "security_groups": "security group", "network_acls": "network ACL",
    "internet_gateways": "internet gateway", "nat_gateways": "NAT gateway",
    "prefix_lists": "prefix list", "vpc_endpoints": "VPC endpoint",
    "network_interfaces": "network interface", "vpc_peering_connections": "peering connection",
    "functions": "function",
}
#: The targets a route more specific than its VPC's local route may have (AWS's "middlebox" routing).
_MIDDLEBOX_TARGETS = "a NAT gateway, an ENI or a Gateway Load Balancer endpoint"


@dataclass(frozen=True, eq=True)
class Topology:
    """An account's network in one region: every resource, by id, plus lookups.

    Attributes (read-only mappings, declaration order):
        account_id, region: where it lives.
        vpcs, subnets, route_tables, security_groups, network_acls, internet_gateways,
        nat_gateways, prefix_lists, vpc_endpoints, network_interfaces (managed ENIs of NAT
        gateways and interface endpoints included), vpc_peering_connections: by id.
        functions: :class:`LambdaFunction` by name.
    """

    account_id: str = "123456789012"
    region: str = "us-east-1"
    vpcs: Mapping[str, Vpc] = field(default_factory=dict)
    subnets: Mapping[str, Subnet] = field(default_factory=dict)
    route_tables: Mapping[str, RouteTable] = field(default_factory=dict)
    security_groups: Mapping[str, SecurityGroup] = field(default_factory=dict)
    network_acls: Mapping[str, NetworkAcl] = field(default_factory=dict)
    internet_gateways: Mapping[str, InternetGateway] = field(default_factory=dict)
    nat_gateways: Mapping[str, NatGateway] = field(default_factory=dict)
    prefix_lists: Mapping[str, PrefixList] = field(default_factory=dict)
    vpc_endpoints: Mapping[str, VpcEndpoint] = field(default_factory=dict)
    network_interfaces: Mapping[str, NetworkInterface] = field(default_factory=dict)
    vpc_peering_connections: Mapping[str, VpcPeeringConnection] = field(default_factory=dict)
    functions: Mapping[str, LambdaFunction] = field(default_factory=dict)

    __hash__ = None  # type: ignore[assignment]  # mappings inside: equal, not hashable

    def __post_init__(self) -> None:
        for name, _cls in _COLLECTIONS:
            key = "name" if name == "functions" else "id"
            object.__setattr__(self, name, _frozen_map(getattr(self, name), key))

    # -- generic lookups ------------------------------------------------------------------

    @cached_property
    def _by_id(self) -> Mapping[str, Any]:
        index: dict[str, Any] = {}
        for name, _cls in _COLLECTIONS:
            if name != "functions":
                index.update(getattr(self, name))
        return index

    def get(self, resource_id: str) -> Any:
        """Any resource by id (``vpc-``, ``subnet-``, ``sg-``, ...) or a function by name.

        Raises :class:`~hyperplane.errors.UnknownResource` if there is none.
        """
        found = self._by_id.get(resource_id)
        if found is None:
            found = self.functions.get(resource_id)
        if found is None:
            raise UnknownResource(resource_id)
        return found

    def __contains__(self, resource_id: object) -> bool:
        return resource_id in self._by_id or resource_id in self.functions

    def function(self, name: str) -> LambdaFunction:
        """The function called ``name``."""
        try:
            return self.functions[name]
        except KeyError:
            raise UnknownResource(name, "function") from None

    def vpc_of(self, resource_id: str) -> Vpc:
        """The VPC a resource belongs to: any id, or a VPC-attached function's name."""
        resource = self.get(resource_id)
        if isinstance(resource, Vpc):
            return resource
        if isinstance(resource, (Subnet, RouteTable, SecurityGroup, NetworkAcl, VpcEndpoint, VpcPeeringConnection)):
            return self.vpcs[resource.vpc_id]
        if isinstance(resource, (NatGateway, NetworkInterface)):
            return self.vpcs[self.subnets[resource.subnet_id].vpc_id]
        if isinstance(resource, InternetGateway) and resource.vpc_id is not None:
            return self.vpcs[resource.vpc_id]
        if isinstance(resource, LambdaFunction) and resource.vpc_config is not None:
            return self.vpcs[self.subnets[resource.vpc_config.subnet_ids[0]].vpc_id]
        raise UnknownResource(resource_id, "VPC of resource")

    # -- subnets, tables ------------------------------------------------------------------

    def subnets_in(self, vpc_id: str) -> tuple[Subnet, ...]:
        """The subnets of a VPC, in declaration order."""
        return tuple(s for s in self.subnets.values() if s.vpc_id == vpc_id)

    def route_table_of(self, subnet_id: str) -> RouteTable:
        """The route table a subnet uses (explicit association, else the main one)."""
        return self.route_tables[self.subnets[subnet_id].route_table_id]

    def network_acl_of(self, subnet_id: str) -> NetworkAcl:
        """The network ACL a subnet uses (explicit association, else the default one)."""
        return self.network_acls[self.subnets[subnet_id].network_acl_id]

    def subnets_using_route_table(self, route_table_id: str) -> tuple[Subnet, ...]:
        return tuple(s for s in self.subnets.values() if s.route_table_id == route_table_id)

    def subnets_using_network_acl(self, network_acl_id: str) -> tuple[Subnet, ...]:
        return tuple(s for s in self.subnets.values() if s.network_acl_id == network_acl_id)

    def internet_gateway_of(self, vpc_id: str) -> InternetGateway | None:
        """The internet gateway attached to a VPC, if any."""
        return next((g for g in self.internet_gateways.values() if g.vpc_id == vpc_id), None)

    def subnet_of_ip(self, ip: IPv4Address | str, vpc_id: str | None = None) -> Subnet | None:
        """The subnet whose CIDR holds ``ip`` (in ``vpc_id`` if given), or ``None``.

        VPCs may overlap each other; without ``vpc_id`` the first match in declaration order wins.
        """
        ip = IPv4Address(ip)
        for subnet in self.subnets.values():
            if ip in subnet.cidr and (vpc_id is None or subnet.vpc_id == vpc_id):
                return subnet
        return None

    # -- ENIs -----------------------------------------------------------------------------

    @cached_property
    def _eni_index(self) -> Mapping[tuple[str, IPv4Address], NetworkInterface]:
        index: dict[tuple[str, IPv4Address], NetworkInterface] = {}
        for eni in self.network_interfaces.values():
            subnet = self.subnets.get(eni.subnet_id)
            if subnet is None:
                continue
            for ip in eni.private_ips:
                index.setdefault((subnet.vpc_id, ip), eni)
        return MappingProxyType(index)

    @cached_property
    def _public_ip_index(self) -> Mapping[IPv4Address, Any]:
        index: dict[IPv4Address, Any] = {}
        for eni in self.network_interfaces.values():
            if eni.public_ip is not None:
                index.setdefault(eni.public_ip, eni)
        return MappingProxyType(index)

    def eni_by_ip(self, ip: IPv4Address | str, vpc_id: str | None = None) -> NetworkInterface | None:
        """The ENI holding private address ``ip`` (primary or secondary), or ``None``.

        Addresses are unique within a VPC; without ``vpc_id`` the first VPC (declaration order)
        that has the address wins.
        """
        ip = IPv4Address(ip)
        if vpc_id is not None:
            return self._eni_index.get((vpc_id, ip))
        for vid in self.vpcs:
            eni = self._eni_index.get((vid, ip))
            if eni is not None:
                return eni
        return None

    def eni_by_public_ip(self, ip: IPv4Address | str) -> NetworkInterface | None:
        """The ENI whose public IP / Elastic IP is ``ip`` (a NAT gateway's ENI included)."""
        return self._public_ip_index.get(IPv4Address(ip))

    def eni_of_instance(self, instance_id: str) -> NetworkInterface | None:
        """The (first declared) ENI of an EC2 instance ``i-…``, or ``None``."""
        return next((e for e in self.network_interfaces.values() if e.instance_id == instance_id), None)

    def enis_in_subnet(self, subnet_id: str) -> tuple[NetworkInterface, ...]:
        return tuple(e for e in self.network_interfaces.values() if e.subnet_id == subnet_id)

    def enis_with_security_group(self, security_group_id: str) -> tuple[NetworkInterface, ...]:
        """The ENIs carrying a group: whose private IPs a rule naming that group matches."""
        return tuple(e for e in self.network_interfaces.values() if security_group_id in e.security_group_ids)

    def private_ips_with_security_group(self, security_group_id: str) -> tuple[IPv4Address, ...]:
        """Every private address (secondaries included) of the ENIs carrying a group: what a
        rule whose peer is that group matches. Hyperplane ENIs live outside the topology, so
        the Lambda layer adds theirs."""
        return tuple(ip for e in self.enis_with_security_group(security_group_id) for ip in e.private_ips)

    def prefix_list_cidrs(self, prefix_list_id: str) -> tuple[IPv4Network, ...]:
        """The CIDRs of a prefix list (what a ``pl-…`` route or rule peer stands for)."""
        return self.prefix_lists[prefix_list_id].cidrs

    def addresses_in_use(self, subnet_id: str) -> frozenset[IPv4Address]:
        """Every private address ENIs of this topology hold in the subnet."""
        return frozenset(ip for e in self.enis_in_subnet(subnet_id) for ip in e.private_ips)

    def allocate_address(self, subnet_id: str, also_in_use: Iterable[IPv4Address] = ()) -> IPv4Address:
        """The next free, non-reserved address of a subnet, ignoring ``also_in_use`` too.

        ``also_in_use`` lets a caller add addresses held outside the topology (Hyperplane
        ENIs). Raises :class:`~hyperplane.errors.SubnetOutOfAddresses` when the subnet is full.
        """
        subnet = self.subnets[subnet_id]
        used = set(self.addresses_in_use(subnet_id))
        used.update(IPv4Address(a) for a in also_in_use)
        return next_free_address(subnet, used)

    def security_groups_of(self, eni_id: str) -> tuple[SecurityGroup, ...]:
        return tuple(self.security_groups[g] for g in self.network_interfaces[eni_id].security_group_ids)

    # -- derivation -------------------------------------------------------------------------

    def replace(self, *resources: Any, remove: Iterable[str] = ()) -> "Topology":
        """A new topology with ``resources`` added or replaced (matched by id / function name)
        and the ids (or function names) in ``remove`` deleted, as AWS deletes them: the ENIs a
        removed NAT gateway or endpoint managed go with it, and every route whose target is
        removed becomes a ``blackhole``. The result is not re-validated: call :meth:`validate`.
        """
        collections = {name: dict(getattr(self, name)) for name, _cls in _COLLECTIONS}
        removed = set(remove)
        removed.update(e.id for e in self.network_interfaces.values() if e.managed_by in removed)
        for resource_id in removed:
            for mapping in collections.values():
                mapping.pop(resource_id, None)
        if removed:
            tables = collections["route_tables"]
            for rtb_id, rtb in tables.items():
                if any(r.target in removed and not r.is_blackhole for r in rtb.routes):
                    routes = tuple(
                        Route(r.destination, r.target, "blackhole") if r.target in removed else r for r in rtb.routes
                    )
                    tables[rtb_id] = RouteTable(rtb.id, rtb.vpc_id, routes, rtb.is_main, rtb.name)
        for resource in resources:
            name = _COLLECTION_OF_TYPE.get(type(resource))
            if name is None:
                raise TypeError(f"{type(resource).__name__} is not a topology resource")
            key = resource.name if name == "functions" else resource.id
            collections[name][key] = resource
        return Topology(account_id=self.account_id, region=self.region, **collections)

    def validate(self, file: str | None = None, where: Mapping[str, str] | None = None) -> "Topology":
        """Check every cross-resource rule (see :func:`validate_topology`); returns ``self``."""
        validate_topology(self, file=file, where=where)
        return self


# --------------------------------------------------------------------------------------------
# validation


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
                zones: dict[str, str] = {}
                for i, subnet_id in enumerate(ep.subnet_ids):
                    subnet = self.ref(f"{base}.subnet_ids[{i}]", "subnets", subnet_id)
                    self.same_vpc(f"{base}.subnet_ids[{i}]", f"subnet {subnet_id}", subnet.vpc_id, ep.vpc_id)
                    if subnet.availability_zone in zones:
                        self.fail(f"{base}.subnet_ids[{i}]", f"{subnet_id} and {zones[subnet.availability_zone]} are both in {subnet.availability_zone}: one subnet per AZ")
                    zones[subnet.availability_zone] = subnet_id
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


def resource_fields(cls: type) -> tuple[str, ...]:
    """The dataclass field names of a resource type (used by the loaders' unknown-key checks)."""
    return tuple(f.name for f in fields(cls))
