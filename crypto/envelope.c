#include "crypto/envelope.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/envelope_wire.h"
#include "crypto/kdf.h"
#include "crypto/prekey.h"

static const char mailbox_label[] = "merpati mailbox v1";
static const char seal_info[] = "merpati envelope v1";

#define KEY_BYTES   crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES   crypto_aead_xchacha20poly1305_ietf_ABYTES
/* Largest padded inside: ENVELOPE_INNER_MAX rounded up to a bucket. */
#define PADDED_MAX                                                                                 \
    ((ENVELOPE_INNER_MAX + 1 + ENVELOPE_PAD_STEP - 1) / ENVELOPE_PAD_STEP * ENVELOPE_PAD_STEP)

/* AD of the seal: version || mailbox id. */
#define SEAL_AD_BYTES (1 + ENVELOPE_MAILBOX_BYTES)

void envelope_mailbox_id(const uint8_t account[IDENTITY_PUBLIC_BYTES],
                         uint8_t id_out[ENVELOPE_MAILBOX_BYTES])
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, ENVELOPE_MAILBOX_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)mailbox_label, sizeof(mailbox_label) - 1);
    crypto_generichash_update(&st, account, IDENTITY_PUBLIC_BYTES);
    crypto_generichash_final(&st, id_out, ENVELOPE_MAILBOX_BYTES);
}

/* The bucket for n bytes plus the pad marker. */
static size_t bucket(size_t n)
{
    size_t b = ENVELOPE_PAD_MIN;

    while (b < n + 1 && b < ENVELOPE_PAD_STEP)
        b *= 2;
    if (b >= n + 1)
        return b;
    return (n + 1 + ENVELOPE_PAD_STEP - 1) / ENVELOPE_PAD_STEP * ENVELOPE_PAD_STEP;
}

/* key || nonce = HKDF(salt = eph_pk || recipient_dh_pk, ikm = DH, info). */
static enum mp_err seal_keys(const uint8_t shared[32], const uint8_t eph_pk[32],
                             const uint8_t rcpt_pk[32], uint8_t okm[KEY_BYTES + NONCE_BYTES])
{
    uint8_t salt[64];

    memcpy(salt, eph_pk, 32);
    memcpy(salt + 32, rcpt_pk, 32);
    return kdf_hkdf(salt, sizeof(salt), shared, 32, (const uint8_t *)seal_info,
                    sizeof(seal_info) - 1, KEY_BYTES + NONCE_BYTES, okm);
}

static void seal_ad(const uint8_t mailbox[ENVELOPE_MAILBOX_BYTES], uint8_t ad[SEAL_AD_BYTES])
{
    ad[0] = ENVELOPE_VERSION;
    memcpy(ad + 1, mailbox, ENVELOPE_MAILBOX_BYTES);
}

enum mp_err envelope_recipient_init(const uint8_t account[IDENTITY_PUBLIC_BYTES],
                                    struct envelope_recipient *r_out)
{
    enum mp_err err = prekey_identity_dh_public(account, r_out->x25519);
    if (err != MP_OK)
        return err;
    memcpy(r_out->account, account, IDENTITY_PUBLIC_BYTES);
    envelope_mailbox_id(account, r_out->mailbox);
    return MP_OK;
}

enum mp_err envelope_seal(const struct env *env, const uint8_t recipient[IDENTITY_PUBLIC_BYTES],
                          const struct envelope_content *c, struct buf *out)
{
    struct envelope_recipient r;
    enum mp_err err = envelope_recipient_init(recipient, &r);
    if (err != MP_OK) {
        buf_init(out, ENVELOPE_WIRE_MAX);
        return err;
    }
    return envelope_seal_to(env, &r, c, NULL, out);
}

