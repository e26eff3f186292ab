"""The struct page words the hint designs use, and the caller types that touch them.

Why: the June 2026 "New design" thread argues about where "this page is zero" lives between the
allocator and the caller, and who can clobber or forge it. That depends on the words of struct
page each caller overwrites between allocation and free, so the model holds two of them per
head page (``lru_next`` and ``page_flags`` in the engine's arrays):

``lru_next``: the word at ``page->lru.next`` (include/linux/mm_types.h). It is overlaid by
``compound_head`` (bit 0 set: PageTail), by ``slab_cache`` of struct slab (``SLAB_MATCH(
compound_head, slab_cache)`` in mm/slab.h; ``slab_list.next`` before 6.x: a pointer either way),
by ``pp_magic`` of page_pool pages, and by ``pt_list``/``_pt_pad_1`` of struct ptdesc. Low bits:
bit 0 PageTail (must never be set on a head), bit 1 pfmemalloc (``page_is_pfmemalloc()``;
``set_page_pfmemalloc()`` assigns ``BIT(1)``, ``clear_page_pfmemalloc()`` assigns NULL, and
"callers may simply overwrite it", include/linux/mm.h), bit 2 the zeroed hint of Wilcox's
``page_is_zeroed()``. The model keeps the low three bits exactly and, in the upper nibble, what
the pointer bits hold (``W_*``); pointers are 8-byte aligned, LIST_POISON1 is 0x100 + delta
and PP_SIGNATURE 0x40 + delta, so none of them has bit 2 set.

``page_flags``: the flag of Hildenbrand's folio-only design (``PGF_ZEROED``; in the series
PG_zeroed aliases PG_private): valid on free blocks and on a freshly allocated head until the
folio allocation path reads and clears it.

Designs (``Policy.hint``), as their patches write and read the words:
- ``pghint`` (v2): the hint is an out-parameter of the allocator; struct page holds nothing,
  ``prep_new_page`` leaves ``lru.next`` NULL (or BIT(1)).
- ``lru_bit`` with ``pfmemalloc='assign'``: bit 2 is set, then ``prep_new_page``'s
  ``clear_page_pfmemalloc()`` assigns NULL over it: the hint never reaches the caller.
- ``lru_bit`` with ``pfmemalloc='or'``: "make sure it is NULL, then OR both flags": bit 2
  reaches the caller and stays until somebody overwrites the word.
- ``folio_flag``: the allocator leaves the flag set; the folio allocation path
  (``vma_alloc_folio``, ``filemap_alloc_folio``) reads and clears it; other callers never do.
Free side (``Policy.free_signal``): ``fpi`` means the freer passes ``FPI_ZEROED`` explicitly
and struct page is not consulted; ``page_bit`` means the free path trusts the design's bit
(bit 2 of ``lru.next``, or the flag), so a bit that survived from the allocation is taken as
a claim nobody made: Hildenbrand's "some random user doing alloc+use+free would be unaware
that there is a bit to clear".
"""
from numba import njit

from .policy import HINT_FOLIO_FLAG, HINT_LRU_BIT

# Caller types: what each does to the words between allocation and free.
CALLER_DEFAULT = 0  # not stated: fault -> anon, alloc -> raw, inflate -> private list
CALLER_ANON = 1  # anonymous folio: fault path reads the hint, folio_add_lru puts it on the LRU
CALLER_FILE = 2  # page cache folio: filemap_alloc_folio, LRU; reads overwrite every byte
CALLER_SLAB = 3  # struct slab overlays the word with slab_cache; __GFP_ZERO is stripped
CALLER_PGTABLE = 4  # struct ptdesc: __GFP_ZERO, word untouched, entries cleared before free
CALLER_PAGE_POOL = 5  # pp_magic |= PP_SIGNATURE; page_pool_clear_pp_info stores 0 at release
CALLER_PRIVATE = 6  # list_add(&page->lru, own list), list_del before the free
CALLER_RAW = 7  # alloc_page, write, __free_page: never touches struct page
CALLER_BALLOON = 8  # balloon inflate: balloon_page_enqueue, a private list (the default)
CALLER_NAMES = ("default", "anon", "file", "slab", "pgtable", "page_pool", "private_list", "raw",
                "balloon")
#: Caller types a workload's mix may name (the balloon is its own event).
MIX_CALLERS = CALLER_NAMES[1:8]
NR_CALLERS = len(CALLER_NAMES)

# Per caller statistics (rows of the engine's by_caller array); all in pages.
CS_ALLOC, CS_HINT, CS_DELIVERED, CS_LOST, CS_STALE, CS_FALSE, CS_LEAK = range(7)
CSTAT_NAMES = ("allocated", "hint_set", "hint_delivered", "hint_lost", "stale_trusted",
               "false_zeroed", "leaked")
NR_CSTATS = len(CSTAT_NAMES)

# lru.next: low bits as in the kernel, upper nibble = what the pointer bits hold.
LRU_TAIL = 1 << 0
LRU_PFMEMALLOC = 1 << 1
LRU_ZEROED = 1 << 2
LRU_LOW = 7
W_NULL = 0 << 4  # NULL, or only flag bits
W_LIST = 1 << 4  # a list_head pointer (LRU, a private list, a buddy or pcp free list)
W_POISON = 2 << 4  # LIST_POISON1 after list_del
W_SLAB = 3 << 4  # slab_cache (struct slab)
W_PP = 4 << 4  # pp_magic with PP_SIGNATURE
PGF_ZEROED = 1 << 0
PGF_KEEP = 0xFF ^ PGF_ZEROED  # a positive mask: uint8 & ~flag overflows when interpreted



