/* Unit tests for node/sessions.c over real stores: sessions open from a
 * bundle, survive restarts, resolve both sides opening at once, and refuse
 * replays and envelopes for others. */
#define _GNU_SOURCE /* mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto/envelope.h"
#include "node/sessions.h"
#include "tests/support/test_env.h"

#define NOW 1796000000000ull

struct party {
    char dir[64];
    struct store *store;
    struct identity *id;
    struct sessions *sessions;
};

static struct test_env te;

static void party_open(struct party *p)
{
    pid_t holder;
    assert_int_equal(store_open(p->dir, &p->store, &holder), MP_OK);
    assert_int_equal(sessions_new(&te.env, p->store, p->id, NOW, &p->sessions), MP_OK);
}

static void party_close(struct party *p)
{
    sessions_free(p->sessions);
    store_close(p->store);
    p->sessions = NULL;
    p->store = NULL;
}

static void party_new(struct party *p, uint8_t seed_byte)
{
    uint8_t seed[IDENTITY_SEED_BYTES];
    memset(seed, seed_byte, sizeof(seed));
    snprintf(p->dir, sizeof(p->dir), "/tmp/mp-session-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    assert_int_equal(identity_from_seed(seed, &p->id), MP_OK);
    party_open(p);
}

static void party_free(struct party *p)
{
    char cmd[sizeof("rm -rf ") + sizeof(p->dir)];
    party_close(p);
    identity_free(p->id);
    snprintf(cmd, sizeof(cmd), "rm -rf %.*s", (int)sizeof(p->dir), p->dir);
    assert_int_equal(system(cmd), 0);
}

static void seal(struct party *from, struct party *to, const char *text, struct buf *env_out)
{
    struct prekey_bundle bundle;
    bool changed;
    assert_int_equal(sessions_bundle(to->sessions, NOW, &bundle, &changed), MP_OK);
    struct store_batch *batch = store_batch_new();
    enum mp_err err = sessions_seal(from->sessions, identity_public_key(to->id), &bundle, NOW,
                                    (const uint8_t *)text, strlen(text), batch, env_out);
    assert_int_equal(err, MP_OK);
    assert_int_equal(store_batch_write(from->store, batch, true), MP_OK);
    store_batch_free(batch);
}

static enum mp_err open_env(struct party *to, const struct buf *env, struct party *want_from,
                            const char *want_text)
{
    uint8_t sender[IDENTITY_PUBLIC_BYTES];
    struct buf pt;
    struct store_batch *batch = store_batch_new();
    enum mp_err err = sessions_open(to->sessions, env->data, env->len, NOW, batch, sender, &pt);
    if (err == MP_OK) {
        assert_int_equal(store_batch_write(to->store, batch, true), MP_OK);
        assert_memory_equal(sender, identity_public_key(want_from->id), IDENTITY_PUBLIC_BYTES);
        assert_int_equal(pt.len, strlen(want_text));
        assert_memory_equal(pt.data, want_text, pt.len);
        buf_free(&pt);
    }
    store_batch_free(batch);
    return err;
}

static void exchange(struct party *from, struct party *to, const char *text)
{
    struct buf env;
    seal(from, to, text, &env);
    assert_int_equal(open_env(to, &env, from, text), MP_OK);
    buf_free(&env);
}

static void test_first_contact_and_conversation(void **state)
{
    (void)state;
    struct party a, b;
    party_new(&a, 1);
    party_new(&b, 2);
    assert_false(sessions_has(a.sessions, identity_public_key(b.id)));
    exchange(&a, &b, "hello b");
    assert_true(sessions_has(a.sessions, identity_public_key(b.id)));
    assert_true(sessions_has(b.sessions, identity_public_key(a.id)));
    exchange(&a, &b, "are you there?");
    exchange(&b, &a, "yes");
    for (int i = 0; i < 50; i++) {
        char text[32];
        snprintf(text, sizeof(text), "message %d", i);
        if (i % 3 == 0)
            exchange(&b, &a, text);
        else
            exchange(&a, &b, text);
    }
    /* Both restart; the sessions continue exactly. */
    party_close(&a);
    party_close(&b);
    party_open(&a);
    party_open(&b);
    exchange(&a, &b, "after restart");
    exchange(&b, &a, "still here");
    party_free(&a);
    party_free(&b);
}

static void test_out_of_order_and_replay(void **state)
{
    (void)state;
    struct party a, b;
    party_new(&a, 3);
    party_new(&b, 4);
    struct buf e1, e2, e3;
    seal(&a, &b, "one", &e1);
    seal(&a, &b, "two", &e2);
    seal(&a, &b, "three", &e3);
    /* Arrive 3, 1, 2; each carries the X3DH part until b answers. */
    assert_int_equal(open_env(&b, &e3, &a, "three"), MP_OK);
    assert_int_equal(open_env(&b, &e1, &a, "one"), MP_OK);
    assert_int_equal(open_env(&b, &e2, &a, "two"), MP_OK);
    /* The same envelope again is a replay, and changes nothing. */
    assert_int_equal(open_env(&b, &e2, &a, "two"), MP_ERR_RATCHET_REPLAY);
    exchange(&b, &a, "got them");
    exchange(&a, &b, "good");
    buf_free(&e1);
    buf_free(&e2);
    buf_free(&e3);
    party_free(&a);
    party_free(&b);
}

static void test_both_open_at_once(void **state)
{
    (void)state;
    struct party a, b;
    party_new(&a, 5);
    party_new(&b, 6);
    struct buf from_a, from_b;
    seal(&a, &b, "hi from a", &from_a);
    seal(&b, &a, "hi from b", &from_b);
    assert_int_equal(open_env(&b, &from_a, &a, "hi from a"), MP_OK);
    assert_int_equal(open_env(&a, &from_b, &b, "hi from b"), MP_OK);
    buf_free(&from_a);
    buf_free(&from_b);
    /* Whatever the tie-break chose, both sides read each other from now on. */
    for (int i = 0; i < 10; i++) {
        exchange(&a, &b, "ping");
        exchange(&b, &a, "pong");
    }
    party_free(&a);
    party_free(&b);
}

static void test_refusals(void **state)
{
    (void)state;
    struct party a, b, c;
    party_new(&a, 7);
    party_new(&b, 8);
    party_new(&c, 9);
    struct buf env;
    struct store_batch *batch = store_batch_new();
    /* No session and no bundle. */
    assert_int_equal(sessions_seal(a.sessions, identity_public_key(b.id), NULL, NOW,
                                   (const uint8_t *)"x", 1, batch, &env),
                     MP_ERR_NOT_FOUND);
    /* A bundle of someone else for b is refused. */
    struct prekey_bundle other;
    bool changed;
    assert_int_equal(sessions_bundle(c.sessions, NOW, &other, &changed), MP_OK);
    assert_int_equal(sessions_seal(a.sessions, identity_public_key(b.id), &other, NOW,
                                   (const uint8_t *)"x", 1, batch, &env),
                     MP_ERR_PREKEY_OWNER);
    store_batch_free(batch);
    /* An envelope for b does not open at c. */
    seal(&a, &b, "for b only", &env);
    assert_int_equal(open_env(&c, &env, &a, "for b only"), MP_ERR_ENVELOPE_OPEN);
    assert_int_equal(open_env(&b, &env, &a, "for b only"), MP_OK);
    buf_free(&env);
    party_free(&a);
    party_free(&b);
    party_free(&c);
}

static void test_discarded_batch_opens_again(void **state)
{
    (void)state;
    struct party a, b;
    party_new(&a, 10);
    party_new(&b, 11);
    struct buf env, pt;
    uint8_t sender[IDENTITY_PUBLIC_BYTES];
    seal(&a, &b, "first contact", &env);
    /* b opens it but drops the batch (say the disk was full)... */
    struct store_batch *batch = store_batch_new();
    assert_int_equal(sessions_open(b.sessions, env.data, env.len, NOW, batch, sender, &pt), MP_OK);
    buf_free(&pt);
    store_batch_free(batch);
    assert_int_equal(sessions_discard(b.sessions), MP_OK);
    /* ...so the resent envelope must open again, not count as a replay. */
    assert_int_equal(open_env(&b, &env, &a, "first contact"), MP_OK);
    assert_int_equal(open_env(&b, &env, &a, "first contact"), MP_ERR_RATCHET_REPLAY);
    buf_free(&env);
    exchange(&b, &a, "got it");
    party_free(&a);
    party_free(&b);
}

/* More peers than the sender keeps sealing keys for, sealed to in turns that
 * miss and hit its cache: each envelope opens for its own peer only. */
static void test_many_peers(void **state)
{
    (void)state;
    enum { PEERS = 18 };
    struct party a, peers[PEERS];
    party_new(&a, 20);
    for (int i = 0; i < PEERS; i++)
        party_new(&peers[i], (uint8_t)(21 + i));
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < PEERS; i++) {
            /* round 2 goes back and forth between the newest and oldest peers */
            int k = round < 2 ? i : (i % 2 == 0 ? PEERS - 1 - i / 2 : i / 2);
            char text[32];
            snprintf(text, sizeof(text), "round %d to %d", round, k);
            struct buf env;
            seal(&a, &peers[k], text, &env);
            assert_int_equal(open_env(&peers[(k + 1) % PEERS], &env, &a, text),
                             MP_ERR_ENVELOPE_OPEN);
            assert_int_equal(open_env(&peers[k], &env, &a, text), MP_OK);
            buf_free(&env);
        }
    }
    for (int i = 0; i < PEERS; i++)
        party_free(&peers[i]);
    party_free(&a);
}

