"""AWS snapshots: a folder of ``describe-*`` JSON (AWS CLI / boto3 output) as a Topology.

A snapshot folder holds, at any depth (region subfolders are usual: the layout Batfish uses),
the JSON documents that EC2's ``describe-*`` calls and Lambda's ``list-functions`` return. A
file's kind is its top-level key, never its name: ``{"Subnets": [...]}`` is a subnet list
whatever the file is called, and one file may hold several keys. Read kinds:

=========================  ===============================================================
``Vpcs``                   CIDRs (associated ones of ``CidrBlockAssociationSet``)
``Subnets``                CIDR, AZ (name, and ``AvailabilityZoneId`` when present)
``AvailabilityZones``      zone name -> zone id, for subnets without ``AvailabilityZoneId``
``RouteTables``            routes, the main association, subnet associations
``SecurityGroups``         ``IpPermissions`` / ``IpPermissionsEgress`` (CIDR, prefix list and
                           group peers), the ``default`` group of each VPC
``NetworkAcls``            entries (rule ``32767`` is the implicit deny), associations, default
``InternetGateways``       attachment
``NatGateways``            ``NatGatewayAddresses`` (private IPs, Elastic IPs, ENI)
``VpcEndpoints``           ``Gateway`` and ``Interface`` endpoints; ``GatewayLoadBalancer`` ones
                           only as route targets (their routes end ``UNMODELLED_TARGET``)
``PrefixLists``            ``describe-prefix-lists`` (``Cidrs``)
``ManagedPrefixLists``     ``describe-managed-prefix-lists``, each with its ``Entries`` (the
                           ``get-managed-prefix-list-entries`` output put in the list's object)
``NetworkInterfaces``      every ENI; ``InterfaceType`` says whose it is
``Reservations``           instances and their ENIs
``Addresses``              Elastic IPs associated with ENIs
``VpcPeeringConnections``  active peerings
``TransitGateways``        transit gateways ``available``; with ``TransitGatewayAttachments``
                           (type, association), ``TransitGatewayVpcAttachments`` (subnets),
                           ``TransitGatewayRouteTables``, ``TransitGatewayStaticRoutes`` (the
                           ``search-transit-gateway-routes`` output, type ``static``, blackholes
                           included) and ``TransitGatewayPropagations``
``Functions``              ``aws lambda list-functions`` (``--function-version ALL`` adds the
                           published versions); a lone ``get-function-configuration`` document
                           (top-level ``FunctionName``) or ``get-function`` (``Configuration``)
=========================  ===============================================================

A snapshot is a running account: ``Network.load(folder)`` starts every function ``Active``. The
ENIs of ``InterfaceType`` ``lambda`` stay in the topology (kind ``lambda``) with their ids and
addresses; the Lambda service takes them over as the Hyperplane ENIs of their (subnet, security
group set) instead of creating new ones.

Assumptions (AWS's describe calls do not say): every function's execution role has the Lambda
VPC permissions (the managed policy ``AWSLambdaVPCAccessExecutionRole``), since IAM is not
collected and a deployed VPC function had them when its ENIs were created. A function's own
``State`` in the listing is not read: every function starts ``Active``. Resources AWS always
has but the snapshot lacks (a VPC's main route table, default network ACL, default security
group) are created as AWS creates them, with a note.

What is not emulated is skipped and reported once, by kind and count, in a
:class:`SnapshotReport` (and one :class:`SnapshotWarning`): transit gateway attachments not
``available`` (a ``deleting`` peering), VPN and customer gateways, load balancers, RDS / Elasticsearch descriptions, IPv6
routes and rules, ENIs without a security group (transit gateway, load balancer ENIs), Gateway
Load Balancer endpoints, deleted NAT gateways, inactive peerings, ... Keys without network
behaviour (the endpoint service catalogue, DHCP option sets, ...) are only counted
(``SnapshotReport.ignored``); an unrecognised key is reported as skipped. A route whose target is not
emulated (a ``tgw-`` not in the snapshot, ``vgw-``, ``eigw-``, ``cagw-``, ``lgw-``, a core network ARN, a Gateway Load
Balancer endpoint) loads as it is: the data plane stops there with the reason
``UNMODELLED_TARGET`` (a Gateway Load Balancer endpoint stays in the topology as an endpoint of
type ``gateway_load_balancer`` for that, and is still reported as not emulated). A route to a
resource that was skipped (an ENI without security group, a deleted endpoint) becomes a
``blackhole`` route, noted in the report.

Broken input is a :class:`~hyperplane.errors.TopologyError` naming the file, the JSON path
(``Subnets[3].CidrBlock``) and the problem: invalid JSON, a required field missing or of the
wrong type, a reference to an id no file defines. Errors found by the topology validator after
assembly name the file and the resource's JSON path followed by the model's field name.

:func:`~hyperplane.formats.snapshot_writer.write_describe_folder` writes a
:class:`~hyperplane.model.Topology` back as such a folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from hyperplane.errors import TopologyError
from hyperplane.formats._snapshot_fields import _DEFAULT_REGION, _IGNORED_KEYS, _Item, _keyed, _tag_name
from hyperplane.formats._source import decode, load_json, warn_repair
from hyperplane.formats.snapshot_report import (
    IGNORED_KINDS, READ_KINDS, SKIPPED_KINDS, SNAPSHOT_ROLE_POLICIES, SnapshotReport, SnapshotWarning,
    warn_skipped,
)
from hyperplane.formats.snapshot_rules import _Rules
from hyperplane.model import NetworkInterface, Subnet, Topology, Vpc, validate_topology

__all__ = [
    "SnapshotReport", "SnapshotWarning", "load_aws_snapshot", "read_aws_snapshot",
    "parse_aws_documents", "SNAPSHOT_ROLE_POLICIES", "READ_KINDS", "SKIPPED_KINDS", "IGNORED_KINDS", "warn_skipped",
]


# --------------------------------------------------------------------------------------------
# entry points


def read_aws_snapshot(folder: str | os.PathLike[str], *, repair: bool = False) -> tuple[Topology, SnapshotReport]:
    """Read a snapshot folder (any depth) into a validated Topology and its report.

    Raises :class:`~hyperplane.errors.TopologyError` for a missing folder, unreadable or
    invalid JSON, missing fields and dangling references. ``repair=True`` is the lenient
    load: a NAT gateway address outside its subnet (moto writes them) is re-allocated from the
    subnet, with one :class:`~hyperplane.errors.RepairWarning` per gateway and a line in
    ``SnapshotReport.repairs``; without it that address is an error that says so.
    """
    root = Path(folder)
    if not root.is_dir():
        raise TopologyError(str(folder), "", "no such folder" if not root.exists() else "not a folder")
    paths = sorted(p for p in root.rglob("*.json")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not paths:
        raise TopologyError(str(folder), "", "no JSON file in the folder (expected describe-* output such as Vpcs.json)")
    documents = []
    for path in paths:
        name = path.relative_to(root).as_posix()
        documents.append((name, _read_json(path, name)))
    return parse_aws_documents(documents, source=str(folder), repair=repair)


def load_aws_snapshot(folder: str | os.PathLike[str], *, warn: bool = True, repair: bool = False) -> Topology:
    """The Topology of a snapshot folder; with ``warn``, one :class:`SnapshotWarning` lists
    what was not emulated (see :func:`read_aws_snapshot` for the report itself and ``repair``)."""
    topology, report = read_aws_snapshot(folder, repair=repair)
    if warn:
        warn_skipped(report)
    return topology


def parse_aws_documents(documents: Iterable[tuple[str, Any]], source: str = "", *,
                        repair: bool = False) -> tuple[Topology, SnapshotReport]:
    """Assemble parsed describe-* documents ``(file name, JSON value)`` into a Topology.

    The file names only label errors and the report; kinds come from the top-level keys.
    ``repair`` as in :func:`read_aws_snapshot`.
    """
    topology, report = _Snapshot(source, repair).build(documents)
    for line in report.repairs:  # only once the topology loads: a repair is not half a load
        warn_repair(line)
    return topology, report


def _read_json(path: Path, name: str) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TopologyError(name, "", f"cannot read the file: {exc.strerror or exc}") from None
    return load_json(decode(data, name), name)


# --------------------------------------------------------------------------------------------
# reading

class _Snapshot(_Rules):
    """Collects items by kind, then assembles the model in dependency order."""

    # -- collecting ---------------------------------------------------------------------------

    def collect(self, file: str, document: Any) -> None:
        self.report.files.append(file)
        if not isinstance(document, dict):
            self.fail(file, "top level", "expected a JSON object whose top-level key names the describe-* call "
                                "(Vpcs, Subnets, RouteTables, ...)")
        if isinstance(document.get("FunctionName"), str):  # get-function-configuration
            self.items["Functions"].append(_Item(file, "", document))
            return
        if isinstance(document.get("Configuration"), dict) and "FunctionName" in document["Configuration"]:
            self.items["Functions"].append(_Item(file, "Configuration", document["Configuration"]))  # get-function
            return
        for key, value in document.items():
            if key in _IGNORED_KEYS:
                continue
            if key in self.items:
                if not isinstance(value, list):
                    self.fail(file, key, f"expected a list, got {json.dumps(value)[:60]}")
                for i, element in enumerate(value):
                    if not isinstance(element, dict):
                        self.fail(file, f"{key}[{i}]", f"expected an object, got {json.dumps(element)[:60]}")
                    self.items[key].append(_Item(file, f"{key}[{i}]", element))
            else:
                count = len(value) if isinstance(value, (list, dict)) else 1
                if key in IGNORED_KINDS:
                    if count:
                        self.report.ignored[f"{key} ({IGNORED_KINDS[key]})"] = \
                            self.report.ignored.get(f"{key} ({IGNORED_KINDS[key]})", 0) + count
                    continue
                label = f"{key} ({SKIPPED_KINDS[key]})" if key in SKIPPED_KINDS else f"{key} (unrecognised key)"
                self.report.skip(label, count)

    # -- assembling ---------------------------------------------------------------------------

    def build(self, documents: Iterable[tuple[str, Any]]) -> tuple[Topology, SnapshotReport]:
        for file, document in documents:
            self.collect(file, document)
        for item in self.items["Reservations"]:
            owner = item.data.get("OwnerId")
            for instance in self.sub(item, "Instances", required=False):
                self.get(instance, "InstanceId")
                instance.data.setdefault("OwnerId", owner)
                self.instances.append(instance)
        self.vpc_items = {}
        self.subnet_items = {}
        self.rtb_items = {}
        self.sg_items = {}
        self.acl_items = {}
        self.igw_items = {}
        self.nat_items = {}
        self.ep_items = {}
        self.pl_items = {}
        self.pcx_items = {}
        self.instance_items = {}
        self.eni_items = {}

        self.prefix_lists = self.build_prefix_lists()
        self.vpc_cidrs = self.build_vpc_cidrs()
        self.subnets_pre = self.read_subnets()
        self.zone_ids = self.read_zone_ids()
        for item in self.items["RouteTables"]:
            self.define(item, "RouteTableId", self.rtb_items)
            self.ref(item, "VpcId", self.vpc_items, "VPC")
        for item in self.items["NetworkAcls"]:
            self.define(item, "NetworkAclId", self.acl_items)
            self.ref(item, "VpcId", self.vpc_items, "VPC")
        for item in self.items["SecurityGroups"]:
            if item.data.get("VpcId") is None:
                self.report.skip("SecurityGroups (EC2-Classic, no VpcId)")
                continue
            self.define(item, "GroupId", self.sg_items)
            self.ref(item, "VpcId", self.vpc_items, "VPC")
        for item in self.items["InternetGateways"]:
            self.define(item, "InternetGatewayId", self.igw_items)
        for item in self.instances:
            instance_id = self.get(item, "InstanceId")
            if instance_id in self.instance_items:
                self.fail(item.file, item.at("InstanceId"), f"{instance_id} is defined twice")
            self.instance_items[instance_id] = item
        self.peerings = self.build_peerings()
        self.enis = self.build_enis()          # plain, Lambda and endpoint ENIs (NAT ENIs below)
        self.nats = self.build_nat_gateways()
        self.apply_addresses()
        self.security_groups = self.build_security_groups()
        self.acls, self.acl_of_subnet, self.default_acl = self.build_network_acls()
        self.route_tables, self.rtb_of_subnet, self.main_rtb = self.build_route_tables()
        self.endpoints = self.build_endpoints()
        self.igws = self.build_internet_gateways()
        self.default_sg = self.build_default_groups()
        self.functions = self.build_functions()
        self.tgws = self.build_transit_gateways()
        topology = self.assemble()
        return topology, self.report

    # the topology ----------------------------------------------------------------------------------

    def assemble(self) -> Topology:
        vpcs = [Vpc(vpc_id, cidrs, self.main_rtb[vpc_id], self.default_acl[vpc_id], self.default_sg[vpc_id],
                    _tag_name(self.vpc_items[vpc_id].data)) for vpc_id, cidrs in self.vpc_cidrs.items()]
        subnets = []
        for subnet_id, (vpc_id, cidr, zone) in self.subnets_pre.items():
            subnets.append(Subnet(subnet_id, vpc_id, cidr, zone, self.rtb_of_subnet.get(subnet_id, self.main_rtb[vpc_id]),
                                  self.acl_of_subnet.get(subnet_id, self.default_acl[vpc_id]),
                                  _tag_name(self.subnet_items[subnet_id].data), self.zone_ids.get(subnet_id)))
        enis = []
        for record in self.enis.values():
            kind = record["kind"]
            if kind == "vpc_endpoint":
                self.note(f"{record['id']}: an endpoint ENI whose endpoint is not in the snapshot; kept as an address")
            enis.append(NetworkInterface(record["id"], record["subnet_id"], record["private_ip"], record["groups"],
                                         record["secondary"], record["public_ip"], kind, record["description"],
                                         record["instance_id"], None, record["source_dest_check"]))
        endpoints, endpoint_enis = self.endpoints
        enis.extend(endpoint_enis)
        enis.extend(eni for _nat, eni in self.nats.values())
        lambda_enis = [e for e in enis if e.kind == "lambda"]
        pools = {(s, frozenset(c.security_group_ids)) for fn in self.functions.values()
                 for c in [fn.vpc_config, *(v.vpc_config for v in fn.versions)] if c is not None for s in c.subnet_ids}
        for eni in lambda_enis:
            if (eni.subnet_id, frozenset(eni.security_group_ids)) not in pools:
                self.note(f"{eni.id}: a Lambda (Hyperplane) ENI that no function in the snapshot uses; it keeps its "
                          "address but carries no traffic")
        self.region = self.regions[0] if self.regions else _DEFAULT_REGION
        self.report.regions = list(self.regions)
        topology = Topology(
            account_id=self.account_id_or_default(),
            region=self.region, vpcs=_keyed(vpcs), subnets=_keyed(subnets), route_tables=self.route_tables,
            security_groups=self.security_groups, network_acls=self.acls, internet_gateways=self.igws,
            nat_gateways={n.id: n for n, _e in self.nats.values()}, prefix_lists=self.prefix_lists,
            vpc_endpoints=endpoints, network_interfaces=_keyed(enis), vpc_peering_connections=self.peerings,
            functions=self.functions, transit_gateways=self.tgws[0], transit_gateway_attachments=self.tgws[1],
            transit_gateway_route_tables=self.tgws[2])
        try:
            validate_topology(topology, where=self.where)
        except TopologyError as exc:
            where = exc.where
            file = exc.file
            if "::" in where:
                file, where = where.split("::", 1)
            raise TopologyError(file or self.report.source, where, exc.problem) from None
        self.report.loaded = {name: len(getattr(topology, name)) for name in (
            "vpcs", "subnets", "route_tables", "security_groups", "network_acls", "internet_gateways",
            "nat_gateways", "prefix_lists", "vpc_endpoints", "network_interfaces", "vpc_peering_connections",
            "functions", "transit_gateways", "transit_gateway_attachments", "transit_gateway_route_tables")}
        return topology
