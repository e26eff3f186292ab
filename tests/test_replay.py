"""Trace parsing and replay: real 6.18 data, old and odd layouts, bad lines."""
import json
import lzma
import os
import re
import subprocess
import sys

import pytest

from zeroing.policy import make_policy
from zeroing.replay import replay, trace_to_events
from zeroing.trace import VMSTAT_TICK, TraceError, load_format_table, parse_gfp, read_events

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
CAPTURE = os.path.join(DATA, "trace_kmem_6.18.txt.gz")


def pages_free(path):
    return sum(int(n) for n in re.findall(r"pages free\s+(\d+)", open(path).read()))


def test_capture_accounting_matches_zoneinfo():
    _, info = trace_to_events(CAPTURE)
    change = pages_free(os.path.join(DATA, "after_zoneinfo-6.18")) - \
        pages_free(os.path.join(DATA, "before_zoneinfo-6.18"))
    assert change == -1260
    assert info["nr_free_pages_delta"] == change
    assert info["events"] == {"mm_page_alloc": 6482, "mm_page_alloc_zone_locked": 1261,
                              "mm_page_free": 6586, "mm_page_free_batched": 5055}
    assert info["malformed"] == 0
    assert info["anomalies"]["free_batched_repeat"] == 5055  # each repeats an mm_page_free


@pytest.mark.parametrize("mode", ["exact", "requests"])
def test_capture_replays_under_policies(mode):
    r = replay(CAPTURE, make_policy("init_on_free,pg_zeroed"), mode)
    c = r["counters"]
    assert c["pgalloc"] > 6000 and c["zero_leak"] == 0
    if mode == "exact":
        assert c["replay_miss"] <= 5 and c["replay_adopted"] > 0
    assert r["nr_free_pages_delta"] == -1260


def test_format_file_table_matches_built_in():
    from allocator.flags import GFP_NAMES
    table = load_format_table(os.path.join(DATA, "mm_page_alloc-6.18.format"))
    assert all(GFP_NAMES[k] == v for k, v in table.items())
    assert parse_gfp("GFP_HIGHUSER_MOVABLE|__GFP_COMP", table) == 0x140cca


def test_gfp_as_hex_and_as_names_agree():
    rows = list(read_events(os.path.join(DATA, "stable2025_rostedt_gfp_enum_libtraceevent_output.txt")))
    assert [r[4] for r in rows] == [0x140cca, 0x140cca]


def test_strict_error_names_file_line_and_reason_lenient_counts():
    path = os.path.join(DATA, "lkml2022_brian_foster_v5.18_mm_page_free.txt")
    with pytest.raises(TraceError, match=r"v5.18_mm_page_free.txt:2: not a trace event line"):
        list(read_events(path))
    counts = {}
    rows = list(read_events(path, lenient=True, counts=counts))
    assert rows == [(3, "mm_page_free", 0x182190, 2, 0)]
    assert counts["malformed"] == 1 and counts["events"]["iomap_finish_ioend"] == 2


ODD = """\
# tracer: nop
cpus=2
  kworker/u4:1-77    [001] d..3.   10.000001: mm_page_alloc_zone_locked: page=0000 pfn=0x200 order=0 migratetype=1 percpu_refill=1
  my-comm: odd-12    [001] .....   10.000002: mm_page_alloc: page=0000 pfn=0x200 order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO vendor_field=7
            bash  4242 [000]    10.000003: kmem:mm_page_alloc: page=0xffff pfn=0x400 order=2 migratetype=0 gfp_flags=GFP_KERNEL|GFP_ZERO
	ffffffff8123 __alloc_pages+0x1
	ffffffff8456 do_anonymous_page+0x2
  sh-9   [000]   10.000004: sched_switch: prev_comm=sh prev_pid=9
  sh-9   [000]   10.000005: mm_page_alloc:        page= (null) pfn=0 order=0 migratetype=0 gfp_flags=GFP_NOWAIT
  old-1  [000]   10.000006: mm_page_free: page=ffffea pfn=1024 order=2
  old-1  [000]   10.000007: mm_page_free: page=ffffea pfn=0x900 order=0
  old-1  [000]   10.000008: mm_page_free_batched: page=ffffea pfn=0x900 order=0
  x-1    [000]   10.000009: mm_page_pcpu_drain: page=ffff pfn=0x900 order=0 migratetype=1
"""


