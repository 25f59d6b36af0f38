/*
 * api_shdict.c: ngx.shared.DICT, on shm/dict.h.
 *
 * vm.c calls mp_lua_inject_shdict_api() at VM creation: ngx.shared gets one
 * object per configured dict, shaped like lua-nginx-module's (a table whose
 * [1] is a lightuserdata of the mp_dict_t, sharing one metatable whose
 * __index is the methods table), so code that pokes at it as lua-resty-core
 * does keeps working. Every method is implemented here with the classic C
 * API; then mp_lua_shdict_load_ffi() loads lua/lib/moonpool/shdict.lua,
 * which replaces the hot ones (get, get_stale, set, safe_set, add,
 * safe_add, replace, incr, delete) with FFI versions calling the
 * mp_ffi_shdict_* functions at the end of this file. Both halves return
 * the same values and error strings, OpenResty's (lua-resty-core's for the
 * methods it implements, lua-nginx-module's C functions for the others).
 *
 * Invariant: every argument is checked, and every Lua call (tostring of a
 * key, string.buffer encoding of a table) is made, before a dict function
 * takes a shard lock; values are copied out under the lock into a
 * per-process buffer and pushed after it is released.
 *
 * moonpool extension: a Lua table is stored encoded with LuaJIT's
 * string.buffer as MP_DICT_TTABLE and comes back decoded from get.
 */
#include "core/mp_core.h"

/* http.h (through vm.h) embeds struct event without its definition. */
#include <event2/event_struct.h>

#include "core/log.h"
#include "lua/vm.h"
#include "shm/dict.h"

#include <lauxlib.h>
#include <limits.h>
#include <lua.h>

/* Registry keys (per VM: a reload builds a new VM beside the old one). */
#define SHDICT_METHODS "moonpool.shdict.methods"
#define SHDICT_CODEC "moonpool.shdict.codec"   /* string.buffer */

/* lua-nginx-module's defaults. */
#define SHDICT_KEYS_DEFAULT 1024
#define SHDICT_BUF_INITIAL 4096

/*
 * The FFI entry points. Their header is the ffi.cdef in
 * lua/lib/moonpool/shdict.lua; keep both in step.
 */
int mp_ffi_shdict_get(void *zone, const char *key, size_t key_len,
    int get_stale, int *value_type, char *buf, size_t *value_len,
    double *num_value, int *user_flags, int *is_stale, const char **errmsg);
int mp_ffi_shdict_store(void *zone, int op, const char *key, size_t key_len,
    int value_type, const char *str, size_t str_len, double num_value,
    int64_t exptime, int user_flags, int *forcible, const char **errmsg);
int mp_ffi_shdict_incr(void *zone, const char *key, size_t key_len,
    double *value, int has_init, double init, int64_t init_ttl,
    int *forcible, const char **errmsg);
int mp_ffi_shdict_delete(void *zone, const char *key, size_t key_len);

/* Values are copied out into this buffer; it only grows. */
static char *vbuf;
static size_t vbuf_size;

/* get_keys collects keys here under the lock: [size_t len][bytes]... */
static char *kbuf;
static size_t kbuf_size;


static void
vbuf_reserve(mp_dict_value_t *v, size_t need)
{
    size_t size = vbuf_size == 0 ? SHDICT_BUF_INITIAL : vbuf_size;

    while (size < need) {
        size *= 2;
    }
    if (size != vbuf_size) {
        free(vbuf);
        vbuf = mp_alloc(size);
        vbuf_size = size;
    }
    v->data = vbuf;
    v->size = vbuf_size;
}


static int
push_fail(lua_State *L, const char *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}


/* The dict of the zone object at idx; misuse (d.get(k)) raises. */
static mp_dict_t *
check_zone(lua_State *L, int idx)
{
    mp_dict_t *d = NULL;

    if (lua_type(L, idx) == LUA_TTABLE) {
        lua_rawgeti(L, idx, 1);
        if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
            d = lua_touserdata(L, -1);
        }
        lua_pop(L, 1);
    }
    if (d == NULL) {
        luaL_error(L, "bad \"zone\" argument");
    }
    return d;
}


static const char *
check_key_len(size_t len, const char **err)
{
    if (len == 0) {
        *err = "empty key";
    } else if (len > MP_DICT_KEY_MAX) {
        *err = "key too long";
    } else {
        return NULL;
    }
    return *err;
}


/*
 * The key at idx as lua-resty-core takes it: nil fails with "nil key",
 * anything else goes through tostring(). Returns NULL with *err set.
 */
