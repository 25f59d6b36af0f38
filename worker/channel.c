/*
 * channel.c: the worker's end of the master channel (see channel.h).
 *
 * A profile runs for the seconds the master asked for, timed by this
 * worker's own timer: the master does not have to send a stop at the
 * right moment, and a worker that is slow to answer only delays its own
 * result. The master may still stop a profile early (PROFILE_STOP).
 *
 * Replies go through an evbuffer: the result of a profile can be larger
 * than the socket buffer, and the loop must not wait for the master to
 * read it, so what does not fit waits for a write event.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "worker/channel.h"

#include <errno.h>
#include <event2/buffer.h>
#include <sys/uio.h>
#include <unistd.h>

/* Commands are a header and a mode name: this is plenty. */
#define MP_CHANNEL_IN_SIZE 1024

mp_channel_profile_start_cb mp_channel_profile_start_hook;
mp_channel_profile_stop_cb mp_channel_profile_stop_hook;

static struct {
    int fd;
    struct event *read_ev;
    struct event *write_ev;
    struct event *profile_timer;
    struct evbuffer *out;
    char in[MP_CHANNEL_IN_SIZE];
    size_t in_len;
    int profiling;
    uint32_t seq;                /* of the running profile */
} ch = { .fd = -1 };


int
mp_channel_write(int fd, const mp_channel_hdr_t *hdr, const void *data)
{
    struct iovec iov[2];
    size_t want = sizeof(*hdr) + hdr->len;
    ssize_t n;

    iov[0].iov_base = (void *) hdr;
    iov[0].iov_len = sizeof(*hdr);
    iov[1].iov_base = (void *) data;
    iov[1].iov_len = hdr->len;
    do {
        n = writev(fd, iov, hdr->len > 0 ? 2 : 1);
    } while (n == -1 && errno == EINTR);
    if (n == -1) {
        return errno == EAGAIN || errno == EWOULDBLOCK ? MP_AGAIN : MP_ERROR;
    }
    if ((size_t) n != want) {
        errno = EPIPE;
        return MP_ERROR;
    }
    return MP_OK;
}


void
mp_channel_attach(int fd)
{
    ch.fd = fd;
}


static void
shut(void)
{
    if (ch.read_ev != NULL) {
        event_free(ch.read_ev);
        ch.read_ev = NULL;
    }
    if (ch.write_ev != NULL) {
        event_free(ch.write_ev);
        ch.write_ev = NULL;
    }
    if (ch.out != NULL) {
        evbuffer_free(ch.out);
        ch.out = NULL;
    }
    if (ch.fd != -1) {
        close(ch.fd);
        ch.fd = -1;
    }
}


/* Writes what the socket takes now; the write event does the rest. */
static void
flush(void)
{
    int n;

    while (evbuffer_get_length(ch.out) > 0) {
        n = evbuffer_write(ch.out, ch.fd);
        if (n > 0) {
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK
                        || errno == EINTR)) {
            event_add(ch.write_ev, NULL);
            return;
        }
        /* the master is gone: PR_SET_PDEATHSIG stops this worker */
        mp_log_error(MP_LOG_INFO, errno, "write to the master channel "
                     "failed");
        shut();
        return;
    }
}


static void
release(const void *data, size_t len, void *arg)
{
    (void) len;
    (void) arg;
    free((void *) data);
}


/* Queues a reply; data (malloc'ed, or NULL) is owned by the channel. */
static void
send_reply(uint32_t type, uint32_t seq, char *data, size_t len)
{
    mp_channel_hdr_t hdr = { type, seq, 0, (uint32_t) len };

    if (ch.fd == -1) {
        free(data);
        return;
    }
    evbuffer_add(ch.out, &hdr, sizeof(hdr));
    if (len > 0
        && evbuffer_add_reference(ch.out, data, len, release, NULL) == 0) {
        data = NULL;
    }
    free(data);
    flush();
}


static void
send_error(uint32_t seq, const char *msg)
{
    send_reply(MP_CHANNEL_PROFILE_ERROR, seq, mp_strdup(msg), strlen(msg));
}


