/*
 * bench_messaging_real: direct delivery between two real nodes on loopback
 * (bootstrapped off a third). Prints "name value unit" lines:
 *   fresh_pair_first_delivery_s   two fresh nodes start -> first message delivered (receipt back)
 *   throughput_32B_msgs_per_s     texts sent through the control API on one connection ->
 *   throughput_1372B_msgs_per_s   all acked (stored, synced, at the recipient); the faster
 *                                 of pipelined `send` calls (also printed as
 *                                 throughput_<n>B_send_msgs_per_s, on a quarter of the
 *                                 messages) and `send.batch` calls (..._send_batch_...:
 *                                 the median of 3 runs, with their min and max);
 *                                 throughput_<n>B_send_mode says which (msgs per call)
 *   throughput_<n>B_cpu_us_per_msg CPU time (user + system, all threads) of the two nodes
 *                                 per message over the send.batch runs: steadier than the
 *                                 rate on a shared machine
 *   throughput_<n>B_disk_bytes_per_msg bytes the two nodes had written to disk (write-ahead
 *                                 logs, flushes, compactions) per message over the same
 *                                 runs; flushes and compactions run in the background, so
 *                                 some of the last run's land after it (-1: the kernel
 *                                 does not say)
 *   rtt_64B_p50_ms, rtt_64B_p99_ms  `send` with wait on one open connection: message
 *                                 out, receipt back; RTT_SAMPLES of them, so that p99
 *                                 is the 20th slowest, not the 2nd, once the nodes have
 *                                 written nothing for a second (the runs above leave
 *                                 flushes and compactions behind)
 *   idle_pair_datagrams_per_s     DHT datagrams of the pair while idle, per second
 *   idle_rss_kib                  resident memory of one idle node
 * MERPATI_BENCH_MSGS (default 20000) and MERPATI_BENCH_IDLE_S (default 20) size the runs.
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

/* Round trips timed: 2,000 take about 2 s. */
#define RTT_SAMPLES 2000
/* The longest the nodes are given to finish writing before the round trips. */
#define SETTLE_MAX_MS 20000

static struct bench_node nodes[3];
static char config_path[96];

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

/* Replies read through a buffer, a line at a time (a program would not
 * read its socket a byte per call). */
struct reader {
    int fd;
    size_t off, len;
    char buf[64 * 1024];
};

/* The next reply line (NUL-terminated in place, valid until the next call);
 * dies if the connection closes or the reply is an error. */
static const char *read_reply(struct reader *r)
{
    for (;;) {
        char *nl = memchr(r->buf + r->off, '\n', r->len - r->off);
        if (nl != NULL) {
            const char *line = r->buf + r->off;
            *nl = '\0';
            r->off = (size_t)(nl - r->buf) + 1;
            if (strstr(line, "\"error\"") != NULL) {
                fprintf(stderr, "bench_messaging_real: %s\n", line);
                bench_die("a call failed");
            }
            return line;
        }
        if (r->off > 0) {
            memmove(r->buf, r->buf + r->off, r->len - r->off);
            r->len -= r->off;
            r->off = 0;
        }
        if (r->len == sizeof(r->buf))
            bench_die("a reply longer than the read buffer");
        ssize_t n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
        if (n <= 0)
            bench_die("a call got no reply");
        r->len += (size_t)n;
    }
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            bench_die("send failed");
        data += n;
        len -= (size_t)n;
    }
}

/* Requests in flight on the connection before reading replies. */
#define WINDOW_SINGLE 64
#define WINDOW_BATCH 8

/* One run: messages a second, the nodes' CPU seconds and disk writes. */
struct bench_run {
    double rate, cpu_s, disk_bytes;
};

/* CPU seconds (user + system, every thread) process pid has used. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    size_t n = f != NULL ? fread(text, 1, sizeof(text) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    text[n] = '\0';
    /* Fields after the command (in parentheses, which may hold spaces):
     * state is field 3, utime 14, stime 15. */
    const char *p = strrchr(text, ')');
    unsigned long utime = 0, stime = 0;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                            &stime) != 2)
        bench_die("cannot read a node's CPU time");
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* The number after "name:" in /proc/<pid>/<file>; -1 if there is none. */
static double proc_field(pid_t pid, const char *file, const char *name)
{
    char path[64], line[256];
    size_t name_len = strlen(name);
    double v = -1;
    snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, file);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, name, name_len) == 0 && line[name_len] == ':')
            v = strtod(line + name_len + 1, NULL);
    }
    if (f != NULL)
        fclose(f);
    return v;
}

/* Bytes the two nodes have had written to disk (write_bytes of
 * /proc/<pid>/io: what reached the block layer, theirs and their threads');
 * -1 if the kernel does not keep the count. */
