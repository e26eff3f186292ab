"""Run a workload under a policy: the Python entry point behind ``zeroing run``."""
import json
import os
import time

import numpy as np

from allocator import BuddyAllocator, format_buddyinfo, format_zeroedinfo
from allocator import core as acore

from . import counters as C
from .engine import MAX_LEAKS, NR_RSTATE, R_NLEAKS, run_events
from .policy import as_array, make_policy

MODES = ("metadata",)


class BadEventError(ValueError):
    pass


def simulate(events, policy, nr_pages, *, mode="metadata", pcp=True, seed=None, chunk=1 << 20,
             progress=False):
    """Replay ``events`` (EVENT_DTYPE) on a fresh zone; returns the result dict.

    The dict has ``counters`` (names in ``counters.NAMES``, plus events, wall_s,
    events_per_s, backend, mode), ``leaks`` (the first few: pfn, event that handed it out,
    event whose data it held), ``buddyinfo`` and ``zeroedinfo``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: this version supports {', '.join(MODES)} "
                         "(content mode and the clearing backends are not written yet)")
    alloc = BuddyAllocator(nr_pages, pcp=pcp, page_reporting_order=policy.reporting_order)
    z = alloc.z
    pol = as_array(policy)
    cnt = np.zeros(C.NR_COUNTERS, dtype=np.int64)
    # Boot memory is not zero, unless init_on_free cleared it at boot.
    truth = np.full(nr_pages, 1 if policy.init_on_free else 0, dtype=np.uint8)
    writer = np.full(nr_pages, -1, dtype=np.int64)
    pagebit = np.zeros(nr_pages, dtype=np.uint8)
    n = len(events)
    ev_pfn = np.full(n, -1, dtype=np.int64)
    ev_hint = np.zeros(n, dtype=np.uint8)
    leaks = np.full((MAX_LEAKS, 3), -1, dtype=np.int64)
    rstate = np.zeros(NR_RSTATE, dtype=np.int64)
    cols = [np.ascontiguousarray(events[f]) for f in ("time", "op", "order", "cpu", "gfp", "ref")]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=n, unit="ev", leave=False)
    # Compile (or load from cache) outside the timing: an empty range runs no event.
    run_events(z, *cols, 0, 0, pol, cnt, truth, writer, pagebit, ev_pfn, ev_hint, leaks, rstate)
    t0 = time.perf_counter()
    i = 0
    while i < n:
        stop = min(n, i + chunk)
        r = run_events(z, *cols, i, stop, pol, cnt, truth, writer, pagebit, ev_pfn, ev_hint,
                       leaks, rstate)
        if r < 0:
            bad = -r - 1
            raise BadEventError(f"event {bad}: {dict(zip(events.dtype.names, events[bad].tolist()))}"
                                ": bad reference, order or cpu")
        if bar:
            bar.update(r - i)
        i = r
    wall = time.perf_counter() - t0
    if bar:
        bar.close()
    alloc.check()
    cnt[C.ZEROED_DROPPED_MERGE] = alloc.zone.stat[acore.S_ZEROED_DROPPED_MERGE]
    counters = C.as_dict(cnt)
    counters.update(events=n, wall_s=wall, events_per_s=n / wall if wall > 0 else 0.0,
                    backend="none", mode=mode)
    nleaks = int(rstate[R_NLEAKS])
    return {
        "policy": policy.__dict__.copy(),
        "nr_pages": nr_pages,
        "counters": counters,
        "leaks": [dict(pfn=int(p), handed_out_by=int(e), data_of=int(w))
                  for p, e, w in leaks[: min(nleaks, MAX_LEAKS)]],
        "hint_rate": {"blocks": counters["alloc_blocks"], "zeroed": counters["hint_hits"]},
        "buddyinfo": alloc.buddyinfo(),
        "zeroedinfo": alloc.zeroed_info(),
    }


def summary(result):
    """A readable summary: clearing per site, skipped, redundant, leaks, buddy views."""
    c = result["counters"]
    lines = [f"policy {describe(result['policy'])}: {c['events']} events, "
             f"{c['events_per_s'] / 1e6:.2f} M events/s ({c['mode']})"]
    lines.append("pages cleared: " + ", ".join(f"{s[5:]} {c[s]}" for s in C.SITES))
    lines.append(f"clears skipped (PG_zeroed) {c['zero_skipped']}, redundant {c['zero_redundant']}, "
                 f"hints lost {c['zero_hint_lost']}, zeroed dropped at merge {c['zeroed_dropped_merge']}")
    blocks = max(1, c["alloc_blocks"])
    lines.append(f"allocations served zeroed: {c['hint_hits']} of {c['alloc_blocks']} "
                 f"({c['hint_hits'] / blocks:.1%})")
    lines.append(f"leaks: {c['zero_leak']} pages" + "".join(
        f"\n  pfn {l['pfn']:#x} handed out by event {l['handed_out_by']} holds data of event "
        f"{l['data_of']}" for l in result["leaks"]))
    lines.append(format_buddyinfo(result["buddyinfo"]))
    lines.append(format_zeroedinfo(result["zeroedinfo"]))
    return "\n".join(lines)


def describe(policy):
    on = [k for k in ("init_on_free", "init_on_alloc", "track", "balloon", "reporting")
          if policy[k]]
    extra = f" hint={policy['hint']} free-signal={policy['free_signal']}" if policy["track"] else ""
    return ("+".join(on) or "baseline") + extra


def write_json(path, obj):
    """Write atomically: a reader never sees a half-written file."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
