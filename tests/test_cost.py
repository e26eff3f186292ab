"""The cost model: profiles, charges per site, lazy host costs, the offload device queue."""
import copy
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator import GFP_KERNEL
from zeroing.cost import (DEFAULT_PROFILE, ProfileError, load_profile, profile_from_dict)
from zeroing.events import (EV_ALLOC, EV_DEFLATE, EV_FAULT, EV_FREE, EV_IDLE, EV_INFLATE,
                            EVENT_DTYPE, FAULT_WRITES)
from zeroing.policy import make_policy
from zeroing.run import simulate
from zeroing.workloads import make_workload

try:
    import tomllib
except ModuleNotFoundError:
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = 1 << 14


def raw_default():
    with open(DEFAULT_PROFILE, "rb") as f:
        return tomllib.load(f)


def profile(**changes):
    """The default profile with ``{"table.key": value}`` changes (distinct, made-up rates)."""
    raw = copy.deepcopy(raw_default())
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        t = raw
        for p in path:
            t = t[p]
        t[key] = value
    return profile_from_dict(raw, "<test>")


#: Rates that differ per order, so a charge at the wrong order is visible.
RATES = [float(100 + 10 * k) for k in range(11)]
HOST_RATES = [float(1000 + 100 * k) for k in range(11)]


def test_default_profile_records_provenance():
    p = load_profile()
    for key in ("name", "machine", "date", "method"):
        assert p.meta[key]
    assert set(p.offload) >= {"cpu", "gpu"}
    assert "gpu-h200.md" in p.offload["gpu"].source


@pytest.mark.parametrize("change,message", [
    ({"clear.normal": [1.0] * 10}, r"clear.normal: expected 11"),
    ({"clear.normal": [1.0] * 10 + [-1.0]}, r"clear.normal\[10\]: expected a positive"),
    ({"clear.guest_stores": "nt2"}, r"clear.guest_stores: 'nt2' has no rates"),
    ({"host.page_order": 12}, r"host.page_order: must be a number from 0 to 10, got 12"),
    ({"fault.order0_ns": "fast"}, r"fault.order0_ns: expected a number"),
    ({"fault.order0_ns": 1e308}, r"fault.order0_ns: must be a number from 0 to 1e\+12"),
    ({"clear.normal": [1.0] * 10 + [1e300]}, r"clear.normal\[10\]: expected a positive number"),
    ({"fault.ordr0_ns": 5.0}, r"fault.ordr0_ns: unknown key \(known: huge_ns, order0_ns\)"),
    ({"host.sub": {"x": 1}}, r"host.sub: unknown key"),
    ({"offload.gpu.queue_depth": 0}, r"offload.gpu.queue_depth: must be a number from 1 to 64"),
    ({"offload.gpu.batch_pages": 10**11}, r"offload.gpu.batch_pages: must be a number from 1 to"),
    ({"offload.gpu.bandwidth_gb_s": 1e-300}, r"offload.gpu.bandwidth_gb_s: must be a number from 0.001"),
    ({"meta.date": ""}, r"meta.date: missing"),
    ({"offload.gpu.source": {"x": 1}}, r"offload.gpu.source: expected a text"),
    ({"meta.name": "a\x1b[31mred\nline2"}, r"meta.name: .* printable characters on one line"),
    ({"meta.name": "   "}, r"meta.name: '   ': a text of printable"),
    # TOML integers beyond what numpy (or a float) holds: a range error, not a TypeError.
    ({"fault.order0_ns": 10**30}, r"fault.order0_ns: must be a number from 0 to 1e\+12"),
    ({"clear.normal": [1.0] * 10 + [-10**20]}, r"clear.normal\[10\]: expected a positive"),
    ({"meta.vmexit_assumed_ns": -1000.0}, r"meta.vmexit_assumed_ns: must be a number from 0"),
    ({"meta.vmexit_assumed_ns": 10**20}, r"meta.vmexit_assumed_ns: must be a number from 0"),
])
def test_bad_profiles_name_the_key(change, message):
    with pytest.raises(ProfileError, match=message):
        profile(**change)


