/*
 * cosocket.c: non-blocking client sockets, TLS on them and the keep-alive
 * pool (see cosocket.h). Called by lua/api_socket_*.c only.
 *
 * Reads go into one buffer per socket, grown only for a single value
 * larger than it ("*a", receive(n) with a large n, a long line). Buffers
 * of the default size are recycled through a small free list when a
 * socket is cleaned up, so the common case (a socket per request) does
 * not allocate once the worker is warm.
 *
 * Each connection (fd) is registered with epoll once, edge-triggered for
 * reads and writes, in a connection record that moves with the fd between
 * a socket and the pool (records are recycled, never freed while the
 * worker runs, so a stale pointer to one is harmless and a generation
 * number tells a reused one apart). A waiter then only arms a timer.
 *
 * Fault mode (MOONPOOL_FAULTS, worker/io.h) shortens stream reads and
 * writes and fails some with EAGAIN. A fake EAGAIN has no edge to follow
 * it, so a wait after an EAGAIN in that mode also arms a retry that wakes
 * the waiter after a microsecond, as worker/io.c does for clients; the
 * waiters' callbacks take a wakeup without readiness in their stride.
 *
 * The pool is a list of named pools (a worker talks to few upstreams);
 * each owns `size` idle slots allocated when it is created, kept in two
 * lists: idle connections, most recently used first, and free slots. An
 * idle connection that becomes readable (the peer closed it, or sent
 * something unasked) cannot be reused, so it is closed then, as
 * lua-nginx-module does; one that may hold unread bytes when it is put
 * back is checked first.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "core/time.h"
#include "worker/cosocket.h"
#include "worker/io.h"
#include "worker/loop.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <unistd.h>

#define MP_BUF_FREELIST 64


struct mp_cosocket_conn_s {
    struct event io;            /* read, write, closed; persistent, ET */
    mp_cosocket_t *s;           /* its socket; NULL while pooled */
    void *item;                 /* its pool slot while pooled */
    mp_cosocket_conn_t *next_free;
    unsigned gen;               /* bumped on every open and close */
    int fd;
    unsigned read_ready:1;      /* readable since a read last drained it */
    unsigned peer_closed:1;     /* EPOLLRDHUP: the peer sent its FIN */
};

static mp_cosocket_conn_t *free_conns;

typedef struct pool_s pool_t;

static void pool_release(pool_t *p);
static void backlog_unlink(mp_cosocket_t *s);
static void wake_waiter(pool_t *p, int count);
static char *free_bufs[MP_BUF_FREELIST];
static int nfree_bufs;
static SSL_CTX *client_ctx;
static int client_ctx_failed;


static void conn_open(mp_cosocket_t *s, int fd);


void
mp_cosocket_init(mp_cosocket_t *s)
{
    memset(s, 0, sizeof(*s));
    s->fd = -1;
}


const char *
mp_cosocket_strerror(int err)
{
    static char buf[128];
    const char *m = strerror(err);
    size_t i;

    for (i = 0; m[i] != '\0' && i + 1 < sizeof(buf); i++) {
        buf[i] = (char) tolower((unsigned char) m[i]);
    }
    buf[i] = '\0';
    return buf;
}


int
mp_cosocket_connect(mp_cosocket_t *s, const struct sockaddr *sa,
                    socklen_t len, int type)
{
    int fd, one = 1;

    fd = socket(sa->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        s->err = errno;
        mp_log_error(MP_LOG_ERR, errno, "socket() failed");
        return MP_ERROR;
    }
    if (type == SOCK_STREAM && sa->sa_family != AF_UNIX) {
        /* requests are written whole; Nagle would only delay them */
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    s->type = type;
    s->err = 0;
    s->pos = s->last = 0;
    if (connect(fd, sa, len) == 0) {
        conn_open(s, fd);
        return MP_OK;
    }
    /* a unix socket whose listener is busy says EAGAIN: wait like TCP */
    if (errno == EINPROGRESS
        || (errno == EAGAIN && sa->sa_family == AF_UNIX)) {
        conn_open(s, fd);
        return MP_AGAIN;
    }
    s->err = errno;
    close(fd);
    return MP_ERROR;
}


int
mp_cosocket_connect_done(mp_cosocket_t *s)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = errno;
    }
    if (err != 0) {
        s->err = err;
        return MP_ERROR;
    }
    return MP_OK;
}


