/*
 * alloc.c: heap allocation wrappers that abort on failure (see mp_core.h).
 */
#include "core/mp_core.h"
#include "core/log.h"

#include <strings.h>


static void
out_of_memory(size_t size)
{
    mp_log_error(MP_LOG_ALERT, 0, "malloc(%zu) failed, aborting", size);
    abort();
}


void *
mp_alloc(size_t size)
{
    void *p = malloc(size);

    if (mp_unlikely(p == NULL)) {
        out_of_memory(size);
    }
    return p;
}


void *
mp_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (mp_unlikely(p == NULL)) {
        out_of_memory(n * size);
    }
    return p;
}


void *
mp_realloc(void *p, size_t size)
{
    void *np = realloc(p, size);

    if (mp_unlikely(np == NULL && size != 0)) {
        out_of_memory(size);
    }
    return np;
}


char *
mp_strndup(const char *s, size_t n)
{
    char *p = mp_alloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}


char *
mp_strdup(const char *s)
{
    return mp_strndup(s, strlen(s));
}


int
mp_strncasecmp_eq(const char *a, const char *b, size_t n)
{
    return strncasecmp(a, b, n);
}
