/*
 * io.c: the slow paths of worker/io.h. A connection reaches them only when
 * its io_slow bit is set: it speaks TLS, or the fault-injection test mode
 * (MOONPOOL_FAULTS, described in io.h) is on. The plain path stays inline
 * in io.h, so with the mode off nothing here runs for a plain connection.
 *
 * Faults and the edge-triggered read event. http.c reads with EV_ET: after
 * a short read it sets read_ready only when the read filled the room (or
 * mp_io_pending() says so), and after EAGAIN it waits for the next edge.
 * A fault must not break either rule, or a connection whose bytes already
 * sit in the kernel would wait for an edge that never comes:
 *
 *  - a read we shortened, that got every byte it asked for, reports
 *    pending, so http.c reads again instead of waiting (short_conn);
 *  - a fake EAGAIN on a read schedules a retry: a timer of one microsecond
 *    (so the loop polls once, as after a real EAGAIN) that activates the
 *    connection's read event, standing in for the edge the socket will not
 *    send. The retry only activates an event that is added: http.c adds
 *    ev_read after its first direct read (conn open, handshake), and
 *    activating an event before that would make arm_read() see it as
 *    pending and never add it. A retry for a closed connection (fd < 0,
 *    event deleted) does nothing; one for a reused connection is a
 *    spurious read, which a non-blocking reader must handle anyway.
 *
 * Writes need the same retry. ev_write is registered level-triggered, but
 * libevent keeps one epoll registration per fd and takes EPOLLET from the
 * event added last: once ev_read is (re-)added, the write interest is
 * edge-triggered too, and a writable socket sends no second edge after a
 * fake EAGAIN (found by this mode: a 414 hung half written). The retry
 * activates ev_write once http.c has added it. TLS writes are never shortened, only delayed: after SSL_write wants to
 * write, OpenSSL requires the retry to pass at least the same length.
 *
 * The generator is splitmix64, seeded from seed=N plus the worker number:
 * one stream per worker, the same on every run.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "worker/io.h"
#include "worker/loop.h"
#include "worker/tls.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>

#define FAULT_IOV_MAX 16

int mp_io_faults;

static int faults_checked;
static int fault_short;
static int fault_eagain;
static unsigned fault_rate = 30;
static uint64_t fault_state;

/* the connection whose last read was shortened and filled (io.h pending) */
static const mp_conn_t *short_conn;


