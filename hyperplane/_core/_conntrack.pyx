# cython: language_level=3, embedsignature=True
"""Security group connection tracking: "is this packet part of a flow the group already allowed?"

Theory of operation
===================

Stateful security groups (SPEC §3; EC2 user guide, "Amazon EC2 security group connection
tracking"): once a rule lets a packet through an ENI's security groups, the flow is tracked and
every later packet of it, in either direction, passes whatever the rules say, until it idles out.
One table serves every ENI: the caller gives each row the ENI index whose groups are evaluated at
that stage (-1: no security group here) and the verdict of the rules (``rule_allowed``).

Keys. A flow is (ENI, proto, endpoint A, endpoint B) with A the smaller (ip, port) of the two, so
both directions of a connection find the same flow; ``side`` says which endpoint sent a packet.
ICMP echo is keyed by the two addresses and the identifier (in src_port for a request, type 8,
in dst_port for a reply, type 0); other ICMP types are not tracked (the rules alone decide).
Other protocols are keyed by the addresses and the protocol only, as AWS documents.

Per row, in order (a row sees the flows earlier rows created or ended):
  eni < 0                          -> allowed, not tracked, nothing stored
  untracked (ICMP but not echo)    -> allowed = rule_allowed, not tracked
  live flow found                  -> allowed, tracked; the flow's state bits gain this packet and
                                      its deadline becomes now + timeout[kind, bits]; a TCP RST
                                      removes the flow (after letting the RST through); a pure SYN
                                      on a flow that saw FIN both ways removes it first, so the new
                                      connection is judged by the rules like any other
  otherwise, rule_allowed and the  -> allowed, not tracked, nothing stored: the next packet is
    rules leave the flow untracked     judged by the rules again (EC2 "Untracked connections";
                                       the caller says so per row, see ``untracked``)
  otherwise, rule_allowed          -> allowed, not tracked; the flow is created (not for a RST);
                                      with ``pickup`` (mid-stream pickup, set by the walker for a
                                      replay) a TCP ACK without SYN, FIN or RST creates it
                                      established, as the NAT tables pick its connection up
  otherwise                        -> denied
State bits: SEEN_A/SEEN_B (a packet came from that endpoint), FIN_A/FIN_B (TCP only). TCP is
"opening" until both endpoints have sent, then "established", and "closing" after any FIN. UDP is
a "stream" once both endpoints have sent. The timeout of each (kind, bits) is in a 64-entry table.

Time is the packet's own ``time``, clamped to be non-decreasing (a NaN takes the current clock);
a flow is live while now < expires, with ``expires = now + timeout`` rounded up to the next double
(``deadline`` in _tables.pxd), so liveness is exact: a timeout below the spacing of doubles at
``now`` keeps the flow for its own instant instead of none. Nothing reads a clock.

Expiry is lazy and amortized: a lookup that meets a dead flow removes it; when the slab of flows
is full, one sweep reaps every dead flow, and the slab (and its index) doubles only if that freed
less than a quarter of it. Each sweep costs O(slab) and buys at least slab/4 insertions, so
expiry is O(1) amortized per new flow, and the slab stays under 8/3 of the peak of stored flows.
``expire(now)`` sweeps on demand (the counts become exact); ``forget(eni)`` removes every flow of
a deleted ENI (one scan of the slab: ENI deletion is rare). Both give memory back: a slab at most
1/8 full is compacted to twice the flows it holds.

The index (_index.pxd, shared with _nat) is open addressing with linear probing and
backward-shift deletion (no tombstones), at most half full; an entry is (8-bit hash tag << 24) |
slot, so probing past a colliding entry does not read its flow. The batch loop works in blocks of 16 rows: canonicalise and hash the
block, prefetch the index lines, then the flows they point to, then process the rows in order.
"""

cimport cython
from libc.math cimport INFINITY
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from hyperplane._core._codes cimport FIN_A, FIN_B, SEEN_A, SEEN_B
from hyperplane._core._index cimport (EMPTY, idx_alloc, idx_bucket, idx_candidate, idx_probe,
                                      idx_put, idx_remove, idx_skip, idx_stats, probe_t)
