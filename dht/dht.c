#include "dht/dht.h"

#include <stdlib.h>
#include <string.h>

#include "dht/dht_wire.h"
#include "dht/keycache.h"
#include "dht/ratelimit.h"
#include "dht/shortlist.h"
#include "dht/storage.h"

/* Datagram: version(1) || sender pk(32) || nonce(24) || AEAD(body). The
 * header is the associated data. */
#define VERSION_BYTE 0x01
#define HEADER_BYTES (1 + DHT_PK_BYTES + BOX_NONCE_BYTES)
#define RATE_SLOTS 512

_Static_assert(HEADER_BYTES == 57, "header layout in docs/PROTOCOL.md");
_Static_assert(DHT_WIRE_BODY_MAX == DHT_DATAGRAM_MAX - HEADER_BYTES - BOX_TAG_BYTES, "body cap");
_Static_assert(DHT_WIRE_NODES_MAX == DHT_K, "one answer carries a bucket");
_Static_assert(SHORTLIST_TOKEN_BYTES == DHT_WIRE_TOKEN_BYTES, "token size");
_Static_assert(SHORTLIST_MAX >= 2 * DHT_K, "a lookup keeps more candidates than it returns");
_Static_assert((DHT_TX_MAX & (DHT_TX_MAX - 1)) == 0, "tx slots are indexed by tid bits");

enum lookup_kind { LOOKUP_FIND, LOOKUP_GET, LOOKUP_PUT };

struct lookup {
    uint32_t serial;
    uint8_t kind;
    struct shortlist sl; /* holds the target */
    unsigned inflight;
    struct dht_lookup_info info;
    uint64_t started_ms;
    uint64_t deadline_ms;
    bool put_phase;
    unsigned put_pending;
    unsigned put_stored;
    bool has_rec;
    struct record rec; /* GET: best found; PUT: what to store */
    dht_lookup_cb *find_cb;
    dht_get_cb *get_cb;
    dht_put_cb *put_cb;
    void *arg;
};

struct tx {
    bool active;
    uint8_t type;
    uint32_t tid;
    uint8_t pk[DHT_PK_BYTES];
    struct addr addr;
    uint64_t sent_ms;
    struct lookup *lookup; /* NULL for pings */
    uint32_t serial;       /* lookup->serial when sent */
};

struct published {
    const struct identity *owner;
    uint8_t kind;
    uint32_t ttl_s;
    uint64_t seq;
    uint64_t next_ms;
    uint16_t len;
    uint8_t payload[RECORD_PAYLOAD_MAX];
};

struct boot {
    uint8_t pk[DHT_PK_BYTES];
    struct addr addr;
};

struct dht {
    const struct env *env;
    const struct box_key *key;
    struct dht_config cfg;
    uint8_t network_key[BOX_NETWORK_KEY_BYTES];
    uint8_t id[DHT_ID_BYTES];
    struct routing *rt;
    struct keycache *kc;
    struct ratelimit *rl;
    struct storage *st;
    struct tx tx[DHT_TX_MAX];
    unsigned tx_used;
    struct lookup *lookups[DHT_LOOKUPS_MAX];
    uint32_t next_serial;
    struct published *pub[DHT_PUBLISHED_MAX];
    uint8_t token_secret[2][16]; /* [0] current, [1] previous */
    uint64_t token_rotate_ms;
    uint64_t sweep_ms;
    bool joined;          /* a self-lookup was started */
    uint64_t rejoin_ms;   /* when to look up our own id a second time; 0: done */
    struct boot boots[DHT_BOOTSTRAP_MAX]; /* retried while the table is empty */
    unsigned nboots;
    uint64_t boot_next_ms;
    uint64_t boot_backoff_ms;
    uint64_t refresh_at[ROUTING_BUCKETS]; /* 0: not scheduled yet */
    bool started;                         /* a lookup began since the last step of all */
    struct dht_stats stats;
};

static const char *const drop_names[] = {
#define DHT_DROP_NAME_(name, text) text,
    DHT_DROP_LIST(DHT_DROP_NAME_)
#undef DHT_DROP_NAME_
};

const char *dht_drop_name(enum dht_drop reason)
{
    if ((unsigned)reason >= DHT_DROP_COUNT)
        return "unknown";
    return drop_names[reason];
}

void dht_config_default(struct dht_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->per_ip_per_bucket = 2;
    cfg->rate_per_s = 50;
    cfg->rate_burst = 100;
    cfg->max_records = 4096;
    cfg->key_cache_slots = 256;
}

static uint64_t now(const struct dht *dht)
{
    return env_now_ms(dht->env);
}

uint64_t dht_network_time_s(const struct dht *dht)
{
    int64_t t = (int64_t)now(dht) + dht->cfg.wall_offset_ms;
    return t > 0 ? (uint64_t)t / 1000 : 0;
}

static void drop(struct dht *dht, enum dht_drop reason)
{
    dht->stats.drops[reason]++;
}

static bool addr_usable(const struct addr *a)
{
    return (a->family == ADDR_FAMILY_IPV4 || a->family == ADDR_FAMILY_IPV6) && a->port != 0;
}

static uint64_t random_below(struct dht *dht, uint64_t n)
{
    uint64_t r = 0;
    env_random(dht->env, &r, sizeof(r));
    return n ? r % n : 0;
}

