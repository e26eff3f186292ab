"""The machinery of compiled workload generators: resumable state, a chunk buffer, and lists.

A compiled generator is a ``fill`` function that appends events to a chunk buffer until the
buffer cannot hold one more step, and returns; all its loop state lives in arrays (``st``
and the lists below), so the next call goes on where the last one stopped. ``Chunks``
drives it: iterated, it yields ``EVENT_DTYPE`` arrays; ``zeroing.streaming`` has it write
straight into the engine's columns. References (``ref`` of free and deflate) are row
numbers in the whole stream, not in the chunk: ``zeroing.streaming`` resolves references to
earlier chunks. Random draws go through a ``numpy.random.Generator`` handed to compiled code
(numba runs numpy's own algorithms on the same bit generator), so a compiled generator draws
exactly what the Python loop it replaced drew, and the streams are identical (tested against
``tests/reference_workloads.py``).

Writing one: see ``mixed.py`` (one event per step) or ``scenarios.py`` (phases). Draw through
``bits = draws(rng)``, taken once at the top of ``fill``, with ``uniform(bits)`` and
``rand_below(bits, n)``: numpy's draws, with PCG64 stepped inline (``pcg64.py``); ``rng``'s own
methods (``shuffle``...) may be mixed in, they step the same state. A generator that needs no
speed can stay in Python: build rows with ``stream.Stream`` and pass its array through
``chunked()``.
"""
from collections import namedtuple

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic, overload

from allocator.handle import handle_for

from ..events import EVENT_DTYPE
from .pcg64 import bit_generator, bounded, next_double

# st: the scalar state every generator has; a generator's own scalars follow from S_USER.
S_T = 0  # simulated time of the last event (ns)
S_ROW = 1  # rows emitted so far: the stream row number of the next event
S_BASE = 2  # stream row number of the buffer's first row
S_DONE = 3  # 1 when the workload has ended
S_GROW = 4  # 1 when a list needs more room before the next step (Python grows it)
S_PHASE = 5
S_USER = 6

#: A chunk buffer: one array per column, EVENT_DTYPE's fields then ``caller`` (the columns
#: the engine reads). Compiled code gets it as a borrowed handle (``allocator/handle.py``).
EventColumns = namedtuple("EventColumns", EVENT_DTYPE.names + ("caller",))


def new_buffer(capacity):
    """Zeroed columns for ``capacity`` rows. ``put`` writes time, op, order, gfp and ref;
    ``cpu`` stays 0, and ``caller`` too unless the generator writes it (every row)."""
    return columns_handle([np.zeros(capacity, EVENT_DTYPE[f]) for f in EVENT_DTYPE.names]
                          + [np.zeros(capacity, np.uint8)])


def columns_handle(arrays):
    """What a compiled ``fill`` takes for the column arrays (views of a larger window too)."""
    return handle_for("EventColumns", EventColumns(*arrays))


@njit(cache=True, inline="always")
def room(st, buf, need):
    """True while the buffer can take ``need`` more rows and the workload goes on."""
    return (st[S_DONE] == 0 and st[S_GROW] == 0
            and st[S_ROW] - st[S_BASE] + need <= len(buf.time))


@njit(cache=True, inline="always")
def put(st, buf, cost_ns, op, order, gfp, ref):
    """Append one event ``cost_ns`` after the last; returns its stream row number."""
    st[S_T] += cost_ns
    row = st[S_ROW]
    j = row - st[S_BASE]
    buf.time[j] = st[S_T]
    buf.op[j] = op
    buf.order[j] = order
    buf.gfp[j] = gfp
    buf.ref[j] = ref
    st[S_ROW] = row + 1
    return row


