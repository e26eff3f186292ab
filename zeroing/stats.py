"""Summary statistics and Welch's test (SciPy) for the comparison tables of ``report.py``."""
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
    None when it cannot say: n < 2, or no spread in either sample (deterministic runs: the
    report then says so instead of testing)."""
    if len(a) < 2 or len(b) < 2:
        return None
    if np.var(a) == 0 and np.var(b) == 0:
        return None
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return None if math.isnan(p) else p