static const char *
key_arg(lua_State *L, int idx, size_t *len, const char **err)
{
    const char *key;

    if (lua_isnoneornil(L, idx)) {
        *err = "nil key";
        return NULL;
    }
    if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER) {
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, idx);
        lua_call(L, 1, 1);
        lua_replace(L, idx);
    }
    key = lua_tolstring(L, idx, len);
    if (key == NULL) {
        *err = "nil key";   /* a __tostring that returned no string */
        return NULL;
    }
    return check_key_len(*len, err) == NULL ? key : NULL;
}


/* The key as lua-nginx-module's C functions take it (luaL_checklstring). */
static const char *
key_arg_strict(lua_State *L, int idx, size_t *len, const char **err)
{
    const char *key;

    if (lua_isnil(L, idx)) {
        *err = "nil key";
        return NULL;
    }
    key = luaL_checklstring(L, idx, len);
    return check_key_len(*len, err) == NULL ? key : NULL;
}


/* exptime in seconds (nil or false: never) -> ms, as lua-resty-core. */
static mp_msec_t
exptime_arg(lua_State *L, int idx)
{
    double t;

    if (!lua_toboolean(L, idx)) {
        return 0;
    }
    if (lua_type(L, idx) != LUA_TNUMBER) {
        luaL_error(L, "attempt to compare %s with number",
                   luaL_typename(L, idx));
    }
    t = lua_tonumber(L, idx);
    if (t < 0) {
        luaL_error(L, "bad \"exptime\" argument");
    }
    return (mp_msec_t) (t * 1000);
}


/* A number converted to a C int the way the FFI's int parameter does. */
static int
int_arg(lua_State *L, int idx, int def)
{
    double n;

    if (!lua_toboolean(L, idx)) {
        return def;
    }
    if (lua_type(L, idx) != LUA_TNUMBER) {
        luaL_error(L, "bad argument #%d (cannot convert '%s' to 'int')", idx,
                   luaL_typename(L, idx));
    }
    n = lua_tonumber(L, idx);
    return n > -2147483649.0 && n < 2147483648.0 ? (int) n : INT_MIN;
}


/*
 * Encodes the table at idx with string.buffer and leaves the string on
 * the stack top. Returns NULL (nothing pushed) when it cannot be encoded
 * (a function inside, say).
 */
static const char *
encode_table(lua_State *L, int idx, size_t *len)
{
    lua_getfield(L, LUA_REGISTRYINDEX, SHDICT_CODEC);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    lua_getfield(L, -1, "encode");
    lua_remove(L, -2);
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) != 0 || lua_type(L, -1) != LUA_TSTRING) {
        lua_pop(L, 1);
        return NULL;
    }
    return lua_tolstring(L, -1, len);
}


/* Pushes the value copied out in *v (after the lock was released). */
static void
push_value(lua_State *L, const mp_dict_value_t *v)
{
    switch (v->type) {
    case MP_DICT_TSTRING:
        lua_pushlstring(L, v->data, v->len);
        break;
    case MP_DICT_TNUMBER:
        lua_pushnumber(L, v->number);
        break;
    case MP_DICT_TBOOLEAN:
        lua_pushboolean(L, v->number != 0);
        break;
    case MP_DICT_TTABLE:
        lua_getfield(L, LUA_REGISTRYINDEX, SHDICT_CODEC);
        lua_getfield(L, -1, "decode");
        lua_remove(L, -2);
        lua_pushlstring(L, v->data, v->len);
        lua_call(L, 1, 1);
        break;
    default:
        luaL_error(L, "unknown value type: %d", v->type);
    }
}


/* ---- get, get_stale ------------------------------------------------------ */

static int
get_common(lua_State *L, int stale_ok)
{
    mp_dict_t *d = check_zone(L, 1);
    const char *key, *err;
    mp_dict_value_t v;
    size_t len;
    int rc;

    key = key_arg(L, 2, &len, &err);
    if (key == NULL) {
        return push_fail(L, err);
    }
    memset(&v, 0, sizeof(v));
    vbuf_reserve(&v, 0);
    for (;;) {
        rc = stale_ok ? mp_dict_get_stale(d, key, len, &v, &err)
                      : mp_dict_get(d, key, len, &v, &err);
        if (rc != MP_AGAIN) {
            break;
        }
        vbuf_reserve(&v, v.len);   /* the value grew: try again */
    }
    if (rc == MP_DECLINED) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != MP_OK) {
        return push_fail(L, err);
    }
    push_value(L, &v);
    if (v.flags != 0) {
        lua_pushinteger(L, (int32_t) v.flags);
    } else if (!stale_ok) {
        return 1;
    } else {
        lua_pushnil(L);
    }
    if (!stale_ok) {
        return 2;
    }
    lua_pushboolean(L, v.stale);
    return 3;
}


