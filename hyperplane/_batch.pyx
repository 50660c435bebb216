# cython: language_level=3, embedsignature=True
"""Cutting a batch into runs of packets that do not depend on each other's state.

The pipeline runs a batch stage by stage; a packet and an earlier one of the same conversation
in the opposite direction (a reply) meet stateful tables (NAT, connection tracking) at different
stages, so they must not share a run. A run ends before a packet whose source endpoint
(address, port, protocol) was a destination in the run, or whose destination was a source:
same-direction streams stay in one run, a reply starts a new one.
"""

cimport cython
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport calloc, free

from hyperplane._types cimport packet_t

import numpy as np

cdef enum:
    SEEN_AS_SOURCE = 1
    SEEN_AS_DESTINATION = 2


cdef struct slot_t:
    uint64_t key
    uint64_t run          # run number + 1 that last wrote this slot (0: empty)
    uint8_t roles


cdef inline uint64_t endpoint(uint64_t ip, uint64_t port, uint64_t proto) noexcept nogil:
    return (ip << 24) | (port << 8) | proto


cdef inline uint64_t mix(uint64_t k) noexcept nogil:
    k ^= k >> 33
    k *= <uint64_t>0xFF51AFD7ED558CCD
    k ^= k >> 33
    return k


cdef inline slot_t* find(slot_t* table, uint64_t mask, uint64_t key, uint64_t run) noexcept nogil:
    """The slot of key in this run (slots of earlier runs count as free)."""
    cdef uint64_t i = mix(key) & mask
    while table[i].run == run and table[i].key != key:
        i = (i + 1) & mask
    if table[i].run != run:
        table[i].key = key
        table[i].run = run
        table[i].roles = 0
    return &table[i]


@cython.boundscheck(False)
@cython.wraparound(False)
def independent_runs(const packet_t[::1] packets not None):
    """Start row of each run (int64 array, first element 0 when there are packets)."""
    cdef Py_ssize_t n = packets.shape[0], i, nruns = 0
    cdef uint64_t cap = 16, mask, run = 1
    cdef uint64_t src, dst, used = 0
    cdef slot_t* table
    cdef slot_t* s
    cdef slot_t* d
    starts = np.empty(n, dtype=np.int64)
    cdef long long[::1] out = starts
    if n == 0:
        return starts
    while cap < <uint64_t>(4 * n):
        cap *= 2
    mask = cap - 1
    table = <slot_t*>calloc(cap, sizeof(slot_t))
    if table == NULL:
        raise MemoryError("cannot cut the batch into runs")
    with nogil:
        out[0] = 0
        nruns = 1
        for i in range(n):
            src = endpoint(packets[i].src_ip, packets[i].src_port, packets[i].proto)
            dst = endpoint(packets[i].dst_ip, packets[i].dst_port, packets[i].proto)
            s = find(table, mask, src, run)
            d = find(table, mask, dst, run)
            if (s.roles & SEEN_AS_DESTINATION) or (d.roles & SEEN_AS_SOURCE):
                run += 1               # a fresh run: every slot of the old one reads as free
                out[nruns] = i
                nruns += 1
                s = find(table, mask, src, run)
                d = find(table, mask, dst, run)
            s.roles |= SEEN_AS_SOURCE
            d.roles |= SEEN_AS_DESTINATION
    free(table)
    return starts[:nruns].copy()
