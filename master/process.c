/*
 * process.c: the master process (see process.h).
 *
 * Workers are grouped in generations: one per loaded config. The newest
 * generation serves; older ones exist only while they drain after a reload.
 * A worker slot keeps its id across respawns, so "worker 1" is always the
 * second worker of its generation.
 *
 * The master keeps every signal it handles blocked and sleeps in ppoll()
 * on the notify pipe with them unblocked (sigsuspend() plus one fd);
 * deadlines (respawn after a back-off, SIGKILL after a stop timeout, the
 * watchdog's next look, a reload that takes too long) are one ITIMER_REAL
 * armed for the nearest of them. So the master never polls and never
 * misses a SIGCHLD that arrives between two checks.
 *
 * A reload is validate -> map zones -> fork the new generation -> wait
 * until each of its workers reported ready on the notify pipe -> QUIT the
 * old generation. Until then the old generation serves alone; if a new
 * worker dies before it is ready, the new generation is stopped and the
 * old one keeps serving. The outcome goes to the status file that
 * "moonpool -s reload --wait" reads and to systemd (notify.h).
 *
 * Each generation has a heartbeat board (worker/heartbeat.h): the watchdog
 * kills a worker whose loop stopped stamping its slot for longer than
 * cluster.watchdog_timeout, and the reaper respawns it.
 *
 * Each worker also gets a channel (a socketpair made before fork), and a
 * master with a pid file listens on a control socket next to it; both are
 * more fds in the same ppoll() (master/control.h): "moonpool status" and
 * "moonpool profile" are served between two signals, never during one.
 *
 * USR2 (binary upgrade) forks a child that executes the binary again with
 * the listening sockets listed in MOONPOOL_LISTEN_FDS; the new master
 * adopts them, starts its workers and, once they are ready, sends QUIT to
 * the old master, which drains its workers and exits.
 */
#include "core/mp_core.h"
#include "core/conf.h"
#include "core/log.h"
#include "lua/vm.h"
#include "master/config.h"
#include "master/control.h"
#include "master/listen.h"
#include "master/process.h"
#include "master/notify.h"
#include "master/signals.h"
#include "master/tls_check.h"
#include "master/zones.h"
#include "worker/channel.h"
#include "worker/heartbeat.h"
#include "worker/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long TERM/INT lets workers finish before they are killed. */
/* after shutdown_timeout, how long a stopping worker may take to exit */
#define MP_KILL_GRACE_MSEC 1000
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

/*
 * How long the workers of a new generation may take to accept (their
 * lua.init_worker runs first) before the reload is given up.
 */
#define MP_START_TIMEOUT_MSEC 60000

/* The environment a binary upgrade passes the listening sockets in. */
#define MP_ENV_LISTEN_FDS "MOONPOOL_LISTEN_FDS"
#define MP_ENV_UPGRADE_FROM "MOONPOOL_UPGRADE_FROM"

enum { MP_STOP_NONE = 0, MP_STOP_GRACEFUL, MP_STOP_FAST };

typedef struct {
    pid_t pid;               /* 0: not running */
    int id;
    mp_msec_t started;       /* monotonic, when forked */
    mp_msec_t respawn_at;    /* 0: no respawn pending */
    mp_msec_t window_start;  /* first death counted in deaths */
    int deaths;
    mp_msec_t backoff;       /* 0: respawn at once */
    int ready;               /* accepts: reported ready, not yet draining */
} mp_proc_t;

typedef struct mp_generation_s mp_generation_t;

struct mp_generation_s {
    mp_conf_t *conf;         /* owned; listeners may be shared */
    unsigned number;
    mp_proc_t *procs;
    int nprocs;
    int stopping;            /* told to stop: dead workers stay dead */
    mp_msec_t kill_at;       /* SIGKILL what is left then; 0: no deadline */
    mp_heartbeat_slot_t *board; /* one slot per proc, or NULL */
    uid_t uid;               /* cluster.user, resolved; (uid_t) -1: keep */
    gid_t gid;
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
    int notify_rd;                /* workers write their pid when ready */
    int notify_wr;
    mp_generation_t *starting;    /* a reload waiting for its workers */
    mp_msec_t starting_deadline;
    unsigned reload_seq;          /* reloads begun, for the status file */
    char *status_path;            /* reload status file, or NULL */
    int announced;                /* READY=1 sent for the first generation */
    int reload_done;              /* old workers told to stop; report when
                                     none of them accepts any more */
    mp_msec_t watchdog_at;        /* next watchdog look; 0: off */
    char exe[PATH_MAX];           /* this binary, for USR2 */
    pid_t upgrade_pid;            /* a new master started by USR2, or 0 */
    pid_t upgrade_from;           /* the master that executed us, or 0 */
    mp_msec_t started;            /* monotonic, for "moonpool status" */
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
        if (atoi(buf) == (int) master.pid) {
            if (unlink(master.pid_file) == -1) {
                mp_log_error(MP_LOG_ALERT, errno, "unlink() \"%s\" failed",
                             master.pid_file);
            }
            /* the reload status file goes with it (a new master owns both
             * after a binary upgrade) */
            if (master.status_path != NULL) {
                unlink(master.status_path);
            }
        }
    }
    free(master.pid_file);
    master.pid_file = NULL;
}


