"""Clearing throughput of a backend against batch size, as a ratio to a memset that stores the
same way with the same threads, measured in the same run, over memory, not cache.

- The pool is at least 4x the last-level cache (the GPU's L2 on a device), pre-faulted.
- One timing is a sequence of calls (batches of ``n`` pages), each on pages no other call of
  that timing touches: calls walk a random permutation of the pool's blocks, so a page comes
  back only after the whole pool (>= 4x the cache) went by. The memset baseline walks
  contiguous ``n``-page runs of the same pool the same way, with the same number of calls.
- Bytes are those the operation writes: 4 KiB a page (ordinary stores also read each line
  first, in both the backend and the baseline). The machine's DRAM write bandwidth is the
  baseline memset over the whole pool, printed beside.
- GPU backends are timed as the engine drives them: ``submit`` while the batch before is on
  the device, so the wall time includes the host's packing and copies. A GPU timing clears
  at least TIMING_PAGES["gpu"] pages (8 GiB, about 2 ms at 4 TB/s), so that filling and
  draining the two-batch pipeline (one batch's host work before the device starts, one
  wait at the end: once per run in the engine) is a small share, as in the engine's
  stream of batches; with 256 MiB (4 calls of 16K pages) it was most of the timing.
- Every call of a timing shares one op, one order and one arg column (they hold the same
  values); its pfns are its own slice of the permutation. The engine hands a backend rows it
  has just written, so they come from the cache; a column per call made the calls of one
  timing tens of MiB, read back from memory by the host's packing (16K-page CuPy batches on
  the H100 machine: 0.68 of the memset so, 0.76 shared; `gpu_host_path.py`, 2026-11-27).
A ratio above 1.0 is flagged: within the run-to-run spread of the two measurements (slowest
over best repetition), or below the DRAM write bandwidth (said so), or a bug (the row says
UNEXPLAINED).
"""
import os
import time

import numpy as np

from .batch import CLEAR, PAGE_WORDS

#: Pages cleared per timing, at least (small batches are repeated on fresh pages).
TIMING_PAGES = {"cpu": 1 << 14, "gpu": 1 << 21}
MAX_CALLS = 4096


def _gpu(backend):
    return getattr(backend, "DEVICE", "cpu") == "gpu"


def llc_bytes():
    """The host's last-level cache (sysfs), 32 MiB if unknown."""
    best = (0, 32 << 20)
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for d in os.listdir(base):
            if not d.startswith("index"):
                continue
            with open(os.path.join(base, d, "level")) as f:
                level = int(f.read())
            with open(os.path.join(base, d, "size")) as f:
                size = f.read().strip()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1], 1)
            size = int(size.rstrip("KMG")) * mult
            best = max(best, (level, size))
    except (OSError, ValueError):
        pass
    return best[1]


def cache_bytes(backend):
    """The last-level cache the backend's pool goes through (a GPU backend says its L2)."""
    own = getattr(backend, "cache_bytes", None)
    return own() if own is not None else llc_bytes()


def threads(backend):
    """Host threads the backend clears with; None on a device."""
    own = getattr(backend, "threads", None)
    return own() if own is not None else None


def _sync(backend):
    own = getattr(backend, "sync", None)
    if own is not None:
        own()


def _run_calls(backend, pool, calls):
    """All calls, as the engine drives the backend: GPU batches in flight two at a time."""
    if hasattr(backend, "submit"):
        pending = []
        for args in calls:
            pending.append(backend.submit(pool, *args))
            if len(pending) > 1:
                backend.collect(pending.pop(0))
        for h in pending:
            backend.collect(h)
    else:
        for args in calls:
            backend.apply(pool, *args)
    _sync(backend)


def _memsets(backend, pool, offsets, n):
    for off in offsets:
        backend.memset(pool[off * PAGE_WORDS:(off + n) * PAGE_WORDS])
    _sync(backend)


