/*
 * bench_dht_sim: DHT figures from the deterministic simulator, one
 * "name value unit" line each (scripts/bench dht).
 *
 *   sim1k_join_pct        1,000 nodes join through one bootstrap node within
 *                         one virtual second; % in the overlay a minute later
 *                         (>= k peers, in someone's table, found by a lookup)
 *   sim10k_*              10,000 nodes joined through one node within 10
 *                         virtual seconds: lookup rounds and RPCs (p50, p99),
 *                         success with 0 % and 25 % of nodes dead, idle
 *                         maintenance traffic, memory per node
 *
 * Options: --nodes N (default 10000), --lookups N (default 1000). The seed
 * comes from MERPATI_TEST_SEED (default 42). Progress goes to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/sim/simtest.h"
#include "tests/support/test_env.h"

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_unsigned(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

static unsigned pct(unsigned *v, size_t n, unsigned p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_unsigned);
    size_t i = (n * p + 99) / 100;
    return v[i > 0 ? i - 1 : 0];
}

static double join_pct(struct sim *sim)
{
    unsigned n = sim_count(sim), ok = 0;
    unsigned *known_by = calloc(n, sizeof(*known_by));
    unsigned *peers_n = calloc(n, sizeof(*peers_n));
    struct dht_peer *peers = calloc(1024, sizeof(*peers));
    if (known_by == NULL || peers_n == NULL || peers == NULL)
        abort();
    for (unsigned i = 0; i < n; i++) {
        size_t c = dht_peers(sim_dht(sim, i), peers, 1024);
        peers_n[i] = (unsigned)c;
        for (size_t j = 0; j < c; j++) {
            int k = sim_find_id(sim, peers[j].id);
            if (k >= 0 && (unsigned)k != i)
                known_by[k]++;
        }
    }
    bool *found = calloc(n, sizeof(*found));
    if (found == NULL)
        abort();
    simtest_find_all(sim, 100, found);
    for (unsigned i = 0; i < n; i++)
        ok += peers_n[i] >= DHT_K && known_by[i] > 0 && found[i];
    free(found);
    free(known_by);
    free(peers_n);
    free(peers);
    return 100.0 * ok / n;
}

struct lookup_figures {
    double success_pct;
    unsigned rounds_p50, rounds_p99, rpcs_p50, rpcs_p99;
};

/* Lookups run BATCH at a time, so their waits share virtual time (the
 * network's background traffic is simulated once for the batch). */
#define BATCH 100

static struct lookup_figures run_lookups(struct sim *sim, unsigned count)
{
    struct lookup_figures f = {0};
    unsigned *rounds = calloc(count, sizeof(*rounds));
    unsigned *rpcs = calloc(count, sizeof(*rpcs));
    struct simtest_result *res = calloc(BATCH, sizeof(*res));
    unsigned *targets = calloc(BATCH, sizeof(*targets));
    unsigned ok = 0;
    if (rounds == NULL || rpcs == NULL || res == NULL || targets == NULL)
        abort();
    for (unsigned done = 0; done < count;) {
        unsigned n = count - done < BATCH ? count - done : BATCH;
        for (unsigned i = 0; i < n; i++) {
            unsigned from = simtest_random_alive(sim);
            do {
                targets[i] = simtest_random_alive(sim);
            } while (targets[i] == from);
            simtest_start_lookup(sim, from, dht_id(sim_dht(sim, targets[i])), &res[i]);
        }
        simtest_wait(sim, res, n);
        for (unsigned i = 0; i < n; i++) {
            ok += res[i].status == MP_OK && res[i].count > 0 &&
                  memcmp(res[i].nodes[0].id, dht_id(sim_dht(sim, targets[i])), DHT_ID_BYTES) == 0;
            rounds[done + i] = res[i].info.rounds;
            rpcs[done + i] = res[i].info.rpcs;
        }
        done += n;
    }
    f.success_pct = 100.0 * ok / count;
    f.rounds_p50 = pct(rounds, count, 50);
    f.rounds_p99 = pct(rounds, count, 99);
    f.rpcs_p50 = pct(rpcs, count, 50);
    f.rpcs_p99 = pct(rpcs, count, 99);
    free(rounds);
    free(rpcs);
    free(res);
    free(targets);
    return f;
}

