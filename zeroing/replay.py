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
import numpy as np

from allocator.flags import GFP_MOVABLE_SHIFT, MIGRATETYPE_NAMES, MigrateType

from . import convert
from .events import EVENT_DTYPE
from .run import BadEventError, Simulation
from .trace import KMEM_EVENTS, BatchedRepeats, BuddyTakes, Spooled, TraceError

REPLAY_MODES = ("exact", "requests")


class TraceConverter:
    """Turns kmem events into engine events, chunk by chunk, in bounded memory.

    Within a chunk a free refers to its allocation by row; an allocation made in an earlier
    chunk is remembered by the block the model gave it (``settle``), and its free becomes
    ``EV_FREE_PFN``. Memory: one chunk of events plus the live allocations. The loop is
    compiled (``convert.py``); ``recent_frees`` and ``recent_takes`` size its
    ``BatchedRepeats`` and ``BuddyTakes`` lists.
    """

    def __init__(self, mode="exact", step_ns=1000, trace_clock=False,
                 recent_frees=BatchedRepeats.RECENT_FREES, recent_takes=BuddyTakes.RECENT):
        if mode not in REPLAY_MODES:
            raise ValueError(f"unknown replay mode {mode!r}: choose from {', '.join(REPLAY_MODES)}")
        self.exact = mode == "exact"
        self.mode = mode
        self.step_ns = step_ns
        self.trace_clock = trace_clock
        self.counts = {}
        self.state = np.zeros(convert.S_SEEN + 1, np.int64)
        self.anomalies = np.zeros((2, len(convert.ANOMALIES)), np.int64)
        self.live = convert.new_live()
        self.takes = convert.new_recent(recent_takes)
        self.repeats = convert.new_recent(recent_frees)
        self.out = np.zeros((len(convert.OUT_FIELDS), 0), np.int64)
        self.lines = np.zeros(0, np.int64)
        #: The trace line of each row of the chunk last given out.
        self.chunk_lines = np.zeros(0, np.int64)

    @property
    def max_pfn(self):
        return int(self.state[convert.S_MAX_PFN])

    def _room(self, rows):
        """``out`` and ``lines`` hold at least ``rows`` rows (kept as they are)."""
        have = self.out.shape[1]
        if have < rows:
            size = max(rows, 2 * have)
            out = np.zeros((self.out.shape[0], size), np.int64)
            lines = np.zeros(size, np.int64)
            used = int(self.state[convert.S_ROWS])
            out[:, :used], lines[:used] = self.out[:, :used], self.lines[:used]
            self.out, self.lines = out, lines

    def chunks(self, blocks, size=1 << 20):
        """Yield EVENT_DTYPE chunks of ``size`` rows or so (the last smaller) from
        ``Spooled.read_columns`` blocks; call ``settle`` with each chunk's ev_pfn before the
        next."""
        st = self.state
        for cols in blocks:
            n, i = cols.shape[1], 0
            while i < n:
                self._room(min(size + 1, int(st[convert.S_ROWS]) + 2 * (n - i)))
                i = convert.convert(cols, i, n, size, self.exact, self.trace_clock,
                                    self.step_ns, st, self.anomalies, self.live, *self.takes,
                                    *self.repeats, self.out, self.lines)
                if st[convert.S_ROWS] >= size:
                    yield self._flush()
        if st[convert.S_ROWS]:
            yield self._flush()

    def _flush(self):
        n = int(self.state[convert.S_ROWS])
        events = np.empty(n, dtype=EVENT_DTYPE)
        for k, name in enumerate(convert.OUT_FIELDS):
            events[name] = self.out[k, :n]
        self.chunk_lines = self.lines[:n].copy()
        self.state[convert.S_EMITTED] += n
        self.state[convert.S_ROWS] = 0
        return events

    def settle(self, ev_pfn):
        """After the engine ran a chunk: live allocations now carry the model's block."""
        convert.settle(self.live, np.asarray(ev_pfn, np.int64))

    def info(self, path):
        st, counted = self.state, self.anomalies
        seen = sorted((int(counted[1, k]), name) for k, name in enumerate(convert.ANOMALIES)
                      if counted[0, k])
        anomalies = {name: int(counted[0, convert.ANOMALIES.index(name)]) for _, name in seen}
        if self.counts.get("migratetype_differs"):  # the reader counts this one
            anomalies["migratetype_differs"] = self.counts["migratetype_differs"]
        return {"trace": path, "replay_mode": self.mode, "events": self.counts.get("events", {}),
                "malformed": self.counts.get("malformed", 0),
                "malformed_examples": self.counts.get("malformed_examples", []),
                "anomalies": anomalies,
                "nr_free_pages_delta": int(st[convert.S_DELTA]),
                "zone_locked_pages": int(st[convert.S_ZONE_LOCKED]),
                "extfrag_pages": int(st[convert.S_EXTFRAG]),
                "pcpu_drain_pages": int(st[convert.S_DRAIN]),
                "max_pfn": self.max_pfn, "truncated": self.counts.get("truncated"),
                "vmstat_ticks": int(st[convert.S_TICKS])}


