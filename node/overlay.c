#include "node/overlay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "crypto/address.h"
#include "crypto/box.h"
#include "crypto/cluster.h"
#include "crypto/secure.h"
#include "dht/dht.h"

#define MOD "overlay"

/* Default lifetime of a record put through dht.put. */
#define OVERLAY_PUT_TTL_S 3600
/* dht.put / dht.get waiting for the DHT at once. */
#define OVERLAY_OPS_MAX 32

struct overlay_op {
    struct overlay *ov;
    struct control_call *call; /* NULL once answered */
    bool in_use;
};

struct send_block {
    uv_udp_send_t req; /* req.data = overlay */
    size_t len;
    uint8_t data[];
};

/* A get for another node module, waiting for the DHT. */
struct overlay_get_op {
    struct overlay *ov;
    void (*cb)(void *arg, enum mp_err status, const uint8_t *payload, size_t len);
    overlay_lookup_cb *lookup_cb; /* a lookup instead of a get */
    void *arg;
    bool in_use;
};

struct overlay {
    bool closing; /* overlay_close began: no new operation */
    uv_loop_t *loop;
    uv_udp_t *udp;
    uv_timer_t timer; /* timer.data = this; the one wake-up of the DHT */
    struct env env;
    struct box_key *box;
    struct dht *dht;
    struct store *store;
    const struct identity *account;
    uint64_t last_save_ms;
    size_t saved_size; /* table size at the last save */
    unsigned sends_queued;
    uint64_t send_drops;
    char bootstrap[CONFIG_BOOTSTRAP_TEXT_MAX]; /* our own entry, for status */
    char name[OVERLAY_NAME_MAX];
    char fingerprint[CLUSTER_FINGERPRINT_SIZE];
    uint8_t prefix[OVERLAY_PREFIX_MAX]; /* of saved peers' store keys */
    size_t prefix_len;
    uint64_t join_ms;   /* when the bootstrap nodes were last pinged */
    unsigned join_tried; /* saved peers and bootstrap entries pinged then */
    bool warned;        /* the empty-table warning was logged */
    bool no_save;       /* overlay_stop_saving was called */
    struct overlay_op ops[OVERLAY_OPS_MAX];
    struct overlay_get_op gets[OVERLAY_OPS_MAX];
    struct addr bound;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

/* ---- env ---- */

static uint64_t now_ms(void *ctx)
{
    (void)ctx;
    return uv_hrtime() / 1000000u;
}

static void random_fill(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    secure_random(buf, len);
}

static void to_sockaddr(const struct addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == ADDR_FAMILY_IPV6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        memcpy(&s6->sin6_addr, a->ip, 16);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        memcpy(&s4->sin_addr, a->ip, 4);
    }
}

static bool from_sockaddr(const struct sockaddr *sa, struct addr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        out->family = ADDR_FAMILY_IPV4;
        out->port = ntohs(s4->sin_port);
        memcpy(out->ip, &s4->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        out->family = ADDR_FAMILY_IPV6;
        out->port = ntohs(s6->sin6_port);
        memcpy(out->ip, &s6->sin6_addr, 16);
        return true;
    }
    return false;
}

static void send_cb(uv_udp_send_t *req, int status)
{
    struct overlay *ov = req->data;
    (void)status; /* a lost datagram is the DHT's everyday business */
    ov->sends_queued--;
    free(req);
}

/* Try to send at once; when the socket buffer is full, queue a copy (bounded). */
static enum mp_err udp_send(void *ctx, const struct addr *to, const uint8_t *buf, size_t len)
{
    struct overlay *ov = ctx;
    struct sockaddr_storage ss;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);

    to_sockaddr(to, &ss);
    int rc = uv_udp_try_send(ov->udp, &b, 1, (struct sockaddr *)&ss);
    if (rc >= 0)
        return MP_OK;
    if (rc != UV_EAGAIN || ov->sends_queued >= OVERLAY_SEND_QUEUE_MAX) {
        ov->send_drops++;
        return rc == UV_EAGAIN ? MP_ERR_BUSY : MP_ERR_IO;
    }
    struct send_block *blk = malloc(sizeof(*blk) + len);
    if (blk == NULL) {
        ov->send_drops++;
        return MP_ERR_NOMEM;
    }
    memcpy(blk->data, buf, len);
    blk->len = len;
    blk->req.data = ov;
    b = uv_buf_init((char *)blk->data, (unsigned)len);
    if (uv_udp_send(&blk->req, ov->udp, &b, 1, (struct sockaddr *)&ss, send_cb) != 0) {
        free(blk);
        ov->send_drops++;
        return MP_ERR_IO;
    }
    ov->sends_queued++;
    return MP_OK;
}

