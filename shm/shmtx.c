/*
 * shmtx.c: the slow paths of the pid-stamped futex lock (see shmtx.h).
 *
 * Why not a robust pthread mutex: it costs 24-35 ns per uncontended
 * lock/unlock pair (the robust list is updated around every operation),
 * which was 40% of a dict get. A compare-and-swap plus an exchange costs a
 * third of that. What the robust mutex gave for free, noticing a dead
 * holder, is done here by checking the pid stamped in the lock word, the
 * way nginx's ngx_shmtx does; unlike nginx, whoever takes over the lock
 * also repairs what the dead holder left half done (the callback).
 *
 * Lock word states: 0 (free), pid (held, nobody sleeps), pid | WAITERS
 * (held, someone may sleep on the futex). A locker that has slept takes the
 * lock with WAITERS set, because it cannot know whether others still sleep;
 * at worst its unlock makes one futex wake that finds nobody.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "shm/shmtx.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define W MP_SHMTX_WAITERS

/*
 * Checks of the lock word before sleeping. A dict operation holds the lock
 * for well under a microsecond, so on another CPU the holder is usually
 * done within a few dozen pauses; a longer spin only burns the CPU the
 * holder may need when there are more processes than cores.
 */
#define SPIN_CHECKS 100

/*
 * How long a waiter sleeps before it checks again that the holder lives.
 * A dead holder is normally recovered at once (by the master, or by the
 * check made before the first sleep); this bounds the wait when nobody
 * noticed, and costs a wake-up every 50 ms only to a process that waits
 * that long, which a healthy lock never makes it do.
 */
#define WAIT_MS 50

pid_t mp_shmtx_cached_pid;
static int atfork_done;


static void
on_fork_child(void)
{
    mp_shmtx_cached_pid = getpid();
}


pid_t
mp_shmtx_pid_init(void)
{
    if (!atfork_done) {
        atfork_done = 1;
        pthread_atfork(NULL, NULL, on_fork_child);
    }
    mp_shmtx_cached_pid = getpid();
    return mp_shmtx_cached_pid;
}


int
mp_shmtx_init(mp_shmtx_t *mtx)
{
    (void) mp_shmtx_pid();
    mtx->lock = 0;
    mtx->recoveries = 0;
    return MP_OK;
}


void
mp_shmtx_cleanup(mp_shmtx_t *mtx)
{
    (void) mtx;
}


static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}


static inline int
cas(mp_shmtx_t *mtx, uint32_t old, uint32_t val)
{
    return __atomic_compare_exchange_n(&mtx->lock, &old, val, 0,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}


/*
 * ESRCH means no such process. A zombie still exists (the pid stays taken
 * until it is reaped, so it cannot be reused meanwhile) and EPERM means a
 * live process of another user: both count as alive.
 */
static int
holder_dead(pid_t pid)
{
    return pid > 0 && kill(pid, 0) == -1 && errno == ESRCH;
}


/*
 * Replaces the dead holder's pid in the word seen (v) by ours, keeping the
 * waiters bit, and repairs. Fails when the word changed meanwhile: another
 * process took the lock over first, or the master recovered it.
 */
static int
take_over(mp_shmtx_t *mtx, uint32_t v, mp_shmtx_recover_cb recover,
    void *data, const char *who)
{
    if (!cas(mtx, v, (uint32_t) mp_shmtx_pid() | (v & W))) {
        return MP_DECLINED;
    }
    if (recover != NULL) {
        recover(data);
    }
    mtx->recoveries++;
    mp_log_error(MP_LOG_ALERT, 0,
                 "process %d died holding a shared lock, recovered by %s",
                 (int) (v & ~W), who);
    return MP_OK;
}


/* Sleeps while the word equals v, at most WAIT_MS; 1 on timeout. */
static int
futex_wait(mp_shmtx_t *mtx, uint32_t v)
{
    struct timespec ts = { 0, WAIT_MS * 1000000L };

    if (syscall(SYS_futex, &mtx->lock, FUTEX_WAIT, v, &ts, NULL, 0) == -1) {
        /* EAGAIN: the word changed before we slept; EINTR: a signal. */
        return errno == ETIMEDOUT;
    }
    return 0;
}


void
mp_shmtx_wake(mp_shmtx_t *mtx)
{
    /* Not FUTEX_PRIVATE: the word is shared between processes. */
    syscall(SYS_futex, &mtx->lock, FUTEX_WAKE, 1, NULL, NULL, 0);
}


int
mp_shmtx_lock_wait(mp_shmtx_t *mtx, mp_shmtx_recover_cb recover, void *data)
{
    uint32_t me = (uint32_t) mp_shmtx_pid(), v;
    int i, check = 1;

    for (i = 0; i < SPIN_CHECKS; i++) {
        cpu_relax();
        v = __atomic_load_n(&mtx->lock, __ATOMIC_RELAXED);
        if (v == 0 && cas(mtx, 0, me)) {
            return MP_OK;
        }
    }

    for (;;) {
        v = __atomic_load_n(&mtx->lock, __ATOMIC_RELAXED);
        if (v == 0) {
            if (cas(mtx, 0, me | W)) {
                return MP_OK;
            }
            continue;
        }
        if (mp_unlikely((v & ~W) == me)) {
            /*
             * Locking twice would wait forever. It is a bug, or a dead
             * holder whose pid this process inherited unrecovered (see
             * shmtx.h); either way dying is safe: the master reaps us and
             * recovers the lock.
             */
            mp_log_error(MP_LOG_ALERT, 0,
                         "shared lock already held by this process (%d)",
                         (int) me);
            abort();
        }

        /*
         * One kill(pid, 0) before the first sleep, and after each timeout:
         * a dead holder is recovered at once by the first process that has
         * to wait for it, not 50 ms later.
         */
        if (check) {
            check = 0;
            if (holder_dead((pid_t) (v & ~W))) {
                if (take_over(mtx, v, recover, data, "a waiter") == MP_OK) {
                    return MP_OK;
                }
                continue;
            }
        }
        if (!(v & W)) {
            if (!cas(mtx, v, v | W)) {
                continue;
            }
            v |= W;
        }
        check = futex_wait(mtx, v);
    }
}


int
mp_shmtx_trylock_dead(mp_shmtx_t *mtx, mp_shmtx_recover_cb recover,
    void *data)
{
    uint32_t v = __atomic_load_n(&mtx->lock, __ATOMIC_RELAXED);

    if (v != 0 && holder_dead((pid_t) (v & ~W))
        && take_over(mtx, v, recover, data, "a waiter") == MP_OK)
    {
        return MP_OK;
    }
    return MP_BUSY;
}


int
mp_shmtx_force_recover(mp_shmtx_t *mtx, pid_t dead,
    mp_shmtx_recover_cb recover, void *data)
{
    uint32_t v;

    if (dead <= 0) {
        return MP_DECLINED;
    }
    do {
        v = __atomic_load_n(&mtx->lock, __ATOMIC_RELAXED);
        if ((v & ~W) != (uint32_t) dead) {
            return MP_DECLINED;
        }
    } while (take_over(mtx, v, recover, data, "the master") != MP_OK);
    mp_shmtx_unlock(mtx);
    return MP_OK;
}
