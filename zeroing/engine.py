"""The engine: one compiled loop that drives the allocator with events and applies a policy.

The loop keeps a ground-truth byte per page (1 = all zero) and the event that last wrote each
page. Every zeroing site is counted separately (``counters.py``); a clear of a page that was
already zero is also counted as redundant; a block handed to a caller that relies on zeroed
memory is checked (the sanitizer). Background work runs at simulated deadlines inside the loop: free page
reporting (from ``page_reporting_register()`` at the start of the run: first pass 2 s later),
the vmstat worker's ``decay_pcp_high()`` once a second per CPU, the offload zeroer. Time is
charged where the work happens, through ``cost.py``'s pure functions (accounts in ``acct``):
guest clears per site, the fault path, the host's refault at the first touch of a discarded
page (``host_touch``), the reporting worker, and the offload device, a queue of batches that
complete at simulated times.

Content mode: the same loop also appends page operations (clear, dirty, verify) to a command
buffer and returns to Python when the buffer is nearly full, or when an offload batch is ready;
Python hands the buffer to a backend in one call, counts leaks from the verify results (real
bytes), and calls the loop again. Metadata mode counts leaks from the ground truth instead.

Kernel paths followed (6.18 + the PG_zeroed series "New design", June 2026):
- free: ``free_pages_prepare`` clears with init_on_free (then FPI_ZEROED when tracking).
- ``post_alloc_hook``: clears when ``!want_init_on_free() && (init_on_alloc || __GFP_ZERO)``;
  skipped when the hint says zero.
- user faults: order 0 uses ``__GFP_ZERO`` (x86) or ``clear_user_highpage`` (aliasing caches);
  order > 0 ``folio_zero_user`` when ``user_alloc_needs_zeroing()`` (aliasing or
  !init_on_alloc; it ignores init_on_free, hence the double clear with THP).
- hint designs at the level of struct page (``struct_page.py``): each allocation has a caller
  type; the design writes ``lru.next``/the page flag in ``prep_new_page``, the caller overwrites
  what its struct page overlay overwrites, and a ``page_bit`` free signal trusts whatever bit
  is left (the stale-bit leak Hildenbrand objected to). ``lru_bit`` with pfmemalloc 'assign'
  loses the hint before the fault site. Per caller type: hints set, delivered to a site that
  skipped a clear, lost before it, stale bits trusted at free, false claims among them, and
  leaked pages of that caller's data (``by_caller``).
"""
import numpy as np
from numba import njit

from allocator import core
from allocator.flags import (GFP_HIGHUSER_MOVABLE, GFP_TRANSHUGE_LIGHT, PG_REPORTED, PG_ZEROED,
                            __GFP_ZERO)
from allocator.pcp import ZS_WMARK_LOW, ZS_WMARK_MIN
from kernels.batch import CLEAR, DIRTY, VERIFY

from . import counters as C
from .cost import (A_ALLOC, A_BACKGROUND, A_EPT_FAULTS, A_FAULT, A_FREE, A_HOST, A_HOST_IN_TASK,
                   A_OFFLOAD_BATCHES, A_OFFLOAD_BEHIND, A_OFFLOAD_BYTES, A_OFFLOAD_DEVICE, A_USER,
                   K_HOST_ORDER, K_OFF_DEPTH, K_OFF_ROW_BYTES, K_REPORT_SGL, PAGE_SIZE,
                   fault_fixed_ns, host_refault_4k_ns, host_refault_ns, offload_batch_ns,
                   site_clear_ns)
from .events import (EV_ADOPT, EV_ALLOC, EV_DEFLATE, EV_FAULT, EV_FREE, EV_FREE_PFN, EV_IDLE,
                     EV_INFLATE, EV_VMSTAT, FAULT_WRITES)
from . import struct_page as SP
from .policy import (P_ALIASING, P_BALLOON, P_FREE_SIGNAL,
                     P_HINT, P_INIT_ON_ALLOC, P_INIT_ON_FREE, P_OFFLOAD, P_OFFLOAD_BATCH,
                     P_OFFLOAD_PERIOD, P_OFFLOAD_WATERMARK, P_PFMEMALLOC, P_REPORTING,
                     P_REPORTING_DELAY, P_REPORTING_ORDER, P_TRACK, P_ZEROED_AWARE)

PAGE_REPORTING_CAPACITY = 32
GFP_BALLOON = GFP_HIGHUSER_MOVABLE | (1 << 19) | (1 << 16) | (1 << 13)  # NOMEMALLOC|NORETRY|NOWARN

# rstate: loop state carried between calls.
R_REPORT_STATE = 0  # 0 idle, 1 reporting work scheduled
R_REPORT_DEADLINE = 1
R_NOTIFY_SEEN = 2
R_NLEAKS = 3
R_NCMD = 4  # commands in the buffer
R_CONTENT = 5  # 1 in content mode
R_CMD_LIMIT = 6  # return to Python before an event when R_NCMD exceeds this
R_OFFLOAD_DEADLINE = 7
R_NINFLIGHT = 8  # offload pages isolated, waiting for their batches to complete
R_STARTED = 9  # 1 once the first event was seen (the driver registered, the clock started)
R_VMSTAT_DEADLINE = 10  # next vmstat_update tick (decay_pcp_high on every CPU)
R_OHEAD = 11  # offload queue: slot of the oldest batch in flight
R_OQUEUED = 12  # offload queue: batches in flight
R_ODEV_FREE = 13  # simulated time the offload device finishes its last queued batch
R_OFILL = 14  # 1 while the offload zeroer keeps submitting (woken, or a batch just completed)
R_DISCARDS = 15  # 1 once the host discarded any page (until then no write can refault)
R_CMD_PAGES = 16  # pages the commands in the buffer cover
R_CMD_PAGE_LIMIT = 17  # return to Python before an event when R_CMD_PAGES exceeds this
R_FB_USED = 18  # entries of ``fb`` in use (THP faults that fell back: thp_fault_fallback)
R_FB_LIVE = 19  # fallback lists not yet freed (none: ``fb`` starts again from its first entry)
R_FB_FREE = 20  # 11 slots: per order, the first freed list the next fallback reuses (-1: none)
NR_FB_ORDERS = 11  # orders 0..MAX_PAGE_ORDER
# A pipelined run's allocator half frees lists the engine's half has still to read: per order,
# those freed in its current range, then those freed in the range before (``fb_age``).
R_FB_HELD = R_FB_FREE + NR_FB_ORDERS
R_FB_AGED = R_FB_HELD + NR_FB_ORDERS
NR_RSTATE = R_FB_AGED + NR_FB_ORDERS

#: vmstat_update runs every sysctl_stat_interval (HZ: one second).
VMSTAT_INTERVAL_NS = 1_000_000_000
NEVER = (1 << 63) - 1  # a deadline that never comes

# Columns of the offload queue (``obatch``, one row per slot).
OB_BLOCKS, OB_DONE, OB_OK, OB_PAGES, OB_SUBMIT = range(5)
NR_OB = 5

