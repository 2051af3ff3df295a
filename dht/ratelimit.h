/*
 * ratelimit: per-source-IP token buckets for incoming datagrams.
 *
 * A source may send `burst` datagrams at once and `rate` a second after
 * that. The table has a fixed number of slots (two-way set associative by a
 * keyed hash of the IP): when both slots of a set are taken, the source seen
 * least recently is forgotten, so memory is bounded whatever the number of
 * sources. rate 0 disables limiting; loopback sources are never limited (only
 * the local host can send from them, and local clusters share one IP).
 */
#ifndef MP_DHT_RATELIMIT_H
#define MP_DHT_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/addr.h"
#include "base/err.h"

struct ratelimit;

/* hash_key: 16 random bytes so sources cannot aim at one set. */
enum mp_err ratelimit_new(size_t slots, unsigned rate_per_s, unsigned burst,
                          const uint8_t hash_key[16], struct ratelimit **rl_out);
void ratelimit_free(struct ratelimit *rl);

/* True (and one token spent) when a datagram from addr's IP may be processed. */
bool ratelimit_allow(struct ratelimit *rl, const struct addr *addr, uint64_t now_ms);

size_t ratelimit_memory(const struct ratelimit *rl);

#endif
