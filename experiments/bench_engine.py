"""Engine speed: metadata mode with pg_zeroed and the sanitizer, content mode on the numba
backend, and how many pages a backend launch carries.

Baselines, measured in the same run: the same engine interpreted (NUMBA_DISABLE_JIT=1) on a
prefix, for metadata mode; metadata mode on the same events, for content mode. Targets
(issue 3): metadata >= 5 M events/s, content (numba) >= 1 M events/s, >= 16K pages per launch
where the workload allows. Workloads: ``mixed`` (with THP faults) and ``mixed`` with every
fault order 0 (content mode is bound by memory bandwidth: a THP fault clears and checks 2 MiB).

End to end (issue 12): every workload at about 10M events, generated chunk by chunk while the
engine runs (``zeroing run``'s path), against engine-only events/s on the same events made
beforehand, same run, one thread. Target: end-to-end >= 0.5 of engine-only.
"""
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.validate import (Int, MAX_PFNS, OneLineParser, arg, output_file,
                              script_main)  # noqa: E402
from zeroing.run import write_json  # noqa: E402

from zeroing.events import EV_FAULT  # noqa: E402
from zeroing.policy import make_policy  # noqa: E402
from zeroing.run import simulate  # noqa: E402
from zeroing.streaming import simulate_stream  # noqa: E402
from zeroing.workloads import WORKLOADS, default_pages, iter_workload, make_workload  # noqa: E402

POLICY = "init_on_free,pg_zeroed,reporting"

INTERPRETED = """
import sys
sys.path.insert(0, {root!r})
from zeroing.policy import make_policy
from zeroing.run import simulate
from zeroing.workloads import make_workload
ev = make_workload("mixed", {pages}, {events}, seed=1)[:{prefix}]
print(simulate(ev, make_policy({policy!r}), {pages})["counters"]["events_per_s"])
"""


def order0(events):
    ev = events.copy()
    ev["order"][ev["op"] == EV_FAULT] = 0
    return ev


#: The parameter that sets each workload's length, and its value for one unit.
LENGTH = {"mixed": ("events", None), "unaware-user": ("events", None),
          "vm-anon": ("rounds", 1), "kernel-build": ("jobs", 10),
          "page-cache-churn": ("passes", 1), "balloon-cycle": ("cycles", 1)}
VM_ANON_THP = "off"  # order-0 faults: the per-event path (THP on is 512x fewer events)


def workload_params(name, target):
    """Parameters giving about ``target`` events (one unit measured, then scaled)."""
    key, unit = LENGTH[name]
    extra = {"thp": VM_ANON_THP} if name == "vm-anon" else {}
    if unit is None:
        return {key: target, **extra}
    n = len(make_workload(name, default_pages(name), seed=1, **{key: unit}, **extra))
    return {key: max(1, math.ceil(target * unit / n)), **extra}


def end_to_end(target, policy, reps=2):
    """Per workload: (events, end-to-end events/s, engine-only events/s), each the best of
    ``reps`` runs, the two kinds alternating (a single run of either swung by 1.5x on a shared
    2-core VM)."""
    rows = {}
    for name in WORKLOADS:
        pages = default_pages(name)
        params = workload_params(name, target)
        engine_rate, wall = 0.0, float("inf")
        for _ in range(reps):
            ev = make_workload(name, pages, seed=1, **params)
            engine = simulate(ev, policy, pages)["counters"]
            engine_rate = max(engine_rate, engine["events_per_s"])
            del ev
            t0 = time.perf_counter()
            streamed = simulate_stream(iter_workload(name, pages, seed=1, reuse=True, **params),
                                       policy, pages)
            wall = min(wall, time.perf_counter() - t0)
            n = streamed["counters"]["events"]
            assert n == engine["events"] and streamed["counters"]["pgfree"] == engine["pgfree"]
        rows[name] = {"events": n, "params": params, "pages": pages,
                      "end_to_end_events_per_s": n / wall, "engine_events_per_s": engine_rate,
                      "ratio": n / wall / engine_rate, "reps": reps}
    return rows


