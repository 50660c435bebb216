# cython: language_level=3, embedsignature=True, auto_pickle=False
"""The per-packet walker: each packet goes through the whole VPC before the next one.

Theory of operation
===================

One GIL-free loop takes each packet of a batch through the whole VPC before the next one, so a
packet meets every stateful table (V2N and NAT gateway connections, security-group tracking)
exactly as the earlier packets left them, at its own time. That is what a capture replay needs
(a SYN-ACK right after its SYN, a FIN, a UDP answer). The stages call the compiled kernels of
``_nat``, ``_conntrack`` and ``_policy`` one row at a time:

  origin   FUNCTION: V2N out on the pool's table, then send from the Hyperplane ENI
           ENI: send;  INTERNET: IGW public -> private, arrive;  GATEWAY_ENDPOINT: arrive
           REPLY_TO_FUNCTION: find the connection the reply belongs to (V2N, then the NAT
           gateway on the Hyperplane ENI's route) and start as the peer really sends it (from
           the peer VPC's ENI across a peering; in over the connection when that VPC is absent)
  send     source/destination check (its source) -> link-local? -> DNS resolver? -> SG egress (+tracking) ->
           route (LPM) -> NACL out (when the packet leaves the subnet) -> local: arrive | ENI:
           the check on the appliance (after its NACL in: its destination), arrive | NAT: NACL
           in, translate, send again from the NAT's ENI | IGW: public address, hairpin |
           gateway endpoint | peering: into the peer VPC (its CIDRs only, an active connection),
           arrive at the ENI holding the address there (no such VPC: the packet exits) | transit
           gateway: NACL in at the attachment's subnet in the sender's zone, the attachment's TGW
           route table, out by the target attachment's subnet (its route table, NACL out), arrive | ...
  arrive   NACL in (from another subnet) -> NAT gateway ENI: translate back, send on
           | SG ingress (+tracking) -> plain ENI: delivered | Hyperplane ENI: V2N back

What each stage decided is appended to a hop log (``hop_t``: row, stage, position in the
packet's path, six values); ``hyperplane/pipeline.py`` reads it as ``Facts``, for traces and
flow logs. ``tests/dataplane_reference.py`` is the plain-Python model the tests compare with.
A verdict-only walk (no log: ``Network.process(..., hops=False)``) takes the same steps and
writes no hop: each stage's decision is made before its hop is logged, never read back from it.

The loop stops, having recorded nothing for that row, when V2N finds every Hyperplane ENI of a
pool full (the caller creates an overflow ENI, recompiles and resumes at that row), when the hop
log may not hold another packet (the caller grows it), or when a table is out of memory. It
stops *after* a row that a NAT gateway refused for want of a connection (TCP, not an RST):
the gateway answers it with an RST, which the caller walks as a packet of its own from the
gateway's ENI (``stop_pool`` names it) before it resumes at the next row, so that the answer
meets the tables between the two rows whatever the batch size.
"""

cimport cython
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from hyperplane._core._codes cimport (DIR_IN, DIR_OUT, ENI_HYPERPLANE, ENI_NAT_GATEWAY, ENI_PLAIN, H_DNS,
                                      H_ENDPOINT_IN, H_IGW_IN, H_IGW_OUT, H_NACL_IN, H_NACL_OUT,
                                      H_NAT_IN, H_NAT_OUT, H_PEERING, H_ROUTE, H_SG_EGRESS, H_SG_INGRESS,
                                      H_TGW_IN, H_TGW_OUT, H_V2N_IN, H_V2N_OUT, IMPLICIT_DENY_RULE, O_ENI, O_FUNCTION,
                                      O_GATEWAY_ENDPOINT, O_INTERNET, O_REPLY_TO_FUNCTION,
                                      R_BLACKHOLE_ROUTE, R_DELIVERED, R_DELIVERED_TO_DNS_RESOLVER,
                                      R_DELIVERED_TO_LINK_LOCAL_SERVICE, R_LINK_LOCAL_NOT_ROUTED, ENI_PLAIN,
                                      R_DELIVERED_TO_FUNCTION, R_DELIVERED_TO_GATEWAY_ENDPOINT,
                                      R_ENI_CAPACITY, R_EXITED_TO_INTERNET, R_FORWARDED_TO_PEERING,
                                      R_GATEWAY_ENDPOINT_PROTOCOL, R_IGW_PRIVATE_ADDRESS_FROM_INTERNET,
                                      R_IGW_PRIVATE_DESTINATION, R_IGW_PRIVATE_SOURCE,
                                      R_IGW_SHARED_DESTINATION, R_IGW_SHARED_SOURCE,
                                      R_NACL_IN_DENY, R_NACL_OUT_DENY,
                                      R_NAT_UNSOLICITED_INBOUND, R_NOT_A_VPC_PUBLIC_ADDRESS,
                                      R_NO_ENI_AT_ADDRESS, R_NO_PUBLIC_IP, R_NO_ROUTE,
                                      R_NO_SUBNET_AT_ADDRESS, R_PCX_ADDRESS_NOT_IN_PEER_VPC,
                                      R_PCX_NOT_ACTIVE,
                                      R_PRIVATE_NAT_TO_INTERNET, R_ROUTING_LOOP, R_SG_EGRESS_DENY,
                                      R_SG_INGRESS_DENY, R_SOURCE_DEST_CHECK_IN,
                                      R_SOURCE_DEST_CHECK_OUT, R_TGW_BLACKHOLE_ROUTE,
                                      R_TGW_NO_ATTACHMENT_IN_AZ, R_TGW_NO_ROUTE,
                                      R_TGW_NOT_ASSOCIATED, R_TGW_NOT_EMULATED_ATTACHMENT,
                                      R_UNMODELLED_TARGET,
                                      R_V2N_UNSOLICITED_INBOUND, STOP_LOG_FULL, STOP_NONE,
                                      STOP_NAT_RST, STOP_NO_MEMORY, STOP_POOL_FULL, S_FIRST_REFUSAL,
                                      S_RST_NO_CONNECTION, T_BLACKHOLE,
                                      T_ENI, T_GATEWAY_ENDPOINT, T_IGW, T_LOCAL, T_NAT, T_NONE,
                                      T_PEERING, T_TGW)
from hyperplane._core._conntrack cimport ConntrackCore, track_check, track_check_rules, track_prefetch, track_t
from hyperplane._core._nat cimport NatCore, nat_find, nat_prefetch, nat_t, nat_translate
from hyperplane._core._policy cimport (route_lookup, route_tables_of, route_tables_t, rule_lookup,
                                 rule_tables_of, rule_tables_t, sg_untracked)
from hyperplane._core._tables cimport __builtin_prefetch, mix, table_alloc
from hyperplane._core._types cimport ICMP_ECHO_REQUEST, P_ICMP, P_TCP, P_UDP, packet_t

import numpy as np

from hyperplane._core._codes import Origin, Stage


cdef enum:
    # limits
    MAX_SENDS = 8                  # a packet sent more times than this is in a routing loop
    MAX_TGW_PASSES = 2             # transit gateways one send may cross (attachment subnet -> TGW again)
    AHEAD = 8                      # prefetch the V2N index line this many packets ahead ...
    AHEAD_CONN = 4                 # ... and the connection it points to this many
    DNS_PORT = 53
    TCP_RST = 0x04
    # the flow memory (see "Flows remembered")
    MEMO_MAX = 35                  # the most outcomes a flow's walk remembers (one 192-byte slot)
    FLOWS_MIN_BITS = 12            # slots of a walker's first flow memory ...
    FLOWS_MAX_BITS = 18            # ... and of its largest (48 MiB)
    AHEAD_FLOW = 16                # prefetch a row's flow slot this many rows ahead, then, from it,
    AHEAD_TRACK = 8                # the index lines of its tracked flow and NAT gateway connection,
    AHEAD_TRACK_LINE = 4           # and the lines they point to

# hop log stage names by stage code: "v2n_out" for H_V2N_OUT ("" for a code no stage has)
_STAGE_NAMES = {int(stage): stage.name[2:].lower() for stage in Stage}
STAGES = tuple(_STAGE_NAMES.get(k, "") for k in range(max(_STAGE_NAMES) + 1))
HOP = np.dtype([("row", "<i4"), ("stage", "u1"), ("pos", "u1"), ("pad", "<u2"), ("v", "<i4", (6,))])
PACKET_HOPS = HOPS_PER_PACKET  # the walk needs this much room in the log before each packet

assert HOP.itemsize == sizeof(hop_t)


# Sorted-array lookups (the compiled VPC's tables; see hyperplane/vpc.py).
ctypedef fused sorted_t:
    uint32_t
    uint64_t


cdef inline Py_ssize_t lower_bound(const sorted_t* keys, Py_ssize_t n, sorted_t key) noexcept nogil:
    """The first position whose key is >= ``key`` among ``n`` ascending keys (``n``: none)."""
    cdef Py_ssize_t lo = 0, half
    while n > 0:
        half = n >> 1
        if keys[lo + half] < key:
            lo += half + 1
            n -= half + 1
        else:
            n = half
    return lo


