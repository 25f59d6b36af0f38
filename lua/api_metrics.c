/*
 * api_metrics.c: require "moonpool.metrics" -- render() returns the whole
 * server's metrics in Prometheus text exposition format: every worker's
 * slot of the statistics board (worker/stats.h) aggregated, with per-worker
 * labels where a value belongs to one worker, plus the shared dicts.
 *
 * A moonpool-only module, so it stays out of the ngx.* tables. Rendering
 * reads other workers' slots without locks (single-writer counters); the
 * dict figures take each dict's shard locks briefly.
 */
#include "core/mp_core.h"
#include "lua/vm.h"
#include "shm/dict.h"
#include "worker/stats.h"

#include <lauxlib.h>
#include <stdio.h>

int mp_lua_timers_pending(void);
int mp_lua_timers_running(void);

static const char *const class_names[MP_STATS_CLASSES] = {
    "other", "1xx", "2xx", "3xx", "4xx", "5xx",
};

static const mp_conf_t *metrics_conf;


static void
addf(luaL_Buffer *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));


static void
addf(luaL_Buffer *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0) {
        luaL_addlstring(b, line, mp_min((size_t) n, sizeof(line) - 1));
    }
}


static void
header(luaL_Buffer *b, const char *name, const char *type, const char *help)
{
    addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}


/* A label value with '"', '\\' and newlines escaped (exposition format). */
static void
add_label(luaL_Buffer *b, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            luaL_addchar(b, '\\');
            luaL_addchar(b, s[i]);
        } else if (s[i] == '\n') {
            luaL_addstring(b, "\\n");
        } else {
            luaL_addchar(b, s[i]);
        }
    }
}


static void
render_workers(luaL_Buffer *b, const mp_stats_board_t *board)
{
    unsigned w, c;
    mp_stats_slot_t *s;

    header(b, "moonpool_requests_total", "counter",
           "Requests answered, by worker and status class.");
    for (w = 0; w < board->nworkers; w++) {
        s = mp_stats_slot(board, w);
        for (c = 0; c < MP_STATS_CLASSES; c++) {
            addf(b, "moonpool_requests_total{worker=\"%u\",status=\"%s\"} "
                 "%llu\n", w, class_names[c],
                 (unsigned long long) s->requests[c]);
        }
    }
    header(b, "moonpool_received_bytes_total", "counter",
           "Request bytes received (headers and bodies).");
    for (w = 0; w < board->nworkers; w++) {
        addf(b, "moonpool_received_bytes_total{worker=\"%u\"} %llu\n", w,
             (unsigned long long) mp_stats_slot(board, w)->bytes_in);
    }
    header(b, "moonpool_sent_bytes_total", "counter",
           "Response bytes sent.");
    for (w = 0; w < board->nworkers; w++) {
        addf(b, "moonpool_sent_bytes_total{worker=\"%u\"} %llu\n", w,
             (unsigned long long) mp_stats_slot(board, w)->bytes_out);
    }
    header(b, "moonpool_connections", "gauge",
           "Open client connections: active (a request in flight) or idle.");
    for (w = 0; w < board->nworkers; w++) {
        s = mp_stats_slot(board, w);
        addf(b, "moonpool_connections{worker=\"%u\",state=\"active\"} %llu\n"
             "moonpool_connections{worker=\"%u\",state=\"idle\"} %llu\n", w,
             (unsigned long long) s->conns_busy, w,
             (unsigned long long) (s->conns_open > s->conns_busy
                                       ? s->conns_open - s->conns_busy
                                       : 0));
    }
    header(b, "moonpool_lua_memory_bytes", "gauge",
           "Memory of each worker's Lua VM (refreshed every second).");
    for (w = 0; w < board->nworkers; w++) {
        addf(b, "moonpool_lua_memory_bytes{worker=\"%u\"} %llu\n", w,
             (unsigned long long) mp_stats_slot(board, w)->lua_memory_kb
                 * 1024);
    }
    header(b, "moonpool_timers", "gauge",
           "ngx.timer callbacks pending and running (every second).");
    for (w = 0; w < board->nworkers; w++) {
        s = mp_stats_slot(board, w);
        addf(b, "moonpool_timers{worker=\"%u\",state=\"pending\"} %llu\n"
             "moonpool_timers{worker=\"%u\",state=\"running\"} %llu\n", w,
             (unsigned long long) s->timers_pending, w,
             (unsigned long long) s->timers_running);
    }
    header(b, "moonpool_cosocket_pool_connections", "gauge",
           "Idle connections in the cosocket keepalive pools.");
    for (w = 0; w < board->nworkers; w++) {
        addf(b, "moonpool_cosocket_pool_connections{worker=\"%u\"} %llu\n", w,
             (unsigned long long) mp_stats_slot(board, w)->cosocket_pool);
    }
    header(b, "moonpool_worker_start_time_seconds", "gauge",
           "When each worker started (Unix time), with its pid.");
    for (w = 0; w < board->nworkers; w++) {
        s = mp_stats_slot(board, w);
        addf(b, "moonpool_worker_start_time_seconds{worker=\"%u\","
             "pid=\"%lld\"} %.3f\n", w, (long long) s->pid,
             (double) s->started_msec / 1000);
    }
}


