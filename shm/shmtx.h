/*
 * shmtx.h: the cross-process mutex that guards shared structures. It is a
 * process-shared, robust pthread mutex living inside a zone: when a process
 * dies holding it, the kernel hands it to the next locker with EOWNERDEAD.
 * That locker runs the caller's recovery callback (which repairs or rolls
 * back the half-done operation), marks the mutex consistent and logs the
 * event at alert; the lock then works as before. The holder's pid is
 * recorded so the master can tell which worker died holding a lock.
 *
 * Processes are single-threaded; the mutex is not recursive.
 */
#ifndef MP_SHMTX_H
#define MP_SHMTX_H

#include "core/mp_core.h"

#include <pthread.h>

/*
 * Called with the mutex held after its previous holder died; repairs the
 * structure the mutex guards. Must not take the same mutex.
 */
typedef void (*mp_shmtx_recover_cb)(void *data);

typedef struct {
    pthread_mutex_t mutex;
    volatile pid_t pid;    /* holder, 0 when free (advisory) */
    uint32_t recoveries;   /* times a dead holder's lock was recovered */
} mp_shmtx_t;

/*
 * Initialises a mutex in shared memory (storage owned by the caller).
 * Returns MP_OK, or MP_ERROR (logged) if the pthread calls fail.
 */
int mp_shmtx_init(mp_shmtx_t *mtx);

/* Destroys a mutex nobody holds. */
void mp_shmtx_cleanup(mp_shmtx_t *mtx);

/*
 * Takes the mutex, blocking. If the previous holder died, calls
 * recover(data) first (recover may be NULL). Returns MP_OK once held, or
 * MP_ERROR (logged) if the mutex is unusable (ENOTRECOVERABLE).
 */
int mp_shmtx_lock(mp_shmtx_t *mtx, mp_shmtx_recover_cb recover, void *data);

/* Like mp_shmtx_lock() but returns MP_BUSY instead of waiting. */
int mp_shmtx_trylock(mp_shmtx_t *mtx, mp_shmtx_recover_cb recover,
    void *data);

/* Releases the mutex held by this process. */
void mp_shmtx_unlock(mp_shmtx_t *mtx);

/* The pid recorded by the current holder, 0 if free. Advisory. */
pid_t mp_shmtx_holder(const mp_shmtx_t *mtx);

/*
 * This process's pid, cached (getpid() is a system call) and refreshed in
 * the child after fork().
 */
pid_t mp_shmtx_pid(void);

#endif /* MP_SHMTX_H */
