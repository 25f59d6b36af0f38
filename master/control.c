/*
 * control.c: the master's control socket and worker channels (see
 * control.h), and the client half the command line uses.
 *
 * Why ppoll() and not a thread or a self-pipe: the master already sleeps
 * in ppoll() with its signals unblocked only during the wait (the atomic
 * sigsuspend() + fd pattern, process.c), so the control sockets are simply
 * more entries in that one call. A signal still interrupts the wait at
 * once, every socket is nonblocking, and the master handles both in the
 * same single thread, with no lock and no window in which a SIGCHLD could
 * be missed. The one deadline this module needs (a profile that workers
 * do not answer) is ppoll()'s timeout, so the master's ITIMER_REAL is not
 * shared.
 *
 * A profile: the master sends PROFILE_START to every worker of the
 * serving generation; each samples for the given seconds on its own timer
 * and sends its folded stacks back. When all answered (or exited, or the
 * deadline passed), the master merges identical stacks, sorts them by
 * count and sends them to the client that asked. Only one profile runs at
 * a time; a client that disconnects cancels it.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "master/control.h"
#include "master/process.h"
#include "shm/dict.h"
#include "worker/channel.h"
#include "worker/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Connections served at once; more are closed at accept. */
#define MP_CONTROL_CLIENTS 16
/* How long a client may take to send its command line. */
#define MP_CONTROL_READ_MSEC 5000
/* How long a client may take to read its answer. */
#define MP_CONTROL_WRITE_MSEC 30000
/* How long workers may be late with a profile's result. */
#define MP_CONTROL_PROFILE_GRACE_MSEC 5000
#define MP_CONTROL_PROFILE_MAX_SECONDS 3600
#define MP_CONTROL_LINE 256

typedef struct {
    pid_t pid;
    int fd;
    int pidx;            /* its entry in the last pollset, -1: none */
    int pending;         /* owes the running profile an answer */
    char *in;
    size_t len;
    size_t cap;
} chan_t;

typedef struct {
    int fd;
    int pidx;
    char line[MP_CONTROL_LINE];
    size_t line_len;
    int waiting;         /* the running profile answers it */
    char *out;           /* the answer being written, or NULL */
    size_t out_len;
    size_t out_pos;
    mp_msec_t deadline;  /* for the command line; 0 once it came */
} client_t;

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

typedef struct {
    const char *stack;
    size_t len;
    unsigned long long count;
} folded_t;

static struct {
    char *path;              /* the socket file we created, or NULL */
    int fd;
    dev_t dev;
    ino_t ino;
    chan_t *chans;
    size_t nchans;
    size_t chans_cap;
    client_t *clients[MP_CONTROL_CLIENTS];
    struct pollfd *pfds;
    size_t pfds_cap;
    struct {
        int active;
        uint32_t seq;
        client_t *client;
        mp_msec_t deadline;
        int asked;
        int answered;
        buf_t data;          /* the workers' folded lines, concatenated */
        buf_t notes;         /* "; worker 1 (pid 12): ..." */
    } prof;
} ctl = { .fd = -1 };


static mp_msec_t
now_msec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (mp_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static void
buf_add(buf_t *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        b->cap = mp_max(b->cap * 2, b->len + len + 1);
        b->cap = mp_max(b->cap, 256);
        b->data = mp_realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}


static void buf_addf(buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));


static void
buf_addf(buf_t *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0) {
        buf_add(b, line, mp_min((size_t) n, sizeof(line) - 1));
    }
}


static void
buf_free(buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}


char *
mp_control_path(const char *pid_file)
{
    size_t n = strlen(pid_file);
    char *path = mp_alloc(n + sizeof(".sock"));

    memcpy(path, pid_file, n);
    memcpy(path + n, ".sock", sizeof(".sock"));
    return path;
}


/* ---- the control socket ------------------------------------------------ */

