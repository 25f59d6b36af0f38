/*
 * fuzz_dict.c: libFuzzer target for the shared dictionary (shm/dict.h).
 *
 * The input is a program: byte 0 picks the zone size and shard count, then
 * each operation takes an opcode byte, a key byte and argument bytes
 * (missing bytes read as 0). Operations run on a fresh dict over an
 * anonymous zone with a fake clock, and every result is checked against a
 * model kept here. mp_dict_check() validates the structure after each
 * operation.
 *
 * The model cannot know which items eviction or lazy expiry freed, so each
 * key is ABSENT, PRESENT (certainly stored, with the model's value) or
 * MAYBE (stored with the model's value, or gone). An expired item is
 * always "maybe stored". Whenever the dict's eviction counter moves, every
 * PRESENT key becomes MAYBE; the next read of a key settles it again. So a
 * value that is found must always be exactly the model's: eviction may
 * lose data, never change it.
 *
 * Values are not stored in the model: a string is (length, seed) and its
 * bytes are regenerated from them for every comparison.
 */
#include "core/mp_core.h"
#include "shm/dict.h"
#include "shm/zone.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKEYS 32          /* small keys "key0" .. "key31" */
#define NLONG 14          /* long keys, 1000 .. 14000 bytes */
#define NSLOTS (NKEYS + NLONG)
#define VALUE_MAX 20000
#define KEY_BUF (MP_DICT_KEY_MAX + 2)

enum { ABSENT = 0, PRESENT, MAYBE };

typedef struct {
    int type;           /* MP_DICT_TSTRING or MP_DICT_TNUMBER */
    uint32_t len;
    uint8_t seed;
    double num;
} elem_t;

typedef struct {
    int state;
    int type;           /* MP_DICT_T* */
    uint32_t len;       /* string and table values */
    uint8_t seed;
    double num;         /* number; boolean as 0/1 */
    uint32_t flags;
    mp_msec_t expires;  /* absolute; 0: never */
    elem_t *list;
    size_t nlist;
    size_t caplist;
} entry_t;

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} input_t;

static mp_msec_t now_ms;
static entry_t model[NSLOTS];
static char key_buf[KEY_BUF];
static char val_buf[VALUE_MAX];
static char out_buf[VALUE_MAX + 16];
static size_t op_index;


static mp_msec_t
fake_clock(void)
{
    return now_ms;
}


#define expect(cond, ...)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "dict model mismatch at op %zu: ", op_index);     \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\n");                                             \
            abort();                                                           \
        }                                                                      \
    } while (0)


static unsigned
next(input_t *in)
{
    return in->p < in->end ? *in->p++ : 0;
}


static unsigned
next16(input_t *in)
{
    unsigned hi = next(in);

    return (hi << 8) | next(in);
}


static void
fill_value(char *buf, uint32_t len, uint8_t seed)
{
    uint32_t i;

    for (i = 0; i < len; i++) {
        buf[i] = (char) (seed + i * 31);
    }
}


static int
value_equal(const char *data, uint32_t len, uint8_t seed)
{
    uint32_t i;

    for (i = 0; i < len; i++) {
        if (data[i] != (char) (seed + i * 31)) {
            return 0;
        }
    }
    return 1;
}


/*
 * Key selector: 0..NKEYS-1 a small key, NKEYS.. a long one; -1 the empty
 * key, -2 one byte too long (both are errors and touch no slot).
 */
static int
pick_key(unsigned b, const char **key, size_t *len)
{
    int slot;

    if (b == 255) {
        *key = key_buf;
        *len = 0;
        return -1;
    }
    if (b == 254) {
        memset(key_buf, 'T', MP_DICT_KEY_MAX + 1);
        *key = key_buf;
        *len = MP_DICT_KEY_MAX + 1;
        return -2;
    }
    if (b >= 240) {
        slot = NKEYS + (int) (b - 240);
        *len = 1000 * (size_t) (b - 239);
        memset(key_buf, 'L', *len);
        key_buf[0] = (char) b;
        *key = key_buf;
        return slot;
    }
    slot = (int) (b % NKEYS);
    *len = (size_t) snprintf(key_buf, sizeof(key_buf), "key%d", slot);
    *key = key_buf;
    return slot;
}


