"""Differential test against the plain reference of the kernel's buddy rules."""
import numpy as np
from hypothesis import given, settings, strategies as st

from allocator import FPI, BuddyAllocator
from reference_buddy import ReferenceBuddy


def replay_both(nr_pages, max_order, script):
    model = BuddyAllocator(nr_pages, max_order=max_order, pcp=False, mobility_grouping=False)
    ref = ReferenceBuddy(nr_pages, max_order)
    assert model.buddyinfo() == ref.buddyinfo()
    live = []
    for kind, a, b in script:
        if kind == "alloc" or not live:
            order = a % (max_order + 1)
            pfn = model.alloc(order)
            rpfn, rzero = ref.alloc(order)
            assert pfn == rpfn
            if pfn is not None:
                assert model.page_is_zeroed(pfn) == rzero
                live.append((pfn, order))
        else:
            pfn, order = live.pop(a % len(live))
            zeroed = bool(b & 1)
            model.free(pfn, order, FPI.ZEROED if zeroed else FPI.NONE)
            ref.free(pfn, order, zeroed=zeroed)
        assert model.buddyinfo() == ref.buddyinfo()
        assert model.zeroed_info() == ref.zeroedinfo()
    model.check()


@settings(max_examples=60, deadline=None)
@given(
    nr_pages=st.integers(1, 3000),
    max_order=st.integers(0, 10),
    script=st.lists(st.tuples(st.sampled_from(["alloc", "free"]), st.integers(0, 1000),
                              st.integers(0, 3)), max_size=150),
)
def test_matches_reference(nr_pages, max_order, script):
    replay_both(nr_pages, max_order, script)


def test_long_random_run_matches_reference():
    rng = np.random.default_rng(7)
    script = [(("alloc", "free")[rng.integers(2)], int(rng.integers(1000)), int(rng.integers(4)))
              for _ in range(4000)]
    replay_both(1 << 13, 10, script)


# -- with per-cpu lists (auto-tuned) and mobility grouping: ReferenceZone ---------------------

from allocator import GFP_HIGHUSER_MOVABLE, GFP_KERNEL  # noqa: E402
from allocator.flags import GFP_BITS  # noqa: E402
from allocator.watermarks import zone_limits  # noqa: E402
from reference_buddy import ReferenceZone  # noqa: E402

GFPS = [GFP_KERNEL, GFP_HIGHUSER_MOVABLE, GFP_KERNEL | GFP_BITS["__GFP_RECLAIMABLE"]]
ORDERS = [0, 0, 0, 0, 1, 2, 3, 9, 10]


def replay_zone(nr_pages, nr_cpus, mobility, script):
    model = BuddyAllocator(nr_pages, pcp=True, mobility_grouping=mobility, nr_cpus=nr_cpus)
    ref = ReferenceZone(nr_pages, zone_limits(nr_pages, nr_cpus, True), nr_cpus,
                        mobility=mobility)
    live = []
    for step, (kind, a, b, c) in enumerate(script):
        cpu = c % nr_cpus
        if kind == "alloc" or (kind == "free" and not live):
            order, mt = ORDERS[a % len(ORDERS)], b % 3
            pfn = model.alloc(order, GFPS[mt], cpu)
            rpfn, rzero = ref.alloc(order, mt, cpu)
            assert pfn == rpfn, step
            if pfn is not None:
                assert model.page_is_zeroed(pfn) == rzero, step
                live.append((pfn, order))
        elif kind == "free":
            pfn, order = live.pop(a % len(live))
            model.free(pfn, order, FPI.ZEROED if b & 1 else FPI.NONE, cpu)
            ref.free(pfn, order, bool(b & 1), cpu)
        else:
            model.decay_pcp_high(cpu)
            ref.decay(cpu)
        info = model.pagetypeinfo()
        assert [info[n] for n in ("Unmovable", "Movable", "Reclaimable")] == ref.pagetypeinfo(), step
        for k in range(nr_cpus):
            pi = model.pcp_info(k)
            assert (pi["count"], pi["high"]) == (ref.pcp[k]["count"], ref.pcp[k]["high"]), step
    model.check()


@settings(max_examples=40, deadline=None)
@given(
    nr_pages=st.integers(1024, 6000), nr_cpus=st.integers(1, 3), mobility=st.booleans(),
    script=st.lists(st.tuples(st.sampled_from(["alloc", "alloc", "free", "free", "decay"]),
                              st.integers(0, 1000), st.integers(0, 5), st.integers(0, 3)),
                    max_size=200),
)
def test_pcp_and_mobility_match_reference(nr_pages, nr_cpus, mobility, script):
    replay_zone(nr_pages, nr_cpus, mobility, script)


def test_long_pcp_run_matches_reference():
    rng = np.random.default_rng(11)
    kinds = ["alloc", "alloc", "alloc", "free", "free", "decay"]
    script = [(kinds[rng.integers(len(kinds))], int(rng.integers(1000)), int(rng.integers(6)),
               int(rng.integers(4))) for _ in range(3000)]
    replay_zone(1 << 13, 2, True, script)


def test_thps_freed_to_a_pcp_list_then_decayed_match_reference():
    """THPs on a per-cpu list, then ticks of decay_pcp_high(): each call frees ``batch``
    pages' worth, a THP a call (6.18.y); the random scripts above rarely get there."""
    script = [("alloc", 0, 1, 0)] * 30 + [("alloc", 7, 1, 0)] * 24  # 30 pages, 24 THPs
    script += [("free", 0, 0, 0)] * 54 + [("decay", 0, 0, 0)] * 12
    replay_zone(1 << 16, 1, True, script)
