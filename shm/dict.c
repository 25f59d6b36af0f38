/*
 * dict.c: sharded hash + LRU + TTL dictionary on a zone (see dict.h; the
 * layout of a dict in its zone is in dict_internal.h, the invariant checker
 * in dict_check.c).
 *
 * Transactions (txn_begin / wr / txn_commit) guard every change of links
 * or of fields of reachable items that touches more than one word; a
 * single-word change is one aligned store (store_word). Fresh blocks are
 * filled before they are linked and need no logging; blocks are freed only
 * after commit, so a rollback never finds its old values overwritten.
 *
 * The hot paths (get, and set or incr of a value of the same size) take
 * the shard lock with one compare-and-swap, hash short keys without a
 * loop, read the clock only for items that expire, and write no undo
 * record for a read or a one-word change.
 */
#include "core/mp_core.h"
#include "core/log.h"
#include "shm/crash.h"
#include "shm/dict.h"
#include "shm/dict_internal.h"
#include "shm/shmtx.h"
#include "shm/slab.h"

#include <time.h>

#define DICT_MAGIC 0x6d70646963743032ULL /* "mpdict02" */
#define INPLACE_MAX 128         /* largest value updated in place (bytes) */
/*
 * Automatic sharding: at most AUTO_SHARDS shards of at least MIN_SHARD_SIZE.
 * A value must fit one shard, so shards trade the largest storable value
 * against lock contention; with a handful of workers 8 locks already make
 * waiting rare, and 1 MiB keeps OpenResty-sized blobs storable in small
 * dicts (a 10m dict stores values up to ~1.2 MiB, a 64m one up to ~8 MiB).
 */
#define MIN_SHARD_SIZE (1024 * 1024)
#define AUTO_SHARDS 8
#define EXPIRED_SCAN 64         /* expired items looked for before evicting */

