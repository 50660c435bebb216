"""What a describe-* snapshot holds and what of it was loaded: the kinds read, skipped
and ignored, the :class:`SnapshotReport` and its one :class:`SnapshotWarning`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Mapping

from hyperplane.formats._source import caller_level

#: The managed policy every function's role is assumed to have (IAM is not in the snapshot).
SNAPSHOT_ROLE_POLICIES = ("AWSLambdaVPCAccessExecutionRole",)

#: Top-level keys that are read, in the order they are assembled.
READ_KINDS = (
    "Vpcs", "Subnets", "RouteTables", "SecurityGroups", "NetworkAcls", "InternetGateways",
    "NatGateways", "VpcEndpoints", "PrefixLists", "ManagedPrefixLists", "NetworkInterfaces",
    "Reservations", "Addresses", "VpcPeeringConnections", "Functions", "AvailabilityZones",
    "TransitGateways", "TransitGatewayAttachments", "TransitGatewayVpcAttachments", "TransitGatewayRouteTables",
    "TransitGatewayStaticRoutes", "TransitGatewayPropagations",
)

#: Known top-level keys of things the emulator does not model (skipped, reported by count).
SKIPPED_KINDS: Mapping[str, str] = {
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
    "ServiceDetails": "VPC endpoint services",
    "ServiceNames": "VPC endpoint service names",
    "DhcpOptions": "DHCP option sets",
    "FlowLogs": "flow logs",
    "Images": "AMIs",
    "Volumes": "EBS volumes",
    "KeyPairs": "key pairs",
    "Tags": "tags",
}


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
        ignored: known keys without network behaviour (endpoint service catalogues, DHCP
            option sets, ...), with counts; not warned about.
        notes: decisions about single resources (an ENI skipped, a route made a blackhole, ...).
        regions: the regions seen (from the subnets' availability zones).
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


def warn_skipped(report: SnapshotReport) -> None:
    """Issue one :class:`SnapshotWarning` when the report skipped something."""
    if report.skipped or report.notes:
        warnings.warn(report.summary(), SnapshotWarning, stacklevel=caller_level())

