/*
 * A straightforward C implementation of allocator/core.py's rules (the paths the allocator
 * benchmark's op stream uses: alloc_pages and free_pages with pcp on or off, mobility
 * grouping with claim/steal fallbacks), over the same arrays (allocator/state.py's zone).
 * It is the yardstick of experiments/bench_allocator.py: same stream, same results call by
 * call, and the compiled model's speed as a ratio to this one.
 *
 * Function names and structure follow core.py (and so mm/page_alloc.c); comments there say
 * where the model simplifies. Not supported (the benchmark does not use them): alloc_pfn,
 * isolation and putback, zeroed-aware placement, page reporting notification counts are kept.
 */
#include <stdint.h>

#define NONE (-1)
#define PG_BUDDY (1 << 0)
#define PG_ZEROED (1 << 1)
#define PG_REPORTED (1 << 2)
#define PG_PCP (1 << 3)
#define PG_ALLOC (1 << 4)
#define PG_HINT (1 << 5)
#define PG_ISOLATED (1 << 6)

#define FPI_SKIP_REPORT_NOTIFY (1 << 0)
#define FPI_TO_TAIL (1 << 1)
#define FPI_ZEROED (1 << 4)

#define MIGRATE_UNMOVABLE 0
#define MIGRATE_MOVABLE 1
#define MIGRATE_RECLAIMABLE 2
#define MIGRATE_PCPTYPES 3
#define PAGE_ALLOC_COSTLY_ORDER 3
#define NR_LOWORDER_PCP_LISTS (MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER + 1))
#define NR_PCP_LISTS (NR_LOWORDER_PCP_LISTS + 2)

enum { C_NR_PAGES, C_MAX_ORDER, C_PAGEBLOCK_ORDER, C_PCP, C_HIGH, C_BATCH, C_MOBILITY,
       C_NR_CPUS, C_THP, C_REPORTING_ORDER };
enum { S_PGALLOC, S_PGFREE, S_ALLOC_FAIL, S_BAD_PAGE, S_ZEROED_DROPPED_MERGE, S_REPORT_NOTIFY,
       S_PCP_DRAIN, S_PCP_REFILL, S_EXTFRAG, S_ALLOC_ZEROED, S_NR_ALLOCATED, S_NR_ISOLATED,
       S_ALLOC_PFN_MISS, S_PCP_REFILL_PAGES };
enum { RMQUEUE_NORMAL, RMQUEUE_CLAIM, RMQUEUE_STEAL };
enum { ZS_NR_FREE_PAGES };
enum { E_RANGE = 1, E_UNALIGNED, E_DOUBLE_FREE, E_NOT_ALLOCATED, E_WRONG_ORDER, E_BAD_ORDER,
       E_BAD_GFP, E_NOT_FREE, E_NOT_ISOLATED, E_BAD_CPU, E_BAD_OP, E_BAD_REF };
enum { OP_ALLOC = 1, OP_FREE, OP_FREE_REF };

static const int8_t FALLBACKS[3][2] = {{2, 1}, {2, 0}, {0, 1}};

/* The zone: the same arrays as allocator/state.py's ZoneArrays (row-major 2-D arrays). */
struct zone {
    uint8_t *flags;
    int8_t *order;
    int32_t *next, *prev;
    int8_t *pageblock_mt;
    int64_t *free_head, *free_tail, *nr_free, *nr_zeroed;  /* [order][MIGRATE_PCPTYPES] */
    int64_t *pcp_head, *pcp_tail, *pcp_count;              /* [cpu][NR_PCP_LISTS] */
    int64_t *conf, *stat;
    int64_t *zstate;  /* [0]: NR_FREE_PAGES, the only entry kept here (fixed pcp high) */
};

#define FREE_IDX(o, mt) ((o) * MIGRATE_PCPTYPES + (mt))
#define PCP_IDX(cpu, i) ((cpu) * NR_PCP_LISTS + (i))

