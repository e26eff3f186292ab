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
from allocator.flags import MIGRATE_PCPTYPES, MigrateType, gfp_migratetype

from .trace import PAGEBLOCK_ORDER, BatchedRepeats, BuddyTakes, TraceError, pcp_allowed_order

MOVABLE = int(MigrateType.MOVABLE)


def _pageblock_migratetypes(rows, path):
    """({pageblock: migratetype} its drains print, {pageblock: migratetype of its first
    allocation in the trace}, the refills and drains it shows); a TraceError for a refill or
    drain without its migratetype."""
    drained, allocated = {}, {}
    moves = 0  # refills and drains: the lists' only witnesses
    for lineno, name, pfn, order, gfp, _, _, mt, _ in rows:
        if name in ("mm_page_alloc_zone_locked", "mm_page_pcpu_drain", "mm_page_alloc_extfrag"):
            moves += 1
            if mt < 0:
                field = "alloc_migratetype" if name == "mm_page_alloc_extfrag" else "migratetype"
                raise TraceError(f"{path}:{lineno}: {name} without {field}= (the per-cpu "
                                 "lists are split by it; 6.x prints it)")
        if name == "mm_page_pcpu_drain":
            drained[pfn >> PAGEBLOCK_ORDER] = mt
        elif name == "mm_page_alloc" and pfn >= 0:
            allocated.setdefault(pfn >> PAGEBLOCK_ORDER, int(gfp_migratetype(gfp)))
    return drained, allocated, moves


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
        self = cls()
        drained_mt, allocated_mt, self.moves = _pageblock_migratetypes(read_rows(), path)
        net, peak = {}, {}
        alloc_mt = {}  # pfn -> migratetype of its allocation, while it is live
        repeats = BatchedRepeats()
        takes = BuddyTakes()
        pindex = {}  # (order, migratetype) -> list: a compiled call per row cost ~15 us

        def moved(cpu, order, mt, blocks, refill=False):
            if not pcp_allowed_order(order) or not 0 <= mt:
                return
            mt = mt if mt < MIGRATE_PCPTYPES else MOVABLE
            if (order, mt) not in pindex:
                pindex[order, mt] = pindex_of(order, mt)
            key = (cpu, pindex[order, mt])
            entry = self.lists.setdefault(cpu, {}).setdefault(key[1], [order, mt, 0, False])
            if entry[3]:
                return
            if refill:
                entry[3] = True
                entry[2] = max(net.get(key, 0), 0)
                return
            net[key] = net.get(key, 0) + blocks
            peak[key] = max(peak.get(key, 0), net[key])
            entry[2] = peak[key]

        for _, name, pfn, order, gfp, cpu, _, mt, refill in read_rows():
            stolen = takes.seen(name, pfn)
            if name == "mm_page_alloc":
                if pfn < 0:
                    continue
                repeats.allocated(pfn)
                alloc_mt[pfn] = int(gfp_migratetype(gfp))
                moved(cpu, order, alloc_mt[pfn], 1)
            elif name == "mm_page_alloc_zone_locked":
                if refill == 1 or (refill < 0 and mt < MIGRATE_PCPTYPES):
                    moved(cpu, order, mt, 0, refill=True)
            elif name == "mm_page_alloc_extfrag":  # a steal refills as zone_locked does
                if stolen and mt < MIGRATE_PCPTYPES:
                    moved(cpu, order, mt, 0, refill=True)
            elif name == "mm_page_pcpu_drain":
                moved(cpu, order, mt, 1)
            elif name in ("mm_page_free", "mm_page_free_batched"):
                if repeats.repeat(name, pfn):
                    continue
                block, mine = pfn >> PAGEBLOCK_ORDER, alloc_mt.pop(pfn, None)
                mt = drained_mt.get(block, allocated_mt.get(block) if mine is None else mine)
                if mt is None:
                    self.unknown_frees += pcp_allowed_order(order)
                    continue
                moved(cpu, order, mt, -1)
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
