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
import re
import subprocess
import sys

from . import counters as C
from .policy import make_policy
from .report import compare_table, metrics
from .run import GUEST_OTHER_ZONES, json_text, write_json, write_text
from .streaming import simulate_stream
from .tomlfile import key_line, read_toml
from .validate import (UserError, check, check_backend, check_memory, check_policy,
                       check_policy_names, check_policy_options, check_workload, check_workload_size,
                       output_target, printable, refuse_odd_file)
from .workloads import default_pages, iter_workload

TOP_KEYS = {"name": str, "seeds": list, "mode": str, "backend": str, "baseline": str,
            "workload": list, "policies": dict, "out": str, "pcp": bool, "throughput": bool,
            "pcp_high": str, "initial_state": str, "other_zones": list, "cost_profile": str}
#: The most runs (cells) one config may make: each writes a file, and 10^5 of even the
#: quickest runs take hours.
MAX_CELLS = 100_000
#: Keys of a [[workload]] table that set up the zone rather than the workload.
ZONE_KEYS = ("pcp_high", "initial_state", "other_zones")
WORKLOAD_KEYS = ("name", "label", "pages") + ZONE_KEYS


class ConfigError(UserError):
    pass


def load_config(path, cost_profile=None):
    """Read and validate a config; every problem names the file, the key and the reason.
    ``cost_profile`` (a path) overrides the config's ``cost_profile`` key."""
    from .cost import ProfileError, load_profile
    from .validate import check_input_file
    raw, text = read_toml(path, ConfigError, "config", missing="no such file", with_text=True)
    if cost_profile is not None:
        try:
            load_profile(check_input_file("--cost-profile", cost_profile))
        except ProfileError as e:
            raise ConfigError(f"--cost-profile: {e}") from None
        raw["cost_profile"] = os.path.abspath(cost_profile)
    # Files the config names are relative to it, so a config and its files travel together.
    folder = os.path.dirname(os.path.abspath(path))
    if isinstance(raw.get("cost_profile"), str) and raw["cost_profile"].strip() and \
            not os.path.isabs(raw["cost_profile"]):
        raw["cost_profile"] = os.path.join(folder, raw["cost_profile"])
    workloads = raw.get("workload")
    for table in [raw] + (workloads if isinstance(workloads, list) else []):
        if isinstance(table, dict) and "initial_state" in table:
            table["initial_state"] = _beside(folder, table["initial_state"])
    return resolve_config(raw, path, text)


def config_inputs(cfg):
    """{what: path} of the files a resolved config reads besides itself: its cost profile and
    the snapshot files its workloads start from."""
    from .initial_state import parse_spec
    inputs = {"cost profile": cfg.get("cost_profile")}
    for i, w in enumerate(cfg["workloads"]):
        if w.get("initial_state", "pristine") not in ("pristine", "aged"):
            inputs[f"workload[{i}] initial_state"] = parse_spec(w["initial_state"])[0]
    return inputs


def _beside(folder, spec):
    """An initial_state naming a snapshot file, relative to ``folder`` (the config's) unless
    absolute; a state name (pristine, aged) or anything not a text is left as it is."""
    from .initial_state import STATES
    if not isinstance(spec, str) or not spec.strip() or spec in STATES or os.path.isabs(spec):
        return spec  # an empty one is named as such by its rule, not as the config's folder
    return os.path.join(folder, spec)


def resolve_config(raw, path="<config>", text=None):
    """Every key checked by zeroing.validate's rules (those of the command line), in the
    order of the file, before any run starts. With the file's ``text`` a message names the
    line too (``FILE:LINE: key: ...``)."""
    try:
        return _resolve_config(raw, path, text)
    except ConfigError:
        raise
    except UserError as e:
        raise ConfigError(str(e)) from None


