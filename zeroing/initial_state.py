"""Starting states of the zone: ``pristine`` (boot: max-order blocks), ``aged`` (after a seeded
ageing workload) or a ``/proc/buddyinfo`` snapshot FILE.

Upstream's "only ~21% of order-0 allocations come from reported pages" describes a guest that
has run for a while: its free memory is partly low-order blocks that are never reported
(reporting starts at pageblock order). A run that starts from the pristine zone cannot show
that; these states can. Whatever a state leaves allocated stays allocated for the whole run,
as boot and kernel memory with unknown (dirty) content, and none of the work that built the
state is counted (the allocator's counters are reset; the engine starts after).

``aged`` (seeded): order-0 to 3 and THP-sized allocations (order 0 75%, 1 10%, 2 5%, 3 5%,
9 5%; 70% Movable, 20% Unmovable, 10% Reclaimable) fill the zone to 75%, then as many
alloc/free steps as the zone has pages churn at that level, then half of what is live is
freed and the per-cpu lists are drained. FILE: the zone starts with exactly the free blocks per
order of the snapshot's Normal zone (or its only zone, or ``zone=NAME``), placed so that no
two of them are buddies: every other page is allocated. A snapshot with more free memory than
the modelled zone can hold in that shape is an error naming the file. Migratetypes of a
``/proc/pagetypeinfo`` snapshot are not applied (the free blocks keep their pageblocks'
Movable type): a simplification.
"""
import os
import re

import numpy as np

from allocator import (GFP_HIGHUSER_MOVABLE, GFP_KERNEL, OP_ALLOC, OP_ALLOC_PFN, OP_DRAIN,
                       OP_DTYPE, OP_FREE_REF)
from allocator import core as acore
from allocator.flags import GFP_BITS

STATES = ("pristine", "aged")
GFP_RECLAIMABLE = GFP_KERNEL | GFP_BITS["__GFP_RECLAIMABLE"]


class StateError(ValueError):
    """An initial state that cannot be built: names the file or option and the reason."""


def read_buddyinfo(path, zone=None):
    """Free blocks per order of one zone of a /proc/buddyinfo file."""
    rows = {}
    try:
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                m = re.match(r"Node\s+(\d+),\s+zone\s+(\S+)\s+([\d\s]+)$", line.strip())
                if not m:
                    if line.strip():
                        raise StateError(f"{path}:{lineno}: not a /proc/buddyinfo line")
                    continue
                rows[m.group(2)] = [int(x) for x in m.group(3).split()]
    except OSError as e:
        raise StateError(f"{path}: {e.strerror}") from None
    if not rows:
        raise StateError(f"{path}: no zone rows (expected /proc/buddyinfo)")
    name = zone or ("Normal" if "Normal" in rows else next(iter(rows)) if len(rows) == 1 else None)
    if name is None or name not in rows:
        raise StateError(f"{path}: zone {zone or 'Normal'} not found (zones: {', '.join(rows)})")
    return rows[name]


def plan_free_blocks(counts, nr_pages, max_order):
    """Place counts[k] free blocks of order k in a zone of nr_pages so that none has a free
    buddy of its order: [(pfn, order)], or StateError. A block's buddy half gets an
    allocated page at its start, which leaves one slot of every lower order beside it."""
    counts = list(counts) + [0] * (max_order + 1 - len(counts))
    if len(counts) > max_order + 1 and any(counts[max_order + 1:]):
        raise StateError(f"free blocks above max order {max_order}")
    regions = list(range(0, nr_pages - (1 << max_order) + 1, 1 << max_order))
    free = []
    for _ in range(counts[max_order]):
        if not regions:
            raise StateError(f"{counts[max_order]} max-order blocks do not fit in {nr_pages} pages")
        free.append((regions.pop(0), max_order))
    slots = [[] for _ in range(max_order)]  # pfns where a free block of that order is safe

    def split(pfn, order):
        # Allocate the first page of [pfn, pfn + 2^order): slots 2^j for j < order beside it.
        for j in range(order):
            slots[j].append(pfn + (1 << j))

    for k in range(max_order - 1, -1, -1):
        for _ in range(counts[k]):
            if not slots[k]:
                bigger = next((o for o in range(k + 1, max_order) if slots[o]), None)
                if bigger is not None:
                    split(slots[bigger].pop(), bigger)
                elif regions:
                    split(regions.pop(), max_order)
                else:
                    raise StateError(f"the snapshot's free blocks do not fit in {nr_pages} pages "
                                     f"without merging (ran out at order {k})")
            free.append((slots[k].pop(), k))
    return free


