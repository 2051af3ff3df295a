/* Unit tests for one dht node fed hand-made datagrams: answers, every drop
 * reason counted, write tokens bound to the requester's address and
 * rotating, bounded record storage, API errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/box.h"
#include "dht/dht.h"
#include "tests/sim/simtest.h"
#include "tests/support/test_env.h"

struct rig {
    struct test_env te;
    struct box_key *node_key;
    struct box_key *peer_key; /* the test's side */
    struct dht *dht;
    struct addr peer_addr;
    uint8_t out[4][DHT_DATAGRAM_MAX]; /* the node's datagrams, cycling */
    size_t out_len[4];
    unsigned sent;
    uint64_t nonce;
};

static enum mp_err capture(void *ctx, const struct addr *to, const uint8_t *buf, size_t len)
{
    struct rig *r = (struct rig *)ctx; /* te is the first member */
    (void)to;
    memcpy(r->out[r->sent % 4], buf, len);
    r->out_len[r->sent % 4] = len;
    r->sent++;
    return MP_OK;
}

static void rig_up(struct rig *r, const struct dht_config *cfg)
{
    memset(r, 0, sizeof(*r));
    test_env_init(&r->te, test_env_seed(31));
    r->te.env.send = capture;
    assert_int_equal(box_key_generate(&r->te.env, &r->node_key), MP_OK);
    assert_int_equal(box_key_generate(&r->te.env, &r->peer_key), MP_OK);
    struct dht_config def;
    dht_config_default(&def);
    assert_int_equal(dht_new(&r->te.env, r->node_key, cfg ? cfg : &def, &r->dht), MP_OK);
    assert_int_equal(addr_parse("192.0.2.1:5000", &r->peer_addr), MP_OK);
}

static void rig_down(struct rig *r)
{
    dht_free(r->dht);
    box_key_free(r->node_key);
    box_key_free(r->peer_key);
}

/* Send m from the peer at addr; true when the node answered (answer in *ans). */
static bool ask(struct rig *r, const struct addr *from, struct dht_msg *m, struct dht_msg *ans)
{
    uint8_t d[DHT_DATAGRAM_MAX];
    size_t n = simtest_seal(r->peer_key, box_key_public(r->node_key), NULL, ++r->nonce, m, d);
    assert_true(n > 0);
    unsigned before = r->sent;
    dht_on_datagram(r->dht, from, d, n);
    if (r->sent == before)
        return false;
    /* The answer is the first datagram; a ping-back may follow it. */
    return simtest_open(r->peer_key, NULL, r->out[before % 4], r->out_len[before % 4], ans);
}

static uint64_t drops(struct rig *r, enum dht_drop why)
{
    struct dht_stats st;
    dht_get_stats(r->dht, &st);
    return st.drops[why];
}

static void test_ping_is_answered_with_observed_address(void **state)
{
    (void)state;
    struct rig r;
    rig_up(&r, NULL);
    struct dht_msg m = {0}, ans;
    m.type = DHT_MSG_PING;
    m.tid = 1234;
    assert_true(ask(&r, &r.peer_addr, &m, &ans));
    assert_int_equal(ans.type, DHT_MSG_PONG);
    assert_int_equal(ans.tid, 1234);
    assert_true(addr_equal(&ans.observed, &r.peer_addr));
    /* A stranger that asked gets pinged back (to be proven alive). */
    assert_int_equal(r.sent, 2);
    assert_true(simtest_open(r.peer_key, NULL, r.out[1], r.out_len[1], &ans));
    assert_int_equal(ans.type, DHT_MSG_PING);
    /* Answering that ping puts the peer in the table. */
    struct dht_msg pong = {0}, none;
    pong.type = DHT_MSG_PONG;
    pong.tid = ans.tid;
    pong.observed = r.peer_addr;
    ask(&r, &r.peer_addr, &pong, &none);
    struct dht_peer peers[4];
    assert_int_equal(dht_peers(r.dht, peers, 4), 1);
    assert_memory_equal(peers[0].pk, box_key_public(r.peer_key), 32);
    /* The same answer again matches no request. */
    ask(&r, &r.peer_addr, &pong, &none);
    assert_int_equal(drops(&r, DHT_DROP_UNKNOWN_TX), 1);
    rig_down(&r);
}

