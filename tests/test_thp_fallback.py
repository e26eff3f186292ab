"""A THP fault the zone cannot serve falls back to 4 KiB pages (VM_FAULT_FALLBACK): the
pages the program writes, faulted one at a time with __GFP_ZERO, freed when the THP would
have been; and a THP fault may not reclaim, so it fails at the min watermark."""
import numpy as np
import pytest

from allocator.flags import GFP_KERNEL
from zeroing import pipeline
from zeroing.engine import FB_BIT, R_FB_LIVE, R_FB_USED
from zeroing.events import EV_ALLOC, EV_FAULT, EV_FREE, EV_FREE_PFN, EVENT_DTYPE, fault_gfp
from zeroing.policy import make_policy
from zeroing.run import FB_START, Simulation, simulate

PAGES = 8192


def fragmented(nr_pages, faults, writes=0, each_freed=False):
    """Every page allocated, every other one freed (no free block above order 0), then
    ``faults`` THP faults writing ``writes`` pages each (0: all), then their frees (with
    ``each_freed``, each right after its fault)."""
    rows = [(0, EV_ALLOC, 0, 0, GFP_KERNEL, 0)] * nr_pages
    rows += [(0, EV_FREE, 0, 0, 0, k) for k in range(0, nr_pages, 2)]
    first = len(rows)
    if each_freed:
        for k in range(faults):
            rows += [(0, EV_FAULT, 9, 0, fault_gfp(writes), 0),
                     (0, EV_FREE, 9, 0, 0, first + 2 * k)]
    else:
        rows += [(0, EV_FAULT, 9, 0, fault_gfp(writes), 0)] * faults
        rows += [(0, EV_FREE, 9, 0, 0, first + k) for k in range(faults)]
    ev = np.array(rows, dtype=EVENT_DTYPE)
    ev["time"] = np.arange(len(ev)) * 1000
    return ev


def run(events, pages=PAGES, policy="pg_zeroed", **kw):
    kw.setdefault("pcp", False)
    kw.setdefault("other_zones", ())
    return simulate(events, make_policy(policy), pages, **kw)


def test_a_thp_fault_without_a_free_huge_block_faults_4k_pages():
    r = run(fragmented(PAGES, 4))
    c = r["counters"]
    assert c["thp_fault_fallback"] == 4 and c["alloc_fail"] == 0
    assert c["pgalloc"] == PAGES + 4 * 512 and c["alloc_blocks"] == PAGES + 4 * 512
    assert r["by_order"]["allocs"][9] == 0 and r["by_order"]["allocs"][0] == PAGES + 4 * 512
    # Order-0 faults are cleared at allocation (__GFP_ZERO), not by folio_zero_user().
    assert c["zero_alloc"] == 4 * 512 and c["zero_user"] == 0
    # The THP's free frees every page of the fallback.
    assert c["pgfree"] == PAGES // 2 + 4 * 512
    assert r["buddyinfo"] == run(fragmented(PAGES, 0))["buddyinfo"]
    assert c["zero_leak"] == 0


def test_a_fallback_faults_only_the_pages_the_program_writes():
    c = run(fragmented(PAGES, 3, writes=100))["counters"]
    assert c["thp_fault_fallback"] == 3
    assert c["pgalloc"] == PAGES + 300 and c["pgfree"] == PAGES // 2 + 300


def test_a_thp_fault_that_fits_is_no_fallback():
    ev = fragmented(PAGES, 0)
    thp = np.array([(0, EV_FAULT, 9, 0, 0, 0), (0, EV_FREE, 9, 0, 0, 0)], dtype=EVENT_DTYPE)
    thp["time"] = [1000, 2000]
    sim = Simulation(make_policy("pg_zeroed"), 2 * PAGES, pcp=False, other_zones=())
    sim.feed(ev)
    sim.feed(thp)
    c = sim.finish()["counters"]
    assert c["thp_fault_fallback"] == 0 and c["pgalloc"] == PAGES + 512


