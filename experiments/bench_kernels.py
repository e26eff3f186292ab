"""Clearing throughput per backend, as a ratio to a contiguous memset of the same memory.

For batches of 1 to 65536 pages: scattered order-0 pages and contiguous order-9 blocks,
cleared by each available backend (GPU backends only on a real GPU). The baseline is measured
in the same run with the same threads and stores (see ``kernels/throughput.py``): numpy
``fill(0)``, numba's parallel fill, a device memset on the GPU, over a pool >= 4x the cache.
Targets: CPU scattered order-0 >= 0.5 of memset, order-9 blocks >= 0.85 (issue 3); GPU
scattered order-0 >= 0.8 and order-9 >= 0.9 for batches of 16K pages or more (issue 11).
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.validate import (Int, MAX_PFNS, Many, Names, OneLineParser, arg,
                              output_file, script_main)  # noqa: E402
from zeroing.run import write_json  # noqa: E402

from kernels import BACKENDS  # noqa: E402
from kernels.throughput import measure, measured_backends  # noqa: E402

BATCHES = (1, 16, 256, 4096, 16384, 65536)


def main(argv=None):
    p = OneLineParser(description=__doc__)
    p.add_argument("--pool-pages", type=arg(Int(16, MAX_PFNS)), default=1 << 17)
    p.add_argument("--reps", type=arg(Int(1, 1000)), default=5)
    p.add_argument("--backends", type=arg(Names(*BACKENDS)),
                   help="comma-separated names to time (default: all available)")
    p.add_argument("--batches", type=arg(Many(Int(1, MAX_PFNS))), help="comma-separated pages per call (default: %s)"
                   % ",".join(map(str, BATCHES)))
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    p.add_argument("--json", type=output_file, help="write the rows here (atomically)")
    args = p.parse_args(argv)
    if args.quick:
        p.quick(args, pool_pages=2048, reps=1, batches=[1, 512, 1024])
    batches = tuple(args.batches) if args.batches else BATCHES
    wanted = set(args.backends) if args.backends else None
    rows = []
    for backend in measured_backends(log=print, only=wanted):
        rows += measure(backend, args.pool_pages, batches, args.reps, log=print)
    if args.json:
        write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    sys.exit(script_main(main))
