"""Engine: policies, zeroing sites, hint designs, the sanitizer, page reporting, the CLI."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from allocator import GFP_KERNEL

from zeroing.events import EV_ALLOC, EV_FAULT, EV_FREE, EV_IDLE, EVENT_DTYPE, format_events, parse_events
from zeroing.policy import make_policy
from zeroing.run import simulate
from zeroing.workloads import make_workload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = 1 << 14


@pytest.fixture(scope="module")
def mixed():
    return make_workload("mixed", PAGES, 40_000, seed=1)


def run(events, policy, **kw):
    return simulate(events, make_policy(policy, **kw), PAGES)["counters"]


@pytest.mark.parametrize("policy", ["baseline", "init_on_free", "init_on_alloc", "pg_zeroed",
                                    "balloon", "reporting", "init_on_free,pg_zeroed",
                                    "pg_zeroed,balloon,reporting"])
def test_every_policy_is_sound(mixed, policy):
    c = run(mixed, policy)
    assert c["zero_leak"] == 0
    assert c["pgalloc"] > 0 and c["zero_checked"] > 0
    if "pg_zeroed" not in policy and policy != "balloon":
        assert c["zero_skipped"] == 0 and c["hint_hits"] == 0


def test_init_on_free_with_thp_clears_twice(mixed):
    base = run(mixed, "baseline")
    iof = run(mixed, "init_on_free")
    assert iof["zero_alloc"] == 0  # post_alloc_hook never clears with init_on_free
    assert iof["zero_user"] == base["zero_user"]  # folio_zero_user ignores init_on_free
    assert iof["zero_redundant"] >= iof["zero_user"] * 0.9


def test_tracking_turns_init_on_free_into_skips(mixed):
    iof = run(mixed, "init_on_free")
    tracked = run(mixed, "init_on_free,pg_zeroed")
    assert tracked["zero_skipped"] > 0
    assert tracked["zero_user"] < iof["zero_user"]
    assert tracked["zero_redundant"] < iof["zero_redundant"]


def test_reporting_host_zeroes_and_hints():
    # 256 MiB: a 64 MiB zone never has low + (32 << 9) free pages, so reporting skips it.
    pages = 1 << 16
    events = make_workload("mixed", pages, 40_000, seed=1)
    c = simulate(events, make_policy("pg_zeroed,reporting"), pages)["counters"]
    assert c["reporting_passes"] > 0 and c["zero_host"] > 0 and c["zero_skipped"] > 0


def test_reporting_alone_tracks_nothing():
    """The upstream baseline: the host zeroes reported blocks, the guest does not know and
    clears them again."""
    pages = 1 << 16
    events = make_workload("mixed", pages, 40_000, seed=1)
    c = simulate(events, make_policy("reporting"), pages)["counters"]
    assert c["reporting_passes"] > 0 and c["zero_host"] > 0
    assert c["zero_skipped"] == 0 and c["hint_hits"] == 0 and c["zero_redundant"] > 0


def test_reporting_skips_a_zone_below_low_plus_capacity(mixed):
    # page_reporting_process_zone(): 16384 pages < low (1000) + 32 << 9: never reported.
    c = run(mixed, "reporting")
    assert c["reporting_passes"] > 0 and c["reported_pages"] == 0


def test_reporting_waits_for_the_delayed_work():
    ev = np.zeros(4, dtype=EVENT_DTYPE)
    # Order 10 bypasses the pcp lists (order 9 would sit on the THP pcp list, unnotified).
    ev[0] = (0, EV_ALLOC, 10, 0, GFP_KERNEL, 0)
    ev[1] = (1000, EV_FREE, 10, 0, 0, 0)
    ev[2] = (1_999_000_000, EV_IDLE, 0, 0, 0, 0)
    pages = 1 << 16  # a zone large enough to pass the low + (32 << 9) test
    early = simulate(ev[:3], make_policy("reporting"), pages)["counters"]
    assert early["reporting_passes"] == 0
    ev[3] = (2_100_000_000, EV_IDLE, 0, 0, 0, 0)
    late = simulate(ev, make_policy("reporting"), pages)["counters"]
    assert late["reporting_passes"] == 1 and late["zero_host"] > 0


def test_stale_page_bit_leaks_and_fpi_does_not():
    ev = make_workload("unaware-user", PAGES, 20_000, seed=2)
    leaky = simulate(ev, make_policy("balloon", hint="folio_flag", free_signal="page_bit"), PAGES)
    assert leaky["counters"]["zero_leak"] > 0
    leak = leaky["leaks"][0]
    # Handed to a caller that trusts zero: a __GFP_ZERO allocation or an anon fault (caller mix).
    assert ev[leak["handed_out_by"]]["op"] in (EV_ALLOC, EV_FAULT)
    assert ev[leak["data_of"]]["op"] == EV_ALLOC and leak["data_of"] < leak["handed_out_by"]
    safe = simulate(ev, make_policy("balloon", hint="folio_flag", free_signal="fpi"), PAGES)
    assert safe["counters"]["zero_leak"] == 0


def test_a_leak_names_the_first_dirty_page_of_the_block():
    """check_zeroed counts every dirty page of a block and records the first of them, with
    its writer: content mode's VERIFY reports that page's marker, so both modes must agree."""
    from zeroing import counters as C
    from zeroing import engine
    from zeroing import struct_page as SP
    from zeroing.run import EngineState
    st = EngineState(64, make_policy("baseline"), "metadata", None)
    a = st.arrays
    a.truth[8:16] = [1, 1, 1, 0, 1, 0, 1, 1]
    a.writer[11], a.writer[13] = 7, 9
    a.writer_caller[11] = SP.CALLER_SLAB
    engine.check_zeroed(st.e, 8, 3, 99)
    assert a.cnt[C.ZERO_LEAK] == 2 and a.cnt[C.ZERO_CHECKED] == 8
    assert list(a.leaks[0]) == [11, 99, 7] and a.rstate[engine.R_NLEAKS] == 1
    assert a.by_caller[SP.CS_LEAK, SP.CALLER_SLAB] == 2


def test_pfmemalloc_assign_loses_the_hint(mixed):
    lost = run(mixed, "init_on_free,pg_zeroed", hint="lru_bit", pfmemalloc="assign")
    kept = run(mixed, "init_on_free,pg_zeroed", hint="lru_bit", pfmemalloc="or")
    assert lost["zero_hint_lost"] > 0 and kept["zero_hint_lost"] == 0
    assert lost["zero_user"] > kept["zero_user"]


def test_bad_names_fail_before_work():
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        make_policy("nope")
    with pytest.raises(ValueError, match="unknown hint"):
        make_policy("pg_zeroed", hint="bogus")
    with pytest.raises(ValueError, match="page_bit needs a tracking policy"):
        make_policy("baseline", free_signal="page_bit")
    with pytest.raises(ValueError, match="unknown workload"):
        make_workload("nope", PAGES, 10, 0)


def test_event_text_round_trip_and_errors():
    ev = make_workload("mixed", 4096, 200, seed=3)
    assert (parse_events(format_events(ev)) == ev).all()
    with pytest.raises(ValueError, match=r"trace.txt:2: unknown op 'fly'"):
        parse_events("0 idle 0 0 0 0\n1 fly 0 0 0 0\n", "trace.txt")
    # A value its column cannot hold was numpy's OverflowError, naming nothing.
    for line, why in (("0 alloc 300 0 0 0", "order 300 out of range (-128 to 127)"),
                      ("0 alloc 0 70000 0 0", "cpu 70000 out of range (0 to 65535)"),
                      ("0 alloc 0 0 0x1ffffffff 0", "gfp 8589934591 out of range"),
                      ("-1 idle 0 0 0 0", "time -1 out of range (0 to"),
                      ("0 free 0 0 0 99999999999999999999", "ref 99999999999999999999 out")):
        with pytest.raises(ValueError, match=r"e.txt:2: " + re.escape(why)):
            parse_events("0 idle 0 0 0 0\n" + line + "\n", "e.txt")
    with pytest.raises(ValueError, match=r"e.txt:2: time 5 is before the line before's 9"):
        parse_events("9 idle 0 0 0 0\n5 idle 0 0 0 0\n", "e.txt")


def test_cli_run_writes_json(tmp_path):
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-m", "zeroing", "run", "--workload", "mixed", "--policy",
                        "pg_zeroed,reporting", "--pages", "8192", "--events", "20000",
                        "--json", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "pages cleared" in p.stdout
    c = json.loads(out.read_text())["counters"]
    for key in ("pgalloc", "pgfree", "zero_free", "zero_alloc", "zero_user", "zero_offload",
                "zero_host", "zero_skipped", "zero_redundant", "zero_leak", "zero_hint_lost",
                "zeroed_dropped_merge", "events", "wall_s", "events_per_s", "backend", "mode"):
        assert key in c
    bad = subprocess.run([sys.executable, "-m", "zeroing", "run", "--policy", "nope"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown policy 'nope'" in bad.stderr


SCRIPT = """
import json, sys
from zeroing.policy import make_policy
from zeroing.run import simulate
from zeroing.workloads import make_workload
ev = make_workload("mixed", 4096, 6000, seed=5)
out = []
for pipeline_mode in ("off", "on"):  # the serial loop, and its two halves on two threads
    r = simulate(ev, make_policy("init_on_free,pg_zeroed,balloon,reporting"), 4096,
                 pipeline_mode=pipeline_mode)
    c = r["counters"]
    for k in ("wall_s", "events_per_s"):
        c.pop(k)
    out.append([c, r["buddyinfo"], r["zeroedinfo"]])
