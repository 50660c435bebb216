"""Lambda functions and the Hyperplane ENIs they reach their VPC through (SPEC §2).

:class:`LambdaService` plays the part of the Lambda control plane for one account, on a virtual
clock: it creates functions as AWS would (``Pending`` while their Hyperplane ENIs are being
created, ``Failed`` with AWS's reason codes when they cannot be), shares one Hyperplane ENI per
(subnet, security-group set) pair between every function and published version that uses it,
reclaims the ENIs of idle functions, deletes unused ENIs some time after their last user left
(or leaves them orphaned when the execution role is gone), and says which pool of ENIs carries
each invocation.

Packets never pass through this module. Each (subnet, SG set) pair is a
:class:`HyperplaneEniPool` that owns the V2N :class:`~hyperplane.nat.ConnectionTable` of its
addresses; the packet pipeline calls ``pool.table.process`` and the table calls back
:meth:`HyperplaneEniPool._add_overflow_eni` when every address of the pool holds its maximum of
connections (65,000), which is how Lambda's overflow ENIs appear.

Time. Nothing reads the wall clock. Every method that changes something takes ``now`` (seconds,
``None`` = the service's current time) and first moves the clock there with
:meth:`LambdaService.advance`, which applies due lifecycle events in time order; time never
goes backwards.

Execution environments. Each function owns blocks of source addresses inside
``LambdaSettings.execution_environment_network`` (169.254.0.0/16 by default): the *i*-th function
created gets the *i*-th /24 (the topology's functions first, in declaration order; a deleted
function's block is not reused), and its environment *k* (0-253) is ``block + 1 + k``. A function
that needs more environments (a capture of a busy function) gets further /24s as it needs them,
taken from the top of the network downward: environment *k* is host ``1 + k % 254`` of its
``k // 254``-th block. An environment is bound for its lifetime to ONE subnet of the function's ``VpcConfig``:
``subnet_ids[zlib.crc32(f"{name}:{environment_ip}".encode()) % len(subnet_ids)]`` (dotted
address, subnets in the order the config lists them).
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import math
import zlib
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np

from hyperplane.errors import HyperplaneError, SubnetOutOfAddresses, UnknownResource
from hyperplane.model import (
    MAX_SECURITY_GROUPS_PER_ENI,
    MAX_SUBNETS_PER_FUNCTION,
    ExecutionRole,
    FunctionVersion,
    LambdaFunction,
    Topology,
    VpcConfig,
)
from hyperplane.nat import HYPERPLANE_ENI_TIMEOUTS, ConnectionTable, NatStatus, Timeouts

__all__ = [
    "LambdaSettings", "LambdaService", "FunctionState", "HyperplaneEni", "HyperplaneEniPool",
    "Invocation", "InvocationRefused", "LambdaError", "ClockError", "ResourceConflict",
    "InvalidEnvironment", "PoolKey",
    # states and reason codes
    "PENDING", "ACTIVE", "INACTIVE", "FAILED", "IN_PROGRESS", "SUCCESSFUL",
    "CREATING", "IDLE", "RESTORING", "ENI_LIMIT_EXCEEDED", "INSUFFICIENT_ROLE_PERMISSIONS",
    "SUBNET_OUT_OF_IP_ADDRESSES", "INVALID_SUBNET", "INVALID_SECURITY_GROUP", "REASON_CODES",
    "ENI_PENDING", "ENI_AVAILABLE", "ENI_DELETING", "ENI_DELETED", "ENI_ORPHANED",
    "FUNCTION_PENDING", "FUNCTION_INACTIVE", "FUNCTION_FAILED", "CREATE_ENI_PERMISSIONS",
]

# --------------------------------------------------------------------------------------------
# vocabulary (AWS's own words: API_FunctionConfiguration State / LastUpdateStatus / reason codes)

PENDING, ACTIVE, INACTIVE, FAILED = "Pending", "Active", "Inactive", "Failed"
IN_PROGRESS, SUCCESSFUL = "InProgress", "Successful"  # LastUpdateStatus (and FAILED)

CREATING = "Creating"
IDLE = "Idle"
RESTORING = "Restoring"
ENI_LIMIT_EXCEEDED = "EniLimitExceeded"
INSUFFICIENT_ROLE_PERMISSIONS = "InsufficientRolePermissions"
SUBNET_OUT_OF_IP_ADDRESSES = "SubnetOutOfIPAddresses"
INVALID_SUBNET = "InvalidSubnet"
INVALID_SECURITY_GROUP = "InvalidSecurityGroup"
REASON_CODES = frozenset({
    CREATING, IDLE, RESTORING, ENI_LIMIT_EXCEEDED, INSUFFICIENT_ROLE_PERMISSIONS,
    SUBNET_OUT_OF_IP_ADDRESSES, INVALID_SUBNET, INVALID_SECURITY_GROUP,
})

# Hyperplane ENI statuses.
ENI_PENDING = "pending"  # being created: not usable before ready_at
ENI_AVAILABLE = "available"  # in use by at least one function or version
ENI_DELETING = "deleting"  # no user left: deleted at delete_at unless a user comes back first
ENI_DELETED = "deleted"  # gone (no longer listed); its address is free again
ENI_ORPHANED = "orphaned"  # its deletion could not run (role gone): stays until deleted by hand

# Why an invocation was refused (InvocationRefused.reason_code), and the Invoke API error.
FUNCTION_PENDING = "FUNCTION_PENDING"
FUNCTION_INACTIVE = "FUNCTION_INACTIVE"
FUNCTION_FAILED = "FUNCTION_FAILED"
_INVOKE_ERRORS = {
    PENDING: "ResourceConflictException",
    INACTIVE: "ResourceNotReadyException",
    ENI_LIMIT_EXCEEDED: "ENILimitReachedException",
    INSUFFICIENT_ROLE_PERMISSIONS: "EC2AccessDeniedException",
    SUBNET_OUT_OF_IP_ADDRESSES: "SubnetIPAddressLimitReachedException",
    INVALID_SUBNET: "InvalidSubnetIDException",
    INVALID_SECURITY_GROUP: "InvalidSecurityGroupIDException",
}

#: What Lambda needs from the execution role to create a function's Hyperplane ENIs (SPEC §2);
#: ``ec2:DeleteNetworkInterface`` is needed later, when an unused ENI is deleted.
CREATE_ENI_PERMISSIONS: tuple[str, ...] = ("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces")
DELETE_ENI_PERMISSION = "ec2:DeleteNetworkInterface"

LATEST = "$LATEST"
_ENVIRONMENT_BLOCK = 256  # addresses per function: a /24
_ENVIRONMENTS_PER_FUNCTION = 254  # block + 1 .. block + 254
# environment numbers stay below any address as an int (the network cannot overlap 0.0.0.0/8)
_MAX_ENVIRONMENT_NUMBER = 1 << 24

#: (subnet id, security group set): what identifies one Hyperplane ENI pool.
PoolKey = tuple[str, frozenset[str]]


# --------------------------------------------------------------------------------------------
# errors


class LambdaError(HyperplaneError):
    """A request the Lambda service refuses (unknown environment, conflicting update, ...)."""


class ClockError(LambdaError, ValueError):
    """The virtual clock was asked to go backwards (or to a time that is not a number)."""


class ResourceConflict(LambdaError):
    """AWS's ResourceConflictException: the function is Pending or an update is in progress."""


