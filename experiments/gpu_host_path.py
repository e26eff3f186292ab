"""Why a stream of 16K-page clear batches on the CuPy backend falls short of the device memset:
the same stream (two batches in flight, as the engine drives it) with the host's packing
forced serial or parallel on 2 to all threads, and with the rows' constant columns fresh per
call (cold, as the clearing benchmark had them) or shared (cached, as the engine has them),
each as a ratio to the same run's memset of as many bytes. A diagnostic for issue 11 (needs
a GPU and CuPy), not a target; the numba threading layer comes from NUMBA_THREADING_LAYER.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numba  # noqa: E402

from kernels import device_batch  # noqa: E402
from kernels.batch import PAGE_WORDS  # noqa: E402
from kernels.throughput import Walk, _memsets, _run_calls, backend_or_none  # noqa: E402
from zeroing.validate import MAX_PFNS, OneLineParser, env_int, script_main  # noqa: E402

#: The pool's pages by default (16 GiB, 300x the L2); the environment's POOL_PAGES, at least the
#: largest batch, overrides it (checked by ``pool_pages`` when main runs, not at import).
POOL_PAGES = 1 << 22
MIN_POOL_PAGES = 65536


def pool_pages():
    """POOL_PAGES from the environment (checked), else the default."""
    return env_int("POOL_PAGES", POOL_PAGES, MIN_POOL_PAGES, MAX_PFNS)


REPS = 5


def main():
    npool = pool_pages()  # a bad POOL_PAGES is refused on any machine, GPU or not
    b = backend_or_none("cupy", print)
    if b is None:
        return 0
    pool = b.alloc_pool(npool)
    rng = np.random.default_rng(0)
    most = numba.get_num_threads()
    print(f"numba threads {most}, compiled submitter {b.FAST is not None}")
    forced = {}
    real = device_batch.CHOICE.threads
    device_batch.CHOICE.threads = lambda n: forced.get("threads", real(n))
    for n, order in ((16384, 0), (65536, 0), (16384, 9)):
        walk = Walk(rng, npool, n, order, min(512, (1 << 21) // n))
        ncalls = walk.ncalls
        variants = [("fresh columns, packing by choice", False, None),
                    ("shared columns, packing by choice", True, None),
                    ("shared columns, serial packing", True, 1)]
        variants += [(f"shared columns, parallel packing on {t}", True, t)
                     for t in sorted({2, 4, 8, most}) if 1 < t <= most]
        best = {v[0]: np.inf for v in variants}
        base = np.inf
        for rep in range(REPS + 1):
            offs = walk.offsets()
            t = time.perf_counter()
            _memsets(b, pool, offs, n)
            base = min(base, time.perf_counter() - t) if rep else np.inf
            for label, shared, threads in variants:
                todo = walk.calls(shared)
                if threads is None:
                    forced.pop("threads", None)
                else:
                    forced["threads"] = (threads, False)
                t = time.perf_counter()
                _run_calls(b, pool, todo)
                if rep:  # the first round warms every path up
                    best[label] = min(best[label], time.perf_counter() - t)
        forced.pop("threads", None)
        print(f"n={n:6d} order {order}, {ncalls} calls: memset {base / ncalls * 1e6:6.1f} us "
              f"a batch ({ncalls * n * PAGE_WORDS * 8 / base / 1e9:.0f} GB/s)")
        for label, *_ in variants:
            print(f"    {label:45s} {best[label] / ncalls * 1e6:6.1f} us a batch, "
                  f"{base / best[label]:.2f} of memset")
    try:
        print(f"threading layer {numba.threading_layer()}")
    except ValueError:  # no parallel region ran
        print("threading layer: none started")
    return 0


if __name__ == "__main__":
    OneLineParser(description=__doc__).parse_args()  # --help; no options
    sys.exit(script_main(main))
