/*
 * slab.c: page and size-class allocator for shared zones (see slab.h).
 *
 * Page descriptor types:
 *   UNMARKED   only between mp_slab_reset_locked() and the rebuild
 *   FREE_HEAD  first page of a free run; npages = run length
 *   FREE_TAIL  last page of a free run of two or more; head = head's index
 *   FREE_BODY  any other page of a free run
 *   RUN_HEAD   first page of an allocated run; npages = run length
 *   RUN_BODY   other pages of an allocated run
 *   CLASS      a page cut into slots of class cls
 * Free runs never touch each other (they are merged when freed), so the
 * page before a run being freed is either a free run's head or tail, or in
 * use; that is what makes coalescing O(1).
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "shm/crash.h"
#include "shm/slab.h"

enum {
    UNMARKED = 0,
    FREE_HEAD,
    FREE_TAIL,
    FREE_BODY,
    RUN_HEAD,
    RUN_BODY,
    CLASS
};

#define BITMAP_WORDS 4


static inline uint32_t
page_index(const mp_slab_pool_t *pool, const mp_slab_page_t *page)
{
    return (uint32_t) (page - pool->pages);
}


static inline char *
page_addr(const mp_slab_pool_t *pool, const mp_slab_page_t *page)
{
    return pool->start + ((size_t) page_index(pool, page) << MP_SLAB_PAGE_SHIFT);
}


static inline uint32_t
class_slots(unsigned cls)
{
    return MP_SLAB_PAGE_SIZE >> (cls + MP_SLAB_MIN_SHIFT);
}


static inline int
size_class(size_t size)
{
    unsigned shift = MP_SLAB_MIN_SHIFT;

    if (size <= ((size_t) 1 << MP_SLAB_MIN_SHIFT)) {
        return 0;
    }
    /* The smallest shift with (1 << shift) >= size. */
    shift = 64 - (unsigned) __builtin_clzll((unsigned long long) size - 1);
    return (int) (shift - MP_SLAB_MIN_SHIFT);
}


size_t
mp_slab_run_pages(size_t size)
{
    if (size <= MP_SLAB_MAX_CLASS_SIZE) {
        return 0;
    }
    return (size + MP_SLAB_PAGE_SIZE - 1) >> MP_SLAB_PAGE_SHIFT;
}


size_t
mp_slab_block_size(size_t size)
{
    if (size <= MP_SLAB_MAX_CLASS_SIZE) {
        return (size_t) 1 << (size_class(size) + MP_SLAB_MIN_SHIFT);
    }
    return mp_slab_run_pages(size) << MP_SLAB_PAGE_SHIFT;
}


/* Doubly linked lists with a head pointer; prev of the first is NULL. */
static inline void
list_push(mp_slab_page_t **head, mp_slab_page_t *page)
{
    page->prev = NULL;
    page->next = *head;
    if (*head != NULL) {
        (*head)->prev = page;
    }
    *head = page;
}


static inline void
list_remove(mp_slab_page_t **head, mp_slab_page_t *page)
{
    if (page->prev != NULL) {
        page->prev->next = page->next;
    } else {
        *head = page->next;
    }
    if (page->next != NULL) {
        page->next->prev = page->prev;
    }
    page->next = NULL;
    page->prev = NULL;
}


/* Writes the head and tail markers of the free run [h, h + n). */
static void
set_free_run(mp_slab_pool_t *pool, uint32_t h, uint32_t n)
{
    mp_slab_page_t *head = &pool->pages[h];

    head->type = FREE_HEAD;
    head->npages = n;
    if (n > 1) {
        mp_slab_page_t *tail = &pool->pages[h + n - 1];

        tail->type = FREE_TAIL;
        tail->head = h;
    }
}


