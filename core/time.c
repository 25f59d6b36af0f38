/*
 * time.c: the cached clock (see time.h). The formatted strings are rebuilt
 * only when the second changes, which under load is once per ~10^4 requests.
 */
#include "core/mp_core.h"
#include "core/time.h"

#include <stdio.h>

mp_msec_t mp_time_msec;
time_t mp_time_sec;

static char http_buf[32];
static char local_buf[32];
static mp_str_t http_str = { 0, http_buf };
static mp_str_t local_str = { 0, local_buf };
static time_t formatted_sec = -1;

static const char *const wdays[] = { "Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
                                      "May", "Jun", "Jul", "Aug",
                                      "Sep", "Oct", "Nov", "Dec" };


size_t
mp_time_format_http(time_t t, char *buf)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    return (size_t) snprintf(buf, 30, "%s, %02d %s %4d %02d:%02d:%02d GMT",
                             wdays[tm.tm_wday], tm.tm_mday,
                             months[tm.tm_mon], tm.tm_year + 1900,
                             tm.tm_hour, tm.tm_min, tm.tm_sec);
}


static void
format_cached(void)
{
    struct tm tm;
    long off;

    http_str.len = mp_time_format_http(mp_time_sec, http_buf);
    localtime_r(&mp_time_sec, &tm);
    off = tm.tm_gmtoff / 60;
    local_str.len = (size_t) snprintf(
        local_buf, sizeof(local_buf), "%02d/%s/%d:%02d:%02d:%02d %c%02ld%02ld",
        tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
        tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+', labs(off) / 60,
        labs(off) % 60);
    formatted_sec = mp_time_sec;
}


void
mp_time_update(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    mp_time_set(ts.tv_sec, ts.tv_nsec / 1000);
}


void
mp_time_set(time_t sec, long usec)
{
    mp_time_sec = sec;
    mp_time_msec = (mp_msec_t) sec * 1000 + usec / 1000;
}


const mp_str_t *
mp_time_http(void)
{
    if (formatted_sec != mp_time_sec) {
        format_cached();
    }
    return &http_str;
}


const mp_str_t *
mp_time_local(void)
{
    if (formatted_sec != mp_time_sec) {
        format_cached();
    }
    return &local_str;
}
