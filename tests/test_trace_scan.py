"""The compiled trace reader (``zeroing/trace_scan.py``) against the Python one it speeds up:
the same rows, counts and errors on every capture and on hostile lines; and the block reader
(``trace._blocks``) against reading line by line as TextIOWrapper does (universal newlines,
bad UTF-8, lines past MAX_LINE, a damaged compressed file)."""
import glob
import gzip
import io
import os
import re
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zeroing import trace, trace_scan
from zeroing.trace import DECOMPRESS_ERRORS, TraceError, read_events
from zeroing.trace_scan import python_only

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
TRACES = sorted(glob.glob(os.path.join(DATA, "trace_kmem_*.gz"))
                + glob.glob(os.path.join(DATA, "*.txt")))


def parsed(path, lenient=False, detail=False):
    """(rows, counts) of a fresh read, or the TraceError's message."""
    counts = {}
    try:
        rows = list(trace._parse(path, lenient, None, counts, None, detail))
    except TraceError as e:
        return str(e)
    return rows, counts


def same_both_ways(folder, lines, lenient, detail):
    """A file of ``lines`` reads the same compiled and in Python (rows, counts or error)."""
    path = str(folder / "t.txt")
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")
    fast = parsed(path, lenient, detail)
    with python_only():
        assert fast == parsed(path, lenient, detail)


@pytest.mark.parametrize("path", TRACES, ids=os.path.basename)
@pytest.mark.parametrize("detail", [False, True])
def test_every_capture_reads_the_same_compiled_and_in_python(path, detail):
    fast = parsed(path, detail=detail)
    with python_only():
        assert fast == parsed(path, detail=detail)
    if path.endswith("nothp128_sleep8.txt.gz") and not detail:  # the compiled reader took
        # every kmem line (<idle>'s among them)
        kind, _ = trace_scan.scan(gzip.open(path, "rb").read())
        assert np.count_nonzero(kind == trace_scan.FAST) == len(fast[0]) == 169804


def test_the_usual_lines_are_read_compiled():
    """Each spelling of a kmem line the kernel's tools print (tracefs, trace-cmd report,
    perf script) takes the compiled path; the rest (headers, other events, a failed
    allocation) the Python one."""
    lines = [
        "            bash-5697    [000] .....   343.635514: mm_page_alloc: page=00000000d1121e70 "
        "pfn=0x14183c order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO",
        "  kworker/u4:2-77   [001] d..1.   343.6: mm_page_pcpu_drain: page=0000000 pfn=0x200 "
        "order=9 migratetype=1",
        "bash-5697  [000]   343.635514: mm_page_free:          page=0xffffea0000 pfn=4096 order=2",
        " bash  5697 [000]   343.635514: kmem:mm_page_free_batched: page=0xffff pfn=0x3 order=0",
        "# tracer: nop",
        "cpus=2",
        "  <idle>-0     [001] d..2.   343.7: cpu_idle: state=1 cpu_id=1",
        "  a-1 [000] ..... 1.0: mm_page_alloc: page= (null) pfn=0 order=0 migratetype=1 "
        "gfp_flags=GFP_KERNEL",
    ]
    kind, out = trace_scan.scan(("\n".join(lines) + "\n").encode())
    assert kind.tolist() == [1, 1, 1, 0, 0, 0, 0, 0]  # perf script has no comm-pid: Python
    assert out[0, :7].tolist() == [0, 0x14183c, 0, 1, -1, 0, 343_635_514_000]
    assert out[2, :3].tolist() == [1, 4096, 2]


# ---- hostile lines: the compiled reader never differs ------------------------------------

