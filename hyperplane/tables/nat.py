"""Connection tables of the two translators: Hyperplane ENIs (V2N) and NAT gateways.

The loops live in the compiled ``_nat`` module (its header explains the theory of operation);
this module checks arguments, holds the AWS defaults and turns the compiled counters into
Python objects. See SPEC §2 (V2N) and §4 (NAT gateway) for the numbers.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, astuple

import numpy as np

from hyperplane._core import _codes
from hyperplane._core._nat import NatCore, first_bad_time
from hyperplane.codes import Code
from hyperplane.tables.index import IndexStats
from hyperplane.records import PACKET, ip_str

__all__ = [
    "ConnectionTable",
    "Direction",
    "NatResult",
    "NatStatus",
    "Timeouts",
    "AddressStats",
    "HYPERPLANE_ENI_TIMEOUTS",
    "NAT_GATEWAY_TIMEOUTS",
]

LAMBDA_EPHEMERAL_PORTS = (1024, 65535)
HYPERPLANE_ENI_MAX_CONNECTIONS = 65_000
NAT_GATEWAY_MAX_PER_DESTINATION = 55_000
NAT_GATEWAY_MAX_ADDRESSES = 8
MIN_TIMEOUT = 0.001
# Seconds; earlier packets are clamped to the table's clock, later ones refused. Up to 1e15 doubles
# are at most 1/8 s apart, so the one-second timer wheel tells deadlines apart; a timeout below
# that spacing is not lost: deadlines are rounded up (a connection lives while now < t + timeout,
# exactly), so a 1 ms connection at 1e15 s lives for its packet's instant and is dead at the next.
MAX_TIME = 1e15


class Direction(Code):
    """Which way a packet crosses the table (values: ``_codes.Direction``)."""

    OUT = _codes.Direction.DIR_OUT  # from the inside (execution environment / instance behind the NAT gateway)
    IN = _codes.Direction.DIR_IN  # from the remote side, to a translating address


_S = _codes.NatStatus


class NatStatus(Code):
    """What the table did with one packet (values: the compiled core's ``_codes.NatStatus``)."""

    TRANSLATED = _S.S_TRANSLATED  # belongs to a live connection
    CREATED = _S.S_CREATED  # opened a connection: an address and port were allocated
    CLOSED = _S.S_CLOSED  # translated, and the connection ended with it (RST)
    NO_CONNECTION = _S.S_NO_CONNECTION  # from the inside, cannot open a connection (TCP without SYN, ICMP not echo)
    RST_NO_CONNECTION = _S.S_RST_NO_CONNECTION  # same on a NAT gateway for TCP: the gateway answers with an RST
    UNSOLICITED = _S.S_UNSOLICITED  # from the outside, matches no live connection (one-way NAT)
    UNSUPPORTED_PROTOCOL = _S.S_UNSUPPORTED_PROTOCOL  # not TCP/UDP (or ICMP on a NAT gateway)
    ADDRESS_FULL = _S.S_ADDRESS_FULL  # every address holds its maximum of connections
    PORTS_EXHAUSTED = _S.S_PORTS_EXHAUSTED  # no address has a free port left for this destination

    @property
    def passed(self) -> bool:
        return self < _codes.S_FIRST_REFUSAL

    @property
    def is_capacity(self) -> bool:
        return self in (NatStatus.ADDRESS_FULL, NatStatus.PORTS_EXHAUSTED)


@dataclass(frozen=True)
class Timeouts:
    """Idle timeouts in seconds, by connection state."""

    tcp_established: float = 350.0
    tcp_transitory: float = 120.0  # opening and closing states
    udp: float = 30.0
    udp_replied: float = 180.0  # once a reply has been seen
    icmp: float = 60.0

    def by_state(self) -> list[float]:
        """The timeout of each connection state, indexed by its code (``_codes.ConnState``)."""
        st, t = _codes.ConnState, self.tcp_transitory
        of = {st.ST_DEAD: 0.0, st.ST_TCP_OPENING: t, st.ST_TCP_ESTABLISHED: self.tcp_established,
              st.ST_TCP_FIN_OUT: t, st.ST_TCP_FIN_IN: t, st.ST_TCP_CLOSED: t, st.ST_UDP: self.udp,
              st.ST_UDP_REPLIED: self.udp_replied, st.ST_ICMP: self.icmp}
        return [of[st(k)] for k in range(_codes.N_STATES)]  # KeyError if a state has no timeout


HYPERPLANE_ENI_TIMEOUTS = Timeouts()
NAT_GATEWAY_TIMEOUTS = Timeouts(350.0, 350.0, 350.0, 350.0, 350.0)

# connection state names by code: "tcp-fin-out" for ST_TCP_FIN_OUT
STATE_NAMES = tuple(s.name[3:].lower().replace("_", "-") for s in sorted(_codes.ConnState))


@dataclass(frozen=True)
class AddressStats:
    address: str
    active_from: float
    live: int
    peak: int
    created: int
    expired: int
    closed: int
    refused: int


@dataclass(frozen=True)
class NatResult:
    packets: np.ndarray  # PACKET rows after translation (unchanged where refused)
    status: np.ndarray  # uint8 NatStatus per row

    def __len__(self) -> int:
        return len(self.status)


def _result_buffers(out: object, packets: np.ndarray) -> NatResult:
    """``out`` of ConnectionTable.process, checked: writable contiguous PACKET rows and uint8
    statuses, one per packet, apart from the packets (a row is read after its output is written)."""
    if not isinstance(out, NatResult):
        raise TypeError(f"out must be a NatResult (from an earlier process call), not {_describe(out)}")
    for name, array, dtype, dtype_name in (("out.packets", out.packets, PACKET, "hyperplane.records.PACKET"),
                                           ("out.status", out.status, np.dtype(np.uint8), "uint8")):
        if not isinstance(array, np.ndarray) or array.dtype != dtype:
            raise TypeError(f"{name} must be a numpy array of {dtype_name}, not {_describe(array)}")
        if array.shape != (len(packets),):
            raise ValueError(f"{name} has shape {array.shape}, the batch {len(packets)} rows")
        if not (array.flags.c_contiguous and array.flags.writeable):
            raise ValueError(f"{name} must be a writable contiguous array")
    if np.may_share_memory(out.packets, packets) or np.may_share_memory(out.status, packets):
        raise ValueError("out must not overlap the packets it translates")
    return out


# on_full(table, now, status) -> True if it added an address (the batch then resumes there)
OnFull = Callable[["ConnectionTable", float, NatStatus], bool]


def _address(value: str | int, what: str) -> int:
    try:
        return int(ipaddress.IPv4Address(value))
    except (ipaddress.AddressValueError, ValueError, TypeError) as exc:
        raise ValueError(f"{what}: {value!r} is not an IPv4 address") from exc


def _positive(value: float, what: str) -> float:
    # a millisecond at least: at epoch times (~1.7e9 s) a smaller step vanishes in now + timeout
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= MIN_TIMEOUT):
        raise ValueError(f"{what} must be at least {MIN_TIMEOUT} s (a finite number), not {value!r}")
    return float(value)


