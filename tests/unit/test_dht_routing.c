/* Unit tests for dht/routing: XOR metric, buckets, replacement cache,
 * liveness by answers, per-IP limits, closest-node selection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dht/routing.h"
#include "dht/shortlist.h"
#include "tests/support/test_env.h"

static struct test_env te;
static uint8_t self[32];

/* An id sharing exactly `bits` leading bits with self. */
static void id_at(unsigned bits, uint8_t out[32])
{
    env_random(&te.env, out, 32);
    for (unsigned i = 0; i <= bits && i < 256; i++) {
        uint8_t mask = (uint8_t)(0x80 >> (i % 8));
        uint8_t bit = self[i / 8] & mask;
        if (i == bits)
            bit ^= mask;
        out[i / 8] = (uint8_t)((out[i / 8] & ~mask) | bit);
    }
}

static void addr_n(unsigned n, struct addr *a)
{
    memset(a, 0, sizeof(*a));
    a->family = ADDR_FAMILY_IPV4;
    a->ip[0] = 10;
    a->ip[2] = (uint8_t)(n >> 8);
    a->ip[3] = (uint8_t)n;
    a->port = 4000;
}

static void test_metric(void **state)
{
    (void)state;
    uint8_t a[32] = {0}, b[32] = {0}, t[32] = {0};
    assert_int_equal(routing_common_bits(a, b), 256);
    b[0] = 0x80;
    assert_int_equal(routing_common_bits(a, b), 0);
    b[0] = 0;
    b[31] = 1;
    assert_int_equal(routing_common_bits(a, b), 255);
    /* target 0: a = 0 is closer than b = 1. */
    assert_true(routing_cmp_distance(t, a, b) < 0);
    assert_true(routing_cmp_distance(t, b, a) > 0);
    assert_int_equal(routing_cmp_distance(t, a, a), 0);
    t[31] = 1;
    assert_true(routing_cmp_distance(t, b, a) < 0);
}

static void test_bucket_fills_then_caches_then_replaces_bad(void **state)
{
    (void)state;
    struct routing *rt = NULL;
    assert_int_equal(routing_new(self, 0, &rt), MP_OK);
    uint8_t ids[ROUTING_K + 2][32], pk[32] = {0};
    struct addr a;
    for (unsigned i = 0; i < ROUTING_K + 2; i++) {
        id_at(3, ids[i]);
        addr_n(i + 1, &a);
        enum routing_result r = routing_seen(rt, ids[i], pk, &a, 100 + i, 10);
        assert_int_equal(r, i < ROUTING_K ? ROUTING_ADDED : ROUTING_REPLACEMENT);
    }
    assert_int_equal(routing_count(rt), ROUTING_K);
    assert_non_null(routing_get(rt, ids[0]));
    assert_null(routing_get(rt, ids[ROUTING_K]));
    assert_false(routing_wants(rt, ids[0]));
    /* Seen again: updated, not duplicated. */
    assert_int_equal(routing_seen(rt, ids[0], pk, &a, 500, 5), ROUTING_UPDATED);
    assert_int_equal(routing_get(rt, ids[0])->last_seen_ms, 500);
    /* Two timeouts make ids[1] bad; the freshest replacement takes its place. */
    routing_failed(rt, ids[1]);
    assert_non_null(routing_get(rt, ids[1]));
    routing_failed(rt, ids[1]);
    assert_null(routing_get(rt, ids[1]));
    assert_non_null(routing_get(rt, ids[ROUTING_K + 1]));
    assert_int_equal(routing_count(rt), ROUTING_K);
    /* Self is never stored. */
    assert_int_equal(routing_seen(rt, self, pk, &a, 1, 1), ROUTING_SELF);
    assert_false(routing_wants(rt, self));
    routing_free(rt);
    routing_free(NULL);
}

static void test_per_ip_limit(void **state)
{
    (void)state;
    struct routing *rt = NULL;
    assert_int_equal(routing_new(self, 2, &rt), MP_OK);
    uint8_t id[32], pk[32] = {0};
    struct addr a;
    addr_n(1, &a);
    for (unsigned i = 0; i < 3; i++) {
        id_at(1, id);
        a.port = (uint16_t)(4000 + i); /* same IP, other ports */
        assert_int_equal(routing_seen(rt, id, pk, &a, 1, 1),
                         i < 2 ? ROUTING_ADDED : ROUTING_REFUSED_IP);
    }
    /* Another bucket has its own allowance. */
    id_at(2, id);
    assert_int_equal(routing_seen(rt, id, pk, &a, 1, 1), ROUTING_ADDED);
    /* Loopback is exempt: nodes on one host fill a bucket. */
    assert_int_equal(addr_parse("127.0.0.1:1", &a), MP_OK);
    for (unsigned i = 0; i < 4; i++) {
        id_at(3, id);
        a.port = (uint16_t)(5000 + i);
        assert_int_equal(routing_seen(rt, id, pk, &a, 1, 1), ROUTING_ADDED);
    }
    routing_free(rt);
}

