/*
 * api_regex.c: ngx.re.match, find, gmatch, sub, gsub, and the module
 * "ngx.re" of lua-resty-core (split, opt), on PCRE2 with its JIT.
 *
 * Results, option letters and error strings are those of lua-resty-core's
 * regex.lua over lua-nginx-module's PCRE2 code: unmatched groups are false,
 * named groups are also stored by name (as arrays with "D"), a bad pattern
 * gives nil, "pcre2_compile() failed: ... in \"...\"", an unknown letter
 * raises. One deliberate difference: after an empty match in a UTF-8
 * regex, gmatch, gsub and split step over a whole character, where
 * OpenResty steps one byte and fails with "pcre_exec() failed: ...".
 *
 * Compiled regexes are full userdata (freed by __gc) kept in two tables
 * indexed by option mask, then by pattern string: the "o" table, bounded
 * like lua_regex_cache_max_entries, and a table for calls without "o"
 * (the results are the same, the compilation is saved), emptied whenever
 * it fills. A regex in use is on the Lua stack, so emptying a table or a
 * Lua error never frees one under a caller's feet.
 *
 * One pcre2_match_data serves every call of the worker; it only grows, to
 * the largest capture count seen. Nothing is malloc'ed per call once a
 * pattern is cached: captures go from the ovector straight to Lua strings.
 * A callback of gsub may call ngx.re again and reuse that match data, so
 * the loops copy the offsets they still need before calling Lua.
 */
#include "core/mp_core.h"
#include "lua/vm.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <lauxlib.h>
#include <lua.h>
#include <string.h>

/* Entries of each cache table (lua_regex_cache_max_entries' default). */
#define RE_CACHE_MAX        1024

/* lua-nginx-module's workspace for pcre2_dfa_match, in ints. */
#define RE_DFA_WORKSPACE    100

/* The smallest PCRE2 JIT stack, as in lua-nginx-module. */
#define RE_MIN_JIT_STACK    (32 * 1024)

#define RE_ERR_LEN          256

/* Flags beside the pcre2_compile() options. */
#define RE_ONCE             0x01
#define RE_JIT              0x02
#define RE_DFA              0x04
#define RE_DUPNAMES         0x08
#define RE_NO_UTF_CHECK     0x10

#define RE_STATE_KEY        "moonpool.regex"
#define RE_MT_KEY           "moonpool.regex.code"

typedef struct {
    char letter;
    uint32_t options;   /* pcre2_compile() options */
    unsigned flags;     /* RE_* */
} re_letter_t;

/* "J" is PCRE1's JAVASCRIPT_COMPAT, spelled out in PCRE2 options. */
static const re_letter_t re_letters[] = {
    { 'o', 0, RE_ONCE },
    { 'j', 0, RE_JIT },
    { 'i', PCRE2_CASELESS, 0 },
    { 's', PCRE2_DOTALL, 0 },
    { 'm', PCRE2_MULTILINE, 0 },
    { 'u', PCRE2_UTF, 0 },
    { 'U', PCRE2_UTF, RE_NO_UTF_CHECK },
    { 'x', PCRE2_EXTENDED, 0 },
    { 'd', 0, RE_DFA },
    { 'a', PCRE2_ANCHORED, 0 },
    { 'D', PCRE2_DUPNAMES, RE_DUPNAMES },
    { 'J', PCRE2_ALT_BSUX | PCRE2_ALLOW_EMPTY_CLASS
               | PCRE2_MATCH_UNSET_BACKREF, 0 },
};

#define RE_NLETTERS (sizeof(re_letters) / sizeof(re_letters[0]))

/* The parsed option string. */
typedef struct {
    unsigned mask;      /* bit i: re_letters[i] given ("o" excluded) */
    uint32_t options;
    unsigned flags;
} re_opts_t;

/* A compiled regex: the payload of a userdata. */
typedef struct {
    pcre2_code *code;
    PCRE2_SPTR name_table;
    uint32_t ncaptures;     /* 0 in DFA mode, as in lua-nginx-module */
    uint32_t name_count;
    uint32_t name_entry_size;
    unsigned flags;
    unsigned utf:1;
} re_t;

/* Upvalues of every function of this file. */
#define RE_ONCE_CACHE       lua_upvalueindex(1)
#define RE_CALL_CACHE       lua_upvalueindex(2)