def _resolve_config(raw, path, text):
    from .initial_state import StateError, check_initial_state

    def where(key):
        line = key_line(text, key) if text is not None else None
        return f"{path}:{line}: {printable(key)}" if line else f"{path}: {printable(key)}"

    def bad(key, reason):
        raise ConfigError(f"{where(key)}: {reason}")

    for key, value in raw.items():
        if key not in TOP_KEYS:
            bad(key, f"unknown key (known: {', '.join(TOP_KEYS)})")
        if TOP_KEYS[key] in (list, dict) and not isinstance(value, TOP_KEYS[key]):
            bad(key, f"expected {'a list' if TOP_KEYS[key] is list else 'a table'}, "
                     f"got {type(value).__name__}")
    cfg = {"name": raw["name"] if "name" in raw else os.path.splitext(os.path.basename(path))[0],
           "seeds": raw.get("seeds", [0]), "mode": raw.get("mode", "metadata"),
           "backend": raw.get("backend", "auto"), "pcp": raw.get("pcp", True),
           "out": raw.get("out", "results"), "throughput": raw.get("throughput", True),
           "pcp_high": raw.get("pcp_high", "auto"),
           "initial_state": raw.get("initial_state", "pristine"),
           "other_zones": raw.get("other_zones", list(GUEST_OTHER_ZONES))}
    for key in ("name", "mode", "pcp", "out", "throughput", "pcp_high", "initial_state",
                "other_zones"):
        cfg[key] = check(where(key), key, cfg[key])
    if not cfg["seeds"]:
        bad("seeds", "[] is not allowed: a non-empty list of integers")
    cfg["seeds"] = [check(where(f"seeds[{i}]"), "seed", s) for i, s in enumerate(cfg["seeds"])]
    if len(set(cfg["seeds"])) != len(cfg["seeds"]):
        bad("seeds", f"{cfg['seeds']} is not allowed: the seeds must differ "
                     "(a repeated seed repeats a run and narrows the spread)")
    check_backend(where("backend"), cfg["backend"], cfg["mode"])
    if cfg["mode"] == "metadata" and "backend" in raw:
        bad("backend", f"{cfg['backend']!r} has no effect in metadata mode (set mode = "
                       "\"content\", or leave backend out)")
    workloads = []
    for i, w in enumerate(raw.get("workload", [])):
        at = f"workload[{i}]"
        if not isinstance(w, dict):
            bad(at, f"expected a table ([[workload]]), got {type(w).__name__}")
        if "name" not in w:
            bad(at, "needs a name")
        params = {k: v for k, v in w.items() if k not in WORKLOAD_KEYS}
        params = check_workload(where(f"{at}.name"), w["name"], params,
                                lambda k, at=at: where(f"{at}.{k}"))
        zone = {k: check(where(f"{at}.{k}"), k, w.get(k, cfg[k])) for k in ZONE_KEYS}
        if not cfg["pcp"] and ("pcp_high" in w or "pcp_high" in raw):
            bad(f"{at}.pcp_high" if "pcp_high" in w else "pcp_high",
                f"{zone['pcp_high']!r} has no effect with pcp = false")
        pages = check(where(f"{at}.pages"), "pages", w.get("pages", default_pages(w["name"])))
        check_workload_size(where(f"{at}.name"), w["name"], params, pages)
        check_memory(where(f"{at}.pages"), pages, cfg["mode"], cfg["backend"])
        try:
            snapshot = check_initial_state(zone["initial_state"], pages)
        except StateError as e:
            bad(f"{at}.initial_state" if "initial_state" in w else "initial_state", str(e))
        if snapshot:  # part of the cells' spec: an edited snapshot runs them again
            zone["initial_state_sha256"] = snapshot
        label = w["label"] if "label" in w else " ".join(
            [w["name"]] + [f"{k}={v}" for k, v in params.items()]
            + [f"{k}={v}" for k, v in zone.items() if k in w])
        label = check(where(f"{at}.label"), "label", label)
        workloads.append({"name": w["name"], "label": label, "pages": pages, "params": params,
                          **zone})
    if not workloads:
        bad("workload", "at least one [[workload]] table is needed")
    for key in ZONE_KEYS:
        if key in raw and all(key in w for w in raw["workload"]):
            bad(key, f"{raw[key]!r} has no effect: every [[workload]] sets its own {key}")
    labels = [w["label"] for w in workloads]
    twice = next((i for i, label in enumerate(labels) if label in labels[:i]), None)
    if twice is not None:
        bad(f"workload[{twice}]", f"label {labels[twice]!r} is that of workload"
                                  f"[{labels.index(labels[twice])}] too: labels must be unique")
    policies, offload, made_by = {}, {}, {}
    for label, spec in raw.get("policies", {}).items():
        at = f"policies.{label}"
        check(where(at), "label", label)
        if isinstance(spec, str):
            spec = {"policy": spec}
        if not isinstance(spec, dict) or "policy" not in spec:
            bad(at, "a policy string, or a table with 'policy' and options")
        def key(k, at=at):
            return where(f"{at}.{k}")
        # Kept converted (a TOML string "1" for an integer option is 1 from here on).
        options = check_policy_options({k: v for k, v in spec.items() if k != "policy"}, key)
        made = check_policy(where(at), spec["policy"], options, key)
        same = next((other for other, p in made_by.items() if p == made), None)
        if same is not None:
            bad(at, f"the same policy as policies.{printable(same)} (a cell would run twice)")
        made_by[label], offload[label] = made, made.offload
        # The names as checked (spaces around them trimmed), as the run will make them.
        policies[label] = {"policy": check_policy_names(where(at), spec["policy"]), **options}
    if not policies:
        bad("policies", "at least one policy is needed")
    cfg["baseline"] = raw.get("baseline", next(iter(policies)))
    if not isinstance(cfg["baseline"], str) or cfg["baseline"] not in policies:
        bad("baseline", f"{cfg['baseline']!r} is not one of the policies")
    cfg["workloads"] = workloads
    cfg["policies"] = policies
    nr_cells = len(workloads) * len(policies) * len(cfg["seeds"])
    if nr_cells > MAX_CELLS:
        bad("workload", f"{len(workloads)} workloads x {len(policies)} policies x "
                        f"{len(cfg['seeds'])} seeds make {nr_cells} runs, more than {MAX_CELLS} "
                        "(a run file each): split the matrix")
    check_cell_ids(cfg, path)
    from .cost import DEFAULT_PROFILE, ProfileError, load_profile
    cfg["cost_profile"] = check(where("cost_profile"), "cost_profile",
                                raw.get("cost_profile", DEFAULT_PROFILE))
    try:
        profile = load_profile(cfg["cost_profile"])
    except ProfileError as e:
        bad("cost_profile", str(e))
    for label, spec in policies.items():
        if offload[label]:
            try:
                profile.device(spec.get("offload_device", "cpu"))
            except ProfileError as e:
                bad(f"policies.{label}.offload_device", str(e))
    with open(cfg["cost_profile"], "rb") as f:
        cfg["cost_profile_sha256"] = hashlib.sha256(f.read()).hexdigest()[:16]
    return cfg


