# Type stubs for hyperplane._splice (hand-written).
from typing import Any

import numpy as np
import numpy.typing as npt

__test__: dict[str, str]  # added by Cython

def splice(
    sources: list[Any],  # uint8 arrays or buffers
    which: npt.ArrayLike,  # int32
    starts: npt.ArrayLike,  # int64
    stops: npt.ArrayLike,  # int64
    out: npt.NDArray[np.uint8],  # uint8_t[::1]
) -> int: ...
