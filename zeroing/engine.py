"""The engine: one compiled loop that drives the allocator with events and applies a policy.

Metadata mode keeps a ground-truth byte per page (1 = all zero) and the index of the event
that last wrote each page, so a leak report says whose data leaked. Every zeroing site is
counted separately (``counters.py``); a clear of a page that was already zero is also counted
as redundant; a block handed to a caller that relies on zeroed memory is checked (the
sanitizer). Background work (free page reporting) runs at simulated deadlines inside the loop.

Kernel paths followed (6.18 + the PG_zeroed series "New design", June 2026):
- free: ``free_pages_prepare`` clears with init_on_free (then FPI_ZEROED when tracking).
- ``post_alloc_hook``: clears when ``!want_init_on_free() && (init_on_alloc || __GFP_ZERO)``;
  skipped when the hint says zero.
- user faults: order 0 uses ``__GFP_ZERO`` (x86) or ``clear_user_highpage`` (aliasing caches);
  order > 0 ``folio_zero_user`` when ``user_alloc_needs_zeroing()`` (aliasing or
  !init_on_alloc; it ignores init_on_free, hence the double clear with THP).
- hint designs: ``lru_bit`` with pfmemalloc 'assign' loses the hint before the fault site;
  ``folio_flag`` and ``lru_bit`` leave the bit on pages of non-folio allocations, which a
  ``page_bit`` free signal then trusts (the stale-bit leak Hildenbrand objected to).
"""
import numpy as np
from numba import njit

from allocator import core
from allocator.flags import GFP_HIGHUSER_MOVABLE, GFP_TRANSHUGE, PG_REPORTED, __GFP_ZERO

from . import counters as C
from .events import EV_ALLOC, EV_DEFLATE, EV_FAULT, EV_FREE, EV_IDLE, EV_INFLATE
from .policy import (HINT_FOLIO_FLAG, HINT_LRU_BIT, P_ALIASING, P_BALLOON, P_FREE_SIGNAL,
                     P_HINT, P_INIT_ON_ALLOC, P_INIT_ON_FREE, P_PFMEMALLOC, P_REPORTING,
                     P_REPORTING_DELAY, P_REPORTING_ORDER, P_TRACK)

PAGE_REPORTING_CAPACITY = 32
GFP_BALLOON = GFP_HIGHUSER_MOVABLE | (1 << 19) | (1 << 16) | (1 << 13)  # NOMEMALLOC|NORETRY|NOWARN

# rstate: background-work state carried between calls.
R_STATE = 0  # 0 idle, 1 reporting work scheduled
R_DEADLINE = 1
R_NOTIFY_SEEN = 2
R_NLEAKS = 3
NR_RSTATE = 4

MAX_LEAKS = 8

# Zeroing sites (index into counters).
SITE_FREE = C.ZERO_FREE
SITE_ALLOC = C.ZERO_ALLOC
SITE_USER = C.ZERO_USER
SITE_HOST = C.ZERO_HOST


@njit(cache=True)
def clear_pages(truth, pfn, pages, cnt, site):
    """A clear at a site: count it, and the pages that were already zero (redundant)."""
    redundant = 0
    for p in range(pfn, pfn + pages):
        redundant += np.int64(truth[p])
        truth[p] = 1
    cnt[site] += pages
    cnt[C.ZERO_REDUNDANT] += redundant


@njit(cache=True)
def dirty_pages(truth, writer, pfn, pages, event):
    for p in range(pfn, pfn + pages):
        truth[p] = 0
        writer[p] = event


@njit(cache=True)
def check_zeroed(truth, writer, pfn, pages, event, cnt, leaks, rstate):
    """The sanitizer: a caller relies on [pfn, pfn + pages) being zero."""
    cnt[C.ZERO_CHECKED] += pages
    for p in range(pfn, pfn + pages):
        if truth[p] == 0:
            cnt[C.ZERO_LEAK] += 1
            n = rstate[R_NLEAKS]
            if n < leaks.shape[0]:
                leaks[n, 0] = p
                leaks[n, 1] = event
                leaks[n, 2] = writer[p]
            rstate[R_NLEAKS] = n + 1


@njit(cache=True)
def zero_site(truth, pfn, pages, cnt, site, hint_usable):
    """Clear at a site unless the hint (delivered to this site) says the block is zero."""
    if hint_usable:
        cnt[C.ZERO_SKIPPED] += pages
    else:
        clear_pages(truth, pfn, pages, cnt, site)


