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
"""
import numpy as np

from allocator.flags import (GFP_BITS, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, __GFP_MOVABLE,
                             __GFP_ZERO)

from ..events import EV_ALLOC, EV_DEFLATE, EV_FAULT, EV_FREE, EV_INFLATE, EVENT_CALLER_DTYPE
from ..struct_page import CALLER_NAMES, MIX_CALLERS, parse_caller_mix

DEFAULT_CALLERS = ",".join(f"{name}=1" for name in MIX_CALLERS)
GFP_ATOMIC = GFP_BITS["__GFP_HIGH"] | GFP_BITS["__GFP_KSWAPD_RECLAIM"]
#: caller name -> (event, gfp, probability of __GFP_ZERO)
CALLER_GFP = {
    "anon": (EV_FAULT, 0, 0.0),
    "file": (EV_ALLOC, GFP_HIGHUSER_MOVABLE, 0.0),
    "slab": (EV_ALLOC, GFP_KERNEL, 0.0),
    "pgtable": (EV_ALLOC, GFP_KERNEL | GFP_BITS["__GFP_ACCOUNT"] | __GFP_ZERO, 1.0),
    "page_pool": (EV_ALLOC, GFP_ATOMIC | GFP_BITS["__GFP_NOWARN"], 0.0),
    "private_list": (EV_ALLOC, GFP_KERNEL, 0.5),
    "raw": (EV_ALLOC, GFP_KERNEL, 0.5),
}


def unaware_user(nr_pages=1 << 16, events=100_000, seed=0, callers=DEFAULT_CALLERS):
    mix = parse_caller_mix(callers)
    names = [n for n in mix if mix[n] > 0]
    weights = np.array([mix[n] for n in names]) / sum(mix[n] for n in names)
    picks = np.random.default_rng([seed, 1]).choice(len(names), size=events, p=weights)
    rng = np.random.default_rng(seed)
    ev = np.zeros(events, dtype=EVENT_CALLER_DTYPE)
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
            name = names[picks[i]]
            op, gfp, p_zero = CALLER_GFP[name]
            row["op"], row["caller"] = op, CALLER_NAMES.index(name)
            row["gfp"] = gfp | __GFP_MOVABLE | (__GFP_ZERO if rng.random() < p_zero else 0)
            live.append(i)
    return ev
