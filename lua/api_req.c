/*
 * api_req.c: ngx.req, with OpenResty's results and error strings: the
 * method, URI and args (get_ and set_), request headers (get_headers,
 * set_header, clear_header, raw_header), the body (read_body,
 * discard_body, get_body_data, get_body_file, set_body_data,
 * set_body_file, get_post_args), http_version, start_time, is_internal.
 * Parsed args and headers come back as OpenResty has them: repeated keys
 * become arrays, a key without '=' is true, and a second return value
 * "truncated" says that more than max entries were present.
 *
 * Called by vm.c at VM creation (mp_lua_inject_req_api); every function
 * reads the current request through mp_lua_request(), which raises
 * "no request found" outside a request. Readers allocate nothing but the
 * Lua values returned; setters copy what they keep into the request pool,
 * since the request's own strings point into the connection's read
 * buffer. The body itself lives in worker/body.c.
 */
#include "core/mp_core.h"

/* http.h embeds struct event but does not include its definition. */
#include <event2/event_struct.h>

#include "lua/util.h"
#include "lua/vm.h"
#include "worker/body.h"
#include "worker/http.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <strings.h>

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


/*
 * Pushes the args of data[0..len) into the table on the top of the stack;
 * returns the number of results (the table, and "truncated" when more
 * than max pairs were present).
 */
static int
push_args(lua_State *L, const char *data, size_t len, int max)
{
    int segments, limit, truncated = 0;
    size_t i;
    char *buf;

    if (len == 0) {
        return 1;
    }

    /*
     * Like lua-nginx-module, the limit counts '&'-separated segments, empty
     * ones included, so "truncated" is decided before any unescaping.
     */
    segments = 1;
    for (i = 0; i < len; i++) {
        segments += (data[i] == '&');
    }
    limit = segments;
    if (max > 0 && segments > max) {
        limit = max;
        truncated = 1;
    }

    buf = mp_lua_scratch(len);
    memcpy(buf, data, len);
    parse_args(L, lua_gettop(L), buf, len, limit);

    if (truncated) {
        lua_pushliteral(L, "truncated");
        return 2;
    }
    return 1;
}


static int
req_get_uri_args(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    int max;

    max = opt_max(L, 1, MP_LUA_MAX_ARGS);
    if (lua_istable(L, 2)) {
        clear_table(L, 2);
        lua_settop(L, 2);
    } else {
        lua_settop(L, 1);
        lua_createtable(L, 0, 4);
    }
    return push_args(L, r->args.data, r->args.len, max);
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


/* ---- method ------------------------------------------------------------- */

typedef struct {
    int ngx;                 /* ngx.HTTP_* */
    enum http_method id;     /* http-parser's */
    const char *name;
} method_t;

static const method_t methods[] = {
    { 0x0002, HTTP_GET, "GET" },
    { 0x0004, HTTP_HEAD, "HEAD" },
    { 0x0008, HTTP_POST, "POST" },
    { 0x0010, HTTP_PUT, "PUT" },
    { 0x0020, HTTP_DELETE, "DELETE" },
    { 0x0040, HTTP_MKCOL, "MKCOL" },
    { 0x0080, HTTP_COPY, "COPY" },
    { 0x0100, HTTP_MOVE, "MOVE" },
    { 0x0200, HTTP_OPTIONS, "OPTIONS" },
    { 0x0400, HTTP_PROPFIND, "PROPFIND" },
    { 0x0800, HTTP_PROPPATCH, "PROPPATCH" },
    { 0x1000, HTTP_LOCK, "LOCK" },
    { 0x2000, HTTP_UNLOCK, "UNLOCK" },
    { 0x4000, HTTP_PATCH, "PATCH" },
    { 0x8000, HTTP_TRACE, "TRACE" },
};


/* Changes what get_method and $request_method say, not the framing. */
static int
req_set_method(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    lua_Integer m;
    size_t i;

    /* OpenResty (lua-resty-core): "bad method number" for a non-number */
    if (lua_type(L, 1) != LUA_TNUMBER) {
        return luaL_error(L, "bad method number");
    }
    m = lua_tointeger(L, 1);
    for (i = 0; i < mp_nelems(methods); i++) {
        if (methods[i].ngx == m) {
            r->method.data = (char *) methods[i].name;
            r->method.len = strlen(methods[i].name);
            r->method_id = (int) methods[i].id;
            return 0;
        }
    }
    return luaL_error(L, "unsupported HTTP method: %d", (int) m);
}


/* ---- URI and args --------------------------------------------------------- */

/* Bytes ngx.encode_args leaves alone: RFC 3986 unreserved plus !*'(). */
static int
arg_safe(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
           || (ch >= '0' && ch <= '9')
           || (ch != '\0' && strchr("-._~!*'()", ch) != NULL);
}


/*
 * The output of encode_args: with data NULL only len is counted, so that a
 * first pass sizes the result (and raises any error) before a second one
 * writes it; luaL_Buffer cannot be used while lua_next works the stack.
 */
typedef struct {
    char *data;
    size_t len;
} args_out_t;


static void
out_byte(args_out_t *o, char ch)
{
    if (o->data != NULL) {
        o->data[o->len] = ch;
    }
    o->len++;
}


static void
out_escaped(args_out_t *o, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char) s[i];

        if (arg_safe(ch)) {
            out_byte(o, (char) ch);
        } else {
            out_byte(o, '%');
            out_byte(o, hex[ch >> 4]);
            out_byte(o, hex[ch & 0xf]);
        }
    }
}


