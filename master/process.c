/*
 * process.c: the master process (see process.h).
 *
 * Workers are grouped in generations: one per loaded config. The newest
 * generation serves; older ones exist only while they drain after a reload.
 * A worker slot keeps its id across respawns, so "worker 1" is always the
 * second worker of its generation.
 *
 * The master keeps every signal it handles blocked and sleeps in
 * sigsuspend(); deadlines (respawn after a back-off, SIGKILL after a stop
 * timeout) are one ITIMER_REAL armed for the nearest of them. So the master
 * never polls and never misses a SIGCHLD that arrives between two checks.
 */
#include "core/mp_core.h"
#include "core/conf.h"
#include "core/log.h"
#include "lua/vm.h"
#include "master/config.h"
#include "master/listen.h"
#include "master/process.h"
#include "master/signals.h"
#include "master/tls_check.h"
#include "master/zones.h"
#include "worker/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long TERM/INT lets workers finish before they are killed. */
#define MP_FAST_STOP_MSEC 5000

/*
 * Respawn back-off: more than MP_DEATH_LIMIT deaths of one slot within
 * MP_DEATH_WINDOW_MSEC means the worker dies in a loop (a crash in
 * init_worker, a bad handler hit by every request). Then each respawn waits
 * twice as long as the last, from MP_BACKOFF_MIN_MSEC up to
 * MP_BACKOFF_MAX_MSEC, so a broken worker costs a fork per 10 s instead of
 * a CPU. A worker that lived MP_STABLE_MSEC is healthy again.
 */
#define MP_DEATH_LIMIT 5
#define MP_DEATH_WINDOW_MSEC 5000
#define MP_BACKOFF_MIN_MSEC 250
#define MP_BACKOFF_MAX_MSEC 10000
#define MP_STABLE_MSEC 10000

/* How long a failed fork() waits before the next attempt. */
#define MP_FORK_RETRY_MSEC 1000

enum { MP_STOP_NONE = 0, MP_STOP_GRACEFUL, MP_STOP_FAST };

typedef struct {
    pid_t pid;               /* 0: not running */
    int id;
    mp_msec_t started;       /* monotonic, when forked */
    mp_msec_t respawn_at;    /* 0: no respawn pending */
    mp_msec_t window_start;  /* first death counted in deaths */
    int deaths;
    mp_msec_t backoff;       /* 0: respawn at once */
} mp_proc_t;

typedef struct mp_generation_s mp_generation_t;

struct mp_generation_s {
    mp_conf_t *conf;         /* owned; listeners may be shared */
    unsigned number;
    mp_proc_t *procs;
    int nprocs;
    int stopping;            /* told to stop: dead workers stay dead */
    mp_msec_t kill_at;       /* SIGKILL what is left then; 0: no deadline */
    mp_generation_t *older;
};

static struct {
    char *conf_path;
    pid_t pid;
    mp_generation_t *generations; /* newest (serving) first */
    unsigned last_number;
    int stop;                     /* MP_STOP_* */
    char *pid_file;               /* written by this master, or NULL */
    sigset_t wait_mask;
    char *title;                  /* argv area, reused for worker titles */
    size_t title_size;
} master;


