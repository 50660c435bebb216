"""Replay many capture files on a Dask cluster, with exactly the single-process answers
(docs/parallel-replay.md, "On many machines").

The capture is the files merged in time: packets in the order of the latest timestamp of
their file so far, then of the file's place in the list, then of their place in the file (for
files each in time order: time order, ties by file; a file's own order is always kept). The
files, the shard folder and the topology are on storage every worker reads.

1. **Read** (a task per file): the file is read once, into shards: its packet records (what a
   walk needs) and its frames (what the output capture needs), in its own order, with the key
   that places them in time.
2. **Plan** (one task): the files' records merged by that key and classified to components
   (``partition``, the same as ``workers=N``), saved beside the shards.
3. **Replay** (a task per group of components): the single-process engine over the merged
   records, walking only its components' packets (the Lambda lifecycle is replicated: every
   packet's invocation is made in every task), writing its packets' verdict lines and output
   capture beside the shards. Overflow ENIs are detected as with ``workers``.
4. **Merge** (the caller): the tasks' verdicts and output captures joined in merged order,
   flow-log records per ENI and window, as with ``workers``.

A ``Network`` holds compiled state and cannot travel to another machine: the tasks build theirs
from ``network``, a topology file or a zero-argument function (picklable) that returns one.
"""

from __future__ import annotations

import glob as globbing
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from hyperplane.errors import ReplayError
from hyperplane.formats.capture import CaptureChunk, Interface
from hyperplane.formats.pcap_reader import read_capture
from hyperplane.records import PACKET
from hyperplane.replay import Engine
from hyperplane.replay_parallel import ParallelReport, Writing, _Result, _worker, _writing, replay_partitioned
from hyperplane.replay_parallel.partition import Partition, partition

__all__ = ["capture_files", "replay_on_dask"]

# the columns of a chunk a walk reads, and the ones only the output capture needs
_WALK = ("records", "kind", "ts_ns")
_FRAMES = ("caplen", "wirelen", "l3_offset", "ethertype", "linktype", "interface", "file_offset",
           "frame_offset", "data")


def capture_files(captures: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The files of ``captures``: a glob pattern (``'captures/*.pcap'``, sorted by name), a file,
    or a list of them (in its order)."""
    items = [captures] if isinstance(captures, (str, os.PathLike)) else list(captures)
    found: list[Path] = []
    for item in items:
        text = os.fspath(item)
        if globbing.has_magic(text):
            matched = sorted(globbing.glob(text))
            if not matched:
                raise ReplayError(f"{text}: no capture file matches")
            found += [Path(m) for m in matched]
        elif not Path(text).is_file():
            raise ReplayError(f"{text}: no such capture file")
        else:
            found.append(Path(text))
    if not found:
        raise ReplayError("no capture files given")
    return found


def replay_on_dask(network: str | os.PathLike[str] | Callable[[], Any],
                   captures: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                   scheduler: str | Any | None = None, functions: Mapping[str, str] | None = None,
                   inject: str = "function", output: str | Path | None = None,
                   verdicts: str | Path | None = None, flow_logs: str | Path | None = None,
                   flow_log_interval: int = 600, chunk_packets: int = 65536,
                   shards: str | Path | None = None, local_workers: int = 2, timeout: float | None = None,
                   progress: Callable[[CaptureChunk], None] | None = None, pickup: bool = True) -> Any:
    """Replay ``captures`` (a glob, a file or a list) on Dask: ``scheduler`` a scheduler's
    address (``tcp://host:8786``) or a ``distributed.Client``; ``None``: a ``LocalCluster`` of
    ``local_workers`` worker processes for this replay. ``network``: a topology file
    (``Network.load``) or a function of no arguments building the network. ``shards``: a folder
    every worker reads and writes (default: the first capture's); the replay's shards go in a
    new folder there, removed afterwards. ``timeout``: seconds each stage may take on the cluster (``ReplayError`` past
    it). ``pickup``: mid-stream pickup, as in ``replay``. The outputs are those of a
    single-process replay of the merged files."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - the test extras install it
        raise ReplayError("the Dask engine needs Dask: pip install 'hyperplane[distributed]'") from None
    files = capture_files(captures)
    recipe = network if callable(network) else partial(load_network, os.fspath(network))
    engine = MergedCaptures(recipe(), files, None, functions or {}, inject,
                            flow_log_interval if flow_logs is not None else None, chunk_packets, pickup)
    # this replay's own folder: two replays sharing ``shards`` do not meet
    if shards is not None:
        Path(shards).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".hyperplane-shards-", dir=shards if shards is not None
                                   else files[0].parent))
    cluster = client = None
    try:
        if scheduler is None:
            cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0")
            client = Client(cluster)
        elif isinstance(scheduler, Client):
            client = scheduler
        else:
            client = Client(scheduler)
        return _run(_Tasks(client, timeout), recipe, engine, files, folder, functions or {}, inject,
                    flow_log_interval if flow_logs is not None else None, chunk_packets, pickup,
                    output=output, verdicts=verdicts, flow_logs=flow_logs, progress=progress)
    finally:
        if client is not None and client is not scheduler:
            client.close()
        if cluster is not None:
            cluster.close()
        shutil.rmtree(folder, ignore_errors=True)


def load_network(path: str, **options: Any) -> Any:
    """The network of a topology file (``Network.load``), as each task builds it."""
    from hyperplane.network import Network

    return Network.load(path, **options)


class _Tasks:
    """Tasks on the cluster, each stage waited for at most ``timeout`` seconds."""

    def __init__(self, client: Any, timeout: float | None) -> None:
        self.client, self.timeout = client, timeout

    def __call__(self, function: Callable[..., Any], *arguments: Any, **keywords: Any) -> Any:
        return self.all([(function, arguments, keywords)])[0]

    def all(self, calls: list[tuple[Callable[..., Any], tuple, dict]]) -> list[Any]:
        from distributed import wait

        futures = [self.client.submit(f, *a, pure=False, **k) for f, a, k in calls]
        try:
            wait(futures, timeout=self.timeout)
        except TimeoutError:
            self.client.cancel(futures)
            raise ReplayError(f"the Dask cluster did not finish a stage of the replay within {self.timeout} s") \
                from None
        return list(self.client.gather(futures))

    @property
    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))