int
mp_control_open(const char *pid_file)
{
    struct sockaddr_un sa;
    struct stat st;
    char *path = mp_control_path(pid_file);
    mode_t old;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        mp_log_error(MP_LOG_ERR, 0, "control socket path \"%s\" is too long "
                     "(%zu bytes at most), running without it", path,
                     sizeof(sa.sun_path) - 1);
        free(path);
        return MP_ERROR;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    /* A stale socket of an earlier master, or of the master this one
     * replaces (USR2): the pid file points here now, so does the socket. */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            mp_log_error(MP_LOG_ERR, 0, "\"%s\" exists and is not a socket, "
                         "running without a control socket", path);
            free(path);
            return MP_ERROR;
        }
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        mp_log_error(MP_LOG_ERR, errno, "socket(AF_UNIX) failed");
        free(path);
        return MP_ERROR;
    }
    /* created 0600 from the start: no moment in which others may connect */
    old = umask(0177);
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == -1) {
        umask(old);
        mp_log_error(MP_LOG_ERR, errno, "bind() to \"%s\" failed", path);
        goto failed;
    }
    umask(old);
    if (chmod(path, 0600) == -1 || listen(fd, 16) == -1
        || stat(path, &st) == -1) {
        mp_log_error(MP_LOG_ERR, errno, "control socket \"%s\" failed",
                     path);
        unlink(path);
        goto failed;
    }
    ctl.fd = fd;
    ctl.path = path;
    ctl.dev = st.st_dev;
    ctl.ino = st.st_ino;
    mp_log_error(MP_LOG_INFO, 0, "control socket \"%s\"", path);
    return MP_OK;

failed:
    close(fd);
    free(path);
    return MP_ERROR;
}


static void
client_free(client_t *c)
{
    size_t i;

    for (i = 0; i < MP_CONTROL_CLIENTS; i++) {
        if (ctl.clients[i] == c) {
            ctl.clients[i] = NULL;
        }
    }
    if (ctl.prof.client == c) {
        ctl.prof.client = NULL;
    }
    close(c->fd);
    free(c->out);
    free(c);
}


static void
chan_close(size_t i)
{
    chan_t *ch = &ctl.chans[i];

    close(ch->fd);
    free(ch->in);
    ctl.chans[i] = ctl.chans[--ctl.nchans];
}


void
mp_control_close(void)
{
    struct stat st;
    size_t i;

    for (i = 0; i < MP_CONTROL_CLIENTS; i++) {
        if (ctl.clients[i] != NULL) {
            client_free(ctl.clients[i]);
        }
    }
    while (ctl.nchans > 0) {
        chan_close(ctl.nchans - 1);
    }
    if (ctl.fd != -1) {
        close(ctl.fd);
        ctl.fd = -1;
    }
    if (ctl.path != NULL) {
        if (stat(ctl.path, &st) == 0 && st.st_dev == ctl.dev
            && st.st_ino == ctl.ino) {
            unlink(ctl.path);
        }
        free(ctl.path);
        ctl.path = NULL;
    }
    buf_free(&ctl.prof.data);
    buf_free(&ctl.prof.notes);
    free(ctl.chans);
    ctl.chans = NULL;
    ctl.chans_cap = 0;
    free(ctl.pfds);
    ctl.pfds = NULL;
    ctl.pfds_cap = 0;
}


void
mp_control_child(void)
{
    size_t i;

    /* plain close(): the objects are the master's, this copy is dropped */
    for (i = 0; i < MP_CONTROL_CLIENTS; i++) {
        if (ctl.clients[i] != NULL) {
            close(ctl.clients[i]->fd);
        }
    }
    for (i = 0; i < ctl.nchans; i++) {
        close(ctl.chans[i].fd);
    }
    if (ctl.fd != -1) {
        close(ctl.fd);
    }
}


/* ---- channels ---------------------------------------------------------- */

int
mp_control_channel_create(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   fds) == -1) {
        mp_log_error(MP_LOG_ALERT, errno, "socketpair() for a worker "
                     "channel failed");
        fds[0] = fds[1] = -1;
        return MP_ERROR;
    }
    return MP_OK;
}


void
mp_control_channel_add(pid_t pid, int fd)
{
    chan_t *ch;

    if (ctl.nchans == ctl.chans_cap) {
        ctl.chans_cap = mp_max(ctl.chans_cap * 2, 8);
        ctl.chans = mp_realloc(ctl.chans, ctl.chans_cap * sizeof(chan_t));
    }
    ch = &ctl.chans[ctl.nchans++];
    memset(ch, 0, sizeof(*ch));
    ch->pid = pid;
    ch->fd = fd;
    ch->pidx = -1;
}


