"""Policies, the event engine, workloads, trace replay and the ``zeroing`` command."""
from allocator.jitcache import drop_unreadable_indexes

drop_unreadable_indexes(__file__)
