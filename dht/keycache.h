/*
 * keycache: per-peer shared keys (crypto/box.h box_shared), cached so a busy
 * peer costs one X25519 per cache lifetime, not one per datagram.
 *
 * A fixed number of slots, two-way set associative, least recently used out:
 * memory is bounded whatever the traffic. Keys are wiped when evicted and
 * when the cache is freed.
 */
#ifndef MP_DHT_KEYCACHE_H
#define MP_DHT_KEYCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/box.h"

struct keycache;

/* slots is rounded up to an even number, at least 2. The node key and the
 * network key are borrowed for the cache's lifetime. */
enum mp_err keycache_new(const struct box_key *key,
                         const uint8_t network_key[BOX_NETWORK_KEY_BYTES], size_t slots,
                         struct keycache **kc_out);
void keycache_free(struct keycache *kc);

/* The shared key with peer_pk, computed on a miss. Borrowed until the next
 * keycache call. MP_ERR_CRYPTO for a key that cannot be a peer (small order,
 * our own). */
enum mp_err keycache_get(struct keycache *kc, const uint8_t peer_pk[BOX_PUBLIC_BYTES],
                         const uint8_t **shared_out);

/* X25519 operations done so far (misses). */
uint64_t keycache_misses(const struct keycache *kc);

size_t keycache_memory(const struct keycache *kc);

#endif
