/*
 * config.h: loading the YAML config file into the immutable snapshot that
 * core/conf.h describes. The master calls mp_conf_load() at start-up, for
 * "moonpool -t" and on every HUP; a failed load leaves nothing behind, so
 * the caller simply keeps the config it already has.
 *
 * The loader is pure C: it reads Lua handler sources (inline or from
 * {file: path}) but compiles nothing; the Lua layer compiles handlers later
 * and stores the references in mp_conf_handler_t.ref. Regexes of locations
 * are compiled here (PCRE2) because a bad regex is a config error.
 */
#ifndef MP_CONFIG_H
#define MP_CONFIG_H

#include "core/mp_core.h"
#include "core/conf.h"

/*
 * Reads and checks the config file at path and returns a new snapshot, or
 * NULL on error with a NUL-terminated message in err[0..errlen):
 *
 *   FILE:LINE:COLUMN: message
 *
 * where FILE is path as given, LINE and COLUMN are 1-based and point at the
 * offending YAML node (for a missing key: the mapping that lacks it). An
 * error without a position (the file cannot be opened, or is a directory)
 * is written as "open() "FILE" failed (errno: reason)" or "read() ...".
 *
 * Everything in the snapshot, conf itself included, lives in conf->pool;
 * compiled regexes are freed by cleanups on that pool. conf->file is the
 * absolute path and conf->prefix its directory with a trailing '/'; every
 * relative path of the file (pid_file, log files, handler files, tls) is
 * resolved against conf->prefix. Handlers start with ref == -2 (LUA_NOREF)
 * and listeners with fd == -1.
 *
 * Not thread-safe (the master is single-threaded); does not log.
 */
mp_conf_t *mp_conf_load(const char *path, char *err, size_t errlen);

/* Frees a snapshot and everything in it; NULL is a no-op. */
void mp_conf_destroy(mp_conf_t *conf);

/*
 * Parses a size in bytes: decimal digits with an optional k/K (1024),
 * m/M (1024^2) or g/G (1024^3) suffix. Nothing else is accepted (no sign,
 * no spaces, no fraction). Returns MP_OK with *out set, or MP_ERROR on
 * junk, an empty string or overflow.
 */
int mp_conf_parse_size(const char *s, size_t len, size_t *out);

/*
 * Parses a duration into milliseconds, nginx style: either a bare number of
 * seconds ("30"), or one or more number+unit parts with units ms, s, m, h
 * and d in decreasing order, each at most once ("500ms", "1m30s", "1h").
 * Returns MP_OK with *out set, or MP_ERROR on junk, an empty string or
 * overflow.
 */
int mp_conf_parse_duration(const char *s, size_t len, mp_msec_t *out);

#endif /* MP_CONFIG_H */
