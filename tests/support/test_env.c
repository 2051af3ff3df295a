#include "tests/support/test_env.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t now_ms(void *ctx)
{
    return ((struct test_env *)ctx)->now_ms;
}

/* Each call draws from its own ChaCha20 stream, keyed by (seed, call number). */
static void random_fill(void *ctx, void *buf, size_t len)
{
    struct test_env *te = ctx;
    uint8_t key[randombytes_SEEDBYTES] = {0};

    memcpy(key, &te->seed, sizeof(te->seed));
    memcpy(key + 8, &te->counter, sizeof(te->counter));
    te->counter++;
    randombytes_buf_deterministic(buf, len, key);
}

void test_env_init(struct test_env *te, uint64_t seed)
{
    if (sodium_init() < 0)
        abort();
    memset(te, 0, sizeof(*te));
    te->seed = seed;
    te->now_ms = 1000000;
    te->env.ctx = te;
    te->env.now_ms = now_ms;
    te->env.random = random_fill;
}

uint64_t test_env_seed(uint64_t fallback)
{
    const char *text = getenv("MERPATI_TEST_SEED");
    uint64_t seed = fallback;

    if (text != NULL && text[0] != '\0') {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(text, &end, 0);
        if (errno == 0 && *end == '\0')
            seed = v;
    }
    fprintf(stderr, "test seed: %llu (set MERPATI_TEST_SEED to repeat)\n",
            (unsigned long long)seed);
    return seed;
}
