"""Hint designs by caller type: the table and the plot, in one command.

Runs ``unaware-user`` (its caller mix: ``--callers``) under each hint design of the June 2026
thread (``zeroing/hint_designs.py``), in metadata mode and then in content mode on a CPU
backend, where every leak is a page whose real bytes the sanitizer found non-zero. Prints the
table (per design, one row per caller type), and whether content mode found exactly the leaks
metadata mode counted, per caller type; writes table.txt, results.json and by_caller.png to
``--out`` (default results/hint_designs/). Exit status 1 when the two modes disagree.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.validate import (Int, MAX_PFNS, OneLineParser, RULES, arg, check_memory,
                              check_workload, output_file, output_folder,
                              script_main)  # noqa: E402
from zeroing.hint_designs import leaks_by_caller, run_designs, write_all  # noqa: E402
from zeroing.run import write_json  # noqa: E402
from zeroing.workloads import make_workload  # noqa: E402
from zeroing.workloads.unaware import DEFAULT_CALLERS  # noqa: E402


def main(argv=None):
    p = OneLineParser(description=__doc__)
    p.add_argument("--pages", type=arg(Int(1024, MAX_PFNS)), default=1 << 16)
    p.add_argument("--events", type=arg(Int(1, 10**9)), default=200_000)
    p.add_argument("--seed", type=arg(RULES["seed"]), default=0)
    p.add_argument("--callers", default=DEFAULT_CALLERS, help="caller mix, NAME=WEIGHT,...")
    p.add_argument("--backend", default="numba", choices=("numpy", "numba"),
                   help="content mode backend (CPU)")
    p.add_argument("--no-content", action="store_true", help="metadata mode only")
    p.add_argument("--out", type=output_folder, default=os.path.join("results", "hint_designs"))
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    p.add_argument("--json", type=output_file, help="also write the results object here")
    args = p.parse_args(argv)
    if args.quick:
        p.quick(args, pages=4096, events=6000)
    if args.no_content and p.was_given("backend"):
        p.error(f"--backend {args.backend}: has no effect with --no-content")
    if args.json:  # before any work: not a file --out gets (the two would replace each other)
        for name in ("table.txt", "results.json", "by_caller.png"):
            if os.path.realpath(args.json) == os.path.realpath(os.path.join(args.out, name)):
                p.error(f"--json: {args.json} is the {name} written into --out: name another "
                        "file")
    # The caller mix by the workload's own parser, named as the option it came from.
    check_workload("unaware-user", "unaware-user", {"callers": args.callers},
                   lambda k: "--callers")
    check_memory(("--pages", "--events"), args.pages, "metadata" if args.no_content
                 else "content", args.backend, events=args.events)
    try:
        events = make_workload("unaware-user", args.pages, args.events, args.seed,
                               callers=args.callers)
    except ValueError as e:
        p.error(str(e))
    meta = run_designs(events, args.pages)
    content = None if args.no_content else run_designs(events, args.pages, "content", args.backend)
    params = {"pages": args.pages, "events": args.events, "seed": args.seed,
              "callers": args.callers, "backend": args.backend}
    print(f"unaware-user: {args.events} events, {args.pages} pages, seed {args.seed}, "
          f"callers {args.callers}")
    print(write_all(args.out, meta, content, params))
    ok = True
    if content is not None:
        ok = all(leaks_by_caller(content[k]) == leaks_by_caller(meta[k]) for k in meta)
        print(f"content mode confirms every leak metadata mode counts: {ok}")
    print(f"table, results.json and by_caller.png in {args.out}/")
    if args.json:
        write_json(args.json, {"params": params, "confirmed": ok,
                               "by_caller": {k: v["by_caller"] for k, v in meta.items()}})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(script_main(main))
