"""The same run on every available backend: counters must agree; time and throughput differ.

Runs one workload under one policy in content mode on each backend that is available here
(numpy, numba, and cuda/cupy on a real GPU), checks that every backend produced the same
counters as metadata mode, and prints wall time, backend time and pages per launch, as a ratio
to the numba (CPU) backend measured in the same run. ``--case`` repeats (``mixed``,
``vm-anon:thp=on``, ...); the default is the three of issue 11, whose target is a GPU backend
>= 10x numba on each with identical counters. "GB/s touched" counts 4 KiB per page per
operation (CLEAR writes the page, VERIFY reads it, DIRTY stores to each of its cache lines).

Three bounds are printed beside: no backend can beat metadata mode (content mode runs the
whole simulation on the host), and no GPU backend can beat ``HostOnly``, content mode with
the GPU backends' host work alone (the engine's content-mode work, its batches packed as the
GPU backends pack them, no device), measured here on any machine. Below both, the stream's
own calls of the page allocator replayed alone (``allocator.bulk``, none of the engine's
bookkeeping, nor its background work: reporting, the vmstat worker): the serial part no
device can take over, short of a faster allocator.
"""
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.validate import (Int, MAX_PFNS, Names, OneLineParser, UserError, arg,
                              check_memory, check_policy_names, check_workload, output_file,
                              script_main)  # noqa: E402
from zeroing.run import write_json  # noqa: E402

from allocator import GFP_HIGHUSER_MOVABLE, BuddyAllocator, bulk  # noqa: E402
from allocator.flags import GFP_TRANSHUGE  # noqa: E402
from kernels import BACKENDS  # noqa: E402
from kernels.cupy_backend import BATCH_PAGES as CUPY_BATCH_PAGES  # noqa: E402
from kernels.device_batch import HostOnly  # noqa: E402
from kernels.throughput import measured_backends  # noqa: E402
from zeroing.policy import make_policy  # noqa: E402
from zeroing.run import GUEST_OTHER_ZONES, simulate  # noqa: E402
from zeroing.engine import GFP_BALLOON  # noqa: E402
from zeroing.events import (EV_ALLOC, EV_DEFLATE, EV_FAULT, EV_FREE, EV_IDLE,  # noqa: E402
                            EV_INFLATE)
from zeroing.workloads import WORKLOADS, default_pages, make_workload  # noqa: E402

VOLATILE = ("wall_s", "events_per_s", "backend", "mode")


CASES = ("mixed", "vm-anon:thp=on", "vm-anon:thp=off")
TARGET = 10.0


def parse_case(spec, option="--case"):
    """``workload[:param=value,...]`` -> (name, params converted); UserError naming the option
    (--case, or --workload). A part that names no parameter of the workload continues the
    value before it (a caller mix holds commas too)."""
    name, _, rest = spec.partition(":")
    known = WORKLOADS[name][1] if name in WORKLOADS else {}
    pairs = []
    for part in (kv for kv in rest.split(",") if kv):
        key = part.split("=", 1)[0]
        if pairs and key not in known:  # a value with commas: callers=anon=3,raw=1
            pairs[-1][1] += "," + part
        else:
            pairs.append(part.split("=", 1))
    if any(len(kv) != 2 for kv in pairs):
        raise UserError(f"{option} {spec}: parameters are param=value, joined by commas")
    keys = [k for k, _ in pairs]
    twice = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if twice:
        raise UserError(f"{option} {spec}: {twice} given twice")
    params = check_workload(f"{option} {spec}", name, dict(pairs),
                            lambda k: f"{option} {spec}: {k}")
    return name, params


def allocator_ops(ev):
    """The page allocator's calls of a workload's events as ``allocator.bulk`` rows, with the
    GFP flags the engine gives each kind of allocation (zeroing/engine.py ``run_events``),
    frees by reference; None for a stream with events of other kinds (trace replay)."""
    op = ev["op"]
    if not np.isin(op, (EV_ALLOC, EV_FAULT, EV_INFLATE, EV_FREE, EV_DEFLATE, EV_IDLE)).all():
        return None
    keep = op != EV_IDLE
    row = np.cumsum(keep) - 1  # an event's row once the idle events are gone
    ops = np.zeros(len(ev), dtype=bulk.OP_DTYPE)
    ops["order"], ops["cpu"] = ev["order"], ev["cpu"]
    alloc = (op == EV_ALLOC) | (op == EV_FAULT) | (op == EV_INFLATE)
    ops["op"][alloc] = bulk.OP_ALLOC
    ops["gfp"] = np.where(op == EV_ALLOC, ev["gfp"], np.where(
        op == EV_INFLATE, GFP_BALLOON, np.where(ev["order"] == 0, GFP_HIGHUSER_MOVABLE,
                                                GFP_TRANSHUGE)))
    free = (op == EV_FREE) | (op == EV_DEFLATE)
    ref = ev["ref"][free]
    ops["op"][free] = bulk.OP_FREE_REF
    ops["order"][free] = ev["order"][ref]  # a free names its allocation's order
    ops["arg"][free] = row[ref]
    return ops[keep]


