"""GPU backend: CuPy raw kernels over a device pool. Needs a real GPU (tests skip loudly)."""
import numpy as np

from .batch import MARKER_WORDS, PAGE_WORDS, check_pool_size, expand_pages, new_results, waves

name = "cupy"
try:
    import cupy as cp
except Exception:  # ImportError, or a CUDA runtime error at import
    cp = None

_SOURCE = r"""
extern "C" __global__ void apply_pages(unsigned long long *pool, const long long *page_pfn,
        const long long *page_row, const long long *op, const unsigned long long *arg,
        const long long *markers, int nmarkers, long long npages,
        long long *nonzero, long long *bad_pfn, unsigned long long *marker) {
    long long k = blockIdx.x;
    if (k >= npages) return;
    long long p = page_pfn[k], row = page_row[k];
    unsigned long long *page = pool + p * %(W)d;
    __shared__ int found;
    if (op[row] == 1) {                                   /* CLEAR */
        for (int w = threadIdx.x; w < %(W)d; w += blockDim.x) page[w] = 0;
    } else if (op[row] == 3) {                            /* DIRTY */
        if (threadIdx.x < nmarkers) page[markers[threadIdx.x]] = arg[row];
    } else if (op[row] == 2) {                            /* VERIFY */
        if (threadIdx.x == 0) found = %(W)d;
        __syncthreads();
        for (int w = threadIdx.x; w < %(W)d; w += blockDim.x)
            if (page[w] != 0) atomicMin(&found, w);
        __syncthreads();
        if (threadIdx.x == 0 && found < %(W)d) {
            atomicAdd((unsigned long long *)&nonzero[row], 1ULL);
            long long old = atomicMin(&bad_pfn[row], p);
            if (p < old) marker[row] = page[found];
        }
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
    nonzero, bad_pfn, marker = new_results(len(op))
    if not len(op):
        return nonzero, bad_pfn, marker
    big = np.iinfo(np.int64).max
    d_nonzero = cp.zeros(len(op), dtype=cp.int64)
    d_bad = cp.full(len(op), big, dtype=cp.int64)
    d_marker = cp.zeros(len(op), dtype=cp.uint64)
    d_op = cp.asarray(op.astype(np.int64))
    d_arg = cp.asarray(arg.astype(np.uint64))
    d_markers = cp.asarray(np.array(MARKER_WORDS, dtype=np.int64))
    for lo, hi in waves(pfn, order):
        page_pfn, page_row = expand_pages(pfn, order, lo, hi)
        _get_kernel()((len(page_pfn),), (128,), (
            pool, cp.asarray(page_pfn), cp.asarray(page_row), d_op, d_arg, d_markers,
            np.int32(len(MARKER_WORDS)), np.int64(len(page_pfn)), d_nonzero, d_bad, d_marker))
    bad = cp.asnumpy(d_bad)
    bad[bad == big] = -1
    return cp.asnumpy(d_nonzero), bad, cp.asnumpy(d_marker).view(np.int64)
