/*
 * heartbeat.h: a board in shared memory where each worker says that it is
 * alive, whether it accepts connections yet, and what it is running.
 *
 * The master maps one board per generation before forking it (one slot per
 * worker) and owns it; a worker attaches to its slot right after fork. The
 * worker loop stamps the slot from a periodic timer, so a worker stuck in a
 * handler (a Lua loop that never yields) stops stamping, and the master's
 * watchdog sees it. A worker also writes its pid to the master's notify
 * pipe once it accepts, and again once a graceful stop closed its
 * listening sockets: that is how the master learns that a generation
 * serves, and that an old one took its last connection (reload, sd_notify
 * READY=1), without polling.
 *
 * Slots are written by one worker and read by the master; every field is
 * a word stored and loaded atomically, except running[], which the master
 * reads only for a worker it has decided to kill.
 */
#ifndef MP_HEARTBEAT_H
#define MP_HEARTBEAT_H

#include "core/mp_core.h"

#include <sys/types.h>

#define MP_HEARTBEAT_RUNNING_LEN 96

typedef struct {
    pid_t pid;              /* the worker stamping this slot, 0: none yet */
    int ready;              /* 1 once the worker accepts connections */
    mp_msec_t beat;         /* monotonic msec of the last stamp */
    char running[MP_HEARTBEAT_RUNNING_LEN]; /* "content /api/", or "" */
} mp_heartbeat_slot_t;

/*
 * Master: maps a board of n zeroed slots shared with the processes forked
 * afterwards. Returns NULL after logging at alert when mmap() fails.
 */
mp_heartbeat_slot_t *mp_heartbeat_create(int n);

/* Master: unmaps a board from mp_heartbeat_create(); NULL is ignored. */
void mp_heartbeat_destroy(mp_heartbeat_slot_t *board, int n);

/*
 * Master, before forking the worker of a slot: clears the slot so that a
 * respawned worker starts not ready, with no stale stamp.
 */
void mp_heartbeat_reset(mp_heartbeat_slot_t *slot);

/*
 * Worker, right after fork: takes slot (may be NULL: no board) and the
 * write end of the master's notify pipe (-1: none), and stamps the slot.
 */
void mp_heartbeat_attach(mp_heartbeat_slot_t *slot, int notify_fd);

/* Worker: stamps the slot with the current monotonic time. */
void mp_heartbeat_beat(void);

/*
 * Worker: the loop accepts now; marks the slot ready and writes this pid
 * to the notify pipe (never blocks; the master drains the pipe).
 */
void mp_heartbeat_ready(void);

/*
 * Worker: a graceful stop closed the listening sockets; tells the master
 * the same way (pid on the notify pipe), so that a reload is reported
 * done only once no old worker can take a new connection.
 */
void mp_heartbeat_draining(void);

/*
 * Worker: records what the worker is about to run, e.g. the phase and
 * location of a handler ("content /api/"), truncated to fit; NULL clears
 * it. Cheap enough to call before every handler: a bounded copy into the
 * slot, no syscall. The watchdog names it when it kills a stuck worker.
 */
void mp_heartbeat_running(const char *what);

/* Monotonic clock in msec, the clock of every stamp (master and worker). */
mp_msec_t mp_heartbeat_now(void);

#endif /* MP_HEARTBEAT_H */
