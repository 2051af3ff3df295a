#include "node/daemon.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "crypto/address.h"
#include "crypto/cluster.h"
#include "crypto/identity.h"
#include "crypto/noise.h"
#include "crypto/secure.h"
#include "node/clusters.h"
#include "node/contacts.h"
#include "node/contacts_api.h"
#include "node/control.h"
#include "node/delivery.h"
#include "node/keyfile.h"
#include "node/link.h"
#include "node/mailbox.h"
#include "node/network.h"
#include "node/overlay.h"
#include "node/sessions.h"
#include "node/store.h"
#include "node/sysenv.h"

/* The allocator serves blocks up to DAEMON_HEAP_KEEP from its heap and keeps
 * what is freed there for the next block, rather than mapping fresh pages
 * (each page touched first costs a fault: on a virtual machine, about as much
 * as a message). 32 MiB is the largest mapping threshold older glibc takes.
 * The daemon gives the free part back once it goes quiet: DAEMON_TRIM_MS
 * after the loop woke for something, if it used less than
 * DAEMON_QUIET_CPU_US of CPU in that time (trim_cb). */
#define DAEMON_HEAP_KEEP (32 * 1024 * 1024)
#define DAEMON_TRIM_MS 5000
#define DAEMON_QUIET_CPU_US 50000

/* Networks at once: the public one and CLUSTERS_MAX clusters. */
#define DAEMON_NETWORKS_MAX (1 + CLUSTERS_MAX)

/* A joined network; token is a cluster's (for `cluster list`), wiped on leave. */
struct daemon_net {
    struct network *net; /* NULL: free slot */
    struct cluster_token token;
};

struct daemon {
    uv_loop_t loop;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_timer_t trim;      /* one-shot: armed by awake_cb, or by trim_cb while busy */
    uv_check_t awake;     /* after each turn of the loop */
    uint64_t trim_cpu_us; /* CPU used when the trim timer was armed */
    bool trimmed;         /* no busy period since the last trim */
    bool trim_turn;       /* this turn of the loop ran trim_cb */
    struct control *control;
    struct store *store;
    struct identity *identity;  /* the account */
    struct identity *node_key;  /* this node's key in the DHT and on links */
    /* Every joined network; the first one opened (public unless
     * cluster_only) is the primary one, where delivery runs. */
    struct daemon_net nets[DAEMON_NETWORKS_MAX];
    struct network *primary;
    struct config public_cfg; /* the config, with the stored bootstrap list if any */
    /* The last address resolve_cb decoded, and its key: decoding checks that
     * the key is a point of the curve's prime-order group (about 45 us, half
     * of what a `send` cost), and a program sending a message a call names
     * the same address each time. Whether a text is an address depends on
     * the text alone, so the memo is exact. */
    char last_address[ADDRESS_TEXT_SIZE];
    uint8_t last_address_pk[32];
    bool bootstrap_stored;    /* public_cfg.bootstrap came from `merpati bootstrap` */
    struct sessions *sessions;
    struct delivery *delivery;
    struct mailbox *mailbox; /* on the primary network */
    struct env env; /* the real clock and randomness, for links and sessions */
    struct contacts *contacts;
    const struct daemon_options *opts;
    char address[ADDRESS_TEXT_SIZE];
    uint8_t node_pk[32]; /* the node key's X25519 public half (DHT and links) */
    uint64_t started_ms;
    bool stopping;
    /* Link messages that came while no delivery runs (bootstrap-only). */
    unsigned long other_net_msgs;
};

static void print_error(const char *what, const char *hint)
{
    fprintf(stderr, "merpati: error: %s\n", what);
    if (hint != NULL)
        fprintf(stderr, "hint: %s\n", hint);
}

static void close_quietly(uv_handle_t *handle)
{
    if (handle->data != NULL && !uv_is_closing(handle))
        uv_close(handle, NULL);
}

/* Begin an orderly stop: every handle closes and uv_run returns. */
static void daemon_stop(struct daemon *d, const char *why)
{
    if (d->stopping)
        return;
    d->stopping = true;
    log_info("daemon", "stopping (%s)", why);
    /* The overlays first: they fail the DHT lookups delivery still waits for. */
    for (size_t i = 0; i < DAEMON_NETWORKS_MAX; i++)
        network_close_overlay(d->nets[i].net);
    delivery_close(d->delivery);
    d->delivery = NULL;
    mailbox_close(d->mailbox);
    d->mailbox = NULL;
    control_close(d->control, NULL, NULL);
    d->control = NULL;
    for (size_t i = 0; i < DAEMON_NETWORKS_MAX; i++) {
        network_close(d->nets[i].net, NULL, NULL);
        d->nets[i].net = NULL;
        cluster_token_wipe(&d->nets[i].token);
    }
    d->primary = NULL;
    close_quietly((uv_handle_t *)&d->sigint);
    close_quietly((uv_handle_t *)&d->sigterm);
    close_quietly((uv_handle_t *)&d->trim);
    close_quietly((uv_handle_t *)&d->awake);
}

/* User and system CPU the process has used, in microseconds. */
static uint64_t cpu_used_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* DAEMON_TRIM_MS after it was armed: busy since, it looks again after the
 * next period; quiet after a busy period, it gives the allocator's free pages
 * back to the system (a burst of 1 MiB requests left about 20 MiB); quiet
 * again, it waits for awake_cb to arm it. */
static void trim_cb(uv_timer_t *timer)
{
    struct daemon *d = timer->data;
    uint64_t now = cpu_used_us();
    d->trim_turn = true;
    if (now - d->trim_cpu_us >= DAEMON_QUIET_CPU_US) {
        d->trimmed = false;
        d->trim_cpu_us = now;
        uv_timer_start(&d->trim, trim_cb, DAEMON_TRIM_MS, 0);
    } else if (!d->trimmed) {
        malloc_trim(0);
        d->trimmed = true;
    }
}

/* After each turn of the loop: unless the turn was the trim timer's own, or
 * the timer runs already, arm it, so that a node that sleeps is not woken
 * for it. */
static void awake_cb(uv_check_t *check)
{
    struct daemon *d = check->data;
    if (d->trim_turn) {
        d->trim_turn = false;
        return;
    }
    if (uv_is_active((uv_handle_t *)&d->trim))
        return;
    d->trim_cpu_us = cpu_used_us();
    uv_timer_start(&d->trim, trim_cb, DAEMON_TRIM_MS, 0);
}

/* The allocator's settings (DAEMON_HEAP_KEEP) and the handles that trim it;
 * without them the node runs on, keeping what a burst left. */
