/* Simulator: the overlay under a lossy network, across a partition that
 * heals, and a private cluster that outsiders cannot enter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tests/sim/simtest.h"
#include "tests/support/test_env.h"

#define NODES 300
#define LOOKUPS 300

static void test_lookups_with_ten_percent_loss(void **state)
{
    (void)state;
    struct sim_config cfg;
    sim_config_default(&cfg, test_env_seed(4));
    cfg.loss = 0.10; /* from the first datagram on, joins included */
    struct sim *sim = simtest_overlay(&cfg, NODES, 1000, 60 * 1000);
    unsigned ok = simtest_run_lookups(sim, LOOKUPS);
    fprintf(stderr, "lookups at 10 %% loss: %u of %u found their target (%llu of %llu lost)\n",
            ok, LOOKUPS, (unsigned long long)sim_lost(sim), (unsigned long long)sim_sent(sim));
    assert_true(simtest_check(sim, sim_lost(sim) * 100 >= sim_sent(sim) * 9, "loss happened"));
    assert_true(simtest_check(sim, ok * 100 >= LOOKUPS * 99, "lookups still succeed"));
    sim_free(sim);
}

static void test_partition_heals(void **state)
{
    (void)state;
    struct sim_config cfg;
    sim_config_default(&cfg, test_env_seed(5));
    struct sim *sim = simtest_overlay(&cfg, NODES, 1000, 60 * 1000);
    /* Odd nodes in group 1, even nodes in group 0, for five minutes. */
    for (unsigned i = 1; i < NODES; i += 2)
        sim_set_group(sim, i, 1);
    struct simtest_result r;
    unsigned across = 0;
    for (unsigned i = 0; i < 20; i++)
        across += simtest_finds(sim, 2 * i, 2 * i + 1, &r);
    assert_true(simtest_check(sim, across == 0, "no lookup crosses the partition"));
    sim_run_for(sim, 5 * 60 * 1000);
    for (unsigned i = 1; i < NODES; i += 2)
        sim_set_group(sim, i, 0);
    /* Healed: within the refresh period the halves find each other again. */
    sim_run_for(sim, 20 * 60 * 1000);
    across = 0;
    for (unsigned i = 0; i < 50; i++)
        across += simtest_finds(sim, 2 * i, 2 * i + 51, &r);
    fprintf(stderr, "after healing: %u of 50 lookups across the old partition succeed\n", across);
    assert_true(simtest_check(sim, across == 50, "lookups cross the healed partition"));
    sim_free(sim);
}

static void test_private_cluster_keeps_outsiders_out(void **state)
{
    (void)state;
    struct sim_config cfg;
    sim_config_default(&cfg, test_env_seed(6));
    uint8_t secret[BOX_NETWORK_KEY_BYTES];
    memset(secret, 0x5a, sizeof(secret));
    cfg.dht.network_key = secret;
    struct sim *sim = simtest_overlay(&cfg, 40, 1000, 30 * 1000);
    /* An outsider on the public network tries to join through a member. */
    struct dht_config pub = cfg.dht;
    pub.network_key = NULL;
    unsigned out = sim_add_node_config(sim, &pub);
    sim_join_at(sim, out, 0, sim_now(sim));
    sim_run_for(sim, 60 * 1000);
    struct dht_stats st;
    dht_get_stats(sim_dht(sim, out), &st);
    assert_int_equal(st.table_size, 0);
    dht_get_stats(sim_dht(sim, 0), &st);
    assert_true(st.drops[DHT_DROP_AUTH] > 0);
    /* Members still see each other. */
    struct simtest_result r;
    assert_true(simtest_check(sim, simtest_finds(sim, 1, 39, &r), "members find each other"));
    sim_free(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookups_with_ten_percent_loss),
        cmocka_unit_test(test_partition_heals),
        cmocka_unit_test(test_private_cluster_keeps_outsiders_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
