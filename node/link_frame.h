/*
 * link_frame: the plaintext frames carried inside a link's Noise transport
 * messages, the reassembly of fragmented link messages, and the credit
 * window on both ends of one link (docs/PROTOCOL.md, "Link frames").
 *
 * Pure bookkeeping on bytes: no I/O, no crypto, no clock, so the decoder can
 * be fuzzed on its own (tests/fuzz/fuzz_link_frame.c). node/link.c moves the
 * bytes, decrypts them, and calls in here for every frame.
 *
 * A frame is one Noise transport plaintext (at most LINK_FRAME_MAX bytes):
 *   DATA   01 | total length (u32 BE) | first fragment
 *   MORE   02 | next fragment (1 byte or more)
 *   CREDIT 03 | messages (u32 BE) | bytes (u32 BE)
 * A link message of up to LINK_MESSAGE_MAX bytes is one DATA frame followed
 * by MORE frames until `total length` bytes have arrived.
 */
#ifndef MP_NODE_LINK_FRAME_H
#define MP_NODE_LINK_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/noise.h"

/* Largest link message (a reassembled payload handed to message_cb). */
#define LINK_MESSAGE_MAX (256u * 1024u)
/* Largest frame: one Noise transport plaintext. */
#define LINK_FRAME_MAX NOISE_MAX_TRANSPORT_PAYLOAD
#define LINK_FRAME_DATA_HEADER   5u
#define LINK_FRAME_MORE_HEADER   1u
#define LINK_FRAME_CREDIT_BYTES  9u
/* Payload bytes that fit in a DATA or MORE frame. */
#define LINK_FRAME_DATA_ROOM (LINK_FRAME_MAX - LINK_FRAME_DATA_HEADER)
#define LINK_FRAME_MORE_ROOM (LINK_FRAME_MAX - LINK_FRAME_MORE_HEADER)

/* The window each end grants the other when a link opens (implicitly: no
 * frame carries it) and never exceeds: messages started but not yet
 * delivered to the receiver's message_cb, and their payload bytes. The
 * byte window must hold the largest message or a link could stall. */
#define LINK_WINDOW_MSGS  64u
#define LINK_WINDOW_BYTES (1024u * 1024u)
/* The receiver returns credit once this much has been delivered (a quarter
 * of the window: a sender blocked on credit always has at least this much
 * outstanding, since a message is at most a quarter of the byte window). */
#define LINK_GRANT_MSGS  (LINK_WINDOW_MSGS / 4u)
#define LINK_GRANT_BYTES (LINK_WINDOW_BYTES / 4u)

enum link_frame_type {
    LINK_FRAME_DATA = 1,
    LINK_FRAME_MORE = 2,
    LINK_FRAME_CREDIT = 3,
};

/* Why a frame broke the protocol; the link closes on any of them. */
enum link_violation {
    LINK_VIOLATION_NONE = 0,
    LINK_VIOLATION_MALFORMED, /* empty, unknown type, wrong size, fragment past its total */
    LINK_VIOLATION_OVERSIZE,  /* a message longer than LINK_MESSAGE_MAX */
    LINK_VIOLATION_SEQUENCE,  /* MORE without DATA, or DATA before the last message ended */
    LINK_VIOLATION_CREDIT,    /* more than we granted, or a grant past the window */
};

/* What one frame produced. */
enum link_event {
    LINK_EVENT_NONE,    /* a fragment was stored; the message is not complete */
    LINK_EVENT_MESSAGE, /* msg/len hold a complete message */
    LINK_EVENT_CREDIT,  /* the peer granted more credit; the sender may send again */
};

/* Both directions of one link's flow control, plus the receiver's
 * reassembly buffer (at most LINK_MESSAGE_MAX bytes, allocated per
 * fragmented message). A plain value: link_flow_init, link_flow_free. */
struct link_flow {
    /* receiving */
    uint8_t *buf;           /* the message being reassembled, `total` bytes */
    size_t total, have;     /* announced length, bytes received */
    bool in_message;        /* a DATA frame started a message not yet complete */
    uint32_t recv_msgs;     /* what the peer may still start: granted, unused */
    uint32_t recv_bytes;
    uint32_t return_msgs;   /* delivered since the last CREDIT we sent */
    uint32_t return_bytes;
    /* sending */
    uint32_t send_msgs;     /* what we may still start */
    uint32_t send_bytes;
};

void link_flow_init(struct link_flow *f);

/* Wipes and frees the reassembly buffer; f can be initialized again. */
void link_flow_free(struct link_flow *f);

/* Takes one decrypted frame. On LINK_EVENT_MESSAGE, *msg_out and *len_out
 * point into the frame or into f (valid until the next call); the caller
 * delivers it and then calls link_flow_delivered. Returns the violation
 * (the link must close) or LINK_VIOLATION_NONE with *event_out set. */
enum link_violation link_flow_input(struct link_flow *f, const uint8_t *frame, size_t len,
                                    enum link_event *event_out, const uint8_t **msg_out,
                                    size_t *len_out);

/* The message of len bytes that link_flow_input returned was delivered:
 * its credit is owed back to the sender. */
void link_flow_delivered(struct link_flow *f, size_t len);

/* If enough credit is owed back, writes a CREDIT frame into out, counts it
 * as granted, and returns true. */
bool link_flow_grant(struct link_flow *f, uint8_t out[LINK_FRAME_CREDIT_BYTES]);

/* True if a message of len bytes may be started now. */
bool link_flow_can_send(const struct link_flow *f, size_t len);

/* A message of len bytes was started (link_flow_can_send was true). */
void link_flow_sent(struct link_flow *f, size_t len);

/* Bytes on the TCP stream for a message of len bytes (<= LINK_MESSAGE_MAX):
 * its frames, each with a 2-byte length and a Noise tag. */
size_t link_frame_wire_size(size_t len);

/* Writes the header of the frame that carries payload bytes [offset,
 * offset + chunk) of a message of total bytes into out (at most
 * LINK_FRAME_DATA_HEADER bytes) and returns the header length; *chunk_out
 * gets how many payload bytes this frame carries. */
size_t link_frame_header(size_t total, size_t offset, uint8_t out[LINK_FRAME_DATA_HEADER],
                         size_t *chunk_out);

#endif
