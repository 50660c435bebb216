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
ENI (a NAT gateway or Hyperplane ENI without a connection for it: no filter refused it). Traffic
to the VPC DNS resolver (base + 2) is not logged, as in AWS.

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
Everything is vectorized: observations by a reverse walk of the facts (undoing translations),
grouping by a hash-and-index sort verified against the full keys.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import ipaddress
import re
import time as _time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields as dc_fields
from pathlib import Path
from typing import Any

import numpy as np

from hyperplane.errors import HyperplaneError
from hyperplane.pipeline import BatchResult
from hyperplane.records import ACK, FIN, ICMP, RST, SYN, TCP, UDP
from hyperplane.vpc import CompiledVpc, EniKind, Target

__all__ = [
    "DEFAULT_FORMAT",
    "FIELDS",
    "FlowLogAggregator",
    "FlowLogError",
    "FlowLogFormat",
    "FlowLogFormatError",
    "FlowLogRecord",
    "TRAFFIC_PATH",
    "read_cloudwatch",
    "read_s3",
    "write_cloudwatch",
    "write_s3",
]

DEFAULT_INTERVAL = 600  # seconds: AWS's default maximum aggregation interval (or 60)
S3_DELIVERY_PERIOD = 300  # AWS publishes S3 log files every 5 minutes


class FlowLogError(HyperplaneError):
    """A flow log cannot be built or written as asked."""


class FlowLogFormatError(FlowLogError, ValueError):
    """A custom log format names an unknown field or is not ``${field} ...``."""


# -- the record -------------------------------------------------------------------------------

# field name -> version that introduced it (AWS "Flow log records", available fields)
FIELDS: dict[str, int] = {
    "version": 2, "account-id": 2, "interface-id": 2, "srcaddr": 2, "dstaddr": 2, "srcport": 2,
    "dstport": 2, "protocol": 2, "packets": 2, "bytes": 2, "start": 2, "end": 2, "action": 2,
    "log-status": 2,
    "vpc-id": 3, "subnet-id": 3, "instance-id": 3, "tcp-flags": 3, "type": 3, "pkt-srcaddr": 3,
    "pkt-dstaddr": 3,
    "region": 4, "az-id": 4, "sublocation-type": 4, "sublocation-id": 4,
    "pkt-src-aws-service": 5, "pkt-dst-aws-service": 5, "flow-direction": 5, "traffic-path": 5,
    # version 7 (ECS) and 8: never applicable here, always "-"
    "ecs-cluster-arn": 7, "ecs-cluster-name": 7, "ecs-container-instance-arn": 7,
    "ecs-container-instance-id": 7, "ecs-container-id": 7, "ecs-second-container-id": 7,
    "ecs-service-name": 7, "ecs-task-definition-arn": 7, "ecs-task-arn": 7, "ecs-task-id": 7,
    "reject-reason": 8,
}
_V2_FIELDS = [name for name, version in FIELDS.items() if version == 2]

# Route target -> traffic-path code of egress records: 1 through another resource in the same
# VPC (ENIs, NAT gateways, interface endpoints), 2 through an internet gateway or a gateway VPC
# endpoint, 4 through an intra-region VPC peering connection. AWS's 7/8 (the same for Nitro
# instances only) are not used: the emulator does not model instance types. 0 prints "-".
TRAFFIC_PATH: dict[Target, int] = {Target.LOCAL: 1, Target.ENI: 1, Target.NAT: 1, Target.IGW: 2,
                                   Target.GATEWAY_ENDPOINT: 2, Target.PEERING: 4}
_PATH_OF_TARGET = np.zeros(256, np.uint8)
for _t, _code in TRAFFIC_PATH.items():
    _PATH_OF_TARGET[_t] = _code


