"""Zone watermarks and per-cpu list sizes, computed as 6.18 computes them at boot.

Pure integer formulas (no arrays): ``calculate_min_free_kbytes()``,
``set_recommended_min_free_kbytes()`` (mm/khugepaged.c, the THP raise),
``__setup_per_zone_wmarks()``, ``zone_batchsize()`` and ``zone_highsize()``
(``zone_set_pageset_high_and_batch()``: ``high_min`` from the low watermark, ``high_max`` from
managed pages / MIN_PERCPU_PAGELIST_HIGH_FRACTION, both split over the node's CPUs).

The model has one zone, but the formulas take the node's other lowmem zones as arguments so
that they can be checked against a real /proc/zoneinfo (tests/test_watermarks.py does, with the
6.18 capture's DMA, DMA32 and Normal zones).
"""
import math
from dataclasses import dataclass

from .flags import MIGRATE_PCPTYPES, PAGE_SHIFT, PAGE_SIZE, PAGEBLOCK_ORDER

#: mm/page_alloc.c: sysctl vm.watermark_scale_factor default (0.1% of the zone).
WATERMARK_SCALE_FACTOR = 10
#: include/linux/mmzone.h: the smallest non-zero percpu_pagelist_high_fraction; high_max uses it.
MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8
#: mm/Kconfig CONFIG_PCP_BATCH_SCALE_MAX default.
PCP_BATCH_SCALE_MAX = 5
#: Managed pages of x86-64's ZONE_DMA (the first 16 MiB, pfns 1-4095) in the 6.18 capture's
#: /proc/zoneinfo (tests/data/before_zoneinfo-6.18; jc's and node_exporter's fixtures: 3976
#: and 3973). Every x86-64 distribution kernel has it (CONFIG_ZONE_DMA), so a guest's node
#: has it beside the zone the model runs: khugepaged's raise counts it as a zone, which
#: doubles a 2 GiB guest's watermarks and pcp high_min (13977 pages against 7040 alone).
X86_64_DMA_MANAGED = 3840


def calculate_min_free_kbytes(lowmem_pages):
    """``calculate_min_free_kbytes()``: sqrt(16 * lowmem KiB), clamped to [128, 262144]."""
    lowmem_kbytes = lowmem_pages * (PAGE_SIZE >> 10)
    return min(max(math.isqrt(lowmem_kbytes * 16), 128), 262144)


