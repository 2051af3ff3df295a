/*
 * msg: the byte formats of messaging (docs/PROTOCOL.md, "Presence and prekey
 * records" and "Messages and delivery"): the presence payload a node
 * publishes in the DHT, the plaintext of one end-to-end message, and the
 * messages two nodes exchange on a link.
 *
 * Codecs only, no logic: decoders check every type, length and count and
 * fill plain owned structs; encoders refuse what the decoder would refuse.
 * The msgpack lives in msg_wire.c.
 */
#ifndef MP_NODE_MSG_H
#define MP_NODE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "base/buf.h"
#include "base/err.h"

#define MSG_ID_BYTES 16
#define MSG_KEY_BYTES 32
/* Longest text a message carries, in bytes of UTF-8. */
#define MSG_TEXT_MAX 65536
/* Message ids one receipt acknowledges. */
#define MSG_RECEIPT_IDS_MAX 64
/* Largest encoded plaintext (a full text plus framing). */
#define MSG_WIRE_MAX (MSG_TEXT_MAX + 128)
#define MSG_PRESENCE_ADDRS_MAX 4
#define MSG_PRESENCE_MAILBOXES_MAX 4
/* Largest link message: an envelope of ENVELOPE_WIRE_MAX (96 KiB) plus framing. */
#define MSG_LINK_ENVELOPE_MAX (96 * 1024)
#define MSG_LINK_WIRE_MAX (MSG_LINK_ENVELOPE_MAX + 16)

enum msg_kind {
    MSG_KIND_TEXT = 1,
    MSG_KIND_RECEIPT = 2,
    /* The receipt of every text in one envelope, named by its digest: for a
     * copy of one already answered with MSG_LINK_DELIVERED, whose ids the
     * node cannot read again. */
    MSG_KIND_ENVELOPE_RECEIPT = 3,
};

/* One end-to-end message's plaintext. */
struct msg {
    uint8_t id[MSG_ID_BYTES];
    uint64_t sent_at_ms; /* sender's Unix ms */
    uint64_t counter;    /* 1, 2, ... per (sender, recipient) */
    uint8_t kind;        /* enum msg_kind */
    char *text;          /* kind text: NUL-terminated UTF-8, owned; NULL otherwise */
    size_t text_len;
    unsigned receipt_count; /* kind receipt: 1..MSG_RECEIPT_IDS_MAX */
    uint8_t receipt_ids[MSG_RECEIPT_IDS_MAX][MSG_ID_BYTES];
    uint8_t digest[32]; /* kind envelope receipt: the envelope's BLAKE2b-256 digest */
};

/* Encode into out (initialised here, max MSG_WIRE_MAX; caller buf_frees).
 * MP_ERR_INVAL for a kind, text or receipt count the decoder would refuse. */
enum mp_err msg_encode(const struct msg *m, struct buf *out);

/* Decode; on MP_OK m_out owns its text (msg_clear frees it). Errors:
 * MP_ERR_WIRE_VERSION, MP_ERR_TOO_BIG, MP_ERR_MALFORMED (also text that is
 * not UTF-8 or holds NUL). */
enum mp_err msg_decode(const uint8_t *data, size_t len, struct msg *m_out);
void msg_clear(struct msg *m);

/* The id and kind of an encoded message, its body not checked (UTF-8,
 * receipt ids) nor copied, though the whole is unpacked: for bytes this node
 * made with msg_encode (its outbox), read often. Errors as msg_decode's for
 * what it reads; id_out may be written before an error. */
enum mp_err msg_peek(const uint8_t *data, size_t len, uint8_t id_out[MSG_ID_BYTES],
                     uint8_t *kind_out);

/* Most messages one plaintext carries: a bundle (below) of up to this many. */
#define MSG_BUNDLE_MAX 1024
/* Upper bounds of a bundle's framing, for callers filling one up to a size
 * (delivery: DELIVERY_BUNDLE_BYTES, so that it seals into one 64 KiB bucket;
 * a receiver takes up to MSG_WIRE_MAX): the whole, and each part on top of
 * its own bytes. */
#define MSG_BUNDLE_OVERHEAD 8
#define MSG_BUNDLE_PART_OVERHEAD 5

/* One message's bytes within a plaintext (points into it, or into the
 * caller's buffers when encoding). */
struct msg_part {
    const uint8_t *data;
    size_t len;
};

/* Encode count (2..MSG_BUNDLE_MAX) messages' msg_encode bytes as one bundle
 * plaintext into out (initialised here; the caller buf_frees). MP_ERR_INVAL
 * for a count out of range, MP_ERR_TOO_BIG over MSG_WIRE_MAX. The parts are
 * not decoded here: the receiver checks each with msg_decode. */
enum mp_err msg_bundle_encode(const struct msg_part *parts, size_t count, struct buf *out);

/* The messages a plaintext carries, in order: the plaintext itself if it is
 * one message (version 1), the parts of a bundle (version 2; 2..
 * MSG_BUNDLE_MAX). parts_out (room for MSG_BUNDLE_MAX) points into data;
 * each part is still to be checked with msg_decode. Errors:
 * MP_ERR_WIRE_VERSION, MP_ERR_TOO_BIG, MP_ERR_MALFORMED. */
