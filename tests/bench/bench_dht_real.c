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

#include "tests/node/harness.h"

#define NODES 20
#define BENCH_IDLE_S 60
#define LOOKUPS 200

struct bnode {
    char dir[64];
    char sock[128];
    char log[128];
    char address[128];
    pid_t pid;
};

static struct bnode nodes[NODES];
static char config_path[96];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_dht_real: %s\n", what);
    harness_kill_all(NULL);
    exit(1);
}

static json_t *call(struct bnode *n, const char *method, const char *params)
{
    char line[1024];
    int len = snprintf(line, sizeof(line),
                       "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":%s,\"id\":1}\n", method,
                       params);
    int fd = harness_connect(n->sock);
    if (fd < 0)
        die("cannot connect to a node");
    char *reply = harness_exchange(fd, line, (size_t)len);
    close(fd);
    json_t *j = reply != NULL ? json_loads(reply, 0, NULL) : NULL;
    free(reply);
    if (j == NULL)
        die("no reply from a node");
    return j;
}

static json_t *dht_status(struct bnode *n)
{
    json_t *s = call(n, "status", "{}");
    json_t *dht = json_incref(json_object_get(json_object_get(s, "result"), "dht"));
    json_decref(s);
    if (dht == NULL)
        die("status has no dht");
    return dht;
}

static void start(struct bnode *n, const char *bootstrap)
{
    const char *const base[] = {"--data-dir", n->dir,      "run",      "--port", "0",
                                "--listen",   "127.0.0.1", "--config", config_path,
                                bootstrap ? "--bootstrap" : NULL, bootstrap, NULL};
    n->pid = harness_spawn(n->log, base);
    if (n->pid <= 0 || !harness_wait_socket(n->sock, 20000) ||
        !harness_wait_log(n->log, " ready", 20000))
        die("a node did not start");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    const char *idle_env = getenv("MERPATI_BENCH_IDLE_S");
    int idle_s = idle_env != NULL ? (int)strtol(idle_env, NULL, 10) : BENCH_IDLE_S;
    if (idle_s <= 0)
        idle_s = BENCH_IDLE_S;

    snprintf(config_path, sizeof(config_path), "/tmp/mp-bench-dht-%ld.conf", (long)getpid());
    FILE *f = fopen(config_path, "w");
    if (f == NULL)
        die("cannot write the config");
    fputs("dht_ip_limit = 0;\ndht_rate_limit = 0;\n", f);
    fclose(f);

    for (int i = 0; i < NODES; i++) {
        struct bnode *n = &nodes[i];
        char dir[64];
        harness_tempdir(dir, sizeof(dir));
        snprintf(n->dir, sizeof(n->dir), "%s", dir);
        snprintf(n->sock, sizeof(n->sock), "%s/control.sock", dir);
        snprintf(n->log, sizeof(n->log), "%s.log", dir);
        struct run_result r =
            harness_run(NULL, (const char *const[]){"init", "--data-dir", n->dir, NULL});
        if (r.status != 0)
            die("init failed");
        snprintf(n->address, sizeof(n->address), "%.*s", (int)strcspn(r.out, "\n"), r.out);
        harness_result_free(&r);
    }
    start(&nodes[0], NULL);
    json_t *d0 = dht_status(&nodes[0]);
    char bootstrap[160];
    snprintf(bootstrap, sizeof(bootstrap), "%s", json_string_value(json_object_get(d0, "bootstrap")));
    json_decref(d0);
    for (int i = 1; i < NODES; i++)
        start(&nodes[i], bootstrap);

    /* Publish one note per node, then let start-up settle: joining (and its
     * second round at 30 s) and messaging's early presence publications
     * (1, 3, 10 and 30 s after start) are not idle traffic. */
    sleep(5);
    for (int i = 0; i < NODES; i++) {
        json_t *r = call(&nodes[i], "dht.put", "{\"payload\":\"00\"}");
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
    double t0 = now_ms();
    sleep((unsigned)idle_s);
    double elapsed_s = (now_ms() - t0) / 1000.0;
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
        struct bnode *from = &nodes[rand() % NODES];
        struct bnode *owner = &nodes[rand() % NODES];
        char params[256];
        snprintf(params, sizeof(params), "{\"kind\":\"note\",\"owner\":\"%s\"}", owner->address);
        double t = now_ms();
        json_t *r = call(from, "dht.get", params);
        ms[i] = now_ms() - t;
        if (json_object_get(r, "result") == NULL)
            die("a lookup failed");
        json_decref(r);
    }
    qsort(ms, LOOKUPS, sizeof(ms[0]), cmp_double);
    printf("real20_lookup_ms_p50 %.3f ms\n", ms[LOOKUPS / 2]);
    printf("real20_lookup_ms_p99 %.3f ms\n", ms[LOOKUPS * 99 / 100]);

    for (int i = 0; i < NODES; i++) {
        kill(nodes[i].pid, SIGTERM);
        harness_wait(nodes[i].pid, 20000);
        harness_rmtree(nodes[i].dir);
        unlink(nodes[i].log);
    }
    unlink(config_path);
    return 0;
}
