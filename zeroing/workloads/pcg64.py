"""numpy's PCG64 stepped inline in compiled generators.

numba runs ``Generator.random()`` and ``integers()`` as an indirect call into numpy's C bit
generator per draw (``next_double``, ``next_uint32``); in the compiled generators that call
was the largest single cost of a step after the lists (about 6 ns a draw against 3.4 here,
a draw or two an event). ``next_double``/``next_uint32`` here run the same algorithm on the same state in
place (PCG64 XSL-RR: a 128-bit LCG step, then the xor-shift-rotate output; the 32-bit draw
keeps numpy's buffer of the upper half), so the draws, and the state the Generator is left
in, are numpy's bit for bit (tested).

Used only when it is safe: the bit generator's ``next_double`` must be PCG64's (a compiled
check of the function pointer, per draw, always predicted), and at import the layout of
numpy's state struct is checked against ``PCG64.state``; where either fails (another bit
generator; a numpy built without native 128-bit integers, whose struct differs), numpy's own
function is called as before.
"""
import ctypes

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic, register_jitable
from numba.np.random.random_methods import bounded_lemire_uint64

MULTIPLIER = (2549297995355413924 << 64) + 4865540595714422341  # PCG_DEFAULT_MULTIPLIER_128
_U64 = ctypes.c_uint64


def _next_double_address(bitgen):
    return ctypes.cast(bitgen.ctypes.next_double, ctypes.c_void_p).value


def _layout_matches():
    """True when numpy's ``pcg64_state`` is ``{pcg64_random_t *, int has_uint32, uint32_t
    uinteger}`` over a native ``{__uint128_t state, inc}``, as this module reads it."""
    bitgen = np.random.PCG64(12345)
    np.random.Generator(bitgen).integers(0, 1 << 31, dtype=np.uint32)  # buffers a half
    st = bitgen.state
    address = bitgen.ctypes.state_address
    pair = (_U64 * 4).from_address(ctypes.cast(address, ctypes.POINTER(ctypes.c_void_p))[0])
    state = pair[0] | (pair[1] << 64)
    inc = pair[2] | (pair[3] << 64)
    has, word = (ctypes.c_int32 * 2).from_address(address + 8)
    return (state == st["state"]["state"] and inc == st["state"]["inc"]
            and has == st["has_uint32"] == 1 and word & 0xFFFFFFFF == st["uinteger"])


#: PCG64's next_double in this process, or 0 where the inline step must not be used. Compiled
#: code reads it through a symbol the JIT linker resolves at load time: a constant would be
#: the address in the process that compiled it, wrong in the next one that loads the cache.
PCG64_NEXT_DOUBLE = ctypes.c_uint64(
    _next_double_address(np.random.PCG64(0)) if _layout_matches() else 0)
_SYMBOL = "zeroing_pcg64_next_double"
llvm.add_symbol(_SYMBOL, ctypes.addressof(PCG64_NEXT_DOUBLE))


def _bitgen(context, builder, typ, value):
    """The bit generator struct of a Generator or BitGenerator value, and its numba type."""
    if isinstance(typ, types.NumPyRandomGeneratorType):
        generator = cgutils.create_struct_proxy(typ)(context, builder, value=value)
        typ, value = _BITGEN, generator.bit_generator
    return cgutils.create_struct_proxy(typ)(context, builder, value=value)


_BITGEN = types.NumPyRandomBitGeneratorType("bit_generator")


def _is_pcg64(builder, proxy):
    """The bit generator's ``next_double`` is PCG64's in this process (and the layout was
    checked)."""
    fn = proxy.fnptr_next_double
    module = builder.module
    try:
        expected = module.get_global(_SYMBOL)
    except KeyError:
        expected = ir.GlobalVariable(module, fn.type, _SYMBOL)  # a declaration
    return builder.icmp_unsigned("==", fn, builder.load(expected))


def _inline_or_call(builder, proxy, fnptr, ret_type, inline):
    """``inline(state)`` where the bit generator is PCG64, else a call of numpy's function
    (what numba calls for every draw)."""
    with builder.if_else(_is_pcg64(builder, proxy), likely=True) as (then, otherwise):
        with then:
            fast = inline(proxy.state)
            fast_block = builder.block
        with otherwise:
            fnty = ir.FunctionType(ret_type, [proxy.state.type])
            slow = builder.call(builder.inttoptr(fnptr, fnty.as_pointer()), [proxy.state])
            slow_block = builder.block
    out = builder.phi(ret_type)
    out.add_incoming(fast, fast_block)
    out.add_incoming(slow, slow_block)
    return out


def _state_pointers(builder, state):
    """(pointer to the {state, inc} i128 pair, pointer to has_uint32, pointer to uinteger)."""
    i8p = ir.IntType(8).as_pointer()
    base = builder.inttoptr(state, i8p.as_pointer())
    pair = builder.bitcast(builder.load(base), ir.IntType(128).as_pointer())
    raw = builder.inttoptr(state, i8p)
    has = builder.bitcast(builder.gep(raw, [ir.Constant(ir.IntType(64), 8)]),
                          ir.IntType(32).as_pointer())
    word = builder.bitcast(builder.gep(raw, [ir.Constant(ir.IntType(64), 12)]),
                           ir.IntType(32).as_pointer())
    return pair, has, word


