/*
 * api_string.c: OpenResty's string utilities: ngx.escape_uri,
 * unescape_uri, encode_args, decode_args, encode_base64, decode_base64,
 * md5, md5_bin, sha1_bin, hmac_sha1, crc32_short, crc32_long,
 * quote_sql_str, and the lua-resty-core module "ngx.base64"
 * (encode_base64url, decode_base64url) served from package.preload.
 *
 * Called by vm.c at VM creation (mp_lua_inject_string_api). Results,
 * argument coercions and error strings are those of lua-nginx-module
 * 0.10.23 with lua-resty-core 0.1.25 (Debian 12), where most of these are
 * Lua wrappers over FFI calls: a nil or false argument counts as "", any
 * other non-string goes through tostring(). Outputs are built in the
 * scratch buffer of util.h and pushed once, so no call mallocs; digests
 * reuse one OpenSSL context per process, fetched on first use.
 */
#include "core/mp_core.h"
#include "lua/util.h"
#include "lua/vm.h"

#include <lauxlib.h>
#include <lua.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <zlib.h>

/* lua-nginx-module's default for decode_args' max. */
#define MP_LUA_MAX_ARGS 100

/* nginx's escape types, the "type" argument of ngx.escape_uri. */
#define MP_ESCAPE_URI 0
#define MP_ESCAPE_URI_COMPONENT 2
#define MP_ESCAPE_MAIL_AUTH 6

#define MP_MD5_LEN 16
#define MP_SHA1_LEN 20

/* lua-resty-core's version, reported by require("ngx.base64").version. */
#define MP_RESTY_CORE_VERSION "0.1.25"

/*
 * Bytes each escape type turns into %XX, one bit per byte value (bit b of
 * word w is byte 32 * w + b). They were read off OpenResty by escaping
 * every byte with every type; type 2 (the default) keeps only
 * A-Z a-z 0-9 and - . _ ~ ! * ' ( ).
 */
static const uint32_t escape_maps[MP_ESCAPE_MAIL_AUTH + 1][8] = {
    /* 0 uri: controls, space, '#', '%', '?', DEL and up */
    { 0xffffffff, 0x80000029, 0x00000000, 0x80000000,
      0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff },
    /* 1 args: as uri, plus '+' */
    { 0xffffffff, 0x80000829, 0x00000000, 0x80000000,
      0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff },
    /* 2 uri component: everything but unreserved and !*'() */
    { 0xffffffff, 0xfc00987d, 0x78000001, 0xb8000001,
      0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff },
    /* 3 html: controls, space, '"', '#', '%', '\'', DEL and up */
    { 0xffffffff, 0x000000ad, 0x00000000, 0x80000000,
      0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff },
    /* 4 refresh: controls, space, '"', '\'', DEL and up */
    { 0xffffffff, 0x00000085, 0x00000000, 0x80000000,
      0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff },
    /* 5 memcached: controls, space, '%' */
    { 0xffffffff, 0x00000021, 0x00000000, 0x00000000,
      0x00000000, 0x00000000, 0x00000000, 0x00000000 },
    /* 6 mail auth: the same */
    { 0xffffffff, 0x00000021, 0x00000000, 0x00000000,
      0x00000000, 0x00000000, 0x00000000, 0x00000000 },
};

static const char hex_upper[] = "0123456789ABCDEF";
static const char hex_lower[] = "0123456789abcdef";

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Decoding tables built from the alphabets above; 0xff marks a non-digit. */
static unsigned char b64_std_basis[256];
static unsigned char b64_url_basis[256];

/* Per-process OpenSSL state, created on first use and reused. */
static EVP_MD *md5_md;
static EVP_MD *sha1_md;
static EVP_MD_CTX *md_ctx;
static EVP_MAC_CTX *hmac_ctx;


/*
 * Argument idx as lua-resty-core's wrappers read it: nil or false is "",
 * a string or number is itself, anything else goes through tostring (the
 * original one, upvalue 1, as the wrappers captured it at load time). The
 * converted value replaces the argument so the result stays anchored.
 */
static const char *
arg_tostring(lua_State *L, int idx, size_t *len)
{
    const char *s;

    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TNUMBER:
        return lua_tolstring(L, idx, len);
    case LUA_TNONE:
    case LUA_TNIL:
        *len = 0;
        return "";
    case LUA_TBOOLEAN:
        if (!lua_toboolean(L, idx)) {
            *len = 0;
            return "";
        }
        break;
    default:
        break;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    lua_replace(L, idx);
    s = lua_tolstring(L, idx, len);
    if (s == NULL) {
        *len = 0;
        return "";
    }
    return s;
}


