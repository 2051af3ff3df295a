/*
 * prekey: an account's X3DH prekeys, and the public bundle others fetch to
 * open a session with it while it is offline.
 *
 * A bundle holds the account identity key (Ed25519), one signed prekey
 * (X25519, with an id and a validity window in Unix milliseconds, signed by
 * the account key) and up to PREKEY_BUNDLE_ONE_TIME_MAX one-time prekeys
 * (unsigned, as in Signal: a substituted one-time key only downgrades a
 * session to signed-prekey-only). The owner's side, struct prekey_store, keeps
 * the secrets: the current signed prekey, previous ones for a grace period,
 * unused one-time prekeys, and the set of first messages already accepted
 * (replay detection). The numbers are in docs/PROTOCOL.md, "Prekey bundles
 * and session setup".
 *
 * No I/O and no clock: every time check takes `now_ms` (Unix ms) from the
 * caller; randomness comes from the env. The session setup itself is x3dh.h;
 * the byte formats are prekey_wire.c.
 */
#ifndef MP_CRYPTO_PREKEY_H
#define MP_CRYPTO_PREKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/env.h"
#include "base/err.h"
#include "crypto/identity.h"

#define PREKEY_KEY_BYTES 32
#define PREKEY_DAY_MS    (24ull * 60 * 60 * 1000)
/* A new signed prekey is due every week ... */
#define PREKEY_ROTATE_MS (7 * PREKEY_DAY_MS)
/* ... and each is signed valid for two, so a bundle cached just before a
 * rotation still works for a week. */
#define PREKEY_VALIDITY_MS (14 * PREKEY_DAY_MS)
/* A replaced signed prekey's secret is kept this long after its expiry, so
 * first messages that waited in a mailbox for up to four weeks still open. */
#define PREKEY_GRACE_MS (28 * PREKEY_DAY_MS)
/* Signed prekey secrets held: the current one and up to five previous ones
 * (weekly rotation and 14 + 28 days of life need six). Past that, the oldest
 * is dropped early. */
#define PREKEY_SIGNED_KEEP 6
/* One-time prekey secrets held by the owner; adding more fails. */
#define PREKEY_ONE_TIME_MAX 200
/* One-time prekeys in one bundle (a mailbox hands out one per requester). */
#define PREKEY_BUNDLE_ONE_TIME_MAX 32
/* Ephemeral keys of accepted first messages remembered for replay detection,
 * per signed prekey. A record lives as long as its signed prekey secret, so
 * no first message can be replayed while it could still be opened. When a
 * signed prekey has this many, it refuses further first messages
 * (MP_ERR_PREKEY_FULL) and a rotation is due; rotation_due already asks for
 * one at half. docs/PROTOCOL.md has the reasons for the numbers. */
#define PREKEY_SEEN_PER_SIGNED 2048
#define PREKEY_SEEN_MAX        (PREKEY_SEEN_PER_SIGNED * PREKEY_SIGNED_KEEP)

struct prekey_signed {
    uint32_t id;
    uint8_t pub[PREKEY_KEY_BYTES]; /* X25519 */
    uint64_t created_ms;           /* Unix ms */
    uint64_t expires_ms;           /* Unix ms; unusable from this instant on */
    uint8_t sig[IDENTITY_SIGNATURE_BYTES];
};

struct prekey_one_time {
    uint32_t id;
    uint8_t pub[PREKEY_KEY_BYTES]; /* X25519 */
};

/* A plain value: what prekey_bundle_decode fills and prekey_store_bundle writes. */
struct prekey_bundle {
    uint8_t identity[IDENTITY_PUBLIC_BYTES]; /* the account's Ed25519 key */
    struct prekey_signed spk;
    uint32_t one_time_count; /* <= PREKEY_BUNDLE_ONE_TIME_MAX */
    struct prekey_one_time one_time[PREKEY_BUNDLE_ONE_TIME_MAX];
};

