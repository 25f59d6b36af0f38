/*
 * io.h: the one place where worker/http.c reads from and writes to a
 * client socket.
 *
 * A plain connection costs what read(2) and writev(2) cost: the functions
 * are inline and test one bit of the connection (c->io_slow) before the
 * system call. The bit is set for a TLS connection (worker/tls.c) and is
 * where a test mode that shortens reads and writes and injects EAGAIN
 * belongs (issue 7): mp_io_conn_open() sets it for every connection when
 * such a mode is on, and mp_io_read_slow() / mp_io_writev_slow() are the
 * only functions to change. (The TLS handshake and TLS records go through
 * OpenSSL's socket BIO, which a fault mode would have to wrap as well.)
 *
 * Results are those of read(2) and writev(2): a count, 0 at the end of the
 * stream (reads), or -1 with errno EAGAIN when the call would block, EINTR,
 * or another errno (EPROTO for a TLS error). Callers retry after EAGAIN
 * with the same bytes at the same position of the iovecs (TLS needs that;
 * appending more is fine).
 */
#ifndef MP_IO_H
#define MP_IO_H

#include "core/mp_core.h"
#include "worker/http.h"

#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* Prepares c for I/O when it opens (before any handshake). */
void mp_io_conn_open(mp_conn_t *c);

/* The paths behind io_slow: TLS (and, later, fault injection). */
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
 * data read ahead of an end of stream). Always 0 for a plain socket.
 */
static inline int
mp_io_pending(const mp_conn_t *c)
{
    return c->io_slow && mp_io_pending_slow(c);
}

#endif /* MP_IO_H */
