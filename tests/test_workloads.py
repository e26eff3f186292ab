"""Compiled workload generators: the same events as the Python loops they replaced, chunk by
chunk; the lists they keep; streamed runs count what one long array counts."""
import importlib
import os
import sys

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

import reference_workloads as ref
from zeroing.events import EV_ALLOC, EV_FREE, EVENT_CALLER_DTYPE, EVENT_DTYPE
from zeroing.policy import make_policy
from zeroing.run import BadEventError, Simulation, simulate
from zeroing.streaming import StreamFeeder, simulate_stream
from zeroing.workloads import CHUNKED, iter_workload, make_workload
from zeroing.workloads.gen import (OrderedList, Ring, collect, ol_append, ol_pop, ring_append,
                                   ring_popleft)

gen = importlib.import_module("zeroing.workloads.gen")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (workload, parameters, Python oracle): edge cases included (tiny zones, no rounds, lists
# that have to grow, fractions above 1).
CASES = [
    ("mixed", dict(nr_pages=4096, events=20_000), ref.mixed),
    ("mixed", dict(nr_pages=16, events=3000), ref.mixed),
    ("unaware-user", dict(nr_pages=512, events=20_000), ref.unaware_user),
    ("unaware-user", dict(nr_pages=8, events=3000), ref.unaware_user),
    ("unaware-user", dict(nr_pages=512, events=5000, callers="raw=3,slab=1,anon=0.5"),
     ref.unaware_user),
    ("vm-anon", dict(nr_pages=1 << 14, thp=False, size_mb=8, rounds=2, idle_s=3.0), ref.vm_anon),
    ("vm-anon", dict(nr_pages=1 << 14, thp=True, size_mb=16, rounds=2, idle_s=2.5, noise=0.5),
     ref.vm_anon),
    ("vm-anon", dict(nr_pages=1 << 14, thp=False, size_mb=2, rounds=3, noise=0.6), ref.vm_anon),
    ("vm-anon", dict(nr_pages=1 << 14, thp=False, size_mb=4, rounds=0), ref.vm_anon),
    ("vm-anon", dict(nr_pages=1 << 14, thp=True, size_mb=8, rounds=2, touch=0.3), ref.vm_anon),
    ("kernel-build", dict(nr_pages=4096, jobs=20, files_per_job=40), ref.kernel_build),
    ("kernel-build", dict(nr_pages=2, jobs=5, files_per_job=3), ref.kernel_build),
    ("page-cache-churn", dict(nr_pages=4096, passes=3, file_fraction=0.6), ref.page_cache_churn),
    ("page-cache-churn", dict(nr_pages=4096, passes=2, file_fraction=1.5), ref.page_cache_churn),
    ("balloon-cycle", dict(nr_pages=4096, cycles=3, balloon_fraction=0.25, idle_s=2.0),
     ref.balloon_cycle),
    ("balloon-cycle", dict(nr_pages=4096, cycles=2, balloon_fraction=0.0), ref.balloon_cycle),
]


@pytest.mark.parametrize("name,params,oracle", CASES)
@pytest.mark.parametrize("seed", [0, 7])
def test_compiled_generator_makes_the_python_loops_events(name, params, oracle, seed):
    want = oracle(seed=seed, **params)
    assert want.dtype in (EVENT_DTYPE, EVENT_CALLER_DTYPE) and len(want) > 0
    for chunk in (13, 1 << 20):
        got = collect(CHUNKED[name](seed=seed, chunk=chunk, **params))
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_make_workload_is_the_chunks_joined():
    whole = make_workload("mixed", 4096, 5000, seed=3)
    parts = list(iter_workload("mixed", 4096, 5000, seed=3, chunk=700))
    assert max(len(p) for p in parts) <= 700 and len(parts) == 8
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_seeds_differ_and_repeat():
    a, b = make_workload("kernel-build", 4096, seed=1, jobs=5), make_workload("kernel-build", 4096, seed=2, jobs=5)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, make_workload("kernel-build", 4096, seed=1, jobs=5))


