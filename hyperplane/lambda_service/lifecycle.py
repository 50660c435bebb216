"""What happens to a function over time: creation, ENIs becoming ready, idle reclaim, restore.

The service calls these when a request or a due event of its clock needs them; each works at
one virtual time ``t`` and leaves the function's pools matching what it holds (``reconcile``).
Which changes of ``State`` and ``LastUpdateStatus`` are legal is not decided here but in
:mod:`hyperplane.lambda_service.states`.
"""

from __future__ import annotations

import math
from collections import Counter

from hyperplane.model import LambdaFunction, VpcConfig

from hyperplane.lambda_service.enis import PoolKey, pool_keys
from hyperplane.lambda_service.control_plane import LambdaService
from hyperplane.lambda_service.errors import SetupFailure
from hyperplane.lambda_service.function import FunctionState
from hyperplane.lambda_service.states import ACTIVE, FAILED, INACTIVE, PENDING, FunctionEvent as E, apply


__all__ = ["create", "start", "restore", "idle", "touch", "settle", "holdings", "reconcile"]


def create(service: LambdaService, fn: LambdaFunction, t: float, *, ready: bool) -> FunctionState:
    """A new function: Pending while its ENIs are created (Active at once with ``ready``), or Failed."""
    index = service._environments.first_block(fn.name)
    fs = FunctionState(service, fn, index, t)
    service._functions[fs.name] = fs
    service._config_generation += 1
    service._environments.register(fs)
    start(service, fs, t, ready=ready)
    return fs


def configs(fs: FunctionState) -> list[VpcConfig]:
    """Every VpcConfig the function needs pools for: $LATEST's and its versions'."""
    out = [fs.vpc_config] if fs.vpc_config is not None else []
    out.extend(cfg for cfg in fs._versions.values() if cfg is not None)
    return out


def start(service: LambdaService, fs: FunctionState, t: float, *, ready: bool) -> None:
    """Create (or re-create) everything a Pending/Creating function needs; Failed if Lambda cannot."""
    needed = configs(fs)
    try:
        if needed:
            service._ensure_pools(needed, fs.role, t, ready=ready)
    except SetupFailure as failure:
        apply(fs, E.CREATION_FAILED, failure=failure)
        reconcile(service, fs, t)
        return
    fs._activity = t
    reconcile(service, fs, t)
    settle(service, t)


def restore(service: LambdaService, fs: FunctionState, t: float) -> None:
    """An Inactive function was invoked: re-create its ENIs (Pending/Restoring)."""
    needed = configs(fs)
    try:
        if needed:
            service._ensure_pools(needed, fs.role, t, ready=False)
    except SetupFailure as failure:
        # AWS: "If Lambda fails to recreate the resources, the function returns to the
        # Inactive state."
        apply(fs, E.RESTORE_FAILED, failure=failure)
        return
    apply(fs, E.RESTORE_STARTED)
    fs._activity = t
    reconcile(service, fs, t)
    settle(service, t)


def idle(service: LambdaService, fs: FunctionState, t: float) -> None:
    """The idle timer ran out: an Active VPC function loses its ENIs (Inactive/Idle), unless it
    was invoked after the timer was set (``touch``): the timer then runs on to the new end."""
    due = fs._activity + service.settings.idle_reclaim_seconds
    if due > t:
        _idle_at(service, fs, due)
        return
    if fs.state != ACTIVE or not holdings(fs):
        return
    if fs.updating:  # reclaim after the update, not in the middle of it
        schedule_idle(service, fs, t)
        return
    days = service.settings.idle_reclaim_seconds / 86400
    apply(fs, E.IDLE_RECLAIMED, reason=f"The function is inactive: it was not invoked for {days:g} days, "
                                       "and Lambda reclaimed its Hyperplane ENIs.")
    reconcile(service, fs, t, delay=0.0)


def touch(service: LambdaService, fs: FunctionState, t: float) -> None:
    """An accepted invocation: idleness counts from ``t``. A pending idle timer is left as it
    is: due earlier, it finds the later invocation and runs on (``idle``), so that a function
    has one timer in the service's events, not one per invocation."""
    fs._activity = t
    if fs._idle_due is None:
        schedule_idle(service, fs, t)


def schedule_idle(service: LambdaService, fs: FunctionState, t: float) -> None:
    _idle_at(service, fs, max(fs._activity, t) + service.settings.idle_reclaim_seconds)


def _idle_at(service: LambdaService, fs: FunctionState, when: float) -> None:
    """The function's idle timer, due at ``when`` (the one before it void)."""
    fs._idle_token += 1
    fs._idle_due = when if math.isfinite(when) else None
    if fs._idle_due is not None:
        service._at(when, "idle", (fs, fs._idle_token))


def settle(service: LambdaService, t: float) -> None:
    """Finish what waits for ENIs that are ready at ``t``: creations, restores, updates."""
    pools = service._manager.pools
    for fs in service._functions.values():
        if fs.state == PENDING:
            keys = {key for (_u, key), n in fs._held.items() if n > 0}
            if all(pools[k].ready(t) for k in keys):
                apply(fs, E.ENIS_READY)
                touch(service, fs, t)
        elif fs.updating:
            if all(pools[k].ready(t) for k in pool_keys(fs.pending_vpc_config)):
                fs.vpc_config, fs.pending_vpc_config = fs.pending_vpc_config, None
                service._config_generation += 1
                apply(fs, E.UPDATE_SUCCEEDED)
                reconcile(service, fs, t)


def holdings(fs: FunctionState) -> Counter[tuple[str, PoolKey]]:
    """(user, pair) -> how many of the user's configs name the pair: what ``fs`` holds now."""
    held: Counter[tuple[str, PoolKey]] = Counter()
    if fs.deleted or fs.state in (FAILED, INACTIVE):
        return held
    for key in pool_keys(fs.vpc_config):
        held[(fs.name, key)] += 1
    if fs.updating:
        for key in pool_keys(fs.pending_vpc_config):
            held[(fs.name, key)] += 1
    for version, cfg in fs._versions.items():
        for key in pool_keys(cfg):
            held[(f"{fs.name}:{version}", key)] += 1
    return held


def reconcile(service: LambdaService, fs: FunctionState, t: float, delay: float | None = None) -> None:
    """Make the pools' users match what the function holds now; a pool left without users
    is deleted ``delay`` seconds later (default ``eni_deletion_seconds``)."""
    new = holdings(fs)
    wait = service.settings.eni_deletion_seconds if delay is None else delay
    service._manager.hold(fs._held, new, t, wait, fs.role)
    fs._held = new
    for _user, key in new:
        fs._used.setdefault(key)
