"""``BuddyAllocator``: the per-call Python API over the compiled zone model."""

import operator

import numpy as np

from . import bulk, core
from .check import CHECKS, check_zone
from .flags import (FPI, FPI_ALL, GFP_HIGHUSER_MOVABLE, MIGRATE_PCPTYPES, MIGRATETYPE_NAMES,
                    PAGEBLOCK_ORDER, PG_ALLOC)
from .pcp import PCP_HIGH, PCP_HIGH_MAX, PCP_HIGH_MIN, ZS_WMARK_HIGH, ZS_WMARK_LOW, ZS_WMARK_MIN
from .state import MAX_PFNS, ZoneArrays, bytes_per_page, make_zone, zone_ref
from .watermarks import zone_batchsize, zone_highsize, zone_limits

# Kernel names with two leading underscores would be name-mangled inside the class body.
isolate_free_page = core.__isolate_free_page
putback_isolated_page = core.__putback_isolated_page

ERRORS = {
    core.E_RANGE: "pfn out of range",
    core.E_UNALIGNED: "pfn not aligned to the block order",
    core.E_DOUBLE_FREE: "double free: the block is already free",
    core.E_NOT_ALLOCATED: "not the head of an allocated block",
    core.E_WRONG_ORDER: "freed with a different order than allocated",
    core.E_BAD_ORDER: "order out of range",
    core.E_BAD_GFP: "gfp has both __GFP_MOVABLE and __GFP_RECLAIMABLE",
    core.E_NOT_FREE: "not the head of a free block of that order",
    core.E_NOT_ISOLATED: "not the head of an isolated block of that order",
    core.E_BAD_CPU: "cpu out of range",
    core.E_BAD_OP: "unknown operation",
    core.E_BAD_REF: "reference to a row that is not an earlier allocation",
}


class BadPageError(ValueError):
    """Misuse of the allocator, reported like the kernel's ``bad_page()``."""

    def __init__(self, pfn, code, what=""):
        self.pfn = pfn
        self.code = code
        reason = ERRORS.get(code, f"error {code}")
        super().__init__(f"bad page: pfn {pfn:#x}: {reason}{': ' + what if what else ''}")


class InvariantError(AssertionError):
    """``check()`` found the model in a state the kernel could never be in."""


#: MAX_PAGE_ORDER of x86-64 (include/linux/mmzone.h, no ARCH_FORCE_MAX_ORDER): the zone's
#: default largest block, and the largest order a trace may name.
MAX_PAGE_ORDER = 10
#: The largest NR_CPUS a kernel can be built with (x86 MAXSMP): a traced CPU must be below it.
MAX_CPUS = 8192