def test_a_long_stream_holds_one_chunk():
    """10^6 events through 1000-row chunks: no chunk is larger, and the generator's own
    arrays stay the size of the live set (page-cache-churn's cache, not the stream)."""
    it = iter_workload("page-cache-churn", 4096, seed=0, chunk=1000, passes=400)
    total = 0
    for part in it:
        assert len(part) <= 1000
        total += len(part)
    assert total > 1_000_000


# ---------------------------------------------------------------------------------------------
# The lists: against Python lists, growth included.

ops = st.lists(st.tuples(st.booleans(), st.integers(0, 10 ** 6)), max_size=400)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_ordered_list_is_a_list_with_pop_k(steps):
    ol, model, row = OrderedList(2, spare=1), [], 0
    for is_pop, k in steps:
        if gen.ol_full(ol.a):
            ol.grow_if_needed()
            assert not gen.ol_full(ol.a)
        if is_pop and model:
            assert ol_pop(ol.a, k % len(model)) == model.pop(k % len(model))
        else:
            ol_append(ol.a, row)
            model.append(row)
            row += 1
        assert gen.ol_len(ol.a) == len(model)


def test_ordered_list_pops_across_many_words():
    """A list of thousands (many mask words, a deep tree, compactions) against a list."""
    ol, model = OrderedList(3000, spare=1), []
    rng = np.random.default_rng(5)
    for row in range(40_000):
        if model and (rng.random() < 0.5 or len(model) >= 3000):
            k = int(rng.integers(len(model)))
            assert ol_pop(ol.a, k) == model.pop(k)
        else:
            ol_append(ol.a, row)
            model.append(row)
    assert gen.ol_len(ol.a) == len(model)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 1000, 16385, 2 ** 31 + 5, 2 ** 32, 2 ** 32 + 1, 2 ** 40])
def test_rand_below_draws_what_integers_draws(n):
    """Compiled ``rand_below(rng, n)`` is ``rng.integers(0, n)``, draw for draw (interleaved
    with other draws: the 32-bit halves numpy buffers are shared)."""
    @njit
    def draws(rng, n, fast):
        out = np.empty(200, np.int64)
        for j in range(0, 200, 2):
            out[j] = gen.rand_below(rng, n) if fast else rng.integers(0, n)
            out[j + 1] = np.int64(rng.random() * 1e9)
        return out

    a = draws(np.random.default_rng(9), n, True)
    np.testing.assert_array_equal(a, draws(np.random.default_rng(9), n, False))
    assert np.all((a[::2] >= 0) & (a[::2] < n))


@njit
def _mixed_draws(rng, n, fast):
    """200 draws alternating integers(0, n) and random(), through ``gen.draws(rng)`` when
    ``fast``; then one more of each from ``rng`` itself (the state it was left in)."""
    out = np.empty(202)
    bits = gen.draws(rng)
    for j in range(0, 200, 2):
        out[j] = gen.rand_below(bits, n) if fast else rng.integers(0, n)
        out[j + 1] = gen.uniform(bits) if fast else rng.random()
    out[200] = rng.integers(0, n)
    out[201] = rng.random()
    return out


@pytest.mark.parametrize("bitgen", [np.random.PCG64, np.random.MT19937, np.random.Philox])
@pytest.mark.parametrize("n", [1, 6, 16385, 2 ** 32, 2 ** 40])
def test_inline_pcg64_draws_what_numpy_draws(bitgen, n):
    """``uniform``/``rand_below`` over ``draws(rng)`` (PCG64 stepped inline; other bit
    generators through numpy's functions) give numpy's draws and leave numpy's state."""
    fast = _mixed_draws(np.random.Generator(bitgen(4)), n, True)
    np.testing.assert_array_equal(fast, _mixed_draws(np.random.Generator(bitgen(4)), n, False))


