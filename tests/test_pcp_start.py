"""The per-cpu lists a capture started with, read from its trace (zeroing/pcp_start.py).

Rows are ``read_events(..., detail=True)`` rows: (line, event, pfn, order, gfp, cpu, time,
migratetype, percpu_refill)."""
import pytest

from allocator import BuddyAllocator
from allocator.flags import GFP_HIGHUSER_MOVABLE, GFP_KERNEL, MigrateType
from zeroing.pcp_start import TraceLists
from zeroing.trace import read_events

MOV, UNMOV, RECL = MigrateType.MOVABLE, MigrateType.UNMOVABLE, MigrateType.RECLAIMABLE
GFP = {MOV: GFP_HIGHUSER_MOVABLE, UNMOV: GFP_KERNEL}
PINDEX = BuddyAllocator(1 << 14).pcp_pindex


def alloc(pfn, cpu=0, mt=MOV, order=0):
    return (0, "mm_page_alloc", pfn, order, GFP[mt], cpu, 0, int(mt), -1)


def free(pfn, cpu=0, order=0, name="mm_page_free"):
    return (0, name, pfn, order, 0, cpu, 0, -1, -1)


def refill(pfn, cpu=0, mt=MOV, order=0, flag=1):
    return (0, "mm_page_alloc_zone_locked", pfn, order, 0, cpu, 0, int(mt), flag)


def drain(pfn, cpu=0, mt=MOV, order=0):
    return (0, "mm_page_pcpu_drain", pfn, order, 0, cpu, 0, int(mt), -1)


def lists(rows):
    """{(cpu, order, migratetype): (blocks, refilled)}."""
    t = TraceLists.from_trace(lambda: iter(rows), PINDEX)
    return {(cpu, order, MigrateType(mt)): (blocks, refilled)
            for cpu, per in t.lists.items() for order, mt, blocks, refilled in per.values()}, t


def test_a_list_the_trace_refills_held_what_left_it_before_the_refill():
    """rmqueue_pcplist() refills only an empty list: before CPU 0's first Movable order-0
    refill it served 6 pages, drained 1 and had 2 freed onto it, so it held 6 + 1 - 2 = 5.
    What happens after the refill says nothing of the start."""
    rows = [alloc(1), alloc(2), alloc(3), drain(4), alloc(5), alloc(6), alloc(7), free(1),
            free(2), refill(8), alloc(8), alloc(9), free(3)]
    got, _ = lists(rows)
    assert got[0, 0, MOV] == (5, True)


def test_a_list_that_took_more_back_than_it_served_before_its_refill_held_nothing():
    """One page served and freed back, then a page of the same pageblock freed onto the list,
    then a refill: the list ran empty having held nothing at the start (not -1 blocks)."""
    got, _ = lists([alloc(1), free(1), free(2), refill(8)])
    assert got[0, 0, MOV] == (0, True)


def test_a_list_never_refilled_held_at_least_its_largest_net_outflow():
    """Serve 3, take 2 back, serve 4, take 1 back: the list never ran empty, so it held at
    least 5."""
    rows = [alloc(1), alloc(2), alloc(3), free(1), free(2)] + \
        [alloc(p) for p in (4, 5, 6, 7)] + [free(4)]
    got, _ = lists(rows)
    assert got[0, 0, MOV] == (5, False)


def test_lists_are_per_cpu_order_and_migratetype_and_thp_has_its_own():
    rows = [alloc(1, cpu=1), alloc(2, mt=UNMOV), alloc(16, order=2), alloc(512, order=9),
            refill(1024, cpu=1)]
    got, _ = lists(rows)
    assert got == {(1, 0, MOV): (1, True), (0, 0, UNMOV): (1, False),
                   (0, 2, MOV): (1, False), (0, 9, MOV): (1, False)}


def test_only_percpu_refill_lines_are_refills():
    """``percpu_refill=0`` (rmqueue_buddy(), a non-pcp order) leaves the list as it was; a
    line without the field (older kernels) is a refill where the kernel would have set it."""
    got, _ = lists([alloc(1), alloc(2), refill(8, flag=0), alloc(3)])
    assert got[0, 0, MOV] == (3, False)
    got, _ = lists([alloc(1), alloc(2), refill(8, flag=-1), alloc(3)])
    assert got[0, 0, MOV] == (2, True)


