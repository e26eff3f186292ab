"""``zeroing`` command line.

Every option goes through ``zeroing.validate`` (the rules config files use too) before any
work; a problem the user can fix ends as one line on stderr and exit status 2. Ctrl-C ends
with status 130 and closed pipes (``| head -1``) quietly; results already written are kept.
"""
import os
import sys

from .validate import RefuseRepeats, UserError, printable, remembered_interrupts

COMMANDS = ("demo", "run", "compare", "replay", "sweep", "calibrate")


class ArgumentError(UserError):
    """argparse's complaint about the command line."""


class Parser(RefuseRepeats):
    """argparse, but its errors are one line (no usage block): an ArgumentError; an option
    given twice is one too."""

    def error(self, message):
        raise ArgumentError(message)


def build_parser():
    p = Parser(prog="zeroing", description="PG_zeroed page allocator simulator")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    d = sub.add_parser("demo", help="buddyinfo and zeroed blocks before and after a small mix")
    d.add_argument("--pages", default=str(1 << 18), help="zone size in 4 KiB pages (262144)")
    d.add_argument("--events", default="200000", help="events (200000)")
    d.add_argument("--seed", default="0")
    r = sub.add_parser("run", help="run a workload under one (composed) policy")
    r.add_argument("--workload", default="mixed", help="a workload (default: mixed; see README)")
    r.add_argument("--policy", default="baseline",
                   help="NAME[,NAME...] composed (default: baseline)")
    r.add_argument("--hint", help="pghint|lru_bit|folio_flag")
    r.add_argument("--free-signal", help="fpi|page_bit")
    r.add_argument("--pfmemalloc", help="assign|or")
    r.add_argument("--aliasing-cache", action="store_true", default=None)
    r.add_argument("--mode", default="metadata", help="metadata|content")
    r.add_argument("--backend", help="auto (default)|numpy|numba|cuda|cupy")
    r.add_argument("--pages", help="zone size (default: the workload's own)")
    r.add_argument("--events", help="events (mixed, unaware-user)")
    from .workloads import ALL_PARAMS
    for param in ALL_PARAMS:
        if param != "events":
            r.add_argument("--" + param.replace("_", "-"), dest=param, metavar="VALUE",
                           help="workload parameter (see README)")
    r.add_argument("--seed", default="0")
    r.add_argument("--no-pcp", action="store_true")
    r.add_argument("--pcp-high",
                   help="per-cpu list high: auto, the kernel's auto-tuning (default), or fixed")
    r.add_argument("--other-zones", metavar="PAGES[,PAGES...]|none",
                   help="managed pages of the node's other lowmem zones, which set the zone's "
                        "watermarks and pcp limits (default: 3840, an x86-64 guest's DMA "
                        "zone; none: a node of this one zone)")
    r.add_argument("--pipeline", help="off (default)|on: the page allocator's half of the "
                                      "simulation on a second host thread (same results)")
    r.add_argument("--initial-state", default="pristine",
                   metavar="pristine|aged|FILE[,zone=NAME][,node=N]",
                   help="zone at the start: boot (default), after a seeded ageing workload, "
                        "or a /proc/buddyinfo or /proc/pagetypeinfo snapshot")
    r.add_argument("--offload-batch",
                   help="pages per offload batch (default: the offload device profile's)")
    r.add_argument("--offload-watermark",
                   help="offload runs when dirty free pages exceed this fraction (0.05)")
    r.add_argument("--offload-period-ms", help="offload zeroer period (100)")
    r.add_argument("--offload-device", help="which [offload.*] device of the cost profile "
                                            "zeroes (cpu; the shipped profile has cpu and gpu, "
                                            "a profile of your own may add dma)")
    r.add_argument("--cost-profile", metavar="FILE",
                   help="cost profile TOML (default: zeroing/profiles/default.toml)")
    r.add_argument("--json", help="write the result object here (atomically)")
    r.add_argument("--vmstat", action="store_true", help="also print vmstat-style counter lines")
    c = sub.add_parser("compare", help="a matrix of workloads x policies x seeds, and its report")
    c.add_argument("config", help="TOML config (see experiments/default.toml)")
    c.add_argument("--out", help="output folder (default: results/<name>)")
    c.add_argument("--cost-profile", metavar="FILE", help="cost profile TOML (overrides the config's)")
    rp = sub.add_parser("replay", help="replay a kmem trace (tracefs, trace-cmd, perf script)")
    rp.add_argument("trace")
    rp.add_argument("--replay-mode", default="exact",
                    help="exact (default: the traced pfns) | requests (the model places them)")
    rp.add_argument("--policy", default="baseline",
                    help="NAME[,NAME...] composed (default: baseline)")
    rp.add_argument("--lenient", action="store_true",
                    help="count and skip unreadable lines; replay a truncated file up to its end")
    rp.add_argument("--format", help="tracefs format file of mm_page_alloc (GFP bit table)")
    rp.add_argument("--pages", help="zone size (default: up to the highest pfn)")
    rp.add_argument("--mode", default="metadata", help="metadata|content")
    rp.add_argument("--backend", help="auto (default)|numpy|numba|cuda|cupy")
    rp.add_argument("--json", help="write the result object here (atomically)")
    rp.add_argument("--trace-clock", action="store_true",
                    help="keep the traced CPUs and timestamps (pcp lists, decay, reporting)")
    rp.add_argument("--pcp-high", help="auto (default)|fixed (per-cpu list high)")
    rp.add_argument("--zoneinfo", metavar="FILE",
                    help="/proc/zoneinfo of the traced machine: the zone is its Normal zone "
                         "(managed pages, unless --pages), with the watermarks and pcp limits "
                         "its node's other zones give it")
    rp.add_argument("--pcp-start", help="zoneinfo|empty: the per-cpu lists start as --zoneinfo's "
                                        "pagesets, split over the lists as the trace shows them "
                                        "(the default with --zoneinfo, --trace-clock and "
                                        "--replay-mode requests), or empty")
    rp.add_argument("--zoneinfo-after", metavar="FILE",
                    help="/proc/zoneinfo taken after the capture: its pagesets and 'pages free' "
                         "change printed beside the model's (with --zoneinfo, --replay-mode "
                         "requests)")
    rp.add_argument("--cost-profile", metavar="FILE", help="cost profile TOML")
    cal = sub.add_parser("calibrate", help="measure this machine's clearing and fault costs; "
                                           "write a cost profile")
    cal.add_argument("--out", required=True, metavar="FILE", help="profile to write (TOML)")
    cal.add_argument("--pool-mib", default="1024",
                     help="cold pool size, much larger than the last-level cache (1024)")
    cal.add_argument("--reps", default="3", help="repetitions, best kept (3)")
    cal.add_argument("--no-gpu", action="store_true", help="skip the GPU even where one exists")
    sw = sub.add_parser("sweep", help="run a comparison's cells on Dask workers")
    sw.add_argument("config")
    sw.add_argument("--workers", help="local worker processes (2)")
    sw.add_argument("--scheduler", help="address of an existing Dask scheduler")
    sw.add_argument("--out", help="output folder (default: results/<name>)")
    sw.add_argument("--cost-profile", metavar="FILE", help="cost profile TOML (overrides the config's)")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    cmd = next((a for a in argv if a in COMMANDS), None)
    prog = f"zeroing {cmd}" if cmd else "zeroing"
    # A Ctrl-C that a library's callback swallows still ends as an interrupt.
    with remembered_interrupts() as interrupted:
        try:
            args = build_parser().parse_args(argv)
            status = COMMAND_FUNCS[args.cmd](args)
            return _interrupted(prog, cmd) if interrupted else status
        except KeyboardInterrupt:
            return _interrupted(prog, cmd)
        except Exception as e:
            if interrupted:
                return _interrupted(prog, cmd)
            return _failed(prog, cmd, e)


