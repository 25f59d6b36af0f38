/*
 * shmtx.h: the cross-process mutex that guards shared structures (a dict
 * shard). It is one 32-bit word in shared memory holding the holder's pid,
 * as nginx's ngx_shmtx: lock is a compare-and-swap 0 -> pid, unlock an
 * atomic exchange back to 0. The top bit says that someone may sleep on
 * the word (futex), so an unlock makes a system call only then.
 *
 * A locker that finds the lock taken spins briefly, then checks that the
 * holder is alive and sleeps on the futex with a timeout, checking again
 * after each timeout. When the holder is dead, the locker takes the lock
 * over with a compare-and-swap dead pid -> own pid, runs the caller's
 * recovery callback (which repairs or rolls back the half-done operation),
 * logs it at alert and proceeds. The master does the same on SIGCHLD with
 * mp_shmtx_force_recover() for the worker it reaped, so nobody waits for a
 * timeout in production.
 *
 * Pid reuse: the kernel cannot give a pid to a new process before the old
 * one is reaped, so a killed holder that is still a zombie counts as alive
 * (waiters keep waiting) and cannot be confused with anyone. The gap is
 * after reaping: if a pid were recycled before the dead holder's lock is
 * recovered, the lock would look held by the new, live process, and
 * waiters would sleep until it exits (and the new process itself, asking
 * for that lock, would find its own pid there and abort). In production
 * the master closes that gap: it reaps the dead worker and calls
 * mp_shmtx_force_recover() (mp_dict_recover_pid()) at once, before the pid
 * can be handed out again, which needs the whole pid space to wrap. A process outside that scheme (a test reaping its own
 * children) relies on the liveness check alone.
 *
 * Processes are single-threaded; the mutex is not recursive. The fast
 * paths are inline; everything slow lives in shmtx.c.
 */
#ifndef MP_SHMTX_H
#define MP_SHMTX_H

#include "core/mp_core.h"

/* Set in the lock word while a locker may sleep on it. */
#define MP_SHMTX_WAITERS 0x80000000u

/*
 * Called with the mutex held after its previous holder died; repairs the
 * structure the mutex guards. Must not take the same mutex.
 */
typedef void (*mp_shmtx_recover_cb)(void *data);

typedef struct {
    uint32_t lock;         /* holder pid | MP_SHMTX_WAITERS, 0 when free */
    uint32_t recoveries;   /* times a dead holder's lock was recovered */
} mp_shmtx_t;

/* Initialises a free mutex in shared memory (caller's storage); MP_OK. */
int mp_shmtx_init(mp_shmtx_t *mtx);

/* Destroys a mutex nobody holds (nothing to release; kept for symmetry). */
void mp_shmtx_cleanup(mp_shmtx_t *mtx);

/* Slow paths of the inline functions below (shmtx.c). */
pid_t mp_shmtx_pid_init(void);
int mp_shmtx_lock_wait(mp_shmtx_t *mtx, mp_shmtx_recover_cb recover,
    void *data);
int mp_shmtx_trylock_dead(mp_shmtx_t *mtx, mp_shmtx_recover_cb recover,
    void *data);
void mp_shmtx_wake(mp_shmtx_t *mtx);

/* The pid cache behind mp_shmtx_pid(); 0 until first used. */
extern pid_t mp_shmtx_cached_pid;


/*
 * This process's pid, cached (getpid() is a system call) and refreshed in
 * the child after fork().
 */
static inline pid_t
mp_shmtx_pid(void)
{
    if (mp_unlikely(mp_shmtx_cached_pid == 0)) {
        return mp_shmtx_pid_init();
    }
    return mp_shmtx_cached_pid;
}


/*
 * Takes the mutex, blocking. If the previous holder died, calls
 * recover(data) first (recover may be NULL). Returns MP_OK once held.
 */
static inline int
mp_shmtx_lock(mp_shmtx_t *mtx, mp_shmtx_recover_cb recover, void *data)
{
    uint32_t expected = 0;

    if (mp_likely(__atomic_compare_exchange_n(&mtx->lock, &expected,
                                              (uint32_t) mp_shmtx_pid(), 0,
                                              __ATOMIC_ACQUIRE,
                                              __ATOMIC_RELAXED)))
    {
        return MP_OK;
    }
    return mp_shmtx_lock_wait(mtx, recover, data);
}


/*
 * Like mp_shmtx_lock() but returns MP_BUSY instead of waiting. A dead
 * holder's lock is still recovered (one kill(pid, 0) when busy).
 */
static inline int
mp_shmtx_trylock(mp_shmtx_t *mtx, mp_shmtx_recover_cb recover, void *data)
{
    uint32_t expected = 0;

    if (__atomic_compare_exchange_n(&mtx->lock, &expected,
                                    (uint32_t) mp_shmtx_pid(), 0,
                                    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
    {
        return MP_OK;
    }
    return mp_shmtx_trylock_dead(mtx, recover, data);
}


/* Releases the mutex held by this process, waking one sleeper if any. */
static inline void
mp_shmtx_unlock(mp_shmtx_t *mtx)
{
    if (mp_unlikely(__atomic_exchange_n(&mtx->lock, 0, __ATOMIC_RELEASE)
                    & MP_SHMTX_WAITERS))
    {
        mp_shmtx_wake(mtx);
    }
}


/* The pid of the current holder, 0 if free. Advisory. */
static inline pid_t
mp_shmtx_holder(const mp_shmtx_t *mtx)
{
    return (pid_t) (__atomic_load_n(&mtx->lock, __ATOMIC_RELAXED)
                    & ~MP_SHMTX_WAITERS);
}


/*
 * Called by the master after reaping process dead: if dead holds the
 * mutex, takes it over, calls recover(data), logs at alert and unlocks.
 * Returns MP_OK when it recovered the lock, MP_DECLINED when dead did not
 * hold it. Also safe while other processes wait for or recover the lock.
 */
int mp_shmtx_force_recover(mp_shmtx_t *mtx, pid_t dead,
    mp_shmtx_recover_cb recover, void *data);

#endif /* MP_SHMTX_H */