static void watch_memory(struct daemon *d)
{
    bool mmap_set = mallopt(M_MMAP_THRESHOLD, DAEMON_HEAP_KEEP) == 1;
    bool trim_set = mallopt(M_TRIM_THRESHOLD, DAEMON_HEAP_KEEP) == 1;
    if (!mmap_set || !trim_set)
        log_warn("daemon", "the allocator refused its %s threshold: under load it maps and "
                 "faults in fresh pages more often", !mmap_set ? "mmap" : "trim");
    int rc = uv_timer_init(&d->loop, &d->trim);
    if (rc == 0) {
        d->trim.data = d;
        rc = uv_check_init(&d->loop, &d->awake);
    }
    if (rc == 0) {
        d->awake.data = d;
        rc = uv_check_start(&d->awake, awake_cb);
    }
    if (rc != 0)
        log_warn("daemon", "cannot watch memory (%s): what a burst of work leaves in the "
                 "allocator stays there", uv_strerror(rc));
}

static void signal_cb(uv_signal_t *handle, int signum)
{
    daemon_stop(handle->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- control API methods ---- */

static bool method_status(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                          struct rpc_error *err_out, json_t **data_out)
{
    struct daemon *d = ctx;
    (void)call;
    (void)params;
    (void)err_out;
    (void)data_out;
    uint64_t uptime_ms = uv_now(&d->loop) - d->started_ms;
    json_t *nets = json_array();
    json_int_t udp_dropped = 0, tcp_refused = 0;
    for (size_t i = 0; i < DAEMON_NETWORKS_MAX; i++) {
        if (d->nets[i].net == NULL)
            continue;
        json_t *ns = network_status(d->nets[i].net);
        json_t *dropped = json_object_get(ns, "dropped");
        udp_dropped += json_integer_value(json_object_get(dropped, "udp_unhandled"));
        tcp_refused += json_integer_value(json_object_get(dropped, "tcp_unhandled"));
        json_array_append_new(nets, ns);
    }
    int port = d->primary != NULL ? (int)network_port(d->primary) : 0;
    *result_out = json_pack("{s:s, s:s, s:I, s:I, s:{s:i, s:i}, s:s, s:s, s:{s:I, s:I, s:I}, s:o, "
                            "s:s, s:b, s:b}",
                            "address", d->address, "version", MERPATI_VERSION, "pid",
                            (json_int_t)getpid(), "uptime_s", (json_int_t)(uptime_ms / 1000),
                            "ports", "udp", port, "tcp", port, "data_dir", d->opts->data_dir,
                            "control_socket", d->opts->control_path, "dropped", "udp_unhandled",
                            udp_dropped, "tcp_unhandled", tcp_refused, "link_msgs_unhandled",
                            (json_int_t)d->other_net_msgs, "networks", nets,
                            "primary", d->primary != NULL ? network_name(d->primary) : "",
                            "cluster_only", d->opts->config.cluster_only, "bootstrap_only",
                            d->opts->config.bootstrap_only);
    if (*result_out == NULL || d->primary == NULL)
        return true;
    struct overlay *ov = network_overlay(d->primary);
    if (ov != NULL)
        json_object_set_new(*result_out, "dht", overlay_status(ov));
    if (d->delivery != NULL)
        json_object_set_new(*result_out, "messages", delivery_status(d->delivery));
    if (*result_out != NULL && d->mailbox != NULL)
        json_object_set_new(*result_out, "mailbox", mailbox_status(d->mailbox));
    struct links_stats ls = {0};
    links_stats(network_links(d->primary), &ls);
    json_object_set_new(*result_out, "links",
                        json_pack("{s:i, s:I, s:I, s:I, s:I}", "up", (int)ls.links_up, "dials",
                                  (json_int_t)ls.dials, "accepted", (json_int_t)ls.accepted,
                                  "msgs_out", (json_int_t)ls.msgs_out, "msgs_in",
                                  (json_int_t)ls.msgs_in));
    return true;
}

static bool method_id(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                      struct rpc_error *err_out, json_t **data_out)
{
    struct daemon *d = ctx;
    char hex[IDENTITY_PUBLIC_BYTES * 2 + 1];
    (void)call;
    (void)params;
    (void)err_out;
    (void)data_out;
    secure_hex(hex, sizeof(hex), identity_public_key(d->identity), IDENTITY_PUBLIC_BYTES);
    *result_out = json_pack("{s:s, s:s}", "address", d->address, "public_key", hex);
    return true;
}

static bool method_shutdown(void *ctx, struct control_call *call, json_t *params,
                            json_t **result_out, struct rpc_error *err_out, json_t **data_out)
{
    (void)call;
    (void)params;
    (void)err_out;
    (void)data_out;
    *result_out = json_pack("{s:b}", "stopping", 1);
    daemon_stop(ctx, "shutdown requested over the control API");
    return true;
}

/* ---- start and stop ---- */

/* The node key: created on first use, so data dirs made before it existed work. */
static int open_node_key(struct daemon *d)
{
    char path[PATHS_MAX];
    char what[PATHS_MAX + 128];
    struct env env = {0};

    if (paths_join(d->opts->data_dir, "node.key", path, sizeof(path)) != MP_OK)
        return EX_USAGE;
    enum mp_err err = keyfile_read(path, &d->node_key);
    if (err == MP_ERR_NOT_FOUND) {
        if ((err = sysenv_init(&env)) == MP_OK &&
            (err = identity_generate(&env, &d->node_key)) == MP_OK)
            err = keyfile_write(path, d->node_key);
    }
    if (err != MP_OK) {
        snprintf(what, sizeof(what), "cannot use the node key %s: %s", path, mp_strerror(err));
        print_error(what, err == MP_ERR_PERM ? "make it private: chmod 600 <file>" : NULL);
        return err == MP_ERR_PERM ? EX_NOPERM : EX_DATAERR;
    }
    return 0;
}

static int open_identity(struct daemon *d)
{
    char path[PATHS_MAX];
    char what[PATHS_MAX + 128];

    if (paths_join(d->opts->data_dir, "identity.key", path, sizeof(path)) != MP_OK) {
        print_error("the data dir path is too long", "use a shorter --data-dir");
        return EX_USAGE;
    }
    enum mp_err err = keyfile_read(path, &d->identity);
    if (err == MP_ERR_NOT_FOUND) {
        snprintf(what, sizeof(what), "not initialized at %s (no identity.key)", d->opts->data_dir);
        print_error(what, "run `merpati init` first, or pass --data-dir of an initialized node");
        return EX_NOINPUT;
    }
    if (err != MP_OK) {
        snprintf(what, sizeof(what), "cannot read %s: %s", path, mp_strerror(err));
        print_error(what, err == MP_ERR_PERM ? "make it private: chmod 600 <file>" : NULL);
        return err == MP_ERR_PERM ? EX_NOPERM : EX_DATAERR;
    }
    address_encode(identity_public_key(d->identity), d->address);
    return 0;
}

static int open_store(struct daemon *d)
{
    char what[PATHS_MAX + 128];
    pid_t holder = 0;

    enum mp_err err = store_open(d->opts->data_dir, &d->store, &holder);
    if (err == MP_OK)
        return 0;
    if (err == MP_ERR_BUSY) {
        snprintf(what, sizeof(what), "data dir %s is in use by another merpati (pid %ld)",
                 d->opts->data_dir, (long)holder);
        print_error(what, "stop it with `merpati stop`, or use another --data-dir");
        return EX_TEMPFAIL;
    }
    snprintf(what, sizeof(what), "cannot open the database in %s: %s", d->opts->data_dir,
             mp_strerror(err));
    print_error(what, err == MP_ERR_DISK_FULL ? "free some disk space and start again" : NULL);
    return err == MP_ERR_DISK_FULL ? EX_IOERR : EX_SOFTWARE;
}

static int watch_signal(struct daemon *d, uv_signal_t *handle, int signum)
{
    int rc = uv_signal_init(&d->loop, handle);
    if (rc != 0)
        return rc;
    handle->data = d;
    return uv_signal_start(handle, signal_cb, signum);
}

/* ---- links and delivery ---- */

/* Delivery's index of a network: 0 for the primary one, 1 + its slot for
 * the others (DELIVERY_NETS_MAX > DAEMON_NETWORKS_MAX). */
static unsigned delivery_index(const struct daemon *d, const struct network *net)
{
    if (net == d->primary)
        return 0;
    for (size_t i = 0; i < DAEMON_NETWORKS_MAX; i++) {
        if (d->nets[i].net == net)
            return (unsigned)i + 1;
    }
    return DELIVERY_NETS_MAX; /* not a network of ours */
}

_Static_assert(DAEMON_NETWORKS_MAX + 1 <= DELIVERY_NETS_MAX, "a delivery index per network");

/* Mail fetched from one of our mailboxes. */
static void mail_cb(void *arg, const uint8_t node_key[32], const struct buf *envelope)
{
    struct daemon *d = arg;
    if (d->delivery != NULL)
        delivery_on_mail(d->delivery, node_key, envelope);
}

/* Messages run on every network (node/delivery.h: a recipient is reached
 * only on a network where its own node published its presence). */
static void link_message_cb(void *arg, struct network *net, const uint8_t peer_pk[LINK_KEY_BYTES],
                            const uint8_t *msg, size_t len)
{
    struct daemon *d = arg;
    if (d->delivery != NULL)
        delivery_on_link_message_net(d->delivery, delivery_index(d, net), peer_pk, msg, len);
    else
        d->other_net_msgs++;
}

static void link_state_cb(void *arg, struct network *net, const uint8_t peer_pk[LINK_KEY_BYTES],
                          bool up)
{
    struct daemon *d = arg;
    if (d->delivery != NULL)
        delivery_on_link_state_net(d->delivery, delivery_index(d, net), peer_pk, up);
}

static void link_writable_cb(void *arg, struct network *net, const uint8_t peer_pk[LINK_KEY_BYTES])
{
    struct daemon *d = arg;
    (void)net;
    if (d->delivery != NULL)
        delivery_on_writable(d->delivery, peer_pk);
}

/* Hand a non-primary network to delivery (add), or take it back (NULL). */
static void delivery_net(struct daemon *d, struct network *net, bool add)
{
    struct delivery_net dn;
    unsigned index = delivery_index(d, net);

    if (d->delivery == NULL || index == 0 || index >= DELIVERY_NETS_MAX)
        return;
    if (!add) {
        delivery_set_net(d->delivery, index, NULL);
        return;
    }
    memset(&dn, 0, sizeof(dn));
    dn.overlay = network_overlay(net);
    dn.links = network_links(net);
    dn.addr_count = network_advertised(net, dn.addrs, MSG_PRESENCE_ADDRS_MAX);
    if (dn.overlay != NULL)
        delivery_set_net(d->delivery, index, &dn);
}

/* The delivery indexes of the networks c names (those we are in). */
static uint32_t contact_mask(const struct daemon *d, const struct contact *c)
{
    uint32_t mask = 0;
    for (unsigned k = 0; k < c->network_count && k < CONTACT_NETWORKS_MAX; k++) {
        if (d->primary != NULL && strcmp(network_name(d->primary), c->networks[k]) == 0)
            mask |= 1u;
        for (size_t i = 0; i < DAEMON_NETWORKS_MAX; i++) {
            struct network *net = d->nets[i].net;
            if (net != NULL && strcmp(network_name(net), c->networks[k]) == 0)
                mask |= 1u << delivery_index(d, net);
        }
    }
    return mask;
}

/* The networks that may carry messages to account: only those the user
 * pinned its contact to, if pinned; else every network (its presence
 * decides, the ones it was seen on first: preferred_cb). */
static uint32_t networks_cb(void *arg, const uint8_t account[32])
{
    struct daemon *d = arg;
    struct contact c;

    if (d->contacts == NULL || contacts_get(d->contacts, account, &c) != MP_OK ||
        !c.networks_pinned)
        return UINT32_MAX;
    return contact_mask(d, &c);
}

/* The networks account's contact was seen on: looked up first. */
static uint32_t preferred_cb(void *arg, const uint8_t account[32])
{
    struct daemon *d = arg;
    struct contact c;

    if (d->contacts == NULL || contacts_get(d->contacts, account, &c) != MP_OK)
        return 0;
    return contact_mask(d, &c);
}

/* Account was seen on network net: its contact entry learns it (a hint). */
static void network_seen_cb(void *arg, const uint8_t account[32], unsigned net)
{
    struct daemon *d = arg;
    struct network *n = net == 0                       ? d->primary
                        : net - 1 < DAEMON_NETWORKS_MAX ? d->nets[net - 1].net
                                                        : NULL;
    bool added = false;

    if (d->contacts == NULL || n == NULL)
        return;
    if (contacts_note_network(d->contacts, account, network_name(n), &added) == MP_OK && added) {
        char who[ADDRESS_TEXT_SIZE];
        address_encode(account, who);
        log_info("daemon", "%s is reachable on network %s", who, network_name(n));
    }
}

/* What contacts say of a message's sender, in delivery's terms. */
static enum delivery_verdict classify_cb(void *arg, const uint8_t account[32],
                                         const uint8_t node_key[32])
{
    struct daemon *d = arg;
    enum contacts_verdict v;
    struct timespec real;

    clock_gettime(CLOCK_REALTIME, &real);
    uint64_t now = (uint64_t)real.tv_sec * 1000u + (uint64_t)real.tv_nsec / 1000000u;
    if (contacts_note_sender(d->contacts, account, node_key, now, &v) != MP_OK)
        return DELIVERY_KEY_CHANGED; /* not stored, not acked: it comes again */
    switch (v) {
    case CONTACTS_VERDICT_DELIVER:
        return DELIVERY_DELIVER;
    case CONTACTS_VERDICT_REQUEST:
        return DELIVERY_REQUEST;
    case CONTACTS_VERDICT_DROP:
        return DELIVERY_DROP;
    default:
        return DELIVERY_KEY_CHANGED;
    }
}

static bool is_contact_cb(void *arg, const uint8_t account[32])
{
    struct daemon *d = arg;
    struct contact c;

    return contacts_get(d->contacts, account, &c) == MP_OK && c.state == CONTACT_STATE_CONTACT;
}

/* Sending to a contact's node: its node key must be the trusted one. A
 * contact with no node key yet trusts this one (its presence record is
 * signed by its account key); a different one is recorded as pending, as
 * for a message from it. Non-contacts are not judged. */
static enum delivery_verdict node_check_cb(void *arg, const uint8_t account[32],
                                           const uint8_t node_key[32])
{
    struct daemon *d = arg;
    struct contact c;

    if (contacts_get(d->contacts, account, &c) != MP_OK ||
        (c.has_node_key && memcmp(c.node_key, node_key, 32) == 0))
        return DELIVERY_DELIVER;
    return classify_cb(arg, account, node_key) == DELIVERY_KEY_CHANGED ? DELIVERY_KEY_CHANGED
                                                                       : DELIVERY_DELIVER;
}

/* An address, or a contact by name or address prefix; sending to a contact
 * whose node key changed is refused until the user trusts the new key. */
static enum mp_err resolve_cb(void *arg, const char *who, bool for_sending, uint8_t pk_out[32],
                              char *why, size_t why_size)
{
    struct daemon *d = arg;
    struct contact c;

    enum mp_err err = MP_OK;
    if (d->last_address[0] != '\0' && strcmp(who, d->last_address) == 0) {
        memcpy(pk_out, d->last_address_pk, 32);
    } else if ((err = address_decode(who, pk_out)) == MP_OK) {
        snprintf(d->last_address, sizeof(d->last_address), "%s", who);
        memcpy(d->last_address_pk, pk_out, 32);
    }
    if (err == MP_OK) {
        err = contacts_get(d->contacts, pk_out, &c);
        if (err == MP_ERR_NOT_FOUND)
            return MP_OK; /* anyone can be written to by address */
    } else {
        err = contacts_find(d->contacts, who, &c);
        if (err == MP_OK)
            memcpy(pk_out, c.account_pk, 32);
        else if (err == MP_ERR_NOT_FOUND)
            snprintf(why, why_size, "no contact or address \"%.64s\"", who);
        else if (err == MP_ERR_CONTACT_AMBIGUOUS)
            snprintf(why, why_size, "\"%.64s\" matches more than one contact", who);
        else
            snprintf(why, why_size, "\"%.70s\" is not an address: %s", who, mp_strerror(err));
    }
    if (err == MP_OK && for_sending && c.has_pending_key) {
        contacts_key_message(&c, why, why_size);
        return MP_ERR_KEY_CHANGED;
    }
    return err;
}

/* ---- networks ---- */

static struct daemon_net *find_net(struct daemon *d, const char *name)
{
    for (size_t i = 0; i < DAEMON_NETWORKS_MAX; i++) {
        if (d->nets[i].net != NULL && strcmp(network_name(d->nets[i].net), name) == 0)
            return &d->nets[i];
    }
    return NULL;
}

static size_t cluster_count(const struct daemon *d)
{
    size_t n = 0;
    for (size_t i = 0; i < DAEMON_NETWORKS_MAX; i++)
        n += d->nets[i].net != NULL && network_is_cluster(d->nets[i].net);
    return n;
}

/* A cluster's settings: the node's config with the cluster's port and the
 * token's bootstrap entries (but our own) as its bootstrap list. */
static void cluster_config(const struct daemon *d, const struct cluster_token *t, uint16_t port,
                           struct config *cfg)
{
    *cfg = d->opts->config;
    cfg->port = port;
    cfg->bootstrap_count = 0;
    for (unsigned i = 0; i < t->bootstrap_count && i < CONFIG_BOOTSTRAP_MAX; i++) {
        char hex[2 * 32 + 1], where[ADDR_TEXT_MAX];
        if (memcmp(t->bootstrap[i].node_key, d->node_pk, 32) == 0)
            continue;
        secure_hex(hex, sizeof(hex), t->bootstrap[i].node_key, 32);
        addr_format(&t->bootstrap[i].addr, where, sizeof(where));
        snprintf(cfg->bootstrap[cfg->bootstrap_count++], CONFIG_BOOTSTRAP_TEXT_MAX, "%s@%s", hex,
                 where);
    }
}

/* Open a network in a free slot: the public one (token NULL) or a cluster. */
static enum mp_err open_net(struct daemon *d, const struct config *cfg,
                            const struct cluster_token *token, struct daemon_net **slot_out,
                            char *why, size_t why_size)
{
    struct daemon_net *slot = NULL;
    struct cluster_keys keys;

    for (size_t i = 0; i < DAEMON_NETWORKS_MAX && slot == NULL; i++)
        slot = d->nets[i].net == NULL ? &d->nets[i] : NULL;
    if (slot == NULL) {
        snprintf(why, why_size, "a node joins at most %d clusters", CLUSTERS_MAX);
        return MP_ERR_TOO_BIG;
    }
    if (token != NULL)
        cluster_derive(token->secret, &keys);
    struct network_config nc = {
        .loop = &d->loop,
        .name = token != NULL ? token->name : NETWORK_PUBLIC,
        .cfg = cfg,
        .keys = token != NULL ? &keys : NULL,
        .store = d->store,
        .node_key = d->node_key,
        .account = d->identity,
        .env = &d->env,
        .message_cb = link_message_cb,
        .link_state_cb = link_state_cb,
        .writable_cb = link_writable_cb,
        .arg = d,
    };
    enum mp_err err = network_open(&nc, &slot->net, why, why_size);
    if (token != NULL)
        cluster_keys_wipe(&keys);
    if (err != MP_OK)
        return err;
    if (token != NULL)
        slot->token = *token;
    if (slot_out != NULL)
        *slot_out = slot;
    return MP_OK;
}

/* The token to hand to a new member: the cluster's secret, our own entries
 * (unless the token already names our key), then the entries we joined by. */
static enum mp_err invite_token(const struct daemon *d, const struct daemon_net *slot,
                                char text[CLUSTER_TOKEN_TEXT_SIZE])
{
    struct cluster_token t;
    struct addr reach[2];
    bool named = false;

    memset(&t, 0, sizeof(t));
    memcpy(t.name, slot->token.name, sizeof(t.name));
    memcpy(t.secret, slot->token.secret, sizeof(t.secret));
    for (unsigned i = 0; i < slot->token.bootstrap_count; i++)
        named = named || memcmp(slot->token.bootstrap[i].node_key, d->node_pk, 32) == 0;
    unsigned n = named ? 0 : network_advertised(slot->net, reach, 2);
    for (unsigned i = 0; i < n; i++) {
        memcpy(t.bootstrap[t.bootstrap_count].node_key, d->node_pk, 32);
        t.bootstrap[t.bootstrap_count++].addr = reach[i];
    }
    for (unsigned i = 0; i < slot->token.bootstrap_count; i++) {
        if (t.bootstrap_count < CLUSTER_BOOTSTRAP_MAX)
            t.bootstrap[t.bootstrap_count++] = slot->token.bootstrap[i];
    }
    enum mp_err err = cluster_token_encode(&t, text, CLUSTER_TOKEN_TEXT_SIZE);
    cluster_token_wipe(&t);
    return err;
}

/* ---- cluster and bootstrap methods ---- */

static bool fail(struct rpc_error *err_out, json_t **data_out, enum rpc_code code, enum mp_err err,
                 const char *message)
{
    rpc_error_set(err_out, NULL, code, "%s", message);
    *data_out = rpc_err_data(err);
    return false;
}

/* "port": absent (0: pick a free one) or 0..65535. */
static bool port_param(json_t *params, uint16_t *port_out, struct rpc_error *err_out,
                       json_t **data_out)
{
    json_t *p = json_object_get(params, "port");
    *port_out = 0;
    if (p == NULL)
        return true;
    if (!json_is_integer(p) || json_integer_value(p) < 0 || json_integer_value(p) > 65535)
        return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, MP_ERR_INVAL,
                    "\"port\" must be a number from 0 to 65535");
    *port_out = (uint16_t)json_integer_value(p);
    return true;
}

static int start_messaging(struct daemon *d);

/* cluster_only and the first cluster joined while running: it becomes the
 * primary network, and messaging starts on it. */
static void promote(struct daemon *d, struct network *net)
{
    size_t count = 0, dcount = 0;
    const struct control_method *ov_methods = overlay_methods(&count);
    const struct control_method *d_methods = delivery_methods(&dcount);

    d->primary = net;
    if (control_add_methods(d->control, ov_methods, count, network_overlay(net)) != MP_OK)
        log_warn("daemon", "peers and dht.* stay unavailable until a restart");
    if (d->opts->config.bootstrap_only || d->contacts == NULL || start_messaging(d) != 0)
        return;
    if (control_add_methods(d->control, d_methods, dcount, d->delivery) != MP_OK)
        log_warn("daemon", "messaging methods stay unavailable until a restart");
    log_info("daemon", "messaging runs on cluster %s", network_name(net));
}

/* Start a cluster from a token and remember it; fills the reply. */
static bool join_token(struct daemon *d, struct cluster_token *t, uint16_t port,
                       const char *saved_text, json_t **result_out, struct rpc_error *err_out,
                       json_t **data_out)
{
    char why[300], invite[CLUSTER_TOKEN_TEXT_SIZE];
    struct config cfg;
    struct daemon_net *slot = NULL;
    struct cluster_keys keys;

    if (strcmp(t->name, NETWORK_PUBLIC) == 0 || find_net(d, t->name) != NULL) {
        snprintf(why, sizeof(why), "a network named \"%s\" is joined already (see `merpati "
                 "cluster list`; `merpati cluster leave %s` first)", t->name, t->name);
        return fail(err_out, data_out, RPC_CODE_FAILED, MP_ERR_EXISTS, why);
    }
    cluster_derive(t->secret, &keys);
    for (size_t i = 0; i < DAEMON_NETWORKS_MAX; i++) {
        if (d->nets[i].net != NULL &&
            strcmp(network_fingerprint(d->nets[i].net), keys.fingerprint) == 0) {
            snprintf(why, sizeof(why), "this cluster (fingerprint %s) is joined already as "
                     "\"%s\"", keys.fingerprint, network_name(d->nets[i].net));
            cluster_keys_wipe(&keys);
            return fail(err_out, data_out, RPC_CODE_FAILED, MP_ERR_EXISTS, why);
        }
    }
    cluster_keys_wipe(&keys);
    if (cluster_count(d) >= CLUSTERS_MAX) {
        snprintf(why, sizeof(why), "a node joins at most %d clusters", CLUSTERS_MAX);
        return fail(err_out, data_out, RPC_CODE_FAILED, MP_ERR_TOO_BIG, why);
    }
    cluster_config(d, t, port, &cfg);
    enum mp_err err = open_net(d, &cfg, t, &slot, why, sizeof(why));
    if (err != MP_OK)
        return fail(err_out, data_out, RPC_CODE_FAILED, err, why);
    if ((err = invite_token(d, slot, invite)) == MP_OK) {
        struct clusters_entry e;
        memset(&e, 0, sizeof(e));
        snprintf(e.name, sizeof(e.name), "%s", t->name);
        e.port = network_port(slot->net); /* the port picked stays the cluster's */
        snprintf(e.token, sizeof(e.token), "%s", saved_text != NULL ? saved_text : invite);
        err = clusters_save(d->store, &e);
        secure_wipe(&e, sizeof(e));
    }
    if (err != MP_OK) {
        network_close(slot->net, NULL, NULL);
        slot->net = NULL;
        cluster_token_wipe(&slot->token);
        snprintf(why, sizeof(why), "cannot remember the cluster: %s", mp_strerror(err));
        return fail(err_out, data_out, RPC_CODE_FAILED, err, why);
    }
    log_info("daemon", "joined cluster %s (fingerprint %s) on port %u", t->name,
             network_fingerprint(slot->net), network_port(slot->net));
    if (d->primary == NULL)
        promote(d, slot->net);
    else
        delivery_net(d, slot->net, true);
    *result_out = json_pack("{s:s, s:s, s:i, s:s, s:i}", "name", t->name, "fingerprint",
                            network_fingerprint(slot->net), "port", (int)network_port(slot->net),
                            "token", invite, "bootstrap", (int)cfg.bootstrap_count);
    secure_wipe(invite, sizeof(invite));
    return true;
}

/* "KEY@ip:port" (another node) or "ip:port" (this node, at an address
 * others reach it by, e.g. behind a port forward) into a token entry. */
static bool parse_entry(const struct daemon *d, const char *text, struct cluster_entry *e)
{
    if (strchr(text, '@') == NULL) {
        memcpy(e->node_key, d->node_pk, 32);
        return addr_parse(text, &e->addr) == MP_OK && e->addr.port != 0;
    }
    return config_parse_node(text, e->node_key, &e->addr) == MP_OK && e->addr.port != 0;
}

static bool method_cluster_create(void *ctx, struct control_call *call, json_t *params,
                                  json_t **result_out, struct rpc_error *err_out, json_t **data_out)
{
    struct daemon *d = ctx;
    struct cluster_token t;
    uint16_t port;
    char why[200];
    (void)call;

    const char *name = json_string_value(json_object_get(params, "name"));
    if (name == NULL || !cluster_name_valid(name) || strcmp(name, NETWORK_PUBLIC) == 0)
        return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, MP_ERR_INVAL,
                    "\"name\" must be 1 to 32 of a-z 0-9 . _ - starting with a letter or digit "
                    "(and not \"public\")");
    if (!port_param(params, &port, err_out, data_out))
        return false;
    json_t *list = json_object_get(params, "bootstrap");
    if (list != NULL && (!json_is_array(list) || json_array_size(list) > CLUSTER_BOOTSTRAP_MAX))
        return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, MP_ERR_INVAL,
                    "\"bootstrap\" must be a list of at most 8 \"ip:port\" or \"KEY@ip:port\"");
    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "%s", name);
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        const char *text = json_string_value(item);
        if (text == NULL || !parse_entry(d, text, &t.bootstrap[t.bootstrap_count])) {
            snprintf(why, sizeof(why), "bootstrap entry \"%.80s\" must be a numeric ip:port (this "
                     "node) or KEY@ip:port (another node)", text != NULL ? text : "?");
            return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, MP_ERR_INVAL, why);
        }
        t.bootstrap_count++;
    }
    cluster_secret_generate(&d->env, t.secret);
    bool ok = join_token(d, &t, port, NULL, result_out, err_out, data_out);
    cluster_token_wipe(&t);
    return ok;
}

