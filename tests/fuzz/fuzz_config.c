/*
 * fuzz_config.c: libFuzzer target for the YAML config loader
 * (master/config.c, mp_conf_load).
 *
 * The loader reads a path, so each input is written to one temp file in a
 * private directory (the config's prefix: relative handler files resolve
 * there). A load either returns a snapshot whose basic shape holds, or NULL
 * with a message that starts with the path and a position; either way
 * nothing may leak (LeakSanitizer) and nothing may crash.
 *
 * {file: path} handlers make the loader open and read any path the input
 * names. The target is linked with -Wl,--wrap=open so that config.c's
 * open() goes through wrap_open below, which lets only regular files of at
 * most 1 MB through: /dev/zero or a FIFO would otherwise hang the run.
 */
#include "core/mp_core.h"
#include "core/conf.h"
#include "master/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_FILE_MAX (1024 * 1024)

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);

static char dir[64];
static char path[96];


int
__wrap_open(const char *p, int flags, ...)
{
    struct stat st;
    mode_t mode = 0;
    va_list ap;

    if (flags & O_CREAT) {
        va_start(ap, flags);
        mode = (mode_t) va_arg(ap, int);
        va_end(ap);
    }
    if (stat(p, &st) != 0) {
        return -1; /* errno from stat: ENOENT and friends, as open says */
    }
    if (!S_ISREG(st.st_mode) || st.st_size > FUZZ_FILE_MAX) {
        errno = EACCES;
        return -1;
    }
    return __real_open(p, flags, mode);
}


static void
remove_dir(void)
{
    char handler[96];

    unlink(path);
    snprintf(handler, sizeof(handler), "%s/h.lua", dir);
    unlink(handler);
    rmdir(dir);
}


static void
setup(void)
{
    char handler[96];
    FILE *f;

    snprintf(dir, sizeof(dir), "/tmp/mp-fuzz-config.XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    snprintf(path, sizeof(path), "%s/moonpool.yaml", dir);
    /* a handler file that relative {file: h.lua} finds */
    snprintf(handler, sizeof(handler), "%s/h.lua", dir);
    f = fopen(handler, "w");
    if (f == NULL) {
        abort();
    }
    fputs("ngx.say('from a file')\n", f);
    fclose(f);
    atexit(remove_dir);
}


/* The shape every successful load promises (core/conf.h). */
static void
check_conf(const mp_conf_t *conf)
{
    size_t i, j, k;

    if (conf->file == NULL || conf->prefix == NULL
        || conf->prefix[strlen(conf->prefix) - 1] != '/') {
        abort();
    }
    for (i = 0; i < conf->nlistens; i++) {
        const mp_conf_listen_t *ls = &conf->listens[i];

        if (ls->nservers == 0 || ls->servers[0] == NULL || ls->fd != -1) {
            abort();
        }
        for (j = 0; j < ls->nservers; j++) {
            if (ls->servers[j] < conf->servers
                || ls->servers[j] >= conf->servers + conf->nservers) {
                abort();
            }
        }
    }
    for (i = 0; i < conf->nservers; i++) {
        const mp_conf_server_t *srv = &conf->servers[i];

        for (j = 0; j < srv->nlocations; j++) {
            const mp_conf_location_t *loc = &srv->locations[j];
            int regex = loc->kind == MP_MATCH_REGEX
                        || loc->kind == MP_MATCH_REGEX_ICASE;

            if ((loc->re != NULL) != regex || loc->pattern.data == NULL
                || loc->pattern.data[loc->pattern.len] != '\0') {
                abort();
            }
            for (k = 0; k < MP_PHASE_MAX; k++) {
                const mp_conf_handler_t *h = loc->handlers[k];

                if (h != NULL && (h->code.data == NULL
                                  || h->code.data[h->code.len] != '\0'
                                  || h->ref != -2)) {
                    abort();
                }
            }
        }
    }
    for (i = 0; i < conf->ndicts; i++) {
        if (conf->dicts[i].name.len == 0 || conf->dicts[i].size == 0) {
            abort();
        }
    }
}


/* "PATH:LINE:COLUMN: message", or an open()/read() failure of PATH. */
static void
check_error(const char *err)
{
    size_t n = strlen(path);
    unsigned line, col;

    if (strncmp(err, path, n) == 0
        && sscanf(err + n, ":%u:%u: ", &line, &col) == 2 && line > 0
        && col > 0) {
        return;
    }
    if (strncmp(err, "open() ", 7) == 0 || strncmp(err, "read() ", 7) == 0) {
        return;
    }
    fprintf(stderr, "unexpected error message: \"%s\"\n", err);
    abort();
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    char err[1024];
    mp_conf_t *conf;
    FILE *f;

    if (!ready) {
        setup();
        ready = 1;
    }
    f = fopen(path, "w");
    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror("writing the config");
        abort();
    }
    conf = mp_conf_load(path, err, sizeof(err));
    if (conf != NULL) {
        check_conf(conf);
        mp_conf_destroy(conf);
    } else {
        check_error(err);
    }
    return 0;
}
