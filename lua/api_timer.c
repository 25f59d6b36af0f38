/*
 * api_timer.c: ngx.timer.at, ngx.timer.every, ngx.timer.running_count and
 * ngx.timer.pending_count.
 *
 * A timer is a heap record with a libevent timer event and a registry
 * reference to {callback, args...}. When it fires, its callback runs in a
 * timer thread (lua/sched.h) with premature = false; cosockets and
 * ngx.sleep work there. On a graceful stop every pending timer fires at
 * once with premature = true, and the worker waits for running timers (up
 * to cluster.shutdown_timeout) before it exits.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "lua/sched.h"
#include "lua/vm.h"
#include "worker/loop.h"

#include <lauxlib.h>

/* OpenResty's defaults for lua_max_pending_timers / lua_max_running_timers */
#define MP_TIMERS_MAX_PENDING 1024
#define MP_TIMERS_MAX_RUNNING 256

typedef struct mp_timer_s mp_timer_t;

struct mp_timer_s {
    struct event ev;
    mp_lua_thread_t thread;   /* while the callback runs */
    mp_msec_t interval;       /* ngx.timer.every; 0 for ngx.timer.at */
    int ref;                  /* {callback, nargs, args...} in the registry */
    int nargs;
    unsigned pending:1;       /* armed, not fired yet */
    unsigned running:1;
    mp_timer_t *prev;
    mp_timer_t *next;
};

static mp_timer_t *timers; /* every live timer: pending or running */
static int npending;
static int nrunning;

static void on_timer(evutil_socket_t fd, short what, void *arg);


static void
timer_unlink(mp_timer_t *tm)
{
    if (tm->prev != NULL) {
        tm->prev->next = tm->next;
    } else {
        timers = tm->next;
    }
    if (tm->next != NULL) {
        tm->next->prev = tm->prev;
    }
}


static void
timer_free(mp_timer_t *tm)
{
    lua_State *L = mp_lua_vm();

    timer_unlink(tm);
    if (L != NULL) {
        luaL_unref(L, LUA_REGISTRYINDEX, tm->ref);
    }
    free(tm);
}


static void
arm(mp_timer_t *tm, mp_msec_t ms)
{
    struct timeval tv = { (time_t) (ms / 1000),
                          (suseconds_t) ((ms % 1000) * 1000) };

    evtimer_add(&tm->ev, &tv);
    tm->pending = 1;
    npending++;
}


static void
on_callback_done(mp_lua_thread_t *t)
{
    mp_timer_t *tm = mp_container_of(t, mp_timer_t, thread);

    tm->running = 0;
    nrunning--;
    if (!tm->pending) {
        timer_free(tm);
    }
    mp_worker_check_exit();
}


/* Runs the callback: callback(premature, args...). */
static void
run(mp_timer_t *tm, int premature)
{
    lua_State *L = mp_lua_vm();
    int i, tbl;

    if (nrunning >= MP_TIMERS_MAX_RUNNING) {
        mp_log_error(MP_LOG_ALERT, 0, "%d lua_max_running_timers are not "
                     "enough", MP_TIMERS_MAX_RUNNING);
        if (!tm->pending) {
            timer_free(tm);
        }
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, tm->ref);
    tbl = lua_gettop(L);
    lua_rawgeti(L, tbl, 1);
    lua_pushboolean(L, premature);
    for (i = 0; i < tm->nargs; i++) {
        lua_rawgeti(L, tbl, i + 2);
    }
    lua_remove(L, tbl);
    memset(&tm->thread, 0, sizeof(tm->thread));
    tm->thread.on_done = on_callback_done;
    tm->running = 1;
    nrunning++;
    mp_lua_thread_start_timer(L, &tm->thread, tm->nargs + 1);
}


