/*
 * dht: one node of the Merpati Kademlia overlay, with no I/O of its own.
 *
 * The caller feeds it datagrams (dht_on_datagram), calls dht_tick when the
 * delay dht_tick last returned has passed, and sends what it asks to send
 * through env->send; time and randomness come from the env too. So the
 * daemon drives it from a UDP socket and a one-shot timer, and tests/sim
 * drives thousands of them on a virtual clock in one process.
 *
 * What it does: authenticated, encrypted datagrams between node keys
 * (crypto/box.h), a routing table (dht/routing.h), the RPCs ping, find_node,
 * get and put (put needs a write token bound to the requester's address),
 * iterative lookups with DHT_ALPHA requests in flight, storage of signed
 * records for others (dht/storage.h), republishing of the caller's own
 * records, bucket refresh, rate limits, and drop counters by reason. Constants
 * and formats: docs/PROTOCOL.md "DHT datagrams" and "DHT records".
 *
 * What it is not: it resolves no host names, keeps nothing on disk (the
 * caller may save dht_peers() and feed them back with dht_bootstrap), and is
 * not thread-safe (one thread drives a dht).
 *
 * Callbacks run from inside dht_on_datagram or dht_tick, never from the call
 * that started the operation. A callback may start new operations (their
 * requests go out at the next dht_tick); it must not call dht_tick,
 * dht_on_datagram or dht_free. dht_free drops pending operations without
 * calling them.
 */
#ifndef MP_DHT_DHT_H
#define MP_DHT_DHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "base/env.h"
#include "base/err.h"
#include "crypto/box.h"
#include "crypto/identity.h"
#include "dht/record.h"
#include "dht/routing.h"

#define DHT_ID_BYTES 32
#define DHT_PK_BYTES 32
#define DHT_K ROUTING_K                      /* bucket size, replication factor */
#define DHT_ALPHA 3                          /* requests in flight per lookup */
#define DHT_DATAGRAM_MAX 1280                /* bytes, header and tag included */
#define DHT_RPC_TIMEOUT_MS 1500              /* an unanswered request fails after this */
#define DHT_RPC_TRIES 2                      /* a lookup asks a silent node twice, */
#define DHT_RPC_TRIES_NEAR 4                 /* or 4 times among the DHT_ALPHA nearest */
#define DHT_LOOKUP_TIMEOUT_MS 30000          /* a whole lookup gives up after this */
#define DHT_REJOIN_MS 30000                  /* the join's own-id lookup runs again after this, */
#define DHT_JOIN_FILL 1                      /* with a refresh of buckets holding fewer nodes */
#define DHT_REFRESH_MS (15 * 60 * 1000)      /* an unused bucket is refreshed after this */
#define DHT_TOKEN_ROTATE_MS (5 * 60 * 1000)  /* write tokens live 5 to 10 minutes */
#define DHT_EXPIRE_SWEEP_MS (60 * 1000)      /* expired records go within a minute */
#define DHT_TX_MAX 128                       /* requests in flight per node */
#define DHT_LOOKUPS_MAX 32                   /* lookups, gets and puts in progress */
#define DHT_BOOTSTRAP_MAX 16                 /* bootstrap nodes remembered for retries */
#define DHT_BOOTSTRAP_RETRY_MS 2000          /* first retry; doubles up to DHT_TICK_MAX_MS */
#define DHT_PUBLISHED_MAX 8                  /* own records republished */
#define DHT_TICK_MAX_MS 60000                /* dht_tick never asks to sleep longer */

