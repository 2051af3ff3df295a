#include "crypto/noise.h"
#include "crypto/noise_testing.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/*
 * Layout follows the spec's objects: a CipherState (struct cstate), the
 * SymmetricState fields (ck, h, and a cstate) and the HandshakeState fields,
 * all inside struct noise_handshake. Names of spec functions are kept in the
 * comments so the code can be read next to the spec (sections 5.1 to 5.3).
 */

#define HASHLEN      64
#define BLOCKLEN     128
#define DHLEN        32
#define KEYLEN       32
#define NONCE_MAX    UINT64_MAX /* reserved: never used for a message */
#define MAX_TOKENS   6          /* most tokens in one message of the patterns here */
#define MAX_MESSAGES 3

_Static_assert(HASHLEN == crypto_generichash_blake2b_BYTES_MAX, "BLAKE2b-512");
_Static_assert(NOISE_HASH_BYTES == HASHLEN, "handshake hash size");
_Static_assert(DHLEN == crypto_scalarmult_BYTES && DHLEN == crypto_scalarmult_SCALARBYTES,
               "X25519 sizes");
_Static_assert(KEYLEN == crypto_aead_chacha20poly1305_ietf_KEYBYTES, "ChaChaPoly key");
_Static_assert(NOISE_TAG_BYTES == crypto_aead_chacha20poly1305_ietf_ABYTES, "Poly1305 tag");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "IETF nonce");

enum token { TOKEN_END = 0, TOKEN_E, TOKEN_S, TOKEN_EE, TOKEN_ES, TOKEN_SE, TOKEN_SS, TOKEN_PSK };

struct pattern_def {
    const char *name;
    bool responder_static_premessage; /* "<- s" before the messages */
    bool psk;
    unsigned n_messages;
    enum token msgs[MAX_MESSAGES][MAX_TOKENS];
};

/* The message patterns (spec section 7.5, and 9 for the psk modifiers). */
static const struct pattern_def patterns[] = {
    [NOISE_PATTERN_IK] = {.name = "Noise_IK_25519_ChaChaPoly_BLAKE2b",
                          .responder_static_premessage = true,
                          .n_messages = 2,
                          .msgs = {{TOKEN_E, TOKEN_ES, TOKEN_S, TOKEN_SS},
                                   {TOKEN_E, TOKEN_EE, TOKEN_SE}}},
    [NOISE_PATTERN_XX] = {.name = "Noise_XX_25519_ChaChaPoly_BLAKE2b",
                          .n_messages = 3,
                          .msgs = {{TOKEN_E},
                                   {TOKEN_E, TOKEN_EE, TOKEN_S, TOKEN_ES},
                                   {TOKEN_S, TOKEN_SE}}},
    [NOISE_PATTERN_IKPSK2] = {.name = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2b",
                              .responder_static_premessage = true,
                              .psk = true,
                              .n_messages = 2,
                              .msgs = {{TOKEN_E, TOKEN_ES, TOKEN_S, TOKEN_SS},
                                       {TOKEN_E, TOKEN_EE, TOKEN_SE, TOKEN_PSK}}},
    [NOISE_PATTERN_XXPSK3] = {.name = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b",
                              .psk = true,
                              .n_messages = 3,
                              .msgs = {{TOKEN_E},
                                       {TOKEN_E, TOKEN_EE, TOKEN_S, TOKEN_ES},
                                       {TOKEN_S, TOKEN_SE, TOKEN_PSK}}},
    [NOISE_PATTERN_IKPSK1] = {.name = "Noise_IKpsk1_25519_ChaChaPoly_BLAKE2b",
                              .responder_static_premessage = true,
                              .psk = true,
                              .n_messages = 2,
                              .msgs = {{TOKEN_E, TOKEN_ES, TOKEN_S, TOKEN_SS, TOKEN_PSK},
                                       {TOKEN_E, TOKEN_EE, TOKEN_SE}}},
};
#define N_PATTERNS (sizeof(patterns) / sizeof(patterns[0]))

/* CipherState (spec 5.1). */
struct cstate {
    uint8_t k[KEYLEN];
    bool has_key;
    uint64_t n;
};

struct noise_cipher {
    struct cstate cs;
    uint64_t rekey_interval; /* 0: never automatically */
};

