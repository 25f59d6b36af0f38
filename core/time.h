/*
 * time.h: the cached clock. The worker refreshes it once per event batch
 * (mp_time_update), so ngx.now(), log lines and the Date header cost no
 * syscall each; ngx.update_time() forces a refresh.
 */
#ifndef MP_TIME_H
#define MP_TIME_H

#include "core/mp_core.h"

#include <time.h>

/* Wall-clock milliseconds and seconds since the epoch, as of the last update. */
extern mp_msec_t mp_time_msec;
extern time_t mp_time_sec;

/* Refreshes the cache from the clock (vDSO clock_gettime). */
void mp_time_update(void);

/*
 * Sets the cache from a time the caller already has (the worker passes
 * libevent's per-iteration cached time, which costs no clock read).
 */
void mp_time_set(time_t sec, long usec);

/* "Mon, 30 Nov 2026 14:40:00 GMT" of the cached second (29 bytes). */
const mp_str_t *mp_time_http(void);

/* "30/Nov/2026:14:40:00 +0000" (access log, $time_local; 26 bytes). */
const mp_str_t *mp_time_local(void);

/*
 * Formats t as an HTTP date into buf (at least 30 bytes); returns the length
 * (29).
 */
size_t mp_time_format_http(time_t t, char *buf);

#endif /* MP_TIME_H */