@njit(cache=True)
def report_and_drain(z, sgl_pfn, sgl_order, lo, hi, truth, cnt, track):
    """The host processes the scatterlist (discards, so the blocks read back as zero), then
    ``page_reporting_drain`` puts each back at the tail, Reported unless it merged."""
    for k in range(lo, hi):
        pfn = sgl_pfn[k]
        pages = 1 << sgl_order[k]
        for p in range(pfn, pfn + pages):
            truth[p] = 1
        cnt[C.ZERO_HOST] += pages
        cnt[C.REPORTED_PAGES] += pages
        core.__putback_isolated_page(z, pfn, sgl_order[k], core.FPI_ZEROED if track else 0, True)


@njit(cache=True)
def page_reporting_process_free_list(z, order, mt, sgl_pfn, sgl_order, off, truth, cnt, track):
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
            core.__isolate_free_page(z, pfn, order)
            off -= 1
            sgl_pfn[off] = pfn
            sgl_order[off] = order
            pfn = nxt
            continue
        core.free_list_rotate_to_front(z, order, mt, pfn)
        report_and_drain(z, sgl_pfn, sgl_order, 0, PAGE_REPORTING_CAPACITY, truth, cnt, track)
        off = PAGE_REPORTING_CAPACITY
        budget -= 1
        pfn = z.free_head[order, mt]
    if next_pfn != core.NONE:
        core.free_list_rotate_to_front(z, order, mt, next_pfn)
    return off, requested


@njit(cache=True)
def page_reporting_process(z, reporting_order, truth, cnt, track):
    """One pass of the reporting worker over the zone; True when more work was requested."""
    sgl_pfn = np.empty(PAGE_REPORTING_CAPACITY, dtype=np.int64)
    sgl_order = np.empty(PAGE_REPORTING_CAPACITY, dtype=np.int64)
    off = PAGE_REPORTING_CAPACITY
    requested = False
    cnt[C.REPORTING_PASSES] += 1
    for order in range(reporting_order, z.conf[core.C_MAX_ORDER] + 1):
        for mt in range(z.free_head.shape[1]):
            off, req = page_reporting_process_free_list(z, order, mt, sgl_pfn, sgl_order, off,
                                                        truth, cnt, track)
            requested = requested or req
    if off < PAGE_REPORTING_CAPACITY:
        report_and_drain(z, sgl_pfn, sgl_order, off, PAGE_REPORTING_CAPACITY, truth, cnt, track)
    return requested


@njit(cache=True)
def note_report_notify(z, pol, now, rstate):
    """``__page_reporting_notify``: schedule the delayed work when a free notified it."""
    notified = z.stat[core.S_REPORT_NOTIFY]
    if notified != rstate[R_NOTIFY_SEEN]:
        rstate[R_NOTIFY_SEEN] = notified
        if rstate[R_STATE] == 0:
            rstate[R_STATE] = 1
            rstate[R_DEADLINE] = now + pol[P_REPORTING_DELAY]


@njit(cache=True)
def run_background(z, pol, now, truth, cnt, rstate):
    """Run the reporting work due by simulated time ``now`` (delayed work, 2 s by default).

    A pass that ran out of budget, or saw new notifications, reschedules itself.
    """
    while rstate[R_STATE] == 1 and rstate[R_DEADLINE] <= now:
        requested = page_reporting_process(z, pol[P_REPORTING_ORDER], truth, cnt, pol[P_TRACK])
        if requested or z.stat[core.S_REPORT_NOTIFY] != rstate[R_NOTIFY_SEEN]:
            rstate[R_NOTIFY_SEEN] = z.stat[core.S_REPORT_NOTIFY]
            rstate[R_DEADLINE] += pol[P_REPORTING_DELAY]
        else:
            rstate[R_STATE] = 0