struct noise_handshake {
    const struct env *env;
    const struct pattern_def *pat;
    bool initiator;
    enum noise_step step;
    unsigned msg_index; /* next message of the pattern */

    /* SymmetricState (spec 5.2) */
    struct cstate cs;
    uint8_t ck[HASHLEN];
    uint8_t h[HASHLEN];

    /* HandshakeState (spec 5.3) */
    uint8_t s_priv[DHLEN], s_pub[DHLEN];
    uint8_t e_priv[DHLEN], e_pub[DHLEN];
    uint8_t rs[DHLEN], re[DHLEN];
    bool has_rs;
    uint8_t expected_rs[DHLEN]; /* the peer key the caller insists on */
    bool has_expected_rs;
    uint8_t psk[NOISE_PSK_BYTES];
    uint8_t fixed_e[DHLEN];
    bool has_fixed_e;

    /* Error attribution for a failed decryption (see docs/PROTOCOL.md). */
    unsigned decryptions;               /* successful reads of encrypted fields so far */
    bool psk_read, decrypted_since_psk; /* a message we read mixed the PSK */
    bool sent_encrypted;                /* a message we wrote had an encrypted field */
};

/* ---- hash functions: HASH, HMAC-HASH, HKDF (spec 4.3) ---- */

static void hash2(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                  uint8_t out[HASHLEN])
{
    crypto_generichash_blake2b_state st;

    crypto_generichash_blake2b_init(&st, NULL, 0, HASHLEN);
    crypto_generichash_blake2b_update(&st, a, alen);
    crypto_generichash_blake2b_update(&st, b, blen);
    crypto_generichash_blake2b_final(&st, out, HASHLEN);
    sodium_memzero(&st, sizeof(st));
}

/* HMAC (RFC 2104) over BLAKE2b with BLOCKLEN-byte blocks. The data is the
 * concatenation of two parts so HKDF need not copy. keylen <= HASHLEN here. */
static void hmac(const uint8_t *key, size_t keylen, const uint8_t *d1, size_t d1len,
                 const uint8_t *d2, size_t d2len, uint8_t out[HASHLEN])
{
    uint8_t pad[BLOCKLEN];
    uint8_t inner[HASHLEN];
    crypto_generichash_blake2b_state st;

    memset(pad, 0x36, sizeof(pad));
    for (size_t i = 0; i < keylen; i++)
        pad[i] ^= key[i];
    crypto_generichash_blake2b_init(&st, NULL, 0, HASHLEN);
    crypto_generichash_blake2b_update(&st, pad, BLOCKLEN);
    crypto_generichash_blake2b_update(&st, d1, d1len);
    crypto_generichash_blake2b_update(&st, d2, d2len);
    crypto_generichash_blake2b_final(&st, inner, HASHLEN);

    memset(pad, 0x5c, sizeof(pad));
    for (size_t i = 0; i < keylen; i++)
        pad[i] ^= key[i];
    hash2(pad, BLOCKLEN, inner, HASHLEN, out);

    sodium_memzero(pad, sizeof(pad));
    sodium_memzero(inner, sizeof(inner));
    sodium_memzero(&st, sizeof(st));
}

/* HKDF(chaining_key, input_key_material, num_outputs) with 2 or 3 outputs;
 * out3 may be NULL. */
static void hkdf(const uint8_t ck[HASHLEN], const uint8_t *ikm, size_t ikm_len,
                 uint8_t out1[HASHLEN], uint8_t out2[HASHLEN], uint8_t *out3)
{
    uint8_t temp_key[HASHLEN];
    const uint8_t one = 1, two = 2, three = 3;

    hmac(ck, HASHLEN, ikm, ikm_len, NULL, 0, temp_key);
    hmac(temp_key, HASHLEN, &one, 1, NULL, 0, out1);
    hmac(temp_key, HASHLEN, out1, HASHLEN, &two, 1, out2);
    if (out3 != NULL)
        hmac(temp_key, HASHLEN, out2, HASHLEN, &three, 1, out3);
    sodium_memzero(temp_key, sizeof(temp_key));
}

/* ---- DH functions (spec 4.1) ---- */

/* DH(key_pair, public_key). libsodium refuses (returns -1) when the result
 * is all zeros, which is what a low-order public key yields. */
