/*
 * api_req.c: the request-reading half of ngx.req (get_method,
 * get_uri_args, get_headers, http_version), with OpenResty's results:
 * repeated keys become arrays, a key without '=' is true, and the second
 * return value "truncated" says that more than max entries were present.
 *
 * Called by vm.c at VM creation (mp_lua_inject_req_api); every function
 * reads the current request through mp_lua_request(), which raises
 * "no request found" outside a request. Nothing here allocates per call
 * except the Lua values returned.
 */
#include "core/mp_core.h"

/* http.h embeds struct event but does not include its definition. */
#include <event2/event_struct.h>

#include "lua/util.h"
#include "lua/vm.h"
#include "worker/http.h"

#include <lauxlib.h>
#include <lua.h>

/* lua-nginx-module's defaults when max is omitted (or negative). */
#define MP_LUA_MAX_ARGS 100
#define MP_LUA_MAX_HEADERS 100

/* Header names longer than this are folded in the scratch buffer. */
#define MP_LUA_NAME_STACK 128


static int
req_get_method(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    lua_pushlstring(L, r->method.data, r->method.len);
    return 1;
}


static int
req_http_version(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    if (r->http_major == 1 && r->http_minor == 1) {
        lua_pushnumber(L, 1.1);
    } else if (r->http_major == 1 && r->http_minor == 0) {
        lua_pushnumber(L, 1.0);
    } else if (r->http_major == 0 && r->http_minor == 9) {
        lua_pushnumber(L, 0.9);
    } else if (r->http_major == 2 && r->http_minor == 0) {
        lua_pushnumber(L, 2.0);
    } else {
        lua_pushnil(L);
    }
    return 1;
}


/*
 * max as OpenResty reads it: nil or false means the default, a negative
 * number too, and 0 means no limit.
 */
static int
opt_max(lua_State *L, int narg, int def)
{
    lua_Integer max;

    if (lua_isnoneornil(L, narg)
        || (lua_isboolean(L, narg) && !lua_toboolean(L, narg)))
    {
        return def;
    }
    max = luaL_checkinteger(L, narg);
    return max < 0 ? def : (int) max;
}


static void
clear_table(lua_State *L, int t)
{
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, t);
    }
}


/*
 * Stores one unescaped pair in the table at t. vlen < 0 means the key came
 * without '=' (value true). Pairs whose key is empty are dropped, as
 * OpenResty does for "&&" and "=x". Returns 1 if a pair was stored.
 */
static int
store_arg(lua_State *L, int t, char *key, size_t klen, char *val,
          ssize_t vlen)
{
    klen = mp_lua_unescape_arg(key, key, klen);
    if (klen == 0) {
        return 0;
    }
    lua_pushlstring(L, key, klen);
    if (vlen < 0) {
        lua_pushboolean(L, 1);
    } else {
        vlen = (ssize_t) mp_lua_unescape_arg(val, val, (size_t) vlen);
        lua_pushlstring(L, val, (size_t) vlen);
    }
    mp_lua_set_multi_value(L, t);
    return 1;
}


/*
 * Parses "a=1&b&c=" into the table at t, stopping after limit stored pairs.
 * buf is a private copy: keys and values are unescaped in place.
 */
static void
parse_args(lua_State *L, int t, char *buf, size_t len, int limit)
{
    char *p = buf, *end = buf + len, *key = buf, *val = NULL;
    int stored = 0;

    for (; p < end; p++) {
        if (*p == '=' && val == NULL) {
            val = p + 1;
        } else if (*p == '&') {
            if (val != NULL) {
                stored += store_arg(L, t, key, (size_t) (val - 1 - key), val,
                                    p - val);
            } else {
                stored += store_arg(L, t, key, (size_t) (p - key), NULL, -1);
            }
            if (stored == limit) {
                return;
            }
            key = p + 1;
            val = NULL;
        }
    }

    if (val != NULL) {
        store_arg(L, t, key, (size_t) (val - 1 - key), val, end - val);
    } else if (key < end) {
        store_arg(L, t, key, (size_t) (end - key), NULL, -1);
    }
}


