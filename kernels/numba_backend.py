"""CPU backend: numba. Rows run in waves: rows of a wave touch disjoint pages and run in
parallel; each page sees its operations in submission order."""
import numpy as np
from numba import njit, prange

from . import numpy_backend
from .batch import CLEAR, DIRTY, MARKER_WORDS, PAGE_WORDS, VERIFY, new_results

name = "numba"
available = numpy_backend.available
to_host = numpy_backend.to_host
from_host = numpy_backend.from_host


def describe():
    return "host CPU (numba, parallel)"


@njit(cache=True, parallel=True)
def _fill_zero(pool):
    """Zero (and so pre-fault) the pool with every thread, in page-sized chunks."""
    for p in prange(len(pool) // PAGE_WORDS):
        pool[p * PAGE_WORDS:(p + 1) * PAGE_WORDS] = 0


@njit(cache=True, parallel=True)
def _fill_blocks(pool):
    """Zero with every thread in 2 MiB chunks (the tail page by page): how ``apply`` clears
    an order-9 block."""
    step = PAGE_WORDS << 9
    nblocks = len(pool) // step
    for b in prange(nblocks):
        pool[b * step:(b + 1) * step] = 0
    for p in prange(nblocks * 512, len(pool) // PAGE_WORDS):
        pool[p * PAGE_WORDS:(p + 1) * PAGE_WORDS] = 0


def memset(pool):
    """Zero a page-aligned slice with the threads ``apply`` uses and the stores of its
    largest clears (one contiguous fill per 2 MiB): the clearing benchmark's baseline."""
    _fill_blocks(pool)


def alloc_pool(nr_pages):
    """A zeroed pool, pre-faulted by all threads outside any timed region (``np.zeros``
    maps lazily: first-touch faults used to be 70% of content mode's time)."""
    numpy_backend.check_pool_size(nr_pages, numpy_backend.host_memory(), "this machine")
    pool = np.empty(nr_pages * PAGE_WORDS, dtype=np.uint64)
    _fill_zero(pool)
    return pool


_MARKERS = np.array(MARKER_WORDS, dtype=np.int64)


@njit(cache=True, inline="always")
def _row(pool, op, pfn, order, arg, markers, nonzero, bad_pfn, marker, fused, i):
    lo = pfn[i] * PAGE_WORDS
    hi = (pfn[i] + (np.int64(1) << order[i])) * PAGE_WORDS
    if op[i] == CLEAR:
        pool[lo:hi] = 0  # one contiguous fill per block
    elif op[i] == DIRTY:
        for w in range(lo, hi, PAGE_WORDS):
            for m in markers:
                pool[w + m] = arg[i]
    elif op[i] == VERIFY:
        # A DIRTY of the same block right behind this row (an allocation checked, then
        # written) is fused: each page is dirtied while the check has it in cache.
        then_dirty = i + 1 < len(fused) and fused[i + 1]
        count = 0
        for w in range(lo, hi, PAGE_WORDS):
            acc = np.uint64(0)
            for k in range(PAGE_WORDS):  # OR-reduce: vectorises, no early exit
                acc |= pool[w + k]
            if acc != 0:
                if count == 0:
                    bad_pfn[i] = w // PAGE_WORDS
                    for k in range(PAGE_WORDS):
                        if pool[w + k] != 0:
                            marker[i] = pool[w + k]
                            break
                count += 1
            if then_dirty:
                for m in markers:
                    pool[w + m] = arg[i + 1]
        nonzero[i] = count


@njit(cache=True)
def _fuse(op, pfn, order):
    """Rows that run inside the row before them: a DIRTY right behind a VERIFY of the same
    block (the same pages, nothing in between)."""
    n = len(op)
    fused = np.zeros(n, dtype=np.bool_)
    for i in range(1, n):
        fused[i] = (op[i] == DIRTY and op[i - 1] == VERIFY and pfn[i] == pfn[i - 1]
                    and order[i] == order[i - 1])
    return fused


@njit(cache=True)
def _waves(pfn, order, last, fused):
    """Wave of each row: one more than the latest wave that touched any of its pages. Rows of
    one wave touch disjoint pages, and each page sees its rows in submission order. A fused
    row takes the wave of the row it runs inside."""
    n = len(pfn)
    wave = np.zeros(n, dtype=np.int64)
    for i in range(n):
        if fused[i]:
            wave[i] = wave[i - 1]
            continue
        w = 0
        for p in range(pfn[i], pfn[i] + (np.int64(1) << order[i])):
            w = max(w, last[p])
        wave[i] = w
        for p in range(pfn[i], pfn[i] + (np.int64(1) << order[i])):
            last[p] = w + 1
    for i in range(n):  # leave the scratch array zeroed for the next batch
        for p in range(pfn[i], pfn[i] + (np.int64(1) << order[i])):
            last[p] = 0
    return wave


@njit(cache=True, parallel=True)
def _apply_waves(pool, op, pfn, order, arg, markers, nonzero, bad_pfn, marker, last):
    fused = _fuse(op, pfn, order)
    wave = _waves(pfn, order, last, fused)
    rows = np.argsort(wave, kind="mergesort")
    start = 0
    n = len(rows)
    while start < n:
        end = start
        while end < n and wave[rows[end]] == wave[rows[start]]:
            end += 1
        for k in prange(start, end):
            if not fused[rows[k]]:
                _row(pool, op, pfn, order, arg, markers, nonzero, bad_pfn, marker, fused,
                     rows[k])
        start = end


_scratch = {}


def apply(pool, op, pfn, order, arg):
    if len(op) and (op.min() < CLEAR or op.max() > DIRTY):
        raise ValueError("unknown operation in batch")
    nonzero, bad_pfn, marker = new_results(len(op))
    npages = len(pool) // PAGE_WORDS
    last = _scratch.get(npages)
    if last is None:
        last = _scratch[npages] = np.zeros(npages, dtype=np.int64)
    _apply_waves(pool, op, pfn.astype(np.int64), order.astype(np.int64), arg.astype(np.uint64),
                 _MARKERS, nonzero, bad_pfn, marker.view(np.uint64), last)
    return nonzero, bad_pfn, marker