def _run(tasks: _Tasks, recipe: Callable[[], Any], engine: MergedCaptures, files: list[Path], folder: Path,
         functions: Mapping[str, str], inject: str, interval: int | None, chunk_packets: int, pickup: bool, *,
         output: Any, verdicts: Any, flow_logs: Any, progress: Any) -> Any:
    cpu: dict[str, Any] = {"workers": []}
    cpu["read"] = tasks.all([(_read_file, (k, str(f)), {"folder": str(folder), "chunk_packets": chunk_packets})
                             for k, f in enumerate(files)])
    spec = (files, str(folder), dict(functions), inject, interval, chunk_packets, pickup)
    light, cpu["partition"] = tasks(_plan, recipe, spec)
    engine.folder = str(folder)
    info = ParallelReport(tasks.workers, [(name, int(size)) for name, size in zip(light.names, light.sizes)],
                          cpu_seconds=cpu, engine="dask")
    plan = _load_plan(folder)
    if len(plan.names) <= 1:
        report = engine.replay(output=output, verdicts=verdicts, flow_logs=flow_logs, progress=progress)
        report.parallel = info
        return report

    # the tasks write their own packets' verdict lines and output capture beside the shards
    writing = _writing(str(folder), output, verdicts)

    def run(groups: list[list[int]]) -> list[_Result]:
        done = tasks.all([(_replay_group, (recipe, spec, g, writing), {}) for g in groups])
        cpu["workers"] += [seconds for _, seconds in done]
        return [result for result, _ in done]

    return replay_partitioned(engine, plan, info, run, output=output, verdicts=verdicts, flow_logs=flow_logs,
                              progress=progress)


# -- the tasks --------------------------------------------------------------------------------

def _read_file(k: int, path: str, *, folder: str, chunk_packets: int) -> float:
    """Stage 1: read capture file ``k`` once, into its shard (``folder/file-k/``): the chunks'
    columns joined, and ``key``: the file's latest timestamp so far at each packet."""
    start = time.process_time()
    parts: dict[str, list[np.ndarray]] = {name: [] for name in _WALK + _FRAMES}
    interfaces: tuple[Interface, ...] = ()
    reader = read_capture(path, chunk_packets=chunk_packets)
    try:
        linktype, nanosecond = None, False
        base = 0
        for chunk in reader:
            for name in _WALK + _FRAMES:
                value = getattr(chunk, name)
                if name == "frame_offset":
                    value = value + base
                parts[name].append(value)
            base += len(chunk.data)
            interfaces = chunk.interfaces
        if reader.linktypes:
            linktype, nanosecond = reader.output_linktype, reader.nanosecond
    finally:
        reader.close()
    shard = Path(folder) / f"file-{k}"
    shard.mkdir(parents=True, exist_ok=True)
    for name, pieces in parts.items():
        dtype = PACKET if name == "records" else (np.uint8 if name == "data" else None)
        value = np.concatenate(pieces) if pieces else np.zeros(0, dtype if dtype is not None else np.int64)
        np.save(shard / f"{name}.npy", value)
        if name == "ts_ns":
            np.save(shard / "key.npy", np.maximum.accumulate(value) if len(value) else value)
    with open(shard / "header.pickle", "wb") as f:
        pickle.dump((interfaces, linktype, nanosecond), f)
    return time.process_time() - start


