/*
 * main.c: the command line. -t, -s, -v and -h are answered here and exit;
 * without them the process becomes the master (master/process.c).
 *
 *   moonpool [-c FILE]              run (FILE defaults to etc/moonpool.yaml)
 *   moonpool -t [-c FILE]           check FILE and compile its Lua handlers
 *   moonpool -s SIGNAL [-c FILE]    signal the master named in the pid file
 *   moonpool -s reload --wait ...   and wait for the reload's outcome
 *   moonpool status [-c FILE]       the running master's summary
 *   moonpool profile [-c FILE] --seconds N [--mode lua|lua+c] -o OUT
 *                                   sample every worker's Lua for N s and
 *                                   write folded stacks to OUT
 *   moonpool -v | -h                versions, usage
 *
 * status and profile talk to the master over its control socket
 * (PID_FILE.sock, master/control.h).
 */
#include "core/mp_core.h"
#include "core/conf.h"
#include "lua/vm.h"
#include "master/config.h"
#include "master/control.h"
#include "master/notify.h"
#include "master/process.h"
#include "master/signals.h"
#include "master/tls_check.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <http_parser.h>
#include <luajit.h>
#include <openssl/crypto.h>
#include <pcre2.h>
#include <stdio.h>
#include <unistd.h>
#include <yaml.h>

#define MP_DEFAULT_CONF "etc/moonpool.yaml"

/* "-s reload --wait" gives up after this long (systemd's own
 * TimeoutSec for ExecReload is shorter by default). */
#define MP_WAIT_MSEC (10 * 60 * 1000)
#define MP_WAIT_POLL_USEC 20000

/* How long "moonpool status" waits for the master's answer, and how much
 * longer than --seconds "moonpool profile" waits. */
#define MP_STATUS_WAIT_MSEC 10000
#define MP_PROFILE_EXTRA_MSEC 30000

/* The options of the status and profile commands. */
typedef struct {
    const char *command;     /* "status", "profile" or NULL */
    long seconds;            /* --seconds; 0: not given */
    const char *mode;        /* --mode */
    const char *output;      /* -o */
} mp_cli_control_t;


static void
usage(FILE *out)
{
    fprintf(out,
            "usage: moonpool [-c FILE] [-t] [-s SIGNAL] [-v] [-h]\n"
            "       moonpool status [-c FILE]\n"
            "       moonpool profile [-c FILE] --seconds N [--mode lua|lua+c]"
            " -o FILE.folded\n"
            "\n"
            "  -c FILE    configuration file (default: " MP_DEFAULT_CONF ")\n"
            "  -t         test the configuration and its Lua code, then exit\n"
            "  -s SIGNAL  send SIGNAL to the running master: reload, quit,\n"
            "             stop, reopen or upgrade\n"
            "  --wait     with -s reload: wait until the new workers serve\n"
            "             (exit 0) or the reload failed (exit 1, reason on\n"
            "             stderr)\n"
            "  -v         print the version and library versions, then exit\n"
            "  -h         print this help, then exit\n"
            "\n"
            "  status     print the running master's generation, workers\n"
            "             (pid, uptime, requests, RSS) and shared dicts\n"
            "  profile    run LuaJIT's sampling profiler in every worker for\n"
            "             N seconds and write the merged stacks in folded\n"
            "             format (flamegraph.pl, inferno, speedscope);\n"
            "             --mode lua+c adds [C], [GC], [JIT compiler] frames\n"
            "\n"
            "status and profile need cluster.pid_file: the master listens\n"
            "on PID_FILE.sock.\n");
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
           "  http-parser %lu.%lu.%lu\n"
           "  systemd     %s\n",
           LUAJIT_VERSION, event_get_version(),
           OpenSSL_version(OPENSSL_VERSION), yaml_get_version_string(),
           pcre, (hp >> 16) & 255, (hp >> 8) & 255, hp & 255,
           mp_notify_available() ? "sd_notify" : "no");
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


/*
 * "-s reload --wait": the reload this command asked for is any reload the
 * master begins after the status file was read here (the config was
 * written before this command ran), so wait for a finished reload with a
 * greater sequence number. Returns the exit status.
 */
static int
wait_reload(const char *status_path, unsigned seq0, pid_t pid)
{
    char state[16], msg[2048];
    unsigned seq, gen;
    long waited;
    int rc;

    for (waited = 0; waited < MP_WAIT_MSEC * 1000L;
         waited += MP_WAIT_POLL_USEC) {
        rc = mp_reload_status_read(status_path, &seq, state, sizeof(state),
                                   &gen, msg, sizeof(msg));
        if (rc == MP_OK && seq > seq0 && strcmp(state, "running") != 0) {
            if (strcmp(state, "ok") == 0) {
                fprintf(stderr, "moonpool: reloaded, generation %u\n", gen);
                return 0;
            }
            fprintf(stderr, "moonpool: reload failed: %s\n", msg);
            return 1;
        }
        if (kill(pid, 0) == -1 && errno == ESRCH) {
            fprintf(stderr, "moonpool: the master (pid %d) exited during "
                    "the reload\n", (int) pid);
            return 1;
        }
        usleep(MP_WAIT_POLL_USEC);
    }
    fprintf(stderr, "moonpool: no reload result in \"%s\" after %d s\n",
            status_path, MP_WAIT_MSEC / 1000);
    return 1;
}


