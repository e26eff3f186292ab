"""The replay's trace converter as it was in plain Python (zeroing/replay.py before the loop was
compiled, zeroing/convert.py): the reference the compiled converter is checked against row for
row (tests/test_convert.py). It reads ``read_events`` rows (name strings)."""
from collections import Counter

import numpy as np

from zeroing.convert import classify  # the rule itself, not the loop under test
from zeroing.events import EV_ADOPT, EV_ALLOC, EV_FREE, EV_FREE_PFN, EV_IDLE, EV_VMSTAT, EVENT_DTYPE
from zeroing.replay import REPLAY_MODES
from zeroing.trace import VMSTAT_TICK, BatchedRepeats, BuddyTakes, pcp_allowed_order


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
