/*
 * test_config.c: master/config.c. Each test writes YAML (and Lua files)
 * into a fresh directory under /tmp, loads it through mp_conf_load() and
 * checks the snapshot, or the exact "FILE:LINE:COLUMN: message" of the
 * error. The directory is removed at the end of each test.
 */
#include "core/mp_core.h"
#include "core/conf.h"
#include "core/log.h"
#include "master/config.h"
#include "runner.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char tdir[64];
static char created[16][PATH_MAX];
static int ncreated;
static char errbuf[1024];
static char conf_path[PATH_MAX];


static void
tmp_begin(void)
{
    strcpy(tdir, "/tmp/mp_conf_XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tdir));
    ncreated = 0;
}


/* Writes tdir/name (creating one level of directory) and remembers it. */
static void
tmp_write(const char *name, const char *content)
{
    char path[PATH_MAX], *slash;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tdir, name);
    slash = strrchr(path, '/');
    if (slash > path + strlen(tdir)) {
        *slash = '\0';
        if (mkdir(path, 0755) == 0) {
            strcpy(created[ncreated++], path);
        }
        *slash = '/';
    }
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(content, f);
    fclose(f);
    strcpy(created[ncreated++], path);
}


static void
tmp_end(void)
{
    while (ncreated > 0) {
        remove(created[--ncreated]);
    }
    rmdir(tdir);
}


static mp_conf_t *
load(const char *yaml)
{
    tmp_write("moonpool.yaml", yaml);
    snprintf(conf_path, sizeof(conf_path), "%s/moonpool.yaml", tdir);
    return mp_conf_load(conf_path, errbuf, sizeof(errbuf));
}


/* A path under the test directory, for comparisons. */
static const char *
in_tdir(const char *name)
{
    static char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", tdir, name);
    return path;
}


typedef struct {
    const char *yaml;
    int line;
    int column;
    const char *message; /* a substring of the message after the position */
} error_case_t;


static void
check_errors(const error_case_t *cases, size_t n)
{
    char prefix[PATH_MAX + 32];
    mp_conf_t *conf;
    size_t i;
    int ok;

    for (i = 0; i < n; i++) {
        tmp_begin();
        conf = load(cases[i].yaml);
        CU_ASSERT_PTR_NULL(conf);
        mp_conf_destroy(conf);
        snprintf(prefix, sizeof(prefix), "%s:%d:%d: ", conf_path,
                 cases[i].line, cases[i].column);
        ok = strncmp(errbuf, prefix, strlen(prefix)) == 0
             && strstr(errbuf + strlen(prefix), cases[i].message) != NULL;
        if (!ok) {
            fprintf(stderr, "\n  case %zu: got \"%s\"\n  want \"%s%s\"\n", i,
                    errbuf, prefix, cases[i].message);
        }
        CU_ASSERT(ok);
        tmp_end();
    }
}


