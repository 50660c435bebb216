"""Route tables, security groups and network ACLs, compiled into flat arrays and run on batches.

The topology changes rarely and is asked about per packet, so each kind of policy is compiled
once per configuration change (``Compiled*.compile``) and then evaluated by GIL-free kernels in
``hyperplane._policy`` on whole batches (``lookup`` / ``evaluate``, columns or PACKET records).
How the arrays answer longest-prefix and first-match questions is described at the top of
``_policy.pyx``.

The inputs are plain specs of this module (``RouteSpec``, ``SecurityGroupRuleSpec``,
``NetworkAclEntrySpec``...), not the topology model: prefix lists and security-group peers come
already expanded into CIDRs, and each spec carries an opaque ``ref`` handed back in decisions.

Traces never evaluate a second time: ``explain`` runs the same compiled kernel on a batch of
one, and ``route`` / ``rule`` / ``entry`` turn the indexes a batch recorded into specs.

AWS semantics kept here (see SPEC §3-§4):
- routes: longest prefix wins; at equal length a static route beats a prefix-list route; two
  routes that are still tied (AWS refuses to create them) resolve to the one listed first;
- security groups: allow-only, the union of every rule of every group in the set; the rule
  reported is the first matching one in the set's list order;
- network ACLs: entries in ascending rule number, the first that matches decides; none matches
  => denied by the ``*`` rule, reported as rule number 32767.
- ports: the packet's destination port in every direction (so return traffic to an ephemeral
  port needs its own rule); ICMP matches type and code, passed as ``type << 8 | code``
  (``icmp_port``); for protocol -1 and protocols other than TCP, UDP and ICMP the ports are
  ignored.  The PACKET-records entry points read the ICMP type from ``flags`` and the code from
  ``dst_port`` (echo types, whose identifier rides in the ports, match code 0).
- index -1 in a batch means the stage does not apply to that packet (a NAT gateway has no
  security group; traffic within a subnet crosses no NACL): route -1; filters allow it with
  rule -1.  Any other index outside the compiled tables is a ``ValueError`` naming the position.
"""

from __future__ import annotations

import ipaddress
import socket
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from hyperplane import _policy
from hyperplane.errors import HyperplaneError

__all__ = [
    "INGRESS",
    "EGRESS",
    "INBOUND",
    "OUTBOUND",
    "IMPLICIT_DENY_RULE",
    "PolicyError",
    "RouteSpec",
    "RouteDecision",
    "CompiledRoutes",
    "SecurityGroupRuleSpec",
    "SecurityGroupSetSpec",
    "SecurityGroupDecision",
    "CompiledSecurityGroups",
    "NetworkAclEntrySpec",
    "NetworkAclSpec",
    "NetworkAclDecision",
    "CompiledNetworkAcls",
    "icmp_port",
]

INGRESS = INBOUND = _policy.INGRESS  # 0
EGRESS = OUTBOUND = _policy.EGRESS  # 1
IMPLICIT_DENY_RULE = _policy.IMPLICIT_DENY_RULE  # 32767, the NACL "*" rule
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


@dataclass(frozen=True)
class RouteSpec:
    """One route of a route table: its destination CIDR (static route) or the CIDRs of its
    prefix list (``prefix_list=True``), and an opaque ``ref`` returned in decisions."""

    cidrs: tuple[Cidr, ...]
    prefix_list: bool = False
    ref: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cidrs", _tuple(self.cidrs))

    @classmethod
    def static(cls, cidr: Cidr, ref: Any = None) -> RouteSpec:
        return cls((cidr,), False, ref)

    @classmethod
    def from_prefix_list(cls, cidrs: Iterable[Cidr], ref: Any = None) -> RouteSpec:
        return cls(tuple(cidrs), True, ref)


@dataclass(frozen=True)
class RouteDecision:
    """The route a destination takes in a table (``route_index`` -1 / ``route`` None: none)."""

    table: int
    destination: ipaddress.IPv4Address
    route_index: int
    route: RouteSpec | None
    cidr: ipaddress.IPv4Network | None  # the CIDR that matched (for a prefix list: which one)


