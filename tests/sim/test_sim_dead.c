/* Simulator: with a quarter of the nodes killed without notice, at least
 * 99 % of lookups for live ids from live nodes still find their target. */
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

static void test_lookups_with_quarter_dead(void **state)
{
    (void)state;
    struct sim_config cfg;
    sim_config_default(&cfg, test_env_seed(3));
    struct sim *sim = simtest_overlay(&cfg, NODES, 1000, 60 * 1000);
    unsigned killed = 0;
    while (killed < NODES / 4) {
        unsigned i = simtest_random_alive(sim);
        sim_kill(sim, i);
        killed++;
    }
    /* Right away: nobody has noticed yet. */
    unsigned ok = simtest_run_lookups(sim, LOOKUPS);
    fprintf(stderr, "lookups with %u of %u nodes dead: %u of %u found their target\n", killed,
            NODES, ok, LOOKUPS);
    assert_true(simtest_check(sim, ok * 100 >= LOOKUPS * 99, "at least 99 % of lookups succeed"));
    sim_free(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookups_with_quarter_dead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
