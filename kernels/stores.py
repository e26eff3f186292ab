"""Non-temporal line stores for the CPU backend (x86 ``movnt*`` through LLVM's ``!nontemporal``).

A clear with ordinary stores reads every line before writing it (read-for-ownership) and
leaves it in the cache; non-temporal stores write whole lines straight to memory, so a clear
of memory that is not in the cache moves half the bytes. ``stream_lines(pool, lo, hi, first)``
writes words ``[lo, hi)`` of a 64-byte aligned uint64 array as lines of
``[first, 0, 0, 0, 0, 0, 0, 0]``: zeros for a clear, a marker in every line for a dirty
(``batch.MARKER_WORDS`` are the first word of every line). Non-temporal stores are weakly
ordered: the thread that made them calls ``store_fence()`` before other threads may read the
lines (a fence per 4 KiB page cost 40% of a scattered clear's speed; callers fence once per
share of work). ``lo`` and ``hi`` must be
multiples of 8 and the array 64-byte aligned (the vector stores fault otherwise): callers check
``aligned()``. Interpreted (``NUMBA_DISABLE_JIT=1``) it is a plain slice assignment.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LINE_WORDS = 8
LINE_BYTES = 64


@intrinsic
def _stream_lines(typingctx, arr, lo, hi, first):
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint64 and arr.ndim == 1):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        i64 = ir.IntType(64)
        vec = ir.VectorType(i64, LINE_WORDS)
        first_word = context.cast(builder, args[3], sig.args[3], types.uint64)
        line = builder.insert_element(ir.Constant(vec, None), first_word, ir.Constant(i64, 0))
        nontemporal = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        lo_ = context.cast(builder, args[1], sig.args[1], types.intp)
        hi_ = context.cast(builder, args[2], sig.args[2], types.intp)
        with cgutils.for_range_slice(builder, lo_, hi_, ir.Constant(intp, LINE_WORDS)) as (i, _):
            ptr = builder.bitcast(builder.gep(ary.data, [i]), vec.as_pointer())
            store = builder.store(line, ptr, align=LINE_BYTES)
            store.set_metadata("nontemporal", nontemporal)
        return context.get_dummy_value()
    return types.none(arr, lo, hi, first), codegen


@intrinsic
def _store_fence(typingctx):
    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")  # mfence on x86: orders the non-temporal stores before it
        return context.get_dummy_value()
    return types.none(), codegen


def _plain_lines(arr, lo, hi, first):
    arr[lo:hi] = 0
    arr[lo:hi:LINE_WORDS] = first


def _no_fence():
    """Interpreted stores are ordinary."""


stream_lines = _plain_lines if numba.config.DISABLE_JIT else _stream_lines
store_fence = _no_fence if numba.config.DISABLE_JIT else _store_fence


def aligned(arr):
    return arr.ctypes.data % LINE_BYTES == 0


def page_aligned_empty(nwords):
    """An uninitialised uint64 array of nwords starting on a 4 KiB boundary."""
    buf = np.empty(nwords + 512, dtype=np.uint64)
    off = (-buf.ctypes.data % 4096) // 8
    return buf[off:off + nwords]
