"""The partition of a capture: which packets share state, as connected components.

Every packet touches up to three nodes; packets whose nodes connect are in one component:

- its **connection**: the unordered pair of its two ends (address and port; addresses only for
  ICMP), public addresses taken as the private ones they map to. Per-connection state (security
  group tracking, V2N and NAT translations) stays inside a connection.
- the **subnet** of a Hyperplane ENI pool it goes through: a function's execution environment
  (by the subnet it is bound to), or an address in a subnet that holds pools. A pool's ports
  and connection limit are its own; overflow ENIs take addresses of the subnet, shared by its
  pools: a subnet is one node.
- the **NAT gateway** it reaches: a packet to or from a NAT gateway's addresses, and statically
  every subnet whose route table sends anything to the NAT gateway (its ports per destination
  are shared by all of them). A plain ENI in such a subnet counts as that subnet.

A function's lifecycle couples its pools too, but it depends only on invocation times: every
worker makes every packet's invocation (``Engine.walk``), so it is replicated, not partitioned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from hyperplane.dataplane.compiled_vpc import EniKind
from hyperplane.formats.capture import PacketKind
from hyperplane.formats.seen_addresses import SeenAddresses
from hyperplane.lambda_service.environments import subnet_for
from hyperplane.lambda_service.function import LATEST, split_qualifier

_ICMP = 1


class Functions(Protocol):
    """The replay's capture addresses -> execution environments (``replay._Functions``)."""

    networks: list[tuple[str, int, int]]

    def owner(self, addresses: np.ndarray) -> np.ndarray: ...

    def environments_of(self, owner: np.ndarray, addresses: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def function_of(self, env: int) -> str: ...


@dataclass
class Partition:
    """Each capture packet's component (``component``; -1: not emulated), the components'
    names, and the clock (virtual seconds) of each component's last packet."""

    component: np.ndarray
    names: list[str]
    last_time: np.ndarray
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    of_subnet: dict[str, int] = field(default_factory=dict)  # a pool subnet's component

    def groups(self, workers: int) -> list[list[int]]:
        """The components in at most ``workers`` groups of about equal packets (largest first,
        each to the lightest group so far)."""
        load = [0] * min(workers, len(self.names))
        groups: list[list[int]] = [[] for _ in load]
        for c in np.argsort(-self.sizes, kind="stable"):
            k = load.index(min(load))
            groups[k].append(int(c))
            load[k] += int(self.sizes[c])
        return [sorted(g) for g in groups if g]


class _Nodes:
    """Node numbers: subnets, NAT gateways, functions without VpcConfig, then connections."""

    def __init__(self, net: Any) -> None:
        vpc = net.compiled
        topo = net.topology
        self.vpc = vpc
        # functions without VpcConfig share one node: they all leave from Lambda's own address
        self.names = [*vpc.subnet_ids, *vpc.nat_ids, "functions without VpcConfig"]
        self.subnets, self.nats = len(vpc.subnet_ids), len(vpc.nat_ids)
        nat_of = {nid: k for k, nid in enumerate(vpc.nat_ids)}
        self.static: list[tuple[int, int]] = []  # subnet -> NAT gateway its routes reach
        self.subnet_nat = np.zeros(self.subnets, bool)
        for s, sid in enumerate(vpc.subnet_ids):
            for route in topo.route_table_of(sid).routes:
                if route.target in nat_of:
                    self.static.append((s, self.subnets + nat_of[route.target]))
                    self.subnet_nat[s] = True
        # subnets that hold (or may come to hold) Hyperplane ENI pools: $LATEST's, an update's
        # in progress (its pools are being made) and every published version's
        self.pool_subnet = np.zeros(self.subnets, bool)
        for fs in net.lambda_service.functions.values():
            for config in _configs(fs):
                for sid in config.subnet_ids:
                    self.pool_subnet[vpc.subnet_ids.index(sid)] = True
        self.nat_of_eni = {int(e): k for k, e in enumerate(vpc.nat_eni) if e >= 0}
        # VPCs whose addresses overlap: an address alone does not say which ENI it is
        cidrs = [c for v in topo.vpcs.values() for c in v.cidrs]
        self.overlapping = any(a.overlaps(b) for k, a in enumerate(cidrs) for b in cidrs[k + 1:])

    def _node_of_eni(self) -> np.ndarray:
        """Each ENI's node (-1: none): its NAT gateway's; its subnet's for a Hyperplane ENI or
        an ENI in a subnet routing to a NAT gateway."""
        if getattr(self, "_eni_nodes", None) is None:
            nodes = np.full(len(self.vpc.enis), -1, np.int64)
            for k, row in enumerate(self.vpc.enis):
                if k in self.nat_of_eni:
                    nodes[k] = self.subnets + self.nat_of_eni[k]
                elif row.kind == EniKind.HYPERPLANE or self.subnet_nat[row.subnet]:
                    nodes[k] = row.subnet
            self._eni_nodes = nodes
        return self._eni_nodes

    def of_address(self, ips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(node of each address, -1: none; the address a connection key uses)."""
        vpc = self.vpc
        node = np.full(len(ips), -1, np.int64)
        key = ips.astype(np.uint32).copy()
        eni = vpc.eni_of_private_ip(ips)
        public_eni, private = vpc.public_ip_lookup(ips)
        by_public = (eni < 0) & (public_eni >= 0)
        eni = np.where(by_public, public_eni, eni)
        key[by_public] = private[by_public]
        known = np.flatnonzero(eni >= 0)
        node[known] = self._node_of_eni()[eni[known]]
        # an address of no ENI yet inside a pool's subnet: a Hyperplane ENI to come
        unknown = np.flatnonzero(eni < 0)
        for v in range(len(vpc.vpc_ids)):
            if not unknown.size:
                break
            subnet = vpc.subnet_of_ip(ips[unknown], np.full(unknown.size, v, np.int32))
            hit = (subnet >= 0) & self.pool_subnet[np.maximum(subnet, 0)]
            node[unknown[hit]] = subnet[hit]
            unknown = unknown[~hit]
        return node, key


def partition(net: Any, fns: Functions, chunks: Any, inject: str) -> Partition:
    """Classify every packet of ``chunks`` (a capture's, in order) to its component. Runs on a
    copy of the network (a forked process): numbering environments may give functions blocks."""
    nodes = _Nodes(net)
    first_conn = len(nodes.names)
    row_nodes: list[np.ndarray] = []  # per chunk: (n, 3) node numbers, -1: none
    conn_keys: list[np.ndarray] = []
    times: list[np.ndarray] = []
    emulated_rows: list[np.ndarray] = []
    moved: list[tuple[int, int]] = []  # (subnet, subnet): an environment's before and after an update
    env_nodes: dict[int, list[int]] = {}  # an environment's nodes (_environment_nodes)
    seen_addresses = _Addresses()
    n_total = 0
    for chunk in chunks:
        n_total = chunk.index + len(chunk)
        rows = np.flatnonzero(chunk.kind == PacketKind.EMULATED)
        rec = chunk.records[rows]
        emulated_rows.append(chunk.index + rows)
        times.append(rec["time"].astype(np.float64))
        # each address looked up once, at its first sight (``_Addresses``), in the order the
        # replay first sees them (``replay._Run._inputs``): a row's source before its
        # destination, which is also the order in which environments are numbered (an
        # address's number decides its environment's subnet)
        both = np.stack([rec["src_ip"], rec["dst_ip"]], 1).ravel()
        slot = seen_addresses.slots(both)
        if (slot < 0).any():
            fresh = _in_order_of_first_sight(both[slot < 0])
            node, key = nodes.of_address(fresh)
            owner = fns.owner(fresh) if inject == "function" and fns.networks else np.full(len(fresh), -1)
            own = np.flatnonzero(owner >= 0)
            if own.size:  # a function's capture address: its environment's node
                envs, which = fns.environments_of(owner[own], fresh[own])
                for e in envs.tolist():
                    if e not in env_nodes:
                        env_nodes[e] = _environment_nodes(net, nodes, fns.function_of(e), e)
                        # an environment an update moves to another subnet touches both
                        moved += [(env_nodes[e][0], other) for other in env_nodes[e][1:]]
                env_node = np.array([env_nodes[e][0] for e in envs.tolist()], np.int64)[which]
                node[own] = np.where(env_node >= 0, env_node, node[own])
            seen_addresses.add_with(fresh, node, key)
            slot = seen_addresses.slots(both)
        node_of, key_of = seen_addresses.node[slot].reshape(-1, 2), seen_addresses.key[slot].reshape(-1, 2)
        icmp = rec["proto"] == _ICMP
        keys = [(key_of[:, k] << np.uint64(16)) | np.where(icmp, 0, rec[port]).astype(np.uint64)
                for k, port in enumerate(("src_port", "dst_port"))]
        side = [node_of[:, 0], node_of[:, 1]]
        lo, hi = np.minimum(keys[0], keys[1]), np.maximum(keys[0], keys[1])
        conn_keys.append(np.stack([lo, hi], 1))
        row_nodes.append(np.stack(side, 1))
    every = np.concatenate(emulated_rows) if emulated_rows else np.zeros(0, np.int64)
    if not every.size:
        return Partition(np.full(0, -1, np.int64), [], np.zeros(0), np.zeros(0, np.int64))
    if nodes.overlapping:  # every packet in one component: the partition could not be sure
        ends = np.concatenate(row_nodes)
        row_nodes = [np.zeros_like(ends)]
    # a connection as one 64-bit number: two connections that collide only join components,
    # which costs parallelism, never exactness
    pairs = np.concatenate(conn_keys)
    mixed = (pairs[:, 0] * np.uint64(0x9E3779B97F4A7C15)) ^ pairs[:, 1]
    conn = _inverse(mixed)
    ends = np.concatenate(row_nodes)
    # each connection's smallest named node (none: first_conn), by counting, without sorting
    rep = np.full(int(conn.max()) + 1, first_conn, np.int64)
    touches = [ends[:, k] >= 0 for k in range(2)]
    for k in range(2):
        np.minimum.at(rep, conn[touches[k]], ends[touches[k], k])
    rep_of_row = rep[conn]
    # named nodes joined by the connections that touch two of them, and statically
    codes = np.concatenate([rep_of_row[touches[k]] * first_conn + ends[touches[k], k] for k in range(2)])
    present = np.flatnonzero(np.bincount(codes, minlength=first_conn * first_conn)) \
        if first_conn * first_conn <= 1 << 22 else _distinct(codes)
    joins = np.stack([present // first_conn, present % first_conn], 1)
    root = _components(first_conn, np.concatenate([np.array(nodes.static + moved, np.int64).reshape(-1, 2),
                                                   joins[joins[:, 0] != joins[:, 1]]]))
    # a row's component: its connection's named node's, or (none) the one of connections
    # that touch no shared state
    label = np.r_[root, first_conn][rep_of_row]
    sizes = np.bincount(label, minlength=first_conn + 1)
    named = np.flatnonzero(sizes)
    number = np.full(first_conn + 1, -1, np.int64)
    number[named] = np.arange(len(named))
    component_of = number[label]
    component = np.full(n_total, -1, np.int64)
    component[every] = component_of
    names = []
    for r in named:
        members = [nodes.names[m] for m in np.flatnonzero(root == r)] if r < first_conn else []
        names.append("+".join(members) if members else "connections of no shared resource")
    clock = np.maximum.accumulate(np.concatenate(times))
    clock -= clock[0]
    # the clock never goes back: a component's last packet has its latest time
    last_row = np.zeros(len(named), np.int64)
    np.maximum.at(last_row, component_of, np.arange(len(component_of)))
    of_subnet = {sid: int(number[root[s]]) for s, sid in enumerate(nodes.vpc.subnet_ids) if number[root[s]] >= 0}
    return Partition(component, names, clock[last_row], sizes[named].astype(np.int64), of_subnet)


class _Addresses(SeenAddresses):
    """The capture addresses seen so far, each one's node (-1: none; a function's capture
    address: its environment's) and the address its connection key uses (a public address:
    the private one it maps to), instead of looked up for every packet."""

    def __init__(self) -> None:
        super().__init__()
        self.node = np.zeros(0, np.int64)
        self.key = np.zeros(0, np.uint64)

    def add_with(self, ips: np.ndarray, node: np.ndarray, key: np.ndarray) -> None:
        """New distinct addresses, with their nodes and key addresses."""
        self.add(ips)
        self.node = np.concatenate([self.node, node.astype(np.int64)])
        self.key = np.concatenate([self.key, key.astype(np.uint64)])


def _in_order_of_first_sight(values: np.ndarray) -> np.ndarray:
    """The distinct ``values``, in the order of their first occurrence."""
    unique, first = np.unique(values, return_index=True)
    return unique[np.argsort(first, kind="stable")]


def _environment_nodes(net: Any, nodes: _Nodes, function: str, env: int) -> list[int]:
    """The nodes of an execution environment: the subnet it is bound to (its pool's) by the
    VpcConfig it is invoked with (a version's own, ``name:N``), then, while an update of
    ``$LATEST`` is in progress, the one the update binds it to once complete; or its
    function's own node without VpcConfig."""
    from ipaddress import IPv4Address

    base, qualifier = split_qualifier(function)
    fs = net.lambda_service.function(base)
    configs = [fs.version_config(qualifier)]
    if qualifier in (LATEST, "") and fs.pending_vpc_config is not None:
        configs.append(fs.pending_vpc_config)
    found: list[int] = []
    for config in configs:
        node = nodes.subnets + nodes.nats if config is None else \
            nodes.vpc.subnet_ids.index(subnet_for(base, str(IPv4Address(env)), config))
        if node not in found:
            found.append(node)
    return found


def _configs(fs: Any) -> list[Any]:
    """Every VpcConfig a function's pools may be made for during a replay."""
    return [c for c in (fs.vpc_config, fs.pending_vpc_config, *(v.vpc_config for v in fs.versions))
            if c is not None]


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (by a sort: numpy's hashing unique is slower on many values)."""
    s = np.sort(values)
    return s[np.r_[True, s[1:] != s[:-1]]] if len(s) else s


def _inverse(values: np.ndarray) -> np.ndarray:
    """Each value's number among the distinct values, in sorted order."""
    order = np.argsort(values)
    s = values[order]
    number = np.empty(len(values), np.int64)
    number[order] = np.cumsum(np.r_[False, s[1:] != s[:-1]])
    return number


def _components(n: int, edges: np.ndarray) -> np.ndarray:
    """The root of each of ``n`` nodes (union-find over ``edges``, the smallest node as root)."""
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in np.unique(edges, axis=0) if len(edges) else ():
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(x) for x in range(n)], np.int64)
