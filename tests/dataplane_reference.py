"""A plain, per-packet Python walk of one packet through a VPC, for reading, not speed.

Written from SPEC §3-§4 straight on the topology model (``hyperplane.model``), never on the
compiled arrays of ``hyperplane.dataplane.compiled_vpc`` / ``hyperplane.tables.policy``: the batch pipeline must agree with
it packet for packet (tests/test_dataplane_differential.py).

Scope: first packets of flows, and their replies. Without a ``State`` nothing is remembered:
security groups decide by their rules alone, a NAT gateway opens a connection for every packet
that may open one and has none to answer. With a ``State`` (shared by the packets of a batch),
security groups remember the flows they let through per ENI, so that a reply passes whatever the
rules say (SPEC §3), and a NAT gateway translates back what ``State.nat`` says it translated
(the port it chose is the emulator's; the caller fills it in from the batch). A flow AWS leaves
untracked (``ReferenceVpc.leaves_untracked``: open rules both ways) is not remembered: each of
its packets is judged by the rules of the moment, so that a rule removed between two batches
cuts it.

Lambda functions (SPEC §2): a function's Hyperplane ENIs are ENIs of their subnet that carry the
function's security groups and have no public IP (``HyperplaneEni``, given to ``evaluate``
besides the topology). A packet from an execution environment (``FromFunction``) is first
translated by V2N: only TCP and UDP are carried, and TCP only from an opening SYN; the source
becomes the Hyperplane ENI's address and a port that V2N chose (the emulator's, filled in by the
caller). Then the Hyperplane ENI sends it like any ENI. A packet that reaches a Hyperplane ENI
passes NACL in and SG ingress as anywhere, then V2N translates it back to the execution
environment if it answers a connection the function opened (``State.v2n``); nothing else gets
through (one-way NAT).

The walk, one hop at a time (a hop goes from a sending ENI to the next ENI or gateway):

  from a function:   V2N out (TCP SYN or UDP opens a connection; other TCP, other protocols:
                     dropped, at no ENI) -> sent from the Hyperplane ENI of the environment's
                     subnet, with its address and the V2N port as source
  send from an ENI:  source/destination check: an ENI with it on sends only from its own
                     addresses (NAT gateway and Hyperplane ENIs are exempt)
                     -> DNS to the VPC resolver (base + 2, TCP/UDP 53: no SG, no NACL)
                     -> SG egress
                     -> route (longest prefix; static beats prefix list at equal length)
                     -> NACL out of the sender's subnet, when the packet leaves it: not with
                        no route or a blackhole, nor when the next hop is in that subnet
                     -> target: local (the ENI holding the address; an address in no subnet
                                of the VPC is null-routed, as Batfish has it) | eni | nat | igw
                                | vpce | pcx | tgw | blackhole | no route
  over a peering:    only an active connection carries anything, and only to the CIDR blocks of
                     the VPC at its other end; that VPC in the topology: the packet arrives at
                     the ENI holding the address there (its subnet's NACL in, its groups), else
                     it leaves the network
  arrive at an ENI:  NACL in of its subnet, unless the hop came from that subnet
                     -> NAT gateway ENI: only its own connections come back (none here)
                     -> source/destination check: with it on, only packets addressed to it
                        (what an ``eni`` route sends an appliance is dropped there)
                     -> otherwise SG ingress -> delivered; at a Hyperplane ENI: V2N back to
                        the function (a connection it opened), or dropped
  at a NAT gateway:  NACL in (as above) -> translation (TCP SYN, UDP, ICMP echo open one)
                     -> sent on from the gateway's ENI, with its private address as source.
                     Other TCP (no connection) is dropped; with a ``State`` the gateway's RST
                     to the sender is walked from the gateway's ENI (``Verdict.answer``)
  in over a peering from a VPC not in the topology: arrive at the ENI it is addressed to.
  from the internet: the internet gateway of the VPC maps a public address (an ENI's public
                     IP, a NAT gateway's Elastic IP) to its private address -> arrive there.
                     It drops what comes from a private (RFC 1918) or shared (RFC 6598)
                     source, and refuses a private destination.
  to the internet:   the source's private address -> its public one; a packet for a public
                     address of the VPC itself comes back in (hairpin) as if from the internet.
                     A private or shared destination is dropped (it is not on the internet).
  transit gateway:   (AWS's "How transit gateways work", "Network ACLs for transit gateways")
                     the VPC's attachment, and its subnet in the sender's Availability Zone
                     (none: dropped) -> that subnet's NACL inbound rules -> the route table the
                     attachment is associated with: longest prefix among its static routes and
                     the CIDRs its VPC attachments propagate (a static route wins at equal
                     length) -> blackhole | no route (or, where a VPN / Direct Connect attachment
                     propagates, out by it) | another attachment: not a VPC, out by it; a VPC: its
                     subnet in the same zone (else its first) routes the packet in that VPC,
                     NACL out when it leaves that subnet, then it arrives as from that subnet.

Where a packet ends ("location"): the ENI it was delivered to, or the ENI where it was stopped:
the sender for every decision taken while leaving (SG egress, NACL out, routing, internet
gateway, gateway endpoint, DNS), the receiver for decisions taken on arrival (NACL in, SG
ingress, the NAT gateway, V2N back). From the internet to an address nobody holds, and a
function's packet that V2N refuses: no ENI (None).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

from hyperplane import model
from hyperplane.reasons import Reason

TCP, UDP, ICMP = 6, 17, 1
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
MAX_HOPS = 8
LINK_LOCAL = IPv4Network("169.254.0.0/16")
# instance metadata, Amazon Time Sync, Windows license activation (KMS), the Amazon DNS server
HOST_SERVICES = {IPv4Address(a) for a in ("169.254.169.254", "169.254.169.123", "169.254.169.250",
                                          "169.254.169.251", "169.254.169.253")}
RFC1918 = tuple(IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
RFC6598 = IPv4Network("100.64.0.0/10")


def not_on_internet(address: str) -> str | None:
    """"private" (RFC 1918), "shared" (RFC 6598) or None: what an internet gateway refuses."""
    a = IPv4Address(address)
    if any(a in n for n in RFC1918):
        return "private"
    return "shared" if a in RFC6598 else None


@dataclass(frozen=True)
class Packet:
    """One IPv4 packet. ``flags``: the TCP flags for TCP, the ICMP type for ICMP, 0 otherwise.

    ICMP as the packet records carry it (hyperplane/records.py): an echo request has its
    identifier in ``src_port``, an echo reply in ``dst_port`` (their code is 0); any other type
    has its code in ``dst_port``."""

    src: IPv4Address
    dst: IPv4Address
    proto: int
    src_port: int = 0
    dst_port: int = 0
    flags: int = 0


@dataclass
class State:
    """What earlier packets left behind.

    ``flows``: (ENI id, flow key) for every packet a security group of that ENI let through;
    a flow key ignores direction, so a reply has its request's key (see ``flow_key``).
    ``nat``: (protocol, NAT private address, NAT port, remote address, remote port) ->
    (inside address, inside port), one per connection a NAT gateway opened."""

    flows: set = field(default_factory=set)
    nat: dict = field(default_factory=dict)
    #: (protocol, inside address, inside port, remote address, remote port) -> the port a NAT
    #: gateway chose for that new connection (the emulator's choice; 1024 when unknown)
    nat_ports: dict = field(default_factory=dict)
    #: (protocol, Hyperplane ENI address, V2N port, remote address, remote port) ->
    #: (execution environment address, its port), one per connection a function opened
    v2n: dict = field(default_factory=dict)


@dataclass(frozen=True)
class HyperplaneEni:
    """A function's Hyperplane ENI, as the Lambda service created it: an address in a subnet,
    the function's security groups, never a public IP."""

    id: str
    subnet_id: str
    security_group_ids: tuple[str, ...]
    private_ip: IPv4Address
    public_ip: None = None

    @property
    def private_ips(self) -> tuple[IPv4Address, ...]:
        return (self.private_ip,)


