#include "node/mailbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/log.h"
#include "crypto/box.h"
#include "crypto/envelope.h"
#include "crypto/secure.h"
#include "node/sysenv.h"

#define MOD "mailbox"

/* Mailbox family keys (docs/PROTOCOL.md, "Mailboxes"): 'e' id seq -> u64
 * expiry + envelope; 'h' digest -> id seq expiry length; 'x' expiry id seq ->
 * digest; 'c' id -> u64 count, u64 bytes. Meta: the next seq. */
#define KEY_HELD 'e'
#define KEY_DIGEST 'h'
#define KEY_EXPIRY 'x'
#define KEY_COUNT 'c'
#define ID_BYTES ENVELOPE_MAILBOX_BYTES
#define HELD_KEY_BYTES (1 + ID_BYTES + 8)
#define DIGEST_VAL_BYTES (ID_BYTES + 8 + 8 + 4)
static const char meta_seq[] = "mailbox_seq";
/* The mailbox nodes asked last, "<node key hex>@<ip>:<port>" lines: asked
 * again at once after a restart, before any lookup answers. */
static const char meta_last[] = "mailbox_asked";
#define LAST_MAX 8

/* What a fetch proof signs: label || mailbox node key || fetcher node key || nonce. */
static const char fetch_label[] = "merpati mailbox fetch v1";
#define PROOF_BYTES (sizeof(fetch_label) - 1 + 32 + 32 + MSG_MB_NONCE_BYTES)

/* Our own fetches at once (twice the replicas, the configured ones, and
 * those asked last time). */
#define MAILBOX_FETCH_MAX (2 * CONFIG_MAILBOX_REPLICAS_MAX + CONFIG_MAILBOX_NODES_MAX + LAST_MAX)
/* Expired envelopes deleted per sweep pass before yielding. */
#define MAILBOX_SWEEP_BATCH 1000
/* Mailboxes whose last handoff is remembered (so unchanged ones are skipped). */
#define MAILBOX_HANDED_MAX 256
/* Fetch rounds between lookups of our mailbox nodes (10 min at the default interval). */
#define MAILBOX_LOOKUP_ROUNDS 10
/* The first fetches after start, while the overlay fills (then fetch_interval). */
static const uint64_t fetch_delays_ms[] = {1000, 3000, 10000};

struct sender {
    bool used;
    uint8_t key[32];
    double tokens;
    uint64_t at_ms;
};

/* A node fetching its mail from us. */
struct serve {
    bool used;
    uint8_t peer[32];
    bool has_nonce;
    uint8_t nonce[MSG_MB_NONCE_BYTES];
    uint64_t nonce_ms;
    bool authorized; /* proved: handing out mbid's mail */
    uint8_t mbid[ID_BYTES];
    uint64_t cursor; /* highest seq handed out */
    unsigned inflight;
    bool busy; /* its link queue is full: wait for writable */
    uint64_t active_ms;
};

struct reply {
    uint8_t peer[32];
    uint8_t digest[32];
    uint8_t status;
    uint64_t expires_s;
};

/* A mailbox we fetch from, and the digests to tell it we took. */
struct fetching {
    bool used;
    uint8_t key[32];
    bool asked; /* HELLO sent, no END yet */
    uint64_t active_ms;
    unsigned taken_count;
    uint8_t taken[MSG_MB_TAKEN_MAX][32];
};

struct find_op {
    struct mailbox *mb;
    mailbox_find_cb *cb;
    void *arg;
    unsigned want; /* closest nodes wanted */
    bool has_exclude;
    uint8_t exclude[32];
    struct mailbox_target listed[MAILBOX_TARGETS_MAX];
    size_t listed_count;
};

/* The handoff of one mailbox to the nodes now closest to it. */
struct handoff {
    bool active;
    bool looking; /* waiting for the lookup */
    uint8_t mbid[ID_BYTES];
    struct mailbox_target targets[MAILBOX_TARGETS_MAX];
    uint64_t cursor[MAILBOX_TARGETS_MAX]; /* highest seq stored with each */
    bool done[MAILBOX_TARGETS_MAX];
    size_t count;
    uint8_t next_after[ID_BYTES]; /* the pass goes on after this mailbox */
    unsigned left;                /* mailboxes left in this pass */
};

struct handed {
    uint8_t mbid[ID_BYTES];
    uint8_t targets[16]; /* digest of the target keys */
    uint64_t upto;       /* highest seq handed to them */
    uint64_t at_ms;
};

struct mailbox {
    struct mailbox_config cfg;
    uint8_t node_key[32];
    uint8_t own_mbid[ID_BYTES];
    struct mailbox_target own[CONFIG_MAILBOX_NODES_MAX];
    size_t own_count;
    uv_timer_t durable; /* .data = this: one sync, then the answers to stores */
    uv_timer_t fetch;   /* .data = this: our own mail */
    uv_timer_t sweep;   /* .data = this: expiry */
    uv_timer_t handoff; /* .data = this */
    uv_timer_t flush;   /* .data = this: taken digests go out */
    unsigned open_handles;
    bool closing;
    uint64_t next_seq;
    uint64_t held, held_bytes;
    struct sender senders[MAILBOX_SENDERS_MAX];
    struct serve serves[MAILBOX_SERVE_MAX];
    struct reply replies[MAILBOX_SYNC_GROUP];
    size_t reply_count;
    struct fetching fetching[MAILBOX_FETCH_MAX];
    unsigned fetch_round;
    struct handoff ho;
    struct handed handed[MAILBOX_HANDED_MAX];
    /* figures for status */
    uint64_t stored, refused_full, refused_rate, refused_other, refused_proof, handed_out, taken,
        expired, fetched, fetches_done, handed_off;
};

static void held_key(uint8_t out[HELD_KEY_BYTES], const uint8_t mbid[ID_BYTES], uint64_t seq)
{
    out[0] = KEY_HELD;
    memcpy(out + 1, mbid, ID_BYTES);
    bytes_put_u64(out + 1 + ID_BYTES, seq);
}

static void expiry_key(uint8_t out[1 + 8 + ID_BYTES + 8], uint64_t expires_s,
                       const uint8_t mbid[ID_BYTES], uint64_t seq)
{
    out[0] = KEY_EXPIRY;
    bytes_put_u64(out + 1, expires_s);
    memcpy(out + 9, mbid, ID_BYTES);
    bytes_put_u64(out + 9 + ID_BYTES, seq);
}

static void send_link(struct mailbox *mb, const uint8_t peer[32], const struct addr *addr,
                      const struct msg_link *l, enum mp_err *err_out)
{
    struct buf wire;
    struct addr none;
    enum mp_err err = msg_link_encode(l, &wire);

    memset(&none, 0, sizeof(none)); /* an answer: the link is up, no address needed */
    if (err == MP_OK) {
        err = links_send(mb->cfg.links, peer, addr != NULL ? addr : &none, wire.data, wire.len);
        buf_free(&wire);
    }
    if (err_out != NULL)
        *err_out = err;
}