static int
shdict_get(lua_State *L)
{
    return get_common(L, 0);
}


static int
shdict_get_stale(lua_State *L)
{
    return get_common(L, 1);
}


/* ---- set, safe_set, add, safe_add, replace, delete ------------------------ */

static int
store_common(lua_State *L, int op)
{
    mp_dict_t *d = check_zone(L, 1);
    const char *key, *err, *str = NULL;
    size_t len, str_len = 0;
    mp_msec_t exptime;
    double num = 0;
    int type, flags, forcible = 0, rc;

    exptime = exptime_arg(L, 4);
    key = key_arg(L, 2, &len, &err);
    if (key == NULL) {
        return push_fail(L, err);
    }
    switch (lua_type(L, 3)) {
    case LUA_TSTRING:
        type = MP_DICT_TSTRING;
        str = lua_tolstring(L, 3, &str_len);
        break;
    case LUA_TNUMBER:
        type = MP_DICT_TNUMBER;
        num = lua_tonumber(L, 3);
        break;
    case LUA_TNIL:
    case LUA_TNONE:
        type = MP_DICT_TNIL;
        break;
    case LUA_TBOOLEAN:
        type = MP_DICT_TBOOLEAN;
        num = lua_toboolean(L, 3);
        break;
    case LUA_TTABLE:
        type = MP_DICT_TTABLE;
        str = encode_table(L, 3, &str_len);   /* stays on the stack */
        if (str != NULL) {
            break;
        }
        /* fall through */
    default:
        return push_fail(L, "bad value type");
    }
    flags = int_arg(L, 5, 0);

    rc = mp_dict_store(d, op, key, len, type, str, str_len, num,
                       (uint32_t) flags, exptime, &forcible, &err);
    lua_pushboolean(L, rc == MP_OK);
    if (rc == MP_OK) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, err);
    }
    lua_pushboolean(L, forcible);
    return 3;
}


static int
shdict_set(lua_State *L)
{
    return store_common(L, MP_DICT_SET);
}


static int
shdict_safe_set(lua_State *L)
{
    return store_common(L, MP_DICT_SET | MP_DICT_SAFE);
}


static int
shdict_add(lua_State *L)
{
    return store_common(L, MP_DICT_ADD);
}


static int
shdict_safe_add(lua_State *L)
{
    return store_common(L, MP_DICT_ADD | MP_DICT_SAFE);
}


static int
shdict_replace(lua_State *L)
{
    return store_common(L, MP_DICT_REPLACE);
}


/* lua-resty-core's delete is set(key, nil): true, nil, false. */
static int
shdict_delete(lua_State *L)
{
    mp_dict_t *d = check_zone(L, 1);
    const char *key, *err;
    size_t len;

    key = key_arg(L, 2, &len, &err);
    if (key == NULL) {
        return push_fail(L, err);
    }
    mp_dict_delete(d, key, len, &err);
    lua_pushboolean(L, 1);
    lua_pushnil(L);
    lua_pushboolean(L, 0);
    return 3;
}


/* ---- incr ---------------------------------------------------------------- */

/* A number or a string tonumber() accepts; else raises like the FFI. */
static double
incr_number(lua_State *L, int idx, const char *what)
{
    if (lua_type(L, idx) == LUA_TNUMBER
        || (lua_type(L, idx) == LUA_TSTRING && lua_isnumber(L, idx)))
    {
        return lua_tonumber(L, idx);
    }
    if (what == NULL) {
        luaL_error(L, "cannot convert 'nil' to 'double'");
    }
    luaL_error(L, "bad %s arg: number expected, got %s", what,
               luaL_typename(L, idx));
    return 0;
}


