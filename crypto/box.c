#include "crypto/box.h"

#include "crypto/identity.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct box_key {
    uint8_t pk[crypto_scalarmult_BYTES];
    uint8_t *sk; /* crypto_scalarmult_SCALARBYTES in guarded memory */
};

_Static_assert(BOX_PUBLIC_BYTES == crypto_scalarmult_BYTES, "public key size");
_Static_assert(BOX_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
_Static_assert(BOX_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(BOX_SHARED_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(BOX_SEED_BYTES == crypto_sign_SEEDBYTES, "seed size");
_Static_assert(IDENTITY_ENCODED_BYTES == 8 + BOX_SEED_BYTES + IDENTITY_PUBLIC_BYTES,
               "identity_encode layout: magic, seed, public key");

static const char node_id_label[] = "merpati node id v1";
static const char shared_label[] = "merpati dht v1";
static const char public_network_label[] = "merpati public network v1";

static enum mp_err key_alloc(struct box_key **key_out)
{
    if (sodium_init() < 0)
        return MP_ERR_CRYPTO;
    struct box_key *key = calloc(1, sizeof(*key));
    if (key == NULL)
        return MP_ERR_NOMEM;
    key->sk = sodium_malloc(crypto_scalarmult_SCALARBYTES);
    if (key->sk == NULL) {
        box_key_free(key);
        return MP_ERR_NOMEM;
    }
    *key_out = key;
    return MP_OK;
}

enum mp_err box_key_generate(const struct env *env, struct box_key **key_out)
{
    struct box_key *key = NULL;
    enum mp_err err = key_alloc(&key);
    if (err != MP_OK)
        return err;
    env_random(env, key->sk, crypto_scalarmult_SCALARBYTES);
    if (crypto_scalarmult_base(key->pk, key->sk) != 0) {
        box_key_free(key);
        return MP_ERR_CRYPTO;
    }
    *key_out = key;
    return MP_OK;
}

enum mp_err box_key_from_ed25519_seed(const uint8_t seed[BOX_SEED_BYTES], struct box_key **key_out)
{
    uint8_t ed_pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t *ed_sk = NULL;
    struct box_key *key = NULL;
    enum mp_err err = key_alloc(&key);
    if (err != MP_OK)
        return err;
    ed_sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    if (ed_sk == NULL) {
        err = MP_ERR_NOMEM;
        goto cleanup;
    }
    if (crypto_sign_seed_keypair(ed_pk, ed_sk, seed) != 0 ||
        crypto_sign_ed25519_sk_to_curve25519(key->sk, ed_sk) != 0 ||
        crypto_scalarmult_base(key->pk, key->sk) != 0) {
        err = MP_ERR_CRYPTO;
        goto cleanup;
    }
    *key_out = key;
    key = NULL;
cleanup:
    sodium_free(ed_sk);
    box_key_free(key);
    return err;
}

enum mp_err box_key_from_identity(const struct identity *id, struct box_key **key_out)
{
    uint8_t seed[IDENTITY_SEED_BYTES];
    identity_seed(id, seed);
    enum mp_err err = box_key_from_ed25519_seed(seed, key_out);
    sodium_memzero(seed, sizeof(seed));
    return err;
}

const uint8_t *box_key_public(const struct box_key *key)
{
    return key->pk;
}

void box_key_free(struct box_key *key)
{
    if (key == NULL)
        return;
    sodium_free(key->sk); /* wipes before unmapping; accepts NULL */
    free(key);
}

void box_node_id(const uint8_t pk[BOX_PUBLIC_BYTES], uint8_t id_out[BOX_NODE_ID_BYTES])
{
    box_hash(id_out, BOX_NODE_ID_BYTES, NULL, 0, node_id_label, sizeof(node_id_label) - 1, pk,
             BOX_PUBLIC_BYTES, NULL, 0);
}

void box_public_network_key(uint8_t key_out[BOX_NETWORK_KEY_BYTES])
{
    box_hash(key_out, BOX_NETWORK_KEY_BYTES, NULL, 0, public_network_label,
             sizeof(public_network_label) - 1, NULL, 0, NULL, 0);
}

enum mp_err box_shared(const struct box_key *key, const uint8_t peer_pk[BOX_PUBLIC_BYTES],
                       const uint8_t network_key[BOX_NETWORK_KEY_BYTES],
                       uint8_t shared_out[BOX_SHARED_BYTES])
{
    uint8_t dh[crypto_scalarmult_BYTES];
    uint8_t pks[2 * BOX_PUBLIC_BYTES];
    crypto_generichash_state st;
    enum mp_err err = MP_OK;

    memset(shared_out, 0, BOX_SHARED_BYTES);
    if (sodium_memcmp(key->pk, peer_pk, BOX_PUBLIC_BYTES) == 0)
        return MP_ERR_CRYPTO;
    /* Fails (-1) when the result is all zero: a small-order peer key. */
    if (crypto_scalarmult(dh, key->sk, peer_pk) != 0) {
        err = MP_ERR_CRYPTO;
        goto cleanup;
    }
    if (memcmp(key->pk, peer_pk, BOX_PUBLIC_BYTES) < 0) {
        memcpy(pks, key->pk, BOX_PUBLIC_BYTES);
        memcpy(pks + BOX_PUBLIC_BYTES, peer_pk, BOX_PUBLIC_BYTES);
    } else {
        memcpy(pks, peer_pk, BOX_PUBLIC_BYTES);
        memcpy(pks + BOX_PUBLIC_BYTES, key->pk, BOX_PUBLIC_BYTES);
    }
    if (crypto_generichash_init(&st, network_key, BOX_NETWORK_KEY_BYTES, BOX_SHARED_BYTES) != 0 ||
        crypto_generichash_update(&st, (const uint8_t *)shared_label, sizeof(shared_label) - 1) !=
            0 ||
        crypto_generichash_update(&st, dh, sizeof(dh)) != 0 ||
        crypto_generichash_update(&st, pks, sizeof(pks)) != 0 ||
        crypto_generichash_final(&st, shared_out, BOX_SHARED_BYTES) != 0)
        err = MP_ERR_CRYPTO;
cleanup:
    if (err != MP_OK)
        sodium_memzero(shared_out, BOX_SHARED_BYTES);
    sodium_memzero(dh, sizeof(dh));
    sodium_memzero(&st, sizeof(st));
    return err;
}

void box_seal(const uint8_t shared[BOX_SHARED_BYTES], const uint8_t nonce[BOX_NONCE_BYTES],
              const uint8_t *ad, size_t ad_len, const uint8_t *msg, size_t len, uint8_t *out)
{
    unsigned long long out_len = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out, &out_len, msg, len, ad, ad_len, NULL, nonce,
                                               shared);
}

enum mp_err box_open(const uint8_t shared[BOX_SHARED_BYTES], const uint8_t nonce[BOX_NONCE_BYTES],
                     const uint8_t *ad, size_t ad_len, const uint8_t *ct, size_t ct_len,
                     uint8_t *out)
{
    unsigned long long out_len = 0;
    if (ct_len < BOX_TAG_BYTES)
        return MP_ERR_MALFORMED;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &out_len, NULL, ct, ct_len, ad, ad_len,
                                                   nonce, shared) != 0) {
        sodium_memzero(out, ct_len - BOX_TAG_BYTES);
        return MP_ERR_CRYPTO;
    }
    return MP_OK;
}

bool box_equal(const void *a, const void *b, size_t len)
{
    return sodium_memcmp(a, b, len) == 0;
}

void box_hash(uint8_t *out, size_t out_len, const uint8_t *key, size_t key_len, const void *a,
              size_t a_len, const void *b, size_t b_len, const void *c, size_t c_len)
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, key, key ? key_len : 0, out_len);
    if (a != NULL)
        crypto_generichash_update(&st, a, a_len);
    if (b != NULL)
        crypto_generichash_update(&st, b, b_len);
    if (c != NULL)
        crypto_generichash_update(&st, c, c_len);
    crypto_generichash_final(&st, out, out_len);
    sodium_memzero(&st, sizeof(st));
}

void box_wipe(void *p, size_t len)
{
    sodium_memzero(p, len);
}