@njit(cache=True)
def caller_of(op_is_fault, op_is_inflate, caller):
    """The caller type of an allocation event (the default depends on the event)."""
    if caller != CALLER_DEFAULT:
        return caller
    if op_is_fault:
        return CALLER_ANON
    if op_is_inflate:
        return CALLER_BALLOON
    return CALLER_RAW


@njit(cache=True)
def prep_new_page_words(e, pfn, design, pfmemalloc_or, zeroed):
    """What ``prep_new_page`` leaves in the words. Returns True when the hint survived it
    (reaches the caller beyond ``post_alloc_hook``)."""
    # __del_page_from_free_list: list_del leaves LIST_POISON1; PG_zeroed goes with the block.
    word = W_POISON
    flags = e.page_flags[pfn] & PGF_KEEP
    survived = zeroed
    if design == HINT_LRU_BIT:
        if pfmemalloc_or:
            word = W_NULL | (LRU_ZEROED if zeroed else 0)  # NULL first, then OR both flags
        else:
            # Bit 2 is set where PG_zeroed is read (post_alloc_hook), then prep_new_page's
            # clear_page_pfmemalloc() assigns NULL to the whole word: bit 2 goes with it.
            word = W_NULL
            survived = False
    elif design == HINT_FOLIO_FLAG:
        word = W_NULL  # clear_page_pfmemalloc()
        if zeroed:
            flags |= PGF_ZEROED  # left for the folio allocation path to read and clear
    else:
        word = W_NULL  # v2: the hint went out through pghint_t; nothing in struct page
    e.lru_next[pfn] = word
    e.page_flags[pfn] = flags
    return survived


@njit(cache=True)
def caller_takes_page(e, pfn, caller):
    """What the caller does to the words after allocation (before any free)."""
    if caller == CALLER_ANON or caller == CALLER_FILE:
        e.page_flags[pfn] &= PGF_KEEP  # the folio allocation path reads and clears it
        e.lru_next[pfn] = W_LIST  # folio_add_lru -> lruvec_add_folio: list_add
    elif caller == CALLER_SLAB:
        e.lru_next[pfn] = W_SLAB  # slab->slab_cache = s (pointer: low bits 0)
    elif caller == CALLER_PAGE_POOL:
        e.lru_next[pfn] |= W_PP  # netmem_or_pp_magic(PP_SIGNATURE): low bits kept
    elif caller == CALLER_PRIVATE or caller == CALLER_BALLOON:
        e.lru_next[pfn] = W_LIST  # list_add(&page->lru, &own_list)
    # CALLER_PGTABLE: x86-64 PTE/PMD tables leave _pt_pad_1 alone; CALLER_RAW: nothing.


@njit(cache=True)
def caller_releases_page(e, pfn, caller):
    """What the caller does to the words just before it frees the page."""
    if caller == CALLER_ANON or caller == CALLER_FILE or caller == CALLER_PRIVATE \
            or caller == CALLER_BALLOON:
        e.lru_next[pfn] = W_POISON  # list_del (off the LRU / the private list)
    elif caller == CALLER_PAGE_POOL:
        e.lru_next[pfn] = W_NULL  # page_pool_clear_pp_info: netmem_clear_pp_magic() stores 0
    # Slab leaves slab_cache in the word; page tables and raw users leave it as it was.


@njit(cache=True)
def page_says_zeroed(e, pfn, design):
    """The ``page_bit`` free signal: the design's bit as the free path reads it."""
    if design == HINT_LRU_BIT:
        return (e.lru_next[pfn] & LRU_ZEROED) != 0
    if design == HINT_FOLIO_FLAG:
        return (e.page_flags[pfn] & PGF_ZEROED) != 0
    return False  # pghint: struct page carries no hint a caller could leave behind


@njit(cache=True)
def free_words(e, pfn):
    """The block is on a free list again: the word is a list pointer, the flag consumed."""
    e.lru_next[pfn] = W_LIST
    e.page_flags[pfn] &= PGF_KEEP


#: Weights are relative; this bound keeps their sum finite.
MAX_WEIGHT = 1e12


def parse_caller_mix(value):
    """``"anon=2,slab=1"`` (weights, any scale) or a dict -> {caller name: weight}; a bad
    entry raises ValueError naming it."""
    if isinstance(value, dict):
        items = list(value.items())
    else:
        items = []
        for part in str(value).split(","):
            part = part.strip()
            if not part:  # as in --policy: an empty entry is a slip, not nothing
                raise ValueError(f"caller mix {value!r}: an empty entry (NAME=WEIGHT,...)")
            name, sep, weight = part.partition("=")
            if not sep:
                raise ValueError(f"caller mix entry {part!r}: expected NAME=WEIGHT")
            items.append((name.strip(), weight.strip()))
    mix = {}
    for name, weight in items:
        if name not in MIX_CALLERS:
            raise ValueError(f"unknown caller type {name!r}: choose from {', '.join(MIX_CALLERS)}")
        try:
            if isinstance(weight, bool):  # TOML true is no weight (float(True) is 1.0)
                raise TypeError
            w = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"caller {name!r}: weight {weight!r} is not a number") from None
        if not 0 <= w <= MAX_WEIGHT:
            raise ValueError(f"caller {name!r}: weight must be from 0 to {MAX_WEIGHT:g}, "
                             f"got {weight!r}")
        if name in mix:
            raise ValueError(f"caller {name!r} is given twice")
        mix[name] = w
    if not mix or sum(mix.values()) <= 0:
        raise ValueError("caller mix: at least one caller type needs a positive weight")
    return mix