static void profile_note(pid_t pid, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void profile_answered(chan_t *ch);
static void on_message(chan_t *ch, const mp_channel_hdr_t *hdr,
                       const char *payload);


/*
 * Reads what the channel holds and handles each whole message. Returns
 * MP_OK, or MP_DONE when the worker closed its end or broke the stream
 * (the caller closes the channel).
 */
static int
chan_read(chan_t *ch)
{
    mp_channel_hdr_t hdr;
    size_t used;
    ssize_t n;

    for (;;) {
        if (ch->cap - ch->len < 65536) {
            ch->cap = mp_max(ch->cap * 2, ch->len + 65536);
            ch->in = mp_realloc(ch->in, ch->cap);
        }
        n = read(ch->fd, ch->in + ch->len, ch->cap - ch->len);
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n <= 0) {
            return MP_DONE;
        }
        ch->len += (size_t) n;
    }
    used = 0;
    while (ch->len - used >= sizeof(hdr)) {
        memcpy(&hdr, ch->in + used, sizeof(hdr));
        if (hdr.len > MP_CHANNEL_MAX_PAYLOAD) {
            mp_log_error(MP_LOG_ALERT, 0, "worker (pid %d) sent an oversized "
                         "channel message", (int) ch->pid);
            return MP_DONE;
        }
        if (ch->len - used < sizeof(hdr) + hdr.len) {
            break;
        }
        on_message(ch, &hdr, ch->in + used + sizeof(hdr));
        used += sizeof(hdr) + hdr.len;
    }
    memmove(ch->in, ch->in + used, ch->len - used);
    ch->len -= used;
    /* a large result is not kept around once handled */
    if (ch->len == 0 && ch->cap > 1024 * 1024) {
        free(ch->in);
        ch->in = NULL;
        ch->cap = 0;
    }
    return MP_OK;
}


/* The channel at index i is gone: its worker owes nothing any more. */
static void
chan_gone(size_t i)
{
    chan_t *ch = &ctl.chans[i];

    if (ch->pending) {
        profile_note(ch->pid, "exited before it answered");
        profile_answered(ch);
    }
    chan_close(i);
}


void
mp_control_channel_remove(pid_t pid)
{
    size_t i;

    for (i = 0; i < ctl.nchans; i++) {
        if (ctl.chans[i].pid == pid) {
            chan_read(&ctl.chans[i]);
            chan_gone(i);
            return;
        }
    }
}


/* ---- profiles ---------------------------------------------------------- */

static void
profile_note(pid_t pid, const char *fmt, ...)
{
    char text[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    buf_addf(&ctl.prof.notes, "; worker pid %d %s", (int) pid, text);
}


static int
by_stack(const void *a, const void *b)
{
    const folded_t *x = a, *y = b;
    int rc = memcmp(x->stack, y->stack, mp_min(x->len, y->len));

    return rc != 0 ? rc : (x->len > y->len) - (x->len < y->len);
}


static int
by_count(const void *a, const void *b)
{
    const folded_t *x = a, *y = b;

    if (x->count != y->count) {
        return x->count < y->count ? 1 : -1;
    }
    return by_stack(a, b);
}


/*
 * Parses "stack count" lines of text into *out (pointing into text), then
 * sums the counts of identical stacks; returns the number of stacks.
 */
static size_t
merge_stacks(char *text, size_t len, folded_t **out)
{
    folded_t *s = NULL;
    size_t n = 0, cap = 0, i, j;
    char *p = text, *end = text + len, *eol, *sp, *num_end;
    unsigned long long count;

    for (; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t) (end - p));
        if (eol == NULL) {
            eol = end;
        }
        for (sp = eol; sp > p && sp[-1] != ' '; sp--) {
            /* find the last space */
        }
        if (sp - 1 <= p) {
            continue;
        }
        count = strtoull(sp, &num_end, 10);
        if (num_end != eol || count == 0) {
            continue;
        }
        if (n == cap) {
            cap = mp_max(cap * 2, 256);
            s = mp_realloc(s, cap * sizeof(*s));
        }
        s[n].stack = p;
        s[n].len = (size_t) (sp - 1 - p);
        s[n].count = count;
        n++;
    }
    if (n > 1) {
        qsort(s, n, sizeof(*s), by_stack);
    }
    for (i = 0, j = 0; i < n; i++) {
        if (j > 0 && by_stack(&s[j - 1], &s[i]) == 0) {
            s[j - 1].count += s[i].count;
        } else {
            s[j++] = s[i];
        }
    }
    if (j > 1) {
        qsort(s, j, sizeof(*s), by_count);
    }
    *out = s;
    return j;
}


static void
client_answer(client_t *c, const char *status, const buf_t *body)
{
    size_t n = strlen(status);

    c->waiting = 0;
    c->out_len = n + 1 + (body != NULL ? body->len : 0);
    c->out = mp_alloc(c->out_len);
    memcpy(c->out, status, n);
    c->out[n] = '\n';
    if (body != NULL && body->len > 0) {
        memcpy(c->out + n + 1, body->data, body->len);
    }
    c->out_pos = 0;
    c->deadline = now_msec() + MP_CONTROL_WRITE_MSEC;
}


