"""The event stream the engine consumes: a numpy structured array, one row per event.

=========  ======================================================================
``time``   simulated time in ns (non-decreasing)
``op``     ``EV_ALLOC`` kernel allocation (``gfp`` decides __GFP_ZERO and migratetype),
           ``EV_FAULT`` user page fault (order 0: vma_alloc_zeroed_movable_folio,
           order > 0: folio_zero_user), ``EV_FREE`` free of the block allocated by row
           ``ref``, ``EV_INFLATE`` balloon inflate (one page to the host),
           ``EV_DEFLATE`` balloon deflate of the page taken by row ``ref`` (the workloads
           deflate the last inflated page first, as virtio_balloon's ``leak_balloon()``
           does: ``balloon_page_dequeue()`` takes the balloon list's head),
           ``EV_IDLE`` time passes (background work may run),
           ``EV_ADOPT`` the block at pfn ``ref - 1`` was allocated before the stream began
           (trace replay): take it, content unknown (dirty), nothing counted,
           ``EV_FREE_PFN`` free the allocated block at pfn ``ref - 1`` of this ``order``
           (an allocation made in an earlier chunk of a streamed replay),
           ``EV_VMSTAT`` the vmstat worker ran on ``cpu`` (a trace that recorded it): its
           ``decay_pcp_high()``, and from then on the trace's ticks replace the model's
``order``  block order
``cpu``    per-cpu list
``gfp``    GFP bits for EV_ALLOC (elsewhere the kernel path fixes them); for EV_FAULT,
           ``FAULT_WRITES | n``: the program writes the first n pages of the block (1 to its
           size; without that bit, the whole block)
``ref``    row index of the allocation being freed or deflated; for EV_ALLOC and EV_FAULT,
           0 lets the model choose the block and pfn + 1 asks for exactly that block
=========  ======================================================================

Text form (``format_events`` / ``parse_events``): one event per line,
``time op order cpu gfp ref`` with op as a name (alloc, fault, free, inflate, deflate, idle,
vmstat).
"""
import numpy as np

EV_ALLOC = 1
EV_FAULT = 2
EV_FREE = 3
EV_INFLATE = 4
EV_DEFLATE = 5
EV_IDLE = 6
EV_ADOPT = 7
EV_FREE_PFN = 8
EV_VMSTAT = 9
#: In an EV_FAULT's ``gfp``: the rest is the number of pages of the block the program writes
#: (no GFP flag is this high; a fault's flags are the kernel path's, so gfp is otherwise unused).
FAULT_WRITES = 1 << 31


def fault_gfp(pages):
    """An EV_FAULT's gfp for a program that writes the first ``pages`` pages of the block
    (0: the whole block)."""
    return FAULT_WRITES | pages if pages else 0
OP_NAMES = {EV_ALLOC: "alloc", EV_FAULT: "fault", EV_FREE: "free", EV_INFLATE: "inflate",
            EV_DEFLATE: "deflate", EV_IDLE: "idle", EV_ADOPT: "adopt", EV_FREE_PFN: "free_pfn",
            EV_VMSTAT: "vmstat"}

EVENT_DTYPE = np.dtype([
    ("time", np.int64), ("op", np.uint8), ("order", np.int8), ("cpu", np.uint16),
    ("gfp", np.uint32), ("ref", np.int64),
])
#: EVENT_DTYPE plus ``caller``: the caller type of each allocation (``struct_page.CALLER_*``;
#: 0 = the event's default: faults anon, allocations raw). Workloads that state a caller mix
#: use it; the engine reads it when present. The text form does not carry it.
EVENT_CALLER_DTYPE = np.dtype(EVENT_DTYPE.descr + [("caller", np.uint8)])
#: The latest event time (ns, about 146 years): the engine adds its periods (the vmstat
#: worker's second, reporting's delay) to a time without overflowing int64.
MAX_TIME = 1 << 62


