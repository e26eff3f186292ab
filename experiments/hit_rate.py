"""Run experiments/hit_rate.toml (resuming complete cells) and report the order-0 and THP
served-zeroed shares against pcp rule, starting state (pristine, aged, or a snapshot file,
shown by its name) and rounds: a table (hit_rate.txt) and a plot (hit_rate_shares.png) in
the results folder.

Share = allocations handed out with the zeroed hint / allocations, per order (the engine's
``by_order`` counts, mean over seeds). THP off: order-0 faults; THP on: order-9 faults.
"""
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from zeroing.validate import (OneLineParser, UserError, check_output_file, output_file,
                              output_folder, script_main)  # noqa: E402
from zeroing.compare import compare, config_inputs, load_config  # noqa: E402
from zeroing.run import write_json, write_text  # noqa: E402


def load_results(cfg, out):
    """The runs of this config's cells (not whatever else the folder holds)."""
    import json
    from zeroing.compare import cell_id, cells
    results = []
    for w, label, seed in cells(cfg):
        with open(os.path.join(out, "runs", cell_id(w, label, seed) + ".json")) as f:
            results.append(json.load(f))
    return results


def check_config(where, cfg):
    """The table needs one policy and vm-anon workloads that set thp and rounds."""
    if len(cfg["policies"]) != 1:
        raise UserError(f"{where}: {len(cfg['policies'])} policies: the table is of one")
    seen = {}
    for i, w in enumerate(cfg["workloads"]):
        if w["name"] != "vm-anon" or not {"thp", "rounds"} <= set(w["params"]):
            raise UserError(f"{where}: workload[{i}] ({w['label']}): the table reads vm-anon "
                            "workloads that set thp and rounds")
        if w["pages"] != cfg["workloads"][0]["pages"]:
            raise UserError(f"{where}: workload[{i}] ({w['label']}): a zone of {w['pages']} "
                            f"pages, workload[0] one of {cfg['workloads'][0]['pages']}: the "
                            "table is of one zone size")
        cell = (w["params"]["thp"], w["pcp_high"], w["initial_state"], w["params"]["rounds"])
        if cell in seen:  # its runs would be averaged with the other's as if seeds
            raise UserError(f"{where}: workload[{i}] ({w['label']}) and workload[{seen[cell]}] "
                            "fall in one cell of the table (thp, pcp_high, initial_state, "
                            "rounds): the table cannot tell them apart")
        seen[cell] = i


def shares(results):
    """{(thp, pcp, state): {rounds: (order-0 share, THP share)}}."""
    cells = {}
    for r in results:
        w = r["workload"]
        thp = w["params"]["thp"]  # validated configs hold it as a bool
        state = w["initial_state"]  # a snapshot by its file's name
        state = state if state in ("pristine", "aged") else os.path.basename(state.split(",")[0])
        key = ({True: "on", False: "off"}.get(thp, thp), w["pcp_high"], state)
        o = r["by_order"]
        cells.setdefault(key, {}).setdefault(w["params"]["rounds"], []).append(
            (o["zeroed"][0] / max(1, o["allocs"][0]), o["zeroed"][9] / max(1, o["allocs"][9])))
    return {k: {n: tuple(np.mean(v, axis=0)) for n, v in sorted(d.items())}
            for k, d in sorted(cells.items())}


def quick_config():
    """The tiny config of --quick: 256 MiB zone, 16 MiB rounds, rounds 1 and 3, one seed."""
    from zeroing.compare import resolve_config
    raw = {"name": "hit_rate_quick", "seeds": [0], "throughput": False,
           "policies": {"pg_zeroed+reporting": "pg_zeroed,reporting"}, "workload": [
               {k: v for k, v in w.items() if k != "label"}
               | {"label": w["label"], "pages": 1 << 16, "size_mb": 16}
               for w in ({"name": "vm-anon", "label": f"{t} {p} {s} {n}", "thp": t,
                          "rounds": n, "pcp_high": p, "initial_state": s}
                         for t in ("off", "on") for p in ("auto", "fixed")
                         for s in ("pristine", "aged") for n in (1, 3))]}
    return resolve_config(raw)