enum mp_err dht_new(const struct env *env, const struct box_key *key,
                    const struct dht_config *cfg, struct dht **dht_out)
{
    uint8_t hkey[16];
    enum mp_err err;
    struct dht *dht = calloc(1, sizeof(*dht));
    if (dht == NULL)
        return MP_ERR_NOMEM;
    dht->env = env;
    dht->key = key;
    dht->cfg = *cfg;
    if (cfg->network_key != NULL)
        memcpy(dht->network_key, cfg->network_key, BOX_NETWORK_KEY_BYTES);
    else
        box_public_network_key(dht->network_key);
    dht->cfg.network_key = NULL; /* the copy above is the one used */
    if (dht->cfg.rate_burst == 0)
        dht->cfg.rate_burst = dht->cfg.rate_per_s;
    box_node_id(box_key_public(key), dht->id);
    env_random(env, hkey, sizeof(hkey));
    env_random(env, dht->token_secret, sizeof(dht->token_secret));
    dht->token_rotate_ms = now(dht) + DHT_TOKEN_ROTATE_MS;
    dht->sweep_ms = now(dht) + DHT_EXPIRE_SWEEP_MS;
    err = routing_new(dht->id, cfg->per_ip_per_bucket, &dht->rt);
    if (err == MP_OK)
        err = keycache_new(key, dht->network_key, cfg->key_cache_slots, &dht->kc);
    if (err == MP_OK)
        err = ratelimit_new(RATE_SLOTS, cfg->rate_per_s, dht->cfg.rate_burst, hkey, &dht->rl);
    if (err == MP_OK)
        err = storage_new(cfg->max_records, &dht->st);
    if (err != MP_OK) {
        dht_free(dht);
        return err;
    }
    *dht_out = dht;
    return MP_OK;
}

void dht_free(struct dht *dht)
{
    if (dht == NULL)
        return;
    for (unsigned i = 0; i < DHT_LOOKUPS_MAX; i++)
        free(dht->lookups[i]);
    for (unsigned i = 0; i < DHT_PUBLISHED_MAX; i++)
        free(dht->pub[i]);
    routing_free(dht->rt);
    keycache_free(dht->kc);
    ratelimit_free(dht->rl);
    storage_free(dht->st);
    box_wipe(dht, sizeof(*dht));
    free(dht);
}

const uint8_t *dht_id(const struct dht *dht)
{
    return dht->id;
}

/* ---- datagrams ---- */

static enum mp_err send_msg(struct dht *dht, const uint8_t pk[DHT_PK_BYTES],
                            const struct addr *to, const struct dht_msg *m)
{
    uint8_t body[DHT_WIRE_BODY_MAX];
    uint8_t dgram[DHT_DATAGRAM_MAX];
    size_t len = 0;
    const uint8_t *shared = NULL;

    enum mp_err err = dht_wire_encode(m, body, sizeof(body), &len);
    if (err != MP_OK)
        return err;
    uint64_t misses = keycache_misses(dht->kc);
    err = keycache_get(dht->kc, pk, &shared);
    dht->stats.x25519 += keycache_misses(dht->kc) - misses;
    if (err != MP_OK)
        return err;
    dgram[0] = VERSION_BYTE;
    memcpy(dgram + 1, box_key_public(dht->key), DHT_PK_BYTES);
    env_random(dht->env, dgram + 1 + DHT_PK_BYTES, BOX_NONCE_BYTES);
    box_seal(shared, dgram + 1 + DHT_PK_BYTES, dgram, HEADER_BYTES, body, len,
             dgram + HEADER_BYTES);
    box_wipe(body, len);
    err = env_send(dht->env, to, dgram, HEADER_BYTES + len + BOX_TAG_BYTES);
    if (err != MP_OK) {
        drop(dht, DHT_DROP_SEND);
        return err;
    }
    dht->stats.tx++;
    return MP_OK;
}

/* Send a request and remember it; fills m->tid. */
static enum mp_err send_request(struct dht *dht, const uint8_t pk[DHT_PK_BYTES],
                                const struct addr *to, struct dht_msg *m, struct lookup *l)
{
    if (dht->tx_used >= DHT_TX_MAX) {
        drop(dht, DHT_DROP_TX_FULL);
        return MP_ERR_DHT_BUSY;
    }
    uint32_t r = 0;
    env_random(dht->env, &r, sizeof(r));
    unsigned slot = r & (DHT_TX_MAX - 1);
    while (dht->tx[slot].active)
        slot = (slot + 1) & (DHT_TX_MAX - 1);
    m->tid = (r & ~(uint32_t)(DHT_TX_MAX - 1)) | slot;
    enum mp_err err = send_msg(dht, pk, to, m);
    if (err != MP_OK)
        return err;
    struct tx *t = &dht->tx[slot];
    t->active = true;
    t->type = m->type;
    t->tid = m->tid;
    memcpy(t->pk, pk, DHT_PK_BYTES);
    t->addr = *to;
    t->sent_ms = now(dht);
    t->lookup = l;
    t->serial = l ? l->serial : 0;
    dht->tx_used++;
    dht->stats.rpcs_out++;
    return MP_OK;
}

static bool ping_pending(const struct dht *dht, const uint8_t pk[DHT_PK_BYTES])
{
    for (unsigned i = 0; i < DHT_TX_MAX; i++) {
        const struct tx *t = &dht->tx[i];
        if (t->active && t->type == DHT_MSG_PING && memcmp(t->pk, pk, DHT_PK_BYTES) == 0)
            return true;
    }
    return false;
}

static enum mp_err send_ping(struct dht *dht, const uint8_t pk[DHT_PK_BYTES],
                             const struct addr *to)
{
    struct dht_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DHT_MSG_PING;
    return send_request(dht, pk, to, &m, NULL);
}

