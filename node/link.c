#include "node/link.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "crypto/noise.h"
#include "crypto/secure.h"

/* Sent in clear by the dialer before Noise message 1 (docs/PROTOCOL.md). */
#define LINK_PREAMBLE_BYTES   4u
#define LINK_PREAMBLE_VERSION 1u
#define LINK_PREAMBLE_IK      1u
#define LINK_PREAMBLE_IKPSK1  2u
#define LINK_PREAMBLE_XX      3u /* accepted on public networks only (never XXpsk3) */
/* One Noise message and its length prefix: all the read buffer ever holds
 * beyond what it can process. */
#define LINK_READ_MAX (2u + NOISE_MAX_MESSAGE)
/* Queued messages are coalesced into writes of up to this many bytes. */
#define LINK_WRITE_BATCH (64u * 1024u)
/* Bytes written to a link that the kernel has not taken yet, past which we
 * neither send messages nor grant credit: a peer that grants credit but
 * does not read, or sends but does not read our grants, cannot grow our
 * memory. Above one window plus one batch, so an honest link never hits it
 * for long. */
#define LINK_WRITE_QUEUE_MAX (LINK_WINDOW_BYTES + 2u * LINK_WRITE_BATCH)
/* Buckets of the peer table (indexed by the key's first byte). */
#define LINK_PEER_BUCKETS 256u

struct qmsg {
    struct qmsg *next;
    size_t len;
    uint8_t data[];
};

struct conn;

struct peer {
    uint8_t pk[LINK_KEY_BYTES];
    struct peer *next;   /* in the bucket */
    struct conn *active; /* the link messages go out on */
    struct conn *dialing; /* our outgoing handshake, if any */
    unsigned conns;      /* conns whose peer is this one, in any state */
    struct qmsg *head, *tail;
    size_t qmsgs, qbytes;
    bool up;             /* up was reported, down not yet */
    bool owed_down;      /* a dial or an up still owes a down */
    bool was_refused;    /* links_send said BUSY: owe a writable_cb */
    bool paused;
};

enum conn_state {
    CONN_HANDSHAKE, /* connecting or in the Noise handshake */
    CONN_OPEN,      /* carries messages both ways */
    CONN_RETIRING,  /* replaced: our side shut down, read until the peer's end */
    CONN_CLOSING,   /* bookkeeping done; handles closing (maybe after a flush) */
};

struct conn {
    uv_tcp_t tcp;     /* tcp.data = this */
    uv_timer_t timer; /* timer.data = this: handshake, idle, retire, flush deadlines */
    uv_connect_t connect;
    uv_shutdown_t shutdown;
    struct links *links;
    struct peer *peer; /* NULL for an incoming conn until the handshake names it */
    struct conn *prev, *next;
    enum conn_state state;
    bool outbound;
    bool preamble_seen;
    bool shutdown_started, shutdown_done;
    bool in_input;    /* process_input is on the stack */
    unsigned handles; /* open uv handles of this conn (tcp, timer) */
    unsigned writes_owed;
    struct noise_handshake *hs;
    struct noise_cipher *tx, *rx;
    struct link_flow flow;
    uint64_t last_ms; /* last frame in or out */
    size_t rlen;
    uint8_t rbuf[LINK_READ_MAX];
};

struct write_block {
    uv_write_t req; /* req.data = conn */
    size_t len;
    uint8_t data[];
};

struct backoff {
    uint8_t pk[LINK_KEY_BYTES];
    uint64_t until_ms;
    unsigned fails;
    bool used;
};

struct links {
    uv_loop_t *loop;
    const struct env *env;
    uint8_t secret[LINK_KEY_BYTES];
    uint8_t public_key[LINK_KEY_BYTES];
    uint8_t psk[NOISE_PSK_BYTES];
    bool has_psk;
    uint8_t prologue[NOISE_MERPATI_PROLOGUE_MAX];
    size_t prologue_len;
    struct links_config cfg; /* callbacks and timeouts; key pointers not kept */
    struct peer *peers[LINK_PEER_BUCKETS];
    struct conn *conns;
    unsigned handles; /* uv handles open over all conns */
    unsigned handshakes[2]; /* in progress: [0] incoming, [1] our dials */
    unsigned links_up;
    size_t queued_bytes; /* over all peers */
    bool global_busy;    /* a send was refused for the total cap */
    unsigned depth;      /* user callbacks on the stack */
    unsigned held;       /* links_hold nesting: sends queue without writing */
    bool closing;
    void (*closed_cb)(void *arg);
    void *closed_arg;
    struct links_stats stats;
    struct backoff backoff[LINK_BACKOFF_SLOTS];
    uint8_t scratch[NOISE_MAX_MESSAGE];
};

static void conn_close(struct conn *c, enum link_reason reason);
static void conn_close_graceful(struct conn *c, enum link_reason reason);
static void pump(struct peer *p);

/* ---- names ---- */

static const char *const reason_names[LINK_REASON_COUNT] = {
    "connect",  "timeout",  "eof",    "reset",  "preamble", "peer_key",
    "psk",      "prologue", "decrypt", "malformed", "oversize", "sequence",
    "credit",   "limit",    "idle",   "duplicate", "local",  "other",
};

