"""Per-cpu list auto-tuning (6.18): each rule has a scenario whose outcome differs when the
rule flips. Expected figures are derived in comments from mm/page_alloc.c."""
import pytest

from allocator import BuddyAllocator, GFP_HIGHUSER_MOVABLE
from allocator.pcp import PCP_ALLOC_FACTOR, PCP_FREE_COUNT, ZONE_BELOW_HIGH, ZS_FLAGS

MOV = GFP_HIGHUSER_MOVABLE


def state(a, cpu=0):
    ps = a.zone.pcp_state[cpu]
    return int(a.zone.pcp_count[cpu]), int(ps[0]), int(ps[PCP_FREE_COUNT]), int(ps[PCP_ALLOC_FACTOR])


def test_refills_double_with_alloc_factor_and_raise_high():
    # 256 MiB, 1 CPU: batch 15, high_min 4047 (low watermark), high_max 65536 / 8 = 8192.
    a = BuddyAllocator(1 << 16)
    assert (a.pcp_batch, a.pcp_info()["high_min"], a.pcp_info()["high_max"]) == (15, 4047, 8192)
    # nr_pcp_alloc(): refill k takes 15 << min(k, 5) blocks and raises high by as much;
    # alloc_factor counts up to PCP_BATCH_SCALE_MAX (5).
    sizes, high = [], 4047
    taken = 0
    for k in range(7):
        n = 15 << min(k, 5)
        high = min(high + n, 8192)
        sizes.append(n)
        for _ in range(n):
            a.alloc(0, MOV)
            taken += 1
            if taken == sum(sizes) - n + 1:  # just after this refill
                assert state(a)[0] == n - 1, k
                assert a.pcp_high == high, k
                assert state(a)[3] == min(k + 1, 5), k
    # A free halves alloc_factor (5 -> 2): the next refill takes 15 << 2 = 60 blocks.
    a.free(a.alloc(0, MOV), 0)
    while state(a)[0] > 0:
        a.alloc(0, MOV)
    a.alloc(0, MOV)
    assert state(a)[0] == 59 and state(a)[3] == 3
    a.check()


def test_frees_raise_high_to_free_count_plus_batch():
    # 2 GiB, 8 CPUs: high_min 880, batch 63. Pages allocated on CPU 0 and freed on CPU 1,
    # where no refill raised high: each time the count reaches high, nr_pcp_high() raises it
    # to free_count + batch and drains clamp(free_count, 63, old high - 63), leaving 63:
    # free 880: high 943, count 63; free 1760: high 1823; free 3520: free_count has stopped
    # at batch << 5 = 2016, high 2079.
    a = BuddyAllocator(1 << 19, nr_cpus=8)
    pfns = [a.alloc(0, MOV, cpu=0) for _ in range(4000)]
    for p in pfns:
        a.free(p, 0, cpu=1)
    count, high, free_count, _ = state(a, 1)
    assert (free_count, high) == (2016, 2079)
    # An allocation halves free_count (a run of frees ended).
    a.alloc(0, MOV, cpu=1)
    assert state(a, 1)[2] == 1008
    a.check()


