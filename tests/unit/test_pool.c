/*
 * test_pool.c: core/pool.c.
 */
#include "core/mp_core.h"
#include "core/pool.h"
#include "runner.h"

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

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


/*
 * Issue 7, allocation failure. Heap exhaustion is fatal by design (STYLE
 * section 4: mp_alloc logs at alert and aborts; the master respawns the
 * worker), so no pool call returns NULL and callers have no OOM branch.
 * What can fail softly is tested here: allocations larger than a block,
 * and cleanups that allocate or register cleanups while the pool is being
 * released (they must run, and their memory must be freed too). The fatal
 * path itself is checked in a child: it must end by a signal or a non-zero
 * exit (ASan reports the oversized malloc itself), never return.
 */
static mp_pool_t *cleanup_pool;


static void
allocating_cleanup(void *data)
{
    char *m;

    cleanup_order[ncleanups++] = (int) (intptr_t) data;
    /* a small and a large allocation from the pool being released */
    m = mp_pool_alloc(cleanup_pool, 32);
    memset(m, 1, 32);
    m = mp_pool_alloc(cleanup_pool, 100000);
    memset(m, 2, 100000);
    if ((intptr_t) data == 1) {
        mp_pool_cleanup_add(cleanup_pool, record_cleanup, (void *) 3);
    }
}


static void
test_pool_large_and_cleanup_ordering(void)
{
    mp_pool_t *p = mp_pool_create(1024);
    char *big[8];
    int i;

    for (i = 0; i < 8; i++) {
        big[i] = mp_pool_alloc(p, (size_t) 1 << (12 + i));
        CU_ASSERT_PTR_NOT_NULL_FATAL(big[i]);
        CU_ASSERT_EQUAL((uintptr_t) big[i] % 16, 0);
        memset(big[i], i, (size_t) 1 << (12 + i));
    }
    for (i = 0; i < 8; i++) {
        CU_ASSERT_EQUAL(big[i][((size_t) 1 << (12 + i)) - 1], i);
    }
    cleanup_pool = p;
    ncleanups = 0;
    mp_pool_cleanup_add(p, allocating_cleanup, (void *) 1);
    mp_pool_cleanup_add(p, allocating_cleanup, (void *) 2);
    mp_pool_reset(p);
    /* reverse order, then the cleanup added during the release */
    CU_ASSERT_EQUAL(ncleanups, 3);
    CU_ASSERT_EQUAL(cleanup_order[0], 2);
    CU_ASSERT_EQUAL(cleanup_order[1], 1);
    CU_ASSERT_EQUAL(cleanup_order[2], 3);
    CU_ASSERT_EQUAL(mp_pool_used(p), 0);
    /* the pool is whole again after a reset with large blocks */
    CU_ASSERT_PTR_NOT_NULL(mp_pool_calloc(p, 200000));
    mp_pool_destroy(p);
    CU_ASSERT_EQUAL(ncleanups, 3);
}


static void
test_pool_heap_exhaustion_is_fatal(void)
{
    pid_t pid;
    int status;

    fflush(NULL);
    pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        mp_pool_t *p = mp_pool_create(1024);

        alarm(10);
        /* 64 TiB: no malloc grants it */
        (void) mp_pool_alloc(p, (size_t) 1 << 46);
        _exit(0); /* not reached: returning here is the failure */
    }
    CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFSIGNALED(status)
              || (WIFEXITED(status) && WEXITSTATUS(status) != 0));
    if (WIFSIGNALED(status)) {
        CU_ASSERT_EQUAL(WTERMSIG(status), SIGABRT);
    }
}


void
mp_test_register(void)
{
    static const mp_test_t tests[] = {
        MP_TEST(test_pool_alignment_and_growth),
        MP_TEST(test_pool_reset_runs_cleanups_in_reverse),
        MP_TEST(test_pool_strndup),
        MP_TEST(test_pool_large_and_cleanup_ordering),
        MP_TEST(test_pool_heap_exhaustion_is_fatal),
        MP_TEST_END,
    };

    mp_test_suite("pool", tests);
}
