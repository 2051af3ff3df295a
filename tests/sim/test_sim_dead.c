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

static unsigned run_lookups(struct sim *sim, unsigned count)
{
    /* In batches of 50 that share virtual time. */
    struct simtest_result r[50];
    unsigned targets[50], ok = 0;
    for (unsigned done = 0; done < count;) {
        unsigned n = count - done < 50 ? count - done : 50;
        for (unsigned i = 0; i < n; i++) {
            unsigned from = simtest_random_alive(sim);
            do {
                targets[i] = simtest_random_alive(sim);
            } while (targets[i] == from);
            simtest_start_lookup(sim, from, dht_id(sim_dht(sim, targets[i])), &r[i]);
        }
        simtest_wait(sim, r, n);
        for (unsigned i = 0; i < n; i++) {
            if (r[i].status == MP_OK && r[i].count > 0 &&
                memcmp(r[i].nodes[0].id, dht_id(sim_dht(sim, targets[i])), DHT_ID_BYTES) == 0)
                ok++;
            else
                fprintf(stderr, "lookup for node %u missed: status %d, %zu answers, %u rpcs, %u timeouts\n",
                        targets[i], r[i].status, r[i].count, r[i].info.rpcs, r[i].info.timeouts);
        }
        done += n;
    }
    return ok;
}

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
    unsigned ok = run_lookups(sim, LOOKUPS);
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
