#include "dht/routing.h"

#include <stdlib.h>
#include <string.h>

struct bucket {
    struct routing_entry live[ROUTING_K];
    struct routing_entry spare[ROUTING_REPLACEMENTS];
    uint8_t n;
    uint8_t nspare;
};

struct routing {
    uint8_t self[ROUTING_ID_BYTES];
    unsigned per_ip_limit;
    size_t count;
    size_t nbuckets; /* allocated */
    int deepest;     /* deepest non-empty bucket; live entries are replaced, never removed */
    struct bucket *b[ROUTING_BUCKETS];
};

enum mp_err routing_new(const uint8_t self[ROUTING_ID_BYTES], unsigned per_ip_limit,
                        struct routing **rt_out)
{
    struct routing *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return MP_ERR_NOMEM;
    memcpy(rt->self, self, ROUTING_ID_BYTES);
    rt->per_ip_limit = per_ip_limit;
    rt->deepest = -1;
    *rt_out = rt;
    return MP_OK;
}

void routing_free(struct routing *rt)
{
    if (rt == NULL)
        return;
    for (unsigned i = 0; i < ROUTING_BUCKETS; i++)
        free(rt->b[i]);
    free(rt);
}

unsigned routing_common_bits(const uint8_t a[ROUTING_ID_BYTES], const uint8_t b[ROUTING_ID_BYTES])
{
    for (unsigned i = 0; i < ROUTING_ID_BYTES; i++) {
        uint8_t x = a[i] ^ b[i];
        if (x != 0) {
            unsigned n = 0;
            while (!(x & 0x80)) {
                x <<= 1;
                n++;
            }
            return i * 8 + n;
        }
    }
    return ROUTING_ID_BYTES * 8;
}

int routing_cmp_distance(const uint8_t target[ROUTING_ID_BYTES], const uint8_t a[ROUTING_ID_BYTES],
                         const uint8_t b[ROUTING_ID_BYTES])
{
    for (unsigned i = 0; i < ROUTING_ID_BYTES; i++) {
        uint8_t da = a[i] ^ target[i], db = b[i] ^ target[i];
        if (da != db)
            return da < db ? -1 : 1;
    }
    return 0;
}

static int find(const struct routing_entry *e, unsigned n, const uint8_t id[ROUTING_ID_BYTES])
{
    for (unsigned i = 0; i < n; i++) {
        if (memcmp(e[i].id, id, ROUTING_ID_BYTES) == 0)
            return (int)i;
    }
    return -1;
}

static bool same_ip(const struct addr *a, const struct addr *b)
{
    return a->family == b->family && memcmp(a->ip, b->ip, sizeof(a->ip)) == 0;
}

static void remove_spare(struct bucket *b, unsigned i)
{
    b->spare[i] = b->spare[b->nspare - 1];
    b->nspare--;
}

enum routing_result routing_seen(struct routing *rt, const uint8_t id[ROUTING_ID_BYTES],
                                 const uint8_t pk[ROUTING_PK_BYTES], const struct addr *addr,
                                 uint64_t now_ms, uint32_t rtt_ms)
{
    unsigned cpl = routing_common_bits(rt->self, id);
    if (cpl >= ROUTING_BUCKETS)
        return ROUTING_SELF;
    struct bucket *b = rt->b[cpl];
    if (b == NULL) {
        b = calloc(1, sizeof(*b));
        if (b == NULL)
            return ROUTING_REPLACEMENT; /* not kept; the caller needs no other outcome */
        rt->b[cpl] = b;
        rt->nbuckets++;
    }
    struct routing_entry fresh;
    memcpy(fresh.id, id, ROUTING_ID_BYTES);
    memcpy(fresh.pk, pk, ROUTING_PK_BYTES);
    fresh.addr = *addr;
    fresh.last_seen_ms = now_ms;
    fresh.rtt_ms = rtt_ms;
    fresh.fails = 0;

    int i = find(b->live, b->n, id);
    if (i >= 0) {
        b->live[i] = fresh;
        return ROUTING_UPDATED;
    }
    if (rt->per_ip_limit > 0 && !addr_is_loopback(addr)) {
        unsigned same = 0;
        for (unsigned j = 0; j < b->n; j++)
            same += same_ip(&b->live[j].addr, addr);
        if (same >= rt->per_ip_limit)
            return ROUTING_REFUSED_IP;
    }
    int s = find(b->spare, b->nspare, id);
    if (b->n < ROUTING_K) {
        if (s >= 0)
            remove_spare(b, (unsigned)s);
        b->live[b->n++] = fresh;
        rt->count++;
        if ((int)cpl > rt->deepest)
            rt->deepest = (int)cpl;
        return ROUTING_ADDED;
    }
    for (unsigned j = 0; j < b->n; j++) {
        if (b->live[j].fails >= ROUTING_FAILS_BAD) {
            if (s >= 0)
                remove_spare(b, (unsigned)s);
            b->live[j] = fresh;
            return ROUTING_ADDED;
        }
    }
    if (s >= 0) {
        b->spare[s] = fresh;
    } else if (b->nspare < ROUTING_REPLACEMENTS) {
        b->spare[b->nspare++] = fresh;
    } else {
        /* Full: the stalest replacement makes room. */
        unsigned old = 0;
        for (unsigned j = 1; j < b->nspare; j++) {
            if (b->spare[j].last_seen_ms < b->spare[old].last_seen_ms)
                old = j;
        }
        b->spare[old] = fresh;
    }
    return ROUTING_REPLACEMENT;
}