/* Ends w's wait; what is the readiness that came, or EV_TIMEOUT. */
static void
fire(mp_cosocket_t *s, mp_cosocket_waiter_t *w, short what)
{
    w->armed = 0;
    if (w->timer_set) {
        evtimer_del(&w->timer);
        w->timer_set = 0;
    }
    w->cb(s, w->data, what);
}


static void
on_read_timeout(evutil_socket_t fd, short what, void *arg)
{
    mp_cosocket_t *s = arg;

    (void) fd;
    (void) what;
    s->rd.timer_set = 0;
    mp_worker_time_update();
    fire(s, &s->rd, EV_TIMEOUT);
}


static void
on_write_timeout(evutil_socket_t fd, short what, void *arg)
{
    mp_cosocket_t *s = arg;

    (void) fd;
    (void) what;
    s->wr.timer_set = 0;
    mp_worker_time_update();
    fire(s, &s->wr, EV_TIMEOUT);
}


static void pool_item_readable(void *item);


/*
 * Readiness of a connection's fd. The reader goes first; its callback may
 * close the socket (or the request may end and its socket be collected),
 * so the writer is woken only if the record still serves the same socket.
 */
static void
on_io(evutil_socket_t fd, short what, void *arg)
{
    mp_cosocket_conn_t *c = arg;
    mp_cosocket_t *s = c->s;
    unsigned gen = c->gen;

    (void) fd;
    if (what & EV_READ) {
        c->read_ready = 1;
    }
    if (what & EV_CLOSED) {
        c->peer_closed = 1;
    }
    if (s == NULL) {
        if (c->item != NULL && (what & (EV_READ | EV_CLOSED))) {
            pool_item_readable(c->item);
        }
        return;
    }
    mp_worker_time_update();
    if (s->rd.armed && (what & s->rd.what)) {
        fire(s, &s->rd, s->rd.what);
    }
    if (c->gen != gen || c->s != s) {
        return;
    }
    if (s->wr.armed && (what & s->wr.what)) {
        fire(s, &s->wr, s->wr.what);
    }
}


static void
conn_open(mp_cosocket_t *s, int fd)
{
    mp_cosocket_conn_t *c = free_conns;

    if (c != NULL) {
        free_conns = c->next_free;
    } else {
        c = mp_calloc(1, sizeof(*c));
    }
    c->fd = fd;
    c->s = s;
    c->item = NULL;
    c->gen++;
    c->read_ready = 0;
    c->peer_closed = 0;
    mp_io_faults_init(); /* cheap once done; the fault mode's switch */
    /* EV_CLOSED (EPOLLRDHUP) tells a FIN that came with the last bytes,
     * which a short read would otherwise hide from the pool */
    event_assign(&c->io, mp_worker_base, fd,
                 EV_READ | EV_WRITE | EV_CLOSED | EV_PERSIST | EV_ET, on_io,
                 c);
    event_add(&c->io, NULL);
    s->conn = c;
    s->fd = fd;
}


static void
conn_close(mp_cosocket_conn_t *c)
{
    event_del(&c->io);
    close(c->fd);
    c->fd = -1;
    c->s = NULL;
    c->item = NULL;
    c->gen++;
    c->next_free = free_conns;
    free_conns = c;
}


/* The waiter woken by a retry, while its callback runs (fault mode). */
static mp_cosocket_waiter_t *retrying;


static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
    mp_cosocket_t *s = arg;
    mp_cosocket_waiter_t *w = s->retry_w;

    (void) fd;
    (void) what;
    s->retry_w = NULL;
    if (w != NULL && w->armed) {
        mp_worker_time_update();
        /* a wait the callback arms again keeps w's deadline */
        retrying = w;
        fire(s, w, w->what);
        retrying = NULL;
    }
}


