/*
 * control.h: the master's control plane. Two kinds of sockets:
 *
 * - a channel per worker: a socketpair made before fork; the master keeps
 *   one end, the worker the other (worker/channel.h). Commands to workers
 *   (the profiler) go down it, their results come back up.
 * - the control socket: a unix stream socket at PID_FILE.sock, mode 0600,
 *   that "moonpool status" and "moonpool profile" talk to. One command
 *   line per connection ("status\n", "profile SECONDS MODE\n"); the answer
 *   is a status line, "OK message" or "ERROR message", then a body, then
 *   the master closes the connection.
 *
 * Every socket is nonblocking and waited on in the master's one ppoll()
 * (master/process.c): a command never delays signal handling, and a
 * profile that lasts N seconds is a deadline, not a sleep.
 *
 * The master functions are for master/process.c only and are not
 * reentrant; the client functions are for the command line (main.c).
 */
#ifndef MP_CONTROL_H
#define MP_CONTROL_H

#include "core/mp_core.h"

#include <poll.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

/*
 * The control socket's path for a pid file: "PID_FILE.sock", malloc'ed
 * (the caller frees it).
 */
char *mp_control_path(const char *pid_file);

/* ---- master ------------------------------------------------------------ */

/*
 * Creates the control socket next to pid_file (replacing a stale one) and
 * listens on it. MP_OK, or MP_ERROR after logging why: the master then
 * runs without a control socket.
 */
int mp_control_open(const char *pid_file);

/*
 * Closes every control connection and channel; removes the socket file
 * unless another master (a binary upgrade) has replaced it since.
 */
void mp_control_close(void);

/*
 * Before forking a worker: a nonblocking, close-on-exec socketpair in
 * fds[0] (master end) and fds[1] (worker end). MP_OK, or MP_ERROR (logged;
 * the worker then runs without a channel, and fds are -1).
 */
int mp_control_channel_create(int fds[2]);

/* After fork, in the master: fd (the master end) belongs to worker pid. */
void mp_control_channel_add(pid_t pid, int fd);

/*
 * The worker pid was reaped: reads what it sent last, then closes its
 * channel. Unknown pids are ignored.
 */
void mp_control_channel_remove(pid_t pid);

/*
 * In a freshly forked worker: closes every fd of the master's control
 * plane (listener, connections, other workers' channels) without touching
 * the socket file.
 */
void mp_control_child(void);

/*
 * The master's wait. mp_control_pollset() returns an array of *n pollfds
 * (owned by this module, valid until the next call) whose first entry
 * watches first_fd for input and the others the control plane.
 * mp_control_timeout() stores the time until the nearest control deadline
 * in *ts and returns ts, or returns NULL when there is none: pass its
 * result to ppoll() as is.
 */
struct pollfd *mp_control_pollset(int first_fd, size_t *n);
const struct timespec *mp_control_timeout(struct timespec *ts);

/*
 * After the wait returned: serves every ready control socket and channel
 * of the array mp_control_pollset() returned (entry 0 is the caller's),
 * and acts on control deadlines that passed. Never blocks.
 */
void mp_control_dispatch(const struct pollfd *pfds, size_t n);

/* ---- command line ------------------------------------------------------- */

/*
 * Sends command (one line, without "\n") to the master listening at path
 * and waits up to timeout_ms for the whole answer. The status line's
 * message goes to msg; the body is written to out. Returns MP_OK for an
 * "OK" answer, MP_DECLINED for "ERROR" (msg says why), MP_ERROR when the
 * master could not be reached or the answer was cut short (msg says why,
 * with "is moonpool running?" when nothing listens at path).
 */
int mp_control_request(const char *path, const char *command, int timeout_ms,
                       FILE *out, char *msg, size_t msglen);

#endif /* MP_CONTROL_H */
