/*
 * loop.h: a worker process after fork: one libevent loop accepting on the
 * inherited listening sockets, until told to stop.
 */
#ifndef MP_LOOP_H
#define MP_LOOP_H

#include "core/mp_core.h"
#include "core/conf.h"

#include <event2/event.h>

/* This worker's number (0-based) and the number of workers; -1 in master. */
extern int mp_worker_id;
extern int mp_worker_count;

/* The worker's config snapshot and event base (NULL in the master). */
extern const mp_conf_t *mp_worker_conf;
extern struct event_base *mp_worker_base;

/*
 * Hook run once the loop exists, before accepting (lua/ runs init_worker
 * here). Returns MP_OK or MP_ERROR (the worker exits with status 2).
 */
typedef int (*mp_worker_init_cb)(const mp_conf_t *conf);
extern mp_worker_init_cb mp_worker_init_hook;

/* Hook run when the loop has ended, before the worker exits (lua/ closes
 * its VM so every finalizer runs). */
typedef void (*mp_worker_exit_cb)(void);
extern mp_worker_exit_cb mp_worker_exit_hook;

/*
 * Graceful stop: shutdown_hook runs when it begins (lua/ fires pending
 * timers), and the worker exits only once no connection is left and
 * busy_hook() (timers still running) returns 0, or shutdown_timeout passed.
 */
extern void (*mp_worker_shutdown_hook)(void);
extern int (*mp_worker_busy_hook)(void);

/* Exits the loop if a graceful stop is under way and nothing is left. */
void mp_worker_check_exit(void);

/*
 * Runs the worker until it stops; returns the process exit status. conf
 * must have its listening fds opened (conf->listens[i].fd).
 */
int mp_worker_run(const mp_conf_t *conf, int worker_id, int worker_count);

/*
 * Refreshes the cached clock (core/time.h) from libevent's time of the
 * current loop iteration: event callbacks call it first, at no syscall.
 */
void mp_worker_time_update(void);

/* Called by http.c when a connection closes (accept limits, shutdown). */
void mp_worker_conn_closed(void);

/* True once a graceful stop began (ngx.worker.exiting). */
int mp_worker_exiting(void);

#endif /* MP_LOOP_H */
