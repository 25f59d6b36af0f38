/*
 * api_phase.c: what ties Lua to the phase engine: the header and body
 * filter runners (registered with worker/phases.c), ngx.arg for body
 * filters, and ngx.exec.
 *
 * Filters run synchronously on the main Lua thread with lua_pcall, from
 * inside the output path (often from within ngx.say of a content handler),
 * as lua-nginx-module runs them; they cannot yield.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "lua/vm.h"
#include "worker/phases.h"

/* The chunk a body filter is looking at (ngx.arg[1], ngx.arg[2]). */
typedef struct {
    const char *data;
    size_t len;
    int eof;
    int replaced;      /* ngx.arg[1] was assigned: the value is at ref */
    int ref;
    int active;
} body_arg_t;

static body_arg_t body_arg;


static int
run_header_filter(mp_request_t *r, mp_conf_handler_t *h)
{
    lua_State *L = mp_lua_vm();
    mp_request_t *prev = mp_lua_set_request(r);
    int rc;

    rc = mp_lua_pcall_handler(L, h, 0, "header_filter_by_lua*");
    mp_lua_set_request(prev);
    return rc;
}


static int
run_body_filter(mp_request_t *r, mp_conf_handler_t *h, const char *data,
                size_t len, int eof, int *done)
{
    lua_State *L = mp_lua_vm();
    mp_request_t *prev = mp_lua_set_request(r);
    body_arg_t saved = body_arg;
    const char *out;
    size_t out_len;
    int rc;

    body_arg.data = data;
    body_arg.len = len;
    body_arg.eof = eof;
    body_arg.replaced = 0;
    body_arg.active = 1;
    rc = mp_lua_pcall_handler(L, h, 0, "body_filter_by_lua*");
    mp_lua_set_request(prev);

    if (rc == MP_OK) {
        if (body_arg.replaced) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, body_arg.ref);
            out = lua_tolstring(L, -1, &out_len);
            mp_http_output_raw(r, out, out_len);
            lua_pop(L, 1);
        } else {
            mp_http_output_raw(r, data, len);
        }
        *done = body_arg.eof && !eof;
    }
    if (body_arg.replaced) {
        luaL_unref(L, LUA_REGISTRYINDEX, body_arg.ref);
    }
    body_arg = saved;
    return rc;
}


/* ---- ngx.arg --------------------------------------------------------- */

static int
arg_index(lua_State *L)
{
    lua_Integer i = lua_tointeger(L, 2);

    if (!body_arg.active) {
        return luaL_error(L, "ngx.arg is only available in body_filter_by_lua*");
    }
    if (i == 1) {
        if (body_arg.replaced) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, body_arg.ref);
        } else {
            lua_pushlstring(L, body_arg.data, body_arg.len);
        }
        return 1;
    }
    if (i == 2) {
        lua_pushboolean(L, body_arg.eof);
        return 1;
    }
    lua_pushnil(L);
    return 1;
}


/* ngx.arg[1] accepts a string, a number, nil (empty) or an array of them. */
static void
push_chunk(lua_State *L, int idx)
{
    luaL_Buffer b;
    size_t i, n;

    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        lua_pushliteral(L, "");
        return;
    case LUA_TSTRING:
    case LUA_TNUMBER:
        lua_pushvalue(L, idx);
        lua_tostring(L, -1);
        return;
    case LUA_TTABLE:
        luaL_buffinit(L, &b);
        n = lua_objlen(L, idx);
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, (int) i);
            if (!lua_isstring(L, -1)) {
                luaL_error(L, "bad chunk data type: %s",
                           luaL_typename(L, -1));
            }
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        return;
    default:
        luaL_error(L, "bad chunk data type: %s", luaL_typename(L, idx));
    }
}


