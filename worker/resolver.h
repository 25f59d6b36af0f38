/*
 * resolver.h: asynchronous host name resolution for cosockets, on libevent's
 * evdns.
 *
 * One evdns base per worker, created on first use: the nameservers of
 * lua.resolver when the config names some, else those of /etc/resolv.conf
 * (its search list and /etc/hosts are not used, as OpenResty's resolver
 * does not use them). "localhost" and IP literals are answered at once
 * without DNS. Only A records are asked for.
 *
 * Errors are reported with nginx's resolver codes and texts, so that the
 * Lua layer can build OpenResty's "<host> could not be resolved (3: Host
 * not found)".
 *
 * Not thread-safe; a worker is single-threaded.
 */
#ifndef MP_RESOLVER_H
#define MP_RESOLVER_H

#include "core/mp_core.h"

#include <sys/socket.h>
#include <netinet/in.h>

typedef struct mp_resolver_req_s mp_resolver_req_t;

/*
 * Called once per started query: code 0 and the address (port 0) on
 * success, else an nginx resolver code (1..5, or 110 for a timeout) and
 * its text ("Host not found"). sa is borrowed for the call only.
 */
typedef void (*mp_resolver_cb)(void *data, int code, const char *text,
                               const struct sockaddr *sa, socklen_t len);

/*
 * Parses host as an IP literal (v4, or v6 with or without brackets) or
 * "localhost" into *ss (port 0). Returns MP_OK, or MP_DECLINED when host
 * needs DNS.
 */
int mp_resolver_literal(const char *host, struct sockaddr_storage *ss,
                        socklen_t *len);

/*
 * Starts resolving host (NUL-terminated; copied). Returns a handle for
 * mp_resolver_cancel(); cb runs later from the event loop, never from
 * this call. Returns NULL when no resolver can be set up (already logged);
 * *err then says why.
 */
mp_resolver_req_t *mp_resolver_start(const char *host, mp_resolver_cb cb,
                                     void *data, const char **err);

/* Stops a query: its callback will not run. The handle is invalid after. */
void mp_resolver_cancel(mp_resolver_req_t *q);

/*
 * Frees the evdns base (it belongs to the event base it was made on); the
 * next lookup makes a new one. The master calls it after lua.init ran on
 * a temporary loop.
 */
void mp_resolver_cleanup(void);

#endif /* MP_RESOLVER_H */
