# cython: language_level=3, embedsignature=True, auto_pickle=False
"""Flow log records: observed from the walker's hop log and aggregated, in compiled code.

Observations. ``RecordTable.observe`` walks each packet's hops backwards from the packet as
delivered, undoing each translation (its hop holds the values before it), so every ENI sees the
header it had; what the later stages of a send decided (NACL out, DNS, the route's target) is
carried back to its SG egress. Each (packet, ENI) observation is a record key of three words:

    a = src ip << 16 | port (48) | small << 48: proto | direction << 8 | reject << 9 | path << 10
    b = dst ip << 16 | port (48) | ENI number << 48
    c = window << 32 | the execution environment's address behind a Hyperplane ENI (else 0)

(ports 0 for protocols without them, as AWS logs ICMP).

Not logged (AWS "Flow log limitations"): an observation whose address on the far side of the
ENI, or on its own side, is link-local (169.254.0.0/16: instance metadata, Amazon Time Sync, the
Amazon DNS server at 169.254.169.253, Windows license activation) or one of the first four
addresses of a subnet of the ENI's VPC (``reserved``: the VPC router at base + 1, the DNS
resolver at base + 2), and DHCP (UDP between ports 67 and 68).

Records. A record is one key with its packets and bytes summed, first and last packet times and
TCP flags ORed. Records live end to end in insertion order (the columns ``columns()`` returns),
and an open-addressing index of record numbers (linear probing, at most half full) finds a key's
record; keys are compared in full, so two keys that hash alike never merge.
"""

cimport cython
from libc.math cimport INFINITY, floor
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from hyperplane._core._tables cimport __builtin_prefetch, mix, table_alloc
from hyperplane._core._types cimport F_ACK, F_FIN, F_RST, F_SYN, P_TCP, P_UDP, packet_t
from hyperplane._core._codes cimport (H_DNS, H_IGW_IN, H_IGW_OUT, H_NACL_IN, H_NACL_OUT, H_NAT_IN, H_NAT_OUT,
                                     H_ROUTE, H_SG_EGRESS, H_SG_INGRESS, H_V2N_IN, H_V2N_OUT)
from hyperplane._core._walk cimport HOPS_PER_PACKET, hop_t

import numpy as np

from hyperplane._core._codes import Stage
from hyperplane._core._walk import HOP as _HOP

cdef enum:
    EMPTY = 0xFFFFFFFF
    MAX_RECORDS = 0x7FFFFFFF
    PENDING = 32  # observations hashed and prefetched before they are merged

cdef uint64_t PORT = 0xFFFF
cdef uint32_t LINK_LOCAL = 0xA9FE  # 169.254.0.0/16, the top half of an address
cdef int LAST_STAGE = max(Stage)  # a hop of a later code is none of the walker's (stages that
                                  # only route, as a peering's, change no address: not observed)


cdef struct batch_t:
    # one batch's hop log and what the keys need, as raw pointers
    const hop_t* hops
    const int64_t* first_hop
    const packet_t* packets
    const int32_t* location
    const int32_t* nat_eni
    const uint8_t* path_of_target
    const int64_t* eni_number
    const uint8_t* eni_hyperplane
    double interval
    double time_offset
    const uint64_t* reserved    # sorted: VPC number << 32 | address, the first four of every subnet
    Py_ssize_t n_reserved
    const int32_t* eni_vpc      # each ENI's VPC number (NULL: no reserved addresses given)


cdef struct record_t:
    # 64 bytes, one cache line (the table is line-aligned): a probe touches one line
    uint64_t a
    uint64_t b
    uint64_t c
    int64_t packets
    int64_t nbytes
    double start
    double end
    uint8_t flags
    uint8_t pad[7]

assert sizeof(record_t) == 64


cdef struct observation_t:
    # one observation waiting for its merge: its key, hash, bytes and time
    uint64_t a
    uint64_t b
    uint64_t c
    uint64_t h
    int64_t nbytes
    double t
    uint8_t flags


cdef inline uint64_t key_hash(uint64_t a, uint64_t b, uint64_t c) noexcept nogil:
    return mix(mix(a, b), c)


