#include "node/delivery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/bytes.h"
#include "base/log.h"
#include "base/utf8.h"
#include "crypto/address.h"
#include "crypto/box.h"
#include "crypto/secure.h"
#include "crypto/seqid.h"
#include "dht/record.h"
#include "node/msg.h"
#include "node/sysenv.h"
#include "node/u64set.h"
#include "node/outbox.h"

#define MOD "delivery"

/* Key prefixes. Outbox family: 'o' seq -> entry (written once). Outbox
 * sealed family: 'o' seq -> the envelope of a bundle's head, until sent,
 * delivered or expired (kept while held by mailboxes).
 * Outbox index family: 'q' seq -> recipient (not yet acked), 's' seq -> the
 * entry's state row (once sealed or moved), 'd' digest -> seq, 'm' message
 * id -> seq (read only: written by builds before ids came from seqs). Inbox
 * family: 'e' cursor -> event. Inbox index family: 'i' sender id -> cursor
 * (duplicates). Meta: the counters. */
#define KEY_ENTRY OUTBOX_KEY_ENTRY
#define KEY_STATE 's'
#define KEY_PENDING OUTBOX_KEY_PENDING
#define KEY_DIGEST 'd'
#define KEY_MSGID 'm'
#define KEY_EVENT OUTBOX_KEY_EVENT
#define KEY_SEEN 'i'
_Static_assert(SEQID_BYTES == MSG_ID_BYTES, "message ids are seqids");
static const char meta_seq[] = "outbox_seq";
static const char meta_seq_lease[] = "outbox_seq_lease"; /* seqs below it may have left */
static const char meta_cursor[] = "event_cursor";
static const char meta_counter[] = "counter/"; /* + recipient key: next text counter */
static const char meta_msgid_key[] = "msgid_key"; /* texts' ids from their seqs (seqid) */

/* Longest a mailbox may say it holds a message (a year): a bound, not a policy. */
#define DELIVERY_EXPIRY_MAX_S (366u * 24 * 3600)
/* Lifetime of the presence record (republished at half), and of the prekey
 * record: as long as the DHT allows, so that a session can still be opened
 * with an account whose node has been offline for a day. */
#define DELIVERY_RECORD_TTL_S 3600
#define DELIVERY_PREKEY_TTL_S RECORD_TTL_MAX_S
/* Longest a `send` may wait for delivery (wait_ms). */
#define DELIVERY_WAIT_MAX_MS (10 * 60 * 1000)
/* `send` calls waiting for delivery at once. */
#define DELIVERY_WAITERS_MAX 64
/* The longest a state change waits for its sync when nothing else syncs. */
#define DELIVERY_NEWS_SYNC_MS 10
/* Messages in one `send.batch` call (its request line is capped too: RPC_LINE_MAX). */
#define DELIVERY_SEND_BATCH_MAX 1024

/* A mailbox node that holds (or should hold) a peer's mail. Entries go to it
 * in seq order, so what it holds is a prefix of what waits. */
struct target {
    struct mailbox_target node;
    uint64_t stored_upto; /* it answered "held" up to this seq */
    uint64_t sent_upto;   /* stored up to this seq, answer due */
    uint64_t last_send_ms;
    uint64_t retry_at_ms; /* after a refusal or an unreachable node */
    unsigned failures;
    bool busy;            /* its link queue is full */
    uint8_t last_status;  /* enum msg_mb_status of its last answer */
};

/* Ids one envelope can report delivered: a bundle of full receipts. */
#define DELIVERED_IDS_MAX ((size_t)MSG_BUNDLE_MAX * MSG_RECEIPT_IDS_MAX)

/* Envelope digests remembered (see struct delivery). */
#define DELIVERY_DIGESTS 16384
/* Nodes remembered as taking MSG_LINK_DELIVERED (see struct delivery). */
#define DELIVERY_HELLO_SLOTS 1024

/* Outbox entries kept in memory (see struct entry_cache): slots (a program
 * may queue faster than the peer acks: 64 full send.batch calls ahead still
 * fit), the bytes of all the entries kept, and the largest entry kept (a
 * text of up to about 2 KiB, or the head of a bundle of up to some 200
 * messages with its riders; envelopes, kept apart, are not cached). An older
 * entry keeps its slot against newer ones for DELIVERY_ENTRY_CACHE_AGES
 * times the slots (see struct entry_cache). About 2.5 MiB of slots, and at
 * most 16 MiB of entries. */
#define DELIVERY_ENTRY_CACHE 65536
#define DELIVERY_ENTRY_CACHE_BYTES (16u << 20)
#define DELIVERY_ENTRY_CACHE_VALUE_MAX 2048
#define DELIVERY_ENTRY_CACHE_AGES 4

struct peer {
    bool used;
    uint8_t account[32];
    uint64_t last_used_ms;
    bool has_presence;
    struct msg_presence presence;
    uint64_t presence_at_ms;
    bool fetching_presence;
    bool has_bundle;
    struct prekey_bundle bundle;
    bool fetching_bundle;
    uint64_t sent_upto;    /* highest seq sent and not yet due for a resend */
    uint64_t last_send_ms;
    uint64_t retry_at_ms;  /* nothing goes to this peer before */
    unsigned failures;     /* in a row, for the retry delay */
    bool busy;             /* its link queue is full: wait for writable */
    uint64_t sealed_upto;  /* its entries up to this seq are sealed (they seal in order) */
    uint64_t seal_retry_at_ms; /* a seal failed: none is tried before */
    /* Its node cannot be reached: entries also go to its mailboxes. */
    bool via_mailbox;
    bool finding_targets;
    uint64_t targets_at_ms;
    size_t target_count;
    struct target targets[MAILBOX_TARGETS_MAX];
    unsigned net;          /* the network its presence is looked up / was found on */
    uint32_t nets_tried;   /* networks where the current round of lookups failed */
    /* Heads sealed in the sealing pass early_gen that may leave before its
     * sync: early_from .. early_upto (0: none yet); early_closed once one
     * may not, as none after it may. */
    uint64_t early_gen, early_from, early_upto;
    bool early_closed;
    /* Its entries from unsynced_from on were sealed by a pass whose write
     * is durable once syncs_done reaches unsynced_sync: until then the pump
     * (which may run while that sync does) sends only those below. */
    uint64_t unsynced_from, unsynced_sync;
};

struct fetch {
    unsigned net;
    struct delivery *d;
    uint8_t account[32];
    unsigned kind;
};

struct subscriber {
    struct control_call *call; /* NULL: free slot */
    uint64_t next;             /* next cursor to push */
};

struct waiter {
    struct control_call *call; /* NULL: free slot */
    uint8_t id[MSG_ID_BYTES];
    uint64_t deadline_ms;
    uint64_t durable_at; /* its message is durable once syncs_done reaches it */
    bool delivered;      /* the answer, held until then */
};

/* An ack that found the link's queue full, waiting for room (writable). */
struct pending_ack {
    uint8_t node_key[32];
    uint8_t digest[32];
    uint8_t type; /* MSG_LINK_ACK or MSG_LINK_DELIVERED */
};

/* What waits for the next sync of the store before it may happen: an ack
 * (we promise the envelope is stored) and the answer to a `send` (it may not
 * hear of a message a crash could still take back). Listeners hear of
 * events up to the synced cursor (durable_cursor) without an item. */
struct durable_item {
    /* An ack: on the link, MSG_LINK_ACK or MSG_LINK_DELIVERED; to our
     * mailbox at node_key, MSG_LINK_MB_TAKEN. 0: none. */
    uint8_t ack;
    uint8_t node_key[32];
    uint8_t digest[32];
    uint8_t event_id[MSG_ID_BYTES]; /* the message sent (reply) */
    struct control_call *reply; /* a `send` answered once its message is durable */
    uint8_t to[32];             /* the send's recipient */
    json_t *result;             /* the reply's result if not {id, state} (send.batch); owned */
};

/* The ids of the texts of one envelope so far: a duplicate within a bundle
 * is dropped like one from an earlier envelope (those the store knows). */
#define ID_SET_SLOTS (2 * MSG_BUNDLE_MAX)
struct id_set {
    bool used[ID_SET_SLOTS];
    uint8_t ids[ID_SET_SLOTS][MSG_ID_BYTES];
};

/* A message id with a number (its event cursor). */
struct id_seq {
    uint8_t id[MSG_ID_BYTES];
    uint64_t seq;
};

/* Working space of sealing and receiving, one per delivery: too big for
 * the stack, and nothing in it lives from one call to the next. */
struct scratch {
    /* seal_pending: a group */
    uint64_t seqs[DELIVERY_SEAL_GROUP];
    struct outbox_entry entries[DELIVERY_SEAL_GROUP];
    /* seal_group: per bundle its plaintext (owned: an encoded bundle, not
     * an entry's own), envelope, first and past-the-end entry */
    struct buf pts[DELIVERY_SEAL_GROUP], envs[DELIVERY_SEAL_GROUP];
    bool merged[DELIVERY_SEAL_GROUP], owned[DELIVERY_SEAL_GROUP];
    bool text[DELIVERY_SEAL_GROUP]; /* the entry is a text (not a receipt) */
    size_t heads[DELIVERY_SEAL_GROUP], ends[DELIVERY_SEAL_GROUP];
    /* seal_group (one bundle's messages), take_messages (one envelope's) */
    struct msg_part parts[MSG_BUNDLE_MAX];
    struct id_set texts;
    /* take_messages: the new texts' ids with their event cursors */
    struct id_seq taken[MSG_BUNDLE_MAX];
};

struct cached_entry {
    uint64_t seq; /* 0: an empty slot */
    struct buf bytes;
};

/* Outbox entries as stored with their state rows, by seq, one per slot:
 * most are read back within moments of their write (to seal, on the ack, on
 * the receipt), and a hit spares the store lookups (not the envelope's: the
 * pump reads that from the store). Written through, never ahead of the
 * store: batch_entry and batch_state stage what they put, and the stage
 * lands in the slots only once its batch is written (batch_commit); a batch
 * that fails or is given up leaves its stage behind, dropped by the next
 * batch_begin (one batch is built at a time). Entries that are not read again (delivered,
 * expired, a receipt once sent) and large ones are not kept, so an idle
 * node's cache holds little. Of two entries for one slot the older stays
 * while it is less than DELIVERY_ENTRY_CACHE_AGES rounds of the slots old:
 * entries are read in order (sealed, acked, receipted oldest first), so a
 * backlog larger than the cache still finds its first part there rather
 * than nothing, and one never read again (a text whose receipt was lost)
 * gives way in the end. */
struct entry_cache {
    struct cached_entry slots[DELIVERY_ENTRY_CACHE];
    size_t bytes; /* of all the slots' entries: at most DELIVERY_ENTRY_CACHE_BYTES */
    uint64_t hits, misses; /* reads of entries (status) */
    struct cached_entry *staged; /* bytes.len 0: drop the slot's copy */
    size_t staged_count, staged_cap;
};

struct delivery {
    struct delivery_config cfg;
    struct scratch *scratch; /* owned */
    struct entry_cache *cache; /* owned */
    struct delivery_net nets[DELIVERY_NETS_MAX]; /* [0] from cfg; overlay NULL: none */
    struct pending_ack acks[DELIVERY_ACKS_WAITING_MAX];
    size_t ack_count;
    uv_timer_t durable; /* durable.data = this: one sync for what came in one loop turn */
    struct durable_item pend[DELIVERY_SYNC_GROUP];
    size_t pend_count;
    bool needs_sync;       /* unsynced writes whose consequences wait */
    bool sync_now;         /* and some wait for a sync at the end of the turn (not news) */
    bool sync_failed;      /* a sync failed: the store refuses writes until reopened */
    uint64_t durable_cursor; /* events below this cursor are synced: clients see up to it */
    /* A sync on the thread pool, begun when envelopes left ahead of it
     * (sync_ahead): no other pass seals ahead until it is back, and the
     * pump sends meanwhile only seals made durable before it (seal_is_durable). */
    uv_work_t sync_work;   /* sync_work.data = this */
    bool syncing;
    char *sync_error;      /* its RocksDB error text; NULL: synced */
    size_t sync_pend;      /* pend[0 .. sync_pend) wait for it */
    uint64_t sync_cursor;  /* and the events below this */
    uint64_t sync_lease;   /* and the seq lease as it was written then */
    uint64_t sync_number;  /* its number */
    uint64_t syncs_begun, syncs_done; /* every write before sync number k is
                                         durable once syncs_done >= k */
    /* Seqs below seq_lease may leave ahead of their sync (its write is
     * durable); seq_lease_written is the latest lease written. */
    uint64_t seq_lease, seq_lease_written;
    uint64_t early_gen;    /* the pass's number (struct peer) */
    uint64_t early_lo, early_hi; /* seqs of what it marked (early_hi 0: none) */
    uv_timer_t pump;  /* pump.data = this */
    uv_timer_t feed;  /* feed.data = this: pushes events to subscribers */
    uv_timer_t publish; /* publish.data = this: presence and prekeys again */
    unsigned publish_round;
    uint64_t next_seq;
    /* A message's id is its seq under this key (crypto/seqid.h), so a
     * receipt finds its entry without an id index. */
    uint8_t msgid_key[SEQID_KEY_BYTES];
    /* No pending ('q') key is below this seq: scans of the work list seek
     * here instead of stepping over the deleted head of the queue. */
    uint64_t pending_floor;
    /* Pending entries below sealed_below are all sealed (for good), those
     * below sent_below all sent and waiting for their ack until at least
     * sent_below_due: the pump's walks start past them, so many messages in
     * flight do not cost a step each per pass. sent_below is 0 (unknown)
     * whenever some peer's sent_upto goes back. */
    uint64_t sealed_below, sent_below, sent_below_due;
    bool seal_again; /* the pump met entries to seal: another pass at once */
    uint64_t next_cursor; /* the next event's cursor; events are 1 .. next_cursor - 1 */
    struct peer peers[DELIVERY_PEERS_MAX];
    struct subscriber subs[DELIVERY_SUBSCRIBERS_MAX];
    struct waiter waiters[DELIVERY_WAITERS_MAX];
    unsigned open_handles;
    bool closing;
    /* figures for status */
    uint64_t sent, received, acked, duplicates, refused, failed_open;
    uint64_t damaged_states; /* outgoing messages found damaged (damaged) */
    /* Outgoing messages whose state row or kept envelope could not be read
     * (damaged), up to DELIVERY_DAMAGED_MAX: left where they are, so the
     * walks step over them unread. */
    struct u64set damaged;
    uint64_t mb_sent, mb_held, mb_full, mb_rate, mb_refused, expired;
    uint64_t next_expiry_ms; /* the next mailbox expiry of an entry (0: look at start) */
    /* Envelopes stored (or dropped for good) lately, by digest, one per slot:
     * another copy (from a second mailbox, or resent) is acked without being
     * opened again. A cache: a miss costs the full open, and for a copy
     * from a contact an envelope receipt (on_copy). */
    uint8_t digests[DELIVERY_DIGESTS][32];
    bool receipted_by_ack[DELIVERY_DIGESTS]; /* its texts' receipt was our MSG_LINK_DELIVERED */
    /* Node keys whose link said hello with MSG_FEATURE_DELIVERED, one per
     * slot: a miss only costs the older way, an ack and receipt messages. */
    uint8_t hello_keys[DELIVERY_HELLO_SLOTS][32];
};

static void hex(char *out, size_t size, const uint8_t *bin, size_t len)
{
    secure_hex(out, size, bin, len);
}

static void digest_of(const uint8_t *data, size_t len, uint8_t out[32])
{
    box_hash(out, 32, NULL, 0, data, len, NULL, 0, NULL, 0);
}

/* ---- small store helpers ---- */

/* A meta value of exactly size bytes into out: MP_ERR_NOT_FOUND when absent,
 * MP_ERR_STORE when damaged (another size), or a read error. The copy read
 * is wiped (the message id key is one such value). */
static enum mp_err meta_get(struct store *store, const char *key, size_t key_len, uint8_t *out,
                            size_t size)
{
    uint8_t *val = NULL;
    size_t len = 0;
    enum mp_err err = store_get(store, STORE_CF_META, key, key_len, &val, &len);
    if (err == MP_OK && len != size)
        err = MP_ERR_STORE;
    if (err == MP_OK)
        memcpy(out, val, size);
    if (val != NULL)
        secure_wipe(val, len);
    free(val);
    return err;
}

/* A u64 from meta: 0 when absent; any other failure (a read error, a
 * damaged value) is returned, never taken for 0, so a counter cannot restart
 * and overwrite what it numbered. */
static enum mp_err meta_u64(struct store *store, const char *key, size_t key_len, uint64_t *v_out)
{
    uint8_t val[8];
    enum mp_err err = meta_get(store, key, key_len, val, sizeof(val));
    *v_out = err == MP_OK ? bytes_get_u64(val) : 0;
    return err == MP_ERR_NOT_FOUND ? MP_OK : err;
}

static void batch_meta_u64(struct store_batch *b, const char *key, size_t key_len, uint64_t v)
{
    uint8_t val[8];
    bytes_put_u64(val, v);
    store_batch_put(b, STORE_CF_META, key, key_len, val, sizeof(val));
}

static void seq_key(uint8_t out[9], char prefix, uint64_t seq)
{
    out[0] = (uint8_t)prefix;
    bytes_put_u64(out + 1, seq);
}

static struct cached_entry *cache_slot(struct delivery *d, uint64_t seq)
{
    return &d->cache->slots[seq % DELIVERY_ENTRY_CACHE];
}

static void cache_drop(struct delivery *d, uint64_t seq)
{
    struct cached_entry *slot = cache_slot(d, seq);
    if (slot->seq == seq) {
        d->cache->bytes -= slot->bytes.len;
        buf_free(&slot->bytes);
        slot->seq = 0;
    }
}

/* Keep bytes (moved in, or freed) as entry seq once its batch is written;
 * empty bytes: keep no copy then. Until then the slot holds no copy, so a
 * read meanwhile goes to the store. On a failure to keep, no copy either. */
static void cache_stage(struct delivery *d, uint64_t seq, struct buf *bytes)
{
    struct entry_cache *c = d->cache;
    cache_drop(d, seq);
    if (bytes->len > DELIVERY_ENTRY_CACHE_VALUE_MAX)
        buf_free(bytes);
    if (c->staged_count == c->staged_cap) {
        size_t cap = c->staged_cap > 0 ? 2 * c->staged_cap : 64;
        struct cached_entry *more = realloc(c->staged, cap * sizeof(*more));
        if (more == NULL) { /* no copy of seq at all then, not an earlier one */
            buf_free(bytes);
            for (size_t i = 0; i < c->staged_count; i++) {
                if (c->staged[i].seq == seq)
                    buf_free(&c->staged[i].bytes);
            }
            return;
        }
        c->staged = more;
        c->staged_cap = cap;
    }
    c->staged[c->staged_count++] = (struct cached_entry){.seq = seq, .bytes = *bytes};
    buf_init(bytes, 0); /* moved */
}

static void cache_unstage(struct delivery *d)
{
    for (size_t i = 0; i < d->cache->staged_count; i++)
        buf_free(&d->cache->staged[i].bytes);
    d->cache->staged_count = 0;
}

/* A new write batch for the outbox and the rest (see struct entry_cache). */
static struct store_batch *batch_begin(struct delivery *d)
{
    cache_unstage(d);
    return store_batch_new();
}

/* Write b (synced or not); once written, what it staged is in the cache. */
static enum mp_err batch_commit(struct delivery *d, struct store_batch *b, bool sync)
{
    struct entry_cache *c = d->cache;
    enum mp_err err = store_batch_write(d->cfg.store, b, sync);
    for (size_t i = 0; err == MP_OK && i < c->staged_count; i++) {
        struct cached_entry *staged = &c->staged[i];
        cache_drop(d, staged->seq); /* an earlier copy staged in b, if any */
        struct cached_entry *slot = cache_slot(d, staged->seq);
        bool older_stays = slot->seq != 0 && slot->seq < staged->seq &&
                           staged->seq - slot->seq <
                               (uint64_t)DELIVERY_ENTRY_CACHE_AGES * DELIVERY_ENTRY_CACHE;
        if (staged->bytes.len == 0 || older_stays ||
            c->bytes - slot->bytes.len + staged->bytes.len > DELIVERY_ENTRY_CACHE_BYTES)
            continue; /* unstaged below */
        c->bytes -= slot->bytes.len;
        buf_free(&slot->bytes);
        *slot = *staged;
        c->bytes += slot->bytes.len;
        buf_init(&staged->bytes, 0); /* moved */
    }
    cache_unstage(d);
    return err;
}

/* Counts (status: messages.damaged_states) and logs the first time that
 * what the store holds of outgoing message seq besides its entry (what,
 * damaged with err) cannot be read: nothing is guessed, and the message is
 * left as blocked says. Each message counts once (d->damaged), unless that
 * set is full or could not grow: then it counts again, and is read again,
 * on every pass that meets it. */
static void damaged(struct delivery *d, uint64_t seq, const char *what, enum mp_err err,
                    const char *blocked)
{
    if (u64set_add(&d->damaged, seq) == MP_ERR_EXISTS)
        return;
    if (d->damaged_states++ == 0)
        log_warn(MOD, "the %s of outgoing message %llu is damaged (%s): %s; send the message "
                 "again, and if this recurs restore the data dir from a backup (further "
                 "damage is counted in status, not logged)", what, (unsigned long long)seq,
                 mp_strerror(err), blocked);
}

/* Entry seq's state row (val, len) onto e; MP_ERR_STORE if it is damaged
 * (damaged), leaving e with its own state: history may go on showing that
 * earlier one (a message sent may show as queued), but delivery reads no
 * such entry (load_entry), since the row also holds its seal and riders,
 * and sealing it again would lose the riders. */
