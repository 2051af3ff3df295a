/*
 * sysenv: the real env (base/env.h) for the daemon and CLI: the monotonic
 * clock, libsodium's CSPRNG, and a send that the caller supplies.
 */
#ifndef MP_NODE_SYSENV_H
#define MP_NODE_SYSENV_H

#include <stdint.h>

#include "base/env.h"

/* Fill env with the system clock and randomness; env->send stays as given
 * (may be NULL until a socket exists). Returns MP_ERR_CRYPTO if libsodium
 * cannot initialize. */
enum mp_err sysenv_init(struct env *env);

/* Wall-clock time, Unix ms: for what is stored or shown (message times,
 * expiries), never for timeouts (those run on the monotonic clock). */
uint64_t sysenv_unix_ms(void);

#endif