int main(int argc, char **argv)
{
    unsigned nodes = 10000, lookups = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = strtol(argv[i + 1], NULL, 10);
        if (v < 10 || v > 1000000) {
            fprintf(stderr, "bench_dht_sim: bad value %s\n", argv[i + 1]);
            return 64;
        }
        if (strcmp(argv[i], "--nodes") == 0)
            nodes = (unsigned)v;
        else if (strcmp(argv[i], "--lookups") == 0)
            lookups = (unsigned)v;
    }
    uint64_t seed = test_env_seed(42);
    struct sim_config cfg;
    sim_config_default(&cfg, seed);
    double t0 = wall();

    /* 1,000 nodes, one bootstrap node, one virtual second. */
    struct sim *sim = simtest_overlay(&cfg, 1000, 1000, 60 * 1000);
    printf("sim1k_join_pct %.1f %%\n", join_pct(sim));
    fflush(stdout);
    sim_free(sim);
    fprintf(stderr, "[%.0f s] 1k join done\n", wall() - t0);

    /* The big overlay. */
    uint64_t window = 10 * 1000;
    sim = simtest_overlay(&cfg, nodes, window, 60 * 1000);
    uint64_t joined_at = sim_now(sim);
    fprintf(stderr, "[%.0f s] %u nodes joined\n", wall() - t0, nodes);

    /* Idle maintenance: a bucket's first refresh falls uniformly in the
     * first 15 minutes after joining, later ones 7.5 to 22.5 minutes after
     * the one before, so the rate is near its long-run average from the
     * start. Count every datagram sent in one idle minute from minute 10
     * (when the traffic of the joins is long over). */
    sim_run_until(sim, joined_at + 10 * 60 * 1000);
    uint64_t sent0 = sim_sent(sim);
    sim_run_for(sim, 60 * 1000);
    double idle = (double)(sim_sent(sim) - sent0) / nodes;
    fprintf(stderr, "[%.0f s] idle window done\n", wall() - t0);
    {
        uint64_t x = 0, rpcs = 0;
        for (unsigned i = 0; i < nodes; i++) {
            struct dht_stats st;
            dht_get_stats(sim_dht(sim, i), &st);
            x += st.x25519;
            rpcs += st.rpcs_out;
        }
        fprintf(stderr, "so far: %llu X25519, %llu requests, %llu datagrams\n",
                (unsigned long long)x, (unsigned long long)rpcs,
                (unsigned long long)sim_sent(sim));
    }

    size_t mem = 0;
    for (unsigned i = 0; i < nodes; i++)
        mem += dht_memory(sim_dht(sim, i));

    struct lookup_figures live = run_lookups(sim, lookups);
    fprintf(stderr, "[%.0f s] lookups done\n", wall() - t0);
    for (unsigned killed = 0; killed < nodes / 4; killed++)
        sim_kill(sim, simtest_random_alive(sim));
    struct lookup_figures dead = run_lookups(sim, lookups);
    fprintf(stderr, "[%.0f s] lookups with 25 %% dead done\n", wall() - t0);

    printf("sim10k_lookup_rounds_p50 %u rounds\n", live.rounds_p50);
    printf("sim10k_lookup_rounds_p99 %u rounds\n", live.rounds_p99);
    printf("sim10k_lookup_rpcs_p50 %u rpcs\n", live.rpcs_p50);
    printf("sim10k_lookup_rpcs_p99 %u rpcs\n", live.rpcs_p99);
    printf("sim10k_success_pct_0dead %.1f %%\n", live.success_pct);
    printf("sim10k_success_pct_25dead %.1f %%\n", dead.success_pct);
    printf("sim10k_lookup_rpcs_p50_25dead %u rpcs\n", dead.rpcs_p50);
    printf("sim10k_idle_datagrams_per_node_per_min %.1f datagrams\n", idle);
    printf("sim10k_memory_per_node %.1f KiB\n", (double)mem / nodes / 1024.0);
    sim_free(sim);
    fprintf(stderr, "[%.0f s] done (%u nodes, %u lookups)\n", wall() - t0, nodes, lookups);
    return 0;
}