/* ------------------------------------------------------------ URI escape */

static size_t
escaped_count(const unsigned char *src, size_t len, const uint32_t *map)
{
    size_t i, n = 0;

    for (i = 0; i < len; i++) {
        n += (map[src[i] >> 5] >> (src[i] & 0x1f)) & 1;
    }
    return n;
}


/* dst needs 3 * len bytes at most; returns the output length. */
static size_t
escape_into(char *dst, const unsigned char *src, size_t len,
            const uint32_t *map)
{
    char *d = dst;
    size_t i;

    for (i = 0; i < len; i++) {
        if ((map[src[i] >> 5] >> (src[i] & 0x1f)) & 1) {
            *d++ = '%';
            *d++ = hex_upper[src[i] >> 4];
            *d++ = hex_upper[src[i] & 0xf];
        } else {
            *d++ = (char) src[i];
        }
    }
    return (size_t) (d - dst);
}


/*
 * Raises msg positioned two levels up, as resty.core's error(msg, 3) from
 * its Lua wrapper does: the caller of the function that called us.
 */
static int
raise_at_level2(lua_State *L, const char *msg)
{
    luaL_where(L, 2);
    lua_pushstring(L, msg);
    lua_concat(L, 2);
    return lua_error(L);
}


static int
string_escape_uri(lua_State *L)
{
    const unsigned char *s;
    lua_Number t;
    size_t len, n;
    int type = MP_ESCAPE_URI_COMPONENT;
    char *buf;

    s = (const unsigned char *) arg_tostring(L, 1, &len);
    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TNUMBER) {
            return raise_at_level2(L, "\"type\" is not a number");
        }
        t = lua_tonumber(L, 2);
        /* The negated test also rejects NaN, which the FFI would turn
         * into an arbitrary int. */
        if (!(t >= MP_ESCAPE_URI && t <= MP_ESCAPE_MAIL_AUTH)) {
            lua_pushvalue(L, 2);
            lua_pushfstring(L, "\"type\" %s out of range",
                            lua_tostring(L, -1));
            return raise_at_level2(L, lua_tostring(L, -1));
        }
        /* The FFI truncates 1.5 to 1. */
        type = (int) t;
    }

    n = escaped_count(s, len, escape_maps[type]);
    if (n == 0) {
        lua_settop(L, 1);
        if (lua_type(L, 1) != LUA_TSTRING) {
            lua_pushlstring(L, (const char *) s, len);
        }
        return 1;
    }
    buf = mp_lua_scratch(len + 2 * n);
    lua_pushlstring(L, buf, escape_into(buf, s, len, escape_maps[type]));
    return 1;
}


static int
string_unescape_uri(lua_State *L)
{
    const char *s;
    size_t len;
    char *buf;

    s = arg_tostring(L, 1, &len);
    if (len == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    buf = mp_lua_scratch(len);
    lua_pushlstring(L, buf, mp_lua_unescape_arg(buf, s, len));
    return 1;
}


/* ------------------------------------------------------------ query args */

/*
 * Appends one encode_args item at *off in the scratch buffer: '&' unless
 * it is the first, the escaped key, and "=value" when val is not NULL.
 * The buffer may move, so it is fetched again for every item.
 */
static void
append_arg(size_t *off, int *items, const char *key, size_t klen,
           const char *val, size_t vlen)
{
    const uint32_t *map = escape_maps[MP_ESCAPE_URI_COMPONENT];
    char *buf = mp_lua_scratch(*off + 2 + 3 * (klen + vlen));
    size_t o = *off;

    if ((*items)++ > 0) {
        buf[o++] = '&';
    }
    o += escape_into(buf + o, (const unsigned char *) key, klen, map);
    if (val != NULL) {
        buf[o++] = '=';
        o += escape_into(buf + o, (const unsigned char *) val, vlen, map);
    }
    *off = o;
}


/*
 * Appends the item for the value at the top of the stack (a string, a
 * number or a boolean); any other type raises. Returns 0 for a table so
 * the caller can walk it.
 */
static int
append_value(lua_State *L, size_t *off, int *items, const char *key,
             size_t klen)
{
    const char *v;
    size_t vlen;

    switch (lua_type(L, -1)) {
    case LUA_TNUMBER:
    case LUA_TSTRING:
        v = lua_tolstring(L, -1, &vlen);
        append_arg(off, items, key, klen, v, vlen);
        return 1;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, -1)) {
            append_arg(off, items, key, klen, NULL, 0);
        }
        return 1;
    case LUA_TTABLE:
        return 0;
    default:
        return luaL_error(L, "attempt to use %s as query arg value",
                          luaL_typename(L, -1));
    }
}


