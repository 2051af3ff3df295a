/*
 * cluster: a private cluster's secret, the keys derived from it, and its
 * join token (the text a member hands to a new member: "mpc1...").
 *
 * The secret is 32 random bytes. Nothing on the wire uses it directly: each
 * use gets its own key from HKDF-SHA256 with a named context (the DHT
 * network key, the Noise PSK, the Noise prologue's network id, the
 * fingerprint), so no value is reused across protocols and the fingerprint
 * a user reads out reveals nothing of the others. Formats and contexts:
 * docs/PROTOCOL.md "Cluster tokens".
 *
 * The token is Bech32m-style text (hrp "mpc"): version, cluster name,
 * secret, and up to CLUSTER_BOOTSTRAP_MAX bootstrap entries (node key and
 * IPv4 or IPv6 address with port). This module does no I/O: it neither
 * resolves host names nor stores anything.
 */
#ifndef MP_CRYPTO_CLUSTER_H
#define MP_CRYPTO_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "base/env.h"
#include "base/err.h"

#define CLUSTER_SECRET_BYTES     32
#define CLUSTER_KEY_BYTES        32 /* DHT network key and Noise PSK */
#define CLUSTER_NETWORK_ID_BYTES 16 /* the Noise prologue's network id */
/* A name: 1..CLUSTER_NAME_MAX of [a-z0-9._-], starting with a letter or digit. */
#define CLUSTER_NAME_MAX      32
#define CLUSTER_NAME_SIZE     (CLUSTER_NAME_MAX + 1)
#define CLUSTER_BOOTSTRAP_MAX 8
#define CLUSTER_TOKEN_VERSION 1
/* "xxxx-xxxx-xxxx-xxxx" (8 bytes in hex, grouped) and its NUL. */
#define CLUSTER_FINGERPRINT_SIZE 20
/* Bytes of the largest token payload: version, name length, name, secret,
 * entry count, entries of node key, family, IPv6 address, port. */
#define CLUSTER_TOKEN_BYTES_MAX                                                                    \
    (1 + 1 + CLUSTER_NAME_MAX + CLUSTER_SECRET_BYTES + 1 +                                         \
     CLUSTER_BOOTSTRAP_MAX * (32 + 1 + 16 + 2))
/* Characters of the longest token: "mpc1", the 5-bit groups, 6 checksum characters. */
#define CLUSTER_TOKEN_TEXT_MAX  (4 + (CLUSTER_TOKEN_BYTES_MAX * 8 + 4) / 5 + 6)
#define CLUSTER_TOKEN_TEXT_SIZE (CLUSTER_TOKEN_TEXT_MAX + 1)

struct cluster_entry {
    uint8_t node_key[32]; /* the node's X25519 DHT and link key */
    struct addr addr;     /* IPv4 or IPv6, port not 0 */
};

struct cluster_token {
    char name[CLUSTER_NAME_SIZE];
    uint8_t secret[CLUSTER_SECRET_BYTES];
    struct cluster_entry bootstrap[CLUSTER_BOOTSTRAP_MAX];
    unsigned bootstrap_count;
};

/* What a node uses of a cluster secret; wipe with cluster_keys_wipe. */
struct cluster_keys {
    uint8_t dht_key[CLUSTER_KEY_BYTES];           /* dht_config.network_key */
    uint8_t psk[CLUSTER_KEY_BYTES];               /* links_config.psk */
    uint8_t network_id[CLUSTER_NETWORK_ID_BYTES]; /* links_config.network_id */
    char fingerprint[CLUSTER_FINGERPRINT_SIZE];   /* shown to users; not secret */
};

/* True if name is 1..CLUSTER_NAME_MAX characters of [a-z0-9._-] and starts
 * with a letter or a digit (so it is safe in file names, logs and keys). */
bool cluster_name_valid(const char *name);

/* A fresh secret from env's randomness. */
void cluster_secret_generate(const struct env *env, uint8_t secret_out[CLUSTER_SECRET_BYTES]);

/* Every key a node needs, derived from the secret (pure function). */
void cluster_derive(const uint8_t secret[CLUSTER_SECRET_BYTES], struct cluster_keys *keys_out);
void cluster_keys_wipe(struct cluster_keys *keys);

/* Write token as text into text_out (text_size >= CLUSTER_TOKEN_TEXT_SIZE
 * always suffices). MP_ERR_INVAL for an invalid name, more than
 * CLUSTER_BOOTSTRAP_MAX entries, an entry that is not IPv4/IPv6 or has port
 * 0; MP_ERR_TOO_BIG when text_size is too small. */
enum mp_err cluster_token_encode(const struct cluster_token *token, char *text_out,
                                 size_t text_size);

/* Parse a NUL-terminated token (either case, not mixed; no spaces; at most
 * CLUSTER_TOKEN_TEXT_MAX + 1 characters are read). Errors:
 * MP_ERR_CLUSTER_TOKEN (not "mpc1...", bad length, alphabet or mixed case,
 * or a body that breaks the format), MP_ERR_CLUSTER_TOKEN_CHECKSUM,
 * MP_ERR_CLUSTER_TOKEN_VERSION; MP_ERR_INVAL for NULL. token_out is written
 * only on MP_OK; the caller wipes it (it holds the secret). */
enum mp_err cluster_token_decode(const char *text, struct cluster_token *token_out);

void cluster_token_wipe(struct cluster_token *token);

#endif