static inline void list_add(struct zone *z, int64_t *head, int64_t *tail, int64_t idx,
                            int64_t pfn, int to_tail)
{
    if (to_tail) {
        int64_t t = tail[idx];
        z->prev[pfn] = (int32_t)t;
        z->next[pfn] = NONE;
        if (t == NONE)
            head[idx] = pfn;
        else
            z->next[t] = (int32_t)pfn;
        tail[idx] = pfn;
    } else {
        int64_t h = head[idx];
        z->next[pfn] = (int32_t)h;
        z->prev[pfn] = NONE;
        if (h == NONE)
            tail[idx] = pfn;
        else
            z->prev[h] = (int32_t)pfn;
        head[idx] = pfn;
    }
}

static inline void list_del(struct zone *z, int64_t *head, int64_t *tail, int64_t idx,
                            int64_t pfn)
{
    int64_t n = z->next[pfn], p = z->prev[pfn];
    if (p == NONE)
        head[idx] = n;
    else
        z->next[p] = (int32_t)n;
    if (n == NONE)
        tail[idx] = p;
    else
        z->prev[n] = (int32_t)p;
}

static inline int64_t get_pfnblock_migratetype(struct zone *z, int64_t pfn)
{
    return z->pageblock_mt[pfn >> z->conf[C_PAGEBLOCK_ORDER]];
}

static inline void set_pageblock_migratetype(struct zone *z, int64_t pfn, int64_t mt)
{
    if (z->conf[C_MOBILITY] == 0)
        mt = MIGRATE_UNMOVABLE;
    z->pageblock_mt[pfn >> z->conf[C_PAGEBLOCK_ORDER]] = (int8_t)mt;
}

static inline void __add_to_free_list(struct zone *z, int64_t pfn, int64_t order, int64_t mt,
                                      int to_tail)
{
    list_add(z, z->free_head, z->free_tail, FREE_IDX(order, mt), pfn, to_tail);
    z->flags[pfn] |= PG_BUDDY;
    z->order[pfn] = (int8_t)order;
    z->nr_free[FREE_IDX(order, mt)] += 1;
    z->zstate[ZS_NR_FREE_PAGES] += (int64_t)1 << order;
    if (z->flags[pfn] & PG_ZEROED)
        z->nr_zeroed[order] += 1;
}

static inline void __del_page_from_free_list(struct zone *z, int64_t pfn, int64_t order,
                                             int64_t mt)
{
    list_del(z, z->free_head, z->free_tail, FREE_IDX(order, mt), pfn);
    if (z->flags[pfn] & PG_ZEROED)
        z->nr_zeroed[order] -= 1;
    z->flags[pfn] &= 0xFF ^ (PG_BUDDY | PG_REPORTED);
    z->nr_free[FREE_IDX(order, mt)] -= 1;
    z->zstate[ZS_NR_FREE_PAGES] -= (int64_t)1 << order;
}

static inline void move_to_free_list(struct zone *z, int64_t pfn, int64_t order,
                                     int64_t old_mt, int64_t new_mt)
{
    list_del(z, z->free_head, z->free_tail, FREE_IDX(order, old_mt), pfn);
    z->nr_free[FREE_IDX(order, old_mt)] -= 1;
    list_add(z, z->free_head, z->free_tail, FREE_IDX(order, new_mt), pfn, 1);
    z->nr_free[FREE_IDX(order, new_mt)] += 1;
}

