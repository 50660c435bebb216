"""What the benchmark scripts in this folder share, so that every figure is measured one way.

- Timing: ``best_of`` (the shortest of N runs: the machines are shared and noisy, and the
  shortest run is the least disturbed one), ``best_of_fresh`` (the same on fresh state each run,
  its construction untimed), ``best_of_each`` (several, taking turns: a figure and its baseline
  see the same moments), ``best_rate``/``mpps``/``pps`` (rates), ``ratio`` (a rate against a
  baseline measured in the same process, so that both saw the same machine) and
  ``same_verdicts`` (a baseline that decided some row otherwise did other work: stop).
- Raw captures: ``put16``/``put32`` (big-endian fields into a column of frames), ``ipv4_frames``
  (Ethernet/IPv4/TCP-or-UDP frames from numpy columns, IPv4 checksums valid) and ``write_pcap``.
- Traffic: ``environment_syns`` (execution environments opening connections to services) and
  ``replies_to`` (the answers to a batch).
- The command line: ``options`` (the sizes, ``--repeat``, and ``--quick`` for the sizes
  ``hyperplane bench --quick`` uses), ``figure`` (one headline figure with its baseline and
  their ratio) and ``emit`` (the JSON object printed as the last line, its headline figures
  under ``"figures"``, which ``hyperplane bench`` and tests/test_bench.py read).

The scripts run as ``python benchmarks/x.py``, which puts this folder first on ``sys.path``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from hyperplane.records import SYN, TCP, ip, packets

T = TypeVar("T")
S = TypeVar("S")

# ---- timing ------------------------------------------------------------------------------


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds one call of ``fn`` takes, and what it returned."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def best_of(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """The shortest of ``repeat`` calls of ``fn``, in seconds, and what the last call returned."""
    seconds, _, out = best_of_fresh(lambda: None, lambda _: fn(), repeat)
    return seconds, out


def best_of_fresh(make: Callable[[], S], run: Callable[[S], T], repeat: int) -> tuple[float, S, T]:
    """The shortest of ``repeat`` runs of ``run`` on a fresh ``make()`` each (untimed), in
    seconds, with the last state and result."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, not {repeat}")
    best = float("inf")
    for _ in range(repeat):
        state = make()
        seconds, out = timed(lambda: run(state))
        best = min(best, seconds)
    return best, state, out


def mpps(rows: int, seconds: float) -> float:
    """Millions of rows per second."""
    return rows / seconds / 1e6


def pps(rows: int, seconds: float) -> float:
    """Rows per second."""
    return rows / seconds


