/*
 * simtest: helpers shared by the simulator tests and the DHT benchmark:
 * build an overlay, run one operation to completion in virtual time, and
 * report failures with the seed that reproduces them.
 */
#ifndef MP_TESTS_SIMTEST_H
#define MP_TESTS_SIMTEST_H

#include <stdbool.h>
#include <stdint.h>

#include "crypto/box.h"
#include "dht/dht.h"
#include "dht/dht_wire.h"
#include "tests/sim/sim.h"

/* Outcome of one operation run with simtest_*. */
struct simtest_result {
    bool done;
    enum mp_err status;
    struct dht_lookup_info info;
    struct dht_peer nodes[DHT_K];
    size_t count;
    bool has_record;
    struct record record;
    unsigned stored;
};

/* n nodes; node 0 is the bootstrap node; nodes 1.. join at random times in
 * [0, join_window_ms); then the simulation runs settle_ms more. */
struct sim *simtest_overlay(const struct sim_config *cfg, unsigned n, uint64_t join_window_ms,
                            uint64_t settle_ms);

/* Run a lookup / get / put from node idx until its callback fires. */
enum mp_err simtest_lookup(struct sim *sim, unsigned idx, const uint8_t target[DHT_ID_BYTES],
                           struct simtest_result *out);
enum mp_err simtest_get(struct sim *sim, unsigned idx, unsigned kind,
                        const uint8_t owner[RECORD_OWNER_BYTES], struct simtest_result *out);
enum mp_err simtest_put(struct sim *sim, unsigned idx, const struct record *rec,
                        struct simtest_result *out);

/* Start a lookup without waiting (several may run at once, sharing virtual
 * time); simtest_wait runs the simulation until all n results are done. */
enum mp_err simtest_start_lookup(struct sim *sim, unsigned idx, const uint8_t target[DHT_ID_BYTES],
                                 struct simtest_result *out);
void simtest_wait(struct sim *sim, struct simtest_result *results, size_t n);

/* Look up every node's id from another random node, batch lookups at a time
 * (sharing virtual time); found[i] tells whether node i's lookup returned it
 * first. Returns how many were found. */
unsigned simtest_find_all(struct sim *sim, unsigned batch, bool *found);

/* True when the lookup from idx for node target's id returns target first. */
bool simtest_finds(struct sim *sim, unsigned idx, unsigned target, struct simtest_result *out);

/* A random alive node index. */
unsigned simtest_random_alive(struct sim *sim);

/* Hand-made datagrams in the documented format (docs/PROTOCOL.md), for
 * tests that play an attacker: seal m from key to peer_pk on the network of
 * network_key (NULL: public); returns the length. */
size_t simtest_seal(const struct box_key *key, const uint8_t peer_pk[DHT_PK_BYTES],
                    const uint8_t *network_key, uint64_t nonce_seed, const struct dht_msg *m,
                    uint8_t out[DHT_DATAGRAM_MAX]);
/* Open a datagram sent to key; false when it is not one. */
bool simtest_open(const struct box_key *key, const uint8_t *network_key, const uint8_t *data,
                  size_t len, struct dht_msg *m_out);

/* Print the seed (to repeat the run) when cond is false; returns cond. */
bool simtest_check(const struct sim *sim, bool cond, const char *what);

/* count lookups from random live nodes for random live nodes' ids, in
 * batches of 50 sharing virtual time; returns how many found their target
 * first. Misses are printed with their status and RPC counts. */
unsigned simtest_run_lookups(struct sim *sim, unsigned count);

#endif
