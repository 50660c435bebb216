"""One function as Lambda's GetFunctionConfiguration shows it, and its VpcConfig's checks.

:class:`FunctionState` is what a caller reads (``State``, reason codes, ``LastUpdateStatus``,
the VpcConfig $LATEST runs with, published versions); the service changes its lifecycle fields
only through :mod:`hyperplane.lambda_service.states`. The helpers below turn what a caller
passes (a ``name:version`` qualifier, a VpcConfig as a mapping) into what the service works
with, and check a VpcConfig against the topology with AWS's reason codes.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Mapping, Protocol

from hyperplane.errors import UnknownResource
from hyperplane.model import (
    MAX_SECURITY_GROUPS_PER_ENI, MAX_SUBNETS_PER_FUNCTION, FunctionVersion, LambdaFunction, Topology, VpcConfig,
)

from hyperplane.lambda_service.enis import HyperplaneEni, HyperplaneEniManager, HyperplaneEniPool, PoolKey, pool_keys
from hyperplane.lambda_service.environments import block_network, subnet_for
from hyperplane.lambda_service.errors import SetupFailure
from hyperplane.lambda_service.settings import LambdaSettings
from hyperplane.lambda_service.states import ACTIVE, IN_PROGRESS, INITIAL, INVALID_SECURITY_GROUP, INVALID_SUBNET


class LambdaService(Protocol):
    """What a function reads of the service that keeps it (``service.LambdaService``)."""

    settings: LambdaSettings
    topology: Topology
    _manager: HyperplaneEniManager

__all__ = ["FunctionState", "LATEST", "split_qualifier", "normalize_config", "check_vpc_config", "vpc_of"]

LATEST = "$LATEST"


class FunctionState:
    """A function as Lambda's GetFunctionConfiguration shows it, kept up to date by the service.

    Attributes:
        name, role: the function and its execution role.
        state: ``Pending | Active | Inactive | Failed``.
        state_reason_code: ``Creating``, ``Idle``, ``Restoring``, ``EniLimitExceeded``,
            ``InsufficientRolePermissions``, ``SubnetOutOfIPAddresses``, ``InvalidSubnet``,
            ``InvalidSecurityGroup`` or ``None``; ``state_reason``: a sentence.
        last_update_status: ``InProgress | Successful | Failed`` (InProgress while it is being
            created, too); ``last_update_status_reason_code`` / ``_reason`` when Failed.
        vpc_config: the configuration $LATEST runs with now (during an update: the old one;
            the new one is ``pending_vpc_config``).
        versions: published versions, each with its own VpcConfig.
        created_at, last_invoked (``None`` if never invoked), last_modified.
        environment_network: its first /24 of execution environment addresses (environments
            0-253; later ones are in further blocks, see :mod:`hyperplane.lambda_service.environments`).
    """

    def __init__(self, service: LambdaService, fn: LambdaFunction, index: int, now: float) -> None:
        self._service = service
        self._created_as = fn  # what the service does not model (its other fields) stays as given
        self.name = fn.name
        self.role = fn.role
        self.description = fn.description
        self.index = index
        self.vpc_config: VpcConfig | None = fn.vpc_config
        self.pending_vpc_config: VpcConfig | None = None
        self._versions: dict[str, VpcConfig | None] = {v.version: v.vpc_config for v in fn.versions}
        # the lifecycle fields: changed only by hyperplane.lambda_service.states.apply
        (self.state, self.state_reason_code, self.state_reason), \
            (self.last_update_status, self.last_update_status_reason_code, self.last_update_status_reason) = INITIAL
        self.created_at = now
        self.last_modified = now
        self.last_invoked: float | None = None
        self._activity = now  # last invocation, creation or restore: what idleness counts from
        self._idle_token = 0
        self._idle_due: float | None = None  # when the pending idle timer is due (None: none)
        self._held: Counter[tuple[str, PoolKey]] = Counter()
        self._used: dict[PoolKey, None] = {}  # every pair it has held, in order (reply_pools)
        self.deleted = False
        self._blocks = [index]  # its /24s of environment addresses, by ordinal (see environments.py)

    # -- what the function is --------------------------------------------------------------

    @property
    def versions(self) -> tuple[FunctionVersion, ...]:
        return tuple(FunctionVersion(v, cfg) for v, cfg in self._versions.items())

    def version_config(self, qualifier: str) -> VpcConfig | None:
        """The VpcConfig of ``$LATEST`` (as invocations use it now) or of a published version."""
        if qualifier in (LATEST, ""):
            return self.vpc_config
        try:
            return self._versions[qualifier]
        except KeyError:
            raise UnknownResource(f"{self.name}:{qualifier}", "function version") from None

    @property
    def updating(self) -> bool:
        """An update of an Active function is waiting for its new ENIs (``pending_vpc_config``)."""
        return self.state == ACTIVE and self.last_update_status == IN_PROGRESS

    @property
    def is_vpc_attached(self) -> bool:
        return self.vpc_config is not None

    @property
    def environment_network(self) -> IPv4Network:
        return block_network(self._service.settings, self.index)

    # -- what it uses ----------------------------------------------------------------------

    @property
    def pools(self) -> list[HyperplaneEniPool]:
        """The pools $LATEST invocations use now, one per subnet of ``vpc_config`` (empty
        unless Active)."""
        if self.state != ACTIVE or self.vpc_config is None:
            return []
        return [self._service._manager.pools[k] for k in pool_keys(self.vpc_config)]

    @property
    def hyperplane_enis(self) -> list[HyperplaneEni]:
        """Every ENI of every pool the function holds: $LATEST (during an update the old and
        the new pairs), its published versions; the ENIs whose ``functions`` name it."""
        seen: dict[PoolKey, None] = {}
        for (_user, key), count in self._held.items():
            if count > 0:
                seen.setdefault(key)
        out: list[HyperplaneEni] = []
        for key in seen:
            pool = self._service._manager.pools.get(key)
            if pool is not None:
                out.extend(e for e in pool.enis if e.exists)
        return out

    def resource(self) -> LambdaFunction:
        """The function as the topology describes it: the VpcConfig $LATEST invocations use
        now (during an update, the old one) and the published versions with theirs."""
        return dataclasses.replace(self._created_as, vpc_config=self.vpc_config, versions=self.versions)

    @property
    def reply_pools(self) -> list[HyperplaneEniPool]:
        """The live pools that may hold connections of its execution environments: $LATEST's
        first, then every other it has used (its versions', the old ones of an update until
        they are deleted). An answer addressed to an environment is matched to its connection
        in them, as a packet sent to the ENI's own address is: a connection opened through the
        old ENI before an update completed is still answered through it."""
        manager = self._service._manager
        latest = self.pools
        seen = {id(p) for p in latest}
        others = [manager.pools[k] for k in self._used if k in manager.pools and id(manager.pools[k]) not in seen]
        return [*latest, *(p for p in others if p.live)]

    def pools_of(self, qualifier: str) -> list[HyperplaneEniPool]:
        """The live pools a version's invocations use (``$LATEST``: :attr:`pools`)."""
        if qualifier in (LATEST, ""):
            return self.pools
        manager = self._service._manager
        if self.state != ACTIVE:
            return []
        return [manager.pools[k] for k in pool_keys(self.version_config(qualifier)) if k in manager.pools]

    def subnet_for(self, environment_ip: str | int, qualifier: str = LATEST) -> str | None:
        """The subnet an execution environment is bound to (``None`` without VpcConfig)."""
        config = self.version_config(qualifier)
        if config is None:
            return None
        return subnet_for(self.name, str(IPv4Address(environment_ip)), config)

    def configuration(self) -> dict[str, Any]:
        """The fields of GetFunctionConfiguration this emulator models, with AWS's key names."""
        config = self.vpc_config
        vpc: dict[str, Any] = {"SubnetIds": [], "SecurityGroupIds": [], "VpcId": ""}
        if config is not None:
            vpc = {"SubnetIds": list(config.subnet_ids), "SecurityGroupIds": list(config.security_group_ids),
                   "VpcId": vpc_of(self._service.topology, config) or ""}
        out: dict[str, Any] = {"FunctionName": self.name, "Role": self.role.arn, "VpcConfig": vpc,
                               "State": self.state, "LastUpdateStatus": self.last_update_status}
        for key, value in (("StateReason", self.state_reason), ("StateReasonCode", self.state_reason_code),
                           ("LastUpdateStatusReason", self.last_update_status_reason),
                           ("LastUpdateStatusReasonCode", self.last_update_status_reason_code)):
            if value is not None:
                out[key] = value
        return out

    def __repr__(self) -> str:
        reason = f"/{self.state_reason_code}" if self.state_reason_code else ""
        return f"<FunctionState {self.name} {self.state}{reason} LastUpdateStatus={self.last_update_status}>"