# Loop exit reasons.
EXIT_DONE = 0
EXIT_FLUSH = 1  # command buffer nearly full
EXIT_OFFLOAD = 2  # an offload batch is isolated and queued: flush, then complete it
EXIT_BAD_EVENT = 3
EXIT_LOG_FULL = 4  # a pipelined run's log may not hold the background work due (pipeline.py)
EXIT_FB_FULL = 5  # ``fb`` may not hold the order-0 pages of this THP fault's fallback: grow it

#: ``ev_pfn`` of a THP fault that fell back to order-0 pages: this bit and the offset of its
#: list in ``fb`` (the number of pages, then each page as ``log_block`` logs a block).
FB_BIT = 1 << 60
#: A list's first entry: this bit, FB_FREED once freed, its order at FB_ORDER_SHIFT, the next
#: freed list of its chain (plus one) at FB_LINK_SHIFT and its number of pages. A list has
#: room for 2^order pages, so a freed one serves a later fallback of its order; freeing
#: writes only the first entry and keeps the count, so the engine's half of a pipelined run
#: still reads a list its allocator half freed.
FB_HEAD = 1 << 62
FB_FREED = 1 << 61
FB_ORDER_SHIFT = 48
FB_LINK_SHIFT = 12
FB_COUNT_MASK = (1 << FB_LINK_SHIFT) - 1  # at most 2^MAX_PAGE_ORDER pages
FB_LINK_MASK = (1 << (FB_ORDER_SHIFT - FB_LINK_SHIFT)) - 1

#: The log of a pipelined run (``run_events``): each event's block (``log_block``), the
#: blocks the host zeroed for page reporting (rows of event, pfn, order) and the cursors.
PIPE_FIELDS = ("block", "bg", "pos")
L_WRITTEN, L_READ, L_EVENT, NR_L = range(4)

MAX_LEAKS = 8
#: Marker of data nobody in the stream wrote (boot time, pages allocated before a trace).
BOOT_MARKER = 1 << 62
#: cmd_event of an offload clear (not an event's own work).
OFFLOAD_EVENT = -2
#: A dirty command's marker holds the writer's caller type above this bit (content mode).
MARKER_CALLER_SHIFT = 56
MARKER_EVENT_MASK = (1 << MARKER_CALLER_SHIFT) - 1


#: The engine's arrays (EngineState builds them; compiled code gets them as one handle).
ENGINE_FIELDS = ("truth", "writer", "writer_caller", "lru_next", "page_flags", "by_caller",
                 "cnt", "leaks", "rstate", "pol", "cmd_op",
                 "cmd_pfn", "cmd_order", "cmd_arg", "cmd_event", "inflight", "by_order",
                 "cost", "acct", "discarded", "obatch", "fb")


# ---------------------------------------------------------------------------------------------
# Page operations: ground truth always, commands in content mode.

@njit(cache=True)
def emit(e, op, pfn, order, arg, event):
    n = e.rstate[R_NCMD]
    e.cmd_op[n] = op
    e.cmd_pfn[n] = pfn
    e.cmd_order[n] = order
    e.cmd_arg[n] = arg
    e.cmd_event[n] = event
    e.rstate[R_NCMD] = n + 1
    e.rstate[R_CMD_PAGES] += np.int64(1) << order


@njit(cache=True, inline="always")
def zero_pages_in(truth, pfn, pages):
    """How many of the pages [pfn, pfn + pages) are all zero: a branch-free sum over a slice.
    (A loop from 0 LLVM vectorises; over range(pfn, ...) each index may be negative for all it
    knows, and it loaded the bytes one by one into vector lanes: measured, a seventh of the
    engine's time on ``mixed`` went to such a loop.)"""
    if pages == 1:
        return np.int64(truth[pfn])
    block = truth[pfn:pfn + pages]
    n = np.int64(0)
    for k in range(len(block)):
        n += np.int64(block[k])
    return n


@njit(cache=True)
def clear_pages(e, pfn, order, site, event, queue=True):
    """A clear at a site: count it, and the pages that were already zero (redundant).
    ``queue=False``: the clear's command already ran (an offload batch)."""
    pages = np.int64(1) << order
    redundant = zero_pages_in(e.truth, pfn, pages)
    if order == 0:
        e.truth[pfn] = 1
    else:
        e.truth[pfn:pfn + pages] = 1
    e.cnt[site] += pages
    if site == C.ZERO_FREE or site == C.ZERO_ALLOC or site == C.ZERO_USER:
        account = A_FREE if site == C.ZERO_FREE else (A_ALLOC if site == C.ZERO_ALLOC else A_USER)
        e.acct[account] += site_clear_ns(e.cost, order)
        host_touch(e, pfn, order, True)
    else:
        host_touch(e, pfn, order, False)  # the offload device's stores
    e.cnt[C.ZERO_REDUNDANT] += redundant
    if queue and e.rstate[R_CONTENT]:
        emit(e, CLEAR, pfn, order, 0, event)


@njit(cache=True, inline="always")
def host_touch(e, pfn, order, in_task):
    """The guest writes pages of [pfn, pfn + 2^order): each discarded unit among them takes an
    EPT violation and the host supplies a zeroed page, charged now (not at report time). A
    unit is the discarded block, at most ``host.page_order`` (the host's backing page)."""
    if e.rstate[R_DISCARDS] != 0:  # else nothing was ever discarded: no walk, no call
        host_refaults(e, pfn, order, in_task)


@njit(cache=True)
def host_refaults(e, pfn, order, in_task):
    """``host_touch`` once some block has been discarded. A discard smaller than the host's
    page split it (MADV_DONTNEED of part of a THP): each 4 KiB page of it refaults on its own,
    when touched, at the host's 4 KiB fault."""
    end = pfn + (np.int64(1) << order)
    block = e.discarded[pfn:end]
    seen = np.uint8(0)
    for k in range(len(block)):  # branch-free first (see zero_pages_in): most have none
        seen |= block[k]
    if seen == 0:
        return
    host_order = np.int64(e.cost[K_HOST_ORDER])
    p = pfn
    while p < end:
        d = np.int64(e.discarded[p])
        if d == 0:
            p += 1
            continue
        u = min(d - 1, host_order)
        if u < host_order:
            start, u = p, 0  # this page alone
            ns = host_refault_4k_ns(e.cost)
        else:
            start = p & ~((np.int64(1) << u) - 1)
            ns = host_refault_ns(e.cost, u)
        e.acct[A_HOST] += ns
        e.acct[A_EPT_FAULTS] += 1
        if in_task:
            e.acct[A_HOST_IN_TASK] += ns
        e.discarded[start:start + (np.int64(1) << u)] = 0
        p = start + (np.int64(1) << u)


