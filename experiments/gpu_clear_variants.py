"""Which shape of clear kernel gets scattered order-0 pages nearest the device memset, and
where the host's time goes in ``cupy_backend.submit`` for a clear batch. A diagnostic for
issue 11 (needs a GPU and CuPy), not a target.

Device side: a pool of POOL_PAGES pages, a random permutation of them in batches of n pages
(each page cleared once a timing); each variant's launches against cudaMemsetAsync of the same
batches' bytes in contiguous runs, CUDA events, best of REPS, alternating. Host side: the
pieces of one ``submit``/``collect`` of an n-row clear batch, each timed on the host clock.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kernels.batch import CLEAR  # noqa: E402
from zeroing.validate import MAX_PFNS, OneLineParser, env_int, script_main  # noqa: E402
from kernels.device_batch import CLEAR_THREADS, LANES, PFN_SHIFT, Packed  # noqa: E402

#: The pool's pages by default (2 GiB, 40x the L2); the environment's POOL_PAGES, at least the
#: largest batch, overrides it (checked by ``pool_pages`` when main runs, not at import).
POOL_PAGES = 1 << 19
MIN_POOL_PAGES = 262144


def pool_pages():
    """POOL_PAGES from the environment (checked), else the default."""
    return env_int("POOL_PAGES", POOL_PAGES, MIN_POOL_PAGES, MAX_PFNS)


REPS = 3

VARIANTS = r"""
typedef long long i64;
typedef unsigned long long u64;
#define W 512
#define PS 16
/* one warp a page (the production shape, rows = cmd words of one order) */
extern "C" __global__ void warp(u64 *pool, const i64 *cmd, i64 total) {
    i64 e = (i64)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (e >= total) return;
    ulonglong2 *p = (ulonglong2 *)(pool + (cmd[e] >> PS) * W);
    ulonglong2 z = make_ulonglong2(0ULL, 0ULL);
#pragma unroll
    for (int w = threadIdx.x % 32; w < W / 2; w += 32) p[w] = z;
}
/* the same, streaming (evict-first) stores */
extern "C" __global__ void warp_cs(u64 *pool, const i64 *cmd, i64 total) {
    i64 e = (i64)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (e >= total) return;
    ulonglong2 *p = (ulonglong2 *)(pool + (cmd[e] >> PS) * W);
    ulonglong2 z = make_ulonglong2(0ULL, 0ULL);
#pragma unroll
    for (int w = threadIdx.x % 32; w < W / 2; w += 32) __stcs(p + w, z);
}
/* one block of 256 threads a page, one 16-byte store each */
extern "C" __global__ void block(u64 *pool, const i64 *cmd, i64 total) {
    i64 e = blockIdx.x;
    if (e >= total) return;
    ulonglong2 *p = (ulonglong2 *)(pool + (cmd[e] >> PS) * W);
    p[threadIdx.x] = make_ulonglong2(0ULL, 0ULL);
}
/* a block of 256 threads clears 8 pages, each thread one 16-byte slot of each */
extern "C" __global__ void block8(u64 *pool, const i64 *cmd, i64 total) {
    i64 e0 = (i64)blockIdx.x * 8;
    ulonglong2 z = make_ulonglong2(0ULL, 0ULL);
#pragma unroll
    for (int k = 0; k < 8; k++) {
        i64 e = e0 + k;
        if (e < total) ((ulonglong2 *)(pool + (cmd[e] >> PS) * W))[threadIdx.x] = z;
    }
}
/* grid-stride: a fixed grid, each warp loops over pages */
extern "C" __global__ void stride(u64 *pool, const i64 *cmd, i64 total) {
    i64 nw = (i64)gridDim.x * (blockDim.x / 32);
    ulonglong2 z = make_ulonglong2(0ULL, 0ULL);
    for (i64 e = (i64)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; e < total; e += nw) {
        ulonglong2 *p = (ulonglong2 *)(pool + (cmd[e] >> PS) * W);
#pragma unroll
        for (int w = threadIdx.x % 32; w < W / 2; w += 32) p[w] = z;
    }
}
"""


def main():
    npool = pool_pages()  # a bad POOL_PAGES is refused on any machine, GPU or not
    try:
        import cupy as cp
        cp.cuda.runtime.getDeviceCount()
    except Exception as exc:
        print(f"no GPU ({type(exc).__name__}): nothing measured")
        return 0
    from kernels import cupy_backend as b
    props = cp.cuda.runtime.getDeviceProperties(0)
    sms = props["multiProcessorCount"]
    print(f"{props['name'].decode()}, {sms} SMs, pool {npool * 4 >> 10} MiB")
    mod = cp.RawModule(code=VARIANTS)
    pool = b.alloc_pool(npool)
    rng = np.random.default_rng(0)
    perm = cp.asarray(rng.permutation(npool).astype(np.int64) << PFN_SHIFT)
    ev0, ev1 = cp.cuda.Event(), cp.cuda.Event()

    def timed(fn):
        ev0.record()
        fn()
        ev1.record()
        ev1.synchronize()
        return cp.cuda.get_elapsed_time(ev0, ev1) * 1e-3

    for n in (16384, 65536, 262144):
        batches = npool // n

        def memset():
            for i in range(batches):
                cp.cuda.runtime.memsetAsync(pool.data.ptr + i * n * 4096, 0, n * 4096, 0)

        def launcher(name, warps=8, grid=None):
            f = mod.get_function(name)
            tpb = 256 if name in ("block", "block8") else warps * LANES
            blocks = (grid or (n if name == "block" else
                               (n + 7) // 8 if name == "block8" else (n + warps - 1) // warps),)

            def run():
                for i in range(batches):
                    f(blocks, (tpb,), (pool, perm[i * n:(i + 1) * n], np.int64(n)))
            return run
        variants = {
            "warp (8 warps a block)": launcher("warp"),
            "warp (16 warps a block)": launcher("warp", 16),
            "warp, streaming stores": launcher("warp_cs"),
            "block of 256 a page": launcher("block"),
            "block of 256, 8 pages": launcher("block8"),
            "grid-stride, 16 blocks an SM": launcher("stride", 8, 16 * sms),
        }
        best = {k: np.inf for k in variants}
        best["memset"] = np.inf
        for _ in range(REPS):
            best["memset"] = min(best["memset"], timed(memset))
            for k, fn in variants.items():
                best[k] = min(best[k], timed(fn))
        gbs = npool * 4096 / best["memset"] / 1e9
        print(f"n={n:7d}: memset {best['memset'] / batches * 1e6:7.1f} us a batch ({gbs:.0f} GB/s)")
        for k in variants:
            print(f"    {k:32s} {best[k] / batches * 1e6:7.1f} us  "
                  f"{best['memset'] / best[k]:.3f} of memset")

    # host side of one clear batch of n order-0 rows, piece by piece (best of many)
    rt = cp.cuda.runtime
    for n in (16384, 65536):
        st = b._state(pool).staging
        pfn = (rng.permutation(npool)[:n]).astype(np.int64)
        args = (np.full(n, CLEAR, np.uint8), pfn, np.zeros(n, np.int64), np.zeros(n, np.int64))
        t = {k: [] for k in ("pack", "memcpyAsync", "record", "wait_event", "launch",
                             "record done", "synchronize", "submit+collect")}
        for _ in range(200):
            slot = st.slots.next(n)
            c0 = time.perf_counter()
            packed = Packed(*args, slot.host)
            c1 = time.perf_counter()
            rt.memcpyAsync(slot.dev_ptr, slot.host_ptr, n * 8, rt.memcpyHostToDevice,
                           st.copy.ptr)
            c2 = time.perf_counter()
            slot.copied.record(st.copy)
            c3 = time.perf_counter()
            st.compute.wait_event(slot.copied)
            c4 = time.perf_counter()
            b._launch("clear_pages", packed.total, CLEAR_THREADS, st.compute, (pool, slot.dev, np.int64(n), np.int32(0),
                                   np.int64(packed.total)))
            c5 = time.perf_counter()
            slot.done.record(st.compute)
            c6 = time.perf_counter()
            slot.done.synchronize()
            c7 = time.perf_counter()
            slot.busy = False
            for k, a, z in (("pack", c0, c1), ("memcpyAsync", c1, c2), ("record", c2, c3),
                            ("wait_event", c3, c4), ("launch", c4, c5), ("record done", c5, c6),
                            ("synchronize", c6, c7)):
                t[k].append(z - a)
            c8 = time.perf_counter()
            b.collect(b.submit(pool, *args))
            t["submit+collect"].append(time.perf_counter() - c8)
        print(f"host side of a {n}-row clear batch, {'direct' if b.DIRECT else 'CuPy'} launches (median of 200, us): " + ", ".join(
            f"{k} {np.median(v) * 1e6:.1f}" for k, v in t.items()))
    return 0


if __name__ == "__main__":
    OneLineParser(description=__doc__).parse_args()  # --help; no options
    sys.exit(script_main(main))