BASES = [
    "            bash-5697    [000] .....   343.635514: mm_page_alloc: page=00000000d1121e70 "
    "pfn=0x14183c order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP",
    "            bash-5697    [001] d..1.   343.635520: mm_page_alloc_zone_locked: "
    "page=000000001 pfn=0x14b400 order=9 migratetype=1 percpu_refill=1",
    "  kworker/u4:2-77   [001] d..1.   343.700001: mm_page_pcpu_drain: page=0000000 pfn=0x200 "
    "order=0 migratetype=0",
    "bash-5697  [000]   343.635514: mm_page_free: page=0xffffea0000 pfn=4096 order=2",
    "            bash-5697    [000] .....   343.635600: mm_page_free_batched: page=000001 "
    "pfn=0x14183c order=0",
    "     kworker/1:1-40    [001] .....   344.000001: workqueue_execute_start: work struct "
    "00000000abcd: function vmstat_update",
]
NOISE = st.sampled_from(list(" \t\x1c:=[]()-.09x_#k\u00e9\rA<>") + [
    "0x", "order=", "pfn=", "mm_page_free: ", "  ", "(null)", "kmem:", "<abc>", "0000000"])


@st.composite
def hostile_line(draw):
    line = draw(st.sampled_from(BASES))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(line)))
        if draw(st.booleans()):
            line = line[:at] + draw(NOISE) + line[at:]
        else:
            line = line[:at] + line[at + draw(st.integers(1, 6)):]
    return line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(hostile_line(), min_size=1, max_size=6), lenient=st.booleans(),
       detail=st.booleans())
def test_hostile_lines_read_the_same_compiled_and_in_python(tmp_path_factory, lines, lenient,
                                                           detail):
    same_both_ways(tmp_path_factory.mktemp("t"), lines, lenient, detail)


# ---- the block reader against TextIOWrapper's lines ---------------------------------------

def readline_lines(f, lenient, counts):
    """(lineno, line) as the reader gave them before blocks (TextIOWrapper.readline with
    a limit of MAX_LINE + 1; a longer line's rest skipped)."""
    lineno = 0
    while True:
        try:
            line = f.text.readline(trace.MAX_LINE + 1)
            if not line:
                return
            if len(line) > trace.MAX_LINE and not line.endswith("\n"):
                rest = line
                while rest and not rest.endswith("\n"):
                    rest = f.text.readline(trace.MAX_LINE)
        except DECOMPRESS_ERRORS as e:
            message = f.damage(e, lineno)
            if not lenient:
                raise TraceError(message) from None
            counts["truncated"] = message
            return
        lineno += 1
        yield lineno, line


def block_lines(f, lenient, counts):
    """``_blocks``' output as (lineno, line)."""
    for first, text, whole in trace._blocks(f, lenient, counts, None):
        if not whole:
            yield first, text
            continue
        for k, line in enumerate(re.findall(r"[^\n]*\n|[^\n]+$", text)):
            yield first + k, line


def both(path, lenient=True):
    out = []
    for reader in (readline_lines, block_lines):
        counts = {}
        with trace.open_trace(path) as f:
            try:
                out.append((list(reader(f, lenient, counts)), counts))
            except TraceError as e:
                out.append(str(e))
    return out


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(st.one_of(st.text(alphabet="ab \t", max_size=90),
                                 st.sampled_from(["\n", "\r", "\r\n", "\n\r", "\xff", "\xe9",
                                                  "\x1c"])), max_size=40))
def test_blocks_give_textiowrapper_s_lines(tmp_path_factory, pieces):
    """Universal newlines, bytes that are no UTF-8, and (MAX_LINE made 64, the blocks and
    the pieces read small) lines past MAX_LINE and lines across blocks."""
    path = tmp_path_factory.mktemp("b") / "t.txt"
    path.write_bytes("".join(pieces).encode("latin-1"))
    with mock.patch.object(trace, "MAX_LINE", 64), mock.patch.object(trace, "_CHUNK", 16), \
            mock.patch.object(trace, "BLOCK", 100):
        reference, blocks = both(str(path))
    assert blocks == reference


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.97])
@pytest.mark.parametrize("lenient", [False, True])
def test_a_damaged_gzip_gives_the_same_lines_and_message(tmp_path, cut, lenient):
    """A truncated .gz: the lines decoded before the damage, then the same message (or, with
    --lenient, the same record of it), as reading line by line gave."""
    text = "".join(f"line {k} " + "x" * (k % 97) + "\n" for k in range(20000)).encode()
    whole = gzip.compress(text)
    path = tmp_path / "t.txt.gz"
    path.write_bytes(whole[:int(len(whole) * cut)])
    reference, blocks = both(str(path), lenient)
    assert blocks == reference
    if lenient:
        assert "ends early" in blocks[1]["truncated"] and len(blocks[0]) > 1000