static bool method_cluster_join(void *ctx, struct control_call *call, json_t *params,
                                json_t **result_out, struct rpc_error *err_out, json_t **data_out)
{
    struct daemon *d = ctx;
    struct cluster_token t;
    uint16_t port;
    (void)call;

    const char *text = json_string_value(json_object_get(params, "token"));
    enum mp_err err = text != NULL ? cluster_token_decode(text, &t) : MP_ERR_CLUSTER_TOKEN;
    if (err != MP_OK)
        return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, err, mp_strerror(err));
    bool ok = port_param(params, &port, err_out, data_out) &&
              join_token(d, &t, port, text, result_out, err_out, data_out);
    cluster_token_wipe(&t);
    return ok;
}

static bool method_cluster_list(void *ctx, struct control_call *call, json_t *params,
                                json_t **result_out, struct rpc_error *err_out, json_t **data_out)
{
    struct daemon *d = ctx;
    char invite[CLUSTER_TOKEN_TEXT_SIZE];
    (void)call;
    (void)params;
    (void)err_out;
    (void)data_out;

    json_t *list = json_array();
    for (size_t i = 0; i < DAEMON_NETWORKS_MAX; i++) {
        struct daemon_net *slot = &d->nets[i];
        if (slot->net == NULL || !network_is_cluster(slot->net))
            continue;
        struct overlay *ov = network_overlay(slot->net);
        json_t *c = json_pack("{s:s, s:s, s:i, s:i, s:b}", "name", network_name(slot->net),
                              "fingerprint", network_fingerprint(slot->net), "port",
                              (int)network_port(slot->net), "table_size",
                              ov != NULL ? (int)overlay_table_size(ov) : 0, "primary",
                              slot->net == d->primary);
        if (invite_token(d, slot, invite) == MP_OK)
            json_object_set_new(c, "token", json_string(invite));
        json_array_append_new(list, c);
    }
    secure_wipe(invite, sizeof(invite));
    *result_out = json_pack("{s:o, s:b}", "clusters", list, "cluster_only",
                            d->opts->config.cluster_only);
    return true;
}