mp_slab_pool_t *
mp_slab_init(void *addr, size_t size)
{
    mp_slab_pool_t *pool = addr;
    uintptr_t base = (uintptr_t) addr, end = base + size, first;
    size_t n, hdr = mp_align(sizeof(mp_slab_pool_t), 64);

    if (size < hdr + 2 * MP_SLAB_PAGE_SIZE) {
        return NULL;
    }
    n = (size - hdr - MP_SLAB_PAGE_SIZE) /
        (MP_SLAB_PAGE_SIZE + sizeof(mp_slab_page_t));
    for (;;) {
        first = mp_align(base + hdr + n * sizeof(mp_slab_page_t),
                         MP_SLAB_PAGE_SIZE);
        if (first + (n << MP_SLAB_PAGE_SHIFT) <= end || n == 0) {
            break;
        }
        n--;
    }
    if (n == 0 || n > UINT32_MAX / 2) {
        return NULL;
    }

    memset(pool, 0, sizeof(*pool));
    pool->pages = (mp_slab_page_t *) (base + hdr);
    pool->start = (char *) first;
    pool->npages = (uint32_t) n;
    mp_slab_reset_locked(pool);
    mp_slab_rebuild_locked(pool);
    return pool;
}


/* First fit over the free runs; the run is split from its front. */
static mp_slab_page_t *
alloc_pages(mp_slab_pool_t *pool, uint32_t n)
{
    mp_slab_page_t *run;
    uint32_t h, rest;

    if (pool->free_pages < n) {
        return NULL;
    }
    for (run = pool->free_runs; run != NULL; run = run->next) {
        if (run->npages >= n) {
            break;
        }
    }
    if (run == NULL) {
        return NULL;
    }

    h = page_index(pool, run);
    rest = run->npages - n;
    list_remove(&pool->free_runs, run);
    mp_shm_crash_point();
    if (rest > 0) {
        set_free_run(pool, h + n, rest);
        list_push(&pool->free_runs, &pool->pages[h + n]);
    }
    pool->free_pages -= n;
    return run;
}


/* Returns the run [h, h + n) to the free runs, merging with neighbours. */
static void
free_pages(mp_slab_pool_t *pool, uint32_t h, uint32_t n)
{
    mp_slab_page_t *pages = pool->pages;
    uint32_t i, j = h + n, left = UINT32_MAX;

    pool->free_pages += n;
    for (i = h; i < h + n; i++) {
        pages[i].type = FREE_BODY;
    }
    if (j < pool->npages && pages[j].type == FREE_HEAD) {
        list_remove(&pool->free_runs, &pages[j]);
        n += pages[j].npages;
        pages[j].type = FREE_BODY;
    }
    mp_shm_crash_point();
    if (h > 0) {
        if (pages[h - 1].type == FREE_HEAD) {
            left = h - 1;
        } else if (pages[h - 1].type == FREE_TAIL) {
            left = pages[h - 1].head;
        }
    }
    if (left != UINT32_MAX) {
        list_remove(&pool->free_runs, &pages[left]);
        pages[h - 1].type = FREE_BODY;
        n += h - left;
        h = left;
    }
    set_free_run(pool, h, n);
    list_push(&pool->free_runs, &pages[h]);
}


static void *
alloc_slot(mp_slab_pool_t *pool, int cls)
{
    mp_slab_page_t *page = pool->partial[cls];
    uint32_t w, bit, slots = class_slots((unsigned) cls);

    pool->reqs[cls]++;
    if (page == NULL) {
        page = alloc_pages(pool, 1);
        if (page == NULL) {
            pool->fails[cls]++;
            return NULL;
        }
        page->type = CLASS;
        page->cls = (uint8_t) cls;
        page->nused = 0;
        /* Slots past the end of the page read as used. */
        for (w = 0; w < BITMAP_WORDS; w++) {
            if (w * 64 >= slots) {
                page->bitmap[w] = ~0ULL;
            } else if (slots - w * 64 < 64) {
                page->bitmap[w] = ~0ULL << (slots - w * 64);
            } else {
                page->bitmap[w] = 0;
            }
        }
        pool->class_pages[cls]++;
        list_push(&pool->partial[cls], page);
        mp_shm_crash_point();
    }

    for (w = 0; page->bitmap[w] == ~0ULL; w++) {
        /* a page on the partial list has a clear bit */
    }
    bit = (uint32_t) __builtin_ctzll(~page->bitmap[w]);
    page->bitmap[w] |= 1ULL << bit;
    page->nused++;
    pool->used[cls]++;
    if (page->nused == slots) {
        list_remove(&pool->partial[cls], page);
    }
    return page_addr(pool, page) +
           ((size_t) (w * 64 + bit) << (cls + MP_SLAB_MIN_SHIFT));
}


