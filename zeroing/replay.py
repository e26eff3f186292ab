"""``zeroing replay TRACE``: replay what a kernel did, under any zeroing policy.

Modes:
- ``exact``: the model takes exactly the traced pfns (``alloc_pfn``, splitting free blocks as
  ``take_page_off_buddy`` does). The model runs without pcp lists: pages the real kernel kept
  on pcp lists sit in the model's buddy until the trace allocates them. The buddy/pcp split of
  the real machine is followed for accounting through ``mm_page_alloc_zone_locked`` (taken
  from the buddy) and ``mm_page_pcpu_drain`` (back to the buddy), which gives
  ``nr_free_pages_delta``: the change in NR_FREE_PAGES the trace implies.
- ``requests``: the model chooses the pfns for the traced request stream (orders and GFP flags),
  so policies can be compared counterfactually.

A trace that starts mid-run is normal: a free of a page never seen allocated was allocated
before the trace began; exact mode adopts it (content unknown, dirty), requests mode skips it.
``mm_page_free_batched`` repeating a recent ``mm_page_free`` of the same pfn is the same free.
"""
from collections import Counter, OrderedDict

import numpy as np

from allocator.flags import GFP_BITS, PAGE_ALLOC_COSTLY_ORDER, __GFP_ZERO

from .events import EV_ADOPT, EV_ALLOC, EV_FAULT, EV_FREE, EVENT_DTYPE
from .run import simulate
from .trace import read_events

REPLAY_MODES = ("exact", "requests")
_USER = GFP_BITS["__GFP_MOVABLE"] | GFP_BITS["__GFP_HARDWALL"] | GFP_BITS["__GFP_HIGHMEM"]
PAGEBLOCK_ORDER = 9
RECENT_FREES = 4096


def pcp_allowed_order(order, thp=True):
    return order <= PAGE_ALLOC_COSTLY_ORDER or (thp and order == PAGEBLOCK_ORDER)


def classify(gfp, order):
    """A user fault (the zeroing happens at the fault site) or a kernel allocation."""
    if gfp & _USER == _USER and ((order == 0 and gfp & __GFP_ZERO) or order == PAGEBLOCK_ORDER):
        return EV_FAULT
    return EV_ALLOC


def trace_to_events(path, mode="exact", lenient=False, table=None, step_ns=1000):
    """Convert a trace into an engine event stream plus what the trace itself says."""
    if mode not in REPLAY_MODES:
        raise ValueError(f"unknown replay mode {mode!r}: choose from {', '.join(REPLAY_MODES)}")
    exact = mode == "exact"
    counts = {}
    anomalies = Counter()
    rows = []
    live = {}  # pfn -> (row, order) of the allocation that holds it
    recent = OrderedDict()  # pfns freed by mm_page_free, for mm_page_free_batched repeats
    delta = 0
    max_pfn = 0
    for lineno, name, pfn, order, gfp in read_events(path, lenient, table, counts):
        max_pfn = max(max_pfn, pfn + (1 << order) - 1)
        t = len(rows) * step_ns
        if name == "mm_page_alloc_zone_locked":
            delta -= 1 << order
        elif name == "mm_page_pcpu_drain":
            delta += 1 << order
        elif name == "mm_page_alloc":
            if pfn < 0:
                anomalies["failed_alloc"] += 1
                continue
            if pfn in live:
                anomalies["alloc_of_allocated_pfn"] += 1
            recent.pop(pfn, None)
            rows.append((t, classify(gfp, order), order, 0, gfp, pfn + 1 if exact else 0))
            live[pfn] = (len(rows) - 1, order)
        else:  # mm_page_free, mm_page_free_batched
            if name == "mm_page_free_batched" and pfn in recent:
                del recent[pfn]
                anomalies["free_batched_repeat"] += 1
                continue
            if name == "mm_page_free":
                recent[pfn] = None
                if len(recent) > RECENT_FREES:
                    recent.popitem(last=False)
                if not pcp_allowed_order(order):
                    delta += 1 << order  # __free_pages_ok: straight to the buddy
            if pfn in live:
                row, alloc_order = live.pop(pfn)
                if alloc_order != order:
                    anomalies["free_order_mismatch"] += 1
                rows.append((t, EV_FREE, alloc_order, 0, 0, row))
            else:
                anomalies["free_before_trace"] += 1
                if exact:
                    rows.append((t, EV_ADOPT, order, 0, 0, pfn + 1))
                    rows.append((t, EV_FREE, order, 0, 0, len(rows) - 1))
    events = np.array(rows, dtype=EVENT_DTYPE) if rows else np.zeros(0, dtype=EVENT_DTYPE)
    info = {"trace": path, "replay_mode": mode, "events": counts.get("events", {}),
            "malformed": counts.get("malformed", 0),
            "malformed_examples": counts.get("malformed_examples", []),
            "anomalies": dict(anomalies), "nr_free_pages_delta": delta, "max_pfn": max_pfn}
    return events, info


def replay(path, policy, mode="exact", lenient=False, table=None, nr_pages=None,
           sim_mode="metadata", backend="auto"):
    """Replay a trace under a policy: the engine's result plus the trace's own figures."""
    events, info = trace_to_events(path, mode, lenient, table)
    span = info["max_pfn"] + 1
    if nr_pages is None:
        nr_pages = max(1024, -(-span // 1024) * 1024)
    elif mode == "exact" and nr_pages < span:
        raise ValueError(f"--pages {nr_pages} is smaller than the traced pfns (up to {span - 1:#x})")
    result = simulate(events, policy, nr_pages, mode=sim_mode, backend=backend,
                      pcp=(mode == "requests"))
    result.update(info)
    return result
