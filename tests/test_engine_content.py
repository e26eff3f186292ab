"""Content mode (real bytes through a backend) against metadata mode, faults, offload."""
import os
import subprocess
import sys

import pytest

from allocator import FPI, BuddyAllocator
from kernels.batch import PAGE_WORDS
from zeroing.policy import make_policy
from zeroing.run import simulate
from zeroing.workloads import make_workload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = 4096
VOLATILE = ("wall_s", "events_per_s", "backend", "mode")


def counters(result):
    return {k: v for k, v in result["counters"].items() if k not in VOLATILE}


CASES = [
    ("mixed", "init_on_free,pg_zeroed,balloon,reporting", {}),
    ("mixed", "offload,reporting", {"offload_batch_pages": 512, "offload_period_ns": 2_000_000}),
    ("unaware-user", "balloon", {"hint": "folio_flag", "free_signal": "page_bit"}),
]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("workload,policy,options", CASES)
def test_content_mode_matches_metadata(workload, policy, options, backend):
    ev = make_workload(workload, PAGES, 6000, seed=4)
    pol = make_policy(policy, **options)
    meta = simulate(ev, pol, PAGES)
    content = simulate(ev, pol, PAGES, mode="content", backend=backend)
    assert counters(meta) == counters(content)
    assert meta["cost"] == content["cost"]  # time is charged by the model, not the backend
    assert meta["leaks"] == content["leaks"]
    assert content["backend"]["launches"] >= 1
    if workload == "unaware-user":
        assert meta["counters"]["zero_leak"] > 0  # the comparison covers real leaks too
    if "offload" in policy:
        assert meta["counters"]["zero_offload"] > 0


class FailOnce:
    """Wraps a backend; its second batch raises (a device fault injected by the test)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def apply(self, pool, *batch):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("injected device fault")
        return self.inner.apply(pool, *batch)


def test_backend_fault_falls_back_and_marks_nothing_falsely_zeroed():
    ev = make_workload("mixed", PAGES, 6000, seed=4)
    pol = make_policy("offload", offload_batch_pages=256, offload_period_ns=1_000_000)
    # Fixed pcp high: with auto-tuning, the lost batch shifts later pcp sizing and the two
    # runs' offload totals can differ either way; with a fixed high only the lost clears do.
    clean = simulate(ev, pol, PAGES, mode="content", backend="numba", pcp_high="fixed")
    with pytest.warns(RuntimeWarning, match="injected device fault"):
        faulty = simulate(ev, pol, PAGES, mode="content", backend="numba", fault=FailOnce,
                          pcp_high="fixed")
    assert faulty["backend"]["fallbacks"] == 1
    assert faulty["counters"]["zero_leak"] == 0
    assert faulty["counters"]["zero_offload"] < clean["counters"]["zero_offload"]


class Async:
    """Wraps a backend in the GPU backends' ``submit``/``collect`` (the work done at submit),
    asking for batches of BATCH_PAGES pages as the CuPy backend does."""

    BATCH_PAGES = 256

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def submit(self, pool, *batch):
        return self.inner.apply(pool, *batch)

    def collect(self, handle):
        return handle


def test_backend_asking_for_batches_by_pages_gets_them_with_the_same_counters():
    """A backend that names BATCH_PAGES gets a batch once its commands cover that many
    pages, not only when the buffer is full: more, smaller batches, and the same counters
    and leaks as metadata mode."""
    ev = make_workload("mixed", PAGES, 6000, seed=4)
    pol = make_policy("init_on_free,pg_zeroed,reporting")
    meta = simulate(ev, pol, PAGES)
    sync = simulate(ev, pol, PAGES, mode="content", backend="numba")
    by_pages = simulate(ev, pol, PAGES, mode="content", backend="numba", fault=Async)
    assert counters(meta) == counters(by_pages) and meta["leaks"] == by_pages["leaks"]
    b, s = by_pages["backend"], sync["backend"]
    assert b["launches"] > 4 * s["launches"], (b, s)
    assert b["pages_per_launch"] < s["pages_per_launch"] / 4


class Deferred(Async):
    """A backend that reads its batch only when collected, as a device that is still busy
    would: the rows it was handed must stay as they were while the engine goes on."""

    def submit(self, pool, *batch):
        return pool, batch

    def collect(self, handle):
        pool, batch = handle
        return self.inner.apply(pool, *batch)


def test_rows_of_the_batch_in_flight_are_kept_while_the_engine_refills_its_buffer():
    """While a batch handed to a backend with ``submit`` is in flight, the engine emits into
    its other command buffer: the backend may read the rows as late as their collection."""
    ev = make_workload("mixed", PAGES, 6000, seed=5)
    pol = make_policy("init_on_free,pg_zeroed,reporting")
    meta = simulate(ev, pol, PAGES)
    late = simulate(ev, pol, PAGES, mode="content", backend="numba", fault=Deferred)
    assert late["backend"]["launches"] > 4
    assert counters(meta) == counters(late) and meta["leaks"] == late["leaks"]


class Recording(Async):
    """Keeps the pfn column of every batch it is handed."""

    def __init__(self, inner):
        super().__init__(inner)
        self.seen = []

    def submit(self, pool, *batch):
        self.seen.append(batch[1])
        return super().submit(pool, *batch)


def test_batches_in_flight_are_the_engines_two_command_buffers_in_turn_not_copies():
    """Double buffering without copies: each batch handed to ``submit`` is a view of one of
    the engine's two command buffers, the other one than the batch before."""
    ev = make_workload("mixed", PAGES, 6000, seed=5)
    wrapped = []
    simulate(ev, make_policy("init_on_free,pg_zeroed,reporting"), PAGES, mode="content",
             backend="numba", fault=lambda b: wrapped.append(Recording(b)) or wrapped[-1])
    bases = [pfn.base for pfn in wrapped[0].seen]
    assert len(bases) > 4 and all(b is not None for b in bases)
    assert len({id(b) for b in bases}) == 2
    assert all(bases[k] is bases[k + 2] and bases[k] is not bases[k + 1]
               for k in range(len(bases) - 2))