/* "key=value" for the value at index v, "key" for true, nothing for false. */
static void
out_pair(lua_State *L, args_out_t *o, int k, int v)
{
    const char *key, *s = NULL;
    size_t klen, len = 0;

    switch (lua_type(L, v)) {
    case LUA_TBOOLEAN:
        if (!lua_toboolean(L, v)) {
            return;
        }
        break;
    case LUA_TSTRING:
    case LUA_TNUMBER:
        s = lua_tolstring(L, v, &len);
        break;
    default:
        luaL_error(L, "attempt to use %s as query arg value",
                   luaL_typename(L, v));
        return;
    }
    if (o->len > 0) {
        out_byte(o, '&');
    }
    key = lua_tolstring(L, k, &klen);
    out_escaped(o, key, klen);
    if (s != NULL) {
        out_byte(o, '=');
        out_escaped(o, s, len);
    }
}


/*
 * Encodes the table at t as lua-nginx-module does for set_uri_args: pairs
 * in lua_next order, a table value repeating its key for each of its
 * values. A number value is converted in place on the stack, which
 * lua_next tolerates for values (not keys).
 */
static void
encode_args(lua_State *L, int t, args_out_t *o)
{
    int k, v;

    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        k = lua_gettop(L) - 1;
        v = k + 1;
        if (lua_type(L, k) != LUA_TSTRING) {
            luaL_error(L, "attempt to use a non-string key in the \"args\" "
                       "option table");
        }
        if (lua_type(L, v) == LUA_TTABLE) {
            lua_pushnil(L);
            while (lua_next(L, v) != 0) {
                out_pair(L, o, k, lua_gettop(L));
                lua_pop(L, 1);
            }
        } else {
            out_pair(L, o, k, v);
        }
        lua_pop(L, 1);
    }
}


static int
req_set_uri_args(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    args_out_t o = { NULL, 0 };
    const char *s;
    size_t len;

    if (lua_gettop(L) != 1) {
        return luaL_error(L, "expecting 1 argument but seen %d",
                          lua_gettop(L));
    }
    switch (lua_type(L, 1)) {
    case LUA_TSTRING:
    case LUA_TNUMBER:
        s = lua_tolstring(L, 1, &len);
        r->args.data = mp_pool_strndup(r->pool, s, len);
        r->args.len = len;
        return 0;
    case LUA_TTABLE:
        encode_args(L, 1, &o);
        o.data = mp_pool_nalloc(r->pool, o.len + 1);
        o.len = 0;
        encode_args(L, 1, &o);
        o.data[o.len] = '\0';
        r->args.data = o.data;
        r->args.len = o.len;
        return 0;
    default:
        return luaL_argerror(L, 1, lua_pushfstring(L, "string, number, or "
                             "table expected, but got %s",
                             luaL_typename(L, 1)));
    }
}


