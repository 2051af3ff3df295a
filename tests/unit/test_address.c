/*
 * Unit tests for crypto/address: known answers, round trips over seeded keys,
 * and an exhaustive check that every single-character change and every swap
 * of neighbours in a set of addresses is refused with the right error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "crypto/address.h"
#include "crypto/identity.h"
#include "tests/support/test_env.h"

/* Addresses the exhaustive tests walk through (each in both cases). */
#define EXHAUSTIVE_KEYS 8
/* Keys in the random round trip. */
#define ROUND_TRIP_KEYS 2000

static const char alphabet[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/* RFC 8032, section 7.1, TEST 1: secret key (seed) and public key. */
static const char rfc8032_seed_hex[] =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char rfc8032_pk_hex[] =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

/*
 * Expected strings, computed once by a separate implementation (Python, by
 * long division of polynomials over GF(32), checked against the BIP-350
 * test vectors), not by the code under test.
 */
static const char rfc8032_address[] =
    "mp1qrt44xqps2cs4d74f0ld8jtyquaqactj70d2vge94upp568hqag3574fzjm";
/* RFC 8032 TEST 2 public key 3d4017c3...f4660c. */
static const char rfc8032_test2_address[] =
    "mp1qq75q97rappcjk5jku92wngm067fexpveuhvf95vcrx4tuf273nqct0k0me";
/* The TEST 1 key behind version bytes 0x01 and 0xff. */
static const char version1_address[] =
    "mp1q8t44xqps2cs4d74f0ld8jtyquaqactj70d2vge94upp568hqag35y2ua3v";
static const char version255_address[] =
    "mp1llt44xqps2cs4d74f0ld8jtyquaqactj70d2vge94upp568hqag35hu9438";
/* The TEST 1 key with the padding bit set, and a valid checksum over that. */
static const char padding_address[] =
    "mp1qrt44xqps2cs4d74f0ld8jtyquaqactj70d2vge94upp568hqag34rrah0f";
/* The TEST 1 key with an original Bech32 (BIP-173, constant 1) checksum. */
static const char bech32_not_m_address[] =
    "mp1qrt44xqps2cs4d74f0ld8jtyquaqactj70d2vge94upp568hqag35tfewhe";

static void hex_to_bytes(const char *hex, uint8_t *out, size_t len)
{
    assert_int_equal(strlen(hex), 2 * len);
    assert_int_equal(sodium_hex2bin(out, len, hex, 2 * len, NULL, NULL, NULL), 0);
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static char upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static bool is_letter(char c)
{
    return lower(c) >= 'a' && lower(c) <= 'z';
}

static void to_upper(const char *in, char out[ADDRESS_TEXT_SIZE])
{
    size_t i = 0;
    for (; in[i] != '\0'; i++)
        out[i] = upper(in[i]);
    out[i] = '\0';
}

/* Decode text, expect `want`, and on failure also that pk_out was left alone. */
static void expect(const char *text, enum mp_err want)
{
    uint8_t pk[32];
    memset(pk, 0xa5, sizeof(pk));
    enum mp_err got = address_decode(text, pk);
    if (got != want)
        fail_msg("address_decode(\"%s\") = %s, want %s", text, mp_errname(got), mp_errname(want));
    if (want != MP_OK) {
        for (size_t i = 0; i < sizeof(pk); i++)
            assert_int_equal(pk[i], 0xa5);
    }
}

static void test_text_length_is_62(void **state)
{
    (void)state;
    /* "mp" + "1" + 53 data characters (33 bytes * 8 / 5, rounded up) + 6 checksum. */
    assert_int_equal(ADDRESS_TEXT_LEN, 2 + 1 + (33 * 8 + 4) / 5 + 6);
    assert_int_equal(ADDRESS_TEXT_LEN, 62);
    assert_int_equal(ADDRESS_TEXT_SIZE, 63);
}

static void test_known_answer(void **state)
{
    (void)state;
    uint8_t seed[32], pk[32], decoded[32];
    struct identity *id = NULL;
    char text[ADDRESS_TEXT_SIZE], text_upper[ADDRESS_TEXT_SIZE];

    hex_to_bytes(rfc8032_seed_hex, seed, sizeof(seed));
    hex_to_bytes(rfc8032_pk_hex, pk, sizeof(pk));
    assert_int_equal(identity_from_seed(seed, &id), MP_OK);
    assert_memory_equal(identity_public_key(id), pk, sizeof(pk));
    identity_free(id);

    address_encode(pk, text);
    assert_string_equal(text, rfc8032_address);
    assert_int_equal(address_decode(rfc8032_address, decoded), MP_OK);
    assert_memory_equal(decoded, pk, sizeof(pk));
    to_upper(rfc8032_address, text_upper);
    memset(decoded, 0, sizeof(decoded));
    assert_int_equal(address_decode(text_upper, decoded), MP_OK);
    assert_memory_equal(decoded, pk, sizeof(pk));

    hex_to_bytes("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", pk,
                 sizeof(pk));
    address_encode(pk, text);
    assert_string_equal(text, rfc8032_test2_address);
    expect(rfc8032_test2_address, MP_OK);
}

static void test_round_trip_random_keys(void **state)
{
    (void)state;
    struct test_env te;
    test_env_init(&te, test_env_seed(20261130));

    for (int n = 0; n < ROUND_TRIP_KEYS; n++) {
        struct identity *id = NULL;
        char text[ADDRESS_TEXT_SIZE], text_upper[ADDRESS_TEXT_SIZE];
        uint8_t pk[32];

        assert_int_equal(identity_generate(&te.env, &id), MP_OK);
        memset(text, 'x', sizeof(text));
        address_encode(identity_public_key(id), text);
        assert_int_equal(strlen(text), ADDRESS_TEXT_LEN);
        assert_memory_equal(text, "mp1", 3);
        for (size_t i = 3; i < ADDRESS_TEXT_LEN; i++)
            assert_non_null(memchr(alphabet, text[i], 32));

        assert_int_equal(address_decode(text, pk), MP_OK);
        assert_memory_equal(pk, identity_public_key(id), 32);
        to_upper(text, text_upper);
        memset(pk, 0, sizeof(pk));
        assert_int_equal(address_decode(text_upper, pk), MP_OK);
        assert_memory_equal(pk, identity_public_key(id), 32);
        identity_free(id);
    }
}

/*
 * What decoding `addr` with position pos replaced by byte c must give, from
 * the rules in docs/PROTOCOL.md (not from the code): the prefix is checked
 * first (either case), then the length, the alphabet, mixed case, and only
 * then the checksum, which must catch every remaining substitution.
 */
static enum mp_err substitution_error(const char *addr, size_t pos, char c)
{
    bool addr_upper = addr[0] == 'M';

    if (pos < 3)
        return lower(c) == lower(addr[pos]) ? MP_ERR_ADDR_CASE : MP_ERR_ADDR_PREFIX;
    if (c == '\0')
        return MP_ERR_ADDR_LENGTH;
    if (memchr(alphabet, lower(c), 32) == NULL)
        return MP_ERR_ADDR_ALPHABET;
    if (is_letter(c) && (c == upper(c)) != addr_upper)
        return MP_ERR_ADDR_CASE;
    return MP_ERR_ADDR_CHECKSUM;
}

/* Fill addrs with EXHAUSTIVE_KEYS lowercase addresses followed by the same in uppercase. */
static void exhaustive_addresses(char addrs[2 * EXHAUSTIVE_KEYS][ADDRESS_TEXT_SIZE])
{
    struct test_env te;
    test_env_init(&te, test_env_seed(7));

    for (int k = 0; k < EXHAUSTIVE_KEYS; k++) {
        struct identity *id = NULL;
        assert_int_equal(identity_generate(&te.env, &id), MP_OK);
        address_encode(identity_public_key(id), addrs[k]);
        to_upper(addrs[k], addrs[EXHAUSTIVE_KEYS + k]);
        identity_free(id);
    }
}

static void test_every_substitution_is_refused(void **state)
{
    (void)state;
    char addrs[2 * EXHAUSTIVE_KEYS][ADDRESS_TEXT_SIZE];
    unsigned checksum_catches = 0;

    exhaustive_addresses(addrs);
    for (int k = 0; k < 2 * EXHAUSTIVE_KEYS; k++) {
        expect(addrs[k], MP_OK);
        for (size_t pos = 0; pos < ADDRESS_TEXT_LEN; pos++) {
            /* Every byte value: the other 31 alphabet characters in both
             * cases, the excluded letters, digits, punctuation, NUL, 8-bit. */
            for (int c = 0; c < 256; c++) {
                char text[ADDRESS_TEXT_SIZE];
                if ((char)c == addrs[k][pos])
                    continue;
                memcpy(text, addrs[k], sizeof(text));
                text[pos] = (char)c;
                enum mp_err want = substitution_error(addrs[k], pos, (char)c);
                expect(text, want);
                checksum_catches += want == MP_ERR_ADDR_CHECKSUM;
            }
        }
    }
    /* Each data position has 31 other alphabet values in the address's own case. */
    assert_int_equal(checksum_catches, 2 * EXHAUSTIVE_KEYS * (ADDRESS_TEXT_LEN - 3) * 31);
}

static void test_every_neighbour_swap_is_refused(void **state)
{
    (void)state;
    char addrs[2 * EXHAUSTIVE_KEYS][ADDRESS_TEXT_SIZE];
    unsigned swaps = 0;

    exhaustive_addresses(addrs);
    for (int k = 0; k < 2 * EXHAUSTIVE_KEYS; k++) {
        for (size_t pos = 0; pos + 1 < ADDRESS_TEXT_LEN; pos++) {
            char text[ADDRESS_TEXT_SIZE];
            if (addrs[k][pos] == addrs[k][pos + 1])
                continue;
            memcpy(text, addrs[k], sizeof(text));
            text[pos] = addrs[k][pos + 1];
            text[pos + 1] = addrs[k][pos];
            /* Swaps touching "mp1" break the prefix; all others the checksum. */
            expect(text, pos < 3 ? MP_ERR_ADDR_PREFIX : MP_ERR_ADDR_CHECKSUM);
            swaps++;
        }
    }
    assert_true(swaps > 2 * EXHAUSTIVE_KEYS * 50);
}

static void test_wrong_length(void **state)
{
    (void)state;
    char text[ADDRESS_TEXT_SIZE + 8];

    /* One character short, at the end and in the middle. */
    memcpy(text, rfc8032_address, ADDRESS_TEXT_SIZE);
    text[ADDRESS_TEXT_LEN - 1] = '\0';
    expect(text, MP_ERR_ADDR_LENGTH);
    memcpy(text, rfc8032_address, 30);
    memcpy(text + 30, rfc8032_address + 31, ADDRESS_TEXT_SIZE - 31);
    expect(text, MP_ERR_ADDR_LENGTH);
    /* One character long: appended, or inserted in the middle. */
    snprintf(text, sizeof(text), "%sq", rfc8032_address);
    expect(text, MP_ERR_ADDR_LENGTH);
    snprintf(text, sizeof(text), "%.30sq%s", rfc8032_address, rfc8032_address + 30);
    expect(text, MP_ERR_ADDR_LENGTH);
    /* A trailing newline or space from a copy and paste. */
    snprintf(text, sizeof(text), "%s\n", rfc8032_address);
    expect(text, MP_ERR_ADDR_LENGTH);
    snprintf(text, sizeof(text), "%s ", rfc8032_address);
    expect(text, MP_ERR_ADDR_LENGTH);
    expect("mp1", MP_ERR_ADDR_LENGTH);
    /* The length is checked before the alphabet. */
    expect("mp1b", MP_ERR_ADDR_LENGTH);
}

static void test_wrong_alphabet(void **state)
{
    (void)state;
    static const char excluded[] = "bio1BIO -_.";
    char text[ADDRESS_TEXT_SIZE];

    for (size_t i = 0; excluded[i] != '\0'; i++) {
        for (size_t pos = 3; pos < ADDRESS_TEXT_LEN; pos += 29) {
            memcpy(text, rfc8032_address, sizeof(text));
            text[pos] = excluded[i];
            expect(text, MP_ERR_ADDR_ALPHABET);
        }
    }
    /* Non-ASCII bytes (UTF-8 of a look-alike letter would also be too long). */
    memcpy(text, rfc8032_address, sizeof(text));
    text[10] = (char)0xc3;
    expect(text, MP_ERR_ADDR_ALPHABET);
}

static void test_wrong_prefix(void **state)
{
    (void)state;
    char text[ADDRESS_TEXT_SIZE + 1];

    expect("", MP_ERR_ADDR_PREFIX);
    expect("m", MP_ERR_ADDR_PREFIX);
    expect("mp", MP_ERR_ADDR_PREFIX);
    expect("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", MP_ERR_ADDR_PREFIX);
    memcpy(text, rfc8032_address, ADDRESS_TEXT_SIZE);
    text[1] = 'q'; /* "mq1..." */
    expect(text, MP_ERR_ADDR_PREFIX);
    memcpy(text, rfc8032_address, ADDRESS_TEXT_SIZE);
    text[2] = 'l'; /* separator replaced by an alphabet character */
    expect(text, MP_ERR_ADDR_PREFIX);
    /* Leading white space is not trimmed. */
    snprintf(text, sizeof(text), " %.61s", rfc8032_address);
    expect(text, MP_ERR_ADDR_PREFIX);
    expect(NULL, MP_ERR_INVAL);
}

static void test_mixed_case(void **state)
{
    (void)state;
    char text[ADDRESS_TEXT_SIZE];

    memcpy(text, rfc8032_address, sizeof(text));
    text[0] = 'M';
    expect(text, MP_ERR_ADDR_CASE);
    to_upper(rfc8032_address, text);
    text[ADDRESS_TEXT_LEN - 1] = lower(text[ADDRESS_TEXT_LEN - 1]);
    expect(text, MP_ERR_ADDR_CASE);
    /* Half and half. */
    to_upper(rfc8032_address, text);
    for (size_t i = 31; i < ADDRESS_TEXT_LEN; i++)
        text[i] = lower(text[i]);
    expect(text, MP_ERR_ADDR_CASE);
}

static void test_checksum_constant_is_bech32m(void **state)
{
    (void)state;
    /* The same data with BIP-173's constant 1 instead of 0x2bc830a3. */
    expect(bech32_not_m_address, MP_ERR_ADDR_CHECKSUM);
    expect(padding_address, MP_ERR_MALFORMED);
}

static void test_wrong_version(void **state)
{
    (void)state;
    expect(version1_address, MP_ERR_ADDR_VERSION);
    expect(version255_address, MP_ERR_ADDR_VERSION);
}

static void test_invalid_keys(void **state)
{
    (void)state;
    uint8_t key[32], good[32], torsion[32];
    char text[ADDRESS_TEXT_SIZE];

    /* The neutral element (y = 1): small order. */
    memset(key, 0, sizeof(key));
    key[0] = 1;
    address_encode(key, text);
    expect(text, MP_ERR_ADDR_KEY);
    /* y = 0: a point of order 4. */
    memset(key, 0, sizeof(key));
    address_encode(key, text);
    expect(text, MP_ERR_ADDR_KEY);
    /* y = 2 is on no point of the curve. */
    key[0] = 2;
    address_encode(key, text);
    expect(text, MP_ERR_ADDR_KEY);
    /* y = p (non-canonical encoding of y = 0). */
    memset(key, 0xff, sizeof(key));
    key[0] = 0xed;
    key[31] = 0x7f;
    address_encode(key, text);
    expect(text, MP_ERR_ADDR_KEY);
    /* A valid key plus a point of order 4: on the curve, outside the
     * prime-order subgroup. */
    hex_to_bytes(rfc8032_pk_hex, good, sizeof(good));
    memset(torsion, 0, sizeof(torsion));
    assert_int_equal(crypto_core_ed25519_add(key, good, torsion), 0);
    address_encode(key, text);
    expect(text, MP_ERR_ADDR_KEY);
    address_encode(good, text);
    expect(text, MP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_length_is_62),
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_round_trip_random_keys),
        cmocka_unit_test(test_every_substitution_is_refused),
        cmocka_unit_test(test_every_neighbour_swap_is_refused),
        cmocka_unit_test(test_wrong_length),
        cmocka_unit_test(test_wrong_alphabet),
        cmocka_unit_test(test_wrong_prefix),
        cmocka_unit_test(test_mixed_case),
        cmocka_unit_test(test_checksum_constant_is_bech32m),
        cmocka_unit_test(test_wrong_version),
        cmocka_unit_test(test_invalid_keys),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
