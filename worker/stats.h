/*
 * stats.h: per-worker counters in shared memory, the source of the
 * metrics endpoint (lua/api_metrics.c).
 *
 * The master maps one board per config generation before fork: a header
 * and one slot per worker. Each worker writes only its own slot, with
 * plain stores (aligned 64-bit words: no tearing on the platforms we run
 * on), so counting costs no lock and no atomic instruction; any process
 * may read every slot to render the whole server.
 */
#ifndef MP_STATS_H
#define MP_STATS_H

#include "core/mp_core.h"
#include "core/conf.h"

/* Latency histogram upper bounds, in milliseconds (the last is +Inf). */
#define MP_STATS_BUCKETS 12
extern const mp_msec_t mp_stats_bucket_ms[MP_STATS_BUCKETS - 1];

/* Status classes: [0] other, [1] 1xx ... [5] 5xx. */
#define MP_STATS_CLASSES 6

typedef struct {
    int64_t pid;
    int64_t started_msec;
    uint64_t requests[MP_STATS_CLASSES];
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t conns_open;             /* gauge */
    uint64_t conns_busy;             /* gauge: a request in flight */
    uint64_t latency[MP_STATS_BUCKETS];
    uint64_t latency_sum_ms;
    uint64_t lua_memory_kb;          /* gauges refreshed once a second */
    uint64_t timers_pending;
    uint64_t timers_running;
    uint64_t cosocket_pool;
    uint64_t loc[];                  /* [nlocations][MP_STATS_CLASSES] */
} mp_stats_slot_t;

typedef struct {
    uint32_t magic;
    uint32_t nworkers;
    uint32_t nlocations;
    uint32_t slot_size;              /* bytes, a multiple of 64 */
    uint64_t generation;
    uint64_t reloads;
    uint64_t worker_exits;           /* written by the master */
    char slots[];
} mp_stats_board_t;

/* This worker's slot; NULL in the master or without a board. */
extern mp_stats_slot_t *mp_stats;

/*
 * Master: maps a board for conf (stored in conf->stats) with the given
 * reload count; MP_OK or MP_ERROR (logged). Unmapped by mp_stats_destroy.
 */
int mp_stats_create(mp_conf_t *conf, uint64_t reloads);
void mp_stats_destroy(mp_conf_t *conf);

/*
 * Worker: takes slot worker_id of conf's board and refreshes its gauges
 * once a second through mp_stats_gauge_hook (lua/ sets it: VM memory,
 * timers). Detach frees what attach made (worker exit).
 */
void mp_stats_attach(const mp_conf_t *conf, int worker_id);
void mp_stats_detach(void);
extern void (*mp_stats_gauge_hook)(mp_stats_slot_t *s);

/* Slot i of a board, for readers. */
mp_stats_slot_t *mp_stats_slot(const mp_stats_board_t *b, unsigned i);

/* The flat index of a location (server order, then location order). */
unsigned mp_stats_location_index(const mp_conf_t *conf,
                                 const mp_conf_location_t *loc);

/* Counts a finished request (called by http.c after the response). */
void mp_stats_request(int status, const mp_conf_t *conf,
                      const mp_conf_location_t *loc, mp_msec_t duration,
                      uint64_t bytes_in, uint64_t bytes_out);

#endif /* MP_STATS_H */