/* lua-nginx-module refuses control bytes in a URI unless told "binary". */
static int
uri_unsafe(unsigned char ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}


/* The URI as OpenResty quotes it in errors: \xHH for '"', '\' and non-ASCII. */
static void
push_quoted_uri(lua_State *L, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char *q = mp_lua_scratch(len * 4 + 1), *p = q;
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char) s[i];

        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 0xf];
        } else {
            *p++ = (char) ch;
        }
    }
    lua_pushlstring(L, q, (size_t) (p - q));
}


/*
 * set_uri(uri, jump?, binary?): changes $uri only; with jump (rewrite
 * phase only) the location is matched again for the new URI and the
 * phases start over, as nginx's "rewrite ... last".
 */
static int
req_set_uri(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    int n = lua_gettop(L), jump, binary;
    const char *uri;
    size_t len, i;
    mp_lua_ctx_t *ctx;

    if (n < 1 || n > 3) {
        return luaL_error(L, "expecting 1, 2 or 3 arguments but seen %d", n);
    }
    uri = luaL_checklstring(L, 1, &len);
    if (len == 0) {
        return luaL_error(L, "attempt to use zero-length uri");
    }
    jump = lua_toboolean(L, 2);
    binary = lua_toboolean(L, 3);
    if (!binary) {
        for (i = 0; i < len; i++) {
            if (uri_unsafe((unsigned char) uri[i])) {
                push_quoted_uri(L, uri, len);
                return luaL_error(L, "unsafe byte \"0x%02x\" in uri \"%s\" "
                                  "(maybe you want to set the 'binary' "
                                  "argument?)", (unsigned char) uri[i],
                                  lua_tostring(L, -1));
            }
        }
    }
    if (jump) {
        mp_lua_check_phase(L, r, MP_LUA_PHASE(MP_PHASE_REWRITE));
    }
    r->uri.data = mp_pool_strndup(r->pool, uri, len);
    r->uri.len = len;
    if (!jump) {
        return 0;
    }
    /*
     * The runner sees the jump and re-runs the location (vm.c). nginx
     * marks the request internal on a rewrite cycle: OpenResty answers
     * is_internal() == true in the new location.
     */
    r->internal = 1;
    ctx = mp_lua_ctx(r);
    ctx->exit_kind = MP_LUA_EXIT_JUMP;
    ctx->exited = 1;
    return lua_yield(L, 0);
}


/* ---- request headers ------------------------------------------------------ */

/* Bytes lua-resty-core escapes as %XX in a header name it is given. */
static int
name_unsafe(unsigned char ch)
{
    return ch <= 0x20 || ch >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", ch);
}


static int
value_unsafe(unsigned char ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}


/*
 * A pool copy of s with the bytes unsafe() rejects written as %XX, which
 * is how OpenResty keeps CR/LF out of the headers a request carries on.
 */
static mp_str_t
header_copy(mp_request_t *r, const char *s, size_t len,
            int (*unsafe)(unsigned char))
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, n = len;
    mp_str_t out;
    char *p;

    for (i = 0; i < len; i++) {
        n += unsafe((unsigned char) s[i]) ? 2 : 0;
    }
    out.data = p = mp_pool_nalloc(r->pool, n + 1);
    out.len = n;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char) s[i];

        if (unsafe(ch)) {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 0xf];
        } else {
            *p++ = (char) ch;
        }
    }
    *p = '\0';
    return out;
}


/* $host follows a new Host header: lower case, no port, no final dot. */
static void
update_host(mp_request_t *r, const mp_str_t *v)
{
    size_t i, n;
    char *h;

    if (v == NULL || v->len == 0) {
        r->host.data = NULL;
        r->host.len = 0;
        return;
    }
    n = v->len;
    for (i = n; i > 0; i--) {
        if (v->data[i - 1] == ':') {
            n = i - 1;
            break;
        }
        if (v->data[i - 1] == ']') {
            break;
        }
    }
    h = mp_pool_nalloc(r->pool, n + 1);
    for (i = 0; i < n; i++) {
        h[i] = (char) mp_lua_lower((unsigned char) v->data[i]);
    }
    if (n > 0 && h[n - 1] == '.') {
        n--;
    }
    h[n] = '\0';
    r->host.data = h;
    r->host.len = n;
}


