"""Scenario tests in the spirit of the kernel's KUnit page allocator tests."""
import pytest

from allocator import FPI, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, BadPageError, BuddyAllocator
from allocator.flags import GFP_BITS, MigrateType


def plain(nr_pages=1 << 12, **kw):
    return BuddyAllocator(nr_pages, pcp=False, mobility_grouping=False, **kw)


def test_boot_frees_max_order_blocks_in_pfn_order():
    a = plain(1 << 12)
    assert a.buddyinfo() == [0] * 10 + [4]
    assert [a.alloc(10) for _ in range(4)] == [0, 1024, 2048, 3072]
    assert a.alloc(0) is None


def test_boot_unaligned_size_uses_largest_aligned_blocks():
    a = plain(1000)
    # 512 + 256 + 128 + 64 + 32 + 8
    assert a.buddyinfo() == [0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0]
    assert a.nr_free_pages() == 1000
    a.check()


def test_expand_puts_upper_halves_at_list_heads():
    a = plain(1 << 11)
    assert a.alloc(0) == 0
    assert a.buddyinfo() == [1] * 10 + [1]
    assert a.alloc(0) == 1
    assert a.alloc(1) == 2
    assert a.alloc(2) == 4


def test_free_one_page_merges_back_to_max_order():
    a = BuddyAllocator(1 << 12, pcp=True)
    before = a.buddyinfo()
    pfn = a.alloc(0, GFP_HIGHUSER_MOVABLE)
    a.free(pfn, 0)
    assert a.nr_pcp_pages() > 0
    a.drain_pages()
    assert a.buddyinfo() == before
    a.check()


def test_buddy_merge_likely_places_at_tail():
    # Six order-0 allocations split the first block: 0-5 allocated, 6-7 free (order 1).
    a = plain(1 << 11)
    assert [a.alloc(0) for _ in range(6)] == [0, 1, 2, 3, 4, 5]
    a.free(5, 0)  # buddy 4 allocated; the order-1 parent 4's buddy 6 is free: likely merge -> tail
    a.free(0, 0)
    a.free(1, 0)  # merges with 0 into an order-1 block at 0
    a.free(2, 0)  # buddy 3 allocated; parent 2's buddy 0 is a free order-1 block -> tail
    assert [int(a.zone.free_head[0, 0]), int(a.zone.free_tail[0, 0])] == [5, 2]
    b = plain(1 << 11)
    [b.alloc(0) for _ in range(6)]
    b.free(5, 0)
    b.free(2, 0)  # parent 2's buddy 0 is allocated: no merge likely -> head
    assert [int(b.zone.free_head[0, 0]), int(b.zone.free_tail[0, 0])] == [2, 5]
    a.check()
    b.check()


def test_to_tail_flag_places_at_tail():
    a = plain(1 << 12)
    a.alloc(0)
    a.alloc(0)
    z = a.alloc(2)
    a.alloc(2)  # keep z's buddy allocated: z stays an order-2 block
    a.free(z, 2, FPI.TO_TAIL)
    assert a.buddyinfo()[2] == 2  # z and the split-off block
    assert a.zone.free_tail[2, 0] == z and a.zone.free_head[2, 0] != z


def test_zeroed_merge_needs_both_halves():
    a = plain(1 << 11)
    x, y = a.alloc(0), a.alloc(0)
    a.free(x, 0, FPI.ZEROED)
    assert a.page_is_zeroed(x)
    assert a.zeroed_info()[0] == 1
    a.free(y, 0)  # dirty buddy: merged block is not zeroed, 1 zeroed page dropped
    assert a.zeroed_info() == [0] * 11
    assert a.stats()["zeroed_dropped_merge"] == 1
    a.check()


def test_split_inherits_and_allocation_reads_and_clears_hint():
    a = plain(1 << 11)
    big = a.alloc(3)
    a.alloc(3)  # keep its buddy allocated so the zeroed block stays order 3
    a.free(big, 3, FPI.ZEROED)
    assert a.zeroed_info()[3] == 1
    p = a.alloc(0)
    assert p == big and a.page_is_zeroed(p)
    assert a.zeroed_info()[:3] == [1, 1, 1]  # 1, 2-3, 4-7 inherited PG_zeroed
    q = a.alloc(0)
    assert q == big + 1 and a.page_is_zeroed(q)
    a.free(p, 0)
    assert not a.page_is_zeroed(p)
    a.check()


