"""The compiled core: one zone of mm/page_alloc.c over a struct of arrays.

Every function takes the zone (its arrays, see ``state.py``; compiled code gets them through a
borrowed handle, ``handle.py``) and runs under numba's ``njit`` or, with ``NUMBA_DISABLE_JIT=1``,
as plain Python: the two give identical results. Names are the kernel's; each function notes
where the model simplifies.

Errors are returned as negative codes (``E_*``), never raised: compiled loops stay compiled and
the Python layer turns a code into a ``BadPageError`` naming the pfn and the reason.

Kernel version followed: 6.18 (``__rmqueue`` with claim/steal modes from the 6.15 rework,
``split_large_buddy`` on every buddy free, ``move_to_free_list`` using ``list_move_tail``).
Simplifications: one zone, no guard pages, no shuffle, no CMA/HighAtomic/Isolate migratetypes,
watermarks only where a model without reclaim can follow them (``__isolate_free_page``'s min
watermark, ``ZONE_BELOW_HIGH`` for pcp tuning; an allocation fails only when no block fits), no
ALLOC_NOFRAGMENT (set for a Normal zone above DMA32: fallbacks then claim pageblock-sized
blocks only, until a retry without it; the same wherever one is left), no compaction
capture. Per-cpu lists auto-tune as 6.7+ does (``pcp.py``) unless the zone is built with a
fixed ``high`` (C_PCP_AUTO 0: drain ``batch`` pages at ``high``, refill
``max(batch >> order, 2)`` blocks, as before 6.7 without ``free_factor``).
"""
import numpy as np
from numba import njit

from .flags import (
    FALLBACKS,
    MIGRATE_PCPTYPES,
    PAGE_ALLOC_COSTLY_ORDER,
    PG_ALLOC,
    PG_BUDDY,
    PG_HINT,
    PG_ISOLATED,
    PG_PCP,
    PG_REPORTED,
    PG_ZEROED,
)
from .pcp import (PCP_FREE_COUNT, PCP_HIGH, PCP_HIGH_MIN, ZONE_BELOW_HIGH, ZS_FLAGS,
                  ZS_NR_FREE_PAGES, ZS_WMARK_HIGH, ZS_WMARK_MIN, nr_pcp_free, nr_pcp_high,
                  pcp_free_high)
from .pcp import nr_pcp_alloc as nr_pcp_alloc_auto
from .watermarks import PCP_BATCH_SCALE_MAX

# FPI bits as plain ints for compiled code (FPI in flags.py is the public spelling).
FPI_SKIP_REPORT_NOTIFY = 1 << 0
FPI_TO_TAIL = 1 << 1
FPI_ZEROED = 1 << 4

MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2

# Indices into Zone.conf.
C_NR_PAGES = 0
C_MAX_ORDER = 1
C_PAGEBLOCK_ORDER = 2
C_PCP = 3
C_HIGH = 4
C_BATCH = 5
C_MOBILITY = 6
C_NR_CPUS = 7
C_THP = 8
C_REPORTING_ORDER = 9
C_PCP_AUTO = 10  # 1: pcp high auto-tuned (6.7+); 0: fixed at C_HIGH
NR_CONF = 11

# Indices into Zone.stat: the allocator's own event counters (simulator-only names).
S_PGALLOC = 0  # pages allocated
S_PGFREE = 1  # pages freed by callers
S_ALLOC_FAIL = 2  # allocations that found no block
S_BAD_PAGE = 3  # misuse reported in lenient mode
S_ZEROED_DROPPED_MERGE = 4  # zeroed pages whose flag was lost merging with a dirty buddy
S_REPORT_NOTIFY = 5  # page_reporting_notify_free calls that passed the order test
S_PCP_DRAIN = 6  # pages drained from pcp lists to the buddy
S_PCP_REFILL = 7  # blocks moved from the buddy to pcp lists by rmqueue_bulk
S_EXTFRAG = 8  # fallback allocations (mm_page_alloc_extfrag)
S_ALLOC_ZEROED = 9  # pages handed out with the zeroed hint set
S_NR_ALLOCATED = 10  # gauge: pages currently allocated
S_NR_ISOLATED = 11  # gauge: pages currently isolated
S_ALLOC_PFN_MISS = 12  # alloc_pfn calls whose block was not free
S_PCP_REFILL_PAGES = 13  # pages moved from the buddy to pcp lists by rmqueue_bulk
NR_STATS = 14
STAT_NAMES = (
    "pgalloc", "pgfree", "alloc_fail", "bad_page", "zeroed_dropped_merge", "report_notify",
    "pcp_drain", "pcp_refill", "extfrag", "alloc_zeroed", "nr_allocated", "nr_isolated",
    "alloc_pfn_miss", "pcp_refill_pages",
)

# Error codes (returned negated by operations).
E_RANGE = 1
E_UNALIGNED = 2
E_DOUBLE_FREE = 3
E_NOT_ALLOCATED = 4
E_WRONG_ORDER = 5
E_BAD_ORDER = 6
E_BAD_GFP = 7
E_NOT_FREE = 8
E_NOT_ISOLATED = 9
E_BAD_CPU = 10
E_BAD_OP = 11
E_BAD_REF = 12

