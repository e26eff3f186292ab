"""Starting states: a /proc/buddyinfo snapshot gives exactly its free blocks; aged is seeded."""
import os
import subprocess
import sys

import pytest

from allocator import BuddyAllocator
from zeroing.initial_state import (StateError, allocated_blocks, apply_initial_state,
                                   plan_free_blocks, read_buddyinfo)
from zeroing.policy import make_policy
from zeroing.run import simulate
from zeroing.workloads import make_workload

DATA = os.path.join(os.path.dirname(__file__), "data")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNAPSHOT = os.path.join(DATA, "node_exporter_buddyinfo")


def test_snapshot_gives_exactly_its_free_blocks():
    counts = read_buddyinfo(SNAPSHOT)  # the Normal zone row
    assert counts == [4381, 1093, 185, 1530, 567, 102, 4, 0, 0, 0, 0]
    a = BuddyAllocator(1 << 17)
    apply_initial_state(a, SNAPSHOT)
    assert a.buddyinfo() == counts  # nothing merged, nothing split
    assert a.stats()["pgalloc"] == 0 and a.nr_pcp_pages() == 0
    a.check()


def test_plan_never_puts_free_buddies_side_by_side():
    free = plan_free_blocks([5, 3, 2, 1, 0, 0, 0, 0, 0, 0, 2], 1 << 13, 10)
    blocks = set(free)
    for pfn, order in free:
        assert order == 10 or (pfn ^ (1 << order), order) not in blocks
    taken = allocated_blocks(free, 1 << 13, 10)
    pages = sum(1 << o for _, o in free) + sum(1 << o for _, o in taken)
    assert pages == 1 << 13


