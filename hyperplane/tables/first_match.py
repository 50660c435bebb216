"""Rule fields to first-match lookups: the parsing shared by routes, security groups and network
ACLs (CIDRs, protocols, ports, ICMP type/code keys) and the compilation of overlapping rules into
disjoint ranges, each holding the first rule that matches it."""

from __future__ import annotations

import ipaddress
import socket
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from hyperplane._core import _policy
from hyperplane.errors import HyperplaneError

_KEY_LIMIT = _policy.KEY_LIMIT
_ADDRESS_LIMIT = 1 << 32
Cidr = Union[str, ipaddress.IPv4Network, "tuple[int, int]"]


class PolicyError(HyperplaneError, ValueError):
    """A route, security-group or network-ACL spec cannot be compiled: where and why."""


def icmp_port(icmp_type: int, icmp_code: int = 0) -> int:
    """The ``port`` value that carries an ICMP type and code into ``evaluate``."""
    return (icmp_type & 0xFF) << 8 | (icmp_code & 0xFF)


####################################################################################################
# Spec parsing


def _cidr(value: Cidr, where: str) -> tuple[int, int]:
    """``(network as uint32, prefix length)``; strict: host bits must be zero.

    Plain int arithmetic rather than ``ipaddress`` objects: compiling a large configuration
    parses hundreds of thousands of CIDRs, and ``IPv4Network`` costs ~10 us each.
    """
    if isinstance(value, ipaddress.IPv4Network):
        return int(value.network_address), value.prefixlen
    if isinstance(value, str):
        address, slash, length = value.strip().partition("/")
        try:
            net = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
        except OSError:
            raise PolicyError(f"{where}: {value!r} is not a valid IPv4 CIDR (bad address)") from None
        if not slash or not length.isdigit() or not 0 <= int(length) <= 32:
            raise PolicyError(f"{where}: {value!r} is not a valid IPv4 CIDR (prefix length "
                              "must be /0../32)")
        plen = int(length)
    elif isinstance(value, tuple) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        net, plen = int(value[0]), int(value[1])
        if not 0 <= net < _ADDRESS_LIMIT or not 0 <= plen <= 32:
            raise PolicyError(f"{where}: {value!r} is not a valid IPv4 CIDR "
                              "(network 0..2**32-1, prefix length 0..32)")
    else:
        raise PolicyError(f"{where}: expected an IPv4 CIDR ('10.0.0.0/16', an IPv4Network or "
                          f"(network, prefix length)), got {value!r}")
    if net & ~_mask(plen):
        raise PolicyError(f"{where}: {value!r} is not a valid IPv4 CIDR (host bits set; did you "
                          f"mean {_network(net & _mask(plen), plen)}?)")
    return net, plen


