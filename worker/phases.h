/*
 * phases.h: the phase engine, the only code that advances a request through
 * rewrite -> access -> content -> header_filter -> body_filter -> log.
 *
 * worker/ knows nothing of Lua: lua/ registers the runner that executes a
 * handler. A runner returns MP_OK (next phase), MP_DECLINED (same as OK
 * here), MP_AGAIN (suspended: it calls mp_phases_resume() later), MP_DONE
 * (the response is finished) or MP_ERROR (answer 500).
 */
#ifndef MP_PHASES_H
#define MP_PHASES_H

#include "core/mp_core.h"
#include "core/conf.h"
#include "worker/http.h"

typedef int (*mp_phase_runner_cb)(mp_request_t *r, mp_conf_handler_t *h);

/* Registered once per worker by lua/. */
void mp_phases_set_runner(mp_phase_runner_cb runner);

/* Starts the phases of a parsed request (called by http.c). */
void mp_phases_start(mp_request_t *r);

/* Continues after a runner returned MP_AGAIN; rc as a runner's. */
void mp_phases_resume(mp_request_t *r, int rc);

/* Runs the log handler after the response was sent (its result is moot). */
void mp_phases_log(mp_request_t *r);

#endif /* MP_PHASES_H */
