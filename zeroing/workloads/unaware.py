"""``unaware-user``: kernel callers allocate, write and free pages without knowing about any
zeroed bit, interleaved with balloon deflates (the source of zeroed blocks) and callers that
trust the hint.

``callers`` states the caller mix (``struct_page.parse_caller_mix``: ``"raw=3,slab=1"``);
each allocation gets a caller type, with the GFP flags and event that caller uses: ``anon`` a
user fault (order 0), ``file`` GFP_HIGHUSER_MOVABLE page cache, ``slab`` GFP_KERNEL (slab strips
__GFP_ZERO from its page allocations), ``pgtable`` GFP_PGTABLE_USER (__GFP_ZERO), ``page_pool``
GFP_ATOMIC | __GFP_NOWARN, ``private_list`` and ``raw`` GFP_KERNEL, half with __GFP_ZERO
(``get_zeroed_page``). The default mix weighs every type equally. Simplification: every
caller also passes __GFP_MOVABLE, so that all of them draw from the pageblocks the balloon's
zeroed pages return to (with their own migratetypes, unmovable callers would almost never meet a
zeroed block in this short workload, and the question here is what each does to struct page).

With a design that leaves the hint in struct page and a ``page_bit`` free signal, a page such a
caller dirtied is freed as "zeroed" and later handed to a __GFP_ZERO caller without clearing:
the leak David Hildenbrand warned about; which callers do that depends on the design (README,
"Hint designs by caller type").

Compiled (``gen.py``); one event per step. The caller of event ``i`` is drawn as
``numpy.random.Generator.choice(p=weights)`` draws it (a uniform searched in the normalised
cumulative weights) from a second generator seeded ``[seed, 1]``, one draw per event, so the
stream equals the Python loop kept in ``tests/reference_workloads.py`` whatever the chunk size.
"""
import numpy as np
from numba import njit

from allocator.flags import (GFP_BITS, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_PGTABLE_USER,
                            __GFP_MOVABLE, __GFP_ZERO)

from ..events import EV_ALLOC, EV_DEFLATE, EV_FAULT, EV_FREE, EV_INFLATE, EVENT_CALLER_DTYPE
from ..struct_page import CALLER_NAMES, MIX_CALLERS, parse_caller_mix
from .gen import (S_BASE, S_DONE, S_GROW, S_ROW, S_T, S_USER, Chunks, OrderedList, Ring,
                  collect, draws, ol_append, ol_full, ol_len, ol_pop, put, rand_below,
                  ring_append, ring_full, ring_len, ring_pop, room, uniform)

DEFAULT_CALLERS = ",".join(f"{name}=1" for name in MIX_CALLERS)
GFP_ATOMIC = GFP_BITS["__GFP_HIGH"] | GFP_BITS["__GFP_KSWAPD_RECLAIM"]
#: caller name -> (event, gfp, probability of __GFP_ZERO)
CALLER_GFP = {
    "anon": (EV_FAULT, 0, 0.0),
    "file": (EV_ALLOC, GFP_HIGHUSER_MOVABLE, 0.0),
    "slab": (EV_ALLOC, GFP_KERNEL, 0.0),
    "pgtable": (EV_ALLOC, GFP_PGTABLE_USER, 1.0),
    "page_pool": (EV_ALLOC, GFP_ATOMIC | GFP_BITS["__GFP_NOWARN"], 0.0),
    "private_list": (EV_ALLOC, GFP_KERNEL, 0.5),
    "raw": (EV_ALLOC, GFP_KERNEL, 0.5),
}


@njit(cache=True, inline="always")
def _search_right(cdf, u):
    """``np.searchsorted(cdf, u, side="right")`` for a short ascending ``cdf``: the count of
    entries <= u, without branches (a random caller mispredicts every branch of a search)."""
    k = 0
    for c in cdf:
        k += c <= u
    return k