void routing_failed(struct routing *rt, const uint8_t id[ROUTING_ID_BYTES])
{
    unsigned cpl = routing_common_bits(rt->self, id);
    if (cpl >= ROUTING_BUCKETS || rt->b[cpl] == NULL)
        return;
    struct bucket *b = rt->b[cpl];
    int i = find(b->live, b->n, id);
    if (i < 0) {
        int s = find(b->spare, b->nspare, id);
        if (s >= 0)
            remove_spare(b, (unsigned)s);
        return;
    }
    if (b->live[i].fails < UINT8_MAX)
        b->live[i].fails++;
    if (b->live[i].fails < ROUTING_FAILS_BAD || b->nspare == 0)
        return;
    unsigned best = 0;
    for (unsigned j = 1; j < b->nspare; j++) {
        if (b->spare[j].last_seen_ms > b->spare[best].last_seen_ms)
            best = j;
    }
    b->live[i] = b->spare[best];
    remove_spare(b, best);
}

bool routing_wants(const struct routing *rt, const uint8_t id[ROUTING_ID_BYTES])
{
    unsigned cpl = routing_common_bits(rt->self, id);
    if (cpl >= ROUTING_BUCKETS)
        return false;
    const struct bucket *b = rt->b[cpl];
    if (b == NULL)
        return true;
    if (find(b->live, b->n, id) >= 0 || find(b->spare, b->nspare, id) >= 0)
        return false;
    if (b->n < ROUTING_K || b->nspare < ROUTING_REPLACEMENTS)
        return true;
    for (unsigned j = 0; j < b->n; j++) {
        if (b->live[j].fails >= ROUTING_FAILS_BAD)
            return true;
    }
    return false;
}

const struct routing_entry *routing_get(const struct routing *rt,
                                        const uint8_t id[ROUTING_ID_BYTES])
{
    unsigned cpl = routing_common_bits(rt->self, id);
    if (cpl >= ROUTING_BUCKETS || rt->b[cpl] == NULL)
        return NULL;
    int i = find(rt->b[cpl]->live, rt->b[cpl]->n, id);
    return i >= 0 ? &rt->b[cpl]->live[i] : NULL;
}

/* Insert e into out (n used, nearest first, at most max); returns the new n. */
static size_t insert_sorted(const uint8_t target[ROUTING_ID_BYTES], struct routing_entry *out,
                            size_t n, size_t max, const struct routing_entry *e)
{
    if (n == max && routing_cmp_distance(target, e->id, out[n - 1].id) >= 0)
        return n;
    size_t k = n < max ? n++ : max - 1;
    while (k > 0 && routing_cmp_distance(target, e->id, out[k - 1].id) < 0) {
        out[k] = out[k - 1];
        k--;
    }
    out[k] = *e;
    return n;
}

static size_t add_bucket(const struct bucket *b, const uint8_t target[ROUTING_ID_BYTES],
                         bool include_bad, struct routing_entry *out, size_t n, size_t max)
{
    for (unsigned j = 0; b != NULL && j < b->n; j++) {
        if (include_bad || b->live[j].fails < ROUTING_FAILS_BAD)
            n = insert_sorted(target, out, n, max, &b->live[j]);
    }
    return n;
}

/*
 * With c = common bits of target and self, the XOR distances fall in bands:
 * bucket c holds the nearest nodes, then all buckets deeper than c (their
 * distance has bit c set and nothing above), then buckets c-1, c-2, ... 0,
 * each farther than the one before. So buckets are visited in that order and
 * the scan stops once max nodes are in hand and the next band is farther.
 */
size_t routing_closest(const struct routing *rt, const uint8_t target[ROUTING_ID_BYTES],
                       bool include_bad, struct routing_entry *out, size_t max)
{
    size_t n = 0;
    if (max == 0)
        return 0;
    unsigned c = routing_common_bits(rt->self, target);
    if (c >= ROUTING_BUCKETS)
        c = ROUTING_BUCKETS - 1; /* target is self: bucket 255 is nearest */
    n = add_bucket(rt->b[c], target, include_bad, out, n, max);
    if (n < max) {
        for (unsigned i = c + 1; i < ROUTING_BUCKETS; i++)
            n = add_bucket(rt->b[i], target, include_bad, out, n, max);
    }
    for (int i = (int)c - 1; i >= 0 && n < max; i--)
        n = add_bucket(rt->b[i], target, include_bad, out, n, max);
    return n;
}

size_t routing_export(const struct routing *rt, struct routing_entry *out, size_t max)
{
    size_t n = 0;
    for (unsigned bi = 0; bi < ROUTING_BUCKETS && n < max; bi++) {
        const struct bucket *b = rt->b[bi];
        for (unsigned j = 0; b != NULL && j < b->n && n < max; j++)
            out[n++] = b->live[j];
    }
    return n;
}

size_t routing_bucket(const struct routing *rt, unsigned bucket, bool bad,
                      struct routing_entry *out, size_t max)
{
    size_t n = 0;
    const struct bucket *b = bucket < ROUTING_BUCKETS ? rt->b[bucket] : NULL;
    for (unsigned j = 0; b != NULL && j < b->n && n < max; j++) {
        if ((b->live[j].fails >= ROUTING_FAILS_BAD) == bad)
            out[n++] = b->live[j];
    }
    return n;
}

unsigned routing_bucket_size(const struct routing *rt, unsigned bucket)
{
    return bucket < ROUTING_BUCKETS && rt->b[bucket] != NULL ? rt->b[bucket]->n : 0;
}

size_t routing_count(const struct routing *rt)
{
    return rt->count;
}

int routing_deepest(const struct routing *rt)
{
    return rt->deepest;
}

size_t routing_memory(const struct routing *rt)
{
    return sizeof(*rt) + rt->nbuckets * sizeof(struct bucket);
}
