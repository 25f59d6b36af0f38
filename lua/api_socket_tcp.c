/*
 * api_socket_tcp.c: ngx.socket.tcp (and ngx.socket.stream, ngx.socket.
 * connect): OpenResty's TCP cosocket over worker/cosocket.h.
 *
 * Each method tries its operation now; when it would block it records the
 * running thread in the socket (one reader and one writer at a time, as in
 * OpenResty), arms the socket's read or write waiter, sets the thread's
 * cancel hook and yields (lua/sched.h). The waiter's callback goes on with
 * the operation and, once it is complete or failed, pushes the results
 * onto the thread's coroutine and resumes it.
 *
 * A socket belongs to the request (or timer) that connected it: a request
 * keeps it referenced and closes it when it ends (a cleanup on its pool);
 * another request using it meanwhile gets "bad request". Data a method
 * must keep across a yield (the string being sent, a receiveuntil
 * pattern) stays on the waiting coroutine's stack, so it is not copied.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "lua/sched.h"
#include "lua/vm.h"
#include "worker/cosocket.h"
#include "worker/loop.h"
#include "worker/resolver.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/un.h>

#define TCP_MT "ngx.socket.tcp"
#define SESSION_MT "ngx.ssl.session"
#define KEY_INLINE 96

typedef enum {
    RD_NONE = 0,
    RD_LINE,
    RD_ALL,
    RD_SIZE,
    RD_ANY,
    RD_UNTIL
} rd_kind_t;

typedef enum {
    WR_NONE = 0,
    WR_CONNECT,
    WR_SEND,
    WR_HANDSHAKE
} wr_kind_t;

typedef struct {
    mp_cosocket_t s;
    void *owner;              /* the request (or timer thread) using it */
    mp_request_t *r;          /* the request holding a reference, or NULL */
    int ref;                  /* registry reference while r holds it */
    mp_lua_thread_t *rt;      /* waiting to read */
    mp_lua_thread_t *wt;      /* waiting to connect, send or handshake */
    mp_msec_t connect_timeout; /* 0: the config's default */
    mp_msec_t send_timeout;
    mp_msec_t read_timeout;

    rd_kind_t rd;             /* the pending read */
    size_t rsize;
    const char *pat;          /* receiveuntil's pattern (on the stack) */
    size_t patlen;
    int inclusive;

    wr_kind_t wr;             /* the pending write-side operation */
    const char *wdata;        /* send: the string (on the stack) */
    size_t wlen;
    size_t wsent;
    mp_resolver_req_t *dns;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    char host[64];            /* for log lines: "host:port" as given */
    SSL_SESSION *want_session; /* handshake: session to return */
    int ssl_verify;
    int session_ret;          /* return a session (or true) */
    char *sni;                /* heap; server name to verify */

    char *key;                /* pool key: key_inline or heap */
    size_t keylen;
    int pool_size;            /* opts.pool_size; 0: the default */
    int backlog;              /* opts.backlog; -1: none */
    const char *chost;        /* connect's host (on the stack) */
    size_t chostlen;
    int cport;
    char key_inline[KEY_INLINE];

    const char *until_hit;    /* a chunked receiveuntil met its pattern */

    unsigned connected:1;
    unsigned created:1;       /* connect was called once */
} tcp_t;

static void read_step(tcp_t *u, lua_State *co, int from_event);
static void write_step(tcp_t *u);


/* ---- helpers ------------------------------------------------------------- */

static tcp_t *
check_tcp(lua_State *L)
{
    return luaL_checkudata(L, 1, TCP_MT);
}


/* The owner identity of the running code: its request, else its thread. */
static void *
current_owner(void)
{
    mp_lua_thread_t *t = mp_lua_thread_current();

    if (t == NULL) {
        return NULL;
    }
    return t->r != NULL ? (void *) t->r : (void *) t;
}


static int
closed_result(lua_State *L, tcp_t *u, const char *what)
{
    (void) u;
    /* OpenResty's lua_socket_log_errors (on by default) logs this */
    mp_log_error(MP_LOG_ERR, 0, "attempt to %s on a closed socket", what);
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
}


/* Raises "bad request" when u is used by another request than its own. */
static void
check_owner(lua_State *L, tcp_t *u)
{
    if (u->owner != NULL && u->owner != current_owner()) {
        luaL_error(L, "bad request");
    }
}


static mp_msec_t
timeout_of(mp_msec_t set, mp_msec_t def)
{
    return set > 0 ? set : def;
}


static void
set_key(tcp_t *u, const char *key, size_t len)
{
    if (u->key != NULL && u->key != u->key_inline) {
        free(u->key);
    }
    u->key = len < KEY_INLINE ? u->key_inline : mp_alloc(len + 1);
    memcpy(u->key, key, len);
    u->key[len] = '\0';
    u->keylen = len;
}


/* Gives the waiting threads up: their request is going away. */
static void
forget_threads(tcp_t *u)
{
    if (u->rt != NULL) {
        u->rt->cancel = NULL;
        u->rt = NULL;
    }
    if (u->wt != NULL) {
        u->wt->cancel = NULL;
        u->wt = NULL;
    }
    u->rd = RD_NONE;
    u->wr = WR_NONE;
}


static void
stop_dns(tcp_t *u)
{
    if (u->dns != NULL) {
        mp_resolver_cancel(u->dns);
        u->dns = NULL;
    }
}


static void
free_sni(tcp_t *u)
{
    free(u->sni);
    u->sni = NULL;
}


static void
close_socket(tcp_t *u)
{
    stop_dns(u);
    mp_cosocket_close(&u->s);
    u->connected = 0;
}


/* The request ended: close the socket and drop the request's reference. */
static void
on_request_done(void *data)
{
    tcp_t *u = data;
    lua_State *L = mp_lua_vm();

    forget_threads(u);
    close_socket(u);
    u->owner = NULL;
    u->r = NULL;
    if (L != NULL && u->ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, u->ref);
    }
    u->ref = LUA_NOREF;
}


