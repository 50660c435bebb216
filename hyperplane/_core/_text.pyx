# cython: language_level=3, embedsignature=True
"""Compiled text output: many rows of space-separated fields, one line each (flow log files).

Formatting a flow log record field by field in Python costs microseconds; a replay writes
hundreds of thousands of them. Here a column is one of

    (INTEGER, int64 array)            decimal; a negative value prints "-"
    (ADDRESS, uint32 array)           dotted IPv4
    (WORDS, int32 codes, [bytes])     codes[i] indexes the word table; -1 prints "-"
    (CONSTANT, bytes)                 the same text on every line

and ``lines(columns, order, sep)`` writes the rows ``order`` in that order, fields separated by
``sep`` (a space by default), each line ending in a newline, into one bytes object, with the
offset at which each line starts (so that callers cut it into files per ENI or per delivery
period without handling lines one by one).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np

INTEGER, ADDRESS, WORDS, CONSTANT = 0, 1, 2, 3


cdef struct column_t:
    int kind
    const int64_t* values          # INTEGER, ADDRESS
    const int32_t* codes           # WORDS
    const char* text               # WORDS: the words end to end; CONSTANT: the text
    const int64_t* starts          # WORDS: word k is text[starts[k]:starts[k + 1]]
    Py_ssize_t length              # CONSTANT


cdef inline Py_ssize_t put_int(char* out, int64_t v) noexcept nogil:
    cdef char digits[20]
    cdef int n = 0, k
    cdef uint64_t u
    if v < 0:
        out[0] = 45  # "-"
        return 1
    u = <uint64_t>v
    while True:
        digits[n] = 48 + <char>(u % 10)
        n += 1
        u //= 10
        if u == 0:
            break
    for k in range(n):
        out[k] = digits[n - 1 - k]
    return n


cdef inline Py_ssize_t put_ip(char* out, uint32_t ip) noexcept nogil:
    cdef Py_ssize_t n = put_int(out, ip >> 24)
    out[n] = 46  # "."
    n += 1 + put_int(out + n + 1, (ip >> 16) & 0xFF)
    out[n] = 46
    n += 1 + put_int(out + n + 1, (ip >> 8) & 0xFF)
    out[n] = 46
    return n + 1 + put_int(out + n + 1, ip & 0xFF)


cdef Py_ssize_t write_rows(const column_t* cols, Py_ssize_t n_cols, const int64_t* order, Py_ssize_t m,
                           const char* sep, Py_ssize_t sep_length, char* out, int64_t* offsets) noexcept nogil:
    cdef Py_ssize_t i, c, pos = 0, length
    cdef int64_t k
    cdef int32_t code
    cdef const column_t* col
    for i in range(m):
        offsets[i] = pos
        k = order[i]
        for c in range(n_cols):
            col = &cols[c]
            if c:
                memcpy(out + pos, sep, sep_length)
                pos += sep_length
            if col.kind == 0:
                pos += put_int(out + pos, col.values[k])
            elif col.kind == 1:
                pos += put_ip(out + pos, <uint32_t>col.values[k])
            elif col.kind == 2:
                code = col.codes[k]
                if code < 0:
                    out[pos] = 45
                    pos += 1
                else:
                    length = col.starts[code + 1] - col.starts[code]
                    memcpy(out + pos, col.text + col.starts[code], length)
                    pos += length
            else:
                memcpy(out + pos, col.text, col.length)
                pos += col.length
        out[pos] = 10  # "\n"
        pos += 1
    offsets[m] = pos
    return pos


def lines(list columns, order, bytes sep=b" "):
    """``(text, offsets)``: the rows ``order`` as lines (see the module docstring); line k is
    ``text[offsets[k]:offsets[k + 1]]``."""
    order = _integers(order, "order").astype(np.int64)
    cdef const uint8_t[::1] separator = np.frombuffer(sep + b"\0", np.uint8)
    cdef Py_ssize_t m = order.shape[0], n_cols = len(columns), width = 1 + n_cols * len(sep), c, pos
    keep = []  # the arrays and bytes the C descriptors point into
    cdef column_t* cols = <column_t*>malloc((n_cols + 1) * sizeof(column_t))
    cdef const int64_t[::1] values
    cdef const int32_t[::1] codes
    cdef const int64_t[::1] starts
    cdef const int64_t[::1] rows = order
    cdef const uint8_t[::1] text
    if cols == NULL:
        raise MemoryError()
    try:
        for c, column in enumerate(columns):
            if not isinstance(column, tuple) or not column or not isinstance(column[0], int):
                raise TypeError(f"column {c}: expected (INTEGER|ADDRESS, values), (WORDS, codes, words) "
                                f"or (CONSTANT, text), not {column!r:.80}")
            kind = column[0]
            if kind not in _SIZE:
                raise ValueError(f"column {c}: unknown kind {kind!r}")
            if len(column) != _SIZE[kind]:
                raise ValueError(f"column {c}: a {_NAME[kind]} column is a tuple of {_SIZE[kind]}, not {len(column)}")
            cols[c].kind = kind
            if kind == CONSTANT:
                blob = np.frombuffer(_bytes(column[1], c) + b"\0", np.uint8)
                keep.append(blob)
                text = blob
                cols[c].text = <const char*>&text[0]
                cols[c].length = blob.shape[0] - 1
                width += blob.shape[0]
                continue
            array = _integers(column[1], f"column {c}")
            if kind == INTEGER and array.shape[0] and array.max() >= 2**63:
                raise ValueError(f"column {c}: {array.max()} does not fit a signed 64-bit integer")
            if kind == ADDRESS and array.shape[0] and (array.min() < 0 or array.max() > 0xFFFFFFFF):
                raise ValueError(f"column {c}: {array.min() if array.min() < 0 else array.max()} is not an IPv4 address")
            if kind == WORDS:
                words = [_bytes(w, c) for w in column[2]]
                if array.shape[0] and (array.min() < -1 or array.max() >= len(words)):
                    raise ValueError(f"column {c}: a code outside its word table")
                offsets_ = np.cumsum([0] + [len(w) for w in words]).astype(np.int64)
                blob = np.frombuffer(b"".join(words) + b"\0", np.uint8)
                array = array.astype(np.int32)
                keep += [array, offsets_, blob]
                codes, starts, text = array, offsets_, blob
                cols[c].codes = &codes[0] if array.shape[0] else NULL
                cols[c].starts = &starts[0]
                cols[c].text = <const char*>&text[0]
                width += max([len(w) for w in words] + [1]) + 1
            else:
                array = array.astype(np.int64)
                keep.append(array)
                values = array
                cols[c].values = &values[0] if array.shape[0] else NULL
                width += 21
            if m and (order.min() < 0 or order.max() >= array.shape[0]):
                bad = order.min() if order.min() < 0 else order.max()
                raise ValueError(f"column {c} has {array.shape[0]} rows; order asks for row {bad}")
        buffer = np.empty(m * width + 1, np.uint8)
        offsets = np.empty(m + 1, np.int64)
        out_view = buffer
        off_view = offsets
        pos = _write(cols, n_cols, rows, m, <const char*>&separator[0], len(sep), out_view, off_view)
        return buffer[:pos].tobytes(), offsets
    finally:
        free(cols)


_SIZE = {INTEGER: 2, ADDRESS: 2, WORDS: 3, CONSTANT: 2}
_NAME = {INTEGER: "INTEGER", ADDRESS: "ADDRESS", WORDS: "WORDS", CONSTANT: "CONSTANT"}


cdef object _integers(object value, str name):
    """``value`` as a one-dimensional array of integers, or a clear error."""
    array = np.ascontiguousarray(value)
    if array.dtype.kind not in "iu" and not (array.dtype.kind == "f" and array.size == 0):
        raise TypeError(f"{name}: expected integers, not {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name}: expected one dimension, not {array.ndim}")
    return array.astype(np.int64) if array.dtype.kind == "f" else array


cdef bytes _bytes(object value, Py_ssize_t c):
    if not isinstance(value, bytes):
        raise TypeError(f"column {c}: words and constants are bytes, not {type(value).__name__}")
    return value


cdef Py_ssize_t _write(const column_t* cols, Py_ssize_t n_cols, const int64_t[::1] rows, Py_ssize_t m,
                       const char* sep, Py_ssize_t sep_length, uint8_t[::1] out, int64_t[::1] offsets):
    cdef Py_ssize_t pos
    with nogil:
        pos = write_rows(cols, n_cols, &rows[0] if m else NULL, m, sep, sep_length, <char*>&out[0], &offsets[0])
    return pos