static void sweep_arm(struct mailbox *mb, uint64_t expires_s, uint64_t now_s);
static void handoff_cb(uv_timer_t *timer);

/* Monotonic ms, for timeouts and rates; Unix time (sysenv_unix_ms) only
 * for expiries, which are stored and compared across nodes. */
static uint64_t mono_ms(const struct mailbox *mb)
{
    return env_now_ms(mb->cfg.env);
}

/* ---- counts per mailbox ---- */

static void read_count(struct mailbox *mb, const uint8_t mbid[ID_BYTES], uint64_t *count,
                       uint64_t *bytes)
{
    uint8_t key[1 + ID_BYTES], *val = NULL;
    size_t len = 0;
    key[0] = KEY_COUNT;
    memcpy(key + 1, mbid, ID_BYTES);
    *count = *bytes = 0;
    if (store_get(mb->cfg.store, STORE_CF_MAILBOX, key, sizeof(key), &val, &len) == MP_OK &&
        len == 16) {
        *count = bytes_get_u64(val);
        *bytes = bytes_get_u64(val + 8);
    }
    free(val);
}

static void batch_count(struct store_batch *b, const uint8_t mbid[ID_BYTES], uint64_t count,
                        uint64_t bytes)
{
    uint8_t key[1 + ID_BYTES], val[16];
    key[0] = KEY_COUNT;
    memcpy(key + 1, mbid, ID_BYTES);
    if (count == 0) {
        store_batch_delete(b, STORE_CF_MAILBOX, key, sizeof(key));
        return;
    }
    bytes_put_u64(val, count);
    bytes_put_u64(val + 8, bytes);
    store_batch_put(b, STORE_CF_MAILBOX, key, sizeof(key), val, sizeof(val));
}

/* Delete the envelope with this digest (whose 'h' value is dv) into b. */
static void batch_drop(struct store_batch *b, const uint8_t digest[32],
                       const uint8_t dv[DIGEST_VAL_BYTES])
{
    uint8_t hk[HELD_KEY_BYTES], xk[1 + 8 + ID_BYTES + 8], dk[1 + 32];
    uint64_t seq = bytes_get_u64(dv + ID_BYTES), expires = bytes_get_u64(dv + ID_BYTES + 8);
    held_key(hk, dv, seq);
    expiry_key(xk, expires, dv, seq);
    dk[0] = KEY_DIGEST;
    memcpy(dk + 1, digest, 32);
    store_batch_delete(b, STORE_CF_MAILBOX, hk, sizeof(hk));
    store_batch_delete(b, STORE_CF_MAILBOX, xk, sizeof(xk));
    store_batch_delete(b, STORE_CF_MAILBOX, dk, sizeof(dk));
}

static bool read_digest(struct mailbox *mb, const uint8_t digest[32], uint8_t dv[DIGEST_VAL_BYTES])
{
    uint8_t key[1 + 32], *val = NULL;
    size_t len = 0;
    key[0] = KEY_DIGEST;
    memcpy(key + 1, digest, 32);
    bool ok = store_get(mb->cfg.store, STORE_CF_MAILBOX, key, sizeof(key), &val, &len) == MP_OK &&
              len == DIGEST_VAL_BYTES;
    if (ok)
        memcpy(dv, val, DIGEST_VAL_BYTES);
    free(val);
    return ok;
}

/* Delete the envelopes of one mailbox named by digests (n of them), with
 * the mailbox's count; the caller writes b. Returns how many were held. */
static unsigned drop_many(struct mailbox *mb, struct store_batch *b, const uint8_t mbid[ID_BYTES],
                          const uint8_t (*digests)[32], unsigned n)
{
    uint64_t count, bytes;
    unsigned dropped = 0;
    read_count(mb, mbid, &count, &bytes);
    for (unsigned i = 0; i < n; i++) {
        uint8_t dv[DIGEST_VAL_BYTES];
        if (!read_digest(mb, digests[i], dv) || memcmp(dv, mbid, ID_BYTES) != 0)
            continue; /* not held, or another mailbox's: never touched */
        bool again = false; /* the same digest twice in one call */
        for (unsigned k = 0; k < i && !again; k++)
            again = memcmp(digests[k], digests[i], 32) == 0;
        if (again)
            continue;
        uint32_t len = bytes_get_u32(dv + ID_BYTES + 16);
        batch_drop(b, digests[i], dv);
        count = count > 0 ? count - 1 : 0;
        bytes = bytes > len ? bytes - len : 0;
        mb->held = mb->held > 0 ? mb->held - 1 : 0;
        mb->held_bytes = mb->held_bytes > len ? mb->held_bytes - len : 0;
        dropped++;
    }
    if (dropped > 0)
        batch_count(b, mbid, count, bytes);
    return dropped;
}

/* ---- holding: stores ---- */

static void durable_cb(uv_timer_t *timer)
{
    struct mailbox *mb = timer->data;
    size_t n = mb->reply_count;

    if (n == 0)
        return;
    mb->reply_count = 0;
    enum mp_err err = store_sync(mb->cfg.store);
    for (size_t i = 0; i < n; i++) {
        struct reply *r = &mb->replies[i];
        struct msg_link l = {.type = MSG_LINK_MB_STORED, .status = r->status,
                             .expires_s = r->expires_s};
        if (err != MP_OK && r->status == MSG_MB_HELD)
            continue; /* not durable: no answer, the sender stores it again */
        memcpy(l.digest, r->digest, 32);
        buf_init(&l.envelope, 0);
        send_link(mb, r->peer, NULL, &l, NULL); /* lost when busy: the sender asks again */
    }
    if (err != MP_OK)
        log_error(MOD, "cannot sync the store: %s; %zu stores unanswered", mp_strerror(err), n);
}

static void answer(struct mailbox *mb, const uint8_t peer[32], const uint8_t digest[32],
                   uint8_t status, uint64_t expires_s)
{
    if (mb->reply_count == MAILBOX_SYNC_GROUP)
        durable_cb(&mb->durable);
    struct reply *r = &mb->replies[mb->reply_count++];
    memcpy(r->peer, peer, 32);
    memcpy(r->digest, digest, 32);
    r->status = status;
    r->expires_s = expires_s;
    if (!mb->closing)
        uv_timer_start(&mb->durable, durable_cb, 0, 0);
}