void
mp_cosocket_wait(mp_cosocket_t *s, mp_cosocket_waiter_t *w, short what,
                 mp_msec_t timeout, mp_cosocket_cb cb, void *data)
{
    struct timeval tv;
    static const struct timeval us1 = { 0, 1 };
    int timed;

    mp_cosocket_unwait(w);
    if (mp_unlikely(s->maybe_fake)) {
        s->maybe_fake = 0;
        if (s->retry_w != NULL) {
            evtimer_del(&s->retry);
        }
        evtimer_assign(&s->retry, mp_worker_base, on_retry, s);
        evtimer_add(&s->retry, &us1);
        s->retry_w = w;
    }
    w->cb = cb;
    w->data = data;
    w->what = what;
    w->armed = 1;
    timed = timeout > 0;
    if (timed && w == retrying && w->deadline > 0) {
        /* 0 when the deadline passed: the timeout fires before any retry */
        timeout = mp_max(w->deadline - mp_time_msec, 0);
    } else {
        w->deadline = timed ? mp_time_msec + timeout : 0;
    }
    if (timed) {
        evtimer_assign(&w->timer, mp_worker_base,
                       w == &s->rd ? on_read_timeout : on_write_timeout, s);
        tv.tv_sec = (time_t) (timeout / 1000);
        tv.tv_usec = (suseconds_t) ((timeout % 1000) * 1000);
        evtimer_add(&w->timer, &tv);
        w->timer_set = 1;
    }
}


void
mp_cosocket_unwait(mp_cosocket_waiter_t *w)
{
    w->armed = 0;
    if (w->timer_set) {
        evtimer_del(&w->timer);
        w->timer_set = 0;
    }
}


/* ---- reads and writes ---------------------------------------------------- */

/* Maps an SSL_read/SSL_write result to the read(2) contract. */
static ssize_t
tls_result(mp_cosocket_t *s, int n)
{
    int e = SSL_get_error(s->ssl, n);

    switch (e) {
    case SSL_ERROR_WANT_READ:
        s->want = EV_READ;
        s->err = EAGAIN;
        s->conn->read_ready = 0;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        s->want = EV_WRITE;
        s->err = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        s->err = errno != 0 ? errno : ECONNRESET;
        if (n == 0 || errno == 0) {
            return 0; /* EOF without close_notify: nginx calls it closed */
        }
        return -1;
    default:
        mp_log_error(MP_LOG_INFO, 0, "cosocket TLS error: %s",
                     ERR_reason_error_string(ERR_peek_last_error()));
        ERR_clear_error();
        s->err = EPROTO;
        return -1;
    }
}


ssize_t
mp_cosocket_read(mp_cosocket_t *s, char *p, size_t n)
{
    ssize_t r;
    int k;

    if (s->ssl != NULL) {
        errno = 0;
        k = SSL_read(s->ssl, p, (int) mp_min(n, (size_t) INT32_MAX));
        return k > 0 ? k : tls_result(s, k);
    }
    do {
        r = mp_io_faults && s->type == SOCK_STREAM
                ? mp_io_fault_recv(s->fd, p, n, 0)
                : recv(s->fd, p, n, 0);
    } while (r == -1 && errno == EINTR);
    if (r == -1) {
        s->err = errno;
        s->want = EV_READ;
        if (errno == EAGAIN) {
            s->conn->read_ready = 0;
            s->maybe_fake = mp_io_faults;
        }
    } else if ((size_t) r < n && s->type == SOCK_STREAM && !mp_io_faults) {
        /* a short read emptied the socket (nginx's rule for epoll) */
        s->conn->read_ready = 0;
    }
    return r;
}


ssize_t
mp_cosocket_write(mp_cosocket_t *s, const char *p, size_t n)
{
    ssize_t r;
    int k;

    if (s->ssl != NULL) {
        errno = 0;
        k = SSL_write(s->ssl, p, (int) mp_min(n, (size_t) INT32_MAX));
        if (k > 0) {
            return k;
        }
        r = tls_result(s, k);
        if (r == 0) {
            s->err = EPIPE;
            return -1;
        }
        return r;
    }
    do {
        r = mp_io_faults && s->type == SOCK_STREAM
                ? mp_io_fault_send(s->fd, p, n, MSG_NOSIGNAL)
                : send(s->fd, p, n, MSG_NOSIGNAL);
    } while (r == -1 && errno == EINTR);
    if (r == -1) {
        s->err = errno;
        s->want = EV_WRITE;
        s->maybe_fake = mp_io_faults && errno == EAGAIN;
    }
    return r;
}


