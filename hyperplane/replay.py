"""Replaying a capture through the emulated VPC: verdicts, translated capture, summary.

Two ways to read a capture:
- ``inject="function"`` (default): it was taken inside functions, before any NAT. Packets from
  an address in a function's CIDR (``functions={"orders": "172.16.5.0/24"}``) leave through that
  function; each capture address is one execution environment (numbered in order of first
  appearance). Packets toward such an address are replies: they are matched to their connection
  (the Hyperplane ENI's and, for the internet, the NAT gateway's) and walked back from the peer.
- ``inject="eni"``: it was taken inside the VPC: each packet starts at the ENI that owns its
  source address, or at the internet gateway. A replay given no function CIDRs takes the
  capture this way, and its report says so.

Captures begin in the middle of connections. With ``pickup=True`` (the default) the NAT tables
pick them up as Linux conntrack's loose mode does: an outbound TCP ACK (no SYN, FIN or RST) of a
connection the V2N NAT or a NAT gateway does not know opens it, established, and security-group
tracking starts its flow established (decided in the walker: ``hyperplane._core._nat``,
``_conntrack``); the report counts the conversations picked up. Only during the capture's first
``pickup_window`` (350 s, the established idle timeout of V2N and NAT gateways): a connection
open when the capture began that is still alive sends within it; an unknown ACK later belongs to
a connection that idled out, and a NAT gateway answers it with an RST. ``fn.send``
never picks up: there only a SYN opens a TCP connection.

The outputs speak the capture's addresses: where the walk put an execution environment's
internal address (a reply delivered to the function, a packet refused before V2N), the verdicts
and the output capture show the capture's own address. Each verdict line has the capture
timestamp, the capture's 5-tuple, the 5-tuple as the packet left, disposition, reason, the ENI
where it ended and the hop that decided (stage, resource, rule). The report also counts
conversations (TCP and UDP, both directions of a 5-tuple): established (a packet of each side
delivered), unanswered, or failed, by the first refusal's reason and resource.

Time comes from the packet timestamps, shifted so that the first packet happens at the
network's ``now``. Every input packet gets exactly one verdict; packets that cannot be emulated
(IPv6, ARP, fragments, truncated or malformed frames) are counted by kind.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from hyperplane._core import _walk
from hyperplane.dataplane.flow_logs import FlowLogAggregator
from hyperplane.errors import HyperplaneError, ReplayError
from hyperplane.lambda_service import HyperplaneEni, LambdaError
from hyperplane.dataplane.compiled_vpc import CompiledVpc
from hyperplane.dataplane.inputs import Host, function_rows
from hyperplane.formats.capture import CaptureChunk, PacketKind, answer_frame
from hyperplane.formats.pcap_reader import read_capture
from hyperplane.formats.pcap_writer import CaptureWriter
from hyperplane.formats.seen_addresses import SeenAddresses
from hyperplane.dataplane.walk import DELIVERED_BY_REASON, BatchResult, Origin
from hyperplane.model.values import IMPLICIT_DENY_RULE_NUMBER
from hyperplane.reasons import Reason
from hyperplane.tables.nat import NAT_GATEWAY_TIMEOUTS
from hyperplane.replay_verdicts import Conversations, Labels, VerdictSink, capture_addresses, label, labels_of

def pickup_window(net: Any) -> float:
    """How long after a capture's first packet mid-stream pickup lasts: the longest idle timeout
    of an established TCP connection, on a Hyperplane ENI or a NAT gateway."""
    return max(net.lambda_service.settings.timeouts.tcp_established, NAT_GATEWAY_TIMEOUTS.tcp_established)


class Network(Host, Protocol):
    """What a replay drives (a ``hyperplane.Network``): its clock, its walks and its functions."""

    @property
    def now(self) -> float: ...

    @property
    def compiled(self) -> CompiledVpc: ...

    @property
    def hyperplane_enis(self) -> list[HyperplaneEni]: ...

    def advance(self, seconds: float) -> float: ...

    def process(self, packets: np.ndarray, origin: Any, origin_index: Any = -1, *,
                in_place: bool = False, pickup: bool = False) -> BatchResult: ...

    def function(self, name: str) -> Any: ...

    def function_number(self, name: str) -> int: ...

    def pool_names(self) -> list[str]: ...


# capture kinds that cannot be emulated -> their verdict
_SKIPPED = {
    PacketKind.IPV6: Reason.NOT_IPV4,
    PacketKind.ARP: Reason.NOT_IPV4,
    PacketKind.NON_IP: Reason.NOT_IPV4,
    PacketKind.FRAGMENT: Reason.IP_FRAGMENT,
    PacketKind.TRUNCATED: Reason.CAPTURE_TRUNCATED,
    PacketKind.MALFORMED: Reason.CAPTURE_MALFORMED,
}
_SKIPPED_REASON = np.zeros(max(PacketKind) + 1, np.uint8)  # by kind; 0 for emulated packets
for _kind, _reason in _SKIPPED.items():
    _SKIPPED_REASON[_kind] = _reason


@dataclass
class ReplayReport:
    """What a replay did, for the summary table and tests."""

    packets: int = 0
    kinds: Counter = field(default_factory=Counter)  # PacketKind name -> packets
    dispositions: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    drops_by_rule: Counter = field(default_factory=Counter)  # "acl-data rule *" -> packets
    written: int = 0
    flow_log_records: int = 0
    hyperplane_enis: list[dict] = field(default_factory=list)
    parallel: Any = None  # with workers=N: how the capture was cut (replay_parallel.ParallelReport)
    # TCP/UDP conversations: "established", "unanswered", "failed" -> count
    conversations: Counter = field(default_factory=Counter)
    picked_up: int = 0  # conversations whose connection was picked up mid-stream
    failed_at: Counter = field(default_factory=Counter)  # "NACL_OUT_DENY acl-data" -> conversations
    notes: list[str] = field(default_factory=list)  # how the replay took the capture

    @property
    def delivered(self) -> int:
        return sum(int(n) for r, n in self.reasons.items() if Reason[r].disposition.delivered)

    def summary(self) -> str:
        lines = list(self.notes)
        lines.append(f"{self.packets} packets, {self.delivered} delivered, {self.written} written, "
                     f"{self.flow_log_records} flow log records")
        skipped = {k: n for k, n in self.kinds.items() if k != "EMULATED"}
        if skipped:
            lines.append("not emulated: " + ", ".join(f"{k} {n}" for k, n in sorted(skipped.items())))
        lines.append("by disposition:")
        lines += [f"  {d:<20} {n}" for d, n in self.dispositions.most_common()]
        lines.append("by reason:")
        lines += [f"  {r:<28} {n}" for r, n in self.reasons.most_common()]
        if self.drops_by_rule:
            lines.append("drops by rule:")
            lines += [f"  {r:<40} {n}" for r, n in self.drops_by_rule.most_common()]
        if self.conversations:
            lines.append(self.conversation_line())
            lines += [f"  failed at {r:<38} {n}" for r, n in self.failed_at.most_common()]
        if self.hyperplane_enis:
            lines.append("Hyperplane ENIs:")
            lines += [f"  {e['id']} {e['private_ip']:<15} {e['subnet_id']:<18} live {e['connections']:<6} "
                      f"peak {e['peak']:<6} created {e['created']}{' (overflow)' if e['overflow'] else ''}"
                      for e in self.hyperplane_enis]
        if self.parallel is not None:
            lines.append(self.parallel.summary())
        return "\n".join(lines)

    def conversation_line(self) -> str:
        c = self.conversations
        return (f"conversations: {sum(c.values())}, {c['established']} established "
                f"({self.picked_up} picked up mid-stream), {c['unanswered']} unanswered, {c['failed']} failed")


class _Functions:
    """Capture addresses -> (function, execution environment)."""

    def __init__(self, net: Network, functions: Mapping[str, str]) -> None:
        self.net = net
        self.networks = []
        for name, cidr in functions.items():
            net.function(name)  # an unknown name is an error now, not at the first packet
            try:
                network = ipaddress.IPv4Network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"--function {name}={cidr}: {exc}") from None
            self.networks.append((name, int(network.network_address), int(network.netmask)))
        # capture addresses seen so far and the environment address each one became, by slot
        self._seen = SeenAddresses()
        self._envs = np.zeros(0, np.uint32)
        self.function_of_env: dict[int, str] = {}
        self._count: dict[str, int] = {}  # environments per function so far

    def owner(self, addresses: np.ndarray) -> np.ndarray:
        """Index into ``self.networks`` of the function whose CIDR holds each address (-1)."""
        out = np.full(len(addresses), -1, np.int32)
        for k, (_, base, mask) in enumerate(self.networks):
            out[(out < 0) & ((addresses & np.uint32(mask)) == base)] = k
        return out

    def environments_of(self, owner: np.ndarray, addresses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The execution-environment addresses of capture addresses (``owner``: each one's
        function, an index into ``networks``), numbered per function in order of first
        appearance: ``(environments, which)``, the distinct ones and each row's among them."""
        slot = self._seen.slots(addresses)
        if (slot < 0).any():  # new addresses, numbered in order of first appearance
            new = slot < 0
            unique, first = np.unique(addresses[new], return_index=True)
            order = np.argsort(first, kind="stable")
            envs = []
            for k in order:
                name, base, mask = self.networks[owner[new][first[k]]]
                count = self._count.get(name, 0)
                try:
                    env = int(ipaddress.IPv4Address(self.net.function(name).environment_address(count)))
                except LambdaError as exc:
                    cidr = ipaddress.IPv4Network((base, bin(mask).count("1")))
                    raise ReplayError(f"capture address {ipaddress.IPv4Address(int(unique[k]))} "
                                      f"(--function {name}={cidr}): {exc}") from None
                self._count[name] = count + 1
                self.function_of_env[env] = name
                envs.append(env)
            self._seen.add(unique[order])
            self._envs = np.concatenate([self._envs, np.array(envs, np.uint32)])
            slot = self._seen.slots(addresses)
        present = np.flatnonzero(np.bincount(slot, minlength=len(self._seen)))
        remap = np.zeros(len(self._seen), np.intp)
        remap[present] = np.arange(len(present))
        return self._envs[present], remap[slot]

    def function_of(self, env: int) -> str:
        return self.function_of_env[env]