/* The slot a key returned by get_keys names, or -1. */
static int
slot_of(const char *key, size_t len)
{
    int n;
    char tmp[16];

    if (len >= 1000 && len % 1000 == 0 && len / 1000 <= NLONG
        && (unsigned char) key[0] == 239 + len / 1000) {
        return NKEYS + (int) (len / 1000) - 1;
    }
    if (len > 3 && len < 6 && memcmp(key, "key", 3) == 0) {
        memcpy(tmp, key, len);
        tmp[len] = '\0';
        n = atoi(tmp + 3);
        snprintf(tmp, sizeof(tmp), "key%d", n);
        if (n >= 0 && n < NKEYS && strlen(tmp) == len
            && memcmp(tmp, key, len) == 0) {
            return n;
        }
    }
    return -1;
}


static int
same_number(double a, double b)
{
    return memcmp(&a, &b, sizeof(double)) == 0;
}


static int
expired(const entry_t *e)
{
    return e->expires != 0 && e->expires <= now_ms;
}


/* Live as get sees it: 1 yes, 0 no, -1 cannot tell. */
static int
live(const entry_t *e)
{
    if (e->state == ABSENT || expired(e)) {
        return 0;
    }
    return e->state == PRESENT ? 1 : -1;
}


/* Stored at all (expired included), as delete/ttl/expire see it. */
static int
stored(const entry_t *e)
{
    if (e->state == ABSENT) {
        return 0;
    }
    return e->state == PRESENT && !expired(e) ? 1 : -1;
}


static void
clear_entry(entry_t *e)
{
    free(e->list);
    memset(e, 0, sizeof(*e));
}


static size_t
evictions(mp_dict_t *d)
{
    mp_dict_stats_t st;

    mp_dict_stats(d, &st);
    return st.evictions;
}


static void
downgrade_all(void)
{
    int i;

    for (i = 0; i < NSLOTS; i++) {
        if (model[i].state == PRESENT) {
            model[i].state = MAYBE;
        }
    }
}


static mp_msec_t
pick_ttl(unsigned b)
{
    if (b < 128) {
        return 0;
    }
    return (mp_msec_t) (b - 127) * 10; /* 10 .. 1280 ms */
}


/* A value that was found must be the model's, down to the flags. */
static void
check_value(const entry_t *e, const mp_dict_value_t *v)
{
    expect(e->type != MP_DICT_TLIST, "a list read as a value");
    expect(v->type == e->type, "type %d, model %d", v->type, e->type);
    expect(v->flags == e->flags, "flags %u, model %u", v->flags, e->flags);
    switch (e->type) {
    case MP_DICT_TSTRING:
    case MP_DICT_TTABLE:
        expect(v->len == e->len && value_equal(v->data, e->len, e->seed),
               "string of %zu bytes differs (model %u)", v->len, e->len);
        break;
    case MP_DICT_TNUMBER:
        expect(memcmp(&v->number, &e->num, sizeof(double)) == 0,
               "number %g, model %g", v->number, e->num);
        break;
    case MP_DICT_TBOOLEAN:
        expect(v->number == e->num, "boolean %g, model %g", v->number,
               e->num);
        break;
    }
}


