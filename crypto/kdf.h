/*
 * kdf: HMAC-SHA256 and HKDF-SHA256 (RFC 5869), the key derivation functions
 * of X3DH, the Double Ratchet and sealed envelopes.
 *
 * Built on libsodium's crypto_auth_hmacsha256 (libsodium 1.0.18 has no HKDF).
 * Pure functions: no state, no allocation, no randomness. This module is not a
 * password hash and not a general MAC API: callers that compare tags use
 * sodium_memcmp themselves.
 */
#ifndef MP_CRYPTO_KDF_H
#define MP_CRYPTO_KDF_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define KDF_HASH_BYTES 32
/* RFC 5869: HKDF-Expand yields at most 255 hash blocks. */
#define KDF_HKDF_OUT_MAX (255 * KDF_HASH_BYTES)

/* HMAC-SHA256 of msg under key (any key length, per RFC 2104). */
void kdf_hmac(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t msg_len,
              uint8_t mac_out[KDF_HASH_BYTES]);

/* HKDF-Extract: PRK = HMAC(salt, ikm). An empty salt means 32 zero bytes. */
void kdf_hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                      uint8_t prk_out[KDF_HASH_BYTES]);

/* HKDF-Expand of a 32-byte PRK into okm_out, okm_len bytes. MP_ERR_INVAL when
 * okm_len is 0 or above KDF_HKDF_OUT_MAX (okm_out untouched). */
enum mp_err kdf_hkdf_expand(const uint8_t prk[KDF_HASH_BYTES], const uint8_t *info, size_t info_len,
                            size_t okm_len, uint8_t *okm_out);

/* Extract then expand: okm_len bytes into okm_out. Same errors as
 * kdf_hkdf_expand. */
enum mp_err kdf_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                     const uint8_t *info, size_t info_len, size_t okm_len, uint8_t *okm_out);

#endif
