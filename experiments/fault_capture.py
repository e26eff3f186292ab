"""Capture a fault-in on this machine's kernel and set the model beside it.

A child process maps anonymous memory and touches it, ``--kind`` deciding how:
``anon`` writes every 4 KiB page of ``--mib`` (MADV_NOHUGEPAGE: order-0 Movable faults),
``thp`` the same with MADV_HUGEPAGE (order-9 faults where THP is on), ``ptables`` one byte
every 2 MiB of ``--mib`` of address space (MAP_NORESERVE: a page table, Unmovable, and a
data page per touch). /proc/pagetypeinfo and /proc/zoneinfo are copied into ``--out``
before, /proc/pagetypeinfo again while the child holds the memory, with the kernel and the
/proc/vmstat counters that say what happened (THP faults and fallbacks, page tables).

The model then starts from the "before" snapshot (the Normal zone, its node's watermarks
and a pageset per CPU from the zoneinfo, ``zeroing.zoneinfo.node_zone``), makes the same
allocations and prints its free blocks per order and migratetype, and its pageblocks per
type, beside the kernel's. ``--idle S`` waits first, so that the per-cpu lists (which the
snapshot cannot show, and the model starts without) have decayed to their floor. Needs
root: /proc/pagetypeinfo is readable by root only. tests/data holds three captures made so
(fault1g_*, thp1g_*, ptables512g_*; experiments/RESULTS.md, session 11).
"""
import os
import platform
import re
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.validate import (Choice, Int, OneLineParser, UserError, arg, available_memory,
                              check_output_file, output_folder, printable,  # noqa: E402
                              script_main)
from zeroing.run import write_json  # noqa: E402

PROC = "/proc"
KINDS = ("anon", "thp", "ptables")
COUNTERS = ("thp_fault_alloc", "thp_fault_fallback", "nr_page_table_pages")
TYPES = ("Unmovable", "Movable", "Reclaimable")
#: What a capture writes into --out.
WRITTEN = ("before_pagetypeinfo", "before_zoneinfo", "during_pagetypeinfo", "capture_env.txt")

CHILD = r"""
import mmap, sys
kind, size = sys.argv[1], int(sys.argv[2]) << 20
flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | (0x4000 if kind == "ptables" else 0)
m = mmap.mmap(-1, size, flags=flags)  # 0x4000: MAP_NORESERVE
m.madvise(mmap.MADV_HUGEPAGE if kind == "thp" else mmap.MADV_NOHUGEPAGE)
for off in range(0, size, (2 << 20) if kind == "ptables" else 4096):
    m[off] = 1
print("touched", flush=True)
sys.stdin.readline()
"""


def vmstat(counters=COUNTERS):
    with open(os.path.join(PROC, "vmstat")) as f:
        values = dict(line.split() for line in f)
    return {k: int(values[k]) for k in counters if k in values}


def fault_ops(kind, mib):
    """The allocations the child's touches make, as ``allocator.bulk`` rows: order-0 Movable
    pages (anon), order-9 THPs (thp), a page table then a data page per 2 MiB (ptables)."""
    from allocator import GFP_HIGHUSER_MOVABLE, GFP_KERNEL, OP_ALLOC, OP_DTYPE
    from allocator.flags import GFP_TRANSHUGE
    n = {"anon": mib << 8, "thp": mib >> 1, "ptables": 2 * (mib >> 1)}[kind]
    ops = np.zeros(n, dtype=OP_DTYPE)
    ops["op"] = OP_ALLOC
    if kind == "anon":
        ops["gfp"] = GFP_HIGHUSER_MOVABLE
    elif kind == "thp":
        ops["order"], ops["gfp"] = 9, GFP_TRANSHUGE
    else:
        ops["gfp"][0::2], ops["gfp"][1::2] = GFP_KERNEL, GFP_HIGHUSER_MOVABLE
    return ops


def thp_mode():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            m = re.search(r"\[(\w+)\]", f.read())
    except OSError:
        return None
    return m.group(1) if m else None


def touched_bytes(kind, mib):
    """The memory the child's touches take: every page of --mib (anon, thp), or a page table
    and a data page per 2 MiB of address space (ptables)."""
    return (mib >> 1) * 2 * 4096 if kind == "ptables" else mib << 20


def check_capture(kind, mib, out, json_path, available=None):
    """Everything a capture needs, before anything is written or waited for: /proc readable,
    THP on for --kind thp, --mib a size the model makes the same allocations for and that
    this machine has the memory for, --json none of the files the capture writes."""
    if kind in ("thp", "ptables") and mib % 2:
        what = ("whole 2 MiB THPs" if kind == "thp"
                else "whole 2 MiB steps, a page table and a data page each")
        raise UserError(f"--mib {mib}: not allowed with --kind {kind}: the model makes {what} "
                        "(an even --mib); the kernel would touch the odd MiB too")
    available = available_memory() if available is None else available
    need = touched_bytes(kind, mib)
    if available is not None and need > available:
        raise UserError(f"--mib {mib}: --kind {kind} touches {need >> 20} MiB but this machine "
                        f"has {available >> 20} MiB available (MemAvailable in /proc/meminfo)")
    if json_path:
        target = os.path.realpath(json_path)
        if target == os.path.realpath(out):
            raise UserError(f"--json: {printable(json_path)} is the --out folder: name a file "
                            "for the result")
        for name in WRITTEN:
            if target == os.path.realpath(os.path.join(out, name)):
                raise UserError(f"--json: {printable(json_path)} is the {name} the capture "
                                "writes into --out: name another file for the result")
    for name in ("pagetypeinfo", "zoneinfo"):
        if not os.access(os.path.join(PROC, name), os.R_OK):
            raise UserError(f"{PROC}/{name} is not readable here (/proc/pagetypeinfo needs "
                            "root)")
    if kind == "thp" and thp_mode() not in ("always", "madvise"):
        raise UserError(f"--kind thp: THP is {thp_mode() or 'not available'} here: the faults "
                        "would be 4 KiB pages")


