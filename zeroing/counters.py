"""The engine's counters: one array indexed by these constants; names are the JSON keys."""
NAMES = (
    "pgalloc", "pgfree", "alloc_fail",
    "zero_free", "zero_alloc", "zero_user", "zero_offload", "zero_host",
    "zero_skipped", "zero_redundant", "zero_leak", "zero_hint_lost", "zeroed_dropped_merge",
    "zero_checked", "hint_hits", "alloc_blocks", "reporting_passes", "reported_pages",
    "bad_page", "replay_miss", "replay_adopted", "thp_fault_fallback",
)
globals().update({name.upper(): i for i, name in enumerate(NAMES)})
NR_COUNTERS = len(NAMES)

#: Counters that are page counts of clearing work, per site (for plots and summaries).
SITES = ("zero_free", "zero_alloc", "zero_user", "zero_offload", "zero_host")


def as_dict(array):
    return {name: int(array[i]) for i, name in enumerate(NAMES)}


def vmstat_lines(counters):
    """vmstat-style ``name value`` lines; all simulator-only, hence the ``zsim_`` prefix."""
    return "\n".join(f"zsim_{name} {counters[name]}" for name in NAMES)