@dataclass(frozen=True, slots=True)
class FlowLogRecord:
    """One flow log record; attributes are the AWS field names with ``_`` for ``-``.

    ``None`` is an absent value (printed ``-``). ``version`` is not stored: it belongs to the
    format (the highest version among its fields)."""

    account_id: str
    interface_id: str
    srcaddr: str
    dstaddr: str
    srcport: int
    dstport: int
    protocol: int
    packets: int
    bytes: int
    start: int
    end: int
    action: str  # ACCEPT | REJECT
    log_status: str
    vpc_id: str | None
    subnet_id: str | None
    instance_id: str | None
    tcp_flags: int
    type: str
    pkt_srcaddr: str
    pkt_dstaddr: str
    region: str | None
    az_id: str | None
    pkt_src_aws_service: str | None
    pkt_dst_aws_service: str | None
    flow_direction: str  # ingress | egress
    traffic_path: int | None

    def get(self, field: str) -> Any:
        """The value of an AWS field name (``pkt-srcaddr``), ``None`` when absent."""
        if field not in FIELDS:
            raise FlowLogFormatError(f"unknown flow log field {field!r}")
        return getattr(self, field.replace("-", "_"), None)


_RECORD_ATTRS = {f.name for f in dc_fields(FlowLogRecord)}


class FlowLogFormat:
    """A flow log record format: the default (version 2) or a custom ``${field} ...`` string.

    >>> FlowLogFormat("${version} ${interface-id} ${pkt-srcaddr} ${flow-direction}").version
    5
    """

    _TOKEN = re.compile(r"\$\{([^}]*)\}")

    def __init__(self, spec: str | Sequence[str] | None = None) -> None:
        if spec is None:
            names = list(_V2_FIELDS)
        elif isinstance(spec, str):
            names = self._parse(spec)
        else:
            names = list(spec)
        if not names:
            raise FlowLogFormatError("a flow log format needs at least one field")
        for k, name in enumerate(names):
            if name not in FIELDS:
                close = difflib.get_close_matches(name, FIELDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise FlowLogFormatError(f"log format field {k + 1}: unknown field {name!r}{hint}")
        self.fields: tuple[str, ...] = tuple(names)
        self.version: int = max(FIELDS[n] for n in names)
        self._getters = [self._getter(n) for n in names]

    @classmethod
    def _parse(cls, spec: str) -> list[str]:
        names = []
        for k, token in enumerate(spec.split()):
            m = cls._TOKEN.fullmatch(token)
            if m is None:
                raise FlowLogFormatError(
                    f"log format token {k + 1} {token!r}: expected ${{field}}, e.g. ${{srcaddr}}")
            names.append(m.group(1))
        return names

    def _getter(self, name: str):
        attr = name.replace("-", "_")
        if name == "version":
            version = str(self.version)
            return lambda r: version
        if attr not in _RECORD_ATTRS:  # ECS fields, reject-reason, sublocations: never apply
            return lambda r: "-"
        return lambda r: _text(getattr(r, attr))

    @property
    def spec(self) -> str:
        """The ``${field} ...`` string (as AWS's LogFormat parameter)."""
        return " ".join(f"${{{n}}}" for n in self.fields)

    @property
    def header(self) -> str:
        """The first line of an S3 log file: the field names, space separated."""
        return " ".join(self.fields)

    def format(self, record: FlowLogRecord) -> str:
        """One record as a line (no newline), absent values as ``-``."""
        return " ".join(g(record) for g in self._getters)

    def parse(self, line: str) -> dict[str, str]:
        """A line written in this format back to {field: text}."""
        values = line.split(" ")
        if len(values) != len(self.fields):
            raise FlowLogError(f"expected {len(self.fields)} fields, got {len(values)}: {line!r}")
        return dict(zip(self.fields, values))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FlowLogFormat) and other.fields == self.fields

    def __repr__(self) -> str:
        return f"FlowLogFormat({self.spec!r})"


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


DEFAULT_FORMAT = FlowLogFormat()


# -- observations: the reverse walk of the facts ----------------------------------------------

_ACCEPT, _REJECT, _SKIP = 0, 1, 2
_INGRESS, _EGRESS = 0, 1
_PORT_MASK = np.uint64(0xFFFF)
_SHIFT16 = np.uint64(16)


def _ep(ip: np.ndarray, port: np.ndarray) -> np.ndarray:
    """An endpoint (address, port) as one uint64: ip << 16 | port."""
    return (np.asarray(ip, np.uint64) << _SHIFT16) | np.asarray(port, np.uint64)


