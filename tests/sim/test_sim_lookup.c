/* Simulator: lookups for existing ids from random nodes all succeed on a
 * healthy overlay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tests/sim/simtest.h"
#include "tests/support/test_env.h"

#define NODES 1000
#define LOOKUPS 300

static void test_lookups_all_succeed(void **state)
{
    (void)state;
    struct sim_config cfg;
    sim_config_default(&cfg, test_env_seed(2));
    struct sim *sim = simtest_overlay(&cfg, NODES, 1000, 60 * 1000);
    unsigned ok = simtest_run_lookups(sim, LOOKUPS);
    fprintf(stderr, "lookups: %u of %u found their target\n", ok, LOOKUPS);
    assert_true(simtest_check(sim, ok == LOOKUPS, "every lookup finds its target"));
    sim_free(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookups_all_succeed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
