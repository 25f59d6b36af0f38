/*
 * accesslog.c: buffered combined-format access log (see accesslog.h).
 * One writer per worker; each flush is one write() of whole lines to an
 * O_APPEND file, so workers never interleave inside a line.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "core/time.h"
#include "worker/accesslog.h"
#include "worker/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#define MP_ACCESSLOG_BUF (64 * 1024)
#define MP_ACCESSLOG_LINE_MAX 8192

static int log_fd = -1;
static const char *log_path;
static char *buf;
static size_t buf_len;
static struct event *flush_ev;


static void
on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    mp_accesslog_flush();
}


int
mp_accesslog_open(const mp_conf_t *conf)
{
    struct timeval one_second = { 1, 0 };

    if (conf->log.access == NULL) {
        return MP_OK;
    }
    log_path = conf->log.access;
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        mp_log_error(MP_LOG_EMERG, errno, "open() \"%s\" failed", log_path);
        return MP_ERROR;
    }
    buf = mp_alloc(MP_ACCESSLOG_BUF);
    flush_ev = event_new(mp_worker_base, -1, EV_PERSIST, on_flush_timer, NULL);
    event_add(flush_ev, &one_second);
    return MP_OK;
}


void
mp_accesslog_flush(void)
{
    size_t off = 0;
    ssize_t n;

    while (off < buf_len) {
        n = write(log_fd, buf + off, buf_len - off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            mp_log_error(MP_LOG_ALERT, errno, "write() to \"%s\" failed",
                         log_path);
            break;
        }
        off += (size_t) n;
    }
    buf_len = 0;
}


/* Escapes '"', '\\' and non-printable bytes as nginx does (\xHH). */
static size_t
escape(char *dst, size_t room, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, o = 0;

    for (i = 0; i < len && o + 4 < room; i++) {
        unsigned char ch = (unsigned char) s[i];

        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[ch >> 4];
            dst[o++] = hex[ch & 0xf];
        } else {
            dst[o++] = (char) ch;
        }
    }
    return o;
}


static size_t
put_header(char *p, size_t room, const mp_request_t *r, const char *name)
{
    const mp_str_t *v = mp_http_header_in(r, name, strlen(name));

    if (v == NULL || v->len == 0) {
        return (size_t) snprintf(p, room, "-");
    }
    return escape(p, room, v->data, v->len);
}


void
mp_accesslog_write(const mp_request_t *r)
{
    char *p;
    size_t room, n;
    const mp_str_t *t;

    if (log_fd < 0 || r->method.len == 0) {
        return;
    }
    if (buf_len + MP_ACCESSLOG_LINE_MAX > MP_ACCESSLOG_BUF) {
        mp_accesslog_flush();
    }
    p = buf + buf_len;
    room = MP_ACCESSLOG_LINE_MAX;
    t = mp_time_local();
    n = (size_t) snprintf(p, room, "%s - - [%.*s] \"", r->conn->peer_text,
                          (int) t->len, t->data);
    n += escape(p + n, room - n, r->method.data, r->method.len);
    p[n++] = ' ';
    n += escape(p + n, room - n - 64, r->request_uri.data,
                r->request_uri.len);
    n += (size_t) snprintf(p + n, room - n, " HTTP/%d.%d\" %d %llu \"",
                           r->http_major, r->http_minor, r->status,
                           (unsigned long long) r->body_bytes_sent);
    n += put_header(p + n, room - n - 8, r, "Referer");
    n += (size_t) snprintf(p + n, room - n, "\" \"");
    n += put_header(p + n, room - n - 4, r, "User-Agent");
    p[n++] = '"';
    p[n++] = '\n';
    buf_len += n;
}


void
mp_accesslog_reopen(void)
{
    int fd;

    if (log_fd < 0) {
        return;
    }
    mp_accesslog_flush();
    fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        mp_log_error(MP_LOG_ALERT, errno, "open() \"%s\" failed", log_path);
        return;
    }
    close(log_fd);
    log_fd = fd;
}


void
mp_accesslog_close(void)
{
    if (log_fd < 0) {
        return;
    }
    mp_accesslog_flush();
    close(log_fd);
    log_fd = -1;
    if (flush_ev != NULL) {
        event_free(flush_ev);
        flush_ev = NULL;
    }
    free(buf);
    buf = NULL;
}
