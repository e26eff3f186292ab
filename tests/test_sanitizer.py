"""The sanitizer cannot be fooled by a backend that clears only part of each page: DIRTY
marks every cache line, so any line a CLEAR leaves out is found by the next VERIFY."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import get_backend
from kernels.batch import CLEAR, DIRTY, LINE_WORDS, PAGE_WORDS, VERIFY
from zeroing.policy import make_policy
from zeroing.run import simulate
from zeroing.workloads import make_workload


def partial_apply(pool, op, pfn, order, arg, skip_line):
    """The numpy reference, except that CLEAR leaves cache line ``skip_line`` of each page."""
    ref = get_backend("numpy")
    keep = np.zeros(PAGE_WORDS, dtype=bool)
    keep[skip_line * LINE_WORDS:(skip_line + 1) * LINE_WORDS] = True
    view = pool.reshape(-1, PAGE_WORDS)
    out = [np.zeros(len(op), np.int64), np.full(len(op), -1, np.int64), np.zeros(len(op), np.int64)]
    for i in range(len(op)):
        if op[i] == CLEAR:
            lo, hi = int(pfn[i]), int(pfn[i]) + (1 << int(order[i]))
            view[lo:hi, ~keep] = 0
            continue
        r = ref.apply(pool, op[i:i + 1], pfn[i:i + 1], order[i:i + 1], arg[i:i + 1])
        for k in range(3):
            out[k][i] = r[k][0]
    return tuple(out)


@settings(max_examples=40, deadline=None)
@given(skip_line=st.integers(0, PAGE_WORDS // LINE_WORDS - 1), order=st.integers(0, 3))
def test_any_line_left_dirty_is_found(skip_line, order):
    pool = get_backend("numpy").alloc_pool(16)
    ops = np.array([DIRTY, CLEAR, VERIFY], np.uint8)
    pfn = np.full(3, 8, np.int64)
    orders = np.full(3, order, np.int64)
    nonzero, bad, marker = partial_apply(pool, ops, pfn, orders, np.array([42, 0, 0]), skip_line)
    assert nonzero[2] == 1 << order and bad[2] == 8 and marker[2] == 42


class ClearsAllButOneLine:
    """A backend whose CLEAR leaves line 1 (words 8-15) of every page: a sanitizer that
    marked only a few words per page would miss it."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def apply(self, pool, op, pfn, order, arg):
        return partial_apply(pool, op, pfn, order, arg, skip_line=1)


def test_engine_catches_a_backend_that_clears_part_of_each_page():
    ev = make_workload("mixed", 2048, 3000, seed=3)
    pol = make_policy("init_on_alloc")
    meta = simulate(ev, pol, 2048)
    honest = simulate(ev, pol, 2048, mode="content", backend="numpy")
    cheat = simulate(ev, pol, 2048, mode="content", backend="numpy", fault=ClearsAllButOneLine)
    assert meta["counters"]["zero_leak"] == honest["counters"]["zero_leak"] == 0
    assert meta["counters"]["zero_checked"] > 0
    assert cheat["counters"]["zero_leak"] > 0