static void test_every_bad_datagram_is_counted(void **state)
{
    (void)state;
    struct rig r;
    rig_up(&r, NULL);
    uint8_t d[DHT_DATAGRAM_MAX + 10];
    struct dht_msg m = {0};
    m.type = DHT_MSG_PING;
    size_t n = simtest_seal(r.peer_key, box_key_public(r.node_key), NULL, 1, &m, d);

    dht_on_datagram(r.dht, &r.peer_addr, d, 20);
    assert_int_equal(drops(&r, DHT_DROP_SHORT), 1);
    memset(d + n, 0, sizeof(d) - n);
    dht_on_datagram(r.dht, &r.peer_addr, d, DHT_DATAGRAM_MAX + 1);
    assert_int_equal(drops(&r, DHT_DROP_TOO_BIG), 1);
    d[0] = 2;
    dht_on_datagram(r.dht, &r.peer_addr, d, n);
    assert_int_equal(drops(&r, DHT_DROP_VERSION), 1);
    d[0] = 1;
    d[n - 1] ^= 1;
    dht_on_datagram(r.dht, &r.peer_addr, d, n);
    assert_int_equal(drops(&r, DHT_DROP_AUTH), 1);
    /* Sealed for another network (a private cluster's secret). */
    uint8_t secret[32];
    memset(secret, 9, sizeof(secret));
    n = simtest_seal(r.peer_key, box_key_public(r.node_key), secret, 2, &m, d);
    dht_on_datagram(r.dht, &r.peer_addr, d, n);
    assert_int_equal(drops(&r, DHT_DROP_AUTH), 2);
    /* Our own key as sender. */
    n = simtest_seal(r.peer_key, box_key_public(r.node_key), NULL, 3, &m, d);
    memcpy(d + 1, box_key_public(r.node_key), 32);
    dht_on_datagram(r.dht, &r.peer_addr, d, n);
    assert_int_equal(drops(&r, DHT_DROP_SELF), 1);
    /* A small-order sender key. */
    memset(d + 1, 0, 32);
    dht_on_datagram(r.dht, &r.peer_addr, d, n);
    assert_int_equal(drops(&r, DHT_DROP_BAD_KEY), 1);
    /* Authentic but not a message: an answer type with a bad field. */
    struct dht_msg ack = {0};
    ack.type = DHT_MSG_PUT_ACK;
    ack.status = 99; /* encodes, does not decode */
    n = simtest_seal(r.peer_key, box_key_public(r.node_key), NULL, 4, &ack, d);
    dht_on_datagram(r.dht, &r.peer_addr, d, n);
    assert_int_equal(drops(&r, DHT_DROP_MALFORMED), 1);
    assert_int_equal(r.sent, 0); /* nothing was answered */
    assert_string_equal(dht_drop_name(DHT_DROP_AUTH), "auth");
    assert_string_equal(dht_drop_name(DHT_DROP_COUNT), "unknown");
    rig_down(&r);
}

static void test_rate_limit_per_source(void **state)
{
    (void)state;
    struct dht_config cfg;
    dht_config_default(&cfg);
    cfg.rate_per_s = 5;
    cfg.rate_burst = 5;
    struct rig r;
    rig_up(&r, &cfg);
    struct dht_msg m = {0}, ans;
    m.type = DHT_MSG_PING;
    unsigned answered = 0;
    for (unsigned i = 0; i < 8; i++)
        answered += ask(&r, &r.peer_addr, &m, &ans);
    assert_int_equal(answered, 5);
    assert_int_equal(drops(&r, DHT_DROP_RATE), 3);
    /* Another IP is not affected; the first recovers after a second. */
    struct addr other;
    assert_int_equal(addr_parse("192.0.2.2:5000", &other), MP_OK);
    assert_true(ask(&r, &other, &m, &ans));
    r.te.now_ms += 1000;
    assert_true(ask(&r, &r.peer_addr, &m, &ans));
    rig_down(&r);
}

static struct record signed_record(struct rig *r, unsigned kind)
{
    struct identity *owner = NULL;
    struct record rec;
    assert_int_equal(identity_generate(&r->te.env, &owner), MP_OK);
    assert_int_equal(record_make(owner, kind, 1, dht_network_time_s(r->dht) + 600,
                                 (const uint8_t *)"x", 1, &rec),
                     MP_OK);
    identity_free(owner);
    return rec;
}

static int put_with_token(struct rig *r, const struct addr *get_from, const struct addr *put_from,
                          const struct record *rec)
{
    struct dht_msg m = {0}, ans;
    m.type = DHT_MSG_GET;
    record_key(rec->kind, rec->owner, m.target);
    assert_true(ask(r, get_from, &m, &ans));
    assert_int_equal(ans.type, DHT_MSG_GOT);
    memset(&m, 0, sizeof(m));
    m.type = DHT_MSG_PUT;
    memcpy(m.token, ans.token, sizeof(m.token));
    m.has_record = true;
    m.record = *rec;
    assert_true(ask(r, put_from, &m, &ans));
    assert_int_equal(ans.type, DHT_MSG_PUT_ACK);
    return ans.status;
}

