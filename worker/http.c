/*
 * http.c: the connection and request life cycle around Debian's http-parser.
 *
 * A connection reads into one buffer of large_header_buffer bytes. The
 * parser is paused at the end of each message so pipelined requests are
 * answered strictly in order; strings of the current request point into the
 * buffer, which is compacted only between requests. The body is copied into
 * a per-connection buffer as it arrives, so body bytes never hold header
 * space.
 *
 * The response is buffered: handlers append to c->pending; a response that
 * is complete before anything was flushed goes out as one writev of the
 * header and the body with Content-Length. After a flush (ngx.flush) the
 * rest is framed as chunks. Connections, their buffers and pools are kept on
 * a free list, so the hot path allocates nothing once warm.
 *
 * Invariant: at most one request per connection is in flight; while it is,
 * the read event stays armed (no epoll_ctl churn) and only reads ahead.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "core/time.h"
#include "worker/http.h"
#include "worker/io.h"
#include "worker/loop.h"
#include "worker/phases.h"
#include "worker/stats.h"
#include "worker/accesslog.h"
#include "worker/tls.h"
#include "worker/body.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#define MP_HTTP_HEADERS_INIT 32
#define MP_HTTP_LINGER_MSEC 2000
/* How long an idle keep-alive connection stays open once a graceful stop
 * began: longer than a typical client's pause between two requests. */
#define MP_HTTP_SHUTDOWN_GRACE_MSEC 2000
#define MP_HTTP_OUT_KEEP (64 * 1024) /* larger buffers are freed after use */
#define MP_HTTP_PIPELINE_DEPTH 8    /* pipelined requests served recursively */

static mp_conn_t *free_conns;
static size_t nactive;
static mp_conn_t *conns_head; /* all open connections, for shutdown */
static int shutting_down;

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_handshake(mp_conn_t *c, int rc);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timeout(evutil_socket_t fd, short what, void *arg);
static void process_input(mp_conn_t *c);
static void send_error(mp_conn_t *c, int status);
static void start_write(mp_conn_t *c);
static void after_response(mp_conn_t *c);
static void finish_response(mp_conn_t *c);
static int conn_idle(const mp_conn_t *c);

static int on_message_begin(http_parser *p);
static int on_url(http_parser *p, const char *at, size_t len);
static int on_header_field(http_parser *p, const char *at, size_t len);
static int on_header_value(http_parser *p, const char *at, size_t len);
static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t len);
static int on_message_complete(http_parser *p);

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Where the parser was when the header buffer ran out: picks 414 vs 431. */
enum { PARSE_IDLE, PARSE_URL, PARSE_FIELD, PARSE_VALUE, PARSE_BODY };


/* ---- buffers ------------------------------------------------------------ */

static void
buf_reserve(mp_buf_t *b, size_t more)
{
    size_t cap;

    if (b->len + more <= b->cap) {
        return;
    }
    cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more) {
        cap *= 2;
    }
    b->data = mp_realloc(b->data, cap);
    b->cap = cap;
}


static void
buf_append(mp_buf_t *b, const char *data, size_t len)
{
    if (len == 0) {
        return; /* data and b->data may be NULL: memcpy must not see them */
    }
    buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}


/* Keeps a buffer that grew for one big response from pinning memory. */
static void
buf_trim(mp_buf_t *b)
{
    b->len = 0;
    if (b->cap > MP_HTTP_OUT_KEEP) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}


/* ---- status lines --------------------------------------------------------- */

typedef struct {
    int status;
    const char *text;
} status_text_t;

static const status_text_t status_texts[] = {
    { 100, "Continue" }, { 101, "Switching Protocols" },
    { 200, "OK" }, { 201, "Created" }, { 202, "Accepted" },
    { 203, "Non-Authoritative Information" }, { 204, "No Content" },
    { 205, "Reset Content" }, { 206, "Partial Content" },
    { 300, "Multiple Choices" }, { 301, "Moved Permanently" },
    { 302, "Moved Temporarily" }, { 303, "See Other" },
    { 304, "Not Modified" }, { 307, "Temporary Redirect" },
    { 308, "Permanent Redirect" }, { 400, "Bad Request" },
    { 401, "Unauthorized" }, { 402, "Payment Required" },
    { 403, "Forbidden" }, { 404, "Not Found" },
    { 405, "Not Allowed" }, { 406, "Not Acceptable" },
    { 408, "Request Time-out" }, { 409, "Conflict" }, { 410, "Gone" },
    { 411, "Length Required" }, { 412, "Precondition Failed" },
    { 413, "Request Entity Too Large" }, { 414, "Request-URI Too Large" },
    { 415, "Unsupported Media Type" },
    { 416, "Requested Range Not Satisfiable" },
    { 429, "Too Many Requests" },
    { 431, "Request Header Fields Too Large" },
    { 500, "Internal Server Error" }, { 501, "Not Implemented" },
    { 502, "Bad Gateway" }, { 503, "Service Temporarily Unavailable" },
    { 504, "Gateway Time-out" }, { 505, "HTTP Version Not Supported" },
    { 507, "Insufficient Storage" },
};


const char *
mp_http_status_text(int status)
{
    size_t i;

    for (i = 0; i < mp_nelems(status_texts); i++) {
        if (status_texts[i].status == status) {
            return status_texts[i].text;
        }
    }
    return "";
}


/* ---- request helpers --------------------------------------------------- */

const mp_str_t *
mp_http_header_in(const mp_request_t *r, const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < r->nheaders; i++) {
        const mp_header_t *h = &r->headers[i];

        if (h->name.len == len && strncasecmp(h->name.data, name, len) == 0) {
            return &h->value;
        }
    }
    return NULL;
}


int
mp_http_server_port(const mp_conn_t *c)
{
    const struct sockaddr *sa = (const struct sockaddr *) &c->listen->sa;

    if (sa->sa_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *) sa)->sin6_port);
    }
    return ntohs(((const struct sockaddr_in *) sa)->sin_port);
}


void
mp_http_init(const mp_conf_t *conf)
{
    /* the parser counts request line + headers against this (process-wide) */
    http_parser_set_max_header_size((uint32_t) conf->http.large_header_buffer);
}


size_t
mp_http_active_connections(void)
{
    return nactive;
}


static size_t
log_context(void *data, char *buf, size_t size)
{
    mp_request_t *r = data;
    int n;

    if (r->method.len == 0) {
        n = snprintf(buf, size, ", client: %s", r->conn->peer_text);
    } else {
        n = snprintf(buf, size, ", client: %s, request: \"%.*s %.*s HTTP/%d.%d\"",
                     r->conn->peer_text, (int) r->method.len, r->method.data,
                     (int) mp_min(r->request_uri.len, 1024),
                     r->request_uri.data, r->http_major, r->http_minor);
    }
    return n < 0 ? 0 : mp_min((size_t) n, size);
}