/* Ties u (at index 1) to the running request or timer. */
static void
bind_owner(lua_State *L, tcp_t *u, mp_lua_thread_t *t)
{
    u->owner = t->r != NULL ? (void *) t->r : (void *) t;
    if (t->r != NULL && u->r != t->r) {
        u->r = t->r;
        lua_pushvalue(L, 1);
        u->ref = luaL_ref(L, LUA_REGISTRYINDEX);
        mp_pool_cleanup_add(t->r->pool, on_request_done, u);
    }
}


/* Resumes t with n results already on t->co. */
static void
resume(mp_lua_thread_t *t, int n)
{
    mp_lua_thread_resume(t, n);
}


static lua_State *
result_stack(mp_lua_thread_t *t)
{
    lua_settop(t->co, 0);
    return t->co;
}


/* ---- connect ------------------------------------------------------------- */

static void
cancel_write(mp_lua_thread_t *t)
{
    tcp_t *u = t->wait_data;

    if (u == NULL || u->wt != t) {
        return;
    }
    stop_dns(u);
    mp_cosocket_unwait(&u->s.wr);
    if (u->wr == WR_CONNECT || u->wr == WR_HANDSHAKE) {
        close_socket(u);
    }
    u->wt = NULL;
    u->wr = WR_NONE;
}


static void
cancel_read(mp_lua_thread_t *t)
{
    tcp_t *u = t->wait_data;

    if (u == NULL || u->rt != t) {
        return;
    }
    mp_cosocket_unwait(&u->s.rd);
    u->rt = NULL;
    u->rd = RD_NONE;
}


/* Ends the write-side operation with its results on co (n of them). */
static void
write_done(tcp_t *u, lua_State *co, int n)
{
    mp_lua_thread_t *t = u->wt;

    (void) co;
    u->wt = NULL;
    u->wr = WR_NONE;
    if (t != NULL) {
        resume(t, n);
    }
}


/* Where results of the write side go: the waiting thread, or L now. */
static lua_State *
write_stack(tcp_t *u, lua_State *L)
{
    return u->wt != NULL ? result_stack(u->wt) : L;
}


static int
connect_failed(tcp_t *u, lua_State *co, const char *err)
{
    close_socket(u);
    lua_pushnil(co);
    lua_pushstring(co, err);
    return 2;
}


static void
on_connect_event(mp_cosocket_t *s, void *data, short what)
{
    tcp_t *u = data;
    lua_State *co = result_stack(u->wt);
    int n;

    (void) s;
    if (what & EV_TIMEOUT) {
        mp_log_error(MP_LOG_ERR, 0, "lua tcp socket connect timed out, "
                     "when connecting to %s", u->host);
        n = connect_failed(u, co, "timeout");
    } else if (mp_cosocket_connect_done(&u->s) != MP_OK) {
        mp_log_error(MP_LOG_ERR, u->s.err, "connect() to %s failed",
                     u->host);
        n = connect_failed(u, co, mp_cosocket_strerror(u->s.err));
    } else {
        u->connected = 1;
        lua_pushinteger(co, 1);
        n = 1;
    }
    write_done(u, co, n);
}


/*
 * Connects to u->peer. Returns the number of results pushed onto co, or 0
 * when it waits (then t is u->wt, already set by the caller).
 */
static int
connect_peer(tcp_t *u, lua_State *co)
{
    int rc = mp_cosocket_connect(&u->s, (struct sockaddr *) &u->peer,
                                 u->peerlen, SOCK_STREAM);

    if (rc == MP_OK) {
        u->connected = 1;
        lua_pushinteger(co, 1);
        return 1;
    }
    if (rc == MP_ERROR) {
        mp_log_error(MP_LOG_ERR, u->s.err, "connect() to %s failed",
                     u->host);
        return connect_failed(u, co, mp_cosocket_strerror(u->s.err));
    }
    mp_cosocket_wait(&u->s, &u->s.wr, EV_WRITE,
                     timeout_of(u->connect_timeout,
                                mp_worker_conf->lua.socket_connect_timeout),
                     on_connect_event, u);
    return 0;
}


static void
on_resolved(void *data, int code, const char *text, const struct sockaddr *sa,
            socklen_t len)
{
    tcp_t *u = data;
    lua_State *co = result_stack(u->wt);
    uint16_t port = ((struct sockaddr_in *) &u->peer)->sin_port;
    char msg[320];
    int n;

    u->dns = NULL;
    if (code != 0) {
        char *colon = strrchr(u->host, ':');

        snprintf(msg, sizeof(msg), "%.*s could not be resolved (%d: %s)",
                 colon != NULL ? (int) (colon - u->host) : (int) 64, u->host,
                 code, text);
        mp_log_error(MP_LOG_ERR, 0, "%s", msg);
        close_socket(u);
        lua_pushnil(co);
        lua_pushstring(co, msg);
        write_done(u, co, 2);
        return;
    }
    memcpy(&u->peer, sa, len);
    ((struct sockaddr_in *) &u->peer)->sin_port = port;
    u->peerlen = len;
    n = connect_peer(u, co);
    if (n > 0) {
        write_done(u, co, n);
    }
}


static int
parse_opts(lua_State *L, int idx, tcp_t *u, size_t *poollen,
           const char **pool)
{
    lua_Integer v;

    *pool = NULL;
    u->pool_size = 0;
    u->backlog = -1;
    if (lua_isnoneornil(L, idx)) {
        return MP_OK;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "pool");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
            return luaL_argerror(L, idx, lua_pushfstring(L,
                                 "bad \"pool\" option type: %s",
                                 luaL_typename(L, -1)));
        }
        *pool = lua_tolstring(L, -1, poollen);
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "pool_size");
    if (!lua_isnil(L, -1)) {
        v = lua_tointeger(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER || v <= 0) {
            return luaL_argerror(L, idx, lua_pushfstring(L,
                                 "bad \"pool_size\" option value: %d",
                                 (int) v));
        }
        u->pool_size = (int) v;
    }
    lua_pop(L, 1);
    u->backlog = -1;
    lua_getfield(L, idx, "backlog");
    if (!lua_isnil(L, -1)) {
        v = lua_tointeger(L, -1);
        u->backlog = (int) v;
        if (lua_type(L, -1) != LUA_TNUMBER || v < 0) {
            return luaL_argerror(L, idx, lua_pushfstring(L,
                                 "bad \"backlog\" option value: %d",
                                 (int) v));
        }
    }
    lua_pop(L, 1);
    return MP_OK;
}