def test_odd_layouts_old_spellings_failed_allocs_and_other_events(tmp_path):
    path = tmp_path / "odd.txt.xz"
    with lzma.open(path, "wt") as f:
        f.write(ODD)
    events, info = trace_to_events(str(path))
    assert info["malformed"] == 0
    assert info["events"]["sched_switch"] == 1 and info["events"]["mm_page_alloc"] == 3
    assert info["anomalies"] == {"failed_alloc": 1, "free_before_trace": 1, "free_batched_repeat": 1}
    # zone_locked -1, drain +1; the frees are pcp orders
    assert info["nr_free_pages_delta"] == 0
    rows = list(read_events(str(path)))
    assert (10, "mm_page_free", 1024, 2, 0) in rows  # decimal pfn of old kernels
    r = replay(str(path), make_policy("baseline"), "exact")
    assert r["counters"]["pgalloc"] == 1 + 4 and r["counters"]["zero_alloc"] == 5


def refused(path, text, message):
    """A trace of this text is refused, the message naming its file and line."""
    path.write_text(text)
    with pytest.raises(TraceError, match=message):
        list(read_events(str(path)))


def test_unknown_gfp_flag_is_an_error(tmp_path):
    refused(tmp_path / "bad.txt", "  a-1 [000] 1.0: mm_page_alloc: page=0 pfn=0x10 order=0 "
            "migratetype=0 gfp_flags=GFP_KERNEL|__GFP_BOGUS\n",
            r"bad.txt:1: unknown gfp flag '__GFP_BOGUS'")


