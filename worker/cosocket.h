/*
 * cosocket.h: non-blocking client sockets for the Lua cosocket API, with
 * no Lua in them: connect, readiness waits with timeouts, reads into a
 * per-socket buffer, writes, TLS on the same fd, and the per-worker pool
 * of idle keep-alive connections. lua/api_socket_*.c drive these from
 * coroutines (the yield/resume glue lives there).
 *
 * A socket has two waiters, one for its reader and one for its writer, so
 * that one light thread can read while another writes, as in OpenResty.
 * A waiter waits for one readiness (EV_READ or EV_WRITE) with a timeout;
 * its callback gets the libevent flags (EV_TIMEOUT, EV_READ, EV_WRITE).
 *
 * Readiness is edge-triggered, as in nginx: each connection's fd is
 * registered with epoll once, when it is opened, and stays registered
 * while it moves between a socket and the keep-alive pool, so a request
 * that takes a pooled connection, talks and gives it back costs no
 * epoll_ctl at all. The rule that follows: wait only after the operation
 * said EAGAIN (every caller tries first).
 *
 * Ownership: the caller embeds mp_cosocket_t and owns it. The read buffer
 * is heap memory of the socket, reused for every read and released by
 * mp_cosocket_cleanup() (small buffers go to a per-worker free list, so a
 * socket per request costs no malloc once the worker is warm). Not
 * thread-safe; a worker is single-threaded.
 */
#ifndef MP_COSOCKET_H
#define MP_COSOCKET_H

#include "core/mp_core.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

typedef struct mp_cosocket_s mp_cosocket_t;

/* A wait ended: what has the libevent flags that fired (EV_TIMEOUT...). */
typedef void (*mp_cosocket_cb)(mp_cosocket_t *s, void *data, short what);

typedef struct {
    struct event timer;       /* the timeout (no fd: costs no syscall) */
    mp_cosocket_cb cb;
    void *data;
    short what;               /* EV_READ or EV_WRITE */
    mp_msec_t deadline;       /* when the timeout fires; 0: none */
    unsigned armed:1;
    unsigned timer_set:1;
} mp_cosocket_waiter_t;

/* A connection: its fd and its epoll registration (cosocket.c). */
typedef struct mp_cosocket_conn_s mp_cosocket_conn_t;

struct mp_cosocket_s {
    int fd;                   /* -1 when closed */
    mp_cosocket_conn_t *conn; /* NULL when closed */
    int type;                 /* SOCK_STREAM or SOCK_DGRAM */
    SSL *ssl;                 /* after mp_cosocket_tls_start() */
    mp_cosocket_waiter_t rd;  /* the reader's wait */
    mp_cosocket_waiter_t wr;  /* the writer's (and connect's) wait */
    char *buf;                /* read buffer: unread bytes are [pos, last) */
    size_t pos;
    size_t last;
    size_t cap;
    int reused;               /* times taken from the keep-alive pool */
    int err;                  /* errno of the last failure, 0: none */
    short want;               /* EV_READ/EV_WRITE a TLS call waits for */
    void *counted;            /* the limited pool counting it (backlog) */
    void *queued;             /* the pool whose backlog it waits in */
    mp_cosocket_t *bl_prev;   /* in that backlog */
    mp_cosocket_t *bl_next;
    struct event retry;       /* fault mode: stands in for a lost edge */
    mp_cosocket_waiter_t *retry_w;
    unsigned maybe_fake:1;    /* fault mode: the last EAGAIN may be fake */
};

/* Prepares s (closed, no buffer). */
void mp_cosocket_init(mp_cosocket_t *s);

/*
 * Opens a non-blocking socket of type (SOCK_STREAM or SOCK_DGRAM) and
 * connects it to sa. Returns MP_OK (connected), MP_AGAIN (in progress:
 * wait for EV_WRITE on s->wr, then call mp_cosocket_connect_done) or
 * MP_ERROR (s->err set, nothing left open).
 */
int mp_cosocket_connect(mp_cosocket_t *s, const struct sockaddr *sa,
                        socklen_t len, int type);

/* After EV_WRITE on a connect in progress: MP_OK or MP_ERROR (s->err). */
int mp_cosocket_connect_done(mp_cosocket_t *s);

/*
 * Arms w (s->rd or s->wr) for what (EV_READ or EV_WRITE) with a timeout
 * (ms; <= 0: none); cb(s, data, fired) runs once. Re-arming replaces the
 * previous wait.
 */
void mp_cosocket_wait(mp_cosocket_t *s, mp_cosocket_waiter_t *w, short what,
                      mp_msec_t timeout, mp_cosocket_cb cb, void *data);

/* Disarms w; no-op when it is not armed. */
void mp_cosocket_unwait(mp_cosocket_waiter_t *w);

