/*
 * test_dict.c: shm/dict.c and shm/zone.c through their headers: every
 * method and error string, expiry under a test clock, eviction order,
 * lists, reload reuse, crash recovery at random points (forked children
 * killed by the crash hook) and a multi-process stress run. Each forking
 * test is guarded by alarm().
 */
#include "core/mp_core.h"
#include "shm/crash.h"
#include "shm/dict.h"
#include "shm/zone.h"
#include "runner.h"

#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static mp_msec_t fake_now = 1700000000000LL;


static mp_msec_t
test_clock(void)
{
    return fake_now;
}


static mp_dict_t *
new_dict(size_t size, unsigned nshards, mp_zone_t **zp)
{
    const char *err = NULL;
    mp_zone_t *z = mp_zone_create("test", size, &err);
    mp_dict_t *d;

    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    d = mp_dict_init(z, nshards, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    *zp = z;
    mp_dict_set_clock(test_clock);
    return d;
}


static void
assert_check(mp_dict_t *d)
{
    const char *err = NULL;
    int rc = mp_dict_check(d, &err);

    if (rc != MP_OK) {
        fprintf(stderr, "dict check: %s\n", err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, MP_OK);
}


static int
set_str(mp_dict_t *d, const char *k, const char *v, mp_msec_t ttl,
    int *forcible)
{
    const char *err;

    return mp_dict_store(d, MP_DICT_SET, k, strlen(k), MP_DICT_TSTRING, v,
                         strlen(v), 0, 0, ttl, forcible, &err);
}


static int
get_str(mp_dict_t *d, const char *k, char *buf, size_t size)
{
    mp_dict_value_t v = { 0 };
    const char *err;
    int rc;

    v.data = buf;
    v.size = size - 1;
    rc = mp_dict_get(d, k, strlen(k), &v, &err);
    if (rc == MP_OK && v.type == MP_DICT_TSTRING) {
        buf[v.len] = '\0';
    }
    return rc;
}


static void
test_dict_zone_create_and_reuse(void)
{
    const char *err = NULL;
    mp_zone_t *a, *b, *zones[2];
    int changed;

    CU_ASSERT_PTR_NULL(mp_zone_create("tiny", 4096, &err));
    CU_ASSERT_STRING_EQUAL(err, "zone too small");
    CU_ASSERT_PTR_NULL(mp_zone_create("", 65536, &err));
    a = mp_zone_create("cache", 100000, &err);
    b = mp_zone_create("locks", 65536, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(a->size, 102400);
    CU_ASSERT_STRING_EQUAL(a->name, "cache");
    zones[0] = a;
    zones[1] = b;
    CU_ASSERT_PTR_EQUAL(mp_zone_find(zones, 2, "cache", 100000, &changed), a);
    CU_ASSERT_EQUAL(changed, 0);
    CU_ASSERT_EQUAL(a->generation, 1);
    CU_ASSERT_PTR_NULL(mp_zone_find(zones, 2, "cache", 200000, &changed));
    CU_ASSERT_EQUAL(changed, 1);
    CU_ASSERT_PTR_NULL(mp_zone_find(zones, 2, "other", 65536, &changed));
    CU_ASSERT_EQUAL(changed, 0);
    CU_ASSERT_EQUAL(mp_zone_data_size(a), a->size - MP_ZONE_HEADER_SIZE);
    mp_zone_destroy(a);
    mp_zone_destroy(b);
}


static void
test_dict_auto_shards_keep_large_values(void)
{
    mp_zone_t *z;
    mp_dict_t *d = new_dict(10 << 20, 0, &z);
    mp_dict_value_t v = { 0 };
    const char *err;
    int forcible;
    char *big = mp_alloc(700 * 1024);

    /* 8 shards of ~1.25 MiB: a 700 KiB value (an OpenResty-sized blob)
     * must still fit in a 10 MiB dict */
    CU_ASSERT_EQUAL(mp_dict_nshards(d), 8);
    memset(big, 'x', 700 * 1024);
    v.type = MP_DICT_TSTRING;
    v.str = big;
    v.len = 700 * 1024;
    CU_ASSERT_EQUAL(mp_dict_set(d, "big", 3, &v, 0, &forcible, &err), MP_OK);
    free(big);
    mp_zone_destroy(z);
}


static void
test_dict_reinit_keeps_data(void)
{
    mp_zone_t *z;
    mp_dict_t *d = new_dict(1 << 20, 0, &z), *d2;
    const char *err;
    char buf[64];
    int forcible;

    /* automatic sharding keeps shards of at least 1 MiB */
    CU_ASSERT_EQUAL(mp_dict_nshards(d), 1);
    CU_ASSERT_STRING_EQUAL(mp_dict_name(d), "test");
    CU_ASSERT_EQUAL(set_str(d, "k", "kept", 0, &forcible), MP_OK);
    d2 = mp_dict_init(z, 0, &err);
    CU_ASSERT_PTR_EQUAL(d, d2);
    CU_ASSERT_EQUAL(get_str(d2, "k", buf, sizeof(buf)), MP_OK);
    CU_ASSERT_STRING_EQUAL(buf, "kept");
    CU_ASSERT_EQUAL(mp_dict_capacity(d), 1 << 20);
    mp_zone_destroy(z);
}


static void
test_dict_value_types_and_flags(void)
{
    mp_zone_t *z;
    mp_dict_t *d = new_dict(1 << 20, 4, &z);
    mp_dict_value_t v = { 0 };
    const char *err = NULL;
    const char bkey[] = { 'a', 0, 'b', (char) 0xff };
    const char bval[] = { 0, 1, 2, 0, (char) 0x80 };
    char buf[256];
    int forcible;

    v.data = buf;
    v.size = sizeof(buf);
    CU_ASSERT_EQUAL(mp_dict_store(d, MP_DICT_SET, "n", 1, MP_DICT_TNUMBER,
                                  NULL, 0, 3.25, 7, 0, &forcible, &err), MP_OK);
    CU_ASSERT_EQUAL(mp_dict_get(d, "n", 1, &v, &err), MP_OK);
    CU_ASSERT_EQUAL(v.type, MP_DICT_TNUMBER);
    CU_ASSERT_EQUAL(v.number, 3.25);
    CU_ASSERT_EQUAL(v.flags, 7);

    mp_dict_store(d, MP_DICT_SET, "b", 1, MP_DICT_TBOOLEAN, NULL, 0, 1, 0, 0,
                  &forcible, &err);
    CU_ASSERT_EQUAL(mp_dict_get(d, "b", 1, &v, &err), MP_OK);
    CU_ASSERT_EQUAL(v.type, MP_DICT_TBOOLEAN);
    CU_ASSERT_EQUAL(v.number, 1);
    CU_ASSERT_EQUAL(v.flags, 0);

    mp_dict_store(d, MP_DICT_SET, bkey, 4, MP_DICT_TSTRING, bval, 5, 0, 0, 0,
                  &forcible, &err);
    CU_ASSERT_EQUAL(mp_dict_get(d, bkey, 4, &v, &err), MP_OK);
    CU_ASSERT_EQUAL(v.len, 5);
    CU_ASSERT_EQUAL(memcmp(buf, bval, 5), 0);
    CU_ASSERT_EQUAL(mp_dict_get(d, bkey, 3, &v, &err), MP_DECLINED);
    CU_ASSERT_EQUAL(v.type, MP_DICT_TNIL);

    mp_dict_store(d, MP_DICT_SET, "t", 1, MP_DICT_TTABLE, "\x01xyz", 4, 0, 0, 0,
                  &forcible, &err);
    CU_ASSERT_EQUAL(mp_dict_get(d, "t", 1, &v, &err), MP_OK);
    CU_ASSERT_EQUAL(v.type, MP_DICT_TTABLE);
    CU_ASSERT_EQUAL(v.len, 4);

    /* A buffer too small: MP_AGAIN with the size needed, then it fits. */
    v.size = 2;
    CU_ASSERT_EQUAL(mp_dict_get(d, bkey, 4, &v, &err), MP_AGAIN);
    CU_ASSERT_EQUAL(v.len, 5);
    v.size = sizeof(buf);

    /* Same-size overwrite (in place) and different-size overwrite. */
    CU_ASSERT_EQUAL(set_str(d, "s", "hello", 0, &forcible), MP_OK);
    CU_ASSERT_EQUAL(set_str(d, "s", "world", 0, &forcible), MP_OK);
    CU_ASSERT_EQUAL(get_str(d, "s", buf, sizeof(buf)), MP_OK);
    CU_ASSERT_STRING_EQUAL(buf, "world");
    CU_ASSERT_EQUAL(set_str(d, "s", "a longer value here", 0, &forcible),
                    MP_OK);
    CU_ASSERT_EQUAL(get_str(d, "s", buf, sizeof(buf)), MP_OK);
    CU_ASSERT_STRING_EQUAL(buf, "a longer value here");
    CU_ASSERT_EQUAL(set_str(d, "s", "", 0, &forcible), MP_OK);
    CU_ASSERT_EQUAL(get_str(d, "s", buf, sizeof(buf)), MP_OK);
    CU_ASSERT_STRING_EQUAL(buf, "");
    assert_check(d);
    mp_zone_destroy(z);
}


static int cb_calls;


static void
on_value(void *ctx, const mp_dict_value_t *v)
{
    cb_calls++;
    CU_ASSERT_EQUAL(v->len, 3);
    CU_ASSERT_EQUAL(memcmp(v->data, "abc", 3), 0);
    CU_ASSERT_PTR_EQUAL(ctx, &cb_calls);
}


static void
test_dict_errors_and_delete(void)
{
    mp_zone_t *z;
    mp_dict_t *d = new_dict(1 << 20, 4, &z);
    mp_dict_value_t v = { 0 };
    const char *err = NULL;
    char big[70000];
    int forcible;

    v.type = MP_DICT_TSTRING;
    v.str = "abc";
    v.len = 3;
    CU_ASSERT_EQUAL(mp_dict_add(d, "k", 1, &v, 0, &forcible, &err), MP_OK);
    CU_ASSERT_EQUAL(mp_dict_add(d, "k", 1, &v, 0, &forcible, &err),
                    MP_DECLINED);
    CU_ASSERT_STRING_EQUAL(err, "exists");
    CU_ASSERT_EQUAL(mp_dict_safe_add(d, "k", 1, &v, 0, &forcible, &err),
                    MP_DECLINED);
    CU_ASSERT_EQUAL(mp_dict_replace(d, "x", 1, &v, 0, &forcible, &err),
                    MP_DECLINED);
    CU_ASSERT_STRING_EQUAL(err, "not found");
    CU_ASSERT_EQUAL(mp_dict_replace(d, "k", 1, &v, 0, &forcible, &err), MP_OK);
    CU_ASSERT_EQUAL(mp_dict_safe_set(d, "k2", 2, &v, 0, &forcible, &err),
                    MP_OK);
    CU_ASSERT_EQUAL(mp_dict_get_cb(d, "k", 1, 0, on_value, &cb_calls, &err),
                    MP_OK);
    CU_ASSERT_EQUAL(cb_calls, 1);

    v.type = MP_DICT_TNIL;
    CU_ASSERT_EQUAL(mp_dict_add(d, "k", 1, &v, 0, &forcible, &err), MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "attempt to add or replace nil values");
    CU_ASSERT_EQUAL(mp_dict_set(d, "k", 1, &v, 0, &forcible, &err), MP_OK);
    CU_ASSERT_EQUAL(mp_dict_get(d, "k", 1, &v, &err), MP_DECLINED);
    CU_ASSERT_EQUAL(mp_dict_set(d, "never", 5, &v, 0, &forcible, &err), MP_OK);

    v.type = 42;
    CU_ASSERT_EQUAL(mp_dict_set(d, "k", 1, &v, 0, &forcible, &err), MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "unsupported value type");
    v.type = MP_DICT_TSTRING;
    CU_ASSERT_EQUAL(mp_dict_set(d, "", 0, &v, 0, &forcible, &err), MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "empty key");
    memset(big, 'k', sizeof(big));
    CU_ASSERT_EQUAL(mp_dict_set(d, big, 65536, &v, 0, &forcible, &err),
                    MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "key too long");
    /* The longest key works. */
    CU_ASSERT_EQUAL(mp_dict_set(d, big, 65535, &v, 0, &forcible, &err), MP_OK);
    CU_ASSERT_EQUAL(mp_dict_delete(d, big, 65535, &err), MP_OK);
    CU_ASSERT_EQUAL(mp_dict_delete(d, big, 65535, &err), MP_DECLINED);
    CU_ASSERT_EQUAL(mp_dict_get(d, "", 0, &v, &err), MP_ERROR);

    /* A value larger than a shard is "no memory", not a crash. */
    v.type = MP_DICT_TSTRING;
    v.str = malloc(1 << 20);
    v.len = 1 << 20;
    CU_ASSERT_EQUAL(mp_dict_set(d, "huge", 4, &v, 0, &forcible, &err),
                    MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "no memory");
    free((void *) v.str);
    assert_check(d);
    mp_zone_destroy(z);
}


static void
test_dict_expiry_with_test_clock(void)
{
    mp_zone_t *z;
    mp_dict_t *d = new_dict(1 << 20, 2, &z);
    mp_dict_value_t v = { 0 };
    const char *err = NULL;
    mp_msec_t ttl;
    char buf[64];
    int forcible;

    v.data = buf;
    v.size = sizeof(buf);
    CU_ASSERT_EQUAL(set_str(d, "a", "1", 100, &forcible), MP_OK);
    CU_ASSERT_EQUAL(set_str(d, "b", "2", 0, &forcible), MP_OK);
    CU_ASSERT_EQUAL(mp_dict_ttl(d, "a", 1, &ttl, &err), MP_OK);
    CU_ASSERT_EQUAL(ttl, 100);
    CU_ASSERT_EQUAL(mp_dict_ttl(d, "b", 1, &ttl, &err), MP_OK);
    CU_ASSERT_EQUAL(ttl, 0);
    CU_ASSERT_EQUAL(mp_dict_ttl(d, "c", 1, &ttl, &err), MP_DECLINED);
    CU_ASSERT_STRING_EQUAL(err, "not found");

    fake_now += 99;
    CU_ASSERT_EQUAL(get_str(d, "a", buf, sizeof(buf)), MP_OK);
    fake_now += 1;
    CU_ASSERT_EQUAL(get_str(d, "a", buf, sizeof(buf)), MP_DECLINED);
    CU_ASSERT_EQUAL(mp_dict_get_stale(d, "a", 1, &v, &err), MP_OK);
    CU_ASSERT_EQUAL(v.stale, 1);
    CU_ASSERT_EQUAL(mp_dict_get_stale(d, "b", 1, &v, &err), MP_OK);
    CU_ASSERT_EQUAL(v.stale, 0);
    CU_ASSERT_EQUAL(mp_dict_ttl(d, "a", 1, &ttl, &err), MP_OK);
    CU_ASSERT(ttl <= 0);

    /* replace sees an expired key as missing, add may take it over. */
    v.type = MP_DICT_TSTRING;
    v.str = "3";
    v.len = 1;
    CU_ASSERT_EQUAL(mp_dict_replace(d, "a", 1, &v, 0, &forcible, &err),
                    MP_DECLINED);
    CU_ASSERT_EQUAL(mp_dict_add(d, "a", 1, &v, 50, &forcible, &err), MP_OK);
    CU_ASSERT_EQUAL(get_str(d, "a", buf, sizeof(buf)), MP_OK);
    CU_ASSERT_STRING_EQUAL(buf, "3");

    /* expire: new ttl, 0 = never, missing key. */
    CU_ASSERT_EQUAL(mp_dict_expire(d, "b", 1, 10, &err), MP_OK);
    CU_ASSERT_EQUAL(mp_dict_ttl(d, "b", 1, &ttl, &err), MP_OK);
    CU_ASSERT_EQUAL(ttl, 10);
    CU_ASSERT_EQUAL(mp_dict_expire(d, "a", 1, 0, &err), MP_OK);
    CU_ASSERT_EQUAL(mp_dict_expire(d, "zz", 2, 0, &err), MP_DECLINED);
    fake_now += 1000;
    CU_ASSERT_EQUAL(get_str(d, "a", buf, sizeof(buf)), MP_OK);
    CU_ASSERT_EQUAL(get_str(d, "b", buf, sizeof(buf)), MP_DECLINED);

    /* flush_expired frees only expired items, up to max. */
    CU_ASSERT_EQUAL(mp_dict_flush_expired(d, 0), 1);
    set_str(d, "x1", "v", 5, &forcible);
    set_str(d, "x2", "v", 5, &forcible);
    set_str(d, "x3", "v", 5, &forcible);
    fake_now += 10;
    CU_ASSERT_EQUAL(mp_dict_flush_expired(d, 2), 2);
    CU_ASSERT_EQUAL(mp_dict_flush_expired(d, 0), 1);
    CU_ASSERT_EQUAL(mp_dict_flush_expired(d, 0), 0);
    CU_ASSERT_EQUAL(get_str(d, "a", buf, sizeof(buf)), MP_OK);
    assert_check(d);
    mp_zone_destroy(z);
}


static void
test_dict_incr(void)
{
    mp_zone_t *z;
    mp_dict_t *d = new_dict(1 << 20, 2, &z);
    const char *err = NULL;
    mp_msec_t ttl;
    double val;
    int forcible;

    val = 1;
    CU_ASSERT_EQUAL(mp_dict_incr(d, "c", 1, &val, 0, 0, 0, &forcible, &err),
                    MP_DECLINED);
    CU_ASSERT_STRING_EQUAL(err, "not found");
    val = 1;
    CU_ASSERT_EQUAL(mp_dict_incr(d, "c", 1, &val, 1, 10, 0, &forcible, &err),
                    MP_OK);
    CU_ASSERT_EQUAL(val, 11);
    val = -0.5;
    CU_ASSERT_EQUAL(mp_dict_incr(d, "c", 1, &val, 1, 10, 0, &forcible, &err),
                    MP_OK);
    CU_ASSERT_EQUAL(val, 10.5);
    CU_ASSERT_EQUAL(mp_dict_ttl(d, "c", 1, &ttl, &err), MP_OK);
    CU_ASSERT_EQUAL(ttl, 0);

    /* init_ttl applies only when the key is created. */
    val = 2;
    CU_ASSERT_EQUAL(mp_dict_incr(d, "t", 1, &val, 1, 0, 100, &forcible, &err),
                    MP_OK);
    CU_ASSERT_EQUAL(mp_dict_ttl(d, "t", 1, &ttl, &err), MP_OK);
    CU_ASSERT_EQUAL(ttl, 100);
    fake_now += 200;
    val = 2;
    CU_ASSERT_EQUAL(mp_dict_incr(d, "t", 1, &val, 0, 0, 0, &forcible, &err),
                    MP_DECLINED);
    val = 3;
    CU_ASSERT_EQUAL(mp_dict_incr(d, "t", 1, &val, 1, 1, 0, &forcible, &err),
                    MP_OK);
    CU_ASSERT_EQUAL(val, 4);

    set_str(d, "s", "str", 0, &forcible);
    val = 1;
    CU_ASSERT_EQUAL(mp_dict_incr(d, "s", 1, &val, 1, 0, 0, &forcible, &err),
                    MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "not a number");
    assert_check(d);
    mp_zone_destroy(z);
}


static void
test_dict_lists(void)
{
    mp_zone_t *z;
    mp_dict_t *d = new_dict(1 << 20, 2, &z);
    mp_dict_value_t v = { 0 };
    const char *err = NULL;
    char buf[64];
    size_t n;
    mp_msec_t ttl;
    double val;
    int forcible;

    v.data = buf;
    v.size = sizeof(buf);
    CU_ASSERT_EQUAL(mp_dict_llen(d, "l", 1, &n, &err), MP_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(mp_dict_lpop(d, "l", 1, &v, &err), MP_DECLINED);
    CU_ASSERT_EQUAL(mp_dict_lpush(d, "l", 1, MP_DICT_TSTRING, "b", 1, 0, &n,
                                  &err), MP_OK);
    CU_ASSERT_EQUAL(n, 1);
    mp_dict_lpush(d, "l", 1, MP_DICT_TSTRING, "a", 1, 0, &n, &err);
    mp_dict_rpush(d, "l", 1, MP_DICT_TNUMBER, NULL, 0, 2.5, &n, &err);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(mp_dict_rpush(d, "l", 1, MP_DICT_TBOOLEAN, NULL, 0, 1, &n,
                                  &err), MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "bad value type");
    assert_check(d);

    CU_ASSERT_EQUAL(mp_dict_get(d, "l", 1, &v, &err), MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "value is a list");
    val = 1;
    CU_ASSERT_EQUAL(mp_dict_incr(d, "l", 1, &val, 0, 0, 0, &forcible, &err),
                    MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "not a number");

    CU_ASSERT_EQUAL(mp_dict_rpop(d, "l", 1, &v, &err), MP_OK);
    CU_ASSERT_EQUAL(v.type, MP_DICT_TNUMBER);
    CU_ASSERT_EQUAL(v.number, 2.5);
    CU_ASSERT_EQUAL(mp_dict_lpop(d, "l", 1, &v, &err), MP_OK);
    CU_ASSERT_EQUAL(v.type, MP_DICT_TSTRING);
    CU_ASSERT_EQUAL(v.len, 1);
    CU_ASSERT_EQUAL(buf[0], 'a');
    CU_ASSERT_EQUAL(mp_dict_llen(d, "l", 1, &n, &err), MP_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(mp_dict_lpop(d, "l", 1, &v, &err), MP_OK);
    CU_ASSERT_EQUAL(buf[0], 'b');
    /* The last pop removed the key. */
    CU_ASSERT_EQUAL(mp_dict_ttl(d, "l", 1, &ttl, &err), MP_DECLINED);

    set_str(d, "s", "x", 0, &forcible);
    CU_ASSERT_EQUAL(mp_dict_lpush(d, "s", 1, MP_DICT_TSTRING, "a", 1, 0, &n,
                                  &err), MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "value not a list");
    CU_ASSERT_EQUAL(mp_dict_rpop(d, "s", 1, &v, &err), MP_ERROR);
    CU_ASSERT_EQUAL(mp_dict_llen(d, "s", 1, &n, &err), MP_ERROR);

    /* set over a list replaces it; a too-small buffer pops nothing. */
    mp_dict_rpush(d, "m", 1, MP_DICT_TSTRING, "0123456789", 10, 0, &n, &err);
    v.size = 4;
    CU_ASSERT_EQUAL(mp_dict_lpop(d, "m", 1, &v, &err), MP_AGAIN);
    CU_ASSERT_EQUAL(v.len, 10);
    v.size = sizeof(buf);
    CU_ASSERT_EQUAL(mp_dict_llen(d, "m", 1, &n, &err), MP_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(set_str(d, "m", "plain", 0, &forcible), MP_OK);
    CU_ASSERT_EQUAL(get_str(d, "m", buf, sizeof(buf)), MP_OK);

    /* A list on an expired key starts over. */
    mp_dict_rpush(d, "e", 1, MP_DICT_TSTRING, "1", 1, 0, &n, &err);
    mp_dict_expire(d, "e", 1, 5, &err);
    fake_now += 10;
    CU_ASSERT_EQUAL(mp_dict_rpush(d, "e", 1, MP_DICT_TSTRING, "2", 1, 0, &n,
                                  &err), MP_OK);
    CU_ASSERT_EQUAL(n, 1);
    assert_check(d);
    mp_zone_destroy(z);
}


static int
count_key(void *ctx, const char *key, size_t len)
{
    (void) key;
    (void) len;
    (*(int *) ctx)++;
    return 0;
}


static void
test_dict_keys_flush_all_free_space(void)
{
    mp_zone_t *z;
    mp_dict_t *d = new_dict(1 << 20, 4, &z);
    mp_dict_value_t v = { 0 };
    const char *err = NULL;
    size_t free0, n;
    char key[32], buf[8];
    int i, forcible, seen = 0;

    free0 = mp_dict_free_space(d);
    CU_ASSERT(free0 > (1 << 20) * 8 / 10);
    for (i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        set_str(d, key, "value", i < 10 ? 5 : 0, &forcible);
    }
    CU_ASSERT(mp_dict_free_space(d) < free0);
    fake_now += 10;
    CU_ASSERT_EQUAL(mp_dict_get_keys(d, 0, count_key, &seen), 90);
    CU_ASSERT_EQUAL(seen, 90);
    seen = 0;
    CU_ASSERT_EQUAL(mp_dict_get_keys(d, 20, count_key, &seen), 20);
    CU_ASSERT_EQUAL(seen, 20);

    mp_dict_flush_all(d);
    seen = 0;
    CU_ASSERT_EQUAL(mp_dict_get_keys(d, 0, count_key, &seen), 0);
    v.data = buf;
    v.size = sizeof(buf);
    CU_ASSERT_EQUAL(mp_dict_get(d, "key50", 5, &v, &err), MP_DECLINED);
    CU_ASSERT_EQUAL(mp_dict_get_stale(d, "key50", 5, &v, &err), MP_OK);
    CU_ASSERT_EQUAL(v.stale, 1);
    n = mp_dict_flush_expired(d, 0);
    CU_ASSERT_EQUAL(n, 100);
    CU_ASSERT_EQUAL(mp_dict_free_space(d), free0);
    assert_check(d);
    mp_zone_destroy(z);
}


static void
test_dict_lru_eviction_order_and_forcible(void)
{
    mp_zone_t *z;
    mp_dict_t *d = new_dict(64 * 1024, 1, &z);
    mp_dict_value_t v = { 0 };
    const char *err = NULL;
    char key[32], val[200], buf[256];
    int i, n, forcible = 0;

    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    for (n = 0; n < 10000 && !forcible; n++) {
        snprintf(key, sizeof(key), "k%d", n);
        CU_ASSERT_EQUAL_FATAL(set_str(d, key, val, 0, &forcible), MP_OK);
    }
    CU_ASSERT(n > 50 && n < 10000);
    /* The oldest went first, everything else is still there. */
    CU_ASSERT_EQUAL(get_str(d, "k0", buf, sizeof(buf)), MP_DECLINED);
    CU_ASSERT_EQUAL(get_str(d, "k1", buf, sizeof(buf)), MP_OK);
    for (i = 2; i < n; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CU_ASSERT_EQUAL(get_str(d, key, buf, sizeof(buf)) == MP_OK, i != 1);
    }
    /*
     * Every item has now been read, so the clock hand clears all bits and
     * the oldest, k1, goes for new1. Then only k3 and k5 are read: k2 and
     * k4 (cold) go before them.
     */
    set_str(d, "new1", val, 0, &forcible);
    CU_ASSERT_EQUAL(forcible, 1);
    CU_ASSERT_EQUAL(get_str(d, "k1", buf, sizeof(buf)), MP_DECLINED);
    get_str(d, "k3", buf, sizeof(buf));
    get_str(d, "k5", buf, sizeof(buf));
    set_str(d, "new2", val, 0, &forcible);
    set_str(d, "new3", val, 0, &forcible);
    CU_ASSERT_EQUAL(forcible, 1);
    CU_ASSERT_EQUAL(get_str(d, "k2", buf, sizeof(buf)), MP_DECLINED);
    CU_ASSERT_EQUAL(get_str(d, "k4", buf, sizeof(buf)), MP_DECLINED);
    CU_ASSERT_EQUAL(get_str(d, "k3", buf, sizeof(buf)), MP_OK);
    CU_ASSERT_EQUAL(get_str(d, "k5", buf, sizeof(buf)), MP_OK);
    CU_ASSERT_EQUAL(get_str(d, "k6", buf, sizeof(buf)), MP_OK);

    /* safe_* refuse to evict live items. */
    v.type = MP_DICT_TSTRING;
    v.str = val;
    v.len = strlen(val);
    for (i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "safe%d", i);
        if (mp_dict_safe_set(d, key, strlen(key), &v, 0, &forcible, &err)
            != MP_OK)
        {
            break;
        }
        CU_ASSERT_EQUAL(forcible, 0);
    }
    CU_ASSERT(i < 1000);
    CU_ASSERT_STRING_EQUAL(err, "no memory");
    CU_ASSERT_EQUAL(mp_dict_safe_add(d, "other", 5, &v, 0, &forcible, &err),
                    MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "no memory");
    /* Expired items are not live: freeing them is not forcible. */
    mp_dict_flush_all(d);
    CU_ASSERT_EQUAL(mp_dict_safe_set(d, "after", 5, &v, 0, &forcible, &err),
                    MP_OK);
    CU_ASSERT_EQUAL(set_str(d, "after2", val, 0, &forcible), MP_OK);
    CU_ASSERT_EQUAL(forcible, 0);
    assert_check(d);
    mp_zone_destroy(z);
}


/* Fill with small values, then store large ones: eviction makes room. */
static void
test_dict_fragmentation_small_then_large(void)
{
    mp_zone_t *z;
    mp_dict_t *d = new_dict(1 << 20, 1, &z);
    mp_dict_value_t v = { 0 };
    mp_dict_stats_t st;
    const char *err = NULL;
    char key[32], *big = malloc(200000), buf[64];
    int i, forcible = 0, ok = 1;

    for (i = 0; i < 100000 && !forcible; i++) {
        snprintf(key, sizeof(key), "small%d", i);
        set_str(d, key, "0123456789abcdef0123", 0, &forcible);
    }
    mp_dict_stats(d, &st);
    CU_ASSERT(st.pages_free <= 1);
    memset(big, 'B', 200000);
    v.type = MP_DICT_TSTRING;
    v.str = big;
    for (i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "large%d", i);
        v.len = 50000 + (size_t) i * 3000;
        ok &= mp_dict_set(d, key, strlen(key), &v, 0, &forcible, &err)
              == MP_OK;
    }
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(forcible, 1);
    v.data = buf;
    v.size = sizeof(buf);
    CU_ASSERT_EQUAL(mp_dict_get(d, "large39", 7, &v, &err), MP_AGAIN);
    CU_ASSERT_EQUAL(v.len, 50000 + 39 * 3000);
    /* And small ones again after the large ones. */
    for (i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "again%d", i);
        ok &= set_str(d, key, "x", 0, &forcible) == MP_OK;
    }
    CU_ASSERT(ok);
    assert_check(d);
    free(big);
    mp_zone_destroy(z);
}


typedef struct {
    volatile double done;       /* incr calls the child saw succeed */
    volatile long ops;
} progress_t;


static void
random_op(mp_dict_t *d, mp_dict_t *counters, progress_t *pr, char *big)
{
    mp_dict_value_t v = { 0 };
    const char *err;
    char key[32], buf[4096];
    size_t n;
    double val;
    int forcible, op = rand() % 100;

    snprintf(key, sizeof(key), "k%d", rand() % 64);
    v.data = buf;
    v.size = sizeof(buf);
    if (op < 25) {
        mp_dict_store(d, (rand() % 4 == 0) ? MP_DICT_ADD : MP_DICT_SET, key,
                      strlen(key), MP_DICT_TSTRING, big,
                      (size_t) (rand() % 6000) + 1, 0, 0,
                      rand() % 3 == 0 ? rand() % 50 + 1 : 0, &forcible, &err);
    } else if (op < 35) {
        mp_dict_get(d, key, strlen(key), &v, &err);
    } else if (op < 45) {
        val = 1;
        mp_dict_incr(d, key, strlen(key), &val, 1, 0, 0, &forcible, &err);
    } else if (op < 55) {
        mp_dict_delete(d, key, strlen(key), &err);
    } else if (op < 68) {
        mp_dict_lpush(d, key, strlen(key), MP_DICT_TSTRING, big,
                      (size_t) (rand() % 300), 0, &n, &err);
    } else if (op < 78) {
        mp_dict_rpop(d, key, strlen(key), &v, &err);
    } else if (op < 83) {
        mp_dict_expire(d, key, strlen(key), rand() % 20, &err);
    } else if (op < 85) {
        fake_now += rand() % 30;
        mp_dict_flush_expired(d, 5);
    } else if (op == 85) {
        mp_dict_flush_all(d);
    } else if (op < 90) {
        mp_dict_store(d, MP_DICT_SET, key, strlen(key), MP_DICT_TNUMBER, NULL,
                      0, rand(), 0, 0, &forcible, &err);
    } else {
        val = 1;
        if (mp_dict_incr(counters, "ctr", 3, &val, 1, 0, 0, &forcible, &err)
            == MP_OK)
        {
            pr->done += 1;
        }
    }
    pr->ops++;
}


static void
test_dict_crash_recovery_random_points(void)
{
    enum { ITER = 3000 };
    mp_zone_t *z, *z2;
    mp_dict_t *d = new_dict(256 * 1024, 2, &z), *c;
    progress_t *pr;
    mp_dict_value_t v = { 0 };
    mp_dict_stats_t st;
    const char *err;
    char *big = malloc(8192), buf[64];
    int i, status, killed = 0, bad_counter = 0;
    unsigned by_master = 0;
    double ctr = 0;

    c = new_dict(1 << 20, 2, &z2);
    pr = mmap(NULL, sizeof(*pr), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(big, 'z', 8192);
    v.data = buf;
    v.size = sizeof(buf);
    alarm(120);
    for (i = 0; i < ITER; i++) {
        pid_t pid;

        pr->done = ctr;
        pid = fork();
        if (pid == 0) {
            int k;

            srand((unsigned) i * 7919 + 1);
            mp_shm_crash_countdown = 1 + rand() % 400;
            for (k = 0; k < 300; k++) {
                random_op(d, c, pr, big);
            }
            _exit(0);
        }
        waitpid(pid, &status, 0);
        killed += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        if (i % 2 == 1) {
            /* As the master on SIGCHLD; even rounds leave it to lockers. */
            by_master += mp_dict_recover_pid(d, pid);
            by_master += mp_dict_recover_pid(c, pid);
        }

        /* The counter moved by what completed, or one more (cut short). */
        if (mp_dict_get(c, "ctr", 3, &v, &err) == MP_OK) {
            if (v.number != pr->done && v.number != pr->done + 1) {
                bad_counter++;
            }
            ctr = v.number;
        } else {
            bad_counter += pr->done != 0;
        }
        if (i % 10 == 0 || i == ITER - 1) {
            assert_check(d);
            assert_check(c);
        }
    }
    alarm(0);
    CU_ASSERT_EQUAL(bad_counter, 0);
    CU_ASSERT(killed > ITER / 2);
    mp_dict_stats(d, &st);
    printf("\n    %d children, %d killed mid-operation, %zu recoveries "
           "(%u by the master) ", ITER, killed, st.recoveries, by_master);
    CU_ASSERT(st.recoveries > by_master);
    CU_ASSERT(by_master > 0);
    assert_check(d);
    assert_check(c);
    munmap(pr, sizeof(*pr));
    free(big);
    mp_zone_destroy(z);
    mp_zone_destroy(z2);
}


#define NCOUNTERS 16

typedef struct {
    volatile long incrs[8][NCOUNTERS];
    volatile long ops[8];
} tally_t;


static void
stress_child(mp_dict_t *d, mp_dict_t *c, tally_t *t, int me, double secs)
{
    mp_dict_value_t v = { 0 };
    struct timespec start, now;
    const char *err;
    char key[32], buf[1024], val[600];
    size_t n;
    double x;
    int forcible, op, k;
    long ops = 0;

    srand((unsigned) me * 31 + 5);
    memset(val, 'a' + me, sizeof(val));
    v.data = buf;
    v.size = sizeof(buf);
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if ((ops & 255) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            if ((now.tv_sec - start.tv_sec)
                + (now.tv_nsec - start.tv_nsec) / 1e9 > secs)
            {
                break;
            }
        }
        ops++;
        snprintf(key, sizeof(key), "key%d", rand() % 2000);
        op = rand() % 8;
        switch (op) {
        case 0:
        case 1:
            if (mp_dict_store(d, MP_DICT_SET, key, strlen(key),
                              MP_DICT_TSTRING, val,
                              (size_t) (rand() % 500) + 1, 0, (uint32_t) me,
                              0, &forcible, &err) == MP_ERROR)
            {
                _exit(3);
            }
            break;
        case 2:
            if (mp_dict_get(d, key, strlen(key), &v, &err) == MP_OK
                && v.type == MP_DICT_TSTRING
                && (v.len == 0 || buf[0] != 'a' + (int) v.flags))
            {
                _exit(4);   /* a value torn between writers */
            }
            break;
        case 3:
            x = 1;
            mp_dict_incr(d, key, strlen(key), &x, 1, 0, 0, &forcible, &err);
            break;
        case 4:
            mp_dict_delete(d, key, strlen(key), &err);
            break;
        case 5:
            mp_dict_lpush(d, key, strlen(key), MP_DICT_TSTRING, val,
                          (size_t) (rand() % 100), 0, &n, &err);
            break;
        case 6:
            mp_dict_rpop(d, key, strlen(key), &v, &err);
            break;
        default:
            k = rand() % NCOUNTERS;
            snprintf(key, sizeof(key), "counter%d", k);
            x = 1;
            if (mp_dict_incr(c, key, strlen(key), &x, 1, 0, 0, &forcible,
                             &err) != MP_OK)
            {
                _exit(5);
            }
            t->incrs[me][k]++;
            break;
        }
    }
    t->ops[me] = ops;
    _exit(0);
}


static void
test_dict_stress_8_processes(void)
{
    mp_zone_t *z, *z2;
    mp_dict_t *d = new_dict(256 * 1024, 4, &z), *c;
    mp_dict_value_t v = { 0 };
    mp_dict_stats_t st;
    tally_t *t;
    const char *err;
    char key[32], buf[64];
    pid_t pids[8];
    long total, ops = 0;
    int i, k, status, ok = 1, exact = 1;

    c = new_dict(4 << 20, 4, &z2);
    t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(t, 0, sizeof(*t));
    mp_dict_set_clock(NULL);
    alarm(60);
    for (i = 0; i < 8; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            stress_child(d, c, t, i, 3.0);
        }
    }
    for (i = 0; i < 8; i++) {
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "stress child %d: status %d\n", i, status);
            ok = 0;
        }
        ops += t->ops[i];
    }
    alarm(0);
    CU_ASSERT(ok);
    v.data = buf;
    v.size = sizeof(buf);
    for (k = 0; k < NCOUNTERS; k++) {
        total = 0;
        for (i = 0; i < 8; i++) {
            total += t->incrs[i][k];
        }
        snprintf(key, sizeof(key), "counter%d", k);
        if (mp_dict_get(c, key, strlen(key), &v, &err) != MP_OK
            || v.number != (double) total)
        {
            exact = 0;
        }
    }
    CU_ASSERT(exact);
    mp_dict_stats(d, &st);
    printf("\n    8 processes, %ld ops in 3 s, %zu evictions, %zu items ",
           ops, st.evictions, st.items);
    CU_ASSERT(st.evictions > 0);
    assert_check(d);
    assert_check(c);
    mp_dict_set_clock(test_clock);
    munmap(t, sizeof(*t));
    mp_zone_destroy(z);
    mp_zone_destroy(z2);
}


