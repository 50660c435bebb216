"""What a load test found: time series read from the connection tables, counts of what the walk
refused or cut, the first moment each limit was hit, and a summary a user can act on.

``Recorder`` is fed by the run (``hyperplane.workload.run``); ``LoadReport`` is what
``load_test`` returns: ``summary()`` (text, no dependency), ``write(folder)`` (the summary,
the series as JSON, and — with matplotlib, ``pip install 'hyperplane[report]'`` — PNG plots and
one self-contained HTML page, ``hyperplane.workload.plots``).
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperplane.reasons import Reason
from hyperplane.tables.nat import NAT_GATEWAY_MAX_PER_DESTINATION
from hyperplane.workload.model import Workload

__all__ = ["LoadReport", "Hit", "Recorder", "clock_text"]

#: the series of a report, by category: each maps a key (an ENI id, "nat-a 203.0.113.10 ->
#: api.example.com") to one value per sample time
CATEGORIES = ("executions", "connections", "eni_connections", "enis", "subnet_addresses_left",
              "nat_destination_connections", "refused", "cut")

_ADVICE = {
    "NAT_PORT_ALLOCATION_ERROR": "each address of the NAT gateway carries 55,000 connections to one destination: "
                                 "a second Elastic IP (secondary address) on {nat} doubles the limit (up to 8: "
                                 "440,000); reusing connections lowers the need",
    "ENI_CAPACITY": "a Hyperplane ENI carries 65,000 connections; Lambda could not add one ({why}): free addresses "
                    "in the subnet (or another subnet in the VpcConfig), or a higher ENI quota per VPC",
    "V2N_NO_CONNECTION": "the Hyperplane ENI forgot the connection after its idle timeout (350 s): keepalives more "
                         "often than that while the environment runs; a frozen environment sends none, so a pooled "
                         "client must reconnect when a connection fails",
    "NAT_NO_CONNECTION_RST": "the NAT gateway cuts connections idle for 350 s: TCP keepalives more often than that "
                             "(e.g. every 300 s) while the environment runs; a frozen environment sends none, so a "
                             "pooled client must reconnect when a connection fails",
    "OVERFLOW_ENI": "an overflow ENI takes one more address of the subnet: the addresses left show how many more "
                    "can come",
    "FUNCTION_PENDING": "the function is Pending while its Hyperplane ENIs are created (about a minute): "
                        "invocations fail until then",
}


def clock_text(seconds: float, clock: float = 0.0) -> str:
    """``HH:MM:SS`` of the run's ``seconds`` from its start at time of day ``clock``."""
    total = int(round(clock + seconds))
    days, rest = divmod(total, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return text if not days else f"day {days + 1} {text}"


@dataclass(frozen=True)
class Hit:
    """The first moment a limit was hit: at ``t`` seconds into the run."""

    t: float
    limit: str  # the reason code (NAT_PORT_ALLOCATION_ERROR, ENI_CAPACITY, ...), or OVERFLOW_ENI
    where: str
    executions: int  # concurrent executions at that moment (every function)
    advice: str


@dataclass
class LoadReport:
    """A load test's findings (``load_test`` returns one)."""

    workload: Workload
    times: list[float]
    series: dict[str, dict[str, list[float]]]
    refused: Counter
    cut: Counter
    opened: int
    invocations: dict[str, int]
    packets: int
    wall_seconds: float
    hits: list[Hit]
    enis: list[dict[str, Any]]
    abandoned: int = 0
    destinations: dict[str, str] = field(default_factory=dict)  # series key -> destination label

    @property
    def simulated_per_wall_second(self) -> float:
        return self.workload.duration / self.wall_seconds if self.wall_seconds > 0 else float("inf")

    @property
    def within_limits(self) -> bool:
        """Nothing refused, nothing cut."""
        return not sum(self.refused.values()) and not sum(self.cut.values())

    def peak(self, category: str, key: str | None = None) -> float:
        """The highest value of a series (of every key of the category if ``key`` is None)."""
        values = self.series.get(category, {})
        keys = [key] if key is not None else list(values)
        return max((max(values[k], default=0) for k in keys if k in values), default=0)

    def when(self, t: float) -> str:
        return clock_text(t, self.workload.clock)

    def summary(self) -> str:
        w = self.workload
        lines = [f"{_duration(w.duration)} of virtual time from {self.when(0)}, {self.packets:,} packets walked"]
        for f in w.functions:
            lines.append(f"{f.function}: peak {self.peak('executions', f.function):,.0f} concurrent executions, "
                         f"{self.invocations.get(f.function, 0):,} invocations")
        refused = sum(self.refused.values())
        cut = sum(self.cut.values())
        lines.append(f"connections: {self.opened:,} opened, peak {self.peak('connections'):,.0f} open at once, "
                     f"{refused:,} refused, {cut:,} cut by idle timeouts"
                     + (f", {self.abandoned:,} left open by reclaimed environments" if self.abandoned else ""))
        overflow = [e for e in self.enis if e["overflow"]]
        lines.append(f"Hyperplane ENIs: {len(self.enis)}" + (f" ({len(overflow)} overflow)" if overflow else ""))
        for e in self.enis:
            lines.append(f"  {e['id']} {e['private_ip']:<15} {e['subnet_id']:<18} peak "
                         f"{self.peak('eni_connections', e['id']):>7,.0f} connections (of {e['limit']:,})"
                         + (f", overflow, created {self.when(e['created'])}" if e["overflow"] else ""))
        for subnet, values in self.series.get("subnet_addresses_left", {}).items():
            lines.append(f"  {subnet}: {min(values, default=0):,.0f} addresses left at the lowest")
        nat = self.series.get("nat_destination_connections", {})
        if nat:
            top = sorted(nat, key=lambda k: -max(nat[k], default=0))
            lines.append("NAT gateway ports, per address and destination (limit "
                         f"{NAT_GATEWAY_MAX_PER_DESTINATION:,}):")
            for key in top[:5]:
                p = max(nat[key], default=0)
                lines.append(f"  {key}: peak {p:,.0f} ({p / NAT_GATEWAY_MAX_PER_DESTINATION:.0%})")
            if len(top) > 5:
                lines.append(f"  ... {len(top) - 5} more destinations, each below {max(nat[top[5]]):,.0f}")
        if refused:
            lines.append("refused: " + ", ".join(f"{r} {n:,}" for r, n in self.refused.most_common()))
        if cut:
            lines.append("cut by idle timeouts: " + ", ".join(f"{r} {n:,}" for r, n in self.cut.most_common()))
        if self.hits:
            lines.append("limits hit:")
            for h in self.hits:
                lines.append(f"  {self.when(h.t)}  {h.limit}: {h.where}, with {h.executions:,} concurrent "
                             f"executions")
                lines.append(f"            {h.advice}")
        lines.append("within every limit" if self.within_limits else "NOT within every limit")
        return "\n".join(lines)

    def timing(self) -> str:
        """How fast it ran (not part of the summary, which is the same on every run)."""
        return (f"{_duration(self.workload.duration)} of virtual time in {self.wall_seconds:.1f} s: "
                f"{self.simulated_per_wall_second:,.0f} simulated seconds a second, "
                f"{self.packets / max(self.wall_seconds, 1e-9):,.0f} packets a second")

    def to_json(self) -> dict[str, Any]:
        return {"times": self.times, "series": self.series, "refused": dict(self.refused), "cut": dict(self.cut),
                "opened": self.opened, "invocations": self.invocations, "packets": self.packets,
                "hits": [h.__dict__ for h in self.hits], "enis": self.enis,
                "within_limits": self.within_limits, "clock": self.workload.clock}

    def write(self, folder: str | Path, *, plots: bool = True) -> list[Path]:
        """``summary.txt``, ``series.json`` and, when matplotlib is installed (and ``plots``),
        one PNG per plot and ``report.html`` (the PNGs inlined). Returns the files written."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "summary.txt", folder / "series.json"]
        written[0].write_text(self.summary() + "\n")
        written[1].write_text(json.dumps(self.to_json(), indent=1))
        if plots:
            from hyperplane.workload.plots import write_plots
            written += write_plots(self, folder)
        return written


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


class Recorder:
    """What the run reports as it goes: counts, first moments, and a sample of the tables
    every ``sample`` seconds."""

    def __init__(self, net: Any, workload: Workload, specs: list[Any], sample: float) -> None:
        self.net, self.w, self.specs, self.every = net, workload, specs, sample
        self.t0 = net.now
        self.times: list[float] = []
        self.series: dict[str, dict[str, list[float]]] = {c: {} for c in CATEGORIES}
        self.refused: Counter = Counter()
        self.cuts: Counter = Counter()
        self.n_opened = 0
        self.live = 0
        self.abandoned = 0
        self.packets = 0
        self.invocations = [0] * len(workload.functions)
        self.wanted = [0] * len(workload.functions)
        self.first: dict[str, Hit] = {}
        self.eni_detail: str = ""
        self.next_sample = 0.0
        self.labels: dict[tuple[int, int], str] = {}  # (ip, port) -> destination label
        for s in specs:
            for k, ip in enumerate(s.addresses.tolist()):
                label = s.conn.label if len(s.addresses) == 1 or s.conn.kind == "endpoint" else f"{s.conn.label} #{k + 1}"
                self.labels[(int(ip), s.port)] = label
        self.nat_names: dict[int, str] = {}  # translating private address -> "nat-a 203.0.113.10"
        for nat in net.topology.nat_gateways.values():
            for k, ip in enumerate(nat.private_ips):
                public = nat.elastic_ips[k].public_ip if k < len(nat.elastic_ips) else ip
                self.nat_names[int(ip)] = f"{nat.id} {public}"

    # -- events -----------------------------------------------------------------------------

    def executions(self) -> int:
        return int(sum(self.wanted))

    def hit(self, limit: str, t: float, where: str, executions: int | None = None, **fmt: str) -> None:
        if limit not in self.first:
            advice = _ADVICE.get(limit, "see docs/reasons.md").format(**fmt)
            running = self.executions() if executions is None else executions
            self.first[limit] = Hit(float(t), limit, where, running, advice)

    def executions_at(self, t: float) -> int:
        """Concurrent executions at the last sample at or before ``t``."""
        k = max(0, int(np.searchsorted(self.times, t, "right")) - 1)
        return int(sum(v[k] for v in self.series["executions"].values() if k < len(v)))

    def refuse(self, rows: np.ndarray, reason: np.ndarray, times: np.ndarray, slots: Any) -> None:
        s = slots.cols
        for r in np.unique(reason):
            pick = np.flatnonzero(reason == r)
            name = Reason(int(r)).name
            self.refused[name] += len(pick)
            row = int(rows[pick[0]])
            dest = self.label(int(s["dst_ip"][row]), int(s["dst_port"][row]))
            if name == "NAT_PORT_ALLOCATION_ERROR":
                self.next_sample = 0.0  # sample at the end of this batch: the tables are at the limit
                nat = self._nat_of(row, s)
                self.hit(name, times[pick[0]], f"{nat} runs out of ports to {dest}", nat=nat.split()[0])
            elif name == "ENI_CAPACITY":
                self.hit(name, times[pick[0]], f"no Hyperplane ENI can take a connection to {dest} "
                         f"({self.eni_detail})", why=self.eni_detail or "the pool is full")
            else:
                self.hit(name, times[pick[0]], f"connections to {dest} refused ({Reason(int(r)).text})")

    def _nat_of(self, row: int, s: dict[str, np.ndarray]) -> str:
        nat = int(s["nat"][row])
        vpc = self.net.compiled
        if 0 <= nat < len(vpc.nat_ids):
            gw = self.net.topology.nat_gateways[vpc.nat_ids[nat]]
            return f"{gw.id} ({len(gw.private_ips)} address{'es' if len(gw.private_ips) > 1 else ''})"
        return "the NAT gateway"

    def cut(self, reason: Reason, rows: np.ndarray, t: float, slots: Any) -> None:
        self.cuts[reason.name] += len(rows)
        s = slots.cols
        row = int(rows[0])
        dest = self.label(int(s["dst_ip"][row]), int(s["dst_port"][row]))
        by = "the NAT gateway" if reason == Reason.NAT_NO_CONNECTION_RST else "the Hyperplane ENI"
        self.hit(reason.name, t, f"idle connections to {dest} cut by {by}")

    def opened(self, rows: np.ndarray) -> None:
        self.n_opened += len(rows)
        self.live += len(rows)

    def closed(self, rows: np.ndarray) -> None:
        self.live -= len(rows)

    def label(self, ip: int, port: int) -> str:
        return self.labels.get((ip, port), f"{ipaddress.IPv4Address(ip)}:{port}")

    # -- samples ----------------------------------------------------------------------------

    def sample(self, t: float, envs: list[Any], slots: Any, last: bool = False) -> None:
        if (t < self.next_sample - 1e-9 and not last) or (self.times and t <= self.times[-1]):
            return
        self.next_sample = t + self.every
        k = len(self.times)
        self.times.append(float(t))
        put = self._put
        for load, env in zip(self.w.functions, envs):
            put("executions", load.function, float(((env.busy_until > t) | np.isfinite(env.next_start)).sum()), k)
        put("connections", "open", float(self.live), k)
        service = self.net.lambda_service
        subnets = set()
        for load in self.w.functions:
            for pool in service.function(load.function).pools:
                live = {s.address: s.live for s in pool.table.stats()}
                subnets.add(pool.subnet_id)
                existing = [e for e in pool.enis if e.exists]
                put("enis", f"{pool.subnet_id} {','.join(pool.security_group_ids)}", float(len(existing)), k)
                for eni in existing:
                    put("eni_connections", eni.id, float(live.get(eni.private_ip, 0)), k)
        topology = self.net.topology
        for subnet_id in sorted(subnets):
            subnet = topology.subnets[subnet_id]
            used = set(topology.addresses_in_use(subnet_id))
            used |= {ipaddress.IPv4Address(e.private_ip) for e in self.net.hyperplane_enis if e.subnet_id == subnet_id}
            put("subnet_addresses_left", subnet_id, float(subnet.usable_address_count - len(used)), k)
        for table in getattr(self.net, "_nat_tables", ()):  # the Network's NAT gateway tables
            c = table.connections()
            if not len(c):
                continue
            addresses, which = np.unique(c["address"], return_inverse=True)  # at most 8
            key = which.astype(np.int64) << 48 | c["rem_ip"].astype(np.int64) << 16 | c["rem_port"]
            unique, counts = np.unique(key, return_counts=True)
            for value, count in zip(unique.tolist(), counts.tolist()):
                address, ip, port = int(addresses[value >> 48]), (value >> 16) & 0xFFFFFFFF, value & 0xFFFF
                name = f"{self.nat_names.get(address, ipaddress.IPv4Address(address))} -> {self.label(ip, port)}"
                put("nat_destination_connections", name, float(count), k)
        for reason, n in self.refused.items():
            put("refused", reason, float(n), k)
        for reason, n in self.cuts.items():
            put("cut", reason, float(n), k)
        for category in CATEGORIES:  # keys not seen at this sample: 0 (counts: unchanged)
            for values in self.series[category].values():
                if len(values) <= k:
                    values.append(values[-1] if category in ("refused", "cut") and values else 0.0)

    def sample_tables(self, end: float, envs: list[Any], slots: Any) -> None:
        """A sample at the NAT gateways' clock, the time of the last packet walked (before
        ``end``): what their tables hold right after they refused, not after the batch."""
        tables = list(getattr(self.net, "_nat_tables", ()))
        now = max([t.now for t in tables] + [self.t0 + (self.times[-1] if self.times else 0.0)])
        for table in tables:
            table.expire(now)
        for load in self.w.functions:
            for pool in self.net.lambda_service.function(load.function).pools:
                pool.table.expire(max(now, pool.table.now))
        self.sample(min(now - self.t0, end), envs, slots, last=True)
        self.next_sample = (self.times[-1] // self.every + 1) * self.every

    def _put(self, category: str, key: str, value: float, k: int) -> None:
        values = self.series[category].setdefault(key, [0.0] * k)
        values.append(value)

    def report(self, wall_seconds: float) -> LoadReport:
        enis: list[dict[str, Any]] = []
        for load in self.w.functions:
            for pool in self.net.lambda_service.function(load.function).pools:
                for e in pool.enis:
                    if e.id not in {x["id"] for x in enis}:
                        enis.append({"id": e.id, "private_ip": e.private_ip, "subnet_id": e.subnet_id,
                                     "overflow": e.overflow, "created": e.created_at - self.t0,
                                     "limit": pool.table.max_connections_per_address or 0})
                        created = e.created_at - self.t0
                        if e.overflow and created >= 0:
                            self.hit("OVERFLOW_ENI", created, f"{e.subnet_id}'s pool adds {e.id} ({e.private_ip}): "
                                     f"its other ENIs hold {enis[-1]['limit']:,} connections each (or no port is "
                                     "left for a destination)", self.executions_at(created))
        hits = sorted(self.first.values(), key=lambda h: h.t)
        return LoadReport(self.w, self.times, self.series, self.refused, self.cuts, self.n_opened,
                          {f.function: n for f, n in zip(self.w.functions, self.invocations)}, self.packets,
                          wall_seconds, hits, enis, self.abandoned)


