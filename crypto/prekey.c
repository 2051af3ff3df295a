#include "crypto/prekey.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "crypto/prekey_store.h"

/* Clock skew tolerated between the owner (who stamps created_ms) and a peer. */
#define SKEW_MS PREKEY_DAY_MS

/* Domain separation for the signed prekey signature: 16 bytes. */
static const uint8_t spk_label[16] = "merpati spk v1\0";

_Static_assert(PREKEY_KEY_BYTES == crypto_scalarmult_BYTES, "x25519 size");
_Static_assert(sizeof(spk_label) == 16, "label size");

void prekey_signed_message(const uint8_t owner[IDENTITY_PUBLIC_BYTES],
                           const struct prekey_signed *spk,
                           uint8_t msg_out[PREKEY_SIGNED_MSG_BYTES])
{
    uint8_t *p = msg_out;

    memcpy(p, spk_label, sizeof(spk_label));
    p += sizeof(spk_label);
    memcpy(p, owner, IDENTITY_PUBLIC_BYTES);
    p += IDENTITY_PUBLIC_BYTES;
    bytes_put_u32(p, spk->id);
    p += 4;
    memcpy(p, spk->pub, PREKEY_KEY_BYTES);
    p += PREKEY_KEY_BYTES;
    bytes_put_u64(p, spk->created_ms);
    p += 8;
    bytes_put_u64(p, spk->expires_ms);
}

bool prekey_public_ok(const uint8_t pub[PREKEY_KEY_BYTES])
{
    /* Any fixed scalar will do: libsodium returns -1 exactly when the result
     * is the all-zero point, which for a clamped scalar (a multiple of the
     * cofactor) means pub has small order. */
    static const uint8_t probe[crypto_scalarmult_SCALARBYTES] = {
        0x5d, 0x2a, 0x91, 0x07, 0x33, 0xc4, 0x18, 0x6e, 0xa7, 0x42, 0x0b,
        0x9f, 0x64, 0xd1, 0x3c, 0x85, 0x7a, 0x26, 0xe9, 0x50, 0x1d, 0xb3,
        0x48, 0x9c, 0x02, 0x6f, 0xd8, 0x31, 0x4e, 0x97, 0x15, 0x63};
    uint8_t out[crypto_scalarmult_BYTES];

    bool ok = crypto_scalarmult(out, probe, pub) == 0;
    sodium_memzero(out, sizeof(out));
    return ok;
}

enum mp_err prekey_identity_dh_public(const uint8_t ed_pk[IDENTITY_PUBLIC_BYTES],
                                      uint8_t pk_out[PREKEY_KEY_BYTES])
{
    uint8_t pk[PREKEY_KEY_BYTES];

    if (sodium_init() < 0)
        return MP_ERR_CRYPTO;
    /* libsodium refuses small-order points, points off the curve and points
     * outside the prime-order subgroup here, so the result has large order. */
    if (crypto_sign_ed25519_pk_to_curve25519(pk, ed_pk) != 0)
        return MP_ERR_WEAK_KEY;
    memcpy(pk_out, pk, sizeof(pk));
    return MP_OK;
}

enum mp_err prekey_identity_dh(const struct identity *account, uint8_t sk_out[PREKEY_KEY_BYTES],
                               uint8_t pk_out[PREKEY_KEY_BYTES])
{
    /* The identity converted both halves once, the public one with the
     * checked conversion (large order only). */
    return identity_x25519(account, sk_out, pk_out) == MP_OK ? MP_OK : MP_ERR_CRYPTO;
}

