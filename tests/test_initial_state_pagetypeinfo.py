"""A /proc/pagetypeinfo snapshot as the initial state: its free blocks land on their
migratetype's free lists, pageblocks follow its blocks table, bad lines name file and line."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from allocator import GFP_KERNEL, BuddyAllocator
from zeroing.initial_state import (StateError, apply_initial_state, read_buddyinfo,
                                   read_pagetypeinfo)
from zeroing.validate import UserError, check

DATA = os.path.join(os.path.dirname(__file__), "data")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JC = os.path.join(DATA, "jc_pagetypeinfo")
PTI_618 = os.path.join(DATA, "before_pagetypeinfo-6.18")
BUDDY_618 = os.path.join(DATA, "before_buddyinfo-6.18")
ZERO = [0] * 11
# jc_pagetypeinfo's Normal zone, as printed there.
JC_NORMAL = {"Unmovable": [0, 22, 7, 9, 0, 0, 0, 0, 0, 0, 0],
             "Movable": [0, 0, 1, 1, 1, 1, 2, 11, 13, 0, 0], "Reclaimable": ZERO}
JC_BLOCKS = (120, 345, 47)  # Unmovable, Movable, Reclaimable pageblocks of 512


def jc_zone(pcp=True):
    a = BuddyAllocator(1 << 17, pcp=pcp)
    apply_initial_state(a, JC)
    return a


def test_free_blocks_sit_on_their_migratetypes_lists():
    a = jc_zone()
    assert a.pagetypeinfo() == JC_NORMAL
    assert a.stats()["pgalloc"] == 0 and a.nr_pcp_pages() == 0
    a.check()  # among others: every free block is on its pageblock's migratetype's list
    for mt in range(3):
        pfn = a.zone.free_head[1, mt]
        while pfn >= 0:
            assert a.zone.pageblock_mt[pfn >> 9] == mt
            pfn = a.zone.next[pfn]


def test_unmovable_allocation_is_served_from_the_snapshots_unmovable_blocks():
    a = jc_zone(pcp=False)
    pfn = a.alloc(1, GFP_KERNEL)
    assert a.zone.pageblock_mt[pfn >> 9] == 0  # no fallback to a Movable block
    assert a.pagetypeinfo()["Unmovable"][1] == 21
    assert a.pagetypeinfo()["Movable"] == JC_NORMAL["Movable"]
    assert a.stats()["extfrag"] == 0
    a.check()


def test_pageblocks_follow_the_blocks_table_scaled_to_the_zone():
    a = jc_zone()
    n = len(a.zone.pageblock_mt)
    per_type = np.bincount(a.zone.pageblock_mt, minlength=3)
    for mt, blocks in enumerate(JC_BLOCKS):
        assert abs(per_type[mt] - blocks * n / sum(JC_BLOCKS)) < 1
    # Allocated pages take their pageblock's migratetype.
    heads = np.flatnonzero(a.zone.flags & (1 << 4))
    assert (a.zone.next[heads] == a.zone.pageblock_mt[heads >> 9]).all()


def test_all_three_types_of_a_618_snapshot_and_buddyinfo_agree():
    free, blocks = read_pagetypeinfo(PTI_618)
    assert blocks == [44, 827, 25]
    assert [sum(c) for c in zip(*free)] == read_buddyinfo(BUDDY_618)  # same moment, both files
    a = BuddyAllocator(1 << 20)
    desc = apply_initial_state(a, PTI_618)
    assert "356718 free pages" in desc
    assert a.pagetypeinfo() == dict(zip(("Unmovable", "Movable", "Reclaimable"), free))
    b = BuddyAllocator(1 << 20)
    apply_initial_state(b, BUDDY_618)
    assert b.buddyinfo() == a.buddyinfo()
    assert b.pagetypeinfo()["Movable"] == b.buddyinfo()  # buddyinfo: all Movable
    a.check()


def test_zone_is_named_or_normal():
    a = BuddyAllocator(1 << 20)
    apply_initial_state(a, JC + ",zone=DMA32")
    assert a.pagetypeinfo() == {"Unmovable": [1, 2, 1, 3, 5, 2, 1, 0, 0, 1, 0],
                                "Movable": [20, 52, 78, 47, 32, 23, 11, 9, 2, 2, 629],
                                "Reclaimable": [2, 1, 3, 0, 1, 0, 1, 0, 1, 1, 0]}
    a.check()
    with pytest.raises(StateError, match="jc_pagetypeinfo: zone Movable not found"):
        apply_initial_state(BuddyAllocator(1 << 17), JC + ",zone=Movable")
    with pytest.raises(StateError, match="jc_pagetypeinfo: Movable: 629 max-order blocks do not"):
        apply_initial_state(BuddyAllocator(1 << 17), JC + ",zone=DMA32")  # 2.5 GiB free
    assert check("--initial-state", "initial_state", JC + ",zone=DMA") == JC + ",zone=DMA"
    with pytest.raises(UserError, match="--initial-state"):
        check("--initial-state", "initial_state", "/nonexistent,zone=DMA")


def test_without_mobility_grouping_everything_is_unmovable():
    a = BuddyAllocator(1 << 17, mobility_grouping=False)
    apply_initial_state(a, JC)
    total = [u + m for u, m in zip(JC_NORMAL["Unmovable"], JC_NORMAL["Movable"])]
    assert a.pagetypeinfo() == {"Unmovable": total, "Movable": ZERO, "Reclaimable": ZERO}
    a.check()


def altered(tmp_path, lineno, text):
    lines = open(JC).read().splitlines()
    lines[lineno - 1] = text
    p = tmp_path / "pagetypeinfo"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


@pytest.mark.parametrize("lineno, text, reason", [
    (16, "Node    0, zone   Normal, type    Unmovable      0 >100000 7 9 0 0 0 0 0 0 0",
     "capped"),
    (16, "Node    0, zone   Normal, type      Weird      0 22 7 9 0 0 0 0 0 0 0",
     "unknown migratetype Weird"),
    (16, "Node    0, zone   Normal, type    Unmovable      0 22 7", "expected 11 free-block"),
    (24, "Node 0, zone   Normal          120          345", "expected 5 pageblock counts"),
    (9, "garbage", "not a /proc/pagetypeinfo line"),
])
def test_bad_lines_name_file_and_line(tmp_path, lineno, text, reason):
    path = altered(tmp_path, lineno, text)
    with pytest.raises(StateError, match=f"^{path}:{lineno}: .*{reason}"):
        apply_initial_state(BuddyAllocator(1 << 17), path)


def test_cli_reports_a_bad_snapshot_in_one_line(tmp_path):
    path = altered(tmp_path, 16, "Node 0, zone Normal, type Unmovable 1 2")
    p = subprocess.run([sys.executable, "-m", "zeroing", "run", "--workload", "vm-anon",
                        "--pages", "65536", "--size-mb", "16", "--rounds", "1",
                        "--initial-state", path], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert f"{path}:16: expected 11 free-block counts" in p.stderr


def pagetypeinfo_text(free):
    """The kernel's format (mm/vmstat.c pagetypeinfo_showfree_print) for one Normal zone."""
    head = "%-43s " % "Free pages count per migrate type at order"
    rows = ["Page block order: 9", "Pages per block:  512", "",
            head + "".join("%6d " % o for o in range(11))]
    for name, counts in zip(("Unmovable", "Movable", "Reclaimable", "HighAtomic"), free):
        rows.append("Node %4d, zone %8s, type %12s " % (0, "Normal", name) +
                    "".join("%6d " % c for c in counts))
    return "\n".join(rows) + "\n"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), min_size=11, max_size=11), min_size=4, max_size=4))