@pytest.mark.parametrize("above_min, falls_back", [(600, False), (300, True)])
def test_a_thp_fault_may_not_take_the_zone_to_its_min_watermark(above_min, falls_back):
    """GFP_TRANSHUGE_LIGHT has no __GFP_DIRECT_RECLAIM: the slow path tries once at the min
    watermark and gives up, though a free order-9 block is there."""
    pages = 1 << 15
    sim = Simulation(make_policy("pg_zeroed"), pages, pcp=False, other_zones=())
    wmark_min = sim.alloc.watermarks()[0]
    take = sim.alloc.nr_free_pages() - wmark_min - above_min
    ev = np.array([(k, EV_ALLOC, 0, 0, GFP_KERNEL, 0) for k in range(take)], dtype=EVENT_DTYPE)
    sim.feed(ev)
    assert any(sim.alloc.buddyinfo()[9:])  # a free block the fault could have taken
    thp = np.array([(take, EV_FAULT, 9, 0, 0, 0)], dtype=EVENT_DTYPE)
    sim.feed(thp)
    c = sim.finish()["counters"]
    assert c["thp_fault_fallback"] == (1 if falls_back else 0)
    assert c["pgalloc"] == take + 512


@pytest.fixture
def small_ranges(monkeypatch):
    monkeypatch.setattr(pipeline, "MIN_SEGMENT", 256)
    monkeypatch.setattr(pipeline, "SEGMENT", 512)


def comparable(result):
    out = dict(result)
    out["counters"] = {k: v for k, v in result["counters"].items()
                       if k not in ("wall_s", "events_per_s")}
    out.pop("backend", None)
    return out


@pytest.mark.parametrize("mode", ["metadata", "content"])
@pytest.mark.parametrize("each_freed", [False, True])
def test_the_lists_grow_and_a_pipelined_run_is_the_serial_one(mode, each_freed, small_ranges):
    faults = FB_START // 512 + 8  # more pages than the lists start with
    pages = 1 << 16
    ev = fragmented(pages, faults, each_freed=each_freed)
    kw = dict(mode=mode, backend="numba" if mode == "content" else "auto")
    serial = run(ev, pages, "init_on_free,pg_zeroed,reporting", pipeline_mode="off", **kw)
    piped = run(ev, pages, "init_on_free,pg_zeroed,reporting", pipeline_mode="on", **kw)
    assert comparable(piped) == comparable(serial)
    c = serial["counters"]
    assert c["thp_fault_fallback"] == faults and c["pgalloc"] == pages + faults * 512
    assert c["zero_leak"] == 0


def test_the_lists_start_again_once_none_is_left():
    """A THP freed before the next fault falls back: a serial run reuses the lists' room
    (the lists grow only with the fallbacks alive at once), and so does each feed of a
    pipelined one."""
    faults = 3 * FB_START // 512
    for each_freed, grows in ((True, False), (False, True)):
        pages = 1 << 16
        sim = Simulation(make_policy("pg_zeroed"), pages, pcp=False, other_zones=())
        sim.feed(fragmented(pages, faults, each_freed=each_freed))
        assert sim.finish()["counters"]["thp_fault_fallback"] == faults
        assert (sim.state.arrays.fb.shape[0] > FB_START) == grows
        assert sim.state.arrays.rstate[R_FB_USED] == 0 and sim.state.arrays.rstate[R_FB_LIVE] == 0


def test_a_fallback_freed_in_a_later_feed():
    """Trace replay and streamed workloads free an allocation of an earlier feed by the block
    the engine gave it (``ev_pfn``), here a fallback list."""
    ev = fragmented(PAGES, 2)
    cut = len(ev) - 2
    sim = Simulation(make_policy("pg_zeroed"), PAGES, pcp=False, other_zones=())
    ev_pfn = sim.feed(ev[:cut])
    blocks = ev_pfn[cut - 2:cut]
    assert all(b & FB_BIT for b in blocks)
    frees = np.array([(0, EV_FREE_PFN, 9, 0, 0, b + 1) for b in blocks], dtype=EVENT_DTYPE)
    frees["time"] = ev["time"][-1]
    sim.feed(frees)
    r = sim.finish()
    assert r["counters"]["pgfree"] == PAGES // 2 + 1024
    assert r["buddyinfo"] == run(fragmented(PAGES, 0))["buddyinfo"]


