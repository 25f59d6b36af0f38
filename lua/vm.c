/*
 * vm.c: the Lua VM and the handler runner (see vm.h).
 *
 * The master builds the VM: libraries, package paths, the ngx table, every
 * handler of the config compiled to a function kept in the registry, then
 * lua.init. Workers inherit it by fork. A handler runs in a coroutine taken
 * from a small pool: a coroutine whose function returned normally can run
 * the next handler, which costs ~40 ns instead of ~155 ns for a new thread.
 * A coroutine that ended with ngx.exit (a yield) or an error is dropped.
 *
 * Only one coroutine runs at a time in a worker, so "the current request"
 * is a variable set around each resume.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "lua/vm.h"
#include "worker/cosocket.h"
#include "worker/loop.h"
#include "worker/phases.h"
#include "worker/resolver.h"

#include <lualib.h>
#include <luajit.h>
#include <stdio.h>

static lua_State *vm;
static mp_request_t *cur_request;


lua_State *
mp_lua_vm(void)
{
    return vm;
}


mp_request_t *
mp_lua_request(lua_State *L)
{
    mp_lua_thread_t *t;

    if (cur_request == NULL) {
        t = mp_lua_thread_current();
        if (t != NULL && t->kind == MP_LUA_THREAD_TIMER) {
            /* OpenResty's words for request APIs in a timer */
            luaL_error(L, "API disabled in the context of ngx.timer");
        }
        luaL_error(L, "no request found");
    }
    return cur_request;
}


mp_request_t *
mp_lua_set_request(mp_request_t *r)
{
    mp_request_t *prev = cur_request;

    cur_request = r;
    return prev;
}


void
mp_lua_check_phase(lua_State *L, const mp_request_t *r, unsigned mask)
{
    if (!(mask & MP_LUA_PHASE(r->phase))) {
        luaL_error(L, "API disabled in the context of %s_by_lua*",
                   mp_phase_names[r->phase]);
    }
}


/* The request is over: what it held in the registry goes. */
static void
ctx_cleanup(void *data)
{
    mp_lua_ctx_t *ctx = data;

    if (vm == NULL) {
        return;
    }
    if (ctx->running) {
        mp_lua_threads_abort(ctx->entry.r);
    }
    if (ctx->ctx_ref > 0) {
        luaL_unref(vm, LUA_REGISTRYINDEX, ctx->ctx_ref);
    }
}


mp_lua_ctx_t *
mp_lua_ctx(mp_request_t *r)
{
    if (r->lua_ctx == NULL) {
        r->lua_ctx = mp_pool_calloc(r->pool, sizeof(mp_lua_ctx_t));
        mp_pool_cleanup_add(r->pool, ctx_cleanup, r->lua_ctx);
    }
    return r->lua_ctx;
}


void
mp_lua_ctx_push(lua_State *L, mp_request_t *r)
{
    mp_lua_ctx_t *ctx = mp_lua_ctx(r);

    if (ctx->ctx_ref <= 0) {
        lua_createtable(L, 0, 4);
        lua_pushvalue(L, -1);
        ctx->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->ctx_ref);
}


void
mp_lua_ctx_set(lua_State *L, mp_request_t *r)
{
    mp_lua_ctx_t *ctx = mp_lua_ctx(r);

    if (lua_type(L, -1) != LUA_TTABLE) {
        luaL_error(L, "ctx should be a table while getting a %s",
                   luaL_typename(L, -1));
    }
    if (ctx->ctx_ref > 0) {
        luaL_unref(L, LUA_REGISTRYINDEX, ctx->ctx_ref);
    }
    lua_pushvalue(L, -1);
    ctx->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}


/* package.path from the config: ";;" stands for LuaJIT's default path. */
static void
set_path(lua_State *L, const char *field, const char *conf_value,
         const char *extra)
{
    const char *def, *p;
    luaL_Buffer b;

    lua_getglobal(L, "package");
    lua_getfield(L, -1, field);
    def = lua_tostring(L, -1);
    luaL_buffinit(L, &b);
    if (conf_value != NULL) {
        p = strstr(conf_value, ";;");
        if (p != NULL) {
            luaL_addlstring(&b, conf_value, (size_t) (p - conf_value));
            luaL_addchar(&b, ';');
            luaL_addstring(&b, def);
            luaL_addchar(&b, ';');
            luaL_addstring(&b, p + 2);
        } else {
            luaL_addstring(&b, conf_value);
        }
    } else {
        luaL_addstring(&b, def);
    }
    if (extra != NULL) {
        luaL_addchar(&b, ';');
        luaL_addstring(&b, extra);
    }
    luaL_pushresult(&b);
    lua_setfield(L, -3, field);
    lua_pop(L, 2);
}


