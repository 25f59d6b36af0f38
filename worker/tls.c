/*
 * tls.c: HTTPS listeners (see tls.h): contexts built by the master, the
 * non-blocking server handshake, and reads and writes over a session.
 *
 * The contexts of a config snapshot form a "set" kept in a short list
 * (during a reload two snapshots live in the master); a worker finds the
 * set of the snapshot it serves once and keeps it. A handshake runs on a
 * one-shot event of its own (t->ev), re-armed for the readiness OpenSSL
 * wants, so http.c's edge-triggered read event is not registered until
 * HTTP begins. Per-connection state is kept on a free list; SSL_new() per
 * connection is the one allocation left, as in nginx.
 *
 * Reads fill the caller's buffer record after record until OpenSSL wants
 * more from the socket, which is what an edge-triggered reader needs (a
 * short count means "drained"); read-ahead lets one read(2) fetch several
 * records. Writes coalesce small iovecs into one record-sized buffer, so a
 * small response is one record and one write(2); large bodies go to
 * SSL_write() in place. Partial writes and moving write buffers are on, so
 * a write that would block is retried by handing the same bytes again (the
 * caller's contract, see io.h), wherever they now sit.
 *
 * Every failing OpenSSL call is followed by ERR_clear_error(), and each
 * entry point clears the queue first, so that a stale error left by other
 * code (Lua's digests, cosockets) never turns into a wrong SSL_get_error().
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "core/time.h"
#include "worker/io.h"
#include "worker/location.h"
#include "worker/loop.h"
#include "worker/tls.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <sys/socket.h>

/* Plaintext of one full TLS record: what a coalesced write fills. */
#define MP_TLS_RECORD 16384
/* Sessions in each context's server cache, and their lifetime (nginx's
 * ssl_session_timeout default). Tickets carry the same lifetime. */
#define MP_TLS_SESSION_CACHE 20480
#define MP_TLS_SESSION_TIMEOUT 300
/* The most a plain-HTTP client's request is read before we answer it. */
#define MP_TLS_PLAIN_DRAIN 16

typedef struct tls_set_s {
    const mp_conf_t *conf;
    SSL_CTX **ctx;              /* indexed by server index; NULL: no tls */
    struct tls_set_s *next;
} tls_set_t;

struct mp_tls_conn_s {
    SSL *ssl;
    mp_conn_t *conn;
    const tls_set_t *set;
    mp_tls_done_cb done;
    struct event ev;            /* handshake readiness, one-shot */
    int read_result;            /* deferred: 0 none, -1 end of stream, errno */
    unsigned handshaking:1;
    unsigned peeked:1;          /* the first byte said "TLS handshake" */
    unsigned fatal:1;           /* the session failed: no close_notify */
    unsigned read_deferred:1;   /* read_result is still to be reported */
    struct mp_tls_conn_s *next_free;
};

typedef struct mp_tls_conn_s tls_conn_t;

static tls_set_t *sets;
static const tls_set_t *worker_set;
static tls_conn_t *free_tls;
static char coalesce_buf[MP_TLS_RECORD];

static void handshake(tls_conn_t *t);


/* ---- contexts (master) -------------------------------------------------- */

static void
ssl_reason(char *buf, size_t size)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;

    snprintf(buf, size, "%s", reason ? reason : "unknown error");
    ERR_clear_error();
}


static int
check_readable(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        snprintf(err, errlen, "open() \"%s\" failed (%d: %s)", path, errno,
                 strerror(errno));
        return MP_ERROR;
    }
    fclose(f);
    return MP_OK;
}


/* Picks "http/1.1"; a client offering only other protocols is refused. */
static int
on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
        const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel;

    (void) ssl;
    (void) arg;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}


/*
 * SNI: the server of this address that the name selects, with Host's
 * rules; the context starts as the address's default server's, which is
 * also what an unknown name or no name keeps. Sessions and tickets stay
 * with that first context (OpenSSL's session_ctx), the same for every
 * connection of the address.
 */
