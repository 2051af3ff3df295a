/*
 * node/link over real TCP on 127.0.0.1: two or three `struct links` on one
 * libuv loop, each behind its own listening socket on an ephemeral port.
 * Every test is bounded by a guard timer (a stuck test fails instead of
 * hanging) and ends with uv_loop_close == 0, so a leaked handle fails it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "crypto/noise.h"

#include "node/link.h"
#include "tests/support/test_env.h"

#define GUARD_MS 10000
#define MAX_NODES 3
/* Messages a node remembers (sequence numbers) to check order. */
#define LOG_MAX 4096

struct node {
    struct world *w;
    struct links *links;
    uv_tcp_t server;
    bool server_open;
    uint8_t sk[32], pk[32];
    struct addr addr;
    /* what arrived */
    uint64_t received;         /* messages */
    uint64_t bytes;
    uint32_t last_seq[MAX_NODES]; /* per sender index, last sequence number seen */
    bool order_broken;
    bool content_broken;
    unsigned ups, downs, writables;
    bool free_after_close;
};

struct world {
    uv_loop_t loop;
    uv_timer_t guard;
    bool guard_fired;
    struct test_env te;
    struct node nodes[MAX_NODES];
    unsigned n;
    /* a scripted sender (test_window_busy and friends) */
    struct node *from, *to;
    uint32_t next_seq, target;
    size_t msg_len;
};

/* ---- messages: seq (u32 BE) | sender index | filler derived from both ---- */

static uint8_t filler(uint32_t seq, size_t i)
{
    return (uint8_t)(seq * 131u + i * 7u + (i >> 8));
}

static size_t make_msg(uint8_t *out, size_t len, unsigned sender, uint32_t seq)
{
    for (size_t i = 0; i < len; i++)
        out[i] = filler(seq, i);
    if (len >= 5) {
        out[0] = (uint8_t)(seq >> 24);
        out[1] = (uint8_t)(seq >> 16);
        out[2] = (uint8_t)(seq >> 8);
        out[3] = (uint8_t)seq;
        out[4] = (uint8_t)sender;
    }
    return len;
}

static struct node *node_of(struct world *w, const uint8_t pk[32])
{
    for (unsigned i = 0; i < w->n; i++) {
        if (memcmp(w->nodes[i].pk, pk, 32) == 0)
            return &w->nodes[i];
    }
    return NULL;
}

static void message_cb(void *arg, const uint8_t peer_pk[32], const uint8_t *msg, size_t len)
{
    struct node *nd = arg;
    struct node *from = node_of(nd->w, peer_pk);

    nd->received++;
    nd->bytes += len;
    if (from == NULL || len < 5) {
        nd->content_broken = nd->content_broken || from == NULL;
        return;
    }
    uint32_t seq = (uint32_t)msg[0] << 24 | (uint32_t)msg[1] << 16 | (uint32_t)msg[2] << 8 | msg[3];
    unsigned idx = (unsigned)(from - nd->w->nodes);
    if (msg[4] != idx)
        nd->content_broken = true;
    if (seq != nd->last_seq[idx] + 1)
        nd->order_broken = true;
    nd->last_seq[idx] = seq;
    for (size_t i = 5; i < len; i++) {
        if (msg[i] != filler(seq, i)) {
            nd->content_broken = true;
            break;
        }
    }
}

static void state_cb(void *arg, const uint8_t peer_pk[32], bool up)
{
    struct node *nd = arg;
    (void)peer_pk;
    if (up)
        nd->ups++;
    else
        nd->downs++;
}

/* Sends the scripted stream from w->from to w->to until it is refused. */
static void feed(struct world *w)
{
    static uint8_t buf[LINK_MESSAGE_MAX];
    while (w->next_seq < w->target) {
        size_t len = make_msg(buf, w->msg_len, (unsigned)(w->from - w->nodes), w->next_seq + 1);
        enum mp_err err = links_send(w->from->links, w->to->pk, &w->to->addr, buf, len);
        if (err == MP_ERR_BUSY)
            return;
        assert_int_equal(err, MP_OK);
        w->next_seq++;
    }
}

static void writable_cb(void *arg, const uint8_t peer_pk[32])
{
    struct node *nd = arg;
    nd->writables++;
    if (nd->w->from == nd && memcmp(peer_pk, nd->w->to->pk, 32) == 0)
        feed(nd->w);
}

static void connection_cb(uv_stream_t *server, int status)
{
    struct node *nd = server->data;
    if (status == 0)
        links_accept(nd->links, server);
}

static void guard_cb(uv_timer_t *t)
{
    struct world *w = t->data;
    w->guard_fired = true;
}

static struct world *world_new(void)
{
    struct world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    test_env_init(&w->te, test_env_seed(7));
    assert_int_equal(uv_loop_init(&w->loop), 0);
    assert_int_equal(uv_timer_init(&w->loop, &w->guard), 0);
    w->guard.data = w;
    uv_timer_start(&w->guard, guard_cb, GUARD_MS, 0);
    uv_unref((uv_handle_t *)&w->guard);
    return w;
}

struct node_opts {
    const uint8_t *psk;
    const char *network;
    uint32_t handshake_timeout_ms;
    uint32_t idle_timeout_ms;
    void (*state_cb)(void *arg, const uint8_t peer_pk[32], bool up);
};

static struct node *add_node(struct world *w, const struct node_opts *o)
{
    struct node *nd = &w->nodes[w->n++];
    struct sockaddr_in sin;
    struct sockaddr_storage bound;
    int len = sizeof(bound);

