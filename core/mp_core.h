/*
 * mp_core.h: what every layer of moonpool needs. Included first by every
 * .c file. Return codes are numerically equal to nginx's so that ngx.OK,
 * ngx.ERROR, ngx.AGAIN, ngx.DONE and ngx.DECLINED map one to one.
 */
#ifndef MP_CORE_H
#define MP_CORE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define MP_VERSION "0.1.0"

#define MP_OK 0
#define MP_ERROR (-1)
#define MP_AGAIN (-2)
#define MP_BUSY (-3)
#define MP_DONE (-4)
#define MP_DECLINED (-5)

/* A counted string; data is not necessarily NUL-terminated. */
typedef struct {
    size_t len;
    char *data;
} mp_str_t;

#define mp_string(s) { sizeof(s) - 1, (char *) (s) }
#define mp_null_string { 0, NULL }

/* Milliseconds: durations in the config and timer deadlines. */
typedef int64_t mp_msec_t;

#define mp_min(a, b) ((a) < (b) ? (a) : (b))
#define mp_max(a, b) ((a) > (b) ? (a) : (b))
#define mp_nelems(a) (sizeof(a) / sizeof((a)[0]))
#define mp_align(n, a) (((n) + ((a) - 1)) & ~((size_t) (a) - 1))

#define mp_container_of(ptr, type, field)                                      \
    ((type *) ((char *) (ptr) - offsetof(type, field)))

#define mp_likely(x) __builtin_expect(!!(x), 1)
#define mp_unlikely(x) __builtin_expect(!!(x), 0)

/*
 * Heap allocation that never returns NULL: running out of heap in a worker
 * is fatal (the master respawns it), so callers need no OOM branch. The
 * failure is logged at alert before abort().
 */
void *mp_alloc(size_t size);
void *mp_calloc(size_t n, size_t size);
void *mp_realloc(void *p, size_t size);
char *mp_strndup(const char *s, size_t n);
char *mp_strdup(const char *s);

/* Case-insensitive compare of two counted strings; 0 when equal. */
int mp_strncasecmp_eq(const char *a, const char *b, size_t n);

#endif /* MP_CORE_H */
