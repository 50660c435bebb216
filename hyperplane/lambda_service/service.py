"""The Lambda control plane of one account (SPEC §2): its clock, its API, its IAM checks.

:class:`LambdaService` plays the part of the Lambda control plane for one account, on a virtual
clock: it creates functions as AWS would (``Pending`` while their Hyperplane ENIs are being
created, ``Failed`` with AWS's reason codes when they cannot be), shares one Hyperplane ENI per
(subnet, security-group set) pair between every function and published version that uses it,
reclaims the ENIs of idle functions, deletes unused ENIs some time after their last user left
(or leaves them orphaned when the execution role is gone), and says which pool of ENIs carries
each invocation.

Time. Nothing reads the wall clock. Every method that changes something takes ``now`` (seconds,
``None`` = the service's current time) and first moves the clock there with
:meth:`LambdaService.advance`, which applies due lifecycle events in time order; time never
goes backwards.

IAM. Lambda creates and deletes Hyperplane ENIs with the function's execution role: creating
needs ``ec2:CreateNetworkInterface`` and ``ec2:DescribeNetworkInterfaces`` (else
``InsufficientRolePermissions``), deleting needs ``ec2:DeleteNetworkInterface`` (else the ENI
is left ``orphaned``). Those checks are here; what the pools, environments and states do is in
the sibling modules.
"""

from __future__ import annotations

import heapq
import math
from ipaddress import IPv4Address
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from hyperplane.errors import UnknownResource
from hyperplane.model import ExecutionRole, LambdaFunction, Topology, VpcConfig

from hyperplane.lambda_service import invocations, lifecycle
from hyperplane.lambda_service.enis import HyperplaneEni, HyperplaneEniManager, HyperplaneEniPool, PoolKey, pool_keys
from hyperplane.lambda_service.environments import ENVIRONMENTS_PER_FUNCTION, ExecutionEnvironments, subnet_for
from hyperplane.lambda_service.errors import ClockError, LambdaError, ResourceConflict, SetupFailure
from hyperplane.lambda_service.function import (
    LATEST, FunctionState, check_vpc_config, normalize_config, split_qualifier,
)
from hyperplane.lambda_service.invocations import Invocation, InvocationRefused, InvocationResult
from hyperplane.lambda_service.settings import LambdaSettings, is_number
from hyperplane.lambda_service.states import (
    ACTIVE, ENI_ORPHANED, FAILED, INACTIVE, INSUFFICIENT_ROLE_PERMISSIONS, PENDING, FunctionEvent as E, apply,
)

__all__ = ["LambdaService", "CREATE_ENI_PERMISSIONS", "DELETE_ENI_PERMISSION"]