/* Extends s with [at, at+len), which follows it in the read buffer. */
static void
extend(mp_str_t *s, const char *at, size_t len)
{
    if (s->data == NULL) {
        s->data = (char *) at;
        s->len = len;
    } else {
        /* pieces of one token are adjacent: the buffer never moves mid-request */
        s->len = (size_t) (at + len - s->data);
    }
}


static int
hex_value(int ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    return -1;
}


/*
 * Decodes %XX and removes dot segments and repeated slashes, like nginx's
 * $uri. Returns MP_ERROR for a path that escapes the root or is not
 * absolute (400).
 */
static int
normalize_uri(mp_request_t *r, const char *path, size_t len)
{
    char *out = mp_pool_nalloc(r->pool, len + 1);
    size_t i, o = 0;
    int hi, lo;

    if (len == 0 || path[0] != '/') {
        return MP_ERROR;
    }
    for (i = 0; i < len; i++) {
        char ch = path[i];

        if (ch == '%' && i + 2 < len + 0 && (hi = hex_value(path[i + 1])) >= 0
            && (lo = hex_value(path[i + 2])) >= 0) {
            ch = (char) (hi * 16 + lo);
            i += 2;
        }
        if (ch == '\0') {
            return MP_ERROR;
        }
        out[o++] = ch;
        if (ch != '/' && !(ch == '.' && o >= 2 && out[o - 2] == '/')
            && !(ch == '.' && o >= 3 && out[o - 2] == '.' && out[o - 3] == '/'))
        {
            continue;
        }
        if (ch != '/') {
            continue;
        }
        /* a segment just ended at out[o-1] == '/' */
        if (o >= 2 && out[o - 2] == '/') {
            o--; /* "//" -> "/" */
        } else if (o >= 3 && out[o - 2] == '.' && out[o - 3] == '/') {
            o -= 2; /* "/./" -> "/" */
        } else if (o >= 4 && out[o - 2] == '.' && out[o - 3] == '.'
                   && out[o - 4] == '/') {
            if (o == 4) {
                return MP_ERROR; /* "/../" escapes the root */
            }
            o -= 4;
            while (out[o - 1] != '/') {
                o--;
            }
        }
    }
    /* a trailing "/." or "/.." */
    if (o >= 2 && out[o - 1] == '.' && out[o - 2] == '/') {
        o--;
    } else if (o >= 3 && out[o - 1] == '.' && out[o - 2] == '.'
               && out[o - 3] == '/') {
        if (o == 3) {
            return MP_ERROR;
        }
        o -= 3;
        while (out[o - 1] != '/') {
            o--;
        }
    }
    out[o] = '\0';
    r->uri.data = out;
    r->uri.len = o;
    return MP_OK;
}


static int
split_uri(mp_request_t *r)
{
    const char *u = r->request_uri.data;
    size_t len = r->request_uri.len;
    const char *q = memchr(u, '?', len);
    const char *path = u;
    size_t plen = q ? (size_t) (q - u) : len;
    const char *slash;

    if (q != NULL) {
        r->args.data = (char *) q + 1;
        r->args.len = len - plen - 1;
    }
    /* absolute-form "http://host/path": the path starts at the third '/' */
    if (plen > 0 && path[0] != '/') {
        const char *scheme = memchr(path, ':', plen);

        if (scheme == NULL || (size_t) (scheme - path) + 3 > plen
            || scheme[1] != '/' || scheme[2] != '/') {
            return MP_ERROR;
        }
        slash = memchr(scheme + 3, '/', plen - (size_t) (scheme + 3 - path));
        if (slash == NULL) {
            return normalize_uri(r, "/", 1);
        }
        plen -= (size_t) (slash - path);
        path = slash;
    }
    return normalize_uri(r, path, plen);
}


static void
set_host(mp_request_t *r, const mp_str_t *v)
{
    char *h = mp_pool_nalloc(r->pool, v->len + 1);
    size_t i, n = v->len;

    /* strip the port, but not inside an IPv6 literal */
    for (i = n; i > 0; i--) {
        if (v->data[i - 1] == ':') {
            n = i - 1;
            break;
        }
        if (v->data[i - 1] == ']') {
            break;
        }
    }
    for (i = 0; i < n; i++) {
        h[i] = (char) ((v->data[i] >= 'A' && v->data[i] <= 'Z')
                           ? v->data[i] | 0x20 : v->data[i]);
    }
    if (n > 0 && h[n - 1] == '.') {
        n--;
    }
    h[n] = '\0';
    r->host.data = h;
    r->host.len = n;
}


/* ---- parser callbacks ----------------------------------------------------- */

static mp_conn_t *
parser_conn(http_parser *p)
{
    return mp_container_of(p, mp_conn_t, parser);
}


static int
on_message_begin(http_parser *p)
{
    mp_conn_t *c = parser_conn(p);

    c->parse_state = PARSE_URL;
    return 0;
}


static int
on_url(http_parser *p, const char *at, size_t len)
{
    extend(&parser_conn(p)->r.request_uri, at, len);
    return 0;
}


static int
on_header_field(http_parser *p, const char *at, size_t len)
{
    mp_conn_t *c = parser_conn(p);
    mp_request_t *r = &c->r;

    if (c->parse_state != PARSE_FIELD) {
        if (r->nheaders == r->headers_cap) {
            size_t cap = r->headers_cap ? r->headers_cap * 2
                                        : MP_HTTP_HEADERS_INIT;
            mp_header_t *h = mp_pool_alloc(r->pool, cap * sizeof(*h));

            if (r->nheaders) {
                memcpy(h, r->headers, r->nheaders * sizeof(*h));
            }
            r->headers = h;
            r->headers_cap = cap;
        }
        memset(&r->headers[r->nheaders++], 0, sizeof(mp_header_t));
        c->parse_state = PARSE_FIELD;
    }
    extend(&r->headers[r->nheaders - 1].name, at, len);
    return 0;
}