enum mp_err envelope_ephemeral_make(const struct env *env, const struct envelope_recipient *likely,
                                    struct envelope_ephemeral *eph_out)
{
    envelope_ephemeral_wipe(eph_out);
    env_random(env, eph_out->sk, sizeof(eph_out->sk));
    if (crypto_scalarmult_base(eph_out->pk, eph_out->sk) != 0) {
        envelope_ephemeral_wipe(eph_out);
        return MP_ERR_CRYPTO;
    }
    eph_out->ready = true;
    /* A refused exchange (a weak key) is left to the seal, which says so. */
    if (likely != NULL && crypto_scalarmult(eph_out->shared, eph_out->sk, likely->x25519) == 0) {
        memcpy(eph_out->peer, likely->x25519, sizeof(eph_out->peer));
        eph_out->has_shared = true;
    }
    return MP_OK;
}

void envelope_ephemeral_wipe(struct envelope_ephemeral *eph)
{
    sodium_memzero(eph, sizeof(*eph));
}

enum mp_err envelope_seal_to(const struct env *env, const struct envelope_recipient *recipient,
                             const struct envelope_content *c, struct envelope_ephemeral *eph,
                             struct buf *out)
{
    const uint8_t *rcpt_pk = recipient->x25519;
    struct envelope_ephemeral fresh;
    uint8_t shared[32];
    uint8_t okm[KEY_BYTES + NONCE_BYTES];
    uint8_t ad[SEAL_AD_BYTES];
    struct envelope_outer o;
    uint8_t *inner = NULL, *sealed = NULL;
    size_t inner_len = 0, padded_len = 0;
    enum mp_err err;

    buf_init(out, ENVELOPE_WIRE_MAX);
    if (c->ct_len < RATCHET_OVERHEAD || c->ct_len > RATCHET_PLAINTEXT_MAX + RATCHET_OVERHEAD ||
        (c->has_init && memcmp(c->init.initiator, c->sender, IDENTITY_PUBLIC_BYTES) != 0)) {
        err = MP_ERR_INVAL; /* eph is wiped all the same: one seal only */
        goto cleanup;
    }
    inner = malloc(PADDED_MAX);
    sealed = malloc(PADDED_MAX + TAG_BYTES);
    if (inner == NULL || sealed == NULL) {
        err = MP_ERR_NOMEM;
        goto cleanup;
    }
    err = envelope_inner_encode(c, inner, ENVELOPE_INNER_MAX, &inner_len);
    if (err != MP_OK)
        goto cleanup;
    /* ISO/IEC 7816-4 padding, as sodium_pad writes it (and sodium_unpad
     * reads it), without its constant-time pass over a whole block: the
     * length it would hide is our own. */
    padded_len = bucket(inner_len);
    inner[inner_len] = 0x80;
    memset(inner + inner_len + 1, 0, padded_len - inner_len - 1);
    if (eph == NULL || !eph->ready) {
        eph = &fresh;
        if ((err = envelope_ephemeral_make(env, NULL, eph)) != MP_OK)
            goto cleanup;
    }
    memcpy(o.ephemeral, eph->pk, sizeof(o.ephemeral));
    if (eph->has_shared && memcmp(eph->peer, rcpt_pk, sizeof(eph->peer)) == 0) {
        memcpy(shared, eph->shared, sizeof(shared));
    } else if (crypto_scalarmult(shared, eph->sk, rcpt_pk) != 0) {
        err = MP_ERR_WEAK_KEY;
        goto cleanup;
    }
    err = seal_keys(shared, o.ephemeral, rcpt_pk, okm);
    if (err != MP_OK)
        goto cleanup;
    memcpy(o.mailbox, recipient->mailbox, ENVELOPE_MAILBOX_BYTES);
    seal_ad(o.mailbox, ad);
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed, NULL, inner, padded_len, ad, sizeof(ad),
                                               NULL, okm + KEY_BYTES, okm);
    o.sealed = sealed;
    o.sealed_len = padded_len + TAG_BYTES;
    err = envelope_outer_encode(&o, out);