static mp_msec_t
default_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (mp_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static mp_dict_clock_cb dict_clock = default_clock;


void
mp_dict_set_clock(mp_dict_clock_cb clock)
{
    dict_clock = clock != NULL ? clock : default_clock;
}



static inline int
is_expired(const mp_dict_item_t *it, mp_msec_t *now)
{
    if (it->expires == 0) {
        return 0;
    }
    if (*now == 0) {
        *now = dict_clock();
    }
    return (int64_t) it->expires <= *now;
}


/* ---- transactions -------------------------------------------------------- */

#define barrier() __atomic_signal_fence(__ATOMIC_SEQ_CST)


static inline void
txn_begin(mp_dict_shard_t *s)
{
    s->undo.n = 0;
    barrier();
    s->undo.state = MP_DICT_TXN_ACTIVE;
    barrier();
    mp_shm_crash_point();
}


/* Logs the 8-byte word at addr, then stores val there. */
static inline void
wr(mp_dict_shard_t *s, void *addr, uint64_t val)
{
    uint32_t n = s->undo.n;

    if (mp_unlikely(n == MP_DICT_UNDO_MAX)) {
        /* A transaction writes a fixed, small number of words. */
        abort();
    }
    s->undo.e[n].addr = addr;
    memcpy(&s->undo.e[n].old, addr, 8);
    barrier();
    s->undo.n = n + 1;
    barrier();
    mp_shm_crash_point();
    memcpy(addr, &val, 8);
    barrier();
    mp_shm_crash_point();
}


static inline void
wr_ptr(mp_dict_shard_t *s, void *addr, const void *p)
{
    wr(s, addr, (uint64_t) (uintptr_t) p);
}


/*
 * A change of exactly one word, outside any transaction: the aligned 8-byte
 * store is the commit, so there is nothing to log or roll back.
 */
static inline void
store_word(void *addr, uint64_t val)
{
    mp_shm_crash_point();
    __atomic_store_n((uint64_t *) addr, val, __ATOMIC_RELAXED);
    barrier();
    mp_shm_crash_point();
}


static inline void
txn_commit(mp_dict_shard_t *s)
{
    barrier();
    s->undo.state = MP_DICT_TXN_IDLE;
    s->undo.intent = MP_DICT_INTENT_NONE;
    barrier();
    mp_shm_crash_point();
}


/* ---- recovery ------------------------------------------------------------ */

static int
mark_item(mp_slab_pool_t *pool, mp_dict_item_t *it)
{
    mp_dict_node_t *nd;
    uint64_t i, count;

    if (mp_slab_mark_locked(pool, it, item_size(it->key_len, it->value_len))
        != MP_OK)
    {
        return MP_ERROR;
    }
    if (it->type != MP_DICT_TLIST) {
        return MP_OK;
    }
    count = item_list(it)->count;
    for (nd = item_list(it)->first, i = 0; nd != NULL && i < count;
         nd = nd->next, i++)
    {
        if (mp_slab_mark_locked(pool, nd, node_size(nd->len)) != MP_OK) {
            return MP_ERROR;
        }
    }
    return MP_OK;
}


/*
 * Runs with the shard lock just inherited from a dead holder: undo its
 * open transaction (or finish its flush_all), then rebuild the slab pool
 * from the items that are reachable, which frees whatever it had
 * allocated but not linked, or unlinked but not yet freed.
 */
void
mp_dict_recover_shard(void *data)
{
    mp_dict_shard_t *s = data;
    mp_dict_item_t *it;
    uint64_t b, n = 0;
    uint32_t i;

    if (s->undo.state == MP_DICT_TXN_ACTIVE) {
        for (i = s->undo.n; i > 0; i--) {
            memcpy(s->undo.e[i - 1].addr, &s->undo.e[i - 1].old, 8);
        }
        if (s->undo.intent == MP_DICT_INTENT_FLUSH_ALL) {
            for (it = s->lru.lru_next; it != &s->lru; it = it->lru_next) {
                it->expires = 1;
            }
        }
        s->undo.n = 0;
        s->undo.intent = MP_DICT_INTENT_NONE;
        s->undo.state = MP_DICT_TXN_IDLE;
    }

    mp_slab_reset_locked(s->pool);
    for (b = 0; b <= s->mask; b++) {
        for (it = s->buckets[b]; it != NULL; it = it->hnext) {
            if (mark_item(s->pool, it) != MP_OK) {
                mp_log_error(MP_LOG_ALERT, 0,
                             "shared dict: item overlaps another while "
                             "recovering a shard");
            }
            n++;
        }
    }
    mp_slab_rebuild_locked(s->pool);
    s->nitems = n;
}



/* ---- init ---------------------------------------------------------------- */

static int
init_shard(mp_dict_shard_t **sp, char *base, size_t size)
{
    mp_dict_shard_t *s = (mp_dict_shard_t *) (void *) base;
    size_t hdr = mp_align(sizeof(mp_dict_shard_t), 64), nb = 64;

    while (nb * 2 <= size / 256) {
        nb *= 2;
    }
    memset(s, 0, sizeof(*s));
    if (mp_shmtx_init(&s->lock) != MP_OK) {
        return MP_ERROR;
    }
    s->lru.lru_next = &s->lru;
    s->lru.lru_prev = &s->lru;
    s->buckets = (mp_dict_item_t **) (void *) (base + hdr);
    s->mask = nb - 1;
    memset(s->buckets, 0, nb * sizeof(mp_dict_item_t *));
    s->pool = mp_slab_init(base + hdr + nb * sizeof(mp_dict_item_t *),
                           size - hdr - nb * sizeof(mp_dict_item_t *));
    if (s->pool == NULL) {
        return MP_ERROR;
    }
    *sp = s;
    return MP_OK;
}


mp_dict_t *
mp_dict_init(mp_zone_t *zone, unsigned nshards, const char **errmsg)
{
    mp_dict_t *d = mp_zone_data(zone);
    size_t size = mp_zone_data_size(zone), region;
    unsigned i;

    if (d->magic == DICT_MAGIC && d->size == zone->size && d->zone == zone) {
        return d;
    }
    if (nshards == 0) {
        for (nshards = 1; nshards < AUTO_SHARDS
             && (size - 4096) / (nshards * 2) >= MIN_SHARD_SIZE;
             nshards *= 2)
        {
            /* void */
        }
    }
    if (nshards > MP_DICT_MAX_SHARDS || (nshards & (nshards - 1)) != 0) {
        *errmsg = "bad shard count";
        return NULL;
    }
    region = ((size - 4096) / nshards) & ~(size_t) 4095;
    if (size <= 4096 || region < 4 * 4096) {
        *errmsg = "zone too small";
        return NULL;
    }

    memset(d, 0, sizeof(*d));
    d->size = zone->size;
    d->nshards = nshards;
    d->shard_shift = 64 - (unsigned) __builtin_ctz(nshards);
    d->zone = zone;
    for (i = 0; i < nshards; i++) {
        if (init_shard(&d->shards[i], (char *) d + 4096 + i * region, region)
            != MP_OK)
        {
            *errmsg = "zone too small";
            return NULL;
        }
    }
    d->magic = DICT_MAGIC;
    return d;
}


const char *
mp_dict_name(const mp_dict_t *d)
{
    return d->zone->name;
}


unsigned
mp_dict_nshards(const mp_dict_t *d)
{
    return d->nshards;
}


static inline int
check_key(size_t key_len, const char **errmsg)
{
    if (mp_unlikely(key_len == 0)) {
        *errmsg = "empty key";
        return MP_ERROR;
    }
    if (mp_unlikely(key_len > MP_DICT_KEY_MAX)) {
        *errmsg = "key too long";
        return MP_ERROR;
    }
    return MP_OK;
}


/* ---- index and LRU -------------------------------------------------------- */

static mp_dict_item_t **
find_link(mp_dict_shard_t *s, mp_dict_item_t *target)
{
    mp_dict_item_t **pp = &s->buckets[target->hash & s->mask];

    while (*pp != target) {
        pp = &(*pp)->hnext;
    }
    return pp;
}


/* Inside a transaction: unlinks it from the LRU list. */
static inline void
lru_unlink(mp_dict_shard_t *s, mp_dict_item_t *it)
{
    wr_ptr(s, &it->lru_prev->lru_next, it->lru_next);
    wr_ptr(s, &it->lru_next->lru_prev, it->lru_prev);
}


/* Inside a transaction: puts a fresh item (links unlogged) at the head. */
static inline void
lru_link_fresh(mp_dict_shard_t *s, mp_dict_item_t *it)
{
    it->lru_prev = &s->lru;
    it->lru_next = s->lru.lru_next;
    wr_ptr(s, &s->lru.lru_next->lru_prev, it);
    wr_ptr(s, &s->lru.lru_next, it);
}


/* Inside a transaction: moves a linked item to the head. */
static void
lru_touch(mp_dict_shard_t *s, mp_dict_item_t *it)
{
    mp_dict_item_t *first;

    if (s->lru.lru_next == it) {
        return;
    }
    lru_unlink(s, it);
    first = s->lru.lru_next;
    wr_ptr(s, &it->lru_next, first);
    wr_ptr(s, &it->lru_prev, &s->lru);
    wr_ptr(s, &first->lru_prev, it);
    wr_ptr(s, &s->lru.lru_next, it);
}


/* After commit: gives the blocks of an unlinked item back to the pool. */
static void
free_item_mem(mp_dict_shard_t *s, mp_dict_item_t *it)
{
    mp_dict_node_t *nd, *next;

    if (it->type == MP_DICT_TLIST) {
        for (nd = item_list(it)->first; nd != NULL; nd = next) {
            next = nd->next;
            mp_slab_free_locked(s->pool, nd);
        }
    }
    mp_slab_free_locked(s->pool, it);
}


/* Unlinks and frees it as one transaction. pp may be NULL. */
static void
remove_item(mp_dict_shard_t *s, mp_dict_item_t *it, mp_dict_item_t **pp)
{
    if (pp == NULL) {
        pp = find_link(s, it);
    }
    txn_begin(s);
    wr_ptr(s, pp, it->hnext);
    lru_unlink(s, it);
    wr(s, &s->nitems, s->nitems - 1);
    txn_commit(s);
    free_item_mem(s, it);
}


/* Frees up to n expired items at the cold end (OpenResty does 2 per op). */
static void
expire_tail(mp_dict_shard_t *s, int n, mp_msec_t *now)
{
    mp_dict_item_t *it;

    while (n-- > 0) {
        it = s->lru.lru_prev;
        if (it == &s->lru || !is_expired(it, now)) {
            return;
        }
        remove_item(s, it, NULL);
        s->expired_freed++;
    }
}


/* Frees the expired items among the max coldest; returns how many. */
static size_t
expire_scan(mp_dict_shard_t *s, size_t max, mp_msec_t *now)
{
    mp_dict_item_t *it, *prev;
    size_t seen = 0, freed = 0;

    for (it = s->lru.lru_prev; it != &s->lru && (max == 0 || seen < max);
         it = prev)
    {
        prev = it->lru_prev;
        seen++;
        if (is_expired(it, now)) {
            remove_item(s, it, NULL);
            freed++;
        }
    }
    s->expired_freed += freed;
    return freed;
}


/*
 * Evicts the coldest unreferenced item (CLOCK: a referenced item loses
 * its bit and moves to the head). Returns 0 if the shard is empty, 1 if
 * an expired item went, 2 if a live one did.
 */
static int
evict_one(mp_dict_shard_t *s, mp_msec_t *now)
{
    mp_dict_item_t *it;
    uint64_t spins;

    for (spins = 0; spins <= s->nitems; spins++) {
        it = s->lru.lru_prev;
        if (it == &s->lru) {
            return 0;
        }
        if (is_expired(it, now)) {
            remove_item(s, it, NULL);
            s->expired_freed++;
            return 1;
        }
        if (!it->ref || spins == s->nitems) {
            remove_item(s, it, NULL);
            s->evictions++;
            return 2;
        }
        it->ref = 0;
        txn_begin(s);
        lru_touch(s, it);
        txn_commit(s);
    }
    return 0;
}


/*
 * Allocates size bytes, freeing expired items and then (unless safe)
 * evicting live ones until it fits. *changed is set when anything was
 * removed (links found earlier may be stale).
 */
static void *
alloc_evicting(mp_dict_shard_t *s, size_t size, int safe, int *forcible,
    int *changed, mp_msec_t *now)
{
    void *p = mp_slab_alloc_locked(s->pool, size);
    int rc;

    if (mp_likely(p != NULL)) {
        return p;
    }
    if (expire_scan(s, EXPIRED_SCAN, now) > 0) {
        *changed = 1;
        p = mp_slab_alloc_locked(s->pool, size);
        if (p != NULL) {
            return p;
        }
    }
    if (safe) {
        return NULL;
    }
    while ((rc = evict_one(s, now)) != 0) {
        *changed = 1;
        if (rc == 2) {
            *forcible = 1;
        }
        p = mp_slab_alloc_locked(s->pool, size);
        if (p != NULL) {
            return p;
        }
    }
    return NULL;
}


/* ---- get ------------------------------------------------------------------ */

/* Fills *v from it; the string is left in place (v->str) for the caller. */
static int
read_item(mp_dict_item_t *it, mp_dict_value_t *v, const char **errmsg)
{
    const char *val = item_value(it);

    v->type = it->type;
    v->flags = it->user_flags;
    switch (it->type) {
    case MP_DICT_TSTRING:
    case MP_DICT_TTABLE:
        v->str = val;
        v->len = it->value_len;
        return MP_OK;
    case MP_DICT_TNUMBER:
        memcpy(&v->number, val, sizeof(double));
        return MP_OK;
    case MP_DICT_TBOOLEAN:
        v->number = val[0] ? 1 : 0;
        return MP_OK;
    default:
        *errmsg = "value is a list";
        return MP_ERROR;
    }
}


static inline int
find_for_read(mp_dict_t *d, const char *key, size_t key_len, int stale_ok,
    mp_dict_shard_t **sp, mp_dict_item_t **itp, int *stale, const char **errmsg)
{
    uint64_t h;
    mp_dict_shard_t *s;
    mp_dict_item_t *it;
    mp_msec_t now = 0;

    if (check_key(key_len, errmsg) != MP_OK) {
        return MP_ERROR;
    }
    h = hash_key(key, key_len);
    s = shard_of(d, h);
    if (shard_lock(s, errmsg) != MP_OK) {
        return MP_ERROR;
    }
    *sp = s;
    it = lookup(s, (uint32_t) h, key, key_len, NULL);
    *stale = 0;
    if (it != NULL && is_expired(it, &now)) {
        if (!stale_ok) {
            it = NULL;
        } else {
            *stale = 1;
        }
    }
    if (it == NULL) {
        shard_unlock(s);
        return MP_DECLINED;
    }
    if (!it->ref) {
        it->ref = 1;
    }
    *itp = it;
    return MP_OK;
}


/*
 * The hot read: the common number and short-string cases are decided here
 * without a call, and the string is copied while the lock is held.
 */
static int
get_impl(mp_dict_t *d, const char *key, size_t key_len, mp_dict_value_t *v,
    int stale_ok, const char **errmsg)
{
    mp_dict_shard_t *s;
    mp_dict_item_t *it;
    int rc, stale;

    rc = find_for_read(d, key, key_len, stale_ok, &s, &it, &stale, errmsg);
    if (mp_unlikely(rc != MP_OK)) {
        v->type = MP_DICT_TNIL;
        return rc;
    }
    v->stale = stale;
    v->type = it->type;
    v->flags = it->user_flags;
    if (mp_likely(it->type == MP_DICT_TNUMBER)) {
        memcpy(&v->number, item_value(it), sizeof(double));
    } else if (it->type == MP_DICT_TSTRING || it->type == MP_DICT_TTABLE) {
        v->len = it->value_len;
        if (v->len > v->size) {
            rc = MP_AGAIN;
        } else {
            memcpy(v->data, item_value(it), v->len);
        }
    } else {
        rc = read_item(it, v, errmsg);
    }
    shard_unlock(s);
    return rc;
}


int
mp_dict_get(mp_dict_t *d, const char *key, size_t key_len,
    mp_dict_value_t *v, const char **errmsg)
{
    return get_impl(d, key, key_len, v, 0, errmsg);
}


int
mp_dict_get_stale(mp_dict_t *d, const char *key, size_t key_len,
    mp_dict_value_t *v, const char **errmsg)
{
    return get_impl(d, key, key_len, v, 1, errmsg);
}


int
mp_dict_get_cb(mp_dict_t *d, const char *key, size_t key_len, int stale_ok,
    mp_dict_value_cb cb, void *ctx, const char **errmsg)
{
    mp_dict_value_t v;
    mp_dict_shard_t *s;
    mp_dict_item_t *it;
    int rc, stale;

    rc = find_for_read(d, key, key_len, stale_ok, &s, &it, &stale, errmsg);
    if (rc != MP_OK) {
        return rc;
    }
    memset(&v, 0, sizeof(v));
    v.stale = stale;
    rc = read_item(it, &v, errmsg);
    if (rc == MP_OK) {
        v.data = (char *) v.str;
        v.size = v.len;
        cb(ctx, &v);
    }
    shard_unlock(s);
    return rc;
}


/* ---- store ---------------------------------------------------------------- */

typedef struct {
    int type;
    const char *val;
    size_t len;
    uint32_t flags;
    mp_msec_t exptime;
} store_arg_t;


static inline uint64_t
expires_at(mp_msec_t exptime, mp_msec_t *now)
{
    if (exptime <= 0) {
        return 0;
    }
    if (*now == 0) {
        *now = dict_clock();
    }
    return (uint64_t) (*now + exptime);
}


/*
 * The word holding user_flags, key_len, type and ref, as stored. Built
 * with shifts rather than through a struct in memory: a wide load of
 * narrow stores just made cannot be forwarded and stalls the pipeline.
 */
_Static_assert(offsetof(mp_dict_item_t, key_len)
                   == offsetof(mp_dict_item_t, user_flags) + 4
               && offsetof(mp_dict_item_t, type)
                      == offsetof(mp_dict_item_t, user_flags) + 6
               && offsetof(mp_dict_item_t, ref)
                      == offsetof(mp_dict_item_t, user_flags) + 7
               && offsetof(mp_dict_item_t, user_flags) % 8 == 0,
               "user_flags .. ref must be one aligned word");

static inline uint64_t
meta_word(uint32_t flags, uint16_t key_len, uint8_t type, uint8_t ref)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return flags | (uint64_t) key_len << 32 | (uint64_t) type << 48
           | (uint64_t) ref << 56;
#else
    return (uint64_t) flags << 32 | (uint64_t) key_len << 16
           | (uint64_t) type << 8 | ref;
#endif
}