static int
on_servername(SSL *ssl, int *alert, void *arg)
{
    tls_conn_t *t = SSL_get_app_data(ssl);
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    const mp_conf_listen_t *ls;
    const mp_conf_server_t *srv;
    char host[256];
    size_t len, i;
    SSL_CTX *ctx;

    (void) alert;
    (void) arg;
    if (t == NULL || name == NULL || t->conn->listen->nservers < 2) {
        return SSL_TLSEXT_ERR_OK;
    }
    ls = t->conn->listen;
    len = strlen(name);
    if (len >= sizeof(host)) {
        return SSL_TLSEXT_ERR_OK;
    }
    for (i = 0; i < len; i++) {
        host[i] = (char) (name[i] >= 'A' && name[i] <= 'Z' ? name[i] | 0x20
                                                          : name[i]);
    }
    if (len > 0 && host[len - 1] == '.') {
        len--;
    }
    srv = mp_location_find_server(ls, host, len);
    ctx = t->set->ctx[srv->index];
    if (ctx != NULL && ctx != SSL_get_SSL_CTX(ssl)) {
        SSL_set_SSL_CTX(ssl, ctx);
    }
    return SSL_TLSEXT_ERR_OK;
}


static SSL_CTX *
ctx_create(const mp_conf_server_t *srv, char *err, size_t errlen,
           mp_tls_at_t *at)
{
    static const unsigned char sid[] = "moonpool";
    char reason[256];
    SSL_CTX *ctx;

    *at = MP_TLS_AT_SERVER;
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_reason(reason, sizeof(reason));
        snprintf(err, errlen, "SSL_CTX_new() failed (%s)", reason);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION
                                 | SSL_OP_CIPHER_SERVER_PREFERENCE
                                 | SSL_OP_NO_COMPRESSION
                                 | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                              | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    /* every context of an address has the same id: SNI may switch them */
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, MP_TLS_SESSION_CACHE);
    SSL_CTX_set_timeout(ctx, MP_TLS_SESSION_TIMEOUT);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);

    *at = MP_TLS_AT_CERTIFICATE;
    if (check_readable(srv->tls_certificate, err, errlen) != MP_OK) {
        goto failed;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, srv->tls_certificate) != 1) {
        ssl_reason(reason, sizeof(reason));
        snprintf(err, errlen, "cannot load certificate \"%s\" (%s)",
                 srv->tls_certificate, reason);
        goto failed;
    }
    *at = MP_TLS_AT_KEY;
    if (check_readable(srv->tls_key, err, errlen) != MP_OK) {
        goto failed;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, srv->tls_key, SSL_FILETYPE_PEM)
        != 1) {
        unsigned long e = ERR_peek_last_error();

        if (ERR_GET_LIB(e) == ERR_LIB_X509
            && (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH
                || ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH)) {
            ERR_clear_error();
            goto mismatch;
        }
        ssl_reason(reason, sizeof(reason));
        snprintf(err, errlen, "cannot load key \"%s\" (%s)", srv->tls_key,
                 reason);
        goto failed;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        goto mismatch;
    }
    return ctx;

mismatch:
    snprintf(err, errlen, "key \"%s\" does not match certificate \"%s\"",
             srv->tls_key, srv->tls_certificate);
failed:
    SSL_CTX_free(ctx);
    return NULL;
}


static void
set_free(void *data)
{
    tls_set_t *set = data, **p;
    size_t i;

    for (i = 0; i < set->conf->nservers; i++) {
        SSL_CTX_free(set->ctx[i]);
    }
    for (p = &sets; *p != NULL; p = &(*p)->next) {
        if (*p == set) {
            *p = set->next;
            break;
        }
    }
    if (worker_set == set) {
        worker_set = NULL;
    }
}


int
mp_tls_conf_init(mp_conf_t *conf, char *err, size_t errlen,
                 const mp_conf_server_t **srv, mp_tls_at_t *at)
{
    tls_set_t *set;
    size_t i, n = 0;

    for (i = 0; i < conf->nservers; i++) {
        n += conf->servers[i].tls_certificate != NULL;
    }
    if (n == 0) {
        return MP_OK;
    }
    set = mp_pool_calloc(conf->pool, sizeof(*set));
    set->conf = conf;
    set->ctx = mp_pool_calloc(conf->pool, conf->nservers * sizeof(SSL_CTX *));
    set->next = sets;
    sets = set;
    /* registered first: a failure below frees what was built, with conf */
    mp_pool_cleanup_add(conf->pool, set_free, set);

    for (i = 0; i < conf->nservers; i++) {
        if (conf->servers[i].tls_certificate == NULL) {
            continue;
        }
        set->ctx[i] = ctx_create(&conf->servers[i], err, errlen, at);
        if (set->ctx[i] == NULL) {
            *srv = &conf->servers[i];
            return MP_ERROR;
        }
    }
    return MP_OK;
}