/* The size of a new buffer: lua.socket_buffer_size. */
static size_t
default_size(void)
{
    return mp_worker_conf != NULL ? mp_worker_conf->lua.socket_buffer_size
                                  : 4096;
}


static char *
buf_alloc(size_t size)
{
    if (size == default_size() && nfree_bufs > 0) {
        return free_bufs[--nfree_bufs];
    }
    return mp_alloc(size);
}


static void
buf_free(char *buf, size_t size)
{
    if (size == default_size() && nfree_bufs < MP_BUF_FREELIST) {
        free_bufs[nfree_bufs++] = buf;
        return;
    }
    free(buf);
}


char *
mp_cosocket_reserve(mp_cosocket_t *s, size_t n)
{
    size_t unread = s->last - s->pos, cap;
    char *nb;

    if (s->buf == NULL) {
        s->cap = mp_max(n, default_size());
        s->buf = buf_alloc(s->cap);
        s->pos = s->last = 0;
        return s->buf;
    }
    if (s->cap - s->last >= n) {
        return s->buf + s->last;
    }
    if (s->pos > 0 && s->cap - unread >= n) {
        memmove(s->buf, s->buf + s->pos, unread);
        s->pos = 0;
        s->last = unread;
        return s->buf + s->last;
    }
    cap = s->cap;
    while (cap - unread < n) {
        cap *= 2;
    }
    nb = mp_alloc(cap);
    memcpy(nb, s->buf + s->pos, unread);
    buf_free(s->buf, s->cap);
    s->buf = nb;
    s->cap = cap;
    s->pos = 0;
    s->last = unread;
    return s->buf + s->last;
}


ssize_t
mp_cosocket_fill(mp_cosocket_t *s, size_t max)
{
    char *p;
    ssize_t n;
    size_t room;

    if (max == 0) {
        /* whatever fits once 512 bytes are free: a read fills the buffer
         * and the buffer grows only when one value outgrows it */
        p = mp_cosocket_reserve(s, 512);
        room = s->cap - s->last;
    } else {
        p = mp_cosocket_reserve(s, max);
        room = max;
    }
    n = mp_cosocket_read(s, p, room);
    if (n > 0) {
        s->last += (size_t) n;
    }
    return n;
}


void
mp_cosocket_close(mp_cosocket_t *s)
{
    mp_cosocket_unwait(&s->rd);
    mp_cosocket_unwait(&s->wr);
    if (s->retry_w != NULL) {
        evtimer_del(&s->retry);
        s->retry_w = NULL;
    }
    s->maybe_fake = 0;
    if (s->ssl != NULL) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->conn != NULL) {
        conn_close(s->conn);
        s->conn = NULL;
    }
    if (s->queued != NULL) {
        backlog_unlink(s);
    }
    if (s->counted != NULL) {
        pool_t *p = s->counted;

        s->counted = NULL;
        pool_release(p);
    }
    s->fd = -1;
    s->pos = s->last = 0;
    s->reused = 0;
}


void
mp_cosocket_cleanup(mp_cosocket_t *s)
{
    mp_cosocket_close(s);
    if (s->buf != NULL) {
        buf_free(s->buf, s->cap);
        s->buf = NULL;
        s->cap = 0;
    }
}


/* ---- TLS ------------------------------------------------------------------ */

