/*
 * api_sema.c: ngx.semaphore (require "ngx.semaphore"), lua-resty-core's
 * semaphore: new(n), sema:post(n), sema:wait(timeout), sema:count(),
 * usable across the requests and timers of one worker.
 *
 * A waiting thread sits in the semaphore's queue with a timeout on its own
 * event. A post hands resources to waiters in order and resumes them in the
 * next loop iteration, as OpenResty does, so post never runs another
 * thread's code inside the caller.
 */
#include "core/mp_core.h"
#include "lua/sched.h"
#include "lua/vm.h"

#include <lauxlib.h>

#define MP_SEMA_MT "ngx.semaphore"

typedef struct {
    int count;                /* resources available */
    int nwait;                /* threads in the queue */
    mp_lua_thread_t *head;
    mp_lua_thread_t *tail;
} mp_sema_t;


static void
dequeue(mp_sema_t *s, mp_lua_thread_t *t)
{
    if (t->wq_prev != NULL) {
        t->wq_prev->wq_next = t->wq_next;
    } else {
        s->head = t->wq_next;
    }
    if (t->wq_next != NULL) {
        t->wq_next->wq_prev = t->wq_prev;
    } else {
        s->tail = t->wq_prev;
    }
    t->wq_prev = t->wq_next = NULL;
    s->nwait--;
}


static void
cancel_wait(mp_lua_thread_t *t)
{
    event_del(&t->ev);
    dequeue(t->wait_data, t);
}


static void
on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    mp_lua_thread_t *t = arg;

    (void) fd;
    (void) what;
    dequeue(t->wait_data, t);
    lua_settop(t->co, 0);
    lua_pushboolean(t->co, 0); /* false, not nil, after a wait */
    lua_pushliteral(t->co, "timeout");
    mp_lua_thread_resume(t, 2);
}


/* lua-resty-core checks self by hand, and so does its error text. */
static mp_sema_t *
check_sema(lua_State *L)
{
    mp_sema_t *s = luaL_testudata(L, 1, MP_SEMA_MT);

    if (s == NULL) {
        luaL_error(L, "not a semaphore instance");
    }
    return s;
}


/*
 * The numbers below go through lua-resty-core's Lua code and an FFI int
 * there: tonumber() with a default, then truncation. Its errors are raised
 * with level 2, as luaL_error does here.
 */
static int
sema_new(lua_State *L)
{
    lua_Number n = lua_isnumber(L, 1) ? lua_tonumber(L, 1) : 0;
    mp_sema_t *s;

    if (n < 0) {
        return luaL_error(L, "no negative number");
    }
    s = lua_newuserdata(L, sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->count = n < INT_MAX ? (int) n : INT_MAX;
    luaL_getmetatable(L, MP_SEMA_MT);
    lua_setmetatable(L, -2);
    return 1;
}


static int
sema_post(lua_State *L)
{
    mp_sema_t *s = check_sema(L);
    lua_Number n = lua_isnumber(L, 2) ? lua_tonumber(L, 2) : 1;
    mp_lua_thread_t *t;

    if (n < 1) {
        return luaL_error(L, "positive number required");
    }
    s->count += n < INT_MAX - s->count ? (int) n : INT_MAX - s->count;
    while (s->count > 0 && s->head != NULL) {
        t = s->head;
        dequeue(s, t);
        s->count--;
        lua_settop(t->co, 0);
        lua_pushboolean(t->co, 1);
        lua_pushnil(t->co);
        mp_lua_thread_resume_later(t, 2);
    }
    lua_pushboolean(L, 1);
    return 1;
}


static int
sema_wait(lua_State *L)
{
    mp_sema_t *s = check_sema(L);
    mp_lua_thread_t *t = mp_lua_thread_current();
    lua_Number ms;
    int wait_ms;

    if (t == NULL) {
        return luaL_error(L, "no request found");
    }
    if (!lua_isnumber(L, 2)) {
        /* what tonumber(seconds) * 1000 raises in lua-resty-core */
        return luaL_error(L, "attempt to perform arithmetic on a nil value");
    }
    ms = lua_tonumber(L, 2) * 1000;
    if (ms < 0) {
        return luaL_error(L, "no negative number");
    }
    if (t->r != NULL
        && !(MP_LUA_PHASES_OUTPUT & MP_LUA_PHASE(t->r->phase))) {
        /* returned, not raised: lua-resty-core passes the C error on */
        lua_pushnil(L);
        lua_pushfstring(L, "API disabled in the context of %s_by_lua*",
                        mp_phase_names[t->r->phase]);
        return 2;
    }
    if (s->count > 0) {
        s->count--;
        lua_pushboolean(L, 1);
        return 1;
    }
    wait_ms = ms < INT_MAX ? (int) ms : INT_MAX;
    if (wait_ms == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2;
    }
    t->wq_next = NULL;
    t->wq_prev = s->tail;
    if (s->tail != NULL) {
        s->tail->wq_next = t;
    } else {
        s->head = t;
    }
    s->tail = t;
    s->nwait++;
    t->wait_data = s;
    mp_lua_thread_timer(t, wait_ms, on_wait_timeout);
    t->cancel = cancel_wait;
    return mp_lua_yield(L);
}


static int
sema_count(lua_State *L)
{
    mp_sema_t *s = check_sema(L);

    /* negative: that many threads are waiting (lua-resty-core) */
    lua_pushinteger(L, s->count - s->nwait);
    return 1;
}


static int
sema_module(lua_State *L)
{
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, sema_new);
    lua_setfield(L, -2, "new");
    lua_pushliteral(L, "0.1.0");
    lua_setfield(L, -2, "version");
    return 1;
}


void
mp_lua_inject_sema_api(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "post", sema_post },
        { "wait", sema_wait },
        { "count", sema_count },
        { NULL, NULL },
    };
    const luaL_Reg *f;

    luaL_newmetatable(L, MP_SEMA_MT);
    lua_createtable(L, 0, 3);
    for (f = methods; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, sema_module);
    lua_setfield(L, -2, "ngx.semaphore");
    lua_pop(L, 2);
}