static int
req_get_uri_args(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    int max, segments, limit, truncated = 0;
    size_t i;
    char *buf;

    max = opt_max(L, 1, MP_LUA_MAX_ARGS);
    if (lua_istable(L, 2)) {
        clear_table(L, 2);
        lua_settop(L, 2);
    } else {
        lua_settop(L, 1);
        lua_createtable(L, 0, 4);
    }

    if (r->args.len == 0) {
        return 1;
    }

    /*
     * Like lua-nginx-module, the limit counts '&'-separated segments, empty
     * ones included, so "truncated" is decided before any unescaping.
     */
    segments = 1;
    for (i = 0; i < r->args.len; i++) {
        segments += (r->args.data[i] == '&');
    }
    limit = segments;
    if (max > 0 && segments > max) {
        limit = max;
        truncated = 1;
    }

    buf = mp_lua_scratch(r->args.len);
    memcpy(buf, r->args.data, r->args.len);
    parse_args(L, lua_gettop(L), buf, r->args.len, limit);

    if (truncated) {
        lua_pushliteral(L, "truncated");
        return 2;
    }
    return 1;
}


/*
 * __index of get_headers() tables: ngx.req.get_headers()["Content_Type"]
 * finds "content-type".
 */
static int
headers_index(lua_State *L)
{
    char stack[MP_LUA_NAME_STACK];
    const char *key;
    char *name;
    size_t len, i;

    if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER) {
        return 0;
    }
    key = lua_tolstring(L, 2, &len);
    name = len <= sizeof(stack) ? stack : mp_lua_scratch(len);
    for (i = 0; i < len; i++) {
        name[i] = key[i] == '_' ? '-' : (char) mp_lua_lower(key[i]);
    }
    lua_pushlstring(L, name, len);
    lua_rawget(L, 1);
    return 1;
}


static void
push_lower(lua_State *L, const mp_str_t *s)
{
    char stack[MP_LUA_NAME_STACK];
    char *name;
    size_t i;

    name = s->len <= sizeof(stack) ? stack : mp_lua_scratch(s->len);
    for (i = 0; i < s->len; i++) {
        name[i] = (char) mp_lua_lower(s->data[i]);
    }
    lua_pushlstring(L, name, s->len);
}


static int
req_get_headers(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    int max, raw, truncated = 0, t;
    size_t i, n;

    max = opt_max(L, 1, MP_LUA_MAX_HEADERS);
    raw = lua_toboolean(L, 2);

    n = r->nheaders;
    if (max > 0 && n > (size_t) max) {
        n = (size_t) max;
        truncated = 1;
    }

    lua_createtable(L, 0, (int) n);
    t = lua_gettop(L);
    for (i = 0; i < n; i++) {
        if (raw) {
            lua_pushlstring(L, r->headers[i].name.data, r->headers[i].name.len);
        } else {
            push_lower(L, &r->headers[i].name);
        }
        lua_pushlstring(L, r->headers[i].value.data, r->headers[i].value.len);
        mp_lua_set_multi_value(L, t);
    }

    if (!raw) {
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_setmetatable(L, t);
    }

    if (truncated) {
        lua_pushliteral(L, "truncated");
        return 2;
    }
    return 1;
}


/*
 * The body is read in full before the first handler runs (bounded by
 * client_max_body_size), so read_body has nothing to wait for; it only
 * makes the body visible to get_body_data, as in OpenResty, where the body
 * is nil until read_body was called.
 */
static int
req_read_body(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    mp_lua_ctx(r)->body_read = 1;
    return 0;
}


static int
req_discard_body(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    r->body.len = 0;
    return 0;
}


static int
req_get_body_data(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    if (!mp_lua_ctx(r)->body_read || r->body.len == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, r->body.data, r->body.len);
    return 1;
}


static const luaL_Reg req_funcs[] = {
    { "read_body", req_read_body },
    { "discard_body", req_discard_body },
    { "get_body_data", req_get_body_data },
    { "get_method", req_get_method },
    { "http_version", req_http_version },
    { "get_uri_args", req_get_uri_args },
    { NULL, NULL },
};


void
mp_lua_inject_req_api(lua_State *L)
{
    const luaL_Reg *f;

    /* ngx.req may already exist if another group added to it first. */
    lua_getfield(L, -1, "req");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 24);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "req");
    }

    for (f = req_funcs; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }

    /* One metatable shared by every get_headers() result. */
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, headers_index);
    lua_setfield(L, -2, "__index");
    lua_pushcclosure(L, req_get_headers, 1);
    lua_setfield(L, -2, "get_headers");

    lua_pop(L, 1);
}
