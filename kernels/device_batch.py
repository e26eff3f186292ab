"""The command scheme the GPU backends share (``cuda`` and ``cupy``): compact rows go to the
device, everything per page happens there.

Host side (per row, never per page): each row becomes one int64 ``cmd`` word
(``pfn << 16 | order << 8 | op``), plus ``arg`` only when the batch has a DIRTY row and the
rows' first-page offsets ``starts`` (exclusive prefix sum of block sizes) only when the rows'
orders differ (with one order, row ``e >> order`` holds entry ``e``). These go to the device
from pinned memory by asynchronous copies.

Device side, two ways:

- ``clear``: a batch of CLEAR rows only (the offload zeroer's batches, the benchmark) needs no
  ordering, since clearing twice is clearing once: one warp per page, 16-byte stores.
- ``ordered``: anything else. ``link`` expands rows to page entries (entry ``e`` is page
  ``pfn + e - starts[row]`` of row ``row``) and pushes each entry on its page's list
  (``head[page]``, ``nxt[e]``: an atomic exchange, so the list comes out in any order).
  ``apply`` gives each page one 32-thread block, started by the entry that ended up at the
  head; it walks the list taking entries in increasing ``e`` (the submission order, since
  entries are numbered row by row) and applies each row's operation to the page; it then
  resets ``head[page]`` for the next batch. Lane ``l`` owns words ``l, l + 32, ...`` of the
  page for every operation (clear, markers, verify), so only the verify's "first non-zero
  word" needs a barrier. ``markers`` turns per-entry findings into the per-row results
  (pages not zero, first such pfn, its first non-zero word), which come back as 3 words a row.
"""
import numpy as np
from numba import njit

from .batch import CLEAR, DIRTY, LINE_WORDS, PAGE_WORDS, VERIFY, new_results

#: Bits of ``cmd`` below the pfn.
PFN_SHIFT = 16
#: Warps per block of the clear kernel on a real device (the simulator runs one).
CLEAR_WARPS = 8
LANES = 32
#: ``bad`` before any page was found (the device takes the minimum pfn).
NO_PFN = np.iinfo(np.int64).max


@njit(cache=True)
def _pack(op, pfn, order, arg, buf):
    """Rows into ``buf`` (cmd, then starts if orders differ, then arg if any DIRTY), in
    compiled code: the host's per-batch work must stay below the device's. Returns
    (uniform order or -1, pages, clear only, has DIRTY, has VERIFY, bad op)."""
    n = len(op)
    lo, hi = 64, -1
    clear_only, has_dirty, has_verify, bad = n > 0, False, False, False
    for i in range(n):
        o = np.int64(order[i])
        lo = min(lo, o)
        hi = max(hi, o)
        k = op[i]
        if k < CLEAR or k > DIRTY:
            bad = True
        clear_only &= k == CLEAR
        has_dirty |= k == DIRTY
        has_verify |= k == VERIFY
        buf[i] = (np.int64(pfn[i]) << PFN_SHIFT) | (o << 8) | np.int64(k)
    uorder = lo if lo == hi else -1
    total = np.int64(n) << lo if uorder >= 0 else np.int64(0)
    if uorder < 0 and n:
        buf[n] = 0
        for i in range(n):
            total += np.int64(1) << np.int64(order[i])
            buf[n + 1 + i] = total
    if has_dirty:
        for i in range(n):
            buf[2 * n + 1 + i] = arg[i]
    return uorder, total, clear_only, has_dirty, has_verify, bad


class Packed:
    """One batch as the device wants it, packed into ``buf`` (3 n + 1 int64: a pinned staging
    buffer, or a new array). ``total`` is the number of page entries."""

    __slots__ = ("n", "buf", "uorder", "total", "clear_only", "has_dirty", "has_verify")

    def __init__(self, op, pfn, order, arg, buf=None):
        n = self.n = len(op)
        if buf is None:
            buf = np.empty(3 * n + 1, dtype=np.int64)
        self.buf = buf
        (self.uorder, self.total, self.clear_only, self.has_dirty, self.has_verify,
         bad) = _pack(np.asarray(op, dtype=np.uint8), np.asarray(pfn, dtype=np.int64),
                      np.asarray(order, dtype=np.int64), np.asarray(arg, dtype=np.int64), buf)
        if bad:
            raise ValueError("unknown operation in batch")
        if self.total >= 1 << 31:
            raise ValueError(f"a batch of {self.total} pages is too large for one launch "
                             "(entries are int32)")

    @property
    def cmd(self):
        return self.buf[:self.n]

    @property
    def starts(self):
        return self.buf[self.n:2 * self.n + 1] if self.uorder < 0 else None

    @property
    def arg(self):
        return self.buf[2 * self.n + 1:3 * self.n + 1] if self.has_dirty else None


def results_from(packed, res):
    """Per-row results from the device's ``res`` (3 x n int64: nonzero, bad, marker)."""
    if not packed.has_verify:
        return new_results(packed.n)
    n = packed.n
    nonzero = res[:n].copy()
    bad = res[n:2 * n].copy()
    bad[bad == NO_PFN] = -1
    marker = res[2 * n:3 * n].copy()
    return nonzero, bad, marker


