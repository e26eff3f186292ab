"""Run a workload under a policy: the Python entry point behind ``zeroing run``."""
import json
import os
import sys
import time
import warnings
from collections import namedtuple

import numpy as np

from allocator import BuddyAllocator, format_buddyinfo, format_zeroedinfo
from allocator.buddy import MAX_PAGE_ORDER
from allocator import core as acore
from allocator.handle import handle_for
from allocator.watermarks import X86_64_DMA_MANAGED
from kernels import BACKENDS, BackendFailed, get_backend
from kernels.batch import CLEAR, DIRTY, VERIFY

from . import counters as C
from . import pipeline
from . import struct_page as SP
from .compiling import notice_first_compile
from .cost import NR_ACCOUNTS, CostProfile, cost_section, format_cost, load_profile
from .engine import (BOOT_MARKER, ENGINE_FIELDS, EXIT_BAD_EVENT, EXIT_DONE, EXIT_FB_FULL,
                     EXIT_OFFLOAD,
                     MARKER_CALLER_SHIFT, MARKER_EVENT_MASK, MAX_LEAKS, NEVER, NR_OB, NR_RSTATE,
                     OB_OK, OFFLOAD_EVENT, R_CMD_LIMIT, R_CMD_PAGE_LIMIT, R_CMD_PAGES, R_CONTENT,
                     R_FB_LIVE, R_NCMD, R_NLEAKS, R_OHEAD, R_OQUEUED, fb_restart,
                     offload_retire, record_leak, run_events)
from .events import EVENT_DTYPE, check_events
from .initial_state import apply_initial_state
from .policy import P_OFFLOAD_BATCH, Policy, as_array
from .validate import (MODES, PCP_HIGH_MODES, PIPELINE_MODES, UserError, output_target,
                       refuse_odd_file)

CMD_CAPACITY = 1 << 16
#: Entries of the THP fault fallback lists a run starts with (``EngineState.grow_fallbacks``
#: doubles them when a THP fault might not fit).
FB_START = 1 << 14
#: What a backend given as an object must have (to_host: a failed batch moves the pool to
#: the CPU backend).
BACKEND_CALLS = ("alloc_pool", "apply", "describe", "to_host")
#: The engine's command buffer: the rows of the next batch.
COMMAND_FIELDS = ("cmd_op", "cmd_pfn", "cmd_order", "cmd_arg", "cmd_event")
#: Written over offload pages whose batch failed: they are dirty, whatever the device did.
POISON = np.int64(0x7EAD_BEEF_0000_0000)

EngineArrays = namedtuple("EngineArrays", ENGINE_FIELDS)


class BadEventError(ValueError):
    """An event the engine refused: ``row`` is its row in the chunk fed, ``reason`` what may
    be wrong with it."""

    reason = ("a bad reference (not an earlier allocation), order, cpu or gfp (both "
              "__GFP_MOVABLE and __GFP_RECLAIMABLE; a fault that writes no page or more than "
              "the block has)")

    def __init__(self, where, row=None):
        super().__init__(f"{where}: {self.reason}")
        self.row = row


