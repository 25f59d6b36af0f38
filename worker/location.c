/*
 * location.c: server selection by Host and location selection by path, in
 * nginx's order (see location.h).
 *
 * Both walk the config's arrays linearly. Servers per listener and
 * locations per server are few in practice, and a linear walk over arrays
 * that sit in one pool is cheaper than hashing for a handful of entries;
 * if configs with hundreds of names appear, a hash built at load time
 * belongs in master/config.c, not here.
 */
#include "core/mp_core.h"
#include "core/conf.h"
#include "core/log.h"
#include "worker/location.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <pcre2.h>

/*
 * One ovector pair is enough: only "did it match" matters here (a match
 * that does not fit the ovector still returns 0, not an error). Captures
 * for ngx.re live elsewhere.
 */
static pcre2_match_data *match_data;


void
mp_location_cleanup(void)
{
    if (match_data != NULL) {
        pcre2_match_data_free(match_data);
        match_data = NULL;
    }
}


/* How well name matches host: 0 none, else a rank (bigger is better). */
static size_t
name_rank(const mp_str_t *name, const char *host, size_t len, int *kind)
{
    size_t n = name->len;

    if (n >= 2 && name->data[0] == '*') {
        /* "*.example.com": a non-empty label must precede ".example.com". */
        *kind = 1;
        if (len > n - 1
            && memcmp(host + len - (n - 1), name->data + 1, n - 1) == 0) {
            return n;
        }
        return 0;
    }
    if (n >= 2 && name->data[n - 1] == '*') {
        /* "www.example.*": something must follow "www.example.". */
        *kind = 2;
        if (len > n - 1 && memcmp(host, name->data, n - 1) == 0) {
            return n;
        }
        return 0;
    }
    *kind = 0;
    return n == len && memcmp(host, name->data, n) == 0;
}


const mp_conf_server_t *
mp_location_find_server(const mp_conf_listen_t *ls, const char *host,
                        size_t len)
{
    const mp_conf_server_t *best[3] = { NULL, NULL, NULL };
    size_t best_rank[3] = { 0, 0, 0 };
    const mp_conf_server_t *srv;
    size_t i, j, rank;
    int kind;

    /* one server on the address: it answers every Host */
    if (len == 0 || ls->nservers == 1) {
        return ls->servers[0];
    }
    for (i = 0; i < ls->nservers; i++) {
        srv = ls->servers[i];
        for (j = 0; j < srv->nnames; j++) {
            rank = name_rank(&srv->names[j], host, len, &kind);
            if (rank == 0) {
                continue;
            }
            if (kind == 0) {
                return srv;
            }
            /* Strictly longer: on a tie the first in config order stays. */
            if (rank > best_rank[kind]) {
                best_rank[kind] = rank;
                best[kind] = srv;
            }
        }
    }
    if (best[1] != NULL) {
        return best[1];
    }
    if (best[2] != NULL) {
        return best[2];
    }
    return ls->servers[0];
}


static int
regex_matches(const mp_conf_location_t *loc, const char *uri, size_t len)
{
    int rc;

    if (match_data == NULL) {
        match_data = pcre2_match_data_create(1, NULL);
        if (match_data == NULL) {
            /* Out of heap: as fatal as any other allocation in a worker. */
            mp_log_error(MP_LOG_ALERT, 0, "pcre2_match_data_create() failed");
            abort();
        }
    }
    rc = pcre2_match(loc->re, (PCRE2_SPTR) uri, len, 0, 0, match_data, NULL);
    return rc >= 0;
}


const mp_conf_location_t *
mp_location_find(const mp_conf_server_t *srv, const char *uri, size_t len)
{
    const mp_conf_location_t *loc, *prefix = NULL;
    size_t i;

    for (i = 0; i < srv->nlocations; i++) {
        loc = &srv->locations[i];
        switch (loc->kind) {
        case MP_MATCH_EXACT:
            if (loc->pattern.len == len
                && memcmp(loc->pattern.data, uri, len) == 0) {
                return loc;
            }
            break;
        case MP_MATCH_PREFIX:
        case MP_MATCH_PREFIX_STOP:
            if (loc->pattern.len <= len
                && memcmp(loc->pattern.data, uri, loc->pattern.len) == 0
                && (prefix == NULL || loc->pattern.len > prefix->pattern.len)) {
                prefix = loc;
            }
            break;
        default:
            break;
        }
    }
    if (prefix != NULL && prefix->kind == MP_MATCH_PREFIX_STOP) {
        return prefix;
    }
    for (i = 0; i < srv->nlocations; i++) {
        loc = &srv->locations[i];
        if ((loc->kind == MP_MATCH_REGEX || loc->kind == MP_MATCH_REGEX_ICASE)
            && regex_matches(loc, uri, len)) {
            return loc;
        }
    }
    return prefix;
}
