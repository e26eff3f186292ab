"""The common kmem trace line, read in compiled code (``trace.py``'s fast path).

``scan`` reads a block of whole ASCII lines and, for each line of the usual shape

    <comm>-<pid> [<cpu>] [<flags>] <sec>.<frac>: [kmem:]<mm_page_*>: page=.. pfn=.. order=.. ...

that every rule of ``trace._parse`` accepts, gives its fields; every other line (headers,
comments, other events, a failed allocation, anything odd or wrong) is marked for the Python
parser, which reads it, and names its error, as it always did. So the compiled reader only
ever agrees with the Python one (tests/test_trace_scan.py checks it on the captures and on
hostile lines); it is faster, not different. The gfp_flags text is left to Python (a trace
repeats a few dozen flag sets).
"""
import contextlib

import numpy as np
from numba import njit

from allocator.buddy import MAX_CPUS, MAX_PAGE_ORDER
from allocator.flags import MAX_PFN_BITS, PAGE_ALLOC_COSTLY_ORDER, PAGEBLOCK_ORDER

#: The events the compiled reader takes, by number (mm_page_alloc_extfrag goes to Python).
NAMES = ("mm_page_alloc", "mm_page_free", "mm_page_free_batched", "mm_page_alloc_zone_locked",
         "mm_page_pcpu_drain")
EV_ALLOC, EV_FREE, EV_BATCHED, EV_ZONE_LOCKED, EV_DRAIN = range(5)
_NAME_BYTES = tuple(np.frombuffer(n.encode(), np.uint8) for n in NAMES)
#: Field keys, by number; any other key sends the line to Python.
KEYS = ("page", "pfn", "order", "migratetype", "gfp_flags", "percpu_refill")
K_PAGE, K_PFN, K_ORDER, K_MT, K_GFP, K_REFILL = range(6)
_KEY_BYTES = tuple(np.frombuffer(k.encode(), np.uint8) for k in KEYS)
#: ``trace.MAX_SECONDS`` (timestamps under 10^9 s) and ``MAX_MIGRATETYPE``.
MAX_SECONDS = 10**9
MAX_MIGRATETYPE = 5

SLOW, FAST = 0, 1
#: False sends every line to the Python reader: the reference the compiled one is checked and
#: measured against (``python_only``).
COMPILED = True


@contextlib.contextmanager
def python_only():
    """Within it, ``scan`` leaves every line to the Python reader."""
    global COMPILED
    before, COMPILED = COMPILED, False
    try:
        yield
    finally:
        COMPILED = before


@njit(cache=True, inline="always")
def _space(c):
    """Python's ``\\s`` and ``str.isspace()`` on ASCII: \\t-\\r, \\x1c-\\x1f and the space."""
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


@njit(cache=True, inline="always")
def _past_spaces(buf, i, e):
    while i < e and _space(buf[i]):
        i += 1
    return i


@njit(cache=True, inline="always")
def _token_end(buf, i, e):
    while i < e and not _space(buf[i]):
        i += 1
    return i


@njit(cache=True, inline="always")
def _digit(c):
    return 48 <= c <= 57


@njit(cache=True, inline="always")
def _word(c):
    return _digit(c) or 65 <= c <= 90 or 97 <= c <= 122 or c == 95


@njit(cache=True, inline="always")
def _hexval(c):
    if _digit(c):
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


@njit(cache=True)
def _same(buf, i, j, word):
    if j - i != len(word):
        return False
    for k in range(len(word)):
        if buf[i + k] != word[k]:
            return False
    return True


_CPUS = np.frombuffer(b"cpus=", np.uint8)
_VERSION = np.frombuffer(b"version =", np.uint8)
_CPU = np.frombuffer(b"CPU ", np.uint8)


@njit(cache=True)
def _starts(buf, s, e, word):
    return e - s >= len(word) and _same(buf, s, s + len(word), word)


@njit(cache=True)
def _decimal(buf, i, j, most):
    """The decimal number buf[i:j] of at most ``most`` digits, or -1."""
    if j <= i or j - i > most:
        return -1
    v = 0
    for k in range(i, j):
        if not _digit(buf[k]):
            return -1
        v = v * 10 + buf[k] - 48
    return v


