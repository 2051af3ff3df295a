#include "crypto/ratchet.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "crypto/kdf.h"
#include "crypto/ratchet_state.h"

static const char root_info[] = "merpati ratchet root v1";
static const char msg_info[] = "merpati ratchet msg v1";

/* Associated data: session AD || version || dh || pn || n (big-endian). */
#define HEADER_AD_BYTES   (1 + RATCHET_KEY_BYTES + 4 + 4)
#define AD_BYTES          (RATCHET_AD_BYTES + HEADER_AD_BYTES)
#define HEADER_AD_VERSION 1

/* The AEAD key drawn from one message key, and the random nonce that
 * travels in front of each ciphertext (see aead_key). */
#define AEAD_KEY_BYTES   crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define AEAD_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define AEAD_TAG_BYTES   crypto_aead_xchacha20poly1305_ietf_ABYTES

_Static_assert(RATCHET_NONCE_BYTES == AEAD_NONCE_BYTES, "nonce size");
_Static_assert(RATCHET_OVERHEAD == RATCHET_NONCE_BYTES + AEAD_TAG_BYTES, "overhead");
_Static_assert(RATCHET_KEY_BYTES == crypto_scalarmult_BYTES, "dh size");

/* ---- KDFs ---- */

/* KDF_RK: (rk, ck) = HKDF(salt = rk, ikm = dh_out, info). */
static enum mp_err kdf_rk(const uint8_t rk[32], const uint8_t dh_out[32], uint8_t rk_out[32],
                          uint8_t ck_out[32])
{
    uint8_t okm[64];
    enum mp_err err = kdf_hkdf(rk, 32, dh_out, 32, (const uint8_t *)root_info,
                               sizeof(root_info) - 1, sizeof(okm), okm);
    if (err == MP_OK) {
        memcpy(rk_out, okm, 32);
        memcpy(ck_out, okm + 32, 32);
    }
    sodium_memzero(okm, sizeof(okm));
    return err;
}

/* KDF_CK: mk = HMAC(ck, 0x01), ck' = HMAC(ck, 0x02). ck and ck_out may alias. */
static void kdf_ck(const uint8_t ck[32], uint8_t ck_out[32], uint8_t mk_out[32])
{
    static const uint8_t one = 0x01, two = 0x02;
    crypto_auth_hmacsha256_state keyed, st;

    crypto_auth_hmacsha256_init(&keyed, ck, 32);
    memcpy(&st, &keyed, sizeof(st));
    crypto_auth_hmacsha256_update(&st, &one, 1);
    crypto_auth_hmacsha256_final(&st, mk_out);
    crypto_auth_hmacsha256_update(&keyed, &two, 1);
    crypto_auth_hmacsha256_final(&keyed, ck_out);
    sodium_memzero(&keyed, sizeof(keyed));
    sodium_memzero(&st, sizeof(st));
}

static void make_ad(const struct ratchet *r, const struct ratchet_header *h, uint8_t ad[AD_BYTES])
{
    memcpy(ad, r->ad, RATCHET_AD_BYTES);
    ad[RATCHET_AD_BYTES] = HEADER_AD_VERSION;
    memcpy(ad + RATCHET_AD_BYTES + 1, h->dh, RATCHET_KEY_BYTES);
    bytes_put_u32(ad + RATCHET_AD_BYTES + 1 + RATCHET_KEY_BYTES, h->pn);
    bytes_put_u32(ad + RATCHET_AD_BYTES + 1 + RATCHET_KEY_BYTES + 4, h->n);
}