    nd->w = w;
    crypto_box_keypair(nd->pk, nd->sk);
    const char *net = o != NULL && o->network != NULL ? o->network : "test";
    struct links_config cfg = {
        .env = &w->te.env,
        .static_secret = nd->sk,
        .static_public = nd->pk,
        .version = 1,
        .network_id = (const uint8_t *)net,
        .network_id_len = strlen(net),
        .psk = o != NULL ? o->psk : NULL,
        .message_cb = message_cb,
        .link_state_cb = o != NULL && o->state_cb != NULL ? o->state_cb : state_cb,
        .writable_cb = writable_cb,
        .arg = nd,
        .handshake_timeout_ms = o != NULL ? o->handshake_timeout_ms : 0,
        .idle_timeout_ms = o != NULL ? o->idle_timeout_ms : 0,
    };
    assert_int_equal(links_new(&w->loop, &cfg, &nd->links), MP_OK);
    assert_int_equal(uv_tcp_init(&w->loop, &nd->server), 0);
    nd->server.data = nd;
    nd->server_open = true;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(uv_tcp_bind(&nd->server, (struct sockaddr *)&sin, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&nd->server, 64, connection_cb), 0);
    assert_int_equal(uv_tcp_getsockname(&nd->server, (struct sockaddr *)&bound, &len), 0);
    assert_int_equal(addr_from_ip("127.0.0.1", ntohs(((struct sockaddr_in *)&bound)->sin_port),
                                  &nd->addr),
                     MP_OK);
    return nd;
}

/* Runs the loop until done(w) holds; fails the test when the guard fires. */
static void run_until(struct world *w, bool (*done)(struct world *w))
{
    while (!done(w)) {
        assert_false(w->guard_fired);
        uv_run(&w->loop, UV_RUN_ONCE);
    }
}

static void sleep_cb(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop for ms milliseconds of whatever happens. */
static void run_for(struct world *w, uint64_t ms)
{
    uv_timer_t t;
    bool fired = false;
    uv_timer_init(&w->loop, &t);
    t.data = &fired;
    uv_timer_start(&t, sleep_cb, ms, 0);
    while (!fired)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
}

static void closed_cb(void *arg)
{
    (*(unsigned *)arg)++;
}

/* Closes everything and checks that nothing is left on the loop. */
static void world_free(struct world *w)
{
    unsigned closed = 0;
    for (unsigned i = 0; i < w->n; i++) {
        links_close(w->nodes[i].links, closed_cb, &closed);
        if (w->nodes[i].server_open)
            uv_close((uv_handle_t *)&w->nodes[i].server, NULL);
    }
    uv_close((uv_handle_t *)&w->guard, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, w->n);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    free(w);
}

static struct links_stats stats_of(const struct node *nd)
{
    struct links_stats s;
    links_stats(nd->links, &s);
    return s;
}

static enum mp_err send_seq(struct node *from, struct node *to, uint32_t seq, size_t len)
{
    static uint8_t buf[LINK_MESSAGE_MAX];
    make_msg(buf, len, (unsigned)(from - from->w->nodes), seq);
    return links_send(from->links, to->pk, &to->addr, buf, len);
}

/* ---- tests ---- */

/* Fewer than LINK_QUEUE_MSGS: all fit the queue before the link is up. */
#define BOTH_WAYS_N 60

static bool both_got_all(struct world *w)
{
    return w->nodes[0].received >= BOTH_WAYS_N && w->nodes[1].received >= BOTH_WAYS_N;
}

static void answer_on_up(void *arg, const uint8_t peer_pk[32], bool up)
{
    struct node *nd = arg;
    state_cb(arg, peer_pk, up);
    if (up && nd == &nd->w->nodes[1]) {
        for (uint32_t seq = 1; seq <= BOTH_WAYS_N; seq++)
            assert_int_equal(send_seq(nd, &nd->w->nodes[0], seq, 100 + seq), MP_OK);
    }
}

static void test_both_ways_in_order(void **state)
{
    (void)state;
    struct world *w = world_new();
    /* B answers over the link A opened, as soon as it is up. */
    struct node_opts ob = {.state_cb = answer_on_up};
    struct node *a = add_node(w, NULL);
    struct node *b = add_node(w, &ob);
    for (uint32_t seq = 1; seq <= BOTH_WAYS_N; seq++)
        assert_int_equal(send_seq(a, b, seq, seq * 13), MP_OK);
    run_until(w, both_got_all);

    assert_int_equal(b->received, BOTH_WAYS_N);
    assert_int_equal(a->received, BOTH_WAYS_N);
    assert_false(a->order_broken || b->order_broken);
    assert_false(a->content_broken || b->content_broken);
    assert_int_equal(a->ups, 1);
    assert_int_equal(b->ups, 1);
    assert_true(links_is_up(a->links, b->pk));
    struct links_stats sa = stats_of(a), sb = stats_of(b);
    assert_int_equal(sa.links_up, 1);
    assert_int_equal(sb.links_up, 1);
    assert_int_equal(sa.msgs_out, BOTH_WAYS_N);
    assert_int_equal(sb.msgs_in, BOTH_WAYS_N);
    assert_int_equal(sa.dials, 1);
    assert_int_equal(sb.dials, 0); /* B answered on A's link, no second connection */
    assert_int_equal(sb.accepted, 1);
    world_free(w);
}

static bool b_got_all(struct world *w)
{
    return w->nodes[1].received >= w->target;
}

static void test_large_messages_intact(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct node *a = add_node(w, NULL);
    struct node *b = add_node(w, NULL);
    /* Sizes around the fragment boundaries, the maximum, and tiny ones. */
    const size_t sizes[] = {LINK_MESSAGE_MAX, 5, LINK_FRAME_DATA_ROOM, LINK_FRAME_DATA_ROOM + 1,
                            LINK_FRAME_DATA_ROOM + LINK_FRAME_MORE_ROOM,
                            LINK_FRAME_DATA_ROOM + LINK_FRAME_MORE_ROOM + 1, LINK_MESSAGE_MAX - 1,
                            LINK_MESSAGE_MAX, LINK_MESSAGE_MAX};
    size_t n = sizeof(sizes) / sizeof(sizes[0]);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        enum mp_err err;
        /* The queue holds LINK_QUEUE_BYTES: wait for room as a caller would. */
        while ((err = send_seq(a, b, (uint32_t)i + 1, sizes[i])) == MP_ERR_BUSY) {
            assert_false(w->guard_fired);
            uv_run(&w->loop, UV_RUN_ONCE);
        }
        assert_int_equal(err, MP_OK);
        total += sizes[i];
    }
    uint8_t *big = calloc(1, LINK_MESSAGE_MAX + 1);
    assert_int_equal(links_send(a->links, b->pk, &b->addr, big, LINK_MESSAGE_MAX + 1),
                     MP_ERR_TOO_BIG);
    free(big);
    w->target = n;
    run_until(w, b_got_all);
    assert_int_equal(b->received, n);
    assert_int_equal(b->bytes, total);
    assert_false(b->order_broken);
    assert_false(b->content_broken);
    world_free(w);
}

