"""VPC flow logs: what each ENI saw, aggregated per 5-tuple and window, in AWS's formats.

Every packet is seen at each ENI it leaves or enters: the sender's ENI (egress, at SG egress),
the receiver's ENI (ingress, at SG ingress: Hyperplane ENIs and interface endpoints included),
and a NAT gateway's ENI on the way in (before translation) and on the way out (after). The
observations are derived from the facts the pipeline stages recorded (``BatchResult.facts``):
nothing is evaluated a second time.

``action`` is what the filters decided *at that ENI*: ``REJECT`` when its security group or its
subnet's network ACL refused the packet there (a NACL refusal is logged on the ENI whose subnet's
NACL refused it, as AWS does: the sender for NACL out, the receiver for NACL in), else
``ACCEPT`` -- also when the packet is dropped later on its path, or by a translation at that
ENI (a NAT gateway or Hyperplane ENI without a connection for it: no filter refused it).

Not logged, as AWS lists under "Flow log limitations": traffic to the VPC DNS resolver, to and
from link-local addresses (169.254.0.0/16: instance metadata 169.254.169.254, Amazon Time Sync
169.254.169.123, Windows license activation, the Amazon DNS server 169.254.169.253), to and from
the first four addresses of a subnet (the VPC router at base + 1, the DNS resolver at base + 2),
and DHCP (UDP 67 <-> 68). An ENI that sends only such traffic has no records at all.

Addresses (AWS "Flow log records", "Flow log limitations"): ``srcaddr``/``dstaddr`` are the
interface's view -- the ENI's primary private address stands in for its side of the packet
(egress: source; ingress: destination) -- and ``pkt-srcaddr``/``pkt-dstaddr`` the packet's own
header addresses at that ENI. On a Hyperplane ENI, whose V2N NAT sits inside the interface,
``pkt-srcaddr`` of egress (``pkt-dstaddr`` of ingress) is the execution environment's address
before (after) V2N translation: the packet's original address. Ports are the packet's at the
ENI (translated ports on a Hyperplane ENI); ICMP records carry ports 0, as AWS's do.

Aggregation: one record per (ENI, direction, action, 5-tuple, pkt addresses) per window
``floor(time / interval)``; ``start``/``end`` are the first and last packet times in it (integer
seconds); ``tcp-flags`` ORs FIN=1, SYN=2, RST=4 and SYN-ACK=18 (ACK is reported only with SYN).
Observation and aggregation run in compiled code (``hyperplane._core._records``): a reverse walk of
each packet's hops (undoing translations) and a hash table of records keyed in full; the files
are formatted in compiled code too (``hyperplane._core._text``).

The record, the formats and the files (``hyperplane.formats.flow_log_files``) are re-exported
here: this module is the public ``hyperplane.flowlogs``.
"""

from __future__ import annotations

import functools
import gc
import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hyperplane._core import _text
from hyperplane._core._records import RecordTable
from hyperplane.dataplane.compiled_vpc import CompiledVpc, EniKind, Target
from hyperplane.dataplane.walk import BatchResult
from hyperplane.formats.flow_log_files import (
    DEFAULT_FORMAT,
    FIELDS,
    S3_DELIVERY_PERIOD,
    FlowLogError,
    FlowLogFormat,
    FlowLogFormatError,
    FlowLogRecord,
    _cloudwatch_streams,
    _s3_files,
    _text_of,
    read_cloudwatch,
    read_s3,
    s3_key,
    write_cloudwatch,
    write_s3,
)

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_INTERVAL",
    "FIELDS",
    "FlowLogAggregator",
    "FlowLogError",
    "FlowLogFormat",
    "FlowLogFormatError",
    "FlowLogRecord",
    "TRAFFIC_PATH",
    "read_cloudwatch",
    "read_s3",
    "s3_key",
    "write_cloudwatch",
    "write_s3",
]

DEFAULT_INTERVAL = 600  # seconds: AWS's default maximum aggregation interval (or 60)

# Route target -> traffic-path code of egress records: 1 through another resource in the same
# VPC (ENIs, NAT gateways, interface endpoints), 2 through an internet gateway or a gateway VPC
# endpoint, 4 through an intra-region VPC peering connection. AWS's 7/8 (the same for Nitro
# instances only) are not used: the emulator does not model instance types. 0 prints "-".
TRAFFIC_PATH: dict[Target, int] = {Target.LOCAL: 1, Target.ENI: 1, Target.NAT: 1, Target.IGW: 2,
                                   Target.GATEWAY_ENDPOINT: 2, Target.PEERING: 4}