static void test_closest_matches_brute_force(void **state)
{
    (void)state;
    struct routing *rt = NULL;
    assert_int_equal(routing_new(self, 0, &rt), MP_OK);
    enum { N = 300 };
    static uint8_t ids[N][32];
    uint8_t pk[32] = {0};
    struct addr a;
    size_t stored = 0;
    for (unsigned i = 0; i < N; i++) {
        id_at(i % 12, ids[i]);
        addr_n(i + 1, &a);
        stored += routing_seen(rt, ids[i], pk, &a, 1, 1) == ROUTING_ADDED;
    }
    assert_int_equal(routing_count(rt), stored);
    assert_true(routing_deepest(rt) == 11);
    struct routing_entry all[N], out[ROUTING_K];
    size_t n = routing_export(rt, all, N);
    assert_int_equal(n, stored);
    for (unsigned round = 0; round < 20; round++) {
        uint8_t target[32];
        env_random(&te.env, target, 32);
        size_t got = routing_closest(rt, target, false, out, ROUTING_K);
        assert_int_equal(got, ROUTING_K);
        /* Nearest first, and nothing in the table is nearer than the last. */
        for (size_t i = 1; i < got; i++)
            assert_true(routing_cmp_distance(target, out[i - 1].id, out[i].id) < 0);
        size_t nearer = 0;
        for (size_t i = 0; i < n; i++)
            nearer += routing_cmp_distance(target, all[i].id, out[got - 1].id) < 0;
        assert_int_equal(nearer, got - 1);
    }
    /* Bad entries are left out unless asked for. */
    size_t before = routing_closest(rt, self, false, out, ROUTING_K);
    routing_failed(rt, out[0].id);
    routing_failed(rt, out[0].id);
    uint8_t bad_id[32];
    memcpy(bad_id, out[0].id, 32);
    size_t after = routing_closest(rt, self, false, out, ROUTING_K);
    for (size_t i = 0; i < after; i++)
        assert_memory_not_equal(out[i].id, bad_id, 32);
    assert_true(before >= after);
    assert_true(routing_memory(rt) > sizeof(void *) * ROUTING_BUCKETS);
    routing_free(rt);
}

static void test_shortlist_order_and_bounds(void **state)
{
    (void)state;
    struct shortlist sl;
    uint8_t target[32] = {0}, id[32] = {0}, pk[32] = {0};
    struct addr a;
    addr_n(1, &a);
    shortlist_init(&sl, target);
    /* Ids 40, 39, ..., 1 (distance = id): the list keeps the 24 nearest. */
    for (unsigned i = 40; i >= 1; i--) {
        id[31] = (uint8_t)i;
        shortlist_add(&sl, id, pk, &a, 3);
    }
    assert_int_equal(sl.n, SHORTLIST_MAX);
    for (unsigned i = 0; i < sl.n; i++)
        assert_int_equal(sl.e[i].id[31], i + 1);
    /* Farther than the farthest: not added. A duplicate keeps its smaller depth. */
    id[31] = 200;
    shortlist_add(&sl, id, pk, &a, 1);
    assert_null(shortlist_find(&sl, id));
    id[31] = 5;
    shortlist_add(&sl, id, pk, &a, 2);
    assert_int_equal(shortlist_find(&sl, id)->depth, 2);
    shortlist_add(&sl, id, pk, &a, 9);
    assert_int_equal(shortlist_find(&sl, id)->depth, 2);
    assert_int_equal(shortlist_rank(&sl, shortlist_find(&sl, id)), 4);
}

static void test_shortlist_scan_decides_termination(void **state)
{
    (void)state;
    struct shortlist sl;
    struct shortlist_entry *ask[3];
    unsigned n_ask = 0;
    uint8_t target[32] = {0}, id[32] = {0}, pk[32] = {0};
    struct addr a;
    addr_n(1, &a);
    shortlist_init(&sl, target);
    assert_true(shortlist_scan(&sl, 8, ask, 3, &n_ask)); /* nothing to ask: over */
    for (unsigned i = 1; i <= 12; i++) {
        id[31] = (uint8_t)i;
        shortlist_add(&sl, id, pk, &a, 1);
    }
    /* The three nearest are asked first. */
    assert_false(shortlist_scan(&sl, 8, ask, 3, &n_ask));
    assert_int_equal(n_ask, 3);
    assert_int_equal(ask[0]->id[31], 1);
    assert_int_equal(ask[2]->id[31], 3);
    /* Nothing to ask while all slots are busy, but not over either. */
    for (unsigned i = 0; i < 3; i++)
        ask[i]->state = SHORTLIST_ASKED;
    assert_false(shortlist_scan(&sl, 8, ask, 0, &n_ask));
    assert_int_equal(n_ask, 0);
    /* The 8 nearest answered: over, whatever lies beyond. */
    for (unsigned i = 0; i < 8; i++)
        sl.e[i].state = SHORTLIST_ANSWERED;
    assert_true(shortlist_scan(&sl, 8, ask, 3, &n_ask));
    /* One of them failed instead: the 9th nearest must be asked now. */
    sl.e[2].state = SHORTLIST_FAILED;
    assert_false(shortlist_scan(&sl, 8, ask, 3, &n_ask));
    assert_int_equal(n_ask, 1);
    assert_int_equal(ask[0]->id[31], 9);
    ask[0]->state = SHORTLIST_ANSWERED;
    assert_true(shortlist_scan(&sl, 8, ask, 3, &n_ask));
}

int main(void)
{
    test_env_init(&te, test_env_seed(23));
    env_random(&te.env, self, sizeof(self));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric),
        cmocka_unit_test(test_bucket_fills_then_caches_then_replaces_bad),
        cmocka_unit_test(test_per_ip_limit),
        cmocka_unit_test(test_closest_matches_brute_force),
        cmocka_unit_test(test_shortlist_order_and_bounds),
        cmocka_unit_test(test_shortlist_scan_decides_termination),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
