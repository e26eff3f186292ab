"""``zeroing compare CONFIG.toml``: a matrix of workloads x policies x seeds, and its report.

Results go to ``results/<name>/``: ``config.json`` (the resolved config), ``provenance.json``,
``runs/*.json`` (one per cell, written atomically, skipped on a re-run when complete and made
from the same cell spec), ``results.csv`` (tidy), ``snapshots/*.txt`` (buddyinfo, zeroed
table, vmstat lines), ``compare.txt`` (mmtests-style table) and PNG plots.
"""
import csv
import hashlib
import io
import json
import os
import platform
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from . import counters as C
from .policy import Policy, make_policy
from .run import MODES, simulate, write_json, write_text
from .report import compare_table
from .report import metrics as report_metrics
from .workloads import WORKLOADS, default_pages, make_workload

TOP_KEYS = {"name": str, "seeds": list, "mode": str, "backend": str, "baseline": str,
            "workload": list, "policies": dict, "out": str, "pcp": bool, "throughput": bool,
            "cost_profile": str}
POLICY_OPTIONS = {f.name for f in Policy.__dataclass_fields__.values()}


class ConfigError(ValueError):
    pass


def load_config(path, cost_profile=None):
    """Read and validate a config; every problem names the file, the key and the reason.
    ``cost_profile`` (a path) overrides the config's ``cost_profile`` key."""
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    if cost_profile is not None:
        raw["cost_profile"] = os.path.abspath(cost_profile)
    elif "cost_profile" in raw and isinstance(raw["cost_profile"], str) \
            and not os.path.isabs(raw["cost_profile"]):
        # Relative to the config file, so a config and its profile travel together.
        raw["cost_profile"] = os.path.join(os.path.dirname(os.path.abspath(path)),
                                           raw["cost_profile"])
    return resolve_config(raw, path)


def resolve_config(raw, path="<config>"):
    def bad(key, reason):
        raise ConfigError(f"{path}: {key}: {reason}")

    for key, value in raw.items():
        if key not in TOP_KEYS:
            bad(key, f"unknown key (known: {', '.join(TOP_KEYS)})")
        if not isinstance(value, TOP_KEYS[key]):
            bad(key, f"expected {TOP_KEYS[key].__name__}, got {type(value).__name__}")
    cfg = {"name": raw.get("name") or os.path.splitext(os.path.basename(path))[0],
           "seeds": raw.get("seeds", [0]), "mode": raw.get("mode", "metadata"),
           "backend": raw.get("backend", "auto"), "pcp": raw.get("pcp", True),
           "out": raw.get("out", "results"), "throughput": raw.get("throughput", True)}
    if not cfg["seeds"] or not all(isinstance(s, int) for s in cfg["seeds"]):
        bad("seeds", "must be a non-empty list of integers")
    if cfg["mode"] not in MODES:
        bad("mode", f"unknown mode {cfg['mode']!r} (choose from {', '.join(MODES)})")
    workloads = []
    for i, w in enumerate(raw.get("workload", [])):
        where = f"workload[{i}]"
        if not isinstance(w, dict) or "name" not in w:
            bad(where, "needs a name")
        params = {k: v for k, v in w.items() if k not in ("name", "label", "pages")}
        if w["name"] not in WORKLOADS:
            bad(f"{where}.name", f"unknown workload {w['name']!r} (choose from {', '.join(WORKLOADS)})")
        _, spec = WORKLOADS[w["name"]]
        for k, v in params.items():
            if k not in spec:
                bad(f"{where}.{k}", f"workload {w['name']!r} has no such parameter "
                                    f"(it takes: {', '.join(spec)})")
            try:
                spec[k](v)
            except (TypeError, ValueError) as e:
                bad(f"{where}.{k}", f"bad value {v!r} ({e})")
        pages = w.get("pages", default_pages(w["name"]))
        if not isinstance(pages, int) or pages < 1024:
            bad(f"{where}.pages", "must be an integer >= 1024")
        label = w.get("label") or " ".join([w["name"]] + [f"{k}={v}" for k, v in params.items()])
        workloads.append({"name": w["name"], "label": label, "pages": pages, "params": params})
    if not workloads:
        bad("workload", "at least one [[workload]] table is needed")
    if len({w["label"] for w in workloads}) != len(workloads):
        bad("workload", "labels must be unique")
    policies = {}
    for label, spec in raw.get("policies", {}).items():
        where = f"policies.{label}"
        if isinstance(spec, str):
            spec = {"policy": spec}
        if not isinstance(spec, dict) or "policy" not in spec:
            bad(where, "a policy string, or a table with 'policy' and options")
        options = {k: v for k, v in spec.items() if k != "policy"}
        for k in options:
            if k not in POLICY_OPTIONS:
                bad(f"{where}.{k}", "unknown policy option")
        try:
            make_policy(spec["policy"], **options)
        except (ValueError, TypeError) as e:
            bad(where, str(e))
        policies[label] = {"policy": spec["policy"], **options}
    if not policies:
        bad("policies", "at least one policy is needed")
    cfg["baseline"] = raw.get("baseline", next(iter(policies)))
    if cfg["baseline"] not in policies:
        bad("baseline", f"{cfg['baseline']!r} is not one of the policies")
    cfg["workloads"] = workloads
    cfg["policies"] = policies
    from .cost import DEFAULT_PROFILE, ProfileError, load_profile
    cfg["cost_profile"] = raw.get("cost_profile", DEFAULT_PROFILE)
    try:
        profile = load_profile(cfg["cost_profile"])
    except ProfileError as e:
        bad("cost_profile", str(e))
    for label, spec in policies.items():
        if make_policy(spec["policy"], **{k: v for k, v in spec.items() if k != "policy"}).offload:
            try:
                profile.device(spec.get("offload_device", "cpu"))
            except ProfileError as e:
                bad(f"policies.{label}.offload_device", str(e))
    with open(cfg["cost_profile"], "rb") as f:
        cfg["cost_profile_sha256"] = hashlib.sha256(f.read()).hexdigest()[:16]
    return cfg


