/*
 * fuzz_http.c: libFuzzer target for the HTTP request path of worker/http.c
 * (http-parser callbacks, framing checks, URI normalization, pipelining,
 * chunked and Content-Length bodies, keep-alive, error responses).
 *
 * Each input is the byte stream a client sends. Byte 0 picks how it is cut
 * into writes (all at once, or pieces of 1..255 bytes with the loop run in
 * between), the rest is sent over a socketpair whose other end is handed to
 * mp_http_conn_open() as if accepted. A phase runner stub stands in for
 * Lua: the handler code of the location (never compiled here) names what
 * the stub does, and the content stub echoes what the parser produced.
 * After the last byte the client shuts its write side; the target runs the
 * loop until the server closed the connection and then checks what came
 * back: a sequence of well-formed, complete HTTP/1.1 responses with known
 * statuses. A connection that never closes fails the run.
 */
#include "core/mp_core.h"
#include "core/conf.h"
#include "core/log.h"
#include "core/time.h"
#include "master/config.h"
#include "worker/http.h"
#include "worker/loop.h"
#include "worker/phases.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ROUNDS 20000 /* loop iterations before declaring a hang */

static const char yaml[] =
    "http:\n"
    "  large_header_buffer: 2k\n"
    "  client_max_body_size: 8k\n"
    "servers:\n"
    "  - listen: [\"127.0.0.1:8080\"]\n"
    "    server_names: [\"a.example\", \"*.wild.example\"]\n"
    "    locations:\n"
    "      - match: /\n"
    "        content: echo\n"
    "      - match: \"= /exact\"\n"
    "        rewrite: pass\n"
    "        access: decline\n"
    "        content: echo\n"
    "        log: pass\n"
    "      - match: /flush\n"
    "        content: flush\n"
    "      - match: /eof\n"
    "        content: eof\n"
    "      - match: /again\n"
    "        access: again\n"
    "        content: echo\n"
    "      - match: /fail\n"
    "        content: fail\n"
    "      - match: /error\n"
    "        content: error\n"
    "      - match: /none\n"
    "        rewrite: pass\n"
    "      - match: \"~* \\\\.PNG$\"\n"
    "        content: headers\n"
    "      - match: /filter\n"
    "        content: flush\n"
    "        header_filter: h\n"
    "        body_filter: b\n"
    "  - listen: [\"127.0.0.1:8080\"]\n"
    "    server_names: [\"b.example\"]\n"
    "    locations:\n"
    "      - match: \"^~ /only/\"\n"
    "        content: echo\n";

static mp_conf_t *conf;
static mp_conf_t worker_conf;
static int resumes_pending;


/* ---- the stub phase runner ------------------------------------------------ */

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    resumes_pending--;
    mp_phases_resume(arg, MP_OK);
}


/* The decoded path as http.c promises it: absolute, no dot segments. */
static void
check_uri(const mp_request_t *r)
{
    const char *u = r->uri.data;
    size_t i, n = r->uri.len;

    if (n == 0 || u[0] != '/' || u[n] != '\0' || memchr(u, '\0', n) != NULL) {
        fprintf(stderr, "bad uri \"%.*s\"\n", (int) n, u);
        abort();
    }
    for (i = 0; i + 1 < n; i++) {
        if (u[i] == '/' && u[i + 1] == '/') {
            fprintf(stderr, "\"//\" left in uri \"%.*s\"\n", (int) n, u);
            abort();
        }
        if (u[i] == '/' && u[i + 1] == '.'
            && (i + 2 == n || u[i + 2] == '/'
                || (u[i + 2] == '.' && (i + 3 == n || u[i + 3] == '/')))) {
            fprintf(stderr, "dot segment left in uri \"%.*s\"\n", (int) n, u);
            abort();
        }
    }
    for (i = 0; i < r->host.len; i++) {
        if (r->host.data[i] >= 'A' && r->host.data[i] <= 'Z') {
            fprintf(stderr, "host not lower-cased\n");
            abort();
        }
    }
}


static void
echo(mp_request_t *r)
{
    char line[160];
    int n;
    size_t i;

    n = snprintf(line, sizeof(line), "%.*s %zu/%zu %zu %zu %zu\n",
                 (int) r->method.len, r->method.data, r->uri.len,
                 r->request_uri.len, r->args.len, r->nheaders, r->body.len);
    mp_http_output(r, line, (size_t) n);
    for (i = 0; i < r->nheaders; i++) {
        mp_http_output(r, r->headers[i].name.data, r->headers[i].name.len);
        mp_http_output(r, "\n", 1);
    }
    if (mp_http_header_in(r, "host", 4) == NULL && r->host.len != 0) {
        fprintf(stderr, "a host without a Host header\n");
        abort();
    }
}