static enum mp_err state_row(struct delivery *d, uint64_t seq, const uint8_t *val, size_t len,
                             struct outbox_entry *e)
{
    enum mp_err err = outbox_state_decode(val, len, e);
    if (err == MP_ERR_MALFORMED || err == MP_ERR_WIRE_VERSION) {
        damaged(d, seq, "state", err, "it is neither sent nor moved");
        err = MP_ERR_STORE;
    }
    return err;
}

/* Whether sealed entry e's envelope is kept (apart, under its key in the
 * outbox sealed family): while it may still go, queued or held by mailboxes. */
static bool envelope_kept(const struct outbox_entry *e)
{
    return e->sealed && (e->state == OUTBOX_QUEUED || e->state == OUTBOX_MAILBOX);
}

/* Entry seq, loaded into e_out (cleared on an error), as stored with its
 * state row: its envelope is not read (load_to_send). */
static enum mp_err load_entry(struct delivery *d, uint64_t seq, struct outbox_entry *e_out)
{
    uint8_t key[9], *val = NULL;
    size_t len = 0;
    struct cached_entry *slot = cache_slot(d, seq);
    if (slot->seq == seq) {
        d->cache->hits++;
        return outbox_entry_decode(slot->bytes.data, slot->bytes.len, e_out);
    }
    d->cache->misses++;
    seq_key(key, KEY_ENTRY, seq);
    enum mp_err err = store_get(d->cfg.store, STORE_CF_OUTBOX, key, sizeof(key), &val, &len);
    if (err == MP_OK)
        err = outbox_entry_decode(val, len, e_out);
    free(val);
    if (err != MP_OK)
        return err;
    /* Its state row, if it has sealed or moved since it was written. */
    key[0] = KEY_STATE;
    val = NULL;
    err = store_get(d->cfg.store, STORE_CF_OUTBOX_INDEX, key, sizeof(key), &val, &len);
    if (err == MP_OK)
        err = state_row(d, seq, val, len, e_out);
    free(val);
    if (err == MP_OK || err == MP_ERR_NOT_FOUND)
        return MP_OK;
    outbox_entry_clear(e_out);
    return err;
}

/* load_entry, and the envelope of a sealed entry while it may still go
 * (envelope_kept), for the pump to send; one missing or too long is
 * damage (damaged). An entry of version 3 or older held its envelope
 * within: then that one. */
static enum mp_err load_to_send(struct delivery *d, uint64_t seq, struct outbox_entry *e_out)
{
    uint8_t key[9], *val = NULL;
    size_t len = 0;
    enum mp_err err = load_entry(d, seq, e_out);
    if (err != MP_OK || !envelope_kept(e_out) || e_out->envelope.len > 0)
        return err;
    seq_key(key, KEY_ENTRY, seq);
    err = store_get(d->cfg.store, STORE_CF_OUTBOX_SEALED, key, sizeof(key), &val, &len);
    bool too_long = err == MP_OK && len > MSG_LINK_ENVELOPE_MAX;
    if (err == MP_OK && !too_long)
        err = buf_append(&e_out->envelope, val, len);
    free(val);
    if (err == MP_ERR_NOT_FOUND || too_long) {
        damaged(d, seq, "envelope", too_long ? MP_ERR_TOO_BIG : err, "it is not sent");
        err = MP_ERR_STORE;
    }
    if (err != MP_OK)
        outbox_entry_clear(e_out);
    return err;
}

/* Whether the pump, an ack or a receipt may still read entry e: not once
 * delivered or expired, nor a receipt once it went (receipts get none). */
static bool entry_read_again(const struct outbox_entry *e)
{
    uint8_t id[MSG_ID_BYTES], kind = 0;
    if (e->state == OUTBOX_DELIVERED || e->state == OUTBOX_EXPIRED)
        return false;
    return e->state == OUTBOX_QUEUED ||
           msg_peek(e->plaintext.data, e->plaintext.len, id, &kind) != MP_OK ||
           kind == MSG_KIND_TEXT;
}

/* New entry e as seq into b (and staged for the cache): written once, what
 * changes of it later goes to its state row (batch_state). */
static enum mp_err batch_entry(struct delivery *d, struct store_batch *b, uint64_t seq,
                               const struct outbox_entry *e)
{
    uint8_t key[9];
    struct buf enc;
    enum mp_err err = outbox_entry_encode(e, &enc);
    if (err != MP_OK)
        return err;
    seq_key(key, KEY_ENTRY, seq);
    store_batch_put(b, STORE_CF_OUTBOX, key, sizeof(key), enc.data, enc.len);
    if (!entry_read_again(e))
        buf_free(&enc); /* the cache keeps no copy */
    cache_stage(d, seq, &enc);
    return MP_OK;
}

/* Entry e's state row into b: what changed of it since it was written
 * (its state and expiry as move_entry moved them, its seal and riders once
 * sealed), and if it dropped its envelope (dropped), the envelope's
 * deletion; never the entry itself, so that seals, acks and receipts do
 * not write each message again, nor make a compaction rewrite the history
 * around it; staged for the cache. */
static enum mp_err batch_state(struct delivery *d, struct store_batch *b, uint64_t seq,
                               const struct outbox_entry *e, bool dropped)
{
    uint8_t key[9], val[OUTBOX_STATE_ROW_MAX];
    size_t len;
    enum mp_err err = outbox_state_encode(e, val, &len);
    if (err != MP_OK)
        return err;
    seq_key(key, KEY_STATE, seq);
    store_batch_put(b, STORE_CF_OUTBOX_INDEX, key, sizeof(key), val, len);
    if (dropped) {
        key[0] = KEY_ENTRY;
        store_batch_delete(b, STORE_CF_OUTBOX_SEALED, key, sizeof(key));
    }
    struct buf enc;
    buf_init(&enc, 0);
    if (entry_read_again(e) && (err = outbox_entry_encode(e, &enc)) != MP_OK)
        return err;
    cache_stage(d, seq, &enc);
    return MP_OK;
}

/* Find the outbox seq an index entry ('d' digest or 'm' id) points to. */
static bool lookup_seq(struct delivery *d, char prefix, const uint8_t *id, size_t id_len,
                       uint64_t *seq_out)
{
    uint8_t key[1 + 32], *val = NULL;
    size_t len = 0;
    key[0] = (uint8_t)prefix;
    memcpy(key + 1, id, id_len);
    bool found =
        store_get(d->cfg.store, STORE_CF_OUTBOX_INDEX, key, 1 + id_len, &val, &len) == MP_OK &&
        len == 8;
    if (found)
        *seq_out = bytes_get_u64(val);
    free(val);
    return found;
}

/* Whether entry seq, loaded into e_out (cleared if not), is the text with
 * message id. Receipts have ids too, but nothing receipts them. */
static bool text_is(struct delivery *d, uint64_t seq, const uint8_t id[MSG_ID_BYTES],
                    struct outbox_entry *e_out)
{
    uint8_t got[MSG_ID_BYTES], kind;
    if (load_entry(d, seq, e_out) != MP_OK)
        return false;
    if (msg_peek(e_out->plaintext.data, e_out->plaintext.len, got, &kind) == MP_OK &&
        kind == MSG_KIND_TEXT && memcmp(got, id, MSG_ID_BYTES) == 0)
        return true;
    outbox_entry_clear(e_out);
    return false;
}

/* The outbox entry of our text with message id, loaded; false if there is
 * none. The seq the id decodes to (crypto/seqid.h) is tried first; the id
 * index holds only texts queued before ids came from seqs. */
static bool load_by_id(struct delivery *d, const uint8_t id[MSG_ID_BYTES], uint64_t *seq_out,
                       struct outbox_entry *e_out)
{
    if (seqid_decode(d->msgid_key, id, seq_out) && text_is(d, *seq_out, id, e_out))
        return true;
    return lookup_seq(d, KEY_MSGID, id, MSG_ID_BYTES, seq_out) &&
           load_entry(d, *seq_out, e_out) == MP_OK;
}

/* Append an event to the batch and take its cursor (the caller moves
 * d->next_cursor past it and ends with batch_cursor). */
static enum mp_err batch_event(struct delivery *d, struct store_batch *b,
                               const struct outbox_event *ev, uint64_t *cursor_out)
{
    uint8_t key[9];
    struct buf enc;
    enum mp_err err = outbox_event_encode(ev, &enc);
    if (err != MP_OK)
        return err;
    uint64_t cursor = d->next_cursor;
    seq_key(key, KEY_EVENT, cursor);
    store_batch_put(b, STORE_CF_INBOX, key, sizeof(key), enc.data, enc.len);
    buf_free(&enc);
    *cursor_out = cursor;
    return MP_OK;
}

/* The next event cursor into b, once for all the events b holds (batch_event
 * and d->next_cursor moved on for each): a batch is written whole or not at
 * all, so the stored cursor is never behind a stored event. */
static void batch_cursor(struct delivery *d, struct store_batch *b)
{
    batch_meta_u64(b, meta_cursor, strlen(meta_cursor), d->next_cursor);
}

/* The pump's work list ('q' keys), from seq from or the lowest seq still
 * pending if higher. */
static struct store_iter *pending_iter(struct delivery *d, uint64_t from)
{
    uint8_t start[9];
    seq_key(start, KEY_PENDING, from > d->pending_floor ? from : d->pending_floor);
    return store_iter_new_at(d->cfg.store, STORE_CF_OUTBOX_INDEX, start, 1, start, sizeof(start));
}

/* ---- peers ---- */

static struct peer *peer_find(struct delivery *d, const uint8_t account[32])
{
    for (size_t i = 0; i < DELIVERY_PEERS_MAX; i++) {
        if (d->peers[i].used && memcmp(d->peers[i].account, account, 32) == 0)
            return &d->peers[i];
    }
    return NULL;
}

/* The peer's slot, made if need be (the least recently used one is reused). */
static struct peer *peer_get(struct delivery *d, const uint8_t account[32], uint64_t now)
{
    struct peer *p = peer_find(d, account);
    if (p == NULL) {
        p = &d->peers[0];
        struct peer *victim = NULL;
        for (size_t i = 0; i < DELIVERY_PEERS_MAX; i++) {
            struct peer *q = &d->peers[i];
            if (!q->used) {
                victim = q;
                break;
            }
            /* A peer waiting for a lookup keeps its slot: its answer needs it. */
            if (!q->fetching_presence && !q->fetching_bundle &&
                (victim == NULL || q->last_used_ms < victim->last_used_ms))
                victim = q;
        }
        if (victim == NULL)
            return NULL; /* every slot waits for a lookup: try this one later */
        p = victim;
        if (p->used)
            d->sent_below = 0; /* its entries in flight are to be sent again */
        memset(p, 0, sizeof(*p));
        p->used = true;
        memcpy(p->account, account, 32);
        /* What an evicted slot knew of its seals is lost: none counts as
         * durable before a sync begun after this one is back (a pass may
         * seal it again before its sync begins). */
        p->unsynced_sync = d->syncs_begun + 1;
    }
    p->last_used_ms = now;
    return p;
}

static struct peer *peer_by_node(struct delivery *d, const uint8_t node_key[32])
{
    for (size_t i = 0; i < DELIVERY_PEERS_MAX; i++) {
        struct peer *p = &d->peers[i];
        if (p->used && p->has_presence && memcmp(p->presence.node_key, node_key, 32) == 0)
            return p;
    }
    return NULL;
}

static void peer_failed(struct peer *p, uint64_t now, uint64_t at_least_ms)
{
    uint64_t delay = DELIVERY_RETRY_MIN_MS << (p->failures < 12 ? p->failures : 12);
    if (delay > DELIVERY_RETRY_MAX_MS)
        delay = DELIVERY_RETRY_MAX_MS;
    if (delay < at_least_ms)
        delay = at_least_ms;
    p->failures++;
    p->retry_at_ms = now + delay;
}

/* ---- the pump ---- */

static void pump_cb(uv_timer_t *timer);

static void kick(struct delivery *d)
{
    if (!d->closing)
        uv_timer_start(&d->pump, pump_cb, 0, 0);
}

/* The networks that may carry messages to p's account, of those present. */
static uint32_t allowed_nets(struct delivery *d, const struct peer *p)
{
    uint32_t mask = d->cfg.networks_cb != NULL
                        ? d->cfg.networks_cb(d->cfg.classify_arg, p->account)
                        : UINT32_MAX;
    uint32_t present = 0;
    for (unsigned i = 0; i < DELIVERY_NETS_MAX; i++)
        present |= d->nets[i].overlay != NULL ? 1u << i : 0;
    return mask & present;
}

/* Whether p's mail may go to mailboxes, which run on the primary network:
 * only if p may be reached there and was seen there, or was seen nowhere
 * yet. Not from where its lookups stand now: a round of lookups visits the
 * primary network too, also for a recipient known only in a cluster. */
static bool mailboxes_allowed(struct delivery *d, const struct peer *p)
{
    uint32_t seen = d->cfg.preferred_cb != NULL
                        ? d->cfg.preferred_cb(d->cfg.classify_arg, p->account)
                        : 0;
    return (allowed_nets(d, p) & 1u) && (seen == 0 || (seen & 1u));
}

/* Put p on the first allowed network not tried in this round, the ones
 * cfg.preferred_cb names first; false when none is left. */
static bool pick_net(struct delivery *d, struct peer *p, uint32_t allowed)
{
    uint32_t left = allowed & ~p->nets_tried;
    uint32_t pref = d->cfg.preferred_cb != NULL
                        ? d->cfg.preferred_cb(d->cfg.classify_arg, p->account) & left
                        : 0;
    uint32_t from = pref != 0 ? pref : left;
    for (unsigned i = 0; i < DELIVERY_NETS_MAX; i++) {
        if ((from >> i) & 1u) {
            p->net = i;
            return true;
        }
    }
    return false;
}

/* Move p to the next allowed network not tried in this round; false (and a
 * new round from the first allowed one) when none is left. */
static bool next_net(struct delivery *d, struct peer *p)
{
    uint32_t allowed = allowed_nets(d, p);
    p->nets_tried |= 1u << p->net;
    if (pick_net(d, p, allowed))
        return true;
    p->nets_tried = 0;
    pick_net(d, p, allowed);
    return false;
}

static void fetch_cb(void *arg, enum mp_err status, const uint8_t *payload, size_t len)
{
    struct fetch *f = arg;
    struct delivery *d = f->d;
    uint64_t now = sysenv_unix_ms();
    struct peer *p = peer_find(d, f->account);
    char who[ADDRESS_TEXT_SIZE];

    address_encode(f->account, who);
    if (p != NULL && f->kind == RECORD_KIND_PRESENCE) {
        p->fetching_presence = false;
        if (status == MP_OK && msg_presence_decode(payload, len, &p->presence) == MP_OK &&
            p->presence.addr_count > 0) {
            p->has_presence = true;
            p->presence_at_ms = now;
            p->nets_tried = 0;
            if (d->cfg.network_seen_cb != NULL)
                d->cfg.network_seen_cb(d->cfg.classify_arg, p->account, f->net);
            p->sent_upto = 0; /* maybe a new node: send everything pending again */
            d->sent_below = 0;
            if (d->cfg.node_check_cb != NULL &&
                d->cfg.node_check_cb(d->cfg.classify_arg, p->account, p->presence.node_key) ==
                    DELIVERY_KEY_CHANGED) {
                /* Not to a node the user has not trusted: look again later. */
                log_info(MOD, "%s now runs on another node key: waiting for `contacts trust`",
                         who);
                p->has_presence = false;
                p->retry_at_ms = now + DELIVERY_KEY_RECHECK_MS;
            }
        } else if (f->net == p->net && next_net(d, p)) {
            /* Not on this network: look on the next one it may be on. */
        } else {
            peer_failed(p, now, 0);
            /* Not a first miss (it may be publishing right now): the second. */
            if (!p->via_mailbox && p->failures >= 2) {
                log_info(MOD, "no usable presence record for %s (%s): mail goes to its mailboxes",
                         who, status == MP_OK ? "no address in it" : mp_strerror(status));
                p->via_mailbox = true;
            }
        }
    } else if (p != NULL) {
        p->fetching_bundle = false;
        if (status == MP_OK && prekey_bundle_decode(payload, len, &p->bundle) == MP_OK) {
            p->has_bundle = true;
        } else {
            log_info(MOD, "no usable prekey record for %s (%s): will retry", who,
                     mp_strerror(status == MP_OK ? MP_ERR_MALFORMED : status));
            peer_failed(p, now, 0);
        }
    }
    free(f);
    kick(d);
}

static void fetch(struct delivery *d, struct peer *p, unsigned kind)
{
    struct fetch *f = malloc(sizeof(*f));
    if (f == NULL)
        return;
    f->d = d;
    f->kind = kind;
    memcpy(f->account, p->account, 32);
    uint32_t allowed = allowed_nets(d, p);
    if (!((allowed >> p->net) & 1u))
        next_net(d, p); /* its network is gone, or no longer allowed */
    else if (kind == RECORD_KIND_PRESENCE && !p->has_presence && p->nets_tried == 0)
        pick_net(d, p, allowed); /* a new round: the preferred networks first */
    f->net = p->net;
    if ((allowed >> p->net) & 1u) {
        char who[ADDRESS_TEXT_SIZE];
        address_encode(p->account, who);
        log_debug(MOD, "looking up the %s of %s on network %u",
                  kind == RECORD_KIND_PRESENCE ? "presence" : "prekeys", who, p->net);
    }
    enum mp_err err = !((allowed >> p->net) & 1u)
                          ? MP_ERR_UNAVAILABLE /* no network may carry it: wait */
                          : overlay_get(d->nets[p->net].overlay, kind, p->account, fetch_cb, f);
    if (err != MP_OK) {
        free(f);
        /* A presence lookup that cannot start here (an empty table) goes on
         * to the next network at the next pass; a round over all of them
         * ends in the usual retry delay. */
        if (kind == RECORD_KIND_PRESENCE && (allowed >> p->net) & 1u && next_net(d, p))
            kick(d);
        else
            peer_failed(p, sysenv_unix_ms(), 0);
        return;
    }
    if (kind == RECORD_KIND_PRESENCE)
        p->fetching_presence = true;
    else
        p->fetching_bundle = true;
}

/* ---- mail for recipients who are offline ---- */

struct find {
    struct delivery *d;
    uint8_t account[32];
};

/* The targets_at_ms that has a peer's mailbox nodes looked up again
 * DELIVERY_RETRY_MAX_MS after now (none found, or the lookup could not
 * start), not a full refresh period on. */
static uint64_t targets_soon(uint64_t now)
{
    return now - DELIVERY_MAILBOX_REFRESH_MS + DELIVERY_RETRY_MAX_MS;
}

static void targets_cb(void *arg, enum mp_err status, const struct mailbox_target *found,
                       size_t count)
{
    struct find *f = arg;
    struct delivery *d = f->d;
    struct peer *p = peer_find(d, f->account);
    uint64_t now = sysenv_unix_ms();

    if (p != NULL) {
        struct target next[MAILBOX_TARGETS_MAX];
        memset(next, 0, sizeof(next));
        for (size_t i = 0; i < count; i++) {
            next[i].node = found[i];
            for (size_t k = 0; k < p->target_count; k++) {
                if (memcmp(p->targets[k].node.key, found[i].key, 32) == 0) {
                    next[i] = p->targets[k]; /* a node known before keeps its progress */
                    next[i].node.addr = found[i].addr;
                }
            }
        }
        memcpy(p->targets, next, sizeof(next));
        p->target_count = count;
        p->finding_targets = false;
        /* None found: look again soon, not after a full refresh period. */
        p->targets_at_ms = count > 0 ? now : targets_soon(now);
        if (count == 0) {
            char who[ADDRESS_TEXT_SIZE];
            address_encode(f->account, who);
            log_info(MOD, "no mailbox nodes found for %s (%s): will retry", who,
                     mp_strerror(status));
        }
    }
    free(f);
    kick(d);
}

static void find_targets(struct delivery *d, struct peer *p)
{
    struct mailbox_target listed[MSG_PRESENCE_MAILBOXES_MAX];
    size_t n = 0;
    struct find *f = malloc(sizeof(*f));
    enum mp_err err = MP_ERR_NOMEM;
    if (f != NULL) {
        f->d = d;
        memcpy(f->account, p->account, 32);
        /* The recipient's own choice (its presence record) as well as the
         * DHT's; never its own node, which is the one we cannot reach. */
        for (unsigned i = 0; p->has_presence && i < p->presence.mailbox_count; i++) {
            memcpy(listed[n].key, p->presence.mailboxes[i], 32);
            listed[n++].addr = p->presence.mailbox_addrs[i];
        }
        /* Set first: the answer may come before mailbox_find returns. */
        p->finding_targets = true;
        err = mailbox_find(d->cfg.mailbox, p->account,
                           p->has_presence ? p->presence.node_key : NULL, listed, n, targets_cb,
                           f);
    }
    if (err != MP_OK) { /* not started: looked for again soon (pump_mailbox) */
        free(f);
        p->finding_targets = false;
        p->targets_at_ms = targets_soon(sysenv_unix_ms());
    }
}

static void target_failed(struct target *t, uint64_t now)
{
    uint64_t delay = DELIVERY_MAILBOX_RETRY_MIN_MS << (t->failures < 10 ? t->failures : 10);
    if (delay > DELIVERY_MAILBOX_RETRY_MAX_MS)
        delay = DELIVERY_MAILBOX_RETRY_MAX_MS;
    t->failures++;
    t->retry_at_ms = now + delay;
}

/* The pump comes back at the earliest time any entry asked for. */
static void wake_at(uint64_t *wake, uint64_t at)
{
    if (at < *wake)
        *wake = at;
}

/* Whether entry seq, sent (to a peer or a mailbox) up to *sent_upto, the
 * last at last_send_ms, still waits for its answer (come back when it is
 * due); if its time ran out, *sent_upto goes back: send again from seq. */