def _check_time(value: float, what: str) -> float:
    if math.isnan(value) or value > MAX_TIME:
        raise ValueError(f"{what} must be a number of seconds up to {MAX_TIME:g}, not {value!r}")
    return value


class ConnectionTable:
    """A pool of translating addresses and the connections they carry.

    Use :meth:`hyperplane_eni` or :meth:`nat_gateway` for AWS's defaults.
    """

    def __init__(
        self,
        *,
        gateway: bool,
        addresses: Iterable[str | int] = (),
        ports: tuple[int, int] = LAMBDA_EPHEMERAL_PORTS,
        max_connections_per_address: int | None,
        max_connections_per_destination: int | None,
        timeouts: Timeouts,
        seed: int = 0,
        capacity: int = 1024,
        on_full: OnFull | None = None,
    ) -> None:
        lo, hi = ports if isinstance(ports, tuple) and len(ports) == 2 else (None, None)
        if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi <= 65535):
            raise ValueError(f"ports must be (first, last) with 1 <= first <= last <= 65535, not {ports!r}")
        nports = hi - lo + 1
        per_dest = nports if max_connections_per_destination is None else max_connections_per_destination
        if not (isinstance(per_dest, int) and 1 <= per_dest <= nports):
            raise ValueError(
                f"max_connections_per_destination must be 1..{nports} (the number of ports), not {per_dest!r}")
        per_addr = max_connections_per_address or 0
        if not (isinstance(per_addr, int) and 0 <= per_addr <= 2**32):
            raise ValueError(f"max_connections_per_address must be 1..2**32 or None, not {per_addr!r}")
        if not isinstance(timeouts, Timeouts):
            raise TypeError(f"timeouts must be a hyperplane.tables.nat.Timeouts, not {type(timeouts).__name__}")
        for name, value in zip(Timeouts.__dataclass_fields__, astuple(timeouts)):
            _positive(value, f"timeouts.{name}")
        if not (isinstance(seed, int) and 0 <= seed < 2**64):
            raise ValueError(f"seed must be an int in 0..2**64-1, not {seed!r}")
        if not (isinstance(capacity, int) and 1 <= capacity <= 2**23):
            raise ValueError(f"capacity must be 1..2**23 (connections to make room for), not {capacity!r}")
        self.gateway = gateway
        self.ports = (lo, hi)
        self.max_connections_per_address = per_addr or None
        self.max_connections_per_destination = per_dest
        self.timeouts = timeouts
        self.on_full = on_full
        self._core = NatCore(gateway, lo, nports, per_addr, per_dest, timeouts.by_state(), seed, capacity)
        for a in addresses:
            self.add_address(a)

    @classmethod
    def hyperplane_eni(cls, addresses: Iterable[str | int] = (), **kw) -> ConnectionTable:
        """V2N: TCP/UDP only, 65,000 connections per ENI address, Lambda's ephemeral ports."""
        kw.setdefault("max_connections_per_address", HYPERPLANE_ENI_MAX_CONNECTIONS)
        kw.setdefault("max_connections_per_destination", None)
        kw.setdefault("timeouts", HYPERPLANE_ENI_TIMEOUTS)
        return cls(gateway=False, addresses=addresses, **kw)

    @classmethod
    def nat_gateway(cls, addresses: Iterable[str | int], **kw) -> ConnectionTable:
        """NAT gateway: TCP/UDP/ICMP, 55,000 connections per address to each destination."""
        addresses = list(addresses)
        if not 1 <= len(addresses) <= NAT_GATEWAY_MAX_ADDRESSES:
            raise ValueError(f"a NAT gateway has 1..{NAT_GATEWAY_MAX_ADDRESSES} addresses, not {len(addresses)}")
        kw.setdefault("max_connections_per_address", None)
        kw.setdefault("max_connections_per_destination", NAT_GATEWAY_MAX_PER_DESTINATION)
        kw.setdefault("timeouts", NAT_GATEWAY_TIMEOUTS)
        return cls(gateway=True, addresses=addresses, **kw)

    # -- addresses ---------------------------------------------------------------------------

    def add_address(self, address: str | int, active_from: float = -math.inf) -> int:
        """Add a translating address (an overflow ENI is active only from ``active_from``)."""
        ip = _address(address, "address")
        if self.gateway and self._core.n_addresses >= NAT_GATEWAY_MAX_ADDRESSES:
            raise ValueError(f"address: a NAT gateway has at most {NAT_GATEWAY_MAX_ADDRESSES} addresses")
        if any(self._core.address(a)[0] == ip for a in range(self._core.n_addresses)):
            raise ValueError(f"address {ip_str(ip)} is already in the table")
        if math.isnan(active_from):
            raise ValueError("active_from must be a time in seconds, not NaN")
        return self._core.add_address(ip, float(active_from))

    @property
    def addresses(self) -> list[str]:
        return [ip_str(self._core.address(a)[0]) for a in range(self._core.n_addresses)]

    # -- packets -----------------------------------------------------------------------------

    def process(self, packets: np.ndarray, direction: int | np.ndarray, *, pickup: bool = False,
                out: NatResult | None = None) -> NatResult:
        """Translate a batch of PACKET rows; ``direction`` is one Direction or one per row.
        ``pickup``: mid-stream pickup, an outbound TCP ACK of no connection opens it as
        established (Linux conntrack's loose mode; replay uses it). ``out``: a NatResult of
        as many rows (from an earlier batch) to write the results into and return, instead of
        new arrays: a caller streaming batches saves the fresh pages of a new result each time
        (a tenth of the cost of translating an established packet)."""
        if not isinstance(packets, np.ndarray) or packets.dtype != PACKET:
            raise TypeError(f"packets must be a numpy array of hyperplane.records.PACKET, not {_describe(packets)}")
        if packets.ndim != 1:
            raise ValueError(f"packets must be one-dimensional, not of shape {packets.shape}")
        packets = np.ascontiguousarray(packets)
        bad = first_bad_time(packets, MAX_TIME)
        if bad >= 0:
            raise ValueError(f"packets[{bad}].time must be a number of seconds up to {MAX_TIME:g}, "
                             f"not {packets['time'][bad]!r}")
        dirs = np.ascontiguousarray(np.atleast_1d(np.asarray(direction)))
        if dirs.dtype.kind not in "iub" or dirs.ndim != 1:
            raise TypeError(f"direction must be 0/1 integers, not {_describe(direction)}")
        if dirs.size not in (1, len(packets)):
            raise ValueError(f"direction has {dirs.size} values for {len(packets)} packets")
        if dirs.size and (dirs.min() < 0 or dirs.max() > 1):
            raise ValueError("direction values must be 0 (Direction.OUT) or 1 (Direction.IN)")
        dirs = dirs.astype(np.uint8, copy=False)
        if out is None:
            result = NatResult(np.empty_like(packets), np.empty(len(packets), dtype=np.uint8))
        else:
            result = _result_buffers(out, packets)
        out_rows, status = result.packets, result.status
        on_full = self.on_full
        stop_on_full = on_full is not None
        start = 0
        while start < len(packets):
            start = self._core.process(packets, dirs, out_rows, status, start, -1, stop_on_full, pickup)
            if start == len(packets):
                break
            # a new connection found every address full and none pending: ask for another
            now = max(float(packets["time"][start]), self._core.now)
            before = self._core.n_addresses
            assert on_full is not None  # the core stops only when asked to
            if not on_full(self, now, NatStatus(status[start])) or self._core.n_addresses == before:
                start = self._core.process(packets, dirs, out_rows, status, start, start + 1, False, pickup)
        return result

    def lookup(self, packets: np.ndarray, direction: Direction) -> tuple[np.ndarray, np.ndarray]:
        """(translated rows, found mask) for rows of live connections; the table is not changed."""
        if not isinstance(packets, np.ndarray) or packets.dtype != PACKET or packets.ndim != 1:
            raise TypeError(f"packets must be a one-dimensional array of PACKET, not {_describe(packets)}")
        packets = np.ascontiguousarray(packets)
        out = np.empty_like(packets)
        found = np.empty(len(packets), dtype=np.uint8)
        self._core.lookup(packets, int(Direction(direction)), out, found)
        return out, found.view(bool)

    def expire(self, now: float) -> None:
        """Reap every connection idle past its timeout at ``now`` (counters become exact)."""
        self._core.expire(_check_time(float(now), "now"))

    # -- observation -------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self._core.now

    @property
    def live(self) -> int:
        return self._core.live

    def stats(self) -> list[AddressStats]:
        out = []
        for a in range(self._core.n_addresses):
            ip, active_from = self._core.address(a)
            s = self._core.address_stats(a)
            out.append(AddressStats(ip_str(ip), active_from, s["live"], s["peak"], s["created"],
                                    s["expired"], s["closed"], s["refused"]))
        return out

    def status_counts(self) -> dict[NatStatus, int]:
        counts = self._core.status_counts()
        return {st: counts[st] for st in NatStatus if counts[st]}

    def connections(self) -> np.ndarray:
        """Every live connection (structured array; ``state`` indexes STATE_NAMES)."""
        return self._core.connections()

    @property
    def memory_bytes(self) -> int:
        return self._core.memory_bytes()

    def index_stats(self) -> dict[str, IndexStats]:
        """The ``forward`` (inside tuple) and ``reverse`` (translated tuple) index: each holds
        one entry per live connection, or dead one not reaped yet."""
        forward, reverse = self._core.index_stats()
        return {"forward": IndexStats.of(forward), "reverse": IndexStats.of(reverse)}

    def __repr__(self) -> str:
        kind = "NAT gateway" if self.gateway else "Hyperplane ENI"
        return f"<ConnectionTable {kind} {self.addresses} live={self.live}>"


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype}"
    return type(value).__name__
