/*
 * delivery: end-to-end messages between accounts, with nothing lost.
 *
 * `send` writes the message to the outbox (synced) before it answers; a pump
 * then finds the recipient's node (presence record), opens a session (prekey
 * record) when there is none, seals the message once, with what else waits
 * for that recipient, as a bundle (one envelope for up to MSG_BUNDLE_MAX
 * messages; envelope and session state stored together, synced) and sends
 * it on a link, again and again
 * after silence or a broken link, until the recipient's node acks that it
 * stored it. When the recipient's node cannot be reached, the same envelope
 * goes to its mailboxes (node/mailbox.h finds them), in order, until they
 * hold it; the message then waits there until it is delivered, or expires
 * with them. The receiving side opens envelopes (from links, or fetched
 * from our own mailboxes), drops duplicates by (sender, message id), stores
 * message and session state in one write made durable by the loop turn's
 * sync, then acks (or tells the mailbox it took them), and receipts
 * contacts' texts: by a `delivered` ack on a direct link, else by receipt
 * messages. Every step is appended to an event log
 * (inbox, history, listen read it). Formats: docs/PROTOCOL.md, "Messages and
 * delivery", "Mailboxes" and "Store layout".
 *
 * What it is not: it keeps no message in memory (the store is the queue:
 * a slow peer grows the store, not the heap), and it decides nothing about
 * who may write to us: the classify callback (contacts) does.
 */
#ifndef MP_NODE_DELIVERY_H
#define MP_NODE_DELIVERY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/env.h"
#include "crypto/envelope.h"
#include "crypto/identity.h"
#include "node/control.h"
#include "node/link.h"
#include "node/mailbox.h"
#include "node/msg.h"
#include "node/overlay.h"
#include "node/sessions.h"
#include "node/store.h"

/* Peers whose presence and link state are tracked at once (LRU beyond). */
#define DELIVERY_PEERS_MAX 256
/* Entries worked on (looked up, sent) per pump pass before yielding. */
#define DELIVERY_PUMP_BATCH 512
/* Messages to one peer sealed together, under one write, as bundles
 * (docs/PROTOCOL.md, "Bundles"): at most this many, in at most
 * DELIVERY_SEAL_BUNDLES bundles (so at most that many plaintexts of a
 * bundle's size, or one long message each, in memory at once). */
#define DELIVERY_SEAL_GROUP MSG_BUNDLE_MAX
#define DELIVERY_SEAL_BUNDLES 4
/* A bundle's plaintext is at most this, so that a full bundle, sealed and
 * padded, fills a 64 KiB envelope bucket instead of spilling into the next
 * (80 KiB, a fifth of it padding, encrypted, hashed, stored and sent for
 * nothing). A message longer than this goes alone. */
#define DELIVERY_BUNDLE_BYTES ENVELOPE_PLAINTEXT_FITS(4 * ENVELOPE_PAD_STEP)
/* Messages sealed per pass before yielding to the loop. */
#define DELIVERY_SEAL_BATCH (4 * DELIVERY_SEAL_GROUP)
/* A recipient's mailbox nodes are looked up again after this long. */
#define DELIVERY_MAILBOX_REFRESH_MS (10 * 60 * 1000)
/* After a mailbox refused (full, rate): wait, doubling within these. */
#define DELIVERY_MAILBOX_RETRY_MIN_MS 5000
#define DELIVERY_MAILBOX_RETRY_MAX_MS (10 * 60 * 1000)
/* Without an ack this long after the last send, a peer's unacked messages are sent again. */
#define DELIVERY_ACK_TIMEOUT_MS 10000
/* Retry delays after a failure (no presence, link refused): doubling within these. */
#define DELIVERY_RETRY_MIN_MS 1000
#define DELIVERY_RETRY_MAX_MS (30 * 1000)
/* A presence record is looked up again after this long. */
#define DELIVERY_PRESENCE_MAX_AGE_MS (10 * 60 * 1000)
/* How often a peer whose node key changed is looked at again (trusted yet?). */
#define DELIVERY_KEY_RECHECK_MS 5000
/* Open `listen` subscriptions, and events pushed to one per loop turn. */
#define DELIVERY_SUBSCRIBERS_MAX 16
#define DELIVERY_FEED_BATCH 256
/* Acks and events waiting for one sync (a loop turn's worth), at most. */
#define DELIVERY_SYNC_GROUP 1024
/* Outbox seqs a seq lease takes past the next one (docs/PROTOCOL.md,
 * "Sending ahead of the sync"): after a crash the next seq is at least the
 * lease, so an id that left ahead of its sync is never given again. */
#define DELIVERY_SEQ_LEASE 65536
/* Acks waiting for room on their links, all links together. */
#define DELIVERY_ACKS_WAITING_MAX 4096
/* Outgoing messages found damaged that are remembered, so that each counts
 * once and the walks step over it unread; past that, one is read and
 * counted again on every pass that meets it. */
#define DELIVERY_DAMAGED_MAX 4096
/* A subscriber with more unread output than this is paused, and looked at
 * again after DELIVERY_FEED_RETRY_MS (it is cut off only at CONTROL_OUTPUT_MAX). */
#define DELIVERY_FEED_BACKLOG_MAX (256 * 1024)
#define DELIVERY_FEED_RETRY_MS 20
/* Networks messages may travel on at once: index 0 is the config's overlay
 * and links (the primary network), 1 .. DELIVERY_NETS_MAX - 1 are added
 * with delivery_set_net. */