static enum mp_err dh(const uint8_t priv[DHLEN], const uint8_t pub[DHLEN], uint8_t out[DHLEN])
{
    if (crypto_scalarmult(out, priv, pub) != 0) {
        sodium_memzero(out, DHLEN);
        return MP_ERR_NOISE_LOW_ORDER;
    }
    return MP_OK;
}

/* ---- CipherState (spec 5.1) ---- */

static void cs_init(struct cstate *cs, const uint8_t k[KEYLEN])
{
    memcpy(cs->k, k, KEYLEN);
    cs->has_key = true;
    cs->n = 0;
}

static void nonce_bytes(uint64_t n, uint8_t out[12])
{
    memset(out, 0, 4);
    for (int i = 0; i < 8; i++)
        out[4 + i] = (uint8_t)(n >> (8 * i));
}

/* ENCRYPT(k, n, ad, plaintext); out has room for len + tag. */
static void aead_encrypt(const uint8_t k[KEYLEN], uint64_t n, const uint8_t *ad, size_t adlen,
                         const uint8_t *plain, size_t len, uint8_t *out)
{
    uint8_t nonce[12];

    nonce_bytes(n, nonce);
    crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, plain, len, ad, adlen, NULL, nonce, k);
}

static bool aead_decrypt(const uint8_t k[KEYLEN], uint64_t n, const uint8_t *ad, size_t adlen,
                         const uint8_t *ct, size_t len, uint8_t *out)
{
    uint8_t nonce[12];

    nonce_bytes(n, nonce);
    return crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, ct, len, ad, adlen, nonce,
                                                     k) == 0;
}

/* REKEY(k): the first 32 bytes of ENCRYPT(k, maxnonce, zerolen, zeros). */
static void cs_rekey(struct cstate *cs)
{
    uint8_t zeros[KEYLEN] = {0};
    uint8_t out[KEYLEN + NOISE_TAG_BYTES];

    aead_encrypt(cs->k, NONCE_MAX, NULL, 0, zeros, KEYLEN, out);
    memcpy(cs->k, out, KEYLEN);
    sodium_memzero(out, sizeof(out));
}

/* EncryptWithAd; without a key the plaintext passes through. */
static enum mp_err cs_encrypt(struct cstate *cs, const uint8_t *ad, size_t adlen,
                              const uint8_t *plain, size_t len, uint8_t *out)
{
    if (!cs->has_key) {
        if (len > 0)
            memmove(out, plain, len);
        return MP_OK;
    }
    if (cs->n == NONCE_MAX)
        return MP_ERR_NOISE_NONCE;
    aead_encrypt(cs->k, cs->n, ad, adlen, plain, len, out);
    cs->n++;
    return MP_OK;
}

/* DecryptWithAd; len includes the tag when there is a key. On failure n
 * is not advanced and out is wiped. */
static enum mp_err cs_decrypt(struct cstate *cs, const uint8_t *ad, size_t adlen, const uint8_t *ct,
                              size_t len, uint8_t *out)
{
    if (!cs->has_key) {
        if (len > 0)
            memmove(out, ct, len);
        return MP_OK;
    }
    if (cs->n == NONCE_MAX)
        return MP_ERR_NOISE_NONCE;
    if (len < NOISE_TAG_BYTES)
        return MP_ERR_MALFORMED;
    if (!aead_decrypt(cs->k, cs->n, ad, adlen, ct, len, out)) {
        sodium_memzero(out, len - NOISE_TAG_BYTES);
        return MP_ERR_NOISE_DECRYPT;
    }
    cs->n++;
    return MP_OK;
}

/* ---- SymmetricState (spec 5.2) ---- */

static void mix_hash(struct noise_handshake *hs, const uint8_t *data, size_t len)
{
    hash2(hs->h, HASHLEN, data, len, hs->h);
}

static void mix_key(struct noise_handshake *hs, const uint8_t *ikm, size_t len)
{
    uint8_t temp_k[HASHLEN];

    hkdf(hs->ck, ikm, len, hs->ck, temp_k, NULL);
    cs_init(&hs->cs, temp_k); /* truncated to KEYLEN: HASHLEN is 64 */
    sodium_memzero(temp_k, sizeof(temp_k));
}

