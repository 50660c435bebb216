"""The data plane as used: every packet walked through the whole VPC before the next one.

``hyperplane._walk`` (compiled, GIL-free) takes each row of a batch through the stages of
``hyperplane.pipeline`` — same stages, same kernels, same facts — one packet at a time, so every
packet meets the stateful tables exactly as the earlier ones left them (a SYN-ACK after its SYN,
at its own time). ``pipeline.py`` stays as the readable, stage-by-stage reference; the tests
check the two agree.

This module drives the compiled loop: it creates an overflow Hyperplane ENI when a pool is full
(and walks on with the VPC recompiled), grows the hop log, and turns the log into ``Facts``.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

from hyperplane import _walk
from hyperplane.nat import NatStatus
from hyperplane.pipeline import _NAT_REASON, _V2N_REASON, BatchResult, Pipeline
from hyperplane.reasons import Reason

for _name, _code in _walk.REASONS.items():  # the compiled copy of the codes must agree
    assert Reason[_name] == _code, _name

_U8, _U16, _I8, _I32, _U32 = np.uint8, np.uint16, np.int8, np.int32, np.uint32
_SG = (("eni", _I32), ("sg_set", _I32), ("allowed", _U8), ("rule", _I32), ("tracked", _U8))
_NACL = (("subnet", _I32), ("nacl", _I32), ("allowed", _U8), ("rule_number", _I32))
_NAT = (("nat", _I32), ("status", _U8), ("src_ip", _U32), ("src_port", _U16), ("dst_ip", _U32), ("dst_port", _U16))
# the columns of each stage's facts, in the order of hop_t.v (see hyperplane/_walk.pyx)
COLUMNS: dict[str, tuple[tuple[str, type], ...]] = {
    "v2n_out": (("pool", _I32), ("status", _U8), ("src_ip", _U32), ("src_port", _U16), ("to_ip", _U32),
                ("to_port", _U16)),
    "igw_in": (("public_ip", _U32), ("private_ip", _U32), ("eni", _I32)),
    "endpoint_in": (("endpoint", _I32), ("eni", _I32)),
    "dns": (("subnet", _I32),),
    "sg_egress": _SG,
    "route": (("eni", _I32), ("subnet", _I32), ("table", _I32), ("route", _I32), ("target", _I8),
              ("target_index", _I32)),
    "nacl_out": _NACL,
    "igw_out": (("eni", _I32), ("private_ip", _U32), ("public_ip", _U32)),
    "nat_out": _NAT,
    "nat_in": _NAT,
    "nacl_in": _NACL,
    "sg_ingress": _SG,
    "v2n_in": (("pool", _I32), ("status", _U8), ("dst_ip", _U32), ("dst_port", _U16), ("to_ip", _U32),
               ("to_port", _U16)),
}
assert tuple(COLUMNS) == _walk.STAGES
_STAGE_COLUMNS = [COLUMNS[s] for s in _walk.STAGES]
_STOP = {code: name for name, code in _walk.STOPS.items()}
HOPS_PER_ROW = 10  # the log's first allocation; it grows when a batch needs more
# Hop logs of results that are gone, for the next batches: touching fresh memory costs more
# than the walk itself on a VM (every page is faulted in and zeroed), reused memory does not.
_SPARE_LOGS: list[np.ndarray] = []


def _hop_log(size: int) -> np.ndarray:
    for k, log in enumerate(_SPARE_LOGS):
        if len(log) >= size:
            return _SPARE_LOGS.pop(k)
    return np.empty(size, _walk.HOP)


def _recycle(log: np.ndarray) -> None:
    if len(_SPARE_LOGS) < 2:
        _SPARE_LOGS.append(log)


class HopFacts:
    """The facts of a walked batch, read from the compiled hop log.

    ``of(row)`` gives one packet's stages in order; ``stages`` the same (stage, rows, columns)
    groups as ``pipeline.Facts`` (ordered by position in the path, so each row's stages come in
    its order), built on first use.
    """

    def __init__(self, log: np.ndarray, n_hops: int, first_hop: np.ndarray) -> None:
        self.hops = log[:n_hops]
        self.first_hop = first_hop  # len(rows) + 1 offsets into hops
        self._stages: list[tuple[str, np.ndarray, dict[str, np.ndarray]]] | None = None
        weakref.finalize(self, _recycle, log)  # the log is reused once these facts are gone

    def of(self, row: int) -> list[tuple[str, dict]]:
        out = []
        for h in self.hops[self.first_hop[row]:self.first_hop[row + 1]]:
            columns = _STAGE_COLUMNS[h["stage"]]
            values = h["v"].astype(np.int64)
            out.append((_walk.STAGES[h["stage"]], {name: int(np.asarray(v).astype(dt))
                                                  for (name, dt), v in zip(columns, values)}))
        return out

    @property
    def stages(self) -> list[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
        if self._stages is None:
            self._stages = _group_stages(self.hops)
        return self._stages


def _group_stages(hops: np.ndarray) -> list[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
    key = (hops["pos"].astype(np.uint16) << 4) | hops["stage"]
    order = np.argsort(key, kind="stable")
    key = key[order]
    cuts = np.flatnonzero(np.diff(key)) + 1
    out = []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(key)]):
        if hi <= lo:
            continue
        group = hops[order[lo:hi]]
        stage = int(group["stage"][0])
        v = group["v"]
        columns = {name: v[:, k].view(np.uint32).astype(dt) if dt in (_U32, _U16)
                   else v[:, k].astype(dt) for k, (name, dt) in enumerate(_STAGE_COLUMNS[stage])}
        out.append((_walk.STAGES[stage], group["row"].astype(np.intp), columns))
    return out


def _compiled(pipeline: Pipeline) -> _walk.Walker:
    """The compiled walker of a pipeline (built once per compilation of the VPC)."""
    core = getattr(pipeline, "_walker", None)
    if core is None:
        vpc = pipeline.vpc
        core = _walk.Walker(
            vpc, [t._core for t in pipeline.nat_tables], [t._core for t in pipeline.pools],
            pipeline.pool_vpc, pipeline.pool_of_eni, [t.on_full is not None for t in pipeline.pools],
            pipeline.conntrack._core, _V2N_REASON, _NAT_REASON)
        pipeline._walker = core
    return core


def walk(pipeline: Pipeline, packets: np.ndarray, origin: np.ndarray, origin_index: np.ndarray,
         function_pools: Sequence[Sequence[int]] = ()) -> BatchResult:
    """Walk a batch row by row (see the module docstring). ``origin``/``origin_index`` as in
    ``Network.process``; ``function_pools[k]``: the pool indexes of function k, for
    ``Origin.REPLY_TO_FUNCTION`` rows."""
    n = len(packets)
    core = _compiled(pipeline)
    core.set_function_pools(function_pools)
    core.check_origins(origin, origin_index)
    out = packets.copy()
    reason = np.zeros(n, np.uint8)
    location = np.full(n, -1, np.int32)
    first_hop = np.zeros(n + 1, np.int64)
    hops = _hop_log(n * HOPS_PER_ROW + 64)
    begin, n_hops, nostop = 0, 0, -1
    while True:
        core.set_function_pools(function_pools)
        row, stop, n_hops, pool, status = core.walk(out, origin, origin_index, reason, location,
                                                    first_hop[:n], hops, n_hops, begin, nostop)
        if row == n:
            break
        begin, nostop = row, -1
        kind = _STOP[stop]
        if kind == "log_full":
            grown = _hop_log(2 * len(hops))
            grown[:n_hops] = hops[:n_hops]
            _recycle(hops)
            hops = grown
        elif kind == "no_memory":
            raise MemoryError(f"a connection table cannot grow (at row {row} of the batch)")
        else:  # every Hyperplane ENI of the pool is full: Lambda adds one (or cannot)
            table = pipeline.pools[pool]
            before = len(table.addresses)
            now = max(float(packets["time"][row]), table.now)
            if table.on_full(table, now, NatStatus(status)) and len(table.addresses) > before:
                if pipeline.refresh is not None:
                    pipeline = pipeline.refresh()
                    core = _compiled(pipeline)
            else:
                nostop = row  # refused: this row is walked without stopping
    first_hop[n] = n_hops
    return BatchResult(out, reason, location, HopFacts(hops, n_hops, first_hop), pipeline.vpc)
