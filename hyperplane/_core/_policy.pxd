# The contract of the compiled policy tables (theory in _policy.pyx), and single-packet lookups
# for the per-packet walker (hyperplane/_walk.pyx); the batch kernels live in _policy.pyx.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, int64_t
from hyperplane._core._types cimport packet_t


cdef struct route_tables_t:
    const int64_t* off
    const uint32_t* bounds
    const int32_t* winner
    const int32_t* entry_route
    Py_ssize_t n_tables
    int steps


cdef struct rule_tables_t:
    const int64_t* space_off
    const uint32_t* ip_bounds
    const int32_t* ip_map
    const int64_t* map_off
    const uint32_t* key_bounds
    const int32_t* key_winner
    Py_ssize_t n_sets
    int ip_steps
    int key_steps
    const uint8_t* entry_allow        # network ACLs: per entry; NULL for security groups
    const int32_t* entry_rule_number
    # security groups: per space (2 * set + direction), match-key intervals whose TCP/UDP flows
    # an open rule leaves untracked (sg_untracked); NULL for network ACLs
    const int64_t* open_off
    const uint32_t* open_bounds
    const uint8_t* open_flag


# The validated tables inside a RouteTables / SecurityGroupSets / NetworkAcls object (TypeError
# for anything else); valid while the object lives.
cdef const route_tables_t* route_tables_of(object tables) except NULL
cdef const rule_tables_t* rule_tables_of(object tables) except NULL


cdef inline Py_ssize_t last_at_most(const uint32_t* base, Py_ssize_t count, uint32_t value) noexcept nogil:
    # The position of the last of ``count`` ascending boundaries that is <= value (base[0] is 0).
    cdef Py_ssize_t lo = 0, half
    while count > 1:
        half = count >> 1
        if base[lo + half] <= value:
            lo += half
        count -= half
    return lo


cdef inline int32_t route_lookup(const route_tables_t* t, int32_t table, uint32_t dst) noexcept nogil:
    # The winning route (index within its table) for dst; -1 when none (or table -1).
    cdef int64_t a
    cdef int32_t e
    if table < 0:
        return -1
    a = t.off[table]
    e = t.winner[a + last_at_most(t.bounds + a, t.off[table + 1] - a, dst)]
    return t.entry_route[e] if e >= 0 else -1


cdef inline int32_t rule_lookup(const rule_tables_t* t, int32_t s, int d, const packet_t* p) noexcept nogil:
    # The first matching rule (SG: index in the set's list; NACL: entry id) of set ``s`` in
    # direction d (0 ingress/inbound: matches src_ip, 1 egress/outbound: dst_ip); -1 when none
    # matches, -2 when s is -1 (no set here). Same keys as _rule_loop in _policy.pyx.
    cdef int64_t a
    cdef int32_t m
    cdef uint32_t key, ip
    if s < 0:
        return -2
    if p.proto == 6:
        key = p.dst_port
    elif p.proto == 17:
        key = 0x10000 | p.dst_port
    elif p.proto == 1:
        key = 0x20000 | (<uint32_t>p.flags << 8)
        if p.flags != 0 and p.flags != 8:
            key |= p.dst_port & 0xFF
    else:
        key = 0x30000 | p.proto
    ip = p.dst_ip if d else p.src_ip
    a = t.space_off[2 * s + d]
    m = t.ip_map[a + last_at_most(t.ip_bounds + a, t.space_off[2 * s + d + 1] - a, ip)]
    a = t.map_off[m]
    return t.key_winner[a + last_at_most(t.key_bounds + a, t.map_off[m + 1] - a, key)]


cdef inline int sg_untracked(const rule_tables_t* t, int32_t s, int d, const packet_t* p) noexcept nogil:
    # 1 when set s leaves the flow of this TCP/UDP packet (crossing in direction d) untracked:
    # either the packet is a request an open rule of direction d admits (its destination port's
    # key is flagged in space 2s+d), or it answers such a request of the other direction (its
    # source port's key is flagged in space 2s+1-d). What is flagged: _policy.pyx, "Untracked".
    cdef int64_t a
    cdef uint32_t base
    if t.open_off == NULL or s < 0 or (p.proto != 6 and p.proto != 17):
        return 0
    base = 0 if p.proto == 6 else 0x10000
    a = t.open_off[2 * s + d]
    if t.open_flag[a + last_at_most(t.open_bounds + a, t.open_off[2 * s + d + 1] - a, base | p.dst_port)]:
        return 1
    a = t.open_off[2 * s + 1 - d]
    return t.open_flag[a + last_at_most(t.open_bounds + a, t.open_off[2 * s + 2 - d] - a, base | p.src_port)]
