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
        self.pfns = np.zeros(0, np.int64)
        self.next_row = 0

    def feed(self, chunk):
        n, base = len(chunk), self.next_row
        ctx = len(self.rows) + 1  # row 0: the dummy
        window = np.zeros(ctx + n, dtype=EVENT_DTYPE)
        window["op"][:ctx] = EV_IDLE
        window["order"][1:ctx] = self.orders
        window[ctx:] = chunk
        ev_pfn = np.full(ctx + n, NONE, dtype=np.int64)
        ev_pfn[1:ctx] = self.pfns
        op = chunk["op"]
        sel = np.flatnonzero((op == EV_FREE) | (op == EV_DEFLATE))
        ref = chunk["ref"][sel]
        new = np.where(ref >= base, ref - base + ctx, ref)  # this chunk (later rows: bad)
        old = np.flatnonzero((ref >= 0) & (ref < base))
        k = np.searchsorted(self.rows, ref[old])
        kc = np.minimum(k, max(0, len(self.rows) - 1))
        live = (k < len(self.rows)) & (self.rows[kc] == ref[old]) if len(self.rows) else \
            np.zeros(len(old), bool)
        new[old] = np.where(live, k + 1, 0)
        window["ref"][ctx + sel] = new
        self.sim.feed(window, start=ctx, ev_pfn=ev_pfn)
        keep = np.flatnonzero(ev_pfn[1:] != NONE) + 1
        stream_rows = np.where(keep < ctx, self.rows[np.minimum(keep, ctx - 1) - 1]
                               if ctx > 1 else 0, keep - ctx + base)
        self.rows = stream_rows.astype(np.int64)
        self.orders = window["order"][keep]
        self.pfns = ev_pfn[keep]
        self.next_row += n


def simulate_stream(chunks, policy, nr_pages, *, mode="metadata", backend="auto", pcp=True,
                    progress=False, fault=None):
    """``run.simulate`` for an iterable of chunks (``workloads.iter_workload``); returns
    ``Simulation.finish()``'s dict."""
    sim = Simulation(policy, nr_pages, mode=mode, backend=backend, pcp=pcp, fault=fault,
                     progress=progress)
    feeder = StreamFeeder(sim)
    for chunk in chunks:
        feeder.feed(chunk)
    return sim.finish()
