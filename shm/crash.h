/*
 * crash.h: the test-only crash hook of the shm layer. Every mutating path in
 * slab.c and dict.c passes through mp_shm_crash_point(); when a test sets
 * mp_shm_crash_countdown to n > 0, the n-th point reached raises SIGKILL, so
 * a forked child dies in the middle of an operation while holding a lock.
 * The hook is always compiled in and costs one predictable branch while
 * the countdown is 0 (its value in production).
 */
#ifndef MP_SHM_CRASH_H
#define MP_SHM_CRASH_H

#include "core/mp_core.h"

#include <signal.h>

/* Points left before SIGKILL; 0 disables the hook. Per process. */
extern long mp_shm_crash_countdown;

static inline void
mp_shm_crash_point(void)
{
    if (mp_unlikely(mp_shm_crash_countdown > 0)) {
        if (--mp_shm_crash_countdown == 0) {
            raise(SIGKILL);
        }
    }
}

#endif /* MP_SHM_CRASH_H */
