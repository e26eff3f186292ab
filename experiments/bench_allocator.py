"""Allocator replay speed: 10M events on a 16 GiB machine, compiled vs NUMBA_DISABLE_JIT=1.

Workload: 4M pages, about half allocated in steady state, 80% order-0 and the rest orders 1-3
and 9, pcp on and off. Prints events/s of the compiled path and its speed-up over the same
code interpreted on a prefix, measured in this run (run it with ``--quick`` for a smoke test).
Targets (issue 2): >= 10M events/s, >= 50x the interpreted run.

Against C (issue 12): ``c_ref/buddy.c`` implements the same rules; it is built on demand when
a C compiler is present (skipped with a note otherwise), replays the same stream from the
same booted zone, and must give the same pfn and hint for every call and the same zone
arrays at the end. Rounds alternate the two (same thread, same stream, 16 GiB of pages:
metadata far larger than the caches); the ratio is compiled time over C time per round, the
median printed with its range; each goes first in every other round. Target: >= 0.7 at
16 GiB, pcp off and on. The model's bulk loop prefetches the rows a FREE_REF names
(``bulk.PREFETCH_ROWS`` ahead); buddy.c, the straightforward yardstick, does not.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.run import write_json  # noqa: E402

from allocator import BuddyAllocator, bulk  # noqa: E402
from allocator.opgen import random_ops  # noqa: E402
from allocator.state import ZoneArrays  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "experiments", "c_ref"))
import cref  # noqa: E402

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


def against_c(lib, pages, pcp, ops, rounds):
    """(ratios of C speed achieved per round, compiled events/s, C events/s, identical).
    The C yardstick keeps pcp high fixed (the rules before 6.7's auto-tuning), so the model
    runs with ``pcp_high="fixed"`` here."""
    ratios, rates, crates, same = [], [], [], True
    for r in range(rounds):
        a = BuddyAllocator(pages, pcp=pcp, pcp_high="fixed")
        cz = ZoneArrays(*(x.copy() for x in a.zone))  # the same booted zone
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):  # each goes first every other round
            t = time.perf_counter()
            if which == 0:
                pfn, hint = a.run(ops)
                tn = time.perf_counter() - t
            else:
                done, cpfn, chint = cref.run_ops(lib, cz, ops)
                tc = time.perf_counter() - t
        same = same and done == len(ops) and np.array_equal(pfn, cpfn) and \
            np.array_equal(hint, chint) and all(np.array_equal(x, y) for x, y in zip(a.zone, cz))
        ratios.append(tc / tn)
        rates.append(len(ops) / tn)
        crates.append(len(ops) / tc)
    return ratios, rates, crates, same


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=1 << 22)
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--prefix", type=int, default=100_000, help="events run interpreted")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds against C")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    if args.quick:
        args.pages, args.events, args.prefix, args.rounds = 1 << 14, 50_000, 2_000, 1
    ops = random_ops(args.events, args.pages, seed=1)
    results = {}
    lib = cref.load()
    if lib is None:
        print(f"against C: skipped ({cref.why})")
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
        if lib is not None:
            ratios, rates, crates, same = against_c(lib, args.pages, pcp, ops, args.rounds)
            med = float(np.median(ratios))
            results[name].update(c_ratio=med, c_ratio_min=min(ratios), c_ratio_max=max(ratios),
                                 c_events_per_s=float(np.median(crates)),
                                 c_round_events_per_s=float(np.median(rates)),
                                 c_identical=bool(same), c_rounds=args.rounds)
            print(f"{name:8s}: vs C ({cref.compiler()} {' '.join(cref.CFLAGS[:2])}): compiled "
                  f"{np.median(rates) / 1e6:.2f} M events/s, C {np.median(crates) / 1e6:.2f} M "
                  f"events/s: {med:.2f} of C (median of {args.rounds} rounds, "
                  f"{min(ratios):.2f}-{max(ratios):.2f}); results identical call by call and "
                  f"zone arrays equal: {same}; the model prefetches FREE_REF rows "
                  f"{bulk.PREFETCH_ROWS} ahead, the C does not")
    if args.json:
        write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
