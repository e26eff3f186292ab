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
