"""Reading a /proc/zoneinfo snapshot: the Normal zone (managed pages, pages free, each CPU's
pageset) and the node's other lowmem zones, whose sizes set the Normal zone's watermarks and
pcp limits (``allocator.watermarks.zone_limits``). A number no machine could have, or a field
given twice, is an error naming the file and line."""
import re

from allocator.buddy import MAX_CPUS

from .validate import UserError

#: The most pages a zone, or a node's lowmem zones together, may manage, and a snapshot may
#: describe (``initial_state``): x86-64's widest physical address space (MAX_PHYSMEM_BITS 52,
#: five-level paging) is 2^52 bytes, 2^40 pages of 4 KiB. Checked on the digits, before a
#: number of thousands of them is converted (Python refuses more than 4300).
MAX_PAGES = 1 << 40
PHYSICAL = "more pages than x86-64 can address (2^40)"
#: mm/vmstat.c calculate_normal_threshold caps a CPU's vmstat threshold at 125: a zone counter
#: such as NR_FREE_PAGES, which /proc/zoneinfo prints without folding in the CPUs' pending
#: differences, may be off by up to that many pages per CPU.
VMSTAT_MAX_THRESHOLD = 125


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (a /proc/zoneinfo is needed)") from None
    except OSError as e:
        raise UserError(f"{path}: {e.strerror or e}") from None


def _line(text, pos):
    """The line number of the character at ``pos`` of a file's text."""
    return text.count("\n", 0, pos) + 1


def _number(path, text, m, group, what, limit, why=PHYSICAL):
    """int of a group of ASCII digits of the match ``m``, at most ``limit``; else a UserError
    naming the file, the line, the field and the reason."""
    digits = m.group(group)
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(limit)) or int(significant) > limit:
        shown = digits if len(digits) <= 24 else f"{digits[:12]}... ({len(digits)} digits)"
        raise UserError(f"{path}:{_line(text, m.start(group))}: {what} {shown} is over "
                        f"{limit}: {why}")
    return int(significant)


def _field(path, text, zone, field, span):
    """The match of zone ``zone``'s one ``field`` line within ``span`` of the text (None
    without one); a second, or one whose value is not a number, is a UserError naming its
    line."""
    line = re.compile(rf"^\s+{field}(?=[ \t]|$)[ \t]*(.*)$", re.M | re.A)
    found = list(line.finditer(text, *span))
    for m in found:
        if not re.fullmatch(r"\s\d+", text[m.start(1) - 1:m.end(1)], re.A):
            raise UserError(f"{path}:{_line(text, m.start(1))}: zone {zone}'s '{field}' "
                            f"{m.group(1)[:40]!r} is not a number of pages")
    if len(found) > 1:
        raise UserError(f"{path}:{_line(text, found[1].start(1))}: '{field}' appears twice in "
                        f"zone {zone} (first at line {_line(text, found[0].start(1))})")
    return found[0] if found else None


def _normal(text):
    """The match of the Normal zone's section (group 1: its lines)."""
    return re.search(r"zone\s+Normal\n(.*?)(?=^Node \d+, zone|\Z)", text, re.S | re.M | re.A)


def limits_differ(path):
    """How the Normal zone's watermarks (less its boost) and its first pageset's batch,
    high_min and high_max in the file differ from those its node's managed pages give the
    model (``zone_limits``, THP on); None when they agree or the file does not print them."""
    from allocator.watermarks import zone_limits
    managed, _, sets = normal_zone(path)
    text = _read(path)
    span = _normal(text).span(1)
    value = {}
    for name in ("min", "low", "high", "boost"):
        found = _field(path, text, "Normal", name, span)
        if found:
            value[name] = _number(path, text, found, 1, f"the Normal zone's {name}", MAX_PAGES)
    for name in ("batch", "high_min", "high_max"):  # the first pageset's (6.7+: all alike)
        found = re.compile(rf"^\s+{name}:\s+(\d+)$", re.M | re.A).search(text, *span)
        if found:
            value[name] = _number(path, text, found, 1, f"cpu 0's {name}", MAX_PAGES)
    model = zone_limits(managed, len(sets), other_zones=other_lowmem_zones(path))
    differ = []
    if {"min", "low", "high"} <= set(value):
        boost = value.get("boost", 0)
        marks = tuple(value[k] - boost for k in ("min", "low", "high"))
        if marks != (model.wmark_min, model.wmark_low, model.wmark_high):
            differ.append(f"min/low/high {'/'.join(map(str, marks))} (the model's "
                          f"{model.wmark_min}/{model.wmark_low}/{model.wmark_high})")
    for name, mine in (("batch", model.batch), ("high_min", model.high_min),
                       ("high_max", model.high_max)):
        if name in value and value[name] != mine:
            differ.append(f"{name} {value[name]} (the model's {mine})")
    return f"{path}: the Normal zone's {', '.join(differ)}" if differ else None


