/* crypto/prekey and crypto/x3dh: bundle verification (and every way it must
 * refuse), the bundle and store codecs, rotation with its grace period, and
 * X3DH agreement, replay detection and one-time prekey consumption. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "crypto/identity.h"
#include "crypto/kdf.h"
#include "crypto/prekey.h"
#include "crypto/wire.h"
#include "crypto/x3dh.h"
#include "tests/support/test_env.h"

/* A Unix time in ms (2026-11-30) for the tests' "now". */
#define T0 1795996800000ull

/* An X25519 point of order 8 (and the all-zero point, of order 1). */
static const uint8_t order8[32] = {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
                                   0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
                                   0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00};
static const uint8_t zero32[32];

struct fixture {
    struct test_env te;
    struct identity *alice, *bob;
    struct prekey_store *bob_store;
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    test_env_init(&f.te, test_env_seed(3));
    if (identity_generate(&f.te.env, &f.alice) != MP_OK ||
        identity_generate(&f.te.env, &f.bob) != MP_OK ||
        prekey_store_new(&f.te.env, f.bob, T0, &f.bob_store) != MP_OK ||
        prekey_store_add_one_time(f.bob_store, &f.te.env, 5) != MP_OK)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    identity_free(f->alice);
    identity_free(f->bob);
    prekey_store_free(f->bob_store);
    return 0;
}

/* Re-sign b's signed prekey with `who` (to build bundles that verify). */
static void resign(struct prekey_bundle *b, const struct identity *who)
{
    uint8_t msg[PREKEY_SIGNED_MSG_BYTES];
    prekey_signed_message(b->identity, &b->spk, msg);
    identity_sign(who, msg, sizeof(msg), b->spk.sig);
}

static void test_bundle_verifies(void **state)
{
    struct fixture *f = *state;
    struct prekey_bundle b;

    prekey_store_bundle(f->bob_store, 3, &b);
    assert_int_equal(b.one_time_count, 3);
    assert_memory_equal(b.identity, identity_public_key(f->bob), 32);
    assert_int_equal(prekey_bundle_verify(&b, identity_public_key(f->bob), T0), MP_OK);
    /* Valid until just before expiry; clock skew of under a day tolerated. */
    assert_int_equal(prekey_bundle_verify(&b, identity_public_key(f->bob), b.spk.expires_ms - 1),
                     MP_OK);
    assert_int_equal(prekey_bundle_verify(&b, identity_public_key(f->bob), T0 - PREKEY_DAY_MS + 1),
                     MP_OK);
}

static void test_bundle_refusals(void **state)
{
    struct fixture *f = *state;
    const uint8_t *bob = identity_public_key(f->bob);
    struct prekey_bundle good, b;

    prekey_store_bundle(f->bob_store, 2, &good);

    /* Someone else's bundle presented as Bob's. */
    assert_int_equal(prekey_bundle_verify(&good, identity_public_key(f->alice), T0),
                     MP_ERR_PREKEY_OWNER);
    /* Bob's identity but Alice's signature. */
    b = good;
    resign(&b, f->alice);
    assert_int_equal(prekey_bundle_verify(&b, bob, T0), MP_ERR_PREKEY_SIGNATURE);
    /* Any signed field changed. */
    b = good;
    b.spk.pub[5] ^= 1;
    assert_int_equal(prekey_bundle_verify(&b, bob, T0), MP_ERR_PREKEY_SIGNATURE);
    b = good;
    b.spk.id++;
    assert_int_equal(prekey_bundle_verify(&b, bob, T0), MP_ERR_PREKEY_SIGNATURE);
    b = good;
    b.spk.expires_ms += 1;
    assert_int_equal(prekey_bundle_verify(&b, bob, T0), MP_ERR_PREKEY_SIGNATURE);
    b = good;
    b.spk.sig[63] ^= 0x10;
    assert_int_equal(prekey_bundle_verify(&b, bob, T0), MP_ERR_PREKEY_SIGNATURE);
    /* Expired, not yet valid, and a window longer than policy (though signed). */
    assert_int_equal(prekey_bundle_verify(&good, bob, good.spk.expires_ms), MP_ERR_PREKEY_EXPIRED);
    assert_int_equal(prekey_bundle_verify(&good, bob, T0 - 2 * PREKEY_DAY_MS),
                     MP_ERR_PREKEY_EXPIRED);
    b = good;
    b.spk.expires_ms = b.spk.created_ms + PREKEY_VALIDITY_MS + 1;
    resign(&b, f->bob);
    assert_int_equal(prekey_bundle_verify(&b, bob, T0), MP_ERR_PREKEY_EXPIRED);
    /* Low-order signed prekey, even when properly signed by the owner. */
    b = good;
    memcpy(b.spk.pub, order8, 32);
    resign(&b, f->bob);
    assert_int_equal(prekey_bundle_verify(&b, bob, T0), MP_ERR_WEAK_KEY);
    b = good;
    memcpy(b.spk.pub, zero32, 32);
    resign(&b, f->bob);
    assert_int_equal(prekey_bundle_verify(&b, bob, T0), MP_ERR_WEAK_KEY);
    /* Low-order one-time prekey. */
    b = good;
    memcpy(b.one_time[1].pub, order8, 32);
    assert_int_equal(prekey_bundle_verify(&b, bob, T0), MP_ERR_WEAK_KEY);
    /* Too many one-time keys claimed. */
    b = good;
    b.one_time_count = PREKEY_BUNDLE_ONE_TIME_MAX + 1;
    assert_int_equal(prekey_bundle_verify(&b, bob, T0), MP_ERR_INVAL);
    /* And X3DH refuses what verification refuses. */
    struct x3dh_init init;
    struct x3dh_keys keys;
    assert_int_equal(
        x3dh_initiate(&f->te.env, f->alice, &good, bob, good.spk.expires_ms, &init, &keys),
        MP_ERR_PREKEY_EXPIRED);
}