SSL_CTX *
mp_cosocket_tls_ctx(void)
{
    const mp_conf_t *conf = mp_worker_conf;
    SSL_CTX *ctx;

    if (client_ctx != NULL || client_ctx_failed) {
        return client_ctx;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        goto failed;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                              | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* the client keeps sessions itself (sslhandshake's return value) */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (conf != NULL && conf->lua.ssl_trusted_certificate != NULL) {
        if (SSL_CTX_load_verify_locations(ctx,
                                          conf->lua.ssl_trusted_certificate,
                                          NULL) != 1) {
            mp_log_error(MP_LOG_ERR, 0,
                         "SSL_CTX_load_verify_locations(\"%s\") failed (%s)",
                         conf->lua.ssl_trusted_certificate,
                         ERR_reason_error_string(ERR_peek_last_error()));
            ERR_clear_error();
            SSL_CTX_free(ctx);
            goto failed;
        }
    }
    /*
     * Verification is decided after the handshake (sslhandshake's
     * ssl_verify argument), as lua-nginx-module does: the handshake goes
     * on whatever the chain, and its result is read then.
     */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_verify_depth(ctx, conf != NULL ? conf->lua.ssl_verify_depth
                                               : 1);
    client_ctx = ctx;
    return ctx;

failed:
    mp_log_error(MP_LOG_ERR, 0, "cannot create the cosocket SSL context");
    client_ctx_failed = 1;
    return NULL;
}


int
mp_cosocket_tls_start(mp_cosocket_t *s, const char *server_name,
                      SSL_SESSION *session)
{
    SSL_CTX *ctx = mp_cosocket_tls_ctx();

    if (ctx == NULL) {
        return MP_ERROR;
    }
    s->ssl = SSL_new(ctx);
    if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
        goto failed;
    }
    if (server_name != NULL
        && SSL_set_tlsext_host_name(s->ssl, server_name) != 1) {
        goto failed;
    }
    if (session != NULL && SSL_set_session(s->ssl, session) != 1) {
        goto failed;
    }
    SSL_set_connect_state(s->ssl);
    return MP_OK;

failed:
    mp_log_error(MP_LOG_ERR, 0, "cannot start TLS on a cosocket (%s)",
                 ERR_reason_error_string(ERR_peek_last_error()));
    ERR_clear_error();
    if (s->ssl != NULL) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    return MP_ERROR;
}


int
mp_cosocket_tls_handshake(mp_cosocket_t *s)
{
    int n;

    errno = 0;
    n = SSL_do_handshake(s->ssl);
    if (n == 1) {
        return MP_OK;
    }
    switch (SSL_get_error(s->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        s->want = EV_READ;
        return MP_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        s->want = EV_WRITE;
        return MP_AGAIN;
    case SSL_ERROR_SYSCALL:
        s->err = errno != 0 ? errno : ECONNRESET;
        mp_log_error(MP_LOG_INFO, errno, "SSL_do_handshake() failed");
        break;
    default:
        s->err = EPROTO;
        mp_log_error(MP_LOG_INFO, 0, "SSL_do_handshake() failed (SSL: %s)",
                     ERR_reason_error_string(ERR_peek_last_error()));
        break;
    }
    ERR_clear_error();
    return MP_ERROR;
}


long
mp_cosocket_tls_verify(mp_cosocket_t *s, const char *name,
                       const char **reason)
{
    long rc = SSL_get_verify_result(s->ssl);
    X509 *cert;
    int ok;

    if (rc != X509_V_OK) {
        *reason = X509_verify_cert_error_string(rc);
        return rc;
    }
    cert = SSL_get1_peer_certificate(s->ssl);
    if (cert == NULL) {
        *reason = "no peer certificate";
        return X509_V_ERR_APPLICATION_VERIFICATION;
    }
    ok = 1;
    if (name != NULL) {
        ok = X509_check_host(cert, name, strlen(name), 0, NULL) == 1
             || X509_check_ip_asc(cert, name, 0) == 1;
    }
    X509_free(cert);
    if (!ok) {
        *reason = "certificate host mismatch";
        return -1;
    }
    *reason = NULL;
    return X509_V_OK;
}


/* ---- keep-alive pool ---------------------------------------------------- */


typedef struct item_s {
    struct item_s *prev;
    struct item_s *next;
    pool_t *pool;
    struct event timer;     /* the idle timeout */
    mp_cosocket_conn_t *conn;
    SSL *ssl;
    int reused;
    unsigned timer_set:1;
    unsigned counted:1;     /* counts in its limited pool */
} item_t;

struct pool_s {
    pool_t *next;
    item_t idle;     /* sentinel: most recently idled first */
    item_t *free;    /* singly linked through next */
    item_t *items;
    int size;
    int limited;     /* a connect gave a backlog: conns is enforced */
    int conns;       /* counted connections, in use and idle */
    int nqueued;
    mp_cosocket_t *qhead; /* the backlog, oldest first */
    mp_cosocket_t *qtail;
    size_t keylen;
    char key[];
};

static pool_t *pools;


static void
list_unlink(item_t *it)
{
    it->prev->next = it->next;
    it->next->prev = it->prev;
}


/* Takes it out of the idle list into the free slots; returns its conn. */
static mp_cosocket_conn_t *
item_take(item_t *it)
{
    mp_cosocket_conn_t *c = it->conn;

    if (it->timer_set) {
        evtimer_del(&it->timer);
        it->timer_set = 0;
    }
    list_unlink(it);
    it->conn = NULL;
    it->next = it->pool->free;
    it->pool->free = it;
    c->item = NULL;
    return c;
}


static void
item_close(item_t *it)
{
    SSL *ssl = it->ssl;
    int counted = it->counted;

    it->ssl = NULL;
    it->counted = 0;
    conn_close(item_take(it));
    if (counted) {
        pool_release(it->pool);
    }
    if (ssl != NULL) {
        SSL_free(ssl);
    }
}


static void
pool_item_readable(void *item)
{
    item_close(item);
}


static void
on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
    item_t *it = arg;

    (void) fd;
    (void) what;
    it->timer_set = 0;
    item_close(it);
}