from hyperplane._core._tables cimport __builtin_prefetch, deadline, mix, table_alloc
from hyperplane._core._types cimport (F_ACK, F_FIN, F_RST, F_SYN, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, P_ICMP, P_TCP,
                               P_UDP, packet_t)

import numpy as np


cdef enum:
    SLOT_LIMIT = 0xFFFFFF          # slots 0..0xFFFFFE (0xFFFFFF with tag 0xFF would read EMPTY)
    MAX_CAP = 1 << 24
    MIN_CAP = 16
    BLOCK = 16                     # rows whose memory is fetched together

# What a row is tracked as: the first four index the timeout table.
cdef enum:
    K_TCP = 0
    K_UDP = 1
    K_ICMP = 2
    K_OTHER = 3
    K_UNTRACKED = 4
    K_NO_GROUP = 5

# Flow state bits: SEEN_A, SEEN_B, FIN_A, FIN_B are in _codes.pxd (hyperplane.tables.conntrack
# exports them).
cdef enum:
    SEEN_BOTH = SEEN_A | SEEN_B
    FIN_BOTH = FIN_A | FIN_B

# A row's canonical key, computed for a whole block before it is processed.
cdef struct key_t:
    uint64_t hash
    uint32_t ip_a
    uint32_t ip_b
    int32_t eni
    uint16_t port_a
    uint16_t port_b
    uint8_t proto
    uint8_t side                   # 0: the packet comes from endpoint A, 1: from B
    uint8_t kind




#### keys and hashing


cdef inline uint64_t flow_hash(uint32_t ip_a, uint32_t ip_b, int32_t eni, uint16_t port_a,
                               uint16_t port_b, uint8_t proto) noexcept nogil:
    return mix((<uint64_t>ip_a << 32) | ip_b,
               ((<uint64_t><uint32_t>eni << 32) | (<uint64_t>port_a << 16) | port_b)
               ^ (<uint64_t>proto << 56))

cdef inline uint64_t hash_of(const flow_t* f) noexcept nogil:
    return flow_hash(f.ip_a, f.ip_b, f.eni, f.port_a, f.port_b, f.proto)

cdef inline void order_by_ip(const packet_t* p, key_t* k) noexcept nogil:
    if p.src_ip <= p.dst_ip:
        k.ip_a = p.src_ip
        k.ip_b = p.dst_ip
        k.side = 0
    else:
        k.ip_a = p.dst_ip
        k.ip_b = p.src_ip
        k.side = 1

cdef inline void canonical_key(const packet_t* p, int32_t eni, key_t* k) noexcept nogil:
    """Fill ``k`` with the orientation-free key of a row (kind K_NO_GROUP/K_UNTRACKED: no key)."""
    k.eni = eni
    k.proto = p.proto
    if eni < 0:
        k.kind = K_NO_GROUP
        return
    if p.proto == P_TCP or p.proto == P_UDP:
        k.kind = K_TCP if p.proto == P_TCP else K_UDP
        if ((<uint64_t>p.src_ip << 16) | p.src_port) <= ((<uint64_t>p.dst_ip << 16) | p.dst_port):
            k.ip_a = p.src_ip
            k.port_a = p.src_port
            k.ip_b = p.dst_ip
            k.port_b = p.dst_port
            k.side = 0
        else:
            k.ip_a = p.dst_ip
            k.port_a = p.dst_port
            k.ip_b = p.src_ip
            k.port_b = p.src_port
            k.side = 1
    elif p.proto == P_ICMP:
        if p.flags == ICMP_ECHO_REQUEST:
            k.port_a = p.src_port
        elif p.flags == ICMP_ECHO_REPLY:
            k.port_a = p.dst_port
        else:
            k.kind = K_UNTRACKED
            return
        k.kind = K_ICMP
        k.port_b = 0
        order_by_ip(p, k)
    else:
        k.kind = K_OTHER
        k.port_a = 0
        k.port_b = 0
        order_by_ip(p, k)
    k.hash = flow_hash(k.ip_a, k.ip_b, eni, k.port_a, k.port_b, k.proto)


#### index (_index.pxd: linear probing, tagged entries, backward-shift deletion)