enum mp_err dht_bootstrap(struct dht *dht, const uint8_t pk[DHT_PK_BYTES],
                          const struct addr *addr)
{
    if (!addr_usable(addr) || memcmp(pk, box_key_public(dht->key), DHT_PK_BYTES) == 0)
        return MP_ERR_INVAL;
    /* Remembered (the first DHT_BOOTSTRAP_MAX) so a lost ping is retried
     * with backoff for as long as the table stays empty. */
    bool known = false;
    for (unsigned i = 0; i < dht->nboots; i++)
        known = known || (memcmp(dht->boots[i].pk, pk, DHT_PK_BYTES) == 0 &&
                          addr_equal(&dht->boots[i].addr, addr));
    if (!known && dht->nboots < DHT_BOOTSTRAP_MAX) {
        memcpy(dht->boots[dht->nboots].pk, pk, DHT_PK_BYTES);
        dht->boots[dht->nboots].addr = *addr;
        dht->nboots++;
    }
    if (dht->boot_backoff_ms == 0) {
        dht->boot_backoff_ms = DHT_BOOTSTRAP_RETRY_MS;
        dht->boot_next_ms = now(dht) + DHT_BOOTSTRAP_RETRY_MS;
    }
    return send_ping(dht, pk, addr);
}

/* ---- tokens ---- */

static void make_token(const struct dht *dht, unsigned which, const struct addr *from,
                       const uint8_t pk[DHT_PK_BYTES], uint8_t out[DHT_WIRE_TOKEN_BYTES])
{
    uint8_t a[19];
    a[0] = from->family;
    memcpy(a + 1, from->ip, 16);
    a[17] = (uint8_t)(from->port >> 8);
    a[18] = (uint8_t)from->port;
    box_hash(out, DHT_WIRE_TOKEN_BYTES, dht->token_secret[which], sizeof(dht->token_secret[0]),
             a, sizeof(a), pk, DHT_PK_BYTES, NULL, 0);
}

static bool token_valid(const struct dht *dht, const struct addr *from,
                        const uint8_t pk[DHT_PK_BYTES], const uint8_t token[DHT_WIRE_TOKEN_BYTES])
{
    uint8_t t[DHT_WIRE_TOKEN_BYTES];
    for (unsigned i = 0; i < 2; i++) {
        make_token(dht, i, from, pk, t);
        if (box_equal(t, token, sizeof(t)))
            return true;
    }
    return false;
}

/* ---- lookups ---- */

static void fill_closest(struct dht *dht, const uint8_t target[DHT_ID_BYTES], struct dht_msg *m)
{
    struct routing_entry e[DHT_K];
    size_t n = routing_closest(dht->rt, target, false, e, DHT_K);
    for (size_t i = 0; i < n; i++) {
        memcpy(m->nodes[i].pk, e[i].pk, DHT_PK_BYTES);
        m->nodes[i].addr = e[i].addr;
    }
    m->node_count = (uint8_t)n;
}

static void lookup_finish(struct dht *dht, struct lookup *l)
{
    for (unsigned i = 0; i < DHT_LOOKUPS_MAX; i++) {
        if (dht->lookups[i] == l)
            dht->lookups[i] = NULL;
    }
    l->info.duration_ms = now(dht) - l->started_ms;
    if (l->kind == LOOKUP_FIND && l->find_cb != NULL) {
        struct dht_peer out[DHT_K];
        size_t n = 0;
        for (unsigned i = 0; i < l->sl.n && n < DHT_K; i++) {
            const struct shortlist_entry *c = &l->sl.e[i];
            if (c->state != SHORTLIST_ANSWERED)
                continue;
            memset(&out[n], 0, sizeof(out[n]));
            memcpy(out[n].id, c->id, DHT_ID_BYTES);
            memcpy(out[n].pk, c->pk, DHT_PK_BYTES);
            out[n].addr = c->addr;
            const struct routing_entry *e = routing_get(dht->rt, c->id);
            if (e != NULL) {
                out[n].last_seen_ms = e->last_seen_ms;
                out[n].rtt_ms = e->rtt_ms;
            }
            n++;
        }
        l->find_cb(l->arg, n > 0 ? MP_OK : MP_ERR_TIMEOUT, out, n, &l->info);
    } else if (l->kind == LOOKUP_GET && l->get_cb != NULL) {
        l->get_cb(l->arg, l->has_rec ? MP_OK : MP_ERR_NOT_FOUND, l->has_rec ? &l->rec : NULL,
                  &l->info);
    } else if (l->kind == LOOKUP_PUT && l->put_cb != NULL) {
        l->put_cb(l->arg, l->put_stored > 0 ? MP_OK : MP_ERR_TIMEOUT, l->put_stored, &l->info);
    }
    free(l);
}

static void lookup_start_puts(struct dht *dht, struct lookup *l)
{
    unsigned answered = 0;
    l->put_phase = true;
    for (unsigned i = 0; i < l->sl.n && answered < DHT_K; i++) {
        struct shortlist_entry *c = &l->sl.e[i];
        if (c->state != SHORTLIST_ANSWERED)
            continue;
        answered++;
        if (!c->has_token)
            continue;
        struct dht_msg m;
        memset(&m, 0, sizeof(m));
        m.type = DHT_MSG_PUT;
        memcpy(m.token, c->token, DHT_WIRE_TOKEN_BYTES);
        m.has_record = true;
        m.record = l->rec;
        if (send_request(dht, c->pk, &c->addr, &m, l) == MP_OK) {
            l->put_pending++;
            l->info.rpcs++;
        }
    }
}

/* Send what may be sent; finish when the DHT_K nearest live candidates have
 * all answered (or nothing is left to ask). */
