"""Reading kmem tracepoint output (tracefs ``trace``, ``trace-cmd report``, ``perf script``).

Streams the file line by line (gzip, xz and bzip2, by suffix or by their first bytes), so
traces larger than memory work.
Formats (include/trace/events/kmem.h, 6.x; DOMAIN.md section 6):
  mm_page_alloc: page=%p pfn=0x%lx order=%d migratetype=%d gfp_flags=%s
  mm_page_free: page=%p pfn=0x%lx order=%d
  mm_page_free_batched: page=%p pfn=0x%lx order=0
  mm_page_alloc_zone_locked: page=%p pfn=0x%lx order=%u migratetype=%d percpu_refill=%d
  mm_page_pcpu_drain: page=%p pfn=0x%lx order=%d migratetype=%d
  mm_page_alloc_extfrag: page=%p pfn=0x%lx alloc_order=%d fallback_order=%d ...
      alloc_migratetype=%d fallback_migratetype=%d ... (read as order and migratetype)
Before ~5.14 the pfn was printed in decimal; a failed allocation prints ``page= (null) pfn=0``
on old kernels and ``page=0000000000000000 pfn=0x0`` on 6.x (%p prints NULL as it is, not
hashed: lib/vsprintf.c ptr_to_id); gfp_flags may be names (composites first, old kernels'
``GFP_ZERO`` style), a hex number (some libtraceevent versions), or ``none``.
With the trace's clock, ``workqueue_execute_start: ... function vmstat_update`` lines (the
vmstat worker, recorded beside them) are read too, as ``vmstat_update`` ticks of their CPU.
"""
import bz2
import codecs
import copy
import gzip
import hashlib
import io
import itertools
import lzma
import os
import re
import tempfile
import zlib
from collections import OrderedDict

import numpy as np

from allocator.buddy import MAX_CPUS, MAX_PAGE_ORDER
from allocator.flags import (GFP_BITS, GFP_MOVABLE_MASK, GFP_MOVABLE_SHIFT, GFP_NAMES,
                            MAX_PFN_BITS, PAGE_ALLOC_COSTLY_ORDER, PAGEBLOCK_ORDER)

from .validate import UserError, printable

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
#: ``name=value``. A match starts only where a word starts: without the lookbehind a long
#: word with no ``=`` after it was tried again from each of its characters (quadratic: a
#: 100,000-character word took a minute). The matches are the same: a word's inner characters
#: never began one (the word's start, or an earlier token's value, took them first).
_FIELD = re.compile(r"(?<!\w)(\w+)=(\S*)")
#: The longest line read (characters): a kmem event line is under 200, and tracefs prints
#: an event into a buffer of one or two pages (8 KiB; 128 KiB with 64 KiB pages); a longer
#: line is not a trace line: it is refused (lenient: skipped), never held whole nor parsed.
MAX_LINE = 1 << 20
#: Timestamps are seconds since boot: this bound keeps nanoseconds within int64.
MAX_SECONDS = 10**9
#: CPU and timestamp of a tracefs / trace-cmd / perf script line: "[001] ... 5576.588412:".
_CPU_TS = re.compile(r"\[(\d+)\]\s+(?:\S+\s+)?(\d+)\.(\d+):\s")
#: What tracefs and trace-cmd print where the ring buffer overran: "CPU:1 [LOST 123 EVENTS]".
_LOST = re.compile(r"\[LOST (\d+) EVENTS\]")
#: The same with a timestamp that is a count, not seconds (trace_clock counter, x86-tsc).
_CPU_COUNTER = re.compile(r"\[\d+\]\s+(?:\S+\s+)?(\d+):\s")
#: ``workqueue_execute_start`` of the vmstat worker (``vmstat_update``: ``decay_pcp_high()``
#: on its CPU), recorded beside the kmem events.
_VMSTAT_WORK = re.compile(r"function vmstat_update\s*$")


def pcp_allowed_order(order, thp=True):
    """``pcp_allowed_order()``: the orders a per-cpu list holds (0-3, and THPs)."""
    return order <= PAGE_ALLOC_COSTLY_ORDER or (thp and order == PAGEBLOCK_ORDER)


#: The event name ``read_events`` gives such a line (with ``detail``).
VMSTAT_TICK = "vmstat_update"
_CALLCHAIN = re.compile(r"^\s+(?:=>|[0-9a-f]{6,}\s|\[?<[0-9a-f]+>\]?)")


class BuddyTakes:
    """Which ``mm_page_alloc_extfrag`` lines took pages from the buddy that no
    ``mm_page_alloc_zone_locked`` line counted (6.18): a claim of less than a pageblock ends in
    ``__rmqueue_smallest()``, which prints zone_locked for the same pfn just before (under the
    zone lock: no other line of that pfn comes between); a steal (``__rmqueue_steal``) and a
    claim of a whole pageblock or more print extfrag only. ``seen(name, pfn)`` takes every
    kmem row in order; it returns True for an extfrag row that took uncounted pages."""

    RECENT = 64

    def __init__(self):
        self.recent = OrderedDict()

    def seen(self, name, pfn):
        if name == "mm_page_alloc_zone_locked":
            self.recent[pfn] = None
            if len(self.recent) > self.RECENT:
                self.recent.popitem(last=False)
            return False
        counted = self.recent.pop(pfn, True) is None  # any other line of it ends the claim
        return name == "mm_page_alloc_extfrag" and not counted