/* Seal text from `from` to `to` (whose session exists), saving the state if
 * save; whether the seal was under an earlier lease. */
static bool seal_noting_lease(struct party *from, struct party *to, const char *text,
                              struct buf *env_out, bool save)
{
    struct store_batch *batch = store_batch_new();
    struct buf pt = {.data = (uint8_t *)text, .len = strlen(text)};
    bool leased = false;
    assert_int_equal(sessions_seal_many(from->sessions, identity_public_key(to->id), NULL, NOW, &pt,
                                        1, batch, env_out, &leased),
                     MP_OK);
    if (save)
        assert_int_equal(store_batch_write(from->store, batch, true), MP_OK);
    store_batch_free(batch);
    return leased;
}

/* The message number in env's ratchet header, as its recipient to reads it. */
static uint32_t header_n(struct party *to, const struct buf *env)
{
    struct envelope_content c;
    assert_int_equal(envelope_open(to->id, env->data, env->len, &c), MP_OK);
    uint32_t n = c.header.n;
    envelope_content_clear(&c);
    return n;
}

/* a and b (seeds seed, seed + 1), each having heard from the other: a's
 * next seal starts a new sending chain. */
static void pair_talking(struct party *a, struct party *b, uint8_t seed)
{
    party_new(a, seed);
    party_new(b, (uint8_t)(seed + 1));
    exchange(a, b, "hello"); /* number 0; its seal took a's run's first lease */
    exchange(b, a, "hello a");
}

