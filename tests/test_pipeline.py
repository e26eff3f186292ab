"""A pipelined run (zeroing/pipeline.py) against the serial loop: the same results, whatever
the workload, policy, mode, range size and log size."""
import numpy as np
import pytest

from zeroing import pipeline
from zeroing.events import EV_ALLOC, EV_FREE, EVENT_DTYPE
from zeroing.policy import make_policy
from zeroing.run import BadEventError, Simulation, simulate
from zeroing.workloads import WORKLOADS, make_workload

VOLATILE = ("wall_s", "events_per_s")


def comparable(result):
    out = dict(result)
    out["counters"] = {k: v for k, v in result["counters"].items() if k not in VOLATILE}
    if "backend" in result:  # the same batches, launched at the same points; not its time
        out["backend"] = {k: v for k, v in result["backend"].items() if k != "wall_s"}
    return out


@pytest.fixture
def small_ranges(monkeypatch):
    """Ranges of a few hundred events: many hand-overs, background work in most ranges."""
    monkeypatch.setattr(pipeline, "MIN_SEGMENT", 256)
    monkeypatch.setattr(pipeline, "SEGMENT", 512)


def both(events, policy, pages, **kw):
    serial = simulate(events, policy, pages, pipeline_mode="off", **kw)
    piped = simulate(events, policy, pages, pipeline_mode="on", **kw)
    return comparable(serial), comparable(piped)


POLICIES = [("pg_zeroed", {}), ("init_on_free,pg_zeroed,reporting", {}),
            ("init_on_alloc,reporting", {}), ("balloon,reporting", {}),
            ("init_on_free,balloon,reporting", {"reporting_order": 3}),
            ("pg_zeroed,reporting,zeroed_aware", {}),
            ("pg_zeroed,reporting", {"hint": "lru_bit", "pfmemalloc": "assign",
                                     "aliasing_cache": True})]


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_pipelined_run_is_the_serial_run(workload, small_ranges):
    pages = 8192
    events = make_workload(workload, pages, 6000 if "events" in WORKLOADS[workload][1] else None,
                           seed=3)
    for names, options in POLICIES:
        serial, piped = both(events, make_policy(names, **options), pages)
        assert piped == serial, (workload, names, options)


def test_reporting_between_ranges_and_within_them(small_ranges):
    # Idle gaps of 2.5 s: a reporting pass (and vmstat ticks) before many events, the host's
    # zeroing replayed by the engine's half before the event it preceded.
    pages = 16384
    ev = make_workload("balloon-cycle", pages, seed=1)
    ev["time"] = np.arange(len(ev), dtype=np.int64) * 2_500_000
    policy = make_policy("balloon,reporting")
    serial, piped = both(ev, policy, pages)
    assert serial["counters"]["reporting_passes"] > 10
    assert serial["counters"]["zero_host"] > 0
    assert piped == serial


@pytest.mark.parametrize("rows", [4, 300])
def test_a_log_too_small_for_the_background_work(monkeypatch, small_ranges, rows):
    # Every 2 MiB free notifies the reporting worker: with 100 ms between events a pass comes
    # every 20 events, and one over 65536 pages may need (128 + 1) * 2 rows. With 4 rows no
    # pass fits an empty log, so each runs serially between the ranges; with 300 ranges end
    # early, before a pass that might not fit what is left.
    monkeypatch.setattr(pipeline, "LOG_ROWS", rows)
    pages = 65536
    ev = make_workload("vm-anon", pages, seed=2, thp=True)
    ev["time"] = np.arange(len(ev), dtype=np.int64) * 100_000_000
    policy = make_policy("init_on_free,pg_zeroed,reporting")
    sim = Simulation(policy, pages, pipeline_mode="on")
    sim.feed(ev)
    assert (sim._pipe.serial_events > 0) == (rows == 4)
    assert sim._pipe.cut_ranges > 0
    piped = comparable(sim.finish())
    assert piped == comparable(simulate(ev, policy, pages, pipeline_mode="off"))
    assert piped["counters"]["reporting_passes"] > 20


@pytest.mark.parametrize("backend", ["numba", "host-only"])
def test_content_mode_pipelined(small_ranges, backend):
    from kernels.device_batch import HostOnly
    pages = 8192
    ev = make_workload("mixed", pages, 8000, seed=4)
    policy = make_policy("balloon,reporting")
    kw = dict(mode="content", backend=HostOnly(1 << 12) if backend == "host-only" else backend)
    serial, piped = both(ev, policy, pages, **kw)
    assert piped == serial
    meta = comparable(simulate(ev, policy, pages))["counters"]
    assert {k: v for k, v in piped["counters"].items() if k not in ("mode", "backend")} == \
        {k: v for k, v in meta.items() if k not in ("mode", "backend")}