static pcre2_match_data *match_data;
static uint32_t match_pairs;
static pcre2_match_context *match_ctx;
static pcre2_jit_stack *jit_stack;
static int once_count;
static int call_count;


/* Raises like lua-resty-core's parse_regex_opts. */
static void
parse_opts(lua_State *L, const char *opts, size_t len, re_opts_t *o)
{
    size_t i, k;

    o->mask = 0;
    o->options = 0;
    o->flags = 0;
    for (i = 0; i < len; i++) {
        for (k = 0; k < RE_NLETTERS; k++) {
            if (re_letters[k].letter == opts[i]) {
                break;
            }
        }
        if (k == RE_NLETTERS) {
            luaL_error(L, "unknown flag \"%c\" (flags \"%s\")", opts[i],
                       opts);
        }
        if (re_letters[k].flags != RE_ONCE) {
            o->mask |= 1u << k;
        }
        o->options |= re_letters[k].options;
        o->flags |= re_letters[k].flags;
    }
}


static int
re_gc(lua_State *L)
{
    re_t *re = lua_touserdata(L, 1);

    if (re->code != NULL) {
        pcre2_code_free(re->code);
        re->code = NULL;
    }
    return 0;
}


/* The state userdata dies with the VM and takes the shared objects. */
static int
state_gc(lua_State *L)
{
    (void) L;
    if (match_data != NULL) {
        pcre2_match_data_free(match_data);
        match_data = NULL;
        match_pairs = 0;
    }
    if (match_ctx != NULL) {
        pcre2_match_context_free(match_ctx);
        match_ctx = NULL;
    }
    if (jit_stack != NULL) {
        pcre2_jit_stack_free(jit_stack);
        jit_stack = NULL;
    }
    return 0;
}


/* lua-nginx-module's message: "... in \"pat\"" plus " at \"rest\"". */
static void
push_compile_error(lua_State *L, int errcode, size_t off, const char *pat,
                   size_t len)
{
    PCRE2_UCHAR msg[RE_ERR_LEN];
    luaL_Buffer b;

    pcre2_get_error_message(errcode, msg, sizeof(msg));
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "pcre2_compile() failed: ");
    luaL_addstring(&b, (const char *) msg);
    luaL_addstring(&b, " in \"");
    luaL_addlstring(&b, pat, len);
    luaL_addchar(&b, '"');
    if (off < len) {
        luaL_addstring(&b, " at \"");
        luaL_addstring(&b, pat + off);
        luaL_addchar(&b, '"');
    }
    luaL_pushresult(&b);
}


static void
fill_info(re_t *re)
{
    pcre2_pattern_info(re->code, PCRE2_INFO_CAPTURECOUNT, &re->ncaptures);
    pcre2_pattern_info(re->code, PCRE2_INFO_NAMECOUNT, &re->name_count);
    if (re->name_count > 0) {
        pcre2_pattern_info(re->code, PCRE2_INFO_NAMEENTRYSIZE,
                           &re->name_entry_size);
        pcre2_pattern_info(re->code, PCRE2_INFO_NAMETABLE, &re->name_table);
    }
    if (re->flags & RE_DFA) {
        re->ncaptures = 0;
    }
}


/* Stores the regex at the top of the stack in cache[mask][pattern]. */
static void
cache_store(lua_State *L, int cache, unsigned mask, int pat)
{
    lua_rawgeti(L, cache, (int) mask);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 4);
        lua_pushvalue(L, -1);
        lua_rawseti(L, cache, (int) mask);
    }
    lua_pushvalue(L, pat);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}


/* Pushes cache[mask][pattern] and returns it, or returns NULL. */
static re_t *
cache_find(lua_State *L, int cache, unsigned mask, int pat)
{
    lua_rawgeti(L, cache, (int) mask);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    lua_pushvalue(L, pat);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    return lua_touserdata(L, -1);
}


/* Drops the table of calls without "o" when full (see the file comment). */
static void
cache_insert(lua_State *L, const re_opts_t *o, int pat)
{
    if ((o->flags & RE_ONCE) && once_count < RE_CACHE_MAX) {
        cache_store(L, RE_ONCE_CACHE, o->mask, pat);
        once_count++;
        return;
    }
    if (call_count >= RE_CACHE_MAX) {
        lua_pushnil(L);
        while (lua_next(L, RE_CALL_CACHE) != 0) {
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, RE_CALL_CACHE);
        }
        call_count = 0;
    }
    cache_store(L, RE_CALL_CACHE, o->mask, pat);
    call_count++;
}


