"""Per-cpu list auto-tuning of 6.18 (mm/page_alloc.c, since 6.7): the sizing rules.

``struct per_cpu_pages`` fields beyond the lists live in ``Zone.pcp_state`` (one row per CPU,
columns ``PCP_*``); zone-wide state (NR_FREE_PAGES, ``ZONE_BELOW_HIGH``, the watermarks) in
``Zone.zstate`` (``ZS_*``). The functions here only compute and update those numbers; the list
work that follows from them (``free_pcppages_bulk``, ``rmqueue_bulk``) is in ``core.py``.

- ``nr_pcp_high()``: on a free that reaches ``high``, raise ``pcp->high`` towards
  ``free_count + batch`` (never above ``high_max``); with ``free_high`` (a burst of order 1-3
  frees) or ``ZONE_BELOW_HIGH`` lower it instead.
- ``nr_pcp_free()``: how many pages such a free drains: ``clamp(free_count, batch,
  high - batch)``, or up to ``batch << PCP_BATCH_SCALE_MAX`` with ``free_high``.
- ``nr_pcp_alloc()``: how many blocks a refill takes: ``batch << alloc_factor`` for order 0
  (doubling on consecutive refills, halved by each free), and every refill raises ``high`` by
  that batch: an allocation burst grows ``high``, and the free burst that follows then stays
  on the list.

Simplifications: ``ZONE_RECLAIM_ACTIVE`` is never set (no reclaim), and ``PCPF_FREE_HIGH_BATCH``
(set from the CPU's share of the last-level cache, ``zone_pcp_update_cacheinfo()``) is a zone
option, on by default: any LLC slice above 3 * batch pages (756 KiB at batch 63) sets it.
"""
from numba import njit

from .watermarks import PCP_BATCH_SCALE_MAX

# Columns of Zone.pcp_state (struct per_cpu_pages).
PCP_HIGH = 0
PCP_HIGH_MIN = 1
PCP_HIGH_MAX = 2
PCP_FREE_COUNT = 3
PCP_ALLOC_FACTOR = 4
PCP_FLAGS = 5
NR_PCP_STATE = 6

# pcp->flags (include/linux/mmzone.h).
PCPF_PREV_FREE_HIGH_ORDER = 0x01
PCPF_FREE_HIGH_BATCH = 0x02

# Entries of Zone.zstate (struct zone).
ZS_NR_FREE_PAGES = 0  # NR_FREE_PAGES: pages in the buddy free lists (not pcp, not isolated)
ZS_FLAGS = 1  # zone->flags
ZS_WMARK_MIN = 2
ZS_WMARK_LOW = 3
ZS_WMARK_HIGH = 4
NR_ZSTATE = 5

# zone->flags bits.
ZONE_BELOW_HIGH = 0x01


@njit(cache=True)
def clamp(v, lo, hi):
    """The kernel's clamp(): min(max(v, lo), hi)."""
    return min(max(v, lo), hi)


@njit(cache=True)
def pcp_clamp_high(z, cpu):
    """``pcp->high = clamp(pcp->high, high_min, high_max)``; returns it."""
    ps = z.pcp_state
    high = clamp(ps[cpu, PCP_HIGH], ps[cpu, PCP_HIGH_MIN], ps[cpu, PCP_HIGH_MAX])
    ps[cpu, PCP_HIGH] = high
    return high