/* ---- the wake-up timer and the saved table ---- */

static void save_peers(struct overlay *ov)
{
    if (ov->no_save) {
        ov->last_save_ms = now_ms(NULL); /* not due again: the timer must not spin */
        ov->saved_size = overlay_table_size(ov);
        return;
    }
    struct dht_peer peers[OVERLAY_SAVED_MAX];
    size_t n = dht_peers(ov->dht, peers, OVERLAY_SAVED_MAX);
    struct store_batch *batch = store_batch_new();

    /* Replace this network's whole saved set: old entries first, then the
     * current table. The public network's keys are the bare node keys; other
     * networks' keys are longer (prefix + key), so each sees only its own. */
    struct store_iter *it = store_iter_new(ov->store, STORE_CF_PEERS, ov->prefix, ov->prefix_len);
    const uint8_t *key, *val;
    size_t key_len, val_len;
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        if (key_len == ov->prefix_len + DHT_PK_BYTES)
            store_batch_delete(batch, STORE_CF_PEERS, key, key_len);
    }
    store_iter_free(it);
    for (size_t i = 0; i < n; i++) {
        char text[ADDR_TEXT_MAX];
        uint8_t full[OVERLAY_PREFIX_MAX + DHT_PK_BYTES];
        memcpy(full, ov->prefix, ov->prefix_len);
        memcpy(full + ov->prefix_len, peers[i].pk, DHT_PK_BYTES);
        addr_format(&peers[i].addr, text, sizeof(text));
        store_batch_put(batch, STORE_CF_PEERS, full, ov->prefix_len + DHT_PK_BYTES, text,
                        strlen(text));
    }
    enum mp_err err = store_batch_write(ov->store, batch, false);
    store_batch_free(batch);
    struct dht_stats st;
    dht_get_stats(ov->dht, &st);
    ov->last_save_ms = now_ms(NULL);
    ov->saved_size = st.table_size; /* the whole table's size: n stops at OVERLAY_SAVED_MAX */
    if (err != MP_OK)
        log_warn(MOD, "%s: cannot save the routing table: %s", ov->name, mp_strerror(err));
    else
        log_debug(MOD, "%s: saved %zu peers", ov->name, n);
}

static void timer_cb(uv_timer_t *timer);

/* When the table is to be saved next: on schedule, and soon after it changed
 * size (joining, losing nodes), so that a node killed without notice
 * restarts from a recent table. */
static uint64_t save_due(const struct overlay *ov)
{
    struct dht_stats st;
    dht_get_stats(ov->dht, &st);
    uint64_t due = ov->last_save_ms + OVERLAY_SAVE_MS;
    if (st.table_size != ov->saved_size && ov->last_save_ms + OVERLAY_RESAVE_MS < due)
        due = ov->last_save_ms + OVERLAY_RESAVE_MS;
    return due;
}

/* True while the bootstrap warning is still to be checked. */
static bool warn_pending(const struct overlay *ov)
{
    return !ov->warned && ov->join_tried > 0;
}

static void rearm(struct overlay *ov)
{
    uint64_t delay = dht_tick(ov->dht);
    /* Wake for a save that is due sooner than the DHT's own next deadline. */
    uint64_t now = now_ms(NULL), due = save_due(ov);
    uint64_t save_in = due > now ? due - now : 0;
    if (save_in < delay)
        delay = save_in;
    if (warn_pending(ov)) {
        uint64_t warn_at = ov->join_ms + OVERLAY_BOOTSTRAP_WARN_MS;
        uint64_t warn_in = warn_at > now ? warn_at - now : 0;
        if (warn_in < delay)
            delay = warn_in;
    }
    uv_timer_start(&ov->timer, timer_cb, delay, 0);
}