const char *link_reason_name(enum link_reason reason)
{
    return (unsigned)reason < LINK_REASON_COUNT ? reason_names[reason] : "unknown";
}

const char *link_drop_name(enum link_drop drop)
{
    switch (drop) {
    case LINK_DROP_QUEUE_FULL:
        return "queue_full";
    case LINK_DROP_UNAVAILABLE:
        return "unavailable";
    case LINK_DROP_LINK_DOWN:
        return "link_down";
    default:
        return "unknown";
    }
}

static enum link_reason reason_of_noise(enum mp_err err)
{
    switch (err) {
    case MP_ERR_NOISE_PEER_KEY:
        return LINK_REASON_PEER_KEY;
    case MP_ERR_NOISE_PSK:
        return LINK_REASON_PSK;
    case MP_ERR_NOISE_PROLOGUE:
        return LINK_REASON_PROLOGUE;
    case MP_ERR_NOISE_DECRYPT:
        return LINK_REASON_DECRYPT;
    case MP_ERR_MALFORMED:
    case MP_ERR_TOO_BIG:
        return LINK_REASON_MALFORMED;
    default:
        return LINK_REASON_OTHER;
    }
}

static enum link_reason reason_of_violation(enum link_violation v)
{
    switch (v) {
    case LINK_VIOLATION_OVERSIZE:
        return LINK_REASON_OVERSIZE;
    case LINK_VIOLATION_SEQUENCE:
        return LINK_REASON_SEQUENCE;
    case LINK_VIOLATION_CREDIT:
        return LINK_REASON_CREDIT;
    default:
        return LINK_REASON_MALFORMED;
    }
}

/* ---- user callbacks (counted, so links_close inside one never frees under us) ---- */

static void notify_state(struct links *l, const uint8_t pk[LINK_KEY_BYTES], bool up)
{
    uint8_t copy[LINK_KEY_BYTES];
    if (l->closing || l->cfg.link_state_cb == NULL)
        return;
    memcpy(copy, pk, sizeof(copy));
    l->depth++;
    l->cfg.link_state_cb(l->cfg.arg, copy, up);
    l->depth--;
}

static void notify_message(struct links *l, const uint8_t pk[LINK_KEY_BYTES], const uint8_t *msg,
                           size_t len)
{
    uint8_t copy[LINK_KEY_BYTES];
    if (l->closing)
        return;
    memcpy(copy, pk, sizeof(copy));
    l->depth++;
    l->cfg.message_cb(l->cfg.arg, copy, msg, len);
    l->depth--;
}

static void notify_writable(struct links *l, const uint8_t pk[LINK_KEY_BYTES])
{
    uint8_t copy[LINK_KEY_BYTES];
    if (l->closing || l->cfg.writable_cb == NULL)
        return;
    memcpy(copy, pk, sizeof(copy));
    l->depth++;
    l->cfg.writable_cb(l->cfg.arg, copy);
    l->depth--;
}

/* ---- peers, queues, backoff ---- */

static struct peer *find_peer(const struct links *l, const uint8_t pk[LINK_KEY_BYTES])
{
    for (struct peer *p = l->peers[pk[0]]; p != NULL; p = p->next) {
        if (memcmp(p->pk, pk, LINK_KEY_BYTES) == 0)
            return p;
    }
    return NULL;
}

static struct peer *peer_new(struct links *l, const uint8_t pk[LINK_KEY_BYTES])
{
    struct peer *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    memcpy(p->pk, pk, LINK_KEY_BYTES);
    p->next = l->peers[pk[0]];
    l->peers[pk[0]] = p;
    return p;
}

static void drop_queue(struct links *l, struct peer *p)
{
    for (struct qmsg *q = p->head, *next; q != NULL; q = next) {
        next = q->next;
        l->stats.dropped[LINK_DROP_LINK_DOWN]++;
        secure_wipe(q->data, q->len);
        free(q);
    }
    l->queued_bytes -= p->qbytes;
    p->head = p->tail = NULL;
    p->qmsgs = 0;
    p->qbytes = 0;
}

/* The peer's link closed (not replaced) or its dial failed: the queue is
 * dropped and a down reported, if one is owed. A dial still in flight owes
 * its own. */
static void peer_down(struct links *l, struct peer *p)
{
    if (p->active != NULL || !p->owed_down)
        return;
    p->owed_down = p->dialing != NULL;
    p->up = false;
    drop_queue(l, p);
    notify_state(l, p->pk, false);
}

/* The last conn of p is gone: unlink it, report its down if one is owed,
 * free it. Unlinked first, so a send from the callback starts a new peer. */