static void
test_config_defaults(void)
{
    mp_conf_t *conf;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct sockaddr_in *sin;

    tmp_begin();
    conf = load("servers:\n  - listen: 8080\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_STRING_EQUAL(conf->file, in_tdir("moonpool.yaml"));
    CU_ASSERT_STRING_EQUAL(conf->prefix, in_tdir(""));
    CU_ASSERT_EQUAL(conf->cluster.workers, (int) mp_min(mp_max(cpus, 1), 1024));
    CU_ASSERT_PTR_NULL(conf->cluster.pid_file);
    CU_ASSERT_PTR_NULL(conf->cluster.user);
    CU_ASSERT_EQUAL(conf->cluster.shutdown_timeout, 30000);
    CU_ASSERT_EQUAL(conf->cluster.max_connections, 10240);
    CU_ASSERT_STRING_EQUAL(conf->log.error, "stderr");
    CU_ASSERT_EQUAL(conf->log.level, MP_LOG_NOTICE);
    CU_ASSERT_PTR_NULL(conf->log.access);
    CU_ASSERT_PTR_NULL(conf->lua.package_path);
    CU_ASSERT_PTR_NULL(conf->lua.package_cpath);
    CU_ASSERT_PTR_NULL(conf->lua.init);
    CU_ASSERT_PTR_NULL(conf->lua.init_worker);
    CU_ASSERT_EQUAL(conf->http.client_header_timeout, 60000);
    CU_ASSERT_EQUAL(conf->http.client_body_timeout, 60000);
    CU_ASSERT_EQUAL(conf->http.send_timeout, 60000);
    CU_ASSERT_EQUAL(conf->http.keepalive_timeout, 75000);
    CU_ASSERT_EQUAL(conf->http.client_max_body_size, 1024 * 1024);
    CU_ASSERT_EQUAL(conf->http.large_header_buffer, 8192);
    CU_ASSERT_EQUAL(conf->ndicts, 0);
    CU_ASSERT_EQUAL_FATAL(conf->nservers, 1);
    CU_ASSERT_EQUAL(conf->servers[0].nnames, 0);
    CU_ASSERT_EQUAL(conf->servers[0].nlocations, 0);
    CU_ASSERT_PTR_NULL(conf->servers[0].tls_certificate);
    CU_ASSERT_EQUAL(conf->servers[0].pos.line, 2);
    CU_ASSERT_EQUAL(conf->servers[0].pos.column, 5);
    CU_ASSERT_EQUAL_FATAL(conf->nlistens, 1);
    CU_ASSERT_STRING_EQUAL(conf->listens[0].text, "0.0.0.0:8080");
    CU_ASSERT_EQUAL(conf->listens[0].fd, -1);
    CU_ASSERT_EQUAL(conf->listens[0].socklen, sizeof(struct sockaddr_in));
    sin = (struct sockaddr_in *) &conf->listens[0].sa;
    CU_ASSERT_EQUAL(sin->sin_family, AF_INET);
    CU_ASSERT_EQUAL(ntohs(sin->sin_port), 8080);
    CU_ASSERT_EQUAL(sin->sin_addr.s_addr, htonl(INADDR_ANY));
    CU_ASSERT_EQUAL_FATAL(conf->listens[0].nservers, 1);
    CU_ASSERT_PTR_EQUAL(conf->listens[0].servers[0], &conf->servers[0]);
    mp_conf_destroy(conf);
    tmp_end();
}


static void
test_config_every_key(void)
{
    mp_conf_t *conf;

    tmp_begin();
    tmp_write("lua/worker.lua", "print('worker')\n");
    conf = load("cluster:\n"
                "  workers: 3\n"
                "  pid_file: run/moonpool.pid\n"
                "  user: www-data\n"
                "  shutdown_timeout: 1m30s\n"
                "  max_connections: 100\n"
                "log:\n"
                "  error: logs/error.log\n"
                "  level: info\n"
                "  access: /var/log/access.log\n"
                "shared_dicts:\n"
                "  cache: 64m\n"
                "  locks: 16k\n"
                "lua:\n"
                "  package_path: \"lua/?.lua;;\"\n"
                "  package_cpath: \"\"\n"
                "  init: |\n"
                "    cjson = 1\n"
                "  init_worker: { file: lua/worker.lua }\n"
                "http:\n"
                "  client_header_timeout: 10s\n"
                "  client_body_timeout: 500ms\n"
                "  send_timeout: 5m\n"
                "  keepalive_timeout: 1h\n"
                "  client_max_body_size: 2g\n"
                "  large_header_buffer: 1k\n"
                "servers:\n"
                "  - listen: \"127.0.0.1:80\"\n"
                "    tls:\n"
                "      certificate: /etc/cert.pem\n"
                "      key: ./tls/key.pem\n");
    if (conf == NULL) {
        fprintf(stderr, "\n  %s\n", errbuf);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_EQUAL(conf->cluster.workers, 3);
    CU_ASSERT_STRING_EQUAL(conf->cluster.pid_file, in_tdir("run/moonpool.pid"));
    CU_ASSERT_STRING_EQUAL(conf->cluster.user, "www-data");
    CU_ASSERT_EQUAL(conf->cluster.shutdown_timeout, 90000);
    CU_ASSERT_EQUAL(conf->cluster.max_connections, 100);
    CU_ASSERT_STRING_EQUAL(conf->log.error, in_tdir("logs/error.log"));
    CU_ASSERT_EQUAL(conf->log.level, MP_LOG_INFO);
    CU_ASSERT_STRING_EQUAL(conf->log.access, "/var/log/access.log");
    CU_ASSERT_EQUAL_FATAL(conf->ndicts, 2);
    CU_ASSERT_STRING_EQUAL(conf->dicts[0].name.data, "cache");
    CU_ASSERT_EQUAL(conf->dicts[0].name.len, 5);
    CU_ASSERT_EQUAL(conf->dicts[0].size, 64 * 1024 * 1024);
    CU_ASSERT_EQUAL(conf->dicts[0].pos.line, 12);
    CU_ASSERT_EQUAL(conf->dicts[0].pos.column, 3);
    CU_ASSERT_STRING_EQUAL(conf->dicts[1].name.data, "locks");
    CU_ASSERT_EQUAL(conf->dicts[1].size, 16 * 1024);
    CU_ASSERT_STRING_EQUAL(conf->lua.package_path, "lua/?.lua;;");
    CU_ASSERT_STRING_EQUAL(conf->lua.package_cpath, "");
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf->lua.init);
    CU_ASSERT_STRING_EQUAL(conf->lua.init->code.data, "cjson = 1\n");
    CU_ASSERT_STRING_EQUAL(conf->lua.init->chunk,
                           "=init_by_lua(moonpool.yaml:17)");
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf->lua.init_worker);
    CU_ASSERT_STRING_EQUAL(conf->lua.init_worker->code.data,
                           "print('worker')\n");
    CU_ASSERT_EQUAL(conf->lua.init_worker->code.len, 16);
    CU_ASSERT_STRING_EQUAL(conf->lua.init_worker->path,
                           in_tdir("lua/worker.lua"));
    CU_ASSERT_EQUAL(conf->http.client_header_timeout, 10000);
    CU_ASSERT_EQUAL(conf->http.client_body_timeout, 500);
    CU_ASSERT_EQUAL(conf->http.send_timeout, 300000);
    CU_ASSERT_EQUAL(conf->http.keepalive_timeout, 3600000);
    CU_ASSERT_EQUAL(conf->http.client_max_body_size,
                    (size_t) 2 * 1024 * 1024 * 1024);
    CU_ASSERT_EQUAL(conf->http.large_header_buffer, 1024);
    CU_ASSERT_EQUAL_FATAL(conf->nservers, 1);
    CU_ASSERT_STRING_EQUAL(conf->servers[0].tls_certificate, "/etc/cert.pem");
    CU_ASSERT_STRING_EQUAL(conf->servers[0].tls_key, in_tdir("tls/key.pem"));
    CU_ASSERT_STRING_EQUAL(conf->listens[0].text, "127.0.0.1:80");
    mp_conf_destroy(conf);
    tmp_end();
}