static int64_t __free_one_page(struct zone *z, int64_t pfn, int64_t order, int64_t mt,
                               int64_t fpi)
{
    int64_t max_order = z->conf[C_MAX_ORDER], pageblock_order = z->conf[C_PAGEBLOCK_ORDER];
    int64_t nr_pages = z->conf[C_NR_PAGES], buddy_pfn = 0, higher;
    int zeroed = (fpi & FPI_ZEROED) != 0, to_tail;
    while (order < max_order) {
        int64_t buddy_mt = mt;
        int buddy_zeroed;
        buddy_pfn = pfn ^ ((int64_t)1 << order);
        if (buddy_pfn >= nr_pages || !(z->flags[buddy_pfn] & PG_BUDDY) ||
            z->order[buddy_pfn] != order)
            break;
        if (order >= pageblock_order)
            buddy_mt = get_pfnblock_migratetype(z, buddy_pfn);
        buddy_zeroed = (z->flags[buddy_pfn] & PG_ZEROED) != 0;
        __del_page_from_free_list(z, buddy_pfn, order, buddy_mt);
        z->flags[buddy_pfn] = 0;
        if (buddy_zeroed != zeroed)
            z->stat[S_ZEROED_DROPPED_MERGE] += (int64_t)1 << order;
        zeroed = zeroed && buddy_zeroed;
        if (buddy_mt != mt)
            set_pageblock_migratetype(z, buddy_pfn, mt);
        pfn = buddy_pfn & pfn;
        order += 1;
    }
    z->flags[pfn] = zeroed ? PG_ZEROED : 0;
    to_tail = (fpi & FPI_TO_TAIL) != 0;
    if (!to_tail && order < max_order - 1) {
        higher = (buddy_pfn & pfn) ^ ((int64_t)1 << (order + 1));
        to_tail = higher < nr_pages && (z->flags[higher] & PG_BUDDY) &&
                  z->order[higher] == order + 1;
    }
    __add_to_free_list(z, pfn, order, mt, to_tail);
    if (!(fpi & FPI_SKIP_REPORT_NOTIFY) && order >= z->conf[C_REPORTING_ORDER])
        z->stat[S_REPORT_NOTIFY] += 1;
    return pfn;
}

static void split_large_buddy(struct zone *z, int64_t pfn, int64_t order, int64_t fpi)
{
    int64_t end = pfn + ((int64_t)1 << order);
    if (order > z->conf[C_PAGEBLOCK_ORDER])
        order = z->conf[C_PAGEBLOCK_ORDER];
    do {
        __free_one_page(z, pfn, order, get_pfnblock_migratetype(z, pfn), fpi);
        pfn += (int64_t)1 << order;
    } while (pfn < end);
}

static inline void expand(struct zone *z, int64_t pfn, int64_t low, int64_t high, int64_t mt,
                          int zeroed)
{
    int64_t size = (int64_t)1 << high;
    while (high > low) {
        high -= 1;
        size >>= 1;
        z->flags[pfn + size] = zeroed ? PG_ZEROED : 0;
        __add_to_free_list(z, pfn + size, high, mt, 0);
    }
}

static inline void page_del_and_expand(struct zone *z, int64_t pfn, int64_t order,
                                       int64_t current_order, int64_t mt)
{
    int zeroed = (z->flags[pfn] & PG_ZEROED) != 0;
    __del_page_from_free_list(z, pfn, current_order, mt);
    expand(z, pfn, order, current_order, mt, zeroed);
}

static int64_t __rmqueue_smallest(struct zone *z, int64_t order, int64_t mt)
{
    for (int64_t current_order = order; current_order <= z->conf[C_MAX_ORDER]; current_order++) {
        int64_t pfn = z->free_head[FREE_IDX(current_order, mt)];
        if (pfn == NONE)
            continue;
        page_del_and_expand(z, pfn, order, current_order, mt);
        return pfn;
    }
    return NONE;
}

static int should_try_claim_block(struct zone *z, int64_t order, int64_t start_mt)
{
    int64_t pageblock_order = z->conf[C_PAGEBLOCK_ORDER];
    if (order >= pageblock_order)
        return 1;
    if (order >= pageblock_order / 2)
        return 1;
    if (start_mt == MIGRATE_RECLAIMABLE || start_mt == MIGRATE_UNMOVABLE)
        return 1;
    if (z->conf[C_MOBILITY] == 0)
        return 1;
    return 0;
}

static int64_t find_suitable_fallback(struct zone *z, int64_t order, int64_t mt, int claimable)
{
    if (claimable && !should_try_claim_block(z, order, mt))
        return -2;
    for (int i = 0; i < MIGRATE_PCPTYPES - 1; i++) {
        int64_t fallback_mt = FALLBACKS[mt][i];
        if (z->free_head[FREE_IDX(order, fallback_mt)] != NONE)
            return fallback_mt;
    }
    return -1;
}

static void change_pageblock_range(struct zone *z, int64_t pfn, int64_t order, int64_t mt)
{
    int64_t pageblock_order = z->conf[C_PAGEBLOCK_ORDER];
    for (int64_t i = 0; i < ((int64_t)1 << (order - pageblock_order)); i++)
        set_pageblock_migratetype(z, pfn + (i << pageblock_order), mt);
}

