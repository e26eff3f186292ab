"""Hostile input to the experiment scripts: one line naming the option, file or variable and
the reason, exit 2, before any work; never a traceback, never a result written over a file
the script reads, never a scratch folder left behind, never a library's warning."""
import hashlib
import os
import resource
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
#: An address-space limit for runs that must be refused before they allocate: were they not,
#: they would fail here (MemoryError) rather than take this machine's memory.
LIMIT_AS = 4_000_000 * 1024


def script(name, *argv, env=None, limit_as=None, timeout=120, cwd=None):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))
    return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", name), *argv],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=None if env is None else dict(os.environ, **env),
                          preexec_fn=limit if limit_as else None)


def refused(p, name, *fragments):
    """Exit 2, stderr one line: ``NAME: error: ...`` holding every fragment."""
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-3000:])
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.startswith(f"{name}: error: "), p.stderr
    for f in fragments:
        assert f in p.stderr, p.stderr


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def capture_folder(tmp_path):
    d = tmp_path / "cap"
    d.mkdir()
    shutil.copy(os.path.join(DATA, "trace_kmem_6.18.txt.gz"), d / "trace_kmem_a.txt.gz")
    shutil.copy(os.path.join(DATA, "after_zoneinfo-6.18"), d / "after_zoneinfo")
    shutil.copy(os.path.join(DATA, "before_zoneinfo-6.18"), d / "before_zoneinfo")
    return d


def tiny_config(folder, thp=("off",), initial_state=None, pages=1 << 16):
    """A hit_rate config of one tiny vm-anon run per THP value."""
    text = ('name = "tiny"\nseeds = [0]\nthroughput = false\n[policies]\n'
            '"pg_zeroed+reporting" = "pg_zeroed,reporting"\n')
    for t in thp:
        text += (f'[[workload]]\nname = "vm-anon"\nlabel = "{t} 1"\nthp = "{t}"\nrounds = 1\n'
                 f'pages = {pages}\nsize_mb = 16\n')
        if initial_state:
            text += f'initial_state = "{initial_state}"\n'
    path = folder / "tiny.toml"
    path.write_text(text)
    return path


# --- 1, 2: --json never replaces a file the script reads or writes ------------------------

@pytest.mark.parametrize("victim", ["before_zoneinfo", "after_zoneinfo", "trace_kmem_a.txt.gz"])
def test_pcp_trace_check_json_never_replaces_the_capture(tmp_path, victim):
    d = capture_folder(tmp_path)
    before = digest(d / victim)
    p = script("pcp_trace_check.py", str(d), "--json", str(d / victim))
    refused(p, "pcp_trace_check.py", "--json", "file this command reads")
    assert digest(d / victim) == before


def test_hit_rate_json_never_replaces_its_config_or_a_snapshot_it_names(tmp_path):
    config = tiny_config(tmp_path)
    before = digest(config)
    refused(script("hit_rate.py", "--config", str(config), "--json", str(config),
                   "--out", str(tmp_path / "out")),
            "hit_rate.py", "--json", "--config file this command reads")
    assert digest(config) == before and not (tmp_path / "out").exists()
    snap = tmp_path / "snap"
    shutil.copy(os.path.join(DATA, "before_pagetypeinfo-6.18"), snap)
    config = tiny_config(tmp_path, initial_state="snap,zone=Normal", pages=1 << 19)
    before = digest(snap)
    refused(script("hit_rate.py", "--config", str(config), "--json", str(snap),
                   "--out", str(tmp_path / "out")),
            "hit_rate.py", "--json", "initial_state file this command reads")
    assert digest(snap) == before


def test_upstream_json_never_replaces_its_cost_profile(tmp_path):
    profile = tmp_path / "P.toml"
    shutil.copy(os.path.join(ROOT, "zeroing", "profiles", "default.toml"), profile)
    before = digest(profile)
    p = script("upstream.py", "--quick", "--cost-profile", str(profile), "--json", str(profile))
    refused(p, "upstream.py", "--json", "--cost-profile file this command reads")
    assert digest(profile) == before


@pytest.mark.parametrize("name", ["before_pagetypeinfo", "before_zoneinfo",
                                  "during_pagetypeinfo", "capture_env.txt"])
