/*
 * main.c: the command line. -t, -s, -v and -h are answered here and exit;
 * without them the process becomes the master (master/process.c).
 *
 *   moonpool [-c FILE]              run (FILE defaults to etc/moonpool.yaml)
 *   moonpool -t [-c FILE]           check FILE and compile its Lua handlers
 *   moonpool -s SIGNAL [-c FILE]    signal the master named in the pid file
 *   moonpool -v | -h                versions, usage
 */
#include "core/mp_core.h"
#include "core/conf.h"
#include "lua/vm.h"
#include "master/config.h"
#include "master/process.h"
#include "master/signals.h"
#include "master/tls_check.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <event2/event.h>
#include <http_parser.h>
#include <luajit.h>
#include <openssl/crypto.h>
#include <pcre2.h>
#include <stdio.h>
#include <unistd.h>
#include <yaml.h>

#define MP_DEFAULT_CONF "etc/moonpool.yaml"


static void
usage(FILE *out)
{
    fprintf(out,
            "usage: moonpool [-c FILE] [-t] [-s SIGNAL] [-v] [-h]\n"
            "\n"
            "  -c FILE    configuration file (default: " MP_DEFAULT_CONF ")\n"
            "  -t         test the configuration and its Lua code, then exit\n"
            "  -s SIGNAL  send SIGNAL to the running master: reload, quit,\n"
            "             stop or reopen\n"
            "  -v         print the version and library versions, then exit\n"
            "  -h         print this help, then exit\n");
}


static void
version(void)
{
    unsigned long hp = http_parser_version();
    char pcre[32];

    if (pcre2_config(PCRE2_CONFIG_VERSION, pcre) < 0) {
        snprintf(pcre, sizeof(pcre), "unknown");
    }
    printf("moonpool version: moonpool/" MP_VERSION "\n"
           "  LuaJIT      %s\n"
           "  libevent    %s\n"
           "  OpenSSL     %s\n"
           "  libyaml     %s\n"
           "  PCRE2       %s\n"
           "  http-parser %lu.%lu.%lu\n",
           LUAJIT_VERSION, event_get_version(),
           OpenSSL_version(OPENSSL_VERSION), yaml_get_version_string(),
           pcre, (hp >> 16) & 255, (hp >> 8) & 255, hp & 255);
}


static int
test_config(const char *path)
{
    char err[1024];
    mp_conf_t *conf;
    int rc;

    conf = mp_conf_load(path, err, sizeof(err));
    rc = conf != NULL ? mp_tls_check(conf, err, sizeof(err)) : MP_ERROR;
    if (rc == MP_OK) {
        rc = mp_lua_check(conf, err, sizeof(err));
    }
    mp_conf_destroy(conf);
    if (rc != MP_OK) {
        fprintf(stderr, "moonpool: %s\n", err);
        fprintf(stderr, "moonpool: configuration file %s test failed\n",
                path);
        return 1;
    }
    fprintf(stderr, "moonpool: configuration file %s test is successful\n",
            path);
    return 0;
}


/* Reads the master's pid from path; prints why and returns -1 on error. */
static pid_t
read_pid(const char *path)
{
    char buf[32], *end;
    long pid;
    FILE *f;
    size_t n;

    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "moonpool: open() \"%s\" failed (%d: %s)%s\n", path,
                errno, strerror(errno),
                errno == ENOENT ? "; is moonpool running?" : "");
        return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    errno = 0;
    pid = strtol(buf, &end, 10);
    if (errno != 0 || end == buf || (*end != '\n' && *end != '\0')
        || pid <= 1)
    {
        fprintf(stderr, "moonpool: invalid PID number \"%.*s\" in \"%s\"\n",
                (int) strcspn(buf, "\n"), buf, path);
        return -1;
    }
    return (pid_t) pid;
}


static int
send_signal(const char *path, const char *action)
{
    char err[1024];
    mp_conf_t *conf;
    int signo, rc = 1;
    pid_t pid;

    signo = mp_signals_find(action);
    if (signo == -1) {
        fprintf(stderr, "moonpool: invalid signal \"%s\": use reload, quit, "
                "stop or reopen\n", action);
        return 1;
    }
    conf = mp_conf_load(path, err, sizeof(err));
    if (conf == NULL) {
        fprintf(stderr, "moonpool: %s\n", err);
        return 1;
    }
    if (conf->cluster.pid_file == NULL) {
        fprintf(stderr, "moonpool: \"%s\" sets no cluster.pid_file, cannot "
                "find the master\n", path);
    } else if ((pid = read_pid(conf->cluster.pid_file)) != -1) {
        if (kill(pid, signo) == 0) {
            rc = 0;
        } else {
            fprintf(stderr, "moonpool: kill(%d, %s) failed (%d: %s)%s\n",
                    (int) pid, mp_signals_name(signo), errno, strerror(errno),
                    errno == ESRCH ? "; stale pid file?" : "");
        }
    }
    mp_conf_destroy(conf);
    return rc;
}


int
main(int argc, char **argv)
{
    const char *conf = MP_DEFAULT_CONF, *action = NULL;
    int c, test = 0;

    opterr = 0;
    while ((c = getopt(argc, argv, "c:ts:vh")) != -1) {
        switch (c) {
        case 'c':
            conf = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 's':
            action = optarg;
            break;
        case 'v':
            version();
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "moonpool: invalid option \"-%c\"%s\n", optopt,
                    optopt == 'c' || optopt == 's' ? " (needs an argument)"
                                                   : "");
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moonpool: unexpected argument \"%s\"\n",
                argv[optind]);
        usage(stderr);
        return 1;
    }
    if (test) {
        return test_config(conf);
    }
    if (action != NULL) {
        return send_signal(conf, action);
    }
    return mp_process_master(conf, argc, argv);
}
