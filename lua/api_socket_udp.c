/*
 * api_socket_udp.c: ngx.socket.udp, OpenResty's UDP cosocket: setpeername,
 * send, receive, settimeout, close, over worker/cosocket.h (a connected
 * datagram socket).
 *
 * Only receive can wait (send on a UDP socket does not block); it yields
 * with the socket's read waiter armed, as the TCP side does. A datagram is
 * read into one worker-wide buffer and pushed at once, so a socket needs
 * no buffer of its own.
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
#include <stdio.h>
#include <sys/un.h>

#define UDP_MT "ngx.socket.udp"
#define UDP_MAX_DATAGRAM 65536

typedef struct {
    mp_cosocket_t s;
    void *owner;
    mp_request_t *r;
    int ref;
    mp_lua_thread_t *rt;      /* waiting in receive */
    mp_lua_thread_t *wt;      /* waiting for setpeername's resolution */
    mp_resolver_req_t *dns;
    mp_msec_t read_timeout;   /* 0: lua.socket_read_timeout */
    size_t rsize;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    char host[64];
} udp_t;

static char datagram[UDP_MAX_DATAGRAM];


static udp_t *
check_udp(lua_State *L)
{
    return luaL_checkudata(L, 1, UDP_MT);
}


static void *
current_owner(void)
{
    mp_lua_thread_t *t = mp_lua_thread_current();

    if (t == NULL) {
        return NULL;
    }
    return t->r != NULL ? (void *) t->r : (void *) t;
}


static void
check_owner(lua_State *L, udp_t *u)
{
    if (u->owner != NULL && u->owner != current_owner()) {
        luaL_error(L, "bad request");
    }
}


static void
udp_close_now(udp_t *u)
{
    if (u->dns != NULL) {
        mp_resolver_cancel(u->dns);
        u->dns = NULL;
    }
    mp_cosocket_close(&u->s);
}


static void
on_request_done(void *data)
{
    udp_t *u = data;
    lua_State *L = mp_lua_vm();

    if (u->rt != NULL) {
        u->rt->cancel = NULL;
        u->rt = NULL;
    }
    if (u->wt != NULL) {
        u->wt->cancel = NULL;
        u->wt = NULL;
    }
    udp_close_now(u);
    u->owner = NULL;
    u->r = NULL;
    if (L != NULL && u->ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, u->ref);
    }
    u->ref = LUA_NOREF;
}


static void
bind_owner(lua_State *L, udp_t *u, mp_lua_thread_t *t)
{
    u->owner = t->r != NULL ? (void *) t->r : (void *) t;
    if (t->r != NULL && u->r != t->r) {
        u->r = t->r;
        lua_pushvalue(L, 1);
        u->ref = luaL_ref(L, LUA_REGISTRYINDEX);
        mp_pool_cleanup_add(t->r->pool, on_request_done, u);
    }
}


static void
cancel_op(mp_lua_thread_t *t)
{
    udp_t *u = t->wait_data;

    if (u == NULL) {
        return;
    }
    if (u->rt == t) {
        mp_cosocket_unwait(&u->s.rd);
        u->rt = NULL;
    }
    if (u->wt == t) {
        if (u->dns != NULL) {
            mp_resolver_cancel(u->dns);
            u->dns = NULL;
        }
        u->wt = NULL;
    }
}


/* Connects the datagram socket to u->peer; pushes 1 or nil, err. */
static int
connect_peer(udp_t *u, lua_State *co)
{
    if (mp_cosocket_connect(&u->s, (struct sockaddr *) &u->peer, u->peerlen,
                            SOCK_DGRAM) == MP_ERROR) {
        mp_log_error(MP_LOG_ERR, u->s.err, "connect() to %s failed",
                     u->host);
        lua_pushnil(co);
        lua_pushstring(co, mp_cosocket_strerror(u->s.err));
        return 2;
    }
    lua_pushinteger(co, 1);
    return 1;
}


static void
on_resolved(void *data, int code, const char *text, const struct sockaddr *sa,
            socklen_t len)
{
    udp_t *u = data;
    mp_lua_thread_t *t = u->wt;
    lua_State *co;
    uint16_t port = ((struct sockaddr_in *) &u->peer)->sin_port;
    char *colon = strrchr(u->host, ':');
    int n;

    u->dns = NULL;
    u->wt = NULL;
    co = t->co;
    lua_settop(co, 0);
    if (code != 0) {
        lua_pushnil(co);
        lua_pushfstring(co, "%s could not be resolved (%d: %s)", u->host,
                        code, text);
        if (colon != NULL) {
            /* the host alone, as OpenResty words it */
            *colon = '\0';
            lua_pop(co, 1);
            lua_pushfstring(co, "%s could not be resolved (%d: %s)",
                            u->host, code, text);
            *colon = ':';
        }
        mp_log_error(MP_LOG_ERR, 0, "%s", lua_tostring(co, -1));
        mp_lua_thread_resume(t, 2);
        return;
    }
    memcpy(&u->peer, sa, len);
    ((struct sockaddr_in *) &u->peer)->sin_port = port;
    u->peerlen = len;
    n = connect_peer(u, co);
    mp_lua_thread_resume(t, n);
}