# rmqueue modes (enum rmqueue_mode, 6.15+).
RMQUEUE_NORMAL = 0
RMQUEUE_CLAIM = 1
RMQUEUE_STEAL = 2

NR_LOWORDER_PCP_LISTS = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1)
NR_PCP_LISTS = NR_LOWORDER_PCP_LISTS + 2

NONE = -1


# ---------------------------------------------------------------------------------------------
# Doubly linked lists threaded through Zone.next/prev; heads and tails in 2-D arrays.

# Lists take the zone and a selector rather than the head and tail arrays: an array argument is
# seven machine words and a reference count check per call.
BUDDY_LIST = 0
PCP_LIST = 1


@njit(cache=True)
def list_add(z, which, i, j, pfn, to_tail):
    nxt = z.next
    prv = z.prev
    head = z.pcp_head if which == PCP_LIST else z.free_head
    tail = z.pcp_tail if which == PCP_LIST else z.free_tail
    if to_tail:
        t = tail[i, j]
        prv[pfn] = t
        nxt[pfn] = NONE
        if t == NONE:
            head[i, j] = pfn
        else:
            nxt[t] = pfn
        tail[i, j] = pfn
    else:
        h = head[i, j]
        nxt[pfn] = h
        prv[pfn] = NONE
        if h == NONE:
            tail[i, j] = pfn
        else:
            prv[h] = pfn
        head[i, j] = pfn


@njit(cache=True)
def list_del(z, which, i, j, pfn):
    nxt = z.next
    prv = z.prev
    head = z.pcp_head if which == PCP_LIST else z.free_head
    tail = z.pcp_tail if which == PCP_LIST else z.free_tail
    n = nxt[pfn]
    p = prv[pfn]
    if p == NONE:
        head[i, j] = n
    else:
        nxt[p] = n
    if n == NONE:
        tail[i, j] = p
    else:
        prv[n] = p


# ---------------------------------------------------------------------------------------------
# Buddy free lists

@njit(cache=True)
def get_pfnblock_migratetype(z, pfn):
    return z.pageblock_mt[pfn >> z.conf[C_PAGEBLOCK_ORDER]]


@njit(cache=True)
def set_pageblock_migratetype(z, pfn, mt):
    if z.conf[C_MOBILITY] == 0:
        mt = MIGRATE_UNMOVABLE  # page_group_by_mobility_disabled
    z.pageblock_mt[pfn >> z.conf[C_PAGEBLOCK_ORDER]] = mt


@njit(cache=True)
def __add_to_free_list(z, pfn, order, mt, to_tail):
    """Link a block whose flags (PG_ZEROED) are already set; marks it PageBuddy."""
    list_add(z, BUDDY_LIST, order, mt, pfn, to_tail)
    z.flags[pfn] |= PG_BUDDY
    z.order[pfn] = order
    z.nr_free[order, mt] += 1
    z.zstate[ZS_NR_FREE_PAGES] += 1 << order
    if z.flags[pfn] & PG_ZEROED:
        z.nr_zeroed[order] += 1


@njit(cache=True)
def __del_page_from_free_list(z, pfn, order, mt):
    """Unlink a free block; clears PageBuddy and PageReported, keeps PG_ZEROED for the caller."""
    list_del(z, BUDDY_LIST, order, mt, pfn)
    if z.flags[pfn] & PG_ZEROED:
        z.nr_zeroed[order] -= 1
    z.flags[pfn] &= 0xFF ^ (PG_BUDDY | PG_REPORTED)
    z.nr_free[order, mt] -= 1
    z.zstate[ZS_NR_FREE_PAGES] -= 1 << order


@njit(cache=True)
def move_to_free_list(z, pfn, order, old_mt, new_mt):
    """``move_to_free_list``: to the TAIL of the new list (list_move_tail), flags kept."""
    list_del(z, BUDDY_LIST, order, old_mt, pfn)
    z.nr_free[order, old_mt] -= 1
    list_add(z, BUDDY_LIST, order, new_mt, pfn, True)
    z.nr_free[order, new_mt] += 1


@njit(cache=True)
def page_is_buddy(z, pfn, order):
    """A free buddy-list block of exactly this order starts at pfn (and pfn is in the zone)."""
    if pfn < 0 or pfn >= z.conf[C_NR_PAGES]:
        return False
    return (z.flags[pfn] & PG_BUDDY) != 0 and z.order[pfn] == order