/* Take a token from the sending node's bucket: false when it is over its rate. */
static bool rate_ok(struct mailbox *mb, const uint8_t peer[32], uint64_t now)
{
    const struct config_mailbox *lim = &mb->cfg.limits;
    struct sender *s = NULL, *oldest = &mb->senders[0];

    for (size_t i = 0; i < MAILBOX_SENDERS_MAX && s == NULL; i++) {
        struct sender *c = &mb->senders[i];
        if (c->used && memcmp(c->key, peer, 32) == 0)
            s = c;
        else if (!c->used || (oldest->used && c->at_ms < oldest->at_ms))
            oldest = c;
    }
    if (s == NULL) {
        s = oldest;
        s->used = true;
        memcpy(s->key, peer, 32);
        s->tokens = lim->burst;
        s->at_ms = now;
    }
    s->tokens += (double)(now - s->at_ms) * lim->rate / 1000.0;
    if (s->tokens > lim->burst)
        s->tokens = lim->burst;
    s->at_ms = now;
    if (s->tokens < 1.0)
        return false;
    s->tokens -= 1.0;
    return true;
}

static void on_store(struct mailbox *mb, const uint8_t peer[32], const struct msg_link *l)
{
    const struct buf *envelope = &l->envelope;
    const struct config_mailbox *lim = &mb->cfg.limits;
    uint8_t digest[32], mbid[ID_BYTES], dv[DIGEST_VAL_BYTES];
    uint64_t now = mono_ms(mb), now_s = sysenv_unix_ms() / 1000;

    box_hash(digest, 32, NULL, 0, envelope->data, envelope->len, NULL, 0, NULL, 0);
    if (!lim->serve || envelope_mailbox(envelope->data, envelope->len, mbid) != MP_OK ||
        memcmp(mbid, mb->own_mbid, ID_BYTES) == 0) {
        /* Not holding mail, not an envelope, or ours (it should come to us directly). */
        mb->refused_other++;
        answer(mb, peer, digest, MSG_MB_REFUSED, 0);
        return;
    }
    if (read_digest(mb, digest, dv)) { /* held already: the same answer again */
        answer(mb, peer, digest, MSG_MB_HELD, bytes_get_u64(dv + ID_BYTES + 8));
        return;
    }
    if (!rate_ok(mb, peer, now)) {
        mb->refused_rate++;
        answer(mb, peer, digest, MSG_MB_RATE, 0);
        return;
    }
    uint64_t count, bytes, len = envelope->len;
    read_count(mb, mbid, &count, &bytes);
    if (count + 1 > lim->max_count || bytes + len > (uint64_t)lim->max_kib * 1024 ||
        mb->held_bytes + len > (uint64_t)lim->total_mib * 1024 * 1024) {
        mb->refused_full++;
        answer(mb, peer, digest, MSG_MB_FULL, 0);
        return;
    }
    /* Our TTL, or sooner when the sender (or the mailbox handing it over)
     * says its life ends sooner: handoffs and re-stores never extend it. */
    uint64_t seq = mb->next_seq, expires_s = now_s + lim->ttl_s;
    if (l->expires_s != 0 && l->expires_s < expires_s)
        expires_s = l->expires_s;
    if (expires_s <= now_s) {
        mb->refused_other++;
        answer(mb, peer, digest, MSG_MB_REFUSED, 0);
        return;
    }
    uint8_t hk[HELD_KEY_BYTES], xk[1 + 8 + ID_BYTES + 8], dk[1 + 32], sv[8];
    uint8_t *val = malloc(8 + len);
    if (val == NULL)
        return; /* no answer: the sender asks again */
    bytes_put_u64(val, expires_s);
    memcpy(val + 8, envelope->data, len);
    held_key(hk, mbid, seq);
    expiry_key(xk, expires_s, mbid, seq);
    dk[0] = KEY_DIGEST;
    memcpy(dk + 1, digest, 32);
    memcpy(dv, mbid, ID_BYTES);
    bytes_put_u64(dv + ID_BYTES, seq);
    bytes_put_u64(dv + ID_BYTES + 8, expires_s);
    bytes_put_u32(dv + ID_BYTES + 16, (uint32_t)len);
    bytes_put_u64(sv, seq + 1);
    struct store_batch *b = store_batch_new();
    store_batch_put(b, STORE_CF_MAILBOX, hk, sizeof(hk), val, 8 + len);
    store_batch_put(b, STORE_CF_MAILBOX, xk, sizeof(xk), digest, 32);
    store_batch_put(b, STORE_CF_MAILBOX, dk, sizeof(dk), dv, sizeof(dv));
    batch_count(b, mbid, count + 1, bytes + len);
    store_batch_put(b, STORE_CF_META, meta_seq, strlen(meta_seq), sv, sizeof(sv));
    /* Unsynced: the answer waits for the one sync of this loop turn. */
    enum mp_err err = store_batch_write(mb->cfg.store, b, false);
    store_batch_free(b);
    free(val);
    if (err != MP_OK) {
        log_error(MOD, "cannot store an envelope: %s", mp_strerror(err));
        mb->refused_full++;
        answer(mb, peer, digest, MSG_MB_FULL, 0);
        return;
    }
    mb->next_seq = seq + 1;
    mb->held++;
    mb->held_bytes += len;
    mb->stored++;
    sweep_arm(mb, expires_s, now_s);
    answer(mb, peer, digest, MSG_MB_HELD, expires_s);
    /* A fetcher of this mailbox being served now gets it too. */
    for (size_t i = 0; i < MAILBOX_SERVE_MAX; i++) {
        struct serve *s = &mb->serves[i];
        if (s->used && s->authorized && memcmp(s->mbid, mbid, ID_BYTES) == 0)
            s->active_ms = now;
    }
}

/* ---- holding: fetches we serve ---- */

static struct serve *serve_find(struct mailbox *mb, const uint8_t peer[32], bool make)
{
    struct serve *free_slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < MAILBOX_SERVE_MAX; i++) {
        struct serve *s = &mb->serves[i];
        if (s->used && memcmp(s->peer, peer, 32) == 0)
            return s;
        if (!s->used && free_slot == NULL)
            free_slot = s;
        if (s->used && (oldest == NULL || s->active_ms < oldest->active_ms))
            oldest = s;
    }
    if (!make)
        return NULL;
    struct serve *s = free_slot;
    if (s == NULL && oldest != NULL && mono_ms(mb) - oldest->active_ms > MAILBOX_IDLE_MS)
        s = oldest;
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s));
    s->used = true;
    memcpy(s->peer, peer, 32);
    return s;
}

static void proof_message(uint8_t out[PROOF_BYTES], const uint8_t mailbox_node[32],
                          const uint8_t fetcher_node[32], const uint8_t nonce[MSG_MB_NONCE_BYTES])
{
    size_t label = sizeof(fetch_label) - 1;
    memcpy(out, fetch_label, label);
    memcpy(out + label, mailbox_node, 32);
    memcpy(out + label + 32, fetcher_node, 32);
    memcpy(out + label + 64, nonce, MSG_MB_NONCE_BYTES);
}

static void end_fetch(struct mailbox *mb, struct serve *s, uint8_t status)
{
    struct msg_link l = {.type = MSG_LINK_MB_END, .status = status};
    buf_init(&l.envelope, 0);
    send_link(mb, s->peer, NULL, &l, NULL);
    s->used = false;
}