cdef uint64_t slot_hash(const void* flows, uint32_t s) noexcept nogil:
    return hash_of(&(<const flow_t*>flows)[s])

cdef inline uint32_t find(const track_t* st, const key_t* k) noexcept nogil:
    cdef probe_t pr = idx_probe(k.hash, st.idx_mask)
    cdef uint32_t s
    cdef const flow_t* f
    while True:
        s = idx_candidate(st.index, st.idx_mask, &pr)
        if s == EMPTY:
            return EMPTY
        f = &st.flows[s]
        if (f.ip_a == k.ip_a and f.ip_b == k.ip_b and f.eni == k.eni
                and f.port_a == k.port_a and f.port_b == k.port_b and f.proto == k.proto):
            return s
        idx_skip(&pr, st.idx_mask)

cdef inline void prefetch_flow(const track_t* st, uint64_t h) noexcept nogil:
    """Find the index entry whose tag matches (its line was prefetched before) and prefetch the
    flow it points to."""
    cdef probe_t pr = idx_probe(h, st.idx_mask)
    cdef uint32_t s = idx_candidate(st.index, st.idx_mask, &pr)
    if s != EMPTY:
        __builtin_prefetch(&st.flows[s])


#### the slab: killing, sweeping, growing

cdef void kill(track_t* st, uint32_t s, int expired) noexcept nogil:
    """Remove a flow from the index and free its slot."""
    cdef flow_t* f = &st.flows[s]
    if f.bits == 0:
        return                      # a free slot: killing it twice would corrupt the free list
    idx_remove(st.index, st.idx_mask, s, slot_hash, st.flows)
    f.bits = 0
    f.next_free = st.free_head
    st.free_head = s
    st.stored -= 1
    if expired:
        st.expired += 1
    else:
        st.closed += 1

cdef uint64_t sweep(track_t* st, double now) noexcept nogil:
    """Reap every flow whose deadline is at or before ``now``; returns how many."""
    cdef uint32_t s
    cdef uint64_t n = 0
    for s in range(st.used):
        if st.flows[s].bits != 0 and st.flows[s].expires <= now:
            kill(st, s, 1)
            n += 1
    return n

cdef uint64_t forget_eni(track_t* st, int32_t eni) noexcept nogil:
    cdef uint32_t s
    cdef uint64_t n = 0
    for s in range(st.used):
        if st.flows[s].bits != 0 and st.flows[s].eni == eni:
            kill(st, s, 0)
            n += 1
    return n

cdef int resize(track_t* st, uint32_t newcap) noexcept nogil:
    """Move the stored flows into a slab of ``newcap`` slots, packed from slot 0, and rebuild the
    index at twice that size. -1 when out of memory (the table is left as it was)."""
    cdef uint32_t newmask = newcap * 2 - 1
    cdef flow_t* nf = <flow_t*>table_alloc(<size_t>newcap * sizeof(flow_t))
    cdef uint32_t* ni = idx_alloc(newcap * 2)
    cdef uint32_t s, d = 0
    if nf == NULL or ni == NULL:
        free(nf)
        free(ni)
        return -1
    for s in range(st.used):
        if st.flows[s].bits != 0:
            nf[d] = st.flows[s]
            idx_put(ni, newmask, hash_of(&nf[d]), d)
            d += 1
    free(st.flows)
    free(st.index)
    st.flows = nf
    st.index = ni
    st.cap = newcap
    st.idx_mask = newmask
    st.used = d
    st.free_head = EMPTY
    return 0

cdef void shrink_to_fit(track_t* st) noexcept nogil:
    """After a sweep or a forget: give memory back once the slab is at most 1/8 full, keeping
    room for twice the flows stored (so that memory follows the live flows both ways)."""
    cdef uint32_t newcap = MIN_CAP
    if st.cap <= MIN_CAP or st.stored * 8 > st.cap:
        return
    while newcap < st.stored * 2:
        newcap *= 2
    resize(st, newcap)              # out of memory: keep the big table