void *
mp_slab_alloc_locked(mp_slab_pool_t *pool, size_t size)
{
    mp_slab_page_t *run;
    uint32_t n, i;

    if (size <= MP_SLAB_MAX_CLASS_SIZE) {
        return alloc_slot(pool, size_class(size));
    }

    pool->run_reqs++;
    if (mp_slab_run_pages(size) > pool->npages) {
        pool->run_fails++;
        return NULL;
    }
    n = (uint32_t) mp_slab_run_pages(size);
    run = alloc_pages(pool, n);
    if (run == NULL) {
        pool->run_fails++;
        return NULL;
    }
    run->type = RUN_HEAD;
    run->npages = n;
    for (i = 1; i < n; i++) {
        run[i].type = RUN_BODY;
    }
    pool->run_pages += n;
    return page_addr(pool, run);
}


static void
free_slot(mp_slab_pool_t *pool, mp_slab_page_t *page, size_t off)
{
    unsigned cls = page->cls;
    uint32_t slot = (uint32_t) (off >> (cls + MP_SLAB_MIN_SHIFT));
    uint64_t mask = 1ULL << (slot & 63);

    if ((off & (((size_t) 1 << (cls + MP_SLAB_MIN_SHIFT)) - 1)) != 0
        || (page->bitmap[slot >> 6] & mask) == 0)
    {
        mp_log_error(MP_LOG_ALERT, 0, "slab: free of a free or bad pointer");
        return;
    }
    if (page->nused == class_slots(cls)) {
        list_push(&pool->partial[cls], page);
    }
    page->bitmap[slot >> 6] &= ~mask;
    page->nused--;
    pool->used[cls]--;
    mp_shm_crash_point();
    if (page->nused == 0) {
        /* An empty page goes back to the pool for any class or run. */
        list_remove(&pool->partial[cls], page);
        pool->class_pages[cls]--;
        free_pages(pool, page_index(pool, page), 1);
    }
}


void
mp_slab_free_locked(mp_slab_pool_t *pool, void *p)
{
    mp_slab_page_t *page;
    size_t off;

    if ((char *) p < pool->start
        || (char *) p >= pool->start + ((size_t) pool->npages
                                        << MP_SLAB_PAGE_SHIFT))
    {
        mp_log_error(MP_LOG_ALERT, 0, "slab: free of a pointer outside pool");
        return;
    }
    off = (size_t) ((char *) p - pool->start);
    page = &pool->pages[off >> MP_SLAB_PAGE_SHIFT];
    off &= MP_SLAB_PAGE_SIZE - 1;

    if (page->type == CLASS) {
        free_slot(pool, page, off);
        return;
    }
    if (page->type == RUN_HEAD && off == 0) {
        pool->run_pages -= page->npages;
        free_pages(pool, page_index(pool, page), page->npages);
        return;
    }
    mp_log_error(MP_LOG_ALERT, 0, "slab: free of a free or bad pointer");
}


size_t
mp_slab_free_bytes_locked(const mp_slab_pool_t *pool)
{
    return (size_t) pool->free_pages << MP_SLAB_PAGE_SHIFT;
}


void
mp_slab_stats_locked(const mp_slab_pool_t *pool, mp_slab_stats_t *st)
{
    unsigned c;

    memset(st, 0, sizeof(*st));
    st->pages_total = pool->npages;
    st->pages_free = pool->free_pages;
    st->pages_used = pool->npages - pool->free_pages;
    st->run_pages = pool->run_pages;
    st->run_reqs = pool->run_reqs;
    st->failed = pool->run_fails;
    for (c = 0; c < MP_SLAB_NCLASSES; c++) {
        mp_slab_class_stats_t *cs = &st->classes[c];

        cs->size = (size_t) 1 << (c + MP_SLAB_MIN_SHIFT);
        cs->pages = pool->class_pages[c];
        cs->used = pool->used[c];
        cs->total = cs->pages * class_slots(c);
        cs->reqs = pool->reqs[c];
        cs->fails = pool->fails[c];
        st->failed += cs->fails;
    }
}


