/* Simulator: 1,000 nodes join through one bootstrap node within one virtual
 * second, and every one of them ends up in the overlay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tests/sim/simtest.h"
#include "tests/support/test_env.h"

#define JOIN_NODES 1000

static unsigned known_by[JOIN_NODES];
static bool found[JOIN_NODES];

static void test_thousand_nodes_join_through_one(void **state)
{
    (void)state;
    struct sim_config cfg;
    sim_config_default(&cfg, test_env_seed(1));
    /* All joins within one virtual second, then one virtual minute to settle. */
    struct sim *sim = simtest_overlay(&cfg, JOIN_NODES, 1000, 60 * 1000);

    /* "In the overlay" = the node has at least k peers, sits in at least one
     * other node's table, and a lookup for its id from another random node
     * returns it first. */
    unsigned small_tables = 0, unknown = 0, not_found = 0, in_overlay = 0;
    memset(known_by, 0, sizeof(known_by));
    for (unsigned i = 0; i < JOIN_NODES; i++) {
        struct dht_peer peers[512];
        size_t n = dht_peers(sim_dht(sim, i), peers, 512);
        small_tables += n < DHT_K;
        for (size_t j = 0; j < n; j++) {
            int k = sim_find_id(sim, peers[j].id);
            if (k >= 0 && (unsigned)k != i)
                known_by[k]++;
        }
    }
    simtest_find_all(sim, 100, found);
    for (unsigned i = 0; i < JOIN_NODES; i++) {
        unknown += known_by[i] == 0;
        not_found += !found[i];
        in_overlay += found[i] && known_by[i] > 0;
        if (!found[i])
            fprintf(stderr, "node %u not found by a lookup\n", i);
    }
    fprintf(stderr,
            "join: %u of %u nodes in the overlay (%u small tables, %u unknown, %u not found)\n",
            in_overlay, JOIN_NODES, small_tables, unknown, not_found);
    assert_true(simtest_check(sim, small_tables == 0, "every node has at least k peers"));
    assert_true(simtest_check(sim, unknown == 0, "every node is in someone's table"));
    assert_true(simtest_check(sim, not_found == 0, "every node is found by a lookup"));
    sim_free(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thousand_nodes_join_through_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
