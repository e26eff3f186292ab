"""The per-cpu lists a traced kernel started with, as far as its trace determines them.

A /proc/zoneinfo taken before a capture gives each CPU's ``count`` (pages on all its pcp
lists) and ``high``, not the lists. The trace tells more, list by list (a list is a CPU's
``pindex``: order and migratetype, one list per THP kind):
- ``rmqueue_pcplist()`` refills a list only when it is empty, and a refill shows as
  ``mm_page_alloc_zone_locked`` with ``percpu_refill=1`` (order, the list's migratetype), or
  where it steals from another migratetype's blocks (or claims a whole pageblock) as
  ``mm_page_alloc_extfrag`` alone (alloc_order, alloc_migratetype: ``BuddyTakes``).
  So a list the trace refills held, at the start, exactly what left it before its first
  refill less what came onto it: allocations it served (``mm_page_alloc`` on that CPU, of
  that order and the gfp's migratetype), plus blocks drained from it
  (``mm_page_pcpu_drain``), minus blocks freed onto it (``mm_page_free`` and
  ``mm_page_free_batched`` of a pcp order on that CPU).
- A list the trace never refills held at least the most that ever left it net, at any
  point of the trace (it never ran empty).
- The rest of the CPU's ``count`` goes on the order-0 list among those never refilled that
  the trace shows most used (Movable when the trace shows none): pages there sit until a
  drain, and the lists that ran empty start as they did.

A free goes to the list of its pageblock's migratetype (``get_pfnblock_migratetype()``;
HighAtomic and above to Movable, as ``free_frozen_page_commit()`` does), which the trace
gives by the pageblock's drains (they print it), else by the allocation of that page, else
by an allocation in its pageblock; a free of a page none of these place counts in
``unknown_frees`` and moves no list.

Simplifications: a ``percpu_refill=1`` line is taken as a refill of the CPU's own list (the
kernel also prints it when ``rmqueue_buddy()`` serves a pcp order after a failed trylock);
drains are taken from the list of the CPU that printed them (a remote ``drain_all_pages()``
prints on the draining CPU).
"""
import numpy as np
from numba import njit, types
from numba.typed import Dict

from allocator.flags import (GFP_MOVABLE_MASK, GFP_MOVABLE_SHIFT, MIGRATE_PCPTYPES,
                            PAGEBLOCK_ORDER, MigrateType)

from .convert import (C_ALLOC, C_BATCHED, C_DRAIN, C_EXTFRAG, C_FREE, C_ZONE_LOCKED, _forget,
                      new_recent, repeat, takes_seen)
from .trace import EVENT_NAMES, BatchedRepeats, BuddyTakes, TraceError, column_blocks

MOVABLE = int(MigrateType.MOVABLE)
PCP_ORDERS = (0, 1, 2, 3, PAGEBLOCK_ORDER)  # pcp_allowed_order()


@njit(cache=True, inline="always")
def _gfp_migratetype(gfp):
    """``gfp_migratetype()`` (the reader refuses flags with both mobility bits)."""
    return (gfp & GFP_MOVABLE_MASK) >> GFP_MOVABLE_SHIFT


@njit(cache=True)
def _pageblock_migratetypes(cols, drained, allocated, seen):
    """Into ``drained`` {pageblock: migratetype} its drains print, ``allocated`` {pageblock:
    migratetype of its first allocation in the trace}; ``seen`` [refills and drains (the
    lists' only witnesses), highest CPU]. The row of a refill or drain without its
    migratetype, else -1."""
    for i in range(cols.shape[1]):
        code, pfn, mt = cols[1, i], cols[2, i], cols[7, i]
        if code == C_ZONE_LOCKED or code == C_DRAIN or code == C_EXTFRAG:
            seen[0] += 1
            if mt < 0:
                return i
        if code == C_DRAIN:
            drained[pfn >> PAGEBLOCK_ORDER] = mt
        elif code == C_ALLOC and pfn >= 0 and (pfn >> PAGEBLOCK_ORDER) not in allocated:
            allocated[pfn >> PAGEBLOCK_ORDER] = _gfp_migratetype(cols[4, i])
        seen[1] = max(seen[1], cols[5, i])
    return -1


