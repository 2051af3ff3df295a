/* crypto/envelope: sealed envelopes (round trip, only the recipient opens,
 * what the outside shows, padding buckets) and a whole first contact:
 * bundle -> X3DH -> ratchet -> envelope -> and back, with a replayed first
 * envelope refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "crypto/envelope.h"
#include "crypto/kdf.h"
#include "crypto/prekey.h"
#include "crypto/ratchet.h"
#include "crypto/x3dh.h"
#include "tests/support/test_env.h"

#define T0 1795996800000ull

static struct test_env te;
static struct identity *alice, *bob, *carol;

static int setup(void **state)
{
    (void)state;
    test_env_init(&te, test_env_seed(7));
    if (identity_generate(&te.env, &alice) != MP_OK || identity_generate(&te.env, &bob) != MP_OK ||
        identity_generate(&te.env, &carol) != MP_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    identity_free(alice);
    identity_free(bob);
    identity_free(carol);
    return 0;
}

static void content(struct envelope_content *c, uint8_t *ct, size_t ct_len, bool with_init)
{
    memset(c, 0, sizeof(*c));
    memcpy(c->sender, identity_public_key(alice), 32);
    env_random(&te.env, c->header.dh, 32);
    c->header.pn = 3;
    c->header.n = 70000;
    env_random(&te.env, ct, ct_len);
    c->ct = ct;
    c->ct_len = ct_len;
    if (with_init) {
        c->has_init = true;
        memcpy(c->init.initiator, c->sender, 32);
        env_random(&te.env, c->init.ephemeral, 32);
        c->init.spk_id = 77;
        c->init.has_opk = true;
        c->init.opk_id = 0xfffffff0;
    }
}

static bool contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++) {
        if (memcmp(hay + i, needle, m) == 0)
            return true;
    }
    return false;
}

static void test_round_trip_and_recipient_only(void **state)
{
    (void)state;
    uint8_t ct[200], mailbox[32], want[32];
    struct envelope_content c, got;
    struct buf env;

    for (int with_init = 0; with_init < 2; with_init++) {
        content(&c, ct, sizeof(ct), with_init);
        assert_int_equal(envelope_seal(&te.env, identity_public_key(bob), &c, &env), MP_OK);
        /* The outside: bob's mailbox id, nothing of alice, no header. */
        assert_int_equal(envelope_mailbox(env.data, env.len, mailbox), MP_OK);
        envelope_mailbox_id(identity_public_key(bob), want);
        assert_memory_equal(mailbox, want, 32);
        assert_false(contains(env.data, env.len, identity_public_key(alice), 32));
        assert_false(contains(env.data, env.len, identity_public_key(bob), 32));
        assert_false(contains(env.data, env.len, c.header.dh, 32));
        assert_false(contains(env.data, env.len, ct, 16));

        assert_int_equal(envelope_open(bob, env.data, env.len, &got), MP_OK);
        assert_memory_equal(got.sender, c.sender, 32);
        assert_int_equal(got.has_init, c.has_init);
        if (with_init)
            assert_memory_equal(&got.init, &c.init, sizeof(c.init));
        assert_memory_equal(&got.header, &c.header, sizeof(c.header));
        assert_int_equal(got.ct_len, c.ct_len);
        assert_memory_equal(got.ct, ct, sizeof(ct));
        envelope_content_clear(&got);

        /* Anyone else: refused, whether or not they rewrite the mailbox id. */
        assert_int_equal(envelope_open(carol, env.data, env.len, &got), MP_ERR_ENVELOPE_OPEN);
        uint8_t *forged = malloc(env.len);
        memcpy(forged, env.data, env.len);
        uint8_t carol_box[32];
        envelope_mailbox_id(identity_public_key(carol), carol_box);
        assert_true(contains(forged, env.len, want, 32));
        memcpy(forged + 4, carol_box, 32); /* [1, bin8 32 ...]: 0x94 0x01 0xc4 0x20 */
        assert_int_equal(envelope_open(carol, forged, env.len, &got), MP_ERR_ENVELOPE_OPEN);
        /* Every byte after the mailbox id is sealed: flipping any is refused. */
        for (size_t i = 36; i < env.len; i += 3) {
            memcpy(forged, env.data, env.len);
            forged[i] ^= 0x08;
            enum mp_err err = envelope_open(bob, forged, env.len, &got);
            assert_true(err == MP_ERR_ENVELOPE_OPEN || err == MP_ERR_MALFORMED ||
                        err == MP_ERR_WEAK_KEY);
        }
        free(forged);
        buf_free(&env);
    }
}

