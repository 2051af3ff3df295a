/*
 * noise: the link handshake and transport ciphers of node-to-node links.
 *
 * An implementation of the Noise Protocol Framework (revision 34) for five
 * protocols, all with X25519, ChaCha20-Poly1305 (IETF) and BLAKE2b:
 *   Noise_IK_25519_ChaChaPoly_BLAKE2b      the dialer knows the node's key (usual case)
 *   Noise_XX_25519_ChaChaPoly_BLAKE2b      neither side knows the other's key yet
 *   Noise_IKpsk2_25519_ChaChaPoly_BLAKE2b  IK inside a private cluster (PSK = cluster secret)
 *   Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b  XX inside a private cluster
 *   Noise_IKpsk1_25519_ChaChaPoly_BLAKE2b  IK in a private cluster where the responder
 *                                          checks the PSK in the first message
 *
 * A noise_handshake runs one side of one handshake: the caller alternates
 * noise_handshake_write and noise_handshake_read as noise_handshake_next says,
 * moving the bytes itself (this module does no I/O), then calls
 * noise_handshake_split to get the two transport ciphers (the only way
 * production code gets one; crypto/noise_testing.h has the test hooks). Any failure poisons
 * the handshake: its secrets are wiped at once and every later call returns
 * MP_ERR_NOISE_STATE, so nothing of a failed handshake can reach a session.
 *
 * It is not a framing layer: a Noise message is at most NOISE_MAX_MESSAGE
 * bytes and the caller length-prefixes it on the stream (docs/PROTOCOL.md,
 * "Noise links"). Randomness (ephemeral keys) comes from the env.
 */
#ifndef MP_CRYPTO_NOISE_H
#define MP_CRYPTO_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/env.h"
#include "base/err.h"

#define NOISE_KEY_BYTES   32     /* X25519 public or secret key */
#define NOISE_PSK_BYTES   32     /* pre-shared key (cluster secret) */
#define NOISE_HASH_BYTES  64     /* BLAKE2b: the handshake hash */
#define NOISE_TAG_BYTES   16     /* Poly1305 tag added to every encrypted field */
#define NOISE_MAX_MESSAGE 65535u /* any Noise message, handshake or transport */
/* Largest plaintext of one transport message. */
#define NOISE_MAX_TRANSPORT_PAYLOAD (NOISE_MAX_MESSAGE - NOISE_TAG_BYTES)
/* Largest handshake payload that fits every message of every pattern here
 * (the biggest overhead is IK's first message: e, s+tag, payload tag). */
#define NOISE_MAX_HANDSHAKE_PAYLOAD (NOISE_MAX_MESSAGE - 2 * NOISE_KEY_BYTES - 2 * NOISE_TAG_BYTES)
/* Largest prologue accepted by noise_handshake_new. */
#define NOISE_PROLOGUE_MAX 1024u

/* The project prologue: "merpati/" <version u16 big-endian> <len u8> <network id>. */
#define NOISE_PROTOCOL_VERSION     1
#define NOISE_PROTOCOL_VERSION_MAX 65535u
#define NOISE_NETWORK_ID_MAX       64u
#define NOISE_MERPATI_PROLOGUE_MAX (8 + 2 + 1 + NOISE_NETWORK_ID_MAX)

/* Transport ciphers rekey themselves after this many messages in each
 * direction (both ends count the same messages, so they stay in step). */
#define NOISE_REKEY_INTERVAL (UINT64_C(1) << 20)

enum noise_pattern {
    NOISE_PATTERN_IK,
    NOISE_PATTERN_XX,
    NOISE_PATTERN_IKPSK2,
    NOISE_PATTERN_XXPSK3,
    NOISE_PATTERN_IKPSK1,
};

/* What the caller must do next with a handshake. */
enum noise_step {
    NOISE_STEP_WRITE,  /* call noise_handshake_write and send the bytes */
    NOISE_STEP_READ,   /* feed the peer's next message to noise_handshake_read */
    NOISE_STEP_SPLIT,  /* complete: call noise_handshake_split */
    NOISE_STEP_DONE,   /* split already taken; only the hash and remote key remain */
    NOISE_STEP_FAILED, /* poisoned by an error; free it */
};

struct noise_config {
    enum noise_pattern pattern;
    bool initiator;
    const uint8_t *prologue; /* prologue_len bytes (<= NOISE_PROLOGUE_MAX); NULL if 0 */
    size_t prologue_len;
    /* Local static X25519 secret key, NOISE_KEY_BYTES; required. */
    const uint8_t *s;
    /* Remote static public key, NOISE_KEY_BYTES. Required for the IK
     * initiator (the key dialed). Elsewhere optional: if given, the key the
     * peer reveals during the handshake must equal it (MP_ERR_NOISE_PEER_KEY). */
    const uint8_t *rs;
    /* NOISE_PSK_BYTES; required by the psk patterns, must be NULL otherwise. */
    const uint8_t *psk;
    /* Test hook: a fixed ephemeral secret key (the published test vectors
     * need it). NULL in production: the ephemeral comes from env randomness. */
    const uint8_t *fixed_ephemeral;
};

struct noise_handshake;
struct noise_cipher;

/* The protocol name of a pattern, e.g. "Noise_IK_25519_ChaChaPoly_BLAKE2b". */
const char *noise_protocol_name(enum noise_pattern pattern);

/* Writes Merpati's link prologue for a protocol version
 * (1..NOISE_PROTOCOL_VERSION_MAX) and network id (1..NOISE_NETWORK_ID_MAX
 * bytes) into out (NOISE_MERPATI_PROLOGUE_MAX bytes) and its length into
 * *len_out. Distinct (version, id) pairs never give the same prologue.
 * MP_ERR_INVAL on an empty or too long network id or a version out of range. */