def replay(net: Network, capture: str | Path, *, functions: Mapping[str, str] | None = None,
           inject: str = "function", output: str | Path | None = None, verdicts: str | Path | None = None,
           flow_logs: str | Path | None = None, flow_log_interval: int = 600,
           progress: Callable[[CaptureChunk], None] | None = None, chunk_packets: int = 65536,
           workers: int = 1, pickup: bool = True) -> ReplayReport:
    """Replay ``capture`` through ``net``; see the module docstring. ``workers=N``: the capture's
    independent components on N processes, with the same outputs (docs/parallel-replay.md).
    ``pickup``: mid-stream pickup of TCP connections whose opening the capture does not hold."""
    engine = Engine(net, capture, functions or {}, inject, flow_log_interval if flow_logs is not None else None,
                    chunk_packets, pickup)
    if workers != 1:
        from hyperplane.replay_parallel import replay_in_parallel
        return replay_in_parallel(engine, workers, output=output, verdicts=verdicts, flow_logs=flow_logs,
                                  progress=progress)
    return engine.replay(output=output, verdicts=verdicts, flow_logs=flow_logs, progress=progress)


# what one chunk's walk gives: the chunk, per packet its reason, its label (an index into the
# labels: ``replay_verdicts.label`` of the ENI where it ended, the deciding hop and whether it picked up a
# connection) and the packet as it left
Walked = tuple[CaptureChunk, np.ndarray, np.ndarray, list[bytes], np.ndarray]