def test_any_snapshot_that_fits_is_reproduced_exactly(tmp_path_factory, free):
    path = tmp_path_factory.mktemp("pti") / "pagetypeinfo"
    path.write_text(pagetypeinfo_text(free))
    a = BuddyAllocator(1 << 15)
    apply_initial_state(a, str(path))
    unmovable = [u + h for u, h in zip(free[0], free[3])]  # HighAtomic counts as Unmovable
    assert a.pagetypeinfo() == {"Unmovable": unmovable, "Movable": free[1],
                                "Reclaimable": free[2]}
    a.check()  # no free buddies left unmerged, every block on its pageblock's list


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(open(JC).read().splitlines()) | st.text(max_size=40),
                max_size=30), st.binary(max_size=8))
def test_hostile_snapshots_fail_with_one_line_naming_the_file(tmp_path_factory, lines, junk):
    path = tmp_path_factory.mktemp("hostile") / "snap"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + junk)
    try:
        apply_initial_state(BuddyAllocator(1 << 15), str(path))
    except StateError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)


def test_a_zone_without_a_blocks_table_says_how_its_allocated_pageblocks_were_typed(tmp_path):
    path = tmp_path / "pagetypeinfo"
    free = [[1] + [0] * 10, [0] * 10 + [1], [0] * 11, [0] * 11]
    path.write_text(pagetypeinfo_text(free))  # no "Number of blocks type" table
    described = apply_initial_state(BuddyAllocator(1 << 15), str(path))
    assert "no 'Number of blocks type' row for the zone" in described
    described = apply_initial_state(BuddyAllocator(1 << 17, pcp=True), JC)
    assert "Number of blocks type" not in described  # the table is there: nothing to say