class BatchedRepeats:
    """``mm_page_free_batched`` repeating a recent ``mm_page_free`` of the same pfn is the same
    free (the kernel traces both for one page): ``repeat(name, pfn)`` says so, and remembers
    the last ``RECENT_FREES`` pfns freed by ``mm_page_free`` (an allocation forgets its pfn)."""

    RECENT_FREES = 4096

    def __init__(self):
        self.recent = OrderedDict()

    def allocated(self, pfn):
        self.recent.pop(pfn, None)

    def repeat(self, name, pfn):
        """True for a batched free that repeats a recent free (skip it); records frees."""
        if name == "mm_page_free_batched" and pfn in self.recent:
            del self.recent[pfn]
            return True
        if name == "mm_page_free":
            self.recent[pfn] = None
            if len(self.recent) > self.RECENT_FREES:
                self.recent.popitem(last=False)
        return False


class TraceError(UserError):
    """A line or file that cannot be read: names the file, the line or byte, and the reason."""


#: What a damaged compressed stream raises while it is read (truncated: EOFError).
DECOMPRESS_ERRORS = (EOFError, OSError, lzma.LZMAError, zlib.error)


class _Streams(io.RawIOBase):
    """The text of xz or bz2 streams one after another (as ``xz -d`` and ``bzip2 -d`` read
    them), where only nothing (xz: or its zero stream padding) may follow the last:
    ``LZMAFile`` and ``BZ2File`` stop without a word at bytes that start no stream, where a
    gzip file is refused (trailing data is damage: an OSError naming it)."""

    BLOCK = io.DEFAULT_BUFFER_SIZE

    def __init__(self, raw, decompressor, magic, padding=False):
        self.raw, self.decompressor, self.magic, self.padding = raw, decompressor, magic, padding
        self.dec, self.data, self.pos = decompressor(), b"", 0

    def readable(self):
        return True

    def tell(self):
        return self.pos

    def readinto(self, b):
        while True:
            if self.dec.eof:  # the next stream, or the end
                data, padding = self.dec.unused_data, 0
                while True:
                    if self.padding:
                        rest = data.lstrip(b"\0")
                        padding += len(data) - len(rest)
                        data = rest
                    if len(data) >= len(self.magic):
                        break
                    more = self.raw.read(self.BLOCK)
                    if not more:
                        break
                    data += more
                if padding % 4:  # xz: stream padding comes in multiples of 4 bytes
                    raise OSError(f"{padding} bytes of stream padding (a multiple of 4 is one)")
                if not data:
                    return 0
                if not data.startswith(self.magic):
                    raise OSError("bytes after the last compressed stream start no stream")
                self.dec, self.data = self.decompressor(), data
            if self.dec.needs_input and not self.data:
                self.data = self.raw.read(self.BLOCK)
                if not self.data:
                    raise EOFError("compressed data ends before the end-of-stream marker")
            out = self.dec.decompress(self.data, len(b))
            self.data = b""
            if out:
                b[:len(out)] = out
                self.pos += len(out)
                return len(out)


#: The first bytes of the compressed formats, by the suffix they usually have.
_MAGIC = {".gz": rb"\x1f\x8b", ".xz": rb"\xfd7zXZ\x00", ".bz2": rb"BZh[1-9]",
          ".zst": rb"\x28\xb5\x2f\xfd", ".lz4": rb"\x04\x22\x4d\x18"}
#: Those not read (no module of the standard library reads them).
_UNREAD = {".zst": "zstd", ".lz4": "lz4"}


class TraceFile:
    """The text lines of a trace, plain or compressed (by suffix: .gz, .xz, .bz2; a file
    without one of those by its first bytes).

    ``offset`` is how far into the file (compressed bytes) reading has got, for progress
    and for naming where a damaged stream broke; ``size`` is the file's size.
    """

    def __init__(self, path):
        self.path = path
        self.raw = open(path, "rb")
        self.size = os.fstat(self.raw.fileno()).st_size
        kind = next((k for k in (".gz", ".xz", ".bz2") if path.endswith(k)), None)
        if kind is None:  # a compressed file named otherwise: read by what it holds
            head = self.raw.read(6)
            self.raw.seek(0)
            kind = next((k for k, magic in _MAGIC.items() if re.match(magic, head)), None)
            if kind in _UNREAD:
                self.raw.close()
                raise TraceError(f"{path}: {_UNREAD[kind]}-compressed: not read (decompress "
                                 "it, or compress it with gzip, xz or bzip2)")
        if kind == ".gz":
            stream = gzip.GzipFile(fileobj=self.raw, mode="rb")
        elif kind == ".xz":
            stream = io.BufferedReader(_Streams(self.raw, lzma.LZMADecompressor,
                                                b"\xfd7zXZ\x00", padding=True))
        elif kind == ".bz2":
            stream = io.BufferedReader(_Streams(self.raw, bz2.BZ2Decompressor, b"BZh"))
        else:
            stream = self.raw
        self.stream = stream
        self.text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace")

    @property
    def offset(self):
        return self.raw.tell()

    def __iter__(self):
        return iter(self.text)

    def close(self):
        self.text.close()
        self.raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def damage(self, exc, lineno):
        """The one-line description of a read error of the compressed stream."""
        if self.stream is self.raw:  # not compressed: the file itself cannot be read
            return (f"{self.path}: cannot be read at byte {self.offset} "
                    f"({getattr(exc, 'strerror', None) or exc or type(exc).__name__}), "
                    f"after line {lineno}")
        what = ("ends early (truncated file)" if isinstance(exc, EOFError)
                else f"is damaged ({exc or type(exc).__name__})")
        if isinstance(exc, gzip.BadGzipFile) and ("CRC" in str(exc) or "length" in str(exc)):
            what += (" (gzip checks a member's data only at its end: the damage may lie "
                     "anywhere in it, and lines read before this may be garbled)")
        try:
            text = f", {self.stream.tell()} bytes of text decoded"
        except (OSError, ValueError, EOFError):
            text = ""
        # The decompressor reads the file in blocks: the error lies in the block before offset.
        return (f"{self.path}: compressed data {what} at byte {self.offset} of {self.size} "
                f"(read in blocks of {io.DEFAULT_BUFFER_SIZE}){text}, after line {lineno}")


