/*
 * tls.h: HTTPS listeners on OpenSSL 3.
 *
 * The master builds one SSL_CTX per server with tls {certificate, key}
 * right after loading a config (mp_tls_conf_init): a bad path or a key
 * that does not match its certificate is then a config error, caught by
 * "moonpool -t" as well. Building the contexts before fork also gives
 * every worker of a generation the same session ticket keys, so a client
 * resumes its session whichever worker accepts it next, and it reads the
 * key files with the master's privileges. The contexts are freed by a
 * cleanup on conf->pool, with the config.
 *
 * worker/http.c hands a connection accepted on a TLS address to
 * mp_tls_accept(): the handshake runs on its own one-shot event, driven by
 * whichever readiness OpenSSL asks for, then http.c's callback starts HTTP
 * parsing. Reads and writes then go through worker/io.h, which calls
 * mp_tls_read() / mp_tls_writev() for TLS connections only.
 *
 * Every context: TLS 1.2 and 1.3 only, no renegotiation, a server session
 * cache plus session tickets, ALPN "http/1.1" (a client offering only other
 * protocols gets a no_application_protocol alert, as from nginx), SNI
 * choosing among the servers sharing the listening address with the same
 * rules as Host (worker/location.h); an unknown name gets the address's
 * default server.
 *
 * Not thread-safe; a worker is single-threaded.
 */
#ifndef MP_TLS_H
#define MP_TLS_H

#include "core/mp_core.h"
#include "core/conf.h"
#include "worker/http.h"

#include <sys/types.h>
#include <sys/uio.h>

/* What a failed mp_tls_conf_init() is about, for the error position. */
typedef enum {
    MP_TLS_AT_SERVER = 0,
    MP_TLS_AT_CERTIFICATE,
    MP_TLS_AT_KEY
} mp_tls_at_t;

/*
 * Builds the SSL_CTX of every server of conf that has tls (none: a no-op)
 * and registers their cleanup on conf->pool. On error returns MP_ERROR,
 * writes a message without position into err[0..errlen) (e.g. "key
 * "/x/k.pem" does not match certificate "/x/c.pem""), and sets *srv and
 * *at to what the message is about, so that the caller can add the config
 * position (master/tls_check.c). Master only, before fork.
 */
int mp_tls_conf_init(mp_conf_t *conf, char *err, size_t errlen,
                     const mp_conf_server_t **srv, mp_tls_at_t *at);

/* True when connections on ls speak TLS (its servers have tls). */
static inline int
mp_tls_listen_on(const mp_conf_listen_t *ls)
{
    return ls->servers[0]->tls_certificate != NULL;
}

/*
 * Called when a handshake ends. rc == MP_OK: c->tls is ready and HTTP may
 * start. rc == MP_ERROR: the handshake failed or the client sent no TLS
 * (already logged at info, and answered with nginx's 400 page when it was
 * plain HTTP); the callback closes the connection.
 */
typedef void (*mp_tls_done_cb)(mp_conn_t *c, int rc);

/*
 * Starts the server side of a handshake on c (accepted on a TLS address,
 * mp_worker_conf's contexts). Sets c->tls; done runs once, from this call
 * or from a later event. The caller keeps its own timeout armed
 * (client_header_timeout) and calls mp_tls_conn_close() if it fires.
 */
void mp_tls_accept(mp_conn_t *c, mp_tls_done_cb done);

/*
 * Ends c's TLS state before the caller closes the fd: a best-effort
 * close_notify when the session is sound, then frees it and sets c->tls
 * to NULL. No-op when c->tls is NULL.
 */
void mp_tls_conn_close(mp_conn_t *c);

/*
 * Like read(2) and writev(2) over the TLS session of c: a count, 0 at the
 * end of the stream (close_notify or EOF), or -1 with errno EAGAIN (wait
 * for readiness), EPROTO (a TLS error, logged at info) or the socket's
 * errno. mp_tls_read() fills buf as far as the socket allows, so a short
 * count means the socket is drained (edge-triggered reads rely on that).
 * mp_tls_writev() may be called again after EAGAIN with the same bytes at
 * the same position of the iovecs, possibly followed by more.
 */
ssize_t mp_tls_read(mp_conn_t *c, char *buf, size_t n);
ssize_t mp_tls_writev(mp_conn_t *c, const struct iovec *iov, int cnt);

/*
 * True when a read must be retried before waiting for readiness: the
 * previous mp_tls_read() returned data and then met the end of the stream
 * or an error, which the next call reports.
 */
int mp_tls_read_pending(const mp_conn_t *c);

/* "TLSv1.3", "TLSv1.2", or NULL for a plain connection ($ssl_protocol). */
const char *mp_tls_protocol(const mp_conn_t *c);

/* The SNI name the client sent, or NULL ($ssl_server_name). */
const char *mp_tls_server_name(const mp_conn_t *c);

/* 1 when the session was resumed ($ssl_session_reused "r"), else 0. */
int mp_tls_session_reused(const mp_conn_t *c);

#endif /* MP_TLS_H */
