"""What a change breaks (or opens): the connections whose verdict differs between two networks.

Batfish calls it differential reachability; here each side is the exact reachability matrix
(``hyperplane.connectivity.reachability``) of every source — so the reply direction and
Lambda's one-way V2N NAT are part of every verdict. The two matrices are compared row by row:
for each source (and function subnet), destination and protocol, the port ranges of both sides
are cut at the union of their boundaries, and a range whose verdict (connected, or which leg
fails) differs is a change, shown with the deciding hop (resource and rule) before and after.
A source or destination that exists on one side only reaches, or is reached, on the other side
not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hyperplane.connectivity.names import check_source
from hyperplane.connectivity.reachability import ReachabilityRow, all_sources, matrix

__all__ = ["diff", "Diff", "Change"]

_Key = tuple[str, "str | None", str, str]  # source, subnet, destination, protocol


@dataclass(frozen=True)
class Change:
    """One connection (source, subnet, destination, protocol, port range) whose verdict changed;
    ``reply_ports``: the source side's ports it changed for, when not all; ``before``/``after``:
    the matrix rows of each side (None where the source or the destination does not exist)."""

    source: str
    subnet: str | None
    destination: str
    protocol: str
    ports: tuple[int, int] | None
    reply_ports: tuple[tuple[int, int], ...] | None
    before: ReachabilityRow | None
    after: ReachabilityRow | None

    @property
    def opened(self) -> bool:
        """True when the connection is established after the change and was not before."""
        return self.after is not None and self.after.connected

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "subnet": self.subnet, "destination": self.destination,
                "protocol": self.protocol, "ports": list(self.ports) if self.ports is not None else None,
                "reply_ports": [list(r) for r in self.reply_ports] if self.reply_ports is not None else None,
                "change": "opened" if self.opened else "closed",
                "before": _side(self.before), "after": _side(self.after)}


def _side(row: ReachabilityRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"address": row.address, "connected": row.connected, "failed_leg": row.failed_leg, "leg": row.leg,
            "resource": row.resource, "rule": row.rule, "reason": row.reason}


def _verdict(row: ReachabilityRow | None) -> str:
    if row is None:
        return "absent"
    if row.connected:
        return "connected"
    hop = f" at {row.resource} ({row.rule})" if row.resource else f" ({row.reason})" if row.reason else ""
    return f"fails: {row.failed_leg} ({row.leg}){hop}"


@dataclass
class Diff:
    """The answer of :func:`diff`: ``changes``; ``bool(d)`` is "something changed";
    ``walks``: the packets both matrices took."""

    changes: list[Change]
    walks: int = 0

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def __iter__(self):
        return iter(self.changes)

    def to_dict(self) -> list[dict[str, Any]]:
        """The changes as plain data (``hyperplane diff --format json``)."""
        return [c.to_dict() for c in self.changes]

    def __str__(self) -> str:
        if not self.changes:
            return "no connection changes"
        lines = [f"{len(self.changes)} connection{'s' if len(self.changes) != 1 else ''} changed"]
        for c in self.changes:
            ports = "echo" if c.ports is None else str(c.ports[0]) if c.ports[0] == c.ports[1] \
                else f"{c.ports[0]}-{c.ports[1]}"
            where = f" from {c.subnet}" if c.subnet else ""
            replies = "" if c.reply_ports is None else " (reply port " + ",".join(
                str(a) if a == b else f"{a}-{b}" for a, b in c.reply_ports) + ")"
            lines.append(f"{'+' if c.opened else '-'} {c.source}{where} -> {c.destination} {ports}/{c.protocol}{replies}")
            lines.append(f"    before: {_verdict(c.before)}")
            lines.append(f"    after:  {_verdict(c.after)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Diff {len(self.changes)} changes>"


def diff(net_a: Any, net_b: Any, sources: Sequence[str] | None = None) -> Diff:
    """The connections whose verdict differs from ``net_a`` to ``net_b`` (see the module
    docstring). ``sources``: only these (default: every function, ENI and the internet of
    either network). Neither network is changed (each matrix runs on a scratch copy)."""
    if sources is None:
        chosen = list(dict.fromkeys([*all_sources(net_a.topology), *all_sources(net_b.topology)]))
    else:
        chosen = list(sources)
        known = set(all_sources(net_a.topology)) | set(all_sources(net_b.topology))
        for s in chosen:
            if s.split(":")[0] not in known and s not in known and not s.startswith("i-"):
                raise ValueError(f"unknown source {s!r}: in neither network")
    a = matrix(net_a, [s for s in chosen if _has(net_a, s)])
    b = matrix(net_b, [s for s in chosen if _has(net_b, s)])
    return Diff(_compare(a.rows, b.rows), a.walks + b.walks)


def _has(net: Any, source: str) -> bool:
    try:
        check_source(net.topology, source)
    except ValueError:
        return False
    return True


def _compare(before: list[ReachabilityRow], after: list[ReachabilityRow]) -> list[Change]:
    sides: dict[_Key, tuple[list[ReachabilityRow], list[ReachabilityRow]]] = {}
    for k, rows in enumerate((before, after)):
        for r in rows:
            sides.setdefault((r.source, r.subnet, r.destination, r.protocol), ([], []))[k].append(r)
    changes: list[Change] = []
    for (source, subnet, destination, protocol), (old, new) in sides.items():
        rows = [*old, *new]
        segments: list[tuple[int, int] | None] = [None]
        if protocol != "icmp":
            segments = list(_segments([r.ports for r in rows if r.ports is not None]))
        spans = [p for r in rows if r.reply_ports is not None for p in r.reply_ports]
        replies: list[tuple[int, int] | None] = list(_segments(spans)) if spans else [None]
        for ports in segments:
            port = ports[0] if ports is not None else None
            found: dict[tuple[ReachabilityRow | None, ReachabilityRow | None], list[tuple[int, int]]] = {}
            for reply in replies:
                rp = reply[0] if reply is not None else None
                b = next((r for r in old if r.covers(destination, protocol, port, rp)), None)
                a = next((r for r in new if r.covers(destination, protocol, port, rp)), None)
                if _changed(b, a):
                    held = found.setdefault((b, a), [])
                    if reply is None:
                        continue
                    if held and held[-1][1] + 1 == reply[0]:
                        held[-1] = (held[-1][0], reply[1])
                    else:
                        held.append(reply)
            for (b, a), held in found.items():
                reply_ports = None if replies == [None] or held == [(replies[0][0], replies[-1][1])] else tuple(held)  # type: ignore[index]
                last = changes[-1] if changes else None
                if (last is not None and ports is not None and last.ports is not None
                        and (last.source, last.subnet, last.destination, last.protocol) == (source, subnet, destination, protocol)
                        and last.ports[1] + 1 == ports[0] and (last.before, last.after, last.reply_ports) == (b, a, reply_ports)):
                    changes[-1] = Change(source, subnet, destination, protocol, (last.ports[0], ports[1]), reply_ports, b, a)
                else:
                    changes.append(Change(source, subnet, destination, protocol, ports, reply_ports, b, a))
    return changes


def _segments(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The smallest ranges that every span of ``spans`` is a union of."""
    cuts = sorted({a for a, _ in spans} | {b + 1 for _, b in spans})
    return [(x, y - 1) for x, y in zip(cuts, cuts[1:])]


def _changed(before: ReachabilityRow | None, after: ReachabilityRow | None) -> bool:
    """Whether the verdict differs: connected or not (absent: not), or which leg fails."""
    if (before is not None and before.connected) != (after is not None and after.connected):
        return True
    return before is not None and after is not None and before.failed_leg != after.failed_leg
