# cython: language_level=3, embedsignature=True
"""Cutting a batch into runs of packets that do not depend on each other's state.

The pipeline runs a batch stage by stage; a packet and an earlier one of the same conversation
in the opposite direction (a reply) meet stateful tables (NAT, connection tracking) at different
stages, so they must not share a run when either of them changes state. A run ends before a
packet whose source endpoint (address, port, protocol) was a destination in the run, or whose
destination was a source, if that packet or the earlier one is "volatile": anything but TCP, or
TCP with SYN, FIN or RST (it may open or close a connection). Plain TCP segments of established
connections only refresh idle timers, which the tables keep non-decreasing, so both directions of
a bulk transfer share a run; a SYN-ACK answering a SYN of the same run starts a new one.

The stateful tables clamp time to the latest packet they have seen, and a run visits them stage by
stage, so a deadline set in a run may be computed from a later row's time of the same run. A run
therefore also ends once it spans more than ``max_span`` seconds: deadlines stretch by less than
that (0.25 s by default), and rows of different times never share a run in tests that step time
by more.
"""

cimport cython
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport calloc, free

from hyperplane._types cimport packet_t

import numpy as np

cdef enum:
    SOURCE = 1                 # seen as a source in the run
    DESTINATION = 2
    VOLATILE_SOURCE = 4        # ... by a packet that may open or close a connection
    VOLATILE_DESTINATION = 8
    TCP = 6
    STATE_FLAGS = 0x07         # FIN | SYN | RST


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
def independent_runs(const packet_t[::1] packets not None, double max_span=0.25):
    """Start row of each run (int64 array, first element 0 when there are packets)."""
    cdef Py_ssize_t n = packets.shape[0], i, nruns = 0
    cdef uint64_t cap = 16, mask, run = 1
    cdef uint64_t src, dst
    cdef bint volatile
    cdef double start_time
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
        start_time = packets[0].time
        for i in range(n):
            volatile = packets[i].proto != TCP or (packets[i].flags & STATE_FLAGS) != 0
            src = endpoint(packets[i].src_ip, packets[i].src_port, packets[i].proto)
            dst = endpoint(packets[i].dst_ip, packets[i].dst_port, packets[i].proto)
            s = find(table, mask, src, run)
            d = find(table, mask, dst, run)
            if ((s.roles & VOLATILE_DESTINATION) or (d.roles & VOLATILE_SOURCE)
                    or (volatile and ((s.roles & DESTINATION) or (d.roles & SOURCE)))
                    or not (packets[i].time - start_time <= max_span)):
                run += 1               # a fresh run: every slot of the old one reads as free
                out[nruns] = i
                nruns += 1
                start_time = packets[i].time
                s = find(table, mask, src, run)
                d = find(table, mask, dst, run)
            s.roles |= SOURCE | (VOLATILE_SOURCE if volatile else 0)
            d.roles |= DESTINATION | (VOLATILE_DESTINATION if volatile else 0)
    free(table)
    return starts[:nruns].copy()
