/*
 * body.c: the request body, in memory or spooled to a temp file, and the
 * raw request head (see body.h).
 *
 * Called by http.c's parser callbacks (mp_body_append) and by
 * lua/api_req.c. The memory path copies into r->body, whose storage the
 * connection keeps across requests, so a request with a small body costs
 * no malloc and a request without one never comes here. The file path
 * writes each chunk with write(2) as it arrives: a local file write does
 * not wait for the network, and keeping the chunk in memory instead would
 * defeat the point of client_body_buffer_size.
 *
 * Invariant: r->body_file != NULL means the whole body is in that file and
 * r->body is empty.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "worker/body.h"
#include "worker/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* Attempts at a free temp file name before giving up (500). */
#define MP_BODY_NAME_TRIES 64

/* nginx names its temp files with ten digits: 0000000001, ... */
#define MP_BODY_NAME_MOD 10000000000ULL


static void
body_reserve(mp_buf_t *b, size_t more)
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


/* Pool cleanup: the file goes with the request, whatever ended it. */
static void
file_cleanup(void *data)
{
    mp_body_file_t *f = data;

    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    if (f->clean && unlink(f->path) != 0 && errno != ENOENT) {
        mp_log_error(MP_LOG_CRIT, errno, "unlink() \"%s\" failed", f->path);
    }
    f->clean = 0;
}


/* Closes (and removes, if ours) the current body file now. */
static void
drop_file(mp_request_t *r)
{
    if (r->body_file != NULL) {
        file_cleanup(r->body_file);
        r->body_file = NULL;
    }
}


static int
write_all(mp_body_file_t *f, const char *data, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = write(f->fd, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            mp_log_error(MP_LOG_CRIT, errno, "write() to \"%s\" failed",
                         f->path);
            return MP_ERROR;
        }
        data += n;
        len -= (size_t) n;
        f->size += (uint64_t) n;
    }
    return MP_OK;
}


/*
 * Creates a new file under client_body_temp_path with an nginx-style
 * ten-digit name, O_EXCL so that workers (and other servers) sharing the
 * directory never share a file. The sequence starts at a pid-derived
 * point so that workers rarely collide at all.
 */
static mp_body_file_t *
create_file(mp_request_t *r)
{
    static uint64_t seq;
    const char *dir = mp_worker_conf->http.client_body_temp_path;
    size_t size = strlen(dir) + 16;
    mp_body_file_t *f;
    int i;

    if (seq == 0) {
        seq = (uint64_t) getpid() * 100003ULL;
    }
    f = mp_pool_calloc(r->pool, sizeof(*f));
    f->path = mp_pool_nalloc(r->pool, size);
    for (i = 0; i < MP_BODY_NAME_TRIES; i++) {
        seq++;
        snprintf(f->path, size, "%s%s%010llu", dir,
                 dir[0] != '\0' && dir[strlen(dir) - 1] == '/' ? "" : "/",
                 (unsigned long long) (seq % MP_BODY_NAME_MOD));
        f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (f->fd >= 0) {
            break;
        }
        if (errno != EEXIST) {
            mp_log_error(MP_LOG_CRIT, errno, "open() \"%s\" failed", f->path);
            return NULL;
        }
    }
    if (f->fd < 0) {
        mp_log_error(MP_LOG_CRIT, 0, "no free temp file name in \"%s\"", dir);
        return NULL;
    }
    f->clean = 1;
    mp_pool_cleanup_add(r->pool, file_cleanup, f);
    return f;
}


/* Moves what memory holds to a new temp file, as nginx warns it does. */
static int
start_spool(mp_request_t *r)
{
    mp_body_file_t *f = create_file(r);

    if (f == NULL) {
        return MP_ERROR;
    }
    r->body_file = f;
    mp_log_error(MP_LOG_WARN, 0, "a client request body is buffered to a "
                 "temporary file %s", f->path);
    if (write_all(f, r->body.data, r->body.len) != MP_OK) {
        return MP_ERROR;
    }
    r->body.len = 0;
    return MP_OK;
}


