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
        /* beyond OpenResty: the log phase may wait too (ship a log line
         * over a cosocket); the response is already out */
        mp_lua_check_phase(L, t->r, MP_LUA_PHASES_OUTPUT
                                        | MP_LUA_PHASE(MP_PHASE_LOG));
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


/*
 * Remembers co -> t so ngx.thread.wait/kill and coroutine.status find a
 * thread: every light thread, and an entry or timer thread once Lua code
 * got hold of its coroutine (coroutine.running). Unmapping a light thread
 * leaves false behind: its object may still be in Lua's hands, and OpenResty
 * tells "already waited or killed" from "not user thread". The coroutine of
 * an entry or timer thread goes back to the pool, so it is forgotten.
 */
static void
map_thread(lua_State *L, mp_lua_thread_t *t, int set)
{
    lua_pushlightuserdata(L, &threads_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->co_ref);
    if (set) {
        lua_pushlightuserdata(L, t);
    } else if (t->kind == MP_LUA_THREAD_USER) {
        lua_pushboolean(L, 0);
    } else {
        lua_pushnil(L);
    }
    lua_rawset(L, -3);
    lua_pop(L, 1);
    t->mapped = set ? 1 : 0;
}


/* The live thread whose coroutine is at idx; *dead: a light thread that
 * was waited for or killed. */
