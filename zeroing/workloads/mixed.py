"""``mixed``: a little of every kernel path, with idle gaps long enough for background work.

Per step (1 us of simulated time): user faults (order 0, and order 9 THP), kernel
allocations with and without __GFP_ZERO (GFP_KERNEL, order 0-3), frees of earlier
allocations keeping about half of memory in use, balloon inflate/deflate bursts, and every
~5% of the stream an idle gap of 3 s so page reporting runs.
"""
import numpy as np

from allocator.flags import GFP_KERNEL, __GFP_ZERO

from ..events import (EV_ALLOC, EV_DEFLATE, EV_FAULT, EV_FREE, EV_IDLE, EV_INFLATE,
                      EVENT_DTYPE)


def mixed(nr_pages=1 << 18, events=300_000, seed=0):
    rng = np.random.default_rng(seed)
    ev = np.zeros(events, dtype=EVENT_DTYPE)
    live = []  # (row, pages) of guest allocations
    ballooned = []
    used = 0
    t = 0
    target = nr_pages // 2
    idle_every = max(20, events // 20)
    for i in range(events):
        t += 1000
        row = ev[i]
        if i % idle_every == idle_every - 1:
            t += 3_000_000_000
            row["time"], row["op"] = t, EV_IDLE
            continue
        r = rng.random()
        if r < 0.03 and len(ballooned) < nr_pages // 8:
            row["op"], row["order"] = EV_INFLATE, 0
            ballooned.append(i)
        elif r < 0.05 and ballooned:
            row["op"], row["ref"] = EV_DEFLATE, ballooned.pop(rng.integers(len(ballooned)))
        elif live and (used > target or r < 0.45):
            k = int(rng.integers(len(live)))
            ref, pages = live[k]
            live[k] = live[-1]
            live.pop()
            used -= pages
            row["op"], row["ref"], row["order"] = EV_FREE, ref, ev[ref]["order"]
        else:
            kind = rng.random()
            if kind < 0.45:
                row["op"], row["order"] = EV_FAULT, 0
            elif kind < 0.50:
                row["op"], row["order"] = EV_FAULT, 9
            else:
                row["op"], row["order"] = EV_ALLOC, int(rng.choice([0, 0, 0, 1, 2, 3]))
                row["gfp"] = GFP_KERNEL | (__GFP_ZERO if rng.random() < 0.5 else 0)
            live.append((i, 1 << int(row["order"])))
            used += 1 << int(row["order"])
        row["time"] = t
    return ev
