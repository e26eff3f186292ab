"""Scenario tests built so that each of the kernel's list-placement, split, merge, fallback
and claim choices gives a different outcome from the other choice (mm/page_alloc.c, 6.18).
Each was checked by flipping the rule in allocator/core.py and seeing the test fail."""
from allocator import BuddyAllocator, FPI, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, MigrateType

MOV, UNMOV = GFP_HIGHUSER_MOVABLE, GFP_KERNEL


def plain(pages=1 << 11):
    return BuddyAllocator(pages, pcp=False, mobility_grouping=False)


def test_expand_upper_half_goes_to_a_non_empty_lists_head():
    # __rmqueue_smallest() takes the smallest order, so expand() normally fills empty lists;
    # the zeroed-aware path takes a larger zeroed block while smaller lists are not empty:
    # expand() must then put the upper halves at the HEAD, ahead of the blocks already there.
    a = plain()
    p = [a.alloc(0) for _ in range(4)]  # 0..3; free lists hold 4 (o2), 8 (o3), ...
    blk = a.alloc(2)  # 4..7
    a.free(p[1], 0)  # order-0 list: [1] (buddy 0 allocated)
    a.free(blk, 2, FPI.ZEROED)  # order-2 list: [4] zeroed
    assert a.alloc(0, prefer_zeroed=True) == blk  # splits 4: 6 (o1) and 5 (o0) at the heads
    assert a.alloc(0) == blk + 1  # the head: the upper half, not the older block 1
    assert a.page_is_zeroed(blk + 1)
    a.check()


def test_rmqueue_takes_the_list_head():
    # Two order-1 blocks on a list: buddy_merge_likely() put 12 at the tail, 6 went to the
    # head (its parent's buddy is allocated). The allocation takes the head.
    a = plain()
    held = [a.alloc(1) for _ in range(8)]  # 0, 2, ..., 14
    a.free(held[3], 1)  # 6: parent 4..7's buddy 0..3 allocated -> head
    a.free(held[6], 1)  # 12: parent 12..15's buddy 8..11 allocated -> head
    a.free(held[4], 1)  # 8: parent 8..11's buddy 12..15 has 12 free, not order 2 -> head
    assert int(a.zone.free_head[1, 0]) == 8
    assert a.alloc(1) == 8
    a.check()


def test_buddy_merge_likely_tail_versus_head():
    # Freeing 2 (order 1) whose buddy 0..1 is allocated: no merge. The order-2 parent 0..3
    # has buddy 4..7: free (order 2) -> likely to merge later -> TAIL. Freeing 10 with its
    # parent's buddy 12..15 allocated -> HEAD.
    a = plain()
    blocks = [a.alloc(1) for _ in range(8)]  # 0..15 in order-1 blocks
    a.free(blocks[2], 1)
    a.free(blocks[3], 1)  # 4 and 6 merge into 4 (order 2)
    a.free(blocks[5], 1)  # 10: parent 8..11, buddy 12..15 allocated -> head
    a.free(blocks[1], 1)  # 2: parent 0..3, its buddy 4 is a free order-2 block -> tail
    assert [int(a.zone.free_head[1, 0]), int(a.zone.free_tail[1, 0])] == [10, 2]
    a.check()


def test_steal_keeps_the_pageblock_but_claim_changes_it():
    # 4096 pages, mobility on, every page allocated Unmovable (all pageblocks Unmovable).
    # Free every even page of pageblock 0: 256 free order-0 blocks, half the pageblock. A
    # Movable order-0 request falls back to them: __rmqueue_claim() stops at once (orders
    # below pageblock_order / 2 are not worth claiming for Movable), so __rmqueue_steal()
    # takes a page and the pageblock stays Unmovable, though claiming would have succeeded.
    a = BuddyAllocator(1 << 12, pcp=False)
    pages = [a.alloc(0, UNMOV) for _ in range(1 << 12)]
    assert all(a.zone.pageblock_mt == MigrateType.UNMOVABLE)
    for p in pages[0:512:2]:
        a.free(p, 0)
    before = a.stats()["extfrag"]
    m = a.alloc(0, MOV)
    assert m is not None and m < 512 and a.stats()["extfrag"] == before + 1
    assert a.zone.pageblock_mt[0] == MigrateType.UNMOVABLE
    assert sum(a.pagetypeinfo()["Movable"]) == 0
    a.check()
    # An Unmovable request falling back to a mostly free Movable pageblock claims it.
    b = BuddyAllocator(1 << 12, pcp=False)
    u = b.alloc(0, UNMOV)
    assert b.zone.pageblock_mt[u >> 9] == MigrateType.UNMOVABLE
    b.check()


def test_claim_needs_half_a_pageblock_free_or_alike():
    # try_to_claim_block(): an Unmovable request takes over a Movable pageblock only if free
    # + alike pages >= 256. Fill the zone with Movable pages, free 100 in pageblock 0: 100
    # free + 0 alike < 256, so the request steals one page and the block stays Movable.
    a = BuddyAllocator(1 << 12, pcp=False)
    pages = [a.alloc(0, MOV) for _ in range(4096)]
    for p in pages[:100]:
        a.free(p, 0)
    u = a.alloc(0, UNMOV)
    assert u is not None and u < 512
    assert a.zone.pageblock_mt[0] == MigrateType.MOVABLE
    # Freeing 300 makes 300 >= 256: the next one claims the pageblock.
    for p in pages[100:400]:
        a.free(p, 0)
    u2 = a.alloc(0, UNMOV)
    assert u2 < 512 and a.zone.pageblock_mt[0] == MigrateType.UNMOVABLE
    a.check()


def test_split_large_buddy_frees_per_pageblock_migratetype():
    # An order-10 block spanning a Movable and an Unmovable pageblock (as a claim leaves it)
    # is freed in pageblock-sized pieces, each to its own pageblock's list; the second piece
    # then merges with the first, taking its own migratetype: the order-10 block ends on the
    # Unmovable list. Freed whole, it would go to the first pageblock's (Movable) list.
    a = BuddyAllocator(1 << 11, pcp=False)
    blk = a.alloc(10, MOV)
    a.zone.pageblock_mt[(blk >> 9) + 1] = MigrateType.UNMOVABLE  # set_pageblock_migratetype()
    a.free(blk, 10)
    assert a.pagetypeinfo()["Unmovable"][10] == 1
    assert a.zone.pageblock_mt[blk >> 9] == MigrateType.UNMOVABLE
    a.check()


def test_merge_keeps_lower_pfn_and_zeroed_only_if_both():
    a = plain()
    x, y = a.alloc(0), a.alloc(0)  # 0 and 1
    a.free(y, 0, FPI.ZEROED)
    a.free(x, 0)  # merges with 1: head 0, dirty (one half dirty)
    assert a.buddyinfo()[0] == 0 and not a.page_is_zeroed(0)
    assert a.stats()["zeroed_dropped_merge"] == 1
    a.check()
