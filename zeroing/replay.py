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
from collections import Counter

import numpy as np

from allocator.flags import (GFP_BITS, GFP_MOVABLE_SHIFT, MIGRATETYPE_NAMES,
                            MigrateType, __GFP_ZERO)

from .events import (EV_ADOPT, EV_ALLOC, EV_FAULT, EV_FREE, EV_FREE_PFN, EV_IDLE, EV_VMSTAT,
                     EVENT_DTYPE)
from .run import BadEventError, Simulation
from .trace import (KMEM_EVENTS, VMSTAT_TICK, BatchedRepeats, BuddyTakes, Spooled,
                    TraceError, pcp_allowed_order, read_events)

REPLAY_MODES = ("exact", "requests")
_USER = GFP_BITS["__GFP_MOVABLE"] | GFP_BITS["__GFP_HARDWALL"] | GFP_BITS["__GFP_HIGHMEM"]
#: The largest anonymous THP on x86-64 with 4 KiB pages (HPAGE_PMD_ORDER; mTHPs are smaller).
PMD_ORDER = 9
#: What GFP_TRANSHUGE_LIGHT (and GFP_TRANSHUGE) add to a user allocation's flags.
_TRANSHUGE = _USER | GFP_BITS["__GFP_COMP"] | GFP_BITS["__GFP_NOMEMALLOC"]


def classify(gfp, order):
    """A user fault (the zeroing happens at the fault site) or a kernel allocation.

    An order-0 anonymous fault asks ``GFP_HIGHUSER_MOVABLE | __GFP_ZERO``
    (``vma_alloc_zeroed_movable_folio()``, x86); a THP or mTHP fault of any order asks
    ``vma_thp_gfp_mask()``'s GFP_TRANSHUGE(_LIGHT), without __GFP_ZERO (``folio_zero_user()``
    clears it). A page-cache folio or a hugetlb pool page carries the user bits too, but not
    GFP_TRANSHUGE's __GFP_NOMEMALLOC: nothing clears it at allocation."""
    if gfp & _USER != _USER:
        return EV_ALLOC
    if order == 0:
        return EV_FAULT if gfp & __GFP_ZERO else EV_ALLOC
    return EV_FAULT if gfp & _TRANSHUGE == _TRANSHUGE and order <= PMD_ORDER else EV_ALLOC


