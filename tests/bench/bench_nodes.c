#include "tests/bench/bench_nodes.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/node/harness.h"

static const char *bench_name = "bench";

void bench_init(const char *name)
{
    bench_name = name;
}

double bench_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

void bench_die(const char *why)
{
    fprintf(stderr, "%s: %s\n", bench_name, why);
    harness_kill_all(NULL);
    exit(1);
}

void bench_node_init(struct bench_node *n)
{
    char dir[64];
    harness_tempdir(dir, sizeof(dir));
    snprintf(n->dir, sizeof(n->dir), "%s", dir);
    snprintf(n->sock, sizeof(n->sock), "%s/control.sock", dir);
    snprintf(n->log, sizeof(n->log), "%s.log", dir);
    struct run_result r = harness_run(NULL, (const char *const[]){"init", "--data-dir", dir, NULL});
    if (r.status != 0)
        bench_die("merpati init failed");
    snprintf(n->address, sizeof(n->address), "%.*s", (int)strcspn(r.out, "\n"), r.out);
    harness_result_free(&r);
}

void bench_node_start(struct bench_node *n, const char *config_path, const char *bootstrap)
{
    const char *const args[] = {"--data-dir", n->dir,      "run",      "--port",    "0",
                                "--listen",   "127.0.0.1", "--config", config_path,
                                bootstrap ? "--bootstrap" : NULL, bootstrap, NULL};
    n->pid = harness_spawn(n->log, args);
    if (n->pid <= 0 || !harness_wait_socket(n->sock, 20000))
        bench_die("a node did not start");
}

json_t *bench_call(struct bench_node *n, const char *method, const char *params)
{
    char line[4096];
    int len = snprintf(line, sizeof(line),
                       "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":%s,\"id\":1}\n", method,
                       params);
    int fd = harness_connect(n->sock);
    if (fd < 0)
        bench_die("cannot connect to a node");
    char *reply = harness_exchange(fd, line, (size_t)len);
    close(fd);
    json_t *j = reply != NULL ? json_loads(reply, 0, NULL) : NULL;
    free(reply);
    if (j == NULL)
        bench_die("no reply from a node");
    return j;
}

json_int_t bench_status_num(struct bench_node *n, const char *section, const char *name)
{
    json_t *s = bench_call(n, "status", "{}");
    json_int_t v = json_integer_value(
        json_object_get(json_object_get(json_object_get(s, "result"), section), name));
    json_decref(s);
    return v;
}

void bench_bootstrap_entry(struct bench_node *n, char *out, size_t size)
{
    json_t *s = bench_call(n, "status", "{}");
    const char *entry = json_string_value(
        json_object_get(json_object_get(json_object_get(s, "result"), "dht"), "bootstrap"));
    if (entry == NULL)
        bench_die("a node has no bootstrap entry");
    snprintf(out, size, "%s", entry);
    json_decref(s);
}

void bench_node_stop(struct bench_node *n)
{
    kill(n->pid, SIGTERM);
    harness_wait(n->pid, 20000);
    harness_rmtree(n->dir);
    unlink(n->log);
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int bench_batch_for(size_t size)
{
    int k = (int)(BENCH_LINE_BUDGET / (size + 16));
    return k > BENCH_BATCH_MAX ? BENCH_BATCH_MAX : k;
}
