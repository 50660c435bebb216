"""The error hierarchy of hyperplane.

Every error a user can provoke with bad input is a :class:`HyperplaneError`, so a caller can
catch one type. Errors about a topology document name the file, the place in the document and
the problem, so the message alone is enough to fix the file.
"""

from __future__ import annotations

__all__ = [
    "HyperplaneError",
    "TopologyError",
    "UnknownResource",
    "SubnetOutOfAddresses",
    "RepairWarning",
    "ExpectationsError",
]


class HyperplaneError(Exception):
    """Base class of every error hyperplane raises on purpose."""


class TopologyError(HyperplaneError):
    """A topology is invalid: which file, where in it, and what is wrong.

    Attributes:
        file: the file name as given to the loader (``None`` for a topology built in code).
        where: a path in the document, e.g. ``subnets[2].cidr`` (``""`` for the whole file).
        problem: what is wrong, in one sentence.
        line: the 1-based line of ``where`` in the file when the loader could find it, else ``None``.
        column: the 1-based column, for errors found while reading the text (syntax, encoding),
            else ``None``.

    ``str(error)`` reads ``example.yaml: subnets[2].cidr: '10.0.300.0/24' is not a valid IPv4 CIDR``.
    """

    def __init__(self, file: str | None, where: str, problem: str, line: int | None = None,
                 column: int | None = None) -> None:
        self.file = file
        self.where = where
        self.problem = problem
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.where) if p]
        parts.append(self.problem)
        return ": ".join(parts)

    def __reduce__(self):  # keep pickling (e.g. pytest-xdist) working with every argument
        return (type(self), (self.file, self.where, self.problem, self.line, self.column))


class RepairWarning(UserWarning):
    """A lenient load (``repair=True``, ``--repair``) changed the input to make it loadable.

    One warning per repaired resource, naming it, what was wrong and what it was changed to
    (e.g. a NAT gateway address outside its subnet, which moto writes, re-allocated from the
    subnet). Without ``repair`` the same input is a :class:`TopologyError` that mentions it.
    """


class UnknownResource(HyperplaneError, KeyError):
    """A lookup by id found nothing (``topology.get("subnet-nope")``)."""

    def __init__(self, resource_id: str, kind: str = "resource") -> None:
        self.resource_id = resource_id
        self.kind = kind
        super().__init__(resource_id)

    def __str__(self) -> str:
        return f"no {self.kind} with id {self.resource_id!r}"


class SubnetOutOfAddresses(HyperplaneError):
    """No free, non-reserved address is left in a subnet.

    The Lambda layer maps it to the state reason code ``SubnetOutOfIPAddresses``.
    """

    def __init__(self, subnet_id: str | None, cidr: object) -> None:
        self.subnet_id = subnet_id
        self.cidr = cidr
        super().__init__(str(self))

    def __str__(self) -> str:
        name = f"subnet {self.subnet_id} ({self.cidr})" if self.subnet_id else f"subnet {self.cidr}"
        return f"{name} has no free IP address left"

    def __reduce__(self):
        return (type(self), (self.subnet_id, self.cidr))


class ReplayError(HyperplaneError, ValueError):
    """A replay could not go on: the message names the capture and the packet."""


class NoHopsError(HyperplaneError, ValueError):
    """The stage facts of a batch walked verdict-only (``Network.process(..., hops=False)``) were
    asked for: traces, flow logs and deciding rules need a walk with hops."""


class ExpectationsError(HyperplaneError, ValueError):
    """An expectations file (``hyperplane check``) is invalid: ``str(error)`` reads
    ``expect.yaml: line 3: 'maybe' is not connected, blocked, blocked on request or blocked on reply``."""

    def __init__(self, file: str | None, line: int | None, problem: str) -> None:
        self.file = file
        self.line = line
        self.problem = problem
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.file, f"line {self.line}" if self.line else None) if p]
        return ": ".join([*parts, self.problem])

    def __reduce__(self):
        return (type(self), (self.file, self.line, self.problem))