cdef struct vpc_t:
    # ENIs
    Py_ssize_t n_enis
    const uint32_t* eni_ip          # the primary private address
    const uint8_t* eni_sd_check     # source/destination check on (never for NAT gateway, Hyperplane ENIs)
    const int32_t* eni_subnet
    const int32_t* eni_sg_set
    const int8_t* eni_kind
    const int32_t* eni_nat
    const int32_t* eni_key
    const int32_t* pool_of_eni
    # subnets
    const int32_t* subnet_route_table
    const int32_t* subnet_nacl
    const uint32_t* subnet_dns
    const int32_t* subnet_vpc
    Py_ssize_t n_ranges
    const uint64_t* subnet_lo
    const uint64_t* subnet_hi
    const int32_t* subnet_idx
    # addresses
    Py_ssize_t n_private
    const uint64_t* private_keys
    const int32_t* private_key_eni
    Py_ssize_t n_public
    const uint32_t* public_ips
    const int32_t* public_eni
    const uint32_t* public_private
    Py_ssize_t n_with_public
    const uint32_t* private_with_public
    const uint32_t* public_of_private
    # NAT gateways, endpoints, routes
    Py_ssize_t n_nats
    const uint8_t* nat_public
    const int32_t* nat_eni
    Py_ssize_t n_endpoints
    const int32_t* endpoint_vpc
    const int64_t* route_offset
    const int8_t* target_flat
    const int32_t* target_index_flat
    const route_tables_t* routes
    # peering connections by side (2k: vpc_id -> peer_vpc_id, 2k + 1: back): the VPC entered
    # (-1: not in the network), active, and the CIDR blocks carried, keyed (side << 32 | address)
    const int32_t* pcx_peer_vpc
    const uint8_t* pcx_active
    Py_ssize_t n_pcx_ranges
    const uint64_t* pcx_lo
    const uint64_t* pcx_hi
    const rule_tables_t* sgs
    const rule_tables_t* nacls
    # stateful tables
    nat_t** nats
    Py_ssize_t n_pools
    nat_t** pools
    const int32_t* pool_vpc
    const uint8_t* pool_stops       # the pool's table wants to hear when it is full
    track_t* track
    # REPLY_TO_FUNCTION: function k's pools are fn_pools[fn_off[k]:fn_off[k+1]]
    Py_ssize_t n_functions
    const int32_t* fn_off
    const int32_t* fn_pools
    # the reason tables of failed translations, by status
    const uint8_t* v2n_reason
    const uint8_t* nat_reason
    # transit gateways: attachments (their subnets att_subnets[att_subnet_off[a]:...+1]) and
    # their route tables (a route's target: an attachment, -1 a blackhole)
    const int32_t* subnet_az
    Py_ssize_t n_tgw_atts
    const int32_t* att_tgw
    const uint8_t* att_emulated
    const int32_t* att_vpc
    const int32_t* att_rtb
    const int32_t* att_subnet_off
    const int32_t* att_subnets
    const route_tables_t* tgw_routes
    const int64_t* tgw_route_offset
    const int32_t* tgw_route_att
    const int32_t* tgw_rtb_fallback


cdef struct flow_t:
    # a flow's remembered walk: 192 bytes (three cache lines), a slot of a direct-mapped table.
    # Key: the row as it starts (origin, origin index, addresses, ports, protocol, flags).
    uint64_t ips                   # src_ip << 32 | dst_ip
    uint64_t rest                  # src_port << 48 | dst_port << 32 | proto << 24 | flags << 16
                                   # | (origin + 1) << 8 | outcomes (0: nothing remembered)
    int32_t index
    # where the walk met its first tracked flow and NAT gateway, for the look-ahead (only a
    # prefetch: never read for a decision): the ENI key and the packet's addresses and ports
    # there (-1: none); the gateway's table * 2 + direction, and the packet it looked up
    int32_t track_eni
    uint32_t track_src
    uint32_t track_dst
    uint32_t track_ports
    int32_t nat
    uint32_t nat_src
    uint32_t nat_dst
    uint32_t nat_ports
    int32_t v[MEMO_MAX]            # the outcomes, in the order the walk met them


cdef struct run_t:
    # one batch on its way: packets are translated in place in ``out``
    packet_t* out
    const int8_t* origin
    const int32_t* index
    uint8_t* reason
    int32_t* location
    int64_t* first_hop             # per row: where its hops start in the log
    hop_t* hops
    Py_ssize_t n_hops
    Py_ssize_t hop_cap
    Py_ssize_t nostop_row          # resume here without stopping on a full pool
    int log                        # 0: verdict-only, no hop log (hops, first_hop, n_hops untouched)
    int stream                     # the log is 16-byte aligned: hops are streamed to memory
    int pickup                     # mid-stream pickup: an outbound TCP ACK opens a connection (replay)
    int stop
    int32_t stop_pool
    uint8_t stop_status
    # the flow memory (NULL: off); this row's outcomes, in the order the walk meets them:
    # memo[:memo_live] are replayed, the others looked up and written to memo
    flow_t* flows
    uint64_t flow_mask
    Py_ssize_t flow_stores         # slots (re)written: the caller grows the memory when many are
    flow_t* flow                   # the row's slot (NULL: this row is not remembered) ...
    int32_t* memo                  # ... and its outcomes
    int memo_k                     # the next outcome
    int memo_live                  # outcomes [0, memo_live) are the flow's, as remembered
    int seen_track                 # the row met a tracked flow / a NAT gateway already
    int seen_nat


cdef struct packet_walk_t:
    # one packet: its row, where it is, and its hop count
    Py_ssize_t row
    packet_t* p
    uint8_t pos


#### lookups

cdef inline int32_t eni_at(const vpc_t* v, uint32_t ip, int32_t vpc) noexcept nogil:
    """The ENI holding private address ``ip`` in VPC ``vpc`` (-1: none)."""
    cdef uint64_t key
    cdef Py_ssize_t k
    if vpc < 0:
        return -1
    key = (<uint64_t>vpc << 32) | ip
    k = lower_bound(v.private_keys, v.n_private, key)
    return v.private_key_eni[k] if k < v.n_private and v.private_keys[k] == key else -1


cdef inline int owns(const vpc_t* v, int32_t eni, uint32_t ip) noexcept nogil:
    """1 if ``ip`` is one of the ENI's private addresses (the primary one costs one compare)."""
    return v.eni_ip[eni] == ip or eni_at(v, ip, v.subnet_vpc[v.eni_subnet[eni]]) == eni


cdef inline int32_t subnet_at(const vpc_t* v, uint32_t ip, int32_t vpc) noexcept nogil:
    """The subnet of ``ip`` within VPC ``vpc`` (-1: in none)."""
    cdef uint64_t key = (<uint64_t>vpc << 32) | ip
    cdef Py_ssize_t k = lower_bound(v.subnet_lo, v.n_ranges, key + 1) - 1   # last lo <= key
    if k >= 0 and key <= v.subnet_hi[k]:
        return v.subnet_idx[k]
    return -1


cdef inline int in_peer_cidr(const vpc_t* v, int32_t side, uint32_t ip) noexcept nogil:
    """1 if ``ip`` is inside a CIDR block of the VPC that peering side ``side`` leads into."""
    cdef uint64_t key = (<uint64_t>side << 32) | ip
    cdef Py_ssize_t k = lower_bound(v.pcx_lo, v.n_pcx_ranges, key + 1) - 1   # last lo <= key
    return k >= 0 and key <= v.pcx_hi[k]


cdef inline int32_t public_at(const vpc_t* v, uint32_t public_ip, uint32_t* private) noexcept nogil:
    """The ENI (or NAT gateway ENI) a public address maps to, and its private address (-1)."""
    cdef Py_ssize_t k = lower_bound(v.public_ips, v.n_public, public_ip)
    if k < v.n_public and v.public_ips[k] == public_ip:
        private[0] = v.public_private[k]
        return v.public_eni[k]
    private[0] = 0
    return -1


cdef inline uint32_t public_of(const vpc_t* v, uint32_t private_ip) noexcept nogil:
    """The public address the internet gateway maps a private one to (0: none)."""
    cdef Py_ssize_t k = lower_bound(v.private_with_public, v.n_with_public, private_ip)
    if k < v.n_with_public and v.private_with_public[k] == private_ip:
        return v.public_of_private[k]
    return 0


#### Flows remembered
#
# A packet's walk is decided by the packet as it starts (its origin, addresses, ports, protocol
# and flags), by the compiled VPC, and by what each stateful step answers (a V2N or NAT gateway
# translation, a security group's tracking). A later packet of the same flow, on the same
# walker (one compilation: a recompile builds a new walker with an empty memory), takes the same
# steps in the same order as long as every stateful step answers as it did: the stateless
# lookups between them (rules, routes, NACL entries, addresses) get the same inputs and give the
# same results. So the walk remembers, per flow, the sequence of its outcomes: each stateless
# lookup's result, and each stateful step's answer (status, translated addresses and ports).
# On a packet of a remembered flow the walk runs as always (the same code writes the same hops
# and verdict), but a stateless lookup returns the remembered result, and every stateful step
# is done for real and its answer compared with the remembered one; at the first that differs
# (a connection that expired, a FIN, a tracked flow gone), every later lookup is done again and
# the flow is remembered anew. Exact by construction, whatever the batch: the memory only
# replaces a lookup by its own earlier result for the same input. Rows answering a function
# (REPLY_TO_FUNCTION, matched by connection lookups over the function's pools) are not remembered.

cdef inline uint64_t flow_hash(uint64_t ips, uint64_t rest, int32_t index) noexcept nogil:
    return mix(ips, rest ^ (<uint64_t><uint32_t>index << 8))


cdef inline uint64_t flow_rest(const packet_t* p, int8_t origin) noexcept nogil:
    return ((<uint64_t>p.src_port << 48) | (<uint64_t>p.dst_port << 32) | (<uint64_t>p.proto << 24)
            | (<uint64_t>p.flags << 16) | (<uint64_t>(origin + 1) << 8))


cdef inline flow_t* flow_slot(const run_t* r, Py_ssize_t row) noexcept nogil:
    cdef const packet_t* p = &r.out[row]
    cdef uint64_t ips = (<uint64_t>p.src_ip << 32) | p.dst_ip
    return &r.flows[flow_hash(ips, flow_rest(p, r.origin[row]), r.index[row]) & r.flow_mask]


