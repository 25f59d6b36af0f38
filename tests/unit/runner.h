/*
 * runner.h: the CUnit runner shared by every unit test binary. Each
 * tests/unit/test_<name>.c defines mp_test_register(), which adds its
 * suites; runner.c runs them and exits non-zero on any failure.
 */
#ifndef MP_TEST_RUNNER_H
#define MP_TEST_RUNNER_H

#include <CUnit/Basic.h>

void mp_test_register(void);

/* Adds a suite with its tests, aborting the run on a CUnit error. */
typedef struct {
    const char *name;
    CU_TestFunc fn;
} mp_test_t;

void mp_test_suite(const char *name, const mp_test_t *tests);

#define MP_TEST(fn) { #fn, fn }
#define MP_TEST_END { NULL, NULL }

#endif
