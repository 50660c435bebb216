# cython: language_level=3, embedsignature=True
"""Connection tables with port pools: the V2N NAT of Hyperplane ENIs and the NAT gateway.

Theory of operation
===================

One table translates for a pool of addresses (the Hyperplane ENIs of one (subnet, SG set) pair,
or the addresses of one NAT gateway). Packets arrive as ``packet_t`` rows with a direction:
OUT (from the inside: an execution environment, or an instance behind the NAT gateway) or IN
(from the remote side, addressed to a translating address).

Keys. A connection is (proto, inside ip:port, remote ip:port) ⇄ (proto, address:x_port,
remote ip:port). The remote end is never translated. Two open-addressing indexes (_index.pxd,
shared with _conntrack) find a connection by either tuple; a translated tuple is never held by
two live connections.

Opening (one way). Only OUT packets open connections: TCP by a SYN (flags & (SYN|ACK|RST|FIN) ==
SYN), UDP by any datagram, ICMP (gateway mode only) by an echo request (type 8; the identifier
rides in src_port). With ``pickup`` (mid-stream pickup, for replaying captures that begin inside
connections: Linux conntrack's loose mode, nf_conntrack_tcp_loose) a TCP ACK without SYN, FIN or
RST also opens one, straight into ESTABLISHED (status CREATED, as a SYN's). An OUT packet that
cannot open and has no connection gets NO_CONNECTION, or
RST_NO_CONNECTION for TCP in gateway mode (the NAT gateway answers it with an RST). An IN packet
with no live connection gets UNSOLICITED; inbound ICMP maps only echo replies (type 0).
Anything but TCP/UDP (and ICMP on a gateway) gets UNSUPPORTED_PROTOCOL.

Allocation. Addresses are tried in the order they were added, skipping those not yet active
(a pending overflow ENI). An address refuses a new connection when it holds max_per_address
live connections, or when the destination (proto, remote ip, remote port) already has
per_dest_limit live connections on it. Otherwise a port is drawn: up to PROBES random ports
(splitmix64, Lemire reduction into [port_lo, port_lo + nports)), then a linear scan upward from
the last draw, wrapping; the scan always succeeds because the destination count is below the
number of ports. If every active address refuses: ADDRESS_FULL when all of them refused for
max_per_address (or none is active), else PORTS_EXHAUSTED. With stop_on_full the batch stops at
that packet when no address is pending, so that the caller can add one and resume.

State and time. TCP follows TCP_NEXT below (RST in either direction closes at once, after the RST
itself is translated; a SYN on a CLOSED tuple replaces the connection). UDP becomes REPLIED once
an IN packet is seen. Every packet refreshes ``expires = now + timeout[state]``, rounded up to
the next double (``deadline`` in _tables.pxd); a connection is live while now < expires, which is
then exact for every double ``now``: a timeout smaller than the spacing of doubles at ``now``
(1 ms from 2**44 s on) keeps the connection for its own instant, and never yields a deadline
equal to the time that set it. Time is the packet's own ``time``, clamped to be non-decreasing
and to at most MAX_TIME (1e15 s, where doubles are 1/8 s apart, so one-second buckets stay
distinct).

Expiry is amortized through a timer wheel of one-second buckets: a connection sits in a bucket
whose second is at or before its deadline; when the clock passes a second, that bucket's
connections are reaped if dead or moved to the bucket of their (since extended) deadline. A
connection that expired within the current second is killed lazily when a lookup or a port probe
meets it, or by a sweep of the current bucket before any refusal (so capacity decisions are
exact). Buckets are doubly linked, so a connection whose deadline moves earlier (established ->
closing) changes bucket, and a killed connection frees its slot at once. Every loop is bounded
whatever the doubles: killing is idempotent, an index removal stops after one lap, bucket
numbers come from ``second_of`` (clamped, so inf and NaN never reach an undefined conversion).
"""

cimport cython
from libc.math cimport floor, INFINITY
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset

from hyperplane._core._codes cimport (DIR_IN, DIR_OUT, S_ADDRESS_FULL, S_CLOSED, S_CREATED,
                                     S_NO_CONNECTION, S_PORTS_EXHAUSTED,
                                     S_RST_NO_CONNECTION, S_TRANSLATED, S_UNSOLICITED,
                                     S_UNSUPPORTED_PROTOCOL, ST_DEAD, ST_ICMP, ST_TCP_CLOSED,
                                     ST_TCP_ESTABLISHED, ST_TCP_FIN_IN, ST_TCP_FIN_OUT,
                                     ST_TCP_OPENING, ST_UDP, ST_UDP_REPLIED)
from hyperplane._core._index cimport (EMPTY, SLOT_MASK, idx_alloc, idx_bucket, idx_candidate, idx_probe,
                                      idx_put, idx_rehash, idx_remove, idx_skip, idx_stats,
                                      idx_stays, probe_t)
from hyperplane._core._tables cimport __builtin_prefetch, deadline, mix, second_of, table_alloc
from hyperplane._core._types cimport F_ACK, F_FIN, F_RST, F_SYN, P_ICMP, P_TCP, P_UDP, packet_t

import numpy as np


cdef enum:
    MAX_CONNECTIONS = 0xFFFFFE
    PROBES = 8
    MAX_TIME = 1000000000000000   # 1e15 s: times stay exact in a double and fit int64 seconds
    AHEAD_INDEX = 32               # rows between asking for a row's index line and translating it
    AHEAD_CONN = 16                # rows between asking for its connection and translating it
    RING = 64                      # hashes kept: a power of two above AHEAD_INDEX

