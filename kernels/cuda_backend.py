"""GPU backend: numba-cuda kernels over a device pool (tested in CI under NUMBA_ENABLE_CUDASIM=1).

Rows are expanded to pages on the host; one launch per wave of non-overlapping rows (usually
the whole batch), one thread block per page. Import is guarded: ``available()`` says whether a
device (or the simulator) is there.
"""
import numpy as np

from .batch import (CLEAR, DIRTY, MARKER_WORDS, PAGE_WORDS, VERIFY, check_pool_size,
                    expand_pages, new_results, waves)

name = "cuda"
try:
    from numba import cuda
except ImportError:  # pragma: no cover - numba always ships a cuda module today
    cuda = None

import numba

#: Threads per page (block). The simulator runs every thread in Python: keep it small there.
THREADS = 32 if numba.config.ENABLE_CUDASIM else 128


def available():
    try:
        return cuda is not None and cuda.is_available()
    except Exception:
        return False


def describe():
    try:
        name = cuda.get_current_device().name
        name = name.decode() if isinstance(name, bytes) else str(name)
    except Exception:
        name = "unknown CUDA device"
    return f"{name} (numba-cuda{', simulator' if cuda.simulator_enabled() else ''})" \
        if hasattr(cuda, "simulator_enabled") else f"{name} (numba-cuda)"


def device_memory():
    try:
        free, _ = cuda.current_context().get_memory_info()
        return free
    except Exception:
        return None


if cuda is not None:
    @cuda.jit
    def _kernel(pool, page_pfn, page_row, op, arg, markers, nonzero, bad_pfn, marker):
        k = cuda.blockIdx.x
        if k >= page_pfn.shape[0]:
            return
        p = page_pfn[k]
        row = page_row[k]
        base = p * PAGE_WORDS
        t = cuda.threadIdx.x
        o = op[row]
        if o == CLEAR:
            for w in range(t, PAGE_WORDS, cuda.blockDim.x):
                pool[base + w] = 0
        elif o == DIRTY:
            if t < markers.shape[0]:
                pool[base + markers[t]] = arg[row]
        elif o == VERIFY:
            found = cuda.shared.array(1, dtype=np.int64)
            if t == 0:
                found[0] = PAGE_WORDS
            cuda.syncthreads()
            for w in range(t, PAGE_WORDS, cuda.blockDim.x):
                if pool[base + w] != 0:
                    cuda.atomic.min(found, 0, w)
            cuda.syncthreads()
            if t == 0 and found[0] < PAGE_WORDS:
                cuda.atomic.add(nonzero, row, 1)
                old = cuda.atomic.min(bad_pfn, row, p)
                if p < old:
                    marker[row] = pool[base + found[0]]


def alloc_pool(nr_pages):
    check_pool_size(nr_pages, device_memory(), "the GPU")
    pool = cuda.device_array(nr_pages * PAGE_WORDS, dtype=np.uint64)
    memset(pool)
    return pool


def to_host(pool):
    return pool.copy_to_host()


def from_host(host):
    return cuda.to_device(host)


def memset(pool):
    n = pool.shape[0]
    _fill_zero[(n + 1023) // 1024, 1024](pool)


if cuda is not None:
    @cuda.jit
    def _fill_zero(pool):
        i = cuda.grid(1)
        if i < pool.shape[0]:
            pool[i] = 0


def apply(pool, op, pfn, order, arg):
    nonzero, bad_pfn, marker = new_results(len(op))
    if not len(op):
        return nonzero, bad_pfn, marker
    bad_big = np.full(len(op), np.iinfo(np.int64).max, dtype=np.int64)
    d_nonzero = cuda.to_device(nonzero)
    d_bad = cuda.to_device(bad_big)
    d_marker = cuda.to_device(marker.view(np.uint64))
    d_op = cuda.to_device(op.astype(np.int64))
    d_arg = cuda.to_device(arg.astype(np.uint64))
    d_markers = cuda.to_device(np.array(MARKER_WORDS, dtype=np.int64))
    for lo, hi in waves(pfn, order):
        page_pfn, page_row = expand_pages(pfn, order, lo, hi)
        _kernel[len(page_pfn), THREADS](pool, cuda.to_device(page_pfn), cuda.to_device(page_row),
                                        d_op, d_arg, d_markers, d_nonzero, d_bad, d_marker)
    nonzero = d_nonzero.copy_to_host()
    bad = d_bad.copy_to_host()
    bad[bad == np.iinfo(np.int64).max] = -1
    marker = d_marker.copy_to_host().view(np.int64)
    return nonzero, bad, marker
