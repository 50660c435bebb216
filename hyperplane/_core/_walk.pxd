# The hop log of the per-packet walker (theory in _walk.pyx): what each stage decided, per packet.
from libc.stdint cimport int32_t, uint8_t, uint16_t

cdef enum:
    HOPS_PER_PACKET = 128          # the most hops one packet logs (8 sends x at most 15 with two
                                   # transit gateway passes or a peering's walk-in, and its start)

# The stage codes of a hop (Stage: H_V2N_OUT, ...) are in _codes.pxd.

# One hop: 32 bytes, hyperplane._walk.HOP as a numpy dtype.
cdef struct hop_t:
    int32_t row
    uint8_t stage
    uint8_t pos
    uint16_t pad
    int32_t v[6]
