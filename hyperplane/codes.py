"""The base of the public code enums (``Reason``, ``NatStatus``, ``Origin``, ``Target``, ...).

Their values are declared once, in ``hyperplane/_core/_codes.pxd``, which the compiled modules
cimport; each public enum names its members and takes the value of the compiled constant of the
same name (``DELIVERED = _codes.Reason.R_DELIVERED``). A ``Code`` is an ``int`` (arrays of codes
compare with it) whose ``str()`` is its name: ``print(result.reason)`` shows ``DELIVERED``.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """An ``IntEnum`` whose ``str()`` and ``format()`` give the member's name (Python 3.11 gives
    the number for a plain ``IntEnum``); ``repr()`` and ``.value`` are unchanged."""

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        # a numeric format (``f"{code:3d}"``) still formats the number
        return format(self.name, spec) if not spec or spec[-1] not in "bcdoxXn" else format(int(self), spec)
