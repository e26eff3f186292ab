"""The model's ``struct page`` array and ``struct zone``: a namedtuple of numpy arrays.

Per page (10 bytes): ``flags`` (u8, PG_* bits), ``order`` (i8, order of a block head),
``next``/``prev`` (i32 free-list or pcp-list links; an allocated head keeps its migratetype
in ``next``). Per pageblock: ``pageblock_mt``. Everything else is per zone and small:
``pcp_state`` holds each CPU's ``struct per_cpu_pages`` numbers and ``zstate`` the zone's
NR_FREE_PAGES, flags and watermarks (columns in ``pcp.py``).
"""
from collections import namedtuple

import numpy as np

from . import core
from .flags import MIGRATE_PCPTYPES
from .handle import handle_for
from .pcp import (NR_PCP_STATE, NR_ZSTATE, PCP_FLAGS, PCP_HIGH, PCP_HIGH_MAX, PCP_HIGH_MIN,
                  PCPF_FREE_HIGH_BATCH, ZS_WMARK_HIGH, ZS_WMARK_LOW, ZS_WMARK_MIN)
from .watermarks import zone_limits

ZONE_FIELDS = (
    "flags", "order", "next", "prev", "pageblock_mt",
    "free_head", "free_tail", "nr_free", "nr_zeroed",
    "pcp_head", "pcp_tail", "pcp_count", "pcp_state",
    "conf", "stat", "zstate",
)

#: The arrays as Python sees them (and as the model runs under NUMBA_DISABLE_JIT=1).
ZoneArrays = namedtuple("ZoneArrays", ZONE_FIELDS)


def zone_ref(arrays):
    """The zone as compiled functions take it (see handle.py)."""
    return handle_for("Zone", arrays)


PER_PAGE_ARRAYS = ("flags", "order", "next", "prev")
MAX_PFNS = 2**31 - 1  # int32 links


def make_zone(nr_pages, max_order, pageblock_order, pcp, high, batch, mobility_grouping,
              nr_cpus, thp, reporting_order, pcp_auto=False, limits=None,
              free_high_batch=True):
    """Allocate the arrays; every pageblock starts Movable (Unmovable without grouping).

    ``limits`` (a ``watermarks.ZoneLimits``; computed from the zone when None) gives the
    watermarks and, with ``pcp_auto``, each CPU's high_min and high_max; with a fixed high,
    high_min = high_max = high. ``pcp->high`` starts at high_min.
    """
    if limits is None:
        limits = zone_limits(nr_pages, nr_cpus, thp, pageblock_order)
    nr_orders = max_order + 1
    nr_pageblocks = (nr_pages + (1 << pageblock_order) - 1) >> pageblock_order
    conf = np.zeros(core.NR_CONF, dtype=np.int64)
    conf[core.C_NR_PAGES] = nr_pages
    conf[core.C_MAX_ORDER] = max_order
    conf[core.C_PAGEBLOCK_ORDER] = pageblock_order
    conf[core.C_PCP] = int(pcp)
    conf[core.C_HIGH] = high
    conf[core.C_BATCH] = batch
    conf[core.C_MOBILITY] = int(mobility_grouping)
    conf[core.C_NR_CPUS] = nr_cpus
    conf[core.C_THP] = int(thp)
    conf[core.C_REPORTING_ORDER] = reporting_order
    conf[core.C_PCP_AUTO] = int(pcp_auto)
    pcp_state = np.zeros((nr_cpus, NR_PCP_STATE), dtype=np.int64)
    pcp_state[:, PCP_HIGH_MIN] = limits.high_min if pcp_auto else high
    pcp_state[:, PCP_HIGH_MAX] = limits.high_max if pcp_auto else high
    # clamp(high, high_min, high_max), as the first use leaves it
    pcp_state[:, PCP_HIGH] = np.minimum(pcp_state[:, PCP_HIGH_MIN], pcp_state[:, PCP_HIGH_MAX])
    pcp_state[:, PCP_FLAGS] = PCPF_FREE_HIGH_BATCH if free_high_batch else 0
    zstate = np.zeros(NR_ZSTATE, dtype=np.int64)
    zstate[ZS_WMARK_MIN] = limits.wmark_min
    zstate[ZS_WMARK_LOW] = limits.wmark_low
    zstate[ZS_WMARK_HIGH] = limits.wmark_high
    initial_mt = core.MIGRATE_MOVABLE if mobility_grouping else core.MIGRATE_UNMOVABLE
    # np.full, not np.zeros: numpy asks for transparent huge pages for large np.empty-based
    # arrays but not for calloc's, and random pfn accesses then cost TLB misses (measured
    # ~10-20% of bench_allocator's 16 GiB replay).
    return ZoneArrays(
        flags=np.full(nr_pages, 0, dtype=np.uint8),
        order=np.full(nr_pages, 0, dtype=np.int8),
        next=np.full(nr_pages, core.NONE, dtype=np.int32),
        prev=np.full(nr_pages, core.NONE, dtype=np.int32),
        pageblock_mt=np.full(nr_pageblocks, initial_mt, dtype=np.int8),
        free_head=np.full((nr_orders, MIGRATE_PCPTYPES), core.NONE, dtype=np.int64),
        free_tail=np.full((nr_orders, MIGRATE_PCPTYPES), core.NONE, dtype=np.int64),
        nr_free=np.zeros((nr_orders, MIGRATE_PCPTYPES), dtype=np.int64),
        nr_zeroed=np.zeros(nr_orders, dtype=np.int64),
        pcp_head=np.full((nr_cpus, core.NR_PCP_LISTS), core.NONE, dtype=np.int64),
        pcp_tail=np.full((nr_cpus, core.NR_PCP_LISTS), core.NONE, dtype=np.int64),
        pcp_count=np.zeros(nr_cpus, dtype=np.int64),
        pcp_state=pcp_state,
        conf=conf,
        stat=np.zeros(core.NR_STATS, dtype=np.int64),
        zstate=zstate,
    )


def bytes_per_page(zone):
    """Metadata bytes per pfn (per-page arrays plus the per-pageblock share)."""
    n = len(zone.flags)
    total = sum(getattr(zone, name).nbytes for name in ZONE_FIELDS)
    return total / n