/*
 * Items are joined with '&'. OpenResty writes "item&" for each and drops
 * the last '&', which is the same thing, empty items included: {[""] =
 * {true, true}} gives "&".
 */
static int
string_encode_args(lua_State *L)
{
    const char *key;
    size_t klen, off = 0;
    int items = 0;

    if (lua_gettop(L) != 1) {
        return luaL_error(L, "expecting 1 argument but seen %d",
                          lua_gettop(L));
    }
    luaL_checktype(L, 1, LUA_TTABLE);

    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            return luaL_error(L, "attempt to use a non-string key in the "
                              "\"args\" option table");
        }
        key = lua_tolstring(L, -2, &klen);
        if (!append_value(L, &off, &items, key, klen)) {
            /* An array of values: each one repeats the key. */
            lua_pushnil(L);
            while (lua_next(L, -2) != 0) {
                if (lua_type(L, -1) == LUA_TTABLE) {
                    return luaL_error(L, "attempt to use table as query "
                                      "arg value");
                }
                append_value(L, &off, &items, key, klen);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    lua_pushlstring(L, off ? mp_lua_scratch(off) : "", off);
    return 1;
}


/* Stores key (already unescaped) = val (escaped) or true if val is NULL. */
static void
store_decoded(lua_State *L, int t, char *key, size_t klen, char *val,
              size_t vlen)
{
    if (klen == 0) {
        return;
    }
    lua_pushlstring(L, key, klen);
    if (val == NULL) {
        lua_pushboolean(L, 1);
    } else {
        lua_pushlstring(L, val, mp_lua_unescape_arg(val, val, vlen));
    }
    mp_lua_set_multi_value(L, t);
}


/*
 * lua-nginx-module's ngx_http_lua_parse_args, which differs from
 * get_uri_args' parser: max counts every '&'-terminated segment (empty
 * or keyless ones too), and "truncated" means the max-th segment ended
 * with '&', even if nothing follows. buf is unescaped in place.
 */
static int
decode_into(lua_State *L, int t, char *buf, size_t len, int max)
{
    char *p, *q = buf, *end = buf + len, *key = NULL;
    size_t klen = 0;
    int count = 0;

    for (p = buf; p < end; p++) {
        if (*p == '=' && key == NULL) {
            key = q;
            klen = mp_lua_unescape_arg(q, q, (size_t) (p - q));
            q = p + 1;
        } else if (*p == '&') {
            if (key != NULL) {
                store_decoded(L, t, key, klen, q, (size_t) (p - q));
            } else {
                store_decoded(L, t, q,
                              mp_lua_unescape_arg(q, q, (size_t) (p - q)),
                              NULL, 0);
            }
            q = p + 1;
            key = NULL;
            if (max > 0 && ++count == max) {
                lua_pushliteral(L, "truncated");
                return 2;
            }
        }
    }

    if (key != NULL) {
        store_decoded(L, t, key, klen, q, (size_t) (end - q));
    } else if (q < end) {
        store_decoded(L, t, q, mp_lua_unescape_arg(q, q, (size_t) (end - q)),
                      NULL, 0);
    }
    return 1;
}


static int
string_decode_args(lua_State *L)
{
    int n = lua_gettop(L), max = MP_LUA_MAX_ARGS;
    const char *s;
    size_t len;
    char *buf;

    if (n != 1 && n != 2) {
        return luaL_error(L, "expecting 1 or 2 arguments but seen %d", n);
    }
    s = luaL_checklstring(L, 1, &len);
    if (n == 2) {
        max = (int) luaL_checkinteger(L, 2);
    }
    lua_createtable(L, 0, 4);
    if (len == 0) {
        return 1;
    }
    buf = mp_lua_scratch(len);
    memcpy(buf, s, len);
    return decode_into(L, lua_gettop(L), buf, len, max);
}


/* ---------------------------------------------------------------- base64 */

/* nginx's ngx_encode_base64 / ngx_encode_base64url; returns the length. */
static size_t
base64_encode(char *dst, const unsigned char *s, size_t len,
              const char *alphabet, int padding)
{
    char *d = dst;

    for (; len > 2; len -= 3, s += 3) {
        *d++ = alphabet[s[0] >> 2];
        *d++ = alphabet[((s[0] & 0x03) << 4) | (s[1] >> 4)];
        *d++ = alphabet[((s[1] & 0x0f) << 2) | (s[2] >> 6)];
        *d++ = alphabet[s[2] & 0x3f];
    }
    if (len > 0) {
        *d++ = alphabet[s[0] >> 2];
        if (len == 1) {
            *d++ = alphabet[(s[0] & 0x03) << 4];
            if (padding) {
                *d++ = '=';
            }
        } else {
            *d++ = alphabet[((s[0] & 0x03) << 4) | (s[1] >> 4)];
            *d++ = alphabet[(s[1] & 0x0f) << 2];
        }
        if (padding) {
            *d++ = '=';
        }
    }
    return (size_t) (d - dst);
}


/*
 * nginx's ngx_decode_base64 rules, which OpenSSL's EVP_DecodeBlock does
 * not share: input ends at the first '=' (whatever follows is ignored),
 * any other non-digit before it is an error, so is one lone trailing
 * digit, and unused low bits are ignored ("Zh==" is "f"). Returns the
 * length, or -1.
 */
static ssize_t
base64_decode(char *dst, const unsigned char *s, size_t len,
              const unsigned char *basis)
{
    unsigned char *d = (unsigned char *) dst;
    size_t n;

    for (n = 0; n < len && s[n] != '='; n++) {
        if (basis[s[n]] == 0xff) {
            return -1;
        }
    }
    if (n % 4 == 1) {
        return -1;
    }
    for (; n > 3; n -= 4, s += 4) {
        *d++ = (unsigned char) (basis[s[0]] << 2 | basis[s[1]] >> 4);
        *d++ = (unsigned char) (basis[s[1]] << 4 | basis[s[2]] >> 2);
        *d++ = (unsigned char) (basis[s[2]] << 6 | basis[s[3]]);
    }
    if (n > 1) {
        *d++ = (unsigned char) (basis[s[0]] << 2 | basis[s[1]] >> 4);
    }
    if (n > 2) {
        *d++ = (unsigned char) (basis[s[1]] << 4 | basis[s[2]] >> 2);
    }
    return (ssize_t) (d - (unsigned char *) dst);
}


static int
string_encode_base64(lua_State *L)
{
    const unsigned char *s;
    size_t len;
    int padding = 1;
    char *buf;

    s = (const unsigned char *) arg_tostring(L, 1, &len);
    if (lua_toboolean(L, 2)) {
        if (lua_type(L, 2) != LUA_TBOOLEAN) {
            return luaL_error(L, "bad no_padding: boolean expected, got %s",
                              luaL_typename(L, 2));
        }
        padding = 0;
    }
    buf = mp_lua_scratch((len + 2) / 3 * 4 + 1);
    lua_pushlstring(L, buf, base64_encode(buf, s, len, b64_std, padding));
    return 1;
}


static int
string_decode_base64(lua_State *L)
{
    const char *s;
    size_t len;
    ssize_t n;
    char *buf;

    if (lua_type(L, 1) != LUA_TSTRING) {
        return luaL_error(L, "string argument only");
    }
    s = lua_tolstring(L, 1, &len);
    buf = mp_lua_scratch((len + 3) / 4 * 3 + 1);
    n = base64_decode(buf, (const unsigned char *) s, len, b64_std_basis);
    if (n < 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, buf, (size_t) n);
    return 1;
}


/* ngx.base64.encode_base64url: unpadded; nil, "must provide a string". */
static int
base64_encode_url(lua_State *L)
{
    const char *s;
    size_t len;
    char *buf;

    if (lua_type(L, 1) != LUA_TSTRING) {
        lua_pushnil(L);
        lua_pushliteral(L, "must provide a string");
        return 2;
    }
    s = lua_tolstring(L, 1, &len);
    buf = mp_lua_scratch((len + 2) / 3 * 4 + 1);
    lua_pushlstring(L, buf, base64_encode(buf, (const unsigned char *) s,
                                          len, b64_url, 0));
    return 1;
}


static int
base64_decode_url(lua_State *L)
{
    const char *s;
    size_t len;
    ssize_t n;
    char *buf;

    if (lua_type(L, 1) != LUA_TSTRING) {
        lua_pushnil(L);
        lua_pushliteral(L, "must provide a string");
        return 2;
    }
    s = lua_tolstring(L, 1, &len);
    buf = mp_lua_scratch((len + 3) / 4 * 3 + 1);
    n = base64_decode(buf, (const unsigned char *) s, len, b64_url_basis);
    if (n < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid input");
        return 2;
    }
    lua_pushlstring(L, buf, (size_t) n);
    return 1;
}


/* package.preload["ngx.base64"] */
static int
open_ngx_base64(lua_State *L)
{
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, MP_RESTY_CORE_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushcfunction(L, base64_encode_url);
    lua_setfield(L, -2, "encode_base64url");
    lua_pushcfunction(L, base64_decode_url);
    lua_setfield(L, -2, "decode_base64url");
    return 1;
}


/* ---------------------------------------------------------------- hashes */

/*
 * The algorithm objects are fetched once per process (a fetch walks the
 * provider store under a lock) and one context is reused: only one
 * coroutine runs at a time and none yields inside a digest. OpenSSL 3
 * still allocates its provider context on every init (1 allocation per
 * digest, 5 per HMAC key, measured with CRYPTO_set_mem_functions); there
 * is no public way to re-arm a finished context without it.
 */
static EVP_MD *
fetch_md(lua_State *L, EVP_MD **md, const char *name)
{
    if (*md == NULL) {
        *md = EVP_MD_fetch(NULL, name, NULL);
        if (*md == NULL) {
            luaL_error(L, "%s support missing in OpenSSL", name);
        }
    }
    if (md_ctx == NULL) {
        md_ctx = EVP_MD_CTX_new();
        if (md_ctx == NULL) {
            luaL_error(L, "EVP_MD_CTX_new() failed");
        }
    }
    return *md;
}


static void
digest(lua_State *L, EVP_MD *md, const char *s, size_t len,
       unsigned char *out)
{
    if (!EVP_DigestInit_ex2(md_ctx, md, NULL)
        || !EVP_DigestUpdate(md_ctx, s, len)
        || !EVP_DigestFinal_ex(md_ctx, out, NULL))
    {
        luaL_error(L, "%s digest failed", EVP_MD_get0_name(md));
    }
}


static int
string_md5_bin(lua_State *L)
{
    unsigned char out[MP_MD5_LEN];
    const char *s;
    size_t len;

    s = arg_tostring(L, 1, &len);
    digest(L, fetch_md(L, &md5_md, "MD5"), s, len, out);
    lua_pushlstring(L, (const char *) out, sizeof(out));
    return 1;
}


static int
string_md5(lua_State *L)
{
    unsigned char out[MP_MD5_LEN];
    char hex[2 * MP_MD5_LEN];
    const char *s;
    size_t len, i;

    s = arg_tostring(L, 1, &len);
    digest(L, fetch_md(L, &md5_md, "MD5"), s, len, out);
    for (i = 0; i < sizeof(out); i++) {
        hex[2 * i] = hex_lower[out[i] >> 4];
        hex[2 * i + 1] = hex_lower[out[i] & 0xf];
    }
    lua_pushlstring(L, hex, sizeof(hex));
    return 1;
}


static int
string_sha1_bin(lua_State *L)
{
    unsigned char out[MP_SHA1_LEN];
    const char *s;
    size_t len;

    s = arg_tostring(L, 1, &len);
    digest(L, fetch_md(L, &sha1_md, "SHA1"), s, len, out);
    lua_pushlstring(L, (const char *) out, sizeof(out));
    return 1;
}


/* The HMAC context keeps its SHA1 digest; each call only sets a key. */
static EVP_MAC_CTX *
hmac_sha1_ctx(lua_State *L)
{
    OSSL_PARAM params[2];
    EVP_MAC *mac;

    if (hmac_ctx != NULL) {
        return hmac_ctx;
    }
    mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (mac == NULL) {
        luaL_error(L, "HMAC support missing in OpenSSL");
    }
    hmac_ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context holds its own reference */
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA1", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (hmac_ctx == NULL || !EVP_MAC_CTX_set_params(hmac_ctx, params)) {
        EVP_MAC_CTX_free(hmac_ctx);
        hmac_ctx = NULL;
        luaL_error(L, "HMAC-SHA1 setup failed");
    }
    return hmac_ctx;
}


