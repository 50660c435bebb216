"""Replay on several processes, with exactly the single-process answers (docs/parallel-replay.md).

1. The caller parses the capture once; a forked process classifies every packet to its
   component (``partition``).
2. Each worker, forked from the network as it is, runs the single-process engine
   (``replay.Engine.walk``) over the whole capture, walking only its components' packets and
   making every packet's invocation (the Lambda lifecycle is replicated), and writes its own
   packets' verdict lines and output capture (``Engine.write`` on its packets).
3. A shared limit the partition cannot see (an overflow Hyperplane ENI made or refused: it
   takes a subnet address, an ENI id, a place under the per-VPC limit, a member of its security
   groups) is detected: the components that had one, and every component with packets from the
   first one on, are replayed again together.
4. The merge: the verdicts and the output capture are the workers' bytes joined in capture
   order, flow-log records merged per ENI and window and written. Once every worker has
   walked, the workers do it themselves (``_Placing``: one writes the flow-log files, the
   others each a share of the joined files' bytes, at their final offsets); after an overflow,
   on Dask, or for a pcapng output (written by the parent from the workers' results) the
   parent does. The parent sums the report's counts.

``net`` itself is left as it was: the workers replay copies of it.
"""

from __future__ import annotations

import functools
import gc
import mmap
import multiprocessing
import os
import pickle
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperplane._core import _splice
from hyperplane.dataplane.flow_logs import FlowLogAggregator
from hyperplane.errors import ReplayError
from hyperplane.formats.capture import CaptureChunk, answer_frame
from hyperplane.formats.pcap_writer import _PCAPNG_SUFFIXES
from hyperplane.records import PACKET
from hyperplane.replay_parallel.partition import Partition, partition

__all__ = ["ParallelReport", "replay_in_parallel"]


@dataclass
class ParallelReport:
    """How a parallel replay was cut: its components (name, packets), the groups the workers
    ran, and the components replayed again together after a shared limit was reached."""

    workers: int
    components: list[tuple[str, int]]
    groups: list[list[str]] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    merged_because: str = ""
    # CPU seconds of each step: the partition, each worker run, the parent's merge and writing
    # (what the replay costs on an idle machine, whatever else the cores were doing)
    cpu_seconds: dict[str, Any] = field(default_factory=dict)
    engine: str = "processes"  # or "dask": tasks on a Dask cluster (on_dask)

    def summary(self) -> str:
        if len(self.components) <= 1:
            return "1 component: replayed in one process"
        where = "workers" if self.engine == "processes" else "Dask tasks"
        lines = [f"{len(self.components)} components on {len(self.groups)} {where}"]
        if self.merged:
            lines.append(f"replayed again together ({self.merged_because}): {', '.join(self.merged)}")
        return "\n".join(lines)