static void
append_header(mp_request_t *r, const mp_str_t *name, const mp_str_t *value)
{
    if (r->nheaders == r->headers_cap) {
        size_t cap = r->headers_cap ? r->headers_cap * 2 : 8;
        mp_header_t *h = mp_pool_alloc(r->pool, cap * sizeof(*h));

        if (r->nheaders) {
            memcpy(h, r->headers, r->nheaders * sizeof(*h));
        }
        r->headers = h;
        r->headers_cap = cap;
    }
    r->headers[r->nheaders].name = *name;
    r->headers[r->nheaders].value = *value;
    r->nheaders++;
}


/*
 * nginx's rule: the first header of that name takes the value in place,
 * later ones go; with no value (or "") all go; with none present the
 * header is appended.
 */
static void
replace_header(mp_request_t *r, const mp_str_t *name, const mp_str_t *value)
{
    size_t i, o = 0;
    int matched = 0;

    for (i = 0; i < r->nheaders; i++) {
        mp_header_t *h = &r->headers[i];

        if (h->name.len == name->len
            && strncasecmp(h->name.data, name->data, name->len) == 0)
        {
            if (value == NULL || matched) {
                continue;
            }
            h->value = *value;
            matched = 1;
        }
        r->headers[o++] = *h;
    }
    r->nheaders = o;
    if (!matched && value != NULL) {
        append_header(r, name, value);
    }
    if (name->len == 4 && strncasecmp(name->data, "Host", 4) == 0) {
        update_host(r, value);
    }
}


/* tostring() of the value at idx, as lua-resty-core converts values. */
static const char *
to_string(lua_State *L, int idx, size_t *len)
{
    if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER) {
        return lua_tolstring(L, idx, len);
    }
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    lua_replace(L, idx);
    return lua_tolstring(L, idx, len);
}


static mp_str_t
value_at(lua_State *L, mp_request_t *r, int idx)
{
    const char *s;
    size_t len;

    s = to_string(L, idx, &len);
    return header_copy(r, s, len, value_unsafe);
}


/* set_header(name, value): a string, a number, a table of them, or nil. */
static int
req_set_header(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    mp_str_t name, value;
    const char *s;
    size_t len, i, n;

    if (lua_isnoneornil(L, 1)) {
        return luaL_error(L, "bad 'name' argument: string expected, got nil");
    }
    lua_settop(L, 2);
    s = to_string(L, 1, &len);
    name = header_copy(r, s, len, name_unsafe);

    if (lua_type(L, 2) == LUA_TTABLE) {
        n = lua_objlen(L, 2);
        if (n == 0) {
            replace_header(r, &name, NULL);
            return 0;
        }
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, 2, (int) i);
            value = value_at(L, r, lua_gettop(L));
            if (i == 1) {
                replace_header(r, &name, &value);
            } else {
                append_header(r, &name, &value);
            }
            lua_pop(L, 1);
        }
        return 0;
    }
    if (lua_isnil(L, 2)) {
        replace_header(r, &name, NULL);
        return 0;
    }
    value = value_at(L, r, 2);
    replace_header(r, &name, value.len ? &value : NULL);
    return 0;
}


/* clear_header(name): nil is quietly ignored, as in OpenResty. */
static int
req_clear_header(lua_State *L)
{
    lua_settop(L, 1);
    if (lua_isnil(L, 1)) {
        return 0;
    }
    lua_pushnil(L);
    return req_set_header(L);
}


static int
req_raw_header(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    mp_str_t s = mp_body_raw_header(r, !lua_toboolean(L, 1));

    lua_pushlstring(L, s.data ? s.data : "", s.len);
    return 1;
}


/* ---- misc ------------------------------------------------------------- */

/* Seconds since the epoch when the request began, ms precision (float). */
static int
req_start_time(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    lua_pushnumber(L, (double) r->start.tv_sec
                          + (double) (r->start.tv_nsec / 1000000) / 1000.0);
    return 1;
}