@njit(cache=True)
def _fill(rng, picks, cdf, c_op, c_gfp, c_pzero, c_id, st, buf, live, balloon, nr_pages,
          events):
    """``picks[j]``: the caller uniform of the event in buffer row ``j``."""
    bits = draws(rng)
    while room(st, buf, 1):
        i = st[S_ROW]
        if i == events:
            st[S_DONE] = 1
            break
        if ol_full(live) or ring_full(balloon):
            st[S_GROW] = 1
            break
        st[S_T] = i * 1000 - 1000  # put() adds 1000: event i is at i us
        r = uniform(bits)
        nballoon = ring_len(balloon)
        caller = 0
        if r < 0.1 or (r < 0.15 and nballoon == 0):
            # The host gives these back zeroed: the source of hints.
            row = put(st, buf, 1000, EV_INFLATE, 0, 0, 0)
            ring_append(balloon, row)
        elif r < 0.2 and nballoon > 0:
            row = put(st, buf, 1000, EV_DEFLATE, 0, 0, ring_pop(balloon))  # the last inflated first
        elif ol_len(live) > 0 and (r < 0.55 or ol_len(live) > nr_pages // 4):
            row = put(st, buf, 1000, EV_FREE, 0, 0, ol_pop(live, rand_below(bits, ol_len(live))))
        else:
            k = _search_right(cdf, picks[i - st[S_BASE]])  # Generator.choice(p=...)
            gfp = c_gfp[k] | __GFP_MOVABLE | (__GFP_ZERO if uniform(bits) < c_pzero[k] else 0)
            row = put(st, buf, 1000, c_op[k], 0, gfp, 0)
            caller = c_id[k]
            ol_append(live, row)
        buf.caller[row - st[S_BASE]] = caller  # buffers are reused: every row sets it
    return st[S_ROW] - st[S_BASE]


def unaware_user_chunks(nr_pages=1 << 16, events=100_000, seed=0, callers=DEFAULT_CALLERS,
                        chunk=1 << 20, reuse=False):
    """``unaware_user`` a chunk at a time (refs are stream rows)."""
    if events < 0:
        raise ValueError(f"events must be at least 0, got {events}")
    mix = parse_caller_mix(callers)
    names = [n for n in mix if mix[n] > 0]
    cdf = np.cumsum(np.array([mix[n] for n in names]) / sum(mix[n] for n in names))
    cdf /= cdf[-1]  # as Generator.choice normalises it
    table = [CALLER_GFP[n] for n in names]
    return _unaware_user_chunks(nr_pages, events, seed, chunk, reuse, cdf,
                                np.array([t[0] for t in table], np.int64),
                                np.array([t[1] for t in table], np.int64),
                                np.array([t[2] for t in table], np.float64),
                                np.array([CALLER_NAMES.index(n) for n in names], np.int64))


def _unaware_user_chunks(nr_pages, events, seed, chunk, reuse, cdf, c_op, c_gfp, c_pzero, c_id):
    rng = np.random.default_rng(seed)
    pick_rng = np.random.default_rng([seed, 1])
    st = np.zeros(S_USER, np.int64)
    live = OrderedList(nr_pages // 4 + 2)  # allocations stop above a quarter of memory
    balloon = Ring(1024)  # a random walk: grows when it must
    picks = np.empty(chunk)  # the caller uniforms of the events in the buffer's rows
    left = [0]  # uniforms the last fill drew but did not use (at the end of picks)

    def fill(buf):
        # Drawn a buffer at a time (what Generator.random(out=) draws, and as many calls of
        # random() would); the ones the last call left unused go first.
        m = left[0]
        picks[:m] = picks[len(picks) - m:]
        pick_rng.random(out=picks[m:])
        n = _fill(rng, picks, cdf, c_op, c_gfp, c_pzero, c_id, st, buf, live.a, balloon.a,
                  nr_pages, events)
        left[0] = len(picks) - n
        return n

    return Chunks(fill, st, chunk, [live, balloon], EVENT_CALLER_DTYPE, reuse)


def unaware_user(nr_pages=1 << 16, events=100_000, seed=0, callers=DEFAULT_CALLERS):
    return collect(unaware_user_chunks(nr_pages, events, seed, callers), EVENT_CALLER_DTYPE)