def allocator_alone_s(ev, pages, repeat):
    """Best seconds of ``repeat`` replays of the stream's allocator calls on a fresh zone of
    ``pages`` (as ``simulate`` builds it: per-cpu lists auto-tuned); None where
    ``allocator_ops`` has no rows for the stream or the allocator refused one of them."""
    ops = allocator_ops(ev)
    if ops is None:
        return None
    cols = bulk.columns(ops)
    best = np.inf
    for _ in range(repeat + 1):  # the first compiles (or loads) run_ops
        alloc = BuddyAllocator(pages, nr_cpus=int(ev["cpu"].max(initial=0)) + 1,
                               other_zones=GUEST_OTHER_ZONES)
        out_pfn = np.empty(len(ops), dtype=np.int64)
        out_hint = np.empty(len(ops), dtype=np.uint8)
        errors = np.zeros((bulk.MAX_ERRORS, 3), dtype=np.int64)
        t = time.perf_counter()
        done, nerr = bulk.run_ops(alloc.z, *cols, out_pfn, out_hint, False, errors)
        if nerr:  # a call the model refused: not the stream the engine ran
            return None
        best = min(best, time.perf_counter() - t) if _ else best
    return best


def case_size(spec, args):
    """(name, params without events, events or None, pages) of a case: workloads without an
    event count (vm-anon, the upstream benchmark) keep their own length and, unless --quick,
    their own guest size."""
    name, params = parse_case(spec)
    takes_events = "events" in WORKLOADS[name][1]
    events = params.pop("events", args.events) if takes_events else None  # the case's own
    pages = args.pages if takes_events or args.quick else default_pages(name)
    return name, params, events, pages


def check_case_memory(spec, args, option="--case", mode="content", backend="numba"):
    """A case's zone and events fit in this machine's memory, before anything is allocated
    (as ``zeroing run`` checks them): here content mode on numba, the baseline, holds the
    pool on the host (4 KiB a page). The message names the option that sets the size:
    --pages and --events, or the case (``option``: --case or --workload) where it sets its
    own."""
    name, params, events, pages = case_size(spec, args)
    own_events = "events" in parse_case(spec)[1]
    pages_at = "--pages" if "events" in WORKLOADS[name][1] and not args.quick \
        else f"{option} {spec}"
    events_at = f"{option} {spec}" if own_events else "--events"
    check_memory((pages_at, events_at), pages, mode, backend, events=events or 0)


def run_case(spec, args, log=print):
    name, params, events, pages = case_size(spec, args)
    ev = make_workload(name, pages, events, seed=0, **params)
    policy = make_policy(args.policy)
    simulate(ev[:1000], policy, pages)  # warm
    meta = min((simulate(ev, policy, pages) for _ in range(max(2, args.repeat))),
               key=lambda m: m["counters"]["wall_s"])
    ref = {k: v for k, v in meta["counters"].items() if k not in VOLATILE}
    host_only = lambda: HostOnly(CUPY_BATCH_PAGES)  # noqa: E731 (batches as CuPy gets them)
    simulate(ev[:1000], policy, pages, mode="content", backend=host_only())  # warm
    host_s = min(simulate(ev, policy, pages, mode="content", backend=host_only())
                 ["counters"]["wall_s"] for _ in range(max(2, args.repeat)))
    alone_s = allocator_alone_s(ev, pages, max(2, args.repeat))
    backends = []
    for backend in measured_backends(log=log, only=getattr(args, "backends", None)):
        try:
            simulate(ev[:1000], policy, pages, mode="content", backend=backend.name)  # warm
            backends.append(backend.name)
        except MemoryError as e:  # the pool does not fit here: say so, go on
            log(f"{backend.name:6s} skipped: {e}")
    runs = {name: [] for name in backends}
    for rnd in range(args.repeat):  # rounds in alternating order: a slow spell hits all
        for name in (backends if rnd % 2 == 0 else backends[::-1]):
            runs[name].append(simulate(ev, policy, pages, mode="content", backend=name))
    rows = {}
    for name, done in runs.items():
        r = min(done, key=lambda x: x["counters"]["wall_s"])
        walls = [x["counters"]["wall_s"] for x in done]
        same = all({k: v for k, v in x["counters"].items() if k not in VOLATILE} == ref
                   for x in done)
        b = r["backend"]
        rows[name] = {"device": b["device"], "wall_s": r["counters"]["wall_s"],
                      "wall_s_runs": walls, "backend_s": b["wall_s"],
                      "launches": b["launches"], "pages_per_launch": b["pages_per_launch"],
                      "gb_per_s": b["pages"] * 4096 / max(r["counters"]["wall_s"], 1e-9) / 1e9,
                      "counters_match_metadata": same}
    if not rows:
        return rows
    base = rows.get("numba") or next(iter(rows.values()))
    # Content mode runs the whole metadata-mode simulation on the host whatever the backend:
    # a backend that took no time at all would still leave that, so no backend can be more
    # than this many times the numba run.
    ceiling = base["wall_s"] / meta["counters"]["wall_s"]
    host_bound = base["wall_s"] / host_s
    best = f"best of {max(2, args.repeat)}"
    log(f"{spec} / {args.policy}: {len(ev)} events, {pages} pages; "
        f"metadata mode {meta['counters']['wall_s']:.3f} s ({best}), so no backend can be "
        f"more than {ceiling:.1f} x numba here; the GPU backends' host work alone "
        f"{host_s:.3f} s ({host_s / meta['counters']['wall_s']:.2f} x metadata mode, {best}), "
        f"so no GPU backend can be more than {host_bound:.1f} x numba here")
    alone_bound = base["wall_s"] / alone_s if alone_s else None
    if alone_s:
        log(f"  the allocator's calls alone (allocator.bulk, none of the engine's bookkeeping) "
            f"{alone_s:.3f} s ({alone_s / meta['counters']['wall_s']:.2f} x metadata mode, "
            f"{best}): with all else free no backend could be more than {alone_bound:.1f} x "
            "numba here without a faster allocator")
    for bname, row in rows.items():
        row["x_numba"] = base["wall_s"] / row["wall_s"]
        row["x_numba_ceiling"] = ceiling
        row["x_numba_host_bound"] = host_bound
        row["x_numba_allocator_bound"] = alone_bound
        spread = (f"best of {args.repeat}, slowest {max(row['wall_s_runs']) / row['wall_s']:.2f}"
                  " x best, " if args.repeat > 1 else "")
        log(f"{bname:6s} on {row['device']}: {row['wall_s']:.3f} s ({spread}"
            f"{row['x_numba']:.2f} x numba), backend waited {row['backend_s']:.3f} s, "
            f"{row['gb_per_s']:.1f} GB/s touched, {row['launches']} launches of "
            f"{row['pages_per_launch']:.0f} pages; counters match metadata: "
            f"{row['counters_match_metadata']}")
        if bname in ("cupy", "cuda"):
            log(f"  target {bname} >= {TARGET:.0f}x numba with identical counters: "
                + ("met" if row["x_numba"] >= TARGET and row["counters_match_metadata"]
                   else "not met"))
    return rows


