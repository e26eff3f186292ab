"""The upstream PG_zeroed benchmark, simulated, beside the published figures.

Runs ``experiments/upstream.toml`` (resumable: complete cells are not redone) and prints, per
THP setting and policy, the simulated task-clock of one run of the benchmark program and the
share of fault allocations served zeroed in it, in four readings: ``single run`` (one run in a
fresh guest whose free memory reporting has flushed; UPSTREAM.md says why this is the one that
corresponds to the published figures), ``single run, aged`` (the same in an aged guest),
``single run, 6.18 free lists`` (the same from a real 6.18 machine's free lists, a
/proc/pagetypeinfo snapshot in tests/data) and ``repeated`` (rounds 2-4 of runs 12 s apart:
``(T(4 rounds) - T(1 round)) / 3``), next to the figures the postings published
(experiments/UPSTREAM.md cites them), and where the time goes. Nothing is fitted: the cost
profile is the default one.
"""
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.validate import (OneLineParser, check_output_file, output_file,  # noqa: E402
                              output_folder, script_main)
from zeroing.compare import collect, compare, config_inputs, load_config, prepare  # noqa: E402
from zeroing.run import write_json, write_text  # noqa: E402

#: Published task-clock (ms) of the 256 MiB fault-in with THP, before -> after.
PUBLISHED_THP = (("RFC v1, Apr 2026", "179", "99"), ("RFC v2, Apr 2026", "191 ± 31", "60 ± 35"),
                 ("37-patch posting on 7.1-rc2", "232 ± 20", "51 ± 26"))
PUBLISHED_NO_THP_HIT = "~21% of order-0 allocations from reported pages"
#: Reading -> (workload label suffixes: first run, later run or None, rounds between them).
READINGS = {"single run": ("single run", None, 1),
            "single run, aged": ("single run, aged", None, 1),
            "single run, 6.18 free lists": ("single run, 6.18 free lists", None, 1),
            "repeated": ("1 round", "4 rounds", 3)}
POLICIES = ("reporting", "pg_zeroed+reporting")
PARTS = ("task_clock_ns", "guest_clear_ns", "fault_ns", "host_in_task_ns", "background_ns")


def per_run(results, thp, policy, reading):
    """{part: mean ms of one run}, sd of task-clock over seeds and hit % of faults."""
    first, later, runs = READINGS[reading]

    def pick(suffix):
        label = f"THP {'on' if thp else 'off'}, {suffix}"
        return {r["seed"]: r for r in results
                if r["workload"]["label"] == label and r["policy_label"] == policy}
    a_runs = pick(first)
    b_runs = pick(later) if later else None
    order = 9 if thp else 0
    parts, hits = {p: [] for p in PARTS}, []
    for seed in sorted(a_runs):
        a = a_runs[seed]
        b = b_runs[seed] if b_runs else None
        base = (lambda x: 0) if b is None else (lambda x: x)
        top = a if b is None else b
        for p in PARTS:
            parts[p].append((top["cost"][p] - base(a["cost"][p])) / runs / 1e6)
        allocs = top["by_order"]["allocs"][order] - base(a["by_order"]["allocs"][order])
        zeroed = top["by_order"]["zeroed"][order] - base(a["by_order"]["zeroed"][order])
        hits.append(100.0 * zeroed / max(1, allocs))
    ms = parts["task_clock_ns"]
    return ({p: float(np.mean(v)) for p, v in parts.items()},
            float(np.std(ms, ddof=1)) if len(ms) > 1 else 0.0, float(np.mean(hits)))


def summary(results):
    """{reading: {THP on/off: {policy: {ms, sd, hit, parts}}}}."""
    out = {}
    for reading in READINGS:
        for thp in (True, False):
            for policy in POLICIES:
                parts, sd, hit = per_run(results, thp, policy, reading)
                out.setdefault(reading, {}).setdefault("on" if thp else "off", {})[policy] = {
                    "ms": parts["task_clock_ns"], "sd": sd, "hit_pct": hit, "parts_ms": parts}
    return out


