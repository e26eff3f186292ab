"""A run on two host threads (``--pipeline on``): the page allocator's half of the loop runs
one range of events ahead of the engine's half (``engine.run_events`` with ``alog``, then with
``blog``).

Why: the host's simulation bounds what any GPU backend can reach (issue 11). Alone on this
project's 2-vCPU VM (2026-11-27), the allocator's half of vm-anon without THP took 26 of the
serial run's 34 ms and the engine's half 12 (page contents, struct page words, counters and,
in content mode, the commands to the backend); on ``mixed`` 14-16 and 14-16 of 27. Neither half
reads what the other writes except through the log, so they can overlap, and a pipelined
run's results are the serial run's, counter for counter (tested on every workload and policy
kind). On that VM each half ran about 1.5x slower beside the other, so the pipelined run was
0.8-1.3x the serial one (``experiments/pipeline_speedup.py``): it is off unless asked for,
until a machine with free cores shows it faster.

Under a policy whose allocator reads page state, a run stays serial (``can_pipeline``): the
``page_bit`` free signal (the buddy trusts a struct page bit the engine's half keeps) and the
offload zeroer (its batches take blocks at simulated times the engine's accounts decide).
"""
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from allocator.handle import handle_for

from .engine import (EXIT_BAD_EVENT, EXIT_FB_FULL, EXIT_LOG_FULL, NR_L, PIPE_FIELDS, fb_age,
                     run_events)
from .policy import P_FREE_SIGNAL, P_OFFLOAD

PipeLog = namedtuple("PipeLog", PIPE_FIELDS)

#: Events a range of the pipeline holds at most: a hand-over between the threads costs some
#: tens of microseconds, a range of 64K events about 1.5 ms of each half.
SEGMENT = 1 << 16
#: Ranges a feed is cut into at least (the first range's engine half and the last one's
#: allocator half run alone), and the fewest events a range holds.
MIN_SEGMENTS = 8
MIN_SEGMENT = 1 << 12
#: Rows of reported blocks a log holds. A range stops before background work that might
#: not fit (``run_events``); one that could not fit an empty log runs serially.
LOG_ROWS = 1 << 15


def can_pipeline(pol):
    """Whether a run under this policy (its array, ``policy.as_array``) can be pipelined."""
    return pol[P_FREE_SIGNAL] != 1 and pol[P_OFFLOAD] == 0


def wanted(mode, pol, events):
    """Whether a feed of this many events runs pipelined under ``mode`` (PIPELINE_MODES)."""
    return mode == "on" and events > 0 and can_pipeline(pol)


class Pipeline:
    """The second thread and the allocator's half's own counters. ``feed`` runs one feed of a
    ``Simulation``, as the serial loop would."""

    def __init__(self, z, state, empty_cols):
        """Compiles (or loads) both halves, outside any timing: ``empty_cols`` are a feed's
        columns with no rows."""
        a = state.arrays
        #: The allocator's half counts into arrays of its own (the other half writes the
        #: run's at the same time); ``_merge`` adds them in between ranges.
        self.arrays = a._replace(cnt=np.zeros_like(a.cnt), acct=np.zeros_like(a.acct))
        self.e = handle_for("Engine", self.arrays)
        self.bg = [np.zeros((LOG_ROWS, 3), dtype=np.int64) for _ in range(2)]
        self.pos = [np.zeros(NR_L, dtype=np.int64) for _ in range(2)]
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zeroing-alloc")
        #: Events run serially because the log could not hold their background work.
        self.serial_events = 0
        #: Ranges the allocator's half ended early, before background work the log might
        #: not have held.
        self.cut_ranges = 0
        none = np.zeros(0, dtype=np.int64)
        log = self._logs(none)[0]
        run_events(z, self.e, *empty_cols, none, 0, 0, 0, log, None)
        run_events(z, state.e, *empty_cols, none, 0, 0, 0, None, log)

    @staticmethod
    def segment(events):
        return int(min(SEGMENT, max(MIN_SEGMENT, events // MIN_SEGMENTS)))

    def close(self):
        self.thread.shutdown(wait=True)

    def use_fallbacks(self, fb):
        """The engine's THP fault fallback lists grew (``EngineState.grow_fallbacks``)."""
        self.arrays = self.arrays._replace(fb=fb)
        self.e = handle_for("Engine", self.arrays)

    def _merge(self, run_arrays):
        run_arrays.cnt[:] += self.arrays.cnt
        run_arrays.acct[:] += self.arrays.acct
        self.arrays.cnt[:] = 0
        self.arrays.acct[:] = 0

    def _logs(self, block):
        return [handle_for("PipeLog", PipeLog(block, bg, pos))
                for bg, pos in zip(self.bg, self.pos)]

    def feed(self, run_arrays, z, cols, ev_pfn, base, start, n, consume, grow):
        """Events [start, n) of a feed (``run_arrays``: the run's engine arrays, where the
        allocator's half's counts go): the allocator's half of each range on the thread, the
        engine's half of the range before it here (``consume(a, b, blog)``: the serial loop's
        handling of flushes and bad events, over run_events with ``blog``; with blog None it
        runs the range serially). ``grow()`` doubles the THP fault fallback lists, while
        neither half runs. Returns where the allocator's half found a bad event, or None;
        either way both halves have read every fallback list freed (``fb_age``)."""
        block = np.empty(n, dtype=np.int64)
        logs = self._logs(block)
        seg = self.segment(n - start)
        pending = None  # (a, b, log) whose engine half is still to run
        a, k, bad = start, 0, None
        while a < n or pending is not None:
            job = None
            if a < n and bad is None:
                log = logs[k % 2]
                self.pos[k % 2][:] = 0
                job = (a, self.thread.submit(run_events, z, self.e, *cols, ev_pfn, base, a,
                                             min(n, a + seg), log, None), k % 2)
            try:
                if pending is not None:
                    consume(*pending)
                    pending = None
            finally:
                if job is not None:
                    r, why = job[1].result()  # also when the engine's half raised
            if job is None:
                break
            self._merge(run_arrays)
            fb_age(self.arrays.rstate, self.arrays.fb)  # the engine's half read all before a
            if why == EXIT_FB_FULL:
                grow()  # the range's engine half, next, reads the lists from the new array
            if why == EXIT_LOG_FULL and r == a:
                # Background work the log could not hold: everything before it is done,
                # so this event runs serially.
                consume(a, a + 1, None)
                self.serial_events += 1
                r = a + 1
            else:
                self.cut_ranges += why == EXIT_LOG_FULL
                pending = (a, r, logs[job[2]])
                if why == EXIT_BAD_EVENT:
                    bad = r
            a, k = r, k + 1
        for _ in range(2):
            fb_age(self.arrays.rstate, self.arrays.fb)
        return bad
