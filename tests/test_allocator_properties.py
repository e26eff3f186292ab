"""Hypothesis property tests: invariants hold and the hint never lies, whatever the sequence."""
import numpy as np
from hypothesis import given, settings, strategies as st

from allocator import FPI, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, BuddyAllocator
from allocator.flags import GFP_BITS

GFPS = [GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_KERNEL | GFP_BITS["__GFP_RECLAIMABLE"]]

op = st.tuples(
    st.sampled_from(["alloc", "free", "isolate", "alloc_pfn", "drain"]),
    st.integers(0, 10**6), st.integers(0, 10**6), st.booleans(),
)


@settings(max_examples=80, deadline=None)
@given(
    nr_pages=st.integers(64, 5000),
    pcp=st.booleans(), mobility=st.booleans(), nr_cpus=st.integers(1, 3),
    pcp_high=st.sampled_from([16, "auto"]), script=st.lists(op, max_size=200),
)
def test_invariants_and_hint_rules(nr_pages, pcp, mobility, nr_cpus, pcp_high, script):
    a = BuddyAllocator(nr_pages, pcp=pcp, mobility_grouping=mobility, nr_cpus=nr_cpus,
                       pcp_high=pcp_high, pcp_batch=4)
    truth = np.zeros(nr_pages, dtype=bool)  # ground truth: page content is zero
    live = {}
    isolated = []
    for kind, x, y, flag in script:
        cpu = x % nr_cpus
        if kind == "alloc":
            order = [0, 0, 0, 1, 2, 3, 9, 10][x % 8]
            pfn = a.alloc(order, GFPS[y % 3], cpu)
            if pfn is not None:
                assert pfn not in live
                if a.page_is_zeroed(pfn):  # the hint must never claim a dirty page is zero
                    assert truth[pfn:pfn + (1 << order)].all()
                truth[pfn:pfn + (1 << order)] = False  # the caller writes it
                live[pfn] = order
        elif kind == "free" and live:
            pfn = sorted(live)[x % len(live)]
            order = live.pop(pfn)
            if flag:
                truth[pfn:pfn + (1 << order)] = True  # the freer cleared it
            a.free(pfn, order, FPI.ZEROED if flag else FPI.NONE, cpu)
        elif kind == "isolate":
            if isolated and flag:
                pfn, order = isolated.pop()
                truth[pfn:pfn + (1 << order)] = y % 2 == 0
                a.putback_isolated_page(pfn, order, FPI.ZEROED if y % 2 == 0 else FPI.NONE)
            else:
                for order in range(a.max_order, -1, -1):
                    pfn = int(a.zone.free_head[order].max())
                    if pfn >= 0:
                        # __isolate_free_page obeys the min watermark "as if allocating"
                        allowed = a.nr_free_pages() > a.watermarks()[0] + (1 << order)
                        assert a.isolate_free_page(pfn, order) == allowed
                        if allowed:
                            assert not a.page_is_zeroed(pfn)
                            isolated.append((pfn, order))
                        break
        elif kind == "alloc_pfn":
            order = x % 3
            pfn = (y % nr_pages) & ~((1 << order) - 1)
            if pfn + (1 << order) <= nr_pages and a.alloc_pfn(pfn, order, GFPS[x % 3]):
                if a.page_is_zeroed(pfn):
                    assert truth[pfn:pfn + (1 << order)].all()
                truth[pfn:pfn + (1 << order)] = False
                live[pfn] = order
        elif kind == "drain":
            a.drain_pages(cpu) if flag else a.decay_pcp_high(cpu)
    a.check()
    allocated = sum(1 << o for o in live.values())
    held = sum(1 << o for _, o in isolated)
    assert a.nr_free_pages() + a.nr_pcp_pages() + allocated + held == nr_pages
    st_ = a.stats()
    assert st_["nr_allocated"] == allocated
    # PG_zeroed only ever on free heads whose pages are all zero.
    flags = a.zone.flags
    for pfn in np.nonzero(flags & 2)[0]:
        assert flags[pfn] & (1 | 8)
        assert truth[pfn:pfn + (1 << int(a.zone.order[pfn]))].all()
    # Freeing everything and draining returns the boot layout.
    for pfn, order in live.items():
        a.free(int(pfn), order)
    for pfn, order in isolated:
        a.putback_isolated_page(pfn, order)
    a.drain_pages()
    a.check()
    assert a.nr_free_pages() == nr_pages
    fresh = BuddyAllocator(nr_pages, pcp=False)
    assert a.buddyinfo() == fresh.buddyinfo()