def split_qualifier(name: str) -> tuple[str, str]:
    """``"orders:1"`` -> ``("orders", "1")``; no qualifier is ``$LATEST``."""
    base, _, qualifier = name.partition(":")
    return base, (qualifier or LATEST)


# the keys a VpcConfig mapping may use: ours, and AWS's (UpdateFunctionConfiguration's VpcConfig)
_CONFIG_KEYS = {"subnet_ids": "subnet_ids", "security_group_ids": "security_group_ids",
                "SubnetIds": "subnet_ids", "SecurityGroupIds": "security_group_ids"}


def normalize_config(config: VpcConfig | Mapping[str, Any] | None) -> VpcConfig | None:
    """A VpcConfig, a dict with ``subnet_ids``/``security_group_ids`` (or AWS's ``SubnetIds``/
    ``SecurityGroupIds``), or None; empty = None. Raises ValueError for a key it does not know
    or a value that is not a list of ids (a misspelt key must not detach a function)."""
    if config is None:
        return None
    if isinstance(config, Mapping):
        unknown = [k for k in config if k not in _CONFIG_KEYS]
        if unknown:
            raise ValueError(f"vpc_config: unknown key {unknown[0]!r} (expected subnet_ids and "
                             "security_group_ids, or AWS's SubnetIds and SecurityGroupIds)")
        ids: dict[str, tuple[str, ...]] = {"subnet_ids": (), "security_group_ids": ()}
        for key, value in config.items():
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) \
                    or not all(isinstance(v, str) for v in value):
                raise ValueError(f"vpc_config[{key!r}] must be a list of ids, not {value!r}")
            ids[_CONFIG_KEYS[key]] += tuple(value)
        config = VpcConfig(ids["subnet_ids"], ids["security_group_ids"])
    if not isinstance(config, VpcConfig):
        raise TypeError(f"vpc_config must be a VpcConfig, a mapping or None, not {type(config).__name__}")
    if not config.subnet_ids and not config.security_group_ids:
        return None  # AWS: empty lists detach the function from its VPC
    return VpcConfig(tuple(config.subnet_ids), tuple(config.security_group_ids))


