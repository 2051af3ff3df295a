/*
 * envelope: the sealed envelope, what crosses the network and waits in
 * mailboxes for an end-to-end message.
 *
 * Outside: a version, the recipient's mailbox id and one ciphertext. Inside
 * (sealed sender): the sender's account key, the X3DH init of a session's
 * first messages, the ratchet header and the ratchet ciphertext. The seal is
 * an ephemeral X25519 exchange with the recipient account key's X25519 form
 * and XChaCha20-Poly1305 under keys from HKDF-SHA256 with our own labels;
 * the inside is padded to a size bucket, so a relay or mailbox learns the
 * mailbox id, the bucket and timing, not the sender nor the exact length.
 *
 * The seal hides the sender but does not prove who it is: the ratchet does
 * (a session's AD binds both account keys), so callers trust `sender` only
 * after ratchet_decrypt (or x3dh_respond + ratchet_decrypt) succeeds.
 * No I/O; randomness from the env. Format: docs/PROTOCOL.md, "Sealed envelopes".
 */
#ifndef MP_CRYPTO_ENVELOPE_H
#define MP_CRYPTO_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/env.h"
#include "base/err.h"
#include "crypto/identity.h"
#include "crypto/ratchet.h"
#include "crypto/x3dh.h"

#define ENVELOPE_MAILBOX_BYTES 32
/* Whole encoded envelope, at most (a full ratchet message, padded, sealed). */
#define ENVELOPE_WIRE_MAX (96u * 1024)
/* Padding buckets: powers of two from ENVELOPE_PAD_MIN to ENVELOPE_PAD_STEP,
 * then multiples of ENVELOPE_PAD_STEP. */
#define ENVELOPE_PAD_MIN  256
#define ENVELOPE_PAD_STEP 16384
/* What the inside adds to a ratchet plaintext, at most: the ratchet's nonce
 * and tag, and the sender, header and session set-up fields. */
#define ENVELOPE_INNER_OVERHEAD (RATCHET_OVERHEAD + 256)
/* The longest ratchet plaintext whose envelope pads to at most bucket bytes
 * (a bucket size): the inside, and the padding's one marker byte. */
#define ENVELOPE_PLAINTEXT_FITS(bucket) ((bucket) - 1 - ENVELOPE_INNER_OVERHEAD)

/* What the seal hides. ct points to ct_len bytes of ratchet ciphertext:
 * borrowed by envelope_seal; owned (heap) after envelope_open, released by
 * envelope_content_clear. */
struct envelope_content {
    uint8_t sender[IDENTITY_PUBLIC_BYTES];
    bool has_init;
    struct x3dh_init init; /* init.initiator == sender */
    struct ratchet_header header;
    uint8_t *ct;
    size_t ct_len; /* <= RATCHET_PLAINTEXT_MAX + RATCHET_OVERHEAD */
};

/* mailbox id = BLAKE2b-256("merpati mailbox v1" || account key). */
void envelope_mailbox_id(const uint8_t account[IDENTITY_PUBLIC_BYTES],
                         uint8_t id_out[ENVELOPE_MAILBOX_BYTES]);

/* A recipient, converted once for any number of seals: its account key,
 * that key's X25519 form (checked: prime order) and its mailbox id. */
struct envelope_recipient {
    uint8_t account[IDENTITY_PUBLIC_BYTES];
    uint8_t x25519[32];
    uint8_t mailbox[ENVELOPE_MAILBOX_BYTES];
};

/* MP_ERR_WEAK_KEY when the account key has no safe X25519 form. */
enum mp_err envelope_recipient_init(const uint8_t account[IDENTITY_PUBLIC_BYTES],
                                    struct envelope_recipient *r_out);

/* A seal's ephemeral key pair made ahead of the seal, and its exchange with
 * the recipient the seal will likely go to, so that a seal on its way to the
 * network waits for neither (33 and 36 us here: all the public-key work of
 * an envelope_seal_to). Used by one seal only: envelope_seal_to wipes it. */
struct envelope_ephemeral {
    uint8_t sk[32];
    uint8_t pk[32];
    bool ready;
    bool has_shared;  /* shared = the exchange of sk with peer */
    uint8_t peer[32]; /* a recipient's x25519 */
    uint8_t shared[32];
};

/* A fresh key pair into *eph_out (ready), with its exchange with likely
 * done too if likely is not NULL. MP_ERR_CRYPTO if libsodium refuses
 * (never, for a random scalar); *eph_out is then not ready. */
enum mp_err envelope_ephemeral_make(const struct env *env, const struct envelope_recipient *likely,
                                    struct envelope_ephemeral *eph_out);

/* Zero *eph (not ready). */
void envelope_ephemeral_wipe(struct envelope_ephemeral *eph);

/* envelope_seal to a recipient made by envelope_recipient_init, with *eph
 * as its ephemeral key pair if ready (then wiped), else a fresh one, and
 * eph's exchange if made with this recipient; eph may be NULL. */
enum mp_err envelope_seal_to(const struct env *env, const struct envelope_recipient *recipient,
                             const struct envelope_content *c, struct envelope_ephemeral *eph,
                             struct buf *out);

/* Seal c for the account `recipient`. Initialises out (max ENVELOPE_WIRE_MAX)
 * and fills it with the encoded envelope. Errors: MP_ERR_INVAL (ct shorter
 * than RATCHET_OVERHEAD or longer than a full ratchet message, or has_init
 * with init.initiator != sender), MP_ERR_WEAK_KEY (recipient key). */
enum mp_err envelope_seal(const struct env *env, const uint8_t recipient[IDENTITY_PUBLIC_BYTES],
                          const struct envelope_content *c, struct buf *out);

/* What anyone can read: the mailbox id (and the length they already have).
 * MP_ERR_TOO_BIG, MP_ERR_MALFORMED, MP_ERR_WIRE_VERSION. */
enum mp_err envelope_mailbox(const uint8_t *data, size_t len,
                             uint8_t mailbox_out[ENVELOPE_MAILBOX_BYTES]);

/* Open an envelope addressed to `self`. On MP_OK c_out owns its ct.
 * Errors: those of envelope_mailbox, MP_ERR_ENVELOPE_OPEN (another mailbox,
 * or the seal fails: not for us or tampered), MP_ERR_WEAK_KEY, and
 * MP_ERR_MALFORMED for a bad inside. */
enum mp_err envelope_open(const struct identity *self, const uint8_t *data, size_t len,
                          struct envelope_content *c_out);

/* Free an opened content's ct and zero it; accepts one never filled if it
 * was zeroed. */
void envelope_content_clear(struct envelope_content *c);

#endif