@njit(cache=True)
def __free_one_page(z, pfn, order, mt, fpi):
    """Free a block into the buddy lists, merging with free buddies of the same order.

    The merged block is zeroed only if every merged piece was. Placement: FPI_TO_TAIL, else
    ``buddy_merge_likely`` (shuffle off), else the head. The buddy tests are written out here
    (what ``page_is_buddy`` does): a helper call costs more than the test on this hot path.
    """
    max_order = z.conf[C_MAX_ORDER]
    pageblock_order = z.conf[C_PAGEBLOCK_ORDER]
    nr_pages = z.conf[C_NR_PAGES]
    flags = z.flags
    orders = z.order
    zeroed = (fpi & FPI_ZEROED) != 0
    buddy_pfn = 0
    while order < max_order:
        buddy_pfn = pfn ^ (1 << order)
        if buddy_pfn >= nr_pages or not (flags[buddy_pfn] & PG_BUDDY) or orders[buddy_pfn] != order:
            break
        buddy_mt = mt
        if order >= pageblock_order:
            # Unmovable, Movable and Reclaimable are all mergeable (migratetype_is_mergeable).
            buddy_mt = get_pfnblock_migratetype(z, buddy_pfn)
        buddy_zeroed = (flags[buddy_pfn] & PG_ZEROED) != 0
        __del_page_from_free_list(z, buddy_pfn, order, buddy_mt)
        flags[buddy_pfn] = 0
        if buddy_zeroed != zeroed:
            z.stat[S_ZEROED_DROPPED_MERGE] += 1 << order
        zeroed = zeroed and buddy_zeroed
        if buddy_mt != mt:
            set_pageblock_migratetype(z, buddy_pfn, mt)
        pfn = buddy_pfn & pfn
        order += 1

    flags[pfn] = PG_ZEROED if zeroed else 0
    to_tail = (fpi & FPI_TO_TAIL) != 0
    if not to_tail and order < max_order - 1:
        # buddy_merge_likely(): is the order+1 parent's buddy free?
        higher = (buddy_pfn & pfn) ^ (1 << (order + 1))
        to_tail = higher < nr_pages and (flags[higher] & PG_BUDDY) != 0 and orders[higher] == order + 1
    __add_to_free_list(z, pfn, order, mt, to_tail)
    if not (fpi & FPI_SKIP_REPORT_NOTIFY) and order >= z.conf[C_REPORTING_ORDER]:
        z.stat[S_REPORT_NOTIFY] += 1
    return pfn


@njit(cache=True)
def split_large_buddy(z, pfn, order, fpi):
    """Free a block in pageblock-sized pieces, each with its own pageblock's migratetype."""
    end = pfn + (1 << order)
    pageblock_order = z.conf[C_PAGEBLOCK_ORDER]
    if order > pageblock_order:
        order = pageblock_order
    while True:
        __free_one_page(z, pfn, order, get_pfnblock_migratetype(z, pfn), fpi)
        pfn += 1 << order
        if pfn >= end:
            break


@njit(cache=True)
def expand(z, pfn, low, high, mt, zeroed):
    """Split [pfn, pfn + 2^high): upper halves go to the HEAD of each lower order's list."""
    size = 1 << high
    while high > low:
        high -= 1
        size >>= 1
        sub = pfn + size
        z.flags[sub] = PG_ZEROED if zeroed else 0
        __add_to_free_list(z, sub, high, mt, False)


@njit(cache=True)
def page_del_and_expand(z, pfn, order, current_order, mt):
    zeroed = (z.flags[pfn] & PG_ZEROED) != 0
    __del_page_from_free_list(z, pfn, current_order, mt)
    expand(z, pfn, order, current_order, mt, zeroed)


#: How far from each end of a list the zeroed-aware placement looks (simulator-only option).
PREF_SCAN = 8
PREF_NONE = -1  # the kernel's behaviour: the list head


@njit(cache=True)
def find_preferred(z, head, tail, pref):
    """A block whose PG_zeroed matches pref (1 zeroed, 0 dirty) among the PREF_SCAN entries at
    each end of a list (zeroed blocks collect at tails: reporting, offload, FPI_TO_TAIL), or
    NONE. Simulator-only zeroed-aware placement."""
    want = pref == 1
    pfn = head
    for _ in range(PREF_SCAN):
        if pfn == NONE:
            return NONE
        if ((z.flags[pfn] & PG_ZEROED) != 0) == want:
            return pfn
        pfn = z.next[pfn]
    pfn = tail
    for _ in range(PREF_SCAN):
        if pfn == NONE:
            break
        if ((z.flags[pfn] & PG_ZEROED) != 0) == want:
            return pfn
        pfn = z.prev[pfn]
    return NONE


@njit(cache=True)
def __rmqueue_smallest(z, order, mt, pref=PREF_NONE):
    """The smallest block from its list head. With a zeroed preference (simulator-only),
    first look for a zeroed block at any order >= order; with a dirty one, prefer a dirty
    block among the candidates of the smallest order."""
    max_order = z.conf[C_MAX_ORDER]
    if pref == 1:
        for current_order in range(order, max_order + 1):
            pfn = find_preferred(z, z.free_head[current_order, mt], z.free_tail[current_order, mt], 1)
            if pfn != NONE:
                page_del_and_expand(z, pfn, order, current_order, mt)
                return pfn
    for current_order in range(order, max_order + 1):
        pfn = z.free_head[current_order, mt]
        if pfn == NONE:
            continue
        if pref == 0:
            dirty = find_preferred(z, pfn, z.free_tail[current_order, mt], 0)
            if dirty != NONE:
                pfn = dirty
        page_del_and_expand(z, pfn, order, current_order, mt)
        return pfn
    return NONE


