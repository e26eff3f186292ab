"""Starting states of the zone: ``pristine`` (boot: max-order blocks), ``aged`` (after a seeded
ageing workload) or a ``/proc/buddyinfo`` or ``/proc/pagetypeinfo`` snapshot FILE.

Upstream's "only ~21% of order-0 allocations come from reported pages" describes a guest that
has run for a while: its free memory is partly low-order blocks that are never reported
(reporting starts at pageblock order). A run that starts from the pristine zone cannot show
that; these states can. Whatever a state leaves allocated stays allocated for the whole run,
as boot and kernel memory with unknown (dirty) content, and none of the work that built the
state is counted (the allocator's counters are reset; the engine starts after).

``aged`` (seeded): order-0 to 3 and THP-sized allocations (order 0 75%, 1 10%, 2 5%, 3 5%,
9 5%; 70% Movable, 20% Unmovable, 10% Reclaimable) fill the zone to 75%, then as many
alloc/free steps as the zone has pages churn at that level, then half of what is live is
freed and the per-cpu lists are drained.

FILE (``FILE``, ``FILE,zone=NAME``, ``FILE,node=N`` or ``FILE,zone=NAME,node=N``; the format
is told by its first line): the zone starts with exactly the free blocks per order of one zone
of the snapshot: ``zone=NAME``, else Normal, else the file's only zone; of node N, else of the
lowest node that has it (the model is one zone: a NUMA machine's snapshot gives one node's).
They are placed so that no two of them are buddies: every other page is allocated. A
/proc/buddyinfo snapshot's free blocks are all Movable (the boot type of every pageblock). A
/proc/pagetypeinfo snapshot also gives each free block's migratetype: the blocks of one type
are carved out of max-order regions whose pageblocks get that type, so they sit on that type's
free lists (6.18 keeps a free block on its pageblock's list, ``__add_to_free_list``); the
pageblocks left wholly allocated get types so that the zone's pageblocks per type follow the
snapshot's "Number of blocks type" table, scaled to the modelled zone (without that table:
Movable, and the description says so).
Allocated pages take their pageblock's migratetype. The model has no HighAtomic, CMA or Isolate
lists (simplification): HighAtomic free blocks and pageblocks count as Unmovable (the reserve
serves high-order atomic, mostly unmovable, allocations), CMA and Isolate ones as Movable (CMA
serves only movable allocations; isolation is of movable ranges). A snapshot with more free
memory than the modelled zone can hold in that shape is an error naming the file; a bad line
is an error naming the file and line.
"""
import hashlib
import os
import re

import numpy as np
from numba import njit

from allocator import (GFP_HIGHUSER_MOVABLE, GFP_KERNEL, OP_ALLOC, OP_ALLOC_PFN, OP_DRAIN,
                       OP_DTYPE, OP_FREE_REF)
from allocator import core as acore
from allocator.buddy import MAX_PAGE_ORDER
from allocator.flags import GFP_BITS, MIGRATETYPE_NAMES, PAGEBLOCK_ORDER, MigrateType

# Free blocks or pageblocks worth more than MAX_PAGES (in one count, or in one line) are of no
# machine, and are refused before a number of thousands of digits is converted or one too large
# for a float is scaled.
from .zoneinfo import MAX_PAGES, PHYSICAL

STATES = ("pristine", "aged")
GFP_RECLAIMABLE = GFP_KERNEL | GFP_BITS["__GFP_RECLAIMABLE"]
UNMOVABLE, MOVABLE, RECLAIMABLE = (int(m) for m in MigrateType)
#: /proc/pagetypeinfo's migratetype names (mm/page_alloc.c ``migratetype_names``) -> the model's
#: free lists (HighAtomic, CMA and Isolate have none: see the module docstring).
PAGETYPE_NAMES = {"Unmovable": UNMOVABLE, "Movable": MOVABLE, "Reclaimable": RECLAIMABLE,
                  "HighAtomic": UNMOVABLE, "CMA": MOVABLE, "Isolate": MOVABLE}
#: The allocation that stands for an allocated page of a pageblock of each type.
MT_GFP = {UNMOVABLE: GFP_KERNEL, MOVABLE: GFP_HIGHUSER_MOVABLE, RECLAIMABLE: GFP_RECLAIMABLE}