/* Every reason a datagram (or a contact) is dropped, with its counter name. */
#define DHT_DROP_LIST(X)                                                                           \
    X(SHORT, "short")             /* shorter than header + tag + 1 */                              \
    X(TOO_BIG, "too_big")         /* longer than DHT_DATAGRAM_MAX */                               \
    X(VERSION, "version")         /* unknown version byte */                                       \
    X(RATE, "rate")               /* source IP over its rate limit */                              \
    X(SELF, "self")               /* claims our own key */                                         \
    X(BAD_KEY, "bad_key")         /* sender key unusable (small order) */                          \
    X(AUTH, "auth")               /* AEAD check failed: forged, or another network */              \
    X(MALFORMED, "malformed")     /* body is not a valid message */                                \
    X(UNKNOWN_TX, "unknown_tx")   /* answer to no request of ours (late, replayed) */              \
    X(WRONG_PEER, "wrong_peer")   /* answer from another key or of another type */                 \
    X(BAD_TOKEN, "bad_token")     /* put with a missing or expired token */                        \
    X(BAD_RECORD, "bad_record")   /* forged, expired, oversized or misplaced record */             \
    X(STORE_FULL, "store_full")   /* put refused: record table full */                             \
    X(TX_FULL, "tx_full")         /* request not sent: DHT_TX_MAX in flight */                     \
    X(SEND, "send_failed")        /* env->send refused the datagram */                             \
    X(IP_LIMIT, "ip_limit")       /* contact refused: per-IP bucket limit */

enum dht_drop {
#define DHT_DROP_ENUM_(name, text) DHT_DROP_##name,
    DHT_DROP_LIST(DHT_DROP_ENUM_)
#undef DHT_DROP_ENUM_
        DHT_DROP_COUNT
};

struct dht_config {
    /* BOX_NETWORK_KEY_BYTES: a cluster's derived DHT key (crypto/cluster.h); NULL: public */
    const uint8_t *network_key;
    unsigned per_ip_per_bucket; /* nodes of one IP per bucket; 0: no limit; loopback exempt */
    unsigned rate_per_s; /* datagrams per second per source IP; 0: no limit; loopback exempt */
    unsigned rate_burst;        /* datagrams a source may send at once */
    size_t max_records;         /* records held for others */
    size_t key_cache_slots;     /* per-peer shared keys cached */
    int64_t wall_offset_ms;     /* network time (record expiry) = env now_ms + this */
};

struct dht_stats {
    uint64_t rx;          /* datagrams received */
    uint64_t tx;          /* datagrams sent */
    uint64_t requests_in; /* valid requests answered */
    uint64_t rpcs_out;    /* requests sent */
    uint64_t timeouts;    /* requests unanswered */
    uint64_t x25519;      /* shared keys computed */
    uint64_t drops[DHT_DROP_COUNT];
    size_t table_size;
    size_t records;
    size_t lookups;
};

struct dht_peer {
    uint8_t id[DHT_ID_BYTES];
    uint8_t pk[DHT_PK_BYTES];
    struct addr addr;
    uint64_t last_seen_ms; /* env time of its last answer */
    uint32_t rtt_ms;
    uint8_t fails; /* unanswered requests since */
};

/* How a lookup went: rounds = longest chain of requests (hops), rpcs = requests sent. */
struct dht_lookup_info {
    unsigned rounds;
    unsigned rpcs;
    unsigned timeouts;
    uint64_t duration_ms;
};

/* nodes: the up to DHT_K closest nodes that answered, nearest first; borrowed
 * for the call. status MP_OK, or MP_ERR_TIMEOUT when no node answered. */
typedef void dht_lookup_cb(void *arg, enum mp_err status, const struct dht_peer *nodes,
                           size_t count, const struct dht_lookup_info *info);
/* rec: the highest valid seq found (borrowed for the call); status MP_OK, or
 * MP_ERR_NOT_FOUND with rec NULL. */
typedef void dht_get_cb(void *arg, enum mp_err status, const struct record *rec,
                        const struct dht_lookup_info *info);
/* stored: how many of the closest nodes hold the record now; status MP_OK
 * when at least one does, else MP_ERR_TIMEOUT. */
typedef void dht_put_cb(void *arg, enum mp_err status, unsigned stored,
                        const struct dht_lookup_info *info);

struct dht;

/* Defaults: public network, 2 nodes per IP per bucket, 50/s burst 100 per IP,
 * 4096 records, 256 cached keys, offset 0. */