static bool awaits_answer(uint64_t seq, uint64_t *sent_upto, uint64_t last_send_ms, uint64_t now,
                          uint64_t *wake)
{
    if (seq > *sent_upto)
        return false;
    uint64_t due = last_send_ms + DELIVERY_ACK_TIMEOUT_MS;
    if (now < due) {
        wake_at(wake, due);
        return true;
    }
    *sent_upto = seq - 1;
    return false;
}

/* Leave entry seq with the peer's mailboxes that do not hold it yet.
 * Returns true when it did work. */
static bool pump_mailbox(struct delivery *d, struct peer *p, uint64_t seq, uint64_t now,
                         uint64_t *wake)
{
    if (d->cfg.mailbox == NULL)
        return false;
    /* Targets are looked up when due (targets_at_ms: a refresh period after
     * the last found, sooner after none), not on every pass while there are
     * none: a lookup that cannot start would otherwise be tried, and counted
     * as work, by every entry of every pass, and the pump would spin. */
    if (!p->finding_targets && now - p->targets_at_ms > DELIVERY_MAILBOX_REFRESH_MS) {
        find_targets(d, p);
        return p->finding_targets;
    }
    if (p->target_count == 0) {
        if (!p->finding_targets)
            wake_at(wake, p->targets_at_ms + DELIVERY_MAILBOX_REFRESH_MS + 1);
        return false;
    }
    /* Decide from memory which mailboxes want it, before reading it. */
    bool wanted = false;
    for (size_t i = 0; i < p->target_count; i++) {
        struct target *t = &p->targets[i];
        if (seq <= t->stored_upto)
            continue;
        if (t->retry_at_ms > now) {
            wake_at(wake, t->retry_at_ms);
            continue;
        }
        if (awaits_answer(seq, &t->sent_upto, t->last_send_ms, now, wake))
            continue;
        wanted = wanted || !t->busy;
    }
    if (!wanted)
        return false;
    struct outbox_entry e;
    if (load_to_send(d, seq, &e) != MP_OK)
        return false;
    if (e.envelope.len == 0) { /* sealed by seal_pending once a session or bundle is there */
        bool fetching = !p->has_bundle && !p->fetching_bundle && p->retry_at_ms <= now &&
                        !sessions_has(d->cfg.sessions, e.to);
        if (fetching)
            fetch(d, p, RECORD_KIND_PREKEYS);
        outbox_entry_clear(&e);
        /* Waiting for its seal is no work: counted as work, a queue of
         * unsealed entries (no bundle to be had) filled every pass and ran
         * the pump again at once, for ever, at full CPU. */
        return fetching;
    }
    /* Once held somewhere, its expiry goes along: a re-store never extends it. */
    struct msg_link l = {.type = MSG_LINK_MB_STORE, .envelope = e.envelope,
                         .expires_s = e.expires_ms / 1000};
    struct buf wire;
    if (msg_link_encode(&l, &wire) != MP_OK) {
        outbox_entry_clear(&e);
        return false;
    }
    for (size_t i = 0; i < p->target_count; i++) {
        struct target *t = &p->targets[i];
        if (seq <= t->sent_upto || t->retry_at_ms > now || t->busy)
            continue;
        enum mp_err err = links_send(d->cfg.links, t->node.key, &t->node.addr, wire.data, wire.len);
        if (err == MP_OK) {
            t->sent_upto = seq;
            t->last_send_ms = now;
            d->mb_sent++;
            wake_at(wake, now + DELIVERY_ACK_TIMEOUT_MS);
        } else if (err == MP_ERR_BUSY) {
            t->busy = true;
        } else {
            target_failed(t, now);
            wake_at(wake, t->retry_at_ms);
        }
    }
    buf_free(&wire);
    outbox_entry_clear(&e);
    return true;
}

/* Try to put one pending entry on its way. Returns true when it did work
 * (a lookup started, a send), which counts against the pass's batch. */
static bool pump_entry(struct delivery *d, uint64_t seq, const uint8_t to[32], uint64_t now,
                       uint64_t *wake)
{
    struct outbox_entry e;
    bool worked = false;
    struct peer *p = peer_get(d, to, now);
    if (p == NULL)
        return false;
    /* Mailboxes run on the primary network: never for a recipient reached on
     * another, so nothing of its mail leaves the networks it joined. */
    if (p->via_mailbox && mailboxes_allowed(d, p)) {
        /* To its mailboxes; and its node is tried again when its retry is due. */
        worked = pump_mailbox(d, p, seq, now, wake);
        if (p->retry_at_ms > now || p->fetching_presence) {
            if (p->retry_at_ms > now)
                wake_at(wake, p->retry_at_ms);
            return worked;
        }
    }
    /* Most entries wait for something: decide that from memory, without
     * reading them, so a long queue costs a key scan, not a load each. */
    if (p->retry_at_ms > now) {
        wake_at(wake, p->retry_at_ms);
        return false;
    }
    uint64_t sent_upto = p->sent_upto;
    if (awaits_answer(seq, &p->sent_upto, p->last_send_ms, now, wake))
        return false;
    if (p->sent_upto != sent_upto)
        d->sent_below = 0; /* no ack in time: the walks start lower */
    if (p->busy || p->fetching_presence || p->fetching_bundle)
        return worked;
    if (load_to_send(d, seq, &e) != MP_OK)
        return worked;
    enum mp_err err;
    worked = true;
    if (!p->has_presence || now - p->presence_at_ms > DELIVERY_PRESENCE_MAX_AGE_MS) {
        fetch(d, p, RECORD_KIND_PRESENCE);
        goto done;
    }
    if (e.envelope.len == 0) {
        if (!p->has_bundle && !sessions_has(d->cfg.sessions, e.to)) {
            fetch(d, p, RECORD_KIND_PREKEYS);
            goto done;
        }
        if (p->seal_retry_at_ms > now) { /* a seal failed: no pass seals before this */
            wake_at(wake, p->seal_retry_at_ms);
            worked = false;
            goto done;
        }
        /* Not sealed yet (the pass's seal budget ran out, or its session
         * came just now): seal_pending bundles it in the next pass, and
         * walks from it whatever it believed sealed. */
        if (seq <= p->sealed_upto)
            p->sealed_upto = seq - 1;
        if (d->sealed_below > seq)
            d->sealed_below = seq;
        d->seal_again = true;
        goto done;
    }
    struct msg_link l = {.type = MSG_LINK_ENVELOPE, .envelope = e.envelope};
    struct buf wire;
    if (msg_link_encode(&l, &wire) != MP_OK)
        goto done;
    err = links_send(d->nets[p->net].links, p->presence.node_key, &p->presence.addrs[0],
                     wire.data, wire.len);
    buf_free(&wire);
    if (err == MP_OK) {
        p->sent_upto = seq;
        p->last_send_ms = now;
        d->sent++;
        wake_at(wake, now + DELIVERY_ACK_TIMEOUT_MS);
    } else if (err == MP_ERR_BUSY) {
        p->busy = true;
    } else {
        uint64_t wait = links_retry_ms(d->nets[p->net].links, p->presence.node_key);
        peer_failed(p, now, wait);
        if (p->failures >= 2)
            p->via_mailbox = true; /* its node is unreachable: its mailboxes hold the mail */
        if (p->failures >= 3)
            p->presence_at_ms = 0; /* it may have moved: look it up again */
    }
done:
    if (p->retry_at_ms > now)
        wake_at(wake, p->retry_at_ms); /* a failure above: come back when it may be retried */
    outbox_entry_clear(&e);
    return worked;
}

static void expire_waiters(struct delivery *d, uint64_t now);
static bool waiter_may_expire(const struct delivery *d, const struct waiter *w);
static void expire_due(struct delivery *d, uint64_t now);

/* Whether entry seq of p, if sealed, is durable: sealed before the pass
 * whose sync is still running, or synced since. */
static bool seal_is_durable(const struct delivery *d, const struct peer *p, uint64_t seq)
{
    return seq < p->unsynced_from || p->unsynced_sync <= d->syncs_done;
}

/* Entry head's receipt takes the ids of the receipts merged into it (up to
 * n), in receipt: re-encoded into its plaintext, which goes into the
 * envelope, while the stored entry keeps the ids it was written with (it
 * is written once; nothing reads a sealed receipt's ids). On failure none
 * is merged (each goes out as it was). */
static void merge_receipt_run(struct outbox_entry *entries, size_t n, size_t head,
                              const struct msg *receipt, bool *merged)
{
    struct buf pt;
    if (receipt->receipt_count > 1 && msg_encode(receipt, &pt) == MP_OK) {
        buf_free(&entries[head].plaintext);
        entries[head].plaintext = pt;
        return;
    }
    for (size_t i = head + 1; i < n; i++)
        merged[i] = false;
}

/* Receipts waiting for one peer go out together: the first receipt entry of
 * the group takes the ids of the ones after it (up to MSG_RECEIPT_IDS_MAX a
 * receipt) and those are merged (merged[i]: retired in the seal's write), so
 * a burst of n received messages costs one receipt envelope, not n. The
 * same peek tells texts (text[i]), which alone may go ahead (mark_early). */
static void merge_receipts(struct outbox_entry *entries, size_t n, bool *merged, bool *text)
{
    struct msg head, m;
    size_t head_i = 0;
    bool have = false;

    for (size_t i = 0; i < n; i++) {
        uint8_t id[MSG_ID_BYTES], kind = 0;
        merged[i] = false;
        /* Most are texts: tell them by a peek, decode only receipts. */
        bool peeked =
            msg_peek(entries[i].plaintext.data, entries[i].plaintext.len, id, &kind) == MP_OK;
        text[i] = peeked && kind == MSG_KIND_TEXT;
        if (!peeked || kind != MSG_KIND_RECEIPT ||
            msg_decode(entries[i].plaintext.data, entries[i].plaintext.len, &m) != MP_OK)
            continue;
        if (have && head.receipt_count + m.receipt_count <= MSG_RECEIPT_IDS_MAX) {
            memcpy(head.receipt_ids[head.receipt_count], m.receipt_ids,
                   (size_t)m.receipt_count * MSG_ID_BYTES);
            head.receipt_count += m.receipt_count;
            merged[i] = true;
            msg_clear(&m);
        } else {
            if (have) {
                merge_receipt_run(entries, i, head_i, &head, merged);
                msg_clear(&head);
            }
            head = m;
            head_i = i;
            have = true;
        }
    }
    if (have) {
        merge_receipt_run(entries, n, head_i, &head, merged);
        msg_clear(&head);
    }
}

/* Entries i .. of a group that share one envelope: as many as fit a bundle
 * (MSG_BUNDLE_MAX, and DELIVERY_BUNDLE_BYTES of plaintext), with the merged
 * receipts among and right after them (they go in the seal's write).
 * Returns the index past the last one taken. */
static size_t bundle_end(const struct outbox_entry *entries, const bool *merged, size_t n,
                         size_t i)
{
    size_t bytes = MSG_BUNDLE_OVERHEAD + MSG_BUNDLE_PART_OVERHEAD + entries[i].plaintext.len;
    size_t count = 1, j = i + 1;
    for (; j < n && count < MSG_BUNDLE_MAX; j++) {
        if (merged[j])
            continue;
        size_t more = MSG_BUNDLE_PART_OVERHEAD + entries[j].plaintext.len;
        if (bytes + more > DELIVERY_BUNDLE_BYTES)
            break;
        bytes += more;
        count++;
    }
    while (j < n && merged[j])
        j++;
    return j;
}

/* The bundles a group's entries fill as they are added, packed as
 * bundle_end packs them (merged receipts aside): count and bytes of the
 * last one, which began at entry first. */
struct packing {
    size_t bundles, count, bytes, first;
};

/* Entry i, len bytes of plaintext, into pk; true if it begins a bundle. */
static bool pack_entry(struct packing *pk, size_t i, size_t len)
{
    size_t more = MSG_BUNDLE_PART_OVERHEAD + len;
    if (pk->count > 0 && pk->count < MSG_BUNDLE_MAX && pk->bytes + more <= DELIVERY_BUNDLE_BYTES) {
        pk->bytes += more;
        pk->count++;
        return false;
    }
    *pk = (struct packing){.bundles = pk->bundles + 1, .count = 1,
                           .bytes = MSG_BUNDLE_OVERHEAD + more, .first = i};
    return true;
}

/* How a seal's write is made durable: synced at once; unsynced, the caller
 * syncs before anything sealed leaves; or unsynced, with what may leave
 * ahead of the caller's sync marked (mark_early). */
enum seal_mode { SEAL_SYNCED, SEAL_UNSYNCED, SEAL_AHEAD };

/* After a seal in a pass that seals ahead of its sync (SEAL_AHEAD): which
 * of the bundles (heads[k] .. ends[k] of seqs) may leave before that sync,
 * in order, up to the first that may not: texts only (a receipt says its
 * texts are stored, which the sync makes true), every seq under the seq
 * lease and every message number under the session's (leased: see
 * sessions_seal_many), both written before this pass and so durable. */
static void mark_early(struct delivery *d, struct peer *p, const uint64_t *seqs,
                       const size_t *heads, const size_t *ends, size_t bundles, bool leased)
{
    const bool *text = d->scratch->text;
    if (p->early_gen != d->early_gen) {
        p->early_gen = d->early_gen;
        p->early_from = p->early_upto = 0;
        p->early_closed = false;
    }
    for (size_t k = 0; k < bundles && !p->early_closed; k++) {
        bool ok = leased && seqs[ends[k] - 1] < d->seq_lease;
        for (size_t j = heads[k]; ok && j < ends[k]; j++)
            ok = text[j];
        if (!ok) {
            p->early_closed = true;
            break;
        }
        uint64_t head = seqs[heads[k]];
        if (p->early_from == 0)
            p->early_from = head;
        p->early_upto = head;
        if (head < d->early_lo)
            d->early_lo = head;
        if (head > d->early_hi)
            d->early_hi = head;
    }
}

/* Seal n entries for one peer with one session update and one write, made
 * durable as mode says: a burst of sends costs one fsync, not one each.
 * What fits goes as a bundle, one envelope for many messages: the first
 * entry of each (the head) has the envelope (kept apart) and its state row
 * lists the others (its riders), whose work-list keys go, so the pump
 * sends, and the peer acks, the head for all of them. The entries are
 * cleared. False if the seal failed (logged; the peer waits for its retry). */
static bool seal_group(struct delivery *d, struct peer *p, const uint64_t *seqs,
                       struct outbox_entry *entries, size_t n, uint64_t now,
                       enum seal_mode mode)
{
    struct buf *pts = d->scratch->pts, *envs = d->scratch->envs;
    struct msg_part *parts = d->scratch->parts;
    bool *merged = d->scratch->merged, *owned = d->scratch->owned, *text = d->scratch->text;
    size_t *heads = d->scratch->heads, *ends = d->scratch->ends;
    size_t bundles = 0;
    enum mp_err err = MP_OK;
    struct store_batch *b = batch_begin(d);

    /* Entry 0 is never merged (a merged receipt follows its head), so each
     * bundle starts on a message that goes out. */
    merge_receipts(entries, n, merged, text);
    for (size_t i = 0; i < n && err == MP_OK;) {
        size_t end = bundle_end(entries, merged, n, i), k = 0;
        for (size_t j = i; j < end; j++) {
            if (!merged[j])
                parts[k++] = (struct msg_part){entries[j].plaintext.data, entries[j].plaintext.len};
        }
        owned[bundles] = k > 1; /* alone, the message is the plaintext: the entry's */
        buf_init(&pts[bundles], 0);
        buf_init(&envs[bundles], 0);
        if (k == 1)
            pts[bundles] = entries[i].plaintext;
        else
            err = msg_bundle_encode(parts, k, &pts[bundles]);
        heads[bundles] = i;
        ends[bundles++] = end;
        i = end;
    }
    bool leased = false;
    if (err == MP_OK)
        err = sessions_seal_many(d->cfg.sessions, p->account, p->has_bundle ? &p->bundle : NULL,
                                 now, pts, bundles, b, envs, &leased);
    for (size_t k = 0; err == MP_OK && k < bundles; k++) {
        struct outbox_entry *head = &entries[heads[k]];
        uint8_t key[33], val[8];
        size_t most = ends[k] - heads[k] - 1; /* merged receipts among them are not riders */
        head->riders = most > 0 ? malloc(most * sizeof(*head->riders)) : NULL;
        if (most > 0 && head->riders == NULL) {
            err = MP_ERR_NOMEM;
            break;
        }
        for (size_t j = heads[k] + 1; j < ends[k]; j++) {
            seq_key(key, KEY_PENDING, seqs[j]);
            store_batch_delete(b, STORE_CF_OUTBOX_INDEX, key, 9); /* the head stands for it */
            if (!merged[j]) {
                head->riders[head->rider_count++] = seqs[j];
                continue;
            }
            /* A receipt whose ids went out in an earlier receipt: nothing left. */
            struct buf none;
            key[0] = KEY_ENTRY;
            store_batch_delete(b, STORE_CF_OUTBOX, key, 9);
            buf_init(&none, 0);
            cache_stage(d, seqs[j], &none);
        }
        buf_free(&head->envelope);
        head->envelope = envs[k];
        head->sealed = true;
        buf_init(&envs[k], 0); /* moved */
        key[0] = KEY_DIGEST;
        digest_of(head->envelope.data, head->envelope.len, key + 1);
        bytes_put_u64(val, seqs[heads[k]]);
        store_batch_put(b, STORE_CF_OUTBOX_INDEX, key, sizeof(key), val, sizeof(val));
        seq_key(key, KEY_ENTRY, seqs[heads[k]]);
        store_batch_put(b, STORE_CF_OUTBOX_SEALED, key, 9, head->envelope.data,
                        head->envelope.len);
        err = batch_state(d, b, seqs[heads[k]], head, false);
    }
    for (size_t k = 0; k < bundles; k++) {
        if (owned[k])
            buf_free(&pts[k]);
        buf_free(&envs[k]);
    }
    for (size_t i = 0; i < n; i++)
        outbox_entry_clear(&entries[i]);
    uint64_t lease = 0;
    if (err == MP_OK && mode == SEAL_AHEAD && seqs[n - 1] >= d->seq_lease_written) {
        /* Beyond the seq lease: the next one goes with this write. */
        lease = d->next_seq + DELIVERY_SEQ_LEASE;
        batch_meta_u64(b, meta_seq_lease, strlen(meta_seq_lease), lease);
    }
    if (err == MP_OK)
        err = batch_commit(d, b, mode == SEAL_SYNCED);
    store_batch_free(b);
    if (err == MP_OK) {
        if (lease != 0)
            d->seq_lease_written = lease;
        p->sealed_upto = seqs[n - 1];
        if (mode != SEAL_SYNCED) { /* durable with the next sync begun */
            if (seal_is_durable(d, p, seqs[0]))
                p->unsynced_from = seqs[0];
            p->unsynced_sync = d->syncs_begun + 1;
        }
        if (mode == SEAL_AHEAD)
            mark_early(d, p, seqs, heads, ends, bundles, leased);
    } else {
        char who[ADDRESS_TEXT_SIZE];
        address_encode(p->account, who);
        log_warn(MOD, "cannot encrypt for %s: %s; will retry", who, mp_strerror(err));
        p->has_bundle = false; /* fetch a fresh one */
        peer_failed(p, now, 0);
        p->seal_retry_at_ms = p->retry_at_ms; /* its mailboxes wait for the seal too */
    }
    return err == MP_OK;
}

/* Seal the first n - keep of a group's n entries (seal_group) and move the
 * last keep to the front, where the group goes on from, their packing (pk)
 * then one bundle; they are dropped if the seal failed (the peer waits for
 * its retry). Returns what is left. */
static size_t seal_front(struct delivery *d, struct peer *p, uint64_t *seqs,
                         struct outbox_entry *entries, size_t n, size_t keep,
                         struct packing *pk, uint64_t now, enum seal_mode mode)
{
    bool sealed = seal_group(d, p, seqs, entries, n - keep, now, mode);
    memmove(seqs, seqs + n - keep, keep * sizeof(*seqs));
    memmove(entries, entries + n - keep, keep * sizeof(*entries));
    pk->bundles = 1;
    pk->first = 0;
    if (sealed && keep > 0)
        return keep;
    for (size_t i = 0; i < keep; i++)
        outbox_entry_clear(&entries[i]);
    *pk = (struct packing){0};
    return 0;
}

/* Before sending, seal what waits unsealed, in groups per peer, each made
 * durable as mode says (seal_group). A group ends where a bundle does: at
 * DELIVERY_SEAL_BUNDLES bundles, or, at DELIVERY_SEAL_GROUP entries, before
 * the bundle they end in, which goes on into the next group; and, when the
 * pass's budget ends the walk, that last bundle waits for the next pass.
 * So a long queue goes in full envelopes, not each group's tail alone. */
