"""The compiled grouping of rows (``hyperplane._core._distinct``) that a replay uses to label
its verdicts and count its conversations, against the plain definition of "the same row"."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hyperplane._core import _distinct


@given(hnp.arrays(np.uint64, st.tuples(st.integers(1, 4), st.integers(0, 300)),
                  elements=st.sampled_from([0, 1, 7, 2**63, 2**64 - 1])))
def test_rows_are_grouped_exactly_when_equal_numbered_by_first_appearance(columns):
    first, inverse = _distinct.rows(columns)
    rows = [tuple(columns[:, i]) for i in range(columns.shape[1])]
    # the same group exactly when the same row
    for i, row in enumerate(rows):
        assert rows[first[inverse[i]]] == row
    assert len({rows[f] for f in first}) == len(first) == len(set(rows))
    # each group's first row is where that row first appears, groups in that order
    assert [rows.index(rows[f]) for f in first] == list(first) == sorted(first)


def test_a_table_without_columns_is_one_row_repeated():
    first, inverse = _distinct.rows(np.zeros((0, 5), np.uint64))
    assert first.tolist() == [0] and inverse.tolist() == [0] * 5


def test_bad_tables_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="dtype"):
        _distinct.rows(np.zeros((2, 3), np.int32))
    with pytest.raises(ValueError, match="contiguous"):
        _distinct.rows(np.zeros((3, 2), np.uint64).T)
    with pytest.raises(TypeError):
        _distinct.rows(None)
