/*
 * stats.c: per-worker counters in shared memory (see stats.h).
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "core/time.h"
#include "worker/loop.h"
#include "worker/stats.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#define MP_STATS_MAGIC 0x6d707374u /* "mpst" */

const mp_msec_t mp_stats_bucket_ms[MP_STATS_BUCKETS - 1] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
};

mp_stats_slot_t *mp_stats;
void (*mp_stats_gauge_hook)(mp_stats_slot_t *s);

/* Flat location numbering of the worker's config: first index per server. */
static unsigned *server_base;
static const mp_conf_t *base_conf;
static struct event *gauge_timer;


static void
on_gauges(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    if (mp_stats != NULL && mp_stats_gauge_hook != NULL) {
        mp_stats_gauge_hook(mp_stats);
    }
}


static size_t
count_locations(const mp_conf_t *conf)
{
    size_t i, n = 0;

    for (i = 0; i < conf->nservers; i++) {
        n += conf->servers[i].nlocations;
    }
    return n;
}


static size_t
board_size(const mp_conf_t *conf, size_t *slot_size)
{
    size_t loc = count_locations(conf);

    /* one cache line multiple per slot: workers never share a line */
    *slot_size = mp_align(sizeof(mp_stats_slot_t)
                          + loc * MP_STATS_CLASSES * sizeof(uint64_t), 64);
    return sizeof(mp_stats_board_t) + 64
           + *slot_size * (size_t) conf->cluster.workers;
}


int
mp_stats_create(mp_conf_t *conf, uint64_t reloads)
{
    static uint64_t generation;
    size_t slot_size, size = board_size(conf, &slot_size);
    mp_stats_board_t *b;

    b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
             -1, 0);
    if (b == MAP_FAILED) {
        mp_log_error(MP_LOG_ALERT, errno, "mmap(%zu) for statistics failed",
                     size);
        return MP_ERROR;
    }
    b->magic = MP_STATS_MAGIC;
    b->nworkers = (uint32_t) conf->cluster.workers;
    b->nlocations = (uint32_t) count_locations(conf);
    b->slot_size = (uint32_t) slot_size;
    b->generation = ++generation;
    b->reloads = reloads;
    conf->stats = b;
    conf->stats_size = size;
    return MP_OK;
}


void
mp_stats_destroy(mp_conf_t *conf)
{
    if (conf->stats != NULL) {
        munmap(conf->stats, conf->stats_size);
        conf->stats = NULL;
    }
}


mp_stats_slot_t *
mp_stats_slot(const mp_stats_board_t *b, unsigned i)
{
    /* slots start at the first 64-byte boundary after the header */
    uintptr_t base = mp_align((uintptr_t) b->slots, 64);

    return (mp_stats_slot_t *) (base + (size_t) i * b->slot_size);
}


void
mp_stats_attach(const mp_conf_t *conf, int worker_id)
{
    const mp_stats_board_t *b = conf->stats;
    mp_stats_slot_t *s;
    unsigned i, n = 0;

    if (b == NULL || worker_id < 0 || (uint32_t) worker_id >= b->nworkers) {
        return;
    }
#ifdef MP_NO_STATS
    /* a build to measure what counting costs: the counters stay at 0 */
    return;
#endif
    s = mp_stats_slot(b, (unsigned) worker_id);
    /* a respawned worker starts its slot again */
    memset(s, 0, b->slot_size);
    s->pid = getpid();
    s->started_msec = mp_time_msec;
    mp_stats = s;

    server_base = mp_calloc(conf->nservers + 1, sizeof(unsigned));
    for (i = 0; i < conf->nservers; i++) {
        server_base[i] = n;
        n += (unsigned) conf->servers[i].nlocations;
    }
    base_conf = conf;

    if (mp_worker_base != NULL) {
        struct timeval one_second = { 1, 0 };

        gauge_timer = event_new(mp_worker_base, -1, EV_PERSIST, on_gauges,
                                NULL);
        event_add(gauge_timer, &one_second);
    }
}


void
mp_stats_detach(void)
{
    if (gauge_timer != NULL) {
        event_free(gauge_timer);
        gauge_timer = NULL;
    }
    free(server_base);
    server_base = NULL;
    mp_stats = NULL;
}


unsigned
mp_stats_location_index(const mp_conf_t *conf, const mp_conf_location_t *loc)
{
    size_t i;

    for (i = 0; i < conf->nservers; i++) {
        const mp_conf_server_t *srv = &conf->servers[i];

        if (loc >= srv->locations && loc < srv->locations + srv->nlocations) {
            return (unsigned) (server_base != NULL && conf == base_conf
                                   ? server_base[i]
                                   : 0)
                   + (unsigned) (loc - srv->locations);
        }
    }
    return 0;
}


void
mp_stats_request(int status, const mp_conf_t *conf,
                 const mp_conf_location_t *loc, mp_msec_t duration,
                 uint64_t bytes_in, uint64_t bytes_out)
{
    mp_stats_slot_t *s = mp_stats;
    unsigned cls = (status >= 100 && status < 600) ? (unsigned) status / 100
                                                   : 0;
    unsigned b;

    if (s == NULL) {
        return;
    }
    s->requests[cls]++;
    s->bytes_in += bytes_in;
    s->bytes_out += bytes_out;
    for (b = 0; b < MP_STATS_BUCKETS - 1; b++) {
        if (duration <= mp_stats_bucket_ms[b]) {
            break;
        }
    }
    s->latency[b]++;
    s->latency_sum_ms += (uint64_t) (duration < 0 ? 0 : duration);
    if (loc != NULL) {
        s->loc[mp_stats_location_index(conf, loc) * MP_STATS_CLASSES + cls]++;
    }
}
