#include "node/network.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "crypto/noise.h"
#include "crypto/secure.h"

#define MOD "network"

/* How many times to look for a port free on both UDP and TCP when port is 0. */
#define NETWORK_PORT_TRIES 16

struct network {
    uv_loop_t *loop;
    uv_udp_t udp; /* udp.data = this once initialized */
    uv_tcp_t tcp;
    struct config cfg;
    char name[OVERLAY_NAME_MAX];
    char fingerprint[CLUSTER_FINGERPRINT_SIZE];
    bool cluster;
    uint16_t port;
    struct overlay *overlay;
    struct links *links;
    void (*message_cb)(void *, struct network *, const uint8_t *, const uint8_t *, size_t);
    void (*link_state_cb)(void *, struct network *, const uint8_t *, bool);
    void (*writable_cb)(void *, struct network *, const uint8_t *);
    void *arg;
    unsigned long udp_dropped;
    unsigned long tcp_refused;
    unsigned pending; /* closes started and not yet finished */
    bool shutting;    /* network_close was called: free at the last close */
    void (*closed_cb)(void *arg);
    void *closed_arg;
    uint8_t datagram[NETWORK_DATAGRAM_MAX];
};

/* ---- sockets ---- */

static void udp_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *out)
{
    struct network *net = handle->data;
    (void)suggested;
    *out = uv_buf_init((char *)net->datagram, sizeof(net->datagram));
}

static void udp_recv_cb(uv_udp_t *udp, ssize_t nread, const uv_buf_t *b,
                        const struct sockaddr *from, unsigned flags)
{
    struct network *net = udp->data;

    if (nread <= 0 || from == NULL)
        return;
    if ((flags & UV_UDP_PARTIAL) || net->overlay == NULL)
        net->udp_dropped++; /* larger than any DHT datagram, or closing */
    else
        overlay_on_datagram(net->overlay, from, (const uint8_t *)b->base, (size_t)nread);
}

static void refused_closed_cb(uv_handle_t *handle)
{
    free(handle);
}

static void tcp_connection_cb(uv_stream_t *server, int status)
{
    struct network *net = server->data;

    if (status < 0)
        return;
    if (net->links != NULL) { /* a failed handshake is counted in the links' `refused` */
        links_accept(net->links, server);
        return;
    }
    uv_tcp_t *conn = malloc(sizeof(*conn));
    if (conn == NULL || uv_tcp_init(net->loop, conn) != 0) {
        free(conn);
        return;
    }
    conn->data = net;
    if (uv_accept(server, (uv_stream_t *)conn) == 0)
        net->tcp_refused++;
    uv_close((uv_handle_t *)conn, refused_closed_cb);
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
}

static int bind_pair(struct network *net, const struct sockaddr_storage *sa, uint16_t port)
{
    struct sockaddr_storage ss = *sa, bound;
    int len = sizeof(bound);
    int rc;

    set_port(&ss, port);
    if ((rc = uv_udp_bind(&net->udp, (struct sockaddr *)&ss, 0)) != 0 ||
        (rc = uv_udp_getsockname(&net->udp, (struct sockaddr *)&bound, &len)) != 0)
        return rc;
    uint16_t udp_port =
        ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                          : ((struct sockaddr_in *)&bound)->sin_port);
    set_port(&ss, udp_port);
    if ((rc = uv_tcp_bind(&net->tcp, (struct sockaddr *)&ss, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&net->tcp, 128, tcp_connection_cb)) != 0)
        return rc;
    net->port = udp_port;
    return 0;
}

/* Bind UDP and TCP on the same port. For port 0 the kernel picks the UDP port
 * and TCP may find it taken, so try again with fresh sockets a few times.
 * On failure the handles that were initialized stay for network_close. */