/* Hand out the mailbox's envelopes after the cursor, up to the window. */
static void stream(struct mailbox *mb, struct serve *s)
{
    uint8_t prefix[1 + ID_BYTES], start[HELD_KEY_BYTES];
    const uint8_t *key, *val;
    size_t key_len, val_len;
    uint64_t now = mono_ms(mb), now_s = sysenv_unix_ms() / 1000;
    bool more = false;

    if (!s->authorized || s->busy)
        return;
    prefix[0] = KEY_HELD;
    memcpy(prefix + 1, s->mbid, ID_BYTES);
    held_key(start, s->mbid, s->cursor + 1);
    struct store_iter *it =
        store_iter_new_at(mb->cfg.store, STORE_CF_MAILBOX, prefix, sizeof(prefix), start,
                            sizeof(start));
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        if (key_len != HELD_KEY_BYTES || val_len <= 8)
            continue;
        if (s->inflight >= MAILBOX_WINDOW) {
            more = true;
            break;
        }
        uint64_t seq = bytes_get_u64(key + 1 + ID_BYTES);
        if (bytes_get_u64(val) <= now_s) { /* expired: the sweep deletes it */
            s->cursor = seq;
            continue;
        }
        struct msg_link l = {.type = MSG_LINK_MB_MAIL};
        enum mp_err err;
        buf_init(&l.envelope, MSG_LINK_ENVELOPE_MAX);
        if (buf_append(&l.envelope, val + 8, val_len - 8) != MP_OK) {
            /* Not an envelope we could have stored: skip it, do not stall. */
            buf_free(&l.envelope);
            s->cursor = seq;
            log_warn(MOD, "skipped a damaged held envelope");
            continue;
        }
        send_link(mb, s->peer, NULL, &l, &err);
        buf_free(&l.envelope);
        if (err == MP_ERR_BUSY) {
            s->busy = true;
            more = true;
            break;
        }
        if (err != MP_OK) { /* the link is gone: so is the fetch */
            s->used = false;
            store_iter_free(it);
            return;
        }
        s->cursor = seq;
        s->inflight++;
        s->active_ms = now;
        mb->handed_out++;
    }
    store_iter_free(it);
    if (!more && s->inflight == 0)
        end_fetch(mb, s, MSG_MB_END_DONE);
}

static void on_hello(struct mailbox *mb, const uint8_t peer[32])
{
    struct serve *s = serve_find(mb, peer, true);
    if (s == NULL)
        return; /* every slot busy: it asks again next round */
    struct msg_link l = {.type = MSG_LINK_MB_CHALLENGE};
    env_random(mb->cfg.env, s->nonce, sizeof(s->nonce));
    s->has_nonce = true;
    s->authorized = false;
    s->nonce_ms = s->active_ms = mono_ms(mb);
    memcpy(l.nonce, s->nonce, sizeof(l.nonce));
    buf_init(&l.envelope, 0);
    send_link(mb, peer, NULL, &l, NULL);
}

static void on_fetch(struct mailbox *mb, const uint8_t peer[32], const struct msg_link *l)
{
    uint8_t msg[PROOF_BYTES];
    struct serve *s = serve_find(mb, peer, false);
    uint64_t now = mono_ms(mb);
    char who[16];

    if (s == NULL) { /* no challenge was asked for on this link */
        struct msg_link end = {.type = MSG_LINK_MB_END, .status = MSG_MB_END_REFUSED};
        mb->refused_proof++;
        buf_init(&end.envelope, 0);
        send_link(mb, peer, NULL, &end, NULL);
        return;
    }
    /* A challenge is good once, for a short while, on this link only. */
    bool fresh = s->has_nonce && now - s->nonce_ms <= MAILBOX_CHALLENGE_MS;
    proof_message(msg, mb->node_key, peer, s->nonce);
    bool ok = fresh && identity_verify(l->account, msg, sizeof(msg), l->sig);
    s->has_nonce = false;
    secure_wipe(s->nonce, sizeof(s->nonce));
    if (!ok) {
        mb->refused_proof++;
        secure_hex(who, sizeof(who), peer, 4);
        log_info(MOD, "refused a fetch from node %s...: %s", who,
                 fresh ? "the signature does not match the account" : "no fresh challenge");
        end_fetch(mb, s, MSG_MB_END_REFUSED);
        return;
    }
    s->authorized = true;
    envelope_mailbox_id(l->account, s->mbid);
    s->cursor = 0;
    s->inflight = 0;
    s->busy = false;
    s->active_ms = now;
    stream(mb, s);
}

static void on_taken(struct mailbox *mb, const uint8_t peer[32], const struct msg_link *l)
{
    struct serve *s = serve_find(mb, peer, false);
    if (s == NULL || !s->authorized)
        return; /* only what we handed to this fetcher, for its proven mailbox */
    struct store_batch *b = store_batch_new();
    unsigned n = drop_many(mb, b, s->mbid, (const uint8_t(*)[32])l->digests, l->digest_count);
    /* Unsynced: a delete lost in a crash hands the envelope out again, and
     * the fetcher drops the duplicate. */
    enum mp_err err = n > 0 ? store_batch_write(mb->cfg.store, b, false) : MP_OK;
    store_batch_free(b);
    if (err != MP_OK)
        log_warn(MOD, "cannot delete fetched envelopes: %s", mp_strerror(err));
    mb->taken += n;
    s->inflight = s->inflight > l->digest_count ? s->inflight - l->digest_count : 0;
    s->active_ms = mono_ms(mb);
    stream(mb, s);
}

/* ---- fetching our own mail ---- */

static enum mp_err find_start(struct mailbox *mb, const uint8_t mbid[ID_BYTES],
                              const uint8_t *exclude, const struct mailbox_target *listed,
                              size_t listed_count, unsigned want, mailbox_find_cb *cb, void *arg);

static struct fetching *fetching_find(struct mailbox *mb, const uint8_t key[32], bool make)
{
    struct fetching *free_slot = NULL;
    for (size_t i = 0; i < MAILBOX_FETCH_MAX; i++) {
        struct fetching *f = &mb->fetching[i];
        if (f->used && memcmp(f->key, key, 32) == 0)
            return f;
        if (!f->used && free_slot == NULL)
            free_slot = f;
    }
    if (!make || free_slot == NULL)
        return NULL;
    memset(free_slot, 0, sizeof(*free_slot));
    free_slot->used = true;
    memcpy(free_slot->key, key, 32);
    return free_slot;
}

static void flush_taken_one(struct mailbox *mb, struct fetching *f)
{
    if (f->taken_count == 0)
        return;
    struct msg_link l = {.type = MSG_LINK_MB_TAKEN, .digest_count = f->taken_count};
    enum mp_err err;
    memcpy(l.digests, f->taken, (size_t)f->taken_count * 32);
    buf_init(&l.envelope, 0);
    send_link(mb, f->key, NULL, &l, &err);
    if (err == MP_ERR_BUSY)
        return; /* kept: sent on writable */
    f->taken_count = 0;
    if (!f->asked)
        f->used = false;
}

