"""A function's lifecycle, and a Hyperplane ENI's, as explicit transition tables.

Theory of operation
===================

A function is two machines that move together (API_FunctionConfiguration):

1. ``State``: Pending, Active, Inactive, Failed, with a ``StateReasonCode``;
2. ``LastUpdateStatus``: InProgress, Successful, Failed, with its own reason code.

A third, tiny one is ``deleted`` (False -> True, never back): a deleted function accepts no
event at all.

Everything that moves them is a :class:`FunctionEvent`, applied with :func:`apply`, the only
code that writes those fields after a function is made (:data:`INITIAL`: AWS's "When you create
a function, the function's state is Pending"). The event must be in the row of the function's
``State`` in :data:`STATE_TRANSITIONS`; if the ``LastUpdateStatus`` machine sees the event (it
appears in some row of :data:`LAST_UPDATE_TRANSITIONS`), it must be in that machine's row too.
Otherwise :class:`~hyperplane.lambda_service.errors.IllegalTransition` is raised, naming the
function, both states and the event, and nothing changes. The reason codes and sentences that go
with each event are in :func:`apply` beside the tables.

Some refusals AWS names itself (an update while Pending is a ResourceConflictException, an
idle reclaim waits for an update to end): the service checks those first and never asks the
table; the table is the backstop that makes any other path an error instead of a silent state.

A Hyperplane ENI has one machine (:data:`ENI_TRANSITIONS`, :func:`apply_eni`): pending ->
available -> deleting -> deleted, with deleting -> available when a user comes back before the
deletion runs, orphaned when the deletion cannot run (role gone), and orphaned -> deleted by
hand. Nothing goes back to pending: an ENI once created stays created.
"""

from __future__ import annotations

import enum
from typing import Protocol

from hyperplane.lambda_service.errors import IllegalTransition, SetupFailure


class FunctionState(Protocol):
    """The fields of a function the tables read and write (``function.FunctionState``)."""

    name: str
    state: str
    state_reason_code: str | None
    state_reason: str | None
    last_update_status: str
    last_update_status_reason_code: str | None
    last_update_status_reason: str | None
    deleted: bool


class HyperplaneEni(Protocol):
    """The fields of a Hyperplane ENI the tables read and write (``enis.HyperplaneEni``)."""

    id: str
    status: str

__all__ = [
    "PENDING", "ACTIVE", "INACTIVE", "FAILED", "IN_PROGRESS", "SUCCESSFUL",
    "CREATING", "IDLE", "RESTORING", "ENI_LIMIT_EXCEEDED", "INSUFFICIENT_ROLE_PERMISSIONS",
    "SUBNET_OUT_OF_IP_ADDRESSES", "INVALID_SUBNET", "INVALID_SECURITY_GROUP", "REASON_CODES",
    "ENI_PENDING", "ENI_AVAILABLE", "ENI_DELETING", "ENI_DELETED", "ENI_ORPHANED",
    "FunctionEvent", "EniEvent", "INITIAL", "STATE_TRANSITIONS", "LAST_UPDATE_TRANSITIONS",
    "ENI_TRANSITIONS", "apply", "apply_eni", "allowed",
]

# --------------------------------------------------------------------------------------------
# vocabulary: AWS's own words (API_FunctionConfiguration State / LastUpdateStatus / reason codes)

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


# --------------------------------------------------------------------------------------------
# the function's machines


class FunctionEvent(str, enum.Enum):
    """What happens to a function (the value is how an error names it)."""

    ENIS_READY = "ENIs ready"  # every pool a Pending function waits for is ready
    CREATION_FAILED = "creation failed"  # Lambda cannot set up the VpcConfig (reason code)
    CREATION_RETRIED = "creation retried"  # UpdateFunctionConfiguration of a Failed function
    IDLE_RECLAIMED = "idle reclaim"  # not invoked for idle_reclaim_seconds: ENIs reclaimed
    RESTORE_STARTED = "invoked while Inactive"  # Lambda re-creates the ENIs
    RESTORE_FAILED = "restore failed"  # it cannot: Inactive again, with the reason code
    UPDATE_STARTED = "update started"  # UpdateFunctionConfiguration accepted
    UPDATE_SUCCEEDED = "update succeeded"  # the new config is in use
    UPDATE_FAILED = "update failed"  # Lambda cannot set up the new config (reason code)
    DELETED = "deleted"  # DeleteFunction

    def __str__(self) -> str:
        return self.value