def test_inline_pcg64_is_used_by_code_loaded_from_the_cache(tmp_path):
    """The inline step checks the bit generator against this process's PCG64: code a previous
    process compiled and cached must check against the loading process's, not its own."""
    import subprocess
    import sys
    code = ("import numpy as np; from zeroing.workloads import pcg64; "
            "print(pcg64.steps_inline(np.random.default_rng(1)), "
            "pcg64.steps_inline(np.random.Generator(np.random.MT19937(1))))")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=ROOT)
    for _ in range(2):  # compiles and caches, then loads the cache
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        assert out == ["True", "False"]


def test_rand_below_refuses_an_empty_range():
    with pytest.raises(ValueError):
        _mixed_draws(np.random.default_rng(1), 0, True)


def test_ring_pops_its_newest_across_the_wrap():
    ring = Ring(1, spare=1)
    for row in range(10):
        ring_append(ring.a, row)
    assert [ring_popleft(ring.a) for _ in range(8)] == list(range(8))
    for row in range(10, 20):  # rows 16-19 wrap to the array's start
        ring_append(ring.a, row)
    assert len(ring.a.val) == 16 and not gen.ring_full(ring.a)
    assert [gen.ring_pop(ring.a) for _ in range(12)] == list(range(19, 7, -1))


@settings(max_examples=100, deadline=None)
@given(ops)
def test_ring_pops_its_oldest_or_its_newest(steps):
    """A FIFO (page-cache reclaim) and a stack (the balloon) on one ring."""
    ring, model, row = Ring(1, spare=1), [], 0
    for is_pop, left in steps:
        if gen.ring_full(ring.a):
            ring.grow_if_needed()
        if is_pop and model:
            assert (ring_popleft(ring.a) == model.pop(0)) if left % 2 else \
                (gen.ring_pop(ring.a) == model.pop())
        else:
            ring_append(ring.a, row)
            model.append(row)
            row += 1


@pytest.mark.parametrize("name,params", [
    ("mixed", dict(events=60_000)), ("unaware-user", dict(events=20_000)),
    ("balloon-cycle", dict(cycles=2, balloon_fraction=0.05))])
def test_the_balloon_deflates_the_last_inflated_page_first(name, params):
    """virtio_balloon's leak_balloon() dequeues from the head of the balloon list, where
    each inflated page was added: the newest first."""
    from zeroing.events import EV_DEFLATE, EV_INFLATE
    ev = make_workload(name, seed=1, **params)
    balloon, deflates = [], 0
    for i in np.flatnonzero((ev["op"] == EV_INFLATE) | (ev["op"] == EV_DEFLATE)):
        if ev["op"][i] == EV_INFLATE:
            balloon.append(i)
        else:
            assert ev["ref"][i] == balloon.pop(), (name, i)
            deflates += 1
    assert deflates > 100 and len(set(ev["ref"][ev["op"] == EV_DEFLATE])) == deflates


def test_a_kernel_build_job_exits_unmapping_its_memory_in_order_then_its_kernel_objects():
    """exit_mm() before exit_files(): zap_pte_range() frees the job's anonymous pages in
    address order (here the order it faulted them in), then its kernel allocations go."""
    from zeroing.events import EV_FAULT
    from zeroing.workloads.scenarios import GFP_PAGECACHE
    ev = make_workload("kernel-build", seed=3, jobs=30)
    jobs = np.cumsum((ev["op"] == EV_ALLOC) & (ev["gfp"] == GFP_PAGECACHE) &
                     np.r_[True, ev["op"][:-1] != EV_ALLOC])  # a job starts with its reads
    frees = np.flatnonzero(ev["op"] == EV_FREE)
    freed = ev["ref"][frees]
    for j in range(1, jobs[-1] + 1):
        mine = jobs[freed] == j
        kind = ev["op"][freed[mine]]
        faults = freed[mine][kind == EV_FAULT]
        kernel = kind == EV_ALLOC
        kernel &= ev["gfp"][freed[mine]] != GFP_PAGECACHE
        assert len(faults) >= 100 and kernel.sum() >= 20
        assert np.all(np.diff(faults) > 0), j
        assert np.flatnonzero(kind == EV_FAULT).max() < np.flatnonzero(kernel).min(), j


