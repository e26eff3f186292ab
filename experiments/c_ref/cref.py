"""Build (on demand) and call ``buddy.c``, the C yardstick of the allocator benchmark.

``load()`` compiles buddy.c with the system C compiler into ``build/`` beside it (once; again
when the source is newer) and returns the library, or None with ``why`` set when no compiler
works. ``run_ops(zone, ops)`` replays ``OP_DTYPE`` rows (alloc, free, free-by-reference) on a
``ZoneArrays`` in C, in place, and returns ``(out_pfn, out_hint)`` as ``bulk.run_ops`` does.
"""
import ctypes
import os
import shutil
import subprocess

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "buddy.c")
LIB = os.path.join(HERE, "build", "libbuddy.so")
CFLAGS = ["-O2", "-march=native", "-shared", "-fPIC", "-std=c11"]
why = ""


class Zone(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in (
        "flags", "order", "next", "prev", "pageblock_mt", "free_head", "free_tail", "nr_free",
        "nr_zeroed", "pcp_head", "pcp_tail", "pcp_count", "conf", "stat", "zstate")]


def compiler():
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def load():
    """The compiled library, or None (``why`` says why)."""
    global why
    cc = compiler()
    if cc is None:
        why = "no C compiler (cc, gcc or clang; or set CC)"
        return None
    if not os.path.exists(LIB) or os.path.getmtime(LIB) < os.path.getmtime(SOURCE):
        os.makedirs(os.path.dirname(LIB), exist_ok=True)
        tmp = f"{LIB}.{os.getpid()}"
        p = subprocess.run([cc, *CFLAGS, "-o", tmp, SOURCE], capture_output=True, text=True)
        if p.returncode != 0:
            why = f"{cc} failed: {p.stderr.strip()[-500:]}"
            return None
        os.replace(tmp, LIB)
    lib = ctypes.CDLL(LIB)
    lib.c_run_ops.restype = ctypes.c_int64
    lib.c_run_ops.argtypes = [ctypes.POINTER(Zone), ctypes.c_int64] + [ctypes.c_void_p] * 8 + \
        [ctypes.c_int64]
    return lib


def _zone(arrays):
    for name in Zone._fields_:
        a = getattr(arrays, name[0])
        assert a.flags.c_contiguous
    return Zone(*(getattr(arrays, name).ctypes.data for name, _ in Zone._fields_))


def run_ops(lib, arrays, ops, prefetch=False):
    """Replay ops on the zone arrays in C; returns (rows done, out_pfn, out_hint). With
    ``prefetch``, the loop fetches ahead as the model's ``bulk.run_ops`` does."""
    cols = [np.ascontiguousarray(ops[f]) for f in ("op", "order", "cpu", "fpi", "gfp", "arg")]
    out_pfn = np.full(len(ops), -1, np.int64)
    out_hint = np.zeros(len(ops), np.uint8)
    z = _zone(arrays)
    done = lib.c_run_ops(ctypes.byref(z), len(ops), *(c.ctypes.data for c in cols),
                         out_pfn.ctypes.data, out_hint.ctypes.data, int(prefetch))
    return done, out_pfn, out_hint
