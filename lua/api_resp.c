/*
 * api_resp.c: the response half of ngx.*: ngx.say, ngx.print, ngx.flush,
 * ngx.exit, ngx.status and ngx.header, with OpenResty's argument rules,
 * return values and error strings.
 *
 * Output is appended to the request's pending buffer (worker/http.c); the
 * first output fixes the status and headers, as it does in OpenResty,
 * where it sends them.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "lua/util.h"
#include "lua/vm.h"
#include "worker/phases.h"

#include <stdio.h>

#define MP_LUA_HEADER_NAME_MAX 256


/* ---- ngx.say / ngx.print ------------------------------------------------ */

/*
 * OpenResty's notion of an array: every key a positive integer; holes are
 * allowed and print as "nil". Returns the largest index, or -1 otherwise.
 */
static lua_Number
array_max(lua_State *L, int idx)
{
    lua_Number max = 0, k;

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return -1;
        }
        k = lua_tonumber(L, -1);
        if (k < 1 || k != (lua_Number) (lua_Integer) k) {
            lua_pop(L, 1);
            return -1;
        }
        if (k > max) {
            max = k;
        }
    }
    return max;
}


/* Raises unless the table at idx holds only printable values, nested. */
static void
check_table(lua_State *L, int idx, int arg, const char *fname)
{
    lua_Number max = array_max(L, idx);
    size_t i, n;
    int t;

    if (max < 0) {
        luaL_error(L, "bad argument #%d to '%s' (non-array table found)",
                   arg, fname);
    }
    n = (size_t) max;
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int) i);
        t = lua_type(L, -1);
        if (t == LUA_TTABLE) {
            check_table(L, lua_gettop(L), arg, fname);
        } else if (t == LUA_TFUNCTION || t == LUA_TUSERDATA
                   || t == LUA_TTHREAD
                   || (t == LUA_TLIGHTUSERDATA
                       && lua_touserdata(L, -1) != NULL)) {
            luaL_error(L, "bad argument #%d to '%s' (bad data type %s found)",
                       arg, fname, luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
}


/*
 * Where ngx.say/ngx.print put their bytes: straight into the response, or,
 * when a body filter will see them, into one scratch buffer first, so that
 * the filter gets a whole call's output as one chunk, as in OpenResty.
 */
typedef struct {
    mp_request_t *r;
    int buffered;      /* 0: write through to the response */
    size_t len;
} out_sink_t;

/* Kept across calls; the filter that runs in between cannot print. */
static char *scratch;
static size_t scratch_cap;


static void
sink_add(out_sink_t *out, const char *s, size_t len)
{
    if (!out->buffered) {
        mp_http_output(out->r, s, len);
        return;
    }
    if (len == 0) {
        return; /* the scratch buffer may not exist yet */
    }
    if (out->len + len > scratch_cap) {
        scratch_cap = mp_max(scratch_cap * 2, out->len + len);
        scratch = mp_realloc(scratch, scratch_cap);
    }
    memcpy(scratch + out->len, s, len);
    out->len += len;
}


/* Appends one value (recursing into array tables); raises on bad types. */
static void
output_value(lua_State *L, out_sink_t *out, int idx, int arg,
             const char *fname)
{
    char num[MP_LUA_NUM_LEN];
    const char *s;
    size_t len, i, n;

    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        sink_add(out, s, len);
        return;
    case LUA_TNUMBER:
        len = mp_lua_format_number(lua_tonumber(L, idx), num);
        sink_add(out, num, len);
        return;
    case LUA_TNIL:
        sink_add(out, "nil", 3);
        return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) {
            sink_add(out, "true", 4);
        } else {
            sink_add(out, "false", 5);
        }
        return;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            sink_add(out, "null", 4);
            return;
        }
        break;
    case LUA_TTABLE:
        if (idx < 0) {
            idx = lua_gettop(L) + idx + 1;
        }
        n = (size_t) array_max(L, idx); /* checked before output began */
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, (int) i);
            output_value(L, out, -1, arg, fname);
            lua_pop(L, 1);
        }
        return;
    default:
        break;
    }
    luaL_error(L, "bad argument #%d to '%s' (bad data type %s found)", arg,
               fname, luaL_typename(L, idx));
}


