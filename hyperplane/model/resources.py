"""The AWS networking resources, as frozen dataclasses: VPCs, subnets, route tables, security
groups, network ACLs, gateways, prefix lists, endpoints, ENIs, peerings and Lambda functions.
The conventions they follow are in :mod:`hyperplane.model`."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, fields
from ipaddress import IPv4Address, IPv4Network
from typing import Container, Iterable, Iterator

from hyperplane.errors import SubnetOutOfAddresses
from hyperplane.model.values import (
    PROTOCOL_ALL, ALL_PORTS, ANY_IPV4, IMPLICIT_DENY_RULE_NUMBER, LAMBDA_VPC_PERMISSIONS,
    MANAGED_POLICIES, MANAGED_ENI_KINDS, route_target_kind, unmodelled_route_target,
    reserved_addresses,
)


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
        availability_zone_id: the zone's id, e.g. ``use1-az1`` (flow logs' ``az-id``), or None
            when only the name is known: which id a name stands for differs between accounts,
            so it is never guessed from the name.
    """

    id: str
    vpc_id: str
    cidr: IPv4Network
    availability_zone: str
    route_table_id: str
    network_acl_id: str
    name: str = ""
    availability_zone_id: str | None = None

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


#: EC2's status codes of a peering connection (``VpcPeeringConnectionStateReason``).
PEERING_STATUSES = ("initiating-request", "pending-acceptance", "provisioning", "active", "deleting", "deleted",
                    "rejected", "failed", "expired")


@dataclass(frozen=True)
class VpcPeeringConnection:
    """A peering connection ``pcx-…`` between ``vpc_id`` and ``peer_vpc_id``.

    ``peer_cidrs`` are the peer VPC's CIDRs (needed when the peer VPC is not in the topology).
    ``status`` is EC2's status code: only an ``active`` connection carries traffic.
    """

    id: str
    vpc_id: str
    peer_vpc_id: str
    peer_cidrs: tuple[IPv4Network, ...] = ()
    name: str = ""
    status: str = "active"

    @property
    def is_active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class TransitGateway:
    """A transit gateway ``tgw-…``: a Regional router between its attachments (issue 16)."""

    id: str
    name: str = ""


#: Transit gateway attachment types whose far side is emulated; the others (``vpn``,
#: ``direct-connect-gateway``, ``peering``, ``connect``) end a walk that reaches them.
TGW_EMULATED_ATTACHMENT_TYPES = frozenset({"vpc"})


@dataclass(frozen=True)
class TransitGatewayAttachment:
    """An attachment ``tgw-attach-…`` of a transit gateway to a VPC, a VPN, a Direct Connect
    gateway, a peer transit gateway or a Connect peer.

    Attributes:
        transit_gateway_id: the ``tgw-…``.
        resource_type: ``vpc``, ``vpn``, ``direct-connect-gateway``, ``peering`` or ``connect``.
        resource_id: the ``vpc-…``, ``vpn-…``, ... on the far side.
        subnet_ids: a VPC attachment's subnets, at most one per Availability Zone: the transit
            gateway's network interfaces, where its traffic enters and leaves the VPC.
        route_table_id: the transit gateway route table it is associated with (``None``: none,
            its traffic is not routed).
    """

    id: str
    transit_gateway_id: str
    resource_type: str
    resource_id: str
    subnet_ids: tuple[str, ...] = ()
    route_table_id: str | None = None
    name: str = ""

    @property
    def is_emulated(self) -> bool:
        return self.resource_type in TGW_EMULATED_ATTACHMENT_TYPES


@dataclass(frozen=True)
class TransitGatewayRoute:
    """A static route of a transit gateway route table: to an attachment, or a blackhole
    (``attachment_id`` ``None``), which drops what matches it."""

    destination: IPv4Network
    attachment_id: str | None = None

    @property
    def is_blackhole(self) -> bool:
        return self.attachment_id is None

    def __str__(self) -> str:
        return f"{self.destination} -> {self.attachment_id or 'blackhole'}"


@dataclass(frozen=True)
class TransitGatewayRouteTable:
    """A transit gateway route table ``tgw-rtb-…``: its static (and blackhole) routes and the
    attachments whose routes propagate into it (a VPC attachment propagates its VPC's CIDRs).

    Which attachments it routes for: those associated with it
    (:attr:`TransitGatewayAttachment.route_table_id`).
    """

    id: str
    transit_gateway_id: str
    routes: tuple[TransitGatewayRoute, ...] = ()
    propagations: tuple[str, ...] = ()  # attachment ids
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


def resource_fields(cls: type) -> tuple[str, ...]:
    """The dataclass field names of a resource type (used by the loaders' unknown-key checks)."""
    return tuple(f.name for f in fields(cls))
