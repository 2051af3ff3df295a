#include "crypto/kdf.h"

#include <sodium.h>
#include <string.h>

_Static_assert(KDF_HASH_BYTES == crypto_auth_hmacsha256_BYTES, "hmac size");

void kdf_hmac(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t msg_len,
              uint8_t mac_out[KDF_HASH_BYTES])
{
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, key, key_len);
    crypto_auth_hmacsha256_update(&st, msg, msg_len);
    crypto_auth_hmacsha256_final(&st, mac_out);
    sodium_memzero(&st, sizeof(st));
}

void kdf_hkdf_extract(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                      uint8_t prk_out[KDF_HASH_BYTES])
{
    static const uint8_t zero_salt[KDF_HASH_BYTES];

    if (salt_len == 0) {
        salt = zero_salt;
        salt_len = sizeof(zero_salt);
    }
    kdf_hmac(salt, salt_len, ikm, ikm_len, prk_out);
}

enum mp_err kdf_hkdf_expand(const uint8_t prk[KDF_HASH_BYTES], const uint8_t *info, size_t info_len,
                            size_t okm_len, uint8_t *okm_out)
{
    crypto_auth_hmacsha256_state keyed, st;
    uint8_t t[KDF_HASH_BYTES];
    size_t done = 0;

    if (okm_len == 0 || okm_len > KDF_HKDF_OUT_MAX)
        return MP_ERR_INVAL;
    /* The PRK-keyed state is computed once and copied for every block. */
    crypto_auth_hmacsha256_init(&keyed, prk, KDF_HASH_BYTES);
    for (unsigned i = 1; done < okm_len; i++) {
        uint8_t counter = (uint8_t)i;
        size_t take = okm_len - done < sizeof(t) ? okm_len - done : sizeof(t);

        memcpy(&st, &keyed, sizeof(st));
        if (i > 1)
            crypto_auth_hmacsha256_update(&st, t, sizeof(t));
        if (info_len > 0)
            crypto_auth_hmacsha256_update(&st, info, info_len);
        crypto_auth_hmacsha256_update(&st, &counter, 1);
        crypto_auth_hmacsha256_final(&st, t);
        memcpy(okm_out + done, t, take);
        done += take;
    }
    sodium_memzero(&keyed, sizeof(keyed));
    sodium_memzero(&st, sizeof(st));
    sodium_memzero(t, sizeof(t));
    return MP_OK;
}

enum mp_err kdf_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                     const uint8_t *info, size_t info_len, size_t okm_len, uint8_t *okm_out)
{
    uint8_t prk[KDF_HASH_BYTES];

    if (okm_len == 0 || okm_len > KDF_HKDF_OUT_MAX)
        return MP_ERR_INVAL;
    kdf_hkdf_extract(salt, salt_len, ikm, ikm_len, prk);
    enum mp_err err = kdf_hkdf_expand(prk, info, info_len, okm_len, okm_out);
    sodium_memzero(prk, sizeof(prk));
    return err;
}
