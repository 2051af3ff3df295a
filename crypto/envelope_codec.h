/*
 * envelope_codec: the msgpack layer of envelopes (envelope_wire.c), used by
 * envelope.c only. Outer form: [version, mailbox, ephemeral, sealed]. Inner
 * form (before padding and sealing): [sender, init | nil, dh, pn, n, ct].
 */
#ifndef MP_CRYPTO_ENVELOPE_CODEC_H
#define MP_CRYPTO_ENVELOPE_CODEC_H

#include "crypto/envelope.h"

#define ENVELOPE_VERSION 1
/* Largest inner encoding: a full ratchet ciphertext plus fields. */
#define ENVELOPE_INNER_MAX (RATCHET_PLAINTEXT_MAX + RATCHET_OVERHEAD + 256)

/* A decoded outer envelope; sealed points into the decoded bytes. */
struct envelope_outer {
    uint8_t mailbox[ENVELOPE_MAILBOX_BYTES];
    uint8_t ephemeral[32];
    const uint8_t *sealed;
    size_t sealed_len;
};

enum mp_err envelope_outer_encode(const struct envelope_outer *o, struct buf *out);
enum mp_err envelope_outer_decode(const uint8_t *data, size_t len, struct envelope_outer *o_out);

/* Encode into out (cap bytes); MP_ERR_TOO_BIG if it does not fit. */
enum mp_err envelope_inner_encode(const struct envelope_content *c, uint8_t *out, size_t cap,
                                  size_t *len_out);
/* c_out->ct is a fresh heap copy on MP_OK. */
enum mp_err envelope_inner_decode(const uint8_t *data, size_t len, struct envelope_content *c_out);

#endif