int
mp_body_append(mp_request_t *r, const char *data, size_t len)
{
    const mp_conf_t *conf = mp_worker_conf;
    size_t max = conf->http.client_max_body_size;

    /*
     * On failure the file goes at once: the error response may linger
     * for a while draining the rest of the body, the file need not.
     */
    if (max != 0 && r->body_received + len > max) {
        mp_body_discard(r);
        return 413;
    }
    r->body_received += len;
    if (r->body_file == NULL
        && r->body.len + len > conf->http.client_body_buffer_size) {
        if (start_spool(r) != MP_OK) {
            mp_body_discard(r);
            return 500;
        }
    }
    if (r->body_file != NULL) {
        if (write_all(r->body_file, data, len) != MP_OK) {
            mp_body_discard(r);
            return 500;
        }
        return 0;
    }
    body_reserve(&r->body, len);
    memcpy(r->body.data + r->body.len, data, len);
    r->body.len += len;
    return 0;
}


void
mp_body_set_data(mp_request_t *r, const char *data, size_t len)
{
    drop_file(r);
    r->body.len = 0;
    body_reserve(&r->body, len);
    if (len > 0) {
        memcpy(r->body.data, data, len);
    }
    r->body.len = len;
}


int
mp_body_set_file(mp_request_t *r, const char *path, size_t len, int clean,
                 const char **err)
{
    mp_body_file_t *f;
    struct stat st;
    char *copy = mp_pool_strndup(r->pool, path, len);
    int fd;

    if (stat(copy, &st) != 0 || !S_ISREG(st.st_mode)) {
        *err = "stat()";
        return MP_ERROR;
    }
    fd = open(copy, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = "open()";
        return MP_ERROR;
    }
    drop_file(r);
    r->body.len = 0;
    f = mp_pool_calloc(r->pool, sizeof(*f));
    f->fd = fd;
    f->path = copy;
    f->size = (uint64_t) st.st_size;
    f->clean = clean ? 1 : 0;
    mp_pool_cleanup_add(r->pool, file_cleanup, f);
    r->body_file = f;
    return MP_OK;
}


void
mp_body_discard(mp_request_t *r)
{
    drop_file(r);
    r->body.len = 0;
}


/*
 * The head is found from the URI, which points into the read buffer: the
 * method and the spaces before it lead back to the line's start (the
 * buffer is compacted before each request, so only CR/LF can precede it),
 * and the first empty line after it ends the head. Both scans stay within
 * the buffer, and the head is a few hundred bytes, so no offsets need to
 * be kept while parsing.
 */
mp_str_t
mp_body_raw_header(const mp_request_t *r, int with_line)
{
    const mp_buf_t *in = &r->conn->in;
    const char *lo = in->data, *hi = in->data + in->len;
    const char *start = r->request_uri.data, *p, *end = NULL;
    mp_str_t s = { 0, NULL };

    if (start == NULL || start < lo || start >= hi) {
        return s;
    }
    while (start > lo && start[-1] == ' ') {
        start--;
    }
    while (start > lo && start[-1] != ' ' && start[-1] != '\n'
           && start[-1] != '\r') {
        start--;
    }
    for (p = r->request_uri.data; p < hi; p++) {
        if (*p != '\n') {
            continue;
        }
        if (p + 1 < hi && p[1] == '\n') {
            end = p + 2;
            break;
        }
        if (p + 2 < hi && p[1] == '\r' && p[2] == '\n') {
            end = p + 3;
            break;
        }
    }
    if (end == NULL) {
        return s;
    }
    if (!with_line) {
        start = memchr(start, '\n', (size_t) (end - start)) + 1;
    }
    s.data = (char *) start;
    s.len = (size_t) (end - start);
    return s;
}
