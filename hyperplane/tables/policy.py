"""Route tables, security groups and network ACLs, compiled into flat arrays and run on batches.

The topology changes rarely and is asked about per packet, so each kind of policy is compiled
once per configuration change (``Compiled*.compile``) and then evaluated by GIL-free kernels in
``hyperplane._core._policy`` on whole batches (``lookup`` / ``evaluate``, columns or PACKET records).
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
  reported is the first matching one in the set's list order; which TCP/UDP flows the rules
  leave untracked is compiled too ("Untracked flows" below);
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from hyperplane._core import _policy
from hyperplane.tables.first_match import (  # noqa: F401 - PolicyError, icmp_port are public here
    PolicyError, _RuleBox, _address, _boundaries, _check_direction, _check_index, _cidr, _compile_first_match, _contains, _key_range, _mask, _merge_runs, _network, _paint_first_match, _port, _protocol, _tuple, icmp_port,
)

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


# Untracked flows. EC2 user guide, "Untracked connections": "If a security group rule permits
# TCP or UDP flows for all traffic (0.0.0.0/0 or ::/0) and there is a corresponding rule in the
# other direction that permits all response traffic (0.0.0.0/0 or ::/0) for any port (0-65535),
# then that flow of traffic is not tracked, unless it is part of an automatically tracked
# connection." Per space (set, direction) the compiler flags the TCP and UDP match keys that an
# open rule (a peer CIDR of /0) admits, when the other direction has an open rule for every port
# of that protocol (protocol -1, or the protocol with ports 0-65535); the walker adds the
# automatically tracked cases (which ENI, which peer) and ICMP and other protocols stay tracked.
_PROTOCOL_KEYS = ((0, 0xFFFF), (_policy.KEY_UDP, _policy.KEY_UDP + 0xFFFF))  # TCP, UDP


def _is_open(box: _RuleBox) -> bool:
    return any(plen == 0 for _, plen in box.networks)


def _untracked_keys(admitting: list[_RuleBox], answering: list[_RuleBox]) -> tuple[list[int], list[int]]:
    """Ascending key boundaries from 0 and a 0/1 flag for each, up to the next boundary."""
    ranges = []
    for lo, hi in _PROTOCOL_KEYS:
        if any(_is_open(b) and b.key_lo <= lo and hi <= b.key_hi for b in answering):
            ranges += [(max(lo, b.key_lo), min(hi, b.key_hi)) for b in admitting
                       if _is_open(b) and b.key_lo <= hi and lo <= b.key_hi]
    points = sorted({0, *(lo for lo, _ in ranges), *(hi + 1 for _, hi in ranges if hi + 1 < _KEY_LIMIT)})
    flags = [int(any(lo <= p <= hi for lo, hi in ranges)) for p in points]
    bounds, merged = [points[0]], [flags[0]]
    for p, f in zip(points[1:], flags[1:]):
        if f != merged[-1]:
            bounds.append(p)
            merged.append(f)
    return bounds, merged


def _compile_untracked(spaces: list[list[_RuleBox]]) -> dict[str, np.ndarray]:
    """``open_off`` / ``open_bounds`` / ``open_flag`` of ``_policy.SecurityGroupSets``: space
    ``2s + d`` is answered by space ``2s + 1 - d``."""
    off, bounds, flags = [0], [], []
    for k, boxes in enumerate(spaces):
        b, f = _untracked_keys(boxes, spaces[k ^ 1])
        bounds += b
        flags += f
        off.append(len(bounds))
    return {"open_off": np.array(off, dtype=np.int64), "open_bounds": np.array(bounds, dtype=np.uint32),
            "open_flag": np.array(flags, dtype=np.uint8)}


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
        kernel = _policy.SecurityGroupSets(**_compile_first_match(spaces), n_winners=longest,
                                           **_compile_untracked(spaces))
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

    def untracked_records(self, records: np.ndarray, sg_set: np.ndarray, direction: int) -> np.ndarray:
        """Per PACKET record (uint8): 1 when the set's rules leave its TCP/UDP flow untracked
        in ``direction`` (whether the ENI and the peer are ones AWS tracks anyway is the
        walker's to say)."""
        return self.kernel.untracked_records(records, sg_set, _check_direction(direction))

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