static const tls_set_t *
set_of(const mp_conf_t *conf)
{
    const tls_set_t *set;

    if (worker_set != NULL && worker_set->conf == conf) {
        return worker_set;
    }
    for (set = sets; set != NULL; set = set->next) {
        if (set->conf == conf) {
            worker_set = set;
            return set;
        }
    }
    return NULL;
}


/* ---- handshake ------------------------------------------------------------ */

/* Logs why a TLS call failed (client-caused: info) and clears the queue. */
static void
log_failure(tls_conn_t *t, int err, const char *what)
{
    char reason[256];
    int saved = errno;

    if (err == SSL_ERROR_SSL) {
        ssl_reason(reason, sizeof(reason));
        mp_log_error(MP_LOG_INFO, 0, "%s with %s failed (%s)", what,
                     t->conn->peer_text, reason);
        return;
    }
    ERR_clear_error();
    if (err == SSL_ERROR_SYSCALL && saved != 0) {
        mp_log_error(MP_LOG_INFO, saved, "%s with %s failed", what,
                     t->conn->peer_text);
    } else {
        mp_log_error(MP_LOG_INFO, 0, "client %s closed the connection in "
                     "%s", t->conn->peer_text, what);
    }
}


static void
on_handshake_event(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    mp_worker_time_update();
    handshake(arg);
}


static void
arm(tls_conn_t *t, short what)
{
    event_assign(&t->ev, mp_worker_base, t->conn->fd, what,
                 on_handshake_event, t);
    event_add(&t->ev, NULL);
}


/*
 * nginx's answer to plain HTTP on an HTTPS port (its status 497), with
 * our name. The request is read first (bounded): closing with unread
 * input would reset the connection and could destroy the answer.
 */
static void
answer_plain_http(tls_conn_t *t)
{
    static const char body[] =
        "<html>\r\n<head><title>400 The plain HTTP request was sent to "
        "HTTPS port</title></head>\r\n<body>\r\n"
        "<center><h1>400 Bad Request</h1></center>\r\n"
        "<center>The plain HTTP request was sent to HTTPS port</center>\r\n"
        "<hr><center>moonpool</center>\r\n</body>\r\n</html>\r\n";
    const mp_str_t *date = mp_time_http();
    int fd = t->conn->fd, i, n;
    char buf[4096];
    struct iovec iov[2];
    ssize_t rc;

    for (i = 0; i < MP_TLS_PLAIN_DRAIN; i++) {
        if (recv(fd, buf, sizeof(buf), 0) < (ssize_t) sizeof(buf)) {
            break;
        }
    }
    n = snprintf(buf, sizeof(buf),
                 "HTTP/1.1 400 Bad Request\r\nServer: moonpool\r\n"
                 "Date: %.*s\r\nContent-Type: text/html\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                 (int) date->len, date->data, sizeof(body) - 1);
    iov[0].iov_base = buf;
    iov[0].iov_len = (size_t) n;
    iov[1].iov_base = (void *) body;
    iov[1].iov_len = sizeof(body) - 1;
    /* a few hundred bytes into a fresh socket buffer: it does not block */
    rc = writev(fd, iov, 2);
    (void) rc;
    shutdown(fd, SHUT_WR);
}


/*
 * Looks at the first byte without taking it: a TLS handshake record starts
 * with 22. Returns MP_OK (TLS), MP_AGAIN (nothing yet) or MP_ERROR (closed,
 * plain HTTP answered, or garbage; logged).
 */
static int
check_first_byte(tls_conn_t *t)
{
    mp_conn_t *c = t->conn;
    unsigned char ch;
    ssize_t n;

    n = recv(c->fd, &ch, 1, MSG_PEEK);
    if (n == 1) {
        if (ch == 0x16) {
            return MP_OK;
        }
        if (ch >= 'A' && ch <= 'Z') {
            mp_log_error(MP_LOG_INFO, 0, "client %s sent plain HTTP request "
                         "to HTTPS port", c->peer_text);
            answer_plain_http(t);
        } else {
            mp_log_error(MP_LOG_INFO, 0, "client %s sent no TLS handshake "
                         "(first byte 0x%02x)", c->peer_text, ch);
        }
        return MP_ERROR;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return MP_AGAIN;
    }
    if (n < 0) {
        mp_log_error(MP_LOG_INFO, errno, "recv() from %s failed",
                     c->peer_text);
    }
    /* n == 0: closed before saying anything (a port probe): not logged */
    return MP_ERROR;
}


static void
handshake(tls_conn_t *t)
{
    int rc, err;

    if (!t->peeked) {
        rc = check_first_byte(t);
        if (rc == MP_AGAIN) {
            arm(t, EV_READ);
            return;
        }
        if (rc == MP_ERROR) {
            t->fatal = 1;
            t->done(t->conn, MP_ERROR);
            return;
        }
        t->peeked = 1;
    }
    ERR_clear_error();
    errno = 0;
    rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        t->handshaking = 0;
        t->done(t->conn, MP_OK);
        return;
    }
    err = SSL_get_error(t->ssl, rc);
    if (err == SSL_ERROR_WANT_READ) {
        arm(t, EV_READ);
        return;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        arm(t, EV_WRITE);
        return;
    }
    log_failure(t, err, "SSL handshake");
    t->fatal = 1;
    t->done(t->conn, MP_ERROR);
}


