"""GPU backend: CuPy raw kernels over a device pool. Needs a real GPU (tests skip loudly).

The scheme of ``device_batch.py`` (the numba-cuda backend runs the same kernels): compact rows
are packed into one of two pinned staging buffers and copied asynchronously on a copy stream;
the kernels run on a compute stream that waits only for that copy; three words a row come
back into pinned memory. ``submit`` returns at once, so the engine fills its next buffer
while the device works on this one (double buffering); ``collect`` waits for the results.
Kernels are launched through ``cuLaunchKernel`` with kept argument slots (``DIRECT``), and a
batch of clears is submitted by one compiled call (``FAST``).
"""
import ctypes

import numpy as np

from . import env_switch
from .batch import CLEAR, DIRTY, PAGE_WORDS, VERIFY, check_pool_size
from .device_batch import (CHOICE, CLEAR_THREADS, CUDA_SOURCE, G_COMPUTE, G_COPY, G_ENT_CAP,
                           G_ENT_ROW, G_FOUND, G_NXT, KERNELS, NR_POOL_PTRS, NR_SLOT_PTRS,
                           NR_STAGE_PTRS, P_HEAD, P_POOL, S_COPIED, S_DEV, S_DONE, S_RES,
                           S_RES_HOST, START_PAGES, START_ROWS, Packed, Slots, apply_by_submit,
                           device_collect, device_first_use, make_submitter,
                           ordered_launches, rows_of)

name = "cupy"
DEVICE = "gpu"
try:
    import cupy as cp
except Exception:  # ImportError, or a CUDA runtime error at import
    cp = None

#: The engine hands this backend a batch once its commands cover this many pages (1 GiB,
#: about 0.3 ms of an H100's clearing), so the device clears while the host simulates: in
#: one batch at the end, vm-anon with THP on ran at 9.06x the numba backend, in batches of
#: 1 GiB at 10.76x (H100, 2026-11-26). numba-cuda names none: its batches cost 0.1-0.2 ms of
#: host time each, and with 1 GiB ones it lost (mixed 7.66x -> 5.67x).
BATCH_PAGES = 1 << 18
#: Launch through cuLaunchKernel with argument slots kept from call to call: CuPy's own call
#: converts every argument each time. On the H100 machine's host (2026-11-26) a launch took
#: 13.2 us that way and 7.6-8.9 us this way, against 24 us for a 16K-page memset on the
#: device; the clearing benchmark's 16K-page scattered rows went 0.60 -> 0.64 (same run).
#: ``first_use`` turns it off where it fails (a CuPy without ``driver.launchKernel``), as does
#: ZEROING_CUPY_DIRECT=0.
DIRECT = env_switch("ZEROING_CUPY_DIRECT", True)
_MAX_ARGS = 16
_values = np.zeros(_MAX_ARGS, np.int64)  # one 8-byte slot an argument (an int: low 4 bytes)
_argv = (_values.ctypes.data + 8 * np.arange(_MAX_ARGS)).astype(np.uint64)  # void *args[]
_ARGV = _argv.ctypes.data  # (each .ctypes access builds an object: a microsecond)
_module = None
#: A batch of CLEAR rows is packed (on the threads PackChoice says), copied and
#: launched by one compiled call over libcuda (``device_batch.make_submitter``); None
#: where libcuda or the call fails (``first_use`` checks it), or with ZEROING_CUPY_FAST=0.
#: On the H100 machine (2026-11-26, same run) 16K scattered pages a batch went 0.64 -> 0.68
#: of the device memset with it: the host still sets the pace at that size.
FAST = None
#: FAST submits every other batch too (the ordered kernels, the results copied back), where
#: ``first_use`` found that its batches give what the Python path gives: one compiled call
#: in place of six to eleven calls from Python (written 2026-11-27 without a GPU: the
#: GPU tests compare both paths with the reference; unmeasured until then).
FAST_ORDERED = False
_fns = np.zeros(len(KERNELS), np.int64)  # the kernels' CUfunctions, for FAST


def available():
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def describe():
    try:
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        return f"{props['name'].decode()} (CuPy)"
    except Exception:
        return "unknown CUDA device (CuPy)"


def _kernels():
    global _module
    if _module is None:
        _module = cp.RawModule(code=CUDA_SOURCE)
    return _module