static lua_State *
create_vm(const mp_conf_t *conf)
{
    lua_State *L = luaL_newstate();

    if (L == NULL) {
        return NULL;
    }
    luaL_openlibs(L);
    set_path(L, "path", conf->lua.package_path,
             MP_LUA_LIB_DIR "/?.lua;" MP_LUA_LIB_INSTALL_DIR "/?.lua");
    set_path(L, "cpath", conf->lua.package_cpath, NULL);

    lua_createtable(L, 0, 128);
    mp_lua_inject_consts_api(L);
    mp_lua_inject_log_api(L);
    mp_lua_inject_time_api(L);
    mp_lua_inject_worker_api(L);
    mp_lua_inject_req_api(L);
    mp_lua_inject_var_api(L);
    mp_lua_inject_resp_api(L);
    mp_lua_inject_string_api(L);
    mp_lua_inject_misc_api(L, conf);
    mp_lua_inject_regex_api(L);
    mp_lua_inject_phase_api(L);
    mp_lua_inject_thread_api(L);
    mp_lua_inject_timer_api(L);
    mp_lua_inject_sema_api(L);
    mp_lua_inject_socket_api(L);
    mp_lua_inject_metrics_api(L, conf);
    mp_lua_inject_shdict_api(L, conf);
    mp_lua_inject_profile_api(L);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "ngx");
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "ngx");
    lua_pop(L, 3);
    mp_lua_shdict_load_ffi(L);
    /* ngx.req.socket, written in Lua over the buffered request body */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "moonpool.reqsocket");
    if (lua_pcall(L, 1, 0, 0) != 0) {
        mp_log_error(MP_LOG_ALERT, 0, "cannot load moonpool.reqsocket: %s",
                     lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return L;
}


/* Chunk-relative Lua message -> "file:line:col: message". */
static int
compile_one(lua_State *L, mp_conf_handler_t *h, char *err, size_t errlen)
{
    if (h == NULL) {
        return MP_OK;
    }
    if (luaL_loadbuffer(L, h->code.data, h->code.len, h->chunk) != 0) {
        snprintf(err, errlen, "%s:%d:%d: Lua syntax error: %s", h->pos.file,
                 h->pos.line, h->pos.column, lua_tostring(L, -1));
        lua_pop(L, 1);
        return MP_ERROR;
    }
    h->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return MP_OK;
}


static int
compile_all(lua_State *L, mp_conf_t *conf, char *err, size_t errlen)
{
    size_t s, l;
    int p;

    if (compile_one(L, conf->lua.init, err, errlen) != MP_OK
        || compile_one(L, conf->lua.init_worker, err, errlen) != MP_OK) {
        return MP_ERROR;
    }
    for (s = 0; s < conf->nservers; s++) {
        mp_conf_server_t *srv = &conf->servers[s];

        for (l = 0; l < srv->nlocations; l++) {
            for (p = 0; p < MP_PHASE_MAX; p++) {
                if (compile_one(L, srv->locations[l].handlers[p], err, errlen)
                    != MP_OK) {
                    return MP_ERROR;
                }
            }
        }
    }
    return MP_OK;
}


/* Error handler for pcall: appends a traceback. */
static int
traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL) {
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}


int
mp_lua_pcall_handler(lua_State *L, mp_conf_handler_t *h, int nargs,
                     const char *what)
{
    int base = lua_gettop(L) - nargs;

    lua_pushcfunction(L, traceback);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref);
    if (nargs > 0) {
        lua_insert(L, base + 1);
        lua_insert(L, base + 1);
    }
    if (lua_pcall(L, nargs, 0, base + 1) != 0) {
        mp_log_error(MP_LOG_ERR, 0, "failed to run %s: %s", what,
                     lua_tostring(L, -1));
        lua_settop(L, base);
        return MP_ERROR;
    }
    lua_settop(L, base);
    return MP_OK;
}


int mp_lua_master_init_running;