static double disk_bytes(const struct bench_node *a, const struct bench_node *b)
{
    double x = proc_field(a->pid, "io", "write_bytes"), y = proc_field(b->pid, "io", "write_bytes");
    return x < 0 || y < 0 ? -1 : x + y;
}

/* Until neither node has written to disk for a second (their background
 * flushes and compactions are done), at most SETTLE_MAX_MS. */
static void settle(const struct bench_node *a, const struct bench_node *b)
{
    double start = bench_now_ms(), quiet_since = start, last = disk_bytes(a, b);
    while (bench_now_ms() - quiet_since < 1000 && bench_now_ms() - start < SETTLE_MAX_MS) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 100000000L};
        nanosleep(&pause, NULL);
        double now = disk_bytes(a, b);
        if (now != last)
            quiet_since = bench_now_ms();
        last = now;
    }
}

/* Send count size-byte texts through the control API on one connection,
 * batch messages a call (1: `send`, pipelined; more: `send.batch`), the
 * replies (ids, after the sender's sync) read as they come, until the
 * recipient has acked all (stored, synced): the rate, and what the nodes
 * spent on it, into *run_out. */
static void throughput(struct bench_node *from, struct bench_node *to, int count, size_t size,
                       int batch, struct bench_run *run_out)
{
    double cpu0 = proc_cpu_s(from->pid) + proc_cpu_s(to->pid);
    double disk0 = disk_bytes(from, to);
    size_t line_cap = (size_t)batch * (size + 16) + 512;
    char *line = malloc(line_cap);
    char *text = malloc(size + 1);
    if (text == NULL || line == NULL)
        bench_die("out of memory");
    memset(text, 'x', size);
    text[size] = '\0';
    json_int_t acked0 = bench_status_num(from, "messages", "acked");
    struct reader *r = calloc(1, sizeof(*r));
    if (r == NULL)
        bench_die("out of memory");
    r->fd = harness_connect(from->sock);
    int window = batch == 1 ? WINDOW_SINGLE : WINDOW_BATCH;
    int calls = 0, replies = 0;
    double t0 = bench_now_ms();
    for (int sent = 0; sent < count; calls++) {
        int k = count - sent < batch ? count - sent : batch;
        size_t len;
        if (batch == 1) {
            len = (size_t)snprintf(line, line_cap,
                                   "{\"jsonrpc\":\"2.0\",\"method\":\"send\",\"params\":{\"to\":"
                                   "\"%s\",\"text\":\"%s\"},\"id\":%d}\n",
                                   to->address, text, calls);
        } else {
            len = (size_t)snprintf(line, line_cap,
                                   "{\"jsonrpc\":\"2.0\",\"method\":\"send.batch\",\"id\":%d,"
                                   "\"params\":{\"to\":\"%s\",\"messages\":[",
                                   calls, to->address);
            for (int i = 0; i < k; i++)
                len += (size_t)snprintf(line + len, line_cap - len, "%s{\"text\":\"%s\"}",
                                        i > 0 ? "," : "", text);
            len += (size_t)snprintf(line + len, line_cap - len, "]}}\n");
        }
        send_all(r->fd, line, len);
        sent += k;
        /* Read replies as they come so neither side's buffers fill. */
        while (calls + 1 - replies >= window) {
            read_reply(r);
            replies++;
        }
    }
    while (replies < calls) {
        read_reply(r);
        replies++;
    }
    close(r->fd);
    free(r);
    while (bench_status_num(from, "messages", "acked") - acked0 < count) {
        if (bench_now_ms() - t0 > 300000)
            bench_die("messages not acked within 300 s");
        /* Every 5 ms: each poll is a call the sender answers, so polling
         * more often would take from what is measured. */
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 5000000L};
        nanosleep(&pause, NULL);
    }
    double s = (bench_now_ms() - t0) / 1000.0;
    run_out->rate = count / s;
    run_out->cpu_s = proc_cpu_s(from->pid) + proc_cpu_s(to->pid) - cpu0;
    double disk1 = disk_bytes(from, to);
    run_out->disk_bytes = disk0 < 0 || disk1 < 0 ? -1 : disk1 - disk0;
    free(text);
    free(line);
}

/* Runs of send.batch per figure: the median is printed, and the spread. */
#define BATCH_RUNS 3

/* Both ways of sending (pipelined `send`s on a fraction of the messages,
 * then `send.batch`, BATCH_RUNS times); prints each and the required figure,
 * the faster one, with the batch size it used (1: `send`). */