class Chunks:
    """A compiled generator's events, a chunk at a time. ``fill(buf)`` appends events to the
    columns ``buf`` until it cannot hold one more step and returns the rows written; its loop
    state lives in ``st`` and the lists, so the next call goes on where the last stopped.

    Iterating gives EVENT_DTYPE (``dtype``) arrays: copies, or with ``reuse`` one array that
    the next chunk overwrites (for a consumer done with a chunk when it asks for the next).
    ``fill_into(buf)`` writes the next chunk into columns the caller gives (of ``capacity``
    rows): ``zeroing.streaming`` hands it the engine's own window, behind the rows of live
    allocations, so the events are not copied at all. When ``fill`` stopped because a list
    is full, the list grows (``lists``: the ``OrderedList``/``Ring`` objects ``fill`` reads
    through their ``.a`` handles) and ``fill`` goes on."""

    def __init__(self, fill, st, capacity, lists=(), dtype=EVENT_DTYPE, reuse=False):
        self.fill, self.st, self.capacity, self.lists = fill, st, capacity, lists
        self.dtype, self.reuse = dtype, reuse
        self.stated = "caller" in dtype.names  # the generator writes callers

    def fill_into(self, buf):
        """Rows of the next chunk written into ``buf`` from row 0; 0 once the workload ended."""
        st = self.st
        while not st[S_DONE]:
            st[S_BASE] = st[S_ROW]
            n = self.fill(buf)
            if st[S_GROW]:
                for lst in self.lists:
                    lst.grow_if_needed()
                st[S_GROW] = 0
            elif n == 0 and not st[S_DONE]:
                raise RuntimeError("generator made no progress (chunk smaller than one step?)")
            if n:
                return n
        return 0

    def __iter__(self):
        buf = new_buffer(self.capacity)
        out = np.zeros(self.capacity, self.dtype) if self.reuse else None
        while True:
            n = self.fill_into(buf)
            if n == 0:
                return
            rows = out[:n] if self.reuse else np.empty(n, self.dtype)
            for name in self.dtype.names:
                rows[name] = getattr(buf, name)[:n]
            yield rows


def chunked(events, chunk=1 << 20):
    """A whole ``EVENT_DTYPE`` array (refs are stream rows already) as a sequence of chunks."""
    for lo in range(0, len(events), chunk):
        yield events[lo: lo + chunk]


def collect(it, dtype=EVENT_DTYPE):
    """Concatenate a generator's chunks into one array."""
    parts = list(it)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _draws(rng):
    return rng


def _uniform(bits):
    return bits.random()


def _rand_below(bits, n):
    return bits.integers(0, n)


# Compiled, each is an intrinsic (pcg64.py), lowered where it is called: numba's inlining of
# small helpers (``inline="always"``) had made the first compile of the generators twice as
# long, and a helper compiled on its own is a call (not inlined) once it comes from the cache.
#: ``draws(rng)``: what ``uniform`` and ``rand_below`` draw from, taken once before a
#: generator's loop: ``rng`` itself, or compiled its bit generator (a draw through the
#: Generator took and dropped a reference to it, two calls per draw).
draws = _draws if numba.config.DISABLE_JIT else bit_generator
#: ``uniform(bits)``: ``rng.random()`` for ``bits = draws(rng)`` (or ``rng``), the same draw.
uniform = _uniform if numba.config.DISABLE_JIT else next_double
#: ``rand_below(bits, n)``: ``rng.integers(0, n)``, the same draws, without the one-element
#: array numba's ``integers`` allocates per call.
rand_below = _rand_below if numba.config.DISABLE_JIT else bounded


# ---------------------------------------------------------------------------------------------
# An ordered list with pop(k) in O(log n): values in append order in slots; a bit per slot says
# whether it still holds its value (``mask``: 32 slots per word), and a Fenwick tree counts the
# present slots per word. Two levels rather than a Fenwick tree over slots: the tree and the
# masks of a list of 64K slots take 24 KiB and stay in the L1 cache, where a tree over slots
# (256 KiB) made every pop a chain of 16 cache misses (issue 12: the ``unaware-user``
# generator). ``a``: val, bit, meta, mask; meta = [count, tail, spare]. Appends go to slot
# ``tail``; when it reaches the end, the present values are compacted to the front.

WORD = 32  # slots per mask word (the low 32 bits of an int64: no sign bit to mind)

#: A list's arrays. Compiled code gets them as a borrowed handle (``allocator/handle.py``),
#: which has no reference count: a tuple of arrays took one per array, an atomic each, every
#: time a step unpacked it.
OrderedListArrays = namedtuple("OrderedListArrays", "val bit meta mask")