@njit(cache=True)
def _moved(lists, touched, state, pindex, cpu, order, mt, blocks, refill):
    """A list's witness: ``lists[0..4][cpu, pindex]`` = order, migratetype, blocks, refilled,
    net; ``lists[5]`` the peak of net; ``touched`` the order lists were first seen in."""
    if not (order <= 3 or order == PAGEBLOCK_ORDER) or mt < 0:
        return
    if mt >= MIGRATE_PCPTYPES:
        mt = MOVABLE
    p = pindex[order, mt]
    if touched[cpu, p] < 0:
        touched[cpu, p] = state[0]
        state[0] += 1
        lists[0, cpu, p] = order
        lists[1, cpu, p] = mt
    if lists[3, cpu, p]:
        return
    if refill:
        lists[3, cpu, p] = 1
        lists[2, cpu, p] = max(lists[4, cpu, p], 0)
        return
    lists[4, cpu, p] += blocks
    lists[5, cpu, p] = max(lists[5, cpu, p], lists[4, cpu, p])
    lists[2, cpu, p] = lists[5, cpu, p]


@njit(cache=True)
def _witness(cols, pindex, drained, allocated, alloc_mt, takes, take_slots, repeats,
             repeat_slots, lists, touched, state):
    """What the rows say of each list (``TraceLists``); ``state[1]`` counts unknown frees."""
    for i in range(cols.shape[1]):
        code, pfn, order, gfp = cols[1, i], cols[2, i], cols[3, i], cols[4, i]
        cpu, mt, refill = cols[5, i], cols[7, i], cols[8, i]
        stolen = takes_seen(takes, take_slots, code, pfn)
        if code == C_ALLOC:
            if pfn < 0:
                continue
            _forget(repeats, repeat_slots, pfn)
            mine = _gfp_migratetype(gfp)
            alloc_mt[pfn] = mine
            _moved(lists, touched, state, pindex, cpu, order, mine, 1, False)
        elif code == C_ZONE_LOCKED:
            if refill == 1 or (refill < 0 and mt < MIGRATE_PCPTYPES):
                _moved(lists, touched, state, pindex, cpu, order, mt, 0, True)
        elif code == C_EXTFRAG:  # a steal refills as zone_locked does
            if stolen and mt < MIGRATE_PCPTYPES:
                _moved(lists, touched, state, pindex, cpu, order, mt, 0, True)
        elif code == C_DRAIN:
            _moved(lists, touched, state, pindex, cpu, order, mt, 1, False)
        elif code == C_FREE or code == C_BATCHED:
            if repeat(repeats, repeat_slots, code, pfn):
                continue  # the same free twice
            block = pfn >> PAGEBLOCK_ORDER
            mine = -1
            if pfn in alloc_mt:
                mine = alloc_mt[pfn]
                del alloc_mt[pfn]
            if block in drained:
                mt = drained[block]
            elif mine >= 0:
                mt = mine
            elif block in allocated:
                mt = allocated[block]
            else:
                state[1] += order <= 3 or order == PAGEBLOCK_ORDER
                continue
            _moved(lists, touched, state, pindex, cpu, order, mt, -1, False)


def _int_map():
    """An int64 -> int64 typed dict (pageblock or pfn -> migratetype)."""
    return Dict.empty(types.int64, types.int64)