class EngineState:
    """The engine's arrays, the compiled view of them, and (content mode) pool and backend."""

    def __init__(self, nr_pages, policy, mode, backend, profile=None):
        pol = as_array(policy, nr_pages)
        self.profile = profile = as_profile(profile)
        cost = profile.as_array(policy.offload_device if policy.offload else
                                next(iter(profile.offload), "cpu"))
        if policy.offload:
            device = profile.device(policy.offload_device)
            pol[P_OFFLOAD_BATCH] = policy.offload_batch_pages or device.batch_pages
            depth = device.queue_depth
        else:
            pol[P_OFFLOAD_BATCH] = max(1, policy.offload_batch_pages)
            depth = 1
        batch = int(pol[P_OFFLOAD_BATCH])
        # An event adds at most 4 commands a block (a THP fault that fell back, or its free,
        # a block a page: up to 2^MAX_PAGE_ORDER) and a partly written block 11 more, a
        # reporting pass at most one per free block of reporting order, an offload batch at
        # most one per page of the batch.
        reserve = 16 + (4 << MAX_PAGE_ORDER) + (nr_pages >> policy.reporting_order) + batch
        capacity = CMD_CAPACITY + reserve
        rstate = np.zeros(NR_RSTATE, dtype=np.int64)
        rstate[R_CONTENT] = mode == "content"
        rstate[R_CMD_LIMIT] = CMD_CAPACITY
        fb_restart(rstate)  # no fallback list yet
        self.arrays = EngineArrays(
            # Boot memory is not zero, unless init_on_free cleared it at boot.
            truth=np.full(nr_pages, 1 if policy.init_on_free else 0, dtype=np.uint8),
            writer=np.full(nr_pages, -1, dtype=np.int64),
            writer_caller=np.zeros(nr_pages, dtype=np.uint8),
            # struct page words of the hint designs (struct_page.py); free lists at boot.
            lru_next=np.full(nr_pages, SP.W_LIST, dtype=np.uint8),
            page_flags=np.zeros(nr_pages, dtype=np.uint8),
            by_caller=np.zeros((SP.NR_CSTATS, SP.NR_CALLERS), dtype=np.int64),
            cnt=np.zeros(C.NR_COUNTERS, dtype=np.int64),
            leaks=np.full((MAX_LEAKS, 3), -1, dtype=np.int64),
            rstate=rstate,
            pol=pol,
            cmd_op=np.zeros(capacity, dtype=np.uint8),
            cmd_pfn=np.zeros(capacity, dtype=np.int64),
            cmd_order=np.zeros(capacity, dtype=np.int64),
            cmd_arg=np.zeros(capacity, dtype=np.int64),
            cmd_event=np.zeros(capacity, dtype=np.int64),
            inflight=np.zeros((batch * depth if policy.offload else 1, 2), dtype=np.int64),
            by_order=np.zeros((2, 21), dtype=np.int64),  # allocations, served zeroed; per order
            cost=cost,
            acct=np.zeros(NR_ACCOUNTS, dtype=np.float64),
            discarded=np.zeros(nr_pages, dtype=np.uint8),  # host discarded: 1 + block order
            obatch=np.zeros((depth, NR_OB), dtype=np.int64),
            fb=np.zeros(FB_START, dtype=np.int64),  # THP faults' fallbacks (grow_fallbacks)
        )
        self.e = handle_for("Engine", self.arrays)
        self.command_sets = None  # both command buffers and their handles (_swap_commands)
        self.mode = mode
        self.backend = None
        self.pool = None
        self.launches = 0
        self.launch_pages = 0
        self.backend_wall = 0.0
        self.fallbacks = 0
        self.pending = None  # (handle, rows) of the batch on the device
        if mode == "content":
            try:  # a name, or a backend itself (kernels.device_batch.HostOnly)
                self.backend = get_backend(backend) if isinstance(backend, str) else backend
            except BackendFailed as exc:  # e.g. a kernel that does not compile here
                self.fallbacks += 1
                warnings.warn(f"{exc}; falling back to the CPU backend (numba)", RuntimeWarning)
                self.backend = get_backend("numba")
            self.pool = self.backend.alloc_pool(nr_pages)
            if not policy.init_on_free:  # init_on_free clears memory at boot: leave it zero
                self._dirty_boot_memory(nr_pages)

    @property
    def backend(self):
        return self._backend

    @backend.setter
    def backend(self, backend):
        """A backend that names ``BATCH_PAGES`` gets a batch once the commands cover that many
        pages, not only when the buffer is full (see ``cupy_backend.BATCH_PAGES``); one with
        ``submit`` gets two command buffers used in turn (``_swap_commands``)."""
        self._backend = backend
        pages = getattr(backend, "BATCH_PAGES", None)
        self.arrays.rstate[R_CMD_PAGE_LIMIT] = pages if pages else NEVER
        if hasattr(backend, "submit"):
            self._command_sets()

    def _dirty_boot_memory(self, nr_pages):
        """Boot memory holds old data: write a "boot" marker into every page (leak reports
        then say the data is from boot time, as metadata mode does with writer -1)."""
        order = 9 if nr_pages >= 512 else 0
        n = nr_pages >> order
        op = np.full(n, DIRTY, dtype=np.uint8)
        pfn = np.arange(n, dtype=np.int64) << order
        orders = np.full(n, order, dtype=np.int64)
        arg = np.full(n, BOOT_MARKER, dtype=np.int64)
        self.backend.apply(self.pool, op, pfn, orders, arg)
        rest = np.arange(n << order, nr_pages, dtype=np.int64)
        if len(rest):
            self.backend.apply(self.pool, np.full(len(rest), DIRTY, np.uint8), rest,
                               np.zeros(len(rest), np.int64), np.full(len(rest), BOOT_MARKER))

    def flush(self, wait=False):
        """Hand the buffer to the backend in one call; count leaks from the verify rows.

        A backend with ``submit`` (the GPU ones) gets the batch and returns at once: the engine
        fills its next buffer while the device works (double buffering), and the batch's
        results are collected at the next flush, or now with ``wait`` (an offload batch must
        complete before its blocks go back). Returns False when this batch failed (it was
        redone on the CPU backend, and offload clears of the batch were not done: those
        pages stay dirty).
        """
        a = self.arrays
        n = int(a.rstate[R_NCMD])
        self.drain()
        if n == 0 or self.backend is None:
            a.rstate[R_NCMD] = a.rstate[R_CMD_PAGES] = 0
            return True
        submit = getattr(self.backend, "submit", None)
        rows = tuple(getattr(a, f)[:n] for f in COMMAND_FIELDS)
        if submit is not None:  # the engine fills its other buffer while this batch is on
            self._swap_commands()  # the device (collected before the next one is handed over)
        self.launches += 1
        self.launch_pages += int(a.rstate[R_CMD_PAGES])  # the engine counted them as it emitted
        a.rstate[R_NCMD] = a.rstate[R_CMD_PAGES] = 0
        t0 = time.perf_counter()
        try:
            if submit is None:
                results = self.backend.apply(self.pool, *rows[:4])
            else:
                self.pending = (submit(self.pool, *rows[:4]), rows)
        except Exception as exc:  # a backend fault: CPU fallback, redo the batch there
            return self._fallback(exc, rows, t0)
        self.backend_wall += time.perf_counter() - t0
        if submit is None:
            self._count_leaks(rows, results)
            return True
        return self.drain() if wait else True

    def _command_sets(self):
        """The two command buffers and their handles, made (and their pages touched) once,
        outside a run's timing."""
        if self.command_sets is None:
            a = self.arrays
            other = a._replace(**{f: np.zeros_like(getattr(a, f)) for f in COMMAND_FIELDS})
            for f in COMMAND_FIELDS:  # (np.zeros maps its pages at their first write)
                getattr(a, f).fill(0)
                getattr(other, f).fill(0)
            self.command_sets = ((a, self.e), (other, handle_for("Engine", other)))
        return self.command_sets

    def grow_fallbacks(self):
        """Double the THP fault fallback lists (``engine.EXIT_FB_FULL``), between calls of
        the loop; every handle over the engine's arrays gets the new array."""
        a = self.arrays
        fb = np.zeros(2 * a.fb.shape[0], dtype=np.int64)
        fb[:a.fb.shape[0]] = a.fb
        self.arrays = a._replace(fb=fb)
        self.e = handle_for("Engine", self.arrays)
        if self.command_sets is not None:
            sets = []
            for arrs, _ in self.command_sets:
                arrs = self.arrays if arrs is a else arrs._replace(fb=fb)
                sets.append((arrs, self.e if arrs is self.arrays else handle_for("Engine", arrs)))
            self.command_sets = tuple(sets)
        return fb

    def _swap_commands(self):
        """Emit into the other command buffer from now on (double buffering): the rows just
        handed to the backend stay as they are until their batch is collected, which
        ``flush`` does before it hands over the next. Two handles over the same engine
        arrays but the command columns, so the compiled code is the same. Before, the rows in
        flight were copied (a profile of content mode on the H200 machine, vm-anon with THP
        off on CuPy, 2026-11-27: array copies 9 of the run's 88 ms, new arrays each batch;
        then 2 of 56 ms on this project's VM with a backend that does no device work)."""
        (a, e), other = self._command_sets()
        self.arrays, self.e = other if a is self.arrays else (a, e)

    def drain(self):
        """Collect the batch in flight, if any; False if it failed (and was redone)."""
        if self.pending is None:
            return True
        handle, rows = self.pending
        self.pending = None
        t0 = time.perf_counter()
        try:
            results = self.backend.collect(handle)
        except Exception as exc:
            return self._fallback(exc, rows, t0)
        self.backend_wall += time.perf_counter() - t0
        self._count_leaks(rows, results)
        return True

    def _fallback(self, exc, rows, t0):
        """The backend failed on this batch: move the pool to the CPU backend (numba) and
        redo the batch there, offload clears turned into poison (not done)."""
        self.fallbacks += 1
        warnings.warn(f"backend {self.backend.name} failed ({exc!r}); falling back to the "
                      "CPU backend (numba) and redoing the batch", RuntimeWarning)
        op, pfn, order, arg, event = rows
        op, arg = op.copy(), arg.copy()
        host = self.backend.to_host(self.pool)
        self.backend = get_backend("numba")
        self.pool = self.backend.from_host(np.ascontiguousarray(host))
        offload = (op == CLEAR) & (event == OFFLOAD_EVENT)
        op[offload] = DIRTY
        arg[offload] = POISON
        results = self.backend.apply(self.pool, op, pfn, order, arg)
        self.backend_wall += time.perf_counter() - t0
        self._count_leaks((op, pfn, order, arg, event), results)
        return False

    def _count_leaks(self, rows, results):
        a = self.arrays
        op, _, _, _, event = rows
        nonzero, bad_pfn, marker = results
        found = np.flatnonzero(nonzero)  # one pass: most batches find nothing
        for k in found[op[found] == VERIFY]:
            a.cnt[C.ZERO_LEAK] += nonzero[k]
            m = int(marker[k])
            caller = 0
            if m != BOOT_MARKER and m != POISON:
                caller = m >> MARKER_CALLER_SHIFT
                m &= MARKER_EVENT_MASK
            a.by_caller[SP.CS_LEAK, caller if caller < SP.NR_CALLERS else 0] += nonzero[k]
            record_leak(self.e, int(bad_pfn[k]), int(event[k]), m - 1)