@njit(cache=True)
def should_try_claim_block(z, order, start_mt):
    pageblock_order = z.conf[C_PAGEBLOCK_ORDER]
    if order >= pageblock_order:
        return True
    if order >= pageblock_order // 2:
        return True
    if start_mt == MIGRATE_RECLAIMABLE or start_mt == MIGRATE_UNMOVABLE:
        return True
    if z.conf[C_MOBILITY] == 0:
        return True
    return False


@njit(cache=True)
def find_suitable_fallback(z, order, mt, claimable):
    """The first fallback migratetype with a free block of this order; -1 none; -2 stop."""
    if claimable and not should_try_claim_block(z, order, mt):
        return -2
    for i in range(MIGRATE_PCPTYPES - 1):
        fallback_mt = FALLBACKS[mt, i]
        if z.free_head[order, fallback_mt] != NONE:
            return fallback_mt
    return -1


@njit(cache=True)
def change_pageblock_range(z, pfn, order, mt):
    pageblock_order = z.conf[C_PAGEBLOCK_ORDER]
    for i in range(1 << (order - pageblock_order)):
        set_pageblock_migratetype(z, pfn + (i << pageblock_order), mt)


@njit(cache=True)
def prep_move_freepages_block(z, pfn):
    """(start_pfn, free pages, movable pages) of pfn's pageblock; start -1 past the zone end.

    Movable pages are pages of allocated blocks that asked for MIGRATE_MOVABLE: the model's
    stand-in for PageLRU / movable_ops (simulator simplification).
    """
    nr_pageblock = 1 << z.conf[C_PAGEBLOCK_ORDER]
    start = pfn & ~(nr_pageblock - 1)
    end = start + nr_pageblock - 1
    if end >= z.conf[C_NR_PAGES]:
        return NONE, 0, 0
    free_pages = 0
    movable = 0
    p = start
    while p <= end:
        f = z.flags[p]
        # int64 casts: NumPy 2 keeps int8 << int8 as int8 when interpreted (numba widens).
        size = np.int64(1) << np.int64(z.order[p])
        if f & PG_BUDDY:
            free_pages += size
            p += size
        elif f & PG_ALLOC:
            if z.next[p] == MIGRATE_MOVABLE:
                movable += size
            p += size
        elif f & (PG_PCP | PG_ISOLATED):
            p += size
        else:
            p += 1
    return start, free_pages, movable


@njit(cache=True)
def __move_freepages_block(z, start, old_mt, new_mt):
    end = start + (1 << z.conf[C_PAGEBLOCK_ORDER])
    moved = 0
    p = start
    while p < end:
        if z.flags[p] & PG_BUDDY:
            o = np.int64(z.order[p])
            move_to_free_list(z, p, o, old_mt, new_mt)
            p += 1 << o
            moved += 1 << o
        else:
            p += 1
    return moved


@njit(cache=True)
def move_freepages_block(z, pfn, old_mt, new_mt):
    if z.conf[C_MOBILITY] == 0:
        # Deviation: the kernel would move the pages to new_mt's list while
        # set_pageblock_migratetype() keeps the block Unmovable; keep lists and block agreeing.
        new_mt = MIGRATE_UNMOVABLE
    start, _, _ = prep_move_freepages_block(z, pfn)
    if start == NONE:
        return False
    __move_freepages_block(z, start, old_mt, new_mt)
    set_pageblock_migratetype(z, start, new_mt)
    return True


@njit(cache=True)
def try_to_claim_block(z, pfn, current_order, order, start_type, block_type):
    if current_order >= z.conf[C_PAGEBLOCK_ORDER]:
        zeroed = (z.flags[pfn] & PG_ZEROED) != 0
        __del_page_from_free_list(z, pfn, current_order, block_type)
        change_pageblock_range(z, pfn, current_order, start_type)
        expand(z, pfn, order, current_order, start_type, zeroed)
        return pfn
    start, free_pages, movable_pages = prep_move_freepages_block(z, pfn)
    if start == NONE:
        return NONE
    if start_type == MIGRATE_MOVABLE:
        alike_pages = movable_pages
    elif block_type == MIGRATE_MOVABLE:
        alike_pages = (1 << z.conf[C_PAGEBLOCK_ORDER]) - (free_pages + movable_pages)
    else:
        alike_pages = 0
    if free_pages + alike_pages >= (1 << (z.conf[C_PAGEBLOCK_ORDER] - 1)) or z.conf[C_MOBILITY] == 0:
        __move_freepages_block(z, start, block_type, start_type)
        set_pageblock_migratetype(z, start, start_type)
        return __rmqueue_smallest(z, order, start_type, PREF_NONE)
    return NONE


@njit(cache=True)
def __rmqueue_claim(z, order, start_mt):
    """Take the largest fallback block and claim its pageblock(s) for start_mt."""
    for current_order in range(z.conf[C_MAX_ORDER], order - 1, -1):
        fallback_mt = find_suitable_fallback(z, current_order, start_mt, True)
        if fallback_mt == -1:
            continue
        if fallback_mt == -2:
            break
        pfn = z.free_head[current_order, fallback_mt]
        pfn = try_to_claim_block(z, pfn, current_order, order, start_mt, fallback_mt)
        if pfn != NONE:
            z.stat[S_EXTFRAG] += 1
            return pfn
    return NONE


