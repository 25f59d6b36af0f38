/*
 * slab.h: the allocator inside a shared zone (or a part of one). The area
 * is cut into 4 KiB pages described by an array of page descriptors at its
 * start. Requests up to 2048 bytes are served from pages dedicated to one
 * power-of-two size class (16 .. 2048 bytes), each page tracking its slots
 * with a bitmap in its descriptor; a page whose last slot is freed goes
 * back to the page pool, so memory moves between classes as the workload
 * changes. Larger requests take a run of contiguous pages; free runs are
 * coalesced with their neighbours. Class alloc/free are O(1); a run
 * allocation is first-fit over the free runs.
 *
 * Nothing here locks: every function that touches a pool ends in _locked
 * and the caller holds the lock guarding the pool (a dict shard's mutex).
 * No allocator state lives inside allocated or free blocks, so a pool can
 * be rebuilt from the list of live blocks after a crash (mp_slab_reset /
 * mp_slab_mark / mp_slab_rebuild). Pointers are raw pointers into the zone,
 * valid in every process because zones are mapped before fork.
 */
#ifndef MP_SLAB_H
#define MP_SLAB_H

#include "core/mp_core.h"

#define MP_SLAB_PAGE_SHIFT 12
#define MP_SLAB_PAGE_SIZE (1 << MP_SLAB_PAGE_SHIFT)
#define MP_SLAB_MIN_SHIFT 4
#define MP_SLAB_MAX_SHIFT 11
#define MP_SLAB_NCLASSES (MP_SLAB_MAX_SHIFT - MP_SLAB_MIN_SHIFT + 1)
#define MP_SLAB_MAX_CLASS_SIZE (1 << MP_SLAB_MAX_SHIFT)

typedef struct mp_slab_page_s mp_slab_page_t;

/* One descriptor per page (64 bytes). */
struct mp_slab_page_s {
    uint64_t bitmap[4];   /* class pages: used slots (and the unused tail) */
    mp_slab_page_t *next; /* free-run list or class partial list */
    mp_slab_page_t *prev;
    uint8_t type;         /* MP_SLAB_* page type (slab.c) */
    uint8_t cls;          /* size class of a class page */
    uint16_t reserved;
    uint32_t nused;       /* slots in use in a class page */
    uint32_t npages;      /* run length at a run head */
    uint32_t head;        /* at a free run's last page: the head's index */
};

typedef struct {
    char *start;                      /* first page */
    mp_slab_page_t *pages;            /* descriptors */
    uint32_t npages;
    uint32_t free_pages;
    mp_slab_page_t *free_runs;        /* heads of free runs */
    mp_slab_page_t *partial[MP_SLAB_NCLASSES]; /* pages with a free slot */
    uint64_t used[MP_SLAB_NCLASSES];  /* slots in use */
    uint64_t class_pages[MP_SLAB_NCLASSES];
    uint64_t reqs[MP_SLAB_NCLASSES];
    uint64_t fails[MP_SLAB_NCLASSES];
    uint64_t run_pages;               /* pages in allocated runs */
    uint64_t run_reqs;
    uint64_t run_fails;
} mp_slab_pool_t;

typedef struct {
    size_t size;      /* slot size */
    size_t pages;     /* pages holding this class */
    size_t used;      /* slots in use */
    size_t total;     /* slots in those pages */
    size_t reqs;      /* allocations asked for */
    size_t fails;     /* allocations that failed */
} mp_slab_class_stats_t;

typedef struct {
    size_t pages_total;
    size_t pages_free;
    size_t pages_used;
    size_t run_pages;         /* pages in large allocations */
    size_t run_reqs;
    size_t failed;            /* all failed allocations */
    mp_slab_class_stats_t classes[MP_SLAB_NCLASSES];
} mp_slab_stats_t;

/*
 * Lays a pool over [addr, addr + size) (caller's storage, e.g. a part of a
 * zone) with every page free. Returns the pool (at addr), or NULL if the
 * area cannot hold one page.
 */
mp_slab_pool_t *mp_slab_init(void *addr, size_t size);

/*
 * Allocates size bytes (size 0 counts as 1). Blocks of a class are aligned
 * to their class size, runs to the page size. Returns NULL when the pool
 * is full (counted as a failure in the stats); the caller evicts and tries
 * again.
 */
void *mp_slab_alloc_locked(mp_slab_pool_t *pool, size_t size);

/*
 * Frees a block from mp_slab_alloc_locked(). A pointer that is not the
 * start of a live block is logged at alert and ignored.
 */
void mp_slab_free_locked(mp_slab_pool_t *pool, void *p);

/* How many bytes a request of size really takes (slot or whole pages). */
size_t mp_slab_block_size(size_t size);

/* Pages that an allocation of size would need: 0 for a class request. */
size_t mp_slab_run_pages(size_t size);

/* Free pages times the page size (ngx.shared.DICT:free_space()). */
size_t mp_slab_free_bytes_locked(const mp_slab_pool_t *pool);

/* Fills *st. */
void mp_slab_stats_locked(const mp_slab_pool_t *pool, mp_slab_stats_t *st);

/*
 * Validates the pool: page types, free-run coalescing and markers, bitmaps
 * against counters, partial lists. Returns MP_OK or MP_ERROR with *errmsg
 * naming the first broken invariant.
 */
int mp_slab_check_locked(const mp_slab_pool_t *pool, const char **errmsg);

/*
 * Crash recovery. mp_slab_reset_locked() forgets every allocation (request
 * and failure counters survive); the owner then calls mp_slab_mark_locked()
 * for each block it still references (same size as allocated), and
 * mp_slab_rebuild_locked() rebuilds free runs and partial lists from the
 * marks. mp_slab_mark_locked() returns MP_ERROR when the block is not a
 * valid block or overlaps one already marked.
 */
void mp_slab_reset_locked(mp_slab_pool_t *pool);
int mp_slab_mark_locked(mp_slab_pool_t *pool, void *p, size_t size);
void mp_slab_rebuild_locked(mp_slab_pool_t *pool);

#endif /* MP_SLAB_H */
