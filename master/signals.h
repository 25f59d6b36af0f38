/*
 * signals.h: the master's signals. One table maps each signal to the flag
 * its handler sets and to the name "moonpool -s NAME" uses. Handlers only
 * set a volatile sig_atomic_t flag; the master keeps every table signal
 * blocked, sleeps in sigsuspend() with them unblocked, and acts on the flags
 * when it wakes up (master/process.c).
 */
#ifndef MP_SIGNALS_H
#define MP_SIGNALS_H

#include "core/mp_core.h"

#include <signal.h>

/* Set by the handlers; the master clears each one before acting on it. */
extern volatile sig_atomic_t mp_sig_reload;    /* HUP */
extern volatile sig_atomic_t mp_sig_quit;      /* QUIT: graceful stop */
extern volatile sig_atomic_t mp_sig_terminate; /* TERM, INT: fast stop */
extern volatile sig_atomic_t mp_sig_reopen;    /* USR1 */
extern volatile sig_atomic_t mp_sig_child;     /* CHLD */
extern volatile sig_atomic_t mp_sig_alarm;     /* ALRM: a deadline passed */
extern volatile sig_atomic_t mp_sig_upgrade;   /* USR2: binary upgrade */

/*
 * Installs the master's handlers, ignores SIGPIPE, and blocks every table
 * signal. *wait_mask receives the mask to pass to sigsuspend() (the mask
 * before the call, with the table signals removed). Call once, before
 * forking anything, so that no SIGCHLD can be lost. Returns MP_OK, or
 * MP_ERROR after logging at emerg.
 */
int mp_signals_init(sigset_t *wait_mask);

/*
 * In a freshly forked worker: restores each table signal to what a worker
 * expects before its event loop installs its own handlers (terminating
 * signals to the default action, HUP, USR1 and USR2 ignored) and unblocks all
 * signals. The worker loop then takes QUIT, TERM, INT and USR1 as libevent
 * signal events.
 */
void mp_signals_reset_child(void);

/*
 * The signal for a "moonpool -s" action ("reload" -> SIGHUP, "quit",
 * "stop", "reopen", "upgrade"), or -1 when the name is unknown.
 */
int mp_signals_find(const char *action);

/* "SIGHUP" for SIGHUP; "signal" for a signal outside the table. */
const char *mp_signals_name(int signo);

#endif /* MP_SIGNALS_H */