def replay_in_parallel(engine: Any, workers: int, *, output: Any, verdicts: Any, flow_logs: Any,
                       progress: Callable[[CaptureChunk], None] | None) -> Any:
    """``replay(..., workers=N)`` (``engine``: a ``hyperplane.replay.Engine`` not run yet)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, not {workers!r}")
    if "fork" not in multiprocessing.get_all_start_methods():
        raise ReplayError("workers > 1 needs processes started by fork (Linux, macOS)")
    cpu: dict[str, Any] = {"workers": []}
    start = time.process_time()
    engine.read_once(_READ_ONCE_BYTES)
    cpu["read"] = time.process_time() - start
    plan: Partition = _in_fork(lambda: partition(engine.net, engine.fns, engine.chunks(), engine.inject),
                               cpu, "partition")
    named = [(name, int(size)) for name, size in zip(plan.names, plan.sizes)]
    info = ParallelReport(workers, named, cpu_seconds=cpu)
    if len(plan.names) <= 1 or workers == 1:
        report = engine.replay(output=output, verdicts=verdicts, flow_logs=flow_logs, progress=progress)
        report.parallel = info
        return report
    with tempfile.TemporaryDirectory(prefix="hyperplane-replay-") as folder:
        writing = _writing(folder, output, verdicts)
        rounds = 0

        def run(groups: list[list[int]]) -> list[_Result]:
            nonlocal rounds
            rounds += 1
            # the first round's workers write the merged files themselves (``_Placing``); a
            # round run again after an overflow hands its files to the caller's merge
            placing = _Placing(engine, plan, groups, writing, output, verdicts, flow_logs) \
                if rounds == 1 and writing is not None else None
            tasks = [_worker(engine, plan, g, writing, placing, k) for k, g in enumerate(groups)]
            return _Forks(tasks, placing.barrier.abort if placing is not None else None).results(cpu, "workers")

        return replay_partitioned(engine, plan, info, run, output=output, verdicts=verdicts, flow_logs=flow_logs,
                                  progress=progress)


# a capture file up to this size is parsed once, by the caller, before the partition and the
# workers are forked (they share its chunks); a larger one is read by each of them
_READ_ONCE_BYTES = 1 << 30


@dataclass
class Writing:
    """Where the workers write their own packets' verdict lines and output capture (a folder
    every worker and the caller reads), and the names that say the files' formats."""

    folder: str
    verdicts: str | None
    output: str | None


def _writing(folder: str, output: Any, verdicts: Any) -> Writing | None:
    """The workers' writing, or ``None``: the caller writes every packet (a pcapng output: its
    interface blocks are written as the packets first use them, so one file's bytes do not cut
    into the others')."""
    if output is not None and os.fspath(output).lower().endswith(_PCAPNG_SUFFIXES):
        return None
    return Writing(folder, os.fspath(verdicts) if verdicts is not None else None,
                   os.fspath(output) if output is not None else None)


def replay_partitioned(engine: Any, plan: Partition, info: ParallelReport,
                       run: Callable[[list[list[int]]], list[_Result]], *, output: Any, verdicts: Any,
                       flow_logs: Any, progress: Any) -> Any:
    """Steps 2 to 4 of a partitioned replay, whatever runs the workers: ``run`` replays each
    group of components (``_worker``) and gives back their results, in order (forked processes
    here, Dask tasks in ``on_dask``)."""
    groups = plan.groups(info.workers)
    info.groups = [[plan.names[c] for c in g] for g in groups]
    results = run(groups)
    overflowed = [r for r in results if r.overflows]
    if overflowed:
        # the first overflow is where the partition stops holding: from then on, the state a
        # component meets may depend on another one's ENIs
        first = min(t for r in overflowed for t, _ in r.overflows) - engine.net.now
        again = sorted({plan.of_subnet[s] for r in overflowed for _, s in r.overflows} |
                       {c for c in range(len(plan.names)) if plan.last_time[c] >= first - 1e-6})
        info.merged = [plan.names[c] for c in again]
        info.merged_because = "overflow Hyperplane ENIs, the first at t=%gs, in %s" % (
            first, ", ".join(sorted({s for r in overflowed for _, s in r.overflows})))
        kept = [r for r in results if not set(r.components) & set(again)]
        # a worker's flow-log records cannot be told apart by component: the untouched
        # components of a worker that also ran merged ones are replayed again on their own
        alone = sorted({c for r in results if set(r.components) & set(again) for c in r.components} - set(again))
        results = kept + run([g for g in (again, alone) if g])
    start = time.process_time()
    merge = _merge_written if results[0].report is not None else _merge
    report = merge(engine, plan, results, info, output, verdicts, flow_logs, progress,
                   concurrent=info.engine == "processes")
    info.cpu_seconds["merge"] = time.process_time() - start
    return report