static void lookup_step(struct dht *dht, struct lookup *l)
{
    if (l->put_phase) {
        if (l->put_pending == 0 || now(dht) >= l->deadline_ms)
            lookup_finish(dht, l);
        return;
    }
    bool done;
    unsigned unusable;
    do {
        struct shortlist_entry *ask[DHT_ALPHA];
        unsigned n_ask = 0;
        unsigned room = l->inflight < DHT_ALPHA ? DHT_ALPHA - l->inflight : 0;
        done = shortlist_scan(&l->sl, DHT_K, ask, room, &n_ask);
        unusable = 0;
        for (unsigned i = 0; i < n_ask; i++) {
            struct shortlist_entry *c = ask[i];
            struct dht_msg m;
            memset(&m, 0, sizeof(m));
            m.type = l->kind == LOOKUP_FIND ? DHT_MSG_FIND_NODE : DHT_MSG_GET;
            memcpy(m.target, l->sl.target, DHT_ID_BYTES);
            enum mp_err err = send_request(dht, c->pk, &c->addr, &m, l);
            if (err == MP_OK) {
                c->state = SHORTLIST_ASKED;
                c->tries++;
                l->inflight++;
                l->info.rpcs++;
                if (c->depth > l->info.rounds)
                    l->info.rounds = c->depth;
            } else if (err != MP_ERR_DHT_BUSY) {
                c->state = SHORTLIST_FAILED; /* unusable key or address */
                unusable++;
            }
        }
    } while (unusable > 0 && !done); /* look again past the unusable ones */
    if (!done && now(dht) < l->deadline_ms)
        return;
    if (l->kind == LOOKUP_PUT) {
        lookup_start_puts(dht, l);
        if (l->put_pending > 0 && now(dht) < l->deadline_ms)
            return;
    }
    lookup_finish(dht, l);
}

static enum mp_err lookup_start(struct dht *dht, unsigned kind, const uint8_t target[DHT_ID_BYTES],
                                struct lookup **l_out)
{
    unsigned slot = DHT_LOOKUPS_MAX;
    for (unsigned i = 0; i < DHT_LOOKUPS_MAX && slot == DHT_LOOKUPS_MAX; i++) {
        if (dht->lookups[i] == NULL)
            slot = i;
    }
    if (slot == DHT_LOOKUPS_MAX)
        return MP_ERR_DHT_BUSY;
    struct routing_entry e[DHT_K];
    size_t n = routing_closest(dht->rt, target, false, e, DHT_K);
    if (n == 0)
        n = routing_closest(dht->rt, target, true, e, DHT_K);
    if (n == 0)
        return MP_ERR_DHT_NO_PEERS;
    struct lookup *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return MP_ERR_NOMEM;
    l->serial = ++dht->next_serial;
    l->kind = (uint8_t)kind;
    shortlist_init(&l->sl, target);
    l->started_ms = now(dht);
    l->deadline_ms = l->started_ms + DHT_LOOKUP_TIMEOUT_MS;
    for (size_t i = 0; i < n; i++)
        shortlist_add(&l->sl, e[i].id, e[i].pk, &e[i].addr, 1);
    dht->lookups[slot] = l;
    dht->started = true;
    /* A lookup into a bucket's range refreshes that bucket. The next refresh
     * is due after 0.5 to 1.5 times DHT_REFRESH_MS, so nodes that joined
     * together drift apart instead of refreshing in step. */
    unsigned b = routing_common_bits(dht->id, target);
    if (b < ROUTING_BUCKETS)
        dht->refresh_at[b] = now(dht) + DHT_REFRESH_MS / 2 + random_below(dht, DHT_REFRESH_MS);
    *l_out = l;
    return MP_OK;
}

enum mp_err dht_lookup(struct dht *dht, const uint8_t target[DHT_ID_BYTES], dht_lookup_cb *cb,
                       void *arg)
{
    struct lookup *l = NULL;
    enum mp_err err = lookup_start(dht, LOOKUP_FIND, target, &l);
    if (err != MP_OK)
        return err;
    l->find_cb = cb;
    l->arg = arg;
    return MP_OK; /* the first requests go out at the next dht_tick */
}

enum mp_err dht_get(struct dht *dht, unsigned kind, const uint8_t owner[RECORD_OWNER_BYTES],
                    dht_get_cb *cb, void *arg)
{
    uint8_t key[RECORD_KEY_BYTES];
    struct lookup *l = NULL;
    if (!record_kind_valid(kind))
        return MP_ERR_INVAL;
    record_key(kind, owner, key);
    enum mp_err err = lookup_start(dht, LOOKUP_GET, key, &l);
    if (err != MP_OK)
        return err;
    l->get_cb = cb;
    l->arg = arg;
    /* What we hold ourselves counts too. */
    const struct record *mine = storage_get(dht->st, key, dht_network_time_s(dht));
    if (mine != NULL) {
        l->rec = *mine;
        l->has_rec = true;
    }
    return MP_OK;
}

enum mp_err dht_put(struct dht *dht, const struct record *rec, dht_put_cb *cb, void *arg)
{
    uint8_t key[RECORD_KEY_BYTES];
    struct lookup *l = NULL;
    enum mp_err err = record_check(rec, dht_network_time_s(dht));
    if (err != MP_OK)
        return err;
    record_key(rec->kind, rec->owner, key);
    err = lookup_start(dht, LOOKUP_PUT, key, &l);
    if (err != MP_OK)
        return err;
    l->put_cb = cb;
    l->arg = arg;
    l->rec = *rec;
    l->has_rec = true;
    return MP_OK;
}

static enum mp_err publish_now(struct dht *dht, struct published *p, dht_put_cb *cb, void *arg)
{
    struct record rec;
    uint64_t net_ms = dht_network_time_s(dht) * 1000 + now(dht) % 1000;
    p->seq = net_ms > p->seq ? net_ms : p->seq + 1;
    enum mp_err err = record_make(p->owner, p->kind, p->seq, dht_network_time_s(dht) + p->ttl_s,
                                  p->payload, p->len, &rec);
    if (err == MP_OK) {
        /* We hold our own records too, so a lookup that reaches us finds them
         * even when every node that stored them restarted since (in a small
         * overlay that may be all of them). */
        uint8_t key[RECORD_KEY_BYTES];
        record_key(rec.kind, rec.owner, key);
        (void)storage_put(dht->st, key, &rec);
        err = dht_put(dht, &rec, cb, arg);
    }
    /* Republish at half the lifetime; retry sooner after a failed start. */
    p->next_ms = now(dht) + (err == MP_OK ? (uint64_t)p->ttl_s * 500 : 10000);
    return err;
}

