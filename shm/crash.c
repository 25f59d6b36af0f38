/*
 * crash.c: storage of the test-only crash countdown (see crash.h).
 */
#include "core/mp_core.h"
#include "shm/crash.h"

long mp_shm_crash_countdown;