cdef int reserve(track_t* st, double now) noexcept nogil:
    """Make room for one more flow: 0, or -1 out of memory, -2 at the maximum of flows."""
    cdef uint64_t freed
    cdef uint32_t limit = st.cap if st.cap < SLOT_LIMIT else SLOT_LIMIT
    if st.free_head != EMPTY or st.used < limit:
        return 0
    freed = sweep(st, now)
    if freed * 4 >= st.cap:
        return 0
    if st.cap >= MAX_CAP:
        return 0 if freed else -2
    if resize(st, st.cap * 2) < 0:
        return 0 if freed else -1
    return 0

cdef inline uint32_t take_slot(track_t* st) noexcept nogil:
    cdef uint32_t s
    if st.free_head != EMPTY:
        s = st.free_head
        st.free_head = st.flows[s].next_free
    else:
        s = st.used
        st.used += 1
    return s


#### the batch kernel

cdef inline int decide(track_t* st, const key_t* k, const packet_t* p, uint8_t rule, uint8_t untracked,
                       uint8_t* allowed, uint8_t* tracked) noexcept nogil:
    """One row, its key computed: 1, or 0 out of memory / full (``st.oom``)."""
    cdef flow_t* f
    cdef uint32_t s
    cdef uint8_t bits
    cdef double t = p.time
    cdef int is_tcp, room
    if not (t >= st.now):
        t = st.now
    st.now = t
    if k.kind == K_NO_GROUP:
        allowed[0] = 1
        tracked[0] = 0
        return 1
    if k.kind == K_UNTRACKED:
        allowed[0] = rule != 0
        tracked[0] = 0
        return 1
    is_tcp = k.kind == K_TCP
    s = find(st, k)
    if s != EMPTY:
        f = &st.flows[s]
        if f.expires <= t:
            kill(st, s, 1)
            s = EMPTY
        elif (is_tcp and (p.flags & (F_SYN | F_ACK | F_RST | F_FIN)) == F_SYN
                and (f.bits & FIN_BOTH) == FIN_BOTH):
            kill(st, s, 0)          # a new connection on the tuple of a closed one
            s = EMPTY
    if s != EMPTY:
        allowed[0] = 1
        tracked[0] = 1
        if is_tcp and (p.flags & F_RST):
            kill(st, s, 0)
        else:
            bits = f.bits | (SEEN_A << k.side)
            if is_tcp and (p.flags & F_FIN):
                bits |= FIN_A << k.side
            f.bits = bits
            f.expires = deadline(t, st.timeout[k.kind * N_BITS + bits])
    elif rule != 0:
        allowed[0] = 1
        tracked[0] = 0
        if untracked or (is_tcp and (p.flags & F_RST)):
            return 1                # an untracked flow stores nothing; a RST opens nothing
        room = reserve(st, t)
        if room < 0:
            st.oom = room
            return 0
        s = take_slot(st)
        f = &st.flows[s]
        f.ip_a = k.ip_a
        f.ip_b = k.ip_b
        f.eni = k.eni
        f.port_a = k.port_a
        f.port_b = k.port_b
        f.proto = k.proto
        bits = SEEN_A << k.side
        if is_tcp and (p.flags & F_FIN):
            bits |= FIN_A << k.side
        elif is_tcp and st.pickup and (p.flags & (F_SYN | F_ACK | F_FIN | F_RST)) == F_ACK:
            bits = SEEN_BOTH        # a connection whose opening happened before the capture began
        f.bits = bits
        f.expires = deadline(t, st.timeout[k.kind * N_BITS + bits])
        idx_put(st.index, st.idx_mask, k.hash, s)
        st.stored += 1
        st.created += 1
    else:
        allowed[0] = 0
        tracked[0] = 0
    return 1


cdef Py_ssize_t run(track_t* st, const int32_t* eni, const packet_t* pk, const uint8_t* rule,
                    const uint8_t* untracked, uint8_t* allowed, uint8_t* tracked, Py_ssize_t n) noexcept nogil:
    """Decide rows 0..n-1. Returns n, or the row where it stopped (out of memory / full)."""
    cdef key_t keys[BLOCK]
    cdef Py_ssize_t i0, i, j, m
    i0 = 0
    while i0 < n:
        m = n - i0 if n - i0 < BLOCK else BLOCK
        # VPP-style: put the block's index lines, then its flows, in flight together. Hashes
        # depend on the row alone, so they stay valid if the index grows meanwhile.
        for j in range(m):
            canonical_key(&pk[i0 + j], eni[i0 + j], &keys[j])
            if keys[j].kind < K_UNTRACKED:
                __builtin_prefetch(idx_bucket(st.index, st.idx_mask, keys[j].hash))
        for j in range(m):
            if keys[j].kind < K_UNTRACKED:
                prefetch_flow(st, keys[j].hash)
        for j in range(m):
            i = i0 + j
            if not decide(st, &keys[j], &pk[i], rule[i], untracked[i] if untracked != NULL else 0,
                          &allowed[i], &tracked[i]):
                return i
        i0 += m
    return n