def test_a_long_line_and_a_last_line_without_newline_read_as_before(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(BASES[3] + "\n" + "y" * (trace.MAX_LINE + 5) + "\n" + BASES[3],
                    newline="")
    reference, blocks = both(str(path))
    assert blocks == reference and [n for n, _ in blocks[0]] == [1, 2, 3]
    counts = {}
    rows = list(read_events(str(path), lenient=True, counts=counts))
    assert [r[0] for r in rows] == [1, 3] and counts["malformed"] == 1
    assert "line longer than" in counts["malformed_examples"][0]


def test_io_incremental_newline_decoder_is_what_textiowrapper_uses():
    """The block reader decodes as TextIOWrapper(encoding="utf-8", errors="replace") does."""
    raw = b"a\r\nb\rc\n\xff\xfe d\r"
    text = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors="replace").read()
    path_text = "".join(line for _, line in block_lines(FakeFile(raw), False, {}))
    assert path_text == text


class FakeFile:
    """A TraceFile over bytes (no compression)."""

    def __init__(self, raw):
        self.stream = io.BufferedReader(io.BytesIO(raw))
        self.offset, self.size = 0, len(raw)


A = BASES[0]
TRICKY = [
    A.replace("bash-5697", "ba(null)sh-5697"),
    A.replace("            bash-5697", "  <ffffffff8100>-5697"),
    A.replace("            bash-5697", "  <idle>-0"),
    A.replace("            bash-5697", "CPU 0/KVM-1234"),
    A.replace("            bash-5697", "CPU0/KVM-1234"),
    A.replace("            bash-5697", "   deadbeef-1"),
    A.replace("            bash-5697", "   deadbeef 1-1"),
    A.replace("[000]", "[999999]"), A.replace("[000]", "[4096]"), A.replace("[000]", "[]"),
    A.replace("343.635514", "1234567890123.5"), A.replace("343.635514", "999999999.5"),
    A.replace("343.635514", "343.1234567891234"), A.replace("343.635514", "343."),
    A.replace(".....", "..:.."), A.replace(".....", "..._."), A.replace(".....", "5.5"),
    A.replace(".....", ""), A.replace("mm_page_alloc:", "foo:mm_page_alloc:"),
    A.replace("mm_page_alloc:", "kmem:mm_page_alloc:"),
    A.replace("mm_page_alloc: ", "mm_page_alloc:"),
    A.replace("pfn=0x14183c", "pfn=0X14183c"), A.replace("pfn=0x14183c", "pfn=+5"),
    A.replace("pfn=0x14183c", "pfn=-0"), A.replace("pfn=0x14183c", "pfn=0x1418300000000000001"),
    A.replace("order=0", "order=010"), A.replace("order=0", "order=0x1"),
    A.replace("order=0", "order=0 order=0"), A.replace("order=0", "order=0 foo=1"),
    A.replace("order=0", "order=0 x-y=1"), A.replace("order=0", "order=11"),
    A.replace("order=0", "order=1"), A.replace(" order=0", ""),
    A.replace("gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP", "gfp_flags="),
    A.replace("GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP", "none"),
    A.replace("GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP", "0x10"),
    A.replace("GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP", "GFP_BOGUS"),
    A.replace("GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP", "__GFP_MOVABLE|__GFP_RECLAIMABLE"),
    A.replace(" gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP", ""),
    A.replace("migratetype=1", "migratetype=6"), A.replace("migratetype=1", "migratetype=-1"),
    A.replace("migratetype=1", "migratetype=0"), A.replace("page=00000000d1121e70", "page="),
    A.replace("page=00000000d1121e70", "page=(null)"),
    A.replace("page=00000000d1121e70 pfn=0x14183c", "page=0000000000000000 pfn=0x0"),
    A.replace("page=00000000d1121e70 pfn=0x14183c", "page=00000000d1121e70 pfn=0x0"),
    A.replace("page=00000000d1121e70 pfn=0x14183c", "page=(nil) pfn=0"),
    A + " percpu_refill=5", A + "\x1c", A + " \x1c ",
    BASES[1].replace("percpu_refill=1", "percpu_refill=2"),
    BASES[1].replace("order=9", "order=5"), BASES[1].replace("migratetype=1", "migratetype=3"),
    BASES[2].replace("order=0", "order=5"), BASES[4].replace("order=0", "order=1"),
    BASES[3].replace("pfn=4096", "pfn=4097"),
]


