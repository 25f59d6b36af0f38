/*
 * pool.c: arenas (see pool.h). Small allocations are bumped from a chain of
 * blocks; an allocation larger than a quarter of a block gets its own
 * malloc so one big request body does not waste a whole block.
 */
#include "core/mp_core.h"
#include "core/pool.h"

typedef struct mp_pool_block_s {
    struct mp_pool_block_s *next;
    char *last;
    char *end;
} mp_pool_block_t;

typedef struct mp_pool_large_s {
    struct mp_pool_large_s *next;
} mp_pool_large_t;

typedef struct mp_pool_cleanup_s {
    struct mp_pool_cleanup_s *next;
    mp_pool_cleanup_cb fn;
    void *data;
} mp_pool_cleanup_t;

struct mp_pool_s {
    mp_pool_block_t first; /* must stay first: its data follows the pool */
    mp_pool_block_t *current;
    mp_pool_large_t *large;
    mp_pool_cleanup_t *cleanups;
    size_t block_size;
    size_t used;
};

#define MP_POOL_ALIGN 16


static char *
first_data(mp_pool_t *p)
{
    return (char *) p + mp_align(sizeof(mp_pool_t), MP_POOL_ALIGN);
}


mp_pool_t *
mp_pool_create(size_t block_size)
{
    size_t hdr = mp_align(sizeof(mp_pool_t), MP_POOL_ALIGN);
    mp_pool_t *p;

    block_size = mp_max(block_size, (size_t) 256);
    p = mp_alloc(hdr + block_size);
    p->first.next = NULL;
    p->first.last = first_data(p);
    p->first.end = p->first.last + block_size;
    p->current = &p->first;
    p->large = NULL;
    p->cleanups = NULL;
    p->block_size = block_size;
    p->used = 0;
    return p;
}


static void
release(mp_pool_t *p)
{
    mp_pool_cleanup_t *c;
    mp_pool_block_t *b, *next;
    mp_pool_large_t *l, *lnext;

    /* A cleanup may allocate from the pool; pop before calling. */
    while ((c = p->cleanups) != NULL) {
        p->cleanups = c->next;
        c->fn(c->data);
    }
    for (l = p->large; l != NULL; l = lnext) {
        lnext = l->next;
        free(l);
    }
    p->large = NULL;
    for (b = p->first.next; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
}


void
mp_pool_destroy(mp_pool_t *p)
{
    if (p == NULL) {
        return;
    }
    release(p);
    free(p);
}


void
mp_pool_reset(mp_pool_t *p)
{
    release(p);
    p->first.next = NULL;
    p->first.last = first_data(p);
    p->current = &p->first;
    p->used = 0;
}


static void *
alloc_large(mp_pool_t *p, size_t size)
{
    size_t hdr = mp_align(sizeof(mp_pool_large_t), MP_POOL_ALIGN);
    mp_pool_large_t *l = mp_alloc(hdr + size);

    l->next = p->large;
    p->large = l;
    return (char *) l + hdr;
}


static void *
alloc_block(mp_pool_t *p, size_t size)
{
    size_t hdr = mp_align(sizeof(mp_pool_block_t), MP_POOL_ALIGN);
    mp_pool_block_t *b = mp_alloc(hdr + p->block_size);
    char *m;

    b->next = NULL;
    b->last = (char *) b + hdr;
    b->end = b->last + p->block_size;
    p->current->next = b;
    p->current = b;
    m = b->last;
    b->last += size;
    return m;
}


static void *
pool_alloc(mp_pool_t *p, size_t size, size_t align)
{
    mp_pool_block_t *b = p->current;
    char *m;

    p->used += size;
    if (size > p->block_size / 4) {
        return alloc_large(p, size);
    }
    m = (char *) mp_align((uintptr_t) b->last, align);
    if (mp_likely(m + size <= b->end)) {
        b->last = m + size;
        return m;
    }
    return alloc_block(p, size);
}


void *
mp_pool_alloc(mp_pool_t *p, size_t size)
{
    return pool_alloc(p, mp_align(size, MP_POOL_ALIGN), MP_POOL_ALIGN);
}


void *
mp_pool_nalloc(mp_pool_t *p, size_t size)
{
    return pool_alloc(p, size, 1);
}


void *
mp_pool_calloc(mp_pool_t *p, size_t size)
{
    void *m = mp_pool_alloc(p, size);

    memset(m, 0, size);
    return m;
}


char *
mp_pool_strndup(mp_pool_t *p, const char *s, size_t n)
{
    char *d = mp_pool_nalloc(p, n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}


int
mp_pool_cleanup_add(mp_pool_t *p, mp_pool_cleanup_cb fn, void *data)
{
    mp_pool_cleanup_t *c = mp_pool_alloc(p, sizeof(*c));

    c->fn = fn;
    c->data = data;
    c->next = p->cleanups;
    p->cleanups = c;
    return MP_OK;
}


size_t
mp_pool_used(const mp_pool_t *p)
{
    return p->used;
}
