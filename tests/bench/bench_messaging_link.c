/*
 * bench_messaging_link: one-way throughput of 1 KiB messages over one Noise
 * link on 127.0.0.1, two `struct links` on one libuv loop (so one core does
 * both ends: encryption, decryption, TCP both ways). The sender refills
 * its queue from writable_cb, as the delivery layer would from its store.
 *
 * Prints "name value unit" lines: link_loopback_msgs_per_s,
 * link_loopback_MiB_per_s (1 KiB messages). Usage:
 * bench_messaging_link [messages [size]]; another size prints
 * link_loopback_<size>B_msgs_per_s and link_loopback_<size>B_MiB_per_s.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "node/link.h"

#define BENCH_MSG_LEN 1024 /* default message size */
#define BENCH_DEFAULT_MSGS 200000

struct side {
    struct links *links;
    uv_tcp_t server;
    uint8_t sk[32], pk[32];
    struct addr addr;
};

static struct side a, b;
static uint64_t target, sent, received;
static uint8_t payload[LINK_MESSAGE_MAX];
static size_t msg_len = BENCH_MSG_LEN;

static void random_fill(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    randombytes_buf(buf, len);
}

static uint64_t now_ms(void *ctx)
{
    (void)ctx;
    return uv_hrtime() / 1000000u;
}

static const struct env env = {.random = random_fill, .now_ms = now_ms};

static void feed(void)
{
    while (sent < target) {
        enum mp_err err = links_send(a.links, b.pk, &b.addr, payload, msg_len);
        if (err == MP_ERR_BUSY)
            return;
        if (err != MP_OK) {
            fprintf(stderr, "bench: send failed: %s\n", mp_strerror(err));
            exit(1);
        }
        sent++;
    }
}

static void message_cb(void *arg, const uint8_t pk[32], const uint8_t *msg, size_t len)
{
    (void)arg;
    (void)pk;
    (void)msg;
    if (len == msg_len && ++received == target) {
        links_close(a.links, NULL, NULL);
        links_close(b.links, NULL, NULL);
        uv_close((uv_handle_t *)&a.server, NULL);
        uv_close((uv_handle_t *)&b.server, NULL);
    }
}

static void writable_cb(void *arg, const uint8_t pk[32])
{
    (void)arg;
    (void)pk;
    feed();
}

static void connection_cb(uv_stream_t *server, int status)
{
    struct side *s = server->data;
    if (status == 0)
        links_accept(s->links, server);
}

static void setup(uv_loop_t *loop, struct side *s)
{
    struct sockaddr_in sin;
    struct sockaddr_storage bound;
    int len = sizeof(bound);

    crypto_box_keypair(s->pk, s->sk);
    struct links_config cfg = {
        .env = &env,
        .static_secret = s->sk,
        .static_public = s->pk,
        .version = 1,
        .network_id = (const uint8_t *)"bench",
        .network_id_len = 5,
        .message_cb = message_cb,
        .writable_cb = writable_cb,
    };
    if (links_new(loop, &cfg, &s->links) != MP_OK || uv_tcp_init(loop, &s->server) != 0)
        exit(1);
    s->server.data = s;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    if (uv_tcp_bind(&s->server, (struct sockaddr *)&sin, 0) != 0 ||
        uv_listen((uv_stream_t *)&s->server, 16, connection_cb) != 0 ||
        uv_tcp_getsockname(&s->server, (struct sockaddr *)&bound, &len) != 0)
        exit(1);
    addr_from_ip("127.0.0.1", ntohs(((struct sockaddr_in *)&bound)->sin_port), &s->addr);
}

int main(int argc, char **argv)
{
    uv_loop_t loop;

    target = argc > 1 ? strtoull(argv[1], NULL, 10) : BENCH_DEFAULT_MSGS;
    if (argc > 2)
        msg_len = strtoul(argv[2], NULL, 10);
    if (target == 0 || msg_len > LINK_MESSAGE_MAX || sodium_init() < 0 || uv_loop_init(&loop) != 0)
        return 1;
    randombytes_buf(payload, msg_len);
    setup(&loop, &a);
    setup(&loop, &b);
    uint64_t start = uv_hrtime();
    feed();
    uv_run(&loop, UV_RUN_DEFAULT);
    double secs = (double)(uv_hrtime() - start) / 1e9;
    if (received != target || uv_loop_close(&loop) != 0) {
        fprintf(stderr, "bench: %llu of %llu messages arrived\n", (unsigned long long)received,
                (unsigned long long)target);
        return 1;
    }
    char size[32] = "";
    if (msg_len != BENCH_MSG_LEN)
        snprintf(size, sizeof(size), "%zuB_", msg_len);
    printf("link_loopback_%smsgs_per_s %.0f msgs/s\n", size, (double)target / secs);
    printf("link_loopback_%sMiB_per_s %.1f MiB/s\n", size,
           (double)target * (double)msg_len / secs / (1024.0 * 1024.0));
    return 0;
}