static bool method_cluster_leave(void *ctx, struct control_call *call, json_t *params,
                                 json_t **result_out, struct rpc_error *err_out, json_t **data_out)
{
    struct daemon *d = ctx;
    char why[200];
    (void)call;

    const char *name = json_string_value(json_object_get(params, "name"));
    struct daemon_net *slot = name != NULL ? find_net(d, name) : NULL;
    if (slot == NULL || !network_is_cluster(slot->net)) {
        snprintf(why, sizeof(why), "no cluster \"%.40s\" joined (see `merpati cluster list`)",
                 name != NULL ? name : "");
        return fail(err_out, data_out, RPC_CODE_FAILED, MP_ERR_CLUSTER_UNKNOWN, why);
    }
    if (network_overlay(slot->net) != NULL)
        overlay_stop_saving(network_overlay(slot->net));
    enum mp_err err = clusters_remove(d->store, name);
    if (err != MP_OK && err != MP_ERR_NOT_FOUND) {
        snprintf(why, sizeof(why), "cannot forget the cluster: %s", mp_strerror(err));
        return fail(err_out, data_out, RPC_CODE_FAILED, err, why);
    }
    *result_out = json_pack("{s:s, s:b}", "left", name, "restart_needed", slot->net == d->primary);
    if (slot->net == d->primary) {
        /* Delivery holds this network's overlay and links: it stops with the
         * node, and the cluster is not joined at the next start. */
        log_warn("daemon", "cluster %s forgotten; messaging runs on it until the node restarts",
                 name);
        return true;
    }
    log_info("daemon", "left cluster %s", name);
    delivery_net(d, slot->net, false);
    network_close(slot->net, NULL, NULL);
    slot->net = NULL;
    cluster_token_wipe(&slot->token);
    return true;
}

