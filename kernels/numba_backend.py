"""CPU backend: numba, rows in parallel when no two touch the same page, else in order."""
import numpy as np
from numba import njit, prange

from . import numpy_backend
from .batch import CLEAR, DIRTY, MARKER_WORDS, PAGE_WORDS, VERIFY, new_results, overlaps

name = "numba"
available = numpy_backend.available
alloc_pool = numpy_backend.alloc_pool
to_host = numpy_backend.to_host
from_host = numpy_backend.from_host
memset = numpy_backend.memset



def describe():
    return "host CPU (numba, parallel)"


_MARKERS = np.array(MARKER_WORDS, dtype=np.int64)


@njit(cache=True, inline="always")
def _row(pool, op, pfn, order, arg, markers, nonzero, bad_pfn, marker, i):
    lo = pfn[i] * PAGE_WORDS
    hi = (pfn[i] + (np.int64(1) << order[i])) * PAGE_WORDS
    if op[i] == CLEAR:
        pool[lo:hi] = 0  # one contiguous fill per block
    elif op[i] == DIRTY:
        for w in range(lo, hi, PAGE_WORDS):
            for m in markers:
                pool[w + m] = arg[i]
    elif op[i] == VERIFY:
        count = 0
        for w in range(lo, hi, PAGE_WORDS):
            for k in range(PAGE_WORDS):
                if pool[w + k] != 0:
                    if count == 0:
                        bad_pfn[i] = w // PAGE_WORDS
                        marker[i] = pool[w + k]
                    count += 1
                    break
        nonzero[i] = count


@njit(cache=True, parallel=True)
def _apply_parallel(pool, op, pfn, order, arg, markers, nonzero, bad_pfn, marker):
    for i in prange(len(op)):
        _row(pool, op, pfn, order, arg, markers, nonzero, bad_pfn, marker, i)


@njit(cache=True)
def _apply_serial(pool, op, pfn, order, arg, markers, nonzero, bad_pfn, marker):
    for i in range(len(op)):
        _row(pool, op, pfn, order, arg, markers, nonzero, bad_pfn, marker, i)


def apply(pool, op, pfn, order, arg):
    if len(op) and (op.min() < CLEAR or op.max() > DIRTY):
        raise ValueError("unknown operation in batch")
    nonzero, bad_pfn, marker = new_results(len(op))
    fn = _apply_serial if overlaps(pfn, order) else _apply_parallel
    fn(pool, op, pfn, order, arg.astype(np.uint64), _MARKERS, nonzero, bad_pfn,
       marker.view(np.uint64))
    return nonzero, bad_pfn, marker