static void seal_pending(struct delivery *d, uint64_t now, enum seal_mode mode)
{
    uint64_t *seqs = d->scratch->seqs;
    struct outbox_entry *entries = d->scratch->entries;
    struct peer *group = NULL;
    struct packing pk = {0};
    size_t n = 0, sealed = 0;
    const uint8_t *key, *val;
    size_t key_len, val_len;
    bool all_sealed = true; /* so far in this walk */

    if (d->sealed_below >= d->next_seq)
        return; /* nothing queued since the last walk found all sealed */
    struct store_iter *it = pending_iter(d, d->sealed_below);
    while (sealed < DELIVERY_SEAL_BATCH && store_iter_next(it, &key, &key_len, &val, &val_len)) {
        uint64_t seq = key_len == 9 && val_len == 32 ? bytes_get_u64(key + 1) : 0;
        /* The group is sealed before another peer joins it, and before a
         * new peer slot could evict the group's own. */
        if (n > 0 && (seq == 0 || memcmp(group->account, val, 32) != 0)) {
            seal_group(d, group, seqs, entries, n, now, mode);
            sealed += n;
            n = 0;
            pk = (struct packing){0};
            group = NULL;
        }
        /* What lay between the last key and this one is gone from the work
         * list: the next walk need not step over it again. */
        if (all_sealed && seq != 0)
            d->sealed_below = seq;
        bool left = seq != 0 && u64set_has(&d->damaged, seq); /* damaged: left where it is */
        struct peer *p = seq != 0 && !left ? peer_get(d, val, now) : NULL;
        if (left || (p != NULL && seq <= p->sealed_upto)) {
            if (all_sealed)
                d->sealed_below = seq + 1;
            continue;
        }
        all_sealed = false;
        if (p == NULL || p->seal_retry_at_ms > now ||
            (!p->via_mailbox && (p->retry_at_ms > now || !p->has_presence)))
            continue;
        if (load_entry(d, seq, &entries[n]) != MP_OK)
            continue;
        if (entries[n].sealed) { /* sealed before (another pass, or a restart) */
            p->sealed_upto = seq;
            outbox_entry_clear(&entries[n]);
            continue;
        }
        if (!p->has_bundle && !sessions_has(d->cfg.sessions, p->account)) {
            outbox_entry_clear(&entries[n]);
            continue;
        }
        group = p;
        seqs[n] = seq;
        bool full = pack_entry(&pk, n, entries[n].plaintext.len) &&
                    pk.bundles > DELIVERY_SEAL_BUNDLES;
        if (++n == DELIVERY_SEAL_GROUP || full) {
            /* The last bundle begun (this entry's, if full) goes on into the
             * next group, unless it is the group's only one. */
            size_t keep = pk.first > 0 ? n - pk.first : 0;
            sealed += n - keep;
            n = seal_front(d, group, seqs, entries, n, keep, &pk, now, mode);
        }
    }
    /* All sealed so far means no group formed, so the walk ran to the end. */
    if (all_sealed && store_iter_status(it) == MP_OK)
        d->sealed_below = d->next_seq; /* new entries come from here */
    store_iter_free(it);
    /* Stopped by the budget: the last bundle, maybe not full, waits (even
     * if it is the group's only one: the pass sealed enough). */
    size_t keep = sealed >= DELIVERY_SEAL_BATCH ? n - pk.first : 0;
    if (n > keep)
        n = seal_front(d, group, seqs, entries, n, keep, &pk, now, mode);
    for (size_t i = 0; i < n; i++)
        outbox_entry_clear(&entries[i]);
}

/* Send what is sealed and may go, walking the work list from past what
 * waits for its acks, at most DELIVERY_PUMP_BATCH entries, and while a sync
 * runs only up to the first entry it covers; wake lowered to when a retry
 * is due. Returns true when the walk stopped with more to do at once. */
static bool pump_walk(struct delivery *d, uint64_t now, uint64_t *wake)
{
    const uint8_t *key, *val;
    size_t key_len, val_len;
    unsigned done = 0;
    bool more = false, stopped = false, first = true;
    /* Start past the entries known to wait for their acks, if still so. */
    bool skip = d->sent_below > d->pending_floor && now < d->sent_below_due;
    bool in_flight = true; /* every entry so far in this walk waits for its ack */
    uint64_t flight_due = skip ? d->sent_below_due : UINT64_MAX;
    if (skip && d->sent_below_due < *wake)
        *wake = d->sent_below_due;
    if (!skip)
        d->sent_below = 0;

    struct store_iter *it = pending_iter(d, d->sent_below);
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        if (first && !skip && key_len == 9) /* the lowest pending seq: nothing lives below */
            d->pending_floor = bytes_get_u64(key + 1);
        first = false;
        if (key_len != 9 || val_len != 32)
            continue;
        if (done >= DELIVERY_PUMP_BATCH) {
            more = true; /* yield to the loop, then go on */
            break;
        }
        uint64_t seq = bytes_get_u64(key + 1);
        struct peer *p = peer_find(d, val);
        if (d->syncing && (p == NULL || !seal_is_durable(d, p, seq))) {
            stopped = true; /* this and what follows wait for the sync's end */
            break;
        }
        if (u64set_has(&d->damaged, seq)) { /* left where it is: stepped over like one in flight */
            if (in_flight)
                d->sent_below = seq + 1;
            continue;
        }
        uint64_t due = p != NULL ? p->last_send_ms + DELIVERY_ACK_TIMEOUT_MS : 0;
        if (in_flight)
            d->sent_below = seq; /* what lay before it is gone from the work list */
        if (in_flight && p != NULL && seq <= p->sent_upto && now < due) {
            d->sent_below = seq + 1;
            flight_due = due < flight_due ? due : flight_due;
        } else {
            in_flight = false;
        }
        done += pump_entry(d, seq, val, now, wake);
        if (d->sent_below == 0)
            in_flight = false; /* a peer's sent_upto went back just now */
    }
    d->sent_below_due = flight_due;
    if (!more && !stopped && store_iter_status(it) == MP_OK) {
        if (first && !skip)
            d->pending_floor = d->next_seq; /* nothing pending: new entries come from here */
        if (in_flight)
            d->sent_below = d->next_seq; /* all in flight, to the end of the work list */
    }
    store_iter_free(it);
    return more;
}

static void pump_cb(uv_timer_t *timer)
{
    struct delivery *d = timer->data;
    uint64_t now = sysenv_unix_ms();
    uint64_t wake = now + 60000;

    if (d->sync_failed)
        return; /* what was sealed unsynced must not leave: nothing goes until a restart */
    /* Also while syncing: under a steady load it always is. */
    expire_waiters(d, now);
    expire_due(d, now);
    if (d->syncing) {
        /* What is durable goes (a link drained meanwhile); what the sync
         * covers, and sealing, wait for its end (sync_done_cb), which pumps
         * again: not a timer set to 0 here, which libuv runs again before it
         * polls, so that the sync's end would never be heard. */
        (void)pump_walk(d, now, &wake);
        return;
    }
    d->seal_again = false;
    seal_pending(d, now, SEAL_SYNCED);
    if (d->next_expiry_ms < wake)
        wake = d->next_expiry_ms;
    for (size_t i = 0; i < DELIVERY_WAITERS_MAX; i++) {
        const struct waiter *w = &d->waiters[i];
        if (waiter_may_expire(d, w) && w->deadline_ms < wake)
            wake = w->deadline_ms;
    }
    bool more = pump_walk(d, now, &wake);
    if (!d->closing)
        uv_timer_start(&d->pump, pump_cb,
                       more || d->seal_again ? 0 : (wake > now ? wake - now : 0), 0);
}

/* ---- events to subscribers and waiters ---- */

static json_t *event_json(uint64_t cursor, const struct outbox_event *ev)
{
    static const char *const types[] = {"", "message", "sent", "delivered", "mailbox", "expired"};
    char peer[ADDRESS_TEXT_SIZE], id[2 * MSG_ID_BYTES + 1];

    address_encode(ev->peer, peer);
    hex(id, sizeof(id), ev->id, MSG_ID_BYTES);
    json_t *j = json_pack("{s:I, s:s, s:I, s:s, s:s}", "cursor", (json_int_t)cursor, "type",
                          types[ev->type], "at_ms", (json_int_t)ev->at_ms, "peer", peer, "id", id);
    if (j != NULL && ev->type == OUTBOX_EVENT_MESSAGE) {
        struct msg m;
        if (msg_decode(ev->plaintext.data, ev->plaintext.len, &m) == MP_OK) {
            json_object_set_new(j, "text", json_stringn(m.text, m.text_len));
            json_object_set_new(j, "sent_at_ms", json_integer((json_int_t)m.sent_at_ms));
            json_object_set_new(j, "counter", json_integer((json_int_t)m.counter));
            msg_clear(&m);
        }
        json_object_set_new(j, "request", json_boolean(ev->request));
    }
    return j;
}

/* Events from cursor `from` on, read in order with events_next: one pass
 * over the keys, not a lookup per cursor. */
static struct store_iter *events_from(struct delivery *d, uint64_t from)
{
    uint8_t start[9];
    seq_key(start, KEY_EVENT, from);
    return store_iter_new_at(d->cfg.store, STORE_CF_INBOX, start, 1, start, sizeof(start));
}

/* The next event of it below cursor upto, into ev_out with its cursor;
 * false once there is none. One that does not decode is skipped. */
static bool events_next(struct store_iter *it, uint64_t upto, uint64_t *cursor_out,
                        struct outbox_event *ev_out)
{
    const uint8_t *key, *val;
    size_t key_len, val_len;
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        uint64_t cursor = key_len == 9 ? bytes_get_u64(key + 1) : 0;
        if (cursor >= upto)
            return false;
        if (cursor != 0 && outbox_event_decode(val, val_len, ev_out) == MP_OK) {
            *cursor_out = cursor;
            return true;
        }
    }
    return false;
}

/* Free the slots of subscribers and waiters whose client went away. */
static void sweep(struct delivery *d)
{
    for (size_t i = 0; i < DELIVERY_SUBSCRIBERS_MAX; i++) {
        if (d->subs[i].call != NULL && !control_call_alive(d->subs[i].call)) {
            control_call_fail(d->subs[i].call, RPC_CODE_FAILED, MP_ERR_UNAVAILABLE, "gone");
            d->subs[i].call = NULL;
        }
    }
    for (size_t i = 0; i < DELIVERY_WAITERS_MAX; i++) {
        if (d->waiters[i].call != NULL && !control_call_alive(d->waiters[i].call)) {
            control_call_fail(d->waiters[i].call, RPC_CODE_FAILED, MP_ERR_UNAVAILABLE, "gone");
            d->waiters[i].call = NULL;
        }
    }
}

static void feed_cb(uv_timer_t *timer)
{
    struct delivery *d = timer->data;
    bool more = false, waiting = false;

    sweep(d);
    for (size_t i = 0; i < DELIVERY_SUBSCRIBERS_MAX; i++) {
        struct subscriber *s = &d->subs[i];
        if (s->call == NULL || s->next >= d->durable_cursor)
            continue;
        struct store_iter *it = events_from(d, s->next);
        bool at_end = false;
        for (unsigned n = 0; s->call != NULL; n++) {
            if (n == DELIVERY_FEED_BATCH) {
                more = true;
                break;
            }
            /* A slow reader is paused, not cut off: resume once it has read. */
            if (control_call_backlog(s->call) > DELIVERY_FEED_BACKLOG_MAX) {
                waiting = true;
                break;
            }
            struct outbox_event ev;
            uint64_t cursor;
            if (!events_next(it, d->durable_cursor, &cursor, &ev)) {
                at_end = store_iter_status(it) == MP_OK;
                waiting = waiting || !at_end; /* a read failed: try again in a while */
                break;
            }
            bool ok = control_call_notify(s->call, "event", event_json(cursor, &ev));
            outbox_event_clear(&ev);
            s->next = cursor + 1;
            if (!ok) { /* gone, or cut off for not reading */
                control_call_fail(s->call, RPC_CODE_FAILED, MP_ERR_UNAVAILABLE,
                                  "subscription ended");
                s->call = NULL;
            }
        }
        store_iter_free(it);
        if (at_end)
            s->next = d->durable_cursor; /* every event below it was pushed */
    }
    if ((more || waiting) && !d->closing)
        uv_timer_start(&d->feed, feed_cb, waiting && !more ? DELIVERY_FEED_RETRY_MS : 0, 0);
}

/* Waiters told of their message's delivery hear it once the message is
 * durable. */
static void answer_durable(struct delivery *d)
{
    for (size_t i = 0; i < DELIVERY_WAITERS_MAX; i++) {
        struct waiter *w = &d->waiters[i];
        if (w->call != NULL && w->delivered && w->durable_at <= d->syncs_done) {
            char id[2 * MSG_ID_BYTES + 1];
            hex(id, sizeof(id), w->id, MSG_ID_BYTES);
            control_call_reply(w->call, json_pack("{s:s, s:s}", "id", id, "state", "delivered"));
            w->call = NULL;
        }
    }
}

/* Message id was delivered: a `send --wait` for it hears so at once, if its
 * message is durable (it may have left ahead of its sync), else once it is
 * (answer_durable). Its new state is written, not yet synced, and that is
 * enough: the recipient's word (its "delivered" ack or receipt) cannot be
 * taken back by a crash here; what we lose, it repeats: our envelope is
 * resent and acked again, and a receipt's envelope is acked only after the
 * sync, so it is sent again. (Waiting for the sync added an fsync to each
 * round trip.) */
static void answer_waiters(struct delivery *d, const uint8_t id[MSG_ID_BYTES])
{
    bool found = false;
    for (size_t i = 0; i < DELIVERY_WAITERS_MAX; i++) {
        struct waiter *w = &d->waiters[i];
        if (w->call != NULL && memcmp(w->id, id, MSG_ID_BYTES) == 0) {
            w->delivered = true;
            found = true;
        }
    }
    if (found) /* most delivered messages have no waiter: no second pass */
        answer_durable(d);
}

/* The data of a `send` error after which message id stays queued: the
 * error's, and the id, so the caller can still follow the message. */
static json_t *queued_data(enum mp_err err, const uint8_t id[MSG_ID_BYTES])
{
    char hex_id[2 * MSG_ID_BYTES + 1];
    hex(hex_id, sizeof(hex_id), id, MSG_ID_BYTES);
    json_t *data = rpc_err_data(err);
    json_object_set_new(data, "id", json_string(hex_id));
    return data;
}

/* Every waiter hears err, and its slot is freed: one whose message is
 * durable hears that it stays queued (why_queued, and its id), one whose
 * message is not hears why_lost. */
static void fail_waiters(struct delivery *d, enum mp_err err, const char *why_queued,
                         const char *why_lost)
{
    for (size_t i = 0; i < DELIVERY_WAITERS_MAX; i++) {
        struct waiter *w = &d->waiters[i];
        if (w->call == NULL)
            continue;
        bool durable = w->durable_at <= d->syncs_done;
        control_call_fail_data(w->call, RPC_CODE_FAILED, durable ? why_queued : why_lost,
                               durable ? queued_data(err, w->id) : rpc_err_data(err));
        w->call = NULL;
    }
}

static void durable_cb(uv_timer_t *timer);
static void durable_timer_cb(uv_timer_t *timer);

/* Written (unsynced): its ack and news wait for the sync at the end of this
 * loop turn, or happen now if the group is full. */
static void pend(struct delivery *d, const struct durable_item *item)
{
    if (d->pend_count == DELIVERY_SYNC_GROUP)
        durable_cb(&d->durable);
    d->pend[d->pend_count++] = *item;
    d->needs_sync = d->sync_now = true;
    if (!d->closing)
        uv_timer_start(&d->durable, durable_timer_cb, 0, 0);
}

/* Written (unsynced), with the sync due at the end of this loop turn. */
static void pend_sync(struct delivery *d)
{
    d->needs_sync = d->sync_now = true;
    if (!d->closing)
        uv_timer_start(&d->durable, durable_timer_cb, 0, 0);
}

/* Written (unsynced), with nothing to do after the sync but show the new
 * events to listeners: a sync already due takes them, else one within
 * DELIVERY_NEWS_SYNC_MS. (An fsync at once after each ack kept the loop
 * from the next `send` for as long as the fsync took.) */
static void pend_news(struct delivery *d)
{
    d->needs_sync = true;
    if (!d->closing && !uv_is_active((uv_handle_t *)&d->durable))
        uv_timer_start(&d->durable, durable_timer_cb, DELIVERY_NEWS_SYNC_MS, 0);
}

static void pend_ack(struct delivery *d, const uint8_t node_key[32], const uint8_t digest[32],
                     uint8_t ack)
{
    struct durable_item item = {.ack = ack};
    memcpy(item.node_key, node_key, 32);
    memcpy(item.digest, digest, 32);
    pend(d, &item);
}

/* ---- sending ---- */

/* Whether text may be queued for to: MP_OK, or MP_ERR_TOO_BIG or
 * MP_ERR_INVAL (empty, not UTF-8, or to ourselves) with why, for the caller
 * to say, in *why_out. */
static enum mp_err check_text(struct delivery *d, const uint8_t to[32], const char *text,
                              size_t len, const char **why_out)
{
    _Static_assert(MSG_TEXT_MAX == 65536, "the message below names MSG_TEXT_MAX");
    if (len > MSG_TEXT_MAX) {
        *why_out = "text longer than 65536 bytes: split it";
        return MP_ERR_TOO_BIG;
    }
    if (len == 0)
        *why_out = "empty text: nothing to send";
    else if (!utf8_valid((const uint8_t *)text, len))
        *why_out = "not UTF-8 text";
    else if (memcmp(to, identity_public_key(d->cfg.account), 32) == 0)
        *why_out = "addressed to yourself";
    else
        return MP_OK;
    return MP_ERR_INVAL;
}

static void counter_key_of(uint8_t out[sizeof(meta_counter) - 1 + 32], const uint8_t to[32])
{
    memcpy(out, meta_counter, sizeof(meta_counter) - 1);
    memcpy(out + sizeof(meta_counter) - 1, to, 32);
}

/* A checked text into b as outbox entry seq with its counter, its id (the
 * seq's seqid) into id_out (the counters are the caller's, and so are its
 * keys: see batch_text_keys). */
static enum mp_err batch_text(struct delivery *d, struct store_batch *b, const uint8_t to[32],
                              const char *text, size_t len, uint64_t seq, uint64_t counter,
                              uint8_t id_out[MSG_ID_BYTES])
{
    struct msg m = {.kind = MSG_KIND_TEXT, .text = (char *)text, .text_len = len};
    struct outbox_entry e = {.state = OUTBOX_QUEUED};

    seqid_encode(d->msgid_key, seq, id_out);
    memcpy(m.id, id_out, MSG_ID_BYTES);
    m.sent_at_ms = sysenv_unix_ms();
    m.counter = counter;
    memcpy(e.to, to, 32);
    e.created_ms = m.sent_at_ms;
    buf_init(&e.envelope, MSG_LINK_ENVELOPE_MAX);
    enum mp_err err = msg_encode(&m, &e.plaintext);
    if (err == MP_OK)
        err = batch_entry(d, b, seq, &e);
    outbox_entry_clear(&e);
    return err;
}

static int id_seq_cmp(const void *a, const void *b)
{
    return memcmp(((const struct id_seq *)a)->id, ((const struct id_seq *)b)->id, MSG_ID_BYTES);
}

/* The pump's work-list keys of n texts (batch_text), entries seq0 .. seq0 +
 * n - 1 to tos[i], into b after their entries, in key order. A write batch
 * goes into the memtable key by key, each search starting from where the
 * last one ended: a run in order spares it a search from the top for each
 * key. */
static void batch_text_keys(struct store_batch *b, uint64_t seq0, size_t n,
                            const uint8_t (*tos)[32])
{
    uint8_t key[9];
    for (size_t i = 0; i < n; i++) {
        seq_key(key, KEY_PENDING, seq0 + i);
        store_batch_put(b, STORE_CF_OUTBOX_INDEX, key, sizeof(key), tos[i], 32);
    }
}

/* Queue a text for account `to`, written but not synced: the caller makes
 * it durable (durable_cb) before it tells anyone. A text check_text refuses
 * gets its error and *why_out; MP_ERR_DISK_FULL and other store errors queue
 * nothing either. */
static enum mp_err queue_text(struct delivery *d, const uint8_t to[32], const char *text,
                              size_t len, uint8_t id_out[MSG_ID_BYTES], const char **why_out)
{
    uint8_t counter_key[sizeof(meta_counter) - 1 + 32];
    uint64_t counter = 0;

    enum mp_err err = check_text(d, to, text, len, why_out);
    if (err != MP_OK)
        return err;
    counter_key_of(counter_key, to);
    err = meta_u64(d->cfg.store, (const char *)counter_key, sizeof(counter_key), &counter);
    if (err != MP_OK)
        return err;
    counter++;
    uint64_t seq = d->next_seq;
    struct store_batch *b = batch_begin(d);
    err = batch_text(d, b, to, text, len, seq, counter, id_out);
    if (err == MP_OK)
        batch_text_keys(b, seq, 1, (const uint8_t(*)[32])to);
    if (err == MP_OK) {
        batch_meta_u64(b, meta_seq, strlen(meta_seq), seq + 1);
        batch_meta_u64(b, (const char *)counter_key, sizeof(counter_key), counter);
        err = batch_commit(d, b, false);
    }
    store_batch_free(b);
    if (err != MP_OK)
        return err;
    d->next_seq = seq + 1;
    /* No kick: the caller pends it, and the pump runs after the sync of this
     * turn (durable_timer_cb), which seals it first, so one fsync covers
     * both; running it before would seal and sync on its own. */
    return MP_OK;
}

/* Receipt m (either kind, its body filled in) queued to to in b like a text
 * (no counter), as seq *seq_io, which is then incremented. */
static enum mp_err batch_receipt_msg(struct delivery *d, struct store_batch *b,
                                     const uint8_t to[32], struct msg *m, uint64_t *seq_io)
{
    struct outbox_entry e = {.state = OUTBOX_QUEUED};
    uint8_t key[9];

    seqid_encode(d->msgid_key, *seq_io, m->id);
    m->sent_at_ms = sysenv_unix_ms();
    memcpy(e.to, to, 32);
    e.created_ms = m->sent_at_ms;
    buf_init(&e.envelope, MSG_LINK_ENVELOPE_MAX);
    enum mp_err err = msg_encode(m, &e.plaintext);
    if (err == MP_OK)
        err = batch_entry(d, b, *seq_io, &e);
    if (err == MP_OK) {
        seq_key(key, KEY_PENDING, *seq_io);
        store_batch_put(b, STORE_CF_OUTBOX_INDEX, key, sizeof(key), to, 32);
        (*seq_io)++;
        batch_meta_u64(b, meta_seq, strlen(meta_seq), *seq_io);
    }
    outbox_entry_clear(&e);
    return err;
}

