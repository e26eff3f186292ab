"""Reading kmem tracepoint output (tracefs ``trace``, ``trace-cmd report``, ``perf script``).

Streams the file line by line (gzip and xz by suffix), so traces larger than memory work.
Formats (include/trace/events/kmem.h, 6.x; DOMAIN.md section 6):
  mm_page_alloc: page=%p pfn=0x%lx order=%d migratetype=%d gfp_flags=%s
  mm_page_free: page=%p pfn=0x%lx order=%d
  mm_page_free_batched: page=%p pfn=0x%lx order=0
  mm_page_alloc_zone_locked: page=%p pfn=0x%lx order=%u migratetype=%d percpu_refill=%d
  mm_page_pcpu_drain: page=%p pfn=0x%lx order=%d migratetype=%d
Before ~5.14 the pfn was printed in decimal; a failed allocation prints ``page= (null) pfn=0``
(6.x: pfn=0 with page (null)); gfp_flags may be names (composites first, old kernels'
``GFP_ZERO`` style), a hex number (some libtraceevent versions), or ``none``.
"""
import bz2
import gzip
import lzma
import re

from allocator.flags import GFP_BITS, GFP_NAMES

KMEM_EVENTS = ("mm_page_alloc", "mm_page_free", "mm_page_free_batched",
               "mm_page_alloc_zone_locked", "mm_page_pcpu_drain", "mm_page_alloc_extfrag")

#: Flag spellings of older kernels (show_gfp_flags before 4.x printed GFP_* for __GFP_*).
OLD_NAMES = {"GFP_WAIT": GFP_BITS["__GFP_DIRECT_RECLAIM"],
             "GFP_REPEAT": GFP_BITS["__GFP_RETRY_MAYFAIL"], "__GFP_REPEAT": GFP_BITS["__GFP_RETRY_MAYFAIL"],
             "__GFP_WAIT": GFP_BITS["__GFP_DIRECT_RECLAIM"], "__GFP_ATOMIC": GFP_BITS["__GFP_HIGH"],
             "GFP_COLD": 0, "__GFP_COLD": 0, "GFP_NOTRACK": 0, "__GFP_NOTRACK": 0,
             "GFP_OTHER_NODE": 0, "__GFP_OTHER_NODE": 0, "GFP_IOFS": 0,
             "__GFP_NOLOCKDEP": 0, "__GFP_SKIP_ZERO": 0, "__GFP_SKIP_KASAN": 0,
             "__GFP_SKIP_KASAN_UNPOISON": 0, "__GFP_SKIP_KASAN_POISON": 0,
             "GFP_NOWAIT": GFP_NAMES["GFP_NOWAIT"]}
for _name, _bit in GFP_BITS.items():
    OLD_NAMES.setdefault("GFP_" + _name[len("__GFP_"):], _bit)

_EVENT = re.compile(r"(?:^|[\s:])(" + "|".join(sorted(KMEM_EVENTS, key=len, reverse=True)) + r"):\s")
#: Any tracepoint line: ... <timestamp>: <system:>event: ...
_OTHER = re.compile(r"\s\d+\.\d+:\s+(?:[\w-]+:)?([\w-]+):")
_FIELD = re.compile(r"(\w+)=(\S*)")
#: CPU and timestamp of a tracefs / trace-cmd / perf script line: "[001] ... 5576.588412:".
_CPU_TS = re.compile(r"\[(\d+)\]\s+(?:\S+\s+)?(\d+)\.(\d+):\s")
_CALLCHAIN = re.compile(r"^\s+(?:=>|[0-9a-f]{6,}\s|\[?<[0-9a-f]+>\]?)")


class TraceError(ValueError):
    """A line that cannot be read: names the file, the line and the reason."""