static void peer_release(struct links *l, struct peer *p)
{
    for (struct peer **pp = &l->peers[p->pk[0]]; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    peer_down(l, p);
    drop_queue(l, p);
    free(p);
}

static struct backoff *find_backoff(struct links *l, const uint8_t pk[LINK_KEY_BYTES])
{
    for (size_t i = 0; i < LINK_BACKOFF_SLOTS; i++) {
        if (l->backoff[i].used && memcmp(l->backoff[i].pk, pk, LINK_KEY_BYTES) == 0)
            return &l->backoff[i];
    }
    return NULL;
}

static void backoff_fail(struct links *l, const uint8_t pk[LINK_KEY_BYTES])
{
    uint64_t now = uv_now(l->loop);
    struct backoff *b = find_backoff(l, pk);
    if (b == NULL) {
        /* A free slot, else the one that expires first. */
        b = &l->backoff[0];
        for (size_t i = 0; i < LINK_BACKOFF_SLOTS; i++) {
            if (!l->backoff[i].used) {
                b = &l->backoff[i];
                break;
            }
            if (l->backoff[i].until_ms < b->until_ms)
                b = &l->backoff[i];
        }
        memset(b, 0, sizeof(*b));
        b->used = true;
        memcpy(b->pk, pk, LINK_KEY_BYTES);
    }
    uint64_t delay = LINK_BACKOFF_MIN_MS;
    for (unsigned i = 0; i < b->fails && delay < LINK_BACKOFF_MAX_MS; i++)
        delay *= 2;
    if (delay > LINK_BACKOFF_MAX_MS)
        delay = LINK_BACKOFF_MAX_MS;
    b->fails++;
    b->until_ms = now + delay;
}

static void backoff_clear(struct links *l, const uint8_t pk[LINK_KEY_BYTES])
{
    struct backoff *b = find_backoff(l, pk);
    if (b != NULL)
        memset(b, 0, sizeof(*b));
}

uint64_t links_retry_ms(const struct links *links, const uint8_t peer_pk[LINK_KEY_BYTES])
{
    const struct backoff *b = find_backoff((struct links *)links, peer_pk);
    uint64_t now = uv_now(links->loop);
    return b == NULL || b->until_ms <= now ? 0 : b->until_ms - now;
}

/* ---- connections ---- */

static void set_state(struct conn *c, enum conn_state state)
{
    struct links *l = c->links;
    if (c->state == CONN_HANDSHAKE && state != CONN_HANDSHAKE)
        l->handshakes[c->outbound]--;
    c->state = state;
}

static void finish(struct links *l)
{
    void (*cb)(void *) = l->closed_cb;
    void *arg = l->closed_arg;
    for (size_t i = 0; i < LINK_PEER_BUCKETS; i++) {
        while (l->peers[i] != NULL)
            peer_release(l, l->peers[i]);
    }
    secure_wipe(l, sizeof(*l));
    free(l);
    if (cb != NULL)
        cb(arg);
}

static void conn_final(struct conn *c)
{
    struct links *l = c->links;
    struct peer *p = c->peer;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    noise_handshake_free(c->hs);
    noise_cipher_free(c->tx);
    noise_cipher_free(c->rx);
    link_flow_free(&c->flow);
    secure_wipe(c, sizeof(*c));
    free(c);
    if (p != NULL && --p->conns == 0)
        peer_release(l, p);
    if (l->closing && l->handles == 0 && l->depth == 0)
        finish(l);
}

static void handle_closed_cb(uv_handle_t *handle)
{
    struct conn *c = handle->data;
    c->links->handles--;
    if (--c->handles == 0)
        conn_final(c);
}

static void close_handles(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, handle_closed_cb);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, handle_closed_cb);
}

/* Bookkeeping of a conn that stops carrying anything: counters, the peer's
 * active link and dial, backoff, and the down report. */
static void conn_retract(struct conn *c, enum link_reason reason)
{
    struct links *l = c->links;
    struct peer *p = c->peer;

    if (c->state == CONN_HANDSHAKE) {
        l->stats.handshake_failed[reason]++;
        if (!c->outbound)
            l->stats.refused++;
    } else if (c->state == CONN_OPEN) {
        l->stats.closed[reason]++;
    }
    set_state(c, CONN_CLOSING);
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (p == NULL)
        return;
    bool was_link = false;
    if (p->active == c) {
        p->active = NULL;
        l->links_up--;
        was_link = true;
    }
    if (p->dialing == c) {
        p->dialing = NULL;
        if (reason != LINK_REASON_LOCAL)
            backoff_fail(l, p->pk);
        was_link = true;
    }
    if (was_link)
        peer_down(l, p);
}

/* Closes at once; writes still queued are cancelled. */
static void conn_close(struct conn *c, enum link_reason reason)
{
    if (c->state == CONN_CLOSING) {
        close_handles(c);
        return;
    }
    conn_retract(c, reason);
    close_handles(c);
}

static void flush_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    (void)status;
    c->shutdown_done = true;
    if (c->state == CONN_CLOSING)
        close_handles(c);
}

static void timer_cb(uv_timer_t *timer);

/* Closes after what we already wrote has gone out (bounded by the handshake
 * timeout): used when the peer ended its side, so our last messages and
 * credit still reach it. */
static void conn_close_graceful(struct conn *c, enum link_reason reason)
{
    if (c->state == CONN_CLOSING)
        return;
    conn_retract(c, reason);
    if (c->shutdown_done || c->writes_owed == 0) {
        close_handles(c);
        return;
    }
    if (!c->shutdown_started) {
        c->shutdown.data = c;
        if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, flush_shutdown_cb) != 0) {
            close_handles(c);
            return;
        }
        c->shutdown_started = true;
    }
    uv_timer_start(&c->timer, timer_cb, c->links->cfg.handshake_timeout_ms, 0);
}

static void send_frame(struct conn *c, const uint8_t *frame, size_t len);

/* True while the peer takes our bytes: libuv holds less than the cap that
 * the kernel has not accepted yet. */