/*
 * Same size, not a list: overwrite in place. Only the words that change are
 * written. One changed word (a number set, or incr, with the same flags and
 * expiry) needs no undo record: a process dies before or after an aligned
 * 8-byte store, never inside it. Two or more go through the undo log. The
 * reference bit is a hint for eviction and is set outside the log.
 */
static void
store_in_place(mp_dict_shard_t *s, mp_dict_item_t *it, const store_arg_t *a,
    uint64_t exp)
{
    uint64_t *addr[2 + INPLACE_MAX / 8], val[2 + INPLACE_MAX / 8], w, cur;
    uint64_t ref = meta_word(0, 0, 0, 0xff);
    char *v = item_value(it);
    size_t off, i, n = 0, rest;

    if (it->expires != exp) {
        addr[n] = &it->expires;
        val[n++] = exp;
    }
    /* Read before any byte store to it, or the load waits for the store. */
    cur = load64((const char *) &it->user_flags);
    w = meta_word(a->flags, it->key_len, (uint8_t) a->type, 1);
    if ((cur ^ w) & ~ref) {
        addr[n] = (uint64_t *) (void *) &it->user_flags;
        val[n++] = w;
    }
    for (off = 0; off < a->len; off += 8) {
        rest = a->len - off;
        if (rest >= 8) {
            w = load64(a->val + off);
            if (load64(v + off) == w) {
                continue;
            }
        } else {
            /* The tail word: compare the bytes, keep the padding. */
            if (memcmp(v + off, a->val + off, rest) == 0) {
                continue;
            }
            w = load64(v + off);
            memcpy(&w, a->val + off, rest);
        }
        addr[n] = (uint64_t *) (void *) (v + off);
        val[n++] = w;
    }
    if (n > 1) {
        txn_begin(s);
        for (i = 0; i < n; i++) {
            wr(s, addr[i], val[i]);
        }
        txn_commit(s);
    } else if (n == 1) {
        store_word(addr[0], val[0]);
    }
    if (!it->ref) {
        it->ref = 1;
    }
}