@njit(cache=True)
def _number(buf, i, j):
    """``trace._int`` of buf[i:j] for a pfn: 0x and hex digits, or decimal digits; -1 for
    anything else or a number past 2^60 (Python reads those)."""
    if j - i > 2 and buf[i] == 48 and buf[i + 1] == 120:  # 0x
        if j - i - 2 > 15:
            return -1
        v = 0
        for k in range(i + 2, j):
            h = _hexval(buf[k])
            if h < 0:
                return -1
            v = v * 16 + h
        return v
    return _decimal(buf, i, j, 18)


@njit(cache=True)
def _line(buf, s, e, names, keys, out, row):
    """Fill ``out[row]`` for line buf[s:e] (no newline); FAST when every rule holds."""
    i = s
    i = _past_spaces(buf, i, e)
    if i == e:
        return SLOW
    c = buf[i]
    if c == 61 or c == 91 or c == 35:  # '=' '[' '#': a call chain, a comment
        return SLOW
    if c == 60:  # '<': a call chain's <address>, unless a comm such as <idle>
        k = i + 1
        while k < e and _hexval(buf[k]) >= 0 and not 65 <= buf[k] <= 70:
            k += 1
        if k > i + 1 and k < e and buf[k] == 62:
            return SLOW
    if i == s and (_starts(buf, s, e, _CPUS) or _starts(buf, s, e, _VERSION)
                   or _starts(buf, s, e, _CPU)):  # trace-cmd report's headers
        return SLOW
    # The comm token (no spaces, no brackets) ending in -pid.
    t = i
    while i < e and not _space(buf[i]):
        if buf[i] == 91 or buf[i] == 93 or buf[i] == 40:  # [ ] (
            return SLOW
        i += 1
    k = i - 1
    while k > t and _digit(buf[k]):
        k -= 1
    if k == i - 1 or buf[k] != 45:  # no -pid
        return SLOW
    i = _past_spaces(buf, i, e)
    # [cpu]
    if i == e or buf[i] != 91:
        return SLOW
    j = i + 1
    while j < e and _digit(buf[j]):
        j += 1
    if j == e or buf[j] != 93 or j == i + 1:
        return SLOW
    cpu = _decimal(buf, i + 1, j, 6)
    if cpu < 0:
        return SLOW
    i = j + 1
    if i == e or not _space(buf[i]):
        return SLOW
    i = _past_spaces(buf, i, e)
    # [flags] sec.frac:
    t = i
    i = _token_end(buf, i, e)
    if i > t and buf[i - 1] != 58:  # a flags token: dots, letters, digits only
        for k in range(t, i):
            if not (_word(buf[k]) or buf[k] == 46) or buf[k] == 95:
                return SLOW
        i = _past_spaces(buf, i, e)
        t = i
        i = _token_end(buf, i, e)
    # buf[t:i] is "sec.frac:"
    if i - t < 4 or buf[i - 1] != 58:
        return SLOW
    dot = t
    while dot < i - 1 and buf[dot] != 46:
        dot += 1
    if dot == t or dot >= i - 2:
        return SLOW
    sec = _decimal(buf, t, dot, 12)
    if sec < 0 or sec >= MAX_SECONDS:
        return SLOW
    ns = 0
    for k in range(dot + 1, i - 1):
        if not _digit(buf[k]):
            return SLOW
        if k - dot <= 9:
            ns = ns * 10 + buf[k] - 48
    for k in range(i - 1 - dot, 10):
        ns *= 10
    if i == e or not _space(buf[i]):
        return SLOW
    i = _past_spaces(buf, i, e)
    # [kmem:]event:
    t = i
    while i < e and buf[i] != 58 and not _space(buf[i]):
        i += 1
    if i == e or buf[i] != 58:
        return SLOW
    if i - t == 4 and buf[t] == 107 and buf[t + 1] == 109 and buf[t + 2] == 101 \
            and buf[t + 3] == 109:  # kmem:
        i += 1
        t = i
        while i < e and buf[i] != 58 and not _space(buf[i]):
            i += 1
        if i == e or buf[i] != 58:
            return SLOW
    ev = -1
    for n in range(len(names)):
        if _same(buf, t, i, names[n]):
            ev = n
    if ev < 0:
        return SLOW
    i += 1
    if i == e or not _space(buf[i]):
        return SLOW
    # key=value fields, each once
    seen = 0
    pfn = order = mt = refill = -1
    gs = ge = -1
    while True:
        i = _past_spaces(buf, i, e)
        if i == e:
            break
        t = i
        while i < e and _word(buf[i]):
            i += 1
        if i == e or buf[i] != 61 or i == t:  # a key of word characters, then =
            return SLOW
        key = -1
        for n in range(len(keys)):
            if _same(buf, t, i, keys[n]):
                key = n
        if key < 0 or seen & (1 << key):
            return SLOW
        seen |= 1 << key
        i += 1
        v = i
        while i < e and not _space(buf[i]):
            if buf[i] == 40:  # '(' : "(null)" marks a failed allocation
                return SLOW
            i += 1
        if key == K_PAGE:
            if i == v:  # page= (null): a failed allocation
                return SLOW
        elif key == K_PFN:
            pfn = _number(buf, v, i)
            if pfn < 0:
                return SLOW
        elif key == K_ORDER:
            order = _decimal(buf, v, i, 2)
            if order < 0:
                return SLOW
        elif key == K_MT:
            mt = _decimal(buf, v, i, 2)
            if mt < 0 or mt > MAX_MIGRATETYPE:
                return SLOW
        elif key == K_GFP:
            if i == v:
                return SLOW
            gs, ge = v, i
        else:
            refill = _decimal(buf, v, i, 2)
            if refill < 0 or refill > 1:
                return SLOW
    if pfn < 0 or pfn >> MAX_PFN_BITS or order < 0 or order > MAX_PAGE_ORDER or \
            pfn & ((1 << order) - 1):
        return SLOW
    if ev == EV_BATCHED and order != 0:
        return SLOW
    if ev == EV_ALLOC and (gs < 0 or pfn == 0):  # pfn 0: a failed allocation's, maybe
        return SLOW
    if ev != EV_ZONE_LOCKED:
        refill = -1
    pcp_order = order <= PAGE_ALLOC_COSTLY_ORDER or order == PAGEBLOCK_ORDER
    if refill == 1 and (not pcp_order or mt >= 3):
        return SLOW
    if ev == EV_DRAIN and not pcp_order:
        return SLOW
    out[row, 0] = ev
    out[row, 1] = pfn
    out[row, 2] = order
    out[row, 3] = mt
    out[row, 4] = refill
    out[row, 5] = cpu
    out[row, 6] = sec * 1_000_000_000 + ns
    out[row, 7] = gs
    out[row, 8] = ge
    out[row, 9] = cpu < MAX_CPUS  # else: with the clock asked for, Python names the error
    return FAST


@njit(cache=True)
def _scan(buf, names, keys, kind, out):
    """Per line of buf (whole lines, each ending in a newline): its kind, and ``out``'s row
    for a FAST line. Returns the number of lines."""
    row = 0
    s = 0
    high = False  # a byte past ASCII: Python's \\s and \\w differ there
    for p in range(len(buf)):
        c = buf[p]
        if c == 10:
            kind[row] = SLOW if high else _line(buf, s, p, names, keys, out, row)
            row += 1
            s = p + 1
            high = False
        elif c >= 128:
            high = True
    return row


def scan(data):
    """(kind, fields) of each line of ``data`` (UTF-8 bytes of whole lines, newline-ended):
    ``fields[:, 0..9]`` = event number, pfn, order, migratetype (-1: none), percpu_refill
    (-1: none), cpu, time in ns, gfp_flags start and end in ``data``, cpu in range."""
    lines = data.count(b"\n")
    kind = np.zeros(lines, np.int8)
    out = np.zeros((lines, 10), np.int64)
    if COMPILED:
        _scan(np.frombuffer(data, np.uint8), _NAME_BYTES, _KEY_BYTES, kind, out)
    return kind, out