def _bool(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.view(bool) if a.dtype == np.uint8 else a.astype(bool)


def _observe(batch: BatchResult, vpc: CompiledVpc) -> dict[str, np.ndarray]:
    """Every (row, ENI, direction, action, header) a batch's packets produced, as columns.

    Walks the stage facts backwards from the packets as delivered, undoing each translation
    (its facts hold the values before it), so that each stage sees the header it had. Per-row
    state carries what later stages decided back to the SG egress of the same hop (NACL out,
    DNS, route target)."""
    packets = batch.packets
    n = len(packets)
    src = _ep(packets["src_ip"], packets["src_port"])
    dst = _ep(packets["dst_ip"], packets["dst_port"])
    egress_state = np.zeros(n, np.uint8)  # of the hop being walked back: ACCEPT/REJECT/SKIP
    path_state = np.zeros(n, np.uint8)
    orig_src = np.zeros(n, np.uint32)  # environment address before V2N out (Hyperplane egress)
    orig_dst = np.zeros(n, np.uint32)  # environment address after V2N in (Hyperplane ingress)
    for stage, rows, cols in batch.facts.stages:
        if stage == "v2n_out":
            orig_src[rows] = cols["src_ip"]

    parts: list[tuple] = []  # (rows, eni, direction, action, src_ep, dst_ep, orig, path)

    def add(rows, eni, direction, action, s, d, orig, path) -> None:
        if len(rows):
            m = len(rows)
            parts.append((rows, np.broadcast_to(np.asarray(eni, np.int32), (m,)), direction,
                          np.broadcast_to(np.asarray(action, np.uint8), (m,)), s, d,
                          np.broadcast_to(np.asarray(orig, np.uint32), (m,)),
                          np.broadcast_to(np.asarray(path, np.uint8), (m,))))

    for stage, rows, cols in reversed(batch.facts.stages):
        if stage == "sg_ingress":
            add(rows, cols["eni"], _INGRESS, np.where(_bool(cols["allowed"]), _ACCEPT, _REJECT),
                src[rows], dst[rows], orig_dst[rows], 0)
        elif stage == "sg_egress":
            allowed = _bool(cols["allowed"])
            state = egress_state[rows]
            keep = state != _SKIP
            action = np.where(allowed & (state == _ACCEPT), _ACCEPT, _REJECT).astype(np.uint8)
            path = np.where(allowed, path_state[rows], 0)
            if keep.all():
                add(rows, cols["eni"], _EGRESS, action, src[rows], dst[rows], orig_src[rows], path)
            else:
                r = rows[keep]
                add(r, np.asarray(cols["eni"])[keep], _EGRESS, action[keep], src[r], dst[r],
                    orig_src[r], path[keep])
            egress_state[rows] = _ACCEPT
            path_state[rows] = 0
        elif stage == "nacl_out":
            egress_state[rows] = np.where(_bool(cols["allowed"]), _ACCEPT, _REJECT)
        elif stage == "dns":
            egress_state[rows] = _SKIP
        elif stage == "route":
            path_state[rows] = _PATH_OF_TARGET[np.asarray(cols["target"], np.uint8)]
        elif stage == "nacl_in":
            denied = ~_bool(cols["allowed"])
            if denied.any():
                r = rows[denied]  # refused here: the row ended at the ENI it was entering
                add(r, batch.location[r], _INGRESS, _REJECT, src[r], dst[r], 0, 0)
        elif stage in ("nat_out", "nat_in"):
            s = _ep(cols["src_ip"], cols["src_port"])
            d = _ep(cols["dst_ip"], cols["dst_port"])
            add(rows, vpc.nat_eni[np.asarray(cols["nat"])], _INGRESS, _ACCEPT, s, d, 0, 0)
            src[rows] = s
            dst[rows] = d
        elif stage == "v2n_in":
            passed = np.asarray(cols["status"]) < 16
            orig_dst[rows] = np.where(passed, cols["to_ip"], 0)
            dst[rows] = _ep(cols["dst_ip"], cols["dst_port"])
        elif stage == "v2n_out":
            src[rows] = _ep(cols["src_ip"], cols["src_port"])
        elif stage == "igw_out":
            src[rows] = (np.asarray(cols["private_ip"], np.uint64) << _SHIFT16) | (src[rows] & _PORT_MASK)
        elif stage == "igw_in":
            dst[rows] = (np.asarray(cols["public_ip"], np.uint64) << _SHIFT16) | (dst[rows] & _PORT_MASK)

    names = ("row", "eni", "direction", "action", "src", "dst", "orig", "path")
    if not parts:
        dtypes = (np.int64, np.int32, np.uint8, np.uint8, np.uint64, np.uint64, np.uint32, np.uint8)
        return {k: np.zeros(0, t) for k, t in zip(names, dtypes)}
    out = {}
    for k, name in enumerate(names):
        if name == "direction":
            out[name] = np.concatenate([np.full(len(p[0]), p[2], np.uint8) for p in parts])
        else:
            out[name] = np.concatenate([p[k] for p in parts])
    return out


# -- grouping ---------------------------------------------------------------------------------

_KEYS = ("eni", "window", "small", "src", "dst", "orig")
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)