cdef inline void flow_begin(run_t* r, Py_ssize_t row) noexcept nogil:
    """Find the row's flow in the memory (its outcomes are then replayed) or take its slot."""
    cdef const packet_t* p = &r.out[row]
    cdef uint64_t ips = (<uint64_t>p.src_ip << 32) | p.dst_ip
    cdef uint64_t rest = flow_rest(p, r.origin[row])
    cdef flow_t* f
    r.memo_k = 0
    r.memo_live = 0
    r.seen_track = r.seen_nat = 0
    if r.flows == NULL or r.origin[row] == O_REPLY_TO_FUNCTION:
        r.flow = NULL
        r.memo = NULL
        return
    f = &r.flows[flow_hash(ips, rest, r.index[row]) & r.flow_mask]
    r.flow = f
    r.memo = f.v
    if f.ips == ips and (f.rest & ~(<uint64_t>0xFF)) == rest and f.index == r.index[row]:
        r.memo_live = <int>(f.rest & 0xFF)
        return
    f.ips = ips
    f.rest = rest  # nothing remembered until the walk completes
    f.index = r.index[row]
    f.track_eni = -1
    f.nat = -1
    r.flow_stores += 1


cdef inline void flow_end(run_t* r, Py_ssize_t row, int completed) noexcept nogil:
    """Remember the row's outcomes (all of them, or none: a row stopped, or too long a walk)."""
    cdef flow_t* f = r.flow
    cdef uint64_t n
    if f == NULL:
        return
    n = <uint64_t>r.memo_k if completed and r.memo_k <= MEMO_MAX else 0
    if (f.rest & 0xFF) != n:
        f.rest = (f.rest & ~(<uint64_t>0xFF)) | n
    r.flow = NULL
    r.memo = NULL


cdef inline void plan_track(run_t* r, int32_t eni, const packet_t* p) noexcept nogil:
    """The row checks a tracked flow: remember where (its first), for the look-ahead."""
    if r.seen_track:
        return
    r.seen_track = 1
    if r.flow != NULL and r.memo_k >= r.memo_live:
        r.flow.track_eni = eni
        r.flow.track_src = p.src_ip
        r.flow.track_dst = p.dst_ip
        r.flow.track_ports = (<uint32_t>p.src_port << 16) | p.dst_port


cdef inline void plan_nat(run_t* r, int32_t nat, uint8_t d, const packet_t* p) noexcept nogil:
    """The row is translated by a NAT gateway: remember which (its first), for the look-ahead."""
    if r.seen_nat:
        return
    r.seen_nat = 1
    if r.flow != NULL and r.memo_k >= r.memo_live:
        r.flow.nat = nat * 2 + d
        r.flow.nat_src = p.src_ip
        r.flow.nat_dst = p.dst_ip
        r.flow.nat_ports = (<uint32_t>p.src_port << 16) | p.dst_port


cdef inline void look_ahead(const vpc_t* v, const run_t* r, Py_ssize_t row, int stage) noexcept nogil:
    """Prefetch what a remembered flow's row will look up first: its tracked flow and NAT
    gateway connection (stage 0: their index lines; 1: what those point to)."""
    cdef const packet_t* p = &r.out[row]
    cdef const flow_t* f = flow_slot(r, row)
    cdef packet_t q
    if r.origin[row] == O_REPLY_TO_FUNCTION or (f.rest & 0xFF) == 0 or f.index != r.index[row]:
        return
    if f.ips != ((<uint64_t>p.src_ip << 32) | p.dst_ip) or (f.rest & ~(<uint64_t>0xFF)) != flow_rest(p, r.origin[row]):
        return
    q = p[0]
    if f.track_eni >= 0:
        q.src_ip, q.dst_ip = f.track_src, f.track_dst
        q.src_port, q.dst_port = f.track_ports >> 16, f.track_ports & 0xFFFF
        track_prefetch(v.track, f.track_eni, &q, stage)
    if f.nat >= 0:
        q.src_ip, q.dst_ip = f.nat_src, f.nat_dst
        q.src_port, q.dst_port = f.nat_ports >> 16, f.nat_ports & 0xFFFF
        nat_prefetch(v.nats[f.nat >> 1], &q, f.nat & 1, stage)


cdef inline int memo_replay(run_t* r, int32_t* value) noexcept nogil:
    """1 with the flow's remembered result of this lookup; 0: look it up (and ``memo_keep`` it)."""
    if r.memo_k < r.memo_live:
        value[0] = r.memo[r.memo_k]
        r.memo_k += 1
        return 1
    return 0


cdef inline int32_t memo_keep(run_t* r, int32_t value) noexcept nogil:
    """Remember ``value`` as this row's next outcome; returns it."""
    if r.memo != NULL:
        if r.memo_k < MEMO_MAX:
            r.memo[r.memo_k] = value
        r.memo_k += 1
    return value


cdef inline void memo_check(run_t* r, int32_t value) noexcept nogil:
    """A stateful step answered ``value``: the flow's memory holds on only while each answer is
    the remembered one; from the first that is not, everything is looked up and remembered anew."""
    if r.memo_k < r.memo_live:
        if r.memo[r.memo_k] == value:
            r.memo_k += 1
            return
        r.memo_live = r.memo_k
    memo_keep(r, value)


cdef inline void memo_check_packet(run_t* r, const packet_t* p, uint8_t status) noexcept nogil:
    """A translation's answer: its status and the packet it left."""
    memo_check(r, <int32_t>p.src_ip)
    memo_check(r, <int32_t>p.dst_ip)
    memo_check(r, <int32_t>((<uint32_t>p.src_port << 16) | p.dst_port))
    memo_check(r, status)


# The stateless lookups of the walk, through the flow memory.
cdef inline int32_t m_rule(run_t* r, const rule_tables_t* t, int32_t s, int d, const packet_t* p) noexcept nogil:
    cdef int32_t x
    if memo_replay(r, &x):
        return x
    return memo_keep(r, rule_lookup(t, s, d, p))


cdef inline int32_t m_route(run_t* r, const route_tables_t* t, int32_t table, uint32_t dst) noexcept nogil:
    cdef int32_t x
    if memo_replay(r, &x):
        return x
    return memo_keep(r, route_lookup(t, table, dst))


cdef inline int32_t m_eni_at(const vpc_t* v, run_t* r, uint32_t ip, int32_t vpc) noexcept nogil:
    cdef int32_t x
    if memo_replay(r, &x):
        return x
    return memo_keep(r, eni_at(v, ip, vpc))


cdef inline int m_owns(const vpc_t* v, run_t* r, int32_t eni, uint32_t ip) noexcept nogil:
    cdef int32_t x
    if memo_replay(r, &x):
        return x
    return memo_keep(r, owns(v, eni, ip))


cdef inline int32_t m_subnet_at(const vpc_t* v, run_t* r, uint32_t ip, int32_t vpc) noexcept nogil:
    cdef int32_t x
    if memo_replay(r, &x):
        return x
    return memo_keep(r, subnet_at(v, ip, vpc))


cdef inline int32_t m_public_at(const vpc_t* v, run_t* r, uint32_t public_ip, uint32_t* private) noexcept nogil:
    cdef int32_t x, y
    if memo_replay(r, &x) and memo_replay(r, &y):
        private[0] = <uint32_t>y
        return x
    x = public_at(v, public_ip, private)
    memo_keep(r, x)
    memo_keep(r, <int32_t>private[0])
    return x


cdef inline uint32_t m_public_of(const vpc_t* v, run_t* r, uint32_t private_ip) noexcept nogil:
    cdef int32_t x
    if memo_replay(r, &x):
        return <uint32_t>x
    return <uint32_t>memo_keep(r, <int32_t>public_of(v, private_ip))


#### the walk

# A hop goes straight to memory where the CPU can (non-temporal stores): the log is written once
# and read later, and through the cache it would push the tables the next packets need out of it
# (measured: the walk is 12-17% faster).
cdef extern from *:
    """
    #if defined(__SSE2__)
    #include <emmintrin.h>
    static inline void hp_stream32(void* dst, const void* src) {
        const __m128i* s = (const __m128i*)src;
        _mm_stream_si128((__m128i*)dst, _mm_loadu_si128(s));
        _mm_stream_si128((__m128i*)dst + 1, _mm_loadu_si128(s + 1));
    }
    static inline void hp_stream_fence(void) { _mm_sfence(); }
    #else
    static inline void hp_stream32(void* dst, const void* src) { __builtin_memcpy(dst, src, 32); }
    static inline void hp_stream_fence(void) {}
    #endif
    """
    void hp_stream32(void* dst, const void* src) nogil
    void hp_stream_fence() nogil

cdef inline void hop(run_t* r, packet_walk_t* w, uint8_t stage, int32_t a, int32_t b, int32_t c,
                     int32_t d, int32_t e, int32_t f) noexcept nogil:
    cdef hop_t h
    if not r.log:
        return
    h.row = <int32_t>w.row
    h.stage = stage
    h.pos = w.pos
    h.pad = 0
    h.v[0] = a
    h.v[1] = b
    h.v[2] = c
    h.v[3] = d
    h.v[4] = e
    h.v[5] = f
    if r.stream:
        hp_stream32(&r.hops[r.n_hops], &h)
    else:
        r.hops[r.n_hops] = h
    r.n_hops += 1
    w.pos += 1


cdef inline int finish(run_t* r, packet_walk_t* w, uint8_t reason, int32_t where) noexcept nogil:
    r.reason[w.row] = reason
    r.location[w.row] = where
    return -1


# Each step returns what comes next: an ENI to send from (>= 0), DONE, or STOPPED (the walk
# of this row must be undone and resumed).
cdef enum:
    DONE = -1
    STOPPED = -2