/* A key pair made ahead is the envelope's ephemeral (bytes 38 to 69), the
 * envelope opens as any other, and the pair is wiped: never used twice. */
static void test_ephemeral_made_ahead(void **state)
{
    (void)state;
    uint8_t ct[100];
    struct envelope_content c, got;
    struct envelope_recipient r;
    struct envelope_ephemeral eph, zero;
    struct buf e1, e2;

    memset(&zero, 0, sizeof(zero));
    assert_int_equal(envelope_recipient_init(identity_public_key(bob), &r), MP_OK);
    assert_int_equal(envelope_ephemeral_make(&te.env, NULL, &eph), MP_OK);
    assert_true(eph.ready);
    assert_false(eph.has_shared);
    uint8_t pk[32];
    memcpy(pk, eph.pk, 32);
    content(&c, ct, sizeof(ct), false);
    assert_int_equal(envelope_seal_to(&te.env, &r, &c, &eph, &e1), MP_OK);
    assert_memory_equal(e1.data + 38, pk, 32);
    assert_memory_equal(&eph, &zero, sizeof(eph));
    assert_int_equal(envelope_open(bob, e1.data, e1.len, &got), MP_OK);
    assert_memory_equal(got.ct, ct, sizeof(ct));
    envelope_content_clear(&got);
    /* The wiped pair is not used again: the next seal draws its own. */
    assert_int_equal(envelope_seal_to(&te.env, &r, &c, &eph, &e2), MP_OK);
    assert_memory_not_equal(e2.data + 38, pk, 32);
    assert_int_equal(envelope_open(bob, e2.data, e2.len, &got), MP_OK);
    envelope_content_clear(&got);
    buf_free(&e1);
    buf_free(&e2);
    /* A seal refused for its content wipes the pair too. */
    assert_int_equal(envelope_ephemeral_make(&te.env, &r, &eph), MP_OK);
    c.ct_len = RATCHET_OVERHEAD - 1;
    assert_int_equal(envelope_seal_to(&te.env, &r, &c, &eph, &e1), MP_ERR_INVAL);
    assert_memory_equal(&eph, &zero, sizeof(eph));
    buf_free(&e1);
}

/* Envelope e opens for `to`, to ct, and not for `other`. */
static void assert_opens_for_only(const struct buf *e, const struct identity *to,
                                  const struct identity *other, const uint8_t *ct, size_t ct_len)
{
    struct envelope_content got;
    assert_int_equal(envelope_open(to, e->data, e->len, &got), MP_OK);
    assert_int_equal(got.ct_len, ct_len);
    assert_memory_equal(got.ct, ct, ct_len);
    envelope_content_clear(&got);
    assert_int_equal(envelope_open(other, e->data, e->len, &got), MP_ERR_ENVELOPE_OPEN);
}

/* A pair made ahead with its exchange for the likely recipient: a seal to
 * that recipient uses the exchange, one to another does its own; both
 * envelopes open for their recipient only, and the pair is wiped. */
static void test_exchange_made_ahead(void **state)
{
    (void)state;
    uint8_t ct[100];
    struct envelope_content c, got;
    struct envelope_recipient to_bob, to_carol;
    struct envelope_ephemeral eph, zero;
    struct buf e;

    memset(&zero, 0, sizeof(zero));
    content(&c, ct, sizeof(ct), false);
    assert_int_equal(envelope_recipient_init(identity_public_key(bob), &to_bob), MP_OK);
    assert_int_equal(envelope_recipient_init(identity_public_key(carol), &to_carol), MP_OK);

    assert_int_equal(envelope_ephemeral_make(&te.env, &to_bob, &eph), MP_OK);
    assert_true(eph.ready && eph.has_shared);
    assert_memory_equal(eph.peer, to_bob.x25519, 32);
    assert_int_equal(envelope_seal_to(&te.env, &to_bob, &c, &eph, &e), MP_OK);
    assert_memory_equal(&eph, &zero, sizeof(eph));
    assert_opens_for_only(&e, bob, carol, ct, sizeof(ct));
    buf_free(&e);

    /* The exchange made ahead is what the seal uses: a wrong one, bob's
     * envelope does not open. */
    assert_int_equal(envelope_ephemeral_make(&te.env, &to_bob, &eph), MP_OK);
    eph.shared[0] ^= 1;
    assert_int_equal(envelope_seal_to(&te.env, &to_bob, &c, &eph, &e), MP_OK);
    assert_int_equal(envelope_open(bob, e.data, e.len, &got), MP_ERR_ENVELOPE_OPEN);
    buf_free(&e);

    /* Made for bob, sealed to carol: the exchange is done again, for carol. */
    assert_int_equal(envelope_ephemeral_make(&te.env, &to_bob, &eph), MP_OK);
    assert_int_equal(envelope_seal_to(&te.env, &to_carol, &c, &eph, &e), MP_OK);
    assert_memory_equal(&eph, &zero, sizeof(eph));
    assert_opens_for_only(&e, carol, bob, ct, sizeof(ct));
    buf_free(&e);
}

