"""Replay a 6.18 pcp capture in requests mode with the traced CPUs and timestamps, and print
the model's buddy refills, pcp drains and NR_FREE_PAGES change beside the kernel's.

The kernel's figures come from the trace itself: pages taken from the buddy by
``mm_page_alloc_zone_locked``, pages drained by ``mm_page_pcpu_drain``, and the change of
"pages free" of the Normal zone between the zoneinfo snapshots. The model runs one zone of the
Normal zone's managed pages, its watermarks those of a node with the zoneinfo's other lowmem
zones (DMA, DMA32), its vmstat ticks the trace's where it recorded them
(``workqueue_execute_start`` of ``vmstat_update``), with pcp high auto-tuned (6.18) and fixed
(the rule before 6.7), each from empty lists, from the "before" pagesets with all their pages
put on the order-0 Movable list (the zoneinfo cannot break a CPU's count down by list), and
from the pagesets split over the lists as the trace shows them (``zeroing/pcp_start.py``: a
list the trace refills held what left it before its first refill; what is left of the count
goes on the busiest order-0 list that never ran empty; ``zeroing replay --zoneinfo
--trace-clock`` starts so by default). Usage: ``python experiments/pcp_trace_check.py DIR`` where DIR
holds trace_kmem_*.txt.gz and before_/after_zoneinfo (the project's shared test data beside the
repository: ../shared/testdata/trace-6.18-pcp/nothp128 or thp64; tests/data holds their files
and two captures with the vmstat ticks, for ``zeroing replay --zoneinfo``).
"""
import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.validate import (OneLineParser, UserError, check_output_file, output_file,
                              script_main)  # noqa: E402
from zeroing.policy import make_policy  # noqa: E402
from zeroing.replay import replay  # noqa: E402
from zeroing.run import write_json  # noqa: E402
from zeroing.zoneinfo import normal_zone, other_lowmem_zones  # noqa: E402


def main(argv=None):
    p = OneLineParser(description=__doc__)
    p.add_argument("dir")
    p.add_argument("--json", type=output_file)
    args = p.parse_args(argv)
    traces = glob.glob(os.path.join(args.dir, "trace_kmem_*.txt.gz"))
    needed = [os.path.join(args.dir, f) for f in ("before_zoneinfo", "after_zoneinfo")]
    if not os.path.isdir(args.dir):
        raise UserError(f"{args.dir}: no such folder (a capture folder: trace_kmem_*.txt.gz, "
                        "before_zoneinfo and after_zoneinfo)")
    if not traces or not all(map(os.path.isfile, needed)):
        raise UserError(f"{args.dir}: not a capture folder (it needs trace_kmem_*.txt.gz, "
                        "before_zoneinfo and after_zoneinfo)")
    if len(traces) > 1:
        raise UserError(f"{args.dir}: {len(traces)} traces ({', '.join(sorted(traces))}): "
                        "a capture folder holds one")
    trace = traces[0]
    if args.json:  # before any work: the result must not replace a file of the capture
        check_output_file("--json", args.json, {"trace": trace, "before_zoneinfo": needed[0],
                                                "after_zoneinfo": needed[1]})
    managed, free0, start = normal_zone(os.path.join(args.dir, "before_zoneinfo"))
    others = other_lowmem_zones(os.path.join(args.dir, "before_zoneinfo"))
    _, free1, end = normal_zone(os.path.join(args.dir, "after_zoneinfo"))
    runs = {}
    for pcp_high in ("auto", "fixed"):
        for label, seed, split in (("empty", None, "trace"), ("seeded", start, "movable"),
                                   ("by trace", start, "trace")):
            runs[f"{pcp_high} {label}"] = replay(
                trace, make_policy("baseline"), "requests", nr_pages=managed, trace_clock=True,
                pcp_high=pcp_high, pcp_start=seed, pcp_split=split, other_zones=others)
    r = runs["auto empty"]  # the trace's own figures, the same in every run
    # Taken from the buddy: zone_locked lines, and steals and whole-block claims (extfrag).
    out = {"kernel": {"refill_pages": r["zone_locked_pages"] + r["extfrag_pages"],
                      "drain_pages": r["pcpu_drain_pages"],
                      "nr_free_pages_delta": free1 - free0, "pagesets_before": start,
                      "pagesets_after": end}}
    k = out["kernel"]
    print(f"{os.path.basename(args.dir)}: kernel refill {k['refill_pages']}, drain "
          f"{k['drain_pages']}, NR_FREE_PAGES {free1 - free0:+d}; pcp (count, high) before "
          f"{start}, after {end}")
    for name, r in runs.items():
        m = r["pcp"]
        out[name] = m
        sets = [(s["count"], s["high"]) for s in m["pagesets"]]
        print(f"  model pcp {name:14}: refill {m['refill_pages']}, drain {m['drain_pages']}, "
              f"NR_FREE_PAGES {m['nr_free_pages_delta']:+d}; pcp (count, high) after {sets}")
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    sys.exit(script_main(main))
