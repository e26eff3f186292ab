"""GPU backend: numba-cuda kernels over a device pool (tested in CI under NUMBA_ENABLE_CUDASIM=1).

Rows are expanded to pages on the host and sorted by page (stably); one launch per batch, one
thread block per distinct page applying that page's operations in submission order. Import is guarded: ``available()`` says whether a
device (or the simulator) is there.
"""
import numpy as np

from .batch import (CLEAR, DIRTY, MARKER_WORDS, PAGE_WORDS, VERIFY, by_page, check_pool_size,
                    new_results, verify_results)

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
    def _kernel(pool, page_pfn, page_row, starts, op, arg, markers, found):
        """One block per distinct page: that page's operations, in submission order."""
        k = cuda.blockIdx.x
        if k + 1 >= starts.shape[0]:
            return
        t = cuda.threadIdx.x
        first = cuda.shared.array(1, dtype=np.int64)
        for j in range(starts[k], starts[k + 1]):
            base = page_pfn[j] * PAGE_WORDS
            row = page_row[j]
            o = op[row]
            if o == CLEAR:
                for w in range(t, PAGE_WORDS, cuda.blockDim.x):
                    pool[base + w] = 0
            elif o == DIRTY:
                if t < markers.shape[0]:
                    pool[base + markers[t]] = arg[row]
            elif o == VERIFY:
                if t == 0:
                    first[0] = PAGE_WORDS
                cuda.syncthreads()
                for w in range(t, PAGE_WORDS, cuda.blockDim.x):
                    if pool[base + w] != 0:
                        cuda.atomic.min(first, 0, w)
                cuda.syncthreads()
                if t == 0 and first[0] < PAGE_WORDS:
                    found[j] = pool[base + first[0]]
            cuda.syncthreads()  # the next operation on this page sees this one


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
    """The whole batch in one launch."""
    if not len(op):
        return new_results(0)
    page_pfn, page_row, starts = by_page(pfn, order)
    found = cuda.device_array(len(page_pfn), dtype=np.uint64)
    _fill_zero[(len(page_pfn) + 1023) // 1024, 1024](found)
    _kernel[len(starts) - 1, THREADS](
        pool, cuda.to_device(page_pfn), cuda.to_device(page_row), cuda.to_device(starts),
        cuda.to_device(op.astype(np.int64)), cuda.to_device(arg.astype(np.uint64)),
        cuda.to_device(np.array(MARKER_WORDS, dtype=np.int64)), found)
    return verify_results(len(op), op, page_pfn, page_row, found.copy_to_host())