@dataclass(frozen=True)
class FromFunction:
    """The origin of a packet from an execution environment: the Hyperplane ENI that carries
    it (the one of the subnet the environment is bound to, see ``bound_subnet``) and the port
    V2N chose for its connection (the emulator's choice; unused when V2N refuses the packet)."""

    eni_id: str
    port: int | None


@dataclass(frozen=True)
class FromPeering:
    """The origin of a packet that comes in over a peering connection whose other VPC is not in
    the topology: an answer, addressed to the ENI that sent its request out over it."""

    eni_id: str


def bound_subnet(function_name: str, environment_ip: IPv4Address, subnet_ids: tuple[str, ...]) -> str:
    """The subnet an execution environment is bound to for its lifetime (SPEC §2: deterministic
    and documented; hyperplane/lambda_service/environments.py documents a CRC-32 of name and dotted address)."""
    return subnet_ids[zlib.crc32(f"{function_name}:{environment_ip}".encode()) % len(subnet_ids)]


def icmp_type_and_code(pkt: Packet) -> tuple[int, int]:
    if pkt.flags in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY):
        return pkt.flags, 0
    return pkt.flags, pkt.dst_port


def flow_key(pkt: Packet) -> tuple:
    """Both ends, in no order, and the protocol. An ICMP echo request carries its identifier
    in the source port and the reply in the destination port (records.py), so they share it;
    protocols without ports are tracked by their addresses alone."""
    if pkt.proto in (TCP, UDP, ICMP):
        return pkt.proto, frozenset({(pkt.src, pkt.src_port), (pkt.dst, pkt.dst_port)})
    return pkt.proto, frozenset({pkt.src, pkt.dst})


@dataclass(frozen=True)
class Verdict:
    reason: Reason
    eni_id: str | None  # where it was delivered or stopped (see the module docstring)
    path: tuple[str, ...] = ()  # the ENIs that sent it, in order, and "igw-hairpin" (statistics)
    answer: Verdict | None = None  # what the network sent back: a NAT gateway's RST, walked


