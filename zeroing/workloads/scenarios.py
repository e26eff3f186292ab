"""Named scenarios: each documents what it models and which kernel paths it uses.

Compiled (``gen.py``): each scenario is a small state machine whose phases are the loops of
its description; ``S_PHASE`` says which loop runs, ``C_J`` and ``C_ROUND`` where it is.
"""
import numpy as np
from numba import njit

from allocator.flags import GFP_BITS, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_PGTABLE_USER, __GFP_ZERO

from ..events import EV_ALLOC, EV_DEFLATE, EV_FAULT, EV_FREE, EV_IDLE, EV_INFLATE, fault_gfp
from .gen import (S_BASE, S_DONE, S_GROW, S_PHASE, S_ROW, S_USER, Chunks, OrderedList, Ring,
                  collect, draws, ol_append, ol_full, ol_len, ol_pop, put, rand_below,
                  ring_append, ring_len, ring_popleft, room, uniform)

GFP_RECLAIMABLE = GFP_KERNEL | GFP_BITS["__GFP_RECLAIMABLE"]
GFP_PAGECACHE = GFP_HIGHUSER_MOVABLE  # filemap_alloc_folio: mapping gfp, no __GFP_ZERO
KMALLOC_ORDERS = np.array([0, 0, 0, 1, 2, 3], np.int64)  # rng.choice([0, 0, 0, 1, 2, 3])
TICK_NS = 1_000_000_000  # Stream.idle(): time passes in 1 s ticks

C_J = S_USER  # position in the current loop
C_ROUND = S_USER + 1
C_X = S_USER + 2  # a scenario's own counter
NR_ST = S_USER + 3

# A reference and the order of the block it allocated, in one list value.
REF_SHIFT = 4


def _idle_ns(seconds):
    """An idle time in ns: it passes in 1 s ticks (TICK_NS), the last one holding what is left
    (before, it was rounded down to whole seconds, and 0 to 1 s)."""
    return int(round(seconds * 1e9))


@njit(cache=True, inline="always")
def _next_phase(st, phase):
    st[S_PHASE] = phase
    st[C_J] = 0


# ---------------------------------------------------------------------------------------------

#: Pages of a PTE table's reach: one table maps 2 MiB.
PTRS_PER_PTE = 512