/* A seal says whether a lease taken before covers it: the first of a run
 * takes one, the next 128 numbers are covered, the one after takes anew. */
static void test_leases_cover_later_seals(void **state)
{
    (void)state;
    struct party a, b;
    struct buf env;
    pair_talking(&a, &b, 40);
    assert_false(seal_noting_lease(&a, &b, "new chain", &env, true));
    assert_int_equal(header_n(&b, &env), 0);
    assert_int_equal(open_env(&b, &env, &a, "new chain"), MP_OK);
    buf_free(&env);
    for (uint32_t n = 1; n <= 128; n++) {
        assert_true(seal_noting_lease(&a, &b, "covered", &env, true));
        assert_int_equal(header_n(&b, &env), n);
        buf_free(&env);
    }
    assert_false(seal_noting_lease(&a, &b, "past the lease", &env, true));
    assert_int_equal(header_n(&b, &env), 129);
    buf_free(&env);
    party_free(&a);
    party_free(&b);
}

/* A message sent ahead of its state's save, then a crash that loses the
 * save: the next run steps past the lease, so its next message is not
 * refused as a replay of the lost one. */
static void test_crash_steps_past_the_lease(void **state)
{
    (void)state;
    struct party a, b;
    struct buf ahead, after;
    pair_talking(&a, &b, 42);
    exchange(&a, &b, "leased"); /* number 0 of a's chain; lease up to 129 */
    assert_true(seal_noting_lease(&a, &b, "sent ahead", &ahead, false));
    assert_int_equal(open_env(&b, &ahead, &a, "sent ahead"), MP_OK);
    party_close(&a); /* the crash: the state after "sent ahead" was not saved */
    party_open(&a);
    assert_false(seal_noting_lease(&a, &b, "after the crash", &after, true));
    assert_int_equal(header_n(&b, &after), 129);
    assert_int_equal(open_env(&b, &after, &a, "after the crash"), MP_OK);
    exchange(&b, &a, "both arrived");
    buf_free(&ahead);
    buf_free(&after);
    party_free(&a);
    party_free(&b);
}

/* Leases handed back on a clean stop: the next run goes on from the saved
 * number, with no gap for the receiver to keep skipped keys for. */
static void test_released_leases_leave_no_gap(void **state)
{
    (void)state;
    struct party a, b;
    struct buf env;
    pair_talking(&a, &b, 44);
    exchange(&a, &b, "one");
    exchange(&a, &b, "two");
    struct store_batch *batch = store_batch_new();
    assert_int_equal(sessions_release(a.sessions, batch), MP_OK);
    assert_int_equal(store_batch_write(a.store, batch, true), MP_OK);
    store_batch_free(batch);
    party_close(&a);
    party_open(&a);
    assert_false(seal_noting_lease(&a, &b, "three", &env, true));
    assert_int_equal(header_n(&b, &env), 2);
    assert_int_equal(open_env(&b, &env, &a, "three"), MP_OK);
    buf_free(&env);
    party_free(&a);
    party_free(&b);
}

static int setup(void **state)
{
    (void)state;
    test_env_init(&te, test_env_seed(11));
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_contact_and_conversation),
        cmocka_unit_test(test_out_of_order_and_replay),
        cmocka_unit_test(test_both_open_at_once),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_discarded_batch_opens_again),
        cmocka_unit_test(test_many_peers),
        cmocka_unit_test(test_leases_cover_later_seals),
        cmocka_unit_test(test_crash_steps_past_the_lease),
        cmocka_unit_test(test_released_leases_leave_no_gap),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