print(json.dumps(out))
"""


def test_engine_jit_and_interpreted_agree():
    from jit_twice import jitted_and_interpreted
    out = jitted_and_interpreted(SCRIPT)
    assert out[0] == out[1]
    assert out[0][0] == out[0][1]
    assert out[0][0][0]["reporting_passes"] > 0


def test_reporting_starts_at_registration_without_any_free():
    # page_reporting_register() schedules the initial flush 2 s after registration: boot-time
    # free memory is reported although nothing was ever freed.
    pages = 1 << 16
    ev = np.zeros(2, dtype=EVENT_DTYPE)
    ev[0] = (0, EV_IDLE, 0, 0, 0, 0)
    ev[1] = (1_999_999_999, EV_IDLE, 0, 0, 0, 0)
    assert simulate(ev, make_policy("reporting"), pages)["counters"]["reported_pages"] == 0
    ev[1] = (2_000_000_000, EV_IDLE, 0, 0, 0, 0)
    c = simulate(ev, make_policy("reporting"), pages)["counters"]
    assert c["reporting_passes"] == 1 and c["reported_pages"] > 0


def _unreported_free_blocks(sim, order):
    """Free buddy blocks of ``order`` or above not reported to the host."""
    from allocator.flags import PG_BUDDY, PG_REPORTED
    z = sim.alloc.z
    heads = np.flatnonzero((z.flags & PG_BUDDY) != 0)
    return [int(p) for p in heads if z.order[p] >= order and not z.flags[p] & PG_REPORTED]


@pytest.mark.parametrize("ticks, pipelined", [("timer", False), ("timer", True),
                                               ("recorded", False)])
def test_a_vmstat_tick_s_drain_notifies_page_reporting(ticks, pipelined):
    """decay_pcp_high() frees the per-cpu lists' excess into the buddy: those frees notify
    page reporting as any free does (``__free_one_page`` -> ``page_reporting_notify_free``),
    so THPs drained by the vmstat worker in an idle period are reported 2 s later, with no
    free event after them; at the model's ticks or at those a trace recorded. The model once
    looked for notifications only after free events: drained THPs stayed unreported until
    the next free."""
    from zeroing.events import EV_VMSTAT
    from allocator import core
    from zeroing.run import Simulation
    S = 1_000_000_000
    tick = EV_VMSTAT if ticks == "recorded" else EV_IDLE
    # A recorded tick before the model's first (1 s) replaces the model's timer.
    rows = [(0, EV_IDLE, 0, 0, 0, 0), (S // 2, tick, 0, 0, 0, 0)]
    rows += [(3 * S + k, EV_ALLOC, 9, 0, GFP_KERNEL, 0) for k in range(8)]
    rows += [(3 * S + 100 + k, EV_FREE, 9, 0, 0, 2 + k) for k in range(8)]  # onto the pcp list
    rows += [(t * S, tick if t < 12 else EV_IDLE, 0, 0, 0, 0) for t in range(4, 31)]
    ev = np.array(rows, dtype=EVENT_DTYPE)
    sim = Simulation(make_policy("reporting"), 1 << 16, pipeline_mode="on" if pipelined else "off")
    sim.feed(ev[:18])
    assert sim.alloc.z.stat[core.S_PCP_DRAIN] == 0  # the frees left the THPs on the list
    sim.feed(ev[18:])
    assert sim.alloc.z.stat[core.S_PCP_DRAIN] >= 1024  # the ticks drained some
    c = sim.finish()["counters"]
    assert _unreported_free_blocks(sim, make_policy("reporting").reporting_order) == []
    # Registration's pass at 2 s, and one 2 s after the first tick that drained.
    assert c["reporting_passes"] == 2
