/*
 * outbox: the records delivery keeps in the store, as plain structs with
 * their codecs (outbox_wire.c): a message waiting to go out (or gone, kept
 * as history), its state row once it has been sealed or moved on from the
 * state it was written with, and an event of the node's event log (a
 * message received, a message sent or delivered), which `inbox`, `history`
 * and `listen` read.
 * Layouts: docs/PROTOCOL.md, "Store layout: messages".
 */
#ifndef MP_NODE_OUTBOX_H
#define MP_NODE_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "node/msg.h"

/* Key prefixes of entries (outbox and outbox sealed families), of the
 * work list (outbox index family), each + the seq as 8 bytes big-endian, and
 * of events (inbox family) + the cursor as 8 bytes big-endian; the store's
 * format migrations read the first two too. */
#define OUTBOX_KEY_ENTRY 'o'
#define OUTBOX_KEY_PENDING 'q'
#define OUTBOX_KEY_EVENT 'e'

enum outbox_state {
    OUTBOX_QUEUED = 1,    /* not yet acked by the recipient's node */
    OUTBOX_SENT = 2,      /* stored by the recipient's node */
    OUTBOX_DELIVERED = 3, /* in the recipient's inbox: its node's "delivered" ack or receipt */
    OUTBOX_MAILBOX = 4,   /* held by at least one of the recipient's mailboxes */
    OUTBOX_EXPIRED = 5,   /* no receipt before the mailboxes dropped it: not delivered */
    OUTBOX_STATE_MAX = 5,
};

struct outbox_entry {
    uint8_t to[MSG_KEY_BYTES]; /* recipient account */
    uint8_t state;             /* enum outbox_state */
    uint64_t created_ms;       /* Unix ms */
    struct buf plaintext;      /* msg_encode bytes (id, counter, kind, body) */
    /* Sealed once, then resent as is: the entry is the head of an envelope,
     * kept apart from it (STORE_CF_OUTBOX_SEALED, under the head's seq)
     * while queued or held by mailboxes, so that the entry itself is
     * written once and never again as its envelope comes and goes. */
    bool sealed;
    /* That envelope, in memory only (the pump reads it in with the entry):
     * empty before sealing, in a rider (its head holds it), and once sent,
     * delivered or expired. Entries of version 3 and older held it within
     * (read, and then sealed; never written: the store's migration to
     * format 3 moves them apart). */
    struct buf envelope;
    uint64_t expires_ms;       /* held by mailboxes until (Unix ms); 0: not held */
    /* The other entries sealed in this one's envelope (a bundle), by seq:
     * they travel, are acked and held with it. Owned; NULL when none. */
    uint64_t *riders;
    size_t rider_count; /* 0..MSG_BUNDLE_MAX - 1 */
};

enum outbox_event_type {
    OUTBOX_EVENT_MESSAGE = 1,   /* a message arrived (plaintext holds it) */
    OUTBOX_EVENT_SENT = 2,      /* our message reached the recipient's node */
    OUTBOX_EVENT_DELIVERED = 3, /* it is in the recipient's inbox ("delivered" ack or receipt) */
    OUTBOX_EVENT_MAILBOX = 4,   /* our message waits in the recipient's mailboxes */
    OUTBOX_EVENT_EXPIRED = 5,   /* our message expired there: not delivered */
    OUTBOX_EVENT_MAX = 5,
};

struct outbox_event {
    uint8_t type;                /* enum outbox_event_type */
    uint64_t at_ms;              /* Unix ms, local */
    uint8_t peer[MSG_KEY_BYTES]; /* sender (message) or recipient (sent, delivered) */
    uint8_t id[MSG_ID_BYTES];    /* the message */
    bool request;                /* a message from someone not in contacts */
    struct buf plaintext;        /* message events: msg_encode bytes; empty otherwise */
};

/* Encoders initialise out (caller buf_frees); decoders own their buffers
 * (outbox_*_clear). Errors: MP_ERR_MALFORMED, MP_ERR_WIRE_VERSION, MP_ERR_TOO_BIG.
 * outbox_entry_encode never writes the envelope, and refuses (MP_ERR_INVAL)
 * an entry holding one, or riders, it does not mark sealed (only a head has
 * riders; that envelope would be lost); decoding such riders is MP_ERR_MALFORMED. */
enum mp_err outbox_entry_encode(const struct outbox_entry *e, struct buf *out);
enum mp_err outbox_entry_decode(const uint8_t *data, size_t len, struct outbox_entry *e_out);
void outbox_entry_clear(struct outbox_entry *e);

/* An entry's state row: what changes of an entry after it is written (its
 * state and expiry, and once sealed the seal and its riders) kept apart
 * from it, so that the entry is written once and a move writes these few
 * bytes, not the message again (docs/PROTOCOL.md: u8 version 2, u8 state,
 * u64 big-endian expires ms, u8 flags (1: sealed), u16 big-endian rider
 * count, that many u64 big-endian seqs). outbox_state_encode writes
 * version 2, its length in *len_out; MP_ERR_INVAL for a state or a rider
 * count out of range, as outbox_entry_encode, or riders without the seal.
 * outbox_state_decode sets e's state and expires_ms from a row, and from a
 * version 2 row its seal and riders too (version 1 rows had only the first
 * two; a row with riders and no seal is malformed); on an error
 * (MP_ERR_MALFORMED, MP_ERR_WIRE_VERSION, MP_ERR_NOMEM) e is unchanged. */
#define OUTBOX_STATE_FIXED 13 /* version, state, expiry, flags, rider count */
#define OUTBOX_STATE_ROW_MAX (OUTBOX_STATE_FIXED + 8 * (MSG_BUNDLE_MAX - 1))
enum mp_err outbox_state_encode(const struct outbox_entry *e,
                                uint8_t out[OUTBOX_STATE_ROW_MAX], size_t *len_out);
enum mp_err outbox_state_decode(const uint8_t *data, size_t len, struct outbox_entry *e);

enum mp_err outbox_event_encode(const struct outbox_event *ev, struct buf *out);
enum mp_err outbox_event_decode(const uint8_t *data, size_t len, struct outbox_event *ev_out);
void outbox_event_clear(struct outbox_event *ev);

#endif