void
mp_tls_accept(mp_conn_t *c, mp_tls_done_cb done)
{
    const tls_set_t *set = set_of(mp_worker_conf);
    SSL_CTX *ctx = NULL;
    tls_conn_t *t;

    if (set != NULL) {
        ctx = set->ctx[c->listen->servers[0]->index];
    }
    t = free_tls;
    if (t != NULL) {
        free_tls = t->next_free;
    } else {
        t = mp_calloc(1, sizeof(*t));
    }
    t->conn = c;
    t->set = set;
    t->done = done;
    t->read_result = 0;
    t->handshaking = 1;
    t->peeked = 0;
    t->fatal = 1; /* until a session exists */
    t->read_deferred = 0;
    event_assign(&t->ev, mp_worker_base, c->fd, EV_READ, on_handshake_event,
                 t);
    c->tls = t;
    c->io_slow = 1;

    ERR_clear_error();
    t->ssl = ctx != NULL ? SSL_new(ctx) : NULL;
    if (t->ssl == NULL || SSL_set_fd(t->ssl, c->fd) != 1) {
        char reason[256];

        ssl_reason(reason, sizeof(reason));
        mp_log_error(MP_LOG_ERR, 0, "cannot start TLS on %s (%s)",
                     c->listen->text, ctx == NULL ? "no context" : reason);
        done(c, MP_ERROR);
        return;
    }
    SSL_set_app_data(t->ssl, t);
    SSL_set_accept_state(t->ssl);
    t->fatal = 0;
    handshake(t);
}


void
mp_tls_conn_close(mp_conn_t *c)
{
    tls_conn_t *t = c->tls;

    if (t == NULL) {
        return;
    }
    event_del(&t->ev);
    if (t->ssl != NULL) {
        if (!t->fatal && !t->handshaking) {
            /* best effort: one try, no waiting for the peer's notify */
            ERR_clear_error();
            if (SSL_shutdown(t->ssl) < 0) {
                ERR_clear_error();
            }
        }
        SSL_free(t->ssl);
        t->ssl = NULL;
    }
    c->tls = NULL;
    c->io_slow = 0;
    t->conn = NULL;
    t->next_free = free_tls;
    free_tls = t;
}


/* ---- reads and writes ------------------------------------------------------ */

/* Reports a result saved behind data (read-like: 0 or -1 with errno). */
static ssize_t
read_result(tls_conn_t *t)
{
    t->read_deferred = 0;
    if (t->read_result < 0) {
        return 0;
    }
    errno = t->read_result;
    return -1;
}


/* Turns a failed SSL_read() into a saved result; logs TLS errors. */
static void
read_failed(tls_conn_t *t, int err)
{
    if (err == SSL_ERROR_ZERO_RETURN) {
        t->read_result = -1; /* close_notify; a reply may still follow */
        ERR_clear_error();
        return;
    }
    t->fatal = 1;
    if (err == SSL_ERROR_SYSCALL) {
        t->read_result = errno != 0 ? errno : -1;
        ERR_clear_error();
        return;
    }
    log_failure(t, err, "SSL_read()");
    t->read_result = EPROTO;
}


