"""How full a compiled table's open-addressing index is and how long its probes are.

The NAT tables (a forward and a reverse index) and the connection tracker (one index) share
one index, ``hyperplane/_core/_index.pxd``: linear probing over tagged slot numbers, kept at most
half full. ``IndexStats`` is what it reports; ``probe_mean`` is what a lookup of a stored key
costs in buckets read (1.0 is every key in its home bucket).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class IndexStats:
    buckets: int  # a power of two
    entries: int  # keys indexed: one per stored connection or flow
    probe_mean: float  # buckets a lookup of an indexed key reads, on average (0.0 when empty)
    probe_max: int  # ... and at most

    @property
    def load(self) -> float:
        return self.entries / self.buckets

    @classmethod
    def of(cls, raw: Mapping[str, int]) -> IndexStats:
        """From the compiled core's counts (buckets, entries, probe_total, probe_max)."""
        n = raw["entries"]
        return cls(raw["buckets"], n, raw["probe_total"] / n if n else 0.0, raw["probe_max"])