def test_offload_and_reporting_leave_only_true_zeroes_flagged():
    """After a content run, every free block carrying PG_zeroed is zero in the real pool."""
    from zeroing import run as runmod
    ev = make_workload("mixed", PAGES, 8000, seed=6)
    pol = make_policy("offload,reporting,balloon", offload_batch_pages=512,
                      offload_period_ns=1_000_000)
    captured = {}
    original = runmod.EngineState.flush

    def spy(self, *args, **kwargs):
        captured["state"] = self
        return original(self, *args, **kwargs)

    runmod.EngineState.flush = spy
    try:
        res = simulate(ev, pol, PAGES, mode="content", backend="numpy")
    finally:
        runmod.EngineState.flush = original
    state = captured["state"]
    pool = state.backend.to_host(state.pool).reshape(-1, PAGE_WORDS)
    assert res["counters"]["zero_offload"] > 0 and sum(res["zeroedinfo"]) > 0
    truth = state.arrays.truth
    zero_pages = ~pool.any(axis=1)
    assert (zero_pages == truth.astype(bool)).all()  # ground truth agrees with the bytes


def test_zeroed_aware_placement_prefers_by_state():
    a = BuddyAllocator(1 << 11, pcp=False, mobility_grouping=False)
    pfns = [a.alloc(0) for _ in range(6)]
    a.free(pfns[1], 0, FPI.ZEROED)  # buddies allocated: each stays an order-0 free block
    a.free(pfns[3], 0)
    a.free(pfns[5], 0)  # 6-7 is free: buddy_merge_likely puts 5 at the tail
    assert [int(a.zone.free_head[0, 0]), int(a.zone.free_tail[0, 0])] == [pfns[3], pfns[5]]
    assert a.alloc(0, prefer_zeroed=True) == pfns[1]  # not the head
    assert a.alloc(0, prefer_zeroed=False) == pfns[3]
    assert a.alloc(0) == pfns[5]
    a.check()


SIM = """
import sys, json
sys.path.insert(0, {root!r})
from zeroing.policy import make_policy
from zeroing.run import simulate
from zeroing.workloads import make_workload
ev = make_workload("mixed", 256, 150, seed=2)
pol = make_policy("init_on_free,pg_zeroed")
out = []
for mode in ("metadata", "content"):
    c = simulate(ev, pol, 256, mode=mode, backend="cuda")["counters"]
    out.append({{k: v for k, v in c.items() if k not in ("wall_s", "events_per_s", "backend", "mode")}})
print(json.dumps(out))
"""


def test_cuda_content_mode_under_simulator():
    import json
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    p = subprocess.run([sys.executable, "-c", SIM.format(root=ROOT)], env=env,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    meta, content = json.loads(p.stdout.strip().splitlines()[-1])
    assert meta == content and meta["zero_checked"] > 0


@pytest.mark.gpu
@pytest.mark.parametrize("workload,policy,options", CASES)
def test_cupy_content_mode_matches_metadata(workload, policy, options):
    """On a real GPU: the device scheme (double-buffered submit/collect) gives the counters
    and leak records of metadata mode."""
    from kernels import get_backend
    try:
        get_backend("cupy")
    except RuntimeError as e:
        pytest.skip(f"NO GPU: CuPy content mode not tested on this machine ({e})")
    ev = make_workload(workload, PAGES, 6000, seed=4)
    pol = make_policy(policy, **options)
    meta = simulate(ev, pol, PAGES)
    content = simulate(ev, pol, PAGES, mode="content", backend="cupy")
    assert counters(meta) == counters(content)
    assert meta["leaks"] == content["leaks"]
