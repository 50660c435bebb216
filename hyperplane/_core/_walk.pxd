# The hop log of the per-packet walker (theory in _walk.pyx): what each stage decided, per packet.
from libc.stdint cimport int32_t, uint8_t, uint16_t

# stages (hyperplane._walk.STAGES names them; hyperplane.pipeline.COLUMNS names their values)
cdef enum:
    HOPS_PER_PACKET = 64           # the most hops one packet logs (8 sends x at most 7, and its start)
    H_V2N_OUT = 0
    H_IGW_IN = 1
    H_ENDPOINT_IN = 2
    H_DNS = 3
    H_SG_EGRESS = 4
    H_ROUTE = 5
    H_NACL_OUT = 6
    H_IGW_OUT = 7
    H_NAT_OUT = 8
    H_NAT_IN = 9
    H_NACL_IN = 10
    H_SG_INGRESS = 11
    H_V2N_IN = 12

# One hop: 32 bytes, hyperplane._walk.HOP as a numpy dtype.
cdef struct hop_t:
    int32_t row
    uint8_t stage
    uint8_t pos
    uint16_t pad
    int32_t v[6]