def open_trace(path):
    """The trace's text lines (a TraceFile; use it as a context manager)."""
    return TraceFile(path)


#: A tracefs format file is a few KiB (6.18's mm_page_alloc: 5 KiB); a larger one is refused.
MAX_FORMAT_BYTES = 1 << 20
#: A flag expression of a format file is under 1 KiB (6.18: at most 416 characters, 12
#: parentheses deep); a longer one is refused before it is evaluated.
MAX_FLAG_EXPR = 4096
#: An entry of the ``__print_flags`` list: ``{( unsigned long)EXPR, "NAME"}``. EXPR holds no
#: brace or quote, so a try never runs past the next entry (``.*?`` did: quadratic).
_FLAG_ENTRY = re.compile(r'\{\s*\(\s*unsigned long\s*\)([^{}"]*),\s*"(\w+)"\s*\}')


def load_format_table(path):
    """The GFP name table of a tracefs ``format`` file (its ``__print_flags`` list)."""
    with open(path, "rb") as f:
        data = f.read(MAX_FORMAT_BYTES + 1)
    if len(data) > MAX_FORMAT_BYTES:
        raise TraceError(f"{path}: not a tracefs format file (larger than {MAX_FORMAT_BYTES} "
                         "bytes; a kernel's is a few KiB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not a tracefs format file (not text: byte {e.start} "
                         f"is {e.object[e.start:e.start + 1]!r})") from None
    table = {}
    for expr, name in _FLAG_ENTRY.findall(text):
        if name in table:
            raise TraceError(f"{path}: flag {name} is listed twice (a kernel's __print_flags "
                             "list names each flag once)")
        if len(expr) > MAX_FLAG_EXPR:
            raise TraceError(f"{path}: the flag expression for {name} is too long ({len(expr)} "
                             f"characters; at most {MAX_FLAG_EXPR}, a kernel's are under 1 KiB)")
        expr = re.sub(r"\(\s*(?:__force\s+)?(?:gfp_t|unsigned long|unsigned int)\s*\)", "",
                      expr)
        # Kernels before the GFP bit enum (6.9) print hex constants: ((gfp_t)0x400000u).
        expr = re.sub(r"\b0[xX]([0-9a-fA-F]{1,16})[uU]?[lL]{0,2}\b",
                      lambda m: str(int(m.group(1), 16)), expr)
        expr = re.sub(r"\b(\d+)[uU]?[lL]{0,2}\b", r"\1", expr)
        if not re.fullmatch(r"[\d\s()<>|&~]+", expr) or re.search(r"<<\s*\d{3,}", expr):
            raise TraceError(f"{path}: cannot read the flag expression for {name}")
        try:
            value = eval(expr, {"__builtins__": {}}, {})  # digits and bit operators only
        except (SyntaxError, ValueError, TypeError):
            value = None
        except (RecursionError, MemoryError):  # the parser's or compiler's depth limit
            raise TraceError(f"{path}: the flag expression for {name} is nested too deeply "
                             "to evaluate") from None
        if not isinstance(value, int) or not 0 <= value < GFP_LIMIT:
            shown_expr = expr.strip() if len(expr.strip()) <= 200 else expr.strip()[:200] + "..."
            raise TraceError(f"{path}: the flag expression for {name} ({shown_expr}) is not "
                             "a gfp_t value (32 bits)")
        if value == 0:  # mmflags.h leaves out a flag its config makes 0 (the KASAN ones)
            raise TraceError(f"{path}: flag {name} has the value 0 (a kernel's __print_flags "
                             "list names only flags with a bit)")
        table[name] = value
    if not table:
        raise TraceError(f"{path}: no __print_flags table found")
    return table


#: gfp_t is an unsigned int.
GFP_LIMIT = 1 << 32


def parse_gfp(value, table=None):
    """GFP bits from a trace's gfp_flags value: names joined by |, a hex number, or none."""
    if not value:  # the kernel prints none for no flags
        raise ValueError("gfp_flags is empty")
    if value in ("none", "0"):
        return 0
    if value.startswith("0x"):
        bits = int(value, 16)
        if bits >= GFP_LIMIT:
            raise ValueError(f"gfp_flags {value} does not fit gfp_t (32 bits)")
        return bits
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