/*
 * lua.init, beyond OpenResty: it runs as a thread on a temporary event loop
 * in the master, so it may sleep and use cosockets (fetch configuration
 * from a service before the workers start). What the loop made is undone
 * before fork: pooled connections are closed, the resolver is freed.
 * ngx.timer.* stays disabled here (a timer would need the loop to live on).
 */
static int
run_init(lua_State *L, mp_conf_t *conf, char *err, size_t errlen)
{
    static mp_lua_thread_t t;
    struct event_base *base;

    if (conf->lua.init == NULL) {
        return MP_OK;
    }
    base = event_base_new();
    if (base == NULL) {
        snprintf(err, errlen, "%s: event_base_new() failed", conf->file);
        return MP_ERROR;
    }
    mp_worker_base = base;
    mp_worker_conf = conf;
    mp_lua_master_init_running = 1;
    memset(&t, 0, sizeof(t));
    lua_rawgeti(L, LUA_REGISTRYINDEX, conf->lua.init->ref);
    mp_lua_thread_start_timer(L, &t, 0);
    while (!t.done && event_base_loop(base, EVLOOP_ONCE) == 0) {
        /* until the init code returns */
    }
    mp_cosocket_pool_cleanup();
    mp_resolver_cleanup();
    event_base_free(base);
    mp_worker_base = NULL;
    mp_worker_conf = NULL;
    mp_lua_master_init_running = 0;
    if (!t.done || t.failed) {
        snprintf(err, errlen, "%s:%d:%d: init_by_lua failed%s",
                 conf->lua.init->pos.file, conf->lua.init->pos.line,
                 conf->lua.init->pos.column,
                 t.done ? " (the error and its traceback are logged above)"
                        : ": it waits for an event that cannot come");
        return MP_ERROR;
    }
    return MP_OK;
}


int
mp_lua_check(mp_conf_t *conf, char *err, size_t errlen)
{
    lua_State *L = create_vm(conf);
    int rc;

    if (L == NULL) {
        snprintf(err, errlen, "%s: cannot create the Lua VM", conf->file);
        return MP_ERROR;
    }
    rc = compile_all(L, conf, err, errlen);
    lua_close(L);
    return rc;
}


int
mp_lua_master_init(mp_conf_t *conf, char *err, size_t errlen)
{
    lua_State *L = create_vm(conf), *old = vm;

    if (L == NULL) {
        snprintf(err, errlen, "%s: cannot create the Lua VM", conf->file);
        return MP_ERROR;
    }
    /* ngx.worker.count() works in lua.init, as in init_by_lua */
    mp_worker_count = conf->cluster.workers;
    vm = L; /* threads keep their coroutines in this VM's registry */
    mp_lua_sched_reset();
    if (compile_all(L, conf, err, errlen) != MP_OK
        || run_init(L, conf, err, errlen) != MP_OK) {
        lua_close(L);
        vm = old;
        mp_lua_sched_reset();
        return MP_ERROR;
    }
    if (old != NULL) {
        lua_close(old);
    }
    return MP_OK;
}


/* ---- the runner ---------------------------------------------------------- */

static int
run_handler(mp_request_t *r, mp_conf_handler_t *h)
{
    return mp_lua_run_entry(r, h->ref);
}


static int
worker_init(const mp_conf_t *conf)
{
    /* storage for the init_worker thread, which may outlive this call */
    static mp_lua_thread_t init_thread;

    if (conf->lua.init_worker == NULL) {
        return MP_OK;
    }
    /*
     * Beyond OpenResty: init_worker runs in a thread like a timer's, so it
     * may sleep and use cosockets (fetch config from a service at start);
     * the worker serves meanwhile. Errors are logged by the scheduler.
     */
    lua_rawgeti(vm, LUA_REGISTRYINDEX, conf->lua.init_worker->ref);
    memset(&init_thread, 0, sizeof(init_thread));
    mp_lua_thread_start_timer(vm, &init_thread, 0);
    return MP_OK;
}


static void
worker_exit(void)
{
    /* runs __gc of every object (C modules free their buffers there) */
    lua_close(vm);
    vm = NULL;
    mp_lua_sched_reset();
}


void
mp_lua_worker_setup(void)
{
    mp_phases_set_runner(run_handler);
    mp_worker_init_hook = worker_init;
    mp_worker_exit_hook = worker_exit;
    mp_lua_timers_setup();
}
