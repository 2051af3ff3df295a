/*
 * dht_wire: the msgpack body of a DHT datagram (what is inside the AEAD
 * ciphertext), as a plain, bounded struct.
 *
 * This is one codec beside which another may later sit; the node logic in
 * dht.c only sees struct dht_msg. Layout and field rules: docs/PROTOCOL.md
 * "DHT datagrams". The datagram header and encryption are dht.c's.
 */
#ifndef MP_DHT_DHT_WIRE_H
#define MP_DHT_DHT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "base/err.h"
#include "dht/record.h"

#define DHT_WIRE_NODES_MAX 8 /* nodes in one answer (= DHT_K) */
#define DHT_WIRE_TOKEN_BYTES 16
#define DHT_WIRE_ID_BYTES 32
#define DHT_WIRE_PK_BYTES 32
/* Largest body: a datagram of 1280 bytes minus 57 header and 16 tag bytes. */
#define DHT_WIRE_BODY_MAX (1280 - 57 - 16)

enum dht_msg_type {
    DHT_MSG_PING = 0,
    DHT_MSG_FIND_NODE = 1,
    DHT_MSG_GET = 2,
    DHT_MSG_PUT = 3,
    DHT_MSG_PONG = 0x80,
    DHT_MSG_NODES = 0x81,
    DHT_MSG_GOT = 0x82,
    DHT_MSG_PUT_ACK = 0x83,
};

/* Answer of a put. */
enum dht_put_status {
    DHT_PUT_STORED = 0,
    DHT_PUT_STALE = 1,      /* the store holds this or a higher seq */
    DHT_PUT_BAD_TOKEN = 2,  /* token missing, expired or for another address */
    DHT_PUT_BAD_RECORD = 3, /* forged, expired or malformed record */
    DHT_PUT_FULL = 4,       /* the store is full */
};

struct dht_wire_node {
    uint8_t pk[DHT_WIRE_PK_BYTES];
    struct addr addr;
};

struct dht_msg {
    uint8_t type;                         /* enum dht_msg_type */
    uint32_t tid;                         /* transaction id, echoed in the answer */
    uint8_t target[DHT_WIRE_ID_BYTES];    /* FIND_NODE, GET */
    uint8_t token[DHT_WIRE_TOKEN_BYTES];  /* GOT, PUT */
    struct addr observed;                 /* PONG: where the requester was seen from */
    uint8_t status;                       /* PUT_ACK: enum dht_put_status */
    uint8_t node_count;                   /* NODES, GOT */
    struct dht_wire_node nodes[DHT_WIRE_NODES_MAX];
    bool has_record;                      /* PUT (always), GOT (when held) */
    struct record record;
};

/* True for a request type (PING, FIND_NODE, GET, PUT). */
bool dht_wire_is_request(unsigned type);

/* Encode m into out (cap bytes). MP_ERR_TOO_BIG when it does not fit,
 * MP_ERR_INVAL for an unknown type or an address that is not IPv4/IPv6. */
enum mp_err dht_wire_encode(const struct dht_msg *m, uint8_t *out, size_t cap, size_t *len_out);

/* Decode exactly len bytes (at most DHT_WIRE_BODY_MAX). MP_ERR_MALFORMED on
 * anything that is not a well-formed message of a known type, MP_ERR_TOO_BIG
 * when len exceeds the cap. The record, if any, is shape-checked only. */
enum mp_err dht_wire_decode(const uint8_t *data, size_t len, struct dht_msg *m_out);

#endif
