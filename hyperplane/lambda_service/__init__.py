"""Lambda functions and the Hyperplane ENIs they reach their VPC through (SPEC §2).

The Lambda control plane of one account, on a virtual clock; packets never pass through it.
One module per reason to change:

- :mod:`~hyperplane.lambda_service.settings`: every number the layer uses (:class:`LambdaSettings`).
- :mod:`~hyperplane.lambda_service.states`: the lifecycle as transition tables (a function's
  State and LastUpdateStatus, a Hyperplane ENI's status) and AWS's words for them.
- :mod:`~hyperplane.lambda_service.enis`: Hyperplane ENIs, their pools (one per subnet and
  security group set) and their addresses.
- :mod:`~hyperplane.lambda_service.environments`: execution environment addresses and the
  subnet each is bound to.
- :mod:`~hyperplane.lambda_service.function`: a function as GetFunctionConfiguration shows it.
- :mod:`~hyperplane.lambda_service.lifecycle`: what happens to a function over time.
- :mod:`~hyperplane.lambda_service.invocations`: what an invocation gives, one or many.
- :mod:`~hyperplane.lambda_service.service`: :class:`LambdaService`, the clock, the API, IAM.
- :mod:`~hyperplane.lambda_service.errors`: what the service raises.
"""

from __future__ import annotations

from hyperplane.lambda_service.enis import HyperplaneEni, HyperplaneEniPool, PoolKey
from hyperplane.lambda_service.errors import (
    ClockError, IllegalTransition, InvalidEnvironment, LambdaError, ResourceConflict,
)
from hyperplane.lambda_service.function import LATEST, FunctionState
from hyperplane.lambda_service.invocations import (
    FUNCTION_FAILED, FUNCTION_INACTIVE, FUNCTION_PENDING, Invocation, InvocationRefused, InvocationResult,
)
from hyperplane.lambda_service.service import CREATE_ENI_PERMISSIONS, DELETE_ENI_PERMISSION, LambdaService
from hyperplane.lambda_service.settings import LambdaSettings
from hyperplane.lambda_service.states import (
    ACTIVE, CREATING, ENI_AVAILABLE, ENI_DELETED, ENI_DELETING, ENI_LIMIT_EXCEEDED, ENI_ORPHANED, ENI_PENDING,
    FAILED, IDLE, IN_PROGRESS, INACTIVE, INSUFFICIENT_ROLE_PERMISSIONS, INVALID_SECURITY_GROUP, INVALID_SUBNET,
    PENDING, REASON_CODES, RESTORING, SUBNET_OUT_OF_IP_ADDRESSES, SUCCESSFUL,
)

__all__ = [
    "LambdaSettings", "LambdaService", "FunctionState", "HyperplaneEni", "HyperplaneEniPool",
    "Invocation", "InvocationRefused", "InvocationResult", "LambdaError", "ClockError", "ResourceConflict",
    "InvalidEnvironment", "IllegalTransition", "PoolKey", "LATEST",
    # states and reason codes
    "PENDING", "ACTIVE", "INACTIVE", "FAILED", "IN_PROGRESS", "SUCCESSFUL",
    "CREATING", "IDLE", "RESTORING", "ENI_LIMIT_EXCEEDED", "INSUFFICIENT_ROLE_PERMISSIONS",
    "SUBNET_OUT_OF_IP_ADDRESSES", "INVALID_SUBNET", "INVALID_SECURITY_GROUP", "REASON_CODES",
    "ENI_PENDING", "ENI_AVAILABLE", "ENI_DELETING", "ENI_DELETED", "ENI_ORPHANED",
    "FUNCTION_PENDING", "FUNCTION_INACTIVE", "FUNCTION_FAILED", "CREATE_ENI_PERMISSIONS", "DELETE_ENI_PERMISSION",
]
