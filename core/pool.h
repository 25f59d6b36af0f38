/*
 * pool.h: arenas. A pool hands out memory from blocks and frees it all at
 * once; cleanup handlers registered on it release non-memory resources
 * (fds, events, Lua references) at the same moment, error paths included.
 *
 * mp_pool_reset() keeps the first block, so a pool reused for every request
 * of a connection costs no malloc once it is warm, as long as requests fit
 * in that block.
 */
#ifndef MP_POOL_H
#define MP_POOL_H

#include "core/mp_core.h"

typedef struct mp_pool_s mp_pool_t;

typedef void (*mp_pool_cleanup_cb)(void *data);

/* Creates a pool whose blocks hold block_size bytes. Never NULL. */
mp_pool_t *mp_pool_create(size_t block_size);

/* Runs the cleanups (last registered first) and frees everything. */
void mp_pool_destroy(mp_pool_t *p);

/* Runs the cleanups, frees all but the first block; the pool stays usable. */
void mp_pool_reset(mp_pool_t *p);

/* 16-byte aligned memory valid until the next reset or destroy. Never NULL. */
void *mp_pool_alloc(mp_pool_t *p, size_t size);
void *mp_pool_calloc(mp_pool_t *p, size_t size);

/* Unaligned memory (strings). Never NULL. */
void *mp_pool_nalloc(mp_pool_t *p, size_t size);

/* A NUL-terminated copy of s[0..n). */
char *mp_pool_strndup(mp_pool_t *p, const char *s, size_t n);

/*
 * Registers fn(data) to run on reset or destroy, last registered first.
 * Returns MP_OK (memory for the record comes from the pool itself).
 */
int mp_pool_cleanup_add(mp_pool_t *p, mp_pool_cleanup_cb fn, void *data);

/* Bytes handed out since the last reset (for tests and statistics). */
size_t mp_pool_used(const mp_pool_t *p);

#endif /* MP_POOL_H */
