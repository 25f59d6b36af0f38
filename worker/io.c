/*
 * io.c: the slow paths of worker/io.h. A connection reaches them only when
 * its io_slow bit is set: it speaks TLS, or (issue 7) a fault-injection
 * test mode is on. The plain path stays inline in io.h.
 */
#include "core/mp_core.h"
#include "worker/io.h"
#include "worker/tls.h"


void
mp_io_conn_open(mp_conn_t *c)
{
    c->tls = NULL;
    c->io_slow = 0;
}


ssize_t
mp_io_read_slow(mp_conn_t *c, char *buf, size_t n)
{
    if (c->tls != NULL) {
        return mp_tls_read(c, buf, n);
    }
    return read(c->fd, buf, n);
}


ssize_t
mp_io_writev_slow(mp_conn_t *c, const struct iovec *iov, int cnt)
{
    if (c->tls != NULL) {
        return mp_tls_writev(c, iov, cnt);
    }
    return writev(c->fd, iov, cnt);
}


int
mp_io_pending_slow(const mp_conn_t *c)
{
    return c->tls != NULL && mp_tls_read_pending(c);
}
