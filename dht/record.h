/*
 * record: a signed DHT record as a plain value, independent of any wire codec.
 *
 * A record is published by its owner (an account's Ed25519 key), holds opaque
 * payload bytes with a kind tag (presence, prekey bundle), a sequence number
 * (higher replaces lower) and an absolute expiry in network seconds (see
 * dht_config.wall_offset_ms). The owner signs a fixed binary layout (see
 * docs/PROTOCOL.md "DHT records"), not the msgpack form, so a second codec can
 * carry the same signed record. A record lives at record_key(kind, owner).
 *
 * This module checks and signs records; storing them is dht/storage.h, the
 * msgpack form is dht/record_wire.h.
 */
#ifndef MP_DHT_RECORD_H
#define MP_DHT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/identity.h"

/* Largest payload: what fits a 1280-byte datagram with the record around it. */
#define RECORD_PAYLOAD_MAX 1000
/* Longest lifetime a record may claim from now (a day), so a stolen copy
 * cannot be kept alive for long after its owner stopped publishing. */
#define RECORD_TTL_MAX_S (24 * 3600)
/* Clock skew tolerated between owner and store. */
#define RECORD_SKEW_S 300
#define RECORD_KEY_BYTES 32
#define RECORD_OWNER_BYTES IDENTITY_PUBLIC_BYTES
#define RECORD_SIG_BYTES IDENTITY_SIGNATURE_BYTES

enum record_kind {
    RECORD_KIND_PRESENCE = 1, /* current addresses of an account's nodes, its mailboxes */
    RECORD_KIND_PREKEYS = 2,  /* prekey bundle */
    RECORD_KIND_NOTE = 3,     /* opaque bytes an operator publishes (dht.put: tools, tests) */
};

struct record {
    uint8_t kind; /* enum record_kind */
    uint8_t owner[RECORD_OWNER_BYTES];
    uint64_t seq;
    uint64_t expires_s; /* network time, seconds */
    uint16_t payload_len;
    uint8_t payload[RECORD_PAYLOAD_MAX];
    uint8_t sig[RECORD_SIG_BYTES];
};

/* True for the kinds this version knows. */
bool record_kind_valid(unsigned kind);

/* Where a record lives in the DHT: BLAKE2b-256("merpati record v1" || kind || owner). */
void record_key(unsigned kind, const uint8_t owner[RECORD_OWNER_BYTES],
                uint8_t key_out[RECORD_KEY_BYTES]);

/* Fill rec (owner from id, signature) from the given fields. MP_ERR_TOO_BIG
 * when len > RECORD_PAYLOAD_MAX, MP_ERR_INVAL for an unknown kind. */
enum mp_err record_make(const struct identity *id, unsigned kind, uint64_t seq,
                        uint64_t expires_s, const uint8_t *payload, size_t len,
                        struct record *rec_out);

/* Full check against network time now_s: known kind, size, signature by
 * owner, expiry in (now_s, now_s + RECORD_TTL_MAX_S + RECORD_SKEW_S].
 * MP_ERR_INVAL, MP_ERR_TOO_BIG, MP_ERR_RECORD_FORGED or MP_ERR_RECORD_EXPIRED. */
enum mp_err record_check(const struct record *rec, uint64_t now_s);

#endif