def _mix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _S33)
    h = h * _M1
    h = h ^ (h >> _S33)
    h = h * _M2
    return h ^ (h >> _S33)


def _hash_keys(t: dict[str, np.ndarray]) -> np.ndarray:
    """A 64-bit hash of each row's key (collisions are detected and resolved by the caller)."""
    with np.errstate(over="ignore"):
        h = _mix(t["src"] * _M1 + t["dst"])
        h = _mix(h ^ (t["small"] * _M2 + t["window"].astype(np.uint64)))
        h = _mix(h ^ (t["orig"].astype(np.uint64) + (t["eni"].astype(np.uint64) << np.uint64(32))))
    return h


def _group(t: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): rows ordered so that equal keys are adjacent, and where groups start.

    Sorts the hash with the row index in its low bits (one fast sort of uint64 instead of an
    argsort), then compares the full keys of neighbours: a hash collision that put different
    keys in one run is resolved by sorting that run on the full keys."""
    n = len(t["src"])
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    bits = max(1, (n - 1).bit_length())
    low = np.uint64((1 << bits) - 1)
    h = _hash_keys(t)
    packed = np.sort((h & ~low) | np.arange(n, dtype=np.uint64))
    order = (packed & low).astype(np.int64)
    hs = packed >> np.uint64(bits)
    same_hash = hs[1:] == hs[:-1]
    keys = [t[k][order] for k in _KEYS]
    same_key = np.ones(n - 1, bool)
    for k in keys:
        same_key &= k[1:] == k[:-1]
    collided = same_hash & ~same_key
    if collided.any():
        order, same_key = _resolve_collisions(t, order, hs, same_hash)
    starts = np.concatenate(([0], np.flatnonzero(~same_key) + 1))
    return order, starts


def _resolve_collisions(t, order, hs, same_hash):
    """Re-sort every run of equal hashes on the full keys (rare: colliding hashes)."""
    run_id = np.concatenate(([0], np.cumsum(~same_hash)))
    # lexsort's last key is primary: runs stay where they are, rows inside a run get key order
    order = order[np.lexsort([t[k][order] for k in _KEYS] + [run_id])]
    same_key = np.ones(len(order) - 1, bool)
    for k in _KEYS:
        col = t[k][order]
        same_key &= col[1:] == col[:-1]
    return order, same_key


def _reduce(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One row per key: packets and bytes summed, start min, end max, flags ORed."""
    order, starts = _group(t)
    if len(order) == 0:
        return t
    out = {k: t[k][order[starts]] for k in _KEYS}
    out["packets"] = np.add.reduceat(t["packets"][order], starts)
    out["bytes"] = np.add.reduceat(t["bytes"][order], starts)
    out["start"] = np.minimum.reduceat(t["start"][order], starts)
    out["end"] = np.maximum.reduceat(t["end"][order], starts)
    out["flags"] = np.bitwise_or.reduceat(t["flags"][order], starts)
    return out