static int
on_header_value(http_parser *p, const char *at, size_t len)
{
    mp_conn_t *c = parser_conn(p);
    mp_request_t *r = &c->r;
    const char *q = at;

    /*
     * obs-fold: http-parser joins a line that starts with SP or HT to the
     * value above it; nginx answers 400, and a fold two hops read apart
     * is a request-smuggling vector. The head stays in c->in while it is
     * parsed, so the bytes before a continuation are there to look at.
     */
    while (q > c->in.data && (q[-1] == ' ' || q[-1] == '\t')) {
        q--;
    }
    if (q > c->in.data && q[-1] == '\n') {
        c->error_status = 400;
        return -1;
    }
    c->parse_state = PARSE_VALUE;
    extend(&r->headers[r->nheaders - 1].value, at, len);
    return 0;
}


static int
token_eq(const mp_str_t *s, const char *lit)
{
    size_t n = strlen(lit);

    return s->len == n && strncasecmp(s->data, lit, n) == 0;
}


/*
 * Drops headers whose names hold '_', as nginx does by default
 * (ignore_invalid_headers): "X_Forwarded_For" must not pass for
 * "X-Forwarded-For" once the Lua side maps '_' to '-'.
 */
static void
drop_invalid_headers(mp_request_t *r)
{
    size_t i, o = 0;

    for (i = 0; i < r->nheaders; i++) {
        mp_header_t *h = &r->headers[i];

        if (memchr(h->name.data, '_', h->name.len) != NULL) {
            mp_log_error(MP_LOG_INFO, 0, "client sent invalid header line: "
                         "\"%.*s\"", (int) mp_min(h->name.len, 256),
                         h->name.data);
            continue;
        }
        r->headers[o++] = *h;
    }
    r->nheaders = o;
}


/* nginx's rules: no spaces, slashes, control bytes or ".." in a Host. */
static int
valid_host(const mp_str_t *v)
{
    size_t i;

    for (i = 0; i < v->len; i++) {
        unsigned char ch = (unsigned char) v->data[i];

        if (ch <= ' ' || ch == '/' || ch == '\\' || ch == 0x7f) {
            return 0;
        }
        if (ch == '.' && i > 0 && v->data[i - 1] == '.') {
            return 0;
        }
    }
    return 1;
}


/* Checks framing headers; returns 0 or the status to answer with. */
static int
check_framing(mp_request_t *r)
{
    size_t i;
    int ncl = 0;

    for (i = 0; i < r->nheaders; i++) {
        mp_header_t *h = &r->headers[i];

        /* dispatch on length first: most headers are none of these */
        switch (h->name.len) {
        case 4:
            if (token_eq(&h->name, "Host")) {
                if (r->host.data != NULL || !valid_host(&h->value)) {
                    return 400; /* two Host headers, or a malformed one */
                }
                set_host(r, &h->value);
            }
            break;
        case 6:
            if (token_eq(&h->name, "Expect")) {
                if (!token_eq(&h->value, "100-continue")) {
                    return 417;
                }
                r->expect_continue = 1;
            }
            break;
        case 14:
            if (token_eq(&h->name, "Content-Length")) {
                ncl++;
            }
            break;
        case 17:
            if (token_eq(&h->name, "Transfer-Encoding")) {
                if (!token_eq(&h->value, "chunked")) {
                    return 501;
                }
                if (r->http_minor == 0) {
                    return 400; /* no chunked framing in HTTP/1.0 */
                }
                r->chunked_in = 1;
            }
            break;
        default:
            break;
        }
    }
    /* Content-Length with chunked, or twice: request smuggling */
    if (ncl > 1 || (ncl && r->chunked_in)) {
        return 400;
    }
    if (r->http_major == 1 && r->http_minor >= 1 && r->host.data == NULL) {
        return 400;
    }
    return 0;
}


static int
on_headers_complete(http_parser *p)
{
    mp_conn_t *c = parser_conn(p);
    mp_request_t *r = &c->r;
    const mp_conf_t *conf = mp_worker_conf;
    int status;

    c->parse_state = PARSE_BODY;
    r->method.data = (char *) http_method_str(p->method);
    r->method.len = strlen(r->method.data);
    r->method_id = p->method;
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    r->keepalive = http_should_keep_alive(p) && !shutting_down;
    r->head = p->method == HTTP_HEAD;
    r->content_length = (p->flags & F_CONTENTLENGTH)
                            ? (int64_t) p->content_length : -1;

    if (r->http_major != 1) {
        c->error_status = 505;
        return -1;
    }
    drop_invalid_headers(r);
    status = check_framing(r);
    if (status == 0 && split_uri(r) != MP_OK) {
        status = 400;
    }
    if (status == 0 && r->content_length > 0
        && (size_t) r->content_length > conf->http.client_max_body_size
        && conf->http.client_max_body_size != 0) {
        status = 413;
    }
    if (status != 0) {
        c->error_status = status;
        return -1;
    }
    if (r->expect_continue && (r->content_length > 0 || r->chunked_in)) {
        c->send_continue = 1;
    }
    return 0;
}


static int
on_body(http_parser *p, const char *at, size_t len)
{
    mp_conn_t *c = parser_conn(p);
    int status = mp_body_append(&c->r, at, len);

    if (status != 0) {
        c->error_status = status;
        return -1;
    }
    return 0;
}


static int
on_message_complete(http_parser *p)
{
    mp_conn_t *c = parser_conn(p);

    c->request_done = 1;
    c->parse_state = PARSE_IDLE;
    http_parser_pause(p, 1);
    return 0;
}


/* ---- connection life cycle ---------------------------------------------- */

static void
reset_request(mp_conn_t *c)
{
    mp_request_t *r = &c->r;
    mp_buf_t body = r->body;

    mp_pool_reset(c->pool);
    memset(r, 0, sizeof(*r));
    body.len = 0;
    r->body = body;
    r->conn = c;
    r->pool = c->pool;
    r->content_length = -1;
    c->request_done = 0;
    c->parse_state = PARSE_IDLE;
    c->error_status = 0;
    c->send_continue = 0;
    c->pending.len = 0;
    c->out.len = 0;
    c->out_sent = 0;
    c->head.len = 0;
}


static void
arm_read(mp_conn_t *c)
{
    if (!event_pending(&c->ev_read, EV_READ, NULL)) {
        event_add(&c->ev_read, NULL);
    }
}


/*
 * Timeouts are deadlines checked lazily: moving a deadline later (the usual
 * case, once per request) only stores it; the timer event is re-added when
 * it fires early or when the new deadline is sooner than the armed one.
 * That keeps libevent's timer heap out of the per-request path.
 */
static void
arm_timer(mp_conn_t *c, mp_msec_t msec)
{
    mp_msec_t at = mp_time_msec + msec;
    struct timeval tv;

    c->deadline = at;
    if (c->timer_armed && c->timer_at <= at) {
        return;
    }
    tv.tv_sec = (time_t) (msec / 1000);
    tv.tv_usec = (suseconds_t) ((msec % 1000) * 1000);
    event_add(&c->ev_timer, &tv);
    c->timer_armed = 1;
    c->timer_at = at;
}