static void flush_cb(uv_timer_t *timer)
{
    struct mailbox *mb = timer->data;
    for (size_t i = 0; i < MAILBOX_FETCH_MAX; i++) {
        if (mb->fetching[i].used)
            flush_taken_one(mb, &mb->fetching[i]);
    }
}

void mailbox_taken(struct mailbox *mb, const uint8_t node_key[32], const uint8_t digest[32])
{
    struct fetching *f = fetching_find(mb, node_key, true);
    if (f == NULL)
        return; /* handed out again next time, and dropped as a duplicate */
    if (f->taken_count == MSG_MB_TAKEN_MAX)
        flush_taken_one(mb, f);
    if (f->taken_count == MSG_MB_TAKEN_MAX)
        return;
    memcpy(f->taken[f->taken_count++], digest, 32);
    f->active_ms = mono_ms(mb);
    if (!mb->closing)
        uv_timer_start(&mb->flush, flush_cb, 0, 0);
}

static void ask(struct mailbox *mb, const uint8_t key[32], const struct addr *addr)
{
    uint64_t now = mono_ms(mb);
    if (memcmp(key, mb->node_key, 32) == 0)
        return;
    struct fetching *f = fetching_find(mb, key, true);
    if (f == NULL || (f->asked && now - f->active_ms < MAILBOX_IDLE_MS))
        return; /* no room, or a fetch from it is going on */
    struct msg_link l = {.type = MSG_LINK_MB_HELLO};
    enum mp_err err;
    buf_init(&l.envelope, 0);
    send_link(mb, key, addr, &l, &err);
    f->asked = err == MP_OK;
    f->active_ms = now;
    if (!f->asked && f->taken_count == 0)
        f->used = false;
}

/* Remember where we asked (unsynced: a cache). */
static void save_asked(struct mailbox *mb, const struct mailbox_target *targets, size_t count)
{
    char text[LAST_MAX * (CONFIG_BOOTSTRAP_TEXT_MAX + 1)];
    size_t len = 0;
    for (size_t i = 0; i < count && i < LAST_MAX; i++) {
        char key[65], addr[ADDR_TEXT_MAX];
        secure_hex(key, sizeof(key), targets[i].key, 32);
        addr_format(&targets[i].addr, addr, sizeof(addr));
        int n = snprintf(text + len, sizeof(text) - len, "%s@%s\n", key, addr);
        if (n < 0 || (size_t)n >= sizeof(text) - len)
            break;
        len += (size_t)n;
    }
    store_put(mb->cfg.store, STORE_CF_META, meta_last, strlen(meta_last), text, len, false);
}

/* Ask the mailbox nodes asked last time (at start, without waiting for a lookup). */
static void ask_saved(struct mailbox *mb)
{
    uint8_t *val = NULL;
    size_t len = 0;
    if (store_get(mb->cfg.store, STORE_CF_META, meta_last, strlen(meta_last), &val, &len) != MP_OK)
        return;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (val[i] != '\n')
            continue;
        char line[CONFIG_BOOTSTRAP_TEXT_MAX];
        struct mailbox_target t;
        size_t n = i - start;
        if (n < sizeof(line)) {
            memcpy(line, val + start, n);
            line[n] = '\0';
            if (config_parse_node(line, t.key, &t.addr) == MP_OK)
                ask(mb, t.key, &t.addr);
        }
        start = i + 1;
    }
    free(val);
}

static void fetch_found_cb(void *arg, enum mp_err status, const struct mailbox_target *targets,
                           size_t count)
{
    struct mailbox *mb = arg;
    if (mb->closing)
        return;
    if (count > 0)
        save_asked(mb, targets, count);
    if (status != MP_OK)
        log_debug(MOD, "no mailbox nodes found for our mail: %s", mp_strerror(status));
    else
        log_debug(MOD, "asking %zu mailbox nodes for our mail", count);
    for (size_t i = 0; i < count; i++)
        ask(mb, targets[i].key, &targets[i].addr);
}

static void fetch_cb(uv_timer_t *timer)
{
    struct mailbox *mb = timer->data;
    size_t n = sizeof(fetch_delays_ms) / sizeof(fetch_delays_ms[0]);

    for (size_t i = 0; i < mb->own_count; i++)
        ask(mb, mb->own[i].key, &mb->own[i].addr);
    ask_saved(mb);
    /* The closest nodes and more (twice the replicas): mail stays found while
     * the closest set shifts a little. Looked up in the first rounds, then
     * every MAILBOX_LOOKUP_ROUNDS: in between the nodes found last are asked
     * again over their links, and an idle node sends no datagram for it. */
    if (mb->fetch_round < n || mb->fetch_round % MAILBOX_LOOKUP_ROUNDS == 0)
        find_start(mb, mb->own_mbid, NULL, NULL, 0, 2 * mb->cfg.limits.replicas, fetch_found_cb,
                   mb);
    uint64_t next = mb->fetch_round < n ? fetch_delays_ms[mb->fetch_round]
                                        : (uint64_t)mb->cfg.limits.fetch_interval_s * 1000;
    mb->fetch_round++;
    if (!mb->closing)
        uv_timer_start(&mb->fetch, fetch_cb, next, 0);
}

static void on_challenge(struct mailbox *mb, const uint8_t peer[32], const struct msg_link *l)
{
    struct fetching *f = fetching_find(mb, peer, false);
    if (f == NULL || !f->asked)
        return; /* we did not ask this node */
    uint8_t msg[PROOF_BYTES];
    struct msg_link reply = {.type = MSG_LINK_MB_FETCH};
    proof_message(msg, peer, mb->node_key, l->nonce);
    memcpy(reply.account, identity_public_key(mb->cfg.account), 32);
    identity_sign(mb->cfg.account, msg, sizeof(msg), reply.sig);
    buf_init(&reply.envelope, 0);
    send_link(mb, peer, NULL, &reply, NULL);
    f->active_ms = mono_ms(mb);
}

static void on_mail(struct mailbox *mb, const uint8_t peer[32], const struct msg_link *l)
{
    struct fetching *f = fetching_find(mb, peer, false);
    if (f == NULL || !f->asked)
        return; /* not a node we fetch from */
    f->active_ms = mono_ms(mb);
    mb->fetched++;
    mb->cfg.mail_cb(mb->cfg.mail_arg, peer, &l->envelope);
}

static void on_end(struct mailbox *mb, const uint8_t peer[32], const struct msg_link *l)
{
    struct fetching *f = fetching_find(mb, peer, false);
    if (f == NULL)
        return;
    if (l->status == MSG_MB_END_REFUSED) {
        char who[16];
        secure_hex(who, sizeof(who), peer, 4);
        log_warn(MOD, "mailbox node %s... refused to hand out our mail", who);
    } else {
        mb->fetches_done++;
    }
    f->asked = false;
    if (f->taken_count == 0)
        f->used = false;
}