/* A small envelope opened by hand from the documented layout and formulas
 * (docs/PROTOCOL.md, "Sealed envelopes"). */
static void test_seal_matches_spec(void **state)
{
    (void)state;
    uint8_t ct[40], id[32], r_sk[32], r_pk[32], shared[32], salt[64], okm[56], ad[33];
    struct envelope_content c;
    struct buf env;
    crypto_generichash_state st;

    content(&c, ct, sizeof(ct), false);
    assert_int_equal(envelope_seal(&te.env, identity_public_key(bob), &c, &env), MP_OK);
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)"merpati mailbox v1", 18);
    crypto_generichash_update(&st, identity_public_key(bob), 32);
    crypto_generichash_final(&st, id, 32);
    /* [1, bin8 mailbox, bin8 ephemeral, bin16 sealed] */
    const uint8_t head[] = {0x94, 0x01, 0xc4, 0x20};
    assert_memory_equal(env.data, head, 4);
    assert_memory_equal(env.data + 4, id, 32);
    assert_int_equal(env.data[36], 0xc4);
    assert_int_equal(env.data[37], 0x20);
    const uint8_t *eph = env.data + 38;
    assert_int_equal(env.data[70], 0xc5);
    size_t sealed_len = (size_t)env.data[71] << 8 | env.data[72];
    assert_int_equal(sealed_len, 256 + 16); /* the smallest bucket */
    assert_int_equal(env.len, 73 + sealed_len);

    assert_int_equal(prekey_identity_dh(bob, r_sk, r_pk), MP_OK);
    assert_int_equal(crypto_scalarmult(shared, r_sk, eph), 0);
    memcpy(salt, eph, 32);
    memcpy(salt + 32, r_pk, 32);
    assert_int_equal(
        kdf_hkdf(salt, 64, shared, 32, (const uint8_t *)"merpati envelope v1", 19, 56, okm), MP_OK);
    ad[0] = 1;
    memcpy(ad + 1, id, 32);
    uint8_t inner[256];
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(inner, NULL, NULL, env.data + 73,
                                                                sealed_len, ad, sizeof(ad),
                                                                okm + 32, okm),
                     0);
    size_t unpadded;
    assert_int_equal(sodium_unpad(&unpadded, inner, sizeof(inner), 256), 0);
    /* [sender, nil, dh, pn, n, ct]: a fixarray of 6, then the sender. */
    assert_int_equal(inner[0], 0x96);
    assert_memory_equal(inner + 3, identity_public_key(alice), 32);
    assert_int_equal(inner[35], 0xc0);
    assert_memory_equal(inner + unpadded - sizeof(ct), ct, sizeof(ct));
    buf_free(&env);
}

