# Every code that the compiled core and the Python side both use, declared once (issue 10).
#
# Each family is a ``cpdef enum``: the compiled modules cimport its constants (C has one flat
# namespace for enum members, hence the prefixes), and Cython 3 turns each named enum into an
# ``IntEnum`` subclass of ``hyperplane._core._codes`` (members keep the prefixed names). The
# public Python enums (``hp.Reason``, ``hp.NatStatus``, ``Origin``, ``Target``, ``EniKind``,
# ``Direction``, ...) take their values from here by name: a number is written only in this file,
# and tests/test_codes.py checks that every public enum has exactly its family's members.

# Why a packet ended where it did (hyperplane.reasons.Reason, which adds the disposition, the
# Reachability Analyzer explanation and the text). Listed in the public enum's order.
cpdef enum Reason:
    # delivered
    R_DELIVERED = 1
    R_DELIVERED_TO_FUNCTION = 2
    R_DELIVERED_TO_GATEWAY_ENDPOINT = 3
    R_DELIVERED_TO_DNS_RESOLVER = 4
    R_EXITED_TO_INTERNET = 5
    R_FORWARDED_TO_PEERING = 6
    # filters
    R_SG_EGRESS_DENY = 10
    R_NACL_OUT_DENY = 11
    R_NACL_IN_DENY = 12
    R_SG_INGRESS_DENY = 13
    R_SOURCE_DEST_CHECK_OUT = 14
    R_SOURCE_DEST_CHECK_IN = 15
    # routing
    R_NO_ROUTE = 20
    R_BLACKHOLE_ROUTE = 21
    R_NO_ENI_AT_ADDRESS = 22
    R_UNMODELLED_TARGET = 23
    R_NO_PUBLIC_IP = 24
    R_PRIVATE_NAT_TO_INTERNET = 25
    R_NOT_A_VPC_PUBLIC_ADDRESS = 26
    R_NO_VPC_ACCESS = 27
    R_GATEWAY_ENDPOINT_PROTOCOL = 28
    R_ROUTING_LOOP = 29
    # Hyperplane ENI (V2N NAT)
    R_V2N_UNSOLICITED_INBOUND = 30
    R_V2N_NO_CONNECTION = 31
    R_V2N_UNSUPPORTED_PROTOCOL = 32
    R_ENI_CAPACITY = 33
    # NAT gateway
    R_NAT_UNSOLICITED_INBOUND = 40
    R_NAT_NO_CONNECTION_RST = 41
    R_NAT_UNSUPPORTED_PROTOCOL = 42
    R_NAT_NO_CONNECTION = 44
    R_NAT_PORT_ALLOCATION_ERROR = 43
    # Lambda
    R_FUNCTION_PENDING = 50
    R_FUNCTION_INACTIVE = 51
    R_FUNCTION_FAILED = 52
    # packets the emulator does not carry
    R_NOT_IPV4 = 60
    R_IP_FRAGMENT = 61
    R_CAPTURE_TRUNCATED = 62
    R_CAPTURE_MALFORMED = 63
    # peering
    R_PCX_ADDRESS_NOT_IN_PEER_VPC = 70   # routed to a peering, but not to an address of the peer VPC
    R_PCX_NOT_ACTIVE = 71                # the peering connection is not active
    R_NO_SUBNET_AT_ADDRESS = 72          # inside a VPC CIDR, in none of its subnets
    # transit gateway
    R_TGW_NO_ROUTE = 75
    R_TGW_BLACKHOLE_ROUTE = 76
    R_TGW_NO_ATTACHMENT_IN_AZ = 77
    R_TGW_NOT_EMULATED_ATTACHMENT = 78
    R_TGW_NOT_ASSOCIATED = 79
    # internet gateway: the addresses it refuses (Reachability Analyzer's IGW_... codes)
    R_IGW_PRIVATE_DESTINATION = 80
    R_IGW_SHARED_DESTINATION = 81
    R_IGW_PRIVATE_SOURCE = 82
    R_IGW_SHARED_SOURCE = 83
    R_IGW_PRIVATE_ADDRESS_FROM_INTERNET = 84
    # link-local destinations (169.254.0.0/16): answered on the host, never routed
    R_DELIVERED_TO_LINK_LOCAL_SERVICE = 93
    R_LINK_LOCAL_NOT_ROUTED = 94

# Where a walk starts (hyperplane.dataplane.walk.Origin); the origin index says which one.
cpdef enum Origin:
    O_ENI = 0                      # sent by an ENI (index: the ENI)
    O_INTERNET = 1                 # arrives from the internet at the internet gateway
    O_FUNCTION = 2                 # from an execution environment through a Hyperplane ENI pool (index: pool)
    O_GATEWAY_ENDPOINT = 3         # from a service behind a gateway endpoint (index: endpoint)
    O_REPLY_TO_FUNCTION = 4        # a peer's answer to an execution environment (index: function number)

