/*
 * sched.c: Lua threads and their scheduling (see sched.h): the entry
 * thread of each phase handler, light threads (ngx.thread.*), ngx.sleep,
 * and the coroutine.* wrappers that let those yields pass through user
 * coroutines.
 *
 * How a wait travels: the C function of an operation sets ngx_yield and
 * yields the innermost coroutine. If that is a user coroutine, the wrapped
 * coroutine.resume sees the flag and yields its own coroutine the same way,
 * up to the thread's top coroutine, whose lua_resume() here returns with the
 * flag set: the thread is waiting. Resuming the top coroutine later with the
 * operation's results walks back down the same chain.
 *
 * Only one thread runs at a time; cur_thread is set around each resume.
 * A request's phase handler is finished when its entry thread returned and
 * every light thread it spawned has ended; ngx.exit (or exec) from any of
 * them ends all of them.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "lua/sched.h"
#include "lua/vm.h"
#include "worker/loop.h"
#include "worker/phases.h"

#include <lauxlib.h>

#define MP_LUA_CO_POOL 64

typedef struct {
    lua_State *co;
    int ref;
} pooled_co_t;

static pooled_co_t co_pool[MP_LUA_CO_POOL];
static int co_pool_n;
static mp_lua_thread_t *cur_thread;
static int ngx_yield;            /* the last yield was an operation's */

/* registry key of the table mapping coroutine -> lightuserdata thread */
static char threads_key;

static void thread_release(mp_lua_thread_t *t, int reusable);


mp_lua_thread_t *
mp_lua_thread_current(void)
{
    return cur_thread;
}


void
mp_lua_sched_reset(void)
{
    co_pool_n = 0;
    cur_thread = NULL;
}


mp_lua_thread_t *
mp_lua_thread_yieldable(lua_State *L)
{
    mp_lua_thread_t *t = cur_thread;

    if (t == NULL) {
        luaL_error(L, "no request found");
    }
    if (t->r != NULL) {
        mp_lua_check_phase(L, t->r, MP_LUA_PHASES_OUTPUT);
    }
    return t;
}


int
mp_lua_yield(lua_State *L)
{
    ngx_yield = 1;
    cur_thread->waiting = 1;
    return lua_yield(L, 0);
}


/* ---- coroutines of threads ----------------------------------------------- */

static void
acquire_co(lua_State *L, mp_lua_thread_t *t)
{
    if (co_pool_n > 0) {
        co_pool_n--;
        t->co = co_pool[co_pool_n].co;
        t->co_ref = co_pool[co_pool_n].ref;
        return;
    }
    t->co = lua_newthread(L);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}


/* Remembers co -> t so ngx.thread.wait/kill find a light thread. */
static void
map_thread(lua_State *L, mp_lua_thread_t *t, int set)
{
    lua_pushlightuserdata(L, &threads_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->co_ref);
    if (set) {
        lua_pushlightuserdata(L, t);
    } else {
        lua_pushnil(L);
    }
    lua_rawset(L, -3);
    lua_pop(L, 1);
}


