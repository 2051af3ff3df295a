#include "crypto/identity.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Key file magic: "MPID", format 1, three reserved zero bytes. */
static const uint8_t keyfile_magic[8] = {'M', 'P', 'I', 'D', 0x01, 0, 0, 0};

/* Guarded memory: the Ed25519 secret key (seed || pk), then its X25519 form. */
#define SK_BYTES (crypto_sign_SECRETKEYBYTES + crypto_scalarmult_curve25519_BYTES)

struct identity {
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t x_pk[crypto_scalarmult_curve25519_BYTES]; /* X25519 form of pk */
    uint8_t *sk; /* SK_BYTES in guarded memory */
};

_Static_assert(IDENTITY_PUBLIC_BYTES == crypto_sign_PUBLICKEYBYTES, "public key size");
_Static_assert(IDENTITY_SEED_BYTES == crypto_sign_SEEDBYTES, "seed size");
_Static_assert(IDENTITY_SIGNATURE_BYTES == crypto_sign_BYTES, "signature size");
_Static_assert(IDENTITY_ENCODED_BYTES == 8 + IDENTITY_SEED_BYTES + IDENTITY_PUBLIC_BYTES,
               "key file size");

enum mp_err identity_from_seed(const uint8_t seed[IDENTITY_SEED_BYTES], struct identity **id_out)
{
    if (sodium_init() < 0)
        return MP_ERR_CRYPTO;
    struct identity *id = calloc(1, sizeof(*id));
    if (id == NULL)
        return MP_ERR_NOMEM;
    id->sk = sodium_malloc(SK_BYTES);
    if (id->sk == NULL) {
        identity_free(id);
        return MP_ERR_NOMEM;
    }
    /* The X25519 pair is converted once here, not at every use: a
     * conversion costs about as much as a Diffie-Hellman. The public half
     * goes through libsodium's checked conversion (prime order only). */
    if (crypto_sign_seed_keypair(id->pk, id->sk, seed) != 0 ||
        crypto_sign_ed25519_sk_to_curve25519(id->sk + crypto_sign_SECRETKEYBYTES, id->sk) != 0 ||
        crypto_sign_ed25519_pk_to_curve25519(id->x_pk, id->pk) != 0) {
        identity_free(id);
        return MP_ERR_CRYPTO;
    }
    *id_out = id;
    return MP_OK;
}

enum mp_err identity_generate(const struct env *env, struct identity **id_out)
{
    uint8_t seed[IDENTITY_SEED_BYTES];

    env_random(env, seed, sizeof(seed));
    enum mp_err err = identity_from_seed(seed, id_out);
    sodium_memzero(seed, sizeof(seed));
    return err;
}

const uint8_t *identity_public_key(const struct identity *id)
{
    return id->pk;
}

void identity_sign(const struct identity *id, const uint8_t *msg, size_t len,
                   uint8_t sig_out[IDENTITY_SIGNATURE_BYTES])
{
    crypto_sign_detached(sig_out, NULL, msg, len, id->sk);
}

bool identity_verify(const uint8_t pk[IDENTITY_PUBLIC_BYTES], const uint8_t *msg, size_t len,
                     const uint8_t sig[IDENTITY_SIGNATURE_BYTES])
{
    /* libsodium 1.0.18 rejects small-order public keys, small-order R and
     * non-canonical S in crypto_sign_verify_detached. */
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}

void identity_seed(const struct identity *id, uint8_t seed_out[IDENTITY_SEED_BYTES])
{
    crypto_sign_ed25519_sk_to_seed(seed_out, id->sk);
}

enum mp_err identity_x25519(const struct identity *id, uint8_t sk_out[32], uint8_t pk_out[32])
{
    memcpy(sk_out, id->sk + crypto_sign_SECRETKEYBYTES, 32);
    memcpy(pk_out, id->x_pk, 32);
    return MP_OK;
}

void identity_encode(const struct identity *id, uint8_t out[IDENTITY_ENCODED_BYTES])
{
    memcpy(out, keyfile_magic, sizeof(keyfile_magic));
    identity_seed(id, out + sizeof(keyfile_magic));
    memcpy(out + sizeof(keyfile_magic) + IDENTITY_SEED_BYTES, id->pk, IDENTITY_PUBLIC_BYTES);
}

enum mp_err identity_decode(const uint8_t *data, size_t len, struct identity **id_out)
{
    struct identity *id = NULL;

    if (len != IDENTITY_ENCODED_BYTES || memcmp(data, keyfile_magic, sizeof(keyfile_magic)) != 0)
        return MP_ERR_KEYFILE;
    enum mp_err err = identity_from_seed(data + sizeof(keyfile_magic), &id);
    if (err != MP_OK)
        return err;
    /* The stored public key catches a damaged seed. */
    if (sodium_memcmp(id->pk, data + sizeof(keyfile_magic) + IDENTITY_SEED_BYTES,
                      IDENTITY_PUBLIC_BYTES) != 0) {
        identity_free(id);
        return MP_ERR_KEYFILE;
    }
    *id_out = id;
    return MP_OK;
}

void identity_free(struct identity *id)
{
    if (id == NULL)
        return;
    sodium_free(id->sk); /* wipes before unmapping; accepts NULL */
    free(id);
}