static void test_window_and_busy(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct node *a = add_node(w, NULL);
    struct node *b = add_node(w, NULL);
    w->from = a;
    w->to = b;
    w->msg_len = 1024;
    w->target = 3000; /* far beyond the window (64) and the queue (64) */
    feed(w);
    /* Nothing can leave before the handshake: the queue takes exactly its cap. */
    assert_int_equal(w->next_seq, LINK_QUEUE_MSGS);
    assert_int_equal(send_seq(a, b, 99999, 10), MP_ERR_BUSY);
    run_until(w, b_got_all);
    assert_int_equal(b->received, w->target);
    assert_false(b->order_broken);
    assert_false(b->content_broken);
    assert_true(a->writables > 0);
    struct links_stats sa = stats_of(a);
    assert_true(sa.dropped[LINK_DROP_QUEUE_FULL] > 0);
    assert_int_equal(sa.msgs_out, w->target);
    world_free(w);
}

static bool a_saw_down(struct world *w)
{
    return w->nodes[0].downs > 0;
}

static bool b_refused_one(struct world *w)
{
    return stats_of(&w->nodes[1]).refused >= 1;
}

static void test_wrong_peer_key(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct node *a = add_node(w, NULL);
    struct node *b = add_node(w, NULL);
    uint8_t other_pk[32], other_sk[32];
    crypto_box_keypair(other_pk, other_sk);
    /* A dials B's address believing it is the node with other_pk. */
    assert_int_equal(links_send(a->links, other_pk, &b->addr, (const uint8_t *)"hello", 5), MP_OK);
    run_until(w, a_saw_down);
    run_until(w, b_refused_one);
    assert_int_equal(a->ups, 0);
    assert_int_equal(b->ups, 0);
    assert_int_equal(b->received, 0);
    struct links_stats sa = stats_of(a), sb = stats_of(b);
    assert_int_equal(sb.handshake_failed[LINK_REASON_PEER_KEY], 1);
    assert_int_equal(sa.handshake_failed[LINK_REASON_EOF] + sa.handshake_failed[LINK_REASON_RESET],
                     1);
    assert_int_equal(sa.dropped[LINK_DROP_LINK_DOWN], 1);
    assert_int_equal(sa.links_up, 0);
    /* The failed peer is in backoff: the next send is refused at once. */
    assert_true(links_retry_ms(a->links, other_pk) > 0);
    assert_int_equal(links_send(a->links, other_pk, &b->addr, (const uint8_t *)"again", 5),
                     MP_ERR_UNAVAILABLE);
    world_free(w);
}

static bool c_got_one(struct world *w)
{
    return w->nodes[2].received >= 1;
}

static void test_psk(void **state)
{
    (void)state;
    static const uint8_t psk1[32] = "cluster one secret, 32 bytes...";
    static const uint8_t psk2[32] = "cluster two secret, 32 bytes...";
    struct world *w = world_new();
    struct node_opts o1 = {.psk = psk1}, o2 = {.psk = psk2};
    struct node *a = add_node(w, &o1);
    struct node *b = add_node(w, &o2);
    struct node *c = add_node(w, &o1);
    /* Another cluster's secret: B drops A at message 1. */
    assert_int_equal(send_seq(a, b, 1, 10), MP_OK);
    run_until(w, a_saw_down);
    run_until(w, b_refused_one);
    assert_int_equal(stats_of(b).handshake_failed[LINK_REASON_PSK], 1);
    assert_int_equal(b->received, 0);
    /* The same secret: C gets it. */
    assert_int_equal(send_seq(a, c, 1, 10), MP_OK);
    run_until(w, c_got_one);
    assert_false(c->content_broken);
    world_free(w);
}

/* ---- raw TCP clients (garbage, silent servers) ---- */

struct raw {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_buf_t out;
    bool eof;
    char in[256];
};

static void raw_alloc_cb(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    struct raw *r = h->data;
    (void)s;
    *b = uv_buf_init(r->in, sizeof(r->in));
}

static void raw_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct raw *r = s->data;
    (void)b;
    if (n < 0) {
        r->eof = true;
        uv_read_stop(s);
    }
}

static void raw_write_cb(uv_write_t *req, int status)
{
    (void)req;
    (void)status;
}

static void raw_connect_cb(uv_connect_t *req, int status)
{
    struct raw *r = req->data;
    assert_int_equal(status, 0);
    uv_write(&r->write, (uv_stream_t *)&r->tcp, &r->out, 1, raw_write_cb);
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc_cb, raw_read_cb);
}

static void raw_send(struct world *w, struct raw *r, const struct node *to, const void *data,
                     size_t len)
{
    struct sockaddr_in sin;
    memset(r, 0, sizeof(*r));
    assert_int_equal(uv_tcp_init(&w->loop, &r->tcp), 0);
    r->tcp.data = r;
    r->connect.data = r;
    r->out = uv_buf_init((char *)data, (unsigned)len);
    uv_ip4_addr("127.0.0.1", to->addr.port, &sin);
    assert_int_equal(uv_tcp_connect(&r->connect, &r->tcp, (struct sockaddr *)&sin, raw_connect_cb),
                     0);
}

static struct raw *raws[2];

static bool raws_cut_off(struct world *w)
{
    (void)w;
    return raws[0]->eof && raws[1]->eof;
}

static bool b_got_one(struct world *w)
{
    return w->nodes[1].received >= 1;
}