#: What Lambda needs from the execution role to create a function's Hyperplane ENIs (SPEC §2);
#: ``ec2:DeleteNetworkInterface`` is needed later, when an unused ENI is deleted.
CREATE_ENI_PERMISSIONS: tuple[str, ...] = ("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces")
DELETE_ENI_PERMISSION = "ec2:DeleteNetworkInterface"


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
        self._functions: dict[str, FunctionState] = {}
        self._environments = ExecutionEnvironments(self.settings)
        self._manager = HyperplaneEniManager(self, seed)
        self._events: list[tuple[float, int, str, Any]] = []
        self._event_seq = 0
        self._deleted_roles: set[str] = set()
        self._config_generation = 0
        for fn in topology.functions.values():
            lifecycle.create(self, fn, self._now, ready=ready)

    # -- clock -----------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """The virtual time (seconds) up to which every lifecycle event has been applied."""
        return self._now

    @property
    def generation(self) -> int:
        """Increases whenever a Hyperplane ENI is created, changes status or is deleted (the
        pipeline recompiles what depends on Hyperplane ENI addresses when it changes)."""
        return self._manager.generation

    def _check_time(self, now: float | None, what: str = "now") -> float:
        if now is None:
            return self._now
        if not is_number(now) or not math.isfinite(now):
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
                self._manager.refresh(payload)
            elif kind == "delete":
                pool, token = payload
                if pool.live and pool._deletion_token == token and pool.delete_at is not None:
                    self._manager.delete_pool(pool, t, allowed=self._may_delete(pool.deletion_role))
            elif kind == "idle":
                fs, token = payload
                if not fs.deleted and fs._idle_token == token:
                    fs._idle_due = None
                    lifecycle.idle(self, fs, t)
            lifecycle.settle(self, t)
        self._now = now
        for pool in self._manager.pools.values():
            pool.table.expire(now)

    @property
    def configuration_generation(self) -> int:
        """Increases whenever a function is created or deleted, a version published or deleted,
        or the VpcConfig $LATEST runs with changes (an update's end included): when the
        topology's description of the functions may have to follow."""
        return self._config_generation

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
        base, _ = split_qualifier(name)
        try:
            return self._functions[base]
        except KeyError:
            raise UnknownResource(base, "function") from None

    @property
    def hyperplane_enis(self) -> list[HyperplaneEni]:
        """Every Hyperplane ENI that exists (pending, available, deleting, orphaned), oldest first."""
        return self._manager.existing()

    @property
    def pools(self) -> list[HyperplaneEniPool]:
        """Every live pool (one per (subnet, SG set) pair in use or awaiting deletion)."""
        return list(self._manager.pools.values())

    def eni(self, eni_id: str) -> HyperplaneEni:
        """A Hyperplane ENI by id (deleted ones included)."""
        try:
            return self._manager.enis[eni_id]
        except KeyError:
            raise UnknownResource(eni_id, "Hyperplane ENI") from None

    def functions_using(self, eni_id: str) -> list[str]:
        """Which functions and versions use a Hyperplane ENI: ``["orders", "orders:1"]``."""
        return self.eni(eni_id).functions

    def pool_for(self, subnet_id: str, security_group_ids: Iterable[str]) -> HyperplaneEniPool | None:
        """The live pool of a (subnet, SG set) pair, or ``None``."""
        return self._manager.pools.get((subnet_id, frozenset(security_group_ids)))

    def eni_by_ip(self, ip: str | int | IPv4Address, vpc_id: str | None = None) -> HyperplaneEni | None:
        """The existing Hyperplane ENI holding ``ip`` (in ``vpc_id`` if given), or ``None``.

        Addresses are unique within a VPC; without ``vpc_id`` the oldest ENI holding it wins."""
        holders = self._manager.holders(int(IPv4Address(ip)))
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

    # -- execution environments (see hyperplane.lambda_service.environments) -------------

    def environment_address(self, name: str, k: int = 0) -> str:
        """The source address of a function's execution environment ``k`` (0, 1, ...: the first
        254 in its first /24, later ones in blocks it is given as it needs them)."""
        return self._environments.address(self.function(name), k)

    def environment_in_subnet(self, name: str, subnet_id: str) -> int:
        """The first environment number of ``name`` bound to ``subnet_id`` (one of its
        ``VpcConfig`` subnets): how a check picks the subnet it runs from."""
        fs = self.function(name)
        config = fs.vpc_config
        if config is None or subnet_id not in config.subnet_ids:
            subnets = ", ".join(config.subnet_ids) if config is not None else "none (no VpcConfig)"
            raise LambdaError(f"{subnet_id} is not a subnet of {name} (its subnets: {subnets})")
        for k in range(ENVIRONMENTS_PER_FUNCTION * len(config.subnet_ids) * 4):
            if subnet_for(fs.name, self._environments.address(fs, k), config) == subnet_id:
                return k
        raise LambdaError(f"no execution environment of {name} hashes to {subnet_id}")  # pragma: no cover

    def function_of_environment(self, ip: str | int | IPv4Address) -> str | None:
        """The function whose execution environments use ``ip``, or ``None``."""
        fs = self._environments.function_of(ip)
        return fs.name if fs is not None else None

    def _environment(self, fs: FunctionState, environment: str | int | IPv4Address | None) -> str:
        return self._environments.resolve(fs, environment)

    # -- function API ----------------------------------------------------------------------

    def create_function(self, fn: LambdaFunction, now: float | None = None) -> FunctionState:
        """CreateFunction: ``Pending``/``Creating`` while new ENIs are created, ``Active`` at once
        if every pair's ENI exists and is ready, ``Failed`` with a reason code if Lambda cannot
        set up the VPC config."""
        self.advance(now)
        if fn.name in self._functions:
            raise ResourceConflict(f"function {fn.name} already exists")
        return lifecycle.create(self, fn, self._now, ready=False)

    def invoke(self, name: str, environment: str | int | IPv4Address | None = None,
               now: float | None = None) -> Invocation | InvocationRefused:
        """Invoke ``name`` (or ``name:version``) from an execution environment.

        Counts as an invocation (resets idleness) whatever the outcome. A Pending or Failed
        function refuses; an Inactive one refuses and starts restoring (``Pending``/
        ``Restoring`` until its ENIs are re-created). Otherwise the :class:`Invocation` names
        the pool that translates the environment's packets: the pool of the subnet the
        environment is bound to (see :mod:`hyperplane.lambda_service.environments`).
        ``environment`` is the environment's address (dotted string, or the uint32 the records
        hold) or its number; ``None`` = environment 0.
        """
        self.advance(now)
        return self._invoke(name, environment)

    def invoke_rows(self, functions: Sequence[str], environments: Sequence[str | int],
                    environment_of_row: np.ndarray, times: np.ndarray) -> tuple[int, list[InvocationResult], np.ndarray]:
        """Many packets' invocations, each at its own time: what one :meth:`invoke` per packet,
        with the clock moved to the packet's time before each, gives — in a few calls (see
        :func:`hyperplane.lambda_service.invocations.invoke_rows`)."""
        return invocations.invoke_rows(self, functions, environments, environment_of_row, times)

    def _invoke(self, name: str, environment: str | int | IPv4Address | None) -> InvocationResult:
        """One invocation at the clock's time (the state checks of :meth:`invoke`)."""
        t = self._now
        base, qualifier = split_qualifier(name)
        fs = self.function(base)
        config = fs.version_config(qualifier)  # raises for an unknown version
        env = self._environment(fs, environment)
        fs.last_invoked = t
        refused = invocations.refusal(fs, qualifier, env)
        if refused is not None:
            if fs.state == INACTIVE:
                lifecycle.restore(self, fs, t)
            return refused
        lifecycle.touch(self, fs, t)
        if config is None:
            return Invocation(fs.name, env, None, None, qualifier)
        subnet_id = subnet_for(fs.name, env, config)
        pool = self._manager.pools[(subnet_id, frozenset(config.security_group_ids))]
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
        if split_qualifier(name)[1] != LATEST:
            raise LambdaError(f"{name}: only $LATEST's configuration can be updated (a published version keeps its own)")
        fs = self.function(name)
        config = normalize_config(vpc_config)
        if fs.state == PENDING or fs.updating:
            raise ResourceConflict(
                f"The operation cannot be performed at this time. An update is in progress for {fs.name} "
                f"(State {fs.state}, LastUpdateStatus {fs.last_update_status}).")
        fs.last_modified = t
        self._config_generation += 1
        if fs.state == FAILED:  # a new attempt at creating it, with the new config
            apply(fs, E.CREATION_RETRIED)
            fs.vpc_config = config
            lifecycle.start(self, fs, t, ready=False)
            return fs
        apply(fs, E.UPDATE_STARTED)
        if fs.state == INACTIVE:  # restored later, with the new config
            try:
                for cfg in ([config] if config else []):
                    check_vpc_config(self.topology, cfg)
            except SetupFailure as failure:
                apply(fs, E.UPDATE_FAILED, failure=failure)
                return fs
            fs.vpc_config = config
            apply(fs, E.UPDATE_SUCCEEDED)
            return fs
        if config is None or set(pool_keys(config)) == set(pool_keys(fs.vpc_config)):
            fs.vpc_config = config
            apply(fs, E.UPDATE_SUCCEEDED)
            lifecycle.reconcile(self, fs, t)
            return fs
        try:
            self._ensure_pools([config], fs.role, t, ready=False)
        except SetupFailure as failure:
            apply(fs, E.UPDATE_FAILED, failure=failure)
            return fs
        fs.pending_vpc_config = config  # InProgress until its pools are ready (lifecycle.settle)
        lifecycle.reconcile(self, fs, t)
        lifecycle.settle(self, t)
        return fs

    def publish_version(self, name: str, now: float | None = None) -> str:
        """PublishVersion: a new version with $LATEST's VpcConfig; it keeps that config (and its
        ENIs in use) whatever happens to $LATEST later. Returns the version number."""
        self.advance(now)
        base, qualifier = split_qualifier(name)
        if qualifier != LATEST:
            raise LambdaError(f"{name}: a version is published from $LATEST, not from a published version")
        fs = self.function(base)
        if fs.state != ACTIVE or fs.updating:
            raise ResourceConflict(f"cannot publish a version of {fs.name} while it is {fs.state} "
                                   f"(LastUpdateStatus {fs.last_update_status})")
        number = str(max((int(v) for v in fs._versions), default=0) + 1)
        fs._versions[number] = fs.vpc_config
        self._config_generation += 1
        lifecycle.reconcile(self, fs, self._now)
        return number

    def delete_function(self, name: str, now: float | None = None) -> None:
        """DeleteFunction: the function (or, for ``name:version``, that version) stops using its
        pools; each pool nobody else uses is deleted ``eni_deletion_seconds`` later."""
        self.advance(now)
        t = self._now
        base, qualifier = split_qualifier(name)
        fs = self.function(base)
        self._config_generation += 1
        if qualifier != LATEST:
            fs.version_config(qualifier)
            del fs._versions[qualifier]
            lifecycle.reconcile(self, fs, t)
            return
        apply(fs, E.DELETED)
        lifecycle.reconcile(self, fs, t)
        del self._functions[fs.name]
        self._environments.release(fs)

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
        self._manager.delete_by_hand(eni, self._now)

    # -- IAM and pools -----------------------------------------------------------------------

    def _ensure_pools(self, configs: list[VpcConfig], role: ExecutionRole, t: float, *, ready: bool) -> None:
        """Check the configs, the role and the limits, then create every missing pool (all or
        nothing). Raises SetupFailure with AWS's reason code."""
        vpc_of_config = [check_vpc_config(self.topology, cfg) for cfg in configs]
        if not self.role_exists(role):
            raise SetupFailure(INSUFFICIENT_ROLE_PERMISSIONS,
                               f"The execution role {role.name} does not exist (it was deleted), so Lambda "
                               "cannot call CreateNetworkInterface on EC2.")
        missing = role.missing(CREATE_ENI_PERMISSIONS)
        if missing:
            actions = " and ".join(a.split(":", 1)[1] for a in missing)
            raise SetupFailure(INSUFFICIENT_ROLE_PERMISSIONS,
                               f"The provided execution role {role.name} does not have permissions to call "
                               f"{actions} on EC2 (missing {', '.join(missing)}).")
        new: dict[PoolKey, str] = {}
        for cfg, vpc_id in zip(configs, vpc_of_config):
            for key in pool_keys(cfg):
                if key not in self._manager.pools and key not in new:
                    new[key] = vpc_id
        self._manager.create_pools(new, t, 0.0 if ready else self.settings.eni_creation_seconds)

    def _may_delete(self, role: ExecutionRole | None) -> bool:
        """Whether Lambda can delete an unused ENI with ``role`` (else it is left orphaned)."""
        return role is not None and self.role_exists(role) and role.allows(DELETE_ENI_PERMISSION)

    def __repr__(self) -> str:
        return (f"<LambdaService t={self._now:g} functions={list(self._functions)} "
                f"hyperplane_enis={len(self.hyperplane_enis)}>")


def _role_name(role: str | ExecutionRole) -> str:
    if isinstance(role, ExecutionRole):
        return role.name
    return str(role).rsplit("/", 1)[-1]
