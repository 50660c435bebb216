"""The :class:`Topology`: every resource of an account's network in one region, by id, with
its lookups and :meth:`Topology.replace`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Iterable, Mapping

from hyperplane.errors import UnknownResource
from hyperplane.model.resources import (
    Vpc, Subnet, Route, RouteTable, SecurityGroup, NetworkAcl, InternetGateway, NatGateway,
    PrefixList, VpcEndpoint, NetworkInterface, VpcPeeringConnection, LambdaFunction,
    TransitGateway, TransitGatewayAttachment, TransitGatewayRouteTable, next_free_address,
)


def _frozen_map(value: Mapping[str, Any] | Iterable[Any] | None, key: str = "id") -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if isinstance(value, Mapping):
        return MappingProxyType(dict(value))
    return MappingProxyType({getattr(item, key): item for item in value})


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
    ("transit_gateways", TransitGateway),
    ("transit_gateway_attachments", TransitGatewayAttachment),
    ("transit_gateway_route_tables", TransitGatewayRouteTable),
)


_COLLECTION_OF_TYPE = {cls: name for name, cls in _COLLECTIONS}


@dataclass(frozen=True, eq=True)
class Topology:
    """An account's network in one region: every resource, by id, plus lookups.

    Attributes (read-only mappings, declaration order):
        account_id, region: where it lives.
        vpcs, subnets, route_tables, security_groups, network_acls, internet_gateways,
        nat_gateways, prefix_lists, vpc_endpoints, network_interfaces (managed ENIs of NAT
        gateways and interface endpoints included), vpc_peering_connections: by id.
        functions: :class:`LambdaFunction` by name.
        transit_gateways, transit_gateway_attachments, transit_gateway_route_tables: by id
        (a transit gateway is Regional: a multi-Region snapshot holds each Region's own).
    """

    #: the cross-resource checker; hyperplane.model.validation, which imports this module, sets it
    _checker: ClassVar[Callable[..., None]]

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
    transit_gateways: Mapping[str, TransitGateway] = field(default_factory=dict)
    transit_gateway_attachments: Mapping[str, TransitGatewayAttachment] = field(default_factory=dict)
    transit_gateway_route_tables: Mapping[str, TransitGatewayRouteTable] = field(default_factory=dict)

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
        type(self)._checker(self, file=file, where=where)
        return self