# ---------------------------------------------------------------------------------------------
# Streaming into the engine: chunk boundaries change nothing.

def _same(a, b):
    drop = ("wall_s", "events_per_s")
    assert {k: v for k, v in a["counters"].items() if k not in drop} == \
        {k: v for k, v in b["counters"].items() if k not in drop}
    assert a["buddyinfo"] == b["buddyinfo"] and a["leaks"] == b["leaks"]
    assert a["by_order"] == b["by_order"]
    assert a["by_caller"] == b["by_caller"] and a["callers_stated"] == b["callers_stated"]


@pytest.mark.parametrize("name,params", [
    ("mixed", dict(events=30_000)), ("unaware-user", dict(events=20_000)),
    ("vm-anon", dict(thp=False, size_mb=4, rounds=2)), ("kernel-build", dict(jobs=20)),
    ("page-cache-churn", dict(passes=3)), ("balloon-cycle", dict(cycles=3))])
@pytest.mark.parametrize("policy", ["init_on_free,pg_zeroed,balloon,reporting",
                                    "pg_zeroed,offload", "balloon/folio_flag/page_bit",
                                    "balloon/lru_bit/page_bit"])
def test_streamed_run_counts_what_one_array_counts(name, params, policy):
    """Per-caller counts too: a free looks up its allocation's op and caller, also when the
    allocation was made in an earlier chunk (the feeder carries both)."""
    pages = 4096
    policy, _, design = policy.partition("/")
    options = dict(zip(("hint", "free_signal"), design.split("/"))) if design else {}
    whole = simulate(make_workload(name, pages, seed=2, **params),
                     make_policy(policy, **options), pages)
    streamed = simulate_stream(iter_workload(name, pages, seed=2, chunk=977, **params),
                               make_policy(policy, **options), pages)
    assert whole["counters"]["pgfree"] > 0
    _same(whole, streamed)


@pytest.mark.parametrize("name,params", [
    ("mixed", dict(events=30_000)), ("unaware-user", dict(events=20_000)),
    ("vm-anon", dict(thp=False, size_mb=4, rounds=2)), ("kernel-build", dict(jobs=20)),
    ("page-cache-churn", dict(passes=3)), ("balloon-cycle", dict(cycles=3))])
def test_generator_writing_the_window_counts_what_copied_chunks_count(name, params):
    """The two ways a compiled generator reaches the engine: writing straight into the
    feeder's window (``StreamFeeder.run``) and as EVENT_DTYPE chunks copied into it
    (``feed``); leaks and per-caller counts too."""
    pages, policy = 4096, make_policy("balloon", hint="folio_flag", free_signal="page_bit")
    direct = simulate_stream(iter_workload(name, pages, seed=5, chunk=613, **params), policy,
                             pages)
    copied = simulate_stream(iter(iter_workload(name, pages, seed=5, chunk=613, **params)),
                             policy, pages)
    _same(direct, copied)
    assert direct["leaks"] == copied["leaks"]


def _events(rows):
    ev = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for i, (op, order, target) in enumerate(rows):
        ev[i]["time"], ev[i]["op"], ev[i]["order"], ev[i]["ref"] = i, op, order, target
        ev[i]["gfp"] = 0xCC0 if op == EV_ALLOC else 0  # GFP_KERNEL
    return ev


