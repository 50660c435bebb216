# The contract of the compiled security-group connection tracking (theory in _conntrack.pyx).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from hyperplane._core._types cimport packet_t

cdef enum:
    N_KINDS = 4                    # what a flow is tracked as (index of the timeout rows)
    N_BITS = 16                    # flow state bits (SEEN_A | SEEN_B | FIN_A | FIN_B)

# One tracked flow: 32 bytes, two per cache line, never straddling one.
# Endpoint A is the smaller (ip, port) of the two; B the other (for ICMP echo port_a is the
# identifier and port_b 0; for other protocols both ports are 0).
cdef struct flow_t:
    uint32_t ip_a
    uint32_t ip_b
    int32_t eni
    uint16_t port_a
    uint16_t port_b
    double expires                 # idle deadline: live while now < expires
    uint8_t proto
    uint8_t bits                   # 0 = free slot
    uint16_t pad
    uint32_t next_free             # free-list link while the slot is free

cdef struct track_t:
    double timeout[N_KINDS * N_BITS]
    # flow slab
    flow_t* flows
    uint32_t cap                   # slots allocated (power of two)
    uint32_t used                  # slots ever handed out (high-water mark)
    uint32_t free_head
    uint64_t stored                # flows in the slab, live or dead-not-yet-reaped
    # open-addressing index: (8-bit hash tag << 24) | slot, 2 * cap entries
    uint32_t* index
    uint32_t idx_mask
    double now
    uint64_t created
    uint64_t expired
    uint64_t closed
    int oom
    int pickup                     # mid-stream pickup (a replay's walk): a TCP ACK opens an established flow

# One row at a time, for the per-packet walker (hyperplane/_walk.pyx).
cdef int track_check(track_t* st, int32_t eni, const packet_t* p, uint8_t rule_allowed,
                     uint8_t* allowed, uint8_t* tracked) noexcept nogil
# ... and where the rules may leave the flow untracked (nothing is stored for it)
cdef int track_check_rules(track_t* st, int32_t eni, const packet_t* p, uint8_t rule_allowed,
                           uint8_t untracked, uint8_t* allowed, uint8_t* tracked) noexcept nogil
# ... and a look-ahead for it: stage 0 prefetches the flow's index line, stage 1 (that line
# fetched) the flow it points to
cdef void track_prefetch(const track_t* st, int32_t eni, const packet_t* p, int stage) noexcept nogil

cdef class ConntrackCore:
    cdef track_t st
    cdef int busy                  # a batch is running without the GIL

    cdef int _enter(self) except -1