def _interrupted(prog, cmd):
    print(f"{prog}: interrupted" + ("; finished runs are kept and the same command resumes"
                                    if cmd in ("compare", "sweep") else ""), file=sys.stderr)
    return 130


def _failed(prog, cmd, e):
    """The exit status and one line for an error the user can act on; anything else is a bug
    and raised again."""
    if isinstance(e, UserError):
        hint = f" (see {prog} --help)" if isinstance(e, ArgumentError) else ""
        print(f"{prog}: error: {printable(e)}{hint}", file=sys.stderr)
        return 2
    if isinstance(e, BrokenPipeError):
        # The reader went away (``| head -1``): stop quietly; nothing more goes to stdout.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    if isinstance(e, MemoryError):
        smaller = "--pool-mib" if cmd == "calibrate" else "--pages or workload"
        print(f"{prog}: error: out of memory ({printable(e) or 'an allocation failed'}): give "
              f"a smaller {smaller}", file=sys.stderr)
        return 2
    if isinstance(e, OSError):  # a file the user named cannot be written (disk full, ...)
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: error: {printable(where)}{e.strerror or e}", file=sys.stderr)
        return 2
    raise e


def cmd_demo(args):
    from .validate import check, check_memory
    pages = check("--pages", "pages", args.pages)
    events = check("--events", "events", args.events)
    seed = check("--seed", "seed", args.seed)
    check_memory(("--pages", "--events"), pages, events=events)
    from .demo import demo
    demo(pages, events, seed)
    return 0


