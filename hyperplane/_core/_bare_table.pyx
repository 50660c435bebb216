# cython: language_level=3, embedsignature=True, auto_pickle=False
"""A bare open-addressing table of 5-tuples: the ceiling the NAT benchmark measures the connection
table against (benchmarks/nat_throughput.py, issue 14).

It does the least a connection lookup can do: one 16-byte slot per key (the key, a used flag and a
16-bit value), linear probing in a power-of-two array at most half full, the key hash of the NAT's
forward index (``mix`` of _tables.pxd, the words of ``tuple_hash`` in _nat.pyx), blocks of rows
hashed and their slot lines prefetched a block ahead. No timeouts, no states, no port pools, no
reverse index, no deletion: nothing the emulator needs beyond finding a key. It is not used by the
emulator.
"""

cimport cython
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from libc.stdlib cimport free
from libc.string cimport memset

import numpy as np

from hyperplane._core._tables cimport __builtin_prefetch, mix, table_alloc
from hyperplane._core._types cimport packet_t

cdef enum:
    BLOCK = 16          # rows hashed and prefetched together, one block ahead of the probes
    MAX_SLOTS = 1 << 30

cdef struct slot_t:     # 16 bytes: four to a cache line
    uint32_t ip1        # key: (proto, ip1:port1, ip2:port2) = (proto, src, dst) of the row
    uint32_t ip2
    uint16_t port1
    uint16_t port2
    uint8_t proto
    uint8_t used
    uint16_t value

assert sizeof(slot_t) == 16


cdef inline uint64_t key_hash(const packet_t* p) noexcept nogil:
    return mix((<uint64_t>p.src_ip << 32) | p.dst_ip,
               (<uint64_t>p.src_port << 24) | (<uint64_t>p.dst_port << 8) | p.proto)


cdef inline int same_key(const slot_t* s, const packet_t* p) noexcept nogil:
    return (s.ip1 == p.src_ip and s.ip2 == p.dst_ip and s.port1 == p.src_port
            and s.port2 == p.dst_port and s.proto == p.proto)


cdef inline int32_t find(const slot_t* slots, uint64_t mask, uint64_t h, const packet_t* p) noexcept nogil:
    cdef uint64_t i = h & mask
    while slots[i].used:
        if same_key(&slots[i], p):
            return slots[i].value
        i = (i + 1) & mask
    return -1


cdef void lookup_rows(const slot_t* slots, uint64_t mask, const packet_t* rows, Py_ssize_t n,
                      int32_t* out) noexcept nogil:
    cdef uint64_t h[2 * BLOCK]
    cdef Py_ssize_t b, k, m, nxt
    cdef int cur = 0
    m = n if n < BLOCK else BLOCK
    for k in range(m):
        h[k] = key_hash(&rows[k])
        __builtin_prefetch(&slots[h[k] & mask])
    b = 0
    while b < n:
        # hash the next block and prefetch its lines while this block's lines arrive
        nxt = b + BLOCK
        m = n - nxt if n - nxt < BLOCK else BLOCK
        for k in range(m):
            h[(1 - cur) * BLOCK + k] = key_hash(&rows[nxt + k])
            __builtin_prefetch(&slots[h[(1 - cur) * BLOCK + k] & mask])
        m = n - b if n - b < BLOCK else BLOCK
        for k in range(m):
            out[b + k] = find(slots, mask, h[cur * BLOCK + k], &rows[b + k])
        cur = 1 - cur
        b = nxt


@cython.final
cdef class BareTable:
    """A map from the (proto, src ip:port, dst ip:port) of PACKET rows to a 16-bit value, made
    for ``capacity`` keys (twice as many slots, rounded up to a power of two)."""
    cdef slot_t* slots
    cdef uint64_t mask
    cdef Py_ssize_t count

    def __cinit__(self, Py_ssize_t capacity):
        cdef uint64_t size = 16
        if not 1 <= capacity <= MAX_SLOTS // 2:
            raise ValueError(f"capacity must be 1..{MAX_SLOTS // 2} keys, not {capacity}")
        while size < <uint64_t>(2 * capacity):
            size *= 2
        self.slots = <slot_t*>table_alloc(size * sizeof(slot_t))
        if self.slots == NULL:
            raise MemoryError(f"no memory for {size} slots")
        memset(self.slots, 0, size * sizeof(slot_t))
        self.mask = size - 1
        self.count = 0

    def __dealloc__(self):
        free(self.slots)

    def __len__(self) -> int:
        return self.count

    @property
    def slots_allocated(self) -> int:
        return self.mask + 1

    @property
    def memory_bytes(self) -> int:
        return (self.mask + 1) * sizeof(slot_t)

    def insert(self, const packet_t[::1] rows not None, const uint16_t[::1] values not None) -> int:
        """Map each row's key to its value (a key already present takes the new value); returns
        how many keys were new. Refuses to fill the table past half its slots."""
        cdef Py_ssize_t n = rows.shape[0]
        cdef Py_ssize_t k, added = 0
        cdef uint64_t i
        cdef slot_t* s
        cdef const packet_t* p
        if values.shape[0] != n:
            raise ValueError(f"{values.shape[0]} values for {n} rows")
        if <uint64_t>(self.count + n) > (self.mask + 1) // 2:
            raise ValueError(f"{self.count} keys + {n} rows would fill more than half of {self.mask + 1} slots")
        with nogil:
            for k in range(n):
                p = &rows[k]
                i = key_hash(p) & self.mask
                while self.slots[i].used and not same_key(&self.slots[i], p):
                    i = (i + 1) & self.mask
                s = &self.slots[i]
                if not s.used:
                    s.ip1, s.ip2, s.port1, s.port2, s.proto = p.src_ip, p.dst_ip, p.src_port, p.dst_port, p.proto
                    s.used = 1
                    added += 1
                s.value = values[k]
        self.count += added
        return added

    def lookup(self, const packet_t[::1] rows not None, out=None) -> np.ndarray:
        """The value of each row's key, or -1 where the key is not in the table (int32); into
        ``out`` (one int32 per row) when given, as the connection table's ``process(out=)``."""
        cdef Py_ssize_t n = rows.shape[0]
        if out is None:
            out = np.empty(n, dtype=np.int32)
        elif not isinstance(out, np.ndarray) or out.dtype != np.int32 or out.shape != (n,):
            raise ValueError(f"out must be an int32 array of {n} values")
        cdef int32_t[::1] o = out
        if n:
            with nogil:
                lookup_rows(self.slots, self.mask, &rows[0], n, &o[0])
        return out
