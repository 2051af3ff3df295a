/*
 * Unit tests for crypto/cluster: the join token's known answer (computed by a
 * separate Python implementation of Bech32m), round trips, every error a
 * mistyped or hand-made token gives, and the derived keys (HKDF known
 * answers, one key per context, the fingerprint's form).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/cluster.h"
#include "crypto/secure.h"
#include "tests/support/test_env.h"

/* name "team", secret 00..1f, 11..11@10.0.0.1:7701, 22..22@[::1]:7702. */
static const char known_token[] =
    "mpc1qyz8getpd5qqzqsrqszsvpcgpy9qkrqdpc83qygjzv2p29shrqv35xcur50p7qs3zyg3zyg3zyg3zyg3zyg3zy"
    "g3zyg3zyg3zyg3zyg3zyg3zyg3zyzq5qqqqy0p2g3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3z"
    "qcqqqqqqqqqqqqqqqqqqqqqqqqq3u9sa78q0y";

static void known_struct(struct cluster_token *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "team");
    for (int i = 0; i < 32; i++)
        t->secret[i] = (uint8_t)i;
    t->bootstrap_count = 2;
    memset(t->bootstrap[0].node_key, 0x11, 32);
    assert_int_equal(addr_parse("10.0.0.1:7701", &t->bootstrap[0].addr), MP_OK);
    memset(t->bootstrap[1].node_key, 0x22, 32);
    assert_int_equal(addr_parse("[::1]:7702", &t->bootstrap[1].addr), MP_OK);
}