static int
unix_peer(lua_State *L, tcp_t *u, const char *path, size_t len)
{
    struct sockaddr_un *sun = (struct sockaddr_un *) &u->peer;

    if (len == 0 || len >= sizeof(sun->sun_path)) {
        lua_pushnil(L);
        lua_pushliteral(L, "failed to parse host name \"unix:\": bad path");
        return 2;
    }
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, len);
    u->peerlen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len
                              + 1);
    return 0;
}


/*
 * The connect after the pool admitted it: an idle connection, or a new one
 * to the unix path, IP literal or resolved name of u->chost. Returns the
 * number of results pushed onto co, or 0 when it waits (DNS or connect).
 */
static int
connect_begin(tcp_t *u, lua_State *co)
{
    const char *err;
    int rc;

    if (mp_cosocket_pool_get(&u->s, u->key, u->keylen) == MP_OK) {
        u->connected = 1;
        lua_pushinteger(co, 1);
        return 1;
    }
    if (u->cport < 0) {
        rc = unix_peer(co, u, u->chost + 5, u->chostlen - 5);
        return rc != 0 ? rc : connect_peer(u, co);
    }
    if (mp_resolver_literal(u->chost, &u->peer, &u->peerlen) == MP_OK) {
        ((struct sockaddr_in *) &u->peer)->sin_port =
            htons((uint16_t) u->cport);
        return connect_peer(u, co);
    }
    memset(&u->peer, 0, sizeof(u->peer));
    ((struct sockaddr_in *) &u->peer)->sin_port = htons((uint16_t) u->cport);
    u->dns = mp_resolver_start(u->chost, on_resolved, u, &err);
    if (u->dns == NULL) {
        close_socket(u);
        lua_pushnil(co);
        lua_pushstring(co, err);
        return 2;
    }
    return 0;
}


/* The backlog admitted the connect (EV_WRITE) or its time ran out. */
static void
on_backlog(mp_cosocket_t *s, void *data, short what)
{
    tcp_t *u = data;
    lua_State *co = result_stack(u->wt);
    int n;

    (void) s;
    if (what & EV_TIMEOUT) {
        mp_log_error(MP_LOG_ERR, 0, "lua tcp socket queued connect timed "
                     "out, when trying to connect to %s", u->host);
        close_socket(u);
        lua_pushnil(co);
        lua_pushliteral(co, "timeout");
        write_done(u, co, 2);
        return;
    }
    if (u->s.counted == NULL) {
        /* an idle connection came back: take it unless someone was
         * quicker, in which case queue again */
        n = mp_cosocket_pool_acquire(&u->s, u->key, u->keylen, 1,
                                     u->backlog,
                                     timeout_of(u->connect_timeout,
                                                mp_worker_conf->lua
                                                    .socket_connect_timeout),
                                     on_backlog, u);
        if (n == MP_AGAIN) {
            return;
        }
        if (n == MP_BUSY) {
            lua_pushnil(co);
            lua_pushliteral(co, "too many waiting connect operations");
            write_done(u, co, 2);
            return;
        }
    }
    n = connect_begin(u, co);
    if (n > 0) {
        write_done(u, co, n);
    }
}


static int
tcp_connect(lua_State *L)
{
    tcp_t *u = check_tcp(L);
    int n = lua_gettop(L), isunix, opts_idx, port = 0, rc;
    size_t hlen, poollen = 0;
    const char *host, *pool;
    mp_lua_thread_t *t;
    char keybuf[300];

    if (n < 2 || n > 4) {
        return luaL_error(L, "ngx.socket connect: expecting 2, 3, or 4 "
                          "arguments (including the object), but seen %d",
                          n);
    }
    host = luaL_checklstring(L, 2, &hlen);
    isunix = hlen >= 5 && memcmp(host, "unix:", 5) == 0;
    if (isunix) {
        opts_idx = 3;
    } else {
        lua_Integer p;

        if (lua_isnoneornil(L, 3)) {
            lua_pushnil(L);
            lua_pushliteral(L, "missing the port number");
            return 2;
        }
        p = luaL_checkinteger(L, 3);
        if (p < 0 || p > 65535) {
            lua_pushnil(L);
            lua_pushfstring(L, "bad port number: %d", (int) p);
            return 2;
        }
        port = (int) p;
        opts_idx = 4;
    }
    parse_opts(L, opts_idx, u, &poollen, &pool);
    t = mp_lua_thread_yieldable(L);
    u->created = 1;
    check_owner(L, u);
    if (u->wt != NULL || u->rt != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, u->wt != NULL ? "socket busy writing"
                                        : "socket busy reading");
        return 2;
    }
    if (u->s.fd != -1) {
        mp_log_error(MP_LOG_INFO, 0, "lua tcp socket reconnect without "
                     "shutting down");
        close_socket(u);
    }
    bind_owner(L, u, t);

    if (pool != NULL) {
        set_key(u, pool, poollen);
    } else if (isunix) {
        set_key(u, host, hlen);
    } else {
        int kl = snprintf(keybuf, sizeof(keybuf), "%.*s:%d",
                          (int) mp_min(hlen, 256), host, port);

        set_key(u, keybuf, (size_t) kl);
    }
    if (isunix) {
        snprintf(u->host, sizeof(u->host), "%.*s", (int) mp_min(hlen, 63),
                 host);
    } else {
        snprintf(u->host, sizeof(u->host), "%.*s:%d",
                 (int) mp_min(hlen, 56), host, port);
    }
    u->chost = host;
    u->chostlen = hlen;
    u->cport = isunix ? -1 : port;
    if (u->backlog >= 0) {
        rc = mp_cosocket_pool_acquire(&u->s, u->key, u->keylen,
                                      u->pool_size > 0
                                          ? u->pool_size
                                          : mp_worker_conf->lua
                                                .socket_pool_size,
                                      u->backlog,
                                      timeout_of(u->connect_timeout,
                                                 mp_worker_conf->lua
                                                     .socket_connect_timeout),
                                      on_backlog, u);
        if (rc == MP_BUSY) {
            lua_pushnil(L);
            lua_pushliteral(L, "too many waiting connect operations");
            return 2;
        }
        if (rc == MP_AGAIN) {
            goto wait;
        }
    }
    rc = connect_begin(u, L);
    if (rc > 0) {
        return rc;
    }

