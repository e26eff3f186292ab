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
    r = sub.add_parser("run", help="run a workload under one (composed) policy")
    r.add_argument("--workload", default="mixed")
    r.add_argument("--policy", default="baseline", help="NAME[,NAME...] composed")
    r.add_argument("--hint", choices=("pghint", "lru_bit", "folio_flag"))
    r.add_argument("--free-signal", choices=("fpi", "page_bit"))
    r.add_argument("--pfmemalloc", choices=("assign", "or"))
    r.add_argument("--aliasing-cache", action="store_true", default=None)
    r.add_argument("--mode", default="metadata", choices=("metadata", "content"))
    r.add_argument("--backend", default="auto",
                   choices=("auto", "numpy", "numba", "cuda", "cupy"))
    r.add_argument("--pages", type=int, help="zone size (default: the workload's own)")
    r.add_argument("--events", type=int, help="events (mixed, unaware-user)")
    from .workloads import ALL_PARAMS
    for param in ALL_PARAMS:
        if param != "events":
            r.add_argument("--" + param.replace("_", "-"), dest=param, metavar="VALUE",
                           help="workload parameter (see README)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-pcp", action="store_true")
    r.add_argument("--offload-batch", type=int,
                   help="pages per offload batch (default: the offload device profile's)")
    r.add_argument("--offload-watermark", type=float,
                   help="offload runs when dirty free pages exceed this fraction (0.05)")
    r.add_argument("--offload-period-ms", type=float, help="offload zeroer period (100)")
    r.add_argument("--offload-device", choices=("cpu", "gpu", "dma"),
                   help="which [offload.*] device of the cost profile zeroes (cpu)")
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
    rp.add_argument("--replay-mode", default="exact", choices=("exact", "requests"))
    rp.add_argument("--policy", default="baseline")
    rp.add_argument("--lenient", action="store_true", help="count and skip unreadable lines")
    rp.add_argument("--format", help="tracefs format file of mm_page_alloc (GFP bit table)")
    rp.add_argument("--pages", type=int, help="zone size (default: up to the highest pfn)")
    rp.add_argument("--mode", default="metadata", choices=("metadata", "content"))
    rp.add_argument("--backend", default="auto")
    rp.add_argument("--json", help="write the result object here (atomically)")
    rp.add_argument("--cost-profile", metavar="FILE", help="cost profile TOML")
    cal = sub.add_parser("calibrate", help="measure this machine's clearing and fault costs; "
                                           "write a cost profile")
    cal.add_argument("--out", required=True, metavar="FILE", help="profile to write (TOML)")
    cal.add_argument("--pool-mib", type=int, default=1024,
                     help="cold pool size, much larger than the last-level cache (1024)")
    cal.add_argument("--reps", type=int, default=3, help="repetitions, best kept (3)")
    cal.add_argument("--no-gpu", action="store_true", help="skip the GPU even where one exists")
    sw = sub.add_parser("sweep", help="run a comparison's cells on Dask workers")
    sw.add_argument("config")
    sw.add_argument("--workers", type=int, default=2, help="local worker processes (2)")
    sw.add_argument("--scheduler", help="address of an existing Dask scheduler")
    sw.add_argument("--out", help="output folder (default: results/<name>)")
    sw.add_argument("--cost-profile", metavar="FILE", help="cost profile TOML (overrides the config's)")
    args = p.parse_args(argv)
    if args.cmd == "sweep":
        from .compare import ConfigError, load_config
        from .sweep import sweep
        try:
            cfg = load_config(args.config, args.cost_profile)
            out = sweep(cfg, args.workers, args.scheduler, args.out)
        except (ConfigError, ValueError) as e:
            p.error(str(e))
        print(f"results, table and plots in {out}/")
        return 0
    if args.cmd == "replay":
        return cmd_replay(args, p)
    if args.cmd == "compare":
        from .compare import ConfigError, compare, load_config
        try:
            cfg = load_config(args.config, args.cost_profile)
        except ConfigError as e:
            p.error(str(e))
        out = compare(cfg, args.out)
        print(f"results, table and plots in {out}/")
        return 0
    if args.cmd == "run":
        return cmd_run(args, p)
    if args.cmd == "calibrate":
        from .calibrate import calibrate
        try:
            calibrate(args.out, args.pool_mib, args.reps, gpu=not args.no_gpu)
        except (ValueError, OSError) as e:
            print(f"zeroing calibrate: error: {e}", file=sys.stderr)
            return 2
        print(f"cost profile written to {args.out} (use it with --cost-profile {args.out})")
        return 0
    if args.cmd == "demo":
        from .demo import demo
        demo(args.pages, args.events, args.seed)
    return 0


