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
    lua_pushnil(t->co);
    lua_pushliteral(t->co, "timeout");
    mp_lua_thread_resume(t, 2);
}


static mp_sema_t *
check_sema(lua_State *L)
{
    return luaL_checkudata(L, 1, MP_SEMA_MT);
}


static int
sema_new(lua_State *L)
{
    lua_Integer n = luaL_optinteger(L, 1, 0);
    mp_sema_t *s;

    if (n < 0) {
        return luaL_error(L, "no negative number");
    }
    s = lua_newuserdata(L, sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->count = (int) n;
    luaL_getmetatable(L, MP_SEMA_MT);
    lua_setmetatable(L, -2);
    return 1;
}


static int
sema_post(lua_State *L)
{
    mp_sema_t *s = check_sema(L);
    lua_Integer n = luaL_optinteger(L, 2, 1);
    mp_lua_thread_t *t;

    if (n < 1) {
        return luaL_error(L, "bad 'n' argument: must be at least 1");
    }
    s->count += (int) n;
    while (s->count > 0 && s->head != NULL) {
        t = s->head;
        dequeue(s, t);
        s->count--;
        lua_settop(t->co, 0);
        lua_pushboolean(t->co, 1);
        mp_lua_thread_resume_later(t, 1);
    }
    lua_pushboolean(L, 1);
    return 1;
}


static int
sema_wait(lua_State *L)
{
    mp_sema_t *s = check_sema(L);
    lua_Number timeout = luaL_checknumber(L, 2);
    mp_lua_thread_t *t;

    if (timeout < 0) {
        return luaL_error(L, "bad 'timeout' argument: must not be negative");
    }
    t = mp_lua_thread_yieldable(L);
    if (s->count > 0) {
        s->count--;
        lua_pushboolean(L, 1);
        return 1;
    }
    if (timeout == 0) {
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
    mp_lua_thread_timer(t, (mp_msec_t) (timeout * 1000 + 0.5),
                        on_wait_timeout);
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
