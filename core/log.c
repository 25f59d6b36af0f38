/*
 * log.c: the error log (see log.h). A line is formatted into a stack buffer
 * and written with a single write(), which O_APPEND makes atomic with
 * respect to other processes writing the same file.
 */
#include "core/mp_core.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MP_LOG_LINE_MAX 4096

int mp_log_level = MP_LOG_NOTICE;
mp_log_ctx_cb mp_log_ctx_handler;
void *mp_log_ctx_data;

static int log_fd = STDERR_FILENO;
static char *log_path;
static int log_worker = -1;

static const char *level_names[] = {
    "stderr", "emerg", "alert", "crit", "error", "warn", "notice", "info",
    "debug",
};


int
mp_log_level_parse(const char *name)
{
    size_t i;

    for (i = 1; i < mp_nelems(level_names); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            return (int) i;
        }
    }
    /* nginx spells it "error", but "err" is a common slip. */
    if (strcasecmp(name, "err") == 0) {
        return MP_LOG_ERR;
    }
    return -1;
}


const char *
mp_log_level_name(int level)
{
    if (level < 0 || level >= (int) mp_nelems(level_names)) {
        return "unknown";
    }
    return level_names[level];
}


void
mp_log_set_worker(int worker)
{
    log_worker = worker;
}


int
mp_log_fd(void)
{
    return log_fd;
}


static size_t
format_prefix(char *buf, size_t size, int level)
{
    struct timespec ts;
    struct tm tm;
    size_t n;
    int w;

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, size, "%Y/%m/%d %H:%M:%S", &tm);
    if (log_worker >= 0) {
        w = snprintf(buf + n, size - n, " [%s] %d#%d: ",
                     mp_log_level_name(level), (int) getpid(), log_worker);
    } else {
        w = snprintf(buf + n, size - n, " [%s] %d#m: ",
                     mp_log_level_name(level), (int) getpid());
    }
    return n + (size_t) w;
}


static void
write_line(char *buf, size_t n)
{
    ssize_t rc;

    buf[n++] = '\n';
    do {
        rc = write(log_fd, buf, n);
    } while (rc < 0 && errno == EINTR);
}


void
mp_log_vwrite(int level, int err, const char *fmt, va_list ap)
{
    char buf[MP_LOG_LINE_MAX];
    size_t n, room = sizeof(buf) - 1; /* keep one byte for '\n' */
    int w;

    n = format_prefix(buf, room, level);
    w = vsnprintf(buf + n, room - n, fmt, ap);
    n = mp_min(n + (size_t) (w < 0 ? 0 : w), room - 1);
    if (err != 0 && n < room) {
        w = snprintf(buf + n, room - n, " (%d: %s)", err, strerror(err));
        n = mp_min(n + (size_t) (w < 0 ? 0 : w), room - 1);
    }
    if (mp_log_ctx_handler != NULL && n < room) {
        n += mp_log_ctx_handler(mp_log_ctx_data, buf + n, room - n);
        n = mp_min(n, room - 1);
    }
    write_line(buf, n);
}


void
mp_log_write(int level, int err, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    va_start(ap, fmt);
    mp_log_vwrite(level, err, fmt, ap);
    va_end(ap);
    errno = saved;
}


void
mp_log_write_raw(int level, const char *msg, size_t len)
{
    mp_log_write(level, 0, "%.*s", (int) mp_min(len, (size_t) INT32_MAX),
                 msg);
}


static int
open_file(const char *path)
{
    int fd;

    if (strcmp(path, "stderr") == 0) {
        return STDERR_FILENO;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        mp_log_error(MP_LOG_EMERG, errno, "open() \"%s\" failed", path);
        return -1;
    }
    return fd;
}


int
mp_log_open(const char *path)
{
    int fd = open_file(path);
    char *copy;

    if (fd < 0) {
        return MP_ERROR;
    }
    if (log_fd != STDERR_FILENO) {
        close(log_fd);
    }
    log_fd = fd;
    copy = mp_strdup(path); /* path may be log_path itself (reopen) */
    free(log_path);
    log_path = copy;
    return MP_OK;
}


int
mp_log_reopen(void)
{
    if (log_path == NULL || log_fd == STDERR_FILENO) {
        return MP_OK;
    }
    return mp_log_open(log_path);
}