#: The node's other lowmem zones a workload run has by default: an x86-64 guest's DMA zone
#: (its watermarks and pcp limits depend on them: ``BuddyAllocator(other_zones=)``).
GUEST_OTHER_ZONES = (X86_64_DMA_MANAGED,)


class Simulation:
    """A zone, an engine and a policy, fed events in chunks (``simulate`` feeds one).

    ``feed`` returns the chunk's ``ev_pfn`` (the block each allocation event got, -1 for
    none or already freed); references in a chunk are row numbers within that chunk.
    ``backend``: a name (``kernels.BACKENDS`` or auto) or a backend itself; ``fault`` wraps
    it (tests inject failures with it). ``other_zones``: managed pages of the node's other
    lowmem zones (``BuddyAllocator``: the kernel's watermarks for a real machine's node;
    default: an x86-64 guest's DMA zone, ``GUEST_OTHER_ZONES``; () for a node of one zone).
    """

    def __init__(self, policy, nr_pages, *, mode="metadata", backend="auto", pcp=True,
                 fault=None, progress=False, chunk=1 << 20, pcp_high="auto", nr_cpus=1,
                 initial_state=None, state_seed=0, cost_profile=None,
                 other_zones=GUEST_OTHER_ZONES, pipeline_mode="off"):
        if not isinstance(policy, Policy):
            raise TypeError(f"policy {policy!r}: a Policy, as make_policy({policy!r}) makes")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: choose from {', '.join(MODES)}")
        if isinstance(backend, str):
            if backend != "auto" and backend not in BACKENDS:
                raise ValueError(f"unknown backend {backend!r}: choose from auto, "
                                 f"{', '.join(BACKENDS)}")
        elif isinstance(backend, type) or not hasattr(backend, "name") or not all(
                callable(getattr(backend, a, None)) for a in BACKEND_CALLS):
            raise TypeError(f"backend {backend!r}: a name ({', '.join(BACKENDS)} or auto) or "
                            f"a backend (an object with name, {', '.join(BACKEND_CALLS)})")
        if pcp_high not in PCP_HIGH_MODES:
            raise ValueError(f"unknown pcp high {pcp_high!r}: choose from {', '.join(PCP_HIGH_MODES)}")
        if pipeline_mode not in PIPELINE_MODES:
            raise ValueError(f"unknown pipeline {pipeline_mode!r}: choose from "
                             f"{', '.join(PIPELINE_MODES)}")
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
            raise ValueError(f"chunk {chunk!r}: events a loop call, a positive int")
        self.policy, self.nr_pages, self.mode, self.chunk = policy, nr_pages, mode, chunk
        #: "on": the allocator's half of the loop on a second thread (pipeline.py).
        self.pipeline = pipeline_mode
        self._pipe = None
        notice_first_compile()
        self.other_zones = tuple(other_zones)
        self.alloc = BuddyAllocator(nr_pages, pcp=pcp, page_reporting_order=policy.reporting_order,
                                    pcp_high=pcp_high, nr_cpus=nr_cpus, other_zones=other_zones)
        #: What the zone started from (initial_state.py): pristine, aged or a snapshot.
        self.initial_state = apply_initial_state(self.alloc, initial_state, state_seed)
        self.state = EngineState(nr_pages, policy, mode, backend, cost_profile)
        if fault is not None and self.state.backend is not None:
            self.state.backend = fault(self.state.backend)
        self.events = 0
        self.wall = 0.0
        self.callers_stated = False  # the events carried caller types (EVENT_CALLER_DTYPE)
        self.progress = progress
        empty = np.zeros(0, dtype=EVENT_DTYPE)
        # Compile (or load from cache) outside the timing: an empty range runs no event.
        run_events(self.alloc.z, self.state.e, *self._columns(empty), np.zeros(0, np.int64),
                   0, 0, 0, None, None)
        offload_retire(self.alloc.z, self.state.e, 0)  # nothing in flight: compiles only

    def bytes_per_page(self):
        """Metadata per page of the modelled machine: the zone's arrays and the engine's."""
        per_page = [a for a in self.state.arrays
                    if isinstance(a, np.ndarray) and a.shape == (self.nr_pages,)]
        return self.alloc.bytes_per_page() + sum(a.itemsize for a in per_page)

    @staticmethod
    def _columns(events):
        cols = [np.ascontiguousarray(events[f]) for f in ("time", "op", "order", "cpu", "gfp", "ref")]
        if "caller" in events.dtype.names:  # EVENT_CALLER_DTYPE: the workload states callers
            return cols + [np.ascontiguousarray(events["caller"], dtype=np.uint8)]
        return cols + [np.zeros(len(events), dtype=np.uint8)]

    def feed(self, events, start=0, ev_pfn=None):
        """Run ``events[start:]``. Rows before ``start`` are context, not events: allocations
        of earlier chunks (their blocks in ``ev_pfn[:start]``) that references may name
        (``zeroing.streaming`` builds them)."""
        start = check_events(events, start, ev_pfn)
        if ev_pfn is None:
            ev_pfn = np.full(len(events), -1, dtype=np.int64)
        return self.feed_columns(self._columns(events), ev_pfn, start,
                                 callers_stated="caller" in events.dtype.names)

    def feed_columns(self, cols, ev_pfn, start=0, callers_stated=False):
        """``feed`` on contiguous columns (``EVENT_DTYPE``'s fields in its order, then the
        caller column of ``EVENT_CALLER_DTYPE``, 0 where the workload states none);
        ``ev_pfn`` of the event rows need not be initialised (the loop sets each before
        use)."""
        z, state = self.alloc.z, self.state
        n = len(cols[0])
        base = self.events - start  # stream number of row 0
        self.callers_stated |= callers_stated
        piped = pipeline.wanted(self.pipeline, state.arrays.pol, n - start)
        if piped and self._pipe is None:
            self._pipe = pipeline.Pipeline(z, state, self._columns(np.zeros(0, EVENT_DTYPE)))
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=n - start, unit="ev", leave=False, disable=not sys.stderr.isatty())
        t0 = time.perf_counter()

        def bad_event(r):
            row = {name: int(col[r]) for name, col in zip(EVENT_DTYPE.names, cols)}
            return BadEventError(f"event {base + r}: {row}", r)

        def consume(i, stop, blog=None):
            """Events [i, stop) (with ``blog``: the engine's half of them, pipeline.py)."""
            while i < stop:
                r, why = run_events(z, state.e, *cols, ev_pfn, base, i,
                                    min(stop, i + self.chunk), None, blog)
                if why == EXIT_BAD_EVENT:
                    raise bad_event(r)
                if why == EXIT_FB_FULL:
                    self._grow_fallbacks()
                if bar:
                    bar.update(r - i)
                # A pipeline's range that ended: its commands wait for a full buffer, as
                # in a serial run of the feed.
                if why != EXIT_DONE or blog is None or r == n:
                    offload = why == EXIT_OFFLOAD
                    ok = state.flush(wait=offload)  # an offload batch's clears must be done
                    if offload and not ok:  # the batch just queued was not cleared
                        rs = state.arrays.rstate
                        slot = (rs[R_OHEAD] + rs[R_OQUEUED] - 1) % state.arrays.obatch.shape[0]
                        state.arrays.obatch[slot, OB_OK] = 0
                i = r

        if piped:
            bad = self._pipe.feed(state.arrays, z, cols, ev_pfn, base, start, n, consume,
                                  self._grow_fallbacks)
            if bad is not None:
                raise bad_event(bad)
            if state.arrays.rstate[R_FB_LIVE] == 0:  # both halves are done with every list
                fb_restart(state.arrays.rstate)
        else:
            consume(start, n)
        state.drain()  # the last batch's device time belongs to this chunk
        self.wall += time.perf_counter() - t0
        self.events += n - start
        if bar:
            bar.close()
        return ev_pfn

    def _grow_fallbacks(self):
        fb = self.state.grow_fallbacks()
        if self._pipe is not None:
            self._pipe.use_fallbacks(fb)

    def finish(self):
        """The result dict: ``counters`` (names in ``counters.NAMES``, plus events, wall_s,
        events_per_s, backend, mode), ``leaks`` (the first few: pfn, event that handed it
        out, event whose data it held; -1 for boot-time data), ``by_order``, ``buddyinfo``
        and ``zeroedinfo``, and ``backend`` in content mode."""
        state, alloc = self.state, self.alloc
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        state.flush(wait=True)
        offload_retire(alloc.z, state.e, np.iinfo(np.int64).max)  # the device finishes its queue
        alloc.check()
        a = state.arrays
        a.cnt[C.ZEROED_DROPPED_MERGE] = alloc.zone.stat[acore.S_ZEROED_DROPPED_MERGE]
        counters = C.as_dict(a.cnt)
        counters.update(events=self.events, wall_s=self.wall,
                        events_per_s=self.events / self.wall if self.wall > 0 else 0.0,
                        backend=state.backend.name if state.backend else "none", mode=self.mode)
        nleaks = int(a.rstate[R_NLEAKS])
        result = {
            "policy": self.policy.__dict__.copy(),
            "nr_pages": self.nr_pages,
            "counters": counters,
            "leaks": [dict(pfn=int(p), handed_out_by=int(ev),
                           data_of=int(w) if 0 <= w < BOOT_MARKER - 1 else -1)
                      for p, ev, w in a.leaks[: min(nleaks, MAX_LEAKS)]],
            "by_order": {"allocs": a.by_order[0, : alloc.max_order + 1].tolist(),
                         "zeroed": a.by_order[1, : alloc.max_order + 1].tolist()},
            "by_caller": {name: dict(zip(SP.CSTAT_NAMES, a.by_caller[:, k].tolist()))
                          for k, name in enumerate(SP.CALLER_NAMES)
                          if a.by_caller[:, k].any()},
            "callers_stated": self.callers_stated,
            "buddyinfo": alloc.buddyinfo(),
            "zeroedinfo": alloc.zeroed_info(),
            "initial_state": self.initial_state,
            "zone": {"other_zones": list(self.other_zones),
                     "watermarks": list(alloc.watermarks())},
            "pcp": {"auto": alloc.pcp_auto, "pagesets": [
                alloc.pcp_info(c) for c in range(alloc.zone.pcp_count.shape[0])]},
            "cost": {**cost_section(a.acct, counters), "profile": state.profile.describe(),
                     "profile_path": state.profile.path},
        }
        if state.backend is not None:
            result["backend"] = {"name": state.backend.name, "device": state.backend.describe(),
                                 "launches": state.launches, "pages": state.launch_pages,
                                 "pages_per_launch": state.launch_pages / max(1, state.launches),
                                 "wall_s": state.backend_wall, "fallbacks": state.fallbacks}
        return result


