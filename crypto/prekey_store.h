/*
 * prekey_store: the layout of struct prekey_store, shared by prekey.c (logic)
 * and prekey_wire.c (its codec) only. Nothing else includes this header.
 */
#ifndef MP_CRYPTO_PREKEY_STORE_H
#define MP_CRYPTO_PREKEY_STORE_H

#include "crypto/prekey.h"

struct prekey_spk_secret {
    uint8_t sk[PREKEY_KEY_BYTES];
    struct prekey_signed pub;
    uint64_t keep_until_ms; /* UINT64_MAX while current */
};

struct prekey_opk_secret {
    uint32_t id;
    uint8_t sk[PREKEY_KEY_BYTES];
    uint8_t pk[PREKEY_KEY_BYTES];
};

struct prekey_seen {
    uint8_t eph[PREKEY_KEY_BYTES];
    uint32_t spk_id;
};

struct prekey_store {
    uint8_t account_pk[IDENTITY_PUBLIC_BYTES];
    uint8_t ik_sk[PREKEY_KEY_BYTES]; /* X25519 form of the account secret; not serialized */
    uint32_t next_spk_id;
    uint32_t next_opk_id;
    uint32_t spk_count; /* 1..PREKEY_SIGNED_KEEP; spk[0] is current, then newest first */
    struct prekey_spk_secret spk[PREKEY_SIGNED_KEEP];
    uint32_t opk_count; /* oldest first */
    struct prekey_opk_secret opk[PREKEY_ONE_TIME_MAX];
    uint32_t seen_count; /* oldest first; <= PREKEY_SEEN_PER_SIGNED per held spk */
    struct prekey_seen seen[PREKEY_SEEN_MAX];
};

#endif
