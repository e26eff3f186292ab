"""Reference backend: plain numpy, one row at a time, in order."""
import os

import numpy as np

from .batch import CLEAR, DIRTY, MARKER_WORDS, PAGE_WORDS, VERIFY, check_pool_size, new_results

name = "numpy"


def describe():
    return "host CPU (numpy)"


def threads():
    return 1


def available():
    return True


def host_memory():
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def alloc_pool(nr_pages):
    """A zeroed pool, pre-faulted: ``np.zeros`` maps pages lazily, and their first-touch
    faults would otherwise land inside the first timed backend calls."""
    check_pool_size(nr_pages, host_memory(), "this machine")
    pool = np.empty(nr_pages * PAGE_WORDS, dtype=np.uint64)
    pool.fill(0)
    return pool


def to_host(pool):
    return pool


def from_host(pool):
    return pool


def memset(pool):
    pool.fill(0)


def apply(pool, op, pfn, order, arg):
    nonzero, bad_pfn, marker = new_results(len(op))
    view = pool.reshape(-1, PAGE_WORDS)
    for i in range(len(op)):
        lo, hi = int(pfn[i]), int(pfn[i]) + (1 << int(order[i]))
        if op[i] == CLEAR:
            view[lo:hi] = 0
        elif op[i] == DIRTY:
            view[lo:hi, list(MARKER_WORDS)] = np.uint64(arg[i])
        elif op[i] == VERIFY:
            dirty = np.flatnonzero(view[lo:hi].any(axis=1))
            nonzero[i] = len(dirty)
            if len(dirty):
                page = view[lo + dirty[0]]
                bad_pfn[i] = lo + dirty[0]
                marker[i] = int(page[np.flatnonzero(page)[0]])
        else:
            raise ValueError(f"row {i}: unknown operation {op[i]}")
    return nonzero, bad_pfn, marker
