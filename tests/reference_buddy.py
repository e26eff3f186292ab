"""An independent, deliberately plain re-statement of mm/page_alloc.c's buddy rules.

Python lists stand for free lists (index 0 is the head). Used as the oracle for the compiled
model with pcp=False, mobility_grouping=False, where the kernel's behaviour reduces to these
rules: __rmqueue_smallest from the list head, expand() putting upper halves at the head,
__free_one_page merging and placing by FPI_TO_TAIL or buddy_merge_likely(),
split_large_buddy() freeing in pageblock pieces, boot frees with FPI_TO_TAIL.
"""


class ReferenceBuddy:
    def __init__(self, nr_pages, max_order=10, pageblock_order=9):
        self.n = nr_pages
        self.max_order = max_order
        self.pageblock_order = min(pageblock_order, max_order)
        self.lists = [[] for _ in range(max_order + 1)]
        self.free_blocks = {}  # head pfn -> (order, zeroed)
        start = 0
        while start < nr_pages:
            order = max_order
            if start:
                order = min(max_order, (start & -start).bit_length() - 1)
            while start + (1 << order) > nr_pages:
                order -= 1
            self.free(start, order, to_tail=True)
            start += 1 << order

    def _is_free(self, pfn, order):
        return self.free_blocks.get(pfn, (None,))[0] == order

    def _free_one(self, pfn, order, to_tail, zeroed):
        while order < self.max_order:
            buddy = pfn ^ (1 << order)
            if not (0 <= buddy < self.n and self._is_free(buddy, order)):
                break
            self.lists[order].remove(buddy)
            buddy_zeroed = self.free_blocks.pop(buddy)[1]
            zeroed = zeroed and buddy_zeroed
            pfn = min(pfn, buddy)
            order += 1
        if not to_tail and order < self.max_order - 1:
            parent = pfn & ~((2 << order) - 1)
            parent_buddy = parent ^ (2 << order)
            to_tail = 0 <= parent_buddy < self.n and self._is_free(parent_buddy, order + 1)
        self.free_blocks[pfn] = (order, zeroed)
        if to_tail:
            self.lists[order].append(pfn)
        else:
            self.lists[order].insert(0, pfn)

    def free(self, pfn, order, to_tail=False, zeroed=False):
        piece = min(order, self.pageblock_order)
        for p in range(pfn, pfn + (1 << order), 1 << piece):
            self._free_one(p, piece, to_tail, zeroed)

    def alloc(self, order):
        """(pfn, zeroed hint) or (None, False)."""
        for o in range(order, self.max_order + 1):
            if self.lists[o]:
                pfn = self.lists[o].pop(0)
                _, zeroed = self.free_blocks.pop(pfn)
                while o > order:
                    o -= 1
                    upper = pfn + (1 << o)
                    self.lists[o].insert(0, upper)
                    self.free_blocks[upper] = (o, zeroed)
                return pfn, zeroed
        return None, False

    def buddyinfo(self):
        return [len(lst) for lst in self.lists]

    def zeroedinfo(self):
        counts = [0] * (self.max_order + 1)
        for order, zeroed in self.free_blocks.values():
            counts[order] += zeroed
        return counts


# ---------------------------------------------------------------------------------------------
# With per-cpu lists (6.18 auto-tuning) and mobility grouping (claim/steal fallbacks).

UNMOVABLE, MOVABLE, RECLAIMABLE = 0, 1, 2
FALLBACKS = {UNMOVABLE: (RECLAIMABLE, MOVABLE), MOVABLE: (RECLAIMABLE, UNMOVABLE),
             RECLAIMABLE: (UNMOVABLE, MOVABLE)}
COSTLY = 3  # PAGE_ALLOC_COSTLY_ORDER
SCALE_MAX = 5  # CONFIG_PCP_BATCH_SCALE_MAX
NR_LOWORDER = 3 * (COSTLY + 1)