static mp_msec_t
now_msec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (mp_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/*
 * Remembers the bytes argv occupies: a worker writes its title there, which
 * is what ps and /proc/PID/cmdline show. Only the contiguous run of
 * arguments is used, so nothing beyond argv (the environment) is touched.
 */
static void
title_init(int argc, char **argv)
{
    char *end;
    int i;

    if (argc < 1 || argv[0] == NULL) {
        return;
    }
    end = argv[0] + strlen(argv[0]) + 1;
    for (i = 1; i < argc && argv[i] == end; i++) {
        end = argv[i] + strlen(argv[i]) + 1;
    }
    master.title = argv[0];
    master.title_size = (size_t) (end - argv[0]);
}


static void
title_set(const char *title, const char *comm)
{
    size_t n;

    /* The thread name is what top and pgrep show (15 bytes at most). */
    if (prctl(PR_SET_NAME, comm, 0, 0, 0) == -1) {
        mp_log_error(MP_LOG_WARN, errno, "prctl(PR_SET_NAME) failed");
    }
    if (master.title == NULL || master.title_size < 2) {
        return;
    }
    n = mp_min(strlen(title), master.title_size - 1);
    memset(master.title, 0, master.title_size);
    memcpy(master.title, title, n);
}


static int
pid_file_write(const char *path)
{
    char buf[32];
    int fd, n;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        mp_log_error(MP_LOG_EMERG, errno, "open() \"%s\" failed", path);
        return MP_ERROR;
    }
    n = snprintf(buf, sizeof(buf), "%d\n", (int) master.pid);
    if (write(fd, buf, (size_t) n) != n) {
        mp_log_error(MP_LOG_EMERG, errno, "write() to \"%s\" failed", path);
        close(fd);
        unlink(path);
        return MP_ERROR;
    }
    close(fd);
    master.pid_file = mp_strdup(path);
    return MP_OK;
}


/* Removes the pid file unless another master has written it since. */
static void
pid_file_remove(void)
{
    char buf[32];
    ssize_t n;
    int fd;

    if (master.pid_file == NULL) {
        return;
    }
    fd = open(master.pid_file, O_RDONLY | O_CLOEXEC);
    if (fd != -1) {
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        if (atoi(buf) == (int) master.pid
            && unlink(master.pid_file) == -1)
        {
            mp_log_error(MP_LOG_ALERT, errno, "unlink() \"%s\" failed",
                         master.pid_file);
        }
    }
    free(master.pid_file);
    master.pid_file = NULL;
}


/*
 * The configs of every generation except skip, in a new array the caller
 * frees; *n receives the count. Listeners are shared between them.
 */
static mp_conf_t **
running_confs(const mp_generation_t *skip, size_t *n)
{
    mp_generation_t *gen;
    mp_conf_t **confs;
    size_t count = 0;

    for (gen = master.generations; gen != NULL; gen = gen->older) {
        count++;
    }
    confs = mp_alloc(sizeof(mp_conf_t *) * (count + 1));
    *n = 0;
    for (gen = master.generations; gen != NULL; gen = gen->older) {
        if (gen != skip) {
            confs[(*n)++] = gen->conf;
        }
    }
    return confs;
}


/*
 * A worker inherits the listening sockets of every generation; it keeps
 * only its own, or a removed address would stay bound until it exits.
 */
static void
close_other_listeners(const mp_generation_t *mine)
{
    mp_generation_t *gen;
    mp_conf_t *own = mine->conf;
    size_t i;
    int fd;

    for (gen = master.generations; gen != NULL; gen = gen->older) {
        if (gen == mine) {
            continue;
        }
        for (i = 0; i < gen->conf->nlistens; i++) {
            fd = gen->conf->listens[i].fd;
            if (fd != -1 && !mp_listen_uses_fd(&own, 1, fd)) {
                close(fd);
            }
        }
    }
}


static void __attribute__((noreturn))
worker_main(mp_generation_t *gen, int id)
{
    char title[64], comm[16];

    mp_log_set_worker(id);
    /*
     * A worker must not outlive the master, even one killed by SIGKILL:
     * the kernel sends SIGTERM (fast stop) when the master dies. If it died
     * before this call, no signal will come, hence the getppid() check.
     */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) == -1) {
        mp_log_error(MP_LOG_ALERT, errno, "prctl(PR_SET_PDEATHSIG) failed");
    }
    if (getppid() != master.pid) {
        exit(1);
    }
    close_other_listeners(gen);
    snprintf(title, sizeof(title), "moonpool: worker %d", id);
    snprintf(comm, sizeof(comm), "moonpool w%d", id);
    title_set(title, comm);
    mp_signals_reset_child();
    mp_lua_worker_setup();
    exit(mp_worker_run(gen->conf, id, gen->nprocs));
}