class InvalidEnvironment(LambdaError, ValueError):
    """An execution environment address that does not belong to the function."""


# --------------------------------------------------------------------------------------------
# settings


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
        timeouts: idle timeouts of V2N connections (:data:`hyperplane.nat.HYPERPLANE_ENI_TIMEOUTS`:
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
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise ValueError(f"LambdaSettings.{name} must be a finite number of seconds >= 0, not {value!r}")
        value = self.idle_reclaim_seconds
        if not _is_number(value) or math.isnan(value) or value <= 0:
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
            raise ValueError(f"LambdaSettings.timeouts must be a hyperplane.nat.Timeouts, not {self.timeouts!r}")
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


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------------
# Hyperplane ENIs and their pools


class HyperplaneEni:
    """One Hyperplane ENI: a private address in a subnet, carrying a security group set.

    Attributes:
        id: ``eni-`` + 17 hex digits, deterministic (the service's seed and a counter), or the
            id of a ``kind: lambda`` ENI of the topology that it took over.
        subnet_id, vpc_id: where it lives.
        security_group_ids: the groups it carries, sorted.
        private_ip: its address (dotted string); ``private_ip_int`` as the records hold it.
        status: ``pending`` (until ``ready_at``), ``available``, ``deleting`` (no user left;
            deleted at ``delete_at``), ``deleted`` or ``orphaned``.
        created_at, ready_at: virtual times; ``deleted_at`` once deleted or orphaned.
        overflow: created because the pool's other ENIs held their maximum of connections.
        pool: the :class:`HyperplaneEniPool` it belongs to.
    """

    interface_type = "lambda"  # what EC2 calls a Hyperplane ENI

    def __init__(self, eni_id: str, pool: HyperplaneEniPool, private_ip: IPv4Address, created_at: float,
                 ready_at: float, overflow: bool) -> None:
        self.id = eni_id
        self.pool = pool
        self.subnet_id = pool.subnet_id
        self.vpc_id = pool.vpc_id
        self.security_group_ids = pool.security_group_ids
        self.private_ip = str(private_ip)
        self.private_ip_int = int(private_ip)
        self.created_at = created_at
        self.ready_at = ready_at
        self.overflow = overflow
        self.status = ENI_PENDING
        self.deleted_at: float | None = None

    @property
    def delete_at(self) -> float | None:
        """When a ``deleting`` ENI will be deleted (``None`` otherwise)."""
        return self.pool.delete_at if self.status == ENI_DELETING else None

    @property
    def exists(self) -> bool:
        """Not deleted (an orphaned ENI still exists: it holds its address)."""
        return self.status != ENI_DELETED

    @property
    def connections(self) -> int:
        """Live connections on this address, from its pool's connection table."""
        if self.status in (ENI_DELETED, ENI_ORPHANED):
            return 0
        for stats in self.pool.table.stats():
            if stats.address == self.private_ip:
                return stats.live
        return 0

    @property
    def functions(self) -> list[str]:
        """The functions and versions using it: ``["orders", "orders:1", "report"]``, sorted."""
        if self.status in (ENI_DELETED, ENI_ORPHANED):
            return []
        return self.pool.functions

    def __repr__(self) -> str:
        extra = " overflow" if self.overflow else ""
        return (f"<HyperplaneEni {self.id} {self.private_ip} {self.subnet_id} "
                f"{','.join(self.security_group_ids)} {self.status}{extra}>")


class HyperplaneEniPool:
    """The Hyperplane ENIs of one (subnet, security group set) pair and their connection table.

    The first ENI is the pair's ENI; more are added when every address holds
    ``max_connections_per_eni`` connections (or a destination has no free port left).

    Attributes:
        key: ``(subnet_id, frozenset(security_group_ids))``.
        subnet_id, vpc_id, security_group_ids (sorted tuple).
        enis: the pool's ENIs, the first one first.
        table: the V2N :class:`~hyperplane.nat.ConnectionTable` translating to their addresses.
        overflow_refusal: why the last overflow ENI could not be created (``None`` if it could).
    """

    def __init__(self, service: LambdaService, key: PoolKey, vpc_id: str, seed: int) -> None:
        self._service = service
        self.key = key
        self.subnet_id = key[0]
        self.vpc_id = vpc_id
        self.security_group_ids: tuple[str, ...] = tuple(sorted(key[1]))
        self.enis: list[HyperplaneEni] = []
        settings = service.settings
        self.table = ConnectionTable.hyperplane_eni(
            (), on_full=self._add_overflow_eni, max_connections_per_address=settings.max_connections_per_eni,
            ports=settings.ports, timeouts=settings.timeouts, seed=seed,
        )
        self.users: Counter[str] = Counter()  # "orders" / "orders:1" -> how many configs name the pair
        self.delete_at: float | None = None
        self.deletion_role: ExecutionRole | None = None
        self._deletion_token = 0
        self.live = True  # False once deleted (or orphaned): a new pool replaces it
        self.overflow_refusal: str | None = None

    @property
    def eni(self) -> HyperplaneEni:
        """The pair's first ENI."""
        return self.enis[0]

    @property
    def ready_at(self) -> float:
        return self.enis[0].ready_at

    def ready(self, now: float) -> bool:
        """Whether the pair's first ENI exists and is ready at ``now``."""
        return self.live and now >= self.enis[0].ready_at

    @property
    def functions(self) -> list[str]:
        """Functions and versions using the pool (``name`` for $LATEST, ``name:N`` for versions)."""
        return sorted(user for user, count in self.users.items() if count > 0)

    @property
    def addresses(self) -> list[str]:
        return [eni.private_ip for eni in self.enis]

    def _add_overflow_eni(self, table: ConnectionTable, now: float, status: NatStatus) -> bool:
        """The table's ``on_full``: add an ENI with a new address of the same subnet.

        Returns False (the table then reports ``status`` for the packet) when the pool is gone,
        the VPC holds ``max_enis_per_vpc`` Hyperplane ENIs, or the subnet has no free address.
        """
        return self._service._add_overflow_eni(self, float(now), status)

    def __repr__(self) -> str:
        return (f"<HyperplaneEniPool {self.subnet_id} {','.join(self.security_group_ids)} "
                f"{self.addresses} users={self.functions}>")


# --------------------------------------------------------------------------------------------
# functions and invocations


class FunctionState:
    """A function as Lambda's GetFunctionConfiguration shows it, kept up to date by the service.

    Attributes:
        name, role: the function and its execution role.
        state: ``Pending | Active | Inactive | Failed``.
        state_reason_code: ``Creating``, ``Idle``, ``Restoring``, ``EniLimitExceeded``,
            ``InsufficientRolePermissions``, ``SubnetOutOfIPAddresses``, ``InvalidSubnet``,
            ``InvalidSecurityGroup`` or ``None``; ``state_reason``: a sentence.
        last_update_status: ``InProgress | Successful | Failed`` (InProgress while it is being
            created, too); ``last_update_status_reason_code`` / ``_reason`` when Failed.
        vpc_config: the configuration $LATEST runs with now (during an update: the old one;
            the new one is ``pending_vpc_config``).
        versions: published versions, each with its own VpcConfig.
        created_at, last_invoked (``None`` if never invoked), last_modified.
        environment_network: its first /24 of execution environment addresses (environments
            0-253; later ones are in further blocks, see the module docstring).
    """

    def __init__(self, service: LambdaService, fn: LambdaFunction, index: int, now: float) -> None:
        self._service = service
        self.name = fn.name
        self.role = fn.role
        self.description = fn.description
        self.index = index
        self.vpc_config: VpcConfig | None = fn.vpc_config
        self.pending_vpc_config: VpcConfig | None = None
        self.updating = False
        self._versions: dict[str, VpcConfig | None] = {v.version: v.vpc_config for v in fn.versions}
        self.state = PENDING
        self.state_reason_code: str | None = CREATING
        self.state_reason: str | None = "The function is being created."
        self.last_update_status = IN_PROGRESS
        self.last_update_status_reason_code: str | None = None
        self.last_update_status_reason: str | None = None
        self.created_at = now
        self.last_modified = now
        self.last_invoked: float | None = None
        self._activity = now  # last invocation, creation or restore: what idleness counts from
        self._idle_token = 0
        self._held: Counter[tuple[str, PoolKey]] = Counter()
        self.deleted = False
        self._blocks = [index]  # its /24s of environment addresses, by ordinal (see the module docstring)

    # -- what the function is --------------------------------------------------------------

    @property
    def versions(self) -> tuple[FunctionVersion, ...]:
        return tuple(FunctionVersion(v, cfg) for v, cfg in self._versions.items())

    def version_config(self, qualifier: str) -> VpcConfig | None:
        """The VpcConfig of ``$LATEST`` (as invocations use it now) or of a published version."""
        if qualifier in (LATEST, ""):
            return self.vpc_config
        try:
            return self._versions[qualifier]
        except KeyError:
            raise UnknownResource(f"{self.name}:{qualifier}", "function version") from None

    @property
    def is_vpc_attached(self) -> bool:
        return self.vpc_config is not None

    @property
    def environment_network(self) -> IPv4Network:
        base = int(self._service.settings.environment_network.network_address) + self.index * _ENVIRONMENT_BLOCK
        return IPv4Network((base, 24))

    # -- what it uses ----------------------------------------------------------------------

    @property
    def pools(self) -> list[HyperplaneEniPool]:
        """The pools $LATEST invocations use now, one per subnet of ``vpc_config`` (empty
        unless Active)."""
        if self.state != ACTIVE or self.vpc_config is None:
            return []
        return [self._service._pools[k] for k in _pool_keys(self.vpc_config)]

    @property
    def hyperplane_enis(self) -> list[HyperplaneEni]:
        """Every ENI of every pool the function holds: $LATEST (during an update the old and
        the new pairs), its published versions; the ENIs whose ``functions`` name it."""
        seen: dict[PoolKey, None] = {}
        for (_user, key), count in self._held.items():
            if count > 0:
                seen.setdefault(key)
        out: list[HyperplaneEni] = []
        for key in seen:
            pool = self._service._pools.get(key)
            if pool is not None:
                out.extend(e for e in pool.enis if e.exists)
        return out

    def subnet_for(self, environment_ip: str | int, qualifier: str = LATEST) -> str | None:
        """The subnet an execution environment is bound to (``None`` without VpcConfig)."""
        config = self.version_config(qualifier)
        if config is None:
            return None
        return _subnet_for(self.name, str(IPv4Address(environment_ip)), config)

    def configuration(self) -> dict[str, Any]:
        """The fields of GetFunctionConfiguration this emulator models, with AWS's key names."""
        config = self.vpc_config
        vpc: dict[str, Any] = {"SubnetIds": [], "SecurityGroupIds": [], "VpcId": ""}
        if config is not None:
            vpc = {"SubnetIds": list(config.subnet_ids), "SecurityGroupIds": list(config.security_group_ids),
                   "VpcId": self._service._vpc_of(config) or ""}
        out: dict[str, Any] = {"FunctionName": self.name, "Role": self.role.arn, "VpcConfig": vpc,
                               "State": self.state, "LastUpdateStatus": self.last_update_status}
        for key, value in (("StateReason", self.state_reason), ("StateReasonCode", self.state_reason_code),
                           ("LastUpdateStatusReason", self.last_update_status_reason),
                           ("LastUpdateStatusReasonCode", self.last_update_status_reason_code)):
            if value is not None:
                out[key] = value
        return out

    def __repr__(self) -> str:
        reason = f"/{self.state_reason_code}" if self.state_reason_code else ""
        return f"<FunctionState {self.name} {self.state}{reason} LastUpdateStatus={self.last_update_status}>"


@dataclass(frozen=True)
class Invocation:
    """An accepted invocation: where its packets go.

    Attributes:
        function: the function name.  qualifier: ``$LATEST`` or a version number.
        environment_ip: the execution environment's source address (dotted).
        pool: the Hyperplane ENI pool (subnet, SG set) whose table translates its packets, or
            ``None`` for a function without VpcConfig (it reaches only the internet).
        subnet_id: the pool's subnet (``None`` without VpcConfig).
    """

    function: str
    environment_ip: str
    pool: HyperplaneEniPool | None
    subnet_id: str | None
    qualifier: str = LATEST
    accepted = True

    @property
    def environment_ip_int(self) -> int:
        return int(IPv4Address(self.environment_ip))

    @property
    def security_group_ids(self) -> tuple[str, ...]:
        return self.pool.security_group_ids if self.pool is not None else ()


@dataclass(frozen=True)
class InvocationRefused:
    """An invocation Lambda refused, and why.

    Attributes:
        reason_code: ``FUNCTION_PENDING``, ``FUNCTION_INACTIVE`` (this invocation started the
            restore) or ``FUNCTION_FAILED``.
        reason: a sentence (for a failed function, its state reason).
        state, state_reason_code: the function's state when it was invoked.
        aws_error: the error AWS's Invoke API returns (``ResourceConflictException``,
            ``ResourceNotReadyException``, ``ENILimitReachedException``, ...).
    """

    function: str
    environment_ip: str
    reason_code: str
    reason: str
    state: str
    state_reason_code: str | None
    aws_error: str
    qualifier: str = LATEST
    accepted = False


InvocationResult = Union[Invocation, InvocationRefused]


# --------------------------------------------------------------------------------------------
# helpers


class _Failure(Exception):
    """Lambda could not set up a VPC config: a reason code and a sentence."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _pool_keys(config: VpcConfig | None) -> list[PoolKey]:
    if config is None:
        return []
    groups = frozenset(config.security_group_ids)
    return [(subnet_id, groups) for subnet_id in config.subnet_ids]


def _subnet_for(name: str, environment_ip: str, config: VpcConfig) -> str:
    subnets = config.subnet_ids
    return subnets[zlib.crc32(f"{name}:{environment_ip}".encode()) % len(subnets)]


def _normalize_config(config: VpcConfig | Mapping[str, Any] | None) -> VpcConfig | None:
    """A VpcConfig, a dict with ``subnet_ids``/``security_group_ids``, or None; empty = None."""
    if config is None:
        return None
    if isinstance(config, Mapping):
        config = VpcConfig(tuple(config.get("subnet_ids", ())), tuple(config.get("security_group_ids", ())))
    if not isinstance(config, VpcConfig):
        raise TypeError(f"vpc_config must be a VpcConfig, a mapping or None, not {type(config).__name__}")
    if not config.subnet_ids and not config.security_group_ids:
        return None  # AWS: empty lists detach the function from its VPC
    return VpcConfig(tuple(config.subnet_ids), tuple(config.security_group_ids))


def _role_name(role: str | ExecutionRole) -> str:
    if isinstance(role, ExecutionRole):
        return role.name
    return str(role).rsplit("/", 1)[-1]


def _split_qualifier(name: str) -> tuple[str, str]:
    base, _, qualifier = name.partition(":")
    return base, (qualifier or LATEST)


# --------------------------------------------------------------------------------------------
# the service


class LambdaService:
    """The Lambda control plane of one account: functions, Hyperplane ENIs, lifecycle.

    ``LambdaService(topology, settings, now=0.0)`` creates every function of the topology at
    ``now`` as AWS would (VPC functions ``Pending`` until their ENIs are ready). With
    ``ready=True`` (a snapshot of a running account) every ENI is available and every function
    that can be created is ``Active`` at once. ``seed`` makes ENI ids differ between services.

    ``topology`` is a plain attribute: assign a new :class:`~hyperplane.model.Topology` when the
    network changes; Hyperplane ENIs stay where they are.
    """

    def __init__(self, topology: Topology, settings: LambdaSettings | None = None, now: float = 0.0,
                 *, ready: bool = False, seed: int = 0) -> None:
        self.topology = topology
        self.settings = settings if settings is not None else LambdaSettings()
        if not isinstance(self.settings, LambdaSettings):
            raise TypeError(f"settings must be a LambdaSettings, not {type(self.settings).__name__}")
        self._now = self._check_time(now, "now")
        self._seed = seed
        self._functions: dict[str, FunctionState] = {}
        self._by_index: dict[int, FunctionState] = {}  # environment block -> its function
        self._next_index = 0
        # further environment blocks are taken from the top of the network downward
        self._top_block = self.settings.environment_network.num_addresses // _ENVIRONMENT_BLOCK - 1
        self._pools: dict[PoolKey, HyperplaneEniPool] = {}
        self._enis: dict[str, HyperplaneEni] = {}  # every ENI ever created, in creation order
        self._by_address: dict[int, list[HyperplaneEni]] = {}  # existing ENIs by address
        self._eni_counter = 0
        self._pool_counter = 0
        self._events: list[tuple[float, int, str, Any]] = []
        self._event_seq = 0
        self._deleted_roles: set[str] = set()
        self._generation = 0
        # ENIs of kind "lambda" in the topology (a snapshot of a running account): the first
        # pool created for their pair takes them over, id and address.
        self._adoptable: dict[PoolKey, list[Any]] = {}
        for eni in topology.network_interfaces.values():
            if eni.kind == "lambda":
                self._adoptable.setdefault((eni.subnet_id, frozenset(eni.security_group_ids)), []).append(eni)
        for fn in topology.functions.values():
            self._create(fn, self._now, ready=ready)

    # -- clock -----------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """The virtual time (seconds) up to which every lifecycle event has been applied."""
        return self._now

    @property
    def generation(self) -> int:
        """Increases whenever a Hyperplane ENI is created, changes status or is deleted (the
        pipeline recompiles what depends on Hyperplane ENI addresses when it changes)."""
        return self._generation

    def _check_time(self, now: float | None, what: str = "now") -> float:
        if now is None:
            return self._now
        if not _is_number(now) or not math.isfinite(now):
            raise ClockError(f"{what} must be a finite number of seconds, not {now!r}")
        return float(now)

    def advance(self, now: float | None = None) -> None:
        """Move the clock to ``now`` (absolute seconds), applying every due event in time order:
        ENIs becoming ready (functions Active, updates Successful), idle reclaims, scheduled
        ENI deletions; then expire idle connections of every pool's table.

        Raises :class:`ClockError` (a ValueError) if ``now`` is before the current time.
        """
        now = self._check_time(now)
        if now < self._now:
            raise ClockError(f"time cannot go backwards: asked for t={now!r} s, the clock is at t={self._now!r} s")
        while self._events and self._events[0][0] <= now:
            t, _seq, kind, payload = heapq.heappop(self._events)
            t = max(t, self._now)
            self._now = t
            if kind == "ready":
                self._refresh_pool(payload)
            elif kind == "delete":
                pool, token = payload
                if pool.live and pool._deletion_token == token and pool.delete_at is not None:
                    self._delete_pool(pool, t)
            elif kind == "idle":
                fs, token = payload
                if not fs.deleted and fs._idle_token == token:
                    self._idle(fs, t)
            self._settle(t)
        self._now = now
        for pool in self._pools.values():
            pool.table.expire(now)

    def _at(self, t: float, kind: str, payload: Any) -> None:
        self._event_seq += 1
        heapq.heappush(self._events, (t, self._event_seq, kind, payload))

    @property
    def next_event_at(self) -> float | None:
        """When the next scheduled lifecycle event is due (possibly a stale one), or ``None``."""
        return self._events[0][0] if self._events else None

    # -- lookups ---------------------------------------------------------------------------

    @property
    def functions(self) -> Mapping[str, FunctionState]:
        """Every function, by name, in creation order."""
        return MappingProxyType(self._functions)

    def function(self, name: str) -> FunctionState:
        """A function by name (a ``name:version`` qualifier is accepted and ignored)."""
        base, _ = _split_qualifier(name)
        try:
            return self._functions[base]
        except KeyError:
            raise UnknownResource(base, "function") from None

    @property
    def hyperplane_enis(self) -> list[HyperplaneEni]:
        """Every Hyperplane ENI that exists (pending, available, deleting, orphaned), oldest first."""
        return [e for e in self._enis.values() if e.exists]

    @property
    def pools(self) -> list[HyperplaneEniPool]:
        """Every live pool (one per (subnet, SG set) pair in use or awaiting deletion)."""
        return list(self._pools.values())

    def eni(self, eni_id: str) -> HyperplaneEni:
        """A Hyperplane ENI by id (deleted ones included)."""
        try:
            return self._enis[eni_id]
        except KeyError:
            raise UnknownResource(eni_id, "Hyperplane ENI") from None

    def functions_using(self, eni_id: str) -> list[str]:
        """Which functions and versions use a Hyperplane ENI: ``["orders", "orders:1"]``."""
        return self.eni(eni_id).functions

    def pool_for(self, subnet_id: str, security_group_ids: Iterable[str]) -> HyperplaneEniPool | None:
        """The live pool of a (subnet, SG set) pair, or ``None``."""
        return self._pools.get((subnet_id, frozenset(security_group_ids)))

    def eni_by_ip(self, ip: str | int | IPv4Address, vpc_id: str | None = None) -> HyperplaneEni | None:
        """The existing Hyperplane ENI holding ``ip`` (in ``vpc_id`` if given), or ``None``.

        Addresses are unique within a VPC; without ``vpc_id`` the oldest ENI holding it wins."""
        holders = self._by_address.get(int(IPv4Address(ip)))
        if not holders:
            return None
        if vpc_id is None:
            return holders[0]
        return next((e for e in holders if e.vpc_id == vpc_id), None)

    def private_ips_with_security_group(self, security_group_id: str) -> tuple[IPv4Address, ...]:
        """The addresses of existing Hyperplane ENIs carrying a group (what a rule naming the
        group matches, besides the topology's own ENIs)."""
        return tuple(IPv4Address(e.private_ip) for e in self.hyperplane_enis
                     if security_group_id in e.security_group_ids)

    # -- execution environments ------------------------------------------------------------

    def environment_address(self, name: str, k: int = 0) -> str:
        """The source address of a function's execution environment ``k`` (0, 1, ...: the first
        254 in its first /24, later ones in blocks it is given as it needs them)."""
        fs = self.function(name)
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < _MAX_ENVIRONMENT_NUMBER:
            raise InvalidEnvironment(f"execution environment number must be an int from 0, not {k!r}")
        ordinal, host = divmod(k, _ENVIRONMENTS_PER_FUNCTION)
        while len(fs._blocks) <= ordinal:
            if self._top_block < self._next_index:
                network = self.settings.environment_network
                raise InvalidEnvironment(
                    f"{fs.name}: no room for execution environment {k}: the execution environment network "
                    f"{network} ({network.num_addresses // _ENVIRONMENT_BLOCK} blocks of 254) is full; "
                    "a larger LambdaSettings.execution_environment_network makes room")
            fs._blocks.append(self._top_block)
            self._by_index[self._top_block] = fs
            self._top_block -= 1
        base = int(self.settings.environment_network.network_address) + fs._blocks[ordinal] * _ENVIRONMENT_BLOCK
        return str(IPv4Address(base + 1 + host))

    def function_of_environment(self, ip: str | int | IPv4Address) -> str | None:
        """The function whose execution environments use ``ip``, or ``None``."""
        try:
            value = int(IPv4Address(ip))
        except (ValueError, TypeError):
            return None
        network = self.settings.environment_network
        offset = value - int(network.network_address)
        if not 0 <= offset < network.num_addresses:
            return None
        index, host = divmod(offset, _ENVIRONMENT_BLOCK)
        fs = self._by_index.get(index)
        if fs is None or not 1 <= host <= _ENVIRONMENTS_PER_FUNCTION:
            return None
        return fs.name

    def _environment(self, fs: FunctionState, environment: str | int | IPv4Address | None) -> str:
        if environment is None:
            return self.environment_address(fs.name, 0)
        if isinstance(environment, int) and not isinstance(environment, bool) \
                and 0 <= environment < _MAX_ENVIRONMENT_NUMBER:
            return self.environment_address(fs.name, environment)  # a number, not an address
        try:
            ip = IPv4Address(environment)
        except (ValueError, TypeError):
            raise InvalidEnvironment(f"{environment!r} is not an IPv4 address of an execution environment") from None
        if self.function_of_environment(ip) != fs.name:
            raise InvalidEnvironment(
                f"{ip} is not an execution environment of {fs.name} (its first ones are "
                f"{fs.environment_network[1]}-{fs.environment_network[_ENVIRONMENTS_PER_FUNCTION]})")
        return str(ip)

    # -- function API ----------------------------------------------------------------------

    def create_function(self, fn: LambdaFunction, now: float | None = None) -> FunctionState:
        """CreateFunction: ``Pending``/``Creating`` while new ENIs are created, ``Active`` at once
        if every pair's ENI exists and is ready, ``Failed`` with a reason code if Lambda cannot
        set up the VPC config."""
        self.advance(now)
        if fn.name in self._functions:
            raise ResourceConflict(f"function {fn.name} already exists")
        return self._create(fn, self._now, ready=False)

    def invoke(self, name: str, environment: str | int | IPv4Address | None = None,
               now: float | None = None) -> Invocation | InvocationRefused:
        """Invoke ``name`` (or ``name:version``) from an execution environment.

        Counts as an invocation (resets idleness) whatever the outcome. A Pending or Failed
        function refuses; an Inactive one refuses and starts restoring (``Pending``/
        ``Restoring`` until its ENIs are re-created). Otherwise the :class:`Invocation` names
        the pool that translates the environment's packets: the pool of the subnet the
        environment is bound to (see the module docstring). ``environment`` is the environment's
        address (dotted string, or the uint32 the records hold) or its number; ``None`` =
        environment 0.
        """
        self.advance(now)
        return self._invoke(name, environment)

    def invoke_rows(self, functions: Sequence[str], environments: Sequence[str | int],
                    environment_of_row: np.ndarray, times: np.ndarray) -> tuple[int, list[InvocationResult], np.ndarray]:
        """Many packets' invocations, each at its own time: what one :meth:`invoke` per packet,
        with the clock moved to the packet's time before each, gives — in a few calls.

        ``functions[e]`` / ``environments[e]``: environment ``e``'s function (``name`` or
        ``name:version``) and address or number; ``environment_of_row``: each row's environment;
        ``times``: each row's time, non-decreasing, from the clock on.

        Returns ``(decided, outcomes, outcome_of_row)``: the first ``decided`` rows were invoked
        (``outcomes[outcome_of_row[r]]`` is row ``r``'s); the rest must wait until the clock has
        moved on (``advance`` to the time of row ``decided``), because a lifecycle event falls
        before them or an invocation created ENIs that the packets after it must meet.

        Why a few calls suffice: between lifecycle events a function's state changes only
        through an invocation of an Inactive function (which starts restoring it), so an
        environment's second invocation already sees the state every later one sees, and the
        invocations in between only move the idle timer, done once at the end.
        """
        n = len(environment_of_row)
        envs = np.asarray(environment_of_row, np.intp)
        times = np.asarray(times, np.float64)
        outcome_of_row = np.zeros(n, np.intp)
        outcomes: list[InvocationResult] = []
        if n == 0:
            return 0, outcomes, outcome_of_row
        if times[0] < self._now or (n > 1 and (np.diff(times) < 0).any()):
            raise ClockError(f"invocation times must be non-decreasing from the clock (t={self._now!r} s)")
        # each environment's first and second rows decide; the others repeat the second's outcome
        first = np.unique(envs, return_index=True)[1]
        later = np.ones(n, bool)
        later[first] = False
        second = np.flatnonzero(later)[np.unique(envs[later], return_index=True)[1]]
        points = np.union1d(first, second)
        decided = n
        generation = self._generation
        for p in points.tolist():
            t = float(times[p])
            due = self.next_event_at
            name = functions[envs[p]]
            if p == 0 and due is not None and due <= t:
                raise ClockError(f"a lifecycle event is due at t={due!r} s: advance the clock to t={t!r} s first")
            if (due is not None and due <= t) or (p > 0 and self.function(name).state == INACTIVE):
                decided = p  # an event first, or a restore that creates ENIs: from this row on, later
                break
            self._now = t  # no event is due before t: the lifecycle clock may stand there
            outcome_of_row[p] = len(outcomes)
            outcomes.append(self._invoke(name, environments[envs[p]]))
            if self._generation != generation:
                decided = p + 1
                break
        rows = np.arange(decided)
        point_of = np.full(n, -1, np.intp)  # each environment's deciding row, second over first
        point_of[envs[first]] = first
        point_of[envs[second]] = second
        rest = rows[~np.isin(rows, points)]
        outcome_of_row[rest] = outcome_of_row[point_of[envs[rest]]]
        # the idle timer counts from each function's last invocation
        last_row = {_split_qualifier(functions[e])[0]: r for r, e in enumerate(envs[:decided].tolist())}
        for base, r in last_row.items():
            fs = self.function(base)
            t = float(times[r])
            if fs.last_invoked is None or fs.last_invoked < t:
                fs.last_invoked = t
                if outcomes[outcome_of_row[r]].accepted and fs.state == ACTIVE:
                    self._touch(fs, t)
        return decided, outcomes, outcome_of_row

    def _invoke(self, name: str, environment: str | int | IPv4Address | None) -> InvocationResult:
        """One invocation at the clock's time (the state checks of :meth:`invoke`)."""
        t = self._now
        base, qualifier = _split_qualifier(name)
        fs = self.function(base)
        config = fs.version_config(qualifier)  # raises for an unknown version
        env = self._environment(fs, environment)
        fs.last_invoked = t
        if fs.state == PENDING:
            return self._refused(fs, qualifier, env, FUNCTION_PENDING,
                                 f"The operation cannot be performed at this time. The function {fs.name} is "
                                 f"currently in the following state: Pending ({fs.state_reason_code}).",
                                 _INVOKE_ERRORS[PENDING])
        if fs.state == FAILED:
            return self._refused(fs, qualifier, env, FUNCTION_FAILED, fs.state_reason or "The function failed.",
                                 _INVOKE_ERRORS.get(fs.state_reason_code or "", "ResourceConflictException"))
        if fs.state == INACTIVE:
            refused = self._refused(
                fs, qualifier, env, FUNCTION_INACTIVE,
                f"The function {fs.name} is inactive and its VPC connection is no longer available; "
                "Lambda is restoring it.", _INVOKE_ERRORS[INACTIVE])
            self._restore(fs, t)
            return refused
        self._touch(fs, t)
        if config is None:
            return Invocation(fs.name, env, None, None, qualifier)
        subnet_id = _subnet_for(fs.name, env, config)
        pool = self._pools[(subnet_id, frozenset(config.security_group_ids))]
        return Invocation(fs.name, env, pool, subnet_id, qualifier)

    def update_function_configuration(self, name: str, vpc_config: VpcConfig | Mapping[str, Any] | None,
                                      now: float | None = None) -> FunctionState:
        """UpdateFunctionConfiguration of the VpcConfig ($LATEST only).

        A config needing ENIs that do not exist yet is ``InProgress`` for their creation time,
        during which invocations keep using the old pools; then ``Successful``: the new pools
        are used, the old ones released (deleted ``eni_deletion_seconds`` later unless another
        function or version uses them). ``None`` (or empty lists) detaches at once. A config
        Lambda cannot set up leaves the function as it was, ``LastUpdateStatus`` ``Failed``
        with the reason code. Raises :class:`ResourceConflict` while the function is Pending or
        another update is in progress.
        """
        self.advance(now)
        t = self._now
        if _split_qualifier(name)[1] != LATEST:
            raise LambdaError(f"{name}: only $LATEST's configuration can be updated (a published version keeps its own)")
        fs = self.function(name)
        config = _normalize_config(vpc_config)
        if fs.state == PENDING or fs.updating:
            raise ResourceConflict(
                f"The operation cannot be performed at this time. An update is in progress for {fs.name} "
                f"(State {fs.state}, LastUpdateStatus {fs.last_update_status}).")
        fs.last_modified = t
        if fs.state == FAILED:  # a new attempt at creating it, with the new config
            fs.vpc_config = config
            self._start(fs, t, ready=False, reason=CREATING)
            return fs
        if fs.state == INACTIVE:  # restored later, with the new config
            try:
                for cfg in ([config] if config else []):
                    self._check_config(cfg)
            except _Failure as failure:
                self._update_failed(fs, failure)
                return fs
            fs.vpc_config = config
            self._update_succeeded(fs)
            return fs
        if config is None or set(_pool_keys(config)) == set(_pool_keys(fs.vpc_config)):
            fs.vpc_config = config
            self._update_succeeded(fs)
            self._reconcile(fs, t)
            return fs
        try:
            self._ensure_pools([config], fs.role, t, ready=False)
        except _Failure as failure:
            self._update_failed(fs, failure)
            return fs
        fs.pending_vpc_config = config
        fs.updating = True
        fs.last_update_status = IN_PROGRESS
        fs.last_update_status_reason_code = None
        fs.last_update_status_reason = "The function is being updated."
        self._reconcile(fs, t)
        self._settle(t)
        return fs

    def publish_version(self, name: str, now: float | None = None) -> str:
        """PublishVersion: a new version with $LATEST's VpcConfig; it keeps that config (and its
        ENIs in use) whatever happens to $LATEST later. Returns the version number."""
        self.advance(now)
        fs = self.function(name)
        if fs.state != ACTIVE or fs.updating:
            raise ResourceConflict(f"cannot publish a version of {fs.name} while it is {fs.state} "
                                   f"(LastUpdateStatus {fs.last_update_status})")
        number = str(max((int(v) for v in fs._versions), default=0) + 1)
        fs._versions[number] = fs.vpc_config
        self._reconcile(fs, self._now)
        return number

    def delete_function(self, name: str, now: float | None = None) -> None:
        """DeleteFunction: the function (or, for ``name:version``, that version) stops using its
        pools; each pool nobody else uses is deleted ``eni_deletion_seconds`` later."""
        self.advance(now)
        t = self._now
        base, qualifier = _split_qualifier(name)
        fs = self.function(base)
        if qualifier != LATEST:
            fs.version_config(qualifier)
            del fs._versions[qualifier]
            self._reconcile(fs, t)
            return
        fs.deleted = True
        self._reconcile(fs, t)
        del self._functions[fs.name]
        for block in fs._blocks:  # not reused: a late packet to the function finds no one
            del self._by_index[block]

    def delete_role(self, role: str | ExecutionRole, now: float | None = None) -> None:
        """Delete an execution role (by name, ARN or object). ENI deletions that need it can no
        longer run: those ENIs stay, ``orphaned``. Functions using it can no longer create ENIs."""
        self.advance(now)
        self._deleted_roles.add(_role_name(role))

    def role_exists(self, role: str | ExecutionRole) -> bool:
        return _role_name(role) not in self._deleted_roles

    def delete_network_interface(self, eni_id: str, now: float | None = None) -> None:
        """DeleteNetworkInterface by hand: only an ``orphaned`` Hyperplane ENI can be deleted."""
        self.advance(now)
        eni = self.eni(eni_id)
        if eni.status != ENI_ORPHANED:
            raise LambdaError(f"{eni_id} is {eni.status}: only an orphaned Hyperplane ENI can be deleted "
                              "by hand (Lambda manages the others)")
        eni.status = ENI_DELETED
        eni.deleted_at = self._now
        self._forget_address(eni)
        self._generation += 1

    # -- internals: lifecycle --------------------------------------------------------------

    def _create(self, fn: LambdaFunction, t: float, *, ready: bool) -> FunctionState:
        network = self.settings.environment_network
        if self._next_index > self._top_block:
            raise LambdaError(f"the execution environment network {network} has room for "
                              f"{network.num_addresses // _ENVIRONMENT_BLOCK} blocks of 254 environments, "
                              f"all taken; cannot create {fn.name}")
        fs = FunctionState(self, fn, self._next_index, t)
        self._next_index += 1
        self._functions[fs.name] = fs
        self._by_index[fs.index] = fs
        self._start(fs, t, ready=ready, reason=CREATING)
        return fs

    def _configs(self, fs: FunctionState) -> list[VpcConfig]:
        configs = [fs.vpc_config] if fs.vpc_config is not None else []
        configs.extend(cfg for cfg in fs._versions.values() if cfg is not None)
        return configs

    def _start(self, fs: FunctionState, t: float, *, ready: bool, reason: str) -> None:
        """Create (or re-create) everything the function needs: Pending, or Failed."""
        configs = self._configs(fs)
        try:
            if configs:
                self._ensure_pools(configs, fs.role, t, ready=ready)
        except _Failure as failure:
            fs.state, fs.state_reason_code, fs.state_reason = FAILED, failure.code, failure.reason
            self._update_failed(fs, failure)
            self._reconcile(fs, t)
            return
        fs.state, fs.state_reason_code = PENDING, reason
        fs.state_reason = "The function is being created." if reason == CREATING else "The function is being restored."
        fs.last_update_status = IN_PROGRESS
        fs.last_update_status_reason_code = fs.last_update_status_reason = None
        fs._activity = t
        self._reconcile(fs, t)
        self._settle(t)

    def _restore(self, fs: FunctionState, t: float) -> None:
        configs = self._configs(fs)
        try:
            if configs:
                self._ensure_pools(configs, fs.role, t, ready=False)
        except _Failure as failure:
            # AWS: "If Lambda fails to recreate the resources, the function returns to the
            # Inactive state."
            fs.state_reason_code, fs.state_reason = failure.code, failure.reason
            return
        fs.state, fs.state_reason_code, fs.state_reason = PENDING, RESTORING, "The function is being restored."
        fs._activity = t
        self._reconcile(fs, t)
        self._settle(t)

    def _idle(self, fs: FunctionState, t: float) -> None:
        if fs.state != ACTIVE or not self._holdings(fs):
            return
        if fs.updating:  # reclaim after the update, not in the middle of it
            self._schedule_idle(fs, t)
            return
        days = self.settings.idle_reclaim_seconds / 86400
        fs.state, fs.state_reason_code = INACTIVE, IDLE
        fs.state_reason = (f"The function is inactive: it was not invoked for {days:g} days, and Lambda "
                           "reclaimed its Hyperplane ENIs.")
        self._reconcile(fs, t, delay=0.0)

    def _touch(self, fs: FunctionState, t: float) -> None:
        fs._activity = t
        self._schedule_idle(fs, t)

    def _schedule_idle(self, fs: FunctionState, t: float) -> None:
        fs._idle_token += 1
        when = max(fs._activity, t) + self.settings.idle_reclaim_seconds
        if math.isfinite(when):
            self._at(when, "idle", (fs, fs._idle_token))

    def _update_succeeded(self, fs: FunctionState) -> None:
        fs.last_update_status = SUCCESSFUL
        fs.last_update_status_reason_code = fs.last_update_status_reason = None

    def _update_failed(self, fs: FunctionState, failure: _Failure) -> None:
        fs.last_update_status = FAILED
        fs.last_update_status_reason_code = failure.code
        fs.last_update_status_reason = failure.reason

    def _settle(self, t: float) -> None:
        """Finish what waits for ENIs that are ready at ``t``: creations, restores, updates."""
        for fs in self._functions.values():
            if fs.state == PENDING:
                keys = {key for (_u, key), n in fs._held.items() if n > 0}
                if all(self._pools[k].ready(t) for k in keys):
                    fs.state, fs.state_reason_code, fs.state_reason = ACTIVE, None, None
                    self._update_succeeded(fs)
                    self._touch(fs, t)
            elif fs.updating:
                if all(self._pools[k].ready(t) for k in _pool_keys(fs.pending_vpc_config)):
                    fs.vpc_config, fs.pending_vpc_config, fs.updating = fs.pending_vpc_config, None, False
                    self._update_succeeded(fs)
                    self._reconcile(fs, t)

    # -- internals: pools ------------------------------------------------------------------

    def _holdings(self, fs: FunctionState) -> Counter[tuple[str, PoolKey]]:
        held: Counter[tuple[str, PoolKey]] = Counter()
        if fs.deleted or fs.state in (FAILED, INACTIVE):
            return held
        for key in _pool_keys(fs.vpc_config):
            held[(fs.name, key)] += 1
        if fs.updating:
            for key in _pool_keys(fs.pending_vpc_config):
                held[(fs.name, key)] += 1
        for version, cfg in fs._versions.items():
            for key in _pool_keys(cfg):
                held[(f"{fs.name}:{version}", key)] += 1
        return held

    def _reconcile(self, fs: FunctionState, t: float, delay: float | None = None) -> None:
        """Make the pools' users match what the function holds now; a pool left without users
        is deleted ``delay`` seconds later (default ``eni_deletion_seconds``)."""
        new = self._holdings(fs)
        old = fs._held
        for (user, key), count in (new - old).items():
            pool = self._pools[key]  # created by _ensure_pools beforehand
            pool.users[user] += count
            if pool.delete_at is not None:  # a user came back before the deletion ran
                pool.delete_at, pool.deletion_role = None, None
                pool._deletion_token += 1
                self._refresh_pool(pool)
        for (user, key), count in (old - new).items():
            pool = self._pools[key]
            pool.users[user] -= count
            if pool.users[user] <= 0:
                del pool.users[user]
            if not pool.users:
                wait = self.settings.eni_deletion_seconds if delay is None else delay
                pool.delete_at, pool.deletion_role = t + wait, fs.role
                pool._deletion_token += 1
                self._at(t + wait, "delete", (pool, pool._deletion_token))
                self._refresh_pool(pool)
        fs._held = new

    def _refresh_pool(self, pool: HyperplaneEniPool, at: float | None = None) -> None:
        """Recompute the status of the pool's ENIs at the current time (or at ``at``, the time
        of a packet that made an overflow ENI, if the clock has not reached it yet)."""
        t = self._now if at is None else max(self._now, at)
        for eni in pool.enis:
            if eni.status in (ENI_DELETED, ENI_ORPHANED):
                continue
            if t < eni.ready_at:
                status = ENI_PENDING
            elif pool.delete_at is not None:
                status = ENI_DELETING
            else:
                status = ENI_AVAILABLE
            if status != eni.status:
                eni.status = status
                self._generation += 1

    def _delete_pool(self, pool: HyperplaneEniPool, t: float) -> None:
        role = pool.deletion_role
        allowed = role is not None and self.role_exists(role) and role.allows(DELETE_ENI_PERMISSION)
        for eni in pool.enis:
            eni.status = ENI_DELETED if allowed else ENI_ORPHANED
            eni.deleted_at = t
            if allowed:
                self._forget_address(eni)  # an orphan keeps its address
        pool.live = False
        pool.delete_at = None
        del self._pools[pool.key]
        self._generation += 1

    def _check_config(self, config: VpcConfig) -> str:
        """Validate a VpcConfig against the topology; returns its VPC id."""
        topology = self.topology
        if not config.subnet_ids:
            raise _Failure(INVALID_SUBNET, "The VpcConfig has security groups but no subnet.")
        if len(config.subnet_ids) > MAX_SUBNETS_PER_FUNCTION:
            raise _Failure(INVALID_SUBNET, f"The VpcConfig lists {len(config.subnet_ids)} subnets; "
                                           f"a function has at most {MAX_SUBNETS_PER_FUNCTION}.")
        vpc_id = None
        for subnet_id in config.subnet_ids:
            subnet = topology.subnets.get(subnet_id)
            if subnet is None:
                raise _Failure(INVALID_SUBNET, f"The subnet ID '{subnet_id}' does not exist.")
            if vpc_id is None:
                vpc_id = subnet.vpc_id
            elif subnet.vpc_id != vpc_id:
                raise _Failure(INVALID_SUBNET, f"Subnet {subnet_id} is in {subnet.vpc_id}, not {vpc_id}: "
                                               "a function's subnets must all be in one VPC.")
        if not config.security_group_ids:
            raise _Failure(INVALID_SECURITY_GROUP, "The VpcConfig has subnets but no security group.")
        if len(config.security_group_ids) > MAX_SECURITY_GROUPS_PER_ENI:
            raise _Failure(INVALID_SECURITY_GROUP, f"The VpcConfig lists {len(config.security_group_ids)} "
                                                   f"security groups; a function has at most {MAX_SECURITY_GROUPS_PER_ENI}.")
        for sg_id in config.security_group_ids:
            sg = topology.security_groups.get(sg_id)
            if sg is None:
                raise _Failure(INVALID_SECURITY_GROUP, f"The security group ID '{sg_id}' does not exist.")
            if sg.vpc_id != vpc_id:
                raise _Failure(INVALID_SECURITY_GROUP, f"Security group {sg_id} is in {sg.vpc_id}, but the "
                                                       f"function's subnets are in {vpc_id}.")
        assert vpc_id is not None
        return vpc_id

    def _vpc_of(self, config: VpcConfig) -> str | None:
        subnet = self.topology.subnets.get(config.subnet_ids[0]) if config.subnet_ids else None
        return subnet.vpc_id if subnet is not None else None

    def _live_enis_in_vpc(self, vpc_id: str) -> int:
        return sum(1 for e in self._enis.values() if e.exists and e.vpc_id == vpc_id)

    def _used_addresses(self, subnet_id: str) -> set[IPv4Address]:
        return {IPv4Address(e.private_ip) for e in self._enis.values() if e.exists and e.subnet_id == subnet_id}

    def _ensure_pools(self, configs: list[VpcConfig], role: ExecutionRole, t: float, *, ready: bool) -> None:
        """Check the configs, the role and the limits, then create every missing pool (all or
        nothing). Raises _Failure with AWS's reason code."""
        vpc_of_config = [self._check_config(cfg) for cfg in configs]
        if not self.role_exists(role):
            raise _Failure(INSUFFICIENT_ROLE_PERMISSIONS,
                           f"The execution role {role.name} does not exist (it was deleted), so Lambda "
                           "cannot call CreateNetworkInterface on EC2.")
        missing = role.missing(CREATE_ENI_PERMISSIONS)
        if missing:
            actions = " and ".join(a.split(":", 1)[1] for a in missing)
            raise _Failure(INSUFFICIENT_ROLE_PERMISSIONS,
                           f"The provided execution role {role.name} does not have permissions to call "
                           f"{actions} on EC2 (missing {', '.join(missing)}).")
        new: dict[PoolKey, str] = {}
        for cfg, vpc_id in zip(configs, vpc_of_config):
            for key in _pool_keys(cfg):
                if key not in self._pools and key not in new:
                    new[key] = vpc_id
        per_vpc = Counter(new.values())
        limit = self.settings.max_enis_per_vpc
        for vpc_id, count in per_vpc.items():
            existing = self._live_enis_in_vpc(vpc_id)
            if existing + count > limit:
                raise _Failure(ENI_LIMIT_EXCEEDED,
                               f"Lambda cannot create {count} more Hyperplane ENI(s) in {vpc_id}: it already "
                               f"has {existing} and the limit is {limit} per VPC.")
        tentative: dict[str, list[IPv4Address]] = {}
        planned: list[tuple[PoolKey, str, str, IPv4Address]] = []
        for key, vpc_id in new.items():
            subnet_id = key[0]
            taken = tentative.setdefault(subnet_id, [])
            try:
                eni_id, ip = self._take_address(key, taken)
            except SubnetOutOfAddresses as exc:
                subnet = self.topology.subnets[subnet_id]
                raise _Failure(SUBNET_OUT_OF_IP_ADDRESSES,
                               f"Lambda cannot create a Hyperplane ENI in {subnet_id} ({subnet.cidr}): "
                               f"{exc}.") from None
            taken.append(ip)
            planned.append((key, vpc_id, eni_id, ip))
        delay = 0.0 if ready else self.settings.eni_creation_seconds
        for key, vpc_id, eni_id, ip in planned:
            self._pool_counter += 1
            pool = HyperplaneEniPool(self, key, vpc_id, seed=self._pool_counter)
            self._pools[key] = pool
            self._new_eni(pool, eni_id, ip, t, t + delay, overflow=False)

    def _take_address(self, key: PoolKey, tentative: Iterable[IPv4Address]) -> tuple[str, IPv4Address]:
        """An (id, address) for a new ENI of the pair: a ``kind: lambda`` ENI of the topology not
        taken over yet, else a fresh id and the subnet's lowest free address."""
        taken = set(tentative)
        for eni in self._adoptable.get(key, ()):
            if eni.id not in self._enis and eni.private_ip not in taken:
                return eni.id, eni.private_ip
        ip = self.topology.allocate_address(key[0], also_in_use=self._used_addresses(key[0]) | taken)
        return self._fresh_eni_id(), ip

    def _fresh_eni_id(self) -> str:
        while True:
            self._eni_counter += 1
            digest = hashlib.sha256(f"hyperplane-eni:{self._seed}:{self._eni_counter}".encode()).hexdigest()
            eni_id = "eni-" + digest[:17]
            if eni_id not in self._enis and eni_id not in self.topology.network_interfaces:
                return eni_id

    def _new_eni(self, pool: HyperplaneEniPool, eni_id: str, ip: IPv4Address, t: float, ready_at: float,
                 *, overflow: bool) -> HyperplaneEni:
        eni = HyperplaneEni(eni_id, pool, ip, t, ready_at, overflow)
        pool.enis.append(eni)
        self._enis[eni.id] = eni
        self._by_address.setdefault(eni.private_ip_int, []).append(eni)
        pool.table.add_address(eni.private_ip_int, active_from=ready_at)
        self._generation += 1
        self._refresh_pool(pool, t)
        if eni.status == ENI_PENDING:
            self._at(ready_at, "ready", pool)
        return eni

    def _forget_address(self, eni: HyperplaneEni) -> None:
        holders = self._by_address.get(eni.private_ip_int, [])
        if eni in holders:
            holders.remove(eni)
        if not holders:
            self._by_address.pop(eni.private_ip_int, None)

    def _add_overflow_eni(self, pool: HyperplaneEniPool, now: float, status: NatStatus) -> bool:
        if not pool.live:
            pool.overflow_refusal = "the pool was deleted"
            return False
        limit = self.settings.max_enis_per_vpc
        existing = self._live_enis_in_vpc(pool.vpc_id)
        if existing >= limit:
            pool.overflow_refusal = (f"{pool.vpc_id} already has {existing} Hyperplane ENIs, the limit per VPC "
                                     f"({ENI_LIMIT_EXCEEDED})")
            return False
        try:
            eni_id, ip = self._take_address(pool.key, ())
        except SubnetOutOfAddresses as exc:
            pool.overflow_refusal = f"{exc} ({SUBNET_OUT_OF_IP_ADDRESSES})"
            return False
        t = max(now, self._now)
        self._new_eni(pool, eni_id, ip, t, t + self.settings.overflow_eni_creation_seconds, overflow=True)
        pool.overflow_refusal = None
        return True

    def _refused(self, fs: FunctionState, qualifier: str, env: str, code: str, reason: str,
                 aws_error: str) -> InvocationRefused:
        return InvocationRefused(fs.name, env, code, reason, fs.state, fs.state_reason_code, aws_error, qualifier)

    def __repr__(self) -> str:
        return (f"<LambdaService t={self._now:g} functions={list(self._functions)} "
                f"hyperplane_enis={len(self.hyperplane_enis)}>")
