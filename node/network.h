/*
 * network: one network the node has joined, the public one or a private
 * cluster, with everything that is per network: its UDP and TCP sockets on
 * one port, its DHT (node/overlay.h: routing table, saved peers under the
 * network's own store prefix) and its Noise links (node/link.h, with the
 * cluster's PSK and network id in the prologue).
 *
 * The daemon holds several of them side by side; they share the node key,
 * the account, the store and the loop, and nothing else: a datagram or a
 * connection that arrives on one network's port is only ever seen by that
 * network. What is not here: which network a message goes out on
 * (node/delivery.c uses one network, the daemon's primary one), and the
 * list of joined clusters (node/clusters.h).
 */
#ifndef MP_NODE_NETWORK_H
#define MP_NODE_NETWORK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/env.h"
#include "base/err.h"
#include "crypto/cluster.h"
#include "crypto/identity.h"
#include "node/config.h"
#include "node/link.h"
#include "node/overlay.h"
#include "node/store.h"

/* The public network's name; cluster names are checked by cluster_name_valid,
 * which refuses no name equal to it, so the daemon refuses it itself. */
#define NETWORK_PUBLIC "public"
/* Bytes of a UDP datagram read; larger ones are truncated and dropped. */
#define NETWORK_DATAGRAM_MAX 2048
/* Addresses advertised for one network (presence records, token entries). */
#define NETWORK_ADVERTISED_MAX 4

struct network;

struct network_config {
    uv_loop_t *loop;
    const char *name;         /* NETWORK_PUBLIC or a cluster name; copied */
    const struct config *cfg; /* listen, port (0: pick a free one), bootstrap list, DHT
                                 limits; copied */
    /* A cluster's derived keys (crypto/cluster.h), NULL for the public network; copied. */
    const struct cluster_keys *keys;
    struct store *store;             /* borrowed for the network's life, like: */
    const struct identity *node_key; /* DHT and link key */
    const struct identity *account;  /* signs records put through the DHT */
    const struct env *env;           /* randomness for links */

    /* Link events, as in struct links_config, with the network they came on. */
    void (*message_cb)(void *arg, struct network *net, const uint8_t peer_pk[LINK_KEY_BYTES],
                       const uint8_t *msg, size_t len);
    void (*link_state_cb)(void *arg, struct network *net, const uint8_t peer_pk[LINK_KEY_BYTES],
                          bool up);
    void (*writable_cb)(void *arg, struct network *net, const uint8_t peer_pk[LINK_KEY_BYTES]);
    void *arg;
};

/* Bind UDP and TCP on cfg's listen address and port (port 0: a port free on
 * both, picked by the kernel), start the DHT and the links. On failure
 * nothing stays open, and why_out says what failed ("cannot listen on ...:
 * address already in use") for the user. */
enum mp_err network_open(const struct network_config *nc, struct network **net_out, char *why_out,
                         size_t why_size);

const char *network_name(const struct network *net);
/* The cluster's fingerprint, "" for the public network. */
const char *network_fingerprint(const struct network *net);
bool network_is_cluster(const struct network *net);
/* The port bound (UDP and TCP). */
uint16_t network_port(const struct network *net);
struct overlay *network_overlay(struct network *net);
struct links *network_links(struct network *net);

/* Where other nodes reach this network: the listen address, or for a
 * wildcard listen the interfaces' addresses (loopback only if there is
 * nothing else), all with this network's port. Returns how many (<= max). */
unsigned network_advertised(const struct network *net, struct addr *out, unsigned max);

/* {"name", "fingerprint" (clusters), "port", "table_size", "dht": overlay_status,
 * "links": {...}, "dropped": {"udp_unhandled", "tcp_unhandled", "link_preamble",
 * "link_peer_key", "link_psk", "link_decrypt", "link_prologue"}} for `status`; a new reference. */
json_t *network_status(const struct network *net);

/* Close the DHT only (saving its table): its pending lookups fail now. The
 * rest stays until network_close. Idempotent. */
void network_close_overlay(struct network *net);

/* Close everything and free net once every handle has closed; closed_cb
 * (may be NULL) runs then. Accepts NULL. */
void network_close(struct network *net, void (*closed_cb)(void *arg), void *arg);

#endif
