/*
 * mailbox: sealed envelopes held for accounts that are offline, and the
 * fetching of our own.
 *
 * Holding (any node, unless config mailbox.serve is false): another node
 * stores an envelope with us (MSG_LINK_MB_STORE); we keep it in the store's
 * mailbox family under its mailbox id, synced before we answer "held",
 * within a quota per mailbox and one for all of them, a rate per sending
 * node, and a TTL after which it is dropped. We hand a mailbox's envelopes
 * only to a node that proves it holds the account key (a signature over a
 * fresh, single-use challenge), and delete each once the fetcher says it
 * stored it. Every handoff_interval we store what we hold with the nodes now
 * closest to each mailbox id (nodes join and leave), keeping our own copies
 * until they are fetched or expire.
 *
 * Fetching: soon after start and every fetch_interval we ask the nodes
 * closest to our own mailbox id, and the configured mailbox nodes, for our
 * mail. Envelopes go to mail_cb (delivery), which calls mailbox_taken once
 * each is durable; then we tell the mailbox to delete it.
 *
 * What a mailbox sees: envelope sizes (bucketed), times, mailbox ids and the
 * node keys of senders and fetchers; never plaintext nor the sender's
 * account (sealed sender). Formats and defaults: docs/PROTOCOL.md,
 * "Mailboxes".
 */
#ifndef MP_NODE_MAILBOX_H
#define MP_NODE_MAILBOX_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/addr.h"
#include "base/env.h"
#include "crypto/identity.h"
#include "node/config.h"
#include "node/link.h"
#include "node/msg.h"
#include "node/overlay.h"
#include "node/store.h"

/* Nodes a message is left with, at most: the closest ones plus the
 * recipient's own (its presence record's). Our own fetch asks twice the
 * replicas, which fits too. */
#define MAILBOX_TARGETS_MAX (CONFIG_MAILBOX_REPLICAS_MAX + MSG_PRESENCE_MAILBOXES_MAX)
/* Envelopes handed to a fetcher and not yet taken, at most. */
#define MAILBOX_WINDOW 512
/* Fetchers served at once. */
#define MAILBOX_SERVE_MAX 64
/* A challenge is answered within this long, once. */
#define MAILBOX_CHALLENGE_MS 30000
/* A fetch (ours, or one we serve) with no progress for this long is dropped. */
#define MAILBOX_IDLE_MS 60000
/* Sending nodes whose rate is tracked (the least recently seen is forgotten). */
#define MAILBOX_SENDERS_MAX 256
/* Answers to stores waiting for one sync (a loop turn's worth). */
#define MAILBOX_SYNC_GROUP 1024
/* Mailboxes looked at per handoff pass. */
#define MAILBOX_HANDOFF_BATCH 16

/* A node that may hold a recipient's mail. */
struct mailbox_target {
    uint8_t key[32]; /* its X25519 node key */
    struct addr addr;
};

struct mailbox_config {
    uv_loop_t *loop;
    const struct env *env;
    struct store *store;
    struct links *links;
    struct overlay *overlay;
    const struct identity *account; /* whose mail we fetch */
    struct config_mailbox limits;   /* copied */
    /* An envelope fetched from mailbox node `node_key`: the callee stores it
     * and calls mailbox_taken once that is durable (or at once when the
     * envelope is one it will never want: not for us, a duplicate). */
    void (*mail_cb)(void *arg, const uint8_t node_key[32], const struct buf *envelope);
    void *mail_arg;
};

struct mailbox;

/* Reads the held mail's totals and starts the timers (fetching, expiry,
 * handoff). cfg is copied; its pointers are borrowed for the mailbox's life. */
enum mp_err mailbox_new(const struct mailbox_config *cfg, struct mailbox **mailbox_out);

/* A mailbox message from node_key (types MSG_LINK_MB_STORE, HELLO,
 * CHALLENGE, FETCH, TAKEN, END; others are ignored). */
void mailbox_on_link(struct mailbox *mb, const uint8_t node_key[32], const struct msg_link *l);
void mailbox_on_link_state(struct mailbox *mb, const uint8_t node_key[32], bool up);
void mailbox_on_writable(struct mailbox *mb, const uint8_t node_key[32]);

/* The envelope with this digest, fetched from node_key, is stored: the
 * mailbox may delete it (sent at the end of the loop turn, grouped). */
void mailbox_taken(struct mailbox *mb, const uint8_t node_key[32], const uint8_t digest[32]);

/* Where account's mail is left: the `replicas` nodes closest to its mailbox
 * id that answered, leaving out ourselves and `exclude` (may be NULL: the
 * recipient's own node), then `listed` (its presence record's mailbox
 * nodes, may be NULL). cb runs from the loop with up to MAILBOX_TARGETS_MAX
 * targets (borrowed for the call); status MP_OK, or why there are none. */
typedef void mailbox_find_cb(void *arg, enum mp_err status, const struct mailbox_target *targets,
                             size_t count);
enum mp_err mailbox_find(struct mailbox *mb, const uint8_t account[32], const uint8_t *exclude,
                         const struct mailbox_target *listed, size_t listed_count,
                         mailbox_find_cb *cb, void *arg);

/* Our own mailbox nodes from the config (for our presence record). */
size_t mailbox_own_nodes(const struct mailbox *mb, struct mailbox_target *out, size_t max);

/* {"serving", "held", "held_bytes", "stored", "refused_full", "refused_rate",
 * "refused_other", "refused_proof", "handed_out", "taken", "expired",
 * "fetched", "fetches_done", "handed_off", "fetching_from": [node key...],
 * "own_nodes": [{node_key, addr}...]} for `status`. */
json_t *mailbox_status(const struct mailbox *mb);

/* Stops the timers and frees once they closed. */
void mailbox_close(struct mailbox *mb);

#endif
