"""The data plane: a batch of packet records walked through the VPC, one packet at a time.

Each packet goes through the whole VPC before the next one, in the compiled, GIL-free loop of
``hyperplane._core._walk`` (its docstring is the theory of operation), so every packet meets the
stateful tables (V2N and NAT gateway connections, security-group tracking) exactly as the
earlier ones left them, at its own time: a SYN-ACK right after its SYN, a FIN, a UDP answer.
The walk, per packet:

  V2N NAT on the Hyperplane ENI (from a function)
  -> send from an ENI: DNS resolver? -> SG egress (stateful) -> route (LPM) -> NACL out
  -> target: local/eni: arrive at the ENI: NACL in -> SG ingress -> (Hyperplane ENI: V2N back)
             nat: NACL in at the NAT's subnet -> NAT gateway -> send again from the NAT's ENI
             igw: public IP mapping -> internet (or back in: hairpin);  vpce: gateway
             endpoint;  pcx: into the peer VPC, arrive at its ENI (or exit: a peer not in
             the network);  blackhole;  no route
  From the internet: the internet gateway maps a public address to its ENI or NAT gateway.

What each stage decided goes to a hop log, read here as ``Facts``: a trace is a rendering of
those facts, never a second evaluation, and flow logs are derived from them. This module drives
the compiled loop: it creates an overflow Hyperplane ENI when a pool is full (and walks on with
the VPC recompiled), grows the hop log, and decodes it. ``tests/dataplane_reference.py`` is the
plain-Python model of the same walk that the tests compare it with.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hyperplane._core import _codes, _walk
from hyperplane.codes import Code
from hyperplane.errors import NoHopsError
from hyperplane.tables.nat import ConnectionTable, NatStatus
from hyperplane.reasons import Reason
from hyperplane.dataplane.compiled_vpc import CompiledVpc
from hyperplane.records import PACKET, RST



class Origin(Code):
    """Where a walk starts; the origin index says which one (values: ``_codes.Origin``)."""

    ENI = _codes.Origin.O_ENI  # sent by an ENI (origin index: the ENI)
    INTERNET = _codes.Origin.O_INTERNET  # arrives from the internet at the internet gateway
    FUNCTION = _codes.Origin.O_FUNCTION  # from an execution environment through a Hyperplane ENI pool (index: pool)
    GATEWAY_ENDPOINT = _codes.Origin.O_GATEWAY_ENDPOINT  # from a service behind a gateway endpoint (index: endpoint)
    REPLY_TO_FUNCTION = _codes.Origin.O_REPLY_TO_FUNCTION  # a peer's answer to an execution environment (index: function number)


_U8, _U16, _I8, _I32, _U32 = np.uint8, np.uint16, np.int8, np.int32, np.uint32
# tracked: a live tracked flow let the packet through; untracked: the rules did, and the flow is
# one AWS does not track (nothing remembered: EC2 "Untracked connections")
_SG = (("eni", _I32), ("sg_set", _I32), ("allowed", _U8), ("rule", _I32), ("tracked", _U8), ("untracked", _U8))
_NACL = (("subnet", _I32), ("nacl", _I32), ("allowed", _U8), ("rule_number", _I32))
_NAT = (("nat", _I32), ("status", _U8), ("src_ip", _U32), ("src_port", _U16), ("dst_ip", _U32), ("dst_port", _U16))
# the columns of each stage's facts, in the order of hop_t.v (see hyperplane/_walk.pyx)
COLUMNS: dict[str, tuple[tuple[str, type], ...]] = {
    "v2n_out": (("pool", _I32), ("status", _U8), ("src_ip", _U32), ("src_port", _U16), ("to_ip", _U32),
                ("to_port", _U16)),
    "igw_in": (("public_ip", _U32), ("private_ip", _U32), ("eni", _I32), ("refused", _U8)),
    "endpoint_in": (("endpoint", _I32), ("eni", _I32)),
    "dns": (("subnet", _I32),),
    "sg_egress": _SG,
    "route": (("eni", _I32), ("subnet", _I32), ("table", _I32), ("route", _I32), ("target", _I8),
              ("target_index", _I32)),
    "nacl_out": _NACL,
    "igw_out": (("eni", _I32), ("private_ip", _U32), ("public_ip", _U32), ("refused", _U8)),
    "nat_out": _NAT,
    "nat_in": _NAT,
    "nacl_in": _NACL,
    "sg_ingress": _SG,
    "v2n_in": (("pool", _I32), ("status", _U8), ("dst_ip", _U32), ("dst_port", _U16), ("to_ip", _U32),
               ("to_port", _U16)),
    # a peering connection crossed (into the peer VPC; from_peer: a reply in from an absent one)
    "peering": (("pcx", _I32), ("peer_vpc", _I32), ("active", _U8), ("in_peer_cidr", _U8), ("eni", _I32),
                ("from_peer", _U8)),
    # a transit gateway: the attachment it came in by (-1: the VPC has none), that attachment's
    # subnet in the sender's zone (-1: none), its route table, route and target attachment
    "tgw_in": (("attachment", _I32), ("subnet", _I32), ("table", _I32), ("route", _I32), ("target", _I32),
               ("tgw", _I32)),
    # ... and out by the target attachment's subnet: that subnet's route table and route
    "tgw_out": (("attachment", _I32), ("subnet", _I32), ("table", _I32), ("route", _I32), ("target", _I8),
                ("target_index", _I32)),
}
assert tuple(COLUMNS) == tuple(s for s in _walk.STAGES if s)
_STAGE_COLUMNS = [COLUMNS.get(s, ()) for s in _walk.STAGES]
# The walker's fast path for the packets of a flow it has walked before (``_walk.pyx``, "Flows
# remembered"): it replays the flow's stateless lookups and does every stateful step for real.
# False turns it off (the tests compare both: every result, hop log and table is the same).
FAST_PATH = True
HOPS_PER_ROW = 10  # the log's first allocation; it grows when a batch needs more
# A hop log of a result that is gone, for the next batch: touching fresh memory costs more than
# the walk itself on a VM (every page is faulted in and zeroed), reused memory does not. One is
# kept, up to SPARE_LOG_BYTES (a batch of about 1.5M packets): the largest, so that a small
# batch between two large ones does not cost the large ones theirs.
_SPARE_LOGS: list[np.ndarray] = []
SPARE_LOG_BYTES = 512 << 20


def _hop_log(size: int) -> np.ndarray:
    for k, log in enumerate(_SPARE_LOGS):
        if len(log) >= size:
            return _SPARE_LOGS.pop(k)
    return np.empty(size, _walk.HOP)


def _recycle(log: np.ndarray) -> None:
    if log.nbytes <= SPARE_LOG_BYTES and (not _SPARE_LOGS or len(_SPARE_LOGS[0]) < len(log)):
        _SPARE_LOGS[:] = [log]


class Facts:
    """What each stage decided for each packet of a batch, read from the compiled hop log.

    ``of(row)`` gives one packet's stages in order, with their values (named by ``COLUMNS``);
    ``hops`` is the log itself (``hyperplane._core._walk.HOP`` rows: row, stage code, position in the
    packet's path, six values), the hops of row k being ``hops[first_hop[k]:first_hop[k + 1]]``.
    ``Facts.none(n)``: the facts of a verdict-only walk, which has none: reading them raises
    ``NoHopsError``.
    """

    def __init__(self, log: np.ndarray, n_hops: int, first_hop: np.ndarray) -> None:
        self._hops: np.ndarray | None = log[:n_hops]
        self._first_hop: np.ndarray | None = first_hop  # len(rows) + 1 offsets into hops
        weakref.finalize(self, _recycle, log)  # the log is reused once these facts are gone

    @classmethod
    def none(cls) -> Facts:
        """The facts of a batch walked with ``hops=False``: there are none to read."""
        facts = cls.__new__(cls)
        facts._hops = facts._first_hop = None
        return facts

    @property
    def recorded(self) -> bool:
        """False for a verdict-only walk (``hops=False``), which logged no stage."""
        return self._hops is not None

    @property
    def hops(self) -> np.ndarray:
        if self._hops is None:
            raise NoHopsError(_NO_HOPS)
        return self._hops

    @property
    def first_hop(self) -> np.ndarray:
        if self._first_hop is None:
            raise NoHopsError(_NO_HOPS)
        return self._first_hop

    def of(self, row: int) -> list[tuple[str, dict]]:
        out = []
        for h in self.hops[self.first_hop[row]:self.first_hop[row + 1]]:
            columns = _STAGE_COLUMNS[h["stage"]]
            values = h["v"].astype(np.int64)
            out.append((_walk.STAGES[h["stage"]], {name: int(np.asarray(v).astype(dt))
                                                  for (name, dt), v in zip(columns, values)}))
        return out

    def spread(self, rows: np.ndarray, n: int) -> Facts:
        """These facts as those of a batch of ``n`` rows in which this batch's rows were
        ``rows`` (ascending); the other rows have none."""
        hops = self.hops.copy()
        hops["row"] = rows[hops["row"]]
        counts = np.zeros(n, np.int64)
        counts[rows] = np.diff(self.first_hop)
        first = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=first[1:])
        return Facts(hops, len(hops), first)


_NO_HOPS = ("this batch was walked verdict-only (Network.process(..., hops=False)), which records no "
            "stage: walk it with hops=True (the default) for traces, flow logs and deciding rules")


@dataclass
class BatchResult:
    packets: np.ndarray  # PACKET rows after every translation
    reason: np.ndarray  # uint8 Reason per row
    location: np.ndarray  # int32 ENI index where it was delivered or stopped (-1: none)
    facts: Facts
    vpc: CompiledVpc | None = None  # the compiled VPC the indexes refer to
    # row -> what the network sent back in answer to it, walked as a batch of its own right
    # after that row: a NAT gateway's RST for a connection it no longer has
    answers: dict[int, BatchResult] = field(default_factory=dict)

    @property
    def disposition(self) -> np.ndarray:
        return _DISPOSITION[self.reason]

    @property
    def delivered(self) -> np.ndarray:
        return DELIVERED_BY_REASON[self.reason]


_DISPOSITION = np.zeros(256, np.uint8)
DELIVERED_BY_REASON = np.zeros(256, bool)  # Reason code -> counts as delivered
for _r in Reason:
    _DISPOSITION[_r] = _r.disposition
    DELIVERED_BY_REASON[_r] = _r.disposition.delivered

_V2N_FAILURE = {
    NatStatus.UNSOLICITED: Reason.V2N_UNSOLICITED_INBOUND,
    NatStatus.NO_CONNECTION: Reason.V2N_NO_CONNECTION,
    NatStatus.RST_NO_CONNECTION: Reason.V2N_NO_CONNECTION,
    NatStatus.UNSUPPORTED_PROTOCOL: Reason.V2N_UNSUPPORTED_PROTOCOL,
    NatStatus.ADDRESS_FULL: Reason.ENI_CAPACITY,
    NatStatus.PORTS_EXHAUSTED: Reason.ENI_CAPACITY,
}
_NAT_FAILURE = {
    NatStatus.UNSOLICITED: Reason.NAT_UNSOLICITED_INBOUND,
    NatStatus.NO_CONNECTION: Reason.NAT_NO_CONNECTION,
    NatStatus.RST_NO_CONNECTION: Reason.NAT_NO_CONNECTION_RST,
    NatStatus.UNSUPPORTED_PROTOCOL: Reason.NAT_UNSUPPORTED_PROTOCOL,
    NatStatus.ADDRESS_FULL: Reason.NAT_PORT_ALLOCATION_ERROR,
    NatStatus.PORTS_EXHAUSTED: Reason.NAT_PORT_ALLOCATION_ERROR,
}


def _failure_reasons(table: dict[NatStatus, Reason]) -> np.ndarray:
    out = np.zeros(32, np.uint8)
    for status, reason in table.items():
        out[status] = reason
    return out


_V2N_REASON = _failure_reasons(_V2N_FAILURE)
_NAT_REASON = _failure_reasons(_NAT_FAILURE)


class Pipeline:
    """One compilation of the VPC with its stateful parts, ready to walk batches."""

    def __init__(self, vpc: CompiledVpc, nat_tables: Sequence[ConnectionTable],
                 pools: Sequence[ConnectionTable], pool_of_eni: dict[int, int], conntrack,
                 refresh: Callable[[], Pipeline] | None = None, pool_vpc: Sequence[int] | None = None) -> None:
        self.vpc = vpc
        self.refresh = refresh  # the pipeline to walk on with once V2N may have added ENIs
        self.nat_tables = nat_tables  # one per NAT gateway, in vpc.nat_ids order
        self.pools = pools  # V2N tables, by pool index
        self.pool_vpc = np.asarray(pool_vpc if pool_vpc is not None else np.zeros(len(pools)), dtype=np.int32)
        # ENI index -> pool index of its Hyperplane ENI pool (-1: not a live Hyperplane ENI)
        self.pool_of_eni = np.full(len(vpc.enis), -1, np.int32)
        for eni, pool in pool_of_eni.items():
            self.pool_of_eni[eni] = pool
        self.conntrack = conntrack
        self._walker: _walk.Walker | None = None

    @property
    def walker(self) -> _walk.Walker:
        """The compiled walker over these arrays and tables (built on first use)."""
        if self._walker is None:
            self._walker = _walk.Walker(
                self.vpc, [t._core for t in self.nat_tables], [t._core for t in self.pools], self.pool_vpc,
                self.pool_of_eni, [t.on_full is not None for t in self.pools], self.conntrack._core,
                _V2N_REASON, _NAT_REASON)
        return self._walker

    def run(self, packets: np.ndarray, origin: np.ndarray, origin_index: np.ndarray,
            function_pools: Sequence[list[int]] = (), in_place: bool = False, answer: bool = True,
            pickup: bool = False, hops: bool = True) -> BatchResult:
        """Walk a batch row by row. ``origin``/``origin_index`` as in ``Network.process``;
        ``function_pools[k]``: the pool indexes of function k (``Origin.REPLY_TO_FUNCTION``);
        ``in_place``: translate ``packets`` themselves rather than a copy; ``answer``: walk
        what the network answers a row with (a NAT gateway's RST) right after that row, into
        ``BatchResult.answers`` (an answer's own answers are not walked); ``pickup``: mid-stream
        pickup on the NAT tables (``Network.process``); ``hops`` False: verdict-only, no hop log
        (the same verdicts, translations and answers; ``facts`` has none, ``Facts.none``)."""
        n = len(packets)
        pipeline = self
        core = self.walker
        core.set_function_pools(list(function_pools))
        out = packets if in_place else packets.copy()
        reason = np.zeros(n, np.uint8)
        location = np.full(n, -1, np.int32)
        first_hop = np.zeros(n + 1, np.int64) if hops else None
        log = _hop_log(n * HOPS_PER_ROW + _walk.PACKET_HOPS) if hops else None  # room for one longest walk
        begin, n_hops, nostop = 0, 0, -1
        answers: dict[int, BatchResult] = {}
        while True:
            row, stop, n_hops, pool, status = core.walk(out, origin, origin_index, reason, location,
                                                        None if first_hop is None else first_hop[:n], log,
                                                        n_hops, begin, nostop, pickup, FAST_PATH)
            if stop == _codes.Stop.STOP_NAT_RST:  # row - 1 is done: the NAT gateway's ENI `pool` answers it
                if answer:
                    answers[row - 1] = pipeline.run(nat_rst(out[row - 1]), np.array([Origin.ENI], np.int8),
                                                    np.array([pool], np.int32), function_pools, answer=False,
                                                    pickup=pickup, hops=hops)
                    core.set_function_pools(list(function_pools))
                begin, nostop = row, -1
                if row == n:
                    break
                continue
            if row == n:
                break
            begin, nostop = row, -1
            if stop == _codes.Stop.STOP_LOG_FULL:
                assert log is not None  # a walk without a log never runs out of it
                grown = _hop_log(2 * len(log))
                grown[:n_hops] = log[:n_hops]
                _recycle(log)
                log = grown
            elif stop == _codes.Stop.STOP_NO_MEMORY:
                raise MemoryError(f"a connection table cannot grow (at row {row} of the batch)")
            else:  # STOP_POOL_FULL: every Hyperplane ENI of the pool is full: Lambda adds one (or cannot)
                table = pipeline.pools[pool]
                before = len(table.addresses)
                now = max(float(packets["time"][row]), table.now)
                full = table.on_full
                if full is not None and full(table, now, NatStatus(status)) and len(table.addresses) > before:
                    if pipeline.refresh is not None:  # walk on with the new ENI compiled in
                        pipeline = pipeline.refresh()
                        core = pipeline.walker
                        core.set_function_pools(list(function_pools))
                else:
                    nostop = row  # refused: this row is walked without stopping
        if log is None or first_hop is None:
            return BatchResult(out, reason, location, Facts.none(), pipeline.vpc, answers)
        first_hop[n] = n_hops
        return BatchResult(out, reason, location, Facts(log, n_hops, first_hop), pipeline.vpc, answers)


def nat_rst(refused: np.void) -> np.ndarray:
    """The RST a NAT gateway answers a TCP packet of a connection it no longer has with, as a
    row of its own: from the packet's destination to its sender (at the gateway: the address and
    port the inside sent from), at the packet's time. AWS: "When a connection times out, a NAT
    gateway returns an RST packet to any resources behind the NAT gateway that attempt to
    continue the connection (it does not send a FIN packet)." (vpc-nat-comparison)"""
    rst = np.zeros(1, PACKET)
    rst["time"] = refused["time"]
    rst["src_ip"], rst["dst_ip"] = refused["dst_ip"], refused["src_ip"]
    rst["src_port"], rst["dst_port"] = refused["dst_port"], refused["src_port"]
    rst["length"], rst["proto"], rst["flags"] = 40, refused["proto"], RST
    return rst