def vpc_of(topology: Topology, config: VpcConfig) -> str | None:
    """The VPC of the config's first subnet (``None`` if it names none the topology has)."""
    subnet = topology.subnets.get(config.subnet_ids[0]) if config.subnet_ids else None
    return subnet.vpc_id if subnet is not None else None


def check_vpc_config(topology: Topology, config: VpcConfig) -> str:
    """Validate a VpcConfig against the topology; returns its VPC id. Raises SetupFailure
    (``InvalidSubnet``, ``InvalidSecurityGroup``)."""
    if not config.subnet_ids:
        raise SetupFailure(INVALID_SUBNET, "The VpcConfig has security groups but no subnet.")
    if len(config.subnet_ids) > MAX_SUBNETS_PER_FUNCTION:
        raise SetupFailure(INVALID_SUBNET, f"The VpcConfig lists {len(config.subnet_ids)} subnets; "
                                           f"a function has at most {MAX_SUBNETS_PER_FUNCTION}.")
    vpc_id = None
    for subnet_id in config.subnet_ids:
        subnet = topology.subnets.get(subnet_id)
        if subnet is None:
            raise SetupFailure(INVALID_SUBNET, f"The subnet ID '{subnet_id}' does not exist.")
        if vpc_id is None:
            vpc_id = subnet.vpc_id
        elif subnet.vpc_id != vpc_id:
            raise SetupFailure(INVALID_SUBNET, f"Subnet {subnet_id} is in {subnet.vpc_id}, not {vpc_id}: "
                                               "a function's subnets must all be in one VPC.")
    if not config.security_group_ids:
        raise SetupFailure(INVALID_SECURITY_GROUP, "The VpcConfig has subnets but no security group.")
    if len(config.security_group_ids) > MAX_SECURITY_GROUPS_PER_ENI:
        raise SetupFailure(INVALID_SECURITY_GROUP, f"The VpcConfig lists {len(config.security_group_ids)} "
                                                   f"security groups; a function has at most {MAX_SECURITY_GROUPS_PER_ENI}.")
    for sg_id in config.security_group_ids:
        sg = topology.security_groups.get(sg_id)
        if sg is None:
            raise SetupFailure(INVALID_SECURITY_GROUP, f"The security group ID '{sg_id}' does not exist.")
        if sg.vpc_id != vpc_id:
            raise SetupFailure(INVALID_SECURITY_GROUP, f"Security group {sg_id} is in {sg.vpc_id}, but the "
                                                       f"function's subnets are in {vpc_id}.")
    assert vpc_id is not None
    return vpc_id