# TCP events.
cdef enum:
    EV_OTHER = 0
    EV_SYN_OUT = 1
    EV_SYNACK_IN = 2
    EV_FIN_OUT = 3
    EV_FIN_IN = 4
    EV_RST = 5
    KILL = 0
    REOPEN = 255

#### TCP transition table: TCP_NEXT[state * 6 + event]; KILL closes now, REOPEN replaces the tuple.
cdef uint8_t TCP_NEXT[36]
TCP_NEXT[:] = [
    # OTHER              SYN_OUT             SYNACK_IN           FIN_OUT          FIN_IN          RST
    KILL,                KILL,               KILL,               KILL,            KILL,           KILL,  # dead
    ST_TCP_OPENING,      ST_TCP_OPENING,     ST_TCP_ESTABLISHED, ST_TCP_FIN_OUT,  ST_TCP_FIN_IN,  KILL,
    ST_TCP_ESTABLISHED,  ST_TCP_ESTABLISHED, ST_TCP_ESTABLISHED, ST_TCP_FIN_OUT,  ST_TCP_FIN_IN,  KILL,
    ST_TCP_FIN_OUT,      ST_TCP_FIN_OUT,     ST_TCP_FIN_OUT,     ST_TCP_FIN_OUT,  ST_TCP_CLOSED,  KILL,
    ST_TCP_FIN_IN,       ST_TCP_FIN_IN,      ST_TCP_FIN_IN,      ST_TCP_CLOSED,   ST_TCP_FIN_IN,  KILL,
    ST_TCP_CLOSED,       REOPEN,             ST_TCP_CLOSED,      ST_TCP_CLOSED,   ST_TCP_CLOSED,  KILL,
]


#### hashing


cdef inline uint64_t tuple_hash(uint32_t ip1, uint16_t port1, uint32_t ip2, uint16_t port2,
                                uint8_t proto) noexcept nogil:
    return mix((<uint64_t>ip1 << 32) | ip2,
               (<uint64_t>port1 << 24) | (<uint64_t>port2 << 8) | proto)

cdef inline uint64_t fwd_hash_of(const conn_t* c) noexcept nogil:
    return tuple_hash(c.in_ip, c.in_port, c.rem_ip, c.rem_port, c.proto)

cdef inline uint64_t rev_hash_of(const nat_t* st, const conn_t* c) noexcept nogil:
    return tuple_hash(st.addr_ip[c.addr], c.x_port, c.rem_ip, c.rem_port, c.proto)

cdef inline uint64_t dest_key(uint8_t addr, uint8_t proto, uint32_t rip, uint16_t rport) noexcept nogil:
    return (<uint64_t>addr << 56) | (<uint64_t>proto << 48) | (<uint64_t>rport << 32) | rip

