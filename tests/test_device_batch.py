"""The GPU backends' host side (device_batch.py): the parallel packer writes the words the
serial one does, and batches without VERIFY rows are collected without per-row work."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import device_batch as db
from kernels.batch import CLEAR, DIRTY, VERIFY, new_results


def rows(draw_orders, ops, n, rng):
    order = rng.choice(draw_orders, size=n).astype(np.int64)
    pfn = (rng.integers(0, 1 << 30, size=n) << order).astype(np.int64)
    op = rng.choice(ops, size=n).astype(np.uint8)
    arg = rng.integers(1, 1 << 40, size=n).astype(np.int64)
    return op, pfn, order, arg


def packed_words(summary, buf, n):
    """The part of buf the device reads: cmd, starts if orders differ, arg if DIRTY."""
    lo, hi, kind, _ = summary
    out = [buf[:n]]
    if lo != hi:
        out.append(buf[n:2 * n + 1])
    if kind & (1 << DIRTY):
        out.append(buf[2 * n + 1:3 * n + 1])
    return out


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), nchunks=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
       orders=st.sampled_from([[0], [9], [0, 1, 3], [0, 9]]),
       ops=st.sampled_from([[CLEAR], [CLEAR, DIRTY], [CLEAR, VERIFY, DIRTY], [CLEAR, 7]]))
def test_parallel_pack_matches_serial(n, nchunks, seed, orders, ops):
    """Same words, same (min order, max order, kinds, pages), any number of row ranges
    (more ranges than rows included)."""
    op, pfn, order, arg = rows(orders, ops, n, np.random.default_rng(seed))
    a = np.full(3 * n + 1, -7, np.int64)
    b = np.full(3 * n + 1, -7, np.int64)
    want = db._pack_serial(op, pfn, order, arg, a)
    got = db._pack_parallel(op, pfn, order, arg, b, nchunks)
    assert tuple(int(x) for x in got) == tuple(int(x) for x in want)
    for x, y in zip(packed_words(want, a, n), packed_words(got, b, n)):
        np.testing.assert_array_equal(x, y)


def test_large_batch_packs_in_parallel_with_the_right_starts():
    """A batch past PARALLEL_ROWS (the parallel path) gives cmd words, starts and args by
    their definitions: starts is the exclusive prefix sum of block sizes."""
    n = db.PARALLEL_ROWS + 12345
    op, pfn, order, arg = rows([0, 2, 9], [CLEAR, DIRTY], n, np.random.default_rng(3))
    p = db.Packed(op, pfn, order, arg)
    sizes = np.int64(1) << order
    np.testing.assert_array_equal(p.cmd, (pfn << db.PFN_SHIFT) | (order << 8) | op)
    np.testing.assert_array_equal(p.starts, np.concatenate(([0], np.cumsum(sizes))))
    np.testing.assert_array_equal(p.arg, arg)
    assert p.total == sizes.sum() and p.uorder == -1 and p.has_dirty and not p.clear_only
    one = db.Packed(np.full(n, CLEAR, np.uint8), pfn, np.zeros(n, np.int64), arg)
    assert one.clear_only and one.uorder == 0 and one.total == n and one.arg is None
    with pytest.raises(ValueError, match="unknown operation"):
        db.Packed(np.full(n, 9, np.uint8), pfn, order, arg)


def test_results_without_verify_are_shared_read_only_views():
    """A batch without VERIFY rows: results equal new_results(n), taken from arrays kept
    between batches (no per-row allocation), which no caller can change."""
    op = np.full(5000, CLEAR, np.uint8)
    p = db.Packed(op, np.arange(5000), np.zeros(5000, np.int64), np.zeros(5000, np.int64))
    first = db.results_from(p, None)
    for got, want in zip(first, new_results(5000)):
        np.testing.assert_array_equal(got, want)
        assert not got.flags.writeable
        with pytest.raises(ValueError):
            got[0] = 1
    again = db.results_from(p, None)
    assert all(np.shares_memory(x, y) for x, y in zip(first, again))
    small = db.no_results(3)
    assert [list(x) for x in small] == [[0, 0, 0], [-1, -1, -1], [0, 0, 0]]


@pytest.mark.parametrize("fastest", [1, 2, 4, 6])
def test_pack_choice_takes_the_fastest_thread_count_after_its_trials(monkeypatch, fastest):
    """Each size class tries every candidate (1, powers of two, all threads) TRIALS times in
    a row, then keeps the one with the best time; small batches are always serial."""
    monkeypatch.setattr(db, "get_num_threads", lambda: 6)
    choice = db.PackChoice()
    assert choice.candidates() == [1, 2, 4, 6]
    n = db.PARALLEL_ROWS * 3
    seen = []
    for _ in range(4 * choice.TRIALS):
        threads, trial = choice.threads(n)
        assert trial
        seen.append(threads)
        choice.record(n, threads, 1.0 if threads == fastest else 2.0 + threads)
    assert seen == [k for k in (1, 2, 4, 6) for _ in range(choice.TRIALS)]  # in a row
    assert choice.threads(n) == (fastest, False)
    assert choice.threads(n + 1) == (fastest, False)  # the same size class
    assert f"{fastest}t 1000000.0 us" in choice.describe()
    assert choice.threads(db.PARALLEL_ROWS - 1) == (1, False)
    assert choice.threads(4 * n)[1]  # another size class starts its own trials
    monkeypatch.setattr(db, "get_num_threads", lambda: 1)
    assert choice.threads(n) == (1, False)
    monkeypatch.setattr(db, "get_num_threads", lambda: 8)
    assert db.PackChoice.candidates() == [1, 2, 4, 8]


def test_packing_by_either_way_gives_the_same_batch(monkeypatch):
    """Packed through the chooser, trials and all: every batch the same words."""
    monkeypatch.setattr(db, "CHOICE", db.PackChoice())
    n = db.PARALLEL_ROWS + 5
    op, pfn, order, arg = rows([0, 1], [CLEAR, DIRTY, VERIFY], n, np.random.default_rng(4))
    want = np.full(3 * n + 1, -1, np.int64)
    db._pack_serial(op, pfn, order, arg, want)
    for _ in range(2 * db.PackChoice.TRIALS + 2):
        p = db.Packed(op, pfn, order, arg, np.full(3 * n + 1, -1, np.int64))
        np.testing.assert_array_equal(p.buf, want)


class FakeDriver:
    """The five CUDA driver functions the compiled submitter calls, as ctypes callbacks that
    record their arguments (what the submitter asked of the driver, in order; a launch with
    the argument slots it found in ``values``); ``fail`` names one that returns that error
    code."""

    def __init__(self, values, fail=None, code=700):
        import ctypes
        u64, u32, i32 = ctypes.c_uint64, ctypes.c_uint, ctypes.c_int
        self.calls = []

        def recorder(name, *argtypes):
            def call(*args):
                if name == "launch":
                    args += (tuple(int(v) for v in values),)
                self.calls.append((name,) + args)
                return code if name == fail else 0
            return ctypes.CFUNCTYPE(i32, *argtypes)(call)
        self.memcpy = recorder("memcpy", u64, u64, u64, u64)
        self.dtoh = recorder("dtoh", u64, u64, u64, u64)
        self.record = recorder("record", u64, u64)
        self.wait = recorder("wait", u64, u64, u32)
        self.launch = recorder("launch", u64, u32, u32, u32, u32, u32, u32, u32, u64, u64, u64)

    def submitter(self):
        return db.make_submitter(self.memcpy, self.dtoh, self.record, self.wait, self.launch)


DEV, RES, RES_HOST, COPIED, DONE = 1 << 40, 1 << 42, 1 << 43, 13, 14
COPY, COMPUTE, ENT_ROW, NXT, FOUND = 11, 12, 1 << 44, 1 << 45, 1 << 46
POOL, HEAD, ARGV = 1 << 41, 1 << 47, 99
FNS = np.array([101, 102, 103, 104, 105], np.int64)  # CUfunctions, in KERNELS' order


def pointers(ent_cap=1 << 20):
    slot = np.zeros(db.NR_SLOT_PTRS, np.int64)
    slot[[db.S_DEV, db.S_RES, db.S_RES_HOST, db.S_COPIED, db.S_DONE]] = (DEV, RES, RES_HOST,
                                                                       COPIED, DONE)
    stage = np.zeros(db.NR_STAGE_PTRS, np.int64)
    stage[[db.G_COPY, db.G_COMPUTE, db.G_ENT_ROW, db.G_NXT, db.G_FOUND, db.G_ENT_CAP]] = (
        COPY, COMPUTE, ENT_ROW, NXT, FOUND, ent_cap)
    pool = np.zeros(db.NR_POOL_PTRS, np.int64)
    pool[[db.P_POOL, db.P_HEAD]] = POOL, HEAD
    return slot, stage, pool


def test_compiled_submitter_packs_copies_waits_launches_and_records_a_clear_batch():
    """For a batch of clears: the words Packed would write, then a copy of cmd (and starts
    when orders differ) on the copy stream, the compute stream waiting on ``copied``, the
    clear kernel over every page (one block of CLEAR_THREADS each) with its arguments in the
    slots, ``done`` recorded (packed on one thread or several); a driver error returned and
    nothing asked after it."""
    values = np.zeros(16, np.int64)
    drv = FakeDriver(values)
    submit = drv.submitter()
    slot, stage, pool = pointers()
    for orders, threads in (([0], 1), ([0, 1, 3], 1), ([0, 1, 3], 2)):
        op, pfn, order, arg = rows(orders, [CLEAR], 300, np.random.default_rng(len(orders)))
        buf = np.full(3 * 300 + 1, -7, np.int64)
        drv.calls.clear()
        *summary, status = submit(op, pfn, order, arg, buf, threads, False, slot, stage, pool,
                                  FNS, values, ARGV)
        want = db.Packed(op, pfn, order, arg)
        got = db.Packed(op, pfn, order, arg, buf, summary=summary)
        assert status == 1 and got.total == want.total and got.uorder == want.uorder
        nrows = 300 if want.uorder >= 0 else 601
        np.testing.assert_array_equal(buf[:nrows], want.buf[:nrows])
        args = (POOL, DEV, 300, want.uorder, want.total)
        assert drv.calls[:3] == [("memcpy", DEV, buf.ctypes.data, nrows * 8, COPY),
                                 ("record", COPIED, COPY), ("wait", COMPUTE, COPIED, 0)]
        assert drv.calls[3][:12] == ("launch", int(FNS[0]), want.total, 1, 1, db.CLEAR_THREADS,
                                     1, 1, 0, COMPUTE, ARGV, 0)
        assert drv.calls[3][12][:5] == args and drv.calls[4:] == [("record", DONE, COMPUTE)]
    bad = FakeDriver(values, fail="wait")
    op, pfn, order, arg = rows([0], [CLEAR], 10, np.random.default_rng(1))
    *_, status = bad.submitter()(op, pfn, order, arg, np.empty(31, np.int64), 1, True, slot,
                                 stage, pool, FNS, values, ARGV)
    assert status == -700 and [c[0] for c in bad.calls] == ["memcpy", "record", "wait"]


@pytest.mark.parametrize("orders,ops", [([0], [CLEAR, DIRTY, VERIFY]), ([0, 2, 9], [VERIFY]),
                                        ([1], [DIRTY, CLEAR]), ([0, 3], [CLEAR, VERIFY])])
def test_compiled_submitter_makes_the_python_paths_launches_for_any_other_batch(orders, ops):
    """A batch that is not all clears: its rows copied (arg too when a row is DIRTY), then
    exactly the launches of ``ordered_launches`` (the CuPy backend's Python path) with the
    same arguments, the results copied back into the pinned slot when a row is VERIFY, and
    ``done`` recorded. Not ``ordered``, or more entries than the staging holds: packed, and
    nothing asked of the driver."""
    values = np.zeros(16, np.int64)
    drv = FakeDriver(values)
    submit = drv.submitter()
    slot, stage, pool = pointers()
    n = 200
    op, pfn, order, arg = rows(orders, ops, n, np.random.default_rng(len(orders) + len(ops)))
    buf = np.full(3 * n + 1, -7, np.int64)
    *summary, status = submit(op, pfn, order, arg, buf, 1, True, slot, stage, pool, FNS,
                              values, ARGV)
    want = db.Packed(op, pfn, order, arg)
    got = db.Packed(op, pfn, order, arg, buf, summary=summary)
    assert status == 1 and not want.clear_only
    for x, y in zip(packed_words(summary, buf, n), packed_words(summary, want.buf, n)):
        np.testing.assert_array_equal(x, y)
    nrows = n if want.uorder >= 0 else 2 * n + 1
    calls = [("memcpy", DEV, buf.ctypes.data, nrows * 8, COPY)]
    if want.has_dirty:
        off = (2 * n + 1) * 8
        calls.append(("memcpy", DEV + off, buf.ctypes.data + off, n * 8, COPY))
    calls += [("record", COPIED, COPY), ("wait", COMPUTE, COPIED, 0)]
    plan = db.ordered_launches(n, want.uorder, want.total, want.has_verify, POOL, DEV, HEAD,
                               ENT_ROW, NXT, FOUND, RES)
    assert [k[0] for k in plan] == ["init_results", "link_pages", "apply_pages_warp"] + (
        ["verify_markers"] if want.has_verify else [])
    assert drv.calls[:len(calls)] == calls
    made = drv.calls[len(calls):len(calls) + len(plan)]
    for call, (name, grid, block, args) in zip(made, plan):
        fn = int(FNS[db.KERNELS.index(name)])
        assert call[:12] == ("launch", fn, grid, 1, 1, block, 1, 1, 0, COMPUTE, ARGV, 0)
        assert call[12][:len(args)] == tuple(int(a) for a in args), name
    rest = drv.calls[len(calls) + len(plan):]
    assert rest == ([("dtoh", RES_HOST, RES, 3 * n * 8, COMPUTE)] if want.has_verify else []) \
        + [("record", DONE, COMPUTE)]
    assert got.has_verify == want.has_verify and got.total == want.total
    for ordered, cap in ((False, 1 << 20), (True, want.total - 1)):
        drv.calls.clear()
        _, stage_small, _ = pointers(cap)
        *summary, status = submit(op, pfn, order, arg, buf, 1, ordered, slot, stage_small,
                                  pool, FNS, values, ARGV)
        assert status == 0 and drv.calls == []
        assert db.Packed(op, pfn, order, arg, buf, summary=summary).total == want.total


def test_results_of_a_verifying_batch_are_views_of_the_slot_with_bad_set_to_minus_one():
    """No copies at collection: nonzero, bad and marker are the slot's own words, and a row
    that found nothing has bad -1 (the device leaves NO_PFN, its minimum's start)."""
    op = np.array([VERIFY, CLEAR, VERIFY], np.uint8)
    p = db.Packed(op, np.array([4, 5, 6]), np.zeros(3, np.int64), np.zeros(3, np.int64))
    res = np.array([2, 0, 0, 4, db.NO_PFN, db.NO_PFN, 77, 0, 0], np.int64)
    nonzero, bad, marker = db.results_from(p, res)
    assert [list(x) for x in (nonzero, bad, marker)] == [[2, 0, 0], [4, -1, -1], [77, 0, 0]]
    assert all(np.shares_memory(x, res) for x in (nonzero, bad, marker))


def test_host_only_packs_each_batch_into_its_two_buffers_in_turn():
    """HostOnly does a GPU backend's host work: the words a GPU backend would copy to the
    device are in one of its buffers, the other one than the batch before."""
    h = db.HostOnly(batch_pages=64)
    assert h.BATCH_PAGES == 64
    seen = []
    for seed in range(3):
        op, pfn, order, arg = rows([0, 2], [CLEAR, DIRTY], 100, np.random.default_rng(seed))
        packed, _, _ = h.submit(h.alloc_pool(8), op, pfn, order, arg)
        want = db.Packed(op, pfn, order, arg)
        for x, y in zip(packed_words((0, 2, 1 << DIRTY, 0), packed.buf, 100),
                        packed_words((0, 2, 1 << DIRTY, 0), want.buf, 100)):
            np.testing.assert_array_equal(x, y)
        seen.append(packed.buf)
        assert [list(x) for x in h.collect((packed, None, None))] == \
            [list(x) for x in new_results(100)]
    assert seen[0] is seen[2] and seen[0] is not seen[1]


def test_content_mode_on_host_only_runs_to_the_end_in_batches_of_its_pages():
    """The engine drives HostOnly as a GPU backend (submit, collect, batches by BATCH_PAGES);
    where no page leaks, its counters are metadata mode's (every page reads as zero)."""
    from zeroing.policy import make_policy
    from zeroing.run import simulate
    from zeroing.workloads import make_workload
    ev = make_workload("mixed", 4096, 3000, seed=2)
    pol = make_policy("init_on_free,pg_zeroed,reporting")
    meta = simulate(ev, pol, 4096)
    host = simulate(ev, pol, 4096, mode="content", backend=db.HostOnly(batch_pages=256))
    drop = ("wall_s", "events_per_s", "backend", "mode")
    assert meta["counters"]["zero_leak"] == 0
    assert ({k: v for k, v in host["counters"].items() if k not in drop}
            == {k: v for k, v in meta["counters"].items() if k not in drop})
    assert host["backend"]["name"] == "host-only" and host["backend"]["launches"] > 10
    assert host["backend"]["pages_per_launch"] < 2 * 256 + 1024


def test_launches_cover_every_entry_with_the_fewest_blocks():
    """``blocks`` (the Python plan's and the compiled submitter's): at least one block, and
    enough of them for every row or page entry, never a block more."""
    assert [db.blocks(n, 256) for n in (0, 1, 255, 256, 257, 512, 513)] == [1, 1, 1, 1, 2, 2, 3]
    for name, grid, threads, args in db.ordered_launches(300, -1, 70_001, True, *range(7)):
        items = 3 * 300 if name == "init_results" else 70_001
        per_block = threads // db.LANES if name == "apply_pages_warp" else threads
        assert (grid - 1) * per_block < items <= grid * per_block, name