def simulate(events, policy, nr_pages, *, mode="metadata", backend="auto", pcp=True,
             chunk=1 << 20, progress=False, fault=None, pcp_high="auto", nr_cpus=1,
             initial_state=None, state_seed=0, cost_profile=None, pipeline_mode="off",
             other_zones=GUEST_OTHER_ZONES):
    """Replay ``events`` (EVENT_DTYPE) on a fresh zone; returns ``Simulation.finish()``'s dict.
    ``initial_state``: pristine (default), aged or a /proc/buddyinfo path (initial_state.py).
    ``cost_profile``: a CostProfile, a TOML path, or None for the shipped default.
    ``pipeline_mode``: "on" runs the allocator's half of the loop on a second thread
    (``pipeline.py``; the same results either way)."""
    sim = Simulation(policy, nr_pages, mode=mode, backend=backend, pcp=pcp, fault=fault,
                     progress=progress, chunk=chunk, pcp_high=pcp_high, nr_cpus=nr_cpus,
                     initial_state=initial_state, state_seed=state_seed,
                     cost_profile=cost_profile, pipeline_mode=pipeline_mode,
                     other_zones=other_zones)
    sim.feed(events)
    return sim.finish()


def summary(result):
    """A readable summary: clearing per site, skipped, redundant, leaks, buddy views."""
    c = result["counters"]
    lines = [f"policy {describe(result['policy'])}: {c['events']} events, "
             f"{c['events_per_s'] / 1e6:.2f} M events/s ({c['mode']}, backend {c['backend']})"]
    lines.append("pages cleared: " + ", ".join(f"{s[5:]} {c[s]}" for s in C.SITES))
    lines.append(f"clears skipped (PG_zeroed) {c['zero_skipped']}, redundant {c['zero_redundant']}, "
                 f"hints lost {c['zero_hint_lost']}, zeroed dropped at merge {c['zeroed_dropped_merge']}")
    blocks = max(1, c["alloc_blocks"])
    lines.append(f"allocations served zeroed: {c['hint_hits']} of {c['alloc_blocks']} "
                 f"({c['hint_hits'] / blocks:.1%})")
    tried = c["alloc_blocks"] + c["alloc_fail"]
    lines.append(f"allocation failures: {c['alloc_fail']} of {tried} "
                 f"({c['alloc_fail'] / max(1, tried):.1%})")
    if c["thp_fault_fallback"]:
        lines.append(f"THP faults fallen back to 4 KiB pages: {c['thp_fault_fallback']} (no "
                     "free block of their order above the min watermark; thp_fault_fallback)")
    state = result.get("initial_state", "pristine")
    warning = failure_warning(c, "--pages" if state == "pristine" or state.startswith("aged")
                              else None)
    if warning:
        lines.append("warning: " + warning)
    lines.append(f"leaks: {c['zero_leak']} pages" + "".join(
        f"\n  pfn {l['pfn']:#x} handed out by event {l['handed_out_by']} holds data of "
        + (f"event {l['data_of']}" if l["data_of"] >= 0 else "boot time")
        for l in result["leaks"]))
    pol = result["policy"]
    if result.get("callers_stated") and pol["track"]:
        from .hint_designs import caller_table
        design = pol["hint"] + (f"/{pol['pfmemalloc']}" if pol["hint"] == "lru_bit" else "")
        lines.append(f"by caller type (pages; hint={design}, free-signal={pol['free_signal']}):")
        lines.append(caller_table(result["by_caller"]))
    if "backend" in result:
        b = result["backend"]
        lines.append(f"backend {b['name']} on {b['device']}: {b['launches']} launches, "
                     f"{b['pages_per_launch']:.0f} pages per launch, {b['wall_s']:.3f} s")
    if "cost" in result:
        lines.append(format_cost(result["cost"]))
    lines.append(format_buddyinfo(result["buddyinfo"]))
    lines.append(format_zeroedinfo(result["zeroedinfo"]))
    return "\n".join(lines)