static bool peer_draining(struct conn *c)
{
    return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < LINK_WRITE_QUEUE_MAX;
}

/* Sends the credit owed to the peer, unless it does not read what we send:
 * then it gets none, runs out, and must stop sending. */
static void grant_credit(struct conn *c)
{
    uint8_t grant[LINK_FRAME_CREDIT_BYTES];
    if (c->state == CONN_OPEN && peer_draining(c) && link_flow_grant(&c->flow, grant))
        send_frame(c, grant, sizeof(grant));
}

static void write_cb(uv_write_t *req, int status)
{
    struct write_block *w = (struct write_block *)req;
    struct conn *c = req->data;

    secure_wipe(w->data, w->len);
    free(w);
    c->writes_owed--;
    if (status < 0) {
        if (c->state != CONN_CLOSING)
            conn_close(c, LINK_REASON_RESET);
        return;
    }
    /* The queue drained a little: what waited for it may go now. */
    grant_credit(c);
    if (c->state == CONN_OPEN && c->peer->active == c)
        pump(c->peer);
}

/* Hands w (owned from here on) to libuv. False if the conn was closed. */
static bool send_block(struct conn *c, struct write_block *w)
{
    w->req.data = c;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
        secure_wipe(w->data, w->len);
        free(w);
        conn_close(c, LINK_REASON_RESET);
        return false;
    }
    c->writes_owed++;
    c->last_ms = uv_now(c->links->loop);
    return true;
}

/* One frame as its own Noise transport message (credit grants). */
static void send_frame(struct conn *c, const uint8_t *frame, size_t len)
{
    size_t clen = 0;
    struct write_block *w = malloc(sizeof(*w) + 2 + len + NOISE_TAG_BYTES);
    if (w == NULL) {
        conn_close(c, LINK_REASON_OTHER);
        return;
    }
    if (noise_cipher_encrypt(c->tx, frame, len, w->data + 2, len + NOISE_TAG_BYTES, &clen) !=
        MP_OK) {
        free(w);
        conn_close(c, LINK_REASON_OTHER);
        return;
    }
    w->data[0] = (uint8_t)(clen >> 8);
    w->data[1] = (uint8_t)clen;
    w->len = 2 + clen;
    send_block(c, w);
}

/* Encrypts a whole message as its frames at out (link_frame_wire_size(len)
 * bytes). False if the cipher refuses (nonces used up). */
static bool seal_message(struct conn *c, const uint8_t *msg, size_t len, uint8_t *out)
{
    size_t off = 0;
    do {
        uint8_t header[LINK_FRAME_DATA_HEADER];
        size_t chunk = 0;
        size_t hlen = link_frame_header(len, off, header, &chunk);
        uint8_t *plain = out + 2;
        size_t clen = 0;
        memcpy(plain, header, hlen);
        memcpy(plain + hlen, msg + off, chunk);
        if (noise_cipher_encrypt(c->tx, plain, hlen + chunk, plain,
                                 hlen + chunk + NOISE_TAG_BYTES, &clen) != MP_OK)
            return false;
        out[0] = (uint8_t)(clen >> 8);
        out[1] = (uint8_t)clen;
        out += 2 + clen;
        off += chunk;
    } while (off < len);
    return true;
}

static bool has_room(const struct peer *p)
{
    return p->qmsgs <= LINK_QUEUE_MSGS / 2 && p->qbytes <= LINK_QUEUE_BYTES / 2;
}

/* Tells callers whose sends were refused that there is room again: the
 * peer p whose queue just drained, and, once the total falls to half its
 * cap, every peer refused for the total. (Callbacks may add peers at bucket
 * heads; none is freed synchronously, so the walk stays valid.) */
static void check_writable(struct links *l, struct peer *p)
{
    if (l->global_busy && l->queued_bytes <= LINK_QUEUE_TOTAL_BYTES / 2) {
        l->global_busy = false;
        for (size_t i = 0; i < LINK_PEER_BUCKETS; i++) {
            for (struct peer *q = l->peers[i]; q != NULL && !l->closing; q = q->next) {
                if (q->was_refused && has_room(q)) {
                    q->was_refused = false;
                    notify_writable(l, q->pk);
                }
            }
        }
    }
    if (p->was_refused && has_room(p) && !l->global_busy) {
        p->was_refused = false;
        notify_writable(l, p->pk);
    }
}

/* Sends queued messages on the peer's link while credit lasts, several
 * to a write (up to LINK_WRITE_BATCH bytes, or one larger message). */
