/*
 * api_log.c: ngx.log(level, ...), the global print(...) (= ngx.log at
 * NOTICE) and the level constants ngx.STDERR .. ngx.DEBUG.
 *
 * The message is OpenResty's: "[lua] chunk:line: [func(): ]" followed by
 * the arguments concatenated (nil, true, false and ngx.null spelled out,
 * tables through __tostring). Nothing is checked or built when the level
 * is disabled, as in OpenResty, so a debug log call costs one comparison.
 * The worker's log layer adds time, level, pid and request context.
 */
#include "core/mp_core.h"

/* http.h embeds struct event but does not include its definition. */
#include <event2/event_struct.h>

#include "core/log.h"
#include "lua/util.h"
#include "lua/vm.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>

/*
 * The error log truncates lines at 4 KB, so a longer message would be cut
 * anyway; building it in a fixed buffer avoids any allocation.
 */
#define MP_LUA_LOG_MAX 4096

typedef struct {
    char data[MP_LUA_LOG_MAX];
    size_t len;
} log_buf_t;

/* Safe to share: the buffer is filled without calling back into Lua. */
static log_buf_t log_buf;


static void
buf_add(log_buf_t *b, const char *s, size_t len)
{
    size_t room = sizeof(b->data) - b->len;

    if (len > room) {
        len = room;
    }
    memcpy(b->data + b->len, s, len);
    b->len += len;
}


/*
 * First pass: check every argument and turn tables into their __tostring
 * results in place, so that the second pass makes no Lua calls. Returns
 * normally or raises; argn_shift maps a stack index to the argument number
 * OpenResty reports (it removes the level before counting).
 */
static void
check_args(lua_State *L, int first, int argn_shift)
{
    int i, top = lua_gettop(L), type;

    for (i = first; i <= top; i++) {
        type = lua_type(L, i);
        switch (type) {
        case LUA_TNUMBER:
        case LUA_TSTRING:
        case LUA_TNIL:
        case LUA_TBOOLEAN:
        case LUA_TLIGHTUSERDATA:
            break;

        case LUA_TTABLE:
            if (!luaL_callmeta(L, i, "__tostring")) {
                luaL_argerror(L, i - argn_shift,
                              "expected table to have __tostring metamethod");
            }
            lua_replace(L, i);
            break;

        default:
            luaL_argerror(L, i - argn_shift,
                          lua_pushfstring(L, "string, number, boolean, or nil "
                                          "expected, got %s",
                                          lua_typename(L, type)));
        }
    }
}


/* "chunk:line: " and, inside a named Lua function, "name(): ". */
static void
add_location(lua_State *L, log_buf_t *b)
{
    char line[24];
    const char *src, *p;
    lua_Debug ar;
    int n;

    memset(&ar, 0, sizeof(ar));
    if (!lua_getstack(L, 1, &ar) || !lua_getinfo(L, "Snl", &ar)) {
        buf_add(b, "?:0: ", 5);
        return;
    }

    /*
     * OpenResty keeps only the basename of a file chunk. Inline handlers
     * are named like "content(/api)" and are kept whole.
     */
    src = ar.short_src;
    if (ar.source != NULL && ar.source[0] == '@') {
        for (p = ar.short_src; *p != '\0'; p++) {
            if (*p == '/' || *p == '\\') {
                src = p + 1;
            }
        }
    }
    buf_add(b, src, strlen(src));

    n = snprintf(line, sizeof(line), ":%d: ",
                 ar.currentline ? ar.currentline : ar.linedefined);
    buf_add(b, line, (size_t) n);

    if (ar.namewhat != NULL && *ar.namewhat != '\0' && ar.what != NULL
        && *ar.what == 'L' && ar.name != NULL)
    {
        buf_add(b, ar.name, strlen(ar.name));
        buf_add(b, "(): ", 4);
    }
}


static int
log_args(lua_State *L, int level, int first, int argn_shift)
{
    char num[MP_LUA_NUM_LEN];
    log_buf_t *b = &log_buf;
    int i, top;
    const char *s;
    size_t len;

    check_args(L, first, argn_shift);

    b->len = 0;
    buf_add(b, "[lua] ", 6);
    add_location(L, b);

    top = lua_gettop(L);
    for (i = first; i <= top; i++) {
        switch (lua_type(L, i)) {
        case LUA_TNIL:
            buf_add(b, "nil", 3);
            break;
        case LUA_TBOOLEAN:
            if (lua_toboolean(L, i)) {
                buf_add(b, "true", 4);
            } else {
                buf_add(b, "false", 5);
            }
            break;
        case LUA_TLIGHTUSERDATA:
            buf_add(b, "null", 4);
            break;
        case LUA_TNUMBER:
            buf_add(b, num, mp_lua_format_number(lua_tonumber(L, i), num));
            break;
        default:
            /* Strings and __tostring results. */
            s = lua_tolstring(L, i, &len);
            if (s != NULL) {
                buf_add(b, s, len);
            }
        }
    }

    mp_log_write_raw(level, b->data, b->len);
    return 0;
}


static int
ngx_log(lua_State *L)
{
    int level = luaL_checkint(L, 1);

    if (level < MP_LOG_STDERR || level > MP_LOG_DEBUG) {
        return luaL_argerror(L, 1, lua_pushfstring(L, "bad log level: %d",
                                                   level));
    }
    if (level > mp_log_level) {
        return 0;
    }
    return log_args(L, level, 2, 1);
}


static int
lua_print(lua_State *L)
{
    if (MP_LOG_NOTICE > mp_log_level) {
        return 0;
    }
    return log_args(L, MP_LOG_NOTICE, 1, 0);
}


static const struct {
    const char *name;
    int level;
} log_levels[] = {
    { "STDERR", MP_LOG_STDERR }, { "EMERG", MP_LOG_EMERG },
    { "ALERT", MP_LOG_ALERT },   { "CRIT", MP_LOG_CRIT },
    { "ERR", MP_LOG_ERR },       { "WARN", MP_LOG_WARN },
    { "NOTICE", MP_LOG_NOTICE }, { "INFO", MP_LOG_INFO },
    { "DEBUG", MP_LOG_DEBUG },
};


void
mp_lua_inject_log_api(lua_State *L)
{
    size_t i;

    for (i = 0; i < mp_nelems(log_levels); i++) {
        lua_pushinteger(L, log_levels[i].level);
        lua_setfield(L, -2, log_levels[i].name);
    }

    lua_pushcfunction(L, ngx_log);
    lua_setfield(L, -2, "log");

    lua_pushcfunction(L, lua_print);
    lua_setglobal(L, "print");
}
