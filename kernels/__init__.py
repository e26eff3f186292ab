"""Page clearing backends over a page pool. The one place a backend is chosen.

Each backend module has: ``available()``, ``alloc_pool(nr_pages)``, ``apply(pool, op, pfn,
order, arg)`` (see ``batch.py``), ``memset(pool)``, ``to_host(pool)``, ``from_host(array)``.
"""
import importlib

BACKENDS = ("numpy", "numba", "cuda", "cupy")
INSTALL = {
    "cuda": "a CUDA GPU and numba's CUDA target (pip install 'zeroing-sim[gpu]')",
    "cupy": "a CUDA GPU and CuPy (pip install 'zeroing-sim[gpu]', or cupy-cudaXXx for your CUDA)",
}


def _module(name):
    return importlib.import_module(f"kernels.{name}_backend")


def get_backend(name="auto"):
    """The backend module for a name; ``auto`` picks cupy, then cuda, then numba after probing
    that a device really exists. An unavailable backend asked for by name is an error."""
    if name == "auto":
        for candidate in ("cupy", "cuda"):
            mod = _module(candidate)
            if mod.available():
                return mod
        return _module("numba")
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose from auto, {', '.join(BACKENDS)}")
    mod = _module(name)
    if not mod.available():
        raise RuntimeError(f"backend {name!r} is not available here: it needs {INSTALL[name]}")
    return mod
