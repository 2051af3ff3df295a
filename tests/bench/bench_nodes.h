/*
 * bench_nodes: what the real-process benchmarks share: a node (temp data
 * dir, socket, log, pid), starting it, calling its control API, a clock and
 * a way to give up. A benchmark that cannot measure prints why on stderr and
 * exits 1 (after killing its nodes): it never prints a made-up figure.
 */
#ifndef MP_TESTS_BENCH_NODES_H
#define MP_TESTS_BENCH_NODES_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

struct bench_node {
    char dir[64];
    char sock[128];
    char log[128];
    char address[128];
    pid_t pid;
};

/* Name used in messages ("bench_dht_real: ..."). */
void bench_init(const char *name);

/* Milliseconds on a monotonic clock. */
double bench_now_ms(void);

/* Print why, kill every node started, exit 1. */
void bench_die(const char *why) __attribute__((noreturn));

/* A fresh data dir with `merpati init`. */
void bench_node_init(struct bench_node *n);

/* `merpati run` on 127.0.0.1 port 0 with config_path and an optional bootstrap
 * entry; returns once its control socket answers. */
void bench_node_start(struct bench_node *n, const char *config_path, const char *bootstrap);

/* One JSON-RPC call; the whole reply, parsed (dies if there is none). */
json_t *bench_call(struct bench_node *n, const char *method, const char *params);

/* A number from n's status: result.section.name (0 when absent). */
json_int_t bench_status_num(struct bench_node *n, const char *section, const char *name);

/* n's bootstrap entry for other nodes (status dht.bootstrap) into out. */
void bench_bootstrap_entry(struct bench_node *n, char *out, size_t size);

/* SIGTERM, wait, remove the data dir and log. */
void bench_node_stop(struct bench_node *n);

/* qsort comparator for doubles. */
int bench_cmp_double(const void *a, const void *b);

/* Texts of size bytes one send.batch call carries in the benchmarks: as many
 * as a request line of BENCH_LINE_BUDGET bytes holds, at most BENCH_BATCH_MAX. */
#define BENCH_LINE_BUDGET (1024 * 1024 - 512) /* request lines are capped at 1 MiB (RPC_LINE_MAX) */
#define BENCH_BATCH_MAX   1024                /* DELIVERY_SEND_BATCH_MAX */
int bench_batch_for(size_t size);

#endif
