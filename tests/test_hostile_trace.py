"""Hostile traces and format files: a long line or a large or deep format file is read in
linear time or refused in one line naming the file (and line); a field the kernel never
prints that way is refused (or, with --lenient, counted as malformed), never read silently."""
import gzip
import os
import subprocess
import sys

import pytest

from zeroing.cli import main
from zeroing.trace import MAX_LINE, TraceError, load_format_table, read_events

from test_hostile import LINE, TRACE_GZ, one_line_error, write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAD = "  a-1 [000] ....  5.1: "


def bounded(code, timeout=30):
    """Run ``code`` in a fresh interpreter, killed after ``timeout`` s (a hang fails the test
    rather than holding the suite)."""
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout} s")


# ---- long lines ------------------------------------------------------------------------

def test_a_long_word_in_a_line_is_parsed_in_linear_time(tmp_path):
    """A 300,000-character word with no ``=``: the field pattern tried it again from each
    character (quadratic, minutes); now the line reads as without it, in well under a
    second."""
    plain = write(tmp_path, LINE, "plain.txt")
    path = write(tmp_path, LINE.replace(" gfp_flags", " " + "x" * 300_000 + " gfp_flags"),
                 "long.txt")
    r = bounded(f"""
import time
from zeroing.trace import read_events
t = time.monotonic()
rows = list(read_events({path!r}))
print(repr(rows), time.monotonic() - t)
""")
    assert r.returncode == 0, r.stderr
    rows, seconds = r.stdout.rsplit(" ", 1)
    assert rows == repr(list(read_events(plain)))
    assert float(seconds) < 2



def test_a_field_given_twice_among_many_is_found_in_linear_time(tmp_path):
    """120,000 fields, the first given again at the end: the search for the repeated one
    compared each field with all before it (quadratic: 17 s for 20,000 fields)."""
    fields = " ".join(f"k{i}=" for i in range(120_000))
    path = write(tmp_path, LINE.replace(" gfp_flags", f" {fields} k0= gfp_flags"), "twice.txt")
    r = bounded(f"""
import time
from zeroing.trace import TraceError, read_events
t = time.monotonic()
try:
    list(read_events({path!r}))
except TraceError as e:
    print(str(e).split(": ")[1], time.monotonic() - t)
""")
    assert r.returncode == 0, r.stderr
    why, seconds = r.stdout.rsplit(" ", 1)
    assert why == "field k0 given twice"
    assert float(seconds) < 2

def test_an_overlong_line_is_refused_naming_the_line(capsys, tmp_path):
    """A line over MAX_LINE characters is no trace line: refused with file:line, or with
    --lenient counted as malformed and the lines after it read."""
    second = LINE.replace("0x14183c", "0x100")
    path = write(tmp_path, LINE.rstrip("\n") + " x" * MAX_LINE + "\n" + second, "huge.txt")
    one_line_error(capsys, main(["replay", path, "--pages", "4194304"]), f"{path}:1:",
                   f"line longer than {MAX_LINE} characters")
    counts = {}
    rows = list(read_events(path, lenient=True, counts=counts))
    assert [(r[0], r[2]) for r in rows] == [(2, 0x100)]
    assert counts["malformed"] == 1 and "huge.txt:1: line longer" in counts["malformed_examples"][0]


# ---- format files ----------------------------------------------------------------------

def _format(tmp_path, expr, name="GFP_X"):
    return write(tmp_path, 'print fmt: "%s", __print_flags(REC->gfp_flags, "|", '
                           f'{{( unsigned long)({expr}), "{name}"}})', "format")


@pytest.mark.parametrize("expr,why", [
    ("~" * 3000 + "1", "nested too deeply"),  # was a RecursionError traceback
    ("1" + "<<1" * 200_000, "too long"),  # was a RecursionError traceback
    ("~" * 100_000 + "1", "too long"),  # was "out of memory: give a smaller --pages"
], ids=["tilde3000", "shift200000", "tilde100000"])
def test_a_deep_or_long_flag_expression_is_one_line(capsys, tmp_path, expr, why):
    fmt = _format(tmp_path, expr)
    one_line_error(capsys, main(["replay", TRACE_GZ, "--format", fmt]), fmt, "GFP_X", why)


