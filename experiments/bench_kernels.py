"""Clearing throughput per backend, as a ratio to a contiguous memset of the same memory.

For batches of 1 to 65536 pages: scattered order-0 pages and contiguous order-9 blocks,
cleared by each available backend (GPU backends only on a real GPU). The baseline is measured
in the same run: numpy ``fill(0)`` of the same number of contiguous pages on the host, a device
memset on the GPU. Targets (issue 3): CPU scattered order-0 >= 0.5 of memset, order-9 blocks
>= 0.85; GPU >= 0.8 of the device memset for batches of 16K pages or more.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.run import write_json  # noqa: E402

from kernels.throughput import measure, measured_backends  # noqa: E402

BATCHES = (1, 16, 256, 4096, 16384, 65536)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pool-pages", type=int, default=1 << 17)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    p.add_argument("--json", help="write the rows here (atomically)")
    args = p.parse_args(argv)
    batches = BATCHES
    if args.quick:
        args.pool_pages, args.reps, batches = 2048, 1, (1, 512, 1024)
    rows = []
    for backend in measured_backends(log=print):
        rows += measure(backend, args.pool_pages, batches, args.reps, log=print)
    if args.json:
        write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