@dataclass
class _Result:
    """What a worker walked: its rows' verdicts, resources and packets as they left, its flow
    log records (the aggregator's columns), rule drops, Hyperplane ENI lines, overflows."""

    components: list[int]
    rows: np.ndarray
    reason: np.ndarray
    resource: np.ndarray  # index into resources, -1: none
    resources: list[bytes]
    out: np.ndarray
    records: dict[str, np.ndarray] | None
    enis: list[Any]
    time_offset: float
    account: tuple[Any, Any]  # the flow logs' account and region
    drops: Counter
    hyperplane_enis: list[dict]
    overflows: list[tuple[float, str]]  # (virtual time, subnet) of each overflow ENI made or refused
    # (capture row, PACKET row) of what the network answered a row with (a NAT gateway's RST)
    answers: list[tuple[int, np.ndarray]] = field(default_factory=list)
    # a worker that wrote its own packets (``Writing``): its report's counts, its verdicts file
    # and output capture, and per packet of its own the bytes of its line and of its records
    report: Any = None
    files: tuple[str | None, str | None] = (None, None)
    sizes: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    # the merged verdicts file, output capture and flow-log files are written (``_Placing``);
    # then ``records`` stays with the worker, which says how many it had
    placed: bool = False
    record_count: int = 0


def _mine(plan: Partition, components: list[int]) -> np.ndarray:
    """The packets of ``components``; with component 0, the packets not emulated too (their
    verdicts, from one worker)."""
    mine = np.isin(plan.component, components)
    if components and 0 in components:
        mine |= plan.component < 0
    return mine


def _worker(engine: Any, plan: Partition, components: list[int], writing: Writing | None = None,
            placing: _Placing | None = None, number: int = 0) -> Callable[[], _Result]:
    def run() -> _Result:
        mine = _mine(plan, components)
        overflows = _watch_overflows(engine.net)
        if writing is not None:
            try:
                result = _write_own(engine, mine, components, overflows, writing,
                                    None if placing is None else f"placed-{number}")
                if placing is not None:
                    placing.place(number, mine, result)
            except BaseException:
                if placing is not None:  # the others wait for this one: they stop too
                    placing.barrier.abort()
                raise
            return result
        rows, reasons, resource_of, outs = [], [], [], []
        ids: dict[bytes, int] = {}
        for chunk, reason, resource, resources, out in engine.walk(mine):
            own = np.flatnonzero(mine[chunk.index:chunk.index + len(chunk)])
            rows.append(chunk.index + own)
            reasons.append(reason[own])
            table = np.array([ids.setdefault(r, len(ids)) for r in resources] + [-1], np.int32)
            resource_of.append(table[resource[own]])
            outs.append(out[own])
        logs = engine.logs
        return _Result(components, _cat(rows, np.int64), _cat(reasons, np.uint8), _cat(resource_of, np.int32),
                       list(ids), np.concatenate(outs) if outs else np.zeros(0, PACKET),
                       logs._records.columns() if logs is not None else None,
                       list(logs._enis) if logs is not None else [], logs.time_offset if logs is not None else 0.0,
                       (logs.account_id, logs.region) if logs is not None else (None, None),
                       engine.report.drops_by_rule, engine.hyperplane_enis(), overflows,
                       [(frame.index, frame.records) for found in engine.answers.values() for _, frame in found])
    return run


def _write_own(engine: Any, mine: np.ndarray, components: list[int], overflows: list[tuple[float, str]],
               writing: Writing, name: str | None = None) -> _Result:
    """A worker's walk of its packets, written as the whole replay writes them (``Engine.write``
    on its packets), into a folder of its own (``name``: that folder, which the other workers
    find): the merge only cuts and joins the workers' files."""
    if name is None:
        where = Path(tempfile.mkdtemp(prefix="worker-", dir=writing.folder))
    else:
        where = Path(writing.folder, name)
        where.mkdir()
    verdicts = str(where / f"verdicts{Path(writing.verdicts).suffix}") if writing.verdicts else None
    output = str(where / "out.pcap") if writing.output else None
    report = engine.write(engine.walk(mine), output=output, verdicts=verdicts, progress=None, mine=mine)
    logs = engine.logs
    nothing = np.zeros(0, np.int64)
    return _Result(components, nothing, nothing.astype(np.uint8), nothing.astype(np.int32), [],
                   np.zeros(0, PACKET), logs._records.columns() if logs is not None else None,
                   list(logs._enis) if logs is not None else [], logs.time_offset if logs is not None else 0.0,
                   (logs.account_id, logs.region) if logs is not None else (None, None),
                   report.drops_by_rule, engine.hyperplane_enis(), overflows, [],
                   report=report, files=(verdicts, output), sizes=engine.sizes)