def test_bad_profile_on_the_command_line_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[meta]\nname = 'x'\n")
    p = subprocess.run([sys.executable, "-m", "zeroing", "run", "--workload", "mixed", "--events",
                        "100", "--pages", "4096", "--cost-profile", str(bad)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert f"{bad}: meta.machine: missing" in p.stderr


@pytest.mark.parametrize("old,new,message", [
    (r"order0_ns = ", 'order0_ns = "fast" # ', r":(\d+): fault.order0_ns: expected a number"),
    (r"launch_ns = ", "launch_ns = -1 # ", r":(\d+): offload.cpu.launch_ns: must be a number"),
])
def test_a_bad_profile_value_names_its_line(tmp_path, old, new, message):
    import re
    lines = open(DEFAULT_PROFILE).read().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith(old))
    lines[at] = new + lines[at]
    path = tmp_path / "p.toml"
    path.write_text("".join(lines))
    with pytest.raises(ProfileError) as e:
        load_profile(str(path))
    m = re.search(message, str(e.value))
    assert m and int(m.group(1)) == at + 1, str(e.value)


@pytest.mark.parametrize("line,message", [
    ("order0_ns = " + "9" * 5000, r"p.toml:(\d+): a number of more than 4300 digits"),
    ("x = " + "[" * 100000 + "]" * 100000, r"p.toml: nested too deeply to read"),
])
def test_a_profile_python_cannot_read_is_one_named_error(tmp_path, line, message):
    import re
    lines = open(DEFAULT_PROFILE).read().splitlines(keepends=True)
    at = next(i for i, t in enumerate(lines) if t.startswith("order0_ns = "))
    lines[at] = line + "\n"
    path = tmp_path / "p.toml"
    path.write_text("".join(lines))
    with pytest.raises(ProfileError) as e:
        load_profile(str(path))
    m = re.search(message, str(e.value))
    assert m and (not m.groups() or int(m.group(1)) == at + 1), str(e.value)


def thp_run(policy, prof, **kw):
    ev = make_workload("vm-anon", 1 << 16, seed=0, thp="on", size_mb=32, rounds=2, idle_s=5)
    return simulate(ev, make_policy(policy, **kw), 1 << 16, cost_profile=prof)


def test_clears_charge_the_rate_of_the_block_order():
    prof = profile(**{"clear.normal": RATES})
    r = thp_run("baseline", prof)
    c, cost = r["counters"], r["cost"]
    allocs = r["by_order"]["allocs"]
    # Every THP fault clears at folio_zero_user: 512 pages at the order-9 rate.
    assert c["zero_user"] == allocs[9] * 512
    assert cost["by_site"]["user"] == round(c["zero_user"] * RATES[9])
    assert cost["by_site"]["free"] == 0
    assert cost["guest_clear_ns"] == sum(cost["by_site"].values())
    assert cost["fault_ns"] == round(allocs[9] * prof.fault_huge_ns)
    assert cost["task_clock_ns"] == cost["guest_clear_ns"] + cost["fault_ns"] + cost["host_in_task_ns"]


def reported_then(touch_order, prof):
    """Free an order-10 block, let reporting hand it to the host, then fault one block, at
    pfn 0: the first block the reporting pass isolated (the last few of a small zone stay
    unreported: ``__isolate_free_page()`` keeps the min watermark)."""
    ev = np.zeros(4, dtype=EVENT_DTYPE)
    ev[0] = (0, EV_ALLOC, 10, 0, GFP_KERNEL, 0)
    ev[1] = (1000, EV_FREE, 10, 0, 0, 0)
    ev[2] = (10_000_000_000, EV_IDLE, 0, 0, 0, 0)
    ev[3] = (10_000_001_000, EV_FAULT, touch_order, 0, 0, 1)  # ref = pfn + 1: exactly pfn 0
    return ev


@pytest.mark.parametrize("host_order", [0, 9])
def test_host_pays_at_the_first_touch_not_at_report_time(host_order):
    prof = profile(**{"clear.normal": HOST_RATES, "host.page_order": host_order,
                      "host.ept_fault_ns": 7777.0,
                      "host.ept_fault_4k_ns": 7777.0 if host_order == 0 else 333.0})
    # 128 MiB: above low + (32 << 9) free pages, so page_reporting_process_zone() reports it.
    pages = 1 << 15
    ev = reported_then(0, prof)
    before = simulate(ev[:3], make_policy("reporting"), pages, cost_profile=prof, pcp=False)
    assert before["counters"]["zero_host"] > 0
    assert before["cost"]["host_ns"] == 0 and before["cost"]["ept_faults"] == 0
    after = simulate(ev, make_policy("reporting"), pages, cost_profile=prof, pcp=False)
    cost = after["cost"]
    # One order-0 fault on host-discarded memory: one EPT violation, the host clears its unit.
    assert cost["ept_faults"] == 1
    unit = 1 << host_order
    assert cost["host_ns"] == round(7777.0 + unit * HOST_RATES[host_order])
    assert cost["host_in_task_ns"] == cost["host_ns"]
    assert cost["task_clock_ns"] == cost["guest_clear_ns"] + cost["fault_ns"] + cost["host_ns"]


def test_tracking_saves_the_guest_clear_not_the_host_refault():
    prof = profile(**{"clear.normal": RATES})
    plain = thp_run("reporting", prof)
    tracked = thp_run("pg_zeroed,reporting", prof)
    assert plain["counters"]["zero_host"] == tracked["counters"]["zero_host"] > 0
    assert tracked["counters"]["zero_skipped"] > 0 == plain["counters"]["zero_skipped"]
    assert tracked["cost"]["guest_clear_ns"] < plain["cost"]["guest_clear_ns"]
    assert tracked["cost"]["host_ns"] == plain["cost"]["host_ns"] > 0
    assert tracked["cost"]["background_ns"] > 0  # the reporting worker's own account


def offload_run(bandwidth, depth=1, launch=0.0):
    prof = profile(**{"offload.cpu.bandwidth_gb_s": bandwidth, "offload.cpu.queue_depth": depth,
                      "offload.cpu.launch_ns": launch})
    ev = make_workload("vm-anon", 1 << 16, seed=0, thp="on", size_mb=64, rounds=3, idle_s=1)
    r = simulate(ev, make_policy("offload", offload_batch_pages=4096,
                                 offload_period_ns=1_000_000), 1 << 16, cost_profile=prof)
    assert r["counters"]["zero_leak"] == 0
    return r


def test_a_slow_offload_device_falls_behind():
    fast, slow = offload_run(1000.0), offload_run(0.05)
    assert fast["cost"]["offload_behind_faults"] == 0
    assert slow["cost"]["offload_behind_faults"] > 0
    assert slow["counters"]["hint_hits"] < fast["counters"]["hint_hits"]
    # Its device time is charged whether or not anyone used the result.
    for r in (fast, slow):
        c = r["cost"]
        assert c["offload_device_ns"] == round(c["offload_bytes"] / (1000.0 if r is fast else 0.05))
        assert c["offload_bytes"] == r["counters"]["zero_offload"] * 4096


def test_offload_launch_latency_is_charged_per_batch():
    r = offload_run(1000.0, launch=5000.0)
    c = r["cost"]
    assert c["offload_batches"] > 0
    assert c["offload_device_ns"] == round(c["offload_batches"] * 5000.0 + c["offload_bytes"] / 1000.0)


def test_deeper_queue_keeps_up_better():
    one, four = offload_run(0.5, depth=1), offload_run(0.5, depth=4)
    assert four["cost"]["offload_batches"] >= one["cost"]["offload_batches"]


def test_unknown_offload_device_is_rejected():
    raw = copy.deepcopy(raw_default())
    del raw["offload"]["gpu"]
    prof = profile_from_dict(raw, "<test>")
    with pytest.raises(ProfileError, match="offload.gpu: no such offload device"):
        simulate(np.zeros(0, EVENT_DTYPE), make_policy("offload", offload_device="gpu"), 4096,
                 cost_profile=prof)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 1000), policy=st.sampled_from(
    ["baseline", "init_on_free", "reporting", "pg_zeroed,reporting", "offload,reporting",
     "init_on_alloc,balloon"]))