static int
udp_setpeername(lua_State *L)
{
    udp_t *u = check_udp(L);
    int n = lua_gettop(L), port = 0;
    size_t hlen;
    const char *host, *err;
    struct sockaddr_un *sun = (struct sockaddr_un *) &u->peer;
    mp_lua_thread_t *t;
    lua_Integer p;

    if (n != 2 && n != 3) {
        return luaL_error(L, "ngx.socket udp setpeername: expecting 2 or 3 "
                          "arguments (including the object), but seen %d",
                          n);
    }
    host = luaL_checklstring(L, 2, &hlen);
    if (n == 3) {
        p = luaL_checkinteger(L, 3);
        if (p < 0 || p > 65535) {
            lua_pushnil(L);
            lua_pushfstring(L, "bad port number: %d", (int) p);
            return 2;
        }
        port = (int) p;
    }
    t = mp_lua_thread_yieldable(L);
    check_owner(L, u);
    if (u->rt != NULL || u->wt != NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "socket busy");
        return 2;
    }
    udp_close_now(u);
    bind_owner(L, u, t);
    snprintf(u->host, sizeof(u->host), "%.*s:%d", (int) mp_min(hlen, 40),
             host, port);
    if (hlen >= 5 && memcmp(host, "unix:", 5) == 0) {
        if (hlen - 5 == 0 || hlen - 5 >= sizeof(sun->sun_path)) {
            lua_pushnil(L);
            lua_pushliteral(L, "failed to parse host name \"unix:\": bad "
                            "path");
            return 2;
        }
        memset(sun, 0, sizeof(*sun));
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, host + 5, hlen - 5);
        u->peerlen = (socklen_t) (offsetof(struct sockaddr_un, sun_path)
                                  + hlen - 5 + 1);
        return connect_peer(u, L);
    }
    if (n != 3) {
        return luaL_error(L, "ngx.socket udp setpeername: expecting 3 "
                          "arguments for a host name");
    }
    if (mp_resolver_literal(host, &u->peer, &u->peerlen) == MP_OK) {
        ((struct sockaddr_in *) &u->peer)->sin_port = htons((uint16_t) port);
        return connect_peer(u, L);
    }
    memset(&u->peer, 0, sizeof(u->peer));
    ((struct sockaddr_in *) &u->peer)->sin_port = htons((uint16_t) port);
    u->dns = mp_resolver_start(host, on_resolved, u, &err);
    if (u->dns == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    u->wt = t;
    t->cancel = cancel_op;
    t->wait_data = u;
    return mp_lua_yield(L);
}


static int
udp_send(lua_State *L)
{
    udp_t *u = check_udp(L);
    const char *data;
    size_t len;
    ssize_t n;

    if (lua_gettop(L) != 2) {
        return luaL_error(L, "expecting 2 arguments (including the object), "
                          "but got %d", lua_gettop(L));
    }
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_getglobal(L, "table");
        lua_getfield(L, -1, "concat");
        lua_pushvalue(L, 2);
        lua_call(L, 1, 1);
        lua_replace(L, 2);
        lua_pop(L, 1);
    } else if (lua_type(L, 2) != LUA_TSTRING
               && lua_type(L, 2) != LUA_TNUMBER) {
        return luaL_argerror(L, 2, lua_pushfstring(L, "string, number, "
                             "boolean, nil, or array table expected, got %s",
                             luaL_typename(L, 2)));
    }
    data = lua_tolstring(L, 2, &len);
    if (u->s.fd == -1) {
        mp_log_error(MP_LOG_ERR, 0, "attempt to send data on a closed "
                     "socket");
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    check_owner(L, u);
    n = mp_cosocket_write(&u->s, data, len);
    if (n == -1) {
        lua_pushnil(L);
        lua_pushstring(L, mp_cosocket_strerror(u->s.err));
        return 2;
    }
    if ((size_t) n != len) {
        lua_pushnil(L);
        lua_pushliteral(L, "short write");
        return 2;
    }
    lua_pushinteger(L, 1);
    return 1;
}


/* Reads one datagram; pushes its results, or returns 0 to wait. */
static int
try_recv(udp_t *u, lua_State *co)
{
    ssize_t n = mp_cosocket_read(&u->s, datagram, u->rsize);

    if (n >= 0) {
        lua_pushlstring(co, datagram, (size_t) n);
        return 1;
    }
    if (u->s.err == EAGAIN) {
        return 0;
    }
    lua_pushnil(co);
    lua_pushstring(co, mp_cosocket_strerror(u->s.err));
    return 2;
}


