"""The upstream PG_zeroed benchmark, simulated, beside the published figures.

Runs ``experiments/upstream.toml`` (resumable: complete cells are not redone) and prints, per
THP setting and policy, the simulated task-clock of one run of the benchmark program (rounds
2-4: ``(T(4 rounds) - T(1 round)) / 3``, the streams share round 1 exactly) and the share of
fault allocations served zeroed in those rounds, next to the figures the postings published
(experiments/UPSTREAM.md cites them). Nothing is fitted: the cost profile is the default one.
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.compare import collect, compare, load_config, prepare  # noqa: E402

#: Published task-clock (ms) of the 256 MiB fault-in with THP, before -> after.
PUBLISHED_THP = (("RFC v1, Apr 2026", "179", "99"), ("RFC v2, Apr 2026", "191 ± 31", "60 ± 35"),
                 ("37-patch posting on 7.1-rc2", "232 ± 20", "51 ± 26"))
PUBLISHED_NO_THP_HIT = "~21% of order-0 allocations from reported pages"


def per_run(results, thp, policy):
    """(task-clock ms mean, sd over seeds, hit % of faults) of one run in rounds 2-4."""
    def pick(rounds):
        label = f"THP {'on' if thp else 'off'}, {rounds} round{'s' if rounds > 1 else ''}"
        return {r["seed"]: r for r in results
                if r["workload"]["label"] == label and r["policy_label"] == policy}
    one, four = pick(1), pick(4)
    order = 9 if thp else 0
    ms, hits = [], []
    for seed in sorted(one):
        a, b = one[seed], four[seed]
        ms.append((b["cost"]["task_clock_ns"] - a["cost"]["task_clock_ns"]) / 3 / 1e6)
        allocs = b["by_order"]["allocs"][order] - a["by_order"]["allocs"][order]
        zeroed = b["by_order"]["zeroed"][order] - a["by_order"]["zeroed"][order]
        hits.append(100.0 * zeroed / max(1, allocs))
    return float(np.mean(ms)), float(np.std(ms, ddof=1)) if len(ms) > 1 else 0.0, float(np.mean(hits))


def table(results):
    rows = ["| THP | policy | simulated task-clock per run (ms) | faults served zeroed | published |",
            "| --- | --- | --- | --- | --- |"]
    for thp in (True, False):
        for policy, published in (("reporting", "before"), ("pg_zeroed+reporting", "after")):
            mean, sd, hit = per_run(results, thp, policy)
            if thp:
                pub = "; ".join(f"{name}: {b if published == 'before' else a} ms"
                                for name, b, a in PUBLISHED_THP)
            else:
                pub = PUBLISHED_NO_THP_HIT if published == "after" else "(no task-clock published)"
            rows.append(f"| {'on' if thp else 'off'} | {policy} | {mean:.1f} ± {sd:.1f} | "
                        f"{hit:.1f}% | {pub} |")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(ROOT, "results", "upstream"))
    p.add_argument("--cost-profile", help="cost profile TOML (default: the shipped one)")
    args = p.parse_args(argv)
    cfg = load_config(os.path.join(ROOT, "experiments", "upstream.toml"), args.cost_profile)
    compare(cfg, args.out, progress=False, log=lambda *_: None)
    out, todo = prepare(cfg, args.out)
    results = collect(cfg, out, todo, log=lambda *_: None)
    print(table(results))
    print(f"\ncost profile: {results[0]['cost']['profile']}; full table: {out}/compare.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