static void test_token_bound_to_address_and_rotating(void **state)
{
    (void)state;
    struct rig r;
    rig_up(&r, NULL);
    struct addr elsewhere;
    assert_int_equal(addr_parse("198.51.100.9:5000", &elsewhere), MP_OK);
    struct record rec = signed_record(&r, RECORD_KIND_PRESENCE);
    /* A token fetched from one address does not work from another. */
    assert_int_equal(put_with_token(&r, &r.peer_addr, &elsewhere, &rec), DHT_PUT_BAD_TOKEN);
    assert_int_equal(drops(&r, DHT_DROP_BAD_TOKEN), 1);
    assert_int_equal(put_with_token(&r, &r.peer_addr, &r.peer_addr, &rec), DHT_PUT_STORED);
    assert_int_equal(put_with_token(&r, &r.peer_addr, &r.peer_addr, &rec), DHT_PUT_STALE);
    /* The stored record is what a get returns now. */
    struct dht_msg m = {0}, ans;
    m.type = DHT_MSG_GET;
    record_key(rec.kind, rec.owner, m.target);
    assert_true(ask(&r, &r.peer_addr, &m, &ans));
    assert_true(ans.has_record);
    assert_memory_equal(&ans.record, &rec, sizeof(rec));
    /* A token survives one rotation, not two. */
    uint8_t token[16];
    memcpy(token, ans.token, sizeof(token));
    struct record rec2 = signed_record(&r, RECORD_KIND_PREKEYS);
    r.te.now_ms += DHT_TOKEN_ROTATE_MS;
    dht_tick(r.dht);
    r.te.now_ms += DHT_TOKEN_ROTATE_MS;
    dht_tick(r.dht);
    memset(&m, 0, sizeof(m));
    m.type = DHT_MSG_PUT;
    memcpy(m.token, token, sizeof(token));
    m.has_record = true;
    m.record = rec2;
    assert_true(ask(&r, &r.peer_addr, &m, &ans));
    assert_int_equal(ans.status, DHT_PUT_BAD_TOKEN);
    rig_down(&r);
}

static void test_record_store_is_bounded(void **state)
{
    (void)state;
    struct dht_config cfg;
    dht_config_default(&cfg);
    cfg.max_records = 2;
    struct rig r;
    rig_up(&r, &cfg);
    for (unsigned i = 0; i < 3; i++) {
        struct record rec = signed_record(&r, RECORD_KIND_PRESENCE);
        assert_int_equal(put_with_token(&r, &r.peer_addr, &r.peer_addr, &rec),
                         i < 2 ? DHT_PUT_STORED : DHT_PUT_FULL);
    }
    struct dht_stats st;
    dht_get_stats(r.dht, &st);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.drops[DHT_DROP_STORE_FULL], 1);
    rig_down(&r);
}

static void test_api_errors_and_tick_bounds(void **state)
{
    (void)state;
    struct rig r;
    rig_up(&r, NULL);
    uint8_t target[32] = {0};
    assert_int_equal(dht_lookup(r.dht, target, NULL, NULL), MP_ERR_DHT_NO_PEERS);
    assert_int_equal(dht_bootstrap(r.dht, box_key_public(r.node_key), &r.peer_addr),
                     MP_ERR_INVAL);
    struct addr none = {0};
    assert_int_equal(dht_bootstrap(r.dht, box_key_public(r.peer_key), &none), MP_ERR_INVAL);
    uint64_t d = dht_tick(r.dht);
    assert_true(d >= 1 && d <= DHT_TICK_MAX_MS);
    /* A bootstrap ping that is never answered is repeated with backoff. */
    assert_int_equal(dht_bootstrap(r.dht, box_key_public(r.peer_key), &r.peer_addr), MP_OK);
    assert_int_equal(r.sent, 1);
    for (unsigned i = 0; i < 20; i++) {
        r.te.now_ms += dht_tick(r.dht);
    }
    assert_true(r.sent >= 4);
    struct dht_stats st;
    dht_get_stats(r.dht, &st);
    assert_true(st.timeouts >= 3);
    assert_true(dht_memory(r.dht) > 0);
    rig_down(&r);
}

/* The last datagram the node sent, opened by the peer. */
static void last_sent(struct rig *r, struct dht_msg *m)
{
    unsigned i = (r->sent - 1) % 4;
    assert_true(simtest_open(r->peer_key, NULL, r->out[i], r->out_len[i], m));
}