static void
fill_item(mp_dict_item_t *nw, uint32_t hash, const char *key, size_t key_len,
    const store_arg_t *a, uint64_t exp)
{
    nw->expires = exp;
    nw->hash = hash;
    nw->value_len = (uint32_t) a->len;
    nw->user_flags = a->flags;
    nw->key_len = (uint16_t) key_len;
    nw->type = (uint8_t) a->type;
    nw->ref = 0;
    memcpy(nw->data, key, key_len);
    if (a->len > 0) {
        memcpy(item_value(nw), a->val, a->len);
    }
}


/* Links a filled, unlinked item in place of old (which may be NULL). */
static void
link_item(mp_dict_shard_t *s, mp_dict_item_t *nw, mp_dict_item_t *old,
    mp_dict_item_t **pp)
{
    mp_dict_item_t **bucket = &s->buckets[nw->hash & s->mask];

    txn_begin(s);
    if (old != NULL) {
        nw->hnext = old->hnext;
        wr_ptr(s, pp, nw);
        lru_unlink(s, old);
    } else {
        nw->hnext = *bucket;
        wr_ptr(s, bucket, nw);
        wr(s, &s->nitems, s->nitems + 1);
    }
    lru_link_fresh(s, nw);
    txn_commit(s);
    if (old != NULL) {
        free_item_mem(s, old);
    }
}