def capture(kind, mib, out, idle_s):
    """Run the child and copy the snapshots into ``out``; the vmstat counters' change
    (check_capture first)."""
    time.sleep(idle_s)
    before = vmstat()
    for name in ("pagetypeinfo", "zoneinfo"):
        shutil.copyfile(os.path.join(PROC, name), os.path.join(out, f"before_{name}"))
    # The child's stderr is kept: a failure is one line with its reason, not its traceback.
    child = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(mib)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "touched":
            _, err = child.communicate(timeout=120)
            lines = [line for line in err.splitlines() if line.strip()]
            why = (lines[-1].strip() if lines else f"killed by signal {-child.returncode}"
                   if child.returncode and child.returncode < 0
                   else f"exit status {child.returncode}")
            raise UserError(f"--kind {kind} --mib {mib}: the child process could not map and "
                            f"touch that memory ({why})")
        shutil.copyfile(os.path.join(PROC, "pagetypeinfo"),
                        os.path.join(out, "during_pagetypeinfo"))
        during = vmstat()
    finally:
        if child.poll() is None:
            child.communicate("done\n", timeout=120)
    change = {k: during[k] - before[k] for k in during if k in before}
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    with open(os.path.join(out, "capture_env.txt"), "w") as f:
        f.write(f"{platform.uname().release} {platform.machine()}, {os.cpu_count()} CPUs, THP "
                f"{thp_mode() or '?'}; {when}\n"
                f"fault_capture.py --kind {kind} --mib {mib} --idle {idle_s}\n"
                + "".join(f"{k} {before[k]} -> {during[k]}\n" for k in during if k in before))
    return change


def model_beside(out, kind, mib):
    """The model from ``out``'s before snapshot after the child's allocations, and the
    kernel's two snapshots: {who: ({type: free blocks per order}, pageblocks per type)}."""
    from zeroing.initial_state import apply_initial_state, read_pagetypeinfo
    from zeroing.zoneinfo import node_zone
    zone = node_zone(os.path.join(out, "before_zoneinfo"))
    apply_initial_state(zone, os.path.join(out, "before_pagetypeinfo") + ",zone=Normal")
    blocks_before = np.bincount(zone.zone.pageblock_mt, minlength=3)[:3]
    failed = int((zone.run(fault_ops(kind, mib))[0] < 0).sum())
    rows = {}
    for when in ("before", "during"):
        free, blocks = read_pagetypeinfo(os.path.join(out, f"{when}_pagetypeinfo"),
                                         ("Normal", None))
        rows[f"kernel {when}"] = ({t: free[mt] for mt, t in enumerate(TYPES)},
                                  list(blocks) if blocks else None)
    model_blocks = np.bincount(zone.zone.pageblock_mt, minlength=3)[:3]
    rows["model during"] = (zone.pagetypeinfo(), [int(b) for b in model_blocks])
    return rows, [int(b) for b in model_blocks - blocks_before], failed


def main(argv=None):
    p = OneLineParser(description=__doc__)
    p.add_argument("--kind", type=arg(Choice(*KINDS)), default="anon",
                   help=f"{'|'.join(KINDS)}: 4 KiB pages, THPs, or page tables (default: anon)")
    p.add_argument("--mib", type=arg(Int(2, 1 << 20)), default=1024,
                   help="memory touched (anon, thp) or address space spanned (ptables), MiB")
    p.add_argument("--idle", type=arg(Int(0, 3600)), default=0,
                   help="seconds to wait before the first snapshot (per-cpu lists decay)")
    p.add_argument("--out", type=output_folder, required=True)
    p.add_argument("--json", help="write the figures here too (may be inside --out, which the "
                                   "capture creates)")
    args = p.parse_args(argv)
    check_capture(args.kind, args.mib, args.out, args.json)
    inside = args.json and os.path.realpath(os.path.dirname(os.path.abspath(args.json))) == \
        os.path.realpath(args.out)
    if args.json and not inside:
        check_output_file("--json", args.json)
    os.makedirs(args.out, exist_ok=True)
    if inside:
        check_output_file("--json", args.json)
    change = capture(args.kind, args.mib, args.out, args.idle)
    rows, claimed, failed = model_beside(args.out, args.kind, args.mib)
    print(f"{args.kind}, {args.mib} MiB: kernel counters changed {change}; the model made "
          f"{len(fault_ops(args.kind, args.mib))} allocations ({failed} failed)")
    if args.kind == "thp" and change.get("thp_fault_fallback", 0):
        print(f"warning: {change['thp_fault_fallback']} THP faults fell back to 4 KiB pages in "
              "the kernel; the model made every one an order-9 allocation")
    for t in TYPES:
        for who, (free, _) in rows.items():
            print(f"{t:11s} {who:13s} " + " ".join(f"{n:6d}" for n in free[t]))
    for who, (_, blocks) in rows.items():
        print(f"pageblocks  {who:13s} {blocks} (Unmovable, Movable, Reclaimable)")
    print(f"pageblocks the model's allocations changed type: {claimed}; snapshots in {args.out}")
    if args.json:
        write_json(args.json, {"kind": args.kind, "mib": args.mib, "counters": change,
                               "rows": rows, "model_claimed": claimed, "failed": failed})
    return 0


if __name__ == "__main__":
    sys.exit(script_main(main))
