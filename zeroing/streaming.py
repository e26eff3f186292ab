"""Feed a stream of event chunks whose references are stream row numbers.

The engine resolves a free's ``ref`` against the rows of the array it is given. A chunk is
therefore run in a window: in front of it go the allocations of earlier chunks that are still
live (row, order and block; the engine's ``ev_pfn`` says which: it resets a row when the block
is freed), and a dummy row standing for every earlier row that holds no live block (a free of
it is a no-op, as in one long array). References into earlier chunks are rewritten to window
rows. Memory is one chunk plus the live allocations, however long the stream; the counters are
those of one long array (tested).
"""
import numpy as np

from .events import EV_DEFLATE, EV_FREE, EV_IDLE, EVENT_DTYPE
from .run import Simulation

NONE = -1


class StreamFeeder:
    """Feeds chunks to a ``Simulation``, carrying the live allocations between them."""

    def __init__(self, sim):
        self.sim = sim
        self.rows = np.zeros(0, np.int64)  # stream rows of live allocations, ascending
        self.orders = np.zeros(0, np.int8)
        self.ops = np.zeros(0, np.uint8)  # what a free looks up of its allocation: op, caller
        self.callers = np.zeros(0, np.uint8)
        self.pfns = np.zeros(0, np.int64)
        self.next_row = 0
        self._cols = None  # window columns and ev_pfn, reused while they are large enough

    def _window(self, size):
        if self._cols is None or len(self._cols[0]) < size:
            cap = max(size, 2 * len(self._cols[0]) if self._cols else 0)
            self._cols = [np.empty(cap, EVENT_DTYPE[f]) for f in EVENT_DTYPE.names] + \
                [np.empty(cap, np.uint8), np.empty(cap, np.int64)]  # caller, ev_pfn
        return [c[:size] for c in self._cols]

    def feed(self, chunk):
        n, base = len(chunk), self.next_row
        ctx = len(self.rows) + 1  # row 0: the dummy
        *cols, ev_pfn = self._window(ctx + n)
        for name, col in zip(EVENT_DTYPE.names, cols):
            if name == "op":
                col[0] = EV_IDLE
                col[1:ctx] = self.ops
            elif name == "order":
                col[0] = 0
                col[1:ctx] = self.orders
            else:
                col[:ctx] = 0
            col[ctx:] = chunk[name]
        stated = "caller" in chunk.dtype.names
        callers = cols.pop()
        callers[0] = 0
        callers[1:ctx] = self.callers
        callers[ctx:] = chunk["caller"] if stated else 0
        op, ref_col = cols[1][ctx:], cols[5][ctx:]
        sel = np.flatnonzero((op == EV_FREE) | (op == EV_DEFLATE))
        ref = ref_col[sel]
        new = np.where(ref >= base, ref - base + ctx, ref)  # this chunk (later rows: bad)
        old = np.flatnonzero((ref >= 0) & (ref < base))
        if len(old):
            k = np.searchsorted(self.rows, ref[old])
            kc = np.minimum(k, max(0, len(self.rows) - 1))
            live = (k < len(self.rows)) & (self.rows[kc] == ref[old]) if len(self.rows) else \
                np.zeros(len(old), bool)
            new[old] = np.where(live, k + 1, 0)
        ref_col[sel] = new
        ev_pfn[0] = NONE
        ev_pfn[1:ctx] = self.pfns
        self.sim.feed_columns(cols + [callers], ev_pfn, start=ctx, callers_stated=stated)
        keep = np.flatnonzero(ev_pfn[1:] != NONE) + 1
        split = np.searchsorted(keep, ctx)
        self.rows = np.concatenate((self.rows[keep[:split] - 1], keep[split:] - ctx + base))
        self.orders = cols[2][keep]
        self.ops = cols[1][keep]
        self.callers = callers[keep]
        self.pfns = ev_pfn[keep]
        self.next_row += n


def simulate_stream(chunks, policy, nr_pages, *, mode="metadata", backend="auto", pcp=True,
                    progress=False, fault=None, **zone):
    """``run.simulate`` for an iterable of chunks (``workloads.iter_workload``); returns
    ``Simulation.finish()``'s dict. ``zone``: ``Simulation``'s pcp_high, nr_cpus,
    initial_state and state_seed."""
    sim = Simulation(policy, nr_pages, mode=mode, backend=backend, pcp=pcp, fault=fault,
                     progress=progress, **zone)
    feeder = StreamFeeder(sim)
    for chunk in chunks:
        feeder.feed(chunk)
    return sim.finish()
