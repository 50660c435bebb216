"""Security group connection tracking: the stateful half of security groups (SPEC §3).

A security group is stateful: once its rules let a packet of a flow through an ENI, the flow is
tracked, and every later packet of it passes in either direction whatever the rules say, until
it has been idle for its timeout. So the reply to an allowed request is allowed without an
ingress rule for it, and removing a rule does not cut a flow that is already open.

The pipeline asks, for a whole batch at once, "is this packet part of a flow the group already
allowed?" through :meth:`ConnectionTracker.check`; the loop runs in the compiled
``hyperplane._core._conntrack`` (its module docstring is the theory of operation).

Timeouts. AWS documents them in the EC2 user guide, "Amazon EC2 security group connection
tracking" (security-group-connection-tracking.html, "Idle connection tracking timeout"), and in
the EC2 API ``ConnectionTrackingConfiguration``; an ENI can override the first three:

=====================  ==========  =============================================================
field                  default     source
=====================  ==========  =============================================================
tcp_established        432,000 s   AWS ``tcpEstablishedTimeout`` (5 days; 60..432,000; Nitro v6
                                   instance types default to 350 s)
udp_stream             180 s       AWS ``udpStreamTimeout`` (60..180): a UDP flow that has seen
                                   traffic both ways (AWS: "more than one request-response
                                   transaction"; modelled as "a reply was seen", as in SPEC §2)
udp                    30 s        AWS ``udpTimeout`` (30..60): traffic one way only so far
other                  600 s       AWS: for protocols other than TCP, UDP and ICMP only the
                                   addresses and protocol are tracked, and traffic the other way
                                   within 600 s is a response
tcp_opening            60 s        *chosen*: only one endpoint has sent so far (a SYN with no
                                   answer); SYN retries (1, 2, 4 ... 32 s apart) keep it alive
tcp_closing            120 s       *chosen*: after a FIN either way, and the linger after FINs
                                   both ways; an RST removes the flow at once
icmp                   60 s        *chosen*: ICMP echo, keyed by the identifier; other ICMP
                                   types are not tracked
=====================  ==========  =============================================================

AWS does not track flows that an all-traffic rule (0.0.0.0/0, all ports) allows in both
directions ("untracked connections"); the caller decides that and passes ``eni = -1`` (or keeps
such rows out) — this table tracks every flow it is asked about.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields
from typing import NamedTuple

import numpy as np

from hyperplane._core import _codes
from hyperplane._core._conntrack import ConntrackCore
from hyperplane.records import PACKET, ip_str
from hyperplane.tables.index import IndexStats
from hyperplane.tables.nat import MAX_TIME

__all__ = [
    "ConnectionTracker",
    "ConnectionTrackingConfiguration",
    "TrackResult",
    "NO_SECURITY_GROUP",
    "SEEN_A",
    "SEEN_B",
    "FIN_A",
    "FIN_B",
]

NO_SECURITY_GROUP = -1  # an ``eni`` value: no security group at this stage (allowed, untracked)

# Flow state bits (``flows()["bits"]``). Endpoint A is the smaller (ip, port) of the two.
SEEN_A, SEEN_B, FIN_A, FIN_B = _codes.SEEN_A, _codes.SEEN_B, _codes.FIN_A, _codes.FIN_B

MAX_ENI_INDEX = 2**31 - 1
# The latest time accepted is the NAT tables' (as Network.process): the clock never goes back,
# so one row stamped +inf would leave every later flow dead the moment it opened.


@dataclass(frozen=True)
class ConnectionTrackingConfiguration:
    """Idle timeouts of tracked flows, in seconds (AWS's noun; see the module docstring)."""

    tcp_established: float = 432_000.0
    udp_stream: float = 180.0
    udp: float = 30.0
    other: float = 600.0
    tcp_opening: float = 60.0
    tcp_closing: float = 120.0
    icmp: float = 60.0

    def __post_init__(self) -> None:
        for f, value in zip(fields(self), astuple(self)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value > 0):
                raise ValueError(f"{f.name} timeout must be a positive number of seconds, not {value!r}")


DEFAULT_CONFIGURATION = ConnectionTrackingConfiguration()


class TrackResult(NamedTuple):
    """Per row: ``allowed`` (1 = the packet passes this security group stage) and ``tracked``
    (1 = it passed because it belongs to a tracked flow, whatever the rules said)."""

    allowed: np.ndarray  # uint8
    tracked: np.ndarray  # uint8


class ConnectionTracker:
    """The tracked flows of every ENI, one table for all of them.

    ``capacity`` is how many flows to make room for up front; the table grows by itself.
    """

    def __init__(self, config: ConnectionTrackingConfiguration = DEFAULT_CONFIGURATION, *,
                 capacity: int = 1024) -> None:
        if not isinstance(config, ConnectionTrackingConfiguration):
            raise TypeError(f"config must be a ConnectionTrackingConfiguration, not {type(config).__name__}")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= 2**24:
            raise ValueError(f"capacity must be an int in 1..2**24 (flows to make room for), not {capacity!r}")
        self.config = config
        c = config
        self._core = ConntrackCore(c.tcp_opening, c.tcp_established, c.tcp_closing, c.udp,
                                   c.udp_stream, c.icmp, c.other, capacity)

    def check(self, eni: np.ndarray | int, packets: np.ndarray,
              rule_allowed: np.ndarray | bool, untracked: np.ndarray | bool = False) -> TrackResult:
        """Decide a batch of PACKET rows in order; later rows see the flows earlier rows opened.

        - ``eni``: int32 per row (or one int for every row), the index of the ENI whose security
          groups are evaluated; ``-1`` = no security group at this stage (allowed, untracked).
        - ``rule_allowed``: uint8 or bool per row (or one bool), whether the group's rules allow
          the packet.
        - ``untracked``: uint8 or bool per row (or one bool), whether the rules leave the row's
          flow untracked (EC2 "Untracked connections": open rules both ways); such a row the
          rules allow, of no live flow, passes and opens none.

        Times are seconds up to 1e15 (later ones, +inf included, are refused naming the row; a
        NaN or an earlier time happens at the tracker's clock).

        A row of a live flow of that ENI is allowed and tracked, and refreshes the flow's idle
        deadline from the row's ``time``; otherwise the rules decide, and a row they allow opens
        a flow (except a TCP RST). A TCP RST of a tracked flow ends it.
        """
        packets = _rows(packets, "packets", (PACKET,), "hyperplane.records.PACKET")
        n = len(packets)
        if n:
            late = packets["time"] > MAX_TIME  # NaN is not refused: it takes the clock
            if late.any():
                k = int(np.flatnonzero(late)[0])
                raise ValueError(f"packets[{k}].time = {float(packets['time'][k])!r} is later than "
                                 f"{MAX_TIME:g} s, the latest time a tracker takes")
        if isinstance(eni, (int, np.integer)) and not isinstance(eni, (bool, np.bool_)):
            eni_rows = np.full(n, _eni_value(eni), dtype=np.int32)
        else:
            eni_rows = _rows(eni, "eni", (np.dtype(np.int32),), "int32")
            _same_length(eni_rows, "eni", n)
            if n and eni_rows.min() < NO_SECURITY_GROUP:
                bad = int(np.flatnonzero(eni_rows < NO_SECURITY_GROUP)[0])
                raise ValueError(f"eni[{bad}] is {int(eni_rows[bad])}: an ENI index is >= 0, or -1 for no security group")
        rules = _flags(rule_allowed, "rule_allowed", n)
        loose = _flags(untracked, "untracked", n)
        allowed = np.empty(n, dtype=np.uint8)
        tracked = np.empty(n, dtype=np.uint8)
        self._core.check(eni_rows, packets, rules, allowed, tracked, loose)
        return TrackResult(allowed, tracked)

    def forget(self, eni: int) -> int:
        """Drop every flow of ``eni`` (the ENI was deleted); returns how many."""
        return self._core.forget(_eni_value(eni, allow_none=False))

    def expire(self, now: float) -> int:
        """Reap every flow idle past its timeout at ``now``; returns how many (``live`` is then exact)."""
        if isinstance(now, bool) or not isinstance(now, (int, float, np.floating, np.integer)):
            raise TypeError(f"now must be a number of seconds, not {type(now).__name__}")
        if not float(now) <= MAX_TIME:
            raise ValueError(f"now must be a number of seconds up to {MAX_TIME:g}, not {now!r}")
        return self._core.expire(float(now))

    # -- observation -------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """The clock: the latest packet time (or ``expire`` time) seen; -inf before any."""
        return self._core.now

    @property
    def live(self) -> int:
        """Flows stored: live ones plus dead ones not reaped yet (exact right after ``expire``)."""
        return self._core.live

    @property
    def memory_bytes(self) -> int:
        return self._core.memory_bytes()

    def index_stats(self) -> IndexStats:
        """The flow index: one entry per stored flow."""
        return IndexStats.of(self._core.index_stats())

    @property
    def capacity(self) -> int:
        """Flow slots allocated (the slab doubles when it is full of live flows)."""
        return self._core.capacity

    def counters(self) -> dict[str, int]:
        """Flows ``created``, ``expired`` (reaped after idling out) and ``closed`` (RST, reuse,
        forget), since the tracker was made."""
        return self._core.counters()

    def flows(self) -> np.ndarray:
        """Every stored flow as a structured array: eni, proto, ip_a, port_a, ip_b, port_b, bits
        (SEEN_A | SEEN_B | FIN_A | FIN_B), expires. Not a hot path."""
        return self._core.flows()

    def describe_flows(self) -> list[str]:
        """Readable lines, one per stored flow (for traces and debugging)."""
        out = []
        for f in self.flows().tolist():
            eni, proto, ip_a, port_a, ip_b, port_b, bits, expires = f
            out.append(f"eni#{eni} proto {proto} {ip_str(ip_a)}:{port_a} <-> {ip_str(ip_b)}:{port_b} "
                       f"bits={bits:#x} expires={expires:g}")
        return out

    def __repr__(self) -> str:
        return f"<ConnectionTracker flows={self.live} now={self.now:g}>"


def _rows(value: object, name: str, dtypes: tuple[np.dtype, ...], wanted: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of {wanted}, not {type(value).__name__}")
    if value.dtype not in dtypes:
        raise TypeError(f"{name} must be a numpy array of {wanted}, not an array of dtype {value.dtype}")
    if value.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, not of shape {value.shape}")
    if not value.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (np.ascontiguousarray({name}))")
    return value


def _same_length(arr: np.ndarray, name: str, n: int) -> None:
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} rows for {n} packets")


def _flags(value: object, name: str, n: int) -> np.ndarray:
    """A flag per row as uint8: one bool for every row, or a uint8/bool array of ``n`` rows."""
    if isinstance(value, (bool, np.bool_)):
        return np.full(n, bool(value), dtype=np.uint8)
    rows = _rows(value, name, (np.dtype(np.uint8), np.dtype(np.bool_)), "uint8 or bool")
    _same_length(rows, name, n)
    return rows.view(np.uint8)


def _eni_value(eni: object, allow_none: bool = True) -> int:
    if isinstance(eni, (bool, np.bool_)) or not isinstance(eni, (int, np.integer)):
        raise TypeError(f"eni must be an int ENI index, not {type(eni).__name__}")
    lo = NO_SECURITY_GROUP if allow_none else 0
    if not lo <= int(eni) <= MAX_ENI_INDEX:
        raise ValueError(f"eni must be an ENI index in {lo}..{MAX_ENI_INDEX}, not {int(eni)}")
    return int(eni)
