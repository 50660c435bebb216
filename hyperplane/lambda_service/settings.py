"""Every number the Lambda layer uses, and the checks that refuse a bad one at construction.

:class:`LambdaSettings` is frozen: a service reads it on every invocation and event, so a value
that cannot work (a negative delay, a port range upside down, an environment network smaller
than a /24) is refused when the settings are made, naming the field, not later deep inside.
Defaults are AWS's documented numbers where AWS gives one, *chosen* otherwise (SPEC §2).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from ipaddress import IPv4Network

from hyperplane.tables.nat import HYPERPLANE_ENI_TIMEOUTS, Timeouts

__all__ = ["LambdaSettings", "is_number"]


@dataclass(frozen=True)
class LambdaSettings:
    """Every number the Lambda layer uses (SPEC §2); all configurable, all in seconds or counts.

    Attributes:
        eni_creation_seconds: how long a new Hyperplane ENI is ``pending`` before the function
            (or the update) that needed it can use it. Default 60 s: AWS says creating the ENI
            takes "about a minute to several minutes".
        overflow_eni_creation_seconds: the same for an overflow ENI, created when a pool's
            addresses all hold ``max_connections_per_eni`` connections. Default 0 s (*chosen*:
            AWS documents no number); new connections are refused with the table's capacity
            status until it is ready.
        idle_reclaim_seconds: a VPC function not invoked for this long loses its Hyperplane ENIs
            and becomes ``Inactive`` / ``Idle``. Default 14 days (*chosen*: AWS says
            "consecutive weeks").
        eni_deletion_seconds: an ENI that no function or published version uses any more is
            deleted this long after its last user left (status ``deleting`` meanwhile). Default
            20 minutes: AWS says "within 20 minutes".
        max_enis_per_vpc: Hyperplane ENIs per VPC (pending, available, deleting and orphaned
            ones count; plain ENIs of the topology do not). Default 500, Lambda's quota of
            "elastic network interfaces per VPC". Beyond it: ``EniLimitExceeded``.
        max_connections_per_eni: connections one Hyperplane ENI carries before Lambda adds an
            overflow ENI to its pool. Default 65,000 (AWS).
        ports: the ports V2N allocates on an ENI, inclusive. Default 1024-65535, Lambda's
            ephemeral range (it matters for NACL rules on the return path).
        timeouts: idle timeouts of V2N connections (:data:`hyperplane.tables.nat.HYPERPLANE_ENI_TIMEOUTS`:
            TCP established 350 s, TCP opening/closing 120 s, UDP 30 s, UDP with replies 180 s).
        execution_environment_network: where execution environments' source addresses come
            from; one /24 per function (so a /16 holds 256 functions). Default 169.254.0.0/16
            (*chosen*: link-local, it never clashes with a VPC CIDR).
    """

    eni_creation_seconds: float = 60.0
    overflow_eni_creation_seconds: float = 0.0
    idle_reclaim_seconds: float = 14 * 86400.0
    eni_deletion_seconds: float = 20 * 60.0
    max_enis_per_vpc: int = 500
    max_connections_per_eni: int = 65_000
    ports: tuple[int, int] = (1024, 65535)
    timeouts: Timeouts = HYPERPLANE_ENI_TIMEOUTS
    execution_environment_network: str = "169.254.0.0/16"

    def __post_init__(self) -> None:
        for name in ("eni_creation_seconds", "overflow_eni_creation_seconds", "eni_deletion_seconds"):
            value = getattr(self, name)
            if not is_number(value) or not math.isfinite(value) or value < 0:
                raise ValueError(f"LambdaSettings.{name} must be a finite number of seconds >= 0, not {value!r}")
        value = self.idle_reclaim_seconds
        if not is_number(value) or math.isnan(value) or value <= 0:
            raise ValueError(f"LambdaSettings.idle_reclaim_seconds must be > 0 seconds (inf = never), not {value!r}")
        for name in ("max_enis_per_vpc", "max_connections_per_eni"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LambdaSettings.{name} must be a positive int, not {value!r}")
        ports = self.ports
        if not (isinstance(ports, tuple) and len(ports) == 2 and all(isinstance(p, int) for p in ports)
                and 1 <= ports[0] <= ports[1] <= 65535):
            raise ValueError(f"LambdaSettings.ports must be (first, last) with 1 <= first <= last <= 65535, not {ports!r}")
        if not isinstance(self.timeouts, Timeouts):
            raise ValueError(f"LambdaSettings.timeouts must be a hyperplane.tables.nat.Timeouts, not {self.timeouts!r}")
        try:
            network = IPv4Network(self.execution_environment_network)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"LambdaSettings.execution_environment_network: {exc}") from None
        if network.overlaps(IPv4Network("0.0.0.0/8")):
            raise ValueError(f"LambdaSettings.execution_environment_network {network} overlaps 0.0.0.0/8, "
                             "which is no source address (and small ints name environments by number)")
        if network.prefixlen > 24:
            raise ValueError(f"LambdaSettings.execution_environment_network {network} is smaller than a /24 "
                             "(each function needs a /24 of execution environment addresses)")

    @functools.cached_property  # asked on every invocation
    def environment_network(self) -> IPv4Network:
        return IPv4Network(self.execution_environment_network)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
