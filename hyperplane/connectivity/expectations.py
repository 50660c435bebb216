"""Expected connectivity, written down and checked in one run (``hyperplane check``).

An expectations file is a YAML list, one expectation per item::

    # who must reach what, and what must stay closed
    - orders -> cache:6379: connected
    - orders -> internet:443/tcp: connected
    - orders -> db:5432: blocked on reply
    - thumbnail -> db:5432: blocked
    - orders -> db:5432: blocked
      from: subnet-private-a

Each item is ``SOURCE -> DESTINATION: VERDICT``: a source and a destination as
:func:`~hyperplane.connectivity.connection.connect` names them (``NAME:PORT/PROTO``, tcp by
default), and a verdict: ``connected``, ``blocked`` (any leg fails), ``blocked on request`` or
``blocked on reply`` (that leg fails). Without a port (``thumbnail -> db: blocked``) the verdict
must hold on every port of the protocol: one reachability question answers it, exactly. A function is checked from every one of its subnets (AWS
may put an invocation in any of them, so it is only as reachable as its worst subnet), unless
the item says ``from: SUBNET`` (an id or a name; ``from: all-subnets`` is the default said out
loud). A bad item is one :class:`~hyperplane.errors.ExpectationsError` naming the file, its
line and the problem.

Every verdict is a ``connect`` (or, without a port, a reachability question) on the network given (its connections stay in the tables, as
those of ``connect`` do); a mismatch carries that connection's trace, in the report and in the
JUnit XML file a CI system reads (written with ``junitparser``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from hyperplane.connectivity.connection import REPLY, REQUEST, ConnectionResult, connect
from hyperplane.connectivity.names import check_source, parse_destination
from hyperplane.errors import ExpectationsError, TopologyError
from hyperplane.formats._source import decode, load_yaml

__all__ = ["Expectation", "Outcome", "CheckReport", "VERDICTS", "ALL_SUBNETS", "read_expectations",
           "check", "check_expectations", "contradiction", "contradicting_row", "found", "found_row"]

CONNECTED, BLOCKED = "connected", "blocked"
#: the verdicts an expectation may state, and the failed leg each requires (None: any)
VERDICTS: dict[str, str | None] = {CONNECTED: None, BLOCKED: None,
                                   f"{BLOCKED} on {REQUEST}": REQUEST, f"{BLOCKED} on {REPLY}": REPLY}
ALL_SUBNETS = "all-subnets"
_FORM = "SOURCE -> DESTINATION: connected|blocked"


@dataclass(frozen=True)
class Expectation:
    """One item of an expectations file: where it is, and what it says."""

    file: str
    line: int
    source: str
    destination: str
    verdict: str  # one of VERDICTS
    subnet: str | None = None  # ``from: SUBNET``; None: every subnet of a function

    @property
    def text(self) -> str:
        where = f" (from {self.subnet})" if self.subnet else ""
        return f"{self.source} -> {self.destination}: {self.verdict}{where}"

    def met_by(self, result: ConnectionResult) -> bool:
        return contradiction(result, self.verdict) is None


@dataclass(frozen=True)
class Outcome:
    """An expectation and the connection that answered it.

    For an expectation without a port (every port), ``rows`` are the reachability rows of the
    destination, ``row`` the one that contradicts the expectation (None when it is met), and
    ``result`` a connection on a port of that row, from its subnet: the trace."""

    expectation: Expectation
    result: ConnectionResult
    rows: tuple[Any, ...] | None = None
    row: Any = None

    @property
    def met(self) -> bool:
        return self.counterexample is None

    @property
    def counterexample(self) -> ConnectionResult | None:
        """The connection (of one subnet, for a function checked from each) that contradicts
        the expectation; None when it is met."""
        if self.rows is not None:
            return self.result if self.row is not None else None
        return contradiction(self.result, self.expectation.verdict)

    @property
    def found(self) -> str:
        """What the network does: ``connected from every subnet (2)``, or for a mismatch what
        contradicts the expectation (``fails from subnet-private-a: the reply ...``)."""
        if self.rows is not None:
            if self.row is None:
                return f"{self.expectation.verdict} on every {self.result.protocol} port"
            return found_row(self.row)
        one = self.counterexample
        return self.result.explanation if one is None else found(self.result, one)

    def to_dict(self) -> dict[str, Any]:
        e = self.expectation
        return {"file": e.file, "line": e.line, "expectation": e.text, "source": e.source,
                "destination": e.destination, "expected": e.verdict, "subnet": e.subnet,
                "met": self.met, "found": self.found, "connection": self.result.to_dict()}


@dataclass
class CheckReport:
    """Every expectation of a file and what the network did. ``bool(report)``: all were met."""

    file: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def mismatches(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.met]

    def __bool__(self) -> bool:
        return not self.mismatches

    def __str__(self) -> str:
        lines = []
        for o in self.outcomes:
            e = o.expectation
            if o.met:
                lines.append(f"ok   {e.file}:{e.line}: {e.text}")
            else:
                where = f" (from {e.subnet})" if e.subnet else ""
                lines.append(f"FAIL {e.file}:{e.line}: {e.source} -> {e.destination}{where}: "
                             f"expected {e.verdict}, but {o.found}")
        for o in self.mismatches:
            lines += ["", f"{o.expectation.file}:{o.expectation.line}: {o.expectation.text}", str(o.counterexample)]
        met = len(self.outcomes) - len(self.mismatches)
        lines += ["", f"{met} of {len(self.outcomes)} expectations met"
                  + (f", {len(self.mismatches)} not met" if self.mismatches else "")]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "met": bool(self), "expectations": [o.to_dict() for o in self.outcomes]}

    def write_junit(self, path: str | Path) -> None:
        """A JUnit XML file: one test suite for the file, one test case per expectation, a
        ``failure`` (message: what was found; text: the trace) per mismatch."""
        from junitparser import Failure, JUnitXml, TestCase, TestSuite

        suite = TestSuite(f"hyperplane check {self.file}")
        for o in self.outcomes:
            e = o.expectation
            case = TestCase(f"line {e.line}: {e.text}", classname=Path(e.file).name)
            if not o.met:
                failure = Failure(f"expected {e.verdict}, but {o.found}", "mismatch")
                failure.text = str(o.counterexample)
                case.result = [failure]
            suite.add_testcase(case)
        suite.update_statistics()
        xml = JUnitXml("hyperplane check")
        xml.add_testsuite(suite)
        xml.update_statistics()
        xml.write(str(path), pretty=True)


def contradiction(result: ConnectionResult, verdict: str) -> ConnectionResult | None:
    """The connection that contradicts ``verdict`` (one of :data:`VERDICTS`), or None.

    A function checked from each of its subnets is ``connected`` only if every subnet connects,
    and ``blocked`` only if every subnet is blocked (on the leg named, if one is): an invocation
    may run in any of them. The answer is then the first subnet's connection that says otherwise.
    """
    leg = VERDICTS[verdict]
    for one in result.subnets or [result]:
        if verdict == CONNECTED:
            if not one.connected:
                return one
        elif one.connected or (leg is not None and one.failed_leg != leg):
            return one
    return None


def contradicting_row(rows: Sequence[Any], verdict: str, ports: Sequence[int | None] | None = None) -> Any:
    """The reachability row that contradicts ``verdict`` on ``ports`` (None: on every port the
    rows cover), or None. Rows come per source subnet, port range and class of reply ports:
    ``connected`` must hold for every one (whatever port the source side picks for the
    replies); a subnet is blocked on a port when a row of it covering that port fails, and
    every such row fails on the leg named (if one is)."""
    leg = VERDICTS[verdict]
    asked = list(ports) if ports is not None else sorted({r.ports[0] if r.ports else -1 for r in rows})
    subnets = list(dict.fromkeys(r.subnet for r in rows))
    for subnet in subnets:
        for port in asked:
            covering = [r for r in rows if r.subnet == subnet
                        and (r.ports is None or port is not None and r.ports[0] <= port <= r.ports[1])]
            failing = [r for r in covering if not r.connected]
            if verdict == CONNECTED and failing:
                return failing[0]
            if verdict != CONNECTED and covering:
                if not failing:
                    return covering[0]
                other = next((r for r in failing if leg is not None and r.failed_leg != leg), None)
                if other is not None:
                    return other
    return None


def found_row(row: Any) -> str:
    """What a reachability row says, in a few words: ``fails from subnet-a on tcp 5432: the
    reply (SYN-ACK) at acl-data (rule *: implicit deny)``, ``connects on tcp 0-65535``."""
    where = f" from {row.subnet}" if row.subnet else ""
    on = "" if row.ports is None else f" on {row.protocol} " + (
        str(row.ports[0]) if row.ports[0] == row.ports[1] else f"{row.ports[0]}-{row.ports[1]}")
    replies = ""
    if row.reply_ports is not None:
        replies = " when the reply port is " + ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in row.reply_ports)
    if row.connected:
        return f"connects{where}{on}{replies}"
    decided = f" at {row.resource} ({row.rule})" if row.resource else f" ({row.reason})" if row.reason else ""
    return f"fails{where}{on}{replies}: the {row.failed_leg} ({row.leg}){decided}"


def found(result: ConnectionResult, one: ConnectionResult) -> str:
    """What ``one`` (``result`` or one of its subnets' connections) does, in a few words:
    ``connects from subnet-a``, ``fails from subnet-b: the reply (SYN-ACK) is denied ...``."""
    where = f" from {one.subnet}" if result.subnets and one.subnet else ""
    if one.connected:
        return f"connects{where}"
    return f"fails{where}{one.explanation[len('fails'):]}"


# -- reading ------------------------------------------------------------------------------------

def read_expectations(path: str | Path, topology: Any = None) -> list[Expectation]:
    """The expectations of a file; ``topology``: also check that every source it names exists
    (destinations are resolved when the connection is made)."""
    name = str(path)
    try:
        text = decode(Path(path).read_bytes(), name)
        load_yaml(text, name)  # syntax, duplicate keys, control characters: one error each
    except TopologyError as exc:
        raise ExpectationsError(name, exc.line, exc.problem) from None
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        raise ExpectationsError(name, None, f"the file has no expectation (a YAML list of '{_FORM}')")
    if not isinstance(root, yaml.SequenceNode):
        raise ExpectationsError(name, _line(root), f"the file must be a YAML list of '{_FORM}' items")
    return [_expectation(name, item, topology) for item in root.value]


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _expectation(name: str, item: yaml.Node, topology: Any) -> Expectation:
    line = _line(item)

    def bad(problem: str, at: yaml.Node = item) -> ExpectationsError:
        return ExpectationsError(name, _line(at), problem)

    if not isinstance(item, yaml.MappingNode):
        raise bad(f"an expectation is '{_FORM}', not {_shown(item)}")
    connection: tuple[yaml.Node, yaml.Node] | None = None
    subnet: str | None = None
    for key, value in item.value:
        if not isinstance(key, yaml.ScalarNode) or not isinstance(value, yaml.ScalarNode):
            raise bad(f"an expectation is '{_FORM}' (plain words, not a list or mapping)", key)
        if key.value == "from":
            subnet = None if value.value == ALL_SUBNETS else value.value
        elif "->" in key.value:
            if connection is not None:
                raise bad("one connection per item (start another item with '- ')", key)
            connection = (key, value)
        else:
            raise bad(f"{key.value!r} is neither 'SOURCE -> DESTINATION' nor 'from'", key)
    if connection is None:
        raise bad(f"no connection: an expectation is '{_FORM}'")
    key, value = connection
    source, _, destination = (part.strip() for part in key.value.partition("->"))
    if not source or not destination or "->" in destination:
        raise bad(f"{key.value!r} is not 'SOURCE -> DESTINATION'", key)
    verdict = " ".join(value.value.split()).lower()
    if verdict not in VERDICTS:
        raise bad(f"{value.value!r} is not {', '.join(list(VERDICTS)[:-1])} or {list(VERDICTS)[-1]}", value)
    try:
        parse_destination(destination)
        if topology is not None:
            check_source(topology, source)
    except ValueError as exc:
        raise bad(str(exc), key) from None
    return Expectation(name, line, source, destination, verdict, subnet)


def _shown(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return f"{node.value!r} (write 'SOURCE -> DESTINATION: VERDICT', with ': ' before the verdict)"
    return "a list"


# -- checking -----------------------------------------------------------------------------------

def check(network: Any, expectations: list[Expectation], file: str = "") -> CheckReport:
    """Answer each expectation with a ``connect``; a name the network does not know, or a
    ``from:`` that does not fit the source, is an :class:`ExpectationsError` at its line."""
    report = CheckReport(file or (expectations[0].file if expectations else ""))
    functions = network.topology.functions
    for e in expectations:
        function = functions.get(e.source.split(":")[0])
        in_vpc = function is not None and function.vpc_config is not None
        try:
            if e.subnet is not None and not in_vpc:
                raise ValueError(f"'from: {e.subnet}' needs a function in a VPC as the source, not {e.source!r}")
            name, port, protocol = parse_destination(e.destination)
            if port is None and (protocol or "tcp") != "icmp":
                report.outcomes.append(_every_port(network, e, name, protocol or "tcp"))
                continue
            if e.subnet is not None:
                result = connect(network, e.source, e.destination, subnet=e.subnet)
            else:
                result = connect(network, e.source, e.destination, subnets="all" if in_vpc else None)
        except ValueError as exc:
            raise ExpectationsError(e.file, e.line, str(exc)) from None
        report.outcomes.append(Outcome(e, result))
    return report


def _every_port(network: Any, e: Expectation, name: str, protocol: str) -> Outcome:
    """An expectation without a port: one reachability question (every port, exact), and a
    ``connect`` on a port of the row that contradicts it (else of the first row) for the trace."""
    rows = [r for r in network.reachability(e.source, [name]) if r.protocol == protocol]
    if e.subnet is not None:
        subnets = network.topology.subnets
        subnet = e.subnet if e.subnet in subnets else next(
            (s.id for s in subnets.values() if s.name == e.subnet), None)
        if subnet is None:
            raise ValueError(f"unknown subnet {e.subnet!r}")
        rows = [r for r in rows if r.subnet == subnet]
    if not rows:
        raise ValueError(f"{e.source} -> {name}: no {protocol} row in the reachability answer")
    row = contradicting_row(rows, e.verdict)
    shown = row if row is not None else rows[0]
    port = shown.ports[0] if shown.ports is not None else None
    result = connect(network, e.source, name, port, protocol, subnet=shown.subnet)
    return Outcome(e, result, tuple(rows), row)


def check_expectations(network: Any, path: str | Path) -> CheckReport:
    """Read an expectations file and check every item of it against ``network``."""
    return check(network, read_expectations(path, network.topology), str(path))
