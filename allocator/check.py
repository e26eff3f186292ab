"""Invariant checks over a whole zone (compiled: they walk every page and list).

``check_zone`` returns (0, 0) or (code, pfn) for the first invariant broken; ``CHECKS`` names
each code. Used by ``BuddyAllocator.check()`` and the property tests.
"""
import numpy as np
from numba import njit

from . import core
from .core import NONE, page_is_buddy
from .flags import PG_ALLOC, PG_BUDDY, PG_HINT, PG_ISOLATED, PG_PCP, PG_REPORTED, PG_ZEROED
from .pcp import PCP_HIGH, PCP_HIGH_MAX, PCP_HIGH_MIN, ZS_NR_FREE_PAGES

CHECKS = {
    1: "free list link broken (prev/next disagree)",
    2: "block on a free list is not PageBuddy or has another order",
    3: "free block on the list of another migratetype than its pageblock",
    4: "nr_free disagrees with the free list length",
    5: "nr_zeroed disagrees with the zeroed blocks on the free lists",
    6: "pcp list entry is not a PCP head of the list's order",
    7: "pcp count disagrees with the pages on its lists",
    8: "page belongs to no block (not free, on pcp, allocated or isolated)",
    9: "block head not aligned to its order or past the zone end",
    10: "flags set on a page inside a block (only heads carry flags)",
    11: "two free buddies of the same order left unmerged",
    12: "PG_zeroed or PageReported on a page that is not a free block head",
    13: "hint bit on a page that is not an allocated head",
    14: "pages do not add up (free + pcp + allocated + isolated != nr_pages)",
    15: "PageBuddy block that is on no free list",
    16: "NR_FREE_PAGES disagrees with the pages on the free lists",
    17: "pcp high outside [high_min, max(high_max, count)]",
}


@njit(cache=True)
def check_zone(z):
    nr_pages = z.conf[core.C_NR_PAGES]
    max_order = z.conf[core.C_MAX_ORDER]
    buddy_blocks = 0
    buddy_pages = 0
    for order in range(max_order + 1):
        zeroed = 0
        for mt in range(z.free_head.shape[1]):
            n = 0
            prev = NONE
            pfn = z.free_head[order, mt]
            while pfn != NONE:
                if z.prev[pfn] != prev:
                    return 1, pfn
                if not (z.flags[pfn] & PG_BUDDY) or z.order[pfn] != order:
                    return 2, pfn
                if core.get_pfnblock_migratetype(z, pfn) != mt:
                    return 3, pfn
                if z.flags[pfn] & PG_ZEROED:
                    zeroed += 1
                n += 1
                if n > nr_pages:
                    return 1, pfn
                prev = pfn
                pfn = z.next[pfn]
            if z.free_tail[order, mt] != prev:
                return 1, prev
            if n != z.nr_free[order, mt]:
                return 4, order
            buddy_blocks += n
            buddy_pages += n << order
        if zeroed != z.nr_zeroed[order]:
            return 5, order
    pcp_pages = 0
    for cpu in range(z.pcp_head.shape[0]):
        cpu_pages = 0
        for pindex in range(z.pcp_head.shape[1]):
            order = core.pindex_to_order(z, pindex)
            prev = NONE
            pfn = z.pcp_head[cpu, pindex]
            while pfn != NONE:
                if z.prev[pfn] != prev:
                    return 1, pfn
                if not (z.flags[pfn] & PG_PCP) or z.order[pfn] != order:
                    return 6, pfn
                cpu_pages += 1 << order
                if cpu_pages > nr_pages:
                    return 7, cpu
                prev = pfn
                pfn = z.next[pfn]
            if z.pcp_tail[cpu, pindex] != prev:
                return 1, prev
        if cpu_pages != z.pcp_count[cpu]:
            return 7, cpu
        pcp_pages += cpu_pages

    alloc_pages = 0
    isolated_pages = 0
    heads_buddy = 0
    pfn = 0
    while pfn < nr_pages:
        f = z.flags[pfn]
        if not (f & (PG_BUDDY | PG_PCP | PG_ALLOC | PG_ISOLATED)):
            return 8, pfn
        order = np.int64(z.order[pfn])
        if order < 0 or order > max_order or pfn & ((1 << order) - 1) or pfn + (1 << order) > nr_pages:
            return 9, pfn
        if (f & (PG_ZEROED | PG_REPORTED)) and not (f & (PG_BUDDY | PG_PCP)):
            return 12, pfn
        if (f & PG_REPORTED) and not (f & PG_BUDDY):
            return 12, pfn
        if (f & PG_HINT) and not (f & PG_ALLOC):
            return 13, pfn
        if f & PG_BUDDY:
            heads_buddy += 1
            if order < max_order:
                buddy = pfn ^ (1 << order)
                # All model migratetypes are mergeable, so free buddies always merge.
                if page_is_buddy(z, buddy, order):
                    return 11, pfn
        elif f & PG_ALLOC:
            alloc_pages += 1 << order
        elif f & PG_ISOLATED:
            isolated_pages += 1 << order
        for p in range(pfn + 1, pfn + (1 << order)):
            if z.flags[p] != 0:
                return 10, p
        pfn += 1 << order
    if heads_buddy != buddy_blocks:
        return 15, 0
    if buddy_pages != z.zstate[ZS_NR_FREE_PAGES]:
        return 16, 0
    for cpu in range(z.pcp_state.shape[0]):
        high = z.pcp_state[cpu, PCP_HIGH]
        lo = z.pcp_state[cpu, PCP_HIGH_MIN]
        hi = z.pcp_state[cpu, PCP_HIGH_MAX]
        # A tiny zone can have high_min > high_max: the kernel's clamp() then gives high_max,
        # and free_high's max(..., high_min) high_min, until the next clamp. Above a count
        # over high_max (a seeded pageset), decay_pcp_high() sets count - (batch << 5), over
        # high_max too, until the next clamp.
        if high < min(lo, hi) or high > max(lo, hi, z.pcp_count[cpu]):
            return 17, cpu
    if alloc_pages != z.stat[core.S_NR_ALLOCATED] or isolated_pages != z.stat[core.S_NR_ISOLATED]:
        return 14, 0
    if buddy_pages + pcp_pages + alloc_pages + isolated_pages != nr_pages:
        return 14, 0
    return 0, 0
