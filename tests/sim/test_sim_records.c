/* Simulator: signed records. A record put from any node is got from any
 * other; a newer seq replaces an older one; forged records (bad signature,
 * wrong owner) are never stored or returned; expired records disappear; an
 * owner's published record outlives its own lifetime by being republished. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/identity.h"
#include "dht/record.h"
#include "tests/sim/simtest.h"
#include "tests/support/test_env.h"

#define NODES 300

struct fixture {
    struct sim *sim;
    struct test_env te;
};

static int setup(void **state)
{
    static struct fixture f;
    struct sim_config cfg;
    sim_config_default(&cfg, test_env_seed(7));
    f.sim = simtest_overlay(&cfg, NODES, 1000, 60 * 1000);
    test_env_init(&f.te, sim_seed(f.sim) + 99);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sim_free(f->sim);
    return 0;
}

static struct identity *new_owner(struct fixture *f)
{
    struct identity *id = NULL;
    assert_int_equal(identity_generate(&f->te.env, &id), MP_OK);
    return id;
}

static void make(struct fixture *f, struct identity *owner, uint64_t seq, const char *text,
                 uint64_t ttl_s, struct record *rec)
{
    uint64_t now_s = dht_network_time_s(sim_dht(f->sim, 0));
    assert_int_equal(record_make(owner, RECORD_KIND_PRESENCE, seq, now_s + ttl_s,
                                 (const uint8_t *)text, strlen(text), rec),
                     MP_OK);
}

static unsigned other_than(struct sim *sim, unsigned i)
{
    unsigned j;
    do {
        j = simtest_random_alive(sim);
    } while (j == i);
    return j;
}

static void test_put_anywhere_get_anywhere(void **state)
{
    struct fixture *f = *state;
    for (unsigned round = 0; round < 10; round++) {
        struct identity *owner = new_owner(f);
        struct record rec;
        struct simtest_result r;
        char text[32];
        snprintf(text, sizeof(text), "presence %u", round);
        make(f, owner, 1, text, 600, &rec);
        unsigned from = simtest_random_alive(f->sim);
        assert_int_equal(simtest_put(f->sim, from, &rec, &r), MP_OK);
        assert_true(r.stored >= DHT_K / 2);
        for (unsigned k = 0; k < 5; k++) {
            unsigned to = other_than(f->sim, from);
            assert_int_equal(simtest_get(f->sim, to, RECORD_KIND_PRESENCE,
                                         identity_public_key(owner), &r),
                             MP_OK);
            assert_true(r.has_record);
            assert_int_equal(r.record.payload_len, strlen(text));
            assert_memory_equal(r.record.payload, text, strlen(text));
        }
        /* Another kind of the same owner is a different record: absent. */
        assert_int_equal(simtest_get(f->sim, from, RECORD_KIND_PREKEYS,
                                     identity_public_key(owner), &r),
                         MP_ERR_NOT_FOUND);
        identity_free(owner);
    }
}

static void test_newer_seq_replaces_older(void **state)
{
    struct fixture *f = *state;
    struct identity *owner = new_owner(f);
    struct record old, newer;
    struct simtest_result r;
    make(f, owner, 5, "old address", 600, &old);
    make(f, owner, 6, "new address", 600, &newer);
    assert_int_equal(simtest_put(f->sim, 1, &old, &r), MP_OK);
    assert_int_equal(simtest_put(f->sim, 2, &newer, &r), MP_OK);
    /* The old one put again (a replay) does not win back. */
    assert_int_equal(simtest_put(f->sim, 3, &old, &r), MP_OK);
    for (unsigned k = 0; k < 5; k++) {
        assert_int_equal(simtest_get(f->sim, simtest_random_alive(f->sim), RECORD_KIND_PRESENCE,
                                     identity_public_key(owner), &r),
                         MP_OK);
        assert_true(r.record.seq == 6);
        assert_memory_equal(r.record.payload, "new address", 11);
    }
    identity_free(owner);
}

/* ---- an attacker that speaks the protocol by hand ---- */

struct attacker {
    struct box_key *key;
    bool got;
    struct dht_msg last;
};