static void check_joined(struct overlay *ov, uint64_t now)
{
    if (!warn_pending(ov) || now < ov->join_ms + OVERLAY_BOOTSTRAP_WARN_MS)
        return;
    if (overlay_table_size(ov) > 0) {
        ov->join_tried = 0; /* joined: nothing to warn about */
        return;
    }
    ov->warned = true;
    log_warn(MOD, "%s: no peers: bootstrap list stale or unreachable (none of %u saved peers "
                  "and bootstrap entries answered within %d s); check the entries with "
                  "`merpati bootstrap list` and that UDP reaches them",
             ov->name, ov->join_tried, OVERLAY_BOOTSTRAP_WARN_MS / 1000);
}

static void timer_cb(uv_timer_t *timer)
{
    struct overlay *ov = timer->data;
    uint64_t now = now_ms(NULL);

    if (now >= save_due(ov))
        save_peers(ov);
    check_joined(ov, now);
    rearm(ov);
}

void overlay_on_datagram(struct overlay *ov, const struct sockaddr *from, const uint8_t *data,
                         size_t len)
{
    struct addr a;

    if (!from_sockaddr(from, &a))
        return;
    dht_on_datagram(ov->dht, &a, data, len);
    rearm(ov);
}

/* ---- joining ---- */

static void join(struct overlay *ov, const struct config *cfg)
{
    unsigned saved = 0, listed = 0;

    /* Nodes met before first: they are the ones most likely still there. */
    struct store_iter *it = store_iter_new(ov->store, STORE_CF_PEERS, ov->prefix, ov->prefix_len);
    const uint8_t *key, *val;
    size_t key_len, val_len;
    while (store_iter_next(it, &key, &key_len, &val, &val_len)) {
        char text[ADDR_TEXT_MAX];
        struct addr a;
        if (key_len != ov->prefix_len + DHT_PK_BYTES || val_len >= sizeof(text))
            continue;
        memcpy(text, val, val_len);
        text[val_len] = '\0';
        if (addr_parse(text, &a) == MP_OK &&
            dht_bootstrap(ov->dht, key + ov->prefix_len, &a) == MP_OK)
            saved++;
    }
    store_iter_free(it);
    for (unsigned i = 0; i < cfg->bootstrap_count; i++) {
        uint8_t pk[DHT_PK_BYTES];
        struct addr a;
        if (config_parse_node(cfg->bootstrap[i], pk, &a) != MP_OK)
            continue; /* config.c validated the form */
        enum mp_err err = dht_bootstrap(ov->dht, pk, &a);
        if (err == MP_OK)
            listed++;
        else
            log_warn(MOD, "%s: bootstrap entry %s skipped: %s", ov->name, cfg->bootstrap[i],
                     mp_strerror(err));
    }
    ov->join_ms = now_ms(NULL);
    ov->join_tried = saved + listed;
    ov->warned = false;
    if (saved + listed == 0)
        log_warn(MOD, "%s: no bootstrap nodes and no saved peers: this node is alone until "
                      "another node bootstraps from it (see `merpati bootstrap add`, or "
                      "`bootstrap` in the config)",
                 ov->name);
    else
        log_info(MOD, "%s: joining through %u saved peers and %u bootstrap entries", ov->name,
                 saved, listed);
}

/* ---- life ---- */