def table(s):
    rows = ["| reading | THP | policy | simulated task-clock per run (ms) | saving | "
            "faults served zeroed | published |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for reading, by_thp in s.items():
        for thp, by_policy in by_thp.items():
            base = by_policy["reporting"]["ms"]
            for policy, c in by_policy.items():
                after = policy != "reporting"
                if thp == "on":
                    pub = "; ".join(a if after else b for _, b, a in PUBLISHED_THP) + " ms"
                else:
                    pub = PUBLISHED_NO_THP_HIT if after else "(no task-clock published)"
                saving = f"{100 * (c['ms'] - base) / base:+.0f}%" if after else ""
                rows.append(f"| {reading} | {thp} | {policy} | {c['ms']:.1f} ± {c['sd']:.1f} | "
                            f"{saving} | {c['hit_pct']:.1f}% | {pub} |")
    return "\n".join(rows)


def breakdown(s):
    lines = ["Where the simulated time goes (ms per run, reporting -> pg_zeroed+reporting):"]
    for reading, by_thp in s.items():
        for thp, by_policy in by_thp.items():
            a, b = (by_policy[p]["parts_ms"] for p in POLICIES)
            lines.append(f"- {reading}, THP {thp}: guest clears {a['guest_clear_ns']:.1f} -> "
                         f"{b['guest_clear_ns']:.1f}, fault path {a['fault_ns']:.1f} -> "
                         f"{b['fault_ns']:.1f}, host refaults inside the task "
                         f"{a['host_in_task_ns']:.1f} -> {b['host_in_task_ns']:.1f}, reporting "
                         f"worker (background) {a['background_ns']:.1f} -> "
                         f"{b['background_ns']:.1f}")
    return "\n".join(lines)


def quick_config(cfg):
    """A tiny copy for the test suite: 256 MiB zone (2 GiB where a snapshot's free memory
    needs it), 16 MiB runs, one seed."""
    for w in cfg["workloads"]:
        if w.get("initial_state", "pristine") in ("pristine", "aged"):
            w["pages"] = 1 << 16
        w["params"]["size_mb"] = 16
    cfg["seeds"] = [0]
    cfg["name"] = "upstream_quick"
    return cfg


def run(cfg, out, keep=True):
    """Compare the config's cells into ``out`` and print the summary; with ``keep`` also
    write it there (``upstream.txt``, ``upstream.json``)."""
    compare(cfg, out, progress=False, log=lambda *_: None)
    out, todo = prepare(cfg, out)
    results = collect(cfg, out, todo, log=lambda *_: None)
    s = summary(results)
    text = (f"{table(s)}\n\n{breakdown(s)}\n\ncost profile: {results[0]['cost']['profile']}; "
            f"seeds {cfg['seeds']}" + (f"; full table: {out}/compare.txt" if keep else ""))
    print(text)
    if keep:
        write_text(os.path.join(out, "upstream.txt"), text + "\n")
        write_json(os.path.join(out, "upstream.json"), s)
    return s


def main(argv=None):
    p = OneLineParser(description=__doc__)
    p.add_argument("--out", type=output_folder, help="results folder (default: results/upstream)")
    p.add_argument("--cost-profile", help="cost profile TOML (default: the shipped one)")
    p.add_argument("--quick", action="store_true",
                   help="tiny: 256 MiB zone, 16 MiB runs, one seed (in a scratch folder, "
                        "removed at the end, unless --out)")
    p.add_argument("--json", type=output_file, help="also write the summary here")
    args = p.parse_args(argv)
    config = os.path.join(ROOT, "experiments", "upstream.toml")
    cfg = load_config(config, args.cost_profile)
    if args.json:  # before any work: the result must not replace a file the run reads
        check_output_file("--json", args.json, {"--cost-profile": args.cost_profile,
                                                "config": config, **config_inputs(cfg)})
    if args.quick:
        cfg = quick_config(cfg)
    if args.quick and not args.out:
        with tempfile.TemporaryDirectory(prefix="upstream_quick") as scratch:
            s = run(cfg, scratch, keep=False)
    else:
        s = run(cfg, args.out or os.path.join(ROOT, "results", "upstream"))
    if args.json:
        write_json(args.json, s)
    return 0


if __name__ == "__main__":
    sys.exit(script_main(main))