static void
render_latency(luaL_Buffer *b, const mp_stats_board_t *board)
{
    uint64_t cum = 0, sum = 0, bucket[MP_STATS_BUCKETS] = { 0 };
    unsigned w, i;

    for (w = 0; w < board->nworkers; w++) {
        mp_stats_slot_t *s = mp_stats_slot(board, w);

        for (i = 0; i < MP_STATS_BUCKETS; i++) {
            bucket[i] += s->latency[i];
        }
        sum += s->latency_sum_ms;
    }
    header(b, "moonpool_request_duration_seconds", "histogram",
           "Time from a request's arrival to the end of its response.");
    for (i = 0; i < MP_STATS_BUCKETS; i++) {
        cum += bucket[i];
        if (i < MP_STATS_BUCKETS - 1) {
            addf(b, "moonpool_request_duration_seconds_bucket{le=\"%g\"} "
                 "%llu\n", (double) mp_stats_bucket_ms[i] / 1000,
                 (unsigned long long) cum);
        } else {
            addf(b, "moonpool_request_duration_seconds_bucket{le=\"+Inf\"} "
                 "%llu\n", (unsigned long long) cum);
        }
    }
    addf(b, "moonpool_request_duration_seconds_sum %.3f\n"
         "moonpool_request_duration_seconds_count %llu\n",
         (double) sum / 1000, (unsigned long long) cum);
}


static void
render_locations(luaL_Buffer *b, const mp_conf_t *conf,
                 const mp_stats_board_t *board)
{
    size_t s, l;
    unsigned w, c, idx = 0;
    uint64_t n;

    header(b, "moonpool_location_requests_total", "counter",
           "Requests by location (all workers) and status class.");
    for (s = 0; s < conf->nservers; s++) {
        for (l = 0; l < conf->servers[s].nlocations; l++, idx++) {
            const mp_conf_location_t *loc = &conf->servers[s].locations[l];

            for (c = 0; c < MP_STATS_CLASSES; c++) {
                n = 0;
                for (w = 0; w < board->nworkers; w++) {
                    n += mp_stats_slot(board, w)
                             ->loc[idx * MP_STATS_CLASSES + c];
                }
                if (n == 0) {
                    continue;
                }
                addf(b, "moonpool_location_requests_total{server=\"%zu\","
                     "location=\"", s);
                add_label(b, loc->pattern.data, loc->pattern.len);
                addf(b, "\",status=\"%s\"} %llu\n", class_names[c],
                     (unsigned long long) n);
            }
        }
    }
}


static void
render_dicts(luaL_Buffer *b, const mp_conf_t *conf)
{
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        { "moonpool_shdict_capacity_bytes", "gauge", "Size of the dict." },
        { "moonpool_shdict_free_bytes", "gauge", "Free space in the dict." },
        { "moonpool_shdict_items", "gauge", "Items stored." },
        { "moonpool_shdict_evictions_total", "counter",
          "Live items evicted to make room (forcible stores)." },
    };
    mp_dict_stats_t st;
    size_t i, k;
    uint64_t v;

    for (k = 0; k < mp_nelems(m); k++) {
        header(b, m[k].name, m[k].type, m[k].help);
        for (i = 0; i < conf->ndicts; i++) {
            mp_dict_t *d = conf->dicts[i].dict;

            if (d == NULL) {
                continue;
            }
            mp_dict_stats(d, &st);
            v = k == 0   ? mp_dict_capacity(d)
                : k == 1 ? mp_dict_free_space(d)
                : k == 2 ? st.items
                         : st.evictions;
            addf(b, "%s{dict=\"", m[k].name);
            add_label(b, conf->dicts[i].name.data, conf->dicts[i].name.len);
            addf(b, "\"} %llu\n", (unsigned long long) v);
        }
    }
}


static int
metrics_render(lua_State *L)
{
    const mp_conf_t *conf = metrics_conf;
    const mp_stats_board_t *board;
    luaL_Buffer b;

    if (conf == NULL || conf->stats == NULL) {
        return luaL_error(L, "no statistics board (not in a worker)");
    }
    board = conf->stats;
    luaL_buffinit(L, &b);
    render_workers(&b, board);
    render_latency(&b, board);
    render_locations(&b, conf, board);
    render_dicts(&b, conf);
    header(&b, "moonpool_reloads_total", "counter",
           "Configuration reloads since the master started.");
    addf(&b, "moonpool_reloads_total %llu\n",
         (unsigned long long) board->reloads);
    header(&b, "moonpool_worker_exits_total", "counter",
           "Workers reaped by the master (crashes, restarts, reloads).");
    addf(&b, "moonpool_worker_exits_total %llu\n",
         (unsigned long long) board->worker_exits);
    luaL_pushresult(&b);
    return 1;
}


static int
metrics_module(lua_State *L)
{
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, metrics_render);
    lua_setfield(L, -2, "render");
    return 1;
}


static void
refresh_gauges(mp_stats_slot_t *s)
{
    lua_State *L = mp_lua_vm();

    if (L != NULL) {
        s->lua_memory_kb = (uint64_t) lua_gc(L, LUA_GCCOUNT, 0);
    }
    s->timers_pending = (uint64_t) mp_lua_timers_pending();
    s->timers_running = (uint64_t) mp_lua_timers_running();
}


void
mp_lua_inject_metrics_api(lua_State *L, const mp_conf_t *conf)
{
    metrics_conf = conf;
    mp_stats_gauge_hook = refresh_gauges;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, metrics_module);
    lua_setfield(L, -2, "moonpool.metrics");
    lua_pop(L, 2);
}