static mp_lua_thread_t *
find_thread(lua_State *L, int idx, int *dead)
{
    mp_lua_thread_t *t;

    lua_pushlightuserdata(L, &threads_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    t = lua_touserdata(L, -1);
    *dead = lua_isboolean(L, -1);
    lua_pop(L, 2);
    return t;
}


/*
 * The light threads of a request hang off its context; those of a timer
 * off the timer's own thread, the root of the parent chain (a timer has no
 * request to hold them).
 */
static mp_lua_thread_t *
group_root(mp_lua_thread_t *t)
{
    while (t->kind == MP_LUA_THREAD_USER) {
        t = t->parent;
    }
    return t;
}


static int *
group_live(mp_lua_thread_t *t)
{
    if (t->r != NULL) {
        return &mp_lua_ctx(t->r)->live;
    }
    return &group_root(t)->live;
}


static mp_lua_thread_t **
group_threads(mp_lua_thread_t *t)
{
    if (t->r != NULL) {
        return &mp_lua_ctx(t->r)->threads;
    }
    return &group_root(t)->children;
}


/* Gives the coroutine back: to the pool if it ended cleanly. */
static void
thread_release(mp_lua_thread_t *t, int reusable)
{
    lua_State *L = mp_lua_vm();

    if (t->co == NULL) {
        return;
    }
    if (t->mapped) {
        map_thread(L, t, 0);
    }
    if (t->kind == MP_LUA_THREAD_USER) {
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
        if (t->kind == MP_LUA_THREAD_USER) {
            (*group_live(t))--;
        }
    }
    if (t->ev_set) {
        event_del(&t->ev);
    }
    t->cancel = NULL;
    thread_release(t, 0);
}


/* ---- running a thread ---------------------------------------------------- */

/* nginx's suffix for lines logged from a timer callback */
static size_t
timer_log_context(void *data, char *buf, size_t size)
{
    static const char ctx[] = ", context: ngx.timer";
    size_t n = mp_min(sizeof(ctx) - 1, size);

    (void) data;
    memcpy(buf, ctx, n);
    return n;
}


typedef struct {
    mp_log_ctx_cb handler;
    void *data;
} log_context_t;


/* Log lines name t's request, or say they come from a timer. */
static void
set_log_context(const mp_lua_thread_t *t, log_context_t *saved)
{
    saved->handler = mp_log_ctx_handler;
    saved->data = mp_log_ctx_data;
    if (t->r != NULL) {
        mp_http_log_context(t->r);
    } else {
        mp_log_ctx_handler = timer_log_context;
        mp_log_ctx_data = NULL;
    }
}


static void
restore_log_context(const log_context_t *saved)
{
    mp_log_ctx_handler = saved->handler;
    mp_log_ctx_data = saved->data;
}


static void
log_thread_error(mp_lua_thread_t *t)
{
    log_context_t saved;
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
    /* OpenResty's shape, which log scrapers already parse; the context
     * (the request, or ", context: ngx.timer") is the thread's own */
    set_log_context(t, &saved);
    mp_log_error(MP_LOG_ERR, 0, "lua %s thread aborted: runtime error: "
                 "%s\nstack traceback:\ncoroutine 0:\n%s", what, msg, tb);
    restore_log_context(&saved);
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
    int nres;

    for (o = *group_threads(t); o != NULL; o = o->next) {
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
    log_context_t saved;
    int rc;

    set_log_context(t, &saved);
    cur_thread = t;
    t->waiting = 0;
    t->cancel = NULL;
    ngx_yield = 0;
    rc = lua_resume(t->co, nargs);
    cur_thread = prev;
    mp_lua_set_request(prev_r);
    restore_log_context(&saved);

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
        }
        /*
         * After an error the coroutine's stack still holds what its frames
         * held, the message on top. OpenResty's ngx.thread.wait returns
         * all of it after false (so `ok, err` may not get the message), and
         * code written against that must see the same values here.
         */
        t->nresults = lua_gettop(t->co);
    }
    if (t->kind == MP_LUA_THREAD_USER) {
        (*group_live(t))--;
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
    if (code == MP_ERROR) {
        /* OpenResty: the connection is closed without a response, and
         * without an error in the log either */
        mp_http_terminate(r);
        return MP_DONE;
    }
    if (code < 0) {
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


/*
 * A timer's callback is over when its thread returned and its light
 * threads ended, or at once when it failed (as a request's handler).
 * Then the light threads' records are freed and the timer is told.
 */
static void
timer_outcome(mp_lua_thread_t *root)
{
    mp_lua_thread_t *t, *next;

    if (root->co == NULL || !root->done
        || (!root->failed && root->live > 0)) {
        return;
    }
    for (t = root->children; t != NULL; t = next) {
        next = t->next;
        thread_kill(t);
        free(t);
    }
    root->children = NULL;
    root->live = 0;
    thread_release(root, !root->failed);
    if (root->on_done != NULL) {
        root->on_done(root);
    }
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
    if (t->r == NULL) {
        timer_outcome(group_root(t));
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
    t->children = NULL;
    t->live = 0;
    acquire_co(L, t);
    lua_xmove(L, t->co, nargs + 1);
    thread_step(t, nargs);
    timer_outcome(t);
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
    int64_t ms;
    struct timeval tv;

    if (lua_gettop(L) != 1) {
        return luaL_error(L, "attempt to pass %d arguments, but accepted 1",
                          lua_gettop(L));
    }
    /*
     * Whole milliseconds, truncated as OpenResty's cast does: -0.0001
     * sleeps 0 and -0.5 is reported as "-500". NaN is refused too.
     */
    d = luaL_checknumber(L, 1) * 1000;
    if (!(d > -1)) {
        return luaL_error(L, "invalid sleep duration \"%d\"",
                          d != d ? 0 : d < INT_MIN ? INT_MIN : (int) d);
    }
    ms = d < (lua_Number) INT64_MAX ? (int64_t) d : INT64_MAX;
    t = mp_lua_thread_yieldable(L);
    thread_event(t, on_sleep_done);
    if (ms == 0) {
        event_active(&t->ev, EV_TIMEOUT, 1);
    } else {
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
    mp_lua_thread_t *parent = mp_lua_thread_yieldable(L), *t, **list;
    mp_request_t *r = parent->r;
    int nargs = lua_gettop(L) - 1;

    luaL_argcheck(L, lua_isfunction(L, 1) && !lua_iscfunction(L, 1), 1,
                  "Lua function expected");
    if (r != NULL) {
        t = mp_pool_calloc(r->pool, sizeof(*t));
    } else {
        t = mp_calloc(1, sizeof(*t)); /* freed when the timer ends */
    }
    t->kind = MP_LUA_THREAD_USER;
    t->r = r;
    t->parent = parent;
    t->parent_co = L;
    t->co = lua_newthread(L);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    map_thread(L, t, 1);
    list = group_threads(parent);
    t->next = *list;
    *list = t;
    (*group_live(parent))++;
    lua_xmove(L, t->co, nargs + 1);

    lua_rawgeti(L, LUA_REGISTRYINDEX, t->co_ref); /* the result */
    thread_step(t, nargs);
    if (r != NULL && mp_lua_ctx(r)->exited) {
        /* the new thread called ngx.exit: the spawner ends with it */
        return lua_yield(L, 0);
    }
    return 1;
}


static void
cancel_wait(mp_lua_thread_t *w)
{
    mp_lua_thread_t *o;

    for (o = *group_threads(w); o != NULL; o = o->next) {
        if (o->waiter == w) {
            o->waiter = NULL;
        }
    }
}


static int
thread_wait(lua_State *L)
{
    mp_lua_thread_t *self = mp_lua_thread_yieldable(L), *t;
    int i, n = lua_gettop(L), nres, dead;

    if (n == 0) {
        return luaL_error(L, "at least one coroutine should be specified");
    }
    for (i = 1; i <= n; i++) {
        luaL_argcheck(L, lua_isthread(L, i), i, "lua thread expected");
        t = find_thread(L, i, &dead);
        if (dead) {
            lua_pushnil(L);
            lua_pushliteral(L, "already waited or killed");
            return 2;
        }
        if (t == NULL || t->kind != MP_LUA_THREAD_USER) {
            return luaL_error(L, "attempt to wait on a coroutine that is not "
                              "a user thread");
        }
        /* the spawning coroutine itself, not just its thread (OpenResty) */
        if (t->parent != self || t->parent_co != L) {
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
        find_thread(L, i, &dead)->waiter = self;
    }
    self->cancel = cancel_wait;
    return mp_lua_yield(L);
}


static int
thread_kill_api(lua_State *L)
{
    mp_lua_thread_t *self = mp_lua_thread_yieldable(L), *t;
    int dead;

    luaL_argcheck(L, lua_isthread(L, 1), 1, "lua thread expected");
    t = find_thread(L, 1, &dead);
    lua_pushnil(L);
    if (dead) {
        lua_pushliteral(L, "already waited or killed");
        return 2;
    }
    if (t == NULL || t->kind != MP_LUA_THREAD_USER) {
        lua_pushliteral(L, "not user thread");
        return 2;
    }
    if (t->parent != self || t->parent_co != L) {
        lua_pushliteral(L, "killer not parent");
        return 2;
    }
    t->reaped = 1;
    if (t->done) {
        /* a zombie: its results are dropped and a later wait fails */
        thread_release(t, 0);
        lua_pushliteral(L, "already terminated");
        return 2;
    }
    thread_kill(t);
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
 * coroutine.running, which also makes the coroutine of an entry or timer
 * thread known to coroutine.status/resume: Lua code can reach such a
 * coroutine only through here (light threads are mapped when spawned).
 */
static int
co_running(lua_State *L)
{
    mp_lua_thread_t *t = cur_thread;

    if (lua_pushthread(L)) {
        lua_pop(L, 1);
        lua_pushnil(L); /* the main coroutine, as Lua 5.1 says */
        return 1;
    }
    if (t != NULL && t->co == L && !t->mapped) {
        map_thread(L, t, 1);
    }
    return 1;
}


/* What OpenResty's coroutine.status says of a thread's coroutine. */
static int
co_thread_status(lua_State *L)
{
    int dead;
    mp_lua_thread_t *t = find_thread(L, 1, &dead);

    if (t == NULL) {
        lua_pushliteral(L, "dead");
    } else if (t->done) {
        lua_pushliteral(L, "zombie"); /* ended, nobody waited for it yet */
    } else {
        lua_pushliteral(L, "running"); /* scheduled by the worker */
    }
    return 1;
}


/*
 * coroutine.create/resume/status/wrap, as Lua: only Lua code can go on
 * after a yield it passed up (LuaJIT has no C continuations). Tail calls
 * keep the common path free of tables.
 *
 * A coroutine the worker schedules (a thread's, or a user coroutine
 * suspended inside an operation) must not be resumed by Lua code: its
 * operation would return early and the worker would later resume it
 * again. As in OpenResty, resume refuses it ("cannot resume running
 * coroutine") and status reports "running" (or "normal" for a coroutine
 * that resumed the waiting one), "zombie" and "dead" for threads.
 * `waiting` marks the coroutines of a chain while an operation is pending.
 *
 * OpenResty's wrap returns resume's (false, "cannot resume dead
 * coroutine") instead of raising it; an error inside the body is raised.
 */
static const char co_wrappers[] =
    "local raw_resume, raw_create, raw_status, raw_running, take, up,\n"
    "      threads, thread_status, type, error, setmetatable = ...\n"
    "local waiting = setmetatable({}, { __mode = 'k' })\n"
    "local function clear(co, ...)\n"
    "  waiting[co] = nil\n"
    "  return ...\n"
    "end\n"
    "local function after(co, ...)\n"
    "  if take() then\n"
    "    local me = raw_running()\n"
    "    waiting[co] = waiting[co] or 'running'\n"
    "    if me then waiting[me] = 'normal' end\n"
    "    return after(co, clear(co, raw_resume(co, clear(me, up()))))\n"
    "  end\n"
    "  return ...\n"
    "end\n"
    "local function busy(co)\n"
    "  if threads[co] ~= nil then return thread_status(co) end\n"
    "  return waiting[co]\n"
    "end\n"
    "local function resume(co, ...)\n"
    "  if type(co) ~= 'thread' then\n"
    "    error(\"bad argument #1 to 'resume' (coroutine expected)\", 2)\n"
    "  end\n"
    "  local st = busy(co)\n"
    "  if st then return false, 'cannot resume ' .. st .. ' coroutine' end\n"
    "  return after(co, raw_resume(co, ...))\n"
    "end\n"
    "local function status(co)\n"
    "  if type(co) ~= 'thread' then\n"
    "    error(\"bad argument #1 to 'status' (coroutine expected)\", 2)\n"
    "  end\n"
    "  return busy(co) or raw_status(co)\n"
    "end\n"
    "local function create(f)\n"
    "  if type(f) ~= 'function' then\n"
    "    error(\"bad argument #1 to 'create' (Lua function expected)\", 2)\n"
    "  end\n"
    "  return raw_create(f)\n"
    "end\n"
    "local function unwrap(ok, ...)\n"
    "  if ok then return ... end\n"
    "  error((...), 0)\n"
    "end\n"
    "local function wrap(f)\n"
    "  if type(f) ~= 'function' then\n"
    "    error(\"bad argument #1 to 'wrap' (Lua function expected)\", 2)\n"
    "  end\n"
    "  local co = raw_create(f)\n"
    "  return function(...)\n"
    "    if waiting[co] or raw_status(co) ~= 'suspended' then\n"
    "      return resume(co, ...)\n"
    "    end\n"
    "    return unwrap(resume(co, ...))\n"
    "  end\n"
    "end\n"
    "return resume, wrap, status, create\n";


static void
wrap_coroutines(lua_State *L)
{
    static const char *const names[] = { "resume", "wrap", "status",
                                         "create" };
    int i;

    if (luaL_loadbuffer(L, co_wrappers, sizeof(co_wrappers) - 1,
                        "=moonpool.coroutine") != 0) {
        abort(); /* our own constant chunk: cannot fail to compile */
    }
    lua_getglobal(L, "coroutine");
    lua_getfield(L, -1, "resume");
    lua_getfield(L, -2, "create");
    lua_getfield(L, -3, "status");
    lua_pushcfunction(L, co_running);
    lua_remove(L, -5);
    lua_pushcfunction(L, co_take_ngx_yield);
    lua_pushcfunction(L, co_yield_up);
    lua_pushlightuserdata(L, &threads_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, co_thread_status);
    lua_getglobal(L, "type");
    lua_getglobal(L, "error");
    lua_getglobal(L, "setmetatable");
    lua_call(L, 11, 4);
    lua_getglobal(L, "coroutine");
    for (i = 3; i >= 0; i--) {
        lua_pushvalue(L, -5 + i);
        lua_setfield(L, -2, names[i]);
    }
    lua_pushcfunction(L, co_running);
    lua_setfield(L, -2, "running");
    lua_pop(L, 5);
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