cdef inline int nacl_check(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t subnet, int32_t nacl, int d,
                           int32_t where) noexcept nogil:
    """Network ACL ``nacl`` of ``subnet`` in direction d (1 out, 0 in; -1: not crossed, which
    passes), logged as its hop; a refusal ends the packet at ``where``. 1 if it passes."""
    cdef int32_t e = m_rule(r, v.nacls, nacl, d, w.p)
    cdef int allowed = 1 if e == -2 else (v.nacls.entry_allow[e] if e >= 0 else 0)
    cdef int32_t number = -1 if e == -2 else (v.nacls.entry_rule_number[e] if e >= 0 else IMPLICIT_DENY_RULE)
    hop(r, w, H_NACL_OUT if d else H_NACL_IN, subnet, nacl, allowed, number, 0, 0)
    if not allowed:
        finish(r, w, R_NACL_OUT_DENY if d else R_NACL_IN_DENY, where)
    return allowed


cdef int nacl_in(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t eni, int32_t from_subnet) noexcept nogil:
    """NACL in at the ENI's subnet when the packet comes from another one; 1 if it passes."""
    cdef int32_t subnet = v.eni_subnet[eni]
    return nacl_check(v, r, w, subnet, -1 if from_subnet == subnet else v.subnet_nacl[subnet], 0, eni)


cdef int auto_tracked(const vpc_t* v, int32_t eni, int d, const packet_t* p) noexcept nogil:
    """1 when the ENI's flow with this packet's peer is one AWS always tracks: the peer is a
    Hyperplane ENI, a NAT gateway or an interface endpoint of the VPC, or the ENI's subnet
    routes to the peer through a NAT gateway (EC2 "Automatically tracked connections")."""
    cdef uint32_t peer = p.dst_ip if d else p.src_ip
    cdef int32_t subnet = v.eni_subnet[eni]
    cdef int32_t other = eni_at(v, peer, v.subnet_vpc[subnet])
    cdef int32_t table, route
    if other >= 0 and v.eni_kind[other] != ENI_PLAIN:
        return 1
    table = v.subnet_route_table[subnet]
    route = route_lookup(v.routes, table, peer)
    return route >= 0 and v.target_flat[v.route_offset[table] + route] == T_NAT


cdef int sg_check(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t eni, int d) noexcept nogil:
    """The ENI's security groups (with tracking) in direction d: 1 allowed, 0 denied, -1 no memory.

    A flow is untracked when the rules say so (``sg_untracked``) on an ordinary ENI and AWS
    does not track it automatically: the packet passes on the rules and leaves nothing behind,
    so the next one is judged by the rules again (hop value 5: 1)."""
    cdef int32_t sg = v.eni_sg_set[eni]
    cdef int32_t rule = m_rule(r, v.sgs, sg, d, w.p), x
    cdef uint8_t allowed, tracked, untracked = 0
    if rule >= 0 and v.eni_kind[eni] == ENI_PLAIN:
        if memo_replay(r, &x):
            untracked = <uint8_t>x
        else:
            untracked = memo_keep(r, sg_untracked(v.sgs, sg, d, w.p) and not auto_tracked(v, eni, d, w.p))
    if sg >= 0:
        plan_track(r, v.eni_key[eni], w.p)
    if not track_check_rules(v.track, v.eni_key[eni] if sg >= 0 else -1, w.p, rule != -1, untracked,
                             &allowed, &tracked):
        r.stop = STOP_NO_MEMORY
        return -1
    memo_check(r, allowed | (tracked << 1))
    hop(r, w, H_SG_EGRESS if d else H_SG_INGRESS, eni, sg, allowed, rule if rule >= 0 else -1, tracked,
        untracked and not tracked)
    return allowed


cdef int translate_at_nat(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t nat, uint8_t d,
                          int32_t eni) noexcept nogil:
    """The NAT gateway translates (d 0: out, 1: back in); then its ENI sends the packet on."""
    cdef packet_t before = w.p[0]
    cdef uint8_t status
    if nat < 0:  # an ENI of a NAT gateway that is not in the topology
        return finish(r, w, R_NAT_UNSOLICITED_INBOUND, eni)
    plan_nat(r, nat, d, w.p)
    if not nat_translate(v.nats[nat], w.p, d, 0, &status, r.pickup):
        r.stop = STOP_NO_MEMORY
        return STOPPED
    memo_check_packet(r, w.p, status)
    hop(r, w, H_NAT_IN if d else H_NAT_OUT, nat, status, <int32_t>before.src_ip, before.src_port,
        <int32_t>before.dst_ip, before.dst_port)
    if status >= S_FIRST_REFUSAL:
        if status == S_RST_NO_CONNECTION and not (w.p.flags & TCP_RST):
            # the gateway answers with an RST (never one to an RST): the walk stops after this
            # row and the caller walks the answer from the gateway's ENI before the next row
            r.stop = STOP_NAT_RST
            r.stop_pool = eni
        return finish(r, w, v.nat_reason[status], eni)
    return eni


cdef int arrive(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t eni, int32_t from_subnet) noexcept nogil:
    """A packet reaches an ENI: NACL in, then by kind: NAT gateway, SG ingress, V2N back."""
    cdef int ok
    if not nacl_in(v, r, w, eni, from_subnet):
        return DONE
    if v.eni_kind[eni] == ENI_NAT_GATEWAY:
        return translate_at_nat(v, r, w, v.eni_nat[eni], 1, eni)
    ok = sg_check(v, r, w, eni, 0)
    if ok < 0:
        return STOPPED
    if not ok:
        return finish(r, w, R_SG_INGRESS_DENY, eni)
    if v.eni_kind[eni] != ENI_HYPERPLANE:
        return finish(r, w, R_DELIVERED, eni)
    return back_to_function(v, r, w, eni)


cdef int back_to_function(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t eni) noexcept nogil:
    """A packet that reached a Hyperplane ENI: V2N translates it back to its execution
    environment, or drops it (nothing can open a connection to a function)."""
    cdef int32_t pool
    cdef uint8_t status
    cdef uint32_t ip
    cdef uint16_t port
    pool = v.pool_of_eni[eni]
    if pool < 0:
        return finish(r, w, R_V2N_UNSOLICITED_INBOUND, eni)
    ip = w.p.dst_ip
    port = w.p.dst_port
    if not nat_translate(v.pools[pool], w.p, DIR_IN, 0, &status):
        r.stop = STOP_NO_MEMORY
        return STOPPED
    memo_check_packet(r, w.p, status)
    hop(r, w, H_V2N_IN, pool, status, <int32_t>ip, port, <int32_t>w.p.dst_ip, w.p.dst_port)
    return finish(r, w, R_DELIVERED_TO_FUNCTION if status < 16 else v.v2n_reason[status], eni)


cdef inline uint8_t not_on_internet(uint32_t ip, uint8_t private, uint8_t shared) noexcept nogil:
    """``private`` for an RFC 1918 address, ``shared`` for RFC 6598 (100.64.0.0/10), else 0:
    the ranges an internet gateway refuses (Reachability Analyzer's IGW_..._RFC1918/6598 codes)."""
    if (ip >> 24) == 10 or (ip >> 20) == 0xAC1 or (ip >> 16) == 0xC0A8:
        return private
    if (ip >> 22) == 0x191:  # 100.64.0.0/10
        return shared
    return 0


cdef int leave_by_igw(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t eni) noexcept nogil:
    """The internet gateway maps the private source to its public IP (1:1), or drops it; it
    drops a packet for a private or shared address (not on the internet); a packet to a public
    address of the VPC turns around (hairpin)."""
    cdef uint32_t public = m_public_of(v, r, w.p.src_ip)
    cdef uint32_t private
    cdef int32_t nat, back
    cdef uint8_t refused = 0
    if public:
        refused = not_on_internet(w.p.dst_ip, R_IGW_PRIVATE_DESTINATION, R_IGW_SHARED_DESTINATION)
    hop(r, w, H_IGW_OUT, eni, <int32_t>w.p.src_ip, <int32_t>public, refused, 0, 0)
    if public == 0:
        nat = v.eni_nat[eni]
        if nat >= 0 and not v.nat_public[nat]:
            return finish(r, w, R_PRIVATE_NAT_TO_INTERNET, eni)
        return finish(r, w, R_NO_PUBLIC_IP, eni)
    if refused:
        return finish(r, w, refused, eni)
    w.p.src_ip = public
    back = m_public_at(v, r, w.p.dst_ip, &private)
    if back < 0:
        return finish(r, w, R_EXITED_TO_INTERNET, eni)
    hop(r, w, H_IGW_IN, <int32_t>w.p.dst_ip, <int32_t>private, back, 0, 0, 0)
    w.p.dst_ip = private
    return arrive(v, r, w, back, -1)


cdef inline int to_link_local(run_t* r, packet_walk_t* w, int32_t eni, int8_t kind) noexcept nogil:
    """A link-local destination (169.254.0.0/16) never reaches the VPC router, and "security
    groups and network ACLs don't filter traffic to or from link-local addresses" (AWS): an
    instance's host answers its own services (instance metadata 169.254.169.254, Amazon Time
    Sync 169.254.169.123, Windows license activation 169.254.169.250-251, the Amazon DNS server
    169.254.169.253); for any other address, or from a Hyperplane, NAT gateway or endpoint ENI
    (no instance behind it), the packet goes nowhere."""
    cdef uint32_t last = w.p.dst_ip & 0xFF
    if kind == ENI_PLAIN and (w.p.dst_ip >> 8) == 0xA9FEA9 and (  # 169.254.169.x
            last == 254 or last == 123 or last == 250 or last == 251 or last == 253):
        return finish(r, w, R_DELIVERED_TO_LINK_LOCAL_SERVICE, eni)
    return finish(r, w, R_LINK_LOCAL_NOT_ROUTED, eni)