def test_free_burst_after_alloc_burst_stays_on_the_pcp_list():
    # The case: a 2 GiB one-CPU zone, 65536 order-0 faults then 65536 frees. The
    # allocations raise high to high_max (65536 = managed / 8); the frees then stay on the
    # list until count reaches high, where nr_pcp_free() drains clamp(free_count, 63,
    # high - 63) = 63 << 5 = 2016 pages (free_count is capped at batch << 5).
    a = BuddyAllocator(1 << 19)
    pfns = [a.alloc(0, MOV) for _ in range(65536)]
    assert a.pcp_high == 65536
    before = a.stats()["pcp_drain"]
    for p in pfns:
        a.free(p, 0)
    count = a.nr_pcp_pages()
    drained = a.stats()["pcp_drain"] - before
    assert count > 60000  # tens of thousands, not ~2000
    assert drained > 0 and drained % 2016 == 0
    fixed = BuddyAllocator(1 << 19, pcp_high="fixed")
    pfns = [fixed.alloc(0, MOV) for _ in range(65536)]
    for p in pfns:
        fixed.free(p, 0)
    assert fixed.nr_pcp_pages() < 1972  # the old rule: high fixed at the low watermark
    # Idle: decay_pcp_high() each second lowers high to max(count - 2016, high - high / 8,
    # high_min) and drains down to it, until high_min (7040).
    ticks = 0
    expect_count, expect_high = count, a.pcp_high
    while a.decay_pcp_high():
        ticks += 1
        if expect_high > 7040:
            expect_high = max(expect_count - 2016, expect_high - (expect_high >> 3), 7040)
        expect_count = min(expect_count, expect_high)
        assert (a.nr_pcp_pages(), a.pcp_high) == (expect_count, expect_high), ticks
    assert a.pcp_high == 7040 and a.nr_pcp_pages() <= 7040
    # Each tick releases at most batch << 5 = 2016 pages: ceil((count - 7040) / 2016) ticks
    # at least.
    assert ticks >= -(-(count - 7040) // 2016)
    a.check()


def test_free_high_drains_a_burst_of_order_1_frees():
    # 2 GiB, 8 CPUs: high_min 7040 / 8 = 880, batch 63. free_frozen_page_commit(): an order
    # 1-3 free after another one, with free_count >= batch + high_min / 2 = 503 and count >=
    # batch (PCPF_FREE_HIGH_BATCH), drains min(count, 63 << 5) pages: here all of them.
    a = BuddyAllocator(1 << 19, nr_cpus=8)
    blocks = [a.alloc(1, MOV) for _ in range(400)]
    assert a.nr_pcp_pages() < 100
    seen = []
    for b in blocks:
        count, _, free_count, _ = state(a)
        a.free(b, 1)
        seen.append((free_count, count, a.nr_pcp_pages()))
    first = next(i for i, (_, c, after) in enumerate(seen) if after < c)
    free_count, count, after = seen[first]
    assert free_count >= 503 and seen[first - 1][0] < 503
    assert after == 0  # everything went (count + 2 < 2016)
    # The same burst of order-0 frees does not trigger free_high: nothing drains.
    b = BuddyAllocator(1 << 19, nr_cpus=8)
    pages = [b.alloc(0, MOV) for _ in range(800)]
    for p in pages:
        b.free(p, 0)
    assert b.stats()["pcp_drain"] == 0


def test_zone_below_high_watermark_shrinks_high_on_free():
    # 16 MiB zone: high watermark 291, high_min 243, high_max 512, batch 1. Allocate until
    # fewer than 291 pages are free: get_page_from_freelist() sets ZONE_BELOW_HIGH; then
    # nr_pcp_high() lowers high by max(free_count, batch) on each free reaching it, and
    # drains down to high_min, instead of raising it.
    a = BuddyAllocator(1 << 12)
    held = []
    while a.nr_free_pages() + a.nr_pcp_pages() > 200:
        held.append(a.alloc(0, MOV))
    assert a.zone.zstate[ZS_FLAGS] & ZONE_BELOW_HIGH
    high_before = a.pcp_high
    for p in held[:600]:
        a.free(p, 0)
    assert a.pcp_high < high_before
    assert a.nr_pcp_pages() <= max(a.pcp_info()["high_min"], 1) + 1
    # Enough free again: the flag clears after a drain once the zone is above high.
    for p in held[600:]:
        a.free(p, 0)
    assert not a.zone.zstate[ZS_FLAGS] & ZONE_BELOW_HIGH
    a.check()


def test_fixed_mode_keeps_the_old_rule():
    # --pcp-high fixed: drain batch pages whenever count reaches high (1972 on 2 GiB),
    # refill max(batch >> order, 2) blocks.
    a = BuddyAllocator(1 << 19, pcp_high="fixed")
    assert a.pcp_high == 1972 and not a.pcp_auto
    a.alloc(0, MOV)
    assert a.nr_pcp_pages() == 62
    pfns = [a.alloc(0, MOV) for _ in range(3000)]
    for p in pfns:
        a.free(p, 0)
    assert a.stats()["pcp_drain"] % 63 == 0
    assert a.nr_pcp_pages() < 1972
    with pytest.raises(ValueError, match="pcp_high"):
        BuddyAllocator(1 << 12, pcp_high="sometimes")


def test_decay_drains_batch_pages_a_call_and_a_thp_each_call():
    """``decay_pcp_high()`` frees ``batch`` pages a call (fc4b909c368f, in 6.18.y): each call
    restarts at pindex 0, frees whole blocks, and the count goes down by ``batch`` whatever
    it freed. With 10 order-0 pages and 8 THPs on the lists and 2 * batch + 1 to drain, three
    calls free the 10 pages and three THPs (1546 pages); one call for the whole excess (6.18.0)
    frees the 10 pages and one THP (522). The kernel's capture asleep drained 16 THPs in one
    tick so (tests/test_pcp_trace.py)."""
    from allocator.pcp import PCP_HIGH, PCP_HIGH_MIN
    a = BuddyAllocator(1 << 16)
    batch = a.pcp_batch
    assert a.fill_pcp(0, 10, order=0) == 10 and a.fill_pcp(0, 8, order=9) == 8
    count = int(a.zone.pcp_count[0])
    assert count == 10 + 8 * 512
    ps = a.zone.pcp_state[0]
    ps[PCP_HIGH_MIN] = ps[PCP_HIGH] = count - (2 * batch + 1)  # at its floor: no decay of high
    drained = a.stats()["pcp_drain"]
    a.decay_pcp_high(0)
    assert a.stats()["pcp_drain"] - drained == 10 + 3 * 512
    assert int(a.zone.pcp_count[0]) == 5 * 512
    a.check()
