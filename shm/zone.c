/*
 * zone.c: anonymous shared mappings with a header that names them (see
 * zone.h). The header is what lets a reload recognise a zone it can keep,
 * as nginx's ngx_init_cycle() does with its shared memory list.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "shm/zone.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>


size_t
mp_zone_round_size(size_t size)
{
    return mp_align(size, 4096);
}


mp_zone_t *
mp_zone_create(const char *name, size_t size, const char **errmsg)
{
    mp_zone_t *zone;
    size_t len;
    void *p;

    len = strlen(name);
    if (len == 0 || len >= MP_ZONE_NAME_MAX) {
        *errmsg = "bad zone name";
        return NULL;
    }
    size = mp_zone_round_size(size);
    if (size < MP_ZONE_MIN_SIZE) {
        *errmsg = "zone too small";
        return NULL;
    }

    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED) {
        mp_log_error(MP_LOG_ALERT, errno,
                     "mmap(MAP_SHARED, %zu) failed for zone \"%s\"", size,
                     name);
        *errmsg = "no memory";
        return NULL;
    }

    /* The kernel hands out zeroed pages, so only the header is written. */
    zone = p;
    zone->magic = MP_ZONE_MAGIC;
    zone->size = size;
    memcpy(zone->name, name, len + 1);
    zone->addr = p;
    zone->generation = 0;
    return zone;
}


void
mp_zone_destroy(mp_zone_t *zone)
{
    if (zone == NULL) {
        return;
    }
    if (munmap(zone, zone->size) != 0) {
        mp_log_error(MP_LOG_ALERT, errno, "munmap() of zone \"%s\" failed",
                     zone->name);
    }
}


mp_zone_t *
mp_zone_find(mp_zone_t **zones, size_t n, const char *name, size_t size,
    int *changed)
{
    size_t i;

    if (changed != NULL) {
        *changed = 0;
    }
    size = mp_zone_round_size(size);
    for (i = 0; i < n; i++) {
        mp_zone_t *z = zones[i];

        if (z == NULL || z->magic != MP_ZONE_MAGIC || z->addr != z
            || strcmp(z->name, name) != 0)
        {
            continue;
        }
        if (z->size != size) {
            if (changed != NULL) {
                *changed = 1;
            }
            continue;
        }
        z->generation++;
        return z;
    }
    return NULL;
}


void *
mp_zone_data(mp_zone_t *zone)
{
    return (char *) zone + MP_ZONE_HEADER_SIZE;
}


size_t
mp_zone_data_size(const mp_zone_t *zone)
{
    return zone->size - MP_ZONE_HEADER_SIZE;
}