def test_cli_replay_json(tmp_path):
    out = tmp_path / "r.json"
    p = subprocess.run([sys.executable, "-m", "zeroing", "replay", CAPTURE, "--policy",
                        "pg_zeroed", "--json", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    for key in ("events", "malformed", "anomalies", "nr_free_pages_delta", "counters"):
        assert key in r
    bad = subprocess.run([sys.executable, "-m", "zeroing", "replay",
                          os.path.join(DATA, "lkml2022_brian_foster_v5.18_mm_page_free.txt")],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "mm_page_free.txt:2:" in bad.stderr


def test_streamed_replay_in_small_chunks_matches_one_chunk():
    """Chunked conversion (bounded memory) gives the same result as the whole trace at once."""
    policy = make_policy("init_on_free,pg_zeroed")
    for mode in ("exact", "requests"):
        whole = replay(CAPTURE, policy, mode)
        small = replay(CAPTURE, policy, mode, chunk_events=997)
        for key in ("events_per_s", "wall_s"):
            whole["counters"].pop(key)
            small["counters"].pop(key)
        assert small["counters"] == whole["counters"]
        assert small["buddyinfo"] == whole["buddyinfo"]
        assert small["nr_free_pages_delta"] == whole["nr_free_pages_delta"] == -1260


def test_a_trace_without_cpu_or_timestamp_sizes_its_zone_without_trace_clock():
    """Only --trace-clock needs each line's CPU and timestamp: sizing the zone must not."""
    path = os.path.join(DATA, "stable2025_rostedt_gfp_enum_libtraceevent_output.txt")
    r = replay(path, make_policy("baseline"))
    assert r["counters"]["pgalloc"] == 2
    with pytest.raises(TraceError, match=r"output.txt:\d+: .*(cpu|timestamp)"):
        replay(path, make_policy("baseline"), trace_clock=True)


def test_timestamps_are_nanoseconds_within_bounds(tmp_path):
    line = "  a-1 [000] ....  {}: mm_page_free: page=0 pfn=0x10 order=0\n"
    path = tmp_path / "t.txt"
    path.write_text(line.format("5.1234567891234") + line.format("6.5"))
    assert [r[6] for r in read_events(str(path), detail=True)] == [5_123_456_789, 6_500_000_000]
    path.write_text(line.format("99999999999999999999.5"))
    with pytest.raises(TraceError, match=r"t.txt:1: timestamp 9+\.5 out of range"):
        list(read_events(str(path), detail=True))


@pytest.mark.parametrize("fields,reason", [
    ("page=0 pfn=0x10 order=0 migratetype=1", "mm_page_alloc without gfp_flags"),
    ("page=0 pfn=0x10 order=0 pfn=0x20 migratetype=1 gfp_flags=GFP_KERNEL", "field pfn given twice"),
])
def test_an_alloc_line_that_cannot_be_placed_is_refused(tmp_path, fields, reason):
    path = tmp_path / "t.txt"
    path.write_text(f"  a-1 [000] ....  5.1: mm_page_alloc: {fields}\n")
    with pytest.raises(TraceError, match=rf"t.txt:1: {reason}"):
        list(read_events(str(path)))


def test_a_small_trace_read_again_is_not_parsed_again_and_a_rewrite_is(tmp_path, monkeypatch):
    """The second read of the same bytes with the same options gives the same events and
    counts from what the first kept; new bytes of the same size (a rewrite inside one
    clock tick keeps size and mtime) are parsed."""
    import zeroing.trace as trace
    path = tmp_path / "t.txt"
    path.write_text(ODD)
    first_counts, again_counts = {}, {}
    first = list(read_events(str(path), counts=first_counts, detail=True))
    parsed = []
    real = trace._parse
    monkeypatch.setattr(trace, "_parse", lambda *a: parsed.append(1) or real(*a))
    again = list(read_events(str(path), counts=again_counts, detail=True))
    assert again == first and again_counts == first_counts and not parsed
    assert again_counts is not first_counts and again_counts["events"] is not first_counts["events"]
    list(read_events(str(path)))  # other options: parsed
    assert parsed == [1]
    st = os.stat(path)
    path.write_text(ODD.replace("pfn=0x400", "pfn=0x800"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # within one tick: the same mtime
    rows = list(read_events(str(path)))
    assert parsed == [1, 1] and (5, "mm_page_alloc", 0x800, 2, rows[2][4]) in rows


@pytest.mark.parametrize("name", ["trace_kmem_6.18.txt.gz", "trace_kmem_6.18_nothp128.txt.gz"])
def test_the_models_migratetype_is_the_kernels_on_every_captured_allocation(name):
    """The model takes an allocation's free list from its gfp flags; on the 6.18 captures
    the kernel's own migratetype field agrees on every mm_page_alloc line (movable and
    unmovable both present)."""
    counts = {}
    gfps = {gfp for _, ev, _, _, gfp in read_events(os.path.join(DATA, name), counts=counts)
            if ev == "mm_page_alloc"}
    assert counts["events"]["mm_page_alloc"] > 1000
    assert {(g >> 3) & 3 for g in gfps} >= {0, 1}
    assert counts.get("migratetype_differs", 0) == 0


def test_a_skipped_line_is_counted_as_malformed_and_not_as_an_event(tmp_path):
    good = ("    a.out-1 [000] .....    10.000000: mm_page_free: page=0x0 pfn=0x100 order=0\n"
            "    a.out-1 [000] .....    10.000001: workqueue_execute_start: work struct 000: "
            "function vmstat_update\n")
    bad = ("    a.out-1 [000] .....    10.000002: mm_page_free: page=0x0 pfn=0x101 order=12\n"
           "    a.out-1  mm_page_free: page=0x0 pfn=0x102 order=0\n"
           "    a.out-1  workqueue_execute_start: work struct 000: function vmstat_update\n")
    path = tmp_path / "trace.txt"
    path.write_text(good + bad)
    counts = {}
    rows = list(read_events(str(path), lenient=True, counts=counts, detail=True))
    assert [r[1] for r in rows] == ["mm_page_free", VMSTAT_TICK]
    assert counts["malformed"] == 3  # order 12, and two lines without CPU and time
    assert counts["events"] == {"mm_page_free": 1, "workqueue_execute_start": 1}


def test_exact_replay_in_a_zone_from_a_zoneinfo_says_what_set_it(capsys):
    # The zoneinfo's Normal zone has fewer managed pages than the node's highest pfn: the
    # message names --zoneinfo (it named --pages, which was not given) and the way out.
    from zeroing.cli import main
    data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    rc = main(["replay", os.path.join(data, "trace_kmem_6.18_nothp128_sleep8.txt.gz"),
               "--zoneinfo", os.path.join(data, "pcp_sleep8_before_zoneinfo-6.18")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err, err
    assert "--zoneinfo" in err and "gives a zone of 5394266 pages" in err
    assert "--replay-mode requests" in err


def test_a_6x_failed_allocation_is_no_allocation_of_pfn_0(tmp_path):
    """6.x prints a failed allocation as ``page=0000000000000000 pfn=0x0`` (%p prints NULL
    as it is): two failed THP tries (alloc_pages_mpol's __GFP_THISNODE try, then the retry)
    were read as allocations of pfn 0, and replayed as two 2 MiB user clears."""
    path = tmp_path / "t.txt"
    fail = ("  a-1 [000] .....  1.00000{}: mm_page_alloc: page=0000000000000000 pfn=0x0 "
            "order=9 migratetype=1 gfp_flags=GFP_TRANSHUGE_LIGHT|__GFP_THISNODE\n")
    path.write_text(fail.format(1) + fail.format(2) +
                    "  a-1 [000] .....  1.000003: mm_page_alloc: page=00000000abcd pfn=0x200 "
                    "order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO\n")
    rows = list(read_events(str(path)))
    assert [r[2] for r in rows] == [-1, -1, 0x200]
    r = replay(str(path), make_policy("baseline"), "requests")
    assert r["counters"]["zero_user"] == 0 and r["counters"]["zero_alloc"] == 1
    assert r["anomalies"] == {"failed_alloc": 2}


EXTFRAG = ("  a-1 [000] .....  1.00000{t}: mm_page_alloc_extfrag: page=00000000abcd pfn={pfn} "
           "alloc_order={order} fallback_order=10 pageblock_order=9 alloc_migratetype={mt} "
           "fallback_migratetype=1 fragmenting=0 change_ownership=1\n")
LOCKED = ("  a-1 [000] .....  1.00000{t}: mm_page_alloc_zone_locked: page=00000000abcd "
          "pfn={pfn} order=0 migratetype=1 percpu_refill=1\n")


def test_steals_and_whole_block_claims_take_from_the_buddy_unseen_by_zone_locked(tmp_path):
    """6.18 prints mm_page_alloc_zone_locked in __rmqueue_smallest only: a claim of less than
    a pageblock ends there (zone_locked, then extfrag, of one pfn: counted once), while a
    steal (__rmqueue_steal) and a whole-pageblock claim print extfrag alone. Those pages left
    the buddy too: the NR_FREE_PAGES change counts them, and a list refilled by a steal is a
    refilled list when the per-cpu lists' start is inferred."""
    path = tmp_path / "t.txt"
    path.write_text(LOCKED.format(t=1, pfn="0x200")
                    + EXTFRAG.format(t=2, pfn="0x200", order=0, mt=1)  # a partial claim
                    + EXTFRAG.format(t=3, pfn="0x401", order=0, mt=0)  # a steal
                    + EXTFRAG.format(t=4, pfn="0x800", order=9, mt=1))  # a whole block
    rows = list(read_events(str(path)))
    assert [(r[1][8:], r[2], r[3]) for r in rows] == [
        ("alloc_zone_locked", 0x200, 0), ("alloc_extfrag", 0x200, 0),
        ("alloc_extfrag", 0x401, 0), ("alloc_extfrag", 0x800, 9)]
    _, info = trace_to_events(str(path))
    assert info["zone_locked_pages"] == 1 and info["extfrag_pages"] == 1 + 512
    assert info["nr_free_pages_delta"] == -(1 + 1 + 512)
    from zeroing.pcp_start import TraceLists
    lists = TraceLists.from_trace(lambda: read_events(str(path), detail=True),
                                  lambda order, mt: 3 * order + mt)
    refilled = {(o, mt): done for o, mt, _, done in lists.lists[0].values()}
    assert refilled == {(0, 1): True, (0, 0): True, (9, 1): True}
    bad = tmp_path / "bad.txt"
    bad.write_text(EXTFRAG.format(t=1, pfn="0x401", order=0, mt=0).replace("alloc_order=0 ", ""))
    with pytest.raises(TraceError, match=r"bad.txt:1: missing alloc_order="):
        list(read_events(str(bad)))


@pytest.mark.parametrize("gfp,order,op", [
    ("GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP", 0, "fault"),  # vma_alloc_zeroed_movable_folio
    ("GFP_HIGHUSER_MOVABLE|__GFP_COMP", 0, "alloc"),  # page cache
    ("GFP_TRANSHUGE|__GFP_NORETRY|__GFP_THISNODE", 9, "fault"),  # the 6.18 THP capture's
    ("GFP_TRANSHUGE_LIGHT", 4, "fault"),  # an anonymous mTHP: alloc_anon_folio
    ("GFP_HIGHUSER_MOVABLE|__GFP_WRITE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP", 8, "alloc"),
    ("GFP_HIGHUSER_MOVABLE|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP", 9, "alloc"),  # page cache
    ("GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_RETRY_MAYFAIL|__GFP_NOWARN", 9, "alloc"),  # hugetlb
    ("GFP_KERNEL|__GFP_ZERO", 0, "alloc"),
    ("GFP_TRANSHUGE", 10, "alloc"),  # no x86-64 THP is larger than a PMD (order 9)
])
def test_classify_takes_faults_by_the_fault_paths_flags(gfp, order, op):
    """An anonymous THP or mTHP fault (GFP_TRANSHUGE*, any order) is cleared at the fault;
    an order-9 page-cache folio or hugetlb pool page (the user bits, without GFP_TRANSHUGE's
    __GFP_NOMEMALLOC) is not, where order 9 alone used to make a fault."""
    from zeroing.events import EV_ALLOC, EV_FAULT
    from zeroing.convert import classify
    from zeroing.trace import parse_gfp
    assert classify(parse_gfp(gfp), order) == {"fault": EV_FAULT, "alloc": EV_ALLOC}[op]


def test_an_earlier_zone_locked_of_a_pfn_does_not_hide_a_later_steal(tmp_path):
    """Only a zone_locked line of the pfn right before an extfrag line (a partial claim) has
    counted its pages; once the block was allocated, freed and drained, a steal of the same
    pfn takes 8 pages from the buddy again."""
    path = tmp_path / "t.txt"
    lines = (" a-1 [000] ..... 1.000001: mm_page_alloc_zone_locked: page=0000000000abcd pfn=0x400 "
             "order=3 migratetype=1 percpu_refill=1\n"
             " a-1 [000] ..... 1.000002: mm_page_alloc: page=0000000000abcd pfn=0x400 order=3 "
             "migratetype=1 gfp_flags=GFP_KERNEL\n"
             " a-1 [000] ..... 1.000003: mm_page_free: page=0000000000abcd pfn=0x400 order=3\n"
             " a-1 [000] ..... 1.000004: mm_page_pcpu_drain: page=0000000000abcd pfn=0x400 "
             "order=3 migratetype=1\n"
             + EXTFRAG.format(t=5, pfn="0x400", order=3, mt=1))
    path.write_text(lines)
    _, info = trace_to_events(str(path))
    assert info["extfrag_pages"] == 8 and info["nr_free_pages_delta"] == -8


def test_a_kmem_line_without_a_space_after_its_name_is_refused(tmp_path):
    """``mm_page_alloc:page=...`` was counted as an mm_page_alloc and then dropped."""
    path = tmp_path / "t.txt"
    refused(path, " a-1 [000] ..... 1.000001: mm_page_alloc:page=0000abcd pfn=0x10 order=0 "
            "migratetype=1 gfp_flags=GFP_KERNEL\n", r"t.txt:1: no space after mm_page_alloc:")
    counts = {}
    assert list(read_events(str(path), lenient=True, counts=counts)) == []
    assert counts["malformed"] == 1 and "mm_page_alloc" not in counts["events"]


def test_a_failed_allocation_leaves_max_pfn_alone(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(" a-1 [000] ..... 1.000001: mm_page_alloc: page=0000000000000000 pfn=0x0 "
                    "order=10 migratetype=1 gfp_flags=GFP_TRANSHUGE\n"
                    " a-1 [000] ..... 1.000002: mm_page_alloc: page=0000000000abcd pfn=0x10 "
                    "order=0 migratetype=1 gfp_flags=GFP_KERNEL\n")
    _, info = trace_to_events(str(path))
    assert info["max_pfn"] == 0x10


def test_an_extfrag_line_without_alloc_migratetype_cannot_split_the_pagesets(tmp_path):
    from zeroing.pcp_start import TraceLists
    path = tmp_path / "t.txt"
    path.write_text(EXTFRAG.format(t=1, pfn="0x401", order=0, mt=0)
                    .replace("alloc_migratetype=0 ", ""))
    with pytest.raises(TraceError, match=r"t.txt:1: mm_page_alloc_extfrag without "
                                         r"alloc_migratetype="):
        TraceLists.from_trace(lambda: read_events(str(path), detail=True),
                              lambda order, mt: 3 * order + mt, str(path))


def test_an_exact_replay_says_how_many_traced_allocations_it_could_not_place(tmp_path, capsys):
    """A block inside a live THP cannot be taken again: the summary counts one allocation,
    and a line says what happened to the other (it was counted in ``replay_miss`` only)."""
    from zeroing.cli import main
    line = ("  a.out-1 [000] .....    10.00000{}: mm_page_alloc: page=0x0 pfn={} order={} "
            "migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_COMP\n")
    path = tmp_path / "t.txt"
    path.write_text(line.format(1, "0x1000", 9) + line.format(2, "0x1001", 0))
    assert main(["replay", str(path)]) == 0
    out = capsys.readouterr().out
    assert "traced allocations (or frees of pages allocated before the trace) the model could "\
        "not place: 1 " in out