enum mp_err prekey_bundle_verify(const struct prekey_bundle *b,
                                 const uint8_t owner[IDENTITY_PUBLIC_BYTES], uint64_t now_ms)
{
    uint8_t msg[PREKEY_SIGNED_MSG_BYTES];
    uint8_t ik[PREKEY_KEY_BYTES];
    const struct prekey_signed *spk = &b->spk;

    if (b->one_time_count > PREKEY_BUNDLE_ONE_TIME_MAX)
        return MP_ERR_INVAL;
    if (sodium_memcmp(b->identity, owner, IDENTITY_PUBLIC_BYTES) != 0)
        return MP_ERR_PREKEY_OWNER;
    enum mp_err err = prekey_identity_dh_public(b->identity, ik);
    if (err != MP_OK)
        return err;
    if (!prekey_public_ok(spk->pub))
        return MP_ERR_WEAK_KEY;
    for (uint32_t i = 0; i < b->one_time_count; i++) {
        if (!prekey_public_ok(b->one_time[i].pub))
            return MP_ERR_WEAK_KEY;
    }
    prekey_signed_message(b->identity, spk, msg);
    if (!identity_verify(b->identity, msg, sizeof(msg), spk->sig))
        return MP_ERR_PREKEY_SIGNATURE;
    if (spk->expires_ms <= spk->created_ms ||
        spk->expires_ms - spk->created_ms > PREKEY_VALIDITY_MS || now_ms >= spk->expires_ms ||
        now_ms + SKEW_MS < spk->created_ms)
        return MP_ERR_PREKEY_EXPIRED;
    return MP_OK;
}

/* ---- the owner's store ---- */

static enum mp_err make_signed(struct prekey_store *s, const struct env *env,
                               const struct identity *account, uint64_t now_ms,
                               struct prekey_spk_secret *out)
{
    uint8_t msg[PREKEY_SIGNED_MSG_BYTES];

    memset(out, 0, sizeof(*out));
    for (int tries = 0;; tries++) {
        env_random(env, out->sk, sizeof(out->sk));
        if (crypto_scalarmult_base(out->pub.pub, out->sk) == 0 && prekey_public_ok(out->pub.pub))
            break;
        if (tries == 8)
            return MP_ERR_CRYPTO; /* a broken random source */
    }
    out->pub.id = s->next_spk_id++;
    out->pub.created_ms = now_ms;
    out->pub.expires_ms = now_ms + PREKEY_VALIDITY_MS;
    out->keep_until_ms = UINT64_MAX;
    prekey_signed_message(s->account_pk, &out->pub, msg);
    identity_sign(account, msg, sizeof(msg), out->pub.sig);
    return MP_OK;
}

enum mp_err prekey_store_new(const struct env *env, const struct identity *account, uint64_t now_ms,
                             struct prekey_store **store_out)
{
    uint8_t ik_pk[PREKEY_KEY_BYTES];
    uint8_t ids[8];
    struct prekey_store *s = calloc(1, sizeof(*s));
    enum mp_err err;

    if (s == NULL)
        return MP_ERR_NOMEM;
    memcpy(s->account_pk, identity_public_key(account), IDENTITY_PUBLIC_BYTES);
    err = prekey_identity_dh(account, s->ik_sk, ik_pk);
    if (err != MP_OK)
        goto cleanup;
    /* Ids start at random points, so a store made again after data loss does
     * not reuse the ids of the one before. */
    env_random(env, ids, sizeof(ids));
    s->next_spk_id = ((uint32_t)ids[0] << 24 | (uint32_t)ids[1] << 16 | ids[2] << 8 | ids[3]) >> 1;
    s->next_opk_id = ((uint32_t)ids[4] << 24 | (uint32_t)ids[5] << 16 | ids[6] << 8 | ids[7]) >> 1;
    err = make_signed(s, env, account, now_ms, &s->spk[0]);
    if (err != MP_OK)
        goto cleanup;
    s->spk_count = 1;
    *store_out = s;
    s = NULL;
cleanup:
    prekey_store_free(s);
    return err;
}

bool prekey_store_rotation_due(const struct prekey_store *s, uint64_t now_ms)
{
    uint64_t created = s->spk[0].pub.created_ms;
    if (prekey_store_seen_count(s, s->spk[0].pub.id) >= PREKEY_SEEN_PER_SIGNED / 2)
        return true;
    return now_ms >= created && now_ms - created >= PREKEY_ROTATE_MS;
}

/* Forget replay records of signed prekeys the store no longer holds: a first
 * message naming them fails with PREKEY_UNKNOWN anyway. */