cdef int send(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t eni) noexcept nogil:
    """A packet leaves an ENI: DNS resolver?, SG egress, route, NACL out, then its target."""
    cdef packet_t* p = w.p
    cdef int32_t subnet = v.eni_subnet[eni]
    cdef int32_t table, route, target, dst_eni, to_subnet, nacl, nat_eni
    cdef int8_t kind
    cdef int64_t flat
    cdef int ok, local
    # source/destination check: "the instance must be the source or destination of any traffic
    # it sends or receives" (EC2); decided before anything else sees the packet
    if v.eni_sd_check[eni] and not m_owns(v, r, eni, p.src_ip):
        return finish(r, w, R_SOURCE_DEST_CHECK_OUT, eni)
    if (p.dst_ip >> 16) == 0xA9FE:
        return to_link_local(r, w, eni, v.eni_kind[eni])
    # the VPC DNS resolver: neither security groups nor NACLs filter it
    if p.dst_ip == v.subnet_dns[subnet] and p.dst_port == DNS_PORT and (p.proto == P_TCP or p.proto == P_UDP):
        hop(r, w, H_DNS, subnet, 0, 0, 0, 0, 0)
        return finish(r, w, R_DELIVERED_TO_DNS_RESOLVER, eni)
    ok = sg_check(v, r, w, eni, 1)
    if ok < 0:
        return STOPPED
    if not ok:
        return finish(r, w, R_SG_EGRESS_DENY, eni)
    table = v.subnet_route_table[subnet]
    route = m_route(r, v.routes, table, p.dst_ip)
    if route >= 0:
        flat = v.route_offset[table] + route
        kind = v.target_flat[flat]
        target = v.target_index_flat[flat]
    else:
        kind = T_NONE
        target = -1
    local = kind == T_LOCAL or kind == T_ENI
    if kind == T_LOCAL:
        dst_eni = m_eni_at(v, r, p.dst_ip, v.subnet_vpc[subnet])
    elif kind == T_ENI:
        dst_eni = target
    else:
        dst_eni = -1
    hop(r, w, H_ROUTE, eni, subnet, table, route, kind, target)
    # the NACL is crossed on the way to another subnet or out of the VPC; a packet with no
    # route (or a blackhole) never leaves
    if kind == T_ENI:
        to_subnet = v.eni_subnet[dst_eni] if dst_eni >= 0 else -1  # a missing target: out of the subnet
    elif kind == T_LOCAL:
        to_subnet = m_subnet_at(v, r, p.dst_ip, v.subnet_vpc[subnet])
    else:
        to_subnet = -1  # leaves the subnet (or never leaves at all: no route, blackhole)
    if kind == T_NONE or kind == T_BLACKHOLE or (local and to_subnet == subnet):
        nacl = -1
    else:
        nacl = v.subnet_nacl[subnet]
    if not nacl_check(v, r, w, subnet, nacl, 1, eni):
        return -1
    if local:
        if kind == T_LOCAL and to_subnet < 0:  # inside the VPC's CIDR, in none of its subnets
            return finish(r, w, R_NO_SUBNET_AT_ADDRESS, eni)
        if dst_eni < 0:
            return finish(r, w, R_NO_ENI_AT_ADDRESS, eni)
        if kind == T_ENI and v.eni_sd_check[dst_eni] and not m_owns(v, r, dst_eni, p.dst_ip):
            # an appliance must have the check off; the subnet's NACL is crossed first
            if not nacl_in(v, r, w, dst_eni, subnet):
                return DONE
            return finish(r, w, R_SOURCE_DEST_CHECK_IN, dst_eni)
        return arrive(v, r, w, dst_eni, subnet)
    if kind == T_NAT:
        nat_eni = v.nat_eni[target]
        if nat_eni < 0:
            return finish(r, w, R_UNMODELLED_TARGET, eni)
        if not nacl_in(v, r, w, nat_eni, subnet):
            return DONE
        return translate_at_nat(v, r, w, v.eni_nat[nat_eni], 0, nat_eni)
    if kind == T_IGW:
        return leave_by_igw(v, r, w, eni)
    if kind == T_GATEWAY_ENDPOINT:
        if p.proto == P_TCP or (p.proto == P_ICMP and p.flags == ICMP_ECHO_REQUEST):
            return finish(r, w, R_DELIVERED_TO_GATEWAY_ENDPOINT, eni)
        return finish(r, w, R_GATEWAY_ENDPOINT_PROTOCOL, eni)
    if kind == T_PEERING:
        return into_peer(v, r, w, eni, target)
    if kind == T_TGW:
        return through_tgw(v, r, w, target, subnet, eni, 0)
    if kind == T_BLACKHOLE:
        return finish(r, w, R_BLACKHOLE_ROUTE, eni)
    if kind == T_NONE:
        return finish(r, w, R_NO_ROUTE, eni)
    return finish(r, w, R_UNMODELLED_TARGET, eni)


cdef int into_peer(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t eni, int32_t side) noexcept nogil:
    """A packet routed to a peering connection: "VPC peering creates a direct network route
    between the two VPCs using private IPv4 addresses" (VPC Peering guide), so it enters the peer
    VPC at the address it is sent to: that subnet's NACL in, the receiver's groups. An active
    connection carries only traffic to the peer's CIDR blocks (never on to its gateways or other
    peerings: no transitive routing); a peer VPC not in the network is where the packet exits."""
    cdef int32_t peer_vpc = v.pcx_peer_vpc[side], subnet = -1, dst_eni = -1
    cdef int active = v.pcx_active[side]
    cdef int inside = in_peer_cidr(v, side, w.p.dst_ip)
    if active and inside and peer_vpc >= 0:
        subnet = subnet_at(v, w.p.dst_ip, peer_vpc)
        dst_eni = eni_at(v, w.p.dst_ip, peer_vpc)
    hop(r, w, H_PEERING, side >> 1, peer_vpc, active, inside, dst_eni, 0)
    if not active:
        return finish(r, w, R_PCX_NOT_ACTIVE, eni)
    if not inside:
        return finish(r, w, R_PCX_ADDRESS_NOT_IN_PEER_VPC, eni)
    if peer_vpc < 0:
        return finish(r, w, R_FORWARDED_TO_PEERING, eni)
    if subnet < 0:
        return finish(r, w, R_NO_SUBNET_AT_ADDRESS, eni)
    if dst_eni < 0:
        return finish(r, w, R_NO_ENI_AT_ADDRESS, eni)
    return arrive(v, r, w, dst_eni, -1)


#### transit gateways (issue 16)

cdef inline int32_t att_subnet_in(const vpc_t* v, int32_t att, int32_t az) noexcept nogil:
    """The attachment's subnet in Availability Zone ``az`` (-1: none)."""
    cdef int32_t k
    for k in range(v.att_subnet_off[att], v.att_subnet_off[att + 1]):
        if v.subnet_az[v.att_subnets[k]] == az:
            return v.att_subnets[k]
    return -1


cdef int nacl_at(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t subnet, int d, int32_t where) noexcept nogil:
    """The subnet's NACL in direction d (1 out, 0 in) for a transit gateway's own interface,
    which has no ENI of the walk; 1 if it passes."""
    return nacl_check(v, r, w, subnet, v.subnet_nacl[subnet], d, where)


cdef int32_t tgw_next(const vpc_t* v, int32_t att, uint32_t dst, int32_t* route) noexcept nogil:
    """The attachment a packet that entered by ``att`` leaves by, from the route table ``att``
    is associated with (``route``: the route, -1 none); -1: a blackhole or no route."""
    cdef int32_t rtb = v.att_rtb[att]
    route[0] = route_lookup(v.tgw_routes, rtb, dst)
    if route[0] < 0:
        return -1
    return v.tgw_route_att[v.tgw_route_offset[rtb] + route[0]]


