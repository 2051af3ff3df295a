/*
 * link: Noise-encrypted TCP links between nodes, carrying opaque messages.
 *
 * A `struct links` keeps at most one link per peer (a peer is its static
 * X25519 key). links_send queues a message and dials the peer if no link is
 * up (Noise IK, or IKpsk1 in a private cluster); links_accept takes the
 * daemon's incoming TCP connections and answers IK / IKpsk1 handshakes
 * (and XX, from dialers who do not know our key, on public networks).
 * Messages (up to LINK_MESSAGE_MAX bytes) arrive in order per link through
 * message_cb. The frame format, fragmentation and credit window are in
 * node/link_frame.h and docs/PROTOCOL.md "Link frames".
 *
 * What links do NOT do: understand messages, store them, acknowledge them,
 * or retry them. A message is delivered at most once and possibly never: a
 * link may drop whatever it has queued (link_state_cb(down) says so) and a
 * message already written may die with its TCP connection. The caller keeps
 * every message in its store until its own protocol acknowledges it, and
 * resends after a down or a timeout.
 *
 * Memory is bounded: per peer at most LINK_QUEUE_MSGS messages and
 * LINK_QUEUE_BYTES bytes wait to be sent (LINK_QUEUE_TOTAL_BYTES over all
 * peers), plus what was written but not yet taken by the kernel, which
 * stays under one credit window (LINK_WINDOW_MSGS messages,
 * LINK_WINDOW_BYTES bytes) and under 1.5 MiB whatever the peer does (a peer
 * that does not read gets no more data and no more credit); on the
 * receiving side one read buffer (64 KiB) and one message being reassembled
 * (at most LINK_MESSAGE_MAX) per link. A full queue refuses with
 * MP_ERR_BUSY, and writable_cb says when to try again.
 *
 * Timers: a handshake must finish within handshake_timeout_ms (10 s); a link
 * with no frame in either direction for idle_timeout_ms (5 min) closes (no
 * keep-alive: the next links_send dials again). After a failed dial the peer
 * is in backoff: 1 s, doubling per consecutive failure up to 60 s, during
 * which links_send returns MP_ERR_UNAVAILABLE at once. Caps: LINK_MAX_LINKS
 * links up (incoming ones leave LINK_RESERVED_OUT for our dials) and
 * LINK_MAX_HANDSHAKES handshakes in progress each way.
 *
 * Simultaneous dials: when both ends dial each other, both keep the TCP
 * connection dialed by the smaller static key (memcmp order); the other one
 * is retired: no new message goes on it, and it is read until the peer's
 * end of stream, so what was already sent on it still arrives.
 */
#ifndef MP_NODE_LINK_H
#define MP_NODE_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/addr.h"
#include "base/env.h"
#include "base/err.h"
#include "node/link_frame.h"

#define LINK_KEY_BYTES 32

#define LINK_QUEUE_MSGS        64u                 /* per peer, waiting to be sent */
#define LINK_QUEUE_BYTES       (1024u * 1024u)     /* per peer */
#define LINK_QUEUE_TOTAL_BYTES (32u * 1024u * 1024u) /* all peers together */
#define LINK_MAX_LINKS         256u
#define LINK_MAX_HANDSHAKES    64u                 /* incoming, and our dials, each */
#define LINK_RESERVED_OUT      32u                 /* of LINK_MAX_LINKS, for our dials only */
#define LINK_HANDSHAKE_TIMEOUT_MS 10000u
#define LINK_IDLE_TIMEOUT_MS      (5u * 60u * 1000u)
#define LINK_BACKOFF_MIN_MS       1000u
#define LINK_BACKOFF_MAX_MS       60000u
/* Peers remembered for backoff; when full the entry that expires first is reused. */
#define LINK_BACKOFF_SLOTS        256u

/* Why a handshake failed or a link closed (counted in links_stats). */
enum link_reason {
    LINK_REASON_CONNECT,   /* TCP connect failed */
    LINK_REASON_TIMEOUT,   /* handshake took longer than the timeout */
    LINK_REASON_EOF,       /* the peer closed the connection */
    LINK_REASON_RESET,     /* read or write error (reset, broken pipe) */
    LINK_REASON_PREAMBLE,  /* not a Merpati link, another link version or pattern */
    LINK_REASON_PEER_KEY,  /* Noise: wrong key dialed, or not the node dialed */
    LINK_REASON_PSK,       /* Noise: wrong private-cluster PSK */
    LINK_REASON_PROLOGUE,  /* Noise: other protocol version or network id */
    LINK_REASON_DECRYPT,   /* a message failed authentication */
    LINK_REASON_MALFORMED, /* a frame or handshake message broke the format */
    LINK_REASON_OVERSIZE,  /* a message announced over LINK_MESSAGE_MAX */
    LINK_REASON_SEQUENCE,  /* fragments out of order */
    LINK_REASON_CREDIT,    /* the peer sent or granted past the credit window */
    LINK_REASON_LIMIT,     /* over LINK_MAX_LINKS or LINK_MAX_HANDSHAKES */
    LINK_REASON_IDLE,      /* no traffic for idle_timeout_ms */
    LINK_REASON_DUPLICATE, /* replaced by another link to the same peer */
    LINK_REASON_LOCAL,     /* links_close */
    LINK_REASON_OTHER,     /* out of memory, nonce exhausted, low-order key, ... */
    LINK_REASON_COUNT
};

/* Why links_send did not queue a message, or a queued message was dropped. */
enum link_drop {
    LINK_DROP_QUEUE_FULL,  /* MP_ERR_BUSY returned */
    LINK_DROP_UNAVAILABLE, /* MP_ERR_UNAVAILABLE returned: backoff, caps, closing */
    LINK_DROP_LINK_DOWN,   /* queued, then dropped when the link went down */
    LINK_DROP_COUNT
};