static void mix_key_and_hash(struct noise_handshake *hs, const uint8_t *ikm, size_t len)
{
    uint8_t temp_h[HASHLEN], temp_k[HASHLEN];

    hkdf(hs->ck, ikm, len, hs->ck, temp_h, temp_k);
    mix_hash(hs, temp_h, HASHLEN);
    cs_init(&hs->cs, temp_k);
    sodium_memzero(temp_h, sizeof(temp_h));
    sodium_memzero(temp_k, sizeof(temp_k));
}

static size_t tag_len(const struct noise_handshake *hs)
{
    return hs->cs.has_key ? NOISE_TAG_BYTES : 0;
}

/* EncryptAndHash into out (room for len + tag_len checked by the caller). */
static enum mp_err encrypt_and_hash(struct noise_handshake *hs, const uint8_t *plain, size_t len,
                                    uint8_t *out)
{
    size_t ct_len = len + tag_len(hs);
    bool encrypted = hs->cs.has_key;
    enum mp_err err = cs_encrypt(&hs->cs, hs->h, HASHLEN, plain, len, out);

    if (err == MP_OK) {
        mix_hash(hs, out, ct_len);
        hs->sent_encrypted = hs->sent_encrypted || encrypted;
    }
    return err;
}

/* Which error a failed decryption means, from where in the handshake it
 * happened (table in docs/PROTOCOL.md, "Noise links"). A wrong PSK, static
 * key or prologue all surface as a failed AEAD tag; what tells them apart is
 * the first field each of them can spoil:
 *  - the first decryption after a "psk" token in a message we read: the PSK;
 *  - otherwise our first decryption of the handshake: in IK the key the
 *    initiator dialed (or, indistinguishably, the prologue); in XX, where no
 *    key is known in advance, the prologue, but only while the peer has not
 *    yet opened an encrypted field of ours: a peer that answers one has the
 *    same handshake hash, hence the same prologue (the XX responder reading
 *    message 3, the XXpsk3 initiator reading message 2);
 *  - anything later: the message was altered. */
static enum mp_err blame(const struct noise_handshake *hs)
{
    if (hs->psk_read && !hs->decrypted_since_psk)
        return MP_ERR_NOISE_PSK;
    if (hs->decryptions == 0) {
        if (hs->pat->responder_static_premessage)
            return MP_ERR_NOISE_PEER_KEY;
        if (!hs->sent_encrypted)
            return MP_ERR_NOISE_PROLOGUE;
    }
    return MP_ERR_NOISE_DECRYPT;
}

/* DecryptAndHash of ct (ct_len bytes including any tag) into out. */
static enum mp_err decrypt_and_hash(struct noise_handshake *hs, const uint8_t *ct, size_t ct_len,
                                    uint8_t *out)
{
    bool encrypted = hs->cs.has_key;
    enum mp_err err = cs_decrypt(&hs->cs, hs->h, HASHLEN, ct, ct_len, out);

    if (err == MP_ERR_NOISE_DECRYPT)
        return blame(hs);
    if (err != MP_OK)
        return err;
    mix_hash(hs, ct, ct_len);
    if (encrypted) {
        hs->decryptions++;
        if (hs->psk_read)
            hs->decrypted_since_psk = true;
    }
    return MP_OK;
}

/* ---- HandshakeState (spec 5.3) ---- */

const char *noise_protocol_name(enum noise_pattern pattern)
{
    if ((unsigned)pattern >= N_PATTERNS)
        return "unknown";
    return patterns[pattern].name;
}

enum mp_err noise_prologue(unsigned version, const uint8_t *network_id, size_t network_id_len,
                           uint8_t out[NOISE_MERPATI_PROLOGUE_MAX], size_t *len_out)
{
    static const char tag[] = "merpati/";
    size_t pos = sizeof(tag) - 1;

    if (version == 0 || version > NOISE_PROTOCOL_VERSION_MAX || network_id == NULL ||
        network_id_len == 0 || network_id_len > NOISE_NETWORK_ID_MAX)
        return MP_ERR_INVAL;
    /* Every field has a fixed width or a length in front of it, so no two
     * (version, id) pairs give the same bytes. */
    memcpy(out, tag, pos);
    out[pos++] = (uint8_t)(version >> 8);
    out[pos++] = (uint8_t)version;
    out[pos++] = (uint8_t)network_id_len;
    memcpy(out + pos, network_id, network_id_len);
    *len_out = pos + network_id_len;
    return MP_OK;
}

