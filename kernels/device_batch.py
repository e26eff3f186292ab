"""The command scheme the GPU backends share (``cuda`` and ``cupy``): compact rows go to the
device, everything per page happens there.

Host side (per row, never per page): each row becomes one int64 ``cmd`` word
(``pfn << 16 | order << 8 | op``), plus ``arg`` only when the batch has a DIRTY row and the
rows' first-page offsets ``starts`` (exclusive prefix sum of block sizes) only when the rows'
orders differ (with one order, row ``e >> order`` holds entry ``e``), written in one pass
straight into the pinned staging buffer (for large batches on as many host threads as
measured fastest, ``PackChoice``). These go to the device by asynchronous copies. Per-row results come back
only for batches with VERIFY rows; others are collected with no per-row work.

Device side, two ways:

- ``clear``: a batch of CLEAR rows only (the offload zeroer's batches, the benchmark) needs no
  ordering, since clearing twice is clearing once: one block of 256 threads per page, a
  16-byte store each.
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
import time

import numpy as np
from numba import config, get_num_threads, njit, prange, set_num_threads

from .batch import CLEAR, DIRTY, LINE_WORDS, PAGE_WORDS, VERIFY, new_results

#: Bits of ``cmd`` below the pfn.
PFN_SHIFT = 16
#: Threads of the clear kernel's block, one block a page (256: one 16-byte store a thread).
#: Of the shapes `experiments/gpu_clear_variants.py` tried on an H100 (2026-11-26) it came
#: nearest the device memset: 0.91-0.92 against 0.87-0.88 for a warp a page.
CLEAR_THREADS = 256
LANES = 32
#: ``bad`` before any page was found (the device takes the minimum pfn).
NO_PFN = np.iinfo(np.int64).max
#: Rows from which the host may pack a batch on several threads (``PackChoice``): below,
#: starting a parallel region costs about what it saves (16K rows are ~10 us on one core).
PARALLEL_ROWS = 1 << 14
#: Rows a GPU backend's staging slot holds from the start (the engine's command buffer holds
#: 64K and a reserve), and page entries its ordered kernels have room for; both grow as
#: batches need.
START_ROWS = 1 << 17
START_PAGES = 1 << 20
#: The most threads numba can run a parallel region on in this process.
MAX_THREADS = config.NUMBA_NUM_THREADS


@njit(cache=True, inline="always")
def _pack_rows(op, pfn, order, buf):
    """cmd words of the rows given (slices: a loop from 0 is one LLVM vectorises, one from a
    variable start is 5x slower); (min order, max order, op kinds seen as bits, pages)."""
    lo, hi, kinds, pages = 64, -1, 0, np.int64(0)
    for i in range(len(op)):
        o = np.int64(order[i])
        k = np.int64(op[i])
        lo = min(lo, o)
        hi = max(hi, o)
        kinds |= (1 << k) if CLEAR <= k <= DIRTY else 1
        pages += np.int64(1) << o
        buf[i] = (np.int64(pfn[i]) << PFN_SHIFT) | (o << 8) | k
    return lo, hi, kinds, pages


@njit(cache=True, inline="always")
def _page_starts(order, starts, first):
    """Exclusive scan of the rows' page counts from ``first``: where each row's pages start
    in the expanded batch; returns the end."""
    run = first
    for i in range(len(order)):
        starts[i] = run
        run += np.int64(1) << np.int64(order[i])
    return run


@njit(cache=True)
def _pack_serial(op, pfn, order, arg, buf):
    """One thread: about 0.6-1 ns a row on a server core (it streams cmd, pfn and order
    through memory), as long as the device takes for an order-0 row at 4 TB/s."""
    n = len(op)
    lo, hi, kind, pages = _pack_rows(op, pfn, order, buf[:n])
    if lo != hi:
        buf[2 * n] = _page_starts(order, buf[n:2 * n], np.int64(0))
    if kind & (1 << DIRTY):
        for i in range(n):
            buf[2 * n + 1 + i] = arg[i]
    return lo, hi, kind, pages


@njit(cache=True, parallel=True)
def _pack_parallel(op, pfn, order, arg, buf, nchunks):
    """``_pack_serial`` on all the host's threads: row ranges packed in parallel, then their
    page counts scanned (per range) for ``starts``. Same words, same summary."""
    n = len(op)
    step = (n + nchunks - 1) // nchunks
    stats = np.empty((nchunks, 4), dtype=np.int64)
    for c in prange(nchunks):
        a = min(n, np.int64(c) * step)
        b = min(n, a + step)
        clo, chi, ckind, cpages = _pack_rows(op[a:b], pfn[a:b], order[a:b], buf[a:b])
        stats[c, 0] = clo
        stats[c, 1] = chi
        stats[c, 2] = ckind
        stats[c, 3] = cpages
    lo, hi, kind, pages = np.int64(64), np.int64(-1), np.int64(0), np.int64(0)
    for c in range(nchunks):
        lo = min(lo, stats[c, 0])
        hi = max(hi, stats[c, 1])
        kind |= stats[c, 2]
        pages += stats[c, 3]
    if lo != hi:
        first = np.empty(nchunks, dtype=np.int64)  # exclusive scan of the ranges' pages
        run = np.int64(0)
        for c in range(nchunks):
            first[c] = run
            run += stats[c, 3]
        for c in prange(nchunks):
            sa = min(n, np.int64(c) * step)
            sb = min(n, sa + step)
            _page_starts(order[sa:sb], buf[n + sa:n + sb], first[c])
        buf[2 * n] = pages
    if kind & (1 << DIRTY):
        for i in prange(n):
            buf[2 * n + 1 + i] = arg[i]
    return lo, hi, kind, pages


class PackChoice:
    """How many host threads pack a batch (1: serial), by measurement: a parallel region's
    start costs from a few microseconds (OpenMP, idle cores) to milliseconds (cores shared
    with other processes), and grows with the threads it wakes. For each size class (the
    rows' bit length) each candidate (1, then powers of two up to all threads) packs
    ``TRIALS`` batches in a row, the first paying for the change of thread count (taking
    the candidates in turn, every trial paid for it: on the H200 machine 16 threads timed
    354 us a 16K-row batch against 30 serially, where 8 threads ran a stream of them
    faster than 1); later batches take the fastest (best time of each). On the H100
    machine's 16 cores (2026-11-27, OpenMP) a stream of 16K-row clear batches ran at 0.59
    of the device memset packed serially, 0.66 / 0.72 / 0.71 / 0.67 on 2 / 4 / 8 / 16
    threads."""

    TRIALS = 3

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.best = {}  # bit length -> {threads: best seconds}, trials so far
        self.decided = {}  # (bit length, threads there are) -> threads; per batch: 1 us

    @staticmethod
    def candidates(most=None):
        most = get_num_threads() if most is None else most
        out = [1]
        while out[-1] * 2 < most:
            out.append(out[-1] * 2)
        return out + [most] if most > 1 else out

    def threads(self, n):
        """Threads to pack n rows on (1: serial), and whether to time it (a trial)."""
        if n < PARALLEL_ROWS:
            return 1, False
        most = get_num_threads()
        key = (n.bit_length(), most)
        k = self.decided.get(key)
        if k is not None:
            return k, False
        if most < 2:
            return 1, False
        cands = self.candidates(most)
        b = self.best.get(key[0])
        tried = 0 if b is None else b[1]
        if tried < self.TRIALS * len(cands):
            return cands[tried // self.TRIALS], True
        times = b[0]
        k = self.decided[key] = min(cands, key=lambda c: times.get(c, np.inf))
        return k, False

    def record(self, n, threads, seconds):
        b = self.best.setdefault(n.bit_length(), [{}, 0])
        b[0][threads] = min(b[0].get(threads, np.inf), seconds)
        b[1] += 1

    def describe(self):
        """The best time of each candidate per size class, for benchmark logs."""
        return ", ".join(f"<{1 << bits} rows " + " ".join(
            f"{k}t {t * 1e6:.1f} us" for k, t in sorted(times.items()))
            for bits, (times, _) in sorted(self.best.items()))


CHOICE = PackChoice()


def rows_of(op, pfn, order, arg):
    """A batch's columns in the dtypes the packing takes (no copy when they already are)."""
    return (np.asarray(op, dtype=np.uint8), np.asarray(pfn, dtype=np.int64),
            np.asarray(order, dtype=np.int64), np.asarray(arg, dtype=np.int64))


def _pack(op, pfn, order, arg, buf):
    """Rows into ``buf``: cmd, then starts (n + 1) if orders differ, then arg if any DIRTY.
    Returns ``_pack_serial``'s summary (min order, max order, op kinds as bits, pages)."""
    n = len(op)
    threads, trial = CHOICE.threads(n)
    t = CHOICE.clock() if trial else 0.0
    if threads > 1:
        most = get_num_threads()
        set_num_threads(threads)
        try:
            summary = _pack_parallel(op, pfn, order, arg, buf, 4 * threads)
        finally:
            set_num_threads(most)
    else:
        summary = _pack_serial(op, pfn, order, arg, buf)
    if trial:
        CHOICE.record(n, threads, CHOICE.clock() - t)
    return summary


class Packed:
    """One batch as the device wants it, packed into ``buf`` (3 n + 1 int64: a pinned staging
    buffer, or a new array). ``total`` is the number of page entries."""

    __slots__ = ("n", "buf", "uorder", "total", "clear_only", "has_dirty", "has_verify")

    def __init__(self, op, pfn, order, arg, buf=None, summary=None):
        """``summary``: the rows are in ``buf`` already, packed by a compiled submitter that
        returned this (``_pack_serial``'s four values)."""
        n = self.n = len(op)
        if buf is None:
            buf = np.empty(3 * n + 1, dtype=np.int64)
        self.buf = buf
        lo, hi, kind, pages = summary if summary is not None else _pack(*rows_of(op, pfn, order,
                                                                                arg), buf)
        self.uorder = int(lo) if lo == hi else -1
        self.total = int(pages)
        self.clear_only = n > 0 and kind == 1 << CLEAR
        self.has_dirty = bool(kind & (1 << DIRTY))
        self.has_verify = bool(kind & (1 << VERIFY))
        if kind & 1:
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


#: The CUDA C kernels (CUDA_SOURCE), in the order the compiled submitter takes their
#: CUfunctions.
KERNELS = ("clear_pages", "init_results", "link_pages", "apply_pages_warp", "verify_markers")
#: Threads of a block of the CUDA C ordered kernels (a thread an entry), and warps of a block
#: of ``apply_pages_warp`` (a warp an entry).
THREADS = 256
APPLY_WARPS = 8
#: Words of the pointer arrays the compiled submitter takes: a staging slot's (its device
#: rows, device and pinned results, its two events), the staging's (the two streams, the
#: entry arrays and how many entries they hold) and a pool's (its words, its list heads).
S_DEV, S_RES, S_RES_HOST, S_COPIED, S_DONE, NR_SLOT_PTRS = range(6)
G_COPY, G_COMPUTE, G_ENT_ROW, G_NXT, G_FOUND, G_ENT_CAP, NR_STAGE_PTRS = range(7)
P_POOL, P_HEAD, NR_POOL_PTRS = range(3)


def ordered_launches(n, uorder, total, has_verify, pool, rows, head, ent_row, nxt, found, res):
    """The CUDA C kernels of a batch that is not all clears, in order, as (kernel, blocks,
    threads a block, arguments): the CuPy backend's Python path launches these, and the
    compiled submitter makes the same launches (tested against this list)."""
    out = [("init_results", blocks(3 * n, THREADS), THREADS, (res, n)),
           ("link_pages", blocks(total, THREADS), THREADS,
            (rows, n, uorder, total, head, ent_row, nxt)),
           ("apply_pages_warp", blocks(total, APPLY_WARPS), APPLY_WARPS * LANES,
            (pool, rows, n, uorder, total, head, ent_row, nxt, found, res))]
    if has_verify:
        out.append(("verify_markers", blocks(total, THREADS), THREADS,
                    (rows, n, uorder, ent_row, total, found, res)))
    return out


def make_submitter(memcpy_htod, memcpy_dtoh, event_record, stream_wait_event, launch_kernel):
    """A compiled ``submit`` over the CUDA driver functions given (ctypes functions of
    ``cuMemcpyHtoDAsync``, ``cuMemcpyDtoHAsync``, ``cuEventRecord``, ``cuStreamWaitEvent``
    and ``cuLaunchKernel``, every handle and pointer an unsigned 64-bit integer). One call
    from Python where there were six to eleven, each 0.5-8 us of the host's time on the H100
    machine (a batch of 16K pages takes that device 25 us):

    - packs the rows into the pinned ``buf`` (``_pack_serial``; ``threads`` > 1: on that
      many threads, as ``_pack_parallel``);
    - copies cmd (and starts when orders differ, arg when a row is DIRTY) to the slot's
      device rows on the copy stream, and has the compute stream wait for the copy;
    - launches the kernels, their arguments written into ``values``, whose slots ``argv``
      points to: for a batch of clears the clear kernel (one block of CLEAR_THREADS a page),
      else, when ``ordered``, those of ``ordered_launches``, and for a batch with VERIFY rows
      copies the results back into the slot's pinned words;
    - records the slot's ``done`` event.

    ``slot``, ``stage``, ``pool``: the pointer arrays (S_*, G_*, P_*); ``fns``: the
    CUfunctions of KERNELS. A batch it does not launch (not all clears and not ``ordered``,
    more entries than the staging holds, an unknown operation, too many pages) is packed
    and nothing is asked of the driver: the caller goes on with it. Returns
    ``_pack_serial``'s summary and a status: 1 launched, 0 not launched, -code on a driver
    error (nothing is asked after it)."""

    @njit
    def launch(function, grid, block, stream, values, argv, args):
        """``function`` with ``args`` (int64s) in the argument slots. An int argument
        (uorder) is read from its slot's low 4 bytes."""
        for k in range(len(args)):
            values[k] = args[k]
        return launch_kernel(function, grid, 1, 1, block, 1, 1, 0, stream, argv, 0)

    @njit
    def submit(op, pfn, order, arg, buf, threads, ordered, slot, stage, pool, fns, values,
               argv):
        n = len(op)
        if threads > 1:
            most = get_num_threads()
            set_num_threads(min(threads, MAX_THREADS))
            lo, hi, kind, pages = _pack_parallel(op, pfn, order, arg, buf, 4 * threads)
            set_num_threads(most)
        else:
            lo, hi, kind, pages = _pack_serial(op, pfn, order, arg, buf)
        clear_only = kind == (1 << CLEAR)
        if n == 0 or kind & 1 or pages >= (1 << 31):
            return lo, hi, kind, pages, 0
        if not clear_only and (not ordered or pages > stage[G_ENT_CAP]):
            return lo, hi, kind, pages, 0
        uorder = lo if lo == hi else -1
        nrows = n + (n + 1 if uorder < 0 else 0)  # cmd and starts are adjacent
        dev, copy, compute = slot[S_DEV], stage[G_COPY], stage[G_COMPUTE]
        err = memcpy_htod(dev, buf.ctypes.data, nrows * 8, copy)
        if err == 0 and kind & (1 << DIRTY):
            off = (2 * n + 1) * 8
            err = memcpy_htod(dev + off, buf.ctypes.data + off, n * 8, copy)
        if err == 0:
            err = event_record(slot[S_COPIED], copy)
        if err == 0:
            err = stream_wait_event(compute, slot[S_COPIED], 0)
        if clear_only:
            if err == 0:
                err = launch(fns[0], pages, CLEAR_THREADS, compute, values, argv,
                             (pool[P_POOL], dev, n, uorder, pages))
        else:
            res, head = slot[S_RES], pool[P_HEAD]
            ent_row, nxt, found = stage[G_ENT_ROW], stage[G_NXT], stage[G_FOUND]
            if err == 0:
                err = launch(fns[1], blocks(3 * n, THREADS), THREADS, compute, values, argv,
                             (res, n))
            if err == 0:
                err = launch(fns[2], blocks(pages, THREADS), THREADS, compute, values, argv,
                             (dev, n, uorder, pages, head, ent_row, nxt))
            if err == 0:
                err = launch(fns[3], blocks(pages, APPLY_WARPS), APPLY_WARPS * LANES,
                             compute, values, argv, (pool[P_POOL], dev, n, uorder, pages,
                                                     head, ent_row, nxt, found, res))
            if err == 0 and kind & (1 << VERIFY):
                err = launch(fns[4], blocks(pages, THREADS), THREADS, compute, values, argv,
                             (dev, n, uorder, ent_row, pages, found, res))
                if err == 0:
                    err = memcpy_dtoh(slot[S_RES_HOST], res, 3 * n * 8, compute)
        if err == 0:
            err = event_record(slot[S_DONE], compute)
        return lo, hi, kind, pages, 1 if err == 0 else -err
    return submit


_NO_RESULTS = [new_results(0), 0, None]  # arrays; the last n and its views


def no_results(n):
    """The results of n rows none of which verified (all zero, bad -1): read-only views of
    arrays kept from one batch to the next, so a batch without VERIFY rows costs nothing
    per row when collected (callers only read results)."""
    cached, last, views = _NO_RESULTS
    if n == last and views is not None:
        return views
    if len(cached[0]) < n:
        cached = new_results(max(n, 2 * len(cached[0]), 1 << 12))
        for a in cached:
            a.flags.writeable = False
    views = tuple(a[:n] for a in cached)
    _NO_RESULTS[:] = cached, n, views
    return views


def results_from(packed, res):
    """Per-row results from ``res``, the device's 3 x n int64 (nonzero, bad, marker) in the
    batch's pinned slot: views, no copies (the engine counts them at once; the slot is
    taken again two submits later), ``bad`` turned from NO_PFN to -1 in place."""
    if not packed.has_verify:
        return no_results(packed.n)
    n = packed.n
    bad = res[n:2 * n]
    bad[bad == NO_PFN] = -1
    return res[:n], bad, res[2 * n:3 * n]


def apply_by_submit(submit, collect, pool, op, pfn, order, arg):
    """A GPU backend's ``apply``: the batch submitted and waited for; its results are copies,
    the caller's to keep (``collect`` gives views into a staging slot)."""
    return tuple(np.array(r) for r in collect(submit(pool, op, pfn, order, arg)))


@njit(cache=True)
def blocks(n, threads):
    """Blocks of ``threads`` that cover n items (at least one: a launch of none fails);
    compiled, as the compiled submitter calls it too."""
    return max(np.int64(1), (np.int64(n) + threads - 1) // threads)


class Slots:
    """The two staging slots of a GPU backend, used in turn (double buffering): a slot is
    taken again only once the batch before last, which used it, is done."""

    def __init__(self, make):
        self.slots = (make(), make())
        self.turn = 0

    def next(self, n):
        slot = self.slots[self.turn]
        self.turn ^= 1
        if slot.busy:
            slot.done.synchronize()
        slot.reserve(n)
        return slot


def device_collect(handle):
    """Wait for a submitted batch (``packed, slot, pending``); its per-row results: views of
    the pinned slot when it verified (valid until the backend's second submit after it),
    else shared read-only "nothing found" arrays."""
    packed, slot, pending = handle
    if slot is not None:
        slot.done.synchronize()
    if pending is None:
        return no_results(packed.n)
    return results_from(packed, pending)


class HostOnly:
    """A GPU backend's host work alone, as a backend: each batch is packed, as the GPU
    backends pack it, into one of two kept buffers, and nothing more happens (there is no
    pool; every page reads as zero). Content mode on it times what the host pays with a GPU
    backend whose device took no time: the least any GPU backend can take on this host
    (``experiments/cpu_vs_gpu.py``). ``batch_pages``: as the GPU backend's ``BATCH_PAGES``."""

    name = "host-only"
    DEVICE = "gpu"

    def __init__(self, batch_pages=None):
        if batch_pages is not None:
            self.BATCH_PAGES = batch_pages
        self.buffers = [np.empty(3 * START_ROWS + 1, np.int64) for _ in range(2)]
        for buf in self.buffers:
            buf.fill(0)  # touched here, as the pinned slots are
        self.turn = 0

    @staticmethod
    def describe():
        return "no device (the GPU backends' host work alone)"

    @staticmethod
    def alloc_pool(nr_pages):
        return np.zeros(0, np.uint64)

    @staticmethod
    def to_host(pool):
        """There are no pages to move (nothing here fails, so nothing falls back)."""
        raise RuntimeError("HostOnly has no pages to move")

    def submit(self, pool, op, pfn, order, arg):
        n = len(op)
        if 3 * n + 1 > len(self.buffers[self.turn]):
            self.buffers[self.turn] = np.empty(3 * n + 1, np.int64)
        packed = Packed(op, pfn, order, arg, self.buffers[self.turn])
        self.turn ^= 1
        return packed, None, None

    collect = staticmethod(device_collect)

    def apply(self, pool, op, pfn, order, arg):
        return device_collect(self.submit(pool, op, pfn, order, arg))


def device_first_use(alloc_pool, apply):
    """None if a GPU backend's kernels compile and give the right answer here, else the
    reason (a compile or driver error): two batches on a two-page pool."""
    try:
        pool = alloc_pool(2)
        apply(pool, np.array([DIRTY, VERIFY, CLEAR], np.uint8), np.zeros(3, np.int64),
              np.array([1, 1, 0]), np.array([5, 0, 0]))
        got = apply(pool, np.array([VERIFY], np.uint8), np.zeros(1, np.int64), np.ones(1),
                    np.zeros(1))
        if list(got[0]) != [1] or int(got[2][0]) != 5:
            return f"a test batch gave wrong results {got}"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    warm_packing()
    return None


def warm_packing():
    """Load the parallel packing and start numba's threads now: the first large batch would
    otherwise pay for both (about 10 ms with the code cached) inside a run's timing."""
    if get_num_threads() > 1:
        n = PARALLEL_ROWS
        rows = rows_of(np.full(n, CLEAR, np.uint8), np.arange(n), np.zeros(n), np.zeros(n))
        _pack_parallel(*rows, np.empty(3 * n + 1, np.int64), 4 * get_num_threads())


# The CUDA C of the same kernels, for CuPy (the numba-cuda ones are in cuda_backend.py and
# run in CI under the simulator; keep the two in step).
CUDA_SOURCE = r"""
#define W %(W)d
#define LINE %(LINE)d
#define LANES 32
#define PFN_SHIFT %(PFN_SHIFT)d
#define CLEAR %(CLEAR)d
#define VERIFY %(VERIFY)d
#define DIRTY %(DIRTY)d
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

/* rows: cmd (n), starts (n + 1, when orders differ), arg (n, when a DIRTY row) */
#define ROWS const i64 *cmd = rows, *starts = rows + n, *arg = rows + 2 * n + 1; (void)arg

extern "C" __global__ void clear_pages(u64 *pool, const i64 *rows, i64 n, int uorder,
                                       i64 total) {
    ROWS;
    i64 e = blockIdx.x;                 /* one block a page entry */
    if (e >= total) return;
    i64 row = row_of(starts, n, uorder, e);
    ulonglong2 *p = (ulonglong2 *)(pool + page_of(cmd, starts, uorder, row, e) * W);
    ulonglong2 z = make_ulonglong2(0ULL, 0ULL);
    for (int w = threadIdx.x; w < W / 2; w += blockDim.x) p[w] = z;
}

extern "C" __global__ void init_results(i64 *res, i64 n) {
    i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < 3 * n) res[i] = (i >= n && i < 2 * n) ? 0x7fffffffffffffffLL : 0LL;
}

extern "C" __global__ void link_pages(const i64 *rows, i64 n, int uorder, i64 total,
                                      int *head, int *ent_row, int *nxt) {
    ROWS;
    i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= total) return;
    i64 row = row_of(starts, n, uorder, e);
    ent_row[e] = (int)row;
    nxt[e] = atomicExch(&head[page_of(cmd, starts, uorder, row, e)], (int)e);
}

/* The next entry of the page after prev, in submission order (total if none). */
__device__ __forceinline__ i64 next_entry(const int *nxt, i64 e, i64 prev, i64 total) {
    i64 cur = total;
    for (i64 j = e; j >= 0; j = nxt[j])
        if (j > prev && j < cur) cur = j;
    return cur;
}

/* One warp per entry, several warps a block (full occupancy); the page's head entry owns
   it and applies its rows in order (the numba-cuda kernel does the same with a 32-thread
   block an entry). The verify's first non-zero word is a warp reduction (sm_80 and later):
   no shared memory, no barrier. */
extern "C" __global__ void apply_pages_warp(u64 *pool, const i64 *rows, i64 n, int uorder,
                                            i64 total, int *head, const int *ent_row,
                                            const int *nxt, u64 *found, i64 *res) {
    ROWS;
    i64 e = (i64)blockIdx.x * (blockDim.x / LANES) + threadIdx.x / LANES;
    if (e >= total) return;
    int lane = threadIdx.x %% LANES;
    i64 page = page_of(cmd, starts, uorder, ent_row[e], e);
    if (head[page] != (int)e) return;
    u64 *p = pool + page * W;
    for (i64 cur = next_entry(nxt, e, -1, total); cur < total;
         cur = next_entry(nxt, e, cur, total)) {
        i64 row = ent_row[cur];
        int op = (int)(cmd[row] & 0xff);
        if (op == CLEAR) {
            for (int w = lane; w < W; w += LANES) p[w] = 0;
        } else if (op == DIRTY) {
            u64 a = (u64)arg[row];
            for (int w = lane; w < W; w += LANES) if (w %% LINE == 0) p[w] = a;
        } else {
            int mine = W;
            u64 val = 0;
            for (int w = lane; w < W; w += LANES) {
                u64 v = p[w];
                if (v != 0 && mine == W) { mine = w; val = v; }
            }
            int first = (int)__reduce_min_sync(0xffffffffu, (unsigned)mine);
            if (first == W) {
                if (lane == 0) found[cur] = 0;
            } else if (first == mine) {
                found[cur] = val;
                atomicAdd((u64 *)&res[row], 1ULL);
                atomicMin(&res[n + row], page);
            }
        }
    }
    __syncwarp();                       /* every lane has seen it owns the page */
    if (lane == 0) head[page] = -1;
}

extern "C" __global__ void verify_markers(const i64 *rows, i64 n, int uorder,
                                          const int *ent_row, i64 total, const u64 *found,
                                          i64 *res) {
    ROWS;
    i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= total) return;
    i64 row = ent_row[e];
    if ((cmd[row] & 0xff) != VERIFY || found[e] == 0) return;
    if (res[n + row] == page_of(cmd, starts, uorder, row, e)) res[2 * n + row] = (i64)found[e];
}
""" % {"W": PAGE_WORDS, "LINE": LINE_WORDS, "PFN_SHIFT": PFN_SHIFT, "CLEAR": CLEAR,
       "VERIFY": VERIFY, "DIRTY": DIRTY}
