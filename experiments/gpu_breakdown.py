"""Where a CuPy clear batch's time goes: host packing, the host side of ``submit``, and the
clear kernel alone (CUDA events, rows already on the device) against a device memset of the
same bytes (CUDA events), scattered order-0 pages and order-9 blocks. Needs a GPU; a
diagnostic for the clearing benchmark's ratios, not a target.
"""
import sys
import os
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kernels.throughput import backend_or_none  # noqa: E402
from zeroing.validate import OneLineParser  # noqa: E402
from kernels.batch import CLEAR, PAGE_WORDS  # noqa: E402
from kernels.device_batch import CLEAR_THREADS, Packed  # noqa: E402


def best(fn, reps=10):
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def main():
    b = backend_or_none("cupy", print)
    if b is None:
        return 0
    cp = b.cp
    pool_pages = 1 << 21
    pool = b.alloc_pool(pool_pages)
    rng = np.random.default_rng(0)
    ev0, ev1 = cp.cuda.Event(), cp.cuda.Event()

    def device_us(fn, reps=10):
        fn()
        out = []
        for _ in range(reps):
            ev0.record()
            fn()
            ev1.record()
            ev1.synchronize()
            out.append(cp.cuda.get_elapsed_time(ev0, ev1) * 1e3)
        return min(out)
    for n in (16384, 65536, 262144):
        for order in (0, 9):
            rows = n >> order
            pfn = rng.permutation(pool_pages >> order)[:rows].astype(np.int64) << order
            args = (np.full(rows, CLEAR, np.uint8), pfn, np.full(rows, order, np.int64),
                    np.zeros(rows, np.int64))
            buf = np.empty(3 * rows + 1, np.int64)
            pack = best(lambda: Packed(*args, buf))
            h = b.submit(pool, *args)
            b.collect(h)
            sub = best(lambda: b.collect(b.submit(pool, *args)))
            rows_dev = cp.asarray(buf)
            Packed(*args, buf)
            rows_dev.set(buf)
            fn = b._fn("clear_pages")
            nn, uo, tt = np.int64(rows), np.int32(order), np.int64(n)

            def kernel():
                fn((n,), (CLEAR_THREADS,), (pool, rows_dev, nn, uo, tt))
            k = device_us(kernel)
            m = device_us(lambda: cp.cuda.runtime.memsetAsync(pool.data.ptr, 0,
                                                               n * PAGE_WORDS * 8, 0))
            print(f"n={n:7d} order={order}: pack {pack * 1e6:7.1f} us, submit+collect "
                  f"{sub * 1e6:7.1f} us, kernel {k:7.1f} us, memset {m:7.1f} us "
                  f"(kernel/memset {m / k:.2f}, submit+collect/memset {m / (sub * 1e6):.2f})")
    return 0


if __name__ == "__main__":
    OneLineParser(description=__doc__).parse_args()  # --help; no options
    sys.exit(main())