def best_of_each(fns: Sequence[Callable[[], object]], repeat: int) -> list[float]:
    """The shortest of ``repeat`` calls of each of ``fns``, in seconds, the calls taking turns, so
    that a figure and its baseline see the same moments of a noisy machine."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, not {repeat}")
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            best[k] = min(best[k], timed(fn)[0])
    return best


def best_rate(fn: Callable[[], object], rows: int, repeat: int) -> float:
    """Best of ``repeat`` runs of ``fn`` over ``rows`` rows, in millions of rows per second."""
    return mpps(rows, best_of(fn, repeat)[0])


def ratio(rate: float, baseline_rate: float) -> float:
    """How many times faster than a baseline measured in the same process (same machine load)."""
    return rate / baseline_rate


def same_verdicts(what: str, measured: Sequence[object], baseline: Sequence[object]) -> None:
    """Stop unless the baseline decided every row as the measured code did: a ratio against a
    baseline that reached other verdicts compares different work."""
    if len(measured) != len(baseline):
        raise AssertionError(f"{what}: {len(measured)} rows measured, {len(baseline)} from the baseline")
    for row, (ours, theirs) in enumerate(zip(measured, baseline)):
        if ours != theirs:
            raise AssertionError(f"{what}: row {row}: measured {ours!r}, baseline {theirs!r}")


# ---- raw captures ------------------------------------------------------------------------

FRAME = 60  # Ethernet minimum frame without FCS: TCP (54 bytes) padded, UDP with 18 payload bytes
# little-endian microsecond pcap 2.4, snaplen 262144, Ethernet
PCAP_HEADER = np.array([0xA1B2C3D4, 0x00040002, 0, 0, 262144, 1], "<u4").tobytes()


def put16(a: np.ndarray, col: int, v: np.ndarray | int) -> None:
    """Write ``v`` big-endian into bytes ``col``, ``col + 1`` of every row of ``a``."""
    a[:, col] = (v >> 8) & 0xFF
    a[:, col + 1] = v & 0xFF


def put32(a: np.ndarray, col: int, v: np.ndarray | int) -> None:
    """Write ``v`` big-endian into bytes ``col`` .. ``col + 3`` of every row of ``a``."""
    for k in range(4):
        a[:, col + k] = (v >> (24 - 8 * k)) & 0xFF


def ipv4_frames(src: np.ndarray, dst: np.ndarray, sport: np.ndarray, dport: np.ndarray,
                proto: np.ndarray, flags: np.ndarray | int, *, ident: np.ndarray | None = None,
                window: int = 0, macs: tuple[bytes, bytes] | None = None) -> np.ndarray:
    """``FRAME``-byte Ethernet/IPv4 frames, one a row: TCP (``proto`` 6, header only, ``flags``)
    or UDP (17, 18 payload bytes), TTL 64, valid IPv4 checksums. L4 checksums stay 0: UDP
    "none", TCP unchecked by the readers compared. ``macs`` is (destination, source)."""
    n = len(src)
    f = np.zeros((n, FRAME), np.uint8)
    if macs is not None:
        f[:, 0:6] = list(macs[0])
        f[:, 6:12] = list(macs[1])
    f[:, 12:14] = [0x08, 0x00]
    udp = proto == 17
    tcp = ~udp
    ip4 = 14
    f[:, ip4] = 0x45
    put16(f, ip4 + 2, np.where(udp, 20 + 8 + 18, 20 + 20))
    if ident is not None:
        put16(f, ip4 + 4, ident)
    f[:, ip4 + 8] = 64
    f[:, ip4 + 9] = proto
    put32(f, ip4 + 12, src)
    put32(f, ip4 + 16, dst)
    words = f[:, ip4:ip4 + 20].astype(np.uint32)
    s = (words[:, 0::2] << 8 | words[:, 1::2]).sum(axis=1)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    put16(f, ip4 + 10, (~s) & 0xFFFF)
    l4 = ip4 + 20
    put16(f, l4, sport)
    put16(f, l4 + 2, dport)
    f[tcp, l4 + 12] = 0x50  # data offset: 5 words
    f[tcp, l4 + 13] = np.broadcast_to(flags, (n,))[tcp]
    if window:
        f[tcp, l4 + 14] = window >> 8
        f[tcp, l4 + 15] = window & 0xFF
    f[udp, l4 + 5] = 8 + 18  # UDP length (high byte 0)
    return f


def write_pcap(path: str, micros: np.ndarray, frames: np.ndarray) -> None:
    """A pcap (``PCAP_HEADER``) of ``frames`` (one a row), packet times in microseconds."""
    n, size = frames.shape
    rec = np.zeros((n, 16 + size), np.uint8)
    hdr = rec[:, :16].view("<u4")
    hdr[:, 0], hdr[:, 1], hdr[:, 2], hdr[:, 3] = micros // 1_000_000, micros % 1_000_000, size, size
    rec[:, 16:] = frames
    with open(path, "wb") as out:
        out.write(PCAP_HEADER)
        out.write(rec.tobytes())


# ---- traffic -----------------------------------------------------------------------------


def environment_syns(n: int, rng: np.random.Generator, proto: int = TCP, length: int = 0) -> np.ndarray:
    """``n`` connections opened by execution environments (169.254.0.1 and up, 60,000 source
    ports each) to 1,000 services (100 addresses from 10.0.20.1, ports 5000-5009): SYNs, or
    flagless rows for another protocol."""
    batch = packets(n)
    batch["src_ip"] = ip("169.254.0.1") + np.arange(n) // 60_000
    batch["src_port"] = 1024 + np.arange(n) % 60_000
    batch["dst_ip"] = ip("10.0.20.1") + rng.integers(0, 100, n)
    batch["dst_port"] = 5000 + rng.integers(0, 10, n)
    batch["proto"] = proto
    batch["flags"] = SYN if proto == TCP else 0
    batch["length"] = length
    return batch


def replies_to(sent: np.ndarray, flags: int) -> np.ndarray:
    """The answers to ``sent``: addresses and ports swapped, same protocol, ``flags``, time 0."""
    back = packets(len(sent))
    back["src_ip"], back["dst_ip"] = sent["dst_ip"], sent["src_ip"]
    back["src_port"], back["dst_port"] = sent["dst_port"], sent["src_port"]
    back["proto"], back["flags"] = sent["proto"], flags
    return back


# ---- command line ------------------------------------------------------------------------


def options(doc: str, sizes: Mapping[str, int | None], *, repeat: int, quick: Mapping[str, int],
            notes: Mapping[str, str] | None = None,
            extra: Callable[[argparse.ArgumentParser], None] | None = None,
            argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a benchmark's command line: ``--<size>`` for each of ``sizes`` (name: default; a
    default of None means "all"), ``--repeat`` (best of that many runs) and ``--quick`` (the
    ``quick`` sizes; an option given explicitly wins). ``extra`` adds options of its own."""
    unknown = set(quick) - set(sizes) - {"repeat"}
    if unknown:
        raise ValueError(f"quick sizes for options that do not exist: {sorted(unknown)}")
    defaults: dict[str, int | None] = {**sizes, "repeat": repeat}
    notes = notes or {}
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, default in defaults.items():
        told = f"{notes[name]} " if name in notes else ""
        ap.add_argument("--" + name.replace("_", "-"), type=int, default=None, metavar="N",
                        help=f"{told}(default {default}; --quick: {quick.get(name, default)})")
    ap.add_argument("--quick", action="store_true",
                    help="the smaller sizes of `hyperplane bench --quick` (a few seconds)")
    if extra is not None:
        extra(ap)
    args = ap.parse_args(argv)
    for name, default in defaults.items():
        value = getattr(args, name)
        if value is None:
            setattr(args, name, quick.get(name, default) if args.quick else default)
        elif value < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    return args