def cmd_run(args):
    from .cost import DEFAULT_PROFILE
    from .initial_state import StateError, parse_spec
    from .pipeline import can_pipeline
    from .policy import as_array
    from .run import BadEventError, summary, write_json
    from .streaming import simulate_stream
    from .validate import (check, check_backend, check_memory, check_output_file, check_policy,
                           check_workload, check_workload_size, option)
    from .workloads import ALL_PARAMS, default_pages, iter_workload
    raw = {k: getattr(args, k) for k in ALL_PARAMS if k != "events"}
    raw["events"] = args.events
    params = check_workload("--workload", args.workload, raw, option)
    pages = check("--pages", "pages", args.pages) if args.pages is not None \
        else default_pages(args.workload)
    check_workload_size("--workload", args.workload, params, pages)
    seed = check("--seed", "seed", args.seed)
    mode = check("--mode", "mode", args.mode)
    given = defaults(args, backend="auto", pcp_high="auto", pipeline="off")
    check_backend("--backend", args.backend, mode)
    options = {"hint": args.hint, "free_signal": args.free_signal, "pfmemalloc": args.pfmemalloc,
               "aliasing_cache": args.aliasing_cache}
    if args.offload_batch is not None:
        options["offload_batch_pages"] = check("--offload-batch", "offload_batch", args.offload_batch)
    if args.offload_watermark is not None:
        options["offload_watermark"] = check("--offload-watermark", "offload_watermark",
                                             args.offload_watermark)
    if args.offload_period_ms is not None:
        ms = check("--offload-period-ms", "offload_period_ms", args.offload_period_ms)
        options["offload_period_ns"] = max(1, int(ms * 1e6))
    if args.offload_device is not None:
        options["offload_device"] = check("--offload-device", "offload_device",
                                          args.offload_device)
    spelled = {"offload_batch_pages": "--offload-batch", "offload_period_ns": "--offload-period-ms"}
    policy = check_policy("--policy", args.policy, options, lambda k: spelled.get(k) or option(k))
    backend_needs_content(mode, args.backend, "backend" in given)
    if args.no_pcp and "pcp_high" in given:
        raise UserError(f"--pcp-high {args.pcp_high}: has no effect with --no-pcp")
    profile = cost_profile("--cost-profile", args.cost_profile,
                           policy.offload_device if policy.offload else None)
    zone = {"pcp_high": check("--pcp-high", "pcp_high", args.pcp_high),
            "initial_state": check("--initial-state", "initial_state", args.initial_state),
            "state_seed": seed,
            "pipeline_mode": check("--pipeline", "pipeline", args.pipeline)}
    if args.other_zones is not None:
        zone["other_zones"] = check("--other-zones", "other_zones", args.other_zones)
    if zone["pipeline_mode"] == "on" and not can_pipeline(as_array(policy, pages)):
        why = f"--policy {args.policy}" if policy.offload else "--free-signal page_bit"
        raise UserError(f"--pipeline on: has no effect with {why} (the page allocator reads "
                        "page state there, so the run stays serial)")
    if args.json is not None:
        snapshot = None if zone["initial_state"] in ("pristine", "aged") \
            else parse_spec(zone["initial_state"])[0]
        check_output_file("--json", args.json, {"--cost-profile": args.cost_profile,
                                                "default cost profile": DEFAULT_PROFILE,
                                                "--initial-state": snapshot})
    check_memory(("--pages", "--events"), pages, mode, args.backend,
                 events=params.get("events", 0))
    try:
        events = iter_workload(args.workload, pages, seed=seed, reuse=True, **params)
        result = simulate_stream(events, policy, pages, mode=mode, backend=args.backend,
                                 pcp=not args.no_pcp, progress=True, cost_profile=profile,
                                 **zone)
    except MemoryError as e:  # the check above is an estimate; the machine may have less
        raise UserError(f"--pages {pages}: out of memory ({printable(e) or 'an allocation failed'}"
                        "): give a smaller --pages or workload") from None
    except (RuntimeError, BadEventError, StateError) as e:  # backend unavailable
        raise UserError(str(e)) from None

    result["workload"] = {"name": args.workload, "events": result["counters"]["events"],
                          "seed": seed,
                          **params}
    if args.json is not None:  # before printing: a closed stdout must not lose the result
        write_json(args.json, result)
    print(summary(result))
    if args.vmstat:
        from .counters import vmstat_lines
        from .cost import vmstat_cost_lines
        print(vmstat_lines(result["counters"]))
        print(vmstat_cost_lines(result["cost"]))
    return 0


