"""A plain-Python model of the connection table, written for reading, not speed.

It follows the theory of operation at the top of ``hyperplane/_nat.pyx`` literally: dicts for the
two indexes, eager expiry before every packet, the same port-draw sequence (splitmix64, 8 random
probes, then a linear scan). The compiled core must agree with it packet for packet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hyperplane.nat import NatStatus, Timeouts

M64 = (1 << 64) - 1
TCP, UDP, ICMP = 6, 17, 1
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
OPENING, ESTABLISHED, FIN_OUT, FIN_IN, CLOSED, UDP_NEW, UDP_REPLIED, ICMP_ECHO = range(1, 9)
KILL, REOPEN = "kill", "reopen"
PROBES = 8

# state -> event -> next state
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


@dataclass
class Conn:
    proto: int
    in_ip: int
    in_port: int
    rem_ip: int
    rem_port: int
    addr: int
    x_port: int
    state: int
    expires: float


@dataclass
class Stats:
    live: int = 0
    peak: int = 0
    created: int = 0
    expired: int = 0
    closed: int = 0
    refused: int = 0


class ReferenceNat:
    def __init__(self, *, gateway: bool, ports: tuple[int, int], max_per_address: int | None,
                 per_destination: int, timeouts: Timeouts, seed: int = 0) -> None:
        self.gateway = gateway
        self.port_lo, self.nports = ports[0], ports[1] - ports[0] + 1
        self.max_per_address = max_per_address or 0
        self.per_destination = per_destination
        self.timeout = timeouts.by_state()
        self.rng = seed
        self.now = -math.inf
        self.addresses: list[tuple[int, float]] = []
        self.stats: list[Stats] = []
        self.fwd: dict[tuple, Conn] = {}
        self.rev: dict[tuple, Conn] = {}

    def add_address(self, ip: int, active_from: float = -math.inf) -> None:
        self.addresses.append((ip, active_from))
        self.stats.append(Stats())

    # -- bookkeeping -----------------------------------------------------------------------

    def _rev_key(self, c: Conn) -> tuple:
        return (c.proto, self.addresses[c.addr][0], c.x_port, c.rem_ip, c.rem_port)

    def _kill(self, c: Conn, expired: bool) -> None:
        del self.fwd[(c.proto, c.in_ip, c.in_port, c.rem_ip, c.rem_port)]
        del self.rev[self._rev_key(c)]
        st = self.stats[c.addr]
        st.live -= 1
        if expired:
            st.expired += 1
        else:
            st.closed += 1

    def expire(self, now: float) -> None:
        self.now = max(self.now, now)
        for c in [c for c in self.fwd.values() if c.expires <= self.now]:
            self._kill(c, expired=True)

    def _rand(self) -> int:
        self.rng = (self.rng + 0x9E3779B97F4A7C15) & M64
        z = self.rng
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def _dest_count(self, a: int, proto: int, rip: int, rport: int) -> int:
        return sum(1 for c in self.fwd.values()
                   if (c.addr, c.proto, c.rem_ip, c.rem_port) == (a, proto, rip, rport))

    def _draw_port(self, a: int, proto: int, rip: int, rport: int) -> int:
        ip = self.addresses[a][0]
        off = 0
        for _ in range(PROBES):
            off = ((self._rand() >> 32) * self.nports) >> 32
            if (proto, ip, self.port_lo + off, rip, rport) not in self.rev:
                return self.port_lo + off
        for _ in range(self.nports):
            off = (off + 1) % self.nports
            if (proto, ip, self.port_lo + off, rip, rport) not in self.rev:
                break
        return self.port_lo + off

    def _open(self, rec, state: int) -> tuple[Conn | None, NatStatus]:
        only_full = True
        for a, (ip, active_from) in enumerate(self.addresses):
            if active_from > self.now:
                continue
            if self.max_per_address and self.stats[a].live >= self.max_per_address:
                continue
            if self._dest_count(a, rec["proto"], rec["dst_ip"], rec["dst_port"]) >= self.per_destination:
                only_full = False
                continue
            port = self._draw_port(a, rec["proto"], rec["dst_ip"], rec["dst_port"])
            c = Conn(int(rec["proto"]), int(rec["src_ip"]), int(rec["src_port"]), int(rec["dst_ip"]),
                     int(rec["dst_port"]), a, port, state, self.now + self.timeout[state])
            self.fwd[(c.proto, c.in_ip, c.in_port, c.rem_ip, c.rem_port)] = c
            self.rev[self._rev_key(c)] = c
            st = self.stats[a]
            st.live += 1
            st.created += 1
            st.peak = max(st.peak, st.live)
            return c, NatStatus.CREATED
        active = [a for a, (_, f) in enumerate(self.addresses) if f <= self.now]
        return None, (NatStatus.ADDRESS_FULL if only_full or not active else NatStatus.PORTS_EXHAUSTED)

    # -- packets ---------------------------------------------------------------------------

    def process_one(self, rec, direction: int, on_full=None) -> tuple[NatStatus, tuple]:
        """Returns (status, (src_ip, src_port, dst_ip, dst_port)) after translation."""
        self.expire(float(rec["time"]))
        proto, flags = int(rec["proto"]), int(rec["flags"])
        fields = (int(rec["src_ip"]), int(rec["src_port"]), int(rec["dst_ip"]), int(rec["dst_port"]))
        if not (proto in (TCP, UDP) or (proto == ICMP and self.gateway)):
            return NatStatus.UNSUPPORTED_PROTOCOL, fields
        if direction == 0:
            c = self.fwd.get((proto, fields[0], fields[1], fields[2], fields[3]))
            ev = tcp_event(flags, True) if proto == TCP else "other"
            if c is not None and proto == TCP and TCP_NEXT[c.state].get(ev) == REOPEN:
                self._kill(c, expired=False)
                c = None
            status = NatStatus.TRANSLATED
            if c is None:
                if proto == TCP:
                    initial = OPENING if ev == "syn_out" else None
                elif proto == UDP:
                    initial = UDP_NEW
                else:
                    initial = ICMP_ECHO if flags == 8 else None
                if initial is None:
                    return (NatStatus.RST_NO_CONNECTION if self.gateway and proto == TCP
                            else NatStatus.NO_CONNECTION), fields
                c, status = self._open(rec, initial)
                while c is None and on_full is not None and not any(f > self.now for _, f in self.addresses):
                    before = len(self.addresses)
                    if not on_full(self, self.now, status) or len(self.addresses) == before:
                        break
                    c, status = self._open(rec, initial)
                if c is None:
                    for a, (_, f) in enumerate(self.addresses):
                        if f <= self.now:
                            self.stats[a].refused += 1
                    return status, fields
            translated = (self.addresses[c.addr][0], c.x_port, fields[2], fields[3])
        else:
            c = self.rev.get((proto, fields[2], fields[3], fields[0], fields[1]))
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
        c.state = nxt
        c.expires = self.now + self.timeout[nxt]
        return status, translated

    def live_connections(self) -> set[tuple]:
        return {(c.in_ip, c.in_port, c.rem_ip, c.rem_port, c.proto, self.addresses[c.addr][0], c.x_port, c.state,
                 c.expires) for c in self.fwd.values()}
