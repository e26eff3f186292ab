"""Borrowed handles (allocator/handle.py): compiled code reads and writes the owner's arrays."""
import gc
from collections import namedtuple

import numba
import numpy as np
import pytest
from numba import njit

from allocator.handle import Handle
from zeroing.workloads.gen import OrderedList, ol_append, ol_len, ol_pop

Pair = namedtuple("Pair", ("counts", "grid"))
# A Handle is a compiled-code object (its block is written by an intrinsic); interpreted,
# handle_for() gives the namedtuple itself, which Python reads the same way.
pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT,
                                reason="NUMBA_DISABLE_JIT=1: handles exist only compiled")


@njit
def bump(h, i):
    h.counts[i] += 1
    h.grid[i, i] = h.counts[i] * 10
    return h.counts.sum() + h.grid.shape[1]


def test_compiled_code_sees_and_changes_the_arrays():
    arrays = Pair(np.zeros(4, np.int64), np.zeros((4, 3), np.int32))
    h = Handle("Pair", arrays)
    assert bump(h, 2) == 1 + 3
    assert bump(h, 2) == 2 + 3
    assert arrays.counts.tolist() == [0, 0, 2, 0]
    assert arrays.grid[2, 2] == 20
    assert h.counts is arrays.counts  # Python reads go to the arrays themselves


def test_handle_keeps_its_arrays_alive():
    h = Handle("Pair", Pair(np.zeros(4, np.int64), np.zeros((4, 4), np.int32)))
    gc.collect()
    np.zeros(1 << 20)  # reuse freed memory if the arrays had been released
    assert bump(h, 3) == 1 + 4
    assert h.grid[3, 3] == 10


def test_kinds_and_dtypes_give_distinct_types():
    a = Handle("Pair", Pair(np.zeros(4, np.int64), np.zeros((4, 3), np.int32)))
    b = Handle("Pair", Pair(np.zeros(4, np.int64), np.zeros((4, 3), np.int64)))
    c = Handle("Other", Pair(np.zeros(4, np.int64), np.zeros((4, 3), np.int32)))
    assert a.numba_type == Handle("Pair", a.arrays).numba_type
    assert len({a.numba_type, b.numba_type, c.numba_type}) == 3
    assert bump(b, 0) == 1 + 3 and b.grid[0, 0] == 10


@pytest.mark.parametrize("bad", [np.zeros((4, 4))[:, 0], np.zeros(4)[::2]])
def test_non_contiguous_array_is_refused(bad):
    with pytest.raises(TypeError, match="'grid'.*C-contiguous"):
        Handle("Pair", Pair(np.zeros(4, np.int64), bad))


def test_read_only_array_is_refused():
    ro = np.zeros((2, 2))
    ro.flags.writeable = False
    with pytest.raises(TypeError, match="'grid'.*writeable"):
        Handle("Pair", Pair(np.zeros(4, np.int64), ro))


def test_pickled_handle_builds_its_own_block():
    import pickle
    h = Handle("Pair", Pair(np.zeros(4, np.int64), np.zeros((4, 3), np.int32)))
    bump(h, 1)
    copy = pickle.loads(pickle.dumps(h))
    assert copy.address != h.address
    assert bump(copy, 1) == 2 + 3
    assert h.counts[1] == 1 and copy.counts[1] == 2



@njit
def _churn(a, n):
    s = 0
    for i in range(n):
        if ol_len(a) > 5:
            s += ol_pop(a, i % 5)
        else:
            ol_append(a, i)
    return s


def test_reading_a_handle_takes_no_references():
    """Arrays read from a handle are borrowed (``BorrowedArray``): numba emits no
    ``NRT_incref``/``NRT_decref`` call for them. With plain array types the generators' list
    operations kept ten of each in this loop (calls that did nothing, on a NULL meminfo)."""
    lst = OrderedList(64)
    model, total = [], 0
    for i in range(100):
        if len(model) > 5:
            total += model.pop(i % 5)
        else:
            model.append(i)
    assert _churn(lst.a, 100) == total
    ir = _churn.inspect_llvm(_churn.signatures[0])
    body = ir[ir.index("define"):]
    assert "@NRT_incref(" not in body and "@NRT_decref(" not in body