static void
profile_finish(void)
{
    unsigned long long samples = 0;
    buf_t body = { 0 }, status = { 0 };
    folded_t *s;
    size_t n, i;

    n = merge_stacks(ctl.prof.data.data, ctl.prof.data.len, &s);
    for (i = 0; i < n; i++) {
        samples += s[i].count;
        buf_add(&body, s[i].stack, s[i].len);
        buf_addf(&body, " %llu\n", s[i].count);
    }
    buf_addf(&status, "OK %d of %d workers answered, %llu samples, %zu "
             "stacks", ctl.prof.answered, ctl.prof.asked, samples, n);
    if (ctl.prof.notes.len > 0) {
        buf_add(&status, ctl.prof.notes.data, ctl.prof.notes.len);
    }
    if (ctl.prof.client != NULL) {
        client_answer(ctl.prof.client, status.data, &body);
    }
    mp_log_error(MP_LOG_NOTICE, 0, "profile %u done: %s", ctl.prof.seq,
                 status.data + 3);
    free(s);
    buf_free(&body);
    buf_free(&status);
    buf_free(&ctl.prof.data);
    buf_free(&ctl.prof.notes);
    ctl.prof.active = 0;
    ctl.prof.client = NULL;
    for (i = 0; i < ctl.nchans; i++) {
        ctl.chans[i].pending = 0;
    }
}


static void
profile_answered(chan_t *ch)
{
    size_t i;

    ch->pending = 0;
    for (i = 0; i < ctl.nchans; i++) {
        if (ctl.chans[i].pending) {
            return;
        }
    }
    if (ctl.prof.active) {
        profile_finish();
    }
}


static void
on_message(chan_t *ch, const mp_channel_hdr_t *hdr, const char *payload)
{
    if (!ctl.prof.active || !ch->pending || hdr->seq != ctl.prof.seq) {
        return; /* the answer to a cancelled or timed-out profile */
    }
    switch (hdr->type) {
    case MP_CHANNEL_PROFILE_RESULT:
        ctl.prof.answered++;
        buf_add(&ctl.prof.data, payload, hdr->len);
        if (hdr->len > 0 && payload[hdr->len - 1] != '\n') {
            buf_add(&ctl.prof.data, "\n", 1);
        }
        break;
    case MP_CHANNEL_PROFILE_ERROR:
        profile_note(ch->pid, "failed: %.*s", (int) mp_min(hdr->len, 200u),
                     payload);
        break;
    default:
        return;
    }
    profile_answered(ch);
}


static void
profile_cancel(void)
{
    mp_channel_hdr_t hdr = { MP_CHANNEL_PROFILE_STOP, ctl.prof.seq, 0, 0 };
    size_t i;

    for (i = 0; i < ctl.nchans; i++) {
        if (ctl.chans[i].pending) {
            mp_channel_write(ctl.chans[i].fd, &hdr, NULL);
            ctl.chans[i].pending = 0;
        }
    }
    mp_log_error(MP_LOG_NOTICE, 0, "profile %u cancelled: the client left",
                 ctl.prof.seq);
    buf_free(&ctl.prof.data);
    buf_free(&ctl.prof.notes);
    ctl.prof.active = 0;
    ctl.prof.client = NULL;
}


static chan_t *
find_chan(pid_t pid)
{
    size_t i;

    for (i = 0; i < ctl.nchans; i++) {
        if (ctl.chans[i].pid == pid) {
            return &ctl.chans[i];
        }
    }
    return NULL;
}


