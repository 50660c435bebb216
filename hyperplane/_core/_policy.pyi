# Type stubs for hyperplane._policy (hand-written; the C types are noted in comments).
# Users go through hyperplane.policy; these classes are built by its Compiled*.compile.
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base, final

__test__: dict[str, str]  # added by Cython
__pyx_capi__: dict[str, object]  # the cdef functions other compiled modules call

INGRESS: int  # 0: security groups ingress, network ACLs inbound
EGRESS: int  # 1: security groups egress, network ACLs outbound
NOT_APPLICABLE: int  # -1
IMPLICIT_DENY_RULE: int  # 32767
KEY_UDP: int
KEY_ICMP: int
KEY_OTHER: int
KEY_LIMIT: int

_Direction = int | npt.NDArray[np.uint8]

@final
class RouteTables:
    table_off: npt.NDArray[np.int64]  # read-only copies, validated at construction
    bounds: npt.NDArray[np.uint32]
    winner: npt.NDArray[np.int32]
    entry_route: npt.NDArray[np.int32]
    def __init__(self, table_off: Any, bounds: Any, winner: Any, entry_route: Any) -> None: ...
    @property
    def n_tables(self) -> int: ...
    def lookup(
        self,
        table_idx: npt.NDArray[np.int32],  # const int32_t[::1]
        dst: npt.NDArray[np.uint32],  # const uint32_t[::1]
        entry_out: npt.NDArray[np.int32] | None = None,  # int32_t[::1]
    ) -> npt.NDArray[np.int32]: ...
    def lookup_records(
        self,
        records: npt.NDArray[np.void],  # const packet_t[::1] (hyperplane.records.PACKET)
        table_idx: npt.NDArray[np.int32],
        entry_out: npt.NDArray[np.int32] | None = None,
    ) -> npt.NDArray[np.int32]: ...

@disjoint_base
class _RuleTables:
    space_off: npt.NDArray[np.int64]
    ip_bounds: npt.NDArray[np.uint32]
    ip_map: npt.NDArray[np.int32]
    map_off: npt.NDArray[np.int64]
    key_bounds: npt.NDArray[np.uint32]
    key_winner: npt.NDArray[np.int32]
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...
    @property
    def n_sets(self) -> int: ...

@final
class SecurityGroupSets(_RuleTables):
    open_off: npt.NDArray[np.int64]
    open_bounds: npt.NDArray[np.uint32]
    open_flag: npt.NDArray[np.uint8]
    def __init__(
        self,
        space_off: Any,
        ip_bounds: Any,
        ip_map: Any,
        map_off: Any,
        key_bounds: Any,
        key_winner: Any,
        n_winners: int,
        open_off: Any = None,
        open_bounds: Any = None,
        open_flag: Any = None,
    ) -> None: ...
    def untracked_records(
        self,
        records: npt.NDArray[np.void],  # const packet_t[::1]
        sg_set: npt.NDArray[np.int32],
        direction: int,
    ) -> npt.NDArray[np.uint8]: ...
    def evaluate(
        self,
        sg_set: npt.NDArray[np.int32],  # const int32_t[::1]
        direction: _Direction,  # int or const uint8_t[::1]
        peer: npt.NDArray[np.uint32],  # const uint32_t[::1]
        proto: npt.NDArray[np.uint8],  # const uint8_t[::1]
        port: npt.NDArray[np.uint16],  # const uint16_t[::1]
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]: ...
    def evaluate_records(
        self,
        records: npt.NDArray[np.void],  # const packet_t[::1]
        sg_set: npt.NDArray[np.int32],
        direction: _Direction,
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]: ...

@final
class NetworkAcls(_RuleTables):
    entry_allow: npt.NDArray[np.uint8]
    entry_rule_number: npt.NDArray[np.int32]
    def __init__(
        self,
        space_off: Any,
        ip_bounds: Any,
        ip_map: Any,
        map_off: Any,
        key_bounds: Any,
        key_winner: Any,
        entry_allow: Any,
        entry_rule_number: Any,
    ) -> None: ...
    def evaluate(
        self,
        nacl: npt.NDArray[np.int32],  # const int32_t[::1]
        direction: _Direction,
        address: npt.NDArray[np.uint32],
        proto: npt.NDArray[np.uint8],
        port: npt.NDArray[np.uint16],
        entry_out: npt.NDArray[np.int32] | None = None,
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]: ...
    def evaluate_records(
        self,
        records: npt.NDArray[np.void],
        nacl: npt.NDArray[np.int32],
        direction: _Direction,
        entry_out: npt.NDArray[np.int32] | None = None,
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]: ...