static int
string_hmac_sha1(lua_State *L)
{
    unsigned char out[MP_SHA1_LEN];
    const char *key, *s;
    size_t klen, len, outlen;
    EVP_MAC_CTX *ctx;

    if (lua_gettop(L) != 2) {
        return luaL_error(L, "expecting 2 arguments, but got %d",
                          lua_gettop(L));
    }
    key = luaL_checklstring(L, 1, &klen);
    s = luaL_checklstring(L, 2, &len);
    ctx = hmac_sha1_ctx(L);
    if (!EVP_MAC_init(ctx, (const unsigned char *) key, klen, NULL)
        || !EVP_MAC_update(ctx, (const unsigned char *) s, len)
        || !EVP_MAC_final(ctx, out, &outlen, sizeof(out)))
    {
        return luaL_error(L, "HMAC-SHA1 failed");
    }
    lua_pushlstring(L, (const char *) out, outlen);
    return 1;
}


/*
 * nginx has two CRC32 tables (a 16-entry one for short inputs and a
 * 256-entry one); both compute the same zlib-compatible CRC32.
 */
static int
string_crc32(lua_State *L)
{
    const char *s;
    size_t len;
    uLong crc = crc32(0L, Z_NULL, 0);

    s = arg_tostring(L, 1, &len);
    /* zlib takes a uInt length: feed a huge string in slices. */
    while (len > 0) {
        uInt n = len > 0x40000000 ? 0x40000000 : (uInt) len;

        crc = crc32(crc, (const Bytef *) s, n);
        s += n;
        len -= n;
    }
    lua_pushnumber(L, (lua_Number) crc);
    return 1;
}


