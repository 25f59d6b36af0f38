/*
 * phases.c: the phase engine (see phases.h). The only code that moves a
 * request from one phase to the next; handlers come from the location the
 * request matched, and lua/ supplies the runner that executes them.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "worker/location.h"
#include "worker/phases.h"

static mp_phase_runner_cb runner;


void
mp_phases_set_runner(mp_phase_runner_cb cb)
{
    runner = cb;
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
    if (rc == MP_AGAIN || rc == MP_DONE) {
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
mp_phases_log(mp_request_t *r)
{
    mp_conf_handler_t *h;

    if (r->location == NULL || runner == NULL) {
        return;
    }
    h = r->location->handlers[MP_PHASE_LOG];
    if (h == NULL) {
        return;
    }
    r->phase = MP_PHASE_LOG;
    (void) runner(r, h);
}