static void
profile_finish(void)
{
    size_t len = 0;
    char *data;

    ch.profiling = 0;
    evtimer_del(ch.profile_timer);
    data = mp_channel_profile_stop_hook(1, &len);
    if (len > MP_CHANNEL_MAX_PAYLOAD) {
        free(data);
        send_error(ch.seq, "too many distinct stacks to send");
        return;
    }
    send_reply(MP_CHANNEL_PROFILE_RESULT, ch.seq, data, len);
}


static void
on_profile_timer(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    if (ch.profiling) {
        profile_finish();
    }
}


static void
profile_start(const mp_channel_hdr_t *hdr, const char *payload)
{
    struct timeval tv = { (time_t) hdr->arg, 0 };
    char mode[16], err[256];

    if (ch.profiling) {
        send_error(hdr->seq, "a profile is already running");
        return;
    }
    if (mp_channel_profile_start_hook == NULL) {
        send_error(hdr->seq, "no profiler in this build");
        return;
    }
    snprintf(mode, sizeof(mode), "%.*s", (int) hdr->len, payload);
    if (mp_channel_profile_start_hook(mode, err, sizeof(err)) != MP_OK) {
        send_error(hdr->seq, err);
        return;
    }
    ch.profiling = 1;
    ch.seq = hdr->seq;
    evtimer_add(ch.profile_timer, &tv);
    mp_log_error(MP_LOG_INFO, 0, "profiling (%s) for %u s", mode,
                 (unsigned) hdr->arg);
}


static void
dispatch(const mp_channel_hdr_t *hdr, const char *payload)
{
    switch (hdr->type) {
    case MP_CHANNEL_PROFILE_START:
        profile_start(hdr, payload);
        break;
    case MP_CHANNEL_PROFILE_STOP:
        if (ch.profiling && hdr->seq == ch.seq) {
            profile_finish();
        }
        break;
    default:
        mp_log_error(MP_LOG_WARN, 0, "unknown master channel message %u",
                     (unsigned) hdr->type);
    }
}


static void
on_read(evutil_socket_t fd, short what, void *arg)
{
    mp_channel_hdr_t hdr;
    size_t used;
    ssize_t n;

    (void) what;
    (void) arg;
    n = read(fd, ch.in + ch.in_len, sizeof(ch.in) - ch.in_len);
    if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        /* the master exited (or a bug broke the stream): stop listening */
        shut();
        return;
    }
    ch.in_len += (size_t) n;
    used = 0;
    while (ch.in_len - used >= sizeof(hdr)) {
        memcpy(&hdr, ch.in + used, sizeof(hdr));
        if (hdr.len > sizeof(ch.in) - sizeof(hdr)) {
            mp_log_error(MP_LOG_ALERT, 0, "oversized master channel "
                         "message (%u bytes)", (unsigned) hdr.len);
            shut();
            return;
        }
        if (ch.in_len - used < sizeof(hdr) + hdr.len) {
            break;
        }
        dispatch(&hdr, ch.in + used + sizeof(hdr));
        if (ch.fd == -1) {
            return; /* a reply failed and closed the channel */
        }
        used += sizeof(hdr) + hdr.len;
    }
    memmove(ch.in, ch.in + used, ch.in_len - used);
    ch.in_len -= used;
}


static void
on_write(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    flush();
}


int
mp_channel_start(struct event_base *base)
{
    if (ch.fd == -1) {
        return MP_OK;
    }
    ch.out = evbuffer_new();
    ch.read_ev = event_new(base, ch.fd, EV_READ | EV_PERSIST, on_read, NULL);
    ch.write_ev = event_new(base, ch.fd, EV_WRITE, on_write, NULL);
    ch.profile_timer = evtimer_new(base, on_profile_timer, NULL);
    if (ch.out == NULL || ch.read_ev == NULL || ch.write_ev == NULL
        || ch.profile_timer == NULL || event_add(ch.read_ev, NULL) != 0) {
        mp_log_error(MP_LOG_ALERT, 0, "cannot watch the master channel");
        shut();
        return MP_ERROR;
    }
    return MP_OK;
}


void
mp_channel_close(void)
{
    size_t len;

    if (ch.profiling) {
        ch.profiling = 0;
        free(mp_channel_profile_stop_hook(0, &len));
    }
    if (ch.profile_timer != NULL) {
        event_free(ch.profile_timer);
        ch.profile_timer = NULL;
    }
    shut();
}
