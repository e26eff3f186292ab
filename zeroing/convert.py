"""Kmem trace rows to engine events, in compiled code (``replay.TraceConverter``'s loop).

The rules are ``replay``'s (its module docstring); ``tests/reference_convert.py`` is the same
converter in plain Python, the reference this one is checked against row for row (it ran at
about 2 us a row; this loop at a few tens of ns). The converter's memory is its live
allocations (a hash of traced pfns) and two small recency lists, as ``BatchedRepeats`` and
``BuddyTakes`` keep them.
"""
import numpy as np
from numba import njit, types
from numba.typed import Dict

from allocator.flags import (GFP_BITS, HPAGE_PMD_ORDER, PAGE_ALLOC_COSTLY_ORDER,
                            PAGEBLOCK_ORDER, __GFP_ZERO)

from .events import (EV_ADOPT, EV_ALLOC, EV_FAULT, EV_FREE, EV_FREE_PFN, EV_IDLE, EV_VMSTAT,
                     EVENT_DTYPE)
from .trace import EVENT_CODES, VMSTAT_TICK

C_ALLOC, C_FREE, C_BATCHED, C_ZONE_LOCKED, C_DRAIN, C_EXTFRAG, C_TICK = (
    EVENT_CODES[name] for name in ("mm_page_alloc", "mm_page_free", "mm_page_free_batched",
                                   "mm_page_alloc_zone_locked", "mm_page_pcpu_drain",
                                   "mm_page_alloc_extfrag", VMSTAT_TICK))

_USER = GFP_BITS["__GFP_MOVABLE"] | GFP_BITS["__GFP_HARDWALL"] | GFP_BITS["__GFP_HIGHMEM"]
#: What GFP_TRANSHUGE_LIGHT (and GFP_TRANSHUGE) add to a user allocation's flags.
_TRANSHUGE = _USER | GFP_BITS["__GFP_COMP"] | GFP_BITS["__GFP_NOMEMALLOC"]

#: The converter's counters (``state``), by index: with the trace's clock the CPU and time
#: (ns since the first line) of the next rows; NR_FREE_PAGES' change the trace implies; the
#: pages the traced kernel moved (zone_locked: from the buddy; drained: back to it; extfrag:
#: taken by steals and whole-block claims); the highest pfn; rows given out in earlier
#: chunks; the trace's vmstat_update ticks (taken in place of the model's); rows in this
#: chunk; anomalies seen.
(S_TIME, S_CPU, S_T0, S_HAVE_T0, S_DELTA, S_ZONE_LOCKED, S_DRAIN, S_EXTFRAG, S_MAX_PFN,
 S_EMITTED, S_TICKS, S_ROWS, S_SEEN) = range(13)
#: Anomalies, by index (``anomalies[0]`` counts, ``anomalies[1]`` the order first seen in).
ANOMALIES = ("time_went_back", "failed_alloc", "alloc_of_allocated_pfn",
             "free_batched_repeat", "free_order_mismatch", "free_before_trace")
(A_TIME_BACK, A_FAILED, A_REALLOC, A_REPEAT, A_MISMATCH, A_BEFORE) = range(len(ANOMALIES))
#: Output columns, by index: EVENT_DTYPE's fields.
OUT_FIELDS = EVENT_DTYPE.names


@njit(cache=True)
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
    return EV_FAULT if gfp & _TRANSHUGE == _TRANSHUGE and order <= HPAGE_PMD_ORDER else EV_ALLOC


def new_recent(cap):
    """A recency list of at most ``cap`` pfns (an OrderedDict's order: adding a pfn it holds
    keeps its place): (pfn -> slot, slots). ``slots[0..2]`` are each slot's pfn, previous and
    next (slot 0 heads the ring); ``slots[3]`` the stack of free slots, its height in
    ``slots[3, 0]``."""
    slots = np.zeros((4, cap + 1), np.int64)
    slots[3, 1:] = np.arange(1, cap + 1)
    slots[3, 0] = cap
    return Dict.empty(types.int64, types.int64), slots


@njit(cache=True)
def _forget(where, slots, pfn):
    """Remove ``pfn``; whether it was there."""
    if pfn not in where:
        return False
    s = where[pfn]
    del where[pfn]
    before, after = slots[1, s], slots[2, s]
    slots[2, before] = after
    slots[1, after] = before
    top = slots[3, 0] + 1
    slots[3, top] = s
    slots[3, 0] = top
    return True


@njit(cache=True)
def _remember(where, slots, pfn):
    """Add ``pfn`` as the newest unless held; past the cap the oldest goes (the OrderedDict
    adds, then pops the oldest: the same list)."""
    if pfn in where:
        return
    if len(where) == slots.shape[1] - 1:
        _forget(where, slots, slots[0, slots[2, 0]])
    top = slots[3, 0]
    s = slots[3, top]
    slots[3, 0] = top - 1
    slots[0, s] = pfn
    last = slots[1, 0]
    slots[1, s] = last
    slots[2, s] = 0
    slots[2, last] = s
    slots[1, 0] = s
    where[pfn] = s


@njit(cache=True)
def takes_seen(takes, slots, code, pfn):
    """``BuddyTakes.seen``: every row in order; True for an extfrag row that took pages no
    zone_locked row of its pfn just counted (any other row of the pfn ends the claim)."""
    if code == C_ZONE_LOCKED:
        _remember(takes, slots, pfn)
        return False
    counted = _forget(takes, slots, pfn)
    return code == C_EXTFRAG and not counted