static pool_t *
pool_find(const char *key, size_t keylen)
{
    pool_t *p;

    for (p = pools; p != NULL; p = p->next) {
        if (p->keylen == keylen && memcmp(p->key, key, keylen) == 0) {
            return p;
        }
    }
    return NULL;
}


static pool_t *
pool_create(const char *key, size_t keylen, int size)
{
    pool_t *p = mp_calloc(1, sizeof(*p) + keylen + 1);
    int i;

    memcpy(p->key, key, keylen);
    p->keylen = keylen;
    p->size = size;
    p->idle.next = p->idle.prev = &p->idle;
    p->items = mp_calloc((size_t) size, sizeof(item_t));
    for (i = size - 1; i >= 0; i--) {
        p->items[i].pool = p;
        p->items[i].next = p->free;
        p->free = &p->items[i];
    }
    p->next = pools;
    pools = p;
    return p;
}


/*
 * True when the connection of s holds nothing unread: no readiness came
 * since a read drained it, or a peek finds the socket empty. Bytes or an
 * EOF there mean the connection cannot be reused.
 */
static int
conn_clean(mp_cosocket_t *s)
{
    char c;
    ssize_t n;

    if (s->conn->peer_closed) {
        return 0;
    }
    if (!s->conn->read_ready) {
        return 1;
    }
    n = recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == -1 && errno == EAGAIN) {
        s->conn->read_ready = 0;
        return 1;
    }
    return 0;
}


int
mp_cosocket_pool_put(mp_cosocket_t *s, const char *key, size_t keylen,
                     mp_msec_t timeout, int size)
{
    pool_t *p;
    item_t *it;
    struct timeval tv;

    if (!conn_clean(s)) {
        mp_cosocket_close(s);
        return MP_OK;
    }
    p = pool_find(key, keylen);
    if (p == NULL) {
        p = pool_create(key, keylen, size);
    }
    if (p->free == NULL) {
        item_close(p->idle.prev); /* the oldest idle connection */
    }
    it = p->free;
    p->free = it->next;
    it->conn = s->conn;
    it->ssl = s->ssl;
    it->reused = s->reused;
    it->next = p->idle.next;
    it->prev = &p->idle;
    p->idle.next->prev = it;
    p->idle.next = it;
    it->conn->s = NULL;
    it->conn->item = it;
    it->counted = s->counted == p;
    if (s->counted != NULL && s->counted != p) {
        /* pooled under another key than it was counted in */
        pool_release(s->counted);
    }
    s->counted = NULL;
    if (timeout > 0) {
        evtimer_assign(&it->timer, mp_worker_base, on_idle_timeout, it);
        tv.tv_sec = (time_t) (timeout / 1000);
        tv.tv_usec = (suseconds_t) ((timeout % 1000) * 1000);
        evtimer_add(&it->timer, &tv);
        it->timer_set = 1;
    }
    /* the connection now belongs to the pool */
    s->conn = NULL;
    s->ssl = NULL;
    mp_cosocket_close(s);
    if (p->qhead != NULL && it->counted) {
        wake_waiter(p, 0);
    }
    return MP_OK;
}


