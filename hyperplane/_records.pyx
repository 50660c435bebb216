# cython: language_level=3, embedsignature=True
"""Flow log records keyed by three 64-bit words, aggregated in compiled code.

A flow log record is one (ENI, window, direction, action, 5-tuple, ...) key with its packets and
bytes summed, first and last packet times and TCP flags ORed (``hyperplane/flowlogs.py`` packs
the key into the three words). A replay adds millions of observations; here each one is a hash
probe: records live end to end in insertion order (the columns ``columns()`` returns), and an
open-addressing index of record numbers (linear probing, at most half full) finds a key's
record. Keys are compared in full, so two keys that hash alike never merge.
"""

cimport cython
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memset

from hyperplane._tables cimport mix

import numpy as np

cdef enum:
    EMPTY = 0xFFFFFFFF
    MAX_RECORDS = 0x7FFFFFFF


cdef struct record_t:
    uint64_t a
    uint64_t b
    uint64_t c
    int64_t packets
    int64_t nbytes
    double start
    double end
    uint8_t flags


cdef inline uint64_t key_hash(uint64_t a, uint64_t b, uint64_t c) noexcept nogil:
    return mix(mix(a, b), c)


@cython.final
cdef class RecordTable:
    """Records by key; ``add`` merges a batch of partial records into them."""

    cdef record_t* records
    cdef uint32_t* index
    cdef Py_ssize_t count, capacity
    cdef uint64_t mask

    def __cinit__(self):
        self.capacity = 1024
        self.mask = 2 * self.capacity - 1
        self.records = <record_t*>malloc(self.capacity * sizeof(record_t))
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
        cdef uint64_t mask = 2 * capacity - 1, i
        cdef Py_ssize_t r
        if capacity > MAX_RECORDS:
            raise MemoryError(f"more than {MAX_RECORDS} flow log records")
        cdef record_t* records = <record_t*>realloc(self.records, capacity * sizeof(record_t))
        if records == NULL:
            raise MemoryError("cannot grow the flow log record table")
        self.records = records
        cdef uint32_t* index = <uint32_t*>malloc((mask + 1) * sizeof(uint32_t))
        if index == NULL:
            raise MemoryError("cannot grow the flow log record table")
        memset(index, 0xFF, (mask + 1) * sizeof(uint32_t))
        for r in range(self.count):
            i = key_hash(records[r].a, records[r].b, records[r].c) & mask
            while index[i] != EMPTY:
                i = (i + 1) & mask
            index[i] = <uint32_t>r
        free(self.index)
        self.index = index
        self.capacity = capacity
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
        cdef uint64_t i
        cdef uint32_t r
        cdef record_t* rec
        for k in range(lo, hi):
            i = key_hash(a[k], b[k], c[k]) & self.mask
            while True:
                r = self.index[i]
                if r == EMPTY:
                    r = <uint32_t>self.count
                    self.count += 1
                    self.index[i] = r
                    rec = &self.records[r]
                    rec.a, rec.b, rec.c = a[k], b[k], c[k]
                    rec.packets = counts[k] if counts != NULL else 1
                    rec.nbytes = nbytes[k]
                    rec.start, rec.end, rec.flags = start[k], end[k], flags[k]
                    break
                rec = &self.records[r]
                if rec.a == a[k] and rec.b == b[k] and rec.c == c[k]:
                    rec.packets += counts[k] if counts != NULL else 1
                    rec.nbytes += nbytes[k]
                    if start[k] < rec.start:
                        rec.start = start[k]
                    if end[k] > rec.end:
                        rec.end = end[k]
                    rec.flags |= flags[k]
                    break
                i = (i + 1) & self.mask

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
