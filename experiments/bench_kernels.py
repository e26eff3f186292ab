"""Clearing throughput per backend, as a ratio to a contiguous memset of the same memory.

For batches of 1 to 65536 pages: scattered order-0 pages and contiguous order-9 blocks,
cleared by each available backend (GPU backends only on a real GPU). The baseline is measured
in the same run: numpy ``fill(0)`` of the same number of contiguous pages on the host, a device
memset on the GPU. Targets (issue 3): CPU scattered order-0 >= 0.5 of memset, order-9 blocks
>= 0.85; GPU >= 0.8 of the device memset for batches of 16K pages or more.
"""
import argparse
import json
import os
import sys
import time

import numba
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from kernels import BACKENDS, get_backend  # noqa: E402
from kernels.batch import CLEAR  # noqa: E402

BATCHES = (1, 16, 256, 4096, 16384, 65536)


def best_time(fn, reps):
    fn()  # warm (compile, first touch)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def sync(backend):
    if backend.name == "cupy":
        backend.cp.cuda.Device().synchronize()
    elif backend.name == "cuda":
        backend.cuda.synchronize()


def bench_backend(backend, pool_pages, batches, reps, rng):
    pool = backend.alloc_pool(pool_pages)
    rows = []
    for n in batches:
        if n > pool_pages:
            continue
        contiguous = pool[: n * 512]

        def memset():
            backend.memset(contiguous)
            sync(backend)
        base = best_time(memset, reps)
        for layout, order in (("scattered order-0", 0), ("order-9 blocks", 9)):
            if n < (1 << order):
                continue
            nblocks = n >> order
            pfn = rng.choice(pool_pages >> order, size=nblocks, replace=False).astype(np.int64) << order
            ops = np.full(nblocks, CLEAR, dtype=np.uint8)
            orders = np.full(nblocks, order, dtype=np.int64)
            arg = np.zeros(nblocks, dtype=np.int64)

            def clear():
                backend.apply(pool, ops, pfn, orders, arg)
                sync(backend)
            t = best_time(clear, reps)
            gbps = n * 4096 / t / 1e9
            rows.append({"backend": backend.name, "device": backend.describe(), "pages": n,
                         "layout": layout, "gb_per_s": gbps, "memset_gb_per_s": n * 4096 / base / 1e9,
                         "ratio": base / t})
            print(f"{backend.name:6s} {layout:18s} {n:6d} pages: {gbps:7.2f} GB/s = "
                  f"{base / t:5.2f} x memset ({n * 4096 / base / 1e9:.2f} GB/s)", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pool-pages", type=int, default=1 << 17)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    p.add_argument("--json", help="write the rows here (atomically)")
    args = p.parse_args(argv)
    batches = BATCHES
    if args.quick:
        args.pool_pages, args.reps, batches = 2048, 1, (1, 512, 1024)
    rng = np.random.default_rng(0)
    rows = []
    for name in BACKENDS:
        try:
            backend = get_backend(name)
        except RuntimeError as e:
            print(f"{name:6s} skipped: {e}")
            continue
        if name == "cuda" and numba.config.ENABLE_CUDASIM:
            print("cuda   skipped: the CUDA simulator measures nothing")
            continue
        rows += bench_backend(backend, args.pool_pages, batches, args.reps, rng)
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(rows, f, indent=2)
        os.replace(args.json + ".tmp", args.json)
    return rows


if __name__ == "__main__":
    main()
