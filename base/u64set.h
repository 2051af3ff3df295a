/*
 * u64set: a growable set of nonzero 64-bit numbers (open addressing,
 * linear probing), for ids and seqs that a caller must remember it met.
 * Not a map, and nothing is ever removed: a set lives as long as what it
 * remembers. A plain value type: zero it (or u64set_init), u64set_free it.
 */
#ifndef MP_BASE_U64SET_H
#define MP_BASE_U64SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct u64set {
    uint64_t *slots; /* 0: empty */
    size_t cap;      /* slots allocated: 0, or a power of two */
    size_t count;    /* numbers held */
};

void u64set_init(struct u64set *s);

bool u64set_has(const struct u64set *s, uint64_t v);

/* Add v. MP_OK if it is new; MP_ERR_EXISTS if it was there; MP_ERR_INVAL
 * for 0; MP_ERR_NOMEM if the set could not grow (it is left as it was). */
enum mp_err u64set_add(struct u64set *s, uint64_t v);

void u64set_free(struct u64set *s);

#endif