enum mp_err noise_prologue(unsigned version, const uint8_t *network_id, size_t network_id_len,
                           uint8_t out[NOISE_MERPATI_PROLOGUE_MAX], size_t *len_out);

/* Starts one side of a handshake. env is borrowed for the handshake's life;
 * the config's buffers are copied. MP_ERR_INVAL when a key the pattern needs
 * is missing or one it forbids is given, or the prologue is too long. (A
 * low-order cfg->rs shows up as MP_ERR_NOISE_LOW_ORDER at the first DH.) */
enum mp_err noise_handshake_new(const struct env *env, const struct noise_config *cfg,
                                struct noise_handshake **hs_out);

/* What the caller must do next (enum noise_step): WRITE or READ by turn,
 * SPLIT once the last message is through, DONE after the split, FAILED
 * after any error (then only _free is useful). Never fails; no side effects. */
enum noise_step noise_handshake_next(const struct noise_handshake *hs);

/* Writes the next handshake message carrying payload (may be NULL if 0)
 * into out, at most out_cap bytes (NOISE_MAX_MESSAGE always suffices).
 * Errors: MP_ERR_NOISE_STATE if it is not this side's turn to write,
 * MP_ERR_TOO_BIG if the message would not fit out_cap or NOISE_MAX_MESSAGE,
 * MP_ERR_NOISE_LOW_ORDER if a DH with the peer's key fails. On any error
 * the handshake is poisoned and out holds nothing of it. */
enum mp_err noise_handshake_write(struct noise_handshake *hs, const uint8_t *payload,
                                  size_t payload_len, uint8_t *out, size_t out_cap,
                                  size_t *len_out);

/* Reads the peer's next handshake message (msg_len <= NOISE_MAX_MESSAGE) and
 * writes its payload into payload_out, at most payload_cap bytes (a buffer of
 * msg_len bytes always suffices). Errors: MP_ERR_NOISE_STATE (not our turn),
 * MP_ERR_MALFORMED (too short), MP_ERR_TOO_BIG (over a cap), MP_ERR_NOISE_LOW_ORDER
 * (the peer's key is a low-order point), and for a failed decryption one of
 * MP_ERR_NOISE_PROLOGUE, MP_ERR_NOISE_PEER_KEY, MP_ERR_NOISE_PSK or
 * MP_ERR_NOISE_DECRYPT by where it failed (table in docs/PROTOCOL.md). On any
 * error the handshake is poisoned and payload_out holds nothing of it. */
enum mp_err noise_handshake_read(struct noise_handshake *hs, const uint8_t *msg, size_t msg_len,
                                 uint8_t *payload_out, size_t payload_cap, size_t *len_out);

/* After the last message: the transport ciphers for sending and receiving,
 * owned by the caller (noise_cipher_free each). Wipes the handshake's keys;
 * the handshake hash and the remote static key stay readable. Once only. */
enum mp_err noise_handshake_split(struct noise_handshake *hs, struct noise_cipher **send_out,
                                  struct noise_cipher **recv_out);

/* The handshake hash (channel binding), available once the handshake is
 * complete; MP_ERR_NOISE_STATE before. */
enum mp_err noise_handshake_hash(const struct noise_handshake *hs, uint8_t out[NOISE_HASH_BYTES]);

/* The peer's static public key once known (IK initiator: from the start;
 * otherwise after the message that carries it); MP_ERR_NOISE_STATE before. */
enum mp_err noise_handshake_remote_static(const struct noise_handshake *hs,
                                          uint8_t out[NOISE_KEY_BYTES]);

/* Wipes every secret and frees; accepts NULL. */
void noise_handshake_free(struct noise_handshake *hs);

/* Encrypts one transport message: len <= NOISE_MAX_TRANSPORT_PAYLOAD, out
 * has room for len + NOISE_TAG_BYTES (out may equal plain). MP_ERR_NOISE_NONCE
 * once 2^64-1 messages were sent (the link must be re-established). */
enum mp_err noise_cipher_encrypt(struct noise_cipher *c, const uint8_t *plain, size_t len,
                                 uint8_t *out, size_t out_cap, size_t *len_out);

/* Decrypts one transport message (NOISE_TAG_BYTES..NOISE_MAX_MESSAGE bytes)
 * into out (len - NOISE_TAG_BYTES bytes; out may equal msg).
 * MP_ERR_NOISE_DECRYPT on a forged, altered, replayed or reordered message:
 * as the spec says, the nonce is then not advanced, and the caller should
 * close the link. MP_ERR_MALFORMED if shorter than a tag. */
enum mp_err noise_cipher_decrypt(struct noise_cipher *c, const uint8_t *msg, size_t len,
                                 uint8_t *out, size_t out_cap, size_t *len_out);

/* Replaces the key with REKEY(k) now (the nonce keeps counting). Both ends
 * must do it at the same message. */
void noise_cipher_rekey(struct noise_cipher *c);

/* Automatic rekey every `interval` messages (0 turns it off); the default
 * after split is NOISE_REKEY_INTERVAL. Both ends must use the same value. */
void noise_cipher_set_rekey_interval(struct noise_cipher *c, uint64_t interval);

/* The nonce of the next message. */
uint64_t noise_cipher_nonce(const struct noise_cipher *c);

/* Wipes the key and frees; accepts NULL. */
void noise_cipher_free(struct noise_cipher *c);

#endif