class ReferenceVpc:
    """The topology (and the Lambda service's Hyperplane ENIs) and the few lookups the walk
    needs, by plain iteration."""

    def __init__(self, topology: model.Topology, hyperplane_enis: tuple[HyperplaneEni, ...] = ()) -> None:
        self.t = topology
        self.hyperplane = {e.id: e for e in hyperplane_enis}

    # -- lookups ------------------------------------------------------------------------------

    def all_enis(self) -> list:
        return [*self.t.network_interfaces.values(), *self.hyperplane.values()]

    def eni(self, eni_id: str) -> model.NetworkInterface | HyperplaneEni:
        if eni_id in self.hyperplane:
            return self.hyperplane[eni_id]
        return self.t.network_interfaces[eni_id]

    def is_hyperplane(self, eni_id: str) -> bool:
        return eni_id in self.hyperplane

    def subnet_of_eni(self, eni_id: str) -> model.Subnet:
        return self.t.subnets[self.eni(eni_id).subnet_id]

    def vpc_of_eni(self, eni_id: str) -> model.Vpc:
        return self.t.vpcs[self.subnet_of_eni(eni_id).vpc_id]

    def eni_holding(self, vpc_id: str, address: IPv4Address) -> str | None:
        """The ENI of the VPC with this private address (primary or secondary)."""
        for eni in self.all_enis():
            if self.t.subnets[eni.subnet_id].vpc_id == vpc_id and address in eni.private_ips:
                return eni.id
        return None

    def subnet_holding(self, vpc_id: str, address: IPv4Address) -> str | None:
        for subnet in self.t.subnets.values():
            if subnet.vpc_id == vpc_id and address in subnet.cidr:
                return subnet.id
        return None

    def nat_of_eni(self, eni_id: str) -> model.NatGateway | None:
        for nat in self.t.nat_gateways.values():
            if nat.network_interface_id == eni_id:
                return nat
        return None

    def has_internet_gateway(self, subnet_id: str) -> bool:
        vpc_id = self.t.subnets[subnet_id].vpc_id
        return any(igw.vpc_id == vpc_id for igw in self.t.internet_gateways.values())

    def owner_of_public_ip(self, address: IPv4Address) -> tuple[str, IPv4Address] | None:
        """(ENI id, private address) behind a public address, as an internet gateway maps it
        (only in a VPC that has one attached)."""
        for nat in self.t.nat_gateways.values():
            for private, public in nat.address_pairs:
                if public == address and self.has_internet_gateway(nat.subnet_id):
                    return nat.network_interface_id, private
        for eni in self.t.network_interfaces.values():
            if eni.public_ip == address and self.has_internet_gateway(eni.subnet_id):
                return eni.id, eni.private_ip  # a public IP belongs to the primary address
        return None

    def public_ip_of(self, vpc_id: str, private: IPv4Address) -> IPv4Address | None:
        """The public address the internet gateway associates with a private one (1:1, by
        address: whichever ENI forwards the packet): an ENI's primary address, or a NAT
        gateway's address paired with an Elastic IP."""
        for nat in self.t.nat_gateways.values():
            if self.t.subnets[nat.subnet_id].vpc_id == vpc_id:
                public = dict(nat.address_pairs).get(private)
                if public is not None:
                    return public
        for eni in self.t.network_interfaces.values():
            if self.t.subnets[eni.subnet_id].vpc_id == vpc_id and eni.private_ip == private:
                return eni.public_ip
        return None

    def members_of_group(self, group_id: str) -> list[IPv4Address]:
        """Private addresses of every ENI carrying the group, Hyperplane ENIs included (never
        public addresses)."""
        return [ip for eni in self.all_enis() if group_id in eni.security_group_ids
                for ip in eni.private_ips]

    # -- matching -----------------------------------------------------------------------------

    @staticmethod
    def protocol_and_ports_match(protocol: int, port_range: tuple[int, int], icmp_type: int,
                                 icmp_code: int, pkt: Packet) -> bool:
        if protocol == model.PROTOCOL_ALL:
            return True
        if protocol != pkt.proto:
            return False
        if protocol in (TCP, UDP):
            low, high = port_range
            return low <= pkt.dst_port <= high
        if protocol == ICMP:
            # AWS: a security group rule's FromPort is "the ICMP type or -1 (all ICMP types)"
            # and ToPort "the ICMP code or -1 (all ICMP codes)" (IpPermission); a NACL entry's
            # IcmpTypeCode: "The ICMP type. A value of -1 means all types." and "The ICMP code.
            # A value of -1 means all codes for the specified ICMP type."
            kind, code = icmp_type_and_code(pkt)
            if icmp_type == -1:
                return True
            return icmp_type == kind and (icmp_code == -1 or icmp_code == code)
        return True  # other protocols have no ports

    def checks_source_and_destination(self, eni_id: str) -> bool:
        """EC2: "Each EC2 instance performs source/destination checks by default. This means
        that the instance must be the source or destination of any traffic it sends or
        receives." An ENI's ``source_dest_check`` says whether it does; a NAT gateway's ENI and
        a Hyperplane ENI are AWS's own translators, which forward by design."""
        if self.is_hyperplane(eni_id):
            return False
        eni = self.t.network_interfaces[eni_id]
        return eni.kind != "nat_gateway" and eni.source_dest_check

    def peer_matches(self, rule: model.SecurityGroupRule, peer: IPv4Address) -> bool:
        if rule.cidr is not None:
            return peer in rule.cidr
        if rule.prefix_list_id is not None:
            return self.t.prefix_lists[rule.prefix_list_id].contains(peer)
        return peer in self.members_of_group(rule.security_group_id)

    def security_groups_allow(self, eni_id: str, egress: bool, pkt: Packet) -> bool:
        """Any rule of any group on the ENI (peer: destination out, source in)."""
        peer = pkt.dst if egress else pkt.src
        for group_id in self.eni(eni_id).security_group_ids:
            for rule in self.t.security_groups[group_id].rules(egress):
                if (self.protocol_and_ports_match(rule.protocol, rule.port_range, rule.icmp_type,
                                                  rule.icmp_code, pkt)
                        and self.peer_matches(rule, peer)):
                    return True
        return False

    # -- untracked flows ------------------------------------------------------------------------

    def is_open_to_all(self, rule: model.SecurityGroupRule) -> bool:
        """AWS names "all traffic (0.0.0.0/0 or ::/0)": the rule's CIDR, or an entry of its
        prefix list, is 0.0.0.0/0 (IPv4 only here)."""
        everything = IPv4Network("0.0.0.0/0")
        if rule.cidr is not None:
            return rule.cidr == everything
        if rule.prefix_list_id is not None:
            return everything in self.t.prefix_lists[rule.prefix_list_id].cidrs
        return False

    def admits_as_open(self, eni_id: str, egress: bool, pkt: Packet) -> bool:
        """EC2 "Untracked connections": "If a security group rule permits TCP or UDP flows for
        all traffic (0.0.0.0/0 or ::/0) and there is a corresponding rule in the other direction
        that permits all response traffic (0.0.0.0/0 or ::/0) for any port (0-65535), then that
        flow of traffic is not tracked" -- with ``pkt`` the request, crossing ``egress``."""
        groups = [self.t.security_groups[g] for g in self.eni(eni_id).security_group_ids]
        admitted = any(self.is_open_to_all(rule)
                       and self.protocol_and_ports_match(rule.protocol, rule.port_range, rule.icmp_type,
                                                         rule.icmp_code, pkt)
                       for g in groups for rule in g.rules(egress))
        answered = any(self.is_open_to_all(rule)
                       and (rule.protocol == model.PROTOCOL_ALL
                            or (rule.protocol == pkt.proto and tuple(rule.port_range) == (0, 65535)))
                       for g in groups for rule in g.rules(not egress))
        return admitted and answered

    def automatically_tracked(self, eni_id: str, egress: bool, pkt: Packet) -> bool:
        """EC2 "Automatically tracked connections": "Connections made through the following are
        automatically tracked, even if the security group configuration does not otherwise
        require tracking" -- of its list, what is modelled: NAT gateways, AWS PrivateLink
        (interface VPC endpoints), AWS Lambda (Hyperplane elastic network interfaces). So: the
        ENI is one of them, its peer is one of them, or its subnet reaches the peer through a
        NAT gateway."""
        if self.is_hyperplane(eni_id) or self.eni(eni_id).kind in model.MANAGED_ENI_KINDS:
            return True
        peer = pkt.dst if egress else pkt.src
        subnet = self.subnet_of_eni(eni_id)
        holder = self.eni_holding(subnet.vpc_id, peer)
        if holder is not None and (self.is_hyperplane(holder) or self.eni(holder).kind in model.MANAGED_ENI_KINDS):
            return True
        route = self.route_for(subnet.id, peer)
        return route is not None and not route.is_blackhole and route.target_kind == "nat"

    def leaves_untracked(self, eni_id: str, egress: bool, pkt: Packet) -> bool:
        """Whether the ENI's groups leave this packet's flow untracked: TCP or UDP only ("ICMP
        traffic is always tracked"), admitted as a request by an open rule with an all-ports
        open rule the other way -- this packet, or the request it answers -- and not a
        connection AWS tracks automatically."""
        if pkt.proto not in (TCP, UDP) or self.automatically_tracked(eni_id, egress, pkt):
            return False
        answered = Packet(pkt.dst, pkt.src, pkt.proto, pkt.dst_port, pkt.src_port)
        return self.admits_as_open(eni_id, egress, pkt) or self.admits_as_open(eni_id, not egress, answered)

    def network_acl_allows(self, subnet_id: str, egress: bool, pkt: Packet) -> bool:
        """Lowest rule number first; the first matching rule decides; none: denied."""
        acl = self.t.network_acls[self.t.subnets[subnet_id].network_acl_id]
        peer = pkt.dst if egress else pkt.src
        entries = [e for e in acl.entries if e.egress == egress]
        for entry in sorted(entries, key=lambda e: e.rule_number):
            if (self.protocol_and_ports_match(entry.protocol, entry.port_range, entry.icmp_type,
                                              entry.icmp_code, pkt)
                    and peer in entry.cidr):
                return entry.rule_action == "allow"
        return False

    def route_for(self, subnet_id: str, dst: IPv4Address) -> model.Route | None:
        """Longest prefix; at equal length static over prefix list; then the first listed."""
        table = self.t.route_tables[self.t.subnets[subnet_id].route_table_id]
        best, best_key = None, None
        for position, route in enumerate(table.routes):
            if route.is_prefix_list_route:
                cidrs, static = self.t.prefix_lists[route.destination].cidrs, 0
            else:
                cidrs, static = (route.destination,), 1
            for cidr in cidrs:
                if dst in cidr:
                    key = (cidr.prefixlen, static, -position)
                    if best_key is None or key > best_key:
                        best, best_key = route, key
        return best


