/*
 * zone.h: named shared-memory zones. The master maps one zone per shared
 * dict with mmap(MAP_SHARED | MAP_ANONYMOUS) before it forks, so the zone
 * sits at the same address in every worker and raw pointers inside it are
 * valid everywhere. A zone starts with a header (magic, size, name); the
 * usable area follows it. On reload the master keeps a zone whose name and
 * size are unchanged (mp_zone_find) and makes a new, empty one otherwise.
 *
 * Only the master creates and destroys zones; nothing here takes a lock.
 */
#ifndef MP_ZONE_H
#define MP_ZONE_H

#include "core/mp_core.h"

#define MP_ZONE_MAGIC 0x6d707a6f6e653031ULL /* "mpzone01" */
#define MP_ZONE_NAME_MAX 64
/* Smallest zone accepted: the header page plus 8 pages of data (nginx). */
#define MP_ZONE_MIN_SIZE (9 * 4096)
/* The usable area starts this far into the zone (keeps it page-aligned). */
#define MP_ZONE_HEADER_SIZE 4096

typedef struct {
    uint64_t magic;
    size_t size;                 /* whole mapping, header included */
    char name[MP_ZONE_NAME_MAX]; /* NUL-terminated */
    void *addr;                  /* where the zone is mapped (== itself) */
    uint64_t generation;         /* bumped each time a reload reuses it */
} mp_zone_t;

/*
 * Maps a new zone of size bytes (rounded up to the page size) named name.
 * Returns NULL and sets *errmsg ("zone too small", "name too long",
 * "no memory") on failure; an mmap() failure is also logged at alert.
 * The usable area is zero-filled. Call in the master, before fork.
 */
mp_zone_t *mp_zone_create(const char *name, size_t size, const char **errmsg);

/* Unmaps the zone. Only once no process uses it any more. */
void mp_zone_destroy(mp_zone_t *zone);

/*
 * Reload reuse: among the n zones of the previous config, returns the one
 * named name whose size equals size (after rounding) and whose header is
 * intact, and bumps its generation; NULL if there is none. When a zone of
 * that name exists with another size, *changed is set to 1 (the caller
 * logs that the dict starts empty); changed may be NULL.
 */
mp_zone_t *mp_zone_find(mp_zone_t **zones, size_t n, const char *name,
    size_t size, int *changed);

/* The usable area (page-aligned) and its size. */
void *mp_zone_data(mp_zone_t *zone);
size_t mp_zone_data_size(const mp_zone_t *zone);

/* size rounded up the way mp_zone_create() rounds it. */
size_t mp_zone_round_size(size_t size);

#endif /* MP_ZONE_H */
