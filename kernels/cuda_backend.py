"""GPU backend: numba-cuda kernels over a device pool (tested in CI under NUMBA_ENABLE_CUDASIM=1).

The scheme of ``device_batch.py``: compact rows to the device (pinned staging, copies on one
stream), expansion to pages, per-page ordering and clear/dirty/verify there, three words a row
back. These kernels and ``device_batch.CUDA_SOURCE`` (CuPy) are the same algorithm; keep
them in step. Import is guarded: ``available()`` says whether a device (or the simulator) is
there, ``first_use()`` whether the kernels compile and run on it.
"""
import numpy as np

from .batch import CLEAR, DIRTY, LINE_WORDS, PAGE_WORDS, VERIFY, check_pool_size
from .device_batch import (CLEAR_THREADS, LANES, NO_PFN, PFN_SHIFT, START_PAGES, START_ROWS,
                           Packed, Slots, apply_by_submit, blocks, device_collect,
                           device_first_use)

name = "cuda"
DEVICE = "gpu"
if not hasattr(np, "row_stack"):
    # numba-cuda (0.30.4 and before) registers an overload of np.row_stack when it first
    # compiles, and numpy 2.5 removed that alias of vstack: without it every kernel fails
    # to compile. A function of its own, so vstack's overloads are not registered twice.
    def _row_stack(tup, **kwargs):
        return np.vstack(tup, **kwargs)
    np.row_stack = _row_stack
try:
    from numba import cuda
except ImportError:  # pragma: no cover - numba always ships a cuda module today
    cuda = None

import numba

SIM = bool(numba.config.ENABLE_CUDASIM)
#: Threads of the clear kernel's block, one block a page (the simulator runs every thread in
#: Python, so it gets a warp).
CLEAR_BLOCK = LANES if SIM else CLEAR_THREADS
#: Threads per block of the elementwise kernels.
THREADS = 32 if SIM else 256


def available():
    try:
        return cuda is not None and cuda.is_available()
    except Exception:
        return False


def describe():
    try:
        dev = cuda.get_current_device().name
        dev = dev.decode() if isinstance(dev, bytes) else str(dev)
    except Exception:
        dev = "unknown CUDA device"
    return f"{dev} (numba-cuda{', simulator' if SIM else ''})"


def cache_bytes():
    """The device's L2."""
    try:
        return int(cuda.get_current_device().L2_CACHE_SIZE)
    except Exception:
        return 64 << 20


def sync():
    cuda.synchronize()


def device_memory():
    try:
        free, _ = cuda.current_context().get_memory_info()
        return free
    except Exception:
        return None


