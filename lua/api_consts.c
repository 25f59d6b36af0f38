/*
 * api_consts.c: ngx.OK .. ngx.DECLINED, ngx.null, and the ngx.HTTP_*
 * status and method constants with lua-nginx-module's names and values
 * (methods are nginx's bit flags: HTTP_GET 2, HTTP_HEAD 4, ...).
 */
#include "core/mp_core.h"

/* http.h embeds struct event but does not include its definition. */
#include <event2/event_struct.h>

#include "lua/vm.h"

#include <lauxlib.h>
#include <lua.h>

typedef struct {
    const char *name;
    int value;
} const_t;

static const const_t consts[] = {
    { "OK", MP_OK },
    { "ERROR", MP_ERROR },
    { "AGAIN", MP_AGAIN },
    { "DONE", MP_DONE },
    { "DECLINED", MP_DECLINED },

    /* methods: nginx's NGX_HTTP_* bit flags */
    { "HTTP_GET", 0x0002 },
    { "HTTP_HEAD", 0x0004 },
    { "HTTP_POST", 0x0008 },
    { "HTTP_PUT", 0x0010 },
    { "HTTP_DELETE", 0x0020 },
    { "HTTP_MKCOL", 0x0040 },
    { "HTTP_COPY", 0x0080 },
    { "HTTP_MOVE", 0x0100 },
    { "HTTP_OPTIONS", 0x0200 },
    { "HTTP_PROPFIND", 0x0400 },
    { "HTTP_PROPPATCH", 0x0800 },
    { "HTTP_LOCK", 0x1000 },
    { "HTTP_UNLOCK", 0x2000 },
    { "HTTP_PATCH", 0x4000 },
    { "HTTP_TRACE", 0x8000 },

    /* status codes */
    { "HTTP_CONTINUE", 100 },
    { "HTTP_SWITCHING_PROTOCOLS", 101 },
    { "HTTP_OK", 200 },
    { "HTTP_CREATED", 201 },
    { "HTTP_ACCEPTED", 202 },
    { "HTTP_NO_CONTENT", 204 },
    { "HTTP_PARTIAL_CONTENT", 206 },
    { "HTTP_SPECIAL_RESPONSE", 300 },
    { "HTTP_MOVED_PERMANENTLY", 301 },
    { "HTTP_MOVED_TEMPORARILY", 302 },
    { "HTTP_SEE_OTHER", 303 },
    { "HTTP_NOT_MODIFIED", 304 },
    { "HTTP_TEMPORARY_REDIRECT", 307 },
    { "HTTP_PERMANENT_REDIRECT", 308 },
    { "HTTP_BAD_REQUEST", 400 },
    { "HTTP_UNAUTHORIZED", 401 },
    { "HTTP_PAYMENT_REQUIRED", 402 },
    { "HTTP_FORBIDDEN", 403 },
    { "HTTP_NOT_FOUND", 404 },
    { "HTTP_NOT_ALLOWED", 405 },
    { "HTTP_NOT_ACCEPTABLE", 406 },
    { "HTTP_REQUEST_TIMEOUT", 408 },
    { "HTTP_CONFLICT", 409 },
    { "HTTP_GONE", 410 },
    { "HTTP_UPGRADE_REQUIRED", 426 },
    { "HTTP_TOO_MANY_REQUESTS", 429 },
    { "HTTP_CLOSE", 444 },
    { "HTTP_ILLEGAL", 451 },
    { "HTTP_INTERNAL_SERVER_ERROR", 500 },
    { "HTTP_METHOD_NOT_IMPLEMENTED", 501 },
    { "HTTP_NOT_IMPLEMENTED", 501 },
    { "HTTP_BAD_GATEWAY", 502 },
    { "HTTP_SERVICE_UNAVAILABLE", 503 },
    { "HTTP_GATEWAY_TIMEOUT", 504 },
    { "HTTP_VERSION_NOT_SUPPORTED", 505 },
    { "HTTP_INSUFFICIENT_STORAGE", 507 },
};


void
mp_lua_inject_consts_api(lua_State *L)
{
    size_t i;

    for (i = 0; i < mp_nelems(consts); i++) {
        lua_pushinteger(L, consts[i].value);
        lua_setfield(L, -2, consts[i].name);
    }

    /* The same value as cjson.null: a NULL light userdata. */
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
}
