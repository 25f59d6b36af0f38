/*
 * api_worker.c: ngx.worker.id/count/pid/exiting from worker/loop.h. In the
 * master (lua.init), id() is nil as in OpenResty's init phase.
 */
#include "core/mp_core.h"

/* http.h embeds struct event but does not include its definition. */
#include <event2/event_struct.h>

#include "lua/vm.h"
#include "worker/loop.h"

#include <lauxlib.h>
#include <lua.h>
#include <unistd.h>


static int
worker_id(lua_State *L)
{
    if (mp_worker_id < 0) {
        lua_pushnil(L);
    } else {
        lua_pushinteger(L, mp_worker_id);
    }
    return 1;
}


/*
 * The configured number of workers. The master has no mp_worker_count
 * yet, so it reads the config snapshot the worker will inherit.
 */
static int
worker_count(lua_State *L)
{
    if (mp_worker_count >= 0) {
        lua_pushinteger(L, mp_worker_count);
    } else if (mp_worker_conf != NULL) {
        lua_pushinteger(L, mp_worker_conf->cluster.workers);
    } else {
        lua_pushinteger(L, 0);
    }
    return 1;
}


static int
worker_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer) getpid());
    return 1;
}


static int
worker_exiting(lua_State *L)
{
    lua_pushboolean(L, mp_worker_exiting());
    return 1;
}


static const luaL_Reg worker_funcs[] = {
    { "id", worker_id },
    { "count", worker_count },
    { "pid", worker_pid },
    { "exiting", worker_exiting },
    { NULL, NULL },
};


void
mp_lua_inject_worker_api(lua_State *L)
{
    const luaL_Reg *f;

    lua_createtable(L, 0, 5);
    for (f = worker_funcs; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_setfield(L, -2, "worker");
}