class BuddyAllocator:
    """One zone of the Linux page allocator, with the PG_zeroed hint.

    >>> a = BuddyAllocator(1 << 12, pcp=False, mobility_grouping=False)
    >>> a.alloc(0)
    0
    >>> a.page_is_zeroed(0)
    False
    """

    def __init__(self, nr_pages, max_order=MAX_PAGE_ORDER, pcp=True, mobility_grouping=True, *,
                 pageblock_order=None, pcp_high=None, pcp_batch=None, nr_cpus=1, thp=True,
                 page_reporting_order=None, lenient=False, free_high_batch=True,
                 other_zones=()):
        """``pcp_high``: "auto" (default, None too: 6.7+ auto-tuning between high_min and
        high_max), "fixed" (the low watermark without THP's raise split over the CPUs, the
        model's rule before auto-tuning), or a number of pages (fixed at that).
        ``free_high_batch``: PCPF_FREE_HIGH_BATCH (the CPU's LLC share exceeds 3 * batch).
        ``other_zones``: managed pages of the node's other lowmem zones (e.g. DMA32 and DMA
        beside Normal, from /proc/zoneinfo), which the watermarks and pcp limits depend on;
        none: a node of this one zone."""
        if pcp not in (True, False):  # "no" was an int() error from deep inside, 2 taken
            raise TypeError(f"pcp {pcp!r}: True (per-cpu lists) or False")
        other_zones = tuple(operator.index(m) for m in other_zones)
        if any(m < 0 for m in other_zones):
            raise ValueError(f"other_zones {other_zones}: managed pages are not negative")
        try:  # an integer of any kind (numpy's too); a float is refused, not truncated
            nr_pages, max_order, nr_cpus = map(operator.index, (nr_pages, max_order, nr_cpus))
        except TypeError:
            raise TypeError(f"nr_pages {nr_pages!r}, max_order {max_order!r} and nr_cpus "
                            f"{nr_cpus!r} must be integers") from None
        if not 0 <= max_order <= 20:
            raise ValueError(f"max_order {max_order} is not in 0..20")
        if not 1 <= nr_pages <= MAX_PFNS:
            raise ValueError(f"nr_pages {nr_pages} is not in 1..{MAX_PFNS}")
        if pageblock_order is None:
            pageblock_order = min(PAGEBLOCK_ORDER, max_order)
        if not 0 <= pageblock_order <= max_order:
            raise ValueError(f"pageblock_order {pageblock_order} is not in 0..max_order")
        if not 1 <= nr_cpus <= MAX_CPUS:
            raise ValueError(f"nr_cpus {nr_cpus} is not in 1..{MAX_CPUS}")
        batch = zone_batchsize(nr_pages) if pcp_batch is None else pcp_batch
        pcp_auto = pcp_high is None or pcp_high == "auto"
        if pcp_auto or pcp_high == "fixed":
            # The fixed rule: the low watermark without THP's raise, split over the CPUs.
            low = zone_limits(nr_pages, nr_cpus, False, pageblock_order,
                              other_zones=other_zones).wmark_low
            high = zone_highsize(nr_pages, low, batch, nr_cpus)
        elif isinstance(pcp_high, str):
            raise ValueError(f"pcp_high {pcp_high!r}: choose auto, fixed or a number of pages")
        else:
            high = int(pcp_high)
        if batch < 1 or high < 1:
            raise ValueError(f"pcp batch {batch} and high {high} must be positive")
        if page_reporting_order is None:
            page_reporting_order = pageblock_order
        if not 0 <= page_reporting_order <= max_order:
            raise ValueError(f"page_reporting_order {page_reporting_order} is not in "
                             "0..max_order")
        self.lenient = lenient
        #: The zone's arrays (read them freely; change them only through the API).
        limits = zone_limits(nr_pages, nr_cpus, thp, pageblock_order, batch=batch,
                             other_zones=other_zones)
        self.zone = make_zone(nr_pages, max_order, pageblock_order, pcp, high, batch,
                              mobility_grouping, nr_cpus, thp, page_reporting_order,
                              pcp_auto, limits, free_high_batch)
        #: The same arrays as compiled code takes them.
        self.z = zone_ref(self.zone)
        core.boot_free(self.z)
        self.zone.stat[:] = 0

    # -- properties ------------------------------------------------------------------------
    nr_pages = property(lambda self: int(self.zone.conf[core.C_NR_PAGES]))
    max_order = property(lambda self: int(self.zone.conf[core.C_MAX_ORDER]))
    pageblock_order = property(lambda self: int(self.zone.conf[core.C_PAGEBLOCK_ORDER]))
    pcp_batch = property(lambda self: int(self.zone.conf[core.C_BATCH]))
    pcp_auto = property(lambda self: bool(self.zone.conf[core.C_PCP_AUTO]))

    @property
    def pcp_high(self):
        """CPU 0's ``pcp->high`` now (auto-tuned: it moves between high_min and high_max)."""
        return int(self.zone.pcp_state[0, PCP_HIGH])

    @staticmethod
    def _int(name, value):
        """``value`` as an int (an integer type, not a float or a string), or TypeError."""
        try:
            return operator.index(value)
        except TypeError:
            raise TypeError(f"{name} {value!r} must be an integer") from None

    def _cpus(self, cpu):
        """``[cpu]`` checked against the zone's CPUs (compiled code would index past its
        arrays), or every CPU for None."""
        nr_cpus = self.zone.pcp_count.shape[0]
        if cpu is None:
            return range(nr_cpus)
        cpu = self._int("cpu", cpu)
        if not 0 <= cpu < nr_cpus:
            raise ValueError(f"cpu {cpu} is not in 0..{nr_cpus - 1} (the zone's CPUs)")
        return [cpu]

    def pcp_info(self, cpu=0):
        """One CPU's pageset as /proc/zoneinfo prints it: count, high, batch, high_min,
        high_max."""
        cpu, = self._cpus(self._int("cpu", cpu))
        ps = self.zone.pcp_state[cpu]
        return {"count": int(self.zone.pcp_count[cpu]), "high": int(ps[PCP_HIGH]),
                "batch": self.pcp_batch, "high_min": int(ps[PCP_HIGH_MIN]),
                "high_max": int(ps[PCP_HIGH_MAX])}

    def watermarks(self):
        """(min, low, high) in pages, as /proc/zoneinfo prints them."""
        zs = self.zone.zstate
        return int(zs[ZS_WMARK_MIN]), int(zs[ZS_WMARK_LOW]), int(zs[ZS_WMARK_HIGH])

    def fill_pcp(self, cpu, count, high=None, gfp=GFP_HIGHUSER_MOVABLE, order=0):
        """Start a CPU's pcp list of ``order`` blocks with ``count`` blocks taken as
        ``rmqueue_bulk`` takes them (not counted as refills of the run) and ``pcp->high`` at
        ``high`` (clamped): a /proc/zoneinfo pageset, since a captured kernel's lists are
        never empty. ``gfp`` picks the list (default: Movable). Returns the blocks taken."""
        if not self.zone.conf[core.C_PCP]:
            raise ValueError("the zone has no per-cpu lists (pcp=False)")
        cpu, = self._cpus(self._int("cpu", cpu))
        count, order, gfp = (self._int(k, v) for k, v in (("count", count), ("order", order),
                                                          ("gfp", gfp)))
        if high is not None and self._int("high", high) < 0:
            raise ValueError(f"high {high} is negative")
        if not 0 <= gfp < 1 << 32:
            raise ValueError(f"gfp {gfp:#x} is not a 32-bit flag word")
        mt = core.gfp_migratetype(self.z, gfp)
        if mt < 0:
            raise ValueError(f"gfp {gfp:#x}: {ERRORS[-mt]}")
        pindex = self.pcp_pindex(order, mt)
        if not 0 <= count <= self.nr_pages:
            raise ValueError(f"count {count} is not in 0..{self.nr_pages} (the zone's pages)")
        n = core.rmqueue_bulk(self.z, cpu, order, count, mt, pindex)
        self.zone.pcp_count[cpu] += n << order
        self.zone.stat[core.S_PCP_REFILL] -= n
        self.zone.stat[core.S_PCP_REFILL_PAGES] -= n << order
        if high is not None:
            ps = self.zone.pcp_state[cpu]
            ps[PCP_HIGH] = min(max(high, ps[PCP_HIGH_MIN]), ps[PCP_HIGH_MAX])
        return int(n)

    def pcp_pindex(self, order, mt):
        """The per-cpu list (``order_to_pindex()``) a block of this order and migratetype
        goes on."""
        order, mt = self._int("order", order), self._int("migratetype", mt)
        if not 0 <= mt < MIGRATE_PCPTYPES or not 0 <= order <= self.max_order \
                or not core.pcp_allowed_order(self.z, order):
            raise ValueError(f"order {order}, migratetype {mt}: no per-cpu list holds it")
        return int(core.order_to_pindex(self.z, mt, order))

    def decay_pcp_high(self, cpu=None):
        """One tick of the vmstat worker's ``decay_pcp_high()`` (all CPUs by default); True
        while some CPU has more to do."""
        todo = False
        for c in self._cpus(cpu):
            todo = bool(core.decay_pcp_high(self.z, c)) or todo
        return todo

    # -- errors ----------------------------------------------------------------------------
    def _bad(self, res, pfn, what=""):
        """Raise, or count and carry on in lenient mode (the kernel's bad_page())."""
        if self.lenient:
            self.zone.stat[core.S_BAD_PAGE] += 1
            return
        raise BadPageError(pfn, -res, what)

    # -- the per-call API ------------------------------------------------------------------
    def alloc(self, order, gfp=0, cpu=0, prefer_zeroed=None):
        """Allocate a 2^order block; its first pfn, or None when nothing fits.

        ``prefer_zeroed`` (simulator-only placement, not the kernel's): True looks for a
        zeroed block near either end of the lists, False for a dirty one.
        """
        pref = core.PREF_NONE if prefer_zeroed is None else int(bool(prefer_zeroed))
        res = core.alloc_pages(self.z, order, gfp, cpu, pref)
        if res < core.NONE:
            self._bad(res, 0, f"alloc order {order} gfp {gfp:#x} cpu {cpu}")
            return None
        return None if res == core.NONE else int(res)

    def free(self, pfn, order, fpi=FPI.NONE, cpu=0):
        """Free an allocated block (``__free_pages``)."""
        if int(fpi) & ~FPI_ALL:
            raise ValueError(f"unknown FPI bits {int(fpi) & ~FPI_ALL:#x}")
        res = core.free_pages(self.z, pfn, order, int(fpi), cpu)
        if res < 0:
            self._bad(res, pfn, self._describe(pfn, order))

    def alloc_pfn(self, pfn, order, gfp=0):
        """Allocate exactly the block at pfn; True when it was free and is now allocated."""
        res = core.alloc_pfn(self.z, pfn, order, gfp)
        if res < 0:
            self._bad(res, pfn, f"alloc_pfn order {order}")
            return False
        return res == 1

    def page_is_zeroed(self, pfn):
        """Allocated block: the hint read at allocation; free block head: PG_zeroed."""
        if not 0 <= pfn < self.nr_pages:
            raise BadPageError(pfn, core.E_RANGE)
        return bool(core.page_is_zeroed(self.z, pfn))

    def isolate_free_page(self, pfn, order):
        """``__isolate_free_page``: take a free block off the lists; clears PG_zeroed.
        False when refused (the zone would fall to its min watermark)."""
        res = isolate_free_page(self.z, pfn, order)
        if res < 0:
            self._bad(res, pfn, f"isolate order {order}")
            return False
        return res > 0

    def putback_isolated_page(self, pfn, order, fpi=FPI.NONE, reported=False):
        """``__putback_isolated_page``: back to the tail; FPI.ZEROED when it was cleared."""
        res = putback_isolated_page(self.z, pfn, order, int(fpi), reported)
        if res < 0:
            self._bad(res, pfn, f"putback order {order}")

    def drain_pages(self, cpu=None):
        """Drain pcp lists (all CPUs by default) back to the buddy (``drain_pages``)."""
        for c in self._cpus(cpu):
            core.drain_pages(self.z, c)

    def run(self, ops, lenient=None):
        """Replay an ``OP_DTYPE`` array in compiled code; returns (out_pfn, out_hint).

        Strict mode raises ``BadPageError`` naming the row, the pfn and the reason; rows
        before it have been applied.
        """
        lenient = self.lenient if lenient is None else lenient
        ops = np.asarray(ops, dtype=bulk.OP_DTYPE)
        out_pfn = np.full(len(ops), core.NONE, dtype=np.int64)
        out_hint = np.zeros(len(ops), dtype=np.uint8)
        errors = np.zeros((bulk.MAX_ERRORS, 3), dtype=np.int64)
        done, nerr = bulk.run_ops(self.z, *bulk.columns(ops), out_pfn, out_hint, lenient, errors)
        if nerr and not lenient:
            row, code, pfn = (int(x) for x in errors[0])
            raise BadPageError(pfn, code, f"op row {row}")
        self.errors = errors[: min(nerr, bulk.MAX_ERRORS)].copy()
        return out_pfn, out_hint

    # -- views -----------------------------------------------------------------------------
    def _describe(self, pfn, order):
        if not 0 <= pfn < self.nr_pages:
            return f"order {order}"
        f = int(self.zone.flags[pfn])
        if f & PG_ALLOC:
            return f"freed with order {order}, allocated with order {int(self.zone.order[pfn])}"
        return f"order {order}"

    def buddyinfo(self):
        """Free blocks per order in the buddy lists (not pcp), like /proc/buddyinfo."""
        return [int(x) for x in self.zone.nr_free.sum(axis=1)]

    def zeroed_info(self):
        """Free blocks per order that carry PG_zeroed (the buddyinfo-shaped zeroed table)."""
        return [int(x) for x in self.zone.nr_zeroed]

    def pagetypeinfo(self):
        """{migratetype name: free blocks per order}, like /proc/pagetypeinfo."""
        return {name: [int(x) for x in self.zone.nr_free[:, mt]]
                for mt, name in enumerate(MIGRATETYPE_NAMES)}

    def nr_free_pages(self):
        """Pages in the buddy free lists (NR_FREE_PAGES: pcp pages not counted)."""
        return int(sum(n << o for o, n in enumerate(self.buddyinfo())))

    def nr_pcp_pages(self):
        return int(self.zone.pcp_count.sum())

    def stats(self):
        """The allocator's counters by name."""
        return {name: int(v) for name, v in zip(core.STAT_NAMES, self.zone.stat)}

    def bytes_per_page(self):
        return bytes_per_page(self.zone)

    def check(self):
        """Verify every invariant; raise ``InvariantError`` naming the first one broken."""
        code, where = check_zone(self.z)
        if code:
            raise InvariantError(f"invariant {code} broken at {where:#x}: {CHECKS[code]}")

    def snapshot(self):
        """A copy of the zone arrays (for differential tests and checkpoints)."""
        return ZoneArrays(*(a.copy() for a in self.zone))
