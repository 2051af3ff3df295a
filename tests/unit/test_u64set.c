/* Unit tests for node/u64set: membership across growths, the bound, 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "node/u64set.h"

/* Numbers in a run and far apart (only high bits set), added twice: each
 * held once, none found that was not added, across the growths. */
static void test_members(void **state)
{
    (void)state;
    struct u64set s;
    u64set_init(&s, 4000);
    assert_false(u64set_has(&s, 1)); /* empty: no slots yet */
    assert_int_equal(u64set_add(&s, 0), MP_ERR_INVAL);
    for (uint64_t v = 1; v <= 1000; v++) {
        assert_int_equal(u64set_add(&s, v), MP_OK);
        assert_int_equal(u64set_add(&s, v << 40), MP_OK);
    }
    for (uint64_t v = 1; v <= 1000; v++) {
        assert_int_equal(u64set_add(&s, v), MP_ERR_EXISTS);
        assert_true(u64set_has(&s, v << 40));
    }
    assert_int_equal(s.count, 2000);
    assert_true(s.cap >= 4000); /* at most half full */
    assert_false(u64set_has(&s, 0));
    assert_false(u64set_has(&s, 1001));
    assert_false(u64set_has(&s, 1001ull << 40));
    assert_false(u64set_has(&s, UINT64_MAX));
    u64set_free(&s);
    assert_false(u64set_has(&s, 1));
    assert_int_equal(u64set_add(&s, 7), MP_OK); /* usable again after u64set_free */
    assert_int_equal(s.count, 1);
    u64set_free(&s);
}

/* Numbers apart by a power of two (high bits only) spread over the table:
 * no probe run is long, where a hash of low bits would pile them up. */
static void test_spread(void **state)
{
    (void)state;
    struct u64set s;
    u64set_init(&s, 1024);
    for (uint64_t v = 1; v <= 1024; v++)
        assert_int_equal(u64set_add(&s, v << 40), MP_OK);
    size_t run = 0, longest = 0;
    for (size_t i = 0; i < s.cap; i++) {
        run = s.slots[i] != 0 ? run + 1 : 0;
        longest = run > longest ? run : longest;
    }
    assert_true(longest < 32);
    u64set_free(&s);
}

/* A full set refuses a new number, not one it holds, and stays as it was. */
static void test_bound(void **state)
{
    (void)state;
    struct u64set s;
    u64set_init(&s, 3);
    for (uint64_t v = 1; v <= 3; v++)
        assert_int_equal(u64set_add(&s, v), MP_OK);
    assert_int_equal(u64set_add(&s, 4), MP_ERR_TOO_BIG);
    assert_int_equal(u64set_add(&s, 2), MP_ERR_EXISTS);
    assert_false(u64set_has(&s, 4));
    assert_int_equal(s.count, 3);
    u64set_free(&s);
    assert_int_equal(u64set_add(&s, 4), MP_OK); /* freed: empty, same max */
    u64set_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
