/* Unit tests for crypto/seqid.c: ids map back to their seqs under their key
 * only, differ for different seqs, and refuse any changed byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/seqid.h"

static void key_of(uint8_t key[SEQID_KEY_BYTES], uint8_t byte)
{
    for (int i = 0; i < SEQID_KEY_BYTES; i++)
        key[i] = (uint8_t)(byte + i);
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t key[SEQID_KEY_BYTES], id[SEQID_BYTES];
    const uint64_t seqs[] = {0, 1, 2, 255, 256, 1u << 31, UINT64_MAX - 1, UINT64_MAX};
    key_of(key, 1);
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        uint64_t got = 12345;
        seqid_encode(key, seqs[i], id);
        assert_true(seqid_decode(key, id, &got));
        assert_true(got == seqs[i]);
    }
}

/* A known answer, worked out apart from crypto/seqid.c with libsodium's
 * SipHash-2-4 alone (key bytes 1..32, seq 7): ids already given out must
 * decode the same in every later build. */
static void test_known_answer(void **state)
{
    (void)state;
    static const uint8_t want[SEQID_BYTES] = {0xfd, 0xdd, 0x24, 0x30, 0x62, 0x39, 0x28, 0xb2,
                                              0xc2, 0x62, 0xa9, 0xb8, 0xa4, 0xa6, 0x83, 0x2e};
    uint8_t key[SEQID_KEY_BYTES], id[SEQID_BYTES];
    uint64_t got = 0;
    key_of(key, 1);
    seqid_encode(key, 7, id);
    assert_memory_equal(id, want, SEQID_BYTES);
    assert_true(seqid_decode(key, want, &got));
    assert_true(got == 7);
}

/* Consecutive seqs give ids with nothing in common that shows their order:
 * no two equal, and neither half counts up. */
static void test_ids_differ(void **state)
{
    (void)state;
    enum { N = 4096 };
    static uint8_t ids[N][SEQID_BYTES];
    uint8_t key[SEQID_KEY_BYTES];
    size_t tag_up = 0, masked_up = 0;
    key_of(key, 2);
    for (uint64_t s = 0; s < N; s++)
        seqid_encode(key, s + 1, ids[s]);
    for (size_t i = 0; i < N; i++) {
        for (size_t j = i + 1; j < N; j++)
            assert_memory_not_equal(ids[i], ids[j], SEQID_BYTES);
        if (i > 0) {
            tag_up += memcmp(ids[i], ids[i - 1], 8) > 0;
            masked_up += memcmp(ids[i] + 8, ids[i - 1] + 8, 8) > 0;
        }
    }
    /* About half go up by chance; a counter would make all of them. */
    assert_true(tag_up > N / 4 && tag_up < 3 * N / 4);
    assert_true(masked_up > N / 4 && masked_up < 3 * N / 4);
}

static void test_refusals(void **state)
{
    (void)state;
    uint8_t key[SEQID_KEY_BYTES], other[SEQID_KEY_BYTES], id[SEQID_BYTES];
    uint64_t got = 77;
    key_of(key, 3);
    key_of(other, 4);
    seqid_encode(key, 42, id);
    assert_false(seqid_decode(other, id, &got)); /* another node's key */
    for (int byte = 0; byte < SEQID_BYTES; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            id[byte] ^= (uint8_t)(1u << bit);
            assert_false(seqid_decode(key, id, &got));
            id[byte] ^= (uint8_t)(1u << bit);
        }
    }
    assert_true(got == 77); /* untouched by the refusals */
    assert_true(seqid_decode(key, id, &got));
    assert_true(got == 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_ids_differ),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