_NUMBER = {10: re.compile(r"-?[0-9]+"), 16: re.compile(r"-?[0-9a-fA-F]+")}
#: A NULL page pointer as %p prints it (6.x: zeros; a failed allocation, with pfn 0).
_NULL_PAGE = re.compile(r"(?:0x)?0+|\(nil\)")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
#: MIGRATE_TYPES is at most 6 (Unmovable, Movable, Reclaimable, HighAtomic, CMA, Isolate).
MAX_MIGRATETYPE = 5


def _int(fields, key, base=10):
    """Field ``key`` as the kernel prints it: decimal (or ``base``), or 0x hex."""
    v = fields.get(key)
    if v is None:
        raise ValueError(f"missing {key}=")
    if len(v) > 20:  # 64 bits take at most 20 digits, 0x and 16 hex digits
        raise ValueError(f"{key}= has {len(v)} characters, more than a 64-bit number takes")
    if _HEX.fullmatch(v):
        return int(v, 16)
    if not _NUMBER[base].fullmatch(v):
        raise ValueError(f"{key}={v} is not a number")
    return int(v, base)


def _cpu_time(head):
    """(cpu, timestamp in ns) of a line's part before its event name."""
    where = _CPU_TS.search(head)
    if not where:
        counter = _CPU_COUNTER.search(head)
        if counter:  # trace_clock counter, x86-tsc, ...: no seconds to replay in
            raise ValueError(f"timestamp {counter.group(1)[:24]} is not seconds.microseconds "
                             "(a trace_clock of counts, such as counter or x86-tsc: record "
                             "with the local, global or mono clock for --trace-clock)")
        raise ValueError("no [cpu] and timestamp before the event name (the trace's clock was "
                         "asked for)")
    frac = where.group(3)
    cpu_digits = where.group(1).lstrip("0") or "0"  # leading zeros: [001], 0005594.1
    cpu = int(cpu_digits) if len(cpu_digits) <= 9 else MAX_CPUS
    if cpu >= MAX_CPUS:
        raise ValueError(f"cpu {where.group(1)[:24]} out of range (0-{MAX_CPUS - 1}, the "
                         "largest NR_CPUS)")
    whole = where.group(2).lstrip("0") or "0"
    seconds = int(whole) if len(whole) <= 12 else MAX_SECONDS
    if seconds >= MAX_SECONDS:
        raise ValueError(f"timestamp {where.group(2)}.{frac[:9]} out of range (under "
                         f"{MAX_SECONDS} s, about 30 years of uptime)")
    # ns: a clock finer than 1 ns is cut to ns, never turned into a float.
    return cpu, seconds * 1_000_000_000 + int((frac + "000000000")[:9])


#: Text handed to the compiled reader at a time (characters).
BLOCK = 1 << 18
#: What TextIOWrapper reads of its stream at a time (``read1``): reading the same pieces
#: gives the same lines before a damaged part of a compressed file as reading line by line.
#: Under MAX_LINE, so only a line begun in an earlier piece can be too long.
_CHUNK = 8192


def _blocks(f, lenient, counts, progress):
    """(number of the first line, text, True) for blocks of whole lines of an open TraceFile,
    and (its number, its first ``MAX_LINE + 1`` characters, False) for a line longer than
    ``MAX_LINE``. Decoded as TextIOWrapper does (UTF-8 with replacement, universal newlines);
    the last line may lack its newline. A damaged compressed stream gives the lines decoded
    before it, then raises TraceError (with ``lenient``: records ``counts["truncated"]``)."""
    decoder = io.IncrementalNewlineDecoder(
        codecs.getincrementaldecoder("utf-8")(errors="replace"), translate=True)
    read = getattr(f.stream, "read1", f.stream.read)
    parts, size = [], 0  # whole lines not yet given out
    head = ""  # the line begun, without its newline
    long_line = None  # a line past MAX_LINE, given out once its newline comes
    lineno = 0  # lines given out
    while True:
        try:
            data = read(_CHUNK)
            text = decoder.decode(data, final=not data)
        except DECOMPRESS_ERRORS as e:
            if parts:
                yield lineno + 1, "".join(parts), True
                lineno += sum(part.count("\n") for part in parts)
            message = f.damage(e, lineno)
            if not lenient:
                raise TraceError(message) from None
            counts["truncated"] = message
            return
        if long_line is not None:  # skip to the end of the long line
            cut = text.find("\n")
            if cut < 0 and data:
                continue
            text = text[cut + 1:] if cut >= 0 else ""
            if parts:
                yield lineno + 1, "".join(parts), True
                lineno += sum(part.count("\n") for part in parts)
                parts, size = [], 0
            lineno += 1
            yield lineno, long_line, False
            long_line = None
        cut = text.find("\n")
        if cut >= 0:
            first = head + text[:cut + 1]
            last = text.rfind("\n")
            head = text[last + 1:]
            if len(first) - 1 > MAX_LINE:  # readline(MAX_LINE + 1) would stop inside it
                if parts:
                    yield lineno + 1, "".join(parts), True
                    lineno += sum(part.count("\n") for part in parts)
                    parts, size = [], 0
                lineno += 1
                yield lineno, first[:MAX_LINE + 1], False
                first = ""
            parts += [first, text[cut + 1:last + 1]]
            size += len(first) + last - cut
        else:
            head += text
        if len(head) > MAX_LINE:
            long_line, head = head[:MAX_LINE + 1], ""
        if not data or size >= BLOCK:
            if head and not data:
                parts.append(head)
            if parts:
                text = "".join(parts)
                if text:
                    yield lineno + 1, text, True
                    lineno += text.count("\n") + (not text.endswith("\n"))
                parts, size = [], 0
            if progress is not None:
                progress(f.offset, f.size)
            if not data:
                return


