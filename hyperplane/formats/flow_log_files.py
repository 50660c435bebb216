"""VPC flow log files: the record, the log format, and the files of both destinations.

:class:`FlowLogRecord` is one record with AWS's fields (``FIELDS``: name -> version);
:class:`FlowLogFormat` the default (version 2) or a custom ``${field} ...`` format. Written as
CloudWatch Logs stores them (:func:`write_cloudwatch`: one log stream file per ENI, records in
time order, no header) or as VPC Flow Logs delivers them to S3 (:func:`write_s3`: gzip text
files per 5-minute delivery period, each opening with the header line of field names, under
:func:`s3_key`), and read back (:func:`read_cloudwatch`, :func:`read_s3`) as ``{field: text}``.
Problems raise :class:`FlowLogError` naming the file and line.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import itertools
import operator
import re
import time as _time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from hyperplane.errors import HyperplaneError

__all__ = [
    "DEFAULT_FORMAT",
    "FIELDS",
    "FlowLogError",
    "FlowLogFormat",
    "FlowLogFormatError",
    "FlowLogRecord",
    "S3_DELIVERY_PERIOD",
    "read_cloudwatch",
    "read_s3",
    "s3_key",
    "write_cloudwatch",
    "write_s3",
]

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


class FlowLogRecord(NamedTuple):
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


_RECORD_ATTRS = set(FlowLogRecord._fields)


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
        k = FlowLogRecord._fields.index(attr)
        return lambda r: _text_of(r[k])

    def _column(self, name: str, records: Sequence[FlowLogRecord]) -> list[str]:
        attr = name.replace("-", "_")
        if name == "version":
            return [str(self.version)] * len(records)
        if attr not in _RECORD_ATTRS:
            return ["-"] * len(records)
        values = list(map(operator.itemgetter(FlowLogRecord._fields.index(attr)), records))
        if name in _ALWAYS_PRESENT:
            return list(map(str, values))
        return ["-" if v is None else str(v) for v in values]

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

    def lines(self, records: Sequence[FlowLogRecord]) -> list[str]:
        """Many records as lines: the same text as ``format``, built column by column."""
        records = list(records)
        if not records:
            return []
        return list(map(" ".join, zip(*[self._column(n, records) for n in self.fields])))

    def parse(self, line: str) -> dict[str, str]:
        """A line written in this format back to {field: text}."""
        values = line.split(" ")
        if len(values) != len(self.fields):
            raise FlowLogError(f"expected {len(self.fields)} fields, got {len(values)}: {line!r}")
        return dict(zip(self.fields, values))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FlowLogFormat) and other.fields == self.fields

    def __hash__(self) -> int:
        return hash(self.fields)

    def __repr__(self) -> str:
        return f"FlowLogFormat({self.spec!r})"


_ALWAYS_PRESENT = {"account-id", "interface-id", "srcaddr", "dstaddr", "srcport", "dstport", "protocol",
                   "packets", "bytes", "start", "end", "action", "log-status", "tcp-flags", "type",
                   "pkt-srcaddr", "pkt-dstaddr", "flow-direction"}


def _text_of(value: Any) -> str:
    return "-" if value is None else str(value)


DEFAULT_FORMAT = FlowLogFormat()


# -- sinks ------------------------------------------------------------------------------------

def write_cloudwatch(folder: str | Path, records: Iterable[FlowLogRecord],
                     log_group: str = "vpc-flow-logs", fmt: FlowLogFormat = DEFAULT_FORMAT) -> list[Path]:
    """Write records as CloudWatch Logs does: one log stream per ENI,
    ``<folder>/<log_group>/<eni-id>-all``, one record per line in time order. Returns the
    stream files written."""
    records = list(records)
    lines = fmt.lines(records)
    keys = list(map(operator.itemgetter(1, 9, 10), records))  # interface-id, start, end
    order = sorted(range(len(records)), key=keys.__getitem__)
    streams = [(eni, "".join(lines[k] + "\n" for k in rows).encode())
               for eni, rows in itertools.groupby(order, key=lambda k: keys[k][0])]
    return list(_cloudwatch_streams(folder, log_group, streams).values())


def _cloudwatch_streams(folder: str | Path, log_group: str, streams: Iterable[tuple[str, bytes]],
                        append: bool = False) -> dict[str, Path]:
    """Each ENI's stream file (``append``: after what it holds), by ENI id."""
    group = Path(folder) / log_group
    try:
        group.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FlowLogError(f"{group}: cannot create the log group folder: {e.strerror}") from None
    written = {}
    for eni, data in streams:
        path = group / f"{eni}-all"
        _write(path, data, append)
        written[eni] = path
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
    by_period: dict[int, list[str]] = {}
    records = list(records)
    for r, line in zip(records, fmt.lines(records)):
        delivered = -(-int(r.end) // S3_DELIVERY_PERIOD) * S3_DELIVERY_PERIOD
        by_period.setdefault(delivered, []).append(line)
    files = [(delivered, "".join(line + "\n" for line in lines).encode())
             for delivered, lines in sorted(by_period.items())]
    return _s3_files(folder, account_id, region, flow_log_id, fmt, files)


def _s3_files(folder: str | Path, account_id: str, region: str, flow_log_id: str, fmt: FlowLogFormat,
              files: Iterable[tuple[int, bytes]]) -> list[Path]:
    written = []
    for delivered, body in files:
        data = (fmt.header + "\n").encode() + body
        digest = hashlib.sha256(data).hexdigest()[:8]
        path = Path(folder) / s3_key(account_id, region, flow_log_id, delivered, digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FlowLogError(f"{path.parent}: cannot create the folder: {e.strerror}") from None
        _write(path, gzip.compress(data, compresslevel=1, mtime=0))  # speed over size: a local emulation
        written.append(path)
    return written


def _write(path: Path, data: bytes, append: bool = False) -> None:
    try:
        with open(path, "ab" if append else "wb") as out:
            out.write(data)
    except OSError as e:
        raise FlowLogError(f"{path}: cannot write: {e.strerror}") from None


def read_s3(path: str | Path) -> list[dict[str, str]]:
    """The records of one S3 log file as {field: text}, fields named by its header line."""
    try:
        lines = gzip.decompress(Path(path).read_bytes()).decode().splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise FlowLogError(f"{path}: not a flow log file: {e}") from None
    if not lines:
        raise FlowLogError(f"{path}: empty file, expected a header line of field names")
    try:
        fmt = FlowLogFormat(lines[0].split())
    except FlowLogFormatError as e:
        raise FlowLogError(f"{path}: line 1 (header): {e}") from None
    return _parse_lines(path, fmt, lines[1:], first=2)


def read_cloudwatch(path: str | Path, fmt: FlowLogFormat = DEFAULT_FORMAT) -> list[dict[str, str]]:
    """The records of one log stream file as {field: text} (CloudWatch has no header line)."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise FlowLogError(f"{path}: cannot read: {e}") from None
    return _parse_lines(path, fmt, lines, first=1)


def _parse_lines(path, fmt: FlowLogFormat, lines: list[str], first: int) -> list[dict[str, str]]:
    out = []
    for k, line in enumerate(lines, first):
        if line:
            try:
                out.append(fmt.parse(line))
            except FlowLogError as e:
                raise FlowLogError(f"{path}: line {k}: {e}") from None
    return out