static int
store_locked(mp_dict_shard_t *s, int op, uint32_t hash, const char *key,
    size_t key_len, const store_arg_t *a, int *forcible, const char **errmsg)
{
    mp_msec_t now = 0;
    mp_dict_item_t **pp = NULL, *it, *nw;
    int changed = 0, live;
    uint64_t exp;
    size_t size;

    expire_tail(s, 2, &now);
    it = lookup(s, hash, key, key_len, &pp);
    live = it != NULL && !is_expired(it, &now);
    if ((op & MP_DICT_REPLACE) && !live) {
        *errmsg = "not found";
        return MP_DECLINED;
    }
    if ((op & MP_DICT_ADD) && live) {
        *errmsg = "exists";
        return MP_DECLINED;
    }
    if (a->type == MP_DICT_TNIL) {
        if (it != NULL) {
            remove_item(s, it, pp);
        }
        return MP_OK;
    }
    exp = expires_at(a->exptime, &now);
    if (it != NULL && it->type != MP_DICT_TLIST && it->value_len == a->len
        && a->len <= INPLACE_MAX)
    {
        store_in_place(s, it, a, exp);
        return MP_OK;
    }

    size = item_size(key_len, a->len);
    nw = mp_slab_alloc_locked(s->pool, size);
    if (nw == NULL && it != NULL) {
        /* The old value may be what keeps the new one out (OpenResty). */
        remove_item(s, it, pp);
        it = NULL;
    }
    if (nw == NULL) {
        nw = alloc_evicting(s, size, op & MP_DICT_SAFE, forcible, &changed,
                            &now);
        if (nw == NULL) {
            *errmsg = "no memory";
            return MP_ERROR;
        }
    }
    fill_item(nw, hash, key, key_len, a, exp);
    if (changed) {
        it = lookup(s, hash, key, key_len, &pp);
    }
    link_item(s, nw, it, pp);
    return MP_OK;
}


int
mp_dict_store(mp_dict_t *d, int op, const char *key, size_t key_len,
    int type, const char *str, size_t len, double num, uint32_t user_flags,
    mp_msec_t exptime, int *forcible, const char **errmsg)
{
    store_arg_t a;
    char b;
    uint64_t h;
    mp_dict_shard_t *s;
    int rc;

    *forcible = 0;
    if (check_key(key_len, errmsg) != MP_OK) {
        return MP_ERROR;
    }
    a.type = type;
    a.flags = user_flags;
    a.exptime = exptime;
    switch (type) {
    case MP_DICT_TSTRING:
    case MP_DICT_TTABLE:
        a.val = str;
        a.len = len;
        break;
    case MP_DICT_TNUMBER:
        a.val = (const char *) &num;
        a.len = sizeof(double);
        break;
    case MP_DICT_TBOOLEAN:
        b = num != 0;
        a.val = &b;
        a.len = 1;
        break;
    case MP_DICT_TNIL:
        if (op & (MP_DICT_ADD | MP_DICT_REPLACE)) {
            *errmsg = "attempt to add or replace nil values";
            return MP_ERROR;
        }
        a.val = NULL;
        a.len = 0;
        break;
    default:
        *errmsg = "unsupported value type";
        return MP_ERROR;
    }
    if (a.len > UINT32_MAX) {
        *errmsg = "no memory";
        return MP_ERROR;
    }

    h = hash_key(key, key_len);
    s = shard_of(d, h);
    if (shard_lock(s, errmsg) != MP_OK) {
        return MP_ERROR;
    }
    rc = store_locked(s, op, (uint32_t) h, key, key_len, &a, forcible,
                      errmsg);
    shard_unlock(s);
    return rc;
}