def _mask(plen: int) -> int:
    return (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF


def _network(net: int, plen: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network((net, plen))


def _contains(cidr: tuple[int, int], address: int) -> bool:
    return address & _mask(cidr[1]) == cidr[0]


def _address(value: int | str, name: str) -> int:
    try:
        return int(ipaddress.IPv4Address(value))
    except (ValueError, TypeError) as exc:
        raise PolicyError(f"{name}: {value!r} is not an IPv4 address ({exc})") from None


_PROTOCOL_NAMES = {"-1": -1, "all": -1, "tcp": 6, "udp": 17, "icmp": 1}


def _protocol(value: int | str, where: str) -> int:
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _PROTOCOL_NAMES:
            return _PROTOCOL_NAMES[key]
        if not key.isdigit():
            raise PolicyError(f"{where}: unknown protocol {value!r}")
        value = int(key)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PolicyError(f"{where}: protocol must be an int or a name, got {value!r}")
    if not -1 <= int(value) <= 255:
        raise PolicyError(f"{where}: protocol {value} is outside -1..255")
    return int(value)


def _port(value: int | None, name: str, where: str) -> int:
    """A port, ICMP type or code as an int; None and -1 both mean "any"."""
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PolicyError(f"{where}: {name} must be an int, got {value!r}")
    return int(value)


def _key_range(protocol: int, from_port: int | None, to_port: int | None, where: str) -> tuple[int, int]:
    """The inclusive match-key range of a rule (see the key folding in ``_policy.pyx``)."""
    low, high = _port(from_port, "from_port", where), _port(to_port, "to_port", where)
    if protocol == -1:
        return 0, _KEY_LIMIT - 1
    if protocol in (6, 17):
        base = 0 if protocol == 6 else _policy.KEY_UDP
        if low == -1 and high == -1:
            return base, base + 0xFFFF
        if not 0 <= low <= high <= 0xFFFF:
            raise PolicyError(f"{where}: port range {low}..{high} is not within 0..65535 "
                              "in ascending order")
        return base + low, base + high
    if protocol == 1:
        base, icmp_type, icmp_code = _policy.KEY_ICMP, low, high
        if icmp_type == -1:
            return base, base + 0xFFFF
        if not 0 <= icmp_type <= 255:
            raise PolicyError(f"{where}: ICMP type {icmp_type} is outside -1..255")
        if icmp_code == -1:
            return base | icmp_type << 8, base | icmp_type << 8 | 0xFF
        if not 0 <= icmp_code <= 255:
            raise PolicyError(f"{where}: ICMP code {icmp_code} is outside -1..255")
        return base | icmp_type << 8 | icmp_code, base | icmp_type << 8 | icmp_code
    return _policy.KEY_OTHER | protocol, _policy.KEY_OTHER | protocol


def _tuple(value: Any) -> tuple:
    if isinstance(value, (str, ipaddress.IPv4Network)):
        return (value,)
    return tuple(value)


####################################################################################################
# Compilers (pure Python, once per configuration change)


def _paint_first_match(points: list[int], boxes: Iterable[tuple[int, int, int]]) -> list[int]:
    """Winner per elementary interval of ``points``: boxes ``(winner, lo, hi_exclusive)`` come
    in priority order, the first covering an interval wins; painted last-first."""
    winners = [-1] * len(points)
    for winner, lo, hi in reversed(list(boxes)):
        a, b = bisect_left(points, lo), bisect_left(points, hi)
        winners[a:b] = [winner] * (b - a)
    return winners


def _merge_runs(points: list[int], values: list[int]) -> tuple[list[int], list[int]]:
    """Drop boundaries whose interval has the same value as the one before it."""
    keep_p, keep_v = [points[0]], [values[0]]
    for p, v in zip(points[1:], values[1:]):
        if v != keep_v[-1]:
            keep_p.append(p)
            keep_v.append(v)
    return keep_p, keep_v


def _boundaries(networks: Iterable[tuple[int, int]]) -> list[int]:
    points = {0}
    for net, plen in networks:
        points.add(net)
        end = net + (1 << (32 - plen))
        if end < _ADDRESS_LIMIT:
            points.add(end)
    return sorted(points)


@dataclass
class _RuleBox:
    winner: int  # what the kernel reports when this rule decides
    networks: list[tuple[int, int]]  # (network, prefix length)
    key_lo: int
    key_hi: int  # inclusive


def _compile_first_match(spaces: list[list[_RuleBox]]) -> dict[str, np.ndarray]:
    """The 2-D arrays of ``_policy._RuleTables``: per space, address intervals -> key maps.

    Within a space the boxes come in priority order (first match wins).  Key maps are shared
    across spaces when their content is equal.
    """
    map_ids: dict[tuple, int] = {}
    map_off: list[int] = [0]
    key_bounds: list[int] = []
    key_winner: list[int] = []
    space_off: list[int] = [0]
    ip_bounds: list[int] = []
    ip_map: list[int] = []

    def key_map(cover: tuple[int, ...], boxes: list[_RuleBox]) -> int:
        chosen = [boxes[i] for i in cover]
        cuts = {0}
        for box in chosen:
            cuts.add(box.key_lo)
            if box.key_hi + 1 < _KEY_LIMIT:
                cuts.add(box.key_hi + 1)
        points = sorted(cuts)
        winners = _paint_first_match(points, ((b.winner, b.key_lo, b.key_hi + 1) for b in chosen))
        points, winners = _merge_runs(points, winners)
        content = (tuple(points), tuple(winners))
        found = map_ids.get(content)
        if found is None:
            found = map_ids[content] = len(map_ids)
            key_bounds.extend(points)
            key_winner.extend(winners)
            map_off.append(len(key_bounds))
        return found

    for boxes in spaces:
        by_prefix: dict[tuple[int, int], list[int]] = {}
        for i, box in enumerate(boxes):
            for net, plen in box.networks:
                by_prefix.setdefault((plen, net), []).append(i)
        lengths = sorted({plen for plen, _ in by_prefix})
        masks = [(plen, _mask(plen)) for plen in lengths]
        points = _boundaries(net for box in boxes for net in box.networks)
        cache: dict[tuple[int, ...], int] = {}
        maps = []
        for point in points:
            # the CIDRs containing an elementary interval are those containing its first address
            cover = tuple(sorted({i for plen, mask in masks
                                  for i in by_prefix.get((plen, point & mask), ())}))
            mid = cache.get(cover)
            if mid is None:
                mid = cache[cover] = key_map(cover, boxes)
            maps.append(mid)
        points, maps = _merge_runs(points, maps)
        ip_bounds.extend(points)
        ip_map.extend(maps)
        space_off.append(len(ip_bounds))

    return dict(
        space_off=np.array(space_off, dtype=np.int64),
        ip_bounds=np.array(ip_bounds, dtype=np.uint32),
        ip_map=np.array(ip_map, dtype=np.int32),
        map_off=np.array(map_off, dtype=np.int64),
        key_bounds=np.array(key_bounds, dtype=np.uint32),
        key_winner=np.array(key_winner, dtype=np.int32),
    )


def _check_direction(direction: int) -> int:
    if direction not in (0, 1):
        raise PolicyError(f"direction = {direction!r}: expected 0 (ingress/inbound) or 1 (egress/outbound)")
    return int(direction)


def _check_index(name: str, value: int, count: int) -> int:
    if not isinstance(value, (int, np.integer)) or not 0 <= value < count:
        raise PolicyError(f"{name} = {value!r} is out of range: {count} compiled")
    return int(value)


####################################################################################################
# Route tables
