/*
 * api_var.c: ngx.var, a table whose metatable reads and writes nginx-style
 * variables of the current request ($uri, $args, $arg_NAME, $http_NAME,
 * ...). Names are case-insensitive, values are strings, and an absent or
 * unknown variable reads as nil, as in OpenResty. $args and $limit_rate
 * are the writable built-ins; writing another built-in raises OpenResty's
 * error. Unlike OpenResty, which only assigns variables declared with
 * "set $foo ''" in nginx.conf, any other name is a user variable that
 * Lua may assign and read back for the rest of the request (log phase
 * included).
 *
 * The variables are a table of name -> getter (and optional setter), so a
 * new variable is a new row and a function. Getters push exactly one
 * value and never allocate outside Lua.
 */
#include "core/mp_core.h"

/* http.h embeds struct event but does not include its definition. */
#include <event2/event_struct.h>

#include "core/time.h"
#include "lua/util.h"
#include "lua/vm.h"
#include "worker/body.h"
#include "worker/http.h"
#include "worker/tls.h"

#include <arpa/inet.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* Variable names longer than this are folded in the scratch buffer. */
#define MP_VAR_NAME_STACK 128

typedef int (*var_get_cb)(lua_State *L, mp_request_t *r);
typedef void (*var_set_cb)(lua_State *L, mp_request_t *r, const char *value,
                           size_t len, int isnil);

typedef struct {
    mp_str_t name;
    var_get_cb get;
    var_set_cb set;     /* NULL: the variable is not changeable */
} var_t;


static int
push_str(lua_State *L, const mp_str_t *s)
{
    lua_pushlstring(L, s->data, s->len);
    return 1;
}


/*
 * nginx reports $args as not found when the request has no '?' or nothing
 * after it, but as "" once Lua assigned "" to it (ngx.var.args or
 * ngx.req.set_uri_args); this marks the former case of an assignment.
 */
static char empty_args[1];


/* An empty $args read from the request line (not assigned by Lua). */
static int
args_from_request(const mp_request_t *r)
{
    const mp_buf_t *in = &r->conn->in;

    return r->args.data == NULL
           || (r->args.data >= in->data && r->args.data <= in->data + in->cap);
}


static int
push_int(lua_State *L, long long n)
{
    char buf[24];
    int len = snprintf(buf, sizeof(buf), "%lld", n);

    lua_pushlstring(L, buf, (size_t) len);
    return 1;
}


static int
var_uri(lua_State *L, mp_request_t *r)
{
    return push_str(L, &r->uri);
}


static int
var_args(lua_State *L, mp_request_t *r)
{
    if (r->args.len == 0 && args_from_request(r)) {
        lua_pushnil(L);
        return 1;
    }
    return push_str(L, &r->args);
}


static void
set_args(lua_State *L, mp_request_t *r, const char *value, size_t len,
         int isnil)
{
    (void) L;
    if (isnil || len == 0) {
        r->args.data = isnil ? NULL : empty_args;
        r->args.len = 0;
        return;
    }
    /* The request pool outlives every reader of r->args. */
    r->args.data = mp_pool_nalloc(r->pool, len);
    memcpy(r->args.data, value, len);
    r->args.len = len;
}


static int
var_is_args(lua_State *L, mp_request_t *r)
{
    if (r->args.len) {
        lua_pushliteral(L, "?");
    } else {
        lua_pushliteral(L, "");
    }
    return 1;
}


static int
var_request_uri(lua_State *L, mp_request_t *r)
{
    return push_str(L, &r->request_uri);
}


static int
var_request_method(lua_State *L, mp_request_t *r)
{
    return push_str(L, &r->method);
}


/* $host: the Host header without port, else the server's first name. */
static int
var_host(lua_State *L, mp_request_t *r)
{
    if (r->host.len) {
        return push_str(L, &r->host);
    }
    if (r->server != NULL && r->server->nnames) {
        return push_str(L, &r->server->names[0]);
    }
    lua_pushliteral(L, "");
    return 1;
}


