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

/* Sets r->args from a string or a table (ngx.encode_args style). */
static void
set_exec_args(lua_State *L, mp_request_t *r, int idx)
{
    const char *s;
    size_t len;

    if (lua_isnoneornil(L, idx)) {
        return;
    }
    if (lua_type(L, idx) == LUA_TTABLE) {
        /* encode through ngx.encode_args when it exists */
        lua_getglobal(L, "ngx");
        lua_getfield(L, -1, "encode_args");
        if (!lua_isfunction(L, -1)) {
            luaL_error(L, "bad args arg: table args need ngx.encode_args");
        }
        lua_pushvalue(L, idx);
        lua_call(L, 1, 1);
        lua_replace(L, idx);
        lua_pop(L, 1);
    }
    if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER) {
        luaL_error(L, "bad args arg: string or table expected, got %s",
                   luaL_typename(L, idx));
    }
    s = lua_tolstring(L, idx, &len);
    r->args.data = mp_pool_strndup(r->pool, s, len);
    r->args.len = len;
}


static int
ngx_exec(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    mp_lua_ctx_t *ctx;
    const char *uri, *q;
    size_t len;
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
    r->uri.data = mp_pool_strndup(r->pool, uri, q ? (size_t) (q - uri) : len);
    r->uri.len = q ? (size_t) (q - uri) : len;
    if (q != NULL) {
        r->args.data = mp_pool_strndup(r->pool, q + 1, len - r->uri.len - 1);
        r->args.len = len - r->uri.len - 1;
    } else if (n == 2 && !lua_isnil(L, 2)) {
        r->args.len = 0;
    }
    if (n == 2) {
        set_exec_args(L, r, 2);
    }
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