def test_a_large_format_file_is_read_in_linear_time_or_refused(tmp_path):
    """``{( unsigned long)`` over and over: the entry pattern's ``.*?`` ran to the end of the
    line from each one (quadratic: 60,000 of them, 1 MB, took minutes); a file over
    MAX_FORMAT_BYTES (200,000 of them, 3.6 MB) is refused unread."""
    under = write(tmp_path, "{( unsigned long)" * 60_000, "under.format")
    over = write(tmp_path, "{( unsigned long)" * 200_000, "over.format")
    r = bounded(f"""
import time
from zeroing.cli import main
from zeroing.trace import TraceError, load_format_table
t = time.monotonic()
try:
    load_format_table({under!r})
except TraceError as e:
    print(e)
print(time.monotonic() - t)
raise SystemExit(main(["replay", {TRACE_GZ!r}, "--format", {over!r}]))
""")
    lines = r.stdout.splitlines()
    assert lines[0] == f"{under}: no __print_flags table found" and float(lines[1]) < 2
    assert r.returncode == 2, r.stderr
    err = [line for line in r.stderr.splitlines() if "compiling" not in line]
    assert len(err) == 1 and err[0].startswith(f"zeroing replay: error: {over}: "), r.stderr
    assert "larger than" in err[0]


def test_a_flag_named_twice_in_a_format_file_is_refused(capsys, tmp_path):
    """A kernel's __print_flags list names each flag once (6.18's here; every show_gfp_flags
    since 2.6): a second entry for a name would make its value depend on which is kept."""
    real = os.path.join(ROOT, "tests", "data", "mm_page_alloc-6.18.format")
    assert load_format_table(real)  # the real one still loads
    with open(real) as f:
        text = f.read()
    fmt = write(tmp_path, text.replace('{ 0, ((void *)0) }',
                                       '{( unsigned long)(1), "__GFP_ZERO"}, { 0, ((void *)0) }'),
                "format")
    with pytest.raises(TraceError, match="flag __GFP_ZERO is listed twice"):
        load_format_table(fmt)
    one_line_error(capsys, main(["replay", TRACE_GZ, "--format", fmt]), fmt, "__GFP_ZERO",
                   "twice")


#: A format file of a kernel before the GFP bit enum (6.9): hex constants, suffixes, __force.
OLD_FORMAT = ('print fmt: "page=%p pfn=0x%lx order=%d migratetype=%d gfp_flags=%s", '
              '(REC->gfp_flags) ? __print_flags(REC->gfp_flags, "|", '
              '{(unsigned long)((((( gfp_t)(0x400u|0x800u)) | (( gfp_t)0x40u) | (( gfp_t)0x80u)) '
              '| (( gfp_t)0x100000u)) | (( gfp_t)0x02u) | (( gfp_t)0x08u)), '
              '"GFP_HIGHUSER_MOVABLE"}, {(unsigned long)(( gfp_t)0x100u), "__GFP_ZERO"}, '
              '{(unsigned long)((__force gfp_t)0x01UL), "__GFP_DMA"}) : "none"\n')


def test_a_format_file_of_an_older_kernel_reads_its_hex_constants(capsys, tmp_path):
    assert load_format_table(write(tmp_path, OLD_FORMAT, "format")) == {
        "GFP_HIGHUSER_MOVABLE": 0x100cca, "__GFP_ZERO": 0x100, "__GFP_DMA": 0x1}
    zero = write(tmp_path, OLD_FORMAT.replace("0x100u", "0x0u"), "zero")
    with pytest.raises(TraceError, match="flag __GFP_ZERO has the value 0"):
        load_format_table(zero)  # was read, and every __GFP_ZERO in the trace meant nothing
    one_line_error(capsys, main(["replay", TRACE_GZ, "--format", zero]), zero, "value 0")


