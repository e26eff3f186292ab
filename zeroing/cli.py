"""``zeroing`` command line."""
import argparse
import sys


def main(argv=None):
    p = argparse.ArgumentParser(prog="zeroing", description="PG_zeroed page allocator simulator")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="buddyinfo and zeroed blocks before and after a small mix")
    d.add_argument("--pages", type=int, default=1 << 18)
    d.add_argument("--events", type=int, default=200_000)
    d.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.cmd == "demo":
        from .demo import demo
        demo(args.pages, args.events, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