static void test_bundle_codec(void **state)
{
    struct fixture *f = *state;
    struct prekey_bundle b, back;
    uint8_t wire[PREKEY_BUNDLE_WIRE_MAX];
    size_t len;

    for (unsigned otk = 0; otk <= 5; otk += 5) {
        prekey_store_bundle(f->bob_store, otk, &b);
        assert_int_equal(prekey_bundle_encode(&b, wire, sizeof(wire), &len), MP_OK);
        memset(&back, 0x55, sizeof(back));
        assert_int_equal(prekey_bundle_decode(wire, len, &back), MP_OK);
        assert_memory_equal(back.identity, b.identity, 32);
        assert_int_equal(back.spk.id, b.spk.id);
        assert_memory_equal(back.spk.pub, b.spk.pub, 32);
        assert_memory_equal(back.spk.sig, b.spk.sig, 64);
        assert_true(back.spk.created_ms == b.spk.created_ms);
        assert_true(back.spk.expires_ms == b.spk.expires_ms);
        assert_int_equal(back.one_time_count, otk);
        for (unsigned i = 0; i < otk; i++) {
            assert_int_equal(back.one_time[i].id, b.one_time[i].id);
            assert_memory_equal(back.one_time[i].pub, b.one_time[i].pub, 32);
        }
        assert_int_equal(prekey_bundle_verify(&back, identity_public_key(f->bob), T0), MP_OK);
        /* Every truncation fails cleanly; trailing bytes are refused. */
        for (size_t cut = 0; cut < len; cut++)
            assert_int_equal(prekey_bundle_decode(wire, cut, &back), MP_ERR_MALFORMED);
        wire[len] = 0xc0;
        assert_int_equal(prekey_bundle_decode(wire, len + 1, &back), MP_ERR_MALFORMED);
    }
    /* A future version is named as such. */
    prekey_store_bundle(f->bob_store, 1, &b);
    assert_int_equal(prekey_bundle_encode(&b, wire, sizeof(wire), &len), MP_OK);
    assert_int_equal(wire[1], 1); /* [version=1, ...]: fixarray then fixint */
    wire[1] = 2;
    assert_int_equal(prekey_bundle_decode(wire, len, &back), MP_ERR_WIRE_VERSION);
    /* Over the cap. */
    static uint8_t big[PREKEY_BUNDLE_WIRE_MAX + 1];
    assert_int_equal(prekey_bundle_decode(big, sizeof(big), &back), MP_ERR_TOO_BIG);
    /* A lying array count does not make the decoder allocate: the bound
     * check itself refuses it (2^32-1 elements in 1 byte), and so the decoder. */
    const uint8_t liar[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_false(wire_bounded(liar, sizeof(liar)));
    assert_true(wire_bounded((const uint8_t[]){0xdd, 0, 0, 0, 1, 0x01}, 6)); /* honest count */
    assert_int_equal(prekey_bundle_decode(liar, sizeof(liar), &back), MP_ERR_MALFORMED);
}

static void agree(struct fixture *f, unsigned otk, uint64_t now, struct x3dh_init *init_out)
{
    struct prekey_bundle b;
    struct x3dh_keys ka, kb;

    prekey_store_bundle(f->bob_store, otk, &b);
    assert_int_equal(
        x3dh_initiate(&f->te.env, f->alice, &b, identity_public_key(f->bob), now, init_out, &ka),
        MP_OK);
    assert_int_equal(init_out->has_opk, otk > 0);
    assert_memory_equal(init_out->initiator, identity_public_key(f->alice), 32);
    assert_int_equal(x3dh_respond(f->bob_store, init_out, now, &kb), MP_OK);
    assert_memory_equal(ka.root, kb.root, X3DH_KEY_BYTES);
    assert_memory_equal(ka.ad, kb.ad, X3DH_AD_BYTES);
    assert_memory_equal(ka.ad, identity_public_key(f->alice), 32);
    assert_memory_equal(ka.ad + 32, identity_public_key(f->bob), 32);
    assert_memory_equal(ka.spk_pub, b.spk.pub, 32);
    assert_memory_equal(kb.spk_pub, b.spk.pub, 32);
    /* The responder holds the matching secret for its first ratchet key. */
    uint8_t pk[32];
    assert_int_equal(crypto_scalarmult_base(pk, kb.spk_sk), 0);
    assert_memory_equal(pk, kb.spk_pub, 32);
    x3dh_keys_wipe(&ka);
    x3dh_keys_wipe(&kb);
}

/* The root key is exactly the documented formula (docs/PROTOCOL.md), computed
 * here by hand from the responder's secrets. */
static void test_x3dh_matches_spec(void **state)
{
    struct fixture *f = *state;
    struct prekey_bundle b;
    struct x3dh_init init;
    struct x3dh_keys ka;
    uint8_t ik_sk[32], spk_sk[32], spk_pk[32], opk_sk[32], ik_a[32];
    uint8_t ikm[5 * 32], root[32];

    for (unsigned otk = 0; otk <= 1; otk++) {
        prekey_store_bundle(f->bob_store, otk, &b);
        assert_int_equal(
            x3dh_initiate(&f->te.env, f->alice, &b, identity_public_key(f->bob), T0, &init, &ka),
            MP_OK);
        assert_int_equal(prekey_store_lookup(f->bob_store, init.ephemeral, init.spk_id,
                                             init.has_opk, init.opk_id, T0, ik_sk, spk_sk, spk_pk,
                                             opk_sk),
                         MP_OK);
        assert_int_equal(prekey_identity_dh_public(identity_public_key(f->alice), ik_a), MP_OK);
        memset(ikm, 0xFF, 32);
        assert_int_equal(crypto_scalarmult(ikm + 32, spk_sk, ik_a), 0);           /* DH1 */
        assert_int_equal(crypto_scalarmult(ikm + 64, ik_sk, init.ephemeral), 0);  /* DH2 */
        assert_int_equal(crypto_scalarmult(ikm + 96, spk_sk, init.ephemeral), 0); /* DH3 */
        if (otk)
            assert_int_equal(crypto_scalarmult(ikm + 128, opk_sk, init.ephemeral), 0); /* DH4 */
        assert_int_equal(kdf_hkdf(NULL, 0, ikm, (4 + otk) * 32, (const uint8_t *)"merpati x3dh v1",
                                  15, 32, root),
                         MP_OK);
        assert_memory_equal(root, ka.root, 32);
        assert_memory_equal(spk_pk, b.spk.pub, 32);
    }
}

static void test_x3dh_agreement_and_replay(void **state)
{
    struct fixture *f = *state;
    struct x3dh_init init, init2;
    struct x3dh_keys k;

    /* With a one-time prekey: consumed on accept. */
    size_t before = prekey_store_one_time_count(f->bob_store);
    agree(f, 1, T0, &init);
    assert_int_equal(prekey_store_one_time_count(f->bob_store),
                     before); /* respond alone changes nothing */
    assert_int_equal(x3dh_accept(f->bob_store, &init), MP_OK);
    assert_int_equal(prekey_store_one_time_count(f->bob_store), before - 1);
    assert_int_equal(x3dh_respond(f->bob_store, &init, T0, &k), MP_ERR_SESSION_REPLAY);
    /* Same one-time key, fresh ephemeral (e.g. a stale bundle): gone. */
    init2 = init;
    init2.ephemeral[0] ^= 0x40;
    assert_int_equal(x3dh_respond(f->bob_store, &init2, T0, &k), MP_ERR_PREKEY_UNKNOWN);

    /* Without one: replay caught by the seen-ephemeral set. */
    agree(f, 0, T0, &init);
    assert_int_equal(x3dh_accept(f->bob_store, &init), MP_OK);
    assert_int_equal(x3dh_respond(f->bob_store, &init, T0 + 1000, &k), MP_ERR_SESSION_REPLAY);

    /* Unknown signed prekey id; low-order ephemeral; weak initiator key. */
    agree(f, 0, T0, &init);
    init2 = init;
    init2.spk_id ^= 0x5a5a;
    assert_int_equal(x3dh_respond(f->bob_store, &init2, T0, &k), MP_ERR_PREKEY_UNKNOWN);
    init2 = init;
    memcpy(init2.ephemeral, order8, 32);
    assert_int_equal(x3dh_respond(f->bob_store, &init2, T0, &k), MP_ERR_WEAK_KEY);
    init2 = init;
    memset(init2.initiator, 0, 32);
    init2.initiator[0] = 1; /* the Ed25519 neutral element */
    assert_int_equal(x3dh_respond(f->bob_store, &init2, T0, &k), MP_ERR_WEAK_KEY);
}

static void test_x3dh_wrong_responder_disagrees(void **state)
{
    struct fixture *f = *state;
    struct prekey_bundle b;
    struct prekey_store *other = NULL;
    struct x3dh_init init;
    struct x3dh_keys ka, kb;

    /* A first message for Bob given to another account's store (with its
     * signed prekey id patched in so the lookup succeeds): no shared key. */
    prekey_store_bundle(f->bob_store, 0, &b);
    assert_int_equal(
        x3dh_initiate(&f->te.env, f->alice, &b, identity_public_key(f->bob), T0, &init, &ka),
        MP_OK);
    assert_int_equal(prekey_store_new(&f->te.env, f->alice, T0, &other), MP_OK);
    struct prekey_bundle ob;
    prekey_store_bundle(other, 0, &ob);
    init.spk_id = ob.spk.id;
    assert_int_equal(x3dh_respond(other, &init, T0, &kb), MP_OK);
    assert_memory_not_equal(ka.root, kb.root, X3DH_KEY_BYTES);
    prekey_store_free(other);
}

static void test_rotation_grace(void **state)
{
    struct fixture *f = *state;
    struct prekey_store *s = NULL;
    struct prekey_bundle old_b, new_b;
    struct x3dh_init init;
    struct x3dh_keys ka, kb;

    assert_int_equal(prekey_store_new(&f->te.env, f->bob, T0, &s), MP_OK);
    prekey_store_bundle(s, 0, &old_b);
    assert_false(prekey_store_rotation_due(s, T0 + PREKEY_ROTATE_MS - 1));
    assert_true(prekey_store_rotation_due(s, T0 + PREKEY_ROTATE_MS));
    /* Only the owner can rotate. */
    assert_int_equal(prekey_store_rotate(s, &f->te.env, f->alice, T0 + PREKEY_ROTATE_MS),
                     MP_ERR_PREKEY_OWNER);
    /* A first message made from the old bundle, delivered after rotation. */
    assert_int_equal(x3dh_initiate(&f->te.env, f->alice, &old_b, identity_public_key(f->bob),
                                   T0 + 1000, &init, &ka),
                     MP_OK);
    assert_int_equal(prekey_store_rotate(s, &f->te.env, f->bob, T0 + PREKEY_ROTATE_MS), MP_OK);
    prekey_store_bundle(s, 0, &new_b);
    assert_int_not_equal(new_b.spk.id, old_b.spk.id);
    assert_int_equal(
        prekey_bundle_verify(&new_b, identity_public_key(f->bob), T0 + PREKEY_ROTATE_MS), MP_OK);
    /* Still opens during the grace period (four weeks past the old expiry)... */
    uint64_t last = old_b.spk.expires_ms + PREKEY_GRACE_MS - 1;
    assert_int_equal(x3dh_respond(s, &init, last, &kb), MP_OK);
    assert_memory_equal(ka.root, kb.root, 32);
    /* ...not after it, whether or not a rotation has run since. */
    assert_int_equal(x3dh_respond(s, &init, last + 1, &kb), MP_ERR_PREKEY_UNKNOWN);
    assert_int_equal(prekey_store_rotate(s, &f->te.env, f->bob, last + 1), MP_OK);
    assert_int_equal(x3dh_respond(s, &init, T0 + 1000, &kb), MP_ERR_PREKEY_UNKNOWN);
    prekey_store_free(s);
}

static void test_rotation_keeps_at_most_six(void **state)
{
    struct fixture *f = *state;
    struct prekey_store *s = NULL;
    struct prekey_bundle first;
    struct x3dh_init init;
    struct x3dh_keys ka, kb;
    uint64_t now = T0;

    assert_int_equal(prekey_store_new(&f->te.env, f->bob, now, &s), MP_OK);
    prekey_store_bundle(s, 0, &first);
    assert_int_equal(
        x3dh_initiate(&f->te.env, f->alice, &first, identity_public_key(f->bob), now, &init, &ka),
        MP_OK);
    /* Daily rotations: the first key survives five, not six. */
    for (int i = 1; i <= PREKEY_SIGNED_KEEP - 1; i++)
        assert_int_equal(prekey_store_rotate(s, &f->te.env, f->bob, now + i * PREKEY_DAY_MS),
                         MP_OK);
    assert_int_equal(x3dh_respond(s, &init, now + 6 * PREKEY_DAY_MS, &kb), MP_OK);
    assert_int_equal(prekey_store_rotate(s, &f->te.env, f->bob, now + 6 * PREKEY_DAY_MS), MP_OK);
    assert_int_equal(x3dh_respond(s, &init, now + 6 * PREKEY_DAY_MS, &kb), MP_ERR_PREKEY_UNKNOWN);
    prekey_store_free(s);
}

static void test_one_time_cap(void **state)
{
    struct fixture *f = *state;
    struct prekey_store *s = NULL;

    assert_int_equal(prekey_store_new(&f->te.env, f->bob, T0, &s), MP_OK);
    assert_int_equal(prekey_store_add_one_time(s, &f->te.env, PREKEY_ONE_TIME_MAX - 1), MP_OK);
    assert_int_equal(prekey_store_add_one_time(s, &f->te.env, 2), MP_ERR_TOO_BIG);
    assert_int_equal(prekey_store_one_time_count(s), PREKEY_ONE_TIME_MAX - 1);
    assert_int_equal(prekey_store_add_one_time(s, &f->te.env, 1), MP_OK);
    struct prekey_bundle b;
    prekey_store_bundle(s, 1000, &b);
    assert_int_equal(b.one_time_count, PREKEY_BUNDLE_ONE_TIME_MAX);
    prekey_store_free(s);
}

/* The replay set is bounded per signed prekey and never forgets a record
 * while its prekey is held: a flood of throwaway sessions fills the prekey
 * (which then refuses new ones and asks for a rotation) instead of pushing
 * out older records. Records go only with their prekey. */
static void test_seen_set_per_signed_prekey(void **state)
{
    struct fixture *f = *state;
    struct prekey_store *s = NULL;
    struct prekey_bundle b, b2;
    uint8_t eph[32], first[32];
    uint8_t ik[32], sk[32], pk[32], ok[32];

    assert_int_equal(prekey_store_new(&f->te.env, f->bob, T0, &s), MP_OK);
    assert_int_equal(prekey_store_add_one_time(s, &f->te.env, 1), MP_OK);
    prekey_store_bundle(s, 1, &b);
    for (uint32_t i = 0; i < PREKEY_SEEN_PER_SIGNED; i++) {
        env_random(&f->te.env, eph, sizeof(eph));
        if (i == 0)
            memcpy(first, eph, 32);
        assert_int_equal(prekey_store_lookup(s, eph, b.spk.id, false, 0, T0, ik, sk, pk, ok),
                         MP_OK);
        assert_int_equal(prekey_store_commit(s, eph, b.spk.id, false, 0), MP_OK);
        /* A rotation is asked for from half full on, long before a week. */
        assert_int_equal(prekey_store_rotation_due(s, T0), i + 1 >= PREKEY_SEEN_PER_SIGNED / 2);
    }
    assert_int_equal(prekey_store_seen_count(s, b.spk.id), PREKEY_SEEN_PER_SIGNED);
    /* Nothing was forgotten: the first and the last are still replays. */
    assert_int_equal(prekey_store_lookup(s, first, b.spk.id, false, 0, T0, ik, sk, pk, ok),
                     MP_ERR_SESSION_REPLAY);
    assert_int_equal(prekey_store_lookup(s, eph, b.spk.id, false, 0, T0, ik, sk, pk, ok),
                     MP_ERR_SESSION_REPLAY);
    /* Full: a new session on this prekey is refused, and nothing changes. */
    env_random(&f->te.env, eph, sizeof(eph));
    assert_int_equal(
        prekey_store_lookup(s, eph, b.spk.id, true, b.one_time[0].id, T0, ik, sk, pk, ok),
        MP_ERR_PREKEY_FULL);
    assert_int_equal(prekey_store_commit(s, eph, b.spk.id, true, b.one_time[0].id),
                     MP_ERR_PREKEY_FULL);
    assert_int_equal(prekey_store_seen_count(s, b.spk.id), PREKEY_SEEN_PER_SIGNED);
    assert_int_equal(prekey_store_one_time_count(s), 1);
    /* The full store still fits its stored form and comes back the same. */
    struct buf wire;
    struct prekey_store *back = NULL;
    assert_int_equal(prekey_store_encode(s, &wire), MP_OK);
    assert_int_equal(prekey_store_decode(f->bob, wire.data, wire.len, &back), MP_OK);
    assert_int_equal(prekey_store_seen_count(back, b.spk.id), PREKEY_SEEN_PER_SIGNED);
    assert_int_equal(prekey_store_lookup(back, first, b.spk.id, false, 0, T0, ik, sk, pk, ok),
                     MP_ERR_SESSION_REPLAY);
    prekey_store_free(back);
    buf_free(&wire);
    /* After a rotation the new prekey takes sessions; the old one keeps every
     * record for as long as it is held... */
    assert_int_equal(prekey_store_rotate(s, &f->te.env, f->bob, T0 + 1), MP_OK);
    prekey_store_bundle(s, 0, &b2);
    assert_int_equal(prekey_store_lookup(s, eph, b2.spk.id, false, 0, T0 + 1, ik, sk, pk, ok),
                     MP_OK);
    assert_int_equal(prekey_store_commit(s, eph, b2.spk.id, false, 0), MP_OK);
    assert_int_equal(prekey_store_lookup(s, first, b.spk.id, false, 0, T0 + 1, ik, sk, pk, ok),
                     MP_ERR_SESSION_REPLAY);
    /* ...and they go with it, when it can no longer open anything. */
    uint64_t gone = b.spk.expires_ms + PREKEY_GRACE_MS;
    assert_int_equal(prekey_store_rotate(s, &f->te.env, f->bob, gone), MP_OK);
    assert_int_equal(prekey_store_seen_count(s, b.spk.id), 0);
    assert_int_equal(prekey_store_lookup(s, first, b.spk.id, false, 0, gone, ik, sk, pk, ok),
                     MP_ERR_PREKEY_UNKNOWN);
    prekey_store_free(s);
}

/* Two first messages looked up before either is accepted: the second accept
 * finds what the first consumed and changes nothing. */
static void test_accept_rechecks(void **state)
{
    struct fixture *f = *state;
    struct x3dh_init i1, i2;

    agree(f, 1, T0, &i1);
    agree(f, 1, T0, &i2); /* the same one-time prekey, another ephemeral */
    assert_int_equal(i1.opk_id, i2.opk_id);
    size_t before = prekey_store_one_time_count(f->bob_store);
    assert_int_equal(x3dh_accept(f->bob_store, &i1), MP_OK);
    assert_int_equal(x3dh_accept(f->bob_store, &i1), MP_ERR_SESSION_REPLAY);
    assert_int_equal(x3dh_accept(f->bob_store, &i2), MP_ERR_PREKEY_UNKNOWN);
    assert_int_equal(prekey_store_one_time_count(f->bob_store), before - 1);
    struct x3dh_keys k;
    i2.has_opk = false; /* i2's ephemeral was not recorded */
    assert_int_equal(x3dh_respond(f->bob_store, &i2, T0, &k), MP_OK);
    x3dh_keys_wipe(&k);
}

static void test_store_codec(void **state)
{
    struct fixture *f = *state;
    struct prekey_store *back = NULL, *back2 = NULL;
    struct x3dh_init init_used, init_new;
    struct x3dh_keys k1, k2;
    struct buf wire;

    /* A store with history: an accepted session, a rotation. */
    agree(f, 1, T0, &init_used);
    assert_int_equal(x3dh_accept(f->bob_store, &init_used), MP_OK);
    assert_int_equal(prekey_store_rotate(f->bob_store, &f->te.env, f->bob, T0 + 10), MP_OK);
    agree(f, 1, T0 + 20, &init_new); /* not accepted yet */

    assert_int_equal(prekey_store_encode(f->bob_store, &wire), MP_OK);
    assert_int_equal(prekey_store_decode(f->alice, wire.data, wire.len, &back),
                     MP_ERR_PREKEY_OWNER);
    assert_int_equal(prekey_store_decode(f->bob, wire.data, wire.len, &back), MP_OK);
    /* Same bundle, same answers. */
    struct prekey_bundle b1, b2;
    prekey_store_bundle(f->bob_store, 32, &b1);
    prekey_store_bundle(back, 32, &b2);
    assert_memory_equal(&b1, &b2, sizeof(b1));
    assert_int_equal(x3dh_respond(back, &init_used, T0 + 30, &k1), MP_ERR_SESSION_REPLAY);
    assert_int_equal(x3dh_respond(back, &init_new, T0 + 30, &k1), MP_OK);
    assert_int_equal(x3dh_respond(f->bob_store, &init_new, T0 + 30, &k2), MP_OK);
    assert_memory_equal(k1.root, k2.root, 32);
    /* Re-encoding gives the same bytes. */
    struct buf again;
    assert_int_equal(prekey_store_encode(back, &again), MP_OK);
    assert_int_equal(again.len, wire.len);
    assert_memory_equal(again.data, wire.data, wire.len);
    /* Truncations fail. */
    for (size_t cut = 0; cut < wire.len; cut += 7) {
        struct prekey_store *t = NULL;
        assert_int_not_equal(prekey_store_decode(f->bob, wire.data, cut, &t), MP_OK);
        assert_null(t);
    }
    /* A signed prekey secret whose public half does not match is refused,
     * whichever half was changed. Each entry opens with [bin32 secret, [id,
     * bin32 public, ...]: 0x93 0xc4 0x20, then the secret. */
    size_t at = 0;
    while (at + 3 < wire.len &&
           !(wire.data[at] == 0x93 && wire.data[at + 1] == 0xc4 && wire.data[at + 2] == 0x20))
        at++;
    assert_true(at + 3 + 32 < wire.len);
    for (int half = 0; half < 2; half++) {
        struct prekey_store *t = NULL;
        /* The secret's first byte, or the public key's (after 0x95, id, 0xc4 0x20). */
        size_t pos = at + 3;
        if (half == 1) {
            pos = at + 3 + 32;
            assert_int_equal(wire.data[pos], 0x95);
            uint8_t id0 = wire.data[pos + 1]; /* the id: fixint, uint8, uint16 or uint32 */
            pos += 1 + (id0 < 0x80 ? 1 : id0 == 0xcc ? 2 : id0 == 0xcd ? 3 : 5);
            assert_int_equal(wire.data[pos], 0xc4);
            pos += 2;
        }
        wire.data[pos] ^= 0x21;
        assert_int_equal(prekey_store_decode(f->bob, wire.data, wire.len, &t), MP_ERR_MALFORMED);
        assert_null(t);
        wire.data[pos] ^= 0x21;
    }
    assert_int_equal(prekey_store_decode(f->bob, wire.data, wire.len, &back2), MP_OK);
    prekey_store_free(back2);
    buf_free(&again);
    buf_free(&wire);
    prekey_store_free(back);
}

/* Every test gets a fresh fixture (setup/teardown per test), so none
 * depends on what another did to Bob's store or to the random stream. */
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_bundle_verifies),
        T(test_bundle_refusals),
        T(test_bundle_codec),
        T(test_x3dh_matches_spec),
        T(test_x3dh_agreement_and_replay),
        T(test_x3dh_wrong_responder_disagrees),
        T(test_rotation_grace),
        T(test_rotation_keeps_at_most_six),
        T(test_one_time_cap),
        T(test_seen_set_per_signed_prekey),
        T(test_accept_rechecks),
        T(test_store_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