static void test_garbage_is_cut_off(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct node *a = add_node(w, NULL);
    struct node *b = add_node(w, NULL);
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    static uint8_t fake[4 + 2 + 200];
    struct raw r1, r2;

    /* A right preamble, then 200 random bytes as Noise message 1. */
    fake[0] = 'm';
    fake[1] = 'p';
    fake[2] = 1;
    fake[3] = 1;
    fake[4] = 0;
    fake[5] = 200;
    randombytes_buf(fake + 6, 200);
    raws[0] = &r1;
    raws[1] = &r2;
    raw_send(w, &r1, b, http, sizeof(http) - 1);
    raw_send(w, &r2, b, fake, sizeof(fake));
    run_until(w, raws_cut_off);
    struct links_stats sb = stats_of(b);
    assert_int_equal(sb.handshake_failed[LINK_REASON_PREAMBLE], 1);
    assert_int_equal(sb.handshake_failed[LINK_REASON_PEER_KEY], 1);
    assert_int_equal(sb.refused, 2);
    /* The listener still serves real peers. */
    assert_int_equal(send_seq(a, b, 1, 300), MP_OK);
    run_until(w, b_got_one);
    assert_false(b->content_broken);
    uv_close((uv_handle_t *)&r1.tcp, NULL);
    uv_close((uv_handle_t *)&r2.tcp, NULL);
    world_free(w);
}

/* Both send first, at the same moment. A caller that sees a down resends
 * (links promise nothing), so it is done when each side has the message. */
static bool both_got_one(struct world *w)
{
    return w->nodes[0].received >= 1 && w->nodes[1].received >= 1;
}

/* Every node has one link to every other and no handshake pending. */
static bool settled(struct world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        struct links_stats s = stats_of(&w->nodes[i]);
        if (s.handshakes_pending != 0 || s.links_up != w->n - 1)
            return false;
    }
    return true;
}

static bool both_got_two(struct world *w)
{
    return w->nodes[0].received >= 2 && w->nodes[1].received >= 2;
}

static void test_simultaneous_dial(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct node *a = add_node(w, NULL);
    struct node *b = add_node(w, NULL);
    assert_int_equal(send_seq(a, b, 1, 64), MP_OK);
    assert_int_equal(send_seq(b, a, 1, 64), MP_OK);
    while (!both_got_one(w)) {
        assert_false(w->guard_fired);
        uv_run(&w->loop, UV_RUN_ONCE);
        if (a->downs > 0 && b->received == 0 && !links_is_up(a->links, b->pk))
            send_seq(a, b, 1, 64);
        if (b->downs > 0 && a->received == 0 && !links_is_up(b->links, a->pk))
            send_seq(b, a, 1, 64);
    }
    run_until(w, settled);
    struct links_stats sa = stats_of(a), sb = stats_of(b);
    assert_int_equal(sa.dials, 1);
    assert_int_equal(sb.dials, 1);
    /* Two connections were made; one was retired on at least one side. */
    assert_true(sa.closed[LINK_REASON_DUPLICATE] + sb.closed[LINK_REASON_DUPLICATE] >= 1);
    /* The link left carries messages both ways. */
    assert_int_equal(send_seq(a, b, 2, 64), MP_OK);
    assert_int_equal(send_seq(b, a, 2, 64), MP_OK);
    run_until(w, both_got_two);
    assert_false(a->order_broken || b->order_broken);
    sa = stats_of(a);
    sb = stats_of(b);
    assert_int_equal(sa.links_up, 1);
    assert_int_equal(sb.links_up, 1);
    assert_int_equal(sa.dials + sb.dials, 2); /* nobody dialed again */
    world_free(w);
}

static void test_stalled_reader(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct node *a = add_node(w, NULL);
    struct node *b = add_node(w, NULL);
    w->target = 1;
    assert_int_equal(send_seq(a, b, 1, 100), MP_OK);
    run_until(w, b_got_all);
    /* B stops reading A (as a node whose store falls behind would). */
    assert_int_equal(links_pause(b->links, a->pk, true), MP_OK);
    uint32_t seq = 2;
    enum mp_err err;
    while ((err = send_seq(a, b, seq, 16 * 1024)) == MP_OK)
        seq++;
    assert_int_equal(err, MP_ERR_BUSY);
    /* Time passes; B still does not read: A stays refused, its memory bounded. */
    run_for(w, 300);
    assert_int_equal(send_seq(a, b, seq, 16 * 1024), MP_ERR_BUSY);
    uint32_t accepted = seq - 2;
    assert_true(accepted <= LINK_WINDOW_MSGS + LINK_QUEUE_MSGS);
    assert_true(accepted >= LINK_QUEUE_MSGS);
    /* B resumes: everything A accepted arrives, in order. */
    assert_int_equal(links_pause(b->links, a->pk, false), MP_OK);
    w->target = 1 + accepted;
    run_until(w, b_got_all);
    assert_int_equal(b->received, 1 + accepted);
    assert_false(b->order_broken);
    assert_false(b->content_broken);
    world_free(w);
}

static void silent_connection_cb(uv_stream_t *server, int status)
{
    uv_tcp_t *conn = malloc(sizeof(*conn));
    (void)status;
    uv_tcp_init(server->loop, conn);
    conn->data = NULL;
    uv_accept(server, (uv_stream_t *)conn); /* and never read nor answer */
    *(uv_tcp_t **)server->data = conn;
}

static void free_handle_cb(uv_handle_t *h)
{
    free(h);
}

