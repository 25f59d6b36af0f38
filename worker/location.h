/*
 * location.h: which server and which location serve a request.
 *
 * worker/http.c calls mp_location_find_server() once the Host header is
 * known, then mp_location_find() with the request's path; both read the
 * immutable config snapshot and return borrowed pointers into it, valid as
 * long as that snapshot.
 *
 * Regex locations match through one pcre2_match_data per process, created
 * on first use, so a lookup allocates nothing. A worker is single-threaded,
 * which makes that sharing safe; these functions are not thread-safe.
 */
#ifndef MP_LOCATION_H
#define MP_LOCATION_H

#include "core/mp_core.h"
#include "core/conf.h"

/*
 * The server of listener ls for host[0..len): lowercased, without the port
 * (the caller strips and folds it). In nginx's order: an exact name, then
 * the longest leading wildcard ("*.example.com" matches "a.example.com" and
 * "a.b.example.com", not "example.com"), then the longest trailing wildcard
 * ("www.example.*"), else the default server ls->servers[0]. len == 0 gives
 * the default server. Never NULL.
 */
const mp_conf_server_t *mp_location_find_server(const mp_conf_listen_t *ls,
                                                const char *host, size_t len);

/*
 * The location of srv for the path uri[0..len) (decoded, without the query
 * string), in nginx's order: an "=" exact match wins at once; otherwise the
 * longest matching prefix (plain or "^~") is remembered, and if it is "^~"
 * it is the answer; otherwise the regexes ("~", "~*") are tried in config
 * order and the first match wins; otherwise the longest plain prefix.
 * Returns NULL when nothing matches (the caller answers 404).
 */
const mp_conf_location_t *mp_location_find(const mp_conf_server_t *srv,
                                           const char *uri, size_t len);

/*
 * Frees the process's regex match data (created again if needed). The
 * worker's exit path calls it so that valgrind sees no leak.
 */
void mp_location_cleanup(void);

#endif /* MP_LOCATION_H */