def test_snapshot_too_large_for_the_zone_names_the_file():
    with pytest.raises(StateError, match="do not fit"):
        apply_initial_state(BuddyAllocator(1 << 14), SNAPSHOT)
    p = subprocess.run([sys.executable, "-m", "zeroing", "run", "--workload", "vm-anon",
                        "--initial-state", "/nonexistent/buddyinfo"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode != 0 and "/nonexistent/buddyinfo" in p.stderr
    assert "Traceback" not in p.stderr


def test_aged_is_fragmented_seeded_and_uncounted():
    ev = make_workload("vm-anon", 1 << 17, seed=0, rounds=1, size_mb=64)
    pol = make_policy("pg_zeroed,reporting")
    a1 = simulate(ev, pol, 1 << 17, initial_state="aged", state_seed=3)
    a2 = simulate(ev, pol, 1 << 17, initial_state="aged", state_seed=3)
    fresh = simulate(ev, pol, 1 << 17)
    assert a1["counters"] == {**a2["counters"], "wall_s": a1["counters"]["wall_s"],
                              "events_per_s": a1["counters"]["events_per_s"]}
    assert a1["initial_state"] == "aged (seed 3)"
    assert a1["counters"]["pgalloc"] == fresh["counters"]["pgalloc"]  # ageing not counted
    b = BuddyAllocator(1 << 17)
    apply_initial_state(b, "aged", 3)
    assert sum(b.buddyinfo()[:9]) > 100  # low-order free blocks: fragmented
    b.check()


def _mutated(tmp_path, name, edit):
    with open(os.path.join(DATA, name)) as f:
        lines = f.read().splitlines(keepends=True)
    path = tmp_path / name
    path.write_text("".join(edit(lines)))
    return str(path)


@pytest.mark.parametrize("name,edit,message", [
    ("before_buddyinfo-6.18", lambda ls: ls[:2] + [ls[2][:60] + "\n"], r":3: 5 counts where"),
    ("before_buddyinfo-6.18", lambda ls: ls + [ls[2]], r":4: node 0 zone Normal appears twice"),
    ("before_pagetypeinfo-6.18", lambda ls: [ls[0].replace("9", "7")] + ls[1:],
     r":1: Page block order: 7: the model's pageblocks are order 9"),
    ("before_pagetypeinfo-6.18", lambda ls: ls[:4] + [ls[4].replace(" 1 ", "-1 ", 1)] + ls[5:],
     r":5: '-1' is not a count"),
    ("before_pagetypeinfo-6.18", lambda ls: ls[:5] + [ls[4]] + ls[5:],
     r":6: node 0 zone DMA type Unmovable appears twice"),
    ("before_buddyinfo-6.18", lambda ls: [ls[0][:60] + "\n"], r":1: 5 counts: /proc/buddyinfo has "
                                                                r"one per order, 11 on x86-64"),
    ("before_buddyinfo-6.18", lambda ls: [ls[0].replace("3", "\uff13")],
     r":1: not a /proc/buddyinfo line"),
    ("before_pagetypeinfo-6.18", lambda ls: ls[:3] + [ls[3].split("     3")[0] + "\n"] + ls[4:],
     r":4: the orders must be 0 to 10 at least"),
    ("before_pagetypeinfo-6.18", lambda ls: ls[:4] + [ls[4].replace(" 1 ", "\u0661 ", 1)] + ls[5:],
     r":5: '\u0661' is not a count"),
])
def test_a_damaged_snapshot_names_its_line(tmp_path, name, edit, message):
    from zeroing.initial_state import read_snapshot
    path = _mutated(tmp_path, name, edit)
    with pytest.raises(StateError, match=message):
        read_snapshot(path)


def _aged_ops_reference(nr_pages, seed):
    """The ageing loop as first written, in Python with Generator.choice: the compiled one
    must make the same rows from a seed (figures measured with it stay reproducible)."""
    import numpy as np
    from allocator import GFP_HIGHUSER_MOVABLE, GFP_KERNEL, OP_ALLOC, OP_DRAIN, OP_DTYPE, OP_FREE_REF
    from zeroing.initial_state import GFP_RECLAIMABLE
    rng = np.random.default_rng(seed)
    orders, p_order = np.array([0, 1, 2, 3, 9]), np.array([0.75, 0.10, 0.05, 0.05, 0.05])
    gfps = np.array([GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_RECLAIMABLE])
    rows, live, used, target = [], [], 0, int(nr_pages * 0.75)

    def alloc():
        nonlocal used
        o = int(rng.choice(orders, p=p_order))
        rows.append((OP_ALLOC, o, 0, 0, int(rng.choice(gfps, p=[0.7, 0.2, 0.1])), 0))
        live.append(len(rows) - 1)
        used += 1 << o

    def free():
        nonlocal used
        k = int(rng.integers(len(live)))
        live[k], live[-1] = live[-1], live[k]
        row = live.pop()
        used -= 1 << rows[row][1]
        rows.append((OP_FREE_REF, rows[row][1], 0, 0, 0, row))

    while used < target:
        alloc()
    for _ in range(nr_pages):
        alloc() if used < target else free()
    for _ in range(len(live) // 2):
        free()
    rows.append((OP_DRAIN, 0, 0, 0, 0, 0))
    return np.array(rows, dtype=OP_DTYPE)


@pytest.mark.parametrize("nr_pages,seed", [(1024, 0), (4096, 3), (20000, 11)])
def test_compiled_ageing_draws_as_numpy_does(nr_pages, seed):
    import numpy as np
    from zeroing.initial_state import aged_ops
    assert np.array_equal(aged_ops(nr_pages, seed), _aged_ops_reference(nr_pages, seed))


def test_a_node_other_than_the_lowest_is_taken_when_named(tmp_path, capsys):
    """A NUMA machine's snapshot: node=N takes that node's zone (default: the lowest node
    with it); a node without the zone is refused, naming the nodes that have it."""
    snap = tmp_path / "buddyinfo"
    snap.write_text("Node 0, zone      DMA      1      1      1      0      2      1      1      0      1      1      3\n"
                    "Node 0, zone   Normal    400    100     50      3      0      0      0      0      0      0      0\n"
                    "Node 1, zone   Normal     40     10      5      1      0      0      0      0      0      0      1\n")
    assert read_buddyinfo(str(snap)) == [400, 100, 50, 3] + [0] * 7
    a = BuddyAllocator(1 << 15)
    assert apply_initial_state(a, f"{snap},node=1") == "buddyinfo,node=1 (1112 free pages)"
    assert a.buddyinfo() == [40, 10, 5, 1] + [0] * 6 + [1]
    for spec in (f"{snap},zone=DMA,node=0", f"{snap},node=0,zone=DMA"):
        a = BuddyAllocator(1 << 15)
        apply_initial_state(a, spec)
        assert a.buddyinfo() == [1, 1, 1, 0, 2, 1, 1, 0, 1, 1, 3]
    with pytest.raises(StateError, match=r"node 1 has no zone DMA \(nodes with it: 0\)"):
        apply_initial_state(BuddyAllocator(1 << 15), f"{snap},zone=DMA,node=1")
    from zeroing.cli import main
    assert main(["run", "--pages", "32768", "--events", "100", "--initial-state",
                 f"{snap},node=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "node 2 has no zone Normal (nodes with it: 0, 1)" in err[0], err
    for bad in ("node=-1", "node=abc", "node=1,node=2", "node=\u0661"):  # (an Arabic-Indic 1)
        assert main(["run", "--pages", "32768", "--events", "100", "--initial-state",
                     f"{snap},{bad}"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no such file" in err[0] and "N from 0 to 9999" in err[0], err
