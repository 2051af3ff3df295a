/* Unit tests for crypto/box: node keys, node ids, per-peer shared keys with a
 * network key, AEAD seal/open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "crypto/box.h"
#include "crypto/identity.h"
#include "tests/support/test_env.h"

static struct test_env te;

static void test_ed25519_seed_converts_to_matching_x25519(void **state)
{
    (void)state;
    uint8_t seed[BOX_SEED_BYTES], curve_pk[32];
    struct box_key *key = NULL;
    struct identity *id = NULL;
    env_random(&te.env, seed, sizeof(seed));
    assert_int_equal(box_key_from_ed25519_seed(seed, &key), MP_OK);
    assert_int_equal(identity_from_seed(seed, &id), MP_OK);
    /* The X25519 public key is the standard conversion of the Ed25519 one. */
    assert_int_equal(crypto_sign_ed25519_pk_to_curve25519(curve_pk, identity_public_key(id)), 0);
    assert_memory_equal(box_key_public(key), curve_pk, 32);
    struct box_key *from_id = NULL;
    assert_int_equal(box_key_from_identity(id, &from_id), MP_OK);
    assert_memory_equal(box_key_public(from_id), curve_pk, 32);
    box_key_free(from_id);
    identity_free(id);
    box_key_free(key);
    box_key_free(NULL);
}

static void test_node_id_is_hash_of_key(void **state)
{
    (void)state;
    uint8_t pk[32] = {1}, id1[32], id2[32];
    box_node_id(pk, id1);
    box_node_id(pk, id2);
    assert_memory_equal(id1, id2, 32);
    pk[31] ^= 1;
    box_node_id(pk, id2);
    assert_memory_not_equal(id1, id2, 32);
}

static void test_shared_key_symmetric_and_bound_to_network(void **state)
{
    (void)state;
    struct box_key *a = NULL, *b = NULL, *c = NULL;
    uint8_t pub[32], priv[32], ab[32], ba[32], ab_priv[32], ac[32];
    assert_int_equal(box_key_generate(&te.env, &a), MP_OK);
    assert_int_equal(box_key_generate(&te.env, &b), MP_OK);
    assert_int_equal(box_key_generate(&te.env, &c), MP_OK);
    box_public_network_key(pub);
    memset(priv, 7, sizeof(priv));
    assert_int_equal(box_shared(a, box_key_public(b), pub, ab), MP_OK);
    assert_int_equal(box_shared(b, box_key_public(a), pub, ba), MP_OK);
    assert_memory_equal(ab, ba, 32);
    assert_int_equal(box_shared(a, box_key_public(b), priv, ab_priv), MP_OK);
    assert_memory_not_equal(ab, ab_priv, 32);
    assert_int_equal(box_shared(a, box_key_public(c), pub, ac), MP_OK);
    assert_memory_not_equal(ab, ac, 32);
    /* Small-order points and our own key are refused, output zeroed. */
    uint8_t zero_pk[32] = {0}, zeros[32] = {0};
    assert_int_equal(box_shared(a, zero_pk, pub, ab), MP_ERR_CRYPTO);
    assert_memory_equal(ab, zeros, 32);
    uint8_t one_pk[32] = {1};
    assert_int_equal(box_shared(a, one_pk, pub, ab), MP_ERR_CRYPTO);
    assert_int_equal(box_shared(a, box_key_public(a), pub, ab), MP_ERR_CRYPTO);
    box_key_free(a);
    box_key_free(b);
    box_key_free(c);
}

static void test_seal_open_and_tamper(void **state)
{
    (void)state;
    uint8_t key[32], nonce[24], ad[5] = "head", msg[40] = "hello over the dht", ct[56], pt[40];
    env_random(&te.env, key, sizeof(key));
    env_random(&te.env, nonce, sizeof(nonce));
    box_seal(key, nonce, ad, sizeof(ad), msg, sizeof(msg), ct);
    assert_int_equal(box_open(key, nonce, ad, sizeof(ad), ct, sizeof(ct), pt), MP_OK);
    assert_memory_equal(pt, msg, sizeof(msg));
    ct[3] ^= 1;
    assert_int_equal(box_open(key, nonce, ad, sizeof(ad), ct, sizeof(ct), pt), MP_ERR_CRYPTO);
    ct[3] ^= 1;
    ad[0] ^= 1;
    assert_int_equal(box_open(key, nonce, ad, sizeof(ad), ct, sizeof(ct), pt), MP_ERR_CRYPTO);
    ad[0] ^= 1;
    key[0] ^= 1;
    assert_int_equal(box_open(key, nonce, ad, sizeof(ad), ct, sizeof(ct), pt), MP_ERR_CRYPTO);
    assert_int_equal(box_open(key, nonce, ad, sizeof(ad), ct, 10, pt), MP_ERR_MALFORMED);
}

static void test_equal_and_hash(void **state)
{
    (void)state;
    uint8_t a[16] = {1, 2, 3}, b[16] = {1, 2, 3}, h1[32], h2[32];
    assert_true(box_equal(a, b, 16));
    b[15] = 9;
    assert_false(box_equal(a, b, 16));
    /* Parts are concatenated: split points do not matter; keys do. */
    box_hash(h1, 32, NULL, 0, "ab", 2, "c", 1, NULL, 0);
    box_hash(h2, 32, NULL, 0, "a", 1, "bc", 2, NULL, 0);
    assert_memory_equal(h1, h2, 32);
    box_hash(h2, 32, a, 16, "abc", 3, NULL, 0, NULL, 0);
    assert_memory_not_equal(h1, h2, 32);
}

int main(void)
{
    test_env_init(&te, test_env_seed(21));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ed25519_seed_converts_to_matching_x25519),
        cmocka_unit_test(test_node_id_is_hash_of_key),
        cmocka_unit_test(test_shared_key_symmetric_and_bound_to_network),
        cmocka_unit_test(test_seal_open_and_tamper),
        cmocka_unit_test(test_equal_and_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
