"""Content mode on ``mixed``: this tree's rate against an earlier commit's, alternating.

Issue 11 asks for at least 2x the rate of the code it was filed against (``--before``,
default 178edfc): the same command (``zeroing run --mode content --backend numba``, or the
``--backend`` named; the same events and pages) runs in a copy of that commit (``git
archive``) and in this tree, in alternating order, each after an untimed warm-up run that
compiles it. The rate is the run's own ``events_per_s`` (the simulation, pool allocation
excluded in both). The model's rules changed between the two (pcp auto-tuning, reporting),
so their counters are not compared: metadata and content mode agree on each tree (tested). Needs git and the commit; without
them it says so and exits 0. ``--mode metadata`` times the engine alone the same way (no
pages, no backend: what every mode pays), e.g. against the commit before an engine change.
On a GPU, ``--backend cupy --before REV --rounds 7`` compares two versions of the GPU path
in alternating rounds: the device hosts vary too much between calls for one run of each.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from zeroing.validate import (Choice, Int, MAX_PFNS, OneLineParser, UserError, arg,
                              check_backend, check_memory, output_file, printable,
                              script_main)  # noqa: E402
from zeroing.calibrate import thp_state  # noqa: E402
from zeroing.run import write_json  # noqa: E402

BEFORE = "178edfc"  # the code issue 11 was filed against
POLICY = "init_on_free,pg_zeroed,reporting"


def export(rev, dest):
    """The tree of ``rev`` under dest, or a reason it cannot be had."""
    try:
        sha = subprocess.run(["git", "-C", ROOT, "rev-parse", "--verify", f"{rev}^{{commit}}"],
                             capture_output=True, text=True, check=True).stdout.strip()
        archive = subprocess.run(["git", "-C", ROOT, "archive", sha], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        return None, f"cannot check out {rev}: {getattr(e, 'stderr', '') or e}".strip()
    return sha[:12], ""


def rate(tree, events, pages, out, mode="content", backend="numba", where="this tree"):
    """The events/s of one ``zeroing run`` in ``tree``; a run that fails is one line with
    its own reason (the last line of its stderr), naming the tree (``where``)."""
    cmd = [sys.executable, "-m", "zeroing", "run", "--workload", "mixed", "--events",
           str(events), "--pages", str(pages), "--policy", POLICY, "--mode", mode, "--json", out]
    cmd += ["--backend", backend] if mode == "content" else []
    env = dict(os.environ, PYTHONPATH=tree, ZEROING_NO_COMPILE_HELPER="1")
    p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        why = lines[-1].strip() if lines else (
            f"killed by signal {-p.returncode}" if p.returncode < 0
            else f"exit status {p.returncode}, nothing on stderr")
        raise UserError(f"{where}: zeroing run ({mode} mode"
                        f"{', --backend ' + backend if mode == 'content' else ''}) failed: "
                        f"{printable(why)}")
    with open(out) as f:
        return json.load(f)["counters"]["events_per_s"]


def main(argv=None):
    p = OneLineParser(description=__doc__)
    p.add_argument("--before", help=f"the earlier commit (default {BEFORE}; a clone without "
                                    "it skips the comparison)")
    p.add_argument("--events", type=arg(Int(1, 10**9)), default=200_000)
    p.add_argument("--pages", type=arg(Int(1024, MAX_PFNS)), default=262_144)
    p.add_argument("--rounds", type=arg(Int(1, 100)), default=3)
    p.add_argument("--mode", type=arg(Choice("content", "metadata")), default="content",
                   help="content (default: the numba backend) or metadata (the engine alone)")
    p.add_argument("--backend", type=arg(Choice("numba", "numpy", "cupy", "cuda")),
                   default="numba", help="content mode's backend (default numba; cupy or cuda "
                   "on a GPU: both trees must run it)")
    p.add_argument("--quick", action="store_true", help="tiny sizes against HEAD, for the tests")
    p.add_argument("--json", type=output_file, help="write the figures here (atomically)")
    args = p.parse_args(argv)
    if args.mode == "metadata" and p.was_given("backend"):
        p.error(f"--backend {args.backend}: has no effect with --mode metadata")
    if args.before is not None and not args.before.strip():
        p.error("--before '': is not allowed: a commit (hash, tag or branch)")
    asked = args.before  # a commit the user named must exist; the default may be missing
    if args.quick:
        p.quick(args, before="HEAD", events=3000, pages=4096, rounds=1)
    args.before = args.before or BEFORE
    if args.mode == "content":  # up front, as zeroing run checks them (on this tree)
        check_backend("--backend", args.backend, args.mode)
    check_memory(("--pages", "--events"), args.pages, args.mode, args.backend,
                 events=args.events)
    what = (f"{args.mode} mixed ({args.backend + ', ' if args.mode == 'content' else ''}"
            f"{args.events:,} events, {args.pages:,} pages, {POLICY})")
    with tempfile.TemporaryDirectory() as tmp:
        old = os.path.join(tmp, "before")
        os.makedirs(old)
        sha, why = export(args.before, old)
        if sha is None and asked:
            raise UserError(f"--before {asked}: {why}")
        if sha is None:  # a shallow clone: the default commit is not in it
            print(f"{what}: skipped: {why}")
            result = {"skipped": why}
        else:
            out = os.path.join(tmp, "run.json")
            trees = {"before": old, "now": ROOT}
            where = {"before": f"--before {args.before} ({sha})", "now": "this tree"}
            for name, tree in trees.items():  # untimed
                rate(tree, args.events, args.pages, out, args.mode, args.backend, where[name])
            rates = {"before": [], "now": []}
            for r in range(args.rounds):
                for name in (("before", "now") if r % 2 == 0 else ("now", "before")):
                    rates[name].append(rate(trees[name], args.events, args.pages, out,
                                            args.mode, args.backend, where[name]))
            ratios = np.array(rates["now"]) / np.array(rates["before"])
            med = float(np.median(ratios))
            result = {"before": sha, "mode": args.mode, "backend": args.backend,
                      "events": args.events,
                      "pages": args.pages,
                      "rounds": args.rounds, "before_events_per_s": rates["before"],
                      "now_events_per_s": rates["now"], "ratio": med, "thp": thp_state()}
            print(f"{what}: before ({sha}) {np.median(rates['before']) / 1e6:.3f} M events/s, "
                  f"now {np.median(rates['now']) / 1e6:.3f} M events/s: {med:.2f}x (median of "
                  f"{args.rounds} rounds, {ratios.min():.2f}-{ratios.max():.2f}; THP {thp_state()})"
                  + ("; --quick: this code against itself, a smoke test (no target)"
                     if args.quick else
                     f"; target (issue 11) >= 2x: {'met' if med >= 2 else 'not met'}"
                     if args.mode == "content" else ""))
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    sys.exit(script_main(main))
