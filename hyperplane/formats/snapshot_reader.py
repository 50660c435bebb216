"""AWS snapshots: a folder of ``describe-*`` JSON (AWS CLI / boto3 output) as a Topology.

A snapshot folder holds, at any depth (region subfolders are usual: the layout Batfish uses),
the JSON documents that EC2's ``describe-*`` calls and Lambda's ``list-functions`` return. A
file's kind is its top-level key, never its name: ``{"Subnets": [...]}`` is a subnet list
whatever the file is called, and one file may hold several keys. Read kinds:

=========================  ===============================================================
``Vpcs``                   CIDRs (associated ones of ``CidrBlockAssociationSet``)
``Subnets``                CIDR, AZ
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
:class:`SnapshotReport` (and one :class:`SnapshotWarning`): transit gateways and their
attachments, VPN and customer gateways, load balancers, RDS / Elasticsearch descriptions, IPv6
routes and rules, ENIs without a security group (transit gateway, load balancer ENIs), Gateway
Load Balancer endpoints, deleted NAT gateways, inactive peerings, ... Keys without network
behaviour (``AvailabilityZones``, the endpoint service catalogue) are only counted
(``SnapshotReport.ignored``); an unrecognised key is reported as skipped. A route whose target is not
emulated (``tgw-``, ``vgw-``, ``eigw-``, ``cagw-``, ``lgw-``, a core network ARN, a Gateway Load
Balancer endpoint) loads as it is: the data plane stops there with the reason
``UNMODELLED_TARGET`` (a Gateway Load Balancer endpoint stays in the topology as an endpoint of
type ``gateway_load_balancer`` for that, and is still reported as not emulated). A route to a
resource that was skipped (an ENI without security group, a deleted endpoint) becomes a
``blackhole`` route, noted in the report.

Broken input is a :class:`~hyperplane.errors.TopologyError` naming the file, the JSON path
(``Subnets[3].CidrBlock``) and the problem: invalid JSON, a required field missing or of the
wrong type, a reference to an id no file defines. Errors found by the topology validator after
assembly name the file and the resource's JSON path followed by the model's field name.

:func:`write_describe_folder` writes a :class:`~hyperplane.model.Topology` back as such a folder.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, Iterable, Mapping, NoReturn, Sequence

from hyperplane.errors import SubnetOutOfAddresses, TopologyError
from hyperplane.loaders._source import REPAIR_HINT, ascii_int, caller_level, decode, load_json, warn_repair
from hyperplane.model import (
    ALL_PORTS, ANY_IPV4, ICMP, PROTOCOL_ALL, ElasticIp, ExecutionRole, FunctionVersion,
    InternetGateway, LambdaFunction, NatGateway, NetworkAcl, NetworkAclEntry, NetworkInterface,
    PrefixList, Route, RouteTable, SecurityGroup, SecurityGroupRule, Subnet, Topology, Vpc,
    VpcConfig, VpcEndpoint, VpcPeeringConnection, has_ports, next_free_address, parse_protocol,
    route_target_kind, unmodelled_route_target, validate_topology,
)

__all__ = [
    "SnapshotReport", "SnapshotWarning", "load_aws_snapshot", "read_aws_snapshot",
    "parse_aws_documents", "write_describe_folder", "describe_documents", "SNAPSHOT_ROLE_POLICIES",
    "READ_KINDS", "SKIPPED_KINDS", "IGNORED_KINDS", "warn_skipped",
]

#: The managed policy every function's role is assumed to have (IAM is not in the snapshot).
SNAPSHOT_ROLE_POLICIES = ("AWSLambdaVPCAccessExecutionRole",)

#: Top-level keys that are read, in the order they are assembled.
READ_KINDS = (
    "Vpcs", "Subnets", "RouteTables", "SecurityGroups", "NetworkAcls", "InternetGateways",
    "NatGateways", "VpcEndpoints", "PrefixLists", "ManagedPrefixLists", "NetworkInterfaces",
    "Reservations", "Addresses", "VpcPeeringConnections", "Functions",
)

#: Known top-level keys of things the emulator does not model (skipped, reported by count).
SKIPPED_KINDS: Mapping[str, str] = {
    "TransitGateways": "transit gateways",
    "TransitGatewayAttachments": "transit gateway attachments",
    "TransitGatewayVpcAttachments": "transit gateway VPC attachments",
    "TransitGatewayRouteTables": "transit gateway route tables",
    "TransitGatewayPropagations": "transit gateway propagations",
    "TransitGatewayStaticRoutes": "transit gateway static routes",
    "TransitGatewayPeeringAttachments": "transit gateway peering attachments",
    "VpnConnections": "VPN connections",
    "VpnGateways": "VPN gateways",
    "CustomerGateways": "customer gateways",
    "EgressOnlyInternetGateways": "egress-only internet gateways",
    "CarrierGateways": "carrier gateways",
    "LocalGateways": "local gateways",
    "LoadBalancers": "load balancers",
    "LoadBalancerDescriptions": "classic load balancers",
    "LoadBalancerAttributes": "load balancer attributes",
    "LoadBalancerListeners": "load balancer listeners",
    "LoadBalancerTargetHealth": "load balancer target health",
    "TargetGroups": "target groups",
    "DBInstances": "RDS instances",
    "DomainStatusList": "Elasticsearch domains",
    "CacheClusters": "ElastiCache clusters",
}

#: Known top-level keys that carry no network behaviour: counted in ``SnapshotReport.ignored``
#: and not warned about.
IGNORED_KINDS: Mapping[str, str] = {
    "AvailabilityZones": "availability zones",
    "ServiceDetails": "VPC endpoint services",
    "ServiceNames": "VPC endpoint service names",
    "DhcpOptions": "DHCP option sets",
    "FlowLogs": "flow logs",
    "Images": "AMIs",
    "Volumes": "EBS volumes",
    "KeyPairs": "key pairs",
    "Tags": "tags",
}

_IGNORED_KEYS = frozenset({"NextToken", "NextMarker", "Marker", "ResponseMetadata"})
_GONE_STATES = frozenset({"deleted", "deleting", "failed", "rejected", "expired"})
_GWLB = "gatewayloadbalancer"  # VpcEndpointType, lowercased
_UNMODELLED_TARGET_KEYS = ("TransitGatewayId", "LocalGatewayId", "CarrierGatewayId",
                           "EgressOnlyInternetGatewayId", "CoreNetworkArn")
_DEFAULT_ACCOUNT = "123456789012"
_DEFAULT_REGION = "us-east-1"


class SnapshotWarning(UserWarning):
    """Issued once per loaded snapshot when something in it is not emulated."""


@dataclass
class SnapshotReport:
    """What a snapshot held and what of it was loaded.

    Attributes:
        source: the folder (or ``boto3``).
        files: the JSON files read, relative to the folder.
        loaded: resources loaded per model collection (``{"subnets": 3, ...}``).
        skipped: what was not emulated, by kind, with counts
            (``{"TransitGateways (transit gateways)": 1, ...}``).
        ignored: known keys without network behaviour (availability zones, endpoint service
            catalogues, ...), with counts; not warned about.
        notes: decisions about single resources (an ENI skipped, a route made a blackhole, ...).
        regions: the regions seen (from availability zones).
        repairs: what a lenient load (``repair=True``) changed, one line per resource (each
            also issued as a :class:`~hyperplane.errors.RepairWarning`).
        readdressed: the NAT gateway addresses re-allocated by ``repair``:
            ``{nat id: {old address: new address}}``.
    """

    source: str = ""
    files: list[str] = field(default_factory=list)
    loaded: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    ignored: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    readdressed: dict[str, dict[str, str]] = field(default_factory=dict)

    def skip(self, kind: str, count: int = 1) -> None:
        if count:
            self.skipped[kind] = self.skipped.get(kind, 0) + count

    def summary(self) -> str:
        """One readable paragraph: loaded counts, skipped kinds with counts, notes."""
        loaded = ", ".join(f"{k.replace('_', ' ')}: {n}" for k, n in self.loaded.items() if n)
        lines = [f"AWS snapshot {self.source}: loaded {loaded or 'nothing'}"]
        if self.skipped:
            lines.append("not emulated (skipped): " + ", ".join(f"{k}: {n}" for k, n in self.skipped.items()))
        lines.extend(f"note: {n}" for n in self.notes)
        lines.extend(f"repaired: {n}" for n in self.repairs)
        return "\n".join(lines)

    __str__ = summary


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


def warn_skipped(report: SnapshotReport) -> None:
    """Issue one :class:`SnapshotWarning` when the report skipped something."""
    if report.skipped or report.notes:
        warnings.warn(report.summary(), SnapshotWarning, stacklevel=caller_level())


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


@dataclass
class _Item:
    file: str
    path: str
    data: dict

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


def _suffix(resource_id: str) -> str:
    return resource_id.split("-", 1)[-1]


def _tag_name(data: Mapping[str, Any]) -> str:
    for key in ("Tags", "TagSet"):
        tags = data.get(key)
        if isinstance(tags, list):
            for tag in tags:
                if isinstance(tag, dict) and tag.get("Key") == "Name" and isinstance(tag.get("Value"), str):
                    return tag["Value"]
    return ""


class _Snapshot:
    """Collects items by kind, then assembles the model in dependency order."""

    def __init__(self, source: str, repair: bool = False) -> None:
        self.repair = repair
        self.report = SnapshotReport(source=source)
        self.items: dict[str, list[_Item]] = {k: [] for k in READ_KINDS}
        self.instances: list[_Item] = []
        self.where: dict[str, str] = {}  # resource id -> "file::path" for the validator
        self.defined: dict[str, _Item] = {}
        self.skipped_ids: dict[str, str] = {}  # id -> why it is not in the model
        self.account_id: str | None = None
        self.regions: list[str] = []
        self._gateway_endpoints: dict[str, _Item] | None = None
        self._instance_enis: dict[str, str] | None = None

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def fail(file: str, where: str, problem: str) -> NoReturn:
        raise TopologyError(file, where, problem)

    def get(self, item: _Item, key: str, kind: type | tuple[type, ...] = str, *, required: bool = True,
            default: Any = None) -> Any:
        value = item.data.get(key)
        if value is None:
            if required:
                self.fail(item.file, item.at(key), f"required field {key!r} is missing")
            return default
        empty = kind is str and isinstance(value, str) and not value.strip()
        if not isinstance(value, kind) or empty or (isinstance(value, bool) and kind is int):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            label = {"str": "a non-empty string", "list": "a list", "dict": "an object", "int": "an integer",
                     "bool": "true or false"}.get(names, names)
            self.fail(item.file, item.at(key), f"expected {label}, got {json.dumps(value)[:60]}")
        return value

    def sub(self, item: _Item, key: str, index: int | None = None, *, required: bool = True) -> list[_Item]:
        """The objects of list ``key`` (or the object ``key``) as items."""
        value = self.get(item, key, list if index is None else dict, required=required, default=[] if index is None else None)
        if value is None:
            return []
        if index is not None:
            return [_Item(item.file, item.at(key), value)]
        out = []
        for i, element in enumerate(value):
            path = f"{item.at(key)}[{i}]"
            if not isinstance(element, dict):
                self.fail(item.file, path, f"expected an object, got {json.dumps(element)[:60]}")
            out.append(_Item(item.file, path, element))
        return out

    def strings(self, item: _Item, key: str) -> list[str]:
        """An optional list of non-empty strings (ids)."""
        values = self.get(item, key, list, required=False, default=[])
        for i, value in enumerate(values):
            if not isinstance(value, str) or not value.strip():
                self.fail(item.file, f"{item.at(key)}[{i}]", f"expected a non-empty string, got {json.dumps(value)[:60]}")
        return values

    def cidr(self, item: _Item, key: str) -> IPv4Network:
        found = self.opt_cidr(item, key, required=True)
        assert found is not None
        return found

    def opt_cidr(self, item: _Item, key: str, *, required: bool = False) -> IPv4Network | None:
        value = self.get(item, key, required=required)
        if value is None:
            return None
        try:
            return IPv4Network(value.strip(), strict=False)
        except ValueError:
            self.fail(item.file, item.at(key), f"{value!r} is not an IPv4 CIDR")
        raise AssertionError

    def ip(self, item: _Item, key: str) -> IPv4Address:
        found = self.opt_ip(item, key, required=True)
        assert found is not None
        return found

    def opt_ip(self, item: _Item, key: str, *, required: bool = False) -> IPv4Address | None:
        value = self.get(item, key, required=required)
        if value is None:
            return None
        try:
            return IPv4Address(value.strip())
        except ValueError:
            self.fail(item.file, item.at(key), f"{value!r} is not an IPv4 address")
        raise AssertionError

    def protocol(self, item: _Item, key: str, raw: Any) -> int:
        """An ``IpProtocol`` / ``Protocol`` value: a name or a number in ASCII digits (the
        model's parser reads ``'٦'`` as 6)."""
        if isinstance(raw, bool) or not isinstance(raw, (str, int)) or (isinstance(raw, str) and not raw.isascii()):
            self.fail(item.file, item.at(key), f"{json.dumps(raw)[:40]} is not a protocol "
                                               "(use -1, tcp, udp, icmp or 0-255 in ASCII digits)")
        try:
            return parse_protocol(str(raw))
        except ValueError as exc:
            self.fail(item.file, item.at(key), str(exc))
        raise AssertionError

    def define(self, item: _Item, key: str, collection: dict) -> str:
        resource_id = self.get(item, key)
        if resource_id in self.defined:
            other = self.defined[resource_id]
            self.fail(item.file, item.at(key), f"{resource_id} is defined twice (also {other.file}: {other.path})")
        self.defined[resource_id] = item
        self.where[resource_id] = f"{item.file}::{item.path}"
        collection[resource_id] = item
        return resource_id

    def ref(self, item: _Item, key: str, collection: Mapping[str, Any], what: str, value: str | None = None,
            *, where: str | None = None) -> str:
        """A reference that must name a defined resource of ``collection``."""
        ref = value if value is not None else self.get(item, key)
        if ref not in collection:
            why = self.skipped_ids.get(ref)
            extra = f" (it was skipped: {why})" if why else ""
            self.fail(item.file, where or item.at(key), f"refers to {what} {ref!r}, which no file defines{extra}")
        return ref

    def account_id_or_default(self) -> str:
        account = self.account_id
        if account and account.isascii() and account.isdigit() and len(account) == 12:
            return account
        if account:
            self.note(f"owner {account[:40]!r} is not a 12-digit account id; the topology uses {_DEFAULT_ACCOUNT}")
        return _DEFAULT_ACCOUNT

    def note(self, text: str) -> None:
        self.report.notes.append(text)

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
        self.vpc_items: dict[str, _Item] = {}
        self.subnet_items: dict[str, _Item] = {}
        self.rtb_items: dict[str, _Item] = {}
        self.sg_items: dict[str, _Item] = {}
        self.acl_items: dict[str, _Item] = {}
        self.igw_items: dict[str, _Item] = {}
        self.nat_items: dict[str, _Item] = {}
        self.ep_items: dict[str, _Item] = {}
        self.pl_items: dict[str, _Item] = {}
        self.pcx_items: dict[str, _Item] = {}
        self.instance_items: dict[str, _Item] = {}
        self.eni_items: dict[str, _Item] = {}

        self.prefix_lists = self.build_prefix_lists()
        self.vpc_cidrs = self.build_vpc_cidrs()
        self.subnets_pre = self.read_subnets()
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
        topology = self.assemble()
        return topology, self.report

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

    # security groups -------------------------------------------------------------------------------

    def build_security_groups(self) -> dict[str, SecurityGroup]:
        out = {}
        for sg_id, item in self.sg_items.items():
            rules: dict[bool, list[SecurityGroupRule]] = {False: [], True: []}
            for egress, key in ((False, "IpPermissions"), (True, "IpPermissionsEgress")):
                for perm in self.sub(item, key, required=False):
                    rules[egress].extend(self.permission(perm, egress, item))
            out[sg_id] = SecurityGroup(sg_id, item.data["VpcId"], self.get(item, "GroupName", required=False, default=sg_id),
                                       tuple(rules[False]), tuple(rules[True]), _text(item.data.get("Description")))
        return out

    def permission(self, perm: _Item, egress: bool, group: _Item) -> list[SecurityGroupRule]:
        raw = perm.data.get("IpProtocol")
        if raw is None:
            self.fail(perm.file, perm.at("IpProtocol"), "required field 'IpProtocol' is missing")
        if str(raw).lower() in ("icmpv6", "58"):
            self.report.skip("security group rules (ICMPv6)")
            return []
        protocol = self.protocol(perm, "IpProtocol", raw)
        port_range, icmp_type, icmp_code = ALL_PORTS, -1, -1
        low = perm.data.get("FromPort")
        high = perm.data.get("ToPort")
        for key, value in (("FromPort", low), ("ToPort", high)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not -1 <= value <= 65535):
                self.fail(perm.file, perm.at(key), f"expected a port -1..65535, got {json.dumps(value)[:40]}")
        if has_ports(protocol) and low is not None and high is not None and low != -1:
            if low > high:
                self.fail(perm.file, perm.at("FromPort"), f"FromPort {low} is greater than ToPort {high}")
            port_range = (low, high)
        elif protocol == ICMP:
            icmp_type = low if isinstance(low, int) and low <= 255 else -1
            icmp_code = high if isinstance(high, int) and high <= 255 else -1
            if icmp_type == -1:
                icmp_code = -1
        def rule(peer: _Item, cidr: IPv4Network | None = None, prefix_list_id: str | None = None,
                 security_group_id: str | None = None) -> SecurityGroupRule:
            return SecurityGroupRule(egress, protocol, port_range, icmp_type, icmp_code, cidr, prefix_list_id,
                                     security_group_id, _text(peer.data.get("Description")))

        out = []
        for r in self.sub(perm, "IpRanges", required=False):
            cidr = self.cidr(r, "CidrIp")
            out.append(rule(r, cidr=cidr))
        ipv6 = perm.data.get("Ipv6Ranges")
        if isinstance(ipv6, list) and ipv6:
            self.report.skip("security group rules (IPv6 ranges)", len(ipv6))
        for r in self.sub(perm, "PrefixListIds", required=False):
            pl_id = self.get(r, "PrefixListId")
            if pl_id in self.skipped_ids:
                continue
            self.ref(r, "PrefixListId", self.prefix_lists, "prefix list")
            out.append(rule(r, prefix_list_id=pl_id))
        for r in self.sub(perm, "UserIdGroupPairs", required=False):
            peer = self.get(r, "GroupId")
            if peer not in self.sg_items:
                foreign = r.data.get("VpcPeeringConnectionId") or (
                    isinstance(r.data.get("UserId"), str) and isinstance(group.data.get("OwnerId"), str)
                    and r.data["UserId"] != group.data["OwnerId"])
                if foreign:
                    self.note(f"{group.data['GroupId']}: the rule naming {peer} (another account or a peer VPC) "
                              "is not emulated")
                    self.report.skip("security group rules (groups of other accounts / peer VPCs)")
                    continue
                self.ref(r, "GroupId", self.sg_items, "security group")
            out.append(rule(r, security_group_id=peer))
        return out

    # network ACLs ----------------------------------------------------------------------------------

    def build_network_acls(self) -> tuple[dict[str, NetworkAcl], dict[str, str], dict[str, str]]:
        out, of_subnet, default = {}, {}, {}
        for acl_id, item in self.acl_items.items():
            vpc_id = item.data["VpcId"]
            is_default = item.data.get("IsDefault") is True
            if is_default:
                default[vpc_id] = acl_id
            entries = []
            for entry in self.sub(item, "Entries", required=False):
                number = self.get(entry, "RuleNumber", int)
                if number == 32767:
                    continue  # the implicit deny, which the model adds itself
                if entry.data.get("CidrBlock") is None and entry.data.get("Ipv6CidrBlock") is not None:
                    self.report.skip("network ACL entries (IPv6)")
                    continue
                egress = self.get(entry, "Egress", bool)
                protocol = self.protocol(entry, "Protocol", self.get(entry, "Protocol", (str, int)))
                action = self.get(entry, "RuleAction").lower()
                if action not in ("allow", "deny"):
                    self.fail(entry.file, entry.at("RuleAction"), f"{action!r} is not allow or deny")
                port_range, icmp = ALL_PORTS, (-1, -1)
                if has_ports(protocol) and isinstance(entry.data.get("PortRange"), dict):
                    pr = self.sub(entry, "PortRange", 0)[0]
                    port_range = (self.get(pr, "From", int), self.get(pr, "To", int))
                elif protocol == ICMP and isinstance(entry.data.get("IcmpTypeCode"), dict):
                    tc = self.sub(entry, "IcmpTypeCode", 0)[0]
                    icmp = (self.get(tc, "Type", int, required=False, default=-1),
                            self.get(tc, "Code", int, required=False, default=-1))
                    if icmp[0] == -1:
                        icmp = (-1, -1)
                entries.append(NetworkAclEntry(number, egress, protocol, action, self.cidr(entry, "CidrBlock"),
                                               port_range, icmp[0], icmp[1]))
            for assoc in self.sub(item, "Associations", required=False):
                subnet_id = self.get(assoc, "SubnetId")
                if subnet_id in self.skipped_ids:
                    continue
                self.ref(assoc, "SubnetId", self.subnet_items, "subnet")
                of_subnet[subnet_id] = acl_id
            out[acl_id] = NetworkAcl(acl_id, vpc_id, tuple(entries), is_default, _tag_name(item.data))
        for vpc_id in self.vpc_items:
            if vpc_id not in default:
                acl_id = f"acl-{_suffix(vpc_id)}-default"
                self.note(f"{vpc_id}: no default network ACL in the snapshot; created {acl_id} allowing everything, as AWS does")
                allow_all = tuple(NetworkAclEntry(100, e, PROTOCOL_ALL, "allow", ANY_IPV4) for e in (False, True))
                out[acl_id] = NetworkAcl(acl_id, vpc_id, allow_all, True)
                default[vpc_id] = acl_id
        return out, of_subnet, default

    # route tables ----------------------------------------------------------------------------------

    def build_route_tables(self) -> tuple[dict[str, RouteTable], dict[str, str], dict[str, str]]:
        of_subnet, main = {}, {}
        for rtb_id, item in self.rtb_items.items():
            for assoc in self.sub(item, "Associations", required=False):
                state = assoc.data.get("AssociationState")
                if isinstance(state, dict) and state.get("State") not in (None, "associated", "associating"):
                    continue
                if assoc.data.get("Main") is True:
                    main[item.data["VpcId"]] = rtb_id
                elif assoc.data.get("SubnetId") is not None:
                    subnet_id = self.get(assoc, "SubnetId")
                    if subnet_id in self.skipped_ids:
                        continue
                    self.ref(assoc, "SubnetId", self.subnet_items, "subnet")
                    of_subnet[subnet_id] = rtb_id
                elif assoc.data.get("GatewayId") is not None:
                    self.report.skip("route table gateway associations (ingress routing)")
        out = {}
        for rtb_id, item in self.rtb_items.items():
            vpc_id = item.data["VpcId"]
            out[rtb_id] = RouteTable(rtb_id, vpc_id, self.routes(item, vpc_id), main.get(vpc_id) == rtb_id, _tag_name(item.data))
        for vpc_id, cidrs in self.vpc_cidrs.items():
            if vpc_id not in main:
                rtb_id = f"rtb-{_suffix(vpc_id)}-main"
                self.note(f"{vpc_id}: no main route table in the snapshot; created {rtb_id} with the local routes, as AWS does")
                out[rtb_id] = RouteTable(rtb_id, vpc_id, tuple(Route(c, "local") for c in cidrs), True)
                main[vpc_id] = rtb_id
        return out, of_subnet, main

    def routes(self, item: _Item, vpc_id: str) -> tuple[Route, ...]:
        cidrs = self.vpc_cidrs[vpc_id]
        routes: dict[Any, tuple[Route, bool]] = {}  # destination -> (route, propagated)
        for r in self.sub(item, "Routes", required=False):
            if r.data.get("DestinationCidrBlock") is None and r.data.get("DestinationPrefixListId") is None:
                if r.data.get("DestinationIpv6CidrBlock") is not None:
                    self.report.skip("routes (IPv6)")
                    continue
                self.fail(r.file, r.at("DestinationCidrBlock"), "required field 'DestinationCidrBlock' (or DestinationPrefixListId) is missing")
            if r.data.get("DestinationCidrBlock") is not None:
                destination: Any = self.cidr(r, "DestinationCidrBlock")
            else:
                destination = self.get(r, "DestinationPrefixListId")
                if destination in self.skipped_ids:
                    self.report.skip("routes (to IPv6 prefix lists)")
                    continue
                self.ref(r, "DestinationPrefixListId", self.prefix_lists, "prefix list")
            blackhole = r.data.get("State") == "blackhole"
            target, state = self.route_target(r, blackhole)
            if target == "local" and destination not in cidrs:
                self.note(f"{item.data['RouteTableId']}: local route {destination} is no associated CIDR of {vpc_id}; dropped")
                continue
            propagated = r.data.get("Origin") == "EnableVgwRoutePropagation"
            route = Route(destination, target, "blackhole" if blackhole else state)
            if destination in routes:
                if routes[destination][1] and not propagated:
                    routes[destination] = (route, propagated)  # a static route beats a propagated one
                continue
            routes[destination] = (route, propagated)
        out = [route for route, _p in routes.values()]
        for cidr in cidrs:
            if cidr not in routes:
                out.append(Route(cidr, "local"))
        return tuple(out)

    def route_target(self, r: _Item, blackhole: bool) -> tuple[str, str]:
        """(target, state) of a route; a target that was skipped makes the route a blackhole."""
        def existing(key: str, collection: Mapping[str, Any], what: str, value: str | None = None) -> tuple[str, str]:
            target = value if value is not None else self.get(r, key)
            if target in collection or blackhole:
                return target, "active"
            if target in self.skipped_ids:
                self.note(f"route {r.data.get('DestinationCidrBlock') or r.data.get('DestinationPrefixListId')} -> "
                          f"{target}: the target is {self.skipped_ids[target]}; the route is treated as a blackhole")
                return target, "blackhole"
            self.ref(r, key, collection, what, target)
            raise AssertionError

        data = r.data
        if data.get("NetworkInterfaceId") is not None:
            return existing("NetworkInterfaceId", self.enis, "network interface")
        if data.get("InstanceId") is not None:
            instance_id = self.get(r, "InstanceId")
            eni_id = self.instance_eni(instance_id)
            if eni_id is None:
                if blackhole:
                    return f"eni-of-{instance_id}", "blackhole"
                self.ref(r, "InstanceId", self.instance_items, "instance (with an ENI)", "" if instance_id in self.instance_items else instance_id)
            return existing("InstanceId", self.enis, "network interface", eni_id)
        if data.get("NatGatewayId") is not None:
            return existing("NatGatewayId", self.nats, "NAT gateway")
        if data.get("VpcPeeringConnectionId") is not None:
            return existing("VpcPeeringConnectionId", self.peerings, "peering connection")
        for key in _UNMODELLED_TARGET_KEYS:
            if data.get(key) is not None:
                target = self.get(r, key)
                if unmodelled_route_target(target) is None:
                    self.fail(r.file, r.at(key), f"{target!r} is not a {key[:-2]} id")
                return target, "active"
        gateway = data.get("GatewayId")
        if gateway is None:
            self.fail(r.file, r.path, "a route needs a target (GatewayId, NatGatewayId, NetworkInterfaceId, "
                                      "InstanceId, VpcPeeringConnectionId, TransitGatewayId, ...)")
        gateway = self.get(r, "GatewayId")
        kind = route_target_kind(gateway)
        if kind == "local":
            return "local", "active"
        if kind == "igw":
            return existing("GatewayId", self.igw_items, "internet gateway")
        if kind == "vpce":
            return existing("GatewayId", self.ep_gateway_ids(), "gateway or Gateway Load Balancer VPC endpoint")
        if unmodelled_route_target(gateway) is not None:
            return gateway, "active"
        self.fail(r.file, r.at("GatewayId"), f"unknown route target {gateway!r}")
        raise AssertionError

    def ep_gateway_ids(self) -> dict[str, _Item]:
        """Endpoints a route may target, by id (computed once): gateway and Gateway Load Balancer
        ones; other endpoint types, and endpoints that are gone, become skipped ids."""
        if self._gateway_endpoints is not None:
            return self._gateway_endpoints
        out: dict[str, _Item] = {}
        self._gateway_endpoints = out
        for item in self.items["VpcEndpoints"]:
            ep_id = item.data.get("VpcEndpointId")
            if not isinstance(ep_id, str):
                continue
            kind = str(item.data.get("VpcEndpointType", "")).lower()
            state = str(item.data.get("State", "available")).lower()
            if kind in ("gateway", _GWLB) and state not in _GONE_STATES:
                out[ep_id] = item
            elif kind not in ("gateway", "interface", _GWLB):
                self.skipped_ids.setdefault(ep_id, f"a {item.data.get('VpcEndpointType')} endpoint (not emulated)")
            elif state in _GONE_STATES:
                self.skipped_ids.setdefault(ep_id, f"an endpoint in state {state}")
        return out

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
            if code not in ("active", "provisioning"):
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
                out[pcx_id] = VpcPeeringConnection(pcx_id, requester, accepter, ac, _tag_name(item.data))
            elif accepter in self.vpc_items:
                out[pcx_id] = VpcPeeringConnection(pcx_id, accepter, requester, sides[0][1], _tag_name(item.data))
            else:
                self.report.skip("VpcPeeringConnections (between VPCs not in the snapshot)")
                self.skipped_ids[pcx_id] = "a peering between VPCs not in the snapshot"
        return out

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

    # the topology ----------------------------------------------------------------------------------

    def assemble(self) -> Topology:
        vpcs = [Vpc(vpc_id, cidrs, self.main_rtb[vpc_id], self.default_acl[vpc_id], self.default_sg[vpc_id],
                    _tag_name(self.vpc_items[vpc_id].data)) for vpc_id, cidrs in self.vpc_cidrs.items()]
        subnets = []
        for subnet_id, (vpc_id, cidr, zone) in self.subnets_pre.items():
            subnets.append(Subnet(subnet_id, vpc_id, cidr, zone, self.rtb_of_subnet.get(subnet_id, self.main_rtb[vpc_id]),
                                  self.acl_of_subnet.get(subnet_id, self.default_acl[vpc_id]),
                                  _tag_name(self.subnet_items[subnet_id].data)))
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
            functions=self.functions)
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
            "functions")}
        return topology


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _keyed(resources: Iterable[Any]) -> dict[str, Any]:
    return {r.id: r for r in resources}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _kind_from_description(description: str) -> str:
    """What an ENI not attached to an instance stands for, from the description AWS gives it."""
    text = description.lower()
    for needle, kind in (("rdsnetworkinterface", "rds"), ("elasticache", "elasticache"), ("elb ", "elb"),
                         ("efs mount target", "efs"), ("aws lambda vpc eni", "lambda")):
        if needle in text:
            return kind
    return "interface"