def test_references_across_chunks_freed_failed_and_bad():
    """A free of an earlier chunk's live block frees it; of a block already freed, a no-op
    (as in one array); a reference to a later row is a bad event named by its stream number."""
    ev = _events([(EV_ALLOC, 0, 0), (EV_ALLOC, 1, 0), (EV_FREE, 0, 0), (EV_FREE, 0, 0),
                  (EV_ALLOC, 0, 0), (EV_FREE, 0, 4)])
    whole = simulate(ev, make_policy("baseline"), 1024)
    for cut in range(1, len(ev)):
        sim = Simulation(make_policy("baseline"), 1024)
        feeder = StreamFeeder(sim)
        feeder.feed(ev[:cut])
        feeder.feed(ev[cut:])
        _same(whole, sim.finish())
    assert whole["counters"]["pgfree"] == 2  # row 1 (order 1) stays allocated
    bad = _events([(EV_ALLOC, 0, 0), (EV_ALLOC, 0, 0), (EV_FREE, 0, 3), (EV_ALLOC, 0, 0)])
    feeder = StreamFeeder(Simulation(make_policy("baseline"), 1024))
    feeder.feed(bad[:2])
    with pytest.raises(BadEventError, match="event 2:"):
        feeder.feed(bad[2:])


def test_generators_run_interpreted_too(tmp_path):
    """With NUMBA_DISABLE_JIT=1 (the interpreted baselines of the benchmarks) the same code
    runs as Python and makes the same events."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "ev.npy"
    code = ("import numpy as np; from zeroing.workloads import make_workload; "
            f"np.save({str(out)!r}, make_workload('kernel-build', 4096, seed=3, jobs=2))")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root,
                   env=dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=root))
    np.testing.assert_array_equal(np.load(out), ref.kernel_build(4096, seed=3, jobs=2))


def test_first_compile_is_announced_once(monkeypatch, capsys):
    """A cold cache: the message, once per process; a warm one: silence."""
    from zeroing import compiling
    monkeypatch.setenv(compiling.NO_HELPER_ENV, "1")
    monkeypatch.setattr(compiling, "_noticed", [])
    monkeypatch.setattr(compiling, "_cached", lambda d: False)
    assert compiling.notice_first_compile() is True
    assert compiling.notice_first_compile() is False
    assert capsys.readouterr().err.count("compiling the simulator, first run only") == 1
    monkeypatch.setattr(compiling, "_noticed", [])
    monkeypatch.setattr(compiling, "_cached", lambda d: True)
    assert compiling.notice_first_compile() is False
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("replay,args", [(False, []), (True, ["replay"])])
def test_the_compile_helper_compiles_what_the_command_needs(monkeypatch, capsys, replay, args):
    """A run's helper compiles the workload generators; a replay's its converter and lists'
    start (``make run`` waited 3 s more for a helper that compiled both)."""
    from zeroing import compiling
    monkeypatch.delenv(compiling.NO_HELPER_ENV, raising=False)
    monkeypatch.setattr(compiling, "_noticed", [])
    monkeypatch.setattr(compiling, "_cached", lambda d: False)
    monkeypatch.setattr(compiling.os, "cpu_count", lambda: 2)
    started = []

    class Helper:
        def __init__(self, argv, **kwargs):
            started.append(argv)

        def wait(self):
            pass
    monkeypatch.setattr(compiling.subprocess, "Popen", Helper)
    monkeypatch.setattr(compiling.atexit, "register", lambda f: None)
    assert compiling.notice_first_compile(replay=replay) is True
    assert [argv[1:] for argv in started] == [["-m", "zeroing.compiling"] + args]
    capsys.readouterr()
    if replay:
        compiling.warm_up_replay()  # what that helper runs


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the helper's parent-death signal (prctl) and /proc are Linux's")
def test_the_compile_helper_stops_when_its_command_is_killed(tmp_path):
    """kill -9 of a cold ``compare`` left its helper compiling for half a minute."""
    import signal
    import subprocess
    import time
    from zeroing import compiling
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = subprocess.Popen(
        [sys.executable, "-c", "import os, subprocess, sys, time\n"
         "env = dict(os.environ, ZEROING_COMPILE_PARENT=str(os.getpid()))\n"
         "h = subprocess.Popen([sys.executable, '-m', 'zeroing.compiling'], env=env)\n"
         "print(h.pid, flush=True)\ntime.sleep(60)\n"],
        cwd=root, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=root, NUMBA_CACHE_DIR=str(tmp_path)))
    helper = int(parent.stdout.readline())
    time.sleep(0.5)  # the helper is importing numba, or compiling
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            with open(f"/proc/{helper}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break  # exited; an init that does not reap keeps it a zombie
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        os.kill(helper, signal.SIGKILL)
        pytest.fail("the helper outlived its command by 10 s")
    assert compiling.PARENT_ENV == "ZEROING_COMPILE_PARENT"


@pytest.mark.parametrize("name", ["mixed", "unaware-user"])
def test_negative_length_is_refused_before_any_event(name):
    with pytest.raises(ValueError, match="events must be at least 0"):
        iter_workload(name, 4096, events=-1)
    assert len(make_workload(name, 4096, events=0)) == 0


@njit
def _pop_first(a):
    return ol_pop(a, 0)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="inspects compiled code")
def test_ordered_list_descent_is_branch_free():
    """``ol_pop``'s descent selects with ``!unpredictable`` (LLVM's x86 back end otherwise
    turns the selects back into branches that mispredict half the time) and keeps both
    candidate loads ahead of the compare (an opaque value, so they are not folded into one
    load from a selected address)."""
    ol = OrderedList(64)
    ol_append(ol.a, 7)
    assert _pop_first(ol.a) == 7
    ir = _pop_first.inspect_llvm(_pop_first.signatures[0])
    assert "!unpredictable" in ir
    assert 'asm "", "=r,0"' in ir


@pytest.mark.parametrize("name,params,idles", [
    ("vm-anon", dict(thp=False, size_mb=4, rounds=2), 3),  # boot, then after each round
    ("balloon-cycle", dict(cycles=2), 4),  # after inflating and after deflating, each cycle
])
@pytest.mark.parametrize("idle_s", [0.0, 1e-300, 1.0, 1.9, 2.5])
def test_idle_time_is_the_time_asked_for(name, params, idles, idle_s):
    # Idle time passes in 1 s ticks, the last holding what is left: 1.9 s was 1 s, 0 was 1 s.
    from zeroing.events import EV_IDLE
    ev = make_workload(name, 1 << 14, seed=0, idle_s=idle_s, **params)
    gaps = np.diff(np.concatenate([[0], ev["time"]]))[ev["op"] == EV_IDLE]
    assert gaps.sum() == idles * round(idle_s * 1e9)
    assert (gaps <= 1_000_000_000).all() and (gaps > 0).all()


def test_vm_anon_allocates_and_frees_page_tables_as_the_kernel_does():
    """The 6.18 thp64 capture: each THP fault is followed by its deposited page table
    (GFP_KERNEL_ACCOUNT | __GFP_ZERO, order 0), and munmap frees the 32 tables before the
    32 THPs. Without THP a PTE table comes before the first fault of each 2 MiB, and is freed
    after the pages."""
    from allocator.flags import GFP_PGTABLE_USER
    from zeroing.events import EV_ALLOC, EV_FAULT, EV_FREE
    from zeroing.workloads import make_workload
    for thp, faults, tables in ((True, 8, 8), (False, 4096, 8)):
        ev = make_workload("vm-anon", 1 << 16, seed=0, thp=thp, size_mb=16, rounds=1, noise=0.0)
        table = (ev["op"] == EV_ALLOC) & (ev["gfp"] == GFP_PGTABLE_USER) & (ev["order"] == 0)
        assert table.sum() == tables and (ev["op"] == EV_FAULT).sum() == faults
        first_fault = np.flatnonzero(ev["op"] == EV_FAULT)[0]
        assert np.flatnonzero(table)[0] == (first_fault + 1 if thp else first_fault - 1)
        frees = ev["ref"][ev["op"] == EV_FREE]
        freed_tables = np.flatnonzero(np.isin(frees, np.flatnonzero(table)))
        expect = np.arange(tables) if thp else np.arange(faults, faults + tables)
        assert freed_tables.tolist() == expect.tolist()