class _Placing:
    """The first round's workers write the merged files themselves, once all have walked: each
    says, in memory shared by the forks, how many bytes each of its packets took in its files,
    and whether it met an overflow ENI; then, past a barrier, each writes its share of the
    merged files (``_PlacingTasks``) at their final offsets, which every worker now knows — the
    caller joins nothing. After an overflow they write nothing: the components are run again
    and the caller merges (``_merge_written``)."""

    def __init__(self, engine: Any, plan: Partition, groups: list[list[int]], writing: Writing,
                 output: Any, verdicts: Any, flow_logs: Any) -> None:
        n, workers = len(plan.component), len(groups)
        self.barrier = multiprocessing.get_context("fork").Barrier(workers)
        self.writing, self.workers = writing, workers
        self.owner = np.full(n, -1, np.int32)
        for k, g in enumerate(groups):
            self.owner[_mine(plan, g)] = k
        # anonymous shared memory (MAP_SHARED): what a fork writes there, the others read
        self._memory = mmap.mmap(-1, 8 * 2 * max(n, 1) + workers)
        self.sizes = np.frombuffer(self._memory, np.int64, 2 * n).reshape(2, n)  # verdicts, output capture
        self.overflowed = np.frombuffer(self._memory, np.uint8, workers, 8 * 2 * max(n, 1))
        self.paths = [os.fspath(p) if p is not None else None for p in (verdicts, output)]
        self.flow_logs = flow_logs if engine.logs is not None else None
        self.interval = engine.logs.interval if engine.logs is not None else None
        for path in self.paths:  # begun empty: the workers write their parts in place
            if path is not None:
                open(path, "wb").close()

    def _file(self, k: int, which: int) -> str:
        assert self.writing.verdicts is not None or which == 1
        name = f"verdicts{Path(self.writing.verdicts).suffix}" if which == 0 else "out.pcap"  # type: ignore[arg-type]
        return str(Path(self.writing.folder, f"placed-{k}", name))

    def place(self, k: int, mine: np.ndarray, result: _Result) -> None:
        """Worker ``k``'s part, once every worker has walked (``result``: its own files)."""
        rows = np.flatnonzero(mine)
        for which, size in enumerate(result.sizes):
            if self.paths[which] is not None and size is not None:
                self.sizes[which, rows] = size
        self.overflowed[k] = bool(result.overflows)
        if self.flow_logs is not None:  # its flow-log records, for the worker that writes the files
            with open(Path(self.writing.folder, f"placed-{k}", "logs.pickle"), "wb") as f:
                pickle.dump(_LogsOf(result), f, protocol=pickle.HIGHEST_PROTOCOL)
        self.barrier.wait()
        if self.overflowed.any():
            return
        # the flow-log files are one task (the last worker's); the joins' bytes are shared out
        # among the others, or among all without flow logs
        joiners = self.workers - 1 if self.flow_logs is not None else self.workers
        if self.flow_logs is not None and self.interval is not None and k == self.workers - 1:
            logs = _merged_logs(FlowLogAggregator(interval=self.interval), [
                pickle.loads(Path(self.writing.folder, f"placed-{j}", "logs.pickle").read_bytes())
                for j in range(self.workers)])
            logs.write(self.flow_logs)
        if k < joiners:
            for which, path in enumerate(self.paths):
                if path is not None:
                    _join_part(path, [self._file(j, which) for j in range(self.workers)], self.sizes[which],
                               self.owner, k, joiners)
        result.placed = True
        if result.records is not None:  # written: the caller needs their number only
            result.record_count, result.records = len(result.records["a"]), None


