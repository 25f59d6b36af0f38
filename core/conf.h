/*
 * conf.h: the configuration snapshot. master/config.c builds it from YAML;
 * after mp_conf_load() returns it is immutable, and workers read it without
 * locks (each worker has its forked copy). Every piece of it lives in
 * conf->pool, so mp_conf_destroy() is one call.
 *
 * The types live in core/ so that worker/, shm/ and lua/ can read the
 * snapshot without including master/.
 */
#ifndef MP_CONF_H
#define MP_CONF_H

#include "core/mp_core.h"
#include "core/pool.h"

#include <sys/socket.h>

/* Request phases, in the order a request walks them. */
typedef enum {
    MP_PHASE_REWRITE = 0,
    MP_PHASE_ACCESS,
    MP_PHASE_CONTENT,
    MP_PHASE_HEADER_FILTER,
    MP_PHASE_BODY_FILTER,
    MP_PHASE_LOG,
    MP_PHASE_MAX
} mp_phase_t;

/* The YAML key of each phase ("rewrite", ..., "log"); index mp_phase_t. */
extern const char *const mp_phase_names[MP_PHASE_MAX];

/* A position in a config file, for error messages. */
typedef struct {
    const char *file;
    int line;   /* 1-based */
    int column; /* 1-based */
} mp_conf_pos_t;

/*
 * A Lua handler: inline code or the contents of {file: path}. The Lua layer
 * compiles it once at load time and stores the registry reference in ref.
 */
typedef struct {
    mp_str_t code;       /* source, NUL-terminated */
    const char *chunk;   /* chunk name for tracebacks, e.g. "=content(/api)" */
    const char *path;    /* absolute path for {file:}, NULL when inline */
    mp_conf_pos_t pos;   /* where the handler is written in the config */
    int ref;             /* LUA_NOREF (-2) until compiled */
} mp_conf_handler_t;

typedef enum {
    MP_MATCH_PREFIX = 0, /* "/api/"     longest prefix, after regexes */
    MP_MATCH_EXACT,      /* "= /x"      exact URI */
    MP_MATCH_PREFIX_STOP,/* "^~ /img/"  longest prefix, skips regexes */
    MP_MATCH_REGEX,      /* "~ \.php$"  PCRE2, in config order */
    MP_MATCH_REGEX_ICASE /* "~* \.PNG$" PCRE2, caseless */
} mp_match_kind_t;

typedef struct {
    mp_match_kind_t kind;
    mp_str_t pattern;   /* without the modifier, NUL-terminated */
    void *re;           /* pcre2_code * for the regex kinds, else NULL */
    mp_conf_handler_t *handlers[MP_PHASE_MAX]; /* NULL: no handler */
    mp_conf_pos_t pos;
    int index;          /* position in its server, for metrics/logs */
} mp_conf_location_t;

typedef struct mp_conf_server_s mp_conf_server_t;

/*
 * One listening address. Servers sharing an address share one socket; the
 * first server that lists it is the default for Host values nobody names.
 */
typedef struct {
    struct sockaddr_storage sa;
    socklen_t socklen;
    char text[64];             /* "127.0.0.1:8080", "[::1]:8080" */
    mp_conf_server_t **servers; /* in config order; servers[0] = default */
    size_t nservers;
    int fd;                    /* set by the master when opened, else -1 */
} mp_conf_listen_t;

struct mp_conf_server_s {
    mp_str_t *names;            /* "example.com", "*.example.com" */
    size_t nnames;
    mp_conf_location_t *locations; /* in config order */
    size_t nlocations;
    const char *tls_certificate; /* absolute paths, NULL without tls */
    const char *tls_key;
    mp_conf_pos_t pos;
    int index;
};

typedef struct {
    mp_str_t name;
    size_t size;
    mp_conf_pos_t pos;
    void *dict;  /* mp_dict_t *, set by the master before fork */
} mp_conf_dict_t;

typedef struct {
    mp_pool_t *pool;
    const char *file;    /* absolute path of the config file */
    const char *prefix;  /* its directory, with a trailing '/' */

    struct {
        int workers;                 /* "auto" resolved to the CPU count */
        const char *pid_file;        /* NULL: none */
        const char *user;            /* NULL: keep the current user */
        mp_msec_t shutdown_timeout;
        int max_connections;         /* per worker */
        mp_msec_t watchdog_timeout;  /* kill a worker stuck so long; 0: off */
    } cluster;

    struct {
        const char *error;           /* "stderr" or an absolute path */
        int level;                   /* MP_LOG_* */
        const char *access;          /* NULL when off */
    } log;

    struct {
        const char *package_path;    /* NULL: LuaJIT's default */
        const char *package_cpath;
        mp_conf_handler_t *init;     /* NULL when absent */
        mp_conf_handler_t *init_worker;
        const char **resolvers;      /* "ip[:port]"; none: resolv.conf */
        size_t nresolvers;
        mp_msec_t resolver_timeout;  /* a whole DNS query */
        const char *ssl_trusted_certificate; /* CA file; NULL: none */
        int ssl_verify_depth;
        mp_msec_t socket_connect_timeout; /* cosocket defaults */
        mp_msec_t socket_send_timeout;
        mp_msec_t socket_read_timeout;
        mp_msec_t socket_keepalive_timeout;
        int socket_pool_size;
        size_t socket_buffer_size;
    } lua;

    struct {
        mp_msec_t client_header_timeout;
        mp_msec_t client_body_timeout;
        mp_msec_t send_timeout;
        mp_msec_t keepalive_timeout;
        size_t client_max_body_size;
        size_t large_header_buffer;
        size_t client_body_buffer_size; /* larger bodies go to a file */
        const char *client_body_temp_path; /* directory of those files */
    } http;

    mp_conf_dict_t *dicts;
    size_t ndicts;

    mp_conf_server_t *servers;
    size_t nservers;

    mp_conf_listen_t *listens;  /* unique addresses over all servers */
    size_t nlistens;

    void *stats;                /* mp_stats_board_t, mapped by the master */
    size_t stats_size;
} mp_conf_t;

#endif /* MP_CONF_H */