_PATH_OF_TARGET = np.zeros(256, np.uint8)
for _t, _code in TRAFFIC_PATH.items():
    _PATH_OF_TARGET[_t] = _code


# -- records ----------------------------------------------------------------------------------
# A record's key is exactly three uint64 words (hyperplane._core._records observes and aggregates them):
#   a = src endpoint (ip << 16 | port: 48 bits) | small word << 48
#   b = dst endpoint (48) | ENI number << 48
#   c = window << 32 | original address (Hyperplane ENIs; else 0)
# small word: proto (8) | direction << 8 | action << 9 | traffic path << 10

_EGRESS = 1
_DIR_BIT, _ACTION_BIT, _PATH_SHIFT = 8, 9, 10
_PORT_MASK = np.uint64(0xFFFF)
_SHIFT16 = np.uint64(16)
_U48 = np.uint64(48)
_U32 = np.uint64(32)
MAX_ENIS = 1 << 16  # ENIs one aggregator can tell apart (they share a key word with an endpoint)


# -- the aggregator ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _EniMeta:
    id: str
    ip: int
    kind: EniKind
    subnet_id: str
    vpc_id: str | None
    instance_id: str | None
    az_id: str | None  # the subnet's Availability Zone id, when the topology knows it


_WRITES_WAITING = 2  # flushes whose records wait for the stream's writer thread, at most