/* No timeout applies (a handler runs); the armed timer fires harmlessly. */
static void
clear_timer(mp_conn_t *c)
{
    c->deadline = 0;
}


void
mp_http_conn_open(int fd, const mp_conf_listen_t *listen,
                  const struct sockaddr *peer, socklen_t peer_len)
{
    const mp_conf_t *conf = mp_worker_conf;
    mp_conn_t *c = free_conns;

    if (c != NULL) {
        free_conns = c->next_free;
    } else {
        c = mp_calloc(1, sizeof(*c));
        /* headers may use all of large_header_buffer; a little slack keeps
         * room to read a body behind a header that fills it */
        c->in.cap = conf->http.large_header_buffer + 1024;
        c->in.data = mp_alloc(c->in.cap);
        c->pool = mp_pool_create(4096);
    }
    c->fd = fd;
    c->listen = listen;
    memcpy(&c->peer, peer, peer_len);
    c->peer_len = peer_len;
    if (peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *) peer;

        inet_ntop(AF_INET6, &s6->sin6_addr, c->peer_text, sizeof(c->peer_text));
        c->peer_port = ntohs(s6->sin6_port);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *) peer;

        inet_ntop(AF_INET, &s4->sin_addr, c->peer_text, sizeof(c->peer_text));
        c->peer_port = ntohs(s4->sin_port);
    }
    c->in.len = 0;
    c->in_pos = 0;
    c->requests = 0;
    c->closing = 0;
    c->lingering = 0;
    c->writing = 0;
    c->in_handler = 0;
    c->nodelay = 0;
    c->peer_closed = 0;
    /* a recycled connection must not inherit its last life's state */
    c->broken = 0;
    c->read_ready = 0;
    c->rdhup = 0;
    c->log_pending = 0;
    c->send_continue = 0;
    c->request_done = 0;
    http_parser_init(&c->parser, HTTP_REQUEST);
    reset_request(c);

    c->prev = NULL;
    c->next = conns_head;
    if (conns_head != NULL) {
        conns_head->prev = c;
    }
    conns_head = c;
    nactive++;
    if (mp_stats != NULL) {
        mp_stats->conns_open = nactive;
    }

    event_assign(&c->ev_read, mp_worker_base, fd,
                 EV_READ | EV_PERSIST | EV_ET | EV_CLOSED, on_read, c);
    /* edge-triggered like ev_read: libevent keeps one epoll registration
     * per fd, and a level-triggered write event would turn the read side
     * level-triggered too; write_some() writes until EAGAIN, as ET needs */
    event_assign(&c->ev_write, mp_worker_base, fd,
                 EV_WRITE | EV_PERSIST | EV_ET, on_write, c);
    evtimer_assign(&c->ev_timer, mp_worker_base, on_timeout, c);
    arm_timer(c, conf->http.client_header_timeout);
    mp_io_conn_open(c);
    if (mp_tls_listen_on(listen)) {
        /* the handshake counts against client_header_timeout */
        mp_tls_accept(c, on_handshake);
        return;
    }

    /*
     * With deferred accept the request is usually here already: serve it
     * now, and register the socket with epoll only if the connection lives
     * on (keep-alive, or the request is incomplete). A "Connection: close"
     * request then costs accept4, read, writev and close, nothing more.
     */
    on_read(fd, EV_READ, c);
    if (c->fd == fd) {
        arm_read(c);
    }
}


static void
conn_close(mp_conn_t *c)
{
    event_del(&c->ev_read);
    event_del(&c->ev_write);
    event_del(&c->ev_timer);
    c->timer_armed = 0;
    mp_tls_conn_close(c);
    close(c->fd);
    c->fd = -1;
    mp_pool_reset(c->pool);
    buf_trim(&c->out);
    buf_trim(&c->pending);
    buf_trim(&c->r.body);

    if (c->prev) {
        c->prev->next = c->next;
    } else {
        conns_head = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->next_free = free_conns;
    free_conns = c;
    nactive--;
    if (mp_stats != NULL) {
        mp_stats->conns_open = nactive;
    }
    mp_worker_conn_closed();
}


/* A TLS handshake ended: HTTP starts as on a plain connection. */
static void
on_handshake(mp_conn_t *c, int rc)
{
    int fd = c->fd;

    if (rc != MP_OK) {
        conn_close(c);
        return;
    }
    arm_timer(c, mp_worker_conf->http.client_header_timeout);
    on_read(fd, EV_READ, c);
    if (c->fd == fd) {
        arm_read(c);
    }
}


/*
 * Closes after an error response without losing it: a client still sending
 * a body would get a reset (and may lose our response) if we closed with
 * unread data, so we stop writing and drain for a short while first.
 */
static void
conn_linger(mp_conn_t *c)
{
    if (shutdown(c->fd, SHUT_WR) != 0) {
        conn_close(c);
        return;
    }
    c->lingering = 1;
    event_del(&c->ev_write);
    arm_read(c);
    arm_timer(c, MP_HTTP_LINGER_MSEC);
}


static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
    mp_conn_t *c = arg;

    (void) fd;
    (void) what;
    mp_worker_time_update();
    c->timer_armed = 0;
    if (c->deadline == 0) {
        return;
    }
    if (mp_time_msec < c->deadline) {
        arm_timer(c, c->deadline - mp_time_msec);
        return;
    }
    if (shutting_down && conn_idle(c)) {
        /*
         * A request may have arrived in the same loop iteration as the
         * timeout: serve it (with "Connection: close") rather than close
         * the connection under it.
         */
        on_read(c->fd, EV_READ, c);
        if (c->fd < 0 || !conn_idle(c)) {
            return;
        }
    }
    if (c->lingering || c->writing || c->in_handler == 0) {
        if (!c->lingering && c->parse_state != PARSE_IDLE && !c->writing
            && !c->in_handler) {
            mp_log_error(MP_LOG_INFO, 0, "client %s timed out (%s)",
                         c->peer_text,
                         c->parse_state == PARSE_BODY ? "reading body"
                                                      : "reading header");
        }
        conn_close(c);
    }
}


/*
 * Reads what fits in the buffer. The read event is edge-triggered (no
 * re-poll of every socket on each epoll_wait, as with level-triggered),
 * so a read that filled the room means more may be waiting: read_ready
 * remembers to read again once there is room, without an event.
 * Returns MP_ERROR when the connection was closed.
 */
