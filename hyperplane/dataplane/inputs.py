"""A function's packets as walker rows: one module for ``fn.send``, batches and capture replay,
so that they cannot disagree.

A packet from an execution environment is an invocation at the packet's time
(:meth:`~hyperplane.lambda_service.LambdaService.invoke_rows`):

- accepted, with VpcConfig: the walker translates it on the Hyperplane ENI pool of the subnet the
  environment is bound to (``Origin.FUNCTION``);
- refused (Pending, Inactive, Failed): its verdict is the refusal's reason code; it is not walked;
- accepted, without VpcConfig: the function runs only in Lambda's own VPC (SPEC §2: "it reaches
  the internet directly and nothing in customer VPCs"). A private destination is out of its reach
  (``NO_VPC_ACCESS``); a public one is reached from Lambda's own public address through the
  internet: into a customer VPC when the address is one of its public addresses
  (``Origin.INTERNET``), otherwise it leaves (``EXITED_TO_INTERNET``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hyperplane.dataplane.compiled_vpc import CompiledVpc
from hyperplane.dataplane.walk import Origin
from hyperplane.lambda_service import Invocation, InvocationResult, LambdaService
from hyperplane.reasons import Reason


class Host(Protocol):
    """What the rows are made for (a ``Network``): its Lambda service and current compilation."""

    lambda_service: LambdaService

    @property
    def compiled(self) -> CompiledVpc: ...

    def pool_number(self, pool: Any) -> int: ...

# Where a function without VpcConfig appears to come from on the internet (Lambda's own NAT;
# TEST-NET-1, since the real addresses are not documented).
LAMBDA_SERVICE_PUBLIC_IP = "192.0.2.250"
_LAMBDA_SERVICE_IP = int(ipaddress.IPv4Address(LAMBDA_SERVICE_PUBLIC_IP))
# (network, mask) of the ranges that are not on the internet: out of reach without VpcConfig
_NOT_INTERNET = [(int(n.network_address), int(n.netmask)) for n in map(ipaddress.IPv4Network, (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8"))]


@dataclass
class FunctionRows:
    """Walker input for the first ``decided`` rows of a function's packets.

    Attributes:
        decided: how many leading rows were invoked; the others wait for the clock (see
            ``LambdaService.invoke_rows``).
        origin, index: per decided row, the walker's origin and origin index.
        verdict: per decided row, a ``Reason`` decided before the walk (0: walk the row).
        outcomes, outcome_of_row: the invocations, and each decided row's among them.
    """

    decided: int
    origin: np.ndarray
    index: np.ndarray
    verdict: np.ndarray
    outcomes: list[InvocationResult]
    outcome_of_row: np.ndarray

    @property
    def lambda_vpc(self) -> np.ndarray:
        """Rows of functions without VpcConfig (they leave from Lambda's own VPC)."""
        return np.array([isinstance(o, Invocation) and o.pool is None for o in self.outcomes])[self.outcome_of_row]


def function_rows(net: Host, records: np.ndarray, functions: Sequence[str], environments: Sequence[str | int],
                  environment_of_row: np.ndarray, times: np.ndarray) -> FunctionRows:
    """Invoke for each row of ``records`` (PACKET rows sent by execution environments) at its
    time in ``times`` and say how the walker takes it. ``functions[e]``/``environments[e]``:
    environment ``e``'s function and address or number; ``environment_of_row``: each row's.

    The decided rows' source addresses are set in place: the environment's, or Lambda's own
    public address for a function without VpcConfig reaching the internet.
    """
    decided, outcomes, which = net.lambda_service.invoke_rows(functions, environments, environment_of_row, times)
    k = len(outcomes)
    origin_of = np.full(k, Origin.FUNCTION, np.int8)
    index_of = np.zeros(k, np.int32)
    verdict_of = np.zeros(k, np.uint8)
    source_of = np.zeros(k, np.uint32)
    for j, outcome in enumerate(outcomes):
        source_of[j] = int(ipaddress.IPv4Address(outcome.environment_ip))
        if not isinstance(outcome, Invocation):
            verdict_of[j] = Reason[outcome.reason_code]
        elif outcome.pool is not None:
            index_of[j] = net.pool_number(outcome.pool)
    which = which[:decided]
    rows = FunctionRows(decided, origin_of[which], index_of[which], verdict_of[which], outcomes, which)
    rec = records[:decided]
    rec["src_ip"] = source_of[which]
    lambda_vpc = np.flatnonzero(rows.lambda_vpc)
    if lambda_vpc.size:
        dst = rec["dst_ip"][lambda_vpc]
        private = np.zeros(len(dst), bool)
        for base, mask in _NOT_INTERNET:
            private |= (dst & np.uint32(mask)) == base
        rows.verdict[lambda_vpc[private]] = Reason.NO_VPC_ACCESS
        public = lambda_vpc[~private]
        rec["src_ip"][public] = _LAMBDA_SERVICE_IP
        eni, _ = net.compiled.public_ip_lookup(rec["dst_ip"][public])
        rows.origin[public[eni >= 0]], rows.index[public[eni >= 0]] = Origin.INTERNET, -1
        rows.verdict[public[eni < 0]] = Reason.EXITED_TO_INTERNET
    return rows