static void throughput_figure(struct bench_node *from, struct bench_node *to, int count,
                              size_t size)
{
    int single_count = count / 4 > 0 ? count / 4 : 1;
    struct bench_run single_run;
    throughput(from, to, single_count, size, 1, &single_run);
    double single = single_run.rate;
    int batch = bench_batch_for(size);
    double rates[BATCH_RUNS], cpu_s = 0, disk = 0;
    for (int i = 0; i < BATCH_RUNS; i++) {
        struct bench_run run;
        throughput(from, to, count, size, batch, &run);
        rates[i] = run.rate;
        cpu_s += run.cpu_s;
        disk = disk < 0 || run.disk_bytes < 0 ? -1 : disk + run.disk_bytes;
    }
    qsort(rates, BATCH_RUNS, sizeof(rates[0]), bench_cmp_double);
    double batched = rates[BATCH_RUNS / 2];
    printf("throughput_%zuB_send_msgs_per_s %.0f msgs/s\n", size, single);
    printf("throughput_%zuB_send_batch_msgs_per_s %.0f msgs/s\n", size, batched);
    printf("throughput_%zuB_send_batch_min_msgs_per_s %.0f msgs/s\n", size, rates[0]);
    printf("throughput_%zuB_send_batch_max_msgs_per_s %.0f msgs/s\n", size,
           rates[BATCH_RUNS - 1]);
    printf("throughput_%zuB_cpu_us_per_msg %.1f us\n", size, cpu_s * 1e6 / count / BATCH_RUNS);
    printf("throughput_%zuB_disk_bytes_per_msg %.0f B\n", size,
           disk < 0 ? -1 : disk / count / BATCH_RUNS);
    printf("throughput_%zuB_msgs_per_s %.0f msgs/s\n", size, batched > single ? batched : single);
    printf("throughput_%zuB_send_mode %d msgs/call\n", size, batched > single ? batch : 1);
    fflush(stdout);
}

static long rss_kib(pid_t pid)
{
    return (long)proc_field(pid, "status", "VmRSS");
}

int main(void)
{
    bench_init("bench_messaging_real");
    const char *env = getenv("MERPATI_BENCH_MSGS");
    int msgs = env != NULL && strtol(env, NULL, 10) > 0 ? (int)strtol(env, NULL, 10) : 20000;
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
    char bootstrap[160];
    bench_bootstrap_entry(boot, bootstrap, sizeof(bootstrap));

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

    throughput_figure(a, b, msgs, 32);
    throughput_figure(a, b, msgs / 2, 1372);

    /* The round trip of a pair at rest: not one still flushing and
     * compacting what the runs above wrote. */
    settle(a, b);
    double rtt[RTT_SAMPLES];
    char text[65];
    memset(text, 'r', 64);
    text[64] = '\0';
    /* One connection, as a program sending one message at a time would keep. */
    struct reader *r = calloc(1, sizeof(*r));
    size_t line_cap = 1024;
    char *line = malloc(line_cap);
    if (r == NULL || line == NULL)
        bench_die("out of memory");
    r->fd = harness_connect(a->sock);
    for (int i = 0; i < RTT_SAMPLES; i++) {
        int len = snprintf(line, line_cap,
                           "{\"jsonrpc\":\"2.0\",\"method\":\"send\",\"params\":{\"to\":\"%s\","
                           "\"text\":\"%s\",\"wait_ms\":10000},\"id\":%d}\n",
                           b->address, text, i);
        double t = bench_now_ms();
        send_all(r->fd, line, (size_t)len);
        if (strstr(read_reply(r), "delivered") == NULL)
            bench_die("a round trip did not complete");
        rtt[i] = bench_now_ms() - t;
    }
    close(r->fd);
    free(r);
    free(line);
    qsort(rtt, RTT_SAMPLES, sizeof(rtt[0]), bench_cmp_double);
    printf("rtt_64B_p50_ms %.3f ms\n", rtt[RTT_SAMPLES / 2]);
    printf("rtt_64B_p99_ms %.3f ms\n", rtt[RTT_SAMPLES * 99 / 100]);
    fflush(stdout);

    /* Idle: the pair is connected and has nothing to say. Start-up is over
     * first (joining's second round at 30 s, the early publications). */
    sleep(30);
    json_int_t d0 = bench_status_num(a, "dht", "rx") + bench_status_num(a, "dht", "tx") +
                    bench_status_num(b, "dht", "rx") + bench_status_num(b, "dht", "tx");
    double i0 = bench_now_ms();
    sleep((unsigned)idle_s);
    json_int_t d1 = bench_status_num(a, "dht", "rx") + bench_status_num(a, "dht", "tx") +
                    bench_status_num(b, "dht", "rx") + bench_status_num(b, "dht", "tx");
    double elapsed = (bench_now_ms() - i0) / 1000.0;
    /* Each node's datagrams in and out, for the pair: per node, per second. */
    printf("idle_pair_datagrams_per_s %.3f datagrams/s\n", (double)(d1 - d0) / 2.0 / 2.0 / elapsed);
    printf("idle_rss_kib %ld KiB\n", rss_kib(a->pid));

    for (int i = 0; i < 3; i++)
        bench_node_stop(&nodes[i]);
    unlink(config_path);
    return 0;
}
