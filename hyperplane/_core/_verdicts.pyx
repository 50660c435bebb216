# cython: language_level=3, embedsignature=True, auto_pickle=False
"""A replay's verdict labels of walked rows, in compiled code (``hyperplane.replay_verdicts``).

A verdict line says, besides the reason, where the packet ended and which hop decided. Those
depend on few values of a row: its location (the ENI where it ended), its reason, whether a
translating hop (V2N out, NAT gateway out) opened a connection for a TCP ACK (picked up
mid-stream), the stage of its last hop and that hop's values that name a resource or rule
(``kept``: the others are the connection's own tuple). ``LabelKeys.codes`` reads them from the
hop log in one pass without the GIL and numbers each distinct combination, a key, once for the
table's life: a replay's chunks share the numbers, so the text of a label (rendered in Python,
as the trace renders hops) is made once per key, not once per chunk.

Conversations. ``ConversationTable`` follows a replay's TCP and UDP conversations (both
directions of a 5-tuple) across its chunks in one pass a chunk: which sides had a packet
delivered, whether one picked its connection up, and the failure of the first refused packet.

Both are numbered rows (``numbered_t``): end to end in the order they first appeared, with an
open-addressing index of their numbers (linear probing, at most half full) that finds one by
its key, compared in full.
"""

cimport cython
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

from hyperplane._core._tables cimport mix
from hyperplane._core._types cimport F_ACK, F_FIN, F_RST, F_SYN, P_TCP, packet_t
from hyperplane._core._codes cimport H_NAT_OUT, H_V2N_OUT, S_CREATED
from hyperplane._core._walk cimport hop_t

import numpy as np

from hyperplane._core._walk import HOP as _HOP

cdef enum:
    EMPTY = 0xFFFFFFFF
    VALUES = 6  # a hop's values


cdef struct numbered_t:
    # rows of row_size bytes end to end, numbered from 0 in order of first appearance; a row is
    # found by its first key_size bytes through ``index`` (row numbers, EMPTY where none) and
    # its hash, kept in ``hashes`` for the index's rebuilding
    char* rows
    uint64_t* hashes
    uint32_t* index
    Py_ssize_t row_size, key_size, count, capacity
    uint64_t mask


cdef int numbered_init(numbered_t* t, Py_ssize_t row_size, Py_ssize_t key_size, Py_ssize_t capacity,
                       str what) except -1:
    t.row_size, t.key_size, t.count, t.capacity, t.mask = row_size, key_size, 0, capacity, 2 * capacity - 1
    t.rows = <char*>malloc(capacity * row_size)
    t.hashes = <uint64_t*>malloc(capacity * sizeof(uint64_t))
    t.index = <uint32_t*>malloc((t.mask + 1) * sizeof(uint32_t))
    if t.rows == NULL or t.hashes == NULL or t.index == NULL:
        raise MemoryError(f"cannot allocate the {what} table")
    memset(t.index, 0xFF, (t.mask + 1) * sizeof(uint32_t))
    return 0


cdef void numbered_free(numbered_t* t) noexcept:
    free(t.rows)
    free(t.hashes)
    free(t.index)
    t.rows, t.hashes, t.index = NULL, NULL, NULL


cdef int numbered_grow(numbered_t* t, str what) except -1:
    """Twice the room; the index rebuilt from the rows' hashes."""
    cdef Py_ssize_t capacity = t.capacity * 2, r
    cdef uint64_t mask = 2 * capacity - 1, i
    if capacity > 0x7FFFFFFF:
        raise MemoryError(f"more than 2**31 rows in the {what} table")
    cdef char* rows = <char*>malloc(capacity * t.row_size)
    cdef uint64_t* hashes = <uint64_t*>malloc(capacity * sizeof(uint64_t))
    cdef uint32_t* index = <uint32_t*>malloc((mask + 1) * sizeof(uint32_t))
    if rows == NULL or hashes == NULL or index == NULL:
        free(rows)
        free(hashes)
        free(index)
        raise MemoryError(f"cannot grow the {what} table")
    memcpy(rows, t.rows, t.count * t.row_size)
    memcpy(hashes, t.hashes, t.count * sizeof(uint64_t))
    memset(index, 0xFF, (mask + 1) * sizeof(uint32_t))
    for r in range(t.count):
        i = hashes[r] & mask
        while index[i] != EMPTY:
            i = (i + 1) & mask
        index[i] = <uint32_t>r
    numbered_free(t)
    t.rows, t.hashes, t.index, t.capacity, t.mask = rows, hashes, index, capacity, mask
    return 0