def _columns_of(row):
    """One row as a block of columns (``read_events``' ``sink``)."""
    return [(v,) for v in row]


def _block_rows(path, first, text, one_line, events, counts, gfps, table, detail, sink=None,
                rows=True):
    """The rows of a block of whole lines (``_blocks``): lines of the usual shape read by
    ``trace_scan``, the others by ``one_line``, all in line order, counted as they come.
    ``rows=False``: the rows go to ``sink`` only, and a None is yielded a block of them."""
    from .trace_scan import EV_ALLOC, FAST, NAMES, scan
    data = text.encode("utf-8")
    if not text.endswith("\n"):
        data += b"\n"
    kind, out = scan(data)
    fast = kind == FAST
    allocs = np.flatnonzero(fast & (out[:, 0] == EV_ALLOC))
    gfp = np.zeros(len(kind), np.int64)
    for k, gs, ge in zip(allocs.tolist(), out[allocs, 7].tolist(), out[allocs, 8].tolist()):
        flags = data[gs:ge]
        bits = gfps.get(flags, -1)
        if bits == -1:
            try:
                bits = parse_gfp(flags.decode(), table)
                if bits & GFP_MOVABLE_MASK == GFP_MOVABLE_MASK:
                    bits = None
            except ValueError:
                bits = None
            gfps[flags] = bits
        if bits is None:  # one_line names what is wrong with them
            fast[k] = False
        else:
            gfp[k] = bits
    if detail:
        fast &= out[:, 9] != 0
    lines = None if fast.all() else text.split("\n")
    n = len(kind)
    k = 0
    while k < n:
        if not fast[k]:
            row = one_line(first + k, lines[k] + ("\n" if k < n - 1 or text.endswith("\n")
                                                  else ""))
            if row is not None:
                if sink is not None:
                    sink(_columns_of(row))
                yield row if rows else None
            k += 1
            continue
        end = k + 1
        while end < n and fast[end]:
            end += 1
        ev = out[k:end, 0]
        seen, at = np.unique(ev, return_index=True)
        for e in seen[np.argsort(at)].tolist():  # in the order the lines name them
            events[NAMES[e]] = events.get(NAMES[e], 0) + int(np.count_nonzero(ev == e))
        mt = out[k:end, 3]
        g = gfp[k:end]
        differs = np.count_nonzero((ev == EV_ALLOC) & (mt >= 0)
                                   & (mt != (g & GFP_MOVABLE_MASK) >> GFP_MOVABLE_SHIFT))
        if differs:
            counts["migratetype_differs"] = counts.get("migratetype_differs", 0) + int(differs)
        if not rows:  # the block as Spooled.read_columns gives it: no Python int a field
            block = np.empty((9 if detail else 5, end - k), np.int64)
            block[0] = np.arange(first + k, first + end)
            block[1] = ev  # trace_scan's event numbers are EVENT_CODES'
            block[2:4] = out[k:end, 1:3].T
            block[4] = g
            if detail:
                block[5:7] = out[k:end, 5:7].T
                block[7] = mt
                block[8] = out[k:end, 4]
            sink(block)
            yield None
            k = end
            continue
        cols = [range(first + k, first + end), [NAMES[e] for e in ev.tolist()],
                out[k:end, 1].tolist(), out[k:end, 2].tolist(), g.tolist()]
        if detail:
            cols += [out[k:end, 5].tolist(), out[k:end, 6].tolist(), mt.tolist(),
                     out[k:end, 4].tolist()]
        if sink is not None:
            sink(cols)
        yield from zip(*cols)
        k = end


def shown(line, width=160):
    """A trace line as an error message quotes it: cut to ``width``, its control characters
    (a terminal escape among them) written as escapes rather than sent to the terminal."""
    return printable(line.strip()[:width])


#: Events of the last trace read whole, kept for the next read of the same file with the same
#: options (a replay reads it twice: to size the zone, then to run; `pcp_trace_check.py`
#: replays one trace six ways): at most this many, about 250 bytes each.
CACHE_EVENTS = 1 << 18
_cache = {}


#: Files up to this size are hashed for the key (a rewrite within the file system's clock
#: tick keeps size and mtime); larger ones, beyond what CACHE_EVENTS events take as text,
#: are neither hashed nor kept.
CACHE_BYTES = 1 << 26


def _cache_key(path, lenient, table, detail):
    """What a kept read must match: the file's bytes (by hash) and the options."""
    try:
        st = os.stat(path)
        if st.st_size > CACHE_BYTES:
            return None
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    names = tuple(sorted(table.items())) if table else None
    return (os.path.realpath(path), st.st_size, digest.digest(), lenient, names, detail)