@pytest.mark.parametrize("at", [0, 5, 1 << 40])
def test_a_free_of_a_fallback_list_that_was_never_made_is_a_bad_event(at):
    from zeroing.run import BadEventError
    sim = Simulation(make_policy("pg_zeroed"), PAGES, pcp=False, other_zones=())
    ev = np.array([(0, EV_FREE_PFN, 9, 0, 0, (FB_BIT | at) + 1)], dtype=EVENT_DTYPE)
    with pytest.raises(BadEventError):
        sim.feed(ev)


def test_growing_the_lists_at_an_event_with_background_work_pipelined(small_ranges):
    """A THP fault that needs the lists grown where a reporting pass is due: the allocator's
    half stops before the pass, so the blocks the host zeroes are logged with the range that
    replays them (the serial run is the reference)."""
    rows = [(0, EV_ALLOC, 0, 0, GFP_KERNEL, 0)] * PAGES
    # Free 8 of every 16 pages: free memory in order-3 blocks, none of order 9.
    rows += [(0, EV_FREE, 0, 0, 0, k) for k in range(PAGES) if k % 16 < 8]
    first = len(rows)
    faults = FB_START // 512 + 4
    for k in range(faults):
        rows += [(0, EV_FAULT, 9, 0, 0, 0), (0, EV_FREE, 9, 0, 0, first + 2 * k)]
    ev = np.array(rows, dtype=EVENT_DTYPE)
    ev["time"][:first] = np.arange(first) * 1000
    ev["time"][first:] = first * 1000 + np.arange(len(ev) - first) * 2_500_000_000
    policy = make_policy("pg_zeroed,reporting", reporting_order=3)
    kw = dict(pcp=False, other_zones=())
    serial = simulate(ev, policy, PAGES, pipeline_mode="off", **kw)
    piped = simulate(ev, policy, PAGES, pipeline_mode="on", **kw)
    c = serial["counters"]
    assert c["thp_fault_fallback"] == faults and c["reported_pages"] > 0
    assert comparable(piped) == comparable(serial)


def test_the_readme_run_from_a_fragmented_machine(tmp_path):
    """The README's run: a real machine's Normal zone with no free block above order 6."""
    import json
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-m", "zeroing", "run", "--workload", "vm-anon",
                        "--thp", "on", "--size-mb", "64", "--rounds", "3", "--policy",
                        "pg_zeroed,reporting", "--initial-state",
                        "tests/data/node_exporter_buddyinfo,zone=Normal", "--json", str(out)],
                       cwd=root, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "THP faults fallen back to 4 KiB pages: 96 " in p.stdout
    assert "warning" not in p.stdout
    c = json.loads(out.read_text())["counters"]
    assert c["thp_fault_fallback"] == 96 and c["alloc_fail"] == 0
    # Cleared at allocation (__GFP_ZERO), none by folio_zero_user(); every page freed.
    assert c["zero_alloc"] >= 96 * 512 and c["zero_user"] == 0 and c["pgfree"] == c["pgalloc"]


JIT_SCRIPT = """
import json, sys
sys.path.insert(0, "tests")
from test_thp_fallback import fragmented, run
out = []
for writes in (0, 77):
    for policy in ("pg_zeroed", "init_on_free,pg_zeroed,reporting"):
        r = run(fragmented(2048, 2, writes), pages=2048, policy=policy, pcp=True)
        c = r["counters"]
        for k in ("wall_s", "events_per_s"):
            c.pop(k)
        out.append([c, r["buddyinfo"], r["by_order"]])
print(json.dumps(out))
"""


def test_the_fallback_jitted_and_interpreted_agree():
    from jit_twice import jitted_and_interpreted
    out = jitted_and_interpreted(JIT_SCRIPT)
    assert out[0] == out[1]
    assert all(c["thp_fault_fallback"] == 2 for c, _, _ in out[0])