class Engine:
    """The single-process replay in its two halves: :meth:`walk` the capture's chunks through the
    network, :meth:`write` the outputs of walked chunks. A parallel replay
    (``hyperplane.replay_parallel``) runs :meth:`walk` in each worker on its rows and
    :meth:`write` once on the merged chunks."""

    def __init__(self, net: Network, capture: str | Path, functions: Mapping[str, str], inject: str,
                 flow_log_interval: int | None, chunk_packets: int, pickup: bool = True) -> None:
        if inject not in ("function", "eni"):
            raise ValueError(f"inject must be 'function' or 'eni', not {inject!r}")
        self.report = ReplayReport()
        if inject == "function" and not functions:  # nothing to leave through a function
            inject = "eni"
            self.report.notes.append("no --function given: the capture is taken as taken inside the VPC "
                                     "(--inject eni), each packet starting at the ENI of its source address")
        self.net, self.capture, self.inject, self.chunk_packets = net, capture, inject, chunk_packets
        self.fns = _Functions(net, functions)
        self.logs = FlowLogAggregator(interval=flow_log_interval) if flow_log_interval is not None else None
        self.run = _Run(net, self.fns, inject, self.report, self.logs, pickup)
        # chunk index -> (chunk row, frame chunk) of the packets the network answered that row
        # with (a NAT gateway's RST), written right after it
        self.answers: dict[int, list[tuple[int, CaptureChunk]]] = {}
        self.read: list[CaptureChunk] | None = None  # the capture's chunks, kept by read_once

    def read_once(self, budget: int) -> None:
        """Keep the capture's chunks in memory when its file holds at most ``budget`` bytes: a
        parallel replay's partition and workers, processes forked after, parse none of it again."""
        if self.read is None and os.path.getsize(self.capture) <= budget:
            self.read = list(self.chunks())

    def chunks(self) -> Iterator[CaptureChunk]:
        if self.read is not None:
            yield from self.read
            return
        reader = read_capture(self.capture, chunk_packets=self.chunk_packets)
        try:
            yield from reader
        finally:
            reader.close()

    def walk(self, mine: np.ndarray | None = None) -> Iterator[Walked]:
        """Each chunk walked. ``mine`` (a bool per capture packet): only those packets are
        walked; every packet's invocation is made all the same (the Lambda lifecycle, which
        depends only on invocation times, is the whole capture's), and the other packets'
        results are not meaningful."""
        capture = self.capture
        for chunk in self.chunks():
            n = len(chunk)
            emulated = chunk.kind == PacketKind.EMULATED
            reason = _SKIPPED_REASON[chunk.kind]
            resource = np.full(n, -1, np.int32)
            resources: list[bytes] = []
            out = chunk.records
            if emulated.any():
                every = emulated.all()
                rows = None if every else np.flatnonzero(emulated)
                # walked in place, on a copy: the chunk keeps the capture's own packets
                records = chunk.records.copy() if every else chunk.records[rows]
                own = None if mine is None else mine[chunk.index:chunk.index + n][emulated]
                try:
                    res_reason, res_resource, resources, res_out = self.run.rows(records, own)
                except (HyperplaneError, ValueError) as exc:
                    first, last = (0, n - 1) if rows is None else (int(rows[0]), int(rows[-1]))
                    raise ReplayError(f"{capture}: packets #{chunk.index + first}-#{chunk.index + last}: "
                                      f"{exc}") from exc
                if every:
                    reason, resource, out = res_reason, res_resource, res_out
                else:
                    out = out.copy()
                    reason[rows], resource[rows], out[rows] = res_reason, res_resource, res_out
                for row, answer in self.run.answers:
                    at = row if rows is None else int(rows[row])
                    self.answers.setdefault(chunk.index, []).append((at, answer_frame(chunk, at, answer)))
            yield chunk, reason, resource, resources, out

    def write(self, walked: Iterable[Walked], *, output: str | Path | None, verdicts: str | Path | None,
              progress: Callable[[CaptureChunk], None] | None, mine: np.ndarray | None = None) -> ReplayReport:
        """The verdicts file, the output capture and the counts of the report, from walked chunks.
        ``mine`` (a bool per capture packet, ``Engine.walk``'s): only those packets are written and
        counted, and ``self.sizes`` holds, per packet of ``mine`` in order, the bytes of its
        verdict line and of what it put in the output capture (its frame, the answers after it):
        a parallel replay's merge cuts the workers' files at those places."""
        report = self.report
        line_ends: list[np.ndarray] = []
        frames_per_row: list[np.ndarray] = []
        # the link type and resolution to write (the reader reads the least it can: 64 KiB)
        header = read_capture(self.capture, chunk_packets=1, buffer_bytes=0)
        try:
            writer = CaptureWriter(output, header.output_linktype, header.nanosecond) if output else None
        finally:
            header.close()
        sink = VerdictSink(verdicts) if verdicts else None
        conversations = Conversations()
        environments = self.net.lambda_service.settings.environment_network if self.inject == "function" else None
        try:
            for chunk, reason, resource, resources, out in walked:
                n = len(chunk)
                own = None if mine is None else mine[chunk.index:chunk.index + n]
                if own is not None:  # the others are not emulated here: another worker writes them
                    kind = np.where(own, chunk.kind, PacketKind.NON_IP).astype(chunk.kind.dtype)
                    chunk = dataclasses.replace(chunk, kind=kind)
                    counted = np.flatnonzero(own)
                report.packets += n if own is None else len(counted)
                for k, c in enumerate(np.bincount(chunk.kind if own is None else chunk.kind[counted])):
                    if c:
                        report.kinds[PacketKind(k).name] += int(c)
                for r, c in enumerate(np.bincount(reason if own is None else reason[counted], minlength=256)):
                    if c:
                        report.reasons[Reason(r).name] += int(c)
                        report.dispositions[Reason(r).disposition.name] += int(c)
                delivered = DELIVERED_BY_REASON[reason]
                if own is not None:
                    delivered = delivered & own
                    frames = delivered.astype(np.int64)
                labels = Labels(resources)
                if environments is not None:
                    out = capture_addresses(chunk.records, out, environments)
                if writer is not None:
                    begin = 0
                    for row, frame in self.answers.pop(chunk.index, []):  # each after its row
                        if own is not None:
                            frames[row] += len(frame)
                        shown = np.zeros(n, bool)
                        shown[begin:row + 1] = delivered[begin:row + 1]
                        report.written += writer.write(chunk, out, shown)
                        report.written += writer.write(frame)
                        begin = row + 1
                    if begin:
                        delivered = delivered.copy()
                        delivered[:begin] = False
                    report.written += writer.write(chunk, out, delivered)
                    if own is not None:
                        frames_per_row.append(frames[counted])
                if sink is not None:
                    ends = sink.write(chunk, reason, resource, labels, out, None if own is None else counted)
                    if own is not None:  # a worker's line sizes, for the merge (else O(capture) memory)
                        line_ends.append(ends)
                conversations.add(chunk, delivered, reason, resource, labels)
                if progress is not None and n:
                    progress(chunk)
        finally:
            if writer is not None:
                writer.close()
            if sink is not None:
                sink.close()
        report.conversations, report.picked_up, report.failed_at = conversations.count()
        if mine is not None:
            self.sizes = (_lengths(line_ends), _record_sizes(output, frames_per_row) if output else None)
        return report

    def replay(self, *, output: str | Path | None, verdicts: str | Path | None, flow_logs: str | Path | None,
               progress: Callable[[CaptureChunk], None] | None) -> ReplayReport:
        """The whole replay in this process. Flow logs are written as their windows close, so
        that memory holds the open windows' records only, not the capture's."""
        walked = self.walk()
        if self.logs is not None and flow_logs is not None:
            self.logs.stream(flow_logs)
            walked = self._flushing(walked)
        report = self.write(ahead(walked), output=output, verdicts=verdicts, progress=progress)
        if self.logs is not None and flow_logs is not None:
            self.logs.write(flow_logs)
            report.flow_log_records = len(self.logs)
        report.hyperplane_enis = self.hyperplane_enis()
        return report

    def _flushing(self, walked: Iterator[Walked]) -> Iterator[Walked]:
        """``walked``, flushing the flow logs after each chunk up to the earliest time of any
        packet after it (a capture need not be in time order: a first read finds each chunk's
        earliest time). A flush never changes what the files hold, only when it is written."""
        assert self.logs is not None
        earliest = np.array([chunk.records["time"].min() if len(chunk) else np.inf for chunk in self.chunks()]
                            + [np.inf])
        later = np.minimum.accumulate(earliest[::-1])[::-1]  # later[k]: the earliest time from chunk k on
        for k, item in enumerate(walked):
            # a second of margin: flow-log times are the walk's (capture time - offset) + offset
            self.logs.flush(float(later[k + 1]) - 1.0)
            yield item

    def hyperplane_enis(self) -> list[dict]:
        """The report's lines of the network's Hyperplane ENIs, as they are now."""
        found = []
        for eni in self.net.hyperplane_enis:
            stats = next((s for s in eni.pool.table.stats() if s.address == eni.private_ip), None)
            found.append({
                "id": eni.id, "private_ip": eni.private_ip, "subnet_id": eni.subnet_id,
                "connections": eni.connections, "peak": stats.peak if stats else 0,
                "created": stats.created if stats else 0, "overflow": eni.overflow})
        return found


