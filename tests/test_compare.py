"""zeroing compare: config validation, outputs, resume, the statistics."""
import json
import os

import pytest

from zeroing.compare import ConfigError, compare, load_config
from zeroing.report import gain
from zeroing.stats import welch

TINY = """
name = "tiny"
seeds = [0, 1]
throughput = false
[[workload]]
name = "vm-anon"
label = "vm-anon small"
thp = "off"
size_mb = 8
rounds = 2
idle_s = 6.0
pages = 65536  # 256 MiB: above the reporting watermark (low + 32 << 9)
[policies]
baseline = "baseline"
tracked = "pg_zeroed,reporting"
"""


def write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_compare_writes_everything_and_resumes(tmp_path):
    cfg = load_config(write(tmp_path, TINY))
    out = str(tmp_path / "out")
    logs = []
    compare(cfg, out, progress=False, log=logs.append)
    names = sorted(os.listdir(out))
    for f in ("config.json", "provenance.json", "results.csv", "compare.txt",
              "cleared_by_site.png", "hit_rate_by_order.png", "runs", "snapshots"):
        assert f in names
    runs = sorted(os.listdir(os.path.join(out, "runs")))
    assert len(runs) == 4
    table = open(os.path.join(out, "compare.txt")).read()
    assert "Amean    guest_pages_cleared" in table and "tracked" in table
    assert "%" in table
    prov = json.load(open(os.path.join(out, "provenance.json")))
    assert prov["git_revision"] and prov["packages"]["numba"]
    assert "Node 0, zone" in open(os.path.join(out, "snapshots", runs[0].replace(".json", ".txt"))).read()
    # An interrupted re-run: one result half-written, one stale; both are redone.
    first = os.path.join(out, "runs", runs[0])
    with open(first, "w") as f:
        f.write('{"complete": tr')
    stale = json.load(open(os.path.join(out, "runs", runs[1])))
    stale["spec_hash"] = "other"
    json.dump(stale, open(os.path.join(out, "runs", runs[1]), "w"))
    logs.clear()
    compare(cfg, out, progress=False, log=logs.append)
    assert any("2 of 4 runs were complete" in l for l in logs)
    assert json.load(open(first))["complete"] is True
    assert open(os.path.join(out, "compare.txt")).read() == table



def test_a_killed_writer_s_temporaries_and_a_changed_config_s_report_go(tmp_path):
    """SIGKILL leaves ``NAME.tmp.PID`` behind; the next run under the folder's lock removes
    them. A run with another config drops the old report before its first cell, so an
    interrupted one leaves no report contradicting ``config.json``; the same config keeps it."""
    cfg = load_config(write(tmp_path, TINY))
    out = str(tmp_path / "out")
    compare(cfg, out, progress=False, log=lambda _: None)
    runs = sorted(os.listdir(os.path.join(out, "runs")))
    left = [os.path.join(out, "compare.txt.tmp.4242"),
            os.path.join(out, "cleared_by_site.tmp.4242.png"),
            os.path.join(out, "runs", runs[0] + ".tmp.77"),
            os.path.join(out, "snapshots", "x.txt.tmp.1")]
    mine = [os.path.join(out, "notes.tmp.txt"), os.path.join(out, "runs", "a.tmp.12.csv")]
    for path in left + mine:
        open(path, "w").close()

    def interrupted(*_):
        raise KeyboardInterrupt

    os.unlink(os.path.join(out, "runs", runs[0]))  # a cell to run: the runner is called
    with pytest.raises(KeyboardInterrupt):
        compare(cfg, out, progress=False, log=lambda _: None, runner=interrupted)
    assert not any(os.path.exists(p) for p in left) and all(os.path.exists(p) for p in mine)
    assert os.path.exists(os.path.join(out, "compare.txt"))  # the same config: kept
    other = load_config(write(tmp_path, TINY.replace("size_mb = 8", "size_mb = 6")))
    with pytest.raises(KeyboardInterrupt):
        compare(other, out, progress=False, log=lambda _: None, runner=interrupted)
    assert json.load(open(os.path.join(out, "config.json")))["workloads"][0]["params"]["size_mb"] == 6
    assert not any(f in os.listdir(out) for f in ("compare.txt", "results.csv",
                                                  "cleared_by_site.png"))