def test_a_real_machines_low_order_blocks_serve_faults_before_its_reported_ones():
    """Upstream saw ~21% of order-0 faults served from reported (zeroed) pages. From a pristine
    zone the model serves nearly all from them; from a 6.18 machine's free lists, with 195 MiB
    of Movable blocks below the reporting order, __rmqueue_smallest takes those first and the
    share of 256 MiB falls to about a quarter (experiments/UPSTREAM.md)."""
    from zeroing.policy import make_policy
    from zeroing.run import simulate
    from zeroing.workloads import make_workload
    pages = 1 << 19
    ev = make_workload("vm-anon", pages, None, seed=0, thp="off", size_mb=256, rounds=1,
                       idle_s=30.0)

    def served_zeroed(state):
        c = simulate(ev, make_policy("pg_zeroed,reporting"), pages,
                     initial_state=state)["counters"]
        return c["hint_hits"] / c["alloc_blocks"]

    assert served_zeroed("pristine") > 0.9
    assert 0.1 < served_zeroed(PTI_618 + ",zone=Normal") < 0.4


FAULT1G = os.path.join(DATA, "fault1g_{}-6.18")


def test_faults_take_the_smallest_movable_blocks_first_as_the_kernel_did():
    """A process faulted in 1 GiB (MADV_NOHUGEPAGE) on 6.18: between the pagetypeinfo before
    and the one while it held the memory, the kernel used up every Movable block below order
    10 (193674 + 56832 pages) and then split 12 of its 4243 max-order blocks. The model, from
    the same snapshot and zone (the node's other zones from its zoneinfo), does the same to
    within the pages the per-cpu lists hold."""
    from zeroing.zoneinfo import node_zone
    from allocator import GFP_HIGHUSER_MOVABLE, OP_ALLOC, OP_DTYPE
    a = node_zone(FAULT1G.format("before_zoneinfo"))
    apply_initial_state(a, FAULT1G.format("before_pagetypeinfo") + ",zone=Normal")
    kernel_before = read_pagetypeinfo(FAULT1G.format("before_pagetypeinfo"), ("Normal", None))
    kernel_during = read_pagetypeinfo(FAULT1G.format("during_pagetypeinfo"), ("Normal", None))
    assert a.pagetypeinfo()["Movable"] == kernel_before[0][1]
    ops = np.zeros(1 << 18, dtype=OP_DTYPE)
    ops["op"], ops["gfp"] = OP_ALLOC, GFP_HIGHUSER_MOVABLE
    assert (a.run(ops)[0] >= 0).all()
    model, kernel = a.pagetypeinfo()["Movable"], kernel_during[0][1]
    assert kernel[:10] == [1, 1, 1, 0, 0, 0, 0, 1, 1, 1] and kernel[10] == 4231
    assert sum(model[:10]) <= 5  # every smaller block used up first, as in the kernel
    assert abs(model[10] - kernel[10]) <= 3  # max-order blocks split: 12 in the kernel


