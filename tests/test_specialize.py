"""Calls between the project's compiled functions compile once per kind of argument."""
import numpy as np
from numba import njit


def _project_function():
    def add(x, flag):
        return x + (1 if flag else 0)
    add.__module__ = "allocator.widening_test"  # as if defined in the allocator package
    return njit(add)


def test_constants_and_narrow_ints_share_one_compilation():
    add = _project_function()
    small = np.zeros(2, np.int8)

    @njit
    def caller(a):
        return add(0, True) + add(5, False) + add(a[0], True) + add(np.int64(7), a[1] == 0)

    assert caller(small) == 1 + 5 + 1 + 8
    assert len(add.signatures) == 1, add.signatures  # not one per Literal[int], Literal[bool]


def test_functions_elsewhere_keep_numbas_rules():
    def add(x, flag):
        return x + (1 if flag else 0)
    add.__module__ = "somebody_else"
    add = njit(add)

    @njit
    def caller():
        return add(0, True) + add(5, False)

    assert caller() == 6
    assert len(add.signatures) == 2
