/*
 * x3dh: session setup from a prekey bundle, after Signal's X3DH.
 *
 * The initiator (A) combines its account identity key, a fresh ephemeral key
 * and the responder's (B) bundle; B later does the same from the first
 * message's x3dh_init and its prekey_store. Both get the same 32-byte root
 * key for the Double Ratchet (ratchet.h) and the same associated data, the
 * two account keys A || B. Identity keys take part in DH in their X25519 form
 * (crypto_sign_ed25519_*_to_curve25519), so an account has one key pair.
 *
 *   DH1 = DH(IK_A, SPK_B)  DH2 = DH(EK_A, IK_B)  DH3 = DH(EK_A, SPK_B)
 *   DH4 = DH(EK_A, OPK_B)  (only when a one-time prekey was used)
 *   root = HKDF-SHA256(salt = 32 zero bytes, ikm = 32 x 0xFF || DH1..DH4,
 *                      info = "merpati x3dh v1")
 *
 * Every scalar multiplication's result is checked (low-order points fail
 * with MP_ERR_WEAK_KEY). No I/O; the caller carries x3dh_init inside the first
 * message(s) and calls x3dh_accept once one has decrypted, which is what
 * consumes the one-time prekey and records the ephemeral key against replays.
 */
#ifndef MP_CRYPTO_X3DH_H
#define MP_CRYPTO_X3DH_H

#include <stdbool.h>
#include <stdint.h>

#include "base/env.h"
#include "base/err.h"
#include "crypto/identity.h"
#include "crypto/prekey.h"

#define X3DH_KEY_BYTES 32
#define X3DH_AD_BYTES  (2 * IDENTITY_PUBLIC_BYTES)

/* What the responder needs, carried in the first message(s) of a session. */
struct x3dh_init {
    uint8_t initiator[IDENTITY_PUBLIC_BYTES]; /* A's account key (Ed25519) */
    uint8_t ephemeral[PREKEY_KEY_BYTES];      /* EK_A (X25519) */
    uint32_t spk_id;
    bool has_opk;
    uint32_t opk_id;
};

/* Secret: wipe with x3dh_keys_wipe. */
struct x3dh_keys {
    uint8_t root[X3DH_KEY_BYTES];
    uint8_t ad[X3DH_AD_BYTES]; /* initiator key || responder key */
    /* The signed prekey the session used: the initiator's first ratchet
     * public key (B's side keeps the secret too, for ratchet_new_responder). */
    uint8_t spk_pub[PREKEY_KEY_BYTES];
    uint8_t spk_sk[PREKEY_KEY_BYTES]; /* responder only; zero on the initiator */
};

/* Initiator: verify `bundle` as `owner`'s at now_ms (prekey_bundle_verify's
 * errors), then derive. Uses the bundle's first one-time prekey if it has
 * any. Writes init_out and keys_out only on MP_OK. */
enum mp_err x3dh_initiate(const struct env *env, const struct identity *self,
                          const struct prekey_bundle *bundle,
                          const uint8_t owner[IDENTITY_PUBLIC_BYTES], uint64_t now_ms,
                          struct x3dh_init *init_out, struct x3dh_keys *keys_out);

/* Responder: derive the same keys from a first message's init. Leaves the
 * store unchanged. Errors: MP_ERR_SESSION_REPLAY, MP_ERR_PREKEY_UNKNOWN,
 * MP_ERR_PREKEY_FULL (prekey_store_lookup), MP_ERR_WEAK_KEY (initiator or
 * ephemeral key). */
enum mp_err x3dh_respond(const struct prekey_store *store, const struct x3dh_init *init,
                         uint64_t now_ms, struct x3dh_keys *keys_out);

/* Responder, once the first message has decrypted under the derived keys:
 * consume the one-time prekey and remember the ephemeral key. The errors of
 * prekey_store_commit (another session used the same ephemeral, one-time or
 * last free replay slot since x3dh_respond); the store is then unchanged
 * and the caller must drop the new session. */
enum mp_err x3dh_accept(struct prekey_store *store, const struct x3dh_init *init);

/* Zero every byte of k (root key, AD, prekey secret). Call on every
 * x3dh_keys once the ratchet is built, and on error paths. */
void x3dh_keys_wipe(struct x3dh_keys *k);

#endif
