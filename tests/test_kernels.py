"""Backends: every available one agrees with the numpy reference on the same batches."""
import os
import subprocess
import sys

import numpy as np
import pytest

from kernels import get_backend
from kernels.batch import CLEAR, DIRTY, VERIFY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_batch(rng, nr_pages, n):
    order = rng.choice([0, 0, 0, 1, 3], size=n).astype(np.int64)
    pfn = (rng.integers(0, nr_pages, size=n) & ~((1 << order) - 1)).astype(np.int64)
    pfn = np.minimum(pfn, nr_pages - (1 << order))
    op = rng.choice([CLEAR, VERIFY, DIRTY], size=n).astype(np.uint8)
    arg = rng.integers(1, 1 << 40, size=n).astype(np.int64)
    return op, pfn, order, arg


def paired_batch(rng, nr_pages, n):
    """Allocation-like pairs: VERIFY a block, then DIRTY the same block (the numba backend
    fuses them), mixed with clears; blocks repeat so the order inside the batch matters."""
    order = rng.choice([0, 1, 2], size=n).astype(np.int64)
    pfn = (rng.integers(0, 8, size=n) << 2).astype(np.int64) % nr_pages
    op = np.where(np.arange(n) % 3 == 0, VERIFY, np.where(np.arange(n) % 3 == 1, DIRTY, CLEAR))
    pfn[1::3] = pfn[0::3][:len(pfn[1::3])]
    order[1::3] = order[0::3][:len(order[1::3])]
    op[rng.random(n) < 0.2] = DIRTY
    return op.astype(np.uint8), pfn, order, rng.integers(1, 1 << 40, size=n).astype(np.int64)


def gpu_batches(rng, nr_pages):
    """Batches for each path of the device scheme: ordered with mixed orders, ordered with
    one order, CLEAR only (one order and mixed), fused-style pairs."""
    batches = [random_batch(rng, nr_pages, n) for n in (1, 12, 30)]
    op, pfn, _, arg = random_batch(rng, nr_pages, 40)
    batches.append((op, pfn, np.zeros(40, np.int64), arg))
    batches.append((np.full(5, CLEAR, np.uint8), np.array([0, 4, 8, 16, 3]),
                    np.array([2, 2, 3, 4, 0]), np.zeros(5, np.int64)))
    batches.append((np.full(4, CLEAR, np.uint8), np.array([0, 1, 5, 9]), np.zeros(4, np.int64),
                    np.zeros(4, np.int64)))
    batches.append(paired_batch(rng, nr_pages, 24))
    return batches


