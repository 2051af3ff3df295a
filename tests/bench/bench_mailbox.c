/*
 * bench_mailbox: store-and-forward with real nodes on loopback. Six nodes
 * (one bootstrap, three more that may serve as mailboxes, A and B); B is
 * stopped, A leaves MERPATI_BENCH_MAILBOX_MSGS (default 10,000) 32-byte
 * texts with B's mailboxes and stops too; then B starts. Prints:
 *   mailbox_drain_10k_s       B starting -> every message stored in B's inbox
 *                             (B's start-up and its first fetch included)
 *   mailbox_bytes_per_msg     bytes a mailbox holds per message (its share of
 *                             the sealed envelope, a bundle, plus the envelope's
 *                             keys and index entries)
 *   mailbox_fill_msgs_per_s   A's pipelined sends -> all held by one mailbox (A's
 *                             discovery that B is offline included)
 *   mailbox_copies_per_msg    mailboxes holding each message when B starts
 *   mailbox_msgs_per_envelope messages per envelope the mailboxes hold (bundles)
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/bench/bench_nodes.h"
#include "tests/node/harness.h"

enum { NODES = 6, A = 4, B = 5 };
/* Bytes per held envelope besides the envelope: its 'e', 'h' and 'x' keys
 * and values (docs/PROTOCOL.md, "Mailboxes": 41 + 8, 33 + 52, 49 + 32). */
#define INDEX_BYTES (41 + 8 + 33 + 52 + 49 + 32)

static struct bench_node nodes[NODES];
static char config_path[96];

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* messages.to_mailboxes.held: A's stores answered "held", all mailboxes together. */
static json_int_t stores_held(struct bench_node *n)
{
    json_t *s = bench_call(n, "status", "{}");
    json_int_t v = json_integer_value(json_object_get(
        json_object_get(json_object_get(json_object_get(s, "result"), "messages"),
                        "to_mailboxes"),
        "held"));
    json_decref(s);
    return v;
}

static json_int_t inbox_count(struct bench_node *n)
{
    return bench_status_num(n, "messages", "received");
}

/* Envelopes held by all mailbox nodes together (and their bytes), and by the fullest one. */
static json_int_t held_total(json_int_t *bytes_out, json_int_t *max_out)
{
    json_int_t held = 0, bytes = 0, max = 0;
    for (int i = 0; i < NODES; i++) {
        if (i == A || i == B || nodes[i].pid <= 0)
            continue;
        json_int_t h = bench_status_num(&nodes[i], "mailbox", "held");
        held += h;
        max = h > max ? h : max;
        bytes += bench_status_num(&nodes[i], "mailbox", "held_bytes");
    }
    *bytes_out = bytes;
    *max_out = max;
    return held;
}

