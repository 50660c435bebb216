"""Hyperplane ENIs, their pools, and where their addresses come from (SPEC §2).

One Hyperplane ENI exists per (subnet, security group set) pair that some function or published
version uses: that pair is a :class:`HyperplaneEniPool`, shared by all of them. Packets never
pass through this module. Each pool owns the V2N :class:`~hyperplane.tables.nat.ConnectionTable` of its
addresses; the packet pipeline calls ``pool.table.process`` and the table calls back
:meth:`HyperplaneEniPool._add_overflow_eni` when every address of the pool holds its maximum of
connections (65,000), which is how Lambda's overflow ENIs appear.

:class:`HyperplaneEniManager` keeps every pool and ENI of one service: it creates pools (within
the per-VPC ENI limit, at the lowest free address of the subnet, or taking over a ``kind:
lambda`` ENI of the topology), counts which functions and versions use each, schedules the
deletion of a pool left without users, and keeps each ENI's status. Whether the execution role
may create or delete an ENI is the service's question, not this module's. An ENI's status moves
only through :func:`hyperplane.lambda_service.states.apply_eni`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from ipaddress import IPv4Address
from typing import Any, Iterable, Protocol

from hyperplane.errors import SubnetOutOfAddresses
from hyperplane.model import ExecutionRole, Topology, VpcConfig
from hyperplane.tables.nat import ConnectionTable, NatStatus

from hyperplane.lambda_service.errors import SetupFailure
from hyperplane.lambda_service.settings import LambdaSettings
from hyperplane.lambda_service.states import (
    ENI_AVAILABLE, ENI_DELETED, ENI_DELETING, ENI_LIMIT_EXCEEDED, ENI_ORPHANED, ENI_PENDING,
    SUBNET_OUT_OF_IP_ADDRESSES, EniEvent, apply_eni,
)

__all__ = ["HyperplaneEni", "HyperplaneEniPool", "HyperplaneEniManager", "PoolKey", "pool_keys"]

#: (subnet id, security group set): what identifies one Hyperplane ENI pool.
PoolKey = tuple[str, frozenset[str]]


def pool_keys(config: VpcConfig | None) -> list[PoolKey]:
    """The pairs a VpcConfig needs, one per subnet, in the order the config lists them."""
    if config is None:
        return []
    groups = frozenset(config.security_group_ids)
    return [(subnet_id, groups) for subnet_id in config.subnet_ids]


class _Owner(Protocol):
    """What the manager needs from its service: the network, the settings and the clock."""

    topology: Topology
    settings: LambdaSettings

    @property
    def now(self) -> float: ...

    def _at(self, t: float, kind: str, payload: Any) -> None: ...


class HyperplaneEni:
    """One Hyperplane ENI: a private address in a subnet, carrying a security group set.

    Attributes:
        id: ``eni-`` + 17 hex digits, deterministic (the service's seed and a counter), or the
            id of a ``kind: lambda`` ENI of the topology that it took over.
        subnet_id, vpc_id: where it lives.
        security_group_ids: the groups it carries, sorted.
        private_ip: its address (dotted string); ``private_ip_int`` as the records hold it.
        status: ``pending`` (until ``ready_at``), ``available``, ``deleting`` (no user left;
            deleted at ``delete_at``), ``deleted`` or ``orphaned``.
        created_at, ready_at: virtual times; ``deleted_at`` once deleted or orphaned.
        overflow: created because the pool's other ENIs held their maximum of connections.
        pool: the :class:`HyperplaneEniPool` it belongs to.
    """

    interface_type = "lambda"  # what EC2 calls a Hyperplane ENI

    def __init__(self, eni_id: str, pool: HyperplaneEniPool, private_ip: IPv4Address, created_at: float,
                 ready_at: float, overflow: bool) -> None:
        self.id = eni_id
        self.pool = pool
        self.subnet_id = pool.subnet_id
        self.vpc_id = pool.vpc_id
        self.security_group_ids = pool.security_group_ids
        self.private_ip = str(private_ip)
        self.private_ip_int = int(private_ip)
        self.created_at = created_at
        self.ready_at = ready_at
        self.overflow = overflow
        self.status = ENI_PENDING
        self.deleted_at: float | None = None

    @property
    def delete_at(self) -> float | None:
        """When a ``deleting`` ENI will be deleted (``None`` otherwise)."""
        return self.pool.delete_at if self.status == ENI_DELETING else None

    @property
    def exists(self) -> bool:
        """Not deleted (an orphaned ENI still exists: it holds its address)."""
        return self.status != ENI_DELETED

    @property
    def connections(self) -> int:
        """Live connections on this address, from its pool's connection table."""
        if self.status in (ENI_DELETED, ENI_ORPHANED):
            return 0
        for stats in self.pool.table.stats():
            if stats.address == self.private_ip:
                return stats.live
        return 0

    @property
    def functions(self) -> list[str]:
        """The functions and versions using it: ``["orders", "orders:1", "report"]``, sorted."""
        if self.status in (ENI_DELETED, ENI_ORPHANED):
            return []
        return self.pool.functions

    def __repr__(self) -> str:
        extra = " overflow" if self.overflow else ""
        return (f"<HyperplaneEni {self.id} {self.private_ip} {self.subnet_id} "
                f"{','.join(self.security_group_ids)} {self.status}{extra}>")


class HyperplaneEniPool:
    """The Hyperplane ENIs of one (subnet, security group set) pair and their connection table.

    The first ENI is the pair's ENI; more are added when every address holds
    ``max_connections_per_eni`` connections (or a destination has no free port left).

    Attributes:
        key: ``(subnet_id, frozenset(security_group_ids))``.
        subnet_id, vpc_id, security_group_ids (sorted tuple).
        enis: the pool's ENIs, the first one first.
        table: the V2N :class:`~hyperplane.tables.nat.ConnectionTable` translating to their addresses.
        overflow_refusal: why the last overflow ENI could not be created (``None`` if it could).
    """

    def __init__(self, manager: HyperplaneEniManager, key: PoolKey, vpc_id: str, seed: int) -> None:
        self._manager = manager
        self.key = key
        self.subnet_id = key[0]
        self.vpc_id = vpc_id
        self.security_group_ids: tuple[str, ...] = tuple(sorted(key[1]))
        self.enis: list[HyperplaneEni] = []
        settings = manager.settings
        self.table = ConnectionTable.hyperplane_eni(
            (), on_full=self._add_overflow_eni, max_connections_per_address=settings.max_connections_per_eni,
            ports=settings.ports, timeouts=settings.timeouts, seed=seed,
        )
        self.users: Counter[str] = Counter()  # "orders" / "orders:1" -> how many configs name the pair
        self.delete_at: float | None = None
        self.deletion_role: ExecutionRole | None = None
        self._deletion_token = 0
        self.live = True  # False once deleted (or orphaned): a new pool replaces it
        self.overflow_refusal: str | None = None

    @property
    def eni(self) -> HyperplaneEni:
        """The pair's first ENI."""
        return self.enis[0]

    @property
    def ready_at(self) -> float:
        return self.enis[0].ready_at

    def ready(self, now: float) -> bool:
        """Whether the pair's first ENI exists and is ready at ``now``."""
        return self.live and now >= self.enis[0].ready_at

    @property
    def functions(self) -> list[str]:
        """Functions and versions using the pool (``name`` for $LATEST, ``name:N`` for versions)."""
        return sorted(user for user, count in self.users.items() if count > 0)

    @property
    def addresses(self) -> list[str]:
        return [eni.private_ip for eni in self.enis]

    def _add_overflow_eni(self, table: ConnectionTable, now: float, status: NatStatus) -> bool:
        """The table's ``on_full``: add an ENI with a new address of the same subnet.

        Returns False (the table then reports ``status`` for the packet) when the pool is gone,
        the VPC holds ``max_enis_per_vpc`` Hyperplane ENIs, or the subnet has no free address.
        """
        return self._manager.add_overflow_eni(self, float(now), status)

    def __repr__(self) -> str:
        return (f"<HyperplaneEniPool {self.subnet_id} {','.join(self.security_group_ids)} "
                f"{self.addresses} users={self.functions}>")


class HyperplaneEniManager:
    """Every pool and Hyperplane ENI of one service, and who uses them.

    Attributes:
        pools: the live pools by pair.  enis: every ENI ever created, in creation order.
        generation: increases whenever an ENI is created, changes status or is deleted.
    """

    def __init__(self, owner: _Owner, seed: int) -> None:
        self._owner = owner
        self.settings = owner.settings
        self._seed = seed
        self.pools: dict[PoolKey, HyperplaneEniPool] = {}
        self.enis: dict[str, HyperplaneEni] = {}
        self._by_address: dict[int, list[HyperplaneEni]] = {}  # existing ENIs by address
        self._eni_counter = 0
        self._pool_counter = 0
        self.generation = 0
        # ENIs of kind "lambda" in the topology (a snapshot of a running account): the first
        # pool created for their pair takes them over, id and address.
        self._adoptable: dict[PoolKey, list[Any]] = {}
        for eni in owner.topology.network_interfaces.values():
            if eni.kind == "lambda":
                self._adoptable.setdefault((eni.subnet_id, frozenset(eni.security_group_ids)), []).append(eni)

    # -- lookups ---------------------------------------------------------------------------

    def existing(self) -> list[HyperplaneEni]:
        return [e for e in self.enis.values() if e.exists]

    def holders(self, address: int) -> list[HyperplaneEni]:
        """The existing ENIs holding an address, oldest first."""
        return self._by_address.get(address, [])

    def live_in_vpc(self, vpc_id: str) -> int:
        return sum(1 for e in self.enis.values() if e.exists and e.vpc_id == vpc_id)

    def _used_addresses(self, subnet_id: str) -> set[IPv4Address]:
        return {IPv4Address(e.private_ip) for e in self.enis.values() if e.exists and e.subnet_id == subnet_id}

    # -- creating pools --------------------------------------------------------------------

    def create_pools(self, new: dict[PoolKey, str], t: float, delay: float) -> None:
        """Create a pool, with its first ENI ready at ``t + delay``, for each pair of ``new``
        (pair -> its VPC id); all or nothing. Raises SetupFailure (``EniLimitExceeded``,
        ``SubnetOutOfIPAddresses``)."""
        per_vpc = Counter(new.values())
        limit = self.settings.max_enis_per_vpc
        for vpc_id, count in per_vpc.items():
            existing = self.live_in_vpc(vpc_id)
            if existing + count > limit:
                raise SetupFailure(ENI_LIMIT_EXCEEDED,
                                   f"Lambda cannot create {count} more Hyperplane ENI(s) in {vpc_id}: it already "
                                   f"has {existing} and the limit is {limit} per VPC.")
        tentative: dict[str, list[IPv4Address]] = {}
        planned: list[tuple[PoolKey, str, str, IPv4Address]] = []
        for key, vpc_id in new.items():
            subnet_id = key[0]
            taken = tentative.setdefault(subnet_id, [])
            try:
                eni_id, ip = self._take_address(key, taken)
            except SubnetOutOfAddresses as exc:
                subnet = self._owner.topology.subnets[subnet_id]
                raise SetupFailure(SUBNET_OUT_OF_IP_ADDRESSES,
                                   f"Lambda cannot create a Hyperplane ENI in {subnet_id} ({subnet.cidr}): "
                                   f"{exc}.") from None
            taken.append(ip)
            planned.append((key, vpc_id, eni_id, ip))
        for key, vpc_id, eni_id, ip in planned:
            self._pool_counter += 1
            pool = HyperplaneEniPool(self, key, vpc_id, seed=self._pool_counter)
            self.pools[key] = pool
            self._new_eni(pool, eni_id, ip, t, t + delay, overflow=False)

    def _take_address(self, key: PoolKey, tentative: Iterable[IPv4Address]) -> tuple[str, IPv4Address]:
        """An (id, address) for a new ENI of the pair: a ``kind: lambda`` ENI of the topology not
        taken over yet, else a fresh id and the subnet's lowest free address."""
        taken = set(tentative)
        for eni in self._adoptable.get(key, ()):
            if eni.id not in self.enis and eni.private_ip not in taken:
                return eni.id, eni.private_ip
        ip = self._owner.topology.allocate_address(key[0], also_in_use=self._used_addresses(key[0]) | taken)
        return self._fresh_eni_id(), ip

    def _fresh_eni_id(self) -> str:
        while True:
            self._eni_counter += 1
            digest = hashlib.sha256(f"hyperplane-eni:{self._seed}:{self._eni_counter}".encode()).hexdigest()
            eni_id = "eni-" + digest[:17]
            if eni_id not in self.enis and eni_id not in self._owner.topology.network_interfaces:
                return eni_id

    def _new_eni(self, pool: HyperplaneEniPool, eni_id: str, ip: IPv4Address, t: float, ready_at: float,
                 *, overflow: bool) -> HyperplaneEni:
        eni = HyperplaneEni(eni_id, pool, ip, t, ready_at, overflow)
        pool.enis.append(eni)
        self.enis[eni.id] = eni
        self._by_address.setdefault(eni.private_ip_int, []).append(eni)
        pool.table.add_address(eni.private_ip_int, active_from=ready_at)
        self.generation += 1
        self.refresh(pool, t)
        if eni.status == ENI_PENDING:
            self._owner._at(ready_at, "ready", pool)
        return eni

    def add_overflow_eni(self, pool: HyperplaneEniPool, now: float, status: NatStatus) -> bool:
        """An overflow ENI for ``pool`` (see :meth:`HyperplaneEniPool._add_overflow_eni`)."""
        if not pool.live:
            pool.overflow_refusal = "the pool was deleted"
            return False
        limit = self.settings.max_enis_per_vpc
        existing = self.live_in_vpc(pool.vpc_id)
        if existing >= limit:
            pool.overflow_refusal = (f"{pool.vpc_id} already has {existing} Hyperplane ENIs, the limit per VPC "
                                     f"({ENI_LIMIT_EXCEEDED})")
            return False
        try:
            eni_id, ip = self._take_address(pool.key, ())
        except SubnetOutOfAddresses as exc:
            pool.overflow_refusal = f"{exc} ({SUBNET_OUT_OF_IP_ADDRESSES})"
            return False
        # created at the time of the packet that needed it, not at the service's clock: a replay
        # moves that clock to the end of each segment first, so it depends on where chunks end
        self._new_eni(pool, eni_id, ip, now, now + self.settings.overflow_eni_creation_seconds, overflow=True)
        pool.overflow_refusal = None
        return True

    # -- users, statuses, deletion ---------------------------------------------------------

    def hold(self, old: Counter[tuple[str, PoolKey]], new: Counter[tuple[str, PoolKey]], t: float,
             wait: float, role: ExecutionRole) -> None:
        """Move the pools' users from ``old`` to ``new`` ((user, pair) -> count); a pool left
        without users is deleted ``wait`` seconds later, with ``role``'s permissions."""
        for (user, key), count in (new - old).items():
            pool = self.pools[key]  # created by create_pools beforehand
            pool.users[user] += count
            if pool.delete_at is not None:  # a user came back before the deletion ran
                pool.delete_at, pool.deletion_role = None, None
                pool._deletion_token += 1
                self.refresh(pool)
        for (user, key), count in (old - new).items():
            pool = self.pools[key]
            pool.users[user] -= count
            if pool.users[user] <= 0:
                del pool.users[user]
            if not pool.users:
                pool.delete_at, pool.deletion_role = t + wait, role
                pool._deletion_token += 1
                self._owner._at(t + wait, "delete", (pool, pool._deletion_token))
                self.refresh(pool)

    def refresh(self, pool: HyperplaneEniPool, at: float | None = None) -> None:
        """Recompute the status of the pool's ENIs at the current time (or at ``at``, the time
        of a packet that made an overflow ENI, if the clock has not reached it yet)."""
        now = self._owner.now
        t = now if at is None else max(now, at)
        released = pool.delete_at is not None
        for eni in pool.enis:
            before = eni.status
            if before in (ENI_DELETED, ENI_ORPHANED):
                continue
            # forward only: an ENI seen ready at a packet's time ahead of the clock stays ready
            # when the clock, still behind, refreshes the pool again
            if before == ENI_PENDING and t >= eni.ready_at:
                apply_eni(eni, EniEvent.READY)
            if released and eni.status == ENI_AVAILABLE:
                apply_eni(eni, EniEvent.RELEASED)
            elif not released and eni.status == ENI_DELETING:
                apply_eni(eni, EniEvent.REUSED)
            if eni.status != before:
                self.generation += 1

    def delete_pool(self, pool: HyperplaneEniPool, t: float, *, allowed: bool) -> None:
        """Delete the pool's ENIs at ``t`` (orphan them when the role may not)."""
        for eni in pool.enis:
            apply_eni(eni, EniEvent.DELETED if allowed else EniEvent.ORPHANED)
            eni.deleted_at = t
            if allowed:
                self._forget_address(eni)  # an orphan keeps its address
        pool.live = False
        pool.delete_at = None
        del self.pools[pool.key]
        self.generation += 1

    def delete_by_hand(self, eni: HyperplaneEni, t: float) -> None:
        """DeleteNetworkInterface of an orphaned ENI: gone, its address free."""
        apply_eni(eni, EniEvent.DELETED)
        eni.deleted_at = t
        self._forget_address(eni)
        self.generation += 1

    def _forget_address(self, eni: HyperplaneEni) -> None:
        holders = self._by_address.get(eni.private_ip_int, [])
        if eni in holders:
            holders.remove(eni)
        if not holders:
            self._by_address.pop(eni.private_ip_int, None)
