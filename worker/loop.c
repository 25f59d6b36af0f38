/*
 * loop.c: a worker process (see loop.h). One event_base; the listening
 * sockets inherited from the master are accepted on with EV_PERSIST
 * events; signals arrive as libevent signal events, so handlers run in the
 * loop like any other callback.
 *
 * Graceful stop (SIGQUIT): stop accepting at once (the listening sockets
 * stay open in the master and the new generation), let requests in flight
 * finish, keep idle keep-alive connections for a short grace period and
 * answer a request arriving on one with "Connection: close" (http.c), and
 * exit when no connection is left or when shutdown_timeout expires. Fast
 * stop (SIGTERM, SIGINT): exit now.
 *
 * Once it accepts, the worker reports ready to the master through the
 * heartbeat board, and stamps its slot from a timer while the watchdog is
 * on (heartbeat.h). Commands from the master (the profiler) arrive on the
 * master channel, one more read event (channel.h).
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "core/time.h"
#include "worker/accesslog.h"
#include "worker/channel.h"
#include "worker/heartbeat.h"
#include "worker/http.h"
#include "worker/location.h"
#include "worker/loop.h"
#include "worker/stats.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

/* Accepts per readiness event: enough to drain a burst, small enough that
 * one worker does not take every connection of a burst from the others. */
#define MP_ACCEPT_BATCH 16

int mp_worker_id = -1;
int mp_worker_count;
const mp_conf_t *mp_worker_conf;
struct event_base *mp_worker_base;
mp_worker_init_cb mp_worker_init_hook;
mp_worker_exit_cb mp_worker_exit_hook;
void (*mp_worker_shutdown_hook)(void);
int (*mp_worker_busy_hook)(void);

static struct event **listen_evs;
static int accepting;
static int exiting;
static int exit_status;
static struct event *shutdown_timer;
static struct event *beat_timer;

typedef struct {
    int signo;
    void (*handler)(int signo);
} worker_signal_t;

static void on_graceful(int signo);
static void on_fast(int signo);
static void on_reopen(int signo);

static const worker_signal_t worker_signals[] = {
    { SIGQUIT, on_graceful },
    { SIGTERM, on_fast },
    { SIGINT, on_fast },
    { SIGUSR1, on_reopen },
};

static struct event *signal_evs[mp_nelems(worker_signals)];


void
mp_worker_time_update(void)
{
    struct timeval tv;

    if (event_base_gettimeofday_cached(mp_worker_base, &tv) == 0) {
        mp_time_set(tv.tv_sec, tv.tv_usec);
    } else {
        mp_time_update();
    }
}


int
mp_worker_exiting(void)
{
    return exiting;
}


static void
set_accepting(int on)
{
    size_t i;

    if (accepting == on) {
        return;
    }
    accepting = on;
    for (i = 0; i < mp_worker_conf->nlistens; i++) {
        if (on) {
            event_add(listen_evs[i], NULL);
        } else {
            event_del(listen_evs[i]);
        }
    }
}


void
mp_worker_check_exit(void)
{
    if (exiting && mp_http_active_connections() == 0
        && (mp_worker_busy_hook == NULL || mp_worker_busy_hook() == 0)) {
        event_base_loopbreak(mp_worker_base);
    }
}


void
mp_worker_conn_closed(void)
{
    if (exiting) {
        mp_worker_check_exit();
        return;
    }
    if (!accepting
        && mp_http_active_connections()
               < (size_t) mp_worker_conf->cluster.max_connections) {
        set_accepting(1);
    }
}


static void
on_accept(evutil_socket_t fd, short what, void *arg)
{
    const mp_conf_listen_t *ls = arg;
    struct sockaddr_storage peer;
    socklen_t len;
    int i, s;

    (void) what;
    mp_worker_time_update();
    for (i = 0; i < MP_ACCEPT_BATCH; i++) {
        if (mp_http_active_connections()
            >= (size_t) mp_worker_conf->cluster.max_connections) {
            mp_log_error(MP_LOG_WARN, 0,
                         "%d worker_connections are not enough, "
                         "not accepting until one closes",
                         mp_worker_conf->cluster.max_connections);
            set_accepting(0);
            return;
        }
        len = sizeof(peer);
        s = accept4(fd, (struct sockaddr *) &peer, &len,
                    SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (s < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) {
                return;
            }
            /* EMFILE and friends: log, and let the next event retry */
            mp_log_error(MP_LOG_CRIT, errno, "accept4() on %s failed",
                         ls->text);
            return;
        }
        mp_http_conn_open(s, ls, (struct sockaddr *) &peer, len);
    }
}


static void
on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    mp_log_error(MP_LOG_NOTICE, 0,
                 "shutdown timeout, closing %zu connections",
                 mp_http_active_connections());
    event_base_loopbreak(mp_worker_base);
}


