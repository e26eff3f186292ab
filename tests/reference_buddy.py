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