static void test_padding_buckets(void **state)
{
    (void)state;
    static uint8_t ct[RATCHET_PLAINTEXT_MAX + RATCHET_OVERHEAD + 1];
    struct envelope_content c;
    struct buf e1, e2;

    /* Different lengths, same bucket, same envelope size. */
    content(&c, ct, RATCHET_OVERHEAD + 4, false);
    assert_int_equal(envelope_seal(&te.env, identity_public_key(bob), &c, &e1), MP_OK);
    content(&c, ct, RATCHET_OVERHEAD + 80, true);
    assert_int_equal(envelope_seal(&te.env, identity_public_key(bob), &c, &e2), MP_OK);
    assert_int_equal(e1.len, e2.len);
    buf_free(&e2);
    /* Every short message looks the same from outside. */
    assert_true(e1.len > 256);
    for (size_t len = RATCHET_OVERHEAD; len <= 150; len++) {
        content(&c, ct, len, false);
        assert_int_equal(envelope_seal(&te.env, identity_public_key(bob), &c, &e2), MP_OK);
        assert_int_equal(e2.len, e1.len);
        buf_free(&e2);
    }
    buf_free(&e1);
    /* Sizes grow in steps, never by the byte: 18 lengths, 9 sizes. */
    size_t sizes[20], nsizes = 0, tried = 0;
    for (size_t len = RATCHET_OVERHEAD; len < 40000; len = len * 3 / 2, tried++) {
        content(&c, ct, len, false);
        assert_int_equal(envelope_seal(&te.env, identity_public_key(bob), &c, &e1), MP_OK);
        bool seen = false;
        for (size_t i = 0; i < nsizes; i++)
            seen |= sizes[i] == e1.len;
        if (!seen)
            sizes[nsizes++] = e1.len;
        buf_free(&e1);
    }
    assert_int_equal(tried, 18);
    assert_int_equal(nsizes, 9); /* 256 ... 16 KiB, 32 KiB, 48 KiB */
    /* The longest plaintext ENVELOPE_PLAINTEXT_FITS a 64 KiB bucket for,
     * with the set-up fields (the largest inside), is sealed in that bucket:
     * 70 bytes before the sealed part, its bin32 head, 64 KiB and the tag. */
    content(&c, ct, ENVELOPE_PLAINTEXT_FITS(65536) + RATCHET_OVERHEAD, true);
    assert_int_equal(envelope_seal(&te.env, identity_public_key(bob), &c, &e1), MP_OK);
    assert_int_equal(e1.len, 70 + 5 + 65536 + 16);
    buf_free(&e1);
    /* The largest ratchet message fits the wire cap; one byte more is refused. */
    content(&c, ct, RATCHET_PLAINTEXT_MAX + RATCHET_OVERHEAD, true);
    assert_int_equal(envelope_seal(&te.env, identity_public_key(bob), &c, &e1), MP_OK);
    assert_true(e1.len <= ENVELOPE_WIRE_MAX);
    struct envelope_content got;
    assert_int_equal(envelope_open(bob, e1.data, e1.len, &got), MP_OK);
    assert_int_equal(got.ct_len, RATCHET_PLAINTEXT_MAX + RATCHET_OVERHEAD);
    envelope_content_clear(&got);
    buf_free(&e1);
    content(&c, ct, RATCHET_PLAINTEXT_MAX + RATCHET_OVERHEAD + 1, false);
    assert_int_equal(envelope_seal(&te.env, identity_public_key(bob), &c, &e1), MP_ERR_INVAL);
}

static void test_outer_codec_refusals(void **state)
{
    (void)state;
    uint8_t ct[40], mailbox[32];
    struct envelope_content c, got;
    struct buf env;

    content(&c, ct, sizeof(ct), false);
    assert_int_equal(envelope_seal(&te.env, identity_public_key(bob), &c, &env), MP_OK);
    for (size_t cut = 0; cut < env.len; cut += 11)
        assert_int_equal(envelope_mailbox(env.data, cut, mailbox), MP_ERR_MALFORMED);
    assert_int_equal(env.data[1], 1);
    env.data[1] = 2;
    assert_int_equal(envelope_mailbox(env.data, env.len, mailbox), MP_ERR_WIRE_VERSION);
    assert_int_equal(envelope_open(bob, env.data, env.len, &got), MP_ERR_WIRE_VERSION);
    buf_free(&env);
    static uint8_t big[ENVELOPE_WIRE_MAX + 1];
    assert_int_equal(envelope_mailbox(big, sizeof(big), mailbox), MP_ERR_TOO_BIG);
    /* A sender that contradicts the X3DH initiator is a caller bug. */
    content(&c, ct, sizeof(ct), true);
    c.init.initiator[0] ^= 1;
    assert_int_equal(envelope_seal(&te.env, identity_public_key(bob), &c, &env), MP_ERR_INVAL);
}

