"""The errors of the Lambda control plane, and the internal one that carries a reason code.

Every error here is a :class:`~hyperplane.errors.HyperplaneError`; the public ones are
re-exported from :mod:`hyperplane.lambda_service`.
"""

from __future__ import annotations

from hyperplane.errors import HyperplaneError


class LambdaError(HyperplaneError):
    """A request the Lambda service refuses (unknown environment, conflicting update, ...)."""


class ClockError(LambdaError, ValueError):
    """The virtual clock was asked to go backwards (or to a time that is not a number)."""


class ResourceConflict(LambdaError):
    """AWS's ResourceConflictException: the function is Pending or an update is in progress."""


class InvalidEnvironment(LambdaError, ValueError):
    """An execution environment address that does not belong to the function."""


class IllegalTransition(LambdaError):
    """An event that the lifecycle table does not allow in the current state.

    Nothing was changed. ``str(error)`` names the thing, its state and the event:
    ``function orders is Active (LastUpdateStatus Successful): 'ENIs ready' is not allowed;
    allowed there: idle reclaim, update started, deleted``.

    Attributes:
        subject: what was being moved (``function orders``, ``Hyperplane ENI eni-0123...``).
        state: its state (for a function, ``State`` and ``LastUpdateStatus``).
        event: the event that was refused.
        allowed: the events its state allows, sorted.
    """

    def __init__(self, subject: str, state: str, event: str, allowed: tuple[str, ...] = ()) -> None:
        self.subject = subject
        self.state = state
        self.event = event
        self.allowed = allowed
        expected = f"; allowed there: {', '.join(allowed)}" if allowed else "; no event is allowed there"
        super().__init__(f"{subject} is {state}: {event!r} is not allowed{expected}")


class SetupFailure(Exception):
    """Lambda could not set up a VPC config: an AWS reason code and a sentence.

    Internal: the service turns it into a ``Failed`` state or ``LastUpdateStatus``, never
    raises it to a caller."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
