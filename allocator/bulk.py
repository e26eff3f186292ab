"""Array-in/array-out entry point: replay a batch of allocator operations in compiled code.

An operation is one row of ``OP_DTYPE``:

=========  =====================================================================
``op``     ``OP_ALLOC``, ``OP_FREE``, ``OP_FREE_REF``, ``OP_ALLOC_PFN``,
           ``OP_ISOLATE``, ``OP_PUTBACK``, ``OP_DRAIN``
``order``  block order
``cpu``    per-cpu list to use (0 unless the allocator models several CPUs)
``fpi``    FPI bits for frees and putbacks
``gfp``    GFP bits for allocations (gives the migratetype)
``arg``    pfn (FREE, ALLOC_PFN, ISOLATE, PUTBACK) or, for FREE_REF, the index of an
           earlier ALLOC row in the same array whose result is freed
=========  =====================================================================

``run_ops`` writes, per row, ``out_pfn`` (the pfn allocated or acted on, -1 when an
allocation failed or a FREE_REF names a failed allocation, which is then skipped) and
``out_hint`` (1 when the block was handed out with the zeroed hint). Misuse stops the batch
(strict) or is counted in ``S_BAD_PAGE`` and skipped (lenient); the first errors are kept in
``errors`` as rows (index, code, pfn).
"""
import numpy as np
from numba import njit

from . import core
from .core import NONE
from .prefetch import prefetch

OP_ALLOC = 1
OP_FREE = 2
OP_FREE_REF = 3
OP_ALLOC_PFN = 4
OP_ISOLATE = 5
OP_PUTBACK = 6
OP_DRAIN = 7

OP_DTYPE = np.dtype([
    ("op", np.uint8), ("order", np.int8), ("cpu", np.uint16), ("fpi", np.uint32),
    ("gfp", np.uint32), ("arg", np.int64),
])

MAX_ERRORS = 16

#: How far ahead run_ops fetches the row a FREE_REF refers to.
PREFETCH_ROWS = 16


def columns(ops):
    """The OP_DTYPE columns in run_ops' argument order; ``op`` as a contiguous copy.

    A FREE_REF row reads the ``op`` of a random earlier row: from a strided view of the
    24-byte rows that is a cache and TLB miss in an array 24 times the size of the column
    (measured: most of run_ops' time at 10M rows). The other columns are read in order.
    """
    return tuple(np.ascontiguousarray(ops[name]) if name == "op" else ops[name]
                 for name in OP_DTYPE.names)


@njit(cache=True)
def run_ops(z, ops_op, ops_order, ops_cpu, ops_fpi, ops_gfp, ops_arg, out_pfn, out_hint,
            lenient, errors):
    """Apply ops (given as the columns of an OP_DTYPE array) in order.

    Returns (rows done, errors seen).
    """
    nerr = 0
    n = len(ops_op)
    for i in range(n):
        ahead = i + PREFETCH_ROWS
        if ahead < n and ops_op[ahead] == OP_FREE_REF:
            back = ops_arg[ahead]
            prefetch(out_pfn, back)
            prefetch(ops_op, back)
        near = i + PREFETCH_ROWS // 2
        if near < n and ops_op[near] == OP_FREE_REF:
            back = ops_arg[near]
            if 0 <= back < near:
                pfn = out_pfn[back]
                if pfn >= 0:
                    prefetch(z.flags, pfn)
                    prefetch(z.next, pfn)
                    prefetch(z.prev, pfn)
                    order = ops_order[near]
                    if 0 <= order < 32:
                        buddy = pfn ^ (1 << order)
                        prefetch(z.next, buddy)
                        prefetch(z.prev, buddy)
        op = ops_op[i]
        order = np.int64(ops_order[i])
        cpu = np.int64(ops_cpu[i])
        arg = ops_arg[i]
        res = 0
        pfn = arg
        out_hint[i] = 0
        if op == OP_ALLOC:
            res = core.alloc_pages(z, order, np.int64(ops_gfp[i]), cpu)
            pfn = res
            if res >= 0:
                out_hint[i] = 1 if core.page_is_zeroed(z, res) else 0
                res = 0
            elif res == NONE:
                res = 0
        elif op == OP_FREE or op == OP_FREE_REF:
            if op == OP_FREE_REF:
                if arg < 0 or arg >= i or ops_op[arg] != OP_ALLOC:
                    res = -core.E_BAD_REF
                    pfn = arg
                else:
                    pfn = out_pfn[arg]
            if res == 0 and pfn != NONE:
                res = core.free_pages(z, pfn, order, np.int64(ops_fpi[i]), cpu)
        elif op == OP_ALLOC_PFN:
            res = core.alloc_pfn(z, arg, order, np.int64(ops_gfp[i]))
            if res == 1:
                out_hint[i] = 1 if core.page_is_zeroed(z, arg) else 0
                res = 0
            elif res == 0:
                pfn = NONE
        elif op == OP_ISOLATE:
            res = core.__isolate_free_page(z, arg, order)
            if res > 0:
                res = 0
            elif res == 0:
                pfn = NONE  # refused: the zone is at its min watermark
        elif op == OP_PUTBACK:
            res = core.__putback_isolated_page(z, arg, order, np.int64(ops_fpi[i]), False)
            if res > 0:
                res = 0
        elif op == OP_DRAIN:
            if cpu < 0 or cpu >= z.conf[core.C_NR_CPUS]:
                res = -core.E_BAD_CPU
            else:
                core.drain_pages(z, cpu)
        else:
            res = -core.E_BAD_OP
        if res < 0:
            if nerr < errors.shape[0]:
                errors[nerr, 0] = i
                errors[nerr, 1] = -res
                errors[nerr, 2] = pfn
            nerr += 1
            out_pfn[i] = NONE
            if not lenient:
                return i, nerr
            z.stat[core.S_BAD_PAGE] += 1
        else:
            out_pfn[i] = pfn
    return n, nerr
