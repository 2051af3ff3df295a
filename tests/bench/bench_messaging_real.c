/*
 * bench_messaging_real: direct delivery between two real nodes on loopback
 * (bootstrapped off a third). Prints "name value unit" lines:
 *   fresh_pair_first_delivery_s   two fresh nodes start -> first message delivered (receipt back)
 *   throughput_32B_msgs_per_s     pipelined `send` calls -> all acked (stored, synced, at the
 *   throughput_1372B_msgs_per_s   recipient), through the control API on one connection
 *   rtt_64B_p50_ms, rtt_64B_p99_ms  `send` with wait: message out, receipt back
 *   idle_pair_datagrams_per_s     DHT datagrams of the pair while idle, per second
 *   idle_rss_kib                  resident memory of one idle node
 * MERPATI_BENCH_MSGS (default 2000) and MERPATI_BENCH_IDLE_S (default 20) size the runs.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/bench/bench_nodes.h"
#include "tests/node/harness.h"

#define RTT_SAMPLES 200

static struct bench_node nodes[3];
static char config_path[96];

static json_int_t status_num(struct bench_node *n, const char *section, const char *name)
{
    json_t *s = bench_call(n, "status", "{}");
    json_int_t v = json_integer_value(
        json_object_get(json_object_get(json_object_get(s, "result"), section), name));
    json_decref(s);
    return v;
}

static void add_contact(struct bench_node *n, struct bench_node *other)
{
    char params[256];
    snprintf(params, sizeof(params), "{\"address\":\"%s\"}", other->address);
    json_decref(bench_call(n, "contacts.add", params));
}

static bool send_wait(struct bench_node *from, struct bench_node *to, const char *text, int wait_ms)
{
    char params[512];
    snprintf(params, sizeof(params), "{\"to\":\"%s\",\"text\":\"%s\",\"wait_ms\":%d}", to->address,
             text, wait_ms);
    json_t *r = bench_call(from, "send", params);
    bool ok = json_object_get(r, "result") != NULL;
    json_decref(r);
    return ok;
}

/* Pipeline count sends of size-byte texts on one connection; seconds until all acked. */
static double throughput(struct bench_node *from, struct bench_node *to, int count, size_t size)
{
    char *text = malloc(size + 1);
    size_t line_cap = size + 512;
    char *line = malloc(line_cap);
    if (text == NULL || line == NULL)
        bench_die("out of memory");
    memset(text, 'x', size);
    text[size] = '\0';
    json_int_t acked0 = status_num(from, "messages", "acked");
    int fd = harness_connect(from->sock);
    double t0 = bench_now_ms();
    for (int i = 0; i < count; i++) {
        int len = snprintf(line, line_cap,
                           "{\"jsonrpc\":\"2.0\",\"method\":\"send\",\"params\":{\"to\":\"%s\","
                           "\"text\":\"%s\"},\"id\":%d}\n",
                           to->address, text, i);
        if (send(fd, line, (size_t)len, MSG_NOSIGNAL) != len)
            bench_die("send failed");
        /* Read replies as they come so neither side's buffers fill. */
        if (i % 64 == 63) {
            for (int k = 0; k < 64; k++) {
                char *reply = harness_exchange(fd, "", 0);
                if (reply == NULL)
                    bench_die("a send got no reply");
                free(reply);
            }
        }
    }
    for (int k = 0; k < count % 64; k++)
        free(harness_exchange(fd, "", 0));
    close(fd);
    while (status_num(from, "messages", "acked") - acked0 < count) {
        if (bench_now_ms() - t0 > 300000)
            bench_die("messages not acked within 300 s");
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000000L};
        nanosleep(&pause, NULL);
    }
    double s = (bench_now_ms() - t0) / 1000.0;
    free(text);
    free(line);
    return s;
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    }
    if (f != NULL)
        fclose(f);
    return kib;
}