static int
run_handler(mp_request_t *r, mp_conf_handler_t *h)
{
    const char *code = h->code.data;
    struct timeval zero = { 0, 0 };

    check_uri(r);
    if (strcmp(code, "pass") == 0) {
        return MP_OK;
    }
    if (strcmp(code, "decline") == 0) {
        return MP_DECLINED;
    }
    if (strcmp(code, "again") == 0) {
        /* suspended: the loop resumes it, as a cosocket would */
        resumes_pending++;
        event_base_once(mp_worker_base, -1, EV_TIMEOUT, on_resume, r, &zero);
        return MP_AGAIN;
    }
    if (strcmp(code, "fail") == 0) {
        return MP_ERROR;
    }
    if (strcmp(code, "error") == 0) {
        mp_http_send_error_page(r, 403);
        return MP_DONE;
    }
    if (strcmp(code, "headers") == 0) {
        mp_http_set_out_header(r, "X-Stub", 6, "1", 1);
        mp_http_add_out_header(r, "X-Stub", 6, "2", 1);
        mp_http_clear_out_header(r, "x-stub", 6);
        mp_http_add_out_header(r, "Content-Type", 12, "image/png", 9);
        r->status = 201;
    }
    echo(r);
    if (strcmp(code, "flush") == 0) {
        mp_http_flush(r);
        echo(r);
    } else if (strcmp(code, "eof") == 0) {
        mp_http_eof(r);
    }
    return MP_OK;
}


static int
header_filter(mp_request_t *r, mp_conf_handler_t *h)
{
    (void) h;
    mp_http_set_out_header(r, "X-Filtered", 10, "yes", 3);
    return MP_OK;
}


static int
body_filter(mp_request_t *r, mp_conf_handler_t *h, const char *data,
            size_t len, int eof, int *done)
{
    (void) h;
    mp_http_output_raw(r, data, len);
    if (eof) {
        mp_http_output_raw(r, "[end]\n", 6);
    }
    *done = 0;
    return MP_OK;
}


/* ---- checking the responses --------------------------------------------- */

static int
known_status(int status)
{
    static const int ok[] = { 200, 201, 400, 403, 404, 413, 414, 417, 431,
                              500, 501, 505 };
    size_t i;

    for (i = 0; i < mp_nelems(ok); i++) {
        if (ok[i] == status) {
            return 1;
        }
    }
    return 0;
}


static const char *
find_header_end(const char *p, const char *end)
{
    const char *q = memmem(p, (size_t) (end - p), "\r\n\r\n", 4);

    return q ? q + 4 : NULL;
}


static long
header_value(const char *head, const char *end, const char *name)
{
    size_t n = strlen(name);
    const char *p = head;

    while ((p = memmem(p, (size_t) (end - p), name, n)) != NULL) {
        if (p[-1] == '\n') {
            return strtol(p + n, NULL, 10);
        }
        p += n;
    }
    return -1;
}


/*
 * Walks the responses in out[0..len). A response to HEAD has a
 * Content-Length but no body: what follows its header is the next
 * response or nothing (a body made by the stub never starts so).
 */