def cache_bytes():
    """The device's L2."""
    try:
        return int(cp.cuda.Device().attributes["L2CacheSize"])
    except Exception:
        return 64 << 20


def device_memory():
    try:
        return cp.cuda.runtime.memGetInfo()[0]
    except Exception:
        return None


def alloc_pool(nr_pages):
    check_pool_size(nr_pages, device_memory(), "the GPU")
    pool = cp.zeros(nr_pages * PAGE_WORDS, dtype=cp.uint64)
    sync()  # zeroed on the legacy stream; the kernels run on a non-blocking one
    _state(pool)  # here, not in a run's first batch
    return pool


def to_host(pool):
    cp.cuda.Device().synchronize()
    return cp.asnumpy(pool)


def from_host(host):
    pool = cp.asarray(host)
    sync()
    return pool


def memset(pool):
    """cudaMemsetAsync on the legacy stream: the device's own memset, the baseline."""
    cp.cuda.runtime.memsetAsync(pool.data.ptr, 0, pool.nbytes, 0)



def _submitter():
    """The compiled submitter over this process's libcuda, or None."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    u64, u32 = ctypes.c_uint64, ctypes.c_uint

    def fn(name, *argtypes):
        f = getattr(lib, name)
        f.argtypes, f.restype = argtypes, ctypes.c_int
        return f
    return make_submitter(
        fn("cuMemcpyHtoDAsync_v2", u64, u64, u64, u64),
        fn("cuMemcpyDtoHAsync_v2", u64, u64, u64, u64), fn("cuEventRecord", u64, u64),
        fn("cuStreamWaitEvent", u64, u64, u32),
        fn("cuLaunchKernel", u64, u32, u32, u32, u32, u32, u32, u32, u64, u64, u64))


def _launch(name, grid, block, stream, args):
    """Kernel ``name`` on ``grid`` blocks of ``block`` threads, queued on ``stream``."""
    if DIRECT:
        _values[:len(args)] = [a.data.ptr if isinstance(a, cp.ndarray) else a for a in args]
        cp.cuda.driver.launchKernel(_fn_ptr(name), grid, 1, 1, block, 1, 1, 0, stream.ptr,
                                    _ARGV, 0)
    else:
        _fn(name)((grid,), (block,), args, stream=stream)


class _Slot:
    """One of the two staging buffers: pinned rows and results, their device copies, and
    the events that say the copy is done and the device is done with them."""

    def __init__(self):
        self.cap = 0
        self.busy = False
        self.copied = cp.cuda.Event(block=False, disable_timing=True)
        self.done = cp.cuda.Event(block=False, disable_timing=True)
        self.copied_ptr, self.done_ptr = self.copied.ptr, self.done.ptr

    def reserve(self, n):
        if n > self.cap:
            self.cap = max(n, 2 * self.cap, 1 << 12)
            rows = 3 * self.cap + 1  # cmd, starts (n + 1), arg
            self.host = np.frombuffer(cp.cuda.alloc_pinned_memory(rows * 8), np.int64, rows)
            self.dev = cp.empty(rows, dtype=cp.int64)
            self.res_host = np.frombuffer(cp.cuda.alloc_pinned_memory(3 * self.cap * 8),
                                          np.int64, 3 * self.cap)
            self.res = cp.empty(3 * self.cap, dtype=cp.int64)
            self.host_ptr, self.dev_ptr = self.host.ctypes.data, self.dev.data.ptr
            self.ptrs = np.zeros(NR_SLOT_PTRS, np.int64)  # for FAST
            self.ptrs[[S_DEV, S_RES, S_RES_HOST, S_COPIED, S_DONE]] = (
                self.dev_ptr, self.res.data.ptr, self.res_host.ctypes.data, self.copied_ptr,
                self.done_ptr)


class _Staging:
    """Streams, the two slots and the entry arrays, kept from pool to pool (so from run to
    run): pinned memory takes milliseconds to allocate, which a run's timing would count.
    Made with room for START_ROWS rows and START_PAGES page entries; they grow as needed."""

    def __init__(self):
        self.cap = 0
        self.copy = cp.cuda.Stream(non_blocking=True)
        self.compute = cp.cuda.Stream(non_blocking=True)
        self.copy_ptr, self.compute_ptr = self.copy.ptr, self.compute.ptr
        self.ptrs = np.zeros(NR_STAGE_PTRS, np.int64)  # for FAST
        self.ptrs[[G_COPY, G_COMPUTE]] = self.copy_ptr, self.compute_ptr
        self.slots = Slots(_Slot)
        for slot in self.slots.slots:
            slot.reserve(START_ROWS)
        self.entries(START_PAGES)
        sync()

    def entries(self, total):
        if total > self.cap:
            self.compute.synchronize()  # old arrays may be in use by queued kernels
            self.cap = max(total, 2 * self.cap, 1 << 16)
            with self.compute:
                self.ent_row = cp.empty(self.cap, dtype=cp.int32)
                self.nxt = cp.empty(self.cap, dtype=cp.int32)
                self.found = cp.empty(self.cap, dtype=cp.uint64)
            self.ptrs[[G_ENT_ROW, G_NXT, G_FOUND, G_ENT_CAP]] = (
                self.ent_row.data.ptr, self.nxt.data.ptr, self.found.data.ptr, self.cap)
        return self.ent_row, self.nxt, self.found


class _State:
    """Per-pool device state: the page list heads (all -1 between batches), the pool's
    address and the process's staging."""

    def __init__(self, pool):
        global _staging
        if _staging is None:
            _staging = _Staging()
        self.staging = _staging
        self.head = cp.full(pool.size // PAGE_WORDS, -1, dtype=cp.int32)
        self.pool_ptr = pool.data.ptr
        self.ptrs = np.zeros(NR_POOL_PTRS, np.int64)  # for FAST
        self.ptrs[[P_POOL, P_HEAD]] = self.pool_ptr, self.head.data.ptr
        sync()


_staging = None
_states = {}
_functions = {}
_pointers = {}


def _fn(name):
    f = _functions.get(name)
    if f is None:
        f = _functions[name] = _kernels().get_function(name)
    return f


def _fn_ptr(name):
    """The CUfunction of kernel ``name`` (RawModule gives RawKernels; theirs is ``.kernel``)."""
    p = _pointers.get(name)
    if p is None:
        f = _fn(name)
        p = _pointers[name] = int(getattr(f, "kernel", f).ptr)
    return p


def _state(pool):
    key = (pool.data.ptr, pool.size)  # (not the pool: a reference would keep it allocated)
    st = _states.get(key)
    if st is None:
        _states.clear()  # one pool at a time keeps its state
        st = _states[key] = _State(pool)
    return st


def submit(pool, op, pfn, order, arg):
    """Queue the batch on the device and return at once; ``collect`` gives its results.
    Per call the host packs the rows (compiled, one pass), makes one to three copies and
    two to four launches: no per-page work, no device-wide synchronisation."""
    if len(op) == 0:
        return Packed(op, pfn, order, arg), None, None
    st = _state(pool)
    sg = st.staging
    n = len(op)
    slot = sg.slots.next(n)
    threads, trial = CHOICE.threads(n)
    if FAST is not None and not trial:  # (a trial times the packing alone, in Packed)
        rows = rows_of(op, pfn, order, arg)
        *summary, status = FAST(*rows, slot.host, threads, FAST_ORDERED, slot.ptrs, sg.ptrs,
                                st.ptrs, _fns, _values, _ARGV)
        if status < 0:
            raise RuntimeError(f"CUDA driver error {-status} submitting a batch")
        packed = Packed(*rows, slot.host, summary=summary)
        if status == 1:
            slot.busy = True
            return packed, slot, slot.res_host[:3 * n] if packed.has_verify else None
    else:
        packed = Packed(op, pfn, order, arg, slot.host)
    rt = cp.cuda.runtime
    total, uo, nn, tt = packed.total, np.int32(packed.uorder), np.int64(n), np.int64(packed.total)
    copy, compute = sg.copy, sg.compute
    nrows = n + (n + 1 if packed.uorder < 0 else 0)  # cmd and starts are adjacent
    rt.memcpyAsync(slot.dev_ptr, slot.host_ptr, nrows * 8, rt.memcpyHostToDevice, copy.ptr)
    if packed.has_dirty:
        off = (2 * n + 1) * 8
        rt.memcpyAsync(slot.dev_ptr + off, slot.host_ptr + off, n * 8, rt.memcpyHostToDevice,
                       copy.ptr)
    slot.copied.record(copy)
    compute.wait_event(slot.copied)
    rows, pending = slot.dev, None
    if packed.clear_only:
        _launch("clear_pages", total, CLEAR_THREADS, compute, (pool, rows, nn, uo, tt))
    else:
        ent_row, nxt, found = sg.entries(total)
        res = slot.res
        for name, grid, block, args in ordered_launches(nn, uo, tt, packed.has_verify, pool,
                                                        rows, st.head, ent_row, nxt, found,
                                                        res):
            _launch(name, grid, block, compute, args)
        if packed.has_verify:
            rt.memcpyAsync(slot.res_host.ctypes.data, res.data.ptr, 3 * n * 8,
                           rt.memcpyDeviceToHost, compute.ptr)
            pending = slot.res_host[:3 * n]
    slot.done.record(compute)
    slot.busy = True
    return packed, slot, pending


collect = device_collect


def apply(pool, op, pfn, order, arg):
    """The whole batch: submitted, then waited for."""
    return apply_by_submit(submit, collect, pool, op, pfn, order, arg)


def sync():
    cp.cuda.Device().synchronize()


def first_use():
    """None if the kernels compile and run here, else the reason (compile or driver error).
    A failure with direct launches is tried again with CuPy's own (and those kept). Then the
    compiled submitter is taken into use if it clears right here (``FAST``), and for every
    batch if its batches give what the Python path gives (``FAST_ORDERED``)."""
    global DIRECT, FAST, FAST_ORDERED
    why = device_first_use(alloc_pool, apply)
    if why is not None and DIRECT:
        DIRECT = False
        if device_first_use(alloc_pool, apply) is not None:
            DIRECT = True
            return why
        why = None
    if why is None and env_switch("ZEROING_CUPY_FAST", True):
        FAST = _clears_right(_submitter())
        FAST_ORDERED = FAST is not None and _orders_right()
    return why


def _clears_right(fast):
    """``fast`` if batches of clears through it (one order and mixed orders) clear exactly
    their pages of a dirtied pool, else None."""
    global FAST
    if fast is None:
        return None
    try:
        _fns[:] = [_fn_ptr(k) for k in KERNELS]
        FAST = fast
        pool = alloc_pool(8)
        pages = np.arange(8, dtype=np.int64)
        none = np.zeros(8, np.int64)
        apply(pool, np.full(8, DIRTY, np.uint8), pages, none, np.full(8, 7, np.int64))
        apply(pool, np.full(2, CLEAR, np.uint8), np.array([1, 4]), np.array([0, 1]), none[:2])
        apply(pool, np.full(1, CLEAR, np.uint8), np.array([6]), none[:1], none[:1])
        got = apply(pool, np.full(8, VERIFY, np.uint8), pages, none, none)
        return fast if list(got[0]) == [1, 0, 1, 1, 0, 0, 0, 1] else None
    except Exception:
        return None
    finally:
        FAST = None


def _orders_right():
    """True if batches of every kind (one order and mixed, DIRTY, VERIFY and CLEAR rows in
    any order, pages met twice) give the same results and pool words submitted by FAST as
    by the Python path. Called with FAST set."""
    global FAST_ORDERED
    rng = np.random.default_rng(11)
    pages = 64
    batches = [(np.full(pages, DIRTY, np.uint8), np.arange(pages), np.zeros(pages, np.int64),
                np.arange(1, pages + 1))]
    for n, orders in ((1, 1), (9, 1), (300, 3), (300, 1)):
        order = rng.integers(0, orders, n)
        pfn = rng.integers(0, pages >> 2, n) << 2
        op = rng.choice(np.array([CLEAR, VERIFY, DIRTY], np.uint8), n)
        batches.append((op, pfn, order, rng.integers(1, 1 << 40, n)))
    seen = []
    try:
        for ordered in (False, True):
            FAST_ORDERED = ordered
            pool = alloc_pool(pages)
            got = [apply(pool, *b) for b in batches]
            seen.append((got, to_host(pool)))
    except Exception:
        return False
    finally:
        FAST_ORDERED = False
    (a, pool_a), (b, pool_b) = seen
    return bool((pool_a == pool_b).all()) and all(
        np.array_equal(x, y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
