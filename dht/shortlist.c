#include "dht/shortlist.h"

#include <string.h>

#include "dht/routing.h"

void shortlist_init(struct shortlist *sl, const uint8_t target[SHORTLIST_ID_BYTES])
{
    memset(sl, 0, sizeof(*sl));
    memcpy(sl->target, target, SHORTLIST_ID_BYTES);
}

struct shortlist_entry *shortlist_find(struct shortlist *sl, const uint8_t id[SHORTLIST_ID_BYTES])
{
    for (unsigned i = 0; i < sl->n; i++) {
        if (memcmp(sl->e[i].id, id, SHORTLIST_ID_BYTES) == 0)
            return &sl->e[i];
    }
    return NULL;
}

void shortlist_add(struct shortlist *sl, const uint8_t id[SHORTLIST_ID_BYTES],
                   const uint8_t pk[SHORTLIST_PK_BYTES], const struct addr *addr, unsigned depth)
{
    struct shortlist_entry *c = shortlist_find(sl, id);
    if (depth > 255)
        depth = 255;
    if (c != NULL) {
        if (depth < c->depth)
            c->depth = (uint8_t)depth;
        return;
    }
    unsigned k = sl->n;
    if (sl->n == SHORTLIST_MAX) {
        if (routing_cmp_distance(sl->target, id, sl->e[sl->n - 1].id) >= 0)
            return;
        k = sl->n - 1;
    } else {
        sl->n++;
    }
    while (k > 0 && routing_cmp_distance(sl->target, id, sl->e[k - 1].id) < 0) {
        sl->e[k] = sl->e[k - 1];
        k--;
    }
    c = &sl->e[k];
    memset(c, 0, sizeof(*c));
    memcpy(c->id, id, SHORTLIST_ID_BYTES);
    memcpy(c->pk, pk, SHORTLIST_PK_BYTES);
    c->addr = *addr;
    c->state = SHORTLIST_NEW;
    c->depth = (uint8_t)depth;
}

bool shortlist_scan(struct shortlist *sl, unsigned k, struct shortlist_entry **ask,
                    unsigned max_ask, unsigned *n_ask)
{
    unsigned seen = 0;
    bool pending = false;
    *n_ask = 0;
    for (unsigned i = 0; i < sl->n && seen < k; i++) {
        struct shortlist_entry *c = &sl->e[i];
        if (c->state == SHORTLIST_FAILED)
            continue;
        seen++;
        if (c->state == SHORTLIST_ANSWERED)
            continue;
        pending = true;
        if (c->state == SHORTLIST_NEW && *n_ask < max_ask)
            ask[(*n_ask)++] = c;
    }
    return !pending;
}

unsigned shortlist_rank(const struct shortlist *sl, const struct shortlist_entry *e)
{
    return (unsigned)(e - sl->e);
}