static int
var_server_name(lua_State *L, mp_request_t *r)
{
    if (r->server != NULL && r->server->nnames) {
        return push_str(L, &r->server->names[0]);
    }
    lua_pushliteral(L, "");
    return 1;
}


static int
var_remote_addr(lua_State *L, mp_request_t *r)
{
    lua_pushstring(L, r->conn->peer_text);
    return 1;
}


static int
var_remote_port(lua_State *L, mp_request_t *r)
{
    return push_int(L, r->conn->peer_port);
}


static int
var_server_port(lua_State *L, mp_request_t *r)
{
    return push_int(L, mp_http_server_port(r->conn));
}


/* One getsockname() per read, as nginx does without a bound address. */
static int
var_server_addr(lua_State *L, mp_request_t *r)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    char text[INET6_ADDRSTRLEN];
    const void *addr;

    if (r->conn->fd < 0
        || getsockname(r->conn->fd, (struct sockaddr *) &sa, &len) != 0)
    {
        lua_pushnil(L);
        return 1;
    }
    if (sa.ss_family == AF_INET6) {
        addr = &((struct sockaddr_in6 *) &sa)->sin6_addr;
    } else {
        addr = &((struct sockaddr_in *) &sa)->sin_addr;
    }
    if (inet_ntop(sa.ss_family, addr, text, sizeof(text)) == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, text);
    return 1;
}


static int
var_scheme(lua_State *L, mp_request_t *r)
{
    if (r->conn->tls != NULL) {
        lua_pushliteral(L, "https");
    } else {
        lua_pushliteral(L, "http");
    }
    return 1;
}


/* "on" over TLS, "" over plain HTTP (nginx). */
static int
var_https(lua_State *L, mp_request_t *r)
{
    if (r->conn->tls != NULL) {
        lua_pushliteral(L, "on");
    } else {
        lua_pushliteral(L, "");
    }
    return 1;
}


/* The $ssl_* variables are not found (nil) on a plain connection. */
static int
var_ssl_protocol(lua_State *L, mp_request_t *r)
{
    const char *v = mp_tls_protocol(r->conn);

    if (v == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, v);
    }
    return 1;
}


static int
var_ssl_server_name(lua_State *L, mp_request_t *r)
{
    const char *v = mp_tls_server_name(r->conn);

    if (v == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, v);
    }
    return 1;
}


/* "r" for a resumed session, "." otherwise. */
static int
var_ssl_session_reused(lua_State *L, mp_request_t *r)
{
    if (r->conn->tls == NULL) {
        lua_pushnil(L);
    } else if (mp_tls_session_reused(r->conn)) {
        lua_pushliteral(L, "r");
    } else {
        lua_pushliteral(L, ".");
    }
    return 1;
}


static int
var_server_protocol(lua_State *L, mp_request_t *r)
{
    char buf[16];
    int len;

    if (r->http_major == 0 && r->http_minor == 9) {
        lua_pushliteral(L, "");
        return 1;
    }
    len = snprintf(buf, sizeof(buf), "HTTP/%d.%d", r->http_major,
                   r->http_minor);
    lua_pushlstring(L, buf, (size_t) len);
    return 1;
}


static int
push_header(lua_State *L, mp_request_t *r, const char *name, size_t len)
{
    const mp_str_t *v = mp_http_header_in(r, name, len);

    if (v == NULL) {
        lua_pushnil(L);
        return 1;
    }
    return push_str(L, v);
}


static int
var_content_length(lua_State *L, mp_request_t *r)
{
    return push_header(L, r, "Content-Length", sizeof("Content-Length") - 1);
}


static int
var_content_type(lua_State *L, mp_request_t *r)
{
    return push_header(L, r, "Content-Type", sizeof("Content-Type") - 1);
}


/* "000" until a status is set or the default 200 went out with output. */
static int
var_status(lua_State *L, mp_request_t *r)
{
    char buf[8];
    int status = r->status ? r->status : (r->header_sent ? 200 : 0);
    int len = snprintf(buf, sizeof(buf), "%03d", status);

    lua_pushlstring(L, buf, (size_t) len);
    return 1;
}


