/*
 * http.h: connections and requests (HTTP/1.1 over Debian's http-parser).
 *
 * A connection owns a read buffer (large_header_buffer bytes), a request
 * pool and one embedded request, all reused across the requests of a
 * keep-alive connection and, through a free list, across connections: the
 * hot path allocates nothing once warm. Strings of a request (method, URI,
 * header names and values) point into the read buffer and stay valid until
 * the request is finalized.
 *
 * Who calls what: loop.c accepts and calls mp_http_conn_open(); phases.c
 * runs the handlers; lua/ reads the request through this header and writes
 * the response through mp_http_output()/mp_http_flush()/mp_http_finalize().
 */
#ifndef MP_HTTP_H
#define MP_HTTP_H

#include "core/mp_core.h"
#include "core/conf.h"
#include "core/pool.h"

#include <event2/event.h>
#include <event2/event_struct.h> /* events are embedded in mp_conn_t */
#include <http_parser.h>
#include <netinet/in.h>
#include <sys/uio.h>

typedef struct mp_conn_s mp_conn_t;
typedef struct mp_request_s mp_request_t;
typedef struct mp_body_file_s mp_body_file_t; /* worker/body.h */

typedef struct {
    mp_str_t name;
    mp_str_t value;
} mp_header_t;

/* A growable byte buffer; its storage is reused across requests. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} mp_buf_t;

struct mp_request_s {
    mp_conn_t *conn;
    mp_pool_t *pool;               /* reset when the request ends */
    const mp_conf_server_t *server;
    const mp_conf_location_t *location;

    /* request line */
    mp_str_t method;               /* "GET" */
    int method_id;                 /* enum http_method */
    mp_str_t request_uri;          /* as received: "/a%20b?x=1" */
    mp_str_t uri;                  /* decoded, normalized path: "/a b" */
    mp_str_t args;                 /* after '?', raw; len 0 when absent */
    int http_major;
    int http_minor;

    mp_header_t *headers;          /* in arrival order, names as sent */
    size_t nheaders;
    size_t headers_cap;
    mp_str_t host;                 /* lower-cased, without port; may be 0 */

    /* body (worker/body.h) */
    mp_buf_t body;                 /* the whole body, read before handlers */
    mp_body_file_t *body_file;     /* the body is in this file instead */
    uint64_t body_received;        /* body bytes read from the client */
    int64_t content_length;        /* -1: none */
    void *vars;                    /* ngx.var user variables (lua/api_var.c) */
    struct timespec start;

    /* response */
    int status;                    /* 0 until set; 200 by default */
    mp_header_t *out_headers;      /* set by handlers (ngx.header) */
    size_t nout_headers;
    size_t out_headers_cap;
    uint64_t body_bytes_sent;
    uint64_t bytes_sent;

    mp_phase_t phase;
    void *lua_ctx;                 /* owned by lua/ (coroutine, ctx table) */

    unsigned keepalive:1;          /* the client allows keep-alive */
    unsigned chunked_in:1;         /* Transfer-Encoding: chunked request */
    unsigned head:1;               /* HEAD: no body is sent */
    unsigned expect_continue:1;
    unsigned header_sent:1;        /* headers are fixed (output began) */
    unsigned header_flushed:1;     /* headers were written to the socket */
    unsigned chunked_out:1;        /* response uses chunked encoding */
    unsigned eof:1;                /* the response body is complete */
    unsigned finalized:1;
    unsigned no_default_type:1;    /* the handler cleared Content-Type */
    unsigned internal:1;           /* reached through ngx.exec */
    unsigned header_filtered:1;    /* the header filter has run */
    unsigned body_filter_done:1;   /* the body filter ended the body */
    unsigned redirects:4;          /* internal redirects so far */
};

/* Per-connection state; embedded request, events and buffers. */
struct mp_conn_s {
    int fd;                        /* -1 once closed */
    const mp_conf_listen_t *listen;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char peer_text[INET6_ADDRSTRLEN];  /* "127.0.0.1" */
    uint16_t peer_port;

    struct event ev_read;          /* armed for the connection's life */
    struct event ev_write;         /* armed only while a write would block */
    struct event ev_timer;         /* header, body, keep-alive, send, linger */
    mp_msec_t deadline;            /* when the current timeout expires; 0: none */
    mp_msec_t timer_at;            /* when ev_timer fires, if timer_armed */
    unsigned timer_armed:1;

    mp_buf_t in;                   /* read buffer, large_header_buffer */
    size_t in_pos;                 /* first byte not yet parsed */
    mp_buf_t pending;              /* response body produced, not framed */
    mp_buf_t out;                  /* framed bytes to send */
    size_t out_sent;
    mp_buf_t head;                 /* status line + headers (fast path) */
    size_t head_sent;