/* ---- finding a recipient's mailboxes ---- */

static void find_cb(void *arg, enum mp_err status, const struct dht_peer *nodes, size_t count)
{
    struct find_op *op = arg;
    struct mailbox *mb = op->mb;
    struct mailbox_target out[MAILBOX_TARGETS_MAX];
    size_t n = 0, closest = 0;

    for (size_t i = 0; i < count && closest < op->want && n < MAILBOX_TARGETS_MAX; i++) {
        if (memcmp(nodes[i].pk, mb->node_key, 32) == 0 ||
            (op->has_exclude && memcmp(nodes[i].pk, op->exclude, 32) == 0))
            continue;
        memcpy(out[n].key, nodes[i].pk, 32);
        out[n].addr = nodes[i].addr;
        n++;
        closest++;
    }
    for (size_t i = 0; i < op->listed_count && n < MAILBOX_TARGETS_MAX; i++) {
        bool dup = memcmp(op->listed[i].key, mb->node_key, 32) == 0;
        for (size_t k = 0; k < n && !dup; k++)
            dup = memcmp(out[k].key, op->listed[i].key, 32) == 0;
        if (!dup)
            out[n++] = op->listed[i];
    }
    op->cb(op->arg, n > 0 ? MP_OK : (status != MP_OK ? status : MP_ERR_NOT_FOUND), out, n);
    free(op);
}

/* The `want` nodes closest to mailbox id mbid, then the listed ones. */
static enum mp_err find_start(struct mailbox *mb, const uint8_t mbid[ID_BYTES],
                              const uint8_t *exclude, const struct mailbox_target *listed,
                              size_t listed_count, unsigned want, mailbox_find_cb *cb, void *arg)
{
    struct find_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return MP_ERR_NOMEM;
    op->mb = mb;
    op->cb = cb;
    op->arg = arg;
    op->want = want;
    if (exclude != NULL) {
        op->has_exclude = true;
        memcpy(op->exclude, exclude, 32);
    }
    for (size_t i = 0; i < listed_count && i < MAILBOX_TARGETS_MAX; i++)
        op->listed[op->listed_count++] = listed[i];
    enum mp_err err = overlay_lookup(mb->cfg.overlay, mbid, find_cb, op);
    if (err != MP_OK) {
        if (op->listed_count == 0) {
            free(op);
            return err;
        }
        find_cb(op, err, NULL, 0); /* the listed ones still count */
    }
    return MP_OK;
}

enum mp_err mailbox_find(struct mailbox *mb, const uint8_t account[32], const uint8_t *exclude,
                         const struct mailbox_target *listed, size_t listed_count,
                         mailbox_find_cb *cb, void *arg)
{
    uint8_t mbid[ID_BYTES];
    envelope_mailbox_id(account, mbid);
    return find_start(mb, mbid, exclude, listed, listed_count, mb->cfg.limits.replicas, cb, arg);
}

size_t mailbox_own_nodes(const struct mailbox *mb, struct mailbox_target *out, size_t max)
{
    size_t n = 0;
    for (; n < mb->own_count && n < max; n++)
        out[n] = mb->own[n];
    return n;
}

/* ---- expiry ---- */

static void sweep_cb(uv_timer_t *timer)
{
    struct mailbox *mb = timer->data;
    uint8_t prefix = KEY_EXPIRY;
    const uint8_t *key, *val;
    size_t key_len, val_len;
    uint64_t now_s = sysenv_unix_ms() / 1000, next_s = 0;
    unsigned n = 0;
    bool more = false;

    struct store_iter *it = store_iter_new(mb->cfg.store, STORE_CF_MAILBOX, &prefix, 1);
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        if (key_len != 1 + 8 + ID_BYTES + 8 || val_len != 32)
            continue;
        if (bytes_get_u64(key + 1) > now_s) {
            next_s = bytes_get_u64(key + 1); /* in expiry order: the rest is younger */
            break;
        }
        if (n == MAILBOX_SWEEP_BATCH) {
            more = true;
            break;
        }
        struct store_batch *b = store_batch_new();
        uint8_t digest[32];
        memcpy(digest, val, 32);
        unsigned dropped = drop_many(mb, b, key + 9, (const uint8_t(*)[32])digest, 1);
        if (dropped == 0) { /* an index entry left alone: remove it */
            store_batch_delete(b, STORE_CF_MAILBOX, key, key_len);
        }
        if (store_batch_write(mb->cfg.store, b, false) == MP_OK)
            mb->expired += dropped;
        store_batch_free(b);
        n++;
    }
    store_iter_free(it);
    if (n > 0)
        log_info(MOD, "%u envelopes expired", n);
    /* Next pass: at once when there is more, else at the next expiry; with
     * nothing held, none (a store arms it: sweep_arm). */
    if (!mb->closing && (more || next_s != 0))
        uv_timer_start(&mb->sweep, sweep_cb, more ? 0 : (next_s - now_s) * 1000 + 1000, 0);
}

/* An envelope expiring at expires_s was stored: the sweep runs by then. */
static void sweep_arm(struct mailbox *mb, uint64_t expires_s, uint64_t now_s)
{
    uint64_t due = (expires_s > now_s ? expires_s - now_s : 0) * 1000 + 1000;
    if (mb->closing)
        return;
    if (!uv_is_active((uv_handle_t *)&mb->sweep) || uv_timer_get_due_in(&mb->sweep) > due)
        uv_timer_start(&mb->sweep, sweep_cb, due, 0);
    if (!uv_is_active((uv_handle_t *)&mb->handoff))
        uv_timer_start(&mb->handoff, handoff_cb,
                       (uint64_t)mb->cfg.limits.handoff_interval_s * 1000, 0);
}

/* ---- handoff ---- */

static void handoff_next(struct mailbox *mb);

static struct handed *handed_slot(struct mailbox *mb, const uint8_t mbid[ID_BYTES])
{
    struct handed *oldest = &mb->handed[0];
    for (size_t i = 0; i < MAILBOX_HANDED_MAX; i++) {
        struct handed *h = &mb->handed[i];
        if (memcmp(h->mbid, mbid, ID_BYTES) == 0)
            return h;
        if (h->at_ms < oldest->at_ms)
            oldest = h;
    }
    memset(oldest, 0, sizeof(*oldest));
    memcpy(oldest->mbid, mbid, ID_BYTES);
    return oldest;
}

static void handoff_finish(struct mailbox *mb);

/* Store the mailbox's envelopes with each target from its cursor, until its
 * link is busy (writable resumes) or all are stored. */