static void
on_graceful(int signo)
{
    mp_msec_t ms = mp_worker_conf->cluster.shutdown_timeout;
    struct timeval tv = { (time_t) (ms / 1000),
                          (suseconds_t) ((ms % 1000) * 1000) };
    size_t i;

    (void) signo;
    if (exiting) {
        return;
    }
    mp_log_error(MP_LOG_NOTICE, 0, "gracefully shutting down");
    exiting = 1;
    set_accepting(0);
    for (i = 0; i < mp_worker_conf->nlistens; i++) {
        close(mp_worker_conf->listens[i].fd);
    }
    mp_heartbeat_draining();
    mp_http_shutdown();
    if (mp_worker_shutdown_hook != NULL) {
        mp_worker_shutdown_hook(); /* timers fire, premature */
    }
    mp_worker_check_exit();
    shutdown_timer = evtimer_new(mp_worker_base, on_shutdown_timeout, NULL);
    evtimer_add(shutdown_timer, &tv);
}


static void
on_fast(int signo)
{
    (void) signo;
    exiting = 1;
    event_base_loopbreak(mp_worker_base);
}


static void
on_reopen(int signo)
{
    (void) signo;
    mp_log_reopen();
    mp_accesslog_reopen();
}


static void
on_signal(evutil_socket_t signo, short what, void *arg)
{
    const worker_signal_t *ws = arg;

    (void) what;
    (void) signo;
    mp_worker_time_update();
    ws->handler(ws->signo);
}


/*
 * The watchdog's heartbeat: a timer, not a stamp per callback, so that an
 * idle worker keeps stamping and a worker stuck inside one callback stops.
 */
static void
on_beat(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    mp_heartbeat_beat();
}


static void
start_beat(const mp_conf_t *conf)
{
    mp_msec_t ms = conf->cluster.watchdog_timeout / 4;
    struct timeval tv;

    if (conf->cluster.watchdog_timeout == 0) {
        return;
    }
    /* four stamps per timeout: a busy loop iteration may delay one */
    ms = mp_max(ms, 10);
    tv.tv_sec = (time_t) (ms / 1000);
    tv.tv_usec = (suseconds_t) ((ms % 1000) * 1000);
    beat_timer = event_new(mp_worker_base, -1, EV_PERSIST, on_beat, NULL);
    event_add(beat_timer, &tv);
}


static struct event_base *
create_base(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    /* one thread per process: no locking inside libevent */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}


int
mp_worker_run(const mp_conf_t *conf, int worker_id, int worker_count)
{
    sigset_t none;
    size_t i;

    mp_worker_id = worker_id;
    mp_worker_count = worker_count;
    mp_worker_conf = conf;
    mp_time_update();

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);

    mp_worker_base = create_base();
    if (mp_worker_base == NULL) {
        mp_log_error(MP_LOG_EMERG, 0, "event_base_new() failed");
        return 2;
    }
    for (i = 0; i < mp_nelems(worker_signals); i++) {
        signal_evs[i] = evsignal_new(mp_worker_base, worker_signals[i].signo,
                                     on_signal, (void *) &worker_signals[i]);
        evsignal_add(signal_evs[i], NULL);
    }
    listen_evs = mp_calloc(conf->nlistens ? conf->nlistens : 1,
                           sizeof(*listen_evs));
    for (i = 0; i < conf->nlistens; i++) {
        listen_evs[i] = event_new(mp_worker_base, conf->listens[i].fd,
                                  EV_READ | EV_PERSIST, on_accept,
                                  (void *) &conf->listens[i]);
    }
    mp_http_init(conf);
    mp_stats_attach(conf, worker_id);
    mp_channel_start(mp_worker_base);
    if (mp_accesslog_open(conf) != MP_OK) {
        return 2;
    }
    if (mp_worker_init_hook != NULL && mp_worker_init_hook(conf) != MP_OK) {
        return 2;
    }
    set_accepting(1);
    start_beat(conf);
    mp_heartbeat_ready();

    event_base_dispatch(mp_worker_base);

    mp_channel_close();
    mp_accesslog_close();
    mp_stats_detach();
    if (mp_worker_exit_hook != NULL) {
        mp_worker_exit_hook();
    }
    mp_location_cleanup();
    for (i = 0; i < conf->nlistens; i++) {
        event_free(listen_evs[i]);
    }
    free(listen_evs);
    for (i = 0; i < mp_nelems(worker_signals); i++) {
        event_free(signal_evs[i]);
    }
    if (shutdown_timer != NULL) {
        event_free(shutdown_timer);
    }
    if (beat_timer != NULL) {
        event_free(beat_timer);
    }
    mp_log_error(MP_LOG_NOTICE, 0, "exit");
    return exit_status;
}
