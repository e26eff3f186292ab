"""The pipelined run (``zeroing run --pipeline on``, zeroing/pipeline.py) against the serial one.

For each case (those of cpu_vs_gpu.py: mixed, vm-anon with THP on and off) and each mode,
rounds of a serial and a pipelined run of the same events in alternating order, in one
process: the median of the rounds' ratios (serial wall over pipelined) and their range, and
whether the two runs' counters are identical. Modes: metadata; content mode on ``HostOnly``
(the GPU backends' host work, no device); content mode on each GPU backend named in
``--backends`` that is available here.

The pipelined run uses a second host thread, the serial run one: the ratio is what the second
thread buys. Beside it, a probe of what the second thread costs the first on this machine:
the allocator's half of vm-anon (THP off) alone, and beside a thread that only spins (no
memory traffic). On a machine whose two CPUs share one physical core (a small VM) the probe
shows the allocator's half slowed by up to 2x, and the pipeline cannot gain there.
"""
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "experiments"))

from cpu_vs_gpu import (CASES, CUPY_BATCH_PAGES, VOLATILE, case_size,  # noqa: E402
                        check_case_memory)
from kernels.throughput import measured_backends  # noqa: E402
from kernels.device_batch import HostOnly  # noqa: E402
from zeroing.pipeline import can_pipeline  # noqa: E402
from zeroing.policy import as_array, make_policy  # noqa: E402
from zeroing.run import Simulation, write_json  # noqa: E402
from zeroing.validate import (Int, Names, OneLineParser, arg, check_policy_names,  # noqa: E402
                              output_file, script_main)
from zeroing.workloads import default_pages, make_workload  # noqa: E402

GPU_BACKENDS = ("cupy", "cuda")


@njit(nogil=True, cache=True)
def spin(seconds_of_work):
    """Arithmetic only, no memory traffic: a busy sibling thread."""
    x = np.uint64(1)
    for _ in range(seconds_of_work):
        x = x * np.uint64(6364136223846793005) + np.uint64(1442695040888963407)
    return x


def run(ev, policy, pages, pipeline_mode, backend=None):
    kw = {"mode": "content", "backend": backend()} if backend else {}
    sim = Simulation(policy, pages, pipeline_mode=pipeline_mode, **kw)
    sim.feed(ev)
    return sim.finish()["counters"]


def compare(ev, policy, pages, rounds, backend=None):
    """(median ratio, min, max, serial best s, pipelined best s, counters identical)."""
    for m in ("off", "on"):  # compiles both halves, warms the backend
        run(ev[:2000], policy, pages, m, backend)
    walls = {"off": [], "on": []}
    counters = {}
    for r in range(rounds):
        for m in (("off", "on") if r % 2 == 0 else ("on", "off")):
            c = run(ev, policy, pages, m, backend)
            walls[m].append(c["wall_s"])
            counters[m] = {k: v for k, v in c.items() if k not in VOLATILE}
    ratios = np.array(walls["off"]) / np.array(walls["on"])
    return (float(np.median(ratios)), float(ratios.min()), float(ratios.max()),
            min(walls["off"]), min(walls["on"]), counters["off"] == counters["on"])


def probe(rounds):
    """The allocator's half of vm-anon (THP off) alone and beside a spinning thread (best of
    ``rounds`` each, alternating): what a busy second CPU costs the first here."""
    from zeroing import pipeline
    from zeroing.engine import run_events
    pages = default_pages("vm-anon")
    ev = make_workload("vm-anon", pages, seed=0, thp=False)
    policy = make_policy("pg_zeroed")
    spin(10)

    def half():
        sim = Simulation(policy, pages)
        cols = sim._columns(ev)
        pipe = pipeline.Pipeline(sim.alloc.z, sim.state, sim._columns(ev[:0]))
        log = pipe._logs(np.empty(len(ev), np.int64))[0]
        t = time.perf_counter()
        run_events(sim.alloc.z, pipe.e, *cols, np.empty(len(ev), np.int64), 0, 0, len(ev),
                   log, None)
        pipe.close()
        return time.perf_counter() - t

    alone, beside = [], []
    with ThreadPoolExecutor(1) as ex:
        for _ in range(rounds):
            alone.append(half())
            busy = ex.submit(spin, 400_000_000)
            beside.append(half())
            busy.result()
    return min(alone), min(beside)


def main(argv=None):
    p = OneLineParser(description=__doc__)
    p.add_argument("--case", action="append", help="workload[:param=value,...] (repeat)")
    p.add_argument("--policy", default="init_on_free,pg_zeroed,reporting")
    p.add_argument("--pages", type=arg(Int(1024, 1 << 26)), default=1 << 18,
                   help="guest size of the workloads that take an event count (mixed)")
    p.add_argument("--events", type=arg(Int(1, 10**9)), default=400_000)
    p.add_argument("--rounds", type=arg(Int(1, 100)), default=5)
    p.add_argument("--backends", type=arg(Names(*GPU_BACKENDS)),
                   help="GPU backends to run content mode on as well, where available")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the tests")
    p.add_argument("--json", type=output_file)
    args = p.parse_args(argv)
    check_policy_names("--policy", args.policy)
    cases = args.case or list(CASES)
    if args.quick:
        p.quick(args, pages=16384, events=20000, rounds=1)
        cases = args.case or ["mixed"]
    for spec in cases:  # the host holds no pool: HostOnly has none, a GPU backend's is on it
        check_case_memory(spec, args, mode="metadata")
    policy = make_policy(args.policy)
    if not can_pipeline(as_array(policy, args.pages)):
        p.error(f"--policy {args.policy}: its runs stay serial (the page allocator reads page "
                "state under it)")
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    print(f"{cpus} CPUs for this process; policy {args.policy}; median of {args.rounds} "
          "alternating rounds (serial wall / pipelined wall), best of each")
    if not args.quick:
        alone, beside = probe(3)
        print(f"probe: the allocator's half of vm-anon (THP off) {alone * 1e3:.1f} ms alone, "
              f"{beside * 1e3:.1f} ms beside a spinning thread ({beside / alone:.2f}x)")
    gpus = [b.name for b in measured_backends(log=print, only=args.backends)] \
        if args.backends else []
    out = {"cpus": cpus, "policy": args.policy, "rounds": args.rounds, "cases": {}}
    if not args.quick:
        out["probe_alone_s"], out["probe_beside_spin_s"] = alone, beside
    same_everywhere = True
    for spec in cases:
        name, params, events, pages = case_size(spec, args)
        ev = make_workload(name, pages, events, seed=0, **params)
        modes = [("metadata", None), ("host-only", lambda: HostOnly(CUPY_BATCH_PAGES))]
        modes += [(b, (lambda b=b: b)) for b in gpus]
        out["cases"][spec] = {}
        for label, backend in modes:
            med, lo, hi, serial, piped, same = compare(ev, policy, pages, args.rounds, backend)
            same_everywhere &= same
            out["cases"][spec][label] = {"ratio": med, "ratio_min": lo, "ratio_max": hi,
                                         "serial_s": serial, "pipelined_s": piped,
                                         "counters_identical": same, "events": len(ev),
                                         "pages": pages}
            print(f"{spec:16s} {label:9s} serial {serial * 1e3:7.1f} ms, pipelined "
                  f"{piped * 1e3:7.1f} ms: {med:.2f}x ({lo:.2f}-{hi:.2f}); counters identical: "
                  f"{same}")
    if args.json:
        write_json(args.json, out)
    if not same_everywhere:
        print("MISMATCH: a pipelined run's counters differ from the serial run's",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(script_main(main))