/* -------------------------------------------------------------------- SQL */

/* MySQL escapes: \0 \b \n \r \t \Z (0x1a) \\ \' \", each as backslash + c. */
static char
sql_escape(unsigned char c)
{
    switch (c) {
    case '\0':
        return '0';
    case '\b':
        return 'b';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    case 0x1a:
        return 'Z';
    case '\\':
    case '\'':
    case '"':
        return (char) c;
    default:
        return 0;
    }
}


static int
string_quote_sql_str(lua_State *L)
{
    const unsigned char *s;
    size_t len, i;
    char *buf, *d, e;

    if (lua_gettop(L) != 1) {
        return luaL_error(L, "expecting one argument");
    }
    s = (const unsigned char *) luaL_checklstring(L, 1, &len);
    buf = mp_lua_scratch(2 * len + 2);
    d = buf;
    *d++ = '\'';
    for (i = 0; i < len; i++) {
        e = sql_escape(s[i]);
        if (e != 0) {
            *d++ = '\\';
            *d++ = e;
        } else {
            *d++ = (char) s[i];
        }
    }
    *d++ = '\'';
    lua_pushlstring(L, buf, (size_t) (d - buf));
    return 1;
}


/* ------------------------------------------------------------- injection */

/* Functions that coerce their argument with tostring (upvalue 1). */
static const luaL_Reg string_coercing_funcs[] = {
    { "escape_uri", string_escape_uri },
    { "unescape_uri", string_unescape_uri },
    { "encode_base64", string_encode_base64 },
    { "md5", string_md5 },
    { "md5_bin", string_md5_bin },
    { "sha1_bin", string_sha1_bin },
    { "crc32_short", string_crc32 },
    { "crc32_long", string_crc32 },
    { NULL, NULL },
};

static const luaL_Reg string_funcs[] = {
    { "encode_args", string_encode_args },
    { "decode_args", string_decode_args },
    { "decode_base64", string_decode_base64 },
    { "hmac_sha1", string_hmac_sha1 },
    { "quote_sql_str", string_quote_sql_str },
    { NULL, NULL },
};


static void
build_basis(unsigned char *basis, const char *alphabet)
{
    int i;

    memset(basis, 0xff, 256);
    for (i = 0; i < 64; i++) {
        basis[(unsigned char) alphabet[i]] = (unsigned char) i;
    }
}


void
mp_lua_inject_string_api(lua_State *L)
{
    const luaL_Reg *f;

    build_basis(b64_std_basis, b64_std);
    build_basis(b64_url_basis, b64_url);

    for (f = string_coercing_funcs; f->name != NULL; f++) {
        lua_getglobal(L, "tostring");
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
    for (f = string_funcs; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open_ngx_base64);
    lua_setfield(L, -2, "ngx.base64");
    lua_pop(L, 2);
}
