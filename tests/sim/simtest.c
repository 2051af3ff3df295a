#include "tests/sim/simtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Virtual time an operation may take before the helper gives up. */
#define OP_LIMIT_MS (5 * 60 * 1000)

struct sim *simtest_overlay(const struct sim_config *cfg, unsigned n, uint64_t join_window_ms,
                            uint64_t settle_ms)
{
    struct sim *sim = sim_new(cfg);
    for (unsigned i = 0; i < n; i++)
        sim_add_node(sim);
    uint64_t t0 = sim_now(sim);
    for (unsigned i = 1; i < n; i++)
        sim_join_at(sim, i, 0, t0 + (join_window_ms ? sim_rand(sim) % join_window_ms : 0));
    sim_run_until(sim, t0 + join_window_ms + settle_ms);
    return sim;
}

static void lookup_cb(void *arg, enum mp_err status, const struct dht_peer *nodes, size_t count,
                      const struct dht_lookup_info *info)
{
    struct simtest_result *r = arg;
    r->done = true;
    r->status = status;
    r->info = *info;
    r->count = count < DHT_K ? count : DHT_K;
    memcpy(r->nodes, nodes, r->count * sizeof(*nodes));
}

static void get_cb(void *arg, enum mp_err status, const struct record *rec,
                   const struct dht_lookup_info *info)
{
    struct simtest_result *r = arg;
    r->done = true;
    r->status = status;
    r->info = *info;
    r->has_record = rec != NULL;
    if (rec != NULL)
        r->record = *rec;
}

static void put_cb(void *arg, enum mp_err status, unsigned stored,
                   const struct dht_lookup_info *info)
{
    struct simtest_result *r = arg;
    r->done = true;
    r->status = status;
    r->info = *info;
    r->stored = stored;
}

static enum mp_err wait_done(struct sim *sim, unsigned idx, struct simtest_result *out)
{
    uint64_t limit = sim_now(sim) + OP_LIMIT_MS;
    sim_poke(sim, idx);
    while (!out->done && sim_now(sim) < limit)
        sim_run_for(sim, 10);
    return out->done ? out->status : MP_ERR_TIMEOUT;
}

enum mp_err simtest_lookup(struct sim *sim, unsigned idx, const uint8_t target[DHT_ID_BYTES],
                           struct simtest_result *out)
{
    memset(out, 0, sizeof(*out));
    enum mp_err err = dht_lookup(sim_dht(sim, idx), target, lookup_cb, out);
    return err != MP_OK ? err : wait_done(sim, idx, out);
}

enum mp_err simtest_get(struct sim *sim, unsigned idx, unsigned kind,
                        const uint8_t owner[RECORD_OWNER_BYTES], struct simtest_result *out)
{
    memset(out, 0, sizeof(*out));
    enum mp_err err = dht_get(sim_dht(sim, idx), kind, owner, get_cb, out);
    return err != MP_OK ? err : wait_done(sim, idx, out);
}

enum mp_err simtest_put(struct sim *sim, unsigned idx, const struct record *rec,
                        struct simtest_result *out)
{
    memset(out, 0, sizeof(*out));
    enum mp_err err = dht_put(sim_dht(sim, idx), rec, put_cb, out);
    return err != MP_OK ? err : wait_done(sim, idx, out);
}

enum mp_err simtest_start_lookup(struct sim *sim, unsigned idx, const uint8_t target[DHT_ID_BYTES],
                                 struct simtest_result *out)
{
    memset(out, 0, sizeof(*out));
    enum mp_err err = dht_lookup(sim_dht(sim, idx), target, lookup_cb, out);
    if (err != MP_OK) {
        out->done = true;
        out->status = err;
        return err;
    }
    sim_poke(sim, idx);
    return MP_OK;
}

void simtest_wait(struct sim *sim, struct simtest_result *results, size_t n)
{
    uint64_t limit = sim_now(sim) + OP_LIMIT_MS;
    for (size_t i = 0; i < n; i++) {
        while (!results[i].done && sim_now(sim) < limit)
            sim_run_for(sim, 10);
        if (!results[i].done) {
            results[i].done = true;
            results[i].status = MP_ERR_TIMEOUT;
        }
    }
}

unsigned simtest_find_all(struct sim *sim, unsigned batch, bool *found)
{
    unsigned n = sim_count(sim), ok = 0;
    struct simtest_result *res = calloc(batch, sizeof(*res));
    if (res == NULL)
        abort();
    for (unsigned start = 0; start < n; start += batch) {
        unsigned m = n - start < batch ? n - start : batch;
        for (unsigned i = 0; i < m; i++) {
            unsigned target = start + i, from;
            do {
                from = simtest_random_alive(sim);
            } while (from == target);
            simtest_start_lookup(sim, from, dht_id(sim_dht(sim, target)), &res[i]);
        }
        simtest_wait(sim, res, m);
        for (unsigned i = 0; i < m; i++) {
            const uint8_t *id = dht_id(sim_dht(sim, start + i));
            found[start + i] = res[i].status == MP_OK && res[i].count > 0 &&
                               memcmp(res[i].nodes[0].id, id, DHT_ID_BYTES) == 0;
            ok += found[start + i];
        }
    }
    free(res);
    return ok;
}

