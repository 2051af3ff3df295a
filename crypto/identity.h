/*
 * identity: an account (or node) key pair, Ed25519.
 *
 * The secret half lives in libsodium's guarded memory (sodium_malloc) and is
 * wiped when the identity is freed. This module signs and verifies; it does
 * no I/O: node/keyfile.c stores the encoded form that identity_encode writes.
 */
#ifndef MP_CRYPTO_IDENTITY_H
#define MP_CRYPTO_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/env.h"
#include "base/err.h"

#define IDENTITY_PUBLIC_BYTES 32
#define IDENTITY_SEED_BYTES 32
#define IDENTITY_SIGNATURE_BYTES 64
/* Encoded form (the key file): magic, seed, public key. See docs/PROTOCOL.md. */
#define IDENTITY_ENCODED_BYTES 72

struct identity;

/* A fresh key pair from 32 bytes of env randomness. */
enum mp_err identity_generate(const struct env *env, struct identity **id_out);

/* The key pair that a 32-byte seed determines (tests, key files). */
enum mp_err identity_from_seed(const uint8_t seed[IDENTITY_SEED_BYTES], struct identity **id_out);

/* Borrowed pointer to the 32-byte public key, valid until identity_free. */
const uint8_t *identity_public_key(const struct identity *id);

/* Sign len bytes of msg. */
void identity_sign(const struct identity *id, const uint8_t *msg, size_t len,
                   uint8_t sig_out[IDENTITY_SIGNATURE_BYTES]);

/* True when sig is pk's signature of msg. Rejects small-order and
 * non-canonical keys and signatures. */
bool identity_verify(const uint8_t pk[IDENTITY_PUBLIC_BYTES], const uint8_t *msg, size_t len,
                     const uint8_t sig[IDENTITY_SIGNATURE_BYTES]);

/* The 32-byte seed that determines the key pair, for deriving the node's
 * other keys from it (crypto/box.h). Secret: the caller wipes it. */
void identity_seed(const struct identity *id, uint8_t seed_out[IDENTITY_SEED_BYTES]);

/* The X25519 form of the key pair (the standard Ed25519 -> Curve25519
 * conversion, made once when the identity was created), for Diffie-Hellman
 * with the account key (X3DH, envelopes). sk_out is secret: the caller wipes
 * it. Always MP_OK (kept for the callers' error paths). */
enum mp_err identity_x25519(const struct identity *id, uint8_t sk_out[32], uint8_t pk_out[32]);

/* The key-file bytes of id: secret material, so the caller wipes them. */
void identity_encode(const struct identity *id, uint8_t out[IDENTITY_ENCODED_BYTES]);

/* Parse key-file bytes. MP_ERR_KEYFILE on a wrong length, wrong magic or a
 * public key that does not belong to the seed (a damaged file). */
enum mp_err identity_decode(const uint8_t *data, size_t len, struct identity **id_out);

/* Wipes the secret key and frees; accepts NULL. */
void identity_free(struct identity *id);

#endif
