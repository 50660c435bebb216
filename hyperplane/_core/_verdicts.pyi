# Type stubs for hyperplane._verdicts (hand-written; the C types are noted in comments).
# Users go through hyperplane.replay (hyperplane.replay_verdicts.labels_of).
import numpy as np
import numpy.typing as npt
from typing_extensions import final

__test__: dict[str, str]  # added by Cython

@final
class LabelKeys:
    # __cinit__ takes the arguments: at run time __init__ is object's, so the stub types __new__
    def __new__(cls, kept: npt.NDArray[np.uint8]) -> LabelKeys: ...  # const uint8_t[:, ::1], stages x 6
    def __len__(self) -> int: ...
    def codes(
        self,
        hops: npt.NDArray[np.void],  # hyperplane._walk.HOP
        first_hop: npt.NDArray[np.int64],  # const int64_t[::1]
        packets: npt.NDArray[np.void],  # hyperplane.records.PACKET, as they left
        location: npt.NDArray[np.int32],  # const int32_t[::1]
        reason: npt.NDArray[np.uint8],  # const uint8_t[::1]
    ) -> npt.NDArray[np.int32]: ...
    def key(self, number: int) -> tuple[int, int, bool, int, tuple[int, ...]]: ...

def first_appearance(
    codes: npt.NDArray[np.int32],  # const int32_t[::1], each in 0..count-1
    count: int,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]: ...

@final
class ConversationTable:
    def __len__(self) -> int: ...
    def add(
        self,
        packets: npt.NDArray[np.void],  # hyperplane.records.PACKET, the capture's addresses
        counted: npt.NDArray[np.uint8],  # const uint8_t[::1]
        delivered: npt.NDArray[np.uint8],  # const uint8_t[::1]
        picked_up: npt.NDArray[np.uint8],  # const uint8_t[::1]
        failure: npt.NDArray[np.int32],  # const int32_t[::1], >= 0 on refused counted rows
    ) -> npt.NDArray[np.int64]: ...  # the rows that gave their conversation its failure
    def outcomes(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]: ...  # (seen bits, failure)

def capture_addresses(
    capture: npt.NDArray[np.void],  # const packet_t[::1]: hyperplane.records.PACKET
    out: npt.NDArray[np.void],  # hyperplane.records.PACKET, as many rows
    base: int,  # uint32_t
    mask: int,  # uint32_t
) -> npt.NDArray[np.void]: ...
