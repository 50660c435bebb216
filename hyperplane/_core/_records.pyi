# Type stubs for hyperplane._records (hand-written; the C types are noted in comments).
# Users go through hyperplane.flowlogs.FlowLogAggregator.
import numpy as np
import numpy.typing as npt
from typing_extensions import final

__test__: dict[str, str]  # added by Cython

@final
class RecordTable:
    def __len__(self) -> int: ...
    def add(
        self,
        a: npt.NDArray[np.uint64],
        b: npt.NDArray[np.uint64],
        c: npt.NDArray[np.uint64],
        packets: npt.NDArray[np.int64] | None,  # None: one packet per row
        nbytes: npt.NDArray[np.int64],
        start: npt.NDArray[np.float64],
        end: npt.NDArray[np.float64],
        flags: npt.NDArray[np.uint8],
    ) -> int: ...  # records created
    def observe(
        self,
        hops: npt.NDArray[np.void],  # hyperplane._walk.HOP
        first_hop: npt.NDArray[np.int64],
        packets: npt.NDArray[np.void],  # hyperplane.records.PACKET, as delivered
        location: npt.NDArray[np.int32],
        nat_eni: npt.NDArray[np.int32],
        path_of_target: npt.NDArray[np.uint8],
        eni_number: npt.NDArray[np.int64],
        eni_hyperplane: npt.NDArray[np.uint8],
        interval: float,
        time_offset: float,
        reserved: npt.NDArray[np.uint64] | None = None,  # const uint64_t[::1], sorted VPC << 32 | address
        eni_vpc: npt.NDArray[np.int32] | None = None,  # const int32_t[::1], with reserved
    ) -> int: ...  # observations
    def take(self, window: int) -> dict[str, npt.NDArray[np.generic]]: ...  # uint64_t window
    def columns(self) -> dict[str, npt.NDArray[np.generic]]: ...