@njit(cache=True)
def host_zeroes(e, pfn, order):
    """The hypervisor discarded the block: it reads back as zero. The guest pays nothing now;
    its first touch of each discarded unit does (``host_touch``)."""
    pages = np.int64(1) << order
    e.rstate[R_DISCARDS] = 1
    e.truth[pfn:pfn + pages] = 1
    e.discarded[pfn:pfn + pages] = order + 1
    e.cnt[C.ZERO_HOST] += pages
    if e.rstate[R_CONTENT]:
        emit(e, CLEAR, pfn, order, 0, -1)


@njit(cache=True)
def dirty_pages(e, pfn, order, event, caller=0):
    host_touch(e, pfn, order, True)
    if order == 0:  # most blocks: a slice costs more than its one store
        e.truth[pfn] = 0
        e.writer[pfn] = event
        e.writer_caller[pfn] = caller
    else:  # one store per loop: each becomes a memset or a vector fill
        end = pfn + (np.int64(1) << order)
        e.truth[pfn:end] = 0
        e.writer[pfn:end] = event
        e.writer_caller[pfn:end] = caller
    if e.rstate[R_CONTENT]:
        marker = (event + 1) | (np.int64(caller) << MARKER_CALLER_SHIFT) if event >= 0 \
            else BOOT_MARKER
        emit(e, DIRTY, pfn, order, marker, event)


@njit(cache=True, inline="always")
def fault_writes(gfp):
    """The pages a fault's program writes (``FAULT_WRITES | n`` in its gfp column): n, -1 for
    a marked 0 (no page: not a fault), 0 without the mark (the whole block)."""
    if np.int64(gfp) & FAULT_WRITES == 0:
        return np.int64(0)
    n = np.int64(gfp) & (FAULT_WRITES - 1)
    return n if n > 0 else np.int64(-1)


@njit(cache=True)
def dirty_prefix(e, pfn, order, pages, event, caller=0):
    """The first ``pages`` pages of the block are written (a program that touches part of a
    huge page): as aligned power-of-two pieces, largest first, so each is a block of the
    command scheme; the rest of the block keeps what it held (zero after the fault)."""
    p = pfn
    for o in range(order - 1, -1, -1):
        if pages & (np.int64(1) << o):
            dirty_pages(e, p, o, event, caller)
            p += np.int64(1) << o


@njit(cache=True)
def user_clears(e, pfn, order, event):
    """The caller itself stores zeros (a page table emptied by zap_pte_range before it is
    freed): not a zeroing site of the model, so nothing is counted."""
    e.truth[pfn:pfn + (np.int64(1) << order)] = 1
    if e.rstate[R_CONTENT]:
        emit(e, CLEAR, pfn, order, 0, event)


@njit(cache=True)
def record_leak(e, pfn, event, writer):
    n = e.rstate[R_NLEAKS]
    if n < e.leaks.shape[0]:
        e.leaks[n, 0] = pfn
        e.leaks[n, 1] = event
        e.leaks[n, 2] = writer
    e.rstate[R_NLEAKS] = n + 1


@njit(cache=True)
def check_zeroed(e, pfn, order, event):
    """The sanitizer: a caller relies on the block being zero. Leaks are pages; one record
    (the first bad page) per block, in metadata and content mode alike."""
    pages = np.int64(1) << order
    e.cnt[C.ZERO_CHECKED] += pages
    if e.rstate[R_CONTENT]:
        emit(e, VERIFY, pfn, order, 0, event)
        return
    bad = pages - zero_pages_in(e.truth, pfn, pages)
    if bad:
        first = pfn
        while e.truth[first] != 0:
            first += 1
        e.cnt[C.ZERO_LEAK] += bad
        # Content mode sees the first bad page's marker only: attribute the block the same way.
        e.by_caller[SP.CS_LEAK, e.writer_caller[first]] += bad
        record_leak(e, first, event, e.writer[first])


@njit(cache=True)
def zero_site(e, pfn, order, site, hint_usable, event, caller):
    """Clear at a site unless the hint (delivered to this site) says the block is zero; a
    skipped clear is a hint delivered to ``caller``."""
    if hint_usable:
        e.cnt[C.ZERO_SKIPPED] += np.int64(1) << order
        e.by_caller[SP.CS_DELIVERED, caller] += np.int64(1) << order
    else:
        clear_pages(e, pfn, order, site, event)


# ---------------------------------------------------------------------------------------------
# Free page reporting (mm/page_reporting.c) with a host that zeroes what it is given.

@njit(cache=True)
def report_and_drain(z, e, sgl_pfn, sgl_order, lo, hi, alog):
    """The host processes the scatterlist, then ``page_reporting_drain`` puts each block back
    at the tail, Reported unless it merged. ``alog``: see ``run_events``."""
    track = e.pol[P_TRACK] != 0
    if hi > lo:  # one virtqueue kick; the host discards the ranges (background work)
        e.acct[A_BACKGROUND] += e.cost[K_REPORT_SGL]
    for k in range(lo, hi):
        if alog is None:
            host_zeroes(e, sgl_pfn[k], sgl_order[k])
        else:
            log_host_zeroes(alog, sgl_pfn[k], sgl_order[k])
        e.cnt[C.REPORTED_PAGES] += np.int64(1) << sgl_order[k]
        core.__putback_isolated_page(z, sgl_pfn[k], sgl_order[k],
                                     core.FPI_ZEROED if track else 0, True)


@njit(cache=True)
def page_reporting_process_free_list(z, e, order, mt, sgl_pfn, sgl_order, off, alog):
    """Returns (offset, requested). A sixteenth of the list per pass (the kernel's budget)."""
    requested = False
    if z.free_head[order, mt] == core.NONE:
        return off, requested
    area_nr_free = 0
    for m in range(z.nr_free.shape[1]):
        area_nr_free += z.nr_free[order, m]
    budget = (area_nr_free + PAGE_REPORTING_CAPACITY * 16 - 1) // (PAGE_REPORTING_CAPACITY * 16)
    pfn = z.free_head[order, mt]
    next_pfn = core.NONE
    while pfn != core.NONE:
        nxt = z.next[pfn]
        if z.flags[pfn] & PG_REPORTED:
            pfn = nxt
            continue
        if budget < 0:
            requested = True
            next_pfn = pfn
            break
        if off > 0:
            if core.__isolate_free_page(z, pfn, order) <= 0:
                next_pfn = pfn  # at the min watermark: leave this list
                break
            off -= 1
            sgl_pfn[off] = pfn
            sgl_order[off] = order
            pfn = nxt
            continue
        core.free_list_rotate_to_front(z, order, mt, pfn)
        report_and_drain(z, e, sgl_pfn, sgl_order, 0, PAGE_REPORTING_CAPACITY, alog)
        off = PAGE_REPORTING_CAPACITY
        budget -= 1
        pfn = z.free_head[order, mt]
    if next_pfn != core.NONE:
        core.free_list_rotate_to_front(z, order, mt, next_pfn)
    return off, requested