def test_a_compressed_trace_named_otherwise_is_read_by_its_first_bytes(capsys, tmp_path):
    """A gzip file named .txt was read as text: 'line 1: not a trace event line: <binary>'."""
    import shutil
    plain = str(tmp_path / "trace.txt")
    shutil.copy(TRACE_GZ, plain)
    assert list(read_events(plain)) == list(read_events(TRACE_GZ))
    zstd = write(tmp_path, b"\x28\xb5\x2f\xfd" + bytes(64), "trace.zst", mode="wb")
    one_line_error(capsys, main(["replay", zstd]), zstd, "zstd-compressed: not read")


@pytest.mark.parametrize("line,fragment", [
    ("CPU:1 [LOST 123 EVENTS]\n", "the tracer lost 123 events here"),
    ("bash-5697 [000] ..... 12345: mm_page_free: page=0x0 pfn=0x10 order=0\n",
     "timestamp 12345 is not seconds.microseconds"),  # trace_clock counter: "no [cpu]" said
])
def test_lines_a_tracer_prints_are_named_for_what_they_are(capsys, tmp_path, line, fragment):
    path = write(tmp_path, line, "t.txt")
    one_line_error(capsys, main(["replay", path, "--trace-clock", "--replay-mode", "requests"]),
                   f"{path}:1: {fragment}")


