"""PNG plots of a comparison (matplotlib, no display needed)."""
import os
import warnings

import matplotlib

matplotlib.use("Agg")
# A label in a script the font lacks (CJK, emoji) is drawn as boxes: that is no reason for a
# warning per glyph, with its source line, on stderr.
warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .counters import SITES  # noqa: E402

SITE_LABELS = {"zero_free": "free (init_on_free)", "zero_alloc": "post_alloc_hook",
               "zero_user": "user fault site", "zero_offload": "offload zeroer",
               "zero_host": "host (free)"}


def _mean(results, key):
    return float(np.mean([r["counters"][key] for r in results])) if results else 0.0


def _runs(results, workload, policy):
    return [r for r in results if r["workload"]["label"] == workload and r["policy_label"] == policy]


def _label_policies(ax, workload, ylabel):
    """A per-workload panel with a bar per policy: its title, y label and slanted names."""
    ax.set_title(workload, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=30, labelsize=8)


def _save(fig, axes, path, legend_size):
    """The legend on the first panel, then the figure laid out, written and closed."""
    if axes[0][0].get_legend_handles_labels()[0]:  # nothing drawn (no allocation): no legend
        axes[0][0].legend(fontsize=legend_size)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path, dpi=110):
    """Write the figure atomically (a temporary beside it, then a rename) and close it."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp.{os.getpid()}{ext}"  # the suffix tells savefig the format
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def plot_sites(cfg, results, path):
    """Pages cleared per site, stacked per policy; one panel per workload."""
    workloads = [w["label"] for w in cfg["workloads"]]
    policies = list(cfg["policies"])
    fig, axes = plt.subplots(1, len(workloads), figsize=(4.5 * len(workloads), 4.2), squeeze=False)
    for ax, wl in zip(axes[0], workloads):
        bottom = np.zeros(len(policies))
        for site in SITES:
            vals = np.array([_mean(_runs(results, wl, p), site) for p in policies])
            ax.bar(policies, vals, bottom=bottom, label=SITE_LABELS[site],
                   hatch="//" if site == "zero_host" else None)
            bottom += vals
        skipped = np.array([_mean(_runs(results, wl, p), "zero_skipped") for p in policies])
        ax.scatter(policies, skipped, marker="x", color="black", zorder=3, label="clears skipped")
        _label_policies(ax, wl, "pages (mean over seeds)")
    _save(fig, axes, path, legend_size=7)


#: Where time went, stacked per policy: (label, cost key, by_site key or None, hatch).
TIME_PARTS = (("guest clear: free (init_on_free)", "by_site", "free", None),
              ("guest clear: post_alloc_hook", "by_site", "alloc", None),
              ("guest clear: user fault site", "by_site", "user", None),
              ("fault path (fixed)", "fault_ns", None, None),
              ("host: EPT refault + clear", "host_ns", None, "//"),
              ("background: reporting", "background_ns", None, ".."),
              ("offload device", "offload_device_ns", None, "xx"))


def plot_time(cfg, results, path):
    """Simulated time per site and account (ms, mean over seeds), stacked per policy; one
    panel per workload. The task's clock is marked: what is above it ran elsewhere."""
    workloads = [w["label"] for w in cfg["workloads"]]
    policies = list(cfg["policies"])
    fig, axes = plt.subplots(1, len(workloads), figsize=(4.8 * len(workloads), 4.4), squeeze=False)
    for ax, wl in zip(axes[0], workloads):
        bottom = np.zeros(len(policies))
        for label, key, sub, hatch in TIME_PARTS:
            vals = np.array([np.mean([(r["cost"][key][sub] if sub else r["cost"][key]) / 1e6
                                      for r in _runs(results, wl, p)] or [0.0])
                             for p in policies])
            ax.bar(policies, vals, bottom=bottom, label=label, hatch=hatch)
            bottom += vals
        task = [np.mean([r["cost"]["task_clock_ns"] / 1e6 for r in _runs(results, wl, p)] or [0.0])
                for p in policies]
        ax.scatter(policies, task, marker="_", s=400, color="black", zorder=3,
                   label="task-clock")
        _label_policies(ax, wl, "simulated ms (mean over seeds)")
    _save(fig, axes, path, legend_size=6)


def plot_hit_rate(cfg, results, path):
    """Share of allocations served zeroed (the hint set), by order, per policy: a point per
    order somebody allocated, and no line across orders nobody did (a line from order 0 to
    order 9 would claim a rate for orders 1..8 that has no allocation behind it)."""
    workloads = [w["label"] for w in cfg["workloads"]]
    fig, axes = plt.subplots(1, len(workloads), figsize=(4.5 * len(workloads), 4), squeeze=False)
    for ax, wl in zip(axes[0], workloads):
        for p in cfg["policies"]:
            runs = _runs(results, wl, p)
            allocs = np.sum([r["by_order"]["allocs"] for r in runs], axis=0)
            zeroed = np.sum([r["by_order"]["zeroed"] for r in runs], axis=0)
            orders = np.flatnonzero(allocs)
            if len(orders):
                ax.plot(orders, 100.0 * zeroed[orders] / allocs[orders], marker="o", ls="none",
                        label=p, alpha=0.8)
        ax.set_title(wl, fontsize=10)
        ax.set_xlabel("order")
        ax.set_xticks(range(0, 11))
        ax.set_xlim(-0.5, 10.5)
        ax.set_ylabel("allocations served zeroed (%)")
        ax.set_ylim(-2, 102)
    _save(fig, axes, path, legend_size=7)


def plot_throughput(rows, path):
    """Clearing GB/s against batch size, per backend and layout, with the memset baselines."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for key in sorted({(r["backend"], r["layout"]) for r in rows}):
        sel = [r for r in rows if (r["backend"], r["layout"]) == key]
        ax.plot([r["pages"] for r in sel], [r["gb_per_s"] for r in sel], marker="o",
                label=f"{key[0]} ({sel[0]['device']}), {key[1]}")
    for backend in sorted({r["backend"] for r in rows}):
        sel = [r for r in rows if r["backend"] == backend and r["layout"] == "scattered order-0"]
        ax.plot([r["pages"] for r in sel], [r["memset_gb_per_s"] for r in sel], ls=":",
                color="grey", label=f"{backend} memset baseline")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("pages per batch")
    ax.set_ylabel("GB/s")
    _save(fig, [[ax]], path, legend_size=7)


def write_plots(cfg, results, out):
    written = []
    plot_sites(cfg, results, os.path.join(out, "cleared_by_site.png"))
    written.append("cleared_by_site.png")
    plot_hit_rate(cfg, results, os.path.join(out, "hit_rate_by_order.png"))
    written.append("hit_rate_by_order.png")
    if all("cost" in r for r in results):
        plot_time(cfg, results, os.path.join(out, "time_by_site.png"))
        written.append("time_by_site.png")
    if cfg.get("throughput"):
        from kernels.throughput import measure, measured_backends
        rows = []
        for backend in measured_backends():
            if backend.name != "numpy":
                rows += measure(backend, 1 << 14, (1, 16, 256, 4096, 16384), reps=2)
        from .run import write_json
        write_json(os.path.join(out, "throughput.json"), rows)
        plot_throughput(rows, os.path.join(out, "clearing_throughput.png"))
        written.append("clearing_throughput.png")
    return written
