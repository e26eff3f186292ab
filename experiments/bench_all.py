"""Run every benchmark and write their figures into experiments/RESULTS.md (atomically).

Each figure is written with the baseline it was measured against in the same run, the machine,
and, for GPU figures, the device. The figures go between the file's ``BEGIN``/``END`` marker
lines (appended at its end the first time): the rest of the file, written by hand, is kept.
``--quick`` runs tiny sizes (for the tests); give it an ``--out`` of its own.
"""
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "experiments")
sys.path.insert(0, ROOT)

from zeroing.run import write_json, write_text  # noqa: E402
from zeroing.validate import (OneLineParser, UserError, check_output_file, output_file,
                              script_main)  # noqa: E402

BEGIN = "<!-- bench_all.py writes from here to END; edit above or below -->"
END = "<!-- END of bench_all.py's figures -->"
BENCHES = ("bench_allocator", "bench_kernels", "bench_engine", "bench_scale", "cpu_vs_gpu",
           "bench_trace")


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError):
        mem = 0
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def run(name, quick, tmp):
    out = os.path.join(tmp, name + ".json")
    cmd = [sys.executable, os.path.join(HERE, name + ".py"), "--json", out] + (["--quick"] if quick else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stdout + p.stderr
    with open(out) as f:
        return json.load(f), p.stdout


def verdict(ok):
    return "**met**" if ok else "**not met**"


def render(results, outputs, quick, failed=True):
    lines = ["## The last `experiments/bench_all.py` run", "",
             f"Written on {datetime.date.today()}"
             + (" (--quick: tiny sizes, not for quoting)" if quick else "")
             + f". Machine: {machine()}.", ""]
    a = results.get("bench_allocator")
    if a:
        lines += ["## Allocator replay (issue 2): 10M events, 16 GiB zone, half full, 80% order-0",
                  "Baseline: the same code with NUMBA_DISABLE_JIT=1 on a prefix, same run.", "",
                  "| pcp | compiled | interpreted baseline | speed-up (full / same prefix) | bytes/page |",
                  "| --- | --- | --- | --- | --- |"]
        for name, r in a.items():
            lines.append(f"| {name} | {r['events_per_s'] / 1e6:.2f} M events/s | "
                         f"{r['interpreted_events_per_s'] / 1e3:.1f} K events/s | "
                         f"{r['speedup_full']:.0f}x / {r['speedup_prefix']:.0f}x | {r['bytes_per_page']:.2f} |")
        for name, r in a.items():
            lines.append(f"- {name}: 10 M events/s {verdict(r['events_per_s'] >= 10e6)}, "
                         f"50x {verdict(r['speedup_full'] >= 50)}")
        for name, r in a.items():
            if "c_ratio" in r:
                lines.append(f"- {name} against C (`c_ref/buddy.c`, same stream, alternating rounds): "
                             f"{r['c_ratio']:.2f} of C (median of {r['c_rounds']}, "
                             f"{r['c_ratio_min']:.2f}-{r['c_ratio_max']:.2f}); identical results "
                             f"{r['c_identical']}; >= 0.7 {verdict(r['c_ratio'] >= 0.7)}")
        lines.append("")
    k = results.get("bench_kernels")
    if k:
        lines += ["## Clearing backends (issues 3, 11): GB/s as a ratio to a memset of as many bytes",
                  "Baseline, same run, interleaved: a memset with the same threads and stores "
                  "(numpy `fill(0)`, 1 thread; numba's parallel fill; a device memset on a GPU) over "
                  "contiguous runs of the same pool. Pool >= 4x the last-level cache, pre-faulted; "
                  "no page cleared twice within a timing; bytes = 4 KiB written per page. GPU rows: "
                  "batches submitted two in flight, as the engine does (wall time, host packing "
                  "included).", "",
                  "| backend (device) | threads | pool / cache MiB | DRAM write GB/s | layout | pages "
                  "| GB/s | memset GB/s | ratio | note |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in k:
            lines.append(f"| {r['backend']} ({r['device']}) | {r.get('threads') or 'device'} | "
                         f"{r.get('pool_mib', 0)} / {r.get('cache_mib', 0)} | "
                         f"{r.get('dram_write_gb_per_s', 0):.1f} | {r['layout']} | {r['pages']} | "
                         f"{r['gb_per_s']:.2f} | {r['memset_gb_per_s']:.2f} | {r['ratio']:.2f} | "
                         f"{r.get('note', '')} |")
        numba = [r for r in k if r["backend"] == "numba" and r["pages"] >= 256]
        if numba:
            s0 = min(r["ratio"] for r in numba if r["layout"] == "scattered order-0")
            s9 = min((r["ratio"] for r in numba if r["layout"] == "order-9 blocks"), default=0)
            lines.append(f"- CPU (numba, batches >= 256 pages): scattered order-0 >= 0.5 "
                         f"{verdict(s0 >= 0.5)} (worst {s0:.2f}); order-9 >= 0.85 {verdict(s9 >= 0.85)} "
                         f"(worst {s9:.2f})")
        bugs = [r for r in k if "UNEXPLAINED" in r.get("note", "")]
        lines.append(f"- ratios above 1.0 not explained by the baseline's spread: {len(bugs)}")
        gpu = [r for r in k if r["backend"] in ("cuda", "cupy") and r["pages"] >= 16384]
        if gpu:
            for layout, target in (("scattered order-0", 0.8), ("order-9 blocks", 0.9)):
                for name in sorted({r["backend"] for r in gpu}):
                    sel = [r for r in gpu if r["layout"] == layout and r["backend"] == name]
                    if sel:
                        worst = min(sel, key=lambda r: r["ratio"])
                        lines.append(f"- GPU {layout} (batches >= 16K pages) >= {target} of device "
                                     f"memset, {worst['device']}: {verdict(worst['ratio'] >= target)} "
                                     f"(worst {worst['ratio']:.2f} at {worst['pages']} pages)")
        else:
            lines.append("- GPU: **not measured** (no GPU on this machine)")
        lines.append("")
    e = results.get("bench_engine")
    if e:
        m = e["metadata"]
        lines += ["## Engine (issue 3): init_on_free + pg_zeroed + reporting, sanitizer on", "",
                  f"- metadata: {m['events_per_s'] / 1e6:.2f} M events/s; baseline interpreted "
                  f"{m['interpreted_events_per_s'] / 1e3:.1f} K events/s ({m['speedup']:.0f}x); "
                  f">= 5 M events/s {verdict(m['events_per_s'] >= 5e6)}"]
        if "pcp_high" in e:
            ph = e["pcp_high"]
            lines.append(f"- pcp high auto-tuned (issue 9): {ph['auto_events_per_s'] / 1e6:.2f} M "
                         f"events/s; baseline fixed high (the rule before) "
                         f"{ph['fixed_events_per_s'] / 1e6:.2f} M events/s; ratio "
                         f"{ph['ratio']:.2f}; >= 0.8 {verdict(ph['ratio'] >= 0.8)}")
        for name, r in e.items():
            if name.startswith("content"):
                lines.append(f"- {name} ({r['device']}): {r['events_per_s'] / 1e6:.2f} M events/s = "
                             f"{r['ratio']:.2f} x metadata ({r['metadata_events_per_s'] / 1e6:.2f} M/s); "
                             f"{r['pages_per_launch']:.0f} pages per launch; backend "
                             f"{r['backend_gb_per_s']:.1f} GB/s; >= 1 M events/s "
                             f"{verdict(r['events_per_s'] >= 1e6)}")
        for name, r in e.get("end_to_end", {}).items():
            lines.append(f"- end to end {name} ({r['events']:,} events, generation included): "
                         f"{r['end_to_end_events_per_s'] / 1e6:.2f} M events/s = {r['ratio']:.2f} x "
                         f"engine-only ({r['engine_events_per_s'] / 1e6:.2f} M/s); >= 0.5 "
                         f"{verdict(r['ratio'] >= 0.5)}")
        lines.append("")
    s = results.get("bench_scale")
    if s:
        lines += ["## Scale (issue 5): metadata mode against machine size",
                  f"Baseline: the {s[0]['size_gib']:.2f} GiB run, same process.", "",
                  "| machine | pages | M events/s | vs baseline | bytes/page | metadata | peak RSS |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for kind in ("filling", "steady"):
            rows = [r for r in s if r.get("kind", "filling") == kind]
            for r in rows:
                lines.append(f"| {r['size_gib']:.2f} GiB{' steady' if kind == 'steady' else ''} | "
                             f"{r['pages']:,} | {r['events_per_s'] / 1e6:.2f} | "
                             f"{r['events_per_s'] / rows[0]['events_per_s']:.2f}x | {r['bytes_per_page']:.1f} | "
                             f"{r['metadata_gib']:.2f} GiB | {r['peak_rss_gib']:.2f} GiB |")
        for kind in ("filling", "steady"):
            rows = [r for r in s if r.get("kind", "filling") == kind]
            if rows:
                ratio = rows[-1]["events_per_s"] / rows[0]["events_per_s"]
                lines.append(f"- {kind}: largest at >= half the baseline speed "
                             f"{verdict(ratio >= 0.5)} ({ratio:.2f}x)")
        lines.append("- steady rows: every size at the same fill, after an untimed warm-up")
        lines.append("")
    c = results.get("cpu_vs_gpu")
    if c:
        lines += ["## The same run on every backend (`cpu_vs_gpu.py`)",
                  "Baseline: the numba backend on this machine's cores, same events, same run. "
                  "Target (issue 11): a GPU backend >= 10x numba with identical counters.", ""]
        for case, rows in c.items():
            for name, r in rows.items():
                lines.append(f"- {case}, {name} ({r['device']}): {r['wall_s']:.3f} s = "
                             f"{r.get('x_numba', 1.0):.2f} x numba, {r['gb_per_s']:.1f} GB/s touched, "
                             f"{r['launches']} launches of {r['pages_per_launch']:.0f} pages; counters "
                             f"match metadata mode: {r['counters_match_metadata']}"
                             + (f" (10x {verdict(r.get('x_numba', 0) >= 10)}"
                                + (f"; at most {r['x_numba_ceiling']:.1f}x here: the host's own "
                                   "metadata-mode time" if "x_numba_ceiling" in r else "")
                                + ")" if name in ("cupy", "cuda") else ""))
        lines.append("")
    t = results.get("bench_trace")
    if t:
        rate = t["lines_per_s"]
        lines += ["## Reading a kmem trace (`bench_trace.py`)",
                  "Baseline: the Python reader, the same file in the same run, one thread.", "",
                  f"- {t['lines']:,} lines ({t['bytes'] / 2**20:.0f} MiB of text): compiled "
                  f"{rate['compiled'] / 1e3:.0f} k lines/s = {t['ratio_compiled_to_python']:.1f} x "
                  f"the Python reader ({rate['python'] / 1e3:.0f} k); reading and decoding alone "
                  f"{rate['decode'] / 1e3:.0f} k lines/s (the bound); same rows: "
                  f"{t['same_rows']}", ""]
    for name in BENCHES if failed else ():
        if name not in results:
            lines += [f"## {name}: FAILED", "```", outputs.get(name, "")[-2000:], "```", ""]
    return "\n".join(lines)


def write_block(path, block):
    """``path`` with its bench_all block (between BEGIN and END) replaced by ``block``; a file
    without one gets it at its end. Nothing outside the block changes."""
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    block = f"{BEGIN}\n{block.rstrip()}\n{END}\n"
    if BEGIN in text and END in text.split(BEGIN, 1)[1]:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:
        text = text + ("\n" if text and not text.endswith("\n") else "") + block
    write_text(path, text)


def main(argv=None):
    p = OneLineParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=output_file, default=os.path.join(HERE, "RESULTS.md"))
    p.add_argument("--json", type=output_file, help="also write every benchmark's figures here")
    p.add_argument("--from", dest="source", metavar="DIR",
                   help="render from NAME.json files already in DIR (those present), run nothing")
    args = p.parse_args(argv)
    results, outputs = {}, {}
    if args.source is not None:
        for name in ("quick", "json"):
            if p.was_given(name):
                p.error(f"--{name}: has no effect with --from (which runs nothing)")
        if not os.path.isdir(args.source):
            raise UserError(f"--from: {args.source}: no such folder")
        check_output_file("--out", args.out, {f"--from {name}.json": os.path.join(
            args.source, name + ".json") for name in BENCHES})
        for name in BENCHES:
            path = os.path.join(args.source, name + ".json")
            if os.path.exists(path):
                try:
                    with open(path) as f:
                        data = json.load(f)
                except (OSError, ValueError) as e:
                    raise UserError(f"--from: {path}: not a benchmark's JSON ({e})") from None
                try:  # rendered alone first, so that a wrong shape names its file
                    if not isinstance(data, (dict, list)) or not data:
                        raise TypeError(f"{type(data).__name__} {data!r:.40}, no figures")
                    render({name: data}, {}, False, failed=False)
                except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
                    raise UserError(f"--from: {path}: not what {name}.py writes "
                                    f"({type(e).__name__}: {e})") from None
                results[name] = data
        if not results:
            raise UserError(f"--from: {args.source} holds none of "
                            f"{', '.join(n + '.json' for n in BENCHES)}: nothing written")
        write_block(args.out, render(results, {}, False, failed=False))
        print(f"wrote {args.out} from {', '.join(results)}")
        return 0
    if args.json and os.path.realpath(args.json) == os.path.realpath(args.out):
        p.error(f"--json: {args.json} is the --out file (its text written by hand is kept; "
                "the JSON would replace it): name another file")
    with tempfile.TemporaryDirectory() as tmp:
        for name in BENCHES:
            print(f"== {name}", flush=True)
            data, out = run(name, args.quick, tmp)
            outputs[name] = out
            print(out, end="", flush=True)
            if data is not None:
                results[name] = data
    write_block(args.out, render(results, outputs, args.quick))
    if args.json:
        write_json(args.json, results)
    print(f"wrote {args.out}")
    return 0 if len(results) == len(BENCHES) else 1


if __name__ == "__main__":
    sys.exit(script_main(main))
