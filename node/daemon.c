#include "node/daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "crypto/address.h"
#include "crypto/identity.h"
#include "crypto/noise.h"
#include "crypto/secure.h"
#include "node/contacts.h"
#include "node/contacts_api.h"
#include "node/control.h"
#include "node/delivery.h"
#include "node/keyfile.h"
#include "node/mailbox.h"
#include "node/link.h"
#include "node/overlay.h"
#include "node/sessions.h"
#include "node/store.h"
#include "node/sysenv.h"

/* How many times to look for a port free on both UDP and TCP when port is 0. */
#define DAEMON_PORT_TRIES 16
/* Bytes of a UDP datagram we read; larger ones are truncated and dropped. */
#define DAEMON_DATAGRAM_MAX 2048

struct daemon {
    uv_loop_t loop;
    uv_udp_t udp;
    uv_tcp_t tcp;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    struct control *control;
    /* Node-to-node links (node/link.h). NULL until the daemon has an X25519
     * link key pair to create them with; meanwhile TCP is refused. */
    struct links *links;
    struct store *store;
    struct identity *identity;  /* the account */
    struct identity *node_key;  /* this node's key in the DHT and on links */
    struct overlay *overlay;
    struct sessions *sessions;
    struct delivery *delivery;
    struct mailbox *mailbox;
    struct env env; /* the real clock and randomness, for links and sessions */
    struct contacts *contacts;
    const struct daemon_options *opts;
    char address[ADDRESS_TEXT_SIZE];
    uint16_t port;
    uint64_t started_ms;
    bool stopping;
    /* Traffic that nothing handles yet; counted so status shows it. */
    unsigned long udp_dropped;
    unsigned long tcp_refused;
    uint8_t datagram[DAEMON_DATAGRAM_MAX];
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
    /* The overlay first: it fails the DHT lookups delivery still waits for. */
    overlay_close(d->overlay, NULL, NULL);
    d->overlay = NULL;
    delivery_close(d->delivery);
    d->delivery = NULL;
    mailbox_close(d->mailbox);
    d->mailbox = NULL;
    d->delivery = NULL;
    control_close(d->control, NULL, NULL);
    d->control = NULL;
    links_close(d->links, NULL, NULL);
    d->links = NULL;
    close_quietly((uv_handle_t *)&d->udp);
    close_quietly((uv_handle_t *)&d->tcp);
    close_quietly((uv_handle_t *)&d->sigint);
    close_quietly((uv_handle_t *)&d->sigterm);
}

static void signal_cb(uv_signal_t *handle, int signum)
{
    daemon_stop(handle->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void udp_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *out)
{
    struct daemon *d = handle->data;
    (void)suggested;
    *out = uv_buf_init((char *)d->datagram, sizeof(d->datagram));
}

static void udp_recv_cb(uv_udp_t *udp, ssize_t nread, const uv_buf_t *b,
                        const struct sockaddr *from, unsigned flags)
{
    struct daemon *d = udp->data;

    if (nread <= 0 || from == NULL)
        return;
    if ((flags & UV_UDP_PARTIAL) || d->overlay == NULL)
        d->udp_dropped++; /* larger than any DHT datagram, or not started yet */
    else
        overlay_on_datagram(d->overlay, from, (const uint8_t *)b->base, (size_t)nread);
}

static void refused_closed_cb(uv_handle_t *handle)
{
    free(handle);
}

static void tcp_connection_cb(uv_stream_t *server, int status)
{
    struct daemon *d = server->data;

    if (status < 0)
        return;
    if (d->links != NULL) { /* a failed handshake is counted in the links' `refused` */
        links_accept(d->links, server);
        return;
    }
    uv_tcp_t *conn = malloc(sizeof(*conn));
    if (conn == NULL || uv_tcp_init(&d->loop, conn) != 0) {
        free(conn);
        return;
    }
    conn->data = d;
    if (uv_accept(server, (uv_stream_t *)conn) == 0)
        d->tcp_refused++; /* no link protocol yet: close at once */
    uv_close((uv_handle_t *)conn, refused_closed_cb);
}

static int bind_pair(struct daemon *d, const struct sockaddr *sa, uint16_t port)
{
    struct sockaddr_storage ss;
    memcpy(&ss, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in));
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);

    int rc = uv_udp_bind(&d->udp, (struct sockaddr *)&ss, 0);
    if (rc != 0)
        return rc;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    if ((rc = uv_udp_getsockname(&d->udp, (struct sockaddr *)&bound, &len)) != 0)
        return rc;
    uint16_t udp_port = ntohs(bound.ss_family == AF_INET6
                                  ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                  : ((struct sockaddr_in *)&bound)->sin_port);
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(udp_port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons(udp_port);
    if ((rc = uv_tcp_bind(&d->tcp, (struct sockaddr *)&ss, 0)) != 0)
        return rc;
    if ((rc = uv_listen((uv_stream_t *)&d->tcp, 128, tcp_connection_cb)) != 0)
        return rc;
    d->port = udp_port;
    return 0;
}