#define DELIVERY_NETS_MAX 10

/* What to do with a message from `account` arriving from node `node_key`. */
enum delivery_verdict {
    DELIVERY_DELIVER,     /* a contact: store it, receipt it (ack or message) */
    DELIVERY_REQUEST,     /* not a contact: store it as a request, no receipt */
    DELIVERY_DROP,        /* blocked: ack it so it is not resent, store nothing */
    DELIVERY_KEY_CHANGED, /* a contact's node key changed: refuse until trusted */
};

/* One more network: its DHT, its links and the addresses published there. */
struct delivery_net {
    struct overlay *overlay;
    struct links *links;
    struct addr addrs[MSG_PRESENCE_ADDRS_MAX];
    unsigned addr_count;
};

struct delivery_config {
    uv_loop_t *loop;
    const struct env *env;
    struct store *store;
    struct sessions *sessions;
    struct overlay *overlay;
    struct links *links;
    struct mailbox *mailbox; /* where mail waits when a recipient is offline */
    const struct identity *account;
    /* Addresses to publish in the presence record (copied). */
    struct addr addrs[MSG_PRESENCE_ADDRS_MAX];
    unsigned addr_count;
    enum delivery_verdict (*classify_cb)(void *arg, const uint8_t account[32],
                                         const uint8_t node_key[32]);
    /* Optional: whether account is a contact (not a request, not blocked),
     * with no side effects (NULL: everyone is, as classify_cb NULL delivers
     * everything). */
    bool (*is_contact_cb)(void *arg, const uint8_t account[32]);
    /* Who the user means by `to`, `with` or `from` in a request: an address,
     * or a contact's name or address prefix. On failure, the error (address
     * errors, MP_ERR_NOT_FOUND, MP_ERR_CONTACT_AMBIGUOUS, MP_ERR_KEY_CHANGED
     * for sending) and one sentence for the user in why. */
    enum mp_err (*resolve_cb)(void *arg, const char *who, bool for_sending, uint8_t pk_out[32],
                              char *why, size_t why_size);
    /* Before sending to account's node node_key (from its presence record):
     * DELIVERY_KEY_CHANGED when the user trusts another node key for that
     * contact (nothing is sent until `contacts trust`), else DELIVERY_DELIVER. */
    enum delivery_verdict (*node_check_cb)(void *arg, const uint8_t account[32],
                                           const uint8_t node_key[32]);
    /* Optional: the networks that may carry messages to account, bit i for
     * network i (NULL: every network). A recipient's presence is looked up
     * on the allowed networks in index order, the next one after a failed
     * lookup, and its messages go only on the network where its presence
     * (which its own node publishes, signed, only where it joined) was
     * found: a message never goes out on a network the recipient did not
     * join. */
    uint32_t (*networks_cb)(void *arg, const uint8_t account[32]);
    /* Optional: of the allowed networks, those tried first in each round of
     * lookups (bit i for network i; NULL or 0: index order). */
    uint32_t (*preferred_cb)(void *arg, const uint8_t account[32]);
    /* Optional: account was seen on network net: its presence was found
     * there, or its message (not blocked, not from a mailbox) came over that
     * network's links. */
    void (*network_seen_cb)(void *arg, const uint8_t account[32], unsigned net);
    void *classify_arg; /* for all the callbacks */
};

struct delivery;

/* Loads the outbox and event log positions, publishes presence and prekeys,
 * and starts the pump. cfg is copied; what its pointers point to is borrowed
 * for the delivery's life. */
enum mp_err delivery_new(const struct delivery_config *cfg, struct delivery **delivery_out);

/* An envelope fetched from our mailbox at node_key (mailbox mail_cb):
 * stored like one from a link, then mailbox_taken once durable. */
void delivery_on_mail(struct delivery *d, const uint8_t node_key[32], const struct buf *envelope);
/* The links' callbacks: the daemon forwards them here (network 0; mailbox
 * messages go on to the mailbox). */
void delivery_on_link_message(struct delivery *d, const uint8_t node_key[32], const uint8_t *msg,
                              size_t len);
void delivery_on_link_state(struct delivery *d, const uint8_t node_key[32], bool up);
void delivery_on_writable(struct delivery *d, const uint8_t node_key[32]);
/* The same from network net (a link state of another network than the
 * peer's is ignored). */
void delivery_on_link_message_net(struct delivery *d, unsigned net, const uint8_t node_key[32],
                                  const uint8_t *msg, size_t len);
void delivery_on_link_state_net(struct delivery *d, unsigned net, const uint8_t node_key[32],
                                bool up);

/* Add network index (1 .. DELIVERY_NETS_MAX - 1; copied, its pointers
 * borrowed until it is removed) and publish presence and prekeys there, or
 * remove it (net NULL): peers reached on it are looked up again on their
 * other networks. Remove a network before closing its overlay and links.
 * MP_ERR_INVAL for index 0 or out of range. */
enum mp_err delivery_set_net(struct delivery *d, unsigned index, const struct delivery_net *net);

/* Its control methods, to pass to control_add_methods with the delivery as ctx. */
const struct control_method *delivery_methods(size_t *count_out);

/* Figures for `status`: a new reference. */
json_t *delivery_status(const struct delivery *d);

/* Ends subscriptions and pending waits, stops the pump, frees once its timer closed. */
void delivery_close(struct delivery *d);

#endif