def test_policies_that_need_page_state_run_serially(small_ranges):
    pages = 8192
    ev = make_workload("mixed", pages, 6000, seed=5)
    for policy in (make_policy("pg_zeroed", free_signal="page_bit"), make_policy("offload")):
        assert not pipeline.wanted("on", policy_array(policy, pages), len(ev))
        sim = Simulation(policy, pages, pipeline_mode="on")
        sim.feed(ev)
        assert sim._pipe is None
    policy = make_policy("pg_zeroed")
    assert pipeline.wanted("on", policy_array(policy, pages), len(ev))
    assert not pipeline.wanted("off", policy_array(policy, pages), len(ev))


def policy_array(policy, pages):
    from zeroing.policy import as_array
    return as_array(policy, pages)


def test_a_bad_event_stops_both_runs_at_the_same_event(small_ranges):
    pages = 4096
    n = 3000
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["op"][0::2] = EV_ALLOC
    ev["op"][1::2] = EV_FREE
    ev["ref"][1::2] = np.arange(0, n, 2)
    ev["time"] = np.arange(n)
    ev["ref"][2001] = 2001  # names itself, not an earlier allocation
    messages = []
    for mode in ("off", "on"):
        sim = Simulation(make_policy("pg_zeroed"), pages, pipeline_mode=mode)
        with pytest.raises(BadEventError) as e:
            sim.feed(ev)
        messages.append(str(e.value))
        c = sim.state.arrays.cnt.copy()
        if mode == "off":
            before = c
    assert messages[0] == messages[1] and "event 2001" in messages[0]
    assert (c == before).all()  # the engine's half finished the events before it


def test_cli_pipeline_option(tmp_path):
    import json
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = [sys.executable, "-m", "zeroing", "run", "--workload", "mixed", "--events", "12000",
            "--pages", "16384", "--policy", "pg_zeroed,reporting"]
    results = []
    for mode in ("off", "on"):
        out = tmp_path / f"{mode}.json"
        p = subprocess.run(base + ["--pipeline", mode, "--json", str(out)], cwd=root,
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        r = json.loads(out.read_text())
        for k in VOLATILE:
            r["counters"].pop(k)
        results.append(r)
    assert results[0] == results[1]
    for extra, says in ((["--pipeline", "maybe"], "--pipeline: 'maybe' is not allowed"),
                        (["--pipeline", "on", "--free-signal", "page_bit"],
                         "--pipeline on: has no effect with --free-signal page_bit")):
        p = subprocess.run(base + extra, cwd=root, capture_output=True, text=True)
        assert p.returncode == 2 and says in p.stderr and len(p.stderr.splitlines()) == 1, \
            p.stderr


def test_a_pass_a_vmstat_tick_schedules_needs_log_room(monkeypatch, small_ranges):
    # THPs sit on the per-cpu list; 6.5 s without an event: one call of the background work
    # runs the ticks that drain them (each drain notifies page reporting) and the pass 2 s
    # after the first, which may report more blocks than a 4-row log holds. The allocator's
    # half must stop before that event (and the event run serially), as for a pass already
    # scheduled.
    from allocator import GFP_KERNEL
    from zeroing.events import EV_IDLE
    monkeypatch.setattr(pipeline, "LOG_ROWS", 4)
    S = 1_000_000_000
    rows = [(0, EV_IDLE, 0, 0, 0, 0)]
    rows += [(3 * S + k, EV_ALLOC, 9, 0, GFP_KERNEL, 0) for k in range(8)]
    rows += [(3 * S + 100 + k, EV_FREE, 9, 0, 0, 1 + k) for k in range(8)]
    rows += [(3 * S + 1000 + k, EV_IDLE, 0, 0, 0, 0) for k in range(400)]
    rows += [(10 * S, EV_IDLE, 0, 0, 0, 0), (30 * S, EV_IDLE, 0, 0, 0, 0)]
    ev = np.array(rows, dtype=EVENT_DTYPE)
    policy = make_policy("pg_zeroed,reporting")
    serial, piped = both(ev, policy, 1 << 16)
    assert piped == serial
    assert serial["counters"]["reporting_passes"] == 2
    sim = Simulation(policy, 1 << 16, pipeline_mode="on")
    sim.feed(ev)
    # Serially: the events at 3 s (registration's pass), 10 s (the ticks and their pass) and
    # 30 s (more ticks); a check blind to the ticks' pass runs only the first serially.
    assert sim._pipe.serial_events == 3


def test_a_program_writing_part_of_each_thp_pipelined(small_ranges):
    # The engine's half writes the first pages of each block (dirty_prefix): the same run.
    pages = 8192
    ev = make_workload("vm-anon", pages, seed=3, thp=True, size_mb=8, rounds=2, idle_s=3.0,
                       touch=0.3)
    from zeroing.events import FAULT_WRITES
    # EV_FAULT: round(0.3 * 512) pages written
    assert (ev["gfp"][ev["op"] == 2] == FAULT_WRITES | 154).all()
    for names in ("reporting", "init_on_free,pg_zeroed,reporting"):
        serial, piped = both(ev, make_policy(names), pages)
        assert piped == serial, names
