"""The compiled path and NUMBA_DISABLE_JIT=1 give identical results for the same ops."""
import os
import subprocess
import sys

import numpy as np

from allocator import BuddyAllocator
from allocator.opgen import random_ops

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = """
import sys, numpy as np
from allocator import BuddyAllocator
ops = np.load(sys.argv[1])
a = BuddyAllocator(1 << 14, pcp=True, nr_cpus=2, pcp_high=64, pcp_batch=15)
pfn, hint = a.run(ops)
np.savez(sys.argv[2], pfn=pfn, hint=hint, **{k: v for k, v in a.zone._asdict().items()})
"""


def test_jit_and_interpreted_agree(tmp_path):
    ops = random_ops(3000, 1 << 14, seed=3, zeroed_fraction=0.3, nr_cpus=2)
    np.save(tmp_path / "ops.npy", ops)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=ROOT)
    subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "ops.npy"),
                    str(tmp_path / "out.npz")], check=True, env=env, cwd=ROOT)
    slow = np.load(tmp_path / "out.npz")
    a = BuddyAllocator(1 << 14, pcp=True, nr_cpus=2, pcp_high=64, pcp_batch=15)
    pfn, hint = a.run(ops)
    a.check()
    assert (pfn >= 0).sum() > 1000
    np.testing.assert_array_equal(pfn, slow["pfn"])
    np.testing.assert_array_equal(hint, slow["hint"])
    for name, arr in a.zone._asdict().items():
        np.testing.assert_array_equal(arr, slow[name], err_msg=name)


def test_bulk_run_matches_per_call_api():
    ops = random_ops(2000, 1 << 13, seed=11, zeroed_fraction=0.5)
    bulk = BuddyAllocator(1 << 13)
    pfn, hint = bulk.run(ops)
    calls = BuddyAllocator(1 << 13)
    for i, row in enumerate(ops):
        if row["op"] == 1:
            got = calls.alloc(int(row["order"]), int(row["gfp"]))
            assert (got if got is not None else -1) == pfn[i]
            if got is not None:
                assert calls.page_is_zeroed(got) == bool(hint[i])
        elif pfn[int(row["arg"])] >= 0:
            calls.free(int(pfn[int(row["arg"])]), int(row["order"]), int(row["fpi"]))
    for name, arr in bulk.zone._asdict().items():
        np.testing.assert_array_equal(arr, getattr(calls.zone, name), err_msg=name)


def test_bulk_strict_error_names_row(tmp_path):
    from allocator import OP_DTYPE, OP_FREE, BadPageError
    import pytest
    a = BuddyAllocator(1 << 12)
    ops = np.zeros(2, dtype=OP_DTYPE)
    ops[0] = (OP_FREE, 0, 0, 0, 0, 17)
    ops[1] = (7, 0, 0, 0, 0, 0)  # OP_DRAIN
    with pytest.raises(BadPageError, match="pfn 0x11.*op row 0"):
        a.run(ops)
    out, _ = a.run(ops, lenient=True)
    assert a.stats()["bad_page"] == 1


def test_free_ref_rows_naming_anything_are_rejected_not_prefetched_into_a_crash():
    """run_ops prefetches the rows FREE_REF rows name, ahead of time: hostile references
    (negative, far beyond the array, later rows) and orders must still only be reported."""
    from allocator import OP_DTYPE, OP_FREE_REF
    rng = np.random.default_rng(5)
    ops = random_ops(4000, 1 << 12, seed=5)
    bad = rng.random(len(ops)) < 0.2
    ops["op"][bad] = OP_FREE_REF
    ops["arg"][bad] = rng.choice([-(1 << 62), -1, 1 << 40, 10 ** 9, 3999], size=bad.sum())
    ops["order"][bad] = rng.integers(-128, 128, size=bad.sum())
    assert ops.dtype == OP_DTYPE
    a = BuddyAllocator(1 << 12, lenient=True)
    pfn, _ = a.run(ops)
    a.check()
    later = np.flatnonzero(bad & (ops["arg"] >= np.arange(len(ops))))
    assert len(later) and (pfn[later] == -1).all()
    assert a.stats()["bad_page"] >= len(later)