static re_t *
compile(lua_State *L, const re_opts_t *o, int pat)
{
    const char *p;
    size_t len, off;
    int errcode;
    re_t *re;

    p = lua_tolstring(L, pat, &len);
    re = lua_newuserdata(L, sizeof(re_t));
    memset(re, 0, sizeof(re_t));
    luaL_getmetatable(L, RE_MT_KEY);
    lua_setmetatable(L, -2);

    re->code = pcre2_compile((PCRE2_SPTR) p, len, o->options, &errcode,
                             &off, NULL);
    if (re->code == NULL) {
        lua_pop(L, 1);
        push_compile_error(L, errcode, off, p, len);
        return NULL;
    }
    if (o->flags & RE_JIT) {
        /* A pattern the JIT refuses still runs in the interpreter. */
        (void) pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
    }
    re->flags = o->flags;
    re->utf = (o->options & PCRE2_UTF) != 0;
    fill_info(re);
    cache_insert(L, o, pat);
    return re;
}


/*
 * Parses the options at index opts (nil or a string; raises on a bad
 * letter) and pushes the compiled regex for the string at index pat.
 * On a compile error, pushes the message instead and returns NULL.
 */
static re_t *
get_regex(lua_State *L, int pat, int opts)
{
    const char *s;
    size_t len;
    re_opts_t o;
    re_t *re;

    luaL_checktype(L, pat, LUA_TSTRING);
    s = luaL_optlstring(L, opts, "", &len);
    parse_opts(L, s, len, &o);
    if (o.flags & RE_ONCE) {
        re = cache_find(L, RE_ONCE_CACHE, o.mask, pat);
        if (re != NULL) {
            return re;
        }
    }
    re = cache_find(L, RE_CALL_CACHE, o.mask, pat);
    if (re != NULL) {
        return re;
    }
    return compile(L, &o, pat);
}


/* tostring() of the value at idx, in place; returns the string. */
static const char *
to_string(lua_State *L, int idx, size_t *len)
{
    if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER) {
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, idx);
        lua_call(L, 1, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            luaL_error(L, "'tostring' must return a string");
        }
        lua_replace(L, idx);
    }
    return lua_tolstring(L, idx, len);
}


static int
reserve_match_data(uint32_t pairs)
{
    pcre2_match_data *md;

    if (match_data != NULL && pairs <= match_pairs) {
        return MP_OK;
    }
    md = pcre2_match_data_create(pairs, NULL);
    if (md == NULL) {
        return MP_ERROR;
    }
    if (match_data != NULL) {
        pcre2_match_data_free(match_data);
    }
    match_data = md;
    match_pairs = pairs;
    return MP_OK;
}


/*
 * Runs re on s from byte pos. Returns PCRE2's code: > 0 on a match (the
 * offsets are in the ovector), PCRE2_ERROR_NOMATCH, or another error. A
 * DFA match counts as 1 whatever the number of alternatives found, since
 * only the longest one (pair 0) is used.
 */
static int
exec(re_t *re, const char *s, size_t len, size_t pos)
{
    int ws[RE_DFA_WORKSPACE];
    uint32_t opts;
    int rc;

    if (reserve_match_data(re->ncaptures + 1) != MP_OK) {
        return PCRE2_ERROR_NOMEMORY;
    }
    opts = (re->flags & RE_NO_UTF_CHECK) ? PCRE2_NO_UTF_CHECK : 0;
    if (re->flags & RE_DFA) {
        rc = pcre2_dfa_match(re->code, (PCRE2_SPTR) s, len, pos, opts,
                             match_data, match_ctx, ws, RE_DFA_WORKSPACE);
        return rc >= 0 ? 1 : rc;
    }
    return pcre2_match(re->code, (PCRE2_SPTR) s, len, pos, opts, match_data,
                       match_ctx);
}


static PCRE2_SIZE *
ovector(void)
{
    return pcre2_get_ovector_pointer(match_data);
}


/* The offset after an empty match at pos: one byte, or one character. */
static size_t
next_pos(const re_t *re, const char *s, size_t len, size_t pos)
{
    pos++;
    if (re->utf) {
        while (pos < len && ((unsigned char) s[pos] & 0xc0) == 0x80) {
            pos++;
        }
    }
    return pos;
}