def _content_matches_metadata(backend):
    ev = fragmented(4096, 3, writes=300)
    volatile = ("wall_s", "events_per_s", "backend", "mode")
    for policy in ("init_on_free,pg_zeroed,reporting", "pg_zeroed"):
        meta = run(ev, 4096, policy)
        content = run(ev, 4096, policy, mode="content", backend=backend)
        assert {k: v for k, v in meta["counters"].items() if k not in volatile} == \
            {k: v for k, v in content["counters"].items() if k not in volatile}
        assert meta["leaks"] == content["leaks"] and meta["cost"] == content["cost"]
        assert content["counters"]["thp_fault_fallback"] == 3


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fallback_pages_in_content_mode(backend):
    """Real bytes: every fallback page cleared at its fault, checked, written, freed."""
    _content_matches_metadata(backend)


@pytest.mark.gpu
def test_fallback_pages_in_content_mode_on_cupy():
    from kernels import get_backend
    try:
        get_backend("cupy")
    except RuntimeError as e:
        pytest.skip(f"NO GPU: CuPy content mode not tested on this machine ({e})")
    _content_matches_metadata("cupy")


def test_a_freed_list_serves_the_next_fallback_while_another_is_alive(monkeypatch):
    """One fallback kept alive all along, thousands made and freed beside it: a serial run
    reuses each freed list (a hostile pass saw the lists grow by 4 KiB a fallback), and a
    pipelined one each list its engine's half has read (ranges of 64 events here: 2048
    fallbacks kept their lists, 1M entries, before)."""
    monkeypatch.setattr(pipeline, "MIN_SEGMENT", 64)
    monkeypatch.setattr(pipeline, "SEGMENT", 64)
    pages = 1 << 14
    rows = [(0, EV_ALLOC, 0, 0, GFP_KERNEL, 0)] * pages
    rows += [(0, EV_FREE, 0, 0, 0, k) for k in range(0, pages, 2)]
    rows.append((0, EV_FAULT, 9, 0, 0, 0))  # kept
    first = len(rows)
    faults = 64 * FB_START // 512
    for k in range(faults):
        rows += [(0, EV_FAULT, 9, 0, 0, 0), (0, EV_FREE, 9, 0, 0, first + 2 * k)]
    ev = np.array(rows, dtype=EVENT_DTYPE)
    results = {}
    for mode, most in (("off", FB_START), ("on", 4 * FB_START)):
        sim = Simulation(make_policy("pg_zeroed"), pages, pcp=False, other_zones=(),
                         pipeline_mode=mode)
        sim.feed(ev)
        results[mode] = comparable(sim.finish())
        assert results[mode]["counters"]["thp_fault_fallback"] == faults + 1
        assert sim.state.arrays.fb.shape[0] <= most, mode
    assert results["on"] == results["off"]


@pytest.mark.parametrize("forged", ["mid-list", "high bit", "freed and reused"])
def test_a_free_naming_no_live_list_is_a_bad_event(forged):
    from zeroing.run import BadEventError
    sim = Simulation(make_policy("pg_zeroed"), PAGES, pcp=False, other_zones=())
    ev = fragmented(PAGES, 2)
    cut = len(ev) - 2
    ev_pfn = sim.feed(ev[:cut])
    lists = [int(b) for b in ev_pfn[cut - 2:cut]]
    if forged == "mid-list":
        refs = [lists[0] + 5]
    elif forged == "high bit":
        refs = [lists[0] | (1 << 61)]
    else:  # freed, its pages taken by others, then freed again
        sim.feed(np.array([(0, EV_FREE_PFN, 9, 0, 0, lists[1] + 1)], dtype=EVENT_DTYPE))
        sim.feed(np.array([(0, EV_ALLOC, 0, 0, GFP_KERNEL, 0)] * 512, dtype=EVENT_DTYPE))
        refs = [lists[1]]
    with pytest.raises(BadEventError):
        sim.feed(np.array([(0, EV_FREE_PFN, 9, 0, 0, r + 1) for r in refs], dtype=EVENT_DTYPE))