@njit(cache=True)
def __rmqueue_steal(z, order, start_mt):
    """Take the smallest fallback block without claiming its pageblock."""
    for current_order in range(order, z.conf[C_MAX_ORDER] + 1):
        fallback_mt = find_suitable_fallback(z, current_order, start_mt, False)
        if fallback_mt == -1:
            continue
        pfn = z.free_head[current_order, fallback_mt]
        page_del_and_expand(z, pfn, order, current_order, fallback_mt)
        z.stat[S_EXTFRAG] += 1
        return pfn
    return NONE


@njit(cache=True)
def __rmqueue(z, order, mt, mode, pref=PREF_NONE):
    """Returns (pfn, mode); mode carries rmqueue_bulk's memory of where pages were found."""
    if mode == RMQUEUE_NORMAL:
        pfn = __rmqueue_smallest(z, order, mt, pref)
        if pfn != NONE:
            return pfn, mode
    if mode <= RMQUEUE_CLAIM:
        pfn = __rmqueue_claim(z, order, mt)
        if pfn != NONE:
            return pfn, RMQUEUE_NORMAL
    pfn = __rmqueue_steal(z, order, mt)
    if pfn != NONE:
        return pfn, RMQUEUE_STEAL
    return NONE, mode


# ---------------------------------------------------------------------------------------------
# Per-cpu page lists

@njit(cache=True)
def pcp_allowed_order(z, order):
    if order <= PAGE_ALLOC_COSTLY_ORDER:
        return True
    return z.conf[C_THP] != 0 and order == z.conf[C_PAGEBLOCK_ORDER]


@njit(cache=True)
def order_to_pindex(z, mt, order):
    if order > PAGE_ALLOC_COSTLY_ORDER:
        return NR_LOWORDER_PCP_LISTS + (1 if mt == MIGRATE_MOVABLE else 0)
    return MIGRATE_PCPTYPES * order + mt


@njit(cache=True)
def pindex_to_order(z, pindex):
    if pindex >= NR_LOWORDER_PCP_LISTS:
        return z.conf[C_PAGEBLOCK_ORDER]
    return pindex // MIGRATE_PCPTYPES


@njit(cache=True)
def free_pcppages_bulk(z, cpu, count, pindex):
    """Drain up to count pages, oldest (tail) first, starting with the list that overflowed.

    Each list is emptied before moving round-robin to the next, as in 6.x. A page keeps its
    PG_ZEROED into the buddy (the flag lives on the page, not on the list).
    """
    count = min(z.pcp_count[cpu], count)
    pindex -= 1
    while count > 0:
        while True:
            pindex += 1
            if pindex > NR_PCP_LISTS - 1:
                pindex = 0
            if z.pcp_head[cpu, pindex] != NONE:
                break
        order = pindex_to_order(z, pindex)
        nr_pages = 1 << order
        while True:
            pfn = z.pcp_tail[cpu, pindex]
            list_del(z, PCP_LIST, cpu, pindex, pfn)
            count -= nr_pages
            z.pcp_count[cpu] -= nr_pages
            fpi = FPI_ZEROED if z.flags[pfn] & PG_ZEROED else 0
            z.flags[pfn] = 0
            z.stat[S_PCP_DRAIN] += nr_pages
            __free_one_page(z, pfn, order, get_pfnblock_migratetype(z, pfn), fpi)
            if count <= 0 or z.pcp_head[cpu, pindex] == NONE:
                break


@njit(cache=True)
def drain_pages(z, cpu):
    free_pcppages_bulk(z, cpu, z.pcp_count[cpu], 0)


@njit(cache=True)
def nr_pcp_alloc(z, cpu, order):
    """Blocks per refill: ``nr_pcp_alloc()`` (pcp.py) when auto-tuned; with a fixed high,
    batch scaled down by order, at least 2 (no alloc_factor doubling)."""
    batch = z.conf[C_BATCH]
    if z.conf[C_PCP_AUTO] != 0:
        return nr_pcp_alloc_auto(z, cpu, batch, order)
    if batch > 1:
        batch = max(batch >> order, 2)
    return batch


@njit(cache=True)
def zone_watermark_ok(z, order, mark):
    """``__zone_watermark_ok()`` of a zone without lowmem_reserve, CMA or HighAtomic
    reserves: free pages beyond the request above mark, and for order > 0 a free block of at
    least that order on a list an allocation may use."""
    free_pages = z.zstate[ZS_NR_FREE_PAGES] - ((1 << order) - 1)
    if free_pages <= mark:
        return False
    if order == 0:
        return True
    for o in range(order, z.conf[C_MAX_ORDER] + 1):
        for mt in range(MIGRATE_PCPTYPES):
            if z.free_head[o, mt] != NONE:
                return True
    return False