class StateError(ValueError):
    """An initial state that cannot be built: names the file or option and the reason."""


def parse_spec(value):
    """``FILE[,zone=NAME][,node=N]`` -> (path, which) where which is None or (zone name or
    None, node or None). A path that exists as given wins (it may hold a comma)."""
    if os.path.exists(value):
        return value, None
    path, which = value, {}
    while True:  # trailing ,zone=NAME and ,node=N, in either order, each once
        m = re.fullmatch(r"(.+),(zone|node)=(\w+)", path)
        if not m or m.group(2) in which or (m.group(2) == "node" and not
                                             re.fullmatch(r"[0-9]{1,4}", m.group(3))):
            break
        path, which[m.group(2)] = m.group(1), m.group(3)
    if not which:
        return value, None
    return path, (which.get("zone"), int(which["node"]) if "node" in which else None)


#: NR_PAGE_ORDERS: the columns of /proc/buddyinfo (orders 0 to MAX_PAGE_ORDER).
NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1
#: The highest node number a snapshot line may give: what ``FILE,node=N`` can name (x86-64's
#: MAX_NUMNODES is at most 1024).
MAX_NODE = 9999


def _shown(text):
    """A field as an error shows it: a long one cut, with its length."""
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} characters)"


def _number(where, digits, what, limit, why=PHYSICAL):
    """int of a snapshot field, ASCII digits at most ``limit``, else a StateError naming
    ``where`` (file:line), the field and the reason. The digits are checked before they are
    converted (Python refuses to convert more than 4300 of them)."""
    if not (digits.isascii() and digits.isdigit()):
        raise StateError(f"{where}: {_shown(repr(digits))} is not a {what}")
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(limit)) or int(significant) > limit:
        raise StateError(f"{where}: {what} {_shown(digits)} is over {limit}: {why}")
    return int(significant)


def _node(where, digits):
    return _number(where, digits, "node number", MAX_NODE, "more than FILE,node=N can name")


def _free_counts(where, values):
    """Free blocks per order of one snapshot line (orders 0, 1, ...): each count, and all of
    them together, at most MAX_PAGES pages."""
    counts = [_number(where, v, f"count of free order-{k} blocks", MAX_PAGES >> k)
              for k, v in enumerate(values)]
    pages = sum(n << k for k, n in enumerate(counts))
    if pages > MAX_PAGES:
        raise StateError(f"{where}: free blocks of {pages} pages: {PHYSICAL}")
    return counts


def _block_counts(where, values):
    """Pageblocks per type of one "Number of blocks type" line: at most MAX_PAGES pages."""
    limit = MAX_PAGES >> PAGEBLOCK_ORDER
    counts = [_number(where, v, "count of pageblocks", limit) for v in values]
    if sum(counts) > limit:
        raise StateError(f"{where}: {sum(counts)} pageblocks: {PHYSICAL}")
    return counts


def _read_lines(path):
    """[(line number, line)] of a snapshot file, or a StateError naming it and the reason."""
    try:
        with open(path) as f:
            return list(enumerate(f, 1))
    except (OSError, UnicodeDecodeError) as e:
        raise StateError(f"{path}: {getattr(e, 'strerror', None) or e}") from None


def pick_zone(path, rows, which):
    """rows {(node, zone name): value}: the key of the zone ``which`` names (parse_spec's
    (name, node), or a zone name), else Normal, else the only zone; of the node named, else
    of the lowest node that has it."""
    zone, node = which if isinstance(which, tuple) else (which, None)
    names = list(dict.fromkeys(name for _, name in rows))
    name = zone or ("Normal" if "Normal" in names else names[0] if len(names) == 1 else None)
    nodes = sorted(n for n, z in rows if z == name)
    if not nodes:
        raise StateError(f"{path}: zone {zone or 'Normal'} not found (zones: {', '.join(names)})")
    if node is not None and node not in nodes:
        raise StateError(f"{path}: node {node} has no zone {name} (nodes with it: "
                         f"{', '.join(map(str, nodes))})")
    return (nodes[0] if node is None else node), name