    http_parser parser;
    int parse_state;               /* http.c's PARSE_* */
    int error_status;              /* set by parser callbacks on rejection */
    mp_request_t r;
    mp_pool_t *pool;
    uint64_t requests;             /* served on this connection */

    unsigned request_done:1;       /* parser reached message end */
    unsigned closing:1;            /* close after this response */
    unsigned writing:1;            /* a writev is pending on ev_write */
    unsigned in_handler:1;         /* a request is in flight */
    unsigned lingering:1;          /* draining input before close */
    unsigned nodelay:1;            /* TCP_NODELAY is set */
    unsigned peer_closed:1;
    unsigned read_ready:1;         /* the socket may hold unread bytes */
    unsigned rdhup:1;              /* the peer shut down its side */
    unsigned broken:1;             /* a write failed */
    unsigned send_continue:1;      /* owe "100 Continue" */
    unsigned log_pending:1;        /* the log handler is still waiting */
    unsigned io_slow:1;            /* I/O leaves the inline path (io.h) */

    struct mp_tls_conn_s *tls;     /* worker/tls.c's state; NULL: plain */

    mp_conn_t *prev;               /* list of open connections */
    mp_conn_t *next;
    mp_conn_t *next_free;
};

/* Per-worker set-up from the config (header size limit). */
void mp_http_init(const mp_conf_t *conf);

/* Takes ownership of an accepted fd; never fails (closes fd on error). */
void mp_http_conn_open(int fd, const mp_conf_listen_t *listen,
                       const struct sockaddr *peer, socklen_t peer_len);

/* Number of open connections of this worker. */
size_t mp_http_active_connections(void);

/*
 * Stops reading new requests on every connection: idle ones are closed now,
 * busy ones after their response (graceful stop).
 */
void mp_http_shutdown(void);

/*
 * Appends len bytes to the response body. Before the first flush the body
 * is buffered whole and sent with Content-Length; after it, each flush sends
 * a chunk. Returns MP_OK, or MP_ERROR once the connection is gone.
 */
int mp_http_output(mp_request_t *r, const char *data, size_t len);

/* Appends to the response body past the filters (body filter output). */
int mp_http_output_raw(mp_request_t *r, const char *data, size_t len);

/* Fixes status and headers now and runs the header filter (ngx.send_headers). */
int mp_http_send_header(mp_request_t *r);

/*
 * Ends the response body now (ngx.eof): the rest is sent while the handler
 * may go on running; mp_http_finalize() still marks the request's end.
 */
void mp_http_eof(mp_request_t *r);

/* Sends the status line, headers and buffered body now (ngx.flush). */
int mp_http_flush(mp_request_t *r);

/*
 * The content is complete: sends whatever is left (with Content-Length if
 * nothing was flushed yet), then the connection reads the next request.
 */
void mp_http_finalize(mp_request_t *r, int status);

/* Answers status with nginx's error page body and finalizes. */
void mp_http_send_error_page(mp_request_t *r, int status);

/* The nginx-style HTML page for an error status into buf; its length. */
size_t mp_http_error_page(int status, char *buf, size_t size);

/*
 * Response headers (copied into the request pool). set replaces every
 * header of that name (case-insensitive), add appends one more, clear
 * removes all of that name.
 */
mp_header_t *mp_http_set_out_header(mp_request_t *r, const char *name,
                                    size_t nlen, const char *value,
                                    size_t vlen);
mp_header_t *mp_http_add_out_header(mp_request_t *r, const char *name,
                                    size_t nlen, const char *value,
                                    size_t vlen);
void mp_http_clear_out_header(mp_request_t *r, const char *name,
                              size_t nlen);

/*
 * Ends a request whose handler failed: a 500 if nothing was sent yet, else
 * the connection is closed without completing the response.
 */
void mp_http_abort(mp_request_t *r);

/* The log phase's handler finished after waiting: close or go on. */
void mp_http_log_done(mp_request_t *r);

/* Ends the request by closing the connection, sending nothing more. */
void mp_http_terminate(mp_request_t *r);

/*
 * Makes error log lines name r's client and request line (NULL: none);
 * lua/ sets it around each resume of a request's thread.
 */
void mp_http_log_context(mp_request_t *r);

/* Case-insensitive lookup of a request header; NULL when absent. */
const mp_str_t *mp_http_header_in(const mp_request_t *r, const char *name,
                                  size_t len);

/* The reason phrase of a status ("Not Found"); "" for unknown codes. */
const char *mp_http_status_text(int status);

/* The local port the connection arrived on. */
int mp_http_server_port(const mp_conn_t *c);

#endif /* MP_HTTP_H */
