"""A model of one zone of the Linux page allocator that tracks PG_zeroed free blocks."""
from .buddy import BadPageError, BuddyAllocator, InvariantError
from .bulk import (OP_ALLOC, OP_ALLOC_PFN, OP_DRAIN, OP_DTYPE, OP_FREE, OP_FREE_REF,
                   OP_ISOLATE, OP_PUTBACK)
from .flags import FPI, GFP_HIGHUSER_MOVABLE, GFP_KERNEL, MigrateType, gfp_migratetype
from .format import format_buddyinfo, format_zeroedinfo
from .jitcache import drop_stale_indexes, drop_unreadable_indexes
from .specialize import widen_call_types

drop_unreadable_indexes(__file__)
drop_stale_indexes(__file__)
widen_call_types()  # compiling happens at first call, after this

__all__ = [
    "BuddyAllocator", "BadPageError", "InvariantError", "FPI", "MigrateType",
    "gfp_migratetype", "GFP_HIGHUSER_MOVABLE", "GFP_KERNEL", "OP_DTYPE", "OP_ALLOC",
    "OP_FREE", "OP_FREE_REF", "OP_ALLOC_PFN", "OP_ISOLATE", "OP_PUTBACK", "OP_DRAIN",
    "format_buddyinfo", "format_zeroedinfo",
]