class TraceLists:
    """What a trace says of each CPU's pcp lists at its start (``from_trace``).

    ``lists[cpu][pindex] = [order, migratetype, blocks, refilled]``: ``blocks`` is exact for
    a list the trace refills, a lower bound otherwise.
    """

    def __init__(self):
        self.lists = {}
        self.unknown_frees = 0
        self.moves = 0

    @classmethod
    def from_trace(cls, read_rows, pindex_of, path="trace"):
        """``read_rows()`` gives the trace's ``read_events(..., detail=True)`` rows (it is
        called twice); ``pindex_of(order, migratetype)`` the model's list of a block. A refill
        or drain line without its migratetype is a TraceError naming ``path`` and the line;
        ``moves`` counts the refills and drains."""
        return cls.from_columns(lambda: column_blocks(read_rows()), pindex_of, path)

    @classmethod
    def from_columns(cls, read_columns, pindex_of, path="trace"):
        """``from_trace`` on blocks of columns (``Spooled.read_columns``, with ``detail``)."""
        self = cls()
        drained, allocated = _int_map(), _int_map()
        seen = np.zeros(2, np.int64)
        for cols in read_columns():
            bad = _pageblock_migratetypes(cols, drained, allocated, seen)
            if bad >= 0:
                name = EVENT_NAMES[cols[1, bad]]
                field = "alloc_migratetype" if name == "mm_page_alloc_extfrag" else "migratetype"
                raise TraceError(f"{path}:{cols[0, bad]}: {name} without {field}= (the per-cpu "
                                 "lists are split by it; 6.x prints it)")
        self.moves = int(seen[0])
        pindex = np.full((PAGEBLOCK_ORDER + 1, MIGRATE_PCPTYPES), -1, np.int64)
        for order in PCP_ORDERS:
            for mt in range(MIGRATE_PCPTYPES):
                pindex[order, mt] = pindex_of(order, mt)
        shape = (int(seen[1]) + 1, int(pindex.max()) + 1)
        lists = np.zeros((6,) + shape, np.int64)
        touched = np.full(shape, -1, np.int64)
        state = np.zeros(2, np.int64)
        alloc_mt = _int_map()  # pfn -> migratetype of its allocation, while it is live
        takes, repeats = new_recent(BuddyTakes.RECENT), new_recent(BatchedRepeats.RECENT_FREES)
        for cols in read_columns():
            _witness(cols, pindex, drained, allocated, alloc_mt, *takes, *repeats, lists,
                     touched, state)
        self.unknown_frees = int(state[1])
        for cpu, p in sorted(zip(*np.nonzero(touched >= 0)), key=lambda k: touched[k]):
            order, mt, blocks, refilled = (int(v) for v in lists[:4, cpu, p])
            self.lists.setdefault(int(cpu), {})[int(p)] = [order, mt, blocks, bool(refilled)]
        return self

    def seed(self, pagesets):
        """Each CPU's lists for ``pagesets`` [(count, high)] (a zoneinfo's): per CPU
        [(order, migratetype, blocks)], and per CPU the pages of its count beyond what the
        trace places (negative: the trace needs that many more than the count)."""
        out, rests = [], []
        for cpu, (count, _high) in enumerate(pagesets):
            lists = self.lists.get(cpu, {}).values()
            rows = {(order, mt): blocks for order, mt, blocks, _ in lists if blocks}
            rest = count - sum(blocks << order for (order, _), blocks in rows.items())
            mt = self._spare_list(lists) if rest > 0 else None
            if mt is not None:
                rows[0, mt] = rows.get((0, mt), 0) + rest
                rest = 0
            out.append([(order, mt, blocks) for (order, mt), blocks in rows.items()])
            rests.append(rest)
        return out, rests

    @staticmethod
    def _spare_list(lists):
        """The order-0 list the pages no list accounts for go on: of those the trace never
        refills, the most used; else one it never shows (Movable first); None if every
        order-0 list ran empty."""
        spare = [(blocks, mt == MOVABLE, mt) for order, mt, blocks, refilled in lists
                 if order == 0 and not refilled]
        if spare:
            return max(spare)[2]
        shown = {mt for order, mt, _, _ in lists if order == 0}
        return next((int(mt) for mt in (MigrateType.MOVABLE, MigrateType.UNMOVABLE,
                                        MigrateType.RECLAIMABLE) if mt not in shown), None)