def test_fault_capture_json_is_none_of_the_files_it_writes(tmp_path, name):
    out = tmp_path / "D"
    out.mkdir()
    (out / name).write_text("kept\n")
    p = script("fault_capture.py", "--kind", "anon", "--mib", "4", "--out", str(out),
               "--json", str(out / name))
    refused(p, "fault_capture.py", "--json", f"the {name} the capture writes into --out")
    assert (out / name).read_text() == "kept\n"


def test_fault_capture_refuses_json_as_its_out_folder_up_front(tmp_path):
    out = tmp_path / "D"
    p = script("fault_capture.py", "--kind", "anon", "--mib", "4", "--out", str(out),
               "--json", str(out))
    refused(p, "fault_capture.py", "--json", "is the --out folder")
    assert not out.exists()  # nothing captured, nothing created


def test_bench_all_never_writes_over_what_it_reads(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    made = source / "bench_engine.json"  # figures --from renders (tiny, ~2 s)
    assert script("bench_engine.py", "--quick", "--json", str(made)).returncode == 0
    before = digest(made)
    refused(script("bench_all.py", "--from", str(source), "--out", str(made)),
            "bench_all.py", "--out", "--from bench_engine.json file this command reads")
    assert digest(made) == before
    results = tmp_path / "RESULTS.md"
    results.write_text("# By hand\n")
    refused(script("bench_all.py", "--quick", "--out", str(results), "--json", str(results),
                   timeout=60),  # refused before the benchmarks run
            "bench_all.py", "--json", "is the --out file")
    assert results.read_text() == "# By hand\n"


def test_hint_designs_json_is_none_of_the_files_out_gets(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    refused(script("hint_designs.py", "--quick", "--out", str(out), "--json",
                   str(out / "results.json")),
            "hint_designs.py", "--json", "results.json written into --out")
    assert not os.listdir(out)


# --- 3: a child's failure is its own one line --------------------------------------------

def _gpu():
    try:
        from kernels import get_backend
        get_backend("cupy")
        return True
    except Exception:
        return False


def test_content_speedup_says_why_its_run_failed(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import content_speedup
    from zeroing.validate import UserError
    with pytest.raises(UserError, match=r"this tree: zeroing run \(content mode, --backend "
                                         r"numba\) failed: zeroing run: error: --pages: '100'"):
        content_speedup.rate(ROOT, 100, 100, str(tmp_path / "r.json"))


@pytest.mark.skipif(_gpu(), reason="cupy runs here")
def test_content_speedup_refuses_a_backend_this_machine_lacks():
    refused(script("content_speedup.py", "--backend", "cupy", "--quick"),
            "content_speedup.py", "--backend", "'cupy' is not available here")


# --- 4, 5: memory, checked up front; no child traceback ----------------------------------

@pytest.mark.parametrize("name,argv,fragment", [
    ("cpu_vs_gpu.py", ["--case", "mixed", "--pages", "268435456", "--repeat", "1",
                       "--backends", "numba"], "--pages: 268435456 pages"),
    ("cpu_vs_gpu.py", ["--case", "mixed:events=2000000000", "--pages", "4096", "--repeat", "1",
                       "--backends", "numba"], "--case mixed:events=2000000000: 4096 pages"),
    ("pipeline_speedup.py", ["--case", "mixed", "--events", "1000000000", "--rounds", "1"],
     "--events: 262144 pages"),
    ("content_speedup.py", ["--before", "HEAD", "--pages", "2147483647", "--events", "1000",
                            "--rounds", "1"], "--pages: 2147483647 pages"),
    ("hint_designs.py", ["--pages", "2147483647", "--events", "1000"], "--pages: 2147483647"),
])
def test_sizes_beyond_this_machine_are_refused_up_front(name, argv, fragment, tmp_path):
    from zeroing.validate import available_memory
    if (available_memory() or 0) > 2**40:
        pytest.skip("this machine has more than 1 TiB available")
    refused(script(name, *argv, "--json", str(tmp_path / "r.json"), limit_as=LIMIT_AS),
            name, fragment, "available")


@pytest.mark.parametrize("kind,mib,fragment", [
    ("thp", "3", "--mib 3: not allowed with --kind thp"),
    ("ptables", "5", "--mib 5: not allowed with --kind ptables"),
    ("anon", str(1 << 20), f"--mib {1 << 20}: --kind anon touches"),
])
def test_fault_capture_refuses_a_size_it_cannot_model_or_hold(tmp_path, kind, mib, fragment):
    from zeroing.validate import available_memory
    if kind == "anon" and (available_memory() or 0) > 2**40:
        pytest.skip("this machine has more than 1 TiB available")
    p = script("fault_capture.py", "--kind", kind, "--mib", mib, "--out", str(tmp_path / "D"),
               limit_as=LIMIT_AS)
    refused(p, "fault_capture.py", fragment)
    assert not (tmp_path / "D").exists()


def test_fault_capture_child_out_of_memory_is_one_line(tmp_path):
    """Under an address-space limit the child cannot map 8 GiB: its reason, not its
    traceback (or, where 8 GiB is more than is available, the refusal up front)."""
    p = script("fault_capture.py", "--kind", "anon", "--mib", "8192", "--out",
               str(tmp_path / "D"), limit_as=LIMIT_AS)
    refused(p, "fault_capture.py")
    from zeroing.validate import available_memory
    if os.access("/proc/pagetypeinfo", os.R_OK) and (available_memory() or 0) > 8 << 30:
        assert "could not map and touch that memory (OSError: [Errno 12]" in p.stderr, p.stderr


# --- 6: POOL_PAGES ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gpu_clear_variants.py", "gpu_host_path.py"])
@pytest.mark.parametrize("value", ["abc", "-5", "1000", ""])
def test_pool_pages_is_checked_when_the_script_runs(name, value):
    p = script(name, "--help", env={"POOL_PAGES": value})
    assert p.returncode == 0 and p.stderr == "", p.stderr
    refused(script(name, env={"POOL_PAGES": value}), name, "POOL_PAGES", "an integer from")


# --- 7, 8: hit_rate: no scratch folder left, no legend warning --------------------------

def test_hit_rate_quick_leaves_no_scratch_folder(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    p = script("hit_rate.py", "--quick", env={"TMPDIR": str(scratch)}, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "THP  pcp" in p.stdout and not os.listdir(scratch), os.listdir(scratch)


def test_hit_rate_with_one_thp_setting_warns_of_nothing(tmp_path):
    config = tiny_config(tmp_path, thp=("off",))
    p = script("hit_rate.py", "--config", str(config), "--out", str(tmp_path / "out"))
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert (tmp_path / "out" / "hit_rate_shares.png").exists()


# --- 9: the option by its name -----------------------------------------------------------

@pytest.mark.parametrize("callers,why", [("bogus=1", "unknown caller type 'bogus'"),
                                         ("anon=x", "caller 'anon': weight 'x' is not a number")])
def test_hint_designs_names_callers_by_its_option(tmp_path, callers, why):
    p = script("hint_designs.py", "--quick", "--no-content", "--callers", callers,
               "--out", str(tmp_path / "out"))
    refused(p, "hint_designs.py", f"--callers: {callers!r} is not allowed: {why}")


def test_hit_rate_refuses_workloads_its_table_cannot_tell_apart(tmp_path):
    """Two workloads in one cell (thp, pcp_high, initial_state, rounds) were averaged as if
    seeds; zones of two sizes were printed as the first one's. Both are refused up front."""
    config = tiny_config(tmp_path, thp=("off", "off"))
    text = config.read_text().replace('label = "off 1"', 'label = "x"', 1)
    config.write_text(text.replace("size_mb = 16\n", "size_mb = 16\nidle_s = 1.0\n", 1))
    refused(script("hit_rate.py", "--config", str(config), "--out", str(tmp_path / "o")),
            "hit_rate.py", "workload[1] (off 1) and workload[0]", "one cell of the table")
    config = tiny_config(tmp_path, thp=("off", "on"))
    config.write_text(config.read_text().replace(f"pages = {1 << 16}", "pages = 32768", 1))
    refused(script("hit_rate.py", "--config", str(config), "--out", str(tmp_path / "o")),
            "hit_rate.py", "a zone of 65536 pages, workload[0] one of 32768")


def test_content_speedup_refuses_an_empty_before():
    refused(script("content_speedup.py", "--before", "", "--rounds", "1"),
            "content_speedup.py", "--before '': is not allowed")