static int
read_input(mp_conn_t *c)
{
    size_t room = c->in.cap - c->in.len;
    ssize_t n;

    if (room == 0) {
        c->read_ready = 1;
        return MP_OK;
    }
    n = mp_io_read(c, c->in.data + c->in.len, room);
    if (n > 0) {
        c->in.len += (size_t) n;
        c->read_ready = (size_t) n == room || mp_io_pending(c) || c->rdhup;
        return MP_OK;
    }
    c->read_ready = 0;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        c->read_ready = errno == EINTR;
        return MP_OK;
    }
    if (n < 0) {
        mp_log_error(MP_LOG_INFO, errno, "read() from %s failed",
                     c->peer_text);
    }
    if (c->in_handler || c->writing) {
        /* finish the response in flight, then close */
        c->peer_closed = 1;
        c->closing = 1;
        return MP_OK;
    }
    conn_close(c);
    return MP_ERROR;
}


static int
conn_busy(const mp_conn_t *c)
{
    return c->in_handler || c->writing || c->lingering || c->fd < 0;
}


/* Parses what is buffered and reads more while the socket has some. */
static void
drive_input(mp_conn_t *c)
{
    for (;;) {
        process_input(c);
        if (conn_busy(c) || !c->read_ready || c->peer_closed) {
            return;
        }
        if (read_input(c) != MP_OK) {
            return;
        }
    }
}


/* Drains a lingering connection until EOF (then closes) or EAGAIN. */
static void
drain_input(mp_conn_t *c)
{
    char drain[4096];
    ssize_t n;
    int i;

    for (i = 0; i < 64; i++) {
        n = mp_io_read(c, drain, sizeof(drain));
        if (n > 0) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        conn_close(c);
        return;
    }
    /* a client still flooding us: come back in the next loop iteration */
    event_active(&c->ev_read, EV_READ, 1);
}


static void
on_read(evutil_socket_t fd, short what, void *arg)
{
    mp_conn_t *c = arg;

    (void) fd;
    mp_worker_time_update();
    if (what & EV_CLOSED) {
        /* EPOLLRDHUP: the peer's FIN may have come in the same edge as
         * its last bytes; read on until read() returns 0 */
        c->rdhup = 1;
    }
    if (c->lingering) {
        drain_input(c);
        return;
    }
    if (read_input(c) != MP_OK) {
        return;
    }
    if (!c->in_handler && !c->writing) {
        drive_input(c);
    }
}


/* Moves the unparsed tail to the front of the buffer between requests. */
static void
compact_input(mp_conn_t *c)
{
    size_t left = c->in.len - c->in_pos;

    if (c->in_pos == 0) {
        return;
    }
    if (left > 0) {
        memmove(c->in.data, c->in.data + c->in_pos, left);
    }
    c->in.len = left;
    c->in_pos = 0;
}


static void
send_continue(mp_conn_t *c)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";

    c->send_continue = 0;
    /*
     * Through the response writer, not one writev: the socket buffer may
     * still hold earlier responses the client has not read, and a short
     * write or EAGAIN must neither lose nor split the line (found by the
     * fault-injection mode, worker/io.h). Input waits while it is written;
     * start_write() resumes reading the body once it is out.
     */
    buf_append(&c->head, line, sizeof(line) - 1);
    c->head_sent = 0;
    start_write(c);
}


static void
start_request(mp_conn_t *c)
{
    mp_request_t *r = &c->r;

    clear_timer(c);
    if (mp_stats != NULL) {
        mp_stats->conns_busy++;
    }
    r->start.tv_sec = mp_time_sec;
    r->start.tv_nsec = (long) (mp_time_msec % 1000) * 1000000;
    c->in_handler = 1;
    mp_http_log_context(r);
    mp_phases_start(r);
    /* a handler that waits gets its context back when it resumes
     * (lua/sched.c); until then lines are not this request's */
    mp_http_log_context(NULL);
}


void
mp_http_log_context(mp_request_t *r)
{
    mp_log_ctx_handler = r != NULL ? log_context : NULL;
    mp_log_ctx_data = r;
}


static void
process_input(mp_conn_t *c)
{
    size_t n, avail;
    enum http_errno err;

    while (!c->in_handler && !c->writing && !c->lingering && c->fd >= 0) {
        avail = c->in.len - c->in_pos;
        if (avail == 0) {
            break;
        }
        if (c->parse_state == PARSE_IDLE && c->r.method.len == 0) {
            compact_input(c);
        }
        n = http_parser_execute(&c->parser, &parser_settings,
                                c->in.data + c->in_pos, c->in.len - c->in_pos);
        c->in_pos += n;
        err = HTTP_PARSER_ERRNO(&c->parser);
        if (err == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            start_request(c);
            return;
        }
        if (err != HPE_OK) {
            int status = c->error_status ? c->error_status : 400;

            if (err == HPE_INVALID_TRANSFER_ENCODING) {
                status = 501;
            } else if (err == HPE_HEADER_OVERFLOW) {
                status = c->parse_state == PARSE_URL ? 414 : 431;
            }
            mp_log_error(MP_LOG_INFO, 0, "client %s sent invalid request "
                         "(%s), answering %d", c->peer_text,
                         http_errno_description(err), status);
            send_error(c, status);
            return;
        }
        if (c->send_continue) {
            send_continue(c);
            if (c->fd < 0) {
                return;
            }
        }
        if (c->parse_state == PARSE_BODY) {
            /* the parser took every byte after the head and on_body copied
             * the body out: reuse that space for the rest of the body */
            mp_str_t head = mp_body_raw_header(&c->r, 1);

            if (head.len > 0) {
                c->in_pos = (size_t) (head.data + head.len - c->in.data);
            }
            c->in.len = c->in_pos;
            arm_timer(c, mp_worker_conf->http.client_body_timeout);
        } else if (c->in.len == c->in.cap) {
            /* the parser's own limit is below the buffer size; this is a
             * second line of defence */
            send_error(c, c->parse_state == PARSE_URL ? 414 : 431);
            return;
        }
        break; /* need more data */
    }
}


/* An idle keep-alive connection: no request in any stage on it. */
static int
conn_idle(const mp_conn_t *c)
{
    return c->fd >= 0 && !c->in_handler && !c->writing && !c->lingering
           && c->parse_state == PARSE_IDLE && c->in.len == c->in_pos;
}