struct links_stats {
    unsigned links_up;
    unsigned handshakes_pending;
    uint64_t dials;                /* outgoing connections started */
    uint64_t accepted;             /* incoming connections taken */
    uint64_t refused;              /* incoming connections closed without a link:
                                      over a cap or failed handshake */
    uint64_t msgs_out, bytes_out;  /* messages written to links (payload bytes) */
    uint64_t msgs_in, bytes_in;    /* messages delivered to message_cb */
    uint64_t handshake_failed[LINK_REASON_COUNT];
    uint64_t closed[LINK_REASON_COUNT]; /* links that were up, by why they closed */
    uint64_t dropped[LINK_DROP_COUNT];  /* messages */
};

struct links_config {
    const struct env *env; /* randomness for Noise ephemerals; borrowed for the life of links */
    const uint8_t *static_secret; /* this node's X25519 key pair, LINK_KEY_BYTES each; copied */
    const uint8_t *static_public;
    unsigned version;             /* Noise prologue: protocol version and network id */
    const uint8_t *network_id;    /* 1..NOISE_NETWORK_ID_MAX bytes; copied */
    size_t network_id_len;
    const uint8_t *psk;           /* NOISE_PSK_BYTES for a private cluster, else NULL; copied */

    /* A complete message from peer_pk; msg is valid during the call only.
     * Called in order per link. May call any links_ function. */
    void (*message_cb)(void *arg, const uint8_t peer_pk[LINK_KEY_BYTES], const uint8_t *msg,
                       size_t len);
    /* up: a link to peer_pk can carry messages. down: the link closed (and
     * was not replaced by another to the same peer) or a dial failed; every
     * message still queued for the peer was dropped, and messages written
     * shortly before may be lost too. Every up is followed by a down, and
     * every dial that never came up ends in one. Not called once
     * links_close has begun. */
    void (*link_state_cb)(void *arg, const uint8_t peer_pk[LINK_KEY_BYTES], bool up);
    /* Optional: a peer whose queue refused a message (MP_ERR_BUSY) has room
     * again (its queue is at most half full). If its link goes down instead,
     * link_state_cb(down) comes and no writable_cb: sending again dials. */
    void (*writable_cb)(void *arg, const uint8_t peer_pk[LINK_KEY_BYTES]);
    void *arg;

    /* 0 means the default (LINK_HANDSHAKE_TIMEOUT_MS, LINK_IDLE_TIMEOUT_MS). */
    uint32_t handshake_timeout_ms;
    uint32_t idle_timeout_ms;
};

struct links;

/* Creates the link manager on loop. MP_ERR_INVAL if a key, the network id
 * or the message callback is missing. */
enum mp_err links_new(uv_loop_t *loop, const struct links_config *cfg, struct links **links_out);

/* Takes one pending connection from server (call it from the server's
 * connection callback with status 0). The connection becomes a link if the
 * peer completes a handshake; otherwise it is closed and counted in
 * `refused`. Returns MP_OK when the connection was taken for a handshake,
 * MP_ERR_BUSY when it was refused at once (too many handshakes, closing),
 * MP_ERR_IO if it could not be accepted. */
enum mp_err links_accept(struct links *links, uv_stream_t *server);

/* Queues a copy of msg (len <= LINK_MESSAGE_MAX) for peer_pk and dials addr
 * if no link to the peer is up or being set up (addr is used only then).
 * Returns MP_OK (queued; not a promise of delivery), MP_ERR_BUSY (the
 * peer's queue or the total is full: keep the message and retry after
 * writable_cb), MP_ERR_UNAVAILABLE (peer in backoff after a failed dial,
 * link or handshake cap reached, or closing; see links_retry_ms),
 * MP_ERR_TOO_BIG, MP_ERR_INVAL (our own key), or MP_ERR_NET_ADDR (addr
 * cannot be dialed). */
enum mp_err links_send(struct links *links, const uint8_t peer_pk[LINK_KEY_BYTES],
                       const struct addr *addr, const uint8_t *msg, size_t len);

/* Hold (true) queued messages instead of writing each at once, then (false)
 * write what was queued meanwhile, a peer's messages together in one write:
 * a caller that sends several messages in one go (an ack, then the envelope
 * that follows it) has them leave in one segment, so the peer reads them in
 * one turn. Holds nest; writes that free room still send while held. */
void links_hold(struct links *links, bool hold);

/* Milliseconds until peer_pk may be dialed again (0: now). */
uint64_t links_retry_ms(const struct links *links, const uint8_t peer_pk[LINK_KEY_BYTES]);

/* True if a link to peer_pk is up. */
bool links_is_up(const struct links *links, const uint8_t peer_pk[LINK_KEY_BYTES]);

/* Stops (paused) or resumes reading from peer_pk's link: a caller that
 * cannot take messages now (its store is behind) pushes back on the peer,
 * whose credit then runs out. Returns MP_ERR_NOT_FOUND without a link. */
enum mp_err links_pause(struct links *links, const uint8_t peer_pk[LINK_KEY_BYTES], bool paused);

void links_stats(const struct links *links, struct links_stats *stats_out);

/* "connect", "timeout", ... for a reason; "queue_full", ... for drops. */
const char *link_reason_name(enum link_reason reason);
const char *link_drop_name(enum link_drop drop);

/* Closes every link and frees links once all its handles are closed, then
 * calls closed_cb (may be NULL), possibly before this returns when no
 * connection was open. Queued messages are dropped without callbacks.
 * Accepts NULL (then calls closed_cb at once). */
void links_close(struct links *links, void (*closed_cb)(void *arg), void *arg);

#endif
