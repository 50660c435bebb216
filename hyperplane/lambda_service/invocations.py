"""What an invocation gives: the pool that carries it, or why Lambda refused it.

An invocation is decided by the function's state alone (:func:`refusal`): a Pending or Failed
function refuses, an Inactive one refuses and starts its restore, an Active one is accepted on
the pool of the subnet its execution environment is bound to. :func:`invoke_rows` decides the
invocations of many packets, each at its own time, in a few calls (a capture replay).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Sequence, Union

import numpy as np

from hyperplane.lambda_service import lifecycle
from hyperplane.lambda_service.enis import HyperplaneEniPool
from hyperplane.lambda_service.control_plane import LambdaService
from hyperplane.lambda_service.errors import ClockError
from hyperplane.lambda_service.function import LATEST, FunctionState, split_qualifier
from hyperplane.lambda_service.states import (
    ACTIVE, ENI_LIMIT_EXCEEDED, FAILED, INACTIVE, INSUFFICIENT_ROLE_PERMISSIONS, INVALID_SECURITY_GROUP,
    INVALID_SUBNET, PENDING, SUBNET_OUT_OF_IP_ADDRESSES,
)


__all__ = ["Invocation", "InvocationRefused", "InvocationResult", "FUNCTION_PENDING", "FUNCTION_INACTIVE",
           "FUNCTION_FAILED", "refusal", "invoke_rows"]

# Why an invocation was refused (InvocationRefused.reason_code), and the Invoke API error.
FUNCTION_PENDING = "FUNCTION_PENDING"
FUNCTION_INACTIVE = "FUNCTION_INACTIVE"
FUNCTION_FAILED = "FUNCTION_FAILED"
INVOKE_ERRORS = {
    PENDING: "ResourceConflictException",
    INACTIVE: "ResourceNotReadyException",
    ENI_LIMIT_EXCEEDED: "ENILimitReachedException",
    INSUFFICIENT_ROLE_PERMISSIONS: "EC2AccessDeniedException",
    SUBNET_OUT_OF_IP_ADDRESSES: "SubnetIPAddressLimitReachedException",
    INVALID_SUBNET: "InvalidSubnetIDException",
    INVALID_SECURITY_GROUP: "InvalidSecurityGroupIDException",
}


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


def refusal(fs: FunctionState, qualifier: str, env: str) -> InvocationRefused | None:
    """Why ``fs`` refuses an invocation in its state now (``None``: it accepts)."""
    if fs.state == PENDING:
        return _refused(fs, qualifier, env, FUNCTION_PENDING,
                        f"The operation cannot be performed at this time. The function {fs.name} is "
                        f"currently in the following state: Pending ({fs.state_reason_code}).",
                        INVOKE_ERRORS[PENDING])
    if fs.state == FAILED:
        return _refused(fs, qualifier, env, FUNCTION_FAILED, fs.state_reason or "The function failed.",
                        INVOKE_ERRORS.get(fs.state_reason_code or "", "ResourceConflictException"))
    if fs.state == INACTIVE:
        return _refused(fs, qualifier, env, FUNCTION_INACTIVE,
                        f"The function {fs.name} is inactive and its VPC connection is no longer available; "
                        "Lambda is restoring it.", INVOKE_ERRORS[INACTIVE])
    return None


def _refused(fs: FunctionState, qualifier: str, env: str, code: str, reason: str,
             aws_error: str) -> InvocationRefused:
    return InvocationRefused(fs.name, env, code, reason, fs.state, fs.state_reason_code, aws_error, qualifier)


def invoke_rows(service: LambdaService, functions: Sequence[str], environments: Sequence[str | int],
                environment_of_row: np.ndarray,
                times: np.ndarray) -> tuple[int, list[InvocationResult], np.ndarray]:
    """Many packets' invocations, each at its own time: what one :meth:`LambdaService.invoke` per packet,
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
    if times[0] < service._now or (n > 1 and (np.diff(times) < 0).any()):
        raise ClockError(f"invocation times must be non-decreasing from the clock (t={service._now!r} s)")
    # each environment's first and second rows decide; the others repeat the second's outcome
    if n == 1:  # one packet (a send): its own first row, without the arrays' cost
        first = second = points = np.zeros(n, np.intp)
    else:
        first = _first_rows(envs, len(functions))
        later = np.ones(n, bool)
        later[first] = False
        second = np.flatnonzero(later)[_first_rows(envs[later], len(functions))]
        points = np.union1d(first, second)
    decided = n
    generation = service.generation
    for p in points.tolist():
        t = float(times[p])
        due = service.next_event_at
        name = functions[envs[p]]
        if p == 0 and due is not None and due <= t:
            raise ClockError(f"a lifecycle event is due at t={due!r} s: advance the clock to t={t!r} s first")
        if (due is not None and due <= t) or (p > 0 and service.function(name).state == INACTIVE):
            decided = p  # an event first, or a restore that creates ENIs: from this row on, later
            break
        service._now = t  # no event is due before t: the lifecycle clock may stand there
        outcome_of_row[p] = len(outcomes)
        outcomes.append(service._invoke(name, environments[envs[p]]))
        if service.generation != generation:
            decided = p + 1
            break
    rows = np.arange(decided)
    point_of = np.full(n, -1, np.intp)  # each environment's deciding row, second over first
    point_of[envs[first]] = first
    point_of[envs[second]] = second
    rest = rows[~np.isin(rows, points)] if n > 1 else rows[:0]
    outcome_of_row[rest] = outcome_of_row[point_of[envs[rest]]]
    # the idle timer counts from each function's last invocation
    last_row = _last_row_of_each_function(functions, envs[:decided])
    for base, r in last_row.items():
        fs = service.function(base)
        t = float(times[r])
        if fs.last_invoked is None or fs.last_invoked < t:
            fs.last_invoked = t
            if outcomes[outcome_of_row[r]].accepted and fs.state == ACTIVE:
                lifecycle.touch(service, fs, t)
    return decided, outcomes, outcome_of_row


def _first_rows(envs: np.ndarray, count: int) -> np.ndarray:
    """The first row of each environment in ``envs`` (numbers below ``count``), in the order of
    the environments' numbers (``ufunc.at``, linear: numpy's ``unique`` sorts)."""
    first = np.full(count, len(envs), np.intp)
    np.minimum.at(first, envs, np.arange(len(envs)))
    return first[first < len(envs)]


def _last_row_of_each_function(functions: Sequence[str], envs: np.ndarray) -> dict[str, int]:
    """Each function's (base name's) last row among ``envs`` (each row's environment, an index
    into ``functions``), in the order the functions first appear: per environment, not per row."""
    if len(envs) <= 1:
        return {split_qualifier(functions[e])[0]: 0 for e in envs.tolist()}
    first = _first_rows(envs, len(functions))
    last = np.full(len(functions), -1, np.intp)
    np.maximum.at(last, envs, np.arange(len(envs)))
    found: dict[str, list[int]] = {}
    for f in np.sort(first).tolist():
        e, r = int(envs[f]), int(last[envs[f]])
        base = split_qualifier(functions[e])[0]
        if base in found:
            found[base][1] = max(found[base][1], r)
        else:
            found[base] = [f, r]
    return {base: r for base, (_, r) in found.items()}