def check_events(events, start=0, ev_pfn=None):
    """What ``Simulation.feed`` takes, or a TypeError / ValueError saying what it is not: a
    1-D array of EVENT_DTYPE's fields, ``start`` within it, ``ev_pfn`` an int64 array as
    long, and the times of rows ``start:`` from 0 up to MAX_TIME, never decreasing (a later
    feed may start again from 0: the engine's background work then waits for its time)."""
    import operator
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    if not isinstance(events, np.ndarray) or events.ndim != 1 or \
            not set(EVENT_DTYPE.names) <= set(names):
        raise TypeError("events: a 1-D numpy array of EVENT_DTYPE (or EVENT_CALLER_DTYPE), "
                        f"not {type(events).__name__} {getattr(events, 'shape', '')} of "
                        f"{getattr(events, 'dtype', None)}")
    for name in EVENT_DTYPE.names + (("caller",) if "caller" in names else ()):
        kind = events.dtype[name]
        if kind.shape or not np.issubdtype(kind, np.integer) or not kind.isnative:
            raise TypeError(f"events: field {name} is {kind}, not an integer of this machine's "
                            f"byte order ({EVENT_CALLER_DTYPE[name]}, as EVENT_DTYPE has it)")
    start = operator.index(start)
    if not 0 <= start <= len(events):
        raise ValueError(f"start {start}: outside the {len(events)} rows")
    if ev_pfn is not None and (not isinstance(ev_pfn, np.ndarray) or ev_pfn.dtype != np.int64
                               or ev_pfn.shape != (len(events),)
                               or not ev_pfn.flags.writeable):
        raise ValueError(f"ev_pfn: a writable int64 array of the {len(events)} rows, not "
                         f"{getattr(ev_pfn, 'dtype', type(ev_pfn).__name__)} "
                         f"{getattr(ev_pfn, 'shape', '')}")
    time = events["time"][start:]
    if len(time) and (time[0] < 0 or time.max() > MAX_TIME or (time[1:] < time[:-1]).any()):
        time = time.astype(np.int64)  # which rule, and where (the common case: none)
        if time[0] < 0:
            raise ValueError(f"event {start}: time {time[0]} is negative")
        if time.max() > MAX_TIME:
            raise ValueError(f"event {start + int(time.argmax())}: time {time.max()} past "
                             f"{MAX_TIME} ns")
        back = np.flatnonzero(time[1:] < time[:-1])
        if len(back):
            k = start + int(back[0]) + 1
            raise ValueError(f"event {k}: time {events['time'][k]} before the event before's "
                             f"{events['time'][k - 1]} (times do not decrease)")
    if "caller" in names and len(events) > start:
        from .struct_page import NR_CALLERS
        caller = events["caller"][start:]
        bad = np.flatnonzero((caller < 0) | (caller >= NR_CALLERS))
        if len(bad):
            k = start + int(bad[0])
            raise ValueError(f"event {k}: caller {events['caller'][k]} is no caller type "
                             f"(0-{NR_CALLERS - 1})")
    return start


def format_events(events):
    return "".join(f"{e['time']} {OP_NAMES[int(e['op'])]} {e['order']} {e['cpu']} "
                   f"{e['gfp']:#x} {e['ref']}\n" for e in events)


def parse_events(text, source="<events>"):
    """Parse the text form; a bad line (a value its column cannot hold, a time before the
    line before) raises ValueError naming source, line and reason."""
    codes = {v: k for k, v in OP_NAMES.items()}
    limits = [(name, np.iinfo(EVENT_DTYPE[name])) for name in EVENT_DTYPE.names]
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 6:
            raise ValueError(f"{source}:{lineno}: expected 6 fields, got {len(parts)}")
        if parts[1] not in codes:
            raise ValueError(f"{source}:{lineno}: unknown op {parts[1]!r}")
        try:
            row = (int(parts[0]), codes[parts[1]], int(parts[2]), int(parts[3]),
                   int(parts[4], 0), int(parts[5]))
        except ValueError as e:
            raise ValueError(f"{source}:{lineno}: {e}") from None
        for (name, limit), value in zip(limits, row):
            top = MAX_TIME if name == "time" else limit.max
            if not limit.min <= value <= top or (name == "time" and value < 0):
                raise ValueError(f"{source}:{lineno}: {name} {value} out of range "
                                 f"({max(limit.min, 0) if name == 'time' else limit.min} to "
                                 f"{top})")
        if rows and row[0] < rows[-1][0]:
            raise ValueError(f"{source}:{lineno}: time {row[0]} is before the line before's "
                             f"{rows[-1][0]} (times do not decrease)")
        rows.append(row)
    return np.array(rows, dtype=EVENT_DTYPE)
