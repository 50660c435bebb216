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

The package's parts: :mod:`~hyperplane.model.values` (protocols, ports, AWS's numbers and their
parse helpers), :mod:`~hyperplane.model.resources` (the resource dataclasses),
:mod:`~hyperplane.model.topology` (:class:`Topology`) and :mod:`~hyperplane.model.validation`
(:func:`validate_topology`). Every name the module ``hyperplane.model`` had is imported here.
"""

from hyperplane.model.resources import (
    Vpc, Subnet, Route, RouteTable, SecurityGroupRule, SecurityGroup, NetworkAclEntry, NetworkAcl,
    InternetGateway, ElasticIp, NatGateway, PrefixList, VpcEndpoint, NetworkInterface,
    VpcPeeringConnection, ExecutionRole, VpcConfig, FunctionVersion, LambdaFunction, next_free_address,
    resource_fields, TransitGateway, TransitGatewayAttachment, TransitGatewayRoute, TransitGatewayRouteTable,
    TGW_EMULATED_ATTACHMENT_TYPES,
)
from hyperplane.model.topology import Topology
from hyperplane.model.validation import validate_topology
from hyperplane.model.values import (
    PROTOCOL_ALL, ICMP, TCP, UDP, ALL_PORTS, ANY_IPV4, IMPLICIT_DENY_RULE_NUMBER,
    MAX_NACL_RULE_NUMBER, MAX_SECURITY_GROUPS_PER_ENI, MAX_SUBNETS_PER_FUNCTION,
    MAX_NAT_GATEWAY_ADDRESSES, LAMBDA_VPC_PERMISSIONS, MANAGED_POLICIES, MANAGED_ENI_KINDS,
    ROUTE_TARGET_KINDS, UNMODELLED_ROUTE_TARGETS, parse_protocol, protocol_name, has_ports,
    route_target_kind, unmodelled_route_target, reserved_addresses, VPC_MIN_PREFIX, VPC_MAX_PREFIX,
)

__all__ = [
    "PROTOCOL_ALL", "ICMP", "TCP", "UDP", "ALL_PORTS", "ANY_IPV4", "IMPLICIT_DENY_RULE_NUMBER",
    "MAX_SECURITY_GROUPS_PER_ENI", "MAX_SUBNETS_PER_FUNCTION", "MAX_NAT_GATEWAY_ADDRESSES",
    "LAMBDA_VPC_PERMISSIONS", "MANAGED_POLICIES", "MANAGED_ENI_KINDS", "ROUTE_TARGET_KINDS",
    "UNMODELLED_ROUTE_TARGETS", "unmodelled_route_target",
    "Vpc", "Subnet", "Route", "RouteTable", "SecurityGroupRule", "SecurityGroup",
    "NetworkAclEntry", "NetworkAcl", "InternetGateway", "ElasticIp", "NatGateway", "PrefixList",
    "VpcEndpoint", "NetworkInterface", "VpcPeeringConnection", "ExecutionRole", "VpcConfig",
    "FunctionVersion", "LambdaFunction", "Topology", "TransitGateway", "TransitGatewayAttachment",
    "TransitGatewayRoute", "TransitGatewayRouteTable", "TGW_EMULATED_ATTACHMENT_TYPES",
    "parse_protocol", "protocol_name", "route_target_kind", "reserved_addresses",
    "next_free_address", "validate_topology",
]
