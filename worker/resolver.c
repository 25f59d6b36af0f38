/*
 * resolver.c: host names to addresses for cosockets (see resolver.h).
 *
 * evdns runs a callback exactly once for every query it accepted, even a
 * cancelled one (with DNS_ERR_CANCEL, or with the real answer when that was
 * already scheduled). So a query record lives until its callback ran, and
 * cancelling only clears the user callback: the record then frees itself
 * when evdns calls back.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "worker/loop.h"
#include "worker/resolver.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <strings.h>

#include <event2/dns.h>

struct mp_resolver_req_s {
    mp_resolver_cb cb;     /* NULL once cancelled */
    void *data;
    struct evdns_request *req;
};

static struct evdns_base *dns;
static int dns_failed;

/* nginx's resolver codes (ngx_resolver.h) and their texts. */
#define MP_RESOLVE_SERVFAIL 2
#define MP_RESOLVE_NXDOMAIN 3
#define MP_RESOLVE_TIMEDOUT 110

static const char *const code_text[] = {
    "", "Format error", "Server failure", "Host not found",
    "Unimplemented", "Operation refused",
};


int
mp_resolver_literal(const char *host, struct sockaddr_storage *ss,
                    socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *) ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;
    char v6[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);

    memset(ss, 0, sizeof(*ss));
    if (strcasecmp(host, "localhost") == 0) {
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *len = sizeof(*sin);
        return MP_OK;
    }
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        *len = sizeof(*sin);
        return MP_OK;
    }
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']'
        && n - 2 < sizeof(v6)) {
        memcpy(v6, host + 1, n - 2);
        v6[n - 2] = '\0';
        host = v6;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        *len = sizeof(*sin6);
        return MP_OK;
    }
    return MP_DECLINED;
}


void
mp_resolver_cleanup(void)
{
    if (dns != NULL) {
        evdns_base_free(dns, 1); /* pending lookups fail, callbacks run */
        dns = NULL;
    }
    dns_failed = 0;
}


/* The worker's evdns base, created on first use from the config. */
static struct evdns_base *
get_dns(void)
{
    const mp_conf_t *conf = mp_worker_conf;
    char num[32];
    size_t i;
    int rc;

    if (dns != NULL || dns_failed) {
        return dns;
    }
    dns = evdns_base_new(mp_worker_base, 0);
    if (dns == NULL) {
        mp_log_error(MP_LOG_ALERT, 0, "evdns_base_new() failed");
        dns_failed = 1;
        return NULL;
    }
    if (conf != NULL && conf->lua.nresolvers > 0) {
        for (i = 0; i < conf->lua.nresolvers; i++) {
            if (evdns_base_nameserver_ip_add(dns, conf->lua.resolvers[i])
                != 0) {
                mp_log_error(MP_LOG_ERR, 0, "cannot use resolver \"%s\"",
                             conf->lua.resolvers[i]);
            }
        }
    } else {
        rc = evdns_base_resolv_conf_parse(dns, DNS_OPTION_NAMESERVERS,
                                          "/etc/resolv.conf");
        if (rc != 0) {
            /* evdns falls back to 127.0.0.1 on its own for most codes */
            mp_log_error(MP_LOG_WARN, 0, "reading \"/etc/resolv.conf\" "
                         "failed (evdns code %d)", rc);
        }
    }
    /*
     * lua.resolver_timeout bounds the whole query as nginx's
     * resolver_timeout does: two tries of half of it each.
     */
    if (conf != NULL && conf->lua.resolver_timeout > 0) {
        snprintf(num, sizeof(num), "%.3f",
                 (double) conf->lua.resolver_timeout / 2000.0);
        evdns_base_set_option(dns, "timeout:", num);
        evdns_base_set_option(dns, "attempts:", "2");
    }
    return dns;
}


static void
on_dns(int result, char type, int count, int ttl, void *addresses,
       void *arg)
{
    mp_resolver_req_t *q = arg;
    struct sockaddr_in sin;
    int code;

    (void) ttl;
    mp_worker_time_update();
    if (q->cb == NULL || result == DNS_ERR_CANCEL) {
        free(q);
        return;
    }
    if (result == DNS_ERR_NONE && type == DNS_IPv4_A && count > 0) {
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        memcpy(&sin.sin_addr, addresses, 4);
        q->cb(q->data, 0, "", (struct sockaddr *) &sin, sizeof(sin));
        free(q);
        return;
    }
    if (result == DNS_ERR_NONE || result == DNS_ERR_NODATA) {
        code = MP_RESOLVE_NXDOMAIN; /* the name has no A record */
    } else if (result == DNS_ERR_TIMEOUT) {
        code = MP_RESOLVE_TIMEDOUT;
    } else if (result >= 1 && result <= 5) {
        code = result; /* the same numbering: RCODEs */
    } else {
        code = MP_RESOLVE_SERVFAIL;
    }
    q->cb(q->data, code,
          code == MP_RESOLVE_TIMEDOUT ? "Operation timed out"
                                      : code_text[code],
          NULL, 0);
    free(q);
}


mp_resolver_req_t *
mp_resolver_start(const char *host, mp_resolver_cb cb, void *data,
                  const char **err)
{
    struct evdns_base *db = get_dns();
    mp_resolver_req_t *q;

    if (db == NULL) {
        *err = "no resolver defined";
        return NULL;
    }
    q = mp_calloc(1, sizeof(*q));
    q->cb = cb;
    q->data = data;
    q->req = evdns_base_resolve_ipv4(db, host, DNS_QUERY_NO_SEARCH, on_dns,
                                     q);
    if (q->req == NULL) {
        /* evdns refused the name (too long, bad label): nothing to ask */
        free(q);
        *err = "failed to start resolving";
        return NULL;
    }
    return q;
}


void
mp_resolver_cancel(mp_resolver_req_t *q)
{
    q->cb = NULL;
    evdns_cancel_request(dns, q->req);
}