class TraceConverter:
    """Turns kmem events into engine events, chunk by chunk, in bounded memory.

    Within a chunk a free refers to its allocation by row; an allocation made in an earlier
    chunk is remembered by the block the model gave it (``settle``), and its free becomes
    ``EV_FREE_PFN``. Memory: one chunk of events plus the live allocations.
    """

    def __init__(self, mode="exact", step_ns=1000, trace_clock=False):
        if mode not in REPLAY_MODES:
            raise ValueError(f"unknown replay mode {mode!r}: choose from {', '.join(REPLAY_MODES)}")
        self.exact = mode == "exact"
        self.mode = mode
        self.step_ns = step_ns
        self.anomalies = Counter()
        self.counts = {}
        self.live = {}  # traced pfn -> [row in this chunk or -1, model pfn once settled, order]
        self.repeats = BatchedRepeats()
        self.takes = BuddyTakes()
        self.delta = 0
        self.zone_locked_pages = self.pcpu_drain_pages = 0  # what the traced kernel moved
        self.extfrag_pages = 0  # taken from the buddy by steals and whole-block claims
        self.max_pfn = 0
        self.emitted = 0
        self.vmstat_ticks = 0  # the trace's vmstat_update ticks, taken in place of the model's
        self.rows = []
        #: The trace line of each row, and of each row of the chunk last given out.
        self.lines, self.chunk_lines, self.lineno = [], [], 0
        #: With trace_clock, rows carry the traced CPU and time (ns since the first event).
        self.trace_clock = trace_clock
        self.cpu = 0
        self.time = 0
        self.t0 = None

    def _row(self, op, order, gfp, ref):
        if self.trace_clock:
            when, cpu = self.time, self.cpu
        else:
            when, cpu = (self.emitted + len(self.rows)) * self.step_ns, 0
        self.rows.append((when, op, order, cpu, gfp, ref))
        self.lines.append(self.lineno)
        return len(self.rows) - 1

    def _clock(self, cpu, ts):
        """The traced CPU and time of the next rows (time never goes back: a line stamped
        earlier than the one before keeps that one's time, counted as ``time_went_back``)."""
        if ts >= 0:
            if self.t0 is None:
                self.t0 = ts
            if ts - self.t0 < self.time:
                self.anomalies["time_went_back"] += 1
            self.time = max(self.time, ts - self.t0)
        self.cpu = cpu

    def _event(self, name, pfn, order, gfp):
        if pfn >= 0:  # a failed allocation's is -1
            self.max_pfn = max(self.max_pfn, pfn + (1 << order) - 1)
        stolen = self.takes.seen(name, pfn)
        if name == VMSTAT_TICK:
            self._row(EV_VMSTAT, 0, 0, 0)
            self.vmstat_ticks += 1
        elif name == "mm_page_alloc_zone_locked":
            self.delta -= 1 << order
            self.zone_locked_pages += 1 << order
        elif name == "mm_page_alloc_extfrag":
            if stolen:
                self.delta -= 1 << order
                self.extfrag_pages += 1 << order
        elif name == "mm_page_pcpu_drain":
            self.delta += 1 << order
            self.pcpu_drain_pages += 1 << order
        elif name == "mm_page_alloc":
            if pfn < 0:
                self.anomalies["failed_alloc"] += 1
                return
            if pfn in self.live:
                self.anomalies["alloc_of_allocated_pfn"] += 1
            self.repeats.allocated(pfn)
            op = classify(gfp, order)
            # A fault's flags are the kernel path's; its gfp column could say how much of the
            # block the program writes (FAULT_WRITES), which a trace does not: all of it.
            row = self._row(op, order, gfp if op == EV_ALLOC else 0, pfn + 1 if self.exact else 0)
            self.live[pfn] = [row, -1, order]
        else:  # mm_page_free, mm_page_free_batched
            if self.repeats.repeat(name, pfn):
                self.anomalies["free_batched_repeat"] += 1
                return
            if name == "mm_page_free":
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
        for ev in kmem_events:
            if self.trace_clock:
                self._clock(ev[5], ev[6])
            self.lineno = ev[0]
            self._event(*ev[1:5])
            if len(self.rows) >= size:
                yield self._flush()
        if self.rows:
            yield self._flush()

    def _flush(self):
        events = np.array(self.rows, dtype=EVENT_DTYPE)
        self.emitted += len(self.rows)
        self.rows = []
        self.chunk_lines, self.lines = self.lines, []
        return events

    def settle(self, ev_pfn):
        """After the engine ran a chunk: live allocations now carry the model's block."""
        for entry in self.live.values():
            if entry[0] >= 0:
                entry[1] = int(ev_pfn[entry[0]])
                entry[0] = -1

    def info(self, path):
        anomalies = dict(self.anomalies)  # the reader counts this one
        if self.counts.get("migratetype_differs"):
            anomalies["migratetype_differs"] = self.counts["migratetype_differs"]
        return {"trace": path, "replay_mode": self.mode, "events": self.counts.get("events", {}),
                "malformed": self.counts.get("malformed", 0),
                "malformed_examples": self.counts.get("malformed_examples", []),
                "anomalies": anomalies,
                "nr_free_pages_delta": self.delta,
                "zone_locked_pages": self.zone_locked_pages,
                "extfrag_pages": self.extfrag_pages,
                "pcpu_drain_pages": self.pcpu_drain_pages,
                "max_pfn": self.max_pfn, "truncated": self.counts.get("truncated"),
                "vmstat_ticks": self.vmstat_ticks}


def trace_to_events(path, mode="exact", lenient=False, table=None):
    """The whole trace as one event array, and what the trace itself says (small traces)."""
    conv = TraceConverter(mode)
    parts = []
    for chunk in conv.chunks(read_events(path, lenient, table, conv.counts), size=1 << 62):
        parts.append(chunk)
    events = parts[0] if parts else np.zeros(0, dtype=EVENT_DTYPE)
    return events, conv.info(path)


def trace_span(rows, progress=None):
    """(highest pfn + 1 the trace touches, highest CPU + 1) of a ``Spooled`` trace: a first
    pass, to size the zone; the CPU count is 1 unless the rows have each line's CPU."""
    top = 0
    ncpu = 1
    for ev in rows.read({}, progress):
        top = max(top, ev[2] + (1 << ev[3]))
        if rows.detail:
            ncpu = max(ncpu, ev[5] + 1)
    return top, ncpu


class _ByteBar:
    """A bytes-read progress bar over a trace pass (shown on a terminal only)."""

    def __init__(self, path, desc):
        import os
        import sys

        from tqdm import tqdm
        self.bar = tqdm(total=os.path.getsize(path), unit="B", unit_scale=True, desc=desc,
                        leave=False, disable=not sys.stderr.isatty())

    def __call__(self, offset, size):
        self.bar.update(offset - self.bar.n)

    def close(self):
        self.bar.close()


