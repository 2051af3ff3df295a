/*
 * ratchet_state: the layout of struct ratchet, shared by ratchet.c (logic)
 * and ratchet_wire.c (its codec) only. Nothing else includes this header.
 */
#ifndef MP_CRYPTO_RATCHET_STATE_H
#define MP_CRYPTO_RATCHET_STATE_H

#include <stdbool.h>

#include "crypto/ratchet.h"

/* One kept key of a message not yet received. */
struct ratchet_skipped {
    uint8_t dh[RATCHET_KEY_BYTES];
    uint32_t n;
    uint8_t mk[RATCHET_KEY_BYTES];
};

/* A receiving chain that ended: every message number below `end` was either
 * received or has a kept key; keys below `floor` may have been dropped. */
struct ratchet_chain {
    uint8_t dh[RATCHET_KEY_BYTES];
    uint32_t end;
    uint32_t floor;
};

/* Room for the kept keys plus the most one decrypt can add before the
 * oldest are dropped (two chains of RATCHET_MAX_SKIP). */
#define RATCHET_SKIPPED_ROOM (RATCHET_SKIPPED_MAX + 2 * RATCHET_MAX_SKIP)

struct ratchet {
    const struct env *env;
    uint8_t ad[RATCHET_AD_BYTES];
    uint8_t rk[RATCHET_KEY_BYTES];
    uint8_t dhs_sk[RATCHET_KEY_BYTES];
    uint8_t dhs_pk[RATCHET_KEY_BYTES];
    uint8_t dhr[RATCHET_KEY_BYTES];
    uint8_t cks[RATCHET_KEY_BYTES];
    uint8_t ckr[RATCHET_KEY_BYTES];
    bool has_dhr;
    bool has_cks;
    bool has_ckr;
    uint32_t ns, nr, pn;
    uint32_t floor;         /* of the current receiving chain, as in ratchet_chain */
    uint32_t skipped_count; /* oldest first */
    uint32_t skipped_cap;   /* entries allocated, <= RATCHET_SKIPPED_ROOM */
    struct ratchet_skipped *skipped;
    uint32_t chain_count; /* oldest first */
    struct ratchet_chain chains[RATCHET_CHAINS_KEPT];
    /* Nonces of this object's messages: a random prefix drawn when the object
     * is made (new or decoded) and a counter. Never stored, so a state loaded
     * twice (a rollback) nonetheless gets fresh nonces. */
    uint8_t nonce_prefix[RATCHET_NONCE_BYTES - 8];
    uint64_t nonce_count;
};

/* An empty session bound to env, with its nonce prefix drawn (ratchet.c);
 * for the decoder. */
struct ratchet *ratchet_alloc(const struct env *env);

/* Make room for `need` skipped entries in all; MP_ERR_NOMEM or MP_ERR_TOO_BIG
 * past RATCHET_SKIPPED_ROOM. Moves the keys (wiping the old block). */
enum mp_err ratchet_reserve(struct ratchet *r, uint32_t need);

#endif