class _LogsOf:
    """What ``_merged_logs`` reads of a worker's result."""

    def __init__(self, r: _Result) -> None:
        self.records, self.enis, self.time_offset, self.account, self.overflows = \
            r.records, r.enis, r.time_offset, r.account, r.overflows


def _join_part(path: str, files: list[str], size: np.ndarray, owner: np.ndarray, part: int, parts: int) -> None:
    """Part ``part`` of ``parts`` (about as many bytes each) of the merged file ``path``, written
    in place: the header (part 0) and the bytes of a run of consecutive packets (``size``: each
    packet's, ``owner``: the worker whose file holds them), cut from the workers' ``files``."""
    n = len(owner)
    at = np.empty(n + 1, np.int64)  # where each packet's bytes begin in its worker's file
    header = 0
    for k, name in enumerate(files):
        rows = np.flatnonzero(owner == k)
        first = os.path.getsize(name) - int(size[rows].sum())  # what it holds before its packets
        if k == 0:
            header = first
        at[rows] = first + np.cumsum(size[rows]) - size[rows]
    final = header + np.r_[0, np.cumsum(size)]  # where each packet's bytes begin in the merged file
    cuts = np.searchsorted(final, header + (final[-1] - header) * np.arange(1, parts) // parts)
    edges = np.r_[0, np.minimum(cuts, n), n]
    lo_row, hi_row = int(edges[part]), int(edges[part + 1])
    fd = os.open(path, os.O_RDWR)
    try:
        os.ftruncate(fd, int(final[-1]))  # every part's writer: the same size
        if part == 0 and header:
            with open(files[0], "rb") as f:
                os.pwrite(fd, f.read(header), 0)
        if hi_row <= lo_row:
            return
        own = owner[lo_row:hi_row]
        cut = np.flatnonzero(own[1:] != own[:-1]) + 1
        first, last = lo_row + np.r_[0, cut], lo_row + np.r_[cut, hi_row - lo_row] - 1
        sources = [np.memmap(name, np.uint8, mode="r") if os.path.getsize(name) else np.zeros(0, np.uint8)
                   for name in files]
        # the ranges copied straight into the merged file's pages (which the other parts share)
        begin, end = int(final[lo_row]), int(final[hi_row])
        if end > begin:
            skip = begin % mmap.ALLOCATIONGRANULARITY  # a mapping starts on a page
            with mmap.mmap(fd, end - begin + skip, offset=begin - skip) as out:
                view = np.frombuffer(out, np.uint8)[skip:]
                _splice.splice(sources, owner[first], at[first], at[last] + size[last], view)
                del view
        del sources
    finally:
        os.close(fd)


def _watch_overflows(net: Any) -> list[tuple[float, str]]:
    """Every overflow ENI the pools ask for from now on, made or refused (the Lambda service's
    ENI manager is the only place that sees both)."""
    seen: list[tuple[float, str]] = []
    manager = net.lambda_service._manager
    add = manager.add_overflow_eni

    def watched(pool: Any, now: float, status: Any) -> bool:
        seen.append((float(now), pool.subnet_id))
        return add(pool, now, status)

    manager.add_overflow_eni = watched
    return seen


def _merge(engine: Any, plan: Partition, results: list[_Result], info: ParallelReport, output: Any,
           verdicts: Any, flow_logs: Any, progress: Any, concurrent: bool) -> Any:
    """The outputs of the workers' results; ``concurrent``: the flow-log files written by a
    forked process meanwhile (not beside a Dask client's threads: a fork copies none of them)."""
    n = len(plan.component)
    reason = np.zeros(n, np.uint8)
    resource = np.full(n, -1, np.int32)
    names: list[bytes] = []
    out: np.ndarray | None = None
    for r in results:
        if out is None:
            out = np.zeros(n, r.out.dtype)
        base = len(names)
        names += r.resources
        reason[r.rows], out[r.rows] = r.reason, r.out
        resource[r.rows] = np.where(r.resource >= 0, r.resource + base, -1)
    engine.report.drops_by_rule = sum((r.drops for r in results), Counter())
    answers = sorted((a for r in results for a in r.answers), key=lambda a: a[0])

    def walked() -> Iterator[Any]:
        for chunk in engine.chunks():
            lo, hi = chunk.index, chunk.index + len(chunk)
            for row, rec in answers:  # written after their rows, as one process writes them
                if lo <= row < hi:
                    engine.answers.setdefault(lo, []).append((row - lo, answer_frame(chunk, row - lo, rec)))
            used, local = np.unique(resource[lo:hi], return_inverse=True)
            ids = [names[u] for u in used if u >= 0]
            yield chunk, reason[lo:hi], (local - int(used[0] < 0) if len(used) else local).astype(np.int32), \
                ids, out[lo:hi] if out is not None else chunk.records

    writing = None
    if flow_logs is not None and engine.logs is not None:
        logs = _merged_logs(engine.logs, results)
        if concurrent:  # the flow-log files in a process of their own, beside the verdicts and capture
            writing = _Forks([lambda: logs.write(flow_logs) and None])
        else:
            logs.write(flow_logs)
    try:
        report = engine.write(walked(), output=output, verdicts=verdicts, progress=progress)
    finally:
        if writing is not None:
            writing.results(info.cpu_seconds, "flow logs")
    if flow_logs is not None and engine.logs is not None:
        report.flow_log_records = len(logs)
    report.hyperplane_enis = _hyperplane_enis(results)
    report.parallel = info
    return report


def _merge_written(engine: Any, plan: Partition, results: list[_Result], info: ParallelReport, output: Any,
                   verdicts: Any, flow_logs: Any, progress: Any, concurrent: bool) -> Any:
    """The outputs of workers that wrote their own packets: the verdicts file and the output
    capture joined from theirs in capture order (each packet's line and records cut from the
    file of the worker that walked it), the report's counts summed (conversations and rule
    drops are a component's own), flow-log records merged per ENI and window."""
    owner = np.full(len(plan.component), -1, np.int64)
    for k, r in enumerate(results):
        owner[_mine(plan, r.components)] = k
    if (owner < 0).any():
        raise ReplayError("internal: a packet no worker wrote")  # pragma: no cover
    placed = all(r.placed for r in results)  # the workers wrote the merged files (``_Placing``)
    joins: list[Callable[[], None]] = [
        functools.partial(_join, [r.files[which] for r in results], [r.sizes[which] for r in results], owner, path)
        for which, path in ((0, verdicts), (1, output)) if path is not None and not placed]
    beside: list[Callable[[], None]] = []  # with ``concurrent``: in processes of their own, meanwhile
    records = 0
    if flow_logs is not None and engine.logs is not None:
        if placed:
            records = sum(r.record_count for r in results)
        else:
            logs = _merged_logs(engine.logs, results)
            records = len(logs)
            beside.append(functools.partial(_write_logs, logs, flow_logs))
    if not concurrent:
        joins, beside = joins + beside, []
    elif len(joins) > 1:  # the output capture beside the verdicts
        beside.append(joins.pop())
    forks = _Forks(beside) if beside else None
    try:
        for join in joins:
            join()
    finally:
        if forks is not None:
            forks.results(info.cpu_seconds, "beside")
    report = engine.report
    for r in results:
        done = r.report
        report.packets += done.packets
        report.written += done.written
        report.picked_up += done.picked_up
        for total, part in ((report.kinds, done.kinds), (report.reasons, done.reasons),
                            (report.dispositions, done.dispositions), (report.drops_by_rule, done.drops_by_rule),
                            (report.conversations, done.conversations), (report.failed_at, done.failed_at)):
            total.update(part)
    if progress is not None:  # the packets are all written: the chunks in their order
        for chunk in engine.chunks():
            if len(chunk):
                progress(chunk)
    if flow_logs is not None and engine.logs is not None:
        report.flow_log_records = records
    report.hyperplane_enis = _hyperplane_enis(results)
    report.parallel = info
    return report


def _write_logs(logs: FlowLogAggregator, folder: Any) -> None:
    logs.write(folder)


def _join(files: list[Any], sizes: list[Any], owner: np.ndarray, path: Any) -> None:
    """``path`` from the workers' ``files``: the first one's header (what it holds before its
    first packet's bytes, the same in every one), then each packet's bytes (``sizes``: per
    packet of a worker's, in order) from the file of its worker (``owner``), in capture order,
    taken in runs of consecutive packets of one worker."""
    n = len(owner)
    rank = np.empty(n, np.int64)  # a packet's place among its worker's
    ends: list[np.ndarray] = []  # per worker: where each of its packets' bytes end in its file
    base = np.zeros(len(files), np.int64)
    for k, (name, size) in enumerate(zip(files, sizes)):
        rows = np.flatnonzero(owner == k)
        rank[rows] = np.arange(len(rows))
        header = os.path.getsize(name) - int(size.sum())
        base[k] = sum(len(e) for e in ends)
        ends.append(header + np.r_[0, np.cumsum(size)])
    at = np.concatenate(ends)
    cut = np.flatnonzero(owner[1:] != owner[:-1]) + 1
    first, last = np.r_[0, cut], np.r_[cut, n] - 1
    worker = owner[first]
    lo, hi = at[base[worker] + rank[first]], at[base[worker] + rank[last] + 1]
    sources = [np.memmap(name, np.uint8, mode="r") if os.path.getsize(name) else np.zeros(0, np.uint8)
               for name in files]
    size = hi - lo
    # in blocks of about _BLOCK bytes: the merged file is never all in memory
    cuts = np.searchsorted(np.cumsum(size), np.arange(_BLOCK, int(size.sum()), _BLOCK), "right")
    with open(path, "wb") as out:
        out.write(sources[0][:int(ends[0][0])].tobytes())
        for begin, end in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(lo)].tolist()):
            buffer = np.empty(int(size[begin:end].sum()), np.uint8)
            _splice.splice(sources, worker[begin:end], lo[begin:end], hi[begin:end], buffer)
            out.write(buffer.data)
    del sources