static void test_handshake_timeout_and_backoff(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct node_opts o = {.handshake_timeout_ms = 200};
    struct node *a = add_node(w, &o);
    uv_tcp_t silent;
    uv_tcp_t *accepted = NULL;
    struct sockaddr_in sin;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    struct addr to;
    uint8_t pk[32], sk[32];

    uv_tcp_init(&w->loop, &silent);
    silent.data = &accepted;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(uv_tcp_bind(&silent, (struct sockaddr *)&sin, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&silent, 4, silent_connection_cb), 0);
    uv_tcp_getsockname(&silent, (struct sockaddr *)&bound, &len);
    addr_from_ip("127.0.0.1", ntohs(((struct sockaddr_in *)&bound)->sin_port), &to);
    crypto_box_keypair(pk, sk);

    assert_int_equal(links_send(a->links, pk, &to, (const uint8_t *)"x", 1), MP_OK);
    run_until(w, a_saw_down);
    struct links_stats sa = stats_of(a);
    assert_int_equal(sa.handshake_failed[LINK_REASON_TIMEOUT], 1);
    assert_int_equal(sa.handshakes_pending, 0);
    assert_int_equal(links_send(a->links, pk, &to, (const uint8_t *)"x", 1), MP_ERR_UNAVAILABLE);
    assert_true(links_retry_ms(a->links, pk) <= LINK_BACKOFF_MIN_MS);
    if (accepted != NULL)
        uv_close((uv_handle_t *)accepted, free_handle_cb);
    uv_close((uv_handle_t *)&silent, NULL);
    world_free(w);
}

static bool b_down(struct world *w)
{
    return w->nodes[1].downs >= 1 && w->nodes[0].downs >= 1;
}

static void test_idle_close_and_redial(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct node_opts o = {.idle_timeout_ms = 150};
    struct node *a = add_node(w, &o);
    struct node *b = add_node(w, &o);
    w->target = 1;
    assert_int_equal(send_seq(a, b, 1, 10), MP_OK);
    run_until(w, b_got_all);
    run_until(w, b_down);
    assert_true(stats_of(a).closed[LINK_REASON_IDLE] + stats_of(b).closed[LINK_REASON_IDLE] >= 1);
    assert_int_equal(stats_of(a).links_up, 0);
    /* On demand: the next send dials again. */
    assert_int_equal(send_seq(a, b, 2, 10), MP_OK);
    w->target = 2;
    run_until(w, b_got_all);
    assert_false(b->order_broken);
    assert_int_equal(stats_of(a).dials, 2);
    world_free(w);
}

static bool a_up(struct world *w)
{
    return w->nodes[0].ups >= 1 && w->nodes[2].received >= 1;
}

static void test_shutdown_with_links_open(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct node *a = add_node(w, NULL);
    struct node *b = add_node(w, NULL);
    struct node *c = add_node(w, NULL);
    uint8_t pk[32], sk[32];
    crypto_box_keypair(pk, sk);
    assert_int_equal(send_seq(a, c, 1, 10), MP_OK);
    run_until(w, a_up);
    /* A link up (A-C), a stream in flight (A-B), a handshake pending (to a key nobody has). */
    for (uint32_t seq = 1; seq <= 50; seq++)
        assert_int_equal(send_seq(a, b, seq, 4000), MP_OK);
    assert_int_equal(links_send(b->links, pk, &c->addr, (const uint8_t *)"?", 1), MP_OK);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    world_free(w); /* asserts uv_loop_close == 0 */
}

/* ---- the frame codec alone ---- */

/* Fragments msg as a sender does and feeds the frames to f. */
static enum link_violation feed_message(struct link_flow *f, const uint8_t *msg, size_t len,
                                        const uint8_t **out, size_t *out_len, unsigned *frames)
{
    static uint8_t frame[LINK_FRAME_MAX];
    size_t off = 0;
    enum link_violation v;
    *frames = 0;
    do {
        size_t chunk = 0;
        size_t hlen = link_frame_header(len, off, frame, &chunk);
        enum link_event ev;
        memcpy(frame + hlen, msg + off, chunk);
        off += chunk;
        (*frames)++;
        v = link_flow_input(f, frame, hlen + chunk, &ev, out, out_len);
        if (v != LINK_VIOLATION_NONE)
            return v;
        assert_int_equal(ev, off == len ? LINK_EVENT_MESSAGE : LINK_EVENT_NONE);
    } while (off < len);
    return LINK_VIOLATION_NONE;
}

static void test_frames_round_trip(void **state)
{
    (void)state;
    static uint8_t msg[LINK_MESSAGE_MAX];
    const size_t sizes[] = {0, 1, LINK_FRAME_DATA_ROOM, LINK_FRAME_DATA_ROOM + 1, LINK_MESSAGE_MAX};
    const unsigned frames_expected[] = {1, 1, 1, 2, 5};
    struct link_flow f;
    link_flow_init(&f);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        const uint8_t *out = NULL;
        size_t out_len = 0;
        unsigned frames = 0;
        randombytes_buf(msg, sizes[i]);
        assert_int_equal(feed_message(&f, msg, sizes[i], &out, &out_len, &frames),
                         LINK_VIOLATION_NONE);
        assert_int_equal(out_len, sizes[i]);
        if (sizes[i] > 0)
            assert_memory_equal(out, msg, sizes[i]);
        assert_int_equal(frames, frames_expected[i]);
        /* Frames on the wire: what link_frame_wire_size promised. */
        assert_int_equal(link_frame_wire_size(sizes[i]),
                         sizes[i] + frames * (2 + NOISE_TAG_BYTES) + LINK_FRAME_DATA_HEADER +
                             (frames - 1) * LINK_FRAME_MORE_HEADER);
        link_flow_delivered(&f, out_len);
        uint8_t grant[LINK_FRAME_CREDIT_BYTES];
        link_flow_grant(&f, grant);
    }
    link_flow_free(&f);
}