def same_bytes(a, b):
    """True when files ``a`` and ``b`` hold the same bytes (both small: zoneinfo snapshots)."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read(1 << 22) == fb.read(1 << 22)


def cmd_replay(args):
    from .cost import DEFAULT_PROFILE
    from .replay import REPLAY_MODES, replay
    from .run import summary, write_json
    from .trace import load_format_table
    from .validate import (Choice, check, check_backend, check_input_file, check_memory,
                           check_output_file, check_policy)
    check_input_file("trace", args.trace)
    replay_mode = check("--replay-mode", "replay_mode", args.replay_mode, Choice(*REPLAY_MODES))
    policy = check_policy("--policy", args.policy, {})
    profile = cost_profile("--cost-profile", args.cost_profile)
    mode = check("--mode", "mode", args.mode)
    given = defaults(args, backend="auto", pcp_high="auto")
    check_backend("--backend", args.backend, mode)
    backend_needs_content(mode, args.backend, "backend" in given)
    if replay_mode == "exact" and "pcp_high" in given:
        raise UserError(f"--pcp-high {args.pcp_high}: has no effect with --replay-mode exact "
                        "(it places the trace's own pfns, without per-cpu lists; "
                        "--replay-mode requests has them)")
    pages = check("--pages", "pages", args.pages) if args.pages is not None else None
    # The snapshots' pagesets meet the model's per-cpu lists only with all three of these.
    seeded = args.zoneinfo is not None and args.trace_clock and replay_mode == "requests"
    if args.pcp_start is not None:
        check("--pcp-start", "pcp_start", args.pcp_start, Choice("zoneinfo", "empty"))
    for option, value in (("--pcp-start", args.pcp_start),
                          ("--zoneinfo-after", args.zoneinfo_after)):
        if value is not None and not seeded:
            raise UserError(f"{option} {value}: has no effect without --zoneinfo (the pagesets "
                            "before), --trace-clock (the traced CPUs) and --replay-mode "
                            "requests (the model's per-cpu lists)")
    if args.pcp_start is not None:
        seeded = args.pcp_start == "zoneinfo"
    other_zones = ()
    pagesets = None
    warnings = []  # said once every option has passed: a refused command is one line
    if args.zoneinfo is not None:
        from .zoneinfo import limits_differ, normal_zone, other_lowmem_zones
        check_input_file("--zoneinfo", args.zoneinfo)
        managed, free_before, zone_pagesets = normal_zone(args.zoneinfo)
        other_zones = other_lowmem_zones(args.zoneinfo)
        pagesets = zone_pagesets if seeded else None
        differ = limits_differ(args.zoneinfo) if pages is None else None
        if differ:
            warnings.append(f"warning: {printable(differ)}: the model derives its own from the "
                            "node's managed pages (the machine's vm.min_free_kbytes, "
                            "watermark_scale_factor or percpu_pagelist_high_fraction was "
                            "tuned, or THP is off there)")
        if pages is None:
            pages = check(f"--zoneinfo {args.zoneinfo} (its Normal zone's managed pages)",
                          "pages", managed)
    kernel_after = None
    if args.zoneinfo_after is not None:
        check_input_file("--zoneinfo-after", args.zoneinfo_after)
        if os.path.samefile(args.zoneinfo_after, args.zoneinfo):
            raise UserError(f"--zoneinfo-after {args.zoneinfo_after}: the same file as "
                            "--zoneinfo (the snapshot taken after the capture is another)")
        if same_bytes(args.zoneinfo_after, args.zoneinfo):
            raise UserError(f"--zoneinfo-after {args.zoneinfo_after}: a copy of --zoneinfo "
                            f"{args.zoneinfo} (two real snapshots differ: their counters "
                            "move between them)")
        managed_after, free_after, sets_after = normal_zone(args.zoneinfo_after)
        if (managed_after, len(sets_after)) != (managed, len(zone_pagesets)):
            raise UserError(f"--zoneinfo-after {args.zoneinfo_after}: a Normal zone of "
                            f"{managed_after} managed pages and {len(sets_after)} CPUs, "
                            f"--zoneinfo {args.zoneinfo} one of {managed} and "
                            f"{len(zone_pagesets)}: not the same machine (or memory was "
                            "ballooned or hotplugged between them, which the model does not "
                            "replay)")
        if (free_after, sets_after) == (free_before, zone_pagesets):
            warnings.append(f"warning: --zoneinfo-after {printable(args.zoneinfo_after)}: the "
                            "Normal zone's free pages and every CPU's pageset as in --zoneinfo "
                            f"{printable(args.zoneinfo)}: nothing moved between the snapshots "
                            "(a copy of it?)")
        kernel_after = {"zoneinfo": args.zoneinfo_after, "pagesets": sets_after,
                        "nr_free_pages_delta": free_after - free_before}
    if pages is not None:
        check_memory("--pages" if args.pages is not None else "--zoneinfo", pages, mode,
                     args.backend)
    if args.json is not None:
        check_output_file("--json", args.json, {"trace": args.trace, "--format": args.format,
                                                "--cost-profile": args.cost_profile,
                                                "--zoneinfo": args.zoneinfo,
                                                "--zoneinfo-after": args.zoneinfo_after,
                                                "default cost profile": DEFAULT_PROFILE})
    table = None
    if args.format is not None:
        check_input_file("--format", args.format)
        table = load_format_table(args.format)
    for line in warnings:
        print(line, file=sys.stderr)
    try:
        result = replay(args.trace, policy, replay_mode, args.lenient, table, pages, mode,
                        args.backend, progress=True, trace_clock=args.trace_clock,
                        pcp_high=check("--pcp-high", "pcp_high", args.pcp_high),
                        pcp_start=pagesets, cost_profile=profile, other_zones=other_zones,
                        pages_from="--pages" if args.pages is not None else
                        f"--zoneinfo {args.zoneinfo} (its Normal zone's managed pages)")
    except (RuntimeError, MemoryError, ValueError) as e:  # TraceError is a ValueError
        raise UserError(str(e)) from None
    if kernel_after is not None:
        result["kernel_after"] = kernel_after
    if args.json is not None:
        write_json(args.json, result)
    events = ", ".join(f"{k} {v}" for k, v in sorted(result["events"].items()))
    print(f"trace {args.trace} ({replay_mode}): {events}")
    print(f"malformed lines {result['malformed']}; anomalies {result['anomalies'] or 'none'}; "
          f"nr_free_pages_delta {result['nr_free_pages_delta']:+d}")
    missed = result["counters"].get("replay_miss", 0)
    if missed:  # exact mode: the allocations the summary's count leaves out
        print(f"traced allocations (or frees of pages allocated before the trace) the model "
              f"could not place: {missed} (their block was not free in the model: "
              "replay_miss)")
    for example in result["malformed_examples"]:  # --lenient: what was skipped, and where
        print(f"skipped {printable(example)}", file=sys.stderr)
    if result["malformed"] > len(result["malformed_examples"]):
        print(f"skipped {result['malformed'] - len(result['malformed_examples'])} more "
              "malformed lines (the first ones are shown)", file=sys.stderr)
    if result.get("truncated"):
        print(f"warning: {printable(result['truncated'])}; replayed the events read before it",
              file=sys.stderr)
    if "pcp" in result and replay_mode == "requests":
        p = result["pcp"]
        ticks = result.get("vmstat_ticks")
        print(f"model pcp: refill {p['refill_pages']} pages, drain {p['drain_pages']} pages, "
              f"NR_FREE_PAGES {p['nr_free_pages_delta']:+d}"
              + (f"; pcp high decayed at the trace's {ticks} vmstat_update ticks" if ticks
                 else ""))
        seen = result["events"]
        if seen.get("mm_page_alloc_zone_locked") or seen.get("mm_page_pcpu_drain"):
            stolen = (f", mm_page_alloc_extfrag {result['extfrag_pages']} pages (steals and "
                      "whole-pageblock claims)" if result["extfrag_pages"] else "")
            print(f"trace: mm_page_alloc_zone_locked {result['zone_locked_pages']} pages"
                  f"{stolen}, mm_page_pcpu_drain {result['pcpu_drain_pages']} pages, "
                  f"NR_FREE_PAGES {result['nr_free_pages_delta']:+d}")
        else:  # not a kernel that moved nothing: the capture left those events out
            print("trace: no mm_page_alloc_zone_locked or mm_page_pcpu_drain events recorded "
                  "(the kernel's refills, drains and NR_FREE_PAGES change are unknown)")
        if "start" in p:
            print(pcp_start_line(p["start"], args.zoneinfo))
            for cpu, s in enumerate(p["start"]["pagesets"]):
                if s["count"] - s["unplaced"] > max(s["count"], s["high"] or 0):
                    print(f"warning: {printable(args.trace)}: CPU {cpu}'s lists must have held "
                          f"{s['count'] - s['unplaced']} pages at its start, more than the "
                          f"high of {s['high']} in --zoneinfo {printable(args.zoneinfo)}: the "
                          "trace does not follow that snapshot (lines lost, or taken apart); "
                          "the model's lists start as the trace needs", file=sys.stderr)
        if kernel_after is not None:
            model = [(s["count"], s["high"]) for s in p["pagesets"]]
            kernel = [tuple(c) for c in kernel_after["pagesets"]]
            print(f"pcp (count, high) after: model {model}, kernel {kernel} (--zoneinfo-after); "
                  f"'pages free' change in the zoneinfos {kernel_after['nr_free_pages_delta']:+d}")
    print(summary(result))
    return 0


def pcp_start_line(start, zoneinfo):
    """What the per-cpu lists started with (``replay``'s ``pcp["start"]``), in one line."""
    cpus = []
    for cpu, s in enumerate(start["pagesets"]):
        lists = ", ".join(f"{mt} order {order} {n}" for order, mt, n in s["lists"])
        extra = (f", {s['unplaced']} not placed" if s["unplaced"] > 0 else
                 f", {-s['unplaced']} more than its count" if s["unplaced"] < 0 else "")
        cpus.append(f"CPU {cpu} {s['count']} pages ({lists or 'none'}{extra})")
    unknown = start["unknown_frees"]
    return (f"pcp lists at the start: {zoneinfo}'s pagesets, split by the trace: "
            + "; ".join(cpus)
            + (f"; frees not counted (pageblock migratetype unknown): {unknown}" if unknown
               else ""))


def defaults(args, **values):
    """Give the options left out their defaults; the names of those given (an option that
    has no effect is refused even when it names its default)."""
    given = {name for name in values if getattr(args, name) is not None}
    for name, value in values.items():
        if name not in given:
            setattr(args, name, value)
    return given


def backend_needs_content(mode, backend, given=True):
    """A backend holds page bytes: naming one in metadata mode would change nothing."""
    if mode == "metadata" and given:
        raise UserError(f"--backend {backend}: has no effect in metadata mode "
                        "(add --mode content)")


def cost_profile(where, path, offload_device=None):
    """The cost profile a run uses (the shipped default without ``path``); a bad file is one
    line naming it. ``offload_device``: the [offload.*] table the run needs must exist."""
    from .cost import ProfileError, load_profile
    from .validate import check_input_file
    if path is not None:
        check_input_file(where, path)
    try:
        profile = load_profile(path)
        if offload_device is not None:
            profile.device(offload_device)
    except ProfileError as e:
        raise UserError(str(e)) from None
    return profile


def cmd_calibrate(args):
    from .calibrate import calibrate
    from .validate import Int, available_memory, check, check_output_file
    check_output_file("--out", args.out)
    pool_mib = check("--pool-mib", "pool_mib", args.pool_mib, Int(64, 1 << 20))
    available = available_memory()
    if available is not None and pool_mib << 20 > available:
        raise UserError(f"--pool-mib {pool_mib}: more than the {available >> 20} MiB this "
                        "machine has available (the pool is written in full)")
    reps = check("--reps", "reps", args.reps, Int(1, 1000))
    calibrate(args.out, pool_mib, reps, gpu=not args.no_gpu)
    print(f"cost profile written to {args.out} (use it with --cost-profile {args.out})")
    return 0


def cmd_compare(args):
    from .compare import compare, load_config
    from .validate import check_output_folder
    cfg = load_config(args.config, args.cost_profile)
    if args.out is not None:
        check_output_folder("--out", args.out)
    out = compare(cfg, args.out, config=args.config)
    print(f"results, table and plots in {out}/")
    return 0


def cmd_sweep(args):
    from .compare import load_config
    from .sweep import sweep
    from .validate import check, check_output_folder
    if args.scheduler is not None and not args.scheduler.strip():
        raise UserError("--scheduler: an empty address: name a Dask scheduler (host:port)")
    if args.scheduler is not None and args.workers is not None:
        raise UserError(f"--workers {args.workers}: has no effect with --scheduler (the "
                        "scheduler's cluster has its own workers)")
    workers = check("--workers", "workers", "2" if args.workers is None else args.workers)
    cfg = load_config(args.config, args.cost_profile)
    if args.out is not None:
        check_output_folder("--out", args.out)
    out = sweep(cfg, workers, args.scheduler, args.out, config=args.config)
    print(f"results, table and plots in {out}/")
    return 0


COMMAND_FUNCS = {"demo": cmd_demo, "run": cmd_run, "replay": cmd_replay, "compare": cmd_compare,
                 "sweep": cmd_sweep, "calibrate": cmd_calibrate}


if __name__ == "__main__":
    sys.exit(main())