def allocated_blocks(free, nr_pages, max_order):
    """The complement of the free blocks as aligned blocks [(pfn, order)]."""
    is_free = np.zeros(nr_pages, dtype=bool)
    for pfn, order in free:
        is_free[pfn:pfn + (1 << order)] = True
    out = []
    prefix = np.concatenate([[0], np.cumsum(is_free)])

    def walk(pfn, order):
        n = 1 << order
        nfree = prefix[pfn + n] - prefix[pfn]
        if nfree == 0:
            out.append((pfn, order))
        elif nfree < n:
            walk(pfn, order - 1)
            walk(pfn + (n >> 1), order - 1)

    pfn = 0
    while pfn < nr_pages:
        order = max_order
        while pfn & ((1 << order) - 1) or pfn + (1 << order) > nr_pages:
            order -= 1
        walk(pfn, order)
        pfn += 1 << order
    return out


def aged_ops(nr_pages, seed):
    """The ageing workload's operations (see the module docstring)."""
    rng = np.random.default_rng(seed)
    orders = np.array([0, 1, 2, 3, 9])
    p_order = np.array([0.75, 0.10, 0.05, 0.05, 0.05])
    gfps = np.array([GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_RECLAIMABLE])
    rows, live, used = [], [], 0
    target = int(nr_pages * 0.75)

    def alloc():
        nonlocal used
        o = int(rng.choice(orders, p=p_order))
        rows.append((OP_ALLOC, o, 0, 0, int(rng.choice(gfps, p=[0.7, 0.2, 0.1])), 0))
        live.append(len(rows) - 1)
        used += 1 << o

    def free():
        nonlocal used
        k = int(rng.integers(len(live)))
        live[k], live[-1] = live[-1], live[k]
        row = live.pop()
        used -= 1 << rows[row][1]
        rows.append((OP_FREE_REF, rows[row][1], 0, 0, 0, row))

    while used < target:
        alloc()
    for _ in range(nr_pages):
        alloc() if used < target else free()
    for _ in range(len(live) // 2):
        free()
    rows.append((OP_DRAIN, 0, 0, 0, 0, 0))
    return np.array(rows, dtype=OP_DTYPE)


def forget_setup(alloc):
    """The state's own work is not part of the run: reset the allocator's counters (the
    allocated-pages gauge stays) and the pcp tuning it caused."""
    stat = alloc.zone.stat
    held = stat[acore.S_NR_ALLOCATED], stat[acore.S_NR_ISOLATED]
    stat[:] = 0
    stat[acore.S_NR_ALLOCATED], stat[acore.S_NR_ISOLATED] = held


def apply_initial_state(alloc, state, seed=0):
    """Bring a fresh ``BuddyAllocator`` into ``state``: 'pristine', 'aged' or a buddyinfo
    path. Returns a short description."""
    if state in (None, "pristine"):
        return "pristine"
    if state == "aged":
        alloc.run(aged_ops(alloc.nr_pages, seed), lenient=True)
        forget_setup(alloc)
        return f"aged (seed {seed})"
    if not os.path.exists(state):
        raise StateError(f"--initial-state {state}: no such file (or pristine, aged)")
    counts = read_buddyinfo(state)
    free = plan_free_blocks(counts, alloc.nr_pages, alloc.max_order)
    blocks = allocated_blocks(free, alloc.nr_pages, alloc.max_order)
    ops = np.zeros(len(blocks), dtype=OP_DTYPE)
    ops["op"] = OP_ALLOC_PFN
    ops["gfp"] = GFP_KERNEL
    ops["order"] = [o for _, o in blocks]
    ops["arg"] = [p for p, _ in blocks]
    alloc.run(ops)
    forget_setup(alloc)
    return f"{os.path.basename(state)} ({sum(n << k for k, n in enumerate(counts))} free pages)"