enum mp_err overlay_new(uv_loop_t *loop, uv_udp_t *udp, struct store *store,
                        const struct identity *node_key, const struct identity *account,
                        const struct config *cfg, const struct addr *advertised,
                        const struct overlay_net *net, struct overlay **overlay_out)
{
    struct dht_config dcfg;
    struct timespec real;
    enum mp_err err;

    struct overlay *ov = calloc(1, sizeof(*ov));
    if (ov == NULL)
        return MP_ERR_NOMEM;
    ov->loop = loop;
    ov->udp = udp;
    ov->store = store;
    ov->account = account;
    ov->env.ctx = ov;
    ov->env.now_ms = now_ms;
    ov->env.random = random_fill;
    ov->env.send = udp_send;
    snprintf(ov->name, sizeof(ov->name), "%s",
             net != NULL && net->name != NULL ? net->name : "public");
    if (net != NULL && net->fingerprint != NULL)
        snprintf(ov->fingerprint, sizeof(ov->fingerprint), "%s", net->fingerprint);
    if (net != NULL && net->peers_prefix_len > 0) {
        if (net->peers_prefix_len > sizeof(ov->prefix)) {
            free(ov);
            return MP_ERR_INVAL;
        }
        memcpy(ov->prefix, net->peers_prefix, net->peers_prefix_len);
        ov->prefix_len = net->peers_prefix_len;
    }

    err = box_key_from_identity(node_key, &ov->box);
    if (err != MP_OK)
        goto fail;
    dht_config_default(&dcfg);
    dcfg.network_key = net != NULL ? net->network_key : NULL;
    dcfg.per_ip_per_bucket = cfg->dht_ip_limit;
    dcfg.rate_per_s = cfg->dht_rate_limit;
    dcfg.rate_burst = cfg->dht_rate_limit * 2;
    /* Record expiry runs on network (wall-clock) time. */
    clock_gettime(CLOCK_REALTIME, &real);
    dcfg.wall_offset_ms =
        (int64_t)real.tv_sec * 1000 + real.tv_nsec / 1000000 - (int64_t)now_ms(NULL);
    if ((err = dht_new(&ov->env, ov->box, &dcfg, &ov->dht)) != MP_OK)
        goto fail;
    if (uv_timer_init(loop, &ov->timer) != 0) {
        err = MP_ERR_IO;
        goto fail;
    }
    ov->timer.data = ov;
    ov->last_save_ms = now_ms(NULL);

    char hex[2 * DHT_PK_BYTES + 1];
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    struct addr self;
    char self_text[ADDR_TEXT_MAX];
    secure_hex(hex, sizeof(hex), box_key_public(ov->box), DHT_PK_BYTES);
    if (uv_udp_getsockname(udp, (struct sockaddr *)&bound, &len) == 0 &&
        from_sockaddr((struct sockaddr *)&bound, &self)) {
        ov->bound = self;
        addr_format(advertised != NULL ? advertised : &self, self_text, sizeof(self_text));
    } else {
        snprintf(self_text, sizeof(self_text), "?");
    }
    snprintf(ov->bootstrap, sizeof(ov->bootstrap), "%s@%s", hex, self_text);
    log_info(MOD, "%s: DHT node key %.16s..., bootstrap entry for others: %s", ov->name, hex,
             ov->bootstrap);

    join(ov, cfg);
    rearm(ov);
    *overlay_out = ov;
    return MP_OK;
fail:
    dht_free(ov->dht);
    box_key_free(ov->box);
    free(ov);
    return err;
}

static void timer_closed_cb(uv_handle_t *handle)
{
    struct overlay *ov = handle->data;
    void (*cb)(void *) = ov->closed_cb;
    void *arg = ov->closed_arg;

    dht_free(ov->dht);
    box_key_free(ov->box);
    free(ov);
    if (cb != NULL)
        cb(arg);
}

void overlay_close(struct overlay *ov, void (*closed_cb)(void *arg), void *arg)
{
    if (ov == NULL)
        return;
    save_peers(ov);
    /* The DHT drops its pending operations without callbacks: answer ours.
     * From here no new one starts (a callback may try). */
    ov->closing = true;
    for (size_t i = 0; i < OVERLAY_OPS_MAX; i++) {
        struct overlay_get_op op = ov->gets[i];
        ov->gets[i].in_use = false;
        if (op.in_use && op.lookup_cb != NULL)
            op.lookup_cb(op.arg, MP_ERR_UNAVAILABLE, NULL, 0);
        else if (op.in_use)
            op.cb(op.arg, MP_ERR_UNAVAILABLE, NULL, 0);
    }
    for (size_t i = 0; i < OVERLAY_OPS_MAX; i++) {
        if (ov->ops[i].in_use && ov->ops[i].call != NULL)
            control_call_fail(ov->ops[i].call, RPC_CODE_FAILED, MP_ERR_UNAVAILABLE,
                              "the node is shutting down");
        ov->ops[i].call = NULL;
    }
    ov->closed_cb = closed_cb;
    ov->closed_arg = arg;
    uv_close((uv_handle_t *)&ov->timer, timer_closed_cb);
}

/* ---- for other node modules ---- */

static void module_get_cb(void *arg, enum mp_err status, const struct record *rec,
                          const struct dht_lookup_info *info)
{
    struct overlay_get_op *op = arg;
    (void)info;
    op->in_use = false;
    op->cb(op->arg, status, status == MP_OK ? rec->payload : NULL,
           status == MP_OK ? rec->payload_len : 0);
}

static void module_lookup_cb(void *arg, enum mp_err status, const struct dht_peer *nodes,
                             size_t count, const struct dht_lookup_info *info)
{
    struct overlay_get_op *op = arg;
    (void)info;
    op->in_use = false;
    op->lookup_cb(op->arg, status, nodes, status == MP_OK ? count : 0);
}

