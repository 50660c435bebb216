"""Collect an account's network with boto3: the describe-* calls a snapshot folder holds.

:func:`collect_documents` runs, for one region (the clients' region), the EC2 describe calls of
:data:`EC2_CALLS` (paginated wherever boto3 has a paginator), the entries of every customer and
AWS managed prefix list, and Lambda's ``list_functions`` (all versions). The documents are the
ones ``aws_snapshot`` reads, so :func:`from_boto3` (a Topology) and :func:`write_snapshot` (a
folder ``DIR/<region>/Vpcs.json`` ... that ``Network.load(DIR)`` reads back) give the same
network. IAM is not read: see :data:`hyperplane.formats.snapshot_report.SNAPSHOT_ROLE_POLICIES`.

``session_or_clients``: a ``boto3.Session``; a mapping ``{"ec2": client, "lambda": client}``
(the lambda client is optional: without it no function is collected); a single EC2 client; or
``None`` for ``boto3.Session()`` with the default credentials and region.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from hyperplane.errors import HyperplaneError, TopologyError
from hyperplane.formats.snapshot_reader import parse_aws_documents
from hyperplane.formats.snapshot_report import SnapshotReport, warn_skipped
from hyperplane.model import Topology

__all__ = ["EC2_CALLS", "CollectError", "collect_documents", "from_boto3", "read_boto3", "write_snapshot"]

#: (top-level key, EC2 client method) of every describe call collected.
EC2_CALLS: tuple[tuple[str, str], ...] = (
    ("Vpcs", "describe_vpcs"),
    ("Subnets", "describe_subnets"),
    ("RouteTables", "describe_route_tables"),
    ("SecurityGroups", "describe_security_groups"),
    ("NetworkAcls", "describe_network_acls"),
    ("InternetGateways", "describe_internet_gateways"),
    ("NatGateways", "describe_nat_gateways"),
    ("VpcEndpoints", "describe_vpc_endpoints"),
    ("PrefixLists", "describe_prefix_lists"),
    ("ManagedPrefixLists", "describe_managed_prefix_lists"),
    ("NetworkInterfaces", "describe_network_interfaces"),
    ("Reservations", "describe_instances"),
    ("Addresses", "describe_addresses"),
    ("VpcPeeringConnections", "describe_vpc_peering_connections"),
    ("AvailabilityZones", "describe_availability_zones"),  # zone ids, for subnets that lack them
)


class CollectError(HyperplaneError):
    """A describe call failed (credentials, permissions, throttling): which call and why."""


def _clients(session_or_clients: Any) -> tuple[Any, Any | None]:
    """(ec2 client, lambda client or None) from what the caller gave."""
    if session_or_clients is None:
        import boto3
        session_or_clients = boto3.Session()
    if isinstance(session_or_clients, Mapping):
        if "ec2" not in session_or_clients:
            raise CollectError("session_or_clients: a mapping needs an 'ec2' client (and optionally 'lambda')")
        return session_or_clients["ec2"], session_or_clients.get("lambda")
    service = getattr(getattr(getattr(session_or_clients, "meta", None), "service_model", None), "service_name", None)
    if service == "ec2":  # a client (checked first: a client is no Session)
        return session_or_clients, None
    if hasattr(session_or_clients, "client") and callable(session_or_clients.client):  # a Session
        return session_or_clients.client("ec2"), session_or_clients.client("lambda")
    raise CollectError(f"session_or_clients: expected a boto3 Session, an EC2 client or "
                       f"{{'ec2': ..., 'lambda': ...}}, not {type(session_or_clients).__name__}")


def _call(client: Any, method: str, key: str, **kwargs: Any) -> list:
    """Every item of ``key`` over all pages of ``client.method(**kwargs)``."""
    name = f"{client.meta.service_model.service_name}.{method}"
    try:
        if client.can_paginate(method):
            items: list = []
            for page in client.get_paginator(method).paginate(**kwargs):
                items.extend(page.get(key, []))
            return items
        return list(getattr(client, method)(**kwargs).get(key, []))
    except Exception as exc:  # botocore's ClientError, NoCredentialsError, EndpointConnectionError...
        raise CollectError(f"{name} failed: {exc}") from exc


def _plain(value: Any) -> Any:
    """JSON-ready (datetimes as strings), as the AWS CLI writes them."""
    return json.loads(json.dumps(value, default=str))


def collect_documents(session_or_clients: Any = None) -> tuple[str, dict[str, dict]]:
    """Run the describe calls; returns ``(region, {"Vpcs.json": {"Vpcs": [...]}, ...})``.

    Raises :class:`CollectError` naming the call that failed.
    """
    ec2, lambda_client = _clients(session_or_clients)
    region = ec2.meta.region_name or "us-east-1"
    documents: dict[str, dict] = {}
    for key, method in EC2_CALLS:
        items = _call(ec2, method, key)
        if key == "ManagedPrefixLists":
            for pl in items:
                if pl.get("AddressFamily", "IPv4") == "IPv4":
                    pl["Entries"] = _call(ec2, "get_managed_prefix_list_entries", "Entries", PrefixListId=pl["PrefixListId"])
        documents[f"{key}.json"] = {key: _plain(items)}
    if lambda_client is not None:
        documents["Functions.json"] = {"Functions": _plain(_call(lambda_client, "list_functions", "Functions",
                                                                  FunctionVersion="ALL"))}
    return region, documents


def _parse(region: str, documents: dict[str, dict], repair: bool) -> tuple[Topology, SnapshotReport]:
    return parse_aws_documents(((f"{region}/{name}", doc) for name, doc in documents.items()),
                               source=f"boto3 {region}", repair=repair)


def read_boto3(session_or_clients: Any = None, *, repair: bool = False) -> tuple[Topology, SnapshotReport]:
    """The Topology of what boto3 sees, with its report (what was not emulated).

    ``repair=True``: the lenient load of :func:`~hyperplane.formats.snapshot_reader.read_aws_snapshot`
    (moto's NAT gateway addresses outside their subnet are re-allocated, with a warning)."""
    region, documents = collect_documents(session_or_clients)
    return _parse(region, documents, repair)


def from_boto3(session_or_clients: Any = None, *, warn: bool = True, repair: bool = False) -> Topology:
    """The Topology of what boto3 sees (one region); one warning lists what was skipped;
    ``repair`` as in :func:`read_boto3`."""
    topology, report = read_boto3(session_or_clients, repair=repair)
    if warn:
        warn_skipped(report)
    return topology


def _readdress(documents: dict[str, dict], readdressed: dict[str, dict[str, str]]) -> None:
    """Write re-allocated NAT gateway addresses into the documents: the gateway's addresses
    and its ENI's, so that the folder loads as it was repaired, without ``repair``."""
    enis: dict[str, dict[str, str]] = {}
    for nat in documents.get("NatGateways.json", {}).get("NatGateways", []):
        moved = readdressed.get(nat.get("NatGatewayId"), {})
        for address in nat.get("NatGatewayAddresses", []):
            if address.get("PrivateIp") in moved:
                address["PrivateIp"] = moved[address["PrivateIp"]]
                if isinstance(address.get("NetworkInterfaceId"), str):
                    enis.setdefault(address["NetworkInterfaceId"], {}).update(moved)
    for eni in documents.get("NetworkInterfaces.json", {}).get("NetworkInterfaces", []):
        moved = enis.get(eni.get("NetworkInterfaceId"), {})
        if eni.get("PrivateIpAddress") in moved:
            eni["PrivateIpAddress"] = moved[eni["PrivateIpAddress"]]
        for address in eni.get("PrivateIpAddresses", []):
            if address.get("PrivateIpAddress") in moved:
                address["PrivateIpAddress"] = moved[address["PrivateIpAddress"]]


def write_snapshot(session_or_clients: Any, folder: str | os.PathLike[str], *, repair: bool = False) -> list[Path]:
    """Collect and write ``folder/<region>/<Kind>.json``, the layout ``Network.load(folder)``
    reads (what ``hyperplane snapshot DIR`` does). Returns the files written.

    ``repair=True`` (``hyperplane snapshot --repair``) writes what the lenient load makes of
    the account: a NAT gateway address outside its subnet (moto's) is re-allocated from the
    subnet in ``NatGateways.json`` and ``NetworkInterfaces.json``, with one
    :class:`~hyperplane.errors.RepairWarning` per gateway; the folder then loads without it.
    Without ``repair`` the documents are written as collected."""
    region, documents = collect_documents(session_or_clients)
    failed: TopologyError | None = None
    if repair:
        try:
            _topology, report = _parse(region, documents, True)
            _readdress(documents, report.readdressed)
        except TopologyError as exc:  # not repairable: keep what was collected, then say why
            failed = exc
    region_dir = Path(folder) / region
    region_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in documents.items():
        path = region_dir / name
        path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        written.append(path)
    if failed is not None:
        raise failed
    return written
