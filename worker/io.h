/*
 * io.h: the one place where worker/http.c reads from and writes to a
 * client socket.
 *
 * A plain connection costs what read(2) and writev(2) cost: the functions
 * are inline and test one bit of the connection (c->io_slow) before the
 * system call. The bit is set for a TLS connection (worker/tls.c) and, when
 * the fault-injection test mode is on, for every connection
 * (mp_io_conn_open()); mp_io_read_slow() / mp_io_writev_slow() then apply
 * the faults. (The TLS handshake and TLS records go through OpenSSL's
 * socket BIO, which the fault mode does not wrap.)
 *
 * Results are those of read(2) and writev(2): a count, 0 at the end of the
 * stream (reads), or -1 with errno EAGAIN when the call would block, EINTR,
 * or another errno (EPROTO for a TLS error). Callers retry after EAGAIN
 * with the same bytes at the same position of the iovecs (TLS needs that;
 * appending more is fine).
 *
 * Fault injection (a test mode, issue 7). The environment variable
 * MOONPOOL_FAULTS, read once per worker (on its first connection or
 * cosocket call), turns it on; it is deliberately not a config key, so no
 * production config can enable it. Its value is a comma-separated list:
 *
 *     short      reads and writes return short counts, down to 1 byte
 *     eagain     reads and writes fail with EAGAIN at random points
 *     seed=N     seed of the generator (default 1); worker k uses N + k,
 *                so a failing run can be replayed
 *     rate=P     percentage of calls that get a fault (default 30)
 *
 * e.g. MOONPOOL_FAULTS="short,eagain,seed=42". An empty or unset variable
 * leaves the server untouched. The worker logs the mode at notice.
 */
#ifndef MP_IO_H
#define MP_IO_H

#include "core/mp_core.h"
#include "worker/http.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* Prepares c for I/O when it opens (before any handshake). */
void mp_io_conn_open(mp_conn_t *c);

/* The paths behind io_slow: TLS and fault injection. */
ssize_t mp_io_read_slow(mp_conn_t *c, char *buf, size_t n);
ssize_t mp_io_writev_slow(mp_conn_t *c, const struct iovec *iov, int cnt);
int mp_io_pending_slow(const mp_conn_t *c);


/* Reads up to n bytes into buf; see the file comment for the results. */
static inline ssize_t
mp_io_read(mp_conn_t *c, char *buf, size_t n)
{
    if (mp_likely(!c->io_slow)) {
        return read(c->fd, buf, n);
    }
    return mp_io_read_slow(c, buf, n);
}


/* Writes the cnt buffers of iov, in order; returns how much was taken. */
static inline ssize_t
mp_io_writev(mp_conn_t *c, const struct iovec *iov, int cnt)
{
    if (mp_likely(!c->io_slow)) {
        return writev(c->fd, iov, cnt);
    }
    return mp_io_writev_slow(c, iov, cnt);
}


/*
 * True when a read must be retried before waiting for the next readiness
 * event: the layer holds a result the socket will not signal again (TLS
 * data read ahead of an end of stream), or a fault shortened the read just
 * done. Valid right after a read of c. Always 0 for a plain socket.
 */
static inline int
mp_io_pending(const mp_conn_t *c)
{
    return c->io_slow && mp_io_pending_slow(c);
}


/* ---- fault injection for other sockets (cosockets) ---------------------- */

/*
 * Nonzero once the fault mode is on in this worker; call mp_io_faults_init()
 * first (it is cheap and idempotent). Test it before the system call so the
 * normal path stays one branch:
 *
 *     r = mp_io_faults ? mp_io_fault_recv(fd, p, n, 0) : recv(fd, p, n, 0);
 */
extern int mp_io_faults;

/* Reads MOONPOOL_FAULTS the first time it is called; later calls return. */
void mp_io_faults_init(void);

/*
 * recv(2) and send(2) with faults: short counts and EAGAIN, with the same
 * results and errno as the system calls. A fake EAGAIN brings no edge
 * from epoll, so an edge-triggered caller must retry by itself
 * (worker/cosocket.c arms a 1 us timer when faults are on).
 */
ssize_t mp_io_fault_recv(int fd, void *buf, size_t n, int flags);
ssize_t mp_io_fault_send(int fd, const void *buf, size_t n, int flags);

#endif /* MP_IO_H */