@pytest.mark.parametrize("text,match", [
    ('bogus = 1\n[[workload]]\nname="mixed"\n[policies]\na="baseline"', r"bogus: unknown key"),
    ('[[workload]]\nname="nope"\n[policies]\na="baseline"', r"workload\[0\].name: 'nope' is not allowed: one of mixed"),
    ('[[workload]]\nname="vm-anon"\nthp="maybe"\n[policies]\na="baseline"', r"workload\[0\].thp: 'maybe' is not allowed: on or off"),
    ('[[workload]]\nname="vm-anon"\njobs=3\n[policies]\na="baseline"', r"workload\[0\].jobs: workload 'vm-anon' has no such"),
    ('[[workload]]\nname="mixed"\n[policies]\na="nope"', r"policies.a: 'nope' is not allowed: unknown policy 'nope'"),
    ('[[workload]]\nname="mixed"\n[policies]\na={policy="offload", speed=3}', r"policies.a.speed: unknown policy option"),
    ('seeds = "x"\n', r"seeds: expected a list"),
    ('mode = "fast"\n[[workload]]\nname="mixed"\n[policies]\na="baseline"', r"mode: 'fast' is not allowed: one of metadata, content"),
    ('baseline = "z"\n[[workload]]\nname="mixed"\n[policies]\na="baseline"', r"baseline: 'z' is not one"),
    ('[[workload]\n', r"not valid TOML"),
])
def test_bad_configs_name_key_and_reason(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(str(tmp_path / "absent.toml"))


def test_gain_sign_and_welch():
    assert gain(50, 100, higher_is_better=False) == 50.0
    assert gain(150, 100, higher_is_better=True) == 50.0
    assert gain(150, 100, higher_is_better=False) == -50.0
    assert welch([1, 2, 3, 4], [5, 6, 7, 8]) < 0.01
    assert welch([1, 2, 3, 4], [1.5, 2.5, 2, 3]) > 0.05
    assert welch([1], [2]) is None


def test_dask_sweep_matches_serial_and_resumes(tmp_path):
    """A two-worker LocalCluster sweep gives the serial run's table; a re-run redoes nothing
    but a cell whose file was damaged."""
    pytest.importorskip("distributed")
    from zeroing.sweep import sweep
    cfg = load_config(write(tmp_path, TINY))
    serial = str(tmp_path / "serial")
    compare(cfg, serial, progress=False, log=lambda *_: None)
    swept = str(tmp_path / "swept")
    logs = []
    sweep(cfg, workers=2, out=swept, progress=False, log=logs.append)
    assert any("2 workers" in l for l in logs)
    assert open(os.path.join(swept, "compare.txt")).read() == \
        open(os.path.join(serial, "compare.txt")).read()
    runs = sorted(os.listdir(os.path.join(swept, "runs")))
    open(os.path.join(swept, "runs", runs[0]), "w").write("{")
    logs.clear()
    sweep(cfg, workers=2, out=swept, progress=False, log=logs.append)
    assert any("3 of 4 runs were complete" in l for l in logs)
    assert any("dask: 1 runs" in l for l in logs)


def test_dask_worker_death_loses_only_its_cell(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from zeroing.sweep import KILL_ONCE_ENV, sweep
    cfg = load_config(write(tmp_path, TINY))
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))  # inherited by the spawned workers
    out = str(tmp_path / "out")
    sweep(cfg, workers=2, out=out, progress=False, log=lambda *_: None)
    assert marker.exists()  # a worker did die
    serial = str(tmp_path / "serial")
    monkeypatch.delenv(KILL_ONCE_ENV)
    compare(cfg, serial, progress=False, log=lambda *_: None)
    assert open(os.path.join(out, "compare.txt")).read() == \
        open(os.path.join(serial, "compare.txt")).read()


