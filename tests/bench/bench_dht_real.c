/*
 * bench_dht_real: DHT figures from 20 real `merpati run` processes on
 * loopback. Prints "name value unit" lines:
 *   real20_idle_datagrams_per_s_per_node  datagrams sent + received per node
 *                                         per second over an idle minute
 *   real20_lookup_ms_p50 / _p99           dht.get latency through the control API
 * The idle window is BENCH_IDLE_S seconds (env MERPATI_BENCH_IDLE_S overrides).
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/bench/bench_nodes.h"
#include "tests/node/harness.h"

#define NODES 20
#define BENCH_IDLE_S 60
#define LOOKUPS 200

static struct bench_node nodes[NODES];
static char config_path[96];

static json_t *dht_status(struct bench_node *n)
{
    json_t *s = bench_call(n, "status", "{}");
    json_t *dht = json_incref(json_object_get(json_object_get(s, "result"), "dht"));
    json_decref(s);
    if (dht == NULL)
        bench_die("status has no dht");
    return dht;
}

int main(void)
{
    bench_init("bench_dht_real");
    const char *idle_env = getenv("MERPATI_BENCH_IDLE_S");
    int idle_s = idle_env != NULL ? (int)strtol(idle_env, NULL, 10) : BENCH_IDLE_S;
    if (idle_s <= 0)
        idle_s = BENCH_IDLE_S;

    snprintf(config_path, sizeof(config_path), "/tmp/mp-bench-dht-%ld.conf", (long)getpid());
    FILE *f = fopen(config_path, "w");
    if (f == NULL)
        bench_die("cannot write the config");
    fputs("dht_ip_limit = 0;\ndht_rate_limit = 0;\n", f);
    fclose(f);

    for (int i = 0; i < NODES; i++)
        bench_node_init(&nodes[i]);
    bench_node_start(&nodes[0], config_path, NULL);
    char bootstrap[160];
    bench_bootstrap_entry(&nodes[0], bootstrap, sizeof(bootstrap));
    for (int i = 1; i < NODES; i++)
        bench_node_start(&nodes[i], config_path, bootstrap);

    /* Publish one note per node, then let start-up settle: joining (and its
     * second round at 30 s) and messaging's early presence publications
     * (1, 3, 10 and 30 s after start) are not idle traffic. */
    sleep(5);
    for (int i = 0; i < NODES; i++) {
        json_t *r = bench_call(&nodes[i], "dht.put", "{\"payload\":\"00\"}");
        json_decref(r);
    }
    sleep(40);

    /* Idle: count datagrams in and out across all nodes over the window. */
    double before = 0, after = 0;
    for (int i = 0; i < NODES; i++) {
        json_t *d = dht_status(&nodes[i]);
        before += (double)(json_integer_value(json_object_get(d, "rx")) +
                           json_integer_value(json_object_get(d, "tx")));
        json_decref(d);
    }
    double t0 = bench_now_ms();
    sleep((unsigned)idle_s);
    double elapsed_s = (bench_now_ms() - t0) / 1000.0;
    for (int i = 0; i < NODES; i++) {
        json_t *d = dht_status(&nodes[i]);
        after += (double)(json_integer_value(json_object_get(d, "rx")) +
                          json_integer_value(json_object_get(d, "tx")));
        json_decref(d);
    }
    /* Each datagram is counted twice (sent by one node, received by another). */
    printf("real20_idle_datagrams_per_s_per_node %.3f datagrams/s\n",
           (after - before) / 2.0 / NODES / elapsed_s);

    /* Lookups: dht.get of random nodes' records from random nodes. */
    double ms[LOOKUPS];
    srand(1);
    for (int i = 0; i < LOOKUPS; i++) {
        struct bench_node *from = &nodes[rand() % NODES];
        struct bench_node *owner = &nodes[rand() % NODES];
        char params[256];
        snprintf(params, sizeof(params), "{\"kind\":\"note\",\"owner\":\"%s\"}", owner->address);
        double t = bench_now_ms();
        json_t *r = bench_call(from, "dht.get", params);
        ms[i] = bench_now_ms() - t;
        if (json_object_get(r, "result") == NULL)
            bench_die("a lookup failed");
        json_decref(r);
    }
    qsort(ms, LOOKUPS, sizeof(ms[0]), bench_cmp_double);
    printf("real20_lookup_ms_p50 %.3f ms\n", ms[LOOKUPS / 2]);
    printf("real20_lookup_ms_p99 %.3f ms\n", ms[LOOKUPS * 99 / 100]);

    for (int i = 0; i < NODES; i++)
        bench_node_stop(&nodes[i]);
    unlink(config_path);
    return 0;
}