static void pump(struct peer *p)
{
    struct conn *c = p->active;
    if (c == NULL || c->state != CONN_OPEN)
        return;
    struct links *l = c->links;
    bool sent = false;
    while (p->head != NULL && c->state == CONN_OPEN && peer_draining(c) &&
           link_flow_can_send(&c->flow, p->head->len)) {
        /* Size the batch first: whole messages that credit allows. */
        struct link_flow credit = c->flow;
        size_t wire = 0;
        unsigned count = 0;
        for (struct qmsg *q = p->head; q != NULL && link_flow_can_send(&credit, q->len);
             q = q->next) {
            size_t size = link_frame_wire_size(q->len);
            if (count > 0 && wire + size > LINK_WRITE_BATCH)
                break;
            link_flow_sent(&credit, q->len);
            wire += size;
            count++;
        }
        struct write_block *w = malloc(sizeof(*w) + wire);
        if (w == NULL) {
            conn_close(c, LINK_REASON_OTHER);
            return;
        }
        w->len = wire;
        uint8_t *out = w->data;
        for (unsigned i = 0; i < count; i++) {
            struct qmsg *q = p->head;
            if (!seal_message(c, q->data, q->len, out)) {
                secure_wipe(w->data, wire);
                free(w);
                conn_close(c, LINK_REASON_OTHER);
                return;
            }
            out += link_frame_wire_size(q->len);
            p->head = q->next;
            if (p->head == NULL)
                p->tail = NULL;
            p->qmsgs--;
            p->qbytes -= q->len;
            l->queued_bytes -= q->len;
            link_flow_sent(&c->flow, q->len);
            l->stats.msgs_out++;
            l->stats.bytes_out += q->len;
            secure_wipe(q->data, q->len);
            free(q);
        }
        sent = true;
        if (!send_block(c, w))
            return;
    }
    if (sent)
        check_writable(l, p);
}

static void activate(struct conn *c)
{
    struct links *l = c->links;
    struct peer *p = c->peer;
    struct conn *old = p->active;

    set_state(c, CONN_OPEN);
    link_flow_init(&c->flow);
    c->last_ms = uv_now(l->loop);
    uv_timer_start(&c->timer, timer_cb, l->cfg.idle_timeout_ms, 0);
    p->active = c;
    if (old == NULL)
        l->links_up++;
    if (p->paused)
        uv_read_stop((uv_stream_t *)&c->tcp);
}

/* Stops sending on c and ends our side of the stream; its remaining input
 * is still read and delivered until the peer ends its side too. */
static void retire(struct conn *c)
{
    struct links *l = c->links;
    if (c->state == CONN_OPEN)
        l->stats.closed[LINK_REASON_DUPLICATE]++;
    set_state(c, CONN_RETIRING);
    if (c->peer->active == c) {
        c->peer->active = NULL;
        l->links_up--;
    }
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, flush_shutdown_cb) != 0) {
        conn_close(c, LINK_REASON_DUPLICATE);
        return;
    }
    c->shutdown_started = true;
    uv_timer_start(&c->timer, timer_cb, l->cfg.handshake_timeout_ms, 0);
}

static void timer_cb(uv_timer_t *timer)
{
    struct conn *c = timer->data;
    struct links *l = c->links;

    switch (c->state) {
    case CONN_HANDSHAKE:
        conn_close(c, LINK_REASON_TIMEOUT);
        break;
    case CONN_RETIRING:
        conn_close(c, LINK_REASON_TIMEOUT);
        break;
    case CONN_CLOSING:
        close_handles(c);
        break;
    case CONN_OPEN: {
        uint64_t idle = uv_now(l->loop) - c->last_ms;
        if (idle >= l->cfg.idle_timeout_ms)
            conn_close(c, LINK_REASON_IDLE);
        else
            uv_timer_start(&c->timer, timer_cb, l->cfg.idle_timeout_ms - idle, 0);
        break;
    }
    }
}

/* The handshake of c completed: it becomes the peer's link, replaces it, or
 * is retired, by the rule in link.h. */
static void handshake_done(struct conn *c)
{
    struct links *l = c->links;
    uint8_t pk[LINK_KEY_BYTES];

    if (noise_handshake_split(c->hs, &c->tx, &c->rx) != MP_OK ||
        noise_handshake_remote_static(c->hs, pk) != MP_OK) {
        conn_close(c, LINK_REASON_OTHER);
        return;
    }
    noise_handshake_free(c->hs);
    c->hs = NULL;
    if (c->peer == NULL) {
        struct peer *p = find_peer(l, pk);
        if (p == NULL && (p = peer_new(l, pk)) == NULL) {
            conn_close(c, LINK_REASON_OTHER);
            return;
        }
        c->peer = p;
        p->conns++;
    }
    struct peer *p = c->peer;
    if (p->dialing == c)
        p->dialing = NULL;
    /* Incoming links leave LINK_RESERVED_OUT places for our own dials, so
     * a crowd of peers with fresh keys cannot keep us from reaching out. */
    unsigned cap = c->outbound ? LINK_MAX_LINKS : LINK_MAX_LINKS - LINK_RESERVED_OUT;
    if (p->active == NULL && l->links_up >= cap) {
        conn_close(c, LINK_REASON_LIMIT);
        return;
    }
    backoff_clear(l, pk);

    struct conn *old = p->active;
    bool own_smaller = memcmp(l->public_key, pk, LINK_KEY_BYTES) < 0;
    bool preferred = c->outbound == own_smaller; /* dialed by the smaller key */
    if (old != NULL && old->outbound != c->outbound && !preferred) {
        set_state(c, CONN_OPEN);
        link_flow_init(&c->flow);
        retire(c);
        return;
    }
    activate(c);
    if (old != NULL)
        retire(old);
    if (!p->up) {
        p->up = true;
        p->owed_down = true;
        notify_state(l, p->pk, true);
    }
    pump(p);
}

/* Writes our next handshake message (empty payload), after the preamble
 * when it is the dialer's first. False if the conn was closed. */