static int
var_body_bytes_sent(lua_State *L, mp_request_t *r)
{
    return push_int(L, (long long) r->body_bytes_sent);
}


/* Seconds with milliseconds since the request line, like nginx. */
static int
var_request_time(lua_State *L, mp_request_t *r)
{
    char buf[32];
    long long start, ms;
    int len;

    start = (long long) r->start.tv_sec * 1000 + r->start.tv_nsec / 1000000;
    ms = mp_max((long long) mp_time_msec - start, 0);
    len = snprintf(buf, sizeof(buf), "%lld.%03lld", ms / 1000, ms % 1000);
    lua_pushlstring(L, buf, (size_t) len);
    return 1;
}


static int
var_msec(lua_State *L, mp_request_t *r)
{
    char buf[32];
    int len;

    (void) r;
    len = snprintf(buf, sizeof(buf), "%lld.%03lld",
                   (long long) mp_time_msec / 1000,
                   (long long) mp_time_msec % 1000);
    lua_pushlstring(L, buf, (size_t) len);
    return 1;
}


static int
var_time_local(lua_State *L, mp_request_t *r)
{
    (void) r;
    return push_str(L, mp_time_local());
}


static int
var_pid(lua_State *L, mp_request_t *r)
{
    (void) r;
    return push_int(L, (long long) getpid());
}


static int
var_hostname(lua_State *L, mp_request_t *r)
{
    static char name[256];

    (void) r;
    /* The host name is read once per process; nginx does the same. */
    if (name[0] == '\0' && gethostname(name, sizeof(name) - 1) != 0) {
        name[0] = '\0';
    }
    lua_pushstring(L, name);
    return 1;
}


/*
 * $request_length: the request line, headers and body as received (the
 * framing of a chunked body is not counted, nginx counts it).
 */
static int
var_request_length(lua_State *L, mp_request_t *r)
{
    mp_str_t head = mp_body_raw_header(r, 1);

    return push_int(L, (long long) (head.len + r->body_received));
}


/* $request: the request line as received, without its CRLF. */
static int
var_request(lua_State *L, mp_request_t *r)
{
    mp_str_t head = mp_body_raw_header(r, 1);
    const char *eol = head.len ? memchr(head.data, '\n', head.len) : NULL;
    size_t len;

    if (eol == NULL) {
        lua_pushnil(L);
        return 1;
    }
    len = (size_t) (eol - head.data);
    if (len > 0 && head.data[len - 1] == '\r') {
        len--;
    }
    lua_pushlstring(L, head.data, len);
    return 1;
}


/* $request_body: the body once read, when it is in memory (nginx). */
static int
var_request_body(lua_State *L, mp_request_t *r)
{
    if (!mp_lua_ctx(r)->body_read || r->body_file != NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, r->body.data ? r->body.data : "", r->body.len);
    return 1;
}


static int
var_request_body_file(lua_State *L, mp_request_t *r)
{
    if (!mp_lua_ctx(r)->body_read || r->body_file == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, r->body_file->path);
    return 1;
}


static int
var_bytes_sent(lua_State *L, mp_request_t *r)
{
    return push_int(L, (long long) r->bytes_sent);
}


static int
var_connection_requests(lua_State *L, mp_request_t *r)
{
    return push_int(L, (long long) r->conn->requests + 1);
}


/* ---- user variables ------------------------------------------------------ */

/*
 * moonpool has no "set $foo ''": any name that is not a built-in may be
 * assigned from Lua, and reads back (also in later phases and the log
 * phase) for the rest of the request. They live in the request pool, in
 * a list: a request sets a handful at most.
 */
typedef struct user_var_s {
    struct user_var_s *next;
    mp_str_t name;          /* lower case */
    mp_str_t value;
    unsigned isnil:1;
} user_var_t;


static user_var_t *
find_user_var(mp_request_t *r, const char *name, size_t len)
{
    user_var_t *u;

    for (u = r->vars; u != NULL; u = u->next) {
        if (u->name.len == len && memcmp(u->name.data, name, len) == 0) {
            return u;
        }
    }
    return NULL;
}