/* A free operation slot, or NULL when all are in use. */
static struct overlay_get_op *get_op(struct overlay *ov)
{
    if (ov->closing)
        return NULL;
    for (size_t i = 0; i < OVERLAY_OPS_MAX; i++) {
        if (!ov->gets[i].in_use)
            return &ov->gets[i];
    }
    return NULL;
}

enum mp_err overlay_get(struct overlay *ov, unsigned kind, const uint8_t owner[32],
                        void (*cb)(void *arg, enum mp_err status, const uint8_t *payload,
                                   size_t len),
                        void *arg)
{
    struct overlay_get_op *op = get_op(ov);
    if (op == NULL)
        return ov->closing ? MP_ERR_UNAVAILABLE : MP_ERR_DHT_BUSY;
    *op = (struct overlay_get_op){.ov = ov, .cb = cb, .arg = arg, .in_use = true};
    enum mp_err err = dht_get(ov->dht, kind, owner, module_get_cb, op);
    if (err != MP_OK) {
        op->in_use = false;
        return err;
    }
    rearm(ov);
    return MP_OK;
}

enum mp_err overlay_lookup(struct overlay *ov, const uint8_t target[32], overlay_lookup_cb *cb,
                           void *arg)
{
    struct overlay_get_op *op = get_op(ov);
    if (op == NULL)
        return ov->closing ? MP_ERR_UNAVAILABLE : MP_ERR_DHT_BUSY;
    *op = (struct overlay_get_op){.ov = ov, .lookup_cb = cb, .arg = arg, .in_use = true};
    enum mp_err err = dht_lookup(ov->dht, target, module_lookup_cb, op);
    if (err != MP_OK) {
        op->in_use = false;
        return err;
    }
    rearm(ov);
    return MP_OK;
}

enum mp_err overlay_publish(struct overlay *ov, unsigned kind, const uint8_t *payload, size_t len,
                            uint32_t ttl_s)
{
    enum mp_err err = dht_publish(ov->dht, ov->account, kind, payload, len, ttl_s, NULL, NULL);
    if (err == MP_OK)
        rearm(ov);
    return err;
}

const uint8_t *overlay_node_key(const struct overlay *ov)
{
    return box_key_public(ov->box);
}

struct addr overlay_bound_addr(const struct overlay *ov)
{
    return ov->bound;
}

/* ---- status and control methods ---- */

json_t *overlay_status(const struct overlay *ov)
{
    struct dht_stats st;
    char hex[2 * DHT_PK_BYTES + 1];

    dht_get_stats(ov->dht, &st);
    json_t *dropped = json_object();
    for (int i = 0; i < DHT_DROP_COUNT; i++) {
        if (st.drops[i] > 0)
            json_object_set_new(dropped, dht_drop_name((enum dht_drop)i),
                                json_integer((json_int_t)st.drops[i]));
    }
    if (ov->send_drops > 0)
        json_object_set_new(dropped, "send_queue_full", json_integer((json_int_t)ov->send_drops));
    secure_hex(hex, sizeof(hex), box_key_public(ov->box), DHT_PK_BYTES);
    json_t *out = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "node_key", hex,
                            "bootstrap", ov->bootstrap, "network", ov->name, "table_size",
                            (json_int_t)st.table_size, "records", (json_int_t)st.records, "rx",
                            (json_int_t)st.rx, "tx", (json_int_t)st.tx, "lookups",
                            (json_int_t)st.lookups, "dropped", dropped);
    if (out != NULL && ov->fingerprint[0] != '\0')
        json_object_set_new(out, "fingerprint", json_string(ov->fingerprint));
    if (out != NULL && ov->warned && st.table_size == 0)
        json_object_set_new(out, "warning",
                            json_string("no peers: bootstrap list stale or unreachable"));
    return out;
}

size_t overlay_table_size(const struct overlay *ov)
{
    struct dht_stats st;
    dht_get_stats(ov->dht, &st);
    return st.table_size;
}

enum mp_err overlay_add_bootstrap(struct overlay *ov, const char *entry)
{
    char why[200];
    uint8_t pk[DHT_PK_BYTES];
    struct addr a;