def setup_per_zone_wmarks(managed_pages, lowmem_pages, min_free_kbytes,
                          watermark_scale_factor=WATERMARK_SCALE_FACTOR):
    """``__setup_per_zone_wmarks()`` for one lowmem zone: (min, low, high) in pages.

    min is the zone's share of min_free_kbytes; low and high add
    max(min / 4, managed * watermark_scale_factor / 10000) each (no watermark_boost).
    """
    pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)
    wmark_min = pages_min * managed_pages // lowmem_pages
    step = max(wmark_min >> 2, managed_pages * watermark_scale_factor // 10000)
    return wmark_min, wmark_min + step, wmark_min + 2 * step


def set_recommended_min_free_kbytes(min_free_kbytes, nr_free_buffer_pages, nr_zones=1,
                                    pageblock_order=PAGEBLOCK_ORDER):
    """``set_recommended_min_free_kbytes()`` (mm/khugepaged.c, THP enabled): raise
    min_free_kbytes to 2 + MIGRATE_PCPTYPES^2 pageblocks per lowmem zone, at most 5% of
    nr_free_buffer_pages(); never lower it."""
    pageblock_nr_pages = 1 << pageblock_order
    recommended = pageblock_nr_pages * nr_zones * 2
    recommended += pageblock_nr_pages * nr_zones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES
    recommended = min(recommended, nr_free_buffer_pages // 20)
    recommended <<= PAGE_SHIFT - 10
    return max(recommended, min_free_kbytes)


def node_watermarks(managed, thp=True, pageblock_order=PAGEBLOCK_ORDER,
                    watermark_scale_factor=WATERMARK_SCALE_FACTOR):
    """(min, low, high) per zone for a node whose lowmem zones have ``managed`` pages each
    (a list), as boot leaves them: init_per_zone_wmark_min(), then with THP khugepaged's
    raise and setup_per_zone_wmarks() again."""
    lowmem = sum(managed)
    mfk = calculate_min_free_kbytes(lowmem)
    marks = [setup_per_zone_wmarks(m, lowmem, mfk, watermark_scale_factor) for m in managed]
    if thp:
        # nr_free_buffer_pages(): managed pages above each zone's high watermark.
        free_buffer = sum(max(m - w[2], 0) for m, w in zip(managed, marks))
        nr_zones = sum(1 for m in managed if m > 0)
        mfk = set_recommended_min_free_kbytes(mfk, free_buffer, nr_zones, pageblock_order)
        marks = [setup_per_zone_wmarks(m, lowmem, mfk, watermark_scale_factor) for m in managed]
    return marks


def zone_batchsize(managed_pages):
    """``zone_batchsize()``: ~0.1% of the zone or 1 MiB, /4, then 2^n - 1 (63 for >= 1 GiB);
    at least 1 (``zone_set_pageset_high_and_batch`` takes max(1, ...))."""
    batch = min(managed_pages >> 10, (1 << 20) // PAGE_SIZE) // 4
    batch = max(batch, 1)
    batch = 1 << ((batch + batch // 2).bit_length() - 1)  # rounddown_pow_of_two
    return max(batch - 1, 1)


def zone_highsize(managed_pages, low_wmark, batch, nr_cpus, high_fraction=0):
    """``zone_highsize()``: the low watermark (high_fraction 0) or managed / high_fraction,
    split over the node's CPUs, at least batch * 4."""
    total = low_wmark if not high_fraction else managed_pages // high_fraction
    return max(total // nr_cpus, batch << 2)


@dataclass(frozen=True)
class ZoneLimits:
    """What boot leaves in ``struct zone`` and its per-cpu pagesets for the modelled zone."""

    wmark_min: int
    wmark_low: int
    wmark_high: int
    batch: int
    high_min: int
    high_max: int


def zone_limits(managed_pages, nr_cpus=1, thp=True, pageblock_order=PAGEBLOCK_ORDER,
                watermark_scale_factor=WATERMARK_SCALE_FACTOR, percpu_pagelist_high_fraction=0,
                batch=None, other_zones=()):
    """Watermarks, batch and pcp high limits of the modelled zone, in a node whose other
    lowmem zones manage ``other_zones`` pages each (none: a node of this one zone). The
    node's zones share min_free_kbytes by their size, and khugepaged's raise counts them
    (e.g. a 24 GiB x86-64 guest's DMA and DMA32 beside Normal: its Normal watermarks
    14769/20163/25557 against 5632/11026/16420 alone). ``batch``: a pcp batch other than
    ``zone_batchsize()``'s (the high limits follow it, as zone_highsize() keeps them at least
    4 batches).

    ``zone_set_pageset_high_and_batch()``: with percpu_pagelist_high_fraction set, high_min =
    high_max = the fraction's size (auto-tuning off); else high_min from the low watermark and
    high_max from managed / MIN_PERCPU_PAGELIST_HIGH_FRACTION.
    """
    (wmin, wlow, whigh), *_ = node_watermarks([managed_pages, *other_zones], thp,
                                              pageblock_order, watermark_scale_factor)
    batch = zone_batchsize(managed_pages) if batch is None else batch
    if percpu_pagelist_high_fraction:
        high_min = zone_highsize(managed_pages, wlow, batch, nr_cpus,
                                 percpu_pagelist_high_fraction)
        high_max = high_min
    else:
        high_min = zone_highsize(managed_pages, wlow, batch, nr_cpus, 0)
        high_max = zone_highsize(managed_pages, wlow, batch, nr_cpus,
                                 MIN_PERCPU_PAGELIST_HIGH_FRACTION)
    return ZoneLimits(wmin, wlow, whigh, batch, high_min, high_max)