@njit(cache=True)
def run_events(z, ev_time, ev_op, ev_order, ev_cpu, ev_gfp, ev_ref, start, stop, pol, cnt,
               truth, writer, pagebit, ev_pfn, ev_hint, leaks, rstate):
    """Consume events [start, stop). Returns the index reached, or -(index+1) on a bad event."""
    track = pol[P_TRACK] != 0
    init_on_free = pol[P_INIT_ON_FREE] != 0
    init_on_alloc = pol[P_INIT_ON_ALLOC] != 0
    aliasing = pol[P_ALIASING] != 0
    hint_design = pol[P_HINT]
    hint_lost_before_user = hint_design == HINT_LRU_BIT and pol[P_PFMEMALLOC] == 0
    for i in range(start, stop):
        if rstate[R_STATE] != 0:
            run_background(z, pol, ev_time[i], truth, cnt, rstate)
        op = ev_op[i]
        order = np.int64(ev_order[i])
        cpu = np.int64(ev_cpu[i])
        pages = np.int64(1) << order
        ev_pfn[i] = core.NONE
        if op == EV_ALLOC or op == EV_FAULT or op == EV_INFLATE:
            if op == EV_ALLOC:
                gfp = np.int64(ev_gfp[i])
            elif op == EV_INFLATE:
                gfp = np.int64(GFP_BALLOON)
            elif order == 0:
                gfp = np.int64(GFP_HIGHUSER_MOVABLE) | (0 if aliasing else __GFP_ZERO)
            else:
                gfp = np.int64(GFP_TRANSHUGE)
            pfn = core.alloc_pages(z, order, gfp, cpu)
            if pfn < core.NONE:
                return -(i + 1)
            if pfn == core.NONE:
                cnt[C.ALLOC_FAIL] += 1
                continue
            ev_pfn[i] = pfn
            cnt[C.PGALLOC] += pages
            cnt[C.ALLOC_BLOCKS] += 1
            hint = track and core.page_is_zeroed(z, pfn)
            ev_hint[i] = hint
            if hint:
                cnt[C.HINT_HITS] += 1
            # post_alloc_hook
            if not init_on_free and (init_on_alloc or (gfp & __GFP_ZERO) != 0):
                zero_site(truth, pfn, pages, cnt, SITE_ALLOC, hint)
            if op == EV_FAULT:
                # user_alloc_needs_zeroing(): aliasing caches, or init_on_alloc off.
                if (order > 0 or aliasing) and (aliasing or not init_on_alloc):
                    usable = hint and not hint_lost_before_user
                    if hint and hint_lost_before_user:
                        cnt[C.ZERO_HINT_LOST] += pages
                    zero_site(truth, pfn, pages, cnt, SITE_USER, usable)
                check_zeroed(truth, writer, pfn, pages, i, cnt, leaks, rstate)
            elif op == EV_ALLOC:
                if (gfp & __GFP_ZERO) != 0 or init_on_alloc or init_on_free:
                    check_zeroed(truth, writer, pfn, pages, i, cnt, leaks, rstate)
                # Non-folio allocation: designs that keep the hint in struct page leave it.
                if hint and (hint_design == HINT_FOLIO_FLAG or
                             (hint_design == HINT_LRU_BIT and not hint_lost_before_user)):
                    pagebit[pfn] = 1
            if op == EV_INFLATE:
                continue  # handed to the host; the guest never writes it
            dirty_pages(truth, writer, pfn, pages, i)
        elif op == EV_FREE or op == EV_DEFLATE:
            ref = ev_ref[i]
            if ref < 0 or ref >= i:
                return -(i + 1)
            pfn = ev_pfn[ref]
            if pfn == core.NONE:
                continue
            ev_pfn[ref] = core.NONE  # freed: a second free of it is a no-op
            order = np.int64(ev_order[ref])
            pages = np.int64(1) << order
            fpi = 0
            if op == EV_DEFLATE:
                # The host discarded the page: it reads back as zero at no cost to the guest.
                for p in range(pfn, pfn + pages):
                    truth[p] = 1
                cnt[C.ZERO_HOST] += pages
                if pol[P_BALLOON] != 0:
                    fpi |= core.FPI_ZEROED
            if init_on_free:
                clear_pages(truth, pfn, pages, cnt, SITE_FREE)
                if track:
                    fpi |= core.FPI_ZEROED
            if pagebit[pfn]:
                pagebit[pfn] = 0
                if pol[P_FREE_SIGNAL] == 1:
                    fpi |= core.FPI_ZEROED  # the buddy trusts a bit nobody cleared
            res = core.free_pages(z, pfn, order, fpi, cpu)
            if res < 0:
                return -(i + 1)
            cnt[C.PGFREE] += pages
            if pol[P_REPORTING] != 0:
                note_report_notify(z, pol, ev_time[i], rstate)
        elif op == EV_IDLE:
            pass
        else:
            return -(i + 1)
    return stop
