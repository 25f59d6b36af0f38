/*
 * channel.h: the worker's end of its channel to the master, a socketpair
 * the master creates before fork (master/control.h holds the other end).
 *
 * Messages both ways are a fixed header and a payload of hdr.len bytes.
 * The master sends commands (start a profile, stop it early); the worker
 * answers with a result or an error. The worker's end is a libevent read
 * event in the worker loop: a command runs as one more callback, never
 * while a handler runs, and a reply is queued in an evbuffer that a write
 * event drains, so the loop never blocks on the master.
 *
 * worker/ knows no Lua: the profiler itself is a pair of hooks that lua/
 * registers at start-up (lua/api_profile.c).
 */
#ifndef MP_CHANNEL_H
#define MP_CHANNEL_H

#include "core/mp_core.h"

#include <event2/event.h>

/* Message types (mp_channel_hdr_t.type). */
enum {
    MP_CHANNEL_PROFILE_START = 1, /* master: seq, arg = seconds, "lua" */
    MP_CHANNEL_PROFILE_STOP,      /* master: stop profile seq now */
    MP_CHANNEL_PROFILE_RESULT,    /* worker: seq, folded stacks */
    MP_CHANNEL_PROFILE_ERROR      /* worker: seq, why it cannot profile */
};

/* The largest payload either side accepts; a bigger one is an error. */
#define MP_CHANNEL_MAX_PAYLOAD (64u * 1024 * 1024)

typedef struct {
    uint32_t type;  /* MP_CHANNEL_* */
    uint32_t seq;   /* profile number, echoed back by the worker */
    uint32_t arg;   /* PROFILE_START: seconds */
    uint32_t len;   /* payload bytes that follow the header */
} mp_channel_hdr_t;

/*
 * The profiler, registered by lua/ before fork. start(mode) begins
 * sampling ("lua" or "lua+c") and returns MP_OK, or MP_ERROR with the
 * reason in err. stop(keep) ends it; when keep is set it returns the
 * folded stacks ("frame;frame count\n" lines) in a buffer the caller
 * frees with free() (*len bytes; NULL with *len 0 when nothing was
 * sampled or the result could not be built). Both run from a loop
 * callback, never inside a handler.
 */
typedef int (*mp_channel_profile_start_cb)(const char *mode, char *err,
                                           size_t errlen);
typedef char *(*mp_channel_profile_stop_cb)(int keep, size_t *len);
extern mp_channel_profile_start_cb mp_channel_profile_start_hook;
extern mp_channel_profile_stop_cb mp_channel_profile_stop_hook;

/*
 * Worker, right after fork: takes its end of the channel (-1: none). The
 * fd is owned from then on and closed by mp_channel_close().
 */
void mp_channel_attach(int fd);

/*
 * Worker loop, once its event base exists: registers the read event.
 * MP_OK, or MP_ERROR (logged; the worker then serves without a channel).
 */
int mp_channel_start(struct event_base *base);

/*
 * Worker loop, after the loop ended: stops a running profile (its result
 * is discarded), frees the events and closes the fd.
 */
void mp_channel_close(void);

/*
 * Writes a whole message (header, then payload) to a nonblocking fd in one
 * writev(): MP_OK; MP_AGAIN when the socket buffer is full and nothing was
 * written (the stream is intact: skip this peer for now); MP_ERROR with
 * errno set, or after a partial write (the stream is broken: close it).
 * The master sends its small commands with it.
 */
int mp_channel_write(int fd, const mp_channel_hdr_t *hdr, const void *data);

#endif /* MP_CHANNEL_H */