E = FunctionEvent

#: A function CreateFunction accepted: (State, StateReasonCode, StateReason), then
#: (LastUpdateStatus, its reason code, its reason).
INITIAL: tuple[tuple[str, str | None, str | None], tuple[str, str | None, str | None]] = (
    (PENDING, CREATING, "The function is being created."), (IN_PROGRESS, None, None))

#: State -> event -> State.
STATE_TRANSITIONS: dict[str, dict[FunctionEvent, str]] = {
    PENDING: {E.ENIS_READY: ACTIVE, E.CREATION_FAILED: FAILED, E.DELETED: PENDING},
    ACTIVE: {E.IDLE_RECLAIMED: INACTIVE, E.UPDATE_STARTED: ACTIVE, E.UPDATE_SUCCEEDED: ACTIVE,
             E.UPDATE_FAILED: ACTIVE, E.DELETED: ACTIVE},
    # an Inactive function takes a new config at once; it is used when the function is restored
    INACTIVE: {E.RESTORE_STARTED: PENDING, E.RESTORE_FAILED: INACTIVE, E.UPDATE_STARTED: INACTIVE,
               E.UPDATE_SUCCEEDED: INACTIVE, E.UPDATE_FAILED: INACTIVE, E.DELETED: INACTIVE},
    FAILED: {E.CREATION_RETRIED: PENDING, E.DELETED: FAILED},
}

#: LastUpdateStatus -> event -> LastUpdateStatus, for the events this machine sees; the others
#: (restore, deletion) leave it as it is.
LAST_UPDATE_TRANSITIONS: dict[str, dict[FunctionEvent, str]] = {
    IN_PROGRESS: {E.ENIS_READY: SUCCESSFUL, E.CREATION_FAILED: FAILED, E.UPDATE_SUCCEEDED: SUCCESSFUL,
                  E.UPDATE_FAILED: FAILED},
    # ENIs ready here ends a restore; idle reclaim waits while an update is InProgress
    SUCCESSFUL: {E.ENIS_READY: SUCCESSFUL, E.UPDATE_STARTED: IN_PROGRESS, E.IDLE_RECLAIMED: SUCCESSFUL},
    # a restore is no update: the last update stays Failed, its reasons kept
    FAILED: {E.ENIS_READY: FAILED, E.UPDATE_STARTED: IN_PROGRESS, E.CREATION_RETRIED: IN_PROGRESS,
             E.IDLE_RECLAIMED: FAILED},
}

_SEEN_BY_LAST_UPDATE = frozenset(e for row in LAST_UPDATE_TRANSITIONS.values() for e in row)

# (StateReasonCode, StateReason) an event sets; events not here keep the function's reason
# (failures take theirs from the SetupFailure, an idle reclaim's sentence is the caller's).
_STATE_REASONS: dict[FunctionEvent, tuple[str | None, str | None]] = {
    E.ENIS_READY: (None, None),
    E.CREATION_RETRIED: (CREATING, "The function is being created."),
    E.RESTORE_STARTED: (RESTORING, "The function is being restored."),
}
_FAILURES = frozenset({E.CREATION_FAILED, E.RESTORE_FAILED, E.UPDATE_FAILED})


def _describe(fs: FunctionState) -> str:
    reason = f"/{fs.state_reason_code}" if fs.state_reason_code else ""
    deleted = ", deleted" if fs.deleted else ""
    return f"{fs.state}{reason} (LastUpdateStatus {fs.last_update_status}{deleted})"


