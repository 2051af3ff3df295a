#include "dht/ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "crypto/box.h"

struct source {
    uint8_t family;
    uint8_t ip[16];
    uint64_t last_ms; /* 0 = empty */
    uint64_t millitokens;
};

struct ratelimit {
    unsigned rate;
    unsigned burst;
    size_t sets;
    uint8_t hash_key[16];
    struct source *slots;
};

enum mp_err ratelimit_new(size_t slots, unsigned rate_per_s, unsigned burst,
                          const uint8_t hash_key[16], struct ratelimit **rl_out)
{
    struct ratelimit *rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return MP_ERR_NOMEM;
    rl->rate = rate_per_s;
    rl->burst = burst;
    rl->sets = slots < 2 ? 1 : (slots + 1) / 2;
    memcpy(rl->hash_key, hash_key, sizeof(rl->hash_key));
    if (rate_per_s > 0) {
        rl->slots = calloc(2 * rl->sets, sizeof(struct source));
        if (rl->slots == NULL) {
            ratelimit_free(rl);
            return MP_ERR_NOMEM;
        }
    }
    *rl_out = rl;
    return MP_OK;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    free(rl->slots);
    free(rl);
}

bool ratelimit_allow(struct ratelimit *rl, const struct addr *addr, uint64_t now_ms)
{
    if (rl->rate == 0 || addr_is_loopback(addr))
        return true;
    uint8_t h[16];
    uint64_t idx = 0;
    box_hash(h, sizeof(h), rl->hash_key, sizeof(rl->hash_key), &addr->family, 1, addr->ip,
             sizeof(addr->ip), NULL, 0);
    memcpy(&idx, h, sizeof(idx));
    struct source *set = &rl->slots[2 * (idx % rl->sets)];
    struct source *s = NULL;
    for (int i = 0; i < 2; i++) {
        if (set[i].last_ms != 0 && set[i].family == addr->family &&
            memcmp(set[i].ip, addr->ip, sizeof(addr->ip)) == 0)
            s = &set[i];
    }
    uint64_t full = (uint64_t)rl->burst * 1000;
    if (s == NULL) {
        s = set[0].last_ms <= set[1].last_ms ? &set[0] : &set[1];
        s->family = addr->family;
        memcpy(s->ip, addr->ip, sizeof(s->ip));
        s->millitokens = full;
    } else if (now_ms > s->last_ms) {
        uint64_t add = (now_ms - s->last_ms) * rl->rate;
        s->millitokens = s->millitokens + add > full ? full : s->millitokens + add;
    }
    s->last_ms = now_ms > 0 ? now_ms : 1;
    if (s->millitokens < 1000)
        return false;
    s->millitokens -= 1000;
    return true;
}

size_t ratelimit_memory(const struct ratelimit *rl)
{
    return sizeof(*rl) + (rl->slots ? 2 * rl->sets * sizeof(struct source) : 0);
}
