"""Summary statistics and mmtests-style comparison tables (SciPy's Welch test)."""
import math

import numpy as np
from scipy import stats


def summarize(values):
    v = np.asarray(values, dtype=float)
    var = float(v.var(ddof=1)) if len(v) > 1 else 0.0
    return {"min": float(v.min()), "amean": float(v.mean()), "stddev": math.sqrt(var),
            "max": float(v.max()), "n": len(v), "var": var}


def welch(a, b):
    """Two-sided p-value of Welch's t-test (``scipy.stats.ttest_ind``, ``equal_var=False``);
    None when it cannot be computed (n < 2).

    Two constant samples (zero variance, as deterministic workloads give) differ
    significantly when their means differ (p = 0) and not at all otherwise (p = 1): SciPy
    returns NaN there.
    """
    if len(a) < 2 or len(b) < 2:
        return None
    if np.var(a) == 0 and np.var(b) == 0:
        return 0.0 if np.mean(a) != np.mean(b) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def gain(value, base, higher_is_better):
    """Percent against the baseline, signed so that + is always better."""
    if base == 0:
        return 0.0 if value == 0 else (math.inf if (value > 0) == higher_is_better else -math.inf)
    pct = (value - base) / abs(base) * 100.0
    return pct if higher_is_better else -pct


def cell(value, pct, significant):
    text = f"{value:12.2f}"
    if pct is None:
        return text + " (   0.00%)"
    p = f"{pct:+7.2f}%" if math.isfinite(pct) else ("   +inf%" if pct > 0 else "   -inf%")
    return text + (f" *{p}*" if significant else f" ({p})")


def compare_table(cfg, results, metrics):
    """mmtests compare style: per workload and metric, rows Min/Amean/Stddev/Max, one column
    per policy, each cell ``value (+x.xx%)`` against the baseline, ``*`` where Welch's test
    (p < 0.05) says the difference is significant."""
    policies = list(cfg["policies"])
    base = cfg["baseline"]
    lines = []
    for w in cfg["workloads"]:
        runs = {p: [r for r in results if r["workload"]["label"] == w["label"]
                    and r["policy_label"] == p] for p in policies}
        if not all(runs.values()):
            continue
        lines.append(f"{w['label']} ({len(cfg['seeds'])} seeds; + is better; * Welch p < 0.05)")
        lines.append(" " * 34 + "".join(f"{p:>24s}" for p in policies))
        names = list(metrics(runs[base][0]))
        for name in names:
            higher = metrics(runs[base][0])[name][1]
            values = {p: [metrics(r)[name][0] for r in runs[p]] for p in policies}
            stats = {p: summarize(values[p]) for p in policies}
            for row in ("min", "amean", "stddev", "max"):
                out = f"{row.capitalize():8s} {name:25s}"
                for p in policies:
                    v = stats[p][row]
                    if p == base or row == "stddev":
                        out += cell(v, None if p == base else 0.0, False) if row != "stddev" \
                            else f"{v:12.2f}           "
                        continue
                    pct = gain(v, stats[base][row], higher)
                    pval = welch(values[p], values[base]) if row == "amean" else None
                    out += cell(v, pct, pval is not None and pval < 0.05)
                lines.append(out.rstrip())
        lines.append("")
    return "\n".join(lines)