def _plan(recipe: Callable[[], Any], spec: tuple) -> tuple[Partition, float]:
    """Stage 2: the merged order of the files' packets and each one's component, saved in the
    shard folder; what the caller needs of it (the components without the packets') back."""
    start = time.process_time()
    files, folder = spec[0], Path(spec[1])
    keys = [np.load(folder / f"file-{k}" / "key.npy") for k in range(len(files))]
    key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    order = np.argsort(key, kind="stable")  # ties: the earlier file, then the earlier packet
    np.save(folder / "order.npy", order)
    engine = MergedCaptures(recipe(), files, str(folder), *spec[2:])
    plan = partition(engine.net, engine.fns, engine.chunks(), engine.inject)
    with open(folder / "plan.pickle", "wb") as f:
        pickle.dump(plan, f, protocol=pickle.HIGHEST_PROTOCOL)
    light = Partition(np.zeros(0, np.int64), plan.names, plan.last_time, plan.sizes, plan.of_subnet)
    return light, time.process_time() - start


def _load_plan(folder: Path) -> Partition:
    with open(folder / "plan.pickle", "rb") as f:
        plan: Partition = pickle.load(f)
    return plan


def _replay_group(recipe: Callable[[], Any], spec: tuple, components: list[int],
                  writing: Writing | None = None) -> tuple[_Result, float]:
    """Stage 3: the single-process engine over the merged records, walking ``components``
    (and, with ``writing``, writing their packets' verdicts and output capture)."""
    start = time.process_time()
    engine = MergedCaptures(recipe(), spec[0], spec[1], *spec[2:])
    result = _worker(engine, _load_plan(Path(spec[1])), components, writing)()
    return result, time.process_time() - start


# -- the merged capture -----------------------------------------------------------------------

class MergedCaptures(Engine):
    """The replay engine over capture files merged in time, read from their shards: chunks of
    ``chunk_packets`` packets in merged order (``index``: the place in it), with the frames
    only where the outputs are written."""

    def __init__(self, net: Any, files: Sequence[Path], folder: str | None, functions: Mapping[str, str],
                 inject: str, flow_log_interval: int | None, chunk_packets: int, pickup: bool = True) -> None:
        super().__init__(net, files[0], functions, inject, flow_log_interval, chunk_packets, pickup)
        self.files, self.folder = [Path(f) for f in files], folder
        self.frames = False

    def _shard(self, k: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        assert self.folder is not None
        shard = Path(self.folder) / f"file-{k}"
        return {name: np.load(shard / f"{name}.npy", mmap_mode="r") for name in names}

    def chunks(self) -> Iterator[CaptureChunk]:
        if self.folder is None:
            raise ReplayError("internal: the shards are not read yet")  # pragma: no cover
        order = np.load(Path(self.folder) / "order.npy", mmap_mode="r")
        names = _WALK + (_FRAMES if self.frames else ())
        shards = [self._shard(k, names) for k in range(len(self.files))]
        headers = []
        for k in range(len(self.files)):
            with open(Path(self.folder) / f"file-{k}" / "header.pickle", "rb") as f:
                headers.append(pickle.load(f))
        starts = np.cumsum([0] + [len(s["kind"]) for s in shards])
        # every file's interfaces, numbered one after the other
        interfaces = tuple(i for h in headers for i in h[0])
        first_interface = np.cumsum([0] + [len(h[0]) for h in headers])
        for lo in range(0, len(order), self.chunk_packets):
            rows = np.asarray(order[lo:lo + self.chunk_packets])
            of = np.searchsorted(starts, rows, "right") - 1
            at = rows - starts[of]
            cols: dict[str, np.ndarray] = {}
            for name in names:
                if name == "data":
                    continue
                sample = shards[0][name]
                cols[name] = np.empty(len(rows), sample.dtype)
            pieces = []
            for k in np.unique(of):
                mine = np.flatnonzero(of == k)
                pos = at[mine]
                for name in cols:
                    if name != "frame_offset":
                        cols[name][mine] = shards[k][name][pos]
                if self.frames:
                    cols["interface"][mine] += np.uint16(first_interface[k])
                    pieces.append((k, mine, pos))
            data = np.zeros(0, np.uint8)
            if self.frames:  # the rows' frames, gathered into one buffer in row order
                size = cols["caplen"].astype(np.int64)
                cols["frame_offset"] = np.r_[0, np.cumsum(size)[:-1]].astype(np.int64)
                data = np.empty(int(size.sum()), np.uint8)
                for k, mine, pos in pieces:
                    src = shards[k]["frame_offset"][pos].astype(np.int64)
                    length = size[mine]
                    inner = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
                    data[np.repeat(cols["frame_offset"][mine], length) + inner] = \
                        shards[k]["data"][np.repeat(src, length) + inner]
            else:
                empty = np.zeros(len(rows), np.int64)
                for name in _FRAMES:
                    if name != "data":
                        cols[name] = empty
            source = str(self.files[int(of[0])]) if len(self.files) == 1 else ", ".join(map(str, self.files))
            yield CaptureChunk(index=lo, data=data, interfaces=interfaces, source=source, **cols)

    def write(self, walked: Any, **options: Any) -> Any:
        self.frames = True  # the output capture needs the frames
        try:
            return super().write(walked, **options)
        finally:
            self.frames = False