cdef int through_tgw(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t att, int32_t from_subnet,
                     int32_t eni, int passes) noexcept nogil:
    """A packet routed from ``from_subnet`` to a transit gateway, by its attachment ``att`` to
    that VPC: it enters at the attachment's subnet in the sender's Availability Zone (that
    subnet's NACL in), is routed by the route table the attachment is associated with, and
    leaves by the target attachment's subnet in that VPC (the same zone if it has one), whose
    route table sends it on: NACL out when it leaves that subnet, then as a local packet
    arrives. ``eni``: the sender (-1 from a transit gateway's own interface)."""
    cdef int32_t az = v.subnet_az[from_subnet], in_subnet, rtb, route = -1, target, out_subnet
    cdef int32_t table, vroute, vtarget = -1, dst_eni, to_subnet, nat_eni
    cdef int8_t kind = T_NONE
    cdef uint32_t dst = w.p.dst_ip
    if att < 0:  # the VPC has no attachment to this transit gateway
        hop(r, w, H_TGW_IN, -1, -1, -1, -1, -1, -1)
        return finish(r, w, R_TGW_NO_ATTACHMENT_IN_AZ, eni)
    in_subnet = att_subnet_in(v, att, az)
    if in_subnet < 0:
        # "traffic is forwarded to the transit gateway only when the transit gateway has an
        # attachment in a subnet in the same Availability Zone"
        hop(r, w, H_TGW_IN, att, -1, v.att_rtb[att], -1, -1, v.att_tgw[att])
        return finish(r, w, R_TGW_NO_ATTACHMENT_IN_AZ, eni)
    if not nacl_at(v, r, w, in_subnet, 0, eni):
        return DONE
    rtb = v.att_rtb[att]
    target = tgw_next(v, att, dst, &route)
    hop(r, w, H_TGW_IN, att, in_subnet, rtb, route, target, v.att_tgw[att])
    if rtb < 0:
        return finish(r, w, R_TGW_NOT_ASSOCIATED, eni)
    if route < 0:
        # a table a VPN / Direct Connect attachment propagates to may hold its BGP routes
        return finish(r, w, R_TGW_NOT_EMULATED_ATTACHMENT if v.tgw_rtb_fallback[rtb] >= 0 else R_TGW_NO_ROUTE, eni)
    if target < 0:
        return finish(r, w, R_TGW_BLACKHOLE_ROUTE, eni)
    if not v.att_emulated[target] or v.att_vpc[target] < 0:
        return finish(r, w, R_TGW_NOT_EMULATED_ATTACHMENT, eni)
    out_subnet = att_subnet_in(v, target, az)
    if out_subnet < 0:
        out_subnet = v.att_subnets[v.att_subnet_off[target]]
    table = v.subnet_route_table[out_subnet]
    vroute = route_lookup(v.routes, table, dst)
    if vroute >= 0:
        kind = v.target_flat[v.route_offset[table] + vroute]
        vtarget = v.target_index_flat[v.route_offset[table] + vroute]
    hop(r, w, H_TGW_OUT, target, out_subnet, table, vroute, kind, vtarget)
    if kind == T_LOCAL or kind == T_ENI:
        dst_eni = eni_at(v, dst, v.subnet_vpc[out_subnet]) if kind == T_LOCAL else vtarget
        if kind == T_ENI:
            to_subnet = v.eni_subnet[dst_eni] if dst_eni >= 0 else -1
        else:
            to_subnet = subnet_at(v, dst, v.subnet_vpc[out_subnet])
        # from the transit gateway to an instance of its own subnet, "Outbound rules are not
        # evaluated. Inbound rules are not evaluated."
        if to_subnet != out_subnet and not nacl_at(v, r, w, out_subnet, 1, -1):
            return DONE
        if kind == T_LOCAL and to_subnet < 0:  # inside the VPC's CIDR, in none of its subnets
            return finish(r, w, R_NO_SUBNET_AT_ADDRESS, -1)
        if dst_eni < 0:
            return finish(r, w, R_NO_ENI_AT_ADDRESS, -1)
        if kind == T_ENI and v.eni_sd_check[dst_eni] and not owns(v, dst_eni, dst):
            if not nacl_in(v, r, w, dst_eni, out_subnet):
                return DONE
            return finish(r, w, R_SOURCE_DEST_CHECK_IN, dst_eni)
        return arrive(v, r, w, dst_eni, out_subnet)
    if kind == T_NAT:  # centralised egress: the NAT gateway sends it on
        nat_eni = v.nat_eni[vtarget]
        if nat_eni < 0:
            return finish(r, w, R_UNMODELLED_TARGET, -1)
        if v.eni_subnet[nat_eni] != out_subnet and not nacl_at(v, r, w, out_subnet, 1, -1):
            return DONE
        if not nacl_in(v, r, w, nat_eni, out_subnet):
            return DONE
        return translate_at_nat(v, r, w, v.eni_nat[nat_eni], 0, nat_eni)
    if kind == T_TGW:
        if passes + 1 >= MAX_TGW_PASSES:
            return finish(r, w, R_ROUTING_LOOP, -1)
        return through_tgw(v, r, w, vtarget, out_subnet, -1, passes + 1)
    if kind == T_IGW:
        # the source is an address of another VPC: the internet gateway maps none for it
        if not nacl_at(v, r, w, out_subnet, 1, -1):
            return DONE
        return finish(r, w, R_NO_PUBLIC_IP, -1)
    if kind == T_BLACKHOLE:
        return finish(r, w, R_BLACKHOLE_ROUTE, -1)
    if kind == T_NONE:
        return finish(r, w, R_NO_ROUTE, -1)
    # a peering connection or an endpoint does not carry traffic that came in by a transit
    # gateway (no edge-to-edge routing)
    return finish(r, w, R_UNMODELLED_TARGET, -1)


cdef int32_t tgw_peer(const vpc_t* v, int32_t att, uint32_t ip) noexcept nogil:
    """The ENI at ``ip`` in the VPC a transit gateway routes ``ip`` to from ``att`` (-1)."""
    cdef int32_t route, target
    if att < 0:
        return -1
    target = tgw_next(v, att, ip, &route)
    if target < 0 or not v.att_emulated[target]:
        return -1
    return eni_at(v, ip, v.att_vpc[target])


cdef int from_internet(const vpc_t* v, run_t* r, packet_walk_t* w) noexcept nogil:
    """The internet gateway takes a packet from the internet: it drops one whose source is not
    an internet address, and refuses one for a private address or a public address no ENI (or
    NAT gateway) of the VPC holds; otherwise it maps the public address to its private one."""
    cdef uint32_t private
    cdef int32_t eni = m_public_at(v, r, w.p.dst_ip, &private)  # also names the gateway that refuses
    cdef uint8_t refused = not_on_internet(w.p.src_ip, R_IGW_PRIVATE_SOURCE, R_IGW_SHARED_SOURCE)
    if not refused:
        refused = not_on_internet(w.p.dst_ip, R_IGW_PRIVATE_ADDRESS_FROM_INTERNET, 0)
    hop(r, w, H_IGW_IN, <int32_t>w.p.dst_ip, <int32_t>private, eni, refused, 0, 0)
    if refused:
        return finish(r, w, refused, -1)
    if eni < 0:
        return finish(r, w, R_NOT_A_VPC_PUBLIC_ADDRESS, -1)
    w.p.dst_ip = private
    return arrive(v, r, w, eni, -1)


cdef int from_gateway_endpoint(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t endpoint) noexcept nogil:
    cdef int32_t vpc = v.endpoint_vpc[endpoint if endpoint > 0 else 0] if v.n_endpoints else -1
    cdef int32_t eni = m_eni_at(v, r, w.p.dst_ip, vpc)
    hop(r, w, H_ENDPOINT_IN, endpoint, eni, 0, 0, 0, 0)
    if eni < 0:
        return finish(r, w, R_NO_ENI_AT_ADDRESS, -1)
    return arrive(v, r, w, eni, -1)


cdef int reply_to_function(const vpc_t* v, run_t* r, packet_walk_t* w, int32_t function) noexcept nogil:
    """A reply from a peer to an execution environment becomes the packet the peer really
    sends, and starts where the peer is. The request's way out is followed from the Hyperplane
    ENI, route by route: each NAT gateway it crossed changed the address the peer answers (its
    private address, public from the internet); the last route says where the answer comes
    from: an appliance ENI, a service behind a gateway endpoint, the peer's own ENI (also when
    the request reached it through the internet gateway's hairpin), or the internet."""
    cdef packet_t* p = w.p
    cdef packet_t request, sent, natted
    cdef int32_t k, pool = -1, vpc, peer, eni, table, route, target = -1
    cdef int64_t flat
    cdef int8_t kind = T_NONE
    cdef uint32_t public, private
    request = p[0]
    request.src_ip, request.dst_ip = p.dst_ip, p.src_ip
    request.src_port, request.dst_port = p.dst_port, p.src_port
    for k in range(v.fn_off[function], v.fn_off[function + 1]):
        if nat_find(v.pools[v.fn_pools[k]], &request, DIR_OUT, &sent):
            pool = v.fn_pools[k]
            break
    if pool < 0:
        return finish(r, w, R_V2N_UNSOLICITED_INBOUND, -1)
    p.dst_ip, p.dst_port = sent.src_ip, sent.src_port
    vpc = v.pool_vpc[pool]
    peer = eni_at(v, p.src_ip, vpc)
    eni = eni_at(v, sent.src_ip, vpc)  # the Hyperplane ENI
    if (eni >= 0 and p.src_ip == v.subnet_dns[v.eni_subnet[eni]] and p.src_port == DNS_PORT
            and (p.proto == P_TCP or p.proto == P_UDP)):
        # the VPC DNS resolver's answer: straight back to the ENI that asked, unfiltered
        hop(r, w, H_DNS, v.eni_subnet[eni], 0, 0, 0, 0, 0)
        return back_to_function(v, r, w, eni)
    for k in range(MAX_SENDS):
        if eni < 0:
            break
        table = v.subnet_route_table[v.eni_subnet[eni]]
        route = route_lookup(v.routes, table, sent.dst_ip)
        if route < 0:
            kind = T_NONE
            break
        flat = v.route_offset[table] + route
        kind, target = v.target_flat[flat], v.target_index_flat[flat]
        if kind != T_NAT:
            break
        if not nat_find(v.nats[target], &sent, DIR_OUT, &natted):
            return finish(r, w, R_NAT_UNSOLICITED_INBOUND, -1)
        p.dst_ip, p.dst_port = natted.src_ip, natted.src_port  # the peer answers the gateway
        sent, eni = natted, v.nat_eni[target]
    if kind == T_TGW and peer < 0:
        peer = tgw_peer(v, target, p.src_ip)  # the peer is in a VPC behind a transit gateway
    if kind == T_GATEWAY_ENDPOINT:
        return from_gateway_endpoint(v, r, w, target)
    if kind == T_PEERING:
        if v.pcx_peer_vpc[target] >= 0:  # the peer VPC's ENI answers, back over the connection
            peer = eni_at(v, p.src_ip, v.pcx_peer_vpc[target])
            return peer if peer >= 0 else finish(r, w, R_NO_ENI_AT_ADDRESS, -1)
        # a peer VPC not in the network: the answer comes in over the connection to the ENI
        # that sent the request on (the Hyperplane ENI, or the NAT gateway that translated it)
        hop(r, w, H_PEERING, target >> 1, -1, v.pcx_active[target], 1, eni, 1)
        return arrive(v, r, w, eni, -1)
    if kind == T_ENI and target >= 0:
        # the request ended at the appliance it was routed to (even when another ENI holds the
        # address): the appliance answers
        return target
    if peer >= 0:
        return peer
    public = public_of(v, p.dst_ip)  # from the internet: a NAT gateway's Elastic IP
    if public:
        p.dst_ip = public
        if kind == T_IGW:
            # the request turned around at the internet gateway (hairpin): the peer is the ENI
            # of that public address, which answers from its private one through its own subnet
            peer = public_at(v, p.src_ip, &private)
            if peer >= 0 and v.eni_kind[peer] != ENI_NAT_GATEWAY:
                p.src_ip = private
                return peer
    return from_internet(v, r, w)


