# Type stubs for hyperplane._text (hand-written).
from typing import Any

import numpy as np
import numpy.typing as npt

__test__: dict[str, str]  # added by Cython

INTEGER: int
ADDRESS: int
WORDS: int
CONSTANT: int

def lines(
    columns: list[tuple[Any, ...]], order: npt.ArrayLike, sep: bytes = b" "
) -> tuple[bytes, npt.NDArray[np.int64]]: ...