int main(void)
{
    const char *env = getenv("MERPATI_BENCH_MAILBOX_MSGS");
    int total = env != NULL ? atoi(env) : 10000;
    char bootstrap[160], line[512];

    bench_init("bench_mailbox");
    if (total <= 0 || total > 20000)
        bench_die("MERPATI_BENCH_MAILBOX_MSGS must be 1 .. 20000 (the default mailbox quota)");
    snprintf(config_path, sizeof(config_path), "/tmp/mp-bench-mbox-%ld.conf", (long)getpid());
    FILE *f = fopen(config_path, "w");
    if (f == NULL)
        bench_die("cannot write the config");
    fputs("dht_ip_limit = 0;\ndht_rate_limit = 0;\nlog_level = \"warn\";\n"
          "mailbox = { fetch_interval = 2; burst = 20000; };\n",
          f);
    fclose(f);
    for (int i = 0; i < NODES; i++)
        bench_node_init(&nodes[i]);
    bench_node_start(&nodes[0], config_path, NULL);
    bench_bootstrap_entry(&nodes[0], bootstrap, sizeof(bootstrap));
    for (int i = 1; i < NODES; i++)
        bench_node_start(&nodes[i], config_path, bootstrap);
    struct bench_node *a = &nodes[A], *b = &nodes[B];
    char params[256];
    snprintf(params, sizeof(params), "{\"address\":\"%s\"}", b->address);
    json_decref(bench_call(a, "contacts.add", params));
    snprintf(params, sizeof(params), "{\"address\":\"%s\"}", a->address);
    json_decref(bench_call(b, "contacts.add", params));
    sleep_ms(2000); /* B's records are out */
    kill(b->pid, SIGTERM);
    if (harness_wait(b->pid, 20000) != 0)
        bench_die("B did not stop");
    b->pid = 0;

    /* A leaves everything with B's mailboxes. */
    double t0 = bench_now_ms();
    int fd = harness_connect(a->sock);
    if (fd < 0)
        bench_die("cannot reach A");
    for (int i = 0; i < total; i++) {
        int len = snprintf(line, sizeof(line),
                           "{\"jsonrpc\":\"2.0\",\"method\":\"send\",\"params\":{\"to\":\"%s\","
                           "\"text\":\"bench message %016d\"},\"id\":%d}\n",
                           b->address, i, i);
        if (send(fd, line, (size_t)len, MSG_NOSIGNAL) != len)
            bench_die("send failed");
        if (i % 64 == 63 || i == total - 1) {
            for (int k = (i / 64) * 64; k <= i; k++) {
                char *reply = harness_exchange(fd, "", 0);
                if (reply == NULL)
                    bench_die("no reply to send");
                free(reply);
            }
        }
    }
    close(fd);
    /* Filled: every message held by a mailbox, which A records as one
     * "mailbox" event per message (A has no other events here). Messages
     * travel in bundles, so mailboxes count fewer envelopes than messages. */
    json_int_t events0 = bench_status_num(a, "messages", "events");
    for (int waited = 0; waited < 1200 && bench_status_num(a, "messages", "events") <
                                              events0 + (json_int_t)total;
         waited++)
        sleep_ms(250);
    double filled_ms = bench_now_ms() - t0;
    if (bench_status_num(a, "messages", "events") < events0 + (json_int_t)total)
        bench_die("the messages were not all held by mailboxes");
    /* The other mailboxes catch up: each holds as many envelopes as the
     * fullest (A's stores answered held), 30 s at most. */
    json_int_t bytes = 0, held = 0, max = 0;
    for (int waited = 0; waited < 120; waited++) {
        held = held_total(&bytes, &max);
        if (held >= 3 * max && stores_held(a) >= held)
            break;
        sleep_ms(250);
    }
    kill(a->pid, SIGTERM);
    harness_wait(a->pid, 20000);
    a->pid = 0;

    /* B comes back: time until all of it is in its inbox. */
    double t1 = bench_now_ms();
    bench_node_start(b, config_path, bootstrap);
    json_int_t got = 0;
    double first_ms = 0;
    for (int waited = 0; waited < 6000 && got < total; waited++) {
        got = inbox_count(b);
        if (got > 0 && first_ms == 0)
            first_ms = bench_now_ms() - t1;
        if (got < total)
            sleep_ms(50);
    }
    if (getenv("MERPATI_BENCH_VERBOSE") != NULL)
        fprintf(stderr, "first message after %.0f ms\n", first_ms);
    double drain_ms = bench_now_ms() - t1;
    if (got < total)
        bench_die("B did not receive every message");
    printf("mailbox_drain_10k_s %.2f s\n", drain_ms / 1000.0);
    /* max: the envelopes of all the messages, held by the fullest mailbox. */
    double copies = (double)held / (double)max;
    printf("mailbox_bytes_per_msg %.0f bytes\n",
           ((double)bytes + (double)held * INDEX_BYTES) / (copies * total));
    printf("mailbox_fill_msgs_per_s %.0f msg/s\n", total / (filled_ms / 1000.0));
    printf("mailbox_copies_per_msg %.2f copies\n", copies);
    printf("mailbox_msgs_per_envelope %.1f msgs\n", (double)total / (double)max);
    printf("mailbox_msgs %d msgs\n", total);
    for (int i = 0; i < NODES; i++)
        if (nodes[i].pid > 0)
            bench_node_stop(&nodes[i]);
    unlink(config_path);
    return 0;
}
