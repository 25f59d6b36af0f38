/*
 * log.h: the error log. Every process writes whole lines with one write()
 * to an O_APPEND descriptor, so lines of different workers never interleave.
 * Before the config is loaded the log goes to stderr.
 *
 * Line format:
 *   2026/11/30 14:40:00 [error] 1234#3: message, client: 127.0.0.1, ...
 * where 1234 is the pid and #3 the worker number (#m for the master).
 */
#ifndef MP_LOG_H
#define MP_LOG_H

#include "core/mp_core.h"

#include <stdarg.h>

/* Levels, numerically equal to nginx's (and to ngx.STDERR .. ngx.DEBUG). */
enum {
    MP_LOG_STDERR = 0,
    MP_LOG_EMERG,
    MP_LOG_ALERT,
    MP_LOG_CRIT,
    MP_LOG_ERR,
    MP_LOG_WARN,
    MP_LOG_NOTICE,
    MP_LOG_INFO,
    MP_LOG_DEBUG
};

extern int mp_log_level;

/*
 * Appends request context (", client: ..., request: ...") to a log line;
 * set by the worker while a request runs, NULL otherwise. Writes at most
 * size bytes into buf and returns the number written.
 */
typedef size_t (*mp_log_ctx_cb)(void *data, char *buf, size_t size);

extern mp_log_ctx_cb mp_log_ctx_handler;
extern void *mp_log_ctx_data;

#define mp_log_error(level, err, ...)                                          \
    do {                                                                       \
        if ((level) <= mp_log_level) {                                         \
            mp_log_write((level), (err), __VA_ARGS__);                         \
        }                                                                      \
    } while (0)

#ifdef MP_DEBUG
#define mp_log_debug(...) mp_log_error(MP_LOG_DEBUG, 0, __VA_ARGS__)
#else
#define mp_log_debug(...)                                                      \
    do {                                                                       \
    } while (0)
#endif

/* Formats and writes one line; err != 0 appends " (err: strerror)". */
void mp_log_write(int level, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mp_log_vwrite(int level, int err, const char *fmt, va_list ap);

/* Writes a preformatted message (e.g. from Lua) of len bytes. */
void mp_log_write_raw(int level, const char *msg, size_t len);

/*
 * Opens path ("stderr" or a file, created 0644, O_APPEND) as the error log.
 * Returns MP_OK or MP_ERROR (the reason is written to the current log).
 */
int mp_log_open(const char *path);

/* Reopens the current file (USR1, logrotate). Returns MP_OK or MP_ERROR. */
int mp_log_reopen(void);

/* Sets the worker number shown in each line; -1 means the master. */
void mp_log_set_worker(int worker);

/* Parses a level name ("error", "warn", ...); returns -1 if unknown. */
int mp_log_level_parse(const char *name);

/* The name of a level ("error" for MP_LOG_ERR). */
const char *mp_log_level_name(int level);

/* The error log's descriptor (stderr until opened). */
int mp_log_fd(void);

#endif /* MP_LOG_H */