static void
op_store(mp_dict_t *d, input_t *in, int op)
{
    const char *key, *err = NULL;
    size_t klen, before = evictions(d);
    int slot = pick_key(next(in), &key, &klen);
    unsigned t = next(in);
    uint32_t len = (uint32_t) (next16(in) % VALUE_MAX);
    uint8_t seed = (uint8_t) next(in);
    uint32_t flags = next(in) & 3;
    mp_msec_t ttl = pick_ttl(next(in));
    int type, forcible = 0, rc, was;
    double num = 0;
    entry_t *e;

    switch (t % 5) {
    case 0: type = MP_DICT_TSTRING; break;
    case 1: type = MP_DICT_TNUMBER; num = (int8_t) seed / 4.0; break;
    case 2: type = MP_DICT_TBOOLEAN; num = seed & 1; break;
    case 3: type = MP_DICT_TTABLE; break;
    default: type = MP_DICT_TNIL; break;
    }
    if (type == MP_DICT_TSTRING || type == MP_DICT_TTABLE) {
        fill_value(val_buf, len, seed);
    } else {
        len = 0;
    }
    rc = mp_dict_store(d, op, key, klen, type, val_buf, len, num, flags, ttl,
                       &forcible, &err);
    if (slot < 0) {
        expect(rc == MP_ERROR, "bad key accepted (rc %d)", rc);
        return;
    }
    e = &model[slot];
    was = live(e);
    if (type == MP_DICT_TNIL && (op & (MP_DICT_ADD | MP_DICT_REPLACE))) {
        expect(rc == MP_ERROR, "nil add/replace: rc %d", rc);
        return;
    }
    if ((op & MP_DICT_REPLACE) && rc == MP_DECLINED) {
        expect(was != 1 && strcmp(err, "not found") == 0,
               "replace: %s on a live key", err);
        clear_entry(e);
        return;
    }
    if ((op & MP_DICT_ADD) && rc == MP_DECLINED) {
        expect(was != 0 && strcmp(err, "exists") == 0,
               "add: %s on a dead key", err);
        e->state = PRESENT; /* it is live: that is what "exists" says */
        return;
    }
    expect(!((op & MP_DICT_REPLACE) && was == 0), "replace of a dead key: %d",
           rc);
    expect(!((op & MP_DICT_ADD) && was == 1), "add of a live key: %d", rc);
    if (op & MP_DICT_SAFE) {
        expect(evictions(d) == before, "a safe store evicted");
    }
    expect(!forcible || evictions(d) > before, "forcible without eviction");
    if (evictions(d) != before) {
        expect(forcible, "eviction without forcible");
        downgrade_all();
    }
    if (rc == MP_ERROR) {
        /* the old value is dropped to make room before giving up */
        expect(strcmp(err, "no memory") == 0, "store: %s", err);
        clear_entry(e);
        return;
    }
    expect(rc == MP_OK, "store: rc %d", rc);
    clear_entry(e);
    if (type == MP_DICT_TNIL) {
        return;
    }
    e->state = PRESENT;
    e->type = type;
    e->len = len;
    e->seed = seed;
    e->num = num;
    e->flags = flags;
    e->expires = ttl ? now_ms + ttl : 0;
}


static void
op_get(mp_dict_t *d, input_t *in, int stale_ok)
{
    const char *key, *err = NULL;
    size_t klen;
    int slot = pick_key(next(in), &key, &klen);
    int small = next(in) & 1, rc, can;
    mp_dict_value_t v;
    entry_t *e;

    memset(&v, 0, sizeof(v));
    v.data = out_buf;
    v.size = small ? 8 : sizeof(out_buf);
    rc = stale_ok ? mp_dict_get_stale(d, key, klen, &v, &err)
                  : mp_dict_get(d, key, klen, &v, &err);
    if (slot < 0) {
        expect(rc == MP_ERROR, "bad key accepted");
        return;
    }
    e = &model[slot];
    can = stale_ok ? stored(e) : live(e);
    if (rc == MP_DECLINED) {
        expect(can != 1 && v.type == MP_DICT_TNIL, "get: a present key missed");
        /* missing for get_stale: not stored; for get: not live */
        if (stale_ok || !expired(e)) {
            clear_entry(e);
        }
        return;
    }
    expect(can != 0, "get found a key the model lacks (rc %d)", rc);
    if (rc == MP_ERROR) {
        expect(e->type == MP_DICT_TLIST && strcmp(err, "value is a list") == 0,
               "get: %s", err);
    } else if (rc == MP_AGAIN) {
        expect(small && (e->type == MP_DICT_TSTRING
                         || e->type == MP_DICT_TTABLE)
               && v.len == e->len && e->len > 8,
               "get: MP_AGAIN for %zu bytes", v.len);
    } else {
        expect(rc == MP_OK, "get: rc %d", rc);
        check_value(e, &v);
        if (stale_ok) {
            expect(v.stale == expired(e), "stale flag %d", v.stale);
        }
    }
    if (!expired(e)) {
        e->state = PRESENT;
    }
}


static void
op_delete(mp_dict_t *d, input_t *in)
{
    const char *key, *err = NULL;
    size_t klen;
    int slot = pick_key(next(in), &key, &klen);
    int rc = mp_dict_delete(d, key, klen, &err);

    if (slot < 0) {
        expect(rc == MP_ERROR, "bad key accepted");
        return;
    }
    if (rc == MP_OK) {
        expect(stored(&model[slot]) != 0, "deleted a key never stored");
    } else {
        expect(rc == MP_DECLINED && stored(&model[slot]) != 1,
               "delete missed a stored key (rc %d)", rc);
    }
    clear_entry(&model[slot]);
}