cdef int start(const vpc_t* v, run_t* r, packet_walk_t* w) noexcept nogil:
    """Where a row begins: the ENI it is sent from, or DONE / STOPPED."""
    cdef int8_t origin = r.origin[w.row]
    cdef int32_t index = r.index[w.row], eni
    cdef uint32_t ip
    cdef uint16_t port
    cdef uint8_t status
    cdef nat_t* pool
    if origin == O_ENI:
        return index
    if origin == O_INTERNET:
        return from_internet(v, r, w)
    if origin == O_GATEWAY_ENDPOINT:
        return from_gateway_endpoint(v, r, w, index)
    if origin == O_REPLY_TO_FUNCTION:
        return reply_to_function(v, r, w, index)
    # O_FUNCTION: V2N on the pool's table, then the Hyperplane ENI holding the new source
    pool = v.pools[index]
    ip = w.p.src_ip
    port = w.p.src_port
    if not nat_translate(pool, w.p, DIR_OUT, v.pool_stops[index] and w.row != r.nostop_row, &status, r.pickup):
        r.stop = STOP_NO_MEMORY if pool.oom else STOP_POOL_FULL
        r.stop_pool = index
        r.stop_status = status
        return STOPPED
    memo_check_packet(r, w.p, status)
    hop(r, w, H_V2N_OUT, index, status, <int32_t>ip, port, <int32_t>w.p.src_ip, w.p.src_port)
    if status >= S_FIRST_REFUSAL:
        return finish(r, w, v.v2n_reason[status], -1)
    eni = m_eni_at(v, r, w.p.src_ip, v.pool_vpc[index])
    if eni < 0:  # an address no ENI of this compilation holds (cannot happen)
        return finish(r, w, R_ENI_CAPACITY, -1)
    return eni