enum mp_err dht_publish(struct dht *dht, const struct identity *owner, unsigned kind,
                        const uint8_t *payload, size_t len, uint32_t ttl_s, dht_put_cb *cb,
                        void *arg)
{
    if (!record_kind_valid(kind) || ttl_s < 60 || ttl_s > RECORD_TTL_MAX_S)
        return MP_ERR_INVAL;
    if (len > RECORD_PAYLOAD_MAX)
        return MP_ERR_TOO_BIG;
    struct published *p = NULL;
    int free_slot = -1;
    for (unsigned i = 0; i < DHT_PUBLISHED_MAX; i++) {
        struct published *q = dht->pub[i];
        if (q == NULL) {
            if (free_slot < 0)
                free_slot = (int)i;
        } else if (q->kind == kind &&
                   memcmp(identity_public_key(q->owner), identity_public_key(owner),
                          IDENTITY_PUBLIC_BYTES) == 0) {
            p = q;
        }
    }
    if (p == NULL) {
        if (free_slot < 0)
            return MP_ERR_DHT_BUSY;
        p = calloc(1, sizeof(*p));
        if (p == NULL)
            return MP_ERR_NOMEM;
        dht->pub[free_slot] = p;
    }
    p->owner = owner;
    p->kind = (uint8_t)kind;
    p->ttl_s = ttl_s;
    p->len = (uint16_t)len;
    if (len > 0)
        memcpy(p->payload, payload, len);
    return publish_now(dht, p, cb, arg);
}

void dht_unpublish(struct dht *dht, unsigned kind, const uint8_t owner[RECORD_OWNER_BYTES])
{
    for (unsigned i = 0; i < DHT_PUBLISHED_MAX; i++) {
        struct published *q = dht->pub[i];
        if (q != NULL && q->kind == kind &&
            memcmp(identity_public_key(q->owner), owner, RECORD_OWNER_BYTES) == 0) {
            free(q);
            dht->pub[i] = NULL;
        }
    }
}

/* ---- incoming ---- */

static void on_request(struct dht *dht, const uint8_t pk[DHT_PK_BYTES],
                       const uint8_t id[DHT_ID_BYTES], const struct addr *from,
                       const struct dht_msg *req)
{
    struct dht_msg m;
    memset(&m, 0, sizeof(m));
    m.tid = req->tid;
    /* A node we hold at another address may have moved (a restart on
     * another port). A request could be a replay from anywhere, so do not
     * move the entry on its word: ping the new address, and the answer, which
     * only the real node can give, updates the entry (routing_seen). */
    const struct routing_entry *known = routing_get(dht->rt, id);
    if (known != NULL && !addr_equal(&known->addr, from) && addr_usable(from) &&
        !ping_pending(dht, pk))
        send_ping(dht, pk, from);
    switch (req->type) {
    case DHT_MSG_PING:
        m.type = DHT_MSG_PONG;
        m.observed = *from;
        break;
    case DHT_MSG_FIND_NODE:
        m.type = DHT_MSG_NODES;
        fill_closest(dht, req->target, &m);
        break;
    case DHT_MSG_GET: {
        m.type = DHT_MSG_GOT;
        make_token(dht, 0, from, pk, m.token);
        const struct record *r = storage_get(dht->st, req->target, dht_network_time_s(dht));
        if (r != NULL) {
            m.has_record = true;
            m.record = *r;
        } else {
            fill_closest(dht, req->target, &m);
        }
        break;
    }
    case DHT_MSG_PUT: {
        uint8_t key[RECORD_KEY_BYTES];
        m.type = DHT_MSG_PUT_ACK;
        if (!token_valid(dht, from, pk, req->token)) {
            drop(dht, DHT_DROP_BAD_TOKEN);
            m.status = DHT_PUT_BAD_TOKEN;
        } else if (record_check(&req->record, dht_network_time_s(dht)) != MP_OK) {
            drop(dht, DHT_DROP_BAD_RECORD);
            m.status = DHT_PUT_BAD_RECORD;
        } else {
            record_key(req->record.kind, req->record.owner, key);
            enum storage_result r = storage_put(dht->st, key, &req->record);
            m.status = r == STORAGE_STORED ? DHT_PUT_STORED
                       : r == STORAGE_STALE ? DHT_PUT_STALE
                                            : DHT_PUT_FULL;
            if (r == STORAGE_FULL)
                drop(dht, DHT_DROP_STORE_FULL);
        }
        break;
    }
    default:
        return;
    }
    dht->stats.requests_in++;
    send_msg(dht, pk, from, &m);
    /* A stranger that asks us something may belong in our table: it gets in
     * only by answering a ping of ours at the address it came from. */
    if (routing_get(dht->rt, id) == NULL && routing_wants(dht->rt, id) &&
        dht->tx_used < DHT_TX_MAX / 2 && !ping_pending(dht, pk))
        send_ping(dht, pk, from);
}

static void start_self_lookup(struct dht *dht)
{
    struct lookup *l = NULL;
    dht->joined = true;
    dht->rejoin_ms = now(dht) + DHT_REJOIN_MS;
    /* Joining is this lookup of our own id, which fills the near buckets and
     * makes us known to our neighbours. Farther buckets fill from the nodes
     * that contact us and from their first refresh, spread over the first
     * DHT_REFRESH_MS (Kademlia's refresh of all buckets right at joining
     * quadruples the cost of a join and is not needed to be found). The
     * lookup is repeated once DHT_REJOIN_MS later: a node that joined with
     * a crowd, when the overlay was small, thus meets the neighbours that
     * arrived after it. */
    lookup_start(dht, LOOKUP_FIND, dht->id, &l); /* runs from the next dht_tick */
}

