/* Unit tests for crypto/safety: both sides compute the same 60 digits, the
 * digits change with either key, and a known answer computed independently
 * (Python hashlib, from the construction in docs/PROTOCOL.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/safety.h"
#include "crypto/secure.h"

static void fill(uint8_t key[SAFETY_KEY_BYTES], uint8_t start)
{
    for (int i = 0; i < SAFETY_KEY_BYTES; i++)
        key[i] = (uint8_t)(start + i);
}

static void test_known_answer(void **state)
{
    (void)state;
    uint8_t a[SAFETY_KEY_BYTES], b[SAFETY_KEY_BYTES];
    char digits[SAFETY_TEXT_SIZE];

    fill(a, 0);
    fill(b, 32);
    safety_number(a, b, digits);
    assert_string_equal(digits, "607234249843963989148634049537124065904158984963337542985795");
    memset(a, 0xff, sizeof(a));
    memset(b, 0x01, sizeof(b));
    safety_number(a, b, digits);
    assert_string_equal(digits, "355817942272741566285487023941477675268848248964441879561820");
}

static void test_both_sides_agree(void **state)
{
    (void)state;
    uint8_t alice[SAFETY_KEY_BYTES], bob[SAFETY_KEY_BYTES];
    char at_alice[SAFETY_TEXT_SIZE], at_bob[SAFETY_TEXT_SIZE];

    secure_random(alice, sizeof(alice));
    secure_random(bob, sizeof(bob));
    safety_number(alice, bob, at_alice);
    safety_number(bob, alice, at_bob);
    assert_string_equal(at_alice, at_bob);
    assert_int_equal(strlen(at_alice), SAFETY_DIGITS);
    assert_int_equal(strspn(at_alice, "0123456789"), SAFETY_DIGITS);
}

static void test_either_key_changes_it(void **state)
{
    (void)state;
    uint8_t a[SAFETY_KEY_BYTES], b[SAFETY_KEY_BYTES], a2[SAFETY_KEY_BYTES], b2[SAFETY_KEY_BYTES];
    char base[SAFETY_TEXT_SIZE], other[SAFETY_TEXT_SIZE];

    fill(a, 7);
    fill(b, 100);
    safety_number(a, b, base);
    /* One bit of one key, anywhere: a different number. */
    for (int i = 0; i < SAFETY_KEY_BYTES; i += 7) {
        memcpy(a2, a, sizeof(a));
        a2[i] ^= 0x01;
        safety_number(a2, b, other);
        assert_string_not_equal(base, other);
        memcpy(b2, b, sizeof(b));
        b2[i] ^= 0x80;
        safety_number(a, b2, other);
        assert_string_not_equal(base, other);
    }
    /* Each half belongs to one key: changing b keeps a's 30 digits. */
    memcpy(b2, b, sizeof(b));
    b2[31] ^= 1;
    safety_number(a, b2, other);
    assert_memory_equal(base, other, SAFETY_DIGITS / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_both_sides_agree),
        cmocka_unit_test(test_either_key_changes_it),
    };
    if (secure_init() != MP_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