/* "profile SECONDS MODE": starts a profile that answers c. */
static void
cmd_profile(client_t *c, const char *args)
{
    mp_process_worker_t w[256];
    mp_channel_hdr_t hdr;
    char mode[16] = "lua", status[256];
    unsigned seconds = 0;
    size_t n, i;
    chan_t *ch;
    int rc;

    if (sscanf(args, "%u %15s", &seconds, mode) < 1 || seconds == 0
        || seconds > MP_CONTROL_PROFILE_MAX_SECONDS) {
        snprintf(status, sizeof(status), "ERROR --seconds must be 1 to %d",
                 MP_CONTROL_PROFILE_MAX_SECONDS);
        client_answer(c, status, NULL);
        return;
    }
    if (strcmp(mode, "lua") != 0 && strcmp(mode, "lua+c") != 0) {
        client_answer(c, "ERROR --mode must be lua or lua+c", NULL);
        return;
    }
    if (ctl.prof.active) {
        client_answer(c, "ERROR a profile is already running", NULL);
        return;
    }
    ctl.prof.seq++;
    ctl.prof.asked = 0;
    ctl.prof.answered = 0;
    hdr.type = MP_CHANNEL_PROFILE_START;
    hdr.seq = ctl.prof.seq;
    hdr.arg = seconds;
    hdr.len = (uint32_t) strlen(mode);
    n = mp_min(mp_process_workers(w, mp_nelems(w)), mp_nelems(w));
    for (i = 0; i < n; i++) {
        ch = find_chan(w[i].pid);
        if (!w[i].serving || ch == NULL) {
            continue;
        }
        rc = mp_channel_write(ch->fd, &hdr, mode);
        if (rc != MP_OK) {
            profile_note(w[i].pid, "not asked: its channel is %s",
                         rc == MP_AGAIN ? "full" : "broken");
            continue;
        }
        ch->pending = 1;
        ctl.prof.asked++;
    }
    if (ctl.prof.asked == 0) {
        buf_free(&ctl.prof.notes);
        client_answer(c, "ERROR no worker to profile", NULL);
        return;
    }
    ctl.prof.active = 1;
    ctl.prof.client = c;
    ctl.prof.deadline = now_msec() + (mp_msec_t) seconds * 1000
                        + MP_CONTROL_PROFILE_GRACE_MSEC;
    c->waiting = 1;
    mp_log_error(MP_LOG_NOTICE, 0, "profile %u (%s) of %d workers for %u s",
                 ctl.prof.seq, mode, ctl.prof.asked, seconds);
}


static void
profile_deadline(void)
{
    size_t i;

    for (i = 0; i < ctl.nchans; i++) {
        if (ctl.chans[i].pending) {
            profile_note(ctl.chans[i].pid, "did not answer in time");
            ctl.chans[i].pending = 0;
        }
    }
    profile_finish();
}


/* ---- status ------------------------------------------------------------ */

static void
fmt_duration(char *buf, size_t len, mp_msec_t ms)
{
    long long s = ms / 1000;

    if (s < 60) {
        snprintf(buf, len, "%llds", s);
    } else if (s < 3600) {
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    } else if (s < 86400) {
        snprintf(buf, len, "%lldh%02lldm", s / 3600, s / 60 % 60);
    } else {
        snprintf(buf, len, "%lldd%02lldh", s / 86400, s / 3600 % 24);
    }
}


static void
fmt_bytes(char *buf, size_t len, unsigned long long bytes)
{
    if (bytes < 1024) {
        snprintf(buf, len, "%llu B", bytes);
    } else if (bytes < 1024 * 1024) {
        snprintf(buf, len, "%.1f KiB", (double) bytes / 1024);
    } else if (bytes < 1024ULL * 1024 * 1024) {
        snprintf(buf, len, "%.1f MiB", (double) bytes / (1024 * 1024));
    } else {
        snprintf(buf, len, "%.1f GiB",
                 (double) bytes / (1024.0 * 1024 * 1024));
    }
}


/* VmRSS of pid in bytes from /proc/PID/status; 0 when unknown. */
static unsigned long long
rss_of(pid_t pid)
{
    char path[64], line[256];
    unsigned long long kb = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}


static void
status_workers(buf_t *b)
{
    mp_process_worker_t w[256];
    const mp_stats_board_t *board;
    const mp_stats_slot_t *slot;
    unsigned long long requests;
    char up[32], rss[32], lua[32], req[32];
    size_t n, shown, i, k;

    n = mp_process_workers(w, mp_nelems(w));
    shown = mp_min(n, mp_nelems(w));
    buf_addf(b, "workers: %zu\n", n);
    buf_addf(b, "  %-6s %-8s %-4s %-9s %-8s %-9s %-10s %s\n", "WORKER",
             "PID", "GEN", "STATE", "UPTIME", "REQUESTS", "RSS", "LUA MEM");
    for (i = 0; i < shown; i++) {
        board = w[i].conf->stats;
        slot = NULL;
        if (board != NULL && (uint32_t) w[i].id < board->nworkers) {
            slot = mp_stats_slot(board, (unsigned) w[i].id);
            if (slot->pid != (int64_t) w[i].pid) {
                slot = NULL; /* not attached yet */
            }
        }
        requests = 0;
        for (k = 0; slot != NULL && k < MP_STATS_CLASSES; k++) {
            requests += slot->requests[k];
        }
        fmt_duration(up, sizeof(up), w[i].uptime);
        fmt_bytes(rss, sizeof(rss), rss_of(w[i].pid));
        if (slot != NULL) {
            snprintf(req, sizeof(req), "%llu", requests);
            fmt_bytes(lua, sizeof(lua),
                      (unsigned long long) slot->lua_memory_kb * 1024);
        } else {
            snprintf(req, sizeof(req), "-");
            snprintf(lua, sizeof(lua), "-");
        }
        buf_addf(b, "  %-6d %-8d %-4u %-9s %-8s %-9s %-10s %s\n", w[i].id,
                 (int) w[i].pid, w[i].generation, w[i].state, up, req, rss,
                 lua);
    }
}


