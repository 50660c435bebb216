# cython: language_level=3, embedsignature=True
"""The distinct rows of a table of uint64 columns, in order of first appearance.

A replay groups every chunk's rows twice (by verdict label, by conversation) to do per group what
would cost microseconds per row. numpy's ``unique`` sorts, some milliseconds a chunk; an
open-addressing table of row numbers, comparing whole rows, does it in one pass.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc

import numpy as np

cdef uint64_t MIX = 0x9E3779B97F4A7C15ULL  # 2**64 / the golden ratio, odd


cdef inline bint same_row(const uint64_t[:, ::1] columns, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(columns.shape[0]):
        if columns[j, a] != columns[j, b]:
            return False
    return True


def rows(const uint64_t[:, ::1] columns not None):
    """``(first, inverse)``: the first row of each distinct row of the table whose column ``j``
    is ``columns[j]``, in order of appearance, and each row's number among them (int64 arrays)."""
    cdef Py_ssize_t n = columns.shape[1], i, j
    cdef Py_ssize_t cap = 16, distinct = 0
    while cap < 2 * n:  # at most half full
        cap <<= 1
    first = np.empty(n, np.int64)
    inverse = np.empty(n, np.int64)
    cdef int64_t[::1] f = first, inv = inverse
    cdef int64_t* table = <int64_t*>malloc(cap * sizeof(int64_t))
    cdef uint64_t h, mask = cap - 1
    if table == NULL:
        raise MemoryError()
    with nogil:
        for i in range(cap):
            table[i] = -1
        for i in range(n):
            h = 0
            for j in range(columns.shape[0]):  # independent products: no chain of multiplies
                h += (columns[j, i] ^ <uint64_t>j) * (MIX + 2 * <uint64_t>j)
            h = (h ^ (h >> 29)) * MIX
            h = (h ^ (h >> 32)) & mask
            while table[h] >= 0 and not same_row(columns, f[table[h]], i):
                h = (h + 1) & mask
            if table[h] < 0:
                table[h] = distinct
                f[distinct] = i
                distinct += 1
            inv[i] = table[h]
    free(table)
    return first[:distinct].copy(), inverse