class CompiledRoutes:
    """Route tables compiled together for longest-prefix-match lookups on batches."""

    def __init__(self, tables: tuple[tuple[RouteSpec, ...], ...], kernel: _policy.RouteTables,
                 entry_cidr: list[tuple[int, int]]) -> None:
        self.tables = tables
        self.kernel = kernel
        self._entry_cidr = entry_cidr

    @classmethod
    def compile(cls, tables: Sequence[Sequence[RouteSpec]]) -> CompiledRoutes:
        """Compile ``tables[t][r]``; lookups answer ``r`` for a table index ``t``."""
        frozen = tuple(tuple(routes) for routes in tables)
        table_off = [0]
        bounds: list[np.ndarray] = []
        winner: list[np.ndarray] = []
        entry_route: list[int] = []
        entry_cidr: list[tuple[int, int]] = []
        for t, routes in enumerate(frozen):
            atoms = []  # (priority, entry, network, prefix length)
            for r, spec in enumerate(routes):
                where = f"route table {t}, route {r}"
                if not isinstance(spec, RouteSpec):
                    raise PolicyError(f"{where}: expected a RouteSpec, got {type(spec).__name__}")
                if not spec.prefix_list and len(spec.cidrs) != 1:
                    raise PolicyError(f"{where}: a static route has exactly one destination CIDR, "
                                      f"got {len(spec.cidrs)}")
                for c, value in enumerate(spec.cidrs):
                    net, plen = _cidr(value, f"{where}, cidrs[{c}]")
                    entry = len(entry_route)
                    entry_route.append(r)
                    entry_cidr.append((net, plen))
                    # ascending priority: longer prefix, then static over prefix list, then
                    # the route (and CIDR) listed first
                    atoms.append(((plen, not spec.prefix_list, -r, -c), entry, net, plen))
            atoms.sort(key=lambda atom: atom[0])
            points = np.array(_boundaries((net, plen) for _, _, net, plen in atoms), dtype=np.int64)
            starts = np.array([net for _, _, net, _ in atoms], dtype=np.int64)
            ends = starts + (np.int64(1) << (32 - np.array([a[3] for a in atoms], dtype=np.int64)))
            lo, hi = np.searchsorted(points, starts), np.searchsorted(points, ends)
            # paint in ascending priority: the last paint over an interval is its winner
            painted = np.full(points.shape[0], -1, dtype=np.int32)
            for (_, entry, _, _), a, b in zip(atoms, lo.tolist(), hi.tolist()):
                painted[a:b] = entry
            keep = np.ones(points.shape[0], dtype=bool)
            keep[1:] = painted[1:] != painted[:-1]
            bounds.append(points[keep].astype(np.uint32))
            winner.append(painted[keep])
            table_off.append(table_off[-1] + int(keep.sum()))
        kernel = _policy.RouteTables(
            np.array(table_off, dtype=np.int64),
            np.concatenate(bounds) if bounds else np.zeros(0, dtype=np.uint32),
            np.concatenate(winner) if winner else np.zeros(0, dtype=np.int32),
            np.array(entry_route, dtype=np.int32))
        return cls(frozen, kernel, entry_cidr)

    def __len__(self) -> int:
        return len(self.tables)

    def __repr__(self) -> str:
        routes = sum(len(t) for t in self.tables)
        return (f"<CompiledRoutes {len(self.tables)} tables, {routes} routes, "
                f"{self.kernel.bounds.shape[0]} intervals>")

    def lookup(self, table_idx: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Winning route index per packet (int32, -1: no route or ``table_idx`` -1).

        ``table_idx`` int32, ``dst`` uint32 (host order), both C-contiguous, same length.
        """
        return self.kernel.lookup(table_idx, dst)

    def lookup_records(self, records: np.ndarray, table_idx: np.ndarray) -> np.ndarray:
        """``lookup`` on the ``dst_ip`` of PACKET records."""
        return self.kernel.lookup_records(records, table_idx)

    def route(self, table_idx: int, route_idx: int) -> RouteSpec | None:
        """The spec behind a route index a lookup returned (None for -1)."""
        table = self.tables[_check_index("table_idx", table_idx, len(self.tables))]
        return None if route_idx == -1 else table[_check_index("route_idx", route_idx, len(table))]

    def explain(self, table_idx: int, dst: int | str) -> RouteDecision:
        """The decision for one destination, from the compiled arrays (a batch of one)."""
        t = _check_index("table_idx", table_idx, len(self.tables))
        address = _address(dst, "dst")
        entry = np.empty(1, dtype=np.int32)
        r = int(self.kernel.lookup(np.array([t], dtype=np.int32),
                                   np.array([address], dtype=np.uint32), entry)[0])
        e = int(entry[0])
        return RouteDecision(t, ipaddress.IPv4Address(address), r, self.route(t, r),
                             _network(*self._entry_cidr[e]) if e >= 0 else None)


####################################################################################################
# Security groups


@dataclass(frozen=True)
class SecurityGroupRuleSpec:
    """One rule of a security group, its peer already expanded into CIDRs.

    ``protocol`` -1 (all), 1 (ICMP), 6 (TCP), 17 (UDP) or another IP protocol number (names
    ``"tcp"``... accepted).  TCP/UDP: ``from_port``..``to_port`` (-1/-1: all ports).  ICMP:
    ``from_port`` is the type, ``to_port`` the code, -1 = any.  Other protocols: ports ignored.
    ``cidrs``: the peer CIDRs (a prefix list's CIDRs; a group's members' private /32s).
    ``group`` / ``rule``: where the rule came from, for reports; ``ref``: opaque.
    """

    protocol: int | str
    from_port: int | None = -1
    to_port: int | None = -1
    cidrs: tuple[Cidr, ...] = ()
    group: int = -1
    rule: int = -1
    ref: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cidrs", _tuple(self.cidrs))


@dataclass(frozen=True)
class SecurityGroupSetSpec:
    """The union of the groups on one ENI (up to 5): all their ingress and egress rules."""

    ingress: tuple[SecurityGroupRuleSpec, ...] = ()
    egress: tuple[SecurityGroupRuleSpec, ...] = ()
    ref: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ingress", tuple(self.ingress))
        object.__setattr__(self, "egress", tuple(self.egress))

    def rules(self, direction: int) -> tuple[SecurityGroupRuleSpec, ...]:
        return self.egress if direction == EGRESS else self.ingress


@dataclass(frozen=True)
class SecurityGroupDecision:
    """Whether a set allows a packet, and the first rule that does (None: no rule does)."""

    sg_set: int
    direction: int
    allowed: bool
    rule_index: int
    rule: SecurityGroupRuleSpec | None
    cidr: ipaddress.IPv4Network | None  # the most specific CIDR of that rule holding the peer


def _rule_box(winner: int, protocol: int | str, from_port, to_port, cidrs, where: str) -> _RuleBox:
    proto = _protocol(protocol, where)
    lo, hi = _key_range(proto, from_port, to_port, where)
    networks = [_cidr(value, f"{where}, cidrs[{c}]") for c, value in enumerate(cidrs)]
    return _RuleBox(winner, networks, lo, hi)


class CompiledSecurityGroups:
    """Security-group sets compiled together; a packet is allowed when any rule matches it."""

    def __init__(self, sets: tuple[SecurityGroupSetSpec, ...],
                 kernel: _policy.SecurityGroupSets) -> None:
        self.sets = sets
        self.kernel = kernel

    @classmethod
    def compile(cls, sets: Sequence[SecurityGroupSetSpec | tuple]) -> CompiledSecurityGroups:
        """Compile ``sets[s]`` (a ``SecurityGroupSetSpec`` or an ``(ingress, egress)`` pair)."""
        frozen = []
        spaces = []
        longest = 0
        for s, spec in enumerate(sets):
            if isinstance(spec, tuple) and len(spec) == 2:
                spec = SecurityGroupSetSpec(spec[0], spec[1])
            if not isinstance(spec, SecurityGroupSetSpec):
                raise PolicyError(f"security group set {s}: expected a SecurityGroupSetSpec, "
                                  f"got {type(spec).__name__}")
            frozen.append(spec)
            for direction, name in ((INGRESS, "ingress"), (EGRESS, "egress")):
                rules = spec.rules(direction)
                longest = max(longest, len(rules))
                boxes = []
                for i, rule in enumerate(rules):
                    where = f"security group set {s}, {name}[{i}]"
                    if not isinstance(rule, SecurityGroupRuleSpec):
                        raise PolicyError(f"{where}: expected a SecurityGroupRuleSpec, "
                                          f"got {type(rule).__name__}")
                    boxes.append(_rule_box(i, rule.protocol, rule.from_port, rule.to_port,
                                           rule.cidrs, where))
                spaces.append(boxes)  # space index = 2 * set + direction
        kernel = _policy.SecurityGroupSets(**_compile_first_match(spaces), n_winners=longest)
        return cls(tuple(frozen), kernel)

    def __len__(self) -> int:
        return len(self.sets)

    def __repr__(self) -> str:
        return (f"<CompiledSecurityGroups {len(self.sets)} sets, "
                f"{self.kernel.map_off.shape[0] - 1} key maps>")

    def evaluate(self, sg_set: np.ndarray, direction: int | np.ndarray, peer: np.ndarray,
                 proto: np.ndarray, port: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(allowed uint8, rule int32)``: see ``_policy.SecurityGroupSets.evaluate``.

        ``sg_set`` int32 (-1: not applicable, allowed); ``direction`` 0/1 or uint8 array;
        ``peer`` uint32 (source for ingress, destination for egress); ``proto`` uint8;
        ``port`` uint16 destination port (ICMP: ``icmp_port(type, code)``).
        """
        return self.kernel.evaluate(sg_set, direction, peer, proto, port)

    def evaluate_records(self, records: np.ndarray, sg_set: np.ndarray,
                         direction: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``evaluate`` on PACKET records (ingress: ``src_ip``; egress: ``dst_ip``)."""
        return self.kernel.evaluate_records(records, sg_set, direction)

    def rule(self, sg_set: int, direction: int, rule_idx: int) -> SecurityGroupRuleSpec | None:
        """The spec behind a rule index an evaluation returned (None for -1)."""
        spec = self.sets[_check_index("sg_set", sg_set, len(self.sets))]
        rules = spec.rules(_check_direction(direction))
        return None if rule_idx == -1 else rules[_check_index("rule_idx", rule_idx, len(rules))]

    def explain(self, sg_set: int, direction: int, peer: int | str, proto: int,
                port: int) -> SecurityGroupDecision:
        """The decision for one packet, from the compiled arrays (a batch of one)."""
        s = _check_index("sg_set", sg_set, len(self.sets))
        d = _check_direction(direction)
        address = _address(peer, "peer")
        allowed, rule = self.kernel.evaluate(
            np.array([s], dtype=np.int32), d, np.array([address], dtype=np.uint32),
            np.array([proto], dtype=np.uint8), np.array([port], dtype=np.uint16))
        r = int(rule[0])
        spec = self.rule(s, d, r)
        cidr = None
        if spec is not None:  # rendering only: which of the winner's CIDRs holds the peer
            holding = [n for n in (_cidr(c, "cidr") for c in spec.cidrs) if _contains(n, address)]
            best = max(holding, key=lambda n: n[1], default=None)
            cidr = _network(*best) if best else None
        return SecurityGroupDecision(s, d, bool(allowed[0]), r, spec, cidr)


####################################################################################################
# Network ACLs


@dataclass(frozen=True)
class NetworkAclEntrySpec:
    """One numbered NACL entry (1..32766): protocol, ports (ICMP: type/code), CIDR, action."""

    rule_number: int
    protocol: int | str
    cidr: Cidr
    allow: bool
    from_port: int | None = -1
    to_port: int | None = -1
    ref: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class NetworkAclSpec:
    """A network ACL: its inbound and outbound entries (any order; evaluated by rule number)."""

    inbound: tuple[NetworkAclEntrySpec, ...] = ()
    outbound: tuple[NetworkAclEntrySpec, ...] = ()
    ref: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inbound", tuple(self.inbound))
        object.__setattr__(self, "outbound", tuple(self.outbound))

    def entries(self, direction: int) -> tuple[NetworkAclEntrySpec, ...]:
        return self.outbound if direction == OUTBOUND else self.inbound


@dataclass(frozen=True)
class NetworkAclDecision:
    """The entry that decided (None: the ``*`` rule, number 32767, which denies)."""

    nacl: int
    direction: int
    allowed: bool
    rule_number: int
    entry: NetworkAclEntrySpec | None


class CompiledNetworkAcls:
    """Network ACLs compiled together; the lowest-numbered matching entry decides."""

    def __init__(self, acls: tuple[NetworkAclSpec, ...], kernel: _policy.NetworkAcls,
                 entries: list[NetworkAclEntrySpec]) -> None:
        self.acls = acls
        self.kernel = kernel
        self._entries = entries  # by global entry id, as the kernel reports them

    @classmethod
    def compile(cls, acls: Sequence[NetworkAclSpec | tuple]) -> CompiledNetworkAcls:
        """Compile ``acls[a]`` (a ``NetworkAclSpec`` or an ``(inbound, outbound)`` pair)."""
        frozen = []
        spaces = []
        entries: list[NetworkAclEntrySpec] = []
        allow: list[int] = []
        numbers: list[int] = []
        for a, spec in enumerate(acls):
            if isinstance(spec, tuple) and len(spec) == 2:
                spec = NetworkAclSpec(spec[0], spec[1])
            if not isinstance(spec, NetworkAclSpec):
                raise PolicyError(f"network ACL {a}: expected a NetworkAclSpec, "
                                  f"got {type(spec).__name__}")
            frozen.append(spec)
            for direction, name in ((INBOUND, "inbound"), (OUTBOUND, "outbound")):
                seen: dict[int, int] = {}
                boxes = []
                listed = spec.entries(direction)
                for i, entry in enumerate(listed):
                    where = f"network ACL {a}, {name}[{i}]"
                    if not isinstance(entry, NetworkAclEntrySpec):
                        raise PolicyError(f"{where}: expected a NetworkAclEntrySpec, "
                                          f"got {type(entry).__name__}")
                    number = entry.rule_number
                    if isinstance(number, bool) or not isinstance(number, (int, np.integer)) \
                            or not 1 <= number < IMPLICIT_DENY_RULE:
                        raise PolicyError(f"{where}: rule number {number!r} is outside 1..32766")
                    if number in seen:
                        raise PolicyError(f"{where}: rule number {number} already used by "
                                          f"{name}[{seen[number]}]")
                    seen[number] = i
                    box = _rule_box(len(entries), entry.protocol, entry.from_port, entry.to_port,
                                    (entry.cidr,), where)
                    boxes.append((int(number), box))
                    entries.append(entry)
                    allow.append(1 if entry.allow else 0)
                    numbers.append(int(number))
                boxes.sort(key=lambda numbered: numbered[0])
                spaces.append([box for _, box in boxes])
        kernel = _policy.NetworkAcls(**_compile_first_match(spaces),
                                     entry_allow=np.array(allow, dtype=np.uint8),
                                     entry_rule_number=np.array(numbers, dtype=np.int32))
        return cls(tuple(frozen), kernel, entries)

    def __len__(self) -> int:
        return len(self.acls)

    def __repr__(self) -> str:
        return (f"<CompiledNetworkAcls {len(self.acls)} ACLs, {len(self._entries)} entries, "
                f"{self.kernel.map_off.shape[0] - 1} key maps>")

    def evaluate(self, nacl: np.ndarray, direction: int | np.ndarray, address: np.ndarray,
                 proto: np.ndarray, port: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(allowed uint8, rule_number int32)``: see ``_policy.NetworkAcls.evaluate``.

        ``nacl`` int32 (-1: not crossed, allowed with rule number -1); ``direction`` 0 inbound /
        1 outbound or uint8 array; ``address`` uint32 (source for inbound, destination for
        outbound); ``proto`` uint8; ``port`` uint16 destination port (ICMP: ``icmp_port``).
        """
        return self.kernel.evaluate(nacl, direction, address, proto, port)

    def evaluate_records(self, records: np.ndarray, nacl: np.ndarray,
                         direction: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``evaluate`` on PACKET records (inbound: ``src_ip``; outbound: ``dst_ip``)."""
        return self.kernel.evaluate_records(records, nacl, direction)

    def entry(self, nacl: int, direction: int, rule_number: int) -> NetworkAclEntrySpec | None:
        """The entry behind a rule number an evaluation returned (None for 32767 and -1)."""
        spec = self.acls[_check_index("nacl", nacl, len(self.acls))]
        for entry in spec.entries(_check_direction(direction)):
            if entry.rule_number == rule_number:
                return entry
        if rule_number in (IMPLICIT_DENY_RULE, -1):
            return None
        raise PolicyError(f"network ACL {nacl} has no rule number {rule_number} in that direction")

    def explain(self, nacl: int, direction: int, address: int | str, proto: int,
                port: int) -> NetworkAclDecision:
        """The decision for one packet, from the compiled arrays (a batch of one)."""
        a = _check_index("nacl", nacl, len(self.acls))
        d = _check_direction(direction)
        ip = _address(address, "address")
        entry = np.empty(1, dtype=np.int32)
        allowed, number = self.kernel.evaluate(
            np.array([a], dtype=np.int32), d, np.array([ip], dtype=np.uint32),
            np.array([proto], dtype=np.uint8), np.array([port], dtype=np.uint16), entry)
        e = int(entry[0])
        return NetworkAclDecision(a, d, bool(allowed[0]), int(number[0]),
                                  self._entries[e] if e >= 0 else None)
