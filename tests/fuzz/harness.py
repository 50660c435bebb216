"""Run fuzz cases in a child process with a time limit per case.

A hang or a crash of the compiled core must fail a test, not stall or kill the suite: the cases
run in a forked child that reports each case before and after it runs; the parent kills the
child when one case runs past its limit (a hang) and notices when it dies (a crash), records the
case, and starts a new child at the next case.

Each case's outcome is one of:
- ``accepted``: the input was taken (a capture read, a topology loaded, a batch walked);
- ``refused``: a clear error — the error type the format documents, naming the input (the
  ``check`` decides what is clear and raises :class:`Unclear` otherwise);
- ``unclear``: any other exception, or an error that names neither file nor place;
- ``hang`` / ``crash``: found by the parent.

The inputs of failing cases are written to ``$HYPERPLANE_FUZZ_FAILURES`` (default
``<tmp>/hyperplane-fuzz-failures``) so that they can be kept in ``tests/fuzz/corpus/``.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"
OUTCOMES = ("accepted", "refused", "unclear", "hang", "crash")


class Unclear(AssertionError):
    """Raised by a check for an error that does not say what a user needs (file, place, problem)."""


@dataclass
class Campaign:
    """What a run of cases found: a count per outcome, and the failures (case, outcome, detail)."""

    name: str
    outcomes: Counter = field(default_factory=Counter)
    failures: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(self.outcomes.values())

    def line(self) -> str:
        return f"{self.name}: {self.cases} cases, " + ", ".join(f"{o} {self.outcomes[o]}" for o in OUTCOMES)

    def assert_clean(self) -> None:
        assert not self.failures, self.line() + "\n" + "\n".join(
            f"  case {i}: {o}: {d}" for i, o, d in self.failures[:10])


def _child(make: Callable[[int], bytes], check: Callable[[bytes], str], start: int, stop: int, conn) -> None:
    for i in range(start, stop):
        conn.send(("start", i, ""))
        try:
            data = make(i)
        except BaseException:  # noqa: BLE001 - a broken generator is the test's bug: say so
            conn.send(("generator", i, traceback.format_exc(limit=4)))
            continue
        try:
            outcome = check(data)
            detail = ""
        except Unclear as exc:
            outcome, detail = "unclear", str(exc)
        except BaseException as exc:  # noqa: BLE001 - every other escape is an unclear error
            outcome = "unclear"
            detail = f"{type(exc).__name__}: {exc} | " + traceback.format_exc(limit=3).replace("\n", " | ")
        if outcome not in ("accepted", "refused"):
            outcome, detail = "unclear", detail or f"check returned {outcome!r}"
        conn.send((outcome, i, detail))
    conn.send(("done", stop, ""))


def run_cases(name: str, make: Callable[[int], bytes], check: Callable[[bytes], str], cases: int, *,
              first: int = 0, timeout: float = 10.0) -> Campaign:
    """Run ``check(make(i))`` for ``i`` in ``first .. first + cases`` in child processes.

    ``make`` builds case ``i`` deterministically (from ``i`` alone, so that a failure can be
    rebuilt); ``check`` returns ``"accepted"`` or ``"refused"`` or raises. ``timeout`` bounds
    each case (generous: a hang is a loop that never ends, not a slow case).
    """
    campaign = Campaign(name)
    context = multiprocessing.get_context("fork")  # the child inherits the imported core
    i, stop = first, first + cases
    while i < stop:
        parent, child_end = context.Pipe(duplex=False)
        proc = context.Process(target=_child, args=(make, check, i, stop, child_end), daemon=True)
        proc.start()
        child_end.close()
        current = i
        try:
            while True:
                if not parent.poll(timeout):
                    proc.kill()
                    _fail(campaign, make, current, "hang", f"no answer within {timeout:g} s")
                    i = current + 1
                    break
                try:
                    kind, k, detail = parent.recv()
                except EOFError:  # the child died inside case `current`
                    proc.join()
                    _fail(campaign, make, current, "crash", f"child exit code {proc.exitcode}")
                    i = current + 1
                    break
                if kind == "start":
                    current = k
                elif kind == "done":
                    i = stop
                    break
                elif kind == "generator":
                    raise AssertionError(f"{name}: the generator of case {k} failed:\n{detail}")
                else:
                    campaign.outcomes[kind] += 1
                    if kind == "unclear":
                        _fail(campaign, make, k, kind, detail, count=False)
        finally:
            parent.close()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return campaign


def _fail(campaign: Campaign, make: Callable[[int], bytes], case: int, outcome: str, detail: str,
          *, count: bool = True) -> None:
    if count:
        campaign.outcomes[outcome] += 1
    campaign.failures.append((case, outcome, detail))
    folder = Path(os.environ.get("HYPERPLANE_FUZZ_FAILURES", Path(tempfile.gettempdir()) / "hyperplane-fuzz-failures"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{campaign.name}-{case}.bin").write_bytes(make(case))
    except Exception:  # noqa: BLE001 - keeping the input is a courtesy; the failure is reported anyway
        pass


def corpus(kind: str) -> list[Path]:
    """The kept inputs of one kind (``tests/fuzz/corpus/<kind>/``), sorted by name."""
    folder = CORPUS / kind
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
