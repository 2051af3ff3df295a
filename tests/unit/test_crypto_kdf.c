/* crypto/kdf: every Wycheproof HMAC-SHA256 and HKDF-SHA256 case (Apache-2.0
 * vectors in tests/vectors/, licence beside them). */
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

#include "crypto/kdf.h"

#define HEX_MAX (8 * 1024)

static json_t *load(const char *name)
{
    char path[512];
    json_error_t jerr;

    snprintf(path, sizeof(path), "%s/%s", MP_VECTORS_DIR, name);
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL)
        fail_msg("%s: %s (line %d)", path, jerr.text, jerr.line);
    return root;
}

/* Hex field -> bytes; returns the length. */
static size_t unhex(const json_t *obj, const char *key, uint8_t *out)
{
    const char *hex = json_string_value(json_object_get(obj, key));
    size_t len = 0;

    assert_non_null(hex);
    assert_int_equal(sodium_hex2bin(out, HEX_MAX, hex, strlen(hex), NULL, &len, NULL), 0);
    return len;
}

static void test_hmac_wycheproof(void **state)
{
    (void)state;
    json_t *root = load("wycheproof-hmac_sha256_test.json");
    static uint8_t key[HEX_MAX], msg[HEX_MAX], tag[HEX_MAX];
    uint8_t out[KDF_HASH_BYTES];
    size_t index, j, checked = 0;
    json_t *group, *tc;

    json_array_foreach(json_object_get(root, "testGroups"), index, group)
    {
        json_array_foreach(json_object_get(group, "tests"), j, tc)
        {
            size_t key_len = unhex(tc, "key", key);
            size_t msg_len = unhex(tc, "msg", msg);
            size_t tag_len = unhex(tc, "tag", tag);
            bool valid = strcmp(json_string_value(json_object_get(tc, "result")), "valid") == 0;
            assert_true(tag_len <= sizeof(out));
            kdf_hmac(key, key_len, msg, msg_len, out);
            /* Truncated tags compare as prefixes. */
            bool match = memcmp(out, tag, tag_len) == 0;
            if (match != valid)
                fail_msg("HMAC tcId %lld: expected %s",
                         (long long)json_integer_value(json_object_get(tc, "tcId")),
                         valid ? "match" : "mismatch");
            checked++;
        }
    }
    assert_int_equal(checked, 174);
    json_decref(root);
}

static void test_hkdf_wycheproof(void **state)
{
    (void)state;
    json_t *root = load("wycheproof-hkdf_sha256_test.json");
    static uint8_t ikm[HEX_MAX], salt[HEX_MAX], info[HEX_MAX], okm[HEX_MAX], out[HEX_MAX];
    size_t index, j, checked = 0, refused = 0;
    json_t *group, *tc;

    json_array_foreach(json_object_get(root, "testGroups"), index, group)
    {
        json_array_foreach(json_object_get(group, "tests"), j, tc)
        {
            size_t ikm_len = unhex(tc, "ikm", ikm);
            size_t salt_len = unhex(tc, "salt", salt);
            size_t info_len = unhex(tc, "info", info);
            size_t okm_len = unhex(tc, "okm", okm);
            size_t size = (size_t)json_integer_value(json_object_get(tc, "size"));
            bool valid = strcmp(json_string_value(json_object_get(tc, "result")), "valid") == 0;
            long long id = (long long)json_integer_value(json_object_get(tc, "tcId"));
            if (size > sizeof(out)) {
                /* Only the "size too large" cases ask for more than 255 blocks. */
                assert_false(valid);
                assert_int_equal(kdf_hkdf(salt, salt_len, ikm, ikm_len, info, info_len,
                                          KDF_HKDF_OUT_MAX + 1, out),
                                 MP_ERR_INVAL);
                refused++;
                checked++;
                continue;
            }
            enum mp_err err = kdf_hkdf(salt, salt_len, ikm, ikm_len, info, info_len, size, out);
            if (!valid) {
                if (err != MP_ERR_INVAL)
                    fail_msg("HKDF tcId %lld: invalid case accepted", id);
                refused++;
            } else {
                assert_int_equal(err, MP_OK);
                assert_int_equal(okm_len, size);
                if (memcmp(out, okm, size) != 0)
                    fail_msg("HKDF tcId %lld: wrong output", id);
            }
            checked++;
        }
    }
    assert_int_equal(checked, 86);
    assert_true(refused > 0);
    json_decref(root);
}

static void test_hkdf_limits(void **state)
{
    (void)state;
    uint8_t out[64];
    uint8_t prk[KDF_HASH_BYTES] = {1};

    memset(out, 0xAA, sizeof(out));
    assert_int_equal(kdf_hkdf_expand(prk, NULL, 0, 0, out), MP_ERR_INVAL);
    assert_int_equal(kdf_hkdf_expand(prk, NULL, 0, KDF_HKDF_OUT_MAX + 1, out), MP_ERR_INVAL);
    assert_int_equal(out[0], 0xAA); /* untouched */
    /* Expand is a prefix-stable stream: 33 bytes begin with the 32-byte output. */
    uint8_t a[32], b[33];
    assert_int_equal(kdf_hkdf_expand(prk, (const uint8_t *)"x", 1, sizeof(a), a), MP_OK);
    assert_int_equal(kdf_hkdf_expand(prk, (const uint8_t *)"x", 1, sizeof(b), b), MP_OK);
    assert_memory_equal(a, b, sizeof(a));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_wycheproof),
        cmocka_unit_test(test_hkdf_wycheproof),
        cmocka_unit_test(test_hkdf_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