#: Above this share of failed allocations the summary warns: the zone is too small for the
#: workload and the counters describe a workload that did not run as written.
FAILURE_SHARE = 0.01


def failure_warning(counters, size_option):
    """A sentence when allocations failed noticeably (>= FAILURE_SHARE) or none was made,
    else None. ``size_option``: what makes the zone larger; None where a snapshot fixed its
    free memory."""
    tried = counters["alloc_blocks"] + counters["alloc_fail"]
    if tried == 0:
        return "no allocation at all: the workload's parameters leave it nothing to do"
    if counters["alloc_fail"] < FAILURE_SHARE * tried:
        return None
    advice = (f"give a larger {size_option} or a smaller workload" if size_option else
              "the starting snapshot sets the free memory (a larger zone keeps the rest "
              "allocated): give a smaller workload")
    return (f"{counters['alloc_fail'] / tried:.1%} of allocations failed (nothing free fitted): "
            f"the zone is too small for this workload, so its figures describe a different run; "
            + advice)


def as_profile(profile):
    """A CostProfile from a profile, a path, or None (the shipped default)."""
    if isinstance(profile, CostProfile):
        return profile
    return load_profile(profile)


def describe(policy):
    on = [k for k in ("init_on_free", "init_on_alloc", "track", "balloon", "reporting",
                      "offload", "zeroed_aware") if policy[k]]
    extra = f" hint={policy['hint']} free-signal={policy['free_signal']}" if policy["track"] else ""
    return ("+".join(on) or "baseline") + extra


def write_text(path, text):
    """Write atomically: a reader never sees a half-written file. A device or pipe at
    ``path`` is never replaced; a symbolic link is written through (``output_target``)."""
    path = output_target(path)
    refuse_odd_file(path, "a result")
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException as e:  # interrupted or failed: leave no half-written temporary behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):  # disk full, read-only: named by the file it was for
            raise UserError(f"{path}: cannot write it ({e.strerror or e})") from None
        raise


def json_text(obj):
    """A result or config as every file of them holds it."""
    return json.dumps(obj, indent=2, sort_keys=True)


def write_json(path, obj):
    write_text(path, json_text(obj))
