"""Connectivity as assertions in a test suite (the pytest plugin's ``hyperplane_network``
fixture gives them a network; any ``hyperplane.Network`` does)::

    from hyperplane.testing import assert_blocked, assert_connects

    def test_orders_reaches_the_cache(hyperplane_network):
        assert_connects(hyperplane_network, "orders", "cache:6379")

    def test_thumbnail_stays_out_of_the_vpc(hyperplane_network):
        assert_blocked(hyperplane_network, "thumbnail", "db:5432")

A function is asked from every one of its subnets (AWS may put an invocation in any of them):
it connects only if every subnet connects, and is blocked only if every subnet is (``subnet=``
asks one). A failed assertion's message is what contradicts it and the trace of that
connection, leg by leg, so pytest's report shows where the packet died and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hyperplane.connectivity.connection import ConnectionResult, connect
from hyperplane.connectivity.expectations import (BLOCKED, CONNECTED, VERDICTS, contradicting_row, contradiction,
                                                   found, found_row)
from hyperplane.connectivity.names import parse_destination, resolve_destination

__all__ = ["assert_connects", "assert_blocked", "assert_reachability"]

# pytest shows the test's frame, not these helpers', when an assertion here fails
__tracebackhide__ = True


def _ask(net: Any, source: str, destination: str, port: int | None, protocol: str | None,
         subnet: str | None) -> ConnectionResult:
    function = net.topology.functions.get(source.split(":")[0])
    every = subnet is None and function is not None and function.vpc_config is not None
    return connect(net, source, destination, port, protocol, subnet=subnet, subnets="all" if every else None)


def _judge(result: ConnectionResult, verdict: str) -> ConnectionResult:
    one = contradiction(result, verdict)
    if one is not None:
        port = f":{result.port}" if result.port is not None else ""
        asked = f"{result.source} -> {result.destination}{port}/{result.protocol}"
        raise AssertionError(f"expected {asked} to be {verdict}, but it {found(result, one)}\n{one}")
    return result


def assert_connects(net: Any, source: str, destination: str, port: int | None = None,
                    protocol: str | None = None, *, subnet: str | None = None) -> ConnectionResult:
    """``source`` connects to ``destination`` (``NAME:PORT/PROTO`` or ``port=``, ``protocol=``),
    both ways; returns the :class:`ConnectionResult`."""
    return _judge(_ask(net, source, destination, port, protocol, subnet), CONNECTED)


def assert_blocked(net: Any, source: str, destination: str, port: int | None = None,
                   protocol: str | None = None, *, leg: str | None = None,
                   subnet: str | None = None) -> ConnectionResult:
    """``source`` does not connect to ``destination``; ``leg="request"`` or ``"reply"``: and it
    is that leg that fails (a reply denied by a stateless NACL is ``leg="reply"``)."""
    verdict = BLOCKED if leg is None else f"{BLOCKED} on {leg}"
    if verdict not in VERDICTS:
        raise ValueError(f"leg={leg!r}: 'request' or 'reply'")
    return _judge(_ask(net, source, destination, port, protocol, subnet), verdict)


def assert_reachability(net: Any, source: str, expected: Mapping[str, bool | str]) -> Any:
    """What ``source`` reaches is what ``expected`` says: ``{"cache:6379": True, "db:5432":
    "blocked on reply", "internet:443/tcp": "connected"}`` (True: connected, False: blocked).

    One reachability question answers every entry (``net.reachability(source)``, on a scratch
    copy of the network). Connected means from every subnet of a function and whatever port the
    source side picks for the replies; blocked, that no subnet connects whatever the port. Each
    mismatch is listed with the row that decided it, and the first one's trace follows (a
    ``connect`` of that port from that subnet). Returns the reachability answer.
    """
    wanted: list[tuple[str, str, int | None, str, str]] = []  # (entry, name, port, protocol, verdict)
    for entry, value in expected.items():
        name, port, proto = parse_destination(entry)
        verdict = (CONNECTED if value else BLOCKED) if isinstance(value, bool) else value
        if verdict not in VERDICTS:
            raise ValueError(f"{entry!r}: {value!r} is not True, False or one of {', '.join(VERDICTS)}")
        proto = proto or "tcp"
        if proto != "icmp" and port is None:
            raise ValueError(f"{entry!r}: give a port (NAME:PORT)")
        wanted.append((entry, name, None if proto == "icmp" else port, proto, verdict))
    answer = net.reachability(source)
    wrong: list[tuple[str, str, Any]] = []
    for entry, name, port, proto, verdict in wanted:
        rows = _rows(net, answer, name, port, proto)
        if not rows:
            raise ValueError(f"{source} -> {entry}: the reachability answer has no row for it")
        bad = contradicting_row(rows, verdict, [port])
        if bad is not None:
            wrong.append((entry, verdict, bad))
    if wrong:
        lines = [f"{source}: {len(wrong)} of {len(wanted)} expected verdicts do not hold"]
        lines += [f"  {entry}: expected {verdict}, but it {found_row(row)}" for entry, verdict, row in wrong]
        entry, _, row = wrong[0]
        name, port, proto = parse_destination(entry)
        lines.append(str(connect(net, source, name, port, proto or "tcp", subnet=row.subnet)))
        raise AssertionError("\n".join(lines))
    return answer


def _rows(net: Any, answer: Any, name: str, port: int | None, protocol: str) -> list[Any]:
    """The rows of a reachability answer that cover a destination as a user names it."""
    rows = answer.find(name, port, protocol)
    if rows:
        return list(rows)
    target = resolve_destination(net, name)
    for key in (target.resource, target.address):
        if key is not None and (rows := answer.find(key, port, protocol)):
            return list(rows)
    return []
