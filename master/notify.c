/*
 * notify.c: sd_notify and the reload status file (see notify.h).
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "master/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#ifdef MP_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif


int
mp_notify_available(void)
{
#ifdef MP_HAVE_SYSTEMD
    return 1;
#else
    return 0;
#endif
}


void
mp_notify(const char *fmt, ...)
{
#ifdef MP_HAVE_SYSTEMD
    char buf[1024];
    va_list ap;
    int rc;

    if (getenv("NOTIFY_SOCKET") == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    /* unset_environment 0: workers and an upgraded binary notify too */
    rc = sd_notify(0, buf);
    if (rc < 0) {
        mp_log_error(MP_LOG_WARN, -rc, "sd_notify() failed");
    }
#else
    (void) fmt;
#endif
}


void
mp_notify_reloading(void)
{
    struct timespec ts;

    /* systemd ties RELOADING=1 to the monotonic time it was sent at */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    mp_notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
              (unsigned long long) ts.tv_sec * 1000000ULL
                  + (unsigned long long) ts.tv_nsec / 1000);
}


char *
mp_reload_status_path(const char *pid_file)
{
    size_t n = strlen(pid_file);
    char *path = mp_alloc(n + sizeof(".reload"));

    memcpy(path, pid_file, n);
    memcpy(path + n, ".reload", sizeof(".reload"));
    return path;
}


void
mp_reload_status_write(const char *path, unsigned seq, const char *state,
                       unsigned generation, const char *message)
{
    char tmp[4096], line[2048];
    int fd, n;
    char *p;

    n = snprintf(line, sizeof(line), "%u %s %u %s\n", seq, state, generation,
                 message != NULL && message[0] != '\0' ? message : "-");
    if (n < 0) {
        return;
    }
    if ((size_t) n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    for (p = line; p < line + n - 1; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    /* A reader must see the old line or the new one, never a part. */
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        mp_log_error(MP_LOG_ALERT, errno, "open() \"%s\" failed", tmp);
        return;
    }
    if (write(fd, line, (size_t) n) != n) {
        mp_log_error(MP_LOG_ALERT, errno, "write() to \"%s\" failed", tmp);
        close(fd);
        unlink(tmp);
        return;
    }
    close(fd);
    if (rename(tmp, path) == -1) {
        mp_log_error(MP_LOG_ALERT, errno, "rename() \"%s\" to \"%s\" failed",
                     tmp, path);
        unlink(tmp);
    }
}


int
mp_reload_status_read(const char *path, unsigned *seq, char *state,
                      size_t state_size, unsigned *generation, char *message,
                      size_t message_size)
{
    char buf[2048], *p, *end;
    ssize_t n;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return errno == ENOENT ? MP_DECLINED : MP_ERROR;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return MP_ERROR;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    *seq = (unsigned) strtoul(buf, &end, 10);
    if (end == buf || *end != ' ') {
        return MP_ERROR;
    }
    p = end + 1;
    n = (ssize_t) strcspn(p, " ");
    if (p[n] != ' ' || (size_t) n >= state_size) {
        return MP_ERROR;
    }
    memcpy(state, p, (size_t) n);
    state[n] = '\0';
    p += n + 1;
    *generation = (unsigned) strtoul(p, &end, 10);
    if (end == p || *end != ' ') {
        return MP_ERROR;
    }
    snprintf(message, message_size, "%s", end + 1);
    return MP_OK;
}