def cmd_run(args, parser):
    from .policy import make_policy
    from .run import simulate, summary, write_json
    from .workloads import ALL_PARAMS, WORKLOADS, default_pages, make_workload
    try:
        policy = make_policy(args.policy, hint=args.hint, free_signal=args.free_signal,
                             pfmemalloc=args.pfmemalloc, aliasing_cache=args.aliasing_cache,
                             offload_batch_pages=args.offload_batch,
                             offload_watermark=args.offload_watermark,
                             offload_period_ns=None if args.offload_period_ms is None
                             else int(args.offload_period_ms * 1e6),
                             offload_device=args.offload_device)
        from .cost import load_profile
        profile = load_profile(args.cost_profile)
        if policy.offload:
            profile.device(policy.offload_device)
        if args.workload not in WORKLOADS:
            raise ValueError(f"unknown workload {args.workload!r}: choose from {', '.join(WORKLOADS)}")
        pages = args.pages or default_pages(args.workload)
        if pages < 1024 or (args.events is not None and args.events < 1):
            raise ValueError("--pages must be at least 1024 and --events at least 1")
        params = {k: getattr(args, k) for k in ALL_PARAMS if k != "events"}
        events = make_workload(args.workload, pages, args.events, args.seed, **params)
    except ValueError as e:
        parser.error(str(e))
    try:
        result = simulate(events, policy, pages, mode=args.mode, backend=args.backend,
                          pcp=not args.no_pcp, progress=True, cost_profile=profile)
    except (RuntimeError, MemoryError) as e:  # backend unavailable, pool too large
        parser.error(str(e))
    result["workload"] = {"name": args.workload, "events": len(events), "seed": args.seed,
                          **{k: v for k, v in params.items() if v is not None}}
    print(summary(result))
    if args.vmstat:
        from .counters import vmstat_lines
        from .cost import vmstat_cost_lines
        print(vmstat_lines(result["counters"]))
        print(vmstat_cost_lines(result["cost"]))
    if args.json:
        write_json(args.json, result)
    return 0


def cmd_replay(args, parser):
    import os

    from .policy import make_policy
    from .replay import replay
    from .run import summary, write_json
    from .trace import TraceError, load_format_table
    try:
        if not os.path.exists(args.trace):
            raise ValueError(f"{args.trace}: no such file")
        policy = make_policy(args.policy)
        table = load_format_table(args.format) if args.format else None
        from .cost import load_profile
        profile = load_profile(args.cost_profile)
        result = replay(args.trace, policy, args.replay_mode, args.lenient, table, args.pages,
                        args.mode, args.backend, cost_profile=profile)
    except (TraceError, ValueError, OSError, RuntimeError, MemoryError) as e:
        print(f"zeroing replay: error: {e}", file=sys.stderr)
        return 2
    events = ", ".join(f"{k} {v}" for k, v in sorted(result["events"].items()))
    print(f"trace {args.trace} ({args.replay_mode}): {events}")
    print(f"malformed lines {result['malformed']}; anomalies {result['anomalies'] or 'none'}; "
          f"nr_free_pages_delta {result['nr_free_pages_delta']:+d}")
    print(summary(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