static int
shdict_incr(lua_State *L)
{
    mp_dict_t *d = check_zone(L, 1);
    const char *key, *err;
    double value, init = 0, ttl = 0;
    int has_init, forcible = 0, rc;
    size_t len;

    key = key_arg(L, 2, &len, &err);
    if (key == NULL) {
        return push_fail(L, err);
    }
    value = incr_number(L, 3, NULL);
    has_init = lua_toboolean(L, 4);
    if (has_init) {
        init = incr_number(L, 4, "init");
    }
    if (!lua_isnoneornil(L, 5)) {
        ttl = incr_number(L, 5, "init_ttl");
        if (ttl < 0) {
            return luaL_error(L, "bad \"init_ttl\" argument");
        }
        if (!has_init) {
            return luaL_error(L,
                              "must provide \"init\" when providing "
                              "\"init_ttl\"");
        }
    }

    rc = mp_dict_incr(d, key, len, &value, has_init, init,
                      (mp_msec_t) (ttl * 1000), &forcible, &err);
    if (rc != MP_OK) {
        return push_fail(L, err);
    }
    lua_pushnumber(L, value);
    if (!has_init) {
        return 1;
    }
    lua_pushnil(L);
    lua_pushboolean(L, forcible);
    return 3;
}


/* ---- lists (lua-nginx-module's C functions) ------------------------------ */

/* Arity and zone checks of lua-nginx-module's list functions. */
static mp_dict_t *
check_list_call(lua_State *L, int nargs)
{
    int n = lua_gettop(L);

    if (n != nargs) {
        luaL_error(L, "expecting %d arguments, but only seen %d", nargs, n);
    }
    if (lua_type(L, 1) != LUA_TTABLE) {
        luaL_error(L, "bad \"zone\" argument");
    }
    return check_zone(L, 1);
}


static int
push_common(lua_State *L, int left)
{
    mp_dict_t *d = check_list_call(L, 3);
    const char *key, *err, *str = NULL;
    size_t len, str_len = 0, n;
    double num = 0;
    int type, rc;

    key = key_arg_strict(L, 2, &len, &err);
    if (key == NULL) {
        return push_fail(L, err);
    }
    switch (lua_type(L, 3)) {
    case LUA_TSTRING:
        type = MP_DICT_TSTRING;
        str = lua_tolstring(L, 3, &str_len);
        break;
    case LUA_TNUMBER:
        type = MP_DICT_TNUMBER;
        num = lua_tonumber(L, 3);
        break;
    default:
        return push_fail(L, "bad value type");
    }
    rc = left ? mp_dict_lpush(d, key, len, type, str, str_len, num, &n, &err)
              : mp_dict_rpush(d, key, len, type, str, str_len, num, &n, &err);
    if (rc != MP_OK) {
        return push_fail(L, err);
    }
    lua_pushnumber(L, (lua_Number) n);
    return 1;
}


static int
shdict_lpush(lua_State *L)
{
    return push_common(L, 1);
}


static int
shdict_rpush(lua_State *L)
{
    return push_common(L, 0);
}


static int
pop_common(lua_State *L, int left)
{
    mp_dict_t *d = check_list_call(L, 2);
    const char *key, *err;
    mp_dict_value_t v;
    size_t len;
    int rc;

    key = key_arg_strict(L, 2, &len, &err);
    if (key == NULL) {
        return push_fail(L, err);
    }
    memset(&v, 0, sizeof(v));
    vbuf_reserve(&v, 0);
    for (;;) {
        rc = left ? mp_dict_lpop(d, key, len, &v, &err)
                  : mp_dict_rpop(d, key, len, &v, &err);
        if (rc != MP_AGAIN) {
            break;
        }
        vbuf_reserve(&v, v.len);
    }
    if (rc == MP_DECLINED) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != MP_OK) {
        return push_fail(L, err);
    }
    push_value(L, &v);
    return 1;
}


static int
shdict_lpop(lua_State *L)
{
    return pop_common(L, 1);
}


static int
shdict_rpop(lua_State *L)
{
    return pop_common(L, 0);
}


static int
shdict_llen(lua_State *L)
{
    mp_dict_t *d = check_list_call(L, 2);
    const char *key, *err;
    size_t len, n;

    key = key_arg_strict(L, 2, &len, &err);
    if (key == NULL) {
        return push_fail(L, err);
    }
    if (mp_dict_llen(d, key, len, &n, &err) != MP_OK) {
        return push_fail(L, err);
    }
    lua_pushnumber(L, (lua_Number) n);
    return 1;
}


/* ---- ttl, expire --------------------------------------------------------- */

static int
shdict_ttl(lua_State *L)
{
    mp_dict_t *d = check_zone(L, 1);
    const char *key, *err;
    mp_msec_t ttl;
    size_t len;

    key = key_arg(L, 2, &len, &err);
    if (key == NULL) {
        return push_fail(L, err);
    }
    if (mp_dict_ttl(d, key, len, &ttl, &err) != MP_OK) {
        return push_fail(L, err);
    }
    lua_pushnumber(L, (lua_Number) ttl / 1000);
    return 1;
}


