"""The same run on every available backend: counters must agree; time and throughput differ.

Runs one workload under one policy in content mode on each backend that is available here
(numpy, numba, and cuda/cupy on a real GPU), checks that every backend produced the same
counters as metadata mode, and prints wall time, backend time and pages per launch, as a ratio
to the numba (CPU) backend measured in the same run.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.run import write_json  # noqa: E402

from kernels.throughput import measured_backends  # noqa: E402
from zeroing.policy import make_policy  # noqa: E402
from zeroing.run import simulate  # noqa: E402
from zeroing.workloads import make_workload  # noqa: E402

VOLATILE = ("wall_s", "events_per_s", "backend", "mode")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="mixed")
    p.add_argument("--policy", default="init_on_free,pg_zeroed,reporting")
    p.add_argument("--pages", type=int, default=1 << 17)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.quick:
        args.pages, args.events = 4096, 3000
    ev = make_workload(args.workload, args.pages, args.events, seed=0)
    policy = make_policy(args.policy)
    meta = simulate(ev, policy, args.pages)
    ref = {k: v for k, v in meta["counters"].items() if k not in VOLATILE}
    rows = {}
    for backend in measured_backends(log=print):
        r = simulate(ev, policy, args.pages, mode="content", backend=backend.name)
        same = {k: v for k, v in r["counters"].items() if k not in VOLATILE} == ref
        b = r["backend"]
        rows[backend.name] = {"device": b["device"], "wall_s": r["counters"]["wall_s"],
                              "backend_s": b["wall_s"], "launches": b["launches"],
                              "pages_per_launch": b["pages_per_launch"],
                              "gb_per_s": b["pages"] * 4096 / max(b["wall_s"], 1e-9) / 1e9,
                              "counters_match_metadata": same}
    base = rows.get("numba") or next(iter(rows.values()))
    print(f"{args.workload} / {args.policy}: {args.events} events, {args.pages} pages; "
          f"metadata mode {meta['counters']['wall_s']:.3f} s")
    for name, row in rows.items():
        print(f"{name:6s} on {row['device']}: {row['wall_s']:.3f} s "
              f"({base['wall_s'] / row['wall_s']:.2f} x numba), backend {row['backend_s']:.3f} s, "
              f"{row['gb_per_s']:.1f} GB/s, {row['launches']} launches of "
              f"{row['pages_per_launch']:.0f} pages; counters match metadata: "
              f"{row['counters_match_metadata']}")
    if not all(r["counters_match_metadata"] for r in rows.values()):
        print("MISMATCH: a backend disagrees with metadata mode", file=sys.stderr)
        return 1
    if args.json:
        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