    if (config_check_bootstrap(entry, why, sizeof(why)) != MP_OK)
        return MP_ERR_INVAL;
    if (config_parse_node(entry, pk, &a) != MP_OK)
        return MP_ERR_NET_ADDR;
    enum mp_err err = dht_bootstrap(ov->dht, pk, &a);
    if (err != MP_OK)
        return err;
    ov->join_ms = now_ms(NULL);
    ov->join_tried++;
    ov->warned = false;
    rearm(ov);
    return MP_OK;
}

void overlay_stop_saving(struct overlay *ov)
{
    ov->no_save = true;
}

enum mp_err overlay_forget_peers(struct store *store, const uint8_t *prefix, size_t prefix_len)
{
    struct store_batch *batch = store_batch_new();
    struct store_iter *it = store_iter_new(store, STORE_CF_PEERS, prefix, prefix_len);
    const uint8_t *key, *val;
    size_t key_len, val_len;
    while (store_iter_next(it, &key, &key_len, &val, &val_len))
        store_batch_delete(batch, STORE_CF_PEERS, key, key_len);
    enum mp_err err = store_iter_status(it);
    store_iter_free(it);
    if (err == MP_OK)
        err = store_batch_write(store, batch, false);
    store_batch_free(batch);
    return err;
}

json_t *overlay_peers(const struct overlay *ov)
{
    struct dht_peer peers[DHT_K * 32];

    size_t n = dht_peers(ov->dht, peers, sizeof(peers) / sizeof(peers[0]));
    uint64_t now = now_ms(NULL);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        char id[2 * DHT_ID_BYTES + 1], pk[2 * DHT_PK_BYTES + 1], where[ADDR_TEXT_MAX];
        secure_hex(id, sizeof(id), peers[i].id, DHT_ID_BYTES);
        secure_hex(pk, sizeof(pk), peers[i].pk, DHT_PK_BYTES);
        addr_format(&peers[i].addr, where, sizeof(where));
        uint64_t ago = now > peers[i].last_seen_ms ? (now - peers[i].last_seen_ms) / 1000 : 0;
        json_array_append_new(list, json_pack("{s:s%, s:s, s:s, s:I, s:I}", "id", id, (size_t)16,
                                              "node_key", pk, "address", where, "last_seen_s",
                                              (json_int_t)ago, "rtt_ms",
                                              (json_int_t)peers[i].rtt_ms));
    }
    return json_pack("{s:s, s:o}", "network", ov->name, "peers", list);
}

static bool parse_kind(json_t *params, unsigned *kind_out, struct rpc_error *err_out)
{
    const char *kind = json_string_value(json_object_get(params, "kind"));
    if (kind != NULL && strcmp(kind, "presence") == 0)
        *kind_out = RECORD_KIND_PRESENCE;
    else if (kind != NULL && strcmp(kind, "prekeys") == 0)
        *kind_out = RECORD_KIND_PREKEYS;
    else if (kind != NULL && strcmp(kind, "note") == 0)
        *kind_out = RECORD_KIND_NOTE;
    else {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS,
                      "\"kind\" must be \"presence\", \"prekeys\" or \"note\"");
        return false;
    }
    return true;
}

static struct overlay_op *op_new(struct overlay *ov, struct control_call *call,
                                 struct rpc_error *err_out)
{
    for (size_t i = 0; i < OVERLAY_OPS_MAX; i++) {
        if (!ov->ops[i].in_use) {
            struct control_call *kept = control_call_defer(call);
            if (kept == NULL)
                break;
            ov->ops[i] = (struct overlay_op){.ov = ov, .call = kept, .in_use = true};
            return &ov->ops[i];
        }
    }
    rpc_error_set(err_out, NULL, RPC_CODE_FAILED, "too many DHT requests in progress; retry");
    return NULL;
}

/* Give a slot back when its start failed: the call is still the handler's. */
static void op_cancel(struct overlay_op *op)
{
    op->in_use = false;
    op->call = NULL;
}

static json_t *lookup_info(const struct dht_lookup_info *info)
{
    return json_pack("{s:i, s:i, s:I}", "rounds", (int)info->rounds, "rpcs", (int)info->rpcs,
                     "ms", (json_int_t)info->duration_ms);
}

static void put_done_cb(void *arg, enum mp_err status, unsigned stored,
                        const struct dht_lookup_info *info)
{
    struct overlay_op *op = arg;

    if (op->call != NULL) {
        if (status == MP_OK)
            control_call_reply(op->call, json_pack("{s:i, s:o}", "stored", (int)stored, "lookup",
                                                   lookup_info(info)));
        else
            control_call_fail(op->call, RPC_CODE_FAILED, status, mp_strerror(status));
    }
    op_cancel(op);
}