static void test_frames_violations(void **state)
{
    (void)state;
    struct link_flow f;
    enum link_event ev;
    const uint8_t *out;
    size_t len;
    const uint8_t more[] = {LINK_FRAME_MORE, 'x'};
    const uint8_t data10[] = {LINK_FRAME_DATA, 0, 0, 0, 10, 'a', 'b'};
    const uint8_t oversize[] = {LINK_FRAME_DATA, 0, 4, 0, 1, 'a'};
    const uint8_t past_total[] = {LINK_FRAME_DATA, 0, 0, 0, 1, 'a', 'b'};
    const uint8_t grant_past_window[] = {LINK_FRAME_CREDIT, 0, 0, 0, 1, 0, 0, 0, 0};
    const uint8_t unknown[] = {9, 1, 2};
    const uint8_t one[] = {LINK_FRAME_DATA, 0, 0, 0, 1, 'z'};

    link_flow_init(&f);
    assert_int_equal(link_flow_input(&f, more, sizeof(more), &ev, &out, &len),
                     LINK_VIOLATION_SEQUENCE);
    link_flow_init(&f);
    assert_int_equal(link_flow_input(&f, data10, sizeof(data10), &ev, &out, &len),
                     LINK_VIOLATION_NONE);
    assert_int_equal(link_flow_input(&f, data10, sizeof(data10), &ev, &out, &len),
                     LINK_VIOLATION_SEQUENCE);
    link_flow_free(&f);
    link_flow_init(&f);
    assert_int_equal(link_flow_input(&f, oversize, sizeof(oversize), &ev, &out, &len),
                     LINK_VIOLATION_OVERSIZE);
    assert_int_equal(link_flow_input(&f, past_total, sizeof(past_total), &ev, &out, &len),
                     LINK_VIOLATION_MALFORMED);
    assert_int_equal(link_flow_input(&f, unknown, sizeof(unknown), &ev, &out, &len),
                     LINK_VIOLATION_MALFORMED);
    assert_int_equal(link_flow_input(&f, unknown, 0, &ev, &out, &len), LINK_VIOLATION_MALFORMED);
    /* Nothing was used: a grant would lift the credit above the window. */
    assert_int_equal(link_flow_input(&f, grant_past_window, sizeof(grant_past_window), &ev, &out,
                                     &len),
                     LINK_VIOLATION_CREDIT);
    /* A peer that never gets credit back can start exactly LINK_WINDOW_MSGS messages. */
    link_flow_init(&f);
    for (unsigned i = 0; i < LINK_WINDOW_MSGS; i++) {
        assert_int_equal(link_flow_input(&f, one, sizeof(one), &ev, &out, &len),
                         LINK_VIOLATION_NONE);
        assert_int_equal(ev, LINK_EVENT_MESSAGE);
    }
    assert_int_equal(link_flow_input(&f, one, sizeof(one), &ev, &out, &len),
                     LINK_VIOLATION_CREDIT);
    link_flow_free(&f);
}

/* ---- a hand-driven Noise peer that breaks the frame rules ---- */

static void read_exact(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
}

struct rogue {
    int fd;
    uint8_t pk[32];
    struct noise_cipher *tx, *rx;
};

static void send_noise(int fd, const uint8_t *head, size_t head_len, const uint8_t *msg, size_t n)
{
    static uint8_t buf[6 + NOISE_MAX_MESSAGE];
    if (head_len > 0)
        memcpy(buf, head, head_len);
    buf[head_len] = (uint8_t)(n >> 8);
    buf[head_len + 1] = (uint8_t)n;
    memcpy(buf + head_len + 2, msg, n);
    assert_int_equal(send(fd, buf, head_len + 2 + n, 0), (ssize_t)(head_len + 2 + n));
}

/* Runs the loop until fd has bytes to read (the node answered). */
static void run_until_readable(struct world *w, int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (poll(&pfd, 1, 5) == 0) {
        assert_false(w->guard_fired);
        uv_run(&w->loop, UV_RUN_NOWAIT);
    }
}

static size_t recv_noise(int fd, uint8_t *buf)
{
    read_exact(fd, buf, 2);
    size_t n = (size_t)buf[0] << 8 | buf[1];
    read_exact(fd, buf, n);
    return n;
}

static bool b_has_link(struct world *w)
{
    return stats_of(&w->nodes[1]).links_up == 1;
}

/* Connects a blocking socket to b and completes a handshake by hand: IK
 * (knowing b's key) or XX (not knowing it). */
static void rogue_connect(struct world *w, struct rogue *r, const struct node *b,
                          enum noise_pattern pattern)
{
    uint8_t sk[32], prologue[NOISE_MERPATI_PROLOGUE_MAX];
    size_t prologue_len = 0, n = 0, plen = 0;
    static uint8_t msg[NOISE_MAX_MESSAGE], payload[NOISE_MAX_MESSAGE];
    struct noise_handshake *hs = NULL;
    struct sockaddr_in sin;
    const uint8_t preamble[4] = {'m', 'p', 1, pattern == NOISE_PATTERN_XX ? 3 : 1};