class OrderedList:
    def __init__(self, capacity, spare=1):
        """``spare``: room ``fill`` asks for before a step (the most appends of one step)."""
        self.spare = spare
        self._alloc(1 << max(6, (2 * capacity + 2 * spare - 1).bit_length()))

    def _alloc(self, cap, values=()):
        val = np.full(cap, -1, np.int64)
        val[: len(values)] = values
        bit = np.zeros(cap // WORD + 1, np.int32)
        mask = np.zeros(cap // WORD, np.int64)
        meta = np.array([len(values), len(values), self.spare], np.int64)
        self.a = handle_for("OrderedList", OrderedListArrays(val, bit, meta, mask))
        _ol_fill_front(self.a, len(values))  # through the handle, as _ol_compact: one compile

    def grow_if_needed(self):
        val, meta = self.a.val, self.a.meta
        if 2 * (meta[0] + meta[2]) > len(val):
            self._alloc(2 * len(val), val[val >= 0][: meta[0]] if meta[0] else ())


def popcount(x):
    """Set bits in ``x`` (>= 0, below 2**63); compiled code gets the CPU's instruction."""
    return bin(int(x)).count("1")


@intrinsic
def _ctpop(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.int64(types.int64), codegen


@overload(popcount, jit_options={"cache": True})
def _popcount_compiled(x):
    return lambda x: _ctpop(np.int64(x))


def _select(cond, a, b):
    return a if cond else b


@intrinsic
def _select_unpredictable(typingctx, cond, a, b):
    if not (isinstance(a, types.Integer) and isinstance(b, types.Integer)):
        return None
    out = types.uint64 if not (a.signed or b.signed) else types.int64

    def codegen(context, builder, signature, args):
        res = builder.select(context.cast(builder, args[0], signature.args[0], types.boolean),
                             context.cast(builder, args[1], signature.args[1], out),
                             context.cast(builder, args[2], signature.args[2], out))
        res.set_metadata("unpredictable", builder.module.add_metadata([]))
        return res
    return out(cond, a, b), codegen


def _same(x):
    return x


@intrinsic
def _opaque(typingctx, x):
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[0], signature.args[0], types.int64)
        fnty = ir.FunctionType(value.type, [value.type])
        return builder.asm(fnty, "", "=r,0", [value], side_effect=False)
    return types.int64(x), codegen


#: ``unpredictable_select(cond, a, b)``: ``a if cond else b`` (64-bit), which compiled code
#: computes with a conditional move: LLVM's x86 back end otherwise turns a select in a loop
#: back into a branch, and in the ``ol_pop`` descent each is a coin toss the predictor misses
#: half the time (measured: a pop-heavy loop 47 -> 38 ns a step).
unpredictable_select = _select if numba.config.DISABLE_JIT else _select_unpredictable
#: ``loaded(x)``: ``x`` as int64, which compiled code takes as an opaque value (an empty inline
#: asm): LLVM may no longer fold a select between two loads into a load from a selected
#: address, which puts the load back on the chain that loading both ahead took it off.
loaded = _same if numba.config.DISABLE_JIT else _opaque


@njit(cache=True)
def _fenwick_build(bit):
    for i in range(1, len(bit)):
        j = i + (i & -i)
        if j < len(bit):
            bit[j] += bit[i]


@njit(cache=True, inline="always")
def _fenwick_add(bit, i, delta):
    i += 1
    while i < len(bit):
        bit[i] += delta
        i += i & -i


@njit(cache=True)
def _ol_fill_front(a, n):
    """Slots 0..n-1 present, the rest empty."""
    bit, mask = a.bit, a.mask
    full = n // WORD
    mask[:] = 0
    mask[:full] = (1 << WORD) - 1
    bit[:] = 0
    bit[1: full + 1] = WORD
    if n % WORD:
        mask[full] = (1 << (n % WORD)) - 1
        bit[full + 1] = n % WORD
    _fenwick_build(bit)


@njit(cache=True, inline="always")
def ol_full(a):
    """True when the list is more than half full after the next step's appends (then
    compaction would run too often: it has to grow)."""
    return 2 * (a.meta[0] + a.meta[2]) > len(a.val)


@njit(cache=True, inline="always")
def ol_len(a):
    return a.meta[0]


@njit(cache=True)
def _ol_compact(a):
    val, meta = a.val, a.meta
    n = 0
    for i in range(meta[1]):
        if val[i] >= 0:
            val[n] = val[i]
            n += 1
    val[n:] = -1
    _ol_fill_front(a, n)
    meta[1] = n


@njit(cache=True, inline="always")
def ol_append(a, x):
    """Append ``x`` (>= 0)."""
    val, bit, meta, mask = a.val, a.bit, a.meta, a.mask
    if meta[1] == len(val):
        _ol_compact(a)
    i = meta[1]
    val[i] = x
    mask[i // WORD] |= 1 << (i % WORD)
    _fenwick_add(bit, i // WORD, 1)
    meta[1] += 1
    meta[0] += 1


@njit(cache=True, inline="always")
def ol_pop(a, k):
    """Remove and return the k-th value (0-based), like ``list.pop(k)``."""
    val, bit, meta, mask = a.val, a.bit, a.meta, a.mask
    # One descent finds the word and takes the slot out of its count: the nodes where the
    # search goes left are exactly the Fenwick nodes whose range holds the word. The number
    # of words is a power of two, so every node the descent visits exists.
    # Unsigned positions: numba adds no negative-index wraparound to the chain of loads. Both
    # nodes the next step may visit are loaded before this step's comparison decides between
    # them, so the chain from one step to the next is a compare and a select, not a load.
    # The root (node W, every word) holds the k-th slot: the descent starts below it, where
    # every node it may load lies within the tree.
    top = np.uint64(len(bit) - 1)
    bit[top] -= 1
    pos = np.uint64(0)
    rem = k + 1
    step = top >> np.uint64(1)
    b = np.int64(bit[step])
    while step:
        half = step >> np.uint64(1)
        nxt = pos + step
        b_right = loaded(bit[nxt + half])  # half == 0: a load whose value goes unused
        b_left = loaded(bit[pos + half])
        go = b < rem
        bit[nxt] = unpredictable_select(go, b, b - 1)
        pos = unpredictable_select(go, nxt, pos)
        rem = unpredictable_select(go, rem - b, rem)
        b = unpredictable_select(go, b_right, b_left)
        step = half
    # The rem-th present slot of word pos: halve the window while counting, without
    # branches (each would be a coin toss for the predictor).
    w = mask[pos]
    off = 0
    width = WORD // 2
    while width:
        c = popcount(w & ((1 << width) - 1))
        sh = width * (rem > c)
        rem -= c * (rem > c)
        w >>= sh
        off += sh
        width >>= 1
    mask[pos] &= ~(1 << off)
    i = np.int64(pos) * WORD + off
    x = val[i]
    val[i] = -1
    meta[0] -= 1
    return x


# ---------------------------------------------------------------------------------------------
# A FIFO (append, pop(0)): a ring. ``a``: val, meta; meta = [head, count, spare].

RingArrays = namedtuple("RingArrays", "val meta")

class Ring:
    def __init__(self, capacity, spare=1):
        self.spare = spare
        self.a = handle_for("Ring", RingArrays(np.zeros(max(16, capacity + spare), np.int64),
                                               np.array([0, 0, spare], np.int64)))

    def grow_if_needed(self):
        val, meta = self.a.val, self.a.meta
        if len(val) - meta[1] < meta[2]:
            order = np.roll(val, -int(meta[0]))[: meta[1]]
            new = np.zeros(2 * len(val), np.int64)
            new[: len(order)] = order
            self.a = handle_for("Ring", RingArrays(new, np.array([0, meta[1], meta[2]], np.int64)))


@njit(cache=True, inline="always")
def ring_len(a):
    return a.meta[1]


@njit(cache=True, inline="always")
def ring_full(a):
    return len(a.val) - a.meta[1] < a.meta[2]


@njit(cache=True, inline="always")
def ring_append(a, x):
    val, meta = a.val, a.meta
    i = meta[0] + meta[1]
    if i >= len(val):
        i -= len(val)
    val[i] = x
    meta[1] += 1


@njit(cache=True, inline="always")
def ring_pop(a):
    """The newest entry (a stack's pop)."""
    val, meta = a.val, a.meta
    meta[1] -= 1
    i = meta[0] + meta[1]
    return val[i - len(val) if i >= len(val) else i]


@njit(cache=True, inline="always")
def ring_popleft(a):
    val, meta = a.val, a.meta
    x = val[meta[0]]
    meta[0] += 1
    if meta[0] == len(val):
        meta[0] = 0
    meta[1] -= 1
    return x