def read_buddyinfo(path, zone=None):
    """Free blocks per order of one zone of a /proc/buddyinfo file."""
    rows = {}
    for lineno, line in _read_lines(path):
        m = re.match(r"Node\s+(\d+),\s+zone\s+(\S+)\s+([\d\s]+)$", line.strip(), re.A)
        if not m:
            if line.strip():
                raise StateError(f"{path}:{lineno}: not a /proc/buddyinfo line")
            continue
        where = f"{path}:{lineno}"
        key, counts = (_node(where, m.group(1)), m.group(2)), _free_counts(where,
                                                                            m.group(3).split())
        if key in rows:
            raise StateError(f"{path}:{lineno}: node {key[0]} zone {key[1]} appears twice")
        width = len(next(iter(rows.values()), counts))
        if len(counts) != width:
            raise StateError(f"{path}:{lineno}: {len(counts)} counts where the line before has "
                             f"{width} (one per order): a line cut short?")
        if len(counts) < NR_PAGE_ORDERS:
            raise StateError(f"{path}:{lineno}: {len(counts)} counts: /proc/buddyinfo has one "
                             f"per order, {NR_PAGE_ORDERS} on x86-64 (a line cut short?)")
        rows[key] = counts
    if not rows:
        raise StateError(f"{path}: no zone rows (expected /proc/buddyinfo)")
    return rows[pick_zone(path, rows, zone)]


def read_pagetypeinfo(path, zone=None):
    """One zone of a /proc/pagetypeinfo file (mm/vmstat.c ``pagetypeinfo_show``):
    (free, blocks): free[mt] = free blocks per order on the model's list mt (names folded by
    PAGETYPE_NAMES), blocks[mt] = pageblocks of type mt, or None without that table."""
    free, blocks, seen, heads = {}, {}, set(), {}
    orders = block_names = None
    section = None
    for lineno, line in _read_lines(path):
        text = line.strip()
        where = f"{path}:{lineno}"
        if not text:
            continue
        m = re.match(r"Page block order|Pages per block|Free pages count per migrate type|"
                     r"Number of blocks type|Number of mixed blocks type", text)
        if m:  # a header: once (a second would re-read or mix what the first set)
            if m.group() in heads:
                raise StateError(f"{where}: '{m.group()}' appears twice (first at line "
                                 f"{heads[m.group()]})")
            heads[m.group()] = lineno
        m = re.fullmatch(r"(Page block order|Pages per block):\s+(\d+)", text, re.A)
        if m:
            if m.group(1) == "Page block order":
                order = _number(where, m.group(2), "page block order", 63,
                                "larger than a 64-bit address space")
                if order != PAGEBLOCK_ORDER:
                    raise StateError(f"{where}: {text}: the model's pageblocks are order "
                                     f"{PAGEBLOCK_ORDER} (x86-64), so its block counts do not "
                                     "apply")
            else:  # pageblock_nr_pages: 2^pageblock_order (the order is 9 or refused above)
                pages = _number(where, m.group(2), "number of pages per block", MAX_PAGES)
                if pages != 1 << PAGEBLOCK_ORDER:
                    said = (f"Page block order {PAGEBLOCK_ORDER} (line "
                            f"{heads['Page block order']}) makes"
                            if "Page block order" in heads else "the model's pageblocks are")
                    raise StateError(f"{where}: {text}: {said} {1 << PAGEBLOCK_ORDER} pages "
                                     f"(2^{PAGEBLOCK_ORDER})")
            continue
        m = re.fullmatch(r"Free pages count per migrate type at order\s+([\d\s]+)", text, re.A)
        if m:
            orders, section = len(m.group(1).split()), "free"
            if m.group(1).split() != [str(k) for k in range(orders)] or orders < NR_PAGE_ORDERS:
                raise StateError(f"{where}: the orders must be 0 to {NR_PAGE_ORDERS - 1} at "
                                 "least (x86-64), in order")
            continue
        m = re.fullmatch(r"Number of (blocks|mixed blocks) type\s+([\w\s]+)", text)
        if m:
            block_names, section = m.group(2).split(), m.group(1)
            for name in block_names:
                if name not in PAGETYPE_NAMES:
                    raise StateError(f"{where}: unknown migratetype {name}")
            continue
        m = re.fullmatch(r"Node\s+(\d+),\s+zone\s+(\S+),\s+type\s+(\S+)\s+(.*)", text, re.A)
        if m and section == "free":
            if m.group(3) not in PAGETYPE_NAMES:
                raise StateError(f"{where}: unknown migratetype {m.group(3)}")
            values = m.group(4).split()
            if any(v.startswith(">") for v in values):
                raise StateError(f"{where}: a count the kernel capped (>100000) is not exact")
            bad = next((v for v in values if not (v.isascii() and v.isdigit())), None)
            if bad is not None:
                raise StateError(f"{where}: {_shown(repr(bad))} is not a count of free blocks")
            if len(values) != orders:
                raise StateError(f"{where}: expected {orders} free-block counts (one per order "
                                 f"of the header), got {len(values)}")
            node, counts = _node(where, m.group(1)), _free_counts(where, values)
            if (node, m.group(2), m.group(3)) in seen:
                raise StateError(f"{where}: node {m.group(1)} zone {m.group(2)} type "
                                 f"{m.group(3)} appears twice")
            seen.add((node, m.group(2), m.group(3)))
            row = free.setdefault((node, m.group(2)), [[0] * orders for _ in range(3)])
            mt = PAGETYPE_NAMES[m.group(3)]
            row[mt] = [a + n for a, n in zip(row[mt], counts)]
            continue
        m = re.fullmatch(r"Node\s+(\d+),\s+zone\s+(\S+)\s+([\d\s]+)", text, re.A)
        if m and section in ("blocks", "mixed blocks"):
            values = m.group(3).split()
            if len(values) != len(block_names):
                raise StateError(f"{where}: expected {len(block_names)} pageblock counts")
            node, counts = _node(where, m.group(1)), _block_counts(where, values)
            if (section, node, m.group(2)) in seen:
                raise StateError(f"{where}: node {m.group(1)} zone {m.group(2)} appears twice "
                                 f"in the '{section}' table")
            seen.add((section, node, m.group(2)))
            if section == "blocks":  # page_owner's mixed-blocks table is not needed
                row = [0, 0, 0]
                for name, n in zip(block_names, counts):
                    row[PAGETYPE_NAMES[name]] += n
                blocks[node, m.group(2)] = row
            continue
        raise StateError(f"{where}: not a /proc/pagetypeinfo line")
    if not free:
        raise StateError(f"{path}: no free-block rows (expected /proc/pagetypeinfo)")
    key = pick_zone(path, free, zone)
    return free[key], blocks.get(key)