void
mp_slab_reset_locked(mp_slab_pool_t *pool)
{
    unsigned c;

    memset(pool->pages, 0, (size_t) pool->npages * sizeof(mp_slab_page_t));
    pool->free_runs = NULL;
    pool->free_pages = 0;
    pool->run_pages = 0;
    for (c = 0; c < MP_SLAB_NCLASSES; c++) {
        pool->partial[c] = NULL;
        pool->used[c] = 0;
        pool->class_pages[c] = 0;
    }
}


int
mp_slab_mark_locked(mp_slab_pool_t *pool, void *p, size_t size)
{
    mp_slab_page_t *page;
    size_t off, idx, n, i;
    unsigned cls;
    uint32_t slot;

    if ((char *) p < pool->start) {
        return MP_ERROR;
    }
    off = (size_t) ((char *) p - pool->start);
    idx = off >> MP_SLAB_PAGE_SHIFT;
    off &= MP_SLAB_PAGE_SIZE - 1;
    if (idx >= pool->npages) {
        return MP_ERROR;
    }
    page = &pool->pages[idx];

    if (size > MP_SLAB_MAX_CLASS_SIZE) {
        n = mp_slab_run_pages(size);
        if (off != 0 || idx + n > pool->npages) {
            return MP_ERROR;
        }
        for (i = 0; i < n; i++) {
            if (page[i].type != UNMARKED) {
                return MP_ERROR;
            }
        }
        page->type = RUN_HEAD;
        page->npages = (uint32_t) n;
        for (i = 1; i < n; i++) {
            page[i].type = RUN_BODY;
        }
        return MP_OK;
    }

    cls = (unsigned) size_class(size);
    if (page->type == UNMARKED) {
        page->type = CLASS;
        page->cls = (uint8_t) cls;
    } else if (page->type != CLASS || page->cls != cls) {
        return MP_ERROR;
    }
    if ((off & (((size_t) 1 << (cls + MP_SLAB_MIN_SHIFT)) - 1)) != 0) {
        return MP_ERROR;
    }
    slot = (uint32_t) (off >> (cls + MP_SLAB_MIN_SHIFT));
    if (page->bitmap[slot >> 6] & (1ULL << (slot & 63))) {
        return MP_ERROR;
    }
    page->bitmap[slot >> 6] |= 1ULL << (slot & 63);
    page->nused++;
    return MP_OK;
}


void
mp_slab_rebuild_locked(mp_slab_pool_t *pool)
{
    mp_slab_page_t *page;
    uint32_t i, j, w, slots;

    for (i = 0; i < pool->npages; /* void */) {
        page = &pool->pages[i];
        if (page->type == UNMARKED) {
            for (j = i; j < pool->npages && pool->pages[j].type == UNMARKED;
                 j++)
            {
                pool->pages[j].type = FREE_BODY;
            }
            set_free_run(pool, i, j - i);
            list_push(&pool->free_runs, page);
            pool->free_pages += j - i;
            i = j;
            continue;
        }
        if (page->type == RUN_HEAD) {
            pool->run_pages += page->npages;
            i += page->npages;
            continue;
        }
        /* CLASS: the marks set only used bits; add the unused tail. */
        slots = class_slots(page->cls);
        for (w = 0; w < BITMAP_WORDS; w++) {
            if (w * 64 >= slots) {
                page->bitmap[w] = ~0ULL;
            } else if (slots - w * 64 < 64) {
                page->bitmap[w] |= ~0ULL << (slots - w * 64);
            }
        }
        pool->class_pages[page->cls]++;
        pool->used[page->cls] += page->nused;
        if (page->nused < slots) {
            list_push(&pool->partial[page->cls], page);
        }
        i++;
    }
}


