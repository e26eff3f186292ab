"""Feed a stream of event chunks whose references are stream row numbers.

The engine resolves a free's ``ref`` against the rows of the array it is given. A chunk is
therefore run in a window: in front of it go the allocations of earlier chunks that are still
live (row, order and block; the engine's ``ev_pfn`` says which: it resets a row when the block
is freed), and a dummy row standing for every earlier row that holds no live block (a free of
it is a no-op, as in one long array). References into earlier chunks are rewritten to window
rows. Memory is one chunk plus the live allocations, however long the stream; the counters are
those of one long array (tested). Building the window and keeping the live rows are compiled
(each was a dozen numpy passes a chunk: 26 ns an event, a third of the engine's own time on
``unaware-user``). A compiled generator (``workloads.gen.Chunks``) writes its chunk straight
into the window behind the context rows (``run``), so the events are not copied at all: only
the references of frees and deflates are rewritten, in place.
"""
import numpy as np
from numba import njit

from .events import EV_DEFLATE, EV_FREE, EV_IDLE, EVENT_DTYPE
from .run import Simulation
from .workloads.gen import columns_handle

NONE = -1


@njit(cache=True)
def _fill_context(live_orders, live_ops, live_callers, live_pfns, w_time, w_op, w_order, w_cpu,
                  w_gfp, w_ref, w_caller, ev_pfn):
    """Row 0 the dummy, rows 1..ctx-1 the live allocations; returns ctx."""
    ctx = len(live_orders) + 1
    for i in range(ctx):
        w_time[i] = 0
        w_cpu[i] = 0
        w_gfp[i] = 0
        w_ref[i] = 0
        if i == 0:
            w_op[i] = EV_IDLE
            w_order[i] = 0
            w_caller[i] = 0
            ev_pfn[i] = NONE
        else:
            w_op[i] = live_ops[i - 1]
            w_order[i] = live_orders[i - 1]
            w_caller[i] = live_callers[i - 1]
            ev_pfn[i] = live_pfns[i - 1]
    return ctx


@njit(cache=True, inline="always")
def _window_ref(op, ref, base, ctx, live_rows):
    """A free's or deflate's reference as a window row: this chunk's rows (from ``base``) to
    their window rows, earlier rows to their live row or the dummy (a later row stays as it
    is: the engine reports it as a bad reference)."""
    if op == EV_FREE or op == EV_DEFLATE:
        if ref >= base:
            return ref - base + ctx
        if ref >= 0:
            nl = len(live_rows)
            pos = np.searchsorted(live_rows, ref)
            return pos + 1 if pos < nl and live_rows[pos] == ref else 0
    return ref


@njit(cache=True)
def _fill_window(c_time, c_op, c_order, c_cpu, c_gfp, c_ref, c_caller, base, live_rows,
                 live_orders, live_ops, live_callers, live_pfns, w_time, w_op, w_order, w_cpu,
                 w_gfp, w_ref, w_caller, ev_pfn):
    """The context rows, then the chunk with its references rewritten (``_window_ref``)."""
    ctx = _fill_context(live_orders, live_ops, live_callers, live_pfns, w_time, w_op, w_order,
                        w_cpu, w_gfp, w_ref, w_caller, ev_pfn)
    for k in range(len(c_op)):
        i = ctx + k
        op = c_op[k]
        w_time[i] = c_time[k]
        w_op[i] = op
        w_order[i] = c_order[k]
        w_cpu[i] = c_cpu[k]
        w_gfp[i] = c_gfp[k]
        w_ref[i] = _window_ref(op, c_ref[k], base, ctx, live_rows)
        w_caller[i] = c_caller[k] if len(c_caller) else 0


@njit(cache=True)
def _rewrite_refs(w_op, w_ref, ctx, n, base, live_rows, scratch):
    """``_window_ref`` in place, for the n rows a generator wrote behind the context rows,
    in three loops without a branch on the op (``_window_ref``'s, mispredicted at most
    frees, took 4-8 ns an event on ``unaware-user``; these 1.5): where references into
    earlier chunks are (compacted into ``scratch``), this chunk's shifted (vectorises), then
    the earlier ones, few, looked up. Loops over slices from 0: from ``ctx`` they ran 4x
    slower."""
    o = w_op[ctx:ctx + n]
    r = w_ref[ctx:ctx + n]
    m = 0
    for i in range(n):
        scratch[m] = i
        op, ref = o[i], r[i]
        m += ((op == EV_FREE) | (op == EV_DEFLATE)) & (ref >= 0) & (ref < base)
    shift = ctx - base
    for i in range(n):
        op, ref = o[i], r[i]
        r[i] = ref + shift if ((op == EV_FREE) | (op == EV_DEFLATE)) & (ref >= base) else ref
    for k in range(m):  # left as they were by the shift (below base)
        i = scratch[k]
        r[i] = _window_ref(o[i], r[i], base, ctx, live_rows)