static void
set_user_var(mp_request_t *r, const char *name, size_t len,
             const char *value, size_t vlen, int isnil)
{
    user_var_t *u = find_user_var(r, name, len);

    if (u == NULL) {
        u = mp_pool_alloc(r->pool, sizeof(*u));
        u->name.data = mp_pool_strndup(r->pool, name, len);
        u->name.len = len;
        u->next = r->vars;
        r->vars = u;
    }
    u->isnil = isnil ? 1 : 0;
    u->value.data = isnil ? NULL : mp_pool_strndup(r->pool, value, vlen);
    u->value.len = isnil ? 0 : vlen;
}


static int
push_user_var(lua_State *L, mp_request_t *r, const char *name, size_t len)
{
    user_var_t *u = find_user_var(r, name, len);

    if (u == NULL || u->isnil) {
        lua_pushnil(L);
        return 1;
    }
    return push_str(L, &u->value);
}


/* $limit_rate: writable in nginx; moonpool keeps the value, no limit. */
static int
var_limit_rate(lua_State *L, mp_request_t *r)
{
    user_var_t *u = find_user_var(r, "limit_rate", 10);

    if (u == NULL || u->isnil) {
        lua_pushliteral(L, "0");
        return 1;
    }
    return push_str(L, &u->value);
}


static void
set_limit_rate(lua_State *L, mp_request_t *r, const char *value, size_t len,
               int isnil)
{
    (void) L;
    set_user_var(r, "limit_rate", 10, value, len, isnil);
}


/*
 * $cookie_NAME, as nginx 1.22 finds it in every Cookie header: pairs are
 * separated by ';' or ',', spaces around them and before '=' are
 * skipped, NAME is compared case-insensitively, and the value runs to the
 * next ';'. nil when no pair has that name.
 */
static int
find_cookie(const mp_str_t *v, const char *name, size_t len, mp_str_t *out)
{
    const char *p = v->data, *end = v->data + v->len, *val;

    while (p < end) {
        if ((size_t) (end - p) >= len && mp_strncasecmp_eq(p, name, len) == 0)
        {
            const char *q = p + len;

            while (q < end && *q == ' ') {
                q++;
            }
            if (q < end && *q == '=') {
                q++;
                while (q < end && *q == ' ') {
                    q++;
                }
                val = q;
                while (q < end && *q != ';') {
                    q++;
                }
                out->data = (char *) val;
                out->len = (size_t) (q - val);
                return 1;
            }
        }
        while (p < end && *p != ';' && *p != ',') {
            p++;
        }
        if (p < end) {
            p++;
        }
        while (p < end && *p == ' ') {
            p++;
        }
    }
    return 0;
}


static int
push_cookie(lua_State *L, mp_request_t *r, const char *name, size_t len)
{
    mp_str_t value;
    size_t i;

    for (i = 0; i < r->nheaders; i++) {
        const mp_header_t *h = &r->headers[i];

        if (h->name.len == 6 && mp_strncasecmp_eq(h->name.data, "cookie", 6)
            == 0 && find_cookie(&h->value, name, len, &value))
        {
            return push_str(L, &value);
        }
    }
    lua_pushnil(L);
    return 1;
}


#define VAR(n, get, set) { mp_string(n), get, set }