static int
check_class_page(const mp_slab_pool_t *pool, const mp_slab_page_t *page,
    uint64_t *used, const char **errmsg)
{
    const mp_slab_page_t *q;
    uint32_t w, bits = 0, slots = class_slots(page->cls), on_list = 0;

    if (page->cls >= MP_SLAB_NCLASSES) {
        *errmsg = "class page with a bad class";
        return MP_ERROR;
    }
    for (w = 0; w < BITMAP_WORDS; w++) {
        bits += (uint32_t) __builtin_popcountll(page->bitmap[w]);
    }
    if (bits != page->nused + (BITMAP_WORDS * 64 - slots)) {
        *errmsg = "class page bitmap disagrees with its use count";
        return MP_ERROR;
    }
    if (page->nused == 0) {
        *errmsg = "empty class page not returned to the pool";
        return MP_ERROR;
    }
    for (q = pool->partial[page->cls]; q != NULL && !on_list; q = q->next) {
        on_list = (q == page);
    }
    if (on_list != (page->nused < slots)) {
        *errmsg = "partial list disagrees with a page's free slots";
        return MP_ERROR;
    }
    used[page->cls] += page->nused;
    return MP_OK;
}


static int
check_free_runs(const mp_slab_pool_t *pool, const char **errmsg)
{
    const mp_slab_page_t *run, *pages = pool->pages;
    uint32_t h, n, total = 0, count = 0;

    for (run = pool->free_runs; run != NULL; run = run->next) {
        if (++count > pool->npages) {
            *errmsg = "free run list loops";
            return MP_ERROR;
        }
        h = page_index(pool, run);
        n = run->npages;
        if (run->type != FREE_HEAD || n == 0 || h + n > pool->npages) {
            *errmsg = "bad free run head";
            return MP_ERROR;
        }
        if (n > 1 && (pages[h + n - 1].type != FREE_TAIL
                      || pages[h + n - 1].head != h))
        {
            *errmsg = "bad free run tail";
            return MP_ERROR;
        }
        if ((h > 0 && pages[h - 1].type >= FREE_HEAD
             && pages[h - 1].type <= FREE_BODY)
            || (h + n < pool->npages && pages[h + n].type >= FREE_HEAD
                && pages[h + n].type <= FREE_BODY))
        {
            *errmsg = "adjacent free runs not coalesced";
            return MP_ERROR;
        }
        total += n;
    }
    if (total != pool->free_pages) {
        *errmsg = "free page count disagrees with the free runs";
        return MP_ERROR;
    }
    return MP_OK;
}


int
mp_slab_check_locked(const mp_slab_pool_t *pool, const char **errmsg)
{
    const mp_slab_page_t *page;
    uint64_t used[MP_SLAB_NCLASSES] = { 0 }, run_pages = 0;
    uint32_t i, k, free_seen = 0;
    unsigned c;

    for (i = 0; i < pool->npages; /* void */) {
        page = &pool->pages[i];
        switch (page->type) {
        case FREE_HEAD:
            free_seen += page->npages;
            i += page->npages;
            continue;
        case RUN_HEAD:
            for (k = 1; k < page->npages; k++) {
                if (i + k >= pool->npages || page[k].type != RUN_BODY) {
                    *errmsg = "bad allocated run";
                    return MP_ERROR;
                }
            }
            run_pages += page->npages;
            i += page->npages;
            continue;
        case CLASS:
            if (check_class_page(pool, page, used, errmsg) != MP_OK) {
                return MP_ERROR;
            }
            i++;
            continue;
        default:
            *errmsg = "page of unexpected type";
            return MP_ERROR;
        }
    }
    if (free_seen != pool->free_pages || run_pages != pool->run_pages) {
        *errmsg = "page counters disagree with the pages";
        return MP_ERROR;
    }
    for (c = 0; c < MP_SLAB_NCLASSES; c++) {
        if (used[c] != pool->used[c]) {
            *errmsg = "class use counter disagrees with the bitmaps";
            return MP_ERROR;
        }
    }
    return check_free_runs(pool, errmsg);
}