wait:
    u->wt = t;
    u->wr = WR_CONNECT;
    t->cancel = cancel_write;
    t->wait_data = u;
    return mp_lua_yield(L);
}


/* ---- send ---------------------------------------------------------------- */

static void
on_send_event(mp_cosocket_t *s, void *data, short what)
{
    tcp_t *u = data;

    (void) s;
    if (what & EV_TIMEOUT) {
        lua_State *co = result_stack(u->wt);

        mp_log_error(MP_LOG_ERR, 0, "lua tcp socket write timed out");
        close_socket(u);
        lua_pushnil(co);
        lua_pushliteral(co, "timeout");
        write_done(u, co, 2);
        return;
    }
    write_step(u);
}


/*
 * Writes what is left of the send; pushes the results and returns their
 * count when finished, 0 when waiting.
 */
static int
send_more(tcp_t *u, lua_State *L)
{
    ssize_t n;
    lua_State *co;

    while (u->wsent < u->wlen) {
        n = mp_cosocket_write(&u->s, u->wdata + u->wsent,
                              u->wlen - u->wsent);
        if (n > 0) {
            u->wsent += (size_t) n;
            continue;
        }
        if (u->s.err == EAGAIN) {
            mp_cosocket_wait(&u->s, &u->s.wr, u->s.want,
                             timeout_of(u->send_timeout,
                                        mp_worker_conf->lua.socket_send_timeout),
                             on_send_event, u);
            return 0;
        }
        co = write_stack(u, L);
        mp_log_error(MP_LOG_ERR, u->s.err, "lua tcp socket send failed");
        lua_pushnil(co);
        lua_pushstring(co, u->s.err == EPIPE ? "closed"
                                             : mp_cosocket_strerror(u->s.err));
        close_socket(u);
        return 2;
    }
    co = write_stack(u, L);
    lua_pushinteger(co, (lua_Integer) u->wlen);
    return 1;
}


static void
write_step(tcp_t *u)
{
    int n;

    /* only a send waits through here; connect and handshake have their
     * own event callbacks */
    if (u->wr == WR_SEND) {
        n = send_more(u, NULL);
        if (n > 0) {
            write_done(u, u->wt->co, n);
        }
    }
}


/* Appends the strings of the array table at idx (nested) to b. */
static void
add_table(lua_State *L, int idx, luaL_Buffer *b, int depth)
{
    int i, n = (int) lua_objlen(L, idx);

    if (depth > 100) {
        luaL_error(L, "table nested too deeply");
    }
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        switch (lua_type(L, -1)) {
        case LUA_TSTRING:
        case LUA_TNUMBER:
            luaL_addvalue(b);
            break;
        case LUA_TTABLE:
            /* the buffer may sit on the stack: recurse below it */
            add_table(L, lua_gettop(L), b, depth + 1);
            lua_pop(L, 1);
            break;
        default:
            luaL_argerror(L, 2, lua_pushfstring(L, "bad data type %s found",
                                                luaL_typename(L, -1)));
        }
    }
}


static int
tcp_send(lua_State *L)
{
    tcp_t *u = check_tcp(L);
    mp_lua_thread_t *t;
    luaL_Buffer b;
    int n;

    if (lua_gettop(L) != 2) {
        return luaL_error(L, "expecting 2 arguments (including the object), "
                          "but got %d", lua_gettop(L));
    }
    switch (lua_type(L, 2)) {
    case LUA_TSTRING:
    case LUA_TNUMBER:
        break;
    case LUA_TTABLE:
        luaL_buffinit(L, &b);
        add_table(L, 2, &b, 0);
        luaL_pushresult(&b);
        lua_replace(L, 2);
        break;
    case LUA_TNIL:
        lua_pushliteral(L, "nil");
        lua_replace(L, 2);
        break;
    case LUA_TBOOLEAN:
        lua_pushstring(L, lua_toboolean(L, 2) ? "true" : "false");
        lua_replace(L, 2);
        break;
    default:
        return luaL_argerror(L, 2, lua_pushfstring(L, "string, number, "
                             "boolean, nil, or array table expected, got %s",
                             luaL_typename(L, 2)));
    }
    t = mp_lua_thread_yieldable(L);
    if (!u->connected) {
        return closed_result(L, u, "send data");
    }
    check_owner(L, u);
    if (u->wt != NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "socket busy writing");
        return 2;
    }
    u->wdata = lua_tolstring(L, 2, &u->wlen);
    u->wsent = 0;
    u->wr = WR_SEND;
    n = send_more(u, L);
    if (n > 0) {
        u->wr = WR_NONE;
        return n;
    }
    u->wt = t;
    t->cancel = cancel_write;
    t->wait_data = u;
    return mp_lua_yield(L);
}


/* ---- receive ------------------------------------------------------------- */

/* Pushes buf[0..n) without its '\r' bytes, as OpenResty's "*l" does. */
static void
push_line(lua_State *co, const char *p, size_t n)
{
    luaL_Buffer b;
    const char *cr;

    if (memchr(p, '\r', n) == NULL) {
        lua_pushlstring(co, p, n);
        return;
    }
    luaL_buffinit(co, &b);
    while (n > 0 && (cr = memchr(p, '\r', n)) != NULL) {
        luaL_addlstring(&b, p, (size_t) (cr - p));
        n -= (size_t) (cr - p) + 1;
        p = cr + 1;
    }
    luaL_addlstring(&b, p, n);
    luaL_pushresult(&b);
}


/* Longest suffix of p[0..n) that is a proper prefix of the pattern. */
static size_t
prefix_tail(const tcp_t *u, const char *p, size_t n)
{
    size_t k = mp_min(n, u->patlen - 1);

    for (; k > 0; k--) {
        if (memcmp(p + n - k, u->pat, k) == 0) {
            return k;
        }
    }
    return 0;
}