static int
arg_newindex(lua_State *L)
{
    lua_Integer i = lua_tointeger(L, 2);

    if (!body_arg.active) {
        return luaL_error(L, "ngx.arg is only available in body_filter_by_lua*");
    }
    if (i == 1) {
        push_chunk(L, 3);
        if (body_arg.replaced) {
            luaL_unref(L, LUA_REGISTRYINDEX, body_arg.ref);
        }
        body_arg.ref = luaL_ref(L, LUA_REGISTRYINDEX);
        body_arg.replaced = 1;
        return 0;
    }
    if (i == 2) {
        body_arg.eof = lua_toboolean(L, 3);
        return 0;
    }
    return luaL_error(L, "attempt to write to ngx.arg with the key out of "
                      "range");
}


/* ---- ngx.exec ---------------------------------------------------------- */

/*
 * The args ngx.exec gives the new location: the uri's own query, then '&'
 * and the args argument (a string, or a table encoded as ngx.encode_args
 * does); none of the client's args stay, as in OpenResty.
 */
static void
set_exec_args(lua_State *L, mp_request_t *r, const char *query,
              size_t qlen, int idx)
{
    const char *s = NULL;
    size_t len = 0;
    char *p;

    if (!lua_isnoneornil(L, idx)) {
        if (lua_type(L, idx) == LUA_TTABLE) {
            lua_getglobal(L, "ngx");
            lua_getfield(L, -1, "encode_args");
            if (!lua_isfunction(L, -1)) {
                luaL_error(L, "bad args arg: table args need "
                           "ngx.encode_args");
            }
            lua_pushvalue(L, idx);
            lua_call(L, 1, 1);
            lua_replace(L, idx);
            lua_pop(L, 1);
        }
        if (lua_type(L, idx) != LUA_TSTRING
            && lua_type(L, idx) != LUA_TNUMBER) {
            luaL_error(L, "bad args arg: string or table expected, got %s",
                       luaL_typename(L, idx));
        }
        s = lua_tolstring(L, idx, &len);
    }
    if (qlen == 0 || len == 0) {
        r->args.data = qlen ? mp_pool_strndup(r->pool, query, qlen)
                            : len ? mp_pool_strndup(r->pool, s, len) : NULL;
        r->args.len = qlen + len;
        return;
    }
    p = mp_pool_alloc(r->pool, qlen + 1 + len + 1);
    memcpy(p, query, qlen);
    p[qlen] = '&';
    memcpy(p + qlen + 1, s, len);
    p[qlen + 1 + len] = '\0';
    r->args.data = p;
    r->args.len = qlen + 1 + len;
}


static int
ngx_exec(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    mp_lua_ctx_t *ctx;
    const char *uri, *q;
    size_t len, ulen;
    int n = lua_gettop(L);

    if (n != 1 && n != 2) {
        return luaL_error(L, "expecting one or two arguments, but got %d", n);
    }
    mp_lua_check_phase(L, r, MP_LUA_PHASES_OUTPUT);
    uri = luaL_checklstring(L, 1, &len);
    if (len == 0) {
        return luaL_error(L, "The uri argument is empty");
    }
    if (r->header_sent) {
        return luaL_error(L, "attempt to call ngx.exec after sending out "
                          "response headers");
    }
    q = memchr(uri, '?', len);
    ulen = q ? (size_t) (q - uri) : len;
    set_exec_args(L, r, q ? q + 1 : NULL, q ? len - ulen - 1 : 0, 2);
    r->uri.data = mp_pool_strndup(r->pool, uri, ulen);
    r->uri.len = ulen;
    ctx = mp_lua_ctx(r);
    ctx->exit_kind = MP_LUA_EXIT_EXEC;
    ctx->exited = 1;
    return lua_yield(L, 0);
}


void
mp_lua_inject_phase_api(lua_State *L)
{
    lua_pushcfunction(L, ngx_exec);
    lua_setfield(L, -2, "exec");

    lua_createtable(L, 0, 0);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, arg_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, arg_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "arg");

    mp_phases_set_filters(run_header_filter, run_body_filter);
}
