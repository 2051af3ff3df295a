/*
 * routing: a Kademlia routing table of 256-bit ids under the XOR metric.
 *
 * Bucket i holds up to ROUTING_K nodes whose id shares exactly i leading bits
 * with ours, plus a replacement cache of ROUTING_REPLACEMENTS nodes that
 * answered while the bucket was full. Only nodes that answered one of our
 * requests get in (liveness is proven by answers, not by being heard from).
 * A node whose requests time out ROUTING_FAILS_BAD times in a row is "bad":
 * it is replaced by the freshest replacement, or by the next node that
 * answers, and is no longer handed to others. A bucket holds at most
 * per_ip_limit nodes of one IP address (0 = no limit); loopback addresses are
 * exempt, so nodes on one host (tests, a local cluster) can fill a table.
 *
 * Buckets are allocated when first used, so a table costs about one bucket
 * per bit of log2(network size). No I/O, no clock: times are passed in.
 */
#ifndef MP_DHT_ROUTING_H
#define MP_DHT_ROUTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "base/err.h"

#define ROUTING_ID_BYTES 32
#define ROUTING_PK_BYTES 32
#define ROUTING_K 8
#define ROUTING_REPLACEMENTS 4
#define ROUTING_FAILS_BAD 2
#define ROUTING_BUCKETS 256

struct routing_entry {
    uint8_t id[ROUTING_ID_BYTES];
    uint8_t pk[ROUTING_PK_BYTES];
    struct addr addr;
    uint64_t last_seen_ms; /* last answer */
    uint32_t rtt_ms;       /* round trip of the last answer */
    uint8_t fails;         /* timeouts since the last answer */
};

enum routing_result {
    ROUTING_ADDED,
    ROUTING_UPDATED,
    ROUTING_REPLACEMENT, /* bucket full: kept in the replacement cache */
    ROUTING_REFUSED_IP,  /* per-IP limit of the bucket reached */
    ROUTING_SELF,
};

struct routing;

enum mp_err routing_new(const uint8_t self[ROUTING_ID_BYTES], unsigned per_ip_limit,
                        struct routing **rt_out);
void routing_free(struct routing *rt);

/* Number of leading bits a and b share (256 when equal). */
unsigned routing_common_bits(const uint8_t a[ROUTING_ID_BYTES], const uint8_t b[ROUTING_ID_BYTES]);

/* <0, 0, >0 as a is closer to, as close as, farther from target than b. */
int routing_cmp_distance(const uint8_t target[ROUTING_ID_BYTES], const uint8_t a[ROUTING_ID_BYTES],
                         const uint8_t b[ROUTING_ID_BYTES]);


/* The node answered one of our requests from addr after rtt_ms. */
enum routing_result routing_seen(struct routing *rt, const uint8_t id[ROUTING_ID_BYTES],
                                 const uint8_t pk[ROUTING_PK_BYTES], const struct addr *addr,
                                 uint64_t now_ms, uint32_t rtt_ms);

/* A request to the node timed out. */
void routing_failed(struct routing *rt, const uint8_t id[ROUTING_ID_BYTES]);

/* True when a node not yet in the table would be taken (or cached) if it
 * answered a ping: worth pinging a stranger that sent us a request. */
bool routing_wants(const struct routing *rt, const uint8_t id[ROUTING_ID_BYTES]);

/* The live entry for id, or NULL. Borrowed until the next change. */
const struct routing_entry *routing_get(const struct routing *rt,
                                        const uint8_t id[ROUTING_ID_BYTES]);

/* Copy up to max entries closest to target, nearest first; bad entries are
 * skipped unless include_bad. Returns the count. */
size_t routing_closest(const struct routing *rt, const uint8_t target[ROUTING_ID_BYTES],
                       bool include_bad, struct routing_entry *out, size_t max);

/* Copy up to max live entries (any order); returns the count. */
size_t routing_export(const struct routing *rt, struct routing_entry *out, size_t max);

/* Copy up to max entries of one bucket, the good ones (bad == false) or the
 * bad ones (still in the table because no replacement was at hand); returns
 * the count. */
size_t routing_bucket(const struct routing *rt, unsigned bucket, bool bad,
                      struct routing_entry *out, size_t max);

/* Live entries in one bucket. */
unsigned routing_bucket_size(const struct routing *rt, unsigned bucket);

/* Live entries in the table. */
size_t routing_count(const struct routing *rt);

/* Index of the deepest (most shared bits) non-empty bucket, -1 when empty.
 * Buckets 0 .. deepest are the ones worth refreshing. */
int routing_deepest(const struct routing *rt);

/* Bytes the table holds on the heap (for the memory figure). */
size_t routing_memory(const struct routing *rt);

#endif