static int
push_exec_error(lua_State *L, int nnil, int rc)
{
    int i;

    for (i = 0; i < nnil; i++) {
        lua_pushnil(L);
    }
    lua_pushfstring(L, "pcre_exec() failed: %d", rc);
    return nnil + 1;
}


/* The named groups of the table at t (the numbered ones are set). */
static void
set_names(lua_State *L, const re_t *re, int t)
{
    PCRE2_SPTR e = re->name_table;
    uint32_t i;
    int n;

    for (i = 0; i < re->name_count; i++, e += re->name_entry_size) {
        n = (e[0] << 8) | e[1];
        lua_rawgeti(L, t, n);
        if (!(re->flags & RE_DUPNAMES)) {
            lua_setfield(L, t, (const char *) e + 2);
            continue;
        }
        /* With "D", matched groups are appended to an array per name. */
        if (!lua_toboolean(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        lua_getfield(L, t, (const char *) e + 2);
        if (lua_istable(L, -1)) {
            lua_insert(L, -2);
            lua_rawseti(L, -2, (int) lua_objlen(L, -2) + 1);
            lua_pop(L, 1);
        } else {
            lua_pop(L, 1);
            lua_createtable(L, 1, 0);
            lua_insert(L, -2);
            lua_rawseti(L, -2, 1);
            lua_setfield(L, t, (const char *) e + 2);
        }
    }
}


/*
 * Pushes the captures of the last match: res (a table index) filled, or a
 * new table when res is 0. Groups past rc or unset are false.
 */
static void
push_captures(lua_State *L, const re_t *re, const char *s, int rc, int res)
{
    PCRE2_SIZE *ov = ovector();
    uint32_t i;
    int t;

    if (res == 0) {
        lua_createtable(L, (int) re->ncaptures, (int) re->name_count);
    } else {
        lua_pushvalue(L, res);
    }
    t = lua_gettop(L);
    for (i = 0; i <= re->ncaptures; i++) {
        if ((int) i < rc && ov[2 * i] != PCRE2_UNSET) {
            lua_pushlstring(L, s + ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
        } else {
            lua_pushboolean(L, 0);
        }
        lua_rawseti(L, t, (int) i);
    }
    if (re->name_count > 0 && !(re->flags & RE_DFA)) {
        set_names(L, re, t);
    }
}


/* ctx.pos (1-based) as a start offset; 0 without ctx or pos. */
static size_t
ctx_start(lua_State *L, int ctx, size_t len)
{
    lua_Number pos;

    if (lua_isnoneornil(L, ctx)) {
        return 0;
    }
    lua_getfield(L, ctx, "pos");
    pos = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(pos > 0)) {
        return 0;
    }
    /* Far past the end is still past the end (PCRE2_ERROR_BADOFFSET). */
    if (pos > (lua_Number) len + 1) {
        return len + 1;
    }
    return (size_t) (pos - 1);
}


static void
set_ctx_pos(lua_State *L, int ctx, lua_Number pos)
{
    lua_pushnumber(L, pos);
    lua_setfield(L, ctx, "pos");
}


/* ngx.re.match(subject, regex, opts?, ctx?, res?) */
static int
re_match(lua_State *L)
{
    const char *s;
    size_t len;
    re_t *re;
    int rc;

    lua_settop(L, 5);
    s = to_string(L, 1, &len);
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
    }
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
    }
    re = get_regex(L, 2, 3);
    if (re == NULL) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    rc = exec(re, s, len, ctx_start(L, 4, len));
    if (rc == PCRE2_ERROR_NOMATCH) {
        lua_pushnil(L);
        return 1;
    }
    if (rc < 0) {
        return push_exec_error(L, 1, rc);
    }
    if (!lua_isnoneornil(L, 4)) {
        set_ctx_pos(L, 4, (lua_Number) ovector()[1] + 1);
    }
    push_captures(L, re, s, rc, lua_isnoneornil(L, 5) ? 0 : 5);
    return 1;
}


