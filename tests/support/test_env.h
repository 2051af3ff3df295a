/*
 * test_env: a reproducible env for tests and the simulator.
 *
 * Randomness is a ChaCha20 stream keyed by a 64-bit seed (so a failing run
 * is replayed by its seed); the clock is a virtual millisecond counter that
 * only the test moves; send is the test's own (may be NULL when unused).
 */
#ifndef MP_TESTS_TEST_ENV_H
#define MP_TESTS_TEST_ENV_H

#include <stdint.h>

#include "base/env.h"

struct test_env {
    struct env env; /* pass &te->env to the code under test */
    uint64_t now_ms;
    uint64_t seed;
    uint64_t counter; /* random calls so far */
};

/* Set up te with a seed; env.send is left NULL for the caller to fill. */
void test_env_init(struct test_env *te, uint64_t seed);

/* The seed from $MERPATI_TEST_SEED if set, else `fallback`; printed either way
 * so a failing run can be repeated. */
uint64_t test_env_seed(uint64_t fallback);

#endif
