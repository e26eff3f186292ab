"""``prefetch(array, index)``: a software prefetch (LLVM's ``llvm.prefetch``) of one element.

A hint only: it never faults, so an index out of range costs nothing but a wasted fetch.
Interpreted (``NUMBA_DISABLE_JIT=1``) it does nothing.
"""
import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _prefetch(typingctx, arr, idx):
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i32 = ir.IntType(32)
        voidptr = ir.IntType(8).as_pointer()
        # declare_intrinsic mangles the name as this llvmlite's pointers require (p0i8, p0)
        fn = builder.module.declare_intrinsic(
            "llvm.prefetch", [voidptr], ir.FunctionType(ir.VoidType(), [voidptr, i32, i32, i32]))
        # read, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, voidptr), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.none(arr, idx), codegen


def _no_prefetch(arr, idx):
    """The interpreted model has no cache to warm."""


prefetch = _no_prefetch if numba.config.DISABLE_JIT else _prefetch