static bool method_bootstrap_list(void *ctx, struct control_call *call, json_t *params,
                                  json_t **result_out, struct rpc_error *err_out, json_t **data_out)
{
    struct daemon *d = ctx;
    (void)call;
    (void)params;
    (void)err_out;
    (void)data_out;

    json_t *list = json_array();
    for (unsigned i = 0; i < d->public_cfg.bootstrap_count; i++)
        json_array_append_new(list, json_string(d->public_cfg.bootstrap[i]));
    *result_out = json_pack("{s:s, s:o, s:s}", "network", NETWORK_PUBLIC, "entries", list,
                            "source", d->bootstrap_stored ? "store" : "config");
    return true;
}

static bool method_bootstrap_add(void *ctx, struct control_call *call, json_t *params,
                                 json_t **result_out, struct rpc_error *err_out, json_t **data_out)
{
    struct daemon *d = ctx;
    char why[300];
    (void)call;

    const char *entry = json_string_value(json_object_get(params, "entry"));
    if (entry == NULL)
        return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, MP_ERR_INVAL,
                    "\"entry\" must be \"<node key>@<ip>:<port>\"");
    if (config_check_bootstrap(entry, why, sizeof(why)) != MP_OK)
        return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, MP_ERR_INVAL, why);
    struct config cfg = d->public_cfg;
    bool present = false;
    for (unsigned i = 0; i < cfg.bootstrap_count; i++)
        present = present || strcasecmp(cfg.bootstrap[i], entry) == 0;
    enum mp_err err = present ? MP_OK : config_add_bootstrap(&cfg, entry, why, sizeof(why));
    if (err != MP_OK)
        return fail(err_out, data_out, RPC_CODE_FAILED, err, why);
    if ((err = clusters_bootstrap_save(d->store, &cfg)) != MP_OK) {
        snprintf(why, sizeof(why), "cannot store the bootstrap list: %s", mp_strerror(err));
        return fail(err_out, data_out, RPC_CODE_FAILED, err, why);
    }
    d->public_cfg = cfg;
    d->bootstrap_stored = true;
    struct daemon_net *pub = find_net(d, NETWORK_PUBLIC);
    bool pinged = false;
    if (pub != NULL && network_overlay(pub->net) != NULL)
        pinged = overlay_add_bootstrap(network_overlay(pub->net), entry) == MP_OK;
    *result_out = json_pack("{s:s, s:b, s:b, s:i}", "added", entry, "already", present, "pinged",
                            pinged, "count", (int)cfg.bootstrap_count);
    return true;
}

