/*
 * sim: a deterministic, single-threaded network of dht nodes on a virtual
 * clock, for tests and benchmarks.
 *
 * One min-heap holds every future event (a datagram in flight, a node's
 * wake-up, a scheduled join) ordered by (time, sequence number), so a run is a
 * pure function of its seed: node keys, every node's randomness, latencies and
 * losses all derive from it. Datagrams take a per-pair latency drawn once in
 * [latency_min_ms, latency_max_ms], are lost with probability loss, never
 * cross partitions, and are dropped at a dead node. Each node gets the IPv4
 * address 10.x.y.z:4000 from its index.
 *
 * Not a model of congestion, reordering within a pair beyond latency ties,
 * or NAT.
 */
#ifndef MP_TESTS_SIM_H
#define MP_TESTS_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "dht/dht.h"

struct sim_config {
    uint64_t seed;
    unsigned latency_min_ms;
    unsigned latency_max_ms;
    double loss; /* 0 .. 1 */
    struct dht_config dht;
};

struct sim;

/* Defaults: latency 10..80 ms, no loss, dht_config_default without per-IP
 * and rate limits (every node has its own IP here, but the defaults are tuned
 * for the real network). */
void sim_config_default(struct sim_config *cfg, uint64_t seed);

struct sim *sim_new(const struct sim_config *cfg);
void sim_free(struct sim *sim);

/* Add a node (not yet connected); returns its index. Aborts on allocation failure. */
unsigned sim_add_node(struct sim *sim);
/* The same with its own dht config (a private cluster's network key, say). */
unsigned sim_add_node_config(struct sim *sim, const struct dht_config *cfg);
unsigned sim_count(const struct sim *sim);

/* At virtual time at_ms, node idx pings node via_idx (its bootstrap node). */
void sim_join_at(struct sim *sim, unsigned idx, unsigned via_idx, uint64_t at_ms);

/* Run every event up to and including virtual time t_ms. */
void sim_run_until(struct sim *sim, uint64_t t_ms);
void sim_run_for(struct sim *sim, uint64_t ms);
uint64_t sim_now(const struct sim *sim);

/* Call after starting an operation on a node's dht outside the event loop. */
void sim_poke(struct sim *sim, unsigned idx);

struct dht *sim_dht(struct sim *sim, unsigned idx);
const struct addr *sim_addr(const struct sim *sim, unsigned idx);
const uint8_t *sim_pk(const struct sim *sim, unsigned idx);

/* Kill without notice: the node stops receiving and waking. */
void sim_kill(struct sim *sim, unsigned idx);
bool sim_alive(const struct sim *sim, unsigned idx);

/* Datagrams between nodes of different groups are dropped (group 0 by default). */
void sim_set_group(struct sim *sim, unsigned idx, unsigned group);

/* Change the loss rate from now on. */
void sim_set_loss(struct sim *sim, double loss);

/* An outsider: an address with no dht behind it, whose datagrams go to cb
 * (a test's hand-made attacker). sim_alive is false for it. */
typedef void sim_outsider_cb(void *ctx, const struct addr *from, const uint8_t *data, size_t len);
unsigned sim_add_outsider(struct sim *sim, sim_outsider_cb *cb, void *ctx);

/* Send a datagram from node or outsider idx (same latency, loss, partitions). */
void sim_send_from(struct sim *sim, unsigned idx, const struct addr *to, const uint8_t *data,
                   size_t len);

/* Index of the node with this id, or -1. */
int sim_find_id(const struct sim *sim, const uint8_t id[DHT_ID_BYTES]);

/* Seeded helper randomness for tests (independent of the nodes' streams). */
uint64_t sim_rand(struct sim *sim);

/* Datagrams sent, delivered and lost (loss + partitions + dead) so far. */
uint64_t sim_sent(const struct sim *sim);
uint64_t sim_lost(const struct sim *sim);

uint64_t sim_seed(const struct sim *sim);

/* Bytes the simulator itself holds (not counting the nodes' dht memory). */
size_t sim_memory(const struct sim *sim);

#endif