T = TypeVar("T")


def ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """``items`` produced on a second thread, up to ``depth`` ahead of the consumer: the walk of
    one chunk runs while the one before is written, on the second core wherever either is in
    compiled code or numpy without the GIL. Order and results are the iterator's own; an
    exception in it is raised here, and the producer stops when the consumer does."""
    channel: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                channel.put(entry, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((None, item)):
                    return
            put((None, end))
        except BaseException as exc:  # handed to the consumer, which raises it
            put((exc, None))

    worker = threading.Thread(target=produce, name="hyperplane-replay-walk", daemon=True)
    worker.start()
    try:
        while True:
            failure, item = channel.get()
            if failure is not None:
                raise failure
            if item is end:
                return
            yield item
    finally:
        stop.set()
        worker.join()


def _lengths(ends: list[np.ndarray]) -> np.ndarray:
    """Each line's bytes, from each write's line ends."""
    return np.concatenate([np.diff(e, prepend=0) for e in ends]) if ends else np.zeros(0, np.int64)


def _record_sizes(output: str | Path, frames_per_row: list[np.ndarray]) -> np.ndarray:
    """The bytes each row put in the classic pcap ``output`` (``frames_per_row``: how many
    records, in order), from the records' places as the reader finds them."""
    reader = read_capture(output, chunk_packets=1 << 20)
    try:
        starts = [chunk.file_offset for chunk in reader]
    finally:
        reader.close()
    bounds = np.concatenate([*starts, np.full(1, Path(output).stat().st_size, np.int64)]).astype(np.int64)
    count = np.concatenate(frames_per_row) if frames_per_row else np.zeros(0, np.int64)
    first = np.r_[0, np.cumsum(count)]
    return bounds[first[1:]] - bounds[first[:-1]]


class _Run:
    """The replay's walk: capture rows in time order, as sending them one by one at their own
    times would (``net.advance`` to each packet's time, then its send) — in few walks.

    Rows are walked in segments that end where the Lambda service has an event due (an ENI
    ready, an idle reclaim, a deletion) or where an invocation changed what later packets meet;
    each segment's results are resolved against the compilation that walked it.
    """

    def __init__(self, net: Network, fns: _Functions, inject: str, report: ReplayReport,
                 logs: FlowLogAggregator | None, pickup: bool = True) -> None:
        self.net, self.fns, self.inject, self.report, self.logs = net, fns, inject, report, logs
        self.pickup = pickup
        self.pickup_until = -np.inf  # the network time up to which connections are picked up
        self.t0: float | None = None  # capture time at the network's `now`
        self.answers: list[tuple[int, np.ndarray]] = []  # of the last rows(): (row, its delivered answer)

    def rows(self, rec: np.ndarray, mine: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, list[bytes], np.ndarray]:
        """Verdicts of emulated rows: (reason, label index into the list, the labels
        (``replay_verdicts.label``), the packets as they left). ``rec`` is translated in place.
        ``mine`` (a bool per row): walk only those (``Engine.walk``)."""
        net, fns = self.net, self.fns
        n = len(rec)
        # the function each row leaves through (-1: none), for the verdicts Lambda gives before any walk
        sender = fns.owner(rec["src_ip"]) if self.inject == "function" and fns.networks else np.full(n, -1, np.int32)
        if self.t0 is None:
            self.t0 = float(rec["time"][0]) - net.now
            if self.logs is not None:  # flow log records carry the capture's own timestamps
                self.logs.time_offset = self.t0
            if self.pickup:
                self.pickup_until = net.now + pickup_window(net)
        rec["time"] -= self.t0
        # the clock of sending one by one: packets earlier than the one before are sent at its time
        clock = np.maximum.accumulate(np.maximum(rec["time"], net.now))
        reason = np.zeros(n, np.uint8)
        resource = np.full(n, -1, np.int32)
        resources: dict[bytes, int] = {}
        self.answers = []
        pos = 0
        while pos < n:
            net.advance(max(0.0, float(clock[pos]) - net.now))
            due = net.lambda_service.next_event_at
            end = n if due is None else max(pos + 1, int(np.searchsorted(clock, due, "left")))
            pickup = float(clock[pos]) < self.pickup_until
            if pickup:  # the window closes inside: the rest is walked without pickup
                end = max(pos + 1, min(end, int(np.searchsorted(clock, self.pickup_until, "left"))))
            end, origin, index, verdict = self._inputs(rec, clock, pos, end)
            walk = np.flatnonzero(verdict == 0)
            if mine is not None and walk.size:
                if self.logs is not None:  # flow-log ENI numbers as the whole capture's walk gives them
                    self.logs._uids(net.compiled)
                walk = walk[mine[pos + walk]]
            reason[pos:end] = verdict
            refused = np.flatnonzero((verdict > 0) & (sender[pos:end] >= 0))
            for k in refused.tolist():  # the invocation decided: the function is the deciding resource
                why = Reason(int(verdict[k]))
                resource[pos + k] = resources.setdefault(
                    label("", "invoke", f"function:{fns.networks[sender[pos + k]][0]}", why.text, False),
                    len(resources))
            if walk.size:
                seg = rec[pos:end]
                if walk.size == end - pos:
                    res = net.process(seg, origin, index, in_place=True, pickup=pickup)
                else:
                    res = net.process(seg[walk], origin[walk], index[walk], pickup=pickup)
                    seg[walk] = res.packets
                reason[pos + walk] = res.reason
                resource[pos + walk] = labels_of(res, resources, net.pool_names())
                if self.logs is not None:
                    self.logs.add(res)  # with the answers (a NAT gateway's RST) the walk made
                for k, answer in sorted(res.answers.items()):
                    if DELIVERED_BY_REASON[answer.reason[0]]:
                        self.answers.append((pos + int(walk[k]), answer.packets.copy()))
                _count_rule_drops(res, self.report)
            pos = end
        net.advance(max(0.0, float(clock[-1]) - net.now))
        return reason, resource, list(resources), rec

    def _inputs(self, rec: np.ndarray, clock: np.ndarray, pos: int, end: int
                ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """Walker input of rows ``pos..end-1`` (``end`` may come earlier: an invocation decided
        that later rows must wait for the clock): (end, origin, index, verdict before the walk)."""
        net, fns = self.net, self.fns
        seg = rec[pos:end]
        m = end - pos
        origin = np.full(m, Origin.INTERNET, np.int8)
        index = np.full(m, -1, np.int32)
        verdict = np.zeros(m, np.uint8)
        eni_src = net.compiled.eni_of_private_ip(seg["src_ip"])
        origin[eni_src >= 0], index[eni_src >= 0] = Origin.ENI, eni_src[eni_src >= 0]
        if self.inject == "function" and fns.networks:
            receiver = fns.owner(seg["dst_ip"])  # before the senders' addresses change
            sender = fns.owner(seg["src_ip"])
            # environments are numbered in the order their addresses first appear, either way
            both = np.stack([sender, receiver], 1).ravel()
            seen = both >= 0
            if seen.any():
                fns.environments_of(both[seen], np.stack([seg["src_ip"], seg["dst_ip"]], 1).ravel()[seen])
            rows = np.flatnonzero(sender >= 0)
            if rows.size:  # each packet an invocation at its own time
                envs, which = fns.environments_of(sender[rows], seg["src_ip"][rows])
                sub = seg[rows]
                decided = function_rows(net, sub, [fns.function_of(int(e)) for e in envs], envs.tolist(),
                                        which, clock[pos + rows])
                done = rows[:decided.decided]
                seg["src_ip"][done] = sub["src_ip"][:decided.decided]
                origin[done], index[done], verdict[done] = decided.origin, decided.index, decided.verdict
                if decided.decided < len(rows):
                    m = int(rows[decided.decided])
            rows = np.flatnonzero(receiver[:m] >= 0)
            if rows.size:  # replies: matched to their connection during the walk
                envs, which = fns.environments_of(receiver[rows], seg["dst_ip"][rows])
                seg["dst_ip"][rows] = envs[which]
                numbers = np.array([net.function_number(name) for name, _, _ in fns.networks], np.int32)
                origin[rows], index[rows] = Origin.REPLY_TO_FUNCTION, numbers[receiver[rows]]
        return pos + m, origin[:m], index[:m], verdict[:m]


_DENYING_STAGES = {_walk.STAGES.index(s): s for s in ("nacl_out", "nacl_in", "sg_egress", "sg_ingress")}
_FILTER_DENIAL = np.isin(np.arange(256), [Reason.NACL_OUT_DENY, Reason.NACL_IN_DENY, Reason.SG_EGRESS_DENY,
                                           Reason.SG_INGRESS_DENY])  # by reason code


def _count_rule_drops(res: BatchResult, report: ReplayReport) -> None:
    """Drops per deciding rule: the NACL entry or the security groups that refused (named in
    the compilation that walked the packets)."""
    vpc = res.vpc
    assert vpc is not None
    # a packet refused by a filter ended there: its last hop is the deciding one
    rows = np.flatnonzero(_FILTER_DENIAL[res.reason])
    facts = res.facts
    denied = facts.hops[facts.first_hop[rows + 1] - 1]
    if not len(denied):
        return
    # one int64 per (stage, NACL or SG set, rule number <= IMPLICIT_DENY_RULE_NUMBER, 16 bits)
    keys = ((denied["stage"].astype(np.int64) << 48) | (denied["v"][:, 1].astype(np.int64) << 16)
            | denied["v"][:, 3].astype(np.int64) & 0xFFFF)
    for key, count in zip(*np.unique(keys, return_counts=True)):
        stage, index, number = int(key) >> 48, (int(key) >> 16) & 0xFFFFFFFF, int(key) & 0xFFFF
        name = _DENYING_STAGES[stage]
        if name.startswith("nacl"):
            label = "*" if number == IMPLICIT_DENY_RULE_NUMBER else str(number)
            report.drops_by_rule[f"{vpc.nacl_ids[index]} {name.replace('_', '-')} rule {label}"] += int(count)
        else:
            report.drops_by_rule[f"{','.join(vpc.sg_set_groups[index])} {name.replace('_', '-')}"] += int(count)
