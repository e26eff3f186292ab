"""Page clearing backends over a page pool. The one place a backend is chosen.

Each backend module has: ``available()``, ``alloc_pool(nr_pages)``, ``apply(pool, op, pfn,
order, arg)`` (see ``batch.py``), ``memset(pool)``, ``to_host(pool)``, ``from_host(array)``.
CPU backends have ``threads()``. GPU backends have ``DEVICE = "gpu"``, ``submit``/``collect``
(``apply`` split in two, so the caller can work while the device does; ``collect``'s results
are views into a staging slot, to be read before the backend's second ``submit`` after,
where ``apply``'s are the caller's), ``first_use()`` (the
reason the kernels cannot compile or run here, or None), ``sync()`` and ``cache_bytes()`` (the
device's L2); the benchmarks ask these, not the backend's name.
"""
import importlib
import os
import warnings

BACKENDS = ("numpy", "numba", "cuda", "cupy")
INSTALL = {
    "cuda": "a CUDA GPU and numba's CUDA target (pip install 'zeroing-sim[numba-cuda]')",
    "cupy": "a CUDA GPU and CuPy (pip install 'zeroing-sim[gpu]' for CUDA 12, "
            "'zeroing-sim[gpu-cuda13]' for CUDA 13)",
}


def env_switch(name, default):
    """An on/off environment variable: 1/on/true/yes or 0/off/false/no (any case); unset or
    empty is ``default``; anything else a ValueError naming it (``=off`` meant on before)."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise ValueError(f"{name}={os.environ[name]!r}: expected 1, on, true, yes or 0, off, "
                     "false, no")


class BackendFailed(RuntimeError):
    """A backend that is installed and sees a device, but failed at first use (kernel compile
    or driver error): benchmarks skip it, runs fall back to the CPU backend."""


_first_use = {}


def _module(name):
    try:
        return importlib.import_module(f"kernels.{name}_backend")
    except Exception as exc:  # a GPU library that breaks at import (driver, numpy mismatch)
        if name in ("numpy", "numba"):
            raise
        raise BackendFailed(f"backend {name!r} failed at import: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def first_use_failure(mod):
    """Why ``mod`` cannot run its kernels here (probed once per process), or None."""
    probe = getattr(mod, "first_use", None)
    if probe is None:
        return None
    if mod.name not in _first_use:
        _first_use[mod.name] = probe()
    return _first_use[mod.name]


def get_backend(name="auto"):
    """The backend module for a name; ``auto`` picks cupy, then cuda, then numba after probing
    that a device really exists and the kernels run on it. An unavailable backend asked for
    by name is a RuntimeError; one that fails at first use a ``BackendFailed``."""
    if name == "auto":
        for candidate in ("cupy", "cuda"):
            try:
                mod = _module(candidate)
            except BackendFailed as exc:
                warnings.warn(f"{exc}; not used", RuntimeWarning)
                continue
            if mod.available():
                why = first_use_failure(mod)
                if why is None:
                    return mod
                warnings.warn(f"backend {candidate!r} failed at first use ({why}); not used",
                              RuntimeWarning)
        return _module("numba")
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose from auto, {', '.join(BACKENDS)}")
    mod = _module(name)
    if not mod.available():
        raise RuntimeError(f"backend {name!r} is not available here: it needs {INSTALL[name]}")
    why = first_use_failure(mod)
    if why is not None:
        raise BackendFailed(f"backend {name!r} failed at first use: {why}")
    return mod