/* ngx.re.find(subject, regex, opts?, ctx?, nth?) */
static int
re_find(lua_State *L)
{
    PCRE2_SIZE *ov;
    const char *s;
    lua_Integer nth;
    size_t len;
    re_t *re;
    int rc;

    lua_settop(L, 5);
    s = to_string(L, 1, &len);
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
    }
    nth = luaL_optinteger(L, 5, 0);
    re = get_regex(L, 2, 3);
    if (re == NULL) {
        lua_pushnil(L);
        lua_pushnil(L);
        lua_pushvalue(L, -3);
        return 3;
    }
    rc = exec(re, s, len, ctx_start(L, 4, len));
    if (rc == PCRE2_ERROR_NOMATCH) {
        lua_pushnil(L);
        return 1;
    }
    if (rc < 0) {
        return push_exec_error(L, 2, rc);
    }
    ov = ovector();
    if (!lua_isnoneornil(L, 4)) {
        set_ctx_pos(L, 4, (lua_Number) ov[1] + 1);
    }
    if (nth < 0) {
        nth = 0;
    }
    lua_pushnil(L);
    if (nth > (lua_Integer) re->ncaptures) {
        lua_pushnil(L);
        lua_pushliteral(L, "nth out of bound");
        return 3;
    }
    if (nth >= rc || ov[2 * nth] == PCRE2_UNSET) {
        lua_pushnil(L);
        return 2;
    }
    lua_pop(L, 1);
    lua_pushinteger(L, (lua_Integer) ov[2 * nth] + 1);
    lua_pushinteger(L, (lua_Integer) ov[2 * nth + 1]);
    return 2;
}


/*
 * The gmatch iterator. Upvalues: the regex, the subject, the next start
 * offset (nil once exhausted).
 */
static int
gmatch_next(lua_State *L)
{
    PCRE2_SIZE *ov;
    const char *s;
    size_t len, pos;
    re_t *re;
    int rc;

    if (lua_isnil(L, lua_upvalueindex(3))) {
        lua_pushnil(L);
        return 1;
    }
    re = lua_touserdata(L, lua_upvalueindex(1));
    s = lua_tolstring(L, lua_upvalueindex(2), &len);
    pos = (size_t) lua_tonumber(L, lua_upvalueindex(3));
    rc = exec(re, s, len, pos);
    if (rc < 0) {
        lua_pushnil(L);
        lua_replace(L, lua_upvalueindex(3));
        if (rc == PCRE2_ERROR_NOMATCH) {
            lua_pushnil(L);
            return 1;
        }
        return push_exec_error(L, 1, rc);
    }
    ov = ovector();
    pos = ov[1];
    if (ov[1] == ov[0]) {
        pos = next_pos(re, s, len, pos);
    }
    if (pos > len) {
        lua_pushnil(L);
    } else {
        lua_pushnumber(L, (lua_Number) pos);
    }
    lua_replace(L, lua_upvalueindex(3));
    push_captures(L, re, s, rc, 0);
    return 1;
}


/* ngx.re.gmatch(subject, regex, opts?) */
static int
re_gmatch(lua_State *L)
{
    size_t len;

    lua_settop(L, 3);
    to_string(L, 1, &len);
    if (get_regex(L, 2, 3) == NULL) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushvalue(L, 1);
    lua_pushnumber(L, 0);
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}


/*
 * Checks a replacement template: "$$", "$N" and "${N}" (N decimal) are
 * the only uses of '$' lua-nginx-module accepts.
 */
static int
template_ok(const char *t, size_t len)
{
    size_t i = 0;

    while (i < len) {
        if (t[i++] != '$') {
            continue;
        }
        if (i == len) {
            return 0;
        }
        if (t[i] == '$') {
            i++;
        } else if (t[i] >= '0' && t[i] <= '9') {
            while (i < len && t[i] >= '0' && t[i] <= '9') {
                i++;
            }
        } else if (t[i] == '{') {
            if (++i == len || t[i] < '0' || t[i] > '9') {
                return 0;
            }
            while (i < len && t[i] >= '0' && t[i] <= '9') {
                i++;
            }
            if (i == len || t[i++] != '}') {
                return 0;
            }
        } else {
            return 0;
        }
    }
    return 1;
}


/* Appends group n of the last match; missing or unset groups add "". */
static void
add_group(luaL_Buffer *b, const char *s, int rc, size_t n)
{
    PCRE2_SIZE *ov = ovector();

    if (n < (size_t) rc && ov[2 * n] != PCRE2_UNSET) {
        luaL_addlstring(b, s + ov[2 * n], ov[2 * n + 1] - ov[2 * n]);
    }
}


