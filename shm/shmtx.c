/*
 * shmtx.c: robust process-shared mutex (see shmtx.h). nginx's ngx_shmtx
 * frees a dead worker's lock from the master but leaves whatever it was
 * changing half done; here the kernel's robust-futex list releases the lock
 * the instant the holder dies and the next locker is told so (EOWNERDEAD),
 * which is the one moment the guarded structure can be repaired safely.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "shm/shmtx.h"

#include <errno.h>
#include <unistd.h>

static pid_t cached_pid;
static int atfork_done;


static void
on_fork_child(void)
{
    cached_pid = getpid();
}


pid_t
mp_shmtx_pid(void)
{
    if (mp_unlikely(cached_pid == 0)) {
        if (!atfork_done) {
            atfork_done = 1;
            pthread_atfork(NULL, NULL, on_fork_child);
        }
        cached_pid = getpid();
    }
    return cached_pid;
}


int
mp_shmtx_init(mp_shmtx_t *mtx)
{
    pthread_mutexattr_t attr;
    int err;

    (void) mp_shmtx_pid();
    err = pthread_mutexattr_init(&attr);
    if (err != 0) {
        mp_log_error(MP_LOG_ALERT, err, "pthread_mutexattr_init() failed");
        return MP_ERROR;
    }
    err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (err == 0) {
        err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    }
    if (err == 0) {
        err = pthread_mutex_init(&mtx->mutex, &attr);
    }
    pthread_mutexattr_destroy(&attr);
    if (err != 0) {
        mp_log_error(MP_LOG_ALERT, err, "robust shared mutex init failed");
        return MP_ERROR;
    }
    mtx->pid = 0;
    mtx->recoveries = 0;
    return MP_OK;
}


void
mp_shmtx_cleanup(mp_shmtx_t *mtx)
{
    pthread_mutex_destroy(&mtx->mutex);
}


/* The previous holder died with the lock: repair, then make it usable. */
static int
recover_owner_dead(mp_shmtx_t *mtx, mp_shmtx_recover_cb recover, void *data)
{
    pid_t dead = mtx->pid;
    int err;

    mtx->pid = mp_shmtx_pid();
    if (recover != NULL) {
        recover(data);
    }
    err = pthread_mutex_consistent(&mtx->mutex);
    if (err != 0) {
        mp_log_error(MP_LOG_ALERT, err, "pthread_mutex_consistent() failed");
        pthread_mutex_unlock(&mtx->mutex);
        return MP_ERROR;
    }
    mtx->recoveries++;
    mp_log_error(MP_LOG_ALERT, 0,
                 "process %d died holding a shared lock, recovered",
                 (int) dead);
    return MP_OK;
}


static int
after_lock(mp_shmtx_t *mtx, int err, mp_shmtx_recover_cb recover, void *data)
{
    if (mp_likely(err == 0)) {
        mtx->pid = mp_shmtx_pid();
        return MP_OK;
    }
    if (err == EOWNERDEAD) {
        return recover_owner_dead(mtx, recover, data);
    }
    if (err == EBUSY) {
        return MP_BUSY;
    }
    mp_log_error(MP_LOG_ALERT, err, "pthread_mutex_lock() failed");
    return MP_ERROR;
}


int
mp_shmtx_lock(mp_shmtx_t *mtx, mp_shmtx_recover_cb recover, void *data)
{
    return after_lock(mtx, pthread_mutex_lock(&mtx->mutex), recover, data);
}


int
mp_shmtx_trylock(mp_shmtx_t *mtx, mp_shmtx_recover_cb recover, void *data)
{
    return after_lock(mtx, pthread_mutex_trylock(&mtx->mutex), recover, data);
}


void
mp_shmtx_unlock(mp_shmtx_t *mtx)
{
    mtx->pid = 0;
    pthread_mutex_unlock(&mtx->mutex);
}


pid_t
mp_shmtx_holder(const mp_shmtx_t *mtx)
{
    return mtx->pid;
}