def read_snapshot(path, zone=None):
    """(free, blocks) of a buddyinfo or pagetypeinfo file (told by its first line): free is
    {migratetype: counts per order} (buddyinfo: all Movable), blocks as read_pagetypeinfo."""
    first = next((line for _, line in _read_lines(path) if line.strip()), "")
    if first.startswith(("Page block order", "Free pages count per migrate type")):
        free, blocks = read_pagetypeinfo(path, zone)
        return dict(enumerate(free)), blocks
    return {MOVABLE: read_buddyinfo(path, zone)}, None


def plan_free_blocks(counts, nr_pages, max_order, regions=None, used=None):
    """Place counts[k] free blocks of order k in a zone of nr_pages so that none has a free
    buddy of its order: [(pfn, order)], or StateError. A block's buddy half gets an
    allocated page at its start, which leaves one slot of every lower order beside it.
    ``regions``: the free max-order regions to take (shared between calls); the ones taken are
    appended to ``used``."""
    counts = list(counts) + [0] * (max_order + 1 - len(counts))
    if len(counts) > max_order + 1 and any(counts[max_order + 1:]):
        raise StateError(f"free blocks above max order {max_order}")
    if regions is None:
        regions = list(range(0, nr_pages - (1 << max_order) + 1, 1 << max_order))
    used = [] if used is None else used
    free = []
    for _ in range(counts[max_order]):
        if not regions:
            raise StateError(f"{counts[max_order]} max-order blocks do not fit in {nr_pages} pages")
        used.append(regions.pop(0))
        free.append((used[-1], max_order))
    slots = [[] for _ in range(max_order)]  # pfns where a free block of that order is safe

    def split(pfn, order):
        # Allocate the first page of [pfn, pfn + 2^order): slots 2^j for j < order beside it.
        for j in range(order):
            slots[j].append(pfn + (1 << j))

    for k in range(max_order - 1, -1, -1):
        for _ in range(counts[k]):
            if not slots[k]:
                bigger = next((o for o in range(k + 1, max_order) if slots[o]), None)
                if bigger is not None:
                    split(slots[bigger].pop(), bigger)
                elif regions:
                    used.append(regions.pop())
                    split(used[-1], max_order)
                else:
                    raise StateError(f"the snapshot's free blocks do not fit in {nr_pages} pages "
                                     f"without merging (ran out at order {k})")
            free.append((slots[k].pop(), k))
    return free