/* AEAD key = HKDF-Expand(PRK = mk, info, 32). The message key is already a
 * uniform 32-byte HMAC output, so HKDF-Extract is skipped (RFC 5869, 3.3).
 *
 * The message key is a function of the session state, so a state that is
 * rolled back (a crash before it was saved, a restored backup) derives the
 * same key again for a different plaintext. The nonce therefore does not come
 * from the state: it is sent in front of the ciphertext, and made of a
 * 16-byte prefix drawn from env randomness whenever a session object is made
 * (ratchet_new_*, ratchet_state_decode) and a 64-bit counter of that object's
 * messages. A key used again after a rollback is used by another object, with
 * another random prefix, so no (key, nonce) pair ever repeats (but for a 2^-128
 * chance). Drawing 24 random bytes per message would do the same but costs a
 * system call per message with libsodium's default generator (a quarter of
 * the one-way throughput, measured); the prefix costs one draw per object. */
static enum mp_err aead_key(const uint8_t mk[32], uint8_t key_out[AEAD_KEY_BYTES])
{
    return kdf_hkdf_expand(mk, (const uint8_t *)msg_info, sizeof(msg_info) - 1, AEAD_KEY_BYTES,
                           key_out);
}

/* Open ct (nonce || AEAD ciphertext, ct_len >= RATCHET_OVERHEAD) with mk:
 * MP_OK or MP_ERR_RATCHET_TAMPERED (pt_out wiped). */
static enum mp_err open_with(const struct ratchet *r, const uint8_t mk[32],
                             const struct ratchet_header *h, const uint8_t *ct, size_t ct_len,
                             uint8_t *pt_out)
{
    uint8_t key[AEAD_KEY_BYTES];
    uint8_t ad[AD_BYTES];
    enum mp_err err = aead_key(mk, key);

    if (err != MP_OK)
        return err;
    make_ad(r, h, ad);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt_out, NULL, NULL, ct + AEAD_NONCE_BYTES,
                                                   ct_len - AEAD_NONCE_BYTES, ad, sizeof(ad), ct,
                                                   key) != 0) {
        sodium_memzero(pt_out, ct_len - RATCHET_OVERHEAD);
        err = MP_ERR_RATCHET_TAMPERED;
    }
    sodium_memzero(key, sizeof(key));
    return err;
}

static void draw_nonce_prefix(struct ratchet *r)
{
    env_random(r->env, r->nonce_prefix, sizeof(r->nonce_prefix));
    r->nonce_count = 0;
}

/* The next nonce of this object: prefix || counter (big-endian). */
static void next_nonce(struct ratchet *r, uint8_t nonce_out[AEAD_NONCE_BYTES])
{
    if (r->nonce_count == UINT64_MAX)
        draw_nonce_prefix(r);
    uint64_t n = r->nonce_count++;
    memcpy(nonce_out, r->nonce_prefix, sizeof(r->nonce_prefix));
    for (int i = 7; i >= 0; i--, n >>= 8)
        nonce_out[sizeof(r->nonce_prefix) + (size_t)i] = (uint8_t)n;
}

/* A fresh ratchet key pair from env randomness. */
static enum mp_err generate(const struct env *env, uint8_t sk[32], uint8_t pk[32])
{
    env_random(env, sk, 32);
    return crypto_scalarmult_base(pk, sk) == 0 ? MP_OK : MP_ERR_CRYPTO;
}

/* ---- life cycle ---- */

struct ratchet *ratchet_alloc(const struct env *env)
{
    if (sodium_init() < 0)
        return NULL;
    struct ratchet *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->env = env;
        draw_nonce_prefix(r);
    }
    return r;
}

enum mp_err ratchet_reserve(struct ratchet *r, uint32_t need)
{
    if (need <= r->skipped_cap)
        return MP_OK;
    if (need > RATCHET_SKIPPED_ROOM)
        return MP_ERR_TOO_BIG;
    uint32_t cap = r->skipped_cap ? r->skipped_cap : 64;
    while (cap < need)
        cap = cap > RATCHET_SKIPPED_ROOM / 2 ? RATCHET_SKIPPED_ROOM : cap * 2;
    /* Not realloc: the old block holds keys and must be wiped before free. */
    struct ratchet_skipped *fresh = calloc(cap, sizeof(*fresh));
    if (fresh == NULL)
        return MP_ERR_NOMEM;
    if (r->skipped != NULL) {
        memcpy(fresh, r->skipped, r->skipped_count * sizeof(*fresh));
        sodium_memzero(r->skipped, r->skipped_cap * sizeof(*fresh));
        free(r->skipped);
    }
    r->skipped = fresh;
    r->skipped_cap = cap;
    return MP_OK;
}