/* Wipes every secret and leaves only the failed state behind. */
static void poison(struct noise_handshake *hs)
{
    const struct env *env = hs->env;

    sodium_memzero(hs, sizeof(*hs));
    hs->env = env;
    hs->step = NOISE_STEP_FAILED;
}

static bool pattern_is_valid(enum noise_pattern p)
{
    return (unsigned)p < N_PATTERNS;
}

enum mp_err noise_handshake_new(const struct env *env, const struct noise_config *cfg,
                                struct noise_handshake **hs_out)
{
    struct noise_handshake *hs = NULL;
    enum mp_err err = MP_OK;

    if (sodium_init() < 0)
        return MP_ERR_CRYPTO;
    if (env == NULL || cfg == NULL || !pattern_is_valid(cfg->pattern) || cfg->s == NULL ||
        cfg->prologue_len > NOISE_PROLOGUE_MAX || (cfg->prologue == NULL && cfg->prologue_len))
        return MP_ERR_INVAL;
    const struct pattern_def *pat = &patterns[cfg->pattern];
    if (pat->psk != (cfg->psk != NULL))
        return MP_ERR_INVAL;
    if (pat->responder_static_premessage && cfg->initiator && cfg->rs == NULL)
        return MP_ERR_INVAL;

    hs = calloc(1, sizeof(*hs));
    if (hs == NULL)
        return MP_ERR_NOMEM;
    hs->env = env;
    hs->pat = pat;
    hs->initiator = cfg->initiator;

    memcpy(hs->s_priv, cfg->s, DHLEN);
    if (crypto_scalarmult_base(hs->s_pub, hs->s_priv) != 0) {
        err = MP_ERR_INVAL;
        goto cleanup;
    }
    if (cfg->rs != NULL) {
        memcpy(hs->expected_rs, cfg->rs, DHLEN);
        hs->has_expected_rs = true;
    }
    if (cfg->psk != NULL)
        memcpy(hs->psk, cfg->psk, NOISE_PSK_BYTES);
    if (cfg->fixed_ephemeral != NULL) {
        memcpy(hs->fixed_e, cfg->fixed_ephemeral, DHLEN);
        hs->has_fixed_e = true;
    }

    /* InitializeSymmetric(protocol_name): every name here is shorter than
     * HASHLEN, so h is the name padded with zeros. */
    memcpy(hs->h, pat->name, strlen(pat->name));
    memcpy(hs->ck, hs->h, HASHLEN);
    mix_hash(hs, cfg->prologue, cfg->prologue_len);

    /* Pre-message "<- s": the responder's static key. */
    if (pat->responder_static_premessage) {
        if (cfg->initiator) {
            memcpy(hs->rs, cfg->rs, DHLEN);
            hs->has_rs = true;
            mix_hash(hs, hs->rs, DHLEN);
        } else {
            mix_hash(hs, hs->s_pub, DHLEN);
        }
    }
    hs->step = cfg->initiator ? NOISE_STEP_WRITE : NOISE_STEP_READ;
    *hs_out = hs;
    return MP_OK;

cleanup:
    noise_handshake_free(hs);
    return err;
}

enum noise_step noise_handshake_next(const struct noise_handshake *hs)
{
    return hs->step;
}

/* Performs a DH token; (local, remote) per the spec's table. */
static enum mp_err dh_token(struct noise_handshake *hs, enum token t)
{
    const uint8_t *priv = NULL, *pub = NULL;
    uint8_t shared[DHLEN];
    bool init = hs->initiator;

    switch (t) {
    case TOKEN_EE:
        priv = hs->e_priv, pub = hs->re;
        break;
    case TOKEN_ES: /* initiator's ephemeral with responder's static */
        priv = init ? hs->e_priv : hs->s_priv, pub = init ? hs->rs : hs->re;
        break;
    case TOKEN_SE: /* initiator's static with responder's ephemeral */
        priv = init ? hs->s_priv : hs->e_priv, pub = init ? hs->re : hs->rs;
        break;
    case TOKEN_SS:
        priv = hs->s_priv, pub = hs->rs;
        break;
    default:
        return MP_ERR_NOISE_STATE;
    }
    enum mp_err err = dh(priv, pub, shared);
    if (err == MP_OK)
        mix_key(hs, shared, DHLEN);
    sodium_memzero(shared, sizeof(shared));
    return err;
}

