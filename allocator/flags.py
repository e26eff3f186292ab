"""Constants shared by the allocator model: FPI flags, page flags, migratetypes, GFP bits.

Values follow include/linux/gfp_types.h, include/linux/mmzone.h and mm/page_alloc.c of 6.18.
"""
import enum

import numpy as np


class FPI(enum.IntFlag):
    """Free Page Internal flags (``fpi_t`` in mm/page_alloc.c).

    No code should rely on these flags for correctness, except ZEROED, which is a promise by a
    trusted caller: a block freed with it is zero in every byte.
    """

    NONE = 0
    #: Skip free page reporting notification (``page_reporting_notify_free``).
    SKIP_REPORT_NOTIFY = 1 << 0
    #: Place the freed block at the tail of its free list (consumed last).
    TO_TAIL = 1 << 1
    #: Kernel-internal (no zone lock); accepted and ignored by the model.
    NOLOCK = 1 << 2
    #: Kernel-internal (page already prepared); accepted and ignored by the model.
    PREPARED = 1 << 3
    #: The block is known to be zero (the PG_zeroed series, "New design" June 2026).
    ZEROED = 1 << 4


FPI_ALL = int(FPI.SKIP_REPORT_NOTIFY | FPI.TO_TAIL | FPI.NOLOCK | FPI.PREPARED | FPI.ZEROED)

# Page flags of the model's struct page (one byte per pfn). Only block heads carry flags.
PG_BUDDY = 1 << 0  # head of a free block on a buddy free list
PG_ZEROED = 1 << 1  # free (buddy or pcp) block known to be zero
PG_REPORTED = 1 << 2  # free block reported to the host and not merged since
PG_PCP = 1 << 3  # head of a block sitting on a per-cpu list
PG_ALLOC = 1 << 4  # head of an allocated block (simulator-only: the kernel uses refcounts)
PG_HINT = 1 << 5  # allocated block: the zeroed hint read at allocation (page_is_zeroed)
PG_ISOLATED = 1 << 6  # head of a block taken off the lists by __isolate_free_page


class MigrateType(enum.IntEnum):
    """Migratetypes that have free lists in the model (MIGRATE_PCPTYPES of them)."""

    UNMOVABLE = 0
    MOVABLE = 1
    RECLAIMABLE = 2


MIGRATE_PCPTYPES = 3
MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable")

#: fallbacks[migratetype]: free lists to steal from, in order (mm/page_alloc.c ``fallbacks``).
FALLBACKS = np.array([[2, 1], [2, 0], [0, 1]], dtype=np.int8)

PAGE_ALLOC_COSTLY_ORDER = 3
#: pageblock_order of x86-64 with 4 KiB pages (HPAGE_PMD_ORDER): the order of THPs and of
#: migratetype grouping; the default of the model's zones.
PAGEBLOCK_ORDER = 9
#: The order of an anonymous PMD-mapped THP (x86-64, 4 KiB pages; mTHPs are smaller).
HPAGE_PMD_ORDER = 9
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
#: MAX_PHYSMEM_BITS of x86-64 with 5-level paging (52): no pfn is 2^40 or above.
MAX_PFN_BITS = 52 - PAGE_SHIFT

# GFP bits (6.18; the table is also in shared/testdata/trace-6.18/formats/mm_page_alloc.format).
GFP_BITS = {
    "__GFP_DMA": 1 << 0,
    "__GFP_HIGHMEM": 1 << 1,
    "__GFP_DMA32": 1 << 2,
    "__GFP_MOVABLE": 1 << 3,
    "__GFP_RECLAIMABLE": 1 << 4,
    "__GFP_HIGH": 1 << 5,
    "__GFP_IO": 1 << 6,
    "__GFP_FS": 1 << 7,
    "__GFP_ZERO": 1 << 8,
    "__GFP_DIRECT_RECLAIM": 1 << 10,
    "__GFP_KSWAPD_RECLAIM": 1 << 11,
    "__GFP_WRITE": 1 << 12,
    "__GFP_NOWARN": 1 << 13,
    "__GFP_RETRY_MAYFAIL": 1 << 14,
    "__GFP_NOFAIL": 1 << 15,
    "__GFP_NORETRY": 1 << 16,
    "__GFP_MEMALLOC": 1 << 17,
    "__GFP_COMP": 1 << 18,
    "__GFP_NOMEMALLOC": 1 << 19,
    "__GFP_HARDWALL": 1 << 20,
    "__GFP_THISNODE": 1 << 21,
    "__GFP_ACCOUNT": 1 << 22,
    "__GFP_ZEROTAGS": 1 << 23,
    "__GFP_NO_OBJ_EXT": 1 << 24,
}
__GFP_MOVABLE = GFP_BITS["__GFP_MOVABLE"]
__GFP_RECLAIMABLE = GFP_BITS["__GFP_RECLAIMABLE"]
__GFP_ZERO = GFP_BITS["__GFP_ZERO"]
GFP_MOVABLE_MASK = __GFP_MOVABLE | __GFP_RECLAIMABLE
GFP_MOVABLE_SHIFT = 3