static bool method_put(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                       struct rpc_error *err_out, json_t **data_out)
{
    struct overlay *ov = ctx;
    unsigned kind = RECORD_KIND_NOTE; /* the node's own records are messaging's */
    uint8_t payload[RECORD_PAYLOAD_MAX];
    (void)result_out;
    (void)data_out;

    const char *text = json_string_value(json_object_get(params, "payload"));
    json_t *ttl = json_object_get(params, "ttl_s");
    size_t len = text != NULL ? strlen(text) / 2 : 0;
    if (text == NULL || strlen(text) % 2 != 0 || len > sizeof(payload) ||
        strspn(text, "0123456789abcdefABCDEF") != strlen(text)) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS,
                      "\"payload\" must be hex of at most %d bytes", RECORD_PAYLOAD_MAX);
        return false;
    }
    if (ttl != NULL && (!json_is_integer(ttl) || json_integer_value(ttl) < 60 ||
                        json_integer_value(ttl) > RECORD_TTL_MAX_S)) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS,
                      "\"ttl_s\" must be an integer from 60 to %d", RECORD_TTL_MAX_S);
        return false;
    }
    (void)secure_unhex(payload, len, text, 2 * len); /* checked above */
    struct overlay_op *op = op_new(ov, call, err_out);
    if (op == NULL)
        return false;
    enum mp_err err =
        dht_publish(ov->dht, ov->account, kind, payload, len,
                    ttl != NULL ? (uint32_t)json_integer_value(ttl) : OVERLAY_PUT_TTL_S,
                    put_done_cb, op);
    if (err != MP_OK) {
        control_call_fail(op->call, RPC_CODE_FAILED, err, mp_strerror(err));
        op_cancel(op);
        return true; /* answered: the call was deferred already */
    }
    rearm(ov);
    return true;
}

static void get_done_cb(void *arg, enum mp_err status, const struct record *rec,
                        const struct dht_lookup_info *info)
{
    struct overlay_op *op = arg;

    if (op->call != NULL) {
        char hex[2 * RECORD_PAYLOAD_MAX + 1];
        if (status == MP_OK)
            control_call_reply(
                op->call,
                json_pack("{s:s, s:I, s:I, s:o}", "payload",
                          secure_hex(hex, sizeof(hex), rec->payload, rec->payload_len), "seq",
                          (json_int_t)rec->seq, "expires_s", (json_int_t)rec->expires_s,
                          "lookup", lookup_info(info)));
        else
            control_call_fail(op->call, RPC_CODE_FAILED, status,
                              status == MP_ERR_NOT_FOUND ? "no such record in the DHT"
                                                         : mp_strerror(status));
    }
    op_cancel(op);
}

static bool method_get(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                       struct rpc_error *err_out, json_t **data_out)
{
    struct overlay *ov = ctx;
    unsigned kind;
    uint8_t owner[RECORD_OWNER_BYTES];
    (void)result_out;
    (void)data_out;

    if (!parse_kind(params, &kind, err_out))
        return false;
    const char *text = json_string_value(json_object_get(params, "owner"));
    enum mp_err err = text != NULL ? address_decode(text, owner) : MP_ERR_INVAL;
    if (err != MP_OK) {
        rpc_error_set(err_out, NULL, RPC_CODE_INVALID_PARAMS, "\"owner\" must be an address: %s",
                      mp_strerror(err));
        return false;
    }
    struct overlay_op *op = op_new(ov, call, err_out);
    if (op == NULL)
        return false;
    err = dht_get(ov->dht, kind, owner, get_done_cb, op);
    if (err != MP_OK) {
        control_call_fail(op->call, RPC_CODE_FAILED, err, mp_strerror(err));
        op_cancel(op);
        return true;
    }
    rearm(ov);
    return true;
}

static const char *const put_params[] = {"payload", "ttl_s", NULL};
static const char *const get_params[] = {"kind", "owner", NULL};

static const struct control_method methods[] = {
    {"dht.put", put_params, method_put},
    {"dht.get", get_params, method_get},
};

const struct control_method *overlay_methods(size_t *count_out)
{
    *count_out = sizeof(methods) / sizeof(methods[0]);
    return methods;
}
