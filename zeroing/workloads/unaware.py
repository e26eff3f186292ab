"""``unaware-user``: kernel callers off the folio path allocate, write and free pages without
knowing about any zeroed bit, interleaved with __GFP_ZERO allocations that trust the hint.

With a design that leaves the hint in struct page (folio_flag, lru_bit) and a ``page_bit``
free signal, a page such a caller dirtied is freed as "zeroed" and later handed to a
__GFP_ZERO caller without clearing: the leak David Hildenbrand warned about.

Compiled (``gen.py``); one event per step.
"""
import numpy as np
from numba import njit

from allocator.flags import GFP_HIGHUSER_MOVABLE, __GFP_ZERO

from ..events import EV_ALLOC, EV_DEFLATE, EV_FREE, EV_INFLATE
from .gen import (S_BASE, S_DONE, S_GROW, S_ROW, S_T, S_USER, OrderedList, Ring, chunks,
                  collect, new_buffer, ol_append, ol_full, ol_len, ol_pop, put, ring_append,
                  ring_full, ring_popleft, room)


@njit(cache=True)
def _fill(rng, st, buf, live, balloon, nr_pages, events):
    while room(st, buf, 1):
        i = st[S_ROW]
        if i == events:
            st[S_DONE] = 1
            break
        if ol_full(live) or ring_full(balloon):
            st[S_GROW] = 1
            break
        st[S_T] = i * 1000 - 1000  # put() adds 1000: event i is at i us
        r = rng.random()
        nballoon = balloon[1][1]
        if r < 0.1 or (r < 0.15 and nballoon == 0):
            # The host gives these back zeroed: the source of hints.
            ring_append(balloon, put(st, buf, 1000, EV_INFLATE, 0, 0, 0))
        elif r < 0.2 and nballoon > 0:
            put(st, buf, 1000, EV_DEFLATE, 0, 0, ring_popleft(balloon))
        elif ol_len(live) > 0 and (r < 0.55 or ol_len(live) > nr_pages // 4):
            put(st, buf, 1000, EV_FREE, 0, 0, ol_pop(live, rng.integers(0, ol_len(live))))
        else:
            # Movable, like the deflated pages: they share pcp lists and pageblocks.
            gfp = GFP_HIGHUSER_MOVABLE | (__GFP_ZERO if rng.random() < 0.5 else 0)
            ol_append(live, put(st, buf, 1000, EV_ALLOC, 0, gfp, 0))
    return st[S_ROW] - st[S_BASE]


def unaware_user_chunks(nr_pages=1 << 16, events=100_000, seed=0, chunk=1 << 20,
                        reuse=False):
    """``unaware_user`` a chunk at a time (refs are stream rows)."""
    if events < 0:
        raise ValueError(f"events must be at least 0, got {events}")
    return _unaware_user_chunks(nr_pages, events, seed, chunk, reuse)


def _unaware_user_chunks(nr_pages=1 << 16, events=100_000, seed=0, chunk=1 << 20,
                         reuse=False):
    rng = np.random.default_rng(seed)
    st = np.zeros(S_USER, np.int64)
    buf = new_buffer(chunk)
    live = OrderedList(nr_pages // 4 + 2)  # allocations stop above a quarter of memory
    balloon = Ring(1024)  # a random walk: grows when it must
    yield from chunks(lambda: _fill(rng, st, buf, live.a, balloon.a, nr_pages, events),
                      st, buf, [live, balloon], reuse=reuse)


def unaware_user(nr_pages=1 << 16, events=100_000, seed=0):
    return collect(unaware_user_chunks(nr_pages, events, seed))
