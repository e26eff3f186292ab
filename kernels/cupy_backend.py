"""GPU backend: CuPy raw kernels over a device pool. Needs a real GPU (tests skip loudly).

Same scheme as the numba-cuda backend: one launch per batch, one block per distinct page.
"""
import numpy as np

from .batch import MARKER_WORDS, PAGE_WORDS, by_page, check_pool_size, new_results, verify_results

name = "cupy"
try:
    import cupy as cp
except Exception:  # ImportError, or a CUDA runtime error at import
    cp = None

_SOURCE = r"""
extern "C" __global__ void apply_pages(unsigned long long *pool, const long long *page_pfn,
        const long long *page_row, const long long *starts, long long npages,
        const long long *op, const unsigned long long *arg, const long long *markers,
        int nmarkers, unsigned long long *found) {
    /* One block per distinct page: that page's operations, in submission order. */
    long long k = blockIdx.x;
    if (k >= npages) return;
    __shared__ int first;
    for (long long j = starts[k]; j < starts[k + 1]; j++) {
        unsigned long long *page = pool + page_pfn[j] * %(W)d;
        long long row = page_row[j];
        if (op[row] == 1) {                                   /* CLEAR */
            for (int w = threadIdx.x; w < %(W)d; w += blockDim.x) page[w] = 0;
        } else if (op[row] == 3) {                            /* DIRTY */
            if (threadIdx.x < nmarkers) page[markers[threadIdx.x]] = arg[row];
        } else if (op[row] == 2) {                            /* VERIFY */
            if (threadIdx.x == 0) first = %(W)d;
            __syncthreads();
            for (int w = threadIdx.x; w < %(W)d; w += blockDim.x)
                if (page[w] != 0) atomicMin(&first, w);
            __syncthreads();
            if (threadIdx.x == 0 && first < %(W)d) found[j] = page[first];
        }
        __syncthreads();  /* the next operation on this page sees this one */
    }
}
""" % {"W": PAGE_WORDS}

_kernel = None


def available():
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def describe():
    try:
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        return f"{props['name'].decode()} (CuPy)"
    except Exception:
        return "unknown CUDA device (CuPy)"


def _get_kernel():
    global _kernel
    if _kernel is None:
        _kernel = cp.RawKernel(_SOURCE, "apply_pages")
    return _kernel


def device_memory():
    try:
        return cp.cuda.runtime.memGetInfo()[0]
    except Exception:
        return None


def alloc_pool(nr_pages):
    check_pool_size(nr_pages, device_memory(), "the GPU")
    return cp.zeros(nr_pages * PAGE_WORDS, dtype=cp.uint64)


def to_host(pool):
    return cp.asnumpy(pool)


def from_host(host):
    return cp.asarray(host)


def memset(pool):
    pool.fill(0)


def apply(pool, op, pfn, order, arg):
    """The whole batch in one launch."""
    if not len(op):
        return new_results(0)
    page_pfn, page_row, starts = by_page(pfn, order)
    found = cp.zeros(len(page_pfn), dtype=cp.uint64)
    npages = len(starts) - 1
    _get_kernel()((npages,), (128,), (
        pool, cp.asarray(page_pfn), cp.asarray(page_row), cp.asarray(starts), np.int64(npages),
        cp.asarray(op.astype(np.int64)), cp.asarray(arg.astype(np.uint64)),
        cp.asarray(np.array(MARKER_WORDS, dtype=np.int64)), np.int32(len(MARKER_WORDS)), found))
    return verify_results(len(op), op, page_pfn, page_row, cp.asnumpy(found))