ssize_t
mp_tls_read(mp_conn_t *c, char *buf, size_t n)
{
    tls_conn_t *t = c->tls;
    size_t got = 0;
    int rc, err;

    if (t->handshaking) {
        errno = EAGAIN; /* HTTP reads only once the handshake is done */
        return -1;
    }
    if (t->read_result != 0) {
        return read_result(t);
    }
    ERR_clear_error();
    while (got < n) {
        errno = 0;
        rc = SSL_read(t->ssl, buf + got, (int) mp_min(n - got, INT_MAX));
        if (rc > 0) {
            got += (size_t) rc;
            continue;
        }
        err = SSL_get_error(t->ssl, rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            /*
             * WANT_WRITE: a TLS 1.3 key update answer did not fit in the
             * socket buffer; the response writes that follow flush it.
             */
            ERR_clear_error();
            if (got > 0) {
                return (ssize_t) got;
            }
            errno = EAGAIN;
            return -1;
        }
        read_failed(t, err);
        if (got > 0) {
            t->read_deferred = 1;
            return (ssize_t) got;
        }
        return read_result(t);
    }
    return (ssize_t) got;
}


int
mp_tls_read_pending(const mp_conn_t *c)
{
    return c->tls->read_deferred;
}


/* Moves (*i, *off) forward by n bytes over iov. */
static void
advance(const struct iovec *iov, int cnt, int *i, size_t *off, size_t n)
{
    while (n > 0 && *i < cnt) {
        size_t left = iov[*i].iov_len - *off;

        if (n < left) {
            *off += n;
            return;
        }
        n -= left;
        (*i)++;
        *off = 0;
    }
}


/* Copies from (i, off) on into the record buffer; the bytes copied. */
static size_t
coalesce(const struct iovec *iov, int cnt, int i, size_t off)
{
    size_t len = 0, take;

    for (; i < cnt && len < sizeof(coalesce_buf); i++, off = 0) {
        take = mp_min(iov[i].iov_len - off, sizeof(coalesce_buf) - len);
        memcpy(coalesce_buf + len, (const char *) iov[i].iov_base + off, take);
        len += take;
    }
    return len;
}


ssize_t
mp_tls_writev(mp_conn_t *c, const struct iovec *iov, int cnt)
{
    tls_conn_t *t = c->tls;
    size_t total = 0, off = 0, len, left;
    const char *p;
    int i = 0, rc, err;

    if (t->handshaking || t->fatal) {
        errno = t->fatal ? EPIPE : ENOTCONN;
        return -1;
    }
    ERR_clear_error();
    for (;;) {
        while (i < cnt && off == iov[i].iov_len) {
            i++;
            off = 0;
        }
        if (i == cnt) {
            return (ssize_t) total;
        }
        left = iov[i].iov_len - off;
        if (left >= MP_TLS_RECORD || i == cnt - 1) {
            p = (const char *) iov[i].iov_base + off;
            len = mp_min(left, INT_MAX);
        } else {
            /* small pieces (status line + headers + body) in one record */
            p = coalesce_buf;
            len = coalesce(iov, cnt, i, off);
        }
        errno = 0;
        rc = SSL_write(t->ssl, p, (int) len);
        if (rc > 0) {
            total += (size_t) rc;
            advance(iov, cnt, &i, &off, (size_t) rc);
            continue;
        }
        err = SSL_get_error(t->ssl, rc);
        if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            if (total > 0) {
                return (ssize_t) total;
            }
            errno = EAGAIN;
            return -1;
        }
        t->fatal = 1;
        if (err == SSL_ERROR_SYSCALL) {
            ERR_clear_error();
            if (errno == 0) {
                errno = EPIPE;
            }
        } else {
            log_failure(t, err, "SSL_write()");
            errno = EPROTO;
        }
        if (total > 0) {
            return (ssize_t) total;
        }
        return -1;
    }
}


/* ---- variables ----------------------------------------------------------- */

const char *
mp_tls_protocol(const mp_conn_t *c)
{
    if (c->tls == NULL || c->tls->ssl == NULL) {
        return NULL;
    }
    return SSL_get_version(c->tls->ssl);
}


const char *
mp_tls_server_name(const mp_conn_t *c)
{
    if (c->tls == NULL || c->tls->ssl == NULL) {
        return NULL;
    }
    return SSL_get_servername(c->tls->ssl, TLSEXT_NAMETYPE_host_name);
}


int
mp_tls_session_reused(const mp_conn_t *c)
{
    return c->tls != NULL && c->tls->ssl != NULL
           && SSL_session_reused(c->tls->ssl);
}