cdef inline uint32_t numbered_find(numbered_t* t, const void* row, uint64_t h) noexcept nogil:
    """The number of the row whose key is ``row``'s; a new key appends all of ``row`` (the
    caller left room: count < capacity)."""
    cdef uint64_t i = h & t.mask
    cdef uint32_t r
    while True:
        r = t.index[i]
        if r == EMPTY:
            r = <uint32_t>t.count
            memcpy(t.rows + r * t.row_size, row, t.row_size)
            t.hashes[r] = h
            t.index[i] = r
            t.count += 1
            return r
        if t.hashes[r] == h and memcmp(t.rows + r * t.row_size, row, t.key_size) == 0:
            return r
        i = (i + 1) & t.mask


cdef struct key_t:
    # 32 bytes: what a row's label depends on (see the module docstring)
    int32_t location
    uint8_t reason
    uint8_t picked_up
    int16_t stage         # of the last hop; -1: the row has none
    int32_t v[VALUES]     # the last hop's kept values, 0 where not kept

assert sizeof(key_t) == 32


cdef inline uint64_t key_hash(const key_t* k) noexcept nogil:
    cdef const uint64_t* w = <const uint64_t*>k
    return mix(mix(w[0], w[1]), mix(w[2], w[3]))


@cython.final
cdef class LabelKeys:
    """Distinct label keys, numbered from 0 in order of first appearance, for the life of the
    table. ``kept`` (stages x 6, 1 where a stage's value names its resource or rule) is the
    table's for good: keys made with another would not compare."""

    cdef numbered_t t     # of key_t
    cdef Py_ssize_t n_stages
    cdef uint8_t* kept

    def __cinit__(self, const uint8_t[:, ::1] kept not None):
        if kept.shape[1] != VALUES or kept.shape[0] == 0:
            raise ValueError(f"kept must have {VALUES} columns, one row per stage")
        self.n_stages = kept.shape[0]
        self.kept = <uint8_t*>malloc(self.n_stages * VALUES)
        if self.kept == NULL:
            raise MemoryError("cannot allocate the label key table")
        memcpy(self.kept, &kept[0, 0], self.n_stages * VALUES)
        numbered_init(&self.t, sizeof(key_t), sizeof(key_t), 64, "label key")

    def __dealloc__(self):
        numbered_free(&self.t)
        free(self.kept)

    def __len__(self):
        return self.t.count

    cdef Py_ssize_t _codes(self, const hop_t* hops, const int64_t* first_hop, const packet_t* packets,
                           const int32_t* location, const uint8_t* reason, Py_ssize_t begin, Py_ssize_t end,
                           int32_t* code) noexcept nogil:
        """Number rows begin..end-1 while the table has room for a new key; returns the row
        where it stopped for room (or ``end``)."""
        cdef Py_ssize_t i, j
        cdef int64_t k
        cdef key_t key
        cdef const hop_t* h
        cdef const packet_t* p
        cdef bint created
        for i in range(begin, end):
            if self.t.count == self.t.capacity:
                return i
            memset(&key, 0, sizeof(key_t))
            key.location, key.reason, key.stage = location[i], reason[i], -1
            created = False
            for k in range(first_hop[i], first_hop[i + 1]):
                if (hops[k].stage == H_V2N_OUT or hops[k].stage == H_NAT_OUT) and hops[k].v[1] == S_CREATED:
                    created = True
            p = &packets[i]
            key.picked_up = created and p.proto == P_TCP and (p.flags & (F_SYN | F_ACK | F_FIN | F_RST)) == F_ACK
            if first_hop[i + 1] > first_hop[i]:
                h = &hops[first_hop[i + 1] - 1]
                key.stage = h.stage
                for j in range(VALUES):
                    if self.kept[h.stage * VALUES + j]:
                        key.v[j] = h.v[j]
            code[i] = <int32_t>numbered_find(&self.t, &key, key_hash(&key))
        return end

    def codes(self, hops, const int64_t[::1] first_hop not None, const packet_t[::1] packets not None,
              const int32_t[::1] location not None, const uint8_t[::1] reason not None):
        """Each row's key number (int32) from a walked batch: its hop log (``hyperplane._walk.HOP``)
        with ``first_hop`` offsets, the packets as they left, locations and reasons."""
        cdef Py_ssize_t n = packets.shape[0], i, row = 0, total, bad = -1
        if not isinstance(hops, np.ndarray) or hops.dtype != _HOP or hops.ndim != 1:
            raise TypeError("hops must be a one-dimensional array of hyperplane._walk.HOP")
        if not hops.flags.c_contiguous:
            raise ValueError("hops must be C-contiguous")
        if first_hop.shape[0] != n + 1 or location.shape[0] != n or reason.shape[0] != n:
            raise ValueError("codes: first_hop, packets, location and reason must describe one batch")
        cdef const uint8_t[::1] log = hops.view(np.uint8)
        cdef const hop_t* base = <const hop_t*>&log[0] if log.shape[0] else NULL
        total = first_hop[n]
        if total > log.shape[0] // <Py_ssize_t>sizeof(hop_t) or first_hop[0] != 0:
            raise ValueError("codes: first_hop does not fit the hop log")
        out = np.empty(n, np.int32)
        if n == 0:
            return out
        with nogil:
            for i in range(n):
                if first_hop[i + 1] < first_hop[i]:
                    bad = i
                    break
            if bad < 0:
                for i in range(total):
                    if base[i].stage >= self.n_stages:
                        bad = n + i
                        break
        if bad >= 0:
            raise ValueError(f"codes: row {bad} has fewer than 0 hops" if bad < n
                             else f"codes: hop {bad - n} has stage {base[bad - n].stage}, not one of "
                                  f"{self.n_stages}")
        cdef int32_t[::1] code = out
        while row < n:
            if self.t.count == self.t.capacity:
                numbered_grow(&self.t, "label key")
            with nogil:
                row = self._codes(base, &first_hop[0], &packets[0], &location[0], &reason[0], row, n, &code[0])
        return out

    def key(self, Py_ssize_t number):
        """Key ``number`` as ``(location, reason, picked_up, stage, values)``: stage -1 when the
        row had no hop; values, the 6 kept values of its last hop (0 where not kept)."""
        if not 0 <= number < self.t.count:
            raise IndexError(f"no label key {number} (there are {self.t.count})")
        cdef const key_t* k = &(<const key_t*>self.t.rows)[number]
        return (k.location, k.reason, bool(k.picked_up), k.stage, tuple(k.v[j] for j in range(VALUES)))