enum mp_err ratchet_new_initiator(const struct env *env, const uint8_t root[RATCHET_KEY_BYTES],
                                  const uint8_t ad[RATCHET_AD_BYTES],
                                  const uint8_t remote_spk[RATCHET_KEY_BYTES],
                                  struct ratchet **r_out)
{
    uint8_t shared[32];
    struct ratchet *r = ratchet_alloc(env);
    enum mp_err err;

    if (r == NULL)
        return MP_ERR_NOMEM;
    memcpy(r->ad, ad, RATCHET_AD_BYTES);
    err = generate(env, r->dhs_sk, r->dhs_pk);
    if (err != MP_OK)
        goto cleanup;
    if (crypto_scalarmult(shared, r->dhs_sk, remote_spk) != 0) {
        err = MP_ERR_WEAK_KEY;
        goto cleanup;
    }
    err = kdf_rk(root, shared, r->rk, r->cks);
    if (err != MP_OK)
        goto cleanup;
    memcpy(r->dhr, remote_spk, RATCHET_KEY_BYTES);
    r->has_dhr = true;
    r->has_cks = true;
    *r_out = r;
    r = NULL;
cleanup:
    sodium_memzero(shared, sizeof(shared));
    ratchet_free(r);
    return err;
}

enum mp_err ratchet_new_responder(const struct env *env, const uint8_t root[RATCHET_KEY_BYTES],
                                  const uint8_t ad[RATCHET_AD_BYTES],
                                  const uint8_t spk_sk[RATCHET_KEY_BYTES],
                                  const uint8_t spk_pk[RATCHET_KEY_BYTES], struct ratchet **r_out)
{
    struct ratchet *r = ratchet_alloc(env);

    if (r == NULL)
        return MP_ERR_NOMEM;
    memcpy(r->ad, ad, RATCHET_AD_BYTES);
    memcpy(r->rk, root, RATCHET_KEY_BYTES);
    memcpy(r->dhs_sk, spk_sk, RATCHET_KEY_BYTES);
    memcpy(r->dhs_pk, spk_pk, RATCHET_KEY_BYTES);
    *r_out = r;
    return MP_OK;
}

void ratchet_free(struct ratchet *r)
{
    if (r == NULL)
        return;
    if (r->skipped != NULL) {
        sodium_memzero(r->skipped, r->skipped_cap * sizeof(r->skipped[0]));
        free(r->skipped);
    }
    sodium_memzero(r, sizeof(*r));
    free(r);
}

bool ratchet_has_received(const struct ratchet *r)
{
    return r->has_ckr;
}

size_t ratchet_skipped_count(const struct ratchet *r)
{
    return r->skipped_count;
}

const uint8_t *ratchet_ad(const struct ratchet *r)
{
    return r->ad;
}

bool ratchet_send_position(const struct ratchet *r, uint8_t dh_out[RATCHET_KEY_BYTES],
                           uint32_t *n_out)
{
    if (!r->has_cks)
        return false;
    memcpy(dh_out, r->dhs_pk, RATCHET_KEY_BYTES);
    *n_out = r->ns;
    return true;
}

enum mp_err ratchet_skip_sends(struct ratchet *r, uint32_t n)
{
    uint8_t mk[32];

    if (!r->has_cks || n < r->ns || n - r->ns > RATCHET_MAX_SKIP || n == UINT32_MAX)
        return MP_ERR_INVAL;
    for (; r->ns < n; r->ns++)
        kdf_ck(r->cks, r->cks, mk);
    sodium_memzero(mk, sizeof(mk));
    return MP_OK;
}

/* ---- encrypt ---- */