@njit(cache=True)
def page_reporting_process(z, e, alog):
    """One pass of the reporting worker over the zone; True when more work was requested."""
    sgl_pfn = np.empty(PAGE_REPORTING_CAPACITY, dtype=np.int64)
    sgl_order = np.empty(PAGE_REPORTING_CAPACITY, dtype=np.int64)
    off = PAGE_REPORTING_CAPACITY
    requested = False
    for order in range(e.pol[P_REPORTING_ORDER], z.conf[core.C_MAX_ORDER] + 1):
        for mt in range(z.free_head.shape[1]):
            off, req = page_reporting_process_free_list(z, e, order, mt, sgl_pfn, sgl_order, off,
                                                        alog)
            requested = requested or req
    if off < PAGE_REPORTING_CAPACITY:
        report_and_drain(z, e, sgl_pfn, sgl_order, off, PAGE_REPORTING_CAPACITY, alog)
    return requested


@njit(cache=True)
def note_report_notify(z, e, now):
    """``__page_reporting_notify``: schedule the delayed work 2 s from ``now`` when a free
    into the buddy notified it (an event's free, or a drain of the per-cpu lists) and the
    work was idle; while it is scheduled a notification changes nothing
    (``__page_reporting_request``: already PAGE_REPORTING_REQUESTED)."""
    notified = z.stat[core.S_REPORT_NOTIFY]
    if notified != e.rstate[R_NOTIFY_SEEN]:
        e.rstate[R_NOTIFY_SEEN] = notified
        if e.rstate[R_REPORT_STATE] == 0:
            e.rstate[R_REPORT_STATE] = 1
            e.rstate[R_REPORT_DEADLINE] = now + e.pol[P_REPORTING_DELAY]


@njit(cache=True)
def page_reporting_zone_ok(z, e):
    """``page_reporting_process_zone()`` skips a zone whose free pages are not above
    ``low_wmark + (PAGE_REPORTING_CAPACITY << page_reporting_order)``."""
    mark = z.zstate[ZS_WMARK_LOW] + (np.int64(PAGE_REPORTING_CAPACITY) << e.pol[P_REPORTING_ORDER])
    return core.zone_watermark_ok(z, 0, mark)


@njit(cache=True)
def run_reporting_pass(z, e, alog):
    """One run of the delayed reporting work; a pass that ran out of budget, or saw new
    notifications, reschedules itself 2 s later."""
    requested = False
    e.cnt[C.REPORTING_PASSES] += 1
    if page_reporting_zone_ok(z, e):
        requested = page_reporting_process(z, e, alog)
    if requested or z.stat[core.S_REPORT_NOTIFY] != e.rstate[R_NOTIFY_SEEN]:
        e.rstate[R_NOTIFY_SEEN] = z.stat[core.S_REPORT_NOTIFY]
        e.rstate[R_REPORT_DEADLINE] += e.pol[P_REPORTING_DELAY]
    else:
        e.rstate[R_REPORT_STATE] = 0


@njit(cache=True)
def vmstat_update(z, e):
    """``vmstat_update`` -> ``refresh_cpu_vm_stats``: ``decay_pcp_high()`` on each CPU. True
    while some CPU has more to do."""
    todo = False
    for cpu in range(z.conf[core.C_NR_CPUS]):
        todo = core.decay_pcp_high(z, cpu) or todo
    e.rstate[R_VMSTAT_DEADLINE] += VMSTAT_INTERVAL_NS
    return todo


@njit(cache=True)
def start_background(z, e, now):
    """The run starts: ``page_reporting_register()`` schedules its initial flush of all free
    memory 2 s later, and the vmstat worker ticks once a second from now."""
    e.rstate[R_STARTED] = 1
    # Without pcp lists there is nothing to decay: the tick never comes due.
    e.rstate[R_VMSTAT_DEADLINE] = now + VMSTAT_INTERVAL_NS if z.conf[core.C_PCP] != 0 else NEVER
    if e.pol[P_REPORTING] != 0:
        e.rstate[R_REPORT_STATE] = 1
        e.rstate[R_REPORT_DEADLINE] = now + e.pol[P_REPORTING_DELAY]
        e.rstate[R_NOTIFY_SEEN] = z.stat[core.S_REPORT_NOTIFY]


