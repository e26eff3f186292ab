"""The per-cpu lists' witness as it was in plain Python (zeroing/pcp_start.py before its loops
were compiled): the reference ``TraceLists.from_columns`` is checked against
(tests/test_convert.py). It reads ``read_events(..., detail=True)`` rows."""
from allocator.flags import MIGRATE_PCPTYPES, MigrateType, gfp_migratetype
from zeroing.pcp_start import TraceLists
from zeroing.trace import PAGEBLOCK_ORDER, BatchedRepeats, BuddyTakes, TraceError, pcp_allowed_order

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


class ReferenceLists(TraceLists):
    """``TraceLists.from_trace`` in plain Python."""

    @classmethod
    def from_trace(cls, read_rows, pindex_of, path="trace"):
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
