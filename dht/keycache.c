#include "dht/keycache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct slot {
    uint8_t pk[BOX_PUBLIC_BYTES];
    uint8_t shared[BOX_SHARED_BYTES];
    uint64_t used; /* 0 = empty */
};

struct keycache {
    const struct box_key *key;
    uint8_t network_key[BOX_NETWORK_KEY_BYTES];
    size_t sets;
    uint64_t clock;
    uint64_t misses;
    struct slot *slots; /* 2 * sets */
};

enum mp_err keycache_new(const struct box_key *key,
                         const uint8_t network_key[BOX_NETWORK_KEY_BYTES], size_t slots,
                         struct keycache **kc_out)
{
    struct keycache *kc = calloc(1, sizeof(*kc));
    if (kc == NULL)
        return MP_ERR_NOMEM;
    kc->key = key;
    memcpy(kc->network_key, network_key, BOX_NETWORK_KEY_BYTES);
    kc->sets = slots < 2 ? 1 : (slots + 1) / 2;
    kc->slots = calloc(2 * kc->sets, sizeof(struct slot));
    if (kc->slots == NULL) {
        keycache_free(kc);
        return MP_ERR_NOMEM;
    }
    *kc_out = kc;
    return MP_OK;
}

void keycache_free(struct keycache *kc)
{
    if (kc == NULL)
        return;
    if (kc->slots != NULL) {
        box_wipe(kc->slots, 2 * kc->sets * sizeof(struct slot));
        free(kc->slots);
    }
    box_wipe(kc->network_key, sizeof(kc->network_key));
    free(kc);
}

enum mp_err keycache_get(struct keycache *kc, const uint8_t peer_pk[BOX_PUBLIC_BYTES],
                         const uint8_t **shared_out)
{
    uint64_t h = 0;
    memcpy(&h, peer_pk, sizeof(h));
    struct slot *set = &kc->slots[2 * (h % kc->sets)];
    kc->clock++;
    for (int i = 0; i < 2; i++) {
        if (set[i].used != 0 && memcmp(set[i].pk, peer_pk, BOX_PUBLIC_BYTES) == 0) {
            set[i].used = kc->clock;
            *shared_out = set[i].shared;
            return MP_OK;
        }
    }
    struct slot *victim = set[0].used <= set[1].used ? &set[0] : &set[1];
    kc->misses++;
    enum mp_err err = box_shared(kc->key, peer_pk, kc->network_key, victim->shared);
    if (err != MP_OK) {
        victim->used = 0;
        return err;
    }
    memcpy(victim->pk, peer_pk, BOX_PUBLIC_BYTES);
    victim->used = kc->clock;
    *shared_out = victim->shared;
    return MP_OK;
}

uint64_t keycache_misses(const struct keycache *kc)
{
    return kc->misses;
}

size_t keycache_memory(const struct keycache *kc)
{
    return sizeof(*kc) + 2 * kc->sets * sizeof(struct slot);
}
