/*
 * util.h: small helpers shared by the lua/api_*.c files: OpenResty's
 * unescaping of query-string components, ASCII case folding, and a
 * per-process scratch buffer so that hot paths never malloc per call.
 *
 * Nothing here touches a lua_State except mp_lua_set_multi_value().
 */
#ifndef MP_LUA_UTIL_H
#define MP_LUA_UTIL_H

#include "core/mp_core.h"

#include <lua.h>

/*
 * Unescapes one key or value of a query string the way OpenResty does:
 * '+' becomes ' ', "%XX" with two hex digits becomes that byte, and a '%'
 * not followed by two hex digits is kept as is. dst may equal src (the
 * output is never longer than the input). Returns the output length.
 */
size_t mp_lua_unescape_arg(char *dst, const char *src, size_t len);

/*
 * A buffer of at least size bytes, owned by this module and reused by the
 * next call (it only grows). Never NULL (OOM aborts, see mp_alloc). The
 * contents do not survive a call back into Lua that may use it again, so
 * push the result before calling anything that might.
 */
char *mp_lua_scratch(size_t size);

/*
 * Formats a number the way lua-nginx-module's ngx.say/ngx.print/ngx.log
 * do, which differs from tostring(): a value that fits an int32 is printed
 * as an integer (so -0 prints "0"), anything else with "%.14g". buf needs
 * MP_LUA_NUM_LEN bytes; returns the length (no NUL counted).
 */
#define MP_LUA_NUM_LEN 32
size_t mp_lua_format_number(double n, char *buf);

/* ASCII lower case of one byte. */
static inline unsigned char
mp_lua_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c | 0x20) : c;
}

/*
 * With a key and a value on the top of the stack, stores them in the table
 * at index t (an absolute index) OpenResty's way: a first value is stored
 * as is, a second one turns the entry into an array {first, second}, and
 * later ones are appended. Pops the key and the value.
 */
void mp_lua_set_multi_value(lua_State *L, int t);

#endif /* MP_LUA_UTIL_H */