def _concat(tables: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


def _tcp_flags(proto: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """AWS's tcp-flags of each packet: FIN, SYN, RST, and ACK only together with SYN (18)."""
    f = flags & np.uint8(FIN | SYN | RST)
    syn_ack = (flags & np.uint8(SYN | ACK)) == np.uint8(SYN | ACK)
    f = f | np.where(syn_ack, np.uint8(ACK), np.uint8(0))
    return np.where(proto == TCP, f, 0).astype(np.uint8)


# small key word: direction (1) | action (1) | proto (8) | path (4)
def _small(direction, action, proto, path) -> np.ndarray:
    return (direction.astype(np.uint64) | (action.astype(np.uint64) << np.uint64(1))
            | (proto.astype(np.uint64) << np.uint64(2)) | (path.astype(np.uint64) << np.uint64(10)))


# -- the aggregator ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _EniMeta:
    id: str
    ip: int
    kind: EniKind
    subnet_id: str
    vpc_id: str | None
    instance_id: str | None


class FlowLogAggregator:
    """Accumulates flow log records from batch results, per ENI, 5-tuple, action and window.

    ``account_id`` and ``region`` default to the topology's (from the first ``add``);
    ``interval`` is the maximum aggregation interval in seconds (AWS: 600 or 60)."""

    def __init__(self, account_id: str | None = None, region: str | None = None,
                 interval: int = DEFAULT_INTERVAL, compact_every: int = 1 << 21) -> None:
        if not (isinstance(interval, (int, np.integer)) and interval > 0):
            raise FlowLogError(f"interval must be a positive whole number of seconds, not {interval!r}")
        self.account_id = account_id
        self.region = region
        self.interval = int(interval)
        self._enis: list[_EniMeta] = []
        self._eni_uid: dict[str, int] = {}
        self._uid_cache: tuple[int, np.ndarray] | None = None  # (id(vpc), compiled index -> uid)
        self._services: list[tuple[int, int, str]] = []  # (first, last, service) public ranges
        self._parts: list[dict[str, np.ndarray]] = []
        self._pending = 0
        self._compacted = 0
        self._compact_every = compact_every

    # -- input ---------------------------------------------------------------------------------

    def add(self, batch: BatchResult | Any, vpc: CompiledVpc | None = None) -> int:
        """Add what a batch's packets did at each ENI; the number of observations added.

        ``batch`` is a :class:`BatchResult` (``Network.process``) with the :class:`CompiledVpc`
        it ran on (``net.compiled``), or a scripting ``Result`` that carries both (``.batch``
        and ``.vpc``)."""
        if not isinstance(batch, BatchResult):
            inner, inner_vpc = getattr(batch, "batch", None), getattr(batch, "vpc", None)
            if not isinstance(inner, BatchResult):
                raise FlowLogError(f"{type(batch).__name__} carries no BatchResult (.batch): flow logs "
                                   "need the stage facts of the packets")
            batch, vpc = inner, vpc or inner_vpc
        if not isinstance(vpc, CompiledVpc):
            raise FlowLogError("add() needs the CompiledVpc the batch ran on (net.compiled)")
        uid = self._uids(vpc)
        obs = _observe(batch, vpc)
        m = len(obs["row"])
        if m == 0:
            return 0
        pk = batch.packets[obs["row"]]
        proto = pk["proto"]
        ported = (proto == TCP) | (proto == UDP)
        s, d = obs["src"], obs["dst"]
        if not ported.all():  # ICMP and others: ports 0, as AWS logs them
            s = np.where(ported, s, s & ~_PORT_MASK)
            d = np.where(ported, d, d & ~_PORT_MASK)
        eni = obs["eni"]
        hyperplane = vpc.eni_kind[eni] == EniKind.HYPERPLANE
        time = pk["time"]
        table = {
            "eni": uid[eni],
            "window": np.floor(time / self.interval).astype(np.int64),
            "small": _small(obs["direction"], obs["action"], proto, obs["path"]),
            "src": s,
            "dst": d,
            "orig": np.where(hyperplane, obs["orig"], 0).astype(np.uint32),
            "packets": np.ones(m, np.int64),
            "bytes": pk["length"].astype(np.int64),
            "start": time,
            "end": time,
            "flags": _tcp_flags(proto, pk["flags"]),
        }
        self._parts.append(_reduce(table))
        self._pending += len(self._parts[-1]["src"])
        if self._pending > self._compact_every:
            self._compact()
        return m

    def _compact(self) -> None:
        if len(self._parts) > 1:
            self._parts = [_reduce(_concat(self._parts))]
        self._pending = self._compacted = len(self._parts[0]["src"]) if self._parts else 0

    def _uids(self, vpc: CompiledVpc) -> np.ndarray:
        if self._uid_cache is not None and self._uid_cache[0] == id(vpc):
            return self._uid_cache[1]
        topo = vpc.topology
        if self.account_id is None:
            self.account_id = topo.account_id
        if self.region is None:
            self.region = topo.region
        if not self._services:
            self._services = _service_ranges(topo)
        uid = np.empty(len(vpc.enis), np.int32)
        for e in vpc.enis:
            if e.id not in self._eni_uid:
                subnet_id = vpc.subnet_ids[e.subnet]
                subnet = topo.subnets.get(subnet_id)
                instance = getattr(e.ref, "instance_id", None) if e.kind == EniKind.PLAIN else None
                self._eni_uid[e.id] = len(self._enis)
                self._enis.append(_EniMeta(e.id, int(e.ip), EniKind(e.kind), subnet_id,
                                           subnet.vpc_id if subnet is not None else None, instance))
            uid[e.index] = self._eni_uid[e.id]
        self._uid_cache = (id(vpc), uid)
        return uid

    # -- output --------------------------------------------------------------------------------

    def __len__(self) -> int:
        self._compact()
        return self._compacted

    def records(self) -> list[FlowLogRecord]:
        """Every record so far, ordered by window, ENI, start time and addresses."""
        self._compact()
        if not self._parts:
            return []
        t = self._parts[0]
        enis = self._enis
        small = t["small"]
        direction = (small & np.uint64(1)).astype(np.uint8)
        action = ((small >> np.uint64(1)) & np.uint64(1)).astype(np.uint8)
        proto = ((small >> np.uint64(2)) & np.uint64(0xFF)).astype(np.int64)
        path = ((small >> np.uint64(10)) & np.uint64(0xF)).astype(np.int64)
        eni_ip = np.array([e.ip for e in enis], np.uint64)[t["eni"]]
        s_ip, d_ip = t["src"] >> _SHIFT16, t["dst"] >> _SHIFT16
        s_port, d_port = t["src"] & _PORT_MASK, t["dst"] & _PORT_MASK
        egress = direction == _EGRESS
        srcaddr = np.where(egress, eni_ip, s_ip)
        dstaddr = np.where(egress, d_ip, eni_ip)
        orig = t["orig"].astype(np.uint64)
        pkt_src = np.where(egress & (orig != 0), orig, s_ip)
        pkt_dst = np.where(~egress & (orig != 0), orig, d_ip)
        start = np.floor(t["start"]).astype(np.int64)
        end = np.floor(t["end"]).astype(np.int64)
        order = np.lexsort((d_port, s_port, pkt_dst, pkt_src, direction, start, t["eni"], t["window"]))
        ip = _IpText()
        svc = self._service_of
        out = []
        for k in order.tolist():
            e = enis[int(t["eni"][k])]
            ps, pd = int(pkt_src[k]), int(pkt_dst[k])
            out.append(FlowLogRecord(
                account_id=self.account_id or "-", interface_id=e.id,
                srcaddr=ip(int(srcaddr[k])), dstaddr=ip(int(dstaddr[k])),
                srcport=int(s_port[k]), dstport=int(d_port[k]), protocol=int(proto[k]),
                packets=int(t["packets"][k]), bytes=int(t["bytes"][k]),
                start=int(start[k]), end=int(end[k]),
                action="REJECT" if action[k] else "ACCEPT", log_status="OK",
                vpc_id=e.vpc_id, subnet_id=e.subnet_id, instance_id=e.instance_id,
                tcp_flags=int(t["flags"][k]), type="IPv4",
                pkt_srcaddr=ip(ps), pkt_dstaddr=ip(pd), region=self.region, az_id=None,
                pkt_src_aws_service=svc(ps), pkt_dst_aws_service=svc(pd),
                flow_direction="egress" if egress[k] else "ingress",
                traffic_path=int(path[k]) if egress[k] and path[k] else None))
        return out

    def _service_of(self, ip: int) -> str | None:
        for first, last, name in self._services:
            if first <= ip <= last:
                return name
        return None


class _IpText:
    """Dotted text of uint32 addresses, cached (records repeat few addresses)."""

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def __call__(self, ip: int) -> str:
        text = self._cache.get(ip)
        if text is None:
            text = self._cache[ip] = str(ipaddress.IPv4Address(ip))
        return text


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


# -- sinks ------------------------------------------------------------------------------------

def write_cloudwatch(folder: str | Path, records: Iterable[FlowLogRecord],
                     log_group: str = "vpc-flow-logs", fmt: FlowLogFormat = DEFAULT_FORMAT) -> list[Path]:
    """Write records as CloudWatch Logs does: one log stream per ENI,
    ``<folder>/<log_group>/<eni-id>-all``, one record per line in time order. Returns the
    stream files written."""
    by_eni: dict[str, list[FlowLogRecord]] = {}
    for r in records:
        by_eni.setdefault(r.interface_id, []).append(r)
    group = Path(folder) / log_group
    try:
        group.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FlowLogError(f"{group}: cannot create the log group folder: {e.strerror}") from None
    written = []
    for eni, rs in sorted(by_eni.items()):
        rs.sort(key=lambda r: (r.start, r.end))
        path = group / f"{eni}-all"
        _write(path, "".join(fmt.format(r) + "\n" for r in rs).encode())
        written.append(path)
    return written


def s3_key(account_id: str, region: str, flow_log_id: str, delivered: int, digest: str) -> str:
    """``AWSLogs/{account}/vpcflowlogs/{region}/{yyyy}/{mm}/{dd}/{account}_vpcflowlogs_{region}_
    {flow-log-id}_{yyyymmddTHHmmZ}_{hash}.log.gz`` for a file delivered at ``delivered`` (Unix s)."""
    t = _time.gmtime(delivered)
    stamp = _time.strftime("%Y%m%dT%H%MZ", t)
    return (f"AWSLogs/{account_id}/vpcflowlogs/{region}/{t.tm_year:04d}/{t.tm_mon:02d}/{t.tm_mday:02d}/"
            f"{account_id}_vpcflowlogs_{region}_{flow_log_id}_{stamp}_{digest}.log.gz")


def write_s3(folder: str | Path, records: Iterable[FlowLogRecord], account_id: str, region: str,
             flow_log_id: str = "fl-0123456789abcdef0", fmt: FlowLogFormat = DEFAULT_FORMAT) -> list[Path]:
    """Write records as VPC Flow Logs delivers them to S3: gzip text files, each starting with
    the header line of field names, one per 5-minute delivery period holding the records that
    ended in it (a file stamped 16:20 holds records ending 16:15:01-16:20:00), under
    ``<folder>/`` + :func:`s3_key`. The hash part of the name is the content's (SHA-256, 8 hex
    digits), so output is reproducible. Returns the files written."""
    by_period: dict[int, list[FlowLogRecord]] = {}
    for r in records:
        delivered = -(-int(r.end) // S3_DELIVERY_PERIOD) * S3_DELIVERY_PERIOD
        by_period.setdefault(delivered, []).append(r)
    written = []
    for delivered, rs in sorted(by_period.items()):
        text = fmt.header + "\n" + "".join(fmt.format(r) + "\n" for r in rs)
        data = text.encode()
        digest = hashlib.sha256(data).hexdigest()[:8]
        path = Path(folder) / s3_key(account_id, region, flow_log_id, delivered, digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FlowLogError(f"{path.parent}: cannot create the folder: {e.strerror}") from None
        _write(path, gzip.compress(data, mtime=0))
        written.append(path)
    return written


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as e:
        raise FlowLogError(f"{path}: cannot write: {e.strerror}") from None


def read_s3(path: str | Path) -> list[dict[str, str]]:
    """The records of one S3 log file as {field: text}, fields named by its header line."""
    try:
        lines = gzip.decompress(Path(path).read_bytes()).decode().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise FlowLogError(f"{path}: not a flow log file: {e}") from None
    if not lines:
        raise FlowLogError(f"{path}: empty file, expected a header line")
    fmt = FlowLogFormat(lines[0].split())
    return [fmt.parse(line) for line in lines[1:]]


def read_cloudwatch(path: str | Path, fmt: FlowLogFormat = DEFAULT_FORMAT) -> list[dict[str, str]]:
    """The records of one log stream file as {field: text} (CloudWatch has no header line)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise FlowLogError(f"{path}: cannot read: {e.strerror}") from None
    return [fmt.parse(line) for line in lines if line]
