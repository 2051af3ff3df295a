/*
 * noise_testing: hooks into crypto/noise that only tests, fuzz targets and
 * benchmarks may use. NOT FOR PRODUCTION CODE: a cipher built from a raw key
 * or moved to a chosen nonce can encrypt two messages under the same key and
 * nonce, which breaks ChaCha20-Poly1305. Links get their ciphers from
 * noise_handshake_split only. (The definitions live in noise.c.)
 */
#ifndef MP_CRYPTO_NOISE_TESTING_H
#define MP_CRYPTO_NOISE_TESTING_H

#include <stdint.h>

#include "base/err.h"
#include "crypto/noise.h"

/* A transport cipher holding a raw key (nonce 0, automatic rekey at
 * NOISE_REKEY_INTERVAL), owned by the caller (noise_cipher_free), for known-
 * answer tests. MP_ERR_CRYPTO if libsodium cannot start, MP_ERR_NOMEM. */
enum mp_err noise_cipher_new(const uint8_t key[NOISE_KEY_BYTES], struct noise_cipher **c_out);

/* The spec's SetNonce: moves the nonce counter, for tests that reach the end
 * of the nonce space or a rekey point. */
void noise_cipher_set_nonce(struct noise_cipher *c, uint64_t nonce);

#endif