/* The generation that serves: the newest one not told to stop. */
static mp_generation_t *
serving(void)
{
    mp_generation_t *gen;

    for (gen = master.generations; gen != NULL; gen = gen->older) {
        if (!gen->stopping && gen != master.starting) {
            return gen;
        }
    }
    return NULL;
}


static void
status_write(const char *state, const char *message)
{
    mp_generation_t *gen = serving();

    if (master.status_path != NULL) {
        mp_reload_status_write(master.status_path, master.reload_seq, state,
                               gen != NULL ? gen->number : 0, message);
    }
}


/* "READY=1" plus the STATUS= line systemd shows for a serving master. */
static void
notify_ready(const char *extra)
{
    mp_generation_t *gen = serving();

    mp_notify("READY=1\nSTATUS=%s%sserving, generation %u, %d workers",
              extra != NULL ? extra : "", extra != NULL ? "; " : "",
              gen != NULL ? gen->number : 0, gen != NULL ? gen->nprocs : 0);
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


/*
 * cluster.user: a worker started as root gives up root once the sockets are
 * bound (they are inherited open). The master stays root, so that it can
 * bind new addresses on reload and write the pid file.
 */
static int
drop_privileges(const mp_generation_t *gen)
{
    const char *user = gen->conf->cluster.user;

    if (gen->uid == (uid_t) -1 || geteuid() != 0) {
        return MP_OK;
    }
    if (setgid(gen->gid) == -1) {
        mp_log_error(MP_LOG_EMERG, errno, "setgid(%d) failed",
                     (int) gen->gid);
        return MP_ERROR;
    }
    if (initgroups(user, gen->gid) == -1) {
        mp_log_error(MP_LOG_EMERG, errno, "initgroups(\"%s\") failed", user);
        return MP_ERROR;
    }
    if (setuid(gen->uid) == -1) {
        mp_log_error(MP_LOG_EMERG, errno, "setuid(%d) failed",
                     (int) gen->uid);
        return MP_ERROR;
    }
    /* setuid() clears the dumpable flag; PDEATHSIG must survive it too */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) == -1) {
        mp_log_error(MP_LOG_ALERT, errno, "prctl(PR_SET_PDEATHSIG) failed");
    }
    if (getppid() != master.pid) {
        return MP_ERROR;
    }
    return MP_OK;
}


static void __attribute__((noreturn))
worker_main(mp_generation_t *gen, int id, int channel)
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
    close(master.notify_rd);
    mp_control_child();
    mp_channel_attach(channel);
    mp_heartbeat_attach(gen->board != NULL ? &gen->board[id] : NULL,
                        master.notify_wr);
    if (drop_privileges(gen) != MP_OK) {
        exit(2);
    }
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
    int channel[2];
    pid_t pid;

    if (gen->board != NULL) {
        mp_heartbeat_reset(&gen->board[p->id]);
    }
    p->ready = 0;
    /* without a channel the worker serves, it only cannot be profiled */
    mp_control_channel_create(channel);
    /* Buffered stdio output would otherwise be written by both processes. */
    fflush(NULL);
    pid = fork();
    if (pid == -1) {
        mp_log_error(MP_LOG_ALERT, errno, "fork() of worker %d failed",
                     p->id);
        p->respawn_at = now_msec() + MP_FORK_RETRY_MSEC;
        if (channel[0] != -1) {
            close(channel[0]);
            close(channel[1]);
        }
        return MP_ERROR;
    }
    if (pid == 0) {
        if (channel[0] != -1) {
            close(channel[0]);
        }
        worker_main(gen, p->id, channel[1]);
    }
    if (channel[0] != -1) {
        close(channel[1]);
        mp_control_channel_add(pid, channel[0]);
    }
    p->pid = pid;
    p->started = now_msec();
    p->respawn_at = 0;
    mp_log_error(MP_LOG_NOTICE, 0, "worker %d (pid %d) started", p->id,
                 (int) pid);
    return MP_OK;
}