static int
send_signal(const char *path, const char *action, int wait)
{
    char state[16], msg[2048], *status_path = NULL;
    unsigned seq0 = 0, gen;
    char err[1024];
    mp_conf_t *conf;
    int signo, rc = 1;
    pid_t pid;

    signo = mp_signals_find(action);
    if (signo == -1) {
        fprintf(stderr, "moonpool: invalid signal \"%s\": use reload, quit, "
                "stop, reopen or upgrade\n", action);
        return 1;
    }
    conf = mp_conf_load(path, err, sizeof(err));
    if (conf == NULL) {
        /* the master would refuse it too: its config stays in force */
        fprintf(stderr, "moonpool: %s%s\n", wait ? "reload failed: " : "",
                err);
        return 1;
    }
    if (conf->cluster.pid_file == NULL) {
        fprintf(stderr, "moonpool: \"%s\" sets no cluster.pid_file, cannot "
                "find the master\n", path);
    } else if ((pid = read_pid(conf->cluster.pid_file)) != -1) {
        if (wait) {
            status_path = mp_reload_status_path(conf->cluster.pid_file);
            if (mp_reload_status_read(status_path, &seq0, state,
                                      sizeof(state), &gen, msg, sizeof(msg))
                == MP_ERROR) {
                fprintf(stderr, "moonpool: cannot read \"%s\"\n",
                        status_path);
                seq0 = 0;
            }
        }
        if (kill(pid, signo) == 0) {
            rc = wait ? wait_reload(status_path, seq0, pid) : 0;
        } else {
            fprintf(stderr, "moonpool: kill(%d, %s) failed (%d: %s)%s\n",
                    (int) pid, mp_signals_name(signo), errno, strerror(errno),
                    errno == ESRCH ? "; stale pid file?" : "");
        }
    }
    free(status_path);
    mp_conf_destroy(conf);
    return rc;
}


/*
 * The control socket named by the config at path, malloc'ed; NULL after
 * saying why (the config is broken, or it sets no pid file).
 */
static char *
control_path(const char *path, const char *command)
{
    char err[1024], *sock;
    mp_conf_t *conf;

    conf = mp_conf_load(path, err, sizeof(err));
    if (conf == NULL) {
        fprintf(stderr, "moonpool: %s\n", err);
        return NULL;
    }
    if (conf->cluster.pid_file == NULL) {
        fprintf(stderr, "moonpool: \"%s\" sets no cluster.pid_file, so the "
                "master has no control socket; \"moonpool %s\" needs one\n",
                path, command);
        mp_conf_destroy(conf);
        return NULL;
    }
    sock = mp_control_path(conf->cluster.pid_file);
    mp_conf_destroy(conf);
    return sock;
}