enum mp_err ratchet_encrypt(struct ratchet *r, const uint8_t *pt, size_t len,
                            struct ratchet_header *hdr_out, uint8_t *ct_out)
{
    uint8_t mk[32], ck[32];
    uint8_t key[AEAD_KEY_BYTES];
    uint8_t ad[AD_BYTES];
    struct ratchet_header h;

    if (!r->has_cks || len > RATCHET_PLAINTEXT_MAX)
        return MP_ERR_INVAL;
    /* N = 2^32-1 is never sent (the receiver refuses it), so a chain ends at
     * 2^32-1 messages: the peer must answer (a DH step) before more. */
    if (r->ns == UINT32_MAX)
        return MP_ERR_RATCHET_CHAIN_FULL;
    kdf_ck(r->cks, ck, mk);
    memcpy(h.dh, r->dhs_pk, RATCHET_KEY_BYTES);
    h.pn = r->pn;
    h.n = r->ns;
    enum mp_err err = aead_key(mk, key);
    if (err != MP_OK)
        goto cleanup;
    make_ad(r, &h, ad);
    next_nonce(r, ct_out);
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct_out + AEAD_NONCE_BYTES, NULL, pt, len, ad,
                                               sizeof(ad), NULL, ct_out, key);
    memcpy(r->cks, ck, sizeof(ck));
    r->ns++;
    *hdr_out = h;
cleanup:
    sodium_memzero(mk, sizeof(mk));
    sodium_memzero(ck, sizeof(ck));
    sodium_memzero(key, sizeof(key));
    return err;
}

/* ---- decrypt ---- */

static int find_skipped(const struct ratchet *r, const struct ratchet_header *h)
{
    for (uint32_t i = 0; i < r->skipped_count; i++) {
        if (r->skipped[i].n == h->n && memcmp(r->skipped[i].dh, h->dh, RATCHET_KEY_BYTES) == 0)
            return (int)i;
    }
    return -1;
}

static struct ratchet_chain *find_chain(struct ratchet *r, const uint8_t dh[32])
{
    for (uint32_t i = r->chain_count; i-- > 0;) {
        if (memcmp(r->chains[i].dh, dh, RATCHET_KEY_BYTES) == 0)
            return &r->chains[i];
    }
    return NULL;
}

/* Derive the keys of messages from..to-1 of a chain into the staging area at
 * skipped[at...] (not yet counted), advancing ck. */
static void stage(struct ratchet *r, uint32_t at, const uint8_t dh[32], uint8_t ck[32],
                  uint32_t from, uint32_t to)
{
    for (uint32_t n = from; n < to; n++, at++) {
        struct ratchet_skipped *s = &r->skipped[at];
        memcpy(s->dh, dh, RATCHET_KEY_BYTES);
        s->n = n;
        kdf_ck(ck, ck, s->mk);
    }
}

/* Count `added` staged entries as kept, then drop the oldest past the cap,
 * raising the floor of the chain each dropped key belonged to. */
static void keep_staged(struct ratchet *r, uint32_t added)
{
    r->skipped_count += added;
    if (r->skipped_count <= RATCHET_SKIPPED_MAX)
        return;
    uint32_t drop = r->skipped_count - RATCHET_SKIPPED_MAX;
    for (uint32_t i = 0; i < drop; i++) {
        const struct ratchet_skipped *s = &r->skipped[i];
        uint32_t *floor = NULL;
        if (r->has_dhr && memcmp(s->dh, r->dhr, RATCHET_KEY_BYTES) == 0) {
            floor = &r->floor;
        } else {
            struct ratchet_chain *c = find_chain(r, s->dh);
            if (c != NULL)
                floor = &c->floor;
        }
        if (floor != NULL && *floor <= s->n)
            *floor = s->n + 1;
    }
    sodium_memzero(r->skipped, drop * sizeof(r->skipped[0]));
    memmove(r->skipped, r->skipped + drop, RATCHET_SKIPPED_MAX * sizeof(r->skipped[0]));
    sodium_memzero(r->skipped + RATCHET_SKIPPED_MAX, drop * sizeof(r->skipped[0]));
    r->skipped_count = RATCHET_SKIPPED_MAX;
}