static void prune_seen(struct prekey_store *s)
{
    uint32_t kept = 0;

    for (uint32_t i = 0; i < s->seen_count; i++) {
        bool held = false;
        for (uint32_t j = 0; j < s->spk_count && !held; j++)
            held = s->spk[j].pub.id == s->seen[i].spk_id;
        if (held)
            s->seen[kept++] = s->seen[i];
    }
    sodium_memzero(&s->seen[kept], (s->seen_count - kept) * sizeof(s->seen[0]));
    s->seen_count = kept;
}

enum mp_err prekey_store_rotate(struct prekey_store *s, const struct env *env,
                                const struct identity *account, uint64_t now_ms)
{
    struct prekey_spk_secret fresh;

    if (sodium_memcmp(s->account_pk, identity_public_key(account), IDENTITY_PUBLIC_BYTES) != 0)
        return MP_ERR_PREKEY_OWNER;
    enum mp_err err = make_signed(s, env, account, now_ms, &fresh);
    if (err != MP_OK) {
        sodium_memzero(&fresh, sizeof(fresh));
        return err;
    }
    /* The current one becomes previous. */
    uint64_t expiry = s->spk[0].pub.expires_ms;
    s->spk[0].keep_until_ms =
        expiry > UINT64_MAX - PREKEY_GRACE_MS ? UINT64_MAX : expiry + PREKEY_GRACE_MS;
    /* Drop previous keys whose grace has ended, then the oldest if full. */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < s->spk_count; i++) {
        if (now_ms < s->spk[i].keep_until_ms)
            s->spk[kept++] = s->spk[i];
    }
    if (kept == PREKEY_SIGNED_KEEP)
        kept--;
    sodium_memzero(&s->spk[kept], (PREKEY_SIGNED_KEEP - kept) * sizeof(s->spk[0]));
    memmove(&s->spk[1], &s->spk[0], kept * sizeof(s->spk[0]));
    s->spk[0] = fresh;
    s->spk_count = kept + 1;
    sodium_memzero(&fresh, sizeof(fresh));
    prune_seen(s);
    return MP_OK;
}

enum mp_err prekey_store_add_one_time(struct prekey_store *s, const struct env *env, unsigned count)
{
    if (count > PREKEY_ONE_TIME_MAX - s->opk_count)
        return MP_ERR_TOO_BIG;
    for (unsigned i = 0; i < count; i++) {
        struct prekey_opk_secret *k = &s->opk[s->opk_count];
        for (int tries = 0;; tries++) {
            env_random(env, k->sk, sizeof(k->sk));
            if (crypto_scalarmult_base(k->pk, k->sk) == 0 && prekey_public_ok(k->pk))
                break;
            if (tries == 8) {
                sodium_memzero(k, sizeof(*k));
                return MP_ERR_CRYPTO;
            }
        }
        k->id = s->next_opk_id++;
        s->opk_count++;
    }
    return MP_OK;
}

size_t prekey_store_one_time_count(const struct prekey_store *s)
{
    return s->opk_count;
}

size_t prekey_store_seen_count(const struct prekey_store *s, uint32_t spk_id)
{
    size_t n = 0;

    for (uint32_t i = 0; i < s->seen_count; i++)
        n += s->seen[i].spk_id == spk_id;
    return n;
}

const uint8_t *prekey_store_account(const struct prekey_store *s)
{
    return s->account_pk;
}

void prekey_store_bundle(const struct prekey_store *s, unsigned max_one_time,
                         struct prekey_bundle *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->identity, s->account_pk, IDENTITY_PUBLIC_BYTES);
    out->spk = s->spk[0].pub;
    if (max_one_time > PREKEY_BUNDLE_ONE_TIME_MAX)
        max_one_time = PREKEY_BUNDLE_ONE_TIME_MAX;
    for (uint32_t i = 0; i < s->opk_count && out->one_time_count < max_one_time; i++) {
        out->one_time[out->one_time_count].id = s->opk[i].id;
        memcpy(out->one_time[out->one_time_count].pub, s->opk[i].pk, PREKEY_KEY_BYTES);
        out->one_time_count++;
    }
}

static bool seen(const struct prekey_store *s, const uint8_t ephemeral[PREKEY_KEY_BYTES])
{
    for (uint32_t i = 0; i < s->seen_count; i++) {
        if (sodium_memcmp(s->seen[i].eph, ephemeral, PREKEY_KEY_BYTES) == 0)
            return true;
    }
    return false;
}