cdef int track_check(track_t* st, int32_t eni, const packet_t* p, uint8_t rule_allowed,
                     uint8_t* allowed, uint8_t* tracked) noexcept nogil:
    """One row (hyperplane/_walk.pyx, nothing to overlap it with); 1, or 0 out of memory (``st.oom``)."""
    cdef key_t k
    canonical_key(p, eni, &k)
    return decide(st, &k, p, rule_allowed, 0, allowed, tracked)


cdef int track_check_rules(track_t* st, int32_t eni, const packet_t* p, uint8_t rule_allowed,
                           uint8_t untracked, uint8_t* allowed, uint8_t* tracked) noexcept nogil:
    """``track_check`` where the rules may leave the flow untracked (``untracked`` 1: a packet
    the rules allow and no live flow holds passes without creating one)."""
    cdef key_t k
    canonical_key(p, eni, &k)
    return decide(st, &k, p, rule_allowed, untracked, allowed, tracked)


cdef void track_prefetch(const track_t* st, int32_t eni, const packet_t* p, int stage) noexcept nogil:
    """The walker's look-ahead for a row it will check (its ENI and packet known in advance)."""
    cdef key_t k
    if eni < 0 or st.index == NULL:
        return
    canonical_key(p, eni, &k)
    if k.kind == K_NO_GROUP or k.kind == K_UNTRACKED:
        return
    if stage == 0:
        __builtin_prefetch(idx_bucket(st.index, st.idx_mask, k.hash))
    else:
        prefetch_flow(st, k.hash)


#### the Python-facing class