cleanup:
    if (eph != NULL)
        envelope_ephemeral_wipe(eph); /* the caller's, used or not: one seal only */
    envelope_ephemeral_wipe(&fresh);
    sodium_memzero(shared, sizeof(shared));
    sodium_memzero(okm, sizeof(okm));
    if (inner != NULL) {
        /* The padded inside; 0 if not written (the encoder writes nothing
         * when it fails). */
        sodium_memzero(inner, padded_len);
        free(inner);
    }
    free(sealed);
    return err;
}

enum mp_err envelope_mailbox(const uint8_t *data, size_t len,
                             uint8_t mailbox_out[ENVELOPE_MAILBOX_BYTES])
{
    struct envelope_outer o;
    enum mp_err err = envelope_outer_decode(data, len, &o);

    if (err == MP_OK)
        memcpy(mailbox_out, o.mailbox, ENVELOPE_MAILBOX_BYTES);
    return err;
}

/* A padded length is a bucket: a power of two in [PAD_MIN, PAD_STEP] or a
 * multiple of PAD_STEP. Returns the sodium_unpad block size, 0 if not. */
static size_t padded_block(size_t n)
{
    if (n >= ENVELOPE_PAD_MIN && n <= ENVELOPE_PAD_STEP && (n & (n - 1)) == 0)
        return n;
    if (n > ENVELOPE_PAD_STEP && n % ENVELOPE_PAD_STEP == 0 && n <= PADDED_MAX)
        return ENVELOPE_PAD_STEP;
    return 0;
}

enum mp_err envelope_open(const struct identity *self, const uint8_t *data, size_t len,
                          struct envelope_content *c_out)
{
    uint8_t my_sk[32], my_pk[32], shared[32], mailbox[ENVELOPE_MAILBOX_BYTES];
    uint8_t okm[KEY_BYTES + NONCE_BYTES];
    uint8_t ad[SEAL_AD_BYTES];
    struct envelope_outer o;
    uint8_t *inner = NULL;
    size_t inner_len = 0, block;
    enum mp_err err;

    err = envelope_outer_decode(data, len, &o);
    if (err != MP_OK)
        return err;
    envelope_mailbox_id(identity_public_key(self), mailbox);
    if (sodium_memcmp(mailbox, o.mailbox, sizeof(mailbox)) != 0)
        return MP_ERR_ENVELOPE_OPEN;
    if (o.sealed_len < TAG_BYTES || (block = padded_block(o.sealed_len - TAG_BYTES)) == 0)
        return MP_ERR_MALFORMED;
    err = prekey_identity_dh(self, my_sk, my_pk);
    if (err != MP_OK)
        goto cleanup;
    if (crypto_scalarmult(shared, my_sk, o.ephemeral) != 0) {
        err = MP_ERR_WEAK_KEY;
        goto cleanup;
    }
    err = seal_keys(shared, o.ephemeral, my_pk, okm);
    if (err != MP_OK)
        goto cleanup;
    inner_len = o.sealed_len - TAG_BYTES;
    inner = malloc(inner_len);
    if (inner == NULL) {
        err = MP_ERR_NOMEM;
        goto cleanup;
    }
    seal_ad(o.mailbox, ad);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(inner, NULL, NULL, o.sealed, o.sealed_len, ad,
                                                   sizeof(ad), okm + KEY_BYTES, okm) != 0) {
        err = MP_ERR_ENVELOPE_OPEN;
        goto cleanup;
    }
    size_t unpadded;
    if (sodium_unpad(&unpadded, inner, inner_len, block) != 0) {
        err = MP_ERR_MALFORMED;
        goto cleanup;
    }
    err = envelope_inner_decode(inner, unpadded, c_out);
cleanup:
    sodium_memzero(my_sk, sizeof(my_sk));
    sodium_memzero(shared, sizeof(shared));
    sodium_memzero(okm, sizeof(okm));
    if (inner != NULL) {
        sodium_memzero(inner, inner_len);
        free(inner);
    }
    return err;
}

void envelope_content_clear(struct envelope_content *c)
{
    if (c->ct != NULL) {
        sodium_memzero(c->ct, c->ct_len);
        free(c->ct);
    }
    sodium_memzero(c, sizeof(*c));
}
