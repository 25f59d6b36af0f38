/*
 * api_time.c: ngx.time, now, update_time, today, localtime, utctime,
 * http_time, cookie_time and parse_http_time. The readers use the cached
 * clock of core/time.h (refreshed once per event-loop turn), so they cost
 * no syscall; ngx.update_time() refreshes it.
 *
 * parse_http_time accepts exactly what nginx's ngx_parse_http_time
 * accepts (RFC 1123, RFC 850 and asctime forms, trailing text ignored),
 * because OpenResty code relies on which malformed dates give nil.
 */
#include "core/mp_core.h"
#include "core/time.h"
#include "lua/vm.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>

static const char *const wdays[] = { "Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
                                      "May", "Jun", "Jul", "Aug",
                                      "Sep", "Oct", "Nov", "Dec" };


static int
time_time(lua_State *L)
{
    lua_pushnumber(L, (lua_Number) mp_time_sec);
    return 1;
}


/* Seconds plus milliseconds, summed the way OpenResty does (sec + ms/1e3). */
static int
time_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number) (mp_time_msec / 1000)
                          + (lua_Number) (mp_time_msec % 1000) / 1000.0);
    return 1;
}


static int
time_update_time(lua_State *L)
{
    (void) L;
    mp_time_update();
    return 0;
}


static void
push_tm(lua_State *L, const struct tm *tm, int with_time)
{
    char buf[32];
    int n;

    if (with_time) {
        n = snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d",
                     tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
                     tm->tm_hour, tm->tm_min, tm->tm_sec);
    } else {
        n = snprintf(buf, sizeof(buf), "%04d-%02d-%02d", tm->tm_year + 1900,
                     tm->tm_mon + 1, tm->tm_mday);
    }
    lua_pushlstring(L, buf, (size_t) n);
}


static int
time_today(lua_State *L)
{
    struct tm tm;

    localtime_r(&mp_time_sec, &tm);
    push_tm(L, &tm, 0);
    return 1;
}


static int
time_localtime(lua_State *L)
{
    struct tm tm;

    localtime_r(&mp_time_sec, &tm);
    push_tm(L, &tm, 1);
    return 1;
}


static int
time_utctime(lua_State *L)
{
    struct tm tm;

    gmtime_r(&mp_time_sec, &tm);
    push_tm(L, &tm, 1);
    return 1;
}


/*
 * The seconds argument of http_time/cookie_time. Fractions are dropped as
 * the C long conversion in OpenResty does; nginx prints negative times as
 * the epoch, and so do we.
 */
static time_t
check_seconds(lua_State *L)
{
    lua_Number n;

    if (lua_type(L, 1) != LUA_TNUMBER) {
        luaL_error(L, "number argument only");
    }
    n = lua_tonumber(L, 1);
    return n < 0 ? 0 : (time_t) n;
}


static int
time_http_time(lua_State *L)
{
    char buf[32];
    size_t n = mp_time_format_http(check_seconds(L), buf);

    lua_pushlstring(L, buf, n);
    return 1;
}


/*
 * nginx writes a two-digit year up to 2037 (for old Netscape cookies) and
 * the full year after.
 */