def test_pcp_is_lifo_and_keeps_the_hint():
    a = BuddyAllocator(1 << 14, pcp=True)
    p = a.alloc(0, GFP_HIGHUSER_MOVABLE)
    q = a.alloc(0, GFP_HIGHUSER_MOVABLE)
    a.free(p, 0, FPI.ZEROED)
    a.free(q, 0)
    assert a.alloc(0, GFP_HIGHUSER_MOVABLE) == q
    r = a.alloc(0, GFP_HIGHUSER_MOVABLE)
    assert r == p and a.page_is_zeroed(r)


def test_pcp_high_drains_batch_oldest_first():
    a = BuddyAllocator(1 << 14, pcp=True, pcp_high=8, pcp_batch=4)
    pfns = [a.alloc(0, GFP_HIGHUSER_MOVABLE) for _ in range(12)]
    a.drain_pages()
    drained_before = a.stats()["pcp_drain"]
    for p in pfns[:7]:
        a.free(p, 0)
    assert a.nr_pcp_pages() == 7
    a.free(pfns[7], 0)  # count reaches high: drain 4 from the tail (the first freed)
    assert a.nr_pcp_pages() == 4
    assert a.stats()["pcp_drain"] - drained_before == 4
    on_pcp = [p for p in pfns[:8] if a.zone.flags[p] & 8]
    assert on_pcp == pfns[4:8]
    a.check()


def test_pcp_refill_takes_batch_blocks_in_order():
    a = BuddyAllocator(1 << 14, pcp=True, pcp_batch=7)
    p = a.alloc(0, GFP_HIGHUSER_MOVABLE)
    assert p == 0
    assert a.nr_pcp_pages() == 6
    assert [a.alloc(0, GFP_HIGHUSER_MOVABLE) for _ in range(6)] == [1, 2, 3, 4, 5, 6]


def test_unmovable_fallback_claims_a_pageblock():
    a = BuddyAllocator(1 << 12, pcp=False)
    assert a.pagetypeinfo()["Movable"][10] == 4
    p = a.alloc(0, GFP_KERNEL)  # no Unmovable blocks: claim the largest Movable block
    assert p is not None
    assert a.stats()["extfrag"] == 1
    assert a.zone.pageblock_mt[p >> 9] == MigrateType.UNMOVABLE
    assert sum(a.pagetypeinfo()["Unmovable"]) > 0
    a.check()


def test_movable_small_fallback_steals_without_claiming():
    a = BuddyAllocator(1 << 10, max_order=10, pcp=False)
    # Turn all memory Unmovable, then ask for one movable page.
    blocks = [a.alloc(9, GFP_KERNEL), a.alloc(9, GFP_KERNEL)]
    for b in blocks:
        a.free(b, 9)
    assert a.pagetypeinfo()["Movable"] == [0] * 11
    a.alloc(3, GFP_KERNEL)  # splits the order-10 block in Unmovable lists
    m = a.alloc(0, GFP_HIGHUSER_MOVABLE)
    assert m is not None
    a.check()


def test_alloc_pfn_splits_the_containing_block():
    a = plain(1 << 11)
    assert a.alloc_pfn(5, 0)
    assert not a.alloc_pfn(5, 0)
    assert a.nr_free_pages() == (1 << 11) - 1
    a.check()
    a.free(5, 0)
    assert a.buddyinfo() == [0] * 10 + [2]


def test_alloc_pfn_takes_a_page_off_a_pcp_list():
    a = BuddyAllocator(1 << 12, pcp=True)
    p = a.alloc(0, GFP_HIGHUSER_MOVABLE)
    a.free(p, 0, FPI.ZEROED)
    assert a.alloc_pfn(p, 0, GFP_HIGHUSER_MOVABLE)
    assert a.page_is_zeroed(p)
    a.check()


def test_isolate_and_putback():
    a = plain(1 << 12)
    assert a.isolate_free_page(1024, 10)
    assert a.buddyinfo()[10] == 3
    a.check()
    a.putback_isolated_page(1024, 10, FPI.ZEROED, reported=True)
    assert a.zone.free_tail[10, 0] == 1024
    assert a.page_is_zeroed(1024)
    assert a.zone.flags[1024] & 4  # PageReported: it did not merge
    a.check()
    assert a.stats()["report_notify"] == 0  # putback skips the notification