static struct lookup *tx_lookup(struct dht *dht, const struct tx *t)
{
    if (t->lookup == NULL)
        return NULL;
    for (unsigned i = 0; i < DHT_LOOKUPS_MAX; i++) {
        if (dht->lookups[i] == t->lookup && t->lookup->serial == t->serial)
            return t->lookup;
    }
    return NULL;
}

static void on_answer(struct dht *dht, struct lookup *l, const uint8_t id[DHT_ID_BYTES],
                      const struct dht_msg *m)
{
    if (m->type == DHT_MSG_PUT_ACK) {
        if (l->put_pending > 0)
            l->put_pending--;
        if (m->status == DHT_PUT_STORED || m->status == DHT_PUT_STALE)
            l->put_stored++;
        lookup_step(dht, l);
        return;
    }
    if (l->inflight > 0)
        l->inflight--;
    struct shortlist_entry *c = shortlist_find(&l->sl, id);
    unsigned depth = 1;
    if (c != NULL) {
        c->state = SHORTLIST_ANSWERED;
        depth = c->depth;
        if (m->type == DHT_MSG_GOT) {
            c->has_token = true;
            memcpy(c->token, m->token, DHT_WIRE_TOKEN_BYTES);
        }
    }
    if (m->has_record && l->kind != LOOKUP_FIND) {
        uint8_t key[RECORD_KEY_BYTES];
        record_key(m->record.kind, m->record.owner, key);
        if (memcmp(key, l->sl.target, RECORD_KEY_BYTES) != 0 ||
            record_check(&m->record, dht_network_time_s(dht)) != MP_OK) {
            drop(dht, DHT_DROP_BAD_RECORD);
        } else if (l->kind == LOOKUP_GET && (!l->has_rec || m->record.seq > l->rec.seq)) {
            l->rec = m->record;
            l->has_rec = true;
        }
    }
    for (unsigned i = 0; i < m->node_count; i++) {
        uint8_t nid[DHT_ID_BYTES];
        if (!addr_usable(&m->nodes[i].addr))
            continue;
        box_node_id(m->nodes[i].pk, nid);
        if (memcmp(nid, dht->id, DHT_ID_BYTES) == 0)
            continue;
        shortlist_add(&l->sl, nid, m->nodes[i].pk, &m->nodes[i].addr, depth + 1);
    }
    lookup_step(dht, l);
}

static void on_response(struct dht *dht, const uint8_t pk[DHT_PK_BYTES],
                        const uint8_t id[DHT_ID_BYTES], const struct addr *from,
                        const struct dht_msg *m)
{
    struct tx *slot = &dht->tx[m->tid & (DHT_TX_MAX - 1)];
    if (!slot->active || slot->tid != m->tid) {
        drop(dht, DHT_DROP_UNKNOWN_TX);
        return;
    }
    if (memcmp(slot->pk, pk, DHT_PK_BYTES) != 0 || (slot->type | 0x80) != m->type) {
        drop(dht, DHT_DROP_WRONG_PEER);
        return;
    }
    struct tx t = *slot;
    slot->active = false;
    dht->tx_used--;
    uint64_t rtt = now(dht) - t.sent_ms;
    enum routing_result r = routing_seen(dht->rt, id, pk, from, now(dht),
                                         rtt > UINT32_MAX ? UINT32_MAX : (uint32_t)rtt);
    if (r == ROUTING_REFUSED_IP)
        drop(dht, DHT_DROP_IP_LIMIT);
    struct lookup *l = tx_lookup(dht, &t);
    if (l != NULL) {
        on_answer(dht, l, id, m);
    } else if (m->type == DHT_MSG_NODES) {
        /* A bucket refresh: the strangers named that a bucket would take
         * get a ping (they enter when they answer). */
        for (unsigned i = 0; i < m->node_count; i++) {
            uint8_t nid[DHT_ID_BYTES];
            const struct dht_wire_node *nd = &m->nodes[i];
            if (!addr_usable(&nd->addr) || dht->tx_used >= DHT_TX_MAX / 2)
                continue;
            box_node_id(nd->pk, nid);
            if (routing_get(dht->rt, nid) == NULL && routing_wants(dht->rt, nid) &&
                !ping_pending(dht, nd->pk))
                send_ping(dht, nd->pk, &nd->addr);
        }
    }
    if (!dht->joined && routing_count(dht->rt) > 0)
        start_self_lookup(dht);
}