static void unstage(struct ratchet *r, uint32_t added)
{
    if (added > 0)
        sodium_memzero(r->skipped + r->skipped_count, added * sizeof(r->skipped[0]));
}

/* A message of a known chain whose key is gone: a duplicate, unless keys at
 * or above its number were dropped (then it may be either: "too old"). */
static enum mp_err gone(uint32_t n, uint32_t floor)
{
    return n < floor ? MP_ERR_RATCHET_TOO_FAR : MP_ERR_RATCHET_REPLAY;
}

/* The message is in the current receiving chain, at or past nr. */
static enum mp_err decrypt_current(struct ratchet *r, const struct ratchet_header *h,
                                   const uint8_t *ct, size_t ct_len, uint8_t *pt_out)
{
    uint8_t ck[32], mk[32];
    uint32_t skip = h->n - r->nr;
    enum mp_err err;

    if (skip > RATCHET_MAX_SKIP)
        return MP_ERR_RATCHET_TOO_FAR;
    err = ratchet_reserve(r, r->skipped_count + skip);
    if (err != MP_OK)
        return err;
    memcpy(ck, r->ckr, sizeof(ck));
    stage(r, r->skipped_count, h->dh, ck, r->nr, h->n);
    kdf_ck(ck, ck, mk);
    err = open_with(r, mk, h, ct, ct_len, pt_out);
    if (err == MP_OK) {
        memcpy(r->ckr, ck, sizeof(ck));
        r->nr = h->n + 1;
        keep_staged(r, skip);
    } else {
        unstage(r, skip);
    }
    sodium_memzero(ck, sizeof(ck));
    sodium_memzero(mk, sizeof(mk));
    return err;
}