static int
output(lua_State *L, const char *fname, int newline)
{
    mp_request_t *r = mp_lua_request(L);
    out_sink_t out;
    int i, n = lua_gettop(L);

    /* OpenResty checks the phase before eof: a filter gets the error */
    mp_lua_check_phase(L, r, MP_LUA_PHASES_OUTPUT);
    if (r->eof) {
        lua_pushnil(L);
        lua_pushliteral(L, "seen eof");
        return 2;
    }
    /* check every argument before the first byte is appended */
    for (i = 1; i <= n; i++) {
        int t = lua_type(L, i);

        if (t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTHREAD
            || (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, i) != NULL)) {
            return luaL_error(L, "bad argument #%d to '%s' (string, number, "
                              "boolean, nil, ngx.null, or array table "
                              "expected, but got %s)", i, fname,
                              luaL_typename(L, i));
        }
        if (t == LUA_TTABLE) {
            check_table(L, i, i, fname);
        }
    }
    out.r = r;
    out.len = 0;
    out.buffered = mp_phases_has_body_filter(r);
    for (i = 1; i <= n; i++) {
        output_value(L, &out, i, i, fname);
    }
    if (newline) {
        sink_add(&out, "\n", 1);
    }
    if (out.buffered) {
        if (out.len > 0) {
            mp_http_output(r, scratch, out.len);
        } else {
            /* OpenResty: no data, no filter call; the header still goes */
            mp_http_send_header(r);
        }
    }
    lua_pushinteger(L, 1);
    return 1;
}


static int
ngx_say(lua_State *L)
{
    return output(L, "say", 1);
}


static int
ngx_print(lua_State *L)
{
    return output(L, "print", 0);
}


static int
ngx_flush(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    mp_lua_check_phase(L, r, MP_LUA_PHASES_OUTPUT);
    if (r->eof) {
        lua_pushnil(L);
        lua_pushliteral(L, "seen eof");
        return 2;
    }
    if (r->http_minor == 0) {
        /* HTTP/1.0 has no chunks: the response is buffered whole so it can
         * carry a Content-Length, as lua_http10_buffering does */
        lua_pushnil(L);
        lua_pushliteral(L, "buffering");
        return 2;
    }
    if (mp_http_flush(r) != MP_OK) {
        lua_pushnil(L);
        lua_pushliteral(L, "nginx output filter error");
        return 2;
    }
    lua_pushinteger(L, 1);
    return 1;
}


static int
ngx_exit(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    mp_lua_ctx_t *ctx = mp_lua_ctx(r);

    if (lua_gettop(L) != 1) {
        return luaL_error(L, "expecting one argument");
    }
    mp_lua_check_phase(L, r, MP_LUA_PHASES_OUTPUT);
    ctx->exit_code = (int) luaL_checkinteger(L, 1);
    ctx->exit_kind = MP_LUA_EXIT_STATUS;
    if (ctx->exit_code >= 300 && r->header_sent
        && ctx->exit_code != r->status) {
        mp_log_error(MP_LOG_ERR, 0, "attempt to set status %d via ngx.exit "
                     "after sending out the response status %d",
                     ctx->exit_code, r->status);
    }
    ctx->exited = 1;
    return lua_yield(L, 0);
}


/* ---- ngx.status ----------------------------------------------------------- */

/* ngx.status and ngx.header are writable until the headers are fixed, and
 * in the header filter, whose job it is to change them. */
static int
headers_writable(const mp_request_t *r)
{
    return !r->header_sent || r->phase == MP_PHASE_HEADER_FILTER;
}