static const var_t vars[] = {
    VAR("uri", var_uri, NULL),
    VAR("args", var_args, set_args),
    VAR("query_string", var_args, NULL),
    VAR("is_args", var_is_args, NULL),
    VAR("request_uri", var_request_uri, NULL),
    VAR("request_method", var_request_method, NULL),
    VAR("host", var_host, NULL),
    VAR("remote_addr", var_remote_addr, NULL),
    VAR("remote_port", var_remote_port, NULL),
    VAR("server_addr", var_server_addr, NULL),
    VAR("server_port", var_server_port, NULL),
    VAR("server_name", var_server_name, NULL),
    VAR("scheme", var_scheme, NULL),
    VAR("https", var_https, NULL),
    VAR("ssl_protocol", var_ssl_protocol, NULL),
    VAR("ssl_server_name", var_ssl_server_name, NULL),
    VAR("ssl_session_reused", var_ssl_session_reused, NULL),
    VAR("server_protocol", var_server_protocol, NULL),
    VAR("content_length", var_content_length, NULL),
    VAR("content_type", var_content_type, NULL),
    VAR("status", var_status, NULL),
    VAR("body_bytes_sent", var_body_bytes_sent, NULL),
    VAR("request_time", var_request_time, NULL),
    VAR("msec", var_msec, NULL),
    VAR("time_local", var_time_local, NULL),
    VAR("pid", var_pid, NULL),
    VAR("hostname", var_hostname, NULL),
    VAR("request_length", var_request_length, NULL),
    VAR("request", var_request, NULL),
    VAR("document_uri", var_uri, NULL),
    VAR("request_body", var_request_body, NULL),
    VAR("request_body_file", var_request_body_file, NULL),
    VAR("bytes_sent", var_bytes_sent, NULL),
    VAR("connection_requests", var_connection_requests, NULL),
    VAR("limit_rate", var_limit_rate, set_limit_rate),
};


static const var_t *
find_var(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < mp_nelems(vars); i++) {
        if (vars[i].name.len == len
            && memcmp(vars[i].name.data, name, len) == 0)
        {
            return &vars[i];
        }
    }
    return NULL;
}


/*
 * $arg_NAME: the raw (still escaped) value of the first NAME=... in the
 * query string, NAME compared case-insensitively; nil when no segment
 * starts with "NAME=" (so "?a" gives nil and "?a=" gives "").
 */
static int
push_arg(lua_State *L, mp_request_t *r, const char *name, size_t len)
{
    const char *p = r->args.data, *end = p + r->args.len, *seg_end;

    while (p < end) {
        seg_end = memchr(p, '&', (size_t) (end - p));
        if (seg_end == NULL) {
            seg_end = end;
        }
        if ((size_t) (seg_end - p) > len && p[len] == '='
            && mp_strncasecmp_eq(p, name, len) == 0)
        {
            lua_pushlstring(L, p + len + 1, (size_t) (seg_end - p - len - 1));
            return 1;
        }
        p = seg_end + 1;
    }
    lua_pushnil(L);
    return 1;
}


/* Header name matches the lower-cased variable suffix, '-' read as '_'. */
static int
header_matches(const mp_str_t *h, const char *name, size_t len)
{
    size_t i;
    unsigned char c;

    if (h->len != len) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        c = mp_lua_lower((unsigned char) h->data[i]);
        if (c == '-') {
            c = '_';
        }
        if (c != (unsigned char) name[i]) {
            return 0;
        }
    }
    return 1;
}


/*
 * $http_NAME: the first header of that name, except that nginx joins
 * repeated Cookie headers with "; " and X-Forwarded-For with ", ".
 */
static int
push_http(lua_State *L, mp_request_t *r, const char *name, size_t len)
{
    const char *sep = NULL;
    luaL_Buffer b;
    size_t i, found = 0;

    if (len == 6 && memcmp(name, "cookie", 6) == 0) {
        sep = "; ";
    } else if (len == 15 && memcmp(name, "x_forwarded_for", 15) == 0) {
        sep = ", ";
    }

    for (i = 0; i < r->nheaders; i++) {
        if (!header_matches(&r->headers[i].name, name, len)) {
            continue;
        }
        if (sep == NULL) {
            return push_str(L, &r->headers[i].value);
        }
        if (found++ == 0) {
            luaL_buffinit(L, &b);
        } else {
            luaL_addstring(&b, sep);
        }
        luaL_addlstring(&b, r->headers[i].value.data, r->headers[i].value.len);
    }

    if (found) {
        luaL_pushresult(&b);
    } else {
        lua_pushnil(L);
    }
    return 1;
}


/* Lower-cases the name into stack (or the scratch buffer when long). */
static char *
lower_name(const char *name, size_t len, char *stack, size_t stack_size)
{
    char *out = len <= stack_size ? stack : mp_lua_scratch(len);
    size_t i;

    for (i = 0; i < len; i++) {
        out[i] = (char) mp_lua_lower((unsigned char) name[i]);
    }
    return out;
}


