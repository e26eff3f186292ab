"""CPU backend: numba. Rows run in waves: rows of a wave touch disjoint pages and run in
parallel; each page sees its operations in submission order. A batch of clears only is one
wave (clearing twice is clearing once), as on the GPU.

CLEAR and DIRTY rows write whole lines with non-temporal stores (``stores.py``) when they
clear this pool faster than ordinary stores: ``alloc_pool`` times both on the pool (up to
PROBE_BYTES of it) and keeps the faster, or takes ``ZEROING_CPU_STORES`` (``nt``, ``plain``;
``auto`` probes). ``memset``, the clearing benchmark's baseline, stores the same way.
"""
import os
import time
import weakref

import numpy as np
from numba import get_num_threads, njit, prange

from . import numpy_backend
from .batch import CLEAR, DIRTY, LINE_WORDS, MARKER_WORDS, PAGE_WORDS, VERIFY, new_results
from .stores import aligned, page_aligned_empty, store_fence, stream_lines

name = "numba"
available = numpy_backend.available
to_host = numpy_backend.to_host
from_host = numpy_backend.from_host


def describe():
    return "host CPU (numba, parallel)"


def threads():
    return get_num_threads()


@njit(cache=True, parallel=True)
def _fill_zero(pool):
    """Zero (and so pre-fault) the pool with every thread, in page-sized chunks."""
    for p in prange(len(pool) // PAGE_WORDS):
        pool[p * PAGE_WORDS:(p + 1) * PAGE_WORDS] = 0


@njit(cache=True, inline="always")
def _clear(pool, lo, hi, nt):
    if nt:
        stream_lines(pool, lo, hi, 0)  # the caller fences
    else:
        pool[lo:hi] = 0


@njit(cache=True, parallel=True)
def _fill_blocks(pool, nt):
    """Zero with every thread in 2 MiB chunks (the tail page by page): how ``apply`` clears
    an order-9 block."""
    step = PAGE_WORDS << 9
    nblocks = len(pool) // step
    for b in prange(nblocks):
        _clear(pool, b * step, (b + 1) * step, nt)
        if nt:
            store_fence()
    for p in prange(nblocks * 512, len(pool) // PAGE_WORDS):
        _clear(pool, p * PAGE_WORDS, (p + 1) * PAGE_WORDS, nt)
        if nt:
            store_fence()


STORES_ENV = "ZEROING_CPU_STORES"
STORES = ("auto", "nt", "plain")
PROBE_BYTES = 256 << 20
_pools = {}  # data address of each pool alloc_pool made -> (end address, non-temporal)


def _register(pool, nt):
    start = pool.ctypes.data
    _pools[start] = (start + pool.nbytes, nt)
    weakref.finalize(pool.base if pool.base is not None else pool, _pools.pop, start, None)


def non_temporal(pool):
    """Whether CLEAR and DIRTY rows on this pool (or a slice of it) use non-temporal stores."""
    addr = pool.ctypes.data
    if not aligned(pool):
        return False
    for start, (end, nt) in _pools.items():
        if start <= addr < end:
            return nt
    return False


def stores(pool):
    return "non-temporal" if non_temporal(pool) else "ordinary"


def _faster_non_temporal(pool):
    """Time both kinds of clear on up to PROBE_BYTES of the pool, best of two each."""
    part = pool[:max(PAGE_WORDS, min(len(pool), PROBE_BYTES // 8) // PAGE_WORDS * PAGE_WORDS)]
    best = {False: float("inf"), True: float("inf")}
    for _ in range(2):
        for nt in (False, True):
            t = time.perf_counter()
            _fill_blocks(part, nt)
            best[nt] = min(best[nt], time.perf_counter() - t)
    return best[True] < best[False]


def choose_stores():
    """``ZEROING_CPU_STORES``, checked: auto (probe), nt or plain."""
    kind = os.environ.get(STORES_ENV, "auto")
    if kind not in STORES:
        raise ValueError(f"{STORES_ENV}={kind!r}: expected one of {', '.join(STORES)}")
    return kind


def memset(pool):
    """Zero a page-aligned slice with the threads ``apply`` uses and the stores of its
    largest clears (one contiguous fill per 2 MiB): the clearing benchmark's baseline."""
    _fill_blocks(pool, non_temporal(pool))


def alloc_pool(nr_pages):
    """A zeroed, page-aligned pool, pre-faulted by all threads outside any timed region
    (``np.zeros`` maps lazily: first-touch faults used to be 70% of content mode's time)."""
    kind = choose_stores()
    numpy_backend.check_pool_size(nr_pages, numpy_backend.host_memory(), "this machine")
    pool = page_aligned_empty(nr_pages * PAGE_WORDS)
    _fill_zero(pool)
    _register(pool, kind == "nt" or (kind == "auto" and _faster_non_temporal(pool)))
    return pool


_MARKERS = np.array(MARKER_WORDS, dtype=np.int64)
if MARKER_WORDS != tuple(range(0, PAGE_WORDS, LINE_WORDS)):
    raise ImportError("the non-temporal DIRTY writes a marker at the first word of every "
                      "line: batch.MARKER_WORDS must stay those words")


@njit(cache=True, inline="always")
def _row(pool, op, pfn, order, arg, markers, nonzero, bad_pfn, marker, fused, nt, i):
    lo = pfn[i] * PAGE_WORDS
    hi = (pfn[i] + (np.int64(1) << order[i])) * PAGE_WORDS
    if op[i] == CLEAR:
        _clear(pool, lo, hi, nt)  # one contiguous fill per block
    elif op[i] == DIRTY:
        if nt:  # whole lines: the marker, then zeros (markers are every line's first word)
            stream_lines(pool, lo, hi, arg[i])
        else:
            for w in range(lo, hi, PAGE_WORDS):
                for m in markers:
                    pool[w + m] = arg[i]
    elif op[i] == VERIFY:
        # A DIRTY of the same block right behind this row (an allocation checked, then
        # written) is fused: each page is dirtied while the check has it in cache.
        then_dirty = i + 1 < len(fused) and fused[i + 1]
        count = 0
        for w in range(lo, hi, PAGE_WORDS):
            page = pool[w:w + PAGE_WORDS]  # a view: its loop vectorises (2x indexing pool)
            acc = np.uint64(0)
            for k in range(PAGE_WORDS):  # OR-reduce: vectorises, no early exit
                acc |= page[k]
            if acc != 0:
                if count == 0:
                    bad_pfn[i] = w // PAGE_WORDS
                    for k in range(PAGE_WORDS):
                        if page[k] != 0:
                            marker[i] = page[k]
                            break
                count += 1
            if then_dirty:
                for m in markers:
                    page[m] = arg[i + 1]
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


@njit(cache=True)
def _clears_only(op):
    for i in range(len(op)):
        if op[i] != CLEAR:
            return False
    return True


@njit(cache=True, parallel=True)
def _apply_waves(pool, op, pfn, order, arg, markers, nonzero, bad_pfn, marker, last, nt,
                 nshares):
    n = len(op)
    if _clears_only(op):
        # Clearing twice is clearing once: a batch of clears is one wave in any order (the
        # offload zeroer's batches, the benchmark). Finding the waves cost more than the
        # clears of scattered pages (three random reads of ``last`` and a sort, a row, on one
        # thread): without it scattered 4 KiB clears ran 1.5-1.95x and 2 MiB ones 1.08-1.21x
        # as fast (2-core VM, 4 GiB pool, the two alternating in one process).
        for t in prange(nshares):
            for k in range(t, n, nshares):
                lo = pfn[k] * PAGE_WORDS
                _clear(pool, lo, lo + (np.int64(PAGE_WORDS) << order[k]), nt)
            if nt:
                store_fence()
        return
    fused = _fuse(op, pfn, order)
    wave = _waves(pfn, order, last, fused)
    rows = np.argsort(wave, kind="mergesort")
    start = 0
    while start < n:
        end = start
        while end < n and wave[rows[end]] == wave[rows[start]]:
            end += 1
        # One share of the wave per thread, fenced once at its end (non-temporal stores).
        for t in prange(nshares):
            for k in range(start + t, end, nshares):
                if not fused[rows[k]]:
                    _row(pool, op, pfn, order, arg, markers, nonzero, bad_pfn, marker, fused,
                         nt, rows[k])
            if nt:
                store_fence()
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
    _apply_waves(pool, op, np.asarray(pfn, np.int64), np.asarray(order, np.int64),
                 np.asarray(arg, np.int64).view(np.uint64),  # (no copies: only read)
                 _MARKERS, nonzero, bad_pfn, marker.view(np.uint64), last, non_temporal(pool),
                 get_num_threads())
    return nonzero, bad_pfn, marker
