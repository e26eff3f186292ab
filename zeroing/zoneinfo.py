"""Reading a /proc/zoneinfo snapshot: the Normal zone (managed pages, pages free, each CPU's
pageset) and the node's other lowmem zones, whose sizes set the Normal zone's watermarks and
pcp limits (``allocator.watermarks.zone_limits``)."""
import re

from allocator.buddy import MAX_CPUS

from .validate import UserError


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (a /proc/zoneinfo is needed)") from None
    except OSError as e:
        raise UserError(f"{path}: {e.strerror or e}") from None


def normal_zone(path):
    """(managed, pages free, [(count, high) per CPU]) of the Normal zone of a zoneinfo; a file
    without them, or with pagesets that cannot be (more pages than the zone manages), is a
    UserError naming it."""
    text = _read(path)
    m = re.search(r"zone\s+Normal\n(.*?)(?=^Node \d+, zone|\Z)", text, re.S | re.M)
    managed = m and re.search(r"^\s+managed\s+(\d+)$", m.group(1), re.M)
    free = m and re.search(r"^\s+pages free\s+(\d+)$", m.group(1), re.M)
    if not (managed and free):
        raise UserError(f"{path}: no Normal zone with 'pages free' and 'managed' (a "
                        "/proc/zoneinfo is needed)")
    cpus = re.findall(r"^\s+cpu: (\d+)\n\s+count:\s+(\d+)\n\s+high:\s+(\d+)$", m.group(1),
                      re.M)
    nr_cpu_lines = len(re.findall(r"^\s+cpu: ", m.group(1), re.M))
    if not cpus or len(cpus) != nr_cpu_lines or \
            [int(c) for c, _, _ in cpus] != list(range(len(cpus))):
        raise UserError(f"{path}: the Normal zone's pagesets are not cpu 0, 1, ... each with "
                        "count and high")
    if len(cpus) > MAX_CPUS:
        raise UserError(f"{path}: {len(cpus)} CPUs' pagesets, over the model's {MAX_CPUS}")
    sets = [(int(count), int(high)) for _, count, high in cpus]
    if sum(count for count, _ in sets) > int(managed.group(1)):
        raise UserError(f"{path}: the pagesets hold more pages than the zone manages")
    return int(managed.group(1)), int(free.group(1)), sets


def other_lowmem_zones(path):
    """Managed pages of the zones of the Normal zone's node (the first, as ``normal_zone``)
    other than Normal that share min_free_kbytes with it (every populated zone but Movable:
    DMA and DMA32 on x86-64)."""
    text = _read(path)
    node = re.search(r"^Node (\d+), zone\s+Normal$", text, re.M)
    if not node:
        raise UserError(f"{path}: no Normal zone (a /proc/zoneinfo is needed)")
    zones = re.findall(rf"^Node {node.group(1)}, zone\s+(\S+)\n(.*?)(?=^Node \d+, zone|\Z)",
                       text, re.S | re.M)
    out = []
    for name, body in zones:
        managed = re.search(r"^\s+managed\s+(\d+)$", body, re.M)
        if name not in ("Normal", "Movable") and managed and int(managed.group(1)) > 0:
            out.append(int(managed.group(1)))
    return tuple(out)


def node_zone(path, **kwargs):
    """A ``BuddyAllocator`` for the Normal zone of a /proc/zoneinfo as the kernel had it: its
    managed pages, a pageset per CPU, the watermarks and pcp limits of its node (the node's
    other lowmem zones). ``kwargs`` go to ``BuddyAllocator``."""
    from allocator import BuddyAllocator
    managed, _, sets = normal_zone(path)
    return BuddyAllocator(managed, nr_cpus=len(sets), other_zones=other_lowmem_zones(path),
                          **kwargs)
