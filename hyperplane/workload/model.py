"""A workload: per function, invocations over time and the connections each one opens.

The same description as YAML (``Workload.load(path)``, docs/load.md) and as Python objects
(``Workload(functions=(FunctionLoad(...),))``). Every mistake in a file is one
:class:`WorkloadError` naming the file, the place (``functions[0].connections[1].keepalive``)
and the problem.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperplane.errors import TopologyError
from hyperplane.formats._source import decode, load_yaml

__all__ = ["Workload", "FunctionLoad", "Connection", "Burst", "WorkloadError", "parse_seconds",
           "SWEEP_VARIABLES", "EXAMPLE"]

#: the sample workload shipped with the package (``hyperplane load --example``)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "workload.yaml"

PROTOCOLS = ("tcp", "udp")
#: what ``--sweep VARIABLE=LOW..HIGH`` can vary: the base of every function's invocations
SWEEP_VARIABLES = ("concurrency", "rate")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*(ms|s|min|m|h|d)?\s*$")


class WorkloadError(TopologyError):
    """A workload is invalid: ``str(error)`` reads ``load.yaml: functions[0].rate: must be a
    number >= 0, not 'fast'`` (the file, the place in the document, the problem)."""


def parse_seconds(value: Any, where: str, file: str | None = None, *, zero: bool = False) -> float:
    """Seconds of ``350``, ``350s``, ``5m``, ``1h``, ``100ms``, ``1d`` (a number is seconds)."""
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise WorkloadError(file, where, f"{value!r} is not a duration (350, 350s, 5m, 1h, 100ms)")
        seconds = float(m[1]) * _UNITS[m[2] or "s"]
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero):
        raise WorkloadError(file, where, f"{value!r} must be a duration {'>=' if zero else '>'} 0")
    return seconds


@dataclass(frozen=True)
class Connection:
    """Connections each invocation opens (or, with ``reuse``, each execution environment keeps).

    Attributes:
        to: the destination: ``eni-cache:6379`` (an ENI of the topology), ``10.0.21.10:6379``
            (an address), ``internet:443`` (``destinations`` distinct public addresses),
            ``vpce-secretsmanager:443`` (an interface endpoint's ENIs).
        protocol: ``tcp`` or ``udp``.
        count: how many, per invocation (per environment with ``reuse``).
        open_for: seconds each stays open (``None``: the invocation's duration); ignored with
            ``reuse`` (a pooled connection lives as long as its environment).
        reuse: kept by the execution environment and used again by its next invocations
            (connection pooling); opened again when it was cut.
        keepalive: seconds between the data packets of an open connection (``None``: data at
            the start of each invocation only).
        destinations: distinct destinations of ``internet`` (spread over the invocations).
        name: what the report calls the destination (``api.example.com``); default ``to``.
    """

    to: str
    protocol: str = "tcp"
    count: int = 1
    open_for: float | None = None
    reuse: bool = False
    keepalive: float | None = None
    destinations: int = 1
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.to

    @property
    def kind(self) -> str:
        """``eni``, ``endpoint``, ``internet`` or ``address``."""
        host = self.to.rsplit(":", 1)[0]
        if host.startswith("eni-"):
            return "eni"
        if host.startswith("vpce-"):
            return "endpoint"
        return "internet" if host == "internet" else "address"

    @property
    def port(self) -> int:
        return int(self.to.rsplit(":", 1)[1])


@dataclass(frozen=True)
class Burst:
    """``add`` more (concurrent executions, or invocations per second; less if negative) from
    ``at`` for ``duration`` s."""

    at: float
    add: float
    duration: float


@dataclass(frozen=True)
class FunctionLoad:
    """One function's invocations over time and what each one connects to.

    The load is a concurrency (executions running at once, each environment running one
    invocation after another) or a rate (invocations per second, each lasting ``duration``:
    ``rate × duration`` executions at once, by Little's law), shaped by a ``ramp`` (to
    ``ramp_to`` over ``ramp_over`` seconds), ``bursts`` and a ``daily`` shape (24 hourly
    factors, interpolated, read at the workload's ``clock``).
    """

    function: str
    concurrency: float | None = None
    rate: float | None = None
    duration: float = 1.0
    ramp_to: float | None = None
    ramp_over: float | None = None
    bursts: tuple[Burst, ...] = ()
    daily: tuple[float, ...] | None = None
    keep_warm: float = 600.0  # an idle environment's lifetime (chosen: AWS documents none)
    connections: tuple[Connection, ...] = ()

    @property
    def base(self) -> float:
        return float(self.concurrency if self.concurrency is not None else self.rate or 0.0)

    def level(self, t: float, clock: float = 0.0) -> float:
        """The concurrency or rate at ``t`` seconds into the run."""
        value = self.base
        if self.ramp_to is not None and self.ramp_over:
            value += (self.ramp_to - value) * min(1.0, max(0.0, t / self.ramp_over))
        if self.daily:
            hour = ((clock + t) / 3600.0) % 24.0
            k = int(hour)
            value *= self.daily[k] + (self.daily[(k + 1) % 24] - self.daily[k]) * (hour - k)
        for burst in self.bursts:
            if burst.at <= t < burst.at + burst.duration:
                value += burst.add
        return value

    def executions(self, t: float, clock: float = 0.0) -> int:
        """Concurrent executions wanted at ``t``."""
        level = max(0.0, self.level(t, clock))
        return int(math.ceil(level * self.duration - 1e-9) if self.rate is not None else math.ceil(level - 1e-9))

    def scaled(self, value: float) -> FunctionLoad:
        """The same shape with its base (concurrency or rate) set to ``value``."""
        factor = value / self.base if self.base else 0.0
        changes: dict[str, Any] = {"concurrency" if self.concurrency is not None else "rate": value}
        if self.ramp_to is not None:
            changes["ramp_to"] = self.ramp_to * factor
        changes["bursts"] = tuple(dataclasses.replace(b, add=b.add * factor) for b in self.bursts)
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Workload:
    """Functions' loads over ``duration`` seconds of virtual time.

    ``step``: the batches' length (each is walked in three passes: first packets, replies,
    last ACKs); ``sample``: seconds between points of the time series (``None``: about 120
    points); ``clock``: the time of day the run starts at (for ``daily`` and the report);
    ``round_trip``: seconds between a packet and its answer; ``cold``: functions start
    Pending, as just created (the command line's network only; a ``Network`` you pass keeps its
    state).
    """

    functions: tuple[FunctionLoad, ...] = ()
    duration: float = 3600.0
    step: float = 1.0
    sample: float | None = None
    clock: float = 0.0
    round_trip: float = 0.001
    cold: bool = False
    file: str | None = field(default=None, compare=False)

    @classmethod
    def load(cls, path: str | Path) -> Workload:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise WorkloadError(str(path), "", f"cannot read the workload: {exc.strerror or exc}") from None
        return cls.from_dict(load_yaml(decode(data, str(path)), str(path)), str(path))

    @classmethod
    def example(cls) -> Workload:
        return cls.load(EXAMPLE)

    @classmethod
    def from_dict(cls, doc: Any, file: str | None = None) -> Workload:
        return _Reader(file).workload(doc)

    def with_duration(self, seconds: float) -> Workload:
        return dataclasses.replace(self, duration=seconds)

    def scaled(self, variable: str, value: float) -> Workload:
        """Every function whose load is a ``variable`` (``concurrency`` or ``rate``) with that
        base set to ``value`` (its ramp and bursts in proportion): one point of a sweep."""
        if variable not in SWEEP_VARIABLES:
            raise WorkloadError(self.file, "--sweep", f"can vary {' or '.join(SWEEP_VARIABLES)}, not {variable!r}")
        if not any(getattr(f, variable) is not None for f in self.functions):
            raise WorkloadError(self.file, "--sweep", f"no function's load is a {variable}")
        fns = tuple(f.scaled(value) if getattr(f, variable) is not None else f for f in self.functions)
        return dataclasses.replace(self, functions=fns)


class _Reader:
    """A workload document to objects, every problem as one WorkloadError."""

    TOP = {"functions", "duration", "step", "sample", "clock", "round_trip", "cold"}
    FUNCTION = {"function", "concurrency", "rate", "duration", "ramp", "bursts", "daily", "keep_warm", "connections"}
    CONNECTION = {"to", "protocol", "count", "open_for", "reuse", "keepalive", "destinations", "name"}

    def __init__(self, file: str | None) -> None:
        self.file = file

    def fail(self, where: str, problem: str) -> WorkloadError:
        return WorkloadError(self.file, where, problem)

    def mapping(self, value: Any, where: str, keys: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a mapping, not {type(value).__name__}")
        unknown = sorted(set(map(str, value)) - keys)
        if unknown:
            raise self.fail(f"{where}.{unknown[0]}" if where else unknown[0],
                            f"unknown key (expected one of {', '.join(sorted(keys))})")
        return value

    def number(self, value: Any, where: str, *, minimum: float = 0.0, integer: bool = False) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value < minimum or (integer and value != int(value)):
            what = "an integer" if integer else "a number"
            raise self.fail(where, f"must be {what} >= {minimum:g}, not {value!r}")
        return float(value)

    def seconds(self, value: Any, where: str, *, zero: bool = False) -> float:
        return parse_seconds(value, where, self.file, zero=zero)

    def workload(self, doc: Any) -> Workload:
        doc = self.mapping(doc, "", self.TOP)
        fns = doc.get("functions")
        if not isinstance(fns, list) or not fns:
            raise self.fail("functions", "must be a list of at least one function's load")
        kw: dict[str, Any] = {"file": self.file}
        for key in ("duration", "step", "round_trip"):
            if key in doc:
                kw[key] = self.seconds(doc[key], key)
        if doc.get("sample") is not None:
            kw["sample"] = self.seconds(doc["sample"], "sample")
        if "clock" in doc:
            kw["clock"] = self.clock(doc["clock"])
        if "cold" in doc:
            if not isinstance(doc["cold"], bool):
                raise self.fail("cold", f"must be true or false, not {doc['cold']!r}")
            kw["cold"] = doc["cold"]
        loads = tuple(self.function(f, f"functions[{k}]") for k, f in enumerate(fns))
        names = [f.function for f in loads]
        for k, name in enumerate(names):
            if name in names[:k]:
                raise self.fail(f"functions[{k}].function", f"{name!r} is loaded twice (one entry per function)")
        return Workload(functions=loads, **kw)

    def clock(self, value: Any) -> float:
        m = re.fullmatch(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?", str(value).strip())
        if not m or int(m[1]) > 23 or int(m[2]) > 59 or int(m[3] or 0) > 59:
            raise self.fail("clock", f"{value!r} is not a time of day (HH:MM or HH:MM:SS)")
        return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0)

    def function(self, doc: Any, where: str) -> FunctionLoad:
        doc = self.mapping(doc, where, self.FUNCTION)
        name = doc.get("function")
        if not isinstance(name, str) or not name:
            raise self.fail(f"{where}.function", "the function's name is required")
        if ("concurrency" in doc) == ("rate" in doc):
            raise self.fail(where, "give exactly one of concurrency (executions at once) and rate (invocations a second)")
        kind = "concurrency" if "concurrency" in doc else "rate"
        kw: dict[str, Any] = {kind: self.number(doc[kind], f"{where}.{kind}")}
        if "duration" in doc:
            kw["duration"] = self.seconds(doc["duration"], f"{where}.duration")
            if kw["duration"] > 900:
                raise self.fail(f"{where}.duration", "an invocation lasts at most 900 s (Lambda's 15-minute timeout)")
        if "keep_warm" in doc:
            kw["keep_warm"] = self.seconds(doc["keep_warm"], f"{where}.keep_warm")
        if "ramp" in doc:
            ramp = self.mapping(doc["ramp"], f"{where}.ramp", {"to", "over"})
            if "to" not in ramp or "over" not in ramp:
                raise self.fail(f"{where}.ramp", f"needs to (the final {kind}) and over (how long)")
            kw["ramp_to"] = self.number(ramp["to"], f"{where}.ramp.to")
            kw["ramp_over"] = self.seconds(ramp["over"], f"{where}.ramp.over")
        if "bursts" in doc:
            if not isinstance(doc["bursts"], list):
                raise self.fail(f"{where}.bursts", "must be a list of {at, add, for}")
            bursts = []
            for k, b in enumerate(doc["bursts"]):
                w = f"{where}.bursts[{k}]"
                b = self.mapping(b, w, {"at", "add", "for"})
                if set(b) != {"at", "add", "for"}:
                    raise self.fail(w, "needs at (when), add (how much more) and for (how long)")
                bursts.append(Burst(self.seconds(b["at"], f"{w}.at", zero=True), self.number(b["add"], f"{w}.add", minimum=-math.inf),
                                    self.seconds(b["for"], f"{w}.for")))
            kw["bursts"] = tuple(bursts)
        if "daily" in doc:
            daily = doc["daily"]
            if not isinstance(daily, list) or len(daily) != 24:
                raise self.fail(f"{where}.daily", "must be 24 factors, one per hour of the day from 00:00")
            kw["daily"] = tuple(self.number(v, f"{where}.daily[{k}]") for k, v in enumerate(daily))
        conns = doc.get("connections", [])
        if not isinstance(conns, list):
            raise self.fail(f"{where}.connections", "must be a list of connections")
        kw["connections"] = tuple(self.connection(c, f"{where}.connections[{k}]") for k, c in enumerate(conns))
        return FunctionLoad(function=name, **kw)

    def connection(self, doc: Any, where: str) -> Connection:
        doc = self.mapping(doc, where, self.CONNECTION)
        to = doc.get("to")
        m = re.fullmatch(r"(\S+):([0-9]{1,5})", to) if isinstance(to, str) else None
        if not m or not 1 <= int(m[2]) <= 65535:
            raise self.fail(f"{where}.to", f"{to!r} is not DESTINATION:PORT (eni-db:5432, 10.0.20.10:5432, "
                                           "internet:443, vpce-secretsmanager:443)")
        kw: dict[str, Any] = {"to": to}
        if "protocol" in doc:
            if doc["protocol"] not in PROTOCOLS:
                raise self.fail(f"{where}.protocol", f"must be tcp or udp, not {doc['protocol']!r}")
            kw["protocol"] = doc["protocol"]
        for key in ("count", "destinations"):
            if key in doc:
                kw[key] = int(self.number(doc[key], f"{where}.{key}", minimum=1, integer=True))
        if "open_for" in doc:
            kw["open_for"] = self.seconds(doc["open_for"], f"{where}.open_for")
        if doc.get("keepalive") is not None:
            kw["keepalive"] = self.seconds(doc["keepalive"], f"{where}.keepalive")
        if "reuse" in doc:
            if not isinstance(doc["reuse"], bool):
                raise self.fail(f"{where}.reuse", f"must be true or false, not {doc['reuse']!r}")
            kw["reuse"] = doc["reuse"]
        if "name" in doc:
            kw["name"] = str(doc["name"])
        conn = Connection(**kw)
        if conn.destinations > 1 and conn.kind != "internet":
            raise self.fail(f"{where}.destinations", "only internet:PORT has several destinations")
        return conn