/* Bind UDP and TCP on the same port. For port 0 the kernel picks the UDP port
 * and TCP may find it taken, so try again with fresh sockets a few times. */
static int open_network(struct daemon *d)
{
    const struct config *cfg = &d->opts->config;
    struct sockaddr_storage sa;
    int rc;

    if (uv_ip4_addr(cfg->listen, 0, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(cfg->listen, 0, (struct sockaddr_in6 *)&sa) != 0)
        return UV_EINVAL;
    for (int attempt = 0;; attempt++) {
        if ((rc = uv_udp_init(&d->loop, &d->udp)) != 0)
            return rc;
        d->udp.data = d;
        if ((rc = uv_tcp_init(&d->loop, &d->tcp)) != 0)
            return rc;
        d->tcp.data = d;
        rc = bind_pair(d, (struct sockaddr *)&sa, cfg->port);
        if (rc == 0 || cfg->port != 0 || rc != UV_EADDRINUSE || attempt + 1 >= DAEMON_PORT_TRIES)
            break;
        uv_close((uv_handle_t *)&d->udp, NULL);
        uv_close((uv_handle_t *)&d->tcp, NULL);
        uv_run(&d->loop, UV_RUN_NOWAIT); /* let the closes finish before reusing the handles */
    }
    if (rc != 0)
        return rc;
    return uv_udp_recv_start(&d->udp, udp_alloc_cb, udp_recv_cb);
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
    struct links_stats ls = {0};
    if (d->links != NULL)
        links_stats(d->links, &ls);
    *result_out = json_pack("{s:s, s:s, s:I, s:I, s:{s:I, s:I}, s:s, s:s, s:{s:I, s:I}}",
                            "address", d->address, "version", MERPATI_VERSION, "pid",
                            (json_int_t)getpid(), "uptime_s", (json_int_t)(uptime_ms / 1000),
                            "ports", "udp", (json_int_t)d->port, "tcp", (json_int_t)d->port,
                            "data_dir", d->opts->data_dir, "control_socket",
                            d->opts->control_path, "dropped", "udp_unhandled",
                            (json_int_t)d->udp_dropped, "tcp_unhandled",
                            (json_int_t)(d->tcp_refused + ls.refused));
    if (*result_out != NULL && d->overlay != NULL)
        json_object_set_new(*result_out, "dht", overlay_status(d->overlay));
    if (*result_out != NULL && d->delivery != NULL)
        json_object_set_new(*result_out, "messages", delivery_status(d->delivery));
    if (*result_out != NULL && d->mailbox != NULL)
        json_object_set_new(*result_out, "mailbox", mailbox_status(d->mailbox));
    if (*result_out != NULL && d->links != NULL)
        json_object_set_new(*result_out, "links",
                            json_pack("{s:i, s:I, s:I, s:I, s:I}", "up", (int)ls.links_up, "dials",
                                      (json_int_t)ls.dials, "accepted", (json_int_t)ls.accepted,
                                      "msgs_out", (json_int_t)ls.msgs_out, "msgs_in",
                                      (json_int_t)ls.msgs_in));
    return true;
}

static bool method_id(void *ctx, struct control_call *call, json_t *params, json_t **result_out, struct rpc_error *err_out,
                      json_t **data_out)
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

static bool method_shutdown(void *ctx, struct control_call *call, json_t *params, json_t **result_out,
                            struct rpc_error *err_out, json_t **data_out)
{
    (void)call;
    (void)params;
    (void)err_out;
    (void)data_out;
    *result_out = json_pack("{s:b}", "stopping", 1);
    daemon_stop(ctx, "shutdown requested over the control API");
    return true;
}

static const struct control_method methods[] = {
    {"status", NULL, method_status},
    {"id", NULL, method_id},
    {"shutdown", NULL, method_shutdown},
};

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
        if ((err = sysenv_init(&env)) == MP_OK && (err = identity_generate(&env, &d->node_key)) == MP_OK)
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

static void link_message_cb(void *arg, const uint8_t peer_pk[LINK_KEY_BYTES], const uint8_t *msg,
                            size_t len)
{
    struct daemon *d = arg;
    if (d->delivery != NULL)
        delivery_on_link_message(d->delivery, peer_pk, msg, len);
}

static void link_state_cb(void *arg, const uint8_t peer_pk[LINK_KEY_BYTES], bool up)
{
    struct daemon *d = arg;
    if (d->delivery != NULL)
        delivery_on_link_state(d->delivery, peer_pk, up);
}

static void link_writable_cb(void *arg, const uint8_t peer_pk[LINK_KEY_BYTES])
{
    struct daemon *d = arg;
    if (d->delivery != NULL)
        delivery_on_writable(d->delivery, peer_pk);
}

/* Mail fetched from one of our mailboxes. */
static void mail_cb(void *arg, const uint8_t node_key[32], const struct buf *envelope)
{
    struct daemon *d = arg;
    if (d->delivery != NULL)
        delivery_on_mail(d->delivery, node_key, envelope);
}

/* What contacts say of a message's sender, in delivery's terms. */
static enum delivery_verdict classify_cb(void *arg, const uint8_t account[32],
                                         const uint8_t node_key[32])
{
    struct daemon *d = arg;
    enum contacts_verdict v;
    uint64_t now = sysenv_unix_ms();

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

    enum mp_err err = address_decode(who, pk_out);
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

/* The addresses other nodes can reach us at: the listen address, or for a
 * wildcard listen the interfaces' addresses (loopback only if there is
 * nothing else). */
static unsigned advertised(struct daemon *d, struct addr *out, unsigned max)
{
    struct addr listen;
    unsigned n = 0;

    if (addr_from_ip(d->opts->config.listen, d->port, &listen) == MP_OK) {
        static const uint8_t zero[16];
        if (memcmp(listen.ip, zero, 16) != 0) {
            out[0] = listen;
            return 1;
        }
    }
    uv_interface_address_t *ifs = NULL;
    int count = 0;
    if (uv_interface_addresses(&ifs, &count) == 0) {
        for (int pass = 0; pass < 2 && n == 0; pass++) {
            for (int i = 0; i < count && n < max; i++) {
                char ip[64];
                struct addr a;
                bool loop = ifs[i].is_internal != 0;
                if (loop != (pass == 1))
                    continue;
                if (ifs[i].address.address4.sin_family == AF_INET)
                    uv_ip4_name(&ifs[i].address.address4, ip, sizeof(ip));
                else
                    uv_ip6_name(&ifs[i].address.address6, ip, sizeof(ip));
                if ((listen.family == ADDR_FAMILY_IPV4) !=
                    (ifs[i].address.address4.sin_family == AF_INET))
                    continue; /* a socket bound to 0.0.0.0 is not reachable over IPv6 */
                if (addr_from_ip(ip, d->port, &a) == MP_OK)
                    out[n++] = a;
            }
        }
        uv_free_interface_addresses(ifs, count);
    }
    return n;
}

static int start_messaging(struct daemon *d)
{
    uint8_t sk[LINK_KEY_BYTES], pk[LINK_KEY_BYTES];
    static const uint8_t network_id[] = "public";
    enum mp_err err;

    if ((err = sysenv_init(&d->env)) != MP_OK ||
        (err = identity_x25519(d->node_key, sk, pk)) != MP_OK)
        goto fail;
    struct links_config lc = {
        .env = &d->env,
        .static_secret = sk,
        .static_public = pk,
        .version = NOISE_PROTOCOL_VERSION,
        .network_id = network_id,
        .network_id_len = sizeof(network_id) - 1,
        .message_cb = link_message_cb,
        .link_state_cb = link_state_cb,
        .writable_cb = link_writable_cb,
        .arg = d,
    };
    err = links_new(&d->loop, &lc, &d->links);
    secure_wipe(sk, sizeof(sk));
    if (err != MP_OK)
        goto fail;
    uint64_t now = sysenv_unix_ms();
    if ((err = sessions_new(&d->env, d->store, d->identity, now, &d->sessions)) != MP_OK)
        goto fail;
    struct mailbox_config mc = {
        .loop = &d->loop,
        .env = &d->env,
        .store = d->store,
        .links = d->links,
        .overlay = d->overlay,
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
        .overlay = d->overlay,
        .links = d->links,
        .mailbox = d->mailbox,
        .account = d->identity,
        .classify_cb = classify_cb,
        .resolve_cb = resolve_cb,
        .node_check_cb = node_check_cb,
        .classify_arg = d,
    };
    dc.addr_count = advertised(d, dc.addrs, MSG_PRESENCE_ADDRS_MAX);
    if ((err = delivery_new(&dc, &d->delivery)) != MP_OK)
        goto fail;
    return 0;
fail:
    print_error("cannot start messaging", mp_strerror(err));
    return EX_SOFTWARE;
}

static int start(struct daemon *d)
{
    char what[PATHS_MAX + 128];
    enum mp_err err;
    int rc;

    if ((rc = open_identity(d)) != 0 || (rc = open_node_key(d)) != 0 ||
        (rc = open_store(d)) != 0)
        return rc;
    if ((rc = open_network(d)) != 0) {
        snprintf(what, sizeof(what), "cannot listen on %s port %u: %s", d->opts->config.listen,
                 d->opts->config.port, uv_strerror(rc));
        print_error(what, rc == UV_EADDRINUSE
                              ? "another program uses that port: set port in the config or "
                                "pass --port (0 picks a free one)"
                              : "check `listen` in the config");
        return EX_UNAVAILABLE;
    }
    log_info("daemon", "listening on %s: UDP port %u, TCP port %u", d->opts->config.listen,
             d->port, d->port);

    struct addr reach[MSG_PRESENCE_ADDRS_MAX];
    unsigned reach_count = advertised(d, reach, MSG_PRESENCE_ADDRS_MAX);
    err = overlay_new(&d->loop, &d->udp, d->store, d->node_key, d->identity, &d->opts->config,
                      reach_count > 0 ? &reach[0] : NULL, &d->overlay);
    if (err != MP_OK) {
        snprintf(what, sizeof(what), "cannot start the DHT: %s", mp_strerror(err));
        print_error(what, NULL);
        return EX_SOFTWARE;
    }

    if ((err = contacts_open(d->store, identity_public_key(d->identity), &d->contacts)) != MP_OK) {
        snprintf(what, sizeof(what), "cannot read the contacts: %s", mp_strerror(err));
        print_error(what, NULL);
        return EX_SOFTWARE;
    }
    if ((rc = start_messaging(d)) != 0)
        return rc;

    /* The control socket last: a client that reaches it finds everything up. */
    size_t count = 0, dcount = 0, ct_count = 0;
    const struct control_method *ov_methods = overlay_methods(&count);
    const struct control_method *d_methods = delivery_methods(&dcount);
    const struct control_method *ct_methods = contacts_api_methods(&ct_count);
    err = control_open(&d->loop, d->opts->control_path, &d->control);
    if (err == MP_OK)
        err = control_add_methods(d->control, methods, sizeof(methods) / sizeof(methods[0]), d);
    if (err == MP_OK)
        err = control_add_methods(d->control, ov_methods, count, d->overlay);
    if (err == MP_OK)
        err = control_add_methods(d->control, d_methods, dcount, d->delivery);
    if (err == MP_OK)
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
