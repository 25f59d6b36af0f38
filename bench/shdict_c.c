/*
 * shdict_c.c: micro benchmark of the shared dict's C core (shm/dict.c),
 * without Lua. It mirrors the Lua micro benchmark: 1,000,000 set
 * then 1,000,000 get over 1,000 pre-built keys, with numbers and with
 * 10-byte strings, in one process; then two processes at once, first on
 * different keys (they meet only when keys share a shard) and then on one
 * key (every operation contends for the same shard lock).
 *
 * Usage: bench_shdict_c [rounds]. Each figure is the best of rounds runs
 * (default 5), because the best run is the one least disturbed by the rest
 * of the machine. Not a test: it checks return codes and nothing else.
 */
#include "core/mp_core.h"
#include "shm/dict.h"
#include "shm/zone.h"

#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOPS 1000000
#define NKEYS 1000
#define ZONE_SIZE (16 << 20)

typedef enum {
    OP_SET_NUMBER,
    OP_GET_NUMBER,
    OP_SET_STRING,
    OP_GET_STRING,
} op_t;

static const char *op_names[] = {
    "set (number)", "get (number)", "set (10-byte string)",
    "get (10-byte string)",
};

typedef struct {
    char key[NKEYS][24];
    size_t len[NKEYS];
} keys_t;

/* Start line and results shared with the forked runners. */
typedef struct {
    volatile int ready;
    volatile int go;
    volatile double ns[2];
    volatile int failed;
} race_t;


static double
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}


static void
make_keys(keys_t *k, const char *prefix, int same)
{
    int i;

    for (i = 0; i < NKEYS; i++) {
        k->len[i] = (size_t) snprintf(k->key[i], sizeof(k->key[i]), "%s%d",
                                      prefix, same ? 0 : i);
    }
}


/* Runs NOPS operations of one kind; returns ns per op (or -1 on error). */
static double
run_ops(mp_dict_t *d, const keys_t *k, op_t op)
{
    mp_dict_value_t v = { 0 };
    const char *err;
    char buf[64];
    double t0, sum = 0;
    int i, j, rc = MP_OK, forcible;

    v.data = buf;
    v.size = sizeof(buf);
    t0 = now_ns();
    for (i = 0, j = 0; i < NOPS; i++, j = j + 1 == NKEYS ? 0 : j + 1) {
        switch (op) {
        case OP_SET_NUMBER:
            rc |= mp_dict_store(d, MP_DICT_SET, k->key[j], k->len[j],
                                MP_DICT_TNUMBER, NULL, 0, i, 0, 0, &forcible,
                                &err);
            break;
        case OP_SET_STRING:
            rc |= mp_dict_store(d, MP_DICT_SET, k->key[j], k->len[j],
                                MP_DICT_TSTRING, "some value", 10, 0, 0, 0,
                                &forcible, &err);
            break;
        default:
            rc |= mp_dict_get(d, k->key[j], k->len[j], &v, &err);
            sum += v.number;
            break;
        }
    }
    t0 = now_ns() - t0;
    if (rc != MP_OK || sum < 0) {
        return -1;
    }
    return t0 / NOPS;
}


static double
best_of(mp_dict_t *d, const keys_t *k, op_t op, int rounds)
{
    double best = -1, ns;
    int r;

    for (r = 0; r < rounds; r++) {
        ns = run_ops(d, k, op);
        if (ns < 0) {
            return -1;
        }
        if (best < 0 || ns < best) {
            best = ns;
        }
    }
    return best;
}


/* Two processes run op at the same time; *a and *b get their ns per op. */
static int
race(mp_dict_t *d, const keys_t *ka, const keys_t *kb, op_t op, double *a,
    double *b)
{
    race_t *r = mmap(NULL, sizeof(race_t), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t pids[2];
    int i, status, ok = 1;

    if (r == MAP_FAILED) {
        perror("mmap");
        return -1;
    }
    memset(r, 0, sizeof(*r));
    for (i = 0; i < 2; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            __atomic_add_fetch(&r->ready, 1, __ATOMIC_SEQ_CST);
            while (!r->go) {
                /* Both start together so that they overlap fully. */
            }
            r->ns[i] = run_ops(d, i == 0 ? ka : kb, op);
            _exit(r->ns[i] < 0);
        }
    }
    while (r->ready < 2) {
        usleep(100);
    }
    r->go = 1;
    for (i = 0; i < 2; i++) {
        waitpid(pids[i], &status, 0);
        ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    *a = r->ns[0];
    *b = r->ns[1];
    munmap(r, sizeof(*r));
    return ok ? 0 : -1;
}


static int
race_best(mp_dict_t *d, const keys_t *ka, const keys_t *kb, op_t op,
    int rounds, const char *what)
{
    double a, b, best_a = -1, best_b = -1;
    int r;

    for (r = 0; r < rounds; r++) {
        if (race(d, ka, kb, op, &a, &b) != 0) {
            return -1;
        }
        if (best_a < 0 || a + b < best_a + best_b) {
            best_a = a;
            best_b = b;
        }
    }
    printf("  %-22s %-14s %7.1f %7.1f   %6.1f Mops/s\n", op_names[op], what,
           best_a, best_b, 1e3 / best_a + 1e3 / best_b);
    return 0;
}


int
main(int argc, char **argv)
{
    static keys_t ka, kb, same;
    const char *err = NULL;
    mp_zone_t *z;
    mp_dict_t *d;
    double ns;
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    op_t op;

    if (rounds < 1) {
        rounds = 1;
    }
    z = mp_zone_create("bench", ZONE_SIZE, &err);
    d = z != NULL ? mp_dict_init(z, 0, &err) : NULL;
    if (d == NULL) {
        fprintf(stderr, "bench_shdict_c: %s\n", err);
        return 1;
    }
    make_keys(&ka, "key", 0);
    make_keys(&kb, "other", 0);
    make_keys(&same, "hits", 1);

    printf("shdict C core: %d ops over %d keys, %u shards, best of %d\n",
           NOPS, NKEYS, mp_dict_nshards(d), rounds);
    printf("\n  1 process              ns/op\n");
    for (op = OP_SET_NUMBER; op <= OP_GET_STRING; op++) {
        ns = best_of(d, &ka, op, rounds);
        if (ns < 0) {
            fprintf(stderr, "bench_shdict_c: %s failed\n", op_names[op]);
            return 1;
        }
        printf("  %-22s %5.1f\n", op_names[op], ns);
    }

    /* The second process's keys must exist before its gets run. */
    if (run_ops(d, &kb, OP_SET_NUMBER) < 0 || run_ops(d, &same, OP_SET_NUMBER)
        < 0)
    {
        return 1;
    }
    printf("\n  2 processes            keys           ns/op A ns/op B   "
           "together\n");
    for (op = OP_SET_NUMBER; op <= OP_GET_NUMBER; op++) {
        if (race_best(d, &ka, &kb, op, rounds, "different") != 0
            || race_best(d, &same, &same, op, rounds, "same") != 0)
        {
            fprintf(stderr, "bench_shdict_c: %s failed\n", op_names[op]);
            return 1;
        }
    }
    mp_zone_destroy(z);
    return 0;
}