def main(argv=None):
    p = OneLineParser(description=__doc__)
    p.add_argument("--case", action="append", help="workload[:param=value,...] (repeat)")
    p.add_argument("--workload", help="one workload (the same as --case NAME)")
    p.add_argument("--policy", default="init_on_free,pg_zeroed,reporting")
    p.add_argument("--pages", type=arg(Int(1024, MAX_PFNS)), default=1 << 18)
    p.add_argument("--events", type=arg(Int(1, 10**9)), default=200_000)
    p.add_argument("--repeat", type=arg(Int(1, 100)), default=3,
                   help="timed runs of each backend, in alternating order; the best counts "
                   "(default 3: the GPU machines' hosts vary by 1.5x between calls)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    p.add_argument("--backends", type=arg(Names(*BACKENDS)),
                   help="comma-separated backends to run, numba (the baseline) among them "
                   "(default: all available)")
    p.add_argument("--json", type=output_file)
    args = p.parse_args(argv)
    if args.backends is not None:
        if "numba" not in args.backends:
            p.error("--backends: must name numba, the baseline the others are measured against")
        args.backends = set(args.backends)
    if args.case and args.workload:
        p.error("--workload: has no effect beside --case (give that workload as a --case)")
    cases = args.case or ([args.workload] if args.workload else list(CASES))
    twice = next((c for i, c in enumerate(cases) if c in cases[:i]), None)
    if twice:
        p.error(f"--case {twice}: given twice")
    check_policy_names("--policy", args.policy)
    parsed = [parse_case(spec, "--workload" if args.workload else "--case") for spec in cases]
    names = [n for n, _ in parsed]
    # See run_case: --pages sizes the workloads that take an event count, --events those of
    # them that do not give their own.
    sized = [n for n in names if "events" in WORKLOADS[n][1]]
    counted = [n for n, params in parsed if n in sized and "events" not in params]
    if not args.quick:
        if p.was_given("pages") and not sized:
            p.error(f"--pages: has no effect on {', '.join(names)} (they keep their own guest "
                    "size and length)")
        if p.was_given("events") and not counted:
            p.error(f"--events: has no effect on {', '.join(cases)} (they keep their own "
                    "length or give their own events)")
    if args.quick:
        p.quick(args, pages=4096, events=3000, repeat=1)
        cases = args.case or [args.workload or "mixed"]
    option = "--workload" if args.workload else "--case"
    for spec in cases:
        check_case_memory(spec, args, option)
    out = {}
    for spec in cases:
        try:
            out[spec] = run_case(spec, args)
        except MemoryError as e:  # less memory than the check saw (a ulimit, another process)
            raise UserError(f"{option} {spec}: out of memory ({e})") from None
    if not all(r["counters_match_metadata"] for rows in out.values() for r in rows.values()):
        print("MISMATCH: a backend disagrees with metadata mode", file=sys.stderr)
        return 1
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(script_main(main))