static void reply(struct rig *r, struct dht_msg *m)
{
    uint8_t d[DHT_DATAGRAM_MAX];
    size_t n = simtest_seal(r->peer_key, box_key_public(r->node_key), NULL, ++r->nonce, m, d);
    assert_true(n > 0);
    dht_on_datagram(r->dht, &r->peer_addr, d, n);
}

struct got {
    bool done;
    enum mp_err status;
    bool has;
    struct record rec;
};

static void got_cb(void *arg, enum mp_err status, const struct record *rec,
                   const struct dht_lookup_info *info)
{
    struct got *g = arg;
    (void)info;
    g->done = true;
    g->status = status;
    g->has = rec != NULL;
    if (rec != NULL)
        g->rec = *rec;
}

/* The node knows only the peer, which answers its get with `answer`. */
static void get_from_liar(struct rig *r, const uint8_t owner[32], const struct record *answer,
                          struct got *g)
{
    struct dht_msg m, ans;
    memset(g, 0, sizeof(*g));
    assert_int_equal(dht_get(r->dht, RECORD_KIND_PRESENCE, owner, got_cb, g), MP_OK);
    dht_tick(r->dht);
    last_sent(r, &m);
    assert_int_equal(m.type, DHT_MSG_GET);
    memset(&ans, 0, sizeof(ans));
    ans.type = DHT_MSG_GOT;
    ans.tid = m.tid;
    ans.has_record = true;
    ans.record = *answer;
    reply(r, &ans);
    dht_tick(r->dht);
    assert_true(g->done);
}

static void test_get_rejects_forged_answers(void **state)
{
    (void)state;
    struct rig r;
    struct dht_msg m, ans;
    rig_up(&r, NULL);
    /* Join through the peer: it answers the ping and the own-id lookup. */
    assert_int_equal(dht_bootstrap(r.dht, box_key_public(r.peer_key), &r.peer_addr), MP_OK);
    last_sent(&r, &m);
    memset(&ans, 0, sizeof(ans));
    ans.type = DHT_MSG_PONG;
    ans.tid = m.tid;
    ans.observed = r.peer_addr;
    reply(&r, &ans);
    dht_tick(r.dht);
    last_sent(&r, &m);
    assert_int_equal(m.type, DHT_MSG_FIND_NODE);
    memset(&ans, 0, sizeof(ans));
    ans.type = DHT_MSG_NODES;
    ans.tid = m.tid;
    reply(&r, &ans);
    dht_tick(r.dht);

    struct identity *owner = NULL, *other = NULL;
    struct record good, forged, elsewhere;
    uint64_t now_s = dht_network_time_s(r.dht);
    struct got g;
    assert_int_equal(identity_generate(&r.te.env, &owner), MP_OK);
    assert_int_equal(identity_generate(&r.te.env, &other), MP_OK);
    assert_int_equal(record_make(owner, RECORD_KIND_PRESENCE, 3, now_s + 600,
                                 (const uint8_t *)"real", 4, &good),
                     MP_OK);
    /* Bad signature. */
    forged = good;
    forged.seq = 4;
    get_from_liar(&r, identity_public_key(owner), &forged, &g);
    assert_int_equal(g.status, MP_ERR_NOT_FOUND);
    assert_false(g.has);
    assert_int_equal(drops(&r, DHT_DROP_BAD_RECORD), 1);
    /* Genuine, but another owner's record: not what was asked for. */
    assert_int_equal(record_make(other, RECORD_KIND_PRESENCE, 9, now_s + 600,
                                 (const uint8_t *)"other", 5, &elsewhere),
                     MP_OK);
    get_from_liar(&r, identity_public_key(owner), &elsewhere, &g);
    assert_int_equal(g.status, MP_ERR_NOT_FOUND);
    assert_int_equal(drops(&r, DHT_DROP_BAD_RECORD), 2);
    /* The genuine one is returned. */
    get_from_liar(&r, identity_public_key(owner), &good, &g);
    assert_int_equal(g.status, MP_OK);
    assert_true(g.has);
    assert_memory_equal(&g.rec, &good, sizeof(good));
    identity_free(owner);
    identity_free(other);
    rig_down(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_is_answered_with_observed_address),
        cmocka_unit_test(test_every_bad_datagram_is_counted),
        cmocka_unit_test(test_rate_limit_per_source),
        cmocka_unit_test(test_token_bound_to_address_and_rotating),
        cmocka_unit_test(test_record_store_is_bounded),
        cmocka_unit_test(test_api_errors_and_tick_bounds),
        cmocka_unit_test(test_get_rejects_forged_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