if cuda is not None:
    @cuda.jit(device=True)
    def _row_of(rows, n, uorder, e):
        if uorder >= 0:
            return e >> uorder
        lo = 0
        hi = n
        while hi - lo > 1:  # last row with starts[row] <= e (starts = rows[n:2n+1])
            mid = (lo + hi) >> 1
            if rows[n + mid] <= e:
                lo = mid
            else:
                hi = mid
        return lo

    @cuda.jit(device=True)
    def _page_of(rows, n, uorder, row, e):
        first = (row << uorder) if uorder >= 0 else rows[n + row]
        return (rows[row] >> PFN_SHIFT) + e - first

    @cuda.jit
    def _clear_pages(pool, rows, n, uorder, total):
        """A batch of CLEAR rows: one block per page, no ordering needed."""
        e = cuda.blockIdx.x
        if e >= total:
            return
        base = _page_of(rows, n, uorder, _row_of(rows, n, uorder, e), e) * PAGE_WORDS
        for w in range(cuda.threadIdx.x, PAGE_WORDS, cuda.blockDim.x):
            pool[base + w] = 0

    @cuda.jit
    def _link_pages(rows, n, uorder, total, head, ent_row, nxt):
        """Entry e onto its page's list (any order: apply sorts by e)."""
        e = cuda.grid(1)
        if e >= total:
            return
        row = _row_of(rows, n, uorder, e)
        ent_row[e] = row
        nxt[e] = cuda.atomic.exch(head, _page_of(rows, n, uorder, row, e), np.int32(e))

    @cuda.jit
    def _apply_pages(pool, rows, n, uorder, total, head, ent_row, nxt, found, res):
        """One 32-thread block per entry; the page's head entry applies all its rows in order."""
        e = cuda.blockIdx.x
        if e >= total:
            return
        lane = cuda.threadIdx.x
        page = _page_of(rows, n, uorder, np.int64(ent_row[e]), e)
        if head[page] != e:
            return
        base = page * PAGE_WORDS
        first = cuda.shared.array(1, dtype=np.int32)
        prev = -1
        while True:
            cur = total  # the next entry of this page, in submission order
            j = e
            while j >= 0:
                if j > prev and j < cur:
                    cur = j
                j = nxt[j]
            if cur == total:
                break
            row = np.int64(ent_row[cur])
            op = rows[row] & 0xFF
            if op == CLEAR:
                for w in range(lane, PAGE_WORDS, LANES):
                    pool[base + w] = 0
            elif op == DIRTY:  # the first word of every cache line
                for w in range(lane, PAGE_WORDS, LANES):
                    if w % LINE_WORDS == 0:
                        pool[base + w] = rows[2 * n + 1 + row]  # its arg
            else:  # VERIFY
                if lane == 0:
                    first[0] = PAGE_WORDS
                cuda.syncthreads()
                mine = PAGE_WORDS
                val = np.uint64(0)
                for w in range(lane, PAGE_WORDS, LANES):
                    v = pool[base + w]
                    if v != 0 and mine == PAGE_WORDS:
                        mine = w
                        val = v
                if mine < PAGE_WORDS:
                    cuda.atomic.min(first, 0, np.int32(mine))
                cuda.syncthreads()
                if first[0] == PAGE_WORDS:
                    if lane == 0:
                        found[cur] = 0
                elif first[0] == mine:
                    found[cur] = val
                    cuda.atomic.add(res, row, 1)
                    cuda.atomic.min(res, n + row, page)
                cuda.syncthreads()
            prev = cur
        cuda.syncthreads()  # every lane has seen it owns the page before the head is reset
        if lane == 0:
            head[page] = -1

    @cuda.jit
    def _verify_markers(rows, n, uorder, ent_row, total, found, res):
        e = cuda.grid(1)
        if e >= total:
            return
        row = np.int64(ent_row[e])
        if (rows[row] & 0xFF) != VERIFY or found[e] == 0:
            return
        if res[n + row] == _page_of(rows, n, uorder, row, e):
            res[2 * n + row] = found[e]

    @cuda.jit
    def _init_results(res, n):
        i = cuda.grid(1)
        if i < 3 * n:
            res[i] = NO_PFN if n <= i < 2 * n else 0

    @cuda.jit
    def _fill(a, value):
        i = cuda.grid(1)
        if i < a.shape[0]:
            a[i] = value



def _event():
    return cuda.event() if SIM else cuda.event(timing=False)  # the simulator's takes no args


class _Slot:
    """One of the two staging buffers (as CuPy's): pinned rows and results, their device
    copies, and the events that say the copy is done and the device is done with them."""

    def __init__(self):
        self.cap = 0
        self.busy = False
        self.copied = _event()
        self.done = _event()

    def reserve(self, n):
        if n > self.cap:
            self.cap = max(n, 2 * self.cap, 1 << 12)
            rows = 3 * self.cap + 1  # cmd, starts (n + 1), arg
            self.host = cuda.pinned_array(rows, dtype=np.int64)
            self.dev = cuda.device_array(rows, dtype=np.int64)
            self.res_host = cuda.pinned_array(3 * self.cap, dtype=np.int64)
            self.res = cuda.device_array(3 * self.cap, dtype=np.int64)


class _Staging:
    """Streams, the two slots and the entry arrays, kept from pool to pool (as CuPy's): pinned
    memory takes milliseconds to allocate, which a run's timing would count."""

    def __init__(self):
        self.cap = 0
        self.copy = cuda.stream()
        self.compute = cuda.stream()
        self.slots = Slots(_Slot)
        for slot in self.slots.slots:
            slot.reserve(START_ROWS)
        self.entries(START_PAGES)

    def entries(self, total):
        if total > self.cap:
            self.compute.synchronize()  # old arrays may be in use by queued kernels
            self.cap = max(total, 2 * self.cap, 1024)
            self.ent_row = cuda.device_array(self.cap, dtype=np.int32)
            self.nxt = cuda.device_array(self.cap, dtype=np.int32)
            self.found = cuda.device_array(self.cap, dtype=np.uint64)
        return self.ent_row, self.nxt, self.found