def clear_batches(rng, nr_pages):
    """Every page dirtied, then batches of clears only (one order; mixed orders, one block
    inside another), then every page verified: what the clear-only paths clear, exactly."""
    pfn = rng.permutation(nr_pages)[:nr_pages * 3 // 4].astype(np.int64)
    blocks = (rng.permutation(nr_pages // 4)[:nr_pages // 8] * 4).astype(np.int64)
    order = rng.choice([0, 1, 2], size=len(blocks)).astype(np.int64)
    blocks[0], order[0] = 0, 2
    blocks[1], order[1] = 1, 0  # inside the block before: cleared twice
    every = np.arange(nr_pages, dtype=np.int64)
    none = np.zeros(nr_pages, np.int64)
    return [(np.full(nr_pages, DIRTY, np.uint8), every, none, np.full(nr_pages, 3, np.int64)),
            (np.full(len(pfn), CLEAR, np.uint8), pfn, none[:len(pfn)], none[:len(pfn)]),
            (np.full(nr_pages, DIRTY, np.uint8), every, none, np.full(nr_pages, 5, np.int64)),
            (np.full(len(blocks), CLEAR, np.uint8), blocks, order, none[:len(blocks)]),
            (np.full(nr_pages, VERIFY, np.uint8), every, none, none)]


def run_backend(name, batches, nr_pages):
    b = get_backend(name)
    pool = b.alloc_pool(nr_pages)
    out = [b.apply(pool, *batch) for batch in batches]
    return out, b.to_host(pool)


@pytest.mark.parametrize("stores", ["nt", "plain"])
@pytest.mark.parametrize("name", ["numba"])
def test_cpu_backend_matches_reference(name, stores, monkeypatch):
    """Both store kinds, forced: ``auto`` picks one by timing, and CI's small pools sit in the
    cache, where non-temporal stores would rarely be picked."""
    monkeypatch.setenv("ZEROING_CPU_STORES", stores)
    assert get_backend(name).stores(get_backend(name).alloc_pool(8)) == \
        {"nt": "non-temporal", "plain": "ordinary"}[stores]
    rng = np.random.default_rng(0)
    batches = [random_batch(rng, 256, n) for n in (1, 50, 400)]
    batches += [paired_batch(rng, 256, n) for n in (3, 60, 600)]
    batches += clear_batches(rng, 256)
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


def test_non_temporal_stores_only_on_aligned_memory_of_a_chosen_pool(monkeypatch):
    from kernels import numba_backend
    monkeypatch.setenv("ZEROING_CPU_STORES", "nt")
    pool = numba_backend.alloc_pool(4)
    assert numba_backend.non_temporal(pool[512:1024])  # a page of it: still 64-byte aligned
    assert not numba_backend.non_temporal(pool[1:])  # misaligned: the vector stores would fault
    assert not numba_backend.non_temporal(np.zeros(2048, np.uint64))  # not from alloc_pool
    monkeypatch.setenv("ZEROING_CPU_STORES", "fast")
    with pytest.raises(ValueError, match="ZEROING_CPU_STORES='fast': expected one of auto, nt"):
        numba_backend.alloc_pool(4)


def test_order_is_kept_inside_a_batch():
    b = get_backend("numba")
    pool = b.alloc_pool(16)
    op = np.array([DIRTY, CLEAR, VERIFY, DIRTY, VERIFY], np.uint8)
    nz, bad, marker = b.apply(pool, op, np.array([0, 0, 0, 1, 0]), np.array([1, 1, 1, 0, 1]),
                              np.array([5, 0, 0, 9, 0]))
    assert list(nz) == [0, 0, 0, 0, 1] and bad[4] == 1 and marker[4] == 9


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
from test_kernels import clear_batches, gpu_batches, run_backend
rng = np.random.default_rng(1)
batches = gpu_batches(rng, 32) + clear_batches(rng, 32)
ref, ref_pool = run_backend("numpy", batches, 32)
got, pool = run_backend("cuda", batches, 32)  # apply: results the caller keeps
import kernels.cuda_backend as cb
first, st = next(iter(cb._scratch.values()))  # (device pool, its state)
staging, host = st.staging, st.staging.slots.slots[0].host
assert staging.slots.slots[0].cap >= cb.START_ROWS  # made with the first pool
# A second pool, driven as the engine drives it: the next batch submitted before this one
# is collected, each batch's results (views into its slot) read at collection.
pool2 = cb.alloc_pool(32)
pending, again = [], []
for batch in batches + [None]:
    if batch is not None:
        pending.append(cb.submit(pool2, *batch))
    if len(pending) > 1 or batch is None:
        again.append([np.array(x) for x in cb.collect(pending.pop(0))])
second, st2 = next(iter(cb._scratch.values()))
assert second is not first and st2.staging is staging and staging.slots.slots[0].host is host
assert (ref_pool == pool).all() and (ref_pool == cb.to_host(pool2)).all()
assert len(ref) == len(got) == len(again)
for r, g, h in zip(ref, got, again):
    for a, b, c in zip(r, g, h):
        assert (a == b).all() and (a == c).all(), (a, b, c)
print("ok")
"""


def test_cuda_backend_under_simulator():
    """CUDA kernels, run by numba's CUDA simulator (no GPU needed); a second pool reuses the
    staging (slots, streams) the first one made."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    p = subprocess.run([sys.executable, "-c", SIM.format(root=ROOT, tests=os.path.join(ROOT, "tests"))],
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr[-3000:]


def test_cuda_backend_gives_numba_cuda_the_row_stack_numpy_2_5_removed():
    """numba-cuda 0.30.4 registers an overload of np.row_stack at its first compile: on numpy
    2.5, which removed it, every kernel failed to compile until the backend put it back."""
    code = ("import numpy as np\n"
            "if hasattr(np, 'row_stack'):\n    del np.row_stack\n"
            "import kernels.cuda_backend\n"
            "a = np.row_stack(([1, 2], [3, 4]))\n"
            "assert (a == np.vstack(([1, 2], [3, 4]))).all()\n"
            "assert np.row_stack is not np.vstack\n"
            "print('ok')\n")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-3000:]


def _gpu():
    try:
        return get_backend("cupy")
    except RuntimeError as e:
        pytest.skip(f"NO GPU: CuPy backend not tested on this machine ({e})")


def _matches_reference(name, extra=()):
    rng = np.random.default_rng(2)
    batches = ([random_batch(rng, 4096, n) for n in (1, 100, 5000)] + gpu_batches(rng, 4096)
               + list(extra))
    ref, ref_pool = run_backend("numpy", batches, 4096)
    got, pool = run_backend(name, batches, 4096)
    np.testing.assert_array_equal(ref_pool, pool)
    for r, g in zip(ref, got):
        for a, b in zip(r, g):
            np.testing.assert_array_equal(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("fast", ["all", "clears", "none"],
                         ids=["compiled", "compiled-clears-only", "python"])
@pytest.mark.parametrize("direct", [True, False], ids=["cuLaunchKernel", "cupy-call"])
def test_cupy_backend_matches_reference(direct, fast, monkeypatch):
    """Both ways of launching (argument slots through cuLaunchKernel, CuPy's own call) and
    the ways of submitting a batch (one compiled call over libcuda for every batch, for
    batches of clears only, or Python), with large clear batches of one order and of mixed
    orders. No fast path may have been turned off by first use (that would hide a broken
    path)."""
    b = _gpu()
    assert b.DIRECT or os.environ.get("ZEROING_CUPY_DIRECT") == "0", \
        "direct launches failed at first use on this GPU"
    assert b.FAST is not None or os.environ.get("ZEROING_CUPY_FAST") == "0", \
        "the compiled submitter failed at first use on this GPU"
    assert b.FAST_ORDERED or b.FAST is None, \
        "the compiled submitter's batches other than clears differed from the Python path's"
    monkeypatch.setattr(b, "DIRECT", direct)
    if fast != "all":
        monkeypatch.setattr(b, "FAST_ORDERED", False)
    if fast == "none":
        monkeypatch.setattr(b, "FAST", None)
    _matches_reference("cupy", clear_batches(np.random.default_rng(5), 4096))


@pytest.mark.gpu
def test_cuda_backend_on_device_matches_reference():
    """numba-cuda on a real device (the simulator test covers CI)."""
    try:
        b = get_backend("cuda")
    except RuntimeError as e:
        pytest.skip(f"NO GPU: numba-cuda backend not tested on this machine ({e})")
    if b.SIM:
        pytest.skip("NO GPU: NUMBA_ENABLE_CUDASIM is set; the simulator test covers this")
    _matches_reference("cuda")


def test_cupy_kernel_source_compiles():
    """The CuPy backend's CUDA C (the same scheme as the numba-cuda kernels) builds, where a
    CUDA compiler is installed; on a GPU machine the cupy tests run it."""
    import shutil
    import tempfile
    from kernels.device_batch import CUDA_SOURCE
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("NO NVCC: the CuPy kernel source is not compiled on this machine")
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "k.cu")
        with open(src, "w") as f:
            f.write(CUDA_SOURCE)
        p = subprocess.run([nvcc, "-arch=sm_80", "-c", src, "-o", os.path.join(d, "k.o")],
                           capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]


def test_backend_failing_at_first_use_is_reported_skipped_and_falls_back(monkeypatch):
    """numba-cuda against numpy 2.5 failed at its first compile: the reason is reported,
    benchmarks go on without it, runs fall back to the CPU backend."""
    import kernels
    from kernels import cuda_backend
    from kernels.throughput import measured_backends
    from zeroing.policy import make_policy
    from zeroing.run import simulate
    from zeroing.workloads import make_workload
    why = "AttributeError: module 'numpy' has no attribute 'row_stack'"
    monkeypatch.setattr(cuda_backend, "available", lambda: True)
    monkeypatch.setattr(cuda_backend, "first_use", lambda: why)
    monkeypatch.setitem(kernels._first_use, "cuda", why)
    with pytest.raises(kernels.BackendFailed, match="failed at first use: .*row_stack"):
        get_backend("cuda")
    lines = []
    monkeypatch.setattr("numba.config.ENABLE_CUDASIM", 0)
    names = [b.name for b in measured_backends(log=lines.append)]
    assert "cuda" not in names and "numba" in names
    assert any(line.startswith("cuda") and "row_stack" in line for line in lines)
    ev = make_workload("mixed", 1024, 800, seed=1)
    pol = make_policy("init_on_free,pg_zeroed")
    with pytest.warns(RuntimeWarning, match="row_stack.*falling back"):
        r = simulate(ev, pol, 1024, mode="content", backend="cuda")
    assert r["backend"]["name"] == "numba" and r["backend"]["fallbacks"] == 1
    meta = simulate(ev, pol, 1024)
    assert r["counters"]["zero_checked"] == meta["counters"]["zero_checked"]


def test_a_ratio_above_memset_is_explained_or_called_a_bug():
    """Within the spread of the two measurements, or below the DRAM write bandwidth (the
    whole pool's memset), a row above 1.0 says why; above both it is UNEXPLAINED."""
    from kernels.throughput import ratio_note
    assert ratio_note(0.99, 0.0, 100.0, 50.0) == ""
    assert "within the run-to-run spread (3%)" in ratio_note(1.02, 0.03, 100.0, 50.0)
    assert "below the DRAM write bandwidth (3240 GB/s" in ratio_note(1.02, 0.01, 2886.0, 3240.0)
    assert ratio_note(1.02, 0.01, 3300.0, 3240.0).startswith("UNEXPLAINED")
    assert "one repetition" in ratio_note(1.5, None, 3300.0, 3240.0)  # --reps 1: no spread
