/*
 * dict.h: the shared dictionary behind ngx.shared.DICT, on one zone.
 *
 * A dict is split into shards by key hash; each shard has its own
 * pid-stamped lock (shmtx.h), hash index, LRU list, slab pool (an equal
 * share of the zone) and undo log, so processes touching different keys
 * rarely wait for each other. Reads do not reorder the LRU list: they set a
 * reference bit and eviction gives referenced items a second chance
 * (CLOCK), so get changes no links.
 *
 * Every function takes and releases the shard lock(s) itself; none may be
 * called with a dict lock held. Values are copied out under the lock (or
 * handed to a callback that runs under it): nothing returns a pointer into
 * the zone. Semantics and error strings are OpenResty's (errmsg points to a
 * static string). A key is 1..65535 bytes, binary-safe.
 *
 * Crash safety: every change of a shard's structure is a small transaction.
 * Each word it overwrites is first saved in the shard's undo log; the log
 * is cleared at commit, and blocks are freed only after commit. A change of
 * a single word (a number set in place, incr, expire) is one aligned store
 * and needs no log. When a process dies holding a shard lock, the next
 * locker, or the master through mp_dict_recover_pid(), rolls the log back
 * (or finishes a flush_all), rebuilds the shard's slab pool from the live
 * items, and only then lets anyone proceed. An operation is therefore
 * either done or absent; evictions made to find room for it may persist
 * (they are evictions). If the old value of a key must be dropped to make
 * room for its new one, a crash in between loses the old value, as an
 * eviction would.
 */
#ifndef MP_DICT_H
#define MP_DICT_H

#include "core/mp_core.h"
#include "shm/zone.h"

/* Value types; the first five equal OpenResty's (and Lua's) numbers. */
#define MP_DICT_TNIL 0
#define MP_DICT_TBOOLEAN 1
#define MP_DICT_TNUMBER 3
#define MP_DICT_TSTRING 4
#define MP_DICT_TLIST 5
#define MP_DICT_TTABLE 6   /* opaque bytes (string.buffer) for the Lua layer */

/* mp_dict_store() operations (OpenResty's values). */
#define MP_DICT_SET 0x0000
#define MP_DICT_ADD 0x0001
#define MP_DICT_REPLACE 0x0002
#define MP_DICT_SAFE 0x0004   /* "no memory" instead of evicting live items */

#define MP_DICT_KEY_MAX 65535
#define MP_DICT_MAX_SHARDS 64

typedef struct mp_dict_s mp_dict_t;

/*
 * A value going in or out. For output, set data/size to a buffer of the
 * caller (reused between calls, no malloc needed); a string or table value
 * is copied there and its length put in len.
 */
typedef struct {
    int type;          /* MP_DICT_T* */
    uint32_t flags;    /* user flags */
    int stale;         /* get_stale: 1 if the item had expired */
    double number;     /* TNUMBER; TBOOLEAN as 0 or 1 */
    const char *str;   /* input: TSTRING/TTABLE bytes */
    size_t len;        /* TSTRING/TTABLE length (in and out) */
    char *data;        /* output buffer ... */
    size_t size;       /* ... and its size */
} mp_dict_value_t;

/* Milliseconds since the epoch; used for every expiry decision. */
typedef mp_msec_t (*mp_dict_clock_cb)(void);

/*
 * Replaces this process's clock (tests; a worker may pass its cached
 * clock). NULL restores the default, clock_gettime(CLOCK_REALTIME).
 */
void mp_dict_set_clock(mp_dict_clock_cb clock);

/*
 * Formats zone as a dict with nshards shards (a power of two up to
 * MP_DICT_MAX_SHARDS; 0 picks one from the size), or returns the dict
 * already in it when the zone was reused by a reload. Call in the master
 * before fork. Returns NULL with *errmsg ("zone too small", "bad shard
 * count") on failure. The dict lives in the zone: the pointer is valid in
 * every process.
 */
