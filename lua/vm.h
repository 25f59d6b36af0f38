/*
 * vm.h: the Lua VM. The master creates it, loads package paths, compiles
 * every handler of the config once and runs lua.init; workers inherit it by
 * fork (copy-on-write), run lua.init_worker and execute handlers in pooled
 * coroutines.
 */
#ifndef MP_LUA_VM_H
#define MP_LUA_VM_H

#include "core/mp_core.h"
#include "core/conf.h"
#include "worker/http.h"

#include <lua.h>
#include <lauxlib.h>

#include "lua/sched.h"

/* Per-request Lua state, allocated from the request pool. */
typedef struct {
    mp_lua_thread_t entry;    /* the running phase handler's thread */
    mp_lua_thread_t *threads; /* its light threads (ngx.thread.spawn) */
    int live;                 /* light threads not yet ended */
    int exit_code;       /* argument of ngx.exit */
    int ctx_ref;         /* ngx.ctx table in the registry; 0: none yet */
    int exit_kind;       /* MP_LUA_EXIT_* */
    unsigned exited:1;   /* ngx.exit, ngx.exec or a jump yielded */
    unsigned running:1;  /* a phase handler's threads are active */
    unsigned body_read:1;/* ngx.req.read_body was called */
} mp_lua_ctx_t;

/* Why a handler's coroutine yielded for good (mp_lua_ctx_t.exit_kind). */
#define MP_LUA_EXIT_STATUS 0 /* ngx.exit(exit_code) */
#define MP_LUA_EXIT_EXEC 1   /* ngx.exec: r->uri/args already changed */
#define MP_LUA_EXIT_JUMP 2   /* ngx.req.set_uri(uri, true) */

/* The context of r, created on first use. */
mp_lua_ctx_t *mp_lua_ctx(mp_request_t *r);

/*
 * In the master: creates the VM for conf (closing a previous one), compiles
 * every handler (storing refs in the conf) and runs lua.init. On failure
 * returns MP_ERROR with "file:line:col: message" in err.
 */
int mp_lua_master_init(mp_conf_t *conf, char *err, size_t errlen);

/* Compiles the handlers only (moonpool -t). Same contract as above. */
int mp_lua_check(mp_conf_t *conf, char *err, size_t errlen);

/* In a worker, after fork: registers the phase runner and init hook. */
void mp_lua_worker_setup(void);

/* The VM of this process. */
lua_State *mp_lua_vm(void);

/*
 * The request the running Lua code belongs to; raises a Lua error
 * ("no request found") outside a request.
 */
mp_request_t *mp_lua_request(lua_State *L);

/* Sets the request Lua code runs for; returns the previous one. */
mp_request_t *mp_lua_set_request(mp_request_t *r);

/*
 * Phase masks for mp_lua_check_phase: raises OpenResty's "API disabled in
 * the context of <phase>_by_lua*" unless r->phase is in mask.
 */
#define MP_LUA_PHASE(p) (1u << (p))
#define MP_LUA_PHASES_OUTPUT                                                   \
    (MP_LUA_PHASE(MP_PHASE_REWRITE) | MP_LUA_PHASE(MP_PHASE_ACCESS)            \
     | MP_LUA_PHASE(MP_PHASE_CONTENT))
void mp_lua_check_phase(lua_State *L, const mp_request_t *r, unsigned mask);

/*
 * Calls handler h with nargs arguments already on L's stack, in protected
 * mode with a traceback; logs a failure as "failed to run <what>: ...".
 * Returns MP_OK or MP_ERROR. For code that must not yield (filters).
 */
int mp_lua_pcall_handler(lua_State *L, mp_conf_handler_t *h, int nargs,
                         const char *what);

/* Pushes ngx.ctx of r (created on first use); sets it from the stack top. */
void mp_lua_ctx_push(lua_State *L, mp_request_t *r);
void mp_lua_ctx_set(lua_State *L, mp_request_t *r);

/*
 * Each API group adds its functions to the ngx table at the top of the
 * stack (api_<group>.c).
 */
void mp_lua_inject_resp_api(lua_State *L);
void mp_lua_inject_req_api(lua_State *L);
void mp_lua_inject_var_api(lua_State *L);
void mp_lua_inject_log_api(lua_State *L);
void mp_lua_inject_time_api(lua_State *L);
void mp_lua_inject_worker_api(lua_State *L);
void mp_lua_inject_consts_api(lua_State *L);
void mp_lua_inject_string_api(lua_State *L);
void mp_lua_inject_misc_api(lua_State *L, const mp_conf_t *conf);
void mp_lua_inject_regex_api(lua_State *L);
void mp_lua_inject_phase_api(lua_State *L);
void mp_lua_inject_timer_api(lua_State *L);
void mp_lua_inject_sema_api(lua_State *L);
void mp_lua_inject_socket_api(lua_State *L);     /* ngx.socket */
void mp_lua_inject_socket_udp_api(lua_State *L); /* its udp() */
void mp_lua_inject_metrics_api(lua_State *L, const mp_conf_t *conf);

/*
 * The profiler behind "moonpool profile" (api_profile.c): compiles its
 * module into L's registry and registers the master channel's profile
 * hooks (worker/channel.h). Leaves the stack as it found it.
 */
void mp_lua_inject_profile_api(lua_State *L);

/* True while lua.init runs (in the master, on a temporary loop). */
extern int mp_lua_master_init_running;

/* In a worker: registers the timers' shutdown hooks. */
void mp_lua_timers_setup(void);

/*
 * ngx.shared: one object per conf->dicts[i] (api_shdict.c). Then, once the
 * global ngx exists, mp_lua_shdict_load_ffi() swaps the hot methods for
 * the FFI ones of lua/lib/moonpool/shdict.lua (logged, and the C ones
 * kept, if that fails).
 */
void mp_lua_inject_shdict_api(lua_State *L, const mp_conf_t *conf);
void mp_lua_shdict_load_ffi(lua_State *L);

#endif /* MP_LUA_VM_H */
