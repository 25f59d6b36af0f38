/*
 * phases.h: the phase engine, the only code that advances a request through
 * rewrite -> access -> content -> header_filter -> body_filter -> log.
 *
 * worker/ knows nothing of Lua: lua/ registers the runners. The handler
 * runner returns MP_OK (next phase), MP_DECLINED (same as OK here), MP_AGAIN
 * (suspended: it calls mp_phases_resume() later), MP_DONE (the response is
 * finished, or the request went elsewhere: exec, jump) or MP_ERROR (answer
 * 500). Filters run synchronously, from inside the output path.
 */
#ifndef MP_PHASES_H
#define MP_PHASES_H

#include "core/mp_core.h"
#include "core/conf.h"
#include "worker/http.h"

typedef int (*mp_phase_runner_cb)(mp_request_t *r, mp_conf_handler_t *h);

/*
 * Header filter: may change r->status and the response headers. Returns
 * MP_OK or MP_ERROR (the connection is then closed without a response, as
 * nginx does when a header filter fails).
 */
typedef int (*mp_header_filter_cb)(mp_request_t *r, mp_conf_handler_t *h);

/*
 * Body filter: sees one chunk (eof set on the last call) and appends what it
 * makes of it with mp_http_output_raw(); sets *done when it ended the body
 * early (ngx.arg[2] = true). Returns MP_OK or MP_ERROR.
 */
typedef int (*mp_body_filter_cb)(mp_request_t *r, mp_conf_handler_t *h,
                                 const char *data, size_t len, int eof,
                                 int *done);

/* Registered once per worker by lua/. */
void mp_phases_set_runner(mp_phase_runner_cb runner);
void mp_phases_set_filters(mp_header_filter_cb header, mp_body_filter_cb body);

/* Starts the phases of a parsed request (called by http.c). */
void mp_phases_start(mp_request_t *r);

/* Continues after a runner returned MP_AGAIN; rc as a runner's. */
void mp_phases_resume(mp_request_t *r, int rc);

/*
 * Runs the location's header filter, once, when the headers become fixed
 * (called by http.c). Returns MP_OK or MP_ERROR.
 */
int mp_phases_header_filter(mp_request_t *r);

/* True when the location has a body filter. */
int mp_phases_has_body_filter(const mp_request_t *r);

/* Passes a chunk through the body filter (http.c). MP_OK or MP_ERROR. */
int mp_phases_body_filter(mp_request_t *r, const char *data, size_t len,
                          int eof);

/*
 * Re-matches the location for r->uri (already changed by the caller) and
 * starts again at rewrite: ngx.exec (internal = 1) and ngx.req.set_uri with
 * jump (internal = 0). Answers 500 after 10 redirects (a cycle).
 */
void mp_phases_redirect(mp_request_t *r, int internal);

/*
 * Runs the log handler after the response was sent. Returns MP_AGAIN when
 * it waits (then mp_http_log_done() follows once it ends), else MP_OK.
 */
int mp_phases_log(mp_request_t *r);

#endif /* MP_PHASES_H */