mp_dict_t *mp_dict_init(mp_zone_t *zone, unsigned nshards,
    const char **errmsg);

/* The zone's name and the number of shards. */
const char *mp_dict_name(const mp_dict_t *d);
unsigned mp_dict_nshards(const mp_dict_t *d);

/*
 * get / get_stale. Returns MP_OK with *v filled; MP_DECLINED when the key
 * is missing (or expired, for get) with v->type = TNIL; MP_AGAIN when a
 * string does not fit v->size (v->len says how much is needed, nothing
 * was copied: grow the buffer and call again); MP_ERROR with *errmsg
 * ("value is a list", "empty key", "key too long").
 */
int mp_dict_get(mp_dict_t *d, const char *key, size_t key_len,
    mp_dict_value_t *v, const char **errmsg);
int mp_dict_get_stale(mp_dict_t *d, const char *key, size_t key_len,
    mp_dict_value_t *v, const char **errmsg);

/*
 * Like get(_stale) but calls cb under the shard lock with v->data pointing
 * into the zone (valid only during the call). cb must be quick and must
 * not call into Lua or into this dict. Same return codes (no MP_AGAIN).
 */
typedef void (*mp_dict_value_cb)(void *ctx, const mp_dict_value_t *v);
int mp_dict_get_cb(mp_dict_t *d, const char *key, size_t key_len,
    int stale_ok, mp_dict_value_cb cb, void *ctx, const char **errmsg);

/*
 * set/safe_set/add/safe_add/replace in one call (lua-resty-core's
 * ngx_http_lua_ffi_shdict_store). type is MP_DICT_T*; str/len give a
 * string or table, num a number or boolean. TNIL deletes (set) or fails
 * with "attempt to add or replace nil values". exptime is in ms from now,
 * 0 = never. Returns MP_OK (*forcible = 1 when live items were evicted),
 * MP_DECLINED with "exists" (add on a live key) or "not found" (replace on
 * a missing or expired key), MP_ERROR with "no memory" (also when the
 * value cannot fit in a shard), "empty key", "key too long",
 * "unsupported value type".
 */
int mp_dict_store(mp_dict_t *d, int op, const char *key, size_t key_len,
    int type, const char *str, size_t len, double num, uint32_t user_flags,
    mp_msec_t exptime, int *forcible, const char **errmsg);

/* The same, taking type, str, len, number and flags from *v. */
int mp_dict_set(mp_dict_t *d, const char *key, size_t key_len,
    const mp_dict_value_t *v, mp_msec_t exptime, int *forcible,
    const char **errmsg);
int mp_dict_safe_set(mp_dict_t *d, const char *key, size_t key_len,
    const mp_dict_value_t *v, mp_msec_t exptime, int *forcible,
    const char **errmsg);
int mp_dict_add(mp_dict_t *d, const char *key, size_t key_len,
    const mp_dict_value_t *v, mp_msec_t exptime, int *forcible,
    const char **errmsg);
int mp_dict_safe_add(mp_dict_t *d, const char *key, size_t key_len,
    const mp_dict_value_t *v, mp_msec_t exptime, int *forcible,
    const char **errmsg);
int mp_dict_replace(mp_dict_t *d, const char *key, size_t key_len,
    const mp_dict_value_t *v, mp_msec_t exptime, int *forcible,
    const char **errmsg);

/* Removes key. MP_OK if it was there (even expired), MP_DECLINED if not. */
int mp_dict_delete(mp_dict_t *d, const char *key, size_t key_len,
    const char **errmsg);

/*
 * incr: *value is the increment in, the new value out. A missing or
 * expired key fails with MP_DECLINED "not found" unless has_init, in which
 * case it is created as init + increment with ttl init_ttl (ms, 0 = never)
 * and flags 0 (*forcible as for set). MP_ERROR "not a number" when the
 * value is not a number, "no memory".
 */
int mp_dict_incr(mp_dict_t *d, const char *key, size_t key_len,
    double *value, int has_init, double init, mp_msec_t init_ttl,
    int *forcible, const char **errmsg);

