"""The 6.18 pcp capture (128 MiB faulted without THP, unmapped, 2 s idle; 2 vCPUs), replayed
in requests mode with its CPUs and timestamps: the kernel drained only 2826 pages from the
per-cpu lists and left most of the freed memory on them. Auto-tuned lists reproduce that
shape; a fixed high drains ten times as much."""
import os

from zeroing.policy import make_policy
from zeroing.replay import replay

TRACE = os.path.join(os.path.dirname(__file__), "data", "trace_kmem_6.18_nothp128.txt.gz")
NORMAL_MANAGED = 5394266  # "managed" of the Normal zone in pcp_nothp128_before_zoneinfo-6.18
KERNEL_DRAIN = 2826  # mm_page_pcpu_drain pages in the trace


def run(pcp_high):
    r = replay(TRACE, make_policy("baseline"), "requests", nr_pages=NORMAL_MANAGED,
               trace_clock=True, pcp_high=pcp_high)
    assert r["events"]["mm_page_pcpu_drain"] == KERNEL_DRAIN
    return r["pcp"]


def test_auto_tuned_lists_keep_the_free_burst_like_the_kernel():
    auto, fixed = run("auto"), run("fixed")
    assert auto["drain_pages"] < 2 * KERNEL_DRAIN
    assert fixed["drain_pages"] > 5 * KERNEL_DRAIN
    # The kernel's CPU 1 ended with 48347 pages on its lists; the model's busy CPU keeps most
    # of the 32768 freed pages (it started from empty lists), the fixed high at most 5019.
    assert max(s["count"] for s in auto["pagesets"]) > 25000
    assert max(s["count"] for s in fixed["pagesets"]) <= 5019