@cython.final
cdef class ConntrackCore:
    """The compiled table. Use ``hyperplane.conntrack.ConnectionTracker``, which validates
    arguments and holds AWS's defaults."""

    def __cinit__(self, double tcp_opening, double tcp_established, double tcp_closing,
                  double udp, double udp_stream, double icmp, double other,
                  uint32_t capacity=1024):
        cdef uint32_t cap = MIN_CAP
        cdef int b
        while cap < capacity and cap < MAX_CAP:
            cap *= 2
        memset(&self.st, 0, sizeof(track_t))
        for b in range(N_BITS):
            if b & FIN_BOTH:
                self.st.timeout[K_TCP * N_BITS + b] = tcp_closing
            elif (b & SEEN_BOTH) == SEEN_BOTH:
                self.st.timeout[K_TCP * N_BITS + b] = tcp_established
            else:
                self.st.timeout[K_TCP * N_BITS + b] = tcp_opening
            self.st.timeout[K_UDP * N_BITS + b] = udp_stream if (b & SEEN_BOTH) == SEEN_BOTH else udp
            self.st.timeout[K_ICMP * N_BITS + b] = icmp
            self.st.timeout[K_OTHER * N_BITS + b] = other
        self.st.now = -INFINITY
        self.st.free_head = EMPTY
        self.st.cap = cap
        self.st.idx_mask = cap * 2 - 1
        self.st.flows = <flow_t*>table_alloc(<size_t>cap * sizeof(flow_t))
        self.st.index = idx_alloc(cap * 2)
        if self.st.flows == NULL or self.st.index == NULL:
            raise MemoryError("cannot allocate the connection tracking table")

    def __dealloc__(self):
        free(self.st.flows)
        free(self.st.index)

    def __reduce__(self):
        raise TypeError("a ConntrackCore cannot be pickled")

    cdef int _enter(self) except -1:
        # The loops run without the GIL: a second thread entering the same table meanwhile would
        # corrupt it, so it is refused (the check and the set happen under the GIL).
        if self.busy:
            raise RuntimeError("this connection tracker is in use by another thread")
        self.busy = 1
        return 0

    def check(self, const int32_t[::1] eni not None, const packet_t[::1] packets not None,
              const uint8_t[::1] rule_allowed not None, uint8_t[::1] allowed not None,
              uint8_t[::1] tracked not None, const uint8_t[::1] untracked=None):
        """Decide every row in order, writing ``allowed`` and ``tracked`` (one byte per row);
        ``untracked`` (optional, one byte per row): the rules leave that row's flow untracked."""
        cdef Py_ssize_t n = packets.shape[0]
        cdef Py_ssize_t stop
        cdef int code
        cdef const uint8_t* up = NULL
        if eni.shape[0] != n:
            raise ValueError(f"eni has {eni.shape[0]} rows for {n} packets")
        if rule_allowed.shape[0] != n:
            raise ValueError(f"rule_allowed has {rule_allowed.shape[0]} rows for {n} packets")
        if allowed.shape[0] != n or tracked.shape[0] != n:
            raise ValueError(f"allowed and tracked must have {n} rows")
        if untracked is not None and untracked.shape[0] != n:
            raise ValueError(f"untracked has {untracked.shape[0]} rows for {n} packets")
        if n == 0:
            return
        if untracked is not None:
            up = &untracked[0]
        self._enter()
        with nogil:
            stop = run(&self.st, &eni[0], &packets[0], &rule_allowed[0], up, &allowed[0], &tracked[0], n)
        self.busy = 0
        if stop != n:
            code = self.st.oom
            self.st.oom = 0
            if code == -2:
                raise MemoryError(f"connection tracking table is full ({SLOT_LIMIT} flows) at row {stop}")
            raise MemoryError(f"connection tracking table cannot grow (row {stop})")

    def expire(self, double now):
        """Reap every flow whose deadline is at or before ``now`` (clamped to the clock)."""
        cdef uint64_t n
        if not (now >= self.st.now):
            now = self.st.now
        self.st.now = now
        self._enter()
        with nogil:
            n = sweep(&self.st, now)
            shrink_to_fit(&self.st)
        self.busy = 0
        return n

    def forget(self, int32_t eni):
        """Remove every flow of ``eni``; returns how many."""
        cdef uint64_t n
        self._enter()
        with nogil:
            n = forget_eni(&self.st, eni)
            shrink_to_fit(&self.st)
        self.busy = 0
        return n

    @property
    def now(self):
        return self.st.now

    @property
    def live(self):
        return self.st.stored

    @property
    def capacity(self):
        return self.st.cap

    def counters(self):
        return {"created": self.st.created, "expired": self.st.expired, "closed": self.st.closed}

    def memory_bytes(self):
        return (<size_t>self.st.cap * sizeof(flow_t)
                + <size_t>(self.st.idx_mask + 1) * sizeof(uint32_t) + sizeof(track_t))

    def index_stats(self):
        """The index: buckets, entries, probe_total (buckets read to find every entry once) and
        probe_max. One pass over it; not a hot path."""
        return idx_stats(self.st.index, self.st.idx_mask, slot_hash, self.st.flows)

    def timeout_table(self):
        """The 64 timeouts, indexed kind * 16 + bits (kinds: TCP, UDP, ICMP, other)."""
        return [self.st.timeout[b] for b in range(N_KINDS * N_BITS)]

    def flows(self):
        """Every stored flow, as columns (for tests and listings; not a hot path)."""
        cdef Py_ssize_t k = 0
        cdef uint32_t s
        cdef flow_t* f
        cols = np.zeros(self.st.stored, dtype=[
            ("eni", "<i4"), ("proto", "u1"), ("ip_a", "<u4"), ("port_a", "<u2"),
            ("ip_b", "<u4"), ("port_b", "<u2"), ("bits", "u1"), ("expires", "<f8")])
        for s in range(self.st.used):
            f = &self.st.flows[s]
            if f.bits != 0:
                cols[k] = (f.eni, f.proto, f.ip_a, f.port_a, f.ip_b, f.port_b, f.bits, f.expires)
                k += 1
        return cols
