"""The compiled trace converter (zeroing/convert.py) against the plain-Python one it replaced
(tests/reference_convert.py): the same events, chunk by chunk, the same trace lines, the same
figures and anomalies (in the order first seen), on the captures and on hostile streams. And
the same for the per-cpu lists' witness (zeroing/pcp_start.py, tests/reference_pcp_start.py)."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.flags import GFP_BITS, GFP_NAMES, __GFP_ZERO
from reference_convert import TraceConverter as Reference
from reference_pcp_start import ReferenceLists
from zeroing.events import EV_FREE_PFN
from zeroing.pcp_start import TraceLists
from zeroing.replay import TraceConverter
from zeroing.trace import EVENT_NAMES, Spooled, TraceError, column_blocks, read_events

DATA = os.path.join(os.path.dirname(__file__), "data")


def settled(ev_pfn_of):
    """The model's block of each row: an arbitrary, repeatable stand-in for the engine."""
    return lambda chunk: (np.arange(len(chunk), dtype=np.int64) * 3 + ev_pfn_of) % 4099


def run(conv, source, size, model):
    """Every chunk, its trace lines, settled as ``model`` places them; then the figures."""
    out = []
    for chunk in conv.chunks(source, size):
        out.append((chunk.copy(), np.asarray(conv.chunk_lines).copy()))
        conv.settle(model(chunk))
    return out


def assert_same(ref, new, ref_out, new_out):
    assert len(ref_out) == len(new_out)
    for (a, al), (b, bl) in zip(ref_out, new_out):
        assert a.dtype == b.dtype and (a == b).all()
        assert (al == bl).all()
    ri, ni = ref.info("t"), new.info("t")
    assert ri == ni
    assert list(ri["anomalies"]) == list(ni["anomalies"])  # first seen, first named


def test_the_captures_convert_as_the_python_converter_did():
    for name, mode, clock, size in [("trace_kmem_6.18_nothp128.txt.gz", "exact", True, 997),
                                    ("trace_kmem_6.18_nothp128.txt.gz", "requests", False, 4096),
                                    ("trace_kmem_6.18_thp64.txt.gz", "exact", False, 1 << 62),
                                    ("trace_kmem_6.18_thp64_sleep8.txt.gz", "requests", True,
                                     3001)]:
        path = os.path.join(DATA, name)
        ref, new = Reference(mode, trace_clock=clock), TraceConverter(mode, trace_clock=clock)
        model = settled(5)
        ref_out = run(ref, read_events(path, counts=ref.counts, detail=clock), size, model)
        new_out = run(new, Spooled(path, detail=clock, keep=False).read_columns(new.counts),
                      size, model)
        assert_same(ref, new, ref_out, new_out)
        assert sum(len(c) for c, _ in new_out) > 10000
        if len(new_out) > 1:  # frees of allocations of earlier chunks, by the model's block
            assert any((c["op"] == EV_FREE_PFN).any() for c, _ in new_out)


GFPS = [0, GFP_NAMES["GFP_KERNEL"], GFP_NAMES["GFP_HIGHUSER_MOVABLE"] | __GFP_ZERO,
        GFP_NAMES["GFP_TRANSHUGE_LIGHT"], GFP_NAMES["GFP_HIGHUSER_MOVABLE"],
        GFP_NAMES["GFP_KERNEL"] | GFP_BITS["__GFP_RECLAIMABLE"]]  # every migratetype
ROW = st.tuples(st.sampled_from(EVENT_NAMES), st.integers(-1, 5), st.integers(0, 10),
                st.sampled_from(GFPS), st.integers(0, 3), st.integers(-1, 40))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, max_size=120), st.sampled_from(["exact", "requests"]), st.booleans(),
       st.integers(1, 7), st.integers(1, 4), st.integers(1, 3), st.integers(1, 5))
def test_hostile_streams_convert_as_the_python_converter_did(rows, mode, clock, size, frees,
                                                            takes, block):
    """Pfns that collide, frees before allocations, batched repeats, failed allocations, time
    going back or missing, chunks of a row or two, recency lists that overflow, blocks of
    columns cut anywhere."""
    rows = [(line + 1, name, pfn if name == "mm_page_alloc" else max(pfn, 0), order, gfp,
             cpu, ts, -1, -1) for line, (name, pfn, order, gfp, cpu, ts) in enumerate(rows)]
    ref = Reference(mode, trace_clock=clock)
    ref.repeats.RECENT_FREES, ref.takes.RECENT = frees, takes
    new = TraceConverter(mode, trace_clock=clock, recent_frees=frees, recent_takes=takes)
    model = settled(len(rows))
    assert_same(ref, new, run(ref, iter(rows), size, model),
                run(new, column_blocks(rows, block), size, model))