# --------------------------------------------------------------------------------------------
# topology -> describe-* documents


_TARGET_KEY = {"nat": "NatGatewayId", "eni": "NetworkInterfaceId", "pcx": "VpcPeeringConnectionId"}
_ENDPOINT_TYPE = {"gateway": "Gateway", "interface": "Interface", "gateway_load_balancer": "GatewayLoadBalancer"}
_UNMODELLED_KEY = {"tgw-": "TransitGatewayId", "eigw-": "EgressOnlyInternetGatewayId", "cagw-": "CarrierGatewayId",
                   "lgw-": "LocalGatewayId", "arn:": "CoreNetworkArn", "vgw-": "GatewayId"}


def _tags(name: str) -> list[dict]:
    return [{"Key": "Name", "Value": name}] if name else []


def _aws_protocol(protocol: int) -> str:
    return {PROTOCOL_ALL: "-1", 6: "tcp", 17: "udp", ICMP: "icmp"}.get(protocol, str(protocol))


def _permission(rule: SecurityGroupRule, account: str) -> dict:
    out: dict[str, Any] = {"IpProtocol": _aws_protocol(rule.protocol)}
    if has_ports(rule.protocol):
        out["FromPort"], out["ToPort"] = rule.port_range
    elif rule.protocol == ICMP:
        out["FromPort"], out["ToPort"] = rule.icmp_type, rule.icmp_code
    desc = {"Description": rule.description} if rule.description else {}
    out["IpRanges"] = [{"CidrIp": str(rule.cidr)} | desc] if rule.cidr is not None else []
    out["Ipv6Ranges"] = []
    out["PrefixListIds"] = [{"PrefixListId": rule.prefix_list_id} | desc] if rule.prefix_list_id else []
    out["UserIdGroupPairs"] = ([{"GroupId": rule.security_group_id, "UserId": account} | desc]
                               if rule.security_group_id else [])
    return out