def test_cost_identities(seed, policy):
    ev = make_workload("mixed", 4096, 3000, seed=seed)
    c = simulate(ev, make_policy(policy), 4096)["cost"]
    assert all(v >= 0 for v in c.values() if isinstance(v, int))
    assert c["guest_clear_ns"] == sum(c["by_site"].values())
    assert c["task_clock_ns"] == c["guest_clear_ns"] + c["fault_ns"] + c["host_in_task_ns"]
    assert c["host_in_task_ns"] <= c["host_ns"]
    assert c["all_work_ns"] >= c["task_clock_ns"]


def test_calibrate_writes_a_profile_runs_pick_up(tmp_path):
    out = tmp_path / "here.toml"
    p = subprocess.run([sys.executable, "-m", "zeroing", "calibrate", "--out", str(out),
                        "--pool-mib", "64", "--reps", "1", "--no-gpu"], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert p.returncode == 0, p.stderr
    assert "GPU: skipped (--no-gpu); [offload.gpu] takes the H200 reference figures" in p.stdout
    prof = load_profile(str(out))
    assert prof.meta["date"] and "calibrate" in prof.meta["method"]
    assert all(v > 0 for v in prof.clear["normal"]) and all(v > 0 for v in prof.clear["nt"])
    ev = make_workload("mixed", 4096, 2000, seed=0)
    r = simulate(ev, make_policy("baseline"), 4096, cost_profile=str(out))
    assert r["cost"]["profile_path"] == str(out)


@pytest.mark.parametrize("policy", ["reporting", "pg_zeroed,reporting"])
def test_run_prints_and_writes_the_cost_section(tmp_path, policy):
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-m", "zeroing", "run", "--workload", "vm-anon", "--thp",
                        "on", "--size-mb", "16", "--rounds", "2", "--pages", "65536", "--policy",
                        policy, "--vmstat", "--json", str(out)], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert p.returncode == 0, p.stderr
    assert "time: task-clock" in p.stdout and "zsim_cost_task_clock_ns" in p.stdout
    import json
    cost = json.load(open(out))["cost"]
    for key in ("guest_clear_ns", "by_site", "fault_ns", "host_ns", "offload_device_ns",
                "offload_behind_faults", "task_clock_ns"):
        assert key in cost
    assert set(cost["by_site"]) == {"free", "alloc", "user"}
    assert cost["host_ns"] > 0  # reported memory was touched again