/*
 * Idle keep-alive connections are not closed at once, as nginx does: a
 * client may have sent its next request already, or be about to, and
 * closing under it resets the connection and loses that request. Each one
 * stays open until it has been quiet for MP_HTTP_SHUTDOWN_GRACE_MSEC (or
 * its keep-alive timeout, if sooner); a request arriving meanwhile is
 * answered with "Connection: close" (shutting_down clears keepalive), after
 * which the connection closes. The worker's shutdown_timeout bounds it all.
 */
void
mp_http_shutdown(void)
{
    mp_conn_t *c;
    mp_msec_t left;

    shutting_down = 1;
    for (c = conns_head; c != NULL; c = c->next) {
        if (!conn_idle(c)) {
            c->closing = 1;
            continue;
        }
        left = c->deadline > mp_time_msec ? c->deadline - mp_time_msec : 0;
        if (left == 0 || left > MP_HTTP_SHUTDOWN_GRACE_MSEC) {
            left = MP_HTTP_SHUTDOWN_GRACE_MSEC;
        }
        arm_timer(c, left);
    }
}


/* ---- response ------------------------------------------------------------ */

static char *
put_uint(char *p, uint64_t v)
{
    char tmp[24];
    int i = 0;

    do {
        tmp[i++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);
    while (i) {
        *p++ = tmp[--i];
    }
    return p;
}


static void
put(mp_buf_t *b, const char *s, size_t n)
{
    memcpy(b->data + b->len, s, n);
    b->len += n;
}


#define put_lit(b, s) put((b), (s), sizeof(s) - 1)


/*
 * Writes the status line and headers into b. length >= 0 gives a
 * Content-Length, -1 asks for chunked framing (HTTP/1.1) or close-delimited
 * (HTTP/1.0).
 */
static void
build_header(mp_request_t *r, mp_buf_t *b, int64_t length)
{
    mp_conn_t *c = r->conn;
    const mp_str_t *date = mp_time_http();
    const char *text;
    size_t need = 256 + date->len, i;
    int has_type = 0, has_length = 0;
    char *p;

    for (i = 0; i < r->nout_headers; i++) {
        need += r->out_headers[i].name.len + r->out_headers[i].value.len + 4;
    }
    buf_reserve(b, need);
    if (r->status == 0) {
        r->status = 200;
    }
    text = mp_http_status_text(r->status);
    put_lit(b, "HTTP/1.1 ");
    p = put_uint(b->data + b->len, (uint64_t) r->status);
    b->len = (size_t) (p - b->data);
    b->data[b->len++] = ' ';
    put(b, text, strlen(text));
    put_lit(b, "\r\nServer: moonpool\r\nDate: ");
    put(b, date->data, date->len);
    put_lit(b, "\r\n");
    for (i = 0; i < r->nout_headers; i++) {
        mp_header_t *h = &r->out_headers[i];

        if (h->name.len == 0) {
            continue; /* cleared */
        }
        if (token_eq(&h->name, "Content-Type")) {
            has_type = 1;
        } else if (token_eq(&h->name, "Content-Length")) {
            has_length = 1;
        }
        put(b, h->name.data, h->name.len);
        put_lit(b, ": ");
        put(b, h->value.data, h->value.len);
        put_lit(b, "\r\n");
    }
    if (!has_type && !r->no_default_type && r->status != 204
        && r->status != 304) {
        put_lit(b, "Content-Type: text/plain\r\n");
    }
    if (has_length) {
        /* the handler set Content-Length: its framing, not ours */
    } else if (length >= 0) {
        if (r->status != 204 && r->status != 304) {
            put_lit(b, "Content-Length: ");
            p = put_uint(b->data + b->len, (uint64_t) length);
            b->len = (size_t) (p - b->data);
            put_lit(b, "\r\n");
        }
    } else if (r->http_minor >= 1 && !r->head) {
        put_lit(b, "Transfer-Encoding: chunked\r\n");
        r->chunked_out = 1;
    } else if (!r->head) {
        c->closing = 1; /* HTTP/1.0 body ends at close */
    }
    if (!r->keepalive || c->closing || shutting_down) {
        c->closing = 1;
        put_lit(b, "Connection: close\r\n\r\n");
    } else {
        put_lit(b, "Connection: keep-alive\r\n\r\n");
    }
}


static void
frame_pending(mp_request_t *r)
{
    mp_conn_t *c = r->conn;
    char size[24];
    int n;

    if (c->pending.len == 0 || r->head) {
        c->pending.len = 0;
        return;
    }
    r->body_bytes_sent += c->pending.len;
    if (r->chunked_out) {
        n = snprintf(size, sizeof(size), "%zx\r\n", c->pending.len);
        buf_append(&c->out, size, (size_t) n);
        buf_append(&c->out, c->pending.data, c->pending.len);
        buf_append(&c->out, "\r\n", 2);
    } else {
        buf_append(&c->out, c->pending.data, c->pending.len);
    }
    c->pending.len = 0;
}


/*
 * Fixes the status and headers (what OpenResty calls sending them) and runs
 * the header filter once. A failing header filter ends the connection
 * without a response, as in nginx.
 */
static int
fix_header(mp_request_t *r)
{
    r->header_sent = 1;
    if (r->status == 0) {
        r->status = 200;
    }
    if (r->header_filtered) {
        return MP_OK;
    }
    r->header_filtered = 1;
    if (mp_phases_header_filter(r) != MP_OK) {
        r->conn->broken = 1;
        r->conn->pending.len = 0;
        return MP_ERROR;
    }
    return MP_OK;
}


int
mp_http_output_raw(mp_request_t *r, const char *data, size_t len)
{
    buf_append(&r->conn->pending, data, len);
    return MP_OK;
}


int
mp_http_output(mp_request_t *r, const char *data, size_t len)
{
    mp_conn_t *c = r->conn;

    if (c->fd < 0 || r->eof || c->broken) {
        return MP_ERROR;
    }
    if (!r->header_sent) {
        if (r->http_minor == 0) {
            /* HTTP/1.0 responses are buffered whole (no chunks), so their
             * headers stay open and the filters run at the end */
            buf_append(&c->pending, data, len);
            return MP_OK;
        }
        if (fix_header(r) != MP_OK) {
            return MP_ERROR;
        }
    }
    if (mp_phases_has_body_filter(r)) {
        return mp_phases_body_filter(r, data, len, 0);
    }
    buf_append(&c->pending, data, len);
    return MP_OK;
}


int
mp_http_send_header(mp_request_t *r)
{
    if (r->conn->fd < 0 || r->conn->broken) {
        return MP_ERROR;
    }
    if (r->header_sent || r->http_minor == 0) {
        return MP_OK;
    }
    return fix_header(r);
}


int
mp_http_flush(mp_request_t *r)
{
    mp_conn_t *c = r->conn;

    if (c->fd < 0 || r->eof || c->broken) {
        return MP_ERROR;
    }
    if (!r->header_sent && fix_header(r) != MP_OK) {
        return MP_ERROR;
    }
    if (!r->header_flushed) {
        build_header(r, &c->out, -1);
        r->header_flushed = 1;
        r->header_sent = 1;
    }
    frame_pending(r);
    if (!c->nodelay) {
        int one = 1;

        /* several writes per response: Nagle would delay the later ones */
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->nodelay = 1;
    }
    start_write(c);
    return MP_OK;
}


/* Sends c->out[out_sent..] (and, on the fast path, head + pending). */
static int
write_some(mp_conn_t *c)
{
    struct iovec iov[2];
    int cnt = 0;
    ssize_t n;

    for (;;) {
        cnt = 0;
        if (c->head.len > c->head_sent) {
            iov[cnt].iov_base = c->head.data + c->head_sent;
            iov[cnt++].iov_len = c->head.len - c->head_sent;
        }
        if (c->out.len > c->out_sent) {
            iov[cnt].iov_base = c->out.data + c->out_sent;
            iov[cnt++].iov_len = c->out.len - c->out_sent;
        }
        if (cnt == 0) {
            return MP_OK;
        }
        n = mp_io_writev(c, iov, cnt);
        if (n < 0) {
            if (errno == EAGAIN) {
                return MP_AGAIN;
            }
            if (errno == EINTR) {
                continue;
            }
            mp_log_error(MP_LOG_INFO, errno, "writev() to %s failed",
                         c->peer_text);
            return MP_ERROR;
        }
        c->r.bytes_sent += (uint64_t) n;
        if (c->head.len > c->head_sent) {
            size_t h = mp_min((size_t) n, c->head.len - c->head_sent);

            c->head_sent += h;
            n -= (ssize_t) h;
        }
        c->out_sent += (size_t) n;
    }
}


static void
start_write(mp_conn_t *c)
{
    int rc = write_some(c);
    int was_writing = c->writing;

    if (rc == MP_OK) {
        if (c->writing) {
            c->writing = 0;
            event_del(&c->ev_write);
            clear_timer(c);
        }
        c->out.len = c->out_sent = 0;
        c->head.len = c->head_sent = 0;
        if (c->r.eof && !c->in_handler) {
            after_response(c);
        } else if (was_writing && !c->in_handler && !c->r.eof) {
            /* a "100 Continue" went out late (send_continue): read on */
            arm_timer(c, mp_worker_conf->http.client_body_timeout);
            drive_input(c);
        }
        return;
    }
    if (rc == MP_ERROR) {
        c->closing = 1;
        c->broken = 1;
        c->out.len = c->out_sent = 0;
        c->head.len = c->head_sent = 0;
        if (c->writing) {
            c->writing = 0;
            event_del(&c->ev_write);
        }
        if (c->r.eof && !c->in_handler) {
            after_response(c);
        } else if (!c->in_handler && !c->r.eof) {
            conn_close(c); /* "100 Continue" failed: no request to finish */
        }
        return;
    }
    if (!c->writing) {
        c->writing = 1;
        event_add(&c->ev_write, NULL);
        arm_timer(c, mp_worker_conf->http.send_timeout);
    }
}


static void
on_write(evutil_socket_t fd, short what, void *arg)
{
    mp_conn_t *c = arg;

    (void) fd;
    (void) what;
    mp_worker_time_update();
    arm_timer(c, mp_worker_conf->http.send_timeout);
    start_write(c);
}


void
mp_http_abort(mp_request_t *r)
{
    mp_conn_t *c = r->conn;

    c->pending.len = 0;
    c->closing = 1;
    if (!r->header_flushed) {
        /* nothing went out yet: a clean 500 instead */
        r->header_sent = 0;
        r->nout_headers = 0;
        mp_http_send_error_page(r, 500);
        return;
    }
    /* no last chunk: the client sees the response is cut short */
    r->chunked_out = 0;
    c->peer_closed = 1; /* close at once, no lingering */
    mp_http_finalize(r, 0);
}


/* Runs the filters' end of the response: the last header/body filter calls. */
static int
filter_last(mp_request_t *r, int status)
{
    mp_conn_t *c = r->conn;
    mp_buf_t whole;
    int rc;

    if (!r->header_sent) {
        if (status > 0) {
            r->status = status;
        }
        if (fix_header(r) != MP_OK) {
            return MP_ERROR;
        }
    }
    if (!mp_phases_has_body_filter(r)) {
        return MP_OK;
    }
    if (r->http_minor > 0 || c->pending.len == 0) {
        return mp_phases_body_filter(r, "", 0, 1);
    }
    /* HTTP/1.0: the whole buffered body goes through the filter at once;
     * c->out is empty until the header is flushed, so lend it its storage */
    whole = c->pending;
    c->pending = c->out;
    c->pending.len = 0;
    rc = mp_phases_body_filter(r, whole.data, whole.len, 1);
    whole.len = 0;
    c->out = whole;
    return rc;
}


/* Sends what is left of the response; r->eof from here on. */
static void
send_last(mp_request_t *r, int status)
{
    mp_conn_t *c = r->conn;

    r->eof = 1;
    if (c->fd < 0) {
        return;
    }
    if (!c->broken && filter_last(r, status) != MP_OK) {
        c->broken = 1;
    }
    if (c->broken) {
        if (!c->in_handler) {
            after_response(c);
        }
        return;
    }
    if (!r->header_flushed) {
        /* the fast path: one writev of header and body, no copy */
        size_t len = c->pending.len;

        build_header(r, &c->head, (int64_t) len);
        c->head_sent = 0;
        r->header_flushed = 1;
        if (!r->head) {
            mp_buf_t tmp = c->out;

            /* swap: pending becomes the output, keeping both buffers */
            c->out = c->pending;
            c->pending = tmp;
            c->pending.len = 0;
            c->out_sent = 0;
            r->body_bytes_sent = len;
        } else {
            c->pending.len = 0;
        }
    } else {
        frame_pending(r);
        if (r->chunked_out) {
            buf_append(&c->out, "0\r\n\r\n", 5);
        }
    }
    start_write(c);
}


void
mp_http_terminate(mp_request_t *r)
{
    mp_conn_t *c = r->conn;

    c->broken = 1; /* nothing more is written; the connection closes */
    c->closing = 1;
    c->pending.len = 0;
    mp_http_finalize(r, 0);
}


void
mp_http_eof(mp_request_t *r)
{
    if (!r->eof) {
        send_last(r, 0);
    }
}


void
mp_http_finalize(mp_request_t *r, int status)
{
    mp_conn_t *c = r->conn;

    if (r->finalized) {
        return;
    }
    r->finalized = 1;
    c->in_handler = 0;
    mp_log_ctx_handler = NULL;
    if (!r->eof) {
        send_last(r, status);
        return;
    }
    /* ngx.eof sent everything already; the handler has now returned */
    if (c->fd >= 0 && !c->writing) {
        after_response(c);
    }
}


static void
after_response(mp_conn_t *c)
{
    mp_request_t *r = &c->r;

    mp_accesslog_write(r);
    if (mp_stats != NULL) {
        mp_stats->conns_busy--;
        mp_stats_request(r->status, mp_worker_conf, r->location,
                         mp_time_msec - ((mp_msec_t) r->start.tv_sec * 1000
                                         + r->start.tv_nsec / 1000000),
                         c->in_pos + r->body.len, r->bytes_sent);
    }
    c->requests++;
    if (mp_phases_log(r) == MP_AGAIN) {
        /* the log handler waits (a cosocket shipping the log line): the
         * connection stays as it is until mp_http_log_done() */
        c->in_handler = 1;
        c->log_pending = 1;
        clear_timer(c);
        return;
    }
    finish_response(c);
}


void
mp_http_log_done(mp_request_t *r)
{
    mp_conn_t *c = r->conn;

    if (!c->log_pending) {
        return;
    }
    c->log_pending = 0;
    c->in_handler = 0;
    if (c->fd >= 0) {
        finish_response(c);
    }
}


/* After the response and the log phase: close, or the next request. */
static void
finish_response(mp_conn_t *c)
{
    static int depth;
    mp_request_t *r = &c->r;

    if (c->closing || c->broken || !r->keepalive) {
        /* linger only when the client may still be sending: closing with
         * unread input would reset the connection under our response */
        if (c->broken || c->peer_closed
            || (c->request_done && c->in_pos == c->in.len)) {
            conn_close(c);
        } else {
            conn_linger(c);
        }
        return;
    }
    if (!c->request_done) {
        /* answered before the body was read (e.g. ngx.exit early) */
        conn_linger(c);
        return;
    }
    if (!c->nodelay) {
        int one = 1;

        /* keep-alive: a later small response must not wait for an ACK */
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->nodelay = 1;
    }
    reset_request(c);
    arm_read(c);
    if (c->in_pos < c->in.len || c->read_ready) {
        /* pipelined requests: serve them now, but bound the recursion
         * (finalize -> after_response -> the next request ...) */
        if (depth >= MP_HTTP_PIPELINE_DEPTH) {
            arm_timer(c, mp_worker_conf->http.client_header_timeout);
            event_active(&c->ev_read, EV_READ, 1);
            return;
        }
        depth++;
        drive_input(c);
        depth--;
        if (conn_busy(c)) {
            return;
        }
    }
    if (c->parse_state == PARSE_IDLE) {
        arm_timer(c, mp_worker_conf->http.keepalive_timeout);
    } else {
        arm_timer(c, mp_worker_conf->http.client_header_timeout);
    }
}


/* ---- error pages --------------------------------------------------------- */

/*
 * The body nginx sends for an error status, so ngx.exit(404) and a 400 for
 * a bad request look as they do behind nginx (with our name).
 */
size_t
mp_http_error_page(int status, char *buf, size_t size)
{
    const char *text = mp_http_status_text(status);
    int n;

    if (status < 300 || status == 304) {
        return 0;
    }
    n = snprintf(buf, size,
                 "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
                 "<center><h1>%d %s</h1></center>\r\n"
                 "<hr><center>moonpool</center>\r\n</body>\r\n</html>\r\n",
                 status, text, status, text);
    return n < 0 ? 0 : mp_min((size_t) n, size - 1);
}


void
mp_http_send_error_page(mp_request_t *r, int status)
{
    char page[512];
    size_t n = mp_http_error_page(status, page, sizeof(page));
    mp_header_t *h;

    r->status = status;
    if (n > 0) {
        h = mp_http_set_out_header(r, "Content-Type", 12, "text/html", 9);
        (void) h;
        mp_http_clear_out_header(r, "Content-Length", 14);
        mp_http_output(r, page, n);
    }
    mp_http_finalize(r, status);
}


/* A response to a request the parser rejected; the connection closes. */
static void
send_error(mp_conn_t *c, int status)
{
    mp_request_t *r = &c->r;

    if (r->http_major == 0) {
        r->http_major = 1;
        r->http_minor = 1;
    }
    r->keepalive = 0;
    c->closing = 1;
    c->in_handler = 1;
    clear_timer(c);
    r->start.tv_sec = mp_time_sec;
    r->start.tv_nsec = (long) (mp_time_msec % 1000) * 1000000;
    if (mp_stats != NULL) {
        mp_stats->conns_busy++;
    }
    mp_http_send_error_page(r, status);
}


mp_header_t *
mp_http_set_out_header(mp_request_t *r, const char *name, size_t nlen,
                       const char *value, size_t vlen)
{
    mp_http_clear_out_header(r, name, nlen);
    return mp_http_add_out_header(r, name, nlen, value, vlen);
}


mp_header_t *
mp_http_add_out_header(mp_request_t *r, const char *name, size_t nlen,
                       const char *value, size_t vlen)
{
    mp_header_t *h;

    if (r->nout_headers == r->out_headers_cap) {
        size_t cap = r->out_headers_cap ? r->out_headers_cap * 2 : 8;
        mp_header_t *nh = mp_pool_alloc(r->pool, cap * sizeof(*nh));

        if (r->nout_headers) {
            memcpy(nh, r->out_headers, r->nout_headers * sizeof(*nh));
        }
        r->out_headers = nh;
        r->out_headers_cap = cap;
    }
    h = &r->out_headers[r->nout_headers++];
    h->name.data = mp_pool_strndup(r->pool, name, nlen);
    h->name.len = nlen;
    h->value.data = mp_pool_strndup(r->pool, value, vlen);
    h->value.len = vlen;
    return h;
}


void
mp_http_clear_out_header(mp_request_t *r, const char *name, size_t nlen)
{
    size_t i;

    for (i = 0; i < r->nout_headers; i++) {
        mp_header_t *h = &r->out_headers[i];

        if (h->name.len == nlen && strncasecmp(h->name.data, name, nlen) == 0) {
            h->name.len = 0;
        }
    }
}
