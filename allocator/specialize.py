"""One compiled version of a function per kind of argument, not one per constant passed.

numba compiles a function called from compiled code once for every distinct set of argument
types, and a constant argument has a type of its own (``Literal[int](0)``, ``Literal[bool]
(True)``), as does a small integer read from an int8 array. ``list_add(z, BUDDY_LIST, ...,
True)`` and ``list_add(z, PCP_LIST, ..., False)`` were two compilations, each carrying its own
copies of the functions it calls: compiling the engine meant 158 functions where 111 are
distinct, 21.8 s of the first run's ~23 s on 2 cores (17.1 s with this). ``widen_call_types``
makes calls between this project's compiled functions pass constants as plain values and
int8/int32 as int64 (the callee casts nothing: numba converts at the call). Omitted default
arguments keep their own type: the caller has no value to pass for them.

The cost: a callee can no longer fold a constant argument into its code (a ``which`` test or
a ``to_tail`` branch stays a branch); measured on bench_allocator and bench_engine, within
their noise.
"""
from numba.core import types
from numba.core.dispatcher import Dispatcher

PACKAGES = ("allocator", "zeroing", "kernels")
_WIDE = {types.int8: types.int64, types.int16: types.int64, types.int32: types.int64}


def _widen(t):
    if isinstance(t, types.Omitted):
        return t
    t = types.unliteral(t)
    return _WIDE.get(t, t)


def widen_call_types():
    """Install (once) the widening for dispatchers of functions defined in PACKAGES."""
    if getattr(Dispatcher.get_call_template, "_widens", False):
        return
    plain = Dispatcher.get_call_template

    def get_call_template(self, args, kws):
        module = getattr(self.py_func, "__module__", "") or ""
        if module.split(".")[0] in PACKAGES:
            args = tuple(_widen(a) for a in args)
            kws = {k: _widen(v) for k, v in kws.items()}
        return plain(self, args, kws)

    get_call_template._widens = True
    Dispatcher.get_call_template = get_call_template
