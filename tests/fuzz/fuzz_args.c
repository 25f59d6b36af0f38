/*
 * fuzz_args.c: libFuzzer target for query-string and URI decoding.
 *
 * Two layers are checked with the input as the string to decode (its
 * first byte also picks decode_args' max):
 *
 * 1. mp_lua_unescape_arg() (lua/util.h), the helper behind
 *    ngx.req.get_uri_args, ngx.decode_args and ngx.unescape_uri, against a
 *    reference decoder written here from the header's contract, both into
 *    a separate buffer and in place.
 *
 * 2. The string API as handlers see it: a bare LuaJIT state gets an ngx
 *    table from mp_lua_inject_string_api() (no worker, no request), and a
 *    Lua checker compares ngx.decode_args with a model of
 *    lua-nginx-module's parser (api_string.c's comment), and checks round
 *    trips: unescape_uri(escape_uri(s, t)) for the types that escape '%'
 *    and '+', decode_args(encode_args(t)), and both base64 alphabets.
 *
 * A mismatch raises a Lua error; the target prints it and aborts.
 */
#include "core/mp_core.h"
#include "lua/util.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* lua/api_string.c; its header is the VM's (lua/vm.h), not needed here. */
void mp_lua_inject_string_api(lua_State *L);

static const char checker[] =
    "local ngx, s, max = ...\n"
    "local b64 = require 'ngx.base64'\n"
    "local function unesc(x)\n"
    "  x = x:gsub('%+', ' ')\n"
    "  return (x:gsub('%%(%x%x)', function(h)\n"
    "    return string.char(tonumber(h, 16)) end))\n"
    "end\n"
    /* lua-nginx-module's ngx_http_lua_parse_args, as api_string.c says */
    "local function model(s, max)\n"
    "  local t, count, pos = {}, 0, 1\n"
    "  local function store(k, v)\n"
    "    if k == '' then return end\n"
    "    local old = t[k]\n"
    "    if old == nil then t[k] = v\n"
    "    elseif type(old) == 'table' then old[#old + 1] = v\n"
    "    else t[k] = { old, v } end\n"
    "  end\n"
    "  local function segment(seg)\n"
    "    local eq = seg:find('=', 1, true)\n"
    "    if eq then store(unesc(seg:sub(1, eq - 1)), unesc(seg:sub(eq + 1)))\n"
    "    else store(unesc(seg), true) end\n"
    "  end\n"
    "  while true do\n"
    "    local amp = s:find('&', pos, true)\n"
    "    if not amp then break end\n"
    "    segment(s:sub(pos, amp - 1))\n"
    "    pos = amp + 1\n"
    "    count = count + 1\n"
    "    if max > 0 and count == max then return t, 'truncated' end\n"
    "  end\n"
    "  local last = s:sub(pos)\n"
    "  if last:find('=', 1, true) or last ~= '' then segment(last) end\n"
    "  return t\n"
    "end\n"
    "local function same(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  for k, v in pairs(a) do if not same(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "local got, gtrunc = ngx.decode_args(s, max)\n"
    "local want, wtrunc = model(s, max)\n"
    "if not same(got, want) or gtrunc ~= wtrunc then\n"
    "  error('decode_args differs from the model')\n"
    "end\n"
    "local all = ngx.decode_args(s, 0)\n"
    "if not same(ngx.decode_args(ngx.encode_args(all), 0), all) then\n"
    "  error('decode_args(encode_args(t)) ~= t')\n"
    "end\n"
    "for _, t in ipairs({ 1, 2 }) do\n"
    "  if ngx.unescape_uri(ngx.escape_uri(s, t)) ~= s then\n"
    "    error('unescape_uri(escape_uri(s, ' .. t .. ')) ~= s')\n"
    "  end\n"
    "end\n"
    /* every type but 4 (refresh) escapes '%' itself */
    "for _, t in ipairs({ 0, 1, 2, 3, 5, 6 }) do\n"
    "  local e = ngx.escape_uri(s, t)\n"
    "  if #e < #s or e:find('%%%X') or e:find('%%%x%X') then\n"
    "    error('escape_uri(s, ' .. t .. ') is malformed')\n"
    "  end\n"
    "end\n"
    "if ngx.unescape_uri(s) ~= unesc(s) then\n"
    "  error('unescape_uri differs from the model')\n"
    "end\n"
    "if ngx.decode_base64(ngx.encode_base64(s)) ~= s then\n"
    "  error('decode_base64(encode_base64(s)) ~= s')\n"
    "end\n"
    "if b64.decode_base64url(b64.encode_base64url(s)) ~= s then\n"
    "  error('decode_base64url(encode_base64url(s)) ~= s')\n"
    "end\n"
    "local d = ngx.decode_base64(s)\n"
    "if d ~= nil and ngx.decode_base64(ngx.encode_base64(d)) ~= d then\n"
    "  error('base64 of a decoded string does not round-trip')\n"
    "end\n"
    "b64.decode_base64url(s)\n"
    "ngx.quote_sql_str(s)\n";