static bool method_bootstrap_rm(void *ctx, struct control_call *call, json_t *params,
                                json_t **result_out, struct rpc_error *err_out, json_t **data_out)
{
    struct daemon *d = ctx;
    char why[200];
    (void)call;

    const char *where = json_string_value(json_object_get(params, "address"));
    if (where == NULL)
        return fail(err_out, data_out, RPC_CODE_INVALID_PARAMS, MP_ERR_INVAL,
                    "\"address\" must be \"<ip>:<port>\" or a whole entry");
    struct config cfg = d->public_cfg;
    unsigned kept = 0, removed = 0;
    for (unsigned i = 0; i < cfg.bootstrap_count; i++) {
        const char *at = strchr(cfg.bootstrap[i], '@');
        bool match = strcasecmp(cfg.bootstrap[i], where) == 0;
        if (match || (at != NULL && strcmp(at + 1, where) == 0)) {
            removed++;
            continue;
        }
        if (kept != i)
            memcpy(cfg.bootstrap[kept], cfg.bootstrap[i], CONFIG_BOOTSTRAP_TEXT_MAX);
        kept++;
    }
    cfg.bootstrap_count = kept;
    if (removed == 0) {
        snprintf(why, sizeof(why), "no bootstrap entry at %.80s (see `merpati bootstrap list`)",
                 where);
        return fail(err_out, data_out, RPC_CODE_FAILED, MP_ERR_NOT_FOUND, why);
    }
    enum mp_err err = clusters_bootstrap_save(d->store, &cfg);
    if (err != MP_OK) {
        snprintf(why, sizeof(why), "cannot store the bootstrap list: %s", mp_strerror(err));
        return fail(err_out, data_out, RPC_CODE_FAILED, err, why);
    }
    d->public_cfg = cfg;
    d->bootstrap_stored = true;
    *result_out = json_pack("{s:i, s:i}", "removed", (int)removed, "count", (int)kept);
    return true;
}

