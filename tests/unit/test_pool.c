/*
 * test_pool.c: core/pool.c.
 */
#include "core/mp_core.h"
#include "core/pool.h"
#include "runner.h"

static int cleanup_order[4];
static int ncleanups;


static void
record_cleanup(void *data)
{
    cleanup_order[ncleanups++] = (int) (intptr_t) data;
}


static void
test_pool_alignment_and_growth(void)
{
    mp_pool_t *p = mp_pool_create(1024);
    int i;

    for (i = 0; i < 1000; i++) {
        char *m = mp_pool_alloc(p, (size_t) (i % 37) + 1);

        CU_ASSERT_EQUAL((uintptr_t) m % 16, 0);
        memset(m, 0xab, (size_t) (i % 37) + 1);
    }
    /* larger than a quarter block: its own allocation, still usable */
    memset(mp_pool_alloc(p, 100000), 1, 100000);
    CU_ASSERT(mp_pool_used(p) >= 100000);
    mp_pool_destroy(p);
}


static void
test_pool_reset_runs_cleanups_in_reverse(void)
{
    mp_pool_t *p = mp_pool_create(512);
    char *a, *b;

    ncleanups = 0;
    a = mp_pool_alloc(p, 16);
    mp_pool_cleanup_add(p, record_cleanup, (void *) 1);
    mp_pool_cleanup_add(p, record_cleanup, (void *) 2);
    mp_pool_reset(p);
    CU_ASSERT_EQUAL(ncleanups, 2);
    CU_ASSERT_EQUAL(cleanup_order[0], 2);
    CU_ASSERT_EQUAL(cleanup_order[1], 1);
    CU_ASSERT_EQUAL(mp_pool_used(p), 0);
    /* the first block is reused after a reset */
    b = mp_pool_alloc(p, 16);
    CU_ASSERT_PTR_EQUAL(a, b);
    mp_pool_destroy(p);
    CU_ASSERT_EQUAL(ncleanups, 2);
}


static void
test_pool_strndup(void)
{
    mp_pool_t *p = mp_pool_create(256);
    char *s = mp_pool_strndup(p, "hello world", 5);

    CU_ASSERT_STRING_EQUAL(s, "hello");
    mp_pool_destroy(p);
}


void
mp_test_register(void)
{
    static const mp_test_t tests[] = {
        MP_TEST(test_pool_alignment_and_growth),
        MP_TEST(test_pool_reset_runs_cleanups_in_reverse),
        MP_TEST(test_pool_strndup),
        MP_TEST_END,
    };

    mp_test_suite("pool", tests);
}
