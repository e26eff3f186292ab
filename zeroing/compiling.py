"""The first run compiles the simulator (numba; cached beside the sources afterwards).

``notice_first_compile()`` runs before the engine is first compiled: when the cache does not
hold it, it says what the wait is for, and starts a helper process that compiles the workload
generators and the invariant checks meanwhile (for a replay: its converter and per-cpu lists'
start), so both cores of a small machine compile at once (the engine is most of the work and stays in this process). The helper only fills the
cache: whatever it has not finished, this process compiles itself when it needs it.
Measured (2 cores shared with other work, CPU seconds): ``make run``'s compiling and running
took 24 s in one process, of which the engine 14-17 s; with the helper, 20 s in the main
process. Since calls between compiled functions no longer specialise on constants
(``allocator/specialize.py``), a cold ``zeroing run`` takes 17-18 s on 2 cores, 15.5 s of it
the engine.
"""
import atexit
import importlib
import os
import subprocess
import sys

MESSAGE = "compiling the simulator, first run only (about 20 s; cached afterwards) ..."
#: Set (to anything) to compile everything in this process.
NO_HELPER_ENV = "ZEROING_NO_COMPILE_HELPER"
#: The helper's command's pid (``stop_with_parent``).
PARENT_ENV = "ZEROING_COMPILE_PARENT"
_noticed = []


def _cached(dispatcher):
    """Whether numba's on-disk cache has an index for this function (it may still miss a
    signature, but then most of the work is in the cache already)."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    path = getattr(cache_file, "_index_path", None)
    return path is None or os.path.exists(path)


def _engine():
    from .engine import offload_retire, run_events
    from .trace_scan import _scan
    return [run_events, offload_retire, _scan]


def _generators():
    mods = [importlib.import_module(f"zeroing.workloads.{m}") for m in ("mixed", "scenarios",
                                                                          "unaware")]
    return [getattr(m, name) for m in mods for name in dir(m)
            if name.startswith("_") and name.endswith("fill")]


def _replay_parts():
    from .convert import convert, settle
    from .pcp_start import _pageblock_migratetypes, _witness
    return [convert, settle, _pageblock_migratetypes, _witness]


def warm_up_replay():
    """Compile what a replay needs besides the engine and the reader (which it runs first):
    its converter and its per-cpu lists' start."""
    import numpy as np

    from .pcp_start import TraceLists
    from .replay import TraceConverter
    from .trace import column_blocks
    blocks = list(column_blocks([(1, "mm_page_alloc", 1, 0, 0, 0, 0, 1, -1),
                                 (2, "mm_page_free", 1, 0, 0, 0, 1, -1, -1)]))
    conv = TraceConverter("requests", trace_clock=True)
    for chunk in conv.chunks(blocks, 1):
        conv.settle(np.zeros(len(chunk), np.int64))
    TraceLists.from_columns(lambda: blocks, lambda order, mt: 0)


def warm_up():
    """Compile (into the cache) what a run needs besides the engine: every workload
    generator, the allocator's checks and views used at the end of a run, the numba
    clearing backend, and a replay's compiled reader."""
    from allocator import BuddyAllocator
    from .workloads import WORKLOADS, make_workload
    for name in ("vm-anon", "mixed", "page-cache-churn", "balloon-cycle", "unaware-user",
                 "kernel-build"):  # make run's first
        assert name in WORKLOADS
        small = {"events": 10} if name in ("mixed", "unaware-user") else {}
        make_workload(name, 1024, seed=0, **small)
    a = BuddyAllocator(1024)
    a.check()
    a.buddyinfo()
    a.zeroed_info()
    import numpy as np

    from kernels import get_backend
    from kernels.batch import CLEAR
    numba_backend = get_backend("numba")  # content mode, and make run's throughput plot
    numba_backend.apply(numba_backend.alloc_pool(4), np.full(1, CLEAR, np.uint8),
                        np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64))
    from .trace_scan import scan
    scan(b"  a-1 [000] ..... 1.0: mm_page_free: page=0 pfn=0x1 order=0\n")  # replay's reader


def _no_helper():
    """``ZEROING_NO_COMPILE_HELPER`` (1/on/true/yes: compile on one core only), checked."""
    from kernels import env_switch
    from .validate import UserError
    try:
        return env_switch(NO_HELPER_ENV, False)
    except ValueError as e:
        raise UserError(str(e)) from None


def notice_first_compile(stream=None, replay=False):
    """Say so (once per process) when the engine is not compiled yet; returns True then.
    ``replay``: the helper compiles a replay's parts (``warm_up_replay``), not a run's."""
    if _noticed:
        return False
    _noticed.append(True)
    if all(_cached(d) for d in _engine()):
        return False
    print(MESSAGE, file=stream or sys.stderr, flush=True)
    if (os.cpu_count() or 1) > 1 and not _no_helper() and \
            not all(_cached(d) for d in (_replay_parts() if replay else _generators())):
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        env[PARENT_ENV] = str(os.getpid())
        helper = subprocess.Popen([sys.executable, "-m", "zeroing.compiling"]
                                  + (["replay"] if replay else []), cwd=root, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        atexit.register(helper.wait)  # never leave it behind
    return True


def stop_with_parent(parent):
    """The helper stops when the command that started it (pid ``parent``) is gone, killed
    or not: it only fills the cache, and an orphan kept a core busy for half a minute."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal
        PR_SET_PDEATHSIG = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # gone before the line above took effect
        sys.exit(0)


if __name__ == "__main__":
    if os.environ.get(PARENT_ENV, "").isdigit():
        stop_with_parent(int(os.environ[PARENT_ENV]))
    warm_up_replay() if sys.argv[1:] == ["replay"] else warm_up()