def plan_typed(free_by_mt, nr_pages, max_order):
    """plan_free_blocks per migratetype, each type in max-order regions of its own:
    ([(pfn, order, mt)], {region pfn: mt})."""
    regions = list(range(0, nr_pages - (1 << max_order) + 1, 1 << max_order))
    out, region_mt = [], {}
    for mt, counts in sorted(free_by_mt.items()):
        used = []
        try:
            free = plan_free_blocks(counts, nr_pages, max_order, regions, used)
        except StateError as e:
            raise StateError(f"{MIGRATETYPE_NAMES[mt]}: {e}") from None
        out += [(pfn, order, mt) for pfn, order in free]
        region_mt.update(dict.fromkeys(used, mt))
    return out, region_mt


def pageblock_types(region_mt, blocks, nr_pageblocks, pageblock_order, max_order, default):
    """Target migratetype of every pageblock: a region's type for the regions holding free
    blocks; the wholly allocated ones (lowest first) made Unmovable and Reclaimable until the
    zone's share of each matches ``blocks`` (largest remainder), the rest ``default``."""
    per_region = 1 << (max_order - pageblock_order)
    target = np.full(nr_pageblocks, default, dtype=np.int8)
    for pfn, mt in region_mt.items():
        start = pfn >> pageblock_order
        target[start:start + per_region] = mt
    if not blocks or not sum(blocks):
        return target
    share = np.array(blocks, dtype=float) * nr_pageblocks / sum(blocks)
    want = np.floor(share).astype(int)
    for mt in np.argsort(-(share - want), kind="stable")[:nr_pageblocks - want.sum()]:
        want[mt] += 1
    forced = np.zeros(nr_pageblocks, dtype=bool)
    for pfn in region_mt:
        forced[(pfn >> pageblock_order):(pfn >> pageblock_order) + per_region] = True
    spare = iter(np.flatnonzero(~forced))
    for mt in (UNMOVABLE, RECLAIMABLE):
        for _ in range(max(0, want[mt] - int(np.count_nonzero(target == mt)))):
            pb = next(spare, None)
            if pb is not None:
                target[pb] = mt
    return target


def allocated_blocks(free, nr_pages, max_order):
    """The complement of the free blocks as aligned blocks [(pfn, order)]."""
    is_free = np.zeros(nr_pages, dtype=bool)
    for pfn, order in free:
        is_free[pfn:pfn + (1 << order)] = True
    out = []
    prefix = np.concatenate([[0], np.cumsum(is_free)])

    def walk(pfn, order):
        n = 1 << order
        nfree = prefix[pfn + n] - prefix[pfn]
        if nfree == 0:
            out.append((pfn, order))
        elif nfree < n:
            walk(pfn, order - 1)
            walk(pfn + (n >> 1), order - 1)

    pfn = 0
    while pfn < nr_pages:
        order = max_order
        while pfn & ((1 << order) - 1) or pfn + (1 << order) > nr_pages:
            order -= 1
        walk(pfn, order)
        pfn += 1 << order
    return out