def trace_to_events(path, mode="exact", lenient=False, table=None):
    """The whole trace as one event array, and what the trace itself says (small traces)."""
    conv = TraceConverter(mode)
    parts = []
    rows = Spooled(path, lenient, table, keep=False)
    for chunk in conv.chunks(rows.read_columns(conv.counts), size=1 << 62):
        parts.append(chunk)
    events = parts[0] if parts else np.zeros(0, dtype=EVENT_DTYPE)
    return events, conv.info(path)


def trace_span(rows, progress=None, counts=None):
    """(highest pfn + 1 the trace touches, highest CPU + 1) of a ``Spooled`` trace: a first
    pass, to size the zone; the CPU count is 1 unless the rows have each line's CPU.
    ``counts``: what the read counted (``read_events``)."""
    top = 0
    ncpu = 1
    for cols in rows.read_columns({} if counts is None else counts, progress):
        top = max(top, int((cols[2] + (1 << cols[3])).max()))
        if rows.detail:
            ncpu = max(ncpu, int(cols[5].max()) + 1)
    return top, ncpu


def nothing_to_replay(path, counts):
    """A TraceError for a trace without any kmem page event (``read_events``' counts)."""
    if any(counts.get("events", {}).get(name) for name in KMEM_EVENTS):
        return
    damaged = counts.get("truncated")
    skipped = counts.get("malformed", 0)
    why = ([damaged] if damaged else []) + (
        [f"{skipped} malformed lines skipped, the first: {counts['malformed_examples'][0]}"]
        if skipped else [])
    raise TraceError(f"{path}: no kmem page events (mm_page_alloc, mm_page_free, ...) in the "
                     "trace: nothing to replay" + (f" ({'; '.join(why)})" if why else ""))


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
    notice_first_compile(replay=True)  # before the trace's compiled reader first runs
    nr_cpus = 1
    # The sizing pass (and --trace-clock's per-cpu lists) read the trace before the run does.
    rows = Spooled(path, lenient, table, detail=trace_clock,
                   keep=spool and (nr_pages is None or trace_clock))
    with rows:
        if nr_pages is None or trace_clock:
            bar = _ByteBar(path, "sizing the zone") if progress else None
            # Only --trace-clock needs the CPU and timestamp of each line; without it a trace
            # that lacks them must size and replay alike.
            sized = {}
            span, nr_cpus = trace_span(rows, bar, sized)
            if bar:
                bar.close()
            nothing_to_replay(path, sized)  # before any other use is made of it
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
        for chunk in conv.chunks(rows.read_columns(conv.counts, bar), chunk_events):
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
    nothing_to_replay(path, conv.counts)
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

        def blocks():
            bar = _ByteBar(path, "reading the pcp lists") if progress else None
            yield from trace_rows.read_columns({}, bar)
            if bar:
                bar.close()
        lists = TraceLists.from_columns(blocks, alloc.pcp_pindex, path)
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