/*
 * lpush/rpush a string (MP_DICT_TSTRING, str/len) or number (TNUMBER,
 * num) and return the new length in *n. A missing or expired key starts a
 * new list that never expires. MP_ERROR "value not a list", "no memory",
 * "bad value type".
 */
int mp_dict_lpush(mp_dict_t *d, const char *key, size_t key_len, int type,
    const char *str, size_t len, double num, size_t *n, const char **errmsg);
int mp_dict_rpush(mp_dict_t *d, const char *key, size_t key_len, int type,
    const char *str, size_t len, double num, size_t *n, const char **errmsg);

/*
 * lpop/rpop into *v (as get). MP_DECLINED for a missing or expired key,
 * MP_AGAIN when the string does not fit (nothing popped), MP_ERROR
 * "value not a list". The list is removed when its last element goes.
 */
int mp_dict_lpop(mp_dict_t *d, const char *key, size_t key_len,
    mp_dict_value_t *v, const char **errmsg);
int mp_dict_rpop(mp_dict_t *d, const char *key, size_t key_len,
    mp_dict_value_t *v, const char **errmsg);

/* Length of a list, 0 for a missing key; MP_ERROR "value not a list". */
int mp_dict_llen(mp_dict_t *d, const char *key, size_t key_len, size_t *n,
    const char **errmsg);

/*
 * ttl: MP_OK with *ttl = ms left (0 = never expires; negative when it has
 * expired but is still stored, as OpenResty), MP_DECLINED "not found".
 */
int mp_dict_ttl(mp_dict_t *d, const char *key, size_t key_len,
    mp_msec_t *ttl, const char **errmsg);

/* expire: sets a new ttl (ms, 0 = never). MP_DECLINED "not found". */
int mp_dict_expire(mp_dict_t *d, const char *key, size_t key_len,
    mp_msec_t exptime, const char **errmsg);

/* Marks every item expired (get_stale still sees them until reused). */
void mp_dict_flush_all(mp_dict_t *d);

/* Frees up to max expired items (0 = all); returns how many. */
size_t mp_dict_flush_expired(mp_dict_t *d, size_t max);

/*
 * Calls cb for up to max live keys (0 = all), shard by shard, under that
 * shard's lock (cb copies the key; it must not call Lua or this dict). A
 * non-zero return from cb stops the walk. Returns the number of keys.
 */
typedef int (*mp_dict_key_cb)(void *ctx, const char *key, size_t len);
size_t mp_dict_get_keys(mp_dict_t *d, size_t max, mp_dict_key_cb cb,
    void *ctx);

/* Zone size (capacity) and the bytes of free pages (free_space). */
size_t mp_dict_capacity(const mp_dict_t *d);
size_t mp_dict_free_space(mp_dict_t *d);

/*
 * For the master, after it reaped process dead (SIGCHLD): every shard lock
 * that dead held is taken over, rolled back and released, so no worker
 * waits for a lock whose holder is gone. Returns the number of shard locks
 * recovered (usually 0 or 1). Safe while other processes use the dict.
 */
unsigned mp_dict_recover_pid(mp_dict_t *d, pid_t dead);

typedef struct {
    size_t items;
    size_t evictions;        /* live items evicted for room */
    size_t expired_freed;    /* expired items freed */
    size_t recoveries;       /* dead lock holders recovered */
    size_t pages_total;
    size_t pages_free;
    size_t alloc_failures;
} mp_dict_stats_t;

void mp_dict_stats(mp_dict_t *d, mp_dict_stats_t *st);

/*
 * Walks every shard under its lock and validates the hash index, the LRU
 * list, lists, the undo log and that the slab accounting equals the
 * blocks the items own. MP_OK, or MP_ERROR with *errmsg.
 */
int mp_dict_check(mp_dict_t *d, const char **errmsg);

#endif /* MP_DICT_H */
