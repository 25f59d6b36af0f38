/*
 * signals.c: the master's signal table (see signals.h). A handler only
 * stores 1 in a sig_atomic_t flag: anything more (logging, malloc, waitpid)
 * is not async-signal-safe and is done by the master loop instead. errno is
 * saved because the handler may interrupt a syscall whose errno the master
 * is about to read.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "master/signals.h"

#include <errno.h>

volatile sig_atomic_t mp_sig_reload;
volatile sig_atomic_t mp_sig_quit;
volatile sig_atomic_t mp_sig_terminate;
volatile sig_atomic_t mp_sig_reopen;
volatile sig_atomic_t mp_sig_child;
volatile sig_atomic_t mp_sig_alarm;
volatile sig_atomic_t mp_sig_upgrade;

typedef struct {
    int signo;
    const char *name;              /* "SIGHUP" */
    const char *action;            /* "moonpool -s ACTION", or NULL */
    volatile sig_atomic_t *flag;   /* NULL: ignored in the master */
    void (*in_worker)(int);        /* disposition right after fork */
} mp_signal_t;

/*
 * HUP, USR1 and USR2 are ignored in a new worker until its loop takes them over:
 * their default action would kill a worker that is still starting. QUIT,
 * TERM and INT keep their default action so that a worker told to stop
 * before its loop runs does stop.
 */
static const mp_signal_t signals[] = {
    { SIGHUP, "SIGHUP", "reload", &mp_sig_reload, SIG_IGN },
    { SIGQUIT, "SIGQUIT", "quit", &mp_sig_quit, SIG_DFL },
    { SIGTERM, "SIGTERM", "stop", &mp_sig_terminate, SIG_DFL },
    { SIGINT, "SIGINT", NULL, &mp_sig_terminate, SIG_DFL },
    { SIGUSR1, "SIGUSR1", "reopen", &mp_sig_reopen, SIG_IGN },
    { SIGUSR2, "SIGUSR2", "upgrade", &mp_sig_upgrade, SIG_IGN },
    { SIGCHLD, "SIGCHLD", NULL, &mp_sig_child, SIG_DFL },
    { SIGALRM, "SIGALRM", NULL, &mp_sig_alarm, SIG_DFL },
    /* A write to a closed peer must return EPIPE, not kill the process. */
    { SIGPIPE, "SIGPIPE", NULL, NULL, SIG_IGN },
};


static void
on_signal(int signo)
{
    int saved = errno;
    size_t i;

    for (i = 0; i < mp_nelems(signals); i++) {
        if (signals[i].signo == signo && signals[i].flag != NULL) {
            *signals[i].flag = 1;
            break;
        }
    }
    errno = saved;
}


int
mp_signals_init(sigset_t *wait_mask)
{
    struct sigaction sa;
    sigset_t block;
    size_t i;

    sigemptyset(&block);
    for (i = 0; i < mp_nelems(signals); i++) {
        memset(&sa, 0, sizeof(sa));
        sigemptyset(&sa.sa_mask);
        if (signals[i].flag != NULL) {
            sa.sa_handler = on_signal;
            /* SA_RESTART: a signal must not fail the master's file I/O. */
            sa.sa_flags = SA_RESTART;
            sigaddset(&block, signals[i].signo);
        } else {
            sa.sa_handler = SIG_IGN;
        }
        if (sigaction(signals[i].signo, &sa, NULL) == -1) {
            mp_log_error(MP_LOG_EMERG, errno, "sigaction(%s) failed",
                         signals[i].name);
            return MP_ERROR;
        }
    }
    if (sigprocmask(SIG_BLOCK, &block, wait_mask) == -1) {
        mp_log_error(MP_LOG_EMERG, errno, "sigprocmask() failed");
        return MP_ERROR;
    }
    for (i = 0; i < mp_nelems(signals); i++) {
        sigdelset(wait_mask, signals[i].signo);
    }
    return MP_OK;
}


void
mp_signals_reset_child(void)
{
    struct sigaction sa;
    sigset_t none;
    size_t i;

    for (i = 0; i < mp_nelems(signals); i++) {
        memset(&sa, 0, sizeof(sa));
        sigemptyset(&sa.sa_mask);
        sa.sa_handler = signals[i].in_worker;
        if (sigaction(signals[i].signo, &sa, NULL) == -1) {
            mp_log_error(MP_LOG_ALERT, errno, "sigaction(%s) failed",
                         signals[i].name);
        }
    }
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) == -1) {
        mp_log_error(MP_LOG_ALERT, errno, "sigprocmask() failed");
    }
}


int
mp_signals_find(const char *action)
{
    size_t i;

    for (i = 0; i < mp_nelems(signals); i++) {
        if (signals[i].action != NULL
            && strcmp(signals[i].action, action) == 0)
        {
            return signals[i].signo;
        }
    }
    return -1;
}


const char *
mp_signals_name(int signo)
{
    size_t i;

    for (i = 0; i < mp_nelems(signals); i++) {
        if (signals[i].signo == signo) {
            return signals[i].name;
        }
    }
    return "signal";
}
