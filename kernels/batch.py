"""The command batch every backend executes, and helpers shared by all of them.

A batch is parallel arrays, one row per operation on one block of pages:
``op`` (``CLEAR``, ``VERIFY``, ``DIRTY``), ``pfn``, ``order`` and ``arg`` (for DIRTY, the
marker to write: the writer's event index + 1, so a marker is never zero). Results, per row
(meaningful for VERIFY rows): ``nonzero`` (pages of the block that are not all zero),
``bad_pfn`` (the first of them, -1 if none) and ``marker`` (the first non-zero word of that
page: whose data it still holds).

Rows touching the same page apply in submission order: the numba backend runs the batch in
waves of rows that touch disjoint pages; the GPU backends expand rows to pages on the device
and apply each page's rows in order there (``device_batch.py``), one launch per batch.
"""
import numpy as np

CLEAR = 1
VERIFY = 2
DIRTY = 3

PAGE_WORDS = 512  # 4096 bytes as uint64
LINE_WORDS = 8  # a 64-byte cache line as uint64
#: Word offsets written by DIRTY in each page: the first word of every cache line, so a
#: backend that clears only part of a page (any line left out) fails the sanitizer. It also
#: makes DIRTY's memory traffic honest: a store to every line moves the whole page.
MARKER_WORDS = tuple(range(0, PAGE_WORDS, LINE_WORDS))


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


def check_pool_size(nr_pages, available_bytes, where):
    """One-line error before any work when the pool cannot fit."""
    need = nr_pages * 4096
    if available_bytes is not None and need > available_bytes:
        raise MemoryError(f"a pool of {nr_pages} pages needs {need / 2**30:.1f} GiB but {where} "
                          f"has {available_bytes / 2**30:.1f} GiB available")