static void
status_dicts(buf_t *b, const mp_conf_t *conf)
{
    char cap[32], free_[32];
    mp_dict_stats_t st;
    mp_dict_t *d;
    double fill;
    size_t i, capacity, free_space;

    if (conf == NULL || conf->ndicts == 0) {
        buf_addf(b, "shared dicts: none\n");
        return;
    }
    buf_addf(b, "shared dicts: %zu\n", conf->ndicts);
    buf_addf(b, "  %-16s %-10s %-10s %-8s %s\n", "DICT", "CAPACITY", "FREE",
             "ITEMS", "FILL");
    for (i = 0; i < conf->ndicts; i++) {
        d = conf->dicts[i].dict;
        if (d == NULL) {
            continue;
        }
        /* each call takes the shard locks briefly, as a worker would */
        mp_dict_stats(d, &st);
        capacity = mp_dict_capacity(d);
        free_space = mp_dict_free_space(d);
        fill = st.pages_total > 0
                   ? 100.0 * (double) (st.pages_total - st.pages_free)
                         / (double) st.pages_total
                   : 0.0;
        fmt_bytes(cap, sizeof(cap), capacity);
        fmt_bytes(free_, sizeof(free_), free_space);
        buf_addf(b, "  %-16.*s %-10s %-10s %-8zu %.1f%%\n",
                 (int) conf->dicts[i].name.len, conf->dicts[i].name.data,
                 cap, free_, st.items, fill);
    }
}


static void
cmd_status(client_t *c)
{
    mp_process_info_t info;
    buf_t body = { 0 };
    char up[32], *real;

    mp_process_info(&info);
    fmt_duration(up, sizeof(up), info.uptime);
    buf_addf(&body, "moonpool %s: master pid %d, generation %u, up %s%s\n",
             MP_VERSION, (int) info.pid, info.generation, up,
             info.stopping ? ", stopping"
             : info.reloading ? ", reloading" : "");
    real = realpath(info.conf_path, NULL);
    buf_addf(&body, "config: %s\n", real != NULL ? real : info.conf_path);
    free(real);
    status_workers(&body);
    status_dicts(&body, info.conf);
    if (ctl.prof.active) {
        buf_addf(&body, "profile: running, %lld s left\n",
                 (long long) (ctl.prof.deadline - now_msec()
                              - MP_CONTROL_PROFILE_GRACE_MSEC) / 1000);
    }
    client_answer(c, "OK", &body);
    buf_free(&body);
}


/* ---- clients ----------------------------------------------------------- */

static void
client_command(client_t *c)
{
    char *line = c->line;

    c->deadline = 0;
    if (strcmp(line, "status") == 0) {
        cmd_status(c);
    } else if (strncmp(line, "profile ", 8) == 0) {
        cmd_profile(c, line + 8);
    } else {
        client_answer(c, "ERROR unknown command", NULL);
    }
}


/* Reads the command line, or notices that a waiting client left. */
static int
client_read(client_t *c)
{
    char *eol;
    ssize_t n;

    if (c->out != NULL) {
        return MP_OK;
    }
    n = read(c->fd, c->line + c->line_len,
             sizeof(c->line) - 1 - c->line_len);
    if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
        return MP_OK;
    }
    if (n <= 0) {
        return MP_DONE;
    }
    if (c->waiting) {
        return MP_OK; /* anything after the command is ignored */
    }
    c->line_len += (size_t) n;
    c->line[c->line_len] = '\0';
    eol = strchr(c->line, '\n');
    if (eol == NULL) {
        if (c->line_len == sizeof(c->line) - 1) {
            client_answer(c, "ERROR command too long", NULL);
        }
        return MP_OK;
    }
    *eol = '\0';
    client_command(c);
    return MP_OK;
}


/* Writes what it can of the answer; MP_DONE once all of it went. */
static int
client_write(client_t *c)
{
    ssize_t n;

    while (c->out_pos < c->out_len) {
        n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
                 MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR) {
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return MP_OK;
        }
        if (n <= 0) {
            return MP_DONE;
        }
        c->out_pos += (size_t) n;
    }
    return MP_DONE;
}


static int
peer_allowed(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    /* the 0600 mode is the rule; this catches a socket file chmod'ed open */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
        return 0;
    }
    return cred.uid == 0 || cred.uid == geteuid();
}