/*
 * Like read(2) / write(2) on s, through TLS once it is on: a count, 0 at
 * the end of the stream (reads), or -1 with s->err (EAGAIN: wait for
 * s->want, which is EV_READ or EV_WRITE).
 */
ssize_t mp_cosocket_read(mp_cosocket_t *s, char *p, size_t n);
ssize_t mp_cosocket_write(mp_cosocket_t *s, const char *p, size_t n);

/*
 * Makes room for at least n more bytes after s->last (moving the unread
 * bytes to the front, growing the buffer); returns the first free byte.
 */
char *mp_cosocket_reserve(mp_cosocket_t *s, size_t n);

/*
 * Reads once into the buffer, at most max bytes (0: what fits after
 * reserving lua.socket_buffer_size bytes). Returns what mp_cosocket_read does.
 */
ssize_t mp_cosocket_fill(mp_cosocket_t *s, size_t max);

/* Consumes n buffered bytes. */
static inline void
mp_cosocket_consume(mp_cosocket_t *s, size_t n)
{
    s->pos += n;
    if (s->pos == s->last) {
        s->pos = s->last = 0;
    }
}

/*
 * Closes the fd (TLS state freed without close_notify, as nginx does for
 * cosockets) and disarms both waiters. The buffer stays for a later
 * connect of the same object, emptied.
 */
void mp_cosocket_close(mp_cosocket_t *s);

/* mp_cosocket_close() and gives the buffer back. */
void mp_cosocket_cleanup(mp_cosocket_t *s);

/* Lowercased strerror(err), OpenResty's error text ("connection refused"). */
const char *mp_cosocket_strerror(int err);

/* ---- TLS ------------------------------------------------------------------ */

/*
 * The worker's client SSL_CTX, created on first use: trusted CAs from
 * lua.ssl_trusted_certificate, verify depth lua.ssl_verify_depth. NULL on
 * failure (logged).
 */
SSL_CTX *mp_cosocket_tls_ctx(void);

/*
 * Starts TLS on the connected s: SNI server_name (may be NULL), session to
 * resume (may be NULL; not taken over). MP_OK or MP_ERROR.
 */
int mp_cosocket_tls_start(mp_cosocket_t *s, const char *server_name,
                          SSL_SESSION *session);

/*
 * One step of the handshake: MP_OK (done), MP_AGAIN (wait for s->want) or
 * MP_ERROR (logged at info).
 */
int mp_cosocket_tls_handshake(mp_cosocket_t *s);

/*
 * After a handshake: X509_V_OK, or the verification result; *reason is
 * OpenSSL's text for it. With name, also checks the certificate's host
 * names: returns -1 on a mismatch.
 */
long mp_cosocket_tls_verify(mp_cosocket_t *s, const char *name,
                            const char **reason);

/* ---- keep-alive pool ---------------------------------------------------- */

/*
 * Puts the connection of s into the pool named key (created with room for
 * size connections when it does not exist yet; when full, its oldest idle
 * connection is closed). The idle connection is closed when the peer
 * sends anything or closes, or after timeout ms (0: never). s is closed
 * afterwards (its buffer, which must be empty, stays). MP_OK.
 */
int mp_cosocket_pool_put(mp_cosocket_t *s, const char *key, size_t keylen,
                         mp_msec_t timeout, int size);

/*
 * Takes the most recently idled connection of pool key into the closed s
 * (s->reused is its reuse count, incremented). MP_OK, or MP_DECLINED when
 * the pool has none.
 */
int mp_cosocket_pool_get(mp_cosocket_t *s, const char *key, size_t keylen);

/*
 * opts.backlog: from the first call with a backlog on, pool key counts its
 * connections (in use and idle) and admits at most size of them. Returns
 * MP_OK when s may go on (take an idle connection with
 * mp_cosocket_pool_get, or open one, which is then counted until it is
 * closed), MP_AGAIN when s waits in the backlog (s->wr is armed: cb runs
 * with EV_WRITE once a connection of the pool is closed and s may go on,
 * or with EV_TIMEOUT after timeout ms) or MP_BUSY when backlog sockets
 * already wait. A woken s that is not counted yet (s->counted NULL: an
 * idle connection came back for it) calls this again. mp_cosocket_close()
 * leaves the backlog too.
 */
int mp_cosocket_pool_acquire(mp_cosocket_t *s, const char *key,
                             size_t keylen, int size, int backlog,
                             mp_msec_t timeout, mp_cosocket_cb cb,
                             void *data);

/* Closes every idle connection and frees the pools (worker exit). */
void mp_cosocket_pool_cleanup(void);

#endif /* MP_COSOCKET_H */