static int
spawn(mp_generation_t *gen, mp_proc_t *p)
{
    pid_t pid;

    /* Buffered stdio output would otherwise be written by both processes. */
    fflush(NULL);
    pid = fork();
    if (pid == -1) {
        mp_log_error(MP_LOG_ALERT, errno, "fork() of worker %d failed",
                     p->id);
        p->respawn_at = now_msec() + MP_FORK_RETRY_MSEC;
        return MP_ERROR;
    }
    if (pid == 0) {
        worker_main(gen, p->id);
    }
    p->pid = pid;
    p->started = now_msec();
    p->respawn_at = 0;
    mp_log_error(MP_LOG_NOTICE, 0, "worker %d (pid %d) started", p->id,
                 (int) pid);
    return MP_OK;
}


static mp_generation_t *
generation_create(mp_conf_t *conf)
{
    mp_generation_t *gen = mp_calloc(1, sizeof(*gen));
    int i;

    gen->conf = conf;
    gen->number = ++master.last_number;
    gen->nprocs = conf->cluster.workers > 0 ? conf->cluster.workers : 1;
    gen->procs = mp_calloc((size_t) gen->nprocs, sizeof(mp_proc_t));
    for (i = 0; i < gen->nprocs; i++) {
        gen->procs[i].id = i;
    }
    gen->older = master.generations;
    master.generations = gen;
    return gen;
}


/* Unlinks and frees a generation whose workers are all gone. */
static void
generation_destroy(mp_generation_t *gen)
{
    mp_generation_t **link;
    mp_conf_t **keep;
    size_t n;

    for (link = &master.generations; *link != NULL; link = &(*link)->older) {
        if (*link == gen) {
            *link = gen->older;
            break;
        }
    }
    keep = running_confs(NULL, &n);
    mp_listen_close(gen->conf, keep, n);
    free(keep);
    mp_zones_release(gen->conf, master.generations ? master.generations->conf
                                                   : NULL);
    mp_conf_destroy(gen->conf);
    free(gen->procs);
    free(gen);
}


static int
generation_live(const mp_generation_t *gen)
{
    int i, n = 0;

    for (i = 0; i < gen->nprocs; i++) {
        n += gen->procs[i].pid != 0;
    }
    return n;
}


static void
generation_signal(mp_generation_t *gen, int signo)
{
    mp_proc_t *p;
    int i;

    for (i = 0; i < gen->nprocs; i++) {
        p = &gen->procs[i];
        if (p->pid != 0 && kill(p->pid, signo) == -1 && errno != ESRCH) {
            mp_log_error(MP_LOG_ALERT, errno, "kill(%d, %s) failed",
                         (int) p->pid, mp_signals_name(signo));
        }
    }
}


/*
 * Tells a generation to stop with signo and sets the time at which what is
 * left of it gets SIGKILL (an earlier deadline already set is kept).
 */
static void
generation_stop(mp_generation_t *gen, int signo, mp_msec_t timeout)
{
    mp_msec_t deadline = now_msec() + mp_max(timeout, 0);
    int i;

    gen->stopping = 1;
    for (i = 0; i < gen->nprocs; i++) {
        gen->procs[i].respawn_at = 0;
    }
    if (gen->kill_at == 0 || deadline < gen->kill_at) {
        gen->kill_at = deadline;
    }
    generation_signal(gen, signo);
}


/*
 * The delay before respawning p, which just died; 0 means at once. See the
 * MP_DEATH_* constants.
 */
static mp_msec_t
respawn_delay(mp_proc_t *p, mp_msec_t now)
{
    if (now - p->started >= MP_STABLE_MSEC) {
        p->backoff = 0;
        p->deaths = 0;
    }
    if (p->backoff > 0) {
        p->backoff = mp_min(p->backoff * 2, MP_BACKOFF_MAX_MSEC);
        return p->backoff;
    }
    if (p->deaths == 0 || now - p->window_start > MP_DEATH_WINDOW_MSEC) {
        p->window_start = now;
        p->deaths = 0;
    }
    if (++p->deaths > MP_DEATH_LIMIT) {
        p->backoff = MP_BACKOFF_MIN_MSEC;
    }
    return p->backoff;
}