static int
shdict_expire(lua_State *L)
{
    mp_dict_t *d = check_zone(L, 1);
    const char *key, *err;
    double t;
    size_t len;

    if (!lua_toboolean(L, 3)) {
        return luaL_error(L, "bad \"exptime\" argument");
    }
    key = key_arg(L, 2, &len, &err);
    if (key == NULL) {
        return push_fail(L, err);
    }
    if (!lua_isnumber(L, 3)) {
        return luaL_error(L, "attempt to perform arithmetic on local "
                          "'exptime' (a %s value)", luaL_typename(L, 3));
    }
    t = lua_tonumber(L, 3);
    if (mp_dict_expire(d, key, len, (mp_msec_t) (t * 1000), &err) != MP_OK) {
        return push_fail(L, err);
    }
    lua_pushboolean(L, 1);
    return 1;
}


/* ---- whole-dict methods -------------------------------------------------- */

static int
shdict_flush_all(lua_State *L)
{
    mp_dict_flush_all(check_zone(L, 1));
    return 0;
}


/* flush_expired and get_keys: arity, zone and max as lua-nginx-module. */
static mp_dict_t *
check_max_call(lua_State *L, int def, size_t *max)
{
    int n = lua_gettop(L), m;
    mp_dict_t *d;

    if (n < 1 || n > 2) {
        luaL_error(L, "expecting 1 or 2 argument(s), but saw %d", n);
    }
    d = check_zone(L, 1);
    m = luaL_optint(L, 2, def);
    *max = m < 0 ? 0 : (size_t) m;   /* negative: no limit, as nginx */
    return d;
}


static int
shdict_flush_expired(lua_State *L)
{
    size_t max, n;
    mp_dict_t *d = check_max_call(L, 0, &max);

    n = mp_dict_flush_expired(d, max);
    lua_pushnumber(L, (lua_Number) n);
    return 1;
}


/* Runs under a shard lock: copies the key, no Lua. */
static int
collect_key(void *ctx, const char *key, size_t len)
{
    size_t *used = ctx, need = *used + sizeof(size_t) + len;

    if (need > kbuf_size) {
        kbuf_size = mp_max(need, kbuf_size * 2);
        kbuf = mp_realloc(kbuf, kbuf_size);
    }
    memcpy(kbuf + *used, &len, sizeof(size_t));
    memcpy(kbuf + *used + sizeof(size_t), key, len);
    *used = need;
    return 0;
}


static int
shdict_get_keys(lua_State *L)
{
    size_t max, n, used = 0, off, len;
    mp_dict_t *d = check_max_call(L, SHDICT_KEYS_DEFAULT, &max);
    int i;

    n = mp_dict_get_keys(d, max, collect_key, &used);
    lua_createtable(L, (int) n, 0);
    for (off = 0, i = 1; off < used; i++) {
        memcpy(&len, kbuf + off, sizeof(size_t));
        lua_pushlstring(L, kbuf + off + sizeof(size_t), len);
        lua_rawseti(L, -2, i);
        off += sizeof(size_t) + len;
    }
    return 1;
}


static int
shdict_capacity(lua_State *L)
{
    lua_pushnumber(L, (lua_Number) mp_dict_capacity(check_zone(L, 1)));
    return 1;
}


static int
shdict_free_space(lua_State *L)
{
    lua_pushnumber(L, (lua_Number) mp_dict_free_space(check_zone(L, 1)));
    return 1;
}


static const luaL_Reg shdict_methods[] = {
    { "get", shdict_get },
    { "get_stale", shdict_get_stale },
    { "set", shdict_set },
    { "safe_set", shdict_safe_set },
    { "add", shdict_add },
    { "safe_add", shdict_safe_add },
    { "replace", shdict_replace },
    { "delete", shdict_delete },
    { "incr", shdict_incr },
    { "lpush", shdict_lpush },
    { "rpush", shdict_rpush },
    { "lpop", shdict_lpop },
    { "rpop", shdict_rpop },
    { "llen", shdict_llen },
    { "ttl", shdict_ttl },
    { "expire", shdict_expire },
    { "flush_all", shdict_flush_all },
    { "flush_expired", shdict_flush_expired },
    { "get_keys", shdict_get_keys },
    { "capacity", shdict_capacity },
    { "free_space", shdict_free_space },
    { NULL, NULL }
};


