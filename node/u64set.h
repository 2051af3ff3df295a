/*
 * u64set: a bounded set of nonzero 64-bit numbers (open addressing, linear
 * probing), for seqs or ids that a module must remember it met. Not a map,
 * and nothing is removed: a set holds at most the max it was made with,
 * and an add past that fails, for the caller to decide what "full" means.
 * A plain value type: u64set_init it, u64set_free it.
 */
#ifndef MP_NODE_U64SET_H
#define MP_NODE_U64SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct u64set {
    uint64_t *slots; /* 0: empty */
    size_t cap;      /* slots allocated: 0, or a power of two */
    unsigned shift;  /* 64 - log2(cap): a number's first slot is the top bits of its hash */
    size_t count;    /* numbers held */
    size_t max;      /* count never exceeds this */
};

/* An empty set of at most max numbers; it allocates on its first add. */
void u64set_init(struct u64set *s, size_t max);

/* Whether v is in s: never for 0, nor in an empty or freed set. */
bool u64set_has(const struct u64set *s, uint64_t v);

/* Add v. MP_OK if it is new; MP_ERR_EXISTS if it was there; MP_ERR_INVAL
 * for 0; MP_ERR_TOO_BIG if s holds its max; MP_ERR_NOMEM if s could not
 * grow. On an error s is as it was. */
enum mp_err u64set_add(struct u64set *s, uint64_t v);

/* Release the memory; s is then empty, with the same max, and may be used again. */
void u64set_free(struct u64set *s);

#endif