def _eni_document(t: Topology, eni_id: str, subnet_id: str, ips: Sequence[Any], groups: Sequence[str],
                  public_ip: Any, interface_type: str, description: str, instance_id: str | None = None,
                  source_dest_check: bool = True) -> dict:
    subnet = t.subnets[subnet_id]
    association = {"Association": {"PublicIp": str(public_ip), "IpOwnerId": "amazon"}} if public_ip else {}
    out: dict[str, Any] = association | {
        "AvailabilityZone": subnet.availability_zone, "Description": description,
        "Groups": [{"GroupId": g, "GroupName": t.security_groups[g].name} for g in groups],
        "InterfaceType": interface_type, "NetworkInterfaceId": eni_id, "OwnerId": t.account_id,
        "PrivateIpAddress": str(ips[0]),
        "PrivateIpAddresses": [({"Primary": k == 0, "PrivateIpAddress": str(ip)} | (association if k == 0 else {}))
                               for k, ip in enumerate(ips)],
        "RequesterManaged": interface_type != "interface", "SourceDestCheck": source_dest_check,
        "Status": "in-use", "SubnetId": subnet_id, "TagSet": [], "VpcId": subnet.vpc_id,
    }
    if instance_id:
        out["Attachment"] = {"DeviceIndex": 0, "InstanceId": instance_id, "InstanceOwnerId": t.account_id,
                             "Status": "attached"}
    return out