def convert_rows(rows, mode="requests", **caps):
    """The compiled converter's figures after ``rows`` of (name, pfn, order), one chunk,
    checked against the reference's."""
    full = [(k + 1, name, pfn, order, 0, 0, k, -1, -1) for k, (name, pfn, order) in
            enumerate(rows)]
    ref = Reference(mode)
    ref.repeats.RECENT_FREES = caps.get("recent_frees", ref.repeats.RECENT_FREES)
    ref.takes.RECENT = caps.get("recent_takes", ref.takes.RECENT)
    new = TraceConverter(mode, **caps)
    assert_same(ref, new, run(ref, iter(full), 1 << 20, settled(0)),
                run(new, column_blocks(full), 1 << 20, settled(0)))
    return new.info("t")


def test_a_steal_is_an_extfrag_line_no_zone_locked_line_of_its_pfn_just_counted():
    claim = [("mm_page_alloc_zone_locked", 512, 9), ("mm_page_alloc_extfrag", 512, 9)]
    assert convert_rows(claim)["extfrag_pages"] == 0
    # Any other line of the pfn between them ends the claim: the extfrag line took pages.
    ended = claim[:1] + [("mm_page_free", 512, 0)] + claim[1:]
    assert convert_rows(ended)["extfrag_pages"] == 512


def test_freeing_a_pfn_again_keeps_its_place_in_the_recent_frees():
    """OrderedDict order: a second mm_page_free of A keeps A the oldest, so C evicts A, and
    the batched free of A is a free of its own (not the repeat of one)."""
    frees = [("mm_page_free", pfn, 0) for pfn in (1, 2, 1, 3)]
    info = convert_rows(frees + [("mm_page_free_batched", 1, 0)], recent_frees=2)
    assert info["anomalies"] == {"free_before_trace": 5}
    info = convert_rows(frees + [("mm_page_free_batched", 2, 0)], recent_frees=2)
    assert info["anomalies"] == {"free_before_trace": 4, "free_batched_repeat": 1}


def pindex(order, mt):
    """A list per (order, migratetype), THPs sharing two as the kernel's do."""
    return 3 * order + mt if order < 9 else 12 + (mt == 1)


def assert_same_lists(rows, path="t"):
    try:
        ref = ReferenceLists.from_trace(lambda: iter(rows), pindex, path)
    except TraceError as e:
        with pytest.raises(TraceError) as got:
            TraceLists.from_trace(lambda: iter(rows), pindex, path)
        assert str(got.value) == str(e)
        return None
    new = TraceLists.from_trace(lambda: iter(rows), pindex, path)
    assert new.lists == ref.lists and list(new.lists) == list(ref.lists)
    assert [list(v) for v in new.lists.values()] == [list(v) for v in ref.lists.values()]
    assert (new.unknown_frees, new.moves) == (ref.unknown_frees, ref.moves)
    return new


def test_the_captures_witness_the_lists_as_the_python_loops_did():
    for name in ("trace_kmem_6.18_nothp128.txt.gz", "trace_kmem_6.18_thp64_sleep8.txt.gz"):
        rows = list(read_events(os.path.join(DATA, name), detail=True))
        got = assert_same_lists(rows)
        assert got.moves > 1000 and sum(len(v) for v in got.lists.values()) >= 4


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(EVENT_NAMES), st.integers(-1, 1100),
                          st.sampled_from([0, 1, 3, 4, 9, 10]), st.sampled_from(GFPS),
                          st.integers(0, 2), st.integers(0, 5), st.integers(-1, 1)), max_size=80),
       st.integers(-1, 200))
def test_hostile_streams_witness_the_lists_as_the_python_loops_did(rows, unmarked):
    """Pfns within a few pageblocks, every migratetype (HighAtomic and above), refills with
    and without the flag, frees of pages no line places; a line without its migratetype
    (``unmarked``: a refill or drain gives the same error)."""
    assert_same_lists([(k + 1, name, pfn if name == "mm_page_alloc" else max(pfn, 0), order,
                        gfp if name == "mm_page_alloc" else 0, cpu, k,
                        -1 if k == unmarked else mt, refill)
                       for k, (name, pfn, order, gfp, cpu, mt, refill) in enumerate(rows)])
