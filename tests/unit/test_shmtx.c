/*
 * test_shmtx.c: shm/shmtx.c across forked processes on a MAP_SHARED
 * anonymous mapping: an exact counter under contention, trylock, and the
 * three ways a dead holder's lock comes back (the next locker at once, a
 * sleeping waiter after its timeout, the master after reaping). Every test
 * is guarded by alarm() so that a deadlock fails the run instead of hanging.
 */
#include "core/mp_core.h"
#include "shm/shmtx.h"
#include "runner.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    mp_shmtx_t mtx;
    volatile uint64_t counter;   /* updated non-atomically under the lock */
    volatile int ready;
    volatile int recovered;
} shared_t;


static shared_t *
map_shared(void)
{
    shared_t *s = mmap(NULL, sizeof(shared_t), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (s == MAP_FAILED) {
        abort();
    }
    if (mp_shmtx_init(&s->mtx) != MP_OK) {
        abort();
    }
    return s;
}


static void
on_recover(void *data)
{
    shared_t *s = data;

    s->recovered++;
}


static void
test_shmtx_contention_counter_exact(void)
{
    enum { NPROC = 4, ITER = 200000 };
    shared_t *s = map_shared();
    pid_t pids[NPROC];
    int i, status, ok = 1;

    alarm(60);
    for (i = 0; i < NPROC; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            int k;

            for (k = 0; k < ITER; k++) {
                uint64_t v;

                if (mp_shmtx_lock(&s->mtx, on_recover, s) != MP_OK) {
                    _exit(2);
                }
                v = s->counter;
                if (k % 1000 == 0) {
                    sched_yield();
                }
                s->counter = v + 1;
                mp_shmtx_unlock(&s->mtx);
            }
            _exit(0);
        }
    }
    for (i = 0; i < NPROC; i++) {
        waitpid(pids[i], &status, 0);
        ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    alarm(0);
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(s->counter, (uint64_t) NPROC * ITER);
    CU_ASSERT_EQUAL(s->recovered, 0);
    CU_ASSERT_EQUAL(mp_shmtx_holder(&s->mtx), 0);
    munmap(s, sizeof(*s));
}


static void
test_shmtx_recovers_after_holder_sigkill(void)
{
    shared_t *s = map_shared();
    pid_t pid;
    int status, round;

    alarm(20);
    for (round = 0; round < 3; round++) {
        s->ready = 0;
        pid = fork();
        if (pid == 0) {
            mp_shmtx_lock(&s->mtx, on_recover, s);
            s->ready = 1;
            pause();
            _exit(0);
        }
        while (!s->ready) {
            usleep(100);
        }
        CU_ASSERT_EQUAL(mp_shmtx_holder(&s->mtx), pid);
        CU_ASSERT_EQUAL(mp_shmtx_trylock(&s->mtx, on_recover, s), MP_BUSY);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        CU_ASSERT(WIFSIGNALED(status));

        CU_ASSERT_EQUAL(mp_shmtx_lock(&s->mtx, on_recover, s), MP_OK);
        CU_ASSERT_EQUAL(s->recovered, round + 1);
        CU_ASSERT_EQUAL(mp_shmtx_holder(&s->mtx), getpid());
        mp_shmtx_unlock(&s->mtx);
    }
    /* After recovery the lock behaves normally. */
    CU_ASSERT_EQUAL(mp_shmtx_trylock(&s->mtx, NULL, NULL), MP_OK);
    mp_shmtx_unlock(&s->mtx);
    CU_ASSERT_EQUAL(s->mtx.recoveries, 3);
    alarm(0);
    munmap(s, sizeof(*s));
}


static void
test_shmtx_waiter_recovers_when_holder_dies(void)
{
    shared_t *s = map_shared();
    pid_t holder, waiter;
    int status;

    alarm(20);
    s->ready = 0;
    holder = fork();
    if (holder == 0) {
        mp_shmtx_lock(&s->mtx, on_recover, s);
        s->ready = 1;
        pause();
        _exit(0);
    }
    while (!s->ready) {
        usleep(100);
    }
    waiter = fork();
    if (waiter == 0) {
        /* Blocks until the holder dies, then recovers. */
        if (mp_shmtx_lock(&s->mtx, on_recover, s) != MP_OK) {
            _exit(2);
        }
        s->counter = 42;
        mp_shmtx_unlock(&s->mtx);
        _exit(s->recovered == 1 ? 0 : 3);
    }
    usleep(20000);   /* the waiter is asleep on the futex by now */
    kill(holder, SIGKILL);
    waitpid(holder, &status, 0);
    /* Nobody wakes it: it notices the death after its sleep times out. */
    waitpid(waiter, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT_EQUAL(s->counter, 42);
    alarm(0);
    munmap(s, sizeof(*s));
}


/* Forks a child that takes the lock and sleeps holding it. */
static pid_t
fork_holder(shared_t *s)
{
    pid_t pid;

    s->ready = 0;
    pid = fork();
    if (pid == 0) {
        mp_shmtx_lock(&s->mtx, on_recover, s);
        s->ready = 1;
        pause();
        _exit(0);
    }
    while (!s->ready) {
        usleep(100);
    }
    return pid;
}


static void
test_shmtx_trylock_busy_then_free(void)
{
    shared_t *s = map_shared();
    pid_t pid;
    int status;

    alarm(10);
    pid = fork();
    if (pid == 0) {
        mp_shmtx_lock(&s->mtx, NULL, NULL);
        s->ready = 1;
        while (s->counter == 0) {
            usleep(100);
        }
        mp_shmtx_unlock(&s->mtx);
        _exit(0);
    }
    while (!s->ready) {
        usleep(100);
    }
    CU_ASSERT_EQUAL(mp_shmtx_trylock(&s->mtx, on_recover, s), MP_BUSY);
    CU_ASSERT_EQUAL(mp_shmtx_trylock(&s->mtx, on_recover, s), MP_BUSY);
    CU_ASSERT_EQUAL(mp_shmtx_holder(&s->mtx), pid);
    s->counter = 1;
    waitpid(pid, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT_EQUAL(mp_shmtx_trylock(&s->mtx, on_recover, s), MP_OK);
    CU_ASSERT_EQUAL(mp_shmtx_trylock(&s->mtx, on_recover, s), MP_BUSY);
    mp_shmtx_unlock(&s->mtx);
    CU_ASSERT_EQUAL(s->recovered, 0);
    alarm(0);
    munmap(s, sizeof(*s));
}


/*
 * A killed holder that is not reaped yet is a zombie: its pid is still
 * taken (the kernel cannot hand it out again), so it counts as alive and
 * the lock stays busy. Once reaped, the next locker recovers.
 */
static void
test_shmtx_zombie_holder_is_not_recovered(void)
{
    shared_t *s = map_shared();
    pid_t pid;
    int status;

    alarm(10);
    pid = fork_holder(s);
    kill(pid, SIGKILL);
    usleep(20000);
    CU_ASSERT_EQUAL(mp_shmtx_trylock(&s->mtx, on_recover, s), MP_BUSY);
    CU_ASSERT_EQUAL(s->recovered, 0);
    waitpid(pid, &status, 0);
    CU_ASSERT_EQUAL(mp_shmtx_trylock(&s->mtx, on_recover, s), MP_OK);
    CU_ASSERT_EQUAL(s->recovered, 1);
    mp_shmtx_unlock(&s->mtx);
    alarm(0);
    munmap(s, sizeof(*s));
}


/*
 * The master's path: after reaping a worker it recovers the locks that
 * worker held. A process already asleep on the lock is woken by the
 * master's unlock and takes the lock without recovering it again.
 */
static void
test_shmtx_force_recover_by_master(void)
{
    shared_t *s = map_shared();
    pid_t holder, waiter, other;
    int status;

    alarm(10);
    holder = fork_holder(s);
    CU_ASSERT_EQUAL(mp_shmtx_force_recover(&s->mtx, holder + 1, on_recover, s),
                    MP_DECLINED);
    waiter = fork();
    if (waiter == 0) {
        if (mp_shmtx_lock(&s->mtx, on_recover, s) != MP_OK) {
            _exit(2);
        }
        s->counter = 7;
        mp_shmtx_unlock(&s->mtx);
        _exit(0);
    }
    usleep(20000);   /* the waiter is asleep on the futex by now */

    /* Kill and reap at once, before the waiter's 50 ms timeout. */
    kill(holder, SIGKILL);
    waitpid(holder, &status, 0);
    CU_ASSERT_EQUAL(mp_shmtx_force_recover(&s->mtx, holder, on_recover, s),
                    MP_OK);
    waitpid(waiter, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT_EQUAL(s->counter, 7);
    CU_ASSERT_EQUAL(s->recovered, 1);
    CU_ASSERT_EQUAL(s->mtx.recoveries, 1);
    CU_ASSERT_EQUAL(mp_shmtx_holder(&s->mtx), 0);

    /* Nothing left to recover: a second call and a live holder decline. */
    CU_ASSERT_EQUAL(mp_shmtx_force_recover(&s->mtx, holder, on_recover, s),
                    MP_DECLINED);
    other = fork_holder(s);
    CU_ASSERT_EQUAL(mp_shmtx_force_recover(&s->mtx, holder, on_recover, s),
                    MP_DECLINED);
    kill(other, SIGKILL);
    waitpid(other, &status, 0);
    CU_ASSERT_EQUAL(mp_shmtx_force_recover(&s->mtx, other, on_recover, s),
                    MP_OK);
    CU_ASSERT_EQUAL(s->recovered, 2);
    CU_ASSERT_EQUAL(mp_shmtx_trylock(&s->mtx, NULL, NULL), MP_OK);
    mp_shmtx_unlock(&s->mtx);
    alarm(0);
    munmap(s, sizeof(*s));
}


static void
test_shmtx_uncontended_cost(void)
{
    enum { N = 2000000 };
    shared_t *s = map_shared();
    struct timespec a, b;
    int i;

    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < N; i++) {
        mp_shmtx_lock(&s->mtx, NULL, NULL);
        s->counter++;
        mp_shmtx_unlock(&s->mtx);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("\n    lock+unlock: %.1f ns ",
           ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / N);
    CU_ASSERT_EQUAL(s->counter, N);
    munmap(s, sizeof(*s));
}


void
mp_test_register(void)
{
    static const mp_test_t tests[] = {
        MP_TEST(test_shmtx_contention_counter_exact),
        MP_TEST(test_shmtx_recovers_after_holder_sigkill),
        MP_TEST(test_shmtx_waiter_recovers_when_holder_dies),
        MP_TEST(test_shmtx_trylock_busy_then_free),
        MP_TEST(test_shmtx_zombie_holder_is_not_recovered),
        MP_TEST(test_shmtx_force_recover_by_master),
        MP_TEST(test_shmtx_uncontended_cost),
        MP_TEST_END,
    };

    mp_test_suite("shmtx", tests);
}
