/*
 * heartbeat.c: the shared worker board (see heartbeat.h). The board is an
 * anonymous MAP_SHARED mapping: the master creates it before fork, so the
 * same pages are the slot of the worker and of the master. The stores a
 * worker makes are atomic word stores: the master may read a slot at any
 * time and must never see a torn stamp.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "worker/heartbeat.h"

#include <errno.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static mp_heartbeat_slot_t *own;
static int notify_fd = -1;


mp_msec_t
mp_heartbeat_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (mp_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


mp_heartbeat_slot_t *
mp_heartbeat_create(int n)
{
    size_t size = sizeof(mp_heartbeat_slot_t) * (size_t) mp_max(n, 1);
    void *p;

    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED) {
        mp_log_error(MP_LOG_ALERT, errno, "mmap(MAP_SHARED, %zu) failed for "
                     "the worker board", size);
        return NULL;
    }
    return p;
}


void
mp_heartbeat_destroy(mp_heartbeat_slot_t *board, int n)
{
    if (board != NULL
        && munmap(board, sizeof(mp_heartbeat_slot_t) * (size_t) mp_max(n, 1))
               == -1) {
        mp_log_error(MP_LOG_ALERT, errno, "munmap() of the worker board "
                     "failed");
    }
}


void
mp_heartbeat_reset(mp_heartbeat_slot_t *slot)
{
    if (slot == NULL) {
        return;
    }
    __atomic_store_n(&slot->ready, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->beat, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slot->pid, 0, __ATOMIC_RELEASE);
    slot->running[0] = '\0';
}


void
mp_heartbeat_attach(mp_heartbeat_slot_t *slot, int fd)
{
    own = slot;
    notify_fd = fd;
    if (own != NULL) {
        __atomic_store_n(&own->pid, getpid(), __ATOMIC_RELAXED);
        mp_heartbeat_beat();
    }
}


void
mp_heartbeat_beat(void)
{
    if (own != NULL) {
        __atomic_store_n(&own->beat, mp_heartbeat_now(), __ATOMIC_RELEASE);
    }
}


static void
notify_master(void)
{
    pid_t pid = getpid();
    ssize_t n;

    if (notify_fd == -1) {
        return;
    }
    /*
     * One write of a few bytes to a pipe is atomic (below PIPE_BUF), so
     * messages of several workers never interleave. The pipe is
     * nonblocking: if it were full (it holds thousands of messages), the
     * master is already awake and will see the flag in the slot anyway.
     */
    do {
        n = write(notify_fd, &pid, sizeof(pid));
    } while (n == -1 && errno == EINTR);
}


void
mp_heartbeat_ready(void)
{
    if (own != NULL) {
        mp_heartbeat_beat();
        __atomic_store_n(&own->ready, 1, __ATOMIC_RELEASE);
    }
    notify_master();
}


void
mp_heartbeat_draining(void)
{
    if (own != NULL) {
        __atomic_store_n(&own->ready, 0, __ATOMIC_RELEASE);
    }
    notify_master();
}


void
mp_heartbeat_running(const char *what)
{
    size_t n;

    if (own == NULL) {
        return;
    }
    if (what == NULL) {
        own->running[0] = '\0';
        return;
    }
    n = strlen(what);
    if (n >= sizeof(own->running)) {
        n = sizeof(own->running) - 1;
    }
    memcpy(own->running, what, n);
    own->running[n] = '\0';
}