def test_isolation_clears_pg_zeroed():
    a = plain(1 << 11)
    p = a.alloc(10)
    a.free(p, 10, FPI.ZEROED)
    assert a.isolate_free_page(p, 10)
    assert a.zeroed_info() == [0] * 11
    a.putback_isolated_page(p, 10)
    assert not a.page_is_zeroed(p)


def test_reporting_notify_counts_high_order_frees():
    a = plain(1 << 11)
    p = a.alloc(9)
    a.free(p, 9)
    q = a.alloc(0)
    a.free(q, 0)
    assert a.stats()["report_notify"] == 2  # the order-9 free, and the order-0 free merged up


@pytest.mark.parametrize("call,match", [
    (lambda a: a.free(1, 0), "not the head of an allocated block"),
    (lambda a: a.free(1 << 20, 0), "out of range"),
    (lambda a: a.free(3, 1), "not aligned"),
    (lambda a: a.free(0, 11), "order out of range"),
    (lambda a: a.alloc(0, GFP_BITS["__GFP_MOVABLE"] | GFP_BITS["__GFP_RECLAIMABLE"]), "both"),
])
def test_bad_input_names_pfn_and_reason(call, match):
    a = plain(1 << 12)
    with pytest.raises(BadPageError, match=match):
        call(a)
    a.check()


def test_double_free_and_wrong_order():
    a = plain(1 << 12)
    p = a.alloc(2)
    with pytest.raises(BadPageError, match="freed with order 1, allocated with order 2"):
        a.free(p, 1)
    a.free(p, 2)
    with pytest.raises(BadPageError, match=r"pfn 0x0: double free"):
        a.free(p, 2)
    a.check()


def test_lenient_mode_counts_and_goes_on():
    a = plain(1 << 12, lenient=True)
    p = a.alloc(0)
    a.free(p, 0)
    a.free(p, 0)
    a.free(99999, 0)
    assert a.stats()["bad_page"] == 2
    a.check()


def test_unknown_fpi_bits_rejected():
    a = plain()
    p = a.alloc(0)
    with pytest.raises(ValueError, match="unknown FPI"):
        a.free(p, 0, 1 << 9)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="max_order"):
        BuddyAllocator(1024, max_order=99)
    with pytest.raises(ValueError, match="nr_pages"):
        BuddyAllocator(0)


def test_default_pcp_sizes_follow_the_kernel():
    a = BuddyAllocator(1 << 22)  # 16 GiB
    assert a.pcp_batch == 63
    assert a.pcp_high >= 4 * 63
    assert a.bytes_per_page() <= 16


def test_the_api_takes_integers_of_any_kind_and_names_a_wrong_argument():
    import numpy as np
    from allocator import BuddyAllocator
    from zeroing.run import simulate
    assert BuddyAllocator(np.int64(4096)).nr_pages == 4096
    with pytest.raises(TypeError, match=r"nr_pages 4096.0, .* must be integers"):
        BuddyAllocator(4096.0)
    with pytest.raises(ValueError, match=r"page_reporting_order 15 is not in 0..max_order"):
        BuddyAllocator(4096, page_reporting_order=15)
    with pytest.raises(TypeError, match=r"policy 'pg_zeroed': a Policy, as make_policy"):
        simulate(np.zeros(0), "pg_zeroed", 1024)
    from zeroing.policy import make_policy
    with pytest.raises(TypeError, match=r"backend 7: a name \(numpy, numba, cuda, cupy or auto\)"):
        simulate(np.zeros(0), make_policy("pg_zeroed"), 1024, mode="content", backend=7)
    from kernels.device_batch import HostOnly

    class Partial:
        name = "partial"
        alloc_pool = describe = apply = staticmethod(lambda *a: None)
    for odd in (HostOnly, Partial()):  # a class, not a backend; no to_host (for a fallback)
        with pytest.raises(TypeError, match=r"a backend \(an object with name, alloc_pool"):
            simulate(np.zeros(0), make_policy("pg_zeroed"), 1024, mode="content", backend=odd)
    with pytest.raises(ValueError, match="unknown backend 'nosuch'"):
        simulate(np.zeros(0), make_policy("pg_zeroed"), 1024, backend="nosuch")