# What a route sends to (hyperplane.dataplane.compiled_vpc.Target).
cpdef enum Target:
    T_NONE = 0
    T_LOCAL = 1
    T_IGW = 2
    T_NAT = 3
    T_GATEWAY_ENDPOINT = 4
    T_ENI = 5
    T_PEERING = 6
    T_BLACKHOLE = 7
    T_UNMODELLED = 8
    T_TGW = 9                      # index: the transit gateway's attachment to the route table's VPC (-1: none)

# What an ENI is (hyperplane.dataplane.compiled_vpc.EniKind).
cpdef enum EniKind:
    ENI_PLAIN = 0                  # an instance, a database, a cache...
    ENI_INTERFACE_ENDPOINT = 1
    ENI_NAT_GATEWAY = 2
    ENI_HYPERPLANE = 3

# Which way a packet crosses a NAT table (hyperplane.tables.nat.Direction).
cpdef enum Direction:
    DIR_OUT = 0                    # from the inside (execution environment / instance behind the NAT gateway)
    DIR_IN = 1                     # from the remote side, to a translating address

# What a NAT table did with one packet (hyperplane.tables.nat.NatStatus). Codes below
# S_FIRST_REFUSAL pass the packet, the others refuse it.
cpdef enum NatStatus:
    S_TRANSLATED = 0               # belongs to a live connection
    S_CREATED = 1                  # opened a connection: an address and port were allocated
    S_CLOSED = 2                   # translated, and the connection ended with it (RST)
    S_NO_CONNECTION = 16           # from the inside, cannot open a connection (TCP without SYN, ICMP not echo)
    S_RST_NO_CONNECTION = 17       # same on a NAT gateway for TCP: the gateway answers with an RST
    S_UNSOLICITED = 18             # from the outside, matches no live connection (one-way NAT)
    S_UNSUPPORTED_PROTOCOL = 19    # not TCP/UDP (or ICMP on a NAT gateway)
    S_ADDRESS_FULL = 20            # every address holds its maximum of connections
    S_PORTS_EXHAUSTED = 21         # no address has a free port left for this destination

# A NAT connection's state (hyperplane.tables.nat.STATE_NAMES: "tcp-fin-out" for ST_TCP_FIN_OUT).
# 0 is a free slot. Each state has its own idle timeout (Timeouts.by_state(), N_STATES long).
cpdef enum ConnState:
    ST_DEAD = 0
    ST_TCP_OPENING = 1
    ST_TCP_ESTABLISHED = 2
    ST_TCP_FIN_OUT = 3             # the inside sent FIN
    ST_TCP_FIN_IN = 4              # the outside sent FIN
    ST_TCP_CLOSED = 5              # FIN both ways; lingers to absorb the last ACKs
    ST_UDP = 6
    ST_UDP_REPLIED = 7
    ST_ICMP = 8

# What a walker stage decided is logged under its code (hyperplane._core._walk.STAGES names them
# "v2n_out" for H_V2N_OUT; hyperplane.dataplane.walk.COLUMNS names their values).
cpdef enum Stage:
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
    H_PEERING = 13
    H_TGW_IN = 14                  # a transit gateway routes the packet (its attachment's route table)
    H_TGW_OUT = 15                 # it leaves the target attachment into that VPC (the subnet's route)

# Why the walker stopped before the end of a batch (hyperplane.dataplane.walk reads "pool_full"
# for STOP_POOL_FULL).
cpdef enum Stop:
    STOP_NONE = 0
    STOP_POOL_FULL = 1             # every Hyperplane ENI of a pool is full: the caller adds one
    STOP_LOG_FULL = 2              # the hop log may not hold another packet: the caller grows it
    STOP_NO_MEMORY = 3             # a table cannot grow
    STOP_NAT_RST = 4               # after the row: a NAT gateway answers it with an RST, which the caller walks

# Sizes and bits, as plain int constants.
cpdef enum:
    N_STATES = 9                   # len(ConnState): the NAT timeout table's length
    S_FIRST_REFUSAL = 16           # NatStatus codes from here on refuse the packet
    # the state bits of a tracked security-group flow (hyperplane.tables.conntrack); endpoint A
    # is the smaller (ip, port) of the two
    SEEN_A = 1
    SEEN_B = 2
    FIN_A = 4
    FIN_B = 8
    IMPLICIT_DENY_RULE = 32767     # the rule number of a NACL's "*" rule, which denies