_BLOCK = 1 << 26


def _merged_logs(logs: FlowLogAggregator, results: list[Any]) -> FlowLogAggregator:
    """One aggregator holding every worker's records. A record's key holds its connection,
    which lives in one component: the records are disjoint (checked), each worker's in its order
    of first sight. Each worker numbered the ENIs as the whole replay does (``_Run.rows``), up
    to the overflow ENIs only the runs that made them know: the numbers are those of the run
    that saw the most, each worker's records renumbered by ENI id."""
    merged = FlowLogAggregator(interval=logs.interval)
    fullest = max(results, key=lambda r: (bool(r.overflows), len(r.enis)))
    merged._enis = list(fullest.enis)
    merged._eni_uid = {e.id: k for k, e in enumerate(merged._enis)}
    merged.time_offset = fullest.time_offset
    merged.account_id, merged.region = fullest.account
    count = 0
    for r in results:
        c = r.records
        if c is None or not len(c["a"]):
            continue
        count += len(c["a"])
        number = np.array([merged._eni_uid[e.id] for e in r.enis], np.uint64)
        b = (c["b"] & np.uint64((1 << 48) - 1)) | (number[(c["b"] >> np.uint64(48)).astype(np.int64)] << np.uint64(48))
        merged._records.add(c["a"], b, c["c"], c["packets"], c["bytes"], c["start"], c["end"], c["flags"])
    if len(merged) != count:
        raise ReplayError("internal: two workers wrote the same flow-log record")  # pragma: no cover
    return merged


