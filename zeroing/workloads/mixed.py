"""``mixed``: a little of every kernel path, with idle gaps long enough for background work.

Per step (1 us of simulated time): user faults (order 0, and order 9 THP), kernel
allocations with and without __GFP_ZERO (GFP_KERNEL, order 0-3), frees of earlier
allocations keeping about half of memory in use, balloon inflate/deflate bursts, and every
~5% of the stream an idle gap of 3 s so page reporting runs.

Compiled (``gen.py``); one event per step.
"""
import numpy as np
from numba import njit

from allocator.flags import GFP_KERNEL, __GFP_ZERO

from ..events import EV_ALLOC, EV_DEFLATE, EV_FAULT, EV_FREE, EV_IDLE, EV_INFLATE
from .gen import (S_BASE, S_DONE, S_GROW, S_ROW, S_USER, Chunks, OrderedList, collect, draws,
                  ol_append, ol_full, ol_len, ol_pop, put, rand_below, room, uniform)

M_USED = S_USER
M_NLIVE = S_USER + 1
KMALLOC_ORDERS = np.array([0, 0, 0, 1, 2, 3], np.int8)  # rng.choice([0, 0, 0, 1, 2, 3])


@njit(cache=True)
def _fill(rng, st, buf, live_row, live_order, ballooned, nr_pages, events):
    bits = draws(rng)
    target = nr_pages // 2
    idle_every = max(20, events // 20)
    while room(st, buf, 1):
        i = st[S_ROW]
        if i == events:
            st[S_DONE] = 1
            break
        if ol_full(ballooned):
            st[S_GROW] = 1
            break
        if i % idle_every == idle_every - 1:
            put(st, buf, 1000 + 3_000_000_000, EV_IDLE, 0, 0, 0)
            continue
        r = uniform(bits)
        nlive = st[M_NLIVE]
        if r < 0.03 and ol_len(ballooned) < nr_pages // 8:
            ol_append(ballooned, put(st, buf, 1000, EV_INFLATE, 0, 0, 0))
        elif r < 0.05 and ol_len(ballooned) > 0:
            # The last inflated first (events.py: EV_DEFLATE). The draw of the random page
            # it took before stays, so that a seed gives the stream it gave.
            rand_below(bits, ol_len(ballooned))
            put(st, buf, 1000, EV_DEFLATE, 0, 0, ol_pop(ballooned, ol_len(ballooned) - 1))
        elif nlive > 0 and (st[M_USED] > target or r < 0.45):
            k = rand_below(bits, nlive)  # swap-remove, as the list version did
            ref, order = live_row[k], live_order[k]
            live_row[k], live_order[k] = live_row[nlive - 1], live_order[nlive - 1]
            st[M_NLIVE] = nlive - 1
            st[M_USED] -= np.int64(1) << order
            put(st, buf, 1000, EV_FREE, order, 0, ref)
        else:
            kind = uniform(bits)
            gfp = 0
            if kind < 0.45:
                op, order = EV_FAULT, 0
            elif kind < 0.50:
                op, order = EV_FAULT, 9
            else:
                op, order = EV_ALLOC, KMALLOC_ORDERS[rand_below(bits, 6)]
                gfp = GFP_KERNEL | (__GFP_ZERO if uniform(bits) < 0.5 else 0)
            live_row[nlive] = put(st, buf, 1000, op, order, gfp, 0)
            live_order[nlive] = order
            st[M_NLIVE] = nlive + 1
            st[M_USED] += np.int64(1) << order
    return st[S_ROW] - st[S_BASE]


def mixed_chunks(nr_pages=1 << 18, events=300_000, seed=0, chunk=1 << 20, reuse=False):
    """``mixed`` a chunk at a time (refs are stream rows)."""
    if events < 0:
        raise ValueError(f"events must be at least 0, got {events}")
    return _mixed_chunks(nr_pages, events, seed, chunk, reuse)


def _mixed_chunks(nr_pages=1 << 18, events=300_000, seed=0, chunk=1 << 20, reuse=False):
    rng = np.random.default_rng(seed)
    st = np.zeros(S_USER + 2, np.int64)
    # Allocations happen only while at most half of memory is in use: the live set is bounded.
    cap = nr_pages // 2 + 520
    live_row, live_order = np.zeros(cap, np.int64), np.zeros(cap, np.int64)
    ballooned = OrderedList(nr_pages // 8 + 1)
    return Chunks(lambda buf: _fill(rng, st, buf, live_row, live_order, ballooned.a,
                                    nr_pages, events), st, chunk, [ballooned], reuse=reuse)


def mixed(nr_pages=1 << 18, events=300_000, seed=0):
    return collect(mixed_chunks(nr_pages, events, seed))