void dht_on_datagram(struct dht *dht, const struct addr *from, const uint8_t *data, size_t len)
{
    uint8_t body[DHT_WIRE_BODY_MAX];
    uint8_t id[DHT_ID_BYTES];
    struct dht_msg m;
    const uint8_t *shared = NULL;

    dht->stats.rx++;
    if (len < HEADER_BYTES + BOX_TAG_BYTES + 1) {
        drop(dht, DHT_DROP_SHORT);
        return;
    }
    if (len > DHT_DATAGRAM_MAX) {
        drop(dht, DHT_DROP_TOO_BIG);
        return;
    }
    if (data[0] != VERSION_BYTE) {
        drop(dht, DHT_DROP_VERSION);
        return;
    }
    if (!ratelimit_allow(dht->rl, from, now(dht))) {
        drop(dht, DHT_DROP_RATE);
        return;
    }
    const uint8_t *pk = data + 1;
    if (memcmp(pk, box_key_public(dht->key), DHT_PK_BYTES) == 0) {
        drop(dht, DHT_DROP_SELF);
        return;
    }
    uint64_t misses = keycache_misses(dht->kc);
    enum mp_err err = keycache_get(dht->kc, pk, &shared);
    dht->stats.x25519 += keycache_misses(dht->kc) - misses;
    if (err != MP_OK) {
        drop(dht, DHT_DROP_BAD_KEY);
        return;
    }
    size_t body_len = len - HEADER_BYTES - BOX_TAG_BYTES;
    if (box_open(shared, data + 1 + DHT_PK_BYTES, data, HEADER_BYTES, data + HEADER_BYTES,
                 len - HEADER_BYTES, body) != MP_OK) {
        drop(dht, DHT_DROP_AUTH);
        return;
    }
    err = dht_wire_decode(body, body_len, &m);
    box_wipe(body, body_len);
    if (err != MP_OK) {
        drop(dht, DHT_DROP_MALFORMED);
        return;
    }
    box_node_id(pk, id);
    if (dht_wire_is_request(m.type))
        on_request(dht, pk, id, from, &m);
    else
        on_response(dht, pk, id, from, &m);
}

/* ---- time ---- */

static void expire_requests(struct dht *dht, uint64_t t)
{
    for (unsigned i = 0; i < DHT_TX_MAX; i++) {
        struct tx *slot = &dht->tx[i];
        if (!slot->active || t < slot->sent_ms + DHT_RPC_TIMEOUT_MS)
            continue;
        struct tx x = *slot;
        uint8_t id[DHT_ID_BYTES];
        slot->active = false;
        dht->tx_used--;
        dht->stats.timeouts++;
        box_node_id(x.pk, id);
        routing_failed(dht->rt, id);
        struct lookup *l = tx_lookup(dht, &x);
        if (l == NULL)
            continue;
        l->info.timeouts++;
        if (x.type == DHT_MSG_PUT) {
            if (l->put_pending > 0)
                l->put_pending--;
        } else {
            if (l->inflight > 0)
                l->inflight--;
            /* Retries: a lost datagram should not cost a lookup its target,
             * which is the nearest candidate once it is known. */
            struct shortlist_entry *c = shortlist_find(&l->sl, id);
            if (c != NULL && c->state == SHORTLIST_ASKED) {
                unsigned limit = shortlist_rank(&l->sl, c) < DHT_ALPHA ? DHT_RPC_TRIES_NEAR
                                                                       : DHT_RPC_TRIES;
                c->state = c->tries < limit ? SHORTLIST_NEW : SHORTLIST_FAILED;
            }
        }
        lookup_step(dht, l);
    }
}

static void random_in_bucket(struct dht *dht, int b, uint8_t target[DHT_ID_BYTES])
{
    env_random(dht->env, target, DHT_ID_BYTES);
    /* Same first b bits as ours, bit b flipped, the rest random. */
    for (int i = 0; i <= b; i++) {
        uint8_t mask = (uint8_t)(0x80 >> (i % 8));
        uint8_t bit = dht->id[i / 8] & mask;
        if (i == b)
            bit ^= mask;
        target[i / 8] = (uint8_t)((target[i / 8] & ~mask) | bit);
    }
}

/*
 * Refresh bucket b: ask one of its good nodes (at random) for the nodes
 * nearest a random id in the bucket's range, and ping the strangers it names
 * that the bucket would take (the way jech/dht keeps buckets: one request,
 * not a whole lookup). An empty bucket (or one with only bad nodes) asks the
 * node nearest its range instead. Bad nodes get pinged, so a split network
 * heals.
 */
static void refresh_bucket(struct dht *dht, int b, uint64_t t)
{
    uint8_t target[DHT_ID_BYTES];
    struct routing_entry e[DHT_K];
    random_in_bucket(dht, b, target);
    dht->refresh_at[b] = t + DHT_REFRESH_MS / 2 + random_below(dht, DHT_REFRESH_MS);
    size_t n = routing_bucket(dht->rt, (unsigned)b, false, e, DHT_K);
    const struct routing_entry *to = n > 0 ? &e[random_below(dht, n)] : NULL;
    if (to == NULL && routing_closest(dht->rt, target, false, e, 1) == 1)
        to = &e[0]; /* an empty bucket: ask the node nearest its range */
    if (to != NULL) {
        struct dht_msg m;
        memset(&m, 0, sizeof(m));
        m.type = DHT_MSG_FIND_NODE;
        memcpy(m.target, target, DHT_ID_BYTES);
        send_request(dht, to->pk, &to->addr, &m, NULL);
    }
    n = routing_bucket(dht->rt, (unsigned)b, true, e, DHT_K);
    for (size_t i = 0; i < n; i++) {
        if (!ping_pending(dht, e[i].pk))
            send_ping(dht, e[i].pk, &e[i].addr);
    }
}

static void refresh_buckets(struct dht *dht, uint64_t t)
{
    int deepest = routing_deepest(dht->rt);
    for (int b = 0; b <= deepest; b++) {
        if (dht->refresh_at[b] == 0) {
            /* Spread first refreshes over an interval so nodes that joined
             * together do not refresh together. */
            dht->refresh_at[b] = t + 1 + random_below(dht, DHT_REFRESH_MS);
        } else if (dht->refresh_at[b] <= t) {
            refresh_bucket(dht, b, t);
        }
    }
}