def _hyperplane_enis(results: list[_Result]) -> list[dict]:
    """Each Hyperplane ENI's line from the worker whose packets used it (the others' tables
    never saw its connections)."""
    order = max(results, key=lambda r: len(r.hyperplane_enis)).hyperplane_enis
    best: dict[str, dict] = {}
    for r in results:
        for e in r.hyperplane_enis:
            old = best.get(e["id"])
            if old is None or (e["created"], e["peak"], e["connections"]) > (old["created"], old["peak"],
                                                                              old["connections"]):
                best[e["id"]] = e
    return [best[e["id"]] for e in order]


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


# -- processes --------------------------------------------------------------------------------

def _in_fork(task: Callable[[], Any], cpu: dict[str, Any], step: str) -> Any:
    found = _in_forks([task], cpu, step)[0]
    cpu[step] = cpu[step][0]
    return found


def _in_forks(tasks: list[Callable[[], Any]], cpu: dict[str, Any], step: str = "workers") -> list[Any]:
    """Run each task in a process forked from this one (a copy of the network as it is now),
    all at once; their results come back through files, with the CPU seconds each took
    (appended to ``cpu[step]``)."""
    return _Forks(tasks).results(cpu, step)


class _Forks:
    """Tasks started in processes forked from this one; :meth:`results` waits for them.
    ``on_death``: called when one ends without a result (killed), so that tasks waiting for it
    stop waiting."""

    def __init__(self, tasks: list[Callable[[], Any]], on_death: Callable[[], None] | None = None) -> None:
        self.on_death = on_death
        self.folder = tempfile.TemporaryDirectory(prefix="hyperplane-replay-")
        folder = self.folder.name
        self.count = len(tasks)
        self.pids = []
        gc.freeze()  # the parent's objects out of the children's collections: fewer pages copied
        for k, task in enumerate(tasks):
            pid = os.fork()
            if pid == 0:  # the child: run, write the result (or the error), leave at once
                code = 0
                start = time.process_time()
                try:
                    result: Any = (task(), time.process_time() - start)
                except BaseException as exc:  # handed to the parent, raised there
                    result, code = _Failure(exc, traceback.format_exc()), 1
                try:
                    try:
                        data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
                    except Exception:  # an error that does not pickle: its text does
                        text = result.text if isinstance(result, _Failure) else traceback.format_exc()
                        data = pickle.dumps(_Failure(ReplayError(f"a replay worker failed:\n{text}"), text))
                    (Path(folder) / f"{k}.pickle").write_bytes(data)
                finally:
                    os._exit(code)
            self.pids.append(pid)
        gc.unfreeze()

    def results(self, cpu: dict[str, Any], step: str) -> list[Any]:
        with self.folder as folder:
            waiting = list(self.pids)
            while waiting:
                for pid in list(waiting):
                    done, status = os.waitpid(pid, os.WNOHANG if self.on_death is not None else 0)
                    if done:
                        waiting.remove(pid)
                        if self.on_death is not None and os.WIFSIGNALED(status):
                            self.on_death()
                if waiting and self.on_death is not None:
                    time.sleep(0.002)
            results = []
            for k in range(self.count):
                path = Path(folder) / f"{k}.pickle"
                if not path.exists():
                    raise ReplayError("a replay worker ended without a result (killed?)")
                with open(path, "rb") as f:
                    results.append(pickle.load(f))
        failures = [r for r in results if isinstance(r, _Failure)]
        if failures:  # the cause, not a worker that stopped waiting for the one that failed
            raise next((f for f in failures if not isinstance(f.exc, threading.BrokenBarrierError)), failures[0]).exc
        cpu.setdefault(step, []).extend(seconds for _, seconds in results)
        return [found for found, _ in results]


@dataclass
class _Failure:
    exc: BaseException
    text: str