@njit(cache=True)
def nr_pcp_high(z, cpu, batch, free_high):
    """``nr_pcp_high()``: the count at which this free drains; updates ``pcp->high``."""
    ps = z.pcp_state
    high_min = ps[cpu, PCP_HIGH_MIN]
    high_max = ps[cpu, PCP_HIGH_MAX]
    high = pcp_clamp_high(z, cpu)
    if high == 0:
        return 0
    if free_high:
        ps[cpu, PCP_HIGH] = max(high - (batch << PCP_BATCH_SCALE_MAX), high_min)
        return 0
    # ZONE_RECLAIM_ACTIVE: the model has no reclaim.
    if high_min == high_max:
        return high
    count = z.pcp_count[cpu]
    if z.zstate[ZS_FLAGS] & ZONE_BELOW_HIGH:
        free_count = max(ps[cpu, PCP_FREE_COUNT], batch)
        ps[cpu, PCP_HIGH] = max(high - free_count, high_min)
        high = max(count, high_min)
    elif count >= high:
        need_high = ps[cpu, PCP_FREE_COUNT] + batch
        # pcp->high should be large enough to hold batch freed pages
        if ps[cpu, PCP_HIGH] < need_high:
            ps[cpu, PCP_HIGH] = clamp(need_high, high_min, high_max)
    return high


@njit(cache=True)
def nr_pcp_free(z, cpu, batch, high, free_high):
    """``nr_pcp_free()``: pages to drain when the count reached ``high``."""
    if free_high:
        return min(z.pcp_count[cpu], batch << PCP_BATCH_SCALE_MAX)
    if high < batch:  # pcp disabled or boot pageset
        return 1
    # Leave at least batch pages; drain as many as were freed in a row.
    return clamp(z.pcp_state[cpu, PCP_FREE_COUNT], batch, high - batch)


@njit(cache=True)
def nr_pcp_alloc(z, cpu, base_batch, order):
    """``nr_pcp_alloc()``: blocks a refill of an empty list takes; raises ``pcp->high``."""
    ps = z.pcp_state
    high_min = ps[cpu, PCP_HIGH_MIN]
    high_max = ps[cpu, PCP_HIGH_MAX]
    high = pcp_clamp_high(z, cpu)
    if high < base_batch:  # pcp disabled or boot pageset
        return 1
    if order:
        batch = base_batch
    else:
        batch = base_batch << ps[cpu, PCP_ALLOC_FACTOR]
    # With a larger pcp->high the next refill could have been avoided.
    if high_min != high_max and not (z.zstate[ZS_FLAGS] & ZONE_BELOW_HIGH):
        high = min(high + batch, high_max)
        ps[cpu, PCP_HIGH] = high
    if order == 0:
        max_nr_alloc = max(high - z.pcp_count[cpu] - base_batch, base_batch)
        # Double the refill on each consecutive order-0 refill without a free between.
        if batch <= max_nr_alloc and ps[cpu, PCP_ALLOC_FACTOR] < PCP_BATCH_SCALE_MAX:
            ps[cpu, PCP_ALLOC_FACTOR] += 1
        batch = min(batch, max_nr_alloc)
    if batch > 1:
        batch = max(batch >> order, 2)
    return batch


@njit(cache=True)
def pcp_free_high(z, cpu, order, batch):
    """The ``free_high`` test of ``free_frozen_page_commit()`` and its bookkeeping: order 1-3
    frees in a row with a large free_count drain everything (limits fragmentation); every free
    halves alloc_factor and counts into free_count."""
    ps = z.pcp_state
    ps[cpu, PCP_ALLOC_FACTOR] >>= 1
    free_high = False
    flags = ps[cpu, PCP_FLAGS]
    if order and order <= 3:  # PAGE_ALLOC_COSTLY_ORDER
        free_high = (ps[cpu, PCP_FREE_COUNT] >= batch + ps[cpu, PCP_HIGH_MIN] // 2
                     and (flags & PCPF_PREV_FREE_HIGH_ORDER) != 0
                     and (not (flags & PCPF_FREE_HIGH_BATCH) or z.pcp_count[cpu] >= batch))
        ps[cpu, PCP_FLAGS] = flags | PCPF_PREV_FREE_HIGH_ORDER
    elif flags & PCPF_PREV_FREE_HIGH_ORDER:
        ps[cpu, PCP_FLAGS] = flags & ~PCPF_PREV_FREE_HIGH_ORDER
    if ps[cpu, PCP_FREE_COUNT] < (batch << PCP_BATCH_SCALE_MAX):
        ps[cpu, PCP_FREE_COUNT] += 1 << order
    return free_high