bool simtest_finds(struct sim *sim, unsigned idx, unsigned target, struct simtest_result *out)
{
    const uint8_t *id = dht_id(sim_dht(sim, target));
    if (simtest_lookup(sim, idx, id, out) != MP_OK || out->count == 0)
        return false;
    return memcmp(out->nodes[0].id, id, DHT_ID_BYTES) == 0;
}

unsigned simtest_random_alive(struct sim *sim)
{
    for (;;) {
        unsigned i = (unsigned)(sim_rand(sim) % sim_count(sim));
        if (sim_alive(sim, i))
            return i;
    }
}

bool simtest_check(const struct sim *sim, bool cond, const char *what)
{
    if (!cond)
        fprintf(stderr, "FAILED: %s (repeat with MERPATI_TEST_SEED=%llu)\n", what,
                (unsigned long long)sim_seed(sim));
    return cond;
}

#define HEADER (1 + DHT_PK_BYTES + BOX_NONCE_BYTES)

size_t simtest_seal(const struct box_key *key, const uint8_t peer_pk[DHT_PK_BYTES],
                    const uint8_t *network_key, uint64_t nonce_seed, const struct dht_msg *m,
                    uint8_t out[DHT_DATAGRAM_MAX])
{
    uint8_t body[DHT_WIRE_BODY_MAX], shared[BOX_SHARED_BYTES], net[BOX_NETWORK_KEY_BYTES];
    size_t len = 0;
    if (network_key != NULL)
        memcpy(net, network_key, sizeof(net));
    else
        box_public_network_key(net);
    if (dht_wire_encode(m, body, sizeof(body), &len) != MP_OK ||
        box_shared(key, peer_pk, net, shared) != MP_OK)
        return 0;
    out[0] = 1;
    memcpy(out + 1, box_key_public(key), DHT_PK_BYTES);
    memset(out + 1 + DHT_PK_BYTES, 0, BOX_NONCE_BYTES);
    memcpy(out + 1 + DHT_PK_BYTES, &nonce_seed, sizeof(nonce_seed));
    box_seal(shared, out + 1 + DHT_PK_BYTES, out, HEADER, body, len, out + HEADER);
    return HEADER + len + BOX_TAG_BYTES;
}

bool simtest_open(const struct box_key *key, const uint8_t *network_key, const uint8_t *data,
                  size_t len, struct dht_msg *m_out)
{
    uint8_t body[DHT_DATAGRAM_MAX], shared[BOX_SHARED_BYTES], net[BOX_NETWORK_KEY_BYTES];
    if (network_key != NULL)
        memcpy(net, network_key, sizeof(net));
    else
        box_public_network_key(net);
    if (len < HEADER + BOX_TAG_BYTES || data[0] != 1 ||
        box_shared(key, data + 1, net, shared) != MP_OK ||
        box_open(shared, data + 1 + DHT_PK_BYTES, data, HEADER, data + HEADER, len - HEADER,
                 body) != MP_OK)
        return false;
    return dht_wire_decode(body, len - HEADER - BOX_TAG_BYTES, m_out) == MP_OK;
}

unsigned simtest_run_lookups(struct sim *sim, unsigned count)
{
    /* In batches of 50 that share virtual time. */
    struct simtest_result r[50];
    unsigned targets[50], ok = 0;
    for (unsigned done = 0; done < count;) {
        unsigned n = count - done < 50 ? count - done : 50;
        for (unsigned i = 0; i < n; i++) {
            unsigned from = simtest_random_alive(sim);
            do {
                targets[i] = simtest_random_alive(sim);
            } while (targets[i] == from);
            simtest_start_lookup(sim, from, dht_id(sim_dht(sim, targets[i])), &r[i]);
        }
        simtest_wait(sim, r, n);
        for (unsigned i = 0; i < n; i++) {
            if (r[i].status == MP_OK && r[i].count > 0 &&
                memcmp(r[i].nodes[0].id, dht_id(sim_dht(sim, targets[i])), DHT_ID_BYTES) == 0)
                ok++;
            else
                fprintf(stderr,
                        "lookup for node %u missed: status %d, %zu answers, %u rpcs, %u timeouts\n",
                        targets[i], r[i].status, r[i].count, r[i].info.rpcs, r[i].info.timeouts);
        }
        done += n;
    }
    return ok;
}