def describe_documents(topology: Topology, *, hyperplane_enis: Iterable[Any] = ()) -> dict[str, dict]:
    """The topology as describe-* documents, ``{"Vpcs.json": {"Vpcs": [...]}, ...}``.

    ``hyperplane_enis`` (e.g. ``network.hyperplane_enis``) are written as ENIs of
    ``InterfaceType`` ``lambda``, so that loading the folder takes them over again.
    """
    t = topology
    account = t.account_id
    docs: dict[str, dict] = {}
    docs["Vpcs.json"] = {"Vpcs": [{
        "CidrBlock": str(v.cidrs[0]),
        "CidrBlockAssociationSet": [{"AssociationId": f"vpc-cidr-assoc-{_suffix(v.id)}-{k}", "CidrBlock": str(c),
                                     "CidrBlockState": {"State": "associated"}} for k, c in enumerate(v.cidrs)],
        "IsDefault": False, "OwnerId": account, "State": "available", "Tags": _tags(v.name), "VpcId": v.id,
    } for v in t.vpcs.values()]}
    docs["Subnets.json"] = {"Subnets": [{
        "AvailabilityZone": s.availability_zone, "CidrBlock": str(s.cidr), "OwnerId": account,
        "State": "available", "SubnetId": s.id, "Tags": _tags(s.name), "VpcId": s.vpc_id,
    } for s in t.subnets.values()]}

    def route(r: Route) -> dict:
        out: dict[str, Any] = ({"DestinationPrefixListId": r.destination} if r.is_prefix_list_route
                               else {"DestinationCidrBlock": str(r.destination)})
        kind = r.target_kind
        if kind in _TARGET_KEY:
            out[_TARGET_KEY[kind]] = r.target
        elif kind == "unmodelled":
            out[next(v for p, v in _UNMODELLED_KEY.items() if r.target.startswith(p))] = r.target
        else:
            out["GatewayId"] = r.target
        out["Origin"] = "CreateRouteTable" if r.target == "local" else "CreateRoute"
        out["State"] = r.state
        return out

    tables = []
    for rt in t.route_tables.values():
        associations = [{"Main": True, "RouteTableAssociationId": f"rtbassoc-{_suffix(rt.id)}-main",
                         "RouteTableId": rt.id, "AssociationState": {"State": "associated"}}] if rt.is_main else []
        associations += [{"Main": False, "RouteTableAssociationId": f"rtbassoc-{_suffix(s.id)}", "RouteTableId": rt.id,
                          "SubnetId": s.id, "AssociationState": {"State": "associated"}}
                         for s in t.subnets_using_route_table(rt.id) if not rt.is_main]
        tables.append({"Associations": associations, "OwnerId": account, "PropagatingVgws": [], "RouteTableId": rt.id,
                       "Routes": [route(r) for r in rt.routes], "Tags": _tags(rt.name), "VpcId": rt.vpc_id})
    docs["RouteTables.json"] = {"RouteTables": tables}
    docs["SecurityGroups.json"] = {"SecurityGroups": [{
        "Description": g.description or g.name, "GroupId": g.id, "GroupName": g.name,
        "IpPermissions": [_permission(r, account) for r in g.ingress],
        "IpPermissionsEgress": [_permission(r, account) for r in g.egress],
        "OwnerId": account, "VpcId": g.vpc_id,
    } for g in t.security_groups.values()]}

    def entry(e: NetworkAclEntry) -> dict:
        out: dict[str, Any] = {"CidrBlock": str(e.cidr), "Egress": e.egress, "Protocol": str(e.protocol),
                               "RuleAction": e.rule_action, "RuleNumber": e.rule_number}
        if has_ports(e.protocol):
            out["PortRange"] = {"From": e.port_range[0], "To": e.port_range[1]}
        elif e.protocol == ICMP:
            out["IcmpTypeCode"] = {"Code": e.icmp_code, "Type": e.icmp_type}
        return out

    docs["NetworkAcls.json"] = {"NetworkAcls": [{
        "Associations": [{"NetworkAclAssociationId": f"aclassoc-{_suffix(s.id)}", "NetworkAclId": a.id, "SubnetId": s.id}
                         for s in t.subnets_using_network_acl(a.id)],
        "Entries": [entry(e) for e in (*a.entries, *(r for r in (*a.ingress, *a.egress) if r.is_implicit_deny))], "IsDefault": a.is_default, "NetworkAclId": a.id,
        "OwnerId": account, "Tags": _tags(a.name), "VpcId": a.vpc_id,
    } for a in t.network_acls.values()]}
    docs["InternetGateways.json"] = {"InternetGateways": [{
        "Attachments": [{"State": "available", "VpcId": g.vpc_id}] if g.vpc_id else [],
        "InternetGatewayId": g.id, "OwnerId": account, "Tags": _tags(g.name),
    } for g in t.internet_gateways.values()]}
    docs["NatGateways.json"] = {"NatGateways": [{
        "ConnectivityType": n.connectivity_type,
        "NatGatewayAddresses": [
            {"NetworkInterfaceId": n.network_interface_id, "PrivateIp": str(private), "IsPrimary": k == 0,
             "Status": "succeeded"} | ({"AllocationId": n.elastic_ips[k].allocation_id, "PublicIp": str(public)} if public else {})
            for k, (private, public) in enumerate(n.address_pairs)],
        "NatGatewayId": n.id, "State": "available", "SubnetId": n.subnet_id, "Tags": _tags(n.name),
        "VpcId": t.subnets[n.subnet_id].vpc_id,
    } for n in t.nat_gateways.values()]}
    docs["PrefixLists.json"] = {"PrefixLists": [
        {"Cidrs": [str(c) for c in p.cidrs], "PrefixListId": p.id, "PrefixListName": p.name}
        for p in t.prefix_lists.values()]}
    endpoints = []
    for ep in t.vpc_endpoints.values():
        out: dict[str, Any] = {"VpcEndpointId": ep.id, "VpcEndpointType": _ENDPOINT_TYPE[ep.endpoint_type],
                               "VpcId": ep.vpc_id, "ServiceName": ep.service_name, "State": "available",
                               "RouteTableIds": list(ep.route_table_ids), "SubnetIds": list(ep.subnet_ids),
                               "Groups": [{"GroupId": g, "GroupName": t.security_groups[g].name} for g in ep.security_group_ids],
                               "NetworkInterfaceIds": list(ep.network_interface_ids),
                               "PrivateDnsEnabled": ep.private_dns_enabled,
                               "DnsEntries": [{"DnsName": n} for n in ep.dns_names], "Tags": _tags(ep.name)}
        endpoints.append(out)
    docs["VpcEndpoints.json"] = {"VpcEndpoints": endpoints}
    enis = []
    reservations: dict[str, list[dict]] = {}
    for e in t.network_interfaces.values():
        interface_type = e.kind if e.kind in ("nat_gateway", "vpc_endpoint", "lambda") else "interface"
        description = e.description
        if e.kind == "rds" and not description:
            description = "RDSNetworkInterface"
        doc = _eni_document(t, e.id, e.subnet_id, e.private_ips, e.security_group_ids, e.public_ip,
                            interface_type, description, e.instance_id, e.source_dest_check)
        enis.append(doc)
        if e.instance_id:
            reservations.setdefault(e.instance_id, []).append(doc)
    for hp in hyperplane_enis:
        if hp.id in t.network_interfaces:
            continue
        enis.append(_eni_document(t, hp.id, hp.subnet_id, [hp.private_ip], hp.security_group_ids, None, "lambda",
                                  f"AWS Lambda VPC ENI-{(hp.functions or ['unused'])[0].split(':')[0]}"))
    docs["NetworkInterfaces.json"] = {"NetworkInterfaces": enis}
    docs["Reservations.json"] = {"Reservations": [{
        "Groups": [], "OwnerId": account, "ReservationId": f"r-{_suffix(instance_id)}",
        "Instances": [{"InstanceId": instance_id, "PrivateIpAddress": nics[0]["PrivateIpAddress"],
                       "SubnetId": nics[0]["SubnetId"], "VpcId": nics[0]["VpcId"], "State": {"Code": 16, "Name": "running"},
                       "NetworkInterfaces": [{k: v for k, v in nic.items() if k != "Attachment"}
                                             | {"Attachment": {"DeviceIndex": i, "Status": "attached"}}
                                             for i, nic in enumerate(nics)]}],
    } for instance_id, nics in reservations.items()]}
    peerings = []
    for p in t.vpc_peering_connections.values():
        own = t.vpcs[p.vpc_id].cidrs
        peer = t.vpcs[p.peer_vpc_id].cidrs if p.peer_vpc_id in t.vpcs else p.peer_cidrs
        info = lambda vpc_id, cidrs: {"CidrBlock": str(cidrs[0]) if cidrs else None,  # noqa: E731
                                      "CidrBlockSet": [{"CidrBlock": str(c)} for c in cidrs], "OwnerId": account,
                                      "Region": t.region, "VpcId": vpc_id}
        peerings.append({"AccepterVpcInfo": info(p.peer_vpc_id, peer), "RequesterVpcInfo": info(p.vpc_id, own),
                         "Status": {"Code": "active", "Message": "Active"}, "Tags": _tags(p.name),
                         "VpcPeeringConnectionId": p.id})
    docs["VpcPeeringConnections.json"] = {"VpcPeeringConnections": peerings}
    functions = []
    for fn in t.functions.values():
        def config(c: VpcConfig | None) -> dict:
            if c is None:
                return {"SubnetIds": [], "SecurityGroupIds": [], "VpcId": ""}
            return {"SubnetIds": list(c.subnet_ids), "SecurityGroupIds": list(c.security_group_ids),
                    "VpcId": t.subnets[c.subnet_ids[0]].vpc_id}
        arn = f"arn:aws:lambda:{t.region}:{account}:function:{fn.name}"
        base = {"FunctionName": fn.name, "Role": fn.role.arn, "Description": fn.description, "State": "Active"}
        functions.append(base | {"FunctionArn": arn, "Version": "$LATEST", "VpcConfig": config(fn.vpc_config)})
        for v in fn.versions:
            functions.append(base | {"FunctionArn": f"{arn}:{v.version}", "Version": v.version, "VpcConfig": config(v.vpc_config)})
    docs["Functions.json"] = {"Functions": functions}
    return docs


def write_describe_folder(topology: Topology, folder: str | os.PathLike[str], *,
                          hyperplane_enis: Iterable[Any] = ()) -> list[Path]:
    """Write ``topology`` as a describe-* snapshot: ``folder/<region>/Vpcs.json`` and so on.

    Loading the folder back (:func:`load_aws_snapshot`, ``Network.load``) gives a topology with
    the same verdicts. Not carried: ENI kinds other than instance / rds / managed ones (written as
    ``interface``), execution role permissions (assumed, see :data:`SNAPSHOT_ROLE_POLICIES`).
    Returns the files written.
    """
    region_dir = Path(folder) / topology.region
    region_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in describe_documents(topology, hyperplane_enis=hyperplane_enis).items():
        path = region_dir / name
        path.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
        written.append(path)
    return written