/*
 * Pushes the result of the pending read if the buffer can answer it:
 * returns the number of results, or 0 when more data is needed.
 */
static int
read_answer(tcp_t *u, lua_State *co)
{
    mp_cosocket_t *s = &u->s;
    const char *p = s->buf + s->pos, *hit;
    size_t have = s->last - s->pos, k;

    switch (u->rd) {
    case RD_LINE:
        hit = have > 0 ? memchr(p, '\n', have) : NULL;
        if (hit == NULL) {
            return 0;
        }
        push_line(co, p, (size_t) (hit - p));
        mp_cosocket_consume(s, (size_t) (hit - p) + 1);
        return 1;
    case RD_SIZE:
        if (have < u->rsize) {
            return 0;
        }
        lua_pushlstring(co, p, u->rsize);
        if (u->rsize > 0) {
            mp_cosocket_consume(s, u->rsize);
        }
        return 1;
    case RD_ANY:
        if (have == 0) {
            return 0;
        }
        k = mp_min(have, u->rsize);
        lua_pushlstring(co, p, k);
        mp_cosocket_consume(s, k);
        return 1;
    case RD_UNTIL:
        hit = have >= u->patlen ? memmem(p, have, u->pat, u->patlen) : NULL;
        if (hit != NULL) {
            k = (size_t) (hit - p);
            if (u->rsize > 0 && k > u->rsize) {
                lua_pushlstring(co, p, u->rsize);
                mp_cosocket_consume(s, u->rsize);
                return 1;
            }
            lua_pushlstring(co, p, u->inclusive ? k + u->patlen : k);
            mp_cosocket_consume(s, k + u->patlen);
            return 2; /* the pattern was found */
        }
        if (u->rsize > 0 && have - prefix_tail(u, p, have) >= u->rsize) {
            lua_pushlstring(co, p, u->rsize);
            mp_cosocket_consume(s, u->rsize);
            return 1;
        }
        return 0;
    default: /* RD_ALL: only the end of the stream answers */
        return 0;
    }
}


/* Pushes nil, err, partial (all that is buffered, consumed). */
static int
read_error(tcp_t *u, lua_State *co, const char *err)
{
    mp_cosocket_t *s = &u->s;

    lua_pushnil(co);
    lua_pushstring(co, err);
    if (u->rd == RD_LINE) {
        push_line(co, s->buf + s->pos, s->last - s->pos);
    } else {
        lua_pushlstring(co, s->buf != NULL ? s->buf + s->pos : "",
                        s->last - s->pos);
    }
    s->pos = s->last = 0;
    return 3;
}


static void
read_done(tcp_t *u, lua_State *co, int n, int from_event)
{
    mp_lua_thread_t *t = u->rt;

    (void) co;
    u->rd = RD_NONE;
    u->rt = NULL;
    if (from_event && t != NULL) {
        resume(t, n);
    }
}


static void
on_read_event(mp_cosocket_t *s, void *data, short what)
{
    tcp_t *u = data;
    lua_State *co = result_stack(u->rt);

    (void) s;
    if (what & EV_TIMEOUT) {
        mp_log_error(MP_LOG_ERR, 0, "lua tcp socket read timed out");
        read_done(u, co, read_error(u, co, "timeout"), 1);
        return;
    }
    read_step(u, co, 1);
}


/* How many results pushed by the last read_step (0: waiting). */
static int read_nresults;


/*
 * Goes on with the pending read: reads until the buffer answers it, the
 * stream ends, it fails, or it would block (then arms the waiter).
 */
static void
read_step(tcp_t *u, lua_State *co, int from_event)
{
    mp_cosocket_t *s = &u->s;
    ssize_t r;
    size_t want;
    int n;

    for (;;) {
        n = read_answer(u, co);
        if (n > 0) {
            if (u->rd == RD_UNTIL) {
                /* 2: the pattern was found; a chunked iterator then
                 * answers nil once on its next call */
                if (n == 2 && u->rsize > 0) {
                    u->until_hit = u->pat;
                }
                n = 1;
            }
            break;
        }
        want = 0;
        if (u->rd == RD_SIZE && u->rsize - (s->last - s->pos) > 4096) {
            want = u->rsize - (s->last - s->pos);
        }
        r = mp_cosocket_fill(s, want);
        if (r > 0) {
            continue;
        }
        if (r == 0) {
            /* "*a" ends well at the end of the stream (and answers ""
             * after it); any other read fails there and closes */
            if (u->rd == RD_ALL) {
                lua_pushlstring(co, s->buf != NULL ? s->buf + s->pos : "",
                                s->last - s->pos);
                s->pos = s->last = 0;
                n = 1;
            } else {
                n = read_error(u, co, "closed");
                close_socket(u);
            }
            break;
        }
        if (s->err == EAGAIN) {
            mp_cosocket_wait(s, &s->rd, s->want,
                             timeout_of(u->read_timeout,
                                        mp_worker_conf->lua.socket_read_timeout),
                             on_read_event, u);
            read_nresults = 0;
            return;
        }
        mp_log_error(MP_LOG_ERR, s->err, "lua tcp socket read failed");
        n = read_error(u, co, mp_cosocket_strerror(s->err));
        close_socket(u);
        break;
    }
    read_nresults = n;
    read_done(u, co, n, from_event);
}


/* Common start of receive, receiveany and the receiveuntil iterator. */
static int
start_read(lua_State *L, tcp_t *u, mp_lua_thread_t *t)
{
    if (!u->connected) {
        u->rd = RD_NONE;
        return closed_result(L, u, "receive data");
    }
    if (u->rt != NULL) {
        /* another thread's read is pending: leave its state alone */
        lua_pushnil(L);
        lua_pushliteral(L, "socket busy reading");
        return 2;
    }
    read_step(u, L, 0);
    if (read_nresults > 0) {
        return read_nresults;
    }
    u->rt = t;
    t->cancel = cancel_read;
    t->wait_data = u;
    return mp_lua_yield(L);
}


