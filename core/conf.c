/*
 * conf.c: tables shared by every reader of the config snapshot.
 */
#include "core/mp_core.h"
#include "core/conf.h"

const char *const mp_phase_names[MP_PHASE_MAX] = {
    "rewrite", "access", "content", "header_filter", "body_filter", "log",
};