@njit(cache=True)
def _vm_anon_fill(rng, st, buf, refs, tables, kernel, order, rounds, idle_ns, noise, touched):
    bits = draws(rng)
    n = len(refs)
    p_alloc = noise * (1 << order)
    p_free = noise * (1 << order) * 0.9
    thp = order > 0
    while room(st, buf, 4):
        phase = st[S_PHASE]
        j = st[C_J]
        if ol_full(kernel):
            st[S_GROW] = 1
            break
        if phase == 0 or phase == 3:  # idle: boot-time memory first, then after each round
            if j * TICK_NS < idle_ns:
                put(st, buf, min(TICK_NS, idle_ns - j * TICK_NS), EV_IDLE, 0, 0, 0)
                st[C_J] = j + 1
            else:
                if phase == 3:
                    st[C_ROUND] += 1
                if st[C_ROUND] >= rounds:
                    st[S_DONE] = 1
                _next_phase(st, 1)
        elif phase == 1:  # fault in size_mb, with kernel noise
            if j == n:
                _next_phase(st, 2)
                continue
            if not thp and j % PTRS_PER_PTE == 0:  # __pte_alloc() before the first 4 KiB fault
                tables[j // PTRS_PER_PTE] = put(st, buf, 250, EV_ALLOC, 0, GFP_PGTABLE_USER, 0)
            refs[j] = put(st, buf, 250 << order, EV_FAULT, order, touched, 0)
            if thp:  # the THP fault's deposited table: pte_alloc_one() after the folio
                tables[j] = put(st, buf, 250, EV_ALLOC, 0, GFP_PGTABLE_USER, 0)
            if uniform(bits) < p_alloc:
                gfp = GFP_RECLAIMABLE if uniform(bits) < 0.5 else GFP_KERNEL
                o = rand_below(bits, 2)
                gfp |= __GFP_ZERO if uniform(bits) < 0.5 else 0
                ol_append(kernel, (put(st, buf, 250, EV_ALLOC, o, gfp, 0) << REF_SHIFT) | o)
            if ol_len(kernel) > 0 and uniform(bits) < p_free:
                x = ol_pop(kernel, rand_below(bits, ol_len(kernel)))
                put(st, buf, 250, EV_FREE, x & ((1 << REF_SHIFT) - 1), 0, x >> REF_SHIFT)
            st[C_J] = j + 1
        else:  # phase 2: munmap in address order
            # THP on: zap_huge_pmd() frees each deposited table at once and the mmu_gather
            # frees the THPs after; off: the pages, then free_pgtables() the tables.
            if j == n + len(tables):
                _next_phase(st, 3)
                continue
            if thp:
                if j < n:
                    put(st, buf, 50, EV_FREE, 0, 0, tables[j])
                else:
                    put(st, buf, 50, EV_FREE, order, 0, refs[j - n])
            elif j < n:
                put(st, buf, 50, EV_FREE, order, 0, refs[j])
            else:
                put(st, buf, 50, EV_FREE, 0, 0, tables[j - n])
            st[C_J] = j + 1
    return st[S_ROW] - st[S_BASE]


def vm_anon_chunks(nr_pages=1 << 19, seed=0, thp=True, size_mb=256, rounds=6, idle_s=12.0,
                   noise=0.02, touch=1.0, chunk=1 << 20, reuse=False):
    rng = np.random.default_rng(seed)
    st = np.zeros(NR_ST, np.int64)
    cap = max(chunk, 8)
    order = 9 if thp else 0
    touched = touched_pages(touch, order)
    refs = np.zeros(max(0, (size_mb << 8) >> order), np.int64)
    tables = np.zeros(len(refs) if order else -(-len(refs) // PTRS_PER_PTE), np.int64)
    kernel = OrderedList(64, spare=1)
    return Chunks(lambda buf: _vm_anon_fill(rng, st, buf, refs, tables, kernel.a, order, rounds,
                                            _idle_ns(idle_s), float(noise), touched), st, cap,
                  [kernel], reuse=reuse)


def touched_pages(touch, order):
    """The fault's ``gfp`` column for a program that writes the first ``touch`` of each block
    it faults in: ``FAULT_WRITES`` | that many pages, at least the faulting one; 0 for the
    whole block."""
    pages = 1 << order
    touched = min(pages, max(1, round(touch * pages)))
    return fault_gfp(0 if touched == pages else touched)


def vm_anon(nr_pages=1 << 19, seed=0, thp=True, size_mb=256, rounds=6, idle_s=12.0,
            noise=0.02, touch=1.0):
    """The upstream PG_zeroed benchmark: a 2 GiB guest with one vCPU; a process faults in
    ``size_mb`` of anonymous memory, frees it (munmap, in address order), and sleeps
    ``idle_s`` so free page reporting (2 s delayed work) can report and the host zero.

    THP on: order-9 faults (``vma_alloc_folio`` + ``folio_zero_user``), each followed by the
    page table ``pte_alloc_one()`` deposits for it (GFP_PGTABLE_USER, __GFP_ZERO); munmap
    frees those tables, then the THPs (as the 6.18 thp64 capture shows). Off: order-0 faults
    (``vma_alloc_zeroed_movable_folio``, GFP_HIGHUSER_MOVABLE | __GFP_ZERO on x86), a PTE
    table before the first fault of each 2 MiB; munmap frees the pages, then the tables.
    A guest is never quiet: per fault, with probability ``noise`` (drawn from ``seed``), a
    kernel allocation (order 0-1, half with __GFP_ZERO: vmalloc'd stacks, get_zeroed_page and
    the like; a slab page never carries __GFP_ZERO) that lives for a while.
    The program writes the first ``touch`` of each block it faults in (at least the faulting
    page; 1: all of it): with THP, a host backing guest RAM in 4 KiB pages then refaults only
    what the program writes, when the guest does not clear the whole block first.
    """
    return collect(vm_anon_chunks(nr_pages, seed, thp, size_mb, rounds, idle_s, noise, touch))


# ---------------------------------------------------------------------------------------------

@njit(cache=True)
def _kernel_build_fill(rng, st, buf, cache, job, jobs, files_per_job, cache_limit, need):
    bits = draws(rng)
    while room(st, buf, need):
        if st[C_ROUND] >= jobs:
            st[S_DONE] = 1
            break
        for _ in range(files_per_job):
            ring_append(cache, put(st, buf, 1000, EV_ALLOC, 0, GFP_PAGECACHE, 0))
        m = 0
        for _ in range(20 + rand_below(bits, 40)):
            order = KMALLOC_ORDERS[rand_below(bits, 6)]
            gfp = GFP_RECLAIMABLE if uniform(bits) < 0.5 else GFP_KERNEL
            gfp |= __GFP_ZERO if uniform(bits) < 0.5 else 0
            job[m] = (put(st, buf, 1000, EV_ALLOC, order, gfp, 0) << REF_SHIFT) | order
            m += 1
        nkern = m
        for _ in range(100 + rand_below(bits, 300)):
            order = 9 if uniform(bits) < 0.02 else 0
            job[m] = (put(st, buf, 1000, EV_FAULT, order, 0, 0) << REF_SHIFT) | order
            m += 1
        # The job exits: exit_mm() unmaps its memory in address (here fault) order, then
        # exit_files() and the rest free its kernel objects, in no particular order.
        rng.shuffle(job[:nkern])
        for k in range(nkern, nkern + m):
            r = job[k % m]
            put(st, buf, 1000, EV_FREE, r & ((1 << REF_SHIFT) - 1), 0, r >> REF_SHIFT)
        while ring_len(cache) > cache_limit:
            put(st, buf, 1000, EV_FREE, 0, 0, ring_popleft(cache))
        st[C_ROUND] += 1
    return st[S_ROW] - st[S_BASE]


def kernel_build_chunks(nr_pages=1 << 18, seed=0, jobs=200, files_per_job=40, chunk=1 << 20,
                        reuse=False):
    rng = np.random.default_rng(seed)
    st = np.zeros(NR_ST, np.int64)
    cache_limit = nr_pages // 3
    need = 2 * files_per_job + 59 + 399 + 459 + 1  # one job's events, at most
    cap = max(chunk, need)
    cache = Ring(cache_limit + files_per_job + 1)
    job = np.zeros(60 + 400, np.int64)
    return Chunks(lambda buf: _kernel_build_fill(rng, st, buf, cache.a, job, jobs, files_per_job,
                                                 cache_limit, need), st, cap, reuse=reuse)


def kernel_build(nr_pages=1 << 18, seed=0, jobs=200, files_per_job=40):
    """A kernel-build-like mix: per compile job, page-cache reads of sources (movable, no
    zeroing), kernel allocations (reclaimable and unmovable, orders 0-3, half with __GFP_ZERO:
    the kernel's zeroed pages, kmalloc_large; slab growth itself never carries it), and
    anonymous memory of the compiler (order-0 faults, some THP); the job exits and frees its
    anonymous memory in fault order, then its kernel allocations in random order; page cache
    is trimmed in FIFO order when it grows past a third of memory (reclaim)."""
    return collect(kernel_build_chunks(nr_pages, seed, jobs, files_per_job))


# ---------------------------------------------------------------------------------------------

@njit(cache=True)
def _page_cache_churn_fill(rng, st, buf, cache, passes, limit):
    bits = draws(rng)
    while room(st, buf, 4):
        if st[C_ROUND] >= passes:
            st[S_DONE] = 1
            break
        ring_append(cache, put(st, buf, 1000, EV_ALLOC, 0, GFP_PAGECACHE, 0))
        if ring_len(cache) > limit * 3 // 4:
            put(st, buf, 1000, EV_FREE, 0, 0, ring_popleft(cache))  # LRU: oldest first
        if uniform(bits) < 0.02:
            put(st, buf, 1000, EV_FREE, 0, 0,
                put(st, buf, 1000, EV_ALLOC, 0, GFP_KERNEL | __GFP_ZERO, 0))
        st[C_J] += 1
        if st[C_J] == limit:
            st[C_J] = 0
            st[C_ROUND] += 1
    return st[S_ROW] - st[S_BASE]


def page_cache_churn_chunks(nr_pages=1 << 18, seed=0, passes=6, file_fraction=0.6,
                            chunk=1 << 20, reuse=False):
    rng = np.random.default_rng(seed)
    st = np.zeros(NR_ST, np.int64)
    cap = max(chunk, 8)
    limit = int(nr_pages * file_fraction)
    if limit <= 0:
        passes = 0  # the Python loop ran no step either
    cache = Ring(max(0, limit * 3 // 4) + 2)
    return Chunks(lambda buf: _page_cache_churn_fill(rng, st, buf, cache.a, passes, limit),
                  st, cap, reuse=reuse)


def page_cache_churn(nr_pages=1 << 18, seed=0, passes=6, file_fraction=0.6):
    """Streaming reads of a file larger than free memory: page-cache pages (movable, not
    zeroed) allocated in order and reclaimed oldest first (LRU), with a trickle of zeroed
    kernel allocations; the only clears are __GFP_ZERO ones, so PG_zeroed has little to win."""
    return collect(page_cache_churn_chunks(nr_pages, seed, passes, file_fraction))


# ---------------------------------------------------------------------------------------------

@njit(cache=True)
def _balloon_cycle_fill(rng, st, buf, anon, cycles, n, idle_ns):
    bits = draws(rng)
    while room(st, buf, 1):
        phase = st[S_PHASE]
        j = st[C_J]
        if st[C_ROUND] >= cycles:
            st[S_DONE] = 1
            break
        if phase == 0:  # inflate: the guest gives n pages to the host
            if j == 0:
                st[C_X] = st[S_ROW]
            if j < n:
                put(st, buf, 1000, EV_INFLATE, 0, 0, 0)
                st[C_J] = j + 1
            else:
                _next_phase(st, 1)
        elif phase == 1 or phase == 5:  # idle
            if j * TICK_NS < idle_ns:
                put(st, buf, min(TICK_NS, idle_ns - j * TICK_NS), EV_IDLE, 0, 0, 0)
                st[C_J] = j + 1
            elif phase == 1:
                _next_phase(st, 2)
            else:
                _next_phase(st, 0)
                st[C_ROUND] += 1
        elif phase == 2:  # deflate, the last inflated first (events.py: EV_DEFLATE)
            if j < n:
                put(st, buf, 1000, EV_DEFLATE, 0, 0, st[C_X] + n - 1 - j)
                st[C_J] = j + 1
            else:
                _next_phase(st, 3)
        elif phase == 3:  # the guest faults in about n / 2 pages (C_X: pages so far)
            if j == 0:
                st[C_X] = 0
            if j < len(anon) and st[C_X] < len(anon):
                order = 9 if uniform(bits) < 0.1 else 0
                anon[j] = (put(st, buf, 1000, EV_FAULT, order, 0, 0) << REF_SHIFT) | order
                st[C_X] += 1 << order
                st[C_J] = j + 1
            else:
                st[C_X] = j  # the faults made, for phase 4
                _next_phase(st, 4)
        else:  # phase 4: and frees it
            if j < st[C_X]:
                put(st, buf, 1000, EV_FREE, anon[j] & ((1 << REF_SHIFT) - 1), 0,
                    anon[j] >> REF_SHIFT)
                st[C_J] = j + 1
            else:
                _next_phase(st, 5)
    return st[S_ROW] - st[S_BASE]


def balloon_cycle_chunks(nr_pages=1 << 18, seed=0, cycles=5, balloon_fraction=0.25, idle_s=1.0,
                         chunk=1 << 20, reuse=False):
    rng = np.random.default_rng(seed)
    st = np.zeros(NR_ST, np.int64)
    cap = max(chunk, 8)
    n = int(nr_pages * balloon_fraction)
    anon = np.zeros(max(0, n // 2), np.int64)
    return Chunks(lambda buf: _balloon_cycle_fill(rng, st, buf, anon, cycles, max(0, n),
                                                  _idle_ns(idle_s)), st, cap, reuse=reuse)


def balloon_cycle(nr_pages=1 << 18, seed=0, cycles=5, balloon_fraction=0.25, idle_s=1.0):
    """Memory overcommit: the host inflates the balloon (the guest gives pages away), later
    deflates it (pages come back host-zeroed), and a guest workload faults in about half as
    much memory (a tenth of its faults THPs), then frees it; with the balloon policy the
    deflated pages carry the zeroed hint."""
    return collect(balloon_cycle_chunks(nr_pages, seed, cycles, balloon_fraction, idle_s))