KEYS = ["clear.normal", "clear.nt", "clear.guest_stores", "fault.order0_ns", "fault.huge_ns",
        "host.ept_fault_ns", "host.ept_fault_4k_ns", "host.page_order", "reporting.sgl_ns", "offload.cpu.bandwidth_gb_s",
        "offload.gpu.queue_depth", "offload.gpu.batch_pages", "meta.machine"]
HOSTILE = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
                    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=12))


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(KEYS), value=HOSTILE)
def test_hostile_profiles_load_or_fail_with_one_named_error(key, value):
    raw = copy.deepcopy(raw_default())
    *path, last = key.split(".")
    t = raw
    for p in path:
        t = t[p]
    if value is None:
        del t[last]
    else:
        t[last] = value
    try:
        prof = profile_from_dict(raw, "<fuzz>")
    except ProfileError as e:
        assert str(e).startswith("<fuzz>: ") and "\n" not in str(e)
        return
    k = prof.as_array()
    assert np.all(np.isfinite(k)) and np.all(k >= 0)


def test_calibrate_bad_option_is_one_line():
    p = subprocess.run([sys.executable, "-m", "zeroing", "calibrate", "--out", "/tmp/x.toml",
                        "--pool-mib", "8"], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "--pool-mib: '8' is not allowed: an integer from 64" in p.stderr


def test_offload_batch_stopped_by_the_min_watermark_charges_the_pages_it_took():
    """A batch larger than the free memory above the min watermark: ``__isolate_free_page``
    refuses part way, and the batch is charged for the pages it isolated, no more."""
    pages = 4096  # the device batch (16384 pages) is larger than the whole zone
    prof = load_profile()
    events = make_workload("mixed", pages, 3000, seed=1)
    r = simulate(events, make_policy("offload"), pages, cost_profile=prof)
    c, cost = r["counters"], r["cost"]
    assert cost["offload_batches"] > 0 and c["zero_offload"] > 0
    assert prof.device("cpu").row_bytes == 0  # a kthread: no command rows, only page bytes
    assert cost["offload_bytes"] == c["zero_offload"] * 4096  # every batch completed here


def test_the_4k_host_profile_is_the_default_but_for_its_host():
    """``host-4k.toml`` is the default profile with a host backing guest RAM in 4 KiB pages:
    every measured figure the default's, the EPT violation its assumed exit plus the measured
    4 KiB fault. A re-calibrated default must be copied into it."""
    folder = os.path.dirname(DEFAULT_PROFILE)
    with open(DEFAULT_PROFILE, "rb") as f:
        default = tomllib.load(f)
    with open(os.path.join(folder, "host-4k.toml"), "rb") as f:
        host4k = tomllib.load(f)
    four_k = pytest.approx(default["meta"]["vmexit_assumed_ns"] + default["fault"]["order0_ns"])
    assert host4k["host"] == {"page_order": 0, "ept_fault_ns": four_k, "ept_fault_4k_ns": four_k}
    assert default["host"]["ept_fault_4k_ns"] == four_k
    assert host4k["meta"].pop("name") == "host-4k"
    default["meta"].pop("name")
    del host4k["host"], default["host"]
    assert host4k == default
    load_profile(os.path.join(folder, "host-4k.toml"))


@pytest.mark.parametrize("mode", ["metadata", "content"])
def test_a_program_writing_part_of_a_thp_saves_host_refaults_only_without_the_guest_clear(mode):
    """A THP fault on host-discarded memory whose program writes its first 128 pages
    (``FAULT_WRITES | 128`` in EV_FAULT's gfp): on a host backing guest RAM in 4 KiB pages, the guest's
    folio_zero_user() refaults all 512, while a fault served zeroed (the series' hint) lets
    only the 128 written pages refault. With the whole block written both pay 512."""
    prof = profile(**{"host.page_order": 0, "host.ept_fault_ns": 2000.0,
                      "host.ept_fault_4k_ns": 2000.0})
    pages = 1 << 15
    faults = {}
    for touched in (128, 0):
        ev = reported_then(9, prof)
        ev[3]["gfp"] = FAULT_WRITES | touched if touched else 0
        for policy in ("reporting", "pg_zeroed,reporting"):
            r = simulate(ev, make_policy(policy), pages, cost_profile=prof, pcp=False, mode=mode)
            assert r["counters"]["zero_leak"] == 0
            faults[touched, policy] = r["cost"]["ept_faults"]
    assert faults == {(128, "reporting"): 512, (128, "pg_zeroed,reporting"): 128,
                      (0, "reporting"): 512, (0, "pg_zeroed,reporting"): 512}


@pytest.mark.parametrize("written", [513, 0])
def test_a_fault_writing_more_pages_than_its_block_or_none_is_refused(written):
    ev = reported_then(9, profile())
    ev[3]["gfp"] = FAULT_WRITES | written
    with pytest.raises(ValueError, match="no page or more than the block has"):
        simulate(ev, make_policy("reporting"), 1 << 15, pcp=False)
    ev[3]["gfp"] = written  # without the mark: GFP bits, which a fault ignores
    simulate(ev, make_policy("reporting"), 1 << 15, pcp=False)


def test_a_4k_discard_on_a_thp_host_refaults_at_the_4k_fault():
    """A deflated balloon page (one 4 KiB page the host discarded out of a THP-backed guest
    RAM) refaults at the host's 4 KiB fault (``host.ept_fault_4k_ns``), not its THP fault:
    the discard split the host's huge page."""
    prof = profile(**{"clear.normal": HOST_RATES, "host.page_order": 9,
                      "host.ept_fault_ns": 7777.0, "host.ept_fault_4k_ns": 333.0})
    ev = np.zeros(3, dtype=EVENT_DTYPE)
    ev[0] = (0, EV_INFLATE, 0, 0, 0, 0)
    ev[1] = (1000, EV_DEFLATE, 0, 0, 0, 0)  # the host zeroed (discarded) it
    ev[2] = (2000, EV_FAULT, 0, 0, 0, 0)  # the pcp list gives it straight back
    cost = simulate(ev, make_policy("balloon"), 1 << 14, cost_profile=prof)["cost"]
    assert cost["ept_faults"] == 1
    assert cost["host_ns"] == round(333.0 + HOST_RATES[0])


def test_a_4k_host_s_two_fault_figures_must_agree():
    """With ``host.page_order`` 0 every refault is of a 4 KiB page, so ept_fault_ns and
    ept_fault_4k_ns are one figure: a profile giving two is refused (one of them would be
    ignored without a word)."""
    raw = copy.deepcopy(raw_default())
    raw["host"].update(page_order=0, ept_fault_ns=2150.4, ept_fault_4k_ns=999.0)
    with pytest.raises(ProfileError, match=r"host.ept_fault_4k_ns: 999.0 differs from "
                                           r"ept_fault_ns 2150.4: with page_order 0"):
        profile_from_dict(raw, "<p>")
    raw["host"]["ept_fault_4k_ns"] = 2150.4
    assert profile_from_dict(raw, "<p>").ept_fault_4k_ns == 2150.4


def test_init_on_free_does_not_clear_a_deflated_page_the_series_knows_is_zero():
    """With the series (balloon policy) a deflated page is freed FPI_ZEROED and
    kernel_init_pages() is skipped for it; without the series init_on_free clears it as any
    page."""
    ev = make_workload("balloon-cycle", 1 << 14, seed=0, cycles=2)
    deflated = int((ev["op"] == EV_DEFLATE).sum())
    plain = simulate(ev, make_policy("init_on_free"), 1 << 14)["counters"]
    series = simulate(ev, make_policy("init_on_free,balloon"), 1 << 14)["counters"]
    assert plain["zero_free"] - series["zero_free"] == deflated > 0