static lua_State *L;
static int checker_ref;


/* The reference: '+' is a space, %XX a byte, any other '%' itself. */
static size_t
reference_unescape(char *dst, const char *src, size_t len)
{
    static const char digits[] = "0123456789abcdefABCDEF";
    const char *a, *b;
    size_t i = 0, o = 0;
    int hi, lo;

    while (i < len) {
        a = i + 2 < len ? memchr(digits, src[i + 1], sizeof(digits) - 1)
                        : NULL;
        b = a != NULL ? memchr(digits, src[i + 2], sizeof(digits) - 1) : NULL;
        if (src[i] == '+') {
            dst[o++] = ' ';
            i++;
        } else if (src[i] == '%' && a != NULL && b != NULL) {
            hi = (int) (a - digits);
            lo = (int) (b - digits);
            hi = hi >= 16 ? hi - 6 : hi; /* 'A'..'F' follow 'a'..'f' */
            lo = lo >= 16 ? lo - 6 : lo;
            dst[o++] = (char) (hi * 16 + lo);
            i += 3;
        } else {
            dst[o++] = src[i++];
        }
    }
    return o;
}


static void
check_unescape(const char *s, size_t len)
{
    char *want = malloc(len + 1), *got = malloc(len + 1);
    size_t nw, ng;

    nw = reference_unescape(want, s, len);
    ng = mp_lua_unescape_arg(got, s, len);
    if (ng != nw || memcmp(got, want, nw) != 0) {
        fprintf(stderr, "mp_lua_unescape_arg differs from the reference\n");
        abort();
    }
    /* in place, as the args parsers use it */
    memcpy(got, s, len);
    ng = mp_lua_unescape_arg(got, got, len);
    if (ng != nw || memcmp(got, want, nw) != 0) {
        fprintf(stderr, "mp_lua_unescape_arg in place differs\n");
        abort();
    }
    free(want);
    free(got);
}


static void
setup(void)
{
    L = luaL_newstate();
    if (L == NULL) {
        abort();
    }
    luaL_openlibs(L);
    lua_newtable(L); /* the ngx table the API is injected into */
    mp_lua_inject_string_api(L);
    lua_setglobal(L, "ngx");
    if (luaL_loadbuffer(L, checker, sizeof(checker) - 1, "=checker") != 0) {
        fprintf(stderr, "checker: %s\n", lua_tostring(L, -1));
        abort();
    }
    checker_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int maxes[8] = { 100, 0, 1, 2, 3, 5, -1, 100 };
    const char *s;
    size_t len;
    int max;

    if (L == NULL) {
        setup();
    }
    if (size == 0) {
        return 0;
    }
    max = maxes[data[0] & 7];
    s = (const char *) data + 1;
    len = size - 1;
    check_unescape(s, len);

    lua_rawgeti(L, LUA_REGISTRYINDEX, checker_ref);
    lua_getglobal(L, "ngx");
    lua_pushlstring(L, s, len);
    lua_pushinteger(L, max);
    if (lua_pcall(L, 3, 0, 0) != 0) {
        fprintf(stderr, "args check failed: %s\n", lua_tostring(L, -1));
        abort();
    }
    /* a bounded heap: tables of one run are garbage in the next */
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