/* string.buffer, kept in the registry for table values (if present). */
static void
load_codec(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "string.buffer");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        mp_log_error(MP_LOG_WARN, 0, "no string.buffer, shared dicts will "
                     "not store tables: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return;
    }
    lua_setfield(L, LUA_REGISTRYINDEX, SHDICT_CODEC);
}


void
mp_lua_inject_shdict_api(lua_State *L, const mp_conf_t *conf)
{
    const luaL_Reg *m;
    size_t i;

    load_codec(L);

    lua_createtable(L, 0, sizeof(shdict_methods) / sizeof(luaL_Reg));
    for (m = shdict_methods; m->name != NULL; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, -2, m->name);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, SHDICT_METHODS);

    lua_createtable(L, 0, 1);           /* the shared metatable */
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "__index");

    lua_createtable(L, 0, (int) conf->ndicts);   /* ngx.shared */
    for (i = 0; i < conf->ndicts; i++) {
        lua_createtable(L, 1, 0);
        /* NULL under moonpool -t: the object exists, methods raise */
        lua_pushlightuserdata(L, conf->dicts[i].dict);
        lua_rawseti(L, -2, 1);
        lua_pushvalue(L, -3);
        lua_setmetatable(L, -2);
        lua_setfield(L, -2, conf->dicts[i].name.data);
    }
    lua_setfield(L, -4, "shared");
    lua_pop(L, 2);
}


void
mp_lua_shdict_load_ffi(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "moonpool.shdict");
    if (lua_pcall(L, 1, 1, 0) == 0) {
        lua_getfield(L, -1, "install");
        lua_getfield(L, LUA_REGISTRYINDEX, SHDICT_METHODS);
        if (lua_pcall(L, 1, 0, 0) == 0) {
            lua_pop(L, 1);
            return;
        }
        lua_remove(L, -2);
    }
    /* The C methods stay in place: same results, only slower. */
    mp_log_error(MP_LOG_ALERT, 0, "cannot load \"moonpool.shdict\": %s",
                 lua_tostring(L, -1));
    lua_pop(L, 1);
}


/* ---- FFI entry points (lua/lib/moonpool/shdict.lua) ----------------------
 *
 * The Lua side has checked the zone, the key (1..65535 bytes) and the
 * value type; these only translate between plain C types and shm/dict.h.
 */

int
mp_ffi_shdict_get(void *zone, const char *key, size_t key_len,
    int get_stale, int *value_type, char *buf, size_t *value_len,
    double *num_value, int *user_flags, int *is_stale, const char **errmsg)
{
    mp_dict_value_t v;
    int rc;

    if (mp_unlikely(zone == NULL)) {
        *errmsg = "no shared dict";
        return MP_ERROR;
    }
    v.data = buf;
    v.size = *value_len;
    rc = get_stale ? mp_dict_get_stale(zone, key, key_len, &v, errmsg)
                   : mp_dict_get(zone, key, key_len, &v, errmsg);
    if (rc == MP_OK) {
        *value_type = v.type;
        *value_len = v.len;
        *num_value = v.number;
        *user_flags = (int) v.flags;
        *is_stale = v.stale;
    } else if (rc == MP_AGAIN) {
        *value_len = v.len;   /* the size needed */
    } else {
        *value_type = MP_DICT_TNIL;
    }
    return rc;
}


int
mp_ffi_shdict_store(void *zone, int op, const char *key, size_t key_len,
    int value_type, const char *str, size_t str_len, double num_value,
    int64_t exptime, int user_flags, int *forcible, const char **errmsg)
{
    *forcible = 0;
    if (mp_unlikely(zone == NULL)) {
        *errmsg = "no shared dict";
        return MP_ERROR;
    }
    return mp_dict_store(zone, op, key, key_len, value_type, str, str_len,
                         num_value, (uint32_t) user_flags, exptime, forcible,
                         errmsg);
}


int
mp_ffi_shdict_incr(void *zone, const char *key, size_t key_len,
    double *value, int has_init, double init, int64_t init_ttl,
    int *forcible, const char **errmsg)
{
    *forcible = 0;
    if (mp_unlikely(zone == NULL)) {
        *errmsg = "no shared dict";
        return MP_ERROR;
    }
    return mp_dict_incr(zone, key, key_len, value, has_init, init, init_ttl,
                        forcible, errmsg);
}


int
mp_ffi_shdict_delete(void *zone, const char *key, size_t key_len)
{
    const char *err;

    if (mp_unlikely(zone == NULL)) {
        return MP_ERROR;
    }
    return mp_dict_delete(zone, key, key_len, &err);
}