def allowed(fs: FunctionState) -> tuple[FunctionEvent, ...]:
    """The events the function's states allow now, in table order."""
    if fs.deleted:
        return ()
    row = LAST_UPDATE_TRANSITIONS.get(fs.last_update_status, {})
    return tuple(e for e in STATE_TRANSITIONS[fs.state] if e not in _SEEN_BY_LAST_UPDATE or e in row)


def apply(fs: FunctionState, event: FunctionEvent, *, failure: SetupFailure | None = None,
          reason: str | None = None) -> None:
    """Move ``fs`` by ``event`` (all fields or none).

    ``failure``: the code and sentence of a failure event (required for those); ``reason``: the
    StateReason of an idle reclaim. Raises IllegalTransition if the tables do not allow it."""
    if event not in allowed(fs):
        raise IllegalTransition(f"function {fs.name}", _describe(fs), str(event),
                                tuple(str(e) for e in allowed(fs)))
    if (event in _FAILURES) != (failure is not None):
        raise TypeError(f"{event}: a failure event needs its SetupFailure, and only it")
    state = STATE_TRANSITIONS[fs.state][event]
    code, sentence = fs.state_reason_code, fs.state_reason
    if event in _STATE_REASONS:
        code, sentence = _STATE_REASONS[event]
    elif event is E.IDLE_RECLAIMED:
        code, sentence = IDLE, reason
    elif failure is not None and event is not E.UPDATE_FAILED:
        code, sentence = failure.code, failure.reason
    update = (fs.last_update_status, fs.last_update_status_reason_code, fs.last_update_status_reason)
    if event in _SEEN_BY_LAST_UPDATE:
        status = LAST_UPDATE_TRANSITIONS[fs.last_update_status][event]
        if status == FAILED and failure is not None:
            update = (FAILED, failure.code, failure.reason)
        elif status == FAILED:  # an idle reclaim or a restore keeps the failed update's reasons
            pass
        elif event is E.UPDATE_STARTED:
            update = (IN_PROGRESS, None, "The function is being updated.")
        else:
            update = (status, None, None)
    fs.state, fs.state_reason_code, fs.state_reason = state, code, sentence
    fs.last_update_status, fs.last_update_status_reason_code, fs.last_update_status_reason = update
    if event is E.DELETED:
        fs.deleted = True


# --------------------------------------------------------------------------------------------
# the Hyperplane ENI's machine


class EniEvent(str, enum.Enum):
    """What happens to a Hyperplane ENI."""

    READY = "ready"  # its creation time has passed
    RELEASED = "last user left"  # its pool has no user: deleting, deleted later
    REUSED = "a user came back"  # before the deletion ran
    DELETED = "deleted"  # by Lambda (or, an orphan, by hand)
    ORPHANED = "deletion failed"  # the role that must delete it is gone

    def __str__(self) -> str:
        return self.value


#: status -> event -> status.
ENI_TRANSITIONS: dict[str, dict[EniEvent, str]] = {
    ENI_PENDING: {EniEvent.READY: ENI_AVAILABLE, EniEvent.DELETED: ENI_DELETED, EniEvent.ORPHANED: ENI_ORPHANED},
    ENI_AVAILABLE: {EniEvent.RELEASED: ENI_DELETING, EniEvent.DELETED: ENI_DELETED,
                    EniEvent.ORPHANED: ENI_ORPHANED},
    ENI_DELETING: {EniEvent.REUSED: ENI_AVAILABLE, EniEvent.DELETED: ENI_DELETED, EniEvent.ORPHANED: ENI_ORPHANED},
    ENI_ORPHANED: {EniEvent.DELETED: ENI_DELETED},
    ENI_DELETED: {},
}


def apply_eni(eni: HyperplaneEni, event: EniEvent) -> None:
    """Move ``eni`` by ``event``; raises IllegalTransition (nothing changed) if not allowed."""
    row = ENI_TRANSITIONS[eni.status]
    if event not in row:
        raise IllegalTransition(f"Hyperplane ENI {eni.id}", eni.status, str(event), tuple(str(e) for e in row))
    eni.status = row[event]