/* __index(ngx.var, name) */
static int
var_get(lua_State *L)
{
    char stack[MP_VAR_NAME_STACK];
    mp_request_t *r = mp_lua_request(L);
    const var_t *v;
    const char *key;
    char *name;
    size_t len;

    if (lua_type(L, 2) == LUA_TNUMBER) {
        /* $1..$9: regex captures, which no location sets yet. */
        lua_pushnil(L);
        return 1;
    }
    if (lua_type(L, 2) != LUA_TSTRING) {
        return luaL_error(L, "bad variable name");
    }

    key = lua_tolstring(L, 2, &len);
    name = lower_name(key, len, stack, sizeof(stack));

    v = find_var(name, len);
    if (v != NULL) {
        return v->get(L, r);
    }
    if (len > 4 && memcmp(name, "arg_", 4) == 0) {
        return push_arg(L, r, name + 4, len - 4);
    }
    if (len > 5 && memcmp(name, "http_", 5) == 0) {
        return push_http(L, r, name + 5, len - 5);
    }
    if (len > 7 && memcmp(name, "cookie_", 7) == 0) {
        return push_cookie(L, r, name + 7, len - 7);
    }
    return push_user_var(L, r, name, len);
}


/*
 * The families of built-in variables ($arg_x, $http_x, $cookie_x, and
 * nginx's $sent_http_x): OpenResty cannot assign them, so neither can a
 * user variable take such a name.
 */
static int
builtin_prefix(const char *name, size_t len)
{
    static const mp_str_t prefixes[] = {
        mp_string("arg_"), mp_string("http_"), mp_string("cookie_"),
        mp_string("sent_http_"),
    };
    size_t i;

    for (i = 0; i < mp_nelems(prefixes); i++) {
        if (len >= prefixes[i].len
            && memcmp(name, prefixes[i].data, prefixes[i].len) == 0)
        {
            return 1;
        }
    }
    return 0;
}


/*
 * __newindex(ngx.var, name, value): a writable built-in, else a user
 * variable (see set_user_var); read-only built-ins raise OpenResty's
 * errors.
 */
static int
var_set(lua_State *L)
{
    char stack[MP_VAR_NAME_STACK];
    mp_request_t *r = mp_lua_request(L);
    const char *key, *value = NULL;
    const var_t *v;
    size_t len, vlen = 0;
    char *name;
    int isnil;

    if (lua_type(L, 2) != LUA_TSTRING) {
        return luaL_error(L, "bad variable name");
    }
    isnil = lua_isnil(L, 3);
    if (!isnil) {
        if (lua_type(L, 3) != LUA_TSTRING && lua_type(L, 3) != LUA_TNUMBER) {
            /* OpenResty stores tostring(value). */
            lua_getglobal(L, "tostring");
            lua_pushvalue(L, 3);
            lua_call(L, 1, 1);
            lua_replace(L, 3);
        }
        value = lua_tolstring(L, 3, &vlen);
    }

    key = lua_tolstring(L, 2, &len);
    name = lower_name(key, len, stack, sizeof(stack));
    v = find_var(name, len);

    if (v == NULL && !builtin_prefix(name, len)) {
        set_user_var(r, name, len, value, vlen, isnil);
        return 0;
    }
    if (v == NULL || v->set == NULL) {
        lua_pushlstring(L, name, len);
        key = lua_tostring(L, -1);
        if (v == NULL) {
            return luaL_error(L, "variable \"%s\" not found for writing; "
                              "maybe it is a built-in variable that is not "
                              "changeable or you forgot to use \"set $%s "
                              "'';\" in the config file to define it first",
                              key, key);
        }
        return luaL_error(L, "variable \"%s\" not changeable", key);
    }
    v->set(L, r, value, vlen, isnil);
    return 0;
}


void
mp_lua_inject_var_api(lua_State *L)
{
    lua_createtable(L, 0, 0);            /* ngx.var */
    lua_createtable(L, 0, 2);            /* its metatable */
    lua_pushcfunction(L, var_get);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, var_set);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "var");
}