#: A hostile pass (session 17), and what each line reads as (a pfn, None for another event's
#: line, or words of the error): other events naming one, comms that look like call chains
#: or trace-cmd headers, pfns past 2^40, numbers too long for 64 bits.
HOSTILE = [
    (A.replace("mm_page_alloc:", "tracing_mark_write: mm_page_alloc:"), None),
    (A.replace("mm_page_alloc:", "bprint: foo: mm_page_alloc:"), None),
    (A.replace("            bash-5697    [000] .....", "        deadbeef  5697 [000]"), 0x14183c),
    (A.replace("            bash-5697    [000] .....", "        123456  5697 [000]"), 0x14183c),
    (A.replace("            bash-5697", "CPU 0/KVM-5698"), 0x14183c),
    (A.replace("            bash-5697", "cpus=a-1"), 0x14183c),
    (A.replace("            bash-5697", "  <abc>-1236"), 0x14183c),
    (A.replace("            bash-5697", "  (null)-1236"), 0x14183c),
    (A.replace("pfn=0x14183c", "pfn=0x10000000000"), "2^40"),
    (A.replace("pfn=0x14183c", "pfn=0xfffffffff8"), 0xfffffffff8),
    (A.replace("pfn=0x14183c", "pfn=0x7fffffffffffffff"), "2^40"),
    (A.replace("pfn=0x14183c", "pfn=" + "1" * 5000), "characters"),
    (A.replace("pfn=0x14183c", "pfn=0x" + "1" * 99), "characters"),
]
TRICKY += [line for line, _ in HOSTILE]
TRICKY += [A.replace("343.635514", "0000000000000343.635514"), A.replace("[000]", "[0001]"),
           A.replace("[000]", "[" + "9" * 5000 + "]")]


@pytest.mark.parametrize("line", TRICKY)
@pytest.mark.parametrize("lenient", [False, True])
@pytest.mark.parametrize("detail", [False, True])
def test_tricky_lines_read_the_same_compiled_and_in_python(tmp_path, line, lenient, detail):
    same_both_ways(tmp_path, [BASES[3], line, BASES[2]], lenient, detail)


@pytest.mark.parametrize("line,pfn", HOSTILE)
def test_what_lines_that_look_like_others_read_as(tmp_path, line, pfn):
    """Text of another event that names a kmem event is that event's (tracing_mark_write,
    bprint); a comm of hex digits, or one that starts like a trace-cmd header, is a comm;
    a pfn is below 2^40 (52-bit physical addresses); a number has at most 20 characters
    (Python's int() of a long decimal refused with its own advice)."""
    path = tmp_path / "t.txt"
    path.write_text(line + "\n")
    if isinstance(pfn, str):
        with pytest.raises(TraceError, match=rf"t.txt:1: .*{re.escape(pfn)}"):
            list(read_events(str(path)))
        return
    counts = {}
    rows = list(read_events(str(path), counts=counts))
    assert [row[2] for row in rows] == ([] if pfn is None else [pfn])
    if pfn is None:  # counted as the event it is
        assert set(counts["events"]) == {"tracing_mark_write" if "mark" in line else "bprint"}