def test_a_gzip_damaged_inside_says_its_check_fails_only_at_its_end(capsys, tmp_path):
    """The CRC is checked at the end of a member: the warning named the end as the place of
    the damage and said the events before it were replayed, garbled ones among them."""
    with gzip.open(TRACE_GZ, "rb") as f:
        packed = bytearray(gzip.compress(f.read()))
    packed[len(packed) // 2:len(packed) // 2 + 4] = b"\x55" * 4
    path = write(tmp_path, bytes(packed), "damaged.txt.gz", mode="wb")
    assert main(["replay", path, "--replay-mode", "requests", "--lenient"]) == 0
    err = capsys.readouterr().err
    assert "gzip checks a member's data only at its end: the damage may lie anywhere" in err


def test_an_empty_trace_with_a_zoneinfo_says_there_is_nothing_to_replay(capsys, tmp_path):
    """It said the trace could not split the pagesets (record refills too, or give
    --pcp-start empty), which only led to this error."""
    path = write(tmp_path, "# tracer: nop\n", "t.txt")
    zoneinfo = os.path.join(ROOT, "tests", "data", "before_zoneinfo-6.18")
    one_line_error(capsys, main(["replay", path, "--replay-mode", "requests", "--trace-clock",
                                 "--zoneinfo", zoneinfo]), "no kmem page events",
                   "nothing to replay")


# ---- fields the kernel never prints so -------------------------------------------------

@pytest.mark.parametrize("bad,fragment", [
    (LINE.replace("gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO", "gfp_flags="),
     "gfp_flags is empty"),  # was read as no flags
    (HEAD + "mm_page_free_batched: page=0 pfn=0x20 order=5\n",
     "order 5 on mm_page_free_batched"),  # the kernel prints order=0 literally
    (HEAD + "mm_page_alloc_zone_locked: page=0 pfn=0x20 order=0 migratetype=1 percpu_refill=7\n",
     "percpu_refill 7 out of range (0-1"),
    (HEAD + "mm_page_alloc_zone_locked: page=0 pfn=0x20 order=0 migratetype=1 percpu_refill=x\n",
     "percpu_refill=x is not a number"),
    (HEAD + "mm_page_alloc: page=0 pfn=0x14183c order=3 migratetype=1 "
            "gfp_flags=GFP_HIGHUSER_MOVABLE\n",
     "pfn 0x14183c is not aligned to its order 3"),  # exact replay: a bad event, no line
    (LINE.replace("gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO",
                  "gfp_flags=__GFP_MOVABLE|__GFP_RECLAIMABLE"),
     "both __GFP_MOVABLE and __GFP_RECLAIMABLE"),  # the engine refused it: no line named
], ids=["gfp_flags-empty", "free_batched-order5", "percpu_refill-7", "percpu_refill-x",
        "pfn-misaligned", "gfp-two-migratetypes"])
def test_a_field_the_kernel_never_prints_so_is_refused(capsys, tmp_path, bad, fragment):
    path = write(tmp_path, LINE + bad, "t.txt")
    one_line_error(capsys, main(["replay", path, "--pages", "4194304"]), f"{path}:2:", fragment)
    counts = {}
    assert len(list(read_events(path, lenient=True, counts=counts))) == 1
    assert counts["malformed"] == 1 and fragment in counts["malformed_examples"][0]


def test_the_values_the_kernel_prints_are_still_read(tmp_path):
    path = write(tmp_path, "".join([
        LINE.replace("GFP_HIGHUSER_MOVABLE|__GFP_ZERO", "none"),
        HEAD + "mm_page_free_batched: page=0 pfn=0x20 order=0\n",
        HEAD + "mm_page_alloc_zone_locked: page=0 pfn=0x20 order=0 migratetype=1 percpu_refill=0\n",
        HEAD + "mm_page_alloc_zone_locked: page=0 pfn=0x40 order=3 migratetype=1 percpu_refill=1\n",
    ]), "t.txt")
    assert [r[1:] for r in read_events(path)] == [
        ("mm_page_alloc", 0x14183c, 0, 0), ("mm_page_free_batched", 0x20, 0, 0),
        ("mm_page_alloc_zone_locked", 0x20, 0, 0), ("mm_page_alloc_zone_locked", 0x40, 3, 0)]


def test_an_event_the_engine_refuses_names_its_trace_line(capsys, tmp_path, monkeypatch):
    # Whatever the engine refuses in a replay is reported at the trace line it came from:
    # here its last event, so the line is the excerpt's last alloc or free.
    import gzip
    import re

    from zeroing import replay as replay_mod
    from zeroing.policy import make_policy
    from zeroing.run import BadEventError
    text = gzip.open(TRACE_GZ, "rt").read().splitlines(keepends=True)[:400]
    path = write(tmp_path, "".join(text))

    def refuse(self, events, start=0, ev_pfn=None):
        raise BadEventError(f"event {len(events) - 1}", len(events) - 1)
    monkeypatch.setattr(replay_mod.Simulation, "feed", refuse)
    one_line_error(capsys, main(["replay", path]), "the model cannot replay this line's event")
    with pytest.raises(TraceError) as e:
        replay_mod.replay(path, make_policy("baseline"))
    last = max(n for n, t in enumerate(text, 1) if re.search(r"mm_page_(alloc|free):", t))
    assert f"{path}:{last}: the model cannot replay" in str(e.value)


def test_what_lenient_skipped_is_printed_with_its_control_characters_escaped(capsys, tmp_path):
    """A skipped line's text (a terminal escape in it) and a path with a newline: each
    ``skipped`` line is one printable line, as errors are."""
    bad = LINE.replace("order=0", "order=0\x1b[2J\x1b]0;pwned\x07")
    path = write(tmp_path, LINE + bad, "a\nb.txt")
    assert main(["replay", path, "--lenient", "--pages", str(1 << 21)]) == 0
    err = capsys.readouterr().err.splitlines()
    skipped = [line for line in err if line.startswith("skipped ")]
    assert len(skipped) == 1 and skipped[0].isprintable() and "\\x1b[2J" in skipped[0]


@pytest.mark.parametrize("old,new,expect", [
    ("343.635514", "0000000000000343.635514", 343_635_514_000),  # leading zeros: the same time
    ("[000]", "[0001]", 343_635_514_000),
    ("[000]", "[" + "9" * 5000 + "]", "cpu 999999999999999999999999 out of range"),
])
def test_a_cpu_or_timestamp_with_many_digits(tmp_path, old, new, expect):
    """A timestamp with leading zeros was refused as 'out of range'; a CPU of 5000 digits
    ended in Python's own refusal of int() (its advice on set_int_max_str_digits)."""
    path = write(tmp_path, LINE.replace(old, new), "t.txt")
    if isinstance(expect, str):
        with pytest.raises(TraceError, match=f"t.txt:1: {expect}"):
            list(read_events(path, detail=True))
    else:
        assert [row[6] for row in read_events(path, detail=True)] == [expect]