static void
on_accept(void)
{
    client_t *c;
    size_t i;
    int fd;

    for (;;) {
        fd = accept4(ctl.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
                && errno != ECONNABORTED) {
                mp_log_error(MP_LOG_ERR, errno, "accept4() on the control "
                             "socket failed");
            }
            return;
        }
        for (i = 0; i < MP_CONTROL_CLIENTS && ctl.clients[i] != NULL; i++) {
            /* find a free slot */
        }
        if (i == MP_CONTROL_CLIENTS || !peer_allowed(fd)) {
            close(fd);
            continue;
        }
        c = mp_calloc(1, sizeof(*c));
        c->fd = fd;
        c->pidx = -1;
        c->deadline = now_msec() + MP_CONTROL_READ_MSEC;
        ctl.clients[i] = c;
        /* the command is usually there already */
        if (client_read(c) == MP_DONE) {
            client_free(c);
        }
    }
}


/* ---- the master's wait ------------------------------------------------- */

struct pollfd *
mp_control_pollset(int first_fd, size_t *n)
{
    size_t need = 2 + ctl.nchans + MP_CONTROL_CLIENTS, i, k = 0;
    client_t *c;

    if (need > ctl.pfds_cap) {
        ctl.pfds_cap = need * 2;
        ctl.pfds = mp_realloc(ctl.pfds, ctl.pfds_cap * sizeof(*ctl.pfds));
    }
    ctl.pfds[k].fd = first_fd;
    ctl.pfds[k++].events = POLLIN;
    if (ctl.fd != -1) {
        ctl.pfds[k].fd = ctl.fd;
        ctl.pfds[k++].events = POLLIN;
    }
    for (i = 0; i < ctl.nchans; i++) {
        ctl.chans[i].pidx = (int) k;
        ctl.pfds[k].fd = ctl.chans[i].fd;
        ctl.pfds[k++].events = POLLIN;
    }
    for (i = 0; i < MP_CONTROL_CLIENTS; i++) {
        c = ctl.clients[i];
        if (c == NULL) {
            continue;
        }
        c->pidx = (int) k;
        ctl.pfds[k].fd = c->fd;
        ctl.pfds[k++].events = c->out != NULL ? POLLOUT : POLLIN;
    }
    for (i = 0; i < k; i++) {
        ctl.pfds[i].revents = 0;
    }
    *n = k;
    return ctl.pfds;
}


const struct timespec *
mp_control_timeout(struct timespec *ts)
{
    mp_msec_t next = 0, now, d;
    size_t i;

    if (ctl.prof.active) {
        next = ctl.prof.deadline;
    }
    for (i = 0; i < MP_CONTROL_CLIENTS; i++) {
        d = ctl.clients[i] != NULL ? ctl.clients[i]->deadline : 0;
        if (d != 0 && (next == 0 || d < next)) {
            next = d;
        }
    }
    if (next == 0) {
        return NULL;
    }
    now = now_msec();
    d = next > now ? next - now : 0;
    ts->tv_sec = (time_t) (d / 1000);
    ts->tv_nsec = (long) (d % 1000) * 1000000;
    return ts;
}


static short
revents(const struct pollfd *pfds, size_t n, int pidx)
{
    return pidx >= 0 && (size_t) pidx < n ? pfds[pidx].revents : 0;
}


static void
serve_clients(const struct pollfd *pfds, size_t n, mp_msec_t now)
{
    client_t *c;
    size_t i;
    short ev;
    int rc;

    for (i = 0; i < MP_CONTROL_CLIENTS; i++) {
        c = ctl.clients[i];
        if (c == NULL) {
            continue;
        }
        ev = revents(pfds, n, c->pidx);
        rc = MP_OK;
        if (ev & (POLLIN | POLLHUP | POLLERR)) {
            rc = client_read(c);
        }
        if (rc == MP_OK && c->out != NULL) {
            rc = client_write(c);
        }
        if (rc == MP_OK && c->deadline != 0 && now >= c->deadline) {
            rc = MP_DONE; /* too slow to send its command or to read */
        }
        if (rc == MP_DONE) {
            if (c->waiting && ctl.prof.client == c) {
                profile_cancel();
            }
            client_free(c);
        }
    }
}


