#include "crypto/x3dh.h"

#include <sodium.h>
#include <string.h>

#include "crypto/kdf.h"

static const char x3dh_info[] = "merpati x3dh v1";

/* ikm = 32 x 0xFF || DH1 || DH2 || DH3 [|| DH4] */
#define IKM_MAX (5 * X3DH_KEY_BYTES)

static enum mp_err dh(uint8_t out[X3DH_KEY_BYTES], const uint8_t sk[X3DH_KEY_BYTES],
                      const uint8_t pk[X3DH_KEY_BYTES])
{
    return crypto_scalarmult(out, sk, pk) == 0 ? MP_OK : MP_ERR_WEAK_KEY;
}

static enum mp_err derive(uint8_t ikm[IKM_MAX], size_t ikm_len, const uint8_t ik_a[32],
                          const uint8_t ik_b[32], struct x3dh_keys *keys_out)
{
    memset(ikm, 0xFF, X3DH_KEY_BYTES);
    enum mp_err err = kdf_hkdf(NULL, 0, ikm, ikm_len, (const uint8_t *)x3dh_info,
                               sizeof(x3dh_info) - 1, X3DH_KEY_BYTES, keys_out->root);
    memcpy(keys_out->ad, ik_a, IDENTITY_PUBLIC_BYTES);
    memcpy(keys_out->ad + IDENTITY_PUBLIC_BYTES, ik_b, IDENTITY_PUBLIC_BYTES);
    return err;
}

enum mp_err x3dh_initiate(const struct env *env, const struct identity *self,
                          const struct prekey_bundle *bundle,
                          const uint8_t owner[IDENTITY_PUBLIC_BYTES], uint64_t now_ms,
                          struct x3dh_init *init_out, struct x3dh_keys *keys_out)
{
    uint8_t ik_sk[X3DH_KEY_BYTES], ik_pk[X3DH_KEY_BYTES], ik_b[X3DH_KEY_BYTES];
    uint8_t ek_sk[X3DH_KEY_BYTES], ek_pk[X3DH_KEY_BYTES];
    uint8_t ikm[IKM_MAX];
    size_t ikm_len = 4 * X3DH_KEY_BYTES;
    struct x3dh_keys keys;
    enum mp_err err;

    memset(&keys, 0, sizeof(keys));
    err = prekey_bundle_verify(bundle, owner, now_ms);
    if (err != MP_OK)
        return err;
    err = prekey_identity_dh_public(bundle->identity, ik_b);
    if (err != MP_OK)
        return err;
    err = prekey_identity_dh(self, ik_sk, ik_pk);
    if (err != MP_OK)
        goto cleanup;
    env_random(env, ek_sk, sizeof(ek_sk));
    if (crypto_scalarmult_base(ek_pk, ek_sk) != 0) {
        err = MP_ERR_CRYPTO;
        goto cleanup;
    }
    const uint8_t *spk = bundle->spk.pub;
    if ((err = dh(ikm + 32, ik_sk, spk)) != MP_OK || (err = dh(ikm + 64, ek_sk, ik_b)) != MP_OK ||
        (err = dh(ikm + 96, ek_sk, spk)) != MP_OK)
        goto cleanup;
    if (bundle->one_time_count > 0) {
        if ((err = dh(ikm + 128, ek_sk, bundle->one_time[0].pub)) != MP_OK)
            goto cleanup;
        ikm_len += X3DH_KEY_BYTES;
    }
    err = derive(ikm, ikm_len, identity_public_key(self), bundle->identity, &keys);
    if (err != MP_OK)
        goto cleanup;
    memcpy(keys.spk_pub, spk, X3DH_KEY_BYTES);
    memset(init_out, 0, sizeof(*init_out));
    memcpy(init_out->initiator, identity_public_key(self), IDENTITY_PUBLIC_BYTES);
    memcpy(init_out->ephemeral, ek_pk, X3DH_KEY_BYTES);
    init_out->spk_id = bundle->spk.id;
    init_out->has_opk = bundle->one_time_count > 0;
    init_out->opk_id = init_out->has_opk ? bundle->one_time[0].id : 0;
    *keys_out = keys;
cleanup:
    sodium_memzero(ik_sk, sizeof(ik_sk));
    sodium_memzero(ek_sk, sizeof(ek_sk));
    sodium_memzero(ikm, sizeof(ikm));
    x3dh_keys_wipe(&keys);
    return err;
}

enum mp_err x3dh_respond(const struct prekey_store *store, const struct x3dh_init *init,
                         uint64_t now_ms, struct x3dh_keys *keys_out)
{
    uint8_t ik_sk[X3DH_KEY_BYTES], spk_sk[X3DH_KEY_BYTES], spk_pk[X3DH_KEY_BYTES];
    uint8_t opk_sk[X3DH_KEY_BYTES], ik_a[X3DH_KEY_BYTES];
    uint8_t ikm[IKM_MAX];
    size_t ikm_len = 4 * X3DH_KEY_BYTES;
    struct x3dh_keys keys;
    enum mp_err err;

    memset(&keys, 0, sizeof(keys));
    err = prekey_store_lookup(store, init->ephemeral, init->spk_id, init->has_opk, init->opk_id,
                              now_ms, ik_sk, spk_sk, spk_pk, opk_sk);
    if (err != MP_OK)
        goto cleanup;
    err = prekey_identity_dh_public(init->initiator, ik_a);
    if (err != MP_OK)
        goto cleanup;
    if ((err = dh(ikm + 32, spk_sk, ik_a)) != MP_OK ||
        (err = dh(ikm + 64, ik_sk, init->ephemeral)) != MP_OK ||
        (err = dh(ikm + 96, spk_sk, init->ephemeral)) != MP_OK)
        goto cleanup;
    if (init->has_opk) {
        if ((err = dh(ikm + 128, opk_sk, init->ephemeral)) != MP_OK)
            goto cleanup;
        ikm_len += X3DH_KEY_BYTES;
    }
    err = derive(ikm, ikm_len, init->initiator, prekey_store_account(store), &keys);
    if (err != MP_OK)
        goto cleanup;
    memcpy(keys.spk_pub, spk_pk, X3DH_KEY_BYTES);
    memcpy(keys.spk_sk, spk_sk, X3DH_KEY_BYTES);
    *keys_out = keys;
cleanup:
    sodium_memzero(ik_sk, sizeof(ik_sk));
    sodium_memzero(spk_sk, sizeof(spk_sk));
    sodium_memzero(opk_sk, sizeof(opk_sk));
    sodium_memzero(ikm, sizeof(ikm));
    x3dh_keys_wipe(&keys);
    return err;
}

enum mp_err x3dh_accept(struct prekey_store *store, const struct x3dh_init *init)
{
    return prekey_store_commit(store, init->ephemeral, init->spk_id, init->has_opk, init->opk_id);
}

void x3dh_keys_wipe(struct x3dh_keys *k)
{
    sodium_memzero(k, sizeof(*k));
}
