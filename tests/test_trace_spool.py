"""A trace a replay reads several times is parsed once (``trace.Spooled``): the kept rows and
counts are the parsed ones, and a replay's result does not depend on where its rows came from."""
import gzip
import os

import pytest

from zeroing import trace
from zeroing.policy import make_policy
from zeroing.replay import replay
from zeroing.trace import Spooled, read_events
from zeroing.zoneinfo import normal_zone, other_lowmem_zones

DATA = os.path.join(os.path.dirname(__file__), "data")
THP64 = os.path.join(DATA, "trace_kmem_6.18_thp64.txt.gz")
ZONEINFO = os.path.join(DATA, "pcp_thp64_before_zoneinfo-6.18")


@pytest.fixture
def parses(monkeypatch):
    """How many times a file is parsed: ``read_events``' own cache of small traces is off."""
    monkeypatch.setattr(trace, "CACHE_BYTES", 0)
    calls = []
    parse = trace._parse

    def counted(*args, **kwargs):
        calls.append(args[0])
        yield from parse(*args, **kwargs)
    monkeypatch.setattr(trace, "_parse", counted)
    return calls


def damaged(tmp_path):
    """The thp64 capture cut in the middle of its gzip stream, with a malformed line first."""
    with gzip.open(THP64, "rb") as f:
        text = f.read()
    path = tmp_path / "damaged.txt.gz"
    data = gzip.compress(b"    a.out-1 [000] .....    1.000000: mm_page_free: page=0x0 pfn=0x1 "
                         b"order=12\n" + text)
    path.write_bytes(data[:len(data) // 2])
    return str(path)


@pytest.mark.parametrize("detail", [False, True])
def test_kept_rows_and_counts_are_the_parsed_ones(tmp_path, parses, detail, monkeypatch):
    monkeypatch.setattr(Spooled, "BLOCK", 1000)  # several blocks
    path = damaged(tmp_path)
    parsed_counts = {}
    parsed = list(read_events(path, True, None, parsed_counts, detail=detail))
    assert parsed_counts["truncated"] and parsed_counts["malformed"] == 1
    with Spooled(path, lenient=True, detail=detail) as rows:
        for _ in range(3):
            counts = {}
            assert list(rows.read(counts)) == parsed
            assert counts == parsed_counts
        assert len(parses) == 2  # the plain read above, and the spool's first
        # Two reads of the kept rows may interleave.
        a, b = rows.read(), rows.read()
        assert [next(a) for _ in range(1500)] == [next(b) for _ in range(1500)] == parsed[:1500]
    assert len(parses) == 2


def test_a_seeded_replay_parses_its_trace_once_and_gives_the_same_result(parses):
    managed, _, pagesets = normal_zone(ZONEINFO)
    results = []
    for spool in (True, False):
        parses.clear()
        results.append(replay(THP64, make_policy("init_on_free,pg_zeroed"), "requests",
                              nr_pages=managed, trace_clock=True, pcp_start=pagesets,
                              other_zones=other_lowmem_zones(ZONEINFO), spool=spool))
        # sizing, two for the lists' start, the run
        assert len(parses) == (1 if spool else 4)
    kept, parsed = results
    for result in results:
        for timing in ("wall_s", "events_per_s"):
            result["counters"].pop(timing)
    assert kept == parsed
    assert kept["events"]["mm_page_pcpu_drain"] == 2451 and kept["pcp"]["start"]


def test_a_few_rows_are_kept_too(tmp_path, parses):
    path = tmp_path / "t.txt"
    path.write_text("".join(f"    a.out-1 [001] .....    10.00000{k}: mm_page_free: page=0x0 "
                            f"pfn=0x{k:x} order=0\n" for k in range(3)))
    with Spooled(str(path), detail=True) as rows:
        assert list(rows.read()) == list(rows.read()) == list(read_events(str(path),
                                                                           detail=True))
    assert len(parses) == 2


def test_a_read_stopped_early_is_not_kept(parses):
    with Spooled(THP64, detail=True) as rows:
        first = rows.read()
        next(first)
        first.close()
        assert len(list(rows.read())) > 20000
        assert len(parses) == 2
        list(rows.read())
        assert len(parses) == 2


def test_rows_that_cannot_be_kept_are_parsed_again(parses, monkeypatch):
    def no_room(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(trace.tempfile, "TemporaryFile", no_room)
    managed, _, pagesets = normal_zone(ZONEINFO)
    r = replay(THP64, make_policy("baseline"), "requests", nr_pages=managed, trace_clock=True,
               pcp_start=pagesets, other_zones=other_lowmem_zones(ZONEINFO))
    assert len(parses) == 4
    assert r["events"]["mm_page_pcpu_drain"] == 2451


def test_one_read_is_never_kept(parses):
    r = replay(THP64, make_policy("baseline"), "requests", nr_pages=1 << 22)
    assert len(parses) == 1 and r["events"]["mm_page_alloc"] == 6773


def test_rows_from_read_events_own_cache_are_kept_too():
    """A small trace read before comes from ``read_events``' cache: those rows are kept."""
    parsed = list(read_events(THP64, detail=True))
    with Spooled(THP64, detail=True) as rows:
        assert list(rows.read()) == parsed  # from the cache
        assert rows.blocks and list(rows.read()) == parsed  # from the kept file


def test_a_read_begun_while_the_first_keeps_rows_parses_alone(parses, monkeypatch):
    """Two first reads at once shared one file and two lists of its blocks (IndexError)."""
    monkeypatch.setattr(Spooled, "BLOCK", 10)
    parsed = list(read_events(THP64, detail=True))
    with Spooled(THP64, detail=True) as rows:
        first = rows.read()
        head = [next(first) for _ in range(50)]
        assert list(rows.read()) == parsed  # parsed on its own
        assert head + list(first) == parsed
        assert list(rows.read()) == parsed and len(parses) == 3  # kept by the first


def mixed_trace(tmp_path):
    """Lines the compiled reader takes, lines it leaves to Python (a failed allocation, a
    vmstat tick, an extfrag line, an odd spacing), malformed ones and a damaged end."""
    with gzip.open(THP64, "rb") as f:
        lines = f.read().splitlines(keepends=True)[:3000]
    odd = [b"    a.out-1 [000] .....    1.000000: mm_page_free: page=0x0 pfn=0x1 order=12\n",
           b" kworker/0:1-9 [000] .....  1.000001: workqueue_execute_start: work struct "
           b"000000001 function vmstat_update\n",
           b"    a.out-1 [001] .....    1.000002: mm_page_alloc: page=0000000000000000 pfn=0x0 "
           b"order=0 migratetype=1 gfp_flags=GFP_KERNEL\n",
           b"    a.out-1 [001] .....    1.000003:  mm_page_free:  page=0x0  pfn=0x7 order=0\n"]
    data = b"".join(lines[:1000] + odd + lines[1000:2000] + odd[::-1] + lines[2000:])
    path = tmp_path / "mixed.txt.gz"
    packed = gzip.compress(data)
    path.write_bytes(packed[:len(packed) - 200])
    return str(path)


@pytest.mark.parametrize("detail", [False, True])
@pytest.mark.parametrize("keep", [False, True])
def test_blocks_of_columns_are_the_rows(tmp_path, parses, monkeypatch, detail, keep):
    """``read_columns`` on a first read takes the compiled reader's arrays straight (no row
    as Python ints): the same rows and counts as ``read_events``, whichever read it is."""
    monkeypatch.setattr(Spooled, "BLOCK", 700)
    path = mixed_trace(tmp_path)
    counted = {}
    parsed = list(read_events(path, True, None, counted, detail=detail))
    assert counted["malformed"] == 2 and counted["truncated"] and len(parsed) > 2500
    with Spooled(path, lenient=True, detail=detail, keep=keep) as rows:
        for _ in range(2):
            counts = {}
            got = [row for block in rows.read_columns(counts)
                   for row in trace._rows_of(block)]
            assert got == parsed and counts == counted
            assert all(isinstance(v, (int, str)) for row in got[:50] for v in row)


def test_the_small_trace_cache_filled_by_a_read_of_columns_gives_the_rows(monkeypatch):
    """A read of columns fills ``read_events``' cache with rows, as a read of rows does."""
    trace._cache.clear()
    with Spooled(THP64, detail=True, keep=False) as rows:
        blocks = list(rows.read_columns())
    assert trace._cache
    kept = list(read_events(THP64, detail=True))  # from the cache
    trace._cache.clear()
    assert kept == list(read_events(THP64, detail=True))
    assert kept == [row for block in blocks for row in trace._rows_of(block)]


def test_the_compiled_readers_event_numbers_are_the_column_codes():
    from zeroing.trace_scan import NAMES
    assert NAMES == trace.EVENT_NAMES[:len(NAMES)]
