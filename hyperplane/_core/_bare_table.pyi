"""Type stubs for the bare 5-tuple table (``_bare_table.pyx``), the ceiling of the NAT benchmark."""

import numpy as np
import numpy.typing as npt

__test__: dict[str, str]  # added by Cython

from typing import final

@final
class BareTable:
    # __cinit__ takes the arguments: at run time __init__ is object's, so the stub types __new__
    def __new__(cls, capacity: int) -> BareTable: ...  # Py_ssize_t: keys to make room for
    def __len__(self) -> int: ...
    @property
    def slots_allocated(self) -> int: ...
    @property
    def memory_bytes(self) -> int: ...
    def insert(self, rows: npt.NDArray[np.void], values: npt.NDArray[np.uint16]) -> int: ...  # const packet_t[::1], const uint16_t[::1]
    def lookup(self, rows: npt.NDArray[np.void], out: npt.NDArray[np.int32] | None = None) -> npt.NDArray[np.int32]: ...  # const packet_t[::1]