def test_report_table_never_prints_inf_and_says_when_runs_are_deterministic(tmp_path):
    from zeroing.report import gain
    assert gain(5, 0, True) is None and gain(0, 0, False) == 0.0
    assert gain(90, 100, False) == pytest.approx(10.0)
    cfg = load_config(write(tmp_path, TINY))
    compare(cfg, str(tmp_path / "o"), progress=False, log=lambda *_: None)
    table = open(os.path.join(str(tmp_path / "o"), "compare.txt")).read()
    assert "inf" not in table
    assert "(   new  )" in table  # clears_skipped: the baseline skipped none
    assert "no significance test" in table and "*" not in table.replace("**", "")
    first_metric = table.splitlines()[2].split()[1]
    assert first_metric == "task_clock_ms"  # time leads
    for name in ("host_ms", "background_ms", "offload_device_ms", "all_work_ms"):
        assert name in table


def test_report_tests_significance_only_when_seeds_change_the_workload(tmp_path):
    text = """
name = "sig"
seeds = [0, 1, 2, 3]
throughput = false
[[workload]]
name = "mixed"
events = 3000
pages = 4096
[policies]
baseline = "baseline"
iof = "init_on_free"
"""
    cfg = load_config(write(tmp_path, text))
    compare(cfg, str(tmp_path / "o"), progress=False, log=lambda *_: None)
    table = open(os.path.join(str(tmp_path / "o"), "compare.txt")).read()
    assert "the seed changes the workload: * Welch" in table
    assert "Stddev" in table and "*" in table  # init_on_free clears far more, every seed


