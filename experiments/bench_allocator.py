"""Allocator replay speed: 10M events on a 16 GiB machine, compiled vs NUMBA_DISABLE_JIT=1.

Workload: 4M pages, about half allocated in steady state, 80% order-0 and the rest orders 1-3
and 9, pcp on and off. Prints events/s of the compiled path and its speed-up over the same
code interpreted on a prefix, measured in this run (run it with ``--quick`` for a smoke test).
Targets (issue 2): >= 10M events/s, >= 50x the interpreted run.
"""
import argparse
import os
import subprocess
import sys
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.run import write_json  # noqa: E402

from allocator import BuddyAllocator  # noqa: E402
from allocator.opgen import random_ops  # noqa: E402

INTERPRETED = """
import sys, time, numpy as np
sys.path.insert(0, {root!r})
from allocator import BuddyAllocator
from allocator.opgen import random_ops
ops = random_ops({n}, {pages}, seed=1)[:{prefix}]
a = BuddyAllocator({pages}, pcp={pcp})
t = time.perf_counter(); a.run(ops); print(time.perf_counter() - t)
"""


def warm_state(pages, pcp, ops, warmup):
    a = BuddyAllocator(pages, pcp=pcp)
    a.run(ops[:warmup])
    return a


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=1 << 22)
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--prefix", type=int, default=100_000, help="events run interpreted")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    if args.quick:
        args.pages, args.events, args.prefix = 1 << 14, 50_000, 2_000
    ops = random_ops(args.events, args.pages, seed=1)
    results = {}
    for pcp in (True, False):
        a = BuddyAllocator(args.pages, pcp=pcp)
        a.run(ops[:1000])  # compile outside the timing
        a = BuddyAllocator(args.pages, pcp=pcp)
        t = time.perf_counter()
        a.run(ops)
        compiled_s = time.perf_counter() - t
        a.check()
        rate = args.events / compiled_s
        # The interpreted baseline runs the prefix in a child with NUMBA_DISABLE_JIT=1.
        code = INTERPRETED.format(root=ROOT, n=args.events, pages=args.pages,
                                  prefix=args.prefix, pcp=pcp)
        env = dict(os.environ, NUMBA_DISABLE_JIT="1")
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                             capture_output=True, text=True).stdout
        interp_rate = args.prefix / float(out.strip().splitlines()[-1])
        # Same prefix compiled, for a like-for-like ratio.
        b = BuddyAllocator(args.pages, pcp=pcp)
        t = time.perf_counter()
        b.run(ops[: args.prefix])
        prefix_rate = args.prefix / (time.perf_counter() - t)
        s = a.stats()
        name = "pcp on" if pcp else "pcp off"
        results[name] = {
            "events_per_s": rate, "interpreted_events_per_s": interp_rate,
            "speedup_prefix": prefix_rate / interp_rate, "speedup_full": rate / interp_rate,
            "bytes_per_page": a.bytes_per_page(), "fill": s["nr_allocated"] / args.pages,
            "alloc_fail": s["alloc_fail"],
        }
        print(f"{name:8s}: {rate / 1e6:6.2f} M events/s compiled ({args.events:,} events, "
              f"{args.pages:,} pages, {s['nr_allocated'] / args.pages:.0%} allocated at end); "
              f"interpreted {interp_rate / 1e3:.1f} K events/s on {args.prefix:,}; "
              f"speed-up {rate / interp_rate:.0f}x (same prefix: {prefix_rate / interp_rate:.0f}x); "
              f"{a.bytes_per_page():.2f} bytes/page")
    if args.json:
        write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