def open_trace(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", errors="replace")
    if path.endswith(".xz"):
        return lzma.open(path, "rt", errors="replace")
    if path.endswith(".bz2"):
        return bz2.open(path, "rt", errors="replace")
    return open(path, "r", errors="replace")


def load_format_table(path):
    """The GFP name table of a tracefs ``format`` file (its ``__print_flags`` list)."""
    with open(path) as f:
        text = f.read()
    table = {}
    for expr, name in re.findall(r'\{\s*\(\s*unsigned long\s*\)(.*?),\s*"(\w+)"\s*\}', text):
        expr = re.sub(r"\(\s*(?:gfp_t|unsigned long|unsigned int)\s*\)", "", expr)
        expr = re.sub(r"(\d+)U?L{0,2}\b", r"\1", expr)
        if not re.fullmatch(r"[\d\s()<>|&~]+", expr):
            raise TraceError(f"{path}: cannot read the flag expression for {name}")
        table[name] = eval(expr, {"__builtins__": {}}, {})  # digits and bit operators only
    if not table:
        raise TraceError(f"{path}: no __print_flags table found")
    return table


def parse_gfp(value, table=None):
    """GFP bits from a trace's gfp_flags value: names joined by |, a hex number, or none."""
    if value in ("none", "0", ""):
        return 0
    if value.startswith("0x"):
        return int(value, 16)
    bits = 0
    names = table or GFP_NAMES
    for name in value.split("|"):
        if name in names:
            bits |= names[name]
        elif name in OLD_NAMES:
            bits |= OLD_NAMES[name]
        else:
            raise ValueError(f"unknown gfp flag {name!r}")
    return bits


def _int(fields, key, base=10):
    v = fields.get(key)
    if v is None:
        raise ValueError(f"missing {key}=")
    return int(v, 16) if v.startswith("0x") else int(v, base)


def read_events(path, lenient=False, table=None, counts=None, detail=False):
    """Yield (lineno, event, pfn, order, gfp) for kmem page events; with ``detail``
    (lineno, event, pfn, order, gfp, cpu, time in ns), cpu 0 and time -1 where the line
    shows none.

    ``counts`` (a dict) collects ``events`` per name (other events too), ``malformed`` and
    ``malformed_examples``. A bad line raises TraceError, or with ``lenient`` is counted.
    """
    counts = counts if counts is not None else {}
    events = counts.setdefault("events", {})
    counts.setdefault("malformed", 0)
    examples = counts.setdefault("malformed_examples", [])
    with open_trace(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#") or _CALLCHAIN.match(line):
                continue
            if line.startswith(("cpus=", "version =", "CPU ")):
                continue  # trace-cmd report headers
            m = _EVENT.search(line)
            try:
                if not m:
                    other = _OTHER.search(line)
                    if other:
                        events[other.group(1)] = events.get(other.group(1), 0) + 1
                        continue
                    raise ValueError("not a trace event line")
                name = m.group(1)
                fields = dict(_FIELD.findall(line[m.end():]))
                events[name] = events.get(name, 0) + 1
                if name == "mm_page_alloc_extfrag":
                    continue
                pfn = _int(fields, "pfn")
                order = _int(fields, "order")
                if not 0 <= order <= 20:
                    raise ValueError(f"order {order} out of range")
                gfp = parse_gfp(fields.get("gfp_flags", "none"), table) if name == "mm_page_alloc" else 0
                failed = name == "mm_page_alloc" and (fields.get("page") == "" or "(null)" in line)
                if detail:
                    cpu, ts = 0, -1
                    where = _CPU_TS.search(line[:m.start() + 1])
                    if where:
                        frac = where.group(3)
                        cpu = int(where.group(1))
                        ts = int(where.group(2)) * 1_000_000_000 + int(frac) * 10 ** (9 - len(frac))
                    yield lineno, name, (-1 if failed else pfn), order, gfp, cpu, ts
                else:
                    yield lineno, name, (-1 if failed else pfn), order, gfp
            except ValueError as e:
                if not lenient:
                    raise TraceError(f"{path}:{lineno}: {e}: {line.strip()[:160]}") from None
                counts["malformed"] += 1
                if len(examples) < 5:
                    examples.append(f"{path}:{lineno}: {e}")