#define STORE_WRAPPER(name, op)                                                \
    int                                                                        \
    name(mp_dict_t *d, const char *key, size_t key_len,                        \
        const mp_dict_value_t *v, mp_msec_t exptime, int *forcible,            \
        const char **errmsg)                                                   \
    {                                                                          \
        return mp_dict_store(d, op, key, key_len, v->type, v->str, v->len,     \
                             v->number, v->flags, exptime, forcible, errmsg);  \
    }

STORE_WRAPPER(mp_dict_set, MP_DICT_SET)
STORE_WRAPPER(mp_dict_safe_set, MP_DICT_SET | MP_DICT_SAFE)
STORE_WRAPPER(mp_dict_add, MP_DICT_ADD)
STORE_WRAPPER(mp_dict_safe_add, MP_DICT_ADD | MP_DICT_SAFE)
STORE_WRAPPER(mp_dict_replace, MP_DICT_REPLACE)


/* Looks key up with its shard locked; on MP_OK the caller unlocks. */
static inline int
lock_key(mp_dict_t *d, const char *key, size_t key_len, mp_dict_shard_t **sp,
    uint32_t *hash, const char **errmsg)
{
    uint64_t h;

    if (check_key(key_len, errmsg) != MP_OK) {
        return MP_ERROR;
    }
    h = hash_key(key, key_len);
    *sp = shard_of(d, h);
    *hash = (uint32_t) h;
    return shard_lock(*sp, errmsg);
}


int
mp_dict_delete(mp_dict_t *d, const char *key, size_t key_len,
    const char **errmsg)
{
    mp_dict_shard_t *s;
    mp_dict_item_t *it, **pp;
    uint32_t hash;

    if (lock_key(d, key, key_len, &s, &hash, errmsg) != MP_OK) {
        return MP_ERROR;
    }
    it = lookup(s, hash, key, key_len, &pp);
    if (it != NULL) {
        remove_item(s, it, pp);
    }
    shard_unlock(s);
    return it != NULL ? MP_OK : MP_DECLINED;
}


int
mp_dict_incr(mp_dict_t *d, const char *key, size_t key_len, double *value,
    int has_init, double init, mp_msec_t init_ttl, int *forcible,
    const char **errmsg)
{
    store_arg_t a;
    mp_dict_shard_t *s;
    mp_dict_item_t *it;
    uint32_t hash;
    mp_msec_t now = 0;
    uint64_t bits;
    double num;
    int rc = MP_OK;

    *forcible = 0;
    if (lock_key(d, key, key_len, &s, &hash, errmsg) != MP_OK) {
        return MP_ERROR;
    }
    expire_tail(s, 2, &now);
    it = lookup(s, hash, key, key_len, NULL);
    if (it == NULL || is_expired(it, &now)) {
        if (!has_init) {
            *errmsg = "not found";
            rc = MP_DECLINED;
            goto done;
        }
        num = init + *value;
        a.type = MP_DICT_TNUMBER;
        a.val = (const char *) &num;
        a.len = sizeof(double);
        a.flags = 0;
        a.exptime = init_ttl;
        rc = store_locked(s, MP_DICT_SET, hash, key, key_len, &a, forcible,
                          errmsg);
        if (rc == MP_OK) {
            *value = num;
        }
        goto done;
    }
    if (it->type != MP_DICT_TNUMBER) {
        *errmsg = "not a number";
        rc = MP_ERROR;
        goto done;
    }
    memcpy(&num, item_value(it), sizeof(double));
    num += *value;
    memcpy(&bits, &num, sizeof(bits));
    store_word(item_value(it), bits);
    it->ref = 1;
    *value = num;

done:
    shard_unlock(s);
    return rc;
}


/* ---- lists ---------------------------------------------------------------- */

static int
push_locked(mp_dict_shard_t *s, int left, uint32_t hash, const char *key,
    size_t key_len, int type, const char *val, size_t len, size_t *n,
    const char **errmsg)
{
    mp_msec_t now = 0;
    mp_dict_item_t *it, *head;
    mp_dict_node_t *nd;
    mp_dict_list_t *l;
    store_arg_t a;
    int forcible = 0, changed = 0;

    expire_tail(s, 2, &now);
    it = lookup(s, hash, key, key_len, NULL);
    if (it != NULL && is_expired(it, &now)) {
        remove_item(s, it, NULL);
        it = NULL;
    }
    if (it != NULL && it->type != MP_DICT_TLIST) {
        *errmsg = "value not a list";
        return MP_ERROR;
    }
    nd = alloc_evicting(s, node_size(len), 0, &forcible, &changed, &now);
    if (nd == NULL) {
        *errmsg = "no memory";
        return MP_ERROR;
    }
    nd->len = (uint32_t) len;
    nd->type = (uint8_t) type;
    memcpy(nd->data, val, len);
    if (changed) {
        /* The list itself may have been evicted to make room. */
        it = lookup(s, hash, key, key_len, NULL);
    }

    if (it == NULL) {
        a.type = MP_DICT_TLIST;
        a.len = sizeof(mp_dict_list_t);
        a.flags = 0;
        head = alloc_evicting(s, item_size(key_len, a.len), 0, &forcible,
                              &changed, &now);
        if (head == NULL) {
            mp_slab_free_locked(s->pool, nd);
            *errmsg = "no memory";
            return MP_ERROR;
        }
        nd->next = NULL;
        nd->prev = NULL;
        a.val = NULL;
        a.len = 0;
        fill_item(head, hash, key, key_len, &a, 0);
        head->value_len = sizeof(mp_dict_list_t);
        l = item_list(head);
        l->first = nd;
        l->last = nd;
        l->count = 1;
        link_item(s, head, NULL, NULL);
        *n = 1;
        return MP_OK;
    }

    l = item_list(it);
    txn_begin(s);
    if (left) {
        nd->next = l->first;
        nd->prev = NULL;
        wr_ptr(s, &l->first->prev, nd);
        wr_ptr(s, &l->first, nd);
    } else {
        nd->next = NULL;
        nd->prev = l->last;
        wr_ptr(s, &l->last->next, nd);
        wr_ptr(s, &l->last, nd);
    }
    wr(s, &l->count, l->count + 1);
    txn_commit(s);
    it->ref = 1;
    *n = (size_t) l->count;
    return MP_OK;
}


