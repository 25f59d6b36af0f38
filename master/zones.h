/*
 * zones.h: the master's set of shared-dict zones, one per config.
 *
 * mp_zones_open() maps (or, on reload, keeps) one zone per entry of
 * conf->dicts and formats it as a dict; mp_zones_release() unmaps the zones
 * of a config that no other open config uses. Both run in the master only,
 * before fork and after a generation has exited respectively; nothing here
 * takes a dict lock.
 */
#ifndef MP_MASTER_ZONES_H
#define MP_MASTER_ZONES_H

#include "core/mp_core.h"
#include "core/conf.h"

#include <sys/types.h>

/*
 * For each conf->dicts[i]: reuses old's zone when the name and size are
 * unchanged (its data survives the reload), else maps a new, empty zone
 * (logged at notice when a dict of that name changed size); then formats
 * or attaches the dict and stores it in conf->dicts[i].dict. old may be
 * NULL (start-up). On failure returns MP_ERROR with "file:line:col:
 * message" in err, and every zone this call created is unmapped again.
 */
int mp_zones_open(mp_conf_t *conf, mp_conf_t *old, char *err, size_t errlen);

/*
 * Forgets old's zones, unmapping each one that no other opened config
 * (new included) still uses. Call once no process uses old any more: after
 * its generation exited, or when a reload that opened it failed. new is
 * the config that took over (may be NULL).
 */
void mp_zones_release(mp_conf_t *old, mp_conf_t *new);

/*
 * After the master reaped process dead: releases (rolling back) every dict
 * shard lock dead held, in every open config's dicts, so that no worker
 * waits for a lock whose holder is gone. Logs each recovery at alert.
 */
void mp_zones_recover(pid_t dead);

#endif /* MP_MASTER_ZONES_H */