/* GENERATE_KEYPAIR(): from env randomness, or the fixed test key. */
static enum mp_err new_ephemeral(struct noise_handshake *hs)
{
    if (hs->has_fixed_e)
        memcpy(hs->e_priv, hs->fixed_e, DHLEN);
    else
        env_random(hs->env, hs->e_priv, DHLEN);
    /* Cannot fail for a clamped scalar; checked all the same. */
    if (crypto_scalarmult_base(hs->e_pub, hs->e_priv) != 0)
        return MP_ERR_CRYPTO;
    return MP_OK;
}

/* The checks after the peer's static key arrives. */
static enum mp_err accept_rs(struct noise_handshake *hs)
{
    hs->has_rs = true;
    if (hs->has_expected_rs && sodium_memcmp(hs->rs, hs->expected_rs, DHLEN) != 0)
        return MP_ERR_NOISE_PEER_KEY;
    return MP_OK;
}

static void advance(struct noise_handshake *hs)
{
    hs->msg_index++;
    if (hs->msg_index == hs->pat->n_messages)
        hs->step = NOISE_STEP_SPLIT;
    else
        hs->step = hs->step == NOISE_STEP_WRITE ? NOISE_STEP_READ : NOISE_STEP_WRITE;
}

enum mp_err noise_handshake_write(struct noise_handshake *hs, const uint8_t *payload,
                                  size_t payload_len, uint8_t *out, size_t out_cap, size_t *len_out)
{
    enum mp_err err = MP_OK;
    size_t pos = 0;
    size_t cap = out_cap < NOISE_MAX_MESSAGE ? out_cap : NOISE_MAX_MESSAGE;

    if (hs->step != NOISE_STEP_WRITE) {
        err = MP_ERR_NOISE_STATE;
        goto cleanup;
    }
    if (payload == NULL && payload_len != 0) {
        err = MP_ERR_INVAL;
        goto cleanup;
    }
    const enum token *tokens = hs->pat->msgs[hs->msg_index];
    for (unsigned i = 0; i < MAX_TOKENS && tokens[i] != TOKEN_END && err == MP_OK; i++) {
        switch (tokens[i]) {
        case TOKEN_E:
            if (cap - pos < DHLEN) {
                err = MP_ERR_TOO_BIG;
                break;
            }
            err = new_ephemeral(hs);
            if (err != MP_OK)
                break;
            memcpy(out + pos, hs->e_pub, DHLEN);
            pos += DHLEN;
            mix_hash(hs, hs->e_pub, DHLEN);
            if (hs->pat->psk)
                mix_key(hs, hs->e_pub, DHLEN);
            break;
        case TOKEN_S: {
            size_t len = DHLEN + tag_len(hs);
            if (cap - pos < len) {
                err = MP_ERR_TOO_BIG;
                break;
            }
            err = encrypt_and_hash(hs, hs->s_pub, DHLEN, out + pos);
            pos += len;
            break;
        }
        case TOKEN_PSK:
            mix_key_and_hash(hs, hs->psk, NOISE_PSK_BYTES);
            break;
        default:
            err = dh_token(hs, tokens[i]);
            break;
        }
    }
    if (err != MP_OK)
        goto cleanup;
    if (cap - pos < payload_len || cap - pos - payload_len < tag_len(hs)) {
        err = MP_ERR_TOO_BIG;
        goto cleanup;
    }
    size_t ct_len = payload_len + tag_len(hs);
    err = encrypt_and_hash(hs, payload, payload_len, out + pos);
    if (err != MP_OK)
        goto cleanup;
    pos += ct_len;
    *len_out = pos;
    advance(hs);
    return MP_OK;

cleanup:
    if (out != NULL)
        sodium_memzero(out, pos);
    poison(hs);
    return err;
}