static int
push_impl(mp_dict_t *d, int left, const char *key, size_t key_len, int type,
    const char *str, size_t len, double num, size_t *n, const char **errmsg)
{
    mp_dict_shard_t *s;
    uint32_t hash;
    int rc;

    if (type == MP_DICT_TNUMBER) {
        str = (const char *) &num;
        len = sizeof(double);
    } else if (type != MP_DICT_TSTRING || len > UINT32_MAX) {
        *errmsg = "bad value type";
        return MP_ERROR;
    }
    if (lock_key(d, key, key_len, &s, &hash, errmsg) != MP_OK) {
        return MP_ERROR;
    }
    rc = push_locked(s, left, hash, key, key_len, type, str, len, n, errmsg);
    shard_unlock(s);
    return rc;
}


int
mp_dict_lpush(mp_dict_t *d, const char *key, size_t key_len, int type,
    const char *str, size_t len, double num, size_t *n, const char **errmsg)
{
    return push_impl(d, 1, key, key_len, type, str, len, num, n, errmsg);
}


int
mp_dict_rpush(mp_dict_t *d, const char *key, size_t key_len, int type,
    const char *str, size_t len, double num, size_t *n, const char **errmsg)
{
    return push_impl(d, 0, key, key_len, type, str, len, num, n, errmsg);
}


static int
pop_locked(mp_dict_shard_t *s, int left, mp_dict_item_t *it,
    mp_dict_item_t **pp, mp_dict_value_t *v)
{
    mp_dict_list_t *l = item_list(it);
    mp_dict_node_t *nd = left ? l->first : l->last;

    v->type = nd->type;
    v->flags = 0;
    v->stale = 0;
    if (nd->type == MP_DICT_TNUMBER) {
        memcpy(&v->number, nd->data, sizeof(double));
    } else {
        v->len = nd->len;
        if (v->len > v->size) {
            return MP_AGAIN;
        }
        memcpy(v->data, nd->data, nd->len);
    }

    if (l->count == 1) {
        remove_item(s, it, pp);
        return MP_OK;
    }
    txn_begin(s);
    if (left) {
        wr_ptr(s, &nd->next->prev, NULL);
        wr_ptr(s, &l->first, nd->next);
    } else {
        wr_ptr(s, &nd->prev->next, NULL);
        wr_ptr(s, &l->last, nd->prev);
    }
    wr(s, &l->count, l->count - 1);
    txn_commit(s);
    mp_slab_free_locked(s->pool, nd);
    it->ref = 1;
    return MP_OK;
}


static int
pop_impl(mp_dict_t *d, int left, const char *key, size_t key_len,
    mp_dict_value_t *v, const char **errmsg)
{
    mp_dict_shard_t *s;
    mp_dict_item_t *it, **pp;
    uint32_t hash;
    mp_msec_t now = 0;
    int rc;

    v->type = MP_DICT_TNIL;
    if (lock_key(d, key, key_len, &s, &hash, errmsg) != MP_OK) {
        return MP_ERROR;
    }
    expire_tail(s, 2, &now);
    it = lookup(s, hash, key, key_len, &pp);
    if (it == NULL || is_expired(it, &now)) {
        rc = MP_DECLINED;
    } else if (it->type != MP_DICT_TLIST) {
        *errmsg = "value not a list";
        rc = MP_ERROR;
    } else {
        rc = pop_locked(s, left, it, pp, v);
    }
    shard_unlock(s);
    return rc;
}


int
mp_dict_lpop(mp_dict_t *d, const char *key, size_t key_len,
    mp_dict_value_t *v, const char **errmsg)
{
    return pop_impl(d, 1, key, key_len, v, errmsg);
}


int
mp_dict_rpop(mp_dict_t *d, const char *key, size_t key_len,
    mp_dict_value_t *v, const char **errmsg)
{
    return pop_impl(d, 0, key, key_len, v, errmsg);
}


int
mp_dict_llen(mp_dict_t *d, const char *key, size_t key_len, size_t *n,
    const char **errmsg)
{
    mp_dict_shard_t *s;
    mp_dict_item_t *it;
    uint32_t hash;
    mp_msec_t now = 0;
    int rc = MP_OK;

    *n = 0;
    if (lock_key(d, key, key_len, &s, &hash, errmsg) != MP_OK) {
        return MP_ERROR;
    }
    it = lookup(s, hash, key, key_len, NULL);
    if (it != NULL && !is_expired(it, &now)) {
        if (it->type != MP_DICT_TLIST) {
            *errmsg = "value not a list";
            rc = MP_ERROR;
        } else {
            *n = (size_t) item_list(it)->count;
            it->ref = 1;
        }
    }
    shard_unlock(s);
    return rc;
}


/* ---- ttl, expire, flush, keys --------------------------------------------- */