def main(argv=None):
    p = OneLineParser(description=__doc__)
    p.add_argument("--pages", type=arg(Int(1024, MAX_PFNS)), default=1 << 20)
    p.add_argument("--events", type=arg(Int(1, 10**10)), default=2_000_000)
    p.add_argument("--content-events", type=arg(Int(1, 10**10)), default=300_000)
    p.add_argument("--prefix", type=arg(Int(1, 10**9)), default=30_000)
    p.add_argument("--e2e-events", type=arg(Int(1, 10**10)), default=10_000_000,
                   help="events per workload for the end-to-end rows")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    p.add_argument("--json", type=output_file)
    args = p.parse_args(argv)
    if args.quick:
        p.quick(args, pages=1 << 12, events=20_000, content_events=5_000, prefix=2_000,
                e2e_events=20_000)
    policy = make_policy(POLICY)
    out = {}
    ev = make_workload("mixed", args.pages, args.events, seed=1)
    meta = simulate(ev, policy, args.pages)["counters"]["events_per_s"]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    code = INTERPRETED.format(root=ROOT, pages=args.pages, events=args.events,
                              prefix=args.prefix, policy=POLICY)
    interp = float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                  capture_output=True, text=True).stdout.split()[-1])
    out["metadata"] = {"events_per_s": meta, "interpreted_events_per_s": interp,
                       "speedup": meta / interp}
    print(f"metadata ({POLICY}, sanitizer on): {meta / 1e6:.2f} M events/s; interpreted "
          f"{interp / 1e3:.1f} K events/s on {args.prefix:,}; {meta / interp:.0f}x")
    # Issue 9's constraint: auto-tuned pcp lists within 20% of the fixed-high rule they
    # replaced (same events, same thread, same run; best of three each, interleaved).
    auto = fixed = 0.0
    for _ in range(3):
        fixed = max(fixed, simulate(ev, policy, args.pages, pcp_high="fixed")["counters"]["events_per_s"])
        auto = max(auto, simulate(ev, policy, args.pages)["counters"]["events_per_s"])
    out["pcp_high"] = {"auto_events_per_s": auto, "fixed_events_per_s": fixed,
                       "ratio": auto / fixed}
    print(f"metadata, pcp high auto-tuned: {auto / 1e6:.2f} M events/s; fixed (the rule before "
          f"6.7): {fixed / 1e6:.2f} M events/s; auto / fixed = {auto / fixed:.2f}")
    for name, events in (("mixed", ev[: args.content_events]),
                         ("mixed, order-0 faults", order0(ev[: args.content_events]))):
        m = simulate(events, policy, args.pages)["counters"]["events_per_s"]
        r = simulate(events, policy, args.pages, mode="content", backend="numba")
        c = r["counters"]["events_per_s"]
        b = r["backend"]
        gbps = b["pages"] * 4096 / max(b["wall_s"], 1e-9) / 1e9
        out[f"content {name}"] = {"events_per_s": c, "metadata_events_per_s": m,
                                  "ratio": c / m, "pages_per_launch": b["pages_per_launch"],
                                  "launches": b["launches"], "device": b["device"],
                                  "backend_gb_per_s": gbps}
        print(f"content ({name}, numba on {b['device']}): {c / 1e6:.2f} M events/s = "
              f"{c / m:.2f} x metadata ({m / 1e6:.2f} M/s); {b['launches']} launches, "
              f"{b['pages_per_launch']:.0f} pages per launch, backend moved {gbps:.1f} GB/s")
    out["end_to_end"] = end_to_end(args.e2e_events, policy)
    for name, r in out["end_to_end"].items():
        print(f"end to end {name:17s}: {r['end_to_end_events_per_s'] / 1e6:6.2f} M events/s "
              f"(generation included, {r['events']:,} events) vs engine-only "
              f"{r['engine_events_per_s'] / 1e6:6.2f} M events/s: {r['ratio']:.2f} (best of "
              f"{r['reps']} each; target >= 0.5)" + (
                  "  [above 1.0 cannot be (the stream does the engine's work and generates): "
                  "noise larger than best-of-two removes; rerun]"
                  if r["ratio"] > 1 else ""))
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    sys.exit(script_main(main))