def aged_ops(nr_pages, seed):
    """The ageing workload's operations (see the module docstring). Compiled: the draws are
    numpy's own (``choice`` with p is one ``random()`` and a search of the cdf), so a seed
    gives the same state as the Python loop this replaced."""
    rng = np.random.default_rng(seed)
    cdf = lambda p: np.cumsum(p) / np.sum(p)  # noqa: E731 (as Generator.choice builds it)
    cap = 3 * nr_pages + 16  # fill (<= 0.75 n) + n churn steps + half the live blocks + drain
    cols = [np.zeros(cap, np.int64) for _ in range(4)]
    n = _aged_rows(rng, nr_pages, np.array([0, 1, 2, 3, 9]),
                   cdf([0.75, 0.10, 0.05, 0.05, 0.05]),
                   np.array([GFP_HIGHUSER_MOVABLE, GFP_KERNEL, GFP_RECLAIMABLE], np.int64),
                   cdf([0.7, 0.2, 0.1]), *cols)
    ops = np.zeros(n, dtype=OP_DTYPE)
    for name, col in zip(("op", "order", "gfp", "arg"), cols):
        ops[name] = col[:n]
    return ops


@njit(cache=True)
def _aged_rows(rng, nr_pages, orders, order_cdf, gfps, gfp_cdf, op, order, gfp, arg):
    live = np.empty(len(op), np.int64)
    nlive = used = n = 0
    target = int(nr_pages * 0.75)
    while used < target:
        n, nlive, used = _alloc_one(rng, orders, order_cdf, gfps, gfp_cdf, live, nlive, used,
                                    op, order, gfp, n)
    for _ in range(nr_pages):
        if used < target:
            n, nlive, used = _alloc_one(rng, orders, order_cdf, gfps, gfp_cdf, live, nlive,
                                        used, op, order, gfp, n)
        else:
            n, nlive, used = _free_one(rng, live, nlive, used, op, order, arg, n)
    for _ in range(nlive // 2):
        n, nlive, used = _free_one(rng, live, nlive, used, op, order, arg, n)
    op[n] = OP_DRAIN
    return n + 1


@njit(cache=True)
def _alloc_one(rng, orders, order_cdf, gfps, gfp_cdf, live, nlive, used, op, order, gfp, n):
    """Allocate a block of a random order and migratetype (``Generator.choice``'s draws)."""
    o = orders[np.searchsorted(order_cdf, rng.random(), side="right")]
    op[n], order[n] = OP_ALLOC, o
    gfp[n] = gfps[np.searchsorted(gfp_cdf, rng.random(), side="right")]
    live[nlive] = n
    return n + 1, nlive + 1, used + (1 << o)


@njit(cache=True)
def _free_one(rng, live, nlive, used, op, order, arg, n):
    """Free a live block picked at random: (rows, live blocks, pages used) after it."""
    k = rng.integers(0, nlive)
    row = live[k]
    live[k] = live[nlive - 1]
    op[n], order[n], arg[n] = OP_FREE_REF, order[row], row
    return n + 1, nlive - 1, used - (1 << order[row])


def forget_setup(alloc):
    """The state's own work is not part of the run: reset the allocator's counters (the
    allocated-pages gauge stays) and the pcp tuning it caused."""
    stat = alloc.zone.stat
    held = stat[acore.S_NR_ALLOCATED], stat[acore.S_NR_ISOLATED]
    stat[:] = 0
    stat[acore.S_NR_ALLOCATED], stat[acore.S_NR_ISOLATED] = held


def plan_for(path, free_by_mt, nr_pages, max_order):
    """``plan_typed``; where the snapshot's free blocks do not fit, the error names the file
    and the smallest zone they fit in (a snapshot of a large machine needs ``--pages``)."""
    try:
        return plan_typed(free_by_mt, nr_pages, max_order)
    except StateError as e:
        hint = ""
        if "do not fit" in str(e):
            region = 1 << max_order
            lo, hi = nr_pages, max(2 * nr_pages, region)
            while hi <= MAX_PAGES and not _fits(free_by_mt, hi, max_order):
                lo, hi = hi, 2 * hi
            if hi <= MAX_PAGES:  # then the fewest whole max-order regions that fit
                lo, hi = lo // region, -(-hi // region)
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (lo, mid) if _fits(free_by_mt, mid * region, max_order) else (mid, hi)
                hint = (f": it fits in a zone of {hi * region} pages (--pages, or a config's "
                        "pages)")
        raise StateError(f"{path}: {e}{hint}") from None


def _fits(free_by_mt, nr_pages, max_order):
    try:
        plan_typed(free_by_mt, nr_pages, max_order)
        return True
    except StateError:
        return False


def apply_snapshot(alloc, path, zone=None):
    """Bring a fresh (pristine) allocator to a snapshot's free blocks (module docstring)."""
    free_by_mt, blocks = read_snapshot(path, zone)
    z, zone_arrays = alloc.z, alloc.zone
    default = int(zone_arrays.pageblock_mt[0])  # the boot type: Movable, or Unmovable without
    if not zone_arrays.conf[acore.C_MOBILITY]:  # mobility grouping (one list for everything)
        free_by_mt = {default: np.sum(list(free_by_mt.values()), axis=0).tolist()}
        blocks = None
    max_order, pb_order = alloc.max_order, alloc.pageblock_order
    free, region_mt = plan_for(path, free_by_mt, alloc.nr_pages, max_order)
    target = pageblock_types(region_mt, blocks, len(zone_arrays.pageblock_mt), pb_order,
                             max_order, default)
    # The pristine zone holds each region as one free max-order block: put it on its type's
    # list, so that the splits below leave the free blocks on that list too.
    for pfn, mt in region_mt.items():
        if mt != default:
            acore.move_to_free_list(z, pfn, max_order, default, mt)
            acore.change_pageblock_range(z, pfn, max_order, mt)
    blocks_taken = allocated_blocks([(p, o) for p, o, _ in free], alloc.nr_pages, max_order)
    ops = np.zeros(len(blocks_taken), dtype=OP_DTYPE)
    ops["op"] = OP_ALLOC_PFN
    ops["order"] = [o for _, o in blocks_taken]
    ops["arg"] = [p for p, _ in blocks_taken]
    ops["gfp"] = [MT_GFP[int(target[p >> pb_order])] for p, _ in blocks_taken]
    alloc.run(ops)
    for pb in np.flatnonzero(target != zone_arrays.pageblock_mt):  # wholly allocated ones
        acore.set_pageblock_migratetype(z, int(pb) << pb_order, int(target[pb]))
    forget_setup(alloc)
    pages = sum(n << k for counts in free_by_mt.values() for k, n in enumerate(counts))
    name = os.path.basename(path) + "".join(
        f",{key}={value}" for key, value in zip(("zone", "node"), zone or ()) if value is not None)
    if len(free_by_mt) == 1:
        return f"{name} ({pages} free pages)"
    per_type = "/".join(str(int(np.count_nonzero(target == mt))) for mt in range(3))
    # An all-zero row: the kernel counts one pfn per pageblock stride and skips offline ones
    # and those of another zone, so a zone can show none; typed as without a row, and said.
    unknown = ("; no 'Number of blocks type' row for the zone" if blocks is None else
               "; the zone's 'Number of blocks type' row is all zero" if not any(blocks) else "")
    unknown += ": wholly allocated pageblocks taken as Movable" if unknown else ""
    return (f"{name} ({pages} free pages; Unmovable/Movable/Reclaimable "
            f"pageblocks {per_type}{unknown})")


def check_initial_state(state, nr_pages, max_order=MAX_PAGE_ORDER):
    """The StateError that ``apply_initial_state`` would raise for a zone of ``nr_pages``,
    found without building the zone (a file that is bad, lacks the zone or does not fit):
    so that compare and sweep refuse a config before any run starts. Returns a hash of a
    snapshot file's bytes (a resumed run must not reuse results of an edited snapshot)."""
    if state in (None, "pristine", "aged"):
        return None
    path, zone = parse_spec(state)
    if not os.path.isfile(path):
        raise StateError(f"{state}: no such file (or pristine, aged)")
    free_by_mt, _ = read_snapshot(path, zone)
    plan_for(path, free_by_mt, nr_pages, max_order)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def apply_initial_state(alloc, state, seed=0):
    """Bring a fresh ``BuddyAllocator`` into ``state``: 'pristine', 'aged' or a snapshot
    ``FILE[,zone=NAME][,node=N]``. Returns a short description."""
    if state in (None, "pristine"):
        return "pristine"
    if state == "aged":
        alloc.run(aged_ops(alloc.nr_pages, seed), lenient=True)
        forget_setup(alloc)
        return f"aged (seed {seed})"
    path, zone = parse_spec(state)
    if not os.path.isfile(path):
        raise StateError(f"--initial-state {state}: no such file (or pristine, aged)")
    return apply_snapshot(alloc, path, zone)