static int
tcp_receive(lua_State *L)
{
    tcp_t *u = check_tcp(L);
    int n = lua_gettop(L);
    mp_lua_thread_t *t;
    rd_kind_t kind = RD_LINE;
    size_t size = 0, plen;
    const char *p;
    lua_Number num;

    if (n != 1 && n != 2) {
        return luaL_error(L, "expecting 1 or 2 arguments (including the "
                          "object), but got %d", n);
    }
    if (n == 2) {
        p = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &plen)
                                          : NULL;
        if (lua_type(L, 2) == LUA_TNUMBER
            || (p != NULL && plen > 0 && p[0] != '*'
                && lua_isnumber(L, 2))) {
            /* a number, or a string that reads as one ("2") */
            num = lua_tonumber(L, 2);
            if (num < 0) {
                return luaL_argerror(L, 2, "bad pattern argument");
            }
            kind = RD_SIZE;
            size = (size_t) num;
        } else if (lua_type(L, 2) == LUA_TSTRING) {
            p = lua_tolstring(L, 2, &plen);
            if (plen == 0 || p[0] != '*') {
                return luaL_argerror(L, 2, lua_pushfstring(L,
                                     "bad pattern argument: %s", p));
            }
            if (plen < 2 || (p[1] != 'l' && p[1] != 'a')) {
                return luaL_argerror(L, 2, "bad pattern argument");
            }
            kind = p[1] == 'l' ? RD_LINE : RD_ALL;
        } else if (!lua_isnil(L, 2)) {
            return luaL_argerror(L, 2, "bad pattern argument");
        }
    }
    t = mp_lua_thread_yieldable(L);
    if (u->connected) {
        check_owner(L, u);
    }
    if (u->rt == NULL) {
        u->rd = kind;
        u->rsize = size;
    }
    return start_read(L, u, t);
}


static int
tcp_receiveany(lua_State *L)
{
    tcp_t *u = check_tcp(L);
    mp_lua_thread_t *t;
    lua_Integer max;

    if (lua_gettop(L) != 2) {
        return luaL_error(L, "expecting 2 arguments (including the object), "
                          "but got %d", lua_gettop(L));
    }
    if (lua_type(L, 2) != LUA_TNUMBER) {
        return luaL_argerror(L, 2, "bad max argument");
    }
    max = lua_tointeger(L, 2);
    if (max <= 0) {
        return luaL_argerror(L, 2, "bad max argument");
    }
    t = mp_lua_thread_yieldable(L);
    if (u->connected) {
        check_owner(L, u);
    }
    if (u->rt == NULL) {
        u->rd = RD_ANY;
        u->rsize = (size_t) max;
    }
    return start_read(L, u, t);
}


/*
 * The receiveuntil iterator. Upvalues: 1 the socket, 2 the pattern,
 * 3 inclusive. With a size, it answers chunks of at most size bytes, then
 * nil once when the pattern was reached (u->until_hit).
 */
static int
until_iter(lua_State *L)
{
    tcp_t *u = luaL_checkudata(L, lua_upvalueindex(1), TCP_MT);
    mp_lua_thread_t *t;
    lua_Integer size = 0;

    if (lua_gettop(L) > 0 && !lua_isnil(L, 1)) {
        if (lua_type(L, 1) != LUA_TNUMBER) {
            return luaL_argerror(L, 1, "bad size argument");
        }
        size = lua_tointeger(L, 1);
        if (size < 0) {
            return luaL_argerror(L, 1, "bad size argument");
        }
    }
    t = mp_lua_thread_yieldable(L);
    if (u->connected) {
        check_owner(L, u);
    }
    if (u->rt != NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "socket busy reading");
        return 2;
    }
    u->pat = lua_tolstring(L, lua_upvalueindex(2), &u->patlen);
    u->inclusive = lua_toboolean(L, lua_upvalueindex(3));
    if (u->until_hit != NULL && u->until_hit == u->pat) {
        u->until_hit = NULL;
        if (size > 0) {
            lua_pushnil(L);
            lua_pushnil(L);
            lua_pushnil(L);
            return 3;
        }
    }
    u->rd = RD_UNTIL;
    u->rsize = (size_t) size;
    return start_read(L, u, t);
}


static int
tcp_receiveuntil(lua_State *L)
{
    size_t plen;
    int inclusive = 0;

    check_tcp(L);
    if (lua_gettop(L) != 2 && lua_gettop(L) != 3) {
        return luaL_error(L, "expecting 2 or 3 arguments (including the "
                          "object), but got %d", lua_gettop(L));
    }
    luaL_checklstring(L, 2, &plen);
    if (plen == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "pattern is empty");
        return 2;
    }
    if (lua_gettop(L) == 3 && !lua_isnil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "inclusive");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TBOOLEAN) {
                return luaL_error(L, "bad \"inclusive\" option value type: "
                                  "%s", luaL_typename(L, -1));
            }
            inclusive = lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushboolean(L, inclusive);
    lua_pushcclosure(L, until_iter, 3);
    return 1;
}


/* ---- sslhandshake ----------------------------------------------------------- */

/* Pushes the handshake's results: a session object, true, or nil, err. */
static int
handshake_result(tcp_t *u, lua_State *co)
{
    const char *reason;
    long rc;
    SSL_SESSION **ud;

    if (u->ssl_verify) {
        rc = mp_cosocket_tls_verify(&u->s, u->sni, &reason);
        if (rc != X509_V_OK) {
            lua_pushnil(co);
            if (rc == -1) {
                mp_log_error(MP_LOG_ERR, 0, "lua ssl certificate does not "
                             "match host \"%s\"", u->sni);
                lua_pushstring(co, reason);
            } else {
                lua_pushfstring(co, "%d: %s", (int) rc, reason);
                mp_log_error(MP_LOG_ERR, 0, "lua ssl certificate verify "
                             "error: (%s)", lua_tostring(co, -1));
            }
            free_sni(u);
            return 2;
        }
    }
    free_sni(u);
    if (!u->session_ret) {
        lua_pushboolean(co, 1);
        return 1;
    }
    ud = lua_newuserdata(co, sizeof(*ud));
    *ud = SSL_get1_session(u->s.ssl);
    luaL_getmetatable(co, SESSION_MT);
    lua_setmetatable(co, -2);
    return 1;
}