@njit(cache=True)
def _keep_live(ev_pfn, w_order, w_op, w_caller, ctx, base, live_rows):
    """The window rows that still hold a block after the engine ran: stream row, order, op,
    caller and pfn of each, in stream order."""
    m = 0
    for i in range(1, len(ev_pfn)):
        if ev_pfn[i] != NONE:
            m += 1
    rows = np.empty(m, np.int64)
    orders = np.empty(m, w_order.dtype)
    ops = np.empty(m, w_op.dtype)
    callers = np.empty(m, w_caller.dtype)
    pfns = np.empty(m, np.int64)
    j = 0
    for i in range(1, len(ev_pfn)):
        if ev_pfn[i] != NONE:
            rows[j] = live_rows[i - 1] if i < ctx else i - ctx + base
            orders[j] = w_order[i]
            ops[j] = w_op[i]
            callers[j] = w_caller[i]
            pfns[j] = ev_pfn[i]
            j += 1
    return rows, orders, ops, callers, pfns


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
        self._scratch = np.zeros(0, np.int32)  # run(): rows with references to earlier chunks

    def _window(self, size):
        if self._cols is None or len(self._cols[0]) < size:
            cap = max(size, 2 * len(self._cols[0]) if self._cols else 0)
            # Zeroed: a generator writing into the window (``run``) leaves cpu and (unless
            # it states callers) caller as they are, and nothing else writes them but 0.
            self._cols = [np.zeros(cap, EVENT_DTYPE[f]) for f in EVENT_DTYPE.names] + \
                [np.zeros(cap, np.uint8), np.zeros(cap, np.int64)]  # caller, ev_pfn
        return [c[:size] for c in self._cols]

    def feed(self, chunk):
        n, base = len(chunk), self.next_row
        ctx = len(self.rows) + 1  # row 0: the dummy
        *cols, ev_pfn = self._window(ctx + n)
        stated = "caller" in chunk.dtype.names
        given = chunk["caller"] if stated else np.zeros(0, np.uint8)
        _fill_window(*(chunk[name] for name in EVENT_DTYPE.names), given, base, self.rows,
                     self.orders, self.ops, self.callers, self.pfns, *cols, ev_pfn)
        self._run(cols, ev_pfn, ctx, n, stated)

    def run(self, source):
        """Feed a compiled generator (``workloads.gen.Chunks``) to the end: it writes each
        chunk straight into the window behind the context rows, and only the references of
        frees and deflates are rewritten there, in place (no copy of the events: on
        ``unaware-user`` the copy was a tenth of the run)."""
        while True:
            ctx = len(self.rows) + 1
            *cols, ev_pfn = self._window(ctx + source.capacity)
            _fill_context(self.orders, self.ops, self.callers, self.pfns, *cols, ev_pfn)
            n = source.fill_into(columns_handle([c[ctx:] for c in cols]))
            if n == 0:
                return
            if len(self._scratch) <= n:
                self._scratch = np.empty(source.capacity + 1, np.int32)
            _rewrite_refs(cols[1], cols[5], ctx, n, self.next_row, self.rows, self._scratch)
            self._run([c[:ctx + n] for c in cols], ev_pfn[:ctx + n], ctx, n, source.stated)

    def _run(self, cols, ev_pfn, ctx, n, stated):
        self.sim.feed_columns(cols, ev_pfn, start=ctx, callers_stated=stated)
        self.rows, self.orders, self.ops, self.callers, self.pfns = _keep_live(
            ev_pfn, cols[2], cols[1], cols[6], ctx, self.next_row, self.rows)
        self.next_row += n


def simulate_stream(chunks, policy, nr_pages, *, mode="metadata", backend="auto", pcp=True,
                    progress=False, fault=None, **zone):
    """``run.simulate`` for an iterable of chunks (``workloads.iter_workload``); returns
    ``Simulation.finish()``'s dict. ``zone``: ``Simulation``'s pcp_high, nr_cpus,
    initial_state and state_seed."""
    sim = Simulation(policy, nr_pages, mode=mode, backend=backend, pcp=pcp, fault=fault,
                     progress=progress, **zone)
    feeder = StreamFeeder(sim)
    if hasattr(chunks, "fill_into"):  # a compiled generator: it writes the engine's columns
        feeder.run(chunks)
    else:
        for chunk in chunks:
            feeder.feed(chunk)
    return sim.finish()