static void hex_to(const char *hex, uint8_t *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static void test_known_answer(void **state)
{
    struct cluster_token t, back;
    char text[CLUSTER_TOKEN_TEXT_SIZE];
    (void)state;

    known_struct(&t);
    assert_int_equal(cluster_token_encode(&t, text, sizeof(text)), MP_OK);
    assert_string_equal(text, known_token);
    assert_int_equal(cluster_token_decode(known_token, &back), MP_OK);
    assert_string_equal(back.name, "team");
    assert_memory_equal(back.secret, t.secret, 32);
    assert_int_equal(back.bootstrap_count, 2);
    assert_true(addr_equal(&back.bootstrap[0].addr, &t.bootstrap[0].addr));
    assert_true(addr_equal(&back.bootstrap[1].addr, &t.bootstrap[1].addr));
    assert_memory_equal(back.bootstrap[1].node_key, t.bootstrap[1].node_key, 32);
}

/* Seeded tokens of every entry count and both families come back equal. */
static void test_round_trip(void **state)
{
    struct test_env te;
    char text[CLUSTER_TOKEN_TEXT_SIZE];
    (void)state;

    test_env_init(&te, test_env_seed(7));
    for (unsigned round = 0; round < 200; round++) {
        struct cluster_token t, back;
        memset(&t, 0, sizeof(t));
        unsigned name_len = 1 + round % CLUSTER_NAME_MAX;
        for (unsigned i = 0; i < name_len; i++)
            t.name[i] =
                "abcdefghijklmnopqrstuvwxyz0123456789-._"[(round + i * 7) % (i == 0 ? 36 : 39)];
        cluster_secret_generate(&te.env, t.secret);
        t.bootstrap_count = round % (CLUSTER_BOOTSTRAP_MAX + 1);
        for (unsigned i = 0; i < t.bootstrap_count; i++) {
            struct cluster_entry *e = &t.bootstrap[i];
            env_random(&te.env, e->node_key, 32);
            e->addr.family = (round + i) % 2 ? ADDR_FAMILY_IPV6 : ADDR_FAMILY_IPV4;
            env_random(&te.env, e->addr.ip, e->addr.family == ADDR_FAMILY_IPV6 ? 16 : 4);
            e->addr.port = (uint16_t)(1 + round * 97 + i);
        }
        assert_int_equal(cluster_token_encode(&t, text, sizeof(text)), MP_OK);
        assert_true(strlen(text) <= CLUSTER_TOKEN_TEXT_MAX);
        assert_int_equal(cluster_token_decode(text, &back), MP_OK);
        assert_string_equal(back.name, t.name);
        assert_memory_equal(back.secret, t.secret, 32);
        assert_int_equal(back.bootstrap_count, t.bootstrap_count);
        for (unsigned i = 0; i < t.bootstrap_count; i++) {
            assert_memory_equal(back.bootstrap[i].node_key, t.bootstrap[i].node_key, 32);
            assert_true(addr_equal(&back.bootstrap[i].addr, &t.bootstrap[i].addr));
        }
        /* Upper case is the same token (for QR codes), mixed case is not. */
        for (size_t i = 0; text[i] != '\0'; i++)
            text[i] = (char)(text[i] >= 'a' && text[i] <= 'z' ? text[i] - 32 : text[i]);
        assert_int_equal(cluster_token_decode(text, &back), MP_OK);
        assert_memory_equal(back.secret, t.secret, 32);
        text[5] = (char)(text[5] >= 'A' && text[5] <= 'Z' ? text[5] + 32 : text[5]);
        if (text[5] >= 'a' && text[5] <= 'z')
            assert_int_equal(cluster_token_decode(text, &back), MP_ERR_CLUSTER_TOKEN);
    }
}

/* Every single-character change of the known token is caught. */
static void test_typos(void **state)
{
    static const char alphabet[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    char text[sizeof(known_token)];
    struct cluster_token back;
    (void)state;

    for (size_t i = 4; i < sizeof(known_token) - 1; i++) {
        for (size_t k = 0; k < 32; k++) {
            memcpy(text, known_token, sizeof(text));
            if (alphabet[k] == text[i])
                continue;
            text[i] = alphabet[k];
            assert_int_equal(cluster_token_decode(text, &back), MP_ERR_CLUSTER_TOKEN_CHECKSUM);
        }
    }
    /* A cut-off token (lost in copying) is refused too. */
    for (size_t len = 4; len < sizeof(known_token) - 1; len += 13) {
        memcpy(text, known_token, len);
        text[len] = '\0';
        enum mp_err err = cluster_token_decode(text, &back);
        assert_true(err == MP_ERR_CLUSTER_TOKEN_CHECKSUM || err == MP_ERR_CLUSTER_TOKEN);
    }
}

static void test_bad_tokens(void **state)
{
    struct cluster_token t, back;
    char text[CLUSTER_TOKEN_TEXT_SIZE];
    (void)state;

    assert_int_equal(cluster_token_decode(NULL, &back), MP_ERR_INVAL);
    assert_int_equal(cluster_token_decode("", &back), MP_ERR_CLUSTER_TOKEN);
    assert_int_equal(cluster_token_decode("mp1qqqq", &back), MP_ERR_CLUSTER_TOKEN);
    /* An account address is no token. */
    assert_int_equal(cluster_token_decode(
                         "mp1qrt44xqps2cs4d74f0ld8jtyquaqactj70d2vge94upp568hqag3574fzjm", &back),
                     MP_ERR_CLUSTER_TOKEN);
    memcpy(text, known_token, sizeof(known_token));
    text[10] = 'b'; /* not in the alphabet */
    assert_int_equal(cluster_token_decode(text, &back), MP_ERR_CLUSTER_TOKEN);
    memcpy(text, known_token, sizeof(known_token));
    text[10] = ' ';
    assert_int_equal(cluster_token_decode(text, &back), MP_ERR_CLUSTER_TOKEN);

    /* Encoding refuses what decoding would refuse. */
    known_struct(&t);
    snprintf(t.name, sizeof(t.name), "-team");
    assert_int_equal(cluster_token_encode(&t, text, sizeof(text)), MP_ERR_INVAL);
    snprintf(t.name, sizeof(t.name), "Team");
    assert_int_equal(cluster_token_encode(&t, text, sizeof(text)), MP_ERR_INVAL);
    snprintf(t.name, sizeof(t.name), "team");
    t.bootstrap[0].addr.port = 0;
    assert_int_equal(cluster_token_encode(&t, text, sizeof(text)), MP_ERR_INVAL);
    known_struct(&t);
    t.bootstrap_count = CLUSTER_BOOTSTRAP_MAX + 1;
    assert_int_equal(cluster_token_encode(&t, text, sizeof(text)), MP_ERR_INVAL);
    known_struct(&t);
    assert_int_equal(cluster_token_encode(&t, text, 20), MP_ERR_TOO_BIG);
}

/* Right checksums over payloads that break the format (made by the Python
 * encoder, as a hand-made or future token would be). */
static void test_bad_payloads(void **state)
{
    static const struct {
        const char *text;
        enum mp_err err;
    } cases[] = {
        {"mpc1qgpkcctzqqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0sqpc2e2t",
         MP_ERR_CLUSTER_TOKEN_VERSION}, /* version 2 */
        {"mpc1qypkcctzqqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0sqqq4c08vh",
         MP_ERR_CLUSTER_TOKEN}, /* a trailing byte */
        {"mpc1qypkcctzqqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0szvenxvenxvenxvenxvenxve"
         "nxvenxvenxvenxvenxvenxvenxvenq5qsyqcyqqqscz3htg",
         MP_ERR_CLUSTER_TOKEN}, /* address family 5 */
        {"mpc1qypkcctzqqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0szvenxvenxvenxvenxvenxve"
         "nxvenxvenxvenxvenxvenxvenxvenqsqsyqcyqqqqp4sevv",
         MP_ERR_CLUSTER_TOKEN}, /* port 0 */
        {"mpc1qyp5cctzqqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0sq0h9cqg",
         MP_ERR_CLUSTER_TOKEN}, /* name "Lab" */
    };
    struct cluster_token t;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(cluster_token_decode(cases[i].text, &t), cases[i].err);
    /* The same payload with a valid name and no entries is a token. */
    assert_int_equal(
        cluster_token_decode(
            "mpc1qypkcctzqqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0sqhn3khf", &t),
        MP_OK);
    assert_string_equal(t.name, "lab");
    assert_int_equal(t.bootstrap_count, 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(cluster_name_valid("team"));
    assert_true(cluster_name_valid("0-lab.eu_2"));
    assert_true(cluster_name_valid("abcdefghijklmnopqrstuvwxyz012345"));
    assert_false(cluster_name_valid("abcdefghijklmnopqrstuvwxyz0123456"));
    assert_false(cluster_name_valid(""));
    assert_false(cluster_name_valid(NULL));
    assert_false(cluster_name_valid(".hidden"));
    assert_false(cluster_name_valid("a b"));
    assert_false(cluster_name_valid("a/b"));
    assert_false(cluster_name_valid("Team"));
    assert_false(cluster_name_valid("public/x"));
}

/* Known answers computed with Python's hmac/hashlib, not the code under test. */
static void test_derive(void **state)
{
    uint8_t secret[32], expect[32];
    struct cluster_keys k, again;
    (void)state;

    for (int i = 0; i < 32; i++)
        secret[i] = (uint8_t)i;
    cluster_derive(secret, &k);
    hex_to("4f2247a6e339605453d3002ef1cd24f70c2f59ceb477d951e9fa3859ceb5c3bd", expect, 32);
    assert_memory_equal(k.dht_key, expect, 32);
    hex_to("2708da81c1390c9c904596ae2d48d92b5521f0d40bef87a6569693b689ea1d3f", expect, 32);
    assert_memory_equal(k.psk, expect, 32);
    hex_to("dde3b8e0777163b231ce7f0b0a6202da", expect, 16);
    assert_memory_equal(k.network_id, expect, 16);
    assert_string_equal(k.fingerprint, "5eb7-2c2f-972f-c1c8");

    /* No derived value is the secret or another derived value. */
    assert_memory_not_equal(k.dht_key, secret, 32);
    assert_memory_not_equal(k.psk, secret, 32);
    assert_memory_not_equal(k.psk, k.dht_key, 32);

    /* Deterministic, and another secret gives other keys. */
    cluster_derive(secret, &again);
    assert_memory_equal(&again, &k, sizeof(k));
    secret[31] ^= 1;
    cluster_derive(secret, &again);
    assert_memory_not_equal(again.dht_key, k.dht_key, 32);
    assert_memory_not_equal(again.psk, k.psk, 32);
    assert_string_not_equal(again.fingerprint, k.fingerprint);
    cluster_keys_wipe(&again);
    uint8_t zero[sizeof(again)] = {0};
    assert_memory_equal(&again, zero, sizeof(again));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer), cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_typos),        cmocka_unit_test(test_bad_tokens),
        cmocka_unit_test(test_names),        cmocka_unit_test(test_derive),
        cmocka_unit_test(test_bad_payloads),
    };
    secure_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