/* ---- receiving ---- */

/* The links of the first network with a link to node_key up, or NULL. */
static struct links *up_links(struct delivery *d, const uint8_t node_key[32])
{
    for (unsigned i = 0; i < DELIVERY_NETS_MAX; i++) {
        if (d->nets[i].links != NULL && links_is_up(d->nets[i].links, node_key))
            return d->nets[i].links;
    }
    return NULL;
}

/* Link message l (no envelope) to node_key on links, whose link is up (the
 * address is not needed). MP_ERR_BUSY when the link's queue is full. */
static enum mp_err link_send(struct links *links, const uint8_t node_key[32], struct msg_link *l)
{
    struct buf wire;
    struct addr none;

    memset(&none, 0, sizeof(none));
    buf_init(&l->envelope, 0);
    enum mp_err err = msg_link_encode(l, &wire);
    if (err == MP_OK) {
        err = links_send(links, node_key, &none, wire.data, wire.len);
        buf_free(&wire);
    }
    return err;
}

/* MP_OK, or MP_ERR_BUSY when the link's queue is full. */
static enum mp_err try_ack(struct delivery *d, const uint8_t node_key[32], const uint8_t digest[32],
                           uint8_t type)
{
    struct msg_link ack = {.type = type};

    memcpy(ack.digest, digest, 32);
    /* On a network whose link to the node is up: the envelope came on one,
     * and a node with links on two networks is a member of both. */
    struct links *links = up_links(d, node_key);
    return link_send(links != NULL ? links : d->nets[0].links, node_key, &ack);
}

/* Ack a stored envelope. A full link queue must not lose the ack (the sender
 * would resend after a timeout): it waits here, bounded, for writable. */
static void send_ack(struct delivery *d, const uint8_t node_key[32], const uint8_t digest[32],
                     uint8_t type)
{
    bool queued_before = false;
    for (size_t i = 0; i < d->ack_count && !queued_before; i++)
        queued_before = memcmp(d->acks[i].node_key, node_key, 32) == 0;
    if (!queued_before && try_ack(d, node_key, digest, type) != MP_ERR_BUSY)
        return;
    if (d->ack_count == DELIVERY_ACKS_WAITING_MAX)
        return; /* the sender resends; the duplicate is acked then */
    memcpy(d->acks[d->ack_count].node_key, node_key, 32);
    memcpy(d->acks[d->ack_count].digest, digest, 32);
    d->acks[d->ack_count].type = type;
    d->ack_count++;
}

/* The link to node_key has room: send the acks waiting for it, in order. */
static void flush_acks(struct delivery *d, const uint8_t node_key[32])
{
    size_t kept = 0;
    bool blocked = false;
    for (size_t i = 0; i < d->ack_count; i++) {
        struct pending_ack *a = &d->acks[i];
        bool mine = memcmp(a->node_key, node_key, 32) == 0;
        if (mine && !blocked && try_ack(d, a->node_key, a->digest, a->type) != MP_ERR_BUSY)
            continue; /* sent (or the link is gone: the sender resends) */
        blocked = blocked || mine;
        d->acks[kept++] = *a;
    }
    d->ack_count = kept;
}

static bool seen(struct delivery *d, const uint8_t sender[32], const uint8_t id[MSG_ID_BYTES])
{
    uint8_t key[1 + 32 + MSG_ID_BYTES], *val = NULL;
    size_t len = 0;
    key[0] = KEY_SEEN;
    memcpy(key + 1, sender, 32);
    memcpy(key + 33, id, MSG_ID_BYTES);
    bool found =
        store_get(d->cfg.store, STORE_CF_INBOX_INDEX, key, sizeof(key), &val, &len) == MP_OK;
    free(val);
    return found;
}

/* A change of state of outgoing entries (acked, delivered, held by
 * mailboxes, expired): what moves them, and what came of it. */
struct move {
    uint8_t state;         /* OUTBOX_SENT, _DELIVERED, _MAILBOX or _EXPIRED */
    uint64_t expires_ms;   /* OUTBOX_MAILBOX: held until */
    uint64_t now;          /* the events' time */
    size_t moved;          /* entries moved so far */
    struct buf *delivered; /* OUTBOX_DELIVERED: the ids of texts moved are appended */
};

static enum mp_err batch_move_riders(struct delivery *d, struct store_batch *b,
                                     const struct outbox_entry *head, struct move *mv);
static enum mp_err batch_move_bundle(struct delivery *d, struct store_batch *b, uint64_t seq,
                                     struct outbox_entry *head, struct move *mv);

/* A receipt: mark the messages it names delivered (at now); their ids are
 * appended to delivered_out (their waiters hear at once: answer_waiters). */
static enum mp_err take_receipt(struct delivery *d, struct store_batch *b, const uint8_t sender[32],
                                const struct msg *m, uint64_t now, struct buf *delivered_out)
{
    for (unsigned i = 0; i < m->receipt_count; i++) {
        uint64_t seq;
        struct outbox_entry e;
        if (!load_by_id(d, m->receipt_ids[i], &seq, &e))
            continue;
        bool ours = memcmp(e.to, sender, 32) == 0 && e.state != OUTBOX_DELIVERED;
        enum mp_err err = MP_OK;
        if (ours) {
            uint8_t key[9];
            bool dropped = envelope_kept(&e);
            e.state = OUTBOX_DELIVERED;
            if (dropped) {
                /* Before its ack (lost, or it went through mailboxes): the
                 * receipt shows the whole envelope arrived. Send it no more
                 * (a rider has no work-list key: its head has), and its
                 * riders are sent, if not more: their own receipts, later
                 * in this one (the head comes first) or in another, follow. */
                struct move mv = {.state = OUTBOX_SENT, .now = now};
                seq_key(key, KEY_PENDING, seq);
                store_batch_delete(b, STORE_CF_OUTBOX_INDEX, key, sizeof(key));
                err = batch_move_riders(d, b, &e, &mv);
                buf_free(&e.envelope); /* never sent again */
            }
            if (err == MP_OK)
                err = batch_state(d, b, seq, &e, dropped);
            struct outbox_event ev = {.type = OUTBOX_EVENT_DELIVERED, .at_ms = now};
            memcpy(ev.peer, sender, 32);
            memcpy(ev.id, m->receipt_ids[i], MSG_ID_BYTES);
            buf_init(&ev.plaintext, 0);
            uint64_t cursor;
            if (err == MP_OK)
                err = batch_event(d, b, &ev, &cursor);
            if (err == MP_OK) {
                d->next_cursor = cursor + 1;
                /* Past the list's cap (envelope receipts before this one in
                 * the bundle can fill it) a waiter hears at its timeout. */
                (void)buf_append(delivered_out, m->receipt_ids[i], MSG_ID_BYTES);
            }
        }
        outbox_entry_clear(&e);
        if (err != MP_OK)
            return err;
    }
    return MP_OK;
}

/* An envelope receipt from sender: the texts of our envelope with that
 * digest (its entry and riders) are delivered (at now), as by its node's
 * MSG_LINK_DELIVERED; their ids are appended to delivered_out. */
static enum mp_err take_envelope_receipt(struct delivery *d, struct store_batch *b,
                                         const uint8_t sender[32], const uint8_t digest[32],
                                         uint64_t now, struct buf *delivered_out)
{
    uint64_t seq;
    struct outbox_entry e;
    enum mp_err err = MP_OK;

    if (!lookup_seq(d, KEY_DIGEST, digest, 32, &seq) || load_entry(d, seq, &e) != MP_OK)
        return MP_OK; /* not ours, or gone */
    if (memcmp(e.to, sender, 32) == 0) {
        struct move mv = {.state = OUTBOX_DELIVERED, .now = now, .delivered = delivered_out};
        err = batch_move_bundle(d, b, seq, &e, &mv);
    }
    outbox_entry_clear(&e);
    return err;
}

/* A text from sender into the inbox (or requests): its event, in b; its
 * id and cursor into *taken_out, for the duplicate index (batch_seen). */
static enum mp_err batch_message(struct delivery *d, struct store_batch *b,
                                 const uint8_t sender[32], const struct msg_part *part,
                                 const struct msg *m, bool request, uint64_t now,
                                 struct id_seq *taken_out)
{
    struct outbox_event ev = {.type = OUTBOX_EVENT_MESSAGE, .at_ms = now, .request = request};
    uint64_t cursor;

    memcpy(ev.peer, sender, 32);
    memcpy(ev.id, m->id, MSG_ID_BYTES);
    /* The event keeps the message's own bytes (checked by msg_decode). */
    ev.plaintext = (struct buf){.data = (uint8_t *)part->data, .len = part->len};
    enum mp_err err = batch_event(d, b, &ev, &cursor);
    if (err != MP_OK)
        return err;
    memcpy(taken_out->id, m->id, MSG_ID_BYTES);
    taken_out->seq = cursor;
    d->next_cursor = cursor + 1;
    return MP_OK;
}

/* The duplicate index entries of n texts from sender (ids with their
 * cursors, sorted here) into b after their events, in key order (see
 * batch_text_keys). */
static void batch_seen(struct store_batch *b, const uint8_t sender[32], struct id_seq *taken,
                       size_t n)
{
    uint8_t key[1 + 32 + MSG_ID_BYTES], val[8];
    qsort(taken, n, sizeof(*taken), id_seq_cmp);
    key[0] = KEY_SEEN;
    memcpy(key + 1, sender, 32);
    for (size_t i = 0; i < n; i++) {
        memcpy(key + 33, taken[i].id, MSG_ID_BYTES);
        bytes_put_u64(val, taken[i].seq);
        store_batch_put(b, STORE_CF_INBOX_INDEX, key, sizeof(key), val, sizeof(val));
    }
}

/* Add id; false if it was there. The set never fills: it has twice as many
 * slots as a bundle has messages. */
static bool id_set_add(struct id_set *set, const uint8_t id[MSG_ID_BYTES])
{
    size_t i = (size_t)(bytes_get_u64(id) % ID_SET_SLOTS);
    while (set->used[i]) {
        if (memcmp(set->ids[i], id, MSG_ID_BYTES) == 0)
            return false;
        i = (i + 1) % ID_SET_SLOTS;
    }
    set->used[i] = true;
    memcpy(set->ids[i], id, MSG_ID_BYTES);
    return true;
}

/* The slot of the envelope digest cache where digest goes. */
static size_t digest_slot(const uint8_t digest[32])
{
    return bytes_get_u64(digest) % DELIVERY_DIGESTS;
}

/* The slot of the hello cache where node_key goes. */
static size_t hello_slot(const uint8_t node_key[32])
{
    return bytes_get_u64(node_key) % DELIVERY_HELLO_SLOTS;
}

/* Whether node_key's link said it takes MSG_LINK_DELIVERED. */
static bool takes_delivered(const struct delivery *d, const uint8_t node_key[32])
{
    return memcmp(d->hello_keys[hello_slot(node_key)], node_key, 32) == 0;
}

/* How to ack an envelope taken in (whole: all of it decoded, from a
 * contact; see take_messages): "taken" to our mailbox that handed it out;
 * on a link, MSG_LINK_DELIVERED when that stands for the receipts of its
 * texts and the node takes it, else MSG_LINK_ACK. */
static uint8_t ack_type(const struct delivery *d, const uint8_t node_key[32], bool from_mailbox,
                        bool whole)
{
    if (from_mailbox)
        return MSG_LINK_MB_TAKEN;
    return whole && takes_delivered(d, node_key) ? MSG_LINK_DELIVERED : MSG_LINK_ACK;
}

/* Receipts for the n texts in taken (ids), up to MSG_RECEIPT_IDS_MAX ids each,
 * queued to sender in b. */
static enum mp_err batch_receipts(struct delivery *d, struct store_batch *b,
                                  const uint8_t sender[32], const struct id_seq *taken, size_t n)
{
    enum mp_err err = MP_OK;

    for (size_t i = 0; err == MP_OK && i < n; i += MSG_RECEIPT_IDS_MAX) {
        unsigned count = n - i < MSG_RECEIPT_IDS_MAX ? (unsigned)(n - i) : MSG_RECEIPT_IDS_MAX;
        struct msg m = {.kind = MSG_KIND_RECEIPT, .receipt_count = count};
        for (unsigned j = 0; j < count; j++)
            memcpy(m.receipt_ids[j], taken[i + j].id, MSG_ID_BYTES);
        err = batch_receipt_msg(d, b, sender, &m, &d->next_seq);
    }
    return err;
}

/* The messages of one opened envelope (one, or a bundle) from sender into
 * b, in order: texts into the inbox, receipts marking ours delivered (ids
 * into delivered_out). A message that does not decode (damaged, or of a
 * newer version) is dropped, counted and logged: the others are taken and
 * the envelope is acked, so a sender is never stuck resending it.
 * *whole_out: every message decoded and the sender is a contact (verdict
 * DELIVER), so every text is in the inbox. Its texts are receipted then: by
 * the ack itself if ack_receipts (MSG_LINK_DELIVERED goes back), else by
 * receipt messages queued here. *texts_out counts the new texts. Errors:
 * the store's (nothing may be acked). */
static enum mp_err take_messages(struct delivery *d, struct store_batch *b,
                                 const uint8_t sender[32], const struct buf *pt,
                                 enum delivery_verdict verdict, bool ack_receipts, uint64_t now,
                                 struct buf *delivered_out, size_t *texts_out, bool *whole_out)
{
    struct msg_part *parts = d->scratch->parts;
    struct id_set *texts = &d->scratch->texts;
    struct id_seq *taken = d->scratch->taken;
    unsigned bad = 0;
    size_t n = 0, taken_count = 0;
    enum mp_err err = MP_OK;
    enum mp_err why = msg_split(pt->data, pt->len, parts, &n); /* the last part's error */

    bad += why != MP_OK;
    memset(texts->used, 0, sizeof(texts->used));
    for (size_t i = 0; err == MP_OK && i < n; i++) {
        struct msg m;
        enum mp_err dec = msg_decode(parts[i].data, parts[i].len, &m);
        if (dec != MP_OK) {
            why = dec;
            bad++;
            continue;
        }
        if (m.kind == MSG_KIND_RECEIPT) {
            err = take_receipt(d, b, sender, &m, now, delivered_out);
        } else if (m.kind == MSG_KIND_ENVELOPE_RECEIPT) {
            err = take_envelope_receipt(d, b, sender, m.digest, now, delivered_out);
        } else if (!id_set_add(texts, m.id) || seen(d, sender, m.id)) {
            d->duplicates++;
        } else {
            err = batch_message(d, b, sender, &parts[i], &m, verdict == DELIVERY_REQUEST, now,
                                &taken[taken_count]);
            taken_count += err == MP_OK;
        }
        msg_clear(&m);
    }
    /* Receipts only to contacts: a stranger cannot tell when we read. */
    *whole_out = verdict == DELIVERY_DELIVER && bad == 0;
    if (err == MP_OK && verdict == DELIVERY_DELIVER && !(*whole_out && ack_receipts))
        err = batch_receipts(d, b, sender, taken, taken_count);
    if (err == MP_OK)
        batch_seen(b, sender, taken, taken_count);
    *texts_out += taken_count;
    if (bad > 0) {
        char who[ADDRESS_TEXT_SIZE];
        address_encode(sender, who);
        d->failed_open += bad;
        log_warn(MOD, "%u message(s) from %s dropped: %s (a newer Merpati, or a damaged sender?)",
                 bad, who, mp_strerror(why));
    }
    return err;
}

/* A copy of an envelope taken before (our ack was lost, or another mailbox's
 * copy) that does not open again, from sender as its seal names it (not
 * proven: the ratchet refused it), into b. If its texts' receipt was our
 * MSG_LINK_DELIVERED (receipted_by_ack), that ack may be what was lost, and
 * this copy may have come a way no ack goes back (a mailbox): an envelope
 * receipt is queued to the sender, end to end, and the copy gets the plain
 * ack. When the digest cache no longer holds it (after a restart, or many
 * envelopes later) the caller takes any copy from a contact to be one: then
 * a part that did not decode the first time, or a restored sender's new
 * message refused as a replay, is receipted too (docs/THREAT-MODEL.md). */
static void on_copy(struct delivery *d, struct store_batch *b, const uint8_t node_key[32],
                    const uint8_t digest[32], const uint8_t sender[32], bool from_mailbox,
                    bool receipted_by_ack)
{
    uint64_t seq_before = d->next_seq;
    enum mp_err err = MP_OK;

    d->duplicates++;
    if (receipted_by_ack) {
        struct msg m = {.kind = MSG_KIND_ENVELOPE_RECEIPT};
        memcpy(m.digest, digest, 32);
        err = batch_receipt_msg(d, b, sender, &m, &d->next_seq);
        if (err == MP_OK)
            err = batch_commit(d, b, false);
    }
    if (err != MP_OK) {
        /* Not acked: the sender sends it again, and we try again. */
        log_error(MOD, "cannot queue a receipt: %s", mp_strerror(err));
        d->next_seq = seq_before;
        return;
    }
    size_t slot = digest_slot(digest);
    memcpy(d->digests[slot], digest, 32);
    d->receipted_by_ack[slot] = false; /* any receipt owed is queued now */
    pend_ack(d, node_key, digest, ack_type(d, node_key, from_mailbox, false));
}

/* An envelope from node_key: from the sender's node over a link, or
 * (from_mailbox) handed out by our mailbox at node_key. Either way it is
 * acked only once stored and synced: a link ack (2 or 11), or "taken". */
static void on_envelope(struct delivery *d, const uint8_t node_key[32], const struct buf *envelope,
                        bool from_mailbox, unsigned net)
{
    uint8_t sender[32], digest[32];
    struct buf pt, delivered;
    size_t messages = 0;
    uint64_t now = sysenv_unix_ms();
    uint64_t cursor_before = d->next_cursor, seq_before = d->next_seq;
    bool committed = false;

    buf_init(&pt, 0);
    buf_init(&delivered, DELIVERED_IDS_MAX * MSG_ID_BYTES);
    struct store_batch *b = batch_begin(d);
    enum mp_err err = MP_OK;
    bool opened = false, whole = false;
    digest_of(envelope->data, envelope->len, digest);
    size_t slot = digest_slot(digest);
    bool seen_before = memcmp(d->digests[slot], digest, 32) == 0;
    if (seen_before && !d->receipted_by_ack[slot]) {
        /* Taken in before, its receipts (if owed) queued then: its write is
         * in the store, synced by the time this ack goes. */
        d->duplicates++;
        pend_ack(d, node_key, digest, ack_type(d, node_key, from_mailbox, false));
        goto cleanup;
    }
    err = sessions_open(d->cfg.sessions, envelope->data, envelope->len, now, b, sender, &pt);
    opened = err == MP_OK;
    /* A digest taken before opened its seal then, so sender is set whatever
     * the ratchet says now (a replay, or a session replaced since). */
    if (err == MP_ERR_RATCHET_REPLAY || err == MP_ERR_SESSION_REPLAY ||
        (seen_before && err != MP_OK)) {
        on_copy(d, b, node_key, digest, sender, from_mailbox,
                seen_before || d->cfg.is_contact_cb == NULL ||
                    d->cfg.is_contact_cb(d->cfg.classify_arg, sender));
        goto cleanup;
    }
    if (err != MP_OK) {
        d->failed_open++;
        log_info(MOD, "an envelope from %s %02x%02x... does not open: %s",
                 from_mailbox ? "mailbox node" : "node", node_key[0], node_key[1],
                 mp_strerror(err));
        /* Mail that can never open (not ours, damaged) would be handed out
         * forever: take it, and so drop it. */
        if (from_mailbox && (err == MP_ERR_ENVELOPE_OPEN || err == MP_ERR_MALFORMED ||
                             err == MP_ERR_WIRE_VERSION || err == MP_ERR_TOO_BIG ||
                             err == MP_ERR_WEAK_KEY))
            pend_ack(d, node_key, digest, MSG_LINK_MB_TAKEN);
        goto cleanup;
    }
    /* Mail from a mailbox says nothing of the sender's node. */
    enum delivery_verdict verdict =
        d->cfg.classify_cb != NULL
            ? d->cfg.classify_cb(d->cfg.classify_arg, sender, from_mailbox ? NULL : node_key)
            : DELIVERY_DELIVER;
    if (verdict == DELIVERY_KEY_CHANGED) {
        d->refused++;
        goto cleanup; /* no ack, nothing stored: it comes again once trusted */
    }
    if (verdict != DELIVERY_DROP && !from_mailbox && d->cfg.network_seen_cb != NULL)
        d->cfg.network_seen_cb(d->cfg.classify_arg, sender, net);
    if (verdict == DELIVERY_DROP) {
        /* Blocked, or a stranger while the requests list is full: ack so it is
         * not resent, but keep nothing, not even the session, so that fresh
         * identities cannot grow our store. */
        d->refused++;
        pend_ack(d, node_key, digest, ack_type(d, node_key, from_mailbox, false));
        goto cleanup;
    }
    bool ack_receipts = ack_type(d, node_key, from_mailbox, true) == MSG_LINK_DELIVERED;
    err = take_messages(d, b, sender, &pt, verdict, ack_receipts, now, &delivered, &messages,
                        &whole);
    /* Written unsynced; the ack and the news wait for the one sync of this
     * loop turn (durable_cb), so many envelopes cost one fsync. */
    if (err == MP_OK && d->next_cursor != cursor_before)
        batch_cursor(d, b);
    if (err == MP_OK)
        err = batch_commit(d, b, false);
    if (err != MP_OK) {
        /* Not stored, so not acked: the sender sends it again. */
        log_error(MOD, "cannot store an incoming message: %s", mp_strerror(err));
        d->next_cursor = cursor_before;
        d->next_seq = seq_before;
        goto cleanup;
    }
    committed = true;
    d->received += messages;
    uint8_t ack = ack_type(d, node_key, from_mailbox, whole);
    memcpy(d->digests[slot], digest, 32);
    /* An envelope of receipts only owes none: its copies get no envelope receipt. */
    d->receipted_by_ack[slot] = ack == MSG_LINK_DELIVERED && messages > 0;
    if (messages > 0)
        pend_sync(d);
    for (size_t i = 0; i < delivered.len; i += MSG_ID_BYTES)
        answer_waiters(d, delivered.data + i);
    pend_ack(d, node_key, digest, ack);
cleanup:
    if (opened && !committed)
        sessions_discard(d->cfg.sessions); /* so the resent envelope opens again */
    store_batch_free(b);
    buf_free(&pt);
    buf_free(&delivered);
}

