/*
 * dict_check.c: the invariant checker of shared dicts (mp_dict_check in
 * dict.h), used by the tests after crash and stress runs. It takes each
 * shard's lock in turn (recovering it if its holder died) and walks the
 * shard's hash index, LRU list and lists, counting the slab blocks the items
 * own; the counts must equal the slab pool's own accounting, so a leaked or
 * doubly owned block shows up. Slow (it looks every item up again); not for
 * the request path.
 */
#include "core/mp_core.h"
#include "shm/dict.h"
#include "shm/dict_internal.h"
#include "shm/slab.h"

typedef struct {
    uint64_t used[MP_SLAB_NCLASSES];
    uint64_t run_pages;
} blocks_t;


static void
count_block(blocks_t *b, size_t size)
{
    size_t bs = mp_slab_block_size(size);

    if (size > MP_SLAB_MAX_CLASS_SIZE) {
        b->run_pages += bs >> MP_SLAB_PAGE_SHIFT;
    } else {
        b->used[__builtin_ctzll(bs) - MP_SLAB_MIN_SHIFT]++;
    }
}


static const char *
check_list(mp_dict_item_t *it, blocks_t *b)
{
    mp_dict_list_t *l = item_list(it);
    mp_dict_node_t *nd, *prev = NULL;
    uint64_t n = 0;

    if (l->count == 0 || l->first == NULL || l->first->prev != NULL) {
        return "bad list head";
    }
    for (nd = l->first; nd != NULL; prev = nd, nd = nd->next) {
        if (++n > l->count || nd->prev != prev) {
            return "list links or count broken";
        }
        if (nd->type != MP_DICT_TSTRING && nd->type != MP_DICT_TNUMBER) {
            return "list node of bad type";
        }
        count_block(b, node_size(nd->len));
    }
    if (n != l->count || l->last != prev) {
        return "list count or tail wrong";
    }
    return NULL;
}


static const char *
check_shard(mp_dict_t *d, unsigned idx, mp_dict_shard_t *s)
{
    blocks_t b;
    mp_dict_item_t *it, *prev;
    uint64_t bk, nhash = 0, nlru = 0;
    const char *err;
    unsigned c;

    memset(&b, 0, sizeof(b));
    if (s->undo.state != MP_DICT_TXN_IDLE) {
        return "undo log left open";
    }
    for (bk = 0; bk <= s->mask; bk++) {
        for (it = s->buckets[bk]; it != NULL; it = it->hnext) {
            if (++nhash > s->nitems) {
                return "hash chains hold more items than counted";
            }
            if ((it->hash & s->mask) != bk) {
                return "item in the wrong bucket";
            }
            if (shard_of(d, hash_key(it->data, it->key_len)) != d->shards[idx]
                || (uint32_t) hash_key(it->data, it->key_len) != it->hash)
            {
                return "item hash does not match its key";
            }
            if (lookup(s, it->hash, it->data, it->key_len, NULL) != it) {
                return "duplicate key";
            }
            count_block(&b, item_size(it->key_len, it->value_len));
            if (it->type == MP_DICT_TLIST && (err = check_list(it, &b))) {
                return err;
            }
        }
    }
    if (nhash != s->nitems) {
        return "item count disagrees with the hash index";
    }
    prev = &s->lru;
    for (it = s->lru.lru_next; it != &s->lru; prev = it, it = it->lru_next) {
        if (++nlru > s->nitems || it->lru_prev != prev) {
            return "LRU links broken";
        }
        if (lookup(s, it->hash, it->data, it->key_len, NULL) != it) {
            return "LRU item missing from the hash index";
        }
    }
    if (nlru != s->nitems || s->lru.lru_prev != prev) {
        return "LRU list disagrees with the item count";
    }
    if (mp_slab_check_locked(s->pool, &err) != MP_OK) {
        return err;
    }
    for (c = 0; c < MP_SLAB_NCLASSES; c++) {
        if (b.used[c] != s->pool->used[c]) {
            return "slab slots in use differ from the blocks items own";
        }
    }
    if (b.run_pages != s->pool->run_pages) {
        return "slab run pages differ from the blocks items own";
    }
    return NULL;
}


int
mp_dict_check(mp_dict_t *d, const char **errmsg)
{
    const char *err;
    unsigned i;

    for (i = 0; i < d->nshards; i++) {
        if (shard_lock(d->shards[i], errmsg) != MP_OK) {
            return MP_ERROR;
        }
        err = check_shard(d, i, d->shards[i]);
        shard_unlock(d->shards[i]);
        if (err != NULL) {
            *errmsg = err;
            return MP_ERROR;
        }
    }
    return MP_OK;
}
