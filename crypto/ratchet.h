/*
 * ratchet: one end of a Double Ratchet session (Signal's specification).
 *
 * Message keys come from chain keys by HMAC-SHA256 (KDF_CK, constants 0x01
 * for the message key and 0x02 for the next chain key); chain keys come from
 * the root key and a fresh X25519 exchange at every change of speaker by
 * HKDF-SHA256 (KDF_RK). Each message is XChaCha20-Poly1305 under a key that
 * HKDF-Expand-SHA256 draws from its message key, with the session's
 * associated data (the X3DH AD) and the header as associated data, and a
 * nonce carried in front of the ciphertext: a random 16-byte prefix drawn
 * from the env whenever a session object is made (new or decoded) and a
 * 64-bit count of that object's messages.
 *
 * Message keys are deterministic: a session state rolled back (a crash
 * before the caller saved it, a restored backup) sends new plaintexts under
 * keys it used before. The nonce is not part of the state, so that never
 * reuses a (key, nonce) pair, and confidentiality and integrity hold; but
 * the receiver sees those message numbers again and refuses the repeats
 * (RATCHET_REPLAY). So a caller should still store the state
 * (ratchet_state_encode) after each encrypt before the message leaves, or,
 * if messages may leave first, step a restored state past every number that
 * may have left (ratchet_skip_sends); else those messages are lost.
 *
 * Messages may arrive late, twice, or out of order (mail waits in mailboxes):
 * keys of skipped messages are kept, bounded by RATCHET_MAX_SKIP per step
 * and RATCHET_SKIPPED_MAX in all, oldest dropped first. A duplicate fails
 * with MP_ERR_RATCHET_REPLAY, a forgery with MP_ERR_RATCHET_TAMPERED, a
 * message past the window with MP_ERR_RATCHET_TOO_FAR. A failed decrypt leaves
 * the session exactly as it was. docs/PROTOCOL.md, "Double Ratchet", has the
 * numbers and the reasons.
 *
 * Not thread-safe; no I/O. The env (randomness for new ratchet keys) is
 * borrowed and must outlive the session. Secrets are wiped on free.
 */
#ifndef MP_CRYPTO_RATCHET_H
#define MP_CRYPTO_RATCHET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/env.h"
#include "base/err.h"

#define RATCHET_KEY_BYTES 32
#define RATCHET_AD_BYTES  64
/* How far ahead of the next expected number one message may be, in its own
 * chain or (through the header's PN) in the chain before it. */
#define RATCHET_MAX_SKIP 2000
/* Skipped message keys held in all; past it the oldest are dropped. */
#define RATCHET_SKIPPED_MAX 10000
/* Receiving chains remembered after they end, to tell a late duplicate
 * (REPLAY) from a forgery. */
#define RATCHET_CHAINS_KEPT 256
/* Largest plaintext, and what encryption adds to it: a random 24-byte
 * XChaCha20 nonce in front and the 16-byte Poly1305 tag at the end. */
/* A 64 KiB text plus the framing of the message that carries it. */
#define RATCHET_PLAINTEXT_MAX (65536 + 1024)
#define RATCHET_NONCE_BYTES   24
#define RATCHET_OVERHEAD      (RATCHET_NONCE_BYTES + 16)

struct ratchet_header {
    uint8_t dh[RATCHET_KEY_BYTES]; /* sender's current ratchet public key */
    uint32_t pn;                   /* messages in the sender's previous sending chain */
    uint32_t n;                    /* this message's number in its chain */
};

struct ratchet;

/* Initiator (after x3dh_initiate): root and ad from X3DH, remote_spk the
 * responder's signed prekey; all copied. Can encrypt at once. The session is
 * the caller's (ratchet_free). Errors: MP_ERR_NOMEM (also when libsodium
 * fails to start), MP_ERR_WEAK_KEY (remote_spk of low order), MP_ERR_CRYPTO
 * (key generation failed); *r_out is untouched on error. */
enum mp_err ratchet_new_initiator(const struct env *env, const uint8_t root[RATCHET_KEY_BYTES],
                                  const uint8_t ad[RATCHET_AD_BYTES],
                                  const uint8_t remote_spk[RATCHET_KEY_BYTES],
                                  struct ratchet **r_out);

/* Responder (after x3dh_respond): its signed prekey pair is the first
 * ratchet key (copied; the pair is not checked here: x3dh_respond gives a
 * matching one). Must decrypt the initiator's first message before it can
 * encrypt. The session is the caller's (ratchet_free). Errors: MP_ERR_NOMEM
 * (also when libsodium failed to start); *r_out is untouched on error. */