int
mp_dict_ttl(mp_dict_t *d, const char *key, size_t key_len, mp_msec_t *ttl,
    const char **errmsg)
{
    mp_dict_shard_t *s;
    mp_dict_item_t *it;
    uint32_t hash;
    uint64_t exp = 0;

    if (lock_key(d, key, key_len, &s, &hash, errmsg) != MP_OK) {
        return MP_ERROR;
    }
    it = lookup(s, hash, key, key_len, NULL);
    if (it != NULL) {
        exp = it->expires;
    }
    shard_unlock(s);
    if (it == NULL) {
        *errmsg = "not found";
        return MP_DECLINED;
    }
    *ttl = exp == 0 ? 0 : (mp_msec_t) exp - dict_clock();
    return MP_OK;
}


int
mp_dict_expire(mp_dict_t *d, const char *key, size_t key_len,
    mp_msec_t exptime, const char **errmsg)
{
    mp_dict_shard_t *s;
    mp_dict_item_t *it;
    uint32_t hash;
    mp_msec_t now = 0;

    if (lock_key(d, key, key_len, &s, &hash, errmsg) != MP_OK) {
        return MP_ERROR;
    }
    it = lookup(s, hash, key, key_len, NULL);
    if (it != NULL) {
        store_word(&it->expires, expires_at(exptime, &now));
    }
    shard_unlock(s);
    if (it == NULL) {
        *errmsg = "not found";
        return MP_DECLINED;
    }
    return MP_OK;
}


void
mp_dict_flush_all(mp_dict_t *d)
{
    const char *err;
    mp_dict_shard_t *s;
    mp_dict_item_t *it;
    unsigned i;

    for (i = 0; i < d->nshards; i++) {
        s = d->shards[i];
        if (shard_lock(s, &err) != MP_OK) {
            continue;
        }
        /* Idempotent, so a recovering locker finishes it (roll forward). */
        txn_begin(s);
        s->undo.intent = MP_DICT_INTENT_FLUSH_ALL;
        barrier();
        for (it = s->lru.lru_next; it != &s->lru; it = it->lru_next) {
            it->expires = 1;
            mp_shm_crash_point();
        }
        txn_commit(s);
        shard_unlock(s);
    }
}


size_t
mp_dict_flush_expired(mp_dict_t *d, size_t max)
{
    const char *err;
    size_t freed = 0;
    mp_msec_t now = 0;
    mp_dict_shard_t *s;
    mp_dict_item_t *it, *prev;
    unsigned i;

    for (i = 0; i < d->nshards && (max == 0 || freed < max); i++) {
        s = d->shards[i];
        if (shard_lock(s, &err) != MP_OK) {
            continue;
        }
        for (it = s->lru.lru_prev; it != &s->lru; it = prev) {
            prev = it->lru_prev;
            if (is_expired(it, &now)) {
                remove_item(s, it, NULL);
                s->expired_freed++;
                if (++freed == max) {
                    break;
                }
            }
        }
        shard_unlock(s);
    }
    return freed;
}


size_t
mp_dict_get_keys(mp_dict_t *d, size_t max, mp_dict_key_cb cb, void *ctx)
{
    const char *err;
    size_t n = 0;
    mp_msec_t now = 0;
    mp_dict_shard_t *s;
    mp_dict_item_t *it;
    unsigned i;
    int stop = 0;

    for (i = 0; i < d->nshards && !stop; i++) {
        s = d->shards[i];
        if (shard_lock(s, &err) != MP_OK) {
            continue;
        }
        for (it = s->lru.lru_next; it != &s->lru; it = it->lru_next) {
            if (is_expired(it, &now)) {
                continue;
            }
            n++;
            if (cb(ctx, it->data, it->key_len) != 0
                || (max != 0 && n == max))
            {
                stop = 1;
                break;
            }
        }
        shard_unlock(s);
    }
    return n;
}


size_t
mp_dict_capacity(const mp_dict_t *d)
{
    return d->size;
}


size_t
mp_dict_free_space(mp_dict_t *d)
{
    const char *err;
    size_t bytes = 0;
    unsigned i;

    for (i = 0; i < d->nshards; i++) {
        if (shard_lock(d->shards[i], &err) == MP_OK) {
            bytes += mp_slab_free_bytes_locked(d->shards[i]->pool);
            shard_unlock(d->shards[i]);
        }
    }
    return bytes;
}


unsigned
mp_dict_recover_pid(mp_dict_t *d, pid_t dead)
{
    unsigned i, n = 0;

    for (i = 0; i < d->nshards; i++) {
        if (mp_shmtx_force_recover(&d->shards[i]->lock, dead,
                                   mp_dict_recover_shard, d->shards[i])
            == MP_OK)
        {
            n++;
        }
    }
    return n;
}


void
mp_dict_stats(mp_dict_t *d, mp_dict_stats_t *st)
{
    const char *err;
    mp_slab_stats_t ss;
    mp_dict_shard_t *s;
    unsigned i;

    memset(st, 0, sizeof(*st));
    for (i = 0; i < d->nshards; i++) {
        s = d->shards[i];
        if (shard_lock(s, &err) != MP_OK) {
            continue;
        }
        mp_slab_stats_locked(s->pool, &ss);
        st->items += s->nitems;
        st->evictions += s->evictions;
        st->expired_freed += s->expired_freed;
        st->recoveries += s->lock.recoveries;
        st->pages_total += ss.pages_total;
        st->pages_free += ss.pages_free;
        st->alloc_failures += ss.failed;
        shard_unlock(s);
    }
}
