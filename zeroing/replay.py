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

from .events import EV_ADOPT, EV_ALLOC, EV_FAULT, EV_FREE, EV_FREE_PFN, EV_IDLE, EVENT_DTYPE
from .run import Simulation
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


class TraceConverter:
    """Turns kmem events into engine events, chunk by chunk, in bounded memory.

    Within a chunk a free refers to its allocation by row; an allocation made in an earlier
    chunk is remembered by the block the model gave it (``settle``), and its free becomes
    ``EV_FREE_PFN``. Memory: one chunk of events plus the live allocations.
    """

    def __init__(self, mode="exact", step_ns=1000):
        if mode not in REPLAY_MODES:
            raise ValueError(f"unknown replay mode {mode!r}: choose from {', '.join(REPLAY_MODES)}")
        self.exact = mode == "exact"
        self.mode = mode
        self.step_ns = step_ns
        self.anomalies = Counter()
        self.counts = {}
        self.live = {}  # traced pfn -> [row in this chunk or -1, model pfn once settled, order]
        self.recent = OrderedDict()  # pfns freed by mm_page_free, for mm_page_free_batched
        self.delta = 0
        self.max_pfn = 0
        self.emitted = 0
        self.rows = []

    def _row(self, op, order, gfp, ref):
        self.rows.append(((self.emitted + len(self.rows)) * self.step_ns, op, order, 0, gfp, ref))
        return len(self.rows) - 1

    def _event(self, name, pfn, order, gfp):
        self.max_pfn = max(self.max_pfn, pfn + (1 << order) - 1)
        if name == "mm_page_alloc_zone_locked":
            self.delta -= 1 << order
        elif name == "mm_page_pcpu_drain":
            self.delta += 1 << order
        elif name == "mm_page_alloc":
            if pfn < 0:
                self.anomalies["failed_alloc"] += 1
                return
            if pfn in self.live:
                self.anomalies["alloc_of_allocated_pfn"] += 1
            self.recent.pop(pfn, None)
            row = self._row(classify(gfp, order), order, gfp, pfn + 1 if self.exact else 0)
            self.live[pfn] = [row, -1, order]
        else:  # mm_page_free, mm_page_free_batched
            if name == "mm_page_free_batched" and pfn in self.recent:
                del self.recent[pfn]
                self.anomalies["free_batched_repeat"] += 1
                return
            if name == "mm_page_free":
                self.recent[pfn] = None
                if len(self.recent) > RECENT_FREES:
                    self.recent.popitem(last=False)
                if not pcp_allowed_order(order):
                    self.delta += 1 << order  # __free_pages_ok: straight to the buddy
            entry = self.live.pop(pfn, None)
            if entry is not None:
                row, model_pfn, alloc_order = entry
                if alloc_order != order:
                    self.anomalies["free_order_mismatch"] += 1
                if row >= 0:
                    self._row(EV_FREE, alloc_order, 0, row)
                elif model_pfn >= 0:
                    self._row(EV_FREE_PFN, alloc_order, 0, model_pfn + 1)
                else:  # the model never got that block: keep event numbers as in one chunk
                    self._row(EV_IDLE, 0, 0, 0)
            else:
                self.anomalies["free_before_trace"] += 1
                if self.exact:
                    row = self._row(EV_ADOPT, order, 0, pfn + 1)
                    self._row(EV_FREE, order, 0, row)

    def chunks(self, kmem_events, size=1 << 20):
        """Yield EVENT_DTYPE chunks; call ``settle`` with each chunk's ev_pfn before the next."""
        for _, name, pfn, order, gfp in kmem_events:
            self._event(name, pfn, order, gfp)
            if len(self.rows) >= size:
                yield self._flush()
        if self.rows:
            yield self._flush()

    def _flush(self):
        events = np.array(self.rows, dtype=EVENT_DTYPE)
        self.emitted += len(self.rows)
        self.rows = []
        return events

    def settle(self, ev_pfn):
        """After the engine ran a chunk: live allocations now carry the model's block."""
        for entry in self.live.values():
            if entry[0] >= 0:
                entry[1] = int(ev_pfn[entry[0]])
                entry[0] = -1

    def info(self, path):
        return {"trace": path, "replay_mode": self.mode, "events": self.counts.get("events", {}),
                "malformed": self.counts.get("malformed", 0),
                "malformed_examples": self.counts.get("malformed_examples", []),
                "anomalies": dict(self.anomalies), "nr_free_pages_delta": self.delta,
                "max_pfn": self.max_pfn}


def trace_to_events(path, mode="exact", lenient=False, table=None):
    """The whole trace as one event array, and what the trace itself says (small traces)."""
    conv = TraceConverter(mode)
    parts = []
    for chunk in conv.chunks(read_events(path, lenient, table, conv.counts), size=1 << 62):
        parts.append(chunk)
    events = parts[0] if parts else np.zeros(0, dtype=EVENT_DTYPE)
    return events, conv.info(path)


def trace_span(path, lenient=False, table=None):
    """Highest pfn + 1 the trace touches (a first streaming pass, to size the zone)."""
    top = 0
    for _, _, pfn, order, _ in read_events(path, lenient, table, {}):
        top = max(top, pfn + (1 << order))
    return top


def replay(path, policy, mode="exact", lenient=False, table=None, nr_pages=None,
           sim_mode="metadata", backend="auto", chunk_events=1 << 20, cost_profile=None):
    """Replay a trace under a policy, streaming: the engine's result plus the trace's figures.

    Without ``nr_pages`` a first pass over the trace sizes the zone to its highest pfn.
    """
    if mode not in REPLAY_MODES:
        raise ValueError(f"unknown replay mode {mode!r}: choose from {', '.join(REPLAY_MODES)}")
    if nr_pages is None:
        nr_pages = max(1024, -(-trace_span(path, lenient, table) // 1024) * 1024)
    sim = Simulation(policy, nr_pages, mode=sim_mode, backend=backend, pcp=(mode == "requests"),
                     cost_profile=cost_profile)
    conv = TraceConverter(mode)
    for chunk in conv.chunks(read_events(path, lenient, table, conv.counts), chunk_events):
        if mode == "exact" and conv.max_pfn >= nr_pages:
            raise ValueError(f"--pages {nr_pages} is smaller than the traced pfns "
                             f"(up to {conv.max_pfn:#x})")
        conv.settle(sim.feed(chunk))
    result = sim.finish()
    result.update(conv.info(path))
    return result