static int
req_is_internal(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    lua_pushboolean(L, r->internal);
    return 1;
}


/* ---- body ----------------------------------------------------------------- */

/*
 * The body is read in full before the first handler runs (bounded by
 * client_max_body_size, spooled to a file past client_body_buffer_size),
 * so read_body has nothing to wait for; it only makes the body visible to
 * the other functions, as in OpenResty, where it does not exist until
 * read_body was called.
 */
static int
req_read_body(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    mp_lua_ctx(r)->body_read = 1;
    return 0;
}


/* Before read_body the body is dropped; after it, nothing changes. */
static int
req_discard_body(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    if (!mp_lua_ctx(r)->body_read) {
        mp_body_discard(r);
    }
    return 0;
}


static int
req_get_body_data(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    if (!mp_lua_ctx(r)->body_read || r->body_file != NULL
        || r->body.len == 0)
    {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, r->body.data, r->body.len);
    return 1;
}


static int
req_get_body_file(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);

    if (!mp_lua_ctx(r)->body_read || r->body_file == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, r->body_file->path);
    return 1;
}


/* The body changed: Content-Length says its new length, as in nginx. */
static void
set_content_length(mp_request_t *r, uint64_t len)
{
    static const mp_str_t name = mp_string("Content-Length");
    char buf[24];
    mp_str_t value;
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long) len);

    value.data = mp_pool_strndup(r->pool, buf, (size_t) n);
    value.len = (size_t) n;
    replace_header(r, &name, &value);
    r->content_length = (int64_t) len;
}


static int
req_set_body_data(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    const char *s;
    size_t len;

    if (lua_gettop(L) != 1) {
        return luaL_error(L, "expecting 1 arguments but seen %d",
                          lua_gettop(L));
    }
    s = luaL_checklstring(L, 1, &len);
    if (!mp_lua_ctx(r)->body_read) {
        return luaL_error(L, "request body not read yet");
    }
    mp_body_set_data(r, s, len);
    set_content_length(r, len);
    return 0;
}


static int
req_set_body_file(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    const char *path, *err;
    size_t len;
    int n = lua_gettop(L);

    if (n != 1 && n != 2) {
        return luaL_error(L, "expecting 1 or 2 arguments but seen %d", n);
    }
    path = luaL_checklstring(L, 1, &len);
    if (!mp_lua_ctx(r)->body_read) {
        return luaL_error(L, "request body not read yet");
    }
    if (mp_body_set_file(r, path, len, lua_toboolean(L, 2), &err) != MP_OK) {
        return luaL_error(L, "%s \"%s\" failed", err, path);
    }
    set_content_length(r, r->body_file->size);
    return 0;
}


/* get_post_args(max): the body as x-www-form-urlencoded, any Content-Type. */
static int
req_get_post_args(lua_State *L)
{
    mp_request_t *r = mp_lua_request(L);
    int max;

    max = opt_max(L, 1, MP_LUA_MAX_ARGS);
    if (!mp_lua_ctx(r)->body_read) {
        return luaL_error(L, "no request body found; maybe you should turn "
                          "on lua_need_request_body?");
    }
    if (r->body_file != NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "request body in temp file not supported");
        return 2;
    }
    lua_settop(L, 1);
    lua_createtable(L, 0, 4);
    return push_args(L, r->body.data, r->body.len, max);
}


static const luaL_Reg req_funcs[] = {
    { "read_body", req_read_body },
    { "discard_body", req_discard_body },
    { "get_body_data", req_get_body_data },
    { "get_body_file", req_get_body_file },
    { "set_body_data", req_set_body_data },
    { "set_body_file", req_set_body_file },
    { "get_post_args", req_get_post_args },
    { "get_method", req_get_method },
    { "set_method", req_set_method },
    { "http_version", req_http_version },
    { "get_uri_args", req_get_uri_args },
    { "set_uri_args", req_set_uri_args },
    { "set_uri", req_set_uri },
    { "set_header", req_set_header },
    { "clear_header", req_clear_header },
    { "raw_header", req_raw_header },
    { "start_time", req_start_time },
    { "is_internal", req_is_internal },
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
