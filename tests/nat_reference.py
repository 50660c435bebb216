"""A plain-Python model of the connection table, written from the documents, not from the code.

It knows what SPEC §2 (V2N), SPEC §4 (NAT gateway) and the README's table of defaults say, and no
more: it does not draw ports. Where the table has a free choice (which port a new connection
gets), the model takes the implementation's choice and checks that it was allowed:

- the port lies in the table's range (1024-65535 by default, Lambda's ephemeral range);
- no live connection already holds the same translated tuple (address, port, remote ip, remote
  port, protocol): a port is not reused while its connection lives;
- the address is the first one, in the order added, that is active and has room ("new
  connections go there": the overflow ENI only once the first is full);
- at most ``max_per_address`` live connections per address (65,000 per Hyperplane ENI) and at
  most ``per_destination`` per (address, destination ip, destination port, protocol) (55,000 on
  a NAT gateway);
- later packets of a connection get the same translation.

Time is exact: a connection is live while ``now < last packet + timeout`` in rational arithmetic
(``Fraction``), so the model does not share the implementation's floating-point sums. The
deadline the table reports must be the first double at or after that exact sum.

Everything else (verdicts, TCP states, counters) the model predicts. Its own map from state to
timeout is built from the ``Timeouts`` field names and the documented meaning of each.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from hyperplane.tables.nat import NatStatus, Timeouts

TCP, UDP, ICMP = 6, 17, 1
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

# The documented defaults (SPEC §2, SPEC §4 and the README's table), written down here again so
# that a changed default in the code is caught by tests/test_nat.py rather than copied.
HYPERPLANE_ENI_MAX_CONNECTIONS = 65_000  # SPEC §2 "65,000 connections per Hyperplane ENI"
NAT_GATEWAY_MAX_PER_DESTINATION = 55_000  # SPEC §4 "at most 55,000 ... to each unique destination"
EPHEMERAL_PORTS = (1024, 65535)  # SPEC §2 "a port allocated on that ENI from 1024-65535"
# SPEC §2: TCP established 350 s; opening/closing 120 s; UDP 30 s, or 180 s once replies were seen
# (a Hyperplane ENI carries no ICMP: the README documents no ICMP timeout for it)
DOCUMENTED_ENI_TIMEOUTS = {"tcp_established": 350.0, "tcp_transitory": 120.0, "udp": 30.0,
                           "udp_replied": 180.0}
# SPEC §4: "idle timeout 350 s" for everything a NAT gateway carries
DOCUMENTED_GATEWAY_TIMEOUTS = {"tcp_established": 350.0, "tcp_transitory": 350.0, "udp": 350.0,
                               "udp_replied": 350.0, "icmp": 350.0}

# The model's own states (names, not the core's numbers).
OPENING, ESTABLISHED, FIN_OUT, FIN_IN, CLOSED = "tcp-opening", "tcp-established", "tcp-fin-out", "tcp-fin-in", "tcp-closed"
UDP_NEW, UDP_REPLIED, ICMP_ECHO = "udp", "udp-replied", "icmp"
KILL, REOPEN = "kill", "reopen"

# Which documented timeout each state idles out after: "opening/closing" states share one.
STATE_TIMEOUT_FIELD = {
    OPENING: "tcp_transitory", ESTABLISHED: "tcp_established", FIN_OUT: "tcp_transitory",
    FIN_IN: "tcp_transitory", CLOSED: "tcp_transitory", UDP_NEW: "udp", UDP_REPLIED: "udp_replied",
    ICMP_ECHO: "icmp",
}

# state -> event -> next state (the README: an RST closes at once; after FIN both ways the
# connection lingers; an outbound SYN on a closed tuple opens a new connection)
TCP_NEXT = {
    OPENING: {"other": OPENING, "syn_out": OPENING, "synack_in": ESTABLISHED, "fin_out": FIN_OUT, "fin_in": FIN_IN},
    ESTABLISHED: {"other": ESTABLISHED, "syn_out": ESTABLISHED, "synack_in": ESTABLISHED, "fin_out": FIN_OUT,
                  "fin_in": FIN_IN},
    FIN_OUT: {"other": FIN_OUT, "syn_out": FIN_OUT, "synack_in": FIN_OUT, "fin_out": FIN_OUT, "fin_in": CLOSED},
    FIN_IN: {"other": FIN_IN, "syn_out": FIN_IN, "synack_in": FIN_IN, "fin_out": CLOSED, "fin_in": FIN_IN},
    CLOSED: {"other": CLOSED, "syn_out": REOPEN, "synack_in": CLOSED, "fin_out": CLOSED, "fin_in": CLOSED},
}


def tcp_event(flags: int, outbound: bool) -> str:
    if flags & RST:
        return "rst"
    if flags & (SYN | ACK | FIN) == SYN:
        return "syn_out" if outbound else "other"
    if flags & (SYN | ACK) == SYN | ACK:
        return "other" if outbound else "synack_in"
    if flags & FIN:
        return "fin_out" if outbound else "fin_in"
    return "other"


def exact_deadline(t: float, timeout: float) -> Fraction:
    return Fraction(t) + Fraction(timeout)


def reported_deadline(deadline: Fraction) -> float:
    """The double a table must report for an exact deadline: the first one at or after it (so
    that ``now < expires`` is exactly ``now < deadline`` for every double ``now``)."""
    e = float(deadline)  # nearest
    if Fraction(e) < deadline:
        e = math.nextafter(e, math.inf)
    return e


class InvalidChoice(AssertionError):
    """The implementation chose something the documents do not allow."""


@dataclass
class Conn:
    proto: int
    in_ip: int
    in_port: int
    rem_ip: int
    rem_port: int
    addr: int
    x_port: int
    state: str
    deadline: Fraction

    @property
    def translated(self) -> tuple[int, int, int, int, int]:
        return (self.proto, self.addr, self.x_port, self.rem_ip, self.rem_port)


@dataclass
class Stats:
    live: int = 0
    peak: int = 0
    created: int = 0
    expired: int = 0
    closed: int = 0
    refused: int = 0


# chosen() -> the (address ip, port) the implementation gave the row that opens a connection
Chosen = Callable[[], tuple[int, int]]


class ReferenceNat:
    def __init__(self, *, gateway: bool, ports: tuple[int, int], max_per_address: int | None,
                 per_destination: int, timeouts: Timeouts) -> None:
        self.gateway = gateway
        self.ports = ports
        self.max_per_address = max_per_address or 0
        self.per_destination = per_destination
        self.timeout = {state: float(getattr(timeouts, name)) for state, name in STATE_TIMEOUT_FIELD.items()}
        self.now = -math.inf
        self.addresses: list[tuple[int, float]] = []
        self.stats: list[Stats] = []
        self.conns: dict[tuple, Conn] = {}  # by inside tuple

    def add_address(self, ip: int, active_from: float = -math.inf) -> None:
        self.addresses.append((ip, active_from))
        self.stats.append(Stats())

    # -- bookkeeping -----------------------------------------------------------------------

    def _kill(self, c: Conn, expired: bool) -> None:
        del self.conns[(c.proto, c.in_ip, c.in_port, c.rem_ip, c.rem_port)]
        st = self.stats[c.addr]
        st.live -= 1
        if expired:
            st.expired += 1
        else:
            st.closed += 1

    def expire(self, now: float) -> None:
        if now > self.now:
            self.now = now
        for c in [c for c in self.conns.values() if not Fraction(self.now) < c.deadline]:
            self._kill(c, expired=True)

    def _refresh(self, c: Conn, state: str) -> None:
        c.state = state
        c.deadline = exact_deadline(self.now, self.timeout[state])

    def _by_translation(self, proto: int, x_ip: int, x_port: int, rip: int, rport: int) -> Conn | None:
        for c in self.conns.values():
            if c.translated == (proto, self._addr_index(x_ip), x_port, rip, rport):
                return c
        return None

    def _addr_index(self, ip: int) -> int:
        for a, (aip, _) in enumerate(self.addresses):
            if aip == ip:
                return a
        return -1

    def _dest_count(self, a: int, proto: int, rip: int, rport: int) -> int:
        return sum(1 for c in self.conns.values() if (c.addr, c.proto, c.rem_ip, c.rem_port) == (a, proto, rip, rport))

    def _open(self, rec, state: str, chosen: Chosen) -> tuple[Conn | None, NatStatus]:
        proto, rip, rport = int(rec["proto"]), int(rec["dst_ip"]), int(rec["dst_port"])
        only_full = True
        for a, (ip, active_from) in enumerate(self.addresses):
            if active_from > self.now:
                continue
            if self.max_per_address and self.stats[a].live >= self.max_per_address:
                continue
            if self._dest_count(a, proto, rip, rport) >= self.per_destination:
                only_full = False
                continue
            got_ip, port = chosen()
            if got_ip != ip:
                raise InvalidChoice(f"a new connection should go to address {ip} (the first with room); "
                                    f"the row left with source address {got_ip}")
            if not self.ports[0] <= port <= self.ports[1]:
                raise InvalidChoice(f"port {port} is outside {self.ports}")
            holder = self._by_translation(proto, ip, port, rip, rport)
            if holder is not None:
                raise InvalidChoice(f"port {port} on {ip} is still held by a live connection {holder}")
            c = Conn(proto, int(rec["src_ip"]), int(rec["src_port"]), rip, rport, a, port, state,
                     exact_deadline(self.now, self.timeout[state]))
            self.conns[(c.proto, c.in_ip, c.in_port, c.rem_ip, c.rem_port)] = c
            st = self.stats[a]
            st.live += 1
            st.created += 1
            st.peak = max(st.peak, st.live)
            return c, NatStatus.CREATED
        active = [a for a, (_, f) in enumerate(self.addresses) if f <= self.now]
        return None, (NatStatus.ADDRESS_FULL if only_full or not active else NatStatus.PORTS_EXHAUSTED)

    # -- packets ---------------------------------------------------------------------------

    def process_one(self, rec, direction: int, chosen: Chosen, on_full=None) -> tuple[NatStatus, tuple]:
        """Returns (status, (src_ip, src_port, dst_ip, dst_port)) after translation. ``chosen``
        gives the implementation's translation of this row, asked for only when it opens a
        connection (and then checked)."""
        self.expire(float(rec["time"]))
        proto, flags = int(rec["proto"]), int(rec["flags"])
        fields = (int(rec["src_ip"]), int(rec["src_port"]), int(rec["dst_ip"]), int(rec["dst_port"]))
        # SPEC §2: "Only TCP and UDP are carried"; SPEC §4: a NAT gateway carries "TCP, UDP and ICMP"
        if not (proto in (TCP, UDP) or (proto == ICMP and self.gateway)):
            return NatStatus.UNSUPPORTED_PROTOCOL, fields
        if direction == 0:
            c = self.conns.get((proto, fields[0], fields[1], fields[2], fields[3]))
            ev = tcp_event(flags, True) if proto == TCP else "other"
            if c is not None and proto == TCP and TCP_NEXT[c.state].get(ev) == REOPEN:
                self._kill(c, expired=False)
                c = None
            status = NatStatus.TRANSLATED
            if c is None:
                # SPEC §2: "A TCP connection is opened only by a SYN"; "A UDP flow is opened by the
                # first outbound datagram"; on a gateway an echo request (type 8) opens ICMP
                if proto == TCP:
                    initial = OPENING if ev == "syn_out" else None
                elif proto == UDP:
                    initial = UDP_NEW
                else:
                    initial = ICMP_ECHO if flags == 8 else None
                if initial is None:
                    return (NatStatus.RST_NO_CONNECTION if self.gateway and proto == TCP
                            else NatStatus.NO_CONNECTION), fields
                c, status = self._open(rec, initial, chosen)
                while c is None and on_full is not None and not any(f > self.now for _, f in self.addresses):
                    before = len(self.addresses)
                    if not on_full(self, self.now, status) or len(self.addresses) == before:
                        break
                    c, status = self._open(rec, initial, chosen)
                if c is None:
                    for a, (_, f) in enumerate(self.addresses):
                        if f <= self.now:
                            self.stats[a].refused += 1
                    return status, fields
            translated = (self.addresses[c.addr][0], c.x_port, fields[2], fields[3])
        else:
            c = self._by_translation(proto, fields[2], fields[3], fields[0], fields[1])
            # SPEC §2: a packet to a Hyperplane ENI address that matches no connection is dropped
            if c is None or (proto == ICMP and flags != 0):
                return NatStatus.UNSOLICITED, fields
            status = NatStatus.TRANSLATED
            ev = tcp_event(flags, False) if proto == TCP else "other"
            translated = (fields[0], fields[1], c.in_ip, c.in_port)
        if proto == TCP:
            nxt = KILL if ev == "rst" else TCP_NEXT[c.state][ev]
        elif proto == UDP and direction == 1:
            nxt = UDP_REPLIED
        else:
            nxt = c.state
        if nxt == KILL:
            self._kill(c, expired=False)
            return NatStatus.CLOSED, translated
        self._refresh(c, nxt)
        return status, translated

    def live_connections(self) -> set[tuple]:
        """(in_ip, in_port, rem_ip, rem_port, proto, address, x_port, state name, reported deadline)."""
        return {(c.in_ip, c.in_port, c.rem_ip, c.rem_port, c.proto, self.addresses[c.addr][0], c.x_port, c.state,
                 reported_deadline(c.deadline)) for c in self.conns.values()}