def first_appearance(const int32_t[::1] codes not None, Py_ssize_t count):
    """``(distinct, inverse)`` of ``codes`` (each in 0..count-1): the distinct codes in order of
    first appearance (int32) and each row's number among them (int32)."""
    cdef Py_ssize_t n = codes.shape[0], i, found = 0, bad = -1
    cdef int32_t c
    slot = np.full(max(count, 1), -1, np.int32)
    distinct = np.empty(min(n, max(count, 1)), np.int32)
    inverse = np.empty(n, np.int32)
    cdef int32_t[::1] s = slot, d = distinct, inv = inverse
    with nogil:
        for i in range(n):
            c = codes[i]
            if c < 0 or c >= count:
                bad = i
                break
            if s[c] < 0:
                s[c] = <int32_t>found
                d[found] = c
                found += 1
            inv[i] = s[c]
    if bad >= 0:
        raise ValueError(f"first_appearance: code {codes[bad]} (row {bad}) is not in 0..{count - 1}")
    return distinct[:found].copy(), inverse


####################################################################################################
# Conversations

cdef enum:
    FROM_A = 1      # a packet of endpoint A (the lower ip << 16 | port) was delivered
    FROM_B = 2      # one of endpoint B
    PICKED_UP = 4   # a packet of it picked its connection up mid-stream
    NO_FAILURE = -1


cdef struct conversation_t:
    # 24 bytes: the two endpoints (ip << 16 | port, the lower first), the protocol, what happened
    uint64_t a
    uint64_t b
    uint8_t proto
    uint8_t seen      # FROM_A | FROM_B | PICKED_UP
    uint8_t pad[2]
    int32_t failure   # the first refused row's failure code (NO_FAILURE: none yet)

cdef enum:
    CONVERSATION_KEY = 17  # a conversation's key: a, b and proto