static int
time_cookie_time(lua_State *L)
{
    time_t t = check_seconds(L);
    struct tm tm;
    char buf[48];
    int n, year;

    gmtime_r(&t, &tm);
    year = tm.tm_year + 1900;
    n = snprintf(buf, sizeof(buf), "%s, %02d-%s-%02d %02d:%02d:%02d GMT",
                 wdays[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                 year > 2037 ? year : year % 100, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
    lua_pushlstring(L, buf, (size_t) n);
    return 1;
}


/* A cursor over the date string that reads '\0' past its end. */
typedef struct {
    const unsigned char *s;
    size_t len;
    size_t pos;
} cursor_t;


static int
at(const cursor_t *c, size_t off)
{
    size_t i = c->pos + off;

    return i < c->len ? c->s[i] : '\0';
}


/* n decimal digits at the cursor, or -1. Advances past them on success. */
static int
digits(cursor_t *c, int n)
{
    int i, v = 0, ch;

    for (i = 0; i < n; i++) {
        ch = at(c, (size_t) i);
        if (ch < '0' || ch > '9') {
            return -1;
        }
        v = v * 10 + (ch - '0');
    }
    c->pos += (size_t) n;
    return v;
}


/*
 * nginx tells months apart by as few letters as it needs (and checks no
 * others), so "Jxx" reads as July; we keep that for identical results.
 */
static int
month_of(const cursor_t *c)
{
    switch (at(c, 0)) {
    case 'J':
        return at(c, 1) == 'a' ? 0 : at(c, 2) == 'n' ? 5 : 6;
    case 'F':
        return 1;
    case 'M':
        return at(c, 2) == 'r' ? 2 : 4;
    case 'A':
        return at(c, 1) == 'p' ? 3 : 7;
    case 'S':
        return 8;
    case 'O':
        return 9;
    case 'N':
        return 10;
    case 'D':
        return 11;
    default:
        return -1;
    }
}


static size_t
left(const cursor_t *c)
{
    return c->pos < c->len ? c->len - c->pos : 0;
}


/* Days from 1970-01-01 to y-m-d (m 1..12), proleptic Gregorian. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}


/* "hh:mm:ss" into h, m, s; 0 or -1. */
static int
parse_clock(cursor_t *c, int *h, int *m, int *s)
{
    if ((*h = digits(c, 2)) < 0 || at(c, 0) != ':') {
        return -1;
    }
    c->pos++;
    if ((*m = digits(c, 2)) < 0 || at(c, 0) != ':') {
        return -1;
    }
    c->pos++;
    return (*s = digits(c, 2)) < 0 ? -1 : 0;
}


static int
parse_http_date(const char *str, size_t len, int64_t *out)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31 };
    cursor_t c = { (const unsigned char *) str, len, 0 };
    enum { RFC1123, RFC850, ASCTIME } fmt = RFC1123;
    int day = 0, month, year = 0, h, m, s, leap;

    /* The weekday ends at ',' (RFC 1123/850) or ' ' (asctime). */
    while (c.pos < len && str[c.pos] != ',' && str[c.pos] != ' ') {
        c.pos++;
    }
    if (c.pos < len && str[c.pos] == ' ') {
        fmt = ASCTIME;
    }
    c.pos++;
    while (c.pos < len && str[c.pos] == ' ') {
        c.pos++;
    }
    if (left(&c) < 18) {
        return -1;
    }

    if (fmt != ASCTIME) {
        if ((day = digits(&c, 2)) < 0) {
            return -1;
        }
        if (at(&c, 0) == '-') {
            fmt = RFC850;
        } else if (at(&c, 0) != ' ' || left(&c) < 18) {
            return -1;
        }
        c.pos++;
    }

    if ((month = month_of(&c)) < 0) {
        return -1;
    }
    c.pos += 3;

    if (fmt == RFC1123) {
        if (at(&c, 0) != ' ') {
            return -1;
        }
        c.pos++;
        if ((year = digits(&c, 4)) < 0) {
            return -1;
        }
    } else if (fmt == RFC850) {
        if (at(&c, 0) != '-') {
            return -1;
        }
        c.pos++;
        if ((year = digits(&c, 2)) < 0) {
            return -1;
        }
        year += year < 70 ? 2000 : 1900;
    } else {
        /*
         * asctime: "Nov  8" or "Nov 18". Like nginx, skip the byte after
         * the month unchecked, then one optional space.
         */
        c.pos++;
        c.pos += at(&c, 0) == ' ';
        if ((day = digits(&c, 1)) < 0) {
            return -1;
        }
        if (at(&c, 0) != ' ') {
            if ((s = digits(&c, 1)) < 0) {
                return -1;
            }
            day = day * 10 + s;
        }
        if (left(&c) < 14) {
            return -1;
        }
    }

    if (at(&c, 0) != ' ') {
        return -1;
    }
    c.pos++;
    if (parse_clock(&c, &h, &m, &s) != 0) {
        return -1;
    }
    if (fmt == ASCTIME) {
        if (at(&c, 0) != ' ') {
            return -1;
        }
        c.pos++;
        if ((year = digits(&c, 4)) < 0) {
            return -1;
        }
    }

    if (h > 23 || m > 59 || s > 59) {
        return -1;
    }
    leap = (year % 4 == 0) && (year % 100 != 0 || year % 400 == 0);
    if (day > mdays[month] + (month == 1 && leap)) {
        return -1;
    }

    /* Day 0 is accepted, as nginx does: it means the previous day. */
    *out = days_from_civil(year, month + 1, day) * 86400 + h * 3600 + m * 60
           + s;
    return 0;
}


static int
time_parse_http_time(lua_State *L)
{
    const char *s;
    size_t len;
    int64_t t;

    if (lua_type(L, 1) != LUA_TSTRING) {
        return luaL_error(L, "string argument only");
    }
    s = lua_tolstring(L, 1, &len);
    /* -1 is OpenResty's error marker, so that instant reads as nil too. */
    if (parse_http_date(s, len, &t) != 0 || t == -1) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushnumber(L, (lua_Number) t);
    return 1;
}


static const luaL_Reg time_funcs[] = {
    { "time", time_time },
    { "now", time_now },
    { "update_time", time_update_time },
    { "today", time_today },
    { "localtime", time_localtime },
    { "utctime", time_utctime },
    { "http_time", time_http_time },
    { "cookie_time", time_cookie_time },
    { "parse_http_time", time_parse_http_time },
    { NULL, NULL },
};


void
mp_lua_inject_time_api(lua_State *L)
{
    const luaL_Reg *f;

    for (f = time_funcs; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
}