static int64_t prep_move_freepages_block(struct zone *z, int64_t pfn, int64_t *free_pages,
                                         int64_t *movable)
{
    int64_t nr_pageblock = (int64_t)1 << z->conf[C_PAGEBLOCK_ORDER];
    int64_t start = pfn & ~(nr_pageblock - 1), end = start + nr_pageblock - 1, p = start;
    *free_pages = 0;
    *movable = 0;
    if (end >= z->conf[C_NR_PAGES])
        return NONE;
    while (p <= end) {
        uint8_t f = z->flags[p];
        int64_t size = (int64_t)1 << z->order[p];
        if (f & PG_BUDDY) {
            *free_pages += size;
            p += size;
        } else if (f & PG_ALLOC) {
            if (z->next[p] == MIGRATE_MOVABLE)
                *movable += size;
            p += size;
        } else if (f & (PG_PCP | PG_ISOLATED)) {
            p += size;
        } else {
            p += 1;
        }
    }
    return start;
}

static int64_t __move_freepages_block(struct zone *z, int64_t start, int64_t old_mt,
                                      int64_t new_mt)
{
    int64_t end = start + ((int64_t)1 << z->conf[C_PAGEBLOCK_ORDER]), moved = 0, p = start;
    while (p < end) {
        if (z->flags[p] & PG_BUDDY) {
            int64_t o = z->order[p];
            move_to_free_list(z, p, o, old_mt, new_mt);
            p += (int64_t)1 << o;
            moved += (int64_t)1 << o;
        } else {
            p += 1;
        }
    }
    return moved;
}

static int64_t try_to_claim_block(struct zone *z, int64_t pfn, int64_t current_order,
                                  int64_t order, int64_t start_type, int64_t block_type)
{
    int64_t start, free_pages, movable_pages, alike_pages;
    if (current_order >= z->conf[C_PAGEBLOCK_ORDER]) {
        int zeroed = (z->flags[pfn] & PG_ZEROED) != 0;
        __del_page_from_free_list(z, pfn, current_order, block_type);
        change_pageblock_range(z, pfn, current_order, start_type);
        expand(z, pfn, order, current_order, start_type, zeroed);
        return pfn;
    }
    start = prep_move_freepages_block(z, pfn, &free_pages, &movable_pages);
    if (start == NONE)
        return NONE;
    if (start_type == MIGRATE_MOVABLE)
        alike_pages = movable_pages;
    else if (block_type == MIGRATE_MOVABLE)
        alike_pages = ((int64_t)1 << z->conf[C_PAGEBLOCK_ORDER]) - (free_pages + movable_pages);
    else
        alike_pages = 0;
    if (free_pages + alike_pages >= ((int64_t)1 << (z->conf[C_PAGEBLOCK_ORDER] - 1)) ||
        z->conf[C_MOBILITY] == 0) {
        __move_freepages_block(z, start, block_type, start_type);
        set_pageblock_migratetype(z, start, start_type);
        return __rmqueue_smallest(z, order, start_type);
    }
    return NONE;
}

static int64_t __rmqueue_claim(struct zone *z, int64_t order, int64_t start_mt)
{
    for (int64_t current_order = z->conf[C_MAX_ORDER]; current_order >= order; current_order--) {
        int64_t fallback_mt = find_suitable_fallback(z, current_order, start_mt, 1), pfn;
        if (fallback_mt == -1)
            continue;
        if (fallback_mt == -2)
            break;
        pfn = z->free_head[FREE_IDX(current_order, fallback_mt)];
        pfn = try_to_claim_block(z, pfn, current_order, order, start_mt, fallback_mt);
        if (pfn != NONE) {
            z->stat[S_EXTFRAG] += 1;
            return pfn;
        }
    }
    return NONE;
}

static int64_t __rmqueue_steal(struct zone *z, int64_t order, int64_t start_mt)
{
    for (int64_t current_order = order; current_order <= z->conf[C_MAX_ORDER]; current_order++) {
        int64_t fallback_mt = find_suitable_fallback(z, current_order, start_mt, 0), pfn;
        if (fallback_mt == -1)
            continue;
        pfn = z->free_head[FREE_IDX(current_order, fallback_mt)];
        page_del_and_expand(z, pfn, order, current_order, fallback_mt);
        z->stat[S_EXTFRAG] += 1;
        return pfn;
    }
    return NONE;
}

