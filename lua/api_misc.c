/*
 * api_misc.c: ngx.config, the build and environment facts OpenResty code
 * and lua-resty-* libraries test before using a feature.
 *
 * Called by vm.c at VM creation (mp_lua_inject_misc_api). The version
 * numbers are those of Debian 12's nginx 1.22.1 with lua-nginx-module
 * 0.10.23, the API moonpool implements, so that version checks such as
 * lua-resty-core's "ngx_lua_version ~= 10023" pass. prefix() is the
 * config file's directory: moonpool has no nginx prefix of its own.
 */
#include "core/mp_core.h"
#include "lua/vm.h"

#include <lauxlib.h>
#include <lua.h>

/* nginx_version 1.22.1 and ngx_lua_version 0.10.23, encoded as nginx does. */
#define MP_NGINX_VERSION 1022001
#define MP_NGX_LUA_VERSION 10023


/* ngx.config.prefix(): the directory, with its trailing '/' (upvalue 1). */
static int
config_prefix(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    return 1;
}


/* ngx.config.nginx_configure(): there are no configure arguments. */
static int
config_nginx_configure(lua_State *L)
{
    lua_pushliteral(L, "");
    return 1;
}


void
mp_lua_inject_misc_api(lua_State *L, const mp_conf_t *conf)
{
    lua_createtable(L, 0, 6);

    lua_pushliteral(L, "http");
    lua_setfield(L, -2, "subsystem");

    /* True in a build with debug logging, as nginx --with-debug. */
#ifdef MP_DEBUG
    lua_pushboolean(L, 1);
#else
    lua_pushboolean(L, 0);
#endif
    lua_setfield(L, -2, "debug");

    lua_pushinteger(L, MP_NGINX_VERSION);
    lua_setfield(L, -2, "nginx_version");
    lua_pushinteger(L, MP_NGX_LUA_VERSION);
    lua_setfield(L, -2, "ngx_lua_version");

    lua_pushstring(L, conf->prefix != NULL ? conf->prefix : "");
    lua_pushcclosure(L, config_prefix, 1);
    lua_setfield(L, -2, "prefix");
    lua_pushcfunction(L, config_nginx_configure);
    lua_setfield(L, -2, "nginx_configure");

    lua_setfield(L, -2, "config");
}