@njit(cache=True)
def repeat(repeats, slots, code, pfn):
    """``BatchedRepeats.repeat``: True for a batched free repeating a recent free; records
    the frees (``_forget`` on an allocation forgets its pfn)."""
    if code == C_BATCHED and _forget(repeats, slots, pfn):
        return True
    if code == C_FREE:
        _remember(repeats, slots, pfn)
    return False


@njit(cache=True)
def _anomaly(state, anomalies, k):
    if anomalies[0, k] == 0:
        anomalies[1, k] = state[S_SEEN]
        state[S_SEEN] += 1
    anomalies[0, k] += 1


@njit(cache=True)
def _row(state, out, lines, line, trace_clock, step_ns, op, order, gfp, ref):
    r = state[S_ROWS]
    if trace_clock:
        out[0, r] = state[S_TIME]
        out[3, r] = state[S_CPU]
    else:
        out[0, r] = (state[S_EMITTED] + r) * step_ns
        out[3, r] = 0
    out[1, r] = op
    out[2, r] = order
    out[4, r] = gfp
    out[5, r] = ref
    lines[r] = line
    state[S_ROWS] = r + 1
    return r


@njit(cache=True)
def convert(cols, start, stop, limit, exact, trace_clock, step_ns, state, anomalies, live,
            takes, take_slots, repeats, repeat_slots, out, lines):
    """Rows ``cols[:, start:stop]`` (``Spooled.read_columns``) into ``out`` (EVENT_DTYPE's
    fields, a row each) and ``lines``, until ``limit`` rows are out; the next row to read.
    ``out`` holds at least min(limit + 1, rows out + 2 per row read) rows."""
    for i in range(start, stop):
        code, pfn, order, gfp, line = cols[1, i], cols[2, i], cols[3, i], cols[4, i], cols[0, i]
        if trace_clock:  # time never goes back: an earlier stamp keeps the one before's
            ts = cols[6, i]
            if ts >= 0:
                if state[S_HAVE_T0] == 0:
                    state[S_T0] = ts
                    state[S_HAVE_T0] = 1
                if ts - state[S_T0] < state[S_TIME]:
                    _anomaly(state, anomalies, A_TIME_BACK)
                state[S_TIME] = max(state[S_TIME], ts - state[S_T0])
            state[S_CPU] = cols[5, i]
        if pfn >= 0:  # a failed allocation's is -1
            state[S_MAX_PFN] = max(state[S_MAX_PFN], pfn + (1 << order) - 1)
        stolen = takes_seen(takes, take_slots, code, pfn)
        if code == C_TICK:
            _row(state, out, lines, line, trace_clock, step_ns, EV_VMSTAT, 0, 0, 0)
            state[S_TICKS] += 1
        elif code == C_ZONE_LOCKED:
            state[S_DELTA] -= 1 << order
            state[S_ZONE_LOCKED] += 1 << order
        elif code == C_EXTFRAG:
            if stolen:
                state[S_DELTA] -= 1 << order
                state[S_EXTFRAG] += 1 << order
        elif code == C_DRAIN:
            state[S_DELTA] += 1 << order
            state[S_DRAIN] += 1 << order
        elif code == C_ALLOC:
            if pfn < 0:
                _anomaly(state, anomalies, A_FAILED)
                continue
            if pfn in live:
                _anomaly(state, anomalies, A_REALLOC)
            _forget(repeats, repeat_slots, pfn)
            op = classify(gfp, order)
            # A fault's flags are the kernel path's; its gfp column could say how much of the
            # block the program writes (FAULT_WRITES), which a trace does not: all of it.
            row = _row(state, out, lines, line, trace_clock, step_ns, op, order,
                       gfp if op == EV_ALLOC else 0, pfn + 1 if exact else 0)
            live[pfn] = (row, -1, order)
        else:  # mm_page_free, mm_page_free_batched
            if repeat(repeats, repeat_slots, code, pfn):
                _anomaly(state, anomalies, A_REPEAT)
                continue
            if code == C_FREE and not (order <= PAGE_ALLOC_COSTLY_ORDER
                                       or order == PAGEBLOCK_ORDER):
                state[S_DELTA] += 1 << order  # __free_pages_ok: straight to the buddy
            if pfn in live:
                row, model_pfn, alloc_order = live[pfn]
                del live[pfn]
                if alloc_order != order:
                    _anomaly(state, anomalies, A_MISMATCH)
                if row >= 0:
                    _row(state, out, lines, line, trace_clock, step_ns, EV_FREE, alloc_order,
                         0, row)
                elif model_pfn >= 0:
                    _row(state, out, lines, line, trace_clock, step_ns, EV_FREE_PFN,
                         alloc_order, 0, model_pfn + 1)
                else:  # the model never got that block: keep event numbers as in one chunk
                    _row(state, out, lines, line, trace_clock, step_ns, EV_IDLE, 0, 0, 0)
            else:
                _anomaly(state, anomalies, A_BEFORE)
                if exact:
                    row = _row(state, out, lines, line, trace_clock, step_ns, EV_ADOPT, order,
                               0, pfn + 1)
                    _row(state, out, lines, line, trace_clock, step_ns, EV_FREE, order, 0, row)
        if state[S_ROWS] >= limit:
            return i + 1
    return stop


@njit(cache=True)
def settle(live, ev_pfn):
    """After the engine ran a chunk: live allocations of it now carry the model's block."""
    pfns = np.empty(len(live), np.int64)
    k = 0
    for pfn in live:
        pfns[k] = pfn
        k += 1
    for pfn in pfns:
        row, _, order = live[pfn]
        if row >= 0:
            live[pfn] = (-1, ev_pfn[row], order)


def new_live():
    """Traced pfn -> (row in this chunk or -1, model pfn once settled or -1, order)."""
    return Dict.empty(types.int64, types.UniTuple(types.int64, 3))
