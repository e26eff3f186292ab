"""Backends: every available one agrees with the numpy reference on the same batches."""
import os
import subprocess
import sys

import numpy as np
import pytest

from kernels import get_backend
from kernels.batch import CLEAR, DIRTY, VERIFY, by_page

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_batch(rng, nr_pages, n):
    order = rng.choice([0, 0, 0, 1, 3], size=n).astype(np.int64)
    pfn = (rng.integers(0, nr_pages, size=n) & ~((1 << order) - 1)).astype(np.int64)
    pfn = np.minimum(pfn, nr_pages - (1 << order))
    op = rng.choice([CLEAR, VERIFY, DIRTY], size=n).astype(np.uint8)
    arg = rng.integers(1, 1 << 40, size=n).astype(np.int64)
    return op, pfn, order, arg


def run_backend(name, batches, nr_pages):
    b = get_backend(name)
    pool = b.alloc_pool(nr_pages)
    out = [b.apply(pool, *batch) for batch in batches]
    return out, b.to_host(pool)


@pytest.mark.parametrize("name", ["numba"])
def test_cpu_backend_matches_reference(name):
    rng = np.random.default_rng(0)
    batches = [random_batch(rng, 256, n) for n in (1, 50, 400)]
    batches.append((np.array([DIRTY, VERIFY, CLEAR, VERIFY], np.uint8),
                    np.array([8, 8, 8, 8]), np.array([2, 2, 1, 2]), np.array([77, 0, 0, 0])))
    ref, ref_pool = run_backend("numpy", batches, 256)
    got, pool = run_backend(name, batches, 256)
    np.testing.assert_array_equal(ref_pool, pool)
    for r, g in zip(ref, got):
        for a, b in zip(r, g):
            np.testing.assert_array_equal(a, b)
    # The last batch: dirty 8-11, verify sees 4 dirty pages of data 77, clear 8-9, then 2 left.
    assert list(ref[-1][0]) == [0, 4, 0, 2] and ref[-1][1][1] == 8 and ref[-1][2][1] == 77


def test_order_is_kept_inside_a_batch():
    b = get_backend("numba")
    pool = b.alloc_pool(16)
    op = np.array([DIRTY, CLEAR, VERIFY, DIRTY, VERIFY], np.uint8)
    nz, bad, marker = b.apply(pool, op, np.array([0, 0, 0, 1, 0]), np.array([1, 1, 1, 0, 1]),
                              np.array([5, 0, 0, 9, 0]))
    assert list(nz) == [0, 0, 0, 0, 1] and bad[4] == 1 and marker[4] == 9


def test_by_page_keeps_each_pages_rows_in_order():
    # rows: 0 covers pages 0-3, 1 is page 2, 2 is page 2 again, 3 is page 8
    page_pfn, page_row, starts = by_page(np.array([0, 2, 2, 8]), np.array([2, 0, 0, 0]))
    assert list(page_pfn) == [0, 1, 2, 2, 2, 3, 8]
    assert list(page_row) == [0, 0, 0, 1, 2, 0, 3]
    assert list(starts) == [0, 1, 2, 5, 6, 7]


def test_unknown_and_unavailable_backends():
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        get_backend("tpu")
    if not get_backend("auto").name.startswith("cu"):
        with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
            get_backend("cupy")


def test_pool_larger_than_memory_is_refused():
    with pytest.raises(MemoryError, match="needs .* GiB"):
        get_backend("numpy").alloc_pool(1 << 40)


SIM = """
import numpy as np, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from test_kernels import random_batch, run_backend
rng = np.random.default_rng(1)
batches = [random_batch(rng, 32, n) for n in (1, 12, 30)]
ref, ref_pool = run_backend("numpy", batches, 32)
got, pool = run_backend("cuda", batches, 32)
assert (ref_pool == pool).all()
for r, g in zip(ref, got):
    for a, b in zip(r, g):
        assert (a == b).all(), (a, b)
print("ok")
"""


def test_cuda_backend_under_simulator():
    """CUDA kernels, run by numba's CUDA simulator (no GPU needed)."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    p = subprocess.run([sys.executable, "-c", SIM.format(root=ROOT, tests=os.path.join(ROOT, "tests"))],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr[-3000:]


def _gpu():
    try:
        return get_backend("cupy")
    except RuntimeError as e:
        pytest.skip(f"NO GPU: CuPy backend not tested on this machine ({e})")


@pytest.mark.gpu
def test_cupy_backend_matches_reference():
    _gpu()
    rng = np.random.default_rng(2)
    batches = [random_batch(rng, 4096, n) for n in (1, 100, 5000)]
    ref, ref_pool = run_backend("numpy", batches, 4096)
    got, pool = run_backend("cupy", batches, 4096)
    np.testing.assert_array_equal(ref_pool, pool)
    for r, g in zip(ref, got):
        for a, b in zip(r, g):
            np.testing.assert_array_equal(a, b)
