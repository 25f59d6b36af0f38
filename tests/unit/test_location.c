/*
 * test_location.c: worker/location.c. Configs are loaded from YAML through
 * master/config.c (as the worker gets them), then servers and locations
 * are looked up the way worker/http.c does.
 */
#include "core/mp_core.h"
#include "core/conf.h"
#include "master/config.h"
#include "worker/location.h"
#include "runner.h"

#include <limits.h>
#include <stdio.h>
#include <unistd.h>

static char errbuf[1024];


/* Loads yaml through a temporary file, which is removed at once. */
static mp_conf_t *
load(const char *yaml)
{
    char path[] = "/tmp/mp_location_XXXXXX";
    mp_conf_t *conf;
    FILE *f;
    int fd;

    fd = mkstemp(path);
    CU_ASSERT_FATAL(fd != -1);
    f = fdopen(fd, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(yaml, f);
    fclose(f);
    conf = mp_conf_load(path, errbuf, sizeof(errbuf));
    unlink(path);
    if (conf == NULL) {
        fprintf(stderr, "\n  %s\n", errbuf);
    }
    return conf;
}


/* The index of the location for uri, or -1 for none. */
static int
find(const mp_conf_t *conf, const char *uri)
{
    const mp_conf_location_t *loc;

    loc = mp_location_find(&conf->servers[0], uri, strlen(uri));
    return loc ? loc->index : -1;
}


typedef struct {
    const char *uri;
    int index;
} uri_case_t;


static void
check_uris(const char *yaml, const uri_case_t *cases, size_t n)
{
    mp_conf_t *conf = load(yaml);
    size_t i;
    int got;

    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    for (i = 0; i < n; i++) {
        got = find(conf, cases[i].uri);
        if (got != cases[i].index) {
            fprintf(stderr, "\n  \"%s\": got %d, want %d\n", cases[i].uri,
                    got, cases[i].index);
        }
        CU_ASSERT_EQUAL(got, cases[i].index);
    }
    mp_conf_destroy(conf);
}


#define LOCATIONS "servers:\n  - listen: 80\n    locations:\n"


static void
test_location_exact_beats_prefix(void)
{
    static const uri_case_t cases[] = {
        { "/x", 1 },   /* "= /x" wins although "/x" comes first */
        { "/xy", 0 },
        { "/x/", 0 },
        { "/", 2 },
    };

    check_uris(LOCATIONS "      - match: /x\n"
                         "      - match: = /x\n"
                         "      - match: /\n"
                         "      - match: ~ ^/x$\n",
               cases, mp_nelems(cases));
}


static void
test_location_prefix_stop_skips_regexes(void)
{
    static const uri_case_t cases[] = {
        { "/img/a.png", 1 },    /* ^~ stops the regex search */
        { "/other/a.png", 0 },  /* no prefix: the regex */
        { "/img", -1 },
        { "/static/a.png", 0 }, /* a plain prefix does not stop it */
        { "/static/a.js", 2 },
    };

    check_uris(LOCATIONS "      - match: ~ \\.png$\n"
                         "      - match: ^~ /img/\n"
                         "      - match: /static/\n",
               cases, mp_nelems(cases));
}


static void
test_location_regexes_in_config_order(void)
{
    static const uri_case_t cases[] = {
        { "/abc", 0 },  /* both match: the first written wins */
        { "/ab", 0 },
        { "/b", 2 },
        { "/abcd", 0 },
        { "/xyz", 3 },  /* more groups than the one ovector pair */
        { "/q", -1 },
    };

    check_uris(LOCATIONS "      - match: ~ ^/a\n"
                         "      - match: ~ ^/ab\n"
                         "      - match: ~ ^/b\n"
                         "      - match: ~ ^/(x)(y)(z)$\n",
               cases, mp_nelems(cases));
    mp_location_cleanup();
}


static void
test_location_longest_prefix(void)
{
    static const uri_case_t cases[] = {
        { "/api/v1/users", 2 }, { "/api/v2", 1 }, { "/api/", 1 },
        { "/api", 0 },          { "/", 0 },       { "/z", 0 },
        /* the longest prefix is plain, so the regex still wins */
        { "/a/b/c", 4 },
        /* the longest prefix is ^~: no regex */
        { "/a/x/c", 3 },
    };

    check_uris(LOCATIONS "      - match: /\n"
                         "      - match: /api/\n"
                         "      - match: /api/v1/\n"
                         "      - match: ^~ /a/\n"
                         "      - match: ~ c$\n"
                         "      - match: /a/b/\n",
               cases, mp_nelems(cases));
    mp_location_cleanup();
}


static void
test_location_case_insensitive_regex(void)
{
    static const uri_case_t cases[] = {
        { "/x.png", 1 }, /* "~" is case-sensitive: only "~*" matches */
        { "/X.PNG", 0 },
        { "/x.PnG", 1 },
        { "/x.gif", -1 },
    };

    check_uris(LOCATIONS "      - match: ~ \\.PNG$\n"
                         "      - match: ~* \\.PNG$\n",
               cases, mp_nelems(cases));
    mp_location_cleanup();
}


static void
test_location_no_match(void)
{
    static const uri_case_t cases[] = {
        { "/", -1 }, { "/x", -1 }, { "/api", -1 }, { "", -1 },
        { "/exact/", -1 }, { "/exact", 1 },
    };
    mp_conf_t *conf;

    check_uris(LOCATIONS "      - match: /api/\n"
                         "      - match: = /exact\n",
               cases, mp_nelems(cases));
    conf = load("servers: [ { listen: 80 } ]\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_PTR_NULL(mp_location_find(&conf->servers[0], "/", 1));
    mp_conf_destroy(conf);
}


static void
test_location_uri_length_bounds_match(void)
{
    mp_conf_t *conf;
    const mp_conf_location_t *loc;

    conf = load(LOCATIONS "      - match: = /ab\n"
                          "      - match: ~ ^/a$\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    /* Only len bytes count: the rest of the buffer is the query string. */
    loc = mp_location_find(&conf->servers[0], "/ab?x=1", 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loc);
    CU_ASSERT_EQUAL(loc->index, 0);
    loc = mp_location_find(&conf->servers[0], "/ab", 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loc);
    CU_ASSERT_EQUAL(loc->index, 1);
    mp_conf_destroy(conf);
    mp_location_cleanup();
}


static int
server_for(const mp_conf_listen_t *ls, const char *host)
{
    return mp_location_find_server(ls, host, strlen(host))->index;
}


static void
test_location_host_matching(void)
{
    static const struct {
        const char *host;
        int index;
    } cases[] = {
        { "", 0 },
        { "default.com", 0 },
        { "example.com", 1 },          /* exact */
        { "a.example.com", 1 },        /* leading wildcard */
        { "a.b.c.example.com", 1 },
        { "x.b.example.com", 2 },      /* the longest leading wildcard */
        { "b.example.com", 1 },
        { "www.example.org", 5 },      /* exact before trailing wildcard */
        { "www.example.info", 3 },     /* trailing wildcard */
        { "www.example.net", 6 },      /* "*.net" is a leading wildcard */
        { "www.example.co.uk", 4 },    /* the longest trailing wildcard */
        { "www.example.com", 1 },      /* leading before trailing */
        { "www.example.", 0 },         /* "*" must match something */
        { "xexample.com", 0 },
        { ".example.com", 0 },
        { "example.com.evil", 0 },
        { "unknown.org", 0 },          /* the default: first server */
        { "exact.net", 6 },            /* leading/exact tie: exact wins */
    };
    mp_conf_t *conf;
    size_t i;
    int got;

    conf = load("servers:\n"
                "  - listen: 80\n"
                "    server_names: default.com\n"
                "  - listen: 80\n"
                "    server_names: [example.com, \"*.example.com\"]\n"
                "  - listen: 80\n"
                "    server_names: \"*.b.example.com\"\n"
                "  - listen: [80, 81]\n"
                "    server_names: \"www.example.*\"\n"
                "  - listen: 80\n"
                "    server_names: \"www.example.co.*\"\n"
                "  - listen: 80\n"
                "    server_names: www.example.org\n"
                "  - listen: [80, 82]\n"
                "    server_names: [\"*.net\", exact.net]\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
    CU_ASSERT_EQUAL_FATAL(conf->nlistens, 3);
    for (i = 0; i < mp_nelems(cases); i++) {
        got = server_for(&conf->listens[0], cases[i].host);
        if (got != cases[i].index) {
            fprintf(stderr, "\n  \"%s\": got %d, want %d\n", cases[i].host,
                    got, cases[i].index);
        }
        CU_ASSERT_EQUAL(got, cases[i].index);
    }
    /* Another listener has its own default: its first server. */
    CU_ASSERT_EQUAL(server_for(&conf->listens[1], "example.com"), 3);
    CU_ASSERT_EQUAL(server_for(&conf->listens[1], ""), 3);
    CU_ASSERT_EQUAL(server_for(&conf->listens[2], "a.net"), 6);
    CU_ASSERT_EQUAL(server_for(&conf->listens[2], "www.example.net"), 6);
    mp_conf_destroy(conf);
}


void
mp_test_register(void)
{
    static const mp_test_t tests[] = {
        MP_TEST(test_location_exact_beats_prefix),
        MP_TEST(test_location_prefix_stop_skips_regexes),
        MP_TEST(test_location_regexes_in_config_order),
        MP_TEST(test_location_longest_prefix),
        MP_TEST(test_location_case_insensitive_regex),
        MP_TEST(test_location_no_match),
        MP_TEST(test_location_uri_length_bounds_match),
        MP_TEST(test_location_host_matching),
        MP_TEST_END,
    };

    mp_test_suite("location", tests);
}
