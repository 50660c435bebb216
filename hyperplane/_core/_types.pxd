# C types shared by the compiled modules.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t

ctypedef uint32_t ip4_t
ctypedef uint16_t port_t

# One packet record; must match hyperplane.records.PACKET field for field (24 bytes, no padding).
cdef struct packet_t:
    double time
    uint32_t src_ip
    uint32_t dst_ip
    uint16_t src_port
    uint16_t dst_port
    uint16_t length
    uint8_t proto
    uint8_t flags

# Protocol numbers and TCP flags as the records hold them (hyperplane.records).
cdef enum:
    P_ICMP = 1
    P_TCP = 6
    P_UDP = 17
    F_FIN = 0x01
    F_SYN = 0x02
    F_RST = 0x04
    F_ACK = 0x10
    ICMP_ECHO_REPLY = 0
    ICMP_ECHO_REQUEST = 8