static void attacker_rx(void *ctx, const struct addr *from, const uint8_t *data, size_t len)
{
    struct attacker *a = ctx;
    (void)from;
    struct dht_msg m;
    /* Answers only: a victim may also ping the stranger back. */
    if (simtest_open(a->key, NULL, data, len, &m) && !dht_wire_is_request(m.type)) {
        a->last = m;
        a->got = true;
    }
}

static uint64_t nonce_counter;

/* Ask node `victim` for a token, then put rec there; returns the put status. */
static int attacker_put(struct fixture *f, unsigned me, struct attacker *a, unsigned victim,
                        const struct record *rec)
{
    uint8_t dgram[DHT_DATAGRAM_MAX];
    struct dht_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DHT_MSG_GET;
    m.tid = 77;
    record_key(rec->kind, rec->owner, m.target);
    size_t n = simtest_seal(a->key, sim_pk(f->sim, victim), NULL, ++nonce_counter, &m, dgram);
    assert_true(n > 0);
    a->got = false;
    sim_send_from(f->sim, me, sim_addr(f->sim, victim), dgram, n);
    sim_run_for(f->sim, 500);
    assert_true(a->got);
    assert_int_equal(a->last.type, DHT_MSG_GOT);
    memset(&m, 0, sizeof(m));
    m.type = DHT_MSG_PUT;
    m.tid = 78;
    memcpy(m.token, a->last.token, sizeof(m.token));
    m.has_record = true;
    m.record = *rec;
    n = simtest_seal(a->key, sim_pk(f->sim, victim), NULL, ++nonce_counter, &m, dgram);
    assert_true(n > 0);
    a->got = false;
    sim_send_from(f->sim, me, sim_addr(f->sim, victim), dgram, n);
    sim_run_for(f->sim, 500);
    assert_true(a->got);
    assert_int_equal(a->last.type, DHT_MSG_PUT_ACK);
    return a->last.status;
}

static void test_forged_records_never_returned(void **state)
{
    struct fixture *f = *state;
    struct attacker a = {0};
    assert_int_equal(box_key_generate(&f->te.env, &a.key), MP_OK);
    unsigned me = sim_add_outsider(f->sim, attacker_rx, &a);
    struct identity *victim_owner = new_owner(f);
    struct identity *mallory = new_owner(f);

    /* The honest record is out there first. */
    struct record honest, bad_sig, wrong_owner;
    struct simtest_result r;
    make(f, victim_owner, 10, "honest", 600, &honest);
    assert_int_equal(simtest_put(f->sim, 5, &honest, &r), MP_OK);

    /* Forgery 1: a higher seq, payload changed after signing. */
    bad_sig = honest;
    bad_sig.seq = 11;
    memcpy(bad_sig.payload, "forged", 6);
    /* Forgery 2: signed by mallory, owner field says victim. */
    make(f, mallory, 12, "forged", 600, &wrong_owner);
    memcpy(wrong_owner.owner, identity_public_key(victim_owner), RECORD_OWNER_BYTES);

    /* Push both to the nodes that hold the record. */
    uint8_t key[RECORD_KEY_BYTES];
    record_key(RECORD_KIND_PRESENCE, identity_public_key(victim_owner), key);
    assert_int_equal(simtest_lookup(f->sim, 6, key, &r), MP_OK);
    uint64_t before = 0, after = 0;
    for (unsigned i = 0; i < NODES; i++) {
        struct dht_stats st;
        dht_get_stats(sim_dht(f->sim, i), &st);
        before += st.drops[DHT_DROP_BAD_RECORD];
    }
    for (size_t k = 0; k < r.count; k++) {
        int v = sim_find_id(f->sim, r.nodes[k].id);
        assert_true(v >= 0);
        assert_int_equal(attacker_put(f, me, &a, (unsigned)v, &bad_sig), DHT_PUT_BAD_RECORD);
        assert_int_equal(attacker_put(f, me, &a, (unsigned)v, &wrong_owner), DHT_PUT_BAD_RECORD);
    }
    for (unsigned i = 0; i < NODES; i++) {
        struct dht_stats st;
        dht_get_stats(sim_dht(f->sim, i), &st);
        after += st.drops[DHT_DROP_BAD_RECORD];
    }
    assert_int_equal(after - before, 2 * r.count);
    /* Every get still returns the honest record. */
    for (unsigned k = 0; k < 10; k++) {
        assert_int_equal(simtest_get(f->sim, simtest_random_alive(f->sim), RECORD_KIND_PRESENCE,
                                     identity_public_key(victim_owner), &r),
                         MP_OK);
        assert_true(r.record.seq == 10);
        assert_memory_equal(r.record.payload, "honest", 6);
    }
    /* And a node refuses to put a forged record itself. */
    assert_int_equal(dht_put(sim_dht(f->sim, 7), &bad_sig, NULL, NULL), MP_ERR_RECORD_FORGED);
    assert_int_equal(dht_put(sim_dht(f->sim, 7), &wrong_owner, NULL, NULL), MP_ERR_RECORD_FORGED);
    identity_free(victim_owner);
    identity_free(mallory);
    box_key_free(a.key);
}

