"""Every verdict's reason, and the Batfish-style disposition it belongs to.

One enumeration, stable and documented in the README. Where AWS Reachability Analyzer has an
explanation code for the same cause, ``Reason.explanation`` gives it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperplane._core._codes import Reason as _R
from hyperplane.codes import Code


class Disposition(Code):
    ACCEPTED = 1  # delivered to an ENI, an endpoint, the DNS resolver or a function
    DELIVERED_TO_SUBNET = 2  # routed into a subnet where no ENI holds the address
    EXITS_NETWORK = 3  # left the emulated VPC (internet, peering): counts as delivered
    DENIED_OUT = 4  # refused on the way out of the sender
    DENIED_IN = 5  # refused on the way in anywhere else
    NO_ROUTE = 6
    NULL_ROUTED = 7

    @property
    def delivered(self) -> bool:
        return self in (Disposition.ACCEPTED, Disposition.EXITS_NETWORK)


_D = Disposition


class Reason(Code):
    """Why a packet ended where it did. ``.disposition``, ``.explanation``, ``.text``; ``str()``
    is the name. The values are the compiled core's (``_codes.pxd``)."""

    disposition: Disposition
    explanation: str | None  # AWS Reachability Analyzer's explanation code, where it has one
    text: str

    if not TYPE_CHECKING:  # members are (value, disposition, explanation, text); Reason(value) finds one
        def __new__(cls, value: int, disposition: Disposition, explanation: str | None, text: str):
            member = int.__new__(cls, value)
            member._value_ = int(value)  # the compiled constant's number
            member.disposition = disposition
            member.explanation = explanation
            member.text = text
            return member

    # delivered
    DELIVERED = _R.R_DELIVERED, _D.ACCEPTED, None, "delivered to the destination ENI"
    DELIVERED_TO_FUNCTION = _R.R_DELIVERED_TO_FUNCTION, _D.ACCEPTED, None, "delivered back to the function's execution environment"
    DELIVERED_TO_GATEWAY_ENDPOINT = _R.R_DELIVERED_TO_GATEWAY_ENDPOINT, _D.ACCEPTED, None, "delivered to the service through a gateway endpoint"
    DELIVERED_TO_DNS_RESOLVER = _R.R_DELIVERED_TO_DNS_RESOLVER, _D.ACCEPTED, None, "answered by the VPC DNS resolver (base + 2)"
    EXITED_TO_INTERNET = _R.R_EXITED_TO_INTERNET, _D.EXITS_NETWORK, None, "left through the internet gateway"
    FORWARDED_TO_PEERING = _R.R_FORWARDED_TO_PEERING, _D.EXITS_NETWORK, None, "left through a VPC peering connection to a peer VPC that is not in the network"
    # filters
    SG_EGRESS_DENY = _R.R_SG_EGRESS_DENY, _D.DENIED_OUT, "ENI_SG_RULES_MISMATCH", "no security group rule allows it out"
    NACL_OUT_DENY = _R.R_NACL_OUT_DENY, _D.DENIED_OUT, "SUBNET_ACL_RESTRICTION", "the subnet's network ACL denies it out"
    NACL_IN_DENY = _R.R_NACL_IN_DENY, _D.DENIED_IN, "SUBNET_ACL_RESTRICTION", "the subnet's network ACL denies it in"
    SG_INGRESS_DENY = _R.R_SG_INGRESS_DENY, _D.DENIED_IN, "ENI_SG_RULES_MISMATCH", "no security group rule allows it in"
    SOURCE_DEST_CHECK_OUT = _R.R_SOURCE_DEST_CHECK_OUT, _D.DENIED_OUT, "ENI_SOURCE_DEST_CHECK_RESTRICTION", "the sender's source/destination check is on and the source is not its address"
    SOURCE_DEST_CHECK_IN = _R.R_SOURCE_DEST_CHECK_IN, _D.DENIED_IN, "ENI_SOURCE_DEST_CHECK_RESTRICTION", "routed to an ENI whose source/destination check is on: it is not the destination"
    # routing
    NO_ROUTE = _R.R_NO_ROUTE, _D.NO_ROUTE, "NO_ROUTE_TO_DESTINATION", "no route matches the destination"
    BLACKHOLE_ROUTE = _R.R_BLACKHOLE_ROUTE, _D.NULL_ROUTED, "BAD_STATE_ROUTE", "the matching route is a blackhole (its target is gone)"
    NO_ENI_AT_ADDRESS = _R.R_NO_ENI_AT_ADDRESS, _D.DELIVERED_TO_SUBNET, None, "no ENI holds the destination address"
    UNMODELLED_TARGET = _R.R_UNMODELLED_TARGET, _D.NULL_ROUTED, None, "the route's target is outside what is emulated"
    NO_PUBLIC_IP = _R.R_NO_PUBLIC_IP, _D.DENIED_OUT, "IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS", "the internet gateway drops it: the source has no public IP"
    PRIVATE_NAT_TO_INTERNET = _R.R_PRIVATE_NAT_TO_INTERNET, _D.DENIED_OUT, "IGW_PUBLIC_IP_ASSOCIATION_FOR_EGRESS", "a private NAT gateway's traffic cannot use the internet gateway"
    NOT_A_VPC_PUBLIC_ADDRESS = _R.R_NOT_A_VPC_PUBLIC_ADDRESS, _D.NO_ROUTE, "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS", "no ENI or NAT gateway holds this public address"
    NO_VPC_ACCESS = _R.R_NO_VPC_ACCESS, _D.NO_ROUTE, "NO_ROUTE_TO_DESTINATION", "a function without VpcConfig reaches only the internet"
    GATEWAY_ENDPOINT_PROTOCOL = _R.R_GATEWAY_ENDPOINT_PROTOCOL, _D.DENIED_IN, "VPCE_GATEWAY_PROTOCOL_RESTRICTION", "a gateway endpoint carries only TCP and ICMP echo"
    ROUTING_LOOP = _R.R_ROUTING_LOOP, _D.NULL_ROUTED, None, "sent on more than 8 times: the routes form a loop"
    # Hyperplane ENI (V2N NAT)
    V2N_UNSOLICITED_INBOUND = _R.R_V2N_UNSOLICITED_INBOUND, _D.DENIED_IN, None, "no connection: nothing in the VPC can open one to a function"
    V2N_NO_CONNECTION = _R.R_V2N_NO_CONNECTION, _D.DENIED_IN, None, "a TCP packet that is not a SYN and belongs to no connection"
    V2N_UNSUPPORTED_PROTOCOL = _R.R_V2N_UNSUPPORTED_PROTOCOL, _D.DENIED_IN, None, "a Hyperplane ENI carries only TCP and UDP"
    ENI_CAPACITY = _R.R_ENI_CAPACITY, _D.DENIED_IN, None, "every Hyperplane ENI of the pair is full and no other can be created"
    # NAT gateway
    NAT_UNSOLICITED_INBOUND = _R.R_NAT_UNSOLICITED_INBOUND, _D.DENIED_IN, None, "a NAT gateway never accepts connections from outside"
    NAT_NO_CONNECTION_RST = _R.R_NAT_NO_CONNECTION_RST, _D.DENIED_IN, None, "no connection (expired?): the NAT gateway answers with an RST"
    NAT_UNSUPPORTED_PROTOCOL = _R.R_NAT_UNSUPPORTED_PROTOCOL, _D.DENIED_IN, "PROTOCOL_RESTRICTION", "a NAT gateway carries only TCP, UDP and ICMP"
    NAT_NO_CONNECTION = _R.R_NAT_NO_CONNECTION, _D.DENIED_IN, None, "an ICMP packet that is not an echo request and belongs to no connection"
    NAT_PORT_ALLOCATION_ERROR = _R.R_NAT_PORT_ALLOCATION_ERROR, _D.DENIED_IN, None, "ErrorPortAllocation: 55,000 connections to this destination"
    # Lambda
    FUNCTION_PENDING = _R.R_FUNCTION_PENDING, _D.DENIED_OUT, None, "the function is Pending: its Hyperplane ENI is being created"
    FUNCTION_INACTIVE = _R.R_FUNCTION_INACTIVE, _D.DENIED_OUT, None, "the function is Inactive (idle): this invocation fails and starts restoring it"
    FUNCTION_FAILED = _R.R_FUNCTION_FAILED, _D.DENIED_OUT, None, "the function is Failed"
    # packets the emulator does not carry
    NOT_IPV4 = _R.R_NOT_IPV4, _D.DENIED_IN, None, "not IPv4 (IPv6, ARP, ...): not emulated"
    IP_FRAGMENT = _R.R_IP_FRAGMENT, _D.DENIED_IN, None, "a non-first IPv4 fragment: not emulated"
    CAPTURE_TRUNCATED = _R.R_CAPTURE_TRUNCATED, _D.DENIED_IN, None, "captured too short to read its headers: not emulated"
    CAPTURE_MALFORMED = _R.R_CAPTURE_MALFORMED, _D.DENIED_IN, None, "an IPv4 header that is not valid: not emulated"
    # peering
    PCX_ADDRESS_NOT_IN_PEER_VPC = _R.R_PCX_ADDRESS_NOT_IN_PEER_VPC, _D.NO_ROUTE, "PCX_REQUIRES_ADDRESS_IN_VPC_CIDR", "a peering connection carries only traffic to the peer VPC's CIDR blocks"
    PCX_NOT_ACTIVE = _R.R_PCX_NOT_ACTIVE, _D.NULL_ROUTED, "BAD_STATE", "the peering connection is not active: it carries nothing"
    NO_SUBNET_AT_ADDRESS = _R.R_NO_SUBNET_AT_ADDRESS, _D.NULL_ROUTED, None, "the address is inside a VPC CIDR but in none of its subnets"
    # transit gateway
    TGW_NO_ROUTE = _R.R_TGW_NO_ROUTE, _D.NO_ROUTE, "NO_ROUTE_TO_DESTINATION", "the transit gateway route table has no route to the destination"
    TGW_BLACKHOLE_ROUTE = _R.R_TGW_BLACKHOLE_ROUTE, _D.NULL_ROUTED, "BAD_STATE_ROUTE", "the matching transit gateway route is a blackhole"
    TGW_NO_ATTACHMENT_IN_AZ = _R.R_TGW_NO_ATTACHMENT_IN_AZ, _D.NO_ROUTE, None, "the transit gateway has no attachment subnet in the sender's Availability Zone (or none in its VPC)"
    TGW_NOT_EMULATED_ATTACHMENT = _R.R_TGW_NOT_EMULATED_ATTACHMENT, _D.EXITS_NETWORK, None, "left through a transit gateway VPN, Direct Connect or peering attachment (not emulated)"
    TGW_NOT_ASSOCIATED = _R.R_TGW_NOT_ASSOCIATED, _D.NO_ROUTE, None, "the transit gateway attachment is associated with no route table"
    # internet gateway: addresses it refuses
    IGW_PRIVATE_DESTINATION = _R.R_IGW_PRIVATE_DESTINATION, _D.DENIED_OUT, "IGW_DESTINATION_ADDRESS_NOT_IN_RFC1918_EGRESS", "the internet gateway drops it: the destination is a private address (RFC 1918)"
    IGW_SHARED_DESTINATION = _R.R_IGW_SHARED_DESTINATION, _D.DENIED_OUT, "IGW_DESTINATION_ADDRESS_NOT_IN_RFC6598_EGRESS", "the internet gateway drops it: the destination is a shared address (RFC 6598, 100.64.0.0/10)"
    IGW_PRIVATE_SOURCE = _R.R_IGW_PRIVATE_SOURCE, _D.DENIED_IN, "IGW_SOURCE_ADDRESS_NOT_IN_RFC1918_INGRESS", "the internet gateway drops it: from the internet, the source is a private address (RFC 1918)"
    IGW_SHARED_SOURCE = _R.R_IGW_SHARED_SOURCE, _D.DENIED_IN, "IGW_SOURCE_ADDRESS_NOT_IN_RFC6598_INGRESS", "the internet gateway drops it: from the internet, the source is a shared address (RFC 6598)"
    IGW_PRIVATE_ADDRESS_FROM_INTERNET = _R.R_IGW_PRIVATE_ADDRESS_FROM_INTERNET, _D.NO_ROUTE, "IGW_PRIVATE_IP_ASSOCIATION_FOR_INGRESS", "the internet gateway refuses it: a private address cannot be reached from the internet"
    # link-local destinations (169.254.0.0/16)
    DELIVERED_TO_LINK_LOCAL_SERVICE = _R.R_DELIVERED_TO_LINK_LOCAL_SERVICE, _D.ACCEPTED, None, "answered on the instance's host: metadata 169.254.169.254, Time Sync .123, license activation .250/.251, DNS .253"
    LINK_LOCAL_NOT_ROUTED = _R.R_LINK_LOCAL_NOT_ROUTED, _D.NO_ROUTE, None, "a link-local destination (169.254.0.0/16) is never routed, and no host service answers it here"