static bool send_handshake(struct conn *c, bool preamble)
{
    struct links *l = c->links;
    size_t n = 0;
    size_t head = preamble ? LINK_PREAMBLE_BYTES : 0;

    enum mp_err err = noise_handshake_write(c->hs, NULL, 0, l->scratch, sizeof(l->scratch), &n);
    if (err != MP_OK) {
        conn_close(c, reason_of_noise(err));
        return false;
    }
    struct write_block *w = malloc(sizeof(*w) + head + 2 + n);
    if (w == NULL) {
        conn_close(c, LINK_REASON_OTHER);
        return false;
    }
    if (preamble) {
        w->data[0] = 'm';
        w->data[1] = 'p';
        w->data[2] = LINK_PREAMBLE_VERSION;
        w->data[3] = l->has_psk ? LINK_PREAMBLE_IKPSK1 : LINK_PREAMBLE_IK;
    }
    w->data[head] = (uint8_t)(n >> 8);
    w->data[head + 1] = (uint8_t)n;
    memcpy(w->data + head + 2, l->scratch, n);
    w->len = head + 2 + n;
    return send_block(c, w);
}

static void handshake_input(struct conn *c, const uint8_t *msg, size_t len)
{
    struct links *l = c->links;
    size_t plen = 0;

    enum mp_err err = noise_handshake_read(c->hs, msg, len, l->scratch, sizeof(l->scratch), &plen);
    if (err != MP_OK) {
        conn_close(c, reason_of_noise(err));
        return;
    }
    if (noise_handshake_next(c->hs) == NOISE_STEP_WRITE && !send_handshake(c, false))
        return; /* responder: message 2 */
    if (noise_handshake_next(c->hs) == NOISE_STEP_SPLIT)
        handshake_done(c);
}

static void transport_input(struct conn *c, uint8_t *msg, size_t len)
{
    struct links *l = c->links;
    size_t plen = 0;
    enum link_event event;
    const uint8_t *body = NULL;
    size_t body_len = 0;

    enum mp_err err = noise_cipher_decrypt(c->rx, msg, len, msg, len, &plen);
    if (err != MP_OK) {
        conn_close(c, err == MP_ERR_NOISE_DECRYPT ? LINK_REASON_DECRYPT : LINK_REASON_MALFORMED);
        return;
    }
    enum link_violation v = link_flow_input(&c->flow, msg, plen, &event, &body, &body_len);
    if (v != LINK_VIOLATION_NONE) {
        conn_close(c, reason_of_violation(v));
        return;
    }
    if (event == LINK_EVENT_MESSAGE) {
        l->stats.msgs_in++;
        l->stats.bytes_in += body_len;
        notify_message(l, c->peer->pk, body, body_len);
        link_flow_delivered(&c->flow, body_len);
        grant_credit(c);
    } else if (event == LINK_EVENT_CREDIT && c->peer->active == c) {
        pump(c->peer);
    }
}

static bool reading_paused(const struct conn *c)
{
    return c->peer != NULL && c->peer->paused && c->peer->active == c;
}

static enum mp_err start_handshake(struct conn *c, enum noise_pattern pattern);

/* The dialer's preamble names the pattern; the responder's handshake starts
 * with it. A private cluster takes only IKpsk1: XXpsk3 would show our key to
 * anyone who connects (docs/PROTOCOL.md, "PSK"). */
static bool take_preamble(struct conn *c, const uint8_t *p, enum link_reason *why_out)
{
    const struct links *l = c->links;
    enum noise_pattern pattern;

    *why_out = LINK_REASON_PREAMBLE;
    if (p[0] != 'm' || p[1] != 'p' || p[2] != LINK_PREAMBLE_VERSION)
        return false;
    if (l->has_psk && p[3] == LINK_PREAMBLE_IKPSK1)
        pattern = NOISE_PATTERN_IKPSK1;
    else if (!l->has_psk && p[3] == LINK_PREAMBLE_IK)
        pattern = NOISE_PATTERN_IK;
    else if (!l->has_psk && p[3] == LINK_PREAMBLE_XX)
        pattern = NOISE_PATTERN_XX;
    else
        return false;
    *why_out = LINK_REASON_OTHER;
    return start_handshake(c, pattern) == MP_OK;
}

/* Takes every complete Noise message in the read buffer. */
static void process_input(struct conn *c)
{
    size_t off = 0;

    if (c->in_input)
        return; /* a callback resumed reading: the loop on the stack continues */
    c->in_input = true;
    while (c->state != CONN_CLOSING && !reading_paused(c)) {
        size_t avail = c->rlen - off;
        if (c->state == CONN_HANDSHAKE && !c->outbound && !c->preamble_seen) {
            if (avail < LINK_PREAMBLE_BYTES)
                break;
            enum link_reason why;
            if (!take_preamble(c, c->rbuf + off, &why)) {
                conn_close(c, why);
                break;
            }
            c->preamble_seen = true;
            off += LINK_PREAMBLE_BYTES;
            continue;
        }
        if (avail < 2)
            break;
        size_t n = (size_t)c->rbuf[off] << 8 | c->rbuf[off + 1];
        if (avail - 2 < n)
            break;
        c->last_ms = uv_now(c->links->loop);
        if (c->state == CONN_HANDSHAKE)
            handshake_input(c, c->rbuf + off + 2, n);
        else
            transport_input(c, c->rbuf + off + 2, n);
        off += 2 + n;
    }
    c->in_input = false;
    if (c->state == CONN_CLOSING)
        return;
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    if (reading_paused(c))
        uv_read_stop((uv_stream_t *)&c->tcp);
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *out)
{
    struct conn *c = handle->data;
    (void)suggested;
    /* Never more than one Noise message beyond what was processed. */
    *out = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(LINK_READ_MAX - c->rlen));
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = stream->data;
    (void)b;

    if (nread == 0 || c->state == CONN_CLOSING)
        return;
    if (nread < 0) {
        if (nread == UV_EOF)
            conn_close_graceful(c, LINK_REASON_EOF);
        else
            conn_close(c, LINK_REASON_RESET);
        return;
    }
    c->rlen += (size_t)nread;
    process_input(c);
}