static void
on_recv_event(mp_cosocket_t *s, void *data, short what)
{
    udp_t *u = data;
    mp_lua_thread_t *t = u->rt;
    lua_State *co = t->co;
    int n;

    (void) s;
    lua_settop(co, 0);
    if (what & EV_TIMEOUT) {
        mp_log_error(MP_LOG_ERR, 0, "lua udp socket read timed out");
        lua_pushnil(co);
        lua_pushliteral(co, "timeout");
        n = 2;
    } else {
        n = try_recv(u, co);
        if (n == 0) {
            mp_cosocket_wait(&u->s, &u->s.rd, EV_READ,
                             u->read_timeout > 0
                                 ? u->read_timeout
                                 : mp_worker_conf->lua.socket_read_timeout,
                             on_recv_event, u);
            return;
        }
    }
    u->rt = NULL;
    mp_lua_thread_resume(t, n);
}


static int
udp_receive(lua_State *L)
{
    udp_t *u = check_udp(L);
    mp_lua_thread_t *t;
    lua_Number size = UDP_MAX_DATAGRAM;
    int n;

    if (lua_gettop(L) != 1 && lua_gettop(L) != 2) {
        return luaL_error(L, "expecting 1 or 2 arguments (including the "
                          "object), but got %d", lua_gettop(L));
    }
    if (lua_gettop(L) == 2) {
        size = luaL_checknumber(L, 2);
        if (size <= 0) {
            return luaL_argerror(L, 2, "bad size argument");
        }
    }
    t = mp_lua_thread_yieldable(L);
    if (u->s.fd == -1) {
        mp_log_error(MP_LOG_ERR, 0, "attempt to receive data on a closed "
                     "socket");
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    check_owner(L, u);
    if (u->rt != NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "socket busy reading");
        return 2;
    }
    u->rsize = (size_t) mp_min(size, (lua_Number) UDP_MAX_DATAGRAM);
    n = try_recv(u, L);
    if (n > 0) {
        return n;
    }
    mp_cosocket_wait(&u->s, &u->s.rd, EV_READ,
                     u->read_timeout > 0
                         ? u->read_timeout
                         : mp_worker_conf->lua.socket_read_timeout,
                     on_recv_event, u);
    u->rt = t;
    t->cancel = cancel_op;
    t->wait_data = u;
    return mp_lua_yield(L);
}


static int
udp_settimeout(lua_State *L)
{
    udp_t *u = check_udp(L);
    lua_Number ms;

    if (lua_gettop(L) != 2) {
        return luaL_error(L, "ngx.socket settimeout: expecting 2 arguments "
                          "(including the object) but seen %d",
                          lua_gettop(L));
    }
    ms = luaL_checknumber(L, 2);
    if (ms < 0) {
        return luaL_error(L, "bad timeout value");
    }
    u->read_timeout = (mp_msec_t) ms;
    return 0;
}


static int
udp_close(lua_State *L)
{
    udp_t *u = check_udp(L);

    if (lua_gettop(L) != 1) {
        return luaL_error(L, "expecting 1 argument (including the object) "
                          "but seen %d", lua_gettop(L));
    }
    if (u->s.fd == -1) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    check_owner(L, u);
    if (u->rt != NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "socket busy reading");
        return 2;
    }
    udp_close_now(u);
    lua_pushinteger(L, 1);
    return 1;
}


static int
udp_gc(lua_State *L)
{
    udp_t *u = luaL_checkudata(L, 1, UDP_MT);

    udp_close_now(u);
    mp_cosocket_cleanup(&u->s);
    return 0;
}


static int
socket_udp(lua_State *L)
{
    udp_t *u;

    if (lua_gettop(L) != 0) {
        return luaL_error(L, "expecting zero arguments, but got %d",
                          lua_gettop(L));
    }
    u = lua_newuserdata(L, sizeof(*u));
    memset(u, 0, sizeof(*u));
    mp_cosocket_init(&u->s);
    u->ref = LUA_NOREF;
    luaL_getmetatable(L, UDP_MT);
    lua_setmetatable(L, -2);
    return 1;
}


void
mp_lua_inject_socket_udp_api(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "setpeername", udp_setpeername },
        { "send", udp_send },
        { "receive", udp_receive },
        { "settimeout", udp_settimeout },
        { "close", udp_close },
        { NULL, NULL },
    };
    const luaL_Reg *f;

    luaL_newmetatable(L, UDP_MT);
    lua_createtable(L, 0, 8);
    for (f = methods; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, udp_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    lua_pushcfunction(L, socket_udp);
    lua_setfield(L, -2, "udp");
}
