/*
 * notify.h: telling the service manager (systemd) what the master is doing,
 * through sd_notify(3), and telling "moonpool -s reload --wait" how a reload
 * ended, through a status file next to the pid file.
 *
 * sd_notify is compiled in when MP_HAVE_SYSTEMD is defined (libsystemd was
 * found at build time); without it, or without $NOTIFY_SOCKET, the calls do
 * nothing. Master only.
 */
#ifndef MP_NOTIFY_H
#define MP_NOTIFY_H

#include "core/mp_core.h"

/*
 * Sends one notification, printf-style, e.g. "READY=1\nSTATUS=...".
 * Failures are logged at warn; the master goes on either way.
 */
void mp_notify(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* "RELOADING=1" with MONOTONIC_USEC, as systemd wants it, and a STATUS=. */
void mp_notify_reloading(void);

/* True when built with libsystemd ("moonpool -v" says so). */
int mp_notify_available(void);

/*
 * The reload status file: one line "SEQ STATE GENERATION MESSAGE", where
 * SEQ counts the reloads the master began (0: none yet), STATE is
 * "running", "ok" or "failed", GENERATION is the serving generation and
 * MESSAGE the error of a failed reload ("-" otherwise; newlines become
 * spaces). Written atomically (temp file + rename) by the master, read by
 * "moonpool -s reload --wait".
 *
 * mp_reload_status_path() returns "PID_FILE.reload" in a malloc()ed string
 * the caller frees.
 */
char *mp_reload_status_path(const char *pid_file);

/* Master: writes the status file at path; logs at alert on failure. */
void mp_reload_status_write(const char *path, unsigned seq,
                            const char *state, unsigned generation,
                            const char *message);

/*
 * Reads the status file at path. Returns MP_OK and fills the outputs
 * (state and message into buffers of the given sizes), MP_DECLINED when
 * the file does not exist, MP_ERROR when it cannot be read or parsed.
 */
int mp_reload_status_read(const char *path, unsigned *seq, char *state,
                          size_t state_size, unsigned *generation,
                          char *message, size_t message_size);

#endif /* MP_NOTIFY_H */
