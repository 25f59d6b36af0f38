/*
 * test_slab.c: shm/slab.c, through slab.h, on a heap area (the allocator
 * does not care whether its memory is shared).
 */
#include "core/mp_core.h"
#include "shm/slab.h"
#include "runner.h"

#include <stdio.h>

#define AREA_SIZE (1024 * 1024)

static void *area;


static mp_slab_pool_t *
new_pool(size_t size)
{
    free(area);
    if (posix_memalign(&area, 4096, size) != 0) {
        abort();
    }
    return mp_slab_init(area, size);
}


static void
assert_consistent(mp_slab_pool_t *pool)
{
    const char *err = NULL;
    int rc = mp_slab_check_locked(pool, &err);

    if (rc != MP_OK) {
        fprintf(stderr, "slab check: %s\n", err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, MP_OK);
}


static void
test_slab_every_size_class(void)
{
    mp_slab_pool_t *pool = new_pool(AREA_SIZE);
    size_t size, bs;
    void *p[64];
    int i;

    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    for (size = 1; size <= 3 * MP_SLAB_PAGE_SIZE; size = size * 2 + 1) {
        bs = mp_slab_block_size(size);
        CU_ASSERT(bs >= size);
        for (i = 0; i < 64; i++) {
            p[i] = mp_slab_alloc_locked(pool, size);
            CU_ASSERT_PTR_NOT_NULL_FATAL(p[i]);
            CU_ASSERT_EQUAL((uintptr_t) p[i] % mp_min(bs, 4096), 0);
            memset(p[i], i, size);
        }
        assert_consistent(pool);
        for (i = 0; i < 64; i++) {
            CU_ASSERT_EQUAL(((unsigned char *) p[i])[size - 1], i);
            mp_slab_free_locked(pool, p[i]);
        }
        assert_consistent(pool);
        CU_ASSERT_EQUAL(pool->free_pages, pool->npages);
    }
}


static void
test_slab_exhaustion_and_stats(void)
{
    mp_slab_pool_t *pool = new_pool(64 * 4096);
    mp_slab_stats_t st;
    void **v = calloc(70000, sizeof(void *));
    size_t n = 0, i;

    while (n < 70000 && (v[n] = mp_slab_alloc_locked(pool, 60)) != NULL) {
        n++;
    }
    CU_ASSERT_EQUAL(n, (size_t) pool->npages * (4096 / 64));
    CU_ASSERT_EQUAL(mp_slab_free_bytes_locked(pool), 0);
    CU_ASSERT_PTR_NULL(mp_slab_alloc_locked(pool, 5000));
    mp_slab_stats_locked(pool, &st);
    CU_ASSERT_EQUAL(st.pages_free, 0);
    CU_ASSERT_EQUAL(st.classes[2].size, 64);
    CU_ASSERT_EQUAL(st.classes[2].used, n);
    CU_ASSERT_EQUAL(st.classes[2].pages, pool->npages);
    CU_ASSERT_EQUAL(st.failed, 2);
    assert_consistent(pool);
    for (i = 0; i < n; i++) {
        mp_slab_free_locked(pool, v[i]);
    }
    mp_slab_stats_locked(pool, &st);
    CU_ASSERT_EQUAL(st.pages_free, st.pages_total);
    CU_ASSERT_EQUAL(st.classes[2].used, 0);
    assert_consistent(pool);
    free(v);
}


static void
test_slab_reuse_after_free(void)
{
    mp_slab_pool_t *pool = new_pool(AREA_SIZE);
    void *a, *b, *c;

    a = mp_slab_alloc_locked(pool, 100);
    mp_slab_free_locked(pool, a);
    b = mp_slab_alloc_locked(pool, 100);
    CU_ASSERT_PTR_EQUAL(a, b);
    /* the emptied page is reused by another class */
    mp_slab_free_locked(pool, b);
    c = mp_slab_alloc_locked(pool, 1000);
    CU_ASSERT_EQUAL((uintptr_t) c & ~(uintptr_t) 4095,
                    (uintptr_t) a & ~(uintptr_t) 4095);
    mp_slab_free_locked(pool, c);
    a = mp_slab_alloc_locked(pool, 10000);
    mp_slab_free_locked(pool, a);
    b = mp_slab_alloc_locked(pool, 10000);
    CU_ASSERT_PTR_EQUAL(a, b);
    mp_slab_free_locked(pool, b);
    assert_consistent(pool);
}


/*
 * Small blocks fill every page; once they are freed (in any order), the
 * pages coalesce back so that a block as large as the whole pool fits.
 */
static void
test_slab_fragmentation_small_then_large(void)
{
    mp_slab_pool_t *pool = new_pool(256 * 4096);
    void **v = calloc(300000, sizeof(void *));
    size_t n = 0, i, j;
    void *big, *tmp;

    srand(7);
    while (n < 300000 && (v[n] = mp_slab_alloc_locked(pool, 24)) != NULL) {
        n++;
    }
    CU_ASSERT_PTR_NULL(mp_slab_alloc_locked(pool, 64 * 1024));
    for (i = n - 1; i > 0; i--) {
        j = (size_t) rand() % (i + 1);
        tmp = v[i];
        v[i] = v[j];
        v[j] = tmp;
    }
    /* Freeing half at random frees almost no page ... */
    for (i = 0; i < n / 2; i++) {
        mp_slab_free_locked(pool, v[i]);
    }
    assert_consistent(pool);
    /* ... and all of them gives back one run of every page. */
    for (i = n / 2; i < n; i++) {
        mp_slab_free_locked(pool, v[i]);
    }
    assert_consistent(pool);
    big = mp_slab_alloc_locked(pool, (size_t) pool->npages * 4096);
    CU_ASSERT_PTR_NOT_NULL(big);
    mp_slab_free_locked(pool, big);
    assert_consistent(pool);
    free(v);
}


typedef struct {
    unsigned char *p;
    size_t size;
    unsigned char fill;
} block_t;


static size_t
random_size(void)
{
    switch (rand() % 4) {
    case 0:
        return (size_t) (rand() % 64) + 1;
    case 1:
        return (size_t) (rand() % 2048) + 1;
    case 2:
        return (size_t) (rand() % 16384) + 1;
    default:
        return (size_t) (rand() % 300) + 1;
    }
}


static int
block_intact(const block_t *b)
{
    size_t i;

    for (i = 0; i < b->size; i++) {
        if (b->p[i] != b->fill) {
            return 0;
        }
    }
    return 1;
}


/*
 * Random allocs and frees against a model: every live block keeps its
 * fill pattern (no overlap), used slots match the model, and the pool is
 * consistent throughout; then a crash-style rebuild from the model gives
 * back the same pool.
 */
static void
test_slab_random_against_model(void)
{
    mp_slab_pool_t *pool = new_pool(AREA_SIZE);
    block_t *live = calloc(20000, sizeof(block_t));
    size_t nlive = 0, i, k, used_model[MP_SLAB_NCLASSES];
    mp_slab_stats_t before, after;
    int step, corrupt = 0;

    srand(12345);
    for (step = 0; step < 200000; step++) {
        if (nlive > 0 && (rand() % 100 < 45 || nlive == 20000)) {
            k = (size_t) rand() % nlive;
            corrupt += !block_intact(&live[k]);
            mp_slab_free_locked(pool, live[k].p);
            live[k] = live[--nlive];
        } else {
            block_t b = { NULL, random_size(), (unsigned char) rand() };

            b.p = mp_slab_alloc_locked(pool, b.size);
            if (b.p != NULL) {
                memset(b.p, b.fill, b.size);
                live[nlive++] = b;
            }
        }
        if (step % 20000 == 0) {
            assert_consistent(pool);
        }
    }
    CU_ASSERT_EQUAL(corrupt, 0);
    memset(used_model, 0, sizeof(used_model));
    for (i = 0; i < nlive; i++) {
        if (live[i].size <= MP_SLAB_MAX_CLASS_SIZE) {
            size_t bs = mp_slab_block_size(live[i].size);

            used_model[__builtin_ctzll(bs) - MP_SLAB_MIN_SHIFT]++;
        }
    }
    mp_slab_stats_locked(pool, &before);
    for (i = 0; i < MP_SLAB_NCLASSES; i++) {
        CU_ASSERT_EQUAL(before.classes[i].used, used_model[i]);
    }

    mp_slab_reset_locked(pool);
    for (i = 0; i < nlive; i++) {
        CU_ASSERT_EQUAL(mp_slab_mark_locked(pool, live[i].p, live[i].size),
                        MP_OK);
    }
    CU_ASSERT_EQUAL(mp_slab_mark_locked(pool, live[0].p, live[0].size),
                    MP_ERROR);
    mp_slab_rebuild_locked(pool);
    assert_consistent(pool);
    mp_slab_stats_locked(pool, &after);
    CU_ASSERT_EQUAL(after.pages_free, before.pages_free);
    CU_ASSERT_EQUAL(after.run_pages, before.run_pages);
    for (i = 0; i < MP_SLAB_NCLASSES; i++) {
        CU_ASSERT_EQUAL(after.classes[i].used, before.classes[i].used);
        CU_ASSERT_EQUAL(after.classes[i].pages, before.classes[i].pages);
    }
    for (i = 0; i < nlive; i++) {
        mp_slab_free_locked(pool, live[i].p);
    }
    assert_consistent(pool);
    CU_ASSERT_EQUAL(pool->free_pages, pool->npages);
    free(live);
}


static void
test_slab_too_small_area(void)
{
    char buf[4096];

    CU_ASSERT_PTR_NULL(mp_slab_init(buf, sizeof(buf)));
}


/*
 * Issue 7, allocation failure: every size class and large runs fail with
 * NULL (never a crash or a corrupt pool) once the pool is full, each
 * failure is counted in its class, and freeing any block makes its size
 * allocatable again.
 */
static void
test_slab_failure_paths_every_size(void)
{
    static const size_t sizes[] = { 1, 8, 60, 200, 1000, 2048, 4096, 9000 };
    mp_slab_pool_t *pool = new_pool(32 * 4096);
    mp_slab_stats_t st;
    void **v = calloc(40000, sizeof(void *));
    size_t n = 0, i, k, fails_before;
    void *p;

    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    /* fill with a mix of sizes until nothing of any size fits */
    for (k = 0; k < mp_nelems(sizes); k++) {
        while (n < 40000
               && (v[n] = mp_slab_alloc_locked(pool, sizes[k])) != NULL) {
            n++;
        }
    }
    CU_ASSERT_FATAL(n < 40000);
    assert_consistent(pool);
    mp_slab_stats_locked(pool, &st);
    fails_before = st.failed;
    for (k = 0; k < mp_nelems(sizes); k++) {
        CU_ASSERT_PTR_NULL(mp_slab_alloc_locked(pool, sizes[k]));
    }
    /* absurd sizes fail the same way */
    CU_ASSERT_PTR_NULL(mp_slab_alloc_locked(pool, 64 * 4096));
    CU_ASSERT_PTR_NULL(mp_slab_alloc_locked(pool, SIZE_MAX / 2));
    mp_slab_stats_locked(pool, &st);
    CU_ASSERT_EQUAL(st.failed, fails_before + mp_nelems(sizes) + 2);
    assert_consistent(pool);

    /* free every other block: each size fits again, in the freed space */
    for (i = 0; i < n; i += 2) {
        mp_slab_free_locked(pool, v[i]);
        v[i] = NULL;
    }
    assert_consistent(pool);
    p = mp_slab_alloc_locked(pool, sizes[0]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    mp_slab_free_locked(pool, p);
    for (i = 1; i < n; i += 2) {
        mp_slab_free_locked(pool, v[i]);
    }
    mp_slab_stats_locked(pool, &st);
    CU_ASSERT_EQUAL(st.pages_free, st.pages_total);
    /* the freed pages coalesced: a run of half the pool fits */
    p = mp_slab_alloc_locked(pool, st.pages_total / 2 * 4096);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    mp_slab_free_locked(pool, p);
    assert_consistent(pool);
    free(v);
}


void
mp_test_register(void)
{
    static const mp_test_t tests[] = {
        MP_TEST(test_slab_every_size_class),
        MP_TEST(test_slab_exhaustion_and_stats),
        MP_TEST(test_slab_reuse_after_free),
        MP_TEST(test_slab_fragmentation_small_then_large),
        MP_TEST(test_slab_random_against_model),
        MP_TEST(test_slab_too_small_area),
        MP_TEST(test_slab_failure_paths_every_size),
        MP_TEST_END,
    };

    mp_test_suite("slab", tests);
}
