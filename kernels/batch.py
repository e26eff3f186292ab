"""The command batch every backend executes, and helpers shared by all of them.

A batch is parallel arrays, one row per operation on one block of pages:
``op`` (``CLEAR``, ``VERIFY``, ``DIRTY``), ``pfn``, ``order`` and ``arg`` (for DIRTY, the
marker to write: the writer's event index + 1, so a marker is never zero). Results, per row
(meaningful for VERIFY rows): ``nonzero`` (pages of the block that are not all zero),
``bad_pfn`` (the first of them, -1 if none) and ``marker`` (the first non-zero word of that
page: whose data it still holds).

Rows touching the same page apply in submission order. A backend may run rows in parallel
only when no two rows overlap: ``waves`` splits a batch into such groups, in order (the numba
backend computes the same grouping in compiled code).
"""
import numpy as np

CLEAR = 1
VERIFY = 2
DIRTY = 3

PAGE_WORDS = 512  # 4096 bytes as uint64
#: Word offsets written by DIRTY in each page (first, two in the middle, last).
MARKER_WORDS = (0, 129, 300, 511)


class Batch:
    """A growable command batch (host arrays)."""

    def __init__(self, capacity=1 << 16):
        self.op = np.zeros(capacity, dtype=np.uint8)
        self.pfn = np.zeros(capacity, dtype=np.int64)
        self.order = np.zeros(capacity, dtype=np.int64)
        self.arg = np.zeros(capacity, dtype=np.int64)
        self.n = 0

    def add(self, op, pfn, order, arg=0):
        if self.n == len(self.op):
            for name in ("op", "pfn", "order", "arg"):
                a = getattr(self, name)
                setattr(self, name, np.concatenate([a, np.zeros_like(a)]))
        i = self.n
        self.op[i], self.pfn[i], self.order[i], self.arg[i] = op, pfn, order, arg
        self.n += 1

    def rows(self):
        return self.op[: self.n], self.pfn[: self.n], self.order[: self.n], self.arg[: self.n]


def new_results(n):
    return (np.zeros(n, dtype=np.int64), np.full(n, -1, dtype=np.int64),
            np.zeros(n, dtype=np.int64))


def waves(pfn, order):
    """Split rows into consecutive groups with no page touched twice (submission order kept)."""
    bounds = [0]
    seen = set()
    for i in range(len(pfn)):
        pages = range(int(pfn[i]), int(pfn[i]) + (1 << int(order[i])))
        if any(p in seen for p in pages):
            bounds.append(i)
            seen = set()
        seen.update(pages)
    bounds.append(len(pfn))
    return [(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1) if bounds[k + 1] > bounds[k]]


def expand_pages(pfn, order, lo, hi):
    """Rows lo..hi as one entry per page: (page pfn, row index), for one-block-per-page
    GPU launches."""
    sizes = np.int64(1) << order[lo:hi].astype(np.int64)
    page_row = np.repeat(np.arange(lo, hi, dtype=np.int64), sizes)
    offsets = np.arange(len(page_row), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(pfn[lo:hi], sizes) + offsets, page_row


def check_pool_size(nr_pages, available_bytes, where):
    """One-line error before any work when the pool cannot fit."""
    need = nr_pages * 4096
    if available_bytes is not None and need > available_bytes:
        raise MemoryError(f"a pool of {nr_pages} pages needs {need / 2**30:.1f} GiB but {where} "
                          f"has {available_bytes / 2**30:.1f} GiB available")