static int open_sockets(struct network *net)
{
    struct sockaddr_storage sa;
    int rc;

    memset(&sa, 0, sizeof(sa));
    if (uv_ip4_addr(net->cfg.listen, 0, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(net->cfg.listen, 0, (struct sockaddr_in6 *)&sa) != 0)
        return UV_EINVAL;
    for (int attempt = 0;; attempt++) {
        if ((rc = uv_udp_init(net->loop, &net->udp)) != 0)
            return rc;
        net->udp.data = net;
        if ((rc = uv_tcp_init(net->loop, &net->tcp)) != 0)
            return rc;
        net->tcp.data = net;
        rc = bind_pair(net, &sa, net->cfg.port);
        if (rc == 0 || net->cfg.port != 0 || rc != UV_EADDRINUSE ||
            attempt + 1 >= NETWORK_PORT_TRIES)
            break;
        uv_close((uv_handle_t *)&net->udp, NULL);
        uv_close((uv_handle_t *)&net->tcp, NULL);
        net->udp.data = NULL;
        net->tcp.data = NULL;
        uv_run(net->loop, UV_RUN_NOWAIT); /* let the closes finish before reusing the handles */
    }
    if (rc != 0)
        return rc;
    return uv_udp_recv_start(&net->udp, udp_alloc_cb, udp_recv_cb);
}

/* ---- links ---- */

static void link_message_cb(void *arg, const uint8_t peer_pk[LINK_KEY_BYTES], const uint8_t *msg,
                            size_t len)
{
    struct network *net = arg;
    if (net->message_cb != NULL)
        net->message_cb(net->arg, net, peer_pk, msg, len);
}

static void link_state_cb(void *arg, const uint8_t peer_pk[LINK_KEY_BYTES], bool up)
{
    struct network *net = arg;
    if (net->link_state_cb != NULL)
        net->link_state_cb(net->arg, net, peer_pk, up);
}

static void link_writable_cb(void *arg, const uint8_t peer_pk[LINK_KEY_BYTES])
{
    struct network *net = arg;
    if (net->writable_cb != NULL)
        net->writable_cb(net->arg, net, peer_pk);
}

static enum mp_err open_links(struct network *net, const struct network_config *nc)
{
    uint8_t sk[LINK_KEY_BYTES], pk[LINK_KEY_BYTES];
    static const uint8_t public_id[] = NETWORK_PUBLIC;

    enum mp_err err = identity_x25519(nc->node_key, sk, pk);
    if (err != MP_OK)
        return err;
    struct links_config lc = {
        .env = nc->env,
        .static_secret = sk,
        .static_public = pk,
        .version = NOISE_PROTOCOL_VERSION,
        .network_id = nc->keys != NULL ? nc->keys->network_id : public_id,
        .network_id_len = nc->keys != NULL ? CLUSTER_NETWORK_ID_BYTES : sizeof(public_id) - 1,
        .psk = nc->keys != NULL ? nc->keys->psk : NULL,
        .message_cb = link_message_cb,
        .link_state_cb = link_state_cb,
        .writable_cb = link_writable_cb,
        .arg = net,
    };
    err = links_new(net->loop, &lc, &net->links);
    secure_wipe(sk, sizeof(sk));
    return err;
}

/* ---- life ---- */

enum mp_err network_open(const struct network_config *nc, struct network **net_out, char *why_out,
                         size_t why_size)
{
    struct addr reach[NETWORK_ADVERTISED_MAX];
    enum mp_err err;

    struct network *net = calloc(1, sizeof(*net));
    if (net == NULL)
        return MP_ERR_NOMEM;
    net->loop = nc->loop;
    net->cfg = *nc->cfg;
    net->cluster = nc->keys != NULL;
    snprintf(net->name, sizeof(net->name), "%s", nc->name);
    if (nc->keys != NULL)
        snprintf(net->fingerprint, sizeof(net->fingerprint), "%s", nc->keys->fingerprint);
    net->message_cb = nc->message_cb;
    net->link_state_cb = nc->link_state_cb;
    net->writable_cb = nc->writable_cb;
    net->arg = nc->arg;

    int rc = open_sockets(net);
    if (rc != 0) {
        snprintf(why_out, why_size, "%s: cannot listen on %s port %u: %s", net->name,
                 net->cfg.listen, net->cfg.port, uv_strerror(rc));
        err = rc == UV_EADDRINUSE ? MP_ERR_BUSY : MP_ERR_IO;
        goto fail;
    }
    log_info(MOD, "%s: listening on %s: UDP port %u, TCP port %u", net->name, net->cfg.listen,
             net->port, net->port);

    /* Saved peers: the public network's under no prefix, a cluster's under
     * "c/<name>/" (docs/PROTOCOL.md "Store layout"). */
    char prefix[OVERLAY_PREFIX_MAX];
    int plen = net->cluster ? snprintf(prefix, sizeof(prefix), "c/%s/", net->name) : 0;
    struct overlay_net on = {
        .name = net->name,
        .fingerprint = net->fingerprint,
        .network_key = nc->keys != NULL ? nc->keys->dht_key : NULL,
        .peers_prefix = (const uint8_t *)prefix,
        .peers_prefix_len = (size_t)plen,
    };
    unsigned n = network_advertised(net, reach, NETWORK_ADVERTISED_MAX);
    err = overlay_new(net->loop, &net->udp, nc->store, nc->node_key, nc->account, &net->cfg,
                      n > 0 ? &reach[0] : NULL, &on, &net->overlay);
    if (err != MP_OK) {
        snprintf(why_out, why_size, "%s: cannot start the DHT: %s", net->name, mp_strerror(err));
        goto fail;
    }
    if ((err = open_links(net, nc)) != MP_OK) {
        snprintf(why_out, why_size, "%s: cannot start the links: %s", net->name, mp_strerror(err));
        goto fail;
    }
    *net_out = net;
    return MP_OK;
fail:
    network_close(net, NULL, NULL);
    return err;
}

const char *network_name(const struct network *net)
{
    return net->name;
}

const char *network_fingerprint(const struct network *net)
{
    return net->fingerprint;
}

bool network_is_cluster(const struct network *net)
{
    return net->cluster;
}

uint16_t network_port(const struct network *net)
{
    return net->port;
}

struct overlay *network_overlay(struct network *net)
{
    return net->overlay;
}

struct links *network_links(struct network *net)
{
    return net->links;
}

unsigned network_advertised(const struct network *net, struct addr *out, unsigned max)
{
    struct addr listen;
    unsigned n = 0;

    if (max == 0 || addr_from_ip(net->cfg.listen, net->port, &listen) != MP_OK)
        return 0;
    static const uint8_t zero[16];
    if (memcmp(listen.ip, zero, 16) != 0) {
        out[0] = listen;
        return 1;
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
                if (addr_from_ip(ip, net->port, &a) == MP_OK)
                    out[n++] = a;
            }
        }
        uv_free_interface_addresses(ifs, count);
    }
    return n;
}