def _step(builder, pair):
    """pcg64_random_r: state = state * MULTIPLIER + inc; the XSL-RR output of the new state."""
    i128, i64 = ir.IntType(128), ir.IntType(64)
    state = builder.load(pair, align=16)
    inc = builder.load(builder.gep(pair, [ir.Constant(i64, 1)]), align=16)
    state = builder.add(builder.mul(state, ir.Constant(i128, MULTIPLIER)), inc)
    builder.store(state, pair, align=16)
    hi = builder.trunc(builder.lshr(state, ir.Constant(i128, 64)), i64)
    lo = builder.trunc(state, i64)
    rot = builder.lshr(hi, ir.Constant(i64, 58))
    x = builder.xor(hi, lo)
    left = builder.and_(builder.sub(ir.Constant(i64, 0), rot), ir.Constant(i64, 63))
    return builder.or_(builder.lshr(x, rot), builder.shl(x, left))  # a rotate right


def _double(builder, state):
    """pcg64_next_double: ``(next64 >> 11) / 2**53``."""
    pair, _, _ = _state_pointers(builder, state)
    bits = builder.lshr(_step(builder, pair), ir.Constant(ir.IntType(64), 11))
    return builder.fmul(builder.uitofp(bits, ir.DoubleType()),
                        ir.Constant(ir.DoubleType(), 1.0 / 9007199254740992.0))


def _uint32(builder, state):
    """pcg64_next32: the buffered upper half if there is one, else a step's lower half."""
    i32, i64 = ir.IntType(32), ir.IntType(64)
    pair, has, word = _state_pointers(builder, state)
    buffered = builder.icmp_unsigned("!=", builder.load(has), ir.Constant(i32, 0))
    with builder.if_else(buffered) as (then, otherwise):
        with then:
            builder.store(ir.Constant(i32, 0), has)
            got = builder.load(word)
            from_buffer = builder.block
        with otherwise:
            nxt = _step(builder, pair)
            builder.store(ir.Constant(i32, 1), has)
            builder.store(builder.trunc(builder.lshr(nxt, ir.Constant(i64, 32)), i32), word)
            stepped = builder.trunc(nxt, i32)
            from_step = builder.block
    out = builder.phi(i32)
    out.add_incoming(got, from_buffer)
    out.add_incoming(stepped, from_step)
    return out


def _is_rng(typ):
    return isinstance(typ, (types.NumPyRandomGeneratorType, types.NumPyRandomBitGeneratorType))


def _draw(bits, name, numba_type, ll_type, inline):
    """An intrinsic's (signature, codegen) for numpy's ``next_<name>`` of ``bits``."""
    if not _is_rng(bits):
        return None

    def codegen(context, builder, sig, args):
        proxy = _bitgen(context, builder, sig.args[0], args[0])
        return _inline_or_call(builder, proxy, getattr(proxy, f"fnptr_next_{name}"), ll_type,
                               lambda state: inline(builder, state))
    return numba_type(bits), codegen


@intrinsic
def next_double(typingctx, bits):
    """numpy's ``next_double`` of a Generator or its bit generator, PCG64 stepped in place.
    An intrinsic: lowered where it is called (a compiled helper loaded from the cache is not
    inlined, and numba's own inlining made the first compile twice as long)."""
    return _draw(bits, "double", types.float64, ir.DoubleType(), _double)


@intrinsic
def next_uint32(typingctx, bits):
    """numpy's ``next_uint32`` (PCG64's keeps the upper half of a draw for the next call)."""
    return _draw(bits, "uint32", types.uint32, ir.IntType(32), _uint32)


@intrinsic
def _uses_inline_step(typingctx, bits):
    if not _is_rng(bits):
        return None

    def codegen(context, builder, sig, args):
        return _is_pcg64(builder, _bitgen(context, builder, sig.args[0], args[0]))
    return types.boolean(bits), codegen


@njit(cache=True)
def steps_inline(rng):
    """True when compiled draws from ``rng`` step PCG64 inline (for the tests)."""
    return _uses_inline_step(rng)


@register_jitable
def bounded(bits, n):
    """``Generator.integers(0, n)`` (int64) over a Generator or its bit generator: numpy's
    choice of algorithm by range (``random_bounded_uint64_fill``), no draw for ``n == 1``."""
    if n <= 0:
        raise ValueError("high <= 0")
    rng = np.uint64(n - 1)
    if rng == 0:
        return np.int64(0)
    if rng == np.uint64(0xFFFFFFFF):
        return np.int64(next_uint32(bits))
    if rng > np.uint64(0xFFFFFFFF):
        return np.int64(bounded_lemire_uint64(bit_generator(bits), rng))  # numba's 64-bit path
    # buffered_bounded_lemire_uint32: a draw in [0, rng]
    rng_excl = rng + np.uint64(1)
    m = np.uint64(next_uint32(bits)) * rng_excl
    leftover = m & np.uint64(0xFFFFFFFF)
    if leftover < rng_excl:
        threshold = (np.uint64(0xFFFFFFFF) - rng) % rng_excl
        while leftover < threshold:
            m = np.uint64(next_uint32(bits)) * rng_excl
            leftover = m & np.uint64(0xFFFFFFFF)
    return np.int64(m >> np.uint64(32))


@intrinsic
def bit_generator(typingctx, bits):
    """The bit generator of a Generator (a bit generator stays itself)."""
    if isinstance(bits, types.NumPyRandomGeneratorType):
        def codegen(context, builder, sig, args):
            generator = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0])
            return generator.bit_generator
        return _BITGEN(bits), codegen
    if isinstance(bits, types.NumPyRandomBitGeneratorType):
        return bits(bits), lambda context, builder, sig, args: args[0]
    return None


