"""``unaware-user``: kernel callers off the folio path allocate, write and free pages without
knowing about any zeroed bit, interleaved with __GFP_ZERO allocations that trust the hint.

With a design that leaves the hint in struct page (folio_flag, lru_bit) and a ``page_bit``
free signal, a page such a caller dirtied is freed as "zeroed" and later handed to a
__GFP_ZERO caller without clearing: the leak David Hildenbrand warned about.
"""
import numpy as np

from allocator.flags import GFP_HIGHUSER_MOVABLE, __GFP_ZERO

from ..events import EV_ALLOC, EV_DEFLATE, EV_FREE, EV_INFLATE, EVENT_DTYPE


def unaware_user(nr_pages=1 << 16, events=100_000, seed=0):
    rng = np.random.default_rng(seed)
    ev = np.zeros(events, dtype=EVENT_DTYPE)
    live = []
    balloon = []
    for i in range(events):
        row = ev[i]
        row["time"] = i * 1000
        r = rng.random()
        if r < 0.1 or (r < 0.15 and not balloon):
            row["op"] = EV_INFLATE  # the host gives these back zeroed: the source of hints
            balloon.append(i)
        elif r < 0.2 and balloon:
            row["op"], row["ref"] = EV_DEFLATE, balloon.pop(0)
        elif live and (r < 0.55 or len(live) > nr_pages // 4):
            ref = live.pop(int(rng.integers(len(live))))
            row["op"], row["ref"] = EV_FREE, ref
        else:
            row["op"] = EV_ALLOC
            # Movable, like the deflated pages: they share pcp lists and pageblocks.
            row["gfp"] = GFP_HIGHUSER_MOVABLE | (__GFP_ZERO if rng.random() < 0.5 else 0)
            live.append(i)
    return ev
