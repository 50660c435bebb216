# Type stubs for hyperplane._distinct (hand-written).
import numpy as np
import numpy.typing as npt

__test__: dict[str, str]  # added by Cython

def rows(
    columns: npt.NDArray[np.uint64],  # const uint64_t[:, ::1], one row per column
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
