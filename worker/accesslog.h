/*
 * accesslog.h: the access log in nginx's combined format. Lines are
 * buffered per worker and written when the buffer fills or once a second,
 * so logging costs no syscall per request under load.
 */
#ifndef MP_ACCESSLOG_H
#define MP_ACCESSLOG_H

#include "core/mp_core.h"
#include "worker/http.h"

/* Opens conf->log.access (if set) and starts the flush timer. */
int mp_accesslog_open(const mp_conf_t *conf);

/* Appends the line of a finished request (no-op when the log is off). */
void mp_accesslog_write(const mp_request_t *r);

/* Writes out the buffer (timer, exit) . */
void mp_accesslog_flush(void);

/* Flushes and reopens the file (USR1). */
void mp_accesslog_reopen(void);

/* Flushes and closes (worker exit). */
void mp_accesslog_close(void);

#endif /* MP_ACCESSLOG_H */
