/*
 * runner.c: main() of every unit test binary (see runner.h).
 */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>


void
mp_test_suite(const char *name, const mp_test_t *tests)
{
    CU_pSuite s = CU_add_suite(name, NULL, NULL);

    if (s == NULL) {
        fprintf(stderr, "CU_add_suite(%s): %s\n", name, CU_get_error_msg());
        exit(2);
    }
    for (; tests->name != NULL; tests++) {
        if (CU_add_test(s, tests->name, tests->fn) == NULL) {
            fprintf(stderr, "CU_add_test(%s): %s\n", tests->name,
                    CU_get_error_msg());
            exit(2);
        }
    }
}


int
main(void)
{
    unsigned failed;

    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "CU_initialize_registry: %s\n", CU_get_error_msg());
        return 2;
    }
    mp_test_register();
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed == 0 ? 0 : 1;
}
