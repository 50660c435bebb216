"""Many exchanges at once: the legs of ``connect`` for a batch of destinations, protocols and
ports, walked one batch per leg through ``Network.process``.

Each case is one exchange (TCP: SYN, SYN-ACK, ACK, data each way; UDP: request and response;
ICMP: echo and reply — :data:`~hyperplane.connectivity.connection` ``_EXCHANGES``). Requests
leave the source as ``Function.send`` / ``Network.send`` make them leave (a function's packets
are invocations, through ``dataplane.inputs.function_rows``); replies are answered as
``Network.reply_to`` answers them: from the ENI that received the request, from the internet,
from a gateway endpoint's service, or from the VPC resolver to the execution environment. The
first leg that is not delivered ends a case, with the deciding hop read from the walk's facts
as a trace reads it. A leg that is no walk of the compiled walker (a function without
VpcConfig, answered by Lambda's own VPC; a refused invocation; an ENI's DNS query, answered by
the resolver; an ENI's answer from a peer VPC not in the network) is judged by ``connect`` itself, once per address when
nothing but the address was looked at.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

import numpy as np
from scapy.layers.inet import TCP

from hyperplane.connectivity.connection import _EXCHANGES, REPLY, REQUEST, _rule_text, connect
from hyperplane.connectivity.names import INTERNET_SOURCE_ADDRESS
from hyperplane.dataplane.inputs import function_rows
from hyperplane.dataplane.walk import BatchResult, Origin
from hyperplane.model import ICMP, TCP as TCP_NUMBER, UDP as UDP_NUMBER
from hyperplane.reasons import Reason
from hyperplane.records import PACKET
from hyperplane.trace import Hop, row_hops

__all__ = ["Target", "Case", "Outcome", "CONNECTED", "judge", "scratch_network"]

NUMBER = {"tcp": TCP_NUMBER, "udp": UDP_NUMBER, "icmp": ICMP}
_FLAGS = {what: int(TCP(flags=what).flags) for what in ("S", "SA", "A", "PA")}
_LENGTH = {"tcp": 40, "udp": 28, "icmp": 28}  # IP total length of a packet without payload
_WALKED_REPLIES = {Reason.DELIVERED: Origin.ENI, Reason.EXITED_TO_INTERNET: Origin.INTERNET,
                   Reason.DELIVERED_TO_GATEWAY_ENDPOINT: Origin.GATEWAY_ENDPOINT}

#: connected, failed leg (request/reply), leg name, resource, rule, reason name
Outcome = tuple[bool, "str | None", "str | None", "str | None", "str | None", "str | None"]
CONNECTED: Outcome = (True, None, None, None, None, None)


@dataclass(frozen=True)
class Target:
    """A destination: its id (an ENI or endpoint id, ``dns``, ``internet``), address, service."""

    id: str
    address: str
    service: str | None


@dataclass
class Case:
    """One exchange: a target, protocol and destination port (None: ICMP echo); its legs."""

    target: Target
    protocol: str
    port: int | None
    last: tuple[BatchResult, int] | None = None  # the last request's walk (batch, row)
    outcome: Outcome | None = None
    fallback: bool = False  # judged by connect
    any_port: bool = False  # judged before any walk, by the invocation: no rule saw the port
    any_reply_port: bool = False  # answered without a walk: no rule saw the reply's port


def scratch_network(network: Any, v2n_ports: tuple[int, int] | None = None) -> Any:
    """A network of the same configuration (topology, Lambda settings, clock), every function
    deployed, no connection open: what a reachability question runs on. ``v2n_ports``: the
    ports V2N may pick (``LambdaSettings.ports``), to walk one class of reply ports."""
    settings = network.lambda_service.settings
    if v2n_ports is not None:
        settings = dataclasses.replace(settings, ports=v2n_ports)
    return type(network)(network.topology, lambda_settings=settings, now=network.now, ready=True)


def judge(scratch: Any, source: str, function: str | None, subnet: str | None, cases: list[Case],
          sport: int, judged: dict[tuple[Any, ...], Outcome] | None = None) -> int:
    """Walk every case's exchange leg by leg, one batch per leg, setting each ``outcome``;
    ``sport``: the source port (an execution environment's: V2N picks the one on the wire).
    ``judged``: the outcomes ``connect`` gave, kept across calls for the same source and subnet.
    Returns the packets walked."""
    environment: int | None = None
    if subnet is not None:
        environment = scratch.lambda_service.environment_in_subnet(function, subnet)
    env_ip = scratch.lambda_service.environment_address(function, environment or 0) if function else None
    walks = 0
    for step in range(max(len(e) for e in _EXCHANGES.values())):
        live = [c for c in cases if c.outcome is None and not c.fallback and step < len(_EXCHANGES[c.protocol])]
        requests = [c for c in live if _EXCHANGES[c.protocol][step][1] == REQUEST]
        replies = [c for c in live if _EXCHANGES[c.protocol][step][1] == REPLY]
        if requests:
            walks += _requests(scratch, source, function, environment, step, requests, sport)
        if replies:
            walks += _replies(scratch, function, env_ip, step, replies, sport)
        for c in live:
            if c.outcome is None and not c.fallback and step == len(_EXCHANGES[c.protocol]) - 1:
                c.outcome = CONNECTED
    judged = {} if judged is None else judged
    for c in cases:
        if c.fallback:
            key = (c.target.address, c.protocol) + (() if c.any_port else (c.port,) if c.any_reply_port
                                                     else (c.port, sport))
            if key not in judged:
                judged[key], n = _connect(scratch, source, subnet, c)
                walks += n
            c.outcome = judged[key]
    return walks


def _connect(scratch: Any, source: str, subnet: str | None, c: Case) -> tuple[Outcome, int]:
    try:
        r = connect(scratch, source, c.target.address, c.port, c.protocol, subnet=subnet)
    except ValueError as exc:  # a reply the emulator does not walk (to an ENI, from an absent peer VPC)
        assert c.last is not None
        res, j = c.last
        reply = next(name for name, direction, _ in _EXCHANGES[c.protocol] if direction == REPLY)
        return (False, REPLY, reply, None, str(exc), Reason(int(res.reason[j])).name), 1
    failed = r.failed
    if failed is None:
        return CONNECTED, len(r.legs)
    return (False, r.failed_leg, failed.name, r.resource, r.rule, failed.result.reason.name), len(r.legs)


@functools.lru_cache(maxsize=4096)
def _ip(address: str) -> int:
    return int(IPv4Address(address))


def _records(cases: list[Case], step: int, now: float) -> np.ndarray:
    rec = np.zeros(len(cases), PACKET)
    rec["time"] = now
    for k, c in enumerate(cases):
        what = _EXCHANGES[c.protocol][step][2]
        rec["proto"][k] = NUMBER[c.protocol]
        rec["length"][k] = _LENGTH[c.protocol]
        rec["flags"][k] = int(what) if c.protocol == "icmp" else _FLAGS.get(what, 0)
    return rec


def _requests(scratch: Any, source: str, function: str | None, environment: int | None, step: int,
              cases: list[Case], sport: int) -> int:
    rec = _records(cases, step, scratch.now)
    rec["dst_ip"] = [_ip(c.target.address) for c in cases]
    rec["dst_port"] = [c.port if c.port is not None else 0 for c in cases]
    n = len(cases)
    walk = np.ones(n, bool)
    rec["src_port"] = sport  # a function's: its environment's (V2N picks the one on the wire)
    if function is not None:
        rows = function_rows(scratch, rec, [function], [environment or 0], np.zeros(n, np.intp), rec["time"])
        origin, index = rows.origin, rows.index
        # decided before any walk, from the function's state and the destination address only
        # (a refused invocation; no VpcConfig): connect judges those, once per address
        walk[:rows.decided] = rows.verdict == 0
        walk[rows.decided:] = False
        for c in (c for c, w in zip(cases, walk) if not w):
            c.any_port = True
    else:
        if source == "internet":
            rec["src_ip"] = _ip(INTERNET_SOURCE_ADDRESS)
            origin, index = np.full(n, Origin.INTERNET, np.int8), np.full(n, -1, np.int32)
        else:
            topology = scratch.topology
            eni = topology.network_interfaces.get(source) or topology.eni_of_instance(source)
            rec["src_ip"] = int(eni.private_ip)
            origin = np.full(n, Origin.ENI, np.int8)
            index = np.full(n, scratch.compiled.eni_index[eni.id], np.int32)
    return _walk(scratch, cases, step, rec, origin, index, walk, REQUEST)


def _replies(scratch: Any, function: str | None, env_ip: str | None, step: int, cases: list[Case],
             sport: int) -> int:
    rec = _records(cases, step, scratch.now)
    n = len(cases)
    origin = np.zeros(n, np.int8)
    index = np.full(n, -1, np.int32)
    walk = np.ones(n, bool)
    compiled = scratch.compiled
    lambda_vpc = function is not None and scratch.topology.functions[function].vpc_config is None
    for k, c in enumerate(cases):
        assert c.last is not None  # every exchange starts with a request
        res, j = c.last
        p = res.packets[j]  # the request as delivered: the answer goes back to where it came from
        reason = Reason(int(res.reason[j]))
        rec["src_ip"][k], rec["dst_ip"][k] = p["dst_ip"], p["src_ip"]
        if c.protocol == "icmp":
            rec["dst_port"][k] = p["src_port"]  # an echo reply carries the identifier as its port
        else:
            rec["src_port"][k], rec["dst_port"][k] = p["dst_port"], p["src_port"]
        if reason in _WALKED_REPLIES and not (lambda_vpc and reason == Reason.EXITED_TO_INTERNET):
            origin[k] = _WALKED_REPLIES[reason]
            if reason == Reason.DELIVERED:
                assert res.vpc is not None
                index[k] = compiled.eni_index[res.vpc.enis[int(res.location[j])].id]
        elif (reason in (Reason.DELIVERED_TO_DNS_RESOLVER, Reason.FORWARDED_TO_PEERING)
              and function is not None and env_ip is not None and not lambda_vpc):
            # the resolver's answer, or one in over a peering from a VPC not in the network:
            # addressed to the environment, the walker finds the connection it belongs to
            origin[k], index[k] = Origin.REPLY_TO_FUNCTION, scratch.function_number(function)
            rec["dst_ip"][k] = _ip(env_ip)
            rec["dst_port"][k] = sport
        else:  # answered without a walk (Lambda's own VPC, the resolver to an ENI) or not emulated
            walk[k] = False
            c.any_port = lambda_vpc  # Lambda's own VPC answers whatever the port
            c.any_reply_port = reason == Reason.DELIVERED_TO_DNS_RESOLVER
    return _walk(scratch, cases, step, rec, origin, index, walk, REPLY)


def _walk(scratch: Any, cases: list[Case], step: int, rec: np.ndarray, origin: np.ndarray, index: np.ndarray,
          walk: np.ndarray, direction: str) -> int:
    for c in (c for c, w in zip(cases, walk) if not w):
        c.fallback = True
    chosen = np.flatnonzero(walk)
    if chosen.size == 0:
        return 0
    res = scratch.process(rec[chosen], origin[chosen], index[chosen])
    _settle(scratch, [cases[k] for k in chosen], step, res, direction)
    return int(chosen.size)


def _settle(scratch: Any, cases: list[Case], step: int, res: BatchResult, direction: str) -> None:
    """Record each walked leg: a request is the next reply's packet; a failure ends the case
    with its deciding hop, read from the walk's facts as a trace is."""
    assert res.vpc is not None
    delivered = res.delivered
    log, first = res.facts.hops, res.facts.first_hop
    pool_names = scratch.pool_names()
    deciding: dict[tuple[Any, ...], Hop] = {}  # a walk stops at the stage that decides: its last hop
    for j, c in enumerate(cases):
        if direction == REQUEST:
            c.last = (res, j)
        if delivered[j]:
            continue
        reason = Reason(int(res.reason[j]))
        end = log[first[j + 1] - 1] if first[j + 1] > first[j] else None
        key = (int(reason), int(res.location[j]), None if end is None else (int(end["stage"]), end["v"].tobytes()))
        if key not in deciding:
            hops = row_hops(res, j, pool_names)  # as a trace shows them, ending where it stopped
            deciding[key] = next(h for h in reversed(hops) if h.decision in ("deny", "drop"))
        hop = deciding[key]
        c.outcome = (False, direction, _EXCHANGES[c.protocol][step][0], hop.resource, _rule_text(hop), reason.name)
