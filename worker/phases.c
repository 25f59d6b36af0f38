/*
 * phases.c: the phase engine (see phases.h). The only code that moves a
 * request from one phase to the next; handlers come from the location the
 * request matched, and lua/ supplies the runners that execute them.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "worker/heartbeat.h"
#include "worker/location.h"
#include "worker/phases.h"

/* nginx's limit on internal redirects before it declares a cycle */
#define MP_PHASES_MAX_REDIRECTS 10

static mp_phase_runner_cb runner;
static mp_header_filter_cb header_filter;
static mp_body_filter_cb body_filter;


void
mp_phases_set_runner(mp_phase_runner_cb cb)
{
    runner = cb;
}


void
mp_phases_set_filters(mp_header_filter_cb header, mp_body_filter_cb body)
{
    header_filter = header;
    body_filter = body;
}


/* An error inside the handlers: 500 if nothing was sent, else cut it off. */
static void
fail(mp_request_t *r)
{
    mp_http_abort(r);
}


/* Runs phases from r->phase on; returns when done or suspended. */
static void
run(mp_request_t *r)
{
    const mp_conf_location_t *loc = r->location;
    mp_conf_handler_t *h;
    int rc;

    for (; r->phase <= MP_PHASE_CONTENT; r->phase++) {
        h = loc->handlers[r->phase];
        if (h == NULL) {
            if (r->phase == MP_PHASE_CONTENT) {
                mp_http_send_error_page(r, 404);
                return;
            }
            continue;
        }
        mp_heartbeat_running(h->chunk); /* named by the watchdog */
        rc = runner(r, h);
        if (rc == MP_OK || rc == MP_DECLINED) {
            continue;
        }
        if (rc == MP_AGAIN || rc == MP_DONE) {
            return;
        }
        fail(r);
        return;
    }
    mp_http_finalize(r, 0);
}


void
mp_phases_start(mp_request_t *r)
{
    const mp_conf_server_t *srv;

    srv = mp_location_find_server(r->conn->listen, r->host.data, r->host.len);
    r->server = srv;
    r->location = mp_location_find(srv, r->uri.data, r->uri.len);
    if (r->location == NULL || runner == NULL) {
        mp_http_send_error_page(r, 404);
        return;
    }
    r->phase = MP_PHASE_REWRITE;
    run(r);
}


void
mp_phases_resume(mp_request_t *r, int rc)
{
    if (rc == MP_AGAIN) {
        return;
    }
    if (r->phase == MP_PHASE_LOG) {
        mp_http_log_done(r); /* its result is moot: the response is out */
        return;
    }
    if (rc == MP_DONE) {
        return;
    }
    if (rc != MP_OK && rc != MP_DECLINED) {
        fail(r);
        return;
    }
    r->phase++;
    run(r);
}


void
mp_phases_redirect(mp_request_t *r, int internal)
{
    if (++r->redirects > MP_PHASES_MAX_REDIRECTS) {
        mp_log_error(MP_LOG_ERR, 0, "rewrite or internal redirection cycle "
                     "while internally redirecting to \"%.*s\"",
                     (int) r->uri.len, r->uri.data);
        mp_http_send_error_page(r, 500);
        return;
    }
    if (internal) {
        r->internal = 1;
    }
    r->location = mp_location_find(r->server, r->uri.data, r->uri.len);
    if (r->location == NULL) {
        mp_http_send_error_page(r, 404);
        return;
    }
    r->phase = MP_PHASE_REWRITE;
    run(r);
}


int
mp_phases_header_filter(mp_request_t *r)
{
    mp_conf_handler_t *h;
    mp_phase_t saved = r->phase;
    int rc;

    if (r->location == NULL || header_filter == NULL) {
        return MP_OK;
    }
    h = r->location->handlers[MP_PHASE_HEADER_FILTER];
    if (h == NULL) {
        return MP_OK;
    }
    r->phase = MP_PHASE_HEADER_FILTER;
    rc = header_filter(r, h);
    r->phase = saved;
    return rc;
}


int
mp_phases_has_body_filter(const mp_request_t *r)
{
    return r->location != NULL && body_filter != NULL
           && r->location->handlers[MP_PHASE_BODY_FILTER] != NULL;
}


int
mp_phases_body_filter(mp_request_t *r, const char *data, size_t len, int eof)
{
    mp_phase_t saved = r->phase;
    int rc, done = 0;

    if (r->body_filter_done) {
        return MP_OK; /* the filter ended the body: the rest is dropped */
    }
    r->phase = MP_PHASE_BODY_FILTER;
    rc = body_filter(r, r->location->handlers[MP_PHASE_BODY_FILTER], data,
                     len, eof, &done);
    r->phase = saved;
    if (done) {
        r->body_filter_done = 1;
    }
    return rc;
}


int
mp_phases_log(mp_request_t *r)
{
    mp_conf_handler_t *h;

    if (r->location == NULL || runner == NULL) {
        return MP_OK;
    }
    h = r->location->handlers[MP_PHASE_LOG];
    if (h == NULL) {
        return MP_OK;
    }
    r->phase = MP_PHASE_LOG;
    return runner(r, h) == MP_AGAIN ? MP_AGAIN : MP_OK;
}