static void
test_config_workers_auto_and_access_off(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    mp_conf_t *conf;

    tmp_begin();
    conf = load("cluster: { workers: auto }\n"
                "log: { access: off, error: stderr, level: debug }\n"
                "shared_dicts: {}\n"
                "servers: [ { listen: [ 8080 ] } ]\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_EQUAL(conf->cluster.workers, (int) mp_min(mp_max(cpus, 1), 1024));
    CU_ASSERT_PTR_NULL(conf->log.access);
    CU_ASSERT_STRING_EQUAL(conf->log.error, "stderr");
    CU_ASSERT_EQUAL(conf->log.level, MP_LOG_DEBUG);
    CU_ASSERT_EQUAL(conf->ndicts, 0);
    mp_conf_destroy(conf);
    tmp_end();
}


static void
test_config_listen_forms(void)
{
    struct sockaddr_in6 *sin6;
    struct sockaddr_in *sin;
    struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
    mp_conf_t *conf;
    size_t i;
    static const char *texts[] = {
        "127.0.0.1:8080", "[::1]:8080", "[::]:8081", "0.0.0.0:8082",
        "0.0.0.0:8083",   "0.0.0.0:8084", "10.1.2.3:65535",
    };

    tmp_begin();
    conf = load("servers:\n"
                "  - listen: [\"127.0.0.1:8080\", \"[::1]:8080\",\n"
                "             \"[::]:8081\", \"*:8082\", \"0.0.0.0:8083\",\n"
                "             8084,\n"
                "             \"10.1.2.3:65535\"]\n"
                "  - listen: \"[0:0::1]:8080\"\n"
                "    server_names: b.com\n"
                "  - listen: [8084, \"127.0.0.1:8080\"]\n"
                "    server_names: [c.com]\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_EQUAL_FATAL(conf->nlistens, 7);
    for (i = 0; i < 7; i++) {
        CU_ASSERT_STRING_EQUAL(conf->listens[i].text, texts[i]);
        CU_ASSERT_EQUAL(conf->listens[i].fd, -1);
        CU_ASSERT_PTR_EQUAL(conf->listens[i].servers[0], &conf->servers[0]);
    }
    sin6 = (struct sockaddr_in6 *) &conf->listens[1].sa;
    CU_ASSERT_EQUAL(sin6->sin6_family, AF_INET6);
    CU_ASSERT_EQUAL(ntohs(sin6->sin6_port), 8080);
    CU_ASSERT(memcmp(&sin6->sin6_addr, &lo6, sizeof(lo6)) == 0);
    CU_ASSERT_EQUAL(conf->listens[1].socklen, sizeof(struct sockaddr_in6));
    sin = (struct sockaddr_in *) &conf->listens[0].sa;
    CU_ASSERT_EQUAL(sin->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    /* "[0:0::1]:8080" is "[::1]:8080": merged, in config order. */
    CU_ASSERT_EQUAL_FATAL(conf->listens[1].nservers, 2);
    CU_ASSERT_PTR_EQUAL(conf->listens[1].servers[1], &conf->servers[1]);
    CU_ASSERT_EQUAL_FATAL(conf->listens[0].nservers, 2);
    CU_ASSERT_PTR_EQUAL(conf->listens[0].servers[1], &conf->servers[2]);
    CU_ASSERT_EQUAL_FATAL(conf->listens[5].nservers, 2);
    CU_ASSERT_PTR_EQUAL(conf->listens[5].servers[1], &conf->servers[2]);
    CU_ASSERT_EQUAL(conf->listens[2].nservers, 1);
    CU_ASSERT_EQUAL(conf->servers[2].index, 2);
    mp_conf_destroy(conf);
    tmp_end();
}


static void
test_config_server_names(void)
{
    mp_conf_server_t *srv;
    mp_conf_t *conf;

    tmp_begin();
    conf = load("servers:\n"
                "  - listen: 80\n"
                "    server_names: [Example.COM, \"*.Example.com\", "
                "\"www.example.*\", localhost]\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    srv = &conf->servers[0];
    CU_ASSERT_EQUAL_FATAL(srv->nnames, 4);
    CU_ASSERT_STRING_EQUAL(srv->names[0].data, "example.com");
    CU_ASSERT_EQUAL(srv->names[0].len, 11);
    CU_ASSERT_STRING_EQUAL(srv->names[1].data, "*.example.com");
    CU_ASSERT_STRING_EQUAL(srv->names[2].data, "www.example.*");
    CU_ASSERT_STRING_EQUAL(srv->names[3].data, "localhost");
    mp_conf_destroy(conf);
    tmp_end();
}


static void
test_config_match_kinds(void)
{
    static const struct {
        mp_match_kind_t kind;
        const char *pattern;
    } want[] = {
        { MP_MATCH_EXACT, "/health" },  { MP_MATCH_PREFIX_STOP, "/img/" },
        { MP_MATCH_REGEX, "\\.php$" },  { MP_MATCH_REGEX_ICASE, "\\.PNG$" },
        { MP_MATCH_PREFIX, "/api/" },   { MP_MATCH_EXACT, "/x" },
        { MP_MATCH_PREFIX, "/" },
    };
    mp_conf_location_t *loc;
    mp_conf_t *conf;
    size_t i;

    tmp_begin();
    conf = load("servers:\n"
                "  - listen: 80\n"
                "    locations:\n"
                "      - match: \"= /health\"\n"
                "      - match: ^~ /img/\n"
                "      - match: '~ \\.php$'\n"
                "      - match: ~*   \\.PNG$\n"
                "      - match: /api/\n"
                "      - match: =/x\n"
                "      - match: /\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_EQUAL_FATAL(conf->servers[0].nlocations, mp_nelems(want));
    for (i = 0; i < mp_nelems(want); i++) {
        loc = &conf->servers[0].locations[i];
        CU_ASSERT_EQUAL(loc->kind, want[i].kind);
        CU_ASSERT_STRING_EQUAL(loc->pattern.data, want[i].pattern);
        CU_ASSERT_EQUAL(loc->pattern.len, strlen(want[i].pattern));
        CU_ASSERT_EQUAL(loc->index, (int) i);
        CU_ASSERT_EQUAL(loc->pos.line, (int) i + 4);
        CU_ASSERT_EQUAL(loc->pos.column, 9);
        CU_ASSERT((loc->re != NULL)
                  == (want[i].kind == MP_MATCH_REGEX
                      || want[i].kind == MP_MATCH_REGEX_ICASE));
    }
    mp_conf_destroy(conf);
    tmp_end();
}


static void
test_config_handlers(void)
{
    mp_conf_location_t *loc;
    mp_conf_handler_t *h;
    mp_conf_t *conf;
    int p;

    tmp_begin();
    tmp_write("app/api.lua", "ngx.say('api')\n");
    tmp_write("auth.lua", "return\n");
    conf = load("servers:\n"
                "  - listen: 80\n"
                "    locations:\n"
                "      - match: /api/\n"
                "        rewrite: ngx.var.x = 1\n"
                "        access: { file: auth.lua }\n"
                "        content:\n"
                "          file: app/api.lua\n"
                "        header_filter: |\n"
                "          ngx.header.a = 1\n"
                "        body_filter: \"local x\"\n"
                "        log: 'local y'\n"
                "      - match: = /none\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    loc = &conf->servers[0].locations[0];
    for (p = 0; p < MP_PHASE_MAX; p++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(loc->handlers[p]);
        CU_ASSERT_EQUAL(loc->handlers[p]->ref, -2);
        CU_ASSERT_PTR_NULL(conf->servers[0].locations[1].handlers[p]);
    }
    h = loc->handlers[MP_PHASE_REWRITE];
    CU_ASSERT_STRING_EQUAL(h->code.data, "ngx.var.x = 1");
    CU_ASSERT_EQUAL(h->code.len, 13);
    CU_ASSERT_STRING_EQUAL(h->chunk, "=rewrite_by_lua(moonpool.yaml:5)");
    CU_ASSERT_PTR_NULL(h->path);
    CU_ASSERT_EQUAL(h->pos.line, 5);
    CU_ASSERT_EQUAL(h->pos.column, 18);
    CU_ASSERT_STRING_EQUAL(h->pos.file, conf->file);
    h = loc->handlers[MP_PHASE_ACCESS];
    CU_ASSERT_STRING_EQUAL(h->code.data, "return\n");
    CU_ASSERT_STRING_EQUAL(h->path, in_tdir("auth.lua"));
    CU_ASSERT_EQUAL(h->chunk[0], '@');
    CU_ASSERT_STRING_EQUAL(h->chunk + 1, in_tdir("auth.lua"));
    CU_ASSERT_EQUAL(h->pos.line, 6);
    CU_ASSERT_EQUAL(h->pos.column, 17);
    h = loc->handlers[MP_PHASE_CONTENT];
    CU_ASSERT_STRING_EQUAL(h->code.data, "ngx.say('api')\n");
    CU_ASSERT_STRING_EQUAL(h->chunk + 1, in_tdir("app/api.lua"));
    CU_ASSERT_EQUAL(h->pos.line, 8);
    h = loc->handlers[MP_PHASE_HEADER_FILTER];
    CU_ASSERT_STRING_EQUAL(h->code.data, "ngx.header.a = 1\n");
    CU_ASSERT_STRING_EQUAL(h->chunk,
                           "=header_filter_by_lua(moonpool.yaml:9)");
    CU_ASSERT_STRING_EQUAL(loc->handlers[MP_PHASE_BODY_FILTER]->chunk,
                           "=body_filter_by_lua(moonpool.yaml:11)");
    CU_ASSERT_STRING_EQUAL(loc->handlers[MP_PHASE_LOG]->code.data, "local y");
    CU_ASSERT_STRING_EQUAL(loc->handlers[MP_PHASE_LOG]->chunk,
                           "=log_by_lua(moonpool.yaml:12)");
    mp_conf_destroy(conf);
    tmp_end();
}


static void
test_config_relative_config_path(void)
{
    char cwd[PATH_MAX], want[PATH_MAX + 32];
    mp_conf_t *conf;

    tmp_begin();
    tmp_write("moonpool.yaml", "cluster: { pid_file: mp.pid }\n"
                               "servers: [ { listen: 80 } ]\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
    CU_ASSERT_EQUAL_FATAL(chdir("/tmp"), 0);
    snprintf(want, sizeof(want), "./%s/moonpool.yaml", tdir + 5);
    conf = mp_conf_load(want, errbuf, sizeof(errbuf));
    if (conf == NULL) {
        fprintf(stderr, "\n  %s\n", errbuf);
    }
    CU_ASSERT_PTR_NOT_NULL(conf);
    if (conf != NULL) {
        snprintf(want, sizeof(want), "%s/moonpool.yaml", tdir);
        CU_ASSERT_STRING_EQUAL(conf->file, want);
        CU_ASSERT_STRING_EQUAL(conf->cluster.pid_file, in_tdir("mp.pid"));
    }
    mp_conf_destroy(conf);
    CU_ASSERT_EQUAL(chdir(cwd), 0);
    tmp_end();
}


static void
test_config_parse_size(void)
{
    static const struct {
        const char *s;
        size_t v;
    } good[] = {
        { "0", 0 },          { "1", 1 },
        { "1024", 1024 },    { "16k", 16384 },
        { "16K", 16384 },    { "1m", 1048576 },
        { "3M", 3145728 },   { "1g", 1073741824 },
        { "2G", 2147483648u },
        { "18446744073709551615", SIZE_MAX },
    };
    static const char *bad[] = {
        "", "k", "-1", "+1", "1.5m", "1 k", " 1", "1kb", "1t", "0x10",
        "18446744073709551616", "17179869184g", "1mk", "abc",
    };
    size_t i, v;

    for (i = 0; i < mp_nelems(good); i++) {
        v = 12345;
        CU_ASSERT_EQUAL(mp_conf_parse_size(good[i].s, strlen(good[i].s), &v),
                        MP_OK);
        CU_ASSERT_EQUAL(v, good[i].v);
    }
    for (i = 0; i < mp_nelems(bad); i++) {
        if (mp_conf_parse_size(bad[i], strlen(bad[i]), &v) != MP_ERROR) {
            fprintf(stderr, "\n  size \"%s\" accepted\n", bad[i]);
            CU_FAIL("bad size accepted");
        }
    }
    /* The length bounds the parse: "16kjunk" with len 3 is "16k". */
    CU_ASSERT_EQUAL(mp_conf_parse_size("16kjunk", 3, &v), MP_OK);
    CU_ASSERT_EQUAL(v, 16384);
}


static void
test_config_parse_duration(void)
{
    static const struct {
        const char *s;
        mp_msec_t v;
    } good[] = {
        { "0", 0 },          { "30", 30000 },     { "500ms", 500 },
        { "30s", 30000 },    { "5m", 300000 },    { "1h", 3600000 },
        { "2d", 172800000 }, { "1m30s", 90000 },  { "1h1m1s1ms", 3661001 },
        { "1d12h", 129600000 }, { "0ms", 0 },     { "1s500ms", 1500 },
    };
    static const char *bad[] = {
        "",    "s",     "ms",   "-1s", "1.5s", "1 s",  "1sec", "1m30",
        "1s1m", "1s1s", "5x",   "1w",  "10mss", "1h 1m", " 1s",
        "9223372036854775807", "99999999999999999999ms", "106751991168d",
    };
    mp_msec_t v;
    size_t i;

    for (i = 0; i < mp_nelems(good); i++) {
        v = 12345;
        CU_ASSERT_EQUAL(
            mp_conf_parse_duration(good[i].s, strlen(good[i].s), &v), MP_OK);
        CU_ASSERT_EQUAL(v, good[i].v);
    }
    for (i = 0; i < mp_nelems(bad); i++) {
        if (mp_conf_parse_duration(bad[i], strlen(bad[i]), &v) != MP_ERROR) {
            fprintf(stderr, "\n  duration \"%s\" accepted\n", bad[i]);
            CU_FAIL("bad duration accepted");
        }
    }
}


static void
test_config_error_keys(void)
{
    static const error_case_t cases[] = {
        { "cluster:\n  foo: 1\nservers: [ { listen: 80 } ]\n", 2, 3,
          "unknown key \"foo\" in \"cluster\"" },
        { "servers: [ { listen: 80 } ]\nbogus: 1\n", 2, 1,
          "unknown key \"bogus\" at the top level" },
        { "servers:\n  - listen: 80\n    locations:\n      - match: /\n"
          "        conten: x\n", 5, 9,
          "unknown key \"conten\" in a location" },
        { "servers:\n  - listen: 80\n    port: 1\n", 3, 5,
          "unknown key \"port\" in a server" },
        { "log:\n  level: info\n  level: warn\nservers: [ { listen: 80 } ]\n",
          3, 3, "duplicate key \"level\" in \"log\"" },
        { "cluster:\n  workers: 2\n", 1, 1,
          "missing required key \"servers\" at the top level" },
        { "", 1, 1, "missing required key \"servers\"" },
        { "servers:\n  - server_names: a.com\n", 2, 5,
          "missing required key \"listen\" in a server" },
        { "servers:\n  - listen: 80\n    locations:\n"
          "      - content: ngx.say(1)\n", 4, 9,
          "missing required key \"match\" in a location" },
        { "servers:\n  - listen: 80\n    tls:\n      key: k.pem\n", 4, 7,
          "missing required key \"certificate\" in \"tls\"" },
        { "servers:\n  - listen: 80\n    locations:\n      - match: /\n"
          "        content: { path: x.lua }\n", 5, 20,
          "unknown key \"path\" in \"content\"" },
        { "servers:\n  - listen: 80\n    locations:\n      - match: /\n"
          "        content: {}\n", 5, 18,
          "missing required key \"file\" in \"content\"" },
    };

    check_errors(cases, mp_nelems(cases));
}


static void
test_config_error_types(void)
{
    static const error_case_t cases[] = {
        { "cluster: 4\nservers: [ { listen: 80 } ]\n", 1, 10,
          "expected a mapping for \"cluster\"" },
        { "servers: { listen: 80 }\n", 1, 10,
          "expected a sequence for \"servers\"" },
        { "servers: [ 80 ]\n", 1, 12, "expected a mapping for a server" },
        { "- a\n- b\n", 1, 1, "expected a mapping at the top level" },
        { "cluster: { user: [a] }\nservers: [ { listen: 80 } ]\n", 1, 18,
          "expected a string for \"user\"" },
        { "cluster: { pid_file: }\nservers: [ { listen: 80 } ]\n", 1, 22,
          "expected a path for \"pid_file\"" },
        { "servers:\n  - listen: { a: 1 }\n", 2, 13,
          "expected a string or a sequence for \"listen\"" },
        { "servers:\n  - listen: [80, [81]]\n", 2, 18,
          "expected a string for \"listen\"" },
        { "servers:\n  - listen: []\n", 2, 13,
          "expected at least one value for \"listen\"" },
        { "servers: []\n", 1, 10, "expected at least one server" },
        { "servers:\n  - listen: 80\n    locations: /\n", 3, 16,
          "expected a sequence for \"locations\"" },
        { "servers:\n  - listen: 80\n    locations: [ /x ]\n", 3, 18,
          "expected a mapping for a location" },
        { "servers:\n  - listen: 80\n    locations:\n      - match: /\n"
          "        content: [ a ]\n", 5, 18,
          "expected Lua code or {file: path} for \"content\"" },
        { "servers:\n  - listen: 80\n    locations:\n      - match: /\n"
          "        content:\n", 5, 17,
          "expected Lua code or {file: path} for \"content\"" },
        { "lua: { init: { file: [x] } }\nservers: [ { listen: 80 } ]\n", 1,
          22, "expected a path for \"file\"" },
        { "servers:\n  - listen: 80\n    tls: yes\n", 3, 10,
          "expected a mapping for \"tls\"" },
        { "shared_dicts: { [a]: 1m }\nservers: [ { listen: 80 } ]\n", 1,
          17, "expected a dict name for \"shared_dicts\"" },
        { "servers:\n  - listen: 80\n    server_names: [\"a b\"]\n", 3, 20,
          "invalid server name \"a b\"" },
        { "servers:\n  - listen: 80\n    server_names: [\"a.*.com\"]\n", 3,
          20, "invalid server name \"a.*.com\"" },
        { "servers:\n  - listen: 80\n    server_names: \"*\"\n", 3, 19,
          "invalid server name \"*\"" },
    };

    check_errors(cases, mp_nelems(cases));
}


static void
test_config_error_values(void)
{
    static const error_case_t cases[] = {
        { "cluster: { workers: 0 }\nservers: [ { listen: 80 } ]\n", 1, 21,
          "invalid number \"0\" for \"workers\": expected an integer from 1 "
          "to 1024" },
        { "cluster: { workers: 1025 }\nservers: [ { listen: 80 } ]\n", 1, 21,
          "invalid number \"1025\" for \"workers\"" },
        { "cluster: { workers: two }\nservers: [ { listen: 80 } ]\n", 1, 21,
          "invalid number \"two\" for \"workers\"" },
        { "cluster: { max_connections: -5 }\nservers: [ { listen: 80 } ]\n",
          1, 29, "invalid number \"-5\" for \"max_connections\"" },
        { "cluster: { shutdown_timeout: 10 sec }\n"
          "servers: [ { listen: 80 } ]\n", 1, 30,
          "invalid duration \"10 sec\" for \"shutdown_timeout\"" },
        { "http:\n  client_max_body_size: 1x\nservers: [ { listen: 80 } ]\n",
          2, 25, "invalid size \"1x\" for \"client_max_body_size\"" },
        { "http:\n  large_header_buffer: 512\n"
          "servers: [ { listen: 80 } ]\n", 2, 24,
          "size \"512\" for \"large_header_buffer\" is too small: expected "
          "at least 1024 bytes" },
        { "http:\n  send_timeout: 1s1m\nservers: [ { listen: 80 } ]\n", 2, 17,
          "invalid duration \"1s1m\" for \"send_timeout\"" },
        { "shared_dicts:\n  cache: 8k\nservers: [ { listen: 80 } ]\n", 2, 10,
          "size \"8k\" for \"shared_dicts\" is too small: expected at least "
          "16384 bytes" },
        { "shared_dicts:\n  cache: lots\nservers: [ { listen: 80 } ]\n", 2,
          10, "invalid size \"lots\" for \"shared_dicts\"" },
        { "log: { level: verbose }\nservers: [ { listen: 80 } ]\n", 1, 15,
          "unknown log level \"verbose\": expected debug, info, notice, warn, "
          "error, crit, alert or emerg" },
        { "servers:\n  - listen: localhost:80\n", 2, 13,
          "invalid listen \"localhost:80\": \"localhost\" is not an IPv4 "
          "address" },
        { "servers:\n  - listen: \"127.0.0.1:0\"\n", 2, 13,
          "invalid listen \"127.0.0.1:0\": expected a port from 1 to 65535" },
        { "servers:\n  - listen: \"127.0.0.1:65536\"\n", 2, 13,
          "expected a port from 1 to 65535" },
        { "servers:\n  - listen: \"127.0.0.1\"\n", 2, 13,
          "invalid listen \"127.0.0.1\": expected \"IP:PORT\", "
          "\"[IPV6]:PORT\", \"*:PORT\" or \"PORT\"" },
        { "servers:\n  - listen: \"::1:80\"\n", 2, 13,
          "write IPv6 addresses as [ADDR]:PORT" },
        { "servers:\n  - listen: \"[::g]:80\"\n", 2, 13,
          "\"::g\" is not an IPv6 address" },
        { "servers:\n  - listen: \"[::1]80\"\n", 2, 13,
          "invalid listen \"[::1]80\"" },
        { "servers:\n  - listen: 0\n", 2, 13,
          "expected a port from 1 to 65535" },
        { "servers:\n  - listen: 80\n    locations:\n      - match: api\n",
          4, 16, "invalid match \"api\": expected \"= /uri\"" },
        { "servers:\n  - listen: 80\n    locations:\n      - match: \"~ \"\n",
          4, 16, "invalid match \"~ \": expected a regex" },
    };

    check_errors(cases, mp_nelems(cases));
}


static void
test_config_error_duplicates(void)
{
    static const error_case_t cases[] = {
        { "servers:\n  - listen: [80, \"0.0.0.0:80\"]\n", 2, 18,
          "duplicate listen \"0.0.0.0:80\"" },
        { "servers:\n  - listen: [\"[::1]:80\", \"[0::1]:80\"]\n", 2, 26,
          "duplicate listen \"[::1]:80\"" },
        { "servers:\n  - listen: 80\n    server_names: [a.com]\n"
          "  - listen: [81, 80]\n    server_names: [b.com, A.com]\n", 5, 27,
          "duplicate server name \"a.com\" on listen \"0.0.0.0:80\"" },
        { "servers:\n  - listen: 80\n    server_names: [a.com, b.com, a.com]\n",
          3, 34, "duplicate server name \"a.com\"" },
        { "servers:\n  - listen: 80\n    locations:\n      - match: /a\n"
          "      - match: = /a\n      - match: ^~ /a\n", 6, 16,
          "duplicate location \"^~ /a\" in a server" },
        { "servers:\n  - listen: 80\n    locations:\n      - match: ~ x\n"
          "      - match: ~* x\n      - match: \"~  x\"\n", 6, 16,
          "duplicate location \"~  x\"" },
        { "shared_dicts:\n  a: 1m\n  b: 1m\n  a: 2m\n"
          "servers: [ { listen: 80 } ]\n", 4, 3,
          "duplicate shared dict \"a\"" },
        { "servers:\n  - listen: 80\n  - listen: 80\n"
          "    tls: { certificate: c, key: k }\n", 3, 13,
          "listen \"0.0.0.0:80\" is shared by servers with and without tls" },
    };

    check_errors(cases, mp_nelems(cases));
}


static void
test_config_error_regex(void)
{
    static const error_case_t cases[] = {
        /* plain: the value starts at column 16, the pattern at 18 */
        { "servers:\n  - listen: 80\n    locations:\n"
          "      - match: ~ /a(b\n", 4, 22,
          "invalid regex \"/a(b\": missing closing parenthesis" },
        /* quoted: one more column for the quote */
        { "servers:\n  - listen: 80\n    locations:\n"
          "      - match: \"~*  x[\"\n", 4, 23, "invalid regex \"x[\"" },
        { "servers:\n  - listen: 80\n    locations:\n"
          "      - match: '~ a)b'\n", 4, 20, "invalid regex \"a)b\"" },
    };

    check_errors(cases, mp_nelems(cases));
}


static void
test_config_error_lua_file(void)
{
    static const error_case_t cases[] = {
        { "servers:\n  - listen: 80\n    locations:\n      - match: /\n"
          "        content: { file: missing.lua }\n", 5, 26,
          "cannot read Lua file: open() \"/tmp/" },
        { "lua:\n  init:\n    file: /nonexistent/x.lua\n"
          "servers: [ { listen: 80 } ]\n", 3, 11,
          "open() \"/nonexistent/x.lua\" failed (2: No such file or "
          "directory)" },
        { "lua:\n  init: { file: /tmp }\nservers: [ { listen: 80 } ]\n", 2,
          17, "read() \"/tmp\" failed (21: Is a directory)" },
    };

    check_errors(cases, mp_nelems(cases));
}


static void
test_config_error_yaml(void)
{
    static const error_case_t cases[] = {
        { "servers:\n  - listen: 80\n   bad: 1\n", 3, 4,
          "YAML syntax error: " },
        { "servers: [ { listen: 80 }\n", 2, 1,
          "YAML syntax error: did not find expected ',' or ']'" },
        { "cluster: &c { workers: 2 }\nlog: *c\n"
          "servers: [ { listen: 80 } ]\n", 2, 6,
          "YAML aliases are not supported" },
        { "servers: [ { listen: 80 } ]\n---\nservers: []\n", 2, 1,
          "a config file holds one YAML document only" },
        { "servers: [ { listen: 80 } ]\nx: \"\\q\"\n", 2, 5,
          "YAML syntax error: found unknown escape character" },
        { "servers: [ { listen: 80 } ]\n\tx: 1\n", 2, 1,
          "YAML syntax error: found character that cannot start any token" },
        /* an encoding error: libyaml gives an offset, not a line */
        { "servers:\n  - listen: 80\n  \xff\n", 3, 3,
          "YAML syntax error: invalid leading UTF-8 octet" },
        { "servers: [ { listen: \"80\\0\" } ]\n", 1, 22,
          "unexpected NUL character in \"listen\"" },
        /* the root mapping is level 1, so the 64th "[" is one too many */
        { "x: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
          "[[[[[[[[[[\n", 1, 67, "YAML nesting is deeper than 64 levels" },
    };

    check_errors(cases, mp_nelems(cases));
}


static void
test_config_error_open(void)
{
    mp_conf_t *conf;

    conf = mp_conf_load("/nonexistent/moonpool.yaml", errbuf, sizeof(errbuf));
    CU_ASSERT_PTR_NULL(conf);
    CU_ASSERT_STRING_EQUAL(errbuf,
                           "open() \"/nonexistent/moonpool.yaml\" failed "
                           "(2: No such file or directory)");
    conf = mp_conf_load("/tmp", errbuf, sizeof(errbuf));
    CU_ASSERT_PTR_NULL(conf);
    CU_ASSERT_STRING_EQUAL(errbuf,
                           "read() \"/tmp\" failed (21: Is a directory)");
}


static void
test_config_error_truncated_buffer(void)
{
    char small[16];
    mp_conf_t *conf;

    tmp_begin();
    tmp_write("moonpool.yaml", "bogus: 1\n");
    snprintf(conf_path, sizeof(conf_path), "%s/moonpool.yaml", tdir);
    conf = mp_conf_load(conf_path, small, sizeof(small));
    CU_ASSERT_PTR_NULL(conf);
    CU_ASSERT_EQUAL(strlen(small), sizeof(small) - 1);
    CU_ASSERT_PTR_NULL(mp_conf_load(conf_path, NULL, 0));
    tmp_end();
}


void
mp_test_register(void)
{
    static const mp_test_t tests[] = {
        MP_TEST(test_config_defaults),
        MP_TEST(test_config_every_key),
        MP_TEST(test_config_workers_auto_and_access_off),
        MP_TEST(test_config_listen_forms),
        MP_TEST(test_config_server_names),
        MP_TEST(test_config_match_kinds),
        MP_TEST(test_config_handlers),
        MP_TEST(test_config_relative_config_path),
        MP_TEST(test_config_parse_size),
        MP_TEST(test_config_parse_duration),
        MP_TEST(test_config_error_keys),
        MP_TEST(test_config_error_types),
        MP_TEST(test_config_error_values),
        MP_TEST(test_config_error_duplicates),
        MP_TEST(test_config_error_regex),
        MP_TEST(test_config_error_lua_file),
        MP_TEST(test_config_error_yaml),
        MP_TEST(test_config_error_open),
        MP_TEST(test_config_error_truncated_buffer),
        MP_TEST_END,
    };

    mp_test_suite("config", tests);
}
