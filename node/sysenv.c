#include "node/sysenv.h"

#include "crypto/secure.h"
#include <time.h>

static uint64_t now_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void random_fill(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    secure_random(buf, len);
}

enum mp_err sysenv_init(struct env *env)
{
    if (secure_init() != MP_OK)
        return MP_ERR_CRYPTO;
    env->now_ms = now_ms;
    env->random = random_fill;
    return MP_OK;
}

uint64_t sysenv_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