/* Appends the expansion of a template that passed template_ok(). */
static void
add_template(luaL_Buffer *b, const char *t, size_t len, const char *s,
             int rc)
{
    size_t i = 0, start, n;
    int brace;

    while (i < len) {
        start = i;
        while (i < len && t[i] != '$') {
            i++;
        }
        luaL_addlstring(b, t + start, i - start);
        if (i == len) {
            break;
        }
        i++;
        if (t[i] == '$') {
            luaL_addchar(b, '$');
            i++;
            continue;
        }
        brace = t[i] == '{';
        i += brace;
        /* Past 65535 every group number is as missing as the next. */
        for (n = 0; i < len && t[i] >= '0' && t[i] <= '9'; i++) {
            n = n > 65535 ? n : n * 10 + (size_t) (t[i] - '0');
        }
        i += brace;
        add_group(b, s, rc, n);
    }
}


/* The result of a replacement function, tostring()ed, to the buffer. */
static void
add_function_result(lua_State *L, luaL_Buffer *b)
{
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
        lua_getglobal(L, "tostring");
        lua_insert(L, -2);
        lua_call(L, 1, 1);
    }
    luaL_addvalue(b);
}


typedef struct {
    re_t *re;
    const char *s;
    size_t len;
    const char *tpl;        /* NULL when the replacement is a function */
    size_t tpl_len;
    int global;
} re_sub_t;


/*
 * The substitution loop: pushes the new string and returns the count, or
 * returns a negative PCRE2 code. The stack holds the buffer meanwhile.
 */
static int
substitute(lua_State *L, re_sub_t *x)
{
    size_t pos = 0, copied = 0, from, to;
    luaL_Buffer b;
    int rc, count = 0;

    luaL_buffinit(L, &b);
    for (;;) {
        rc = exec(x->re, x->s, x->len, pos);
        if (rc == PCRE2_ERROR_NOMATCH) {
            break;
        }
        if (rc < 0) {
            luaL_pushresult(&b);
            lua_pop(L, 1);
            return rc;
        }
        count++;
        from = ovector()[0];
        to = ovector()[1];
        if (from < copied) {
            from = copied;
        }
        luaL_addlstring(&b, x->s + copied, from - copied);
        if (x->tpl != NULL) {
            add_template(&b, x->tpl, x->tpl_len, x->s, rc);
        } else {
            lua_pushvalue(L, 3);
            push_captures(L, x->re, x->s, rc, 0);
            lua_call(L, 1, 1);
            add_function_result(L, &b);
        }
        copied = to;
        pos = to == from ? next_pos(x->re, x->s, x->len, to) : to;
        if (pos > x->len || !x->global) {
            break;
        }
    }
    luaL_addlstring(&b, x->s + copied, x->len - copied);
    luaL_pushresult(&b);
    return count;
}


static int
sub_helper(lua_State *L, int global)
{
    re_sub_t x;
    int rc;

    lua_settop(L, 4);
    x.tpl = NULL;
    x.tpl_len = 0;
    if (lua_type(L, 3) != LUA_TFUNCTION) {
        x.tpl = to_string(L, 3, &x.tpl_len);
    }
    x.re = get_regex(L, 2, 4);
    if (x.re == NULL) {
        lua_pushnil(L);
        lua_pushnil(L);
        lua_pushvalue(L, -3);
        return 3;
    }
    if (x.tpl != NULL && !template_ok(x.tpl, x.tpl_len)) {
        lua_pushnil(L);
        lua_pushnil(L);
        lua_pushliteral(L, "failed to compile the replacement template");
        return 3;
    }
    x.s = to_string(L, 1, &x.len);
    x.global = global;
    rc = substitute(L, &x);
    if (rc < 0) {
        return push_exec_error(L, 2, rc);
    }
    if (rc == 0) {
        lua_pop(L, 1);
        lua_pushvalue(L, 1);
    }
    lua_pushinteger(L, rc);
    return 2;
}


/* ngx.re.sub(subject, regex, replace, opts?) */
static int
re_sub(lua_State *L)
{
    return sub_helper(L, 0);
}


/* ngx.re.gsub(subject, regex, replace, opts?) */
static int
re_gsub(lua_State *L)
{
    return sub_helper(L, 1);
}


/* string.sub(s, i, j) for the index conventions split relies on. */
static void
push_sub(lua_State *L, const char *s, size_t len, lua_Integer i,
         lua_Integer j)
{
    lua_Integer n = (lua_Integer) len;

    if (i < 0) {
        i += n + 1;
    }
    if (j < 0) {
        j += n + 1;
    }
    if (i < 1) {
        i = 1;
    }
    if (j > n) {
        j = n;
    }
    if (i > j) {
        lua_pushliteral(L, "");
    } else {
        lua_pushlstring(L, s + i - 1, (size_t) (j - i + 1));
    }
}


