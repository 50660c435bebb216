"""The capture addresses a replay has seen, found again in one vectorized lookup: a replay and
its parallel partition look up both addresses of every packet, but a capture holds few distinct
ones."""

from __future__ import annotations

import numpy as np


class SeenAddresses:
    """IPv4 addresses in the order they were added, each found again by a table of its low 16
    bits (checked in full); addresses that share their low bits with another are searched in a
    sorted copy."""

    def __init__(self) -> None:
        self.ips = np.zeros(0, np.uint32)
        self._slot_of_low = np.full(1 << 16, -1, np.int64)
        self._order = np.zeros(0, np.int64)  # ``ips`` sorted

    def __len__(self) -> int:
        return len(self.ips)

    def slots(self, ips: np.ndarray) -> np.ndarray:
        """Each address's place in ``ips`` (-1: not seen yet)."""
        slot = self._slot_of_low[ips & np.uint32(0xFFFF)]
        hit = slot >= 0
        hit[hit] = self.ips[slot[hit]] == ips[hit]
        if not hit.all():  # unknown, or sharing its low 16 bits with another: searched in full
            rows = np.flatnonzero(~hit)
            slot[rows] = -1
            if len(self.ips):
                pos = np.minimum(np.searchsorted(self.ips[self._order], ips[rows]), len(self.ips) - 1)
                found = self.ips[self._order[pos]] == ips[rows]
                slot[rows[found]] = self._order[pos[found]]
        return slot

    def add(self, ips: np.ndarray) -> None:
        """Distinct addresses not seen yet, in the order they take their places."""
        first = len(self.ips)
        self.ips = np.concatenate([self.ips, ips.astype(np.uint32)])
        low = (ips & np.uint32(0xFFFF)).astype(np.int64)
        free = self._slot_of_low[low] < 0
        # the first of several new addresses with the same low bits takes the entry
        lows, at = np.unique(low[free], return_index=True)
        self._slot_of_low[lows] = first + np.flatnonzero(free)[at]
        self._order = np.argsort(self.ips, kind="stable")
