"""Typed access to the items of describe-* documents, where every failure is a TopologyError
naming the file and the JSON path, and the state a snapshot read shares between the readers
of each resource kind (:mod:`~hyperplane.formats.snapshot_resources`, ...)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Iterable, Mapping, NoReturn

from hyperplane.errors import TopologyError
from hyperplane.formats.snapshot_report import READ_KINDS, SnapshotReport
from hyperplane.model import (
    InternetGateway, LambdaFunction, NatGateway, NetworkAcl, NetworkInterface, PrefixList,
    RouteTable, SecurityGroup, VpcEndpoint, VpcPeeringConnection, parse_protocol,
)

_IGNORED_KEYS = frozenset({"NextToken", "NextMarker", "Marker", "ResponseMetadata"})
_GONE_STATES = frozenset({"deleted", "deleting", "failed", "rejected", "expired"})
_GWLB = "gatewayloadbalancer"  # VpcEndpointType, lowercased
_UNMODELLED_TARGET_KEYS = ("TransitGatewayId", "LocalGatewayId", "CarrierGatewayId",
                           "EgressOnlyInternetGatewayId", "CoreNetworkArn")
_DEFAULT_ACCOUNT = "123456789012"
_DEFAULT_REGION = "us-east-1"


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


class _Fields:
    """A snapshot being read: the items by kind, what is defined where, and typed field access."""

    # set by _Snapshot.build, in dependency order; the readers of each resource kind use them
    vpc_items: dict[str, _Item]
    subnet_items: dict[str, _Item]
    rtb_items: dict[str, _Item]
    sg_items: dict[str, _Item]
    acl_items: dict[str, _Item]
    igw_items: dict[str, _Item]
    nat_items: dict[str, _Item]
    ep_items: dict[str, _Item]
    pl_items: dict[str, _Item]
    pcx_items: dict[str, _Item]
    instance_items: dict[str, _Item]
    eni_items: dict[str, _Item]
    prefix_lists: dict[str, PrefixList]
    vpc_cidrs: dict[str, tuple[IPv4Network, ...]]
    subnets_pre: dict[str, tuple[str, IPv4Network, str]]
    zone_ids: dict[str, str]
    peerings: dict[str, VpcPeeringConnection]
    enis: dict[str, dict]
    nats: dict[str, tuple[NatGateway, NetworkInterface]]
    security_groups: dict[str, SecurityGroup]
    acls: dict[str, NetworkAcl]
    acl_of_subnet: dict[str, str]
    default_acl: dict[str, str]
    route_tables: dict[str, RouteTable]
    rtb_of_subnet: dict[str, str]
    main_rtb: dict[str, str]
    endpoints: tuple[dict[str, VpcEndpoint], list[NetworkInterface]]
    igws: dict[str, InternetGateway]
    default_sg: dict[str, str]
    functions: dict[str, LambdaFunction]
    tgws: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]

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