class Walk:
    """The calls of the timings of one batch size and order: ``calls`` walks a random
    permutation of the pool's blocks, ``ncalls`` batches of ``n`` pages a timing, so a page
    comes back only after the whole pool went by; ``offsets`` walks the pool's contiguous
    ``n``-page runs the same way, for the memset baseline. A timing's calls share one op,
    order and arg column (``shared``; else each call has its own)."""

    def __init__(self, rng, pool_pages, n, order, ncalls):
        self.per, self.order, self.ncalls = n >> order, order, ncalls
        self.perm = rng.permutation(pool_pages >> order).astype(np.int64) << order
        self.runs = rng.permutation(pool_pages // n).astype(np.int64) * n
        self.cursor = [0, 0]
        self.same = self._columns()

    def _columns(self):
        return (np.full(self.per, CLEAR, np.uint8), np.full(self.per, self.order, np.int64),
                np.zeros(self.per, np.int64))

    def calls(self, shared=True):
        out, per, cur = [], self.per, self.cursor
        for _ in range(self.ncalls):
            if cur[0] + per > len(self.perm):
                cur[0] = 0
            pfn = self.perm[cur[0]:cur[0] + per]
            cur[0] += per
            op, order, arg = self.same if shared else self._columns()
            out.append((op, pfn, order, arg))
        return out

    def offsets(self):
        cur, k = self.cursor, self.ncalls
        if cur[1] + k > len(self.runs):
            cur[1] = 0
        cur[1] += k
        return self.runs[cur[1] - k:cur[1]]


def ratio_note(ratio, spread, gb_per_s, dram_gb_per_s):
    """Why a row is above its memset, or "" when it is not: within the run-to-run spread;
    or below the DRAM write bandwidth (the memset of the whole pool), where memsets of the
    row's size pay a per-call cost that batches in flight hide; else a bug (UNEXPLAINED).
    ``spread`` None: one repetition, so no spread to judge by (said, not called a bug)."""
    if ratio <= 1.0:
        return ""
    if spread is None:
        return (f"above 1.0 by {ratio - 1:.0%} in one repetition: no run-to-run spread to judge "
                "it by (--reps 2 or more)")
    if ratio - 1 <= spread:
        return f"above 1.0 by {ratio - 1:.0%}, within the run-to-run spread ({spread:.0%})"
    if gb_per_s <= dram_gb_per_s:
        return (f"above 1.0 by {ratio - 1:.0%} (spread {spread:.0%}): memsets of this size pay "
                f"a cost per call; below the DRAM write bandwidth ({dram_gb_per_s:.0f} GB/s, a "
                "memset of the whole pool)")
    return "UNEXPLAINED: faster than a memset of the same bytes (a bug)"


def measure(backend, pool_pages, batches, reps=5, seed=0, log=None):
    """Rows of {backend, device, pages, layout, gb_per_s, memset_gb_per_s, ratio, threads,
    stores, pool_mib, cache_mib, dram_write_gb_per_s, note}: scattered order-0 pages and order-9
    blocks against the same-store, same-thread memset of as many contiguous pages."""
    rng = np.random.default_rng(seed)
    cache = cache_bytes(backend)
    asked = pool_pages
    pool_pages = max(pool_pages, 4 * cache // 4096)
    pool_pages = (pool_pages + 511) // 512 * 512
    if log and pool_pages != asked:
        log(f"{backend.name:6s} pool of {asked} pages raised to {pool_pages} (at least 4x the "
            f"{cache >> 20} MiB cache, whole 2 MiB blocks)")
    pool = backend.alloc_pool(pool_pages)  # pre-faulted by the backend
    kind = "gpu" if _gpu(backend) else "cpu"
    whole = [0]

    def dram():
        t = time.perf_counter()
        _memsets(backend, pool, whole, pool_pages)
        return time.perf_counter() - t
    dram()
    dram_gbps = pool_pages * 4096 / min(dram() for _ in range(max(2, reps // 2))) / 1e9
    nthreads = threads(backend)
    stores = backend.stores(pool) if hasattr(backend, "stores") else "the backend's own"
    if log:
        log(f"{backend.name:6s} on {backend.describe()}: pool {pool_pages * 4 >> 10} MiB "
            f"(cache {cache >> 20} MiB), threads {nthreads or 'device'}, {stores} stores "
            f"(backend and memset), DRAM write "
            f"bandwidth (memset of the pool) {dram_gbps:.1f} GB/s")
    rows = []
    for n in batches:
        if n > pool_pages // 4:
            continue
        # Each timing writes >= 4x the cache, so the dirty lines one timing leaves behind
        # (written back during the next) are a small share of either.
        volume = max(TIMING_PAGES[kind], 4 * cache // 4096)
        ncalls = int(min(MAX_CALLS, max(2, volume // n), pool_pages // n // 2))
        for layout, order in (("scattered order-0", 0), ("order-9 blocks", 9)):
            if n < (1 << order):
                continue
            walk = Walk(rng, pool_pages, n, order, ncalls)
            _run_calls(backend, pool, walk.calls())  # warm: compile
            _memsets(backend, pool, walk.offsets(), n)
            base, best = [], []
            for _ in range(reps):  # interleaved, so drift hits both alike
                offs = walk.offsets()
                t = time.perf_counter()
                _memsets(backend, pool, offs, n)
                base.append(time.perf_counter() - t)
                calls = walk.calls()
                t = time.perf_counter()
                _run_calls(backend, pool, calls)
                best.append(time.perf_counter() - t)
            nbytes = ncalls * n * 4096
            gbps = nbytes / min(best) / 1e9
            ratio = min(base) / min(best)
            # Run-to-run spread of either measurement (slowest over best repetition).
            spread = max(max(x) / min(x) - 1 for x in (base, best)) if reps > 1 else None
            note = ratio_note(ratio, spread, gbps, dram_gbps)
            row = {"backend": backend.name, "device": backend.describe(), "pages": n,
                   "layout": layout, "calls": ncalls, "gb_per_s": gbps,
                   "memset_gb_per_s": nbytes / min(base) / 1e9, "ratio": ratio,
                   "threads": nthreads, "stores": stores, "pool_mib": pool_pages * 4 >> 10,
                   "cache_mib": cache >> 20, "dram_write_gb_per_s": dram_gbps, "note": note}
            rows.append(row)
            if log:
                log(f"{row['backend']:6s} {layout:18s} {n:6d} pages x {ncalls:4d} calls: "
                    f"{row['gb_per_s']:8.2f} GB/s = {row['ratio']:5.2f} x memset "
                    f"({row['memset_gb_per_s']:.2f} GB/s)" + (f"  [{note}]" if note else ""))
    if log and _gpu(backend):
        from .device_batch import CHOICE
        log(f"{backend.name:6s} host packing, best of its trials per size class and "
            f"threads: {CHOICE.describe()}")
    return rows


def backend_or_none(name, log):
    """Backend ``name``, or None after logging (``log``, if any) why it cannot run here."""
    from . import get_backend
    try:
        return get_backend(name)
    except RuntimeError as e:  # not installed, no device, or failed at first use
        if log:
            log(f"{name:6s} skipped: {e}")
        return None


def measured_backends(log=None, only=None):
    """The backends worth timing here: CPU ones, and GPU ones only on a real device where
    their kernels run (one that fails at first use is reported with its reason, skipped)."""
    import numba

    from . import BACKENDS
    out = []
    for name in BACKENDS:
        if only is not None and name not in only:
            continue
        if name == "cuda" and numba.config.ENABLE_CUDASIM:
            if log:
                log("cuda   skipped: the CUDA simulator measures nothing")
            continue
        backend = backend_or_none(name, log)
        if backend is not None:
            out.append(backend)
    return out