/* A new ratchet public key from the other side: a DH ratchet step. */
static enum mp_err decrypt_step(struct ratchet *r, const struct ratchet_header *h,
                                const uint8_t *ct, size_t ct_len, uint8_t *pt_out)
{
    uint8_t old_ck[32], shared[32], rk1[32], ckr[32], mk[32];
    uint8_t dhs_sk[32], dhs_pk[32], rk2[32], cks[32];
    uint32_t old_skip = 0;
    bool opened = false;
    enum mp_err err;

    if (r->has_ckr) {
        /* The sender's previous chain ended at pn: keep the keys we missed. */
        if (h->pn < r->nr)
            return MP_ERR_RATCHET_TAMPERED;
        old_skip = h->pn - r->nr;
        if (old_skip > RATCHET_MAX_SKIP)
            return MP_ERR_RATCHET_TOO_FAR;
    }
    if (h->n > RATCHET_MAX_SKIP)
        return MP_ERR_RATCHET_TOO_FAR;
    err = ratchet_reserve(r, r->skipped_count + old_skip + h->n);
    if (err != MP_OK)
        return err;
    if (crypto_scalarmult(shared, r->dhs_sk, h->dh) != 0) {
        err = MP_ERR_WEAK_KEY;
        goto cleanup;
    }
    if (old_skip > 0) {
        memcpy(old_ck, r->ckr, sizeof(old_ck));
        stage(r, r->skipped_count, r->dhr, old_ck, r->nr, h->pn);
    }
    err = kdf_rk(r->rk, shared, rk1, ckr);
    if (err != MP_OK)
        goto cleanup;
    stage(r, r->skipped_count + old_skip, h->dh, ckr, 0, h->n);
    kdf_ck(ckr, ckr, mk);
    err = open_with(r, mk, h, ct, ct_len, pt_out);
    if (err != MP_OK)
        goto cleanup;
    opened = true;
    /* Authentic: prepare our next sending chain before changing anything. */
    err = generate(r->env, dhs_sk, dhs_pk);
    if (err != MP_OK)
        goto cleanup;
    if (crypto_scalarmult(shared, dhs_sk, h->dh) != 0) {
        err = MP_ERR_WEAK_KEY;
        goto cleanup;
    }
    err = kdf_rk(rk1, shared, rk2, cks);
    if (err != MP_OK)
        goto cleanup;

    /* Commit. */
    if (r->has_ckr) {
        if (r->chain_count == RATCHET_CHAINS_KEPT) {
            memmove(&r->chains[0], &r->chains[1], (RATCHET_CHAINS_KEPT - 1) * sizeof(r->chains[0]));
            r->chain_count--;
        }
        struct ratchet_chain *c = &r->chains[r->chain_count++];
        memcpy(c->dh, r->dhr, RATCHET_KEY_BYTES);
        c->end = h->pn;
        c->floor = r->floor;
    }
    r->pn = r->ns;
    r->ns = 0;
    r->nr = h->n + 1;
    r->floor = 0;
    memcpy(r->dhr, h->dh, RATCHET_KEY_BYTES);
    r->has_dhr = true;
    memcpy(r->ckr, ckr, 32);
    r->has_ckr = true;
    memcpy(r->rk, rk2, 32);
    memcpy(r->dhs_sk, dhs_sk, 32);
    memcpy(r->dhs_pk, dhs_pk, 32);
    memcpy(r->cks, cks, 32);
    r->has_cks = true;
    keep_staged(r, old_skip + h->n);
    old_skip = 0;
cleanup:
    if (err != MP_OK) {
        unstage(r, old_skip + h->n);
        /* The header's promise: no plaintext in pt_out after an error. */
        if (opened)
            sodium_memzero(pt_out, ct_len - RATCHET_OVERHEAD);
    }
    sodium_memzero(old_ck, sizeof(old_ck));
    sodium_memzero(shared, sizeof(shared));
    sodium_memzero(rk1, sizeof(rk1));
    sodium_memzero(ckr, sizeof(ckr));
    sodium_memzero(mk, sizeof(mk));
    sodium_memzero(dhs_sk, sizeof(dhs_sk));
    sodium_memzero(rk2, sizeof(rk2));
    sodium_memzero(cks, sizeof(cks));
    return err;
}

enum mp_err ratchet_decrypt(struct ratchet *r, const struct ratchet_header *h, const uint8_t *ct,
                            size_t ct_len, uint8_t *pt_out)
{
    if (ct_len < RATCHET_OVERHEAD || ct_len - RATCHET_OVERHEAD > RATCHET_PLAINTEXT_MAX)
        return MP_ERR_MALFORMED;
    if (h->n == UINT32_MAX)
        return MP_ERR_RATCHET_TOO_FAR;

    int i = find_skipped(r, h);
    if (i >= 0) {
        enum mp_err err = open_with(r, r->skipped[i].mk, h, ct, ct_len, pt_out);
        if (err != MP_OK)
            return err;
        sodium_memzero(&r->skipped[i], sizeof(r->skipped[i]));
        memmove(&r->skipped[i], &r->skipped[i + 1],
                (r->skipped_count - (uint32_t)i - 1) * sizeof(r->skipped[0]));
        r->skipped_count--;
        sodium_memzero(&r->skipped[r->skipped_count], sizeof(r->skipped[0]));
        return MP_OK;
    }
    if (r->has_dhr && memcmp(h->dh, r->dhr, RATCHET_KEY_BYTES) == 0) {
        if (!r->has_ckr)
            return MP_ERR_RATCHET_TAMPERED; /* our own first target: nobody sends on it */
        if (h->n < r->nr)
            return gone(h->n, r->floor);
        return decrypt_current(r, h, ct, ct_len, pt_out);
    }
    const struct ratchet_chain *c = find_chain(r, h->dh);
    if (c != NULL)
        return h->n >= c->end ? MP_ERR_RATCHET_TAMPERED : gone(h->n, c->floor);
    return decrypt_step(r, h, ct, ct_len, pt_out);
}
