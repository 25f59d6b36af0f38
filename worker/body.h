/*
 * body.h: the request body, in memory or spooled to a temp file, and the
 * raw request head it follows.
 *
 * http.c's on_body hands every chunk to mp_body_append(). A body stays in
 * r->body (a buffer the connection reuses, so small bodies cost no malloc)
 * until it would exceed http.client_body_buffer_size; from then on the
 * whole body is in a file under http.client_body_temp_path, written as the
 * bytes arrive, as nginx does. The file belongs to the request: a cleanup
 * on r->pool closes it and removes it when the request ends, the
 * connection closes or the request is aborted, so nothing outlives it.
 *
 * lua/api_req.c reads and replaces the body through the other functions
 * (ngx.req.get_body_file, set_body_data, set_body_file, discard_body).
 */
#ifndef MP_BODY_H
#define MP_BODY_H

#include "core/mp_core.h"
#include "worker/http.h"

/* A body held in a file (r->body_file); lives in r->pool. */
struct mp_body_file_s {
    int fd;             /* open for reading and writing; -1 once closed */
    char *path;         /* NUL-terminated */
    uint64_t size;      /* bytes written so far */
    unsigned clean:1;   /* remove the file when the request ends */
};

/*
 * Appends len bytes of the body to r: to memory while the total stays
 * within client_body_buffer_size, else to a temp file created at the first
 * chunk past it (with what memory held so far). Checks client_max_body_size
 * (0: no limit). Returns 0, or the status to answer with: 413 over the
 * limit, 500 when the file cannot be created or written (logged at crit).
 */
int mp_body_append(mp_request_t *r, const char *data, size_t len);

/*
 * Replaces the body with a copy of data (ngx.req.set_body_data): a temp
 * file is closed (and removed when it was ours).
 */
void mp_body_set_data(mp_request_t *r, const char *data, size_t len);

/*
 * Makes the file at path the body (ngx.req.set_body_file); clean: remove it
 * when the request ends. The path is copied. Returns MP_OK, or MP_ERROR
 * with *err set to OpenResty's wording ("stat() \"/x\" failed") when the
 * file cannot be opened or is not a regular file.
 */
int mp_body_set_file(mp_request_t *r, const char *path, size_t len,
                     int clean, const char **err);

/* Drops the body (ngx.req.discard_body); a temp file goes at once. */
void mp_body_discard(mp_request_t *r);

/*
 * The request line and headers exactly as received, CRLFs and the empty
 * line that ends them included; they are still in the connection's read
 * buffer while the request runs. with_line = 0 leaves out the request
 * line. An empty string if the head is not found (never on a request that
 * reached a handler).
 */
mp_str_t mp_body_raw_header(const mp_request_t *r, int with_line);

#endif /* MP_BODY_H */
