"""Summary statistics and mmtests-style comparison tables (no scipy needed)."""
import math


def summarize(values):
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {"min": min(values), "amean": mean, "stddev": math.sqrt(var), "max": max(values),
            "n": n, "var": var}


def betainc(a, b, x):
    """Regularized incomplete beta I_x(a, b) (continued fraction, Numerical Recipes 6.4)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):
        return 1.0 - betainc(b, a, 1 - x)
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
    f = d
    for m in range(1, 300):
        for k in (0, 1):
            if k == 0:
                num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            else:
                num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
            c = 1.0 + num / c if abs(c) > 1e-300 else 1e-300
            f *= c * d
        if abs(c * d - 1.0) < 1e-12:
            break
    return front * f / a


def welch(a, b):
    """Two-sided p-value of Welch's t-test; None when it cannot be computed (n < 2).

    Two constant samples (zero variance, as deterministic workloads give) differ
    significantly when their means differ (p = 0) and not at all otherwise (p = 1).
    """
    sa, sb = summarize(a), summarize(b)
    if sa["n"] < 2 or sb["n"] < 2:
        return None
    se2 = sa["var"] / sa["n"] + sb["var"] / sb["n"]
    if se2 == 0:
        return 0.0 if sa["amean"] != sb["amean"] else 1.0
    t = (sa["amean"] - sb["amean"]) / math.sqrt(se2)
    df = se2 ** 2 / ((sa["var"] / sa["n"]) ** 2 / (sa["n"] - 1) +
                     (sb["var"] / sb["n"]) ** 2 / (sb["n"] - 1))
    return betainc(df / 2, 0.5, df / (df + t * t))


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