def plot(table, path):
    """The shares against rounds, a panel per THP setting; a panel the config has no
    workloads for says so (and has no legend: nothing in it is labelled)."""
    from zeroing.plots import save_figure  # first: it sets the Agg backend
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharey=True)
    for ax, thp in zip(axes, ("off", "on")):
        for (t, pcp, state), by_rounds in table.items():
            if t != thp:
                continue
            n = sorted(by_rounds)
            ax.plot(n, [by_rounds[k][0 if thp == "off" else 1] for k in n], marker="o",
                    linestyle="-" if pcp == "auto" else "--", label=f"pcp {pcp}, {state}")
        ax.set_title(f"THP {thp}: {'order-0' if thp == 'off' else 'order-9'} faults served zeroed")
        ax.set_xlabel("rounds")
        ax.set_xticks(sorted({n for d in table.values() for n in d}))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
        else:
            ax.set_xticks([])
            ax.text(0.5, 0.5, f"no workload with THP {thp} in the config", ha="center",
                    va="center", transform=ax.transAxes)
    axes[0].set_ylabel("share of faults")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def run(cfg, out, keep=True):
    """Compare the config's cells into ``out`` and print the table; with ``keep`` also write
    it and the plot there. The summary."""
    out = compare(cfg, out, progress=False, log=lambda *a: None)
    table = shares(load_results(cfg, out))
    mib = cfg["workloads"][0]["pages"] >> 8
    width = max(9, *(len(state) for _, _, state in table))
    lines = [f"served zeroed (pg_zeroed+reporting, vm-anon {mib} MiB zone, mean of seeds "
             f"{cfg['seeds']}): order-0 share with THP off, order-9 share with THP on",
             f"{'THP':4} {'pcp':6} {'state':{width}} " + " ".join(
                 f"rounds={n:<3}" for n in sorted({n for d in table.values() for n in d}))]
    for (thp, pcp, state), by_rounds in table.items():
        col = 0 if thp == "off" else 1
        lines.append(f"{thp:4} {pcp:6} {state:{width}} " + " ".join(
            f"{by_rounds[n][col]:10.1%}" for n in sorted(by_rounds)))
    text = "\n".join(lines)
    print(text)
    summary = {" ".join(k): {str(n): v for n, v in d.items()} for k, d in table.items()}
    if keep:
        write_text(os.path.join(out, "hit_rate.txt"), text + "\n")
        write_json(os.path.join(out, "hit_rate.json"), summary)
        plot(table, os.path.join(out, "hit_rate_shares.png"))
        print(f"table and plot in {out}/")
    return summary


def main(argv=None):
    p = OneLineParser(description=__doc__)
    p.add_argument("--config", default=os.path.join(ROOT, "experiments", "hit_rate.toml"))
    p.add_argument("--out", type=output_folder)
    p.add_argument("--quick", action="store_true",
                   help="tiny: 256 MiB zone, 16 MiB rounds, rounds 1 and 3, one seed (in a "
                        "scratch folder, removed at the end, unless --out)")
    p.add_argument("--json", type=output_file)
    args = p.parse_args(argv)
    if args.quick and p.was_given("config"):
        p.error("--config: has no effect with --quick (which runs a tiny config of its own)")
    cfg = load_config(args.config)
    check_config(f"--config {args.config}", cfg)
    if args.json:  # before any work: the result must not replace a file the config reads
        check_output_file("--json", args.json, {"--config": args.config, **config_inputs(cfg)})
    if args.quick:
        cfg = quick_config()
    if args.quick and not args.out:
        with tempfile.TemporaryDirectory(prefix="hit_rate_quick") as scratch:
            summary = run(cfg, scratch, keep=False)
    else:
        summary = run(cfg, args.out)
    if args.json:
        write_json(args.json, summary)
    return summary


if __name__ == "__main__":
    sys.exit(script_main(main))
