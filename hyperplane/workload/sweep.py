"""``sweep``: the largest load within every limit, by bisection over load tests.

Each point is a whole load test on a fresh network (``make_network()``): nothing refused,
nothing cut is "within every limit". Bisection assumes that a load within the limits stays
within them when lowered, which holds for the limits modelled (counts that grow with the load).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hyperplane.workload.model import Workload, WorkloadError
from hyperplane.workload.report import LoadReport
from hyperplane.workload.run import load_test

__all__ = ["sweep", "SweepResult", "parse_sweep"]


@dataclass
class SweepResult:
    variable: str
    low: float
    high: float
    best: float | None  # the largest value within every limit (None: not even ``low``)
    points: list[tuple[float, LoadReport]] = field(default_factory=list)  # in the order run

    @property
    def first_failure(self) -> LoadReport | None:
        """The report of the smallest value tried that broke a limit."""
        broken = [(v, r) for v, r in self.points if not r.within_limits]
        return min(broken, key=lambda p: p[0])[1] if broken else None

    def summary(self) -> str:
        lines = [f"sweep {self.variable} {self.low:g}..{self.high:g}: "
                 + ", ".join(f"{v:g} {'ok' if r.within_limits else 'breaks'}" for v, r in self.points)]
        if self.best is None:
            lines.append(f"even {self.variable}={self.low:g} breaks a limit")
        elif self.best >= self.high:
            lines.append(f"{self.variable}={self.high:g} stays within every limit")
        else:
            lines.append(f"largest {self.variable} within every limit: {self.best:g}")
        failure = self.first_failure
        if failure is not None and failure.hits:
            h = failure.hits[0]
            lines.append(f"the first limit past it: {h.limit}: {h.where}")
        return "\n".join(lines)


def parse_sweep(text: str, file: str | None = None) -> tuple[str, float, float]:
    """``concurrency=100..5000`` -> ("concurrency", 100.0, 5000.0)."""
    name, sep, span = text.partition("=")
    low, dots, high = span.partition("..")
    try:
        lo, hi = float(low), float(high)
    except ValueError:
        lo = hi = float("nan")
    if not sep or not dots or not (0 < lo < hi):
        raise WorkloadError(file, "--sweep", f"{text!r} is not VARIABLE=LOW..HIGH with 0 < LOW < HIGH "
                                             "(concurrency=100..5000)")
    return name.strip(), lo, hi


def sweep(make_network: Callable[[], Any], workload: Workload, variable: str, low: float, high: float, *,
          resolution: float = 0.01, progress: Callable[[float, LoadReport], None] | None = None) -> SweepResult:
    """The largest ``variable`` (``concurrency`` or ``rate``) in ``low..high`` whose load test
    stays within every limit, to ``resolution`` (a fraction of the value; integers for
    concurrency)."""
    workload.scaled(variable, low)  # a bad variable is an error before any run
    result = SweepResult(variable, low, high, None)
    integer = variable == "concurrency"

    def run(value: float) -> bool:
        report = load_test(make_network(), workload.scaled(variable, value))
        result.points.append((value, report))
        if progress is not None:
            progress(value, report)
        return report.within_limits

    if not run(low):
        return result
    ok = low
    if run(high):
        result.best = high
        return result
    bad = high
    while bad - ok > max(1.0 if integer else 0.0, ok * resolution):
        mid = (ok + bad) / 2
        if integer:
            mid = float(int(mid))
            if mid <= ok:
                break
        if run(mid):
            ok = mid
        else:
            bad = mid
    result.best = ok
    return result
