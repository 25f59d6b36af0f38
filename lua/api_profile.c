/*
 * api_profile.c: the worker half of "moonpool profile": LuaJIT's sampling
 * profiler (jit.profile) over this worker's VM, counted as folded stacks.
 *
 * The profiler is driven by the master channel (worker/channel.h), which
 * calls the two hooks registered here from loop callbacks, never while a
 * handler runs. The sampling itself is a small Lua module compiled into
 * every VM (kept in the registry, not in ngx.*): jit.profile interrupts
 * the VM every millisecond of CPU time (ITIMER_PROF, so an idle worker
 * costs nothing), and its callback turns the sampled coroutine's stack
 * into one string key and counts it. Rendering the folded lines happens
 * once, at the end.
 *
 * A frame is "name (chunk:line)" when LuaJIT can name the function from
 * its call site, else "chunk:line" (a handler's main chunk, an anonymous
 * function); C functions show their name or "[builtin#N]". In lua+c mode, samples taken while the VM was in C code,
 * in the garbage collector or in the JIT compiler get a last frame "[C]",
 * "[GC]" or "[JIT compiler]". jit.profile delivers a sample at the next
 * Lua instruction, so C time (ours or a C function's) is charged to the
 * Lua stack that runs next; the [C] frame is what makes that visible.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "lua/vm.h"
#include "worker/channel.h"

#include <lauxlib.h>

/* Sampling interval: "i1" = 1 ms of CPU time; "l" = line precision. */
static const char profile_lua[] =
    "local profile = require('jit.profile')\n"
    "local dumpstack = profile.dumpstack\n"
    "local concat, gmatch, gsub = table.concat, string.gmatch, string.gsub\n"
    "local tags = { C = '[C]', G = '[GC]', J = '[JIT compiler]' }\n"
    "local counts, running\n"
    "local M = {}\n"
    "function M.start(mode)\n"
    "  if running then error('a profile is already running', 0) end\n"
    "  local withc = mode == 'lua+c'\n"
    "  if mode ~= 'lua' and not withc then\n"
    "    error('unknown mode \"' .. tostring(mode) .. '\"', 0)\n"
    "  end\n"
    "  local c = {}\n"
    "  counts = c\n"
    "  profile.start('li1', function(thread, samples, vmstate)\n"
    "    local key = dumpstack(thread, 'f;', -64) .. '\\0'\n"
    "                .. dumpstack(thread, 'l;', -64)\n"
    "    if withc then\n"
    "      local tag = tags[vmstate]\n"
    "      if tag then key = key .. tag .. ';' end\n"
    "    end\n"
    "    c[key] = (c[key] or 0) + samples\n"
    "  end)\n"
    "  running = true\n"
    "end\n"
    /* names and places of the same stack walk, zipped frame by frame */
    "local function render(key)\n"
    "  local f, l = key:match('^(.-)%z(.*)$')\n"
    "  local names, frames, n = {}, {}, 0\n"
    "  for name in gmatch(f, '([^;]*);') do names[#names + 1] = name end\n"
    "  for place in gmatch(l, '([^;]*);') do\n"
    "    n = n + 1\n"
    "    local name = names[n]\n"
    "    local frame = place\n"
    "    if name and name ~= place and name ~= ''\n"
    "       and not name:find(':%d+$') then\n"
    "      if place:sub(1, 1) == '@' or place:sub(1, 9) == '[builtin#' then\n"
    "        frame = name\n"
    "      else\n"
    "        frame = name .. ' (' .. place .. ')'\n"
    "      end\n"
    "    end\n"
    "    frames[n] = gsub(frame, '[;\\r\\n]', ':')\n"
    "  end\n"
    "  if n == 0 then return '[unknown]' end\n"
    "  return concat(frames, ';')\n"
    "end\n"
    "function M.stop(keep)\n"
    "  if not running then return nil end\n"
    "  profile.stop()\n"
    "  running = false\n"
    "  local c = counts\n"
    "  counts = nil\n"
    "  if not keep then return nil end\n"
    "  local out, n = {}, 0\n"
    "  for key, samples in pairs(c) do\n"
    "    n = n + 1\n"
    "    out[n] = render(key) .. ' ' .. samples\n"
    "  end\n"
    "  if n == 0 then return nil end\n"
    "  return concat(out, '\\n') .. '\\n'\n"
    "end\n"
    "return M\n";

/* The module table of the current VM, in its registry. */
static int profile_ref = LUA_NOREF;


/* Calls M[name](arg) with one result left on the stack; MP_OK or error. */
static int
call(lua_State *L, const char *name, int arg_is_string, const char *s,
     int b, char *err, size_t errlen)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, profile_ref);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    if (arg_is_string) {
        lua_pushstring(L, s);
    } else {
        lua_pushboolean(L, b);
    }
    if (lua_pcall(L, 1, 1, 0) != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return MP_ERROR;
    }
    return MP_OK;
}


static int
profile_start(const char *mode, char *err, size_t errlen)
{
    lua_State *L = mp_lua_vm();

    if (L == NULL || profile_ref == LUA_NOREF) {
        snprintf(err, errlen, "no Lua VM");
        return MP_ERROR;
    }
    if (call(L, "start", 1, mode, 0, err, errlen) != MP_OK) {
        return MP_ERROR;
    }
    lua_pop(L, 1);
    return MP_OK;
}


static char *
profile_stop(int keep, size_t *len)
{
    lua_State *L = mp_lua_vm();
    const char *s;
    char err[256], *copy = NULL;
    size_t n;

    *len = 0;
    if (L == NULL || profile_ref == LUA_NOREF) {
        return NULL;
    }
    if (call(L, "stop", 0, NULL, keep, err, sizeof(err)) != MP_OK) {
        mp_log_error(MP_LOG_ERR, 0, "cannot stop the profiler: %s", err);
        return NULL;
    }
    s = lua_tolstring(L, -1, &n);
    if (s != NULL && n > 0) {
        copy = mp_alloc(n);
        memcpy(copy, s, n);
        *len = n;
    }
    lua_pop(L, 1);
    return copy;
}


void
mp_lua_inject_profile_api(lua_State *L)
{
    if (luaL_loadbuffer(L, profile_lua, sizeof(profile_lua) - 1,
                        "=moonpool.profile") != 0
        || lua_pcall(L, 0, 1, 0) != 0) {
        /* no jit.profile in this LuaJIT: "moonpool profile" says why */
        mp_log_error(MP_LOG_WARN, 0, "profiler unavailable: %s",
                     lua_tostring(L, -1));
        lua_pop(L, 1);
        profile_ref = LUA_NOREF;
        return;
    }
    profile_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    mp_channel_profile_start_hook = profile_start;
    mp_channel_profile_stop_hook = profile_stop;
}