/* What a sync made durable may now happen: pend[0 .. n) (the acks go out,
 * `send` calls are answered), listeners hear of the events below cursor,
 * seqs below lease may leave ahead of later syncs, receipts go. */
static void release_durable(struct delivery *d, size_t n, uint64_t cursor, uint64_t lease)
{
    if (cursor > d->durable_cursor)
        d->durable_cursor = cursor;
    if (lease > d->seq_lease)
        d->seq_lease = lease;
    for (size_t i = 0; i < n; i++) {
        if (d->pend[i].reply != NULL && d->pend[i].result != NULL) {
            control_call_reply(d->pend[i].reply, d->pend[i].result);
        } else if (d->pend[i].reply != NULL) {
            char id_hex[2 * MSG_ID_BYTES + 1];
            const struct peer *p = peer_find(d, d->pend[i].to);
            hex(id_hex, sizeof(id_hex), d->pend[i].event_id, MSG_ID_BYTES);
            /* "mailbox": its node is known to be unreachable, so it goes there. */
            control_call_reply(d->pend[i].reply,
                               json_pack("{s:s, s:s, s:s}", "id", id_hex, "state", "queued", "via",
                                         p != NULL && p->via_mailbox ? "mailbox" : "direct"));
        }
        if (d->pend[i].ack == MSG_LINK_MB_TAKEN)
            mailbox_taken(d->cfg.mailbox, d->pend[i].node_key, d->pend[i].digest);
        else if (d->pend[i].ack != 0)
            send_ack(d, d->pend[i].node_key, d->pend[i].digest, d->pend[i].ack);
    }
    memmove(d->pend, d->pend + n, (d->pend_count - n) * sizeof(d->pend[0]));
    d->pend_count -= n;
    answer_durable(d);
    if (!d->closing) {
        uv_timer_start(&d->feed, feed_cb, 0, 0);
        kick(d); /* receipts to send, resends to reconsider */
    }
}

#define SYNC_FAILED_LOST                                                                           \
    "the store cannot write, so the message may not be queued: after a restart of the node "      \
    "(see its log), look in history before sending it again"

/* A sync failed. Nothing waiting for one was promised: senders resend what
 * they have no ack for, and `send` calls (those waiting for delivery too)
 * hear that their message may not be queued. Nothing more is sent (pump_cb)
 * until a restart. */
static void sync_failed(struct delivery *d, enum mp_err err)
{
    log_error(MOD, "cannot sync the store: %s; %zu acks withheld, nothing more is sent",
              mp_strerror(err), d->pend_count);
    d->sync_failed = true;
    for (size_t i = 0; i < d->pend_count; i++) {
        if (d->pend[i].reply != NULL)
            control_call_fail(d->pend[i].reply, RPC_CODE_FAILED, err, SYNC_FAILED_LOST);
        json_decref(d->pend[i].result);
    }
    d->pend_count = 0;
    fail_waiters(d, err,
                 "the store cannot write; the message stays queued, and goes once the node is "
                 "restarted (see its log)",
                 SYNC_FAILED_LOST);
}

/* A sync here and now: everything written so far becomes durable (also
 * what a sync on the thread pool is still on); then the acks go out,
 * listeners hear, receipts go. */
static void sync_here(struct delivery *d)
{
    uint64_t number = d->syncs_begun + 1, lease = d->seq_lease_written;
    enum mp_err err = store_sync(d->cfg.store);
    d->syncs_begun = number;
    d->needs_sync = d->sync_now = false;
    d->sync_pend = 0; /* the sync on the thread pool, if any, has nothing left to answer */
    if (err != MP_OK) {
        sync_failed(d, err);
        return;
    }
    d->syncs_done = number;
    release_durable(d, d->pend_count, d->next_cursor, lease);
}

/* The sync at the end of a loop turn, here and now (a full group, a close):
 * what this turn queued (texts, receipts) is sealed first, unsynced, so the
 * one sync makes message and envelope durable together and the pump can
 * send at once: one fsync per turn instead of two. */
static void durable_cb(uv_timer_t *timer)
{
    struct delivery *d = timer->data;

    if (!d->needs_sync && !d->syncing)
        return;
    if (!d->sync_failed && !d->closing)
        seal_pending(d, sysenv_unix_ms(), SEAL_UNSYNCED);
    sync_here(d);
}

static void delivery_free(struct delivery *d);

static void sync_work_cb(uv_work_t *work)
{
    struct delivery *d = work->data;
    d->sync_error = store_sync_wal(d->cfg.store);
}

/* The sync on the thread pool is back: what it covered is released, the
 * pump sends the rest, and what was written meanwhile gets its sync. */
static void sync_done_cb(uv_work_t *work, int status)
{
    struct delivery *d = work->data;
    enum mp_err err = store_sync_result(d->cfg.store, d->sync_error);
    size_t n = d->sync_pend;

    (void)status; /* 0: nothing cancels it */
    d->sync_error = NULL;
    d->syncing = false;
    d->sync_pend = 0;
    if (--d->open_handles == 0 && d->closing) {
        delivery_free(d);
        return;
    }
    if (d->closing)
        return; /* delivery_close synced and answered everything */
    if (err != MP_OK) {
        sync_failed(d, err);
        return;
    }
    if (d->sync_number > d->syncs_done)
        d->syncs_done = d->sync_number;
    links_hold(d->cfg.links, true);
    release_durable(d, n, d->sync_cursor, d->sync_lease);
    links_hold(d->cfg.links, false);
    /* Written meanwhile and due now: the end-of-turn pass seals it (ahead
     * if it may) and pumps; the pump alone would seal it with a sync of its
     * own. News waits as pend_news says. */
    if (d->needs_sync && d->sync_now) {
        /* What the sync made durable and did not go ahead (its link was
         * full) goes now, before the next pass seals more. */
        uint64_t now = sysenv_unix_ms(), wake = UINT64_MAX;
        links_hold(d->cfg.links, true);
        if (pump_walk(d, now, &wake))
            kick(d); /* (not syncing yet: the timer runs after this turn's pass) */
        links_hold(d->cfg.links, false);
        durable_timer_cb(&d->durable);
        return;
    }
    links_hold(d->cfg.links, true);
    pump_cb(&d->pump);
    links_hold(d->cfg.links, false);
    if (d->needs_sync)
        uv_timer_start(&d->durable, durable_timer_cb, DELIVERY_NEWS_SYNC_MS, 0);
}

/* Begin the sync of everything written so far on the thread pool; false if
 * it cannot be queued. */
static bool sync_ahead(struct delivery *d)
{
    d->sync_work.data = d;
    if (uv_queue_work(d->cfg.loop, &d->sync_work, sync_work_cb, sync_done_cb) != 0)
        return false;
    d->syncing = true;
    d->open_handles++;
    d->needs_sync = d->sync_now = false;
    d->sync_pend = d->pend_count;
    d->sync_cursor = d->next_cursor;
    d->sync_lease = d->seq_lease_written;
    d->sync_number = ++d->syncs_begun;
    return true;
}

/* Send what the sealing pass marked as free to leave ahead of its sync, in
 * seq order, each peer up to its first entry that is neither in flight nor
 * marked. The walk starts where entries not known to be in flight may be,
 * and takes at most DELIVERY_PUMP_BATCH steps: what it does not reach
 * leaves after the sync. */
static void send_ahead(struct delivery *d)
{
    uint64_t now = sysenv_unix_ms(), wake = UINT64_MAX;
    /* Below sent_below all wait for their acks until sent_below_due (pump_cb). */
    bool in_flight = d->sent_below > d->pending_floor && now < d->sent_below_due;
    uint64_t from = in_flight ? d->sent_below : d->pending_floor;
    const uint8_t *key, *val;
    size_t key_len, val_len;

    struct store_iter *it = pending_iter(d, from < d->early_lo ? from : d->early_lo);
    for (unsigned steps = 0;
         steps < DELIVERY_PUMP_BATCH && store_iter_next(it, &key, &key_len, &val, &val_len);
         steps++) {
        uint64_t seq = key_len == 9 ? bytes_get_u64(key + 1) : 0;
        if (seq > d->early_hi)
            break;
        struct peer *p = seq != 0 && val_len == 32 ? peer_find(d, val) : NULL;
        if (p == NULL || p->early_gen != d->early_gen || seq <= p->sent_upto)
            continue;
        if (p->via_mailbox || seq < p->early_from || seq > p->early_upto) {
            p->early_gen = 0; /* it waits unsent: nothing of p passes it */
            continue;
        }
        pump_entry(d, seq, val, now, &wake);
    }
    store_iter_free(it);
}

/* The end of a loop turn: what the turn queued is sealed. If some of it may
 * leave ahead of the sync (mark_early), it does, and the sync runs on the
 * thread pool (or here, if it cannot be queued): the peer stores it as we
 * sync. Else the sync, then at once the pump, so that what the sync let go
 * (acks, and the receipts and texts sealed before it) leaves in this same
 * turn, in one write per link (links_hold), instead of the envelopes a turn
 * after the acks: the peer takes them in with one sync. */
static void durable_timer_cb(uv_timer_t *timer)
{
    struct delivery *d = timer->data;

    if (d->syncing || !d->needs_sync)
        return; /* (a sync on the thread pool comes back here when it ends) */
    links_hold(d->cfg.links, true);
    if (!d->sync_failed && !d->closing) {
        d->early_gen++;
        d->early_lo = UINT64_MAX;
        d->early_hi = 0;
        seal_pending(d, sysenv_unix_ms(), SEAL_AHEAD);
        if (d->early_hi != 0) {
            /* Written first: the peer's store and sync are the longer way. */
            send_ahead(d);
            links_hold(d->cfg.links, false);
            if (sync_ahead(d)) {
                sessions_prepare(d->cfg.sessions); /* while the peer takes it in */
                return;
            }
            links_hold(d->cfg.links, true);
        }
    }
    sync_here(d); /* what waits is sealed: not walked for again */
    if (!d->closing && !d->sync_failed)
        pump_cb(&d->pump);
    links_hold(d->cfg.links, false);
    /* Sent: while the peer takes it in, the next seal's key pair is made. */
    if (!d->closing)
        sessions_prepare(d->cfg.sessions);
}

/* Whether entry e may move to state (forward only: a delivered or expired
 * message stays so); moves it if so. *event_out: the move is news (a first
 * "sent", "delivered", "mailbox" or "expired"; a later mailbox expiry is
 * not). */
static bool move_entry(struct outbox_entry *e, uint8_t state, uint64_t expires_ms,
                       bool *event_out)
{
    *event_out = true;
    if (state == OUTBOX_SENT && e->state != OUTBOX_QUEUED && e->state != OUTBOX_MAILBOX)
        return false;
    if (state == OUTBOX_DELIVERED && e->state == OUTBOX_DELIVERED)
        return false;
    if (state == OUTBOX_EXPIRED && e->state != OUTBOX_MAILBOX)
        return false;
    if (state == OUTBOX_MAILBOX) {
        if (e->state == OUTBOX_MAILBOX && expires_ms > e->expires_ms)
            *event_out = false; /* held longer by another mailbox */
        else if (e->state != OUTBOX_QUEUED)
            return false;
        e->expires_ms = expires_ms;
    }
    e->state = state;
    if (state != OUTBOX_MAILBOX)
        buf_free(&e->envelope); /* never sent again: keep the message, not its envelope */
    return true;
}

/* Move one entry (loaded in e) as mv says, in b, with its event if it is a
 * text. Only texts are delivered: a receipt riding along is sent. */
static enum mp_err batch_move_one(struct delivery *d, struct store_batch *b, uint64_t seq,
                                  struct outbox_entry *e, struct move *mv)
{
    static const uint8_t events[] = {[OUTBOX_SENT] = OUTBOX_EVENT_SENT,
                                     [OUTBOX_DELIVERED] = OUTBOX_EVENT_DELIVERED,
                                     [OUTBOX_MAILBOX] = OUTBOX_EVENT_MAILBOX,
                                     [OUTBOX_EXPIRED] = OUTBOX_EVENT_EXPIRED};
    struct outbox_event ev = {.at_ms = mv->now};
    uint8_t kind = 0;
    bool event;

    bool text = msg_peek(e->plaintext.data, e->plaintext.len, ev.id, &kind) == MP_OK &&
                kind == MSG_KIND_TEXT;
    uint8_t state = mv->state == OUTBOX_DELIVERED && !text ? OUTBOX_SENT : mv->state;
    bool held = envelope_kept(e);
    if (!move_entry(e, state, mv->expires_ms, &event))
        return MP_OK;
    enum mp_err err = batch_state(d, b, seq, e, held && !envelope_kept(e));
    if (err == MP_OK && event && text) {
        uint64_t cursor;
        ev.type = events[state];
        memcpy(ev.peer, e->to, 32);
        buf_init(&ev.plaintext, 0);
        err = batch_event(d, b, &ev, &cursor);
        if (err == MP_OK)
            d->next_cursor = cursor + 1;
    }
    /* As in take_receipt: past the list's cap a waiter hears at its timeout. */
    if (err == MP_OK && state == OUTBOX_DELIVERED && mv->delivered != NULL)
        (void)buf_append(mv->delivered, ev.id, MSG_ID_BYTES);
    mv->moved += err == MP_OK;
    return err;
}

/* The riders of head's envelope moved as mv says, each as batch_move_one, into b. */
static enum mp_err batch_move_riders(struct delivery *d, struct store_batch *b,
                                     const struct outbox_entry *head, struct move *mv)
{
    enum mp_err err = MP_OK;
    for (size_t i = 0; err == MP_OK && i < head->rider_count; i++) {
        struct outbox_entry e;
        err = load_entry(d, head->riders[i], &e); /* riders are never deleted */
        if (err == MP_OK) {
            err = batch_move_one(d, b, head->riders[i], &e, mv);
            outbox_entry_clear(&e);
        }
    }
    return err;
}

/* Entry seq (loaded in head) and the riders of its envelope moved as mv
 * says, each as batch_move_one, into b; unless mailboxes now hold it,
 * nothing more is sent of it (its work-list key goes). */
static enum mp_err batch_move_bundle(struct delivery *d, struct store_batch *b, uint64_t seq,
                                     struct outbox_entry *head, struct move *mv)
{
    if (mv->state != OUTBOX_MAILBOX) {
        uint8_t key[9];
        seq_key(key, KEY_PENDING, seq);
        store_batch_delete(b, STORE_CF_OUTBOX_INDEX, key, sizeof(key));
    }
    enum mp_err err = batch_move_one(d, b, seq, head, mv);
    return err == MP_OK ? batch_move_riders(d, b, head, mv) : err;
}

/* Move entry seq (loaded in head) and the riders of its envelope to state
 * (OUTBOX_SENT, OUTBOX_DELIVERED, OUTBOX_MAILBOX held until expires_ms,
 * OUTBOX_EXPIRED), each as move_entry allows, with their events, in one
 * write, unsynced: if lost, the answer comes again (an ack for the resent
 * envelope, the mailbox's answer, the next sweep). The waiters of texts
 * delivered hear at once. Returns the messages moved. */
static size_t move_bundle(struct delivery *d, uint64_t seq, struct outbox_entry *head,
                          uint8_t state, uint64_t expires_ms)
{
    struct store_batch *b = batch_begin(d);
    uint64_t cursor_before = d->next_cursor;
    struct buf delivered;
    struct move mv = {.state = state, .expires_ms = expires_ms, .now = sysenv_unix_ms(),
                      .delivered = &delivered};

    buf_init(&delivered, (size_t)MSG_BUNDLE_MAX * MSG_ID_BYTES);
    enum mp_err err = batch_move_bundle(d, b, seq, head, &mv);
    /* The recipient's word: unlike a receipt (answered after its write),
     * waiting neither for our sync nor for our write of it, so a `send`
     * waiting on a round trip hears first. */
    for (size_t i = 0; err == MP_OK && i < delivered.len; i += MSG_ID_BYTES)
        answer_waiters(d, delivered.data + i);
    buf_free(&delivered);
    if (err == MP_OK && d->next_cursor != cursor_before)
        batch_cursor(d, b);
    if (err == MP_OK)
        err = batch_commit(d, b, false);
    store_batch_free(b);
    if (err != MP_OK) {
        log_warn(MOD, "cannot record a change of state of outgoing messages: %s; it is "
                 "recorded when the peer or mailbox answers again", mp_strerror(err));
        d->next_cursor = cursor_before;
        return 0;
    }
    if (d->next_cursor != cursor_before)
        pend_news(d); /* the events are news once synced */
    return mv.moved;
}

/* An ack from node_key (delivered: MSG_LINK_DELIVERED). That stands for the
 * receipts of the envelope's texts, so it counts only from the recipient's
 * own node, the one its presence record (signed by its account) names; from
 * any other it is ignored, the presence is looked up again (the recipient
 * may have moved), and the envelope goes again until that node or receipts
 * answer. */
static void on_ack(struct delivery *d, const uint8_t node_key[32], const uint8_t digest[32],
                   bool delivered)
{
    uint64_t seq;
    struct outbox_entry e;

    if (!lookup_seq(d, KEY_DIGEST, digest, 32, &seq) || load_entry(d, seq, &e) != MP_OK)
        return;
    struct peer *p = peer_find(d, e.to);
    bool from_recipient =
        p != NULL && p->has_presence && memcmp(p->presence.node_key, node_key, 32) == 0;
    if (delivered && !from_recipient) {
        if (p != NULL)
            p->presence_at_ms = 0;
        outbox_entry_clear(&e);
        return;
    }
    if (p != NULL)
        p->failures = 0;
    d->acked += move_bundle(d, seq, &e, delivered ? OUTBOX_DELIVERED : OUTBOX_SENT, 0);
    outbox_entry_clear(&e);
}

/* A mailbox's answer to our store. */
static void on_stored(struct delivery *d, const uint8_t node_key[32], const struct msg_link *l)
{
    uint64_t seq, now = sysenv_unix_ms();
    struct outbox_entry e;
    struct target *t = NULL;

    if (!lookup_seq(d, KEY_DIGEST, l->digest, 32, &seq) || load_entry(d, seq, &e) != MP_OK)
        return; /* not ours (an answer to a handoff), or gone */
    struct peer *p = peer_find(d, e.to);
    for (size_t i = 0; p != NULL && i < p->target_count && t == NULL; i++) {
        if (memcmp(p->targets[i].node.key, node_key, 32) == 0)
            t = &p->targets[i];
    }
    if (t == NULL) { /* not a node we asked: its word counts for nothing */
        outbox_entry_clear(&e);
        return;
    }
    if (l->status != MSG_MB_HELD) {
        static const char *const why[] = {"", "is full", "is rate-limiting us", "refused it"};
        d->mb_full += l->status == MSG_MB_FULL;
        d->mb_rate += l->status == MSG_MB_RATE;
        d->mb_refused += l->status == MSG_MB_REFUSED;
        if (t->failures == 0 || t->last_status != l->status) {
            char who[ADDRESS_TEXT_SIZE];
            address_encode(e.to, who);
            log_info(MOD, "a mailbox of %s (node %02x%02x...) %s: will retry", who, node_key[0],
                     node_key[1], why[l->status]);
        }
        t->last_status = l->status;
        if (t->sent_upto >= seq)
            t->sent_upto = seq - 1; /* in order: from this one on, later */
        target_failed(t, now);
        outbox_entry_clear(&e);
        return;
    }
    d->mb_held++;
    t->last_status = l->status;
    t->failures = 0;
    if (seq > t->stored_upto)
        t->stored_upto = seq;
    /* The latest expiry any of its mailboxes gave (bounded: a year), so one
     * mailbox with a short memory does not end the message for the others. */
    uint64_t expires_ms = l->expires_s;
    if (expires_ms > now / 1000 + DELIVERY_EXPIRY_MAX_S)
        expires_ms = now / 1000 + DELIVERY_EXPIRY_MAX_S;
    expires_ms *= 1000;
    if (move_bundle(d, seq, &e, OUTBOX_MAILBOX, expires_ms) > 0 &&
        expires_ms < d->next_expiry_ms)
        d->next_expiry_ms = expires_ms;
    outbox_entry_clear(&e);
}

/* Entries whose mailboxes dropped them without a receipt are not delivered:
 * say so. Runs when the earliest known expiry is due (and once at start),
 * from any pump, also while a sync runs on the thread pool (its writes get
 * the next sync, as an ack's do). */
