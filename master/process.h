/*
 * process.h: the master process. main() hands over to it once the command
 * line is parsed. The master loads the config, opens the error log and the
 * listening sockets, runs lua.init, writes the pid file, forks the workers
 * and then only reacts to signals (see DESIGN.md): it respawns workers that
 * die, reloads on HUP, reopens logs on USR1 and stops on QUIT, TERM or INT.
 * It never serves a request.
 */
#ifndef MP_PROCESS_H
#define MP_PROCESS_H

#include "core/mp_core.h"
#include "core/conf.h"

#include <sys/types.h>

/*
 * Runs the master for the config file at conf_path (as given on the command
 * line) until it stops; returns the process exit status: 0 after a stop, 1
 * when start-up failed (the reason is on stderr, and in the error log once
 * that is open). argc and argv are main()'s: a worker overwrites the
 * argument area with its title ("moonpool: worker 0"), so the caller must
 * not use argv strings in a worker. Call once, from main().
 */
int mp_process_master(const char *conf_path, int argc, char **argv);

/* The master as "moonpool status" shows it (master/control.c). */
typedef struct {
    pid_t pid;
    unsigned generation;      /* of the serving config; 0: none */
    mp_msec_t uptime;         /* msec since the master started */
    const char *conf_path;
    const mp_conf_t *conf;    /* the serving config, or NULL */
    int stopping;             /* a stop is under way */
    int reloading;            /* a new generation is starting */
} mp_process_info_t;

typedef struct {
    pid_t pid;
    int id;
    unsigned generation;
    const char *state;        /* "serving", "starting" or "draining" */
    int serving;              /* of the serving generation */
    mp_msec_t uptime;         /* msec since it was forked */
    const mp_conf_t *conf;    /* its generation's config */
} mp_process_worker_t;

/* Fills *info. Master only. */
void mp_process_info(mp_process_info_t *info);

/*
 * Copies up to max running workers, newest generation first, to out and
 * returns how many there are (may exceed max). Master only.
 */
size_t mp_process_workers(mp_process_worker_t *out, size_t max);

#endif /* MP_PROCESS_H */