static mp_lua_thread_t *
find_thread(lua_State *L, int idx)
{
    mp_lua_thread_t *t;

    lua_pushlightuserdata(L, &threads_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    t = lua_touserdata(L, -1);
    lua_pop(L, 2);
    return t;
}


/* Gives the coroutine back: to the pool if it ended cleanly. */
static void
thread_release(mp_lua_thread_t *t, int reusable)
{
    lua_State *L = mp_lua_vm();

    if (t->co == NULL) {
        return;
    }
    if (t->kind == MP_LUA_THREAD_USER) {
        map_thread(L, t, 0);
        reusable = 0; /* its object escaped to Lua code */
    }
    if (reusable && co_pool_n < MP_LUA_CO_POOL) {
        lua_settop(t->co, 0);
        co_pool[co_pool_n].co = t->co;
        co_pool[co_pool_n].ref = t->co_ref;
        co_pool_n++;
    } else {
        luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
    }
    t->co = NULL;
    t->co_ref = LUA_NOREF;
}


static void
thread_event(mp_lua_thread_t *t, event_callback_fn cb)
{
    if (t->ev_set) {
        event_del(&t->ev);
    }
    event_assign(&t->ev, mp_worker_base, -1, 0, cb, t);
    t->ev_set = 1;
}


/* Stops a thread where it stands: its operation is cancelled. */
static void
thread_kill(mp_lua_thread_t *t)
{
    if (!t->done) {
        if (t->waiting && t->cancel != NULL) {
            t->cancel(t);
        }
        t->done = 1;
        t->waiting = 0;
        if (t->kind == MP_LUA_THREAD_USER && t->r != NULL) {
            mp_lua_ctx(t->r)->live--;
        }
    }
    if (t->ev_set) {
        event_del(&t->ev);
    }
    t->cancel = NULL;
    thread_release(t, 0);
}


/* ---- running a thread ---------------------------------------------------- */

static void
log_thread_error(mp_lua_thread_t *t)
{
    lua_State *co = t->co;
    const char *msg = lua_tostring(co, -1);
    const char *tb, *what;
    lua_State *L = mp_lua_vm();
    static const char head[] = "stack traceback:\n";

    if (msg == NULL) {
        msg = "unknown reason"; /* OpenResty's words for a non-string */
    }
    luaL_traceback(L, co, NULL, 0);
    tb = lua_tostring(L, -1);
    if (strncmp(tb, head, sizeof(head) - 1) == 0) {
        tb += sizeof(head) - 1;
    }
    what = t->kind == MP_LUA_THREAD_USER ? "user" : "entry";
    if (t->kind == MP_LUA_THREAD_TIMER) {
        mp_log_error(MP_LOG_ERR, 0, "lua entry thread aborted: runtime error: "
                     "%s\nstack traceback:\ncoroutine 0:\n%s, context: "
                     "ngx.timer", msg, tb);
    } else {
        /* OpenResty's shape, which log scrapers already parse */
        mp_log_error(MP_LOG_ERR, 0, "lua %s thread aborted: runtime error: "
                     "%s\nstack traceback:\ncoroutine 0:\n%s", what, msg, tb);
    }
    lua_pop(L, 1);
}


static int
request_exited(const mp_lua_thread_t *t)
{
    return t->r != NULL && t->r->lua_ctx != NULL
           && ((mp_lua_ctx_t *) t->r->lua_ctx)->exited;
}


static void on_wake(evutil_socket_t fd, short what, void *arg);


/* Hands a finished light thread's results to the thread waiting on it. */
static void
wake_waiter(mp_lua_thread_t *t)
{
    mp_lua_thread_t *w = t->waiter, *o;
    mp_lua_ctx_t *ctx = mp_lua_ctx(t->r);
    int nres;

    for (o = ctx->threads; o != NULL; o = o->next) {
        if (o->waiter == w) {
            o->waiter = NULL;
        }
    }
    lua_settop(w->co, 0);
    lua_pushboolean(w->co, !t->failed);
    lua_xmove(t->co, w->co, t->nresults);
    t->reaped = 1;
    nres = t->nresults + 1;
    thread_release(t, 0);
    mp_lua_thread_resume_later(w, nres);
}


/* One resume of t's top coroutine, and what follows from how it stopped. */
static void
thread_step(mp_lua_thread_t *t, int nargs)
{
    mp_lua_thread_t *prev = cur_thread;
    mp_request_t *prev_r = mp_lua_set_request(t->r);
    int rc;

    cur_thread = t;
    t->waiting = 0;
    t->cancel = NULL;
    ngx_yield = 0;
    rc = lua_resume(t->co, nargs);
    cur_thread = prev;
    mp_lua_set_request(prev_r);

    if (rc == LUA_YIELD) {
        if (ngx_yield) {
            ngx_yield = 0;
            t->waiting = 1;
            return;
        }
        if (request_exited(t)) {
            t->done = 1;
        } else {
            /* a plain coroutine.yield() at the top of a thread lets
             * others run and comes back in the next loop iteration */
            lua_settop(t->co, 0);
            mp_lua_thread_resume_later(t, 0);
            return;
        }
    } else {
        t->done = 1;
        if (rc != 0) {
            t->failed = 1;
            log_thread_error(t);
            lua_settop(t->co, 1); /* keep the message for ngx.thread.wait */
            t->nresults = 1;
        } else {
            t->nresults = lua_gettop(t->co);
        }
    }
    if (t->kind == MP_LUA_THREAD_USER) {
        mp_lua_ctx(t->r)->live--;
        if (t->waiter != NULL) {
            wake_waiter(t);
        }
    }
}


/* Maps ngx.exit(code) to what the phase engine expects. */
static int
handle_exit(mp_request_t *r, int code)
{
    if (r->phase == MP_PHASE_LOG) {
        return MP_OK; /* the response is gone; nothing to end */
    }
    if (code >= 200) {
        if (r->header_sent) {
            mp_http_finalize(r, 0);
        } else if (code >= 300 || code == 204) {
            mp_http_send_error_page(r, code);
        } else {
            mp_http_finalize(r, code);
        }
        return MP_DONE;
    }
    if (code == MP_ERROR || code < 0) {
        return code == MP_DECLINED ? MP_DECLINED : MP_ERROR;
    }
    return MP_OK;
}


/* Ends every thread of r's current handler. */
static void
kill_all(mp_lua_ctx_t *ctx)
{
    mp_lua_thread_t *t;

    for (t = ctx->threads; t != NULL; t = t->next) {
        thread_kill(t);
    }
    ctx->threads = NULL;
    ctx->live = 0;
    thread_kill(&ctx->entry);
}


/*
 * After any thread of r's handler ran: MP_AGAIN while it goes on, else what
 * the phase engine hears (the handler's threads are gone by then).
 */
static int
request_outcome(mp_request_t *r)
{
    mp_lua_ctx_t *ctx = mp_lua_ctx(r);
    mp_lua_thread_t *e = &ctx->entry;
    int kind;

    if (!ctx->running) {
        return MP_AGAIN;
    }
    if (ctx->exited) {
        ctx->running = 0;
        ctx->exited = 0;
        kind = ctx->exit_kind;
        kill_all(ctx);
        if (kind == MP_LUA_EXIT_STATUS) {
            return handle_exit(r, ctx->exit_code);
        }
        if (kind == MP_LUA_EXIT_EXEC && ctx->ctx_ref > 0) {
            /* ngx.exec starts the new location with a fresh ngx.ctx */
            luaL_unref(mp_lua_vm(), LUA_REGISTRYINDEX, ctx->ctx_ref);
            ctx->ctx_ref = 0;
        }
        mp_phases_redirect(r, kind == MP_LUA_EXIT_EXEC);
        return MP_DONE;
    }
    if (!e->done) {
        return MP_AGAIN;
    }
    if (e->failed) {
        ctx->running = 0;
        kill_all(ctx);
        return MP_ERROR;
    }
    if (ctx->live > 0) {
        return MP_AGAIN;
    }
    ctx->running = 0;
    thread_release(e, 1);
    kill_all(ctx); /* zombies nobody waited for */
    return MP_OK;
}


int
mp_lua_run_entry(mp_request_t *r, int ref)
{
    mp_lua_ctx_t *ctx = mp_lua_ctx(r);
    mp_lua_thread_t *e = &ctx->entry;
    lua_State *L = mp_lua_vm();

    memset(e, 0, sizeof(*e));
    e->kind = MP_LUA_THREAD_ENTRY;
    e->r = r;
    acquire_co(L, e);
    lua_rawgeti(e->co, LUA_REGISTRYINDEX, ref);
    ctx->running = 1;
    ctx->exited = 0;
    thread_step(e, 0);
    return request_outcome(r);
}


void
mp_lua_thread_resume(mp_lua_thread_t *t, int nargs)
{
    mp_request_t *r = t->r;
    int rc;

    if (t->done || t->co == NULL) {
        return;
    }
    thread_step(t, nargs);
    if (t->kind == MP_LUA_THREAD_TIMER) {
        if (t->done) {
            thread_release(t, !t->failed);
            if (t->on_done != NULL) {
                t->on_done(t);
            }
        }
        return;
    }
    rc = request_outcome(r);
    if (rc != MP_AGAIN) {
        mp_phases_resume(r, rc);
    }
}


static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
    mp_lua_thread_t *t = arg;

    (void) fd;
    (void) what;
    mp_worker_time_update();
    mp_lua_thread_resume(t, t->wake_nargs);
}