static uint64_t
next_random(void)
{
    uint64_t z = (fault_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}


static int
roll(void)
{
    return next_random() % 100 < fault_rate;
}


/*
 * How many of n bytes this call moves: n, or (short mode, at the rate) a
 * count from 1 up. Half of the shortened calls move at most 16 bytes, so
 * that one-byte reads and writes happen often, not once in n.
 */
static size_t
fault_len(size_t n)
{
    uint64_t r;

    if (!fault_short || n <= 1 || !roll()) {
        return n;
    }
    r = next_random();
    if (r & 1) {
        return 1 + (size_t) ((r >> 1) % mp_min(n, 16));
    }
    return 1 + (size_t) ((r >> 1) % n);
}


static int
fault_again(void)
{
    if (fault_eagain && roll()) {
        errno = EAGAIN;
        return 1;
    }
    return 0;
}


static void
parse_faults(const char *spec)
{
    char buf[256], *tok, *save = NULL;
    unsigned long long seed = 1;

    snprintf(buf, sizeof(buf), "%s", spec);
    for (tok = strtok_r(buf, ", ", &save); tok != NULL;
         tok = strtok_r(NULL, ", ", &save)) {
        if (strcmp(tok, "short") == 0) {
            fault_short = 1;
        } else if (strcmp(tok, "eagain") == 0) {
            fault_eagain = 1;
        } else if (strncmp(tok, "seed=", 5) == 0) {
            seed = strtoull(tok + 5, NULL, 10);
        } else if (strncmp(tok, "rate=", 5) == 0) {
            fault_rate = (unsigned) mp_min(strtoul(tok + 5, NULL, 10), 100);
        } else {
            mp_log_error(MP_LOG_WARN, 0,
                         "MOONPOOL_FAULTS: unknown fault \"%s\" ignored", tok);
        }
    }
    fault_state = seed + (uint64_t) mp_worker_id;
    mp_io_faults = fault_short || fault_eagain;
    if (mp_io_faults) {
        mp_log_error(MP_LOG_NOTICE, 0,
                     "fault injection on: short=%d eagain=%d rate=%u%% "
                     "seed=%llu", fault_short, fault_eagain, fault_rate,
                     seed);
    }
}


void
mp_io_faults_init(void)
{
    const char *spec;

    if (faults_checked) {
        return;
    }
    faults_checked = 1;
    spec = getenv("MOONPOOL_FAULTS");
    if (spec != NULL && spec[0] != '\0') {
        parse_faults(spec);
    }
}


void
mp_io_conn_open(mp_conn_t *c)
{
    if (mp_unlikely(!faults_checked)) {
        mp_io_faults_init();
    }
    c->tls = NULL;
    c->io_slow = mp_io_faults != 0;
}


/* Stand in for the edge a fake EAGAIN swallowed (file comment). */
static void
on_read_retry(evutil_socket_t fd, short what, void *arg)
{
    mp_conn_t *c = arg;

    (void) fd;
    (void) what;
    if (c->fd >= 0 && event_pending(&c->ev_read, EV_READ, NULL)) {
        event_active(&c->ev_read, EV_READ, 1);
    }
}


static void
on_write_retry(evutil_socket_t fd, short what, void *arg)
{
    mp_conn_t *c = arg;

    (void) fd;
    (void) what;
    if (c->fd >= 0 && event_pending(&c->ev_write, EV_WRITE, NULL)) {
        event_active(&c->ev_write, EV_WRITE, 1);
    }
}


/*
 * A fake EAGAIN for c, with its retry scheduled; 0 (no fault) when the
 * dice say so or the retry cannot be scheduled.
 */
static int
fault_conn_again(mp_conn_t *c, event_callback_fn retry)
{
    static const struct timeval soon = { 0, 1 };

    if (!fault_again()) {
        return 0;
    }
    if (event_base_once(mp_worker_base, -1, EV_TIMEOUT, retry, c, &soon)
        != 0) {
        return 0;
    }
    errno = EAGAIN;
    return 1;
}


static ssize_t
fault_conn_read(mp_conn_t *c, char *buf, size_t n)
{
    size_t k;
    ssize_t got;

    if (fault_conn_again(c, on_read_retry)) {
        return -1;
    }
    k = fault_len(n);
    got = c->tls != NULL ? mp_tls_read(c, buf, k) : read(c->fd, buf, k);
    if (k < n && got == (ssize_t) k) {
        short_conn = c;
    }
    return got;
}


ssize_t
mp_io_read_slow(mp_conn_t *c, char *buf, size_t n)
{
    short_conn = NULL;
    if (mp_io_faults && n > 0) {
        return fault_conn_read(c, buf, n);
    }
    if (c->tls != NULL) {
        return mp_tls_read(c, buf, n);
    }
    return read(c->fd, buf, n);
}


/*
 * Copies the first k bytes of iov into out (at most FAULT_IOV_MAX
 * buffers, fewer is a short write too); returns the count of buffers.
 */
static int
shorten_iov(const struct iovec *iov, int cnt, size_t k, struct iovec *out)
{
    int i;

    for (i = 0; i < cnt && i < FAULT_IOV_MAX && k > 0; i++) {
        out[i].iov_base = iov[i].iov_base;
        out[i].iov_len = mp_min(iov[i].iov_len, k);
        k -= out[i].iov_len;
    }
    return i;
}


/* writev(2) of the first fault_len() bytes of iov. */
static ssize_t
short_writev(int fd, const struct iovec *iov, int cnt)
{
    struct iovec part[FAULT_IOV_MAX];
    size_t total = 0;
    int i;

    for (i = 0; i < cnt; i++) {
        total += iov[i].iov_len;
    }
    if (total == 0) {
        return writev(fd, iov, cnt);
    }
    return writev(fd, part, shorten_iov(iov, cnt, fault_len(total), part));
}


ssize_t
mp_io_writev_slow(mp_conn_t *c, const struct iovec *iov, int cnt)
{
    if (mp_io_faults && fault_conn_again(c, on_write_retry)) {
        return -1;
    }
    if (c->tls != NULL) {
        return mp_tls_writev(c, iov, cnt);
    }
    if (mp_io_faults) {
        return short_writev(c->fd, iov, cnt);
    }
    return writev(c->fd, iov, cnt);
}


int
mp_io_pending_slow(const mp_conn_t *c)
{
    return c == short_conn || (c->tls != NULL && mp_tls_read_pending(c));
}


/* ---- other sockets ------------------------------------------------------ */

ssize_t
mp_io_fault_recv(int fd, void *buf, size_t n, int flags)
{
    if (n > 0 && fault_again()) {
        return -1;
    }
    return recv(fd, buf, fault_len(n), flags);
}


ssize_t
mp_io_fault_send(int fd, const void *buf, size_t n, int flags)
{
    if (n > 0 && fault_again()) {
        return -1;
    }
    return send(fd, buf, fault_len(n), flags);
}