static struct conn *conn_new(struct links *l, bool outbound)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (uv_tcp_init(l->loop, &c->tcp) != 0) {
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    c->links = l;
    c->handles = 1;
    l->handles++;
    c->next = l->conns;
    if (l->conns != NULL)
        l->conns->prev = c;
    l->conns = c;
    c->outbound = outbound;
    c->state = CONN_HANDSHAKE;
    l->handshakes[outbound]++;
    link_flow_init(&c->flow);
    if (uv_timer_init(l->loop, &c->timer) != 0) {
        set_state(c, CONN_CLOSING);
        uv_close((uv_handle_t *)&c->tcp, handle_closed_cb);
        return NULL;
    }
    c->timer.data = c;
    c->handles++;
    l->handles++;
    uv_timer_start(&c->timer, timer_cb, l->cfg.handshake_timeout_ms, 0);
    return c;
}

static enum mp_err start_handshake(struct conn *c, enum noise_pattern pattern)
{
    struct links *l = c->links;
    struct noise_config nc = {
        .pattern = pattern,
        .initiator = c->outbound,
        .prologue = l->prologue,
        .prologue_len = l->prologue_len,
        .s = l->secret,
        .rs = c->outbound ? c->peer->pk : NULL,
        .psk = l->has_psk ? l->psk : NULL,
    };
    return noise_handshake_new(l->env, &nc, &c->hs);
}

enum mp_err links_accept(struct links *links, uv_stream_t *server)
{
    struct links *l = links;
    struct conn *c = conn_new(l, false);
    if (c == NULL) {
        l->stats.refused++;
        return MP_ERR_NOMEM;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, LINK_REASON_RESET);
        return MP_ERR_IO;
    }
    l->stats.accepted++;
    if (l->closing || l->handshakes[0] > LINK_MAX_HANDSHAKES) {
        conn_close(c, LINK_REASON_LIMIT);
        return MP_ERR_BUSY;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0) {
        conn_close(c, LINK_REASON_RESET);
        return MP_ERR_IO;
    }
    return MP_OK;
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct conn *c = req->data;

    if (status == UV_ECANCELED || c->state != CONN_HANDSHAKE)
        return;
    if (status < 0) {
        conn_close(c, LINK_REASON_CONNECT);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (!send_handshake(c, true))
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0)
        conn_close(c, LINK_REASON_RESET);
}

static bool to_sockaddr(const struct addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == ADDR_FAMILY_IPV4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(a->port);
        memcpy(&sin->sin_addr, a->ip, 4);
        return a->port != 0;
    }
    if (a->family == ADDR_FAMILY_IPV6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(a->port);
        memcpy(&sin6->sin6_addr, a->ip, 16);
        return a->port != 0;
    }
    return false;
}

/* Starts a dial to p at ss. On failure nothing is owed to the caller: no
 * down will be reported for it. */
static enum mp_err dial(struct links *l, struct peer *p, const struct sockaddr_storage *ss)
{
    struct conn *c = conn_new(l, true);
    if (c == NULL)
        return MP_ERR_NOMEM;
    c->peer = p;
    p->conns++;
    l->stats.dials++;
    if (start_handshake(c, l->has_psk ? NOISE_PATTERN_IKPSK1 : NOISE_PATTERN_IK) != MP_OK) {
        conn_close(c, LINK_REASON_OTHER);
        return MP_ERR_NOMEM;
    }
    c->connect.data = c;
    if (uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)ss, connect_cb) != 0) {
        conn_close(c, LINK_REASON_CONNECT);
        return MP_ERR_UNAVAILABLE;
    }
    p->dialing = c;
    p->owed_down = true;
    return MP_OK;
}

