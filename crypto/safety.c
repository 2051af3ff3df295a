/*
 * safety: numeric fingerprints of two account keys (see safety.h).
 *
 * For each key k: h = SHA-512(version (2 bytes, big-endian 1) || label || k),
 * then SAFETY_ITERATIONS times h = SHA-512(h || k); the first 30 bytes of h
 * give 6 groups of 5 digits (each 5 bytes as a big-endian integer mod
 * 100000). The key that sorts first (memcmp) gives the first 30 digits.
 */
#include "crypto/safety.h"

#include <sodium.h>
#include <string.h>

#define VERSION     1
#define LABEL       "merpati safety number"
#define CHUNK_BYTES 5
#define KEY_DIGITS  (SAFETY_DIGITS / 2)

static void key_digits(const uint8_t key[SAFETY_KEY_BYTES], char *out)
{
    uint8_t h[crypto_hash_sha512_BYTES];
    const uint8_t version[2] = {0, VERSION};
    crypto_hash_sha512_state st;

    crypto_hash_sha512_init(&st);
    crypto_hash_sha512_update(&st, version, sizeof(version));
    crypto_hash_sha512_update(&st, (const uint8_t *)LABEL, sizeof(LABEL) - 1);
    crypto_hash_sha512_update(&st, key, SAFETY_KEY_BYTES);
    crypto_hash_sha512_final(&st, h);
    for (int i = 0; i < SAFETY_ITERATIONS; i++) {
        crypto_hash_sha512_init(&st);
        crypto_hash_sha512_update(&st, h, sizeof(h));
        crypto_hash_sha512_update(&st, key, SAFETY_KEY_BYTES);
        crypto_hash_sha512_final(&st, h);
    }
    for (int g = 0; g < KEY_DIGITS / SAFETY_GROUP_DIGITS; g++) {
        uint64_t v = 0;
        for (int k = 0; k < CHUNK_BYTES; k++)
            v = v << 8 | h[g * CHUNK_BYTES + k];
        v %= 100000;
        for (int d = SAFETY_GROUP_DIGITS - 1; d >= 0; d--) {
            out[g * SAFETY_GROUP_DIGITS + d] = (char)('0' + v % 10);
            v /= 10;
        }
    }
    sodium_memzero(&st, sizeof(st));
}

void safety_number(const uint8_t a[SAFETY_KEY_BYTES], const uint8_t b[SAFETY_KEY_BYTES],
                   char digits_out[SAFETY_TEXT_SIZE])
{
    const uint8_t *first = a, *second = b;

    if (memcmp(a, b, SAFETY_KEY_BYTES) > 0) {
        first = b;
        second = a;
    }
    key_digits(first, digits_out);
    key_digits(second, digits_out + KEY_DIGITS);
    digits_out[SAFETY_DIGITS] = '\0';
}