static int64_t __rmqueue(struct zone *z, int64_t order, int64_t mt, int *mode)
{
    int64_t pfn;
    if (*mode == RMQUEUE_NORMAL) {
        pfn = __rmqueue_smallest(z, order, mt);
        if (pfn != NONE)
            return pfn;
    }
    if (*mode <= RMQUEUE_CLAIM) {
        pfn = __rmqueue_claim(z, order, mt);
        if (pfn != NONE) {
            *mode = RMQUEUE_NORMAL;
            return pfn;
        }
    }
    pfn = __rmqueue_steal(z, order, mt);
    if (pfn != NONE) {
        *mode = RMQUEUE_STEAL;
        return pfn;
    }
    return NONE;
}

static inline int pcp_allowed_order(struct zone *z, int64_t order)
{
    if (order <= PAGE_ALLOC_COSTLY_ORDER)
        return 1;
    return z->conf[C_THP] != 0 && order == z->conf[C_PAGEBLOCK_ORDER];
}

static inline int64_t order_to_pindex(int64_t mt, int64_t order)
{
    if (order > PAGE_ALLOC_COSTLY_ORDER)
        return NR_LOWORDER_PCP_LISTS + (mt == MIGRATE_MOVABLE ? 1 : 0);
    return MIGRATE_PCPTYPES * order + mt;
}

static inline int64_t pindex_to_order(struct zone *z, int64_t pindex)
{
    if (pindex >= NR_LOWORDER_PCP_LISTS)
        return z->conf[C_PAGEBLOCK_ORDER];
    return pindex / MIGRATE_PCPTYPES;
}

static void free_pcppages_bulk(struct zone *z, int64_t cpu, int64_t count, int64_t pindex)
{
    if (z->pcp_count[cpu] < count)
        count = z->pcp_count[cpu];
    pindex -= 1;
    while (count > 0) {
        int64_t order, nr_pages;
        do {
            pindex += 1;
            if (pindex > NR_PCP_LISTS - 1)
                pindex = 0;
        } while (z->pcp_head[PCP_IDX(cpu, pindex)] == NONE);
        order = pindex_to_order(z, pindex);
        nr_pages = (int64_t)1 << order;
        for (;;) {
            int64_t pfn = z->pcp_tail[PCP_IDX(cpu, pindex)], fpi;
            list_del(z, z->pcp_head, z->pcp_tail, PCP_IDX(cpu, pindex), pfn);
            count -= nr_pages;
            z->pcp_count[cpu] -= nr_pages;
            fpi = (z->flags[pfn] & PG_ZEROED) ? FPI_ZEROED : 0;
            z->flags[pfn] = 0;
            z->stat[S_PCP_DRAIN] += nr_pages;
            __free_one_page(z, pfn, order, get_pfnblock_migratetype(z, pfn), fpi);
            if (count <= 0 || z->pcp_head[PCP_IDX(cpu, pindex)] == NONE)
                break;
        }
    }
}

static inline int64_t nr_pcp_alloc(struct zone *z, int64_t order)
{
    int64_t batch = z->conf[C_BATCH];
    if (batch > 1) {
        batch >>= order;
        if (batch < 2)
            batch = 2;
    }
    return batch;
}

static int64_t rmqueue_bulk(struct zone *z, int64_t cpu, int64_t order, int64_t count,
                            int64_t mt, int64_t pindex)
{
    int mode = RMQUEUE_NORMAL;
    int64_t i = 0;
    while (i < count) {
        int64_t pfn = __rmqueue(z, order, mt, &mode);
        if (pfn == NONE)
            break;
        z->flags[pfn] = PG_PCP | (z->flags[pfn] & PG_ZEROED);
        z->order[pfn] = (int8_t)order;
        list_add(z, z->pcp_head, z->pcp_tail, PCP_IDX(cpu, pindex), pfn, 1);
        i += 1;
    }
    z->stat[S_PCP_REFILL] += i;
    z->stat[S_PCP_REFILL_PAGES] += i << order;
    return i;
}

