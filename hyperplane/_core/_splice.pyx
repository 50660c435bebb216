# cython: language_level=3, embedsignature=True
"""Compiled byte splicing: one file's bytes as many ranges of others (a parallel replay's merge).

A parallel replay's workers each write their own packets' verdict lines and output-capture
records; the merged file is their bytes in capture order, a range of one worker's file after a
range of another's — hundreds of thousands of short ranges, a few bytes to a few hundred each.
``splice(sources, which, starts, stops, out)`` copies range k, ``sources[which[k]][starts[k]:
stops[k]]``, after range k - 1 into ``out`` and returns the bytes written: one ``memcpy`` per
range, without the GIL, instead of a Python object per range.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np


def splice(list sources, which, starts, stops, uint8_t[::1] out not None):
    """Copy ``sources[which[k]][starts[k]:stops[k]]`` for each k, one after the other, into
    ``out``; returns how many bytes were written. ``sources``: uint8 arrays (or buffers)."""
    cdef const int32_t[::1] w = np.ascontiguousarray(which, np.int32)
    cdef const int64_t[::1] lo = np.ascontiguousarray(starts, np.int64)
    cdef const int64_t[::1] hi = np.ascontiguousarray(stops, np.int64)
    cdef Py_ssize_t m = w.shape[0], n_src = len(sources), k, total = 0, pos = 0
    cdef const uint8_t[::1] view
    if lo.shape[0] != m or hi.shape[0] != m:
        raise ValueError(f"which, starts and stops have {m}, {lo.shape[0]} and {hi.shape[0]} entries")
    arrays = [np.frombuffer(s, np.uint8) if not isinstance(s, np.ndarray) else s for s in sources]
    cdef const uint8_t** base = <const uint8_t**>malloc((n_src + 1) * sizeof(uint8_t*))
    cdef int64_t* size = <int64_t*>malloc((n_src + 1) * sizeof(int64_t))
    if base == NULL or size == NULL:
        free(base)
        free(size)
        raise MemoryError()
    try:
        for k in range(n_src):
            view = arrays[k]
            size[k] = view.shape[0]
            base[k] = &view[0] if view.shape[0] else NULL
        for k in range(m):  # checked before any byte moves: a bad range is an error, not a crash
            if w[k] < 0 or w[k] >= n_src:
                raise IndexError(f"range {k}: source {w[k]} of {n_src}")
            if lo[k] < 0 or hi[k] < lo[k] or hi[k] > size[w[k]]:
                raise IndexError(f"range {k}: bytes {lo[k]}:{hi[k]} of a source of {size[w[k]]}")
            total += hi[k] - lo[k]
        if total > out.shape[0]:
            raise ValueError(f"the ranges hold {total} bytes, out only {out.shape[0]}")
        with nogil:
            for k in range(m):
                if hi[k] > lo[k]:
                    memcpy(&out[pos], base[w[k]] + lo[k], hi[k] - lo[k])
                    pos += hi[k] - lo[k]
    finally:
        free(base)
        free(size)
    return pos