static int
ngx_index(lua_State *L)
{
    const char *key = lua_tostring(L, 2);
    mp_request_t *r;

    if (key == NULL) {
        return 0;
    }
    if (strcmp(key, "status") == 0) {
        r = mp_lua_request(L);
        lua_pushinteger(L, r->status);
        return 1;
    }
    if (strcmp(key, "ctx") == 0) {
        mp_lua_ctx_push(L, mp_lua_request(L));
        return 1;
    }
    if (strcmp(key, "headers_sent") == 0) {
        r = mp_lua_request(L);
        lua_pushboolean(L, r->header_sent && r->http_minor > 0);
        return 1;
    }
    return 0;
}


static int
ngx_newindex(lua_State *L)
{
    const char *key = lua_tostring(L, 2);
    mp_request_t *r;
    lua_Integer status;

    if (key != NULL && strcmp(key, "ctx") == 0) {
        lua_settop(L, 3);
        mp_lua_ctx_set(L, mp_lua_request(L));
        return 0;
    }
    if (key == NULL || strcmp(key, "status") != 0) {
        lua_rawset(L, 1);
        return 0;
    }
    r = mp_lua_request(L);
    if (!headers_writable(r)) {
        mp_log_error(MP_LOG_ERR, 0, "attempt to set ngx.status after "
                     "sending out response headers");
        return 0;
    }
    status = luaL_checkinteger(L, 3);
    if (status < 100 || status > 999) {
        return luaL_error(L, "invalid HTTP status code %d", (int) status);
    }
    r->status = (int) status;
    return 0;
}


/* ---- ngx.redirect, ngx.send_headers, ngx.eof --------------------------- */

static int
ngx_redirect(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    mp_lua_ctx_t *ctx;
    lua_Integer status = 302;
    const char *uri;
    size_t len;
    int n = lua_gettop(L);

    if (n != 1 && n != 2) {
        return luaL_error(L, "expecting one or two arguments");
    }
    mp_lua_check_phase(L, r, MP_LUA_PHASES_OUTPUT);
    uri = luaL_checklstring(L, 1, &len);
    if (n == 2) {
        status = luaL_checkinteger(L, 2);
        if (status != 301 && status != 302 && status != 303 && status != 307
            && status != 308) {
            return luaL_error(L, "only ngx.HTTP_MOVED_TEMPORARILY, "
                              "ngx.HTTP_MOVED_PERMANENTLY, "
                              "ngx.HTTP_PERMANENT_REDIRECT, "
                              "ngx.HTTP_SEE_OTHER, and "
                              "ngx.HTTP_TEMPORARY_REDIRECT are allowed");
        }
    }
    if (r->header_sent) {
        return luaL_error(L, "attempt to call ngx.redirect after sending out "
                          "the headers");
    }
    if (memchr(uri, '\r', len) != NULL || memchr(uri, '\n', len) != NULL) {
        return luaL_error(L, "invalid redirect uri: CR or LF found");
    }
    mp_http_set_out_header(r, "Location", 8, uri, len);
    ctx = mp_lua_ctx(r);
    ctx->exit_code = (int) status;
    ctx->exit_kind = MP_LUA_EXIT_STATUS;
    ctx->exited = 1;
    return lua_yield(L, 0);
}


static int
ngx_send_headers(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    mp_lua_check_phase(L, r, MP_LUA_PHASES_OUTPUT);
    if (mp_http_send_header(r) != MP_OK) {
        lua_pushnil(L);
        lua_pushliteral(L, "nginx output filter error");
        return 2;
    }
    lua_pushinteger(L, 1);
    return 1;
}


static int
ngx_eof(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    if (lua_gettop(L) != 0) {
        return luaL_error(L, "no argument is expected");
    }
    mp_lua_check_phase(L, r, MP_LUA_PHASES_OUTPUT);
    if (r->eof) {
        lua_pushnil(L);
        lua_pushliteral(L, "seen eof");
        return 2;
    }
    mp_http_eof(r);
    lua_pushinteger(L, 1);
    return 1;
}