/* Check a bundle before use. Errors, in this order: MP_ERR_INVAL (more than
 * PREKEY_BUNDLE_ONE_TIME_MAX one-time keys), MP_ERR_PREKEY_OWNER (identity is
 * not `owner`), MP_ERR_WEAK_KEY (identity, signed or one-time key is a
 * low-order point), MP_ERR_PREKEY_SIGNATURE, MP_ERR_PREKEY_EXPIRED (now_ms
 * outside [created_ms - 1 day of clock skew, expires_ms), or a window longer
 * than PREKEY_VALIDITY_MS). */
enum mp_err prekey_bundle_verify(const struct prekey_bundle *b,
                                 const uint8_t owner[IDENTITY_PUBLIC_BYTES], uint64_t now_ms);

/* The bytes an account key signs for a signed prekey (fixed layout, see
 * docs/PROTOCOL.md). */
#define PREKEY_SIGNED_MSG_BYTES (16 + IDENTITY_PUBLIC_BYTES + 4 + PREKEY_KEY_BYTES + 8 + 8)
void prekey_signed_message(const uint8_t owner[IDENTITY_PUBLIC_BYTES],
                           const struct prekey_signed *spk,
                           uint8_t msg_out[PREKEY_SIGNED_MSG_BYTES]);

/* True when pub is an X25519 key of large order (a scalar multiplication by it
 * does not give the all-zero point). */
bool prekey_public_ok(const uint8_t pub[PREKEY_KEY_BYTES]);

/* The account's X25519 identity key pair, derived from its Ed25519 key pair
 * (crypto_sign_ed25519_*_to_curve25519). The secret is wiped by the caller. */
enum mp_err prekey_identity_dh(const struct identity *account, uint8_t sk_out[PREKEY_KEY_BYTES],
                               uint8_t pk_out[PREKEY_KEY_BYTES]);

/* The X25519 form of an Ed25519 account key; MP_ERR_WEAK_KEY when it has
 * none or it is of low order. */
enum mp_err prekey_identity_dh_public(const uint8_t ed_pk[IDENTITY_PUBLIC_BYTES],
                                      uint8_t pk_out[PREKEY_KEY_BYTES]);

struct prekey_store;

/* A store with a first signed prekey created at now_ms and no one-time keys.
 * The store copies what it needs of `account` (its public key and X25519
 * identity secret); account is borrowed for the call only. */
enum mp_err prekey_store_new(const struct env *env, const struct identity *account, uint64_t now_ms,
                             struct prekey_store **store_out);

/* True when the current signed prekey is PREKEY_ROTATE_MS old or more, or has
 * accepted PREKEY_SEEN_PER_SIGNED / 2 first messages or more (so it is
 * replaced well before it fills up and refuses sessions). */
bool prekey_store_rotation_due(const struct prekey_store *s, uint64_t now_ms);

/* Make a new current signed prekey; the old one is kept until its expiry plus
 * PREKEY_GRACE_MS (or until PREKEY_SIGNED_KEEP newer ones exist). Also drops
 * the previous prekeys whose grace has ended, and their replay records. */
enum mp_err prekey_store_rotate(struct prekey_store *s, const struct env *env,
                                const struct identity *account, uint64_t now_ms);

/* Add count new one-time prekeys. MP_ERR_TOO_BIG (nothing added) if that
 * would hold more than PREKEY_ONE_TIME_MAX. */
enum mp_err prekey_store_add_one_time(struct prekey_store *s, const struct env *env,
                                      unsigned count);

/* Unused one-time prekeys held (0..PREKEY_ONE_TIME_MAX): when it runs low,
 * add more with prekey_store_add_one_time. */
size_t prekey_store_one_time_count(const struct prekey_store *s);

/* First messages accepted on the signed prekey `spk_id` (0 if it is not
 * held): 0..PREKEY_SEEN_PER_SIGNED. */