static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    mp_timer_t *tm = arg;

    (void) fd;
    (void) what;
    mp_worker_time_update();
    tm->pending = 0;
    npending--;
    if (tm->interval > 0 && !mp_worker_exiting()) {
        if (tm->running) {
            /* the previous run is still going: skip this beat */
            arm(tm, tm->interval);
            return;
        }
        arm(tm, tm->interval);
    }
    run(tm, 0);
}


static int
create(lua_State *L, int every)
{
    int i, nargs = lua_gettop(L) - 2;
    lua_Number delay;
    mp_timer_t *tm;
    mp_msec_t ms;

    if (nargs < 0) {
        return luaL_error(L, "expecting at least 2 arguments but got %d",
                          nargs + 2);
    }
    /*
     * Whole milliseconds, truncated as OpenResty's cast does, so 0.0001 is
     * 0 ("delay cannot be zero" for every). A negative delay is accepted
     * there and its timer expires at once; here it is 0 (every: 1 ms).
     */
    delay = luaL_checknumber(L, 1) * 1000;
    if (every && delay > -1 && delay < 1) {
        return luaL_error(L, "delay cannot be zero");
    }
    luaL_argcheck(L, lua_isfunction(L, 2) && !lua_iscfunction(L, 2), 2,
                  "Lua function expected");
    /* a year is as good as forever and keeps the cast defined */
    ms = delay < 1 ? 0 : delay < 3.2e10 ? (mp_msec_t) delay : 32000000000;
    if (mp_worker_base == NULL || mp_lua_master_init_running) {
        return luaL_error(L, "API disabled in the context of init_by_lua*");
    }
    if (mp_worker_exiting()) {
        lua_pushnil(L);
        lua_pushliteral(L, "process exiting");
        return 2;
    }
    if (npending >= MP_TIMERS_MAX_PENDING) {
        lua_pushnil(L);
        lua_pushliteral(L, "too many pending timers");
        return 2;
    }
    tm = mp_calloc(1, sizeof(*tm));
    lua_createtable(L, nargs + 1, 0);
    for (i = 0; i <= nargs; i++) {
        lua_pushvalue(L, i + 2);
        lua_rawseti(L, -2, i + 1);
    }
    tm->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    tm->nargs = nargs;
    tm->interval = every ? mp_max(ms, 1) : 0;
    evtimer_assign(&tm->ev, mp_worker_base, on_timer, tm);
    tm->next = timers;
    if (timers != NULL) {
        timers->prev = tm;
    }
    timers = tm;
    arm(tm, ms);
    lua_pushinteger(L, 1);
    return 1;
}


static int
timer_at(lua_State *L)
{
    return create(L, 0);
}


static int
timer_every(lua_State *L)
{
    return create(L, 1);
}


static int
timer_running_count(lua_State *L)
{
    lua_pushinteger(L, nrunning);
    return 1;
}


static int
timer_pending_count(lua_State *L)
{
    lua_pushinteger(L, npending);
    return 1;
}


/* Graceful stop: every pending timer fires now, premature. */
static void
fire_premature(void)
{
    mp_timer_t *tm, *next;

    for (tm = timers; tm != NULL; tm = next) {
        next = tm->next;
        if (!tm->pending) {
            continue;
        }
        event_del(&tm->ev);
        tm->pending = 0;
        npending--;
        tm->interval = 0;
        if (tm->running) {
            continue;
        }
        run(tm, 1);
    }
}


static int
running_timers(void)
{
    return nrunning;
}


int
mp_lua_timers_pending(void)
{
    return npending;
}


int
mp_lua_timers_running(void)
{
    return nrunning;
}


void
mp_lua_inject_timer_api(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "at", timer_at },
        { "every", timer_every },
        { "running_count", timer_running_count },
        { "pending_count", timer_pending_count },
        { NULL, NULL },
    };
    const luaL_Reg *f;

    lua_createtable(L, 0, 4);
    for (f = fns; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_setfield(L, -2, "timer");
}


void
mp_lua_timers_setup(void)
{
    mp_worker_shutdown_hook = fire_premature;
    mp_worker_busy_hook = running_timers;
}
