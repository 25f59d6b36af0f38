/*
 * listen.h: the listening sockets. The master opens them before forking;
 * every worker of every generation inherits them, so a reload never closes
 * a socket that still has connections queued in it. An address present in
 * a running generation is reused by the next one instead of being bound
 * again.
 */
#ifndef MP_LISTEN_H
#define MP_LISTEN_H

#include "core/mp_core.h"
#include "core/conf.h"

/* The accept queue length asked of listen(); the kernel caps it at
 * net.core.somaxconn. 511 is nginx's default. */
#define MP_LISTEN_BACKLOG 511

/*
 * Sets conf->listens[i].fd for every listener of conf. An address that one
 * of the running configs running[0..nrunning) already listens on takes that
 * fd (shared, not duplicated); any other address gets a new socket:
 * SO_REUSEADDR, IPV6_V6ONLY for IPv6, nonblocking, bound, listening.
 *
 * On failure logs at level (emerg at start-up, err on reload), e.g.
 *   bind() to 127.0.0.1:8080 failed (98: Address already in use)
 * closes the sockets this call opened, resets conf's fds to -1 and returns
 * MP_ERROR. Returns MP_OK otherwise.
 */
int mp_listen_open(mp_conf_t *conf, mp_conf_t *const *running,
                   size_t nrunning, int level);

/*
 * Binary upgrade: spec is MOONPOOL_LISTEN_FDS ("5=127.0.0.1:8080;6=..."),
 * or NULL. Remembers each fd that is a listening socket, so that the next
 * mp_listen_open() takes it for the listener bound to the same address
 * instead of binding again (which would fail: the old master holds it).
 * Returns MP_ERROR after logging at emerg when spec is malformed.
 */
int mp_listen_inherit(const char *spec);

/* Closes the inherited sockets mp_listen_open() did not adopt. */
void mp_listen_inherit_done(void);

/*
 * Closes conf's listening sockets except those whose fd one of
 * keep[0..nkeep) also uses, and resets conf's fds to -1. The master calls
 * it when a generation is gone, so a socket is closed exactly once: when
 * the last generation using it ends.
 */
void mp_listen_close(mp_conf_t *conf, mp_conf_t *const *keep, size_t nkeep);

/*
 * True when one of confs[0..n) uses fd as a listening socket. A new worker
 * uses it to close the sockets of other generations it inherited.
 */
int mp_listen_uses_fd(mp_conf_t *const *confs, size_t n, int fd);

#endif /* MP_LISTEN_H */