def read_events(path, lenient=False, table=None, counts=None, progress=None, detail=False,
                sink=None, rows=True):
    """Yield (lineno, event, pfn, order, gfp) for kmem page events; with ``detail``
    (lineno, event, pfn, order, gfp, cpu, time in ns, migratetype, percpu_refill), a line
    that shows no CPU and time being a bad line; the last two are the line's fields, -1 where
    it has none (the per-cpu lists' start is read from them: ``pcp_start.py``).

    ``counts`` (a dict) collects ``events`` per name (other events too; the lines read, not
    those skipped), ``malformed``, ``malformed_examples``, ``migratetype_differs``
    (mm_page_alloc lines whose migratetype is not the one their gfp_flags give: a kernel with
    mobility grouping off, or flags read wrong; the model places by the flags) and, for a
    damaged compressed file read with ``lenient``, ``truncated`` (where it broke). A bad line
    raises TraceError, or with ``lenient`` is counted as malformed and skipped.
    ``progress(bytes_read, size)`` is called every few thousand lines.
    A small trace read whole is kept (``CACHE_EVENTS``): the next read of the same file,
    unchanged, with the same options and an empty ``counts``, gives the same events and
    counts without parsing. ``sink(columns)``, if given, gets the rows as blocks of columns
    (a list of sequences, one a field) before they are yielded (``Spooled`` keeps them).
    ``rows=False`` (with a ``sink``): the rows go to the sink alone, and the generator yields
    a None now and then (a block of rows, or a line), for a reader of blocks of columns that
    need not pay for a Python tuple a row; the sink then gets the compiled reader's lines as
    int64 arrays (a row a field, the event names as ``EVENT_CODES``).
    """
    if not rows and sink is None:
        raise ValueError("read_events(rows=False) gives its rows to a sink alone: give one")
    counts = counts if counts is not None else {}
    key = _cache_key(path, lenient, table, detail) if not counts else None
    hit = _cache.get(key) if key else None
    if hit is not None:
        kept, seen = hit
        counts.update(copy.deepcopy(seen))
        if sink is not None and kept:
            sink([list(col) for col in zip(*kept)])
        if rows:
            yield from kept
        else:
            yield None
        if progress is not None:
            progress(key[1], key[1])
        return
    kept = [] if key else None
    if rows:
        for ev in _parse(path, lenient, table, counts, progress, detail, sink):
            if kept is not None:
                kept.append(ev)
                if len(kept) > CACHE_EVENTS:
                    kept = None
            yield ev
    else:
        held = 0

        def keep(cols):
            nonlocal kept, held
            sink(cols)
            if kept is not None:
                kept.append(cols)
                held += len(cols[0])
                if held > CACHE_EVENTS:
                    kept = None
        yield from _parse(path, lenient, table, counts, progress, detail, keep, rows=False)
        if kept is not None:
            kept = [row for cols in kept for row in _rows_of(cols)]
    if kept is not None:
        _cache.clear()
        _cache[key] = (kept, copy.deepcopy(counts))


#: Event names by the number ``Spooled.read_columns`` gives them (the kmem events, then the
#: vmstat worker's tick).
EVENT_NAMES = KMEM_EVENTS + (VMSTAT_TICK,)
EVENT_CODES = {name: code for code, name in enumerate(EVENT_NAMES)}


def _column_block(pending):
    """Column blocks (``read_events``' ``sink``: lists of sequences, or int64 arrays with the
    event codes already) as one int64 array, a row a field, the event names as
    ``EVENT_CODES``; a ValueError for blocks of different widths."""
    fields = len(pending[0])
    if any(len(cols) != fields for cols in pending):
        raise ValueError("rows of different lengths")
    parts, lists = [], []

    def close_lists():
        if lists:
            cols = [list(itertools.chain.from_iterable(c[j] for c in lists))
                    for j in range(fields)]
            cols[1] = [EVENT_CODES[v] for v in cols[1]]
            parts.append(np.array(cols, dtype=np.int64).reshape(fields, len(cols[0])))
            lists.clear()
    for cols in pending:
        if isinstance(cols, np.ndarray):
            close_lists()
            parts.append(cols)
        else:
            lists.append(cols)
    close_lists()
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _rows_of(cols):
    """A column block as ``read_events``' rows."""
    if isinstance(cols, np.ndarray):
        cols = cols.tolist()
        cols[1] = [EVENT_NAMES[c] for c in cols[1]]
    return zip(*cols)