def cells(cfg):
    for w in cfg["workloads"]:
        for label in cfg["policies"]:
            for seed in cfg["seeds"]:
                yield w, label, seed


def cell_id(w, label, seed):
    safe = lambda s: "".join(c if c.isalnum() or c in "-_.=" else "_" for c in s)
    return f"{safe(w['label'])}__{safe(label)}__seed{seed}"


def cell_spec(cfg, w, label, seed):
    return {"workload": w, "policy": cfg["policies"][label], "seed": seed, "mode": cfg["mode"],
            "backend": cfg["backend"], "pcp": cfg["pcp"],
            "cost_profile_sha256": cfg.get("cost_profile_sha256")}


def spec_hash(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def read_complete(path, digest):
    """The run's result if the file is complete and was made from this spec, else None."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if data.get("complete") is True and data.get("spec_hash") == digest:
        return data
    return None


def run_cell(cfg, w, label, seed):
    spec = cell_spec(cfg, w, label, seed)
    pol = dict(cfg["policies"][label])
    policy = make_policy(pol.pop("policy"), **pol)
    events = make_workload(w["name"], w["pages"], seed=seed, **w["params"])
    result = simulate(events, policy, w["pages"], mode=cfg["mode"], backend=cfg["backend"],
                      pcp=cfg["pcp"], cost_profile=cfg.get("cost_profile"))
    result.update(workload=w, policy_label=label, seed=seed, spec=spec,
                  spec_hash=spec_hash(spec), complete=True,
                  events_sha256=hashlib.sha256(events.tobytes()).hexdigest()[:16])
    return result


def metrics(result):
    """The figures compared across policies (time first; see ``report.metrics``)."""
    return report_metrics(result)


def provenance(cfg):
    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                                  cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
        except OSError:
            return ""
    from importlib import metadata
    versions = {}
    for pkg in ("numpy", "numba", "llvmlite", "matplotlib", "tqdm", "cupy", "numba-cuda"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    info = {"git_revision": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain")),
            "python": sys.version.split()[0], "platform": platform.platform(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "packages": versions,
            "mode": cfg["mode"], "backend_requested": cfg["backend"]}
    if cfg["mode"] == "content":
        from kernels import get_backend
        b = get_backend(cfg["backend"])
        info.update(backend=b.name, device=b.describe())
    else:
        info.update(backend="none (metadata mode)", device="none")
    return info


def snapshot_text(result):
    from allocator import format_buddyinfo, format_zeroedinfo
    from .cost import vmstat_cost_lines
    return "\n".join([format_buddyinfo(result["buddyinfo"]), format_zeroedinfo(result["zeroedinfo"]),
                      C.vmstat_lines(result["counters"])]
                     + ([vmstat_cost_lines(result["cost"])] if "cost" in result else [])) + "\n"


def prepare(cfg, out=None):
    """Create the output folder; write the resolved config and provenance. Returns
    (out, cells as (workload, policy label, seed, run path, spec hash))."""
    out = out or os.path.join(cfg["out"], cfg["name"])
    for sub in ("runs", "snapshots"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    write_json(os.path.join(out, "config.json"), cfg)
    write_json(os.path.join(out, "provenance.json"), provenance(cfg))
    todo = [(w, label, seed, os.path.join(out, "runs", cell_id(w, label, seed) + ".json"),
             spec_hash(cell_spec(cfg, w, label, seed))) for w, label, seed in cells(cfg)]
    return out, todo


def execute_cell(cfg, w, label, seed, path):
    """Run one cell and write its result and snapshot atomically (idempotent)."""
    result = run_cell(cfg, w, label, seed)
    write_json(path, result)
    snap = os.path.join(os.path.dirname(os.path.dirname(path)), "snapshots",
                        os.path.basename(path)[: -len(".json")] + ".txt")
    write_text(snap, snapshot_text(result))
    return path


def run_serial(cfg, missing, progress):
    from tqdm import tqdm
    for w, label, seed, path, _ in tqdm(missing, unit="run", disable=not progress, desc=cfg["name"]):
        execute_cell(cfg, w, label, seed, path)


def collect(cfg, out, todo, log=print):
    """Read every cell's result (all must be complete now) and write the report."""
    results = []
    for w, label, seed, path, digest in todo:
        r = read_complete(path, digest)
        if r is None:
            raise RuntimeError(f"{path}: the run did not complete")
        results.append(r)
    write_report(cfg, results, out, log)
    return results


def compare(cfg, out=None, progress=True, log=print, runner=None):
    """Run (or resume) every cell, then write the report. Returns the output folder.

    ``runner(cfg, missing, progress)`` executes the missing cells (serially by default; the
    Dask sweep passes its own).
    """
    out, todo = prepare(cfg, out)
    missing = [c for c in todo if read_complete(c[3], c[4]) is None]
    if len(missing) < len(todo):
        log(f"resumed: {len(todo) - len(missing)} of {len(todo)} runs were complete and not redone")
    (runner or run_serial)(cfg, missing, progress)
    collect(cfg, out, todo, log)
    return out


def write_report(cfg, results, out, log=print):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["workload", "policy", "seed", "metric", "value"])
    for r in results:
        for name, value in sorted(r["counters"].items()):
            if isinstance(value, (int, float)):
                writer.writerow([r["workload"]["label"], r["policy_label"], r["seed"], name, value])
        for name, value in sorted(r.get("cost", {}).items()):
            if isinstance(value, int):
                writer.writerow([r["workload"]["label"], r["policy_label"], r["seed"],
                                 "cost_" + name, value])
        for name, (value, _) in metrics(r).items():
            writer.writerow([r["workload"]["label"], r["policy_label"], r["seed"], name, value])
    write_text(os.path.join(out, "results.csv"), buf.getvalue())
    table = compare_table(cfg, results, metrics)
    write_text(os.path.join(out, "compare.txt"), table)
    log(table)
    from .plots import write_plots
    plots = write_plots(cfg, results, out)
    log("plots: " + ", ".join(os.path.join(out, p) for p in plots))
