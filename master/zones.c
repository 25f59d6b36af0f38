/*
 * zones.c: which zones each loaded config uses (see zones.h).
 *
 * The master keeps one record per config that went through
 * mp_zones_open(): the config and the zone of each of its dicts, in
 * conf->dicts order. A zone may appear in several records (a reload keeps
 * it), so a zone is unmapped only when the last record naming it goes.
 * There are rarely more than two records (serving and draining), hence a
 * plain array searched linearly.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "master/zones.h"
#include "worker/stats.h"
#include "shm/dict.h"
#include "shm/zone.h"

#include <stdio.h>

typedef struct {
    mp_conf_t *conf;
    mp_zone_t **zones;   /* conf->ndicts entries */
    size_t n;
} zone_set_t;

static zone_set_t *sets;
static uint64_t reloads;      /* configs opened over a running one */
static size_t nsets;


static zone_set_t *
find_set(const mp_conf_t *conf)
{
    size_t i;

    for (i = 0; conf != NULL && i < nsets; i++) {
        if (sets[i].conf == conf) {
            return &sets[i];
        }
    }
    return NULL;
}


/* Whether a record other than skip names zone. */
static int
zone_in_use(const mp_zone_t *zone, const zone_set_t *skip)
{
    size_t i, j;

    for (i = 0; i < nsets; i++) {
        if (&sets[i] == skip) {
            continue;
        }
        for (j = 0; j < sets[i].n; j++) {
            if (sets[i].zones[j] == zone) {
                return 1;
            }
        }
    }
    return 0;
}


/*
 * The zone of one dict: old's zone of that name and size, else a new one.
 * *created says which, so that a failure can undo only its own work.
 */
static mp_zone_t *
open_one(const mp_conf_dict_t *cd, zone_set_t *old, int *created,
    const char **errmsg)
{
    mp_zone_t *zone;
    int changed = 0;

    *created = 0;
    if (old != NULL) {
        zone = mp_zone_find(old->zones, old->n, cd->name.data, cd->size,
                            &changed);
        if (zone != NULL) {
            return zone;
        }
    }
    zone = mp_zone_create(cd->name.data, cd->size, errmsg);
    if (zone == NULL) {
        return NULL;
    }
    *created = 1;
    if (changed) {
        mp_log_error(MP_LOG_NOTICE, 0,
                     "shared dict \"%s\" changed size to %zu, it starts empty",
                     cd->name.data, mp_zone_round_size(cd->size));
    }
    return zone;
}


int
mp_zones_open(mp_conf_t *conf, mp_conf_t *old, char *err, size_t errlen)
{
    zone_set_t *prev = find_set(old), set;
    const mp_conf_dict_t *cd;
    const char *errmsg = "unknown error";
    unsigned char *created;
    mp_dict_t *d;
    size_t i;
    int made;

    set.conf = conf;
    set.n = 0;
    set.zones = mp_calloc(conf->ndicts + 1, sizeof(mp_zone_t *));
    created = mp_calloc(conf->ndicts + 1, 1);

    for (i = 0; i < conf->ndicts; i++) {
        cd = &conf->dicts[i];
        set.zones[i] = open_one(cd, prev, &made, &errmsg);
        if (set.zones[i] == NULL) {
            goto failed;
        }
        set.n = i + 1;
        created[i] = (unsigned char) made;
        d = mp_dict_init(set.zones[i], 0, &errmsg);
        if (d == NULL) {
            goto failed;
        }
        conf->dicts[i].dict = d;
    }

    /* the metrics board of this generation lives beside its dicts */
    if (old != NULL) {
        reloads++;
    }
    if (mp_stats_create(conf, reloads) != MP_OK) {
        errmsg = "no memory for the statistics board";
        snprintf(err, errlen, "%s: %s", conf->file, errmsg);
        for (i = 0; i < set.n; i++) {
            if (created[i]) {
                mp_zone_destroy(set.zones[i]);
            }
            conf->dicts[i].dict = NULL;
        }
        free(created);
        free(set.zones);
        return MP_ERROR;
    }
    sets = mp_realloc(sets, (nsets + 1) * sizeof(zone_set_t));
    sets[nsets++] = set;
    free(created);
    return MP_OK;

failed:
    snprintf(err, errlen, "%s:%d:%d: shared dict \"%s\" (%zu bytes): %s",
             cd->pos.file, cd->pos.line, cd->pos.column, cd->name.data,
             cd->size, errmsg);
    for (i = 0; i < set.n; i++) {
        if (created[i]) {
            mp_zone_destroy(set.zones[i]);
        }
        conf->dicts[i].dict = NULL;
    }
    free(created);
    free(set.zones);
    return MP_ERROR;
}


void
mp_zones_release(mp_conf_t *old, mp_conf_t *new)
{
    zone_set_t *set = find_set(old);
    size_t i;

    (void) new; /* any other record keeps a zone, new's included */
    mp_stats_destroy(old);
    if (set == NULL) {
        return;
    }
    for (i = 0; i < set->n; i++) {
        if (!zone_in_use(set->zones[i], set)) {
            mp_zone_destroy(set->zones[i]);
        }
        old->dicts[i].dict = NULL;
    }
    free(set->zones);
    *set = sets[--nsets];
    if (nsets == 0) {
        free(sets);
        sets = NULL;
    }
}


void
mp_zones_recover(pid_t dead)
{
    mp_dict_t *d;
    unsigned n;
    size_t i, j;

    for (i = 0; i < nsets; i++) {
        for (j = 0; j < sets[i].n; j++) {
            d = sets[i].conf->dicts[j].dict;
            n = d != NULL ? mp_dict_recover_pid(d, dead) : 0;
            if (n > 0) {
                mp_log_error(MP_LOG_ALERT, 0,
                             "process %d died holding %u lock(s) of shared "
                             "dict \"%s\", recovered", (int) dead, n,
                             mp_dict_name(d));
            }
        }
    }
    /* every reaped worker passes here: count it on the newest board */
    if (nsets > 0 && sets[nsets - 1].conf->stats != NULL) {
        ((mp_stats_board_t *) sets[nsets - 1].conf->stats)->worker_exits++;
    }
}