/* ---- ngx.header ---------------------------------------------------------- */

/* Header name from a Lua key: '_' -> '-', known names in canonical case. */
static size_t
header_name(lua_State *L, char *buf)
{
    static const char *const canonical[] = {
        "Content-Type", "Content-Length", "Location", "Cache-Control",
        "Last-Modified", "Set-Cookie", "Content-Encoding", "ETag",
        "Expires", "Refresh", "WWW-Authenticate",
    };
    size_t len, i;
    const char *key;

    if (lua_type(L, 2) != LUA_TSTRING) {
        luaL_argerror(L, 2, "string expected");
    }
    key = lua_tolstring(L, 2, &len);
    if (len == 0 || len >= MP_LUA_HEADER_NAME_MAX) {
        luaL_argerror(L, 2, "bad header name");
    }
    for (i = 0; i < len; i++) {
        buf[i] = key[i] == '_' ? '-' : key[i];
    }
    buf[len] = '\0';
    for (i = 0; i < mp_nelems(canonical); i++) {
        if (strcasecmp(buf, canonical[i]) == 0) {
            memcpy(buf, canonical[i], len);
            break;
        }
    }
    return len;
}


static int
header_index(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    char name[MP_LUA_HEADER_NAME_MAX];
    size_t len = header_name(L, name), i;
    int found = 0;

    for (i = 0; i < r->nout_headers; i++) {
        mp_header_t *h = &r->out_headers[i];

        if (h->name.len != len || strncasecmp(h->name.data, name, len) != 0) {
            continue;
        }
        if (found == 1) {
            /* a second value: turn the result into a table */
            lua_createtable(L, 4, 0);
            lua_insert(L, -2);
            lua_rawseti(L, -2, 1);
        }
        lua_pushlstring(L, h->value.data, h->value.len);
        if (found >= 1) {
            lua_rawseti(L, -2, found + 1);
        }
        found++;
    }
    if (!found) {
        lua_pushnil(L);
    }
    return 1;
}


/*
 * A header value as a string: numbers and booleans are converted, CR and LF
 * are sent as %0D and %0A so a value can never split the response (what
 * OpenResty does). The result stays on the stack at idx.
 */
static const char *
header_value(lua_State *L, int idx, size_t *len)
{
    const char *v;
    luaL_Buffer b;
    size_t i;

    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TNUMBER:
        break;
    case LUA_TBOOLEAN:
        lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
        lua_replace(L, idx);
        break;
    default:
        luaL_error(L, "attempt to set ngx.header.HEADER to a %s value",
                   luaL_typename(L, idx));
    }
    v = lua_tolstring(L, idx, len);
    if (memchr(v, '\r', *len) == NULL && memchr(v, '\n', *len) == NULL) {
        return v;
    }
    luaL_buffinit(L, &b);
    for (i = 0; i < *len; i++) {
        if (v[i] == '\r') {
            luaL_addstring(&b, "%0D");
        } else if (v[i] == '\n') {
            luaL_addstring(&b, "%0A");
        } else {
            luaL_addchar(&b, v[i]);
        }
    }
    luaL_pushresult(&b);
    lua_replace(L, idx);
    return lua_tolstring(L, idx, len);
}


