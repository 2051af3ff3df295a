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

#include "tests/node/harness.h"

#define RTT_SAMPLES 200

struct bnode {
    char dir[64];
    char sock[128];
    char log[128];
    char address[128];
    pid_t pid;
};

static struct bnode nodes[3];
static char config_path[96];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_messaging_real: %s\n", what);
    harness_kill_all(NULL);
    exit(1);
}

static json_t *call(struct bnode *n, const char *method, const char *params)
{
    char line[4096];
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

static json_int_t status_num(struct bnode *n, const char *section, const char *name)
{
    json_t *s = call(n, "status", "{}");
    json_int_t v = json_integer_value(
        json_object_get(json_object_get(json_object_get(s, "result"), section), name));
    json_decref(s);
    return v;
}

static void make(struct bnode *n)
{
    char dir[64];
    harness_tempdir(dir, sizeof(dir));
    snprintf(n->dir, sizeof(n->dir), "%s", dir);
    snprintf(n->sock, sizeof(n->sock), "%s/control.sock", dir);
    snprintf(n->log, sizeof(n->log), "%s.log", dir);
    struct run_result r = harness_run(NULL, (const char *const[]){"init", "--data-dir", dir, NULL});
    if (r.status != 0)
        die("init failed");
    snprintf(n->address, sizeof(n->address), "%.*s", (int)strcspn(r.out, "\n"), r.out);
    harness_result_free(&r);
}

static void spawn(struct bnode *n, const char *bootstrap)
{
    const char *const args[] = {"--data-dir", n->dir,      "run",      "--port",    "0",
                                "--listen",   "127.0.0.1", "--config", config_path,
                                bootstrap ? "--bootstrap" : NULL, bootstrap, NULL};
    n->pid = harness_spawn(n->log, args);
    if (n->pid <= 0)
        die("cannot start a node");
}

static void add_contact(struct bnode *n, struct bnode *other)
{
    char params[256];
    snprintf(params, sizeof(params), "{\"address\":\"%s\"}", other->address);
    json_decref(call(n, "contacts.add", params));
}

static bool send_wait(struct bnode *from, struct bnode *to, const char *text, int wait_ms)
{
    char params[512];
    snprintf(params, sizeof(params), "{\"to\":\"%s\",\"text\":\"%s\",\"wait_ms\":%d}", to->address,
             text, wait_ms);
    json_t *r = call(from, "send", params);
    bool ok = json_object_get(r, "result") != NULL;
    json_decref(r);
    return ok;
}

/* Pipeline count sends of size-byte texts on one connection; seconds until all acked. */
static double throughput(struct bnode *from, struct bnode *to, int count, size_t size)
{
    char *text = malloc(size + 1);
    size_t line_cap = size + 512;
    char *line = malloc(line_cap);
    if (text == NULL || line == NULL)
        die("out of memory");
    memset(text, 'x', size);
    text[size] = '\0';
    json_int_t acked0 = status_num(from, "messages", "acked");
    int fd = harness_connect(from->sock);
    double t0 = now_ms();
    for (int i = 0; i < count; i++) {
        int len = snprintf(line, line_cap,
                           "{\"jsonrpc\":\"2.0\",\"method\":\"send\",\"params\":{\"to\":\"%s\","
                           "\"text\":\"%s\"},\"id\":%d}\n",
                           to->address, text, i);
        if (send(fd, line, (size_t)len, MSG_NOSIGNAL) != len)
            die("send failed");
        /* Read replies as they come so neither side's buffers fill. */
        if (i % 64 == 63) {
            for (int k = 0; k < 64; k++) {
                char *reply = harness_exchange(fd, "", 0);
                if (reply == NULL)
                    die("a send got no reply");
                free(reply);
            }
        }
    }
    for (int k = 0; k < count % 64; k++)
        free(harness_exchange(fd, "", 0));
    close(fd);
    while (status_num(from, "messages", "acked") - acked0 < count) {
        if (now_ms() - t0 > 300000)
            die("messages not acked within 300 s");
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000000L};
        nanosleep(&pause, NULL);
    }
    double s = (now_ms() - t0) / 1000.0;
    free(text);
    free(line);
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
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
    const char *env = getenv("MERPATI_BENCH_MSGS");
    int msgs = env != NULL && strtol(env, NULL, 10) > 0 ? (int)strtol(env, NULL, 10) : 2000;
    env = getenv("MERPATI_BENCH_IDLE_S");
    int idle_s = env != NULL && strtol(env, NULL, 10) > 0 ? (int)strtol(env, NULL, 10) : 20;

    snprintf(config_path, sizeof(config_path), "/tmp/mp-bench-msg-%ld.conf", (long)getpid());
    FILE *f = fopen(config_path, "w");
    if (f == NULL)
        die("cannot write the config");
    fputs("dht_ip_limit = 0;\ndht_rate_limit = 0;\nlog_level = \"warn\";\n", f);
    fclose(f);
    for (int i = 0; i < 3; i++)
        make(&nodes[i]);
    struct bnode *boot = &nodes[0], *a = &nodes[1], *b = &nodes[2];
    spawn(boot, NULL);
    if (!harness_wait_socket(boot->sock, 20000))
        die("the bootstrap node did not start");
    json_t *s = call(boot, "status", "{}");
    char bootstrap[160];
    snprintf(bootstrap, sizeof(bootstrap), "%s",
             json_string_value(json_object_get(
                 json_object_get(json_object_get(s, "result"), "dht"), "bootstrap")));
    json_decref(s);

    /* Two fresh nodes start; time until a's first message to b is delivered. */
    double t0 = now_ms();
    spawn(a, bootstrap);
    spawn(b, bootstrap);
    if (!harness_wait_socket(a->sock, 20000) || !harness_wait_socket(b->sock, 20000))
        die("a node did not start");
    add_contact(a, b);
    add_contact(b, a);
    if (!send_wait(a, b, "first", 60000))
        die("the first message was not delivered within 60 s");
    printf("fresh_pair_first_delivery_s %.3f s\n", (now_ms() - t0) / 1000.0);
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
        double t = now_ms();
        if (!send_wait(a, b, text, 10000))
            die("a round trip did not complete");
        rtt[i] = now_ms() - t;
    }
    qsort(rtt, RTT_SAMPLES, sizeof(rtt[0]), cmp_double);
    printf("rtt_64B_p50_ms %.3f ms\n", rtt[RTT_SAMPLES / 2]);
    printf("rtt_64B_p99_ms %.3f ms\n", rtt[RTT_SAMPLES * 99 / 100]);
    fflush(stdout);

    /* Idle: the pair is connected and has nothing to say. Start-up is over
     * first (joining's second round at 30 s, the early publications). */
    sleep(30);
    json_int_t d0 = status_num(a, "dht", "rx") + status_num(a, "dht", "tx") +
                    status_num(b, "dht", "rx") + status_num(b, "dht", "tx");
    double i0 = now_ms();
    sleep((unsigned)idle_s);
    json_int_t d1 = status_num(a, "dht", "rx") + status_num(a, "dht", "tx") +
                    status_num(b, "dht", "rx") + status_num(b, "dht", "tx");
    double elapsed = (now_ms() - i0) / 1000.0;
    /* Each node's datagrams in and out, for the pair: per node, per second. */
    printf("idle_pair_datagrams_per_s %.3f datagrams/s\n", (double)(d1 - d0) / 2.0 / 2.0 / elapsed);
    printf("idle_rss_kib %ld KiB\n", rss_kib(a->pid));

    for (int i = 0; i < 3; i++) {
        kill(nodes[i].pid, SIGTERM);
        harness_wait(nodes[i].pid, 20000);
        harness_rmtree(nodes[i].dir);
        unlink(nodes[i].log);
    }
    unlink(config_path);
    return 0;
}