static void
op_incr(mp_dict_t *d, input_t *in)
{
    const char *key, *err = NULL;
    size_t klen, before = evictions(d);
    int slot = pick_key(next(in), &key, &klen);
    unsigned b = next(in);
    double by = (int8_t) next(in) / 2.0, value = by, init = (int8_t) b;
    int has_init = b & 1, forcible = 0, rc, was;
    mp_msec_t ttl = pick_ttl(next(in));
    entry_t *e;

    rc = mp_dict_incr(d, key, klen, &value, has_init, init, ttl, &forcible,
                      &err);
    if (slot < 0) {
        expect(rc == MP_ERROR, "bad key accepted");
        return;
    }
    e = &model[slot];
    was = live(e);
    if (evictions(d) != before) {
        downgrade_all();
    }
    if (rc == MP_DECLINED) {
        expect(!has_init && was != 1 && strcmp(err, "not found") == 0,
               "incr: %s", err);
        if (!expired(e)) {
            clear_entry(e);
        }
        return;
    }
    if (rc == MP_ERROR && strcmp(err, "not a number") == 0) {
        expect(was != 0 && e->type != MP_DICT_TNUMBER, "incr: not a number");
        e->state = PRESENT;
        return;
    }
    if (rc == MP_ERROR) {
        expect(has_init && strcmp(err, "no memory") == 0, "incr: %s", err);
        clear_entry(e);
        return;
    }
    expect(rc == MP_OK, "incr: rc %d", rc);
    {
        double in_place = e->num + by, created = init + by;
        mp_msec_t exp = ttl ? now_ms + ttl : 0;
        int was_num = was != 0 && e->type == MP_DICT_TNUMBER;
        int by_add = was_num && same_number(value, in_place);
        int by_init = has_init && was != 1 && same_number(value, created);

        expect(by_add || by_init, "incr: %g, model %g (or init %g)", value,
               in_place, created);
        if (by_add && by_init && (e->flags != 0 || e->expires != exp)) {
            /* cannot tell which happened: forget the key */
            (void) mp_dict_delete(d, key, klen, &err);
            clear_entry(e);
            return;
        }
        if (by_add) {
            /* in place: flags and expiry stay */
            e->num = value;
            e->state = PRESENT;
            return;
        }
        clear_entry(e);
        e->state = PRESENT;
        e->type = MP_DICT_TNUMBER;
        e->num = value;
        e->expires = exp;
    }
}


static void
op_push(mp_dict_t *d, input_t *in, int left)
{
    const char *key, *err = NULL;
    size_t klen, n = 0, before = evictions(d), old;
    int slot = pick_key(next(in), &key, &klen);
    unsigned t = next(in);
    uint32_t len = (uint32_t) (next16(in) % 2000);
    uint8_t seed = (uint8_t) next(in);
    int type = (t % 8 == 7) ? MP_DICT_TBOOLEAN
               : (t & 1) ? MP_DICT_TNUMBER : MP_DICT_TSTRING;
    double num = (int8_t) seed;
    int rc, was;
    entry_t *e;
    elem_t el;

    fill_value(val_buf, len, seed);
    rc = left ? mp_dict_lpush(d, key, klen, type, val_buf, len, num, &n, &err)
              : mp_dict_rpush(d, key, klen, type, val_buf, len, num, &n, &err);
    if (slot < 0 || type == MP_DICT_TBOOLEAN) {
        expect(rc == MP_ERROR, "bad push accepted");
        return;
    }
    e = &model[slot];
    was = live(e);
    if (evictions(d) != before) {
        downgrade_all();
    }
    if (rc == MP_ERROR && strcmp(err, "value not a list") == 0) {
        expect(was != 0 && e->type != MP_DICT_TLIST, "push: not a list");
        e->state = PRESENT;
        return;
    }
    if (rc == MP_ERROR) {
        expect(strcmp(err, "no memory") == 0, "push: %s", err);
        if (was == 0) {
            clear_entry(e); /* an expired item is removed first */
        }
        return;
    }
    expect(rc == MP_OK, "push: rc %d", rc);
    old = (was != 0 && e->type == MP_DICT_TLIST) ? e->nlist : 0;
    if (was == 0 || e->type != MP_DICT_TLIST || n != old + 1) {
        /* a new list: the key was dead, or it was evicted meanwhile */
        expect(n == 1, "push: length %zu, model %zu", n, old + 1);
        clear_entry(e);
        e->type = MP_DICT_TLIST;
    }
    e->state = PRESENT;
    el.type = type == MP_DICT_TNUMBER ? MP_DICT_TNUMBER : MP_DICT_TSTRING;
    el.len = type == MP_DICT_TNUMBER ? 0 : len;
    el.seed = seed;
    el.num = num;
    if (e->nlist == e->caplist) {
        e->caplist = e->caplist ? e->caplist * 2 : 4;
        e->list = realloc(e->list, e->caplist * sizeof(elem_t));
    }
    if (left) {
        memmove(e->list + 1, e->list, e->nlist * sizeof(elem_t));
        e->list[0] = el;
    } else {
        e->list[e->nlist] = el;
    }
    e->nlist++;
}