size_t prekey_store_seen_count(const struct prekey_store *s, uint32_t spk_id);

/* Borrowed: the account key the store belongs to, valid until _free. */
const uint8_t *prekey_store_account(const struct prekey_store *s);

/* The public bundle: the current signed prekey and up to max_one_time of the
 * unused one-time prekeys, oldest first. */
void prekey_store_bundle(const struct prekey_store *s, unsigned max_one_time,
                         struct prekey_bundle *out);

/* Responder lookup for x3dh.c, without changing the store: the identity,
 * signed and (if asked) one-time secrets for a first message. Errors:
 * MP_ERR_SESSION_REPLAY (ephemeral already accepted), MP_ERR_PREKEY_UNKNOWN
 * (signed prekey id not held or past its grace at now_ms, or one-time id
 * not held, e.g. already consumed), MP_ERR_PREKEY_FULL (the signed prekey
 * has accepted PREKEY_SEEN_PER_SIGNED first messages). Secrets are the
 * caller's to wipe. */
enum mp_err
prekey_store_lookup(const struct prekey_store *s, const uint8_t ephemeral[PREKEY_KEY_BYTES],
                    uint32_t spk_id, bool has_opk, uint32_t opk_id, uint64_t now_ms,
                    uint8_t ik_sk_out[PREKEY_KEY_BYTES], uint8_t spk_sk_out[PREKEY_KEY_BYTES],
                    uint8_t spk_pk_out[PREKEY_KEY_BYTES], uint8_t opk_sk_out[PREKEY_KEY_BYTES]);

/* Record an accepted first message: remember its ephemeral key for as long
 * as the signed prekey is held, and delete the one-time prekey it used. Call
 * only once the first message has decrypted. Checks again what may have
 * changed since the lookup (another session accepted in between) and
 * changes nothing on error: MP_ERR_SESSION_REPLAY, MP_ERR_PREKEY_UNKNOWN
 * (signed or one-time prekey no longer held), MP_ERR_PREKEY_FULL. On an
 * error the caller must drop the session it built. */
enum mp_err prekey_store_commit(struct prekey_store *s, const uint8_t ephemeral[PREKEY_KEY_BYTES],
                                uint32_t spk_id, bool has_opk, uint32_t opk_id);

/* Serialized store (secret: the caller wipes it; buf_free does). Writes a
 * fresh buf with max PREKEY_STORE_WIRE_MAX. prekey_wire.c. */
#define PREKEY_STORE_WIRE_MAX (1024u * 1024)
enum mp_err prekey_store_encode(const struct prekey_store *s, struct buf *out);

/* Parse a stored store; account must be the key pair it was made for
 * (MP_ERR_PREKEY_OWNER otherwise). MP_ERR_MALFORMED, MP_ERR_TOO_BIG,
 * MP_ERR_WIRE_VERSION on bad input; MP_ERR_MALFORMED also for a secret whose
 * public half does not match, and a replay record of a signed prekey not
 * held or past its PREKEY_SEEN_PER_SIGNED. */
enum mp_err prekey_store_decode(const struct identity *account, const uint8_t *data, size_t len,
                                struct prekey_store **store_out);

/* Wipes every secret and frees; accepts NULL. */
void prekey_store_free(struct prekey_store *s);

/* Bundle codec (prekey_wire.c): msgpack, versioned, at most
 * PREKEY_BUNDLE_WIRE_MAX bytes. Decoding checks types and sizes only; call
 * prekey_bundle_verify before use. Errors: MP_ERR_TOO_BIG, MP_ERR_MALFORMED,
 * MP_ERR_WIRE_VERSION. */
#define PREKEY_BUNDLE_WIRE_MAX 2048
enum mp_err prekey_bundle_encode(const struct prekey_bundle *b, uint8_t *out, size_t cap,
                                 size_t *len_out);
enum mp_err prekey_bundle_decode(const uint8_t *data, size_t len, struct prekey_bundle *b_out);

#endif