def test_hit_rate_plot_draws_no_line_across_unallocated_orders(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from zeroing import plots
    figs = []
    monkeypatch.setattr(plt, "close", figs.append)
    cfg = {"workloads": [{"label": "w"}], "policies": {"p": {}}}
    r = {"workload": {"label": "w"}, "policy_label": "p",
         "by_order": {"allocs": [10, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0],
                      "zeroed": [2, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0]}}
    plots.plot_hit_rate(cfg, [r], str(tmp_path / "h.png"))
    (line,) = figs[0].axes[0].get_lines()
    assert list(line.get_xdata()) == [0, 9] and line.get_linestyle() == "None"


def test_config_cost_profile_is_checked_and_relative_to_the_config(tmp_path):
    with pytest.raises(ConfigError, match=r"cost_profile: .*nope.toml: no such cost profile"):
        load_config(write(tmp_path, 'cost_profile = "nope.toml"\n' + TINY))
    import shutil

    from zeroing.cost import DEFAULT_PROFILE
    shutil.copy(DEFAULT_PROFILE, tmp_path / "mine.toml")
    cfg = load_config(write(tmp_path, 'cost_profile = "mine.toml"\n' + TINY))
    assert cfg["cost_profile"] == str(tmp_path / "mine.toml") and cfg["cost_profile_sha256"]
    bad = TINY.replace('tracked = "pg_zeroed,reporting"', 'off = {policy = "offload", offload_device = "dma"}')
    with pytest.raises(ConfigError, match=r"policies.off.offload_device: .*offload.dma: no such"):
        load_config(write(tmp_path, bad))


def test_a_cell_whose_allocations_failed_is_a_warning_line_naming_it():
    from zeroing.compare import failure_warnings

    def cell(fail):
        return {"counters": {"alloc_blocks": 100, "alloc_fail": fail},
                "workload": {"label": "vm-anon small"}, "policy_label": "tracked", "seed": 1}

    lines = failure_warnings([cell(0), cell(50)])
    assert len(lines) == 1
    assert lines[0].startswith("warning: vm-anon small / tracked / seed 1: 33.3% of allocations")


def test_compare_txt_keeps_the_warnings_beside_the_table(tmp_path):
    """A cell whose allocations failed, and one whose THP faults fell back (a zone of 8 MiB
    for 16 MiB of THPs): the log said so, the saved table did not."""
    cfg = load_config(write(tmp_path, TINY.replace('thp = "off"', 'thp = "on"').replace(
        "size_mb = 8", "size_mb = 16").replace("pages = 65536", "pages = 2048").replace(
        "seeds = [0, 1]", "seeds = [0]")))
    out = str(tmp_path / "out")
    logs = []
    compare(cfg, out, progress=False, log=logs.append)
    saved = open(os.path.join(out, "compare.txt")).read()
    notes = [line for line in logs if line.startswith(("warning: ", "note: "))]
    assert any("THP faults fell back" in line for line in notes)
    table = logs[logs.index(notes[0]) - 1]  # logged just before them
    assert saved == table.rstrip("\n") + "\n" + "".join(line + "\n" for line in notes)


def test_a_cell_whose_thp_faults_fell_back_is_a_note_naming_it():
    from zeroing.compare import failure_warnings
    cells = [{"counters": {"alloc_blocks": 100, "alloc_fail": 0, "thp_fault_fallback": n},
              "workload": {"label": "frag"}, "policy_label": "tracked", "seed": 0} for n in (0, 16)]
    assert failure_warnings(cells) == [
        "note: frag / tracked / seed 0: 16 THP faults fell back to 4 KiB pages (no free block "
        "of their order above the min watermark; thp_fault_fallback in results.csv)"]


def test_runs_made_by_other_code_are_run_again(tmp_path, monkeypatch):
    """A cell's spec holds a digest of the simulator's sources: after an update that changed a
    kernel rule, a resumed compare runs every cell again instead of reporting old results."""
    from zeroing import compare as compare_mod
    from zeroing.compare import compare, load_config
    path = tmp_path / "c.toml"
    path.write_text('throughput = false\n[[workload]]\nname = "mixed"\nevents = 2000\n'
                    'pages = 1024\n[policies]\nb = "baseline"\n')
    cfg = load_config(str(path))
    out = str(tmp_path / "out")
    said = []
    compare(cfg, out, progress=False, log=said.append)
    compare(cfg, out, progress=False, log=said.append)
    assert "resumed: 1 of 1 runs were complete and not redone" in said
    said.clear()
    monkeypatch.setattr(compare_mod, "model_digest", lambda: "other code")
    compare(cfg, out, progress=False, log=said.append)
    assert not any(line.startswith("resumed:") for line in said)
    assert compare_mod.model_digest() == "other code"


def test_other_zones_is_a_zone_key_with_the_guest_s_dma_zone_by_default(tmp_path):
    """``other_zones``: top level or per workload, an array of managed pages; default the
    x86-64 DMA zone; checked like --other-zones (at most 3, integers, none negative)."""
    cfg = load_config(write(tmp_path, TINY))
    assert cfg["workloads"][0]["other_zones"] == (3840,)
    cfg = load_config(write(tmp_path, "other_zones = []\n" + TINY))
    assert cfg["workloads"][0]["other_zones"] == ()
    cfg = load_config(write(tmp_path, TINY.replace('pages = 65536', 'other_zones = [3840, 500000]\npages = 65536')))
    assert cfg["workloads"][0]["other_zones"] == (3840, 500000)
    assert "other_zones=(3840, 500000)" not in cfg["workloads"][0]["label"]  # labelled by hand
    for bad in ("[-1]", "[1, 2, 3, 4]", "[1.5]", "[true]", '"3840"'):
        with pytest.raises(ConfigError, match=r"other_zones"):
            load_config(write(tmp_path, f"other_zones = {bad}\n" + TINY))