@cython.final
cdef class ConversationTable:
    """TCP and UDP conversations (the two directions of a 5-tuple) followed across a replay's
    chunks, numbered in order of first appearance: which sides had a packet delivered, whether
    one picked its connection up, and the failure code of the first refused packet."""

    cdef numbered_t t     # of conversation_t, found by their endpoints and protocol (CONVERSATION_KEY)

    def __cinit__(self):
        numbered_init(&self.t, sizeof(conversation_t), CONVERSATION_KEY, 1024, "conversation")

    def __dealloc__(self):
        numbered_free(&self.t)

    def __len__(self):
        return self.t.count

    cdef Py_ssize_t _add(self, const packet_t* packets, const uint8_t* counted, const uint8_t* delivered,
                         const uint8_t* picked_up, const int32_t* failure, Py_ssize_t begin, Py_ssize_t end,
                         int64_t* failed, Py_ssize_t* n_failed) noexcept nogil:
        """Rows begin..end-1 while the table has room for a new conversation; returns the row
        where it stopped for room (or ``end``)."""
        cdef Py_ssize_t i
        cdef uint64_t src, dst
        cdef const packet_t* p
        cdef conversation_t probe
        cdef conversation_t* c
        memset(&probe, 0, sizeof(conversation_t))
        probe.failure = NO_FAILURE
        for i in range(begin, end):
            if self.t.count == self.t.capacity:
                return i
            if not counted[i]:
                continue
            p = &packets[i]
            src = (<uint64_t>p.src_ip << 16) | p.src_port
            dst = (<uint64_t>p.dst_ip << 16) | p.dst_port
            probe.a, probe.b, probe.proto = min(src, dst), max(src, dst), p.proto
            c = &(<conversation_t*>self.t.rows)[numbered_find(&self.t, &probe, mix(mix(probe.a, probe.b), p.proto))]
            if delivered[i]:
                c.seen |= FROM_A if src < dst else FROM_B
            elif c.failure == NO_FAILURE:
                c.failure = failure[i]
                failed[n_failed[0]] = i
                n_failed[0] += 1
            if picked_up[i]:
                c.seen |= PICKED_UP
        return end

    def add(self, const packet_t[::1] packets not None, const uint8_t[::1] counted not None,
            const uint8_t[::1] delivered not None, const uint8_t[::1] picked_up not None,
            const int32_t[::1] failure not None):
        """Follow the ``counted`` rows of a chunk (its packets in the capture's addresses; each
        row whether it was delivered, whether it picked up its connection, and the failure code
        it gives its conversation if it is that conversation's first refused packet, >= 0).
        Returns the rows that gave their conversation its failure (int64, in order)."""
        cdef Py_ssize_t n = packets.shape[0], i, row = 0, n_failed = 0, bad = -1
        if not (counted.shape[0] == delivered.shape[0] == picked_up.shape[0] == failure.shape[0] == n):
            raise ValueError("add: counted, delivered, picked_up and failure must have one value per packet")
        failed = np.empty(n, np.int64)
        if n == 0:
            return failed
        cdef int64_t[::1] f = failed
        with nogil:
            for i in range(n):
                if counted[i] and not delivered[i] and failure[i] < 0:
                    bad = i
                    break
        if bad >= 0:
            raise ValueError(f"add: row {bad} was refused and has no failure code ({failure[bad]})")
        while row < n:
            if self.t.count == self.t.capacity:
                numbered_grow(&self.t, "conversation")
            with nogil:
                row = self._add(&packets[0], &counted[0], &delivered[0], &picked_up[0], &failure[0], row, n,
                                &f[0], &n_failed)
        return failed[:n_failed].copy()

    def outcomes(self):
        """``(seen, failure)`` of every conversation in order: FROM_A 1 | FROM_B 2 | PICKED_UP 4
        (uint8), and the failure code of its first refused packet (int32, -1: none)."""
        seen = np.empty(self.t.count, np.uint8)
        failure = np.empty(self.t.count, np.int32)
        cdef uint8_t[::1] s = seen
        cdef int32_t[::1] fl = failure
        cdef Py_ssize_t r
        cdef const conversation_t* rows = <const conversation_t*>self.t.rows
        with nogil:
            for r in range(self.t.count):
                s[r], fl[r] = rows[r].seen, rows[r].failure
        return seen, failure


####################################################################################################
# The capture's own addresses

def capture_addresses(const packet_t[::1] capture not None, out, uint32_t base, uint32_t mask):
    """``out`` (packets as they left, ``hyperplane.records.PACKET``) with every source or
    destination address in ``base``/``mask`` replaced by the capture's own address in that field:
    ``out`` itself when none is, else a copy."""
    cdef const packet_t[::1] o = out
    cdef Py_ssize_t n = capture.shape[0], i, first = -1
    if o.shape[0] != n:
        raise ValueError(f"capture_addresses: {n} capture rows, {o.shape[0]} rows out")
    with nogil:
        for i in range(n):
            if (o[i].src_ip & mask) == base or (o[i].dst_ip & mask) == base:
                first = i
                break
    if first < 0:
        return out
    fixed = out.copy()
    cdef packet_t[::1] f = fixed
    with nogil:
        for i in range(first, n):
            if (f[i].src_ip & mask) == base:
                f[i].src_ip = capture[i].src_ip
            if (f[i].dst_ip & mask) == base:
                f[i].dst_ip = capture[i].dst_ip
    return fixed