def test_a_free_goes_to_its_pageblock_s_list():
    """free_frozen_page_commit() files a page by get_pfnblock_migratetype(): a page allocated
    Movable from a pageblock whose drains print Unmovable goes back on the Unmovable list; a
    page the trace never saw allocated is placed by its pageblock's allocations."""
    rows = [alloc(1), alloc(2, mt=UNMOV), drain(3, mt=UNMOV), free(1), free(600),
            alloc(601, cpu=1), refill(0, mt=UNMOV)]
    got, t = lists(rows)
    # Unmovable: served 1, drained 1, and pfn 1 freed back (its pageblock drains print
    # Unmovable); pfn 600, never allocated in the trace, goes to the Movable list (its
    # pageblock's allocation is Movable): served 1, freed 1, so at least 1.
    assert got[0, 0, UNMOV] == (1, True)
    assert got[0, 0, MOV] == (1, False) and t.unknown_frees == 0


def test_without_drains_a_free_follows_its_own_allocation_before_its_pageblock_s():
    rows = [alloc(2, mt=UNMOV), alloc(3), free(3), refill(9), refill(10, mt=UNMOV)]
    got, _ = lists(rows)
    assert got[0, 0, MOV] == (0, True) and got[0, 0, UNMOV] == (1, True)


def test_highatomic_and_above_free_to_the_movable_list_and_unknown_frees_are_counted():
    rows = [alloc(1), alloc(2), drain(1024, cpu=1, mt=3), free(1025), free(5000), refill(9)]
    got, t = lists(rows)
    # Movable: served 2 before the refill, less the free from a HighAtomic pageblock.
    assert got[0, 0, MOV] == (1, True)
    assert t.unknown_frees == 1  # pfn 5000: nothing in the trace places its pageblock


def test_a_batched_free_repeating_a_free_counts_once():
    rows = [alloc(1), alloc(2), alloc(3), free(1), free(1, name="mm_page_free_batched"),
            refill(9)]
    got, _ = lists(rows)
    assert got[0, 0, MOV] == (2, True)


@pytest.mark.parametrize("rows,count,expect", [
    # the rest goes on the busiest order-0 list that never ran empty
    ([alloc(1), alloc(4), alloc(5), alloc(2, mt=UNMOV), alloc(3, mt=UNMOV), refill(9)], 100,
     [(0, MOV, 3), (0, UNMOV, 97)]),
    # among lists the trace shows equally, Movable
    ([alloc(1), alloc(2, mt=UNMOV)], 100, [(0, MOV, 99), (0, UNMOV, 1)]),
    # none shown: Movable
    ([], 10, [(0, MOV, 10)]),
    # Movable and Unmovable ran empty: Reclaimable, which the trace never shows
    ([refill(1), refill(2, mt=UNMOV)], 10, [(0, RECL, 10)]),
])
def test_the_rest_of_the_count_goes_on_an_order_0_list_that_never_ran_empty(rows, count, expect):
    t = TraceLists.from_trace(lambda: iter(rows), PINDEX)
    seeded, rests = t.seed([(count, 500)])
    assert rests == [0]
    got = {(o, MigrateType(mt)): n for o, mt, n in seeded[0]}
    assert got == {(o, mt): n for o, mt, n in expect if n}


def test_seed_says_what_the_count_cannot_hold_or_place():
    t = TraceLists.from_trace(lambda: iter([alloc(p) for p in range(5)] + [refill(9)]), PINDEX)
    assert t.seed([(3, 500)])[1] == [-2]  # the trace needs 5 where the count says 3
    every = [refill(1), refill(2, mt=UNMOV), refill(3, mt=RECL)]
    t = TraceLists.from_trace(lambda: iter(every), PINDEX)
    assert t.seed([(7, 500)]) == ([[]], [7])  # every order-0 list ran empty


def test_detail_rows_carry_the_migratetype_and_percpu_refill(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(
        " a-1 [001] ..... 1.000000: mm_page_alloc_zone_locked: page=0x0 pfn=0x200 order=9 "
        "migratetype=1 percpu_refill=1\n"
        " a-1 [000] ..... 1.000001: mm_page_pcpu_drain: page=0x0 pfn=0x7 order=0 migratetype=2\n"
        " a-1 [000] ..... 1.000002: mm_page_free: page=0x0 pfn=0x7 order=0\n")
    rows = list(read_events(str(path), detail=True))
    assert [r[7:] for r in rows] == [(1, 1), (2, -1), (-1, -1)]
    assert [r[5] for r in rows] == [1, 0, 0]