static double
elapsed_ns(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1e9 + (b->tv_nsec - a->tv_nsec);
}


/* Not a test of speed: prints ns/op for the micro benchmark. */
static void
test_dict_bench_set_get(void)
{
    enum { N = 1000000, NKEYS = 1000 };
    mp_zone_t *z;
    mp_dict_t *d = new_dict(16 << 20, 0, &z);
    mp_dict_value_t v = { 0 };
    struct timespec a, b;
    const char *err;
    char keys[NKEYS][16], buf[64];
    size_t klen[NKEYS];
    double sum = 0;
    int i, forcible, bad = 0;

    for (i = 0; i < NKEYS; i++) {
        klen[i] = (size_t) snprintf(keys[i], sizeof(keys[i]), "key%d", i);
    }
    v.data = buf;
    v.size = sizeof(buf);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < N; i++) {
        bad |= mp_dict_store(d, MP_DICT_SET, keys[i % NKEYS], klen[i % NKEYS],
                             MP_DICT_TNUMBER, NULL, 0, i, 0, 0, &forcible,
                             &err);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("\n    set (number): %.1f ns/op", elapsed_ns(&a, &b) / N);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < N; i++) {
        bad |= mp_dict_get(d, keys[i % NKEYS], klen[i % NKEYS], &v, &err);
        sum += v.number;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf(", get: %.1f ns/op", elapsed_ns(&a, &b) / N);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < N; i++) {
        bad |= mp_dict_store(d, MP_DICT_SET, keys[i % NKEYS], klen[i % NKEYS],
                             MP_DICT_TSTRING, "some value", 10, 0, 0, 0,
                             &forcible, &err);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf(", set (10-byte string): %.1f ns/op", elapsed_ns(&a, &b) / N);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < N; i++) {
        bad |= mp_dict_get(d, keys[i % NKEYS], klen[i % NKEYS], &v, &err);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf(", get: %.1f ns/op ", elapsed_ns(&a, &b) / N);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(sum > 0);
    mp_zone_destroy(z);
}