enum mp_err links_send(struct links *links, const uint8_t peer_pk[LINK_KEY_BYTES],
                       const struct addr *addr, const uint8_t *msg, size_t len)
{
    struct links *l = links;
    struct sockaddr_storage ss;

    if (len > LINK_MESSAGE_MAX)
        return MP_ERR_TOO_BIG;
    if (memcmp(peer_pk, l->public_key, LINK_KEY_BYTES) == 0)
        return MP_ERR_INVAL;
    struct peer *p = find_peer(l, peer_pk);
    bool need_dial = p == NULL || (p->active == NULL && p->dialing == NULL);
    if (l->closing || (need_dial && (links_retry_ms(l, peer_pk) > 0 ||
                                     l->handshakes[1] >= LINK_MAX_HANDSHAKES ||
                                     l->links_up >= LINK_MAX_LINKS))) {
        l->stats.dropped[LINK_DROP_UNAVAILABLE]++;
        return MP_ERR_UNAVAILABLE;
    }
    if (need_dial && (addr == NULL || !to_sockaddr(addr, &ss)))
        return MP_ERR_NET_ADDR;
    bool peer_full =
        p != NULL && (p->qmsgs >= LINK_QUEUE_MSGS || p->qbytes + len > LINK_QUEUE_BYTES);
    bool total_full = l->queued_bytes + len > LINK_QUEUE_TOTAL_BYTES;
    if (peer_full || total_full) {
        if (p != NULL)
            p->was_refused = true;
        if (total_full)
            l->global_busy = true;
        l->stats.dropped[LINK_DROP_QUEUE_FULL]++;
        return MP_ERR_BUSY;
    }
    struct qmsg *q = malloc(sizeof(*q) + len);
    if (q == NULL)
        return MP_ERR_NOMEM;
    q->next = NULL;
    q->len = len;
    if (len > 0)
        memcpy(q->data, msg, len);
    if (need_dial) {
        bool fresh = p == NULL;
        if (fresh && (p = peer_new(l, peer_pk)) == NULL) {
            free(q);
            return MP_ERR_NOMEM;
        }
        enum mp_err err = dial(l, p, &ss);
        if (err != MP_OK) {
            free(q);
            if (p->conns == 0)
                peer_release(l, p);
            return err;
        }
    }
    if (p->tail != NULL)
        p->tail->next = q;
    else
        p->head = q;
    p->tail = q;
    p->qmsgs++;
    p->qbytes += len;
    l->queued_bytes += len;
    if (l->held == 0)
        pump(p);
    return MP_OK;
}

void links_hold(struct links *l, bool hold)
{
    if (hold) {
        l->held++;
        return;
    }
    if (l->held == 0 || --l->held > 0)
        return;
    for (size_t i = 0; i < LINK_PEER_BUCKETS; i++) {
        for (struct peer *p = l->peers[i], *next; p != NULL; p = next) {
            next = p->next; /* (pump frees no peer: closing conns release them later) */
            if (p->head != NULL)
                pump(p);
        }
    }
}

bool links_is_up(const struct links *links, const uint8_t peer_pk[LINK_KEY_BYTES])
{
    const struct peer *p = find_peer(links, peer_pk);
    return p != NULL && p->active != NULL;
}

enum mp_err links_pause(struct links *links, const uint8_t peer_pk[LINK_KEY_BYTES], bool paused)
{
    struct peer *p = find_peer(links, peer_pk);
    if (p == NULL || p->active == NULL)
        return MP_ERR_NOT_FOUND;
    p->paused = paused;
    struct conn *c = p->active;
    if (paused) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        return MP_OK;
    }
    process_input(c); /* what was read before the pause */
    if (c->state != CONN_CLOSING && !reading_paused(c) &&
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0)
        conn_close(c, LINK_REASON_RESET);
    return MP_OK;
}

void links_stats(const struct links *links, struct links_stats *stats_out)
{
    *stats_out = links->stats;
    stats_out->links_up = links->links_up;
    stats_out->handshakes_pending = links->handshakes[0] + links->handshakes[1];
}

enum mp_err links_new(uv_loop_t *loop, const struct links_config *cfg, struct links **links_out)
{
    if (loop == NULL || cfg == NULL || cfg->env == NULL || cfg->static_secret == NULL ||
        cfg->static_public == NULL || cfg->message_cb == NULL)
        return MP_ERR_INVAL;
    struct links *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return MP_ERR_NOMEM;
    enum mp_err err = noise_prologue(cfg->version, cfg->network_id, cfg->network_id_len,
                                     l->prologue, &l->prologue_len);
    if (err != MP_OK) {
        free(l);
        return err;
    }
    l->loop = loop;
    l->env = cfg->env;
    l->cfg = *cfg;
    l->cfg.static_secret = NULL;
    l->cfg.static_public = NULL;
    l->cfg.network_id = NULL;
    l->cfg.psk = NULL;
    if (l->cfg.handshake_timeout_ms == 0)
        l->cfg.handshake_timeout_ms = LINK_HANDSHAKE_TIMEOUT_MS;
    if (l->cfg.idle_timeout_ms == 0)
        l->cfg.idle_timeout_ms = LINK_IDLE_TIMEOUT_MS;
    memcpy(l->secret, cfg->static_secret, LINK_KEY_BYTES);
    memcpy(l->public_key, cfg->static_public, LINK_KEY_BYTES);
    if (cfg->psk != NULL) {
        memcpy(l->psk, cfg->psk, NOISE_PSK_BYTES);
        l->has_psk = true;
    }
    *links_out = l;
    return MP_OK;
}

void links_close(struct links *links, void (*closed_cb)(void *arg), void *arg)
{
    if (links == NULL) {
        if (closed_cb != NULL)
            closed_cb(arg);
        return;
    }
    if (links->closing)
        return;
    links->closing = true;
    links->closed_cb = closed_cb;
    links->closed_arg = arg;
    for (struct conn *c = links->conns; c != NULL; c = c->next)
        conn_close(c, LINK_REASON_LOCAL);
    if (links->handles == 0 && links->depth == 0)
        finish(links);
}
