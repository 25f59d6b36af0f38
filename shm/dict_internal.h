/*
 * dict_internal.h: the layout of a dict inside its zone, shared by dict.c
 * (operations, transactions, recovery) and dict_check.c (the invariant
 * checker). Nothing outside shm/dict*.c includes it; the API is dict.h.
 *
 * Layout of the zone's usable area: the dict header in the first page, then
 * nshards equal, page-aligned shard regions. A region holds the shard header
 * (lock, undo log, LRU sentinel, counters), its hash buckets and its slab
 * pool. Items are one slab block each: header, key, value (8-aligned); a
 * list value is a head (first, last, count) whose nodes are blocks too.
 */
#ifndef MP_DICT_INTERNAL_H
#define MP_DICT_INTERNAL_H

#include "core/mp_core.h"
#include "shm/dict.h"
#include "shm/shmtx.h"
#include "shm/slab.h"

#define MP_DICT_UNDO_MAX 32

enum { MP_DICT_TXN_IDLE = 0, MP_DICT_TXN_ACTIVE = 1 };
enum { MP_DICT_INTENT_NONE = 0, MP_DICT_INTENT_FLUSH_ALL = 1 };

typedef struct mp_dict_item_s mp_dict_item_t;
typedef struct mp_dict_node_s mp_dict_node_t;

struct mp_dict_item_s {
    mp_dict_item_t *hnext;
    mp_dict_item_t *lru_prev;
    mp_dict_item_t *lru_next;
    uint64_t expires;      /* ms since the epoch, 0 = never */
    uint32_t hash;
    uint32_t value_len;
    /* This word (user_flags .. ref) is rewritten as one by in-place set. */
    uint32_t user_flags;
    uint16_t key_len;
    uint8_t type;
    uint8_t ref;           /* read since the eviction hand last passed */
    char data[];           /* key, then the value at align8(key_len) */
};

typedef struct {
    mp_dict_node_t *first;
    mp_dict_node_t *last;
    uint64_t count;
} mp_dict_list_t;

struct mp_dict_node_s {
    mp_dict_node_t *next;
    mp_dict_node_t *prev;
    uint32_t len;
    uint8_t type;
    char data[];
};

typedef struct {
    uint32_t state;
    uint32_t n;
    uint32_t intent;
    uint32_t reserved;
    struct {
        void *addr;
        uint64_t old;
    } e[MP_DICT_UNDO_MAX];
} mp_dict_undo_t;

typedef struct {
    mp_shmtx_t lock;
    mp_dict_undo_t undo;
    mp_dict_item_t lru;    /* sentinel: lru_next = most recent */
    mp_dict_item_t **buckets;
    uint64_t mask;
    uint64_t nitems;
    uint64_t evictions;
    uint64_t expired_freed;
    mp_slab_pool_t *pool;
} mp_dict_shard_t;

struct mp_dict_s {
    uint64_t magic;
    size_t size;
    unsigned nshards;
    unsigned shard_shift;
    mp_zone_t *zone;
    mp_dict_shard_t *shards[MP_DICT_MAX_SHARDS];
};

/*
 * The shard lock's recovery callback (dict.c): rolls back the dead
 * holder's transaction and rebuilds the shard's slab pool.
 */
void mp_dict_recover_shard(void *data);


static inline int
shard_lock(mp_dict_shard_t *s, const char **errmsg)
{
    if (mp_unlikely(mp_shmtx_lock(&s->lock, mp_dict_recover_shard, s)
                    != MP_OK))
    {
        *errmsg = "lock failed";
        return MP_ERROR;
    }
    return MP_OK;
}


static inline void
shard_unlock(mp_dict_shard_t *s)
{
    mp_shmtx_unlock(&s->lock);
}


static inline uint64_t
load64(const char *p)
{
    uint64_t w;

    memcpy(&w, p, 8);
    return w;
}


static inline uint64_t
load32(const char *p)
{
    uint32_t w;

    memcpy(&w, p, 4);
    return w;
}


static inline uint64_t
hash_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 31);
}


/*
 * 64-bit multiply-xorshift hash. Keys are short as a rule, so there is no
 * loop below 9 bytes: 4..8 bytes are two overlapping 4-byte loads and 1..3
 * bytes three byte loads; longer keys take 8-byte words and finish with
 * the last 8 bytes (overlapping). The length is mixed into the seed, so
 * the overlap cannot make two keys of different lengths collide by
 * construction. The top bits pick the shard, the low 32 the bucket.
 */
static inline uint64_t
hash_key(const char *k, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ ((uint64_t) n * 0xff51afd7ed558ccdULL);
    uint64_t w;

    if (mp_likely(n <= 8)) {
        if (n >= 4) {
            w = load32(k) | (load32(k + n - 4) << 32);
        } else if (n > 0) {
            w = ((uint64_t) (uint8_t) k[0] << 16)
                | ((uint64_t) (uint8_t) k[n >> 1] << 8) | (uint8_t) k[n - 1];
        } else {
            w = 0;
        }
    } else {
        while (n > 8) {
            h = hash_mix(h, load64(k));
            k += 8;
            n -= 8;
        }
        w = load64(k + n - 8);
    }
    h = hash_mix(h, w) * 0xd6e8feb86659fd93ULL;
    return h ^ (h >> 32);
}


/* Equal lengths assumed (the caller compared them), in the same shapes. */
static inline int
key_eq(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        while (n > 8) {
            if (load64(a) != load64(b)) {
                return 0;
            }
            a += 8;
            b += 8;
            n -= 8;
        }
        return load64(a + n - 8) == load64(b + n - 8);
    }
    if (n >= 4) {
        return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
    }
    while (n-- > 0) {
        if (*a++ != *b++) {
            return 0;
        }
    }
    return 1;
}


static inline size_t
key_space(size_t key_len)
{
    return mp_align(key_len, 8);
}


static inline size_t
item_size(size_t key_len, size_t value_len)
{
    return sizeof(mp_dict_item_t) + key_space(key_len) + value_len;
}


static inline char *
item_value(mp_dict_item_t *it)
{
    return it->data + key_space(it->key_len);
}


static inline mp_dict_list_t *
item_list(mp_dict_item_t *it)
{
    return (mp_dict_list_t *) (void *) item_value(it);
}


static inline size_t
node_size(size_t len)
{
    return sizeof(mp_dict_node_t) + len;
}


static inline mp_dict_shard_t *
shard_of(mp_dict_t *d, uint64_t h)
{
    /* nshards == 1 gives a shift of 64, which C does not define. */
    return d->nshards == 1 ? d->shards[0] : d->shards[h >> d->shard_shift];
}


/*
 * Finds key in s; *pprev (if asked) gets the link that points at it. The
 * 32-bit hash and the length are compared before any key byte.
 */
static inline mp_dict_item_t *
lookup(mp_dict_shard_t *s, uint32_t hash, const char *key, size_t key_len,
    mp_dict_item_t ***pprev)
{
    mp_dict_item_t **pp = &s->buckets[hash & s->mask], *it;

    for (it = *pp; it != NULL; pp = &it->hnext, it = it->hnext) {
        if (it->hash == hash && it->key_len == key_len
            && key_eq(it->data, key, key_len))
        {
            if (pprev != NULL) {
                *pprev = pp;
            }
            return it;
        }
    }
    return NULL;
}

#endif /* MP_DICT_INTERNAL_H */