void
mp_lua_thread_resume_later(mp_lua_thread_t *t, int nargs)
{
    t->wake_nargs = nargs;
    t->waiting = 1;
    t->cancel = NULL;
    thread_event(t, on_wake);
    event_active(&t->ev, EV_TIMEOUT, 1);
}


void
mp_lua_thread_timer(mp_lua_thread_t *t, mp_msec_t ms, event_callback_fn cb)
{
    struct timeval tv = { (time_t) (ms / 1000),
                          (suseconds_t) ((ms % 1000) * 1000) };

    thread_event(t, cb);
    event_add(&t->ev, &tv);
}


int
mp_lua_thread_start_timer(lua_State *L, mp_lua_thread_t *t, int nargs)
{
    t->kind = MP_LUA_THREAD_TIMER;
    t->r = NULL;
    acquire_co(L, t);
    lua_xmove(L, t->co, nargs + 1);
    thread_step(t, nargs);
    if (t->done) {
        thread_release(t, !t->failed);
        if (t->on_done != NULL) {
            t->on_done(t);
        }
    }
    return MP_OK;
}


void
mp_lua_threads_abort(mp_request_t *r)
{
    mp_lua_ctx_t *ctx = r->lua_ctx;

    if (ctx == NULL || mp_lua_vm() == NULL) {
        return;
    }
    ctx->running = 0;
    kill_all(ctx);
}