/*
 * Issue 7, allocation failure: on a full zone every operation that needs
 * memory fails with "no memory" (safe_set, safe_add, a growing replace
 * through safe_set, incr with init, lpush/rpush), leaves what is stored
 * intact and the dict consistent; deleting an item makes room again.
 */
static void
test_dict_no_memory_paths(void)
{
    mp_zone_t *z;
    mp_dict_t *d = new_dict(64 * 1024, 1, &z);
    mp_dict_value_t v = { 0 };
    char key[32], buf[64], big[3000];
    const char *err = NULL;
    int forcible = 0, i, n;
    double num = 1;
    size_t len;

    memset(big, 'b', sizeof(big));
    v.type = MP_DICT_TSTRING;
    v.str = big;
    v.len = 40;
    for (n = 0; n < 100000; n++) {
        snprintf(key, sizeof(key), "k%d", n);
        if (mp_dict_safe_set(d, key, strlen(key), &v, 0, &forcible, &err)
            != MP_OK) {
            break;
        }
    }
    CU_ASSERT_FATAL(n > 0 && n < 100000);
    CU_ASSERT_STRING_EQUAL(err, "no memory");
    assert_check(d);

    v.len = sizeof(big);
    err = NULL;
    CU_ASSERT_EQUAL(mp_dict_safe_set(d, "k0", 2, &v, 0, &forcible, &err),
                    MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "no memory");
    err = NULL;
    CU_ASSERT_EQUAL(mp_dict_safe_add(d, "new", 3, &v, 0, &forcible, &err),
                    MP_ERROR);
    CU_ASSERT_STRING_EQUAL(err, "no memory");
    /* as OpenResty's set_helper: the old item is freed before the larger
     * one is allocated, so a failed safe_set leaves the key unset */
    CU_ASSERT_EQUAL(get_str(d, "k0", buf, sizeof(buf)), MP_DECLINED);
    CU_ASSERT_EQUAL(get_str(d, "k3", buf, sizeof(buf)), MP_OK);
    CU_ASSERT_EQUAL(strlen(buf), 40);
    /* incr with init and push are not "safe": they evict, as OpenResty */
    err = NULL;
    CU_ASSERT_EQUAL(mp_dict_incr(d, "counter-with-a-long-name", 24, &num, 1,
                                 0, 0, &forcible, &err), MP_OK);
    for (i = 0; i < 200; i++) {
        err = NULL;
        if (mp_dict_rpush(d, "list", 4, MP_DICT_TSTRING, big, 500, 0, &len,
                          &err) != MP_OK) {
            CU_ASSERT_PTR_NOT_NULL_FATAL(err);
            CU_ASSERT_STRING_EQUAL(err, "no memory");
            break;
        }
    }
    assert_check(d);
    /* room again after deletes */
    for (i = 0; i < n; i += 2) {
        snprintf(key, sizeof(key), "k%d", i);
        mp_dict_delete(d, key, strlen(key), &err);
    }
    v.len = 1000;
    CU_ASSERT_EQUAL(mp_dict_safe_set(d, "k1", 2, &v, 0, &forcible, &err),
                    MP_OK);
    CU_ASSERT_EQUAL(forcible, 0);
    assert_check(d);
    mp_zone_destroy(z);
}


void
mp_test_register(void)
{
    static const mp_test_t tests[] = {
        MP_TEST(test_dict_zone_create_and_reuse),
        MP_TEST(test_dict_reinit_keeps_data),
        MP_TEST(test_dict_auto_shards_keep_large_values),
        MP_TEST(test_dict_value_types_and_flags),
        MP_TEST(test_dict_errors_and_delete),
        MP_TEST(test_dict_expiry_with_test_clock),
        MP_TEST(test_dict_incr),
        MP_TEST(test_dict_lists),
        MP_TEST(test_dict_keys_flush_all_free_space),
        MP_TEST(test_dict_lru_eviction_order_and_forcible),
        MP_TEST(test_dict_fragmentation_small_then_large),
        MP_TEST(test_dict_crash_recovery_random_points),
        MP_TEST(test_dict_stress_8_processes),
        MP_TEST(test_dict_bench_set_get),
        MP_TEST(test_dict_no_memory_paths),
        MP_TEST_END,
    };

    mp_test_suite("dict", tests);
}
