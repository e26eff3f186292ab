"""Reading a kmem trace: the compiled reader (zeroing/trace_scan.py) against the Python one.

A plain-text trace of ``--lines`` kmem lines (the 6.18 nothp128_sleep8 capture's lines,
repeated; about 150 bytes each, so the default 10^6 lines is 150 MB, well beyond any
last-level cache) is read with ``read_events(detail=True)`` (as a ``--trace-clock`` replay
reads it) by each reader in alternating rounds, on this one thread: lines per second, best
of the rounds, and the ratio. Both give the same rows (checked here on the first 10^5, and
line for line by tests/test_trace_scan.py). Beside them, the rate of only reading and
decoding the file (``_blocks``): no reader can beat it.

Then what a replay does with the rows: turning them into engine events (``TraceConverter``)
and reading the per-cpu lists' start from them (``TraceLists``), both compiled, against the
plain-Python code they replaced (``tests/reference_convert.py``, ``reference_pcp_start.py``),
each reading the same kept rows (``Spooled``: blocks of columns, or rows as the Python code
took them), alternating; whether their outputs are the same.

Then a replay as ``zeroing replay --trace-clock --zoneinfo --replay-mode requests`` runs it
(the capture's zoneinfo: the per-cpu lists start from its pagesets), which reads the trace
four times (to size the zone, twice for the lists' start, to run): parsed once and kept
(``trace.Spooled``) against parsed each time, alternating, with ``read_events``' cache of
small traces off (as for any trace beyond it); whether the results are the same.
"""
import gzip
import hashlib
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the plain-Python references

import numpy as np  # noqa: E402

from zeroing import trace  # noqa: E402
from zeroing.run import write_json  # noqa: E402
from zeroing.trace_scan import python_only  # noqa: E402
from zeroing.validate import (Int, OneLineParser, UserError, arg, check_output_file,  # noqa: E402
                              script_main)

CAPTURE = os.path.join(ROOT, "tests", "data", "trace_kmem_6.18_nothp128_sleep8.txt.gz")
ZONEINFO = os.path.join(ROOT, "tests", "data", "pcp_sleep8_before_zoneinfo-6.18")