/* Alice -> Bob, first contact through a mailbox, then Bob answers. */
static void test_first_contact_end_to_end(void **state)
{
    (void)state;
    struct prekey_store *store = NULL;
    struct prekey_bundle bundle;
    uint8_t wire[PREKEY_BUNDLE_WIRE_MAX];
    size_t wire_len;
    struct x3dh_init init;
    struct x3dh_keys ka, kb;
    struct ratchet *ra = NULL, *rb = NULL;
    const char hello[] = "hello bob, it is alice";
    uint8_t ct[sizeof(hello) + RATCHET_OVERHEAD], pt[sizeof(hello)];
    struct envelope_content c, got;
    struct buf env;

    /* Bob publishes a bundle; Alice fetches and checks it. */
    assert_int_equal(prekey_store_new(&te.env, bob, T0, &store), MP_OK);
    assert_int_equal(prekey_store_add_one_time(store, &te.env, 2), MP_OK);
    prekey_store_bundle(store, 1, &bundle);
    assert_int_equal(prekey_bundle_encode(&bundle, wire, sizeof(wire), &wire_len), MP_OK);
    memset(&bundle, 0, sizeof(bundle));
    assert_int_equal(prekey_bundle_decode(wire, wire_len, &bundle), MP_OK);
    assert_int_equal(
        x3dh_initiate(&te.env, alice, &bundle, identity_public_key(bob), T0 + 5, &init, &ka),
        MP_OK);
    assert_int_equal(ratchet_new_initiator(&te.env, ka.root, ka.ad, ka.spk_pub, &ra), MP_OK);
    memset(&c, 0, sizeof(c));
    assert_int_equal(ratchet_encrypt(ra, (const uint8_t *)hello, sizeof(hello), &c.header, ct),
                     MP_OK);
    memcpy(c.sender, identity_public_key(alice), 32);
    c.has_init = true;
    c.init = init;
    c.ct = ct;
    c.ct_len = sizeof(ct);
    assert_int_equal(envelope_seal(&te.env, identity_public_key(bob), &c, &env), MP_OK);

    /* Bob, later: open, set up, decrypt, then accept. */
    assert_int_equal(envelope_open(bob, env.data, env.len, &got), MP_OK);
    assert_true(got.has_init);
    assert_int_equal(x3dh_respond(store, &got.init, T0 + 10, &kb), MP_OK);
    assert_int_equal(ratchet_new_responder(&te.env, kb.root, kb.ad, kb.spk_sk, kb.spk_pub, &rb),
                     MP_OK);
    assert_int_equal(ratchet_decrypt(rb, &got.header, got.ct, got.ct_len, pt), MP_OK);
    assert_memory_equal(pt, hello, sizeof(hello));
    assert_memory_equal(ratchet_ad(rb), identity_public_key(alice), 32);
    assert_int_equal(x3dh_accept(store, &got.init), MP_OK);
    assert_int_equal(prekey_store_one_time_count(store), 1);
    envelope_content_clear(&got);

    /* The same envelope again (a mailbox redelivers, or an attacker replays). */
    assert_int_equal(envelope_open(bob, env.data, env.len, &got), MP_OK);
    assert_int_equal(x3dh_respond(store, &got.init, T0 + 20, &kb), MP_ERR_SESSION_REPLAY);
    assert_int_equal(ratchet_decrypt(rb, &got.header, got.ct, got.ct_len, pt),
                     MP_ERR_RATCHET_REPLAY);
    envelope_content_clear(&got);
    buf_free(&env);

    /* Bob answers; Alice reads it. */
    const char reply[] = "hi alice";
    uint8_t rct[sizeof(reply) + RATCHET_OVERHEAD], rpt[sizeof(reply)];
    memset(&c, 0, sizeof(c));
    assert_int_equal(ratchet_encrypt(rb, (const uint8_t *)reply, sizeof(reply), &c.header, rct),
                     MP_OK);
    memcpy(c.sender, identity_public_key(bob), 32);
    c.ct = rct;
    c.ct_len = sizeof(rct);
    assert_int_equal(envelope_seal(&te.env, identity_public_key(alice), &c, &env), MP_OK);
    assert_int_equal(envelope_open(bob, env.data, env.len, &got), MP_ERR_ENVELOPE_OPEN);
    assert_int_equal(envelope_open(alice, env.data, env.len, &got), MP_OK);
    assert_false(got.has_init);
    assert_int_equal(ratchet_decrypt(ra, &got.header, got.ct, got.ct_len, rpt), MP_OK);
    assert_memory_equal(rpt, reply, sizeof(reply));
    envelope_content_clear(&got);
    buf_free(&env);

    x3dh_keys_wipe(&ka);
    x3dh_keys_wipe(&kb);
    ratchet_free(ra);
    ratchet_free(rb);
    prekey_store_free(store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_recipient_only),
        cmocka_unit_test(test_seal_matches_spec),
        cmocka_unit_test(test_padding_buckets),
        cmocka_unit_test(test_ephemeral_made_ahead),
        cmocka_unit_test(test_exchange_made_ahead),
        cmocka_unit_test(test_outer_codec_refusals),
        cmocka_unit_test(test_first_contact_end_to_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