cdef inline bint is_reserved(const batch_t* bt, int32_t eni, uint32_t ip) noexcept nogil:
    """Whether ``ip`` is one of the first four addresses of a subnet of the ENI's VPC."""
    cdef uint64_t key
    cdef Py_ssize_t lo = 0, hi = bt.n_reserved, mid
    if bt.eni_vpc == NULL or hi == 0:
        return False
    key = (<uint64_t><uint32_t>bt.eni_vpc[eni] << 32) | ip
    while lo < hi:
        mid = (lo + hi) >> 1
        if bt.reserved[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo < bt.n_reserved and bt.reserved[lo] == key


cdef inline bint unlogged(const batch_t* bt, int32_t eni, const packet_t* p, uint64_t src, uint64_t dst) noexcept nogil:
    """Traffic flow logs do not capture (see the module docstring); ``src``/``dst`` are the
    endpoints (ip << 16 | port) the ENI sees."""
    cdef uint32_t s = <uint32_t>(src >> 16), d = <uint32_t>(dst >> 16)
    cdef uint16_t sp = <uint16_t>(src & PORT), dp = <uint16_t>(dst & PORT)
    if (s >> 16) == LINK_LOCAL or (d >> 16) == LINK_LOCAL:
        return True
    if p.proto == P_UDP and ((sp == 68 and dp == 67) or (sp == 67 and dp == 68)):
        return True
    return is_reserved(bt, eni, s) or is_reserved(bt, eni, d)


@cython.final
cdef class RecordTable:
    """Records by key; ``add`` merges a batch of partial records into them."""

    cdef record_t* records
    cdef uint32_t* index
    cdef Py_ssize_t count, capacity
    cdef uint64_t mask
    # observe's observations not merged yet, in order: a record's index bucket and line are
    # fetched for a block of them at once (random lines of a table larger than the caches),
    # then they are merged in the order they were made, so records keep their order
    cdef observation_t pending[PENDING]
    cdef Py_ssize_t n_pending

    def __cinit__(self):
        self.capacity = 1024
        self.mask = 2 * self.capacity - 1
        self.records = <record_t*>table_alloc(self.capacity * sizeof(record_t))
        self.index = <uint32_t*>malloc((self.mask + 1) * sizeof(uint32_t))
        if self.records == NULL or self.index == NULL:
            raise MemoryError("cannot allocate the flow log record table")
        memset(self.index, 0xFF, (self.mask + 1) * sizeof(uint32_t))

    def __dealloc__(self):
        free(self.records)
        free(self.index)

    def __len__(self):
        return self.count

    cdef int _grow(self) except -1:
        cdef Py_ssize_t capacity = self.capacity * 2
        cdef uint64_t mask = 2 * capacity - 1
        if capacity > MAX_RECORDS:
            raise MemoryError(f"more than {MAX_RECORDS} flow log records")
        cdef record_t* records = <record_t*>table_alloc(capacity * sizeof(record_t))
        if records == NULL:
            raise MemoryError("cannot grow the flow log record table")
        memcpy(records, self.records, self.count * sizeof(record_t))
        free(self.records)
        self.records = records
        self.capacity = capacity
        return self._reindex(mask)

    cdef int _reindex(self, uint64_t mask) except -1:
        """Index the records anew in an index of ``mask + 1`` buckets."""
        cdef uint64_t i
        cdef Py_ssize_t r
        cdef uint32_t* index = <uint32_t*>malloc((mask + 1) * sizeof(uint32_t))
        if index == NULL:
            raise MemoryError("cannot index the flow log record table")
        memset(index, 0xFF, (mask + 1) * sizeof(uint32_t))
        for r in range(self.count):
            i = key_hash(self.records[r].a, self.records[r].b, self.records[r].c) & mask
            while index[i] != EMPTY:
                i = (i + 1) & mask
            index[i] = <uint32_t>r
        free(self.index)
        self.index = index
        self.mask = mask
        return 0

    def add(self, const uint64_t[::1] a not None, const uint64_t[::1] b not None,
            const uint64_t[::1] c not None, packets, const int64_t[::1] nbytes not None,
            const double[::1] start not None, const double[::1] end not None,
            const uint8_t[::1] flags not None):
        """Merge rows of partial records: packets (None: one each) and bytes summed, start the
        minimum, end the maximum, flags ORed. Returns how many new records appeared."""
        cdef Py_ssize_t n = a.shape[0], k, done = 0, before = self.count
        cdef const int64_t[::1] pk
        cdef const int64_t* counts = NULL
        if not (b.shape[0] == c.shape[0] == nbytes.shape[0] == start.shape[0] == end.shape[0]
                == flags.shape[0] == n):
            raise ValueError("a, b, c, nbytes, start, end and flags must have one value per row")
        if packets is not None:
            pk = packets
            if pk.shape[0] != n:
                raise ValueError("packets must have one value per row")
            if n:
                counts = &pk[0]
        while done < n:
            # a slice of rows that fits even if every one is a new record: the index (twice the
            # capacity) stays at most half full without growing inside the loop
            if self.capacity - self.count < max(1, self.capacity // 4):
                self._grow()
            k = min(n, done + (self.capacity - self.count))
            with nogil:
                self._merge(&a[0], &b[0], &c[0], counts, &nbytes[0], &start[0], &end[0], &flags[0], done, k)
            done = k
        return self.count - before

    cdef void _merge(self, const uint64_t* a, const uint64_t* b, const uint64_t* c, const int64_t* counts,
                     const int64_t* nbytes, const double* start, const double* end, const uint8_t* flags,
                     Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
        cdef Py_ssize_t k
        for k in range(lo, hi):
            self._merge_one(a[k], b[k], c[k], counts[k] if counts != NULL else 1, nbytes[k], start[k], end[k],
                            flags[k])

    cdef inline void _merge_one(self, uint64_t a, uint64_t b, uint64_t c, int64_t packets, int64_t nbytes,
                                double start, double end, uint8_t flags) noexcept nogil:
        self._merge_hashed(key_hash(a, b, c), a, b, c, packets, nbytes, start, end, flags)

    cdef inline void _merge_hashed(self, uint64_t h, uint64_t a, uint64_t b, uint64_t c, int64_t packets,
                                   int64_t nbytes, double start, double end, uint8_t flags) noexcept nogil:
        cdef uint64_t i = h & self.mask
        cdef uint32_t r
        cdef record_t* rec
        while True:
            r = self.index[i]
            if r == EMPTY:
                r = <uint32_t>self.count
                self.count += 1
                self.index[i] = r
                rec = &self.records[r]
                rec.a, rec.b, rec.c = a, b, c
                rec.packets, rec.nbytes = packets, nbytes
                rec.start, rec.end, rec.flags = start, end, flags
                return
            rec = &self.records[r]
            if rec.a == a and rec.b == b and rec.c == c:
                rec.packets += packets
                rec.nbytes += nbytes
                if start < rec.start:
                    rec.start = start
                if end > rec.end:
                    rec.end = end
                rec.flags |= flags
                return
            i = (i + 1) & self.mask

    cdef inline int64_t _emit(self, const batch_t* bt, Py_ssize_t row, int32_t eni, uint16_t bits, uint64_t src,
                              uint64_t dst, uint32_t orig) noexcept nogil:
        """One observation of packet ``row`` at ENI ``eni``, merged into its record; returns 1,
        or 0 for traffic flow logs do not capture."""
        cdef const packet_t* p = &bt.packets[row]
        cdef double t = p.time + bt.time_offset
        cdef uint8_t flags = 0
        if unlogged(bt, eni, p, src, dst):
            return 0
        if p.proto == P_TCP:
            flags = (p.flags & (F_FIN | F_SYN | F_RST)) | (0x10 if (p.flags & (F_SYN | F_ACK)) == (F_SYN | F_ACK) else 0)
        elif p.proto != P_UDP:  # no ports, as AWS logs ICMP
            src &= ~PORT
            dst &= ~PORT
        if not bt.eni_hyperplane[eni]:
            orig = 0
        cdef observation_t* o = &self.pending[self.n_pending]
        o.a = src | (<uint64_t>(bits | p.proto) << 48)
        o.b = dst | (<uint64_t>bt.eni_number[eni] << 48)
        o.c = (<uint64_t>floor(t / bt.interval) << 32) | orig
        o.h = key_hash(o.a, o.b, o.c)
        o.nbytes, o.t, o.flags = p.length, t, flags
        __builtin_prefetch(&self.index[o.h & self.mask])
        self.n_pending += 1
        if self.n_pending == PENDING:
            self._drain()
        return 1

    cdef void _drain(self) noexcept nogil:
        """Merge the pending observations, in order, their record lines prefetched first."""
        cdef Py_ssize_t j
        cdef uint32_t r
        cdef observation_t* o
        for j in range(self.n_pending):
            r = self.index[self.pending[j].h & self.mask]
            if r != EMPTY:
                __builtin_prefetch(&self.records[r])
        for j in range(self.n_pending):
            o = &self.pending[j]
            self._merge_hashed(o.h, o.a, o.b, o.c, 1, o.nbytes, o.t, o.t, o.flags)
        self.n_pending = 0

    cdef Py_ssize_t _observe(self, const batch_t* bt, Py_ssize_t begin, Py_ssize_t end,
                             int64_t* observed) noexcept nogil:
        """Observe rows begin..end-1 while the table has room for a packet's records; returns
        the row where it stopped for room (or ``end``)."""
        cdef Py_ssize_t i, k
        cdef const hop_t* h
        cdef uint64_t src, dst
        cdef uint32_t orig_src, orig_dst
        cdef uint8_t egress_state
        cdef uint16_t path, bits
        cdef int64_t before
        cdef const packet_t* p
        for i in range(begin, end):
            if self.capacity - self.count - self.n_pending < HOPS_PER_PACKET:
                self._drain()
                if self.capacity - self.count < HOPS_PER_PACKET:
                    return i
            before = self.count
            p = &bt.packets[i]
            src = (<uint64_t>p.src_ip << 16) | p.src_port
            dst = (<uint64_t>p.dst_ip << 16) | p.dst_port
            orig_src = orig_dst = 0
            egress_state = 0   # of the send being walked back: 0 accept, 1 reject, 2 skip (DNS)
            path = 0
            for k in range(bt.first_hop[i], bt.first_hop[i + 1]):
                if bt.hops[k].stage == H_V2N_OUT:
                    orig_src = <uint32_t>bt.hops[k].v[2]
            k = bt.first_hop[i + 1] - 1
            while k >= bt.first_hop[i]:
                h = &bt.hops[k]
                k -= 1
                if h.stage == H_SG_INGRESS:
                    observed[0] += self._emit(bt, i, h.v[0], 0 if h.v[2] else 1 << 9, src, dst, orig_dst)
                elif h.stage == H_SG_EGRESS:
                    bits = (1 << 8) | (0 if (h.v[2] and egress_state == 0) else 1 << 9)
                    if h.v[2]:
                        bits |= path
                    if egress_state != 2:
                        observed[0] += self._emit(bt, i, h.v[0], bits, src, dst, orig_src)
                    egress_state = 0
                    path = 0
                elif h.stage == H_NACL_OUT:
                    egress_state = 0 if h.v[2] else 1
                elif h.stage == H_DNS:
                    egress_state = 2
                elif h.stage == H_ROUTE:
                    path = <uint16_t>bt.path_of_target[<uint8_t>h.v[4]] << 10
                elif h.stage == H_NACL_IN:
                    if not h.v[2] and bt.location[i] >= 0:  # refused here: it ended at that ENI
                        observed[0] += self._emit(bt, i, bt.location[i], 1 << 9, src, dst, 0)
                elif h.stage == H_NAT_OUT or h.stage == H_NAT_IN:
                    src = (<uint64_t><uint32_t>h.v[2] << 16) | <uint16_t>h.v[3]
                    dst = (<uint64_t><uint32_t>h.v[4] << 16) | <uint16_t>h.v[5]
                    observed[0] += self._emit(bt, i, bt.nat_eni[h.v[0]], 0, src, dst, 0)
                elif h.stage == H_V2N_IN:
                    orig_dst = <uint32_t>h.v[4] if h.v[1] < 16 else 0
                    dst = (<uint64_t><uint32_t>h.v[2] << 16) | <uint16_t>h.v[3]
                elif h.stage == H_V2N_OUT:
                    src = (<uint64_t><uint32_t>h.v[2] << 16) | <uint16_t>h.v[3]
                elif h.stage == H_IGW_OUT:
                    src = (<uint64_t><uint32_t>h.v[1] << 16) | (src & PORT)
                elif h.stage == H_IGW_IN:
                    dst = (<uint64_t><uint32_t>h.v[0] << 16) | (dst & PORT)
        self._drain()
        return end

    def observe(self, hops, const int64_t[::1] first_hop not None, const packet_t[::1] packets not None,
                const int32_t[::1] location not None, const int32_t[::1] nat_eni not None,
                const uint8_t[::1] path_of_target not None, const int64_t[::1] eni_number not None,
                const uint8_t[::1] eni_hyperplane not None, double interval, double time_offset,
                const uint64_t[::1] reserved=None, const int32_t[::1] eni_vpc=None):
        """Observe a walked batch (its hop log, ``first_hop`` offsets, packets as delivered and
        locations) and merge every observation into its record (see the module docstring);
        returns the number of observations. ``eni_number``: each compiled ENI's number in the
        records; ``eni_hyperplane``: 1 for Hyperplane ENIs; ``reserved`` (sorted, VPC number << 32
        | address) and ``eni_vpc`` (each ENI's VPC number): the subnets' first four addresses,
        whose traffic is not logged (both or neither)."""
        cdef Py_ssize_t n = packets.shape[0], i, row = 0
        if not isinstance(hops, np.ndarray) or hops.dtype != _HOP or hops.ndim != 1:
            raise TypeError("hops must be a one-dimensional array of hyperplane._walk.HOP")
        if not hops.flags.c_contiguous:
            raise ValueError("hops must be C-contiguous")
        cdef uint8_t[::1] log = hops.view(np.uint8)
        cdef const hop_t* base = <const hop_t*>&log[0] if log.shape[0] else NULL
        cdef Py_ssize_t n_enis = eni_number.shape[0], total
        cdef batch_t bt
        cdef int64_t observed = 0
        if (first_hop.shape[0] != n + 1 or location.shape[0] != n or path_of_target.shape[0] != 256
                or eni_hyperplane.shape[0] != n_enis):
            raise ValueError("observe: first_hop, packets, location and the ENI tables must describe one batch")
        if (reserved is None) != (eni_vpc is None) or (eni_vpc is not None and eni_vpc.shape[0] != n_enis):
            raise ValueError("observe: reserved and eni_vpc go together, eni_vpc with one VPC per ENI")
        if reserved is not None:
            for i in range(1, reserved.shape[0]):
                if reserved[i - 1] > reserved[i]:
                    raise ValueError("observe: reserved must be sorted")
        if not (0 < interval < INFINITY) or not (-INFINITY < time_offset < INFINITY):
            raise ValueError(f"observe: interval ({interval}) and time_offset ({time_offset}) must be finite, "
                             "interval > 0")
        for i in range(n_enis):
            if not 0 <= eni_number[i] <= 0xFFFF:  # it shares a key word with an endpoint
                raise ValueError(f"observe: ENI number {eni_number[i]} (ENI {i}) is outside 0..65535")
        total = first_hop[n]
        if total > log.shape[0] // <Py_ssize_t>sizeof(hop_t) or (n and first_hop[0] != 0):
            raise ValueError("observe: first_hop does not fit the hop log")
        # the checks read the whole hop log: without the GIL, so that the walk of the next chunk runs beside
        cdef Py_ssize_t bad_row = -1, bad_hop = -1, n_nats = nat_eni.shape[0]
        cdef const int32_t* nats = &nat_eni[0] if n_nats else NULL
        with nogil:
            for i in range(n):
                if not -1 <= location[i] < n_enis or not 0 <= first_hop[i + 1] - first_hop[i] <= HOPS_PER_PACKET:
                    bad_row = i
                    break
            for i in range(total if bad_row < 0 else 0):
                if (base[i].stage > LAST_STAGE or not 0 <= base[i].row < n
                        or ((base[i].stage == H_NAT_OUT or base[i].stage == H_NAT_IN)
                            and not (0 <= base[i].v[0] < n_nats and 0 <= nats[base[i].v[0]] < n_enis))
                        or ((base[i].stage == H_SG_EGRESS or base[i].stage == H_SG_INGRESS)
                            and not 0 <= base[i].v[0] < n_enis)):
                    bad_hop = i
                    break
        if bad_row >= 0:
            raise ValueError(f"observe: row {bad_row} has no valid location, or not 0..{HOPS_PER_PACKET} hops")
        if bad_hop >= 0:
            i = bad_hop
            if base[i].stage > LAST_STAGE or not 0 <= base[i].row < n:
                raise ValueError(f"observe: hop {i} is not a hop of this batch")
            if base[i].stage == H_NAT_OUT or base[i].stage == H_NAT_IN:
                raise ValueError(f"observe: hop {i} names NAT gateway {base[i].v[0]}")
            raise ValueError(f"observe: hop {i} names ENI {base[i].v[0]}")
        bt.hops, bt.first_hop, bt.packets = base, &first_hop[0], &packets[0] if n else NULL
        bt.location, bt.nat_eni = &location[0] if n else NULL, &nat_eni[0] if nat_eni.shape[0] else NULL
        bt.path_of_target, bt.eni_number = &path_of_target[0], &eni_number[0] if n_enis else NULL
        bt.eni_hyperplane, bt.interval, bt.time_offset = &eni_hyperplane[0] if n_enis else NULL, interval, time_offset
        bt.n_reserved = reserved.shape[0] if reserved is not None else 0
        bt.reserved = &reserved[0] if bt.n_reserved else NULL
        bt.eni_vpc = &eni_vpc[0] if eni_vpc is not None and n_enis else NULL
        while row < n:
            if self.capacity - self.count < HOPS_PER_PACKET:
                self._grow()
            with nogil:
                row = self._observe(&bt, row, n, &observed)
        return observed

    def take(self, uint64_t window):
        """The records of windows before ``window`` (``c >> 32``) as ``columns`` gives them,
        removed from the table: the others keep their order."""
        cdef RecordTable taken = RecordTable()
        cdef Py_ssize_t r, kept = 0
        for r in range(self.count):
            if (self.records[r].c >> 32) < window:
                if taken.count == taken.capacity:
                    taken._grow()
                taken.records[taken.count] = self.records[r]
                taken.count += 1
            else:
                self.records[kept] = self.records[r]
                kept += 1
        if taken.count:
            self.count = kept
            self._reindex(self.mask)
        return taken.columns()

    def columns(self):
        """Every record as columns, in the order the keys first appeared: a, b, c, packets,
        bytes, start, end, flags."""
        cdef Py_ssize_t n = self.count, k
        out = {"a": np.empty(n, np.uint64), "b": np.empty(n, np.uint64), "c": np.empty(n, np.uint64),
               "packets": np.empty(n, np.int64), "bytes": np.empty(n, np.int64),
               "start": np.empty(n, np.float64), "end": np.empty(n, np.float64), "flags": np.empty(n, np.uint8)}
        cdef uint64_t[::1] a = out["a"], b = out["b"], c = out["c"]
        cdef int64_t[::1] packets = out["packets"], nbytes = out["bytes"]
        cdef double[::1] start = out["start"], end = out["end"]
        cdef uint8_t[::1] flags = out["flags"]
        with nogil:
            for k in range(n):
                a[k], b[k], c[k] = self.records[k].a, self.records[k].b, self.records[k].c
                packets[k], nbytes[k] = self.records[k].packets, self.records[k].nbytes
                start[k], end[k], flags[k] = self.records[k].start, self.records[k].end, self.records[k].flags
        return out