class FlowLogAggregator:
    """Accumulates flow log records from batch results, per ENI, 5-tuple, action and window.

    ``account_id`` and ``region`` default to the topology's (from the first ``add``);
    ``interval`` is the maximum aggregation interval in seconds (AWS: 600, the default, or 60).
    Windows are ``floor(time / interval)``: a flow crossing a window boundary gets a record in
    each window. ``time_offset`` is added to every packet time first (a replay that runs on a
    virtual clock from 0 gives the capture's first timestamp, so records carry Unix times)."""

    def __init__(self, account_id: str | None = None, region: str | None = None,
                 interval: int = DEFAULT_INTERVAL, time_offset: float = 0.0) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)) or interval <= 0:
            raise FlowLogError(f"interval must be a positive whole number of seconds, not {interval!r}")
        if not np.isfinite(time_offset):
            raise FlowLogError(f"time_offset must be a finite number of seconds, not {time_offset!r}")
        self.time_offset = float(time_offset)  # added to packet times (a replay's virtual clock -> Unix)
        self.account_id = account_id
        self.region = region
        self.interval = int(interval)
        self._enis: list[_EniMeta] = []
        self._eni_uid: dict[str, int] = {}
        self._uid_cache: tuple[CompiledVpc, np.ndarray] | None = None  # compiled ENI index -> number
        self._reserved: tuple[CompiledVpc | None, np.ndarray] = (None, np.zeros(0, np.uint64))
        self._services: list[tuple[int, int, str]] | None = None
        self._records = RecordTable()
        self._stream: _Destination | None = None  # where ``flush`` writes (``stream``)
        self._flushed = 0  # records written by ``flush`` and forgotten
        # a stream's writer: flushed records are formatted and written on one thread, in order,
        # while the caller walks on (the formatting, compression and writes release the GIL)
        self._writer: ThreadPoolExecutor | None = None
        self._writing: list[Future] = []

    # -- input ---------------------------------------------------------------------------------

    def add(self, batch: BatchResult | Any, vpc: CompiledVpc | None = None) -> int:
        """Add what a batch's packets did at each ENI; returns the number of observations.

        ``batch`` is a :class:`BatchResult` (``Network.process``) with the :class:`CompiledVpc`
        it ran on (``net.compiled``; not needed when the result carries it as ``.vpc``), or a
        scripting ``Result`` that carries both (``.batch`` and ``.vpc``)."""
        if not isinstance(batch, BatchResult):
            inner, inner_vpc = getattr(batch, "batch", None), getattr(batch, "vpc", None)
            if not isinstance(inner, BatchResult):
                raise FlowLogError(f"a {type(batch).__name__} without a BatchResult (.batch) cannot be "
                                   "logged: flow logs need the stage facts of the packets")
            batch, vpc = inner, vpc or inner_vpc
        vpc = vpc or getattr(batch, "vpc", None)  # a BatchResult that knows its CompiledVpc
        if not isinstance(vpc, CompiledVpc):
            raise FlowLogError("add() needs the CompiledVpc the batch ran on (net.compiled)")
        uid = self._uids(vpc)
        facts = batch.facts
        packets = np.ascontiguousarray(batch.packets)
        walked = np.diff(facts.first_hop) > 0  # rows with hops: the ones that may be observed
        time = packets["time"][walked] + self.time_offset
        limit = float(self.interval) * 2.0**32  # windows are numbered in 32 bits
        if len(time) and not (time.min() >= 0 and time.max() < limit):  # NaN fails both
            bad = int(np.flatnonzero(~((time >= 0) & (time < limit)))[0])
            raise FlowLogError(f"packet row {int(np.flatnonzero(walked)[bad])}: time {float(time[bad])!r} "
                               f"(with the offset) is not a number of seconds from 0 to {limit:g}")
        seen = self._records.observe(facts.hops, facts.first_hop, packets,
                                     np.ascontiguousarray(batch.location, np.int32), vpc.nat_eni, _PATH_OF_TARGET,
                                     uid, (vpc.eni_kind == EniKind.HYPERPLANE).view(np.uint8),
                                     float(self.interval), self.time_offset, self._reserved[1],
                                     np.ascontiguousarray(vpc.eni_vpc, np.int32))
        for answer in batch.answers.values():  # a NAT gateway's RST crossed ENIs too
            seen += self.add(answer, answer.vpc or vpc)
        return seen

    def _uids(self, vpc: CompiledVpc) -> np.ndarray:
        if self._uid_cache is not None and self._uid_cache[0] is vpc:
            return self._uid_cache[1]
        self._reserved = (vpc, _reserved_addresses(vpc))
        topo = vpc.topology
        if self.account_id is None:
            self.account_id = topo.account_id
        if self.region is None:
            self.region = topo.region
        if self._services is None:
            self._services = _service_ranges(topo)
        uid = np.empty(len(vpc.enis), np.int64)
        for e in vpc.enis:
            if e.id not in self._eni_uid:
                if len(self._enis) >= MAX_ENIS:
                    raise FlowLogError(f"more than {MAX_ENIS} ENIs in one flow log aggregator")
                subnet_id = vpc.subnet_ids[e.subnet]
                subnet = topo.subnets.get(subnet_id)
                instance = getattr(e.ref, "instance_id", None) if e.kind == EniKind.PLAIN else None
                self._eni_uid[e.id] = len(self._enis)
                self._enis.append(_EniMeta(e.id, int(e.ip), EniKind(e.kind), subnet_id,
                                           subnet.vpc_id if subnet is not None else None, instance,
                                           subnet.availability_zone_id if subnet is not None else None))
            uid[e.index] = self._eni_uid[e.id]
        self._uid_cache = (vpc, uid)  # held, so that an id() cannot be reused under us
        return uid

    # -- output --------------------------------------------------------------------------------

    def __len__(self) -> int:
        """The number of records so far (those already written by ``flush`` included)."""
        return len(self._records) + self._flushed

    def records(self) -> list[FlowLogRecord]:
        """Every record so far, ordered by window, ENI, start time and addresses."""
        if self._flushed:
            raise FlowLogError("records were written as their windows closed (stream): read them from the files")
        t = self._table()
        if t is None:
            return []
        n = len(t["eni"])
        eni, enis = t["eni"], self._enis

        def by_eni(attr: str) -> list:
            return np.array([getattr(e, attr) for e in enis], dtype=object)[eni].tolist()

        def named(codes: np.ndarray) -> list:
            return np.array([None, *t["services"]], dtype=object)[codes + 1].tolist()

        path = t["path"]
        cols = [
            [self.account_id or "-"] * n, by_eni("id"), _ip_text(t["srcaddr"]), _ip_text(t["dstaddr"]),
            t["srcport"].tolist(), t["dstport"].tolist(), t["protocol"].tolist(), t["packets"].tolist(),
            t["bytes"].tolist(), t["start"].tolist(), t["end"].tolist(),
            np.where(t["reject"], "REJECT", "ACCEPT").astype(object).tolist(), ["OK"] * n,
            by_eni("vpc_id"), by_eni("subnet_id"), by_eni("instance_id"), t["tcp-flags"].tolist(), ["IPv4"] * n,
            _ip_text(t["pkt-srcaddr"]), _ip_text(t["pkt-dstaddr"]), [self.region] * n, by_eni("az_id"),
            named(t["pkt-src-aws-service"]), named(t["pkt-dst-aws-service"]),
            np.where(t["egress"], "egress", "ingress").astype(object).tolist(),
            np.where(path > 0, path, -1).astype(object).tolist(),
        ]
        cols[-1] = [None if p < 0 else p for p in cols[-1]]
        make = functools.partial(tuple.__new__, FlowLogRecord)  # no per-record argument parsing
        enabled = gc.isenabled()
        gc.disable()  # hundreds of thousands of new tuples, none of them in a cycle
        try:
            return list(map(make, zip(*cols)))
        finally:
            if enabled:
                gc.enable()

    def _table(self, t: dict[str, np.ndarray] | None = None) -> dict[str, Any] | None:
        """The records (``t``: those columns of the record table; all by default) as columns
        (numpy arrays by field name, ENIs and AWS services as codes), sorted by window, ENI,
        start time and addresses; None when there are none."""
        if t is None:
            t = self._records.columns()
        if not len(t["a"]):
            return None
        a, b, c = t["a"], t["b"], t["c"]
        small = (a >> _U48).astype(np.int64)
        proto = small & 0xFF
        egress = (small >> _DIR_BIT) & 1 == _EGRESS
        reject = (small >> _ACTION_BIT) & 1 == 1
        path = small >> _PATH_SHIFT
        eni = (b >> _U48).astype(np.int64)
        window = (c >> _U32).astype(np.int64)
        orig = c & np.uint64(0xFFFFFFFF)
        s_ip, d_ip = (a >> _SHIFT16) & np.uint64(0xFFFFFFFF), (b >> _SHIFT16) & np.uint64(0xFFFFFFFF)
        s_port, d_port = a & _PORT_MASK, b & _PORT_MASK
        eni_ip = np.array([e.ip for e in self._enis], np.uint64)[eni]
        srcaddr = np.where(egress, eni_ip, s_ip)
        dstaddr = np.where(egress, d_ip, eni_ip)
        pkt_src = np.where(egress & (orig != 0), orig, s_ip)
        pkt_dst = np.where(~egress & (orig != 0), orig, d_ip)
        start = np.floor(t["start"]).astype(np.int64)
        end = np.floor(t["end"]).astype(np.int64)
        order = np.lexsort((d_port, s_port, pkt_dst, pkt_src, egress, start, eni, window))
        names, src_service = self._services_of(pkt_src[order])
        _, dst_service = self._services_of(pkt_dst[order])
        return {
            "eni": eni[order], "srcaddr": srcaddr[order], "dstaddr": dstaddr[order],
            "srcport": s_port[order].astype(np.int64), "dstport": d_port[order].astype(np.int64),
            "protocol": proto[order], "packets": t["packets"][order].astype(np.int64),
            "bytes": t["bytes"][order].astype(np.int64), "start": start[order], "end": end[order],
            "reject": reject[order], "egress": egress[order], "path": np.where(egress, path, 0)[order],
            "tcp-flags": t["flags"][order].astype(np.int64), "pkt-srcaddr": pkt_src[order],
            "pkt-dstaddr": pkt_dst[order], "pkt-src-aws-service": src_service,
            "pkt-dst-aws-service": dst_service, "services": names,
        }

    def _text_columns(self, t: dict[str, Any], fmt: FlowLogFormat) -> list[tuple]:
        """The format's fields as columns for ``hyperplane._core._text.lines``."""
        enis = self._enis

        def words(codes: np.ndarray, table: list) -> tuple:
            present = [w for w in table]
            return (_text.WORDS, codes, [("-" if w is None else str(w)).encode() for w in present])

        def const(value: Any) -> tuple:
            return (_text.CONSTANT, _text_of(value).encode())

        columns = []
        for name in fmt.fields:
            if name == "version":
                columns.append(const(fmt.version))
            elif name in ("interface-id", "vpc-id", "subnet-id", "instance-id", "az-id"):
                attr = {"interface-id": "id"}.get(name, name.replace("-", "_"))
                columns.append(words(t["eni"], [getattr(e, attr) for e in enis]))
            elif name in ("srcaddr", "dstaddr", "pkt-srcaddr", "pkt-dstaddr"):
                columns.append((_text.ADDRESS, t[name]))
            elif name in ("srcport", "dstport", "protocol", "packets", "bytes", "start", "end", "tcp-flags"):
                columns.append((_text.INTEGER, t[name]))
            elif name == "traffic-path":
                columns.append((_text.INTEGER, np.where(t["path"] > 0, t["path"], -1)))
            elif name == "action":
                columns.append(words(t["reject"].astype(np.int32), ["ACCEPT", "REJECT"]))
            elif name == "flow-direction":
                columns.append(words(t["egress"].astype(np.int32), ["ingress", "egress"]))
            elif name in ("pkt-src-aws-service", "pkt-dst-aws-service"):
                columns.append(words(t[name], t["services"]))
            else:
                columns.append(const({"account-id": self.account_id or "-", "log-status": "OK", "type": "IPv4",
                                      "region": self.region}.get(name)))
        return columns

    def write(self, folder: str | Path, fmt: FlowLogFormat = DEFAULT_FORMAT, log_group: str = "vpc-flow-logs",
              flow_log_id: str = "fl-0123456789abcdef0") -> dict[str, list[Path]]:
        """Every record, in both destinations' layouts: ``<folder>/cloudwatch/<log_group>/<eni>-all``
        and ``<folder>/s3/AWSLogs/...``. Returns the files by destination. After ``stream`` to
        ``folder``, it writes the records not flushed yet and ends the files begun there."""
        stream = self._stream
        if stream is not None and stream.folder == Path(folder):
            try:
                self.flush(np.inf)
            finally:  # the stream ends, its writer's errors raised, whatever happened
                self._stream = None
                self._finish_writing()
        else:
            stream = _Destination(Path(folder), fmt, log_group, flow_log_id)
            self._emit(self._table(), stream, np.inf)
        return stream.files()

    def stream(self, folder: str | Path, fmt: FlowLogFormat = DEFAULT_FORMAT, log_group: str = "vpc-flow-logs",
               flow_log_id: str = "fl-0123456789abcdef0") -> None:
        """Write to ``folder`` (as ``write``) as windows close: ``flush`` writes and forgets the
        records of closed windows, ``write(folder)`` the rest. The files are those one ``write``
        at the end would give; memory holds only the open windows' records."""
        self._finish_writing()
        self._stream = _Destination(Path(folder), fmt, log_group, flow_log_id)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hyperplane-flow-logs")

    def flush(self, before: float) -> int:
        """Write the records of every window that ends by ``before`` (seconds, offset included),
        when no packet earlier than ``before`` is still to come; returns how many. They are
        formatted and written on the stream's writer thread, in order, while the caller goes on:
        the files are complete when ``write(folder)`` returns (a failed write is raised by the
        next ``flush`` or by ``write``)."""
        if self._stream is None:
            raise FlowLogError("flush() needs a destination: stream(folder) first")
        window = int(min(max(np.floor(before / self.interval), 0), 2.0**32))  # the first still open
        taken = self._records.take(window)
        self._flushed += len(taken["a"])
        # a failed write is raised at the next flush; and at most _WRITES_WAITING flushes wait
        # for the writer, whose records stay in memory until written: a replay walking faster
        # than its flow logs are written waits here, instead of holding the capture's records
        while self._writing and (self._writing[0].done() or len(self._writing) >= _WRITES_WAITING):
            self._writing.pop(0).result()
        assert self._writer is not None
        self._writing.append(self._writer.submit(self._emit_taken, taken, self._stream,
                                                 window * self.interval if window < 2**32 else np.inf))
        return len(taken["a"])

    def _emit_taken(self, taken: dict[str, np.ndarray], stream: _Destination, before: float) -> None:
        self._emit(self._table(taken), stream, before)

    def _finish_writing(self) -> None:
        """Wait for the stream's writes; the first that failed is raised."""
        writing, self._writing = self._writing, []
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        for done in writing:
            done.result()

    def _emit(self, t: dict[str, Any] | None, stream: _Destination, before: float) -> None:
        """Write records ``t`` (a ``_table``; None: none) to ``stream``: appended to each ENI's
        CloudWatch stream, and to the S3 files of the delivery periods that no record yet to
        be written can reach (every one ends at ``before`` or later); a period still open keeps
        its text for the next call."""
        if t is not None:
            columns = self._text_columns(t, stream.fmt)
            # CloudWatch: one stream per ENI, each in time order
            ids = np.array([e.id for e in self._enis], dtype=object)
            rank = np.argsort(np.argsort(ids, kind="stable"), kind="stable")[t["eni"]]
            order = np.lexsort((t["end"], t["start"], rank))
            eni_sorted = t["eni"][order]
            stream.cloudwatch_streams((ids[eni_sorted[lo]], _text.lines(columns, order[lo:hi])[0])
                                      for lo, hi in _runs(eni_sorted))
            # S3: one file per delivery period, records in their order
            delivered = -(-t["end"] // S3_DELIVERY_PERIOD) * S3_DELIVERY_PERIOD
            order = np.argsort(delivered, kind="stable")
            period = delivered[order]
            for lo, hi in _runs(period):
                stream.pending[int(period[lo])] += _text.lines(columns, order[lo:hi])[0]
        # a record yet to be written ends at floor(its time) >= floor(before): its period is at least this
        reachable = -(-np.floor(before) // S3_DELIVERY_PERIOD) * S3_DELIVERY_PERIOD if before < np.inf else np.inf
        stream.s3_files([p for p in sorted(stream.pending) if p < reachable], self.account_id, self.region)

    def _services_of(self, ips: np.ndarray) -> tuple[list[str], np.ndarray]:
        """pkt-src-aws-service / pkt-dst-aws-service of each address: (names, a code per address
        into them, -1 where the address is not a service's)."""
        names: list[str] = []
        which = np.full(len(ips), -1, np.int32)
        for first, last, name in self._services or ():
            names.append(name)
            which[(ips >= first) & (ips <= last)] = len(names) - 1
        return names, which


class _Destination:
    """A folder being written: the CloudWatch streams begun, the S3 periods' text still open."""

    def __init__(self, folder: Path, fmt: FlowLogFormat, log_group: str, flow_log_id: str) -> None:
        self.folder, self.fmt, self.log_group, self.flow_log_id = folder, fmt, log_group, flow_log_id
        self.streams: dict[str, Path] = {}  # ENI id -> its stream's file
        self.pending: defaultdict[int, bytes] = defaultdict(bytes)  # delivery period -> its records' text
        self.s3: list[Path] = []
        _cloudwatch_streams(folder / "cloudwatch", log_group, [])  # the log group, records or not

    def cloudwatch_streams(self, streams: Iterable[tuple[str, bytes]]) -> None:
        for eni, data in streams:
            begun = eni in self.streams
            self.streams.update(_cloudwatch_streams(self.folder / "cloudwatch", self.log_group, [(eni, data)],
                                                    append=begun))

    def s3_files(self, periods: list[int], account_id: str | None, region: str | None) -> None:
        self.s3 += _s3_files(self.folder / "s3", account_id or "-", region or "-", self.flow_log_id, self.fmt,
                             [(p, self.pending.pop(p)) for p in periods])

    def files(self) -> dict[str, list[Path]]:
        return {"cloudwatch": [self.streams[eni] for eni in sorted(self.streams)], "s3": self.s3}


def _runs(keys: np.ndarray) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` of each run of equal ``keys``: a file's records, formatted one file at a time
    so that the text of every record is never in memory at once."""
    cuts = np.flatnonzero(np.diff(keys)) + 1
    return zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(keys)].tolist())


def _reserved_addresses(vpc: CompiledVpc) -> np.ndarray:
    """The first four addresses of every subnet (network, VPC router, DNS, future use) as
    sorted ``VPC number << 32 | address``: AWS's flow logs do not capture traffic to or from them."""
    topo = vpc.topology
    keys = [(int(vpc.subnet_vpc[k]) << 32) | (int(topo.subnets[sid].cidr.network_address) + j)
            for k, sid in enumerate(vpc.subnet_ids) for j in range(4)]
    return np.array(sorted(keys), np.uint64)


def _ip_text(ips: np.ndarray) -> list[str]:
    """Dotted text of uint32 addresses (each distinct address formatted once)."""
    unique, inverse = np.unique(ips, return_inverse=True)
    text = np.array([str(ipaddress.IPv4Address(int(a))) for a in unique], dtype=object)
    return text[inverse].tolist()


def _service_ranges(topology) -> list[tuple[int, int, str]]:
    """Public ranges of AWS-managed prefix lists (com.amazonaws.<region>.<service>) by service
    name, for pkt-src-aws-service / pkt-dst-aws-service."""
    out = []
    for pl in topology.prefix_lists.values():
        m = re.fullmatch(r"com\.amazonaws\.[a-z0-9-]+\.([a-z0-9-]+)", pl.name or "")
        if m is None:
            continue
        for cidr in pl.cidrs:
            net = ipaddress.IPv4Network(cidr)
            if net.is_global:
                out.append((int(net.network_address), int(net.broadcast_address), m.group(1).upper()))
    return out