static bool method_peers(void *ctx, struct control_call *call, json_t *params,
                         json_t **result_out, struct rpc_error *err_out, json_t **data_out)
{
    struct daemon *d = ctx;
    char why[160];
    (void)call;

    const char *name = json_string_value(json_object_get(params, "network"));
    struct daemon_net *slot = name != NULL ? find_net(d, name) : NULL;
    struct network *net = name != NULL ? (slot != NULL ? slot->net : NULL) : d->primary;
    if (net == NULL || network_overlay(net) == NULL) {
        snprintf(why, sizeof(why), "no network \"%.40s\" (see `merpati status`)",
                 name != NULL ? name : "");
        return fail(err_out, data_out, RPC_CODE_FAILED, MP_ERR_CLUSTER_UNKNOWN, why);
    }
    *result_out = overlay_peers(network_overlay(net));
    return true;
}

static const char *const peers_params[] = {"network", NULL};
static const char *const create_params[] = {"name", "port", "bootstrap", NULL};
static const char *const join_params[] = {"token", "port", NULL};
static const char *const leave_params[] = {"name", NULL};
static const char *const add_params[] = {"entry", NULL};
static const char *const rm_params[] = {"address", NULL};

static const struct control_method methods[] = {
    {"status", NULL, method_status},
    {"id", NULL, method_id},
    {"shutdown", NULL, method_shutdown},
    {"peers", peers_params, method_peers},
    {"cluster.create", create_params, method_cluster_create},
    {"cluster.join", join_params, method_cluster_join},
    {"cluster.list", NULL, method_cluster_list},
    {"cluster.leave", leave_params, method_cluster_leave},
    {"bootstrap.list", NULL, method_bootstrap_list},
    {"bootstrap.add", add_params, method_bootstrap_add},
    {"bootstrap.rm", rm_params, method_bootstrap_rm},
};

/* ---- start ---- */

static int start_messaging(struct daemon *d)
{
    enum mp_err err;
    uint64_t now = sysenv_unix_ms();

    if ((err = sessions_new(&d->env, d->store, d->identity, now, &d->sessions)) != MP_OK)
        goto fail;
    /* Mailboxes run on the primary network (docs/PROTOCOL.md, "Mailboxes"). */
    struct mailbox_config mc = {
        .loop = &d->loop,
        .env = &d->env,
        .store = d->store,
        .links = network_links(d->primary),
        .overlay = network_overlay(d->primary),
        .account = d->identity,
        .limits = d->opts->config.mailbox,
        .mail_cb = mail_cb,
        .mail_arg = d,
    };
    if ((err = mailbox_new(&mc, &d->mailbox)) != MP_OK)
        goto fail;
    struct delivery_config dc = {
        .loop = &d->loop,
        .env = &d->env,
        .store = d->store,
        .sessions = d->sessions,
        .overlay = network_overlay(d->primary),
        .links = network_links(d->primary),
        .mailbox = d->mailbox,
        .account = d->identity,
        .classify_cb = classify_cb,
        .is_contact_cb = is_contact_cb,
        .resolve_cb = resolve_cb,
        .node_check_cb = node_check_cb,
        .networks_cb = networks_cb,
        .preferred_cb = preferred_cb,
        .network_seen_cb = network_seen_cb,
        .classify_arg = d,
    };
    dc.addr_count = network_advertised(d->primary, dc.addrs, MSG_PRESENCE_ADDRS_MAX);
    if ((err = delivery_new(&dc, &d->delivery)) != MP_OK)
        goto fail;
    for (size_t i = 0; i < DAEMON_NETWORKS_MAX; i++) {
        if (d->nets[i].net != NULL && d->nets[i].net != d->primary)
            delivery_net(d, d->nets[i].net, true);
    }
    return 0;
fail:
    print_error("cannot start messaging", mp_strerror(err));
    return EX_SOFTWARE;
}

