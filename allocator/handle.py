"""Borrowed handles: a fixed set of numpy arrays passed to compiled code as one plain pointer.

The allocator's hot path is dozens of small compiled helpers per event, each taking the zone.
A namedtuple of arrays costs an atomic incref/decref per array at every call; a StructRef costs
one per call on its own meminfo (a locked instruction, which on x86 also orders the memory
accesses around it). A handle has no reference count at all: compiled code gets a pointer to a
block holding the arrays' descriptors, with NULL meminfo, so reading an array from it costs no
atomic either. Measured on bench_allocator, pcp off: 8.6 M events/s with the StructRef, 16.5
with handles. The descriptor loads are also marked invariant (LLVM need not reload them after
a store into an array); that part is within this machine's noise, and free.

The Python ``Handle`` owns the block and keeps the arrays alive; compiled code must not keep a
handle's arrays beyond the call that received it (nothing in this project does).
"""
import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed, lower_getattr_generic
from numba.core.registry import cpu_target
from numba.core.typing.templates import AttributeTemplate, infer_getattr
from numba.extending import (NativeValue, intrinsic, models, register_model, typeof_impl,
                             unbox)
from numba.np import numpy_support


class HandleType(types.Type):
    """A handle's numba type: its kind and (field name, array type) pairs."""

    def __init__(self, kind, fields):
        self.kind = kind
        self.fields = tuple(fields)
        super().__init__(name=f"{kind}({', '.join(f'{n}: {t}' for n, t in self.fields)})")

    def field_type(self, attr):
        for name, typ in self.fields:
            if name == attr:
                return typ
        return None


register_model(HandleType)(models.OpaqueModel)


class BorrowedArray(types.Array):
    """The type of an array read from a handle: the handle owns it, so compiled code takes no
    reference to it. Its model has no meminfo, so numba emits no incref/decref call for it:
    with plain array types every read from a handle still called ``NRT_incref`` and
    ``NRT_decref`` on the NULL meminfo (out-of-line calls that do nothing, and after which LLVM
    must reload what it had read from memory). A view or slice of one is an ordinary array
    (``copy()`` gives ``types.Array``) holding the NULL meminfo, as before."""

    def __init__(self, dtype, ndim, layout):
        super().__init__(dtype, ndim, layout,
                         name=f"borrowed array({dtype}, {ndim}d, {layout})")


@register_model(BorrowedArray)
class BorrowedArrayModel(models.ArrayModel):
    def traverse(self, builder):
        return []

    def has_nrt_meminfo(self):
        return False

    def contains_nrt_meminfo(self):
        return False


def _block_type(context, array_types):
    return ir.LiteralStructType([context.get_value_type(t) for t in array_types])


@infer_getattr
class HandleAttributes(AttributeTemplate):
    key = HandleType

    def generic_resolve(self, typ, attr):
        return typ.field_type(attr)


@lower_getattr_generic(HandleType)
def handle_getattr(context, builder, typ, value, attr):
    names = [name for name, _ in typ.fields]
    block = _block_type(context, [t for _, t in typ.fields])
    ptr = builder.bitcast(value, block.as_pointer())
    res = builder.load(cgutils.gep_inbounds(builder, ptr, 0, names.index(attr)))
    res.set_metadata("invariant.load", builder.module.add_metadata([]))
    return impl_ret_borrowed(context, builder, typ.field_type(attr), res)


@intrinsic
def _store_block(typingctx, buf, arrays):
    """Write the arrays' descriptors, meminfo and parent NULL, into buf's bytes."""
    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, value=args[0]).data
        array_types = sig.args[1].types
        ptr = builder.bitcast(data, _block_type(context, array_types).as_pointer())
        for i, typ in enumerate(array_types):
            ary = context.make_array(typ)(context, builder,
                                          value=builder.extract_value(args[1], i))
            ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
            ary.parent = cgutils.get_null_value(ary.parent.type)
            builder.store(ary._getvalue(), cgutils.gep_inbounds(builder, ptr, 0, i))
        return context.get_dummy_value()
    return types.none(buf, arrays), codegen


@njit(cache=True)
def _fill(buf, arrays):
    _store_block(buf, arrays)


class Handle:
    """Owns a block of borrowed array descriptors; compiled functions receive it as a pointer.

    Attribute reads from Python go to the arrays (``handle.flags`` is the numpy array).
    """

    def __init__(self, kind, arrays):
        fields = tuple((name, typeof_array(name, a)) for name, a in zip(arrays._fields, arrays))
        self.arrays = arrays
        self.numba_type = HandleType(kind, fields)
        size = cpu_target.target_context.get_abi_sizeof(
            _block_type(cpu_target.target_context, [t for _, t in fields]))
        self._block = np.zeros(size, dtype=np.uint8)
        _fill(self._block, tuple(arrays))
        self.address = self._block.ctypes.data

    def __getattr__(self, name):
        if "arrays" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["arrays"], name)

    def __reduce__(self):
        # The block holds this process's addresses: a copy builds its own over the copied arrays.
        return Handle, (self.numba_type.kind, self.arrays)


def typeof_array(name, a):
    if not isinstance(a, np.ndarray) or not a.flags.c_contiguous or not a.flags.writeable:
        raise TypeError(f"handle field {name!r} must be a writeable C-contiguous numpy array")
    return BorrowedArray(numpy_support.from_dtype(a.dtype), a.ndim, "C")


@typeof_impl.register(Handle)
def _typeof_handle(val, c):
    return val.numba_type


@unbox(HandleType)
def _unbox_handle(typ, obj, c):
    address = c.pyapi.object_getattr_string(obj, "address")
    ptr = c.pyapi.long_as_voidptr(address)
    c.pyapi.decref(address)
    return NativeValue(ptr, is_error=cgutils.is_not_null(c.builder, c.pyapi.err_occurred()))


def handle_for(kind, arrays):
    """What compiled functions take for a namedtuple of arrays: a Handle, or under
    NUMBA_DISABLE_JIT=1 the namedtuple itself (attribute access reads the same there)."""
    if numba.config.DISABLE_JIT:
        return arrays
    return Handle(kind, arrays)
