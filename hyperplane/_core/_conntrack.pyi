# Type stubs for hyperplane._conntrack (hand-written; the C types are noted in comments).
# Users go through hyperplane.conntrack.ConnectionTracker, which validates arguments.
from typing import NoReturn

import numpy as np
import numpy.typing as npt
from typing_extensions import final

__test__: dict[str, str]  # added by Cython
__pyx_capi__: dict[str, object]  # the cdef functions other compiled modules call

@final
class ConntrackCore:
    # built by __cinit__: the arguments are those of __new__
    def __new__(
        cls,
        tcp_opening: float,  # double: idle timeouts in seconds
        tcp_established: float,
        tcp_closing: float,
        udp: float,
        udp_stream: float,
        icmp: float,
        other: float,
        capacity: int = 1024,  # uint32_t: flows to make room for
    ) -> ConntrackCore: ...
    def __reduce__(self) -> NoReturn: ...
    def check(
        self,
        eni: npt.NDArray[np.int32],  # const int32_t[::1]
        packets: npt.NDArray[np.void],  # const packet_t[::1] (hyperplane.records.PACKET)
        rule_allowed: npt.NDArray[np.uint8],  # const uint8_t[::1]
        allowed: npt.NDArray[np.uint8],  # uint8_t[::1], written
        tracked: npt.NDArray[np.uint8],  # uint8_t[::1], written
        untracked: npt.NDArray[np.uint8] | None = None,  # const uint8_t[::1]
    ) -> None: ...
    def expire(self, now: float) -> int: ...
    def forget(self, eni: int) -> int: ...  # int32_t
    @property
    def now(self) -> float: ...
    @property
    def live(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    def counters(self) -> dict[str, int]: ...
    def memory_bytes(self) -> int: ...
    def index_stats(self) -> dict[str, int]: ...  # buckets, entries, probe_total, probe_max
    def timeout_table(self) -> list[float]: ...
    def flows(self) -> npt.NDArray[np.void]: ...
