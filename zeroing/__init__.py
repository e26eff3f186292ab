"""Policies, the event engine, workloads, trace replay and the ``zeroing`` command."""
import os
import sys


def _one_line_interrupt_while_loading():
    """The ``zeroing`` command: a Ctrl-C while its modules load (numba: seconds) is one line,
    as one later is (``cli.main``), not a traceback; the exit is the interrupt's as before.
    Only for that command: a program that imports the package keeps its own hook."""
    argv = getattr(sys, "orig_argv", ())  # python -m zeroing: sys.argv[0] is "-m" here
    if os.path.basename(sys.argv[0]) != "zeroing" and not any(
            a == "-m" and b == "zeroing" for a, b in zip(argv, argv[1:])):
        return
    previous = sys.excepthook

    def hook(kind, value, traceback):
        if issubclass(kind, KeyboardInterrupt):
            print("zeroing: interrupted", file=sys.stderr)
        else:
            previous(kind, value, traceback)
    sys.excepthook = hook


_one_line_interrupt_while_loading()

import allocator  # noqa: E402
import kernels  # noqa: E402
from allocator.jitcache import drop_stale_indexes, drop_unreadable_indexes  # noqa: E402

#: The workload generators' package: its compiled functions embed gen.py's and pcg64.py's
#: helpers, the borrowed handles' types (allocator) and the event codes (zeroing).
WORKLOADS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads", "__init__.py")

# Each package's caches against the sources its compiled code embeds: the engine's loop the
# allocator's and the kernels'; the kernels' their own stores.py and batch.py (the kernels
# import nothing of the allocator's, so their caches are checked from here).
for package, depends_on in ((__file__, (allocator.__file__, kernels.__file__)),
                            (kernels.__file__, ()),
                            (WORKLOADS, (__file__, allocator.__file__))):
    drop_unreadable_indexes(package)
    drop_stale_indexes(package, depends_on)