@njit(cache=True)
def run_background(z, e, now, alog):
    """Run the background work due by ``now`` in time order: vmstat ticks (with pcp lists)
    and reporting passes; at equal times the vmstat tick first."""
    pcp = z.conf[core.C_PCP] != 0
    while True:
        vm_due = pcp and e.rstate[R_VMSTAT_DEADLINE] <= now
        rep_due = e.rstate[R_REPORT_STATE] == 1 and e.rstate[R_REPORT_DEADLINE] <= now
        if vm_due and (not rep_due or e.rstate[R_VMSTAT_DEADLINE] <= e.rstate[R_REPORT_DEADLINE]):
            tick = e.rstate[R_VMSTAT_DEADLINE]
            todo = vmstat_update(z, e)
            if e.pol[P_REPORTING] != 0:
                # decay_pcp_high()'s drains free into the buddy, notifying as any free does.
                note_report_notify(z, e, tick)
            if not todo and e.rstate[R_VMSTAT_DEADLINE] <= now:
                # Every CPU at its floor with nothing above high: until an event changes a
                # list, the ticks due by now change nothing (the kernel's worker stops
                # re-arming then). Skip them, keeping the phase: a 10^9 s idle gap on 256
                # CPUs was 2.6e11 empty decays.
                late = now - e.rstate[R_VMSTAT_DEADLINE]
                e.rstate[R_VMSTAT_DEADLINE] += (late // VMSTAT_INTERVAL_NS + 1) * VMSTAT_INTERVAL_NS
        elif rep_due:
            run_reporting_pass(z, e, alog)
        else:
            break


# ---------------------------------------------------------------------------------------------
# The offload zeroer: isolate dirty free blocks, clear them in one batch, put them back zeroed.

@njit(cache=True)
def free_dirty_pages(z):
    total = 0
    for order in range(z.nr_free.shape[0]):
        blocks = 0
        for mt in range(z.nr_free.shape[1]):
            blocks += z.nr_free[order, mt]
        total += (blocks - z.nr_zeroed[order]) << order
    return total


@njit(cache=True)
def offload_isolate(z, e, now):
    """Take dirty free blocks, largest first and from the list heads (zeroed blocks go back to
    the tails), until the batch is full; queue their clears on the device. The batch occupies
    the device from when it is free (or now) for ``offload_batch_ns``; its blocks stay off the
    free lists until then. Returns the blocks isolated."""
    depth = np.int64(e.cost[K_OFF_DEPTH])
    batch = e.pol[P_OFFLOAD_BATCH]
    slot = (e.rstate[R_OHEAD] + e.rstate[R_OQUEUED]) % depth
    base = slot * batch
    pages = 0
    n = 0
    for order in range(z.conf[core.C_MAX_ORDER], -1, -1):
        for mt in range(z.free_head.shape[1]):
            pfn = z.free_head[order, mt]
            while pfn != core.NONE and pages + (np.int64(1) << order) <= batch:
                nxt = z.next[pfn]
                if not (z.flags[pfn] & PG_ZEROED):
                    if core.__isolate_free_page(z, pfn, order) <= 0:
                        batch = pages  # at the min watermark: the batch ends here
                        break
                    e.inflight[base + n, 0] = pfn
                    e.inflight[base + n, 1] = order
                    n += 1
                    pages += np.int64(1) << order
                    if e.rstate[R_CONTENT]:
                        emit(e, CLEAR, pfn, order, 0, OFFLOAD_EVENT)
                pfn = nxt
    if n == 0:
        return 0
    t = offload_batch_ns(e.cost, pages, n)
    start = max(now, e.rstate[R_ODEV_FREE])
    done = start + np.int64(np.ceil(t))
    e.rstate[R_ODEV_FREE] = done
    e.obatch[slot, OB_BLOCKS] = n
    e.obatch[slot, OB_DONE] = done
    e.obatch[slot, OB_OK] = 1  # Python clears it when the batch's clears failed
    e.obatch[slot, OB_PAGES] = pages
    e.obatch[slot, OB_SUBMIT] = now
    e.rstate[R_OQUEUED] += 1
    e.rstate[R_NINFLIGHT] += pages
    e.acct[A_OFFLOAD_DEVICE] += t
    e.acct[A_OFFLOAD_BYTES] += pages * PAGE_SIZE + n * e.cost[K_OFF_ROW_BYTES]
    e.acct[A_OFFLOAD_BATCHES] += 1
    return n


@njit(cache=True)
def offload_behind(e, now, pages):
    """A fault that got no zeroed block while the device still held at least as many pages
    as it needed, isolated before this instant: the zeroer had not caught up."""
    if e.rstate[R_OQUEUED] == 0 or e.rstate[R_NINFLIGHT] < pages:
        return False
    return e.obatch[e.rstate[R_OHEAD], OB_SUBMIT] < now


@njit(cache=True)
def offload_retire(z, e, now):
    """Complete the batches the device finished by ``now``, oldest first: back at the tail with
    FPI_ZEROED, or, if the backend failed, dirty (nothing is marked zeroed that was not
    cleared). A completion wakes the zeroer for its next batch. Returns batches completed."""
    depth = np.int64(e.cost[K_OFF_DEPTH])
    batch = e.pol[P_OFFLOAD_BATCH]
    done = 0
    while e.rstate[R_OQUEUED] > 0:
        slot = e.rstate[R_OHEAD]
        if e.obatch[slot, OB_DONE] > now:
            break
        ok = e.obatch[slot, OB_OK] != 0
        for k in range(slot * batch, slot * batch + e.obatch[slot, OB_BLOCKS]):
            pfn = e.inflight[k, 0]
            order = e.inflight[k, 1]
            if ok:
                clear_pages(e, pfn, order, C.ZERO_OFFLOAD, OFFLOAD_EVENT, False)
                core.__putback_isolated_page(z, pfn, order, core.FPI_ZEROED | core.FPI_TO_TAIL,
                                             False)
            else:
                core.__putback_isolated_page(z, pfn, order, core.FPI_TO_TAIL, False)
        e.rstate[R_NINFLIGHT] -= e.obatch[slot, OB_PAGES]
        e.rstate[R_OHEAD] = (slot + 1) % depth
        e.rstate[R_OQUEUED] -= 1
        e.rstate[R_OFILL] = 1
        done += 1
    return done


@njit(cache=True)
def take_exact(z, e, pfn, order, gfp):
    """Trace replay: allocate exactly the traced block. Returns pfn; NONE, counted as a replay
    miss, when the model does not have it free; below NONE on a bad address (-E_RANGE is
    NONE itself)."""
    taken = core.alloc_pfn(z, pfn, order, gfp)
    if taken == 0:
        e.cnt[C.REPLAY_MISS] += 1
        return core.NONE
    return pfn if taken == 1 else core.NONE - 1 + taken


@njit(cache=True, inline="always")
def order0_fault_gfp(aliasing):
    """An order-0 anonymous fault's flags: x86 asks for __GFP_ZERO
    (``vma_alloc_zeroed_movable_folio``); with aliasing caches the fault clears the page
    itself (``clear_user_highpage``)."""
    return np.int64(GFP_HIGHUSER_MOVABLE) | (0 if aliasing else __GFP_ZERO)


@njit(cache=True, inline="always")
def fb_short(z, e, order):
    """Whether ``fb`` may not hold the fallback of a THP fault of this order."""
    return 0 < order <= z.conf[core.C_MAX_ORDER] and e.rstate[R_FB_FREE + order] < 0 and \
        e.rstate[R_FB_USED] + 1 + (np.int64(1) << order) > e.fb.shape[0]


@njit(cache=True)
def fb_restart(rstate):
    """No fallback list is alive: the next starts at ``fb``'s first entry, none is reused."""
    rstate[R_FB_USED] = 0
    rstate[R_FB_FREE:NR_RSTATE] = -1


@njit(cache=True, inline="always")
def fb_next(fb, at):
    """The freed list after the one at ``at`` in its chain (-1: none)."""
    return ((fb[at] >> FB_LINK_SHIFT) & FB_LINK_MASK) - 1


@njit(cache=True, inline="always")
def fb_free(fb, rstate, at, chain):
    """Mark the list at ``at`` freed and put it first in the chain at ``rstate[chain]``."""
    fb[at] = (fb[at] & ~(FB_LINK_MASK << FB_LINK_SHIFT)) | FB_FREED | \
        ((rstate[chain] + 1) << FB_LINK_SHIFT)
    rstate[chain] = at


@njit(cache=True)
def fb_age(rstate, fb):
    """Between two ranges of a pipelined run, neither half running: the lists freed in the
    range before the last were read by the engine's half and serve later fallbacks; those
    freed in the last range wait one more range."""
    for o in range(NR_FB_ORDERS):
        at = rstate[R_FB_AGED + o]
        if at >= 0:
            while fb_next(fb, at) >= 0:
                at = fb_next(fb, at)
            fb[at] = (fb[at] & ~(FB_LINK_MASK << FB_LINK_SHIFT)) | \
                ((rstate[R_FB_FREE + o] + 1) << FB_LINK_SHIFT)
            rstate[R_FB_FREE + o] = rstate[R_FB_AGED + o]
        rstate[R_FB_AGED + o] = rstate[R_FB_HELD + o]
        rstate[R_FB_HELD + o] = -1


@njit(cache=True, inline="always")
def fb_live_list(e, ref):
    """Whether ``ref`` (FB_BIT | offset) names a fallback list that is made and not freed."""
    at = ref & (FB_BIT - 1)
    if ref >= 2 * FB_BIT or at >= e.rstate[R_FB_USED]:
        return False
    head = e.fb[at]
    return (head & (FB_HEAD | FB_FREED)) == FB_HEAD and \
        at + 1 + (head & FB_COUNT_MASK) <= e.rstate[R_FB_USED]


@njit(cache=True)
def thp_fault_alloc(z, e, order, gfp, cpu, pref, writes, aliasing, track):
    """A THP fault's folio (``vma_alloc_anon_folio_pmd``), or its fallback.

    Under the default defrag (madvise) a THP fault that is not MADV_HUGEPAGE may neither
    reclaim nor compact (GFP_TRANSHUGE_LIGHT): ``__alloc_pages_slowpath()`` tries once more at
    the min watermark (``__zone_watermark_ok()``, which for order > 0 also wants a free block
    of the order) and fails. The fault then counts THP_FAULT_FALLBACK and returns
    VM_FAULT_FALLBACK, and ``do_anonymous_page()`` faults the pages the program writes one at
    a time, order 0 with __GFP_ZERO (x86). Their blocks go to the event's list in ``fb``
    (``FB_BIT | offset`` is returned); an order-0 fault the zone cannot serve counts as an
    allocation failure (the model has no reclaim, so it fails only on an empty zone)."""
    if order > z.conf[core.C_MAX_ORDER]:
        return -core.E_BAD_ORDER
    pfn = core.NONE
    if core.zone_watermark_ok(z, order, z.zstate[ZS_WMARK_MIN]):
        pfn = core.alloc_pages(z, order, gfp, cpu, pref)
    if pfn != core.NONE:
        return pfn
    e.cnt[C.THP_FAULT_FALLBACK] += 1
    n = fault_writes(writes)
    if n <= 0:
        n = np.int64(1) << order
    at = e.rstate[R_FB_FREE + order]
    if at >= 0:  # a freed list of this order
        e.rstate[R_FB_FREE + order] = fb_next(e.fb, at)
    else:
        at = e.rstate[R_FB_USED]
        e.rstate[R_FB_USED] = at + 1 + (np.int64(1) << order)
    e.fb[at] = FB_HEAD | (order << FB_ORDER_SHIFT) | n
    gfp0 = order0_fault_gfp(aliasing)
    for k in range(n):
        page = core.alloc_pages(z, 0, gfp0, cpu, pref)
        if page < core.NONE:
            return page
        if page == core.NONE:
            e.cnt[C.ALLOC_FAIL] += 1
        e.fb[at + 1 + k] = log_block(page, page != core.NONE and track
                                     and core.page_is_zeroed(z, page))
    e.rstate[R_FB_LIVE] += 1
    return FB_BIT | at


# ---------------------------------------------------------------------------------------------
# The log between the two halves of a pipelined run

@njit(cache=True, inline="always")
def log_block(pfn, zeroed):
    """An event's block as logged: pfn and its PG_zeroed at allocation, or NONE."""
    return pfn if pfn == core.NONE else (pfn << 1) | np.int64(zeroed)


@njit(cache=True, inline="always")
def logged_block_at(log, i):
    """(pfn or NONE, PG_zeroed at allocation) of the block ``log_block`` wrote at log[i]."""
    v = log[i]
    if v == core.NONE:
        return v, False
    return v >> 1, (v & 1) != 0


@njit(cache=True, inline="always")
def logged_block(blog, i):
    return logged_block_at(blog.block, i)


@njit(cache=True)
def log_host_zeroes(alog, pfn, order):
    """The allocator's half reported a block: the engine's half zeroes it (``host_zeroes``)
    before the event during which it was reported."""
    n = alog.pos[L_WRITTEN]
    alog.bg[n, 0] = alog.pos[L_EVENT]
    alog.bg[n, 1] = pfn
    alog.bg[n, 2] = order
    alog.pos[L_WRITTEN] = n + 1


@njit(cache=True, inline="always")
def replay_host_zeroes(e, blog, i):
    k = blog.pos[L_READ]
    while k < blog.pos[L_WRITTEN] and blog.bg[k, 0] <= i:
        host_zeroes(e, blog.bg[k, 1], blog.bg[k, 2])
        k += 1
    blog.pos[L_READ] = k


@njit(cache=True, inline="always")
def allocated(e, op, pfn, order, pages, gfp, hint, event, ev_caller, writes, now, pol_flags):
    """An allocation's block handed out: counters, the clears at the allocation and the
    fault, the struct page words, the sanitizer's check and the caller's writes.
    ``writes``: an EV_FAULT's gfp column (``fault_writes``)."""
    init_on_free, init_on_alloc, aliasing, hint_design, pfmemalloc_or = pol_flags
    bc = e.by_caller
    e.cnt[C.PGALLOC] += pages
    e.cnt[C.ALLOC_BLOCKS] += 1
    caller = SP.caller_of(op == EV_FAULT, op == EV_INFLATE, np.int64(ev_caller))
    bc[SP.CS_ALLOC, caller] += pages
    if op == EV_FAULT:
        e.acct[A_FAULT] += fault_fixed_ns(e.cost, order)
        if not hint and offload_behind(e, now, pages):
            e.acct[A_OFFLOAD_BEHIND] += 1
    e.by_order[0, order] += 1
    if hint:
        e.cnt[C.HINT_HITS] += 1
        e.by_order[1, order] += 1
        bc[SP.CS_HINT, caller] += pages
    # post_alloc_hook
    if not init_on_free and (init_on_alloc or (gfp & __GFP_ZERO) != 0):
        zero_site(e, pfn, order, C.ZERO_ALLOC, hint, event, caller)
    # prep_new_page: the design's words, then what the caller's overlay writes.
    survived = SP.prep_new_page_words(e, pfn, hint_design, pfmemalloc_or, hint)
    SP.caller_takes_page(e, pfn, caller)
    if op == EV_FAULT:
        # user_alloc_needs_zeroing(): aliasing caches, or init_on_alloc off.
        if (order > 0 or aliasing) and (aliasing or not init_on_alloc):
            if hint and not survived:
                e.cnt[C.ZERO_HINT_LOST] += pages
                bc[SP.CS_LOST, caller] += pages
            zero_site(e, pfn, order, C.ZERO_USER, survived, event, caller)
        check_zeroed(e, pfn, order, event)
    elif op == EV_ALLOC:
        if (gfp & __GFP_ZERO) != 0 or init_on_alloc or init_on_free:
            check_zeroed(e, pfn, order, event)
    if op == EV_INFLATE:
        return  # handed to the host; the guest never writes it
    touched = fault_writes(writes) if op == EV_FAULT else 0
    if 0 < touched < pages:
        dirty_prefix(e, pfn, order, touched, event, caller)
    else:
        dirty_pages(e, pfn, order, event, caller)


@njit(cache=True, inline="always")
def freed(z, e, op, pfn, order, pages, cpu, caller, event, now, alog, blog, pol_flags):
    """A block freed: the policy's free flags, the clears at the free, the struct page
    words, then the buddy (each half of a pipelined run its part). False on a bad free."""
    init_on_free, track, hint_design = pol_flags
    pol = e.pol
    bc = e.by_caller
    # The policy's free flags: what the allocator's half knows without page state.
    fpi = 0
    host_zeroed = op == EV_DEFLATE and pol[P_BALLOON] != 0  # the series' deflate
    if host_zeroed:
        fpi |= core.FPI_ZEROED
    if init_on_free and track:
        fpi |= core.FPI_ZEROED
    if alog is None:
        SP.caller_releases_page(e, pfn, caller)
        if caller == SP.CALLER_PGTABLE:
            user_clears(e, pfn, order, event)  # freed empty: every entry was zapped
        if op == EV_DEFLATE:
            host_zeroes(e, pfn, order)
        # The series frees a host-zeroed balloon page with FPI_ZEROED and skips
        # kernel_init_pages() for it ("when safe": the posting's title; what it
        # excludes is not modelled).
        if init_on_free and not host_zeroed:
            clear_pages(e, pfn, order, C.ZERO_FREE, event)
        if pol[P_FREE_SIGNAL] == 1 and SP.page_says_zeroed(e, pfn, hint_design) \
                and not fpi & core.FPI_ZEROED:
            # The buddy trusts a bit the allocator set and nobody cleared: no freer
            # said so.
            fpi |= core.FPI_ZEROED
            bc[SP.CS_STALE, caller] += pages
            bc[SP.CS_FALSE, caller] += pages - zero_pages_in(e.truth, pfn, pages)
        SP.free_words(e, pfn)
        e.cnt[C.PGFREE] += pages
    if blog is None:
        if core.free_pages(z, pfn, order, fpi, cpu) < 0:
            return False
        if pol[P_REPORTING] != 0:
            note_report_notify(z, e, now)
    return True

# ---------------------------------------------------------------------------------------------
# The loop

@njit(cache=True, nogil=True)
def run_events(z, e, ev_time, ev_op, ev_order, ev_cpu, ev_gfp, ev_ref, ev_caller, ev_pfn, base,
               start, stop, alog, blog):
    """Consume events [start, stop) of a chunk whose first event is event number ``base`` of
    the whole stream (leak reports name events by that number). ``ev_caller``: the caller
    type of each allocation (``struct_page.CALLER_*``, 0 for the event's default). Returns
    (index reached, exit reason). A serial run gives None for both logs.

    A pipelined run (``zeroing.pipeline``) calls the loop twice over each range, on two
    threads, with one of the two logs given (``PIPE_FIELDS``); the run is the same:

    - ``alog``: the allocator's half. Everything that reads or writes the zone (allocations,
      frees, background work), and the policy's free flags; each event's block (and its
      PG_zeroed at allocation) and the blocks the host zeroed for page reporting go to
      ``alog``. Counters and accounts go to this handle's own arrays.
    - ``blog``: the engine's half, one range behind: the page contents, struct page words,
      counters and commands, taking blocks from the log the allocator's half wrote.

    Neither half reads what the other writes, except through the log. A policy under which
    the allocator would read page state (a ``page_bit`` free signal, the offload zeroer) runs
    serially (``pipeline.can_pipeline``)."""
    pol = e.pol
    track = pol[P_TRACK] != 0
    init_on_free = pol[P_INIT_ON_FREE] != 0
    init_on_alloc = pol[P_INIT_ON_ALLOC] != 0
    aliasing = pol[P_ALIASING] != 0
    aware = pol[P_ZEROED_AWARE] != 0
    hint_design = pol[P_HINT]
    pfmemalloc_or = pol[P_PFMEMALLOC] != 0
    room = np.int64(0)  # log rows one call of run_background may need, at most
    if alog is not None:
        rorder = pol[P_REPORTING_ORDER]
        room = ((z.conf[core.C_NR_PAGES] >> rorder) + 1) * (z.conf[core.C_MAX_ORDER] + 1 - rorder)
    for i in range(start, stop):
        now = ev_time[i]
        if alog is None and (e.rstate[R_NCMD] > e.rstate[R_CMD_LIMIT]
                             or e.rstate[R_CMD_PAGES] > e.rstate[R_CMD_PAGE_LIMIT]):
            return i, EXIT_FLUSH
        if blog is None:
            if alog is not None and ev_op[i] == EV_FAULT and ev_ref[i] <= 0 and \
                    fb_short(z, e, np.int64(ev_order[i])):
                # The allocator's half stops before the background work it would log with
                # this range: its engine half replays that work before the event after it.
                return i, EXIT_FB_FULL
            if e.rstate[R_STARTED] == 0:
                start_background(z, e, now)
            if e.rstate[R_VMSTAT_DEADLINE] <= now or e.rstate[R_REPORT_STATE] != 0:
                if alog is not None:
                    # A pass due by now, or one a tick due by now may schedule (its drains
                    # notify), may report blocks.
                    pass_due = e.rstate[R_REPORT_STATE] == 1 and e.rstate[R_REPORT_DEADLINE] <= now
                    tick_due = pol[P_REPORTING] != 0 and e.rstate[R_VMSTAT_DEADLINE] <= now
                    if (pass_due or tick_due) and alog.pos[L_WRITTEN] + room > alog.bg.shape[0]:
                        return i, EXIT_LOG_FULL
                    alog.pos[L_EVENT] = i
                run_background(z, e, now, alog)
            if pol[P_OFFLOAD] != 0:
                # The zeroer wakes every period, and keeps submitting while a completion frees
                # a queue slot and dirty free memory stays above the watermark.
                if e.rstate[R_OQUEUED] > 0:
                    offload_retire(z, e, now)
                if e.rstate[R_OFFLOAD_DEADLINE] <= now:
                    e.rstate[R_OFFLOAD_DEADLINE] = now + pol[P_OFFLOAD_PERIOD]
                    e.rstate[R_OFILL] = 1
                if e.rstate[R_OFILL] != 0 and e.rstate[R_OQUEUED] < np.int64(e.cost[K_OFF_DEPTH]):
                    if free_dirty_pages(z) > pol[P_OFFLOAD_WATERMARK] \
                            and offload_isolate(z, e, now) > 0:
                        return i, EXIT_OFFLOAD
                    e.rstate[R_OFILL] = 0
            ev_pfn[i] = core.NONE
        else:
            replay_host_zeroes(e, blog, i)
        op = ev_op[i]
        order = np.int64(ev_order[i])
        cpu = np.int64(ev_cpu[i])
        pages = np.int64(1) << order
        if op == EV_ALLOC or op == EV_FAULT or op == EV_INFLATE:
            if op == EV_ALLOC:
                gfp = np.int64(ev_gfp[i])
            elif op == EV_INFLATE:
                gfp = np.int64(GFP_BALLOON)
            elif order == 0:
                gfp = order0_fault_gfp(aliasing)
            else:  # vma_thp_gfp_mask() under the default defrag (madvise), no MADV_HUGEPAGE
                gfp = np.int64(GFP_TRANSHUGE_LIGHT)
            fb_at = np.int64(-1)  # the fallback list of a THP fault that fell back
            if blog is None:
                if op == EV_FAULT and not 0 <= fault_writes(ev_gfp[i]) <= pages:
                    return i, EXIT_BAD_EVENT  # writes no page, or more than the block has
                pref = core.PREF_NONE
                if aware:
                    # Callers that clear (or rely on zero) want zeroed blocks; the others dirty
                    # ones.
                    wants_zero = (gfp & __GFP_ZERO) != 0 or op == EV_FAULT
                    pref = 1 if wants_zero else 0
                if ev_ref[i] > 0 and op != EV_INFLATE:
                    pfn = take_exact(z, e, ev_ref[i] - 1, order, gfp)  # the trace decides
                elif op == EV_FAULT and order > 0:
                    if fb_short(z, e, order):
                        # Nothing of the event is done yet; the background work before it
                        # is not done again when the loop comes back to it (as after
                        # EXIT_OFFLOAD).
                        return i, EXIT_FB_FULL
                    pfn = thp_fault_alloc(z, e, order, gfp, cpu, pref, ev_gfp[i], aliasing,
                                          track)
                    if pfn > 0 and pfn & FB_BIT:
                        fb_at = pfn & (FB_BIT - 1)
                else:
                    pfn = core.alloc_pages(z, order, gfp, cpu, pref)
                    if pfn == core.NONE:
                        e.cnt[C.ALLOC_FAIL] += 1
                if pfn < core.NONE:
                    return i, EXIT_BAD_EVENT
                hint = pfn != core.NONE and fb_at < 0 and track and core.page_is_zeroed(z, pfn)
                if pfn != core.NONE:
                    ev_pfn[i] = pfn
                if alog is not None:
                    alog.block[i] = log_block(pfn, hint)
                    continue
            else:
                pfn, hint = logged_block(blog, i)
                if pfn > 0 and pfn & FB_BIT:
                    fb_at = pfn & (FB_BIT - 1)
            if pfn == core.NONE:
                continue
            flags = (init_on_free, init_on_alloc, aliasing, hint_design, pfmemalloc_or)
            if fb_at < 0:
                allocated(e, op, pfn, order, pages, gfp, hint, base + i, ev_caller[i],
                          ev_gfp[i], now, flags)
            else:  # order-0 faults, one a page the program writes (do_anonymous_page)
                gfp = order0_fault_gfp(aliasing)
                for k in range(e.fb[fb_at] & FB_COUNT_MASK):
                    pfn, hint = logged_block_at(e.fb, fb_at + 1 + k)
                    if pfn != core.NONE:
                        allocated(e, op, pfn, 0, 1, gfp, hint, base + i, ev_caller[i], 0,
                                  now, flags)
        elif op == EV_FREE or op == EV_DEFLATE or op == EV_FREE_PFN:
            ref = ev_ref[i]
            if op == EV_FREE_PFN:
                pfn = ref - 1  # an allocation made in an earlier chunk (trace replay)
            else:
                if ref < 0 or ref >= i:
                    return i, EXIT_BAD_EVENT
                order = np.int64(ev_order[ref])
                pages = np.int64(1) << order
                if blog is None:
                    pfn = ev_pfn[ref]
                    ev_pfn[ref] = core.NONE  # freed: a second free of it is a no-op
                    if alog is not None:
                        alog.block[i] = log_block(pfn, False)
                else:
                    pfn, _ = logged_block(blog, i)
                if pfn == core.NONE:
                    continue
            fb_at = np.int64(-1)
            if pfn > 0 and pfn & FB_BIT:  # a THP fault that fell back: free its pages
                fb_at = pfn & (FB_BIT - 1)
                if blog is None and not fb_live_list(e, pfn):
                    return i, EXIT_BAD_EVENT  # no list starts there, or it was freed
            caller = SP.CALLER_RAW  # EV_FREE_PFN: allocated in an earlier chunk, the default
            if alog is None and op != EV_FREE_PFN:
                caller = SP.caller_of(ev_op[ref] == EV_FAULT, ev_op[ref] == EV_INFLATE,
                                      np.int64(ev_caller[ref]))
            flags = (init_on_free, track, hint_design)
            if fb_at < 0:
                if not freed(z, e, op, pfn, order, pages, cpu, caller, base + i, now, alog,
                             blog, flags):
                    return i, EXIT_BAD_EVENT
            else:
                head = e.fb[fb_at]
                for k in range(head & FB_COUNT_MASK):
                    pfn, _ = logged_block_at(e.fb, fb_at + 1 + k)
                    if pfn != core.NONE and not freed(z, e, op, pfn, 0, 1, cpu, caller, base + i,
                                                      now, alog, blog, flags):
                        return i, EXIT_BAD_EVENT
                if blog is None:
                    # Serial: nobody reads the list again. Pipelined: the engine's half
                    # reads it in this range (fb_age).
                    o = (head >> FB_ORDER_SHIFT) & 0xff
                    fb_free(e.fb, e.rstate, fb_at,
                            (R_FB_FREE if alog is None else R_FB_HELD) + o)
                    e.rstate[R_FB_LIVE] -= 1
                    if e.rstate[R_FB_LIVE] == 0 and alog is None:
                        # None left to read: the next list starts at the first entry (a
                        # pipelined run's lists start again after its feed,
                        # Simulation.feed_columns).
                        fb_restart(e.rstate)
        elif op == EV_ADOPT:
            if blog is None:
                pfn = take_exact(z, e, ev_ref[i] - 1, order, 0)
                if pfn < core.NONE:
                    return i, EXIT_BAD_EVENT
                if pfn != core.NONE:
                    ev_pfn[i] = pfn
                    z.stat[core.S_PGALLOC] -= pages  # not an allocation the stream made
                if alog is not None:
                    alog.block[i] = log_block(pfn, False)
                    continue
            else:
                pfn, _ = logged_block(blog, i)
            if pfn == core.NONE:
                continue
            SP.prep_new_page_words(e, pfn, hint_design, pfmemalloc_or, False)
            e.cnt[C.REPLAY_ADOPTED] += pages
            dirty_pages(e, pfn, order, -1)  # content unknown: as dirty as boot memory
        elif op == EV_VMSTAT:
            # The trace recorded the vmstat worker: its ticks, on their CPUs, replace the
            # model's timer from here on.
            if blog is None:
                if cpu >= z.conf[core.C_NR_CPUS]:
                    return i, EXIT_BAD_EVENT
                e.rstate[R_VMSTAT_DEADLINE] = NEVER
                if z.conf[core.C_PCP] != 0:
                    core.decay_pcp_high(z, cpu)
                    if pol[P_REPORTING] != 0:
                        note_report_notify(z, e, now)
        elif op != EV_IDLE:
            return i, EXIT_BAD_EVENT
    return stop, EXIT_DONE