uint64_t dht_tick(struct dht *dht)
{
    uint64_t t = now(dht);

    expire_requests(dht, t);
    if (t >= dht->token_rotate_ms) {
        memcpy(dht->token_secret[1], dht->token_secret[0], sizeof(dht->token_secret[0]));
        env_random(dht->env, dht->token_secret[0], sizeof(dht->token_secret[0]));
        dht->token_rotate_ms = t + DHT_TOKEN_ROTATE_MS;
    }
    if (t >= dht->sweep_ms) {
        storage_expire(dht->st, dht_network_time_s(dht));
        dht->sweep_ms = t + DHT_EXPIRE_SWEEP_MS;
    }
    for (unsigned i = 0; i < DHT_PUBLISHED_MAX; i++) {
        if (dht->pub[i] != NULL && t >= dht->pub[i]->next_ms)
            publish_now(dht, dht->pub[i], NULL, NULL);
    }
    if (dht->joined)
        refresh_buckets(dht, t);
    if (dht->rejoin_ms != 0 && t >= dht->rejoin_ms) {
        /* Second step of joining: our own id again, and every bucket up to
         * the deepest that is still empty (far buckets that no contact has
         * filled: without one, lookups into that part of the id space stall). */
        struct lookup *l = NULL;
        dht->rejoin_ms = 0;
        lookup_start(dht, LOOKUP_FIND, dht->id, &l);
        int deepest = routing_deepest(dht->rt);
        for (int b = 0; b < deepest; b++) {
            if (routing_bucket_size(dht->rt, (unsigned)b) < DHT_JOIN_FILL)
                dht->refresh_at[b] = t;
        }
        refresh_buckets(dht, t);
    }
    if (routing_count(dht->rt) > 0) {
        dht->boot_backoff_ms = dht->nboots > 0 ? DHT_BOOTSTRAP_RETRY_MS : 0;
        dht->boot_next_ms = t + dht->boot_backoff_ms;
    } else if (dht->nboots > 0 && t >= dht->boot_next_ms) {
        for (unsigned i = 0; i < dht->nboots; i++) {
            if (!ping_pending(dht, dht->boots[i].pk))
                send_ping(dht, dht->boots[i].pk, &dht->boots[i].addr);
        }
        dht->boot_backoff_ms = dht->boot_backoff_ms * 2 > DHT_TICK_MAX_MS
                                   ? DHT_TICK_MAX_MS
                                   : dht->boot_backoff_ms * 2;
        dht->boot_next_ms = t + dht->boot_backoff_ms;
    }
    /* Last, so operations started above (and since the last tick) send now. */
    dht->started = false;
    for (unsigned i = 0; i < DHT_LOOKUPS_MAX; i++) {
        if (dht->lookups[i] != NULL)
            lookup_step(dht, dht->lookups[i]);
    }
    /* A callback above may have started a lookup in a slot already passed. */
    if (dht->started)
        return 1;

    uint64_t next = t + DHT_TICK_MAX_MS;
#define EARLIER(x)                                                                                 \
    do {                                                                                           \
        if ((x) < next)                                                                            \
            next = (x);                                                                            \
    } while (0)
    EARLIER(dht->token_rotate_ms);
    EARLIER(dht->sweep_ms);
    if (dht->rejoin_ms != 0)
        EARLIER(dht->rejoin_ms);
    if (routing_count(dht->rt) == 0 && dht->nboots > 0)
        EARLIER(dht->boot_next_ms);
    for (unsigned i = 0; i < DHT_TX_MAX; i++) {
        if (dht->tx[i].active)
            EARLIER(dht->tx[i].sent_ms + DHT_RPC_TIMEOUT_MS);
    }
    for (unsigned i = 0; i < DHT_LOOKUPS_MAX; i++) {
        if (dht->lookups[i] != NULL)
            EARLIER(dht->lookups[i]->deadline_ms);
    }
    for (unsigned i = 0; i < DHT_PUBLISHED_MAX; i++) {
        if (dht->pub[i] != NULL)
            EARLIER(dht->pub[i]->next_ms);
    }
    if (dht->joined) {
        int deepest = routing_deepest(dht->rt);
        for (int b = 0; b <= deepest; b++)
            EARLIER(dht->refresh_at[b] == 0 ? t : dht->refresh_at[b]);
    }
#undef EARLIER
    return next > t ? next - t : 1;
}

/* ---- inspection ---- */

size_t dht_peers(const struct dht *dht, struct dht_peer *out, size_t max)
{
    struct routing_entry e;
    size_t n = 0;
    size_t total = routing_count(dht->rt);
    struct routing_entry *all = calloc(total ? total : 1, sizeof(*all));
    if (all == NULL)
        return 0;
    size_t got = routing_export(dht->rt, all, total);
    for (size_t i = 0; i < got && n < max; i++) {
        e = all[i];
        memset(&out[n], 0, sizeof(out[n]));
        memcpy(out[n].id, e.id, DHT_ID_BYTES);
        memcpy(out[n].pk, e.pk, DHT_PK_BYTES);
        out[n].addr = e.addr;
        out[n].last_seen_ms = e.last_seen_ms;
        out[n].rtt_ms = e.rtt_ms;
        out[n].fails = e.fails;
        n++;
    }
    free(all);
    return n;
}

void dht_get_stats(const struct dht *dht, struct dht_stats *out)
{
    *out = dht->stats;
    out->table_size = routing_count(dht->rt);
    out->records = storage_count(dht->st);
    out->lookups = 0;
    for (unsigned i = 0; i < DHT_LOOKUPS_MAX; i++)
        out->lookups += dht->lookups[i] != NULL;
}

size_t dht_memory(const struct dht *dht)
{
    size_t m = sizeof(*dht) + routing_memory(dht->rt) + keycache_memory(dht->kc) +
               ratelimit_memory(dht->rl) + storage_memory(dht->st);
    for (unsigned i = 0; i < DHT_LOOKUPS_MAX; i++)
        m += dht->lookups[i] ? sizeof(struct lookup) : 0;
    for (unsigned i = 0; i < DHT_PUBLISHED_MAX; i++)
        m += dht->pub[i] ? sizeof(struct published) : 0;
    return m;
}