static void
log_exit(const mp_generation_t *gen, const mp_proc_t *p, pid_t pid,
         int status)
{
    int expected = gen->stopping || master.stop != MP_STOP_NONE;
    int level = MP_LOG_ALERT;

    if (WIFEXITED(status)) {
        if (expected && WEXITSTATUS(status) == 0) {
            level = MP_LOG_NOTICE;
        }
        mp_log_error(level, 0, "worker %d (pid %d) exited with code %d",
                     p->id, (int) pid, WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        mp_log_error(level, 0, "worker %d (pid %d) exited on signal %d%s",
                     p->id, (int) pid, WTERMSIG(status),
                     WCOREDUMP(status) ? " (core dumped)" : "");
    }
}


static int
find_proc(pid_t pid, mp_generation_t **genp, mp_proc_t **pp)
{
    mp_generation_t *gen;
    int i;

    for (gen = master.generations; gen != NULL; gen = gen->older) {
        for (i = 0; i < gen->nprocs; i++) {
            if (gen->procs[i].pid == pid) {
                *genp = gen;
                *pp = &gen->procs[i];
                return 1;
            }
        }
    }
    return 0;
}


static void
reap(void)
{
    mp_generation_t *gen;
    mp_msec_t now, delay;
    mp_proc_t *p;
    pid_t pid;
    int status;

    for (;;) {
        pid = waitpid(-1, &status, WNOHANG);
        if (pid == 0 || (pid == -1 && errno == ECHILD)) {
            return;
        }
        if (pid == -1) {
            if (errno != EINTR) {
                mp_log_error(MP_LOG_ALERT, errno, "waitpid() failed");
                return;
            }
            continue;
        }
        if (!find_proc(pid, &gen, &p)) {
            mp_log_error(MP_LOG_INFO, 0, "reaped unknown child %d",
                         (int) pid);
            continue;
        }
        log_exit(gen, p, pid, status);
        mp_zones_recover(pid);
        p->pid = 0;
        if (gen->stopping || master.stop != MP_STOP_NONE) {
            continue;
        }
        now = now_msec();
        delay = respawn_delay(p, now);
        if (delay == 0) {
            spawn(gen, p);
        } else {
            mp_log_error(MP_LOG_WARN, 0,
                         "worker %d keeps dying, respawning it in %lld ms",
                         p->id, (long long) delay);
            p->respawn_at = now + delay;
        }
    }
}


/* Acts on deadlines that passed: SIGKILL stragglers, delayed respawns. */
static void
run_deadlines(void)
{
    mp_generation_t *gen;
    mp_msec_t now = now_msec();
    mp_proc_t *p;
    int i;

    for (gen = master.generations; gen != NULL; gen = gen->older) {
        for (i = 0; i < gen->nprocs; i++) {
            p = &gen->procs[i];
            if (gen->kill_at != 0 && now >= gen->kill_at && p->pid != 0) {
                mp_log_error(MP_LOG_WARN, 0,
                             "worker %d (pid %d) did not stop in time, "
                             "killing it", p->id, (int) p->pid);
                kill(p->pid, SIGKILL);
            }
            if (!gen->stopping && p->respawn_at != 0 && now >= p->respawn_at
                && p->pid == 0)
            {
                spawn(gen, p);
            }
        }
        if (gen->kill_at != 0 && now >= gen->kill_at) {
            gen->kill_at = 0;
        }
    }
}


/* Arms ITIMER_REAL for the nearest deadline, or disarms it. */
static void
arm_timer(void)
{
    struct itimerval it;
    mp_generation_t *gen;
    mp_msec_t next = 0, now, delay;
    int i;

    for (gen = master.generations; gen != NULL; gen = gen->older) {
        if (gen->kill_at != 0 && (next == 0 || gen->kill_at < next)) {
            next = gen->kill_at;
        }
        for (i = 0; i < gen->nprocs && !gen->stopping; i++) {
            if (gen->procs[i].respawn_at != 0
                && (next == 0 || gen->procs[i].respawn_at < next))
            {
                next = gen->procs[i].respawn_at;
            }
        }
    }
    memset(&it, 0, sizeof(it));
    if (next != 0) {
        now = now_msec();
        delay = next > now ? next - now : 1;
        it.it_value.tv_sec = delay / 1000;
        it.it_value.tv_usec = (delay % 1000) * 1000;
    }
    if (setitimer(ITIMER_REAL, &it, NULL) == -1) {
        mp_log_error(MP_LOG_ALERT, errno, "setitimer() failed");
    }
}


static void
begin_stop(int how)
{
    mp_generation_t *gen;

    if (how <= master.stop) {
        return; /* a stop at least as fast is already under way */
    }
    master.stop = how;
    mp_log_error(MP_LOG_NOTICE, 0, "%s",
                 how == MP_STOP_FAST ? "fast stop" : "graceful stop");
    for (gen = master.generations; gen != NULL; gen = gen->older) {
        if (how == MP_STOP_FAST) {
            generation_stop(gen, SIGTERM, MP_FAST_STOP_MSEC);
        } else {
            generation_stop(gen, SIGQUIT, gen->conf->cluster.shutdown_timeout);
        }
    }
}


static void
reopen_logs(void)
{
    mp_generation_t *gen;

    mp_log_error(MP_LOG_NOTICE, 0, "reopening logs");
    mp_log_reopen();
    for (gen = master.generations; gen != NULL; gen = gen->older) {
        generation_signal(gen, SIGUSR1);
    }
}


/*
 * HUP: a new generation for the new config on the shared listeners, then a
 * graceful stop of the serving one. Any failing step leaves the serving
 * generation untouched.
 */
static void
reload(void)
{
    mp_generation_t *old = master.generations, *gen;
    mp_conf_t *conf, **running;
    char err[1024];
    size_t n;
    int i, rc;

    mp_log_error(MP_LOG_NOTICE, 0, "reloading \"%s\"", master.conf_path);
    conf = mp_conf_load(master.conf_path, err, sizeof(err));
    if (conf == NULL || mp_tls_check(conf, err, sizeof(err)) != MP_OK) {
        mp_log_error(MP_LOG_ERR, 0, "reload failed, configuration kept: %s",
                     err);
        mp_conf_destroy(conf);
        return;
    }
    running = running_confs(NULL, &n);
    rc = mp_listen_open(conf, running, n, MP_LOG_ERR);
    if (rc == MP_OK && mp_zones_open(conf, old->conf, err, sizeof(err))
                       != MP_OK) {
        mp_log_error(MP_LOG_ERR, 0, "reload failed, configuration kept: %s",
                     err);
        mp_listen_close(conf, running, n);
        rc = MP_ERROR;
    } else if (rc == MP_OK
               && mp_lua_master_init(conf, err, sizeof(err)) != MP_OK) {
        mp_zones_release(conf, old->conf);
        mp_log_error(MP_LOG_ERR, 0, "reload failed, configuration kept: %s",
                     err);
        mp_listen_close(conf, running, n);
        /*
         * The failed call closed the VM of the serving config; a respawned
         * worker needs one, so build it again.
         */
        if (mp_lua_master_init(old->conf, err, sizeof(err)) != MP_OK) {
            mp_log_error(MP_LOG_ALERT, 0, "cannot restore Lua state: %s",
                         err);
        }
        rc = MP_ERROR;
    }
    free(running);
    if (rc != MP_OK) {
        mp_conf_destroy(conf);
        return;
    }
    if (strcmp(conf->log.error, old->conf->log.error) != 0) {
        mp_log_open(conf->log.error);
    }
    mp_log_level = conf->log.level;
    gen = generation_create(conf);
    for (i = 0; i < gen->nprocs; i++) {
        spawn(gen, &gen->procs[i]);
    }
    generation_stop(old, SIGQUIT, old->conf->cluster.shutdown_timeout);
    mp_log_error(MP_LOG_NOTICE, 0, "reloaded, generation %u, %d workers",
                 gen->number, gen->nprocs);
}


/*
 * Frees drained generations; returns 1 when the master is stopping and no
 * worker is left.
 */
static int
collect(void)
{
    mp_generation_t *gen, *older;
    int live = 0;

    for (gen = master.generations; gen != NULL; gen = older) {
        older = gen->older;
        if (generation_live(gen) > 0) {
            live = 1;
        } else if (gen->stopping && gen != master.generations) {
            generation_destroy(gen);
        }
    }
    return master.stop != MP_STOP_NONE && !live;
}


static void
master_loop(void)
{
    for (;;) {
        arm_timer();
        sigsuspend(&master.wait_mask);
        if (mp_sig_child) {
            mp_sig_child = 0;
            reap();
        }
        if (mp_sig_terminate) {
            mp_sig_terminate = 0;
            begin_stop(MP_STOP_FAST);
        }
        if (mp_sig_quit) {
            mp_sig_quit = 0;
            begin_stop(MP_STOP_GRACEFUL);
        }
        if (mp_sig_reopen) {
            mp_sig_reopen = 0;
            reopen_logs();
        }
        if (mp_sig_reload) {
            mp_sig_reload = 0;
            if (master.stop == MP_STOP_NONE) {
                reload();
            }
        }
        mp_sig_alarm = 0;
        run_deadlines();
        if (collect()) {
            return;
        }
    }
}


/* Start-up after the config is loaded; on failure logs and returns 1. */
static int
start(mp_conf_t *conf)
{
    mp_generation_t *gen;
    char err[1024];
    int i;

    if (mp_tls_check(conf, err, sizeof(err)) != MP_OK) {
        mp_log_error(MP_LOG_EMERG, 0, "%s", err);
        return MP_ERROR;
    }
    if (mp_listen_open(conf, NULL, 0, MP_LOG_EMERG) != MP_OK) {
        return MP_ERROR;
    }
    if (mp_zones_open(conf, NULL, err, sizeof(err)) != MP_OK) {
        mp_log_error(MP_LOG_EMERG, 0, "%s", err);
        goto failed;
    }
    if (mp_lua_master_init(conf, err, sizeof(err)) != MP_OK) {
        mp_log_error(MP_LOG_EMERG, 0, "%s", err);
        goto failed;
    }
    /* From here a signal sets a flag that the master loop handles. */
    if (mp_signals_init(&master.wait_mask) != MP_OK) {
        goto failed;
    }
    if (conf->cluster.pid_file != NULL
        && pid_file_write(conf->cluster.pid_file) != MP_OK)
    {
        goto failed;
    }
    gen = generation_create(conf);
    mp_log_error(MP_LOG_NOTICE, 0, "moonpool " MP_VERSION " started, %d %s",
                 gen->nprocs, gen->nprocs == 1 ? "worker" : "workers");
    for (i = 0; i < gen->nprocs; i++) {
        spawn(gen, &gen->procs[i]);
    }
    return MP_OK;

failed:
    mp_zones_release(conf, NULL);
    mp_listen_close(conf, NULL, 0);
    return MP_ERROR;
}


int
mp_process_master(const char *conf_path, int argc, char **argv)
{
    char err[1024];
    mp_conf_t *conf;

    master.pid = getpid();
    master.conf_path = mp_strdup(conf_path); /* argv is overwritten later */
    title_init(argc, argv);

    conf = mp_conf_load(master.conf_path, err, sizeof(err));
    if (conf == NULL) {
        fprintf(stderr, "moonpool: %s\n", err);
        return 1;
    }
    if (mp_log_open(conf->log.error) != MP_OK) {
        mp_conf_destroy(conf);
        return 1;
    }
    mp_log_level = conf->log.level;
    if (start(conf) != MP_OK) {
        if (mp_log_fd() != STDERR_FILENO) {
            fprintf(stderr, "moonpool: could not start, see \"%s\"\n",
                    conf->log.error);
        }
        mp_conf_destroy(conf);
        return 1;
    }

    master_loop();

    while (master.generations != NULL) {
        generation_destroy(master.generations);
    }
    mp_log_error(MP_LOG_NOTICE, 0, "exit");
    pid_file_remove();
    free(master.conf_path);
    return 0;
}