    crypto_box_keypair(r->pk, sk);
    assert_int_equal(noise_prologue(1, (const uint8_t *)"test", 4, prologue, &prologue_len), MP_OK);
    struct noise_config nc = {.pattern = pattern, .initiator = true, .prologue = prologue,
                              .prologue_len = prologue_len, .s = sk,
                              .rs = pattern == NOISE_PATTERN_IK ? b->pk : NULL};
    assert_int_equal(noise_handshake_new(&w->te.env, &nc, &hs), MP_OK);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->fd >= 0);
    uv_ip4_addr("127.0.0.1", b->addr.port, &sin);
    assert_int_equal(connect(r->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(noise_handshake_write(hs, NULL, 0, msg, sizeof(msg), &n), MP_OK);
    send_noise(r->fd, preamble, sizeof(preamble), msg, n);
    run_until_readable(w, r->fd);
    n = recv_noise(r->fd, msg);
    assert_int_equal(noise_handshake_read(hs, msg, n, payload, sizeof(payload), &plen), MP_OK);
    if (pattern == NOISE_PATTERN_XX) {
        uint8_t learned[32];
        assert_int_equal(noise_handshake_remote_static(hs, learned), MP_OK);
        assert_memory_equal(learned, b->pk, 32); /* XX told us who we reached */
        assert_int_equal(noise_handshake_write(hs, NULL, 0, msg, sizeof(msg), &n), MP_OK);
        send_noise(r->fd, NULL, 0, msg, n);
        run_until(w, b_has_link);
    }
    assert_int_equal(noise_handshake_split(hs, &r->tx, &r->rx), MP_OK);
    noise_handshake_free(hs);
}

/* Encrypts one frame and sends it; `corrupt` flips a ciphertext bit. */
static void rogue_frame(struct rogue *r, const uint8_t *frame, size_t len, bool corrupt)
{
    static uint8_t buf[2 + NOISE_MAX_MESSAGE];
    size_t clen = 0;
    assert_int_equal(noise_cipher_encrypt(r->tx, frame, len, buf + 2, NOISE_MAX_MESSAGE, &clen),
                     MP_OK);
    if (corrupt)
        buf[2] ^= 1;
    buf[0] = (uint8_t)(clen >> 8);
    buf[1] = (uint8_t)clen;
    assert_int_equal(send(r->fd, buf, 2 + clen, MSG_NOSIGNAL), (ssize_t)(2 + clen));
}

static void rogue_free(struct rogue *r)
{
    close(r->fd);
    noise_cipher_free(r->tx);
    noise_cipher_free(r->rx);
}

static enum link_reason expected_reason;

static bool b_closed_for_reason(struct world *w)
{
    return stats_of(&w->nodes[1]).closed[expected_reason] >= 1;
}

/* Each way of breaking the frame rules closes the link, counted by reason;
 * a good message before it arrives. */
static void test_rogue_frames_close_the_link(void **state)
{
    (void)state;
    const uint8_t good[] = {LINK_FRAME_DATA, 0, 0, 0, 5, 0, 0, 0, 1, 0};
    const uint8_t one[] = {LINK_FRAME_DATA, 0, 0, 0, 1, 'z'};
    const uint8_t more[] = {LINK_FRAME_MORE, 'x'};
    const uint8_t oversize[] = {LINK_FRAME_DATA, 0, 4, 0, 1, 'x'};
    const uint8_t grant[] = {LINK_FRAME_CREDIT, 0, 0, 0, 1, 0, 0, 0, 0};
    const enum link_reason reasons[] = {LINK_REASON_DECRYPT, LINK_REASON_SEQUENCE,
                                        LINK_REASON_OVERSIZE, LINK_REASON_CREDIT};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        struct world *w = world_new();
        add_node(w, NULL);
        struct node *b = add_node(w, NULL);
        struct rogue r;
        rogue_connect(w, &r, b, NOISE_PATTERN_IK);
        rogue_frame(&r, good, sizeof(good), false);
        expected_reason = reasons[i];
        switch (reasons[i]) {
        case LINK_REASON_DECRYPT:
            rogue_frame(&r, one, sizeof(one), true);
            break;
        case LINK_REASON_SEQUENCE:
            rogue_frame(&r, more, sizeof(more), false);
            break;
        case LINK_REASON_OVERSIZE:
            rogue_frame(&r, oversize, sizeof(oversize), false);
            break;
        default: /* credit for a message B never sent: past the window */
            rogue_frame(&r, grant, sizeof(grant), false);
            break;
        }
        run_until(w, b_closed_for_reason);
        /* The good message (a well-formed 5-byte message from an unknown node) arrived. */
        assert_true(b->received >= 1);
        assert_int_equal(b->ups, 1);
        assert_int_equal(b->downs, 1);
        assert_int_equal(stats_of(b).links_up, 0);
        rogue_free(&r);
        world_free(w);
    }
}

static bool a_saw_down_only(struct world *w)
{
    return w->nodes[0].downs >= 1;
}

static void test_connection_refused(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct node *a = add_node(w, NULL);
    uv_tcp_t tmp;
    struct sockaddr_in sin;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    struct addr to;
    uint8_t pk[32], sk[32];

    /* A port that was free a moment ago: nobody listens there. */
    uv_tcp_init(&w->loop, &tmp);
    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(uv_tcp_bind(&tmp, (struct sockaddr *)&sin, 0), 0);
    uv_tcp_getsockname(&tmp, (struct sockaddr *)&bound, &len);
    addr_from_ip("127.0.0.1", ntohs(((struct sockaddr_in *)&bound)->sin_port), &to);
    uv_close((uv_handle_t *)&tmp, NULL);
    crypto_box_keypair(pk, sk);
    assert_int_equal(links_send(a->links, pk, &to, (const uint8_t *)"x", 1), MP_OK);
    run_until(w, a_saw_down_only);
    assert_int_equal(stats_of(a).handshake_failed[LINK_REASON_CONNECT], 1);
    assert_int_equal(stats_of(a).dropped[LINK_DROP_LINK_DOWN], 1);
    struct addr none = {0};
    uint8_t pk2[32];
    crypto_box_keypair(pk2, sk);
    assert_int_equal(links_send(a->links, pk2, &none, (const uint8_t *)"x", 1), MP_ERR_NET_ADDR);
    world_free(w);
}

/* ---- three nodes, and callbacks that close ---- */

static bool all_got_all(struct world *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        if (w->nodes[i].received < 2 * 40)
            return false;
    }
    return true;
}

static void test_three_nodes_all_pairs(void **state)
{
    (void)state;
    struct world *w = world_new();
    for (unsigned i = 0; i < 3; i++)
        add_node(w, NULL);
    /* Each node sends 40 messages to each other node, all at once. */
    for (uint32_t seq = 1; seq <= 40; seq++) {
        for (unsigned i = 0; i < 3; i++) {
            for (unsigned j = 0; j < 3; j++) {
                if (i != j)
                    assert_int_equal(send_seq(&w->nodes[i], &w->nodes[j], seq, 200 + seq * 50),
                                     MP_OK);
            }
        }
    }
    /* Senders resend nothing here: simultaneous dials between each pair must
     * not lose what was queued (it waits for whichever link is kept). */
    run_until(w, all_got_all);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(w->nodes[i].received, 80);
        assert_false(w->nodes[i].content_broken);
    }
    run_until(w, settled);
    world_free(w);
}

static void close_on_message(void *arg, const uint8_t peer_pk[32], const uint8_t *msg, size_t len)
{
    struct node *nd = arg;
    message_cb(arg, peer_pk, msg, len);
    links_close(nd->links, NULL, NULL);
    nd->links = NULL;
}