static void
check_responses(const char *out, size_t len)
{
    const char *p = out, *end = out + len, *body;
    long clen;
    int status;

    while (p < end) {
        if ((size_t) (end - p) >= 25
            && memcmp(p, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0) {
            p += 25;
            continue;
        }
        if ((size_t) (end - p) < 13 || memcmp(p, "HTTP/1.1 ", 9) != 0
            || p[12] != ' ') {
            goto bad;
        }
        status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        if (!known_status(status)) {
            goto bad;
        }
        body = find_header_end(p, end);
        if (body == NULL) {
            goto bad;
        }
        clen = header_value(p, body, "Content-Length: ");
        if (body == end || ((size_t) (end - body) >= 9
                            && memcmp(body, "HTTP/1.1 ", 9) == 0)) {
            p = body; /* HEAD */
            continue;
        }
        if (clen >= 0) {
            if (end - body < clen) {
                goto bad;
            }
            p = body + clen;
            continue;
        }
        if (memmem(p, (size_t) (body - p), "\r\nTransfer-Encoding: chunked",
                   28) == NULL) {
            p = end; /* ends at close (HTTP/1.0) or has no body (HEAD) */
            continue;
        }
        for (p = body;;) {
            char *next;
            unsigned long n = strtoul(p, &next, 16);

            if (next == p || end - next < 2 || memcmp(next, "\r\n", 2) != 0
                || (unsigned long) (end - next - 2) < n + 2) {
                goto bad;
            }
            p = next + 2 + n + 2;
            if (n == 0) {
                break;
            }
        }
    }
    return;

bad:
    fprintf(stderr, "malformed response at offset %zu of %zu:\n%.*s\n",
            (size_t) (p - out), len, (int) mp_min((size_t) (end - p), 400),
            p);
    abort();
}


/* ---- the driver ---------------------------------------------------------- */

static void
setup(void)
{
    char dir[] = "/tmp/mp-fuzz-http.XXXXXX", path[64], err[512];
    FILE *f;

    signal(SIGPIPE, SIG_IGN);
    mp_log_level = getenv("MP_FUZZ_LOG") ? MP_LOG_DEBUG : MP_LOG_CRIT;
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    snprintf(path, sizeof(path), "%s/moonpool.yaml", dir);
    f = fopen(path, "w");
    if (f == NULL) {
        abort();
    }
    fputs(yaml, f);
    fclose(f);
    conf = mp_conf_load(path, err, sizeof(err));
    unlink(path);
    rmdir(dir);
    if (conf == NULL) {
        fprintf(stderr, "config: %s\n", err);
        abort();
    }
    mp_time_update();
    /*
     * The worker sees the config without listeners: loop.c would resume
     * accepting on them when a connection closes, and there are none
     * (mp_worker_run() never ran). Connections still point at
     * conf->listens[0] for server selection.
     */
    worker_conf = *conf;
    worker_conf.nlistens = 0;
    mp_worker_conf = &worker_conf;
    mp_worker_base = event_base_new();
    mp_http_init(conf);
    mp_phases_set_runner(run_handler);
    mp_phases_set_filters(header_filter, body_filter);
}


static void
read_all(int fd, char **out, size_t *len, size_t *cap)
{
    ssize_t n;

    for (;;) {
        if (*cap - *len < 4096) {
            *cap = *cap * 2 + 4096;
            *out = realloc(*out, *cap);
        }
        n = read(fd, *out + *len, *cap - *len);
        if (n <= 0) {
            return;
        }
        *len += (size_t) n;
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in peer;
    size_t step, sent = 0, len = 0, cap = 0;
    char *out = NULL;
    int sv[2], rounds, shut = 0, quiet = 0;
    ssize_t n;

    if (conf == NULL) {
        setup();
    }
    if (size == 0) {
        return 0;
    }
    step = data[0] ? data[0] : size;
    data++;
    size--;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)
        != 0) {
        abort();
    }
    memset(&peer, 0, sizeof(peer));
    peer.sin_family = AF_INET;
    peer.sin_port = htons(40000);
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    /* the first piece is there at accept time, as with deferred accept */
    n = write(sv[1], data, mp_min(step, size));
    sent = n > 0 ? (size_t) n : 0;
    mp_http_conn_open(sv[0], &conf->listens[0], (struct sockaddr *) &peer,
                      sizeof(peer));

    /*
     * The end of the stream is sent on its own, a few loop iterations after
     * the last byte: data and FIN arriving together give one edge-triggered
     * read event, and http.c takes a short read as "drained" without reading
     * again to see the FIN (the connection then waits for its timeout; see
     * tests/fuzz/README.md).
     */
    for (rounds = 0; rounds < MAX_ROUNDS; rounds++) {
        if (sent < size) {
            n = write(sv[1], data + sent, mp_min(step, size - sent));
            if (n > 0) {
                sent += (size_t) n;
            } else if (n < 0 && errno != EAGAIN) {
                sent = size; /* the server closed: stop sending */
            }
        } else if (!shut && ++quiet > 4) {
            shutdown(sv[1], SHUT_WR);
            shut = 1;
        }
        event_base_loop(mp_worker_base, EVLOOP_NONBLOCK);
        read_all(sv[1], &out, &len, &cap);
        if (shut && mp_http_active_connections() == 0
            && resumes_pending == 0) {
            break;
        }
    }
    if (rounds == MAX_ROUNDS) {
        fprintf(stderr, "the connection did not close (%zu of %zu bytes "
                "sent, %zu received)\n", sent, size, len);
        abort();
    }
    read_all(sv[1], &out, &len, &cap);
    close(sv[1]);
    check_responses(out, len);
    free(out);
    return 0;
}
