"""Hostile snapshot files (/proc/buddyinfo, /proc/pagetypeinfo, /proc/zoneinfo): a number of
thousands of digits, or one no machine could have, or a field given twice, is one line naming
the file, the line and the reason (exit 2), never a traceback and never a silent default.
Each case is a real file of tests/data with one line changed."""
import glob
import os
import re
import subprocess
import sys

import pytest

from allocator import BuddyAllocator
from zeroing.initial_state import (StateError, apply_initial_state, read_buddyinfo,
                                   read_pagetypeinfo, read_snapshot)
from zeroing.validate import UserError
from zeroing.zoneinfo import limits_differ, normal_zone, other_lowmem_zones

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
TRACE_GZ = os.path.join(DATA, "trace_kmem_6.18.txt.gz")
HUGE = "9" * 5000  # over Python's 4300-digit limit of int(str)
# Line numbers in the files of tests/data.
JC_NORMAL_BLOCKS = 24  # jc_pagetypeinfo: "Node 0, zone   Normal   120   345   47   0   0"
JC_NORMAL_UNMOVABLE = 15  # jc_pagetypeinfo: "Node 0, zone Normal, type Unmovable 0 22 7 9 ..."
BUDDY_NORMAL = 3  # before_buddyinfo-6.18 / node_exporter_buddyinfo: the Normal row
ZI = "before_zoneinfo-6.18"  # Normal: managed 458752, 2 CPUs


def edited(tmp_path, name, lineno, old, new):
    """tests/data/NAME with the first match of regex ``old`` on line ``lineno`` replaced."""
    lines = open(os.path.join(DATA, name)).read().split("\n")
    assert re.search(old, lines[lineno - 1]), lines[lineno - 1]
    lines[lineno - 1] = re.sub(old, lambda _: new, lines[lineno - 1], count=1)
    path = tmp_path / name
    path.write_text("\n".join(lines))
    return str(path)


def zoneinfo_line(zone, field, nth=1):
    """The line number of the nth ``field`` line of zone ``zone`` in before_zoneinfo-6.18."""
    lines = open(os.path.join(DATA, ZI)).read().split("\n")
    start = next(i for i, line in enumerate(lines) if re.fullmatch(rf"Node 0, zone\s+{zone}",
                                                                   line))
    hits = [i + 1 for i in range(start + 1, len(lines))
            if re.match(rf"\s+{field}\s", lines[i])]
    return hits[nth - 1]


def zoneinfo_edited(tmp_path, zone, field, value, nth=1):
    return edited(tmp_path, ZI, zoneinfo_line(zone, field, nth), r"\d+$", value)