static int handshake_step(tcp_t *u, lua_State *co);


static void
on_handshake_event(mp_cosocket_t *s, void *data, short what)
{
    tcp_t *u = data;
    lua_State *co = result_stack(u->wt);
    int n;

    (void) s;
    if (what & EV_TIMEOUT) {
        mp_log_error(MP_LOG_ERR, 0, "lua ssl handshake timed out");
        free_sni(u);
        close_socket(u);
        lua_pushnil(co);
        lua_pushliteral(co, "timeout");
        write_done(u, co, 2);
        return;
    }
    n = handshake_step(u, co);
    if (n > 0) {
        write_done(u, co, n);
    }
}


static int
handshake_step(tcp_t *u, lua_State *co)
{
    int rc = mp_cosocket_tls_handshake(&u->s);

    if (rc == MP_OK) {
        return handshake_result(u, co);
    }
    if (rc == MP_AGAIN) {
        mp_cosocket_wait(&u->s, &u->s.wr, u->s.want,
                         timeout_of(u->connect_timeout,
                                    mp_worker_conf->lua.socket_connect_timeout),
                         on_handshake_event, u);
        return 0;
    }
    free_sni(u);
    close_socket(u);
    lua_pushnil(co);
    lua_pushliteral(co, "handshake failed");
    return 2;
}


static int
tcp_sslhandshake(lua_State *L)
{
    tcp_t *u = check_tcp(L);
    int n = lua_gettop(L), rc;
    SSL_SESSION *session = NULL, **ud;
    const char *name = NULL;
    mp_lua_thread_t *t;

    if (n < 1 || n > 5) {
        return luaL_error(L, "ngx.socket sslhandshake: expecting 1 ~ 5 "
                          "arguments (including the object), but seen %d",
                          n);
    }
    u->session_ret = 1;
    if (n >= 2) {
        if (lua_type(L, 2) == LUA_TBOOLEAN) {
            u->session_ret = lua_toboolean(L, 2);
        } else if (!lua_isnil(L, 2)) {
            ud = luaL_checkudata(L, 2, SESSION_MT);
            session = *ud;
        }
    }
    if (n >= 3 && !lua_isnil(L, 3)) {
        name = luaL_checkstring(L, 3);
    }
    u->ssl_verify = n >= 4 && lua_toboolean(L, 4);
    t = mp_lua_thread_yieldable(L);
    if (!u->created) {
        return luaL_error(L, "socket is never created nor connected");
    }
    if (!u->connected) {
        return closed_result(L, u, "ssl handshake");
    }
    check_owner(L, u);
    if (u->wt != NULL || u->rt != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, u->wt != NULL ? "socket busy writing"
                                        : "socket busy reading");
        return 2;
    }
    free_sni(u);
    u->sni = name != NULL ? mp_strdup(name) : NULL;
    if (u->s.ssl == NULL) {
        if (mp_cosocket_tls_start(&u->s, name, session) != MP_OK) {
            free_sni(u);
            lua_pushnil(L);
            lua_pushliteral(L, "failed to create ssl connection");
            return 2;
        }
    } else if (SSL_is_init_finished(u->s.ssl)) {
        /* a connection from the pool: TLS is already on */
        return handshake_result(u, L);
    }
    rc = handshake_step(u, L);
    if (rc > 0) {
        return rc;
    }
    u->wt = t;
    u->wr = WR_HANDSHAKE;
    t->cancel = cancel_write;
    t->wait_data = u;
    return mp_lua_yield(L);
}


static int
session_gc(lua_State *L)
{
    SSL_SESSION **ud = luaL_checkudata(L, 1, SESSION_MT);

    if (*ud != NULL) {
        SSL_SESSION_free(*ud);
        *ud = NULL;
    }
    return 0;
}


/* ---- close, keep-alive, options -------------------------------------------- */

static int
tcp_close(lua_State *L)
{
    tcp_t *u = check_tcp(L);

    if (lua_gettop(L) != 1) {
        return luaL_error(L, "expecting 1 argument (including the object) "
                          "but seen %d", lua_gettop(L));
    }
    if (!u->connected) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    check_owner(L, u);
    if (u->rt != NULL || u->wt != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, u->rt != NULL ? "socket busy reading"
                                        : "socket busy writing");
        return 2;
    }
    close_socket(u);
    lua_pushinteger(L, 1);
    return 1;
}


static int
tcp_setkeepalive(lua_State *L)
{
    tcp_t *u = check_tcp(L);
    int n = lua_gettop(L), size;
    mp_msec_t timeout = mp_worker_conf->lua.socket_keepalive_timeout;
    lua_Integer v;

    if (n < 1 || n > 3) {
        return luaL_error(L, "expecting 1 to 3 arguments (including the "
                          "object), but got %d", n);
    }
    size = u->pool_size > 0 ? u->pool_size
                            : mp_worker_conf->lua.socket_pool_size;
    if (n >= 2 && !lua_isnil(L, 2)) {
        v = luaL_checkinteger(L, 2);
        if (v < 0) {
            return luaL_error(L, "invalid keepalive timeout: %d", (int) v);
        }
        timeout = (mp_msec_t) v;
    }
    if (n >= 3 && !lua_isnil(L, 3)) {
        v = luaL_checkinteger(L, 3);
        if (v <= 0) {
            return luaL_error(L, "invalid pool size: %d", (int) v);
        }
        size = (int) v;
    }
    if (!u->connected) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    check_owner(L, u);
    if (u->rt != NULL || u->wt != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, u->rt != NULL ? "socket busy reading"
                                        : "socket busy writing");
        return 2;
    }
    if (u->s.last > u->s.pos) {
        lua_pushnil(L);
        lua_pushliteral(L, "unread data in buffer");
        return 2;
    }
    mp_cosocket_pool_put(&u->s, u->key, u->keylen, timeout, size);
    u->connected = 0;
    lua_pushinteger(L, 1);
    return 1;
}


