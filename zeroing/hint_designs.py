"""Hint designs compared by caller type: the runs, the table and the plot.

One workload (``unaware-user`` with its caller mix) under each design of the June 2026 thread
(``struct_page.py`` says how each writes and reads struct page), in metadata mode and, to
confirm the leaks on real bytes, in content mode. Per design and caller type: hints set,
delivered to a site that skipped a clear, lost before it, stale bits trusted at free, false
"zeroed" claims among them, and leaked pages (the sanitizer: a __GFP_ZERO caller or a fault got
that caller's data).
"""
import os

from . import struct_page as SP
from .policy import make_policy
from .run import simulate, write_json, write_text

#: (label, policy options): the allocation-side design and the free-side signal.
DESIGNS = (
    ("pghint + FPI_ZEROED", {"hint": "pghint", "free_signal": "fpi"}),
    ("pghint + page bit", {"hint": "pghint", "free_signal": "page_bit"}),
    ("lru_bit assign + FPI_ZEROED",
     {"hint": "lru_bit", "pfmemalloc": "assign", "free_signal": "fpi"}),
    ("lru_bit assign + page bit",
     {"hint": "lru_bit", "pfmemalloc": "assign", "free_signal": "page_bit"}),
    ("lru_bit or + FPI_ZEROED", {"hint": "lru_bit", "pfmemalloc": "or", "free_signal": "fpi"}),
    ("lru_bit or + page bit", {"hint": "lru_bit", "pfmemalloc": "or", "free_signal": "page_bit"}),
    ("folio_flag + FPI_ZEROED", {"hint": "folio_flag", "free_signal": "fpi"}),
    ("folio_flag + page bit", {"hint": "folio_flag", "free_signal": "page_bit"}),
)
#: Zeroed blocks come from balloon deflates (FPI_ZEROED); order-0 faults clear at the call site
#: (aliasing caches, and where step 5 of the New design moves the clear for everyone).
BASE_POLICY = "balloon"
BASE_OPTIONS = {"aliasing_cache": True}


def caller_table(by_caller, callers=None):
    """Rows of ``by_caller`` (a result's per caller dict) as aligned text, one caller a row."""
    callers = callers or [c for c in SP.CALLER_NAMES if c in by_caller]
    lines = [f"{'caller':<13}" + "".join(f"{name:>15}" for name in SP.CSTAT_NAMES)]
    for c in callers:
        row = by_caller.get(c, {})
        lines.append(f"{c:<13}" + "".join(f"{row.get(k, 0):>15}" for k in SP.CSTAT_NAMES))
    return "\n".join(lines)


def run_designs(events, nr_pages, mode="metadata", backend="numba", designs=DESIGNS):
    """{label: result} for each design on the same events."""
    out = {}
    for label, options in designs:
        policy = make_policy(BASE_POLICY, **BASE_OPTIONS, **options)
        out[label] = simulate(events, policy, nr_pages, mode=mode, backend=backend)
    return out


def leaks_by_caller(result):
    return {c: row["leaked"] for c, row in result["by_caller"].items()}


def report(meta, content=None):
    """The table: per design, one row per caller type; content mode's leaks beside them."""
    blocks = []
    for label, result in meta.items():
        c = result["counters"]
        head = (f"{label}: leaks {c['zero_leak']} pages, clears skipped {c['zero_skipped']}, "
                f"hints lost {c['zero_hint_lost']}")
        if content is not None:
            same = leaks_by_caller(content[label]) == leaks_by_caller(result)
            head += (f"; content mode leaks {content[label]['counters']['zero_leak']} "
                     f"(per caller as metadata: {same})")
        blocks.append(head + "\n" + caller_table(result["by_caller"]))
    return "\n\n".join(blocks)


def plot(meta, path):
    """Per design, stacked per caller: false "zeroed" claims and leaked pages; hints delivered
    and lost beside them."""
    from .plots import save_figure  # first: it sets the Agg backend
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(meta)
    callers = [c for c in SP.CALLER_NAMES if any(c in r["by_caller"] for r in meta.values())]
    stats = ("hint_delivered", "hint_lost", "false_zeroed", "leaked")
    fig, axes = plt.subplots(1, len(stats), figsize=(4.2 * len(stats), 4.8), sharey=True)
    y = np.arange(len(labels))
    colors = plt.get_cmap("tab10")
    for ax, stat in zip(axes, stats):
        left = np.zeros(len(labels))
        for k, c in enumerate(callers):
            vals = np.array([meta[d]["by_caller"].get(c, {}).get(stat, 0) for d in labels])
            ax.barh(y, vals, left=left, color=colors(k), label=c)
            left += vals
        ax.set_title(stat.replace("_", " ") + " (pages)")
        ax.invert_yaxis()
    axes[0].set_yticks(y, labels)
    axes[-1].legend(title="caller type", fontsize=8, loc="lower right")
    fig.suptitle("Hint designs by caller type (unaware-user)")
    fig.tight_layout()
    save_figure(fig, path)


def _slim(results):
    return {k: {"counters": v["counters"], "by_caller": v["by_caller"]} for k, v in results.items()}


def write_all(out_dir, meta, content, params):
    """table.txt, results.json and by_caller.png in ``out_dir``, each written atomically."""
    os.makedirs(out_dir, exist_ok=True)
    text = report(meta, content)
    write_text(os.path.join(out_dir, "table.txt"), text + "\n")
    write_json(os.path.join(out_dir, "results.json"), {
        "params": params, "policy": BASE_POLICY, "options": BASE_OPTIONS,
        "metadata": _slim(meta),
        "content": None if content is None else _slim(content),
    })
    plot(meta, os.path.join(out_dir, "by_caller.png"))
    return text
