"""The readers of a snapshot's resources: prefix lists, VPCs and subnets, ENIs, NAT gateways,
Elastic IPs, endpoints, internet gateways, peerings, default groups and Lambda functions."""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Address, IPv4Network
from typing import Sequence

from hyperplane.errors import SubnetOutOfAddresses
from hyperplane.formats._snapshot_fields import (
    _GONE_STATES, _GWLB, _Fields, _Item, _kind_from_description, _list, _suffix, _tag_name, _text,
)
from hyperplane.formats._source import REPAIR_HINT, ascii_int
from hyperplane.formats.snapshot_report import SNAPSHOT_ROLE_POLICIES
from hyperplane.model import (
    PROTOCOL_ALL, ElasticIp, ExecutionRole, FunctionVersion, InternetGateway, LambdaFunction,
    NatGateway, NetworkInterface, PrefixList, SecurityGroup, SecurityGroupRule, VpcConfig,
    VpcEndpoint, VpcPeeringConnection, next_free_address, TransitGateway, TransitGatewayAttachment,
    TransitGatewayRoute, TransitGatewayRouteTable,
)


class _Resources(_Fields):
    """Reads each resource kind of a snapshot into model resources."""

    # prefix lists ------------------------------------------------------------------------------

    def build_prefix_lists(self) -> dict[str, PrefixList]:
        out: dict[str, PrefixList] = {}
        for item in self.items["PrefixLists"]:
            pl_id = self.define(item, "PrefixListId", self.pl_items)
            cidrs = self.get(item, "Cidrs", list, required=False, default=None)
            if cidrs is None:
                self.note(f"{pl_id} ({item.data.get('PrefixListName')}): no Cidrs in the snapshot; it matches nothing")
                cidrs = []
            out[pl_id] = PrefixList(pl_id, self.get(item, "PrefixListName"),
                                    self._unique_cidrs(item, "Cidrs", cidrs))
        for item in self.items["ManagedPrefixLists"]:
            if item.data.get("AddressFamily", "IPv4") != "IPv4":
                self.report.skip("ManagedPrefixLists (IPv6)")
                self.skipped_ids[str(item.data.get("PrefixListId"))] = "an IPv6 prefix list"
                continue
            pl_id = self.get(item, "PrefixListId")
            if pl_id in out:  # the same AWS-managed list from both calls
                continue
            self.define(item, "PrefixListId", self.pl_items)
            if "Entries" in item.data:
                cidrs = [self.get(e, "Cidr") for e in self.sub(item, "Entries")]
            else:
                cidrs = self.get(item, "Cidrs", list, required=False, default=None)
                if cidrs is None:
                    self.fail(item.file, item.at("Entries"), "required field 'Entries' is missing (put the "
                                                    "get-managed-prefix-list-entries output in the list's object)")
            out[pl_id] = PrefixList(pl_id, self.get(item, "PrefixListName"), self._unique_cidrs(item, "Entries", cidrs))
        return out

    def _unique_cidrs(self, item: _Item, key: str, values: list) -> tuple[IPv4Network, ...]:
        cidrs: list[IPv4Network] = []
        for i, value in enumerate(values):
            if not isinstance(value, str):
                self.fail(item.file, f"{item.at(key)}[{i}]", f"expected a CIDR string, got {json.dumps(value)[:60]}")
            if ":" in value:
                continue  # IPv6
            try:
                cidr = IPv4Network(value, strict=False)
            except ValueError:
                self.fail(item.file, f"{item.at(key)}[{i}]", f"{value!r} is not an IPv4 CIDR")
            if cidr not in cidrs:
                cidrs.append(cidr)
        return tuple(cidrs)

    # VPCs and subnets ----------------------------------------------------------------------------

    def build_vpc_cidrs(self) -> dict[str, tuple[IPv4Network, ...]]:
        out = {}
        for item in self.items["Vpcs"]:
            vpc_id = self.define(item, "VpcId", self.vpc_items)
            if self.account_id is None and isinstance(item.data.get("OwnerId"), str):
                self.account_id = item.data["OwnerId"]
            cidrs: list[IPv4Network] = []
            for assoc in self.sub(item, "CidrBlockAssociationSet", required=False):
                state = assoc.data.get("CidrBlockState", {}).get("State", "associated") \
                    if isinstance(assoc.data.get("CidrBlockState"), dict) else "associated"
                if state in ("associated", "associating"):
                    cidr = self.cidr(assoc, "CidrBlock")
                    if cidr not in cidrs:
                        cidrs.append(cidr)
            primary = self.opt_cidr(item, "CidrBlock", required=not cidrs)
            if primary is not None and primary not in cidrs:
                cidrs.insert(0, primary)
            elif primary is not None:
                cidrs.remove(primary)
                cidrs.insert(0, primary)
            out[vpc_id] = tuple(cidrs)
        return out

    def read_subnets(self) -> dict[str, tuple[str, IPv4Network, str]]:
        out = {}
        for item in self.items["Subnets"]:
            if item.data.get("CidrBlock") is None and item.data.get("Ipv6Native"):
                self.report.skip("Subnets (IPv6-only)")
                self.skipped_ids[str(item.data.get("SubnetId"))] = "an IPv6-only subnet"
                continue
            subnet_id = self.define(item, "SubnetId", self.subnet_items)
            vpc_id = self.ref(item, "VpcId", self.vpc_items, "VPC")
            zone = self.get(item, "AvailabilityZone")
            region = zone[:-1] if zone[-1:].isalpha() else zone
            if region not in self.regions:
                self.regions.append(region)
            out[subnet_id] = (vpc_id, self.cidr(item, "CidrBlock"), zone)
        return out

    def read_zone_ids(self) -> dict[str, str]:
        """Each subnet's Availability Zone id (flow logs' az-id): its own ``AvailabilityZoneId``,
        else what ``AvailabilityZones`` says its zone name stands for -- in the subnet's own folder
        (one account and region), else anywhere in the snapshot if that is one id. A name alone
        says nothing: the same name is a different zone in another account."""
        by_folder: dict[tuple[str, str], str] = {}
        anywhere: dict[str, set[str]] = {}
        for item in self.items["AvailabilityZones"]:
            name, zone_id = self.get(item, "ZoneName"), self.get(item, "ZoneId")
            by_folder[(os.path.dirname(item.file), name)] = zone_id
            anywhere.setdefault(name, set()).add(zone_id)
        out = {}
        for item in self.items["Subnets"]:
            subnet_id = item.data.get("SubnetId")
            if subnet_id not in self.subnet_items:
                continue  # skipped (IPv6-only)
            zone_id = self.get(item, "AvailabilityZoneId", required=False)
            zone = str(item.data.get("AvailabilityZone"))  # read_subnets checked it
            if zone_id is None:
                zone_id = by_folder.get((os.path.dirname(item.file), zone))
            if zone_id is None and len(anywhere.get(zone, ())) == 1:
                zone_id = next(iter(anywhere[zone]))
            if zone_id is not None:
                out[subnet_id] = zone_id
        return out

    # ENIs ----------------------------------------------------------------------------------------

    def _groups(self, item: _Item, key: str = "Groups") -> tuple[str, ...]:
        groups = []
        for g in self.sub(item, key, required=False):
            groups.append(self.ref(g, "GroupId", self.sg_items, "security group"))
        return tuple(dict.fromkeys(groups))

    def _eni_record(self, item: _Item, instance_id: str | None) -> dict:
        eni_id = self.get(item, "NetworkInterfaceId")
        subnet_id = self.get(item, "SubnetId")
        if subnet_id in self.skipped_ids:
            return {"id": eni_id, "skip": f"its subnet {subnet_id} is {self.skipped_ids[subnet_id]}"}
        self.ref(item, "SubnetId", self.subnet_items, "subnet")
        primary = self.ip(item, "PrivateIpAddress")
        secondary: list[IPv4Address] = []
        for address in self.sub(item, "PrivateIpAddresses", required=False):
            ip = self.ip(address, "PrivateIpAddress")
            if ip != primary and ip not in secondary:
                secondary.append(ip)
            if ip != primary and isinstance(address.data.get("Association"), dict) and address.data["Association"].get("PublicIp"):
                self.note(f"{eni_id}: the public IP of secondary address {ip} is not emulated (one public IP per ENI)")
        association = item.data.get("Association")
        public = None
        if isinstance(association, dict) and association.get("PublicIp"):
            public = self.ip(_Item(item.file, item.at("Association"), association), "PublicIp")
        attachment: dict = item.data["Attachment"] if isinstance(item.data.get("Attachment"), dict) else {}
        instance_id = instance_id or attachment.get("InstanceId")
        interface_type = item.data.get("InterfaceType") or "interface"
        description = item.data.get("Description") or ""
        return {"id": eni_id, "item": item, "subnet_id": subnet_id, "private_ip": primary,
                "secondary": tuple(secondary), "public_ip": public, "type": interface_type,
                "description": description if isinstance(description, str) else "",
                "instance_id": instance_id if isinstance(instance_id, str) else None,
                "source_dest_check": item.data.get("SourceDestCheck", True) is not False,
                "device_index": attachment.get("DeviceIndex", 0)}

    def build_enis(self) -> dict[str, dict]:
        records: dict[str, dict] = {}
        for item in self.items["NetworkInterfaces"]:
            record = self._eni_record(item, None)
            if record["id"] in records:
                other = records[record["id"]]["item"]
                self.fail(item.file, item.at("NetworkInterfaceId"), f"{record['id']} is defined twice (also {other.file}: {other.path})")
            records[record["id"]] = record
        for instance in self.instances:
            instance_id = self.get(instance, "InstanceId")
            for eni in self.sub(instance, "NetworkInterfaces", required=False):
                record = self._eni_record(eni, instance_id)
                known = records.get(record["id"])
                if known is None:
                    records[record["id"]] = record
                elif known.get("instance_id") is None and "skip" not in known:
                    known["instance_id"] = instance_id
        nat_enis = {a["NetworkInterfaceId"] for item in self.items["NatGateways"]
                    for a in _list(item.data.get("NatGatewayAddresses")) if isinstance(a, dict)
                    and isinstance(a.get("NetworkInterfaceId"), str)}
        out: dict[str, dict] = {}
        for eni_id, record in records.items():
            if eni_id in nat_enis:
                continue  # built with its NAT gateway, whatever InterfaceType says
            if "skip" in record:
                self.report.skip("NetworkInterfaces (in a skipped subnet)")
                self.skipped_ids[eni_id] = record["skip"]
                continue
            item = record["item"]
            kind = record["type"]
            if kind == "nat_gateway":
                continue  # built with its NAT gateway
            groups = self._groups(item)
            if not groups:
                self.report.skip(f"NetworkInterfaces ({kind}, no security group)")
                self.skipped_ids[eni_id] = f"an ENI of type {kind} without security group (not emulated)"
                continue
            if kind == "interface":
                kind = "instance" if record["instance_id"] else _kind_from_description(record["description"])
            elif kind not in ("lambda", "vpc_endpoint") and record["instance_id"]:
                kind = "instance"  # efa, trunk, branch: an instance's interfaces
            record["kind"] = kind
            record["groups"] = groups
            if eni_id in self.defined:
                other = self.defined[eni_id]
                self.fail(item.file, item.at("NetworkInterfaceId"), f"{eni_id} is defined twice (also {other.file}: {other.path})")
            self.defined[eni_id] = item
            self.where[eni_id] = f"{item.file}::{item.path}"
            out[eni_id] = record
        return out

    def instance_eni(self, instance_id: str) -> str | None:
        """The primary (device 0) ENI of an instance, else its first."""
        if self._instance_enis is None:
            index: dict[str, list[dict]] = {}
            for record in self.enis.values():
                if record["instance_id"]:
                    index.setdefault(record["instance_id"], []).append(record)
            for records in index.values():
                records.sort(key=lambda r: r["device_index"] if isinstance(r["device_index"], int) else 99)
            self._instance_enis = {k: v[0]["id"] for k, v in index.items()}
        return self._instance_enis.get(instance_id)

    # NAT gateways ----------------------------------------------------------------------------------

    def build_nat_gateways(self) -> dict[str, tuple[NatGateway, NetworkInterface]]:
        out = {}
        eips = {}
        pending: list[tuple[_Item, str, str, str, list[IPv4Address], list[ElasticIp], str, list[int]]] = []
        for item in self.items["Addresses"]:
            if isinstance(item.data.get("AllocationId"), str) and isinstance(item.data.get("PublicIp"), str):
                eips[item.data["AllocationId"]] = item.data["PublicIp"]
        for item in self.items["NatGateways"]:
            nat_id = self.get(item, "NatGatewayId")
            state = str(item.data.get("State", "available")).lower()
            if state in _GONE_STATES:
                self.report.skip(f"NatGateways ({state})")
                self.skipped_ids[nat_id] = f"a NAT gateway in state {state}"
                continue
            self.define(item, "NatGatewayId", self.nat_items)
            subnet_id = self.ref(item, "SubnetId", self.subnet_items, "subnet")
            connectivity = str(item.data.get("ConnectivityType", "public")).lower()
            addresses = self.sub(item, "NatGatewayAddresses")
            addresses.sort(key=lambda a: a.data.get("IsPrimary") is False)  # the primary first
            private_ips: list[IPv4Address] = []
            elastic_ips: list[ElasticIp] = []
            eni_id: str | None = None
            for address in addresses:
                ip = self.opt_ip(address, "PrivateIp")
                if ip is None:
                    continue  # an address being assigned
                private_ips.append(ip)
                eni_id = eni_id or self.get(address, "NetworkInterfaceId", required=False)
                if connectivity == "public":
                    allocation = self.get(address, "AllocationId", required=False)
                    public_ip = self.opt_ip(address, "PublicIp")
                    if public_ip is None and allocation in eips:  # describe-addresses knows it
                        public_ip = self.ip(_Item(address.file, address.path, {"PublicIp": eips[allocation]}), "PublicIp")
                    if public_ip is None:
                        self.fail(address.file, address.at("PublicIp"), "required field 'PublicIp' is missing "
                                  "(a public NAT gateway's address needs its Elastic IP)")
                        raise AssertionError
                    elastic_ips.append(ElasticIp(allocation if isinstance(allocation, str) else f"eipalloc-{_suffix(nat_id)}-{len(elastic_ips)}", public_ip))
            if not private_ips:
                self.fail(item.file, item.at("NatGatewayAddresses"), "a NAT gateway needs at least one address with a PrivateIp")
            cidr = self.subnets_pre[subnet_id][1]
            outside = [k for k, ip in enumerate(private_ips) if ip not in cidr]
            if outside and not self.repair:
                at = next(a for a in addresses if self.opt_ip(a, "PrivateIp") == private_ips[outside[0]])
                self.fail(at.file, at.at("PrivateIp"), f"{private_ips[outside[0]]} is not inside {subnet_id} ({cidr}), "
                          f"so NAT gateway {nat_id} cannot hold it (moto writes such addresses; AWS does not); {REPAIR_HINT}")
            pending.append((item, nat_id, subnet_id, connectivity, private_ips, elastic_ips,
                            eni_id or f"eni-nat-{_suffix(nat_id)}", outside))
        # re-allocate after every gateway's own addresses are known, so none is handed out twice
        in_use = {ip for r in self.enis.values() for ip in (r["private_ip"], *r["secondary"])}
        in_use |= {ip for p in pending for k, ip in enumerate(p[4]) if k not in p[7]}
        for item, nat_id, subnet_id, connectivity, private_ips, elastic_ips, eni_id, outside in pending:
            if outside:
                moved = []
                for k in outside:
                    try:
                        new_ip = next_free_address(self.subnets_pre[subnet_id][1], in_use, subnet_id=subnet_id)
                    except SubnetOutOfAddresses as exc:
                        self.fail(item.file, item.at("NatGatewayAddresses"), f"cannot re-allocate {private_ips[k]}: {exc}")
                    in_use.add(new_ip)
                    moved.append(f"{private_ips[k]} -> {new_ip}")
                    self.report.readdressed.setdefault(nat_id, {})[str(private_ips[k])] = str(new_ip)
                    private_ips[k] = new_ip
                self.report.repairs.append(
                    f"{item.file}: {item.path}: NAT gateway {nat_id} had an address outside its subnet {subnet_id}; "
                    f"re-allocated from the subnet: {', '.join(moved)}")
            nat = NatGateway(nat_id, subnet_id, connectivity, tuple(private_ips), tuple(elastic_ips), eni_id, _tag_name(item.data))
            eni = NetworkInterface(eni_id, subnet_id, private_ips[0], (), tuple(private_ips[1:]),
                                   elastic_ips[0].public_ip if elastic_ips else None, "nat_gateway",
                                   f"Interface for NAT Gateway {nat_id}", None, nat_id, False)
            self.where.setdefault(eni_id, f"{item.file}::{item.path}")
            out[nat_id] = (nat, eni)
        return out

    # Elastic IPs -----------------------------------------------------------------------------------

    def apply_addresses(self) -> None:
        nat_enis = {eni.id for _nat, eni in self.nats.values()}
        unassociated = 0
        for item in self.items["Addresses"]:
            public = self.ip(item, "PublicIp")
            eni_id = item.data.get("NetworkInterfaceId")
            if not isinstance(eni_id, str):
                instance_id = item.data.get("InstanceId")
                if isinstance(instance_id, str) and instance_id:
                    eni_id = self.instance_eni(instance_id)
                if not eni_id:
                    unassociated += 1
                    continue
            if eni_id in nat_enis:
                continue
            if eni_id in self.skipped_ids:
                self.note(f"Elastic IP {public} is associated with {eni_id}, which is not emulated")
                continue
            record = self.enis.get(eni_id)
            if record is None:
                self.fail(item.file, item.at("NetworkInterfaceId"), f"refers to network interface {eni_id!r}, which no file defines")
            private = self.opt_ip(item, "PrivateIpAddress")
            if private is not None and private != record["private_ip"]:
                self.note(f"Elastic IP {public} on secondary address {private} of {eni_id} is not emulated (one public IP per ENI)")
                continue
            if record["public_ip"] is None:
                record["public_ip"] = public
        if unassociated:
            self.report.skip("Addresses (Elastic IPs not associated)", unassociated)

    # endpoints -------------------------------------------------------------------------------------

    def build_endpoints(self) -> tuple[dict[str, VpcEndpoint], list[NetworkInterface]]:
        endpoints: dict[str, VpcEndpoint] = {}
        enis: list[NetworkInterface] = []
        for item in self.items["VpcEndpoints"]:
            ep_id = self.get(item, "VpcEndpointId")
            kind = self.get(item, "VpcEndpointType").lower()
            state = str(item.data.get("State", "available")).lower()
            if kind not in ("gateway", "interface") or state in _GONE_STATES:
                self.report.skip(f"VpcEndpoints ({item.data['VpcEndpointType'] if kind not in ('gateway', 'interface') else state})")
                if kind != _GWLB or state in _GONE_STATES:
                    continue
            self.define(item, "VpcEndpointId", self.ep_items)
            vpc_id = self.ref(item, "VpcId", self.vpc_items, "VPC")
            service = self.get(item, "ServiceName")
            name = _tag_name(item.data)
            if kind == _GWLB:
                # Kept only as a route target: its appliances are not emulated, so the data plane
                # stops a packet routed to it with UNMODELLED_TARGET (not a blackhole drop).
                endpoints[ep_id] = VpcEndpoint(ep_id, vpc_id, service, "gateway_load_balancer", name=name)
                continue
            if kind == "gateway":
                routing = tuple(rtb.id for rtb in self.route_tables.values()
                                if any(r.target == ep_id and not r.is_blackhole for r in rtb.routes))
                prefix = next((r.destination_prefix_list_id for rtb_id in routing for r in self.route_tables[rtb_id].routes
                               if r.target == ep_id and r.is_prefix_list_route), None)
                prefix = prefix or next((pl.id for pl in self.prefix_lists.values() if pl.name == service), None)
                if prefix is None:
                    self.fail(item.file, item.at("ServiceName"), f"no prefix list named {service!r} in the snapshot "
                                                                 "(collect describe-prefix-lists)")
                for i, rtb_id in enumerate(self.strings(item, "RouteTableIds")):
                    if rtb_id not in self.rtb_items:
                        self.ref(item, "RouteTableIds", self.rtb_items, "route table", rtb_id, where=f"{item.at('RouteTableIds')}[{i}]")
                endpoints[ep_id] = VpcEndpoint(ep_id, vpc_id, service, "gateway", route_table_ids=routing,
                                               prefix_list_id=prefix, name=name)
                continue
            subnet_ids = self.strings(item, "SubnetIds")
            for i, subnet_id in enumerate(subnet_ids):
                self.ref(item, "SubnetIds", self.subnet_items, "subnet", subnet_id, where=f"{item.at('SubnetIds')}[{i}]")
            groups = self._groups(item) or (self.default_sg_id(vpc_id),)
            eni_ids = self.strings(item, "NetworkInterfaceIds")
            placed: list[str] = []
            for i, eni_id in enumerate(eni_ids):
                record = self.enis.pop(eni_id, None)
                if record is None:
                    if eni_id in self.skipped_ids:
                        continue
                    self.ref(item, "NetworkInterfaceIds", {}, "network interface", eni_id, where=f"{item.at('NetworkInterfaceIds')}[{i}]")
                    raise AssertionError
                enis.append(NetworkInterface(eni_id, record["subnet_id"], record["private_ip"], groups,
                                             record["secondary"], record["public_ip"], "vpc_endpoint",
                                             record["description"] or f"VPC Endpoint Interface {ep_id}", None, ep_id))
                placed.append(record["subnet_id"])
            for subnet_id in subnet_ids:  # no ENI in the snapshot for this subnet: allocate one
                if subnet_id not in placed:
                    eni_id = f"eni-{_suffix(ep_id)}-{len(enis)}"
                    ip = self.allocate(subnet_id, extra=[e.private_ip for e in enis])
                    self.note(f"{ep_id}: no ENI in {subnet_id} in the snapshot; created {eni_id} at {ip}")
                    self.where.setdefault(eni_id, f"{item.file}::{item.path}")
                    enis.append(NetworkInterface(eni_id, subnet_id, ip, groups, kind="vpc_endpoint",
                                                 description=f"VPC Endpoint Interface {ep_id}", managed_by=ep_id))
                    placed.append(subnet_id)
            private_dns = item.data.get("PrivateDnsEnabled") is True
            dns_names: tuple[str, ...] = ()
            if private_dns:
                names = [d.get("DnsName") for d in _list(item.data.get("DnsEntries")) if isinstance(d, dict)]
                dns_names = tuple(n for n in names if isinstance(n, str) and ".vpce." not in n and not n.startswith("*"))
            endpoints[ep_id] = VpcEndpoint(
                ep_id, vpc_id, service, "interface", subnet_ids=tuple(placed), security_group_ids=groups,
                private_dns_enabled=private_dns, dns_names=dns_names,
                network_interface_ids=tuple(e.id for e in enis if e.managed_by == ep_id), name=name)
        return endpoints, enis

    def allocate(self, subnet_id: str, extra: Sequence[IPv4Address] = ()) -> IPv4Address:
        used = {r["private_ip"] for r in self.enis.values() if r["subnet_id"] == subnet_id}
        used |= {ip for r in self.enis.values() if r["subnet_id"] == subnet_id for ip in r["secondary"]}
        used |= {ip for nat, _eni in self.nats.values() if nat.subnet_id == subnet_id for ip in nat.private_ips}
        used |= set(extra)
        try:
            return next_free_address(self.subnets_pre[subnet_id][1], used, subnet_id=subnet_id)
        except SubnetOutOfAddresses as exc:
            item = self.subnet_items[subnet_id]
            self.fail(item.file, item.path, str(exc))
        raise AssertionError

    # gateways, peerings, default groups -------------------------------------------------------------

    def build_internet_gateways(self) -> dict[str, InternetGateway]:
        out = {}
        for igw_id, item in self.igw_items.items():
            vpc_id = None
            for attachment in self.sub(item, "Attachments", required=False):
                if attachment.data.get("State", "available") in ("available", "attached", "attaching"):
                    vpc_id = self.ref(attachment, "VpcId", self.vpc_items, "VPC")
            out[igw_id] = InternetGateway(igw_id, vpc_id, _tag_name(item.data))
        return out

    def build_peerings(self) -> dict[str, VpcPeeringConnection]:
        out = {}
        for item in self.items["VpcPeeringConnections"]:
            pcx_id = self.get(item, "VpcPeeringConnectionId")
            status = item.data.get("Status")
            code = status.get("Code", "active") if isinstance(status, dict) else "active"
            # gone ones are skipped (their routes are blackholes); one still being set up is
            # kept with its status, and carries nothing until it is active
            if code not in ("active", "provisioning", "pending-acceptance", "initiating-request"):
                self.report.skip(f"VpcPeeringConnections ({code})")
                self.skipped_ids[pcx_id] = f"a peering connection in state {code}"
                continue
            self.define(item, "VpcPeeringConnectionId", self.pcx_items)
            sides = []
            for key in ("RequesterVpcInfo", "AccepterVpcInfo"):
                info = self.sub(item, key, 0)[0]
                vpc_id = self.get(info, "VpcId")
                cidrs = [self.cidr(c, "CidrBlock") for c in self.sub(info, "CidrBlockSet", required=False)]
                if not cidrs and info.data.get("CidrBlock") is not None:
                    cidrs = [self.cidr(info, "CidrBlock")]
                sides.append((vpc_id, tuple(cidrs)))
            (requester, _rc), (accepter, ac) = sides
            if requester in self.vpc_items:
                out[pcx_id] = VpcPeeringConnection(pcx_id, requester, accepter, ac, _tag_name(item.data), code)
            elif accepter in self.vpc_items:
                out[pcx_id] = VpcPeeringConnection(pcx_id, accepter, requester, sides[0][1], _tag_name(item.data),
                                                   code)
            else:
                self.report.skip("VpcPeeringConnections (between VPCs not in the snapshot)")
                self.skipped_ids[pcx_id] = "a peering between VPCs not in the snapshot"
        return out

    def build_transit_gateways(self) -> tuple[dict[str, TransitGateway], dict[str, TransitGatewayAttachment],
                                              dict[str, TransitGatewayRouteTable]]:
        """Transit gateways, their attachments and route tables (issue 16). An attachment or
        route table that is not ``available`` (``deleting``, ``pendingAcceptance``) carries
        nothing: skipped and reported."""
        tgws: dict[str, TransitGateway] = {}
        for item in self.items["TransitGateways"]:
            tgw_id = self.get(item, "TransitGatewayId")
            state = item.data.get("State", "available")
            if state != "available":
                self.report.skip(f"TransitGateways ({state})")
                continue
            tgws[tgw_id] = TransitGateway(tgw_id, _tag_name(item.data))
            self.where[tgw_id] = f"{item.file}::{item.path}"
        subnets_of: dict[str, tuple[str, ...]] = {}
        for item in self.items["TransitGatewayVpcAttachments"]:
            att_id = self.get(item, "TransitGatewayAttachmentId")
            ids = tuple(self.strings(item, "SubnetIds"))
            for j, subnet_id in enumerate(ids):
                self.ref(item, "SubnetIds", self.subnet_items, "subnet", subnet_id, where=f"{item.at('SubnetIds')}[{j}]")
            subnets_of[att_id] = ids
        attachments: dict[str, TransitGatewayAttachment] = {}
        for item in self.items["TransitGatewayAttachments"]:
            att_id = self.get(item, "TransitGatewayAttachmentId")
            tgw_id = self.get(item, "TransitGatewayId")
            state = item.data.get("State", "available")
            kind = self.get(item, "ResourceType")
            if state != "available" or tgw_id not in tgws:
                why = f"state {state}" if state != "available" else "transit gateway not in the snapshot"
                self.report.skip(f"TransitGatewayAttachments ({kind}, {why})")
                continue
            association = item.data.get("Association")
            rtb_id = None
            if isinstance(association, dict) and association.get("State", "associated") == "associated":
                rtb_id = association.get("TransitGatewayRouteTableId")
            resource_id = self.get(item, "ResourceId")
            if kind == "vpc" and resource_id not in self.vpc_items:
                self.report.skip("TransitGatewayAttachments (vpc, VPC not in the snapshot)")
                continue
            if kind == "vpc" and att_id not in subnets_of:
                self.fail(item.file, item.at("TransitGatewayAttachmentId"),
                          f"VPC attachment {att_id} has no TransitGatewayVpcAttachments entry (its subnets)")
            attachments[att_id] = TransitGatewayAttachment(att_id, tgw_id, kind, resource_id,
                                                           subnets_of.get(att_id, ()) if kind == "vpc" else (),
                                                           rtb_id, _tag_name(item.data))
            self.where[att_id] = f"{item.file}::{item.path}"
        static: dict[str, list[TransitGatewayRoute]] = {}
        for item in self.items["TransitGatewayStaticRoutes"]:
            rtb_id = self.get(item, "TransitGatewayRouteTableId")
            for route in self.sub(item, "Routes", required=False):
                if route.data.get("DestinationCidrBlock") is None:
                    self.report.skip("TransitGatewayStaticRoutes (prefix list or IPv6 destination)")
                    continue
                cidr = self.cidr(route, "DestinationCidrBlock")
                if route.data.get("State") == "blackhole":
                    static.setdefault(rtb_id, []).append(TransitGatewayRoute(cidr, None))
                    continue
                if route.data.get("Type", "static") != "static" or route.data.get("State", "active") != "active":
                    continue  # propagated routes are derived from the propagations
                targets = [t.data.get("TransitGatewayAttachmentId") for t in
                           self.sub(route, "TransitGatewayAttachments", required=False)]
                targets = [t for t in targets if t in attachments]
                if targets:
                    static.setdefault(rtb_id, []).append(TransitGatewayRoute(cidr, targets[0]))
                else:
                    self.note(f"{rtb_id}: static route {cidr} names no attachment of the snapshot: a blackhole")
                    static.setdefault(rtb_id, []).append(TransitGatewayRoute(cidr, None))
        propagations: dict[str, list[str]] = {}
        for item in self.items["TransitGatewayPropagations"]:
            rtb_id = self.get(item, "TransitGatewayRouteTableId")
            for p in self.sub(item, "TransitGatewayRouteTablePropagations", required=False):
                att_id = p.data.get("TransitGatewayAttachmentId")
                if p.data.get("State", "enabled") == "enabled" and att_id in attachments:
                    propagations.setdefault(rtb_id, []).append(att_id)
        tables: dict[str, TransitGatewayRouteTable] = {}
        for item in self.items["TransitGatewayRouteTables"]:
            rtb_id = self.get(item, "TransitGatewayRouteTableId")
            tgw_id = self.get(item, "TransitGatewayId")
            if item.data.get("State", "available") != "available" or tgw_id not in tgws:
                self.report.skip("TransitGatewayRouteTables (not available)")
                continue
            tables[rtb_id] = TransitGatewayRouteTable(rtb_id, tgw_id, tuple(static.get(rtb_id, ())),
                                                      tuple(propagations.get(rtb_id, ())), _tag_name(item.data))
            self.where[rtb_id] = f"{item.file}::{item.path}"
        for att_id, att in list(attachments.items()):
            if att.route_table_id is not None and att.route_table_id not in tables:
                self.note(f"{att_id}: associated with {att.route_table_id}, which is not in the snapshot: not routed")
                attachments[att_id] = TransitGatewayAttachment(att.id, att.transit_gateway_id, att.resource_type,
                                                               att.resource_id, att.subnet_ids, None, att.name)
        return tgws, attachments, tables

    def default_sg_id(self, vpc_id: str) -> str:
        for sg_id, item in self.sg_items.items():
            if item.data["VpcId"] == vpc_id and item.data.get("GroupName") == "default":
                return sg_id
        return f"sg-{_suffix(vpc_id)}-default"

    def build_default_groups(self) -> dict[str, str]:
        out = {}
        for vpc_id in self.vpc_items:
            sg_id = self.default_sg_id(vpc_id)
            if sg_id not in self.security_groups:
                self.note(f"{vpc_id}: no default security group in the snapshot; created {sg_id} as AWS does")
                self.security_groups[sg_id] = SecurityGroup(
                    sg_id, vpc_id, "default",
                    (SecurityGroupRule(egress=False, protocol=PROTOCOL_ALL, security_group_id=sg_id),),
                    (SecurityGroupRule.allow_all_egress(),), "default VPC security group")
            out[vpc_id] = sg_id
        return out

    # Lambda ----------------------------------------------------------------------------------------

    def build_functions(self) -> dict[str, LambdaFunction]:
        latest: dict[str, tuple[_Item, VpcConfig | None]] = {}
        versions: dict[str, list[FunctionVersion]] = {}
        first: dict[str, _Item] = {}
        for item in self.items["Functions"]:
            name = self.get(item, "FunctionName")
            if name.startswith("arn:"):
                name = name.split(":")[6] if len(name.split(":")) > 6 else name
            arn = item.data.get("FunctionArn")
            if isinstance(arn, str) and arn.count(":") >= 4:
                parts = arn.split(":")
                self.account_id = self.account_id or parts[4]
                if parts[3] and parts[3] not in self.regions:
                    self.regions.append(parts[3])
            self.get(item, "Role")
            config = self.vpc_config(item)
            version = item.data.get("Version", "$LATEST")
            if version != "$LATEST" and (not isinstance(version, str) or ascii_int(version) is None
                                         or ascii_int(version) <= 0):  # type: ignore[operator]
                self.fail(item.file, item.at("Version"), f"{json.dumps(version)[:40]} is not $LATEST or a "
                                                         "version number (1, 2, ... in ASCII digits)")
            if version == "$LATEST":
                if name in latest:
                    other = latest[name][0]
                    self.fail(item.file, item.at("FunctionName"), f"function {name} is defined twice (also {other.file}: {other.path})")
                latest[name] = (item, config)
            else:
                versions.setdefault(name, []).append(FunctionVersion(str(version), config))
            first.setdefault(name, item)
        out = {}
        for name, item in first.items():
            item, config = latest.get(name, (item, self.vpc_config(item)))
            self.where[name] = f"{item.file}::{item.path}"
            role = ExecutionRole(item.data["Role"], (), SNAPSHOT_ROLE_POLICIES)
            numbered = sorted(versions.get(name, []), key=lambda v: ascii_int(v.version) or 0)
            out[name] = LambdaFunction(name, role, config, tuple(numbered), _text(item.data.get("Description")))
        return out

    def vpc_config(self, item: _Item) -> VpcConfig | None:
        if item.data.get("VpcConfig") is None:
            return None
        config = self.sub(item, "VpcConfig", 0)[0]
        subnets = self.strings(config, "SubnetIds")
        groups = self.strings(config, "SecurityGroupIds")
        if not subnets and not groups:
            return None
        for i, subnet_id in enumerate(subnets):
            self.ref(config, "SubnetIds", self.subnet_items, "subnet", subnet_id, where=f"{config.at('SubnetIds')}[{i}]")
        for i, sg_id in enumerate(groups):
            self.ref(config, "SecurityGroupIds", self.sg_items, "security group", sg_id, where=f"{config.at('SecurityGroupIds')}[{i}]")
        return VpcConfig(tuple(subnets), tuple(groups))
