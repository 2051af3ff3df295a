/*
 * Unit tests for crypto/identity: signing, the key-file encoding, and
 * verification against the Wycheproof Ed25519 vectors (tests/vectors/, from
 * C2SP/wycheproof testvectors_v1, Apache-2.0, see wycheproof.LICENSE.txt).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "crypto/identity.h"
#include "tests/support/test_env.h"

/* Largest Wycheproof message we accept (the file's longest is 1023 bytes). */
#define VECTOR_MSG_MAX 4096
/* Signatures in the file run from 0 to 96 bytes. */
#define VECTOR_SIG_MAX 128

static struct identity *make_identity(uint64_t seed)
{
    struct test_env te;
    struct identity *id = NULL;

    test_env_init(&te, seed);
    assert_int_equal(identity_generate(&te.env, &id), MP_OK);
    assert_non_null(id);
    return id;
}

static void test_sign_verify_round_trip(void **state)
{
    (void)state;
    struct identity *id = make_identity(test_env_seed(1));
    struct identity *other = make_identity(2);
    const uint8_t msg[] = "meet at the pigeon loft";
    uint8_t sig[IDENTITY_SIGNATURE_BYTES];

    identity_sign(id, msg, sizeof(msg), sig);
    assert_true(identity_verify(identity_public_key(id), msg, sizeof(msg), sig));
    /* Another key, another message, or any flipped signature bit: refused. */
    assert_false(identity_verify(identity_public_key(other), msg, sizeof(msg), sig));
    assert_false(identity_verify(identity_public_key(id), msg, sizeof(msg) - 1, sig));
    for (size_t bit = 0; bit < 8 * sizeof(sig); bit++) {
        sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_false(identity_verify(identity_public_key(id), msg, sizeof(msg), sig));
        sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* The empty message is signable too. */
    identity_sign(id, NULL, 0, sig);
    assert_true(identity_verify(identity_public_key(id), NULL, 0, sig));
    identity_free(id);
    identity_free(other);
    identity_free(NULL);
}

static void test_same_seed_same_key(void **state)
{
    (void)state;
    struct identity *a = make_identity(42), *b = make_identity(42), *c = make_identity(43);

    assert_memory_equal(identity_public_key(a), identity_public_key(b), IDENTITY_PUBLIC_BYTES);
    assert_memory_not_equal(identity_public_key(a), identity_public_key(c), IDENTITY_PUBLIC_BYTES);
    identity_free(a);
    identity_free(b);
    identity_free(c);
}

static void test_encode_decode_round_trip(void **state)
{
    (void)state;
    struct identity *id = make_identity(test_env_seed(3));
    struct identity *back = NULL;
    uint8_t enc[IDENTITY_ENCODED_BYTES], again[IDENTITY_ENCODED_BYTES];
    uint8_t sig[IDENTITY_SIGNATURE_BYTES];
    const uint8_t msg[] = "x";

    identity_encode(id, enc);
    assert_memory_equal(enc, "MPID\x01\0\0\0", 8);
    assert_memory_equal(enc + 40, identity_public_key(id), IDENTITY_PUBLIC_BYTES);
    assert_int_equal(identity_decode(enc, sizeof(enc), &back), MP_OK);
    assert_memory_equal(identity_public_key(back), identity_public_key(id), IDENTITY_PUBLIC_BYTES);
    identity_encode(back, again);
    assert_memory_equal(enc, again, sizeof(enc));
    /* The decoded identity signs for the original key. */
    identity_sign(back, msg, sizeof(msg), sig);
    assert_true(identity_verify(identity_public_key(id), msg, sizeof(msg), sig));
    identity_free(back);
    identity_free(id);
}

static void test_decode_rejects_damage(void **state)
{
    (void)state;
    struct identity *id = make_identity(4);
    struct identity *back = NULL;
    uint8_t enc[IDENTITY_ENCODED_BYTES + 1];

    identity_encode(id, enc);
    enc[IDENTITY_ENCODED_BYTES] = 0;
    /* Wrong lengths: empty, one short, one long. */
    assert_int_equal(identity_decode(enc, 0, &back), MP_ERR_KEYFILE);
    assert_int_equal(identity_decode(enc, IDENTITY_ENCODED_BYTES - 1, &back), MP_ERR_KEYFILE);
    assert_int_equal(identity_decode(enc, IDENTITY_ENCODED_BYTES + 1, &back), MP_ERR_KEYFILE);
    /* Every bit of the file matters: the magic, the seed (the stored public
     * key no longer matches) and the public key. */
    for (size_t bit = 0; bit < 8 * IDENTITY_ENCODED_BYTES; bit++) {
        enc[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (identity_decode(enc, IDENTITY_ENCODED_BYTES, &back) != MP_ERR_KEYFILE)
            fail_msg("flipped bit %zu of the key file was accepted", bit);
        enc[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    assert_null(back);
    assert_int_equal(identity_decode(enc, IDENTITY_ENCODED_BYTES, &back), MP_OK);
    identity_free(back);
    identity_free(id);
}

static size_t hex_field(json_t *obj, const char *key, uint8_t *out, size_t cap)
{
    const char *hex = json_string_value(json_object_get(obj, key));
    size_t len = 0;

    assert_non_null(hex);
    assert_true(strlen(hex) % 2 == 0 && strlen(hex) / 2 <= cap);
    assert_int_equal(sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &len, NULL), 0);
    return len;
}

static void test_wycheproof_vectors(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *root = json_load_file(VECTORS_DIR "/wycheproof-ed25519_test.json", 0, &jerr);
    unsigned counts[3] = {0, 0, 0}; /* valid, invalid, acceptable */
    unsigned acceptable_accepted = 0;
    size_t gi, ti;
    json_t *group, *tc;

    if (root == NULL)
        fail_msg("%s:%d: %s", jerr.source, jerr.line, jerr.text);
    json_t *groups = json_object_get(root, "testGroups");
    assert_true(json_array_size(groups) > 0);

    json_array_foreach(groups, gi, group)
    {
        uint8_t pk[IDENTITY_PUBLIC_BYTES];
        json_t *pk_obj = json_object_get(group, "publicKey");
        assert_int_equal(hex_field(pk_obj, "pk", pk, sizeof(pk)), sizeof(pk));

        json_array_foreach(json_object_get(group, "tests"), ti, tc)
        {
            static uint8_t msg[VECTOR_MSG_MAX];
            uint8_t sig[VECTOR_SIG_MAX];
            size_t msg_len = hex_field(tc, "msg", msg, sizeof(msg));
            size_t sig_len = hex_field(tc, "sig", sig, sizeof(sig));
            const char *result = json_string_value(json_object_get(tc, "result"));
            int id = (int)json_integer_value(json_object_get(tc, "tcId"));

            assert_non_null(result);
            /* A signature of the wrong length never reaches verify: it is
             * refused by its size, as every caller must. */
            bool ok = sig_len == IDENTITY_SIGNATURE_BYTES && identity_verify(pk, msg, msg_len, sig);
            if (strcmp(result, "valid") == 0) {
                counts[0]++;
                if (!ok)
                    fail_msg("Wycheproof tcId %d: valid signature refused", id);
            } else if (strcmp(result, "invalid") == 0) {
                counts[1]++;
                if (ok)
                    fail_msg("Wycheproof tcId %d: invalid signature accepted", id);
            } else {
                assert_string_equal(result, "acceptable");
                counts[2]++;
                acceptable_accepted += ok;
            }
        }
    }
    print_message("wycheproof ed25519: %u valid, %u invalid agree; %u acceptable (%u accepted)\n",
                  counts[0], counts[1], counts[2], acceptable_accepted);
    assert_int_equal(counts[0] + counts[1] + counts[2],
                     json_integer_value(json_object_get(root, "numberOfTests")));
    json_decref(root);
}

/* The X25519 forms of two identities agree on a shared secret, and the public
 * half is libsodium's conversion of the Ed25519 key. */
static void test_x25519_form(void **state)
{
    (void)state;
    uint8_t seed_a[IDENTITY_SEED_BYTES] = {1}, seed_b[IDENTITY_SEED_BYTES] = {2};
    struct identity *a = NULL, *b = NULL;
    uint8_t sk_a[32], pk_a[32], sk_b[32], pk_b[32], shared_a[32], shared_b[32], want_pk[32];

    assert_int_equal(identity_from_seed(seed_a, &a), MP_OK);
    assert_int_equal(identity_from_seed(seed_b, &b), MP_OK);
    assert_int_equal(identity_x25519(a, sk_a, pk_a), MP_OK);
    assert_int_equal(identity_x25519(b, sk_b, pk_b), MP_OK);
    assert_int_equal(crypto_sign_ed25519_pk_to_curve25519(want_pk, identity_public_key(a)), 0);
    assert_memory_equal(pk_a, want_pk, 32);
    assert_int_equal(crypto_scalarmult(shared_a, sk_a, pk_b), 0);
    assert_int_equal(crypto_scalarmult(shared_b, sk_b, pk_a), 0);
    assert_memory_equal(shared_a, shared_b, 32);
    assert_memory_not_equal(pk_a, pk_b, 32);
    identity_free(a);
    identity_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify_round_trip),
        cmocka_unit_test(test_same_seed_same_key),
        cmocka_unit_test(test_encode_decode_round_trip),
        cmocka_unit_test(test_decode_rejects_damage),
        cmocka_unit_test(test_wycheproof_vectors),
        cmocka_unit_test(test_x25519_form),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
