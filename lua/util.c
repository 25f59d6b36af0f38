/*
 * util.c: helpers shared by the Lua API files (see util.h).
 */
#include "core/mp_core.h"
#include "lua/util.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>

static char *scratch;
static size_t scratch_size;


static int
hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = mp_lua_lower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}


size_t
mp_lua_unescape_arg(char *dst, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *) src;
    const unsigned char *end = s + len;
    char *d = dst;
    int hi, lo;

    while (s < end) {
        if (*s == '+') {
            *d++ = ' ';
            s++;
            continue;
        }
        /*
         * A malformed escape is copied literally rather than dropped:
         * this is what lua-nginx-module does since 0.10.16, and it keeps
         * "100%" meaning "100%".
         */
        if (*s == '%' && end - s >= 3 && (hi = hex_value(s[1])) >= 0
            && (lo = hex_value(s[2])) >= 0)
        {
            *d++ = (char) ((hi << 4) | lo);
            s += 3;
            continue;
        }
        *d++ = (char) *s++;
    }
    return (size_t) (d - dst);
}


char *
mp_lua_scratch(size_t size)
{
    size_t n;

    if (mp_likely(size <= scratch_size)) {
        return scratch;
    }
    /* Grow geometrically so that a series of big requests reallocates
     * only a few times over the life of the worker. */
    n = scratch_size ? scratch_size : 1024;
    while (n < size) {
        n *= 2;
    }
    scratch = mp_realloc(scratch, n);
    scratch_size = n;
    return scratch;
}


void
mp_lua_set_multi_value(lua_State *L, int t)
{
    size_t n;

    lua_pushvalue(L, -2);          /* key value key */
    lua_rawget(L, t);              /* key value existing */

    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_rawset(L, t);
        return;
    }

    if (lua_istable(L, -1)) {
        n = lua_objlen(L, -1);
        lua_insert(L, -2);         /* key existing value */
        lua_rawseti(L, -2, (int) n + 1);
        lua_pop(L, 2);
        return;
    }

    /* A second value: replace the entry with {existing, value}. */
    lua_createtable(L, 4, 0);      /* key value existing arr */
    lua_insert(L, -2);             /* key value arr existing */
    lua_rawseti(L, -2, 1);         /* key value arr */
    lua_insert(L, -2);             /* key arr value */
    lua_rawseti(L, -2, 2);         /* key arr */
    lua_rawset(L, t);
}


size_t
mp_lua_format_number(double n, char *buf)
{
    int len;

    /* The range test keeps the int32 conversion defined (NaN fails it). */
    if (n >= INT32_MIN && n <= INT32_MAX && n == (double) (int32_t) n) {
        len = snprintf(buf, MP_LUA_NUM_LEN, "%d", (int) (int32_t) n);
    } else {
        len = snprintf(buf, MP_LUA_NUM_LEN, "%.14g", n);
    }
    return len < 0 ? 0 : (size_t) len;
}
