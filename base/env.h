/*
 * env: the outside world as the I/O-free layers see it.
 *
 * crypto/ and dht/ never read a clock, draw randomness or touch a socket
 * themselves; they call through a `struct env` that their caller passes in.
 * The daemon fills it with the monotonic clock, libsodium's CSPRNG and a UDP
 * send; tests and the simulator fill it with a virtual clock, a seeded
 * generator and an in-memory network, so every run can be replayed.
 *
 * An env is borrowed: whoever passes one keeps it alive for as long as the
 * object that was given it.
 */
#ifndef MP_BASE_ENV_H
#define MP_BASE_ENV_H

#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "base/err.h"

struct env {
    void *ctx; /* handed back to every callback */

    /* Milliseconds on a monotonic clock; the origin is arbitrary. */
    uint64_t (*now_ms)(void *ctx);

    /* Fill buf with len bytes of cryptographically secure randomness
     * (deterministic in tests). Cannot fail. */
    void (*random)(void *ctx, void *buf, size_t len);

    /* Send one datagram of len bytes to `to`. The buffer is borrowed for the
     * call only: the callee copies what it keeps. Returns MP_OK or the reason
     * the datagram was not queued; a datagram may still be lost later. */
    enum mp_err (*send)(void *ctx, const struct addr *to, const uint8_t *buf, size_t len);
};

static inline uint64_t env_now_ms(const struct env *env)
{
    return env->now_ms(env->ctx);
}

static inline void env_random(const struct env *env, void *buf, size_t len)
{
    env->random(env->ctx, buf, len);
}

static inline enum mp_err env_send(const struct env *env, const struct addr *to,
                                   const uint8_t *buf, size_t len)
{
    return env->send(env->ctx, to, buf, len);
}

#endif
