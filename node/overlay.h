/*
 * overlay: the daemon's side of the DHT (dht/ has no I/O of its own).
 *
 * Feeds datagrams from the daemon's UDP socket into the DHT, sends what the
 * DHT asks through the same socket, and drives dht_tick from one one-shot
 * timer re-armed with the delay it returns, so an idle node sleeps. Joins
 * through the saved routing table (the store's peers family) and the
 * bootstrap entries, saves the table again every OVERLAY_SAVE_MS and at
 * close. Serves the control methods `dht.put` and `dht.get`, and gives the
 * daemon its table for `peers` and its figures for `status`.
 */
#ifndef MP_NODE_OVERLAY_H
#define MP_NODE_OVERLAY_H

#include <jansson.h>
#include <uv.h>

#include "base/err.h"
#include "crypto/identity.h"
#include "dht/dht.h"
#include "node/config.h"
#include "node/control.h"
#include "node/store.h"

/* How often the routing table is written to the store, and how soon after
 * it changed size (at most once per OVERLAY_RESAVE_MS). */
#define OVERLAY_SAVE_MS (10 * 60 * 1000)
#define OVERLAY_RESAVE_MS (10 * 1000)
/* Most peers saved and reloaded. */
#define OVERLAY_SAVED_MAX 64
/* Datagrams waiting in libuv's send queue; more are dropped and counted. */
#define OVERLAY_SEND_QUEUE_MAX 256
/* With bootstrap entries or saved peers to try and still an empty table
 * this long after start (or after the last bootstrap add), the overlay
 * warns: "no peers: bootstrap list stale or unreachable". */
#define OVERLAY_BOOTSTRAP_WARN_MS 10000
/* Room for a network name and a store key prefix of saved peers. */
#define OVERLAY_NAME_MAX 40
#define OVERLAY_PREFIX_MAX 48

/* Which network the overlay is on. NULL for overlay_new means the public
 * network with its saved peers under no prefix (docs/PROTOCOL.md "Store
 * layout"). */
struct overlay_net {
    const char *name;            /* for status and logs; < OVERLAY_NAME_MAX bytes */
    const char *fingerprint;     /* a cluster's, shown in status; NULL or "" for none */
    const uint8_t *network_key;  /* the DHT network key (BOX_NETWORK_KEY_BYTES); NULL: public */
    const uint8_t *peers_prefix; /* store key prefix of this network's saved peers */
    size_t peers_prefix_len;     /* 0 (public) .. OVERLAY_PREFIX_MAX */
};

struct overlay;

/* Start the DHT on a bound, receiving UDP handle (borrowed; the daemon owns
 * and closes it). advertised (may be NULL: the bound address) is where
 * others reach us, for our bootstrap entry when we listen on a wildcard.
 * node_key is the node's identity (its DHT and link key); account signs the
 * records put through dht.put. Both borrowed for the overlay's life, like
 * store and cfg. net (copied; NULL: the public network) says which network. */
enum mp_err overlay_new(uv_loop_t *loop, uv_udp_t *udp, struct store *store,
                        const struct identity *node_key, const struct identity *account,
                        const struct config *cfg, const struct addr *advertised,
                        const struct overlay_net *net, struct overlay **overlay_out);

/* Ping one more bootstrap node now ("<node key hex>@<ip>:<port>", checked
 * by config_check_bootstrap), and restart the bootstrap warning's clock. */
enum mp_err overlay_add_bootstrap(struct overlay *ov, const char *entry);

/* Entries in the DHT's routing table. */
size_t overlay_table_size(const struct overlay *ov);

/* Never save the routing table again (the network was left for good: its
 * saved peers are being deleted, and closing must not write them back). */
void overlay_stop_saving(struct overlay *ov);

/* Delete every saved peer under prefix (a network left for good). */
enum mp_err overlay_forget_peers(struct store *store, const uint8_t *prefix, size_t prefix_len);

/* One datagram from the UDP socket. */
void overlay_on_datagram(struct overlay *ov, const struct sockaddr *from, const uint8_t *data,
                         size_t len);

/* For other node modules: the DHT's get and publish (dht/dht.h semantics;
 * the overlay re-arms its timer). cb runs from the loop, never inside the call. */
enum mp_err overlay_get(struct overlay *ov, unsigned kind, const uint8_t owner[32],
                        void (*cb)(void *arg, enum mp_err status, const uint8_t *payload,
                                   size_t len),
                        void *arg);
/* The up to DHT_K nodes closest to target that answered, nearest first
 * (borrowed for the call); status MP_OK, else MP_ERR_TIMEOUT with none. */
typedef void overlay_lookup_cb(void *arg, enum mp_err status, const struct dht_peer *nodes,
                               size_t count);
/* Find the nodes closest to target (a mailbox id, say). cb as for overlay_get. */
enum mp_err overlay_lookup(struct overlay *ov, const uint8_t target[32], overlay_lookup_cb *cb,
                           void *arg);
/* Publish payload as the account's record of kind, republished until
 * overlay_close; replaces an earlier one of the same kind. */
enum mp_err overlay_publish(struct overlay *ov, unsigned kind, const uint8_t *payload, size_t len,
                            uint32_t ttl_s);
/* The node's X25519 public key (DHT and links), 32 bytes, borrowed. */
const uint8_t *overlay_node_key(const struct overlay *ov);
/* The UDP address the node is bound to (its port is the TCP port too). */
struct addr overlay_bound_addr(const struct overlay *ov);

/* {"network", "peers": [{"id" (16 hex), "node_key", "address", "last_seen_s",
 * "rtt_ms"}]}: the routing table, for the `peers` method; a new reference. */
json_t *overlay_peers(const struct overlay *ov);

/* Its control methods (dht.put, dht.get), to pass to control_add_methods
 * with the overlay as ctx. */
const struct control_method *overlay_methods(size_t *count_out);

/* {"node_key", "bootstrap", "network", ["fingerprint",] "table_size",
 * "records", "rx", "tx", "dropped": {reason: n}, ["warning"]} for `status`;
 * a new reference. */
json_t *overlay_status(const struct overlay *ov);

/* Save the routing table, stop the timer and free everything once it has
 * closed; closed_cb (may be NULL) runs then. */
void overlay_close(struct overlay *ov, void (*closed_cb)(void *arg), void *arg);

#endif
