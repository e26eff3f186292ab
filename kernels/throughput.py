"""Clearing throughput of a backend against batch size, as a ratio to a contiguous memset."""
import time

import numpy as np

from .batch import CLEAR


def _best_time(fn, reps):
    fn()  # warm: compile, first touch
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _sync(backend):
    if backend.name == "cupy":
        backend.cp.cuda.Device().synchronize()
    elif backend.name == "cuda":
        backend.cuda.synchronize()


def measure(backend, pool_pages, batches, reps=5, seed=0, log=None):
    """Rows of {backend, device, pages, layout, gb_per_s, memset_gb_per_s, ratio}: scattered
    order-0 pages and contiguous order-9 blocks, against a memset of as many contiguous
    pages on the same device, measured in the same run."""
    rng = np.random.default_rng(seed)
    pool = backend.alloc_pool(pool_pages)
    rows = []
    for n in batches:
        if n > pool_pages:
            continue
        contiguous = pool[: n * 512]

        def memset():
            backend.memset(contiguous)
            _sync(backend)
        base = _best_time(memset, reps)
        for layout, order in (("scattered order-0", 0), ("order-9 blocks", 9)):
            if n < (1 << order):
                continue
            nblocks = n >> order
            pfn = rng.choice(pool_pages >> order, size=nblocks, replace=False).astype(np.int64) << order
            args = (np.full(nblocks, CLEAR, dtype=np.uint8), pfn,
                    np.full(nblocks, order, dtype=np.int64), np.zeros(nblocks, dtype=np.int64))

            def clear():
                backend.apply(pool, *args)
                _sync(backend)
            t = _best_time(clear, reps)
            row = {"backend": backend.name, "device": backend.describe(), "pages": n,
                   "layout": layout, "gb_per_s": n * 4096 / t / 1e9,
                   "memset_gb_per_s": n * 4096 / base / 1e9, "ratio": base / t}
            rows.append(row)
            if log:
                log(f"{row['backend']:6s} {layout:18s} {n:6d} pages: {row['gb_per_s']:7.2f} GB/s = "
                    f"{row['ratio']:5.2f} x memset ({row['memset_gb_per_s']:.2f} GB/s)")
    return rows


def measured_backends(log=None):
    """The backends worth timing here: CPU ones, and GPU ones only on a real device."""
    import numba

    from . import BACKENDS, get_backend
    out = []
    for name in BACKENDS:
        try:
            backend = get_backend(name)
        except RuntimeError as e:
            if log:
                log(f"{name:6s} skipped: {e}")
            continue
        if name == "cuda" and numba.config.ENABLE_CUDASIM:
            if log:
                log("cuda   skipped: the CUDA simulator measures nothing")
            continue
        out.append(backend)
    return out
