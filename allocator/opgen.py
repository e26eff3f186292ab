"""Random allocator operation streams (``OP_DTYPE`` rows) for tests and benchmarks.

Random numbers are drawn by numpy up front, so the compiled and interpreted loops produce the
same stream for a seed.
"""
import numpy as np
from numba import njit

from .bulk import OP_ALLOC, OP_DTYPE, OP_FREE_REF
from .flags import GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_BITS

#: (order, weight): 80% order 0, the rest orders 1-3 and 9 (THP).
DEFAULT_ORDER_MIX = ((0, 0.80), (1, 0.06), (2, 0.05), (3, 0.05), (9, 0.04))
DEFAULT_GFP_MIX = (
    (GFP_HIGHUSER_MOVABLE, 0.7),
    (GFP_KERNEL, 0.2),
    (GFP_KERNEL | GFP_BITS["__GFP_RECLAIMABLE"], 0.1),
)


@njit(cache=True)
def _fill(op, order, gfp, fpi, arg, orders, gfps, u_op, u_pick, zeroed, target_pages):
    n = len(op)
    live = np.empty(n, dtype=np.int64)
    nlive = 0
    live_pages = 0
    for i in range(n):
        want_alloc = u_op[i] < (0.6 if live_pages < target_pages else 0.4)
        if nlive == 0:
            want_alloc = True
        if want_alloc:
            op[i] = OP_ALLOC
            order[i] = orders[i]
            gfp[i] = gfps[i]
            live[nlive] = i
            nlive += 1
            live_pages += 1 << orders[i]
        else:
            k = np.int64(u_pick[i] * nlive)
            j = live[k]
            live[k] = live[nlive - 1]
            nlive -= 1
            op[i] = OP_FREE_REF
            order[i] = order[j]
            arg[i] = j
            fpi[i] = zeroed[i]
            live_pages -= 1 << order[j]


def random_ops(n, nr_pages, seed=0, fill=0.5, order_mix=DEFAULT_ORDER_MIX,
               gfp_mix=DEFAULT_GFP_MIX, zeroed_fraction=0.0, nr_cpus=1):
    """n operations keeping about ``fill`` of nr_pages allocated; frees reference allocations.

    ``zeroed_fraction`` of the frees carry FPI.ZEROED (as if the freer cleared the block).
    """
    rng = np.random.default_rng(seed)
    ops = np.zeros(n, dtype=OP_DTYPE)
    o, w = zip(*order_mix)
    orders = rng.choice(np.array(o, dtype=np.int64), size=n, p=np.array(w) / sum(w))
    g, gw = zip(*gfp_mix)
    gfps = rng.choice(np.array(g, dtype=np.int64), size=n, p=np.array(gw) / sum(gw))
    zeroed = np.where(rng.random(n) < zeroed_fraction, 1 << 4, 0).astype(np.int64)
    _fill(ops["op"], ops["order"], ops["gfp"], ops["fpi"], ops["arg"], orders, gfps,
          rng.random(n), rng.random(n), zeroed, int(nr_pages * fill))
    if nr_cpus > 1:
        ops["cpu"] = rng.integers(0, nr_cpus, size=n)
    return ops
