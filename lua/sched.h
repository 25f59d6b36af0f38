/*
 * sched.h: Lua threads and their scheduling.
 *
 * A thread is a coroutine the worker resumes by itself: the entry thread of
 * a phase handler, a light thread (ngx.thread.spawn) or a timer callback.
 * Code that must wait (ngx.sleep, a cosocket, ngx.thread.wait, a semaphore)
 * arms an event, records how to cancel it in the running thread, and ends
 * with `return mp_lua_yield(L);`. When the event fires, its callback pushes
 * the results onto t->co and calls mp_lua_thread_resume(t, nresults); the
 * thread continues where it yielded, even from inside user coroutines
 * (coroutine.* are wrapped so such yields pass through them).
 *
 * Protocol for an operation that cannot complete now:
 *
 *     mp_lua_thread_t *t = mp_lua_thread_yieldable(L);   -- raises if not
 *     ... arm the event (it will call mp_lua_thread_resume(t, n)) ...
 *     t->cancel = cancel_fn;  t->wait_data = op;          -- for kill/abort
 *     return mp_lua_yield(L);
 *
 * The cancel callback must disarm the event and free what the operation
 * holds; it runs when the thread is killed or its request ends first.
 */
#ifndef MP_LUA_SCHED_H
#define MP_LUA_SCHED_H

#include "core/mp_core.h"
#include "worker/http.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <lua.h>

typedef struct mp_lua_thread_s mp_lua_thread_t;

typedef void (*mp_lua_cancel_cb)(mp_lua_thread_t *t);

/* What a thread is for; decides who is told when it ends. */
typedef enum {
    MP_LUA_THREAD_ENTRY = 0, /* a phase handler */
    MP_LUA_THREAD_USER,      /* ngx.thread.spawn */
    MP_LUA_THREAD_TIMER      /* ngx.timer.* callback */
} mp_lua_thread_kind_t;

struct mp_lua_thread_s {
    lua_State *co;              /* the thread's own (top) coroutine */
    int co_ref;                 /* keeps co alive in the registry */
    mp_request_t *r;            /* NULL for timers */
    mp_lua_thread_t *parent;    /* the spawner of a user thread */
    lua_State *parent_co;       /* the coroutine that spawned it */
    mp_lua_thread_t *children;  /* a timer's light threads */
    int live;                   /* a timer's light threads not yet ended */
    mp_lua_thread_t *next;      /* the request's user threads */
    mp_lua_thread_t *waiter;    /* blocked in ngx.thread.wait on this one */
    mp_lua_thread_t *wq_prev;   /* in a wait queue (semaphore) */
    mp_lua_thread_t *wq_next;
    mp_lua_cancel_cb cancel;    /* disarms the pending operation */
    void *wait_data;            /* the pending operation's state */
    struct event ev;            /* sleeps, plain yields, wait timeouts */
    void (*on_done)(mp_lua_thread_t *t); /* timers: free the record */
    int nresults;               /* results left on co once done */
    int wake_nargs;             /* values pushed for a deferred resume */
    mp_lua_thread_kind_t kind;
    unsigned done:1;            /* returned, failed or was killed */
    unsigned failed:1;          /* a Lua error ended it (message on co) */
    unsigned waiting:1;         /* suspended in an operation */
    unsigned reaped:1;          /* ngx.thread.wait took its results */
    unsigned ev_set:1;          /* ev was assigned */
    unsigned mapped:1;          /* co is known to coroutine.status */
};

/* The thread running now, or NULL (init, init_worker). */
mp_lua_thread_t *mp_lua_thread_current(void);

/*
 * The running thread if the running code may yield; raises OpenResty's
 * "API disabled in the context of ..." (filters, log) or "no thread" error
 * otherwise.
 */
mp_lua_thread_t *mp_lua_thread_yieldable(lua_State *L);

/* Suspends the running thread until mp_lua_thread_resume(); see above. */
int mp_lua_yield(lua_State *L);

/*
 * Resumes t with nargs values already pushed onto t->co, then tells the
 * phase engine if the request's handler is finished. Call from event
 * callbacks only (not from inside Lua).
 */
void mp_lua_thread_resume(mp_lua_thread_t *t, int nargs);

/*
 * Resumes t in the next loop iteration with nargs values already pushed
 * onto t->co (ngx.sleep(0), semaphore posts, a finished light thread).
 */
void mp_lua_thread_resume_later(mp_lua_thread_t *t, int nargs);

/* Arms t->ev as a timer calling cb(t) (waits with a timeout). */
void mp_lua_thread_timer(mp_lua_thread_t *t, mp_msec_t ms,
                         event_callback_fn cb);

/*
 * Runs a phase handler (compiled function ref) of r in its entry thread.
 * Returns what the phase engine expects: MP_OK, MP_AGAIN (it will be told
 * through mp_phases_resume), MP_DONE or MP_ERROR.
 */
int mp_lua_run_entry(mp_request_t *r, int ref);

/*
 * Starts a timer thread: t is caller-owned storage (kind TIMER, on_done
 * set); the function and its arguments are on L, nargs arguments above the
 * function. Returns MP_OK (t may be done already) or MP_ERROR.
 */
int mp_lua_thread_start_timer(lua_State *L, mp_lua_thread_t *t, int nargs);

/* Ends every thread of r's handler now (the request is going away). */
void mp_lua_threads_abort(mp_request_t *r);

/* ngx.thread.*, ngx.sleep and the coroutine wrappers. */
void mp_lua_inject_thread_api(lua_State *L);

/* Forgets the coroutine pool (the VM is being closed). */
void mp_lua_sched_reset(void);

#endif /* MP_LUA_SCHED_H */
