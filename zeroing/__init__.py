"""Policies, the event engine, workloads, trace replay and the ``zeroing`` command."""
import os

import allocator
import kernels
from allocator.jitcache import drop_stale_indexes, drop_unreadable_indexes

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