@njit(cache=True)
def free_frozen_page_commit(z, cpu, pfn, order, pindex):
    """The block is on the list head: drain if the count reached ``nr_pcp_high()``."""
    batch = z.conf[C_BATCH]
    if z.conf[C_PCP_AUTO] == 0:
        if z.pcp_count[cpu] >= z.conf[C_HIGH]:
            free_pcppages_bulk(z, cpu, batch, pindex)
        return
    free_high = pcp_free_high(z, cpu, order, batch)
    high = nr_pcp_high(z, cpu, batch, free_high)
    if z.pcp_count[cpu] >= high:
        free_pcppages_bulk(z, cpu, nr_pcp_free(z, cpu, batch, high, free_high), pindex)
        zs = z.zstate
        if zs[ZS_FLAGS] & ZONE_BELOW_HIGH and zone_watermark_ok(z, 0, zs[ZS_WMARK_HIGH]):
            zs[ZS_FLAGS] &= ~ZONE_BELOW_HIGH


@njit(cache=True)
def decay_pcp_high(z, cpu):
    """``decay_pcp_high()``, from the vmstat worker once a second: lower ``high`` by an eighth
    (releasing at most ``batch << PCP_BATCH_SCALE_MAX`` pages a tick, never below high_min)
    and drain what sits above it, ``batch`` pages a call (fc4b909c368f, "batch page freeing in
    decay_pcp_high", in 6.18.y since the SMP=n fix 038a102535eb). Each call frees whole
    blocks from pindex 0 on and the count goes down by ``batch`` whatever it freed, so with
    THPs on the lists a tick drains a THP a call: far more than ``count - high``. True while
    there is more to do."""
    ps = z.pcp_state
    high_min = ps[cpu, PCP_HIGH_MIN]
    batch = z.conf[C_BATCH]
    todo = False
    if ps[cpu, PCP_HIGH] > high_min:
        high = ps[cpu, PCP_HIGH]
        ps[cpu, PCP_HIGH] = max(z.pcp_count[cpu] - (batch << PCP_BATCH_SCALE_MAX),
                                high - (high >> 3), high_min)
        if ps[cpu, PCP_HIGH] > high_min:
            todo = True
    to_drain = z.pcp_count[cpu] - ps[cpu, PCP_HIGH]
    while to_drain > 0:
        batched = min(to_drain, batch)
        free_pcppages_bulk(z, cpu, batched, 0)
        todo = True
        to_drain -= batched
    return todo


@njit(cache=True)
def rmqueue_bulk(z, cpu, order, count, mt, pindex):
    """Refill a pcp list with up to count blocks from the buddy, each added at the tail."""
    mode = RMQUEUE_NORMAL
    i = 0
    while i < count:
        pfn, mode = __rmqueue(z, order, mt, mode, PREF_NONE)
        if pfn == NONE:
            break
        z.flags[pfn] = PG_PCP | (z.flags[pfn] & PG_ZEROED)
        z.order[pfn] = order
        list_add(z, PCP_LIST, cpu, pindex, pfn, True)
        i += 1
    z.stat[S_PCP_REFILL] += i
    z.stat[S_PCP_REFILL_PAGES] += i << order
    return i


@njit(cache=True)
def rmqueue_pcplist(z, cpu, order, mt, pref=PREF_NONE):
    pindex = order_to_pindex(z, mt, order)
    if z.conf[C_PCP_AUTO] != 0:
        z.pcp_state[cpu, PCP_FREE_COUNT] >>= 1  # an allocation ends a run of frees
    if z.pcp_head[cpu, pindex] == NONE:
        alloced = rmqueue_bulk(z, cpu, order, nr_pcp_alloc(z, cpu, order), mt, pindex)
        z.pcp_count[cpu] += alloced << order
        if z.pcp_head[cpu, pindex] == NONE:
            return NONE
    pfn = z.pcp_head[cpu, pindex]
    if pref != PREF_NONE:
        preferred = find_preferred(z, pfn, z.pcp_tail[cpu, pindex], pref)
        if preferred != NONE:
            pfn = preferred
    list_del(z, PCP_LIST, cpu, pindex, pfn)
    z.pcp_count[cpu] -= 1 << order
    z.flags[pfn] &= 0xFF ^ PG_PCP
    return pfn


@njit(cache=True)
def prep_new_page(z, pfn, order, mt):
    """Mark an allocated head; read PG_ZEROED into the hint and clear the flag."""
    zeroed = (z.flags[pfn] & PG_ZEROED) != 0
    z.flags[pfn] = PG_ALLOC | (PG_HINT if zeroed else 0)
    z.order[pfn] = order
    z.next[pfn] = mt  # allocated heads keep their migratetype in the unused link
    z.prev[pfn] = NONE
    z.stat[S_PGALLOC] += 1 << order
    z.stat[S_NR_ALLOCATED] += 1 << order
    if zeroed:
        z.stat[S_ALLOC_ZEROED] += 1 << order


@njit(cache=True)
def gfp_migratetype(z, gfp):
    mt = (gfp >> 3) & 3
    if mt == 3:
        return -E_BAD_GFP
    if z.conf[C_MOBILITY] == 0:
        return MIGRATE_UNMOVABLE
    return mt