#: The longest file name most Linux file systems take, in bytes.
NAME_MAX = 255


def check_cell_ids(cfg, path="<config>"):
    """Refuse, up front, two cells that would write one run file (file systems that ignore
    case included)."""
    seen = {}
    for w, label, seed in cells(cfg):
        name = cell_id(w, label, seed) + ".json"
        if len(name.encode()) > NAME_MAX:
            raise ConfigError(f"{path}: workload {w['label']!r} policy {label!r} seed {seed}: "
                              f"its run file's name would be {len(name.encode())} bytes, over "
                              f"the {NAME_MAX} a file system allows: give shorter labels")
        key = cell_id(w, label, seed).casefold()
        if key in seen:
            (w0, l0, s0) = seen[key]
            raise ConfigError(f"{path}: workload {w0['label']!r} policy {l0!r} seed {s0} and "
                              f"workload {w['label']!r} policy {label!r} seed {seed} would write "
                              "the same run file: rename one of the labels")
        seen[key] = (w, label, seed)


def cells(cfg):
    for w in cfg["workloads"]:
        for label in cfg["policies"]:
            for seed in cfg["seeds"]:
                yield w, label, seed


def safe_label(s):
    """A label as part of a file name: other characters become ``_``, and then a short hash
    of the exact label is appended, so ``pg_zeroed+reporting`` and ``pg_zeroed_reporting``
    get different files (a lower-case label of safe characters keeps its plain name)."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.=") else "_" for c in s)
    if safe != s or safe != safe.lower():  # upper case too: "A" and "a" on a case-blind disk
        safe += "-" + hashlib.sha256(s.encode()).hexdigest()[:8]
    return safe


def cell_id(w, label, seed):
    return f"{safe_label(w['label'])}__{safe_label(label)}__seed{seed}"


def cell_spec(cfg, w, label, seed):
    return {"workload": w, "policy": cfg["policies"][label], "seed": seed, "mode": cfg["mode"],
            "backend": cfg["backend"], "pcp": cfg["pcp"],
            "cost_profile_sha256": cfg.get("cost_profile_sha256"), "model_sha256": model_digest()}


_model_digest = []


def model_digest():
    """A digest of the simulator's own sources (``allocator/``, ``kernels/``, ``zeroing/``):
    part of each cell's spec, so a run made by other code (an update that changed a kernel
    rule) is run again rather than reported beside new ones. Any edit there counts, whether it
    changes results or not: a resume after one reruns every cell."""
    if not _model_digest:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        h = hashlib.sha256()
        for package in ("allocator", "kernels", "zeroing"):
            for folder, _, files in sorted(os.walk(os.path.join(root, package))):
                for name in sorted(f for f in files if f.endswith((".py", ".toml"))):
                    path = os.path.join(folder, name)
                    h.update(os.path.relpath(path, root).encode() + b"\0")
                    with open(path, "rb") as f:
                        h.update(f.read())
        _model_digest.append(h.hexdigest()[:16])
    return _model_digest[0]


def spec_hash(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


#: The files the report writes into the output folder (report and plots).
REPORT_FILES = ("results.csv", "compare.txt", "cleared_by_site.png", "hit_rate_by_order.png",
                "time_by_site.png", "throughput.json", "clearing_throughput.png")


def result_digest(result):
    """A run file's own check: the sha256 of its result without this key. A file whose
    content does not give it back (damaged, edited by hand, foreign) is run again, so the
    report is built only from results the simulator wrote."""
    body = {k: v for k, v in result.items() if k != "result_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def read_complete(path, digest):
    """The run's result if the file is complete, intact and was made from this spec, else
    None. Something other than a regular file there is refused (a FIFO would block)."""
    refuse_odd_file(path, "a run's result")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(data, dict) and data.get("complete") is True \
            and data.get("spec_hash") == digest and isinstance(data.get("counters"), dict) \
            and data.get("result_sha256") == result_digest(data):
        return data
    return None  # damaged, edited, foreign or stale: the cell runs again and replaces it


def snapshot_path(path):
    """The snapshot beside a run file (``snapshots/<cell>.txt``)."""
    return os.path.join(os.path.dirname(os.path.dirname(path)), "snapshots",
                        os.path.basename(path)[: -len(".json")] + ".txt")


class _hashed:
    """The chunks of a stream, hashed as they pass (``sha256``: of the whole stream, so a
    report can tell whether the seeds changed the workload itself)."""

    def __init__(self, chunks):
        self.chunks = chunks
        self.sha256 = hashlib.sha256()

    def __iter__(self):
        for chunk in self.chunks:
            self.sha256.update(chunk.tobytes())
            yield chunk


def run_cell(cfg, w, label, seed):
    spec = cell_spec(cfg, w, label, seed)
    pol = dict(cfg["policies"][label])
    policy = make_policy(pol.pop("policy"), **pol)
    events = _hashed(iter_workload(w["name"], w["pages"], seed=seed, reuse=True, **w["params"]))
    result = simulate_stream(events, policy, w["pages"], mode=cfg["mode"], backend=cfg["backend"],
                             pcp=cfg["pcp"], pcp_high=w.get("pcp_high", "auto"),
                             initial_state=w.get("initial_state", "pristine"), state_seed=seed,
                             cost_profile=cfg.get("cost_profile"),
                             other_zones=w.get("other_zones", GUEST_OTHER_ZONES))
    result.update(workload=w, policy_label=label, seed=seed, spec=spec,
                  spec_hash=spec_hash(spec), complete=True,
                  events_sha256=events.sha256.hexdigest()[:16])
    return result


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
        if os.path.exists(os.path.join(out, sub)) and not os.path.isdir(os.path.join(out, sub)):
            raise UserError(f"output folder {out}: {sub} in it is a file, not a folder: "
                            "move it away")
        try:
            os.makedirs(os.path.join(out, sub), exist_ok=True)
        except OSError as e:
            raise UserError(f"output folder {os.path.join(out, sub)}: cannot create it "
                            f"({e.strerror or e})") from None
    write_json(os.path.join(out, "config.json"), cfg)
    write_json(os.path.join(out, "provenance.json"), provenance(cfg))
    todo = [(w, label, seed, os.path.join(out, "runs", cell_id(w, label, seed) + ".json"),
             spec_hash(cell_spec(cfg, w, label, seed))) for w, label, seed in cells(cfg)]
    # What the end writes, checked before any run: a folder or pipe in the way is named now,
    # not after the runs (a temporary beside it then fails with its own name).
    ends = [os.path.join(out, f) for f in REPORT_FILES] + [snapshot_path(t[3]) for t in todo]
    for path in ends:
        refuse_odd_file(output_target(path), "a result")  # a link: where it leads
    return out, todo


#: A temporary of ``write_text`` (``NAME.tmp.PID``) or of a plot (``NAME.tmp.PID.png``).
TEMPORARY = re.compile(r".+\.tmp\.[0-9]+(\.png)?")


def clear_leftovers(cfg, out):
    """Under the folder's lock, before anything is written: the temporaries of a writer that
    was killed (SIGKILL leaves them), and, when the config is not the one ``config.json``
    holds, the old config's report (an interrupted run left it beside the new config, and a
    report file the new one does not write stayed for good). Run files stay: each is keyed
    by its cell's spec, and a later config may want it again."""
    for folder in (out, os.path.join(out, "runs"), os.path.join(out, "snapshots")):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            if TEMPORARY.fullmatch(name) and os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)
    try:
        with open(os.path.join(out, "config.json")) as f:
            same = f.read() == json_text(cfg)
    except (OSError, UnicodeDecodeError):
        same = False
    if not same:
        for name in REPORT_FILES:
            path = os.path.join(out, name)
            if os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)


