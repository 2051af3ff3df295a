#include "node/u64set.h"

#include <stdlib.h>

#define U64SET_FIRST_CAP   16
#define U64SET_FIRST_SHIFT 60 /* 64 - log2(U64SET_FIRST_CAP) */

void u64set_init(struct u64set *s, size_t max)
{
    *s = (struct u64set){.max = max};
}

/* Where v is, or the empty slot where it would go (the table never full).
 * The first slot is the top bits of v times 2^64 / phi (Fibonacci
 * hashing), which every bit of v moves: numbers in a run, or apart by a
 * power of two, spread over the table. */
static size_t slot_of(const uint64_t *slots, size_t cap, unsigned shift, uint64_t v)
{
    size_t i = (size_t)((v * 0x9E3779B97F4A7C15ull) >> shift);
    while (slots[i] != 0 && slots[i] != v)
        i = (i + 1) & (cap - 1);
    return i;
}

bool u64set_has(const struct u64set *s, uint64_t v)
{
    return v != 0 && s->cap > 0 && s->slots[slot_of(s->slots, s->cap, s->shift, v)] == v;
}

/* Twice the slots (U64SET_FIRST_CAP at first), every number moved over. */
static enum mp_err grow(struct u64set *s)
{
    size_t cap = s->cap > 0 ? s->cap * 2 : U64SET_FIRST_CAP;
    unsigned shift = s->cap > 0 ? s->shift - 1 : U64SET_FIRST_SHIFT;
    if (cap > SIZE_MAX / sizeof(*s->slots))
        return MP_ERR_NOMEM;
    uint64_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return MP_ERR_NOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i] != 0)
            slots[slot_of(slots, cap, shift, s->slots[i])] = s->slots[i];
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    s->shift = shift;
    return MP_OK;
}

enum mp_err u64set_add(struct u64set *s, uint64_t v)
{
    if (v == 0)
        return MP_ERR_INVAL; /* 0 marks an empty slot */
    if (u64set_has(s, v))
        return MP_ERR_EXISTS;
    if (s->count >= s->max)
        return MP_ERR_TOO_BIG;
    if (2 * (s->count + 1) > s->cap) { /* at most half full: probes stay short */
        enum mp_err err = grow(s);
        if (err != MP_OK)
            return err;
    }
    s->slots[slot_of(s->slots, s->cap, s->shift, v)] = v;
    s->count++;
    return MP_OK;
}

void u64set_free(struct u64set *s)
{
    free(s->slots);
    u64set_init(s, s->max);
}