static void expire_due(struct delivery *d, uint64_t now)
{
    uint8_t prefix = KEY_PENDING;
    const uint8_t *key, *val;
    size_t key_len, val_len;
    uint64_t next = UINT64_MAX;

    if (now < d->next_expiry_ms)
        return;
    struct store_iter *it = store_iter_new(d->cfg.store, STORE_CF_OUTBOX_INDEX, &prefix, 1);
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        struct outbox_entry e;
        uint64_t seq = key_len == 9 ? bytes_get_u64(key + 1) : 0;
        if (seq == 0 || load_entry(d, seq, &e) != MP_OK)
            continue;
        if (e.state == OUTBOX_MAILBOX && e.expires_ms != 0 && e.expires_ms <= now) {
            d->expired += move_bundle(d, seq, &e, OUTBOX_EXPIRED, 0);
        } else if (e.state == OUTBOX_MAILBOX && e.expires_ms != 0 && e.expires_ms < next) {
            next = e.expires_ms;
        }
        outbox_entry_clear(&e);
    }
    store_iter_free(it);
    d->next_expiry_ms = next;
}

void delivery_on_mail(struct delivery *d, const uint8_t node_key[32], const struct buf *envelope)
{
    if (!d->closing)
        on_envelope(d, node_key, envelope, true, 0);
}

/* node_key's link said what it understands. */
static void on_hello(struct delivery *d, const uint8_t node_key[32], uint32_t features)
{
    uint8_t *slot = d->hello_keys[hello_slot(node_key)];
    if (features & MSG_FEATURE_DELIVERED)
        memcpy(slot, node_key, 32);
    else if (memcmp(slot, node_key, 32) == 0)
        memset(slot, 0, 32);
}

/* Our hello on the new link to node_key on net, as it comes up. What was
 * queued while the link was dialled goes before it, and if the queue has no
 * room it is not sent: the peer acks those envelopes the older way (ack and
 * receipt messages), which costs more, nothing else. */
static void send_hello(struct delivery *d, unsigned net, const uint8_t node_key[32])
{
    struct msg_link hello = {.type = MSG_LINK_HELLO, .features = MSG_FEATURE_DELIVERED};

    if (net < DELIVERY_NETS_MAX && d->nets[net].links != NULL)
        (void)link_send(d->nets[net].links, node_key, &hello);
}

/* A message from node_key on network net's links. */
static void link_message(struct delivery *d, unsigned net, const uint8_t node_key[32],
                         const uint8_t *msg, size_t len)
{
    struct msg_link l;

    if (d->closing || msg_link_decode(msg, len, &l) != MP_OK) {
        d->failed_open++;
        return;
    }
    if (l.type == MSG_LINK_ENVELOPE)
        on_envelope(d, node_key, &l.envelope, false, net);
    else if (l.type == MSG_LINK_ACK || l.type == MSG_LINK_DELIVERED)
        on_ack(d, node_key, l.digest, l.type == MSG_LINK_DELIVERED);
    else if (l.type == MSG_LINK_HELLO)
        on_hello(d, node_key, l.features);
    else if (l.type == MSG_LINK_MB_STORED && net == 0)
        on_stored(d, node_key, &l);
    else if (d->cfg.mailbox != NULL && net == 0)
        mailbox_on_link(d->cfg.mailbox, node_key, &l);
    msg_link_clear(&l);
}

void delivery_on_link_message(struct delivery *d, const uint8_t node_key[32], const uint8_t *msg,
                              size_t len)
{
    link_message(d, 0, node_key, msg, len);
}

/* The peers' mailbox targets at node_key: its link came or went, or has room. */
static void targets_at(struct delivery *d, const uint8_t node_key[32], bool down)
{
    for (size_t i = 0; i < DELIVERY_PEERS_MAX; i++) {
        struct peer *p = &d->peers[i];
        for (size_t k = 0; p->used && k < p->target_count; k++) {
            struct target *t = &p->targets[k];
            if (memcmp(t->node.key, node_key, 32) != 0)
                continue;
            t->busy = false;
            if (down)
                t->sent_upto = t->stored_upto; /* unanswered stores: again */
        }
    }
}

void delivery_on_link_message_net(struct delivery *d, unsigned net, const uint8_t node_key[32],
                                  const uint8_t *msg, size_t len)
{
    /* Acks go back on the link that is up (try_ack); mailboxes run on the
     * primary network only. */
    link_message(d, net, node_key, msg, len);
}

void delivery_on_link_state(struct delivery *d, const uint8_t node_key[32], bool up)
{
    delivery_on_link_state_net(d, 0, node_key, up);
}

void delivery_on_link_state_net(struct delivery *d, unsigned net, const uint8_t node_key[32],
                                bool up)
{
    if (net == 0 && d->cfg.mailbox != NULL)
        mailbox_on_link_state(d->cfg.mailbox, node_key, up);
    if (net == 0)
        targets_at(d, node_key, !up);
    if (up) {
        send_hello(d, net, node_key);
    } else {
        flush_acks(d, node_key); /* the link is gone: drop its waiting acks */
        if (up_links(d, node_key) == NULL)
            on_hello(d, node_key, 0); /* the next link says again */
    }
    struct peer *p = peer_by_node(d, node_key);
    if (p == NULL || p->net != net)
        return;
    p->busy = false;
    if (up) {
        p->failures = 0;
        p->retry_at_ms = 0;
        p->via_mailbox = false; /* its node is back: directly again */
    } else {
        p->sent_upto = 0; /* what was queued on the link is gone: send again */
        d->sent_below = 0;
    }
    kick(d);
}

void delivery_on_writable(struct delivery *d, const uint8_t node_key[32])
{
    if (d->cfg.mailbox != NULL)
        mailbox_on_writable(d->cfg.mailbox, node_key);
    targets_at(d, node_key, false);
    flush_acks(d, node_key);
    struct peer *p = peer_by_node(d, node_key);
    if (p != NULL)
        p->busy = false;
    kick(d);
}

/* ---- start and stop ---- */

/* Presence (with that network's own addresses) and prekeys on one network. */
static void publish_on(struct delivery *d, const struct delivery_net *net)
{
    struct msg_presence pres;
    uint8_t payload[RECORD_PAYLOAD_MAX];
    size_t len = 0;
    struct prekey_bundle bundle;
    bool changed;

    memset(&pres, 0, sizeof(pres));
    memcpy(pres.node_key, overlay_node_key(net->overlay), 32);
    for (unsigned i = 0; i < net->addr_count && i < MSG_PRESENCE_ADDRS_MAX; i++)
        pres.addrs[pres.addr_count++] = net->addrs[i];
    if (d->cfg.mailbox != NULL && net == &d->nets[0]) { /* mailboxes: the primary network's */
        struct mailbox_target own[MSG_PRESENCE_MAILBOXES_MAX];
        size_t n = mailbox_own_nodes(d->cfg.mailbox, own, MSG_PRESENCE_MAILBOXES_MAX);
        for (size_t i = 0; i < n; i++) {
            memcpy(pres.mailboxes[i], own[i].key, 32);
            pres.mailbox_addrs[i] = own[i].addr;
        }
        pres.mailbox_count = (unsigned)n;
    }
    enum mp_err err = msg_presence_encode(&pres, payload, sizeof(payload), &len);
    if (err == MP_OK)
        err = overlay_publish(net->overlay, RECORD_KIND_PRESENCE, payload, len,
                              DELIVERY_RECORD_TTL_S);
    log_debug(MOD, "presence with %u addresses: %s", pres.addr_count, mp_strerror(err));
    err = sessions_bundle(d->cfg.sessions, sysenv_unix_ms(), &bundle, &changed);
    if (err == MP_OK)
        err = prekey_bundle_encode(&bundle, payload, sizeof(payload), &len);
    if (err == MP_OK)
        err = overlay_publish(net->overlay, RECORD_KIND_PREKEYS, payload, len,
                              DELIVERY_PREKEY_TTL_S);
    log_debug(MOD, "prekey bundle: %s", mp_strerror(err));
}

static void publish(struct delivery *d)
{
    for (unsigned i = 0; i < DELIVERY_NETS_MAX; i++) {
        if (d->nets[i].overlay != NULL)
            publish_on(d, &d->nets[i]);
    }
}

enum mp_err delivery_set_net(struct delivery *d, unsigned index, const struct delivery_net *net)
{
    if (index == 0 || index >= DELIVERY_NETS_MAX)
        return MP_ERR_INVAL;
    if (net != NULL) {
        d->nets[index] = *net;
        publish_on(d, net);
        kick(d);
        return MP_OK;
    }
    memset(&d->nets[index], 0, sizeof(d->nets[index]));
    for (size_t i = 0; i < DELIVERY_PEERS_MAX; i++) {
        struct peer *p = &d->peers[i];
        if (!p->used || p->net != index)
            continue;
        p->has_presence = false; /* look it up again, elsewhere */
        p->sent_upto = 0;
        d->sent_below = 0;
        p->busy = false;
        p->nets_tried = 0;
        p->net = 0;
    }
    kick(d);
    return MP_OK;
}

/* A node that just started has an empty routing table, so its first
 * publication reaches nobody: publish again soon after, while the overlay
 * fills, then every DELIVERY_REPUBLISH_MS (the DHT also renews records). */
static const uint64_t publish_delays_ms[] = {1000, 3000, 10000, 30000};
#define DELIVERY_REPUBLISH_MS (10 * 60 * 1000)

static void publish_cb(uv_timer_t *timer)
{
    struct delivery *d = timer->data;
    size_t n = sizeof(publish_delays_ms) / sizeof(publish_delays_ms[0]);

    publish(d);
    uint64_t next =
        d->publish_round < n ? publish_delays_ms[d->publish_round] : DELIVERY_REPUBLISH_MS;
    d->publish_round++;
    if (!d->closing)
        uv_timer_start(&d->publish, publish_cb, next, 0);
}

static void delivery_free(struct delivery *d);

/* The key of the texts' ids, read from meta, or drawn and written (synced)
 * on the first start: it must stay the same for as long as receipts may
 * name the ids it made. */
static enum mp_err msgid_key_load(struct delivery *d)
{
    enum mp_err err = meta_get(d->cfg.store, meta_msgid_key, strlen(meta_msgid_key),
                               d->msgid_key, SEQID_KEY_BYTES);
    if (err == MP_ERR_STORE)
        log_error(MOD, "the message id key is not %d bytes: the store is damaged",
                  SEQID_KEY_BYTES);
    if (err != MP_ERR_NOT_FOUND)
        return err;
    env_random(d->cfg.env, d->msgid_key, SEQID_KEY_BYTES);
    err = store_put(d->cfg.store, STORE_CF_META, meta_msgid_key, strlen(meta_msgid_key),
                    d->msgid_key, SEQID_KEY_BYTES, true);
    if (err != MP_OK)
        log_error(MOD, "cannot store the message id key: %s", mp_strerror(err));
    return err;
}

enum mp_err delivery_new(const struct delivery_config *cfg, struct delivery **delivery_out)
{
    struct delivery *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return MP_ERR_NOMEM;
    d->scratch = calloc(1, sizeof(*d->scratch));
    d->cache = calloc(1, sizeof(*d->cache));
    if (d->scratch == NULL || d->cache == NULL) {
        delivery_free(d);
        return MP_ERR_NOMEM;
    }
    d->cfg = *cfg;
    u64set_init(&d->damaged, DELIVERY_DAMAGED_MAX);
    d->nets[0].overlay = cfg->overlay;
    d->nets[0].links = cfg->links;
    memcpy(d->nets[0].addrs, cfg->addrs, sizeof(cfg->addrs));
    d->nets[0].addr_count = cfg->addr_count;
    enum mp_err err = meta_u64(cfg->store, meta_seq, strlen(meta_seq), &d->next_seq);
    if (err == MP_OK)
        err = meta_u64(cfg->store, meta_seq_lease, strlen(meta_seq_lease), &d->seq_lease);
    if (err == MP_OK)
        err = meta_u64(cfg->store, meta_cursor, strlen(meta_cursor), &d->next_cursor);
    if (err == MP_OK)
        err = msgid_key_load(d);
    if (err != MP_OK) {
        log_error(MOD, "cannot read the outbox and event counters or the message id key: %s",
                  mp_strerror(err));
        delivery_free(d);
        return err;
    }
    /* Seqs under the last run's lease may have left ahead of their sync. */
    if (d->next_seq < d->seq_lease)
        d->next_seq = d->seq_lease;
    d->seq_lease_written = d->seq_lease;
    if (d->next_seq == 0)
        d->next_seq = 1;
    if (d->next_cursor == 0)
        d->next_cursor = 1;
    /* All that opened is durable: RocksDB flushes what it replayed from its
     * write-ahead log into synced tables as it opens (avoid_flush_during_recovery
     * stays false). */
    d->durable_cursor = d->next_cursor;
    uv_timer_t *timers[] = {&d->pump, &d->feed, &d->publish, &d->durable};
    for (size_t k = 0; k < sizeof(timers) / sizeof(timers[0]); k++) {
        if (uv_timer_init(cfg->loop, timers[k]) != 0) {
            delivery_close(d); /* closes the timers made so far, then frees */
            return MP_ERR_IO;
        }
        timers[k]->data = d;
        d->open_handles++;
    }
    publish_cb(&d->publish);
    kick(d);
    *delivery_out = d;
    return MP_OK;
}

/* The memory of d, once no handle of it is open. */
static void delivery_free(struct delivery *d)
{
    if (d->cache != NULL) {
        cache_unstage(d);
        for (size_t i = 0; i < DELIVERY_ENTRY_CACHE; i++)
            buf_free(&d->cache->slots[i].bytes);
        free(d->cache->staged);
        free(d->cache);
    }
    free(d->scratch);
    u64set_free(&d->damaged);
    secure_wipe(d->msgid_key, sizeof(d->msgid_key));
    free(d);
}

static void handle_closed_cb(uv_handle_t *handle)
{
    struct delivery *d = handle->data;
    if (--d->open_handles == 0)
        delivery_free(d);
}

void delivery_close(struct delivery *d)
{
    if (d == NULL)
        return;
    d->closing = true;
    for (size_t i = 0; i < DELIVERY_SUBSCRIBERS_MAX; i++) {
        if (d->subs[i].call != NULL)
            control_call_fail(d->subs[i].call, RPC_CODE_FAILED, MP_ERR_UNAVAILABLE,
                              "the node is shutting down");
        d->subs[i].call = NULL;
    }
    /* Hand back the session leases (the states they covered are saved), make
     * what was written durable, and answer the `send` calls waiting for that
     * (acks may be lost with the closing links: senders resend and we ack
     * the duplicates next time), delivered waiters among them; the others
     * hear that their message stays queued. */
    if (d->durable.data != NULL) {
        struct store_batch *b = store_batch_new();
        if (sessions_release(d->cfg.sessions, b) == MP_OK &&
            store_batch_write(d->cfg.store, b, false) == MP_OK)
            d->needs_sync = true;
        store_batch_free(b);
        durable_cb(&d->durable);
    }
    /* After the sync, every waiter's message is durable (needs_sync was set
     * for it) unless the sync failed, and then sync_failed answered them: the
     * second message is for an invariant broken. */
    fail_waiters(d, MP_ERR_UNAVAILABLE,
                 "the node is shutting down; the message stays queued and goes once it runs again",
                 "the node is shutting down, and the message may not be queued");
    uv_timer_t *timers[] = {&d->pump, &d->feed, &d->publish, &d->durable};
    for (size_t k = 0; k < sizeof(timers) / sizeof(timers[0]); k++) {
        if (timers[k]->data != NULL)
            uv_close((uv_handle_t *)timers[k], handle_closed_cb);
    }
    if (d->open_handles == 0)
        delivery_free(d);
}

json_t *delivery_status(const struct delivery *d)
{
    unsigned pending_peers = 0;
    for (size_t i = 0; i < DELIVERY_PEERS_MAX; i++)
        pending_peers += d->peers[i].used;
    unsigned via_mailbox = 0;
    for (size_t i = 0; i < DELIVERY_PEERS_MAX; i++)
        via_mailbox += d->peers[i].used && d->peers[i].via_mailbox;
    json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "sent", (json_int_t)d->sent,
                          "received", (json_int_t)d->received, "acked", (json_int_t)d->acked,
                          "duplicates", (json_int_t)d->duplicates, "refused",
                          (json_int_t)d->refused, "undecryptable", (json_int_t)d->failed_open,
                          "events", (json_int_t)(d->durable_cursor - 1), "peers",
                          (int)pending_peers);
    /* Mail left with others' mailboxes, and how they answered. */
    json_object_set_new(j, "to_mailboxes",
                        json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "peers", (int)via_mailbox,
                                  "stores_sent", (json_int_t)d->mb_sent, "held",
                                  (json_int_t)d->mb_held, "full", (json_int_t)d->mb_full,
                                  "rate_limited", (json_int_t)d->mb_rate, "refused",
                                  (json_int_t)d->mb_refused, "expired", (json_int_t)d->expired));
    json_object_set_new(j, "damaged_states", json_integer((json_int_t)d->damaged_states));
    json_object_set_new(j, "entry_cache",
                        json_pack("{s:I, s:I, s:I}", "hits", (json_int_t)d->cache->hits, "misses",
                                  (json_int_t)d->cache->misses, "bytes",
                                  (json_int_t)d->cache->bytes));
    return j;
}

/* ---- control methods ---- */

/* The account a request names (param `name`): an address or a contact. */
static bool param_account(struct delivery *d, json_t *params, const char *name, bool for_sending,
                          uint8_t out[32], struct rpc_error *err_out, json_t **data_out)
{
    const char *text = json_string_value(json_object_get(params, name));
    char why[512] = "";
    enum mp_err err = MP_ERR_INVAL;

    if (text != NULL && d->cfg.resolve_cb != NULL)
        err = d->cfg.resolve_cb(d->cfg.classify_arg, text, for_sending, out, why, sizeof(why));
    else if (text != NULL)
        err = address_decode(text, out);
    if (err == MP_OK)
        return true;
    bool bad_param = err != MP_ERR_NOT_FOUND && err != MP_ERR_KEY_CHANGED;
    rpc_error_set(err_out, NULL, bad_param ? RPC_CODE_INVALID_PARAMS : RPC_CODE_FAILED, "%s",
                  text == NULL ? "missing the address or contact"
                  : why[0]     ? why
                               : mp_strerror(err));
    *data_out = rpc_err_data(err);
    return false;
}

static bool method_send(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                        struct rpc_error *err_out, json_t **data_out)
{
    struct delivery *d = ctx;
    uint8_t to[32], id[MSG_ID_BYTES];
    char id_hex[2 * MSG_ID_BYTES + 1];
    json_t *text = json_object_get(params, "text");
    json_t *wait = json_object_get(params, "wait_ms");

    if (!param_account(d, params, "to", true, to, err_out, data_out))
        return false;
    if (!json_is_string(text)) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS, "\"text\" must be a string");
        return false;
    }
    if (wait != NULL && (!json_is_integer(wait) || json_integer_value(wait) < 0 ||
                         json_integer_value(wait) > DELIVERY_WAIT_MAX_MS)) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS,
                      "\"wait_ms\" must be an integer from 0 to %d", DELIVERY_WAIT_MAX_MS);
        return false;
    }
    /* Without a wait, the reply comes after the next sync (one fsync for every
     * send of this loop turn); the message is on disk when the id is given.
     * With one, it is sealed at the end of the turn and leaves with or ahead of
     * that sync (mark_early); the answer waits for both the receipt and it. */
    bool grouped = wait == NULL || json_integer_value(wait) == 0;
    const char *why = NULL;
    enum mp_err err =
        queue_text(d, to, json_string_value(text), json_string_length(text), id, &why);
    if (why != NULL) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS, "%s", why);
        *data_out = rpc_err_data(err);
        return false;
    }
    if (err != MP_OK) {
        rpc_error_set(err_out, NULL, RPC_CODE_FAILED, "not queued: %s", mp_strerror(err));
        *data_out = rpc_err_data(err);
        return false;
    }
    hex(id_hex, sizeof(id_hex), id, MSG_ID_BYTES);
    if (grouped) {
        struct durable_item item = {.reply = control_call_defer(call)};
        memcpy(item.event_id, id, MSG_ID_BYTES);
        memcpy(item.to, to, 32);
        if (item.reply != NULL) {
            pend(d, &item);
            return true;
        }
        /* No room to defer: make it durable now and answer at once. */
        if ((err = store_sync(d->cfg.store)) != MP_OK) {
            rpc_error_set(err_out, NULL, RPC_CODE_FAILED, "not queued: %s", mp_strerror(err));
            *data_out = rpc_err_data(err);
            return false;
        }
        kick(d);
        *result_out = json_pack("{s:s, s:s}", "id", id_hex, "state", "queued");
        return true;
    }
    pend_sync(d); /* sealed at the end of the turn; the answer comes with the receipt */
    sweep(d);
    struct waiter *w = NULL;
    for (size_t i = 0; i < DELIVERY_WAITERS_MAX && w == NULL; i++)
        w = d->waiters[i].call == NULL ? &d->waiters[i] : NULL;
    if (w != NULL && (w->call = control_call_defer(call)) != NULL) {
        memcpy(w->id, id, MSG_ID_BYTES);
        w->deadline_ms = sysenv_unix_ms() + (uint64_t)json_integer_value(wait);
        w->durable_at = d->syncs_begun + 1; /* the next sync begun covers it */
        w->delivered = false;
        return true;
    }
    /* No room to wait: it is queued all the same, once durable, and the
     * caller hears that it was not waited for, and why. */
    if ((err = store_sync(d->cfg.store)) != MP_OK) {
        rpc_error_set(err_out, NULL, RPC_CODE_FAILED, "not queued: %s", mp_strerror(err));
        *data_out = rpc_err_data(err);
        return false;
    }
    kick(d);
    if (w == NULL)
        rpc_error_set(err_out, NULL, RPC_CODE_FAILED,
                      "%d sends wait already, so this one cannot; the message is queued",
                      DELIVERY_WAITERS_MAX);
    else
        rpc_error_set(err_out, NULL, RPC_CODE_FAILED,
                      "this connection has %d calls open, so this one cannot wait; the message "
                      "is queued", CONTROL_DEFERRED_MAX);
    *data_out = queued_data(MP_ERR_BUSY, id);
    return false;
}