enum mp_err noise_handshake_read(struct noise_handshake *hs, const uint8_t *msg, size_t msg_len,
                                 uint8_t *payload_out, size_t payload_cap, size_t *len_out)
{
    enum mp_err err = MP_OK;
    size_t pos = 0;
    uint8_t s_plain[DHLEN + NOISE_TAG_BYTES];
    size_t written = 0; /* bytes of payload_out to wipe on failure */

    if (hs->step != NOISE_STEP_READ) {
        err = MP_ERR_NOISE_STATE;
        goto cleanup;
    }
    if (msg_len > NOISE_MAX_MESSAGE) {
        err = MP_ERR_TOO_BIG;
        goto cleanup;
    }
    if (msg == NULL && msg_len != 0) {
        err = MP_ERR_INVAL;
        goto cleanup;
    }
    const enum token *tokens = hs->pat->msgs[hs->msg_index];
    for (unsigned i = 0; i < MAX_TOKENS && tokens[i] != TOKEN_END && err == MP_OK; i++) {
        switch (tokens[i]) {
        case TOKEN_E:
            if (msg_len - pos < DHLEN) {
                err = MP_ERR_MALFORMED;
                break;
            }
            memcpy(hs->re, msg + pos, DHLEN);
            pos += DHLEN;
            mix_hash(hs, hs->re, DHLEN);
            if (hs->pat->psk)
                mix_key(hs, hs->re, DHLEN);
            break;
        case TOKEN_S: {
            size_t len = DHLEN + tag_len(hs);
            if (msg_len - pos < len) {
                err = MP_ERR_MALFORMED;
                break;
            }
            err = decrypt_and_hash(hs, msg + pos, len, s_plain);
            if (err != MP_OK)
                break;
            memcpy(hs->rs, s_plain, DHLEN);
            pos += len;
            err = accept_rs(hs);
            break;
        }
        case TOKEN_PSK:
            /* The peer's PSK is tested from here on: blame() */
            mix_key_and_hash(hs, hs->psk, NOISE_PSK_BYTES);
            hs->psk_read = true;
            break;
        default:
            err = dh_token(hs, tokens[i]);
            break;
        }
    }
    if (err != MP_OK)
        goto cleanup;
    size_t rest = msg_len - pos;
    if (rest < tag_len(hs)) {
        err = MP_ERR_MALFORMED;
        goto cleanup;
    }
    size_t plain_len = rest - tag_len(hs);
    if (plain_len > payload_cap || (payload_out == NULL && plain_len != 0)) {
        err = MP_ERR_TOO_BIG;
        goto cleanup;
    }
    /* A zero-length payload still needs a valid pointer for the AEAD. */
    uint8_t empty[1];
    uint8_t *dst = plain_len ? payload_out : empty;
    written = plain_len;
    err = decrypt_and_hash(hs, msg + pos, rest, dst);
    if (err != MP_OK)
        goto cleanup;
    *len_out = plain_len;
    advance(hs);
    sodium_memzero(s_plain, sizeof(s_plain));
    return MP_OK;

cleanup:
    sodium_memzero(s_plain, sizeof(s_plain));
    if (payload_out != NULL)
        sodium_memzero(payload_out, written);
    poison(hs);
    return err;
}

static struct noise_cipher *cipher_new(const uint8_t *k)
{
    struct noise_cipher *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    cs_init(&c->cs, k);
    c->rekey_interval = NOISE_REKEY_INTERVAL;
    return c;
}

enum mp_err noise_cipher_new(const uint8_t key[NOISE_KEY_BYTES], struct noise_cipher **c_out)
{
    if (sodium_init() < 0)
        return MP_ERR_CRYPTO;
    struct noise_cipher *c = cipher_new(key);
    if (c == NULL)
        return MP_ERR_NOMEM;
    *c_out = c;
    return MP_OK;
}

enum mp_err noise_handshake_split(struct noise_handshake *hs, struct noise_cipher **send_out,
                                  struct noise_cipher **recv_out)
{
    uint8_t k1[HASHLEN], k2[HASHLEN];
    struct noise_cipher *c1 = NULL, *c2 = NULL;
    enum mp_err err = MP_OK;