def evaluate(topology: model.Topology, pkt: Packet, origin: str | FromFunction | FromPeering | None,
             state: State | None = None, hyperplane_enis: tuple[HyperplaneEni, ...] = ()) -> Verdict:
    """Walk one packet sent by the ENI ``origin`` (an ENI id), by a function's execution
    environment (``FromFunction``; ``pkt.src`` is the environment's address), in over a peering
    connection (``FromPeering``), or from the internet (None).

    ``state``: flows and NAT connections of earlier packets, updated with this one's flows.
    ``hyperplane_enis``: the Hyperplane ENIs that exist (the Lambda service's)."""
    walk = _Walk(ReferenceVpc(topology, tuple(hyperplane_enis)), state)
    verdict = walk.start(pkt, origin)
    return replace(verdict, path=tuple(walk.path))


class _Walk:
    def __init__(self, vpc: ReferenceVpc, state: State | None) -> None:
        self.vpc = vpc
        self.state = state
        self.path: list[str] = []

    def start(self, pkt: Packet, origin: str | FromFunction | FromPeering | None) -> Verdict:
        if isinstance(origin, FromFunction):
            return self.from_function(pkt, origin)
        if isinstance(origin, FromPeering):  # from outside the VPC: its subnet's NACL applies
            self.path.append("pcx-in")
            return self.arrive(pkt, origin.eni_id, from_subnet=None)
        if origin is not None:
            return self.send(pkt, origin)
        source_kind = not_on_internet(pkt.src)
        if source_kind is not None:
            return Verdict(Reason.IGW_PRIVATE_SOURCE if source_kind == "private" else Reason.IGW_SHARED_SOURCE, None)
        if not_on_internet(pkt.dst) == "private":
            return Verdict(Reason.IGW_PRIVATE_ADDRESS_FROM_INTERNET, None)
        owner = self.vpc.owner_of_public_ip(pkt.dst)
        if owner is None:
            return Verdict(Reason.NOT_A_VPC_PUBLIC_ADDRESS, None)
        eni_id, private = owner
        return self.arrive(replace(pkt, dst=private), eni_id, from_subnet=None)

    def from_function(self, pkt: Packet, origin: FromFunction) -> Verdict:
        """V2N out: a new connection from the environment, translated to the Hyperplane ENI's
        address and V2N's port, then sent from that ENI."""
        if pkt.proto not in (TCP, UDP):
            return Verdict(Reason.V2N_UNSUPPORTED_PROTOCOL, None)
        if pkt.proto == TCP and pkt.flags & (SYN | ACK | FIN | RST) != SYN:
            return Verdict(Reason.V2N_NO_CONNECTION, None)
        hp = self.vpc.hyperplane[origin.eni_id]
        if self.state is not None:
            self.state.v2n[(pkt.proto, hp.private_ip, origin.port, pkt.dst, pkt.dst_port)] = (pkt.src, pkt.src_port)
        self.path.append("v2n")
        return self.send(replace(pkt, src=hp.private_ip, src_port=origin.port), hp.id)

    def send(self, pkt: Packet, eni_id: str) -> Verdict:
        self.path.append(eni_id)
        if len(self.path) > MAX_HOPS:
            raise AssertionError("routing loop: the generator must not build one")
        v = self.vpc
        if v.checks_source_and_destination(eni_id) and pkt.src not in v.eni(eni_id).private_ips:
            return Verdict(Reason.SOURCE_DEST_CHECK_OUT, eni_id)  # a spoofed source
        if pkt.dst in LINK_LOCAL:
            # AWS: security groups and NACLs don't filter link-local traffic; an instance's host
            # serves metadata, Time Sync, license activation and DNS there; nothing else does
            served = not v.is_hyperplane(eni_id) and v.eni(eni_id).kind not in ("nat_gateway", "vpc_endpoint")
            if served and pkt.dst in HOST_SERVICES:
                return Verdict(Reason.DELIVERED_TO_LINK_LOCAL_SERVICE, eni_id)
            return Verdict(Reason.LINK_LOCAL_NOT_ROUTED, eni_id)
        subnet = v.subnet_of_eni(eni_id)
        vpc = v.vpc_of_eni(eni_id)
        if pkt.dst == vpc.dns_resolver_ip and pkt.proto in (TCP, UDP) and pkt.dst_port == 53:
            return Verdict(Reason.DELIVERED_TO_DNS_RESOLVER, eni_id)  # SPEC §4: no SG filters it
        is_nat = v.nat_of_eni(eni_id) is not None
        if not is_nat and not self.security_groups_allow(eni_id, True, pkt):
            return Verdict(Reason.SG_EGRESS_DENY, eni_id)

        route = v.route_for(subnet.id, pkt.dst)
        kind = None if route is None else route.target_kind
        # the next hop's subnet decides whether the packet crosses the sender's NACL
        next_eni = None
        if route is not None and not route.is_blackhole:
            if kind == "local":
                next_eni = v.eni_holding(vpc.id, pkt.dst)
                next_subnet = v.subnet_holding(vpc.id, pkt.dst)
            elif kind == "eni":
                next_eni = route.target
                next_subnet = v.eni(next_eni).subnet_id
            elif kind == "nat":
                next_eni = v.t.nat_gateways[route.target].network_interface_id
                next_subnet = v.t.nat_gateways[route.target].subnet_id
            else:
                next_subnet = None  # leaves the VPC
        else:
            next_subnet = subnet.id  # no route, or a blackhole: it never leaves the subnet
        if next_subnet != subnet.id and not v.network_acl_allows(subnet.id, True, pkt):
            return Verdict(Reason.NACL_OUT_DENY, eni_id)

        if route is None:
            return Verdict(Reason.NO_ROUTE, eni_id)
        if route.is_blackhole:
            return Verdict(Reason.BLACKHOLE_ROUTE, eni_id)
        if kind in ("local", "eni"):
            if kind == "local" and next_subnet is None:
                return Verdict(Reason.NO_SUBNET_AT_ADDRESS, eni_id)
            if next_eni is None:
                return Verdict(Reason.NO_ENI_AT_ADDRESS, eni_id)
            return self.arrive(pkt, next_eni, from_subnet=subnet.id)
        if kind == "nat":
            return self.at_nat_gateway(pkt, route.target, from_subnet=subnet.id)
        if kind == "igw":
            nat = v.nat_of_eni(eni_id)
            public = v.public_ip_of(vpc.id, pkt.src)
            if public is None:
                if nat is not None and not nat.is_public:
                    return Verdict(Reason.PRIVATE_NAT_TO_INTERNET, eni_id)
                return Verdict(Reason.NO_PUBLIC_IP, eni_id)
            destination_kind = not_on_internet(pkt.dst)
            if destination_kind is not None:
                return Verdict(Reason.IGW_PRIVATE_DESTINATION if destination_kind == "private"
                               else Reason.IGW_SHARED_DESTINATION, eni_id)
            owner = v.owner_of_public_ip(pkt.dst)
            if owner is None:
                return Verdict(Reason.EXITED_TO_INTERNET, eni_id)
            # a public address of the VPC: the internet gateway turns it around
            back_eni, private = owner
            self.path.append("igw-hairpin")
            return self.arrive(replace(pkt, src=public, dst=private), back_eni, from_subnet=None)
        if kind == "vpce":
            if pkt.proto == TCP or (pkt.proto == ICMP and pkt.flags == ICMP_ECHO_REQUEST):
                return Verdict(Reason.DELIVERED_TO_GATEWAY_ENDPOINT, eni_id)
            return Verdict(Reason.GATEWAY_ENDPOINT_PROTOCOL, eni_id)
        if kind == "pcx":
            return self.over_peering(pkt, route.target, vpc.id, eni_id)
        if route.target in v.t.transit_gateways:
            return self.through_transit_gateway(pkt, route.target, subnet, eni_id)
        raise AssertionError(f"route target {route.target!r} is not modelled here")

    def over_peering(self, pkt: Packet, pcx_id: str, vpc_id: str, eni_id: str) -> Verdict:
        """VPC Peering guide: "VPC peering creates a direct network route between the two VPCs
        using private IPv4 addresses"; a connection that is not active carries nothing."""
        v = self.vpc
        pcx = v.t.vpc_peering_connections[pcx_id]
        other = pcx.vpc_id if pcx.peer_vpc_id == vpc_id else pcx.peer_vpc_id
        if pcx.status != "active":
            return Verdict(Reason.PCX_NOT_ACTIVE, eni_id)
        peer = v.t.vpcs.get(other)
        if not any(pkt.dst in cidr for cidr in (peer.cidrs if peer is not None else pcx.peer_cidrs)):
            return Verdict(Reason.PCX_ADDRESS_NOT_IN_PEER_VPC, eni_id)
        if peer is None:
            return Verdict(Reason.FORWARDED_TO_PEERING, eni_id)
        if v.subnet_holding(other, pkt.dst) is None:
            return Verdict(Reason.NO_SUBNET_AT_ADDRESS, eni_id)
        receiver = v.eni_holding(other, pkt.dst)
        if receiver is None:
            return Verdict(Reason.NO_ENI_AT_ADDRESS, eni_id)
        self.path.append(pcx_id)
        return self.arrive(pkt, receiver, from_subnet=None)

    def through_transit_gateway(self, pkt: Packet, tgw_id: str, subnet: model.Subnet, sender: str | None,
                                crossed: int = 0) -> Verdict:
        t = self.vpc.t
        self.path.append(tgw_id)
        mine = [a for a in t.transit_gateway_attachments.values()
                if a.transit_gateway_id == tgw_id and a.resource_type == "vpc" and a.resource_id == subnet.vpc_id]
        entry = [s for a in mine for s in a.subnet_ids if t.subnets[s].availability_zone == subnet.availability_zone]
        if not entry:
            return Verdict(Reason.TGW_NO_ATTACHMENT_IN_AZ, sender)
        if not self.vpc.network_acl_allows(entry[0], False, pkt):
            return Verdict(Reason.NACL_IN_DENY, sender)
        if mine[0].route_table_id is None:
            return Verdict(Reason.TGW_NOT_ASSOCIATED, sender)
        table = t.transit_gateway_route_tables[mine[0].route_table_id]
        candidates = [(r.destination, 1, r.attachment_id) for r in table.routes]
        for att_id in table.propagations:
            att = t.transit_gateway_attachments[att_id]
            if att.resource_type == "vpc":
                candidates += [(cidr, 0, att_id) for cidr in t.vpcs[att.resource_id].cidrs
                               if not any(c == cidr for c, _, _ in candidates)]
        matching = [(c.prefixlen, static, -k, att) for k, (c, static, att) in enumerate(candidates) if pkt.dst in c]
        if not matching:
            beyond = any(t.transit_gateway_attachments[a].resource_type != "vpc" for a in table.propagations)
            return Verdict(Reason.TGW_NOT_EMULATED_ATTACHMENT if beyond else Reason.TGW_NO_ROUTE, sender)
        target = max(matching)[3]
        if target is None:
            return Verdict(Reason.TGW_BLACKHOLE_ROUTE, sender)
        att = t.transit_gateway_attachments[target]
        if att.resource_type != "vpc":
            return Verdict(Reason.TGW_NOT_EMULATED_ATTACHMENT, sender)
        same_zone = [s for s in att.subnet_ids if t.subnets[s].availability_zone == subnet.availability_zone]
        out = t.subnets[(same_zone or list(att.subnet_ids))[0]]
        return self.from_transit_gateway(pkt, out, crossed)

    def from_transit_gateway(self, pkt: Packet, out: model.Subnet, crossed: int) -> Verdict:
        """Out of the transit gateway's interface in subnet ``out``: that subnet's routes, its
        NACL out when the packet leaves it; no security group (the interface has none)."""
        v = self.vpc
        route = v.route_for(out.id, pkt.dst)
        kind = None if route is None or route.is_blackhole else route.target_kind
        if route is not None and not route.is_blackhole and route.target in v.t.transit_gateways:
            kind = "tgw"
        if kind in ("local", "eni"):
            next_eni = v.eni_holding(out.vpc_id, pkt.dst) if kind == "local" else route.target
            next_subnet = (v.subnet_holding(out.vpc_id, pkt.dst) if kind == "local"
                           else v.eni(route.target).subnet_id)
            if next_subnet != out.id and not v.network_acl_allows(out.id, True, pkt):
                return Verdict(Reason.NACL_OUT_DENY, None)
            if next_subnet is None:  # inside the VPC's CIDR, in none of its subnets
                return Verdict(Reason.NO_SUBNET_AT_ADDRESS, None)
            if next_eni is None:
                return Verdict(Reason.NO_ENI_AT_ADDRESS, None)
            return self.arrive(pkt, next_eni, from_subnet=out.id)
        if kind == "nat":
            nat = v.t.nat_gateways[route.target]
            if nat.subnet_id != out.id and not v.network_acl_allows(out.id, True, pkt):
                return Verdict(Reason.NACL_OUT_DENY, None)
            return self.at_nat_gateway(pkt, nat.id, from_subnet=out.id)
        if kind == "tgw":
            if crossed >= 1:
                return Verdict(Reason.ROUTING_LOOP, None)
            return self.through_transit_gateway(pkt, route.target, out, None, crossed + 1)
        if kind == "igw":  # another VPC's address: the internet gateway has no public one for it
            if not v.network_acl_allows(out.id, True, pkt):
                return Verdict(Reason.NACL_OUT_DENY, None)
            return Verdict(Reason.NO_PUBLIC_IP, None)
        if route is None:
            return Verdict(Reason.NO_ROUTE, None)
        if route.is_blackhole:
            return Verdict(Reason.BLACKHOLE_ROUTE, None)
        return Verdict(Reason.UNMODELLED_TARGET, None)  # no edge-to-edge routing

    def arrive(self, pkt: Packet, eni_id: str, from_subnet: str | None) -> Verdict:
        v = self.vpc
        subnet_id = v.eni(eni_id).subnet_id
        if from_subnet != subnet_id and not v.network_acl_allows(subnet_id, False, pkt):
            return Verdict(Reason.NACL_IN_DENY, eni_id)
        if v.nat_of_eni(eni_id) is not None:
            # addressed to the NAT gateway itself: only replies to its own connections pass
            if pkt.proto not in (TCP, UDP, ICMP):
                return Verdict(Reason.NAT_UNSUPPORTED_PROTOCOL, eni_id)
            key = (pkt.proto, pkt.dst, pkt.dst_port, pkt.src, pkt.src_port)
            inside = None if self.state is None else self.state.nat.get(key)
            if inside is None or (pkt.proto == ICMP and pkt.flags != 0):  # echo replies only
                return Verdict(Reason.NAT_UNSOLICITED_INBOUND, eni_id)
            address, port = inside
            return self.send(replace(pkt, dst=address, dst_port=port), eni_id)
        if v.checks_source_and_destination(eni_id) and pkt.dst not in v.eni(eni_id).private_ips:
            return Verdict(Reason.SOURCE_DEST_CHECK_IN, eni_id)  # an appliance that must not forward
        if not self.security_groups_allow(eni_id, False, pkt):
            return Verdict(Reason.SG_INGRESS_DENY, eni_id)
        if v.is_hyperplane(eni_id):
            return self.back_to_function(pkt, eni_id)
        return Verdict(Reason.DELIVERED, eni_id)

    def back_to_function(self, pkt: Packet, eni_id: str) -> Verdict:
        """V2N in: only an answer on a connection the function opened gets through (one way)."""
        if pkt.proto not in (TCP, UDP):
            return Verdict(Reason.V2N_UNSUPPORTED_PROTOCOL, eni_id)
        key = (pkt.proto, pkt.dst, pkt.dst_port, pkt.src, pkt.src_port)
        if self.state is None or key not in self.state.v2n:
            return Verdict(Reason.V2N_UNSOLICITED_INBOUND, eni_id)
        return Verdict(Reason.DELIVERED_TO_FUNCTION, eni_id)

    def security_groups_allow(self, eni_id: str, egress: bool, pkt: Packet) -> bool:
        """A flow they let through before (stateful), or the rules; a flow the rules let
        through is remembered unless AWS leaves it untracked."""
        if self.state is None:
            return self.vpc.security_groups_allow(eni_id, egress, pkt)
        if (eni_id, flow_key(pkt)) in self.state.flows:
            return True
        if not self.vpc.security_groups_allow(eni_id, egress, pkt):
            return False
        # ICMP other than echo is not remembered (docs/semantics.md: it carries its code,
        # which the rules match), and neither is a flow AWS leaves untracked
        echo_or_not_icmp = pkt.proto != ICMP or pkt.flags in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY)
        if echo_or_not_icmp and not self.vpc.leaves_untracked(eni_id, egress, pkt):
            self.state.flows.add((eni_id, flow_key(pkt)))
        return True

    def at_nat_gateway(self, pkt: Packet, nat_id: str, from_subnet: str) -> Verdict:
        v = self.vpc
        nat = v.t.nat_gateways[nat_id]
        eni_id = nat.network_interface_id
        if from_subnet != nat.subnet_id and not v.network_acl_allows(nat.subnet_id, False, pkt):
            return Verdict(Reason.NACL_IN_DENY, eni_id)
        if pkt.proto not in (TCP, UDP, ICMP):
            return Verdict(Reason.NAT_UNSUPPORTED_PROTOCOL, eni_id)
        if pkt.proto == TCP and pkt.flags & (SYN | ACK | FIN | RST) != SYN:  # not an opening SYN
            answer = None
            if self.state is not None and not pkt.flags & RST:
                # the gateway answers with an RST (never to an RST), from the peer to the
                # sender, sent from its own ENI; it meets the flows as they are at this packet
                rst = Packet(pkt.dst, pkt.src, TCP, pkt.dst_port, pkt.src_port, RST)
                answer = _Walk(v, self.state).send(rst, eni_id)
            return Verdict(Reason.NAT_NO_CONNECTION_RST, eni_id, answer=answer)
        if pkt.proto == ICMP and pkt.flags != ICMP_ECHO_REQUEST:
            return Verdict(Reason.NAT_NO_CONNECTION, eni_id)
        # a new connection: source -> the gateway's (primary) private address and a free port
        opened = (pkt.proto, pkt.src, pkt.src_port, pkt.dst, pkt.dst_port)
        port = 1024 if self.state is None else self.state.nat_ports.get(opened, 1024)
        if self.state is not None:
            self.state.nat[(pkt.proto, nat.private_ip, port, pkt.dst, pkt.dst_port)] = (pkt.src, pkt.src_port)
        translated = replace(pkt, src=nat.private_ip, src_port=port)
        return self.send(translated, eni_id)
