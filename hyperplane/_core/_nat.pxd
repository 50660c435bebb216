# The contract of the compiled connection table (see _nat.pyx for the theory of operation).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from hyperplane._core._codes cimport N_STATES
from hyperplane._core._types cimport packet_t

cdef enum:
    MAX_ADDRESSES = 254
    WHEEL_SIZE = 1024              # one bucket per second; power of two

# Connection states (ConnState) and the length of the timeout table are in _codes.pxd.

# One live connection: 32 bytes, so that with the slab cache-line aligned a connection is one
# line (a 40-byte one straddled two half the time: an established packet then needed 2.5 lines).
cdef struct conn_t:
    double expires                 # idle deadline: live while now < expires
    uint32_t in_ip                 # inside (pre-translation) address and port
    uint32_t rem_ip                # remote address and port (never translated)
    uint64_t link                  # wheel next (24 bits; the free-list link too) | prev (24) << 24
                                   # | timer-wheel bucket (10) << 48 | state (6) << 58: see _nat.pyx
    uint16_t in_port
    uint16_t rem_port
    uint16_t x_port                # translated port on addresses[addr]
    uint8_t proto
    uint8_t addr                   # index of the translating address

# Live connections per (address, protocol, remote ip, remote port): the per-destination limit.
cdef struct dest_t:
    uint64_t key
    uint32_t count
    uint32_t pad

cdef struct addr_stats_t:
    uint64_t live
    uint64_t peak
    uint64_t created
    uint64_t expired
    uint64_t closed
    uint64_t refused               # new connections this address could not take

cdef struct nat_t:
    # configuration
    int gateway_mode               # 0 = Hyperplane ENI (V2N), 1 = NAT gateway
    uint16_t port_lo
    uint32_t nports
    uint64_t max_per_address       # 0 = unlimited
    uint64_t per_dest_limit
    double timeout[N_STATES]
    # translating addresses
    int n_addr
    int last_addr                  # where the last connection went: a guess for prefetching
    uint32_t addr_ip[MAX_ADDRESSES]
    double addr_active_from[MAX_ADDRESSES]
    addr_stats_t stats[MAX_ADDRESSES]
    uint64_t status_count[32]
    # connection slab
    conn_t* conns
    uint32_t conn_cap
    uint32_t conn_used             # slots ever handed out (high-water mark)
    uint32_t free_head
    uint64_t live
    # forward (inside tuple) and reverse (translated tuple) open-addressing indexes of slots
    uint32_t* fwd
    uint32_t* rev
    uint32_t idx_mask
    # per-destination counts
    dest_t* dests
    uint32_t dest_mask
    uint32_t dest_count
    # timer wheel
    uint32_t wheel[WHEEL_SIZE]
    double wheel_min[WHEEL_SIZE]
    int64_t wheel_tick             # last fully processed second
    int started
    double next_advance            # advance the wheel once now reaches this
    double now
    uint64_t rng
    int oom

# One packet at a time, for the per-packet walker (hyperplane/_walk.pyx).
cdef int nat_translate(nat_t* st, packet_t* p, uint8_t direction, int stop_on_full,
                       uint8_t* status, int pickup=*) noexcept nogil
cdef void nat_prefetch(const nat_t* st, const packet_t* p, uint8_t direction, int connection) noexcept nogil
cdef int nat_find(const nat_t* st, const packet_t* p, uint8_t direction, packet_t* out) noexcept nogil

cdef class NatCore:
    cdef nat_t st
