/*
 * listen.c: opening and sharing the listening sockets (see listen.h).
 *
 * The sockets are not close-on-exec: a binary upgrade (USR2) hands them to
 * the new executable, which finds them in MOONPOOL_LISTEN_FDS and adopts
 * each one whose bound address a listener of its config names. Workers
 * are forked, not executed, so they inherit them either way.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "master/listen.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#define MP_LISTEN_INHERIT_MAX 256

/* Sockets handed over by a binary upgrade; -1 once adopted or closed. */
static int inherited[MP_LISTEN_INHERIT_MAX];
static size_t ninherited;


static int
same_address(const mp_conf_listen_t *a, const mp_conf_listen_t *b)
{
    const struct sockaddr_in *a4, *b4;
    const struct sockaddr_in6 *a6, *b6;

    if (a->sa.ss_family != b->sa.ss_family) {
        return 0;
    }
    switch (a->sa.ss_family) {
    case AF_INET:
        a4 = (const struct sockaddr_in *) &a->sa;
        b4 = (const struct sockaddr_in *) &b->sa;
        return a4->sin_port == b4->sin_port
               && a4->sin_addr.s_addr == b4->sin_addr.s_addr;
    case AF_INET6:
        a6 = (const struct sockaddr_in6 *) &a->sa;
        b6 = (const struct sockaddr_in6 *) &b->sa;
        return a6->sin6_port == b6->sin6_port
               && a6->sin6_scope_id == b6->sin6_scope_id
               && memcmp(&a6->sin6_addr, &b6->sin6_addr,
                         sizeof(a6->sin6_addr)) == 0;
    default:
        return a->socklen == b->socklen
               && memcmp(&a->sa, &b->sa, a->socklen) == 0;
    }
}


static int
find_running(const mp_conf_listen_t *ls, mp_conf_t *const *running,
             size_t nrunning)
{
    size_t i, j;

    for (i = 0; i < nrunning; i++) {
        for (j = 0; j < running[i]->nlistens; j++) {
            if (running[i]->listens[j].fd != -1
                && same_address(ls, &running[i]->listens[j]))
            {
                return running[i]->listens[j].fd;
            }
        }
    }
    return -1;
}


static int
open_one(const mp_conf_listen_t *ls, int level)
{
    int fd, on = 1;

    fd = socket(ls->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        mp_log_error(level, errno, "socket() for %s failed", ls->text);
        return -1;
    }
    /* Lets a restarted master bind while old connections sit in TIME_WAIT. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1) {
        mp_log_error(level, errno, "setsockopt(SO_REUSEADDR) %s failed",
                     ls->text);
        goto failed;
    }
    /*
     * Without V6ONLY, "[::]:8080" would also take IPv4 and then collide with
     * an explicit "0.0.0.0:8080" in the same config.
     */
    if (ls->sa.ss_family == AF_INET6
        && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
    {
        mp_log_error(level, errno, "setsockopt(IPV6_V6ONLY) %s failed",
                     ls->text);
        goto failed;
    }
    if (bind(fd, (const struct sockaddr *) &ls->sa, ls->socklen) == -1) {
        mp_log_error(level, errno, "bind() to %s failed", ls->text);
        goto failed;
    }
    if (listen(fd, MP_LISTEN_BACKLOG) == -1) {
        mp_log_error(level, errno, "listen() to %s failed", ls->text);
        goto failed;
    }
    /*
     * Deferred accept (nginx's "deferred"): the kernel hands a connection
     * over once its first bytes arrived, so the worker reads the request
     * right after accept() without a round trip through epoll. A failure
     * only costs that shortcut.
     */
    if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &on, sizeof(on)) == -1) {
        mp_log_error(MP_LOG_WARN, errno,
                     "setsockopt(TCP_DEFER_ACCEPT) %s failed", ls->text);
    }
    return fd;

failed:
    close(fd);
    return -1;
}