/*
 * Resolves cluster.user of conf when the master runs as root; it is ignored
 * otherwise, as in nginx, and *uid, *gid are then (uid_t) -1, (gid_t) -1.
 * On failure returns MP_ERROR with the reason in err.
 */
static int
resolve_user(const mp_conf_t *conf, uid_t *uid, gid_t *gid, char *err,
             size_t errlen)
{
    const char *user = conf->cluster.user;
    struct passwd *pw;

    *uid = (uid_t) -1;
    *gid = (gid_t) -1;
    if (user == NULL || geteuid() != 0) {
        return MP_OK;
    }
    errno = 0;
    pw = getpwnam(user);
    if (pw == NULL) {
        snprintf(err, errlen, "%s: cluster.user \"%s\" %s", conf->file,
                 user, errno != 0 ? strerror(errno) : "does not exist");
        return MP_ERROR;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return MP_OK;
}


/*
 * Workers that dropped root must still reopen the logs on USR1: the master
 * creates the log files and gives them to the workers' user.
 */
static void
prepare_logs(const mp_generation_t *gen)
{
    const char *paths[2];
    size_t i;
    int fd;

    if (gen->uid == (uid_t) -1) {
        return;
    }
    paths[0] = strcmp(gen->conf->log.error, "stderr") != 0
                   ? gen->conf->log.error : NULL;
    paths[1] = gen->conf->log.access;
    for (i = 0; i < mp_nelems(paths); i++) {
        if (paths[i] == NULL) {
            continue;
        }
        fd = open(paths[i], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd == -1) {
            mp_log_error(MP_LOG_ERR, errno, "open() \"%s\" failed", paths[i]);
            continue;
        }
        if (fchown(fd, gen->uid, gen->gid) == -1) {
            mp_log_error(MP_LOG_ERR, errno, "fchown() \"%s\" failed",
                         paths[i]);
        }
        close(fd);
    }
}


/* conf was checked with resolve_user() already. */
static mp_generation_t *
generation_create(mp_conf_t *conf)
{
    mp_generation_t *gen = mp_calloc(1, sizeof(*gen));
    char err[256];
    int i;

    gen->conf = conf;
    if (resolve_user(conf, &gen->uid, &gen->gid, err, sizeof(err))
        != MP_OK) {
        mp_log_error(MP_LOG_ALERT, 0, "%s", err);
    }
    gen->number = ++master.last_number;
    gen->nprocs = conf->cluster.workers > 0 ? conf->cluster.workers : 1;
    gen->procs = mp_calloc((size_t) gen->nprocs, sizeof(mp_proc_t));
    for (i = 0; i < gen->nprocs; i++) {
        gen->procs[i].id = i;
    }
    /* Without a board there is no watchdog, and readiness is not seen. */
    gen->board = mp_heartbeat_create(gen->nprocs);
    prepare_logs(gen);
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
    mp_zones_release(gen->conf, serving() != NULL ? serving()->conf
                     : master.generations != NULL ? master.generations->conf
                                                  : NULL);
    mp_conf_destroy(gen->conf);
    mp_heartbeat_destroy(gen->board, gen->nprocs);
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
    mp_msec_t deadline;
    int i;

    /*
     * A worker told to stop gracefully ends itself at shutdown_timeout
     * (closing what is left, running its exit hooks and flushing its
     * access log); the SIGKILL is for one that cannot, so it comes a
     * little later, not at the same instant.
     */
    if (signo == SIGQUIT) {
        timeout += MP_KILL_GRACE_MSEC;
    }
    deadline = now_msec() + mp_max(timeout, 0);

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
        /* our own QUIT or TERM, taken before the worker's loop handled it */
        if (expected && (WTERMSIG(status) == SIGQUIT
                         || WTERMSIG(status) == SIGTERM)) {
            level = MP_LOG_NOTICE;
        }
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


/* Forward: the reload steps below call each other through the reaper. */
static void abort_reload(const char *why);
static void respawn_missing(mp_generation_t *gen);


/*
 * A new master started by USR2 exited. Before it took over, that means the
 * upgrade failed: this master keeps serving and claims the pid file back.
 */
static void
upgrade_exited(pid_t pid, int status)
{
    master.upgrade_pid = 0;
    if (master.stop != MP_STOP_NONE) {
        mp_log_error(MP_LOG_NOTICE, 0, "new master (pid %d) exited",
                     (int) pid);
        return;
    }
    mp_log_error(MP_LOG_ERR, 0, "binary upgrade failed: new master (pid %d) "
                 "exited with %s %d, still serving", (int) pid,
                 WIFEXITED(status) ? "code" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    if (master.pid_file != NULL) {
        char *path = master.pid_file;

        master.pid_file = NULL;
        pid_file_write(path);
        free(path);
    }
}


static void
reap(void)
{
    mp_generation_t *gen;
    mp_msec_t now, delay;
    char why[128];
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
        if (pid == master.upgrade_pid) {
            upgrade_exited(pid, status);
            continue;
        }
        if (!find_proc(pid, &gen, &p)) {
            mp_log_error(MP_LOG_INFO, 0, "reaped unknown child %d",
                         (int) pid);
            continue;
        }
        log_exit(gen, p, pid, status);
        mp_control_channel_remove(pid);
        mp_zones_recover(pid);
        p->pid = 0;
        if (gen->stopping || master.stop != MP_STOP_NONE) {
            continue;
        }
        if (gen == master.starting && !p->ready) {
            snprintf(why, sizeof(why), "worker %d of generation %u exited "
                     "before it was ready", p->id, gen->number);
            abort_reload(why);
            continue;
        }
        if (master.starting != NULL && gen != master.starting) {
            /*
             * The master's Lua state belongs to the starting config now; a
             * worker of the old one is respawned only if the reload fails.
             */
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


/*
 * The watchdog: SIGKILLs each ready worker whose loop did not stamp its
 * slot for longer than its generation's watchdog_timeout; the reaper then
 * respawns it like any crashed worker.
 */
static void
watchdog(mp_msec_t now)
{
    mp_heartbeat_slot_t *slot;
    mp_generation_t *gen;
    mp_msec_t timeout, beat;
    char running[MP_HEARTBEAT_RUNNING_LEN];
    mp_proc_t *p;
    int i;

    for (gen = master.generations; gen != NULL; gen = gen->older) {
        timeout = gen->conf->cluster.watchdog_timeout;
        for (i = 0; timeout > 0 && gen->board != NULL && i < gen->nprocs;
             i++) {
            p = &gen->procs[i];
            slot = &gen->board[i];
            if (p->pid == 0 || !p->ready
                || __atomic_load_n(&slot->pid, __ATOMIC_ACQUIRE) != p->pid) {
                continue;
            }
            beat = __atomic_load_n(&slot->beat, __ATOMIC_ACQUIRE);
            if (now - beat <= timeout) {
                continue;
            }
            memcpy(running, slot->running, sizeof(running));
            running[sizeof(running) - 1] = '\0';
            mp_log_error(MP_LOG_ALERT, 0, "worker %d (pid %d) is stuck: its "
                         "loop did not run for %lld ms (watchdog_timeout "
                         "%lld ms), last running \"%s\"; killing it", p->id,
                         (int) p->pid, (long long) (now - beat),
                         (long long) timeout,
                         running[0] != '\0' ? running : "-");
            kill(p->pid, SIGKILL);
            p->ready = 0; /* killed once; the reaper does the rest */
        }
    }
}


/* When the watchdog looks next: half the smallest timeout from now. */
static mp_msec_t
watchdog_next(mp_msec_t now)
{
    mp_generation_t *gen;
    mp_msec_t t, period = 0;

    for (gen = master.generations; gen != NULL; gen = gen->older) {
        t = gen->conf->cluster.watchdog_timeout;
        if (t > 0 && (period == 0 || t < period)) {
            period = t;
        }
    }
    return period == 0 ? 0 : now + mp_max(period / 2, 10);
}


/* Acts on deadlines that passed: SIGKILL stragglers, delayed respawns. */
static void
run_deadlines(void)
{
    mp_generation_t *gen;
    mp_msec_t now = now_msec();
    char why[128];
    mp_proc_t *p;
    int i;

    if (master.starting != NULL && now >= master.starting_deadline) {
        snprintf(why, sizeof(why), "the workers of generation %u were not "
                 "ready within %d s", master.starting->number,
                 MP_START_TIMEOUT_MSEC / 1000);
        abort_reload(why);
    }
    for (gen = master.generations; gen != NULL; gen = gen->older) {
        for (i = 0; i < gen->nprocs; i++) {
            p = &gen->procs[i];
            if (gen->kill_at != 0 && now >= gen->kill_at && p->pid != 0) {
                mp_log_error(MP_LOG_WARN, 0,
                             "worker %d (pid %d) did not stop in time, "
                             "killing it", p->id, (int) p->pid);
                kill(p->pid, SIGKILL);
            }
            if (!gen->stopping && master.starting == NULL
                && p->respawn_at != 0 && now >= p->respawn_at && p->pid == 0)
            {
                spawn(gen, p);
            }
        }
        if (gen->kill_at != 0 && now >= gen->kill_at) {
            gen->kill_at = 0;
        }
    }
    if (master.watchdog_at == 0 || now >= master.watchdog_at) {
        watchdog(now);
        master.watchdog_at = watchdog_next(now);
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
    if (master.starting != NULL
        && (next == 0 || master.starting_deadline < next)) {
        next = master.starting_deadline;
    }
    if (master.watchdog_at != 0 && (next == 0 || master.watchdog_at < next)) {
        next = master.watchdog_at;
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
    if (how == MP_STOP_GRACEFUL && master.upgrade_pid != 0) {
        /*
         * The new master of a binary upgrade sends QUIT once its workers
         * serve: systemd follows it as the main process, this one only
         * drains.
         */
        mp_log_error(MP_LOG_NOTICE, 0, "binary upgrade: new master (pid %d) "
                     "took over, stopping gracefully",
                     (int) master.upgrade_pid);
        mp_notify("MAINPID=%d", (int) master.upgrade_pid);
        master.upgrade_pid = 0;
    } else {
        mp_log_error(MP_LOG_NOTICE, 0, "%s",
                     how == MP_STOP_FAST ? "fast stop" : "graceful stop");
        mp_notify("STOPPING=1\nSTATUS=stopping");
    }
    master.stop = how;
    master.starting = NULL;
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
        prepare_logs(gen);
        generation_signal(gen, SIGUSR1);
    }
}


static void
reload_failed(const char *err)
{
    mp_log_error(MP_LOG_ERR, 0, "reload failed, configuration kept: %s", err);
    status_write("failed", err);
    mp_notify("READY=1\nSTATUS=reload failed: %s", err);
}


/*
 * HUP: a new generation for the new config on the shared listeners. The
 * serving generation is stopped only when the new one is ready
 * (finish_reload); any failing step leaves it untouched.
 */
static void
reload(void)
{
    mp_generation_t *old = serving(), *gen;
    mp_conf_t *conf, **running;
    char err[1024];
    uid_t uid;
    gid_t gid;
    size_t n;
    int i, rc;

    master.reload_seq++;
    status_write("running", NULL);
    mp_notify_reloading();
    mp_log_error(MP_LOG_NOTICE, 0, "reloading \"%s\"", master.conf_path);
    conf = mp_conf_load(master.conf_path, err, sizeof(err));
    if (conf == NULL) {
        reload_failed(err);
        return;
    }
    if (mp_tls_check(conf, err, sizeof(err)) != MP_OK) {
        reload_failed(err);
        mp_conf_destroy(conf);
        return;
    }
    if (resolve_user(conf, &uid, &gid, err, sizeof(err)) != MP_OK) {
        reload_failed(err);
        mp_conf_destroy(conf);
        return;
    }
    running = running_confs(NULL, &n);
    rc = mp_listen_open(conf, running, n, MP_LOG_ERR);
    if (rc != MP_OK) {
        snprintf(err, sizeof(err), "cannot listen, see above");
    } else if (mp_zones_open(conf, old->conf, err, sizeof(err)) != MP_OK) {
        mp_listen_close(conf, running, n);
        rc = MP_ERROR;
    } else if (mp_lua_master_init(conf, err, sizeof(err)) != MP_OK) {
        char again[1024];

        mp_zones_release(conf, old->conf);
        mp_listen_close(conf, running, n);
        /*
         * The failed call closed the VM of the serving config; a respawned
         * worker needs one, so build it again.
         */
        if (mp_lua_master_init(old->conf, again, sizeof(again)) != MP_OK) {
            mp_log_error(MP_LOG_ALERT, 0, "cannot restore Lua state: %s",
                         again);
        }
        rc = MP_ERROR;
    }
    free(running);
    if (rc != MP_OK) {
        reload_failed(err);
        mp_conf_destroy(conf);
        return;
    }
    if (strcmp(conf->log.error, old->conf->log.error) != 0) {
        mp_log_open(conf->log.error);
    }
    mp_log_level = conf->log.level;
    gen = generation_create(conf);
    master.starting = gen;
    master.starting_deadline = now_msec() + MP_START_TIMEOUT_MSEC;
    for (i = 0; i < gen->nprocs; i++) {
        spawn(gen, &gen->procs[i]);
    }
    master.watchdog_at = 0;
}


/* The starting generation is ready: it serves, the old ones drain. */
static void
finish_reload(void)
{
    mp_generation_t *gen = master.starting, *old;

    master.starting = NULL;
    for (old = gen->older; old != NULL; old = old->older) {
        if (!old->stopping) {
            generation_stop(old, SIGQUIT, old->conf->cluster.shutdown_timeout);
        }
    }
    mp_log_error(MP_LOG_NOTICE, 0, "reloaded, generation %u, %d workers",
                 gen->number, gen->nprocs);
    master.reload_done = 1;
}


/*
 * A reload is reported done (status file, READY=1) once no worker of an
 * old generation accepts: from then on only the new code answers new
 * connections. Each old worker says so on the notify pipe, or exits.
 */
static void
report_reload(void)
{
    mp_generation_t *gen;
    int i;

    if (!master.reload_done) {
        return;
    }
    for (gen = master.generations; gen != NULL; gen = gen->older) {
        for (i = 0; gen->stopping && i < gen->nprocs; i++) {
            if (gen->procs[i].pid != 0 && gen->procs[i].ready) {
                return;
            }
        }
    }
    master.reload_done = 0;
    status_write("ok", NULL);
    notify_ready(NULL);
}


/*
 * The starting generation failed: stop it and go back to the old one (its
 * Lua state, log settings and any worker that died meanwhile).
 */
static void
abort_reload(const char *why)
{
    mp_generation_t *gen = master.starting, *old;
    char err[1024];

    master.starting = NULL;
    generation_stop(gen, SIGQUIT, gen->conf->cluster.shutdown_timeout);
    old = serving();
    if (old != NULL) {
        if (mp_lua_master_init(old->conf, err, sizeof(err)) != MP_OK) {
            mp_log_error(MP_LOG_ALERT, 0, "cannot restore Lua state: %s",
                         err);
        }
        if (strcmp(gen->conf->log.error, old->conf->log.error) != 0) {
            mp_log_open(old->conf->log.error);
        }
        mp_log_level = old->conf->log.level;
        respawn_missing(old);
    }
    reload_failed(why);
}


static void
respawn_missing(mp_generation_t *gen)
{
    int i;

    for (i = 0; i < gen->nprocs; i++) {
        if (gen->procs[i].pid == 0) {
            spawn(gen, &gen->procs[i]);
        }
    }
}


/*
 * Reads the pids ready workers wrote to the notify pipe, then acts on what
 * became complete: a reload, the first READY=1, a binary upgrade.
 */
static void
read_notify(void)
{
    mp_generation_t *gen, *first;
    pid_t pids[64];
    mp_proc_t *p;
    ssize_t n;
    int i;

    for (;;) {
        n = read(master.notify_rd, pids, sizeof(pids));
        if (n <= 0) {
            break;
        }
        for (i = 0; i < (int) (n / (ssize_t) sizeof(pid_t)); i++) {
            /* the first message says "ready", one after QUIT "draining" */
            if (find_proc(pids[i], &gen, &p)) {
                p->ready = !gen->stopping;
            }
        }
    }
    if (master.stop != MP_STOP_NONE) {
        return;
    }
    if (master.starting != NULL) {
        gen = master.starting;
        for (i = 0; i < gen->nprocs && gen->procs[i].ready; i++) {
            /* count */
        }
        if (i == gen->nprocs) {
            finish_reload();
        }
        return;
    }
    first = serving();
    if (master.announced || first == NULL) {
        return;
    }
    for (i = 0; i < first->nprocs && first->procs[i].ready; i++) {
        /* count */
    }
    if (i < first->nprocs) {
        return;
    }
    master.announced = 1;
    mp_log_error(MP_LOG_NOTICE, 0, "%d %s ready", first->nprocs,
                 first->nprocs == 1 ? "worker" : "workers");
    if (master.upgrade_from != 0) {
        mp_notify("MAINPID=%d", (int) master.pid);
        notify_ready("binary upgraded");
        if (getppid() == master.upgrade_from) {
            mp_log_error(MP_LOG_NOTICE, 0, "binary upgrade: telling the old "
                         "master (pid %d) to stop",
                         (int) master.upgrade_from);
            kill(master.upgrade_from, SIGQUIT);
        }
    } else {
        notify_ready(NULL);
    }
}


/*
 * USR2: executes the binary again in a child, handing it the listening
 * sockets of the serving generation. The new master tells this one to
 * stop once it serves; if it fails, this master keeps serving.
 */
static void
upgrade(void)
{
    mp_generation_t *gen = serving();
    char fds[4096], pid[32];
    char *argv[4];
    size_t i, len = 0;
    pid_t child;

    if (master.upgrade_pid != 0 || master.starting != NULL || gen == NULL) {
        mp_log_error(MP_LOG_WARN, 0, "binary upgrade ignored: %s",
                     master.upgrade_pid != 0 ? "one is under way"
                                             : "a reload is under way");
        return;
    }
    fds[0] = '\0';
    for (i = 0; i < gen->conf->nlistens && len < sizeof(fds); i++) {
        len += (size_t) snprintf(fds + len, sizeof(fds) - len, "%s%d=%s",
                                 i ? ";" : "", gen->conf->listens[i].fd,
                                 gen->conf->listens[i].text);
    }
    if (len >= sizeof(fds)) {
        mp_log_error(MP_LOG_ERR, 0, "binary upgrade failed: too many "
                     "listening sockets");
        return;
    }
    snprintf(pid, sizeof(pid), "%d", (int) master.pid);
    mp_log_error(MP_LOG_NOTICE, 0, "binary upgrade: executing \"%s\"",
                 master.exe);
    fflush(NULL);
    child = fork();
    if (child == -1) {
        mp_log_error(MP_LOG_ALERT, errno, "fork() for the binary upgrade "
                     "failed");
        return;
    }
    if (child == 0) {
        mp_signals_reset_child();
        setenv(MP_ENV_LISTEN_FDS, fds, 1);
        setenv(MP_ENV_UPGRADE_FROM, pid, 1);
        argv[0] = master.exe;
        argv[1] = "-c";
        argv[2] = master.conf_path;
        argv[3] = NULL;
        execv(master.exe, argv);
        mp_log_error(MP_LOG_ALERT, errno, "execv() \"%s\" failed",
                     master.exe);
        _exit(1);
    }
    master.upgrade_pid = child;
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
        } else if (gen->stopping && master.stop == MP_STOP_NONE) {
            generation_destroy(gen);
        }
    }
    return master.stop != MP_STOP_NONE && !live;
}


static void
master_loop(void)
{
    const struct timespec *timeout;
    struct timespec ts;
    struct pollfd *pfds;
    size_t n;
    int rc;

    for (;;) {
        arm_timer();
        /*
         * Like sigsuspend(): the signals are unblocked only while waiting.
         * The notify pipe comes first; the control socket and the worker
         * channels follow (control.h).
         */
        pfds = mp_control_pollset(master.notify_rd, &n);
        timeout = mp_control_timeout(&ts);
        rc = ppoll(pfds, (nfds_t) n, timeout, &master.wait_mask);
        if (rc == -1 && errno != EINTR) {
            mp_log_error(MP_LOG_ALERT, errno, "ppoll() failed");
        }
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
        read_notify();
        report_reload();
        /* a HUP during a reload waits for it: the flag stays set */
        if (mp_sig_reload && master.starting == NULL && !master.reload_done) {
            mp_sig_reload = 0;
            if (master.stop == MP_STOP_NONE) {
                reload();
            }
        }
        if (mp_sig_upgrade) {
            mp_sig_upgrade = 0;
            if (master.stop == MP_STOP_NONE) {
                upgrade();
            }
        }
        mp_sig_alarm = 0;
        run_deadlines();
        mp_control_dispatch(pfds, n);
        if (collect()) {
            return;
        }
    }
}


static int
notify_pipe_open(void)
{
    int fds[2];

    /*
     * Nonblocking both ways: a worker never waits on the master, and the
     * master drains until EAGAIN. Close-on-exec: a binary upgrade makes
     * its own.
     */
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
        mp_log_error(MP_LOG_EMERG, errno, "pipe2() failed");
        return MP_ERROR;
    }
    master.notify_rd = fds[0];
    master.notify_wr = fds[1];
    return MP_OK;
}


/* Start-up after the config is loaded; on failure logs and returns 1. */
static int
start(mp_conf_t *conf)
{
    mp_generation_t *gen;
    char err[1024];
    uid_t uid;
    gid_t gid;
    int i;

    if (mp_tls_check(conf, err, sizeof(err)) != MP_OK
        || resolve_user(conf, &uid, &gid, err, sizeof(err)) != MP_OK) {
        mp_log_error(MP_LOG_EMERG, 0, "%s", err);
        return MP_ERROR;
    }
    if (mp_listen_inherit(getenv(MP_ENV_LISTEN_FDS)) != MP_OK) {
        return MP_ERROR;
    }
    if (mp_listen_open(conf, NULL, 0, MP_LOG_EMERG) != MP_OK) {
        mp_listen_inherit_done();
        return MP_ERROR;
    }
    mp_listen_inherit_done();
    if (mp_zones_open(conf, NULL, err, sizeof(err)) != MP_OK) {
        mp_log_error(MP_LOG_EMERG, 0, "%s", err);
        goto failed;
    }
    if (mp_lua_master_init(conf, err, sizeof(err)) != MP_OK) {
        mp_log_error(MP_LOG_EMERG, 0, "%s", err);
        goto failed;
    }
    if (notify_pipe_open() != MP_OK) {
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
    if (master.pid_file != NULL) {
        master.status_path = mp_reload_status_path(master.pid_file);
        status_write("ok", NULL);
        mp_control_open(master.pid_file);
    }
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


/* Where this binary is, for USR2; " (deleted)" once it was replaced. */
static void
find_exe(void)
{
    static const char deleted[] = " (deleted)";
    ssize_t n;
    size_t dl = sizeof(deleted) - 1;

    n = readlink("/proc/self/exe", master.exe, sizeof(master.exe) - 1);
    if (n <= 0) {
        snprintf(master.exe, sizeof(master.exe), "moonpool");
        return;
    }
    master.exe[n] = '\0';
    if ((size_t) n > dl && strcmp(master.exe + n - dl, deleted) == 0) {
        master.exe[n - dl] = '\0';
    }
}


int
mp_process_master(const char *conf_path, int argc, char **argv)
{
    const char *from;
    char err[1024];
    mp_conf_t *conf;

    master.pid = getpid();
    master.started = now_msec();
    master.conf_path = mp_strdup(conf_path); /* argv is overwritten later */
    master.notify_rd = -1;
    master.notify_wr = -1;
    title_init(argc, argv);
    find_exe();
    from = getenv(MP_ENV_UPGRADE_FROM);
    if (from != NULL) {
        master.upgrade_from = (pid_t) atoi(from);
        unsetenv(MP_ENV_UPGRADE_FROM);
    }

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
    mp_control_close();
    pid_file_remove();
    free(master.status_path);
    free(master.conf_path);
    return 0;
}


void
mp_process_info(mp_process_info_t *info)
{
    mp_generation_t *gen = serving();

    info->pid = master.pid;
    info->generation = gen != NULL ? gen->number : 0;
    info->uptime = now_msec() - master.started;
    info->conf_path = master.conf_path;
    info->conf = gen != NULL ? gen->conf : NULL;
    info->stopping = master.stop != MP_STOP_NONE;
    info->reloading = master.starting != NULL;
}


size_t
mp_process_workers(mp_process_worker_t *out, size_t max)
{
    mp_generation_t *gen, *current = serving();
    mp_msec_t now = now_msec();
    mp_process_worker_t *w;
    size_t n = 0;
    int i;

    for (gen = master.generations; gen != NULL; gen = gen->older) {
        for (i = 0; i < gen->nprocs; i++) {
            if (gen->procs[i].pid == 0) {
                continue;
            }
            if (n < max) {
                w = &out[n];
                w->pid = gen->procs[i].pid;
                w->id = gen->procs[i].id;
                w->generation = gen->number;
                w->serving = gen == current;
                w->state = gen->stopping ? "draining"
                           : gen == master.starting || !gen->procs[i].ready
                               ? "starting" : "serving";
                w->uptime = now - gen->procs[i].started;
                w->conf = gen->conf;
            }
            n++;
        }
    }
    return n;
}