def normal_zone(path):
    """(managed, pages free, [(count, high) per CPU]) of the Normal zone of a zoneinfo; a file
    without them, or with pagesets that cannot be (more pages than the zone manages), is a
    UserError naming it."""
    text = _read(path)
    nodes = re.findall(r"^Node (\d+), zone\s+Normal$", text, re.M | re.A)
    if len(nodes) > 1:
        raise UserError(f"{path}: Normal zones of nodes {', '.join(nodes)}: the model replays "
                        "one zone (keep one node's zones in the file)")
    m = _normal(text)
    managed = m and _field(path, text, "Normal", "managed", m.span(1))
    free = m and _field(path, text, "Normal", "pages free", m.span(1))
    if not (managed and free):
        raise UserError(f"{path}: no Normal zone with 'pages free' and 'managed' (a "
                        "/proc/zoneinfo is needed)")
    nr_managed = _number(path, text, managed, 1, "the Normal zone's managed pages", MAX_PAGES)
    nr_free = _number(path, text, free, 1, "the Normal zone's pages free", MAX_PAGES)
    cpus = list(re.compile(r"^\s+cpu: (\d+)\n\s+count:\s+(\d+)\n\s+high:\s+(\d+)$",
                           re.M | re.A).finditer(text, *m.span(1)))
    nr_cpu_lines = len(re.compile(r"^\s+cpu: ", re.M).findall(text, *m.span(1)))
    if not cpus or len(cpus) != nr_cpu_lines or \
            [c.group(1) for c in cpus] != [str(n) for n in range(len(cpus))]:
        raise UserError(f"{path}: the Normal zone's pagesets are not cpu 0, 1, ... each with "
                        "count and high")
    if len(cpus) > MAX_CPUS:
        raise UserError(f"{path}: {len(cpus)} CPUs' pagesets, over the model's {MAX_CPUS}")
    zone = "more pages than the zone manages"  # a CPU's list holds the zone's pages
    sets = [(_number(path, text, c, 2, f"cpu {n}'s pcp count", nr_managed, zone),
             _number(path, text, c, 3, f"cpu {n}'s pcp high", nr_managed, zone))
            for n, c in enumerate(cpus)]
    pcp = sum(count for count, _ in sets)
    if pcp > nr_managed:
        raise UserError(f"{path}: the pagesets hold more pages than the zone manages")
    if nr_free > nr_managed + VMSTAT_MAX_THRESHOLD * len(sets):
        raise UserError(f"{path}:{_line(text, free.start(1))}: the Normal zone's pages free "
                        f"{nr_free} is over its managed {nr_managed} by more than the "
                        f"{VMSTAT_MAX_THRESHOLD} pages per CPU the counter may lag")
    if nr_free + pcp > nr_managed + VMSTAT_MAX_THRESHOLD * len(sets):
        raise UserError(f"{path}:{_line(text, free.start(1))}: the Normal zone's pages free "
                        f"{nr_free} and its pagesets' {pcp} pages (not counted free) are over "
                        f"its managed {nr_managed} by more than the {VMSTAT_MAX_THRESHOLD} "
                        "pages per CPU the counter may lag")
    return nr_managed, nr_free, sets


def other_lowmem_zones(path):
    """Managed pages of the zones of the Normal zone's node (the first, as ``normal_zone``)
    other than Normal that share min_free_kbytes with it (every populated zone but Movable:
    DMA and DMA32 on x86-64). The node's zones together manage at most MAX_PAGES."""
    text = _read(path)
    node = re.search(r"^Node (\d+), zone\s+Normal$", text, re.M | re.A)
    if not node:
        raise UserError(f"{path}: no Normal zone (a /proc/zoneinfo is needed)")
    zones = re.finditer(rf"^Node {node.group(1)}, zone\s+(\S+)\n(.*?)(?=^Node \d+, zone|\Z)",
                        text, re.S | re.M | re.A)
    out, total = [], 0
    for z in zones:
        managed = _field(path, text, z.group(1), "managed", z.span(2))
        if not managed:
            continue
        pages = _number(path, text, managed, 1, f"zone {z.group(1)}'s managed pages",
                        MAX_PAGES - total, PHYSICAL if not total else
                        f"with the {total} of the node's zones before it, {PHYSICAL}")
        total += pages
        if z.group(1) not in ("Normal", "Movable") and pages > 0:
            out.append(pages)
    return tuple(out)


def node_zone(path, **kwargs):
    """A ``BuddyAllocator`` for the Normal zone of a /proc/zoneinfo as the kernel had it: its
    managed pages, a pageset per CPU, the watermarks and pcp limits of its node (the node's
    other lowmem zones). ``kwargs`` go to ``BuddyAllocator``."""
    from allocator import BuddyAllocator
    managed, _, sets = normal_zone(path)
    return BuddyAllocator(managed, nr_cpus=len(sets), other_zones=other_lowmem_zones(path),
                          **kwargs)