static int64_t rmqueue_pcplist(struct zone *z, int64_t cpu, int64_t order, int64_t mt)
{
    int64_t pindex = order_to_pindex(mt, order), pfn;
    if (z->pcp_head[PCP_IDX(cpu, pindex)] == NONE) {
        int64_t alloced = rmqueue_bulk(z, cpu, order, nr_pcp_alloc(z, order), mt, pindex);
        z->pcp_count[cpu] += alloced << order;
        if (z->pcp_head[PCP_IDX(cpu, pindex)] == NONE)
            return NONE;
    }
    pfn = z->pcp_head[PCP_IDX(cpu, pindex)];
    list_del(z, z->pcp_head, z->pcp_tail, PCP_IDX(cpu, pindex), pfn);
    z->pcp_count[cpu] -= (int64_t)1 << order;
    z->flags[pfn] &= 0xFF ^ PG_PCP;
    return pfn;
}

static inline void prep_new_page(struct zone *z, int64_t pfn, int64_t order, int64_t mt)
{
    int zeroed = (z->flags[pfn] & PG_ZEROED) != 0;
    z->flags[pfn] = PG_ALLOC | (zeroed ? PG_HINT : 0);
    z->order[pfn] = (int8_t)order;
    z->next[pfn] = (int32_t)mt;
    z->prev[pfn] = NONE;
    z->stat[S_PGALLOC] += (int64_t)1 << order;
    z->stat[S_NR_ALLOCATED] += (int64_t)1 << order;
    if (zeroed)
        z->stat[S_ALLOC_ZEROED] += (int64_t)1 << order;
}

static inline int64_t gfp_migratetype(struct zone *z, int64_t gfp)
{
    int64_t mt = (gfp >> 3) & 3;
    if (mt == 3)
        return -E_BAD_GFP;
    if (z->conf[C_MOBILITY] == 0)
        return MIGRATE_UNMOVABLE;
    return mt;
}

static int64_t alloc_pages(struct zone *z, int64_t order, int64_t gfp, int64_t cpu)
{
    int64_t mt, pfn = NONE;
    int mode = RMQUEUE_NORMAL;
    if (order < 0 || order > z->conf[C_MAX_ORDER])
        return -E_BAD_ORDER;
    if (cpu < 0 || cpu >= z->conf[C_NR_CPUS])
        return -E_BAD_CPU;
    mt = gfp_migratetype(z, gfp);
    if (mt < 0)
        return mt;
    if (z->conf[C_PCP] != 0 && pcp_allowed_order(z, order))
        pfn = rmqueue_pcplist(z, cpu, order, mt);
    if (pfn == NONE)
        pfn = __rmqueue(z, order, mt, &mode);
    if (pfn == NONE) {
        z->stat[S_ALLOC_FAIL] += 1;
        return NONE;
    }
    prep_new_page(z, pfn, order, mt);
    return pfn;
}

static inline int64_t check_block(struct zone *z, int64_t pfn, int64_t order)
{
    if (order < 0 || order > z->conf[C_MAX_ORDER])
        return -E_BAD_ORDER;
    if (pfn < 0 || pfn + ((int64_t)1 << order) > z->conf[C_NR_PAGES])
        return -E_RANGE;
    if (pfn & (((int64_t)1 << order) - 1))
        return -E_UNALIGNED;
    return 0;
}