static int
header_newindex(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    char name[MP_LUA_HEADER_NAME_MAX];
    size_t len = header_name(L, name), vlen, i, n;
    const char *v;

    if (!headers_writable(r)) {
        mp_log_error(MP_LOG_ERR, 0, "attempt to set ngx.header.HEADER after "
                     "sending out response headers");
        return 0;
    }
    if (memchr(name, '\r', len) || memchr(name, '\n', len)
        || memchr(name, ':', len)) {
        return luaL_error(L, "invalid header name");
    }
    if (lua_type(L, 3) == LUA_TSTRING && lua_objlen(L, 3) == 0) {
        lua_pushnil(L); /* OpenResty: an empty value clears the header */
        lua_replace(L, 3);
    }
    switch (lua_type(L, 3)) {
    case LUA_TNIL:
        mp_http_clear_out_header(r, name, len);
        if (len == 12 && strcasecmp(name, "Content-Type") == 0) {
            r->no_default_type = 1;
        }
        return 0;
    case LUA_TTABLE:
        n = lua_objlen(L, 3);
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, 3, (int) i);
            header_value(L, lua_gettop(L), &vlen);
            lua_pop(L, 1);
        }
        mp_http_clear_out_header(r, name, len);
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, 3, (int) i);
            v = header_value(L, lua_gettop(L), &vlen);
            mp_http_add_out_header(r, name, len, v, vlen);
            lua_pop(L, 1);
        }
        return 0;
    default:
        v = header_value(L, 3, &vlen);
        mp_http_set_out_header(r, name, len, v, vlen);
        return 0;
    }
}


/* ---- ngx.resp.get_headers -------------------------------------------- */

/* Lookups in a get_headers() table ignore case and take '_' for '-'. */
static int
resp_headers_index(lua_State *L)
{
    char name[MP_LUA_HEADER_NAME_MAX];
    const char *key;
    size_t len, i;

    if (lua_type(L, 2) != LUA_TSTRING) {
        return 0;
    }
    key = lua_tolstring(L, 2, &len);
    if (len >= sizeof(name)) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        char ch = key[i] == '_' ? '-' : key[i];

        name[i] = (char) (ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch);
    }
    lua_pushlstring(L, name, len);
    lua_rawget(L, 1);
    return 1;
}


static int
resp_get_headers(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    lua_Integer max = luaL_optinteger(L, 1, 100);
    int raw = lua_toboolean(L, 2);
    char name[MP_LUA_HEADER_NAME_MAX];
    size_t i, j, count = 0;

    lua_createtable(L, 0, (int) r->nout_headers);
    for (i = 0; i < r->nout_headers; i++) {
        mp_header_t *h = &r->out_headers[i];

        if (h->name.len == 0 || h->name.len >= sizeof(name)) {
            continue;
        }
        if (max > 0 && count == (size_t) max) {
            lua_pushliteral(L, "truncated");
            return 2;
        }
        count++;
        for (j = 0; j < h->name.len; j++) {
            char ch = h->name.data[j];

            name[j] = (char) (!raw && ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch);
        }
        lua_pushlstring(L, name, h->name.len);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, h->value.data, h->value.len);
        } else {
            if (lua_type(L, -1) != LUA_TTABLE) {
                lua_createtable(L, 4, 0);
                lua_insert(L, -2);
                lua_rawseti(L, -2, 1);
            }
            lua_pushlstring(L, h->value.data, h->value.len);
            lua_rawseti(L, -2, (int) lua_objlen(L, -2) + 1);
        }
        lua_rawset(L, -3);
    }
    if (!raw) {
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_setmetatable(L, -2);
    }
    return 1;
}


void
mp_lua_inject_resp_api(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "say", ngx_say },
        { "print", ngx_print },
        { "flush", ngx_flush },
        { "exit", ngx_exit },
        { "redirect", ngx_redirect },
        { "send_headers", ngx_send_headers },
        { "eof", ngx_eof },
        { NULL, NULL },
    };
    const luaL_Reg *f;

    for (f = fns; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }

    /* ngx.resp.get_headers, with its lookup metatable as upvalue */
    lua_createtable(L, 0, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, resp_headers_index);
    lua_setfield(L, -2, "__index");
    lua_pushcclosure(L, resp_get_headers, 1);
    lua_setfield(L, -2, "get_headers");
    lua_setfield(L, -2, "resp");

    /* ngx.header: a proxy table */
    lua_createtable(L, 0, 0);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, header_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, header_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "header");

    /* ngx.status through ngx's own metatable */
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, ngx_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ngx_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
}