static const struct prekey_spk_secret *find_spk(const struct prekey_store *s, uint32_t id)
{
    for (uint32_t i = 0; i < s->spk_count; i++) {
        if (s->spk[i].pub.id == id)
            return &s->spk[i];
    }
    return NULL;
}

static const struct prekey_opk_secret *find_opk(const struct prekey_store *s, uint32_t id)
{
    for (uint32_t i = 0; i < s->opk_count; i++) {
        if (s->opk[i].id == id)
            return &s->opk[i];
    }
    return NULL;
}

enum mp_err
prekey_store_lookup(const struct prekey_store *s, const uint8_t ephemeral[PREKEY_KEY_BYTES],
                    uint32_t spk_id, bool has_opk, uint32_t opk_id, uint64_t now_ms,
                    uint8_t ik_sk_out[PREKEY_KEY_BYTES], uint8_t spk_sk_out[PREKEY_KEY_BYTES],
                    uint8_t spk_pk_out[PREKEY_KEY_BYTES], uint8_t opk_sk_out[PREKEY_KEY_BYTES])
{
    const struct prekey_spk_secret *spk = NULL;
    const struct prekey_opk_secret *opk = NULL;

    if (seen(s, ephemeral))
        return MP_ERR_SESSION_REPLAY;
    spk = find_spk(s, spk_id);
    if (spk == NULL || now_ms >= spk->keep_until_ms)
        return MP_ERR_PREKEY_UNKNOWN;
    if (prekey_store_seen_count(s, spk_id) >= PREKEY_SEEN_PER_SIGNED)
        return MP_ERR_PREKEY_FULL;
    if (has_opk) {
        opk = find_opk(s, opk_id);
        if (opk == NULL)
            return MP_ERR_PREKEY_UNKNOWN;
        memcpy(opk_sk_out, opk->sk, PREKEY_KEY_BYTES);
    }
    memcpy(ik_sk_out, s->ik_sk, PREKEY_KEY_BYTES);
    memcpy(spk_sk_out, spk->sk, PREKEY_KEY_BYTES);
    memcpy(spk_pk_out, spk->pub.pub, PREKEY_KEY_BYTES);
    return MP_OK;
}

enum mp_err prekey_store_commit(struct prekey_store *s, const uint8_t ephemeral[PREKEY_KEY_BYTES],
                                uint32_t spk_id, bool has_opk, uint32_t opk_id)
{
    const struct prekey_opk_secret *opk = NULL;

    /* All checks first: on error nothing changes. A record is never dropped
     * while its signed prekey is held (prune_seen drops it with the prekey),
     * so the set is bounded by PREKEY_SEEN_PER_SIGNED per held prekey. */
    if (seen(s, ephemeral))
        return MP_ERR_SESSION_REPLAY;
    if (find_spk(s, spk_id) == NULL)
        return MP_ERR_PREKEY_UNKNOWN;
    if (prekey_store_seen_count(s, spk_id) >= PREKEY_SEEN_PER_SIGNED)
        return MP_ERR_PREKEY_FULL;
    if (has_opk && (opk = find_opk(s, opk_id)) == NULL)
        return MP_ERR_PREKEY_UNKNOWN;
    if (s->seen_count >= PREKEY_SEEN_MAX)
        return MP_ERR_PREKEY_FULL; /* cannot happen: at most PREKEY_SIGNED_KEEP held */

    memcpy(s->seen[s->seen_count].eph, ephemeral, PREKEY_KEY_BYTES);
    s->seen[s->seen_count].spk_id = spk_id;
    s->seen_count++;
    if (opk != NULL) {
        uint32_t i = (uint32_t)(opk - s->opk);
        memmove(&s->opk[i], &s->opk[i + 1], (s->opk_count - i - 1) * sizeof(s->opk[0]));
        s->opk_count--;
        sodium_memzero(&s->opk[s->opk_count], sizeof(s->opk[0]));
    }
    return MP_OK;
}

void prekey_store_free(struct prekey_store *s)
{
    if (s == NULL)
        return;
    sodium_memzero(s, sizeof(*s));
    free(s);
}