class ReferenceZone:
    """mm/page_alloc.c (6.18) re-stated from the kernel source with Python lists (index 0 is
    the head): free lists per (order, migratetype), pageblock migratetypes, __rmqueue with
    claim and steal, per-cpu lists with nr_pcp_high / nr_pcp_free / nr_pcp_alloc and
    decay_pcp_high, ZONE_BELOW_HIGH from the high watermark. Sizes (batch, high_min,
    high_max, watermarks) come in as numbers. "Movable pages" of a pageblock are allocations
    that asked for Movable (the model's stand-in for PageLRU)."""

    def __init__(self, nr_pages, limits, nr_cpus=1, max_order=10, pageblock_order=9,
                 mobility=True, thp=True):
        self.n, self.max_order, self.pbo = nr_pages, max_order, pageblock_order
        self.mobility, self.thp = mobility, thp
        self.lim = limits
        self.lists = [[[] for _ in range(3)] for _ in range(max_order + 1)]
        self.free_blocks = {}  # pfn -> (order, zeroed)
        self.pb_mt = [MOVABLE if mobility else UNMOVABLE] * -(-nr_pages >> pageblock_order)
        self.allocated = {}  # pfn -> (order, migratetype asked for)
        self.below_high = False
        self.pcp = [{"lists": [[] for _ in range(NR_LOWORDER + 2)], "count": 0,
                     "high": min(limits.high_min, limits.high_max), "free_count": 0,
                     "alloc_factor": 0, "prev_high_order": False} for _ in range(nr_cpus)]
        self.pcp_blocks = {}  # pfn -> (order, zeroed)
        start = 0
        while start < nr_pages:
            order = max_order if not start else min(max_order, (start & -start).bit_length() - 1)
            while start + (1 << order) > nr_pages:
                order -= 1
            self.split_large_buddy(start, order, True, False)
            start += 1 << order

    # -- buddy -----------------------------------------------------------------------------
    def mt_of(self, pfn):
        return self.pb_mt[pfn >> self.pbo]

    def set_mt(self, pfn, mt):
        self.pb_mt[pfn >> self.pbo] = mt if self.mobility else UNMOVABLE

    def nr_free_pages(self):
        return sum(1 << o for o, _ in self.free_blocks.values())

    def _is_buddy(self, pfn, order):
        return 0 <= pfn < self.n and self.free_blocks.get(pfn, (None,))[0] == order

    def free_one(self, pfn, order, mt, to_tail, zeroed):
        while order < self.max_order:
            buddy = pfn ^ (1 << order)
            if not self._is_buddy(buddy, order):
                break
            buddy_mt = self.mt_of(buddy) if order >= self.pbo else mt
            self.lists[order][buddy_mt].remove(buddy)
            buddy_zeroed = self.free_blocks.pop(buddy)[1]
            zeroed = zeroed and buddy_zeroed
            if buddy_mt != mt:
                self.set_mt(buddy, mt)
            pfn &= buddy
            order += 1
        if not to_tail and order < self.max_order - 1:
            parent_buddy = (pfn & ~((2 << order) - 1)) ^ (2 << order)
            to_tail = self._is_buddy(parent_buddy, order + 1)
        self.free_blocks[pfn] = (order, zeroed)
        lst = self.lists[order][mt]
        lst.append(pfn) if to_tail else lst.insert(0, pfn)

    def split_large_buddy(self, pfn, order, to_tail, zeroed):
        piece = min(order, self.pbo)
        for p in range(pfn, pfn + (1 << order), 1 << piece):
            self.free_one(p, piece, self.mt_of(p), to_tail, zeroed)

    def take(self, pfn, order, mt):
        self.lists[order][mt].remove(pfn)
        self.free_blocks_taken_zeroed = self.free_blocks.pop(pfn)[1]
        return self.free_blocks_taken_zeroed

    def expand(self, pfn, low, high, mt, zeroed):
        while high > low:
            high -= 1
            self.lists[high][mt].insert(0, pfn + (1 << high))
            self.free_blocks[pfn + (1 << high)] = (high, zeroed)

    def rmqueue_smallest(self, order, mt):
        for o in range(order, self.max_order + 1):
            if self.lists[o][mt]:
                pfn = self.lists[o][mt][0]
                self.expand(pfn, order, o, mt, self.take(pfn, o, mt))
                return pfn
        return None

    def should_try_claim_block(self, order, mt):
        return (order >= self.pbo or order >= self.pbo // 2 or mt in (RECLAIMABLE, UNMOVABLE)
                or not self.mobility)

    def find_suitable_fallback(self, order, mt, claimable):
        if claimable and not self.should_try_claim_block(order, mt):
            return -2
        for fb in FALLBACKS[mt]:
            if self.lists[order][fb]:
                return fb
        return -1

    def try_to_claim_block(self, pfn, current, order, start, block):
        if current >= self.pbo:
            zeroed = self.take(pfn, current, block)
            for i in range(1 << (current - self.pbo)):
                self.set_mt(pfn + (i << self.pbo), start)
            self.expand(pfn, order, current, start, zeroed)
            return pfn
        first = pfn & ~((1 << self.pbo) - 1)
        if first + (1 << self.pbo) > self.n:
            return None
        free = sum(1 << o for p, (o, _) in self.free_blocks.items() if first <= p < first + (1 << self.pbo))
        movable = sum(1 << o for p, (o, m) in self.allocated.items()
                      if first <= p < first + (1 << self.pbo) and m == MOVABLE)
        alike = movable if start == MOVABLE else (
            (1 << self.pbo) - free - movable if block == MOVABLE else 0)
        if free + alike >= 1 << (self.pbo - 1) or not self.mobility:
            new = start if self.mobility else UNMOVABLE
            for p in sorted(p for p in self.free_blocks if first <= p < first + (1 << self.pbo)):
                o = self.free_blocks[p][0]
                self.lists[o][block].remove(p)
                self.lists[o][new].append(p)  # move_to_free_list: list_move_tail
            self.set_mt(first, start)
            return self.rmqueue_smallest(order, start)
        return None

    def rmqueue_claim(self, order, start):
        for current in range(self.max_order, order - 1, -1):
            fb = self.find_suitable_fallback(current, start, True)
            if fb == -1:
                continue
            if fb == -2:
                break
            pfn = self.try_to_claim_block(self.lists[current][fb][0], current, order, start, fb)
            if pfn is not None:
                return pfn
        return None

    def rmqueue_steal(self, order, start):
        for current in range(order, self.max_order + 1):
            fb = self.find_suitable_fallback(current, start, False)
            if fb == -1:
                continue
            pfn = self.lists[current][fb][0]
            self.expand(pfn, order, current, fb, self.take(pfn, current, fb))
            return pfn
        return None

    def rmqueue(self, order, mt, mode):
        """__rmqueue: (pfn or None, mode); mode 0 normal, 1 claim, 2 steal."""
        if mode == 0:
            pfn = self.rmqueue_smallest(order, mt)
            if pfn is not None:
                return pfn, 0
        if mode <= 1:
            pfn = self.rmqueue_claim(order, mt)
            if pfn is not None:
                return pfn, 0
        pfn = self.rmqueue_steal(order, mt)
        return (pfn, 2) if pfn is not None else (None, mode)

    # -- per-cpu lists ---------------------------------------------------------------------
    def pcp_allowed(self, order):
        return order <= COSTLY or (self.thp and order == self.pbo)

    def pindex(self, mt, order):
        return NR_LOWORDER + (mt == MOVABLE) if order > COSTLY else 3 * order + mt

    def pindex_order(self, pindex):
        return self.pbo if pindex >= NR_LOWORDER else pindex // 3

    def clamp_high(self, pcp):
        pcp["high"] = min(max(pcp["high"], self.lim.high_min), self.lim.high_max)
        return pcp["high"]

    def free_pcppages_bulk(self, pcp, count, pindex):
        count = min(pcp["count"], count)
        pindex -= 1
        while count > 0:
            while True:
                pindex = 0 if pindex + 1 > NR_LOWORDER + 1 else pindex + 1
                if pcp["lists"][pindex]:
                    break
            order = self.pindex_order(pindex)
            while True:
                pfn = pcp["lists"][pindex].pop()  # the tail: oldest
                count -= 1 << order
                pcp["count"] -= 1 << order
                _, zeroed = self.pcp_blocks.pop(pfn)
                self.free_one(pfn, order, self.mt_of(pfn), False, zeroed)
                if count <= 0 or not pcp["lists"][pindex]:
                    break

    def nr_pcp_alloc(self, pcp, order):
        base, lo, hi = self.lim.batch, self.lim.high_min, self.lim.high_max
        high = self.clamp_high(pcp)
        if high < base:
            return 1
        batch = base if order else base << pcp["alloc_factor"]
        if lo != hi and not self.below_high:
            high = pcp["high"] = min(high + batch, hi)
        if not order:
            max_nr = max(high - pcp["count"] - base, base)
            if batch <= max_nr and pcp["alloc_factor"] < SCALE_MAX:
                pcp["alloc_factor"] += 1
            batch = min(batch, max_nr)
        return max(batch >> order, 2) if batch > 1 else batch

    def free_to_pcp(self, cpu, pfn, order, zeroed):
        pcp = self.pcp[cpu]
        batch, lo, hi = self.lim.batch, self.lim.high_min, self.lim.high_max
        pcp["alloc_factor"] >>= 1
        pindex = self.pindex(self.mt_of(pfn), order)
        pcp["lists"][pindex].insert(0, pfn)
        self.pcp_blocks[pfn] = (order, zeroed)
        pcp["count"] += 1 << order
        free_high = False
        if order and order <= COSTLY:
            free_high = (pcp["free_count"] >= batch + lo // 2 and pcp["prev_high_order"]
                         and pcp["count"] >= batch)  # PCPF_FREE_HIGH_BATCH set
            pcp["prev_high_order"] = True
        else:
            pcp["prev_high_order"] = False
        if pcp["free_count"] < batch << SCALE_MAX:
            pcp["free_count"] += 1 << order
        # nr_pcp_high()
        high = self.clamp_high(pcp)
        if high == 0:
            pass
        elif free_high:
            pcp["high"] = max(high - (batch << SCALE_MAX), lo)
            high = 0
        elif lo != hi:
            if self.below_high:
                pcp["high"] = max(high - max(pcp["free_count"], batch), lo)
                high = max(pcp["count"], lo)
            elif pcp["count"] >= high and pcp["high"] < pcp["free_count"] + batch:
                pcp["high"] = min(max(pcp["free_count"] + batch, lo), hi)
        if pcp["count"] >= high:
            # nr_pcp_free()
            if free_high:
                n = min(pcp["count"], batch << SCALE_MAX)
            elif high < batch:
                n = 1
            else:
                n = min(max(pcp["free_count"], batch), high - batch)
            self.free_pcppages_bulk(pcp, n, pindex)
            if self.below_high and self.nr_free_pages() > self.lim.wmark_high:
                self.below_high = False

    def decay(self, cpu):
        pcp = self.pcp[cpu]
        batch, lo = self.lim.batch, self.lim.high_min
        if pcp["high"] > lo:
            pcp["high"] = max(pcp["count"] - (batch << SCALE_MAX),
                              pcp["high"] - (pcp["high"] >> 3), lo)
        to_drain = pcp["count"] - pcp["high"]
        while to_drain > 0:  # batch pages a call (6.18.y, fc4b909c368f)
            self.free_pcppages_bulk(pcp, min(to_drain, batch), 0)
            to_drain -= min(to_drain, batch)

    # -- the API ---------------------------------------------------------------------------
    def watermark_ok(self, order, mark):
        if self.nr_free_pages() - ((1 << order) - 1) <= mark:
            return False
        return order == 0 or any(self.lists[o][m] for o in range(order, self.max_order + 1)
                                 for m in range(3))

    def alloc(self, order, mt, cpu=0, pcp=True):
        """(pfn or None, zeroed hint)."""
        mt = mt if self.mobility else UNMOVABLE
        if not self.below_high and not self.watermark_ok(order, self.lim.wmark_high):
            self.below_high = True
        pfn = None
        if pcp and self.pcp_allowed(order):
            p = self.pcp[cpu]
            p["free_count"] >>= 1
            pindex = self.pindex(mt, order)
            lst = p["lists"][pindex]
            if not lst:
                mode, want = 0, self.nr_pcp_alloc(p, order)
                for _ in range(want):
                    got, mode = self.rmqueue(order, mt, mode)
                    if got is None:
                        break
                    lst.append(got)
                    self.pcp_blocks[got] = (order, self.free_blocks_taken_zeroed)
                    p["count"] += 1 << order
            if lst:
                pfn = lst.pop(0)
                p["count"] -= 1 << order
                zeroed = self.pcp_blocks.pop(pfn)[1]
        if pfn is None:
            pfn, _ = self.rmqueue(order, mt, 0)
            if pfn is None:
                return None, False
            zeroed = self.free_blocks_taken_zeroed
        self.allocated[pfn] = (order, mt)
        return pfn, zeroed

    def free(self, pfn, order, zeroed=False, cpu=0, pcp=True):
        del self.allocated[pfn]
        if pcp and self.pcp_allowed(order):
            self.free_to_pcp(cpu, pfn, order, zeroed)
        else:
            self.split_large_buddy(pfn, order, False, zeroed)

    def pagetypeinfo(self):
        return [[len(self.lists[o][m]) for o in range(self.max_order + 1)] for m in range(3)]
