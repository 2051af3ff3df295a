/*
 * box: the public-key boxes and hashes that dht/ needs, so dht/ never
 * includes sodium.h.
 *
 * A node key is an X25519 key pair (the DHT's node identity); a node id is
 * BLAKE2b-256 of the node public key, so an id cannot be claimed without the
 * key. Two nodes derive a per-peer shared key from X25519 plus a BLAKE2b KDF
 * that mixes in a network key: nodes of a private cluster (whose network key
 * is the cluster secret) and outsiders end up with different keys, so an
 * outsider's datagram fails the first authentication check. Sealing is
 * XChaCha20-Poly1305 with a random nonce drawn from the env.
 *
 * This module does no I/O and keeps no global state. It is not the link
 * handshake (crypto/noise*) and not the end-to-end envelope format.
 */
#ifndef MP_CRYPTO_BOX_H
#define MP_CRYPTO_BOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/env.h"
#include "base/err.h"

#define BOX_PUBLIC_BYTES 32
#define BOX_SEED_BYTES 32
#define BOX_SHARED_BYTES 32
#define BOX_NONCE_BYTES 24
#define BOX_TAG_BYTES 16
#define BOX_NODE_ID_BYTES 32
#define BOX_NETWORK_KEY_BYTES 32
#define BOX_HASH_MAX_BYTES 64
#define BOX_HASH_KEY_MAX_BYTES 64

struct box_key;

/* A fresh X25519 node key from 32 bytes of env randomness. */
enum mp_err box_key_generate(const struct env *env, struct box_key **key_out);

/* The X25519 key that an Ed25519 seed (crypto/identity.h, IDENTITY_SEED_BYTES)
 * converts to with the standard conversion, so a node whose identity is an
 * Ed25519 key uses the same key in the DHT. Deterministic: tests and the
 * simulator seed it. */
enum mp_err box_key_from_ed25519_seed(const uint8_t seed[BOX_SEED_BYTES],
                                      struct box_key **key_out);

/* The same conversion for a node identity (crypto/identity.h): the node's
 * Ed25519 key and its DHT key are then one key pair, and nothing new needs
 * storing. id is borrowed for the call. */
struct identity;
enum mp_err box_key_from_identity(const struct identity *id, struct box_key **key_out);

/* Borrowed 32-byte X25519 public key, valid until box_key_free. */
const uint8_t *box_key_public(const struct box_key *key);

/* Wipes the secret and frees; accepts NULL. */
void box_key_free(struct box_key *key);

/* Node id of a node public key: BLAKE2b-256("merpati node id v1" || pk). */
void box_node_id(const uint8_t pk[BOX_PUBLIC_BYTES], uint8_t id_out[BOX_NODE_ID_BYTES]);

/* The network key of the public network (a fixed, published value). A private
 * cluster uses its 32-byte secret instead. */
void box_public_network_key(uint8_t key_out[BOX_NETWORK_KEY_BYTES]);

/* Shared key between key and peer_pk for one network:
 *   BLAKE2b-256(key = network_key, "merpati dht v1" || X25519(sk, peer) || min(pk) || max(pk))
 * Both sides derive the same value. MP_ERR_CRYPTO when peer_pk is a small-order
 * point (X25519 result all zero) or equals our own key; shared_out is then zeroed.
 * The caller wipes shared_out when done with it. */
enum mp_err box_shared(const struct box_key *key, const uint8_t peer_pk[BOX_PUBLIC_BYTES],
                       const uint8_t network_key[BOX_NETWORK_KEY_BYTES],
                       uint8_t shared_out[BOX_SHARED_BYTES]);

/* AEAD seal: out receives len + BOX_TAG_BYTES bytes (out may not overlap msg).
 * The nonce is the caller's (draw it with env_random); ad is authenticated. */
void box_seal(const uint8_t shared[BOX_SHARED_BYTES], const uint8_t nonce[BOX_NONCE_BYTES],
              const uint8_t *ad, size_t ad_len, const uint8_t *msg, size_t len, uint8_t *out);

/* AEAD open: ct of ct_len bytes (>= BOX_TAG_BYTES) into out (ct_len -
 * BOX_TAG_BYTES bytes). MP_ERR_CRYPTO when authentication fails (out is then
 * zeroed), MP_ERR_MALFORMED when ct_len is shorter than a tag. */
enum mp_err box_open(const uint8_t shared[BOX_SHARED_BYTES], const uint8_t nonce[BOX_NONCE_BYTES],
                     const uint8_t *ad, size_t ad_len, const uint8_t *ct, size_t ct_len,
                     uint8_t *out);

/* Constant-time equality of two len-byte buffers. */
bool box_equal(const void *a, const void *b, size_t len);

/* BLAKE2b of the concatenation of up to three parts (NULL parts are skipped),
 * keyed when key is not NULL. out_len 16..64, key_len <= 64. */
void box_hash(uint8_t *out, size_t out_len, const uint8_t *key, size_t key_len,
              const void *a, size_t a_len, const void *b, size_t b_len, const void *c,
              size_t c_len);

/* Wipe len bytes in a way the compiler cannot drop. */
void box_wipe(void *p, size_t len);

#endif