cdef Py_ssize_t walk_rows(const vpc_t* v, run_t* r, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    """Walk rows begin..end-1; returns ``end``, or the row where it stopped (``r.stop``)."""
    cdef Py_ssize_t i
    cdef packet_walk_t w
    cdef int next_eni, sends
    cdef flow_t* f
    for i in range(begin, end):
        # the first table a function's packet meets is its pool's: fetch it early (the later
        # ones depend on this packet's translations)
        if i + AHEAD < end and r.origin[i + AHEAD] == O_FUNCTION:
            nat_prefetch(v.pools[r.index[i + AHEAD]], &r.out[i + AHEAD], DIR_OUT, 0)
        if i + AHEAD_CONN < end and r.origin[i + AHEAD_CONN] == O_FUNCTION:
            nat_prefetch(v.pools[r.index[i + AHEAD_CONN]], &r.out[i + AHEAD_CONN], DIR_OUT, 1)
        if r.flows != NULL:
            # the flow's slot (keyed on the row as it starts), then from it what the row will
            # look up first in the tracking and NAT gateway tables
            if i + AHEAD_FLOW < end:
                f = flow_slot(r, i + AHEAD_FLOW)
                __builtin_prefetch(f)
                __builtin_prefetch(<char*>f + 64)
                __builtin_prefetch(<char*>f + 128)
            if i + AHEAD_TRACK < end:
                look_ahead(v, r, i + AHEAD_TRACK, 0)
            if i + AHEAD_TRACK_LINE < end:
                look_ahead(v, r, i + AHEAD_TRACK_LINE, 1)
        if r.log:
            if r.hop_cap - r.n_hops < HOPS_PER_PACKET:
                r.stop = STOP_LOG_FULL
                return i
            r.first_hop[i] = r.n_hops
        w.row = i
        w.p = &r.out[i]
        w.pos = 0
        r.reason[i] = 0
        r.location[i] = -1
        flow_begin(r, i)
        next_eni = start(v, r, &w)
        sends = 0
        while next_eni >= 0:
            sends += 1
            if sends > MAX_SENDS:
                finish(r, &w, R_ROUTING_LOOP, next_eni)
                break
            next_eni = send(v, r, &w, next_eni)
        flow_end(r, i, next_eni != STOPPED)
        if next_eni == STOPPED:
            if r.log:
                r.n_hops = r.first_hop[i]
            return i
        if r.stop == STOP_NAT_RST:
            return i + 1  # this row is done; its answer is walked before the next one
    return end


#### the Python-facing class

_EMPTY = np.zeros(8, np.uint8)


@cython.final
cdef class Walker:
    """One compilation of the VPC and its stateful tables, ready to walk batches.

    Built by ``hyperplane.pipeline.Pipeline`` from a ``CompiledVpc``; holds every array it points into.
    """

    cdef vpc_t v
    cdef list keep                 # the arrays and objects v points into
    cdef tuple function_pools      # ... and the arrays of set_function_pools
    cdef nat_t** nat_ptrs
    cdef nat_t** pool_ptrs
    cdef ConntrackCore track
    cdef readonly Py_ssize_t n_enis, n_pools, n_endpoints, n_functions
    cdef flow_t* flows             # the flow memory (see "Flows remembered"), allocated on first use
    cdef int flow_bits
    cdef readonly Py_ssize_t flow_stores  # flows (re)written in its slots since it was allocated

    def __cinit__(self):
        self.nat_ptrs = NULL
        self.pool_ptrs = NULL
        self.flows = NULL

    cdef int _flow_memory(self) except -1:
        """Allocate the flow memory, or a larger one (empty: it is only a memory of lookups)
        when the flows written since it was allocated crowd it: four slots a flow, within
        FLOWS_MIN_BITS..FLOWS_MAX_BITS (slots are met at random: huge pages, as the tables)."""
        cdef int bits = FLOWS_MIN_BITS
        cdef size_t size
        while bits < FLOWS_MAX_BITS and (<Py_ssize_t>1 << bits) < 4 * self.flow_stores:
            bits += 1
        if self.flows != NULL and bits <= self.flow_bits:
            return 0
        size = (<size_t>1 << bits) * sizeof(flow_t)
        raw = <flow_t*>table_alloc(size)
        if raw == NULL:
            raise MemoryError()
        memset(raw, 0, size)
        free(self.flows)
        self.flows = raw
        self.flow_bits = bits
        self.flow_stores = 0
        return 0

    def __init__(self, vpc, nat_cores, pool_cores, pool_vpc, pool_of_eni, pool_stops,
                 ConntrackCore track not None, v2n_reason, nat_reason):
        cdef Py_ssize_t k
        cdef vpc_t* v = &self.v
        self.keep = []
        self.n_enis = v.n_enis = len(vpc.enis)
        v.eni_ip = <const uint32_t*>self._hold(vpc.eni_ip, np.uint32)
        v.eni_sd_check = <const uint8_t*>self._hold(vpc.eni_source_dest_check, np.uint8)
        v.eni_subnet = <const int32_t*>self._hold(vpc.eni_subnet, np.int32)
        v.eni_sg_set = <const int32_t*>self._hold(vpc.eni_sg_set, np.int32)
        v.eni_kind = <const int8_t*>self._hold(vpc.eni_kind, np.int8)
        v.eni_nat = <const int32_t*>self._hold(vpc.eni_nat, np.int32)
        v.eni_key = <const int32_t*>self._hold(vpc.eni_key, np.int32)
        v.pool_of_eni = <const int32_t*>self._hold(pool_of_eni, np.int32)
        v.subnet_route_table = <const int32_t*>self._hold(vpc.subnet_route_table, np.int32)
        v.subnet_nacl = <const int32_t*>self._hold(vpc.subnet_nacl, np.int32)
        v.subnet_dns = <const uint32_t*>self._hold(vpc.subnet_dns, np.uint32)
        v.subnet_vpc = <const int32_t*>self._hold(vpc.subnet_vpc, np.int32)
        v.n_ranges = len(vpc._subnet_lo)
        v.subnet_lo = <const uint64_t*>self._hold(vpc._subnet_lo, np.uint64)
        v.subnet_hi = <const uint64_t*>self._hold(vpc._subnet_hi, np.uint64)
        v.subnet_idx = <const int32_t*>self._hold(vpc._subnet_idx, np.int32)
        v.n_private = len(vpc._private_keys)
        v.private_keys = <const uint64_t*>self._hold(vpc._private_keys, np.uint64)
        v.private_key_eni = <const int32_t*>self._hold(vpc._private_key_eni, np.int32)
        v.n_public = len(vpc._public_ips)
        v.public_ips = <const uint32_t*>self._hold(vpc._public_ips, np.uint32)
        v.public_eni = <const int32_t*>self._hold(vpc._public_eni, np.int32)
        v.public_private = <const uint32_t*>self._hold(vpc._public_private, np.uint32)
        v.n_with_public = len(vpc._private_with_public)
        v.private_with_public = <const uint32_t*>self._hold(vpc._private_with_public, np.uint32)
        v.public_of_private = <const uint32_t*>self._hold(vpc._public_of_private, np.uint32)
        v.n_nats = len(vpc.nat_ids)
        v.nat_public = <const uint8_t*>self._hold(vpc.nat_public, np.uint8)
        v.nat_eni = <const int32_t*>self._hold(vpc.nat_eni, np.int32)
        self.n_endpoints = v.n_endpoints = len(vpc.endpoint_vpc)
        v.endpoint_vpc = <const int32_t*>self._hold(vpc.endpoint_vpc, np.int32)
        v.route_offset = <const int64_t*>self._hold(vpc._route_offset, np.int64)
        v.target_flat = <const int8_t*>self._hold(vpc._target_flat, np.int8)
        v.target_index_flat = <const int32_t*>self._hold(vpc._target_index_flat, np.int32)
        v.pcx_peer_vpc = <const int32_t*>self._hold(vpc.pcx_peer_vpc, np.int32)
        v.pcx_active = <const uint8_t*>self._hold(vpc.pcx_active, np.uint8)
        v.n_pcx_ranges = len(vpc._pcx_lo)
        v.pcx_lo = <const uint64_t*>self._hold(vpc._pcx_lo, np.uint64)
        v.pcx_hi = <const uint64_t*>self._hold(vpc._pcx_hi, np.uint64)
        self.keep += [vpc.routes.kernel, vpc.security_groups.kernel, vpc.network_acls.kernel]
        v.routes = route_tables_of(vpc.routes.kernel)
        v.sgs = rule_tables_of(vpc.security_groups.kernel)
        v.nacls = rule_tables_of(vpc.network_acls.kernel)
        v.v2n_reason = <const uint8_t*>self._hold(v2n_reason, np.uint8)
        v.nat_reason = <const uint8_t*>self._hold(nat_reason, np.uint8)
        v.subnet_az = <const int32_t*>self._hold(vpc.subnet_az, np.int32)
        v.n_tgw_atts = len(vpc.tgw_attachment_ids)
        v.att_tgw = <const int32_t*>self._hold(vpc.att_tgw, np.int32)
        v.att_emulated = <const uint8_t*>self._hold(vpc.att_emulated, np.uint8)
        v.att_vpc = <const int32_t*>self._hold(vpc.att_vpc, np.int32)
        v.att_rtb = <const int32_t*>self._hold(vpc.att_rtb, np.int32)
        v.att_subnet_off = <const int32_t*>self._hold(vpc.att_subnet_off, np.int32)
        v.att_subnets = <const int32_t*>self._hold(vpc.att_subnets, np.int32)
        self.keep.append(vpc.tgw_routes.kernel)
        v.tgw_routes = route_tables_of(vpc.tgw_routes.kernel)
        v.tgw_route_offset = <const int64_t*>self._hold(vpc.tgw_route_offset, np.int64)
        v.tgw_route_att = <const int32_t*>self._hold(vpc.tgw_route_att, np.int32)
        v.tgw_rtb_fallback = <const int32_t*>self._hold(vpc.tgw_rtb_fallback, np.int32)

        nat_cores = list(nat_cores)
        pool_cores = list(pool_cores)
        if len(nat_cores) != v.n_nats:
            raise ValueError(f"{len(nat_cores)} NAT gateway tables for {v.n_nats} NAT gateways")
        self.keep += nat_cores + pool_cores
        self.nat_ptrs = <nat_t**>malloc((len(nat_cores) + 1) * sizeof(nat_t*))
        self.pool_ptrs = <nat_t**>malloc((len(pool_cores) + 1) * sizeof(nat_t*))
        if self.nat_ptrs == NULL or self.pool_ptrs == NULL:
            raise MemoryError()
        for k in range(len(nat_cores)):
            self.nat_ptrs[k] = &(<NatCore?>nat_cores[k]).st
        for k in range(len(pool_cores)):
            self.pool_ptrs[k] = &(<NatCore?>pool_cores[k]).st
        v.nats = self.nat_ptrs
        v.pools = self.pool_ptrs
        self.n_pools = v.n_pools = len(pool_cores)
        v.pool_vpc = <const int32_t*>self._hold(pool_vpc, np.int32)
        v.pool_stops = <const uint8_t*>self._hold(pool_stops, np.uint8)
        self.track = track
        v.track = &track.st
        self.set_function_pools([])

    cdef const void* _hold(self, value, dtype) except NULL:
        """The data of ``value`` as a one-dimensional C array of ``dtype``, kept alive with the
        walker (empty arrays point to a dummy that is never read)."""
        a = np.ascontiguousarray(value, dtype=dtype)
        if a.ndim != 1:
            raise ValueError("the walker's tables are one-dimensional")
        self.keep.append(a)
        cdef const uint8_t[::1] data = a.view(np.uint8) if a.size else _EMPTY
        return &data[0]

    def __dealloc__(self):
        free(self.nat_ptrs)
        free(self.pool_ptrs)
        free(self.flows)

    def set_function_pools(self, pools_by_function):
        """The pool indexes of each function (REPLY_TO_FUNCTION rows: index = function number)."""
        counts = [len(p) for p in pools_by_function]
        off = np.zeros(len(counts) + 1, np.int32)
        off[1:] = np.cumsum(counts)
        flat = np.array([k for p in pools_by_function for k in p])
        if flat.size and flat.dtype.kind not in "iu":
            raise TypeError(f"pool indexes are integers, not {flat.dtype}")
        flat = flat.astype(np.int32)
        if flat.size and (flat.min() < 0 or flat.max() >= self.n_pools):
            raise ValueError(f"a function's pool index is outside 0..{self.n_pools - 1}")
        flat = np.append(flat, np.int32(0))  # never empty: the pointer below is always valid
        cdef const int32_t[::1] off_view = off, flat_view = flat
        self.function_pools = (off, flat)  # replaced on every call: what v points into
        self.n_functions = self.v.n_functions = len(counts)
        self.v.fn_off = &off_view[0]
        self.v.fn_pools = &flat_view[0]

    def check_origins(self, const int8_t[::1] origin not None, const int32_t[::1] index not None):
        """A ValueError naming the first row whose origin or origin index is not valid."""
        cdef Py_ssize_t i, n = origin.shape[0], bad = -1
        cdef int8_t o
        cdef int32_t k
        cdef Py_ssize_t limit
        if index.shape[0] != n:
            raise ValueError(f"origin and origin_index must have one value per row ({n} and {index.shape[0]})")
        with nogil:
            for i in range(n):
                o = origin[i]
                k = index[i]
                if o == O_ENI:
                    limit = self.n_enis
                elif o == O_FUNCTION:
                    limit = self.n_pools
                elif o == O_REPLY_TO_FUNCTION:
                    limit = self.n_functions
                elif o == O_GATEWAY_ENDPOINT:
                    limit = self.n_endpoints
                    if k == -1:
                        continue
                elif o == O_INTERNET:
                    continue
                else:
                    bad = i
                    break
                if k < 0 or k >= limit:
                    bad = i
                    break
        if bad >= 0:
            names = {O_ENI: "an ENI index", O_FUNCTION: "a pool index", O_REPLY_TO_FUNCTION: "a function number",
                     O_GATEWAY_ENDPOINT: "an endpoint index (or -1)"}
            what = names.get(origin[bad])
            if what is None:
                raise ValueError(f"origin[{bad}] = {origin[bad]} is not an Origin (0..{len(Origin) - 1})")
            raise ValueError(f"origin_index[{bad}] = {index[bad]} is not {what} of this network")

    def walk(self, packet_t[::1] out not None, const int8_t[::1] origin not None,
             const int32_t[::1] index not None, uint8_t[::1] reason not None, int32_t[::1] location not None,
             int64_t[::1] first_hop, hops, Py_ssize_t n_hops, Py_ssize_t begin,
             Py_ssize_t nostop_row=-1, bint pickup=False, bint remember=True):
        """Walk rows ``begin:`` of ``out`` in place. ``pickup``: mid-stream pickup on the NAT
        tables (V2N and NAT gateways): an outbound TCP ACK of no connection opens it, established.
        ``remember`` False: the fast path is off (every lookup is done; the flow memory is neither
        read nor written); the results are the same (``hyperplane.dataplane.walk.FAST_PATH``).
        ``hops`` None: verdict-only, nothing is logged (``first_hop`` may be None, ``n_hops`` is
        returned as given); the verdicts and translations are the same as with a log.

        Returns ``(row, stop, n_hops, pool, status)``: the row it stopped at (``len(out)`` when
        done), why (``STOPS``), the hop log's length, and for a full pool its index and the
        V2N status (for ``STOP_NAT_RST``: the NAT gateway's ENI that answers the row before
        ``row`` with an RST)."""
        cdef Py_ssize_t n = out.shape[0]
        cdef run_t r
        cdef Py_ssize_t stopped
        cdef uint8_t[::1] log = None
        cdef Py_ssize_t cap = 0
        r.log = hops is not None
        if r.log:
            if not isinstance(hops, np.ndarray) or hops.dtype != HOP or hops.ndim != 1 or not hops.flags.c_contiguous:
                raise TypeError("hops must be a one-dimensional, C-contiguous array of hyperplane._walk.HOP")
            if first_hop is None:
                raise TypeError("first_hop must be an int64 array when there is a hop log")
            log = hops.view(np.uint8)
            cap = log.shape[0] // sizeof(hop_t)
        if not (origin.shape[0] == index.shape[0] == reason.shape[0] == location.shape[0] == n
                and (first_hop is None or first_hop.shape[0] == n)):
            raise ValueError("out, origin, index, reason, location and first_hop must have one row per packet")
        if not 0 <= begin <= n or (r.log and not 0 <= n_hops <= cap):
            raise ValueError(f"begin ({begin}) or n_hops ({n_hops}) outside the batch or the hop log")
        self.check_origins(origin, index)  # the loop indexes tables with them
        r.stream = r.log and hops.ctypes.data % 16 == 0
        if n == begin:
            return n, STOP_NONE, n_hops, -1, 0
        r.out = &out[0]
        r.origin = &origin[0]
        r.index = &index[0]
        r.reason = &reason[0]
        r.location = &location[0]
        r.first_hop = &first_hop[0] if first_hop is not None else NULL
        r.hops = <hop_t*>&log[0] if cap else NULL
        r.n_hops = n_hops
        r.hop_cap = cap
        r.nostop_row = nostop_row
        r.pickup = pickup
        r.stop = STOP_NONE
        r.stop_pool = -1
        r.stop_status = 0
        r.flows = NULL
        r.flow_mask = 0
        r.flow_stores = 0
        r.flow = NULL
        r.memo = NULL
        r.memo_k = r.memo_live = 0
        if remember:
            self._flow_memory()
            r.flows = self.flows
            r.flow_mask = (<uint64_t>1 << self.flow_bits) - 1
        self.track._enter()
        self.track.st.pickup = pickup  # security-group tracking picks up as the NAT tables do
        try:
            with nogil:
                stopped = walk_rows(&self.v, &r, begin, n)
                hp_stream_fence()
        finally:
            self.flow_stores += r.flow_stores
            self.track.st.pickup = 0
            self.track.busy = 0
        return stopped, r.stop, r.n_hops, r.stop_pool, r.stop_status