def replay(path, policy, mode="exact", lenient=False, table=None, nr_pages=None,
           sim_mode="metadata", backend="auto", chunk_events=1 << 20, progress=False,
           trace_clock=False, pcp_high="auto", pcp_start=None, pcp_split="trace",
           cost_profile=None, other_zones=(), pages_from="--pages", spool=True):
    """Replay a trace under a policy, streaming: the engine's result plus the trace's figures.

    Without ``nr_pages`` a first pass over the trace sizes the zone to its highest pfn.
    A trace without any kmem page event is an error (nothing to replay). With ``lenient``
    a damaged compressed file is replayed up to the damage; ``truncated`` in the result
    says where it broke. ``progress`` shows bytes read on a terminal.
    ``trace_clock``: events keep the traced CPU and timestamp (the zone gets as many CPUs as
    the trace shows), so per-cpu lists, the vmstat worker's decay and reporting see the real
    timing; otherwise one CPU and 1 us between events. The result's ``pcp`` holds the
    model's refill and drain pages and its NR_FREE_PAGES change, the figures the trace's
    ``mm_page_alloc_zone_locked`` / ``mm_page_pcpu_drain`` give for the real kernel.
    ``pcp_start``: [(count, high)] per CPU, the pagesets of a /proc/zoneinfo taken before the
    capture (``BuddyAllocator.fill_pcp``), split over the lists as the trace shows them
    (``pcp_split="trace"``, with ``trace_clock``: ``pcp_start.py``) or all on the order-0
    Movable list (``"movable"``); the result's ``pcp["start"]`` says what each list got.
    ``other_zones``: managed pages of the node's other lowmem zones in that zoneinfo (its
    watermarks and pcp limits, ``BuddyAllocator``). ``pages_from``: what set ``nr_pages``,
    for the message when the trace's pfns do not fit. ``spool``: a trace read more than once
    is parsed once (``Spooled``; False parses it each time, for the benchmark).
    """
    from .compiling import notice_first_compile
    from .validate import check_memory
    if mode not in REPLAY_MODES:
        raise ValueError(f"unknown replay mode {mode!r}: choose from {', '.join(REPLAY_MODES)}")
    notice_first_compile()  # before the trace's compiled reader first runs
    nr_cpus = 1
    # The sizing pass (and --trace-clock's per-cpu lists) read the trace before the run does.
    rows = Spooled(path, lenient, table, detail=trace_clock,
                   keep=spool and (nr_pages is None or trace_clock))
    with rows:
        if nr_pages is None or trace_clock:
            bar = _ByteBar(path, "sizing the zone") if progress else None
            # Only --trace-clock needs the CPU and timestamp of each line; without it a trace
            # that lacks them must size and replay alike.
            span, nr_cpus = trace_span(rows, bar)
            if bar:
                bar.close()
            if nr_pages is None:
                nr_pages = max(1024, -(-span // 1024) * 1024)
                check_memory(f"{path} (pfns up to {span:#x}; --pages sets the zone)",
                             nr_pages, sim_mode, backend)
        if pcp_start is not None:
            pcp_start = _checked_pagesets(pcp_start, mode, trace_clock, nr_cpus, path)
            # pagesets of CPUs the trace never shows are lists all the same
            nr_cpus = max(nr_cpus, len(pcp_start))
        sim = Simulation(policy, nr_pages, mode=sim_mode, backend=backend,
                         pcp=(mode == "requests"), pcp_high=pcp_high, nr_cpus=nr_cpus,
                         cost_profile=cost_profile, other_zones=other_zones)
        start = _start_lists(sim.alloc, rows, progress, pcp_start, pcp_split, trace_clock,
                             pages_from) if pcp_start else None
        free_before = sim.alloc.nr_free_pages()
        conv = TraceConverter(mode, trace_clock=trace_clock)
        bar = _ByteBar(path, "replaying") if progress else None
        events = rows.read(conv.counts, bar)
        for chunk in conv.chunks(events, chunk_events):
            if mode == "exact" and conv.max_pfn >= nr_pages:
                raise ValueError(f"{pages_from} gives a zone of {nr_pages} pages, smaller "
                                 f"than the traced pfns (up to {conv.max_pfn:#x}): exact "
                                 "replay places the trace's own pfns; give a larger --pages, "
                                 "or --replay-mode requests")
            try:
                conv.settle(sim.feed(chunk))
            except BadEventError as e:  # the line it came from, not the event's number
                raise TraceError(f"{path}:{conv.chunk_lines[e.row]}: the model cannot replay "
                                 f"this line's event ({e.reason})") from None
        if bar:
            bar.close()
    if not any(conv.counts.get("events", {}).get(name) for name in KMEM_EVENTS):
        damaged = conv.counts.get("truncated")
        skipped = conv.counts.get("malformed", 0)
        why = ([damaged] if damaged else []) + (
            [f"{skipped} malformed lines skipped, the first: {conv.counts['malformed_examples'][0]}"]
            if skipped else [])
        raise TraceError(f"{path}: no kmem page events (mm_page_alloc, mm_page_free, ...) in the "
                         "trace: nothing to replay" + (f" ({'; '.join(why)})" if why else ""))
    result = sim.finish()
    result.update(conv.info(path))
    st = sim.alloc.stats()
    result["pcp"].update(refill_pages=st["pcp_refill_pages"], drain_pages=st["pcp_drain"],
                         nr_free_pages_delta=sim.alloc.nr_free_pages() - free_before)
    if start is not None:
        result["pcp"]["start"] = start
    return result


def _checked_pagesets(pagesets, mode, trace_clock, trace_cpus, path):
    """``pcp_start`` as [(count, high)] of non-negative integers, for a replay that has per-cpu
    lists, covering every CPU the trace shows (a snapshot of another machine does not)."""
    import operator
    if mode != "requests":
        raise ValueError("pcp_start: exact replay has no per-cpu lists (requests mode has)")
    try:
        sets = [tuple(operator.index(v) for v in pair) for pair in pagesets]
    except TypeError:
        raise TypeError(f"pcp_start: {pagesets!r}: (count, high) integer pairs") from None
    if not sets or any(len(pair) != 2 or min(pair) < 0 for pair in sets):
        raise ValueError(f"pcp_start: {pagesets!r}: (count, high) pairs, neither negative")
    if trace_clock and trace_cpus > len(sets):
        raise ValueError(f"{path} shows CPU {trace_cpus - 1}, and the pagesets are CPUs 0-"
                         f"{len(sets) - 1}: a snapshot of another machine")
    return sets


def _start_lists(alloc, trace_rows, progress, pagesets, split, trace_clock, pages_from):
    """Fill the per-cpu lists ``replay``'s ``pcp_start`` asks for; what each list got."""
    from .pcp_start import TraceLists
    if split not in ("trace", "movable"):
        raise ValueError(f"unknown pcp split {split!r}: choose from trace, movable")
    total, free = sum(count for count, _ in pagesets), alloc.nr_free_pages()
    if total > free:
        raise ValueError(f"the pagesets hold {total} pages, more than the {free} free in the "
                         f"zone {pages_from} gives (a larger zone, or lists started empty)")
    unknown = 0
    if split == "trace":
        if not trace_clock:
            raise ValueError("splitting the pagesets by the trace needs the trace's CPUs "
                             "(trace_clock)")

        path = trace_rows.path

        def rows():
            bar = _ByteBar(path, "reading the pcp lists") if progress else None
            yield from trace_rows.read({}, bar)
            if bar:
                bar.close()
        lists = TraceLists.from_trace(rows, alloc.pcp_pindex, path)
        if not lists.moves:  # a kernel refills and drains the lists all the time
            raise TraceError(f"{path}: no mm_page_alloc_zone_locked or mm_page_pcpu_drain "
                             "events, so the trace cannot split the pagesets over the lists "
                             "(record them too, or give --pcp-start empty)")
        per_cpu, rests = lists.seed(pagesets)
        unknown = lists.unknown_frees
    else:
        per_cpu = [[(0, MigrateType.MOVABLE, count)] for count, _ in pagesets]
        rests = [0] * len(pagesets)
    out = []
    for cpu, ((count, high), rows, rest) in enumerate(zip(pagesets, per_cpu, rests)):
        got = [(order, int(mt), alloc.fill_pcp(cpu, blocks, high, int(mt) << GFP_MOVABLE_SHIFT,
                                               order))
               for order, mt, blocks in sorted(rows)]
        # Fewer than asked where the buddy ran out (a zone smaller than the snapshot's).
        rest += sum(blocks - n << order for (order, _, n), (_, _, blocks) in
                    zip(got, sorted(rows)))
        out.append({"count": count, "high": high, "unplaced": rest,
                    "lists": [[order, MIGRATETYPE_NAMES[mt], n] for order, mt, n in got if n]})
        if not rows and high is not None:
            alloc.fill_pcp(cpu, 0, high)
    return {"split": split, "unknown_frees": unknown, "pagesets": out}