static bool b_closed_itself(struct world *w)
{
    return w->nodes[1].links == NULL && w->nodes[0].downs >= 1;
}

static void test_close_from_a_callback(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct node *a = add_node(w, NULL);
    struct node *b = add_node(w, NULL);
    struct links *keep = b->links;
    links_close(keep, NULL, NULL);
    struct links_config cfg = {
        .env = &w->te.env, .static_secret = b->sk, .static_public = b->pk, .version = 1,
        .network_id = (const uint8_t *)"test", .network_id_len = 4,
        .message_cb = close_on_message, .link_state_cb = state_cb, .arg = b,
    };
    assert_int_equal(links_new(&w->loop, &cfg, &b->links), MP_OK);
    /* Several messages in one read: B closes on the first, the rest are not delivered. */
    for (uint32_t seq = 1; seq <= 10; seq++)
        assert_int_equal(send_seq(a, b, seq, 100), MP_OK);
    run_until(w, b_closed_itself);
    assert_int_equal(b->received, 1);
    assert_int_equal(b->downs, 0); /* no callbacks once closing */
    /* A is told its link went down. */
    assert_int_equal(a->downs, 1);
    /* world_free closes the rest; B's links is NULL (closed_cb comes at once). */
    world_free(w);
}

static bool b_accepted_all(struct world *w)
{
    return stats_of(&w->nodes[1]).accepted >= LINK_MAX_HANDSHAKES + 1;
}

static bool b_none_pending(struct world *w)
{
    return stats_of(&w->nodes[1]).handshakes_pending == 0;
}

/* Connections that never speak hold a handshake place each: one past the
 * cap is closed at once, and real peers get through again once they go. */
static void test_handshake_cap(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct node *a = add_node(w, NULL);
    struct node *b = add_node(w, NULL);
    int fds[LINK_MAX_HANDSHAKES + 1];
    struct sockaddr_in sin;

    uv_ip4_addr("127.0.0.1", b->addr.port, &sin);
    for (unsigned i = 0; i < LINK_MAX_HANDSHAKES + 1; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fds[i] >= 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sin, sizeof(sin)), 0);
    }
    run_until(w, b_accepted_all);
    struct links_stats sb = stats_of(b);
    assert_int_equal(sb.handshakes_pending, LINK_MAX_HANDSHAKES);
    assert_int_equal(sb.handshake_failed[LINK_REASON_LIMIT], 1);
    assert_int_equal(sb.refused, 1);
    for (unsigned i = 0; i < LINK_MAX_HANDSHAKES + 1; i++)
        close(fds[i]);
    run_until(w, b_none_pending);
    assert_int_equal(stats_of(b).refused, LINK_MAX_HANDSHAKES + 1);
    w->target = 1;
    assert_int_equal(send_seq(a, b, 1, 10), MP_OK);
    run_until(w, b_got_all);
    world_free(w);
}

static bool b_got_one_msg(struct world *w)
{
    return w->nodes[1].received >= 1;
}

/* A dialer that does not know B's key uses XX: B answers on a public
 * network, learns the dialer's key, and the link carries messages. A
 * private cluster refuses XX at the preamble (it would show its key). */
static void test_xx_dialer(void **state)
{
    (void)state;
    static const uint8_t psk[32] = "cluster secret for the XX test.";
    struct world *w = world_new();
    add_node(w, NULL);
    struct node *b = add_node(w, NULL);
    struct node_opts o = {.psk = psk};
    struct node *c = add_node(w, &o);
    struct rogue r;
    const uint8_t good[] = {LINK_FRAME_DATA, 0, 0, 0, 5, 0, 0, 0, 1, 0};

    rogue_connect(w, &r, b, NOISE_PATTERN_XX);
    assert_true(links_is_up(b->links, r.pk));
    rogue_frame(&r, good, sizeof(good), false);
    run_until(w, b_got_one_msg);
    /* B can answer over the link the XX dialer opened (no address needed). */
    assert_int_equal(links_send(b->links, r.pk, NULL, (const uint8_t *)"reply", 5), MP_OK);
    run_until_readable(w, r.fd);
    uint8_t buf[NOISE_MAX_MESSAGE], plain[NOISE_MAX_MESSAGE];
    size_t n = recv_noise(r.fd, buf), plen = 0;
    assert_int_equal(noise_cipher_decrypt(r.rx, buf, n, plain, sizeof(plain), &plen), MP_OK);
    assert_int_equal(plen, LINK_FRAME_DATA_HEADER + 5);
    assert_memory_equal(plain + LINK_FRAME_DATA_HEADER, "reply", 5);
    rogue_free(&r);

    struct raw raw;
    static const uint8_t xx_preamble[] = {'m', 'p', 1, 3, 0, 32};
    raws[0] = raws[1] = &raw;
    raw_send(w, &raw, c, xx_preamble, sizeof(xx_preamble));
    run_until(w, raws_cut_off);
    assert_int_equal(stats_of(c).handshake_failed[LINK_REASON_PREAMBLE], 1);
    uv_close((uv_handle_t *)&raw.tcp, NULL);
    world_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_round_trip),
        cmocka_unit_test(test_frames_violations),
        cmocka_unit_test(test_both_ways_in_order),
        cmocka_unit_test(test_large_messages_intact),
        cmocka_unit_test(test_window_and_busy),
        cmocka_unit_test(test_wrong_peer_key),
        cmocka_unit_test(test_psk),
        cmocka_unit_test(test_garbage_is_cut_off),
        cmocka_unit_test(test_simultaneous_dial),
        cmocka_unit_test(test_stalled_reader),
        cmocka_unit_test(test_handshake_timeout_and_backoff),
        cmocka_unit_test(test_idle_close_and_redial),
        cmocka_unit_test(test_shutdown_with_links_open),
        cmocka_unit_test(test_rogue_frames_close_the_link),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_three_nodes_all_pairs),
        cmocka_unit_test(test_close_from_a_callback),
        cmocka_unit_test(test_handshake_cap),
        cmocka_unit_test(test_xx_dialer),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