enum mp_err ratchet_new_responder(const struct env *env, const uint8_t root[RATCHET_KEY_BYTES],
                                  const uint8_t ad[RATCHET_AD_BYTES],
                                  const uint8_t spk_sk[RATCHET_KEY_BYTES],
                                  const uint8_t spk_pk[RATCHET_KEY_BYTES], struct ratchet **r_out);

/* Encrypt len <= RATCHET_PLAINTEXT_MAX bytes into ct_out (len +
 * RATCHET_OVERHEAD bytes: 24-byte random nonce, ciphertext, tag; ct_out must
 * not overlap pt). Safe even when the state was rolled back (see above). MP_ERR_INVAL when the
 * session cannot send yet (a responder before its first message) or len is too big;
 * MP_ERR_RATCHET_CHAIN_FULL after 2^32-1 messages in one sending chain (the
 * peer must answer before more can be sent). */
enum mp_err ratchet_encrypt(struct ratchet *r, const uint8_t *pt, size_t len,
                            struct ratchet_header *hdr_out, uint8_t *ct_out);

/* Decrypt ct (ct_len bytes) into pt_out (ct_len - RATCHET_OVERHEAD bytes).
 * Errors: MP_ERR_MALFORMED (ct too short or too long), MP_ERR_RATCHET_REPLAY,
 * MP_ERR_RATCHET_TOO_FAR, MP_ERR_RATCHET_TAMPERED, MP_ERR_WEAK_KEY (header key
 * of low order). On any error the session is unchanged and pt_out holds no
 * plaintext. */
enum mp_err ratchet_decrypt(struct ratchet *r, const struct ratchet_header *hdr, const uint8_t *ct,
                            size_t ct_len, uint8_t *pt_out);

/* True once the session has decrypted a message from the other side. An
 * initiator puts its x3dh_init in every envelope until then (docs/PROTOCOL.md). */
bool ratchet_has_received(const struct ratchet *r);

/* Where the session's next message goes: its sending chain (the ratchet
 * public key in its header) and its number N. False, and nothing written,
 * while the session cannot send. */
bool ratchet_send_position(const struct ratchet *r, uint8_t dh_out[RATCHET_KEY_BYTES],
                           uint32_t *n_out);

/* Step the sending chain on to number n without sending: the numbers between
 * are never used, and the receiver keeps their keys as skipped ones (so at
 * most RATCHET_MAX_SKIP ahead). For a state restored from before messages
 * that left (sent ahead of its save): it then sends past them, not over them.
 * MP_ERR_INVAL when the session cannot send, n is behind its chain, too far
 * ahead, or 2^32-1; the session is then unchanged. */
enum mp_err ratchet_skip_sends(struct ratchet *r, uint32_t n);

/* Skipped message keys currently held. */
size_t ratchet_skipped_count(const struct ratchet *r);

/* The associated data the session was made with (borrowed). */
const uint8_t *ratchet_ad(const struct ratchet *r);

/* Wipes every key and frees; accepts NULL. */
void ratchet_free(struct ratchet *r);

/* ---- codecs (ratchet_wire.c) ---- */

/* A header on the wire: msgpack [version, dh, pn, n], at most this long. */
#define RATCHET_HEADER_WIRE_MAX 48
/* Writes h into out (RATCHET_HEADER_WIRE_MAX bytes always suffice) and its
 * length (at most 48) into *len_out. Every header fits, so it returns MP_OK;
 * the result is an enum mp_err only to match the other encoders. */
enum mp_err ratchet_header_encode(const struct ratchet_header *h,
                                  uint8_t out[RATCHET_HEADER_WIRE_MAX], size_t *len_out);
/* MP_ERR_MALFORMED, MP_ERR_TOO_BIG or MP_ERR_WIRE_VERSION on bad input. */
enum mp_err ratchet_header_decode(const uint8_t *data, size_t len, struct ratchet_header *h_out);

/* Session state for storage (secret: buf_free wipes it). Initialises out
 * with max RATCHET_STATE_WIRE_MAX and fills it. */
#define RATCHET_STATE_WIRE_MAX (1024u * 1024)
enum mp_err ratchet_state_encode(const struct ratchet *r, struct buf *out);

/* Rebuild a session from ratchet_state_encode bytes; it continues exactly
 * where the saved one stopped. Errors: MP_ERR_TOO_BIG, MP_ERR_MALFORMED,
 * MP_ERR_WIRE_VERSION (a state from a newer version). */
enum mp_err ratchet_state_decode(const struct env *env, const uint8_t *data, size_t len,
                                 struct ratchet **r_out);

#endif