static void handoff_push(struct mailbox *mb)
{
    struct handoff *ho = &mb->ho;
    uint8_t prefix[1 + ID_BYTES], start[HELD_KEY_BYTES];
    const uint8_t *key, *val;
    size_t key_len, val_len;
    bool all_done = true;

    prefix[0] = KEY_HELD;
    memcpy(prefix + 1, ho->mbid, ID_BYTES);
    for (size_t t = 0; t < ho->count; t++) {
        if (ho->done[t])
            continue;
        held_key(start, ho->mbid, ho->cursor[t] + 1);
        struct store_iter *it = store_iter_new_at(mb->cfg.store, STORE_CF_MAILBOX, prefix,
                                                    sizeof(prefix), start, sizeof(start));
        bool busy = false;
        while (!busy && store_iter_next(it, &key, &key_len, &val, &val_len)) {
            if (key_len != HELD_KEY_BYTES || val_len <= 8)
                continue;
            struct msg_link l = {.type = MSG_LINK_MB_STORE, .expires_s = bytes_get_u64(val)};
            enum mp_err err;
            buf_init(&l.envelope, MSG_LINK_ENVELOPE_MAX);
            if (buf_append(&l.envelope, val + 8, val_len - 8) != MP_OK) {
                /* Not an envelope we could have stored: skip it, do not stall. */
                buf_free(&l.envelope);
                ho->cursor[t] = bytes_get_u64(key + 1 + ID_BYTES);
                log_warn(MOD, "skipped a damaged held envelope in a handoff");
                continue;
            }
            send_link(mb, ho->targets[t].key, &ho->targets[t].addr, &l, &err);
            buf_free(&l.envelope);
            if (err == MP_ERR_BUSY) {
                busy = true;
            } else if (err != MP_OK) {
                break; /* unreachable: given up for this pass */
            } else {
                ho->cursor[t] = bytes_get_u64(key + 1 + ID_BYTES);
                mb->handed_off++;
            }
        }
        store_iter_free(it);
        if (busy)
            all_done = false;
        else
            ho->done[t] = true;
    }
    if (all_done)
        handoff_finish(mb);
}

/* Every target of the current mailbox has what we hold (or is gone): remember
 * how far, and go on with the next mailbox of the pass. */
static void handoff_finish(struct mailbox *mb)
{
    struct handoff *ho = &mb->ho;
    struct handed *h = handed_slot(mb, ho->mbid);
    uint64_t upto = UINT64_MAX; /* what every target got: the least cursor */
    for (size_t t = 0; t < ho->count; t++)
        upto = ho->cursor[t] < upto ? ho->cursor[t] : upto;
    if (ho->count == 0)
        upto = 0;
    h->upto = upto;
    h->at_ms = mono_ms(mb);
    ho->active = false;
    handoff_next(mb);
}

static void handoff_found_cb(void *arg, enum mp_err status, const struct mailbox_target *targets,
                             size_t count)
{
    struct mailbox *mb = arg;
    struct handoff *ho = &mb->ho;
    uint8_t keys[MAILBOX_TARGETS_MAX * 32] = {0}, sum[16];
    (void)status;

    ho->looking = false;
    if (mb->closing)
        return;
    ho->count = count;
    for (size_t i = 0; i < count; i++) {
        ho->targets[i] = targets[i];
        ho->cursor[i] = 0;
        ho->done[i] = false;
        memcpy(keys + 32 * i, targets[i].key, 32);
    }
    box_hash(sum, sizeof(sum), NULL, 0, keys, 32 * count, NULL, 0, NULL, 0);
    struct handed *h = handed_slot(mb, ho->mbid);
    if (memcmp(h->targets, sum, sizeof(sum)) == 0) {
        /* The same nodes as last time: only what came since. */
        for (size_t i = 0; i < count; i++)
            ho->cursor[i] = h->upto;
    }
    memcpy(h->targets, sum, sizeof(sum));
    h->at_ms = mono_ms(mb);
    if (count == 0) {
        ho->active = false;
        handoff_next(mb);
        return;
    }
    handoff_push(mb);
}

/* The next mailbox of the pass: the first key after next_after. */
static void handoff_next(struct mailbox *mb)
{
    struct handoff *ho = &mb->ho;
    uint8_t prefix = KEY_COUNT, start[1 + ID_BYTES];
    const uint8_t *key, *val;
    size_t key_len, val_len;
    bool found = false;

    if (mb->closing || ho->left == 0)
        return;
    ho->left--;
    start[0] = KEY_COUNT;
    memcpy(start + 1, ho->next_after, ID_BYTES);
    struct store_iter *it =
        store_iter_new_at(mb->cfg.store, STORE_CF_MAILBOX, &prefix, 1, start, sizeof(start));
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        if (key_len != 1 + ID_BYTES || memcmp(key + 1, ho->next_after, ID_BYTES) <= 0)
            continue;
        memcpy(ho->mbid, key + 1, ID_BYTES);
        found = true;
        break;
    }
    store_iter_free(it);
    if (!found) {
        memset(ho->next_after, 0, ID_BYTES); /* the pass wrapped around */
        return;
    }
    memcpy(ho->next_after, ho->mbid, ID_BYTES);
    ho->active = true;
    ho->looking = true;
    /* The closest nodes to the mailbox, ourselves left out: they should hold it. */
    if (find_start(mb, ho->mbid, NULL, NULL, 0, mb->cfg.limits.replicas, handoff_found_cb, mb) !=
        MP_OK) {
        ho->looking = false;
        ho->active = false;
    }
}

static void handoff_cb(uv_timer_t *timer)
{
    struct mailbox *mb = timer->data;
    if (!mb->ho.active) {
        mb->ho.left = MAILBOX_HANDOFF_BATCH;
        handoff_next(mb);
    }
    if (!mb->closing && mb->held > 0) /* nothing held: a store arms it again */
        uv_timer_start(&mb->handoff, handoff_cb,
                       (uint64_t)mb->cfg.limits.handoff_interval_s * 1000, 0);
}

/* ---- links ---- */

void mailbox_on_link(struct mailbox *mb, const uint8_t node_key[32], const struct msg_link *l)
{
    if (mb->closing)
        return;
    switch (l->type) {
    case MSG_LINK_MB_STORE:
        on_store(mb, node_key, l);
        break;
    case MSG_LINK_MB_HELLO:
        on_hello(mb, node_key);
        break;
    case MSG_LINK_MB_FETCH:
        on_fetch(mb, node_key, l);
        break;
    case MSG_LINK_MB_TAKEN:
        on_taken(mb, node_key, l);
        break;
    case MSG_LINK_MB_CHALLENGE:
        on_challenge(mb, node_key, l);
        break;
    case MSG_LINK_MB_MAIL:
        on_mail(mb, node_key, l);
        break;
    case MSG_LINK_MB_END:
        on_end(mb, node_key, l);
        break;
    default:
        break;
    }
}

