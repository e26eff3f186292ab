"""The workload generators as they were before they were compiled (Python loops, slow):
the oracle the compiled generators must match event for event (test_workloads.py).
Copied from zeroing/workloads/{mixed,scenarios,unaware}.py at 178edfc (the ``Stream`` builder
they use is imported, not copied); only the imports are merged; unaware_user is issue 14's
version with a caller mix."""
import numpy as np

from allocator.flags import GFP_BITS, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_PGTABLE_USER, __GFP_ZERO
from zeroing.events import (EV_ALLOC, EV_DEFLATE, EV_FAULT, EV_FREE, EV_IDLE, EV_INFLATE,
                            EVENT_DTYPE)
from zeroing.workloads.stream import Stream


def mixed(nr_pages=1 << 18, events=300_000, seed=0):
    rng = np.random.default_rng(seed)
    ev = np.zeros(events, dtype=EVENT_DTYPE)
    live = []  # (row, pages) of guest allocations
    ballooned = []
    used = 0
    t = 0
    target = nr_pages // 2
    idle_every = max(20, events // 20)
    for i in range(events):
        t += 1000
        row = ev[i]
        if i % idle_every == idle_every - 1:
            t += 3_000_000_000
            row["time"], row["op"] = t, EV_IDLE
            continue
        r = rng.random()
        if r < 0.03 and len(ballooned) < nr_pages // 8:
            row["op"], row["order"] = EV_INFLATE, 0
            ballooned.append(i)
        elif r < 0.05 and ballooned:
            rng.integers(len(ballooned))  # drawn and unused, as in the generator
            row["op"], row["ref"] = EV_DEFLATE, ballooned.pop()
        elif live and (used > target or r < 0.45):
            k = int(rng.integers(len(live)))
            ref, pages = live[k]
            live[k] = live[-1]
            live.pop()
            used -= pages
            row["op"], row["ref"], row["order"] = EV_FREE, ref, ev[ref]["order"]
        else:
            kind = rng.random()
            if kind < 0.45:
                row["op"], row["order"] = EV_FAULT, 0
            elif kind < 0.50:
                row["op"], row["order"] = EV_FAULT, 9
            else:
                row["op"], row["order"] = EV_ALLOC, int(rng.choice([0, 0, 0, 1, 2, 3]))
                row["gfp"] = GFP_KERNEL | (__GFP_ZERO if rng.random() < 0.5 else 0)
            live.append((i, 1 << int(row["order"])))
            used += 1 << int(row["order"])
        row["time"] = t
    return ev


def unaware_user(nr_pages=1 << 16, events=100_000, seed=0, callers=None):
    """Issue 14's loop (caller mix): zeroing/workloads/unaware.py at issue14 8dde598."""
    from zeroing.events import EVENT_CALLER_DTYPE
    from zeroing.struct_page import CALLER_NAMES, parse_caller_mix
    from zeroing.workloads.unaware import CALLER_GFP, DEFAULT_CALLERS
    from allocator.flags import __GFP_MOVABLE
    mix = parse_caller_mix(DEFAULT_CALLERS if callers is None else callers)
    names = [n for n in mix if mix[n] > 0]
    weights = np.array([mix[n] for n in names]) / sum(mix[n] for n in names)
    picks = np.random.default_rng([seed, 1]).choice(len(names), size=events, p=weights)
    rng = np.random.default_rng(seed)
    ev = np.zeros(events, dtype=EVENT_CALLER_DTYPE)
    live = []
    balloon = []
    for i in range(events):
        row = ev[i]
        row["time"] = i * 1000
        r = rng.random()
        if r < 0.1 or (r < 0.15 and not balloon):
            row["op"] = EV_INFLATE  # the host gives these back zeroed: the source of hints
            balloon.append(i)
        elif r < 0.2 and balloon:
            row["op"], row["ref"] = EV_DEFLATE, balloon.pop()
        elif live and (r < 0.55 or len(live) > nr_pages // 4):
            ref = live.pop(int(rng.integers(len(live))))
            row["op"], row["ref"] = EV_FREE, ref
        else:
            name = names[picks[i]]
            op, gfp, p_zero = CALLER_GFP[name]
            row["op"], row["caller"] = op, CALLER_NAMES.index(name)
            row["gfp"] = gfp | __GFP_MOVABLE | (__GFP_ZERO if rng.random() < p_zero else 0)
            live.append(i)
    return ev


GFP_RECLAIMABLE = GFP_KERNEL | GFP_BITS["__GFP_RECLAIMABLE"]
GFP_PAGECACHE = GFP_HIGHUSER_MOVABLE  # filemap_alloc_folio: mapping gfp, no __GFP_ZERO


def vm_anon(nr_pages=1 << 19, seed=0, thp=True, size_mb=256, rounds=6, idle_s=12.0,
            noise=0.02, touch=1.0):
    """The upstream PG_zeroed benchmark: a 2 GiB guest with one vCPU; a process faults in
    ``size_mb`` of anonymous memory, frees it (munmap, in address order), and sleeps
    ``idle_s`` so free page reporting (2 s delayed work) can report and the host zero.

    THP on: order-9 faults (``vma_alloc_folio`` + ``folio_zero_user``), each followed by its
    deposited page table (GFP_PGTABLE_USER); munmap frees the tables, then the THPs. Off:
    order-0 faults (``vma_alloc_zeroed_movable_folio``, GFP_HIGHUSER_MOVABLE | __GFP_ZERO on
    x86), a PTE table before the first fault of each 2 MiB; munmap frees the pages, then the
    tables.
    A guest is never quiet: per fault, with probability ``noise`` (drawn from ``seed``), a
    kernel allocation (order 0-1, half with __GFP_ZERO: vmalloc'd stacks, get_zeroed_page and
    the like; a slab page never carries __GFP_ZERO) that lives for a while.
    """
    rng = np.random.default_rng(seed)
    s = Stream(step_ns=250)
    order = 9 if thp else 0
    n = (size_mb << 8) >> order
    touched = min(1 << order, max(1, round(touch * (1 << order))))  # session 14
    touched = 0 if touched == 1 << order else touched
    kernel = []
    s.idle(idle_s)  # boot-time free memory gets reported before the first round
    for _ in range(rounds):
        refs, tables = [], []
        for j in range(n):
            if not thp and j % 512 == 0:
                tables.append(s.alloc(0, GFP_PGTABLE_USER))
            refs.append(s.fault(order, cost_ns=250 << order, touched=touched))
            if thp:
                tables.append(s.alloc(0, GFP_PGTABLE_USER))
            if rng.random() < noise * (1 << order):
                gfp = (GFP_RECLAIMABLE if rng.random() < 0.5 else GFP_KERNEL)
                kernel.append(s.alloc(int(rng.integers(0, 2)), gfp | (__GFP_ZERO if rng.random() < 0.5 else 0)))
            if kernel and rng.random() < noise * (1 << order) * 0.9:
                s.free(kernel.pop(int(rng.integers(len(kernel)))))
        for r in (tables + refs if thp else refs + tables):
            s.free(r, cost_ns=50)
        s.idle(idle_s)
    return s.events()


def kernel_build(nr_pages=1 << 18, seed=0, jobs=200, files_per_job=40):
    """A kernel-build-like mix: per compile job, page-cache reads of sources (movable, no
    zeroing), kernel allocations (reclaimable and unmovable, orders 0-3, half with __GFP_ZERO:
    the kernel's zeroed pages, kmalloc_large; slab growth itself never carries it), and
    anonymous memory of the compiler (order-0 faults, some THP); the job exits and frees its
    anonymous memory in fault order, then its kernel allocations in random order; page cache
    is trimmed in FIFO order when it grows past a third of memory (reclaim)."""
    rng = np.random.default_rng(seed)
    s = Stream()
    cache = []
    cache_limit = nr_pages // 3
    for _ in range(jobs):
        job = []
        for _ in range(files_per_job):
            cache.append(s.alloc(0, GFP_PAGECACHE))
        for _ in range(int(rng.integers(20, 60))):
            order = int(rng.choice([0, 0, 0, 1, 2, 3]))
            gfp = (GFP_RECLAIMABLE if rng.random() < 0.5 else GFP_KERNEL)
            job.append(s.alloc(order, gfp | (__GFP_ZERO if rng.random() < 0.5 else 0)))
        faults = [s.fault(9 if rng.random() < 0.02 else 0)
                  for _ in range(int(rng.integers(100, 400)))]
        rng.shuffle(job)
        for r in faults + job:
            s.free(r)
        while len(cache) > cache_limit:
            s.free(cache.pop(0))
    return s.events()


def page_cache_churn(nr_pages=1 << 18, seed=0, passes=6, file_fraction=0.6):
    """Streaming reads of a file larger than free memory: page-cache pages (movable, not
    zeroed) allocated in order and reclaimed oldest first (LRU), with a trickle of zeroed
    kernel allocations; the only clears are __GFP_ZERO ones, so PG_zeroed has little to win."""
    rng = np.random.default_rng(seed)
    s = Stream()
    cache = []
    limit = int(nr_pages * file_fraction)
    for _ in range(passes):
        for _ in range(limit):
            cache.append(s.alloc(0, GFP_PAGECACHE))
            if len(cache) > limit * 3 // 4:
                s.free(cache.pop(0))
            if rng.random() < 0.02:
                s.free(s.alloc(0, GFP_KERNEL | __GFP_ZERO))
    return s.events()


def balloon_cycle(nr_pages=1 << 18, seed=0, cycles=5, balloon_fraction=0.25, idle_s=1.0):
    """Memory overcommit: the host inflates the balloon (the guest gives pages away), later
    deflates it (pages come back host-zeroed), and a guest workload faults memory in between;
    with the balloon policy the deflated pages carry the zeroed hint."""
    rng = np.random.default_rng(seed)
    s = Stream()
    n = int(nr_pages * balloon_fraction)
    for _ in range(cycles):
        balloon = [s.inflate() for _ in range(n)]
        s.idle(idle_s)
        for r in reversed(balloon):
            s.deflate(r)
        anon, pages = [], 0
        while len(anon) < n // 2 and pages < n // 2:  # session 14: about n / 2 pages
            order = 9 if rng.random() < 0.1 else 0
            anon.append(s.fault(order))
            pages += 1 << order
        for r in anon:
            s.free(r)
        s.idle(idle_s)
    return s.events()
