# Type stubs for hyperplane._walk (hand-written; the C types are noted in comments).
# Users go through hyperplane.Network.process / hyperplane.pipeline.Pipeline.run.
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import final

__test__: dict[str, str]  # added by Cython

STAGES: tuple[str, ...]  # hop log stage names, by stage code
HOP: np.dtype[np.void]  # hop_t: row i4, stage u1, pos u1, pad u2, v i4[6]
PACKET_HOPS: int  # HOPS_PER_PACKET: the room the log needs before each packet

@final
class Walker:
    n_enis: int
    n_pools: int
    n_endpoints: int
    n_functions: int
    flow_stores: int  # flows (re)written in the fast path's memory since it was allocated
    def __init__(
        self,
        vpc: Any,  # hyperplane.vpc.CompiledVpc
        nat_cores: list[Any],  # hyperplane._nat.NatCore per NAT gateway
        pool_cores: list[Any],  # hyperplane._nat.NatCore per Hyperplane ENI pool
        pool_vpc: npt.ArrayLike,  # int32 per pool
        pool_of_eni: npt.ArrayLike,  # int32 per ENI (-1: not a live Hyperplane ENI)
        pool_stops: npt.ArrayLike,  # uint8 per pool: stop when full (an overflow ENI may come)
        track: Any,  # hyperplane._conntrack.ConntrackCore
        v2n_reason: npt.ArrayLike,  # uint8 Reason by V2N status
        nat_reason: npt.ArrayLike,  # uint8 Reason by NAT gateway status
    ) -> None: ...
    def set_function_pools(self, pools_by_function: list[list[int]]) -> None: ...
    def check_origins(self, origin: npt.NDArray[np.int8], index: npt.NDArray[np.int32]) -> None: ...
    def walk(
        self,
        out: npt.NDArray[np.void],  # packet_t[::1], translated in place
        origin: npt.NDArray[np.int8],
        index: npt.NDArray[np.int32],
        reason: npt.NDArray[np.uint8],  # written
        location: npt.NDArray[np.int32],  # written
        first_hop: npt.NDArray[np.int64] | None,  # written (None: may be, without a log)
        hops: npt.NDArray[np.void] | None,  # HOP, appended to (None: verdict-only, no log)
        n_hops: int,
        begin: int,
        nostop_row: int = -1,
        pickup: bool = False,  # bint: mid-stream pickup on the NAT tables
        remember: bool = True,  # bint: the fast path (flows remembered) on
    ) -> tuple[int, int, int, int, int]: ...  # (row, stop (a _codes.Stop), n_hops, pool, status)
