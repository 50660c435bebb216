"""What the lifecycle steps and batch invocations use of the service that runs them
(``service.LambdaService``), declared here so that those modules need not import it."""

from __future__ import annotations

from typing import Any, Protocol

from hyperplane.model import ExecutionRole, Topology, VpcConfig

from hyperplane.lambda_service.enis import HyperplaneEniManager
from hyperplane.lambda_service.environments import ExecutionEnvironments
from hyperplane.lambda_service.function import FunctionState
from hyperplane.lambda_service.settings import LambdaSettings


class LambdaService(Protocol):
    settings: LambdaSettings
    topology: Topology
    _now: float
    _functions: dict[str, FunctionState]
    _environments: ExecutionEnvironments
    _manager: HyperplaneEniManager
    _config_generation: int

    @property
    def generation(self) -> int: ...

    @property
    def next_event_at(self) -> float | None: ...

    def function(self, name: str) -> FunctionState: ...

    def _at(self, t: float, kind: str, payload: Any) -> None: ...

    def _invoke(self, name: str, environment: Any) -> Any: ...

    def _ensure_pools(self, configs: list[VpcConfig], role: ExecutionRole, t: float, *, ready: bool) -> None: ...