static void
op_pop(mp_dict_t *d, input_t *in, int left)
{
    const char *key, *err = NULL;
    size_t klen;
    int slot = pick_key(next(in), &key, &klen);
    int small = next(in) & 1, rc, was;
    mp_dict_value_t v;
    entry_t *e;
    elem_t *el;

    memset(&v, 0, sizeof(v));
    v.data = out_buf;
    v.size = small ? 8 : sizeof(out_buf);
    rc = left ? mp_dict_lpop(d, key, klen, &v, &err)
              : mp_dict_rpop(d, key, klen, &v, &err);
    if (slot < 0) {
        expect(rc == MP_ERROR, "bad key accepted");
        return;
    }
    e = &model[slot];
    was = live(e);
    if (rc == MP_DECLINED) {
        expect(was != 1, "pop: a live key missed");
        if (!expired(e)) {
            clear_entry(e);
        }
        return;
    }
    expect(was != 0, "pop found a dead key (rc %d)", rc);
    e->state = PRESENT;
    if (rc == MP_ERROR) {
        expect(e->type != MP_DICT_TLIST
               && strcmp(err, "value not a list") == 0, "pop: %s", err);
        return;
    }
    expect(e->type == MP_DICT_TLIST && e->nlist > 0, "pop: not a list");
    el = left ? &e->list[0] : &e->list[e->nlist - 1];
    if (rc == MP_AGAIN) {
        expect(small && el->type == MP_DICT_TSTRING && v.len == el->len,
               "pop: MP_AGAIN for %zu bytes", v.len);
        return;
    }
    expect(rc == MP_OK && v.type == el->type, "pop: type %d, model %d",
           v.type, el->type);
    if (el->type == MP_DICT_TSTRING) {
        expect(v.len == el->len && value_equal(v.data, el->len, el->seed),
               "pop: string differs");
    } else {
        expect(v.number == el->num, "pop: %g, model %g", v.number, el->num);
    }
    if (left) {
        memmove(e->list, e->list + 1, (e->nlist - 1) * sizeof(elem_t));
    }
    if (--e->nlist == 0) {
        clear_entry(e); /* the list goes with its last element */
    }
}


static void
op_llen(mp_dict_t *d, input_t *in)
{
    const char *key, *err = NULL;
    size_t klen, n = 0;
    int slot = pick_key(next(in), &key, &klen);
    int rc = mp_dict_llen(d, key, klen, &n, &err), was;
    entry_t *e;

    if (slot < 0) {
        expect(rc == MP_ERROR, "bad key accepted");
        return;
    }
    e = &model[slot];
    was = live(e);
    if (rc == MP_ERROR) {
        expect(was != 0 && e->type != MP_DICT_TLIST, "llen: %s", err);
        e->state = PRESENT;
        return;
    }
    expect(rc == MP_OK, "llen: rc %d", rc);
    if (n == 0) {
        expect(was != 1, "llen: 0 for a live key");
        if (!expired(e)) {
            clear_entry(e);
        }
        return;
    }
    expect(was != 0 && e->type == MP_DICT_TLIST && n == e->nlist,
           "llen: %zu, model %zu", n, e->nlist);
    e->state = PRESENT;
}


static void
op_ttl(mp_dict_t *d, input_t *in, int set)
{
    const char *key, *err = NULL;
    size_t klen;
    int slot = pick_key(next(in), &key, &klen);
    mp_msec_t ttl = 0, exptime = pick_ttl(next(in)) / 2;
    int rc, was;
    entry_t *e;

    rc = set ? mp_dict_expire(d, key, klen, exptime, &err)
             : mp_dict_ttl(d, key, klen, &ttl, &err);
    if (slot < 0) {
        expect(rc == MP_ERROR, "bad key accepted");
        return;
    }
    e = &model[slot];
    was = stored(e);
    if (rc == MP_DECLINED) {
        expect(was != 1 && strcmp(err, "not found") == 0, "ttl: %s", err);
        clear_entry(e);
        return;
    }
    expect(rc == MP_OK && was != 0, "ttl/expire on a key never stored");
    if (set) {
        /* an expired item that was still stored comes back to life */
        e->state = PRESENT;
        e->expires = exptime ? now_ms + exptime : 0;
        return;
    }
    if (expired(e)) {
        expect(ttl <= 0, "ttl %lld of an expired item", (long long) ttl);
    } else {
        mp_msec_t want = e->expires ? e->expires - now_ms : 0;

        expect(ttl == want, "ttl %lld, model %lld", (long long) ttl,
               (long long) want);
        e->state = PRESENT;
    }
}