static int
tcp_getreusedtimes(lua_State *L)
{
    tcp_t *u = check_tcp(L);

    if (lua_gettop(L) != 1) {
        return luaL_error(L, "expecting 1 argument (including the object), "
                          "but got %d", lua_gettop(L));
    }
    if (!u->connected) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    check_owner(L, u);
    lua_pushinteger(L, u->s.reused);
    return 1;
}


static mp_msec_t
check_timeout(lua_State *L, int idx)
{
    lua_Number v = luaL_checknumber(L, idx);

    if (v < 0) {
        luaL_error(L, "bad timeout value");
    }
    return (mp_msec_t) v;
}


static int
tcp_settimeout(lua_State *L)
{
    tcp_t *u = check_tcp(L);
    mp_msec_t ms;

    if (lua_gettop(L) != 2) {
        return luaL_error(L, "ngx.socket settimeout: expecting 2 arguments "
                          "(including the object) but seen %d",
                          lua_gettop(L));
    }
    ms = check_timeout(L, 2);
    u->connect_timeout = u->send_timeout = u->read_timeout = ms;
    return 0;
}


static int
tcp_settimeouts(lua_State *L)
{
    tcp_t *u = check_tcp(L);
    mp_msec_t c, s, r;

    if (lua_gettop(L) != 4) {
        return luaL_error(L, "ngx.socket settimeout: expecting 4 arguments "
                          "(including the object) but seen %d",
                          lua_gettop(L));
    }
    c = check_timeout(L, 2);
    s = check_timeout(L, 3);
    r = check_timeout(L, 4);
    u->connect_timeout = c;
    u->send_timeout = s;
    u->read_timeout = r;
    return 0;
}


/* setoption's options: name, level, optname. */
static const struct {
    const char *name;
    int level;
    int opt;
} tcp_options[] = {
    { "keepalive", SOL_SOCKET, SO_KEEPALIVE },
    { "reuseaddr", SOL_SOCKET, SO_REUSEADDR },
    { "tcp-nodelay", IPPROTO_TCP, TCP_NODELAY },
    { "sndbuf", SOL_SOCKET, SO_SNDBUF },
    { "rcvbuf", SOL_SOCKET, SO_RCVBUF },
};


static int
tcp_setoption(lua_State *L)
{
    tcp_t *u = check_tcp(L);
    const char *name;
    size_t i;
    int v;

    if (lua_gettop(L) != 3) {
        return luaL_error(L, "expecting 3 arguments (including the object), "
                          "but got %d", lua_gettop(L));
    }
    name = luaL_checkstring(L, 2);
    for (i = 0; i < mp_nelems(tcp_options); i++) {
        if (strcmp(name, tcp_options[i].name) == 0) {
            break;
        }
    }
    if (!u->created) {
        return luaL_error(L, "socket is never created nor connected");
    }
    if (i == mp_nelems(tcp_options)) {
        lua_pushnil(L);
        lua_pushfstring(L, "unsupported option %s", name);
        return 2;
    }
    if (!u->connected) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    check_owner(L, u);
    if (lua_type(L, 3) == LUA_TBOOLEAN) {
        v = lua_toboolean(L, 3);
    } else {
        v = (int) luaL_checkinteger(L, 3);
    }
    if (setsockopt(u->s.fd, tcp_options[i].level, tcp_options[i].opt, &v,
                   sizeof(v)) == -1) {
        lua_pushnil(L);
        lua_pushstring(L, mp_cosocket_strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}


static int
tcp_gc(lua_State *L)
{
    tcp_t *u = luaL_checkudata(L, 1, TCP_MT);

    forget_threads(u);
    stop_dns(u);
    free_sni(u);
    mp_cosocket_cleanup(&u->s);
    if (u->key != NULL && u->key != u->key_inline) {
        free(u->key);
    }
    u->key = NULL;
    return 0;
}


static int
tcp_tostring(lua_State *L)
{
    lua_pushfstring(L, "tcp socket: %p", lua_touserdata(L, 1));
    return 1;
}


static int
socket_tcp(lua_State *L)
{
    tcp_t *u;

    if (lua_gettop(L) != 0) {
        return luaL_error(L, "expecting zero arguments, but got %d",
                          lua_gettop(L));
    }
    u = lua_newuserdata(L, sizeof(*u));
    memset(u, 0, sizeof(*u));
    mp_cosocket_init(&u->s);
    u->ref = LUA_NOREF;
    luaL_getmetatable(L, TCP_MT);
    lua_setmetatable(L, -2);
    return 1;
}


/* ngx.socket.connect(host, port, opts?): tcp() plus connect(). */
static const char connect_lua[] =
    "local tcp = ...\n"
    "return function(...)\n"
    "  local sock = tcp()\n"
    "  local ok, err = sock:connect(...)\n"
    "  if not ok then return nil, err end\n"
    "  return sock\n"
    "end\n";


void
mp_lua_inject_socket_api(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "connect", tcp_connect },
        { "sslhandshake", tcp_sslhandshake },
        { "send", tcp_send },
        { "receive", tcp_receive },
        { "receiveany", tcp_receiveany },
        { "receiveuntil", tcp_receiveuntil },
        { "close", tcp_close },
        { "setkeepalive", tcp_setkeepalive },
        { "getreusedtimes", tcp_getreusedtimes },
        { "settimeout", tcp_settimeout },
        { "settimeouts", tcp_settimeouts },
        { "setoption", tcp_setoption },
        { NULL, NULL },
    };
    const luaL_Reg *f;

    luaL_newmetatable(L, TCP_MT);
    lua_createtable(L, 0, 16);
    for (f = methods; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, tcp_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, tcp_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    luaL_newmetatable(L, SESSION_MT);
    lua_pushcfunction(L, session_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    lua_createtable(L, 0, 4);
    lua_pushcfunction(L, socket_tcp);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "tcp");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "stream");
    if (luaL_loadbuffer(L, connect_lua, sizeof(connect_lua) - 1,
                        "=ngx.socket.connect") != 0) {
        abort(); /* our own constant chunk: cannot fail to compile */
    }
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    lua_setfield(L, -2, "connect");
    mp_lua_inject_socket_udp_api(L);
    lua_setfield(L, -2, "socket");
}