void mailbox_on_link_state(struct mailbox *mb, const uint8_t node_key[32], bool up)
{
    if (up)
        return;
    struct serve *s = serve_find(mb, node_key, false);
    if (s != NULL)
        s->used = false; /* its fetch ends with the link */
    struct fetching *f = fetching_find(mb, node_key, false);
    if (f != NULL)
        f->asked = false; /* asked again next round */
    if (mb->ho.active && !mb->ho.looking) {
        bool all_done = true;
        for (size_t t = 0; t < mb->ho.count; t++) {
            if (memcmp(mb->ho.targets[t].key, node_key, 32) == 0)
                mb->ho.done[t] = true; /* gone: next pass */
            all_done = all_done && mb->ho.done[t];
        }
        if (all_done)
            handoff_finish(mb);
    }
}

void mailbox_on_writable(struct mailbox *mb, const uint8_t node_key[32])
{
    struct serve *s = serve_find(mb, node_key, false);
    if (s != NULL && s->busy) {
        s->busy = false;
        stream(mb, s);
    }
    struct fetching *f = fetching_find(mb, node_key, false);
    if (f != NULL)
        flush_taken_one(mb, f);
    if (mb->ho.active && !mb->ho.looking) {
        for (size_t t = 0; t < mb->ho.count; t++) {
            if (memcmp(mb->ho.targets[t].key, node_key, 32) == 0) {
                handoff_push(mb);
                break;
            }
        }
    }
}

/* ---- start, status, stop ---- */

static enum mp_err load_totals(struct mailbox *mb)
{
    uint8_t prefix = KEY_COUNT, *val = NULL;
    const uint8_t *key, *v;
    size_t key_len, v_len, len = 0;

    struct store_iter *it = store_iter_new(mb->cfg.store, STORE_CF_MAILBOX, &prefix, 1);
    while (store_iter_next(it, &key, &key_len, &v, &v_len)) {
        if (v_len == 16) {
            mb->held += bytes_get_u64(v);
            mb->held_bytes += bytes_get_u64(v + 8);
        }
    }
    enum mp_err err = store_iter_status(it);
    store_iter_free(it);
    if (err != MP_OK)
        return err;
    err = store_get(mb->cfg.store, STORE_CF_META, meta_seq, strlen(meta_seq), &val, &len);
    if (err == MP_OK && len == 8)
        mb->next_seq = bytes_get_u64(val);
    else if (err == MP_OK)
        err = MP_ERR_STORE;
    free(val);
    if (err == MP_ERR_NOT_FOUND)
        err = MP_OK;
    if (mb->next_seq == 0)
        mb->next_seq = 1;
    return err;
}

static enum mp_err parse_own(struct mailbox *mb)
{
    for (unsigned i = 0; i < mb->cfg.limits.node_count; i++) {
        struct mailbox_target *t = &mb->own[mb->own_count];
        if (config_parse_node(mb->cfg.limits.nodes[i], t->key, &t->addr) != MP_OK)
            return MP_ERR_CONFIG; /* config_load checked the form already */
        mb->own_count++;
    }
    return MP_OK;
}

enum mp_err mailbox_new(const struct mailbox_config *cfg, struct mailbox **mailbox_out)
{
    struct mailbox *mb = calloc(1, sizeof(*mb));
    if (mb == NULL)
        return MP_ERR_NOMEM;
    mb->cfg = *cfg;
    memcpy(mb->node_key, overlay_node_key(cfg->overlay), 32);
    envelope_mailbox_id(identity_public_key(cfg->account), mb->own_mbid);
    enum mp_err err = load_totals(mb);
    if (err == MP_OK)
        err = parse_own(mb);
    uv_timer_t *timers[] = {&mb->durable, &mb->fetch, &mb->sweep, &mb->handoff, &mb->flush};
    for (size_t k = 0; err == MP_OK && k < sizeof(timers) / sizeof(timers[0]); k++) {
        if (uv_timer_init(cfg->loop, timers[k]) != 0) {
            err = MP_ERR_IO;
            break;
        }
        timers[k]->data = mb;
        mb->open_handles++;
    }
    if (err != MP_OK) {
        log_error(MOD, "cannot start mailboxes: %s", mp_strerror(err));
        mailbox_close(mb); /* closes the timers made so far, then frees */
        return err;
    }
    uv_timer_start(&mb->fetch, fetch_cb, 0, 0);
    uv_timer_start(&mb->sweep, sweep_cb, 1000, 0);
    uv_timer_start(&mb->handoff, handoff_cb, (uint64_t)cfg->limits.handoff_interval_s * 1000, 0);
    *mailbox_out = mb;
    return MP_OK;
}

json_t *mailbox_status(const struct mailbox *mb)
{
    json_t *fetch_from = json_array(), *own = json_array();
    char hex[65], text[ADDR_TEXT_MAX];
    for (size_t i = 0; i < MAILBOX_FETCH_MAX; i++) {
        if (mb->fetching[i].used) {
            secure_hex(hex, sizeof(hex), mb->fetching[i].key, 32);
            json_array_append_new(fetch_from, json_string(hex));
        }
    }
    for (size_t i = 0; i < mb->own_count; i++) {
        secure_hex(hex, sizeof(hex), mb->own[i].key, 32);
        addr_format(&mb->own[i].addr, text, sizeof(text));
        json_array_append_new(own, json_pack("{s:s, s:s}", "node_key", hex, "addr", text));
    }
    return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                     "s:o, s:o}",
                     "serving", mb->cfg.limits.serve, "held", (json_int_t)mb->held, "held_bytes",
                     (json_int_t)mb->held_bytes, "stored", (json_int_t)mb->stored,
                     "refused_full", (json_int_t)mb->refused_full, "refused_rate",
                     (json_int_t)mb->refused_rate, "refused_other",
                     (json_int_t)mb->refused_other, "refused_proof",
                     (json_int_t)mb->refused_proof, "handed_out", (json_int_t)mb->handed_out,
                     "taken", (json_int_t)mb->taken, "expired", (json_int_t)mb->expired,
                     "fetched", (json_int_t)mb->fetched, "fetches_done",
                     (json_int_t)mb->fetches_done, "handed_off",
                     (json_int_t)mb->handed_off, "fetching_from", fetch_from, "own_nodes", own);
}

static void handle_closed_cb(uv_handle_t *handle)
{
    struct mailbox *mb = handle->data;
    if (--mb->open_handles == 0)
        free(mb);
}

void mailbox_close(struct mailbox *mb)
{
    if (mb == NULL)
        return;
    mb->closing = true;
    if (mb->durable.data != NULL)
        durable_cb(&mb->durable); /* answer what is stored */
    if (mb->flush.data != NULL)
        flush_cb(&mb->flush);
    uv_timer_t *timers[] = {&mb->durable, &mb->fetch, &mb->sweep, &mb->handoff, &mb->flush};
    for (size_t k = 0; k < sizeof(timers) / sizeof(timers[0]); k++) {
        if (timers[k]->data != NULL)
            uv_close((uv_handle_t *)timers[k], handle_closed_cb);
    }
    if (mb->open_handles == 0)
        free(mb);
}