/* ---- ngx.sleep ------------------------------------------------------------- */

static void
on_sleep_done(evutil_socket_t fd, short what, void *arg)
{
    mp_lua_thread_t *t = arg;

    (void) fd;
    (void) what;
    mp_worker_time_update();
    mp_lua_thread_resume(t, 0);
}


static void
cancel_event(mp_lua_thread_t *t)
{
    event_del(&t->ev);
}


static int
ngx_sleep(lua_State *L)
{
    mp_lua_thread_t *t;
    lua_Number d;
    struct timeval tv;

    if (lua_gettop(L) != 1) {
        return luaL_error(L, "attempt to pass %d arguments, but accepted 1",
                          lua_gettop(L));
    }
    d = luaL_checknumber(L, 1);
    if (d < 0) {
        return luaL_error(L, "invalid sleep duration \"%f\"", d);
    }
    t = mp_lua_thread_yieldable(L);
    thread_event(t, on_sleep_done);
    if (d == 0) {
        event_active(&t->ev, EV_TIMEOUT, 1);
    } else {
        /* milliseconds, as OpenResty rounds */
        int64_t ms = (int64_t) (d * 1000 + 0.5);

        tv.tv_sec = (time_t) (ms / 1000);
        tv.tv_usec = (suseconds_t) ((ms % 1000) * 1000);
        event_add(&t->ev, &tv);
    }
    t->cancel = cancel_event;
    return mp_lua_yield(L);
}


/* ---- ngx.thread --------------------------------------------------------- */

static int
thread_spawn(lua_State *L)
{
    mp_lua_thread_t *parent = mp_lua_thread_yieldable(L), *t;
    mp_request_t *r = parent->r;
    mp_lua_ctx_t *ctx;
    int nargs = lua_gettop(L) - 1;

    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (r == NULL) {
        return luaL_error(L, "ngx.thread.spawn in timers is not supported");
    }
    ctx = mp_lua_ctx(r);
    t = mp_pool_calloc(r->pool, sizeof(*t));
    t->kind = MP_LUA_THREAD_USER;
    t->r = r;
    t->parent = parent;
    t->co = lua_newthread(L);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    map_thread(L, t, 1);
    t->next = ctx->threads;
    ctx->threads = t;
    ctx->live++;
    lua_xmove(L, t->co, nargs + 1);

    lua_rawgeti(L, LUA_REGISTRYINDEX, t->co_ref); /* the result */
    thread_step(t, nargs);
    if (ctx->exited) {
        /* the new thread called ngx.exit: the spawner ends with it */
        return lua_yield(L, 0);
    }
    return 1;
}


static void
cancel_wait(mp_lua_thread_t *w)
{
    mp_lua_ctx_t *ctx = mp_lua_ctx(w->r);
    mp_lua_thread_t *o;

    for (o = ctx->threads; o != NULL; o = o->next) {
        if (o->waiter == w) {
            o->waiter = NULL;
        }
    }
}