# The CUDA C of the same kernels, for CuPy (the numba-cuda ones are in cuda_backend.py and
# run in CI under the simulator; keep the two in step).
CUDA_SOURCE = r"""
#define W %(W)d
#define LINE %(LINE)d
#define LANES 32
#define PFN_SHIFT %(PFN_SHIFT)d
typedef long long i64;
typedef unsigned long long u64;

__device__ __forceinline__ i64 row_of(const i64 *starts, i64 n, int uorder, i64 e) {
    if (uorder >= 0) return e >> uorder;
    i64 lo = 0, hi = n;                 /* last row with starts[row] <= e */
    while (hi - lo > 1) {
        i64 mid = (lo + hi) >> 1;
        if (starts[mid] <= e) lo = mid; else hi = mid;
    }
    return lo;
}

__device__ __forceinline__ i64 page_of(const i64 *cmd, const i64 *starts, int uorder, i64 row,
                                       i64 e) {
    i64 first = uorder >= 0 ? (row << uorder) : starts[row];
    return (cmd[row] >> PFN_SHIFT) + e - first;
}

extern "C" __global__ void clear_pages(u64 *pool, const i64 *cmd, const i64 *starts, i64 n,
                                       int uorder, i64 total) {
    i64 e = (i64)blockIdx.x * (blockDim.x / LANES) + threadIdx.x / LANES;
    if (e >= total) return;
    int lane = threadIdx.x %% LANES;
    i64 row = row_of(starts, n, uorder, e);
    ulonglong2 *p = (ulonglong2 *)(pool + page_of(cmd, starts, uorder, row, e) * W);
    ulonglong2 z = make_ulonglong2(0ULL, 0ULL);
#pragma unroll
    for (int w = lane; w < W / 2; w += LANES) p[w] = z;
}

extern "C" __global__ void link_pages(const i64 *cmd, const i64 *starts, i64 n, int uorder,
                                      i64 total, int *head, int *ent_row, int *nxt) {
    i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= total) return;
    i64 row = row_of(starts, n, uorder, e);
    ent_row[e] = (int)row;
    nxt[e] = atomicExch(&head[page_of(cmd, starts, uorder, row, e)], (int)e);
}

extern "C" __global__ void apply_pages(u64 *pool, const i64 *cmd, const i64 *starts,
                                       const i64 *arg, int uorder, i64 total, int *head,
                                       const int *ent_row, const int *nxt, u64 *found,
                                       i64 *res, i64 n) {
    i64 e = blockIdx.x;                 /* one 32-thread block per entry; the head owns */
    if (e >= total) return;
    int lane = threadIdx.x;
    i64 page = page_of(cmd, starts, uorder, ent_row[e], e);
    if (head[page] != (int)e) return;
    u64 *p = pool + page * W;
    __shared__ int first;
    i64 prev = -1;
    for (;;) {
        i64 cur = total;                /* the next entry of this page, in submission order */
        for (i64 j = e; j >= 0; j = nxt[j])
            if (j > prev && j < cur) cur = j;
        if (cur == total) break;
        i64 row = ent_row[cur];
        int op = (int)(cmd[row] & 0xff);
        if (op == 1) {                  /* CLEAR */
            for (int w = lane; w < W; w += LANES) p[w] = 0;
        } else if (op == 3) {           /* DIRTY: the first word of every line */
            u64 a = (u64)arg[row];
            for (int w = lane; w < W; w += LANES) if (w %% LINE == 0) p[w] = a;
        } else {                        /* VERIFY */
            if (lane == 0) first = W;
            __syncthreads();
            int mine = W;
            u64 val = 0;
            for (int w = lane; w < W; w += LANES) {
                u64 v = p[w];
                if (v != 0 && mine == W) { mine = w; val = v; }
            }
            if (mine < W) atomicMin(&first, mine);
            __syncthreads();
            if (first == W) {
                if (lane == 0) found[cur] = 0;
            } else if (first == mine) {
                found[cur] = val;
                atomicAdd((u64 *)&res[row], 1ULL);
                atomicMin(&res[n + row], page);
            }
            __syncthreads();
        }
        prev = cur;
    }
    __syncthreads();                    /* every lane has seen it owns the page */
    if (lane == 0) head[page] = -1;
}

extern "C" __global__ void verify_markers(const i64 *cmd, const i64 *starts, int uorder,
                                          const int *ent_row, i64 total, const u64 *found,
                                          i64 *res, i64 n) {
    i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= total) return;
    i64 row = ent_row[e];
    if ((cmd[row] & 0xff) != 2 || found[e] == 0) return;
    if (res[n + row] == page_of(cmd, starts, uorder, row, e)) res[2 * n + row] = (i64)found[e];
}
""" % {"W": PAGE_WORDS, "LINE": LINE_WORDS, "PFN_SHIFT": PFN_SHIFT}