static int
status(const char *path)
{
    char msg[1024], *sock;
    int rc;

    sock = control_path(path, "status");
    if (sock == NULL) {
        return 1;
    }
    rc = mp_control_request(sock, "status", MP_STATUS_WAIT_MSEC, stdout, msg,
                            sizeof(msg));
    free(sock);
    if (rc != MP_OK) {
        fprintf(stderr, "moonpool: %s\n", msg);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}


/*
 * The stacks go to OUTPUT.part first and are renamed to OUTPUT once whole,
 * so a failed profile never leaves a truncated file that looks valid.
 */
static int
profile(const char *path, const mp_cli_control_t *cli)
{
    char msg[2048], cmd[64], *sock, *part;
    size_t n;
    FILE *out;
    int rc;

    sock = control_path(path, "profile");
    if (sock == NULL) {
        return 1;
    }
    n = strlen(cli->output);
    part = mp_alloc(n + sizeof(".part"));
    memcpy(part, cli->output, n);
    memcpy(part + n, ".part", sizeof(".part"));
    out = fopen(part, "we");
    if (out == NULL) {
        fprintf(stderr, "moonpool: open() \"%s\" failed (%d: %s)\n", part,
                errno, strerror(errno));
        free(part);
        free(sock);
        return 1;
    }
    snprintf(cmd, sizeof(cmd), "profile %ld %s", cli->seconds, cli->mode);
    fprintf(stderr, "moonpool: profiling every worker for %ld s (%s)\n",
            cli->seconds, cli->mode);
    rc = mp_control_request(sock, cmd,
                            (int) (cli->seconds * 1000
                                   + MP_PROFILE_EXTRA_MSEC),
                            out, msg, sizeof(msg));
    if (fclose(out) != 0 && rc == MP_OK) {
        snprintf(msg, sizeof(msg), "write to \"%s\" failed (%d: %s)", part,
                 errno, strerror(errno));
        rc = MP_ERROR;
    }
    if (rc == MP_OK && rename(part, cli->output) == -1) {
        snprintf(msg, sizeof(msg), "rename() to \"%s\" failed (%d: %s)",
                 cli->output, errno, strerror(errno));
        rc = MP_ERROR;
    }
    if (rc != MP_OK) {
        unlink(part);
        fprintf(stderr, "moonpool: profile failed: %s\n", msg);
    } else {
        fprintf(stderr, "moonpool: %s; wrote \"%s\"\n", msg, cli->output);
    }
    free(part);
    free(sock);
    return rc == MP_OK ? 0 : 1;
}


/* Checks the status/profile options; returns 0, or 1 after saying why. */
static int
check_control(mp_cli_control_t *cli, int test, const char *action)
{
    int is_profile = cli->command != NULL
                     && strcmp(cli->command, "profile") == 0;

    if (cli->command != NULL && strcmp(cli->command, "status") != 0
        && !is_profile) {
        fprintf(stderr, "moonpool: unexpected argument \"%s\"\n",
                cli->command);
        return 1;
    }
    if (cli->command != NULL && (test || action != NULL)) {
        fprintf(stderr, "moonpool: \"%s\" goes without -t and -s\n",
                cli->command);
        return 1;
    }
    if (!is_profile && (cli->seconds != 0 || cli->mode != NULL
                        || cli->output != NULL)) {
        fprintf(stderr, "moonpool: --seconds, --mode and -o go with "
                "\"moonpool profile\"\n");
        return 1;
    }
    if (!is_profile) {
        return 0;
    }
    if (cli->seconds <= 0 || cli->seconds > 3600) {
        fprintf(stderr, "moonpool: profile needs --seconds N, 1 to 3600\n");
        return 1;
    }
    if (cli->output == NULL) {
        fprintf(stderr, "moonpool: profile needs -o FILE.folded\n");
        return 1;
    }
    if (cli->mode == NULL) {
        cli->mode = "lua";
    }
    if (strcmp(cli->mode, "lua") != 0 && strcmp(cli->mode, "lua+c") != 0) {
        fprintf(stderr, "moonpool: invalid --mode \"%s\": use lua or "
                "lua+c\n", cli->mode);
        return 1;
    }
    return 0;
}


int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "wait", no_argument, NULL, 'W' },
        { "seconds", required_argument, NULL, 'S' },
        { "mode", required_argument, NULL, 'M' },
        { "output", required_argument, NULL, 'o' },
        { NULL, 0, NULL, 0 },
    };
    const char *conf = MP_DEFAULT_CONF, *action = NULL;
    mp_cli_control_t cli = { NULL, 0, NULL, NULL };
    char *end;
    int c, test = 0, wait = 0;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:ts:o:vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'W':
            wait = 1;
            break;
        case 'S':
            errno = 0;
            cli.seconds = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0'
                || cli.seconds <= 0) {
                fprintf(stderr, "moonpool: invalid --seconds \"%s\"\n",
                        optarg);
                return 1;
            }
            break;
        case 'M':
            cli.mode = optarg;
            break;
        case 'o':
            cli.output = optarg;
            break;
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
            if (optopt == 0) {
                fprintf(stderr, "moonpool: invalid option \"%s\"\n",
                        argv[optind - 1]);
                usage(stderr);
                return 1;
            }
            fprintf(stderr, "moonpool: invalid option \"-%c\"%s\n", optopt,
                    optopt == 'c' || optopt == 's' || optopt == 'o'
                        ? " (needs an argument)" : "");
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        cli.command = argv[optind++];
    }
    if (optind < argc) {
        fprintf(stderr, "moonpool: unexpected argument \"%s\"\n",
                argv[optind]);
        usage(stderr);
        return 1;
    }
    if (check_control(&cli, test, action) != 0) {
        usage(stderr);
        return 1;
    }
    if (cli.command != NULL) {
        return cli.command[0] == 's' ? status(conf) : profile(conf, &cli);
    }
    if (test) {
        return test_config(conf);
    }
    if (wait && (action == NULL || strcmp(action, "reload") != 0)) {
        fprintf(stderr, "moonpool: --wait goes with -s reload\n");
        return 1;
    }
    if (action != NULL) {
        return send_signal(conf, action, wait);
    }
    return mp_process_master(conf, argc, argv);
}