void
mp_control_dispatch(const struct pollfd *pfds, size_t n)
{
    mp_msec_t now;
    size_t i;

    for (i = 0; i < ctl.nchans; /* advanced below */) {
        if ((revents(pfds, n, ctl.chans[i].pidx)
             & (POLLIN | POLLHUP | POLLERR))
            && chan_read(&ctl.chans[i]) == MP_DONE) {
            chan_gone(i); /* the last channel moved to i */
            continue;
        }
        i++;
    }
    now = now_msec();
    if (ctl.prof.active && now >= ctl.prof.deadline) {
        profile_deadline();
    }
    serve_clients(pfds, n, now);
    /* accept last: a new fd may reuse the number of one closed above */
    if (ctl.fd != -1 && n > 1 && pfds[1].fd == ctl.fd
        && (pfds[1].revents & POLLIN)) {
        on_accept();
    }
}


/* ---- command line ------------------------------------------------------ */

/* Connects to path within the caller's deadline; -1 with msg on error. */
static int
client_connect(const char *path, char *msg, size_t msglen)
{
    struct sockaddr_un sa;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(msg, msglen, "control socket path \"%s\" is too long",
                 path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        snprintf(msg, msglen, "socket() failed (%d: %s)", errno,
                 strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == -1) {
        snprintf(msg, msglen, "cannot connect to \"%s\" (%d: %s)%s", path,
                 errno, strerror(errno),
                 errno == ENOENT || errno == ECONNREFUSED
                     ? "; is moonpool running?" : "");
        close(fd);
        return -1;
    }
    return fd;
}


/*
 * Reads the answer: the status line into msg (the rest of a long one is
 * dropped), the body to out. MP_OK, MP_DECLINED or MP_ERROR as in
 * mp_control_request().
 */
static int
client_receive(int fd, int timeout_ms, FILE *out, char *msg, size_t msglen)
{
    char buf[65536], line[1024];
    size_t line_len = 0, take, room;
    int got_line = 0, rc;
    struct pollfd pfd = { fd, POLLIN, 0 };
    mp_msec_t deadline = now_msec() + timeout_ms, left;
    ssize_t n;
    char *p, *eol;

    for (;;) {
        left = deadline - now_msec();
        if (left <= 0) {
            snprintf(msg, msglen, "no answer from the master within %d s",
                     timeout_ms / 1000);
            return MP_ERROR;
        }
        rc = poll(&pfd, 1, (int) left);
        if (rc == -1 && errno == EINTR) {
            continue;
        }
        n = rc > 0 ? read(fd, buf, sizeof(buf)) : 0;
        if (rc > 0 && n == 0) {
            break;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(msg, msglen, "read() from the control socket failed "
                     "(%d: %s)", errno, strerror(errno));
            return MP_ERROR;
        }
        p = buf;
        if (!got_line) {
            eol = memchr(buf, '\n', (size_t) n);
            take = eol != NULL ? (size_t) (eol - buf) : (size_t) n;
            room = sizeof(line) - 1 - line_len;

            memcpy(line + line_len, buf, mp_min(take, room));
            line_len += mp_min(take, room);
            if (eol == NULL) {
                continue;
            }
            got_line = 1;
            p = eol + 1;
        }
        if (buf + n > p && out != NULL
            && fwrite(p, 1, (size_t) (buf + n - p), out)
                   != (size_t) (buf + n - p)) {
            snprintf(msg, msglen, "write failed (%d: %s)", errno,
                     strerror(errno));
            return MP_ERROR;
        }
    }
    line[line_len] = '\0';
    if (!got_line) {
        snprintf(msg, msglen, "the master closed the connection without "
                 "an answer");
        return MP_ERROR;
    }
    if (strncmp(line, "OK", 2) == 0) {
        snprintf(msg, msglen, "%s", line[2] == ' ' ? line + 3 : line + 2);
        return MP_OK;
    }
    snprintf(msg, msglen, "%s",
             strncmp(line, "ERROR ", 6) == 0 ? line + 6 : line);
    return MP_DECLINED;
}


int
mp_control_request(const char *path, const char *command, int timeout_ms,
                   FILE *out, char *msg, size_t msglen)
{
    size_t len = strlen(command);
    char line[MP_CONTROL_LINE];
    int fd, rc;

    if (len + 1 >= sizeof(line)) {
        snprintf(msg, msglen, "command too long");
        return MP_ERROR;
    }
    memcpy(line, command, len);
    line[len++] = '\n';
    fd = client_connect(path, msg, msglen);
    if (fd == -1) {
        return MP_ERROR;
    }
    if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t) len) {
        snprintf(msg, msglen, "send() to \"%s\" failed (%d: %s)", path,
                 errno, strerror(errno));
        close(fd);
        return MP_ERROR;
    }
    rc = client_receive(fd, timeout_ms, out, msg, msglen);
    close(fd);
    return rc;
}