cdef inline uint64_t splitmix(uint64_t* state) noexcept nogil:
    state[0] += <uint64_t>0x9E3779B97F4A7C15
    cdef uint64_t z = state[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


#### a connection's link word: wheel next | prev << 24 | bucket << 48 | state << 58
# Slot numbers are 24-bit (_index.pxd SLOT_MASK); all ones there is EMPTY.

cdef enum:
    NEXT_SHIFT = 0
    PREV_SHIFT = 24
    BUCKET_SHIFT = 48
    STATE_SHIFT = 58

assert sizeof(conn_t) == 32, "a connection must be one half of a cache line"

cdef inline uint32_t link_get(const conn_t* c, int shift) noexcept nogil:
    cdef uint32_t v = <uint32_t>(c.link >> shift) & SLOT_MASK
    return EMPTY if v == SLOT_MASK else v

cdef inline void link_set(conn_t* c, int shift, uint32_t v) noexcept nogil:
    c.link = (c.link & ~(<uint64_t>SLOT_MASK << shift)) | (<uint64_t>(v & SLOT_MASK) << shift)

cdef inline uint32_t bucket_of(const conn_t* c) noexcept nogil:
    return <uint32_t>(c.link >> BUCKET_SHIFT) & (WHEEL_SIZE - 1)

cdef inline uint8_t state_of(const conn_t* c) noexcept nogil:
    return <uint8_t>(c.link >> STATE_SHIFT)

cdef inline void set_state(conn_t* c, uint8_t state) noexcept nogil:
    c.link = (c.link & ((<uint64_t>1 << STATE_SHIFT) - 1)) | (<uint64_t>state << STATE_SHIFT)


#### indexes (_index.pxd: linear probing, tagged entries, backward-shift deletion)

cdef uint64_t fwd_slot_hash(const void* st, uint32_t s) noexcept nogil:
    return fwd_hash_of(&(<const nat_t*>st).conns[s])

cdef uint64_t rev_slot_hash(const void* st, uint32_t s) noexcept nogil:
    return rev_hash_of(<const nat_t*>st, &(<const nat_t*>st).conns[s])

cdef inline uint32_t fwd_find(const nat_t* st, uint64_t h, uint32_t in_ip, uint16_t in_port,
                              uint32_t rem_ip, uint16_t rem_port, uint8_t proto) noexcept nogil:
    cdef probe_t pr = idx_probe(h, st.idx_mask)
    cdef uint32_t s
    cdef const conn_t* c
    while True:
        s = idx_candidate(st.fwd, st.idx_mask, &pr)
        if s == EMPTY:
            return EMPTY
        c = &st.conns[s]
        if (c.in_ip == in_ip and c.rem_ip == rem_ip and c.in_port == in_port
                and c.rem_port == rem_port and c.proto == proto):
            return s
        idx_skip(&pr, st.idx_mask)

cdef inline uint32_t rev_find(const nat_t* st, uint64_t h, uint32_t x_ip, uint16_t x_port,
                              uint32_t rem_ip, uint16_t rem_port, uint8_t proto) noexcept nogil:
    cdef probe_t pr = idx_probe(h, st.idx_mask)
    cdef uint32_t s
    cdef const conn_t* c
    while True:
        s = idx_candidate(st.rev, st.idx_mask, &pr)
        if s == EMPTY:
            return EMPTY
        c = &st.conns[s]
        if (c.x_port == x_port and c.rem_ip == rem_ip and c.rem_port == rem_port
                and c.proto == proto and st.addr_ip[c.addr] == x_ip):
            return s
        idx_skip(&pr, st.idx_mask)

cdef int idx_grow(nat_t* st) noexcept nogil:
    """Double both indexes and rehash. Returns -1 when out of memory."""
    cdef uint32_t newmask = (st.idx_mask + 1) * 2 - 1
    cdef uint32_t* nf = idx_rehash(st.fwd, st.idx_mask, newmask, fwd_slot_hash, st)
    cdef uint32_t* nr = idx_rehash(st.rev, st.idx_mask, newmask, rev_slot_hash, st)
    if nf == NULL or nr == NULL:
        free(nf)
        free(nr)
        return -1
    free(st.fwd)
    free(st.rev)
    st.fwd = nf
    st.rev = nr
    st.idx_mask = newmask
    return 0


#### per-destination counts

cdef inline uint32_t dest_pos(const nat_t* st, uint64_t key) noexcept nogil:
    """Position of key, or of the empty bucket where it would go."""
    cdef uint32_t i = <uint32_t>mix(key, 0) & st.dest_mask
    while st.dests[i].count != 0 and st.dests[i].key != key:
        i = (i + 1) & st.dest_mask
    return i

cdef int dest_grow(nat_t* st) noexcept nogil:
    cdef uint32_t oldcap = st.dest_mask + 1
    cdef uint32_t newcap = oldcap * 2
    cdef dest_t* old = st.dests
    cdef dest_t* nd = <dest_t*>table_alloc(newcap * sizeof(dest_t))
    cdef uint32_t i, p
    if nd == NULL:
        return -1
    memset(nd, 0, newcap * sizeof(dest_t))
    st.dests = nd
    st.dest_mask = newcap - 1
    for i in range(oldcap):
        if old[i].count != 0:
            p = dest_pos(st, old[i].key)
            st.dests[p] = old[i]
    free(old)
    return 0

cdef void dest_release(nat_t* st, uint64_t key) noexcept nogil:
    cdef uint32_t mask = st.dest_mask
    cdef uint32_t i = dest_pos(st, key)
    cdef uint32_t j, k
    st.dests[i].count -= 1
    if st.dests[i].count != 0:
        return
    st.dest_count -= 1
    j = i
    while True:
        j = (j + 1) & mask
        if st.dests[j].count == 0:
            break
        k = <uint32_t>mix(st.dests[j].key, 0) & mask
        if idx_stays(i, j, k):
            continue
        st.dests[i] = st.dests[j]
        i = j
    st.dests[i].count = 0
    st.dests[i].key = 0


#### timer wheel and killing

cdef inline void wheel_link(nat_t* st, uint32_t s) noexcept nogil:
    cdef conn_t* c = &st.conns[s]
    cdef uint32_t b = <uint32_t>(second_of(c.expires) & (WHEEL_SIZE - 1))
    cdef uint32_t nxt = st.wheel[b]
    c.link = ((c.link & (<uint64_t>0x3F << STATE_SHIFT)) | (<uint64_t>b << BUCKET_SHIFT)
              | (<uint64_t>SLOT_MASK << PREV_SHIFT) | (nxt & SLOT_MASK))
    if nxt != EMPTY:
        link_set(&st.conns[nxt], PREV_SHIFT, s)
    st.wheel[b] = s
    if c.expires < st.wheel_min[b]:
        st.wheel_min[b] = c.expires

cdef inline void wheel_unlink(nat_t* st, uint32_t s) noexcept nogil:
    cdef conn_t* c = &st.conns[s]
    cdef uint32_t nxt = link_get(c, NEXT_SHIFT)
    cdef uint32_t prv = link_get(c, PREV_SHIFT)
    if prv != EMPTY:
        link_set(&st.conns[prv], NEXT_SHIFT, nxt)
    else:
        st.wheel[bucket_of(c)] = nxt
    if nxt != EMPTY:
        link_set(&st.conns[nxt], PREV_SHIFT, prv)

cdef inline void set_expiry(nat_t* st, uint32_t s, double expires) noexcept nogil:
    """Deadlines may move earlier (established -> closing): then the connection changes bucket."""
    cdef conn_t* c = &st.conns[s]
    if expires < c.expires and floor(expires) < floor(c.expires):
        wheel_unlink(st, s)
        c.expires = expires
        wheel_link(st, s)
    else:
        c.expires = expires
        if expires < st.wheel_min[bucket_of(c)]:
            st.wheel_min[bucket_of(c)] = expires

cdef void kill(nat_t* st, uint32_t s, int expired, int linked) noexcept nogil:
    """Take a connection out of service and free its slot (``linked``: still in a wheel list)."""
    cdef conn_t* c = &st.conns[s]
    if state_of(c) == ST_DEAD:
        return                      # killed already: a second kill would free the slot twice
    idx_remove(st.fwd, st.idx_mask, s, fwd_slot_hash, st)
    idx_remove(st.rev, st.idx_mask, s, rev_slot_hash, st)
    dest_release(st, dest_key(c.addr, c.proto, c.rem_ip, c.rem_port))
    st.stats[c.addr].live -= 1
    st.live -= 1
    if expired:
        st.stats[c.addr].expired += 1
    else:
        st.stats[c.addr].closed += 1
    if linked:
        wheel_unlink(st, s)
    set_state(c, ST_DEAD)
    link_set(c, NEXT_SHIFT, st.free_head)
    st.free_head = s

cdef void process_bucket(nat_t* st, uint32_t b, double now) noexcept nogil:
    """Kill the bucket's dead connections; relink the others by their current deadline."""
    cdef uint32_t s = st.wheel[b]
    cdef uint32_t nxt
    st.wheel[b] = EMPTY
    st.wheel_min[b] = INFINITY
    while s != EMPTY:
        nxt = link_get(&st.conns[s], NEXT_SHIFT)
        if st.conns[s].expires <= now:
            kill(st, s, 1, 0)
        else:
            wheel_link(st, s)
        s = nxt

cdef void advance(nat_t* st, double now) noexcept nogil:
    """Process every whole second before now's."""
    cdef int64_t target = second_of(now) - 1
    cdef int64_t k, n
    st.next_advance = <double>(target + 2)   # the clock must pass another whole second first
    if not st.started:
        st.started = 1
        st.wheel_tick = target
        return
    if target <= st.wheel_tick:
        return
    n = target - st.wheel_tick
    if n > WHEEL_SIZE:
        n = WHEEL_SIZE
    for k in range(1, n + 1):
        process_bucket(st, <uint32_t>((st.wheel_tick + k) & (WHEEL_SIZE - 1)), now)
    st.wheel_tick = target

cdef inline void sweep_current(nat_t* st, double now) noexcept nogil:
    cdef uint32_t b = <uint32_t>(second_of(now) & (WHEEL_SIZE - 1))
    if st.wheel_min[b] <= now:
        process_bucket(st, b, now)


#### allocation

cdef inline int port_taken(nat_t* st, uint8_t a, uint16_t port, uint32_t rip, uint16_t rport,
                           uint8_t proto, double now) noexcept nogil:
    cdef uint32_t s = rev_find(st, tuple_hash(st.addr_ip[a], port, rip, rport, proto),
                               st.addr_ip[a], port, rip, rport, proto)
    if s == EMPTY:
        return 0
    if st.conns[s].expires <= now:
        kill(st, s, 1, 1)
        return 0
    return 1

cdef uint16_t draw_port(nat_t* st, uint8_t a, uint32_t rip, uint16_t rport, uint8_t proto,
                        double now) noexcept nogil:
    cdef uint32_t off = 0
    cdef uint32_t k
    for k in range(PROBES):
        off = <uint32_t>(((splitmix(&st.rng) >> 32) * st.nports) >> 32)
        if not port_taken(st, a, <uint16_t>(st.port_lo + off), rip, rport, proto, now):
            return <uint16_t>(st.port_lo + off)
    for k in range(st.nports):
        off += 1
        if off == st.nports:
            off = 0
        if not port_taken(st, a, <uint16_t>(st.port_lo + off), rip, rport, proto, now):
            break
    return <uint16_t>(st.port_lo + off)

cdef int reserve_slot(nat_t* st) noexcept nogil:
    """Make room for one more connection. Returns -1 when out of memory, -2 when at the maximum."""
    cdef conn_t* grown
    cdef uint32_t newcap
    if (st.live + 1) * 2 > <uint64_t>st.idx_mask + 1:
        if idx_grow(st) < 0:
            return -1
    if (<uint64_t>st.dest_count + 1) * 2 > <uint64_t>st.dest_mask + 1:
        if dest_grow(st) < 0:
            return -1
    if st.free_head == EMPTY and st.conn_used == st.conn_cap:
        if st.conn_cap > MAX_CONNECTIONS:
            return -2                   # 24-bit slot numbers: the table is at its maximum
        newcap = st.conn_cap * 2
        if newcap > MAX_CONNECTIONS + 1:
            newcap = MAX_CONNECTIONS + 1
        grown = <conn_t*>table_alloc(newcap * sizeof(conn_t))
        if grown == NULL:
            return -1
        memcpy(grown, st.conns, st.conn_cap * sizeof(conn_t))
        free(st.conns)
        st.conns = grown
        st.conn_cap = newcap
    return 0

cdef uint32_t open_connection(nat_t* st, const packet_t* p, double now, uint8_t state,
                              uint8_t* status) noexcept nogil:
    """Allocate an address and port for an OUT packet; EMPTY with status set when refused."""
    cdef int a, swept = 0, any_active, only_full
    cdef uint64_t dk
    cdef uint32_t dp, s
    cdef uint16_t port
    cdef conn_t* c
    cdef int room = reserve_slot(st)
    if room < 0:
        st.oom = room == -1
        status[0] = S_ADDRESS_FULL
        return EMPTY
    while True:
        any_active = 0
        only_full = 1
        for a in range(st.n_addr):
            if st.addr_active_from[a] > now:
                continue
            any_active = 1
            if st.max_per_address != 0 and st.stats[a].live >= st.max_per_address:
                if swept:
                    continue
                break
            dk = dest_key(<uint8_t>a, p.proto, p.dst_ip, p.dst_port)
            dp = dest_pos(st, dk)
            if st.dests[dp].count >= st.per_dest_limit:
                only_full = 0
                if swept:
                    continue
                break
            if st.stats[a].live >= st.stats[a].peak:
                sweep_current(st, now)      # a peak counts only connections still alive
            port = draw_port(st, <uint8_t>a, p.dst_ip, p.dst_port, p.proto, now)
            # the draw may have killed expired connections and moved dests: look again
            dp = dest_pos(st, dk)
            if st.dests[dp].count == 0:
                st.dests[dp].key = dk
                st.dest_count += 1
            st.dests[dp].count += 1
            if st.free_head != EMPTY:
                s = st.free_head
                st.free_head = link_get(&st.conns[s], NEXT_SHIFT)
            else:
                s = st.conn_used
                st.conn_used += 1
            c = &st.conns[s]
            c.in_ip = p.src_ip
            c.in_port = p.src_port
            c.rem_ip = p.dst_ip
            c.rem_port = p.dst_port
            c.x_port = port
            c.proto = p.proto
            c.addr = <uint8_t>a
            st.last_addr = a
            set_state(c, state)
            c.expires = deadline(now, st.timeout[state])
            idx_put(st.fwd, st.idx_mask, fwd_hash_of(c), s)
            idx_put(st.rev, st.idx_mask, rev_hash_of(st, c), s)
            wheel_link(st, s)
            st.live += 1
            st.stats[a].live += 1
            st.stats[a].created += 1
            if st.stats[a].live > st.stats[a].peak:
                st.stats[a].peak = st.stats[a].live
            status[0] = S_CREATED
            return s
        else:
            # every active address refused (or none is active)
            if swept or not any_active:
                status[0] = S_ADDRESS_FULL if (only_full or not any_active) else S_PORTS_EXHAUSTED
                return EMPTY
        # a refusal before the current second was swept: make the counts exact and retry
        sweep_current(st, now)
        swept = 1


#### the batch kernel

cdef inline int tcp_event(uint8_t flags, int d) noexcept nogil:
    if flags & F_RST:
        return EV_RST
    if (flags & (F_SYN | F_ACK | F_FIN)) == F_SYN:
        return EV_SYN_OUT if d == DIR_OUT else EV_OTHER
    if (flags & (F_SYN | F_ACK)) == (F_SYN | F_ACK):
        return EV_SYNACK_IN if d == DIR_IN else EV_OTHER
    if flags & F_FIN:
        return EV_FIN_OUT if d == DIR_OUT else EV_FIN_IN
    return EV_OTHER

cdef inline int has_pending(const nat_t* st, double now) noexcept nogil:
    cdef int a
    for a in range(st.n_addr):
        if st.addr_active_from[a] > now:
            return 1
    return 0

cdef void count_refusal(nat_t* st, double now) noexcept nogil:
    cdef int a
    for a in range(st.n_addr):
        if st.addr_active_from[a] <= now:
            st.stats[a].refused += 1

cdef inline uint64_t packet_hash(const packet_t* p, int d) noexcept nogil:
    """The hash of the index key a packet looks up: inside tuple going out, translated tuple coming in."""
    if d == DIR_OUT:
        return tuple_hash(p.src_ip, p.src_port, p.dst_ip, p.dst_port, p.proto)
    return tuple_hash(p.dst_ip, p.dst_port, p.src_ip, p.src_port, p.proto)

cdef inline int prefetch_conn(const nat_t* st, uint64_t h, int d) noexcept nogil:
    """Find the index entry whose tag matches (its line was prefetched before) and prefetch the
    connection it points to. Returns 0 when there is none: the packet probably opens one."""
    cdef probe_t pr = idx_probe(h, st.idx_mask)
    cdef uint32_t s = idx_candidate(st.fwd if d == DIR_OUT else st.rev, st.idx_mask, &pr)
    if s == EMPTY:
        return 0
    __builtin_prefetch(&st.conns[s])   # 32 bytes in an aligned slab: one line
    return 1

cdef inline const uint32_t* new_port_line(const nat_t* st, const packet_t* p, uint64_t draws) noexcept nogil:
    """The reverse-index line of the first port a new connection will try (the random sequence
    is known in advance; the address is guessed to be the last one used), for the caller to
    prefetch. Not a void helper that prefetches: GCC finds such a function pure (it only reads
    memory, and a prefetch counts as no side effect) and drops its calls as dead code, which
    left every port pick's reverse-index read a miss."""
    cdef uint64_t rng = st.rng + draws * <uint64_t>0x9E3779B97F4A7C15
    cdef uint32_t off = <uint32_t>(((splitmix(&rng) >> 32) * st.nports) >> 32)
    cdef uint64_t h = tuple_hash(st.addr_ip[st.last_addr], <uint16_t>(st.port_lo + off),
                                 p.dst_ip, p.dst_port, p.proto)
    return idx_bucket(st.rev, st.idx_mask, h)


cdef inline int move_to(nat_t* st, uint32_t s, uint8_t state, double t) noexcept nogil:
    """A packet of connection s at time t moves it to ``state`` and refreshes its deadline, or
    closes it (state KILL: returns 0)."""
    if state == KILL:
        kill(st, s, 0, 1)
        return 0
    set_state(&st.conns[s], state)
    set_expiry(st, s, deadline(t, st.timeout[state]))
    return 1


cdef inline int translate(nat_t* st, const packet_t* p, int d, uint64_t h, packet_t* out, uint8_t* status,
                          int stop_on_full, int pickup) noexcept nogil:
    """One packet (``h``: its index hash) into ``out``/``status``: 1, or 0 where the batch
    must stop (full with none pending, or out of memory), having recorded nothing. ``pickup``:
    an outbound TCP ACK of no connection opens it as established (mid-stream pickup)."""
    cdef conn_t* c
    cdef uint32_t s
    cdef int ev
    cdef uint8_t nxt, st_code, initial
    cdef double t
    out[0] = p[0]
    t = p.time
    if not (t >= st.now):          # late packets, and NaN, happen "now"
        t = st.now
    elif t > MAX_TIME:
        t = MAX_TIME
    st.now = t
    if t >= st.next_advance:
        advance(st, t)
    if not (p.proto == P_TCP or p.proto == P_UDP or (p.proto == P_ICMP and st.gateway_mode)):
        st_code = S_UNSUPPORTED_PROTOCOL
    elif d == DIR_OUT:
        s = fwd_find(st, h, p.src_ip, p.src_port, p.dst_ip, p.dst_port, p.proto)
        if s != EMPTY and st.conns[s].expires <= t:
            kill(st, s, 1, 1)
            s = EMPTY
        ev = tcp_event(p.flags, DIR_OUT) if p.proto == P_TCP else EV_OTHER
        if s != EMPTY and p.proto == P_TCP and TCP_NEXT[state_of(&st.conns[s]) * 6 + ev] == REOPEN:
            kill(st, s, 0, 1)
            s = EMPTY
        st_code = S_TRANSLATED
        if s == EMPTY:
            if p.proto == P_TCP:
                initial = ST_TCP_OPENING if ev == EV_SYN_OUT else ST_DEAD
                if pickup and (p.flags & (F_SYN | F_ACK | F_FIN | F_RST)) == F_ACK:
                    initial = ST_TCP_ESTABLISHED  # its opening happened before the capture began
            elif p.proto == P_UDP:
                initial = ST_UDP
            else:
                initial = ST_ICMP if p.flags == 8 else ST_DEAD
            if initial == ST_DEAD:
                st_code = S_RST_NO_CONNECTION if (st.gateway_mode and p.proto == P_TCP) else S_NO_CONNECTION
            else:
                s = open_connection(st, p, t, initial, &st_code)
                if s == EMPTY:
                    if st.oom or (stop_on_full and not has_pending(st, t)):
                        status[0] = st_code
                        return 0    # not counted: the caller adds an address and resumes here
                    count_refusal(st, t)
        if s != EMPTY:
            c = &st.conns[s]
            out.src_ip = st.addr_ip[c.addr]
            out.src_port = c.x_port
            if not move_to(st, s, TCP_NEXT[state_of(c) * 6 + ev] if p.proto == P_TCP else state_of(c), t):
                st_code = S_CLOSED
    else:
        s = rev_find(st, h, p.dst_ip, p.dst_port, p.src_ip, p.src_port, p.proto)
        if s != EMPTY and st.conns[s].expires <= t:
            kill(st, s, 1, 1)
            s = EMPTY
        if s == EMPTY or (p.proto == P_ICMP and p.flags != 0):
            st_code = S_UNSOLICITED
        else:
            c = &st.conns[s]
            out.dst_ip = c.in_ip
            out.dst_port = c.in_port
            if p.proto == P_TCP:
                nxt = TCP_NEXT[state_of(c) * 6 + tcp_event(p.flags, DIR_IN)]
            elif p.proto == P_UDP:
                nxt = ST_UDP_REPLIED
            else:
                nxt = state_of(c)
            st_code = S_TRANSLATED if move_to(st, s, nxt, t) else S_CLOSED
    st.status_count[st_code] += 1
    status[0] = st_code
    return 1


cdef extern from *:
    # __builtin_prefetch(addr, 1): ask for a line about to be written (prefetchw)
    void prefetch_for_write "__builtin_prefetch"(const void* addr, int rw) noexcept nogil


cdef inline void fetch_index_line(const nat_t* st, const packet_t* p, uint8_t d, uint64_t* hash) noexcept nogil:
    """Hash a row into ``hash`` and ask for its index line."""
    cdef uint64_t h = packet_hash(p, d)
    hash[0] = h
    __builtin_prefetch(idx_bucket(st.fwd if d == DIR_OUT else st.rev, st.idx_mask, h))


cdef inline int fetch_connection(const nat_t* st, const packet_t* p, uint8_t d, uint64_t h,
                                 uint64_t draws) noexcept nogil:
    """Ask for a row's connection (its index line was asked for AHEAD_INDEX - AHEAD_CONN rows
    earlier), or, when it has none and goes out, for the reverse-index line of the first port a
    new one will try, guessing that ``draws`` random ports are drawn before it. Returns 1 when it
    guessed a new connection (one more draw)."""
    if prefetch_conn(st, h, d) or d != DIR_OUT:
        return 0
    __builtin_prefetch(new_port_line(st, p, draws))
    return 1


cdef Py_ssize_t run(nat_t* st, const packet_t* inp, const uint8_t* dirs, Py_ssize_t dstep,
                    packet_t* out, uint8_t* status, Py_ssize_t start, Py_ssize_t n,
                    int stop_on_full, int pickup) noexcept nogil:
    """Translate rows start..n-1. Returns n, or the row where it stopped (full, or out of memory).

    A software pipeline with a fixed distance per stage: before row i is translated, input and
    output row i + 2 * AHEAD_INDEX are asked for, row i + AHEAD_INDEX is hashed and its index
    line asked for, and row i + AHEAD_CONN, whose index line has arrived meanwhile, has its
    connection asked for; so each row's two dependent misses (index line, then connection)
    arrive before it is translated, and the misses in flight stay few and even (bursts of a
    block's prefetches stalled on the line-fill buffers). Hashes depend
    on the packet alone, so they stay valid even if the index grows meanwhile."""
    cdef Py_ssize_t i, j
    cdef uint64_t draws = 0                    # guessed new connections among rows conn-fetched, not translated
    cdef uint64_t hashes[RING]                 # row j's hash at j % RING
    cdef uint8_t guessed[RING]
    for j in range(start, min(start + AHEAD_INDEX, n)):
        fetch_index_line(st, &inp[j], dirs[j * dstep], &hashes[j & (RING - 1)])
    for j in range(start, min(start + AHEAD_CONN, n)):
        guessed[j & (RING - 1)] = fetch_connection(st, &inp[j], dirs[j * dstep], hashes[j & (RING - 1)], draws)
        draws += guessed[j & (RING - 1)]
    for i in range(start, n):
        j = i + AHEAD_INDEX
        if j + AHEAD_INDEX < n:
            # the rows streamed in and out: the hardware prefetcher left their misses exposed
            # (the output's stores stalled a third of the established rate away)
            __builtin_prefetch(&inp[j + AHEAD_INDEX])
            prefetch_for_write(&out[j + AHEAD_INDEX], 1)
        if j < n:
            fetch_index_line(st, &inp[j], dirs[j * dstep], &hashes[j & (RING - 1)])
        j = i + AHEAD_CONN
        if j < n:
            guessed[j & (RING - 1)] = fetch_connection(st, &inp[j], dirs[j * dstep], hashes[j & (RING - 1)], draws)
            draws += guessed[j & (RING - 1)]
        draws -= guessed[i & (RING - 1)]
        if not translate(st, &inp[i], dirs[i * dstep], hashes[i & (RING - 1)], &out[i],
                         &status[i], stop_on_full, pickup):
            return i
    return n


#### one packet at a time (hyperplane/_walk.pyx walks each packet through the whole VPC)

cdef int nat_translate(nat_t* st, packet_t* p, uint8_t direction, int stop_on_full,
                       uint8_t* status, int pickup=0) noexcept nogil:
    """Translate one packet in place (the walker: nothing to overlap it with); 1, or 0 where it
    must stop (full with none pending, or out of memory: ``st.oom``), having recorded nothing.
    ``pickup``: mid-stream pickup (see the theory of operation)."""
    cdef packet_t out
    if not translate(st, p, direction, packet_hash(p, direction), &out, status, stop_on_full, pickup):
        return 0
    p[0] = out
    return 1


cdef void nat_prefetch(const nat_t* st, const packet_t* p, uint8_t direction, int connection) noexcept nogil:
    """Ask for the index line a packet will look up (connection 0), or, once that line is in
    cache, for the connection it points to (1): the walker calls both a few packets ahead."""
    cdef uint64_t h = packet_hash(p, direction)
    if connection:
        prefetch_conn(st, h, direction)
    else:
        __builtin_prefetch(idx_bucket(st.fwd if direction == DIR_OUT else st.rev, st.idx_mask, h))


cdef int nat_find(const nat_t* st, const packet_t* p, uint8_t direction, packet_t* out) noexcept nogil:
    """The translation a live connection would give ``p`` (1), changing nothing; 0 when none."""
    cdef uint32_t s
    out[0] = p[0]
    if direction == DIR_OUT:
        s = fwd_find(st, packet_hash(p, DIR_OUT), p.src_ip, p.src_port, p.dst_ip, p.dst_port, p.proto)
    else:
        s = rev_find(st, packet_hash(p, DIR_IN), p.dst_ip, p.dst_port, p.src_ip, p.src_port, p.proto)
    # live at the packet's own time, as run() would judge it
    if s == EMPTY or not st.conns[s].expires > (p.time if p.time > st.now else st.now):
        return 0
    if direction == DIR_OUT:
        out.src_ip = st.addr_ip[st.conns[s].addr]
        out.src_port = st.conns[s].x_port
    else:
        out.dst_ip = st.conns[s].in_ip
        out.dst_port = st.conns[s].in_port
    return 1


#### the Python-facing class

def first_bad_time(const packet_t[::1] packets not None, double limit):
    """The first row whose time is NaN or above ``limit``, or -1: the facade's check of a batch,
    one pass without the GIL (through numpy it cost a tenth of translating the batch)."""
    cdef Py_ssize_t i, n = packets.shape[0], bad = -1
    with nogil:
        for i in range(n):
            if not (packets[i].time <= limit):
                bad = i
                break
    return bad



@cython.final
cdef class NatCore:
    """The compiled table. Use ``hyperplane.nat.ConnectionTable``, which validates arguments."""

    def __cinit__(self, bint gateway_mode, uint16_t port_lo, uint32_t nports,
                  uint64_t max_per_address, uint64_t per_dest_limit, timeouts,
                  uint64_t seed=0, uint32_t capacity=1024):
        cdef uint32_t cap = 64
        cdef int k
        while cap < capacity:
            cap *= 2
        memset(&self.st, 0, sizeof(nat_t))
        self.st.gateway_mode = gateway_mode
        self.st.port_lo = port_lo
        self.st.nports = nports
        self.st.max_per_address = max_per_address
        self.st.per_dest_limit = per_dest_limit
        self.st.rng = seed
        self.st.free_head = EMPTY
        self.st.next_advance = -INFINITY
        self.st.now = -<double>MAX_TIME
        self.st.conn_cap = cap
        self.st.idx_mask = cap * 2 - 1
        self.st.dest_mask = 63
        for k in range(N_STATES):
            self.st.timeout[k] = timeouts[k]
        for k in range(WHEEL_SIZE):
            self.st.wheel[k] = EMPTY
            self.st.wheel_min[k] = INFINITY
        self.st.conns = <conn_t*>table_alloc(cap * sizeof(conn_t))
        self.st.fwd = idx_alloc(cap * 2)
        self.st.rev = idx_alloc(cap * 2)
        self.st.dests = <dest_t*>calloc(64, sizeof(dest_t))
        if self.st.conns != NULL:
            # commit the slab now: its pages were otherwise faulted in (and zeroed) one by one
            # while the connections are opened, a tenth of the setup rate of a pre-sized table
            memset(self.st.conns, 0, cap * sizeof(conn_t))
        if (self.st.conns == NULL or self.st.fwd == NULL or self.st.rev == NULL
                or self.st.dests == NULL):
            raise MemoryError("cannot allocate the connection table")

    def __dealloc__(self):
        free(self.st.conns)
        free(self.st.fwd)
        free(self.st.rev)
        free(self.st.dests)

    def add_address(self, uint32_t ip, double active_from):
        """Append a translating address; new connections may use it from ``active_from`` on."""
        if self.st.n_addr >= MAX_ADDRESSES:
            raise ValueError(f"a table holds at most {MAX_ADDRESSES} addresses")
        self.st.addr_ip[self.st.n_addr] = ip
        self.st.addr_active_from[self.st.n_addr] = active_from
        self.st.n_addr += 1
        return self.st.n_addr - 1

    def process(self, const packet_t[::1] packets not None, const uint8_t[::1] direction not None,
                packet_t[::1] out not None, uint8_t[::1] status not None, Py_ssize_t start=0,
                Py_ssize_t end=-1, bint stop_on_full=False, bint pickup=False):
        """Translate rows ``start:end`` of ``packets`` into ``out``/``status``; returns where it stopped.

        ``direction`` is 0 (from the inside) or 1 (toward a translating address), one per row or a
        single value for all rows. With ``stop_on_full`` the batch stops, recording nothing, at the
        first new connection that no address can take while none is pending. With ``pickup`` an
        outbound TCP ACK of no connection opens it as established (mid-stream pickup).
        """
        cdef Py_ssize_t n = packets.shape[0]
        cdef Py_ssize_t stop_at = n if end < 0 else end
        cdef Py_ssize_t dstep = 1
        cdef Py_ssize_t stop
        if out.shape[0] != n or status.shape[0] != n:
            raise ValueError("out and status must have one row per packet")
        if direction.shape[0] != n:
            if direction.shape[0] != 1:
                raise ValueError(f"direction has {direction.shape[0]} rows for {n} packets")
            dstep = 0
        if not 0 <= start <= stop_at <= n:
            raise ValueError(f"rows {start}:{stop_at} outside 0..{n}")
        if start == stop_at:
            return stop_at
        with nogil:
            stop = run(&self.st, &packets[0], &direction[0], dstep, &out[0], &status[0], start,
                       stop_at, stop_on_full, pickup)
        if self.st.oom:
            self.st.oom = 0
            raise MemoryError("connection table cannot grow")
        return stop

    def lookup(self, const packet_t[::1] packets not None, uint8_t direction, packet_t[::1] out not None,
               uint8_t[::1] found not None):
        """Translate rows as ``process`` would for live connections, changing nothing: no
        connection is opened, refreshed or closed (replay uses it to find a reply's path)."""
        cdef Py_ssize_t n = packets.shape[0], i
        if out.shape[0] != n or found.shape[0] != n:
            raise ValueError("out and found must have one row per packet")
        with nogil:
            for i in range(n):
                found[i] = nat_find(&self.st, &packets[i], direction, &out[i])

    def expire(self, double now):
        """Reap every connection whose deadline is at or before ``now`` (counters become exact)."""
        if not (now >= self.st.now):
            now = self.st.now
        elif now > MAX_TIME:
            now = MAX_TIME
        self.st.now = now
        with nogil:
            advance(&self.st, now)
            sweep_current(&self.st, now)

    @property
    def now(self):
        return self.st.now

    @property
    def live(self):
        return self.st.live

    @property
    def n_addresses(self):
        return self.st.n_addr

    def address(self, int a):
        if not 0 <= a < self.st.n_addr:
            raise IndexError(a)
        return self.st.addr_ip[a], self.st.addr_active_from[a]

    def address_stats(self, int a):
        if not 0 <= a < self.st.n_addr:
            raise IndexError(a)
        return self.st.stats[a]

    def status_counts(self):
        return [self.st.status_count[k] for k in range(32)]

    def memory_bytes(self):
        return (self.st.conn_cap * sizeof(conn_t) + 2 * (self.st.idx_mask + 1) * sizeof(uint32_t)
                + (self.st.dest_mask + 1) * sizeof(dest_t) + sizeof(nat_t))

    def index_stats(self):
        """The forward and the reverse index: each buckets, entries, probe_total (buckets read to
        find every entry once) and probe_max. One pass over them; not a hot path."""
        return (idx_stats(self.st.fwd, self.st.idx_mask, fwd_slot_hash, &self.st),
                idx_stats(self.st.rev, self.st.idx_mask, rev_slot_hash, &self.st))

    def connections(self):
        """Every live connection, as columns (for tests, traces and listings; not a hot path)."""
        cdef Py_ssize_t k = 0
        cdef uint32_t s
        cdef conn_t* c
        cols = np.zeros(self.st.live, dtype=[
            ("in_ip", "<u4"), ("in_port", "<u2"), ("rem_ip", "<u4"), ("rem_port", "<u2"),
            ("proto", "u1"), ("address", "<u4"), ("x_port", "<u2"), ("state", "u1"),
            ("expires", "<f8")])
        for s in range(self.st.conn_used):
            c = &self.st.conns[s]
            if state_of(c) != ST_DEAD:
                cols[k] = (c.in_ip, c.in_port, c.rem_ip, c.rem_port, c.proto,
                           self.st.addr_ip[c.addr], c.x_port, state_of(c), c.expires)
                k += 1
        return cols