def make_trace(path, lines):
    """``lines`` kmem lines of the capture, repeated, in a plain file; its size in bytes."""
    with gzip.open(CAPTURE, "rt") as f:
        kmem = [line for line in f if ": mm_page_" in line]
    with open(path, "w") as out:
        for k in range(lines // len(kmem)):
            out.writelines(kmem)
        out.writelines(kmem[:lines % len(kmem)])
    return os.path.getsize(path)


def read(path):
    """The rows of ``read_events(path, detail=True)``, parsed afresh (never its cache)."""
    return trace._parse(path, False, None, {}, None, True)


def rate(path, reader):
    """(lines per second, rows) of one read; ``reader`` "compiled", "python" or "decode"."""
    start = time.perf_counter()
    if reader == "decode":
        with trace.open_trace(path) as f:
            n = sum(text.count("\n") for _, text, _ in trace._blocks(f, False, {}, None))
        return n / (time.perf_counter() - start), n
    rows = 0
    for _ in read(path):
        rows += 1
    return rows / (time.perf_counter() - start), rows


def convert_s(rows, compiled):
    """(seconds, digest of the output) of converting the kept ``rows`` (a ``Spooled`` with
    ``detail``) to events and of reading the lists' start from them, by ``compiled`` code or
    the Python references; the engine stood in for by an arbitrary placement."""
    from reference_convert import TraceConverter as ReferenceConverter
    from reference_pcp_start import ReferenceLists
    from zeroing.pcp_start import TraceLists
    from zeroing.replay import TraceConverter
    digest = hashlib.blake2b(digest_size=16)
    start = time.perf_counter()
    if compiled:
        conv, source = TraceConverter("requests", trace_clock=True), rows.read_columns()
    else:
        conv, source = ReferenceConverter("requests", trace_clock=True), rows.read()
    for chunk in conv.chunks(source, 1 << 20):
        conv.settle(np.arange(len(chunk), dtype=np.int64))
        digest.update(chunk.tobytes())

    def pindex(order, mt):
        return 3 * order + mt if order < 9 else 12 + (mt == 1)
    if compiled:
        lists = TraceLists.from_columns(rows.read_columns, pindex)
    else:
        lists = ReferenceLists.from_trace(rows.read, pindex)
    took = time.perf_counter() - start
    digest.update(repr((conv.info("t"), lists.lists, lists.unknown_frees)).encode())
    return took, digest.hexdigest()


def replay_s(path, spool):
    """(seconds, result without its timings) of a seeded ``--trace-clock`` replay."""
    from zeroing.policy import make_policy
    from zeroing.replay import replay
    from zeroing.zoneinfo import normal_zone, other_lowmem_zones
    managed, _, pagesets = normal_zone(ZONEINFO)
    start = time.perf_counter()
    result = replay(path, make_policy("init_on_free,pg_zeroed"), "requests", nr_pages=managed,
                    trace_clock=True, pcp_start=pagesets,
                    other_zones=other_lowmem_zones(ZONEINFO), spool=spool)
    took = time.perf_counter() - start
    for timing in ("wall_s", "events_per_s"):
        result["counters"].pop(timing)
    return took, result


def main(argv=None):
    p = OneLineParser(description=__doc__)
    p.add_argument("--lines", type=arg(Int(1000, 10**8)), default=1_000_000)
    p.add_argument("--rounds", type=arg(Int(1, 50)), default=3)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.quick:
        p.quick(args, lines=20000, rounds=1)
    if args.json is not None:  # never over what this reads
        check_output_file("--json", args.json, {"capture": CAPTURE,
                                                "bench_trace.py": os.path.abspath(__file__)})
    if not os.path.isfile(CAPTURE):
        raise UserError(f"{CAPTURE}: no such file (the 6.18 capture the trace is made of)")
    need = args.lines * 200  # bytes: the capture's kmem lines are about 150 each
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if need > free:
        raise UserError(f"--lines {args.lines}: about {need / 2**30:.1f} GiB of text, more than "
                        f"the {free / 2**30:.1f} GiB free in {tempfile.gettempdir()}")
    with tempfile.TemporaryDirectory(prefix="bench_trace") as tmp:
        path = os.path.join(tmp, "trace.txt")
        size = make_trace(path, args.lines)
        head = os.path.join(tmp, "head.txt")
        make_trace(head, min(args.lines, 100_000))
        compiled = list(read(head))
        with python_only():
            same = compiled == list(read(head))
        rate(head, "compiled")  # compiles (or loads) the reader outside the timing
        best = {"compiled": 0.0, "python": 0.0, "decode": 0.0}
        for r in range(args.rounds):
            for reader in (("compiled", "python", "decode") if r % 2 == 0
                           else ("decode", "python", "compiled")):
                if reader == "python":
                    with python_only():
                        lps, _ = rate(path, reader)
                else:
                    lps, _ = rate(path, reader)
                best[reader] = max(best[reader], lps)
        trace.CACHE_BYTES = 0  # every read of a trace beyond the cache parses it
        with trace.Spooled(path, detail=True) as rows:
            list(rows.read_columns())  # parsed once, kept
            with trace.Spooled(head, detail=True) as small:
                list(small.read_columns())
                convert_s(small, True)  # compiles (or loads) outside the timing
            conv_took = {True: float("inf"), False: float("inf")}
            digests = {}
            for r in range(args.rounds):
                for compiled in ((True, False) if r % 2 == 0 else (False, True)):
                    t, digests[compiled] = convert_s(rows, compiled)
                    conv_took[compiled] = min(conv_took[compiled], t)
        same_conversion = digests[True] == digests[False]
        replay_s(head, True)  # compiles (or loads) the engine outside the timing
        took = {True: float("inf"), False: float("inf")}
        results = {}
        for r in range(args.rounds):
            for spool in ((True, False) if r % 2 == 0 else (False, True)):
                t, results[spool] = replay_s(path, spool)
                took[spool] = min(took[spool], t)
        same_replay = results[True] == results[False]
    ratio = best["compiled"] / best["python"]
    print(f"{args.lines} kmem lines, {size / 2**20:.0f} MiB of text, one thread, best of "
          f"{args.rounds} alternating rounds:")
    print(f"  python reader  : {best['python'] / 1e3:8.0f} k lines/s")
    print(f"  compiled reader: {best['compiled'] / 1e3:8.0f} k lines/s  = {ratio:.1f}x the "
          f"python reader (same rows: {same})")
    print(f"  reading and decoding alone (the bound): {best['decode'] / 1e3:8.0f} k lines/s; "
          f"the compiled reader reaches {best['compiled'] / best['decode']:.2f} of it")
    conv_ratio = conv_took[False] / conv_took[True]
    print(f"  turning the kept rows into events and reading the pcp lists' start from them: "
          f"Python {conv_took[False]:.2f} s, compiled {conv_took[True]:.2f} s = "
          f"{conv_ratio:.1f}x (same output: {same_conversion})")
    speedup = took[False] / took[True]
    print(f"  a seeded --trace-clock replay of it (4 reads): parsed each time "
          f"{took[False]:.2f} s, parsed once and kept {took[True]:.2f} s = {speedup:.2f}x "
          f"(at most 4x: the run's own work is the same; same result: {same_replay})")
    out = {"lines": args.lines, "bytes": size, "rounds": args.rounds, "same_rows": same,
           "lines_per_s": best, "ratio_compiled_to_python": ratio,
           "replay_s": {"parsed_each_read": took[False], "parsed_once": took[True]},
           "replay_speedup": speedup, "same_replay": same_replay,
           "conversion_s": {"python": conv_took[False], "compiled": conv_took[True]},
           "conversion_speedup": conv_ratio, "same_conversion": same_conversion}
    if args.json:
        write_json(args.json, out)
    return 0 if same and same_replay and same_conversion else 1


if __name__ == "__main__":
    sys.exit(script_main(main))