static size_t records_held(struct sim *sim)
{
    size_t n = 0;
    for (unsigned i = 0; i < sim_count(sim); i++) {
        if (!sim_alive(sim, i))
            continue;
        struct dht_stats st;
        dht_get_stats(sim_dht(sim, i), &st);
        n += st.records;
    }
    return n;
}

static void test_expired_records_disappear(void **state)
{
    struct fixture *f = *state;
    struct identity *owner = new_owner(f);
    struct record rec;
    struct simtest_result r;
    size_t held_before = records_held(f->sim);
    make(f, owner, 1, "short-lived", 120, &rec);
    assert_int_equal(simtest_put(f->sim, 9, &rec, &r), MP_OK);
    assert_true(records_held(f->sim) > held_before);
    assert_int_equal(simtest_get(f->sim, 10, RECORD_KIND_PRESENCE, identity_public_key(owner), &r),
                     MP_OK);
    /* Past its expiry (plus one sweep period) no node holds or returns it. */
    sim_run_for(f->sim, (120 + 61) * 1000);
    assert_int_equal(simtest_get(f->sim, 10, RECORD_KIND_PRESENCE, identity_public_key(owner), &r),
                     MP_ERR_NOT_FOUND);
    assert_false(r.has_record);
    assert_true(records_held(f->sim) <= held_before);
    /* An expired record cannot be put again either. */
    assert_int_equal(dht_put(sim_dht(f->sim, 9), &rec, NULL, NULL), MP_ERR_RECORD_EXPIRED);
    identity_free(owner);
}

static void test_owner_republishes(void **state)
{
    struct fixture *f = *state;
    struct identity *owner = new_owner(f);
    struct simtest_result r;
    const uint8_t bundle[] = "prekey bundle bytes";
    assert_int_equal(dht_publish(sim_dht(f->sim, 11), owner, RECORD_KIND_PREKEYS, bundle,
                                 sizeof(bundle), 120, NULL, NULL),
                     MP_OK);
    sim_poke(f->sim, 11);
    sim_run_for(f->sim, 10 * 1000);
    assert_int_equal(simtest_get(f->sim, 12, RECORD_KIND_PREKEYS, identity_public_key(owner), &r),
                     MP_OK);
    uint64_t first_seq = r.record.seq;
    /* Ten minutes: five lifetimes. Republished every minute, it is still there. */
    sim_run_for(f->sim, 10 * 60 * 1000);
    assert_int_equal(simtest_get(f->sim, 12, RECORD_KIND_PREKEYS, identity_public_key(owner), &r),
                     MP_OK);
    assert_true(r.record.seq > first_seq);
    assert_memory_equal(r.record.payload, bundle, sizeof(bundle));
    /* Unpublished, it expires. */
    dht_unpublish(sim_dht(f->sim, 11), RECORD_KIND_PREKEYS, identity_public_key(owner));
    sim_run_for(f->sim, 4 * 60 * 1000);
    assert_int_equal(simtest_get(f->sim, 12, RECORD_KIND_PREKEYS, identity_public_key(owner), &r),
                     MP_ERR_NOT_FOUND);
    identity_free(owner);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_anywhere_get_anywhere),
        cmocka_unit_test(test_newer_seq_replaces_older),
        cmocka_unit_test(test_forged_records_never_returned),
        cmocka_unit_test(test_expired_records_disappear),
        cmocka_unit_test(test_owner_republishes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