json_t *network_status(const struct network *net)
{
    struct links_stats ls = {0};

    if (net->links != NULL)
        links_stats(net->links, &ls);
    json_t *dropped = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "udp_unhandled", (json_int_t)net->udp_dropped,
        "tcp_unhandled", (json_int_t)(net->tcp_refused + ls.refused), "link_preamble",
        (json_int_t)ls.handshake_failed[LINK_REASON_PREAMBLE], "link_peer_key",
        (json_int_t)ls.handshake_failed[LINK_REASON_PEER_KEY], "link_psk",
        (json_int_t)ls.handshake_failed[LINK_REASON_PSK], "link_decrypt",
        (json_int_t)ls.handshake_failed[LINK_REASON_DECRYPT], "link_prologue",
        (json_int_t)ls.handshake_failed[LINK_REASON_PROLOGUE]);
    json_t *out = json_pack("{s:s, s:b, s:i, s:{s:i, s:I, s:I, s:I, s:I}, s:o}", "name",
                            net->name, "cluster", net->cluster, "port", (int)net->port, "links",
                            "up", (int)ls.links_up, "dials", (json_int_t)ls.dials, "accepted",
                            (json_int_t)ls.accepted, "msgs_out", (json_int_t)ls.msgs_out,
                            "msgs_in", (json_int_t)ls.msgs_in, "dropped", dropped);
    if (out == NULL)
        return NULL;
    if (net->cluster)
        json_object_set_new(out, "fingerprint", json_string(net->fingerprint));
    if (net->overlay != NULL) {
        json_t *dht = overlay_status(net->overlay);
        json_object_set(out, "table_size", json_object_get(dht, "table_size"));
        if (json_object_get(dht, "warning") != NULL)
            json_object_set(out, "warning", json_object_get(dht, "warning"));
        json_object_set_new(out, "dht", dht);
    }
    return out;
}

/* ---- close ---- */

static void closed_one(struct network *net)
{
    net->pending--;
    if (!net->shutting || net->pending > 0)
        return;
    void (*cb)(void *) = net->closed_cb;
    void *arg = net->closed_arg;
    secure_wipe(net, sizeof(*net));
    free(net);
    if (cb != NULL)
        cb(arg);
}

static void module_closed_cb(void *arg)
{
    closed_one(arg);
}

static void handle_closed_cb(uv_handle_t *handle)
{
    closed_one(handle->data);
}

void network_close_overlay(struct network *net)
{
    if (net == NULL || net->overlay == NULL)
        return;
    struct overlay *ov = net->overlay;
    net->overlay = NULL;
    net->pending++;
    overlay_close(ov, module_closed_cb, net);
}

void network_close(struct network *net, void (*closed_cb)(void *arg), void *arg)
{
    if (net == NULL) {
        if (closed_cb != NULL)
            closed_cb(arg);
        return;
    }
    if (net->shutting)
        return;
    log_info(MOD, "%s: closing (port %u)", net->name, net->port);
    net->shutting = true;
    net->closed_cb = closed_cb;
    net->closed_arg = arg;
    net->pending++; /* held while starting the closes, so nothing frees net midway */
    network_close_overlay(net);
    if (net->links != NULL) {
        struct links *links = net->links;
        net->links = NULL;
        net->pending++;
        links_close(links, module_closed_cb, net);
    }
    uv_handle_t *handles[] = {(uv_handle_t *)&net->udp, (uv_handle_t *)&net->tcp};
    for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
        if (handles[i]->data != NULL && !uv_is_closing(handles[i])) {
            net->pending++;
            uv_close(handles[i], handle_closed_cb);
        }
    }
    closed_one(net);
}
