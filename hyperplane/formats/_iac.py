"""What the infrastructure-as-code readers (CloudFormation, Terraform) share.

- :func:`synthesized_id`: the physical id of a resource a template only names by its logical id
  (``PrivateSubnetA`` -> ``subnet-`` + 17 hex digits of a SHA-256 of scope and logical id), so
  two loads of the same input give the same ids and two stacks (scopes) never collide;
- :func:`first_free_address`: the private address AWS gives a resource whose address the input
  does not fix (an RDS instance, a NAT gateway): the lowest address of its subnet that is not
  reserved and not taken. AWS reserves five addresses of every subnet: the network address,
  +1 (the VPC router), +2 (the DNS resolver), +3 (future use) and the broadcast address;
- :class:`NotEmulated`: the data-plane resources an input holds that the emulator does not
  model (load balancers, Network Firewall, transit gateways, ...), counted by kind and reported
  once per load, as snapshots are: one :class:`~hyperplane.formats.snapshot_report.SnapshotWarning`
  and a :class:`~hyperplane.formats.snapshot_report.SnapshotReport` with ``skipped`` filled.
  Resources outside the data plane (IAM, S3, queues, ...) are not counted at all.
"""

from __future__ import annotations

import hashlib
import warnings
from ipaddress import IPv4Address, IPv4Network
from typing import Iterable

from hyperplane.formats._source import caller_level
from hyperplane.formats.snapshot_report import SnapshotReport, SnapshotWarning
from hyperplane.model.resources import next_free_address

__all__ = ["NotEmulated", "first_free_address", "synthesized_id"]

#: Hex digits after the prefix: AWS's own ids have 17 (``subnet-0a1b2c3d4e5f67890``).
ID_DIGITS = 17


def synthesized_id(prefix: str, logical_id: str, scope: str = "") -> str:
    """``prefix-`` and 17 hex digits of a stable hash of ``scope`` and ``logical_id``.

    ``scope`` keeps apart resources of the same logical id in different stacks or modules
    (a stack name, a Terraform module address); the hash does not depend on the process
    (``hash()`` would), so ids are the same across loads and machines.
    """
    digest = hashlib.sha256(f"{scope}\x00{logical_id}".encode()).hexdigest()
    return f"{prefix}-{digest[:ID_DIGITS]}"


def first_free_address(cidr: str | IPv4Network, taken: Iterable[str | IPv4Address]) -> str:
    """The first address AWS would allocate in ``cidr`` that is not in ``taken``.

    The network address and the three after it (router, DNS, reserved) and the broadcast
    address are never given. Raises :class:`~hyperplane.errors.SubnetOutOfAddresses` when the
    subnet is full.
    """
    network = cidr if isinstance(cidr, IPv4Network) else IPv4Network(cidr)
    used = {a if isinstance(a, IPv4Address) else IPv4Address(a) for a in taken}
    return str(next_free_address(network, used))


class NotEmulated:
    """The data-plane resources of one input that are not emulated, counted by kind.

    ``add("AWS::ElasticLoadBalancingV2::LoadBalancer (load balancers)")`` per resource met, then
    ``report()`` once at the end of the load: it warns once when anything was counted and
    returns the :class:`SnapshotReport` (``source``, ``skipped``, ``notes``).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.skipped: dict[str, int] = {}
        self.notes: list[str] = []

    def add(self, kind: str, count: int = 1) -> None:
        if count:
            self.skipped[kind] = self.skipped.get(kind, 0) + count

    def note(self, text: str) -> None:
        """A decision about one resource worth telling (e.g. a property that was not read)."""
        if text not in self.notes:
            self.notes.append(text)

    def summary(self) -> str:
        lines = [f"{self.source}: not emulated (skipped): "
                 + ", ".join(f"{k}: {n}" for k, n in self.skipped.items())] if self.skipped else []
        lines.extend(f"{self.source}: note: {n}" for n in self.notes)
        return "\n".join(lines)

    def report(self) -> SnapshotReport:
        result = SnapshotReport(source=self.source, skipped=dict(self.skipped), notes=list(self.notes))
        if self.skipped or self.notes:
            warnings.warn(self.summary(), SnapshotWarning, stacklevel=caller_level())
        return result