int
mp_listen_inherit(const char *spec)
{
    const char *p = spec;
    char *end;
    long fd;
    int on;
    socklen_t len;

    ninherited = 0;
    if (spec == NULL || spec[0] == '\0') {
        return MP_OK;
    }
    while (*p != '\0') {
        errno = 0;
        fd = strtol(p, &end, 10);
        if (errno != 0 || end == p || fd < 0 || fd > INT32_MAX
            || (*end != '=' && *end != ';' && *end != '\0')
            || ninherited == MP_LISTEN_INHERIT_MAX) {
            mp_log_error(MP_LOG_EMERG, 0, "invalid MOONPOOL_LISTEN_FDS "
                         "\"%s\"", spec);
            return MP_ERROR;
        }
        /* only a listening stream socket is worth adopting */
        len = sizeof(on);
        if (getsockopt((int) fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == -1
            || !on) {
            mp_log_error(MP_LOG_WARN, errno, "inherited fd %ld is not a "
                         "listening socket, ignored", fd);
        } else {
            inherited[ninherited++] = (int) fd;
        }
        p = end + strcspn(end, ";");
        if (*p == ';') {
            p++;
        }
    }
    return MP_OK;
}


void
mp_listen_inherit_done(void)
{
    size_t i;

    for (i = 0; i < ninherited; i++) {
        if (inherited[i] != -1) {
            close(inherited[i]);
            inherited[i] = -1;
        }
    }
    ninherited = 0;
}


/* An inherited socket bound to ls's address, taken from the list; or -1. */
static int
adopt_inherited(const mp_conf_listen_t *ls)
{
    mp_conf_listen_t bound;
    size_t i;
    int fd;

    for (i = 0; i < ninherited; i++) {
        if (inherited[i] == -1) {
            continue;
        }
        bound.socklen = sizeof(bound.sa);
        if (getsockname(inherited[i], (struct sockaddr *) &bound.sa,
                        &bound.socklen) == -1) {
            continue;
        }
        if (same_address(ls, &bound)) {
            fd = inherited[i];
            inherited[i] = -1;
            mp_log_error(MP_LOG_NOTICE, 0, "using inherited socket %d for %s",
                         fd, ls->text);
            return fd;
        }
    }
    return -1;
}


int
mp_listen_open(mp_conf_t *conf, mp_conf_t *const *running, size_t nrunning,
               int level)
{
    mp_conf_listen_t *ls;
    size_t i;
    int fd;

    for (i = 0; i < conf->nlistens; i++) {
        conf->listens[i].fd = -1;
    }
    for (i = 0; i < conf->nlistens; i++) {
        ls = &conf->listens[i];
        fd = find_running(ls, running, nrunning);
        if (fd == -1) {
            fd = adopt_inherited(ls);
        }
        if (fd == -1) {
            fd = open_one(ls, level);
            if (fd == -1) {
                goto failed;
            }
        }
        ls->fd = fd;
    }
    return MP_OK;

failed:
    /* Close only what this call opened; shared fds belong to others. */
    mp_listen_close(conf, running, nrunning);
    return MP_ERROR;
}


int
mp_listen_uses_fd(mp_conf_t *const *confs, size_t n, int fd)
{
    size_t i, j;

    for (i = 0; i < n; i++) {
        for (j = 0; j < confs[i]->nlistens; j++) {
            if (confs[i]->listens[j].fd == fd) {
                return 1;
            }
        }
    }
    return 0;
}


void
mp_listen_close(mp_conf_t *conf, mp_conf_t *const *keep, size_t nkeep)
{
    size_t i;
    int fd;

    for (i = 0; i < conf->nlistens; i++) {
        fd = conf->listens[i].fd;
        conf->listens[i].fd = -1;
        if (fd != -1 && !mp_listen_uses_fd(keep, nkeep, fd)) {
            close(fd);
        }
    }
}