def cli_one_line(argv, *fragments):
    """Run zeroing: exit 2, one line on stderr (besides the first-run compile notice) that
    starts with the command and holds every fragment."""
    from zeroing.compiling import MESSAGE
    p = subprocess.run([sys.executable, "-m", "zeroing", *argv], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    err = [line for line in p.stderr.splitlines() if line != MESSAGE]
    assert p.returncode == 2 and len(err) == 1, p.stderr[-2000:]
    assert err[0].startswith(f"zeroing {argv[0]}: error: ") and err[0].isprintable(), err
    for f in fragments:
        assert f in err[0], err
    return err[0]


def run_from(path):
    return ["run", "--workload", "mixed", "--events", "2000", "--initial-state", path]


def replay_with(path):
    return ["replay", TRACE_GZ, "--replay-mode", "requests", "--zoneinfo", path]


# 1, 2: numbers too long to convert, or to scale as floats, end to end.

@pytest.mark.parametrize("name, lineno, old, new, reason", [
    # 400 digits: int() takes it, the pageblock shares' float() overflowed.
    ("jc_pagetypeinfo", JC_NORMAL_BLOCKS, r"120", "1" * 400, "count of pageblocks"),
    ("jc_pagetypeinfo", JC_NORMAL_UNMOVABLE, r"\b22\b", HUGE, "count of free order-1 blocks"),
    ("node_exporter_buddyinfo", BUDDY_NORMAL, r"\b4381\b", HUGE, "count of free order-0 blocks"),
])
def test_a_snapshot_count_too_long_is_one_line(tmp_path, name, lineno, old, new, reason):
    path = edited(tmp_path, name, lineno, old, new)
    err = cli_one_line(run_from(path), f"{path}:{lineno}: {reason}", "2^40")
    assert len(err) < 300  # the number is cut, not printed whole


# 3: the same in a zoneinfo, end to end.

@pytest.mark.parametrize("zone, field, nth, reason", [
    ("Normal", "managed", 1, "the Normal zone's managed pages"),
    ("Normal", "pages free", 1, "the Normal zone's pages free"),
    ("Normal", "count:", 1, "cpu 0's pcp count"),
    ("Normal", "high:", 2, "cpu 1's pcp high"),
    ("DMA32", "managed", 1, "zone DMA32's managed pages"),
])
def test_a_zoneinfo_number_too_long_is_one_line(tmp_path, zone, field, nth, reason):
    path = zoneinfo_edited(tmp_path, zone, field, HUGE, nth)
    err = cli_one_line(replay_with(path), f"{path}:{zoneinfo_line(zone, field, nth)}: {reason}",
                       "5000 digits")
    assert len(err) < 300


# 4: numbers no machine has, and contradictions, that were taken silently.

def test_other_zone_managed_beyond_any_machine_is_refused_end_to_end(tmp_path):
    """A DMA32 of 10^20 pages made the Normal zone's share of min_free_kbytes nothing."""
    path = zoneinfo_edited(tmp_path, "DMA32", "managed", "99999999999999999999")
    cli_one_line(replay_with(path), f"{path}:{zoneinfo_line('DMA32', 'managed')}: zone DMA32's "
                 "managed pages 99999999999999999999 is over", "2^40")


@pytest.mark.parametrize("zone, field, nth, value, message", [
    ("Normal", "high:", 1, "99999999999", "cpu 0's pcp high 99999999999 is over 458752"),
    ("Normal", "high:", 2, "458753", "cpu 1's pcp high 458753 is over 458752"),
    ("Normal", "pages free", 1, "99999999", "pages free 99999999 is over its managed 458752"),
    # /proc/zoneinfo prints NR_FREE_PAGES unfolded: up to 125 pages per CPU (2 here) over.
    ("Normal", "pages free", 1, str(458752 + 251), "pages free 459003 is over its managed"),
    ("Normal", "managed", 1, str((1 << 40) + 1), "managed pages 1099511627777 is over"),
])
def test_zoneinfo_numbers_no_zone_has_are_refused(tmp_path, zone, field, nth, value, message):
    path = zoneinfo_edited(tmp_path, zone, field, value, nth)
    with pytest.raises(UserError, match=re.escape(f"{path}:{zoneinfo_line(zone, field, nth)}: ")
                       + ".*" + re.escape(message)):
        normal_zone(path)


def test_zoneinfo_numbers_at_the_bounds_are_taken(tmp_path):
    # The pagesets hold 2849 + 2427 pages, which "pages free" does not count.
    path = zoneinfo_edited(tmp_path, "Normal", "pages free", str(458752 - 5276 + 250))
    assert normal_zone(path)[1] == 458752 - 5276 + 250
    path = zoneinfo_edited(tmp_path, "Normal", "pages free", str(458752 - 5276 + 251))
    with pytest.raises(UserError, match="pages free 453727 and its pagesets' 5276 pages"):
        normal_zone(path)
    path = zoneinfo_edited(tmp_path, "Normal", "high:", "458752")
    assert normal_zone(path)[2][0][1] == 458752


@pytest.mark.parametrize("zone, field, value", [
    ("DMA", "managed", "-3840"), ("DMA32", "managed", "77291x"), ("Normal", "min", "abc"),
    ("Normal", "managed", ""), ("Normal", "pages free", "1 2")])
def test_a_zoneinfo_field_that_is_no_number_is_refused(tmp_path, zone, field, value):
    """Such a line was taken for a missing one: another zone's pages left out of the
    watermarks without a word, a Normal zone's marks not compared."""
    path = zoneinfo_edited(tmp_path, zone, field, value)
    reader = normal_zone if zone == "Normal" and field != "min" else (
        limits_differ if field == "min" else other_lowmem_zones)
    with pytest.raises(UserError, match=re.escape(
            f"{path}:{zoneinfo_line(zone, field)}: zone {zone}'s '{field}' {value!r} is not "
            "a number of pages")):
        reader(path)


def test_zoneinfo_other_zones_beyond_any_machine_together_are_refused(tmp_path):
    """Each zone under 2^40 pages, but the node's zones together over it."""
    path = zoneinfo_edited(tmp_path, "DMA32", "managed", str((1 << 40) - 3840 + 1))
    with pytest.raises(UserError, match=f"{path}:{zoneinfo_line('DMA32', 'managed')}: zone "
                       r"DMA32's managed pages .* with the 3840 of the node's zones before it"):
        other_lowmem_zones(path)


def test_a_zoneinfo_field_given_twice_is_refused(tmp_path):
    lines = open(os.path.join(DATA, ZI)).read().split("\n")
    at = zoneinfo_line("Normal", "managed")
    lines.insert(at, "        managed  1")
    path = tmp_path / "zoneinfo"
    path.write_text("\n".join(lines))
    with pytest.raises(UserError, match=f"{path}:{at + 1}: 'managed' appears twice in zone "
                       f"Normal \\(first at line {at}\\)"):
        normal_zone(str(path))


def test_zoneinfo_digits_are_ascii(tmp_path):
    """int() takes Arabic-Indic digits; the kernel prints none."""
    path = zoneinfo_edited(tmp_path, "Normal", "managed", "\u0664\u0665\u0668\u0667\u0665\u0662")
    with pytest.raises(UserError, match="zone Normal's 'managed' .* is not a number of pages"):
        normal_zone(path)


@pytest.mark.parametrize("name, lineno, old, new, message", [
    ("before_buddyinfo-6.18", BUDDY_NORMAL, r"Node 0", "Node 99999999999999999999",
     "node number 99999999999999999999 is over 9999"),
    ("jc_pagetypeinfo", JC_NORMAL_UNMOVABLE, r"Node    0", "Node 10000",
     "node number 10000 is over 9999"),
    ("jc_pagetypeinfo", JC_NORMAL_BLOCKS, r"Node 0", "Node 10000", "node number 10000"),
    ("jc_pagetypeinfo", 2, r"512", "1024",
     r"Pages per block:  1024: Page block order 9 \(line 1\) makes 512 pages"),
    # Over 2^40 pages of pageblocks of 512: in one count, and in a row.
    ("jc_pagetypeinfo", JC_NORMAL_BLOCKS, r"120", "100000000000000000000",
     "count of pageblocks 100000000000000000000 is over 2147483648"),
    ("jc_pagetypeinfo", JC_NORMAL_BLOCKS, r"120", str(1 << 31), "2147484040 pageblocks"),
    ("jc_pagetypeinfo", JC_NORMAL_UNMOVABLE, r"\b22\b", str((1 << 39) + 1),
     "count of free order-1 blocks 549755813889 is over 549755813888"),
    ("jc_pagetypeinfo", JC_NORMAL_UNMOVABLE, r"\b22\b", str(1 << 39),  # with orders 2, 3
     "free blocks of 1099511627876 pages"),
    ("before_buddyinfo-6.18", BUDDY_NORMAL, r"\b640\b", str((1 << 40) + 1),
     "count of free order-0 blocks 1099511627777 is over 1099511627776"),
])
def test_snapshot_numbers_no_machine_has_are_refused(tmp_path, name, lineno, old, new, message):
    path = edited(tmp_path, name, lineno, old, new)
    with pytest.raises(StateError, match=f"^{re.escape(path)}:{lineno}: {message}"):
        read_snapshot(path)


def test_snapshot_numbers_at_the_bounds_are_taken(tmp_path):
    path = edited(tmp_path, "jc_pagetypeinfo", JC_NORMAL_BLOCKS, r"120\s+345\s+47",
                  f"{1 << 31} 0 0")
    assert read_pagetypeinfo(path)[1] == [1 << 31, 0, 0]
    path = edited(tmp_path, "before_buddyinfo-6.18", BUDDY_NORMAL, r"Node 0", "Node 9999")
    assert read_buddyinfo(path, ("Normal", 9999))[0] == 640


@pytest.mark.parametrize("at, line, message", [
    (1, "Page block order: 9", r":2: 'Page block order' appears twice \(first at line 1\)"),
    (2, "Pages per block:  512", r":3: 'Pages per block' appears twice \(first at line 2\)"),
    (JC_NORMAL_BLOCKS, "Node 0, zone   Normal          120          345           47"
                       "            0            0",
     f":{JC_NORMAL_BLOCKS + 1}: node 0 zone Normal appears twice in the 'blocks' table"),
    (21, "Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic      "
         "Isolate", r":22: 'Number of blocks type' appears twice \(first at line 21\)"),
])
def test_a_pagetypeinfo_line_given_twice_is_refused(tmp_path, at, line, message):
    """A second order, or a second row of a zone's pageblocks (the last one won)."""
    lines = open(os.path.join(DATA, "jc_pagetypeinfo")).read().split("\n")
    assert lines[at - 1].rstrip() == line
    lines.insert(at, line)
    path = tmp_path / "pagetypeinfo"
    path.write_text("\n".join(lines))
    with pytest.raises(StateError, match=f"^{re.escape(str(path))}{message}"):
        read_pagetypeinfo(str(path))


def test_an_all_zero_blocks_row_is_said_as_a_missing_one(tmp_path):
    """The kernel samples one pfn per pageblock and skips offline ones and another zone's, so
    it can print a zone without pageblocks: typed as without the row, and the run says so."""
    path = edited(tmp_path, "jc_pagetypeinfo", JC_NORMAL_BLOCKS, r"120\s+345\s+47", "0 0 0")
    described = apply_initial_state(BuddyAllocator(1 << 17), path)
    assert "the zone's 'Number of blocks type' row is all zero: wholly allocated pageblocks " \
        "taken as Movable" in described, described


def test_the_real_snapshots_still_load():
    """Every kernel file of tests/data within the bounds (the exact values: the other tests)."""
    for path in sorted(glob.glob(os.path.join(DATA, "*"))):
        if path.endswith(("pagetypeinfo", "buddyinfo")) or "info-6.18" in path:
            if "zoneinfo" in path:
                assert normal_zone(path)[0] > 0 and other_lowmem_zones(path)
            else:
                assert read_snapshot(path)[0]