def execute_cell(cfg, w, label, seed, path):
    """Run one cell and write its result and snapshot atomically (idempotent)."""
    result = run_cell(cfg, w, label, seed)
    result["result_sha256"] = result_digest(result)
    write_json(path, result)
    write_text(snapshot_path(path), snapshot_text(result))
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
        if not os.path.isfile(snapshot_path(path)):  # lost since: made again from the run
            write_text(snapshot_path(path), snapshot_text(r))
        results.append(r)
    write_report(cfg, results, out, log)
    return results


LOCK_NAME = ".lock"


class OutputLock:
    """One run at a time per output folder: an exclusive ``flock`` on ``OUT/.lock``.

    A second ``compare`` or ``sweep`` on the same folder is refused at once (naming the
    process that holds it) instead of redoing every cell beside the first. The kernel
    drops the lock when its holder exits, killed or not, so a stale lock never blocks.
    """

    def __init__(self, out):
        self.path = os.path.join(out, LOCK_NAME)
        self.fd = None

    def __enter__(self):
        import fcntl
        refuse_odd_file(self.path, "the folder's lock")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"{self.path}: cannot open the folder's lock ({e.strerror or e})") \
                from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 100).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UserError(f"output folder {os.path.dirname(self.path)} is in use by {holder}: "
                            "wait for it to finish, or give another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {platform.node()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the flock


def warm_up(progress=True):
    """Compile the engine (or load it from numba's cache) once, saying so when that is slow,
    before the cells (and Dask workers, which then load it from the cache) need it."""
    from .run import Simulation
    Simulation(make_policy("baseline"), 1024)


def outputs_apart(cfg, out, config=None):
    """None of the files a comparison writes into ``out`` is one it reads (the config at
    ``config``, its cost profile, its snapshots): one line naming both, before anything runs
    (a config saved as ``out/config.json`` was replaced by the resolved one)."""
    inputs = {"config": config, **config_inputs(cfg)}
    runs = [os.path.join(out, "runs", cell_id(w, label, seed) + ".json")
            for w, label, seed in cells(cfg)]
    written = [os.path.join(out, f) for f in ("config.json", "provenance.json", LOCK_NAME)
               + REPORT_FILES] + runs + [snapshot_path(path) for path in runs]
    for what, given in inputs.items():
        if not given or not os.path.isfile(given):
            continue
        for path in written:
            if os.path.exists(path) and os.path.samefile(path, given):
                raise UserError(f"output folder {out}: {path} is the {what} file this command "
                                "reads: name another folder for the results")


def compare(cfg, out=None, progress=True, log=print, runner=None, config=None):
    """Run (or resume) every cell, then write the report. Returns the output folder.

    ``runner(cfg, missing, progress)`` executes the missing cells (serially by default; the
    Dask sweep passes its own). The output folder is locked for the whole run. ``config``:
    the config's path, which no output may replace.
    """
    check_cell_ids(cfg)
    out = out or os.path.join(cfg["out"], cfg["name"])
    outputs_apart(cfg, out, config)
    if os.path.islink(out) and not os.path.exists(out):
        raise UserError(f"output folder {out} is a link that leads to no folder (to nothing, "
                        "or in a loop): name another --out")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UserError(f"output folder {out}: cannot create it ({e.strerror or e})") from None
    with OutputLock(out):
        clear_leftovers(cfg, out)
        out, todo = prepare(cfg, out)
        missing = [c for c in todo if read_complete(c[3], c[4]) is None]
        if len(missing) < len(todo):
            log(f"resumed: {len(todo) - len(missing)} of {len(todo)} runs were complete and not redone")
        if missing:  # nothing to run: no warm-up, no empty progress bar
            warm_up(progress)
            (runner or run_serial)(cfg, missing, progress)
        collect(cfg, out, todo, log)
    return out


def failure_warnings(results):
    """A warning per cell where allocations failed noticeably (see run.FAILURE_SHARE), or
    none was made; a note per cell where THP faults fell back to 4 KiB pages (the kernel's
    way, but a run of other faults than the workload asked for)."""
    from .run import failure_warning
    lines = []
    for r in results:
        cell = f"{r['workload']['label']} / {r['policy_label']} / seed {r['seed']}"
        text = failure_warning(r["counters"], "pages")
        if text:
            lines.append(f"warning: {cell}: {text}")
        fallbacks = r["counters"].get("thp_fault_fallback", 0)
        if fallbacks:
            lines.append(f"note: {cell}: {fallbacks} THP faults fell back to 4 KiB pages (no "
                         "free block of their order above the min watermark; "
                         "thp_fault_fallback in results.csv)")
    return lines


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
    warnings = failure_warnings(results)  # in the file too: the table alone misleads there
    text = table
    if warnings:
        text = table.rstrip("\n") + "\n" + "".join(line + "\n" for line in warnings)
    write_text(os.path.join(out, "compare.txt"), text)
    log(table)
    for line in warnings:
        log(line)
    if cfg.get("throughput"):
        log("timing CPU (and GPU) clearing against batch size for the throughput plot "
            "(10 to 20 s; throughput = false in the config skips it)")
    from .plots import write_plots
    plots = write_plots(cfg, results, out)
    log("plots: " + ", ".join(os.path.join(out, p) for p in plots))