static int
thread_wait(lua_State *L)
{
    mp_lua_thread_t *self = mp_lua_thread_yieldable(L), *t;
    int i, n = lua_gettop(L), nres;

    if (n == 0) {
        return luaL_error(L, "at least one coroutine should be specified");
    }
    for (i = 1; i <= n; i++) {
        luaL_checktype(L, i, LUA_TTHREAD);
        t = find_thread(L, i);
        if (t == NULL || t->reaped) {
            lua_pushnil(L);
            lua_pushliteral(L, "already waited or killed");
            return 2;
        }
        if (t->parent != self) {
            return luaL_error(L, "only the parent coroutine can wait on the "
                              "thread");
        }
        if (t->done) {
            lua_pushboolean(L, !t->failed);
            nres = t->nresults;
            lua_xmove(t->co, L, nres);
            t->reaped = 1;
            thread_release(t, 0);
            return nres + 1;
        }
    }
    for (i = 1; i <= n; i++) {
        find_thread(L, i)->waiter = self;
    }
    self->cancel = cancel_wait;
    return mp_lua_yield(L);
}


static int
thread_kill_api(lua_State *L)
{
    mp_lua_thread_t *self = mp_lua_thread_yieldable(L), *t;

    luaL_checktype(L, 1, LUA_TTHREAD);
    t = find_thread(L, 1);
    if (t == NULL || t->done) {
        lua_pushnil(L);
        lua_pushstring(L, t == NULL ? "already waited or killed"
                                    : "already terminated");
        return 2;
    }
    if (t->parent != self) {
        lua_pushnil(L);
        lua_pushliteral(L, "killer not parent");
        return 2;
    }
    thread_kill(t);
    t->reaped = 1;
    lua_pushinteger(L, 1);
    return 1;
}


/* ---- coroutine wrappers ---------------------------------------------------- */

/* Returns whether the last coroutine.resume ended in an operation's yield. */
static int
co_take_ngx_yield(lua_State *L)
{
    lua_pushboolean(L, ngx_yield);
    ngx_yield = 0;
    return 1;
}


/* Passes an operation's yield up one level; returns the resume values. */
static int
co_yield_up(lua_State *L)
{
    ngx_yield = 1;
    return lua_yield(L, 0);
}


/*
 * coroutine.resume and coroutine.wrap, as Lua: only Lua code can go on
 * after a yield it passed up (LuaJIT has no C continuations). Tail calls
 * keep it free of tables.
 */
static const char co_wrappers[] =
    "local raw_resume, raw_create, take, up, select, error = ...\n"
    "local function after(co, ...)\n"
    "  if take() then return after(co, raw_resume(co, up())) end\n"
    "  return ...\n"
    "end\n"
    "local function resume(co, ...)\n"
    "  return after(co, raw_resume(co, ...))\n"
    "end\n"
    "local function unwrap(ok, ...)\n"
    "  if ok then return ... end\n"
    "  error((...), 0)\n"
    "end\n"
    "local function wrap(f)\n"
    "  local co = raw_create(f)\n"
    "  return function(...) return unwrap(resume(co, ...)) end\n"
    "end\n"
    "return resume, wrap\n";


static void
wrap_coroutines(lua_State *L)
{
    if (luaL_loadbuffer(L, co_wrappers, sizeof(co_wrappers) - 1,
                        "=moonpool.coroutine") != 0) {
        abort(); /* our own constant chunk: cannot fail to compile */
    }
    lua_getglobal(L, "coroutine");
    lua_getfield(L, -1, "resume");
    lua_getfield(L, -2, "create");
    lua_remove(L, -3);
    lua_pushcfunction(L, co_take_ngx_yield);
    lua_pushcfunction(L, co_yield_up);
    lua_getglobal(L, "select");
    lua_getglobal(L, "error");
    lua_call(L, 6, 2);
    lua_getglobal(L, "coroutine");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "wrap");
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "resume");
    lua_pop(L, 3);
}


void
mp_lua_inject_thread_api(lua_State *L)
{
    static const luaL_Reg thread_fns[] = {
        { "spawn", thread_spawn },
        { "wait", thread_wait },
        { "kill", thread_kill_api },
        { NULL, NULL },
    };
    const luaL_Reg *f;

    lua_pushcfunction(L, ngx_sleep);
    lua_setfield(L, -2, "sleep");
    lua_createtable(L, 0, 3);
    for (f = thread_fns; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_setfield(L, -2, "thread");

    lua_pushlightuserdata(L, &threads_key);
    lua_createtable(L, 0, 16);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);

    wrap_coroutines(L);
}