static int
on_key(void *ctx, const char *key, size_t len)
{
    int *seen = ctx;
    int slot = slot_of(key, len);

    expect(slot >= 0, "get_keys: unknown key of %zu bytes", len);
    expect(!seen[slot], "get_keys: key listed twice");
    seen[slot] = 1;
    return 0;
}


static void
op_keys(mp_dict_t *d)
{
    int seen[NSLOTS] = { 0 };
    size_t n = mp_dict_get_keys(d, 0, on_key, seen), count = 0;
    int i;

    for (i = 0; i < NSLOTS; i++) {
        if (seen[i]) {
            count++;
            expect(live(&model[i]) != 0, "get_keys: dead key %d listed", i);
            model[i].state = PRESENT;
        } else {
            expect(live(&model[i]) != 1, "get_keys: live key %d missing", i);
            if (!expired(&model[i])) {
                clear_entry(&model[i]);
            }
        }
    }
    expect(n == count, "get_keys returned %zu for %zu keys", n, count);
}


static void
op_flush(mp_dict_t *d, int all)
{
    int i;

    if (all) {
        mp_dict_flush_all(d);
        for (i = 0; i < NSLOTS; i++) {
            if (model[i].state != ABSENT) {
                model[i].expires = 1;
            }
        }
        return;
    }
    (void) mp_dict_flush_expired(d, 0);
    for (i = 0; i < NSLOTS; i++) {
        if (expired(&model[i])) {
            clear_entry(&model[i]);
        }
    }
}


static void
run(mp_dict_t *d, input_t *in)
{
    const char *err = NULL;
    unsigned op;

    for (op_index = 0; in->p < in->end; op_index++) {
        op = next(in);
        switch (op % 20) {
        case 0: op_store(d, in, MP_DICT_SET); break;
        case 1: op_store(d, in, MP_DICT_SET | MP_DICT_SAFE); break;
        case 2: op_store(d, in, MP_DICT_ADD); break;
        case 3: op_store(d, in, MP_DICT_ADD | MP_DICT_SAFE); break;
        case 4: op_store(d, in, MP_DICT_REPLACE); break;
        case 5: op_get(d, in, 0); break;
        case 6: op_get(d, in, 1); break;
        case 7: op_delete(d, in); break;
        case 8: op_incr(d, in); break;
        case 9: op_push(d, in, 1); break;
        case 10: op_push(d, in, 0); break;
        case 11: op_pop(d, in, 1); break;
        case 12: op_pop(d, in, 0); break;
        case 13: op_llen(d, in); break;
        case 14: op_ttl(d, in, 0); break;
        case 15: op_ttl(d, in, 1); break;
        case 16: op_keys(d); break;
        case 17: op_flush(d, (op / 20) & 1); break;
        case 18: now_ms += next(in) * 5; break;
        default: op_store(d, in, MP_DICT_SET); break;
        }
        expect(mp_dict_check(d, &err) == MP_OK, "mp_dict_check: %s", err);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t sizes[4] = { MP_ZONE_MIN_SIZE, 64 * 1024,
                                     256 * 1024, 1024 * 1024 };
    input_t in = { data, data + size };
    unsigned conf = next(&in);
    const char *err = NULL;
    mp_zone_t *zone;
    mp_dict_t *d;
    int i;

    mp_dict_set_clock(fake_clock);
    now_ms = 1700000000000LL;
    zone = mp_zone_create("fuzz", sizes[conf & 3], &err);
    if (zone == NULL) {
        fprintf(stderr, "mp_zone_create: %s\n", err);
        abort();
    }
    d = mp_dict_init(zone, 1u << ((conf >> 2) % 4), &err);
    if (d == NULL) {
        d = mp_dict_init(zone, 0, &err); /* too small for that many shards */
    }
    if (d == NULL) {
        fprintf(stderr, "mp_dict_init: %s\n", err);
        abort();
    }
    run(d, &in);
    for (i = 0; i < NSLOTS; i++) {
        clear_entry(&model[i]);
    }
    mp_zone_destroy(zone);
    return 0;
}