static int64_t free_pages(struct zone *z, int64_t pfn, int64_t order, int64_t fpi, int64_t cpu)
{
    int64_t err = check_block(z, pfn, order);
    uint8_t f;
    if (err)
        return err;
    if (cpu < 0 || cpu >= z->conf[C_NR_CPUS])
        return -E_BAD_CPU;
    f = z->flags[pfn];
    if (f & (PG_BUDDY | PG_PCP | PG_ISOLATED))
        return -E_DOUBLE_FREE;
    if (!(f & PG_ALLOC))
        return -E_NOT_ALLOCATED;
    if (z->order[pfn] != order)
        return -E_WRONG_ORDER;
    z->flags[pfn] = 0;
    z->stat[S_PGFREE] += (int64_t)1 << order;
    z->stat[S_NR_ALLOCATED] -= (int64_t)1 << order;
    if (z->conf[C_PCP] != 0 && pcp_allowed_order(z, order) && !(fpi & FPI_TO_TAIL)) {
        int64_t pindex = order_to_pindex(get_pfnblock_migratetype(z, pfn), order);
        z->flags[pfn] = PG_PCP | ((fpi & FPI_ZEROED) ? PG_ZEROED : 0);
        z->order[pfn] = (int8_t)order;
        list_add(z, z->pcp_head, z->pcp_tail, PCP_IDX(cpu, pindex), pfn, 0);
        z->pcp_count[cpu] += (int64_t)1 << order;
        if (z->pcp_count[cpu] >= z->conf[C_HIGH])
            free_pcppages_bulk(z, cpu, z->conf[C_BATCH], pindex);
    } else {
        split_large_buddy(z, pfn, order, fpi);
    }
    return 0;
}

/*
 * bulk.py's run_ops for OP_ALLOC, OP_FREE and OP_FREE_REF, strict: returns the number of rows
 * done (n when all went well); out_pfn and out_hint as run_ops writes them.
 */
/*
 * With prefetch set, the loop fetches ahead what allocator/bulk.py's run_ops fetches ahead
 * (the row a FREE_REF names, PREFETCH_ROWS on; the block it frees and its buddy's links, half
 * as far): the yardstick for the model's code generation alone, beside the plain loop.
 */
#define PREFETCH_ROWS 16

static inline void prefetch_ahead(const struct zone *z, int64_t i, int64_t n, const uint8_t *op,
                                  const int8_t *order, const int64_t *arg,
                                  const int64_t *out_pfn)
{
    int64_t ahead = i + PREFETCH_ROWS, near = i + PREFETCH_ROWS / 2;
    if (ahead < n && op[ahead] == OP_FREE_REF) {
        __builtin_prefetch(&out_pfn[arg[ahead]]);
        __builtin_prefetch(&op[arg[ahead]]);
    }
    if (near < n && op[near] == OP_FREE_REF && arg[near] >= 0 && arg[near] < near) {
        int64_t pfn = out_pfn[arg[near]];
        if (pfn >= 0) {
            __builtin_prefetch(&z->flags[pfn]);
            __builtin_prefetch(&z->next[pfn]);
            __builtin_prefetch(&z->prev[pfn]);
            if (order[near] >= 0 && order[near] < 32) {
                int64_t buddy = pfn ^ ((int64_t)1 << order[near]);
                __builtin_prefetch(&z->next[buddy]);
                __builtin_prefetch(&z->prev[buddy]);
            }
        }
    }
}

int64_t c_run_ops(struct zone *z, int64_t n, const uint8_t *op, const int8_t *order,
                  const uint16_t *cpu, const uint32_t *fpi, const uint32_t *gfp,
                  const int64_t *arg, int64_t *out_pfn, uint8_t *out_hint, int64_t prefetch)
{
    for (int64_t i = 0; i < n; i++) {
        if (prefetch)
            prefetch_ahead(z, i, n, op, order, arg, out_pfn);
        int64_t res = 0, pfn = arg[i];
        out_hint[i] = 0;
        if (op[i] == OP_ALLOC) {
            res = alloc_pages(z, order[i], gfp[i], cpu[i]);
            pfn = res;
            if (res >= 0) {
                out_hint[i] = (z->flags[res] & PG_HINT) != 0;
                res = 0;
            } else if (res == NONE) {
                res = 0;
            }
        } else if (op[i] == OP_FREE || op[i] == OP_FREE_REF) {
            if (op[i] == OP_FREE_REF) {
                if (arg[i] < 0 || arg[i] >= i || op[arg[i]] != OP_ALLOC)
                    res = -E_BAD_REF;
                else
                    pfn = out_pfn[arg[i]];
            }
            if (res == 0 && pfn != NONE)
                res = free_pages(z, pfn, order[i], fpi[i], cpu[i]);
        } else {
            res = -E_BAD_OP;
        }
        if (res < 0) {
            out_pfn[i] = NONE;
            return i;
        }
        out_pfn[i] = pfn;
    }
    return n;
}