/* A send.batch item's failure: the item's index before the message, and in data. */
static bool batch_item_failed(size_t index, enum rpc_code code, enum mp_err err,
                              struct rpc_error *err_out, json_t **data_out)
{
    char why[sizeof(err_out->message)];
    snprintf(why, sizeof(why), "%s", err_out->message);
    rpc_error_set(err_out, NULL, code, "messages[%zu]: %s", index, why);
    if (*data_out == NULL && err != MP_OK)
        *data_out = rpc_err_data(err);
    if (*data_out == NULL)
        *data_out = json_object();
    json_object_set_new(*data_out, "index", json_integer((json_int_t)index));
    return false;
}

/* The next counter for to within one batch: read from the store at its
 * first message, counted in memory after that. */
struct batch_counter {
    uint8_t to[32];
    uint64_t counter;
};

/* send.batch {to?, messages: [{to?, text}...]}: queue every message, in
 * order, with one write made durable by one sync, then answer {ids, state}.
 * All or nothing: an invalid item fails the call (its index in the error)
 * and queues none. An item without `to` goes to the call's `to`. */
static bool method_send_batch(void *ctx, struct control_call *call, json_t *params,
                              json_t **result_out, struct rpc_error *err_out, json_t **data_out)
{
    static const char *const item_params[] = {"to", "text"};
    struct delivery *d = ctx;
    json_t *list = json_object_get(params, "messages");
    size_t n = json_array_size(list);
    uint8_t(*tos)[32] = NULL;
    struct batch_counter *counters = NULL;
    size_t counter_count = 0;
    struct store_batch *b = NULL;
    json_t *ids = NULL;
    const char *last_to = NULL;
    bool ok = false;
    enum mp_err err = MP_OK;

    if (!json_is_array(list) || n == 0 || n > DELIVERY_SEND_BATCH_MAX) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS,
                      "\"messages\" must be an array of 1 to %d messages",
                      DELIVERY_SEND_BATCH_MAX);
        return false;
    }
    tos = malloc(n * sizeof(*tos));
    counters = malloc(n * sizeof(*counters));
    ids = json_array();
    if (tos == NULL || counters == NULL || ids == NULL) {
        rpc_error_set(err_out, NULL, RPC_CODE_INTERNAL_ERROR, "out of memory");
        goto cleanup;
    }
    /* Check every item before queueing any. */
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(list, i);
        json_t *text = json_object_get(item, "text");
        const char *key;
        json_t *v;
        if (!json_is_object(item) || !json_is_string(text)) {
            rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS,
                          "each message must be an object with a string \"text\"");
            ok = batch_item_failed(i, RPC_CODE_INVALID_PARAMS, MP_OK, err_out, data_out);
            goto cleanup;
        }
        json_object_foreach(item, key, v)
        {
            if (strcmp(key, item_params[0]) != 0 && strcmp(key, item_params[1]) != 0) {
                rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS, "unknown member \"%s\"",
                              key);
                ok = batch_item_failed(i, RPC_CODE_INVALID_PARAMS, MP_OK, err_out, data_out);
                goto cleanup;
            }
        }
        json_t *owner = json_object_get(item, "to") != NULL ? item : params;
        const char *to_text = json_string_value(json_object_get(owner, "to"));
        /* The same recipient as the item before: resolved once. */
        if (i > 0 && to_text != NULL && last_to != NULL && strcmp(to_text, last_to) == 0) {
            memcpy(tos[i], tos[i - 1], 32);
        } else if (!param_account(d, owner, "to", true, tos[i], err_out, data_out)) {
            ok = batch_item_failed(i, err_out->code, MP_OK, err_out, data_out);
            goto cleanup;
        }
        last_to = to_text;
        const char *why = NULL;
        err = check_text(d, tos[i], json_string_value(text), json_string_length(text), &why);
        if (err != MP_OK) {
            rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS, "%s", why);
            ok = batch_item_failed(i, RPC_CODE_INVALID_PARAMS, err, err_out, data_out);
            goto cleanup;
        }
    }
    /* All valid: one batch with every entry and the counters after them. */
    b = batch_begin(d);
    for (size_t i = 0; i < n && err == MP_OK; i++) {
        json_t *text = json_object_get(json_array_get(list, i), "text");
        struct batch_counter *c = NULL;
        uint8_t id[MSG_ID_BYTES];
        char id_hex[2 * MSG_ID_BYTES + 1];
        for (size_t k = counter_count; k > 0 && c == NULL; k--) {
            if (memcmp(counters[k - 1].to, tos[i], 32) == 0)
                c = &counters[k - 1];
        }
        if (c == NULL) {
            uint8_t counter_key[sizeof(meta_counter) - 1 + 32];
            c = &counters[counter_count++];
            memcpy(c->to, tos[i], 32);
            counter_key_of(counter_key, tos[i]);
            err = meta_u64(d->cfg.store, (const char *)counter_key, sizeof(counter_key),
                           &c->counter);
        }
        if (err == MP_OK)
            err = batch_text(d, b, tos[i], json_string_value(text), json_string_length(text),
                             d->next_seq + i, ++c->counter, id);
        if (err == MP_OK) {
            hex(id_hex, sizeof(id_hex), id, MSG_ID_BYTES);
            json_array_append_new(ids, json_string(id_hex));
        }
    }
    if (err == MP_OK)
        batch_text_keys(b, d->next_seq, n, (const uint8_t(*)[32])tos);
    for (size_t k = 0; k < counter_count && err == MP_OK; k++) {
        uint8_t counter_key[sizeof(meta_counter) - 1 + 32];
        counter_key_of(counter_key, counters[k].to);
        batch_meta_u64(b, (const char *)counter_key, sizeof(counter_key), counters[k].counter);
    }
    json_t *result = err == MP_OK ? json_pack("{s:O, s:s}", "ids", ids, "state", "queued") : NULL;
    if (err == MP_OK && result == NULL)
        err = MP_ERR_NOMEM;
    if (err == MP_OK) {
        batch_meta_u64(b, meta_seq, strlen(meta_seq), d->next_seq + n);
        err = batch_commit(d, b, false);
    }
    if (err != MP_OK) {
        json_decref(result);
        rpc_error_set(err_out, NULL, RPC_CODE_FAILED, "not queued: %s", mp_strerror(err));
        *data_out = rpc_err_data(err);
        goto cleanup;
    }
    d->next_seq += n;
    /* Answered after the sync at the end of this loop turn, like `send`;
     * the pump runs after that sync (see queue_text). */
    struct durable_item item = {.reply = control_call_defer(call), .result = result};
    if (item.reply != NULL) {
        pend(d, &item);
    } else if ((err = store_sync(d->cfg.store)) == MP_OK) {
        *result_out = result; /* no room to defer: durable now, answered at once */
        kick(d);
    } else {
        json_decref(result);
        rpc_error_set(err_out, NULL, RPC_CODE_FAILED, "not queued: %s", mp_strerror(err));
        *data_out = rpc_err_data(err);
        goto cleanup;
    }
    ok = true;
cleanup:
    store_batch_free(b);
    json_decref(ids);
    free(counters);
    free(tos);
    return ok;
}

/* Whether waiter w is to be told, once past its deadline, that its message
 * is still queued: not delivered (that answer's sync is on its way), and its
 * message durable, so that "queued" is true (else the sync's end pumps). */
static bool waiter_may_expire(const struct delivery *d, const struct waiter *w)
{
    return w->call != NULL && !w->delivered && w->durable_at <= d->syncs_done;
}

/* Waiters past their deadline that may be told so (waiter_may_expire) are
 * told the message is still queued, with its id in the error's data. */
static void expire_waiters(struct delivery *d, uint64_t now)
{
    for (size_t i = 0; i < DELIVERY_WAITERS_MAX; i++) {
        struct waiter *w = &d->waiters[i];
        if (waiter_may_expire(d, w) && now >= w->deadline_ms) {
            control_call_fail_data(w->call, RPC_CODE_FAILED,
                                   "not delivered yet; the message stays queued",
                                   queued_data(MP_ERR_TIMEOUT, w->id));
            w->call = NULL;
        }
    }
}

static bool param_u64(json_t *params, const char *name, uint64_t dflt, uint64_t max, uint64_t *out,
                      struct rpc_error *err_out)
{
    json_t *v = json_object_get(params, name);
    if (v == NULL) {
        *out = dflt;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS,
                      "\"%s\" must be an integer from 0 to %llu", name, (unsigned long long)max);
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* The "since" cursor of params (0 when absent), refused past the last event
 * any client can have seen (clients see synced events only: a crash cannot
 * take back one they saw, nor lower this bound): a cursor of another
 * node, or kept from before this node's data dir was restored from a
 * backup, would otherwise skip every event up to it without a word. The
 * last cursor goes in the error's data as "last". */
static bool param_since(const struct delivery *d, json_t *params, uint64_t *since_out,
                        struct rpc_error *err_out, json_t **data_out)
{
    uint64_t last = d->durable_cursor - 1;
    if (!param_u64(params, "since", 0, UINT64_MAX / 2, since_out, err_out))
        return false;
    if (*since_out > last) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS,
                      "\"since\" %llu is past this node's last event (%llu): a cursor of another "
                      "node, or from before a restore of this one? Ask from %llu or lower (0: all)",
                      (unsigned long long)*since_out, (unsigned long long)last,
                      (unsigned long long)last);
        *data_out = rpc_err_data(MP_ERR_INVAL);
        json_object_set_new(*data_out, "last", json_integer((json_int_t)last));
        return false;
    }
    return true;
}

/* A read of the outbox or the event log failed: the call fails, saying so
 * (list is dropped). */
static bool events_failed(json_t *list, enum mp_err err, struct rpc_error *err_out,
                          json_t **data_out)
{
    json_decref(list);
    rpc_error_set(err_out, NULL, RPC_CODE_FAILED, "cannot read the stored messages: %s",
                  mp_strerror(err));
    *data_out = rpc_err_data(err);
    return false;
}

/* inbox.list {from?, since?, limit?, requests?}: received messages after a cursor. */
static bool method_inbox(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                         struct rpc_error *err_out, json_t **data_out)
{
    struct delivery *d = ctx;
    uint8_t from[32];
    uint64_t since, limit;
    bool by_sender = json_object_get(params, "from") != NULL;
    bool requests = json_is_true(json_object_get(params, "requests"));
    (void)call;

    if (by_sender && !param_account(d, params, "from", false, from, err_out, data_out))
        return false;
    if (!param_since(d, params, &since, err_out, data_out) ||
        !param_u64(params, "limit", 100, 1000, &limit, err_out))
        return false;
    json_t *list = json_array();
    uint64_t cursor = since, c;
    struct outbox_event ev;
    struct store_iter *it = events_from(d, since + 1);
    /* Synced events only, as subscribe gives them: a crash cannot take back
     * one a client saw, and give its cursor to another it would skip. */
    while (json_array_size(list) < limit && events_next(it, d->durable_cursor, &c, &ev)) {
        cursor = c;
        if (ev.type == OUTBOX_EVENT_MESSAGE && ev.request == requests &&
            (!by_sender || memcmp(ev.peer, from, 32) == 0))
            json_array_append_new(list, event_json(c, &ev));
        outbox_event_clear(&ev);
    }
    enum mp_err err = store_iter_status(it);
    store_iter_free(it);
    if (err != MP_OK) /* a partial page would look like the end to a client */
        return events_failed(list, err, err_out, data_out);
    if (json_array_size(list) < limit && d->durable_cursor - 1 > cursor)
        cursor = d->durable_cursor - 1; /* every event up to the last was looked at */
    bool more = limit > 0 && cursor < d->durable_cursor - 1; /* a full page, events after it */
    *result_out = json_pack("{s:o, s:I, s:b}", "messages", list, "cursor", (json_int_t)cursor,
                            "more", more);
    return true;
}

struct timed {
    json_int_t t;
    size_t order;
    json_t *item;
};

static int timed_cmp(const void *a, const void *b)
{
    const struct timed *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Our newest texts to `with`, at most limit, onto list (newest first), each
 * with its state (its state row's, if it has one). */
static enum mp_err history_out(struct delivery *d, const uint8_t with[32], uint64_t limit,
                               json_t *list)
{
    static const char *const states[] = {"", "queued", "sent", "delivered", "mailbox", "expired"};
    uint8_t prefix = KEY_ENTRY;
    const uint8_t *key, *val;
    size_t key_len, val_len;
    uint64_t found = 0;
    enum mp_err err = MP_OK;
    struct store_iter *it = store_iter_new_reverse(d->cfg.store, STORE_CF_OUTBOX, &prefix, 1);
    while (err == MP_OK && found < limit && store_iter_next(it, &key, &key_len, &val, &val_len)) {
        struct outbox_entry e;
        struct msg m;
        if (key_len != 9 || outbox_entry_decode(val, val_len, &e) != MP_OK)
            continue;
        if (memcmp(e.to, with, 32) == 0 &&
            msg_decode(e.plaintext.data, e.plaintext.len, &m) == MP_OK) {
            if (m.kind == MSG_KIND_TEXT) {
                uint8_t row_key[9], *row = NULL;
                size_t row_len = 0;
                memcpy(row_key, key, 9);
                row_key[0] = KEY_STATE;
                err = store_get(d->cfg.store, STORE_CF_OUTBOX_INDEX, row_key, 9, &row, &row_len);
                if (err == MP_OK) /* damaged: its own state shows */
                    (void)state_row(d, bytes_get_u64(key + 1), row, row_len, &e);
                free(row);
                if (err == MP_ERR_NOT_FOUND)
                    err = MP_OK;
                char id[2 * MSG_ID_BYTES + 1];
                hex(id, sizeof(id), m.id, MSG_ID_BYTES);
                json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:s%, s:s}", "direction",
                                                      "out", "id", id, "at_ms",
                                                      (json_int_t)m.sent_at_ms, "text", m.text,
                                                      m.text_len, "state", states[e.state]));
                found++;
            }
            msg_clear(&m);
        }
        outbox_entry_clear(&e);
    }
    if (err == MP_OK)
        err = store_iter_status(it);
    store_iter_free(it);
    return err;
}

/* The newest texts from `with` we have let out (synced: below
 * durable_cursor), at most limit, onto list (newest first). */
static enum mp_err history_in(struct delivery *d, const uint8_t with[32], uint64_t limit,
                              json_t *list)
{
    uint8_t prefix = KEY_EVENT;
    const uint8_t *key, *val;
    size_t key_len, val_len;
    uint64_t found = 0;
    struct store_iter *it = store_iter_new_reverse(d->cfg.store, STORE_CF_INBOX, &prefix, 1);
    while (found < limit && store_iter_next(it, &key, &key_len, &val, &val_len)) {
        struct outbox_event ev;
        uint64_t cursor = key_len == 9 ? bytes_get_u64(key + 1) : 0;
        if (cursor == 0 || cursor >= d->durable_cursor ||
            outbox_event_decode(val, val_len, &ev) != MP_OK)
            continue;
        if (ev.type == OUTBOX_EVENT_MESSAGE && memcmp(ev.peer, with, 32) == 0) {
            json_t *j = event_json(cursor, &ev);
            json_object_set_new(j, "direction", json_string("in"));
            json_array_append_new(list, j);
            found++;
        }
        outbox_event_clear(&ev);
    }
    enum mp_err err = store_iter_status(it);
    store_iter_free(it);
    return err;
}

/* history {with, limit?}: the newest texts both ways with one account,
 * oldest first. Each way is read from its newest back, so a call costs the
 * texts since the limit-th newest with `with`, not every one stored. */
static bool method_history(void *ctx, struct control_call *call, json_t *params,
                           json_t **result_out, struct rpc_error *err_out, json_t **data_out)
{
    struct delivery *d = ctx;
    uint8_t with[32];
    uint64_t limit;
    (void)call;

    if (!param_account(d, params, "with", false, with, err_out, data_out) ||
        !param_u64(params, "limit", 100, 1000, &limit, err_out))
        return false;
    json_t *list = json_array();
    enum mp_err err = history_out(d, with, limit, list);
    size_t outs = json_array_size(list);
    if (err == MP_OK)
        err = history_in(d, with, limit, list);
    if (err != MP_OK)
        return events_failed(list, err, err_out, data_out);
    /* Oldest first by this node's clock (when we wrote a text, when one
     * arrived: the order each way was read in, so reading stopped at the
     * right one), then the newest `limit`; texts of the same ms in the order
     * written, ours first (each way was read newest first). */
    size_t n = json_array_size(list);
    struct timed *items = calloc(n ? n : 1, sizeof(*items));
    if (items == NULL) {
        json_decref(list);
        rpc_error_set(err_out, NULL, RPC_CODE_INTERNAL_ERROR, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(list, i);
        items[i].t = json_integer_value(json_object_get(item, "at_ms"));
        items[i].order = i < outs ? outs - 1 - i : outs + (n - 1 - i);
        items[i].item = json_incref(item);
    }
    qsort(items, n, sizeof(*items), timed_cmp);
    json_array_clear(list);
    for (size_t i = n > limit ? n - limit : 0; i < n; i++)
        json_array_append(list, items[i].item);
    for (size_t i = 0; i < n; i++)
        json_decref(items[i].item);
    free(items);
    *result_out = json_pack("{s:o}", "messages", list);
    return true;
}

/* subscribe {since?}: every event after `since` as "event" notifications,
 * then new ones as they happen; the call stays open. */
static bool method_subscribe(void *ctx, struct control_call *call, json_t *params,
                             json_t **result_out, struct rpc_error *err_out, json_t **data_out)
{
    struct delivery *d = ctx;
    uint64_t since;
    (void)result_out;

    if (!param_since(d, params, &since, err_out, data_out))
        return false;
    sweep(d);
    for (size_t i = 0; i < DELIVERY_SUBSCRIBERS_MAX; i++) {
        struct subscriber *s = &d->subs[i];
        if (s->call != NULL)
            continue;
        s->call = control_call_defer(call);
        if (s->call == NULL)
            break;
        s->next = since + 1;
        uv_timer_start(&d->feed, feed_cb, 0, 0);
        return true;
    }
    rpc_error_set(err_out, NULL, RPC_CODE_FAILED, "too many listeners (at most %d)",
                  DELIVERY_SUBSCRIBERS_MAX);
    *data_out = rpc_err_data(MP_ERR_BUSY);
    return false;
}

struct where {
    struct control_call *call;
};

static void where_cb(void *arg, enum mp_err status, const struct mailbox_target *targets,
                     size_t count)
{
    struct where *w = arg;
    json_t *list = json_array();
    for (size_t i = 0; i < count; i++) {
        char key[65], addr[ADDR_TEXT_MAX];
        hex(key, sizeof(key), targets[i].key, 32);
        addr_format(&targets[i].addr, addr, sizeof(addr));
        json_array_append_new(list, json_pack("{s:s, s:s}", "node_key", key, "addr", addr));
    }
    if (count == 0)
        control_call_fail(w->call, RPC_CODE_FAILED, status,
                          "no mailbox nodes found now (is the node joined to the network?)");
    else
        control_call_reply(w->call, json_pack("{s:o}", "mailboxes", list));
    if (count == 0)
        json_decref(list);
    free(w);
}

/* mailbox.where {who}: the nodes that would hold mail for `who` now. */
static bool method_where(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                         struct rpc_error *err_out, json_t **data_out)
{
    struct delivery *d = ctx;
    uint8_t who[32];
    (void)result_out;

    if (!param_account(d, params, "who", false, who, err_out, data_out))
        return false;
    if (d->cfg.mailbox == NULL) {
        rpc_error_set(err_out, NULL, RPC_CODE_FAILED, "this node runs no mailboxes");
        return false;
    }
    struct peer *p = peer_get(d, who, sysenv_unix_ms());
    struct mailbox_target listed[MSG_PRESENCE_MAILBOXES_MAX];
    size_t n = 0;
    for (unsigned i = 0; p != NULL && p->has_presence && i < p->presence.mailbox_count; i++) {
        memcpy(listed[n].key, p->presence.mailboxes[i], 32);
        listed[n++].addr = p->presence.mailbox_addrs[i];
    }
    struct where *w = malloc(sizeof(*w));
    if (w == NULL || (w->call = control_call_defer(call)) == NULL) {
        free(w);
        rpc_error_set(err_out, NULL, RPC_CODE_FAILED, "busy: try again");
        return false;
    }
    enum mp_err err = mailbox_find(d->cfg.mailbox, who,
                                   p != NULL && p->has_presence ? p->presence.node_key : NULL,
                                   listed, n, where_cb, w);
    if (err != MP_OK) {
        control_call_fail(w->call, RPC_CODE_FAILED, err,
                          err == MP_ERR_DHT_NO_PEERS
                              ? "no DHT peers yet, so no mailbox nodes to name (add a bootstrap "
                                "node: merpati bootstrap add KEY@IP:PORT)"
                              : "cannot look for mailbox nodes now; try again");
        free(w);
    }
    return true;
}

static const char *const send_params[] = {"to", "text", "wait_ms", NULL};
static const char *const where_params[] = {"who", NULL};
static const char *const send_batch_params[] = {"to", "messages", NULL};
static const char *const inbox_params[] = {"from", "since", "limit", "requests", NULL};
static const char *const history_params[] = {"with", "limit", NULL};
static const char *const subscribe_params[] = {"since", NULL};

static const struct control_method methods[] = {
    {"send", send_params, method_send},
    {"send.batch", send_batch_params, method_send_batch},
    {"inbox.list", inbox_params, method_inbox},
    {"history", history_params, method_history},
    {"subscribe", subscribe_params, method_subscribe},
    {"mailbox.where", where_params, method_where},
};

const struct control_method *delivery_methods(size_t *count_out)
{
    *count_out = sizeof(methods) / sizeof(methods[0]);
    return methods;
}