int
mp_cosocket_pool_get(mp_cosocket_t *s, const char *key, size_t keylen)
{
    pool_t *p = pool_find(key, keylen);
    item_t *it;
    mp_cosocket_conn_t *c;

    if (p == NULL || p->idle.next == &p->idle) {
        return MP_DECLINED;
    }
    it = p->idle.next;
    s->ssl = it->ssl;
    s->reused = it->reused + 1;
    it->ssl = NULL;
    if (it->counted) {
        if (s->counted == p) {
            /* admitted by acquire, but the idle one carries the count */
            p->conns--;
        }
        s->counted = p;
        it->counted = 0;
    }
    c = item_take(it);
    c->s = s;
    s->conn = c;
    s->fd = c->fd;
    s->type = SOCK_STREAM;
    s->err = 0;
    s->pos = s->last = 0;
    return MP_OK;
}


static void
backlog_unlink(mp_cosocket_t *s)
{
    pool_t *p = s->queued;

    if (s->bl_prev != NULL) {
        s->bl_prev->bl_next = s->bl_next;
    } else {
        p->qhead = s->bl_next;
    }
    if (s->bl_next != NULL) {
        s->bl_next->bl_prev = s->bl_prev;
    } else {
        p->qtail = s->bl_prev;
    }
    s->bl_prev = s->bl_next = NULL;
    s->queued = NULL;
    p->nqueued--;
}


/* Runs the woken backlog waiter from the loop, not inside its waker. */
static void
on_backlog_wake(evutil_socket_t fd, short what, void *arg)
{
    mp_cosocket_t *s = arg;

    (void) fd;
    (void) what;
    s->wr.timer_set = 0;
    mp_worker_time_update();
    fire(s, &s->wr, EV_WRITE);
}


/*
 * Wakes the oldest backlog waiter of p, from the loop: counted when a
 * slot was freed for it, else (an idle connection came back) uncounted,
 * to take that connection with its count.
 */
static void
wake_waiter(pool_t *p, int count)
{
    mp_cosocket_t *s = p->qhead;

    backlog_unlink(s);
    if (count) {
        p->conns++;
        s->counted = p;
    }
    if (s->wr.timer_set) {
        evtimer_del(&s->wr.timer);
    }
    evtimer_assign(&s->wr.timer, mp_worker_base, on_backlog_wake, s);
    event_active(&s->wr.timer, EV_TIMEOUT, 1);
    s->wr.timer_set = 1;
}


/* A counted connection of p is gone: admit the oldest waiter. */
static void
pool_release(pool_t *p)
{
    p->conns--;
    if (p->qhead != NULL) {
        wake_waiter(p, 1);
    }
}


int
mp_cosocket_pool_acquire(mp_cosocket_t *s, const char *key, size_t keylen,
                         int size, int backlog, mp_msec_t timeout,
                         mp_cosocket_cb cb, void *data)
{
    pool_t *p = pool_find(key, keylen);

    if (p == NULL) {
        p = pool_create(key, keylen, size);
    }
    p->limited = 1;
    if (p->idle.next != &p->idle) {
        return MP_OK; /* pool_get takes one, with its count */
    }
    if (p->conns < p->size) {
        p->conns++;
        s->counted = p;
        return MP_OK;
    }
    if (p->nqueued >= backlog) {
        return MP_BUSY;
    }
    s->queued = p;
    s->bl_next = NULL;
    s->bl_prev = p->qtail;
    if (p->qtail != NULL) {
        p->qtail->bl_next = s;
    } else {
        p->qhead = s;
    }
    p->qtail = s;
    p->nqueued++;
    mp_cosocket_wait(s, &s->wr, EV_WRITE, timeout, cb, data);
    return MP_AGAIN;
}


void
mp_cosocket_pool_cleanup(void)
{
    pool_t *p, *next;

    for (p = pools; p != NULL; p = next) {
        next = p->next;
        while (p->idle.next != &p->idle) {
            item_close(p->idle.next);
        }
        free(p->items);
        free(p);
    }
    pools = NULL;
    while (nfree_bufs > 0) {
        free(free_bufs[--nfree_bufs]);
    }
    while (free_conns != NULL) {
        mp_cosocket_conn_t *c = free_conns;

        free_conns = c->next_free;
        free(c);
    }
    if (client_ctx != NULL) {
        SSL_CTX_free(client_ctx);
        client_ctx = NULL;
    }
}