void dht_config_default(struct dht_config *cfg);

/* env and key are borrowed and must outlive the dht. cfg is copied (with the
 * network key). */
enum mp_err dht_new(const struct env *env, const struct box_key *key,
                    const struct dht_config *cfg, struct dht **dht_out);
void dht_free(struct dht *dht);

/* Our node id (BLAKE2b-256 of our node public key). */
const uint8_t *dht_id(const struct dht *dht);

/* Ping a node we know by key and address (bootstrap list, saved peers). It
 * enters the table when it answers; the first node that does starts a lookup
 * of our own id, which is how a node joins. While the table is empty the
 * pings are repeated (after 2 s, doubling up to a minute), so a lost
 * datagram does not leave a node outside. MP_ERR_DHT_BUSY when DHT_TX_MAX
 * requests are in flight, MP_ERR_INVAL for our own key or a bad address. */
enum mp_err dht_bootstrap(struct dht *dht, const uint8_t pk[DHT_PK_BYTES],
                          const struct addr *addr);

/* One datagram from `from`; data is borrowed for the call. Never fails:
 * whatever is wrong with it is counted in dht_stats.drops. */
void dht_on_datagram(struct dht *dht, const struct addr *from, const uint8_t *data, size_t len);

/* Do what is due (timeouts, refreshes, republishing, expiry) and return the
 * delay in ms (1 .. DHT_TICK_MAX_MS) after which to call again. Call it also
 * after dht_on_datagram and after starting an operation, since both can move
 * the next deadline earlier. */
uint64_t dht_tick(struct dht *dht);

/* Find the DHT_K nodes closest to target. MP_ERR_DHT_NO_PEERS with an empty
 * table, MP_ERR_DHT_BUSY at DHT_LOOKUPS_MAX operations. */
enum mp_err dht_lookup(struct dht *dht, const uint8_t target[DHT_ID_BYTES], dht_lookup_cb *cb,
                       void *arg);

/* Find the record of (kind, owner) with the highest valid seq. Errors as dht_lookup. */
enum mp_err dht_get(struct dht *dht, unsigned kind, const uint8_t owner[RECORD_OWNER_BYTES],
                    dht_get_cb *cb, void *arg);

/* Store a signed record on the DHT_K nodes closest to its key (once; see
 * dht_publish for republishing). rec is copied. Errors as dht_lookup, plus
 * the record_check errors. cb may be NULL. */
enum mp_err dht_put(struct dht *dht, const struct record *rec, dht_put_cb *cb, void *arg);

/* Publish payload as owner's record of kind, valid ttl_s seconds (60 ..
 * RECORD_TTL_MAX_S), and keep it published: it is re-signed with a higher
 * seq and put again every ttl_s / 2 until dht_unpublish or dht_free. owner is
 * borrowed until then. Replaces an earlier publication of the same (kind,
 * owner). cb (may be NULL) hears about the first put only. MP_ERR_DHT_BUSY
 * with DHT_PUBLISHED_MAX records published. */
enum mp_err dht_publish(struct dht *dht, const struct identity *owner, unsigned kind,
                        const uint8_t *payload, size_t len, uint32_t ttl_s, dht_put_cb *cb,
                        void *arg);

/* Stop republishing; the copies in the DHT expire on their own. */
void dht_unpublish(struct dht *dht, unsigned kind, const uint8_t owner[RECORD_OWNER_BYTES]);

/* Copy up to max routing table entries into out; returns the count. */
size_t dht_peers(const struct dht *dht, struct dht_peer *out, size_t max);

void dht_get_stats(const struct dht *dht, struct dht_stats *out);

/* "auth", "rate", ... for a drop reason; "unknown" out of range. */
const char *dht_drop_name(enum dht_drop reason);

/* Heap bytes the node holds (tables, caches, lookups, records). */
size_t dht_memory(const struct dht *dht);

/* Network time in seconds (env now_ms + wall_offset_ms), the clock of record expiry. */
uint64_t dht_network_time_s(const struct dht *dht);

#endif