@njit(cache=True)
def alloc_pages(z, order, gfp, cpu, pref=PREF_NONE):
    """``rmqueue``: pcp for allowed orders, else the buddy. Returns pfn, NONE, or -E_*.

    ``pref`` (simulator-only): prefer a zeroed (1) or dirty (0) block near the list head.
    """
    if order < 0 or order > z.conf[C_MAX_ORDER]:
        return -E_BAD_ORDER
    if cpu < 0 or cpu >= z.conf[C_NR_CPUS]:
        return -E_BAD_CPU
    mt = gfp_migratetype(z, gfp)
    if mt < 0:
        return mt
    zs = z.zstate
    if z.conf[C_PCP_AUTO] != 0 and not (zs[ZS_FLAGS] & ZONE_BELOW_HIGH):
        # get_page_from_freelist(): note a zone below its high watermark (pcp tuning reads
        # it). The model has no reclaim: it does not fail allocations on the watermarks.
        if not zone_watermark_ok(z, order, zs[ZS_WMARK_HIGH]):
            zs[ZS_FLAGS] |= ZONE_BELOW_HIGH
    pfn = NONE
    if z.conf[C_PCP] != 0 and pcp_allowed_order(z, order):
        pfn = rmqueue_pcplist(z, cpu, order, mt, pref)
    if pfn == NONE:
        pfn, _ = __rmqueue(z, order, mt, RMQUEUE_NORMAL, pref)
    if pfn == NONE:
        z.stat[S_ALLOC_FAIL] += 1
        return NONE
    prep_new_page(z, pfn, order, mt)
    return pfn


@njit(cache=True)
def check_block(z, pfn, order):
    """0 when [pfn, pfn + 2^order) is a valid block address, else -E_*."""
    if order < 0 or order > z.conf[C_MAX_ORDER]:
        return -E_BAD_ORDER
    if pfn < 0 or pfn > z.conf[C_NR_PAGES] - (1 << order):  # no int64 overflow near 2^63
        return -E_RANGE
    if pfn & ((1 << order) - 1):
        return -E_UNALIGNED
    return 0


@njit(cache=True)
def free_pages(z, pfn, order, fpi, cpu):
    """Free an allocated block: pcp for allowed orders (LIFO), else ``__free_pages_ok``.

    Like the kernel, a free with FPI_TO_TAIL (boot, putback) goes straight to the buddy.
    Returns 0 or -E_* (nothing changed on error; the kernel's bad_page()).
    """
    err = check_block(z, pfn, order)
    if err:
        return err
    if cpu < 0 or cpu >= z.conf[C_NR_CPUS]:
        return -E_BAD_CPU
    f = z.flags[pfn]
    if f & (PG_BUDDY | PG_PCP | PG_ISOLATED):
        return -E_DOUBLE_FREE
    if not (f & PG_ALLOC):
        return -E_NOT_ALLOCATED
    if z.order[pfn] != order:
        return -E_WRONG_ORDER
    z.flags[pfn] = 0
    z.stat[S_PGFREE] += 1 << order
    z.stat[S_NR_ALLOCATED] -= 1 << order
    if z.conf[C_PCP] != 0 and pcp_allowed_order(z, order) and not (fpi & FPI_TO_TAIL):
        pindex = order_to_pindex(z, get_pfnblock_migratetype(z, pfn), order)
        z.flags[pfn] = PG_PCP | (PG_ZEROED if fpi & FPI_ZEROED else 0)
        z.order[pfn] = order
        list_add(z, PCP_LIST, cpu, pindex, pfn, False)
        z.pcp_count[cpu] += 1 << order
        free_frozen_page_commit(z, cpu, pfn, order, pindex)
    else:
        split_large_buddy(z, pfn, order, fpi)
    return 0


@njit(cache=True)
def find_pcp_list(z, pfn):
    """(cpu, pindex) of the pcp list holding pfn: walk to the list head, then match it."""
    p = pfn
    while z.prev[p] != NONE:
        p = z.prev[p]
    for cpu in range(z.conf[C_NR_CPUS]):
        for pindex in range(NR_PCP_LISTS):
            if z.pcp_head[cpu, pindex] == p:
                return cpu, pindex
    return NONE, NONE


@njit(cache=True)
def break_down_buddy_pages(z, pfn, target, low, high, mt, zeroed):
    """Split [pfn, 2^high) down to the 2^low block at target; the rest goes back (heads)."""
    size = 1 << high
    while high > low:
        high -= 1
        size >>= 1
        if target >= pfn + size:
            current_buddy = pfn
            pfn = pfn + size
        else:
            current_buddy = pfn + size
        z.flags[current_buddy] = PG_ZEROED if zeroed else 0
        __add_to_free_list(z, current_buddy, high, mt, False)


