"""Policies, the event engine, workloads, trace replay and the ``zeroing`` command."""
import allocator
import kernels
from allocator.jitcache import drop_stale_indexes, drop_unreadable_indexes

drop_unreadable_indexes(__file__)
# The engine's compiled loop embeds the allocator's and the kernels' compiled functions.
drop_stale_indexes(__file__, (allocator.__file__, kernels.__file__))
# The kernels' compiled functions embed stores.py's intrinsics and batch.py's constants; the
# kernels package imports nothing of the allocator's, so its caches are checked from here.
drop_unreadable_indexes(kernels.__file__)
drop_stale_indexes(kernels.__file__)