enum mp_err msg_split(const uint8_t *data, size_t len, struct msg_part *parts_out,
                      size_t *count_out);

/* What a presence record says about an account's node. */
struct msg_presence {
    uint8_t node_key[MSG_KEY_BYTES]; /* X25519: Noise static key and DHT key */
    unsigned addr_count;             /* 0..MSG_PRESENCE_ADDRS_MAX */
    struct addr addrs[MSG_PRESENCE_ADDRS_MAX];
    unsigned mailbox_count; /* 0..MSG_PRESENCE_MAILBOXES_MAX */
    uint8_t mailboxes[MSG_PRESENCE_MAILBOXES_MAX][MSG_KEY_BYTES]; /* their node keys */
    struct addr mailbox_addrs[MSG_PRESENCE_MAILBOXES_MAX];
};

/* Encode into out (cap bytes, at most the DHT's record payload). */
enum mp_err msg_presence_encode(const struct msg_presence *p, uint8_t *out, size_t cap,
                                size_t *len_out);
enum mp_err msg_presence_decode(const uint8_t *data, size_t len, struct msg_presence *p_out);

enum msg_link_type {
    MSG_LINK_ENVELOPE = 1,  /* an envelope for the receiving node's account */
    MSG_LINK_ACK = 2,       /* the envelope with this digest is stored */
    /* Mailboxes (docs/PROTOCOL.md, "Mailboxes"). */
    MSG_LINK_MB_STORE = 3,  /* hold this envelope for its mailbox */
    MSG_LINK_MB_STORED = 4, /* digest, status, expiry: the answer to a store */
    MSG_LINK_MB_HELLO = 5,  /* I want my mail: send a challenge */
    MSG_LINK_MB_CHALLENGE = 6, /* nonce */
    MSG_LINK_MB_FETCH = 7,  /* account, signature over the challenge */
    MSG_LINK_MB_MAIL = 8,   /* one held envelope for the proven account */
    MSG_LINK_MB_TAKEN = 9,  /* digests stored by the fetcher: delete them */
    MSG_LINK_MB_END = 10,   /* status: no more mail for now, or refused */
    /* An ack that is also the delivery receipt of the envelope's texts. */
    MSG_LINK_DELIVERED = 11,
    MSG_LINK_HELLO = 12,    /* features: what the sending node understands */
    MSG_LINK_TYPE_MAX = 12,
};

/* Features a node announces in its hello (MSG_LINK_HELLO), bit by bit;
 * bits it does not know are ignored. */
enum msg_feature {
    MSG_FEATURE_DELIVERED = 1u << 0, /* takes MSG_LINK_DELIVERED for its envelopes */
};

/* The answer to a store (MSG_LINK_MB_STORED). */
enum msg_mb_status {
    MSG_MB_HELD = 0,    /* stored (synced), or held already */
    MSG_MB_FULL = 1,    /* over the mailbox's or the node's quota */
    MSG_MB_RATE = 2,    /* this sending node is over its rate */
    MSG_MB_REFUSED = 3, /* not a storable envelope, or this node holds no mail */
    MSG_MB_STATUS_MAX = 3,
};

/* Why a fetch ended (MSG_LINK_MB_END). */
enum msg_mb_end {
    MSG_MB_END_DONE = 0,    /* everything held was handed out */
    MSG_MB_END_REFUSED = 1, /* no valid proof: wrong key, stale or replayed challenge */
    MSG_MB_END_MAX = 1,
};

#define MSG_MB_NONCE_BYTES 32
#define MSG_MB_SIG_BYTES 64
/* Digests one MSG_LINK_MB_TAKEN carries. */
#define MSG_MB_TAKEN_MAX 128

struct msg_link {
    uint8_t type;        /* enum msg_link_type */
    uint8_t digest[32];  /* ack, stored */
    struct buf envelope; /* envelope, store, mail: owned bytes (msg_link_clear frees) */
    uint8_t status;      /* stored: enum msg_mb_status; end: enum msg_mb_end */
    uint32_t features;   /* hello: enum msg_feature bits */
    uint64_t expires_s;  /* stored: Unix s when the mailbox drops it (0 when not held);
                            store: drop it by then at the latest (0: the mailbox's TTL) */
    uint8_t nonce[MSG_MB_NONCE_BYTES];       /* challenge */
    uint8_t account[MSG_KEY_BYTES];          /* fetch */
    uint8_t sig[MSG_MB_SIG_BYTES];           /* fetch */
    unsigned digest_count;                   /* taken: 1..MSG_MB_TAKEN_MAX */
    uint8_t digests[MSG_MB_TAKEN_MAX][32];   /* taken */
};

/* Encode a link message into out (initialised here; caller buf_frees). */
enum mp_err msg_link_encode(const struct msg_link *l, struct buf *out);
/* Decode; the envelope is copied. MP_ERR_WIRE_VERSION for an unknown type. */
enum mp_err msg_link_decode(const uint8_t *data, size_t len, struct msg_link *l_out);
void msg_link_clear(struct msg_link *l);

#endif