@njit(cache=True)
def alloc_pfn(z, pfn, order, gfp):
    """Allocate exactly [pfn, pfn + 2^order) if it is free, in the buddy or on a pcp list.

    Returns 1 when taken, 0 when that block is not free, -E_* on a bad address. Used by trace
    replay, where the trace decides the pfn (``take_page_off_buddy`` splitting).
    """
    err = check_block(z, pfn, order)
    if err:
        return err
    mt = gfp_migratetype(z, gfp)
    if mt < 0:
        return mt
    f = z.flags[pfn]
    if f & PG_PCP:
        if z.order[pfn] != order:
            z.stat[S_ALLOC_PFN_MISS] += 1
            return 0
        cpu, pindex = find_pcp_list(z, pfn)
        list_del(z, PCP_LIST, cpu, pindex, pfn)
        z.pcp_count[cpu] -= 1 << order
        z.flags[pfn] &= 0xFF ^ PG_PCP
        prep_new_page(z, pfn, order, mt)
        return 1
    for o in range(order, z.conf[C_MAX_ORDER] + 1):
        head = pfn & ~((1 << o) - 1)
        if page_is_buddy(z, head, o):
            block_mt = get_pfnblock_migratetype(z, head)
            zeroed = (z.flags[head] & PG_ZEROED) != 0
            __del_page_from_free_list(z, head, o, block_mt)
            z.flags[head] = 0
            break_down_buddy_pages(z, head, pfn, order, o, block_mt, zeroed)
            z.flags[pfn] = PG_ZEROED if zeroed else 0
            prep_new_page(z, pfn, order, mt)
            return 1
        if z.flags[head] & (PG_ALLOC | PG_PCP | PG_ISOLATED) and z.order[head] >= o:
            break
    z.stat[S_ALLOC_PFN_MISS] += 1
    return 0


@njit(cache=True)
def __isolate_free_page(z, pfn, order):
    """Take a free buddy block off its list (page reporting, zeroers); clears PG_zeroed.

    Returns 2^order; 0 when the zone would fall to its min watermark (the kernel obeys it
    "as if the page was being allocated"); -E_* when pfn is not a free block of that order.
    Half-pageblock or larger isolations set their pageblocks Movable.
    """
    err = check_block(z, pfn, order)
    if err:
        return err
    if not page_is_buddy(z, pfn, order):
        return -E_NOT_FREE
    if not zone_watermark_ok(z, 0, z.zstate[ZS_WMARK_MIN] + (1 << order)):
        return 0
    __del_page_from_free_list(z, pfn, order, get_pfnblock_migratetype(z, pfn))
    z.flags[pfn] = PG_ISOLATED
    z.order[pfn] = order
    z.stat[S_NR_ISOLATED] += 1 << order
    pageblock_order = z.conf[C_PAGEBLOCK_ORDER]
    if order >= pageblock_order - 1:
        p = pfn
        end = pfn + (1 << order) - 1
        while p < end:
            move_freepages_block(z, p, get_pfnblock_migratetype(z, p), MIGRATE_MOVABLE)
            p += 1 << pageblock_order
    return 1 << order


@njit(cache=True)
def __putback_isolated_page(z, pfn, order, fpi, reported):
    """Return an isolated block: ``__free_one_page(FPI_SKIP_REPORT_NOTIFY | FPI_TO_TAIL)``.

    With reported set (page_reporting_drain), the block is marked PageReported if it did not
    merge on the way back. Returns the head pfn it ended in, or -E_*.
    """
    err = check_block(z, pfn, order)
    if err:
        return err
    if not (z.flags[pfn] & PG_ISOLATED) or z.order[pfn] != order:
        return -E_NOT_ISOLATED
    z.flags[pfn] = 0
    z.stat[S_NR_ISOLATED] -= 1 << order
    head = __free_one_page(z, pfn, order, get_pfnblock_migratetype(z, pfn),
                           fpi | FPI_SKIP_REPORT_NOTIFY | FPI_TO_TAIL)
    if reported and page_is_buddy(z, pfn, order):
        z.flags[pfn] |= PG_REPORTED
    return head


@njit(cache=True)
def page_is_zeroed(z, pfn):
    """Allocated head: the hint read at allocation. Free head (buddy or pcp): PG_zeroed."""
    f = z.flags[pfn]
    if f & PG_ALLOC:
        return (f & PG_HINT) != 0
    return (f & PG_ZEROED) != 0


@njit(cache=True)
def boot_free(z):
    """``memblock_free_all``: free all memory in the largest aligned blocks, ascending pfn,
    through ``__free_pages_core`` (FPI_TO_TAIL, not zeroed)."""
    nr_pages = z.conf[C_NR_PAGES]
    max_order = z.conf[C_MAX_ORDER]
    start = 0
    while start < nr_pages:
        order = max_order
        if start:
            order = 0
            while order < max_order and not (start >> order) & 1:
                order += 1
        while start + (1 << order) > nr_pages:
            order -= 1
        split_large_buddy(z, start, order, FPI_TO_TAIL)
        start += 1 << order


@njit(cache=True)
def free_list_rotate_to_front(z, order, mt, pfn):
    """``list_rotate_to_front(&page->lru, list)``: pfn becomes the head, order kept."""
    head = z.free_head[order, mt]
    if pfn == head:
        return
    tail = z.free_tail[order, mt]
    p = z.prev[pfn]
    z.next[tail] = head
    z.prev[head] = tail
    z.free_head[order, mt] = pfn
    z.prev[pfn] = NONE
    z.free_tail[order, mt] = p
    z.next[p] = NONE