class _Scratch:
    """Per-pool device state: the page list heads (all -1 between batches) and the
    process's staging."""

    def __init__(self, nr_pages):
        global _staging
        if _staging is None:
            _staging = _Staging()
        self.staging = _staging
        self.head = cuda.device_array(nr_pages, dtype=np.int32)
        _fill[blocks(nr_pages, THREADS), THREADS](self.head, -1)
        cuda.synchronize()


_staging = None
_scratch = {}


def _state(pool):
    key = id(pool)
    st = _scratch.get(key)
    if st is None or st[0] is not pool:
        _scratch.clear()  # one pool at a time keeps its state
        st = _scratch[key] = (pool, _Scratch(pool.shape[0] // PAGE_WORDS))
    return st[1]


def alloc_pool(nr_pages):
    check_pool_size(nr_pages, device_memory(), "the GPU")
    pool = cuda.device_array(nr_pages * PAGE_WORDS, dtype=np.uint64)
    memset(pool)
    _state(pool)  # here, not in a run's first batch
    return pool


def to_host(pool):
    cuda.synchronize()
    return pool.copy_to_host()


def from_host(host):
    return cuda.to_device(host)


def memset(pool):
    """The device's own memset (cuMemsetD8Async on the default stream), the baseline; a fill
    kernel under the simulator, which has no driver."""
    if SIM:
        _fill[blocks(pool.shape[0], 1024), 1024](pool, np.uint64(0))
    else:
        from numba.cuda.cudadrv import driver
        driver.device_memset(pool, 0, pool.nbytes, stream=cuda.default_stream())


def submit(pool, op, pfn, order, arg):
    """Queue the batch on the device and return at once; ``collect`` gives its results.
    The rows are packed into a pinned slot and copied on the copy stream; the kernels run on
    the compute stream once that copy is done."""
    if len(op) == 0:
        return Packed(op, pfn, order, arg), None, None
    st = _state(pool)
    sg = st.staging
    slot = sg.slots.next(len(op))
    packed = Packed(op, pfn, order, arg, slot.host)
    n, total, uo = packed.n, packed.total, packed.uorder
    copy, s = sg.copy, sg.compute
    nrows = n + (n + 1 if uo < 0 else 0)  # cmd and starts are adjacent
    slot.dev[:nrows].copy_to_device(slot.host[:nrows], stream=copy)
    if packed.has_dirty:
        slot.dev[2 * n + 1:3 * n + 1].copy_to_device(slot.host[2 * n + 1:3 * n + 1], stream=copy)
    slot.copied.record(copy)
    slot.copied.wait(s)
    rows, pending = slot.dev, None  # whole arrays: a slice is a new device array each time
    if packed.clear_only:
        _clear_pages[total, CLEAR_BLOCK, s](pool, rows, n, uo, total)
    else:
        ent_row, nxt, found = sg.entries(total)
        res = slot.res
        _init_results[blocks(3 * n, THREADS), THREADS, s](res, n)
        _link_pages[blocks(total, THREADS), THREADS, s](rows, n, uo, total, st.head, ent_row,
                                                          nxt)
        _apply_pages[total, LANES, s](pool, rows, n, uo, total, st.head, ent_row, nxt, found,
                                      res)
        if packed.has_verify:
            _verify_markers[blocks(total, THREADS), THREADS, s](rows, n, uo, ent_row, total,
                                                                  found, res)
            pending = slot.res_host[:3 * n]
            res[:3 * n].copy_to_host(pending, stream=s)
    slot.done.record(s)
    slot.busy = True
    return packed, slot, pending


collect = device_collect


def apply(pool, op, pfn, order, arg):
    """The whole batch: submitted, then waited for."""
    return apply_by_submit(submit, collect, pool, op, pfn, order, arg)


def first_use():
    """None if the kernels compile and run here, else the reason (a compile or driver error,
    e.g. a numba-cuda that does not work with the installed numpy)."""
    return device_first_use(alloc_pool, apply)
