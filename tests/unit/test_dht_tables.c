/* Unit tests for the DHT's bounded tables: the per-peer key cache, the
 * per-source rate limiter and the record store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/box.h"
#include "dht/keycache.h"
#include "dht/ratelimit.h"
#include "dht/storage.h"
#include "tests/support/test_env.h"

static struct test_env te;

static void test_keycache_computes_once_and_stays_bounded(void **state)
{
    (void)state;
    struct box_key *me = NULL, *peers[40] = {0};
    uint8_t net[32], expect[32];
    const uint8_t *shared = NULL;
    struct keycache *kc = NULL;
    box_public_network_key(net);
    assert_int_equal(box_key_generate(&te.env, &me), MP_OK);
    assert_int_equal(keycache_new(me, net, 16, &kc), MP_OK);
    size_t mem = keycache_memory(kc);
    for (unsigned i = 0; i < 40; i++)
        assert_int_equal(box_key_generate(&te.env, &peers[i]), MP_OK);
    /* The cached key is the real shared key; a second get is a hit. */
    assert_int_equal(keycache_get(kc, box_key_public(peers[0]), &shared), MP_OK);
    assert_int_equal(box_shared(me, box_key_public(peers[0]), net, expect), MP_OK);
    assert_memory_equal(shared, expect, 32);
    assert_int_equal(keycache_misses(kc), 1);
    assert_int_equal(keycache_get(kc, box_key_public(peers[0]), &shared), MP_OK);
    assert_int_equal(keycache_misses(kc), 1);
    /* Forty peers through sixteen slots: every answer right, memory fixed. */
    for (unsigned i = 0; i < 40; i++) {
        assert_int_equal(keycache_get(kc, box_key_public(peers[i]), &shared), MP_OK);
        assert_int_equal(box_shared(me, box_key_public(peers[i]), net, expect), MP_OK);
        assert_memory_equal(shared, expect, 32);
    }
    assert_int_equal(keycache_memory(kc), mem);
    uint8_t small_order[32] = {0};
    assert_int_equal(keycache_get(kc, small_order, &shared), MP_ERR_CRYPTO);
    keycache_free(kc);
    keycache_free(NULL);
    for (unsigned i = 0; i < 40; i++)
        box_key_free(peers[i]);
    box_key_free(me);
}

static void test_ratelimit_refills_and_forgets(void **state)
{
    (void)state;
    uint8_t key[16] = {1};
    struct ratelimit *rl = NULL;
    struct addr a;
    assert_int_equal(ratelimit_new(8, 10, 3, key, &rl), MP_OK);
    assert_int_equal(addr_parse("203.0.113.5:1", &a), MP_OK);
    assert_true(ratelimit_allow(rl, &a, 1000));
    assert_true(ratelimit_allow(rl, &a, 1000));
    assert_true(ratelimit_allow(rl, &a, 1000));
    assert_false(ratelimit_allow(rl, &a, 1000));
    /* 10/s: one token back after 100 ms. */
    assert_true(ratelimit_allow(rl, &a, 1100));
    assert_false(ratelimit_allow(rl, &a, 1100));
    /* The port does not matter; the IP does. */
    a.port = 2;
    assert_false(ratelimit_allow(rl, &a, 1100));
    /* Many sources: memory stays what it was. */
    size_t mem = ratelimit_memory(rl);
    for (unsigned i = 0; i < 1000; i++) {
        a.ip[3] = (uint8_t)i;
        a.ip[2] = (uint8_t)(i >> 8);
        ratelimit_allow(rl, &a, 2000 + i);
    }
    assert_int_equal(ratelimit_memory(rl), mem);
    /* Loopback is never limited. */
    assert_int_equal(addr_parse("127.0.0.1:9", &a), MP_OK);
    for (unsigned i = 0; i < 100; i++)
        assert_true(ratelimit_allow(rl, &a, 9000));
    ratelimit_free(rl);
    /* rate 0: no limit. */
    assert_int_equal(ratelimit_new(8, 0, 0, key, &rl), MP_OK);
    for (unsigned i = 0; i < 100; i++)
        assert_true(ratelimit_allow(rl, &a, 5));
    ratelimit_free(rl);
    ratelimit_free(NULL);
}

static void test_storage_seq_full_expiry(void **state)
{
    (void)state;
    struct storage *st = NULL;
    struct record r;
    uint8_t k1[32] = {1}, k2[32] = {2}, k3[32] = {3};
    memset(&r, 0, sizeof(r));
    assert_int_equal(storage_new(2, &st), MP_OK);
    r.seq = 5;
    r.expires_s = 100;
    assert_int_equal(storage_put(st, k1, &r), STORAGE_STORED);
    r.seq = 5;
    assert_int_equal(storage_put(st, k1, &r), STORAGE_STALE);
    r.seq = 4;
    assert_int_equal(storage_put(st, k1, &r), STORAGE_STALE);
    r.seq = 6;
    r.expires_s = 200;
    assert_int_equal(storage_put(st, k1, &r), STORAGE_STORED);
    assert_int_equal(storage_get(st, k1, 50)->seq, 6);
    r.expires_s = 100;
    assert_int_equal(storage_put(st, k2, &r), STORAGE_STORED);
    assert_int_equal(storage_put(st, k3, &r), STORAGE_FULL);
    assert_int_equal(storage_count(st), 2);
    /* k2 expires at 100: not returned from then, swept away. */
    assert_null(storage_get(st, k2, 100));
    assert_non_null(storage_get(st, k1, 100));
    assert_int_equal(storage_expire(st, 100), 1);
    assert_int_equal(storage_count(st), 1);
    assert_int_equal(storage_put(st, k3, &r), STORAGE_STORED);
    storage_free(st);
    storage_free(NULL);
}

int main(void)
{
    test_env_init(&te, test_env_seed(24));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keycache_computes_once_and_stays_bounded),
        cmocka_unit_test(test_ratelimit_refills_and_forgets),
        cmocka_unit_test(test_storage_seq_full_expiry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