int main(void)
{
    bench_init("bench_messaging_real");
    const char *env = getenv("MERPATI_BENCH_MSGS");
    int msgs = env != NULL && strtol(env, NULL, 10) > 0 ? (int)strtol(env, NULL, 10) : 2000;
    env = getenv("MERPATI_BENCH_IDLE_S");
    int idle_s = env != NULL && strtol(env, NULL, 10) > 0 ? (int)strtol(env, NULL, 10) : 20;

    snprintf(config_path, sizeof(config_path), "/tmp/mp-bench-msg-%ld.conf", (long)getpid());
    FILE *f = fopen(config_path, "w");
    if (f == NULL)
        bench_die("cannot write the config");
    fputs("dht_ip_limit = 0;\ndht_rate_limit = 0;\nlog_level = \"warn\";\n", f);
    fclose(f);
    for (int i = 0; i < 3; i++)
        bench_node_init(&nodes[i]);
    struct bench_node *boot = &nodes[0], *a = &nodes[1], *b = &nodes[2];
    bench_node_start(boot, config_path, NULL);
    json_t *s = bench_call(boot, "status", "{}");
    char bootstrap[160];
    snprintf(bootstrap, sizeof(bootstrap), "%s",
             json_string_value(json_object_get(
                 json_object_get(json_object_get(s, "result"), "dht"), "bootstrap")));
    json_decref(s);

    /* Two fresh nodes start; time until a's first message to b is delivered. */
    double t0 = bench_now_ms();
    bench_node_start(a, config_path, bootstrap);
    bench_node_start(b, config_path, bootstrap);
    add_contact(a, b);
    add_contact(b, a);
    if (!send_wait(a, b, "first", 60000))
        bench_die("the first message was not delivered within 60 s");
    printf("fresh_pair_first_delivery_s %.3f s\n", (bench_now_ms() - t0) / 1000.0);
    fflush(stdout);

    double secs = throughput(a, b, msgs, 32);
    printf("throughput_32B_msgs_per_s %.0f msgs/s\n", msgs / secs);
    fflush(stdout);
    secs = throughput(a, b, msgs / 2, 1372);
    printf("throughput_1372B_msgs_per_s %.0f msgs/s\n", (msgs / 2) / secs);
    fflush(stdout);

    double rtt[RTT_SAMPLES];
    char text[65];
    memset(text, 'r', 64);
    text[64] = '\0';
    for (int i = 0; i < RTT_SAMPLES; i++) {
        double t = bench_now_ms();
        if (!send_wait(a, b, text, 10000))
            bench_die("a round trip did not complete");
        rtt[i] = bench_now_ms() - t;
    }
    qsort(rtt, RTT_SAMPLES, sizeof(rtt[0]), bench_cmp_double);
    printf("rtt_64B_p50_ms %.3f ms\n", rtt[RTT_SAMPLES / 2]);
    printf("rtt_64B_p99_ms %.3f ms\n", rtt[RTT_SAMPLES * 99 / 100]);
    fflush(stdout);

    /* Idle: the pair is connected and has nothing to say. Start-up is over
     * first (joining's second round at 30 s, the early publications). */
    sleep(30);
    json_int_t d0 = status_num(a, "dht", "rx") + status_num(a, "dht", "tx") +
                    status_num(b, "dht", "rx") + status_num(b, "dht", "tx");
    double i0 = bench_now_ms();
    sleep((unsigned)idle_s);
    json_int_t d1 = status_num(a, "dht", "rx") + status_num(a, "dht", "tx") +
                    status_num(b, "dht", "rx") + status_num(b, "dht", "tx");
    double elapsed = (bench_now_ms() - i0) / 1000.0;
    /* Each node's datagrams in and out, for the pair: per node, per second. */
    printf("idle_pair_datagrams_per_s %.3f datagrams/s\n", (double)(d1 - d0) / 2.0 / 2.0 / elapsed);
    printf("idle_rss_kib %ld KiB\n", rss_kib(a->pid));

    for (int i = 0; i < 3; i++)
        bench_node_stop(&nodes[i]);
    unlink(config_path);
    return 0;
}