class Spooled:
    """A trace a replay reads more than once (to size the zone, to split the per-cpu lists'
    start, to run): the first read parses it (``read_events``) and keeps its rows in a
    temporary file, which the later reads give back, with the same counts, without parsing
    (about four times faster than parsing). A row takes 8 bytes a field (72 with
    ``detail``, about half the text). Where the file cannot be written, or the first read
    stopped early, the next read parses again. ``keep=False``: every read parses.
    ``read`` gives rows; ``read_columns`` the same rows as blocks of columns, for compiled
    consumers."""

    BLOCK = 1 << 16  # rows a write

    def __init__(self, path, lenient=False, table=None, detail=False, keep=True):
        self.path, self.lenient, self.table, self.detail = path, lenient, table, detail
        self.keep = keep
        self.store = None
        self.blocks = None  # rows of each block written, once a whole read is kept
        self.counts = None  # what the first read counted
        self.parses = 0
        self.filling = False  # a first read is keeping rows: another one parses alone

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.store is not None:
            self.store.close()
        self.store = self.blocks = None

    def read(self, counts=None, progress=None):
        """``read_events(path, lenient, table, counts, progress, detail)``, kept or parsed.
        ``counts`` is filled as the read ends (as it goes with ``keep=False``)."""
        if self.blocks is not None:
            return self._again(counts, progress)
        return self._first(counts, progress)

    def read_columns(self, counts=None, progress=None):
        """``read``'s rows as int64 arrays of (fields, rows), at most ``BLOCK`` rows or so
        each; the event names as ``EVENT_CODES``."""
        if self.blocks is not None:
            yield from self._stored(progress)
            if counts is not None:
                counts.update(copy.deepcopy(self.counts))
            return
        pending, held = [], 0

        def sink(cols):
            nonlocal held
            pending.append(cols)
            held += len(cols[0])
        for _ in self._first(counts, progress, sink, rows=False):
            if held >= self.BLOCK:
                yield _column_block(pending)
                pending.clear()
                held = 0
        if pending:
            yield _column_block(pending)

    def _first(self, counts, progress, outer=None, rows=True):
        """Parse; keep the rows where asked; ``outer`` gets the column blocks too (with
        ``rows=False`` alone: ``read_events``)."""
        self.parses += 1
        if not self.keep or self.filling:
            yield from read_events(self.path, self.lenient, self.table, counts, progress,
                                   self.detail, outer, rows)
            return
        self.close()
        self.filling = True
        try:
            self.store = tempfile.TemporaryFile(prefix="zeroing-trace-rows-", buffering=0)
        except OSError:
            self.store = None
        counted = {}
        pending, blocks = [], []  # column blocks not yet written; rows of each written
        held = 0

        def sink(cols):
            nonlocal held
            if outer is not None:
                outer(cols)
            if self.store is not None:
                pending.append(cols)
                held += len(cols[0])
                if held >= self.BLOCK:
                    self._write(pending, blocks)
                    pending.clear()
                    held = 0
        try:
            yield from read_events(self.path, self.lenient, self.table, counted, progress,
                                   self.detail, sink, rows)
            if self.store is not None and pending:
                self._write(pending, blocks)
            if self.store is not None:
                self.blocks, self.counts = blocks, copy.deepcopy(counted)
        finally:
            self.filling = False
            if counts is not None:
                counts.update(counted)
            if self.blocks is None:
                self.close()

    def _write(self, pending, blocks):
        """Append the column blocks ``pending`` as one block; on failure keep nothing."""
        try:
            block = _column_block(pending)
            data = block.tobytes()
            if self.store.write(data) != len(data):
                raise OSError("short write")
        except (OSError, OverflowError, ValueError, TypeError, KeyError):
            self.close()
            return
        blocks.append(block.shape[1])

    def _stored(self, progress):
        """The kept column blocks, in order (``pread``: reads may interleave)."""
        fd = self.store.fileno()
        fields = 9 if self.detail else 5
        total, done, at = sum(self.blocks), 0, 0
        size = os.path.getsize(self.path) if progress is not None else 0
        for n in self.blocks:
            # into a writable array: the compiled readers are compiled for those alone
            block = np.empty((fields, n), np.int64)
            if os.preadv(fd, [block], at) != block.nbytes:
                raise TraceError(f"{self.path}: the rows kept in a temporary file came back "
                                 "short (the file system failed under it)")
            at += block.nbytes
            yield block
            done += n
            if progress is not None:
                progress(size * done // total, size)

    def _again(self, counts, progress):
        for block in self._stored(progress):
            yield from _rows_of(block)
        if counts is not None:
            counts.update(copy.deepcopy(self.counts))


def _parse(path, lenient, table, counts, progress, detail, sink=None, rows=True):
    """``read_events`` on the file itself: blocks of lines through the compiled reader
    (``trace_scan``), and each line it leaves, or a line too long for it, through
    ``one_line``, the rules every line answers to."""
    events = counts.setdefault("events", {})
    counts.setdefault("malformed", 0)
    examples = counts.setdefault("malformed_examples", [])
    gfps = {}  # gfp_flags bytes -> bits (None: Python names what is wrong with them)

    def one_line(lineno, line):
        """The row of one line (None for a line that is no kmem event, or was skipped)."""
        if not line.strip() or line.lstrip().startswith("#"):
            return None
        m = _EVENT.search(line)
        other = _OTHER.search(line)
        if m and other and other.start(1) < m.start(1) and other.group(1) not in KMEM_EVENTS:
            m = None  # another event's text names one ("tracing_mark_write: mm_page_alloc: ")
        if not m and not other and (_CALLCHAIN.match(line) or line.startswith(
                ("cpus=", "version =", "CPU "))):  # perf's call chains, trace-cmd's headers
            return None
        try:
            if len(line) > MAX_LINE and not line.endswith("\n"):  # cut by _blocks
                raise ValueError(f"line longer than {MAX_LINE} characters (not a trace "
                                 "line)")
            if not m:
                if other and other.group(1) in KMEM_EVENTS:  # "mm_page_alloc:page=...": the
                    # kernel prints a space there; without one the fields cannot be told apart
                    raise ValueError(f"no space after {other.group(1)}: (the kernel prints "
                                     "one before the fields)")
                if other:
                    tick = None
                    if detail and other.group(1) == "workqueue_execute_start" and \
                            _VMSTAT_WORK.search(line):  # the vmstat worker ran here
                        tick = (lineno, VMSTAT_TICK, 0, 0, 0,
                                *_cpu_time(line[:other.start(1)]), -1, -1)
                    events[other.group(1)] = events.get(other.group(1), 0) + 1
                    return tick
                lost = _LOST.search(line)
                if lost:
                    raise ValueError(f"the tracer lost {lost.group(1)[:24]} events here (its "
                                     "buffer overran): the trace is incomplete (record with a "
                                     "larger buffer; --lenient replays what is there)")
                raise ValueError("not a trace event line")
            name = m.group(1)
            pairs = _FIELD.findall(line[m.end():])
            fields = dict(pairs)
            if len(fields) < len(pairs):
                seen = set()
                twice = next(k for k, _ in pairs if k in seen or seen.add(k))
                raise ValueError(f"field {twice} given twice")
            # mm_page_alloc_extfrag (a steal or a claim from another migratetype) names the
            # block's order and list alloc_order and alloc_migratetype.
            extfrag = name == "mm_page_alloc_extfrag"
            order_key, mt_key = (("alloc_order", "alloc_migratetype") if extfrag
                                 else ("order", "migratetype"))
            pfn = _int(fields, "pfn")
            order = _int(fields, order_key)
            if not 0 <= order <= MAX_PAGE_ORDER:
                raise ValueError(f"order {order} out of range (0-{MAX_PAGE_ORDER}, the "
                                 "model's MAX_PAGE_ORDER)")
            if pfn < 0:
                raise ValueError(f"pfn {pfn} is negative")
            if pfn >> MAX_PFN_BITS:
                raise ValueError(f"pfn {pfn:#x} is 2^{MAX_PFN_BITS} or more (past x86-64's "
                                 "52-bit physical addresses)")
            if pfn & ((1 << order) - 1):  # the buddy hands out and takes back whole blocks
                raise ValueError(f"pfn {pfn:#x} is not aligned to its order {order} (a "
                                 f"block of 2^{order} pages starts at a multiple of it)")
            if name == "mm_page_free_batched" and order != 0:
                raise ValueError(f"order {order} on mm_page_free_batched (the kernel "
                                 "prints order=0: it frees order-0 pages only)")
            refill = -1
            if name == "mm_page_alloc_zone_locked" and "percpu_refill" in fields:
                refill = _int(fields, "percpu_refill")
                if refill not in (0, 1):
                    raise ValueError(f"percpu_refill {refill} out of range (0-1: the "
                                     "kernel prints a flag)")
            if name == "mm_page_alloc" and "gfp_flags" not in fields:
                raise ValueError("mm_page_alloc without gfp_flags (the model places and "
                                 "zeroes by them)")
            gfp = parse_gfp(fields["gfp_flags"], table) if name == "mm_page_alloc" else 0
            if gfp & GFP_MOVABLE_MASK == GFP_MOVABLE_MASK:
                raise ValueError("gfp_flags has both __GFP_MOVABLE and __GFP_RECLAIMABLE "
                                 "(no migratetype: gfp_migratetype() warns on it)")
            mt = _int(fields, mt_key) if mt_key in fields else -1
            if not -1 <= mt <= MAX_MIGRATETYPE or (mt == -1 and mt_key in fields):
                raise ValueError(f"migratetype {mt} out of range (0-{MAX_MIGRATETYPE})")
            pcp_order = pcp_allowed_order(order)
            if refill == 1 and (not pcp_order or mt >= 3):
                raise ValueError("percpu_refill=1 with order "
                                 f"{order}, migratetype {mt} (the "
                                 "kernel sets it only for per-cpu orders, 0-3 and 9, of "
                                 "migratetypes 0-2)")
            if name == "mm_page_pcpu_drain" and not pcp_order:
                raise ValueError(f"order {order} on mm_page_pcpu_drain (per-cpu lists hold "
                                 "orders 0-3 and 9 only)")
            failed = name == "mm_page_alloc" and (fields.get("page") in ("", "(null)")
                                                  or (pfn == 0 and _NULL_PAGE.fullmatch(
                                                      fields.get("page", "0"))))
            row = (lineno, name, (-1 if failed else pfn), order, gfp)
            if detail:
                row += (*_cpu_time(line[:m.start() + 1]), mt, refill)
            # The line is good: count it (a skipped line is counted as malformed only).
            events[name] = events.get(name, 0) + 1
            if name == "mm_page_alloc" and mt >= 0 and \
                    mt != (gfp & GFP_MOVABLE_MASK) >> GFP_MOVABLE_SHIFT:
                # The kernel prints gfp_migratetype(gfp_flags); the model takes the free
                # list from the flags the same way, unless mobility grouping is off there.
                counts["migratetype_differs"] = counts.get("migratetype_differs", 0) + 1
            return row
        except ValueError as e:
            if not lenient:
                raise TraceError(f"{path}:{lineno}: {shown(str(e), None)}: {shown(line)}") \
                    from None
            counts["malformed"] += 1
            if len(examples) < 5:
                examples.append(f"{path}:{lineno}: {e}")
            return None

    with open_trace(path) as f:
        for lineno, text, whole in _blocks(f, lenient, counts, progress):
            if not whole:  # a line past MAX_LINE: its first MAX_LINE + 1 characters
                row = one_line(lineno, text)
                if row is not None:
                    if sink is not None:
                        sink(_columns_of(row))
                    yield row if rows else None
                continue
            yield from _block_rows(path, lineno, text, one_line, events, counts, gfps, table,
                                   detail, sink, rows)


def column_blocks(rows, block=Spooled.BLOCK):
    """``read_events`` rows as ``Spooled.read_columns`` gives them."""
    rows = iter(rows)
    while True:
        part = list(itertools.islice(rows, block))
        if not part:
            return
        yield _column_block([list(zip(*part))])
