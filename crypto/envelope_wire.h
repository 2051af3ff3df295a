/*
 * envelope_wire: the msgpack codecs of envelopes, used by envelope.c (and
 * the tests and fuzz target). Outer form: [version, mailbox, ephemeral,
 * sealed]. Inner form (before padding and sealing): [sender, init | nil, dh,
 * pn, n, ct]. Formats: docs/PROTOCOL.md, "Sealed envelopes". It is not the
 * seal: envelope.c pads, seals and opens; these functions only turn structs
 * into bytes and back, checking types, lengths and the version.
 */
#ifndef MP_CRYPTO_ENVELOPE_WIRE_H
#define MP_CRYPTO_ENVELOPE_WIRE_H

#include "crypto/envelope.h"

#define ENVELOPE_VERSION 1
/* Largest inner encoding: a full ratchet ciphertext plus fields. */
#define ENVELOPE_INNER_MAX (RATCHET_PLAINTEXT_MAX + ENVELOPE_INNER_OVERHEAD)

/* A decoded outer envelope; sealed points into the decoded bytes. */
struct envelope_outer {
    uint8_t mailbox[ENVELOPE_MAILBOX_BYTES];
    uint8_t ephemeral[32];
    const uint8_t *sealed;
    size_t sealed_len;
};

/* Encode o into a fresh buf (max ENVELOPE_WIRE_MAX; the caller buf_frees
 * it). MP_ERR_TOO_BIG over the cap, MP_ERR_NOMEM. */
enum mp_err envelope_outer_encode(const struct envelope_outer *o, struct buf *out);

/* Decode an outer form of at most ENVELOPE_WIRE_MAX bytes. o_out->sealed
 * points into data (borrowed: valid while data is). Errors: MP_ERR_TOO_BIG,
 * MP_ERR_MALFORMED (not exactly [u32, bin32, bin32, bin]),
 * MP_ERR_WIRE_VERSION. The seal's length is checked by envelope_open. */
enum mp_err envelope_outer_decode(const uint8_t *data, size_t len, struct envelope_outer *o_out);

/* Encode c's inner form into out (cap bytes) and its length into *len_out;
 * MP_ERR_TOO_BIG (out untouched) if it does not fit. c->ct is not checked
 * here (envelope_seal does). */
enum mp_err envelope_inner_encode(const struct envelope_content *c, uint8_t *out, size_t cap,
                                  size_t *len_out);

/* Decode an inner form of at most ENVELOPE_INNER_MAX bytes. On MP_OK c_out
 * is filled, init.initiator is the sender, and c_out->ct is a fresh heap copy
 * (free it with envelope_content_clear). Errors: MP_ERR_TOO_BIG,
 * MP_ERR_MALFORMED (wrong types or field count, a ciphertext shorter than
 * RATCHET_OVERHEAD or longer than a full ratchet message), MP_ERR_NOMEM. */
enum mp_err envelope_inner_decode(const uint8_t *data, size_t len, struct envelope_content *c_out);

#endif