typedef struct {
    re_t *re;
    const char *s;
    size_t len;
    lua_Integer pos;        /* ctx.pos of lua-resty-core: 0-based here */
    lua_Integer max;
    int res;                /* index of the result table */
    lua_Integer n;          /* entries stored */
} re_split_t;


/*
 * One match from x->pos, as lua-resty-core's re_split_helper: 1 with the
 * 1-based [from, to) in f and t and the first group pushed (or nothing if
 * the pattern has none or it did not take part), 0 at the end, or a
 * negative PCRE2 code.
 */
static int
split_step(lua_State *L, re_split_t *x, lua_Integer *f, lua_Integer *t,
           int *has_capture)
{
    PCRE2_SIZE *ov;
    int rc;

    rc = exec(x->re, x->s, x->len, x->pos > 0 ? (size_t) x->pos : 0);
    if (rc == PCRE2_ERROR_NOMATCH) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    ov = ovector();
    x->pos = ov[0] == ov[1]
                 ? (lua_Integer) next_pos(x->re, x->s, x->len, ov[1])
                 : (lua_Integer) ov[1];
    *f = (lua_Integer) ov[0] + 1;
    *t = (lua_Integer) ov[1] + 1;
    *has_capture = x->re->ncaptures > 0 && rc > 1;
    if (*has_capture) {
        /* An unset first group reads as string.sub(s, 0, -1): all of s. */
        push_sub(L, x->s, x->len,
                 ov[2] == PCRE2_UNSET ? 0 : (lua_Integer) ov[2] + 1,
                 ov[3] == PCRE2_UNSET ? -1 : (lua_Integer) ov[3]);
    }
    return 1;
}


/* The splitting loop; returns 0 or a negative PCRE2 code. */
static int
split_loop(lua_State *L, re_split_t *x, lua_Integer *sub_idx)
{
    lua_Integer from, to, last_empty = 0, count = 1;
    int rc, cap;

    while (x->max <= 0 || count < x->max) {
        rc = split_step(L, x, &from, &to, &cap);
        if (rc <= 0) {
            return rc;
        }
        if (last_empty) {
            *sub_idx = last_empty;
        }
        if (from == to) {
            last_empty = from;
        }
        if (from > *sub_idx || !last_empty) {
            count++;
            push_sub(L, x->s, x->len, *sub_idx, from - 1);
            lua_rawseti(L, x->res, (int) ++x->n);
            if (cap) {
                lua_rawseti(L, x->res, (int) ++x->n);
            }
            *sub_idx = to;
            if (*sub_idx > (lua_Integer) x->len) {
                return 0;
            }
        } else if (cap) {
            lua_pop(L, 1);
        }
    }
    return 0;
}


/* Ends the result table as lua-resty-core does and returns 1. */
static int
split_finish(lua_State *L, re_split_t *x, lua_Integer sub_idx)
{
    lua_Integer i;

    if (x->max <= 0 && sub_idx > (lua_Integer) x->len) {
        /* Without max, trailing empty fields are dropped. */
        for (i = x->n; i >= 1; i--) {
            lua_rawgeti(L, x->res, (int) i);
            if (lua_objlen(L, -1) != 0 || !lua_isstring(L, -1)) {
                lua_pop(L, 1);
                x->n = i;
                break;
            }
            lua_pop(L, 1);
            lua_pushnil(L);
            lua_rawseti(L, x->res, (int) i);
        }
    } else {
        push_sub(L, x->s, x->len, sub_idx, -1);
        lua_rawseti(L, x->res, (int) ++x->n);
    }
    lua_pushnil(L);
    lua_rawseti(L, x->res, (int) x->n + 1);
    lua_pushvalue(L, x->res);
    return 1;
}