def test_thp_faults_take_order_9_blocks_then_split_max_order_ones_as_the_kernel_did():
    """The same with MADV_HUGEPAGE: 512 THP faults on 6.18 took the 46 free order-9 Movable
    blocks, then split 233 max-order ones (46 + 2 * 233 = 512). The model, from the same
    snapshot, leaves orders 9 and 10 exactly as the kernel did (the kernel's lower orders
    moved a little with the process's own order-0 allocations, page tables among them)."""
    from zeroing.zoneinfo import node_zone
    from allocator import OP_ALLOC, OP_DTYPE
    from allocator.flags import GFP_TRANSHUGE
    snap = os.path.join(DATA, "thp1g_{}-6.18")
    a = node_zone(snap.format("before_zoneinfo"))
    apply_initial_state(a, snap.format("before_pagetypeinfo") + ",zone=Normal")
    before = read_pagetypeinfo(snap.format("before_pagetypeinfo"), ("Normal", None))[0][1]
    kernel = read_pagetypeinfo(snap.format("during_pagetypeinfo"), ("Normal", None))[0][1]
    ops = np.zeros(512, dtype=OP_DTYPE)
    ops["op"], ops["order"], ops["gfp"] = OP_ALLOC, 9, GFP_TRANSHUGE
    assert (a.run(ops)[0] >= 0).all()
    model = a.pagetypeinfo()["Movable"]
    assert before[9:] == [46, 4227] and kernel[9:] == [0, 3994]
    assert model[9:] == kernel[9:] and model[:9] == before[:9]


def test_unmovable_allocations_claim_max_order_movable_blocks_as_the_kernel_did():
    """A process wrote one byte every 2 MiB of 512 GiB on 6.18: 262666 page tables
    (Unmovable) and 262144 data pages (Movable). The kernel used up every smaller Unmovable
    and Movable block, then claimed whole max-order Movable blocks for the page tables (its
    Unmovable pageblocks 240 -> 570) and left the Reclaimable lists alone. The model, from
    the same snapshot, a page table then a data page per touch, claims as many to within a
    few pageblocks."""
    from zeroing.zoneinfo import node_zone
    from allocator import GFP_HIGHUSER_MOVABLE, GFP_KERNEL, OP_ALLOC, OP_DTYPE
    snap = os.path.join(DATA, "ptables512g_{}-6.18")
    a = node_zone(snap.format("before_zoneinfo"))
    apply_initial_state(a, snap.format("before_pagetypeinfo") + ",zone=Normal")
    free0, blocks0 = read_pagetypeinfo(snap.format("before_pagetypeinfo"), ("Normal", None))
    free1, blocks1 = read_pagetypeinfo(snap.format("during_pagetypeinfo"), ("Normal", None))
    model_blocks0 = np.bincount(a.zone.pageblock_mt, minlength=3)[:3]
    ops = np.zeros(2 * 262144, dtype=OP_DTYPE)
    ops["op"] = OP_ALLOC
    ops["gfp"][0::2], ops["gfp"][1::2] = GFP_KERNEL, GFP_HIGHUSER_MOVABLE
    assert (a.run(ops)[0] >= 0).all()
    model = a.pagetypeinfo()
    claimed = np.bincount(a.zone.pageblock_mt, minlength=3)[:3] - model_blocks0
    assert blocks1[0] - blocks0[0] == 330 and abs(claimed[0] - 330) <= 6
    assert free1[1][9:] == [68, 4080] and abs(model["Movable"][10] - 4080) <= 3
    assert abs(model["Movable"][9] - 68) <= 6 and sum(model["Movable"][:9]) <= 9
    assert model["Reclaimable"] == free0[2] == free1[2]  # no fallback reached them


def test_a_snapshot_too_big_for_the_zone_names_the_zone_it_fits_in():
    """`cat /proc/pagetypeinfo > snap` of a large machine needs --pages: the error says how many
    (the fewest whole max-order regions; one region less does not fit)."""
    from zeroing.initial_state import check_initial_state
    path = os.path.join(DATA, "fault1g_before_pagetypeinfo-6.18")
    with pytest.raises(StateError, match=r"do not fit in 262144 pages.*: it fits in a zone of "
                                         r"(\d+) pages \(--pages") as e:
        check_initial_state(path, 262144)
    fits = int(e.value.args[0].rsplit("a zone of ", 1)[1].split()[0])
    assert fits % 1024 == 0 and check_initial_state(path, fits)
    with pytest.raises(StateError, match="do not fit"):
        check_initial_state(path, fits - 1024)