    if (hs->step != NOISE_STEP_SPLIT)
        return MP_ERR_NOISE_STATE;
    hkdf(hs->ck, NULL, 0, k1, k2, NULL);
    c1 = cipher_new(k1);
    c2 = cipher_new(k2);
    if (c1 == NULL || c2 == NULL) {
        err = MP_ERR_NOMEM;
        goto cleanup;
    }
    /* The initiator sends with the first key, the responder with the second. */
    *send_out = hs->initiator ? c1 : c2;
    *recv_out = hs->initiator ? c2 : c1;
    c1 = c2 = NULL;
    /* Keep h and the remote static; nothing secret stays behind. */
    sodium_memzero(&hs->cs, sizeof(hs->cs));
    sodium_memzero(hs->ck, sizeof(hs->ck));
    sodium_memzero(hs->s_priv, sizeof(hs->s_priv));
    sodium_memzero(hs->e_priv, sizeof(hs->e_priv));
    sodium_memzero(hs->psk, sizeof(hs->psk));
    sodium_memzero(hs->fixed_e, sizeof(hs->fixed_e));
    hs->step = NOISE_STEP_DONE;

cleanup:
    noise_cipher_free(c1);
    noise_cipher_free(c2);
    sodium_memzero(k1, sizeof(k1));
    sodium_memzero(k2, sizeof(k2));
    return err;
}

enum mp_err noise_handshake_hash(const struct noise_handshake *hs, uint8_t out[NOISE_HASH_BYTES])
{
    if (hs->step != NOISE_STEP_SPLIT && hs->step != NOISE_STEP_DONE)
        return MP_ERR_NOISE_STATE;
    memcpy(out, hs->h, HASHLEN);
    return MP_OK;
}

enum mp_err noise_handshake_remote_static(const struct noise_handshake *hs,
                                          uint8_t out[NOISE_KEY_BYTES])
{
    if (hs->step == NOISE_STEP_FAILED || !hs->has_rs)
        return MP_ERR_NOISE_STATE;
    memcpy(out, hs->rs, DHLEN);
    return MP_OK;
}

void noise_handshake_free(struct noise_handshake *hs)
{
    if (hs == NULL)
        return;
    sodium_memzero(hs, sizeof(*hs));
    free(hs);
}

/* ---- transport ---- */

static void after_message(struct noise_cipher *c)
{
    if (c->rekey_interval != 0 && c->cs.n % c->rekey_interval == 0)
        cs_rekey(&c->cs);
}

enum mp_err noise_cipher_encrypt(struct noise_cipher *c, const uint8_t *plain, size_t len,
                                 uint8_t *out, size_t out_cap, size_t *len_out)
{
    if (len > NOISE_MAX_TRANSPORT_PAYLOAD || out_cap < len + NOISE_TAG_BYTES)
        return MP_ERR_TOO_BIG;
    if (plain == NULL && len != 0)
        return MP_ERR_INVAL;
    enum mp_err err = cs_encrypt(&c->cs, NULL, 0, plain, len, out);
    if (err != MP_OK)
        return err;
    after_message(c);
    *len_out = len + NOISE_TAG_BYTES;
    return MP_OK;
}

enum mp_err noise_cipher_decrypt(struct noise_cipher *c, const uint8_t *msg, size_t len,
                                 uint8_t *out, size_t out_cap, size_t *len_out)
{
    if (len > NOISE_MAX_MESSAGE)
        return MP_ERR_TOO_BIG;
    if (len < NOISE_TAG_BYTES || msg == NULL)
        return MP_ERR_MALFORMED;
    if (out_cap < len - NOISE_TAG_BYTES)
        return MP_ERR_TOO_BIG;
    uint8_t empty[1];
    enum mp_err err = cs_decrypt(&c->cs, NULL, 0, msg, len, len > NOISE_TAG_BYTES ? out : empty);
    if (err != MP_OK)
        return err;
    after_message(c);
    *len_out = len - NOISE_TAG_BYTES;
    return MP_OK;
}

void noise_cipher_rekey(struct noise_cipher *c)
{
    cs_rekey(&c->cs);
}

void noise_cipher_set_rekey_interval(struct noise_cipher *c, uint64_t interval)
{
    c->rekey_interval = interval;
}

uint64_t noise_cipher_nonce(const struct noise_cipher *c)
{
    return c->cs.n;
}

void noise_cipher_set_nonce(struct noise_cipher *c, uint64_t nonce)
{
    c->cs.n = nonce;
}

void noise_cipher_free(struct noise_cipher *c)
{
    if (c == NULL)
        return;
    sodium_memzero(c, sizeof(*c));
    free(c);
}