/* ngx.re module: split(subject, regex, opts?, ctx?, max?, res?) */
static int
re_split(lua_State *L)
{
    lua_Integer sub_idx;
    re_split_t x;
    int rc, has_ctx;

    lua_settop(L, 6);
    x.s = to_string(L, 1, &x.len);
    has_ctx = !lua_isnil(L, 4);
    x.pos = 1;
    if (has_ctx) {
        luaL_checktype(L, 4, LUA_TTABLE);
        lua_getfield(L, 4, "pos");
        if (lua_isnil(L, -1)) {
            set_ctx_pos(L, 4, 1);
        } else {
            x.pos = lua_tointeger(L, -1);
        }
        lua_pop(L, 1);
    }
    x.max = luaL_optinteger(L, 5, 0);
    if (lua_isnil(L, 6)) {
        lua_createtable(L, x.max > 0 && x.max < 4 ? (int) x.max : 4, 0);
        lua_replace(L, 6);
    } else if (!lua_istable(L, 6)) {
        return luaL_error(L, "res is not a table");
    }
    x.res = 6;
    x.n = 0;
    if (x.pos > (lua_Integer) x.len) {
        lua_pushnil(L);
        lua_rawseti(L, 6, 1);
        lua_pushvalue(L, 6);
        return 1;
    }
    x.re = get_regex(L, 2, 3);
    if (x.re == NULL) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    sub_idx = x.pos;
    x.pos = sub_idx - 1;
    rc = split_loop(L, &x, &sub_idx);
    if (has_ctx) {
        set_ctx_pos(L, 4, (lua_Number) x.pos);
    }
    if (rc < 0) {
        return push_exec_error(L, 1, rc);
    }
    return split_finish(L, &x, sub_idx);
}


/* ngx.re module: opt("jit_stack_size", size) */
static int
re_opt(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_Integer size;

    if (strcmp(name, "jit_stack_size") != 0) {
        return luaL_error(L, "unrecognized option name");
    }
    size = luaL_checkinteger(L, 2);
    if (once_count > 0) {
        return luaL_error(L, "changing jit stack size is not allowed when "
                             "some regexs have already been compiled and "
                             "cached");
    }
    if (size < RE_MIN_JIT_STACK) {
        size = RE_MIN_JIT_STACK;
    }
    if (match_ctx == NULL) {
        match_ctx = pcre2_match_context_create(NULL);
        if (match_ctx == NULL) {
            return luaL_error(L, "pcre jit stack allocation failed");
        }
    }
    if (jit_stack != NULL) {
        pcre2_jit_stack_free(jit_stack);
    }
    jit_stack = pcre2_jit_stack_create(RE_MIN_JIT_STACK, (PCRE2_SIZE) size,
                                       NULL);
    pcre2_jit_stack_assign(match_ctx, NULL, jit_stack);
    if (jit_stack == NULL) {
        return luaL_error(L, "pcre jit stack allocation failed");
    }
    return 0;
}


static const luaL_Reg re_funcs[] = {
    { "match", re_match },
    { "find", re_find },
    { "gmatch", re_gmatch },
    { "sub", re_sub },
    { "gsub", re_gsub },
    { NULL, NULL }
};

static const luaL_Reg re_module_funcs[] = {
    { "split", re_split },
    { "opt", re_opt },
    { NULL, NULL }
};


/*
 * Sets the functions of l in the table at the top, with the two caches at
 * indexes once and call as their upvalues.
 */
static void
set_funcs(lua_State *L, const luaL_Reg *l, int once, int call)
{
    for (; l->name != NULL; l++) {
        lua_pushvalue(L, once);
        lua_pushvalue(L, call);
        lua_pushcclosure(L, l->func, 2);
        lua_setfield(L, -2, l->name);
    }
}


/* package.preload["ngx.re"]; upvalues: the two caches. */
static int
load_module(lua_State *L)
{
    lua_createtable(L, 0, 3);
    set_funcs(L, re_module_funcs, RE_ONCE_CACHE, RE_CALL_CACHE);
    lua_pushliteral(L, "0.1.26");
    lua_setfield(L, -2, "version");
    return 1;
}


void
mp_lua_inject_regex_api(lua_State *L)
{
    int caches;

    luaL_newmetatable(L, RE_MT_KEY);
    lua_pushcfunction(L, re_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    lua_newuserdata(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, state_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, RE_STATE_KEY);

    lua_createtable(L, 0, 8);
    lua_createtable(L, 0, 8);
    caches = lua_gettop(L) - 1;

    lua_createtable(L, 0, 5);
    set_funcs(L, re_funcs, caches, caches + 1);
    lua_setfield(L, caches - 1, "re");

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushvalue(L, caches);
    lua_pushvalue(L, caches + 1);
    lua_pushcclosure(L, load_module, 2);
    lua_setfield(L, -2, "ngx.re");
    lua_pop(L, 4);
}