/* The public network (unless cluster_only), then every remembered cluster.
 * A cluster that cannot start is logged and skipped: the others still run. */
static int open_networks(struct daemon *d)
{
    struct clusters_entry saved[CLUSTERS_MAX];
    size_t count = 0;
    char why[300];
    enum mp_err err;

    d->public_cfg = d->opts->config;
    if ((err = clusters_bootstrap_load(d->store, &d->public_cfg, &d->bootstrap_stored)) != MP_OK)
        log_warn("daemon", "cannot read the stored bootstrap list: %s", mp_strerror(err));
    if (!d->opts->config.cluster_only) {
        struct daemon_net *slot = NULL;
        if ((err = open_net(d, &d->public_cfg, NULL, &slot, why, sizeof(why))) != MP_OK) {
            print_error(why, err == MP_ERR_BUSY
                                 ? "another program uses that port: set port in the config or "
                                   "pass --port (0 picks a free one)"
                                 : "check `listen` in the config");
            return EX_UNAVAILABLE;
        }
        d->primary = slot->net;
    }
    if ((err = clusters_load(d->store, saved, CLUSTERS_MAX, &count)) != MP_OK)
        log_warn("daemon", "cannot read the joined clusters: %s", mp_strerror(err));
    for (size_t i = 0; i < count; i++) {
        struct cluster_token t;
        struct config cfg;
        struct daemon_net *slot = NULL;
        if ((err = cluster_token_decode(saved[i].token, &t)) != MP_OK ||
            strcmp(t.name, saved[i].name) != 0) {
            log_error("daemon", "cluster %s: its stored token does not parse (%s); skipped",
                      saved[i].name, mp_strerror(err));
            continue;
        }
        cluster_config(d, &t, saved[i].port, &cfg);
        if ((err = open_net(d, &cfg, &t, &slot, why, sizeof(why))) != MP_OK)
            log_error("daemon", "cluster %s not joined: %s", saved[i].name, why);
        else if (d->primary == NULL)
            d->primary = slot->net;
        cluster_token_wipe(&t);
    }
    secure_wipe(saved, sizeof(saved));
    if (d->primary == NULL)
        log_warn("daemon", "cluster_only is set and no cluster is joined: the node is on no "
                           "network (`merpati cluster join TOKEN` or `cluster create NAME`)");
    return 0;
}

static int start(struct daemon *d)
{
    char what[PATHS_MAX + 128];
    uint8_t sk[32];
    enum mp_err err;
    int rc;

    if ((rc = open_identity(d)) != 0 || (rc = open_node_key(d)) != 0 ||
        (rc = open_store(d)) != 0)
        return rc;
    if ((err = sysenv_init(&d->env)) != MP_OK ||
        (err = identity_x25519(d->node_key, sk, d->node_pk)) != MP_OK) {
        print_error("cannot set up the node key", mp_strerror(err));
        return EX_SOFTWARE;
    }
    secure_wipe(sk, sizeof(sk));
    if ((rc = open_networks(d)) != 0)
        return rc;

    bool messaging = !d->opts->config.bootstrap_only && d->primary != NULL;
    if (!d->opts->config.bootstrap_only) {
        err = contacts_open(d->store, identity_public_key(d->identity), &d->contacts);
        if (err != MP_OK) {
            snprintf(what, sizeof(what), "cannot read the contacts: %s", mp_strerror(err));
            print_error(what, NULL);
            return EX_SOFTWARE;
        }
    }
    if (messaging && (rc = start_messaging(d)) != 0)
        return rc;
    if (d->opts->config.bootstrap_only)
        log_info("daemon", "bootstrap-only: serving the DHT, no presence and no messages");

    /* The control socket last: a client that reaches it finds everything up. */
    size_t count = 0, dcount = 0, ct_count = 0;
    const struct control_method *ov_methods = overlay_methods(&count);
    const struct control_method *d_methods = delivery_methods(&dcount);
    const struct control_method *ct_methods = contacts_api_methods(&ct_count);
    err = control_open(&d->loop, d->opts->control_path, &d->control);
    if (err == MP_OK)
        err = control_add_methods(d->control, methods, sizeof(methods) / sizeof(methods[0]), d);
    if (err == MP_OK && d->primary != NULL)
        err = control_add_methods(d->control, ov_methods, count, network_overlay(d->primary));
    if (err == MP_OK && d->delivery != NULL)
        err = control_add_methods(d->control, d_methods, dcount, d->delivery);
    if (err == MP_OK && d->contacts != NULL)
        err = control_add_methods(d->control, ct_methods, ct_count, d->contacts);
    if (err != MP_OK) {
        snprintf(what, sizeof(what), "cannot open the control socket %s: %s",
                 d->opts->control_path, mp_strerror(err));
        print_error(what, err == MP_ERR_TOO_BIG  ? "set control_socket in the config to a path "
                                                   "shorter than 108 bytes"
                          : err == MP_ERR_BUSY   ? "another merpati uses that socket: give each "
                                                   "node its own control_socket"
                          : err == MP_ERR_EXISTS ? "move that file away or set control_socket"
                                                 : NULL);
        return EX_CANTCREAT;
    }
    log_info("daemon", "control socket at %s", d->opts->control_path);


    if (watch_signal(d, &d->sigint, SIGINT) != 0 || watch_signal(d, &d->sigterm, SIGTERM) != 0) {
        print_error("cannot install signal handlers", NULL);
        return EX_OSERR;
    }
    watch_memory(d);
    d->started_ms = uv_now(&d->loop);
    log_info("daemon", "node %s ready", d->address);
    return 0;
}

int daemon_run(const struct daemon_options *opts)
{
    struct daemon *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        print_error("out of memory", NULL);
        return EX_OSERR;
    }
    d->opts = opts;
    log_set_level(opts->config.log_level);
    umask(0077); /* everything the node creates is private to its user */
    signal(SIGPIPE, SIG_IGN);
    if (secure_init() != MP_OK || uv_loop_init(&d->loop) != 0) {
        print_error("cannot initialize libsodium or libuv", NULL);
        free(d);
        return EX_OSERR;
    }

    int rc = start(d);
    if (rc != 0)
        daemon_stop(d, "start-up failed");
    uv_run(&d->loop, UV_RUN_DEFAULT);

    sessions_free(d->sessions);
    contacts_free(d->contacts);
    store_close(d->store);
    identity_free(d->identity);
    identity_free(d->node_key);
    int loop_rc = uv_loop_close(&d->loop);
    if (loop_rc != 0) {
        log_error("daemon", "handles left open at exit: %s", uv_strerror(loop_rc));
        rc = rc != 0 ? rc : EX_SOFTWARE;
    } else if (rc == 0) {
        log_info("daemon", "stopped cleanly");
    }
    secure_wipe(d, sizeof(*d));
    free(d);
    return rc;
}