def figure(label: str, value: float, unit: str, baseline: str | None = None,
           baseline_value: float | None = None) -> dict[str, object]:
    """One headline figure: what was measured (``label``, ``value`` in ``unit``), the baseline
    measured in the same run in the same unit, and ``value / baseline_value`` (None without a
    baseline). For a cost (bytes, seconds) the ratio is still value / baseline: below 1 is less."""
    if (baseline is None) != (baseline_value is None):
        raise ValueError(f"{label}: a baseline needs both its name and its value")
    return {"figure": label, "value": significant(value), "unit": unit, "baseline": baseline,
            "baseline_value": None if baseline_value is None else significant(baseline_value),
            "ratio": None if baseline_value is None else significant(ratio(value, baseline_value))}


def significant(x: float, digits: int = 4) -> float:
    """``x`` to ``digits`` significant digits (0.0003456 and 3456000 alike)."""
    return float(f"{x:.{digits}g}")


def emit(figures: Mapping[str, object], headline: Sequence[Mapping[str, object]] = ()) -> None:
    """Print the figures as one JSON object, the ``headline`` ones (``figure`` objects) also as a
    list under ``"figures"``: the last line, the one ``hyperplane bench`` reads."""
    print(json.dumps({**figures, "figures": list(headline)}), flush=True)