_RECLAIM = GFP_BITS["__GFP_DIRECT_RECLAIM"] | GFP_BITS["__GFP_KSWAPD_RECLAIM"]
GFP_KERNEL = _RECLAIM | GFP_BITS["__GFP_IO"] | GFP_BITS["__GFP_FS"]
GFP_USER = GFP_KERNEL | GFP_BITS["__GFP_HARDWALL"]
GFP_HIGHUSER = GFP_USER | GFP_BITS["__GFP_HIGHMEM"]
GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE
GFP_TRANSHUGE_LIGHT = (
    GFP_HIGHUSER_MOVABLE | GFP_BITS["__GFP_COMP"] | GFP_BITS["__GFP_NOMEMALLOC"]
    | GFP_BITS["__GFP_NOWARN"]
) & ~_RECLAIM
GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT | GFP_BITS["__GFP_DIRECT_RECLAIM"]
#: A user page table's page (``pte_alloc_one()``: GFP_PGTABLE_KERNEL | __GFP_ACCOUNT).
GFP_PGTABLE_USER = GFP_KERNEL | GFP_BITS["__GFP_ACCOUNT"] | GFP_BITS["__GFP_ZERO"]

#: Composite names as the 6.18 tracepoint prints them, composites first (``show_gfp_flags``).
GFP_NAMES = {
    "GFP_TRANSHUGE": GFP_TRANSHUGE,
    "GFP_TRANSHUGE_LIGHT": GFP_TRANSHUGE_LIGHT,
    "GFP_HIGHUSER_MOVABLE": GFP_HIGHUSER_MOVABLE,
    "GFP_HIGHUSER": GFP_HIGHUSER,
    "GFP_USER": GFP_USER,
    "GFP_KERNEL_ACCOUNT": GFP_KERNEL | GFP_BITS["__GFP_ACCOUNT"],
    "GFP_KERNEL": GFP_KERNEL,
    "GFP_NOFS": _RECLAIM | GFP_BITS["__GFP_IO"],
    "GFP_ATOMIC": GFP_BITS["__GFP_HIGH"] | GFP_BITS["__GFP_KSWAPD_RECLAIM"],
    "GFP_NOIO": _RECLAIM,
    "GFP_NOWAIT": GFP_BITS["__GFP_KSWAPD_RECLAIM"] | GFP_BITS["__GFP_NOWARN"],
    "GFP_DMA": GFP_BITS["__GFP_DMA"],
    "GFP_DMA32": GFP_BITS["__GFP_DMA32"],
    "__GFP_RECLAIM": _RECLAIM,
    **GFP_BITS,
}


def gfp_migratetype(gfp, mobility_grouping=True):
    """The free list an allocation with these GFP flags comes from (``gfp_migratetype()``).

    >>> gfp_migratetype(GFP_HIGHUSER_MOVABLE)
    <MigrateType.MOVABLE: 1>
    """
    if (gfp & GFP_MOVABLE_MASK) == GFP_MOVABLE_MASK:
        raise ValueError(f"gfp {gfp:#x} has both __GFP_MOVABLE and __GFP_RECLAIMABLE")
    if not mobility_grouping:
        return MigrateType.UNMOVABLE
    return MigrateType((gfp & GFP_MOVABLE_MASK) >> GFP_MOVABLE_SHIFT)
